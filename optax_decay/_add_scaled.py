"""The one mechanism behind the decays: a leaf-wise change of the updates on masked leaves.

`add_l2_to_grads` and `decoupled_decay` compute the same thing, `u + rate·w`; what makes one
L2 regularization and the other decoupled weight decay is only *where in a chain* it is placed
(before or after the preconditioner). Both are `add_scaled_params` below; L1, decay toward an
anchor, proximal L1 and per-group decay are built from the same pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optax_decay import _masks, _rates

__all__ = [
  "DecayScheduleState",
  "AlignedLeaves",
  "add_scaled_params",
  "align_leaves",
  "is_decayable",
  "map_masked_leaves",
  "require_params",
  "scaled_leaf",
  "schedule_init",
  "schedule_step",
  "warn_at_init",
]


class DecayScheduleState(NamedTuple):
  """State of a decay whose rate is a schedule: the step count the schedule is evaluated at."""

  count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # int32 scalar


def is_decayable(leaf: Any) -> bool:
  return leaf is not None and jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def schedule_init(rate: optax.ScalarOrSchedule) -> DecayScheduleState | optax.EmptyState:
  """A step count when `rate` is a schedule; no state otherwise."""
  if callable(rate):
    return DecayScheduleState(count=jnp.zeros([], jnp.int32))
  return optax.EmptyState()


def schedule_step(rate: optax.ScalarOrSchedule, state: Any) -> tuple[Any, Any]:
  """The rate for this step and the state for the next one."""
  if callable(rate):
    return rate(state.count), DecayScheduleState(jnp.asarray(optax.safe_increment(state.count)))
  return rate, state


def require_params(params: Any, owner: str) -> None:
  """Raises when `update` was called without the parameters the transform needs."""
  if params is None:
    raise ValueError(f"{owner} needs the parameters: call update(updates, state, params).")


def warn_at_init(mask: _masks.Mask, params: Any, owner: str) -> None:
  """Resolves a user mask against the parameters `init` sees: errors and warnings come early."""
  if mask is None:
    return
  flags = _masks.leaf_mask(mask, params, owner)
  leaves = _masks.param_leaves(params)
  _masks.warn_if_ineffective(mask, flags, [is_decayable(p) for p in leaves], owner)


class AlignedLeaves(NamedTuple):
  """The leaves of updates, parameters and state trees, matched one to one."""

  updates: list[Any]
  params: list[Any]
  others: list[list[Any]]
  rebuild: Callable[[list[Any]], Any]  # new update leaves -> the updates' own structure
  plain: Any  # the treedef of the updates with Variables unwrapped (how state trees are laid out)


def align_leaves(updates: Any, params: Any, others: tuple[Any, ...], owner: str) -> AlignedLeaves:
  """Matches the leaves of `updates`, `params` and `others`, Flax NNX Variables unwrapped.

  Updates may be wrapped in Variables (gradients of an `nnx.State`) or not, independently of
  the parameters; the rebuilt updates keep whatever structure they came in.
  """
  rebuild = jax.tree.structure(updates, is_leaf=_is_none).unflatten
  update_leaves, plain = jax.tree.flatten(_masks.unwrap_variables(updates), is_leaf=_is_none)
  try:
    param_leaves = plain.flatten_up_to(_masks.unwrap_variables(params))
    other_leaves = [plain.flatten_up_to(_masks.unwrap_variables(other)) for other in others]
  except (ValueError, TypeError) as err:
    what = "the parameters" if not others else "the parameters or the state built by init"
    raise ValueError(f"{owner}: the updates and {what} differ in structure: {err}") from err
  return AlignedLeaves(update_leaves, param_leaves, other_leaves, rebuild, plain)


def _is_none(x: Any) -> bool:
  return x is None


def map_masked_leaves(
  fn: Callable[..., jax.Array],
  updates: Any,
  params: Any,
  mask: _masks.Mask,
  owner: str,
  *others: Any,
) -> Any:
  """`updates` with `fn(u, w, *o)` at every floating-point leaf that `mask` selects.

  `others` are trees shaped like the parameters whose leaves are handed to `fn` alongside.
  Other leaves, `None` updates included, come back unchanged.
  """
  leaves = align_leaves(updates, params, others, owner)
  flags = _masks.leaf_mask(mask, params, owner)
  new_leaves = []
  for i, (u, w, flag) in enumerate(zip(leaves.updates, leaves.params, flags, strict=True)):
    if flag and u is not None and is_decayable(w):
      new_leaves.append(fn(u, w, *(other[i] for other in leaves.others)))
    else:
      new_leaves.append(u)
  return leaves.rebuild(new_leaves)


def scaled_leaf(
  update: jax.Array, param: jax.Array, rate: Any, direction: jax.Array, cautious: bool = False
) -> jax.Array:
  """`update + rate·direction`, formed in the parameter's own (real) precision.

  So an f32 schedule value does not promote bf16 updates to f32, and complex parameters are
  scaled by a real rate. With `cautious`, coordinates where the update points against the
  weight (`u·w < 0`) get no term.
  """
  term = jnp.asarray(rate, jnp.finfo(param.dtype).dtype) * direction
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
  direction: Callable[[jax.Array], jax.Array] = lambda w: w,
  cautious: bool = False,
) -> optax.GradientTransformation:
  """`u ← u + rate_t · direction(w)` on the leaves that `mask` selects.

  `owner` names the public transform in error messages.
  """
  _rates.check_rate(rate, rate_name, owner)
  _masks.check_mask(mask, owner)
  if not isinstance(cautious, bool):
    raise TypeError(f"{owner}: cautious must be True or False, got {cautious!r}.")
  is_zero = _rates.is_zero(rate)

  def init_fn(params):
    warn_at_init(mask, params, owner)
    return schedule_init(rate)

  def update_fn(updates, state, params=None):
    require_params(params, owner)
    rate_t, state = schedule_step(rate, state)
    if is_zero:
      return updates, state
    updates = map_masked_leaves(
      lambda u, w: scaled_leaf(u, w, rate_t, direction(w), cautious), updates, params, mask, owner
    )
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)
