"""The one mechanism behind L2 and decoupled decay: add `rate · w` to the updates.

`add_l2_to_grads` and `decoupled_decay` compute the same thing, `u + rate·w`; what makes one
L2 regularization and the other decoupled weight decay is only *where in a chain* it is placed
(before or after the preconditioner). Both are built from `add_scaled_params` below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optax_decay import _masks, _rates

Direction = Callable[[jax.Array], jax.Array]

__all__ = ["DecayScheduleState", "add_scaled_params", "is_decayable"]


class DecayScheduleState(NamedTuple):
  """State of a decay whose rate is a schedule: the step count the schedule is evaluated at."""

  count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # int32 scalar


def is_decayable(leaf: Any) -> bool:
  return leaf is not None and jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def _add_scaled_leaf(
  update: jax.Array, param: jax.Array, rate: Any, direction: Direction, cautious: bool
) -> jax.Array:
  # The product is formed in the parameter's own (real) precision, so an f32 schedule value does
  # not promote bf16 updates to f32; complex parameters are scaled by a real rate.
  real_dtype = jnp.finfo(param.dtype).dtype
  term = jnp.asarray(rate, real_dtype) * direction(param)
  if cautious:
    # Decay only where the step already moves the weight toward zero (Chen et al. 2025).
    term = jnp.where(jnp.real(update * jnp.conj(param)) >= 0, term, jnp.zeros_like(term))
  return update + term.astype(update.dtype)


def add_scaled_params(
  rate: optax.ScalarOrSchedule,
  mask: _masks.Mask,
  owner: str,
  rate_name: str,
  *,
  direction: Direction = lambda w: w,
  cautious: bool = False,
) -> optax.GradientTransformation:
  """`u ← u + rate_t · direction(w)` on the leaves that `mask` selects.

  `owner` names the public transform in error messages. With `cautious`, a leaf's coordinates
  whose update `u` points against the weight (`u·w < 0`) get no decay term.
  """
  if not isinstance(cautious, bool):
    raise TypeError(f"{owner}: cautious must be True or False, got {cautious!r}.")
  _rates.check_rate(rate, rate_name, owner)
  _masks.check_mask(mask, owner)
  is_zero = isinstance(rate, (int, float)) and rate == 0

  def init_fn(params):
    if mask is not None:
      flags = _masks.leaf_mask(mask, params, owner)
      leaves = jax.tree.leaves(_masks.unwrap_variables(params))
      _masks.warn_if_ineffective(mask, flags, [is_decayable(p) for p in leaves], owner)
    if callable(rate):
      return DecayScheduleState(count=jnp.zeros([], jnp.int32))
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(
        f"{owner} needs the parameters: call update(updates, state, params) with params."
      )
    if callable(rate):
      rate_t = rate(state.count)
      state = DecayScheduleState(count=jnp.asarray(optax.safe_increment(state.count)))
    else:
      rate_t = rate
    if is_zero:
      return updates, state
    params = _masks.unwrap_variables(params)
    update_leaves, treedef = jax.tree.flatten(updates, is_leaf=lambda x: x is None)
    try:
      param_leaves = treedef.flatten_up_to(params)
    except (ValueError, TypeError) as err:
      raise ValueError(
        f"{owner}: the updates and the parameters differ in structure: {err}"
      ) from err
    flags = _masks.leaf_mask(mask, params, owner)
    new_leaves = [
      _add_scaled_leaf(u, p, rate_t, direction, cautious)
      if flag and u is not None and is_decayable(p)
      else u
      for u, p, flag in zip(update_leaves, param_leaves, flags, strict=True)
    ]
    return treedef.unflatten(new_leaves), state

  return optax.GradientTransformation(init_fn, update_fn)
