"""What might make AdamW faster on CPU: XLA flags, threads, grouping leaves, one pass.

Four experiments, each against optax_decay's `adamw` as it is:

1. XLA CPU flags and one core instead of two, each in its own process (flags are read once per
   process). Processes take turns over rounds; inside each, every step is paired with a NumPy
   copy of the same bytes, and the step/copy ratio cancels much of the load other processes put
   on the machine.
2. PyTorch in a process of its own (no JAX threads around), fused and foreach, one and two
   threads, OpenMP waiting policy ACTIVE and PASSIVE: the gap to fused AdamW at its best.
3. Grouping leaves into one flat buffer per (dtype, decayed) group (`_grouped.py`).
4. One pass over memory by a `lax.scan` over chunks, so that mu and nu are used while in cache.
5. One pass over memory by a C++ kernel called through XLA's FFI (`_fused_ffi.py`), the
   bound for what a better XLA:CPU fusion could give.

Run: python benchmarks/experiments.py [--quick] [--out docs/]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks import _report as R

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [(2_000_000, 1), (10_000_000, 1), (2_000_000, 200), (10_000_000, 200)]
QUICK_CONFIGS = [(50_000, 1), (50_000, 8)]
FLAG_VARIANTS = {
  "default": "",
  "concurrency-optimized scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=true",
  "thunk runtime off": "--xla_cpu_use_thunk_runtime=false",
  "multi-thread Eigen off": "--xla_cpu_multi_thread_eigen=false",
  "fast math (changes numerics)": "--xla_cpu_enable_fast_math=true",
  "one core (affinity)": "",
}
TORCH_VARIANTS = [  # (implementation, threads, OMP_WAIT_POLICY; None leaves libgomp's default)
  (impl, threads, policy)
  for impl in ("fused", "foreach")
  for threads in (1, 2)
  for policy in (None, "PASSIVE")
]


def _copy_reference(n_bytes: int):
  """A NumPy copy moving `n_bytes`: a load gauge that XLA flags and JAX threads cannot touch."""
  source = np.ones(max(1, n_bytes // 8), np.float32)
  target = np.empty_like(source)
  return lambda: np.copyto(target, source)


def _paired(step, reference, repeats: int) -> dict[str, float]:
  for _ in range(2):
    step()
    reference()
  own, ref = np.empty(repeats), np.empty(repeats)
  for r in range(repeats):
    for k, fn in ((0, step), (1, reference)) if r % 2 == 0 else ((1, reference), (0, step)):
      start = time.perf_counter()
      fn()
      (own if k == 0 else ref)[r] = time.perf_counter() - start
  return {"ms": 1e3 * float(np.median(own)), "per_copy": float(np.median(own / ref))}


def child_jax(configs, repeats: int) -> list[dict[str, Any]]:
  import jax.numpy as jnp

  from benchmarks import _contenders as C

  out = []
  for n_params, n_leaves in configs:
    params = C.make_tree(n_params, n_leaves, 0)
    grads = {k: 0.01 * jnp.array(v) for k, v in C.make_tree(n_params, n_leaves, 1).items()}
    ours = C.jax_contender(R.OURS, C.ours("adamw"), params, grads)
    result = _paired(ours.step, _copy_reference(28 * n_params), repeats)
    out.append({"n_params": n_params, "n_leaves": n_leaves, "compile_s": ours.compile_s, **result})
  return out


def child_torch(configs, repeats: int, impl: str, threads: int) -> list[dict[str, Any]]:
  import torch

  from benchmarks import _contenders as C
  from benchmarks import _torch

  torch.set_num_threads(threads)
  out = []
  for n_params, n_leaves in configs:
    params = C.make_tree(n_params, n_leaves, 0)
    grads = {k: 0.01 * v for k, v in C.make_tree(n_params, n_leaves, 1).items()}
    contender = _torch.contender("adamw", impl, params, grads)
    result = _paired(contender.step, _copy_reference(28 * n_params), repeats)
    out.append({"n_params": n_params, "n_leaves": n_leaves, **result})
  return out


def _spawn(args: list[str], env: dict[str, str | None], one_core: bool) -> list[dict[str, Any]]:
  command = [sys.executable, str(Path(__file__).resolve()), *args]
  if one_core:
    command = ["taskset", "-c", "0", *command]
  environment = {**os.environ, **env}
  environment = {k: v for k, v in environment.items() if v is not None}
  done = subprocess.run(command, env=environment, capture_output=True, text=True)
  if done.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def process_variants(quick: bool, rounds: int, repeats: int, use_torch: bool) -> dict[str, list]:
  """Every JAX flag variant and torch variant in its own process, taking turns over rounds."""
  common = ["--repeats", str(repeats)] + (["--quick"] if quick else [])
  jobs = {
    f"jax: {name}": (["--child", "jax", *common], {"XLA_FLAGS": flags}, name.startswith("one"))
    for name, flags in FLAG_VARIANTS.items()
  }
  if use_torch:
    for impl, threads, policy in TORCH_VARIANTS:
      args = ["--child", "torch", "--impl", impl, "--threads", str(threads), *common]
      jobs[f"torch {impl}, {threads} thread(s), OMP_WAIT_POLICY={policy or 'unset'}"] = (
        args,
        {"OMP_WAIT_POLICY": policy},
        False,
      )
  results: dict[str, list] = {name: [] for name in jobs}
  for r in range(rounds):
    names = list(jobs) if r % 2 == 0 else list(jobs)[::-1]
    for name in names:
      results[name].append(_spawn(*jobs[name]))
      print(f"round {r}: {name} done", flush=True)
  return results


def flags_table(results: dict[str, list]) -> str:
  """Median over rounds; speed-up is the default's step/copy ratio over the variant's."""
  first = next(iter(results.values()))[0]
  configs = [(c["n_params"], c["n_leaves"]) for c in first]
  head = " | ".join(f"{n / 1e6:g}M × {leaves}" for n, leaves in configs)
  lines = [
    f"| variant | {head} |",
    "|---|" + "--:|" * len(configs),
  ]
  base = results["jax: default"]
  for name, runs in results.items():
    cells = []
    for k in range(len(configs)):
      ms = np.median([run[k]["ms"] for run in runs])
      ratio = np.median([run[k]["per_copy"] for run in runs])
      speedup = np.median([b[k]["per_copy"] for b in base]) / ratio
      cells.append(f"{ms:.1f} ms (×{speedup:.2f})")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _prototype(kind: str, params: dict, grads: dict, mask: Any):
  from benchmarks import _contenders as C
  from benchmarks import _fused_ffi, _grouped, _onepass

  if kind == "grouped":
    tx = _grouped.grouped(lambda group_mask: C.ours("adamw", group_mask), mask)
    return C.jax_contender(kind, tx, params, grads)
  if kind == "one pass":
    return _onepass.contender(params, grads, chunk=1 << 16)
  return _fused_ffi.contender(params, grads, threads=int(kind.split()[1]))


def in_process(quick: bool, repeats: int, use_torch: bool) -> str:
  """The prototypes against the plain alias (and fused PyTorch), interleaved in this process."""
  import jax
  import jax.numpy as jnp

  from benchmarks import _contenders as C
  from benchmarks import _fused_ffi, _torch
  from benchmarks import _timing as T

  lines = [
    "| prototype | params | leaves | mask | ours ms | prototype / ours | torch fused / ours"
    " | compile s: ours · prototype | max abs diff after 3 steps |",
    "|---|--:|--:|:-:|--:|--:|--:|--:|--:|",
  ]
  small, one_pass = (50_000, 65_536) if quick else (2_000_000, 10_485_760)
  large = 50_000 if quick else 10_000_000
  leaves = 8 if quick else 200
  cases = [
    (small, leaves, False, "grouped"),
    (large, leaves, False, "grouped"),
    (large, leaves, True, "grouped"),
    (one_pass, 1, False, "one pass"),
  ]
  if _fused_ffi.available():
    cases += [
      (n, k, False, f"FFI {threads}")
      for n, k in ((small, 1), (large, 1), (small, leaves), (large, leaves))
      for threads in (1, 2)
    ]
  for n_params, n_leaves, masked, kind in cases:
    params = C.make_tree(n_params, n_leaves, 0)
    grads_np = {k: 0.01 * v for k, v in C.make_tree(n_params, n_leaves, 1).items()}
    grads = {k: jnp.array(v) for k, v in grads_np.items()}
    mask = C.alternate_mask(params) if masked else None
    ours = C.jax_contender(R.OURS, C.ours("adamw", mask), params, grads)
    other = _prototype(kind, params, grads, mask)
    check_a = C.jax_contender("check", C.ours("adamw", mask), params, grads)
    check_b = _prototype(kind, params, grads, mask)
    for _ in range(3):
      check_a.step()
      check_b.step()
    diff = max(
      float(jnp.max(jnp.abs(a - b)))
      for a, b in zip(
        jax.tree.leaves(check_a.current_params()),
        jax.tree.leaves(check_b.current_params()),
        strict=True,
      )
    )
    del check_a, check_b
    contenders = [ours, other]
    if use_torch:
      contenders.append(_torch.contender("adamw", "fused", params, grads_np, mask))
    times = T.round_robin(contenders, repeats)
    ratio, low, high = T.paired_ratio(times[:, 1], times[:, 0])
    torch_cell = "–"
    if use_torch:
      t_ratio, t_low, t_high = T.paired_ratio(times[:, 2], times[:, 0])
      torch_cell = f"{t_ratio:.2f} [{t_low:.2f}, {t_high:.2f}]"
    lines.append(
      f"| {other.name} | {n_params / 1e6:g}M | {n_leaves} | {'half' if masked else '–'}"
      f" | {1e3 * np.median(times[:, 0]):.1f} | {ratio:.2f} [{low:.2f}, {high:.2f}]"
      f" | {torch_cell} | {ours.compile_s:.2f} · {other.compile_s:.2f} | {diff:.1e} |"
    )
    print(lines[-1], flush=True)
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--rounds", type=int, help="process rounds (default 2; 1 with --quick)")
  parser.add_argument("--repeats", type=int, help="timed steps per process (default 15)")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument("--out", type=Path, help="docs folder: fills a block of benchmarks.md")
  parser.add_argument("--child", choices=("jax", "torch"), help=argparse.SUPPRESS)
  parser.add_argument("--impl", default="fused", help=argparse.SUPPRESS)
  parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  repeats = args.repeats or (3 if args.quick else 15)
  configs = QUICK_CONFIGS if args.quick else CONFIGS
  if args.child == "jax":
    print(json.dumps(child_jax(configs, repeats)))
    return
  if args.child == "torch":
    print(json.dumps(child_torch(configs, repeats, args.impl, args.threads)))
    return

  started = time.perf_counter()
  load_before = os.getloadavg()
  from benchmarks import _torch

  use_torch = not args.no_torch and _torch.available()
  if use_torch:
    # Only the children import torch in the first part; the prototypes below run it here, on
    # one thread like run.py (its best setting in the table of the first part).
    _torch.set_passive_waiting()
    _torch.set_threads(1)
  rounds = args.rounds or (1 if args.quick else 2)
  processes = process_variants(args.quick, rounds, repeats, use_torch)
  table = flags_table(processes)
  print(table)
  prototypes = in_process(args.quick, repeats, use_torch)
  wall = time.perf_counter() - started
  command = "python benchmarks/experiments.py " + " ".join(sys.argv[1:] if argv is None else argv)
  text = "\n".join(
    [
      "### Flags, threads and PyTorch in processes of their own",
      "",
      f"`{command}`: {rounds} rounds of one process per variant, {repeats} steps each; load "
      f"average {', '.join(f'{x:.1f}' for x in load_before)} before, "
      f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} after; {wall:.0f} s. Each cell: "
      "median ms per AdamW step (×speed-up against the default JAX process, from step/copy "
      "ratios; above 1 is faster).",
      "",
      table,
      "",
      "### Prototypes in one process (interleaved with the plain alias)",
      "",
      prototypes,
    ]
  )
  if args.out:
    R.write_block(args.out / "benchmarks.md", "experiments.py", text, "Benchmarks")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "experiments.json").write_text(json.dumps(processes))
    print(f"wrote {args.out / 'benchmarks.md'}")


if __name__ == "__main__":
  main()
