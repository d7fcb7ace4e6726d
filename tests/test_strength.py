"""normalized_weight_decay and the EMA-timescale helpers: formulas, round trips, AdamW's EMA."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_decay


def test_normalized_weight_decay_by_hand():
  # Loshchilov & Hutter App. B.1: b=128, B=50,000, T=200 epochs.
  got = optax_decay.normalized_weight_decay(
    0.025, batch_size=128, num_examples=50_000, num_epochs=200
  )
  assert got == pytest.approx(0.025 * (128 / 10_000_000) ** 0.5, rel=1e-15)
  assert got == pytest.approx(8.94427190999916e-05, rel=1e-12)


def test_normalized_weight_decay_depends_only_on_the_number_of_steps():
  # b/(B·T) is one over the number of steps, so equal step counts give equal λ.
  a = optax_decay.normalized_weight_decay(0.05, batch_size=64, num_examples=6400, num_epochs=10)
  b = optax_decay.normalized_weight_decay(0.05, batch_size=32, num_examples=1600, num_epochs=20)
  assert a == pytest.approx(b, rel=1e-15)
  assert a == pytest.approx(0.05 / 1000**0.5, rel=1e-15)


def test_zero_normalized_decay_is_zero():
  zero = optax_decay.normalized_weight_decay(0, batch_size=1, num_examples=1, num_epochs=1)
  assert zero == 0.0


def test_timescale_by_hand():
  # τ_iter = 1/(lr·λ) = 1/(3e-4 · 0.05) ≈ 66,667 steps; an epoch is 1e6/500 = 2000 steps.
  tau = optax_decay.timescale_from_weight_decay(
    0.05, learning_rate=3e-4, batch_size=500, num_examples=1_000_000
  )
  assert tau == pytest.approx((1 / (3e-4 * 0.05)) / 2000, rel=1e-14)
  assert tau == pytest.approx(100 / 3, rel=1e-14)


def test_weight_decay_from_timescale_by_hand():
  wd = optax_decay.weight_decay_from_timescale(
    5.0, learning_rate=1e-3, batch_size=1024, num_examples=2_048_000
  )
  assert wd == pytest.approx(1024 / (1e-3 * 2_048_000 * 5.0), rel=1e-14)
  assert wd == pytest.approx(0.1, rel=1e-14)


@pytest.mark.parametrize("wd", [1e-5, 0.01, 0.3, 7.0])
@pytest.mark.parametrize("lr,b,n", [(1e-4, 32, 50_000), (3e-3, 4096, 10**9), (0.1, 1, 10)])
def test_round_trips(wd, lr, b, n):
  kw = dict(learning_rate=lr, batch_size=b, num_examples=n)
  tau = optax_decay.timescale_from_weight_decay(wd, **kw)
  assert optax_decay.weight_decay_from_timescale(tau, **kw) == pytest.approx(wd, rel=1e-13)
  assert optax_decay.timescale_from_weight_decay(
    optax_decay.weight_decay_from_timescale(wd, **kw), **kw
  ) == pytest.approx(wd, rel=1e-13)


def test_timescale_scales_as_the_paper_says():
  kw = dict(learning_rate=1e-3, batch_size=256)
  tau = optax_decay.timescale_from_weight_decay(0.1, num_examples=10**6, **kw)
  # Ten times the data at fixed λ: ten times fewer epochs of memory; λ must fall tenfold to keep τ.
  more_data = optax_decay.timescale_from_weight_decay(0.1, num_examples=10**7, **kw)
  assert more_data == pytest.approx(tau / 10, rel=1e-14)
  wd = optax_decay.weight_decay_from_timescale(tau, num_examples=10**7, **kw)
  assert wd == pytest.approx(0.01, rel=1e-13)


def _iterations_to_one_over_e(lr, wd, steps):
  """Runs optax_decay.adamw on zero gradients and returns the first step with w ≤ w0/e."""
  tx = optax_decay.adamw(lr, weight_decay=wd)
  params = {"w": jnp.full((4, 4), 2.0)}
  zeros = {"w": jnp.zeros((4, 4))}

  def step(carry, _):
    params, state = carry
    updates, state = tx.update(zeros, state, params)
    params = optax.apply_updates(params, updates)
    return (params, state), params["w"][0, 0]

  _, trajectory = jax.lax.scan(step, (params, tx.init(params)), length=steps)
  trajectory = np.asarray(trajectory)
  return trajectory, int(np.argmax(trajectory <= 2.0 / math.e)) + 1


@pytest.mark.parametrize("lr,wd", [(1e-2, 0.5), (1e-3, 2.0), (3e-3, 0.1)])
def test_adamw_weights_are_an_ema_with_timescale_one_over_lr_wd(lr, wd):
  tau_iter = 1 / (lr * wd)
  steps = int(1.2 * tau_iter)
  trajectory, crossing = _iterations_to_one_over_e(lr, wd, steps)
  # With zero gradients Adam's direction is 0/(0+ε) = 0: each step multiplies w by 1 - lr·λ.
  expected = 2.0 * (1 - lr * wd) ** np.arange(1, steps + 1)
  np.testing.assert_allclose(trajectory, expected, rtol=2e-4)
  assert abs(crossing - tau_iter) / tau_iter < 0.03
  # The same τ in epochs, through the helper, with 100 steps per epoch.
  tau_epoch = optax_decay.timescale_from_weight_decay(
    wd, learning_rate=lr, batch_size=10, num_examples=1000
  )
  assert abs(crossing / 100 - tau_epoch) / tau_epoch < 0.03


@pytest.mark.parametrize(
  "fn,first",
  [
    (optax_decay.timescale_from_weight_decay, "weight_decay"),
    (optax_decay.weight_decay_from_timescale, "tau_epoch"),
  ],
)
@pytest.mark.parametrize(
  "field,value,error,message",
  [
    ("first", 0.0, ValueError, "must be positive"),
    ("first", -1.0, ValueError, "non-negative"),
    ("learning_rate", float("inf"), ValueError, "finite"),
    ("learning_rate", float("nan"), ValueError, "finite"),
    ("batch_size", 0, ValueError, "batch_size must be positive"),
    ("num_examples", "1000", TypeError, "num_examples must be"),
    ("learning_rate", optax.constant_schedule(1e-3), TypeError, "not a schedule"),
    ("batch_size", True, TypeError, "boolean"),
  ],
)
def test_ema_helpers_reject_bad_input(fn, first, field, value, error, message):
  kwargs = dict(learning_rate=1e-3, batch_size=32, num_examples=1000)
  args = [0.1]
  if field == "first":
    args = [value]
  else:
    kwargs[field] = value
  with pytest.raises(error, match=message):
    fn(*args, **kwargs)


@pytest.mark.parametrize(
  "kwargs,error,message",
  [
    (dict(num_epochs=0), ValueError, "num_epochs must be positive"),
    (dict(num_examples=-5), ValueError, "num_examples must be non-negative"),
    (dict(batch_size=float("nan")), ValueError, "batch_size must be finite"),
    (dict(weight_decay_norm=-0.1), ValueError, "weight_decay_norm must be non-negative"),
    (dict(num_epochs=np.ones(2)), ValueError, "scalar"),
  ],
)
def test_normalized_weight_decay_rejects_bad_input(kwargs, error, message):
  full = dict(weight_decay_norm=0.05, batch_size=128, num_examples=50_000, num_epochs=100)
  full.update(kwargs)
  with pytest.raises(error, match=message):
    optax_decay.normalized_weight_decay(full.pop("weight_decay_norm"), **full)


def test_traced_values_are_rejected():
  def f(lr):
    return optax_decay.timescale_from_weight_decay(
      0.1, learning_rate=lr, batch_size=1, num_examples=10
    )

  with pytest.raises(TypeError, match="traced"):
    jax.jit(f)(1e-3)
