"""Shared pytest setup: small fixtures.

`tests/` and the repository's root are on `sys.path` through pytest's `pythonpath` option
(pyproject.toml), so the test modules import `helpers`, `references` and `benchmarks` directly.

The tests' many small programs are compiled for speed, not for run time: most run a few steps
on arrays of a dozen numbers, and the default run's time goes mostly into compiling them. On this
project's 2-core machine (jax 0.10.2) `time python -m pytest -q` took 3:53 with XLA's defaults and
1:54 with the settings below (same 2,150 tests):

- `--xla_backend_optimization_level=0`: LLVM's optimization passes off;
- `--xla_cpu_use_fusion_emitters=false`: XLA's element-wise loop emitter for fusions instead of
  the newer fusion emitters, which take about 2.5 times longer to compile a small program (the
  largest single saving);
- `--xla_cpu_parallel_codegen_split_count=1`: one LLVM module per program, not several compiled
  on threads;
- `--xla_cpu_multi_thread_eigen=false`: no Eigen thread pool (the pytest-xdist workers already
  fill the cores, and tiny arrays gain nothing from threads).

They act after XLA's graph optimizations: the optimized HLO that the same-program tests compare
is the same with and without them (checked for adamw, optax.adamw and sgd_l2). Bitwise
comparisons are between programs compiled alike, and CI runs the same tests once more with
XLA's defaults (`OPTAX_DECAY_TEST_FAST_COMPILE=0`, as are its slow-check and lowest-versions
steps), so no outcome rests on these settings. They apply from jaxlib 0.10.2, where CI runs the
suite both ways; older ones compile with XLA's defaults (at jaxlib 0.6.0, LLVM at level 0 left
`sgd_l2(momentum=0)` and `sgdw` one float32 ulp apart in one element after 30 scheduled steps,
where the default level keeps them bit for bit). A flag already in `XLA_FLAGS` is kept. XLA
aborts the process on a flag it does not know, so the flags are first tried in a child process
(about 2 s, once per run: pytest-xdist's workers inherit the result) and left out, said at the
end of the run, if a future jaxlib rejects them.
"""

import importlib.metadata
import os
import subprocess
import sys

from packaging.version import Version

FAST_COMPILE = {
  "--xla_backend_optimization_level": "0",
  "--xla_cpu_use_fusion_emitters": "false",
  "--xla_cpu_parallel_codegen_split_count": "1",
  "--xla_cpu_multi_thread_eigen": "false",
}
FAST_COMPILE_SINCE = "0.10.2"  # the jaxlib the suite was first run on both ways
_NOT_APPLIED = []  # why the settings were left out, for the end of the run


def _xla_rejects(flags):
  """XLA's last line of complaint if a CPU client does not start with `flags`, else None."""
  probe = subprocess.run(
    [sys.executable, "-c", "import jax; jax.devices()"],
    env={**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"},
    capture_output=True,
    text=True,
  )
  return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


def _apply_fast_compile():
  """Adds `FAST_COMPILE` to `XLA_FLAGS` where it is safe; otherwise says why in `_NOT_APPLIED`."""
  jaxlib = importlib.metadata.version("jaxlib")
  if Version(jaxlib) < Version(FAST_COMPILE_SINCE):
    _NOT_APPLIED.append(
      f"jaxlib {jaxlib} is older than {FAST_COMPILE_SINCE}: this run compiled with XLA's "
      "defaults (slower, same checks)."
    )
    return
  flags = os.environ.get("XLA_FLAGS", "")
  added = [f"{name}={value}" for name, value in FAST_COMPILE.items() if name not in flags]
  if not added:
    return
  combined = " ".join([flags, *added]).strip()
  rejected = _xla_rejects(combined)
  if rejected is None:
    os.environ["XLA_FLAGS"] = combined
  else:
    _NOT_APPLIED.append(
      f"XLA did not start with the tests' compile-time settings {added} ({rejected}); this "
      "run compiled with XLA's defaults (slower, same checks)."
    )


if os.environ.get("OPTAX_DECAY_TEST_FAST_COMPILE", "1") != "0":
  _apply_fast_compile()
  # pytest-xdist's workers inherit this environment: they need not decide again.
  os.environ["OPTAX_DECAY_TEST_FAST_COMPILE"] = "0"


def pytest_terminal_summary(terminalreporter):
  for message in _NOT_APPLIED:
    terminalreporter.write_line(message, yellow=True)


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
