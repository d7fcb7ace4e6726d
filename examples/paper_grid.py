"""The paper's (learning rate × weight decay) grids, on scikit-learn's handwritten digits.

Loshchilov & Hutter (ICLR 2019, Fig. 2) train the same network over a grid of learning rates and
decay strengths with Adam + L2, AdamW, SGD + L2 and SGDW, and find that (a) with L2 the good
region lies on a *diagonal* (raise the learning rate and the best λ must fall), while decoupled
decay makes the landscape *separable* (the best λ hardly moves with the learning rate), and
(b, c) the decoupled variants reach a lower test error, by a wide margin for Adam.

This script repeats that experiment at laptop scale: a two-hidden-layer Flax NNX MLP with
LayerNorm on the 8×8 digits of `sklearn.datasets.load_digits` (600 training and 1197 test
images, a stratified split drawn per seed), a cosine learning-rate schedule without restarts,
biases and LayerNorm parameters excluded from the decay by `optax_decay.decay_mask`. The
decoupled variants use the paper's coupling, `coupling="schedule"`: each step removes η_t·λ of
every weight, where η_t = lr_t / lr is the schedule multiplier, so the decay does not depend on
the base learning rate. A fifth panel shows AdamW with the PyTorch/optax convention,
`coupling="lr"` (each step removes lr_t·λ), which brings the diagonal back.

Two stages give every claim an interval:

1. The grid: every (lr, λ) cell of every optimizer on `--seeds` seeds. It gives the heatmaps,
   each optimizer's best cell, and the slope of log λ* against log lr (λ* is the best λ > 0 at
   one learning rate) with a 95 % percentile-bootstrap interval over the seeds.
2. The re-run: each optimizer's best cell, and its best λ = 0 cell, again on `--confirm-seeds`
   fresh seeds. A seed fixes the initial weights, the minibatch order and the train/test split,
   the same for every optimizer, so "AdamW − Adam-L2" is a difference per seed; its mean comes
   with a 95 % Student-t interval over those seeds. Fresh seeds keep the grid's lucky picks out
   of the estimate.

A run is bit-identical to the next on the same machine, but another CPU can round differently
(XLA compiles for the host's vector instructions) and training amplifies the last bit, so a
best cell can move and a difference smaller than its interval can change sign.

The grid × seeds of one optimizer is a single compiled program: learning rate, λ and seed are
traced arrays, the runs are `jax.vmap`ped, and the epochs and minibatches are `jax.lax.scan`s.
A few epochs run per jitted call so a progress bar can move between calls.

Outputs (in --out, default out/paper_grid): heatmaps.png (all panels), heatmap_<optimizer>.png
(one panel with its legend), best_lambda.png (λ* against the learning rate, fitted slopes in the
legend), results.md (the tables) and results.json (every per-seed error, the configuration and
the machine).

Run:
  python examples/paper_grid.py            # default: about 90 s on 2 CPU cores
  python examples/paper_grid.py --full     # denser grid, more seeds: about 5 minutes of CPU time
  python examples/paper_grid.py --tiny     # seconds, for smoke tests

References:
  Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019,
  https://arxiv.org/abs/1711.05101
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import textwrap
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import optax_decay

# ---------------------------------------------------------------------------------------------
# The optimizers and their grids
# ---------------------------------------------------------------------------------------------

MOMENTUM = 0.9  # SGD's momentum, as in the paper's SGD(W) runs


@dataclasses.dataclass(frozen=True)
class Family:
  """One optimizer panel: how to build it and which (lr, λ) ranges to sweep.

  The ranges are in decades (log10) and were chosen so that the best cell lies inside the grid.
  L2 and decoupled λ are *different quantities* and get different ranges: L2's λ is the
  coefficient of the penalty λ/2·‖w‖² in the loss, whose effect per step is multiplied by the
  learning rate (and, under Adam, divided by √v̂); a schedule-coupled decoupled λ is the fraction
  of each weight removed per step at the schedule's peak; an lr-coupled one is that fraction
  divided by the learning rate.
  """

  key: str
  title: str
  decay_kind: str  # "L2" or "decoupled"
  lr_decades: tuple[float, float]
  decay_decades: tuple[float, float]
  build: Callable[..., optax.GradientTransformation]  # (schedule, lr, decay, mask) -> tx
  meaning: str


def _adam_l2(schedule, lr, decay, mask):
  del lr  # the schedule already carries the learning rate
  return optax_decay.adam_l2(schedule, l2=decay, mask=mask)


def _adamw_schedule(schedule, lr, decay, mask):
  # The paper's Alg. 2: the decay is multiplied by η_t = schedule(t) / lr, not by lr itself.
  return optax_decay.adamw(
    schedule, weight_decay=decay, mask=mask, coupling="schedule", peak_learning_rate=lr
  )


def _adamw_lr(schedule, lr, decay, mask):
  del lr
  return optax_decay.adamw(schedule, weight_decay=decay, mask=mask, coupling="lr")


def _adams(schedule, lr, decay, mask):
  del lr  # AdamS couples the decay to lr_t, as PyTorch's AdamW does
  return optax_decay.adams(schedule, weight_decay=decay, mask=mask)


def _sgd_l2(schedule, lr, decay, mask):
  del lr
  return optax_decay.sgd_l2(schedule, momentum=MOMENTUM, l2=decay, mask=mask)


def _sgdw_schedule(schedule, lr, decay, mask):
  return optax_decay.sgdw(
    schedule,
    momentum=MOMENTUM,
    weight_decay=decay,
    mask=mask,
    coupling="schedule",
    peak_learning_rate=lr,
  )


FAMILIES: tuple[Family, ...] = (
  Family(
    "adam_l2",
    "Adam-L2",
    "L2",
    (-3.5, -1.0),
    (-4.5, -0.5),
    _adam_l2,
    "λ/2·‖w‖² added to the loss; the penalty's gradient goes through Adam's moments",
  ),
  Family(
    "adamw",
    "AdamW (schedule coupling, paper)",
    "decoupled",
    (-3.5, -1.0),
    (-4.5, -0.5),
    _adamw_schedule,
    "fraction of each weight removed per step, times η_t = lr_t/lr",
  ),
  Family(
    "adamw_lr",
    "AdamW (lr coupling, PyTorch/optax convention)",
    "decoupled",
    (-3.5, -1.0),
    (-1.5, 2.5),
    _adamw_lr,
    "fraction of each weight removed per step, divided by lr_t",
  ),
  Family(
    "sgd_l2",
    "SGD-L2",
    "L2",
    (-3.0, -0.5),
    (-3.5, 0.5),
    _sgd_l2,
    "λ/2·‖w‖² added to the loss; the penalty's gradient goes through the momentum",
  ),
  Family(
    "sgdw",
    "SGDW (schedule coupling, paper)",
    "decoupled",
    (-3.0, -0.5),
    (-4.5, -0.5),
    _sgdw_schedule,
    "fraction of each weight removed per step, times η_t = lr_t/lr",
  ),
)

# Not in the paper, so not run by default: `--optimizers adamw_lr adams` compares AdamS (Xie et
# al. 2023) with the AdamW it modifies. Its decay per step, lr_t·λ/sqrt(mean v̂), is larger than
# AdamW's lr_t·λ by 1/RMS of the gradients, hence a λ range further down.
EXTRA_FAMILIES: tuple[Family, ...] = (
  Family(
    "adams",
    "AdamS (stable decay, lr coupling)",
    "decoupled",
    (-3.5, -1.0),
    (-4.0, 1.0),
    _adams,
    "fraction of each weight removed per step, divided by lr_t/sqrt(mean v̂_t)",
  ),
)

# The comparisons behind the paper's claims: (first, second, label, slope claim, error claim).
# Each is reported as first − second: of the λ* slopes on the grid, of the test errors re-run.
COMPARISONS: tuple[tuple[str, str, str, str, str], ...] = (
  ("adamw", "adam_l2", "AdamW − Adam-L2", "(a) Adam", "(b)"),
  ("sgdw", "sgd_l2", "SGDW − SGD-L2", "(a) SGD", "(c)"),
  ("adamw_lr", "adamw", "AdamW (lr) − AdamW (schedule)", "coupling", "coupling"),
  ("adams", "adamw_lr", "AdamS − AdamW (lr)", "extra", "extra"),  # with --optimizers ... adams
)

# Sizes of the three presets. `n_decay` counts the λ = 0 column (no decay) that every grid
# starts with, so that "does decay help at all?" can be read off the same figure. `seeds` are
# the grid's; `confirm_seeds` are the fresh ones of the re-run.
PRESETS = {
  # tiny: the re-run's 2 cells × 3 seeds are as many runs as the grid's, so nothing recompiles.
  "tiny": dict(n_lr=2, n_decay=3, seeds=1, confirm_seeds=3, epochs=2, hidden=16, chunk_epochs=1),
  "default": dict(
    n_lr=6, n_decay=10, seeds=4, confirm_seeds=16, epochs=24, hidden=64, chunk_epochs=4
  ),
  "full": dict(n_lr=8, n_decay=13, seeds=8, confirm_seeds=48, epochs=24, hidden=64, chunk_epochs=4),
}
CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 2000


def grid(decades: tuple[float, float], n: int, with_zero: bool) -> np.ndarray:
  """`n` log-spaced values over `decades`, the first replaced by 0 when `with_zero`."""
  if not with_zero:
    return np.logspace(decades[0], decades[1], n)
  return np.concatenate([[0.0], np.logspace(decades[0], decades[1], max(n - 1, 1))])


# ---------------------------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------------------------


class Digits(NamedTuple):
  """All 1797 digits scaled to [0, 1], and how to split them into training and test sets."""

  x: jax.Array
  y: jax.Array
  train_size: int
  split_seed: int | None  # None: every seed draws its own split


def load_data(train_size: int, split_seed: int | None = 0) -> Digits:
  """The digits; one fixed stratified split by default, `split_seed=None` for one per seed."""
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = jnp.asarray((x / 16.0).astype(np.float32))
  return Digits(x, jnp.asarray(y.astype(np.int32)), train_size, split_seed)


def split_indices(data: Digits, seeds) -> tuple[np.ndarray, np.ndarray]:
  """Stratified (train, test) example indices per seed, each shaped [seed, examples]."""
  from sklearn.model_selection import train_test_split

  labels = np.asarray(data.y)
  splits = [
    train_test_split(
      np.arange(labels.size),
      train_size=data.train_size,
      random_state=int(seed if data.split_seed is None else data.split_seed),
      stratify=labels,
    )
    for seed in seeds
  ]
  return tuple(np.stack(part).astype(np.int32) for part in zip(*splits, strict=True))


class MLP(nnx.Module):
  """64 → hidden → LayerNorm → ReLU → hidden → LayerNorm → ReLU → 10.

  The LayerNorms make the two hidden kernels scale-invariant, as BatchNorm does for the paper's
  ResNets: the decay then acts through the weights' norm, i.e. through the effective step size,
  which is where L2 and decoupled decay part ways. Without them the decay barely matters here.
  """

  def __init__(self, hidden: int, *, rngs: nnx.Rngs):
    self.hidden1 = nnx.Linear(64, hidden, rngs=rngs)
    self.norm1 = nnx.LayerNorm(hidden, rngs=rngs)
    self.hidden2 = nnx.Linear(hidden, hidden, rngs=rngs)
    self.norm2 = nnx.LayerNorm(hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, 10, rngs=rngs)

  def __call__(self, x):
    x = jax.nn.relu(self.norm1(self.hidden1(x)))
    x = jax.nn.relu(self.norm2(self.hidden2(x)))
    return self.out(x)


# ---------------------------------------------------------------------------------------------
# One compiled program per optimizer: vmap over the grid, scan over epochs and minibatches
# ---------------------------------------------------------------------------------------------


def init_runs(hidden: int, seeds) -> tuple[Any, np.ndarray, np.ndarray]:
  """Initial weights, data-order keys and the seeds themselves, stacked on a leading seed axis.

  Every optimizer starts from the same weights and sees the same minibatch order (and, with
  per-seed splits, the same split) for a given seed, so the panels differ only in the
  optimizer. This runs eagerly: for a handful of seeds that is faster than compiling.
  """
  params, keys = [], []
  for seed in seeds:
    init_key, data_key = jax.random.split(jax.random.key(int(seed)))
    # The parameters travel as a plain dict of arrays; `nnx.merge` puts them back into the model.
    state = nnx.state(MLP(hidden, rngs=nnx.Rngs(init_key)), nnx.Param)
    params.append(jax.tree.map(np.asarray, nnx.to_pure_dict(state)))
    keys.append(np.asarray(jax.random.key_data(data_key)))
  stacked = jax.tree.map(lambda *xs: np.stack(xs), *params)
  return stacked, np.stack(keys), np.asarray(list(seeds), np.int64)


def _graphdef(hidden: int):
  return nnx.graphdef(nnx.eval_shape(lambda: MLP(hidden, rngs=nnx.Rngs(0))))


def make_evaluate(data: Digits, hidden: int):
  """Jitted, vmapped `evaluate(params, train_idx, test_idx) -> (test error, train loss)`."""
  graphdef = _graphdef(hidden)

  def evaluate(params, train_idx, test_idx):
    model = nnx.merge(graphdef, params)
    test_error = jnp.mean(jnp.argmax(model(data.x[test_idx]), -1) != data.y[test_idx])
    logits = model(data.x[train_idx])
    train_loss = optax.softmax_cross_entropy_with_integer_labels(logits, data.y[train_idx]).mean()
    # A diverged run has NaN weights, argmax then picks class 0: count it as all wrong.
    return jnp.where(jnp.isfinite(train_loss), test_error, 1.0), train_loss

  return jax.jit(jax.vmap(evaluate))


def make_programs(
  family: Family, data: Digits, hidden: int, epochs: int, batch_size: int, chunk_epochs: int
):
  """Jitted, vmapped `init_opt(params, lr, decay)` and `train(carry, lr, decay, train_idx, e0)`.

  Every argument but the first epoch `e0` carries a leading axis of runs. The optimizer is built
  *inside* the vmapped functions from the traced lr and λ, so one compilation covers the grid.
  """
  steps_per_epoch = data.train_size // batch_size
  total_steps = epochs * steps_per_epoch
  graphdef = _graphdef(hidden)

  def make_tx(lr, decay):
    schedule = optax.cosine_decay_schedule(lr, total_steps)  # the paper's cosine annealing
    return family.build(schedule, lr, decay, optax_decay.decay_mask)

  def loss_fn(params, x, y):
    logits = nnx.merge(graphdef, params)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def init_opt(params, lr, decay):
    return make_tx(lr, decay).init(params)

  def train(carry, lr, decay, train_idx, first_epoch):
    tx = make_tx(lr, decay)
    params, opt_state, data_key = carry

    def step(state, batch):
      params, opt_state = state
      loss, grads = jax.value_and_grad(loss_fn)(params, data.x[batch], data.y[batch])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    def epoch(state, index):
      # A fresh shuffle per epoch from the seed's key (not from lr or λ): every cell of a seed
      # sees the same minibatches, so cells are compared on equal terms.
      order = jax.random.permutation(jax.random.fold_in(data_key, index), data.train_size)
      batches = train_idx[order[: steps_per_epoch * batch_size]]
      state, losses = jax.lax.scan(step, state, batches.reshape(steps_per_epoch, batch_size))
      return state, losses.mean()

    (params, opt_state), losses = jax.lax.scan(
      epoch, (params, opt_state), first_epoch + jnp.arange(chunk_epochs)
    )
    return (params, opt_state, data_key), losses

  return jax.jit(jax.vmap(init_opt)), jax.jit(jax.vmap(train, in_axes=(0, 0, 0, 0, None)))


def run_cells(
  family, data, lrs, decays, seed_index, start, evaluate, cfg, bar, programs=None
) -> dict[str, np.ndarray]:
  """Trains one run per entry of the flat arrays `lrs`, `decays` and `seed_index`.

  `start` is the output of `init_runs`; `seed_index` picks each run's seed from it. `programs`
  are `make_programs`'s, made here if not given; reused, they compile once per shape.
  """
  init_opt, train = programs or make_programs(
    family, data, cfg.hidden, cfg.epochs, cfg.batch_size, cfg.chunk_epochs
  )
  start_params, key_data, seeds = start
  train_idx, test_idx = (jnp.asarray(a[seed_index]) for a in split_indices(data, seeds))
  lr_v = jnp.asarray(lrs, jnp.float32)
  decay_v = jnp.asarray(decays, jnp.float32)
  params = jax.tree.map(lambda a: a[seed_index], start_params)
  keys = jax.random.wrap_key_data(key_data[seed_index])
  carry = (params, init_opt(params, lr_v, decay_v), keys)
  losses = []
  for first in range(0, cfg.epochs, cfg.chunk_epochs):
    carry, chunk_losses = train(carry, lr_v, decay_v, train_idx, first)
    losses.append(np.asarray(chunk_losses))  # waits for the chunk, so the bar tells the truth
    bar.update(cfg.chunk_epochs)
  test_error, train_loss = (np.asarray(a) for a in evaluate(carry[0], train_idx, test_idx))
  return {
    "test_error": test_error,
    "train_loss": train_loss,
    "epoch_loss": np.concatenate(losses, axis=1),
  }


def run_grid(
  family, data, lrs, decays, start, evaluate, cfg, bar, programs=None
) -> dict[str, np.ndarray]:
  """Trains every (lr, λ, seed) of one family; results come back shaped [lr, λ, seed]."""
  n_seeds = len(start[2])
  lr_g, decay_g, seed_g = np.meshgrid(lrs, decays, np.arange(n_seeds), indexing="ij")
  flat = (lr_g.ravel(), decay_g.ravel(), seed_g.ravel())
  out = run_cells(family, data, *flat, start, evaluate, cfg, bar, programs)
  return {name: a.reshape(*lr_g.shape, *a.shape[1:]) for name, a in out.items()}


def rerun_best(family, summary, data, start, evaluate, cfg, bar, programs=None) -> dict[str, Any]:
  """The grid's best cell and best λ = 0 cell of `family`, trained again on `start`'s seeds."""
  cells = [(summary["best_lr"], summary["best_decay"]), (summary["no_decay_lr"], 0.0)]
  n_seeds = len(start[2])
  lrs, decays = (np.repeat([cell[k] for cell in cells], n_seeds) for k in (0, 1))
  seed_index = np.tile(np.arange(n_seeds), len(cells))
  out = run_cells(family, data, lrs, decays, seed_index, start, evaluate, cfg, bar, programs)
  return {
    "cells": cells,
    "seeds": start[2].tolist(),
    "test_error": out["test_error"].reshape(len(cells), n_seeds),
  }


# ---------------------------------------------------------------------------------------------
# Summaries and intervals: best cell, separability, paired differences
# ---------------------------------------------------------------------------------------------


def _slopes(log_lr: np.ndarray, log_star: np.ndarray, rows: np.ndarray) -> np.ndarray:
  """Least-squares slopes of `log_star` on `log_lr` over the rows where `rows`, batched."""
  weight = rows.astype(float)
  count = weight.sum(-1)
  with np.errstate(invalid="ignore", divide="ignore"):
    dx = log_lr - (weight * log_lr).sum(-1, keepdims=True) / count[..., None]
    dy = log_star - (weight * log_star).sum(-1, keepdims=True) / count[..., None]
    slope = (weight * dx * dy).sum(-1) / (weight * dx * dx).sum(-1)
  return np.where(count >= 2, slope, np.nan)


def landscape(mean: np.ndarray, lrs, decays):
  """(λ* per row, rows to fit, slope) of mean errors shaped [..., lr, λ].

  λ* is the best λ > 0 of a learning-rate row. A row enters the fit when its best error is
  within twice the panel's best plus 1 pp, so that rows where training fails at every λ do not
  add noise.
  """
  positive = np.asarray(decays) > 0
  errors = mean[..., positive]
  star = np.asarray(decays)[positive][errors.argmin(-1)]
  rows = errors.min(-1) <= 2 * mean.min(axis=(-2, -1))[..., None] + 0.01
  return star, rows, _slopes(np.log10(lrs), np.log10(star), rows)


def bootstrap(errors: np.ndarray, lrs, decays, draws: int = BOOTSTRAP_DRAWS):
  """λ* per row and the slope for `draws` resamples of the seeds, with replacement.

  The resamples depend only on the number of seeds, so optimizers run on the same seeds are
  resampled alike and the bootstrap of their slope difference is paired.
  """
  picks = np.random.default_rng(0).integers(errors.shape[-1], size=(draws, errors.shape[-1]))
  means = np.moveaxis(errors[..., picks].mean(-1), -1, 0)  # [draw, lr, λ]
  star, _, slope = landscape(means, lrs, decays)
  return star, slope


def percentile_interval(samples: np.ndarray, level: float = CONFIDENCE) -> tuple[float, float]:
  """The central `level` interval of bootstrap samples; NaN when most of them are undefined."""
  finite = samples[np.isfinite(samples)]
  if finite.size < samples.size / 2:
    return math.nan, math.nan
  lo, hi = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
  return float(lo), float(hi)


def summarize(errors: np.ndarray, lrs, decays) -> dict[str, Any]:
  """Best cell and separability measures from per-seed test errors shaped [lr, λ, seed].

  * `best_lambda_slope`: least-squares slope of log10 λ* against log10 lr (see `landscape`).
    It is about −1 when the good region is a diagonal (λ* ∝ 1/lr, the L2 picture) and about 0
    when it is separable. `slope_rows` says how many rows entered the fit, `slope_interval` is
    the 95 % percentile-bootstrap interval over the seeds (NaN below 3 seeds).
  * `near_best_fraction`: the fraction of λ > 0 cells within 1 pp of the panel's best mean
    error: how wide the good basin is.
  """
  lrs, decays = np.asarray(lrs, float), np.asarray(decays, float)
  n_seeds = errors.shape[-1]
  mean = errors.mean(-1)
  std = errors.std(-1, ddof=1 if n_seeds > 1 else 0)  # sample std over seeds
  i, j = np.unravel_index(np.argmin(mean), mean.shape)
  star, rows, slope = landscape(mean, lrs, decays)
  boot_star, boot_slope = bootstrap(errors, lrs, decays)
  enough = n_seeds >= 3
  row_intervals = [
    percentile_interval(boot_star[:, r]) if enough else (math.nan, math.nan)
    for r in range(len(lrs))
  ]
  best = float(mean.min())
  summary = {
    "best_mean": best,
    "best_std": float(std[i, j]),
    "best_lr": float(lrs[i]),
    "best_decay": float(decays[j]),
    "best_per_seed": errors[i, j].tolist(),
    "best_lambda_slope": float(slope),
    "slope_interval": percentile_interval(boot_slope) if enough else (math.nan, math.nan),
    "slope_rows": int(rows.sum()),
    "best_lambda_per_row": star.tolist(),
    "best_lambda_row_interval": row_intervals,
    "rows_in_fit": rows.tolist(),
    "near_best_fraction": float(np.mean(mean[:, decays > 0] <= best + 0.01)),
  }
  if not (decays > 0).all():
    zero = np.flatnonzero(decays == 0)[0]
    k = int(np.argmin(mean[:, zero]))
    summary["no_decay_mean"] = float(mean[k, zero])
    summary["no_decay_std"] = float(std[k, zero])
    summary["no_decay_lr"] = float(lrs[k])
  return summary


def paired_interval(first, second=None, level: float = CONFIDENCE) -> dict[str, float]:
  """Mean of `first − second` over seeds with its Student-t interval (of `first` alone if None).

  Also counts the seeds where `first` was lower (`wins`) and higher (`losses`).
  """
  from scipy import stats

  diff = np.asarray(first, float) - (0.0 if second is None else np.asarray(second, float))
  n = diff.size
  mean = float(diff.mean())
  half = math.nan
  if n >= 2:
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * diff.std(ddof=1) / math.sqrt(n))
  return {
    "mean": mean,
    "low": mean - half,
    "high": mean + half,
    "n": n,
    "wins": int((diff < 0).sum()),
    "losses": int((diff > 0).sum()),
  }


def verdict(low: float, high: float, if_negative: str, if_positive: str) -> str:
  """What an interval of a difference says: the sign it excludes, or a tie."""
  if not (math.isfinite(low) and math.isfinite(high)):
    return "no interval (too few seeds)"
  if high < 0 or low > 0:
    return if_negative if high < 0 else if_positive
  return "not resolved: the interval includes 0"


def compare(families, results, grids, reruns) -> list[dict[str, Any]]:
  """The rows of the claims table: slope and test-error differences of each comparison."""
  keys = {f.key for f in families}
  rows = []
  for first, second, label, slope_claim, error_claim in COMPARISONS:
    if not {first, second} <= keys:
      continue
    names = label.split(" − ")
    slopes = [bootstrap(results[k]["test_error"], *grids[k])[1] for k in (first, second)]
    point = [landscape(results[k]["test_error"].mean(-1), *grids[k])[2] for k in (first, second)]
    low, high = (
      percentile_interval(slopes[0] - slopes[1])
      if results[first]["test_error"].shape[-1] >= 3
      else (math.nan, math.nan)
    )
    rows.append(
      {
        "claim": slope_claim,
        "comparison": label,
        "quantity": "λ* slope",
        "estimate": float(point[0] - point[1]),
        "low": low,
        "high": high,
        "method": f"grid, {results[first]['test_error'].shape[-1]} seeds, paired bootstrap",
        # A slope nearer 0 is flatter: first − second < 0 means the second is.
        "verdict": verdict(low, high, f"{names[1]} flatter", f"{names[0]} flatter"),
      }
    )
    stats = paired_interval(
      100 * reruns[first]["test_error"][0], 100 * reruns[second]["test_error"][0]
    )
    rows.append(
      {
        "claim": error_claim,
        "comparison": label,
        "quantity": "test error (pp)",
        "estimate": stats["mean"],
        "low": stats["low"],
        "high": stats["high"],
        "method": (
          f"best cells re-run, {stats['n']} fresh seeds, paired t; "
          f"{names[0]} lower on {stats['wins']}, higher on {stats['losses']}"
        ),
        "verdict": verdict(stats["low"], stats["high"], f"{names[0]} lower", f"{names[1]} lower"),
      }
    )
  return rows


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def fmt(value: float) -> str:
  """Compact scientific notation for axis labels and tables: 3e-4, 1e-2, 0."""
  if value == 0:
    return "0"
  mantissa, exponent = f"{value:.1e}".split("e")
  mantissa = mantissa.rstrip("0").rstrip(".")
  return f"{mantissa}e{int(exponent)}"


def signed(value: float, spec: str = "+.2f") -> str:
  """A number with a true minus sign, or a dash when it is undefined."""
  return f"{value:{spec}}".replace("-", "−") if math.isfinite(value) else "—"


def _interval(low: float, high: float, spec: str = "+.2f") -> str:
  if not (math.isfinite(low) and math.isfinite(high)):
    return "—"
  return f"[{signed(low, spec)}, {signed(high, spec)}]"


def table(families, summaries) -> str:
  """The grid results as a Markdown table (errors in percent)."""
  lines = [
    "| optimizer | decay | best test error (%) | best lr | best λ | no decay (%) "
    "| λ* slope [95% interval] (rows) | cells within 1 pp |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for fam in families:
    s = summaries[fam.key]
    no_decay = (
      f"{100 * s['no_decay_mean']:.2f} ± {100 * s['no_decay_std']:.2f}"
      if "no_decay_mean" in s
      else "—"
    )
    interval = _interval(*s.get("slope_interval", (math.nan, math.nan)))
    lines.append(
      f"| {fam.title} | {fam.decay_kind} | {100 * s['best_mean']:.2f} ± "
      f"{100 * s['best_std']:.2f} | {fmt(s['best_lr'])} | {fmt(s['best_decay'])} | "
      f"{no_decay} | {signed(s['best_lambda_slope'])} {interval} ({s['slope_rows']}) | "
      f"{100 * s['near_best_fraction']:.0f}% |"
    )
  return "\n".join(lines)


def rerun_table(families, reruns) -> str:
  """The re-run of each optimizer's best cell and best λ = 0 cell, in percent, with intervals."""
  lines = [
    "| optimizer | best cell (lr, λ) | test error (%) [95% interval] | best λ = 0 cell (lr) "
    "| test error (%) [95% interval] | decay − no decay (pp) [95% interval] |",
    "|---|---|---|---|---|---|",
  ]
  for fam in families:
    rerun = reruns[fam.key]
    errors = 100 * rerun["test_error"]
    best, zero = (paired_interval(e) for e in errors)
    gain = paired_interval(*errors)
    (lr, decay), (zero_lr, _) = rerun["cells"]
    lines.append(
      f"| {fam.title} | {fmt(lr)}, {fmt(decay)} | {best['mean']:.2f} "
      f"{_interval(best['low'], best['high'], '.2f')} | {fmt(zero_lr)} | {zero['mean']:.2f} "
      f"{_interval(zero['low'], zero['high'], '.2f')} | {signed(gain['mean'])} "
      f"{_interval(gain['low'], gain['high'])} |"
    )
  return "\n".join(lines)


def claims_table(rows) -> str:
  lines = [
    "| claim | comparison | quantity | estimate | 95% interval | how | verdict |",
    "|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    lines.append(
      f"| {row['claim']} | {row['comparison']} | {row['quantity']} | "
      f"{signed(row['estimate'])} | {_interval(row['low'], row['high'])} | {row['method']} | "
      f"{row['verdict']} |"
    )
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

RED = "#d62728"
ROW_BEST = dict(marker="v", markersize=7, markerfacecolor=RED, markeredgecolor="white", mew=0.9)
BOX = dict(fill=False, edgecolor=RED, linewidth=2.6)


def save(fig, path: str) -> None:
  """Writes `fig` as a 256-colour PNG: a third of the size or less, the same to the eye."""
  import io

  from PIL import Image  # a dependency of matplotlib

  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  image = Image.open(buffer).convert("RGB")
  image.quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def text_colour(rgba) -> str:
  """Black or white, whichever contrasts more with a cell of colour `rgba` (WCAG luminance)."""
  rgb = np.asarray(rgba[:3], float)
  linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
  # Black and white contrast equally with a luminance of sqrt(1.05 · 0.05) − 0.05 ≈ 0.179.
  return "black" if float(linear @ [0.2126, 0.7152, 0.0722]) > 0.179 else "white"


def _cell_label(value: float) -> str:
  return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 99.95 else "100"


class _Scale(NamedTuple):
  norm: Any
  cmap: Any
  caption: str


def _colour_scale(families, results) -> _Scale:
  import matplotlib.pyplot as plt
  from matplotlib.colors import Normalize

  best = min(100 * float(results[f.key]["test_error"].mean(-1).min()) for f in families)
  # Clip the colour scale so that the basins stay visible next to diverged or untrained cells.
  top = min(max(3 * best, best + 2.0), 100.0)
  why = f"3× the best cell, {best:.2f} %" if top == 3 * best else f"best cell {best:.2f} %"
  caption = f"≥ {top:.1f} %: colours clipped there\n({why})"
  return _Scale(Normalize(best, top), plt.get_cmap("viridis_r"), caption)


def _draw_panel(ax, fam, errors, lrs, decays, scale: _Scale, fontsize: float):
  from matplotlib.patches import Rectangle

  mean = 100 * errors.mean(-1)
  image = ax.imshow(mean, origin="lower", cmap=scale.cmap, norm=scale.norm, aspect="auto")
  ax.set_xticks(range(len(decays)), [fmt(d) for d in decays], rotation=45, ha="right")
  ax.set_yticks(range(len(lrs)), [fmt(v) for v in lrs])
  ax.set_xlabel(f"λ ({fam.decay_kind})")
  ax.set_ylabel("learning rate")
  ax.set_title("\n".join(textwrap.wrap(fam.title, 34)), fontsize=11)
  if fontsize:
    for (r, c), value in np.ndenumerate(mean):
      colour = text_colour(scale.cmap(scale.norm(value)))
      ax.text(
        c, r - 0.1, _cell_label(value), ha="center", va="center", fontsize=fontsize, color=colour
      )
  # Row markers sit at the top of their cells, above the numbers: a vertical line of them means
  # separable, a slanted one means the tuned λ has to move with the learning rate.
  positive = np.flatnonzero(decays > 0)
  best_cols = positive[np.argmin(mean[:, positive], axis=1)]
  ax.plot(best_cols, np.arange(len(lrs)) + 0.3, linestyle="none", **ROW_BEST)
  r, c = np.unravel_index(np.argmin(mean), mean.shape)
  ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, **BOX))
  return image


def _key(scale: _Scale, seeds: int, epochs: int, per_seed_split: bool) -> dict[str, Any]:
  """Keyword arguments of a legend that explains a heatmap: box, markers, colours, numbers."""
  from matplotlib.lines import Line2D
  from matplotlib.patches import Patch

  handles = [
    Patch(facecolor="none", edgecolor=RED, linewidth=2.6, label="best cell of the panel"),
    Line2D([], [], linestyle="none", **ROW_BEST, label="best λ > 0 at this learning rate"),
    Patch(color=scale.cmap(1.0), label=scale.caption),
  ]
  what = "initial weights, minibatch order" + (" and train/test split" if per_seed_split else "")
  plural = "s" * (seeds > 1)
  caption = (
    f"Numbers: final test error (%), mean of {seeds} seed{plural} after {epochs} epochs. "
    f"A seed fixes the {what}, the same in every cell. λ = 0: no decay."
  )
  return dict(
    handles=handles,
    title="\n".join(textwrap.wrap(caption, 46)),
    alignment="left",
    frameon=False,
    fontsize=10,
    title_fontsize=10,
  )


def plot(
  families, results, grids, out_dir: str, epochs: int, seeds: int, per_seed_split: bool = False
) -> list[str]:
  """One figure with a panel per optimizer, plus one file per optimizer; returns the paths.

  Every figure carries its own key (box, markers, colour clipping) and shares one colour scale.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  scale = _colour_scale(families, results)
  key = _key(scale, seeds, epochs, per_seed_split)
  n_lr = max(len(grids[f.key][0]) for f in families)
  n_decay = max(len(grids[f.key][1]) for f in families)
  width, height = max(4.8, 1.6 + 0.42 * n_decay), max(3.6, 1.9 + 0.4 * n_lr)  # inches per panel
  # Numbers sized to their cells: a label of four characters takes about 2.4 font sizes.
  cell = (width - 1.6) * 72 / n_decay
  fontsize = min(9.5, 0.28 * cell) if n_lr * n_decay <= 160 else 0
  paths = []
  with plt.rc_context({"font.size": 10, "xtick.labelsize": 9, "ytick.labelsize": 9}):
    for fam in families:
      fig, ax = plt.subplots(figsize=(width + 1.3, height + 2.2), layout="constrained")
      data = results[fam.key]["test_error"]
      image = _draw_panel(ax, fam, data, *grids[fam.key], scale, fontsize)
      fig.colorbar(image, ax=ax, extend="max", label="test error (%)")
      fig.legend(loc="outside lower center", **key)
      paths.append(os.path.join(out_dir, f"heatmap_{fam.key}.png"))
      save(fig, paths[-1])
      plt.close(fig)

    # A grid of panels, at most 17 inches wide; the key goes into a free slot, or below.
    n = len(families)
    cols = max(1, min(3, n, int(17 // width)))
    rows = math.ceil(n / cols)
    spare = rows * cols > n
    fig, axes = plt.subplots(
      rows,
      cols,
      figsize=(cols * width + 1.2, rows * height + 0.5 + (not spare) * 2.0),
      layout="constrained",
    )
    axes = np.atleast_1d(axes).ravel()
    for ax, fam in zip(axes, families, strict=False):
      image = _draw_panel(ax, fam, results[fam.key]["test_error"], *grids[fam.key], scale, fontsize)
    for ax in axes[n:]:
      ax.axis("off")
    if spare:
      axes[n].legend(loc="center left", borderaxespad=0, **key)
    else:
      fig.legend(loc="outside lower center", **key)
    fig.colorbar(image, ax=axes[:n].tolist(), extend="max", label="test error (%)")
    fig.suptitle("Final test error over the (learning rate, λ) grid", fontsize=13)
    paths.insert(0, os.path.join(out_dir, "heatmaps.png"))
    save(fig, paths[0])
    plt.close(fig)
  return paths


def plot_best_lambda(families, summaries, grids, out_dir: str, seeds: int) -> str:
  """λ* against the learning rate on log axes, a panel per kind of decay; returns the path.

  Each optimizer's λ* is divided by its geometric mean over the fitted rows, so that panels
  whose λ mean different things share one axis and only the slopes are compared (a
  least-squares line passes through that mean).
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  kinds = [k for k in ("L2", "decoupled") if any(f.decay_kind == k for f in families)]
  colours, markers = plt.get_cmap("tab10").colors, "osD^vP"
  with plt.rc_context({"font.size": 10}):
    fig, axes = plt.subplots(
      1,
      len(kinds),
      figsize=(5.4 * len(kinds) + 0.6, 7.0),
      sharey=True,
      layout="constrained",
      squeeze=False,
    )
    for ax, kind in zip(axes[0], kinds, strict=True):
      members = [f for f in families if f.decay_kind == kind]
      all_lrs = []
      for k, fam in enumerate(members):
        index = families.index(fam)
        s, lrs = summaries[fam.key], grids[fam.key][0]
        star, fit = np.asarray(s["best_lambda_per_row"]), np.asarray(s["rows_in_fit"])
        all_lrs.extend(lrs)
        if not fit.any():
          continue
        centre = 10 ** np.log10(star[fit]).mean()
        x = lrs * 10 ** (0.03 * (k - (len(members) - 1) / 2))  # side by side, not on top
        ratio, band = star / centre, np.asarray(s["best_lambda_row_interval"], float) / centre
        yerr = None
        if np.isfinite(band).all():
          # A bootstrap range need not contain the estimate from all seeds: no negative bars.
          yerr = np.maximum(np.stack([ratio - band[:, 0], band[:, 1] - ratio]), 0)[:, fit]
        slope, (low, high) = s["best_lambda_slope"], s["slope_interval"]
        label = f"{fam.title}\nslope {signed(slope)}"
        if math.isfinite(low):
          label += f", 95% interval {_interval(low, high)}"
        style = dict(color=colours[index % 10], marker=markers[index % 6], markersize=7)
        ax.errorbar(
          x[fit], ratio[fit], yerr=yerr, linestyle="none", capsize=3, label=label, **style
        )
        if (~fit).any():
          ax.plot(x[~fit], ratio[~fit], linestyle="none", markerfacecolor="none", **style)
        if math.isfinite(slope):
          ends = np.array([lrs[fit].min(), lrs[fit].max()])
          lr_centre = 10 ** np.log10(lrs[fit]).mean()
          ax.plot(ends, (ends / lr_centre) ** slope, color=style["color"], linewidth=2)
      span = np.array([min(all_lrs) / 1.6, max(all_lrs) * 1.6])
      middle = math.sqrt(span[0] * span[1])
      ax.plot(span, [1, 1], ":", color="0.35", label="slope 0: λ* does not move (separable)")
      ax.plot(span, middle / span, "--", color="0.35", label="slope −1: λ* ∝ 1/lr (diagonal)")
      ax.set(xscale="log", yscale="log", xlim=span, xlabel="learning rate (schedule's peak)")
      ax.set_title("L2 in the gradient" if kind == "L2" else "decoupled decay", fontsize=12)
      ax.grid(True, which="major", color="0.9")
      handles, labels = ax.get_legend_handles_labels()
      order = list(range(2, len(handles))) + [0, 1]  # the optimizers first, the guides last
      ax.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="upper left",
        bbox_to_anchor=(0, -0.12),
        frameon=False,
        fontsize=9,
      )
    axes[0, 0].set_ylabel("λ* ÷ its geometric mean (log scale)")
    fig.suptitle("Best λ > 0 at each learning rate (λ*), and how it moves", fontsize=13)
    fig.supxlabel(
      "\n".join(
        textwrap.wrap(
          f"λ*: the λ > 0 with the lowest mean test error of its learning-rate row ({seeds} "
          "seeds). Bars: 95% bootstrap range over the seeds. Lines: least-squares fits over "
          "the filled points; hollow points are rows where training failed at every λ, left "
          "out of the fit. A slope near −1 means the tuned λ must move with the learning rate "
          "(L2-like coupling), a slope near 0 that it need not (separable).",
          110,
        )
      ),
      fontsize=9,
    )
    path = os.path.join(out_dir, "best_lambda.png")
    save(fig, path)
    plt.close(fig)
  return path


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--full", action="store_true", help="denser grid, more grid and fresh seeds")
  size.add_argument("--tiny", action="store_true", help="a seconds-long smoke run")
  parser.add_argument("--out", default=os.path.join("out", "paper_grid"))
  parser.add_argument("--seeds", type=int, help="seeds per grid cell")
  parser.add_argument(
    "--confirm-seeds", type=int, help="fresh seeds for the re-run of the best cells (at least 2)"
  )
  parser.add_argument("--epochs", type=int)
  parser.add_argument("--n-lr", type=int, help="learning rates per grid")
  parser.add_argument("--n-decay", type=int, help="λ values per grid, the λ = 0 column included")
  parser.add_argument("--hidden", type=int, help="width of the two hidden layers")
  parser.add_argument("--chunk-epochs", type=int, help="epochs per jitted call (progress step)")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument(
    "--train-size",
    type=int,
    default=600,
    help="training examples; the other digits (of 1797) are the test set",
  )
  parser.add_argument(
    "--optimizers",
    nargs="+",
    choices=[f.key for f in FAMILIES + EXTRA_FAMILIES],
    default=[f.key for f in FAMILIES],
    help="which grids to run (default: the paper's five; 'adams' is an extra)",
  )
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)
  preset = PRESETS["full" if args.full else "tiny" if args.tiny else "default"]
  for name, value in preset.items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  if args.confirm_seeds < 2:
    parser.error("--confirm-seeds: an interval needs at least 2 seeds")
  if args.epochs % args.chunk_epochs:
    # Unequal chunks would compile a second training program; use the largest divisor instead.
    args.chunk_epochs = max(d for d in range(1, args.chunk_epochs + 1) if args.epochs % d == 0)
  return args


def machine() -> dict[str, Any]:
  """What the numbers were computed on: other CPUs round differently."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return {
    "cpu": cpu,
    "cores": os.cpu_count(),
    "jax": jax.__version__,
    "backend": jax.default_backend(),
  }


NOTES = """\
Grid: the best (lr, λ) cell, test error as mean ± sample std over the grid's seeds. The cell is
chosen on those test sets, so this is optimistic; the re-run below is not. 'no decay': the best
lr with λ = 0. 'λ* slope': d log10 λ*/d log10 lr of the best λ > 0 per learning rate, over the
rows (count in brackets) whose best error is within 2× the panel's best + 1 pp; ≈ −1 is a
diagonal valley, ≈ 0 a separable landscape; its interval is a 95% percentile bootstrap over
the grid's seeds (2000 resamples with replacement; none below 3 seeds). 'cells within 1 pp':
share of λ > 0 cells within 1 percentage point of the best.

Re-run: each optimizer's best cell and best λ = 0 cell trained again on fresh seeds; a seed
fixes the initial weights, the minibatch order and the train/test split, the same for every
optimizer. Errors: mean over those seeds with a 95% Student-t interval; 'decay − no decay' and
the comparisons below are paired by seed.

Claims: 'first − second'. λ* slope: the paired bootstrap over the grid's seeds (the same
resamples for both). Test error: the paired differences of the re-run, mean with a 95%
Student-t interval. 'Not resolved' means the interval includes 0: a tie at this precision.
Runs are bit-identical on one machine; another CPU rounds differently, so expect estimates to
move within their intervals."""


def main(argv=None) -> dict[str, Any]:
  """Runs the grids and the re-runs, writes figures and tables to --out, returns the summaries."""
  from tqdm.auto import tqdm

  t0 = time.perf_counter()
  args = parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  families = [f for f in FAMILIES + EXTRA_FAMILIES if f.key in args.optimizers]
  data = load_data(args.train_size, split_seed=None)
  start = init_runs(args.hidden, range(args.seeds))
  fresh = init_runs(args.hidden, range(args.seeds, args.seeds + args.confirm_seeds))
  evaluate = make_evaluate(data, args.hidden)
  grids = {
    f.key: (
      grid(f.lr_decades, args.n_lr, with_zero=False),
      grid(f.decay_decades, args.n_decay, with_zero=True),
    )
    for f in families
  }
  runs = args.n_lr * args.n_decay * args.seeds
  steps = args.epochs * (args.train_size // args.batch_size)
  setup = (
    f"{len(families)} optimizers × {args.n_lr} lr × {args.n_decay} λ × {args.seeds} seeds "
    f"= {runs} runs each, then each optimizer's best cell and best λ = 0 cell on "
    f"{args.confirm_seeds} fresh seeds; {args.epochs} epochs ({steps} steps) of batch "
    f"{args.batch_size}, cosine schedule; LayerNorm MLP 64-{args.hidden}-{args.hidden}-10 "
    f"trained on {args.train_size} digits and tested on the other {1797 - args.train_size}, "
    "a stratified split per seed"
  )
  print(setup)

  results, reruns, stages = {}, {}, {"setup": time.perf_counter() - t0}
  sizes = (args.hidden, args.epochs, args.batch_size, args.chunk_epochs)
  programs = {f.key: make_programs(f, data, *sizes) for f in families}
  total = 2 * len(families) * args.epochs
  with tqdm(total=total, unit="epoch", disable=args.no_progress) as bar:
    for fam in families:
      bar.set_description(f"{fam.key} grid")
      results[fam.key] = run_grid(
        fam, data, *grids[fam.key], start, evaluate, args, bar, programs[fam.key]
      )
    summaries = {f.key: summarize(results[f.key]["test_error"], *grids[f.key]) for f in families}
    stages["grid"] = time.perf_counter() - t0 - sum(stages.values())
    for fam in families:
      bar.set_description(f"{fam.key} re-run")
      reruns[fam.key] = rerun_best(
        fam, summaries[fam.key], data, fresh, evaluate, args, bar, programs[fam.key]
      )
    stages["rerun"] = time.perf_counter() - t0 - sum(stages.values())

  claims = compare(families, results, grids, reruns)
  figures = plot(families, results, grids, args.out, args.epochs, args.seeds, per_seed_split=True)
  figures.append(plot_best_lambda(families, summaries, grids, args.out, args.seeds))
  stages["figures"] = time.perf_counter() - t0 - sum(stages.values())
  elapsed = time.perf_counter() - t0

  md = "\n\n".join(
    [
      f"## The grid ({args.seeds} seeds)\n\n{table(families, summaries)}",
      f"## The best cells re-run ({args.confirm_seeds} fresh seeds)\n\n"
      + rerun_table(families, reruns),
      f"## The claims\n\n{claims_table(claims)}" if claims else "",
    ]
  ).strip()
  meanings = "\n".join(f"- {f.title}: λ is the {f.meaning}." for f in families)
  notes = (
    f"{NOTES}\n\nWhat λ means per panel (the grids differ because the quantities do):\n{meanings}"
  )
  host = machine()
  with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
    f.write(
      f"# Digits (lr, λ) grids\n\n{setup}.\n\n{md}\n\n{notes}\n\nWall time: {elapsed:.1f} s on "
      f"{host['cpu']} ({host['cores']} cores), JAX {host['jax']}.\n"
    )
  with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
    config = {k: v for k, v in vars(args).items() if k != "optimizers"}
    json.dump(
      {
        "config": config,
        "machine": host,
        "wall_time_s": elapsed,
        "stage_times_s": stages,
        "families": {
          f.key: {
            "title": f.title,
            "lrs": grids[f.key][0].tolist(),
            "decays": grids[f.key][1].tolist(),
            "test_error": results[f.key]["test_error"].tolist(),
            "train_loss": results[f.key]["train_loss"].tolist(),
            "epoch_loss_seed_mean": results[f.key]["epoch_loss"].mean(2).tolist(),
            "summary": summaries[f.key],
            "rerun": {**reruns[f.key], "test_error": reruns[f.key]["test_error"].tolist()},
          }
          for f in families
        },
        "claims": claims,
      },
      f,
      indent=1,
      allow_nan=True,
    )

  print(f"\n{md}\n\n{notes}")
  print(f"\nwrote {', '.join(figures)}, results.md, results.json to {args.out}")
  print(f"wall time {elapsed:.1f} s ({', '.join(f'{k} {v:.0f} s' for k, v in stages.items())})")
  return {
    "summaries": summaries,
    "reruns": reruns,
    "claims": claims,
    "figures": figures,
    "wall_time_s": elapsed,
    "out": args.out,
    "table": md,
  }


if __name__ == "__main__":
  main()
