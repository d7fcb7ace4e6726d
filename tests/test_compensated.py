"""compensated_summation against a NumPy Kahan loop in bfloat16 (ml_dtypes)."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
import references

import optax_decay

BF16 = ml_dtypes.bfloat16


def _run(tx, params, grads_seq):
  state = tx.init(params)
  step = jax.jit(tx.update)
  for g in grads_seq:
    updates, state = step(g, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


def test_matches_numpy_kahan_loop_on_random_updates():
  rng = np.random.default_rng(0)
  w0 = rng.normal(size=64).astype(np.float32)
  seq = [(1e-4 * rng.normal(size=64)).astype(np.float32) for _ in range(200)]
  tx = optax_decay.compensated_summation()
  params = {"w": jnp.asarray(w0, jnp.bfloat16)}
  got, _ = _run(tx, params, [{"w": jnp.asarray(u, jnp.float32)} for u in seq])
  want = references.kahan_sum(w0, seq, BF16)  # float32 error carried between steps
  np.testing.assert_array_equal(np.asarray(got["w"]).astype(np.float32), want.astype(np.float32))
  # Plain bfloat16 addition loses these updates: the weights barely move.
  plain = w0.astype(BF16)
  for u in seq:
    plain = (plain.astype(np.float32) + u).astype(BF16)
  assert np.abs(plain.astype(np.float32) - want.astype(np.float32)).max() > 1e-3


def test_small_decay_acts_in_bfloat16_only_with_compensation():
  params = {"w": jnp.ones(8, jnp.bfloat16)}
  zeros = [{"w": jnp.zeros(8, jnp.bfloat16)}] * 500
  with pytest.warns(UserWarning, match="compensated_summation"):
    decay = optax_decay.sgdw(1.0, momentum=0.0, weight_decay=1e-4)
    plain, _ = _run(decay, params, zeros)
  np.testing.assert_array_equal(np.asarray(plain["w"], np.float32), 1.0)
  with pytest.warns(UserWarning, match="compensated_summation"):
    tx = optax.chain(decay, optax_decay.compensated_summation())
    fixed, _ = _run(tx, params, zeros)
  want = np.float32((1 - 1e-4) ** 500)  # 0.9512
  spacing = np.float32(2.0**-8)  # bfloat16 spacing in [0.5, 1)
  # Rounding to nearest keeps the carried error within half a spacing; the decay itself is
  # computed from the rounded weights, which moves the target slightly, so allow one spacing.
  assert abs(float(fixed["w"][0]) - want) <= spacing


def test_wide_and_integer_leaves_pass_through_without_state():
  params = {"f32": jnp.linspace(0.0, 1.0, 5), "i": jnp.arange(3), "h": jnp.ones(2, jnp.float16)}
  tx = optax_decay.compensated_summation()
  state = tx.init(params)
  assert isinstance(state.error["f32"], optax.MaskedNode)
  assert isinstance(state.error["i"], optax.MaskedNode)
  assert state.error["h"].dtype == jnp.float32
  updates = {"f32": jnp.full(5, 1e-3), "i": jnp.zeros(3, jnp.int32), "h": jnp.full(2, 1e-4)}
  new, _ = tx.update(updates, state, params)
  np.testing.assert_array_equal(new["f32"], updates["f32"])
  np.testing.assert_array_equal(new["i"], updates["i"])
  assert new["i"].dtype == jnp.int32


def test_needs_params():
  tx = optax_decay.compensated_summation()
  params = {"w": jnp.ones(2, jnp.bfloat16)}
  with pytest.raises(ValueError, match="compensated_summation"):
    tx.update(params, tx.init(params))
