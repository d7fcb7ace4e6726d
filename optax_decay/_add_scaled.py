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
import numpy as np
import optax

from optax_decay import _masks, _rates, _warnings

__all__ = [
  "DecayScheduleState",
  "AlignedLeaves",
  "add_scaled_params",
  "align_leaves",
  "check_bool",
  "is_decayable",
  "map_masked_leaves",
  "masked_state",
  "require_params",
  "scaled_leaf",
  "schedule_init",
  "schedule_step",
  "unmasked_state",
  "warn_at_init",
]


class DecayScheduleState(NamedTuple):
  """State of a decay whose rate is a schedule: the step count the schedule is evaluated at."""

  count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # int32 scalar


def is_decayable(leaf: Any) -> bool:
  """A floating-point or complex array leaf (not a placeholder, an integer or a Python object)."""
  dtype = getattr(leaf, "dtype", None)
  if dtype is None and isinstance(leaf, (int, float, complex)):
    dtype = jnp.result_type(leaf)
  return dtype is not None and jnp.issubdtype(dtype, jnp.inexact)


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


def warn_at_init(mask: _masks.Mask, params: Any, owner: str, per_step: float | None = None) -> None:
  """Resolves a user mask against the parameters `init` sees: errors and warnings come early.

  `per_step` is the constant fraction of each weight the decay removes per step, if known: a
  warning says when it rounds away on the 16-bit leaves it decays.
  """
  if mask is None and not per_step:
    return
  flags = _masks.leaf_mask(mask, params, owner)
  leaves = _masks.param_leaves(params)
  _masks.warn_if_ineffective(mask, flags, [is_decayable(p) for p in leaves], owner)
  if per_step:
    decayed = [p for flag, p in zip(flags, leaves, strict=True) if flag and is_decayable(p)]
    _warn_if_below_resolution(per_step, decayed, owner)


def _warn_if_below_resolution(fraction: float, leaves: list[Any], owner: str) -> None:
  # Only 16-bit leaves: there a whole run of decay steps rounds away (measured in
  # examples/bf16_decay.py). In float32 and wider, a fraction below half an ulp still moves the
  # weights, because it is added to the optimizer's own step before the sum is rounded.
  for leaf in leaves:
    dtype = jnp.result_type(leaf)
    half_ulp = float(jnp.finfo(dtype).eps) / 2
    if jnp.finfo(dtype).bits <= 16 and fraction < half_ulp:
      _warnings.warn_at_caller(
        f"{owner}: the decay removes {fraction:.3g} of each weight per step, less than half "
        f"the spacing of {dtype} numbers near 1 ({half_ulp:.3g}); on its own w·(1 - fraction) "
        "rounds back to w, so the decay barely acts. Chain optax_decay.compensated_summation() "
        "last to carry the rounding error over, or keep float32 parameters."
      )
      return


def masked_state(mask: _masks.Mask, state: Any) -> Any:
  """`state` laid out as optax lays out a masked transform's: inside `optax.MaskedState`.

  So a masked decay has the state of `optax.add_decayed_weights(rate, mask)`, and a checkpoint
  of an optax optimizer restores into ours.
  """
  return state if mask is None else optax.MaskedState(inner_state=state)


def unmasked_state(mask: _masks.Mask, state: Any) -> Any:
  return state if mask is None else state.inner_state


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
  the parameters; the rebuilt updates keep whatever structure they came in. Placeholders
  (`None`, `optax.MaskedNode`) are leaves of their own in every tree.
  """
  rebuild = jax.tree.structure(updates, is_leaf=_masks.is_placeholder).unflatten
  update_leaves, plain = jax.tree.flatten(
    _masks.unwrap_variables(updates), is_leaf=_masks.is_placeholder
  )
  try:
    param_leaves = plain.flatten_up_to(_masks.unwrap_variables(params))
    other_leaves = [plain.flatten_up_to(_masks.unwrap_variables(other)) for other in others]
  except (ValueError, TypeError) as err:
    what = "the parameters" if not others else "the parameters or the state built by init"
    raise ValueError(f"{owner}: the updates and {what} differ in structure: {err}") from err
  return AlignedLeaves(update_leaves, param_leaves, other_leaves, rebuild, plain)


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
  Other leaves, placeholders included, come back unchanged.
  """
  leaves = align_leaves(updates, params, others, owner)
  flags = _masks.leaf_mask(mask, params, owner)
  if len(flags) != len(leaves.params):
    # The parameters hold placeholders where the updates hold arrays (or the other way round).
    raise ValueError(
      f"{owner}: the updates and the parameters differ in structure: "
      f"{jax.tree.structure(updates, is_leaf=_masks.is_placeholder)} and "
      f"{jax.tree.structure(params, is_leaf=_masks.is_placeholder)}."
    )
  new_leaves = []
  for i, (u, w, flag) in enumerate(zip(leaves.updates, leaves.params, flags, strict=True)):
    if flag and not _masks.is_placeholder(u) and is_decayable(w):
      new_leaves.append(fn(u, w, *(other[i] for other in leaves.others)))
    else:
      new_leaves.append(u)
  return leaves.rebuild(new_leaves)


def scaled_leaf(
  update: jax.Array, param: jax.Array, rate: Any, direction: jax.Array, cautious: bool = False
) -> jax.Array:
  """`update + rate·direction`, formed in the parameter's own (real) precision.

  The rate, a float32 schedule value or a Python number, is cast once to the parameter's real
  dtype: an f32 schedule value does not promote bf16 updates to f32, and complex parameters
  are scaled by a real rate. With `cautious`, coordinates where the update points against the
  term (`u·direction < 0`) get no term.
  """
  term = jnp.asarray(rate, jnp.finfo(param.dtype).dtype) * direction
  if cautious:
    # Decay only where the step already moves the weight toward zero (Chen et al. 2025).
    term = jnp.where(jnp.real(update * jnp.conj(direction)) >= 0, term, jnp.zeros_like(term))
  return update + term.astype(update.dtype)


def add_scaled_params(
  rate: optax.ScalarOrSchedule,
  mask: _masks.Mask,
  owner: str,
  rate_name: str,
  *,
  direction: Callable[[jax.Array], jax.Array] = lambda w: w,
  cautious: bool = False,
  per_step: float | None = None,
) -> optax.GradientTransformation:
  """`u ← u + rate_t · direction(w)` on the leaves that `mask` selects.

  `owner` names the public transform in error messages; `per_step`, when known, is the constant
  fraction of each weight removed per step, checked against the precision of 16-bit leaves at
  `init`. The state is `optax.add_decayed_weights`'s: empty or a step count, inside
  `optax.MaskedState` when there is a mask.
  """
  rate = _rates.check_rate(rate, rate_name, owner)
  _masks.check_mask(mask, owner)
  check_bool(cautious, "cautious", owner)
  is_zero = _rates.is_zero(rate)

  def init_fn(params):
    warn_at_init(mask, params, owner, per_step)
    return masked_state(mask, schedule_init(rate))

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    require_params(params, owner)
    rate_t, inner = schedule_step(rate, unmasked_state(mask, state))
    state = masked_state(mask, inner)
    if updates is None or is_zero:
      return updates, state
    updates = map_masked_leaves(
      lambda u, w: scaled_leaf(u, w, rate_t, direction(w), cautious), updates, params, mask, owner
    )
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def check_bool(value: Any, name: str, owner: str) -> None:
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{owner}: {name} must be True or False, got {value!r}.")
