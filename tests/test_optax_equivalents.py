"""Every optax optimizer with a weight-decay argument, rebuilt from optax_decay's transforms.

Each optax alias below puts `optax.add_decayed_weights` at some position of its chain; that
position decides whether its `weight_decay` is L2 regularization or decoupled decay, and how the
decay is coupled to the learning rate. Rebuilding the chain with `add_l2_to_grads` or
`decoupled_decay` in the same position must give the same weights bit for bit, which documents
what each optax optimizer does (docs/migration.md has the table).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_equal

import optax_decay

LR, WD = 1e-2, 0.1
MASK = {"w": True, "b": False}


def _ours_lion():
  return optax.chain(
    optax.scale_by_lion(),
    optax_decay.decoupled_decay(WD, MASK),
    optax.scale_by_learning_rate(LR),
  )


def _ours_adamaxw():
  return optax.chain(
    optax.scale_by_adamax(),
    optax_decay.decoupled_decay(WD, MASK),
    optax.scale_by_learning_rate(LR),
  )


def _ours_nadamw():
  return optax_decay.adamw(LR, weight_decay=WD, mask=MASK, nesterov=True)


def _ours_adan():
  return optax.chain(
    optax.scale_by_adan(),
    optax_decay.decoupled_decay(WD, MASK),
    optax.scale_by_learning_rate(LR),
  )


def _ours_lamb():
  # Decoupled from Adam's moments, but added before the trust ratio, which rescales it.
  return optax.chain(
    optax.scale_by_adam(eps=1e-6),
    optax_decay.decoupled_decay(WD, MASK),
    optax.scale_by_trust_ratio(),
    optax.scale_by_learning_rate(LR),
  )


def _ours_adafactor():
  # The decay comes after the learning rate: each step removes WD·w whatever lr is ("none").
  return optax.chain(
    optax.scale_by_factored_rms(),
    optax.clip_by_block_rms(1.0),
    optax.scale_by_learning_rate(LR, flip_sign=False),
    optax.scale_by_param_block_rms(),
    optax_decay.decoupled_decay(WD, MASK),
    optax.scale(-1.0),
  )


def _ours_lars():
  # The decay enters before the trust ratio and the momentum: L2 regularization.
  return optax.chain(
    optax_decay.add_l2_to_grads(WD, MASK),
    optax.scale_by_trust_ratio(trust_coefficient=0.001),
    optax.scale_by_learning_rate(LR),
    optax.trace(decay=0.9),
  )


def _ours_adadelta():
  return optax.chain(
    optax_decay.add_l2_to_grads(WD, MASK),
    optax.scale_by_adadelta(),
    optax.scale_by_learning_rate(LR),
  )


CASES = {
  "lion": (lambda: optax.lion(LR, weight_decay=WD, mask=MASK), _ours_lion),
  "adamaxw": (lambda: optax.adamaxw(LR, weight_decay=WD, mask=MASK), _ours_adamaxw),
  "nadamw": (lambda: optax.nadamw(LR, weight_decay=WD, mask=MASK), _ours_nadamw),
  "adan": (lambda: optax.adan(LR, weight_decay=WD, mask=MASK), _ours_adan),
  "lamb": (lambda: optax.lamb(LR, weight_decay=WD, mask=MASK), _ours_lamb),
  "adafactor": (
    lambda: optax.adafactor(LR, weight_decay_rate=WD, weight_decay_mask=MASK),
    _ours_adafactor,
  ),
  "lars": (lambda: optax.lars(LR, weight_decay=WD, weight_decay_mask=MASK), _ours_lars),
  "adadelta": (
    lambda: optax.adadelta(LR, weight_decay=WD, weight_decay_mask=MASK),
    _ours_adadelta,
  ),
}


def _run(tx, steps=12):
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32), "b": jnp.ones(3)}
  state = tx.init(params)
  step = jax.jit(tx.update)
  for _ in range(steps):
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
    updates, state = step(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize("name", sorted(CASES))
def test_rebuilt_chain_equals_the_optax_alias_bit_for_bit(name):
  theirs, ours = CASES[name]
  assert_trees_equal(_run(ours()), _run(theirs()))


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_decay_matters_in_each_comparison(name):
  # Without it the weights end elsewhere, so the equality above is not vacuous.
  theirs, _ = CASES[name]
  decayed = _run(theirs())
  with_zero = {
    "adafactor": lambda: optax.adafactor(LR, weight_decay_rate=0.0, weight_decay_mask=MASK),
    "lars": lambda: optax.lars(LR, weight_decay=0.0, weight_decay_mask=MASK),
    "adadelta": lambda: optax.adadelta(LR, weight_decay=0.0, weight_decay_mask=MASK),
  }.get(name)
  if with_zero is None:
    undecayed = _run(getattr(optax, name)(LR, weight_decay=0.0, mask=MASK))
  else:
    undecayed = _run(with_zero())
  assert float(jnp.max(jnp.abs(decayed["w"] - undecayed["w"]))) > 1e-6
  assert_trees_equal(decayed["b"], undecayed["b"])  # the mask keeps b out
