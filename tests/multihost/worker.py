"""One process of a multi-process JAX run: joins the others, runs a scenario, writes its results.

Started by `launch.py`, N at once on this machine, as

  python -m multihost.worker SCENARIO --process-id I --num-processes N \
      --coordinator 127.0.0.1:PORT --workdir DIR [--heartbeat S] [--deadline S] ...

(with `tests/` on PYTHONPATH and XLA_FLAGS=--xla_force_host_platform_device_count=2). Each
process writes DIR/result-I.json: {"results": {check: "ok" | traceback}, "metrics": {...}}.

Scenarios:
  equivalence  every optimizer of cases.TRANSFORMS on the FSDP mesh and on the 2-D mesh, each
               compared with the single-device run; init under jit and the memory share; eager
               init on the FSDP mesh.
  train        the checkpointed training run: Orbax saves every SAVE_EVERY steps; then the same
               processes restore the first checkpoint and continue (same process count).
  restore      restore a checkpoint written by another process count (--step, or the latest)
               into the FSDP and the 2-D layouts, and continue to the end.
  crash        the training run, in which process --victim kills itself (SIGKILL) mid-step
               at step CRASH_AT: the others must fail on their own.
  hang         process 1 stops; the others wait for it forever: the launcher's limit must end it.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from typing import Any

import jax
import orbax.checkpoint as ocp

from multihost import cases

TRAIN_STEPS = cases.TRAIN_STEPS
SAVE_EVERY = 3  # checkpoints after steps 3 and 6
# The victim dies in the step of this index (the 7th), after the checkpoint of step 6. Its share
# of that step's collectives may or may not be done by then, but the 8th step needs it: no other
# process can finish the run.
CRASH_AT = 6
CHECKPOINTED = ("adamw", "anchor_compensated")


def _guard_against_orphans(deadline_s: float) -> None:
  """Exit if the launcher dies or the deadline passes, whatever the main thread is blocked in."""
  # A hung collective never returns to Python: faulthandler's own thread dumps every stack and
  # exits the process.
  faulthandler.dump_traceback_later(deadline_s, exit=True)
  parent = os.getppid()

  def watch():
    while True:
      if os.getppid() != parent:
        os._exit(70)
      time.sleep(0.5)

  threading.Thread(target=watch, daemon=True).start()
  # The survivors of a crash abort (SIGABRT): no core files in the CI's working directory.
  resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _join(args) -> None:
  # "gloo" is the default CPU collective implementation in jax 0.10; set it explicitly so that
  # an older or newer default cannot silently leave the processes without collectives.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
    coordinator_address=args.coordinator,
    num_processes=args.num_processes,
    process_id=args.process_id,
    # Listen on loopback only (the default binds every interface).
    coordinator_bind_address=args.coordinator,
    cluster_detection_method="deactivate",
    initialization_timeout=args.init_timeout,
    heartbeat_timeout_seconds=args.heartbeat,
    shutdown_timeout_seconds=args.shutdown_timeout,
  )
  assert jax.process_count() == args.num_processes, jax.process_count()
  assert jax.local_device_count() == 2, jax.local_devices()


class Recorder:
  """Runs each check, keeping 'ok' or its traceback, so one failure does not hide the others.

  A check does all its computation before it compares anything, so that every process issues
  the same collectives in the same order whichever comparison fails in which process.
  """

  def __init__(self):
    self.results: dict[str, str] = {}
    self.metrics: dict[str, Any] = {}

  def check(self, name, fn, *args):
    start = time.monotonic()
    try:
      fn(*args)
      self.results[name] = "ok"
    except Exception:  # noqa: BLE001 - reported to the launcher, which fails the test with it
      self.results[name] = traceback.format_exc(limit=6)
    self.metrics.setdefault("seconds", {})[name] = round(time.monotonic() - start, 2)


# --- equivalence -------------------------------------------------------------------------------


def _equivalence(rec: Recorder, args) -> None:
  for name in cases.TRANSFORMS:
    reference = cases.reference(name, cases.STEPS, args.reference)
    for kind in ("fsdp", "2d"):
      rec.check(f"{kind}/{name}", _compare_sharded_run, rec, kind, name, reference)
    rec.check(f"eager_init/{name}", _eager_init, name, reference)


def _compare_sharded_run(rec: Recorder, kind: str, name: str, reference) -> None:
  make, dtype = cases.TRANSFORMS[name]
  mesh, param_shardings = cases.layout(kind)
  requests: list = []
  tx = make()
  params = cases.global_tree(0, dtype, param_shardings, requests)
  init = cases.compiled_init(tx, params, mesh)
  state = init(params)
  init_shardings = jax.tree.map(lambda x: x.sharding, state)
  rec.metrics.setdefault("memory", {})[f"{kind}/{name}"] = _memory(params, state, init)
  step = jax.jit(cases.train_step(tx))
  steps = [state]
  for k in range(cases.STEPS):
    grads = cases.global_tree(cases.grads_seed(k), dtype, param_shardings)
    updates, state, params, _ = step(params, state, grads)
    steps.append((updates, state, params))
  jax.block_until_ready(steps)

  # Nothing below communicates.
  for shape, index, replicated in requests:
    asked = tuple(len(range(*s.indices(n))) for s, n in zip(index, shape, strict=True))
    assert replicated or asked != shape, f"a process built the whole {shape} parameter"
  rtol = cases.tolerance(name)
  init_state, ref_steps = reference
  worst = cases.compare_shards(steps[0], init_state, "init state", rtol)
  for k, (got, want) in enumerate(zip(steps[1:], ref_steps, strict=True)):
    worst = max(worst, cases.compare_shards(got, want, f"step {k} (updates, state, params)", rtol))
    updates, state, params = got
    cases.assert_laid_out_like(state, init_shardings, f"step {k} state")
    cases.assert_laid_out_like(updates, param_shardings, f"step {k} updates")
    cases.assert_laid_out_like(params, param_shardings, f"step {k} params")
  if rtol:
    rec.metrics.setdefault("largest_relative_difference", {})[f"{kind}/{name}"] = worst


def _memory(params, state, init) -> dict:
  """This process's bytes of parameters and state, against the global total and its share.

  Its share: 1/N of each array split along an axis that runs across processes, all of the
  others. And the compiled init's own account, per device: its output is that device's slices
  of the state, and no temporary buffer could hold a whole parameter.
  """
  (p_local, p_total), (s_local, s_total) = cases.process_bytes(params), cases.process_bytes(state)
  share = 0
  for leaf in jax.tree.leaves((params, state)):
    spans_processes = any(
      axis in cases.PROCESS_AXES for entry in leaf.sharding.spec for axis in _axes(entry)
    )
    share += leaf.nbytes // jax.process_count() if spans_processes else leaf.nbytes
  local, total = p_local + s_local, p_total + s_total
  assert local == share, f"this process holds {local} bytes, its share is {share}"

  stats = init.memory_analysis()
  device = jax.local_devices()[0]
  per_device = sum(
    shard.data.nbytes
    for leaf in jax.tree.leaves(state)
    for shard in leaf.addressable_shards
    if shard.device == device
  )
  smallest_split = min(
    leaf.nbytes for leaf in jax.tree.leaves(params) if not leaf.sharding.is_fully_replicated
  )
  compiled = {
    "output": stats.output_size_in_bytes,
    "temp": stats.temp_size_in_bytes,
    "argument": stats.argument_size_in_bytes,
  }
  # XLA pads each output buffer (to 64 bytes at most): a few bytes a leaf, never a parameter.
  padding = 64 * len(jax.tree.leaves(state))
  assert per_device <= compiled["output"] <= per_device + padding, (compiled, per_device)
  assert compiled["temp"] < smallest_split, f"init's temporaries: {compiled}, {smallest_split}"
  return {
    "process_bytes": local,
    "global_bytes": total,
    "share": round(local / total, 4),
    "params": [p_local, p_total],
    "state": [s_local, s_total],
    "init_per_device": compiled,
  }


def _axes(entry) -> tuple:
  return () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)


def _eager_init(name: str, reference) -> None:
  """`tx.init` called eagerly, as training loops do, on parameters spread over processes."""
  make, dtype = cases.TRANSFORMS[name]
  mesh, param_shardings = cases.layout("fsdp")
  tx = make()
  params = cases.global_tree(0, dtype, param_shardings)
  state = tx.init(params)
  jax.block_until_ready(state)
  init_state, _ = reference
  cases.compare_shards(state, init_state, "eager init state")
  want = cases.state_shardings(tx, state, param_shardings, mesh)
  cases.assert_laid_out_like(state, want, "eager init state")


# --- training with checkpoints -----------------------------------------------------------------


def _manager(directory: str):
  options = ocp.CheckpointManagerOptions(
    # Saved before the next step starts: the crash test needs the last checkpoint complete.
    enable_async_checkpointing=False,
  )
  return ocp.CheckpointManager(directory, options=options)


def _abstract(tx, dtype, mesh, param_shardings):
  """The restore target: shapes, dtypes and this run's shardings; no array is built."""
  params = jax.tree.map(
    lambda s, sharding: jax.ShapeDtypeStruct(s, dtype, sharding=sharding),
    cases.SHAPES,
    param_shardings,
    is_leaf=lambda x: isinstance(x, tuple),
  )
  state = jax.eval_shape(tx.init, params)
  shardings = cases.state_shardings(tx, state, param_shardings, mesh)
  state = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings
  )
  return {"params": params, "opt_state": state}


def _train(tx, dtype, param_shardings, params, state, start, stop, manager=None, hook=None):
  step = jax.jit(cases.train_step(tx))
  for k in range(start, stop):
    grads = cases.global_tree(cases.grads_seed(k), dtype, param_shardings)
    _, state, params, norm = step(params, state, grads)
    if hook is not None:
      hook(k)
    float(norm)  # the training loop's log line: waits for the step, on every process
    if manager is not None and (k + 1) % SAVE_EVERY == 0:
      manager.save(k + 1, args=ocp.args.StandardSave({"params": params, "opt_state": state}))
  return params, state


def _restore(manager, step, tx, dtype, kind):
  mesh, param_shardings = cases.layout(kind)
  target = _abstract(tx, dtype, mesh, param_shardings)
  restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  cases.assert_laid_out_like(restored["params"], param_shardings, "restored params")
  return restored, param_shardings


def _check_continuation(name, directory, step, kind, reference):
  make, dtype = cases.CHECKPOINT_TRANSFORMS[name]
  manager = _manager(directory)
  tx = make()
  restored, param_shardings = _restore(manager, step, tx, dtype, kind)
  manager.close()
  params, state = _train(
    tx, dtype, param_shardings, restored["params"], restored["opt_state"], step, TRAIN_STEPS
  )
  jax.block_until_ready((params, state))
  init_state, ref_steps = reference
  mid = ref_steps[step - 1]
  cases.compare_shards(
    (restored["opt_state"], restored["params"]), mid[1:], f"restored at step {step}"
  )
  cases.compare_shards((state, params), ref_steps[-1][1:], f"continued from {step} to the end")


def _training(rec: Recorder, args) -> None:
  for name in CHECKPOINTED:
    reference = cases.reference(name, TRAIN_STEPS, args.reference)
    directory = os.path.join(args.workdir, "checkpoints", name)
    rec.check(f"train/{name}", _uninterrupted, name, directory, reference)
    continuation = (name, directory, SAVE_EVERY, "fsdp", reference)
    rec.check(f"same_count_restore/{name}", _check_continuation, *continuation)


def _crash(rec: Recorder, args) -> None:
  """The training run with a victim; no Recorder, so the survivors fail as a training job does."""
  name = CHECKPOINTED[0]
  reference = cases.reference(name, TRAIN_STEPS, args.reference)
  directory = os.path.join(args.workdir, "checkpoints", name)
  _uninterrupted(name, directory, reference, victim=args.victim)
  rec.results["survived the crash"] = "a process finished the run although another died"


def _uninterrupted(name, directory, reference, victim=None):
  make, dtype = cases.CHECKPOINT_TRANSFORMS[name]
  mesh, param_shardings = cases.layout("fsdp")
  tx = make()
  params = cases.global_tree(0, dtype, param_shardings)
  state = cases.sharded_init(tx, params, mesh)
  manager = _manager(directory)

  def die_mid_step(k):
    if k == CRASH_AT and jax.process_index() == victim:
      # The step is dispatched and running; the process vanishes as an OOM kill would.
      print(f"VICTIM-DIES-AT {time.time():.6f}", flush=True)
      os.kill(os.getpid(), signal.SIGKILL)

  params, state = _train(
    tx, dtype, param_shardings, params, state, 0, TRAIN_STEPS, manager, die_mid_step
  )
  manager.wait_until_finished()
  saved = manager.all_steps()
  manager.close()
  assert sorted(saved) == list(range(SAVE_EVERY, TRAIN_STEPS + 1, SAVE_EVERY)), saved
  cases.compare_shards((state, params), reference[1][-1][1:], "uninterrupted run")


def _restoring(rec: Recorder, args) -> None:
  for name in CHECKPOINTED if args.only is None else (args.only,):
    reference = cases.reference(name, TRAIN_STEPS, args.reference)
    directory = os.path.join(args.checkpoints, name)
    step = args.step
    if step is None:
      manager = _manager(directory)
      step = manager.latest_step()
      manager.close()
    rec.metrics.setdefault("restored_step", {})[name] = step
    for kind in ("fsdp", "2d"):
      rec.check(
        f"restore/{kind}/{name}", _check_continuation, name, directory, step, kind, reference
      )


def _hang(rec: Recorder, args) -> None:
  """Process 1 stops (SIGSTOP) and the others wait for it in a collective: only the launcher's
  time limit ends this run."""
  from jax.experimental import multihost_utils

  if jax.process_index() == 1:
    print("STOPPING", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
  multihost_utils.sync_global_devices("never reached by process 1")


SCENARIOS = {
  "equivalence": _equivalence,
  "train": _training,
  "crash": _crash,
  "restore": _restoring,
  "hang": _hang,
}


def parse(argv=None):
  parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
  parser.add_argument("scenario", choices=sorted(SCENARIOS))
  parser.add_argument("--process-id", type=int, required=True)
  parser.add_argument("--num-processes", type=int, required=True)
  parser.add_argument("--coordinator", required=True, help="host:port of process 0's service")
  parser.add_argument("--workdir", required=True)
  parser.add_argument(
    "--heartbeat", type=int, default=60, help="seconds until a silent process is declared dead"
  )
  parser.add_argument("--init-timeout", type=int, default=120)
  parser.add_argument("--shutdown-timeout", type=int, default=60)
  parser.add_argument("--deadline", type=float, default=600, help="exit after this many seconds")
  parser.add_argument("--victim", type=int, default=1, help="crash: the process that dies")
  parser.add_argument("--checkpoints", help="restore: the directory another run wrote")
  parser.add_argument("--step", type=int, help="restore: this step, not the latest")
  parser.add_argument("--only", choices=CHECKPOINTED, help="restore: this optimizer only")
  parser.add_argument(
    "--reference", help="the single-device runs (python -m multihost.reference); default: compute"
  )
  return parser.parse_args(argv)


def main(argv=None) -> None:
  args = parse(argv)
  _guard_against_orphans(args.deadline)
  _join(args)
  rec = Recorder()
  start = time.monotonic()
  SCENARIOS[args.scenario](rec, args)
  rec.metrics["scenario_seconds"] = round(time.monotonic() - start, 2)
  path = os.path.join(args.workdir, f"result-{args.process_id}.json")
  with open(path + ".tmp", "w") as f:
    json.dump({"results": rec.results, "metrics": rec.metrics}, f)
  os.replace(path + ".tmp", path)


if __name__ == "__main__":
  sys.exit(main())
