"""Smoke test of benchmarks/run.py: `--quick` runs in seconds and reports every contender."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _torch, run, trace_time  # noqa: E402


@pytest.fixture(scope="module")
def quick_rows():
  return run.main(["--quick", "--repeats", "3"])


def _groups(rows):
  groups = {}
  for row in rows:
    key = (row["alias"], row["n_params"], row["n_leaves"], row["masked"])
    groups.setdefault(key, {})[row["contender"]] = row
  return groups


def test_every_optimizer_and_contender_is_timed(quick_rows):
  groups = _groups(quick_rows)
  assert {alias for alias, *_ in groups} == {"adamw", "adam_l2", "sgdw", "sgd_l2"}
  assert any(masked for *_, masked in groups) and any(not masked for *_, masked in groups)
  for (alias, *_), by in groups.items():
    expected = {"optax_decay", "optax", "optax A/A", "stream triad"}
    if _torch.available() and _torch.has_equivalent(alias):
      expected |= {"torch foreach", "torch fused"}
    assert set(by) == expected, alias


def test_times_and_ratios_are_finite_and_positive(quick_rows):
  for row in quick_rows:
    for key in ("median_ms", "ratio", "roofline", "gbps"):
      assert math.isfinite(row[key]) and row[key] > 0, (row["contender"], key, row[key])
    assert all(t > 0 for t in row["times_ms"])
    if row["contender"] == "optax":
      assert row["ratio"] == 1.0


def test_compile_times_and_xla_traffic_are_reported(quick_rows):
  for row in quick_rows:
    if row["contender"] in ("optax_decay", "optax"):
      assert row["compile_s"] > 0 and row["trace_s"] > 0
      assert row["xla_passes"] >= row["min_passes"] - 1e-6


def test_same_compiled_program_as_optax(quick_rows):
  """Zero overhead by construction: XLA compiles our step to exactly optax's kernels."""
  for row in quick_rows:
    if row["contender"] == "optax_decay":
      assert row["same_hlo_as_optax"], (row["alias"], row["n_leaves"], row["masked"])


def test_state_bytes_equal_optax(quick_rows):
  """The decay adds no state: our optimizer state is exactly as large as optax's."""
  for key, by in _groups(quick_rows).items():
    assert by["optax_decay"]["state_bytes"] == by["optax"]["state_bytes"], key
    assert by["optax"]["state_bytes"] > 0


def test_trace_time_reports_both_contenders():
  medians = trace_time.main(["--leaves", "5", "--repeats", "1"])
  assert set(medians) == {"optax_decay.adamw", "optax.adamw"}
  assert all(math.isfinite(t) and t > 0 for t in medians.values())
