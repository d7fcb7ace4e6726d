"""FSDP-style sharded training with `optax_decay.adamw` on a mesh of simulated CPU devices.

A one-axis mesh ('data') of 8 devices: the batch is split over it (data parallelism), and so is
every weight (fully sharded data parallelism, FSDP): each parameter is cut along its largest
dimension when that dimension divides by the mesh size, and replicated otherwise. Adam's moments
(mu, nu) get the parameters' shardings, so the optimizer state is sharded the same way and the
decoupled decay, which is elementwise, runs on each device's shard without communication.
The step is jitted with explicit in/out shardings; the script prints the shardings and asserts
that they are what was asked for, and that one sharded step equals one unsharded step.

Simulated devices need XLA_FLAGS set before JAX starts, which this script does on import (so run
it as a script or in a fresh process, not after something else has imported jax).

Run: python examples/sharded_fsdp.py [--steps 100] [--devices 8]
"""

from __future__ import annotations

import os
import sys

_DEVICE_FLAG = "--xla_force_host_platform_device_count"
_WANTED_DEVICES = 8
if _DEVICE_FLAG not in os.environ.get("XLA_FLAGS", ""):
  # Must happen before jax is imported anywhere in this process; otherwise jax has already fixed
  # its device count and main() says so.
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" {_DEVICE_FLAG}={_WANTED_DEVICES}"
  ).strip()

import argparse  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import optax_decay  # noqa: E402


def init_params(key, sizes):
  """An MLP as a dict of {'w', 'b'} layers; He-normal kernels, zero biases."""
  params = {}
  for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
    key, sub = jax.random.split(key)
    params[f"layer{i}"] = {
      "w": jax.random.normal(sub, (fan_in, fan_out)) * jnp.sqrt(2.0 / fan_in),
      "b": jnp.zeros((fan_out,)),
    }
  return params


def forward(params, x):
  layers = list(params.values())
  for layer in layers[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  return x @ layers[-1]["w"] + layers[-1]["b"]


def loss_fn(params, x, y):
  return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()


def fsdp_spec(shape, axis_size: int) -> P:
  """Shard the largest dimension over 'data' when it divides evenly; replicate otherwise."""
  if not shape:
    return P()
  dim = int(np.argmax(shape))
  if shape[dim] % axis_size:
    return P()
  return P(*(["data" if d == dim else None for d in range(len(shape))]))


def train_step(tx):
  """The pure step: gradients, the optimizer update (which needs the params), new params."""

  def step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


def make_step(tx, param_sh, state_sh, batch_sh):
  """`train_step` jitted so that its inputs and outputs keep the given shardings."""
  replicated = NamedSharding(batch_sh.mesh, P())
  return jax.jit(
    train_step(tx),
    in_shardings=(param_sh, state_sh, batch_sh, batch_sh),
    out_shardings=(param_sh, state_sh, replicated),
  )


def describe(tree) -> dict[str, str]:
  """Path → partition spec of every array leaf."""
  return {
    jax.tree_util.keystr(path): str(leaf.sharding.spec)
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def main(argv=None) -> dict:
  """Trains on digits with sharded params and optimizer state; returns losses and shardings."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--devices", type=int, default=_WANTED_DEVICES)
  parser.add_argument("--hidden", type=int, default=256)
  parser.add_argument("--batch-size", type=int, default=128)
  args = parser.parse_args(argv)

  if jax.device_count() < args.devices:
    sys.exit(
      f"need {args.devices} devices, JAX sees {jax.device_count()}: run this in a fresh "
      f"process (XLA_FLAGS={_DEVICE_FLAG}=N must be set before jax is imported)."
    )
  if args.batch_size % args.devices:
    sys.exit(f"--batch-size must divide by --devices ({args.devices}).")
  # Auto axes: jit's in/out shardings decide the layout and XLA inserts the collectives.
  mesh = jax.make_mesh((args.devices,), ("data",), axis_types=(AxisType.Auto,))

  from sklearn.datasets import load_digits

  x_all, y_all = load_digits(return_X_y=True)
  x_all, y_all = (x_all / 16.0).astype(np.float32), y_all.astype(np.int32)

  sizes = (64, args.hidden, args.hidden, 10)
  params = init_params(jax.random.key(0), sizes)
  # FSDP layout of the weights; biases of 10 classes do not divide by 8 and stay replicated.
  param_specs = jax.tree.map(lambda p: fsdp_spec(p.shape, args.devices), params)
  param_sh = jax.tree.map(lambda s: NamedSharding(mesh, s), param_specs)
  batch_sh = NamedSharding(mesh, P("data"))

  tx = optax_decay.adamw(1e-3, weight_decay=1e-2, mask=optax_decay.decay_mask)

  # The same rule, applied to every array of the optimizer state, gives Adam's moments (mu, nu)
  # their parameter's layout and replicates the scalar step count.
  state_specs = jax.tree.map(
    lambda a: fsdp_spec(a.shape, args.devices), jax.eval_shape(tx.init, params)
  )
  state_sh = jax.tree.map(lambda s: NamedSharding(mesh, s), state_specs)
  params = jax.device_put(params, param_sh)
  opt_state = jax.jit(tx.init, out_shardings=state_sh)(params)
  step = make_step(tx, param_sh, state_sh, batch_sh)

  # One sharded step must equal one single-device step (same math, different layout).
  x0, y0 = x_all[: args.batch_size], y_all[: args.batch_size]
  host_params = jax.device_get(params)
  ref_params, _, ref_loss = jax.jit(train_step(tx))(host_params, tx.init(host_params), x0, y0)
  rng = np.random.default_rng(0)
  losses = []
  first = None
  for i in range(args.steps):
    idx = rng.integers(0, len(x_all), args.batch_size) if i else np.arange(args.batch_size)
    x, y = jax.device_put((x_all[idx], y_all[idx]), batch_sh)
    params, opt_state, loss = step(params, opt_state, x, y)
    losses.append(float(loss))
    if i == 0:
      first = jax.device_get(params)
    if i % max(args.steps // 10, 1) == 0 or i == args.steps - 1:
      print(f"step {i:4d}  loss {losses[-1]:.4f}")

  adam_state = (
    optax.tree_utils.tree_get(opt_state, "mu"),
    optax.tree_utils.tree_get(opt_state, "nu"),
  )
  shardings = {
    "params": describe(params),
    "mu": describe(adam_state[0]),
    "nu": describe(adam_state[1]),
    "count": str(optax.tree_utils.tree_get(opt_state, "count").sharding.spec),
  }
  print(f"mesh {dict(mesh.shape)} on {jax.devices()[0].platform}")
  for name in ("params", "mu", "nu"):
    print(f"{name}:")
    for path, spec in shardings[name].items():
      print(f"  {path:20s} {spec}")
  print(f"count: {shardings['count']}")

  # The layout is what was asked for, for the parameters and for both moments.
  expected = {
    jax.tree_util.keystr(k): str(s) for k, s in jax.tree_util.tree_flatten_with_path(param_specs)[0]
  }
  assert shardings["params"] == expected, (shardings["params"], expected)
  assert shardings["mu"] == expected and shardings["nu"] == expected
  assert shardings["count"] == str(P())
  hidden_w = params["layer1"]["w"]
  assert hidden_w.addressable_shards[0].data.size * args.devices == hidden_w.size
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), first, ref_params
  )
  np.testing.assert_allclose(losses[0], float(ref_loss), rtol=1e-5)
  print("shardings as intended; first sharded step matches the unsharded one")
  return {"losses": losses, "shardings": shardings, "expected": expected}


if __name__ == "__main__":
  main()
