"""Optimizer state saved with Orbax mid-run and restored continues bit for bit.

The restore target is built the way a restarted job builds it: a fresh transform, `tx.init` on
freshly initialised parameters, so only the structure and dtypes come from the new process and
every number comes from the checkpoint.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import needs_optax_decay_schedules

import optax_decay

ocp = pytest.importorskip(
  "orbax.checkpoint", reason="orbax-checkpoint is not installed (pip install orbax-checkpoint)"
)

STEPS, SAVE_AT = 8, 3


def _kernels(params):
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _adamw():
  lr = optax.warmup_cosine_decay_schedule(0.0, 0.1, warmup_steps=2, decay_steps=STEPS)
  decay = optax.linear_schedule(0.1, 0.02, transition_steps=STEPS)
  return optax_decay.adamw(lr, weight_decay=decay, mask=_kernels)


def _injected_adamw():
  lr = optax.cosine_decay_schedule(0.1, decay_steps=STEPS)
  return optax_decay.inject_hyperparams(optax_decay.adamw)(
    learning_rate=lr, weight_decay=0.1, mask={"w": True, "b": False, "norm": False}
  )


def _anchor_bf16():
  # An anchor copy of the weights and float32 rounding-error buffers in the state.
  return optax.chain(
    optax.scale_by_adam(),
    optax_decay.decay_to_anchor(0.5, mask={"w": True, "b": False, "norm": False}),
    optax.scale_by_learning_rate(optax.linear_schedule(0.1, 0.01, transition_steps=STEPS)),
    optax_decay.compensated_summation(),
  )


def _adams():
  # A scalar moving average next to Adam's moments, wrapped in the decay's own state.
  lr = optax.cosine_decay_schedule(0.1, decay_steps=STEPS)
  return optax_decay.adams(lr, weight_decay=0.1, mask=_kernels)


CASES = {
  "adams": (_adams, jnp.float32),
  "adamw-schedules-mask": (_adamw, jnp.float32),
  "injected-adamw": (_injected_adamw, jnp.float32),
  "anchor-compensated-bf16": (_anchor_bf16, jnp.bfloat16),
}


def _params(dtype, seed=0):
  rng = np.random.default_rng(seed)
  tree = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=(3,)), "norm": {"scale": np.ones(3)}}
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def _grads(step, dtype):
  rng = np.random.default_rng(100 + step)
  return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), dtype), _params(dtype))


def _train(tx, params, state, start, stop, dtype):
  update = jax.jit(tx.update)
  for step in range(start, stop):
    updates, state = update(_grads(step, dtype), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


def _assert_identical(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for (path, x), y in zip(
    jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want), strict=True
  ):
    where = jax.tree_util.keystr(path)
    assert x.dtype == y.dtype and x.shape == y.shape, where
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=where)


@pytest.mark.parametrize("case", sorted(CASES))
def test_restored_state_continues_bit_for_bit(case, tmp_path):
  make_tx, dtype = CASES[case]
  tx = make_tx()
  params = _params(dtype)
  want_params, want_state = _train(tx, params, tx.init(params), 0, STEPS, dtype)

  mid_params, mid_state = _train(tx, params, tx.init(params), 0, SAVE_AT, dtype)
  checkpointer = ocp.StandardCheckpointer()
  path = tmp_path / "checkpoint"
  checkpointer.save(path, {"params": mid_params, "opt_state": mid_state})
  checkpointer.wait_until_finished()

  # A restarted job: new transform, new parameters, the state only as a structure to fill.
  fresh_tx = make_tx()
  fresh_params = _params(dtype, seed=1)
  target = {"params": fresh_params, "opt_state": fresh_tx.init(fresh_params)}
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  restored = checkpointer.restore(path, abstract)
  checkpointer.close()

  _assert_identical(restored["opt_state"], mid_state)
  _assert_identical(restored["params"], mid_params)
  got_params, got_state = _train(
    fresh_tx, restored["params"], restored["opt_state"], SAVE_AT, STEPS, dtype
  )
  _assert_identical(got_state, want_state)
  _assert_identical(got_params, want_params)


# --- a checkpoint written by optax restores into ours ------------------------------------------

LR_SCHEDULE = optax.linear_schedule(0.1, 0.02, transition_steps=STEPS)
WD_SCHEDULE = optax.linear_schedule(0.1, 0.05, transition_steps=STEPS)
MASK = {"w": True, "b": False, "norm": False}

# Ours and the optax code a user switches from (the README's table), with the same arguments.
SWITCHES = {
  "adamw": (
    lambda: optax_decay.adamw(0.1, weight_decay=0.1),
    lambda: optax.adamw(0.1, weight_decay=0.1),
  ),
  "adamw-masked-schedules": (
    lambda: optax_decay.adamw(LR_SCHEDULE, weight_decay=WD_SCHEDULE, mask=MASK),
    lambda: optax.adamw(LR_SCHEDULE, weight_decay=WD_SCHEDULE, mask=MASK),
  ),
  "adamw-mask-function": (
    lambda: optax_decay.adamw(LR_SCHEDULE, weight_decay=0.1, mask=_kernels, nesterov=True),
    lambda: optax.adamw(LR_SCHEDULE, weight_decay=0.1, mask=_kernels, nesterov=True),
  ),
  "adam_l2": (
    lambda: optax_decay.adam_l2(LR_SCHEDULE, l2=0.1, mask=MASK),
    lambda: optax.chain(optax.add_decayed_weights(0.1, MASK), optax.adam(LR_SCHEDULE)),
  ),
  "sgdw": (
    lambda: optax_decay.sgdw(LR_SCHEDULE, 0.9, weight_decay=0.1, mask=MASK),
    lambda: optax.chain(
      optax.trace(0.9),
      optax.add_decayed_weights(0.1, MASK),
      optax.scale_by_learning_rate(LR_SCHEDULE),
    ),
  ),
  "sgd_l2": (
    lambda: optax_decay.sgd_l2(0.1, 0.9, l2=WD_SCHEDULE, mask=_kernels),
    lambda: optax.chain(optax.add_decayed_weights(WD_SCHEDULE, _kernels), optax.sgd(0.1, 0.9)),
  ),
}
# The switches whose optax side decays on a schedule.
DECAY_SCHEDULES = {"adamw-masked-schedules", "sgd_l2"}


def _orbax_round_trip(tmp_path, tree, target):
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "checkpoint", tree)
  checkpointer.wait_until_finished()
  restored = checkpointer.restore(
    tmp_path / "checkpoint", jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  )
  checkpointer.close()
  return restored


def _flax_round_trip(tmp_path, tree, target):
  serialization = pytest.importorskip("flax.serialization")
  return serialization.from_bytes(target, serialization.to_bytes(tree))


@pytest.mark.parametrize("via", ["orbax", "flax.serialization"])
@pytest.mark.parametrize("case", sorted(SWITCHES))
def test_an_optax_checkpoint_restores_into_ours_and_continues_bit_for_bit(case, via, tmp_path):
  if case in DECAY_SCHEDULES:
    needs_optax_decay_schedules()
  ours, theirs = (make() for make in SWITCHES[case])
  dtype = jnp.float32
  params = _params(dtype)
  want_params, want_state = _train(theirs, params, theirs.init(params), 0, STEPS, dtype)

  # The run so far was optax's; the restarted job builds ours and restores optax's state into it.
  mid_params, mid_state = _train(theirs, params, theirs.init(params), 0, SAVE_AT, dtype)
  target = {"params": _params(dtype, seed=1), "opt_state": ours.init(_params(dtype, seed=1))}
  assert [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(target)[0]] == [
    jax.tree_util.keystr(p)
    for p, _ in jax.tree_util.tree_flatten_with_path({"params": params, "opt_state": mid_state})[0]
  ]
  round_trip = {"orbax": _orbax_round_trip, "flax.serialization": _flax_round_trip}[via]
  restored = round_trip(tmp_path, {"params": mid_params, "opt_state": mid_state}, target)

  got_params, got_state = _train(
    ours, restored["params"], restored["opt_state"], SAVE_AT, STEPS, dtype
  )
  _assert_identical(got_params, want_params)
  # The same numbers in the same places; only the state's NamedTuple classes may differ.
  _assert_identical(jax.tree.leaves(got_state), jax.tree.leaves(want_state))
