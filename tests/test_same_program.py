"""Each alias compiles to the program its optax equivalent compiles to, kernel for kernel.

An invariant of the library, not of the benchmark: the decay costs nothing beyond what optax's
own code costs because XLA receives the same computation. The comparison is the optimized HLO of
one jitted step (update and apply), instruction by instruction with names and metadata removed
(`benchmarks._contenders.hlo_fingerprint`, the fingerprint the benchmark reports).
"""

import jax
import jax.numpy as jnp
import optax
import pytest

import optax_decay
from benchmarks._contenders import hlo_fingerprint

LR, WD, MU = 1e-3, 1e-2, 0.9
SCHEDULE = optax.cosine_decay_schedule(LR, 100)
PARAMS = {
  "dense": {"kernel": jnp.ones((64, 32)), "bias": jnp.ones((32,))},
  "out": {"kernel": jnp.ones((32, 10)), "bias": jnp.ones((10,))},
}
MASK = {
  "dense": {"kernel": True, "bias": False},
  "out": {"kernel": True, "bias": False},
}

PAIRS = {
  "adamw": lambda mask: (
    optax_decay.adamw(LR, weight_decay=WD, mask=mask),
    optax.adamw(LR, weight_decay=WD, mask=mask),
  ),
  "adamw-schedule": lambda mask: (
    optax_decay.adamw(SCHEDULE, weight_decay=WD, mask=mask),
    optax.adamw(SCHEDULE, weight_decay=WD, mask=mask),
  ),
  "adam_l2": lambda mask: (
    optax_decay.adam_l2(LR, l2=WD, mask=mask),
    optax.chain(optax.add_decayed_weights(WD, mask), optax.adam(LR)),
  ),
  "sgdw": lambda mask: (
    optax_decay.sgdw(LR, momentum=MU, weight_decay=WD, mask=mask),
    optax.chain(
      optax.trace(MU), optax.add_decayed_weights(WD, mask), optax.scale_by_learning_rate(LR)
    ),
  ),
  "sgd_l2": lambda mask: (
    optax_decay.sgd_l2(LR, momentum=MU, l2=WD, mask=mask),
    optax.chain(optax.add_decayed_weights(WD, mask), optax.sgd(LR, momentum=MU)),
  ),
  "with_decoupled_decay(adam)": lambda mask: (
    optax_decay.with_decoupled_decay(optax.adam)(LR, weight_decay=WD, mask=mask),
    optax.adamw(LR, weight_decay=WD, mask=mask),
  ),
  "with_decoupled_decay(nadam)": lambda mask: (
    optax_decay.with_decoupled_decay(optax.nadam)(LR, weight_decay=WD, mask=mask),
    optax.nadamw(LR, weight_decay=WD, mask=mask),
  ),
}


def _program(tx: optax.GradientTransformation) -> tuple[str, ...]:
  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  grads = jax.tree.map(lambda p: 0.5 * p, PARAMS)
  compiled = jax.jit(step).lower(PARAMS, tx.init(PARAMS), grads).compile()
  return hlo_fingerprint(compiled.as_text())


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_compiles_to_the_program_of_its_optax_equivalent(name, masked):
  ours, theirs = PAIRS[name](MASK if masked else None)
  ours_program, theirs_program = _program(ours), _program(theirs)
  assert ours_program == theirs_program, sorted(set(ours_program) ^ set(theirs_program))[:6]


def test_the_fingerprint_tells_programs_apart():
  # A check that cannot fail proves nothing: a different decay is a different program.
  assert _program(optax_decay.adamw(LR, weight_decay=WD)) != _program(optax.adam(LR))
  assert _program(optax_decay.adamw(LR, weight_decay=WD)) != _program(
    optax_decay.adamw(LR, weight_decay=WD, coupling="none")
  )
