"""Hyperparameters as optimizer state, with masks kept static."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import jax.numpy as jnp
import optax


def inject_hyperparams(
  inner_factory: Callable[..., optax.GradientTransformation],
  static_args: str | Iterable[str] = (),
  hyperparam_dtype: Any = jnp.float32,
) -> Callable[..., optax.GradientTransformationExtraArgs]:
  """``optax.inject_hyperparams`` with two pitfalls removed.

  * ``mask`` and ``param_labels`` arguments are always static. ``optax.inject_hyperparams``
    calls every callable argument as a schedule of the step count, so a mask function would be
    evaluated on an integer and decay nothing (or everything); here it is passed through
    untouched.
  * Hyperparameters are stored in float32 by default rather than in the parameters' dtype, so
    ``b2=0.999`` does not round to 1.0 for bfloat16 parameters (which makes Adam's first step
    NaN). Pass ``hyperparam_dtype=None`` for optax's behaviour.

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
  static.update(name for name in ("mask", "param_labels") if name in accepted)
  return optax.inject_hyperparams(
    inner_factory, static_args=tuple(sorted(static)), hyperparam_dtype=hyperparam_dtype
  )
