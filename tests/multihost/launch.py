"""Starts N JAX processes on this machine, waits for them within a time limit, leaves none behind.

Each process runs `multihost.worker` with 2 CPU devices and joins the others through a
coordinator on 127.0.0.1 at a port found free at run time; the collectives go over gloo, on
loopback. Every process starts in a session (process group) of its own; whatever happens (a
failure, the time limit, an exception or Ctrl-C in the caller), `launch` kills every group it
started, reaps every process and reports any process still alive afterwards.

Also a command line, to run one scenario by hand:

  PYTHONPATH=tests python -m multihost.launch equivalence --processes 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
DEVICES_PER_PROCESS = 2
# Process 0 could not listen on the port: another program took it between the check and the
# bind. Then the launch is retried on another port.
_PORT_TAKEN = "Failed to start RPC server"


@dataclasses.dataclass
class Process:
  index: int
  pid: int
  returncode: int | None  # None: still running when the time limit came (then killed)
  exited_after: float | None  # seconds after the launch started
  exited_at: float | None  # time.time() when the launcher saw it exit
  log: str
  results: dict | None  # result-I.json, when the process got as far as writing it

  @property
  def signal(self) -> str | None:
    code = self.returncode
    return signal.Signals(-code).name if code is not None and code < 0 else None


@dataclasses.dataclass
class Launch:
  scenario: str
  port: int
  processes: list[Process]
  timed_out: bool
  seconds: float
  survivors: list[int]  # pids still alive after the clean-up: must be empty

  @classmethod
  def from_dict(cls, d: dict) -> Launch:
    return cls(**{**d, "processes": [Process(**p) for p in d["processes"]]})

  @property
  def ok(self) -> bool:
    return not self.timed_out and all(p.returncode == 0 for p in self.processes)

  def merged_results(self) -> dict[str, str]:
    """Each check: 'ok' if it passed in every process; otherwise the first failure, with where."""
    merged: dict[str, str] = {}
    for p in self.processes:
      for name, outcome in ((p.results or {}).get("results") or {}).items():
        if outcome != "ok" and merged.get(name, "ok") == "ok":
          merged[name] = f"process {p.index}:\n{outcome}"
        merged.setdefault(name, outcome)
    return merged

  def describe(self, tail: int = 3000) -> str:
    lines = [
      f"{self.scenario} on {len(self.processes)} processes, port {self.port}: "
      f"{'timed out' if self.timed_out else 'finished'} after {self.seconds:.1f} s"
    ]
    for p in self.processes:
      lines.append(
        f"--- process {p.index} (pid {p.pid}): exit {p.returncode} {p.signal or ''} "
        f"after {p.exited_after} s; log tail:\n{p.log[-tail:]}"
      )
    return "\n".join(lines)


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def worker_env() -> dict[str, str]:
  env = dict(os.environ)
  flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
  env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={DEVICES_PER_PROCESS}".strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONUNBUFFERED"] = "1"
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
  # Keep an inherited scheduler environment from steering the workers (they get every value on
  # the command line, and cluster detection is off in them anyway).
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(name, None)
  return env


def write_reference(path: str | os.PathLike, *, timeout: float) -> subprocess.CompletedProcess:
  """Runs `multihost.reference` in a process of its own (killed at `timeout`) to write `path`."""
  with subprocess.Popen(
    [sys.executable, "-m", "multihost.reference", str(path)],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    env=worker_env(), cwd=TESTS.parent, start_new_session=True,
  ) as proc:  # fmt: skip
    try:
      output, _ = proc.communicate(timeout=timeout)
    finally:
      _kill_all([proc])
  return subprocess.CompletedProcess(proc.args, proc.returncode, output)


def launch(
  scenario: str,
  num_processes: int,
  workdir: str | os.PathLike,
  *,
  timeout: float,
  args: tuple[str, ...] = (),
) -> Launch:
  """Runs a `multihost.worker` scenario on `num_processes` processes.

  `timeout` bounds the whole launch; each worker is also told to exit on its own a little later
  (faulthandler), and to exit when this process goes away, so that none outlives its launcher
  even if this process is killed with SIGKILL.
  """

  def command(i: int, coordinator: str) -> list[str]:
    return [
      sys.executable, "-m", "multihost.worker", scenario,
      "--process-id", str(i), "--num-processes", str(num_processes),
      "--coordinator", coordinator, "--workdir", str(workdir),
      "--deadline", str(timeout + 15), *args,
    ]  # fmt: skip

  return run(command, num_processes, workdir, timeout=timeout, name=scenario)


def run(command, num_processes: int, workdir, *, timeout: float, name: str, attempts: int = 3):
  """Starts `command(i, "127.0.0.1:PORT")` for each process i; returns when all have exited or
  the time limit has come and the launcher has killed them.

  Retried on another port when process 0 could not listen on the one found free.
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  attempt = 0
  while True:
    result = _run_once(command, num_processes, workdir, timeout, name, attempt)
    attempt += 1
    first = result.processes[0]
    if attempt == attempts or not (first.returncode and _PORT_TAKEN in first.log):
      return result


def _run_once(command, n, workdir, timeout, name, attempt) -> Launch:
  port = free_port()
  env = worker_env()
  started: list[tuple[subprocess.Popen, Path]] = []
  exited: dict[int, tuple[float, float]] = {}
  start = time.monotonic()
  timed_out = False
  try:
    for i in range(n):
      log = workdir / f"log-{attempt}-{i}.txt"
      with open(log, "wb") as out:
        # A session of its own: killpg reaches the process and anything it may have started.
        proc = subprocess.Popen(
          command(i, f"127.0.0.1:{port}"), stdout=out, stderr=subprocess.STDOUT,
          stdin=subprocess.DEVNULL, env=env, cwd=TESTS.parent, start_new_session=True,
        )  # fmt: skip
      started.append((proc, log))
    while len(exited) < n:
      for i, (proc, _) in enumerate(started):
        if i not in exited and proc.poll() is not None:
          exited[i] = (time.monotonic() - start, time.time())
      if time.monotonic() - start > timeout:
        timed_out = True
        break
      time.sleep(0.05)
  finally:
    survivors = _kill_all([proc for proc, _ in started])
  processes = []
  for i, (proc, log) in enumerate(started):
    result_file = workdir / f"result-{i}.json"
    results = json.loads(result_file.read_text()) if result_file.exists() else None
    if result_file.exists():
      result_file.unlink()  # the next launch in this folder must not read it
    processes.append(
      Process(
        index=i,
        pid=proc.pid,
        returncode=proc.returncode if i in exited else None,
        exited_after=round(exited[i][0], 2) if i in exited else None,
        exited_at=exited[i][1] if i in exited else None,
        log=log.read_text(errors="replace"),
        results=results,
      )
    )
  return Launch(name, port, processes, timed_out, time.monotonic() - start, survivors)


def _kill_all(procs: list[subprocess.Popen]) -> list[int]:
  """SIGKILLs each process group, reaps each process; returns the pids of any still alive."""
  for proc in procs:
    with contextlib.suppress(ProcessLookupError, PermissionError):
      os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group id is its pid
  for proc in procs:
    with contextlib.suppress(subprocess.TimeoutExpired):
      proc.wait(timeout=10)
  alive = []
  for proc in procs:
    try:
      os.killpg(proc.pid, 0)  # raises when no process is left in the group
      alive.append(proc.pid)
    except ProcessLookupError:
      pass
  return alive


def processes_mentioning(text: str) -> list[str]:
  """`ps` lines of live processes whose command line contains `text` (a launch's folder)."""
  listing = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True)
  return [
    line.strip()
    for line in listing.stdout.splitlines()
    if text in line and " ps -eo " not in line and not line.split()[1].startswith("Z")
  ]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
  parser.add_argument("scenario")
  parser.add_argument("--processes", type=int, default=2)
  parser.add_argument("--timeout", type=float, default=300)
  parser.add_argument("--workdir", help="default: a new temporary folder")
  args, worker_args = parser.parse_known_args(argv)  # the rest goes to every worker
  workdir = args.workdir or tempfile.mkdtemp(prefix="multihost-")
  result = launch(
    args.scenario, args.processes, workdir, timeout=args.timeout, args=tuple(worker_args)
  )
  print(result.describe(tail=1500))
  for name, outcome in sorted(result.merged_results().items()):
    print(f"{name}: {outcome}")
  for p in result.processes:
    if p.results:
      print(f"process {p.index} metrics: {json.dumps(p.results['metrics'])}")
  return 0 if result.ok and not result.survivors else 1


if __name__ == "__main__":
  sys.exit(main())
