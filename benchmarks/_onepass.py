"""Prototype: an AdamW step that walks memory once, chunk by chunk, inside `lax.scan`.

XLA:CPU emits three loops per leaf for AdamW (mu, nu, then the parameters, which read mu and nu
back), ten array passes where a fused kernel needs seven. Scanning over chunks small enough to
stay in cache computes all three results of a chunk while its inputs are still there. It is a
step function rather than a `GradientTransformation` because writing the parameters inside the
loop is the point: an update returned to `optax.apply_updates` costs its own pass again.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import optax
from jax import lax

from benchmarks import _contenders as C


def _step(p, mu, nu, count, g, *, chunk: int, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
  count = optax.safe_increment(count)
  t = count.astype(jnp.float32)
  bias1, bias2 = 1 - b1**t, 1 - b2**t

  def body(_, xs):
    p, g, m, v = xs
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr * ((m / bias1) / (jnp.sqrt(v / bias2) + eps) + wd * p)
    return None, (p, m, v)

  rows = lambda x: x.reshape(-1, chunk)  # noqa: E731
  _, (p, mu, nu) = lax.scan(body, None, (rows(p), rows(g), rows(mu), rows(nu)))
  return p.reshape(-1), mu.reshape(-1), nu.reshape(-1), count


def contender(params: dict, grads: dict, chunk: int) -> C.Contender:
  """One leaf only, its size a multiple of `chunk`; `grads` is a dict of device arrays."""
  (name,) = params
  p = jnp.array(params[name])
  if p.size % chunk:
    raise ValueError(f"the one-pass prototype needs a multiple of {chunk} parameters")
  state = [p, jnp.zeros_like(p), jnp.zeros_like(p), jnp.zeros([], jnp.int32)]
  fn = jax.jit(
    lambda p, mu, nu, count, g: _step(
      p, mu, nu, count, g, chunk=chunk, lr=C.LR_ADAM, wd=C.WD_ADAMW
    ),
    donate_argnums=(0, 1, 2, 3),
  )
  start = time.perf_counter()
  compiled = fn.lower(*state, grads[name]).compile()
  compile_s = time.perf_counter() - start

  def run() -> None:
    state[:] = compiled(*state, grads[name])
    jax.block_until_ready(state)

  return C.Contender(
    "one pass",
    run,
    state_bytes=C.tree_bytes(state[1:]),
    compile_s=compile_s,
    current_params=lambda: {name: state[0]},
  )
