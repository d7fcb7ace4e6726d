"""Plain helper functions shared by the test modules (import with `from helpers import ...`)."""

from __future__ import annotations

import functools
import importlib.metadata

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from packaging.version import Version

try:
  enable_x64 = jax.enable_x64  # jax>=0.8
except AttributeError:  # jax<0.8: the same context manager, jax.experimental's (deprecated in 0.8)
  from jax.experimental import enable_x64


# --- the lowest versions pyproject.toml allows (.ci/lowest) ------------------------------------


def skip_before(package, minimum, why):
  """Skips the calling test where `package` is older than `minimum`; `why`: what older ones lack.

  Only for a test whose *reference* needs the newer version (optax's own feature it compares
  against, a property of a newer XLA); what the package needs is its lower bound in pyproject.toml.
  """
  if Version(importlib.metadata.version(package)) < Version(minimum):
    pytest.skip(f"needs {package}>={minimum}: {why}")


def nnx_list(modules):
  """A list of Flax NNX modules as a module attribute: `nnx.List` (flax>=0.12, which requires it
  there), or a plain list on flax 0.11, which has no `nnx.List` and takes one."""
  from flax import nnx

  return nnx.List(modules) if hasattr(nnx, "List") else list(modules)


def needs_optax_decay_schedules():
  """Skips the calling test where optax's own weight_decay cannot be a schedule (before 0.2.7)."""
  skip_before(
    "optax",
    "0.2.7",
    "optax's own weight_decay as a schedule (0.2.5 takes none; 0.2.6 takes one but never steps "
    "it, holding the step-0 value)",
  )


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


def assert_histories_close(got, want, rtol, atol=0.0, dtype=None):
  """`assert_trees_close` step by step over two parameter histories of the same length.

  With `dtype`, every leaf of `got` must also have that dtype (a run meant to be in float64
  that silently ran in float32 would otherwise pass a loose tolerance unnoticed).
  """
  assert len(got) == len(want), f"{len(got)} steps vs {len(want)}"
  for step, (g, w) in enumerate(zip(got, want, strict=True)):
    if dtype is not None:
      assert all(x.dtype == dtype for x in jax.tree.leaves(g)), f"step {step}: not {dtype}"
    try:
      assert_trees_close(g, w, rtol=rtol, atol=atol)
    except AssertionError as error:
      raise AssertionError(f"at step {step}: {error}") from None


def assert_histories_equal(got, want):
  """`assert_trees_equal` step by step over two parameter histories of the same length."""
  assert len(got) == len(want), f"{len(got)} steps vs {len(want)}"
  for step, (g, w) in enumerate(zip(got, want, strict=True)):
    try:
      assert_trees_equal(g, w)
    except AssertionError as error:
      raise AssertionError(f"at step {step}: {error}") from None


def assert_trees_equal(a, b):
  """Leafwise bitwise equality (same structure, shape and dtype; NaNs must match)."""
  for x, y in _paired_leaves(a, b):
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape, f"shapes differ: {x.shape} vs {y.shape}"
    assert x.dtype == y.dtype, f"dtypes differ: {x.dtype} vs {y.dtype}"
    np.testing.assert_array_equal(x, y)


class LeastSquares:
  """A small linear least-squares problem with its loss in JAX and its gradient in NumPy.

  loss(p) = 1/(2n) · Σ_i ||x_i W + b - y_i||², params `{"w": (d, k), "b": (k,)}`. The NumPy
  gradient is written out by hand so references built on it do not go through JAX.
  """

  def __init__(self, seed=0, n=8, d=4, k=2):
    rng = np.random.default_rng(seed)
    self.x = rng.normal(size=(n, d))
    self.y = rng.normal(size=(n, k))
    self.init = {"w": rng.normal(size=(d, k)), "b": rng.normal(size=(k,))}

  def params(self, dtype):
    """The initial parameters as JAX arrays of `dtype`."""
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), self.init)

  def loss(self, params):
    """The loss in JAX (differentiable with `jax.grad`)."""
    dtype = params["w"].dtype
    r = jnp.asarray(self.x, dtype) @ params["w"] + params["b"] - jnp.asarray(self.y, dtype)
    return 0.5 * (r**2).sum() / self.x.shape[0]

  @functools.cached_property
  def grad(self):
    """`jax.grad(loss)`, compiled once, so that runs without jit time the optimizer alone."""
    return jax.jit(jax.grad(self.loss))

  def grad_np(self, params):
    """The gradient of `loss`, by hand, in NumPy."""
    n = self.x.shape[0]
    x = self.x.astype(params["w"].dtype)
    r = x @ params["w"] + params["b"] - self.y.astype(params["w"].dtype)
    return {"w": x.T @ r / n, "b": r.sum(axis=0) / n}


def run_optimizer(tx, grad_fn, params, steps, jit=True):
  """Applies `tx` for `steps` steps from `params`, with gradients `grad_fn(params)`.

  Returns the list of parameter pytrees after each step (length `steps`).
  """

  def step(params, state):
    updates, state = tx.update(grad_fn(params), state, params)
    return optax.apply_updates(params, updates), state

  if jit:
    step = jax.jit(step)
  state = tx.init(params)
  history = []
  for _ in range(steps):
    params, state = step(params, state)
    history.append(params)
  return history


def run_float64(tx, problem, steps, jit=True):
  """`run_optimizer` on a `LeastSquares` problem in float64, with the gradient of its loss."""
  with enable_x64(True):
    return run_optimizer(tx, problem.grad, problem.params(jnp.float64), steps, jit)
