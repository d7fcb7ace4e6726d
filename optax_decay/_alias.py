"""The ready-made optimizers, each a short chain of optax primitives and this library's decays.

AdamW, Adam-L2 and AdamS; SGDW and SGD-L2; AdamWR and SGDWR, the warm-restart variants.

Each has the state layout of the optax code it replaces (the README's table), so that a
checkpoint written by optax restores into it: `adamw` is laid out as `optax.adamw`, `adam_l2` as
`chain(add_decayed_weights(λ), adam(lr))`, `sgdw` as `chain(trace(μ), add_decayed_weights(λ),
scale_by_learning_rate(lr))` and `sgd_l2` as `chain(add_decayed_weights(λ), sgd(lr, μ))`.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import optax

from optax_decay import _coupling, _decays, _errors, _masks, _rates, _schedules, _stable, _wrappers

_BETA_ONE = (
  "with it the moment never moves from zero and its bias correction 1 - β^t divides by zero."
)


def _adam(*, b1, b2, eps, eps_root, mu_dtype, nesterov) -> optax.GradientTransformation:
  """``optax.scale_by_adam`` after checking its arguments."""
  _rates.check_fraction(b1, "b1", _BETA_ONE)
  _rates.check_fraction(b2, "b2", _BETA_ONE)
  _rates.check_number(eps, "eps")
  _rates.check_number(eps_root, "eps_root")
  _rates.check_bool(nesterov, "nesterov")
  return optax.scale_by_adam(
    b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
  )


def _momentum(
  momentum: Any, nesterov: bool, accumulator_dtype: Any
) -> optax.GradientTransformation:
  """``optax.sgd``'s first link: ``optax.trace``, or ``optax.identity`` when momentum is None."""
  _rates.check_bool(nesterov, "nesterov")
  if momentum is None:
    return optax.identity()
  _rates.check_number(momentum, "momentum")
  return optax.trace(decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)


def _learning_rate(learning_rate: Any) -> optax.GradientTransformation:
  return optax.scale_by_learning_rate(_rates.check_rate(learning_rate, "learning_rate"))


# --- Adam ---------------------------------------------------------------------------------------


@_errors.public
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
) -> optax.GradientTransformationExtraArgs:
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
    An ``optax.GradientTransformationExtraArgs`` (a chain).

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
  return _wrappers.passing_none(
    optax.chain(
      _adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
      *_coupling.decay_parts(
        learning_rate,
        weight_decay,
        mask,
        coupling=coupling,
        peak_learning_rate=peak_learning_rate,
        cautious=cautious,
      ),
    )
  )


@_errors.public
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
) -> optax.GradientTransformationExtraArgs:
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
    An ``optax.GradientTransformationExtraArgs`` (a chain).

  Example:
    >>> import jax.numpy as jnp, optax_decay
    >>> tx = optax_decay.adam_l2(1e-3, l2=1e-2)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  return _wrappers.passing_none(
    optax.chain(
      _decays.add_l2_to_grads(l2, mask),
      optax.chain(
        _adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        _learning_rate(learning_rate),
      ),
    )
  )


@_errors.public
def adams(
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
  decay_eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
  r"""Adam with stable weight decay (AdamS).

  .. math::

    w_t = w_{t-1} - \mathrm{lr}_t \Big(\frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
          + \frac{\lambda}{\sqrt{\bar v_t} + \epsilon_{d}}\, w_{t-1}\Big),
    \qquad \bar v_t = \operatorname{mean}_i \hat v_{t,i}

  AdamW's step with the decay divided by the root of the mean bias-corrected second moment over
  all parameters (Xie et al., Alg. 2; their ε-free decay is ``decay_eps=0``, which leaves
  Adam's own ε as it is). It is ``optax.chain(stable_decoupled_decay(optax.scale_by_adam(...),
  weight_decay, b2=b2, eps=decay_eps, mask=mask), optax.scale_by_learning_rate(learning_rate))``.
  The decay is coupled to the learning rate (lr_t·λ), as in the paper and in PyTorch's
  ``AdamW``.

  Args:
    learning_rate: lr, a float, scalar array or schedule.
    b1, b2, eps, eps_root, mu_dtype, nesterov: as in ``optax.scale_by_adam``.
    weight_decay: λ ≥ 0, a float, scalar array or schedule.
    mask: which parameters are decayed (``None``: all); see :func:`decoupled_decay`.
    decay_eps: :math:`\epsilon_d \ge 0`, added to :math:`\sqrt{\bar v_t}` in the decay's
      denominator only (Adam's ``eps`` is separate).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (a chain).

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    >>> tx = optax_decay.adams(1e-3, weight_decay=5e-4, mask={"w": True, "b": False})
    >>> grads = {"w": jnp.full((2, 2), 0.1), "b": jnp.full(2, 0.1)}
    >>> updates, state = tx.update(grads, tx.init(params), params)
    >>> params = optax.apply_updates(params, updates)

  References:
    Xie, Xu, Zhang, Sato & Sugiyama, `On the Overlooked Pitfalls of Weight Decay and How to
    Mitigate Them: A Gradient-Norm Perspective <https://arxiv.org/abs/2011.11152>`_,
    NeurIPS 2023.
  """
  adam = _adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov)
  return _wrappers.passing_none(
    optax.chain(
      _stable.stable_decoupled_decay(adam, weight_decay, b2=b2, eps=decay_eps, mask=mask),
      _learning_rate(learning_rate),
    )
  )


# --- SGD ----------------------------------------------------------------------------------------


@_errors.public
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
) -> optax.GradientTransformationExtraArgs:
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
    An ``optax.GradientTransformationExtraArgs`` (a chain).

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
  return _wrappers.passing_none(
    optax.chain(
      _momentum(momentum, nesterov, accumulator_dtype),
      *_coupling.decay_parts(
        learning_rate,
        weight_decay,
        mask,
        coupling=coupling,
        peak_learning_rate=peak_learning_rate,
        cautious=cautious,
      ),
    )
  )


@_errors.public
def sgd_l2(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float | None = None,
  l2: optax.ScalarOrSchedule = 1e-4,
  mask: _masks.Mask = None,
  *,
  nesterov: bool = False,
  accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
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
    An ``optax.GradientTransformationExtraArgs`` (a chain).

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
  tx = _wrappers.passing_none(
    optax.chain(
      _decays.add_l2_to_grads(l2, mask),
      optax.chain(_momentum(momentum, nesterov, accumulator_dtype), _learning_rate(learning_rate)),
    )
  )
  if _rates.is_constant(learning_rate) and _rates.is_constant(l2):
    # The first step alone shrinks each weight by lr·l2, momentum or not.
    _coupling.check_per_step_fraction(float(cast(float, learning_rate)) * float(cast(float, l2)))
  elif momentum is None or (_rates.is_constant(momentum) and float(momentum) == 0):
    # Without momentum every step t shrinks each weight by lr_t·l2_t.
    _coupling.check_scheduled_fraction(lambda lr, l2: lr * l2, learning_rate, l2)
  return tx


# --- warm restarts (Loshchilov & Hutter, Appendix B) --------------------------------------------


def _restart_rates(
  learning_rate: Any,
  first_period_steps: int,
  period_multiplier: int,
  weight_decay_norm: Any,
  eta_min: Any,
) -> dict[str, Any]:
  """The decay arguments shared by adamwr and sgdwr: lr α·η_t, λ_i, schedule coupling."""
  if callable(learning_rate):
    raise TypeError(
      _errors.named(
        "learning_rate must be a number, the peak that the restart schedule multiplies."
      )
    )
  _rates.check_rate(learning_rate, "learning_rate", positive=True)
  eta = _schedules.cosine_warm_restarts_multiplier(first_period_steps, period_multiplier, eta_min)
  return {
    "learning_rate": lambda count: learning_rate * eta(count),
    "weight_decay": _schedules.restart_normalized_weight_decay(
      weight_decay_norm, first_period_steps, period_multiplier
    ),
    "coupling": "schedule",
    "peak_learning_rate": learning_rate,
  }


@_errors.public
def adamwr(
  learning_rate: float,
  first_period_steps: int,
  period_multiplier: int = 2,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  eps_root: float = 0.0,
  mu_dtype: Any | None = None,
  weight_decay_norm: float = 0.025,
  mask: _masks.Mask = None,
  *,
  eta_min: float = 0.0,
  nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""AdamWR: AdamW with cosine annealing, warm restarts and normalized weight decay.

  .. math::

    w_t = w_{t-1} - \eta_t \Big(\alpha\, \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}}
          + \epsilon} + \lambda_i\, w_{t-1}\Big), \qquad
    \lambda_i = \frac{\lambda_{norm}}{\sqrt{T_i}}

  with Adam's bias-corrected moments, α = ``learning_rate``, the restart multiplier η_t of
  :func:`cosine_warm_restarts_multiplier` (η_max = 1) and λ_i from
  :func:`restart_normalized_weight_decay`. The decay is scaled by the schedule multiplier η_t,
  not by α: the paper's Alg. 2, line 12, which is ``coupling="schedule"`` of :func:`adamw`.

  It is :func:`adamw` with ``learning_rate = α·η_t``, ``weight_decay = λ_i``,
  ``coupling="schedule"`` and ``peak_learning_rate = α``.

  Args:
    learning_rate: α > 0, the peak learning rate (a number).
    first_period_steps: T_0 ≥ 1, the first period in steps (epochs × steps per epoch).
    period_multiplier: T_mult ≥ 1, an int; each period is that many times the previous.
    b1, b2, eps, eps_root, mu_dtype, nesterov: as in ``optax.scale_by_adam``.
    weight_decay_norm: λ_norm ≥ 0; see :func:`restart_normalized_weight_decay`.
    mask: which parameters are decayed (``None``: all); e.g. :func:`decay_mask`.
    eta_min: the floor of η_t, in [0, 1].

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (a chain). Under
    :func:`inject_hyperparams` the period lengths stay static.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> tx = optax_decay.adamwr(1e-3, first_period_steps=100, weight_decay_norm=0.05)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    >>> updates["w"]  # η_0 = 1 and λ_0 = 0.05/√100: the first step removes 0.5%
    Array([-0.005, -0.005, -0.005], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019, Appendix B.
    Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm Restarts
    <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
  """
  rates = _restart_rates(
    learning_rate, first_period_steps, period_multiplier, weight_decay_norm, eta_min
  )
  return adamw(
    b1=b1,
    b2=b2,
    eps=eps,
    eps_root=eps_root,
    mu_dtype=mu_dtype,
    mask=mask,
    nesterov=nesterov,
    **rates,
  )


@_errors.public
def sgdwr(
  learning_rate: float,
  first_period_steps: int,
  period_multiplier: int = 2,
  momentum: float = 0.9,
  weight_decay_norm: float = 0.025,
  mask: _masks.Mask = None,
  *,
  eta_min: float = 0.0,
  nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""SGDWR: SGD with momentum, cosine annealing, warm restarts and normalized weight decay.

  .. math::

    b_t = \mu\, b_{t-1} + g_t, \qquad
    w_t = w_{t-1} - \eta_t \big(\alpha\, b_t + \lambda_i\, w_{t-1}\big), \qquad
    \lambda_i = \frac{\lambda_{norm}}{\sqrt{T_i}}

  with η_t from :func:`cosine_warm_restarts_multiplier` (η_max = 1) and λ_i from
  :func:`restart_normalized_weight_decay`; the decay is scaled by η_t, not by α
  (``coupling="schedule"``). As in :func:`sgdw`, the buffer sums raw gradients and the current
  learning rate scales it (PyTorch's convention); the paper's Alg. 1 puts η_t α inside the
  buffer instead, which differs while η_t changes.

  It is :func:`sgdw` with ``learning_rate = α·η_t``, ``weight_decay = λ_i``,
  ``coupling="schedule"`` and ``peak_learning_rate = α``.

  Args:
    learning_rate: α > 0, the peak learning rate (a number).
    first_period_steps: T_0 ≥ 1, the first period in steps (epochs × steps per epoch).
    period_multiplier: T_mult ≥ 1, an int; each period is that many times the previous.
    momentum: μ ≥ 0, 0.9 by default as in the paper's SGDR (unlike :func:`sgdw`, whose
      default follows ``optax.sgd``); None for no momentum buffer.
    weight_decay_norm: λ_norm ≥ 0; see :func:`restart_normalized_weight_decay`.
    mask: which parameters are decayed (``None``: all); e.g. :func:`decay_mask`.
    eta_min: the floor of η_t, in [0, 1].
    nesterov: use Nesterov momentum.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (a chain).

  Example:
    >>> import jax.numpy as jnp, optax_decay
    >>> tx = optax_decay.sgdwr(0.1, first_period_steps=100, weight_decay_norm=0.05)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.full(3, 2.0)}, tx.init(params), params)
    >>> updates["w"]  # -(0.1·2 + 0.05/√100·1)
    Array([-0.205, -0.205, -0.205], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019, Appendix B.
    Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm Restarts
    <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
  """
  rates = _restart_rates(
    learning_rate, first_period_steps, period_multiplier, weight_decay_norm, eta_min
  )
  return sgdw(momentum=momentum, mask=mask, nesterov=nesterov, **rates)
