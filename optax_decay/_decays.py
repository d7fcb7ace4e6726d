"""The decays that add a term to the update: L2, L1, decoupled decay, decay to an anchor, groups.

Each is one mechanism, :func:`add_scaled_params`: `u ← u + κ_t · d(w)` on the leaves a mask
selects, with `d(w) = w` (L2 and decoupled decay), `sign(w)` (L1) or `w − w°` (an anchor). What
makes the same term L2 regularization or decoupled weight decay is only *where in a chain* it
is placed: before the preconditioner its gradient joins the loss's and goes through the moment
estimates; after it, the term bypasses them (Loshchilov & Hutter, 2019). The decay per step is
`lr_t · κ_t` when `optax.scale_by_learning_rate` follows (`_coupling.py` builds the others).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.core import Tracer

from optax_decay import _errors, _masks, _precision, _rates, _tree

Mask = _masks.Mask


# --- the mechanism ------------------------------------------------------------------------------


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


def map_selected(
  fn: Callable[..., jax.Array], updates: Any, params: Any, selected: list[bool], *others: Any
) -> Any:
  """`updates` with `fn(u, w, *o)` at every selected floating-point leaf; the rest unchanged.

  `selected` holds one bool per leaf of `params` (`_masks.flags`); `others` are trees laid out
  like the parameters whose leaves are handed to `fn` alongside. Placeholders pass through.
  """
  leaves = _tree.align(updates, params, others)
  new_leaves = []
  for i, (u, w, flag) in enumerate(zip(leaves.updates, leaves.params, selected, strict=True)):
    if flag and not _tree.is_placeholder(u) and _tree.is_decayable(w):
      new_leaves.append(fn(u, w, *(other[i] for other in leaves.others)))
    else:
      new_leaves.append(u)
  return leaves.rebuild(new_leaves)


def masked_state(mask: Mask, state: Any) -> Any:
  """`state` laid out as optax lays out a masked transform's: inside `optax.MaskedState`.

  So a masked decay has the state of `optax.add_decayed_weights(rate, mask)`, and a checkpoint
  of an optax optimizer restores into ours.
  """
  return state if mask is None else optax.MaskedState(inner_state=state)


def unmasked_state(mask: Mask, state: Any) -> Any:
  return state if mask is None else state.inner_state


def check_at_init(mask: Mask, params: Any, per_step: float | None = None) -> None:
  """Resolves the mask against the parameters `init` sees, so that errors and warnings come
  early; `per_step`, the constant fraction of each weight removed per step when known, is
  checked against the precision of the 16-bit leaves the mask selects."""
  if mask is None and not per_step:
    return
  decayed = _masks.decayed_leaves(mask, params)
  if per_step:
    _precision.warn_if_below_resolution(per_step, decayed)


def add_scaled_params(
  rate: optax.ScalarOrSchedule,
  mask: Mask,
  rate_name: str,
  *,
  direction: Callable[[jax.Array], jax.Array] = lambda w: w,
  cautious: bool = False,
  per_step: float | None = None,
) -> optax.GradientTransformation:
  """`u ← u + rate_t · direction(w)` on the leaves that `mask` selects.

  `per_step`, when known, is the constant fraction of each weight removed per step. The state
  is `optax.add_decayed_weights`'s: empty or a step count, inside `optax.MaskedState` when there
  is a mask.
  """
  rate = _rates.check_rate(rate, rate_name)
  _masks.check(mask)
  _rates.check_bool(cautious, "cautious")
  is_zero = _rates.is_zero(rate)

  def init_fn(params):
    check_at_init(mask, params, per_step)
    return masked_state(mask, _rates.schedule_init(rate))

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _tree.require_params(params)
    (rate_t,), inner = _rates.schedule_step([rate], unmasked_state(mask, state))
    state = masked_state(mask, inner)
    if updates is None or is_zero:
      return updates, state
    updates = map_selected(
      lambda u, w: scaled_leaf(u, w, rate_t, direction(w), cautious),
      updates,
      params,
      _masks.flags(mask, params),
    )
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


# --- L2, L1 and decoupled decay -------------------------------------------------------------------


@_errors.public
def add_l2_to_grads(
  l2: optax.ScalarOrSchedule,
  mask: Mask = None,
) -> optax.GradientTransformation:
  r"""Adds the gradient of an L2 penalty to the gradients: classic L2 regularization.

  .. math::

    g_t \leftarrow g_t + \lambda_t \, w_{t-1}
    \;=\; \nabla_w \Big[ f(w) + \tfrac{\lambda_t}{2} \lVert w \rVert^2 \Big]_{w = w_{t-1}}

  Place it *first* in a chain, before the preconditioner (``optax.trace``,
  ``optax.scale_by_adam``, ...): the penalty's gradient then goes through the moment estimates
  and per-coordinate scaling like the loss's own gradient. That is what PyTorch's
  ``SGD(weight_decay=...)`` and ``Adam(weight_decay=...)`` do. For plain SGD it equals decoupled
  decay with the same λ (Loshchilov & Hutter, Prop. 1); with momentum or Adam it does not
  (Prop. 2), which is why :func:`decoupled_decay` exists.

  The learning rate that comes later in the chain multiplies the penalty's gradient with
  everything else, so L2 is always coupled to the learning rate.

  Args:
    l2: the penalty strength λ ≥ 0: a float, a scalar array, or a schedule of the step count.
      A schedule sees this transform's own count, which starts at 0 and grows by one at each
      ``update``; in a chain it therefore equals the count of ``optax.scale_by_learning_rate``.
    mask: which parameters are penalized (``None``: every floating-point leaf); see
      :func:`decoupled_decay`.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> sgd_l2 = optax.chain(optax_decay.add_l2_to_grads(0.1), optax.sgd(1.0))
    >>> params = {"w": jnp.array([2.0])}
    >>> state = sgd_l2.init(params)
    >>> updates, state = sgd_l2.update({"w": jnp.array([0.0])}, state, params)
    >>> updates["w"]
    Array([-0.2], dtype=float32)

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
  """
  return add_scaled_params(l2, mask, "l2")


@_errors.public
def add_l1_to_grads(
  l1: optax.ScalarOrSchedule,
  mask: Mask = None,
) -> optax.GradientTransformation:
  r"""Adds a subgradient of an L1 penalty to the gradients: classic L1 regularization.

  .. math::

    g_t \leftarrow g_t + \lambda_t \, \operatorname{sign}(w_{t-1})
    \;\in\; \partial_w \Big[ f(w) + \lambda_t \lVert w \rVert_1 \Big]_{w = w_{t-1}},
    \qquad \operatorname{sign}(0) = 0

  Place it *first* in a chain, before the preconditioner, like :func:`add_l2_to_grads`: the
  penalty's subgradient then goes through the moment estimates with the loss's gradient. The
  learning rate that comes later in the chain multiplies it with everything else, so the penalty
  is coupled to the learning rate. A subgradient step overshoots zero and leaves weights
  oscillating around it rather than at it; for exact zeros use :func:`proximal_l1`.

  The term is computed in each parameter's dtype (complex parameters get ``w / |w|``).

  Args:
    l1: the penalty strength λ ≥ 0: a float, a scalar array, or a schedule of the step count.
      A schedule sees this transform's own count, which starts at 0 and grows by one at each
      ``update``; in a chain it therefore equals the count of ``optax.scale_by_learning_rate``.
    mask: which parameters are penalized (``None``: every floating-point leaf); see
      :func:`decoupled_decay`.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``. Its state is
    ``optax.EmptyState()`` for a constant ``l1`` and a step count for a schedule.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> tx = optax.chain(optax_decay.add_l1_to_grads(0.1), optax.sgd(1.0))
    >>> params = {"w": jnp.array([2.0, 0.0, -3.0])}
    >>> updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    >>> updates["w"]  # −lr·(g + λ·sign(w))
    Array([-1.1, -1. , -0.9], dtype=float32)

  References:
    Tibshirani, `Regression Shrinkage and Selection via the Lasso
    <https://doi.org/10.1111/j.2517-6161.1996.tb02080.x>`_, JRSS B 1996.
    Tsuruoka, Tsujii & Ananiadou, `Stochastic Gradient Descent Training for L1-regularized
    Log-linear Models with Cumulative Penalty <https://aclanthology.org/P09-1054/>`_, ACL 2009.
  """
  return add_scaled_params(l1, mask, "l1", direction=jnp.sign)


@_errors.public
def decoupled_decay(
  weight_decay: optax.ScalarOrSchedule,
  mask: Mask = None,
  *,
  cautious: bool = False,
) -> optax.GradientTransformation:
  r"""Adds the weights, scaled by the decay rate, to the preconditioned update.

  .. math::

    u_t \leftarrow u_t + \kappa_t \, w_{t-1}

  Place it *after* the preconditioner (``optax.scale_by_adam``, ``optax.trace``, ...) so the
  decay never enters the moment estimates (Loshchilov & Hutter, Alg. 1 and 2). Whatever comes
  after it in the chain multiplies the decay too. In the standard position, just before
  ``optax.scale_by_learning_rate(lr)``, the step is
  :math:`w_t = w_{t-1} - \mathrm{lr}_t (u_t + \kappa_t w_{t-1})`: the decay is coupled to the
  learning rate exactly as in ``optax.adamw`` and PyTorch's ``AdamW``, and

  ``optax.chain(optax.scale_by_adam(), decoupled_decay(wd), optax.scale_by_learning_rate(lr))``

  equals ``optax.adamw(lr, weight_decay=wd)`` bit for bit.

  Every other coupling is this transform with another rate κ_t (or in another place), which
  :func:`scale_by_learning_rate_and_decay` builds for you:

  - ``"lr"``, lr_t·λ·w per step: ``decoupled_decay(λ)``, then
    ``optax.scale_by_learning_rate(lr)``.
  - ``"schedule"``, (lr_t/peak)·λ·w: ``decoupled_decay(λ / peak)``, then
    ``optax.scale_by_learning_rate(lr)``.
  - ``"corrected"``, (lr_t²/peak)·λ·w: ``decoupled_decay(lambda t: λ * lr(t) / peak)``, then
    ``optax.scale_by_learning_rate(lr)``.
  - ``"none"``, λ·w: ``optax.scale_by_learning_rate(lr, flip_sign=False)``, then
    ``decoupled_decay(λ)``, then ``optax.scale(-1.0)``.

  Args:
    weight_decay: the rate κ ≥ 0: a float, a scalar array, or a schedule of the step count. A
      schedule sees this transform's own count, which starts at 0 and grows by one at each
      ``update``, the same count ``optax.scale_by_learning_rate`` sees in the same chain.
    mask: ``None`` (decay every floating-point leaf), a pytree of bools with the structure of
      the parameters or of a prefix of them, or a callable returning one from the parameters.
      ``True`` marks leaves that are decayed; integer and boolean leaves, and placeholders
      (``None``, ``optax.MaskedNode``), always pass through. Entries are matched to the
      parameters by path, Flax NNX ``Variable`` boxes unwrapped on both sides; an entry at a
      placeholder is ignored, so a mask over the whole parameters works inside
      ``optax.partition``.
    cautious: cautious weight decay (Chen et al. 2025): decay only the coordinates where the
      update and the weight agree in sign, :math:`u_t \leftarrow u_t + \kappa_t\,
      \mathbb{1}[u_t \odot w_{t-1} \ge 0] \odot w_{t-1}`, so the decay never pushes a weight
      against the direction the optimizer is already moving it.

  Returns:
    An ``optax.GradientTransformation``; its ``update`` requires ``params``. Its state is
    ``optax.EmptyState()`` for a constant rate and a step count for a schedule.

  Example:
    >>> import jax.numpy as jnp, optax, optax_decay
    >>> adamw = optax.chain(
    ...     optax.scale_by_adam(),
    ...     optax_decay.decoupled_decay(1e-2),
    ...     optax.scale_by_learning_rate(1e-3),
    ... )
    >>> params, grads = {"w": jnp.ones(3)}, {"w": jnp.full(3, 0.5)}
    >>> ours, _ = adamw.update(grads, adamw.init(params), params)
    >>> reference = optax.adamw(1e-3, weight_decay=1e-2)
    >>> theirs, _ = reference.update(grads, reference.init(params), params)
    >>> bool((ours["w"] == theirs["w"]).all())
    True

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.
    Chen et al., `Cautious Weight Decay <https://arxiv.org/abs/2510.12402>`_, 2025.
  """
  return add_scaled_params(weight_decay, mask, "weight_decay", cautious=cautious)


# --- decay toward an anchor (L2-SP) ---------------------------------------------------------------


class DecayToAnchorState(NamedTuple):
  """State of :func:`decay_to_anchor`."""

  anchor: Any  # laid out like the parameters: a copy of each float leaf, else None or MaskedNode
  count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # int32: updates so far


def _anchor_mismatch(where: str, detail: str) -> ValueError:
  return ValueError(
    _errors.named(
      f"the anchor {where} {detail}; the anchor must have the structure and shapes of the "
      "parameters passed to init."
    )
  )


def _anchor_like(anchor: Any, params: Any) -> Any:
  """`anchor` laid out like `params`: a copy of each float leaf, in its parameter's dtype and
  sharding; the parameters' placeholders where they have them; None at other non-float leaves.

  Leaves are matched by path, as masks are, so a plain dict anchor works with an `nnx.State` of
  parameters and the other way round, and an anchor over the whole parameters works inside
  `optax.partition`. Always a copy, never the caller's buffers, so that donating the parameters
  to a jitted step leaves the anchor alive.
  """
  path_leaves, treedef = jax.tree_util.tree_flatten_with_path(params, is_leaf=_tree.is_placeholder)
  if anchor is None:
    return treedef.unflatten(
      [_copy_like(p, p) if _tree.is_decayable(p) else _absent(p) for _, p in path_leaves]
    )
  given = {
    _tree.path_key(path): (path, value)
    for path, value in _tree.leaves_with_paths(anchor)
    if not _tree.is_placeholder(value)
  }
  leaves = []
  for path, param in path_leaves:
    key = _tree.path_key(path)
    _, value = given.pop(key, (None, None))
    if _tree.is_placeholder(param):
      # Entries at (or under) a placeholder belong to no parameter of this transform.
      given = {k: v for k, v in given.items() if k[: len(key)] != key}
    if not _tree.is_decayable(param):
      leaves.append(_absent(param))
      continue
    where = jax.tree_util.keystr(path)
    if value is None:
      raise _anchor_mismatch("has no entry for the parameter at", where)
    if jnp.shape(value) != jnp.shape(param):
      raise _anchor_mismatch(
        f"entry at {where}", f"has shape {jnp.shape(value)}, the parameter {jnp.shape(param)}"
      )
    leaves.append(_copy_like(value, param))
  if given:
    path, _ = next(iter(given.values()))
    raise _anchor_mismatch(f"entry at {jax.tree_util.keystr(path)}", "matches no parameter")
  return treedef.unflatten(leaves)


def _absent(param: Any) -> Any:
  """The anchor's entry for a parameter leaf that is not decayed: its placeholder, or None."""
  return param if _tree.is_placeholder(param) else None


def _copy_like(value: Any, param: Any) -> jax.Array:
  """A new array holding `value` in `param`'s dtype, on `param`'s devices when it has them."""
  copy = jnp.array(value, dtype=jnp.result_type(param), copy=True)
  if isinstance(param, jax.Array) and not isinstance(param, Tracer):
    copy = jax.device_put(copy, param.sharding)
  return copy


@_errors.public
def decay_to_anchor(
  weight_decay: optax.ScalarOrSchedule,
  anchor: Any = None,
  mask: Mask = None,
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
    mask: which parameters are decayed (``None``: every floating-point leaf); see
      :func:`decoupled_decay`.

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
  # The mechanism of decoupled_decay with w − anchor in place of w, and the anchor in the state.
  weight_decay = _rates.check_rate(weight_decay, "weight_decay")
  _masks.check(mask)
  is_zero = _rates.is_zero(weight_decay)

  def init_fn(params):
    check_at_init(mask, params)
    anchor_tree = _anchor_like(anchor, _tree.unwrap_variables(params))
    return DecayToAnchorState(anchor=anchor_tree, count=_rates.count_init())

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _tree.require_params(params)
    rate_t = _rates.rate_at(weight_decay, state.count)
    next_state = DecayToAnchorState(state.anchor, _rates.count_next(state.count))
    if updates is None or is_zero:
      return updates, next_state
    updates = map_selected(
      lambda u, w, a: scaled_leaf(u, w, rate_t, w - a),
      updates,
      params,
      _masks.flags(mask, params),
      state.anchor,
    )
    return updates, next_state

  return optax.GradientTransformation(init_fn, update_fn)


# --- one rate per group of parameters ----------------------------------------------------------


def _group_of_each_leaf(param_labels: Any, params: Any, groups: list[Hashable]) -> list[Any]:
  """The index into `groups` of each leaf of `params` (`_tree.leaves` order); None at
  placeholders, which belong to no group."""
  labels = param_labels(params) if _masks.is_function(param_labels) else param_labels
  labels = _tree.unwrap_variables(labels)
  index = {group: i for i, group in enumerate(groups)}

  def to_index(path, label):
    where = jax.tree_util.keystr(path) or "<root>"
    try:
      return index[label]
    except TypeError as err:
      raise TypeError(
        _errors.named(f"the label at {where} must be hashable, got {type(label).__name__}.")
      ) from err
    except KeyError as err:
      raise ValueError(
        _errors.named(
          f"the label {label!r} at {where} is not a key of weight_decay "
          f"({', '.join(repr(g) for g in groups)})."
        )
      ) from err

  indices = jax.tree_util.tree_map_with_path(to_index, labels)
  # Each group is resolved as a boolean mask, so labels may be a prefix of the parameters and
  # are matched to them by path exactly as masks are.
  per_group = [
    _masks.flags(jax.tree.map(lambda i, k=k: i == k, indices), params, "param_labels")
    for k in range(len(groups))
  ]
  return [
    next((k for k, flag in enumerate(flags) if flag), None)
    for flags in zip(*per_group, strict=True)
  ]


@_errors.public
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
      _errors.named(
        "weight_decay must be a mapping from labels to rates, got "
        f"{type(weight_decay).__name__}; for one rate use decoupled_decay."
      )
    )
  if not weight_decay:
    raise ValueError(_errors.named("weight_decay is empty; give at least one group."))
  if param_labels is None:
    raise TypeError(
      _errors.named(
        "param_labels is None; give a pytree of labels shaped like the parameters (or a "
        "prefix of them), or a function returning one, as for optax.partition."
      )
    )
  groups = list(weight_decay)
  rates = [_rates.check_rate(weight_decay[g], f"weight_decay[{g!r}]") for g in groups]

  def init_fn(params):
    _group_of_each_leaf(param_labels, _tree.unwrap_variables(params), groups)
    return _rates.schedule_init(*rates)

  def update_fn(updates, state, params=None) -> tuple[Any, Any]:
    _tree.require_params(params)
    rates_t, state = _rates.schedule_step(rates, state)
    if updates is None:
      return None, state
    group_of = _group_of_each_leaf(param_labels, _tree.unwrap_variables(params), groups)
    leaves = _tree.align(updates, params)
    new_leaves = [
      u
      if k is None
      or _rates.is_zero(rates[k])
      or _tree.is_placeholder(u)
      or not _tree.is_decayable(w)
      else scaled_leaf(u, w, rates_t[k], w)
      for u, w, k in zip(leaves.updates, leaves.params, group_of, strict=True)
    ]
    return leaves.rebuild(new_leaves), state

  return optax.GradientTransformation(init_fn, update_fn)
