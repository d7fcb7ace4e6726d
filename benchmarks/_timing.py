"""Interleaved timing and the statistics reported from it.

The contenders of one comparison take turns within every repeat, in a fresh random order each
time, so that a burst of load from other processes or a frequency change hits them all alike.
The order is shuffled, not rotated: rotation keeps every contender behind the same predecessor,
and in a rotated run optax_decay, always right after the streaming triad that evicts the caches,
measured up to 16% slower than optax at 2M–5M parameters with the same compiled program.
Ratios are formed *per repeat*; the median of those paired ratios is reported with a bootstrap
interval over repeats.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks._contenders import Contender


def round_robin(
  contenders: Sequence[Contender], repeats: int, warmup: int = 2, seed: int = 0
) -> np.ndarray:
  """Seconds per step, shaped (repeats, contenders); each repeat runs every contender once."""
  for contender in contenders:
    for _ in range(warmup):
      contender.step()
  rng = np.random.default_rng(seed)
  times = np.empty((repeats, len(contenders)))
  for r in range(repeats):
    for c in rng.permutation(len(contenders)):
      start = time.perf_counter()
      contenders[c].step()
      times[r, c] = time.perf_counter() - start
  return times


def paired_ratio(
  numerator: np.ndarray, denominator: np.ndarray, seed: int = 0, resamples: int = 2000
) -> tuple[float, float, float]:
  """Median of `numerator/denominator` over repeats and its 95% bootstrap interval."""
  ratios = numerator / denominator
  rng = np.random.default_rng(seed)
  picks = rng.integers(0, len(ratios), size=(resamples, len(ratios)))
  medians = np.median(ratios[picks], axis=1)
  low, high = np.percentile(medians, [2.5, 97.5])
  return float(np.median(ratios)), float(low), float(high)


def dram_bandwidth(n_floats: int, repeats: int) -> dict[str, Any]:
  """GB/s of a jitted triad and of `numpy.copyto` over arrays far larger than the caches.

  The triad runs where JAX runs the optimizer steps (its default device: the GPU's memory on a
  GPU); the NumPy copy always measures the host's memory.
  """
  import jax
  import jax.numpy as jnp

  a, b = jnp.ones(n_floats, jnp.float32), jnp.ones(n_floats, jnp.float32)
  triad = jax.jit(lambda a, b: a * 0.999 + b, donate_argnums=0)
  source, target = np.ones(n_floats, np.float32), np.empty(n_floats, np.float32)
  a = triad(a, b).block_until_ready()
  np.copyto(target, source)
  triad_s, copy_s = [], []
  for _ in range(repeats):
    start = time.perf_counter()
    a = triad(a, b).block_until_ready()
    triad_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    np.copyto(target, source)
    copy_s.append(time.perf_counter() - start)
  return {
    "triad_device": next(iter(a.devices())).device_kind,
    "triad_gbps": 12 * n_floats / float(np.median(triad_s)) / 1e9,
    "copy_gbps": 8 * n_floats / float(np.median(copy_s)) / 1e9,
    "mbytes": 12 * n_floats / 1e6,
  }
