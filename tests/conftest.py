"""Shared pytest setup: makes `tests/helpers.py` importable and provides small fixtures."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def small_params():
  """A small parameter pytree: a kernel, a bias and a nested scale, all float32."""
  rng = np.random.default_rng(0)
  return {
    "w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
    "b": jnp.asarray(rng.normal(size=(2,)), jnp.float32),
    "norm": {"scale": jnp.asarray(1.0 + 0.1 * rng.normal(size=(2,)), jnp.float32)},
  }
