"""Reference loops of the algorithms the library implements, written from the papers' equations.

Each function runs an algorithm step by step in plain NumPy (float64 unless stated otherwise) and
returns the history of the parameters after each step. Nothing here imports JAX, optax or
optax_decay: a reference re-derived from the code under test would check nothing.

Conventions shared by every loop:

- `init` is a flat dict `{name: array}` of initial parameters and `grad_fn(params)` returns the
  gradient of the loss as a dict of the same keys (by hand, in NumPy).
- In the equations t = 1, 2, ... is the papers' step. A rate (`learning_rate`, `weight_decay`,
  `l2`, ...) is a number or a function of the count t − 1 = 0, 1, ...: the number of updates
  made before this one, which is what optax passes to its schedules.
- `weight_decay` may also be a dict of per-leaf rates; `mask` is a dict of bools, the leaves that
  are decayed (`None`: all of them).
- The decoupled decay removes c_t·λ_t·(θ − θ°) per step, θ° = `anchor` (zero by default) and
  c_t = `decay_factor` (a number or a function of t; by default c_t = lr_t, PyTorch's and optax's
  AdamW). Loshchilov & Hutter's schedule multiplier η_t and rate α are lr_t = η_t·α, c_t = η_t.
"""

from __future__ import annotations

import numpy as np


def _at(rate, t):
  return rate(t) if callable(rate) else rate


def _leaf(value, key):
  return value[key] if isinstance(value, dict) else value


def _decayed(mask, key):
  return mask is None or bool(mask[key])


def _float64(init):
  return {k: np.array(v, np.float64) for k, v in init.items()}


def _penalized(grads, params, t, l2, l1, mask):
  """g_t + λ_2·θ + λ_1·sign(θ) on the decayed leaves: an L2 or L1 penalty in the gradient."""
  out = {}
  for k, w in params.items():
    on = _decayed(mask, k)
    out[k] = grads[k] + (_at(l2, t) * w if on else 0.0) + (_at(l1, t) * np.sign(w) if on else 0.0)
  return out


def _decay(params, t, lr_t, weight_decay, decay_factor, mask, anchor):
  """c_t·λ_t·(θ − θ°) per leaf: the decoupled decay, zero on the leaves the mask excludes."""
  c_t = lr_t if decay_factor is None else _at(decay_factor, t)
  out = {}
  for k, w in params.items():
    target = 0.0 if anchor is None else anchor[k]
    out[k] = c_t * _at(_leaf(weight_decay, k), t) * (w - target) if _decayed(mask, k) else 0.0
  return out


def adam(
  init,
  grad_fn,
  steps,
  learning_rate,
  *,
  b1=0.9,
  b2=0.999,
  eps=1e-8,
  l2=0.0,
  weight_decay=0.0,
  decay_factor=None,
  mask=None,
  cautious=False,
  anchor=None,
  stable=False,
  decay_eps=1e-8,
):
  """Adam with L2 in the gradient and a decoupled decay (PyTorch's Adam and AdamW; L&H Alg. 2).

    g_t = ∇f(θ_{t−1}) + λ_2·θ_{t−1}                    (PyTorch's Adam(weight_decay=λ_2))
    m_t = β1·m_{t−1} + (1 − β1)·g_t,   v_t = β2·v_{t−1} + (1 − β2)·g_t²
    m̂_t = m_t/(1 − β1^t),   v̂_t = v_t/(1 − β2^t),   u_t = m̂_t/(√v̂_t + ε)
    θ_t = θ_{t−1} − lr_t·u_t − c_t·λ_t·s_t·(θ_{t−1} − θ°)  (PyTorch's AdamW: c_t = lr_t, s_t = 1)

  Loshchilov & Hutter's Alg. 2, θ_t = θ_{t−1} − η_t(α·u_t + λ·θ_{t−1}), is lr_t = η_t·α, c_t = η_t.
  `cautious` (Chen et al. 2025) decays only where the update agrees in sign with the weight,
  s_t = 𝟙[u_t·θ_{t−1} ≥ 0]. `stable` is AdamS (Xie et al. 2023, Alg. 2): s_t = 1/(√v̄_t + ε_d)
  with v̄_t the mean of v̂_t over every parameter, decayed or not, and ε_d = `decay_eps`; use
  `adams` for it.
  """
  params = _float64(init)
  m = {k: np.zeros_like(w) for k, w in params.items()}
  v = {k: np.zeros_like(w) for k, w in params.items()}
  history = []
  for t in range(steps):
    g = _penalized(grad_fn(params), params, t, l2, 0.0, mask)
    u, v_hat = {}, {}
    for k in params:
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
      m_hat = m[k] / (1 - b1 ** (t + 1))
      v_hat[k] = v[k] / (1 - b2 ** (t + 1))
      u[k] = m_hat / (np.sqrt(v_hat[k]) + eps)
    lr_t = _at(learning_rate, t)
    decay = _decay(params, t, lr_t, weight_decay, decay_factor, mask, anchor)
    if stable:
      v_bar = sum(x.sum() for x in v_hat.values()) / sum(x.size for x in v_hat.values())
      decay = {k: d / (np.sqrt(v_bar) + decay_eps) for k, d in decay.items()}
    if cautious:
      decay = {k: d * (u[k] * params[k] >= 0) for k, d in decay.items()}
    params = {k: w - lr_t * u[k] - decay[k] for k, w in params.items()}
    history.append(params)
  return history


def adams(init, grad_fn, steps, learning_rate, *, weight_decay, eps=1e-8, decay_eps=1e-8, **kw):
  """AdamS, Alg. 2 of Xie et al. (2023): AdamW's decay divided by the root of the mean v̂.

    θ_t = θ_{t−1} − lr_t·m̂_t/(√v̂_t + ε) − lr_t·λ_t/(√v̄_t + ε_d)·θ_{t−1},   v̄_t = mean(v̂_t),

  the mean over every parameter, decayed or not (m̂, v̂ as in `adam`). The paper's decay has no
  ε_d (`decay_eps=0`); Adam's ε is separate.
  """
  return adam(
    init,
    grad_fn,
    steps,
    learning_rate,
    weight_decay=weight_decay,
    eps=eps,
    stable=True,
    decay_eps=decay_eps,
    **kw,
  )


def sgd(
  init,
  grad_fn,
  steps,
  learning_rate,
  *,
  momentum=0.0,
  nesterov=False,
  ema=False,
  l2=0.0,
  l1=0.0,
  weight_decay=0.0,
  decay_factor=None,
  mask=None,
  anchor=None,
):
  """SGD with momentum, an L2 or L1 penalty in the gradient and a decoupled decay.

  PyTorch's SGD(momentum=μ, weight_decay=λ_2, nesterov, dampening=0), written out:

    g_t = ∇f(θ_{t−1}) + λ_2·θ_{t−1} + λ_1·sign(θ_{t−1})
    b_t = μ·b_{t−1} + g_t   (b_0 = 0, so b_1 = g_1 as in PyTorch)
    u_t = g_t + μ·b_t if nesterov else b_t
    θ_t = θ_{t−1} − lr_t·u_t − c_t·λ_t·(θ_{t−1} − θ°)   (SGDW; c_t = lr_t by default)

  With `ema` the buffer is an exponential moving average, b_t = μ·b_{t−1} + (1 − μ)·g_t from
  b_0 = 0 (optax.ema(debias=False); PyTorch's dampening would start from b_1 = g_1 instead).
  The learning rate multiplies the buffer, unlike L&H's Alg. 1 (see `sgdw_paper`).
  """
  params = _float64(init)
  buf = {k: np.zeros_like(w) for k, w in params.items()}
  history = []
  for t in range(steps):
    g = _penalized(grad_fn(params), params, t, l2, l1, mask)
    u = {}
    for k in params:
      buf[k] = momentum * buf[k] + ((1 - momentum) * g[k] if ema else g[k])
      u[k] = g[k] + momentum * buf[k] if nesterov else buf[k]
    lr_t = _at(learning_rate, t)
    decay = _decay(params, t, lr_t, weight_decay, decay_factor, mask, anchor)
    params = {k: w - lr_t * u[k] - decay[k] for k, w in params.items()}
    history.append(params)
  return history


def sgdw_paper(init, grad_fn, steps, alpha, schedule_multiplier, *, momentum, weight_decay):
  """SGDW as Loshchilov & Hutter's Alg. 1 writes it: α·η_t inside the momentum buffer.

    m_t = β·m_{t−1} + η_t·α·g_t,   θ_t = θ_{t−1} − m_t − η_t·λ·θ_{t−1}

  With a changing η_t this differs from `sgd`, where the learning rate multiplies the buffer.
  """
  params = _float64(init)
  m = {k: np.zeros_like(w) for k, w in params.items()}
  history = []
  for t in range(steps):
    g = grad_fn(params)
    eta = _at(schedule_multiplier, t)
    for k in params:
      m[k] = momentum * m[k] + eta * alpha * g[k]
    params = {k: w - m[k] - eta * weight_decay * w for k, w in params.items()}
    history.append(params)
  return history


def kahan_sum(w0, updates, dtype, carry_dtype=np.float32):
  """Kahan (compensated) summation of `updates` into weights stored in `dtype`.

    s = w_{t−1} + u_t + e_{t−1} (in `carry_dtype`),   w_t = round(s),   e_t = s − w_t

  Returns the final weights, in `dtype`.
  """
  w = np.asarray(w0).astype(dtype)
  err = np.zeros(w.shape, carry_dtype)
  for u in updates:
    exact = w.astype(carry_dtype) + np.asarray(u).astype(carry_dtype) + err
    w = exact.astype(dtype)
    err = exact - w.astype(carry_dtype)
  return w


def cosine_decay_schedule(peak, decay_steps, alpha=0.0):
  """lr_t = peak·((1 − α)·½(1 + cos(π·min(t, T)/T)) + α), T = `decay_steps`."""

  def schedule(t):
    t = min(t, decay_steps)
    return peak * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * t / decay_steps)) + alpha)

  return schedule


def warmup_cosine_decay_schedule(init_value, peak, warmup_steps, decay_steps, end_value):
  """Linear from `init_value` to `peak` over `warmup_steps`, then a cosine down to `end_value`.

  `decay_steps` counts the warmup, as optax's `warmup_cosine_decay_schedule` does.
  """

  def schedule(t):
    if t < warmup_steps:
      return init_value + (peak - init_value) * t / warmup_steps
    length = decay_steps - warmup_steps
    s = min(t - warmup_steps, length)
    return end_value + (peak - end_value) * 0.5 * (1 + np.cos(np.pi * s / length))

  return schedule
