"""Shared pytest setup: small fixtures.

`tests/` and the repository's root are on `sys.path` through pytest's `pythonpath` option
(pyproject.toml), so the test modules import `helpers`, `references` and `benchmarks` directly.

XLA compiles the tests' many small programs with LLVM's optimizations off
(`--xla_backend_optimization_level=0`): the suite's CPU time drops by a fifth (442 s to 364 s
user time on 2 cores) and no outcome changes, since every comparison is between programs
compiled alike and no optimization level changes IEEE arithmetic. XLA's own graph optimizations
(fusion, simplification) still run, so the HLO the same-program tests compare is unaffected.
`OPTAX_DECAY_TEST_FAST_COMPILE=0` keeps XLA's default, as CI's slow-check step and its
lowest-versions run do; an optimization level already in `XLA_FLAGS` is kept too.
"""

import os

if os.environ.get("OPTAX_DECAY_TEST_FAST_COMPILE", "1") != "0":
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_backend_optimization_level" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()

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
