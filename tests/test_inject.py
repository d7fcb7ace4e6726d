"""optax_decay.inject_hyperparams: masks stay static, hyperparameters stay float32."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_decay


def _params():
  return {"w": jnp.arange(6.0).reshape(2, 3) / 6 + 0.5, "b": jnp.full(3, 0.5)}


def _kernels_only(params):
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _run(tx, params, steps=3):
  state = tx.init(params)
  grads = jax.tree.map(lambda p: jnp.cos(p), params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


@pytest.mark.parametrize("factory", [optax_decay.adamw, optax_decay.sgdw])
def test_callable_mask_matches_the_uninjected_optimizer(factory):
  params = _params()
  injected = optax_decay.inject_hyperparams(factory)(
    learning_rate=1e-2, weight_decay=0.1, mask=_kernels_only
  )
  plain = factory(1e-2, weight_decay=0.1, mask=_kernels_only)
  got, _ = _run(injected, params)
  want, _ = _run(plain, params)
  for key in params:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-6)
  # The bias is not decayed: its trajectory equals a run with no decay anywhere on it.
  no_decay, _ = _run(factory(1e-2, weight_decay=0.0), params)
  np.testing.assert_allclose(got["b"], no_decay["b"], rtol=1e-6)
  assert not np.allclose(got["w"], no_decay["w"], rtol=1e-6)


def test_plain_optax_inject_with_callable_mask_is_a_clear_error():
  tx = optax.inject_hyperparams(optax_decay.adamw)(
    learning_rate=1e-2, weight_decay=0.1, mask=_kernels_only
  )
  with pytest.raises(ValueError, match="static_args"):
    tx.init(_params())


def test_hyperparameters_are_float32_and_can_be_changed_between_steps():
  params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), _params())
  tx = optax_decay.inject_hyperparams(optax_decay.adamw)(learning_rate=0.1, weight_decay=0.1)
  state = tx.init(params)
  assert state.hyperparams["b2"].dtype == jnp.float32
  grads = jax.tree.map(jnp.ones_like, params)
  updates, state = jax.jit(tx.update)(grads, state, params)
  assert all(bool(jnp.isfinite(u).all()) for u in jax.tree.leaves(updates))
  # Setting weight_decay to 0 in the state removes the decay from the next step.
  state.hyperparams["weight_decay"] = jnp.zeros([], jnp.float32)
  no_decay, _ = jax.jit(tx.update)(grads, state, params)
  assert not np.array_equal(np.asarray(no_decay["w"]), np.asarray(updates["w"]))


def test_param_labels_stay_static_for_grouped_decay():
  params = _params()

  def labels(p):
    return {"w": "kernel", "b": "bias"}

  injected = optax_decay.inject_hyperparams(optax_decay.decoupled_decay_groups)(
    weight_decay={"kernel": 0.1, "bias": 0.0}, param_labels=labels
  )
  grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = injected.update(grads, injected.init(params), params)
  np.testing.assert_allclose(updates["w"], 0.1 * params["w"], rtol=1e-6)
  np.testing.assert_array_equal(updates["b"], np.zeros(3, np.float32))


def test_restart_periods_stay_static():
  params = _params()
  tx = optax_decay.inject_hyperparams(optax_decay.adamwr)(
    learning_rate=1e-2, first_period_steps=3, period_multiplier=2
  )
  state = tx.init(params)
  assert "first_period_steps" not in state.hyperparams
  assert "learning_rate" in state.hyperparams
  got, _ = _run(tx, params, steps=4)
  want, _ = _run(optax_decay.adamwr(1e-2, first_period_steps=3, period_multiplier=2), params, 4)
  for key in params:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5)
