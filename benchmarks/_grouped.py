"""Prototype: run an optimizer on one flat buffer per (dtype, decayed) group of leaves.

Like `optax.flatten`, but the decay mask survives: leaves are grouped by dtype and by their mask
flag, so the inner optimizer sees one vector it decays and one it does not, instead of one
vector its mask cannot see into (with `optax.flatten(optax.adamw(mask=fn))` the decay silently
goes). The moments live flat in the state; parameters and gradients are concatenated and the
update is cut back into leaves at every step.

Kept in benchmarks/ because it did not pay off on CPU (see docs/benchmarks.md): the
concatenation and the slicing move more bytes than the fewer, larger loops save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optax_decay import _masks


def _groups(params: Any, mask: Any) -> tuple[list[tuple[str, bool]], list[list[int]]]:
  leaves = jax.tree.leaves(params)
  flags = _masks.leaf_mask(mask, params, "grouped")
  keys = list(dict.fromkeys((str(x.dtype), flag) for x, flag in zip(leaves, flags, strict=True)))
  members = [
    [
      i
      for i, (x, flag) in enumerate(zip(leaves, flags, strict=True))
      if (str(x.dtype), flag) == key
    ]
    for key in keys
  ]
  return keys, members


def _pack(tree: Any, members: list[list[int]]) -> tuple[jax.Array, ...]:
  leaves = jax.tree.leaves(tree)
  return tuple(jnp.concatenate([leaves[i].reshape(-1) for i in group]) for group in members)


def grouped(
  make_tx: Callable[[Any], optax.GradientTransformation], mask: Any = None
) -> optax.GradientTransformation:
  """`make_tx(group_mask)` applied to flat groups; `group_mask` is a tuple of bools.

  Example: ``grouped(lambda m: optax_decay.adamw(1e-3, weight_decay=1e-2, mask=m), mask)``.
  """

  def init_fn(params):
    keys, members = _groups(params, mask)
    return make_tx(tuple(flag for _, flag in keys)).init(_pack(params, members))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("grouped needs the parameters to find the decay groups.")
    keys, members = _groups(params, mask)
    tx = make_tx(tuple(flag for _, flag in keys))
    flat, state = tx.update(_pack(updates, members), state, _pack(params, members))
    leaves, treedef = jax.tree.flatten(updates)
    out = list(leaves)
    for group, vector in zip(members, flat, strict=True):
      offset = 0
      for i in group:
        out[i] = vector[offset : offset + leaves[i].size].reshape(leaves[i].shape)
        offset += leaves[i].size
    return treedef.unflatten(out), state

  return optax.GradientTransformation(init_fn, update_fn)
