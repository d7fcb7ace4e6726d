"""Hyperparameters as optimizer state, with masks kept static."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, cast

import jax
import jax.numpy as jnp
import optax

# Masks and labels are trees or functions of the parameters, not schedules; restart periods are
# Python ints that decide the schedule's structure.
_ALWAYS_STATIC = ("mask", "param_labels", "first_period_steps", "period_multiplier")


def inject_hyperparams(
  inner_factory: Callable[..., optax.GradientTransformation],
  static_args: str | Iterable[str] = (),
  hyperparam_dtype: Any = jnp.float32,
) -> Callable[..., optax.GradientTransformationExtraArgs]:
  """``optax.inject_hyperparams`` with two pitfalls removed.

  * ``mask`` and ``param_labels`` arguments are always static (as are the restart periods of
    :func:`adamwr` and :func:`sgdwr`). ``optax.inject_hyperparams``
    calls every callable argument as a schedule of the step count, so a mask function would be
    evaluated on an integer and decay nothing (or everything); here it is passed through
    untouched.
  * Hyperparameters are stored in float32 by default rather than in the parameters' dtype, so
    ``b2=0.999`` does not round to 1.0 for bfloat16 parameters (which makes Adam's first step
    NaN). The inner state and the updates keep the dtypes they would have without injection
    (the float32 hyperparameters would otherwise promote bfloat16 moments to float32 after the
    first step, and a jitted step would retrace). Pass ``hyperparam_dtype=None`` for optax's
    behaviour.

  Everything else is ``optax.inject_hyperparams``: numeric arguments become entries of
  ``state.hyperparams`` that can be read and changed between steps, and callables other than
  ``mask`` are schedules.

  Args:
    inner_factory: a function returning a transform, e.g. :func:`adamw`.
    static_args: further arguments to keep static, as in ``optax.inject_hyperparams``.
    hyperparam_dtype: dtype of the stored hyperparameters.

  Returns:
    A factory with the signature of ``inner_factory``.

  Example:
    >>> import jax, jax.numpy as jnp, optax_decay
    >>> params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    >>> no_bias = lambda p: {"w": True, "b": False}
    >>> tx = optax_decay.inject_hyperparams(optax_decay.adamw)(
    ...     learning_rate=1e-3, weight_decay=1e-2, mask=no_bias)
    >>> state = tx.init(params)
    >>> state.hyperparams["weight_decay"]
    Array(0.01, dtype=float32)
  """
  static = {static_args} if isinstance(static_args, str) else set(static_args)
  accepted = inspect.signature(inner_factory).parameters
  static.update(name for name in _ALWAYS_STATIC if name in accepted)
  injected = optax.inject_hyperparams(
    inner_factory, static_args=tuple(sorted(static)), hyperparam_dtype=hyperparam_dtype
  )

  @functools.wraps(inner_factory)
  def factory(*args, **kwargs) -> optax.GradientTransformationExtraArgs:
    tx = injected(*args, **kwargs)

    def update_fn(updates, state, params=None, **extra_args):
      new_updates, new_state = tx.update(updates, state, params, **extra_args)
      new_state = cast(optax.InjectStatefulHyperparamsState, new_state)
      inner_state = _cast_like(new_state.inner_state, state.inner_state)
      # Updates take the dtype of their parameters, as they would with float hyperparameters.
      new_updates = _cast_like(new_updates, params if params is not None else updates)
      return new_updates, new_state._replace(inner_state=inner_state)

    return optax.GradientTransformationExtraArgs(tx.init, update_fn)

  return factory


def _cast_like(tree: Any, reference: Any) -> Any:
  """`tree` with each floating leaf cast to the dtype of the matching leaf of `reference`."""

  def cast(x, ref):
    if x is None or ref is None or not hasattr(x, "dtype") or not hasattr(ref, "dtype"):
      return x
    if jnp.issubdtype(x.dtype, jnp.inexact) and jnp.issubdtype(ref.dtype, jnp.inexact):
      return x.astype(ref.dtype)
    return x

  return jax.tree.map(cast, tree, reference, is_leaf=lambda x: x is None)
