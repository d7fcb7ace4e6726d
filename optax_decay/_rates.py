"""Checking and evaluating rates that may be numbers, scalar arrays or schedules."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from jax.core import Tracer

__all__ = ["check_number", "check_rate", "combine_rates", "is_constant", "is_zero", "rate_at"]


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


def check_rate(rate: Any, name: str, owner: str, *, positive: bool = False) -> None:
  """Raises if `rate` is negative, NaN, infinite, boolean, not scalar or not a number.

  Schedules and traced values (under `jit`, `vmap` or `optax.inject_hyperparams`) cannot be
  inspected at construction and are accepted as they are.
  """
  if callable(rate) or isinstance(rate, Tracer):
    return
  if isinstance(rate, (bool, np.bool_)) or getattr(rate, "dtype", None) == np.bool_:
    raise TypeError(f"{owner}: {name} must be a number or a schedule, got the boolean {rate!r}.")
  if not isinstance(rate, (int, float, np.generic, np.ndarray, jax.Array)):
    raise TypeError(
      f"{owner}: {name} must be a float, a scalar array or a schedule (a callable of the "
      f"step count), got {_describe(rate)}."
    )
  if np.ndim(rate) != 0:
    raise ValueError(f"{owner}: {name} must be a scalar, got an array of shape {np.shape(rate)}.")
  if np.iscomplexobj(rate):
    raise TypeError(f"{owner}: {name} must be real, got {rate!r}.")
  value = float(rate)
  if not math.isfinite(value):
    raise ValueError(f"{owner}: {name} must be finite, got {value}.")
  if value < 0:
    raise ValueError(f"{owner}: {name} must be non-negative, got {value}.")
  if positive and value == 0:
    raise ValueError(f"{owner}: {name} must be positive, got {value}.")


def check_number(value: Any, name: str, owner: str, *, positive: bool = False) -> None:
  """`check_rate` for an argument that may not be a schedule (betas, eps, momentum, ...)."""
  if callable(value):
    raise TypeError(f"{owner}: {name} must be a number, not a schedule.")
  check_rate(value, name, owner, positive=positive)


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
