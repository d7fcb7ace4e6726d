"""Decoupled decay for optimizers Optax ships without it: AdaBelief-W and RMSprop-W on digits.

`optax_decay.with_decoupled_decay` gives any Optax optimizer whose step is its learning rate times
a direction a decoupled weight decay. Optax has no AdaBelief-W or RMSprop-W; this script builds
both and trains each next to its L2 version, `optax.chain(optax_decay.add_l2_to_grads(λ),
optax.adabelief(lr))`, over a grid of learning rates and decays, in the setting of
`examples/paper_grid.py` (whose data, model, vmapped training, summaries and figures it reuses):
a LayerNorm MLP on scikit-learn's 8×8 digits, a cosine learning-rate schedule, biases and
LayerNorm parameters spared by `optax_decay.decay_mask`.

The question is the paper's (Loshchilov & Hutter, ICLR 2019, Fig. 2): is the (lr, λ) landscape
*separable* with decoupled decay (the best λ does not move with the learning rate) and
*diagonal* with L2 (raise the learning rate and the best λ must fall)? The paper showed it for
SGD and Adam. Here the decoupled variants use its coupling, `coupling="schedule"`: each step
removes η_t·λ of every decayed weight, η_t = lr_t / lr the schedule multiplier. The summary
reports, per optimizer, the best cell and the slope of log10 λ* against log10 lr (≈ 0 separable,
≈ −1 diagonal).

Outputs (in --out, default out/decoupled_any): heatmaps.png (all panels), heatmap_<optimizer>.png,
results.md, results.json.

Run:
  python examples/decoupled_any.py            # about a minute on 2 CPU cores
  python examples/decoupled_any.py --full     # the paper_grid default grid: more seeds, epochs
  python examples/decoupled_any.py --tiny     # a few seconds, for smoke tests

References:
  Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019,
  https://arxiv.org/abs/1711.05101
  Zhuang et al., AdaBelief Optimizer, NeurIPS 2020, https://arxiv.org/abs/2010.07468
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np
import optax

import optax_decay

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper_grid  # noqa: E402 -- the grid machinery, shared with the paper's reproduction
from paper_grid import Family  # noqa: E402

# Wrapped once: wrapping checks (on a small probe) that the optimizer's step is its learning
# rate times a direction, and that check must not run inside the traced training program.
adabeliefw = optax_decay.with_decoupled_decay(optax.adabelief)
rmspropw = optax_decay.with_decoupled_decay(optax.rmsprop)


def _l2(optimizer):
  def build(schedule, lr, decay, mask):
    del lr  # the schedule carries the learning rate
    return optax.chain(optax_decay.add_l2_to_grads(decay, mask), optimizer(schedule))

  return build


def _decoupled(wrapped):
  def build(schedule, lr, decay, mask):
    # The paper's coupling: the decay follows η_t = schedule(t) / lr, not lr itself.
    return wrapped(
      schedule, weight_decay=decay, mask=mask, coupling="schedule", peak_learning_rate=lr
    )

  return build


L2_MEANING = "λ/2·‖w‖² added to the loss; its gradient goes through the optimizer's scaling"
DECOUPLED_MEANING = "fraction of each weight removed per step, times η_t = lr_t/lr"

# One learning-rate range for all four (where both optimizers train in the default epochs); L2's
# λ and the decoupled λ are different quantities, but here their useful ranges overlap.
LR_DECADES = (-3.0, -1.25)
FAMILIES: tuple[Family, ...] = (
  Family(
    "adabelief_l2", "AdaBelief-L2", "L2", LR_DECADES, (-4.5, -0.5), _l2(optax.adabelief), L2_MEANING
  ),
  Family(
    "adabeliefw",
    "AdaBelief-W (schedule coupling)",
    "decoupled",
    LR_DECADES,
    (-4.5, -1.0),
    _decoupled(adabeliefw),
    DECOUPLED_MEANING,
  ),
  Family(
    "rmsprop_l2", "RMSprop-L2", "L2", LR_DECADES, (-4.5, -0.5), _l2(optax.rmsprop), L2_MEANING
  ),
  Family(
    "rmspropw",
    "RMSprop-W (schedule coupling)",
    "decoupled",
    LR_DECADES,
    (-4.5, -1.0),
    _decoupled(rmspropw),
    DECOUPLED_MEANING,
  ),
)

PRESETS = {
  "tiny": dict(n_lr=2, n_decay=3, seeds=1, epochs=2, hidden=16, chunk_epochs=1),
  "default": dict(n_lr=5, n_decay=8, seeds=2, epochs=24, hidden=64, chunk_epochs=4),
  "full": dict(n_lr=6, n_decay=10, seeds=3, epochs=32, hidden=128, chunk_epochs=4),
}


def best_lambda_per_row(errors: np.ndarray, decays: np.ndarray) -> list[float]:
  """The best λ > 0 of each learning-rate row (mean over seeds)."""
  positive = np.flatnonzero(decays > 0)
  mean = errors.mean(-1)[:, positive]
  return [float(decays[positive][j]) for j in np.argmin(mean, axis=1)]


def verdict(slope: float) -> str:
  if not np.isfinite(slope):
    return "too few rows to fit"
  if abs(slope) < 0.35:
    return "separable"
  if slope < -0.65:
    return "diagonal"
  return "in between"


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--full", action="store_true", help="more learning rates, seeds and epochs")
  size.add_argument("--tiny", action="store_true", help="a seconds-long smoke run")
  parser.add_argument("--out", default=os.path.join("out", "decoupled_any"))
  parser.add_argument("--seeds", type=int, help="seeds per grid cell")
  parser.add_argument("--epochs", type=int)
  parser.add_argument("--n-lr", type=int, help="learning rates per grid")
  parser.add_argument("--n-decay", type=int, help="λ values per grid, the λ = 0 column included")
  parser.add_argument("--hidden", type=int, help="width of the two hidden layers")
  parser.add_argument("--chunk-epochs", type=int, help="epochs per jitted call (progress step)")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--train-size", type=int, default=600, help="the rest of 1797: the test set")
  parser.add_argument(
    "--optimizers",
    nargs="+",
    choices=[f.key for f in FAMILIES],
    default=[f.key for f in FAMILIES],
    help="which grids to run (default: all four)",
  )
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)
  preset = PRESETS["full" if args.full else "tiny" if args.tiny else "default"]
  for name, value in preset.items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  if args.epochs % args.chunk_epochs:  # unequal chunks would compile a second program
    args.chunk_epochs = max(d for d in range(1, args.chunk_epochs + 1) if args.epochs % d == 0)
  return args


def main(argv=None) -> dict[str, Any]:
  """Runs the grids, writes the figures and the tables to --out, returns the summaries."""
  from tqdm.auto import tqdm

  t0 = time.perf_counter()
  args = parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  families = [f for f in FAMILIES if f.key in args.optimizers]
  data = paper_grid.load_data(args.train_size)
  start = paper_grid.init_runs(args.hidden, range(args.seeds))
  evaluate = paper_grid.make_evaluate(data, args.hidden)
  grids = {
    f.key: (
      paper_grid.grid(f.lr_decades, args.n_lr, with_zero=False),
      paper_grid.grid(f.decay_decades, args.n_decay, with_zero=True),
    )
    for f in families
  }
  steps = args.epochs * (args.train_size // args.batch_size)
  setup = (
    f"{len(families)} optimizers × {args.n_lr} lr × {args.n_decay} λ × {args.seeds} seeds, "
    f"{args.epochs} epochs ({steps} steps) of batch {args.batch_size}, cosine schedule; "
    f"LayerNorm MLP 64-{args.hidden}-{args.hidden}-10 trained on {args.train_size} digits, "
    f"tested on {1797 - args.train_size}"
  )
  print(setup)

  results = {}
  with tqdm(total=len(families) * args.epochs, unit="epoch", disable=args.no_progress) as bar:
    for fam in families:
      bar.set_description(fam.key)
      results[fam.key] = paper_grid.run_grid(fam, data, *grids[fam.key], start, evaluate, args, bar)

  summaries = {
    f.key: paper_grid.summarize(results[f.key]["test_error"], *grids[f.key]) for f in families
  }
  for f in families:
    summaries[f.key]["best_lambda_per_row"] = best_lambda_per_row(
      results[f.key]["test_error"], grids[f.key][1]
    )
  figures = paper_grid.plot(families, results, grids, args.out, args.epochs, args.seeds)
  elapsed = time.perf_counter() - t0

  md = paper_grid.table(families, summaries)
  rows = "\n".join(
    f"| {f.title} | {', '.join(paper_grid.fmt(v) for v in summaries[f.key]['best_lambda_per_row'])}"
    f" | {verdict(summaries[f.key]['best_lambda_slope'])} |"
    for f in families
  )
  per_row = (
    "| optimizer | best λ > 0 per learning rate, smallest lr first | landscape |\n"
    f"|---|---|---|\n{rows}"
  )
  meanings = "\n".join(f"- {f.title}: λ is the {f.meaning}." for f in families)
  notes = (
    "Best cell: mean ± sample std over seeds of the test error, chosen on the test set (so "
    "optimistic: compare rows, not absolute values). 'λ* slope': d log10 λ*/d log10 lr over the "
    "rows within 2× the best + 1 pp; ≈ 0 separable (|slope| < 0.35 above), ≈ −1 diagonal "
    f"(slope < −0.65).\n\nWhat λ means per panel:\n{meanings}"
  )
  with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
    f.write(
      f"# Decoupled decay for any optimizer: digits (lr, λ) grids\n\n{setup}.\n\n{md}\n\n"
      f"{per_row}\n\n{notes}\n\nWall time: {elapsed:.1f} s.\n"
    )
  with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
    config = {k: v for k, v in vars(args).items() if k != "optimizers"}
    families_json = {
      fam.key: {
        "title": fam.title,
        "lrs": grids[fam.key][0].tolist(),
        "decays": grids[fam.key][1].tolist(),
        "test_error": results[fam.key]["test_error"].tolist(),
        "summary": summaries[fam.key],
      }
      for fam in families
    }
    json.dump(
      {"config": config, "wall_time_s": elapsed, "families": families_json},
      f,
      indent=1,
      allow_nan=True,
    )

  print(f"\n{md}\n\n{per_row}\n\n{notes}")
  print(f"\nwrote {', '.join(figures)}, results.md, results.json to {args.out}")
  print(f"wall time {elapsed:.1f} s")
  return {"summaries": summaries, "figures": figures, "wall_time_s": elapsed, "table": md}


if __name__ == "__main__":
  main()
