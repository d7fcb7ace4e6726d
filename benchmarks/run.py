"""Times one optimizer step of every optax_decay alias against optax and PyTorch.

For each optimizer, parameter count and leaf count, the contenders run in turn within every
repeat: optax_decay's alias, its optax equivalent, torch.optim with foreach=True and with
fused=True (when torch is installed and has an equivalent), and a streaming triad that moves
the minimum number of bytes a fused step must move. Reported: median step time, the paired
ratio to optax with a 95% bootstrap interval, the fraction of the memory roofline (triad time /
step time for the same bytes), XLA's own count of bytes accessed, compile time and the bytes of
optimizer state.

Run:
  python benchmarks/run.py --quick            # seconds: the smoke test CI runs
  python benchmarks/run.py --out docs/        # the full sweep; writes docs/benchmarks.md

On a GPU (jax with CUDA, torch with CUDA) the same command times everything on the GPU: torch's
tensors go to `cuda` and its steps synchronize, the sweep switches to 10M-300M parameters, and
the results go to their own block of docs/benchmarks.md (`run.py:gpu`) and their own figures, so
the CPU results stay. If torch has no CUDA there, it is left out rather than timed on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
  # Run as a script: make `benchmarks` and `optax_decay` importable from the repository root.
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# On a GPU, JAX would otherwise reserve 75% of its memory as soon as it starts and leave torch
# too little; allocating on demand lets both share it. Ignored on the CPU; a value already set
# wins. It must be set before JAX creates its GPU client, hence before anything imports jax.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _contenders as C
from benchmarks import _report as R
from benchmarks import _timing as T
from benchmarks import _torch

# (parameters, leaves, masked): sizes at one leaf, then leaf counts at a fixed size, then the
# same with half of the leaves excluded from the decay by a mask.
FULL = (
  [(n, 1, False) for n in (1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000)]
  + [(2_000_000, 200, False)]
  + [(10_000_000, leaves, False) for leaves in (10, 200, 1000)]
  + [(10_000_000, 200, True)]
)
QUICK = [(20_000, 1, False), (20_000, 4, True)]
# Per-leaf overhead: AdamW on the same number of parameters cut into more and more leaves, all
# leaf counts interleaved in one round-robin so that the ratios do not mix different moments.
OVERHEAD_FULL = {2_000_000: (1, 200), 10_000_000: (1, 200, 1000)}
OVERHEAD_QUICK = {20_000: (1, 8)}
# On an accelerator (any backend but cpu), around the GPU target of >= 100M float32
# parameters. Device memory of the largest group, AdamW at 300M (1.2 GB an array): the shared
# JAX gradients 1.2 GB, three JAX contenders holding params, mu and nu 10.8 GB, two torch
# contenders holding params, grads and both moments 9.6 GB, and the triad's two arrays 5.6 GB:
# about 27 GB, released before the next group (JAX's allocator keeps its share for reuse).
FULL_GPU = (
  [(n, 1, False) for n in (10_000_000, 50_000_000, 100_000_000, 200_000_000, 300_000_000)]
  + [(100_000_000, leaves, False) for leaves in (200, 1000)]
  + [(100_000_000, 200, True)]
)
OVERHEAD_GPU = {10_000_000: (1, 200, 1000), 100_000_000: (1, 200, 1000)}
SIZES = ("auto", "cpu", "gpu")


def sweep(
  backend: str, quick: bool = False, sizes: str = "auto"
) -> tuple[list[tuple[int, int, bool]], dict[int, tuple[int, ...]]]:
  """(configurations, leaf-overhead sizes) to run: `sizes="auto"` picks by JAX's backend."""
  if sizes not in SIZES:
    raise ValueError(f"sizes must be one of {SIZES}, not {sizes!r}")
  if quick:
    return list(QUICK), dict(OVERHEAD_QUICK)
  if sizes == "auto":
    sizes = "cpu" if backend == "cpu" else "gpu"
  if sizes == "cpu":
    return list(FULL), dict(OVERHEAD_FULL)
  return list(FULL_GPU), dict(OVERHEAD_GPU)


def output_names(backend: str) -> tuple[str, str]:
  """(block of docs/benchmarks.md, suffix of the figures) that a run on `backend` writes.

  A GPU run gets its own block (`run.py:gpu`) and figures (`bench_sizes_gpu.png`), so that it
  leaves the CPU results on the page as they are.
  """
  if backend == "cpu":
    return "run.py", ""
  return f"run.py:{backend}", f"_{backend}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats")
  parser.add_argument("--repeats", type=int, help="timed repeats (default 21; 3 with --quick)")
  parser.add_argument("--aliases", nargs="+", choices=C.ALIASES, default=list(C.ALIASES))
  parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
  parser.add_argument(
    "--sizes",
    choices=SIZES,
    default="auto",
    help="the full sweep's sizes: 1M-50M (cpu) or 10M-300M (gpu); auto (default) picks gpu "
    "on any backend but the CPU. Ignored with --quick",
  )
  parser.add_argument(
    "--torch-threads",
    type=int,
    default=1,
    help="intra-op threads for PyTorch on the CPU (default 1: its fastest and steadiest "
    "setting on the 2-core machine of docs/benchmarks.md, see its experiments table)",
  )
  parser.add_argument("--out", type=Path, help="docs folder for benchmarks.md and figures/")
  parser.add_argument("--json", type=Path, help="also write the raw rows to this file")
  return parser.parse_args(argv)


def run_group(
  alias: str,
  n_params: int,
  n_leaves: int,
  masked: bool,
  repeats: int,
  torch_device: str | None,
  ours_first: bool,
) -> list[dict[str, Any]]:
  """Builds and times every contender for one optimizer at one size; one row per contender.

  `torch_device` is where torch runs ("cpu" or "cuda"), None to leave torch out.
  """
  params = C.make_tree(n_params, n_leaves, seed=0)
  grads_np = {k: 0.01 * v for k, v in C.make_tree(n_params, n_leaves, seed=1).items()}
  grads = {k: jnp.array(v) for k, v in grads_np.items()}
  mask = C.alternate_mask(params) if masked else None
  # Alternate which of the two compiles first, so one-off costs (caches, allocator) do not
  # always land on the same side of the compile-time comparison.
  builders = [
    lambda: C.jax_contender(R.OURS, C.ours(alias, mask), params, grads),
    lambda: C.jax_contender(R.OPTAX, C.reference(alias, mask), params, grads),
  ]
  jax_pair = [b() for b in (builders if ours_first else builders[::-1])]
  contenders = sorted(jax_pair, key=lambda c: c.name != R.OURS)
  # A second, separately compiled optax: its ratio to the first is pure noise (an A/A test),
  # the yardstick for "as fast as optax within the noise".
  contenders.append(C.jax_contender(R.OPTAX_AGAIN, C.reference(alias, mask), params, grads))
  if torch_device is not None and _torch.has_equivalent(alias):
    for impl in _torch.IMPLEMENTATIONS:
      contenders.append(_torch.contender(alias, impl, params, grads_np, mask, torch_device))
  min_bytes = C.MIN_PASSES[alias] * 4 * n_params
  contenders.append(C.stream_contender(min_bytes))

  times = T.round_robin(contenders, repeats)
  names = [c.name for c in contenders]
  optax_times = times[:, names.index(R.OPTAX)]
  optax_hlo = contenders[names.index(R.OPTAX)].hlo
  stream_times = times[:, names.index(R.STREAM)]
  rows = []
  for k, contender in enumerate(contenders):
    ratio, low, high = T.paired_ratio(times[:, k], optax_times)
    median = float(np.median(times[:, k]))
    rows.append(
      {
        "alias": alias,
        "n_params": n_params,
        "n_leaves": n_leaves,
        "masked": masked,
        "contender": contender.name,
        "median_ms": 1e3 * median,
        "q25_ms": 1e3 * float(np.percentile(times[:, k], 25)),
        "q75_ms": 1e3 * float(np.percentile(times[:, k], 75)),
        "ratio": ratio,
        "ratio_lo": low,
        "ratio_hi": high,
        "roofline": float(np.median(stream_times / times[:, k])),
        "gbps": min_bytes / median / 1e9,
        "min_passes": C.MIN_PASSES[alias],
        "xla_passes": None if contender.xla_bytes is None else contender.xla_bytes / (4 * n_params),
        "compile_s": contender.compile_s,
        "trace_s": contender.trace_s,
        "state_bytes": contender.state_bytes,
        "same_hlo_as_optax": None if contender.hlo is None else contender.hlo == optax_hlo,
        "times_ms": (1e3 * times[:, k]).round(4).tolist(),
      }
    )
  return rows


def leaf_overhead(
  n_params: int, leaf_counts: tuple[int, ...], repeats: int, torch_device: str | None
) -> list[dict[str, Any]]:
  """AdamW steps of optax_decay (and torch fused) at each leaf count; ratios to one leaf."""
  contenders, keys = [], []
  for n_leaves in leaf_counts:
    params = C.make_tree(n_params, n_leaves, seed=0)
    grads_np = {k: 0.01 * v for k, v in C.make_tree(n_params, n_leaves, seed=1).items()}
    grads = {k: jnp.array(v) for k, v in grads_np.items()}
    contenders.append(C.jax_contender(R.OURS, C.ours("adamw"), params, grads))
    keys.append((R.OURS, n_leaves))
    if torch_device is not None:
      contenders.append(_torch.contender("adamw", "fused", params, grads_np, device=torch_device))
      keys.append((R.FUSED, n_leaves))
  times = T.round_robin(contenders, repeats)
  rows = []
  for k, (name, n_leaves) in enumerate(keys):
    ratio, low, high = T.paired_ratio(times[:, k], times[:, keys.index((name, leaf_counts[0]))])
    rows.append(
      {
        "n_params": n_params,
        "n_leaves": n_leaves,
        "contender": name,
        "median_ms": 1e3 * float(np.median(times[:, k])),
        "ratio": ratio,
        "ratio_lo": low,
        "ratio_hi": high,
        "times_ms": (1e3 * times[:, k]).round(4).tolist(),
      }
    )
    print(
      f"overhead {n_params:>10,d} params {n_leaves:>5d} leaves {name:12s} "
      f"{rows[-1]['median_ms']:8.2f} ms  x{ratio:.2f} [{low:.2f}, {high:.2f}] vs one leaf",
      flush=True,
    )
  return rows


def print_group(rows: list[dict[str, Any]]) -> None:
  head = rows[0]
  print(
    f"{head['alias']:8s} {head['n_params']:>10,d} params {head['n_leaves']:>5d} leaves"
    f"{' masked' if head['masked'] else ''}"
  )
  for row in rows:
    extra = "" if row["compile_s"] is None else f"  compile {row['compile_s']:.2f}s"
    print(
      f"    {row['contender']:14s} {row['median_ms']:9.3f} ms  x{row['ratio']:.2f} "
      f"[{row['ratio_lo']:.2f}, {row['ratio_hi']:.2f}] vs optax  roofline "
      f"{row['roofline']:.2f}{extra}",
      flush=True,
    )


def generated_markdown(
  rows: list[dict[str, Any]],
  overhead: list[dict[str, Any]],
  info: dict[str, Any],
  bandwidth: dict,
  command: str,
  figures,
  target: str,
) -> str:
  parts = [
    "## Machine and command",
    "",
    R.machine_table(info, bandwidth),
    "",
    f"Command: `{command}` (wall time {info['wall_s']:.0f} s).",
    "",
    "## Step time",
    "",
    "Ratios are medians of per-repeat ratios to optax (1.00 = as fast as optax, lower is "
    "faster) with 95% bootstrap intervals. *Roofline* is the time of a streaming triad moving "
    "the minimum bytes of a fused step (7 arrays of the parameters' size for Adam, 5 for SGD "
    "with momentum) divided by the step's time, in the same repeat. *XLA passes* is XLA's "
    "`cost_analysis()` bytes accessed, in arrays of the parameters' size. State MB counts "
    "every optimizer-state leaf.",
    "",
    R.summary_table(rows),
    "",
    "## Per-leaf overhead (AdamW, all leaf counts interleaved)",
    "",
    "The same number of parameters in more leaves; ratios are to one leaf, paired per repeat.",
    "",
    R.overhead_table(overhead),
    "",
    "## Target check",
    "",
    target,
    "",
  ]
  for path in figures:
    parts += [f"![{path.stem}](figures/{path.name})", ""]
  return "\n".join(parts)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
  """Runs the sweep; returns the comparison rows (the leaf-overhead rows go to --json)."""
  args = parse_args(argv)
  started = time.perf_counter()
  repeats = args.repeats or (3 if args.quick else 21)
  backend = jax.default_backend()
  torch_device = None
  if not args.no_torch and _torch.available():
    if backend == "cpu":  # OpenMP settings concern torch's CPU kernels only
      _torch.set_passive_waiting()
    torch_device = _torch.device_for(backend)
    if torch_device is None:
      print(
        f"JAX runs on {backend}, where torch cannot run (it needs CUDA on a GPU): PyTorch "
        "contenders skipped rather than timed on the CPU against the GPU"
      )
    elif torch_device == "cpu":
      _torch.set_threads(args.torch_threads)
  elif not args.no_torch:
    print("torch is not installed: PyTorch contenders skipped")
  info = R.machine(_torch.version())
  info["torch_threads"] = args.torch_threads if torch_device == "cpu" else None
  info["torch_device"] = None if torch_device is None else _torch.device_name(torch_device)
  # About 0.8 GB moved on the CPU (past its caches); 3.2 GB on an accelerator, whose bandwidth is
  # some 50-100x higher, so that the triad still takes about a millisecond there.
  n_floats = 1 << 18 if args.quick else (1 << 26 if backend == "cpu" else 1 << 28)
  bandwidth = T.dram_bandwidth(n_floats, repeats=3 if args.quick else 9)
  print(
    f"{info['cpu']}, {info['cores']} cores; JAX on {backend} ({info['device_kind']}), torch on "
    f"{info['torch_device'] or '(not run)'}; triad {bandwidth['triad_gbps']:.1f} GB/s on "
    f"{bandwidth['triad_device']}, numpy copy {bandwidth['copy_gbps']:.1f} GB/s (host memory)"
  )

  configurations, overhead_sizes = sweep(backend, args.quick, args.sizes)
  rows: list[dict[str, Any]] = []
  for i, (n_params, n_leaves, masked) in enumerate(configurations):
    for j, alias in enumerate(args.aliases):
      group = run_group(alias, n_params, n_leaves, masked, repeats, torch_device, (i + j) % 2 == 0)
      print_group(group)
      rows += group
      _torch.release(torch_device)
  overhead: list[dict[str, Any]] = []
  if "adamw" in args.aliases:
    for n_params, leaf_counts in overhead_sizes.items():
      overhead += leaf_overhead(n_params, leaf_counts, repeats, torch_device)
      _torch.release(torch_device)

  info["load_after"] = os.getloadavg()
  info["wall_s"] = time.perf_counter() - started
  checks = R.target_check(rows)
  target = R.target_markdown(checks, info)
  print(f"\ntarget check\n{target}\n")
  print(f"done in {info['wall_s']:.0f} s")
  if args.json:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
      json.dumps(
        {
          "machine": info,
          "bandwidth": bandwidth,
          "rows": rows,
          "overhead": overhead,
          "target": checks,
        }
      )
    )
  if args.out:
    block, suffix = output_names(backend)
    figures = R.plot(rows, args.out / "figures", suffix)
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = generated_markdown(rows, overhead, info, bandwidth, command, figures, target)
    R.write_block(args.out / "benchmarks.md", block, text, "Benchmarks")
    print(f"wrote the {block} block of {args.out / 'benchmarks.md'}")
  return rows


if __name__ == "__main__":
  main()
