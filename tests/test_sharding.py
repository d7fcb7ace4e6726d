"""Sharded parameters on a mesh of 8 simulated CPU devices, and updates inside `shard_map`.

The device count is fixed when JAX starts (XLA_FLAGS=--xla_force_host_platform_device_count=8),
and pytest has imported JAX long before this file runs. So the checks run in a child process:
this file, executed as a script, runs every check and prints one JSON line of results; the
tests below start it once and each asserts on its own entry.
"""

import json
import os
import subprocess
import sys
import traceback
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_decay

DEVICES = 8
MARKER = "SHARDING-RESULTS:"

# One child process runs every check (a minute or more on 2 cores): a CI step of its own.
pytestmark = pytest.mark.slow

SHAPES = {"w": (8, 6), "emb": (16, 4), "b": (6,), "scale": (5,)}  # distinct, to match by shape
SPECS = {"w": ("data", "model"), "emb": ("data", None), "b": ("model",), "scale": ()}
MASK = {"w": True, "emb": True, "b": False, "scale": False}

# Elementwise optimizers: every output coordinate depends on the same coordinate of the inputs
# only, so running them shard by shard gives the global result.
ELEMENTWISE = (
  "adamw",
  "sgdw",
  "decay_to_anchor",
  "decay_to_anchor_host",
  "proximal_l1",
  "compensated_summation",
)
# Optimizers whose step depends on a sum over all parameters.
REDUCING = ("adams",)


def _transforms():
  """name -> (transform, parameter dtype)."""
  lr = optax.linear_schedule(0.1, 0.05, transition_steps=4)
  return {
    "adamw": (optax_decay.adamw(lr, weight_decay=0.1, mask=MASK), jnp.float32),
    "adam_l2": (optax_decay.adam_l2(lr, l2=0.1, mask=MASK), jnp.float32),
    "sgdw": (optax_decay.sgdw(lr, 0.9, 0.1, MASK), jnp.float32),
    "sgd_l2": (optax_decay.sgd_l2(lr, 0.9, 0.1, MASK), jnp.float32),
    # Not elementwise: the decay is divided by a mean over every parameter, an all-reduce.
    "adams": (optax_decay.adams(lr, weight_decay=0.1, mask=MASK), jnp.float32),
    "decay_to_anchor": (
      optax.chain(
        optax.scale_by_adam(),
        optax_decay.decay_to_anchor(0.1, mask=MASK),
        optax.scale_by_learning_rate(lr),
      ),
      jnp.float32,
    ),
    # An anchor given as host (NumPy) arrays is laid out like the parameters at init.
    "decay_to_anchor_host": (
      optax.chain(
        optax.scale_by_adam(),
        optax_decay.decay_to_anchor(
          0.1, anchor={k: np.full(s, 0.5, np.float32) for k, s in SHAPES.items()}, mask=MASK
        ),
        optax.scale_by_learning_rate(lr),
      ),
      jnp.float32,
    ),
    "proximal_l1": (
      optax.chain(optax.sgd(lr), optax_decay.proximal_l1(0.05, MASK, learning_rate=lr)),
      jnp.float32,
    ),
    "compensated_summation": (
      optax.chain(optax_decay.sgdw(0.1, 0.9, 0.1, MASK), optax_decay.compensated_summation()),
      jnp.bfloat16,
    ),
  }


NAMES = sorted(_transforms())
CHECKS = (
  [f"init_sharding/{n}" for n in NAMES]
  + [f"update_sharding/{n}" for n in NAMES]
  + [f"single_device/{n}" for n in NAMES]
  + [f"shard_map/{n}" for n in ELEMENTWISE]
)


# --- the child process ----------------------------------------------------------------------


def _mesh():
  from jax.sharding import Mesh

  return Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))


def _specs():
  from jax.sharding import PartitionSpec

  return {k: PartitionSpec(*v) for k, v in SPECS.items()}


def _values(dtype, seed):
  rng = np.random.default_rng(seed)
  return {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in SHAPES.items()}


def _place(tree, mesh):
  from jax.sharding import NamedSharding

  specs = _specs()
  return {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in tree.items()}


def _assert_sharded_like_params(tree, params, what, scalars_replicated=True):
  by_shape = {p.shape: (k, p.sharding) for k, p in params.items()}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    where = f"{what}{jax.tree_util.keystr(path)}"
    if leaf.ndim == 0:
      if scalars_replicated:
        assert leaf.sharding.is_fully_replicated, f"{where}: {leaf.sharding}"
      continue
    assert leaf.shape in by_shape, f"{where}: no parameter has shape {leaf.shape}"
    name, sharding = by_shape[leaf.shape]
    assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), (
      f"{where} is laid out as {leaf.sharding}, the parameter {name!r} as {sharding}"
    )


def _run(tx, params, grads, steps=3):
  update = jax.jit(tx.update)
  state = tx.init(params)
  out = []
  for k in range(steps):
    g = jax.tree.map(lambda x, k=k: (x * (k + 1)).astype(x.dtype), grads)
    updates, state = update(g, state, params)
    params = optax.apply_updates(params, updates)
    out.append((updates, state, params))
  return out


def _assert_same_numbers(a, b, what, rtol=0.0):
  for (path, x), y in zip(
    jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b), strict=True
  ):
    where = f"{what}{jax.tree_util.keystr(path)}"
    if rtol:
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, err_msg=where)
    else:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=where)


def _shard_map():
  if hasattr(jax, "shard_map"):
    return jax.shard_map
  from jax.experimental.shard_map import shard_map

  return shard_map


def _state_specs(state, params):
  """A PartitionSpec for every state leaf: its parameter's, matched by shape; P() for scalars."""
  from jax.sharding import PartitionSpec

  specs = _specs()
  by_shape = {p.shape: specs[k] for k, p in params.items()}
  return jax.tree.map(lambda x: by_shape[x.shape] if x.ndim else PartitionSpec(), state)


def check(name, kind, mesh):
  tx, dtype = _transforms()[name]
  params, grads = _place(_values(dtype, 0), mesh), _place(_values(dtype, 1), mesh)
  if kind == "init_sharding":
    # Eager init, as training loops do; a step count may stay on one device until the
    # first update.
    _assert_sharded_like_params(tx.init(params), params, "init state", scalars_replicated=False)
  elif kind == "update_sharding":
    for k, (updates, state, new_params) in enumerate(_run(tx, params, grads)):
      _assert_sharded_like_params(updates, params, f"step {k} updates")
      _assert_sharded_like_params(state, params, f"step {k} state")
      _assert_sharded_like_params(new_params, params, f"step {k} params")
  elif kind == "single_device":
    device = jax.devices()[0]
    local = jax.device_put((_values(dtype, 0), _values(dtype, 1)), device)
    sharded, single = _run(tx, params, grads), _run(tx, *local)
    # A sum over every parameter is added up in another order when it is split across devices:
    # the same number to float32 rounding, not to the bit.
    rtol = 1e-5 if name in REDUCING else 0.0
    for k, (a, b) in enumerate(zip(sharded, single, strict=True)):
      _assert_same_numbers(a, b, f"step {k} (updates, state, params)", rtol)
  elif kind == "shard_map":
    state = tx.init(params)
    specs, state_specs = _specs(), _state_specs(state, params)
    per_shard = _shard_map()(
      tx.update,
      mesh=mesh,
      in_specs=(specs, state_specs, specs),
      out_specs=(specs, state_specs),
    )
    local, whole = jax.jit(per_shard), jax.jit(tx.update)
    local_state, whole_state = state, state
    for k in range(3):
      g = jax.tree.map(lambda x, k=k: (x * (k + 1)).astype(x.dtype), grads)
      local_updates, local_state = local(g, local_state, params)
      whole_updates, whole_state = whole(g, whole_state, params)
      _assert_same_numbers(local_updates, whole_updates, f"step {k} updates")
      _assert_same_numbers(local_state, whole_state, f"step {k} state")
      _assert_sharded_like_params(local_updates, params, f"step {k} shard_map updates")
      params = optax.apply_updates(params, whole_updates)
  else:
    raise ValueError(kind)


def main():
  warnings.simplefilter("error")
  assert jax.device_count() == DEVICES, jax.devices()
  mesh = _mesh()
  results = {}
  for entry in CHECKS:
    kind, name = entry.split("/")
    try:
      check(name, kind, mesh)
      results[entry] = "ok"
    except Exception:  # noqa: BLE001 - reported to the parent test, which fails with it
      results[entry] = traceback.format_exc(limit=4)
  print(MARKER + json.dumps(results), flush=True)


# --- the tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results():
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}")
  env["JAX_PLATFORMS"] = "cpu"
  done = subprocess.run(
    [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=540
  )
  lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
  assert done.returncode == 0 and lines, (
    f"the sharding child process failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
  )
  return json.loads(lines[-1][len(MARKER) :])


@pytest.mark.parametrize("entry", CHECKS)
def test_sharded(results, entry):
  assert results[entry] == "ok", results[entry]


def test_every_check_ran(results):
  assert sorted(results) == sorted(CHECKS)


if __name__ == "__main__":
  main()
