"""Tree plumbing: matching the leaves of updates, parameters and state, whatever boxes them.

Three things make the trees a transform receives differ from plain dicts of arrays:

- Flax NNX `Variable` boxes, on the parameters at `init` (`nnx.Optimizer` passes an
  `nnx.State` of `nnx.Param`) and on neither or both at `update`: they are unwrapped.
- Placeholders, leaves that stand for no parameter: `None` (an Equinox-filtered module, a `None`
  gradient) and `optax.MaskedNode` (another group's leaf inside `optax.partition` or
  `optax.masked`). They are kept as leaves of their own, so that every tree keeps one leaf per
  position, and passed through untouched.
- Non-array leaves (Python objects of an unfiltered module, integer step counters): present,
  never decayed.

Leaves of user trees shaped like the parameters (masks, labels, anchors) are matched to the
parameters by *path*, compared by their printed form, so a dict, an `nnx.State` and a
`FrozenDict` with the same keys match one another.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optax_decay import _errors


def is_placeholder(x: Any) -> bool:
  """`None` or `optax.MaskedNode`: a leaf that stands for no parameter."""
  return x is None or isinstance(x, optax.MaskedNode)


def is_decayable(leaf: Any) -> bool:
  """A floating-point or complex leaf (not a placeholder, an integer or a Python object)."""
  dtype = getattr(leaf, "dtype", None)
  if dtype is None and isinstance(leaf, (int, float, complex)) and not isinstance(leaf, bool):
    dtype = jnp.result_type(leaf)
  return dtype is not None and jnp.issubdtype(dtype, jnp.inexact)


def is_variable(x: Any) -> bool:
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
    lambda x: _variable_value(x) if is_variable(x) else x, tree, is_leaf=is_variable
  )


def leaves(tree: Any) -> list[Any]:
  """The leaves of `tree`, Variables unwrapped, placeholders kept as leaves of their own."""
  return jax.tree.leaves(unwrap_variables(tree), is_leaf=is_placeholder)


def leaves_with_paths(tree: Any) -> list[tuple[Any, Any]]:
  """`(path, leaf)` pairs of `tree`, Variables unwrapped, placeholders kept as leaves."""
  return jax.tree_util.tree_flatten_with_path(unwrap_variables(tree), is_leaf=is_placeholder)[0]


def path_key(path: tuple[Any, ...]) -> tuple[str, ...]:
  """A path as comparable strings: a dict, an `nnx.State` and a `FrozenDict` key alike."""
  return tuple(str(entry) for entry in path)


class AlignedLeaves(NamedTuple):
  """The leaves of updates, parameters and state trees, matched one to one."""

  updates: list[Any]
  params: list[Any]
  others: list[list[Any]]
  rebuild: Callable[[list[Any]], Any]  # new update leaves -> the updates' own structure
  plain: Any  # the treedef of the updates with Variables unwrapped (how state trees are laid out)


def align(updates: Any, params: Any, others: tuple[Any, ...] = ()) -> AlignedLeaves:
  """Matches the leaves of `updates`, `params` and `others` (trees laid out like them).

  Updates may be wrapped in Variables (gradients of an `nnx.State`) or not, independently of
  the parameters; the rebuilt updates keep whatever structure they came in.

  Raises:
    ValueError: when the trees differ in structure, saying so.
  """
  rebuild = jax.tree.structure(updates, is_leaf=is_placeholder).unflatten
  update_leaves, plain = jax.tree.flatten(unwrap_variables(updates), is_leaf=is_placeholder)
  what = "the parameters" if not others else "the parameters or the state built by init"
  try:
    param_leaves = plain.flatten_up_to(unwrap_variables(params))
    other_leaves = [plain.flatten_up_to(unwrap_variables(other)) for other in others]
  except (ValueError, TypeError) as err:
    raise ValueError(_errors.named(f"the updates and {what} differ in structure: {err}")) from err
  if any(not is_placeholder(p) and jax.tree.structure(p).num_leaves > 1 for p in param_leaves):
    # The updates hold a placeholder where the parameters hold a whole subtree.
    raise ValueError(
      _errors.named(
        f"the updates and {what} differ in structure: "
        f"{jax.tree.structure(updates, is_leaf=is_placeholder)} and "
        f"{jax.tree.structure(params, is_leaf=is_placeholder)}."
      )
    )
  return AlignedLeaves(update_leaves, param_leaves, other_leaves, rebuild, plain)


def require_params(params: Any) -> None:
  """Raises when `update` was called without the parameters the transform needs."""
  if params is None:
    raise ValueError(
      f"{_errors.called()} needs the parameters: call update(updates, state, params)."
    )
