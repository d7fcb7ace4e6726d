"""Proximal (decoupled) L1: soft-threshold the parameters after the step, giving exact zeros."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from optax_decay import _coupling, _decays, _errors, _masks, _rates, _tree


def _prox_leaf(update: jax.Array, param: jax.Array, tau: Any) -> jax.Array:
  # Everything in the parameter's precision: the would-be new weight is what apply_updates
  # would store, and the returned update, prox − w, is exact (Sterbenz) whenever the prox lies
  # within a factor 2 of w; where the prox is 0 it is −w, and w + (−w) is exactly 0.
  # A threshold of 0 (a schedule that reaches it, an injected l1 set to it) passes the update
  # through bit for bit rather than as (w + u) − w.
  tau = jnp.asarray(tau, jnp.finfo(param.dtype).dtype)
  target = (param + update).astype(param.dtype)
  shrunk = jnp.maximum(jnp.abs(target) - tau, 0)
  return jnp.where(tau > 0, (jnp.sign(target) * shrunk - param).astype(update.dtype), update)


@_errors.public
def proximal_l1(
  l1: optax.ScalarOrSchedule,
  mask: _masks.Mask = None,
  *,
  learning_rate: optax.ScalarOrSchedule | None = None,
  coupling: str = "lr",
  peak_learning_rate: float | jax.Array | None = None,
) -> optax.GradientTransformation:
  r"""Soft-thresholds the parameters after the step: proximal L1, with exact zeros.

  With :math:`\tilde w_t = w_{t-1} + u_t` the parameter the step would produce,

  .. math::

    w_t = \operatorname{sign}(\tilde w_t)\, \max\big(|\tilde w_t| - \tau_t,\, 0\big),
    \qquad \tau_t = c_t\, \lambda_t,

  the proximal map of :math:`\tau_t \lVert w \rVert_1`. Put it *last* in a chain, after the
  learning-rate scaling; it replaces the update by :math:`u_t' = w_t - w_{t-1}`. After
  ``optax.sgd(lr)`` this is ISTA / proximal SGD; after ``optax.adamw`` the L1 penalty, like
  AdamW's decay, bypasses the moment estimates. Unlike :func:`add_l1_to_grads`, weights that
  the step would carry across or near zero land *exactly* on zero and stay there until the
  gradient pushes them out by more than τ.

  The coupling picks :math:`c_t` as in :func:`scale_by_learning_rate_and_decay`: ``"lr"``:
  lr_t; ``"schedule"``: lr_t/peak; ``"corrected"``: lr_t²/peak; ``"none"``: 1. So with the
  default ``"lr"`` the threshold is lr_t·λ_t, the step size times the penalty, as in ISTA.

  Rounding: ``optax.apply_updates(w, u')`` returns :math:`w_t` exactly wherever it is 0 (then
  u' = −w) or lies within a factor 2 of :math:`w_{t-1}` (the subtraction is exact, Sterbenz's
  lemma), provided the updates have the parameters' dtype; elsewhere the subtraction and the
  addition round, and it may differ from :math:`w_t` by up to 1.5 units in the last place of
  :math:`\max(|w_{t-1}|, |w_t|)`, as any step added to :math:`w_{t-1}` may. At a step where
  τ_t = 0 the update passes through unchanged, bit for bit. Everything is computed in each
  parameter's dtype.

  Schedules (of ``l1`` and ``learning_rate``) see this transform's own count, which starts at 0
  and grows by one at each ``update``: in a chain, the count ``optax.scale_by_learning_rate``
  sees.

  Args:
    l1: the penalty strength λ ≥ 0: a float, a scalar array, or a schedule of the step count.
    mask: ``None`` (threshold every floating-point leaf), a pytree of bools with the structure
      of the parameters or of a prefix of them, or a callable returning one from the
      parameters. ``True`` marks leaves that are thresholded; the others, and integer and
      boolean leaves, keep their updates unchanged.
    learning_rate: lr, a float, scalar array or schedule: the same learning rate as the chain's.
      Required by ``"lr"``, ``"schedule"`` and ``"corrected"``; must be left out for ``"none"``.
    coupling: one of ``"lr"``, ``"schedule"``, ``"corrected"``, ``"none"``.
    peak_learning_rate: the ``peak`` above, used by ``"schedule"`` and ``"corrected"`` only.
      Defaults to ``learning_rate`` when that is a number; required when it is a schedule.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``. Its state is
    ``optax.EmptyState()`` for a constant τ and a :class:`DecayScheduleState` otherwise.

  Raises:
    ValueError: for an unknown coupling, a missing or superfluous ``learning_rate`` or
      ``peak_learning_rate``, or a negative, NaN or infinite rate.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> tx = optax.chain(optax.sgd(0.5), optax_decay.proximal_l1(0.25, learning_rate=0.5))
    >>> params = {"w": jnp.array([1.0, 0.0625, -0.5])}
    >>> updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["w"]  # shrunk by τ = 0.5 · 0.25 = 0.125
    Array([ 0.875,  0.   , -0.375], dtype=float32)

  References:
    Yang, Yuan, Scutari & Pérez, `ProxSGD: Training Structured Neural Networks under
    Regularization and Constraints <https://openreview.net/forum?id=HygpthEtvr>`_, ICLR 2020.
    Beck & Teboulle, `A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse
    Problems <https://doi.org/10.1137/080716542>`_, SIAM J. Imaging Sci. 2009.
    Duchi & Singer, `Efficient Online and Batch Learning Using Forward Backward Splitting
    <https://jmlr.org/papers/v10/duchi09a.html>`_, JMLR 2009.
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (the couplings).
  """
  _coupling.check_coupling(coupling)
  l1 = _rates.check_rate(l1, "l1")
  if coupling == "none":
    if learning_rate is not None:
      raise ValueError(
        _errors.named(
          "coupling='none' thresholds by l1 alone and takes no learning_rate; leave it out, "
          "or choose coupling='lr'."
        )
      )
  elif learning_rate is None:
    raise ValueError(
      _errors.named(
        f"coupling={coupling!r} needs learning_rate, the same value or schedule as the "
        "chain's learning rate."
      )
    )
  else:
    learning_rate = _rates.check_rate(learning_rate, "learning_rate")
  peak = _coupling.resolve_peak(learning_rate, peak_learning_rate, coupling)
  _masks.check(mask)
  tau = _coupling.per_step_rate(coupling, l1, learning_rate, peak)
  is_zero = _rates.is_zero(l1) or _rates.is_zero(tau)

  def init_fn(params):
    _decays.check_at_init(mask, params)
    return _rates.schedule_init(tau)

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _tree.require_params(params)
    (tau_t,), state = _rates.schedule_step([tau], state)
    if updates is None or is_zero:
      return updates, state
    updates = _decays.map_selected(
      lambda u, w: _prox_leaf(u, w, tau_t), updates, params, _masks.flags(mask, params)
    )
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)
