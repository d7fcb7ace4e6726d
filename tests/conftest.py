"""Shared pytest setup: small fixtures.

`tests/` and the repository's root are on `sys.path` through pytest's `pythonpath` option
(pyproject.toml), so the test modules import `helpers`, `references` and `benchmarks` directly.

The tests' many small programs are compiled with LLVM's optimizations off
(`--xla_backend_optimization_level=0`) and run without Eigen's thread pool (the pytest-xdist
workers already fill the cores, and tiny arrays gain nothing from threads). No outcome changes:
every comparison is between programs compiled and run alike, and neither setting changes IEEE
arithmetic; XLA's graph optimizations (fusion, simplification) still run, so the HLO the
same-program tests compare is unaffected.
`OPTAX_DECAY_TEST_FAST_COMPILE=0` keeps XLA's defaults, as CI's slow-check step and its
lowest-versions run do; a setting already in `XLA_FLAGS` is kept.
"""

import os

FAST_COMPILE = {
  "--xla_backend_optimization_level": "0",
  "--xla_cpu_multi_thread_eigen": "false",
}
if os.environ.get("OPTAX_DECAY_TEST_FAST_COMPILE", "1") != "0":
  flags = os.environ.get("XLA_FLAGS", "")
  added = [f"{name}={value}" for name, value in FAST_COMPILE.items() if name not in flags]
  os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()

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
