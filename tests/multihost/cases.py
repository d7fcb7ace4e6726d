"""What the multi-process runs train and compare: the parameters, their layouts, the optimizers.

Every process builds the same global arrays from a seed, each only the slices its devices hold
(`jax.make_array_from_callback` with a value that is a function of the global index). The
single-device reference runs on the whole arrays, on one CPU device of a plain process
(`write_references`). A check compares each of a process's shards, bit for bit, with the same
slice of the reference.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import optax_decay

# The leading dimensions divide by 8 (4 processes x 2 devices); `scale` divides by nothing and
# stays replicated, as a norm's scale usually is.
SHAPES = {
  "dense": {"kernel": (64, 32), "bias": (32,)},
  "embed": {"embedding": (128, 16)},
  "norm": {"scale": (5,)},
}
# The 2-D mesh: 'data' across processes, 'model' across the two devices of each process.
SPECS_2D = {
  "dense": {"kernel": P("data", "model"), "bias": P("model")},
  "embed": {"embedding": P("data", None)},
  "norm": {"scale": P()},
}
# The mesh axes that run across processes: a leaf split along one is split between processes.
PROCESS_AXES = ("fsdp", "data")
STEPS = 3  # the equivalence runs
TRAIN_STEPS = 8  # the checkpointed runs
# optax_decay.decay_mask decays dense/kernel only: not the bias, the embedding or the norm.
MASK = optax_decay.decay_mask


def _schedule():
  return optax.linear_schedule(0.1, 0.02, transition_steps=10)


def _adamw():
  decay = optax.linear_schedule(0.1, 0.05, transition_steps=10)
  return optax_decay.adamw(_schedule(), weight_decay=decay, mask=MASK)


def _anchor():
  # The anchor is the parameters given to init: under jit, a sharded copy made by each device.
  return optax.chain(
    optax.scale_by_adam(),
    optax_decay.decay_to_anchor(0.1, mask=MASK),
    optax.scale_by_learning_rate(_schedule()),
  )


def _compensated():
  # lr·λ = 1e-4 per step, below half a bfloat16 ulp: only the carried error makes it act.
  return optax.chain(
    optax_decay.sgdw(_schedule(), 0.9, weight_decay=1e-3, mask=MASK),
    optax_decay.compensated_summation(),
  )


# name -> (factory, parameter dtype)
TRANSFORMS = {
  "adamw": (_adamw, jnp.float32),
  "sgdw": (lambda: optax_decay.sgdw(_schedule(), 0.9, 0.1, MASK), jnp.float32),
  "adam_l2": (lambda: optax_decay.adam_l2(_schedule(), l2=0.1, mask=MASK), jnp.float32),
  "adams": (lambda: optax_decay.adams(_schedule(), weight_decay=0.1, mask=MASK), jnp.float32),
  "compensated_summation": (_compensated, jnp.bfloat16),
  "decay_to_anchor": (_anchor, jnp.float32),
  "rmsprop_decoupled": (
    lambda: optax_decay.with_decoupled_decay(optax.rmsprop)(
      _schedule(), weight_decay=0.1, mask=MASK
    ),
    jnp.float32,
  ),
}


def _anchor_compensated():
  # Everything a state can hold: moments, a step count, the anchor copy, bf16 rounding errors.
  return optax.chain(
    optax.scale_by_adam(),
    optax_decay.decay_to_anchor(0.1, mask=MASK),
    optax.scale_by_learning_rate(_schedule()),
    optax_decay.compensated_summation(),
  )


# What the checkpoint tests train: elementwise, so that any process count gives the same bits.
CHECKPOINT_TRANSFORMS = {
  "adamw": TRANSFORMS["adamw"],
  "anchor_compensated": (_anchor_compensated, jnp.bfloat16),
}
# Every case by name: what the single-device reference runs (`write_references`).
ALL_CASES = {**TRANSFORMS, **CHECKPOINT_TRANSFORMS}
# AdamS divides its decay by a mean over every parameter: an all-reduce across processes, whose
# float32 sum is added up in another order than on one device. What depends on that mean (the
# scalar itself, the updates, the parameters after the first step) is compared within
# REDUCTION_RTOL; Adam's moments and the step counts do not depend on it and stay bit for bit.
REDUCING = ("adams",)
_INDEPENDENT_OF_THE_MEAN = (".mu", ".nu", ".count")
SIZE = sum(int(np.prod(s)) for s in jax.tree.leaves(SHAPES, is_leaf=lambda x: isinstance(x, tuple)))
# The tolerance: adding n non-negative float32 numbers in any order is within (n - 1)·2^-24 of the
# exact sum, relative to it (Higham, Accuracy and Stability of Numerical Algorithms, eq. 4.4), so
# two orders agree within 2(n - 1)·2^-24, 4.9e-4 for the n = 4133 squared gradients here. The
# division by n and the moving average add a few roundings of 2^-24 each, and the square root
# halves the relative error it receives, so λ·w/√v̄ carries less than that bound. Each update and
# parameter holds that term scaled by lr (plus terms computed identically, whose rounding can
# flip by one ulp when an input moves): its error is below the bound times the leaf's largest
# magnitude. Elementwise relative error is not bounded (Adam's step and the decay may cancel in
# one coordinate), hence rtol·max|leaf|. The runs agree far closer than this worst case: the
# largest difference is recorded in the metrics (1.3e-7, one float32 ulp, when last measured).
REDUCTION_RTOL = 2 * (SIZE - 1) * 2.0**-24


# --- the arrays --------------------------------------------------------------------------------


def _hash_uniform(flat_index: np.ndarray, seed: int) -> np.ndarray:
  """splitmix64 of (index, seed) mapped to [-0.5, 0.5) with 24 bits: exact in float32."""
  with np.errstate(over="ignore"):
    x = flat_index.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
  return (x >> np.uint64(40)).astype(np.float64) / 2.0**24 - 0.5


def block(shape, index, seed: int, dtype) -> np.ndarray:
  """The slice `index` of the global array `seed` of `shape`, computed without the rest of it."""
  ranges = [np.arange(*s.indices(n)) for s, n in zip(index, shape, strict=True)]
  flat = np.ravel_multi_index(np.meshgrid(*ranges, indexing="ij"), shape)
  return _hash_uniform(flat, seed).astype(dtype)


def _whole(shape) -> tuple[slice, ...]:
  return tuple(slice(None) for _ in shape)


def host_tree(seed: int, dtype) -> Any:
  """The whole arrays, as NumPy: what the single-device reference starts from."""
  leaves, treedef = shape_leaves()
  return treedef.unflatten([block(s, _whole(s), seed + i, dtype) for i, s in enumerate(leaves)])


def global_tree(seed: int, dtype, shardings, requests: list | None = None) -> Any:
  """The same arrays as `host_tree`, built shard by shard.

  `requests` collects (shape, slice, replicated) for every slice this process was asked for.
  """
  leaves, treedef = shape_leaves()
  out = []
  for i, (shape, sharding) in enumerate(zip(leaves, jax.tree.leaves(shardings), strict=True)):

    def callback(index, shape=shape, i=i, replicated=sharding.is_fully_replicated):
      if requests is not None:
        requests.append((shape, index, replicated))
      return block(shape, index, seed + i, dtype)

    out.append(jax.make_array_from_callback(shape, sharding, callback))
  return treedef.unflatten(out)


def shape_leaves():
  return jax.tree.flatten(SHAPES, is_leaf=lambda x: isinstance(x, tuple))


# --- meshes and layouts ------------------------------------------------------------------------


def _devices_by_process() -> np.ndarray:
  """Devices as a (processes, local devices) grid, each row one process's."""
  devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  grid = np.array(devices).reshape(jax.process_count(), -1)
  assert all(len({d.process_index for d in row}) == 1 for row in grid), grid
  return grid


def fsdp_spec(shape, axis_size: int) -> P:
  """FSDP: split the leading dimension over every device when it divides; replicate otherwise."""
  if shape and shape[0] % axis_size == 0:
    return P("fsdp", *([None] * (len(shape) - 1)))
  return P()


def layout(kind: str) -> tuple[Mesh, Any]:
  """The mesh and the parameters' NamedShardings: 'fsdp' (1-D, all devices) or '2d'."""
  grid = _devices_by_process()
  if kind == "fsdp":
    mesh = Mesh(grid.reshape(-1), ("fsdp",))
    specs = jax.tree.map(
      lambda s: fsdp_spec(s, grid.size), SHAPES, is_leaf=lambda x: isinstance(x, tuple)
    )
  elif kind == "2d":
    mesh = Mesh(grid, ("data", "model"))
    specs = SPECS_2D
  else:
    raise ValueError(kind)
  return mesh, jax.tree.map(lambda s: NamedSharding(mesh, s), specs)


def state_shardings(tx, abstract_state, param_shardings, mesh) -> Any:
  """Each copy of the parameters in the state takes their layout; everything else is replicated."""
  replicated = NamedSharding(mesh, P())
  return optax.tree_utils.tree_map_params(
    tx,
    lambda leaf, sharding: leaf if isinstance(leaf, optax.MaskedNode) else sharding,
    abstract_state,
    param_shardings,
    transform_non_params=lambda leaf: jax.tree.map(lambda _: replicated, leaf),
    is_leaf=lambda x: isinstance(x, optax.MaskedNode),
  )


def compiled_init(tx, params, mesh):
  """`tx.init` compiled under jit for `params`, its outputs laid out like the parameters.

  Each device computes its own slice of the state: no process holds a whole copy of anything
  the parameters shard, even for a moment (`.memory_analysis()` of the result says how much).
  """
  shardings = state_shardings(
    tx, jax.eval_shape(tx.init, params), jax.tree.map(lambda p: p.sharding, params), mesh
  )
  return jax.jit(tx.init, out_shardings=shardings).lower(params).compile()


def sharded_init(tx, params, mesh):
  return compiled_init(tx, params, mesh)(params)


# --- runs and comparisons ----------------------------------------------------------------------


def grads_seed(step: int) -> int:
  return 1000 + 10 * step


def train_step(tx):
  """One step as a training loop jits it: the update, the new parameters, and a global number.

  The global norm of the updates stands for the loss a loop logs: an all-reduce over every
  process, so that every step waits for all of them. The single-device reference runs this same
  function: XLA may fuse `p + u` differently when the update and its application are compiled
  apart, which changes the last bit.
  """

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return updates, state, optax.apply_updates(params, updates), optax.tree.norm(updates)

  return step


def tolerance(name: str):
  """The `rtol` of `compare_shards` for case `name`: 0 (bit for bit), or a function of the path."""
  if name not in REDUCING:
    return 0.0
  return lambda path: 0.0 if any(k in path for k in _INDEPENDENT_OF_THE_MEAN) else REDUCTION_RTOL


def reference_run(tx, dtype, steps: int = STEPS) -> tuple[Any, list]:
  """The initial state, and (updates, state, params) after each step, on one device only.

  The device is this process's first. A launch's processes read it from the file that
  `write_references` wrote in a process of its own (or, without one, each computes it itself).
  """
  device = jax.local_devices()[0]
  params = jax.device_put(host_tree(0, dtype), device)
  step = jax.jit(train_step(tx))
  state = tx.init(params)
  init_state = jax.device_get(state)
  out = []
  for k in range(steps):
    grads = jax.device_put(host_tree(grads_seed(k), dtype), device)
    updates, state, params, _ = step(params, state, grads)
    out.append(jax.device_get((updates, state, params)))
  return init_state, out


def write_references(path: str) -> None:
  """Every case's single-device run, TRAIN_STEPS steps, pickled to `path` as {name: run}."""
  runs = {
    name: reference_run(make(), dtype, TRAIN_STEPS) for name, (make, dtype) in ALL_CASES.items()
  }
  with open(path + ".tmp", "wb") as f:
    pickle.dump(runs, f)
  os.replace(path + ".tmp", path)


@functools.cache
def _read_references(path: str) -> dict:
  with open(path, "rb") as f:
    return pickle.load(f)


def reference(name: str, steps: int, path: str | None = None) -> tuple[Any, list]:
  """Case `name`'s single-device run, its first `steps` steps: read from `path`, or computed."""
  if path is None:
    make, dtype = ALL_CASES[name]
    return reference_run(make(), dtype, steps)
  init_state, out = _read_references(path)[name]
  assert len(out) >= steps, (name, len(out), steps)
  return init_state, out[:steps]


def leaf_paths(tree) -> list[tuple[str, Any]]:
  return [
    (jax.tree_util.keystr(path), leaf)
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  ]


def _bits(x: np.ndarray) -> np.ndarray:
  x = np.ascontiguousarray(x)
  return x.view(np.dtype(f"u{x.dtype.itemsize}")) if x.dtype.itemsize in (1, 2, 4, 8) else x


def compare_shards(got, want, what: str, rtol: float | Callable[[str], float] = 0.0) -> float:
  """Each addressable shard of `got` against the same slice of `want` (whole NumPy arrays).

  Bit for bit where `rtol` (a number, or a function of the leaf's path) is 0; otherwise within
  rtol·max|leaf|. Returns the largest difference seen, relative to its leaf's largest magnitude.
  """
  got_leaves, want_leaves = leaf_paths(got), leaf_paths(want)
  assert [p for p, _ in got_leaves] == [p for p, _ in want_leaves], (what, got_leaves, want_leaves)
  worst = 0.0
  for (path, x), (_, y) in zip(got_leaves, want_leaves, strict=True):
    leaf_rtol = rtol(path) if callable(rtol) else rtol
    y = np.asarray(y)
    assert x.shape == y.shape and x.dtype == y.dtype, f"{what}{path}: {x.dtype}{x.shape}"
    scale = float(np.max(np.abs(y.astype(np.float64)))) if y.size else 0.0
    for shard in x.addressable_shards:
      a, b = np.asarray(shard.data), y[shard.index]
      diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
      worst = max(worst, diff / scale if scale else diff)
      where = f"{what}{path} shard {shard.index} on {shard.device}"
      if leaf_rtol:
        np.testing.assert_allclose(a, b, rtol=0, atol=leaf_rtol * scale, err_msg=where)
      elif not np.array_equal(_bits(a), _bits(b)):
        raise AssertionError(f"{where}: not bit for bit, largest difference {diff:.3g}")
  return worst


def assert_laid_out_like(tree, shardings, what: str) -> None:
  for (path, leaf), (_, sharding) in zip(leaf_paths(tree), leaf_paths(shardings), strict=True):
    if leaf.ndim:
      assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), (
        f"{what}{path} is laid out as {leaf.sharding.spec}, not {sharding.spec}"
      )


def process_bytes(tree) -> tuple[int, int]:
  """(bytes this process holds, distinct slices only; bytes of the whole global arrays)."""
  local = total = 0
  for leaf in jax.tree.leaves(tree):
    total += leaf.nbytes
    slices = {
      tuple((s.start, s.stop) for s in shard.index): shard.data.nbytes
      for shard in leaf.addressable_shards
    }
    local += sum(slices.values())
  return local, total
