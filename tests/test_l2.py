"""`add_l2_to_grads` is the gradient of `loss + λ/2·||w||²`, checked against `jax.grad`."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import LeastSquares, assert_trees_close, assert_trees_equal, enable_x64, run_optimizer

import optax_decay

PROBLEM = LeastSquares(seed=1)


def penalized_loss(l2, mask=None):
  """loss(p) + λ/2 · Σ ||p_i||² over the leaves that `mask` (a dict of bools) selects."""

  def fn(params):
    penalty = sum(jnp.sum(p**2) for k, p in params.items() if mask is None or mask[k])
    return PROBLEM.loss(params) + 0.5 * l2 * penalty

  return fn


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("l2", [0.0, 1e-3, 0.1, 2.5])
def test_equals_grad_of_penalized_loss(dtype, l2):
  with enable_x64(dtype == jnp.float64):
    params = PROBLEM.params(dtype)
    tx = optax_decay.add_l2_to_grads(l2)
    grads = jax.grad(PROBLEM.loss)(params)
    updates, _ = tx.update(grads, tx.init(params), params)
    expected = jax.grad(penalized_loss(l2))(params)
    rtol = 1e-6 if dtype == jnp.float32 else 1e-14
    assert_trees_close(updates, expected, rtol=rtol, atol=0)
    assert all(u.dtype == dtype for u in jax.tree.leaves(updates))
    if l2 > 0:  # the penalty must actually change the gradient
      diff = np.abs(np.asarray(updates["w"]) - np.asarray(grads["w"])).max()
      assert diff > 1e-4 * l2


def test_zero_l2_is_identity_bitwise():
  params = PROBLEM.params(jnp.float32)
  grads = jax.grad(PROBLEM.loss)(params)
  tx = optax_decay.add_l2_to_grads(0.0)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert_trees_equal(updates, grads)


@pytest.mark.parametrize("jit", [False, True])
def test_sgd_on_l2_equals_sgd_on_penalized_loss(jit):
  """Many steps: chain(add_l2_to_grads(λ), sgd(lr)) follows gradient descent on loss + λ/2||w||²."""
  with enable_x64(True):
    l2, lr = 0.3, 0.05
    params = PROBLEM.params(jnp.float64)
    tx = optax.chain(optax_decay.add_l2_to_grads(l2), optax.sgd(lr, momentum=0.9))
    got = run_optimizer(tx, jax.grad(PROBLEM.loss), params, 60, jit=jit)
    want = run_optimizer(optax.sgd(lr, momentum=0.9), jax.grad(penalized_loss(l2)), params, 60)
    for g, w in zip(got, want, strict=True):
      assert_trees_close(g, w, rtol=1e-12, atol=1e-14)
    # and the penalty changed the trajectory
    plain = run_optimizer(optax.sgd(lr, momentum=0.9), jax.grad(PROBLEM.loss), params, 60)
    assert np.abs(np.asarray(got[-1]["w"]) - np.asarray(plain[-1]["w"])).max() > 1e-3


@pytest.mark.parametrize("jit", [False, True])
def test_schedule_sees_step_count_from_zero(jit):
  """A schedule l2(t) is evaluated at t = 0 on the first update, then 1, 2, ..."""

  def l2_schedule(count):
    return 0.1 * (count + 1.0)  # distinct at every step; 0.1 at the first update

  with enable_x64(True):
    params = PROBLEM.params(jnp.float64)
    tx = optax_decay.add_l2_to_grads(l2_schedule)
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    for t in range(6):
      grads = jax.grad(PROBLEM.loss)(params)
      updates, state = update(grads, state, params)
      expected = jax.grad(penalized_loss(0.1 * (t + 1)))(params)
      assert_trees_close(updates, expected, rtol=1e-13, atol=0)
      # move the params so each step sees different weights
      params = jax.tree.map(lambda p, u: p - 0.1 * u, params, updates)


def test_schedule_count_in_chain_matches_learning_rate_count():
  """In a chain with a scheduled lr, both schedules see the same count at every step."""
  seen = []

  def l2_schedule(count):
    return jnp.where(count == 0, 1.0, 0.0)  # penalize at the first update only

  def lr_schedule(count):
    return jnp.where(count == 0, 0.5, 0.25)

  params = {"w": jnp.array([2.0, -4.0])}
  tx = optax.chain(optax_decay.add_l2_to_grads(l2_schedule), optax.sgd(lr_schedule))
  state = tx.init(params)
  zeros = {"w": jnp.zeros(2)}
  for _ in range(3):
    updates, state = tx.update(zeros, state, params)
    seen.append(np.asarray(updates["w"]))
  np.testing.assert_array_equal(seen[0], [-1.0, 2.0])  # -0.5 * 1.0 * w
  np.testing.assert_array_equal(seen[1], [0.0, 0.0])
  np.testing.assert_array_equal(seen[2], [0.0, 0.0])


@pytest.mark.parametrize(
  "mask",
  [
    {"w": True, "b": False},
    {"w": False, "b": True},
    lambda p: {"w": True, "b": False},
  ],
  ids=["w-only", "b-only", "callable"],
)
def test_mask_leaves_excluded_untouched(mask):
  with enable_x64(True):
    l2 = 0.7
    params = PROBLEM.params(jnp.float64)
    grads = jax.grad(PROBLEM.loss)(params)
    tx = optax_decay.add_l2_to_grads(l2, mask)
    updates, _ = tx.update(grads, tx.init(params), params)
    flags = mask(params) if callable(mask) else mask
    expected = jax.grad(penalized_loss(l2, flags))(params)
    assert_trees_close(updates, expected, rtol=1e-14, atol=0)
    for key, flag in flags.items():
      if not flag:  # excluded leaves: the gradient passes bit for bit
        np.testing.assert_array_equal(np.asarray(updates[key]), np.asarray(grads[key]))
      else:
        assert np.abs(np.asarray(updates[key]) - np.asarray(grads[key])).max() > 1e-3


def test_prefix_mask_on_nested_params(small_params):
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), small_params)
  l2 = 0.25
  tx = optax_decay.add_l2_to_grads(l2, {"w": True, "b": False, "norm": False})
  updates, _ = tx.update(grads, tx.init(small_params), small_params)
  np.testing.assert_array_equal(updates["b"], grads["b"])
  np.testing.assert_array_equal(updates["norm"]["scale"], grads["norm"]["scale"])
  np.testing.assert_allclose(updates["w"], 0.5 + l2 * np.asarray(small_params["w"]), rtol=1e-6)


def test_integer_leaves_pass_through():
  params = {"w": jnp.array([1.0, -2.0]), "step": jnp.array(3, jnp.int32)}
  grads = {"w": jnp.array([0.5, 0.5]), "step": jnp.array(7, jnp.int32)}
  tx = optax_decay.add_l2_to_grads(0.5)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["step"], 7)
  assert updates["step"].dtype == jnp.int32
  np.testing.assert_array_equal(updates["w"], [1.0, -0.5])
