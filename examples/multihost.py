"""Multi-host training with `optax_decay.adamw`: FSDP over every device of every process.

One copy of this script runs in each process (one per host on a cluster). They join through
`jax.distributed.initialize`, lay a one-axis mesh ('fsdp') over all their devices, and train a
small MLP on synthetic data with `optax_decay.adamw` and `optax_decay.decay_mask`:

- each weight is split along its largest dimension over all devices (replicated when that does
  not divide), and the optimizer state takes its parameter's layout through
  `optax.tree_utils.tree_map_params`, so each process holds 1/N of the parameters and state;
- the parameters and the state are created by jitted functions with `out_shardings`: no process
  ever holds a whole weight, and the decoupled decay, elementwise, runs on local shards;
- each process builds only its own rows of every batch (`jax.make_array_from_process_local_data`);
- with `--checkpoint-dir`, Orbax saves the parameters and the state every `--save-every` steps,
  every process writing its own shards, and a restarted job resumes from the latest checkpoint,
  with any number of processes.

Run it locally: N processes on this machine, each with 2 simulated CPU devices, talking over
loopback (127.0.0.1) through a coordinator at a free port:

  PORT=8476  # any free port
  for i in 0 1; do
    python examples/multihost.py --coordinator 127.0.0.1:$PORT --num-processes 2 \\
      --process-id $i --cpu-devices 2 --checkpoint-dir /tmp/multihost-ckpt &
  done
  wait

For 4 processes, `for i in 0 1 2 3` and `--num-processes 4`. Run it again with more `--steps`
and it resumes from the last checkpoint, with 2 processes or 4.

On a cluster, what changes:

- the coordinator is process 0's host, at an address every host can reach (not 127.0.0.1),
  on a port open between the hosts: `--coordinator host0.example:1234`;
- the process ids come from the scheduler. Under SLURM (srun), Open MPI (mpirun) and on Cloud
  TPU, leave out --coordinator, --num-processes and --process-id: `jax.distributed.initialize()`
  reads them itself (SLURM_PROCID, SLURM_NTASKS, SLURM_STEP_NODELIST, ...). Under SLURM and Open
  MPI it also gives each process one accelerator, the one numbered by its local rank: start one
  task per GPU. Elsewhere pass all three from the scheduler's variables (of the three, JAX reads
  only JAX_COORDINATOR_ADDRESS from the environment by itself);
- leave out --cpu-devices: the processes use their hosts' accelerators, whose own collectives
  (NCCL on GPUs) take the place of gloo;
- --checkpoint-dir must be a folder every process sees (a shared file system or a bucket).

  srun --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 \\
    python examples/multihost.py --checkpoint-dir /shared/run1

See docs/multihost.md.

Run: python examples/multihost.py [--steps 60] (as above, once per process)
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import optax_decay

IN, OUT = 16, 4


def parse(argv=None):
  parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
  parser.add_argument("--coordinator", help="host:port of process 0 (omit under SLURM, MPI, TPU)")
  parser.add_argument("--num-processes", type=int)
  parser.add_argument("--process-id", type=int)
  parser.add_argument("--cpu-devices", type=int, help="simulate this many CPU devices per process")
  parser.add_argument(
    "--heartbeat-timeout",
    type=int,
    default=60,
    help="seconds after which a silent process is declared dead and the others abort",
  )
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--batch-size", type=int, default=64, help="global, over all processes")
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--checkpoint-dir", help="save here, and resume from here on a restart")
  parser.add_argument("--save-every", type=int, default=20)
  return parser.parse_args(argv)


def initialize(args) -> None:
  """Joins the other processes; must run before anything else touches JAX's devices."""
  if args.cpu_devices:
    # Simulated devices on one machine; their collectives across processes go over gloo (TCP).
    jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
    coordinator_address=args.coordinator,
    num_processes=args.num_processes,
    process_id=args.process_id,
    heartbeat_timeout_seconds=args.heartbeat_timeout,
  )


def fsdp_spec(shape, devices: int) -> P:
  """Split the largest dimension over 'fsdp' when it divides evenly; replicate otherwise."""
  if not shape:
    return P()
  dim = int(np.argmax(shape))
  if shape[dim] % devices:
    return P()
  return P(*("fsdp" if d == dim else None for d in range(len(shape))))


def init_params(key, hidden: int):
  k1, k2 = jax.random.split(key)
  return {
    "dense1": {"kernel": jax.random.normal(k1, (IN, hidden)) / IN**0.5, "bias": jnp.zeros(hidden)},
    "norm": {"scale": jnp.ones(hidden)},
    "dense2": {
      "kernel": jax.random.normal(k2, (hidden, OUT)) / hidden**0.5,
      "bias": jnp.zeros(OUT),
    },
  }


def loss_fn(params, x, y):
  h = jax.nn.gelu(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
  h = h * params["norm"]["scale"]
  return jnp.mean((h @ params["dense2"]["kernel"] + params["dense2"]["bias"] - y) ** 2)


def local_batch(step: int, rows: int):
  """This process's rows of the global batch of `step`: a fixed random teacher, fresh inputs."""
  teacher = (np.random.default_rng(0).normal(size=(IN, OUT)) / IN**0.5).astype(np.float32)
  rng = np.random.default_rng([step, jax.process_index()])
  x = rng.normal(size=(rows, IN)).astype(np.float32)
  return x, np.sin(x @ teacher)


def bytes_held(tree) -> tuple[int, int]:
  """(bytes of distinct slices this process holds, bytes of the global arrays)."""
  local = total = 0
  for leaf in jax.tree.leaves(tree):
    total += leaf.nbytes
    slices = {
      tuple((s.start, s.stop) for s in sh.index): sh.data.nbytes for sh in leaf.addressable_shards
    }
    local += sum(slices.values())
  return local, total


def save(manager, step: int, tree) -> None:
  """Orbax: every process writes its own shards; process 0 also writes the metadata."""
  import orbax.checkpoint as ocp

  manager.save(step, args=ocp.args.StandardSave(tree))


def main(argv=None) -> dict:
  args = parse(argv)
  initialize(args)
  devices = jax.device_count()
  if args.batch_size % devices:
    raise SystemExit(f"--batch-size must divide by the number of devices ({devices}).")
  mesh = Mesh(np.array(jax.devices()), ("fsdp",))
  leader = jax.process_index() == 0

  def sharding_of(tree):
    return jax.tree.map(lambda a: NamedSharding(mesh, fsdp_spec(a.shape, devices)), tree)

  init = functools.partial(init_params, hidden=args.hidden)
  abstract_params = jax.eval_shape(init, jax.random.key(0))
  param_sh = sharding_of(abstract_params)
  lr = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 10, max(args.steps, 11))
  tx = optax_decay.adamw(lr, weight_decay=1e-2, mask=optax_decay.decay_mask)
  # Each copy of the parameters in the state (Adam's mu and nu) takes their layout; the step
  # count is replicated.
  state_sh = optax.tree_utils.tree_map_params(
    tx,
    lambda _, sharding: sharding,
    jax.eval_shape(tx.init, abstract_params),
    param_sh,
    transform_non_params=lambda _: NamedSharding(mesh, P()),
  )
  batch_sh = NamedSharding(mesh, P("fsdp"))

  params = jax.jit(init, out_shardings=param_sh)(jax.random.key(0))
  opt_state = jax.jit(tx.init, out_shardings=state_sh)(params)

  start, manager = 0, None
  if args.checkpoint_dir:
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(args.checkpoint_dir)
    latest = manager.latest_step()
    if latest is not None:
      # Shapes, dtypes and this run's shardings: every process reads only its own slices.
      target = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding),
        {"params": params, "opt_state": opt_state},
      )
      restored = manager.restore(latest, args=ocp.args.StandardRestore(target))
      params, opt_state, start = restored["params"], restored["opt_state"], latest
      if leader:
        print(f"restored step {latest} from {args.checkpoint_dir}", flush=True)

  @jax.jit
  def step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  losses = []
  rows = args.batch_size // jax.process_count()
  began = time.monotonic()
  for k in range(start, args.steps):
    x, y = local_batch(k, rows)
    x = jax.make_array_from_process_local_data(batch_sh, x)
    y = jax.make_array_from_process_local_data(batch_sh, y)
    params, opt_state, loss = step(params, opt_state, x, y)
    losses.append(float(loss))  # a replicated scalar: every process can read it
    if leader and (k % 10 == 0 or k == args.steps - 1):
      print(f"step {k:4d}  loss {losses[-1]:.4f}", flush=True)
    if manager is not None and (k + 1) % args.save_every == 0:
      save(manager, k + 1, {"params": params, "opt_state": opt_state})
  if manager is not None:
    manager.wait_until_finished()
    manager.close()

  held, total = bytes_held((params, opt_state))
  print(
    f"process {jax.process_index()}/{jax.process_count()}: {jax.local_device_count()} devices, "
    f"holds {held} of {total} bytes of parameters and state ({held / total:.1%}); "
    f"{len(losses)} steps in {time.monotonic() - began:.1f} s",
    flush=True,
  )
  return {"losses": losses, "start": start, "held": held, "total": total}


if __name__ == "__main__":
  main()
