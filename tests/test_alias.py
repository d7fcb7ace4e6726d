"""The four aliases against optax.adamw and NumPy loops of PyTorch's update rules."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import LeastSquares, assert_trees_close, assert_trees_equal, run_optimizer

import optax_decay

PROBLEM = LeastSquares(seed=4)
STEPS = 50
EAGER_STEPS = 8  # un-jitted runs dispatch op by op and are slow: fewer steps, fewer cases


def jit_cases(cases, eager, ids):
  """Parametrize values: every case jitted, plus the cases in `eager` run without jit."""
  pairs = list(zip(cases, ids, strict=True))
  values = [(*c, True) for c in cases] + [(*c, False) for c, i in pairs if i in eager]
  names = [f"{i}-jit" for i in ids] + [f"{i}-nojit" for i in ids if i in eager]
  return values, names


def _grad_fn():
  return jax.grad(PROBLEM.loss)


def _assert_history_close(got, want, rtol, atol):
  assert len(got) == len(want)
  for g, w in zip(got, want, strict=True):
    assert_trees_close(g, w, rtol=rtol, atol=atol)


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
  steps = STEPS if jit else EAGER_STEPS
  params = PROBLEM.params(jnp.float32)
  got = run_optimizer(optax_decay.adamw(coupling="lr", **kwargs), _grad_fn(), params, steps, jit)
  want = run_optimizer(optax.adamw(**kwargs), _grad_fn(), params, steps, jit)
  for g, w in zip(got, want, strict=True):
    assert_trees_equal(g, w)


def test_adamw_default_coupling_is_lr():
  params = PROBLEM.params(jnp.float32)
  got = run_optimizer(optax_decay.adamw(1e-2, weight_decay=0.1), _grad_fn(), params, 20)
  want = run_optimizer(optax.adamw(1e-2, weight_decay=0.1), _grad_fn(), params, 20)
  for g, w in zip(got, want, strict=True):
    assert_trees_equal(g, w)


# --- NumPy loops of PyTorch's Adam(weight_decay) and SGD(momentum, weight_decay) ---------------


def _np_params():
  return {k: np.array(v, np.float64) for k, v in PROBLEM.init.items()}


def torch_adam_l2(lr, wd, steps, b1=0.9, b2=0.999, eps=1e-8, mask=None):
  """torch.optim.Adam with weight_decay (L2): grad += wd·p, bias-corrected m and v."""
  p = _np_params()
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v = {k: np.zeros_like(x) for k, x in p.items()}
  out = []
  for t in range(1, steps + 1):
    grads = PROBLEM.grad_np(p)
    for k in p:
      g = grads[k] + (wd * p[k] if mask is None or mask[k] else 0.0)
      m[k] = b1 * m[k] + (1 - b1) * g
      v[k] = b2 * v[k] + (1 - b2) * g * g
      m_hat = m[k] / (1 - b1**t)
      v_hat = v[k] / (1 - b2**t)
      p[k] = p[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    out.append({k: x.copy() for k, x in p.items()})
  return out


def torch_sgd_l2(lr, momentum, wd, steps, nesterov=False, mask=None):
  """torch.optim.SGD(momentum, weight_decay, nesterov, dampening=0).

  The buffer starts as a copy of the first gradient, then buf = μ·buf + g.
  """
  p = _np_params()
  buf = {}
  out = []
  for _ in range(steps):
    grads = PROBLEM.grad_np(p)
    for k in p:
      g = grads[k] + (wd * p[k] if mask is None or mask[k] else 0.0)
      if momentum != 0:
        buf[k] = g.copy() if k not in buf else momentum * buf[k] + g
        g = g + momentum * buf[k] if nesterov else buf[k]
      p[k] = p[k] - lr * g
    out.append({k: x.copy() for k, x in p.items()})
  return out


def numpy_sgdw(lr, momentum, wd, steps, nesterov=False, mask=None):
  """SGDW: b = μ·b + g;  u = b (Nesterov: g + μ·b);  p = p − lr·u − lr·λ·p."""
  p = _np_params()
  buf = {k: np.zeros_like(v) for k, v in p.items()}
  out = []
  for _ in range(steps):
    grads = PROBLEM.grad_np(p)
    for k in p:
      buf[k] = momentum * buf[k] + grads[k]
      u = grads[k] + momentum * buf[k] if nesterov else buf[k]
      decay = wd * p[k] if mask is None or mask[k] else 0.0
      p[k] = p[k] - lr * u - lr * decay
    out.append({k: x.copy() for k, x in p.items()})
  return out


def _run64(tx, steps, jit):
  with jax.enable_x64(True):
    return run_optimizer(tx, _grad_fn(), PROBLEM.params(jnp.float64), steps, jit)


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
  want = torch_adam_l2(lr, wd, steps, mask=mask, **kw)
  _assert_history_close(got, want, rtol=1e-10, atol=1e-12)
  assert _max_diff(want[-1], torch_adam_l2(lr, 0.0, steps, **kw)[-1]) > 1e-4


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
  want = torch_sgd_l2(lr, momentum, wd, steps, nesterov)
  _assert_history_close(got, want, rtol=1e-10, atol=1e-12)
  assert _max_diff(want[-1], torch_sgd_l2(lr, momentum, 0.0, steps, nesterov)[-1]) > 1e-3


def test_sgd_l2_with_mask_matches_torch_param_groups():
  mask = {"w": False, "b": True}
  got = _run64(optax_decay.sgd_l2(0.05, momentum=0.9, l2=0.5, mask=mask), STEPS, True)
  want = torch_sgd_l2(0.05, 0.9, 0.5, STEPS, mask=mask)
  _assert_history_close(got, want, rtol=1e-10, atol=1e-12)


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
  want = numpy_sgdw(lr, momentum, wd, steps, nesterov, mask)
  _assert_history_close(got, want, rtol=1e-10, atol=1e-12)
  assert _max_diff(want[-1], numpy_sgdw(lr, momentum, 0.0, steps, nesterov)[-1]) > 1e-3


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

  def grad_fn(p):
    return jax.tree.map(lambda g, x: g.astype(x.dtype), jax.grad(PROBLEM.loss)(p), p)

  got_l2 = run_optimizer(optax_decay.sgd_l2(lr, momentum=0.0, l2=lam), grad_fn, params, steps, jit)
  got_w = run_optimizer(
    optax_decay.sgdw(lr, momentum=0.0, weight_decay=lam), grad_fn, params, steps, jit
  )
  for a, b in zip(got_l2, got_w, strict=True):
    assert_trees_equal(a, b)
  assert _max_diff(got_l2[-1], params) > 1e-2  # the weights did move


@pytest.mark.parametrize("momentum,nesterov", [(0.9, False), (0.9, True), (0.5, False)])
def test_sgd_l2_differs_from_sgdw_with_momentum(momentum, nesterov):
  lam = 0.2
  params = PROBLEM.params(jnp.float32)
  l2 = run_optimizer(
    optax_decay.sgd_l2(0.05, momentum, l2=lam, nesterov=nesterov), _grad_fn(), params, STEPS
  )
  dec = run_optimizer(
    optax_decay.sgdw(0.05, momentum, weight_decay=lam, nesterov=nesterov), _grad_fn(), params, STEPS
  )
  assert _max_diff(l2[-1], dec[-1]) > 1e-3


def test_adam_l2_differs_from_adamw():
  lam = 0.2
  params = PROBLEM.params(jnp.float32)
  l2 = run_optimizer(optax_decay.adam_l2(1e-2, l2=lam), _grad_fn(), params, STEPS)
  dec = run_optimizer(optax_decay.adamw(1e-2, weight_decay=lam), _grad_fn(), params, STEPS)
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
  eager = run_optimizer(ALIASES[name](), _grad_fn(), params, EAGER_STEPS, jit=False)
  jitted = run_optimizer(ALIASES[name](), _grad_fn(), params, EAGER_STEPS, jit=True)
  for a, b in zip(eager, jitted, strict=True):
    assert_trees_close(a, b, rtol=1e-6, atol=1e-7)
  assert _max_diff(eager[-1], params) > 1e-3
