"""Cosine annealing with warm restarts (SGDR) and the decay normalized per restart period."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_decay import _rates

__all__ = ["cosine_warm_restarts_multiplier", "restart_normalized_weight_decay"]

_INT32_MAX = int(np.iinfo(np.int32).max)


def _check_periods(first_period_steps: Any, period_multiplier: Any, owner: str) -> None:
  for name, value, least in (
    ("first_period_steps", first_period_steps, 1),
    ("period_multiplier", period_multiplier, 1),
  ):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
      hint = ""
      if isinstance(value, (np.ndarray, jax.Array)):
        hint = (
          " Under inject_hyperparams pass static_args=('first_period_steps', 'period_multiplier')."
        )
      raise TypeError(f"{owner}: {name} must be an int, got {value!r}.{hint}")
    if not least <= value <= _INT32_MAX:
      raise ValueError(f"{owner}: {name} must be in [{least}, 2**31 - 1], got {value}.")


def _period_of(first_period_steps: int, period_multiplier: int):
  """A function of the step count t returning (t - start of its period, length of the period).

  Period i starts at S_i = T_0 (m^i - 1)/(m - 1) (T_0 i when m = 1) and lasts T_i = T_0 m^i.
  For m ≥ 2 the starts below 2^31 are at most 32 numbers, so they are listed once here and the
  period of a (traced) step is found by an exact integer search among them, with no rounding at
  the restart boundaries. The offset into the period is an int32; the length is returned as a
  float (JAX's default float type), because the last period that starts below 2^31 may end
  beyond it, where an int32 length would be clipped.
  """
  if period_multiplier == 1:

    def constant(count):
      count = jnp.asarray(count, jnp.int32)
      return count % first_period_steps, jnp.asarray(float(first_period_steps))

    return constant

  starts, lengths = [0], [first_period_steps]
  while starts[-1] + lengths[-1] <= _INT32_MAX:
    starts.append(starts[-1] + lengths[-1])
    lengths.append(lengths[-1] * period_multiplier)
  starts = np.asarray(starts, np.int32)
  lengths = np.asarray(lengths, np.float64)

  def growing(count):
    count = jnp.asarray(count, jnp.int32)
    index = jnp.searchsorted(starts, count, side="right") - 1
    return count - jnp.asarray(starts)[index], jnp.asarray(lengths, float)[index]

  return growing


def cosine_warm_restarts_multiplier(
  first_period_steps: int,
  period_multiplier: int = 2,
  eta_min: float = 0.0,
  eta_max: float = 1.0,
) -> optax.Schedule:
  r"""The schedule multiplier η_t of SGDR: cosine annealing restarted with growing periods.

  .. math::

    \eta_t = \eta_{min} + \tfrac12 (\eta_{max} - \eta_{min})
             \Big(1 + \cos\big(\pi\, T_{cur} / T_i\big)\Big)

  where :math:`T_{cur}` counts the steps since the last restart and :math:`T_i` is the length
  of the current period: :math:`T_0` = ``first_period_steps``, multiplied by
  :math:`T_{mult}` = ``period_multiplier`` at each restart. Each period starts at
  :math:`\eta_{max}` and falls towards (without reaching) :math:`\eta_{min}`; with
  :math:`T_0=100, T_{mult}=2` the restarts are at steps 100, 300, 700, 1500, ...

  Everything is counted in steps, as the paper updates :math:`T_{cur}` after every batch: for
  a first period of :math:`E_0` epochs pass ``first_period_steps = E_0 · steps_per_epoch``.
  Integer arithmetic finds the period of a step, so restarts land on the exact step, under
  ``jit`` too, for steps up to 2³¹ − 1.

  Args:
    first_period_steps: :math:`T_0 \ge 1`, the length of the first period in steps.
    period_multiplier: :math:`T_{mult} \ge 1`, an int as in PyTorch's
      ``CosineAnnealingWarmRestarts``; 1 restarts every ``first_period_steps``.
    eta_min: the floor :math:`\eta_{min} \ge 0`.
    eta_max: the value at each restart, :math:`\eta_{max} \ge \eta_{min}`.

  Returns:
    An ``optax.Schedule``: a function of the (possibly traced) integer step count.

  Example:
    >>> import optax_decay
    >>> eta = optax_decay.cosine_warm_restarts_multiplier(100, period_multiplier=2)
    >>> [round(float(eta(t)), 4) for t in (0, 50, 99, 100, 200, 300)]
    [1.0, 0.5, 0.0002, 1.0, 0.5, 1.0]

  References:
    Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm Restarts
    <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019, Appendix B.2.
  """
  owner = "cosine_warm_restarts_multiplier"
  _check_periods(first_period_steps, period_multiplier, owner)
  for name, value in (("eta_min", eta_min), ("eta_max", eta_max)):
    _rates.check_number(value, name, owner)
  if _rates.is_constant(eta_min) and _rates.is_constant(eta_max) and eta_min > eta_max:
    raise ValueError(f"{owner}: eta_min={eta_min} exceeds eta_max={eta_max}.")
  period_of = _period_of(first_period_steps, period_multiplier)

  def schedule(count):
    t_cur, t_i = period_of(count)
    # `float` is JAX's default float type: float32, or float64 when x64 is enabled.
    phase = t_cur.astype(float) / t_i
    return eta_min + 0.5 * (eta_max - eta_min) * (1 + jnp.cos(jnp.pi * phase))

  return schedule


def restart_normalized_weight_decay(
  weight_decay_norm: float,
  first_period_steps: int,
  period_multiplier: int = 2,
) -> optax.Schedule:
  r"""The normalized weight decay of each warm-restart period, as a schedule of the step count.

  .. math::

    \lambda_i = \lambda_{norm} \sqrt{\frac{b}{B\, T_i^{epochs}}}
              = \frac{\lambda_{norm}}{\sqrt{T_i}}

  :math:`T_i` is the length of the current period of :func:`cosine_warm_restarts_multiplier`
  in steps: with batch size :math:`b` and :math:`B` training examples, a period of
  :math:`T_i^{epochs}` epochs is :math:`T_i = B\,T_i^{epochs}/b` steps, so the paper's
  normalization (App. B.1, with "T of the current period" for restarts) needs no batch or
  dataset size. Longer periods get a smaller λ, so each period decays the weights by about the
  same total amount. The schedule is constant within a period and changes at each restart.

  It is meant for ``coupling="schedule"``, where the decay per step is η_t·λ_i (the paper's
  Alg. 1 and 2): see :func:`adamwr` and :func:`sgdwr`.

  Args:
    weight_decay_norm: λ_norm ≥ 0 (the paper's best values were about 0.025–0.05).
    first_period_steps: :math:`T_0 \ge 1` in steps, as in
      :func:`cosine_warm_restarts_multiplier`.
    period_multiplier: :math:`T_{mult} \ge 1`, an int.

  Returns:
    An ``optax.Schedule`` giving λ_i at each step.

  Raises:
    ValueError: when λ_norm/√T_0 ≥ 1, which would remove the whole weight in one step.

  Example:
    >>> import optax_decay
    >>> wd = optax_decay.restart_normalized_weight_decay(0.05, first_period_steps=100)
    >>> [round(float(wd(t)), 6) for t in (0, 99, 100, 299, 300)]
    [0.005, 0.005, 0.003536, 0.003536, 0.0025]

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019, Appendices B.1 and B.2.
  """
  owner = "restart_normalized_weight_decay"
  _rates.check_number(weight_decay_norm, "weight_decay_norm", owner)
  _check_periods(first_period_steps, period_multiplier, owner)
  if _rates.is_constant(weight_decay_norm) and weight_decay_norm / first_period_steps**0.5 >= 1:
    raise ValueError(
      f"{owner}: weight_decay_norm={weight_decay_norm} over sqrt(first_period_steps="
      f"{first_period_steps}) is ≥ 1, so a step would remove the whole weight. Lower it."
    )
  period_of = _period_of(first_period_steps, period_multiplier)

  def schedule(count):
    _, t_i = period_of(count)
    return weight_decay_norm / jnp.sqrt(t_i)

  return schedule
