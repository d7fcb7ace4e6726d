"""AdamWR and SGDWR (Loshchilov & Hutter, Appendix B): warm restarts with a normalized decay."""

from __future__ import annotations

from typing import Any

import optax

from optax_decay import _alias, _masks, _rates
from optax_decay._warm_restarts import (
  cosine_warm_restarts_multiplier,
  restart_normalized_weight_decay,
)

__all__ = ["adamwr", "sgdwr"]


def _restart_rates(
  learning_rate: Any,
  first_period_steps: int,
  period_multiplier: int,
  weight_decay_norm: Any,
  eta_min: Any,
  owner: str,
) -> dict[str, Any]:
  """The decay arguments shared by adamwr and sgdwr: lr α·η_t, λ_i, schedule coupling."""
  if callable(learning_rate):
    raise TypeError(
      f"{owner}: learning_rate must be a number, the peak that the restart schedule multiplies."
    )
  _rates.check_rate(learning_rate, "learning_rate", owner, positive=True)
  eta = cosine_warm_restarts_multiplier(first_period_steps, period_multiplier, eta_min)
  return {
    "learning_rate": lambda count: learning_rate * eta(count),
    "weight_decay": restart_normalized_weight_decay(
      weight_decay_norm, first_period_steps, period_multiplier
    ),
    "coupling": "schedule",
    "peak_learning_rate": learning_rate,
  }


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
) -> optax.GradientTransformation:
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
    An ``optax.GradientTransformation``. Under :func:`inject_hyperparams` the period lengths
    must stay static: pass ``static_args=("first_period_steps", "period_multiplier")``.

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
    learning_rate, first_period_steps, period_multiplier, weight_decay_norm, eta_min, "adamwr"
  )
  return _alias.adamw_for(
    "adamwr",
    b1=b1,
    b2=b2,
    eps=eps,
    eps_root=eps_root,
    mu_dtype=mu_dtype,
    mask=mask,
    nesterov=nesterov,
    cautious=False,
    **rates,
  )


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
) -> optax.GradientTransformation:
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
    momentum: μ ≥ 0; 0 gives plain SGD.
    weight_decay_norm: λ_norm ≥ 0; see :func:`restart_normalized_weight_decay`.
    mask: which parameters are decayed (``None``: all); e.g. :func:`decay_mask`.
    eta_min: the floor of η_t, in [0, 1].
    nesterov: use Nesterov momentum.

  Returns:
    An ``optax.GradientTransformation``.

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
    learning_rate, first_period_steps, period_multiplier, weight_decay_norm, eta_min, "sgdwr"
  )
  return _alias.sgdw_for(
    "sgdwr", momentum=momentum, mask=mask, nesterov=nesterov, cautious=False, **rates
  )
