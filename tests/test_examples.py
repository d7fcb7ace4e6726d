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


def _png_size(path) -> tuple[int, int]:
  header = path.read_bytes()[:24]
  assert header[:8] == b"\x89PNG\r\n\x1a\n", path.name
  return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.fixture(scope="module")
def paper_grid_run(tmp_path_factory):
  # The paper's five grids and the extra AdamS one, in one tiny run (compiling is most of it).
  paper_grid = _load("paper_grid")
  out = tmp_path_factory.mktemp("paper_grid")
  keys = [f.key for f in paper_grid.FAMILIES + paper_grid.EXTRA_FAMILIES]
  result = paper_grid.main(["--tiny", "--no-progress", "--optimizers", *keys, "--out", str(out)])
  return paper_grid, out, result


@pytest.mark.slow
def test_paper_grid_writes_readable_figures_and_tables(paper_grid_run):
  paper_grid, out, result = paper_grid_run
  families = paper_grid.FAMILIES + paper_grid.EXTRA_FAMILIES
  assert len(paper_grid.FAMILIES) == 5
  names = ["heatmaps.png", "best_lambda.png"] + [f"heatmap_{f.key}.png" for f in families]
  assert sorted(os.path.basename(p) for p in result["figures"]) == sorted(names)
  for name in names:
    width, height = _png_size(out / name)
    # Issue 14: one long row of panels (2310×484) made every number tiny.
    assert width <= 2000 and height <= 2000 and width <= 2 * height, (name, width, height)
  text = (out / "results.md").read_text(encoding="utf-8")
  grid, rerun, claims = (
    text.split(f"## {title}", 1)[1] for title in ("The grid", "The best cells re-run", "The claims")
  )
  for fam in families:
    assert grid.split("## ")[0].count(f"| {fam.title} | {fam.decay_kind} |") == 1, fam.title
    assert rerun.split("## ")[0].count(f"| {fam.title} |") == 1, fam.title
  rows = [line.split(" | ")[0][2:] for line in claims.strip().split("\n\n")[0].splitlines()[2:]]
  assert rows == ["(a) Adam", "(b)", "(a) SGD", "(c)"] + ["coupling"] * 2 + ["extra"] * 2
  assert "lr coupling, PyTorch/optax convention" in text


@pytest.mark.slow
def test_paper_grid_results_are_sane(paper_grid_run):
  paper_grid, out, _ = paper_grid_run
  saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
  config, fams = saved["config"], saved["families"]
  assert saved["machine"]["cores"] >= 1
  for key, fam in fams.items():
    errors = np.asarray(fam["test_error"])
    assert errors.shape == (config["n_lr"], config["n_decay"], config["seeds"]), key
    assert np.all((errors >= 0) & (errors <= 1))
    assert fam["decays"][0] == 0.0 and all(d > 0 for d in fam["decays"][1:])
    # Even two tiny epochs beat chance (90 % error) somewhere on the grid.
    assert fam["summary"]["best_mean"] < 0.8, key
    rerun = fam["rerun"]
    assert np.asarray(rerun["test_error"]).shape == (2, config["confirm_seeds"])
    assert rerun["cells"] == [
      [fam["summary"]["best_lr"], fam["summary"]["best_decay"]],
      [fam["summary"]["no_decay_lr"], 0.0],
    ]
    assert set(rerun["seeds"]).isdisjoint(range(config["seeds"]))  # fresh seeds
  # Same seeds give the same initial weights, minibatches and split in every panel, so with
  # λ = 0 the Adam panels (and the SGD panels) train the same network the same way. The compiled
  # programs differ, so rounding may differ in the last bit; at a small learning rate that cannot
  # move more than a test image, at a large one Adam can amplify it a little.
  n_test = 1797 - config["train_size"]
  for group in (("adam_l2", "adamw", "adamw_lr", "adams"), ("sgd_l2", "sgdw")):
    columns = [np.asarray(fams[k]["test_error"])[:, 0] for k in group]
    for other in columns[1:]:
      np.testing.assert_allclose(other[0], columns[0][0], atol=1.5 / n_test)
      np.testing.assert_allclose(other, columns[0], atol=0.01)
  for claim in saved["claims"]:
    if claim["quantity"] == "test error (pp)":
      assert claim["low"] <= claim["estimate"] <= claim["high"], claim


def test_paper_grid_splits_are_per_seed_and_shared_across_optimizers():
  paper_grid = _load("paper_grid")
  data = paper_grid.load_data(600, split_seed=None)
  train, test = paper_grid.split_indices(data, [3, 4, 3])
  assert train.shape == (3, 600) and test.shape == (3, 1197)
  np.testing.assert_array_equal(train[0], train[2])  # a seed always draws the same split
  assert not np.array_equal(np.sort(train[0]), np.sort(train[1]))
  for tr, te in zip(train, test, strict=True):
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(1797))
  labels = np.asarray(data.y)
  expected = np.bincount(labels) * 600 / 1797  # stratified: each class in its proportion
  assert np.abs(np.bincount(labels[train[1]]) - expected).max() < 1
  fixed, _ = paper_grid.split_indices(paper_grid.load_data(600), [3, 4])
  np.testing.assert_array_equal(fixed[0], fixed[1])  # the default: one split for all seeds


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
  assert summary["best_lambda_per_row"] == [1e-2, 1e-3, 1e-4]
  assert all(np.isnan(summary["slope_interval"]))  # no interval from one seed
  # A separable landscape: the same λ is best at every learning rate.
  separable = np.full((3, 4, 1), 0.10)
  separable[:, 2] = 0.02
  separable[1, 2] = 0.015
  summary = paper_grid.summarize(separable, lrs, decays)
  assert summary["best_lambda_slope"] == pytest.approx(0.0, abs=1e-9)
  assert summary["best_lr"] == 1e-2 and summary["best_decay"] == 1e-3
  assert summary["near_best_fraction"] == pytest.approx(3 / 9)
  assert summary["no_decay_mean"] == pytest.approx(0.10)


def test_paper_grid_slope_interval_bootstraps_the_seeds():
  paper_grid = _load("paper_grid")
  lrs = np.array([1e-3, 1e-2, 1e-1])
  decays = np.array([0.0, 1e-4, 1e-3, 1e-2])
  # Every seed sees a diagonal valley: every resample does too, the interval is the estimate.
  errors = np.full((3, 4, 5), 0.03)
  errors[0, 3] = errors[1, 2] = errors[2, 1] = 0.02
  summary = paper_grid.summarize(errors, lrs, decays)
  assert summary["slope_interval"] == pytest.approx((-1.0, -1.0))
  # The fifth seed sees a separable landscape instead. A resample drawing it three times or
  # more (probability 5.8 % > 2.5 %) is separable too, so the interval reaches 0.
  errors[0, 3, 4] = errors[2, 1, 4] = 0.03
  errors[:, 2, 4] = 0.02
  summary = paper_grid.summarize(errors, lrs, decays)
  assert summary["best_lambda_slope"] == pytest.approx(-1.0)
  assert summary["slope_interval"] == pytest.approx((-1.0, 0.0), abs=1e-9)


def test_paper_grid_paired_interval_is_scipys_paired_t_interval():
  from scipy import stats

  paper_grid = _load("paper_grid")
  rng = np.random.default_rng(1)
  first, second = rng.normal(2.5, 0.3, 12), rng.normal(2.7, 0.3, 12)
  result = paper_grid.paired_interval(first, second)
  reference = stats.ttest_rel(first, second).confidence_interval(0.95)
  assert result["mean"] == pytest.approx(np.mean(first - second))
  assert (result["low"], result["high"]) == pytest.approx((reference.low, reference.high))
  assert result["wins"] + result["losses"] == 12
  assert paper_grid.verdict(-0.5, -0.1, "AdamW lower", "Adam-L2 lower") == "AdamW lower"
  assert paper_grid.verdict(0.1, 0.5, "AdamW lower", "Adam-L2 lower") == "Adam-L2 lower"
  assert paper_grid.verdict(-0.1, 0.5, "AdamW lower", "Adam-L2 lower").startswith("not resolved")


def test_paper_grid_numbers_contrast_with_their_cells():
  import matplotlib

  paper_grid = _load("paper_grid")
  cmap = matplotlib.colormaps["viridis_r"]
  assert paper_grid.text_colour(cmap(0.0)) == "black"  # the best cells are bright yellow
  assert paper_grid.text_colour(cmap(1.0)) == "white"  # the clipped ones dark purple
  assert paper_grid.text_colour((0.5, 0.5, 0.5, 1.0)) == "black"  # sRGB grey 0.5: L ≈ 0.21
  assert paper_grid.text_colour((0.45, 0.45, 0.45, 1.0)) == "white"  # L ≈ 0.17


# --- decoupled_any -------------------------------------------------------------------------


@pytest.mark.slow
def test_decoupled_any_writes_figures_and_tables(tmp_path):
  # One panel at the tiny size: compiling each panel's vmapped training is most of the cost.
  decoupled_any = _load("decoupled_any")
  out = tmp_path / "decoupled_any"
  result = decoupled_any.main(
    ["--tiny", "--no-progress", "--optimizers", "adabeliefw", "--out", str(out)]
  )
  assert set(result["summaries"]) == {"adabeliefw"}
  for name in ("heatmaps.png", "heatmap_adabeliefw.png"):
    assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
  assert "| AdaBelief-W (schedule coupling) | decoupled |" in (out / "results.md").read_text()
  saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
  config, fam = saved["config"], saved["families"]["adabeliefw"]
  errors = np.asarray(fam["test_error"])
  assert errors.shape == (config["n_lr"], config["n_decay"], config["seeds"])
  assert np.all((errors >= 0) & (errors <= 1)) and fam["summary"]["best_mean"] < 0.8
  assert len(fam["summary"]["best_lambda_per_row"]) == config["n_lr"]


def test_decoupled_any_panels_without_decay_are_the_plain_optimizers():
  # At λ = 0 the L2 and the decoupled panel of each optimizer run the same algorithm; the
  # wrapper multiplies by the learning rate at the end of the chain, so the last bits may differ.
  import optax

  import optax_decay

  decoupled_any = _load("decoupled_any")
  params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.ones(4)}
  grads = jax.tree.map(jnp.cos, params)
  schedule = optax.cosine_decay_schedule(0.01, 10)
  families = {f.key: f for f in decoupled_any.FAMILIES}
  for l2, decoupled in (("adabelief_l2", "adabeliefw"), ("rmsprop_l2", "rmspropw")):
    steps = []
    for key in (l2, decoupled):
      tx = families[key].build(schedule, 0.01, 0.0, optax_decay.decay_mask)
      steps.append(jax.jit(tx.update)(grads, tx.init(params), params)[0])
    for a, b in zip(jax.tree.leaves(steps[0]), jax.tree.leaves(steps[1]), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


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


@pytest.mark.slow
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
  # A PartitionSpec prints as P(...) from jax 0.9.1, as PartitionSpec(...) before.
  spec = r"\s+P(?:artitionSpec)?"
  for section in ("params", "mu", "nu"):
    block = out.split(f"\n{section}:\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"\['layer0'\]\['w'\]" + spec + r"\(None, 'data'\)", block), block
    assert re.search(r"\['layer1'\]\['w'\]" + spec + r"\('data', None\)", block), block
    assert re.search(r"\['layer2'\]\['b'\]" + spec + r"\(\)", block), block
  losses = [float(m) for m in re.findall(r"loss (\d+\.\d+)", out)]
  assert losses[-1] < 0.6 * losses[0], losses
