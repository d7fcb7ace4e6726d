"""Hyperparameters as optimizer state, with masks kept static."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax._src.lax.lax import _convert_element_type

# Arguments that are not hyperparameters: masks and labels are trees or functions of the
# parameters, restart periods are Python ints that decide the schedule's structure, and dtypes
# are callables (jnp.float32) that optax.inject_hyperparams would take for schedules.
_ALWAYS_STATIC = (
  "mask",
  "param_labels",
  "first_period_steps",
  "period_multiplier",
  "mu_dtype",
  "accumulator_dtype",
)
_NEEDS_PEAK = ("schedule", "corrected")


def inject_hyperparams(
  inner_factory: Callable[..., optax.GradientTransformation],
  static_args: str | Iterable[str] = (),
  hyperparam_dtype: Any = jnp.float32,
) -> Callable[..., optax.GradientTransformationExtraArgs]:
  """``optax.inject_hyperparams`` without its pitfalls: the injected transform is the plain one.

  * ``mask`` and ``param_labels`` arguments are always static (as are the restart periods of
    :func:`adamwr` and :func:`sgdwr`, and ``mu_dtype`` and ``accumulator_dtype``).
    ``optax.inject_hyperparams`` calls every callable argument as a schedule of the step count,
    so a mask function would be evaluated on an integer and decay nothing (or everything); here
    it is passed through untouched.
  * Hyperparameters are stored in float32 by default rather than in the parameters' dtype, so
    ``b2=0.999`` does not round to 1.0 for bfloat16 parameters (which makes Adam's first step
    NaN), and reach the transform *weakly typed*, as the Python floats they replace: the
    updates and the inner state have exactly the dtypes of the plain transform (a float32
    array would promote bfloat16 moments and updates to float32, and a jitted step would
    retrace). ``hyperparam_dtype=None`` stores them in the parameters' dtype, as optax does.
  * The arguments are checked when the injected transform is built, by building the plain
    one: an argument the plain transform rejects is the same error here, at construction.
  * With ``coupling="schedule"`` or ``"corrected"`` and a constant learning rate but no
    ``peak_learning_rate``, the learning rate given here becomes the peak (as for the plain
    transform) and is injected as a hyperparameter of its own; changing the injected
    learning rate between steps then changes lr_t/peak, as a schedule would. A learning-rate
    schedule needs an explicit peak, as it does without injection.

  Everything else is ``optax.inject_hyperparams``: numeric arguments become entries of
  ``state.hyperparams`` that can be read and changed between steps, and callables other than
  the static arguments are schedules.

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
  signature = inspect.signature(inner_factory)
  static.update(name for name in _ALWAYS_STATIC if name in signature.parameters)
  injected = optax.inject_hyperparams(
    _weakly_typed(inner_factory),
    static_args=tuple(sorted(static)),
    hyperparam_dtype=hyperparam_dtype,
  )

  @functools.wraps(inner_factory)
  def factory(*args, **kwargs) -> optax.GradientTransformationExtraArgs:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    if (
      arguments.get("coupling") in _NEEDS_PEAK
      and "peak_learning_rate" in arguments
      and arguments["peak_learning_rate"] is None
      and isinstance(arguments.get("learning_rate"), (int, float, np.generic))
    ):
      arguments["peak_learning_rate"] = arguments["learning_rate"]
    inner_factory(**arguments)  # the plain transform's construction-time checks, now
    return injected(**arguments)

  return factory


def _weakly_typed(factory: Callable[..., optax.GradientTransformation]):
  """`factory` receiving each floating-point scalar array argument weakly typed.

  A weakly typed float32 scalar takes part in arithmetic as a Python float does: it adopts the
  dtype of the array it meets (bfloat16 moments stay bfloat16) while holding a float32 value.
  """

  @functools.wraps(factory)
  def weak_factory(*args, **kwargs):
    return factory(*args, **{name: _weak(value) for name, value in kwargs.items()})

  return weak_factory


def _weak(value: Any) -> Any:
  if isinstance(value, jax.Array) and value.ndim == 0 and jnp.issubdtype(value.dtype, jnp.floating):
    # There is no public API for a weak type; this is what jnp.asarray(1.0) produces.
    return _convert_element_type(value, weak_type=True)
  return value
