"""pytest plugin: optax's own tests, run with optax_decay's transforms in place of optax's.

Loaded with ``-p plugin`` (``tests/peer`` on ``sys.path``) by ``optax_suite.py``. Before any
optax test module is imported it replaces

- ``optax.adamw`` by an adapter with optax's exact signature that builds ``optax_decay.adamw``
  from the same arguments, and ``optax.nadamw`` by ``functools.partial(adapter,
  nesterov=True)`` (optax's own definition of nadamw, over the adapter);
- ``optax.add_decayed_weights`` by an adapter that builds ``optax_decay.decoupled_decay(
  weight_decay, mask)``: optax's one primitive, whose place in a chain makes it L2 or decoupled
  decay, and ours with the same meaning.

Every attribute of every loaded ``optax`` module that *is* one of the originals is replaced
(``optax``, ``optax._src.alias``, ``optax.transforms``, ``optax.transforms._adding``,
``optax._src.transform``, ...). Test modules are imported afterwards, so the names they bind at
import (module-level optimizer tables, parametrization lists) are the adapters; their globals
are checked again after collection. The adapters look at their caller:

- a test, or an optax wrapper calling the factory a test handed it (``inject_hyperparams(
  optax.adamw)``): ours;
- one of optax's own optimizers that composes the primitive itself (its code names
  ``add_decayed_weights`` or ``adamw``: lion, lamb, fromage, lars, contrib ...): optax's original
  with ``--peer-scope=tests`` (the default), ours with ``--peer-scope=all``;
- optax_decay itself: optax's original, so that ours may build on the primitive.

With ``--peer-state-check=yes`` (the default) the ``init`` of every transform the adapters build
also builds optax's state from the same parameters and fails the test when the two are not laid
out alike (nesting, field names, leaf paths, shapes, dtypes): optax's tests do not pin that down,
and checkpoints depend on it.

Other options: ``--peer-substitute=no`` (baseline: optax untouched), ``--peer-select=FILE``
(keep only these test ids), ``--peer-report=FILE`` (outcomes as JSON), ``--peer-record=FILE``
(discovery: per test, which adapters it reached and who built the transform).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
import optax._src.alias
import optax._src.transform
import optax.transforms
import optax.transforms._adding
import pytest

import optax_decay

ORIGINALS: dict[str, Callable[..., Any]] = {
  "adamw": optax._src.alias.adamw,
  "nadamw": optax._src.alias.nadamw,
  "add_decayed_weights": optax.transforms._adding.add_decayed_weights,
}


class _Recorder:
  """Which substituted functions the running test reached (discovery mode only)."""

  def __init__(self) -> None:
    self.enabled = False
    self.current: str = "<import>"
    self.reached: dict[str, set[str]] = {}
    # Test modules that built one of ours while being imported (a module-level optimizer table).
    self.built_at_import: set[str] = set()

  def note(self, what: str, module: str | None = None) -> None:
    if not self.enabled:
      return
    self.reached.setdefault(self.current, set()).add(what)
    if self.current == "<import>" and module is not None:
      self.built_at_import.add(module)


_RECORDER = _Recorder()
_OPTIONS: dict[str, Any] = {"scope": "tests", "state_check": True}
_NAMES = frozenset(ORIGINALS)


def _builder(frame: types.FrameType) -> tuple[str, bool]:
  """Who is building the transform, and whether it is one of optax's own optimizers.

  An optax function that names `adamw` or `add_decayed_weights` in its code composes optax's
  primitive itself (lion, lamb, fromage, contrib optimizers, ...); an optax wrapper that calls
  a factory it was handed (`inject_hyperparams(optax.adamw)`) is building what the test asked for.
  """
  module = frame.f_globals.get("__name__", "?")
  if module.startswith("optax_decay"):
    return module, False
  if module.endswith("_test") or not (module == "optax" or module.startswith("optax.")):
    return "test", False
  composes = bool(_NAMES & set(frame.f_code.co_names))
  kind = "optax alias" if composes else "optax wrapper"
  return f"{kind} {module}.{frame.f_code.co_name}", composes


def _module_importing() -> str | None:
  """The optax test module on the stack (the one being imported, during collection)."""
  frame = sys._getframe(1)
  while frame is not None:
    module = frame.f_globals.get("__name__", "")
    if module.startswith("optax") and module.endswith("_test"):
      return module
    frame = frame.f_back
  return None


def _use_original(builder: str, composes: bool) -> bool:
  # Ours may build on optax's primitive; optax's own optimizers keep theirs unless scope=all.
  return builder.startswith("optax_decay") or (composes and _OPTIONS["scope"] == "tests")


def _layout(state: Any) -> tuple[str, list[tuple[str, tuple[int, ...], str]]]:
  """What a checkpoint of `state` holds: its nesting (empty nodes included, NamedTuple class
  names left out: restoring goes by field names) and each leaf's path, shape and dtype."""
  nesting = re.sub(r"namedtuple\[\w+\]", "namedtuple", str(jax.tree.structure(state)))
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  paths = [
    (jax.tree_util.keystr(p), tuple(jnp.shape(x)), str(jnp.result_type(x))) for p, x in leaves
  ]
  return nesting, paths


def _check_state(name: str, ours: Any, theirs: Any) -> None:
  if _layout(ours) != _layout(theirs):
    raise AssertionError(
      f"peer state check: the state of our {name} is not laid out like optax.{name}'s, so a "
      "checkpoint of one does not restore into the other.\n"
      f"  ours:    {jax.tree.structure(ours)}\n  optax's: {jax.tree.structure(theirs)}\n"
      f"  ours:    {_layout(ours)[1]}\n  optax's: {_layout(theirs)[1]}"
    )


def _wrapped(
  build: Callable[[], optax.GradientTransformation],
  reference: Callable[[], optax.GradientTransformation],
  name: str,
  builder: str,
  module: str | None,
) -> optax.GradientTransformation:
  """`build()`, noted before it runs (so that a construction error counts as reaching ours).

  With the state check on, its `init` also builds optax's state from the same parameters and
  fails when the two are not laid out alike; in discovery, its `init` and `update` note use.
  """
  _RECORDER.note(f"{name} built by {builder}", module)
  tx = build()
  check = _OPTIONS["state_check"]
  if not (_RECORDER.enabled or check):
    return tx

  def init(params):
    _RECORDER.note(f"{name} built by {builder}, init/update ran")
    state = tx.init(params)
    if check:
      try:
        theirs = reference().init(params)
      except Exception:  # noqa: BLE001 - what optax cannot build, it cannot compare with
        return state
      _check_state(name, state, theirs)
    return state

  def update(*args, **kwargs):
    _RECORDER.note(f"{name} built by {builder}, init/update ran")
    return tx.update(*args, **kwargs)

  return tx._replace(init=init, update=update)


def adamw(
  learning_rate,
  b1=0.9,
  b2=0.999,
  eps=1e-8,
  eps_root=0.0,
  mu_dtype=None,
  weight_decay=1e-4,
  mask=None,
  *,
  nesterov=False,
):
  """``optax.adamw``'s signature, ``optax_decay.adamw``'s transform."""
  builder, composes = _builder(sys._getframe(1))
  args = (learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask)
  if _use_original(builder, composes):
    return ORIGINALS["adamw"](*args, nesterov=nesterov)
  name = "nadamw" if nesterov else "adamw"
  build = functools.partial(optax_decay.adamw, *args, nesterov=nesterov)
  reference = functools.partial(ORIGINALS["adamw"], *args, nesterov=nesterov)
  return _wrapped(build, reference, name, builder, _module_importing())


# optax defines nadamw exactly so, over its own adamw.
nadamw = functools.partial(adamw, nesterov=True)


def add_decayed_weights(weight_decay=0.0, mask=None):
  """``optax.add_decayed_weights``'s signature, ``optax_decay.decoupled_decay``'s transform."""
  builder, composes = _builder(sys._getframe(1))
  if _use_original(builder, composes):
    return ORIGINALS["add_decayed_weights"](weight_decay, mask)
  build = functools.partial(optax_decay.decoupled_decay, weight_decay, mask)
  reference = functools.partial(ORIGINALS["add_decayed_weights"], weight_decay, mask)
  return _wrapped(build, reference, "add_decayed_weights", builder, _module_importing())


ADAPTERS: dict[str, Callable[..., Any]] = {
  "adamw": adamw,
  "nadamw": nadamw,
  "add_decayed_weights": add_decayed_weights,
}


def _check_signatures() -> None:
  """The adapters take exactly optax's parameters (names, kinds, defaults)."""
  for name, original in ORIGINALS.items():
    want = [(p.name, p.kind, p.default) for p in inspect.signature(original).parameters.values()]
    got = [
      (p.name, p.kind, p.default) for p in inspect.signature(ADAPTERS[name]).parameters.values()
    ]
    if want != got:
      raise RuntimeError(f"peer plugin: the {name} adapter's signature {got} is not optax's {want}")


def _swap_in(module: types.ModuleType, table: dict[int, Callable[..., Any]]) -> list[str]:
  """Replaces every attribute of `module` that is a key of `table` (by id); returns their names."""
  swapped = []
  for attr, value in list(vars(module).items()):
    replacement = table.get(id(value))
    if replacement is not None:
      setattr(module, attr, replacement)
      swapped.append(f"{module.__name__}.{attr}")
  return swapped


def _optax_modules() -> list[types.ModuleType]:
  return [
    m
    for n, m in list(sys.modules.items())
    if isinstance(m, types.ModuleType) and (n == "optax" or n.startswith("optax."))
  ]


_TO_ADAPTER = {id(ORIGINALS[k]): ADAPTERS[k] for k in ORIGINALS}
PATCHED: list[str] = []


def substitute() -> None:
  _check_signatures()
  for module in _optax_modules():
    PATCHED.extend(_swap_in(module, _TO_ADAPTER))
  required = {
    "optax.adamw",
    "optax.nadamw",
    "optax._src.alias.adamw",
    "optax._src.alias.nadamw",
    "optax.add_decayed_weights",
    "optax.transforms.add_decayed_weights",
    "optax.transforms._adding.add_decayed_weights",
    "optax._src.transform.add_decayed_weights",
  }
  missing = required - set(PATCHED)
  if missing:
    raise RuntimeError(f"peer plugin: could not substitute {sorted(missing)}")


class _Run:
  """What one pytest session collects for the report."""

  def __init__(self) -> None:
    self.outcomes: dict[str, dict[str, str]] = {}
    self.warnings: dict[str, list[str]] = {}
    self.missing: list[str] = []
    self.x64_at_start = bool(jax.config.read("jax_enable_x64"))


_RUN = _Run()


def pytest_addoption(parser: pytest.Parser) -> None:
  group = parser.getgroup("peer", "optax's tests against optax_decay")
  group.addoption("--peer-substitute", default="yes", choices=("yes", "no"))
  group.addoption("--peer-scope", default="tests", choices=("tests", "all"))
  group.addoption("--peer-state-check", default="yes", choices=("yes", "no"))
  group.addoption("--peer-select", default=None)
  group.addoption("--peer-report", default=None)
  group.addoption("--peer-record", default=None)


def pytest_configure(config: pytest.Config) -> None:
  already = [n for n in sys.modules if n.startswith("optax") and n.endswith("_test")]
  if already:
    raise RuntimeError(f"peer plugin: optax test modules imported before substitution: {already}")
  if config.getoption("--peer-substitute") == "yes":
    substitute()
  _RECORDER.enabled = config.getoption("--peer-record") is not None
  _OPTIONS["scope"] = config.getoption("--peer-scope")
  _OPTIONS["state_check"] = config.getoption("--peer-state-check") == "yes"


def _read_selection(path: str) -> list[str]:
  with open(path, encoding="utf-8") as f:
    lines = (line.split("#", 1)[0].strip() for line in f)
    return [line for line in lines if line]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
  if config.getoption("--peer-substitute") == "yes":
    # A name a test module bound to an original (none should: it was imported after
    # substitution) is swapped too, and said so.
    modules = {id(m): m for m in (getattr(i, "module", None) for i in items) if m is not None}
    late = [name for m in modules.values() for name in _swap_in(m, _TO_ADAPTER)]
    if late:
      print(f"\npeer plugin: swapped names bound at import in test modules: {late}")
  path = config.getoption("--peer-select")
  if path is None:
    return
  wanted = _read_selection(path)
  keep = set(wanted)
  deselected = [i for i in items if i.nodeid not in keep]
  if deselected:
    config.hook.pytest_deselected(items=deselected)
  items[:] = [i for i in items if i.nodeid in keep]
  found = {i.nodeid for i in items}
  _RUN.missing = [w for w in wanted if w not in found]


def pytest_runtest_setup(item: pytest.Item) -> None:
  module = getattr(getattr(item, "module", None), "__name__", None)
  if _RECORDER.enabled and module in _RECORDER.built_at_import:
    # A transform built at import time may have been traced by an earlier test: forget every
    # compiled function so that this test's use of it runs (and records) its Python code again.
    jax.clear_caches()
  _RECORDER.current = item.nodeid


def pytest_runtest_teardown(item: pytest.Item) -> None:
  # float64_test turns jax_enable_x64 on and off around its body; when that body fails the flag
  # would stay on and change every later test's dtypes. Put it back.
  if jax.config.read("jax_enable_x64") != _RUN.x64_at_start:
    jax.config.update("jax_enable_x64", _RUN.x64_at_start)


def _first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
  crash = getattr(report.longrepr, "reprcrash", None)
  if crash is not None:
    return crash.message.splitlines()[0] if crash.message else ""
  return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""


def _failure(report: pytest.TestReport | pytest.CollectReport, when: str) -> dict[str, str]:
  outcome = "failed" if when == "call" else "error"
  message = _first_line(report)
  return {"outcome": outcome, "when": when, "message": message, "longrepr": str(report.longrepr)}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
  # One outcome per test: a failure in any phase or subtest wins over a pass or a skip.
  previous = _RUN.outcomes.get(report.nodeid)
  if report.failed:
    if previous is None or previous["outcome"] in ("passed", "skipped"):
      _RUN.outcomes[report.nodeid] = _failure(report, report.when)
  elif previous is None and (report.when == "call" or report.skipped):
    _RUN.outcomes[report.nodeid] = {"outcome": "skipped" if report.skipped else "passed"}


def pytest_collectreport(report: pytest.CollectReport) -> None:
  if report.failed:
    _RUN.outcomes[report.nodeid] = _failure(report, "collect")


def pytest_warning_recorded(warning_message, nodeid: str) -> None:  # noqa: ANN001
  # Warnings are no failures, but ours warn where optax does not: the summary lists them.
  if nodeid:
    text = f"{warning_message.category.__name__}: {str(warning_message.message).splitlines()[0]}"
    seen = _RUN.warnings.setdefault(nodeid, [])
    if text not in seen:
      seen.append(text)


def pytest_sessionfinish(session: pytest.Session) -> None:
  config = session.config
  report_path = config.getoption("--peer-report")
  if report_path is not None:
    report = {
      "optax_version": optax.__version__,
      "optax_decay": str(Path(optax_decay.__file__).parent),
      "substituted": PATCHED,
      "missing": _RUN.missing,
      "tests": _RUN.outcomes,
      "warnings": _RUN.warnings,
    }
    Path(report_path).write_text(json.dumps(report, indent=1), encoding="utf-8")
  record_path = config.getoption("--peer-record")
  if record_path is not None:
    record = {test: sorted(what) for test, what in _RECORDER.reached.items()}
    Path(record_path).write_text(json.dumps(record, indent=1), encoding="utf-8")
