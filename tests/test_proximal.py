"""`proximal_l1` soft-thresholds after the step: checked against NumPy ISTA / ProxSGD loops.

What is asserted about rounding. The transform returns u' = prox(w + u) − w and
`optax.apply_updates` then forms w + u'. The tests assert that (1) u' equals the NumPy value of
prox(w + u) − w computed in the same dtype bit for bit; (2) the new parameter is exactly 0.0
wherever the NumPy prox is 0 (w + (−w) is exactly 0 in IEEE arithmetic); (3) it equals the NumPy
prox bit for bit wherever the prox lies within a factor 2 of w (Sterbenz: the subtraction is
exact); (4) elsewhere it is within 1.5 units in the last place of max(|w|, |prox|).
"""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_equal, enable_x64

import optax_decay

# A small lasso problem whose solution has exact zeros: loss = 1/(2n)||Xw − y||² + λ||w||₁.
RNG = np.random.default_rng(5)
N, D = 40, 10
X = RNG.normal(size=(N, D))
W_TRUE = np.zeros(D)
W_TRUE[[1, 4, 7]] = [2.0, -1.5, 0.8]
Y = X @ W_TRUE + 0.3 * RNG.normal(size=N)
LAM = 0.15
STEP = 1.0 / np.linalg.eigvalsh(X.T @ X / N).max()  # 1/L: ISTA converges


def soft_threshold(v, tau):
  return np.sign(v) * np.maximum(np.abs(v) - tau, 0)


def lasso_coordinate_descent(sweeps=500):
  """The lasso solution by cyclic coordinate descent, in NumPy float64."""
  w = np.zeros(D)
  for _ in range(sweeps):
    for j in range(D):
      partial = Y - X @ w + X[:, j] * w[j]
      w[j] = soft_threshold(X[:, j] @ partial / N, LAM) / (X[:, j] @ X[:, j] / N)
  return w


def lasso_grad_np(w, rows=slice(None)):
  x, y = X[rows], Y[rows]
  return x.T @ (x @ w - y) / len(x)


def lasso_loss(params, x, y):
  return 0.5 * jnp.mean((x @ params["w"] - y) ** 2)


LASSO_SOLUTION = lasso_coordinate_descent()


def test_reference_solution_is_sparse():
  assert 3 <= np.count_nonzero(LASSO_SOLUTION) < D


@pytest.mark.parametrize("jit", [False, True])
def test_ista_matches_numpy_and_converges_to_lasso_solution(jit):
  steps = 300 if jit else 30
  with enable_x64(True):
    tx = optax.chain(optax.sgd(STEP), optax_decay.proximal_l1(LAM, learning_rate=STEP))
    params = {"w": jnp.zeros(D)}
    state = tx.init(params)
    x, y = jnp.asarray(X), jnp.asarray(Y)

    def step(params, state):
      updates, state = tx.update(jax.grad(lasso_loss)(params, x, y), state, params)
      return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    ref = np.zeros(D)
    for _ in range(steps):
      params, state = step(params, state)
      ref = soft_threshold(ref - STEP * lasso_grad_np(ref), STEP * LAM)
      got = np.asarray(params["w"])
      np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
      np.testing.assert_array_equal(got == 0, ref == 0)  # the same exact zeros
    if jit:  # long enough to converge
      np.testing.assert_allclose(got, LASSO_SOLUTION, rtol=0, atol=1e-10)
      np.testing.assert_array_equal(got == 0, LASSO_SOLUTION == 0)


@pytest.mark.parametrize("coupling", optax_decay.COUPLINGS)
def test_minibatch_proxsgd_with_schedule_matches_numpy(coupling):
  """Proximal SGD on minibatches with a cosine learning rate: τ_t = c_t·λ, t counted from 0."""
  peak, steps, batch = 0.5, 60, 8
  lr = optax.cosine_decay_schedule(peak, decay_steps=steps, alpha=0.1)
  lam = 0.3 if coupling == "none" else LAM
  kwargs = {} if coupling == "none" else {"learning_rate": lr}
  if coupling in ("schedule", "corrected"):
    kwargs["peak_learning_rate"] = peak
  batches = [np.random.default_rng(t).choice(N, batch, replace=False) for t in range(steps)]
  with enable_x64(True):
    tx = optax.chain(optax.sgd(lr), optax_decay.proximal_l1(lam, coupling=coupling, **kwargs))
    params = {"w": jnp.asarray(W_TRUE + 0.1)}
    state = tx.init(params)
    step = jax.jit(lambda p, s, x, y: tx.update(jax.grad(lasso_loss)(p, x, y), s, p))
    ref = W_TRUE + 0.1
    for t, rows in enumerate(batches):
      updates, state = step(params, state, X[rows], Y[rows])
      params = optax.apply_updates(params, updates)
      lr_t = peak * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t / steps)))
      c_t = {"lr": lr_t, "schedule": lr_t / peak, "corrected": lr_t**2 / peak, "none": 1.0}
      ref = soft_threshold(ref - lr_t * lasso_grad_np(ref, rows), c_t[coupling] * lam)
      got = np.asarray(params["w"])
      np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-14)
      np.testing.assert_array_equal(got == 0, ref == 0)
    assert np.count_nonzero(got == 0) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_step_rounding_against_numpy(dtype):
  rng = np.random.default_rng(0)
  w = (rng.normal(size=2000) * 10.0 ** rng.integers(-4, 2, size=2000)).astype(dtype)
  u = (rng.normal(size=2000) * 10.0 ** rng.integers(-5, 1, size=2000)).astype(dtype)
  w[:5] = [0.0, -0.0, 1e-3, -1e-3, 0.5]
  l1, lr = 0.02, 0.1
  tau = dtype(l1 * lr)  # the threshold rounded to the parameters' dtype
  target = w + u
  prox = (np.sign(target) * np.maximum(np.abs(target) - tau, 0)).astype(dtype)
  with enable_x64(dtype == np.float64):
    tx = optax_decay.proximal_l1(l1, learning_rate=lr)
    params = {"w": jnp.asarray(w)}
    updates, _ = jax.jit(tx.update)({"w": jnp.asarray(u)}, tx.init(params), params)
    new = np.asarray(optax.apply_updates(params, updates)["w"])
  assert updates["w"].dtype == dtype
  np.testing.assert_array_equal(np.asarray(updates["w"]), prox - w)  # (1)
  zero = prox == 0
  assert 100 < zero.sum() < 1900
  assert np.all(new[zero] == 0.0)  # (2)
  sterbenz = (np.sign(prox) == np.sign(w)) & (np.abs(w) / 2 <= np.abs(prox))
  sterbenz &= np.abs(prox) <= 2 * np.abs(w)
  np.testing.assert_array_equal(new[sterbenz], prox[sterbenz])  # (3)
  scale = np.maximum(np.abs(w), np.abs(prox))
  assert np.all(np.abs(new - prox) <= 1.5 * np.spacing(scale))  # (4)


def test_zeros_stay_exact_under_small_gradients_in_float32():
  tx = optax.chain(optax.adam(0.01), optax_decay.proximal_l1(2.0, learning_rate=0.01))
  params = {"w": jnp.array([0.0, 0.015, -0.5, 1.0])}
  state = tx.init(params)
  step = jax.jit(tx.update)
  grads = {"w": jnp.array([1e-3, 1e-3, 0.0, -0.5])}
  for _ in range(20):
    updates, state = step(grads, state, params)
    params = optax.apply_updates(params, updates)
    assert float(params["w"][0]) == 0.0  # Adam's step 0.01 < τ = 0.02: it never leaves 0
  assert float(params["w"][1]) == 0.0
  np.testing.assert_allclose(params["w"][2], -0.5 + 20 * 0.02, rtol=1e-5)  # no gradient


def test_zero_threshold_is_identity_bitwise():
  params = {"w": jnp.array([0.1, -3.0, 7.0]), "n": jnp.array(1)}
  updates = {"w": jnp.array([1e-3, 0.2, -1e-7]), "n": jnp.array(2)}
  for tx in [
    optax_decay.proximal_l1(0.0, learning_rate=0.1),
    optax_decay.proximal_l1(0.5, learning_rate=0.0),
    optax_decay.proximal_l1(0.0, learning_rate=optax.linear_schedule(0.1, 0.0, 10)),
    optax_decay.proximal_l1(lambda count: 0.0 * count, learning_rate=0.1),  # 0 at run time
  ]:
    got, _ = tx.update(updates, tx.init(params), params)
    assert_trees_equal(got, updates)


def test_mask_and_integer_leaves():
  params = {"w": jnp.array([0.0625, 1.0]), "b": jnp.array([0.0625]), "n": jnp.array(3)}
  updates = {"w": jnp.zeros(2), "b": jnp.zeros(1), "n": jnp.array(1)}
  for mask in [{"w": True, "b": False, "n": True}, lambda p: {"w": True, "b": False, "n": True}]:
    tx = optax_decay.proximal_l1(1.0, mask, learning_rate=0.125)
    got, _ = tx.update(updates, tx.init(params), params)
    np.testing.assert_array_equal(optax.apply_updates(params, got)["w"], [0.0, 0.875])
    np.testing.assert_array_equal(got["b"], [0.0])
    assert got["n"].dtype == jnp.int32 and int(got["n"]) == 1


def test_schedules_share_the_transform_count_from_zero():
  seen = []

  def l1_schedule(count):
    seen.append(int(count))
    return 1.0

  lr = optax.piecewise_constant_schedule(0.25, {1: 2.0})  # 0.25, then 0.5
  tx = optax.chain(optax.sgd(lr), optax_decay.proximal_l1(l1_schedule, learning_rate=lr))
  params = {"w": jnp.array([2.0])}
  state = tx.init(params)
  for expected in [1.75, 1.25, 0.75]:
    updates, state = tx.update({"w": jnp.zeros(1)}, state, params)
    params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(params["w"], [expected])
  assert seen == [0, 1, 2]


def test_construction_errors():
  lr_schedule = optax.linear_schedule(0.1, 0.0, 10)
  with pytest.raises(ValueError, match="unknown coupling 'ema'"):
    optax_decay.proximal_l1(0.1, learning_rate=0.1, coupling="ema")
  with pytest.raises(ValueError, match="coupling='lr' needs learning_rate"):
    optax_decay.proximal_l1(0.1)
  with pytest.raises(ValueError, match="takes no learning_rate"):
    optax_decay.proximal_l1(0.1, learning_rate=0.1, coupling="none")
  with pytest.raises(ValueError, match="peak_learning_rate is used only"):
    optax_decay.proximal_l1(0.1, learning_rate=0.1, peak_learning_rate=0.1)
  with pytest.raises(ValueError, match="needs peak_learning_rate"):
    optax_decay.proximal_l1(0.1, learning_rate=lr_schedule, coupling="schedule")
  with pytest.raises(ValueError, match="l1 must be non-negative"):
    optax_decay.proximal_l1(-1.0, learning_rate=0.1)
  with pytest.raises(ValueError, match="learning_rate must be finite"):
    optax_decay.proximal_l1(1.0, learning_rate=float("nan"))
  with pytest.raises(ValueError, match="mask=False"):
    optax_decay.proximal_l1(1.0, False, learning_rate=0.1)
  tx = optax_decay.proximal_l1(1.0, learning_rate=0.1)
  params = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="proximal_l1 needs the parameters"):
    tx.update(params, tx.init(params))
  masked = optax_decay.proximal_l1(1.0, {"v": True}, learning_rate=0.1)
  with pytest.raises(ValueError, match=r"does not cover the parameter at \['w'\]"):
    masked.init(params)


def test_flax_nnx_optimizer_reaches_exact_zeros():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
  mask = jax.tree.map(lambda p: p.ndim > 1, nnx.state(model, nnx.Param))
  lr = 0.1
  tx = optax.chain(optax.sgd(lr), optax_decay.proximal_l1(100.0, mask, learning_rate=lr))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  bias = np.asarray(model.bias[...]) + 0.5
  model.bias[...] = bias

  @nnx.jit
  def step(model, optimizer):
    optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))

  step(model, optimizer)  # τ = 10 exceeds every initial kernel weight
  assert np.all(np.asarray(model.kernel[...]) == 0.0)
  np.testing.assert_array_equal(model.bias[...], bias)


@pytest.mark.slow
def test_sparse_digits_example_runs():
  path = pathlib.Path(__file__).parents[1] / "examples" / "sparse_digits.py"
  spec = importlib.util.spec_from_file_location("sparse_digits", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  (result,) = module.main(["--epochs", "1", "--hidden", "16", "--l1", "1.0"])
  assert result["l1"] == 1.0
  assert 0.0 < result["sparsity"] < 1.0
  assert 0.0 <= result["test_accuracy"] <= 1.0


def test_inject_hyperparams_makes_l1_a_changeable_state_entry():
  params = {"w": jnp.array([1.0, 0.0625]), "b": jnp.array([0.0625])}
  kernels_only = lambda p: {"w": True, "b": False}  # noqa: E731
  tx = optax_decay.inject_hyperparams(optax_decay.proximal_l1)(
    l1=1.0, mask=kernels_only, learning_rate=0.125
  )
  state = tx.init(params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, state = jax.jit(tx.update)(zeros, state, params)
  np.testing.assert_array_equal(optax.apply_updates(params, updates)["w"], [0.875, 0.0])
  np.testing.assert_array_equal(updates["b"], [0.0])
  state.hyperparams["l1"] = jnp.asarray(0.0)
  small = {"w": jnp.array([-1e-7, 1e-3]), "b": jnp.array([2e-9])}
  updates, state = jax.jit(tx.update)(small, state, params)
  assert_trees_equal(updates, small)  # not (w + u) − w, which rounds -1e-7 to 0
