"""Plain helper functions shared by the test modules (import with `from helpers import ...`)."""

from __future__ import annotations

import jax
import numpy as np


def to_numpy(tree):
  """`tree` with every array leaf converted to a NumPy array."""
  return jax.tree.map(np.asarray, tree)


def _paired_leaves(a, b):
  leaves_a, treedef_a = jax.tree.flatten(a)
  leaves_b, treedef_b = jax.tree.flatten(b)
  assert treedef_a == treedef_b, f"tree structures differ: {treedef_a} vs {treedef_b}"
  return zip(leaves_a, leaves_b, strict=True)


def assert_trees_close(a, b, rtol=1e-6, atol=0.0):
  """Leafwise `np.testing.assert_allclose` with identical structures, shapes and dtypes."""
  for x, y in _paired_leaves(a, b):
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape, f"shapes differ: {x.shape} vs {y.shape}"
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def assert_trees_equal(a, b):
  """Leafwise bitwise equality (same structure, shape and dtype; NaNs must match)."""
  for x, y in _paired_leaves(a, b):
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape, f"shapes differ: {x.shape} vs {y.shape}"
    assert x.dtype == y.dtype, f"dtypes differ: {x.dtype} vs {y.dtype}"
    np.testing.assert_array_equal(x, y)
