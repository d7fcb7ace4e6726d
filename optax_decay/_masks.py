"""Decay masks: which parameter leaves a decay applies to.

A mask is `None` (every leaf), a pytree of booleans shaped like the parameters or like a prefix
of them, or a callable that returns such a pytree when given the parameters. Masks are matched to
parameters by *path*, after unwrapping Flax NNX `Variable` boxes on both sides, so a mask built
from `nnx.state(model, nnx.Param)` works against the plain arrays that `nnx.Optimizer.update`
passes, and a plain-dict mask works against an `nnx.State`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from jax.core import Tracer

from optax_decay import _warnings

__all__ = [
  "check_mask",
  "is_mask_function",
  "leaf_mask",
  "param_leaves",
  "path_key",
  "unwrap_variables",
  "warn_if_ineffective",
]

Mask = Any | Callable[[Any], Any] | None

_INJECT_HINT = (
  "If this mask came from optax.inject_hyperparams, which calls every callable argument as a "
  "schedule of the step count, pass static_args=('mask',) to inject_hyperparams."
)
_FLATTEN_HINT = (
  "Under optax.flatten every parameter is one flat vector, so a mask cannot tell kernels from "
  "biases: put the masked decay outside optax.flatten."
)


def is_placeholder(x: Any) -> bool:
  """A leaf that stands for no parameter: `None` (an Equinox-filtered module, a `None` gradient)
  or `optax.MaskedNode` (a leaf of another group inside `optax.partition` or `optax.masked`).

  Flattened as leaves of their own, so that the updates, the parameters and every tree shaped
  like them keep one leaf per position; a decay passes them through untouched.
  """
  return x is None or isinstance(x, optax.MaskedNode)


def _is_variable(x: Any) -> bool:
  # Flax is optional: only look for its Variable type when the user has imported it.
  nnx = sys.modules.get("flax.nnx")
  return nnx is not None and isinstance(x, nnx.Variable)


def _variable_value(x: Any) -> Any:
  return x.get_value() if hasattr(x, "get_value") else x.value


def unwrap_variables(tree: Any) -> Any:
  """`tree` with every Flax NNX `Variable` replaced by the value it holds."""
  if sys.modules.get("flax.nnx") is None:
    return tree
  return jax.tree.map(
    lambda x: _variable_value(x) if _is_variable(x) else x, tree, is_leaf=_is_variable
  )


def _scalar_bool(x: Any) -> bool | None:
  """The Python bool that `x` holds, or None when `x` is not a concrete scalar boolean."""
  if isinstance(x, (bool, np.bool_)):
    return bool(x)
  if isinstance(x, (np.ndarray, jax.Array)) and not isinstance(x, Tracer):
    if x.dtype == np.bool_ and x.ndim == 0:
      return bool(x)
  return None


def check_mask(mask: Mask, owner: str) -> None:
  """Construction-time checks on a mask argument."""
  if isinstance(mask, Tracer):
    raise TypeError(f"{owner}: mask is a traced array; a mask must be static. {_INJECT_HINT}")
  whole = _scalar_bool(mask)
  if whole is False:
    raise ValueError(
      f"{owner}: mask=False decays no parameter. To switch the decay off set its rate to 0. "
      + _INJECT_HINT
    )
  if whole is True:
    # Accepting True would hide the case where inject_hyperparams called a path-based mask
    # function on the step count, got True, and so decays every leaf, biases included.
    raise ValueError(
      f"{owner}: mask=True is ambiguous; pass mask=None to decay every parameter. " + _INJECT_HINT
    )
  if isinstance(mask, (str, bytes, int, float, complex)):
    raise TypeError(
      f"{owner}: mask must be None, a pytree of bools shaped like the parameters (or a prefix "
      f"of them) or a function of the parameters; got the {type(mask).__name__} {mask!r}. "
      "To choose leaves by name, pass optax_decay.decay_mask(include=..., exclude=...)."
    )


def is_mask_function(mask: Any) -> bool:
  """True for a mask given as a function of the parameters.

  A callable that is itself a pytree with children (an Equinox module of bools, say) is a mask
  tree, not a function to call.
  """
  return callable(mask) and jax.tree_util.treedef_is_leaf(jax.tree.structure(mask))


def param_leaves(params: Any) -> list[Any]:
  """The leaves of `params` with Variables unwrapped, placeholders kept as leaves of their own."""
  return jax.tree.leaves(unwrap_variables(params), is_leaf=is_placeholder)


def path_key(path: tuple[Any, ...]) -> tuple[str, ...]:
  # Entries are compared by their printed form so that a dict, an nnx.State and a FrozenDict
  # with the same keys match one another.
  return tuple(str(entry) for entry in path)


def leaf_mask(mask: Mask, params: Any, owner: str) -> list[bool]:
  """One bool per leaf of `params` (in `param_leaves` order): does the decay apply there?

  Placeholder leaves of `params` (`None`, `optax.MaskedNode`) get False; they need no mask
  entry, and an entry at (or under) one is accepted and ignored, as `optax.masked` ignores it.
  So a mask over the whole parameters works inside `optax.partition`, where the transform sees
  the other groups' leaves as `MaskedNode`s, and an Equinox filter spec works against a filtered
  module.

  Raises:
    ValueError: naming the path of the first parameter leaf that no mask entry covers, or of
      the first mask entry that matches no parameter.
  """
  params = unwrap_variables(params)
  path_leaves = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_placeholder)[0]
  if mask is None or not path_leaves:
    # No leaves: also optax.tree_utils.tree_map_params' placeholder, on which `init` is called
    # only to see the shape of the state.
    return [not is_placeholder(leaf) for _, leaf in path_leaves]
  if is_mask_function(mask):
    mask = mask(params)
  hint = _variable_hint(mask)
  mask = unwrap_variables(mask)
  whole = _scalar_bool(mask)
  if whole is not None:
    return [whole and not is_placeholder(leaf) for _, leaf in path_leaves]

  entries: dict[tuple[str, ...], bool] = {}
  for path, value in jax.tree_util.tree_flatten_with_path(mask)[0]:
    flag = _scalar_bool(value)
    where = jax.tree_util.keystr(path) or "<root>"
    if flag is None:
      if isinstance(value, Tracer):
        raise TypeError(f"{owner}: the mask entry at {where} is traced; masks must be static.")
      shape = f" of shape {value.shape}" if hasattr(value, "shape") else ""
      raise TypeError(
        f"{owner}: the mask entry at {where} must be a bool, got {type(value).__name__}{shape}."
      )
    entries[path_key(path)] = flag

  used: set[tuple[str, ...]] = set()
  placeholders: list[tuple[str, ...]] = []
  flags = []
  for path, leaf in path_leaves:
    key = path_key(path)
    covering = next((key[:d] for d in range(len(key), -1, -1) if key[:d] in entries), None)
    if covering is not None:
      used.add(covering)
    if is_placeholder(leaf):
      placeholders.append(key)
      flags.append(False)
    elif covering is not None:
      flags.append(entries[covering])
    elif not path:  # the parameters are one bare array
      raise ValueError(
        f"{owner}: the parameters are a single array, which the mask's entries cannot name. "
        + _FLATTEN_HINT
      )
    else:
      raise ValueError(
        f"{owner}: the mask does not cover the parameter at {jax.tree_util.keystr(path)}; "
        "a mask must have the structure of the parameters or of a prefix of them."
        + _top_key_hint(entries, path_leaves)
      )
  unused = [k for k in entries if k not in used and not any(k[: len(p)] == p for p in placeholders)]
  if unused:
    raise ValueError(
      f"{owner}: the mask entry at {''.join(unused[0])} matches no parameter; "
      "a mask must have the structure of the parameters or of a prefix of them."
      + _top_key_hint(entries, path_leaves)
      + hint
    )
  return flags


def _top_key_hint(entries: dict[tuple[str, ...], bool], path_leaves: list[Any]) -> str:
  """Says so when one tree has Linen's extra `params` level and the other has not."""
  linen = "['params']"
  in_mask = all(k[:1] == (linen,) for k in entries)
  in_params = all(path_key(path)[:1] == (linen,) for path, _ in path_leaves)
  if in_mask and not in_params:
    return (
      " The mask has a top-level 'params' key that the parameters lack: pass "
      "mask['params'], or give the optimizer the whole Linen variables dict."
    )
  if in_params and not in_mask:
    return (
      " The parameters have a top-level 'params' key (Linen's variables dict) that the mask "
      "lacks: wrap the mask as {'params': mask}, or give the optimizer variables['params']."
    )
  return ""


def _variable_hint(mask: Any) -> str:
  """For a mask built from a whole `nnx.State`: the filter that leaves only parameters."""
  nnx = sys.modules.get("flax.nnx")
  if nnx is None or not isinstance(mask, nnx.State):
    return ""
  variables = jax.tree.leaves(mask, is_leaf=_is_variable)
  kinds = sorted({type(v).__name__ for v in variables if _is_variable(v)} - {"Param"})
  if not kinds:
    return ""
  return (
    f" The mask holds {', '.join(kinds)} entries besides Param: it was built from the whole "
    "model state. Build it from nnx.state(model, nnx.Param), the state nnx.Optimizer updates."
  )


def warn_if_ineffective(mask: Mask, flags: list[bool], inexact: list[bool], owner: str) -> None:
  """Warns when a user-given mask selects no decayable leaf, or every one of several."""
  if mask is None:
    return
  chosen = [f for f, x in zip(flags, inexact, strict=True) if x]
  if chosen and not any(chosen):
    _warnings.warn_at_caller(
      f"{owner}: the mask excludes every floating-point parameter, so nothing is decayed. "
      + _INJECT_HINT
      + (" " + _FLATTEN_HINT if len(flags) == 1 else "")
    )
  elif len(chosen) > 1 and all(chosen):
    _warnings.warn_at_caller(
      f"{owner}: the mask selects all {len(chosen)} floating-point parameters, so it excludes "
      "nothing (with stacked or scanned layers an `ndim`-based rule no longer tells biases "
      "from kernels)."
    )
