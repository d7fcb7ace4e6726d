"""The four aliases against optax.adamw and NumPy loops of PyTorch's update rules."""

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
  needs_optax_decay_schedules,
  run_float64,
  run_optimizer,
)

import optax_decay

PROBLEM = LeastSquares(seed=4)
STEPS = 50
EAGER_STEPS = 8  # un-jitted runs dispatch op by op and are slow: fewer steps, fewer cases
GRAD = PROBLEM.grad


def jit_cases(cases, eager, ids):
  """Parametrize values: every case jitted, plus the cases in `eager` run without jit."""
  pairs = list(zip(cases, ids, strict=True))
  values = [(*c, True) for c in cases] + [(*c, False) for c, i in pairs if i in eager]
  names = [f"{i}-jit" for i in ids] + [f"{i}-nojit" for i in ids if i in eager]
  return values, names


def _max_diff(a, b):
  return max(
    float(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).max())
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


# --- adamw(coupling="lr") is optax.adamw, bit for bit -----------------------------------------

ADAMW_SETS = {
  "defaults": dict(learning_rate=1e-3),
  "wd": dict(learning_rate=1e-2, weight_decay=0.1),
  "betas-eps": dict(learning_rate=3e-2, b1=0.5, b2=0.9, eps=1e-4, eps_root=1e-8, weight_decay=0.05),
  "nesterov": dict(learning_rate=1e-2, weight_decay=0.1, nesterov=True),
  "mu-bf16": dict(learning_rate=1e-2, weight_decay=0.1, mu_dtype=jnp.bfloat16),
  "mask": dict(learning_rate=1e-2, weight_decay=0.2, mask={"w": True, "b": False}),
  "mask-callable": dict(
    learning_rate=1e-2, weight_decay=0.2, mask=lambda p: {"w": False, "b": True}
  ),
  "sched-lr": dict(
    learning_rate=optax.warmup_cosine_decay_schedule(0.0, 3e-2, 5, STEPS), weight_decay=0.1
  ),
  "sched-lr-wd": dict(
    learning_rate=optax.cosine_decay_schedule(3e-2, STEPS),
    weight_decay=optax.linear_schedule(0.3, 0.0, STEPS),
    nesterov=True,
  ),
}


_values, _ids = jit_cases(
  [(n,) for n in ADAMW_SETS], ("defaults", "mask-callable", "sched-lr-wd"), list(ADAMW_SETS)
)


@pytest.mark.parametrize("name,jit", _values, ids=_ids)
def test_adamw_lr_coupling_is_optax_adamw_bitwise(name, jit):
  kwargs = ADAMW_SETS[name]
  if callable(kwargs.get("weight_decay")):
    needs_optax_decay_schedules()
  steps = STEPS if jit else EAGER_STEPS
  params = PROBLEM.params(jnp.float32)
  got = run_optimizer(optax_decay.adamw(coupling="lr", **kwargs), GRAD, params, steps, jit)
  want = run_optimizer(optax.adamw(**kwargs), GRAD, params, steps, jit)
  assert_histories_equal(got, want)


def test_adamw_default_coupling_is_lr():
  params = PROBLEM.params(jnp.float32)
  got = run_optimizer(optax_decay.adamw(1e-2, weight_decay=0.1), GRAD, params, 20)
  want = run_optimizer(optax.adamw(1e-2, weight_decay=0.1), GRAD, params, 20)
  assert_histories_equal(got, want)


# --- PyTorch's Adam(weight_decay) and SGD(momentum, weight_decay), and SGDW, in NumPy ----------


def _reference(algorithm, steps, lr, **kwargs):
  return algorithm(PROBLEM.init, PROBLEM.grad_np, steps, lr, **kwargs)


def _run64(tx, steps, jit):
  return run_float64(tx, PROBLEM, steps, jit)


_values, _ids = jit_cases(
  [
    (dict(lr=1e-2, wd=0.1),),
    (dict(lr=3e-2, wd=0.5, b1=0.8, b2=0.99, eps=1e-6),),
    (dict(lr=1e-2, wd=0.3, mask={"w": True, "b": False}),),
  ],
  ("mask",),
  ["basic", "betas", "mask"],
)


@pytest.mark.parametrize("kw,jit", _values, ids=_ids)
def test_adam_l2_matches_torch_adam_weight_decay(kw, jit):
  kw = dict(kw)
  lr, wd, mask = kw.pop("lr"), kw.pop("wd"), kw.pop("mask", None)
  steps = STEPS if jit else EAGER_STEPS
  got = _run64(optax_decay.adam_l2(lr, l2=wd, mask=mask, **kw), steps, jit)
  want = _reference(references.adam, steps, lr, l2=wd, mask=mask, **kw)
  assert_histories_close(got, want, rtol=1e-10, atol=1e-12)
  assert _max_diff(want[-1], _reference(references.adam, steps, lr, **kw)[-1]) > 1e-4


_values, _ids = jit_cases(
  [(0.0, False), (0.9, False), (0.9, True), (0.5, True)],
  ("0.9-nesterov",),
  ["plain", "0.9", "0.9-nesterov", "0.5-nesterov"],
)


@pytest.mark.parametrize("momentum,nesterov,jit", _values, ids=_ids)
def test_sgd_l2_matches_torch_sgd(momentum, nesterov, jit):
  lr, wd = 0.05, 0.2
  steps = STEPS if jit else EAGER_STEPS
  got = _run64(optax_decay.sgd_l2(lr, momentum=momentum, l2=wd, nesterov=nesterov), steps, jit)
  kw = dict(momentum=momentum, nesterov=nesterov)
  want = _reference(references.sgd, steps, lr, l2=wd, **kw)
  assert_histories_close(got, want, rtol=1e-10, atol=1e-12)
  assert _max_diff(want[-1], _reference(references.sgd, steps, lr, **kw)[-1]) > 1e-3


def test_sgd_l2_with_mask_matches_torch_param_groups():
  mask = {"w": False, "b": True}
  got = _run64(optax_decay.sgd_l2(0.05, momentum=0.9, l2=0.5, mask=mask), STEPS, True)
  want = _reference(references.sgd, STEPS, 0.05, momentum=0.9, l2=0.5, mask=mask)
  assert_histories_close(got, want, rtol=1e-10, atol=1e-12)


_values, _ids = jit_cases(
  [
    (m, n, mask)
    for m, n in [(0.0, False), (0.9, False), (0.9, True)]
    for mask in (None, {"w": True, "b": False})
  ],
  ("0.9-mask",),
  [
    f"{m}{'-nesterov' if n else ''}-{k}"
    for m, n in [(0.0, False), (0.9, False), (0.9, True)]
    for k in ("all", "mask")
  ],
)


@pytest.mark.parametrize("momentum,nesterov,mask,jit", _values, ids=_ids)
def test_sgdw_matches_numpy(momentum, nesterov, mask, jit):
  lr, wd = 0.05, 0.2
  steps = STEPS if jit else EAGER_STEPS
  tx = optax_decay.sgdw(lr, momentum=momentum, weight_decay=wd, mask=mask, nesterov=nesterov)
  got = _run64(tx, steps, jit)
  kw = dict(momentum=momentum, nesterov=nesterov)
  want = _reference(references.sgd, steps, lr, weight_decay=wd, mask=mask, **kw)
  assert_histories_close(got, want, rtol=1e-10, atol=1e-12)
  assert _max_diff(want[-1], _reference(references.sgd, steps, lr, **kw)[-1]) > 1e-3


# --- L2 versus decoupled: equal for plain SGD, different with momentum or Adam ----------------


_COSINE = optax.cosine_decay_schedule(0.05, STEPS, alpha=0.1)
_values, _ids = jit_cases(
  [(lr, dt) for lr in (0.05, _COSINE) for dt in (jnp.float32, jnp.bfloat16)],
  ("const-float32", "sched-bfloat16"),
  [f"{lr}-{dt}" for lr in ("const", "sched") for dt in ("float32", "bfloat16")],
)


@pytest.mark.parametrize("lr,dtype,jit", _values, ids=_ids)
def test_plain_sgd_l2_equals_sgdw_bitwise(lr, dtype, jit):
  """Prop. 1 with momentum 0 and coupling="lr": both compute −lr·(g + λ·w), the same ops."""
  lam = 0.2
  params = PROBLEM.params(dtype)
  steps = STEPS if jit else EAGER_STEPS

  @jax.jit  # both runs see the same gradients; `jit` is about the optimizers' updates
  def grad_fn(p):
    return jax.tree.map(lambda g, x: g.astype(x.dtype), jax.grad(PROBLEM.loss)(p), p)

  got_l2 = run_optimizer(optax_decay.sgd_l2(lr, momentum=0.0, l2=lam), grad_fn, params, steps, jit)
  got_w = run_optimizer(
    optax_decay.sgdw(lr, momentum=0.0, weight_decay=lam), grad_fn, params, steps, jit
  )
  assert_histories_equal(got_l2, got_w)
  assert _max_diff(got_l2[-1], params) > 1e-2  # the weights did move


@pytest.mark.parametrize("momentum,nesterov", [(0.9, False), (0.9, True), (0.5, False)])
def test_sgd_l2_differs_from_sgdw_with_momentum(momentum, nesterov):
  lam = 0.2
  params = PROBLEM.params(jnp.float32)
  l2 = run_optimizer(
    optax_decay.sgd_l2(0.05, momentum, l2=lam, nesterov=nesterov), GRAD, params, STEPS
  )
  dec = run_optimizer(
    optax_decay.sgdw(0.05, momentum, weight_decay=lam, nesterov=nesterov), GRAD, params, STEPS
  )
  assert _max_diff(l2[-1], dec[-1]) > 1e-3


def test_adam_l2_differs_from_adamw():
  lam = 0.2
  params = PROBLEM.params(jnp.float32)
  l2 = run_optimizer(optax_decay.adam_l2(1e-2, l2=lam), GRAD, params, STEPS)
  dec = run_optimizer(optax_decay.adamw(1e-2, weight_decay=lam), GRAD, params, STEPS)
  assert _max_diff(l2[-1], dec[-1]) > 1e-3


# --- every alias under jit and without: identical results --------------------------------------

ALIASES = {
  "adamw": lambda: optax_decay.adamw(1e-2, weight_decay=0.1, mask={"w": True, "b": False}),
  "adamw-schedule": lambda: optax_decay.adamw(
    optax.cosine_decay_schedule(1e-2, 20),
    weight_decay=0.1,
    coupling="schedule",
    peak_learning_rate=1e-2,
  ),
  "adam_l2": lambda: optax_decay.adam_l2(1e-2, l2=0.1, nesterov=True),
  "sgdw": lambda: optax_decay.sgdw(0.05, weight_decay=0.1, coupling="none"),
  "sgd_l2": lambda: optax_decay.sgd_l2(0.05, l2=0.1, nesterov=True),
}


@pytest.mark.parametrize("name", list(ALIASES))
def test_alias_jit_and_eager_agree(name):
  params = PROBLEM.params(jnp.float32)
  eager = run_optimizer(ALIASES[name](), GRAD, params, EAGER_STEPS, jit=False)
  jitted = run_optimizer(ALIASES[name](), GRAD, params, EAGER_STEPS, jit=True)
  assert_histories_close(eager, jitted, rtol=1e-6, atol=1e-7)
  assert _max_diff(eager[-1], params) > 1e-3
