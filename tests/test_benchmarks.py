"""Smoke test of benchmarks/run.py: `--quick` runs in seconds and reports every contender."""

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import skip_before

from benchmarks import _report as R
from benchmarks import _torch, adams_cost, run


@pytest.fixture(scope="module")
def quick_rows():
  return run.main(["--quick", "--repeats", "3"])


def _groups(rows):
  groups = {}
  for row in rows:
    key = (row["alias"], row["n_params"], row["n_leaves"], row["masked"])
    groups.setdefault(key, {})[row["contender"]] = row
  return groups


@pytest.mark.slow
def test_every_optimizer_and_contender_is_timed(quick_rows):
  groups = _groups(quick_rows)
  assert {alias for alias, *_ in groups} == {"adamw", "adam_l2", "sgdw", "sgd_l2"}
  assert any(masked for *_, masked in groups) and any(not masked for *_, masked in groups)
  for (alias, *_), by in groups.items():
    expected = {"optax_decay", "optax", "optax A/A", "stream triad"}
    if _torch.available() and _torch.has_equivalent(alias):
      expected |= {"torch foreach", "torch fused"}
    assert set(by) == expected, alias


@pytest.mark.slow
def test_times_and_ratios_are_finite_and_positive(quick_rows):
  for row in quick_rows:
    for key in ("median_ms", "ratio", "roofline", "gbps"):
      assert math.isfinite(row[key]) and row[key] > 0, (row["contender"], key, row[key])
    assert all(t > 0 for t in row["times_ms"])
    if row["contender"] == "optax":
      assert row["ratio"] == 1.0


@pytest.mark.slow
def test_compile_times_and_xla_traffic_are_reported(quick_rows):
  for row in quick_rows:
    if row["contender"] in ("optax_decay", "optax"):
      assert row["compile_s"] > 0 and row["trace_s"] > 0
      assert row["xla_passes"] >= row["min_passes"] - 1e-6


@pytest.mark.slow
def test_same_compiled_program_as_optax(quick_rows):
  """Zero overhead by construction: XLA compiles our step to exactly optax's kernels."""
  for row in quick_rows:
    if row["contender"] == "optax_decay":
      assert row["same_hlo_as_optax"], (row["alias"], row["n_leaves"], row["masked"])


@pytest.mark.slow
def test_state_bytes_equal_optax(quick_rows):
  """The decay adds no state: our optimizer state is exactly as large as optax's."""
  for key, by in _groups(quick_rows).items():
    assert by["optax_decay"]["state_bytes"] == by["optax"]["state_bytes"], key
    assert by["optax"]["state_bytes"] > 0


# The pure logic that decides what a GPU run does; no GPU is needed to check it. The CUDA path
# itself (tensors on `cuda`, synchronizing steps) cannot run here.


def test_torch_follows_jax_to_its_device_or_stays_out():
  assert _torch.choose_device("cpu", cuda_available=False) == "cpu"
  assert _torch.choose_device("cpu", cuda_available=True) == "cpu"
  assert _torch.choose_device("gpu", cuda_available=True) == "cuda"
  # Never a GPU step of JAX against a CPU step of torch.
  assert _torch.choose_device("gpu", cuda_available=False) is None
  assert _torch.choose_device("tpu", cuda_available=True) is None
  assert _torch.device_for("cpu") == "cpu"


def test_size_sweep_follows_the_backend():
  cpu, cpu_overhead = run.sweep("cpu")
  gpu, gpu_overhead = run.sweep("gpu")
  assert max(n for n, *_ in cpu) < 100_000_000
  one_leaf = {n for n, leaves, masked in gpu if leaves == 1 and not masked}
  assert one_leaf == {10_000_000, 50_000_000, 100_000_000, 200_000_000, 300_000_000}
  assert {(n, leaves) for n, leaves, _ in gpu if leaves > 1} >= {
    (100_000_000, 200),
    (100_000_000, 1000),
  }
  assert run.sweep("tpu") == (gpu, gpu_overhead)
  assert run.sweep("gpu", sizes="cpu") == (cpu, cpu_overhead)
  assert run.sweep("cpu", sizes="gpu") == (gpu, gpu_overhead)
  assert run.sweep("gpu", quick=True) == run.sweep("cpu", quick=True)
  assert max(n for n, *_ in run.sweep("gpu", quick=True)[0]) < 1_000_000
  with pytest.raises(ValueError):
    run.sweep("cpu", sizes="huge")


def test_a_gpu_run_writes_its_own_block_and_keeps_the_cpu_one(tmp_path):
  assert run.output_names("cpu") == ("run.py", "")
  block, suffix = run.output_names("gpu")
  assert (block, suffix) == ("run.py:gpu", "_gpu")
  page = tmp_path / "benchmarks.md"
  cpu_block = "<!-- run.py:begin -->\nCPU numbers\n<!-- run.py:end -->"
  page.write_text(f"# Benchmarks\n\n{cpu_block}\n\nprose\n")
  R.write_block(page, block, "GPU numbers", "Benchmarks")
  R.write_block(page, block, "GPU numbers, again", "Benchmarks")
  text = page.read_text()
  assert cpu_block in text and "prose" in text
  assert text.count("<!-- run.py:gpu:begin -->") == 1 and "GPU numbers, again" in text
  assert "GPU numbers\n" not in text
  # The page has a place for it, so that a GPU run does not land at its very end.
  lines = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text().splitlines()
  assert lines.count("<!-- run.py:gpu:begin -->") == lines.count("<!-- run.py:gpu:end -->") == 1


def test_regenerating_a_block_keeps_the_prose_that_quotes_its_markers(tmp_path):
  """docs/benchmarks.md names its markers inline at the top; only whole-line markers count."""
  page = tmp_path / "benchmarks.md"
  page.write_text((Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text())
  before = page.read_text()
  for name in ("run.py", "run.py:gpu"):
    R.write_block(page, name, f"regenerated {name}", "Benchmarks")
  after = page.read_text()
  for heading in ("## Running it", "## Results in brief", "## How it is measured"):
    assert after.count(heading) == before.count(heading) == 1, heading
  assert "`<!-- run.py:begin -->`" in after
  for name in ("run.py", "run.py:gpu"):
    assert f"<!-- {name}:begin -->\nregenerated {name}\n<!-- {name}:end -->" in after


def _row(contender, n_params, roofline=1.0, times_ms=(1.0, 1.0, 1.0), n_leaves=1, alias="adamw"):
  return {
    "alias": alias,
    "n_params": n_params,
    "n_leaves": n_leaves,
    "masked": False,
    "contender": contender,
    "roofline": roofline,
    "gbps": 1000.0,
    "times_ms": list(times_ms),
  }


def test_target_check_passes_and_fails_on_synthetic_rows():
  big, small = 100_000_000, 99_999_999
  rows = [
    # 100M: at the roofline target, and faster than torch fused in two repeats out of three.
    # Per-repeat ratios 0.5, 1.5, 0.25 (median 0.5); the ratio of the medians would be 1.0.
    _row("optax_decay", big, roofline=0.85, times_ms=(1.0, 3.0, 2.0)),
    _row("torch fused", big, times_ms=(2.0, 2.0, 8.0)),
    # 300M: below the roofline target, and slower than torch fused.
    _row("optax_decay", 3 * big, roofline=0.84, times_ms=(2.2, 2.0, 2.1)),
    _row("torch fused", 3 * big, times_ms=(2.0, 2.0, 2.0)),
    # Ignored: below 100M parameters, or not AdamW.
    _row("optax_decay", small, roofline=0.1, times_ms=(9.0, 9.0, 9.0)),
    _row("torch fused", small),
    _row("optax_decay", big, roofline=0.1, alias="adam_l2"),
  ]
  checks = R.target_check(rows)
  assert [(c["n_params"], c["roofline_pass"], c["vs_fused_pass"]) for c in checks] == [
    (big, True, True),
    (3 * big, False, False),
  ]
  assert checks[0]["vs_fused"] == 0.5  # the median of the per-repeat ratios, not of the times
  assert R.target_verdict(checks[:1]) == "pass"
  assert R.target_verdict(checks) == "fail"
  assert R.target_verdict([]) == "not checked"
  without_torch = R.target_check([r for r in rows if r["contender"] != "torch fused"])
  assert without_torch[0]["vs_fused"] is None and without_torch[0]["vs_fused_pass"] is None
  assert R.target_verdict(without_torch[:1]) == "incomplete"


def test_target_check_never_passes_a_cpu_run_off_as_a_gpu_result():
  rows = [_row("optax_decay", 100_000_000, roofline=0.9), _row("torch fused", 100_000_000)]
  checks = R.target_check(rows)
  on_cpu = R.target_markdown(checks, {"backend": "cpu", "device_kind": "cpu"})
  assert "not a GPU result" in on_cpu and "**pass**" in on_cpu
  on_gpu = R.target_markdown(checks, {"backend": "gpu", "device_kind": "NVIDIA H100"})
  assert "not a GPU result" not in on_gpu and "NVIDIA H100" in on_gpu
  assert "not checked" in R.target_markdown([], {"backend": "cpu", "device_kind": "cpu"})


@pytest.mark.skipif(not _torch.available(), reason="torch is not installed")
def test_torch_contender_works_on_copies_on_the_chosen_device():
  params = {"a": np.ones(16, np.float32), "b": np.ones(8, np.float32)}
  grads = {"a": np.full(16, 0.5, np.float32), "b": np.full(8, 0.5, np.float32)}
  contender = _torch.contender("adamw", "fused", params, grads, device="cpu")
  contender.step()
  assert contender.state_bytes >= 2 * 4 * (16 + 8)
  # The NumPy inputs are shared by every contender: torch must not update them in place.
  assert np.all(params["a"] == 1.0) and np.all(grads["b"] == 0.5)


def test_adams_reads_the_gradients_once_more_than_adamw_and_no_more():
  # One extra pass (the mean squared gradient) is the design; without the optimization barrier
  # in _stable.py XLA makes it three (g·g written out and read back).
  rows = adams_cost.main(["--quick"])
  assert len(rows) == 2
  for row in rows:
    assert row["extra_state_bytes"] == 8  # a step count and one float32 scalar
    assert math.isfinite(row["ratio"]) and row["ratio"] > 0
  skip_before(
    "jax",
    "0.10.2",
    "the barrier keeps adams at one extra pass only with XLA from jaxlib 0.10.2; with older "
    "ones adams makes 13–14 passes to AdamW's 10",
  )
  for row in rows:
    assert row["adams_passes"] == pytest.approx(row["adamw_passes"] + 1, abs=0.01), row
