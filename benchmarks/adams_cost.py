"""What stable weight decay costs per step: optax_decay.adams against optax_decay.adamw.

AdamS needs one number AdamW does not, the mean squared gradient over all parameters: one extra
read of the gradients and a reduction, and one float32 scalar of state. This times both steps
interleaved (the same harness as run.py: donated buffers, shuffled order, median of paired
ratios) and reports XLA's count of bytes accessed and the state bytes.

Run: python benchmarks/adams_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax.numpy as jnp
import numpy as np

import optax_decay
from benchmarks import _contenders as C
from benchmarks import _timing as T

SIZES = [(2_000_000, 1), (10_000_000, 1), (10_000_000, 200)]
QUICK = [(20_000, 1), (20_000, 4)]


def main(argv: list[str] | None = None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 repeats")
  parser.add_argument("--repeats", type=int, default=21)
  args = parser.parse_args(argv)
  repeats = 3 if args.quick else args.repeats
  rows = []
  for n_params, n_leaves in QUICK if args.quick else SIZES:
    params = C.make_tree(n_params, n_leaves, seed=0)
    grads = {k: jnp.asarray(0.01 * v) for k, v in C.make_tree(n_params, n_leaves, seed=1).items()}
    adamw = C.jax_contender(
      "adamw", optax_decay.adamw(C.LR_ADAM, weight_decay=C.WD_ADAMW), params, grads
    )
    adams = C.jax_contender(
      "adams", optax_decay.adams(C.LR_ADAM, weight_decay=C.WD_ADAMW), params, grads
    )
    times = T.round_robin([adamw, adams], repeats)
    ratio, low, high = T.paired_ratio(times[:, 1], times[:, 0])
    row = {
      "n_params": n_params,
      "n_leaves": n_leaves,
      "adamw_ms": 1e3 * float(np.median(times[:, 0])),
      "adams_ms": 1e3 * float(np.median(times[:, 1])),
      "ratio": ratio,
      "ratio_lo": low,
      "ratio_hi": high,
      "adamw_passes": adamw.xla_bytes / (4 * n_params),
      "adams_passes": adams.xla_bytes / (4 * n_params),
      "extra_state_bytes": adams.state_bytes - adamw.state_bytes,
    }
    rows.append(row)
    print(
      f"{n_params:>11,d} params {n_leaves:>4d} leaves: adamw {row['adamw_ms']:.2f} ms, "
      f"adams {row['adams_ms']:.2f} ms, adams/adamw {ratio:.2f} [{low:.2f}, {high:.2f}]; "
      f"XLA passes {row['adamw_passes']:.1f} -> {row['adams_passes']:.1f}; "
      f"extra state {row['extra_state_bytes']} bytes",
      flush=True,
    )
  return rows


if __name__ == "__main__":
  main()
