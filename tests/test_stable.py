"""Stable weight decay (AdamS) against a NumPy loop of Xie et al.'s algorithm."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from helpers import LeastSquares, assert_trees_close, assert_trees_equal, run_optimizer

import optax_decay


def adams_numpy(problem, lr, weight_decay, steps, eps=1e-8, decay_eps=1e-8, mask=None):
  """AdamS, Alg. 2 of Xie et al., in float64 (rates are numbers or functions of the count)."""
  return references.adams(
    problem.init,
    problem.grad_np,
    steps,
    lr,
    weight_decay=weight_decay,
    eps=eps,
    decay_eps=decay_eps,
    mask=mask,
  )


def run_jax(tx, problem, steps):
  def grad_fn(p):
    return jax.grad(problem.loss)(p)

  return run_optimizer(tx, grad_fn, problem.params(jnp.float32), steps)


# (Adam's ε, the decay's ε_d): the paper's ε-free decay, the defaults, and each one large.
@pytest.mark.parametrize("eps, decay_eps", [(0.0, 0.0), (1e-8, 1e-8), (1e-3, 1e-8), (1e-8, 1e-3)])
@pytest.mark.parametrize("masked", [False, True])
def test_adams_matches_the_paper_loop(eps, decay_eps, masked):
  problem = LeastSquares(seed=1)
  mask = {"w": True, "b": False} if masked else None
  # A large λ so the decay is a visible part of every step.
  tx = optax_decay.adams(0.05, eps=eps, decay_eps=decay_eps, weight_decay=0.5, mask=mask)
  ours = run_jax(tx, problem, 60)
  reference = adams_numpy(problem, 0.05, 0.5, 60, eps, decay_eps, mask)
  for step in (0, 9, 59):
    assert_trees_close(ours[step], reference[step], rtol=1e-4, atol=1e-5)
  # And the decay matters: plain Adam (its NumPy loop, which optax.adam follows) lands elsewhere.
  adam = references.adam(problem.init, problem.grad_np, 60, 0.05, eps=eps)
  assert np.max(np.abs(adam[-1]["w"] - reference[-1]["w"])) > 1e-2


def test_adams_with_a_learning_rate_schedule_couples_the_decay_to_it():
  problem = LeastSquares(seed=2)
  schedule = optax.cosine_decay_schedule(0.05, 40)
  ours = run_jax(optax_decay.adams(schedule, weight_decay=0.3), problem, 40)
  # optax's schedule sees the count before the update, as the reference's rates do.
  reference = adams_numpy(problem, lambda t: float(schedule(t)), 0.3, 40)
  assert_trees_close(ours[-1], reference[-1], rtol=1e-4, atol=1e-5)


def test_a_weight_decay_schedule_is_evaluated_at_the_step_count():
  problem = LeastSquares(seed=5)
  decay = optax.linear_schedule(1.0, 0.0, 20)
  ours = run_jax(optax_decay.adams(0.05, weight_decay=decay), problem, 20)
  reference = adams_numpy(problem, 0.05, lambda t: float(decay(t)), 20)
  assert_trees_close(ours[-1], reference[-1], rtol=1e-4, atol=1e-5)


def test_the_wrapper_decays_any_preconditioner_by_the_gradients_second_moment():
  # With the identity as preconditioner the update is g + λ w / (sqrt(v̄) + ε), v̄ the
  # bias-corrected EMA of mean(g²), whatever the preconditioner does.
  rng = np.random.default_rng(0)
  params = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=5)}
  grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(5)]
  tx = optax_decay.stable_decoupled_decay(optax.identity(), 0.2, b2=0.9, eps=1e-3)
  state = tx.init(jax.tree.map(jnp.float32, params))
  ema = 0.0
  for t, g in enumerate(grads, start=1):
    updates, state = tx.update(
      jax.tree.map(jnp.float32, g), state, jax.tree.map(jnp.float32, params)
    )
    ema = 0.9 * ema + 0.1 * np.mean(np.concatenate([x.ravel() ** 2 for x in g.values()]))
    v_bar = ema / (1 - 0.9**t)
    expected = {k: g[k] + 0.2 / (np.sqrt(v_bar) + 1e-3) * params[k] for k in params}
    assert_trees_close(updates, expected, rtol=1e-5, atol=1e-6)


def test_zero_decay_is_adam_bit_for_bit():
  problem = LeastSquares(seed=3)
  ours = run_jax(optax_decay.adams(0.01, weight_decay=0.0), problem, 20)
  adam = run_jax(optax.adam(0.01), problem, 20)
  assert_trees_equal(ours[-1], adam[-1])


def test_the_normalizer_is_the_mean_of_adams_second_moment():
  # An independent check of the scalar shortcut: the mean of optax's own (bias-corrected) nu.
  problem = LeastSquares(seed=4)
  adam = optax.scale_by_adam()
  tx = optax_decay.stable_decoupled_decay(adam, 0.1)
  params = problem.params(jnp.float32)
  state = tx.init(params)
  for _ in range(29):
    grads = jax.grad(problem.loss)(params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, jax.tree.map(lambda u: -0.01 * u, updates))
    nu = state.inner_state.nu
    mean_nu = sum(float(x.sum()) for x in jax.tree.leaves(nu)) / sum(
      x.size for x in jax.tree.leaves(nu)
    )
    np.testing.assert_allclose(float(state.mean_sq), mean_nu, rtol=1e-6)


def test_zero_gradients_keep_the_weights_finite_with_the_default_eps():
  params = {"w": jnp.ones(3)}
  tx = optax_decay.adams(1e-3, weight_decay=1e-4)
  state = tx.init(params)
  updates, state = tx.update({"w": jnp.zeros(3)}, state, params)
  assert np.all(np.isfinite(np.asarray(updates["w"])))
  # ε = 1e-8 bounds the per-step fraction by lr·λ/ε = 10: the docstring's warning in numbers.
  np.testing.assert_allclose(np.asarray(updates["w"]), -1e-3 * 1e-4 / 1e-8, rtol=1e-6)


def test_state_dtypes_do_not_follow_bfloat16_gradients():
  params = {"w": jnp.ones(4, jnp.bfloat16)}
  tx = optax_decay.adams(1e-2, weight_decay=1e-1)
  state = tx.init(params)
  updates, state = tx.update({"w": jnp.full(4, 0.5, jnp.bfloat16)}, state, params)
  assert updates["w"].dtype == jnp.bfloat16
  inner = state[0]
  assert inner.mean_sq.dtype == jnp.float32 and inner.count.dtype == jnp.int32


def test_bad_arguments_are_construction_errors():
  with pytest.raises(TypeError, match="GradientTransformation"):
    optax_decay.stable_decoupled_decay(optax.scale_by_adam, 1e-2)  # the factory, not called
  with pytest.raises(ValueError, match=r"b2 must lie in \[0, 1\)"):
    optax_decay.stable_decoupled_decay(optax.scale_by_adam(), 1e-2, b2=1.0)
  with pytest.raises(ValueError, match="non-negative"):
    optax_decay.adams(1e-3, weight_decay=-1.0)


def test_a_mask_that_does_not_match_names_the_path():
  tx = optax_decay.adams(1e-3, mask={"w": True, "x": False})
  with pytest.raises(ValueError, match="'x'|x"):
    tx.init({"w": jnp.ones(2), "b": jnp.ones(2)})


def test_nnx_optimizer_trains_like_plain_dicts():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.float32)
  mask = {"kernel": True, "bias": False}
  optimizer = nnx.Optimizer(
    model, optax_decay.adams(0.05, weight_decay=0.5, mask=mask), wrt=nnx.Param
  )
  plain = {"kernel": model.kernel[...], "bias": model.bias[...]}

  def loss(p):
    return jnp.mean((x @ p["kernel"] + p["bias"] - 1.0) ** 2)

  tx = optax_decay.adams(0.05, weight_decay=0.5, mask=mask)
  state = tx.init(plain)
  for _ in range(5):
    grads = nnx.grad(lambda m: loss({"kernel": m.kernel[...], "bias": m.bias[...]}))(model)
    optimizer.update(model, grads)
    updates, state = tx.update(jax.grad(loss)(plain), state, plain)
    plain = optax.apply_updates(plain, updates)
  assert_trees_close(
    {"kernel": model.kernel[...], "bias": model.bias[...]}, plain, rtol=1e-6, atol=1e-7
  )


@pytest.mark.parametrize("c", [1e-3, 0.1, 10.0, 1e3])
def test_scaling_the_gradients_and_lambda_together_changes_nothing(c):
  # With both eps = 0, Adam's step does not see the gradients' scale, and the decay
  # (c·λ)/sqrt(c²·v̄) = λ/sqrt(v̄) does not either: the property that makes the decay "stable".
  # AdamW's decay has no such invariance: there only λ·lr counts.
  unscaled = _run_scaled(1.0, 0.3)
  assert_trees_close(_run_scaled(c, 0.3 * c)[-1], unscaled[-1], rtol=2e-4, atol=2e-5)
  assert np.max(np.abs(np.asarray(_run_scaled(c, 0.3)[-1]["w"] - unscaled[-1]["w"]))) > 1e-3


@functools.cache  # the unscaled run is shared by every c
def _run_scaled(scale, weight_decay):
  problem = LeastSquares(seed=6)
  tx = optax_decay.adams(0.05, eps=0.0, decay_eps=0.0, weight_decay=weight_decay)
  return run_optimizer(
    tx,
    lambda p: jax.tree.map(lambda g: scale * g, jax.grad(problem.loss)(p)),
    problem.params(jnp.float32),
    25,
  )
