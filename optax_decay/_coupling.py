"""How the decoupled decay is scaled by the learning rate: the four couplings."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optax_decay import _add_scaled, _masks, _rates

__all__ = [
  "COUPLINGS",
  "check_coupling",
  "check_per_step_fraction",
  "decay_chain",
  "resolve_peak",
  "scale_by_learning_rate_and_decay",
]

COUPLINGS = ("lr", "schedule", "corrected", "none")
_NEEDS_PEAK = ("schedule", "corrected")
_OWNER = "scale_by_learning_rate_and_decay"


def check_coupling(coupling: Any, owner: str) -> None:
  if coupling not in COUPLINGS:
    choices = ", ".join(repr(c) for c in COUPLINGS)
    raise ValueError(f"{owner}: unknown coupling {coupling!r}; choose one of {choices}.")


def resolve_peak(learning_rate: Any, peak_learning_rate: Any, coupling: str, owner: str) -> Any:
  if coupling not in _NEEDS_PEAK:
    if peak_learning_rate is not None:
      raise ValueError(
        f"{owner}: peak_learning_rate is used only by coupling='schedule' or 'corrected', "
        f"not by coupling={coupling!r}."
      )
    return None
  if peak_learning_rate is None:
    if callable(learning_rate):
      raise ValueError(
        f"{owner}: coupling={coupling!r} with a learning-rate schedule needs "
        "peak_learning_rate, the value that the schedule multiplier divides by."
      )
    peak_learning_rate = learning_rate
    name = "peak_learning_rate (by default the learning_rate)"
  else:
    name = "peak_learning_rate"
  _rates.check_number(peak_learning_rate, name, owner, positive=True)
  return peak_learning_rate


def _per_step_fraction(coupling: str, lr: Any, wd: Any, peak: Any) -> float | None:
  """The constant fraction of each weight removed per step, or None when not a constant."""
  known = [x for x in (lr, wd, peak) if x is not None]
  if not all(_rates.is_constant(x) for x in known):
    return None
  lr, wd = float(lr), float(wd)
  if coupling == "lr":
    return lr * wd
  if coupling == "schedule":
    return lr * wd / float(peak)
  if coupling == "corrected":
    return lr * lr * wd / float(peak)
  return wd


def check_per_step_fraction(fraction: float | None, owner: str) -> None:
  """Raises when a known per-step decay fraction would flip the weights' sign."""
  if fraction is not None and fraction >= 1:
    raise ValueError(
      f"{owner}: the decay would remove {fraction:.3g} of each weight per step; a fraction "
      "≥ 1 flips the weights' sign. Lower the decay or the learning rate."
    )


def _warn_if_below_resolution(fraction: float, flags, leaves, owner: str) -> None:
  for flag, leaf in zip(flags, leaves, strict=True):
    if not flag or not _add_scaled.is_decayable(leaf):
      continue
    eps = float(jnp.finfo(jnp.result_type(leaf)).eps)
    if 0 < fraction < eps / 2:
      warnings.warn(
        f"{owner}: the decay removes {fraction:.3g} of each weight per step, less than half "
        f"the spacing of {jnp.result_type(leaf)} numbers near 1 ({eps / 2:.3g}); on its own "
        "w·(1 - fraction) rounds back to w, so the decay barely acts. Chain "
        "optax_decay.compensated_summation() last to carry the rounding error over, or use "
        "higher-precision parameters.",
        stacklevel=3,
      )
      return


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

  Built from :func:`decoupled_decay` and optax primitives: for ``"lr"``, ``"schedule"`` and
  ``"corrected"`` it is ``chain(decoupled_decay(κ), optax.scale_by_learning_rate(lr))`` with
  κ_t = λ_t, λ_t/peak and λ_t·lr_t/peak; for ``"none"`` it is
  ``chain(optax.scale_by_learning_rate(lr, flip_sign=False), decoupled_decay(λ),
  optax.scale(-1.0))``, exact even at steps where lr_t = 0.

  Args:
    learning_rate: lr ≥ 0, a float, scalar array or schedule of the step count.
    weight_decay: λ ≥ 0, a float, scalar array or schedule of the step count. Both schedules
      see the same count: 0 at the first ``update``, one more at each.
    mask: which parameters are decayed; see :func:`decoupled_decay`.
    coupling: one of ``"lr"``, ``"schedule"``, ``"corrected"``, ``"none"``.
    peak_learning_rate: the ``peak`` above, used by ``"schedule"`` and ``"corrected"`` only.
      Defaults to ``learning_rate`` when that is a number; required when it is a schedule.
    cautious: decay only where the update and the weight agree in sign; see
      :func:`decoupled_decay`.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``.

  Raises:
    ValueError: for an unknown coupling, a missing or non-positive peak, a negative, NaN or
      infinite rate, or a constant per-step decay c·λ ≥ 1 (which would flip the weights' sign).

  Warns:
    UserWarning: at ``init``, when a constant per-step decay c·λ is below half the precision
      of a decayed parameter's dtype, so that it rounds away.

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
  return decay_chain(
    learning_rate,
    weight_decay,
    mask,
    coupling=coupling,
    peak_learning_rate=peak_learning_rate,
    cautious=cautious,
    owner=_OWNER,
  )


def decay_chain(
  learning_rate: optax.ScalarOrSchedule,
  weight_decay: optax.ScalarOrSchedule,
  mask: _masks.Mask,
  *,
  coupling: str,
  peak_learning_rate: float | jax.Array | None,
  cautious: bool,
  owner: str,
) -> optax.GradientTransformation:
  """:func:`scale_by_learning_rate_and_decay`, its errors and warnings prefixed by `owner`."""
  check_coupling(coupling, owner)
  _rates.check_rate(learning_rate, "learning_rate", owner)
  _rates.check_rate(weight_decay, "weight_decay", owner)
  peak = resolve_peak(learning_rate, peak_learning_rate, coupling, owner)
  fraction = _per_step_fraction(coupling, learning_rate, weight_decay, peak)
  check_per_step_fraction(fraction, f"{owner} with coupling={coupling!r}")

  def decay(rate):
    return _add_scaled.add_scaled_params(rate, mask, owner, "weight_decay", cautious=cautious)

  if coupling == "none":
    inner = optax.chain(
      optax.scale_by_learning_rate(learning_rate, flip_sign=False),
      decay(weight_decay),
      optax.scale(-1.0),
    )
  else:
    if coupling == "lr":
      rate = weight_decay
    elif coupling == "schedule":
      rate = _rates.combine_rates(lambda wd, pk: wd / pk, weight_decay, peak)
    else:
      rate = _rates.combine_rates(
        lambda wd, lr, pk: wd * lr / pk, weight_decay, learning_rate, peak
      )
    inner = optax.chain(
      decay(rate),
      optax.scale_by_learning_rate(learning_rate),
    )

  if fraction is None or fraction == 0:
    return inner

  def init_fn(params):
    flags = _masks.leaf_mask(mask, params, owner)
    leaves = _masks.param_leaves(params)
    _warn_if_below_resolution(fraction, flags, leaves, owner)
    return inner.init(params)

  return optax.GradientTransformation(init_fn, inner.update)
