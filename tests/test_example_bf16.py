"""Smoke run of examples/bf16_decay.py with a tiny setting."""

import importlib.util
import math
import pathlib

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "bf16_decay.py"


@pytest.mark.slow
def test_bf16_example_runs_and_reports_every_variant():
  pytest.importorskip("sklearn")  # here, not at import: collecting the default run skips it
  spec = importlib.util.spec_from_file_location("bf16_decay", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  results = module.main(
    ["--epochs", "3", "--hidden", "32", "--learning-rate", "0.005", "--weight-decay", "0.2"]
  )
  assert set(results) == {
    "float32",
    "bfloat16",
    "bfloat16 + compensated_summation",
    "float32, no decay",
  }
  for norm, accuracy in results.values():
    assert math.isfinite(norm) and norm > 0
    assert 0.5 < accuracy <= 1.0  # three epochs on digits already beat chance (0.1) by far
  # The decay shrinks the float32 weights relative to the run without it.
  assert results["float32"][0] < results["float32, no decay"][0]
  # Carrying the rounding error changes the bfloat16 trajectory.
  assert results["bfloat16"][0] != results["bfloat16 + compensated_summation"][0]
