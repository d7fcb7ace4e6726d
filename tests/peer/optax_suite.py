"""Runs optax's own tests with optax_decay's transforms substituted for optax's.

    python tests/peer/optax_suite.py               # the selection (69 tests, ~1 min on 2 cores)
    python tests/peer/optax_suite.py --list        # print the selected test ids
    python tests/peer/optax_suite.py --baseline    # the same tests with optax's own transforms
    python tests/peer/optax_suite.py --scope all   # also in optax's lion, lamb, fromage... (432)
    python tests/peer/optax_suite.py --discover    # rebuild the selection (all of optax, ~40 min)

Substitution is done by ``plugin.py`` (see its docstring): ``optax.adamw`` / ``optax.nadamw``
build ``optax_decay.adamw`` (same arguments), ``optax.add_decayed_weights`` builds
``optax_decay.decoupled_decay``, wherever optax or its tests look them up; by default every
``init`` also checks that our state is laid out like optax's.

Selection: ``--discover`` runs *every* test shipped in the optax wheel with the substitution on
and records, per test, whether it called one of the substituted functions (a construction error
counts) or ran the ``init`` or ``update`` of a transform one of them built (for modules that
build one at import, JAX's caches are cleared before each test so that tracing is not skipped).
The tests that did are written, with what they reached and who built it, to
``selected_tests.txt``; that committed list is what a plain run runs, narrowed to ``--scope``. It
depends on the optax version (absl numbers parametrized tests), which the run checks.

Exit status: 0 when every selected test passes or fails only as listed in
``intended_differences.toml``; 1 otherwise (also when a selected id no longer exists).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections import defaultdict
from pathlib import Path

import optax

HERE = Path(__file__).resolve().parent
OPTAX_DIR = Path(optax.__file__).resolve().parent
SELECTION = HERE / "selected_tests.txt"
INTENDED = HERE / "intended_differences.toml"


def _pytest(args: list[str], *, log: Path | None = None) -> int:
  """Runs pytest with the plugin, outside the repository so that the project's own pytest
  settings and its working directory on sys.path do not apply (PYTHONPATH still can put
  another copy of optax_decay first)."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
  command = [
    sys.executable,
    "-m",
    "pytest",
    "-c",
    os.devnull,  # not the project's pytest settings (filterwarnings=error, conftest, ...)
    f"--rootdir={OPTAX_DIR}",  # test ids relative to the optax package
    "-p",
    "no:cacheprovider",
    "-p",
    "plugin",
    *args,
  ]
  cwd = tempfile.gettempdir()
  if log is None:
    return subprocess.call(command, env=env, cwd=cwd)
  with open(log, "w", encoding="utf-8") as out:
    return subprocess.call(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def read_selection() -> tuple[str | None, list[str], dict[str, str]]:
  """The optax version the selection was made with, the ids, and what each reaches."""
  version, ids, reaches = None, [], {}
  for line in SELECTION.read_text(encoding="utf-8").splitlines():
    match = re.match(r"#\s*optax_version\s*=\s*(\S+)", line)
    if match:
      version = match.group(1)
    test, _, comment = line.partition("#")
    test = test.strip()
    if test:
      ids.append(test)
      reaches[test] = comment.strip()
  return version, ids, reaches


def read_intended() -> list[dict]:
  """The entries of intended_differences.toml, each `test` made a list of glob patterns."""
  entries = tomllib.loads(INTENDED.read_text(encoding="utf-8")).get("difference", [])
  for entry in entries:
    for key in ("test", "reason", "docs"):
      if not entry.get(key):
        raise SystemExit(f"{INTENDED.name}: every [[difference]] needs {key!r}: {entry}")
    if isinstance(entry["test"], str):
      entry["test"] = [entry["test"]]
  return entries


def _discovery_pass(files: list[str], scope: str, tmp: Path) -> tuple[dict, list[str]]:
  """Runs `files`, recording what each test reaches; returns that and the modules that failed
  to import."""
  record, report, log = (
    tmp / f"record-{scope}.json",
    tmp / f"report-{scope}.json",
    tmp / f"{scope}.log",
  )
  args = ["-q", "--tb=no", "--continue-on-collection-errors", f"--peer-scope={scope}"]
  args += [
    f"--peer-record={record}",
    f"--peer-report={report}",
    *(str(OPTAX_DIR / f) for f in files),
  ]
  _pytest(args, log=log)
  if not record.exists():
    raise SystemExit(
      f"discovery ({scope}) recorded nothing:\n{log.read_text(encoding='utf-8')[-5000:]}"
    )
  reached = json.loads(record.read_text(encoding="utf-8"))
  outcomes = json.loads(report.read_text(encoding="utf-8"))["tests"]
  broken = sorted(t for t, r in outcomes.items() if r.get("when") == "collect")
  return reached, broken


def discover() -> int:
  files = sorted(str(p.relative_to(OPTAX_DIR)) for p in OPTAX_DIR.rglob("*_test.py"))
  with tempfile.TemporaryDirectory() as tmp:
    print(
      f"discovery: all {len(files)} optax test files, scope=all (this takes a while) ...",
      flush=True,
    )
    reached, broken = _discovery_pass(files, "all", Path(tmp))
    if broken:
      # A module that cannot even be imported with ours everywhere (an optax optimizer built at
      # import rejects something) is discovered again with optax's own optimizers left alone.
      print(
        f"discovery: {broken} failed to import with scope=all; again with scope=tests ...",
        flush=True,
      )
      again, _ = _discovery_pass(broken, "tests", Path(tmp))
      for test, what in again.items():
        reached.setdefault(test, []).extend(w for w in what if w not in reached.get(test, []))
  reached.pop("<import>", None)
  scopes = {"tests": 0, "all": 0}
  for what in reached.values():
    for scope in scopes:
      scopes[scope] += in_scope("; ".join(what), scope)
  lines = [
    "# optax tests that reach optax_decay's substitutes; written by `optax_suite.py --discover`.",
    f"# optax_version = {optax.__version__}",
    "# Rule: every test in the optax wheel was run once with ours substituted everywhere",
    f"# (--scope all; modules that then failed to import: {', '.join(broken) or 'none'},",
    "# again with --scope tests). A test is listed when it called optax.adamw, optax.nadamw or",
    "# optax.add_decayed_weights (ours then) or ran init/update of a transform they built. The",
    "# comment says which, and who built it: 'test' (the test's code), 'optax wrapper X' (an",
    "# optax wrapper calling the factory the test handed it) or 'optax alias X' (an optax",
    "# optimizer composing the primitive itself: such tests run only with --scope all).",
    f"# {scopes['tests']} tests run with --scope tests, {scopes['all']} with --scope all.",
  ]
  for test in sorted(reached):
    lines.append(f"{test}  # {'; '.join(sorted(reached[test]))}")
  SELECTION.write_text("\n".join(lines) + "\n", encoding="utf-8")
  print(f"wrote {len(reached)} test ids to {SELECTION}")
  return 0


def in_scope(reach: str, scope: str) -> bool:
  """Whether a test that reaches `reach` (a selection comment) runs ours under `scope`."""
  return scope == "all" or any("optax alias" not in r for r in reach.split(";"))


def _group_key(message: str) -> str:
  # Failures with the same message up to numbers, addresses and shapes share a cause.
  message = re.sub(r"0x[0-9a-f]+", "0x…", message)
  message = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", message)
  return message[:200]


def run(args: argparse.Namespace) -> int:
  version, all_ids, reaches = read_selection()
  if version != optax.__version__:
    print(
      f"selected_tests.txt was made with optax {version}, this is optax {optax.__version__}: "
      "rerun with --discover."
    )
    return 1
  ids = [t for t in all_ids if in_scope(reaches[t], args.scope)]
  intended = [] if args.baseline else read_intended()
  files = sorted({OPTAX_DIR / test.split("::", 1)[0] for test in ids})
  work = Path(tempfile.mkdtemp(prefix="optax_peer_"))
  selection = work / "selection.txt"
  selection.write_text("\n".join(ids) + "\n", encoding="utf-8")
  report_path = Path(args.report) if args.report else work / "report.json"
  extra = ["-k", args.k] if args.k else []
  mode = "optax's own transforms (baseline)" if args.baseline else f"ours, scope={args.scope}"
  print(f"running {len(ids)} selected optax tests, {mode} ...", flush=True)
  _pytest(
    [
      "-q",
      "--tb=short",
      "--continue-on-collection-errors",
      f"--peer-select={selection}",
      f"--peer-report={report_path}",
      f"--peer-substitute={'no' if args.baseline else 'yes'}",
      f"--peer-scope={args.scope}",
      f"--peer-state-check={'no' if args.no_state_check else 'yes'}",
      *extra,
      *map(str, files),
    ],
    log=None if args.verbose else work / "pytest.log",
  )
  if not report_path.exists():
    print(f"pytest wrote no report; see {work / 'pytest.log'}")
    return 1
  report = json.loads(report_path.read_text(encoding="utf-8"))
  tests = report["tests"]
  counts: dict[str, int] = defaultdict(int)
  for result in tests.values():
    counts[result["outcome"]] += 1

  unexpected: dict[str, list[str]] = defaultdict(list)
  expected: dict[str, list[str]] = defaultdict(list)
  for test, result in sorted(tests.items()):
    if result["outcome"] not in ("failed", "error"):
      continue
    hits = [
      i
      for i, e in enumerate(intended)
      if any(fnmatch.fnmatchcase(test, pattern) for pattern in e["test"])
    ]
    line = f"  {test}\n      reaches: {reaches.get(test, '?')}"
    if hits:
      expected[intended[hits[0]]["reason"]].append(line)
    else:
      unexpected[_group_key(f"[{result['when']}] {result['message']}")].append(line)

  print()
  print(f"optax {optax.__version__}; optax_decay from {report['optax_decay']}")
  print(f"substituted: {', '.join(report['substituted']) or 'nothing'}")
  print(
    f"selected {len(ids)}; ran {len(tests)}: "
    + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
  )
  unimported = {t for t, r in tests.items() if r.get("when") == "collect"}
  missing = [t for t in report["missing"] if t.split("::", 1)[0] not in unimported]
  if args.k:
    missing = []  # -k deselects on purpose
  if missing:
    print(f"\n{len(missing)} selected ids were not collected (stale selection? rerun --discover):")
    for test in missing:
      print(f"  {test}")
  if unexpected:
    total = sum(len(v) for v in unexpected.values())
    print(f"\n{total} unexpected failures, by message:")
    for key, lines in sorted(unexpected.items(), key=lambda kv: -len(kv[1])):
      print(f"\n- {key}  ({len(lines)})")
      print("\n".join(lines))
  if expected:
    print(f"\n{sum(len(v) for v in expected.values())} failures listed as intended differences:")
    for reason, lines in expected.items():
      print(f"\n- {reason}  ({len(lines)})")
      print(
        "\n".join(lines) if args.verbose else "\n".join(lines[:3] + ["  ..."][: len(lines) > 3])
      )
  warned: dict[str, list[str]] = defaultdict(list)
  for test, texts in sorted(report.get("warnings", {}).items()):
    for text in texts:
      warned[_group_key(text)].append(test)
  if warned:
    print(f"\nwarnings raised in {len(report['warnings'])} tests (not failures), by message:")
    for key, where in sorted(warned.items(), key=lambda kv: -len(kv[1])):
      print(f"- {key}  ({len(where)} tests, e.g. {where[0]})")
  for entry in intended:
    passing = [
      t
      for t, r in tests.items()
      if r["outcome"] == "passed" and any(fnmatch.fnmatchcase(t, p) for p in entry["test"])
    ]
    if passing:
      print(f"\nnote: listed as intended differences but passing now, e.g. {passing[0]}: update")
      print(f"  {INTENDED.name} ({entry['reason']})")
  print(f"\nfull report (tracebacks): {report_path}")
  return 1 if unexpected or missing else 0


def main() -> int:
  parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
  parser.add_argument("--list", action="store_true", help="print the selected test ids and exit")
  parser.add_argument("--discover", action="store_true", help="rebuild selected_tests.txt")
  parser.add_argument("--baseline", action="store_true", help="run with optax's own transforms")
  parser.add_argument(
    "--scope",
    choices=("tests", "all"),
    default="tests",
    help="tests: ours wherever a test asks for optax's adamw/nadamw/add_decayed_weights "
    "(default); all: also inside optax's own optimizers that compose the primitive "
    "(lion, lamb, fromage, contrib ...)",
  )
  parser.add_argument(
    "--no-state-check",
    action="store_true",
    help="only optax's own assertions: do not also check at init that our state is laid out "
    "like optax's",
  )
  parser.add_argument("-k", help="pytest -k expression to narrow the selection further")
  parser.add_argument("--report", help="where to write the JSON report (default: a temp dir)")
  parser.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output")
  args = parser.parse_args()
  if args.discover:
    return discover()
  if args.list:
    version, ids, reaches = read_selection()
    ids = [t for t in ids if in_scope(reaches[t], args.scope)]
    print(f"# {len(ids)} tests selected for scope={args.scope} (optax {version})")
    for test in ids:
      print(f"{test}  # {reaches[test]}")
    sys.stdout.flush()
    return 0
  return run(args)


if __name__ == "__main__":
  sys.exit(main())
