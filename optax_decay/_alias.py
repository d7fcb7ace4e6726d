"""The four optimizers as chains: AdamW, Adam with L2, SGDW and SGD with L2."""

from __future__ import annotations

from typing import Any, cast

import jax
import optax

from optax_decay import _add_scaled, _coupling, _masks, _rates


def _check_unit_interval(value: Any, name: str, owner: str) -> None:
  _rates.check_number(value, name, owner)
  if _rates.is_constant(value) and float(value) > 1:
    raise ValueError(f"{owner}: {name} must lie in [0, 1], got {float(value)}.")


def adam_preconditioner(
  owner: str, *, b1, b2, eps, eps_root, mu_dtype, nesterov
) -> optax.GradientTransformation:
  """``optax.scale_by_adam`` after checking its arguments, errors prefixed by `owner`."""
  _check_unit_interval(b1, "b1", owner)
  _check_unit_interval(b2, "b2", owner)
  _rates.check_number(eps, "eps", owner)
  _rates.check_number(eps_root, "eps_root", owner)
  return optax.scale_by_adam(
    b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
  )


def _momentum(momentum: Any, nesterov: bool, owner: str) -> optax.GradientTransformation:
  _rates.check_number(momentum, "momentum", owner)
  if _rates.is_zero(momentum):
    return optax.identity()
  return optax.trace(decay=momentum, nesterov=nesterov)


def learning_rate_step(learning_rate: Any, owner: str) -> optax.GradientTransformation:
  _rates.check_rate(learning_rate, "learning_rate", owner)
  return optax.scale_by_learning_rate(learning_rate)


def adamw(
  learning_rate: optax.ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  eps_root: float = 0.0,
  mu_dtype: Any | None = None,
  weight_decay: optax.ScalarOrSchedule = 1e-4,
  mask: _masks.Mask = None,
  *,
  nesterov: bool = False,
  coupling: str = "lr",
  peak_learning_rate: float | jax.Array | None = None,
  cautious: bool = False,
) -> optax.GradientTransformation:
  r"""Adam with decoupled weight decay (AdamW), with a choice of how the decay is coupled.

  .. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    w_t &= w_{t-1} - \mathrm{lr}_t\, \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
           - c_t\, \lambda\, w_{t-1}

  with bias-corrected :math:`\hat m_t, \hat v_t`. The gradient :math:`g_t` carries no penalty:
  the decay bypasses the moments (compare :func:`adam_l2`). :math:`c_t` is ``lr_t`` for
  ``coupling="lr"`` (then this is ``optax.adamw`` bit for bit, and PyTorch's ``AdamW``),
  ``lr_t/peak`` for ``"schedule"`` (the paper's Alg. 2, line 12, with η_t = lr_t/peak),
  ``lr_t²/peak`` for ``"corrected"``, 1 for ``"none"``; see
  :func:`scale_by_learning_rate_and_decay`.

  It is ``optax.chain(optax.scale_by_adam(...), scale_by_learning_rate_and_decay(...))``.

  Args:
    learning_rate: lr, a float, scalar array or schedule.
    b1, b2, eps, eps_root, mu_dtype, nesterov: as in ``optax.scale_by_adam``.
    weight_decay: λ ≥ 0, a float, scalar array or schedule.
    mask: which parameters are decayed (``None``: all); see :func:`decoupled_decay`.
    coupling: ``"lr"``, ``"schedule"``, ``"corrected"`` or ``"none"``.
    peak_learning_rate: divisor for ``"schedule"`` and ``"corrected"``; defaults to
      ``learning_rate`` when that is a number.
    cautious: decay only where the update and the weight agree in sign (Chen et al. 2025); see
      :func:`decoupled_decay`.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, optax_decay
    >>> params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    >>> tx = optax_decay.adamw(1e-3, weight_decay=1e-2, mask={"w": True, "b": False})
    >>> state = tx.init(params)
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> updates, state = tx.update(grads, state, params)
    >>> params = optax.apply_updates(params, updates)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
    Kingma & Ba, `Adam: A Method for Stochastic Optimization
    <https://arxiv.org/abs/1412.6980>`_, ICLR 2015.
  """
  return adamw_for(
    "adamw",
    learning_rate=learning_rate,
    b1=b1,
    b2=b2,
    eps=eps,
    eps_root=eps_root,
    mu_dtype=mu_dtype,
    weight_decay=weight_decay,
    mask=mask,
    nesterov=nesterov,
    coupling=coupling,
    peak_learning_rate=peak_learning_rate,
    cautious=cautious,
  )


def adamw_for(
  owner: str, *, b1, b2, eps, eps_root, mu_dtype, nesterov, **decay
) -> optax.GradientTransformation:
  """:func:`adamw` with its errors and warnings prefixed by `owner` (adamwr builds on it)."""
  adam = adam_preconditioner(
    owner, b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
  )
  return optax.chain(adam, _coupling.decay_chain(**decay, owner=owner))


def adam_l2(
  learning_rate: optax.ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  eps_root: float = 0.0,
  mu_dtype: Any | None = None,
  l2: optax.ScalarOrSchedule = 1e-4,
  mask: _masks.Mask = None,
  *,
  nesterov: bool = False,
) -> optax.GradientTransformation:
  r"""Adam with L2 regularization in the gradient: PyTorch's ``Adam(weight_decay=...)``.

  .. math::

    g_t &= \nabla f(w_{t-1}) + \lambda\, w_{t-1} \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    w_t &= w_{t-1} - \mathrm{lr}_t\, \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

  The penalty's gradient is divided by :math:`\sqrt{\hat v_t}` like the rest, so weights with
  large gradients are regularized less than with :func:`adamw` (Loshchilov & Hutter, Sec. 2).

  It is ``optax.chain(add_l2_to_grads(l2, mask), optax.scale_by_adam(...),
  optax.scale_by_learning_rate(learning_rate))``.

  Args:
    learning_rate: lr, a float, scalar array or schedule.
    b1, b2, eps, eps_root, mu_dtype, nesterov: as in ``optax.scale_by_adam``.
    l2: λ ≥ 0, a float, scalar array or schedule.
    mask: which parameters are penalized (``None``: all); see :func:`add_l2_to_grads`.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax_decay
    >>> tx = optax_decay.adam_l2(1e-3, l2=1e-2)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  owner = "adam_l2"
  return optax.chain(
    _add_scaled.add_scaled_params(l2, mask, owner, "l2"),
    adam_preconditioner(
      owner, b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
    ),
    learning_rate_step(learning_rate, owner),
  )


def sgdw(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float = 0.9,
  weight_decay: optax.ScalarOrSchedule = 1e-4,
  mask: _masks.Mask = None,
  *,
  nesterov: bool = False,
  coupling: str = "lr",
  peak_learning_rate: float | jax.Array | None = None,
  cautious: bool = False,
) -> optax.GradientTransformation:
  r"""SGD with momentum and decoupled weight decay (SGDW).

  .. math::

    b_t &= \mu\, b_{t-1} + g_t, \qquad
    u_t = b_t \;\; (\text{Nesterov: } u_t = g_t + \mu\, b_t) \\
    w_t &= w_{t-1} - \mathrm{lr}_t\, u_t - c_t\, \lambda\, w_{t-1}

  The momentum buffer follows ``optax.trace`` (PyTorch's ``SGD`` with ``dampening=0``): it sums
  raw gradients and the current learning rate scales it. With ``momentum=0`` this is plain SGD
  and equals :func:`sgd_l2` with the same λ when ``coupling="lr"`` (Loshchilov & Hutter,
  Prop. 1); with momentum the two differ. :math:`c_t` is set by ``coupling`` as in
  :func:`scale_by_learning_rate_and_decay`.

  It is ``optax.chain(optax.trace(momentum, nesterov), scale_by_learning_rate_and_decay(...))``
  (no ``trace`` when ``momentum`` is 0).

  Args:
    learning_rate: lr, a float, scalar array or schedule.
    momentum: μ ≥ 0; 0 gives plain SGD.
    weight_decay: λ ≥ 0, a float, scalar array or schedule.
    mask: which parameters are decayed (``None``: all); see :func:`decoupled_decay`.
    nesterov: use Nesterov momentum.
    coupling: ``"lr"``, ``"schedule"``, ``"corrected"`` or ``"none"``.
    peak_learning_rate: divisor for ``"schedule"`` and ``"corrected"``; defaults to
      ``learning_rate`` when that is a number.
    cautious: decay only where the update and the weight agree in sign (Chen et al. 2025); see
      :func:`decoupled_decay`.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax_decay
    >>> tx = optax_decay.sgdw(0.1, momentum=0.9, weight_decay=1e-3)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    >>> updates["w"]
    Array([-0.0001, -0.0001, -0.0001], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  return sgdw_for(
    "sgdw",
    learning_rate=learning_rate,
    momentum=momentum,
    weight_decay=weight_decay,
    mask=mask,
    nesterov=nesterov,
    coupling=coupling,
    peak_learning_rate=peak_learning_rate,
    cautious=cautious,
  )


def sgdw_for(owner: str, *, momentum, nesterov, **decay) -> optax.GradientTransformation:
  """:func:`sgdw` with its errors and warnings prefixed by `owner` (sgdwr builds on it)."""
  return optax.chain(
    _momentum(momentum, nesterov, owner), _coupling.decay_chain(**decay, owner=owner)
  )


def sgd_l2(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float = 0.9,
  l2: optax.ScalarOrSchedule = 1e-4,
  mask: _masks.Mask = None,
  *,
  nesterov: bool = False,
) -> optax.GradientTransformation:
  r"""SGD with momentum and L2 regularization: PyTorch's ``SGD(momentum, weight_decay)``.

  .. math::

    g_t &= \nabla f(w_{t-1}) + \lambda\, w_{t-1} \\
    b_t &= \mu\, b_{t-1} + g_t, \qquad
    u_t = b_t \;\; (\text{Nesterov: } u_t = g_t + \mu\, b_t) \\
    w_t &= w_{t-1} - \mathrm{lr}_t\, u_t

  It is ``optax.chain(add_l2_to_grads(l2, mask), optax.trace(momentum, nesterov),
  optax.scale_by_learning_rate(learning_rate))`` (no ``trace`` when ``momentum`` is 0).

  Args:
    learning_rate: lr, a float, scalar array or schedule.
    momentum: μ ≥ 0; 0 gives plain SGD.
    l2: λ ≥ 0, a float, scalar array or schedule.
    mask: which parameters are penalized (``None``: all); see :func:`add_l2_to_grads`.
    nesterov: use Nesterov momentum.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax_decay
    >>> tx = optax_decay.sgd_l2(0.1, momentum=0.0, l2=1e-3)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    >>> updates["w"]
    Array([-0.0001, -0.0001, -0.0001], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  tx = optax.chain(
    _add_scaled.add_scaled_params(l2, mask, "sgd_l2", "l2"),
    _momentum(momentum, nesterov, "sgd_l2"),
    learning_rate_step(learning_rate, "sgd_l2"),
  )
  if _rates.is_constant(learning_rate) and _rates.is_constant(l2):
    # The first step alone shrinks each weight by lr·l2, momentum or not.
    fraction = float(cast(float, learning_rate)) * float(cast(float, l2))
    _coupling.check_per_step_fraction(fraction, "sgd_l2")
  return tx
