"""`add_l1_to_grads` adds the subgradient λ·sign(w): checked against `jax.grad` and NumPy loops."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from helpers import (
  assert_histories_close,
  assert_trees_close,
  assert_trees_equal,
  enable_x64,
  run_optimizer,
)

import optax_decay

RNG = np.random.default_rng(11)
X = RNG.normal(size=(12, 4))
Y = RNG.normal(size=(12, 2))
INIT = {"w": RNG.normal(size=(4, 2)), "b": RNG.normal(size=(2,))}


def make_params(dtype):
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), INIT)


def loss(params):
  dtype = params["w"].dtype
  r = jnp.asarray(X, dtype) @ params["w"] + params["b"] - jnp.asarray(Y, dtype)
  return 0.5 * jnp.mean(jnp.sum(r**2, axis=1))


def grad_np(params):
  """The gradient of `loss`, by hand, in NumPy float64."""
  r = X @ params["w"] + params["b"] - Y
  return {"w": X.T @ r / len(X), "b": r.mean(axis=0)}


def l1_loss(l1, mask=None):
  def fn(params):
    penalty = sum(jnp.sum(jnp.abs(p)) for k, p in params.items() if mask is None or mask[k])
    return loss(params) + l1 * penalty

  return fn


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("l1", [1e-3, 0.1, 2.5])
def test_equals_grad_of_l1_penalized_loss(dtype, l1):
  # No parameter is 0 here, so |w| is differentiable and jax.grad is the subgradient.
  with enable_x64(dtype == jnp.float64):
    params = make_params(dtype)
    tx = optax_decay.add_l1_to_grads(l1)
    updates, _ = tx.update(jax.grad(loss)(params), tx.init(params), params)
    expected = jax.grad(l1_loss(l1))(params)
    assert_trees_close(updates, expected, rtol=1e-6 if dtype == jnp.float32 else 1e-14)
    assert all(u.dtype == dtype for u in jax.tree.leaves(updates))


def test_sign_of_zero_is_zero():
  params = {"w": jnp.array([0.0, -0.0, 2.0, -3.0])}
  grads = {"w": jnp.array([0.25, -0.5, 0.0, 0.0])}
  tx = optax_decay.add_l1_to_grads(0.5)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["w"], [0.25, -0.5, 0.5, -0.5])


def test_zero_l1_is_identity_bitwise():
  params = make_params(jnp.float32)
  grads = jax.grad(loss)(params)
  tx = optax_decay.add_l1_to_grads(0.0)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert_trees_equal(updates, grads)


@pytest.mark.parametrize("jit", [False, True])
def test_momentum_sgd_matches_numpy_subgradient_loop(jit):
  """SGD with momentum on loss + λ||w||₁ (subgradient), written out in NumPy float64."""
  l1, lr, mu, steps = 0.05, 0.1, 0.9, 50
  mask = {"w": True, "b": False}
  tx = optax.chain(optax_decay.add_l1_to_grads(l1, mask), optax.sgd(lr, momentum=mu))
  with enable_x64(True):
    # The gradient compiled once either way: `jit` is about the optimizer's update.
    got = run_optimizer(tx, jax.jit(jax.grad(loss)), make_params(jnp.float64), steps, jit)
  want = references.sgd(INIT, grad_np, steps, lr, momentum=mu, l1=l1, mask=mask)
  assert_histories_close(got, want, rtol=1e-12, atol=1e-14)


def test_schedule_sees_step_count_from_zero_like_the_learning_rate():
  seen_l1, seen_lr = [], []

  def l1_schedule(count):
    seen_l1.append(int(count))
    return 0.5 * (count + 1.0)

  def lr_schedule(count):
    seen_lr.append(int(count))
    return 1.0

  params = {"w": jnp.array([2.0, -4.0])}
  tx = optax.chain(optax_decay.add_l1_to_grads(l1_schedule), optax.sgd(lr_schedule))
  state = tx.init(params)
  for t in range(3):
    updates, state = tx.update({"w": jnp.zeros(2)}, state, params)
    np.testing.assert_array_equal(updates["w"], [-0.5 * (t + 1), 0.5 * (t + 1)])
  assert seen_l1 == seen_lr == [0, 1, 2]


@pytest.mark.parametrize(
  "mask",
  [{"w": True, "b": False}, {"w": False, "b": True}, lambda p: {"w": True, "b": False}],
  ids=["w-only", "b-only", "callable"],
)
def test_mask_selects_penalized_leaves(mask):
  with enable_x64(True):
    params = make_params(jnp.float64)
    grads = jax.grad(loss)(params)
    tx = optax_decay.add_l1_to_grads(0.3, mask)
    updates, _ = tx.update(grads, tx.init(params), params)
    flags = mask(params) if callable(mask) else mask
    assert_trees_close(updates, jax.grad(l1_loss(0.3, flags))(params), rtol=1e-14)
    for key, flag in flags.items():
      if not flag:
        np.testing.assert_array_equal(updates[key], grads[key])


def test_callable_mask_sees_the_parameters_not_their_signs():
  seen = []

  def mask(params):
    seen.append(np.asarray(params["w"]))
    return {"w": True, "b": False}

  params = make_params(jnp.float32)
  tx = optax_decay.add_l1_to_grads(0.1, mask)
  tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  assert len(seen) == 2  # at init and at update
  for value in seen:
    np.testing.assert_array_equal(value, params["w"])


def test_prefix_mask_and_integer_leaves():
  params = {
    "layer": {"w": jnp.array([1.0, -2.0]), "b": jnp.array([3.0])},
    "norm": jnp.array([4.0]),
    "n": jnp.array(3),
  }
  grads = {
    "layer": {"w": jnp.zeros(2), "b": jnp.zeros(1)},
    "norm": jnp.ones(1),
    "n": jnp.array(7),
  }
  tx = optax_decay.add_l1_to_grads(0.5, {"layer": True, "norm": False, "n": True})
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["layer"]["w"], [0.5, -0.5])
  np.testing.assert_array_equal(updates["layer"]["b"], [0.5])
  np.testing.assert_array_equal(updates["norm"], [1.0])
  assert updates["n"].dtype == jnp.int32 and int(updates["n"]) == 7


def test_bfloat16_stays_bfloat16():
  params = {"w": jnp.array([1.0, -1.0], jnp.bfloat16)}
  tx = optax_decay.add_l1_to_grads(optax.linear_schedule(0.1, 0.2, 10))
  updates, _ = tx.update({"w": jnp.zeros(2, jnp.bfloat16)}, tx.init(params), params)
  assert updates["w"].dtype == jnp.bfloat16
  np.testing.assert_array_equal(
    np.asarray(updates["w"], np.float32), [0.10009765625, -0.10009765625]
  )


def test_errors_and_warnings():
  with pytest.raises(ValueError, match="add_l1_to_grads: l1 must be non-negative"):
    optax_decay.add_l1_to_grads(-0.1)
  with pytest.raises(ValueError, match="mask=False"):
    optax_decay.add_l1_to_grads(0.1, mask=False)
  params = make_params(jnp.float32)
  tx = optax_decay.add_l1_to_grads(0.1)
  with pytest.raises(ValueError, match="add_l1_to_grads needs the parameters"):
    tx.update(params, tx.init(params))
  bad = optax_decay.add_l1_to_grads(0.1, {"w": True})
  with pytest.raises(ValueError, match=r"does not cover the parameter at \['b'\]"):
    bad.init(params)
  with pytest.warns(UserWarning, match="selects all 2"):
    optax_decay.add_l1_to_grads(0.1, {"w": True, "b": True}).init(params)


def test_flax_nnx_optimizer_with_variable_mask():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  mask = jax.tree.map(lambda p: p.ndim > 1, nnx.state(model, nnx.Param))
  lr, l1 = 0.1, 0.5
  tx = optax.chain(optax_decay.add_l1_to_grads(l1, mask), optax.sgd(lr))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  kernel, bias = np.asarray(model.kernel[...]), np.asarray(model.bias[...])

  @nnx.jit
  def step(model, optimizer):
    grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
    optimizer.update(model, grads)

  step(model, optimizer)
  np.testing.assert_allclose(model.kernel[...], kernel - lr * l1 * np.sign(kernel), rtol=1e-6)
  np.testing.assert_array_equal(model.bias[...], bias)
