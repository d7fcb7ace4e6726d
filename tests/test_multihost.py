"""Multi-host JAX on one machine: 2 and 4 processes, each with 2 CPU devices, over gloo.

Each scenario starts real JAX processes (tests/multihost/launch.py) that join through
`jax.distributed.initialize` on 127.0.0.1, and each process runs tests/multihost/worker.py:

- every optimizer, sharded over all devices (FSDP) and over a 2-D mesh whose 'data' axis runs
  across processes, equals the single-device run on the same global arrays: bit for bit where
  the arithmetic is elementwise, within a float32 summation bound for AdamS's global mean;
- `init` under jit leaves each process its share of the parameters and state, and none ever
  builds a whole parameter;
- Orbax checkpoints written by 2 processes restore into 2 and into 4 and continue to the same bits
  as an uninterrupted run;
- a process killed mid-step makes the others fail on their own, with the distributed runtime's
  error, within the heartbeat timeout; the last checkpoint then restores and continues.

The single-device runs they compare with are computed once, in a process of their own
(multihost/reference.py), and read by every worker. Slow (about 4 minutes in all on 2 cores,
10-60 s a scenario): marked `multihost`, out of the default run, run by .ci/multihost. Each
scenario runs once per session, also under pytest-xdist, where the first worker to need it runs
it and the others read its result.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import sys
from pathlib import Path

import pytest
from multihost import cases, launch, worker

pytestmark = pytest.mark.multihost

# The launcher's limit for one scenario: several times what it takes on 2 loaded cores, so that
# only a hang reaches it.
TIMEOUT_S = 480
HEARTBEAT_S = 10  # the crash scenario's: how long a silent process may be taken for alive
PROCESS_COUNTS = (2, 4)
CHECKS = [
  f"{kind}/{name}" for kind in ("fsdp", "2d", "eager_init") for name in sorted(cases.TRANSFORMS)
]


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory):
  """A folder every xdist worker of this session sees (the session's own without xdist)."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _locked(path):
  with open(path, "w") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def _once(shared_dir, key, scenario, processes, args=(), command=None) -> launch.Launch:
  """The scenario's launch, run by whichever test (or xdist worker) first asks for it.

  `command(i, coordinator)`, when given, replaces the worker (the example script).
  """
  folder = shared_dir / f"multihost-{key}"
  record = shared_dir / f"multihost-{key}.json"
  with _locked(shared_dir / f"multihost-{key}.lock"):
    if not record.exists():
      if command is None:
        result = launch.launch(scenario, processes, folder, timeout=TIMEOUT_S, args=tuple(args))
      else:
        result = launch.run(command, processes, folder, timeout=TIMEOUT_S, name=scenario)
      record.write_text(json.dumps(dataclasses.asdict(result)))
  return launch.Launch.from_dict(json.loads(record.read_text()))


@pytest.fixture(scope="session")
def reference(shared_dir) -> tuple[str, str]:
  """The worker arguments that point to the single-device runs, computed once per session."""
  path = shared_dir / "multihost-reference.pkl"
  with _locked(shared_dir / "multihost-reference.lock"):
    if not path.exists():
      done = launch.write_reference(path, timeout=TIMEOUT_S)
      assert done.returncode == 0 and path.exists(), done.stdout[-3000:]
  return ("--reference", str(path))


def _assert_clean(result: launch.Launch) -> None:
  assert result.ok, result.describe()
  assert not result.survivors, f"processes left alive: {result.survivors}"
  every = [sorted((p.results or {}).get("results") or {}) for p in result.processes]
  assert all(names == every[0] for names in every), every


def _assert_passed(result: launch.Launch, check: str) -> None:
  merged = result.merged_results()
  assert check in merged, f"{check} did not run:\n{result.describe()}"
  assert merged[check] == "ok", merged[check]


# --- every optimizer against the single-device run ---------------------------------------------


@pytest.fixture(scope="session", params=PROCESS_COUNTS, ids=lambda n: f"{n}proc")
def equivalence(request, shared_dir, reference):
  return _once(shared_dir, f"equivalence-{request.param}", "equivalence", request.param, reference)


def test_equivalence_run_is_clean(equivalence):
  _assert_clean(equivalence)
  assert sorted(equivalence.merged_results()) == sorted(CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_matches_single_device(equivalence, check):
  _assert_passed(equivalence, check)


def test_each_process_holds_its_share(equivalence):
  """Parameters and state after init under jit: 1/N of the sharded bytes, plus the replicated."""
  n = len(equivalence.processes)
  for process in equivalence.processes:
    memory = process.results["metrics"]["memory"]
    assert sorted(memory) == sorted(c for c in CHECKS if not c.startswith("eager_init/"))
    for check, numbers in memory.items():
      # FSDP replicates only the 5-element norm scale and the step counts; the 2-D mesh also
      # keeps every bias whole in each process (split over 'model', within the process).
      slack = 0.002 if check.startswith("fsdp/") else 0.01
      assert 1 / n <= numbers["share"] <= 1 / n + slack, (process.index, check, numbers)


def test_adams_agrees_within_the_summation_bound(equivalence):
  for process in equivalence.processes:
    worst = process.results["metrics"]["largest_relative_difference"]
    assert set(worst) == {f"{kind}/adams" for kind in ("fsdp", "2d")}
    assert all(0 <= w <= cases.REDUCTION_RTOL for w in worst.values()), worst


# --- checkpoints: written by 2 processes, restored into 2 and 4 --------------------------------


@pytest.fixture(scope="session")
def checkpointed(shared_dir, reference):
  written = _once(shared_dir, "train", "train", 2, reference)
  checkpoints = shared_dir / "multihost-train" / "checkpoints"
  restored = _once(
    shared_dir,
    "restore-into-4",
    "restore",
    4,
    ("--checkpoints", str(checkpoints), "--step", str(worker.SAVE_EVERY), *reference),
  )
  return written, restored


@pytest.mark.parametrize("name", worker.CHECKPOINTED)
def test_training_run_and_same_count_restore(checkpointed, name):
  written, _ = checkpointed
  _assert_clean(written)
  _assert_passed(written, f"train/{name}")
  _assert_passed(written, f"same_count_restore/{name}")


@pytest.mark.parametrize("kind", ["fsdp", "2d"])
@pytest.mark.parametrize("name", worker.CHECKPOINTED)
def test_restore_from_2_into_4_processes_continues_bit_for_bit(checkpointed, name, kind):
  _, restored = checkpointed
  _assert_clean(restored)
  _assert_passed(restored, f"restore/{kind}/{name}")


# --- a process dies mid-step -------------------------------------------------------------------


def _crash(shared_dir, reference, victim: int):
  key = f"crash-{victim}"
  args = ("--heartbeat", str(HEARTBEAT_S), "--victim", str(victim), *reference)
  crash = _once(shared_dir, key, "crash", 2, args)
  return crash, shared_dir / f"multihost-{key}"


@pytest.fixture(scope="session", params=[1, 0], ids=["worker-dies", "coordinator-dies"])
def crashed(request, shared_dir, reference):
  crash, folder = _crash(shared_dir, reference, request.param)
  return crash, launch.processes_mentioning(str(folder))


@pytest.fixture(scope="session")
def resumed(shared_dir, reference):
  """After a worker's death: the processes restart and restore the latest checkpoint."""
  _, folder = _crash(shared_dir, reference, 1)
  args = ("--checkpoints", str(folder / "checkpoints"), "--only", "adamw", *reference)
  return _once(shared_dir, "resume", "restore", 2, args)


# What a survivor reports: the distributed runtime aborts it (SIGABRT) when the coordination
# service declares a process dead (a worker's heartbeats stop) or becomes unreachable (the
# coordinator died); a collective under way may fail first, as a Python exception, when gloo
# sees its peer's connection close.
CLEAR_ERRORS = (
  "Terminating process because the JAX distributed service detected fatal errors",
  "Gloo all-reduce failed",
)


def test_survivors_fail_with_a_clear_error_in_time(crashed):
  crash, leftovers = crashed
  assert not crash.timed_out, crash.describe()
  assert not crash.survivors and not leftovers, (crash.survivors, leftovers)
  victims = [p for p in crash.processes if "VICTIM-DIES-AT" in p.log]
  assert len(victims) == 1 and victims[0].signal == "SIGKILL", crash.describe()
  died_at = float(victims[0].log.split("VICTIM-DIES-AT ")[1].split()[0])
  for p in crash.processes:
    if p is victims[0]:
      continue
    assert p.returncode not in (0, None) and p.results is None, crash.describe()
    assert any(error in p.log for error in CLEAR_ERRORS), p.log[-3000:]
    # Within the heartbeat timeout of the death, and some seconds to spare on loaded cores.
    assert p.exited_at - died_at < HEARTBEAT_S + 20, (p.exited_at - died_at, crash.describe())


def test_restore_after_the_crash_continues_bit_for_bit(resumed):
  _assert_clean(resumed)
  for p in resumed.processes:
    # The last checkpoint before the crash was complete when the victim died.
    last = worker.CRASH_AT // worker.SAVE_EVERY * worker.SAVE_EVERY
    assert p.results["metrics"]["restored_step"] == {"adamw": last}
  for kind in ("fsdp", "2d"):
    _assert_passed(resumed, f"restore/{kind}/adamw")


# --- the example, with the commands its docstring gives -----------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multihost.py"


def _example(shared_dir, key, processes, steps):
  checkpoints = shared_dir / "multihost-example-checkpoints"

  def command(i, coordinator):
    return [
      sys.executable, str(EXAMPLE), "--coordinator", coordinator,
      "--num-processes", str(processes), "--process-id", str(i), "--cpu-devices", "2",
      "--checkpoint-dir", str(checkpoints), "--steps", str(steps), "--save-every", "10",
    ]  # fmt: skip

  return _once(shared_dir, key, "example", processes, command=command)


def test_example_trains_on_2_processes_and_resumes_on_4(shared_dir):
  first = _example(shared_dir, "example-2", 2, steps=30)
  _assert_ran(first)
  assert "step   29" in first.processes[0].log, first.describe()
  resumed = _example(shared_dir, "example-4", 4, steps=40)
  _assert_ran(resumed)
  assert "restored step 30" in resumed.processes[0].log, resumed.describe()
  for p in resumed.processes:
    assert f"process {p.index}/4: 2 devices" in p.log, p.log[-2000:]


def _assert_ran(result: launch.Launch) -> None:
  assert result.ok and not result.survivors, result.describe()


# --- the launcher itself -----------------------------------------------------------------------


def test_a_hung_run_is_killed_at_the_time_limit_and_leaves_no_process(tmp_path):
  # SIGSTOP stops the runtime's heartbeat thread too; the long heartbeat timeout keeps the
  # runtime from ending the run before the launcher's limit does.
  limit = 40  # seconds: they start and join within about 8 on 2 busy cores; margin for more load
  result = launch.launch("hang", 2, tmp_path, timeout=limit, args=("--heartbeat", "600"))
  assert result.timed_out and result.seconds < limit + 15, result.describe()
  assert all(p.returncode is None for p in result.processes), result.describe()
  assert "STOPPING" in result.processes[1].log, result.describe()
  assert not result.survivors
  assert not launch.processes_mentioning(str(tmp_path))
