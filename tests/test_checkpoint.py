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
