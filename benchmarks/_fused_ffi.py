"""Prototype: AdamW through one in-place XLA FFI kernel per leaf (`_fused_adamw.cc`).

Not a candidate for the package, which is pure Python: it measures how much of the gap to
PyTorch's fused AdamW is XLA:CPU's extra passes over memory. Needs g++; `available()` says
whether it could be built.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _contenders as C

SOURCE = Path(__file__).with_name("_fused_adamw.cc")
TARGET = "optax_decay_bench_fused_adamw"
_registered: list[bool] = []


def available() -> bool:
  return shutil.which("g++") is not None


def _build() -> Path:
  flags = [
    "-O3",
    "-march=native",
    # sqrtf may set errno; without this flag that branch keeps the loop scalar.
    "-fno-math-errno",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-pthread",
    f"-I{jax.ffi.include_dir()}",
  ]
  digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()[:12]
  library = Path(tempfile.gettempdir()) / "optax_decay_bench" / f"fused_adamw_{digest}.so"
  if not library.exists():
    library.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
      ["g++", *flags, str(SOURCE), "-o", str(library)], check=True, capture_output=True
    )
  return library


def _register() -> None:
  if not _registered:
    library = ctypes.cdll.LoadLibrary(str(_build()))
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(library.FusedAdamw), platform="cpu")
    _registered.append(True)


def contender(
  params: dict, grads: dict, threads: int, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> C.Contender:
  """AdamW with optax's defaults and the shared lr and decay; every leaf in place."""
  _register()
  params = {k: jnp.array(v) for k, v in params.items()}
  state = (
    jnp.zeros([], jnp.int32),
    {k: jnp.zeros_like(v) for k, v in params.items()},
    {k: jnp.zeros_like(v) for k, v in params.items()},
  )

  def leaf_step(p, g, mu, nu, scalars):
    like = jax.ShapeDtypeStruct(p.shape, p.dtype)
    call = jax.ffi.ffi_call(TARGET, (like, like, like), input_output_aliases={0: 0, 2: 1, 3: 2})
    return call(p, g, mu, nu, scalars, threads=np.int64(threads))

  def step(p, s, g):
    count, mu, nu = s
    count = optax.safe_increment(count)
    scalars = jnp.stack([C.LR_ADAM, b1, b2, eps, C.WD_ADAMW, 1 - b1**count, 1 - b2**count]).astype(
      jnp.float32
    )
    out = {k: leaf_step(p[k], g[k], mu[k], nu[k], scalars) for k in p}
    new_p = {k: v[0] for k, v in out.items()}
    return new_p, (count, {k: v[1] for k, v in out.items()}, {k: v[2] for k, v in out.items()})

  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
  compile_s = time.perf_counter() - start
  holder = [params, state]

  def run() -> None:
    holder[0], holder[1] = compiled(holder[0], holder[1], grads)
    jax.block_until_ready(holder)

  return C.Contender(
    f"fused FFI ({threads} thread{'s' if threads > 1 else ''})",
    run,
    state_bytes=C.tree_bytes(state),
    compile_s=compile_s,
    current_params=lambda: holder[0],
  )
