"""The four optimizers as chains: AdamW, Adam with L2, SGDW and SGD with L2.

Each has the state layout of the optax optimizer it replaces (the README's table), so that a
checkpoint written by optax restores into it: `adamw` is laid out as `optax.adamw`, `adam_l2` as
`chain(add_decayed_weights(λ), adam(lr))`, `sgdw` as `chain(trace(μ), add_decayed_weights(λ),
scale_by_learning_rate(lr))` and `sgd_l2` as `chain(add_decayed_weights(λ), sgd(lr, μ))`.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import optax

from optax_decay import _add_scaled, _coupling, _masks, _rates


def _check_beta(value: Any, name: str, owner: str) -> None:
  _rates.check_number(value, name, owner)
  if _rates.is_constant(value) and not float(value) < 1:
    raise ValueError(
      f"{owner}: {name} must lie in [0, 1), got {float(value)}: with {name} = 1 the moment "
      "never moves from zero and its bias correction 1 - β^t divides by zero."
    )


def adam_preconditioner(
  owner: str, *, b1, b2, eps, eps_root, mu_dtype, nesterov
) -> optax.GradientTransformation:
  """``optax.scale_by_adam`` after checking its arguments, errors prefixed by `owner`."""
  _check_beta(b1, "b1", owner)
  _check_beta(b2, "b2", owner)
  _rates.check_number(eps, "eps", owner)
  _rates.check_number(eps_root, "eps_root", owner)
  _add_scaled.check_bool(nesterov, "nesterov", owner)
  return optax.scale_by_adam(
    b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
  )


def momentum_step(
  momentum: Any, nesterov: bool, accumulator_dtype: Any, owner: str
) -> optax.GradientTransformation:
  """``optax.sgd``'s first link: ``optax.trace``, or ``optax.identity`` when momentum is None."""
  _add_scaled.check_bool(nesterov, "nesterov", owner)
  if momentum is None:
    return optax.identity()
  _rates.check_number(momentum, "momentum", owner)
  return optax.trace(decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)


def passing_none(tx: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """`tx` answering ``update(None, state, params)`` with ``(None, state)``.

  optax's transforms accept a call without updates (``optax.add_decayed_weights`` returns None),
  but ``optax.scale_by_adam`` fails on it and ``optax.trace`` replaces its buffer by None, which
  the next step cannot take. An optimizer called without updates is left as it was.
  """
  tx = optax.with_extra_args_support(tx)

  def update_fn(updates, state, params=None, **extra_args) -> tuple[Any, Any]:
    if updates is None:
      return None, state
    return tx.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(tx.init, update_fn)


def learning_rate_step(learning_rate: Any, owner: str) -> optax.GradientTransformation:
  learning_rate = _rates.check_rate(learning_rate, "learning_rate", owner)
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

  It is ``optax.chain(optax.scale_by_adam(...), <the two links of
  scale_by_learning_rate_and_decay(...)>)``: a flat chain whose state is laid out as
  ``optax.adamw``'s, so an ``optax.adamw`` checkpoint restores into it.

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
  return passing_none(optax.chain(adam, *_coupling.decay_parts(**decay, owner=owner)))


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

  It is ``optax.chain(add_l2_to_grads(l2, mask), optax.adam(learning_rate, ...))``, with the
  state of the optax code it replaces, ``chain(add_decayed_weights(l2, mask), adam(...))``.

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
  return passing_none(
    optax.chain(
      _add_scaled.add_scaled_params(l2, mask, owner, "l2"),
      optax.chain(
        adam_preconditioner(
          owner, b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
        ),
        learning_rate_step(learning_rate, owner),
      ),
    )
  )


def sgdw(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float | None = None,
  weight_decay: optax.ScalarOrSchedule = 1e-4,
  mask: _masks.Mask = None,
  *,
  nesterov: bool = False,
  accumulator_dtype: Any | None = None,
  coupling: str = "lr",
  peak_learning_rate: float | jax.Array | None = None,
  cautious: bool = False,
) -> optax.GradientTransformation:
  r"""SGD, with optional momentum, and decoupled weight decay (SGDW).

  .. math::

    b_t &= \mu\, b_{t-1} + g_t, \qquad
    u_t = b_t \;\; (\text{Nesterov: } u_t = g_t + \mu\, b_t) \\
    w_t &= w_{t-1} - \mathrm{lr}_t\, u_t - c_t\, \lambda\, w_{t-1}

  The momentum buffer follows ``optax.trace`` (PyTorch's ``SGD`` with ``dampening=0``): it sums
  raw gradients and the current learning rate scales it. Without momentum (the default, as in
  ``optax.sgd`` and ``torch.optim.SGD``) :math:`u_t = g_t` and this is plain SGD, equal to
  :func:`sgd_l2` with the same λ when ``coupling="lr"`` (Loshchilov & Hutter, Prop. 1); with
  momentum the two differ. :math:`c_t` is set by ``coupling`` as in
  :func:`scale_by_learning_rate_and_decay`.

  It is ``optax.chain(optax.trace(momentum, nesterov, accumulator_dtype), <the two links of
  scale_by_learning_rate_and_decay(...)>)``, with ``optax.identity()`` in place of ``trace``
  when ``momentum`` is None, as in ``optax.sgd``. With ``coupling="lr"`` its state is laid out
  as ``chain(trace(μ), add_decayed_weights(λ, mask), scale_by_learning_rate(lr))``'s.

  Args:
    learning_rate: lr, a float, scalar array or schedule.
    momentum: μ ≥ 0, or None (the default) for no momentum buffer at all.
    weight_decay: λ ≥ 0, a float, scalar array or schedule.
    mask: which parameters are decayed (``None``: all); see :func:`decoupled_decay`.
    nesterov: use Nesterov momentum.
    accumulator_dtype: dtype of the momentum buffer, as in ``optax.sgd`` (None: the
      gradients').
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
    accumulator_dtype=accumulator_dtype,
    coupling=coupling,
    peak_learning_rate=peak_learning_rate,
    cautious=cautious,
  )


def sgdw_for(
  owner: str, *, momentum, nesterov, accumulator_dtype=None, **decay
) -> optax.GradientTransformation:
  """:func:`sgdw` with its errors and warnings prefixed by `owner` (sgdwr builds on it)."""
  return passing_none(
    optax.chain(
      momentum_step(momentum, nesterov, accumulator_dtype, owner),
      *_coupling.decay_parts(**decay, owner=owner),
    )
  )


def sgd_l2(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float | None = None,
  l2: optax.ScalarOrSchedule = 1e-4,
  mask: _masks.Mask = None,
  *,
  nesterov: bool = False,
  accumulator_dtype: Any | None = None,
) -> optax.GradientTransformation:
  r"""SGD, with optional momentum, and L2 regularization: PyTorch's ``SGD(weight_decay=...)``.

  .. math::

    g_t &= \nabla f(w_{t-1}) + \lambda\, w_{t-1} \\
    b_t &= \mu\, b_{t-1} + g_t, \qquad
    u_t = b_t \;\; (\text{Nesterov: } u_t = g_t + \mu\, b_t) \\
    w_t &= w_{t-1} - \mathrm{lr}_t\, u_t

  and :math:`u_t = g_t` without momentum (the default, as in ``optax.sgd`` and
  ``torch.optim.SGD``).

  It is ``optax.chain(add_l2_to_grads(l2, mask), optax.sgd(learning_rate, momentum, nesterov,
  accumulator_dtype))``, with the state of the optax code it replaces,
  ``chain(add_decayed_weights(l2, mask), sgd(...))``.

  Args:
    learning_rate: lr, a float, scalar array or schedule.
    momentum: μ ≥ 0, or None (the default) for no momentum buffer at all.
    l2: λ ≥ 0, a float, scalar array or schedule.
    mask: which parameters are penalized (``None``: all); see :func:`add_l2_to_grads`.
    nesterov: use Nesterov momentum.
    accumulator_dtype: dtype of the momentum buffer, as in ``optax.sgd`` (None: the
      gradients').

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax_decay
    >>> tx = optax_decay.sgd_l2(0.1, l2=1e-3)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    >>> updates["w"]
    Array([-0.0001, -0.0001, -0.0001], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  owner = "sgd_l2"
  tx = passing_none(
    optax.chain(
      _add_scaled.add_scaled_params(l2, mask, owner, "l2"),
      optax.chain(
        momentum_step(momentum, nesterov, accumulator_dtype, owner),
        learning_rate_step(learning_rate, owner),
      ),
    )
  )
  if _rates.is_constant(learning_rate) and _rates.is_constant(l2):
    # The first step alone shrinks each weight by lr·l2, momentum or not.
    fraction = float(cast(float, learning_rate)) * float(cast(float, l2))
    _coupling.check_per_step_fraction(fraction, owner)
  return tx
