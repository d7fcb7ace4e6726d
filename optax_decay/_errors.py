"""Errors and warnings that name the function the user called and point at the user's line.

A public function is decorated with :func:`public`. While it runs, and while the ``init`` and
``update`` of the transform it returns run, :func:`named` prefixes messages with its name: a
bad argument of ``adamwr`` says ``adamwr: ...`` even when the check sits in a building block
that ``adamw``, ``sgdw`` and ``scale_by_learning_rate_and_decay`` share. When public functions
call one another, the outermost one names the error. Warnings are attributed to the first stack
frame outside the libraries between the user and the check (optax.chain, nnx.Optimizer, jit).
"""

from __future__ import annotations

import contextvars
import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import optax

_CALLED: contextvars.ContextVar[str | None] = contextvars.ContextVar("called", default=None)

F = TypeVar("F", bound=Callable[..., Any])


def called() -> str:
  """The name of the public function the user called."""
  return _CALLED.get() or "optax_decay"


def named(message: str) -> str:
  """`message` prefixed by the name of the public function the user called."""
  return f"{called()}: {message}"


def public(fn: F) -> F:
  """Marks `fn` as the function errors and warnings name, in it and in the transform it returns."""
  name = fn.__name__

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    if _CALLED.get() is not None:  # called by another public function: that one is named
      return fn(*args, **kwargs)
    result = _within(name, fn, *args, **kwargs)
    if isinstance(result, optax.GradientTransformation):
      return _naming(result, name)
    return result

  return wrapper  # type: ignore[return-value]


def _within(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
  token = _CALLED.set(name)
  try:
    return fn(*args, **kwargs)
  finally:
    _CALLED.reset(token)


def _naming(tx: optax.GradientTransformation, name: str) -> optax.GradientTransformation:
  """`tx` whose `init` and `update` run with `name` as the function errors name."""

  def init_fn(params):
    return _within(name, tx.init, params)

  if isinstance(tx, optax.GradientTransformationExtraArgs):

    def update_extra(updates, state, params=None, **extra_args):
      return _within(name, tx.update, updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init_fn, update_extra)

  def update_fn(updates, state, params=None):
    return _within(name, tx.update, updates, state, params)

  return optax.GradientTransformation(init_fn, update_fn)


# Packages whose frames lie between the user's call and a warning: `tx.init(params)` reaches us
# through optax.chain, nnx.Optimizer, jax.jit, ... A frame in any of them is skipped.
_LIBRARIES = ("optax_decay", "optax", "jax", "jaxlib", "flax", "equinox", "chex", "orbax")


def _library_dirs() -> tuple[str, ...]:
  dirs = []
  for name in _LIBRARIES:
    path = getattr(sys.modules.get(name), "__file__", None)
    if path:
      dirs.append(os.path.dirname(path) + os.sep)
  return tuple(dirs)


def warn(message: str) -> None:
  """A `UserWarning` named like an error and attributed to the user's own line."""
  dirs = _library_dirs()
  frame, level = sys._getframe(1), 1
  while frame is not None and frame.f_code.co_filename.startswith((*dirs, "<frozen")):
    frame, level = frame.f_back, level + 1
  warnings.warn(named(message), UserWarning, stacklevel=level + 1)
