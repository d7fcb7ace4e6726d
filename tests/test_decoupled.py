"""`decoupled_decay` placed after a preconditioner: AdamW, SGDW and the EMA forms of the seed."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from helpers import (
  LeastSquares,
  assert_histories_close,
  assert_histories_equal,
  enable_x64,
  needs_optax_decay_schedules,
  run_float64,
  run_optimizer,
)

import optax_decay

PROBLEM = LeastSquares(seed=2)
STEPS = 60
GRAD = PROBLEM.grad  # compiled once: runs without jit time the optimizer's update alone


def adamw_chain(lr, wd, mask=None, **adam_kwargs):
  return optax.chain(
    optax.scale_by_adam(**adam_kwargs),
    optax_decay.decoupled_decay(wd, mask),
    optax.scale_by_learning_rate(lr),
  )


# --- the defining chain is optax.adamw, bit for bit -------------------------------------------


def _cosine(count):
  return optax.cosine_decay_schedule(3e-2, decay_steps=STEPS, alpha=0.1)(count)


def _wd_ramp(count):
  return optax.linear_schedule(0.0, 0.2, transition_steps=STEPS // 2)(count)


ADAMW_CASES = {
  "const": dict(lr=1e-2, wd=1e-2),
  "large-wd": dict(lr=3e-2, wd=0.5),
  "sched-lr": dict(lr=_cosine, wd=5e-2),
  "sched-wd": dict(lr=1e-2, wd=_wd_ramp),
  "sched-both": dict(lr=_cosine, wd=_wd_ramp),
  "mask": dict(lr=1e-2, wd=0.1, mask={"w": True, "b": False}),
  "mask-callable-sched": dict(lr=_cosine, wd=_wd_ramp, mask=lambda p: {"w": False, "b": True}),
  "adam-kwargs": dict(lr=1e-2, wd=0.1, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-9),
  "nesterov": dict(lr=1e-2, wd=0.1, nesterov=True),
}


# Eager (un-jitted) runs are slow op by op, so only a few cases run both ways.
_EAGER_CASES = ("const", "sched-both", "mask-callable-sched")


@pytest.mark.parametrize(
  "case,jit",
  [(c, True) for c in ADAMW_CASES] + [(c, False) for c in _EAGER_CASES],
  ids=[f"{c}-jit" for c in ADAMW_CASES] + [f"{c}-nojit" for c in _EAGER_CASES],
)
def test_chain_equals_optax_adamw_bitwise(case, jit):
  kw = dict(ADAMW_CASES[case])
  lr, wd, mask = kw.pop("lr"), kw.pop("wd"), kw.pop("mask", None)
  if callable(wd):
    needs_optax_decay_schedules()
  params = PROBLEM.params(jnp.float32)
  got = run_optimizer(adamw_chain(lr, wd, mask, **kw), GRAD, params, STEPS, jit=jit)
  want = run_optimizer(
    optax.adamw(lr, weight_decay=wd, mask=mask, **kw), GRAD, params, STEPS, jit=jit
  )
  assert_histories_equal(got, want)
  if jit:  # once per case: the decay matters on this problem, without it the trajectory
    # is measurably different
    plain = run_optimizer(adamw_chain(lr, 0.0, **kw), GRAD, params, STEPS)
    assert np.abs(np.asarray(got[-1]["w"]) - np.asarray(plain[-1]["w"])).max() > 1e-4


def test_chain_equals_optax_adamw_on_nested_params(small_params):
  mask = {"w": True, "b": False, "norm": {"scale": False}}
  rng = np.random.default_rng(5)
  targets = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), small_params)

  def loss(p):
    pairs = zip(jax.tree.leaves(p), jax.tree.leaves(targets), strict=True)
    return sum(jnp.sum((a - t) ** 4) for a, t in pairs)

  got = run_optimizer(adamw_chain(1e-2, 0.3, mask), jax.grad(loss), small_params, 40)
  want = run_optimizer(
    optax.adamw(1e-2, weight_decay=0.3, mask=mask), jax.grad(loss), small_params, 40
  )
  assert_histories_equal(got, want)


# --- NumPy references: SGDW with optax.trace, and the seed's EMA forms ------------------------


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("schedule", [False, True])
def test_sgdw_with_trace_matches_numpy(nesterov, schedule):
  beta, lam = 0.9, 0.05
  if schedule:
    lr = optax.cosine_decay_schedule(0.05, decay_steps=STEPS, alpha=0.2)
    np_lr = references.cosine_decay_schedule(0.05, STEPS, alpha=0.2)
  else:
    lr = np_lr = 0.05
  tx = optax.chain(
    optax.trace(beta, nesterov=nesterov),
    optax_decay.decoupled_decay(lam),
    optax.scale_by_learning_rate(lr),
  )
  got = run_float64(tx, PROBLEM, STEPS)
  sgd = functools.partial(
    references.sgd, PROBLEM.init, PROBLEM.grad_np, STEPS, np_lr, momentum=beta, nesterov=nesterov
  )
  want = sgd(weight_decay=lam)
  assert_histories_close(got, want, rtol=1e-11, atol=1e-13)
  # the reference without decay ends elsewhere: the check is sensitive to λ
  no_decay = sgd()
  assert np.abs(want[-1]["w"] - no_decay[-1]["w"]).max() > 1e-3


@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 2e-5), (jnp.float64, 1e-11)])
def test_ema_forms_match_numpy(dtype, rtol):
  lr, beta, lam = 0.2, 0.9, 0.1
  decoupled = optax.chain(
    optax.ema(beta, debias=False),
    optax_decay.decoupled_decay(lam),
    optax.scale_by_learning_rate(lr),
  )
  l2 = optax.chain(
    optax_decay.add_l2_to_grads(lam),
    optax.ema(beta, debias=False),
    optax.scale_by_learning_rate(lr),
  )
  with enable_x64(dtype == jnp.float64):
    params = PROBLEM.params(dtype)
    got_dec = run_optimizer(decoupled, jax.grad(PROBLEM.loss), params, STEPS)
    got_l2 = run_optimizer(l2, jax.grad(PROBLEM.loss), params, STEPS)
  # The seed's forms: Vdw = β·Vdw + (1−β)·grad, then w = w − lr·Vdw − lr·λ·w (decoupled), or
  # with grad + λ·w inside the average (L2).
  ema = functools.partial(
    references.sgd, PROBLEM.init, PROBLEM.grad_np, STEPS, lr, momentum=beta, ema=True
  )
  want_dec, want_l2 = ema(weight_decay=lam), ema(l2=lam)
  atol = 10 * rtol
  assert_histories_close(got_dec, want_dec, rtol=rtol, atol=atol)
  assert_histories_close(got_l2, want_l2, rtol=rtol, atol=atol)
  # with an EMA the two are different algorithms (Prop. 2), and measurably so here
  assert np.abs(want_dec[-1]["w"] - want_l2[-1]["w"]).max() > 1e-3
  assert np.abs(np.asarray(got_dec[-1]["w"]) - np.asarray(got_l2[-1]["w"])).max() > 1e-3


def test_decay_uses_previous_weights_and_bypasses_moments():
  """The decay term is κ·w_{t−1} and never enters scale_by_adam's moments."""
  params = {"w": jnp.array([1.0, -2.0, 4.0]), "b": jnp.array([0.5, 0.25])}
  zeros = jax.tree.map(jnp.zeros_like, params)
  tx = adamw_chain(0.5, 0.1)
  state = tx.init(params)
  updates, state = tx.update(zeros, state, params)
  # zero gradient: Adam's direction is exactly 0, so the step is −lr·κ·w
  for k in params:
    np.testing.assert_array_equal(updates[k], -0.5 * (0.1 * np.asarray(params[k], np.float32)))
  adam_state = state[0]
  for k in params:
    np.testing.assert_array_equal(adam_state.mu[k], 0.0)
    np.testing.assert_array_equal(adam_state.nu[k], 0.0)
