"""The documentation cannot drift: every Python block of the docs runs, and the API page is whole.

Each ```python fenced block of a page in docs/ runs here, the blocks of one page in order in one
namespace, as a reader would paste them. Blocks that must not run use another fence language:
```text for PyTorch code, ```bash for shell commands, or a language ending in "-skip" (such as
```pycon-skip) for Python that is shown but deliberately not run.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

import optax_decay

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
# Pages written by the reproduction and benchmark scripts: they report numbers, not code to run.
GENERATED_PAGES = {"results.md", "benchmarks.md"}

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
  """(first line number, info string, code) of every top-level fenced block of a Markdown page."""
  blocks = []
  lines = text.splitlines()
  i = 0
  while i < len(lines):
    opening = _FENCE.match(lines[i])
    if not opening:
      i += 1
      continue
    fence, indent = opening["fence"], len(opening["indent"])
    body = []
    j = i + 1
    while j < len(lines):
      closing = _FENCE.match(lines[j])
      if closing and closing["fence"].startswith(fence) and not closing["info"].strip():
        break
      # An indented fence's content loses up to as many leading spaces as the fence had.
      line = lines[j]
      body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
      j += 1
    else:
      raise ValueError(f"the fence opened at line {i + 1} is never closed")
    blocks.append((i + 1, opening["info"].strip(), "\n".join(body) + "\n"))
    i = j + 1
  return blocks


def pages() -> list[pathlib.Path]:
  docs = sorted(p for p in DOCS.glob("*.md") if p.name not in GENERATED_PAGES)
  return [DOCS.parent / "README.md", *docs]


def python_pages() -> list[pathlib.Path]:
  return [
    p for p in pages() if any(info == "python" for _, info, _ in fenced_blocks(p.read_text()))
  ]


@pytest.mark.parametrize("page", python_pages(), ids=lambda p: p.name)
def test_code_blocks_run(page):
  namespace: dict = {"__name__": f"docs_{page.stem}"}
  for line, info, code in fenced_blocks(page.read_text()):
    if info != "python":
      continue
    where = f"docs/{page.name}, the python block at line {line}"
    try:
      exec(compile(code, where, "exec"), namespace)
    except Exception as err:
      raise AssertionError(f"{where} failed: {type(err).__name__}: {err}\n\n{code}") from err


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_no_python_block_escapes_the_run(page):
  """Python code in a fence the test does not run (```py, ```python3, a code-block directive)."""
  escaped = [
    f"line {line}: ```{info}"
    for line, info, _ in fenced_blocks(page.read_text())
    if info != "python"
    and not info.endswith("-skip")
    and re.match(r"(\{code(-block|-cell)?\}\s*)?(py|python|ipython)", info)
  ]
  assert not escaped, f"docs/{page.name} has Python blocks that never run: {escaped}"


def _api_entries() -> set[str]:
  text = (DOCS / "api.md").read_text()
  return set(
    re.findall(r"^\s*\.\. auto(?:function|class|data)::\s+optax_decay\.(\w+)\s*$", text, re.M)
  )


def test_every_public_name_is_in_the_api_reference():
  missing = sorted(set(optax_decay.__all__) - _api_entries())
  assert not missing, f"names in optax_decay.__all__ without an entry in docs/api.md: {missing}"


def test_api_reference_documents_only_public_names():
  extra = sorted(_api_entries() - set(optax_decay.__all__))
  assert not extra, f"docs/api.md documents names that optax_decay.__all__ lacks: {extra}"


def _load_conf():
  spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
  assert spec is not None and spec.loader is not None
  conf = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(conf)
  return conf


def test_sphinx_check_flags_an_undocumented_name():
  """The hook in docs/conf.py that fails the Sphinx build, tested without Sphinx."""
  conf = _load_conf()
  everything = {f"optax_decay.{name}" for name in optax_decay.__all__}
  assert conf.undocumented_names(everything) == []
  assert conf.undocumented_names(everything - {"optax_decay.adamw"}) == ["adamw"]
