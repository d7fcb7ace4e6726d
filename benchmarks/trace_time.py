"""Time to trace and lower one jitted AdamW update, optax_decay against optax, over many leaves.

Run: python benchmarks/trace_time.py [--leaves 1000 --repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import optax_decay


def main(argv=None) -> dict[str, float]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--leaves", type=int, default=1000)
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args(argv)

  params = {f"leaf{i}": jnp.ones((8,)) for i in range(args.leaves)}
  # Factories, not instances: a fresh optimizer per build, so no trace cache is hit.
  contenders = {
    "optax_decay.adamw": lambda: optax_decay.adamw(1e-3, weight_decay=1e-2),
    "optax.adamw": lambda: optax.adamw(1e-3, weight_decay=1e-2),
  }
  times: dict[str, list[float]] = {name: [] for name in contenders}
  for _ in range(args.repeats):  # interleaved, so load changes hit both alike
    for name, make in contenders.items():
      tx = make()
      state = tx.init(params)
      start = time.perf_counter()
      jax.jit(tx.update).trace(params, state, params).lower()
      times[name].append(time.perf_counter() - start)
  medians = {name: statistics.median(t) for name, t in times.items()}
  for name, median in medians.items():
    print(f"{name:18s} trace + lower, median of {args.repeats}: {median:.3f} s")
  print(f"ratio: {medians['optax_decay.adamw'] / medians['optax.adamw']:.3f}")
  return medians


if __name__ == "__main__":
  main()
