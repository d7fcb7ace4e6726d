"""Runs the Example sections of every public docstring, so the documentation cannot drift."""

import doctest
import importlib
import pkgutil

import pytest

import optax_decay

MODULES = sorted(
  name for _, name, _ in pkgutil.iter_modules(optax_decay.__path__, prefix="optax_decay.")
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
  module = importlib.import_module(module_name)
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  assert result.failed == 0, f"{result.failed} doctest failures in {module_name}"


def test_every_public_name_has_a_docstring_with_an_example():
  missing = []
  for name in optax_decay.__all__:
    obj = getattr(optax_decay, name)
    if callable(obj) and not isinstance(obj, type):
      doc = obj.__doc__ or ""
      if "Example" not in doc or ">>>" not in doc:
        missing.append(name)
  assert not missing, f"public functions without a runnable example: {missing}"
