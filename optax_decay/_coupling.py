"""How the decoupled decay is scaled by the learning rate: the four couplings."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax

from optax_decay import _decays, _errors, _masks, _rates

# The decay per step, c_t·λ_t, of each coupling: the one table used by the decay, the per-step
# checks and proximal L1. Each is written as the rate a decay placed after the learning-rate
# scaling multiplies the weights by; "lr" is the exception in how it is *built* (see
# `decay_parts`), so as to stay optax.adamw bit for bit.
_PER_STEP = {
  "lr": lambda wd, lr, peak: wd * lr,
  "schedule": lambda wd, lr, peak: wd * lr / peak,
  "corrected": lambda wd, lr, peak: wd * lr * lr / peak,
  "none": lambda wd, lr, peak: wd,
}
COUPLINGS = tuple(_PER_STEP)
_NEEDS_PEAK = ("schedule", "corrected")


def check_coupling(coupling: Any) -> None:
  if coupling not in COUPLINGS:
    choices = ", ".join(repr(c) for c in COUPLINGS)
    raise ValueError(_errors.named(f"unknown coupling {coupling!r}; choose one of {choices}."))


def resolve_peak(learning_rate: Any, peak_learning_rate: Any, coupling: str) -> Any:
  """The peak that "schedule" and "corrected" divide by, checked; None for the other couplings.

  It defaults to the learning rate only when that is a plain number. A schedule needs an
  explicit peak, and so does an array: ``optax.inject_hyperparams`` turns a schedule into its
  value at each step, which would otherwise become the peak and cancel the schedule out of the
  decay (:func:`optax_decay.inject_hyperparams` fills in a constant learning rate as the peak
  before injecting it).
  """
  if coupling not in _NEEDS_PEAK:
    if peak_learning_rate is not None:
      raise ValueError(
        _errors.named(
          "peak_learning_rate is used only by coupling='schedule' or 'corrected', not by "
          f"coupling={coupling!r}."
        )
      )
    return None
  if peak_learning_rate is None:
    if not isinstance(learning_rate, (int, float, np.generic)):
      raise ValueError(
        _errors.named(
          f"coupling={coupling!r} needs peak_learning_rate, the value that the schedule "
          "multiplier lr_t/peak divides by, when learning_rate is a schedule or an array "
          "(optax.inject_hyperparams passes every learning rate as an array: there the current "
          "value would become the peak). Pass peak_learning_rate=<the schedule's maximum>, or "
          "inject with optax_decay.inject_hyperparams, which keeps a constant learning rate as "
          "the peak."
        )
      )
    return _rates.check_number(
      learning_rate, "peak_learning_rate (by default the learning_rate)", positive=True
    )
  peak = _rates.check_number(peak_learning_rate, "peak_learning_rate", positive=True)
  _check_peak_is_the_maximum(learning_rate, peak)
  return peak


def _check_peak_is_the_maximum(learning_rate: Any, peak: Any) -> None:
  """Raises when the learning rate is known, where it is cheap to know, to exceed the peak.

  A peak below the maximum makes lr_t/peak exceed 1 and multiplies the decay silently. A
  schedule is evaluated once, at construction, on `_rates.SAMPLE_STEPS`; one that
  `_rates.sample` cannot evaluate there is not checked.
  """
  if not _rates.is_constant(peak):
    return
  values = _rates.sample(learning_rate)
  if values is None:
    return
  at = int(np.argmax(values))
  step = int(_rates.SAMPLE_STEPS[at]) if callable(learning_rate) else None
  highest = float(values[at])
  # float32 schedules round a peak of 1e-3 up by up to 2^-24 relative.
  if highest > float(peak) * (1 + 1e-6):
    where = "the learning rate" if step is None else f"the schedule at step {step}"
    raise ValueError(
      _errors.named(
        f"{where} is {highest:.6g}, above peak_learning_rate={float(peak):.6g}, so lr_t/peak "
        "exceeds 1 and multiplies the decay. Pass the schedule's maximum as peak_learning_rate."
      )
    )


def per_step_rate(coupling: str, weight_decay: Any, learning_rate: Any, peak: Any) -> Any:
  """c_t·λ_t, the fraction of each weight removed at step t: a number or a schedule.

  Constants are combined in Python floats at construction, schedules in float32 at each step;
  either way the product is formed before it meets a parameter, and cast once to its dtype.
  """
  if coupling == "none":
    return weight_decay
  per_step = _PER_STEP[coupling]
  return _rates.combine_rates(per_step, weight_decay, learning_rate, peak)


def _constant_per_step(coupling: str, learning_rate: Any, weight_decay: Any, peak: Any):
  """The constant fraction of each weight removed per step, or None when not a constant."""
  known = [x for x in (learning_rate, weight_decay, peak) if x is not None]
  if not all(_rates.is_constant(x) for x in known):
    return None
  lr = float(learning_rate) if learning_rate is not None else None
  pk = float(peak) if peak is not None else None
  return float(_PER_STEP[coupling](float(weight_decay), lr, pk))


def check_per_step_fraction(fraction: float | None, coupling: str | None = None) -> None:
  """Raises when a known per-step decay fraction would flip the weights' sign."""
  if fraction is not None and fraction >= 1:
    where = "" if coupling is None else f"with coupling={coupling!r}, "
    raise ValueError(
      _errors.named(
        f"{where}the decay would remove {fraction:.3g} of each weight per step; a fraction "
        "≥ 1 flips the weights' sign. Lower the decay or the learning rate."
      )
    )


def check_scheduled_fraction(fn: Any, *rates: Any, coupling: str | None = None) -> None:
  """`check_per_step_fraction` at each of `_rates.CHECKED_STEPS`, for rates with schedules.

  `fn(*values)` is the fraction removed per step, given the rates' values at a step. Not
  checked where any rate cannot be sampled at construction (see `_rates.sample`).
  """
  checked = len(_rates.CHECKED_STEPS)
  values = []
  for rate in rates:
    sampled = _rates.sample(rate)
    if sampled is None:
      return
    values.append(sampled[:checked])
  fractions = np.broadcast_to(fn(*values), (checked,))
  if (fractions >= 1).any():
    at = int(np.argmax(fractions >= 1))  # the first such step
    fraction = float(fractions[at])
    where = "" if coupling is None else f"with coupling={coupling!r}, "
    raise ValueError(
      _errors.named(
        f"{where}the decay would remove {fraction:.4g} of each weight at step "
        f"{int(_rates.CHECKED_STEPS[at])}; a fraction ≥ 1 flips the weights' sign. Lower the "
        "decay or the learning rate there."
      )
    )


@_errors.public
def scale_by_learning_rate_and_decay(
  learning_rate: optax.ScalarOrSchedule,
  weight_decay: optax.ScalarOrSchedule,
  mask: _masks.Mask = None,
  *,
  coupling: str = "lr",
  peak_learning_rate: float | jax.Array | None = None,
  cautious: bool = False,
) -> optax.GradientTransformation:
  r"""Scales by the learning rate and applies decoupled decay, with a chosen coupling.

  Put it last in a chain, in place of ``optax.scale_by_learning_rate``, after the
  preconditioner that produces the update direction :math:`u_t`. The step is

  .. math::

    w_t = w_{t-1} - \mathrm{lr}_t\, u_t - c_t\, \lambda_t\, w_{t-1}

  where the coupling picks :math:`c_t`:

  ===============  ===========================  ==========================================
  ``coupling``     :math:`c_t`                  used by
  ===============  ===========================  ==========================================
  ``"lr"``         lr_t                         PyTorch ``AdamW``, ``optax.adamw``, Keras
  ``"schedule"``   lr_t / peak                  the paper's η_t (Alg. 1 and 2); composer
  ``"corrected"``  lr_t² / peak                 AdamC (Defazio 2025)
  ``"none"``       1                            TF-Addons' decoupled extension
  ===============  ===========================  ==========================================

  With a constant learning rate, ``"schedule"`` removes exactly λ·w per step whatever the
  learning rate is, which is what makes the paper's (lr, λ) landscape separable; ``"lr"`` removes
  lr·λ·w, so a tuned λ has to change with the learning rate.

  Built from optax primitives and the mechanism of :func:`decoupled_decay`: for ``"lr"`` it is
  ``chain(decoupled_decay(λ), optax.scale_by_learning_rate(lr))``, optax's own order, so that
  :func:`adamw` is ``optax.adamw`` bit for bit. For the other couplings it is
  ``optax.scale_by_learning_rate(lr)`` followed by a decay that subtracts
  :math:`c_t\lambda_t w_{t-1}`, the rate :math:`c_t\lambda_t` formed in float32 (or in Python
  floats when constant) and cast once to each parameter's dtype: with float16 parameters,
  λ/peak alone may exceed float16's range where :math:`c_t\lambda_t \le 1` does not.

  Args:
    learning_rate: lr ≥ 0, a float, scalar array or schedule of the step count.
    weight_decay: λ ≥ 0, a float, scalar array or schedule of the step count. Both schedules
      see the same count: 0 at the first ``update``, one more at each.
    mask: which parameters are decayed; see :func:`decoupled_decay`.
    coupling: one of ``"lr"``, ``"schedule"``, ``"corrected"``, ``"none"``.
    peak_learning_rate: the ``peak`` above, used by ``"schedule"`` and ``"corrected"`` only:
      the learning rate's maximum (a smaller one raises, where a schedule's maximum can be
      found by sampling it). Defaults to ``learning_rate`` when that is a number; required when
      it is a schedule or an array, as under ``optax.inject_hyperparams``.
    cautious: decay only where the update and the weight agree in sign; see
      :func:`decoupled_decay`.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``.

  Raises:
    ValueError: for an unknown coupling, a missing or non-positive peak, a negative, NaN or
      infinite rate, or a constant per-step decay c·λ ≥ 1 (which would flip the weights' sign).

  Warns:
    UserWarning: at ``init``, when a constant per-step decay c·λ is below half the precision
      of a decayed 16-bit (bfloat16 or float16) parameter, so that it rounds away.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> lr = optax.cosine_decay_schedule(1e-3, decay_steps=100)
    >>> tx = optax.chain(
    ...     optax.scale_by_adam(),
    ...     optax_decay.scale_by_learning_rate_and_decay(
    ...         lr, 0.05, coupling="schedule", peak_learning_rate=1e-3),
    ... )
    >>> params = {"w": jnp.ones(3)}
    >>> updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    >>> updates["w"]  # the step removes (lr_0 / peak)·λ = 0.05 of each weight
    Array([-0.05, -0.05, -0.05], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
    Defazio, `Why Gradients Rapidly Increase Near the End of Training
    <https://arxiv.org/abs/2506.02285>`_, 2025.
  """
  return optax.chain(
    *decay_parts(
      learning_rate,
      weight_decay,
      mask,
      coupling=coupling,
      peak_learning_rate=peak_learning_rate,
      cautious=cautious,
    )
  )


def decay_parts(
  learning_rate: optax.ScalarOrSchedule,
  weight_decay: optax.ScalarOrSchedule,
  mask: _masks.Mask,
  *,
  coupling: str,
  peak_learning_rate: float | jax.Array | None,
  cautious: bool,
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """The two links of :func:`scale_by_learning_rate_and_decay`.

  Returned as links rather than a chain so that an optimizer built on them has optax's flat
  state: `optax_decay.adamw` is `chain(scale_by_adam, *decay_parts(...))`, laid out as
  `optax.adamw`, so that checkpoints restore across the two.
  """
  check_coupling(coupling)
  learning_rate = _rates.check_rate(learning_rate, "learning_rate")
  weight_decay = _rates.check_rate(weight_decay, "weight_decay")
  peak = resolve_peak(learning_rate, peak_learning_rate, coupling)
  fraction = _constant_per_step(coupling, learning_rate, weight_decay, peak)
  check_per_step_fraction(fraction, coupling)
  if fraction is None and (peak is None or _rates.is_constant(peak)):
    per_step = _PER_STEP[coupling]
    check_scheduled_fraction(
      lambda wd, lr: per_step(wd, lr, None if peak is None else float(peak)),
      weight_decay,
      learning_rate,
      coupling=coupling,
    )

  if coupling == "lr":
    # optax.adamw's order, bit for bit: the decay joins the update before the lr scales both.
    decay = _decays.add_scaled_params(
      weight_decay, mask, "weight_decay", cautious=cautious, per_step=fraction
    )
    return decay, optax.scale_by_learning_rate(learning_rate)
  # The other couplings subtract c_t·λ_t·w after the lr scaling, with the rate formed in full
  # (float32) precision first: c_t·λ_t is at most 1, where λ_t/peak alone can exceed float16.
  decay = _decays.add_scaled_params(
    per_step_rate(coupling, weight_decay, learning_rate, peak),
    mask,
    "weight_decay",
    direction=lambda w: -w,
    cautious=cautious,
    per_step=fraction,
  )
  return optax.scale_by_learning_rate(learning_rate), decay
