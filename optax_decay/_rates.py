"""Checking and evaluating rates that may be numbers, scalar arrays or schedules."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from jax.core import Tracer

__all__ = [
  "check_number",
  "check_rate",
  "combine_rates",
  "is_constant",
  "is_zero",
  "rate_at",
  "unchecked",
]


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


def check_rate(rate: Any, name: str, owner: str, *, positive: bool = False) -> Any:
  """`rate` after checking it; a schedule comes back wrapped so that its values are checked too.

  A number must be a finite, non-negative (or positive) real scalar. A traced value (under
  `jit`, `vmap` or `optax.inject_hyperparams`) can only be checked for its shape. A schedule's
  values are unknown until it is called, so the returned schedule checks that each value is a
  scalar when it is evaluated (at trace time: the compiled program is unchanged); a non-scalar
  value would otherwise broadcast the parameters to a new shape.
  """
  if callable(rate):
    return _scalar_schedule(rate, name, owner)
  if isinstance(rate, Tracer):
    _check_scalar(rate, name, owner)
    return rate
  if isinstance(rate, (bool, np.bool_)) or getattr(rate, "dtype", None) == np.bool_:
    raise TypeError(f"{owner}: {name} must be a number or a schedule, got the boolean {rate!r}.")
  if not isinstance(rate, (int, float, np.generic, np.ndarray, jax.Array)):
    raise TypeError(
      f"{owner}: {name} must be a float, a scalar array or a schedule (a callable of the "
      f"step count), got {_describe(rate)}."
    )
  _check_scalar(rate, name, owner)
  if np.iscomplexobj(rate):
    raise TypeError(f"{owner}: {name} must be real, got {rate!r}.")
  value = float(rate)
  if not math.isfinite(value):
    raise ValueError(f"{owner}: {name} must be finite, got {value}.")
  if value < 0:
    raise ValueError(f"{owner}: {name} must be non-negative, got {value}.")
  if positive and value == 0:
    raise ValueError(f"{owner}: {name} must be positive, got {value}.")
  return rate


def _check_scalar(value: Any, name: str, owner: str, what: str = "") -> None:
  if np.ndim(value) != 0:
    raise ValueError(
      f"{owner}: {name}{what} must be a scalar, got an array of shape {np.shape(value)}."
    )


class _ScalarSchedule:
  """A user's schedule whose values are checked to be scalars when it is called."""

  def __init__(self, schedule: Callable[[Any], Any], name: str, owner: str):
    self.schedule, self.name, self.owner = schedule, name, owner

  def __call__(self, count: Any) -> Any:
    value = self.schedule(count)
    _check_scalar(value, self.name, self.owner, " (a schedule here)")
    return value


def unchecked(schedule: Callable[[Any], Any]) -> Callable[[Any], Any]:
  """The user's own schedule inside a checked one (to evaluate it on many steps at once)."""
  return schedule.schedule if isinstance(schedule, _ScalarSchedule) else schedule


def _scalar_schedule(schedule: Callable[[Any], Any], name: str, owner: str) -> _ScalarSchedule:
  if isinstance(schedule, _ScalarSchedule):
    return schedule
  return _ScalarSchedule(schedule, name, owner)


def check_number(value: Any, name: str, owner: str, *, positive: bool = False) -> Any:
  """`check_rate` for an argument that may not be a schedule (betas, eps, momentum, ...)."""
  if callable(value):
    raise TypeError(f"{owner}: {name} must be a number, not a schedule.")
  return check_rate(value, name, owner, positive=positive)


def rate_at(rate: optax.ScalarOrSchedule, count: jax.Array) -> Any:
  """The value of `rate` at step `count`: the schedule evaluated there, or the constant itself."""
  return rate(count) if callable(rate) else rate


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
