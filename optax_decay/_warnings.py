"""Warnings that point at the user's line, not at the library frame that raised them."""

from __future__ import annotations

import os
import sys
import warnings

# Packages whose frames lie between the user's call and our warning: `tx.init(params)` reaches
# us through optax.chain, nnx.Optimizer, jax.jit, ... A frame in any of them is skipped.
_LIBRARIES = ("optax_decay", "optax", "jax", "jaxlib", "flax", "equinox", "chex", "orbax")


def _library_dirs() -> tuple[str, ...]:
  dirs = []
  for name in _LIBRARIES:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if path:
      dirs.append(os.path.dirname(path) + os.sep)
  return tuple(dirs)


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
  """`warnings.warn` attributed to the first frame outside the libraries above."""
  dirs = _library_dirs()
  frame, level = sys._getframe(1), 1
  while frame is not None and (
    frame.f_code.co_filename.startswith(dirs) or frame.f_code.co_filename.startswith("<frozen")
  ):
    frame, level = frame.f_back, level + 1
  warnings.warn(message, category, stacklevel=level + 1)
