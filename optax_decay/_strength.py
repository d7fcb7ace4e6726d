"""How strong a decay to choose: normalized weight decay and the EMA timescale of AdamW."""

from __future__ import annotations

import math
from typing import Any

from optax_decay import _rates

__all__ = [
  "normalized_weight_decay",
  "timescale_from_weight_decay",
  "weight_decay_from_timescale",
]


def _number(value: Any, name: str, owner: str, *, positive: bool = True) -> float:
  """`value` as a float after checking it is a finite, non-negative (or positive) number."""
  _rates.check_number(value, name, owner, positive=positive)
  if not _rates.is_constant(value):
    raise TypeError(f"{owner}: {name} must be a concrete number, got a traced value.")
  return float(value)


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
  owner = "normalized_weight_decay"
  weight_decay_norm = _number(weight_decay_norm, "weight_decay_norm", owner, positive=False)
  batch_size = _number(batch_size, "batch_size", owner)
  num_examples = _number(num_examples, "num_examples", owner)
  num_epochs = _number(num_epochs, "num_epochs", owner)
  return weight_decay_norm * math.sqrt(batch_size / (num_examples * num_epochs))


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
  owner = "timescale_from_weight_decay"
  weight_decay = _number(weight_decay, "weight_decay", owner)
  learning_rate = _number(learning_rate, "learning_rate", owner)
  batch_size = _number(batch_size, "batch_size", owner)
  num_examples = _number(num_examples, "num_examples", owner)
  return batch_size / (learning_rate * weight_decay * num_examples)


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
  owner = "weight_decay_from_timescale"
  tau_epoch = _number(tau_epoch, "tau_epoch", owner)
  learning_rate = _number(learning_rate, "learning_rate", owner)
  batch_size = _number(batch_size, "batch_size", owner)
  num_examples = _number(num_examples, "num_examples", owner)
  return batch_size / (learning_rate * num_examples * tau_epoch)
