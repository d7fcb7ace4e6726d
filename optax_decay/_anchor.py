"""Decay toward a reference point (L2-SP): shrink the distance to the anchor, not the weights."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.core import Tracer

from optax_decay import _add_scaled, _masks, _rates

_OWNER = "decay_to_anchor"


class DecayToAnchorState(NamedTuple):
  """State of :func:`decay_to_anchor`."""

  anchor: Any  # the parameters' structure, each float leaf in its parameter's dtype, else None
  count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # int32: updates so far


def _mismatch(where: str, detail: str) -> ValueError:
  return ValueError(
    f"{_OWNER}: the anchor {where} {detail}; the anchor must have the structure and shapes of "
    "the parameters passed to init."
  )


def _anchor_like(anchor: Any, params: Any) -> Any:
  """`anchor` laid out like `params`: a copy of each float leaf, in its parameter's dtype and
  sharding; the parameters' placeholders (`None`, `optax.MaskedNode`) where they have them;
  None at the other non-float leaves.

  Leaves are matched by path, as masks are, so a plain dict anchor works with an `nnx.State` of
  parameters and the other way round, and an anchor over the whole parameters works inside
  `optax.partition`, whose other groups' leaves the transform sees as `MaskedNode`s. Always a
  copy, never the caller's buffers, so that donating the parameters to a jitted step leaves the
  anchor alive.
  """
  path_leaves, treedef = jax.tree_util.tree_flatten_with_path(params, is_leaf=_masks.is_placeholder)
  if anchor is None:
    return treedef.unflatten(
      [_copy_like(p, p) if _add_scaled.is_decayable(p) else _absent(p) for _, p in path_leaves]
    )

  given = {
    _masks.path_key(path): (path, value)
    for path, value in jax.tree_util.tree_flatten_with_path(_masks.unwrap_variables(anchor))[0]
  }
  leaves = []
  for path, param in path_leaves:
    key = _masks.path_key(path)
    _, value = given.pop(key, (None, None))
    if _masks.is_placeholder(param):
      # Entries at (or under) a placeholder belong to no parameter of this transform.
      given = {k: v for k, v in given.items() if k[: len(key)] != key}
    if not _add_scaled.is_decayable(param):
      leaves.append(_absent(param))
      continue
    where = jax.tree_util.keystr(path)
    if value is None:
      raise _mismatch("has no entry for the parameter at", where)
    if jnp.shape(value) != jnp.shape(param):
      raise _mismatch(
        f"entry at {where}", f"has shape {jnp.shape(value)}, the parameter {jnp.shape(param)}"
      )
    leaves.append(_copy_like(value, param))
  if given:
    path, _ = next(iter(given.values()))
    raise _mismatch(f"entry at {jax.tree_util.keystr(path)}", "matches no parameter")
  return treedef.unflatten(leaves)


def _absent(param: Any) -> Any:
  """The anchor's entry for a parameter leaf that is not decayed: its placeholder, or None."""
  return param if _masks.is_placeholder(param) else None


def _copy_like(value: Any, param: Any) -> jax.Array:
  """A new array holding `value` in `param`'s dtype, on `param`'s devices when it has them."""
  copy = jnp.array(value, dtype=jnp.result_type(param), copy=True)
  if isinstance(param, jax.Array) and not isinstance(param, Tracer):
    copy = jax.device_put(copy, param.sharding)
  return copy


def decay_to_anchor(
  weight_decay: optax.ScalarOrSchedule,
  anchor: Any = None,
  mask: _masks.Mask = None,
) -> optax.GradientTransformation:
  r"""Adds the weights' distance to an anchor, scaled by the decay rate: L2-SP style decay.

  .. math::

    u_t \leftarrow u_t + \kappa_t \, (w_{t-1} - w^{\circ})

  where :math:`w^{\circ}` is the anchor: the parameters passed to ``init`` (typically the
  pretrained weights one fine-tunes from), or the pytree given as ``anchor``. Where
  :func:`decoupled_decay` pulls weights toward zero, this pulls them toward :math:`w^{\circ}`;
  with an anchor of zeros the two are the same, bit for bit.

  Place it like :func:`decoupled_decay`: after the preconditioner and just before
  ``optax.scale_by_learning_rate(lr)``, the step is
  :math:`w_t = w_{t-1} - \mathrm{lr}_t \big(u_t + \kappa_t (w_{t-1} - w^{\circ})\big)`, so the
  decay is coupled to the learning rate as in ``optax.adamw``; with zero gradients the distance
  to the anchor shrinks by the factor :math:`1 - \mathrm{lr}_t \kappa_t` per step. Placed
  *first* in a chain, before the preconditioner, it is instead the gradient of Li et al.'s
  penalty :math:`\tfrac{\kappa}{2}\lVert w - w^{\circ}\rVert^2`, like :func:`add_l2_to_grads`.

  Memory: the state keeps one copy of every floating-point parameter (masked out or not), in
  the parameter's dtype; the optimizer state grows by the size of the parameters, as much as
  one more Adam moment. Integer and boolean leaves are stored as ``None``.

  Args:
    weight_decay: the rate κ ≥ 0: a float, a scalar array, or a schedule of the step count. A
      schedule sees this transform's own count, which starts at 0 and grows by one at each
      ``update``, the same count ``optax.scale_by_learning_rate`` sees in the same chain.
    anchor: ``None`` (anchor at the parameters given to ``init``) or a pytree with the
      structure and shapes of the parameters (a prefix is not enough; entries for integer
      leaves may be left out). It is checked at ``init``, where an error names the first path
      that does not match, and cast to each parameter's dtype. Flax NNX ``Variable`` boxes,
      in the parameters or the anchor, are unwrapped.
    mask: ``None`` (decay every floating-point leaf), a pytree of bools with the structure of
      the parameters or of a prefix of them, or a callable returning one from the parameters.
      ``True`` marks leaves that are decayed. Integer and boolean leaves always pass through.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``. Its state is a
    :class:`DecayToAnchorState` ``(anchor, count)``.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> tx = optax.chain(
    ...     optax_decay.decay_to_anchor(0.5), optax.scale_by_learning_rate(0.1))
    >>> state = tx.init({"w": jnp.array([1.0, 2.0])})  # these weights become the anchor
    >>> moved = {"w": jnp.array([3.0, 2.0])}
    >>> updates, state = tx.update({"w": jnp.zeros(2)}, state, moved)
    >>> updates["w"]  # −lr·κ·(w − anchor)
    Array([-0.1, -0. ], dtype=float32)

  References:
    Li, Grandvalet & Davoine, `Explicit Inductive Bias for Transfer Learning with Convolutional
    Networks <https://arxiv.org/abs/1802.01483>`_, ICML 2018.
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  # The same mechanism as decoupled_decay with w − anchor in place of w.
  weight_decay = _rates.check_rate(weight_decay, "weight_decay", _OWNER)
  _masks.check_mask(mask, _OWNER)
  is_zero = _rates.is_zero(weight_decay)

  def init_fn(params):
    _add_scaled.warn_at_init(mask, params, _OWNER)
    anchor_tree = _anchor_like(anchor, _masks.unwrap_variables(params))
    return DecayToAnchorState(anchor=anchor_tree, count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _add_scaled.require_params(params, _OWNER)
    rate_t = _rates.rate_at(weight_decay, state.count)
    next_state = DecayToAnchorState(state.anchor, jnp.asarray(optax.safe_increment(state.count)))
    if updates is None or is_zero:
      return updates, next_state
    updates = _add_scaled.map_masked_leaves(
      lambda u, w, a: _add_scaled.scaled_leaf(u, w, rate_t, w - a),
      updates,
      params,
      mask,
      _OWNER,
      state.anchor,
    )
    return updates, next_state

  return optax.GradientTransformation(init_fn, update_fn)
