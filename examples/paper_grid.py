"""The paper's (learning rate × weight decay) grids, on scikit-learn's handwritten digits.

Loshchilov & Hutter (ICLR 2019, Fig. 2) train the same network over a grid of learning rates and
decay strengths with Adam + L2, AdamW, SGD + L2 and SGDW, and find that (a) with L2 the good
region lies on a *diagonal* (raise the learning rate and the best λ must fall), while decoupled
decay makes the landscape *separable* (the best λ hardly moves with the learning rate), and
(b, c) the decoupled variants reach a lower test error, by a wide margin for Adam.

This script repeats that experiment at laptop scale: a two-hidden-layer Flax NNX MLP with
LayerNorm on the 8×8 digits of `sklearn.datasets.load_digits` (fixed, stratified split: 600
training and 1197 test images), a cosine learning-rate schedule without restarts, biases and
LayerNorm parameters excluded from the decay by `optax_decay.decay_mask`. The decoupled variants
use the paper's coupling, `coupling="schedule"`: each step removes η_t·λ of every weight, where
η_t = lr_t / lr is the schedule multiplier, so the decay does not depend on the base learning
rate. A fifth panel shows AdamW with the PyTorch/optax convention, `coupling="lr"` (each step
removes lr_t·λ), which brings the diagonal back.

The whole grid × seeds of one optimizer is a single compiled program: learning rate, λ and seed
are traced arrays, the runs are `jax.vmap`ped, and the epochs and minibatches are
`jax.lax.scan`s. A few epochs run per jitted call so a progress bar can move between calls.

Outputs (in --out, default out/paper_grid): heatmaps.png (all panels), heatmap_<optimizer>.png,
results.md (the table below), results.json (per-seed errors and the configuration).

Run:
  python examples/paper_grid.py            # default grid, about 2 minutes on 2 CPU cores
  python examples/paper_grid.py --full     # denser grid, more seeds and epochs
  python examples/paper_grid.py --tiny     # a few seconds, for smoke tests

References:
  Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019,
  https://arxiv.org/abs/1711.05101
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

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

# Sizes of the three presets. `n_decay` counts the λ = 0 column (no decay) that every grid
# starts with, so that "does decay help at all?" can be read off the same figure.
PRESETS = {
  "tiny": dict(n_lr=2, n_decay=3, seeds=1, epochs=2, hidden=16, chunk_epochs=1),
  "default": dict(n_lr=6, n_decay=10, seeds=3, epochs=32, hidden=128, chunk_epochs=4),
  "full": dict(n_lr=8, n_decay=13, seeds=4, epochs=60, hidden=128, chunk_epochs=5),
}


def grid(decades: tuple[float, float], n: int, with_zero: bool) -> np.ndarray:
  """`n` log-spaced values over `decades`, the first replaced by 0 when `with_zero`."""
  if not with_zero:
    return np.logspace(decades[0], decades[1], n)
  return np.concatenate([[0.0], np.logspace(decades[0], decades[1], max(n - 1, 1))])


# ---------------------------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------------------------


def load_data(train_size: int, split_seed: int = 0):
  """Digits scaled to [0, 1], split into a fixed stratified train and test set."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  x_tr, x_te, y_tr, y_te = train_test_split(
    x, y, train_size=train_size, random_state=split_seed, stratify=y
  )
  return tuple(jnp.asarray(a) for a in (x_tr, y_tr.astype(np.int32), x_te, y_te.astype(np.int32)))


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


def init_runs(hidden: int, seeds) -> tuple[Any, np.ndarray]:
  """Initial weights and data-order keys per seed, stacked on a leading seed axis.

  Every optimizer starts from the same weights and sees the same minibatch order for a given
  seed, so the panels differ only in the optimizer. This runs eagerly: for a handful of seeds
  that is faster than compiling an initializer.
  """
  params, keys = [], []
  for seed in seeds:
    init_key, data_key = jax.random.split(jax.random.key(int(seed)))
    # The parameters travel as a plain dict of arrays; `nnx.merge` puts them back into the model.
    state = nnx.state(MLP(hidden, rngs=nnx.Rngs(init_key)), nnx.Param)
    params.append(jax.tree.map(np.asarray, nnx.to_pure_dict(state)))
    keys.append(np.asarray(jax.random.key_data(data_key)))
  return jax.tree.map(lambda *xs: np.stack(xs), *params), np.stack(keys)


def make_evaluate(data, hidden: int):
  """Jitted, vmapped `evaluate(params) -> (test error, train loss)`; shared by all optimizers."""
  x_train, y_train, x_test, y_test = data
  graphdef = _graphdef(hidden)

  def evaluate(params):
    model = nnx.merge(graphdef, params)
    test_error = jnp.mean(jnp.argmax(model(x_test), -1) != y_test)
    train_loss = optax.softmax_cross_entropy_with_integer_labels(model(x_train), y_train).mean()
    # A diverged run has NaN weights, argmax then picks class 0: count it as all wrong.
    return jnp.where(jnp.isfinite(train_loss), test_error, 1.0), train_loss

  return jax.jit(jax.vmap(evaluate))


def _graphdef(hidden: int):
  return nnx.graphdef(nnx.eval_shape(lambda: MLP(hidden, rngs=nnx.Rngs(0))))


def make_programs(
  family: Family, data, hidden: int, epochs: int, batch_size: int, chunk_epochs: int
):
  """Jitted, vmapped `init_opt(params, lr, decay)` and `train(carry, lr, decay, first_epoch)`.

  Every argument but `first_epoch` carries a leading axis of runs. The optimizer is built
  *inside* the vmapped functions from the traced lr and λ, so one compilation covers the grid.
  """
  x_train, y_train = data[:2]
  n_train = x_train.shape[0]
  steps_per_epoch = n_train // batch_size
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

  def train(carry, lr, decay, first_epoch):
    tx = make_tx(lr, decay)
    params, opt_state, data_key = carry

    def step(state, batch):
      params, opt_state = state
      loss, grads = jax.value_and_grad(loss_fn)(params, x_train[batch], y_train[batch])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    def epoch(state, index):
      # A fresh shuffle per epoch from the seed's key (not from lr or λ): every cell of a seed
      # sees the same minibatches, so cells are compared on equal terms.
      order = jax.random.permutation(jax.random.fold_in(data_key, index), n_train)
      batches = order[: steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)
      state, losses = jax.lax.scan(step, state, batches)
      return state, losses.mean()

    (params, opt_state), losses = jax.lax.scan(
      epoch, (params, opt_state), first_epoch + jnp.arange(chunk_epochs)
    )
    return (params, opt_state, data_key), losses

  return jax.jit(jax.vmap(init_opt)), jax.jit(jax.vmap(train, in_axes=(0, 0, 0, None)))


def run_grid(family: Family, data, lrs, decays, start, evaluate, cfg, bar) -> dict[str, Any]:
  """Trains every (lr, λ, seed) of one family; results come back shaped [lr, λ, seed].

  `start` is the output of `init_runs`: (params, data-key bits) with a leading seed axis.
  """
  init_opt, train = make_programs(
    family, data, cfg.hidden, cfg.epochs, cfg.batch_size, cfg.chunk_epochs
  )
  n_seeds = jax.tree.leaves(start)[0].shape[0]
  lr_g, decay_g, seed_g = np.meshgrid(lrs, decays, np.arange(n_seeds), indexing="ij")
  lr_v = jnp.asarray(lr_g.ravel(), jnp.float32)
  decay_v = jnp.asarray(decay_g.ravel(), jnp.float32)
  params, key_data = jax.tree.map(lambda a: a[seed_g.ravel()], start)
  carry = (params, init_opt(params, lr_v, decay_v), jax.random.wrap_key_data(key_data))
  losses = []
  for first in range(0, cfg.epochs, cfg.chunk_epochs):
    carry, chunk_losses = train(carry, lr_v, decay_v, first)
    losses.append(np.asarray(chunk_losses))  # waits for the chunk, so the bar tells the truth
    bar.update(cfg.chunk_epochs)
  test_error, train_loss = (np.asarray(a) for a in evaluate(carry[0]))
  shape = lr_g.shape
  return {
    "test_error": test_error.reshape(shape),
    "train_loss": train_loss.reshape(shape),
    "epoch_loss": np.concatenate(losses, axis=1).reshape(*shape, cfg.epochs),
  }


# ---------------------------------------------------------------------------------------------
# Summaries: best cell, separability
# ---------------------------------------------------------------------------------------------


def summarize(errors: np.ndarray, lrs, decays) -> dict[str, Any]:
  """Best cell and two separability measures from per-seed test errors shaped [lr, λ, seed].

  * `best_lambda_slope`: least-squares slope of log10 λ*(lr) against log10 lr, where λ*(lr) is
    the best nonzero λ of one learning-rate row. It is about −1 when the good region is a
    diagonal (λ* ∝ 1/lr, the L2 picture) and about 0 when it is separable (λ* does not depend on
    lr). Only rows whose best error is within twice the panel's best (plus 1 pp) enter, so that
    rows where training fails at every λ do not add noise; `slope_rows` says how many did.
  * `near_best_fraction`: the fraction of nonzero-λ cells within 1 pp of the panel's best
    mean error: how wide the good basin is.
  """
  mean = errors.mean(-1)
  std = errors.std(-1, ddof=1 if errors.shape[-1] > 1 else 0)  # sample std over seeds
  i, j = np.unravel_index(np.argmin(mean), mean.shape)
  positive = decays > 0
  pos_mean = mean[:, positive]
  pos_decays = decays[positive]
  best = float(mean.min())
  rows = [r for r in range(len(lrs)) if pos_mean[r].min() <= 2 * best + 0.01]
  slope = float("nan")
  if len(rows) >= 2:
    log_lr = np.log10(np.asarray(lrs)[rows])
    log_star = np.log10(pos_decays[np.argmin(pos_mean[rows], axis=1)])
    slope = float(np.polyfit(log_lr, log_star, 1)[0])
  summary = {
    "best_mean": best,
    "best_std": float(std[i, j]),
    "best_lr": float(lrs[i]),
    "best_decay": float(decays[j]),
    "best_per_seed": errors[i, j].tolist(),
    "best_lambda_slope": slope,
    "slope_rows": len(rows),
    "near_best_fraction": float(np.mean(pos_mean <= best + 0.01)),
  }
  if not positive.all():
    zero = mean[:, ~positive][:, 0]
    k = int(np.argmin(zero))
    summary["no_decay_mean"] = float(zero[k])
    summary["no_decay_std"] = float(std[k, np.flatnonzero(~positive)[0]])
    summary["no_decay_lr"] = float(lrs[k])
  return summary


def fmt(value: float) -> str:
  """Compact scientific notation for axis labels and tables: 3e-4, 1e-2, 0."""
  if value == 0:
    return "0"
  mantissa, exponent = f"{value:.1e}".split("e")
  mantissa = mantissa.rstrip("0").rstrip(".")
  return f"{mantissa}e{int(exponent)}"


def table(families, summaries) -> str:
  """The results as a Markdown table (errors in percent)."""
  lines = [
    "| optimizer | decay | best test error (%) | best lr | best λ | no decay (%) "
    "| λ* slope (rows) | cells within 1 pp |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for fam in families:
    s = summaries[fam.key]
    no_decay = (
      f"{100 * s['no_decay_mean']:.2f} ± {100 * s['no_decay_std']:.2f}"
      if "no_decay_mean" in s
      else "—"
    )
    lines.append(
      f"| {fam.title} | {fam.decay_kind} | {100 * s['best_mean']:.2f} ± "
      f"{100 * s['best_std']:.2f} | {fmt(s['best_lr'])} | {fmt(s['best_decay'])} | "
      f"{no_decay} | {s['best_lambda_slope']:+.2f} ({s['slope_rows']}) | "
      f"{100 * s['near_best_fraction']:.0f}% |"
    )
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _draw_panel(ax, fam, errors, lrs, decays, vmin, vmax, annotate):
  mean = 100 * errors.mean(-1)
  image = ax.imshow(mean, origin="lower", cmap="viridis_r", vmin=vmin, vmax=vmax, aspect="auto")
  ax.set_xticks(range(len(decays)), [fmt(d) for d in decays], rotation=45, fontsize=7)
  ax.set_yticks(range(len(lrs)), [fmt(v) for v in lrs], fontsize=7)
  ax.set_xlabel(f"λ ({fam.decay_kind})", fontsize=8)
  ax.set_ylabel("learning rate", fontsize=8)
  ax.set_title(fam.title, fontsize=9)
  if annotate:
    for (r, c), value in np.ndenumerate(mean):
      light = value > vmin + 0.6 * (vmax - vmin)
      ax.text(
        c,
        r,
        f"{value:.1f}",
        ha="center",
        va="center",
        fontsize=6,
        color="black" if light else "white",
      )
  # The best nonzero λ of each row: a vertical line of dots means separable, a slanted one
  # means the tuned λ has to move with the learning rate.
  positive = np.flatnonzero(decays > 0)
  best_cols = positive[np.argmin(mean[:, positive], axis=1)]
  ax.plot(best_cols, range(len(lrs)), "o", ms=4, mfc="none", mec="red", mew=1.2)
  r, c = np.unravel_index(np.argmin(mean), mean.shape)
  ax.add_patch(_rect(c, r))
  return image


def _rect(c, r):
  from matplotlib.patches import Rectangle

  return Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="red", lw=2)


def plot(families, results, grids, out_dir: str, epochs: int, seeds: int) -> list[str]:
  """One figure with a panel per optimizer, plus one file per optimizer; returns the paths."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  all_means = [100 * results[f.key]["test_error"].mean(-1) for f in families]
  vmin = min(float(m.min()) for m in all_means)
  # Clip the colour scale so that the basins stay visible next to diverged or untrained cells.
  vmax = max(vmin + 2.0, min(3 * vmin, 100.0))
  annotate = max(len(g[0]) * len(g[1]) for g in grids.values()) <= 120
  caption = (
    f"final test error (%), mean of {seeds} seeds, {epochs} epochs; "
    "box: best cell, circles: best λ>0 per learning rate"
  )
  paths = []

  fig, axes = plt.subplots(
    1, len(families), figsize=(4.2 * len(families), 4.4), constrained_layout=True, squeeze=False
  )
  for ax, fam in zip(axes[0], families, strict=True):
    image = _draw_panel(
      ax, fam, results[fam.key]["test_error"], *grids[fam.key], vmin, vmax, annotate
    )
  fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, extend="max", label="test error (%)")
  fig.suptitle("Digits, LayerNorm MLP, cosine schedule: " + caption, fontsize=10)
  paths.append(os.path.join(out_dir, "heatmaps.png"))
  fig.savefig(paths[-1], dpi=110)
  plt.close(fig)

  for fam in families:
    fig, ax = plt.subplots(figsize=(5, 4.4), constrained_layout=True)
    image = _draw_panel(
      ax, fam, results[fam.key]["test_error"], *grids[fam.key], vmin, vmax, annotate
    )
    fig.colorbar(image, ax=ax, extend="max", label="test error (%)")
    paths.append(os.path.join(out_dir, f"heatmap_{fam.key}.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
  return paths


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--full", action="store_true", help="denser grid, more seeds and epochs")
  size.add_argument("--tiny", action="store_true", help="a seconds-long smoke run")
  parser.add_argument("--out", default=os.path.join("out", "paper_grid"))
  parser.add_argument("--seeds", type=int, help="seeds per grid cell")
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
  if args.epochs % args.chunk_epochs:
    # Unequal chunks would compile a second training program; use the largest divisor instead.
    args.chunk_epochs = max(d for d in range(1, args.chunk_epochs + 1) if args.epochs % d == 0)
  return args


def main(argv=None) -> dict[str, Any]:
  """Runs the grids, writes figures and tables to --out, and returns the summaries."""
  from tqdm.auto import tqdm

  t0 = time.perf_counter()
  args = parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  families = [f for f in FAMILIES + EXTRA_FAMILIES if f.key in args.optimizers]
  data = load_data(args.train_size)
  start = init_runs(args.hidden, range(args.seeds))
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
    f"= {runs} runs each, {args.epochs} epochs ({steps} steps) of batch {args.batch_size}, "
    f"cosine schedule; LayerNorm MLP 64-{args.hidden}-{args.hidden}-10 trained on "
    f"{args.train_size} digits, tested on {1797 - args.train_size}"
  )
  print(setup)

  results = {}
  with tqdm(total=len(families) * args.epochs, unit="epoch", disable=args.no_progress) as bar:
    for fam in families:
      bar.set_description(fam.key)
      results[fam.key] = run_grid(fam, data, *grids[fam.key], start, evaluate, args, bar)

  summaries = {f.key: summarize(results[f.key]["test_error"], *grids[f.key]) for f in families}
  figures = plot(families, results, grids, args.out, args.epochs, args.seeds)
  elapsed = time.perf_counter() - t0

  md = table(families, summaries)
  meanings = "\n".join(f"- {f.title}: λ is the {f.meaning}." for f in families)
  notes = (
    "Test error of the best (lr, λ) cell, mean ± sample std over seeds (the best of many "
    "noisy cells is optimistically biased; compare panels, not absolute values). 'no decay': "
    "best lr with "
    "λ = 0. 'λ* slope': d log10 λ*/d log10 lr of the best λ > 0 per learning rate, over the "
    "rows (count in brackets) whose best error is within 2× the panel's best + 1 pp; ≈ −1 is a "
    "diagonal valley, ≈ 0 a separable landscape. 'cells within 1 pp': share of λ > 0 cells "
    "within 1 percentage point of the best.\n\nWhat λ means per panel (the grids differ "
    f"because the quantities do):\n{meanings}"
  )
  with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
    f.write(
      f"# Digits (lr, λ) grids\n\n{setup}.\n\n{md}\n\n{notes}\n\nWall time: {elapsed:.1f} s.\n"
    )
  with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
    config = {k: v for k, v in vars(args).items() if k != "optimizers"}
    json.dump(
      {
        "config": config,
        "wall_time_s": elapsed,
        "families": {
          f.key: {
            "title": f.title,
            "lrs": grids[f.key][0].tolist(),
            "decays": grids[f.key][1].tolist(),
            "test_error": results[f.key]["test_error"].tolist(),
            "train_loss": results[f.key]["train_loss"].tolist(),
            "epoch_loss_seed_mean": results[f.key]["epoch_loss"].mean(2).tolist(),
            "summary": summaries[f.key],
          }
          for f in families
        },
      },
      f,
      indent=1,
      allow_nan=True,
    )

  print()
  print(md)
  print()
  print(notes)
  print(f"\nwrote {', '.join(figures)}, results.md, results.json to {args.out}")
  print(f"wall time {elapsed:.1f} s")
  return {
    "summaries": summaries,
    "figures": figures,
    "wall_time_s": elapsed,
    "out": args.out,
    "table": md,
  }


if __name__ == "__main__":
  main()
