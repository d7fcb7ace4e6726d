"""The optimizers compared, each wrapped as a `Contender` whose `step()` runs one update.

Every JAX contender is the same jitted function, `params, state <- step(params, state, grads)`,
with the parameters and the optimizer state donated so that XLA may update them in place, as a
training loop would. PyTorch contenders call `optimizer.step()` on tensors whose `.grad` is set
once. Gradients are never donated: each step reads the same ones again.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_decay

ALIASES = ("adamw", "adam_l2", "sgdw", "sgd_l2")

# Hyperparameters for every contender. AdamW uses PyTorch's default decay: lr·λ = 1e-5 stays
# well above float32's resolution, so optax_decay issues no rounding warning.
LR_ADAM, WD_ADAMW, L2_ADAM = 1e-3, 1e-2, 1e-4
LR_SGD, MOMENTUM, WD_SGD = 1e-2, 0.9, 1e-4

# Arrays a fused implementation must read and write once per step: Adam reads params, grads,
# mu and nu and writes params, mu and nu; SGD with momentum reads params, grads and the buffer
# and writes params and the buffer. The update itself never needs to reach memory.
MIN_PASSES = {"adamw": 7, "adam_l2": 7, "sgdw": 5, "sgd_l2": 5}


@dataclasses.dataclass
class Contender:
  """One timed implementation of one optimizer step."""

  name: str
  step: Callable[[], None]
  state_bytes: int | None = None
  compile_s: float | None = None
  trace_s: float | None = None
  xla_bytes: float | None = None
  note: str = ""
  hlo: tuple[str, ...] | None = None


def make_tree(n_params: int, n_leaves: int, seed: int) -> dict[str, np.ndarray]:
  """`n_leaves` float32 vectors holding `n_params` numbers in all (the first takes the rest)."""
  rng = np.random.default_rng(seed)
  size = n_params // n_leaves
  sizes = [n_params - size * (n_leaves - 1)] + [size] * (n_leaves - 1)
  return {f"leaf{i:04d}": rng.standard_normal(s, dtype=np.float32) for i, s in enumerate(sizes)}


def alternate_mask(tree: dict[str, Any]) -> dict[str, bool]:
  """Decay every other leaf, as a kernel/bias model would."""
  return {name: i % 2 == 0 for i, name in enumerate(tree)}


def ours(alias: str, mask: Any = None) -> optax.GradientTransformation:
  """optax_decay's alias with the shared hyperparameters."""
  if alias == "adamw":
    return optax_decay.adamw(LR_ADAM, weight_decay=WD_ADAMW, mask=mask)
  if alias == "adam_l2":
    return optax_decay.adam_l2(LR_ADAM, l2=L2_ADAM, mask=mask)
  if alias == "sgdw":
    return optax_decay.sgdw(LR_SGD, momentum=MOMENTUM, weight_decay=WD_SGD, mask=mask)
  if alias == "sgd_l2":
    return optax_decay.sgd_l2(LR_SGD, momentum=MOMENTUM, l2=WD_SGD, mask=mask)
  raise ValueError(f"unknown alias {alias!r}")


def reference(alias: str, mask: Any = None) -> optax.GradientTransformation:
  """The same optimizer built from optax's own pieces, as an optax user writes it today."""
  if alias == "adamw":
    return optax.adamw(LR_ADAM, weight_decay=WD_ADAMW, mask=mask)
  if alias == "adam_l2":
    return optax.chain(optax.add_decayed_weights(L2_ADAM, mask), optax.adam(LR_ADAM))
  if alias == "sgdw":
    return optax.chain(
      optax.trace(MOMENTUM),
      optax.add_decayed_weights(WD_SGD, mask),
      optax.scale_by_learning_rate(LR_SGD),
    )
  if alias == "sgd_l2":
    return optax.chain(
      optax.add_decayed_weights(WD_SGD, mask), optax.sgd(LR_SGD, momentum=MOMENTUM)
    )
  raise ValueError(f"unknown alias {alias!r}")


def hlo_fingerprint(text: str) -> tuple[str, ...]:
  """The optimized HLO's instructions, sorted, with names, metadata and source locations gone.

  Two optimizers with the same fingerprint run the same kernels on the same shapes; any gap in
  their step times is then noise, not code.
  """
  instructions = []
  for line in text.splitlines():
    if not re.match(r"\s*(ROOT\s+)?%[\w.\-]+ = ", line):
      continue
    line = re.sub(r",\s*metadata=\{[^}]*\}", "", line)
    line = re.sub(r"%[\w.\-]+", "%", line)
    instructions.append(re.sub(r"\s+", " ", line).strip())
  return tuple(sorted(instructions))


def tree_bytes(tree: Any) -> int:
  # A jax.Array knows its size: np.asarray would first copy a GPU array to the host.
  return int(
    sum(x.nbytes if hasattr(x, "nbytes") else np.asarray(x).nbytes for x in jax.tree.leaves(tree))
  )


def jax_contender(
  name: str, tx: optax.GradientTransformation, params: dict, grads: Any
) -> Contender:
  """Compiles one donated, jitted step of `tx`; times the trace and the compilation apart.

  `jax.jit` is rebuilt around a fresh closure on every call, so nothing is reused from an
  earlier compilation of the same optimizer.
  """
  params = {k: jnp.array(v) for k, v in params.items()}
  state = tx.init(params)

  def step(p, s, g):
    updates, s = tx.update(g, s, p)
    return optax.apply_updates(p, updates), s

  start = time.perf_counter()
  lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads)
  traced = time.perf_counter()
  compiled = lowered.compile()
  done = time.perf_counter()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  holder = [params, state]

  def run() -> None:
    holder[0], holder[1] = compiled(holder[0], holder[1], grads)
    jax.block_until_ready(holder)

  return Contender(
    name,
    run,
    state_bytes=tree_bytes(state),
    compile_s=done - start,
    trace_s=traced - start,
    xla_bytes=float(cost.get("bytes accessed", float("nan"))),
    hlo=hlo_fingerprint(compiled.as_text()),
  )


def stream_contender(n_bytes: int) -> Contender:
  """A jitted triad `a·s + b` moving `n_bytes` (two reads and one write per element).

  Interleaved with the optimizers it measures the bandwidth available at the same moment and
  for the same amount of traffic, so that its time is the roofline for a step that moves
  `n_bytes`: cache effects and the load that other processes put on the machine hit both.
  """
  size = max(1, n_bytes // 12)
  a, b = jnp.ones(size, jnp.float32), jnp.full(size, 0.5, jnp.float32)
  triad = jax.jit(lambda a, b: a * 0.999 + b, donate_argnums=0)
  holder = [a]

  def run() -> None:
    holder[0] = triad(holder[0], b)
    holder[0].block_until_ready()

  return Contender("stream triad", run, note=f"{12 * size / 1e6:.0f} MB moved")
