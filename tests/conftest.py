"""Shared pytest setup: small fixtures.

`tests/` and the repository's root are on `sys.path` through pytest's `pythonpath` option
(pyproject.toml), so the test modules import `helpers`, `references` and `benchmarks` directly.
"""

import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture
def small_params():
  """A small parameter pytree: a kernel, a bias and a nested scale, all float32."""
  rng = np.random.default_rng(0)
  return {
    "w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
    "b": jnp.asarray(rng.normal(size=(2,)), jnp.float32),
    "norm": {"scale": jnp.asarray(1.0 + 0.1 * rng.normal(size=(2,)), jnp.float32)},
  }
