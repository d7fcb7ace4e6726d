"""Stable weight decay: a decoupled decay divided by the root of Adam's mean second moment."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optax_decay import _add_scaled, _alias, _masks, _rates

__all__ = ["StableDecoupledDecayState", "adams", "stable_decoupled_decay"]

_OWNER = "stable_decoupled_decay"


class StableDecoupledDecayState(NamedTuple):
  """State of :func:`stable_decoupled_decay`."""

  count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # int32: updates so far
  mean_sq: jax.Array  # float32: EMA of the mean squared gradient, before bias correction
  inner: Any  # the preconditioner's state


def _mean_square(grads: Any) -> jax.Array:
  """Mean of |g|² over every element of every floating-point leaf, summed in float32 or wider."""
  leaves = [
    g
    for g in jax.tree.leaves(_masks.unwrap_variables(grads), is_leaf=_masks.is_placeholder)
    if _add_scaled.is_decayable(g)
  ]
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
  return _stable_decay(preconditioner, weight_decay, b2, eps, mask, _OWNER)


def _stable_decay(
  preconditioner: optax.GradientTransformation,
  weight_decay: optax.ScalarOrSchedule,
  b2: float,
  eps: float,
  mask: _masks.Mask,
  owner: str,
) -> optax.GradientTransformation:
  """:func:`stable_decoupled_decay` with its errors and warnings prefixed by `owner`."""
  if not isinstance(preconditioner, optax.GradientTransformation):
    raise TypeError(
      f"{owner}: preconditioner must be an optax.GradientTransformation, got "
      f"{type(preconditioner).__name__}."
    )
  weight_decay = _rates.check_rate(weight_decay, "weight_decay", owner)
  _rates.check_number(b2, "b2", owner)
  if _rates.is_constant(b2) and not float(b2) < 1:
    raise ValueError(
      f"{owner}: b2 must lie in [0, 1), got {float(b2)}: with b2 = 1 the average never moves "
      "and its bias correction divides by zero."
    )
  _rates.check_number(eps, "eps", owner)
  _masks.check_mask(mask, owner)
  is_zero = _rates.is_zero(weight_decay)

  def init_fn(params):
    _add_scaled.warn_at_init(mask, params, owner)
    return StableDecoupledDecayState(
      count=jnp.zeros([], jnp.int32),
      mean_sq=jnp.zeros([], jnp.float32),
      inner=preconditioner.init(params),
    )

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _add_scaled.require_params(params, owner)
    if updates is None:  # as optax's own transforms answer a call without updates
      return None, state
    rate = _rates.rate_at(weight_decay, state.count)
    count = jnp.asarray(optax.safe_increment(state.count))
    # Written as optax's Adam writes its moment and bias correction (1 - b2 formed before any
    # float32 rounding), so that this scalar tracks the mean of optax's `nu` to float32 rounding.
    mean_sq = (b2 * state.mean_sq + (1 - b2) * _mean_square(updates)).astype(jnp.float32)
    corrected = mean_sq / jnp.asarray(1 - b2**count, jnp.float32)
    kappa = jnp.asarray(rate, jnp.float32) / (jnp.sqrt(corrected) + jnp.asarray(eps, jnp.float32))
    new_updates, inner = preconditioner.update(updates, state.inner, params)
    if not is_zero:
      new_updates = _add_scaled.map_masked_leaves(
        lambda u, w: _add_scaled.scaled_leaf(u, w, kappa, w), new_updates, params, mask, owner
      )
    return new_updates, StableDecoupledDecayState(count, mean_sq, inner)

  return optax.GradientTransformation(init_fn, update_fn)


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
) -> optax.GradientTransformation:
  r"""Adam with stable weight decay (AdamS).

  .. math::

    w_t = w_{t-1} - \mathrm{lr}_t \Big(\frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
          + \frac{\lambda}{\sqrt{\bar v_t} + \epsilon}\, w_{t-1}\Big),
    \qquad \bar v_t = \operatorname{mean}_i \hat v_{t,i}

  AdamW's step with the decay divided by the root of the mean bias-corrected second moment over
  all parameters (Xie et al., Alg. 2; their ε-free decay is ``eps=0``). It is
  ``optax.chain(stable_decoupled_decay(optax.scale_by_adam(...), weight_decay, b2=b2, eps=eps,
  mask=mask), optax.scale_by_learning_rate(learning_rate))``. The decay is coupled to the
  learning rate (lr_t·λ), as in the paper and in PyTorch's ``AdamW``.

  Args:
    learning_rate: lr, a float, scalar array or schedule.
    b1, b2, eps, eps_root, mu_dtype, nesterov: as in ``optax.scale_by_adam``.
    weight_decay: λ ≥ 0, a float, scalar array or schedule.
    mask: which parameters are decayed (``None``: all); see :func:`decoupled_decay`.

  Returns:
    An ``optax.GradientTransformation``.

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
  owner = "adams"
  adam = _alias.adam_preconditioner(
    owner, b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
  )
  return _alias.passing_none(
    optax.chain(
      _stable_decay(adam, weight_decay, b2, eps, mask, owner),
      _alias.learning_rate_step(learning_rate, owner),
    )
  )
