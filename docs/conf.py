"""Sphinx configuration for the optax_decay documentation.

Build (warnings are errors), then check that the site renders without a network:

  sphinx-build -W --keep-going -E -b html docs docs/_build/html
  python docs/check_site.py docs/_build/html

`bash .ci/docs` runs both. The built site loads nothing from another host: the theme ships its
assets, and MathJax comes from the pinned `sphinx-mathjax-offline` wheel of the `docs` extra.
"""

from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import optax_decay  # noqa: E402

project = "optax_decay"
author = "optax_decay contributors"
copyright = "the optax_decay contributors"
version = release = optax_decay.__version__

extensions = [
  "myst_parser",
  "sphinx.ext.autodoc",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  # Copies MathJax 3.2.2 (byte for byte the `es5` folder of npm's mathjax@3.2.2) into
  # _static/mathjax when the build succeeds; `mathjax_path` below points at it.
  "sphinx-mathjax-offline",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
html_theme = "sphinx_book_theme"
html_title = "optax_decay"
html_theme_options = {
  "show_toc_level": 2,
  # pydata-sphinx-theme 0.20 otherwise adds a top bar holding a second search field.
  "navbar_persistent": [],
}
# Light or dark as the reader's system asks; left empty, the theme logs an error on every page.
html_context = {"default_mode": "auto"}
html_static_path = ["_static"]
html_css_files = ["custom.css"]
# Sphinx's default is MathJax from a CDN, which leaves raw LaTeX on a machine without internet.
mathjax_path = "mathjax/tex-chtml.js"
# A long signature (adamw has twelve parameters) gets a line per parameter instead of one
# line wider than the page.
python_maximum_signature_line_length = 88

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Show the library's own names for its argument types rather than their expansions.
autodoc_type_aliases = {
  "optax.ScalarOrSchedule": "optax.ScalarOrSchedule",
  "optax.Schedule": "optax.Schedule",
  "_masks.Mask": "Mask",
}

# Every cross-reference must resolve, except to the libraries we build on: their
# documentation is not fetched (no intersphinx), so their names stay plain text.
nitpicky = True
nitpick_ignore_regex = [
  (r"py:.*", r"(optax|jax|jaxlib|numpy|np|jnp|flax|typing|collections)(\..*)?"),
  (r"py:.*", r"(Any|Callable|Hashable|Iterable|Mapping|NamedTuple|Array|(_masks\.)?Mask)"),
  (r"py:.*", r"(GradientTransformation|GradientTransformationExtraArgs|EmptyState)"),
  (r"py:.*", r"(int|float|str|bool|tuple|list|dict|None|frozenset)"),
]


def _plain_alias_names(app, what, name, obj, options, signature, return_annotation):
  """Prints an alias nested in a generic (``Mapping[Hashable, optax.ScalarOrSchedule]``) by name.

  Sphinx writes such an alias as ``TypeAliasForwardRef('optax.ScalarOrSchedule')``.
  """
  if signature:
    signature = re.sub(r"TypeAliasForwardRef\('([^']*)'\)", r"\1", signature)
  return signature, return_annotation


def undocumented_names(documented: set[str]) -> list[str]:
  """The names of `optax_decay.__all__` that no API entry documents.

  `documented` holds the full names (``optax_decay.adamw``) of the objects in the Python
  domain, i.e. every ``autofunction``, ``autoclass`` and ``autodata`` entry of the build.
  """
  return [name for name in optax_decay.__all__ if f"optax_decay.{name}" not in documented]


def _check_public_api_is_documented(app, env) -> None:
  from sphinx.util import logging

  documented = set(env.get_domain("py").objects)
  for name in undocumented_names(documented):
    logging.getLogger(__name__).warning(
      "optax_decay.%s is in optax_decay.__all__ but has no entry in the API reference "
      "(add an autofunction, autoclass or autodata for it to docs/api.md)",
      name,
      location="api",
    )


def setup(app):
  app.connect("autodoc-process-signature", _plain_alias_names)
  app.connect("env-check-consistency", _check_public_api_is_documented)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
