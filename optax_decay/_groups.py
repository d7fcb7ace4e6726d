"""Decay strengths per group of parameters, in one transform, without `optax.partition`."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optax_decay import _add_scaled, _masks, _rates

__all__ = ["decoupled_decay_groups"]

_OWNER = "decoupled_decay_groups"


def _label_tree(param_labels: Any, params: Any, groups: list[Hashable]) -> Any:
  """The index into `groups` of each parameter leaf, as a tree shaped like `params`."""
  labels = param_labels(params) if _masks.is_mask_function(param_labels) else param_labels
  labels = _masks.unwrap_variables(labels)
  index = {group: i for i, group in enumerate(groups)}

  def to_index(path, label):
    where = jax.tree_util.keystr(path) or "<root>"
    try:
      return index[label]
    except TypeError as err:
      raise TypeError(
        f"{_OWNER}: the label at {where} must be hashable, got {type(label).__name__}."
      ) from err
    except KeyError as err:
      raise ValueError(
        f"{_OWNER}: the label {label!r} at {where} is not a key of weight_decay "
        f"({', '.join(repr(g) for g in groups)})."
      ) from err

  indices = jax.tree_util.tree_map_with_path(to_index, labels)
  # Each group is resolved as a boolean mask, so labels may be a prefix of the parameters and
  # are matched to them by path exactly as masks are (Variables unwrapped on both sides).
  owner = f"{_OWNER} (param_labels)"
  per_group = [
    _masks.leaf_mask(jax.tree.map(lambda i, k=k: i == k, indices), params, owner)
    for k in range(len(groups))
  ]
  # Placeholder leaves of the parameters (None in an Equinox filtered module, MaskedNode inside
  # optax.partition) belong to no group.
  leaf_indices = [
    next((k for k, flag in enumerate(flags) if flag), None)
    for flags in zip(*per_group, strict=True)
  ]
  structure = jax.tree.structure(params, is_leaf=_masks.is_placeholder)
  return jax.tree.unflatten(structure, leaf_indices)


def decoupled_decay_groups(
  weight_decay: Mapping[Hashable, optax.ScalarOrSchedule],
  param_labels: Any | Callable[[Any], Any],
) -> optax.GradientTransformation:
  r"""Adds the weights to the update, each scaled by the decay rate of its group.

  .. math::

    u_t \leftarrow u_t + \kappa_{g(w),\,t}\; w_{t-1}

  where :math:`g(w)` is the label of the leaf :math:`w` and :math:`\kappa_g` the rate of that
  group in ``weight_decay``. It is :func:`decoupled_decay` with one rate per group instead of
  one rate and a mask, in a single pass over the leaves: a mask is the special case
  ``{"decay": λ, "none": 0.0}``. Typical groups are kernels (λ), embeddings (a smaller λ) and
  biases and norm scales (0).

  The position in a chain decides what it is, exactly as for :func:`decoupled_decay` and
  :func:`add_l2_to_grads`: between the preconditioner and ``optax.scale_by_learning_rate(lr)``
  it is decoupled decay of :math:`\mathrm{lr}_t\,\kappa_g\,w` per step (``coupling="lr"``; for
  the paper's ``"schedule"`` coupling divide each rate by the peak learning rate); first in the
  chain it is L2 regularization with a penalty :math:`\tfrac{\kappa_g}{2}\lVert w\rVert^2` per
  group.

  Args:
    weight_decay: a mapping from each label to its rate κ ≥ 0: a float, scalar array or
      schedule of the step count. Schedules see this transform's count (0 at the first
      ``update``). Groups no parameter carries are allowed.
    param_labels: a pytree of labels with the structure of the parameters or of a prefix of
      them, or a callable returning one from the parameters (as for ``optax.partition``). Every
      label must be a key of ``weight_decay``. Labels are matched to parameters by path, after
      Flax NNX ``Variable`` boxes are unwrapped, like masks. A labels tree that is itself
      callable (an Equinox module with ``__call__``) must be passed as ``lambda _: labels``.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``. Its state is
    ``optax.EmptyState()`` when every rate is constant, else a step count.

  Raises:
    TypeError, ValueError: at construction for a rate that is negative, NaN, infinite or not
      a number, or an empty ``weight_decay``; at ``init`` for a label missing from
      ``weight_decay`` or labels that do not cover the parameters.

  Example:
    >>> import jax, jax.numpy as jnp, optax, optax_decay
    >>> params = {"embed": jnp.ones((4, 2)), "dense": {"kernel": jnp.ones((2, 2)),
    ...                                                 "bias": jnp.ones(2)}}
    >>> labels = {"embed": "embed", "dense": {"kernel": "decay", "bias": "none"}}
    >>> adamw = optax.chain(
    ...     optax.scale_by_adam(),
    ...     optax_decay.decoupled_decay_groups({"decay": 0.1, "embed": 1e-3, "none": 0.0}, labels),
    ...     optax.scale_by_learning_rate(0.5),
    ... )
    >>> zeros = jax.tree.map(jnp.zeros_like, params)
    >>> updates, _ = adamw.update(zeros, adamw.init(params), params)
    >>> updates["dense"]["kernel"][0], updates["embed"][0]  # lr·κ of each group
    (Array([-0.05, -0.05], dtype=float32), Array([-0.0005, -0.0005], dtype=float32))
    >>> bool((updates["dense"]["bias"] == 0).all())
    True

    Labels can come from :func:`decay_mask`:

    >>> def labels(params):
    ...   return jax.tree.map(lambda decay: "decay" if decay else "none",
    ...                       optax_decay.decay_mask(params))
    >>> tx = optax_decay.decoupled_decay_groups({"decay": 0.1, "none": 0.0}, labels)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  if not isinstance(weight_decay, Mapping):
    raise TypeError(
      f"{_OWNER}: weight_decay must be a mapping from labels to rates, got "
      f"{type(weight_decay).__name__}; for one rate use decoupled_decay."
    )
  if not weight_decay:
    raise ValueError(f"{_OWNER}: weight_decay is empty; give at least one group.")
  if param_labels is None:
    raise TypeError(
      f"{_OWNER}: param_labels is None; give a pytree of labels shaped like the parameters (or "
      "a prefix of them), or a function returning one, as for optax.partition."
    )
  groups = list(weight_decay)
  rates = [_rates.check_rate(weight_decay[g], f"weight_decay[{g!r}]", _OWNER) for g in groups]
  is_zero = [_rates.is_zero(r) for r in rates]
  scheduled = any(callable(r) for r in rates)

  def init_fn(params):
    _label_tree(param_labels, _masks.unwrap_variables(params), groups)
    if scheduled:
      return _add_scaled.DecayScheduleState(count=jnp.zeros([], jnp.int32))
    return optax.EmptyState()

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _add_scaled.require_params(params, _OWNER)
    if scheduled:
      rates_t = [_rates.rate_at(r, state.count) for r in rates]
      state = _add_scaled.DecayScheduleState(count=jnp.asarray(optax.safe_increment(state.count)))
    else:
      rates_t = rates
    if updates is None:
      return None, state
    params = _masks.unwrap_variables(params)
    group_of = _label_tree(param_labels, params, groups)

    def decay(update, param, index):
      if index is None or is_zero[index]:
        return update
      return _add_scaled.scaled_leaf(update, param, rates_t[index], param)

    new_updates = _add_scaled.map_masked_leaves(decay, updates, params, None, _OWNER, group_of)
    return new_updates, state

  return optax.GradientTransformation(init_fn, update_fn)
