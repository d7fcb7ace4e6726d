"""Schedules for the decay: warm restarts, normalized decay and the EMA timescale of AdamW.

How strong a decay to choose, and how it should move over a run: the paper's cosine annealing
with warm restarts and its decay normalized per period (Loshchilov & Hutter, App. B), the
normalized weight decay of a whole run, and the timescale view of Wang & Aitchison.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_decay import _errors, _rates

_INT32_MAX = int(np.iinfo(np.int32).max)


def _check_periods(first_period_steps: Any, period_multiplier: Any) -> None:
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
      raise TypeError(_errors.named(f"{name} must be an int, got {value!r}.{hint}"))
    if not least <= value <= _INT32_MAX:
      raise ValueError(_errors.named(f"{name} must be in [{least}, 2**31 - 1], got {value}."))


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


@_errors.public
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
  _check_periods(first_period_steps, period_multiplier)
  for name, value in (("eta_min", eta_min), ("eta_max", eta_max)):
    _rates.check_number(value, name)
  if _rates.is_constant(eta_min) and _rates.is_constant(eta_max) and eta_min > eta_max:
    raise ValueError(_errors.named(f"eta_min={eta_min} exceeds eta_max={eta_max}."))
  period_of = _period_of(first_period_steps, period_multiplier)

  def schedule(count):
    t_cur, t_i = period_of(count)
    # `float` is JAX's default float type: float32, or float64 when x64 is enabled.
    phase = t_cur.astype(float) / t_i
    return eta_min + 0.5 * (eta_max - eta_min) * (1 + jnp.cos(jnp.pi * phase))

  return schedule


@_errors.public
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
  _rates.check_number(weight_decay_norm, "weight_decay_norm")
  _check_periods(first_period_steps, period_multiplier)
  if _rates.is_constant(weight_decay_norm) and weight_decay_norm / first_period_steps**0.5 >= 1:
    raise ValueError(
      _errors.named(
        f"weight_decay_norm={weight_decay_norm} over sqrt(first_period_steps="
        f"{first_period_steps}) is ≥ 1, so a step would remove the whole weight. Lower it."
      )
    )
  period_of = _period_of(first_period_steps, period_multiplier)

  def schedule(count):
    _, t_i = period_of(count)
    return weight_decay_norm / jnp.sqrt(t_i)

  return schedule


def _number(value: Any, name: str, *, positive: bool = True) -> float:
  """`value` as a float after checking it is a finite, non-negative (or positive) number."""
  _rates.check_number(value, name, positive=positive)
  if not _rates.is_constant(value):
    raise TypeError(_errors.named(f"{name} must be a concrete number, got a traced value."))
  return float(value)


@_errors.public
def normalized_weight_decay(
  weight_decay_norm: float,
  *,
  batch_size: float,
  num_examples: float,
  num_epochs: float,
) -> float:
  r"""The weight decay λ for a run, from the normalized decay λ_norm of Loshchilov & Hutter.

  .. math::

    \lambda = \lambda_{norm} \sqrt{\frac{b}{B\,T}}

  with batch size :math:`b`, :math:`B` training examples and :math:`T` epochs. :math:`BT/b` is
  the number of steps of the run, so λ shrinks as 1/√steps: the total decay a run applies stays
  comparable when its length or batch size changes, and one λ_norm transfers between them. The
  paper found λ_norm ≈ 0.025–0.05 good for its image classifiers. The λ returned is the value
  the paper multiplies by its schedule multiplier η_t, i.e. ``weight_decay`` for
  ``coupling="schedule"`` (see :func:`scale_by_learning_rate_and_decay`); for the usual
  ``coupling="lr"``, which multiplies by the learning rate too, divide it by the peak learning
  rate to remove the same fraction per step.

  Args:
    weight_decay_norm: λ_norm ≥ 0.
    batch_size: b > 0, examples per step.
    num_examples: B > 0, examples in the training set.
    num_epochs: T > 0, epochs of the run (of the current period, with warm restarts).

  Returns:
    λ as a Python float.

  Raises:
    TypeError, ValueError: when an argument is not a finite number, is negative, or (apart
      from ``weight_decay_norm``) is zero.

  Example:
    >>> import optax_decay
    >>> optax_decay.normalized_weight_decay(
    ...     0.05, batch_size=128, num_examples=50_000, num_epochs=200)
    0.00017888543819998318

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019, Appendix B.1.
  """
  weight_decay_norm = _number(weight_decay_norm, "weight_decay_norm", positive=False)
  batch_size = _number(batch_size, "batch_size")
  num_examples = _number(num_examples, "num_examples")
  num_epochs = _number(num_epochs, "num_epochs")
  return weight_decay_norm * math.sqrt(batch_size / (num_examples * num_epochs))


@_errors.public
def timescale_from_weight_decay(
  weight_decay: float,
  *,
  learning_rate: float,
  batch_size: float,
  num_examples: float,
) -> float:
  r"""The timescale, in epochs, over which AdamW's weights average their updates.

  With decay coupled to the learning rate (``coupling="lr"``, as ``optax.adamw`` and PyTorch's
  ``AdamW``), one step is :math:`w_t = (1 - \eta\lambda) w_{t-1} - \eta u_t`: the weights are an
  exponential moving average of the updates :math:`-u_t/\lambda` with timescale

  .. math::

    \tau_{iter} = \frac{1}{\eta\,\lambda} \text{ steps}, \qquad
    \tau_{epoch} = \tau_{iter}\,\frac{b}{B} = \frac{b}{\eta\,\lambda\,B} \text{ epochs}

  (with zero updates the weights fall to 1/e of their value in
  :math:`-1/\ln(1-\eta\lambda) \approx \tau_{iter}` steps). Wang & Aitchison find the best
  τ_epoch roughly constant as models and datasets grow, so it is the number to keep when
  scaling; :func:`weight_decay_from_timescale` inverts this.

  Args:
    weight_decay: λ > 0.
    learning_rate: η > 0, the (peak) learning rate that multiplies the decay. For
      ``coupling="schedule"`` or ``"none"`` pass 1.0, since the decay per step is then λ.
    batch_size: b > 0, examples per step.
    num_examples: B > 0, examples in the training set.

  Returns:
    τ_epoch as a Python float.

  Raises:
    TypeError, ValueError: when an argument is not a finite, positive number.

  Example:
    >>> import optax_decay
    >>> optax_decay.timescale_from_weight_decay(
    ...     0.1, learning_rate=1e-3, batch_size=256, num_examples=1_280_000)
    2.0

  References:
    Wang & Aitchison, `How to set AdamW's weight decay as you scale model and dataset size
    <https://arxiv.org/abs/2405.13698>`_, ICML 2025.
  """
  weight_decay = _number(weight_decay, "weight_decay")
  learning_rate = _number(learning_rate, "learning_rate")
  batch_size = _number(batch_size, "batch_size")
  num_examples = _number(num_examples, "num_examples")
  return batch_size / (learning_rate * weight_decay * num_examples)


@_errors.public
def weight_decay_from_timescale(
  tau_epoch: float,
  *,
  learning_rate: float,
  batch_size: float,
  num_examples: float,
) -> float:
  r"""The weight decay λ that gives AdamW's weights an EMA timescale of ``tau_epoch`` epochs.

  .. math::

    \lambda = \frac{b}{\eta\, B\, \tau_{epoch}}

  the inverse of :func:`timescale_from_weight_decay` (see there for the EMA view). Keeping
  τ_epoch fixed, λ must grow when the learning rate falls or the batch grows, and shrink as
  the dataset grows.

  Args:
    tau_epoch: τ_epoch > 0, the timescale in epochs.
    learning_rate: η > 0, the (peak) learning rate that multiplies the decay (1.0 for
      ``coupling="schedule"`` or ``"none"``).
    batch_size: b > 0, examples per step.
    num_examples: B > 0, examples in the training set.

  Returns:
    λ as a Python float, the ``weight_decay`` of :func:`adamw`.

  Raises:
    TypeError, ValueError: when an argument is not a finite, positive number.

  Example:
    >>> import optax_decay
    >>> optax_decay.weight_decay_from_timescale(
    ...     2.0, learning_rate=1e-3, batch_size=256, num_examples=1_280_000)
    0.1

  References:
    Wang & Aitchison, `How to set AdamW's weight decay as you scale model and dataset size
    <https://arxiv.org/abs/2405.13698>`_, ICML 2025.
  """
  tau_epoch = _number(tau_epoch, "tau_epoch")
  learning_rate = _number(learning_rate, "learning_rate")
  batch_size = _number(batch_size, "batch_size")
  num_examples = _number(num_examples, "num_examples")
  return batch_size / (learning_rate * num_examples * tau_epoch)
