"""Smoke tests for the examples: each runs at a tiny size and must do what it claims."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _load(name: str):
  """Imports examples/<name>.py as a module (examples/ is not a package)."""
  module_name = f"example_{name}"
  if module_name in sys.modules:
    return sys.modules[module_name]
  path = os.path.join(EXAMPLES, f"{name}.py")
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module  # dataclasses look their module up while the class is built
  spec.loader.exec_module(module)
  return module


def _assert_learns(losses, factor=0.5):
  losses = np.asarray(losses)
  assert np.all(np.isfinite(losses))
  k = max(len(losses) // 6, 1)
  assert losses[-k:].mean() < factor * losses[:k].mean(), (losses[:k], losses[-k:])


# --- paper_grid -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paper_grid_run(tmp_path_factory):
  paper_grid = _load("paper_grid")
  out = tmp_path_factory.mktemp("paper_grid")
  result = paper_grid.main(["--tiny", "--no-progress", "--out", str(out)])
  return paper_grid, out, result


def test_paper_grid_writes_figures_and_tables(paper_grid_run):
  paper_grid, out, result = paper_grid_run
  keys = [f.key for f in paper_grid.FAMILIES]
  assert len(keys) == 5
  for name in ["heatmaps.png"] + [f"heatmap_{k}.png" for k in keys]:
    path = out / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
  table = (out / "results.md").read_text(encoding="utf-8")
  rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
  assert len(rows) == 1 + 5  # the header and one row per optimizer
  for fam in paper_grid.FAMILIES:
    assert sum(line.startswith(f"| {fam.title} |") for line in rows) == 1, fam.title
  assert "lr coupling, PyTorch/optax convention" in table
  assert set(result["summaries"]) == set(keys)


def test_paper_grid_results_are_sane(paper_grid_run):
  paper_grid, out, _ = paper_grid_run
  saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
  config = saved["config"]
  for key, fam in saved["families"].items():
    errors = np.asarray(fam["test_error"])
    assert errors.shape == (config["n_lr"], config["n_decay"], config["seeds"]), key
    assert np.all((errors >= 0) & (errors <= 1))
    assert fam["decays"][0] == 0.0 and all(d > 0 for d in fam["decays"][1:])
    # Even two tiny epochs beat chance (90 % error) somewhere on the grid.
    assert fam["summary"]["best_mean"] < 0.8, key
  # Same seeds give the same initial weights and minibatches in every panel, so with λ = 0 the
  # Adam panels (and the SGD panels) train the same network the same way. The compiled programs
  # differ, so rounding may differ in the last bit; at a small learning rate that cannot move
  # more than a test image, at a large one Adam can amplify it a little.
  fams = saved["families"]
  n_test = 1797 - config["train_size"]
  for group in (("adam_l2", "adamw", "adamw_lr"), ("sgd_l2", "sgdw")):
    columns = [np.asarray(fams[k]["test_error"])[:, 0] for k in group]
    for other in columns[1:]:
      np.testing.assert_allclose(other[0], columns[0][0], atol=1.5 / n_test)
      np.testing.assert_allclose(other, columns[0], atol=0.01)


def test_paper_grid_runs_the_extra_adams_grid(tmp_path):
  paper_grid = _load("paper_grid")
  out = tmp_path / "adams"
  result = paper_grid.main(
    ["--tiny", "--no-progress", "--optimizers", "adamw_lr", "adams", "--out", str(out)]
  )
  assert set(result["summaries"]) == {"adamw_lr", "adams"}
  saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
  adams = np.asarray(saved["families"]["adams"]["test_error"])
  adamw = np.asarray(saved["families"]["adamw_lr"]["test_error"])
  # The λ = 0 column is plain Adam in both panels.
  np.testing.assert_allclose(adams[:, 0], adamw[:, 0], atol=0.01)
  assert saved["families"]["adams"]["summary"]["best_mean"] < 0.8


def test_paper_grid_summary_measures():
  paper_grid = _load("paper_grid")
  lrs = np.array([1e-3, 1e-2, 1e-1])
  decays = np.array([0.0, 1e-4, 1e-3, 1e-2])
  # A diagonal valley: the best λ falls tenfold when the learning rate rises tenfold.
  diagonal = np.full((3, 4, 1), 0.10)
  diagonal[0, 3] = diagonal[1, 2] = diagonal[2, 1] = 0.02
  summary = paper_grid.summarize(diagonal, lrs, decays)
  assert summary["best_lambda_slope"] == pytest.approx(-1.0)
  assert summary["slope_rows"] == 3
  # A separable landscape: the same λ is best at every learning rate.
  separable = np.full((3, 4, 1), 0.10)
  separable[:, 2] = 0.02
  separable[1, 2] = 0.015
  summary = paper_grid.summarize(separable, lrs, decays)
  assert summary["best_lambda_slope"] == pytest.approx(0.0, abs=1e-9)
  assert summary["best_lr"] == 1e-2 and summary["best_decay"] == 1e-3
  assert summary["near_best_fraction"] == pytest.approx(3 / 9)
  assert summary["no_decay_mean"] == pytest.approx(0.10)


# --- nnx_minimal and linen_trainstate ---------------------------------------------------------


def test_nnx_minimal_learns():
  result = _load("nnx_minimal").main(["--steps", "80", "--hidden", "32", "--lr", "1e-2"])
  _assert_learns(result["losses"])
  assert result["test_accuracy"] > 0.8


def test_nnx_mask_spares_biases_and_norm_scales():
  from flax import nnx

  import optax_decay

  nnx_minimal = _load("nnx_minimal")
  model = nnx_minimal.Classifier(8, rngs=nnx.Rngs(0))
  before = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  tx = optax_decay.adamw(0.1, weight_decay=0.5, mask=nnx_minimal.decay_mask(model))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  zero_grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
  optimizer.update(model, zero_grads)  # with zero gradients only the decay moves anything
  after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  for layer in ("hidden", "out"):
    np.testing.assert_allclose(after[layer]["kernel"], 0.95 * before[layer]["kernel"], rtol=1e-6)
    np.testing.assert_array_equal(after[layer]["bias"], before[layer]["bias"])
  np.testing.assert_array_equal(after["norm"]["scale"], before["norm"]["scale"])


def test_linen_trainstate_learns():
  result = _load("linen_trainstate").main(["--steps", "80", "--hidden", "32", "--lr", "1e-2"])
  _assert_learns(result["losses"])
  assert result["test_accuracy"] > 0.8


def test_linen_mask_spares_biases_and_norm_scales():
  linen_trainstate = _load("linen_trainstate")
  state = linen_trainstate.make_state(8, 0.1, 0.5)
  zero_grads = jax.tree.map(jnp.zeros_like, state.params)
  new = state.apply_gradients(grads=zero_grads)
  for layer in ("hidden", "out"):
    np.testing.assert_allclose(
      new.params[layer]["kernel"], 0.95 * state.params[layer]["kernel"], rtol=1e-6
    )
    np.testing.assert_array_equal(new.params[layer]["bias"], state.params[layer]["bias"])
  np.testing.assert_array_equal(new.params["norm"]["scale"], state.params["norm"]["scale"])


# --- sharded_fsdp (a subprocess: the device count is fixed when jax starts) -------------------


def test_sharded_fsdp_shards_params_and_moments():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
    [sys.executable, "-W", "error", os.path.join(EXAMPLES, "sharded_fsdp.py"), "--steps", "30"],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout
  assert "mesh {'data': 8}" in out
  assert "shardings as intended" in out
  # Each section lists the largest dimension of every weight sharded over 'data', and the
  # 10-class output bias (not divisible by 8) replicated, for the params and both moments.
  for section in ("params", "mu", "nu"):
    block = out.split(f"\n{section}:\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"\['layer0'\]\['w'\]\s+P\(None, 'data'\)", block), block
    assert re.search(r"\['layer1'\]\['w'\]\s+P\('data', None\)", block), block
    assert re.search(r"\['layer2'\]\['b'\]\s+P\(\)", block), block
  losses = [float(m) for m in re.findall(r"loss (\d+\.\d+)", out)]
  assert losses[-1] < 0.6 * losses[0], losses
