"""Rates that may be numbers, scalar arrays or schedules: checking them, and counting steps.

Every rate argument goes through :func:`check_rate` (or :func:`check_number` for those that may
not be schedules) at construction, where a schedule is evaluated once on `SAMPLE_STEPS` so that
its values are checked as a constant's are; and every stateful transform counts its steps the
same way: an int32 `count`, 0 at the first `update`, at which its schedules are evaluated,
advanced with `optax.safe_increment`. That is the count `optax.scale_by_learning_rate` keeps,
so schedules in one chain stay in step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.core import Tracer

from optax_decay import _errors

# Steps at which a schedule is evaluated at construction, in one call on an array of steps: every
# step of a warm-up up to 4096 steps, then a geometric grid up to 2**31 - 1, the last int32 count.
SAMPLE_STEPS = np.unique(
  np.concatenate([np.arange(4097), np.geomspace(4096, 2**31 - 1, 512).astype(np.int64)])
).astype(np.int32)
# The first of them, whose values must be valid (finite, non-negative, a per-step decay below 1):
# the steps up to 2**24 (16.8 million) only, since beyond a schedule's own int32 arithmetic
# (count + 1, k * count) can wrap around at counts that no run reaches, and that is no reason to
# refuse it.
CHECKED_STEPS = SAMPLE_STEPS[SAMPLE_STEPS <= 2**24]


class DecayScheduleState(NamedTuple):
  """State of a decay whose rate is a schedule: the step count the schedule is evaluated at."""

  count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # int32 scalar


def count_init() -> jax.Array:
  return jnp.zeros([], jnp.int32)


def count_next(count: jax.Array) -> jax.Array:
  return jnp.asarray(optax.safe_increment(count))


def rate_at(rate: optax.ScalarOrSchedule, count: jax.Array) -> Any:
  """The value of `rate` at step `count`: the schedule evaluated there, or the constant itself."""
  return rate(count) if callable(rate) else rate


def schedule_init(*rates: Any) -> DecayScheduleState | optax.EmptyState:
  """A step count when any of `rates` is a schedule; no state otherwise (as optax does)."""
  if any(callable(rate) for rate in rates):
    return DecayScheduleState(count=count_init())
  return optax.EmptyState()


def schedule_step(rates: Sequence[Any], state: Any) -> tuple[list[Any], Any]:
  """The value of each of `rates` at this step, and the state for the next one."""
  if isinstance(state, DecayScheduleState):
    return [rate_at(r, state.count) for r in rates], DecayScheduleState(count_next(state.count))
  return list(rates), state


def _describe(value: Any) -> str:
  return f"{value!r} ({type(value).__name__})"


def is_constant(rate: Any) -> bool:
  """True when `rate` is a concrete number known at construction (not a schedule or tracer)."""
  if callable(rate) or isinstance(rate, Tracer):
    return False
  return isinstance(rate, (int, float, np.generic, np.ndarray, jax.Array))


def is_zero(rate: Any) -> bool:
  """True when `rate` is the Python number 0: a regularizer that can be left out entirely."""
  return isinstance(rate, (int, float)) and rate == 0


def check_rate(rate: Any, name: str, *, positive: bool = False) -> Any:
  """`rate` after checking it; a schedule comes back wrapped so that its values are checked too.

  A number must be a finite, non-negative (or positive) real scalar. A traced value (under
  `jit`, `vmap` or `optax.inject_hyperparams`) can only be checked for its shape. A schedule is
  evaluated on `SAMPLE_STEPS` (see :func:`sample`) and must be finite and non-negative up to 2**24;
  the returned schedule also checks that each value is a scalar when it is evaluated (at trace
  time: the compiled program is unchanged); a non-scalar value would otherwise broadcast the
  parameters to a new shape.
  """
  if callable(rate):
    if isinstance(rate, _ScalarSchedule):
      return rate
    schedule = _ScalarSchedule(rate, name)
    _check_sampled_values(schedule, name)
    return schedule
  if isinstance(rate, Tracer):
    _check_scalar(rate, name)
    return rate
  if isinstance(rate, (bool, np.bool_)) or getattr(rate, "dtype", None) == np.bool_:
    raise TypeError(
      _errors.named(f"{name} must be a number or a schedule, got the boolean {rate!r}.")
    )
  if not isinstance(rate, (int, float, np.generic, np.ndarray, jax.Array)):
    raise TypeError(
      _errors.named(
        f"{name} must be a float, a scalar array or a schedule (a callable of the step count), "
        f"got {_describe(rate)}."
      )
    )
  _check_scalar(rate, name)
  if np.iscomplexobj(rate):
    raise TypeError(_errors.named(f"{name} must be real, got {rate!r}."))
  value = float(rate)
  if not math.isfinite(value):
    raise ValueError(_errors.named(f"{name} must be finite, got {value}."))
  if value < 0:
    raise ValueError(_errors.named(f"{name} must be non-negative, got {value}."))
  if positive and value == 0:
    raise ValueError(_errors.named(f"{name} must be positive, got {value}."))
  return rate


def sample(rate: Any) -> np.ndarray | None:
  """The values of `rate` at `SAMPLE_STEPS` in float64, or None where they cannot be known here.

  A constant is repeated; a schedule is called once on the array of steps (optax's schedules
  and most hand-written ones are element-wise), and a checked one keeps its values, so that
  the checks of one construction evaluate it once. Best effort: a schedule that takes one step
  at a time (a Python `if` on the count), returns traced, complex or wrongly shaped values, or
  fails, gives None, and its values are not checked at construction.
  """
  if isinstance(rate, _ScalarSchedule):
    if rate.sampled is _NOT_SAMPLED:
      rate.sampled = _evaluate(rate.schedule)
    return rate.sampled
  if callable(rate):
    return _evaluate(rate)
  return np.full(SAMPLE_STEPS.shape, float(rate)) if is_constant(rate) else None


def _evaluate(schedule: Callable[[Any], Any]) -> np.ndarray | None:
  try:
    values = schedule(jnp.asarray(SAMPLE_STEPS))
    if isinstance(values, Tracer) or np.iscomplexobj(values):
      return None
    return np.broadcast_to(np.asarray(values, np.float64), SAMPLE_STEPS.shape)
  except Exception:  # noqa: BLE001 -- best effort, as `sample` says
    return None


def _check_sampled_values(schedule: Callable[[Any], Any], name: str) -> None:
  values = sample(schedule)
  if values is None:
    return
  values = values[: len(CHECKED_STEPS)]
  bad = ~np.isfinite(values) | (values < 0)
  if bad.any():
    at = int(np.argmax(bad))
    raise ValueError(
      _errors.named(
        f"{name} (a schedule here) is {values[at]:.6g} at step {int(CHECKED_STEPS[at])}; it must "
        "be finite and non-negative at every step."
      )
    )


def check_number(value: Any, name: str, *, positive: bool = False) -> Any:
  """`check_rate` for an argument that may not be a schedule (betas, eps, momentum, ...)."""
  if callable(value):
    raise TypeError(_errors.named(f"{name} must be a number, not a schedule."))
  return check_rate(value, name, positive=positive)


def check_fraction(value: Any, name: str, why: str) -> None:
  """`check_number` for a β of a moving average, which must lie in [0, 1)."""
  check_number(value, name)
  if is_constant(value) and not float(value) < 1:
    raise ValueError(_errors.named(f"{name} must lie in [0, 1), got {float(value)}: {why}"))


def check_bool(value: Any, name: str) -> None:
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(_errors.named(f"{name} must be True or False, got {value!r}."))


def _check_scalar(value: Any, name: str, what: str = "") -> None:
  if np.ndim(value) != 0:
    raise ValueError(
      _errors.named(f"{name}{what} must be a scalar, got an array of shape {np.shape(value)}.")
    )


_NOT_SAMPLED = object()


class _ScalarSchedule:
  """A user's schedule whose values are checked to be scalars when it is called.

  Errors name the function that built the transform: the name is taken at construction, since
  the schedule is called later, from inside `update`.
  """

  def __init__(self, schedule: Callable[[Any], Any], name: str):
    self.schedule, self.name, self.called = schedule, name, _errors.called()
    self.sampled: Any = _NOT_SAMPLED  # its values at SAMPLE_STEPS, once `sample` has asked

  def __call__(self, count: Any) -> Any:
    value = self.schedule(count)
    if np.ndim(value) != 0:
      raise ValueError(
        f"{self.called}: {self.name} (a schedule here) must be a scalar, got an array of shape "
        f"{np.shape(value)}."
      )
    return value


def combine_rates(fn: Callable[..., Any], *rates: Any) -> optax.ScalarOrSchedule:
  """`fn` applied to `rates`; a schedule of the step count when any of them is one.

  Constants are combined once, at construction, so that the result stays a constant and the
  transform that uses it needs no step count.
  """
  if not any(callable(r) for r in rates):
    return fn(*rates)

  def schedule(count):
    return fn(*(rate_at(r, count) for r in rates))

  return schedule
