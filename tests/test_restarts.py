"""Warm restarts: the schedule against the paper's T_cur/T_i bookkeeping; AdamWR and SGDWR loops."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from helpers import LeastSquares, assert_histories_close, run_float64, run_optimizer

import optax_decay


def paper_schedule(first_period_epochs, t_mult, steps_per_epoch, steps, eta_min=0.0, eta_max=1.0):
  """η_t and T_i (in epochs) at each step, by the paper's bookkeeping (App. B.2).

  T_cur counts epochs since the last restart and grows by 1/steps_per_epoch after every batch;
  when it reaches T_i the run restarts and T_i is multiplied by T_mult. Exact fractions keep the
  restart test free of rounding.
  """
  t_cur, t_i = Fraction(0), Fraction(first_period_epochs)
  etas, periods = [], []
  for _ in range(steps):
    etas.append(eta_min + 0.5 * (eta_max - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)))
    periods.append(t_i)
    t_cur += Fraction(1, steps_per_epoch)
    if t_cur >= t_i:
      t_cur -= t_i
      t_i *= t_mult
  return np.array(etas), periods


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_schedule_matches_the_paper_over_1600_steps(jit):
  # T_0 = 4 epochs of 25 batches = 100 steps, T_mult = 2: restarts at 100, 300, 700, 1500.
  want, _ = paper_schedule(4, 2, 25, 1600, eta_min=0.1, eta_max=0.9)
  eta = optax_decay.cosine_warm_restarts_multiplier(100, 2, eta_min=0.1, eta_max=0.9)
  if jit:
    got = jax.jit(jax.vmap(eta))(jnp.arange(1600, dtype=jnp.int32))
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-6)
  else:  # Python ints, one at a time, on a sample that holds every restart and its neighbours
    sample = sorted(
      {*range(0, 1600, 37), *(r + d for r in (100, 300, 700, 1500) for d in (-1, 0, 1))}
    )
    got = [float(eta(t)) for t in sample]
    np.testing.assert_allclose(got, want[sample], rtol=0, atol=1e-6)
  restarts = [t for t in range(1, 1600) if want[t] > want[t - 1]]
  assert restarts == [100, 300, 700, 1500]


@pytest.mark.parametrize("t", [0, 99, 100, 101, 299, 300, 699, 700, 1499, 1500, 1501])
def test_restart_boundaries_are_exact_on_traced_counts(t):
  eta = jax.jit(optax_decay.cosine_warm_restarts_multiplier(100, 2))
  value = float(eta(jnp.asarray(t, jnp.int32)))
  starts = {0: 100, 100: 200, 300: 400, 700: 800, 1500: 1600}
  start = max(s for s in starts if s <= t)
  want = 0.5 * (1 + math.cos(math.pi * (t - start) / starts[start]))
  assert value == pytest.approx(want, abs=1e-6)
  if t in starts:
    assert value == 1.0


@pytest.mark.parametrize("t0,t_mult", [(1, 2), (7, 3), (1, 5), (3, 2)])
def test_boundaries_stay_exact_up_to_int32_steps(t0, t_mult):
  eta = jax.jit(optax_decay.cosine_warm_restarts_multiplier(t0, t_mult))
  start, length = 0, t0
  while start + length < 2**31 - 1:
    end = start + length  # the first step of the next period
    assert float(eta(jnp.int32(end))) == 1.0, end
    assert float(eta(jnp.int32(end - 1))) < 1.0 or length == 1, end
    if length > 2:
      mid = start + length // 2
      want = 0.5 * (1 + math.cos(math.pi * (mid - start) / length))
      assert float(eta(jnp.int32(mid))) == pytest.approx(want, abs=1e-6)
    start, length = end, length * t_mult


def test_multiplier_one_restarts_every_period():
  want, _ = paper_schedule(Fraction(3, 2), 1, 10, 200)
  eta = optax_decay.cosine_warm_restarts_multiplier(15, 1)
  got = jax.vmap(eta)(jnp.arange(200))
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)


def test_normalized_decay_per_period_matches_appendix_b1():
  # b = 50, B = 1250: 25 steps per epoch; T_0 = 4 epochs, T_mult = 2.
  batch_size, num_examples = 50, 1250
  _, periods = paper_schedule(4, 2, 25, 1600)
  wd = jax.vmap(optax_decay.restart_normalized_weight_decay(0.05, 100, 2))(jnp.arange(1600))
  want = [
    optax_decay.normalized_weight_decay(
      0.05, batch_size=batch_size, num_examples=num_examples, num_epochs=float(t_i)
    )
    for t_i in periods
  ]
  np.testing.assert_allclose(np.asarray(wd), want, rtol=1e-6)
  assert np.asarray(wd)[[0, 100, 300, 700, 1500]] == pytest.approx(
    [0.05 / 10, 0.05 / 200**0.5, 0.05 / 20, 0.05 / 800**0.5, 0.05 / 40], rel=1e-6
  )


# --- the optimizers against NumPy loops of the paper's algorithms ------------------------------

PROBLEM = LeastSquares(seed=4, n=16, d=5, k=3)
T0, T_MULT, STEPS = 10, 2, 45  # restarts at 10 and 30


def _etas_and_decays(wd_norm):
  etas, periods = paper_schedule(T0, T_MULT, 1, STEPS)
  return etas, [wd_norm / math.sqrt(t_i) for t_i in periods]


def _paper_reference(algorithm, lr, wd_norm, **kwargs):
  """`algorithm` with the paper's App. B schedule η_t and normalized decay λ_i, in float64.

  Alg. 1 and 2 of the paper multiply both the step (α = `lr`) and the decay by η_t:
  lr_t = η_t·α and c_t = η_t in the references' terms.
  """
  etas, decays = _etas_and_decays(wd_norm)
  return algorithm(
    PROBLEM.init,
    PROBLEM.grad_np,
    STEPS,
    lambda t: etas[t] * lr,
    weight_decay=lambda t: decays[t],
    decay_factor=lambda t: etas[t],
    **kwargs,
  )


@pytest.mark.parametrize(
  "mask,decayed",
  [(None, {"w": True, "b": True}), ({"w": True, "b": False}, {"w": True, "b": False})],
  ids=["all", "mask"],
)
def test_adamwr_matches_numpy_loop(mask, decayed):
  tx = optax_decay.adamwr(0.05, T0, T_MULT, weight_decay_norm=0.3, mask=mask)
  got = run_float64(tx, PROBLEM, STEPS)
  want = _paper_reference(references.adam, 0.05, 0.3, mask=decayed)
  # Both sides run in float64, so they agree to rounding.
  assert_histories_close(got, want, rtol=1e-10, atol=1e-12, dtype=jnp.float64)


def test_sgdwr_matches_numpy_loop():
  decayed = {"w": True, "b": False}
  tx = optax_decay.sgdwr(0.05, T0, T_MULT, momentum=0.8, weight_decay_norm=0.3, mask=decayed)
  got = run_float64(tx, PROBLEM, STEPS)
  # SGDW with a PyTorch-style buffer (lr after the buffer), as sgdwr documents.
  want = _paper_reference(references.sgd, 0.05, 0.3, momentum=0.8, mask=decayed)
  assert_histories_close(got, want, rtol=1e-10, atol=1e-12, dtype=jnp.float64)


def test_adamwr_decay_follows_eta_not_the_learning_rate():
  # Zero gradients: each step multiplies w by 1 - η_t λ_i, whatever the learning rate α is.
  params = {"w": jnp.ones((2, 2))}
  etas, decays = _etas_and_decays(0.2)
  want = np.cumprod([1 - e * d for e, d in zip(etas, decays, strict=True)])
  for lr in (1e-4, 1.0):
    tx = optax_decay.adamwr(lr, T0, T_MULT, weight_decay_norm=0.2)
    got = run_optimizer(tx, lambda p: {"w": jnp.zeros((2, 2))}, params, STEPS)
    np.testing.assert_allclose([float(p["w"][0, 0]) for p in got], want, rtol=1e-6)


# --- input checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
  "kwargs,error,message",
  [
    (dict(first_period_steps=0), ValueError, r"first_period_steps must be in \[1, 2\*\*31 - 1\]"),
    (dict(first_period_steps=2**31), ValueError, "first_period_steps must be in"),
    (dict(first_period_steps=2.5), TypeError, "first_period_steps must be an int"),
    (dict(first_period_steps=True), TypeError, "first_period_steps must be an int"),
    (dict(period_multiplier=0), ValueError, "period_multiplier must be in"),
    (dict(period_multiplier=1.5), TypeError, "period_multiplier must be an int"),
    (dict(eta_min=0.5, eta_max=0.4), ValueError, "exceeds eta_max"),
    (dict(eta_min=-0.1), ValueError, "eta_min must be non-negative"),
    (dict(eta_max=float("nan")), ValueError, "eta_max must be finite"),
    (dict(eta_max=lambda t: 1.0), TypeError, "not a schedule"),
  ],
)
def test_schedule_rejects_bad_input(kwargs, error, message):
  full = dict(first_period_steps=100, period_multiplier=2)
  full.update(kwargs)
  with pytest.raises(error, match=message):
    optax_decay.cosine_warm_restarts_multiplier(**full)


@pytest.mark.parametrize("factory", [optax_decay.adamwr, optax_decay.sgdwr])
def test_aliases_reject_bad_input(factory):
  with pytest.raises(TypeError, match="learning_rate must be a number"):
    factory(lambda t: 1e-3, 100)
  with pytest.raises(ValueError, match="learning_rate must be positive"):
    factory(0.0, 100)
  with pytest.raises(ValueError, match="would remove the whole weight"):
    factory(1e-3, 4, weight_decay_norm=2.0)
  with pytest.raises(ValueError, match="eta_min=2.0 exceeds"):
    factory(1e-3, 100, eta_min=2.0)
  with pytest.raises(TypeError, match="period_multiplier must be an int"):
    factory(1e-3, 100, 1.5)


def test_inject_hyperparams_with_the_periods_static():
  params = {"w": jnp.ones(3)}
  zeros = {"w": jnp.zeros(3)}
  static = ("first_period_steps", "period_multiplier")
  injected = optax_decay.inject_hyperparams(optax_decay.adamwr, static_args=static)(
    learning_rate=1e-3, first_period_steps=100, weight_decay_norm=0.05
  )
  state = injected.init(params)
  updates, state = jax.jit(injected.update)(zeros, state, params)
  np.testing.assert_allclose(updates["w"], -0.005, rtol=1e-6)
  assert float(state.hyperparams["weight_decay_norm"]) == pytest.approx(0.05)
  # optax_decay.inject_hyperparams keeps them static without being told; optax's does not.
  implicit = optax_decay.inject_hyperparams(optax_decay.adamwr)(
    learning_rate=1e-3, first_period_steps=100, weight_decay_norm=0.05
  )
  implicit_updates, _ = jax.jit(implicit.update)(zeros, implicit.init(params), params)
  np.testing.assert_array_equal(implicit_updates["w"], updates["w"])
  unstatic = optax.inject_hyperparams(optax_decay.adamwr)(
    learning_rate=1e-3, first_period_steps=100
  )
  with pytest.raises(TypeError, match=r"static_args=\('first_period_steps'"):
    unstatic.init(params)
