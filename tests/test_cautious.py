"""Cautious weight decay against a NumPy loop of Chen et al. (2025)'s rule."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references

import optax_decay


def test_cautious_adamw_matches_the_rule():
  rng = np.random.default_rng(0)
  target = rng.normal(size=16).astype(np.float64)
  w0 = rng.normal(size=16).astype(np.float64)

  def grads_np(p):
    return {"w": 2 * (p["w"] - target)}

  def loss(p):
    return jnp.sum((p["w"] - target) ** 2)

  lr, wd, steps = 1e-2, 0.5, 60
  tx = optax_decay.adamw(lr, weight_decay=wd, cautious=True)
  params = {"w": jnp.asarray(w0, jnp.float32)}
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
  for _ in range(steps):
    updates, state = step(params, state)
    params = optax.apply_updates(params, updates)
  want = references.adam({"w": w0}, grads_np, steps, lr, weight_decay=wd, cautious=True)
  np.testing.assert_allclose(params["w"], want[-1]["w"], rtol=2e-4, atol=2e-5)


def test_cautious_skips_exactly_the_disagreeing_coordinates():
  # Identity preconditioner: the update is the gradient itself, so the sign test is visible.
  params = {"w": jnp.array([1.0, 1.0, -1.0, -1.0])}
  grads = {"w": jnp.array([0.5, -0.5, 0.5, -0.5])}
  tx = optax_decay.decoupled_decay(0.1, cautious=True)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["w"], np.float32([0.6, -0.5, 0.5, -0.6]))


@pytest.mark.parametrize("coupling", ["lr", "none"])
def test_cautious_differs_from_plain_decay_only_where_signs_disagree(coupling):
  params = {"w": jnp.array([2.0, -2.0, 2.0])}
  grads = {"w": jnp.array([1.0, 1.0, -1.0])}
  plain = optax_decay.sgdw(0.1, momentum=0.0, weight_decay=0.5, coupling=coupling)
  cautious = optax_decay.sgdw(0.1, momentum=0.0, weight_decay=0.5, coupling=coupling, cautious=True)
  u_plain, _ = plain.update(grads, plain.init(params), params)
  u_cautious, _ = cautious.update(grads, cautious.init(params), params)
  agree = np.array([True, False, False])
  np.testing.assert_array_equal(np.asarray(u_plain["w"])[agree], np.asarray(u_cautious["w"])[agree])
  np.testing.assert_allclose(np.asarray(u_cautious["w"])[~agree], -0.1 * np.array([1.0, -1.0]))


def test_cautious_must_be_a_bool():
  with pytest.raises(TypeError, match="cautious"):
    optax_decay.decoupled_decay(0.1, cautious="yes")
