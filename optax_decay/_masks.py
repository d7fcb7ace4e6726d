"""Masks: how a mask argument is checked and resolved to one bool per parameter leaf.

Which leaves deserve decay is :func:`decay_mask`'s business (`_decay_mask.py`); this module
only applies a mask the user gives. A :data:`Mask` is `None` (every leaf), a pytree of bools
shaped like the parameters or like a prefix of them, or a function returning one from the
parameters. It is matched to the parameters by path, after Flax NNX `Variable` boxes are
unwrapped on both sides (`_tree.py`), so a mask built from `nnx.state(model, nnx.Param)` works
against the plain arrays that `nnx.Optimizer.update` passes, and a plain-dict mask against an
`nnx.State`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeAlias

import jax
import numpy as np
from jax.core import Tracer

from optax_decay import _errors, _tree

Mask: TypeAlias = Any | Callable[[Any], Any] | None

_INJECT_HINT = (
  "If this mask came from optax.inject_hyperparams, which calls every callable argument as a "
  "schedule of the step count, pass static_args=('mask',) to inject_hyperparams."
)
_FLATTEN_HINT = (
  "Under optax.flatten every parameter is one flat vector, so a mask cannot tell kernels from "
  "biases: put the masked decay outside optax.flatten."
)


def _scalar_bool(x: Any) -> bool | None:
  """The Python bool that `x` holds, or None when `x` is not a concrete scalar boolean."""
  if isinstance(x, (bool, np.bool_)):
    return bool(x)
  if isinstance(x, (np.ndarray, jax.Array)) and not isinstance(x, Tracer):
    if x.dtype == np.bool_ and x.ndim == 0:
      return bool(x)
  return None


def check(mask: Mask) -> None:
  """Construction-time checks on a mask argument."""
  if isinstance(mask, Tracer):
    raise TypeError(_errors.named(f"mask is a traced array; a mask must be static. {_INJECT_HINT}"))
  whole = _scalar_bool(mask)
  if whole is False:
    raise ValueError(
      _errors.named(
        "mask=False decays no parameter. To switch the decay off set its rate to 0. " + _INJECT_HINT
      )
    )
  if whole is True:
    # Accepting True would hide the case where inject_hyperparams called a path-based mask
    # function on the step count, got True, and so decays every leaf, biases included.
    raise ValueError(
      _errors.named(
        "mask=True is ambiguous; pass mask=None to decay every parameter. " + _INJECT_HINT
      )
    )
  if isinstance(mask, (str, bytes, int, float, complex)):
    raise TypeError(
      _errors.named(
        "mask must be None, a pytree of bools shaped like the parameters (or a prefix of "
        f"them) or a function of the parameters; got the {type(mask).__name__} {mask!r}. "
        "To choose leaves by name, pass optax_decay.decay_mask(include=..., exclude=...)."
      )
    )


def is_function(mask: Any) -> bool:
  """True for a mask given as a function of the parameters.

  A callable that is itself a pytree with children (an Equinox module of bools, say) is a mask
  tree, not a function to call.
  """
  return callable(mask) and jax.tree_util.treedef_is_leaf(jax.tree.structure(mask))


def flags(mask: Mask, params: Any, what: str = "mask") -> list[bool]:
  """One bool per leaf of `params` (in `_tree.leaves` order): does the decay apply there?

  Placeholder leaves of `params` (`None`, `optax.MaskedNode`) get False; they need no mask
  entry, and an entry at (or under) one is accepted and ignored, as `optax.masked` ignores it.
  So a mask over the whole parameters works inside `optax.partition`, where the transform sees
  the other groups' leaves as `MaskedNode`s, and an Equinox filter spec works against a
  filtered module.

  `what` names the tree in messages (the group labels are resolved as masks too).

  Raises:
    ValueError: naming the path of the first parameter leaf that no mask entry covers, or of
      the first mask entry that matches no parameter.
  """
  params = _tree.unwrap_variables(params)
  path_leaves = _tree.leaves_with_paths(params)
  if mask is None or not path_leaves:
    # No leaves: also optax.tree_utils.tree_map_params' placeholder, on which `init` is called
    # only to see the shape of the state.
    return [not _tree.is_placeholder(leaf) for _, leaf in path_leaves]
  if is_function(mask):
    mask = mask(params)
  hint = _variable_hint(mask)
  mask = _tree.unwrap_variables(mask)
  whole = _scalar_bool(mask)
  if whole is not None:
    return [whole and not _tree.is_placeholder(leaf) for _, leaf in path_leaves]

  entries: dict[tuple[str, ...], bool] = {}
  for path, value in jax.tree_util.tree_flatten_with_path(mask)[0]:
    flag = _scalar_bool(value)
    where = jax.tree_util.keystr(path) or "<root>"
    if flag is None:
      if isinstance(value, Tracer):
        raise TypeError(_errors.named(f"the {what} entry at {where} is traced; it must be static."))
      shape = f" of shape {value.shape}" if hasattr(value, "shape") else ""
      raise TypeError(
        _errors.named(
          f"the {what} entry at {where} must be a bool, got {type(value).__name__}{shape}."
        )
      )
    entries[_tree.path_key(path)] = flag

  used: set[tuple[str, ...]] = set()
  placeholders: list[tuple[str, ...]] = []
  result = []
  for path, leaf in path_leaves:
    key = _tree.path_key(path)
    covering = next((key[:d] for d in range(len(key), -1, -1) if key[:d] in entries), None)
    if covering is not None:
      used.add(covering)
    if _tree.is_placeholder(leaf):
      placeholders.append(key)
      result.append(False)
    elif covering is not None:
      result.append(entries[covering])
    elif not path:  # the parameters are one bare array
      raise ValueError(
        _errors.named(
          f"the parameters are a single array, which the {what}'s entries cannot name. "
          + _FLATTEN_HINT
        )
      )
    else:
      raise ValueError(
        _errors.named(
          f"the {what} does not cover the parameter at {jax.tree_util.keystr(path)}; it must "
          "have the structure of the parameters or of a prefix of them."
          + _top_key_hint(entries, path_leaves)
        )
      )
  unused = [k for k in entries if k not in used and not any(k[: len(p)] == p for p in placeholders)]
  if unused:
    raise ValueError(
      _errors.named(
        f"the {what} entry at {''.join(unused[0])} matches no parameter; it must have the "
        "structure of the parameters or of a prefix of them."
        + _top_key_hint(entries, path_leaves)
        + hint
      )
    )
  return result


def _top_key_hint(entries: dict[tuple[str, ...], bool], path_leaves: list[Any]) -> str:
  """Says so when one tree has Linen's extra `params` level and the other has not."""
  linen = "['params']"
  in_mask = all(k[:1] == (linen,) for k in entries)
  in_params = all(_tree.path_key(path)[:1] == (linen,) for path, _ in path_leaves)
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
  variables = jax.tree.leaves(mask, is_leaf=_tree.is_variable)
  kinds = sorted({type(v).__name__ for v in variables if _tree.is_variable(v)} - {"Param"})
  if not kinds:
    return ""
  return (
    f" The mask holds {', '.join(kinds)} entries besides Param: it was built from the whole "
    "model state. Build it from nnx.state(model, nnx.Param), the state nnx.Optimizer updates."
  )


def decayed_leaves(mask: Mask, params: Any) -> list[Any]:
  """The floating-point leaves of `params` that `mask` selects, after warning about the mask.

  Called at `init`, so that a mask that does not fit the parameters fails early, and that a
  mask which selects no decayable leaf, or every one of several, is reported.
  """
  selected = flags(mask, params)
  leaves = _tree.leaves(params)
  if mask is not None:
    chosen = [f for f, leaf in zip(selected, leaves, strict=True) if _tree.is_decayable(leaf)]
    if chosen and not any(chosen):
      _errors.warn(
        "the mask excludes every floating-point parameter, so nothing is decayed. "
        + _INJECT_HINT
        + (" " + _FLATTEN_HINT if len(selected) == 1 else "")
      )
    elif len(chosen) > 1 and all(chosen):
      _errors.warn(
        f"the mask selects all {len(chosen)} floating-point parameters, so it excludes "
        "nothing (with stacked or scanned layers an `ndim`-based rule no longer tells biases "
        "from kernels)."
      )
  return [leaf for f, leaf in zip(selected, leaves, strict=True) if f and _tree.is_decayable(leaf)]
