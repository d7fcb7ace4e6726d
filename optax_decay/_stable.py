"""Stable weight decay: a decoupled decay divided by the root of Adam's mean second moment."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optax_decay import _decays, _errors, _masks, _rates, _tree


class StableDecoupledDecayState(NamedTuple):
  """State of :func:`stable_decoupled_decay`."""

  count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # int32: updates so far
  mean_sq: jax.Array  # float32: EMA of the mean squared gradient, before bias correction
  inner_state: Any  # the preconditioner's state


def _mean_square(grads: Any) -> jax.Array:
  """Mean of |g|² over every element of every floating-point leaf, summed in float32 or wider."""
  leaves = [g for g in _tree.leaves(grads) if _tree.is_decayable(g)]
  size = sum(int(g.size) for g in leaves)
  if size == 0:
    return jnp.zeros([], jnp.float32)
  # Without the barrier XLA merges g·g here with the g² of Adam's second moment into one
  # product, written to memory because the reduction cannot take it in: two extra passes over
  # the gradients, measured 1.8-2.0x AdamW's step time at 2M-10M parameters; with it, 1.1-1.25x
  # (benchmarks/adams_cost.py).
  leaves = jax.lax.optimization_barrier(leaves)
  total = sum(
    jnp.sum(
      jnp.real(g * jnp.conj(g)), dtype=jnp.promote_types(jnp.finfo(g.dtype).dtype, jnp.float32)
    )
    for g in leaves
  )
  return (jnp.asarray(total) / size).astype(jnp.float32)


@_errors.public
def stable_decoupled_decay(
  preconditioner: optax.GradientTransformation,
  weight_decay: optax.ScalarOrSchedule,
  *,
  b2: float = 0.999,
  eps: float = 1e-8,
  mask: _masks.Mask = None,
) -> optax.GradientTransformation:
  r"""Runs ``preconditioner``, then adds a decoupled decay normalized by the mean second moment.

  .. math::

    \bar v_t &= \operatorname{mean}_i \hat v_{t,i}
      = \frac{1}{1-\beta_2^t}\,\operatorname{mean}_i \sum_{s \le t}
        (1-\beta_2)\beta_2^{t-s} g_{s,i}^2 \\
    u_t &\leftarrow P(g_t) + \frac{\lambda_t}{\sqrt{\bar v_t} + \epsilon}\, w_{t-1}

  where :math:`P` is ``preconditioner`` and the mean runs over *every* element of every
  floating-point gradient leaf (masked-out leaves count in the mean, as in the authors' code; they
  are only not decayed). This is the stable weight decay (SWD) of Xie et al.: AdamW's decay
  ``λ w`` is divided by the root of the mean of Adam's bias-corrected second moment
  :math:`\hat v_t`, so that the decay's effective strength does not move with the scale of the
  gradients the way Adam's step size does. Followed by ``optax.scale_by_learning_rate(lr)`` and
  with ``preconditioner=optax.scale_by_adam(b1, b2, eps)`` it is AdamS (see :func:`adams`).

  The mean of :math:`\hat v_t` is a linear function of the squared gradients, so it is kept as
  its own scalar moving average (``b2`` must be the preconditioner's β₂): no per-parameter
  memory beyond the preconditioner's, and any preconditioner can be wrapped. With ``eps=0`` the
  decay is the paper's formula exactly; the default ``eps`` only keeps it finite while every
  gradient seen so far is zero. Tiny gradients make the decay large: the per-step fraction is
  :math:`\mathrm{lr}\,\lambda/\sqrt{\bar v_t}`, so with gradients of RMS ``1e-6``, ``lr=1e-3``
  and ``λ=1e-4`` each step removes 10% of the weights.

  The mean is a sum over all parameters. Under ``jax.jit`` with sharded arrays XLA adds the
  shards up across devices (tested on 8 devices). Inside ``shard_map`` the transform sees only
  the local shard, so the mean would be the shard's own: call ``update`` outside ``shard_map``.

  Args:
    preconditioner: the transform whose output is decayed, usually ``optax.scale_by_adam``.
    weight_decay: λ ≥ 0, a float, scalar array or schedule of this transform's step count
      (0 at the first update).
    b2: β₂ ∈ [0, 1) of the second-moment average; pass the preconditioner's own.
    eps: ε ≥ 0 added to :math:`\sqrt{\bar v_t}`.
    mask: which parameters are decayed (``None``: all); see :func:`decoupled_decay`.

  Returns:
    An ``optax.GradientTransformation`` with a :class:`StableDecoupledDecayState`; its
    ``update`` requires ``params``.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> tx = optax.chain(
    ...     optax_decay.stable_decoupled_decay(optax.scale_by_adam(), 1e-4),
    ...     optax.scale_by_learning_rate(1e-3),
    ... )
    >>> params, grads = {"w": jnp.ones(2)}, {"w": jnp.array([0.3, -0.4])}
    >>> updates, state = tx.update(grads, tx.init(params), params)
    >>> # v̄ = mean(g²) = 0.125 after one step: the decay is lr·λ·w/sqrt(0.125)
    >>> decay = -1e-3 * 1e-4 / (0.125**0.5 + 1e-8)
    >>> plain, _ = optax.adam(1e-3).update(grads, optax.adam(1e-3).init(params))
    >>> bool(jnp.allclose(updates["w"] - plain["w"], decay, rtol=1e-5))
    True

  References:
    Xie, Xu, Zhang, Sato & Sugiyama, `On the Overlooked Pitfalls of Weight Decay and How to
    Mitigate Them: A Gradient-Norm Perspective <https://arxiv.org/abs/2011.11152>`_,
    NeurIPS 2023.
  """
  if not isinstance(preconditioner, optax.GradientTransformation):
    raise TypeError(
      _errors.named(
        "preconditioner must be an optax.GradientTransformation, got "
        f"{type(preconditioner).__name__}."
      )
    )
  weight_decay = _rates.check_rate(weight_decay, "weight_decay")
  _rates.check_fraction(
    b2, "b2", "with b2 = 1 the average never moves and its bias correction divides by zero."
  )
  _rates.check_number(eps, "eps")
  _masks.check(mask)
  is_zero = _rates.is_zero(weight_decay)

  def init_fn(params):
    _decays.check_at_init(mask, params)
    return StableDecoupledDecayState(
      count=_rates.count_init(),
      mean_sq=jnp.zeros([], jnp.float32),
      inner_state=preconditioner.init(params),
    )

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _tree.require_params(params)
    if updates is None:  # as optax's own transforms answer a call without updates
      return None, state
    rate = _rates.rate_at(weight_decay, state.count)
    count = _rates.count_next(state.count)
    # Written as optax's Adam writes its moment and bias correction (1 - b2 formed before any
    # float32 rounding), so that this scalar tracks the mean of optax's `nu` to float32 rounding.
    mean_sq = (b2 * state.mean_sq + (1 - b2) * _mean_square(updates)).astype(jnp.float32)
    corrected = mean_sq / jnp.asarray(1 - b2**count, jnp.float32)
    kappa = jnp.asarray(rate, jnp.float32) / (jnp.sqrt(corrected) + jnp.asarray(eps, jnp.float32))
    new_updates, inner_state = preconditioner.update(updates, state.inner_state, params)
    if not is_zero:
      new_updates = _decays.map_selected(
        lambda u, w: _decays.scaled_leaf(u, w, kappa, w),
        new_updates,
        params,
        _masks.flags(mask, params),
      )
    return new_updates, StableDecoupledDecayState(count, mean_sq, inner_state)

  return optax.GradientTransformation(init_fn, update_fn)
