"""Checks a built HTML site for pages that a reader without internet would see broken.

  python docs/check_site.py docs/_build/html

Fails (exit 1, one line per problem) when a page

- shows LaTeX unrendered: ``\\(``, ``\\)``, ``\\[``, ``\\]``, ``$$`` or ``\\begin{`` in its text
  outside code and outside the ``math`` elements that MathJax typesets (math that Sphinx or MyST
  did not recognise, such as ``$$`` in a docstring);
- has ``math`` elements but loads no MathJax from the site itself, or one whose fonts are
  missing;
- loads a script, stylesheet, image or frame from another host, or one missing from the build,
  or uses a stylesheet that does either through ``url(...)`` or ``@import``;
- links to a page or file that is not in the build, or to an anchor that page lacks.

Links to other hosts (``<a href="https://...">``) are allowed and not followed: they are citations,
not what the page needs to render. Runs in well under a second for this site.
"""

from __future__ import annotations

import argparse
import html.parser
import pathlib
import posixpath
import re
import sys
import urllib.parse

# Elements whose text is code, not prose; MathJax leaves them alone too.
_CODE_TAGS = {"pre", "code", "kbd", "samp", "script", "style", "textarea", "tt"}
_VOID_TAGS = {
  "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
  "wbr",
}  # fmt: skip
_LATEX = re.compile(r"\\[()\[\]]|\$\$|\\begin\{")
# The attributes that make a page load something, as opposed to linking to it.
_RESOURCE_ATTRS = {("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src")}
_RESOURCE_LINK_RELS = {"stylesheet", "icon", "preload", "modulepreload", "manifest"}
# What a stylesheet loads: url(...) (fonts, images, imports) and @import "...".
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")


def _is_external(url: str) -> bool:
  """True for another host's URL and for mailto:, data: and the like."""
  parsed = urllib.parse.urlsplit(url)
  return bool(parsed.scheme or parsed.netloc)


class _Page(html.parser.HTMLParser):
  """Collects a page's ids, links, loaded resources and stray LaTeX in one pass."""

  def __init__(self) -> None:
    super().__init__(convert_charrefs=True)
    self.ids: set[str] = set()
    self.links: list[tuple[int, str]] = []  # (line, url) of <a href> and <link href>
    self.resources: list[tuple[int, str]] = []  # (line, url) of what the page loads
    self.stray_latex: list[tuple[int, str]] = []
    self.math_elements = 0
    # One entry per open element: is its text code or typeset math?
    self._stack: list[tuple[str, bool]] = []

  def _skipping(self) -> bool:
    return bool(self._stack) and self._stack[-1][1]

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    line = self.getpos()[0]
    for name in ("id", "name") if tag == "a" else ("id",):
      if attrs.get(name):
        self.ids.add(attrs[name])
    classes = (attrs.get("class") or "").split()
    is_math = "math" in classes
    self.math_elements += is_math
    if tag == "a" and attrs.get("href") is not None:
      self.links.append((line, attrs["href"]))
    if tag == "link" and attrs.get("href"):
      rels = set((attrs.get("rel") or "").lower().split())
      (self.resources if rels & _RESOURCE_LINK_RELS else self.links).append((line, attrs["href"]))
    for element, attr in _RESOURCE_ATTRS:
      if tag == element and attrs.get(attr):
        self.resources.append((line, attrs[attr]))
    if tag not in _VOID_TAGS:
      self._stack.append((tag, self._skipping() or is_math or tag in _CODE_TAGS))

  def handle_startendtag(self, tag, attrs):
    self.handle_starttag(tag, attrs)
    if tag not in _VOID_TAGS:
      self._stack.pop()

  def handle_endtag(self, tag):
    # Close the innermost open element of this name (HTML lets some end tags be left out).
    for i in range(len(self._stack) - 1, -1, -1):
      if self._stack[i][0] == tag:
        del self._stack[i:]
        return

  def handle_data(self, data):
    if not self._skipping():
      match = _LATEX.search(data)
      if match:
        start = max(0, match.start() - 30)
        self.stray_latex.append((self.getpos()[0], data[start : match.end() + 30].strip()))


def _target(root: pathlib.Path, page: pathlib.Path, url: str) -> tuple[pathlib.Path, str]:
  """The file a site-relative URL of `page` points to, and its anchor."""
  parsed = urllib.parse.urlsplit(url)
  path = urllib.parse.unquote(parsed.path)
  if not path:
    return page, urllib.parse.unquote(parsed.fragment)
  base = "" if path.startswith("/") else page.parent.relative_to(root).as_posix()
  resolved = root / posixpath.normpath(posixpath.join(base, path.lstrip("/")))
  if resolved.is_dir():
    resolved = resolved / "index.html"
  return resolved, urllib.parse.unquote(parsed.fragment)


def site_pages(root: pathlib.Path) -> list[pathlib.Path]:
  """The site's pages: its HTML files outside _static and _sources (which hold theme templates)."""
  return [p for p in sorted(root.rglob("*.html")) if p.relative_to(root).parts[0][0] != "_"]


def check_site(root: pathlib.Path) -> list[str]:
  """The problems of the site built in `root`, one message each; empty when it is fine."""
  root = root.resolve()
  pages = {path: _Page() for path in site_pages(root)}
  if not pages:
    return [f"{root}: no HTML pages (is this the build directory?)"]
  for path, parser in pages.items():
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()

  problems = []
  stylesheets: set[pathlib.Path] = set()
  for path, parser in pages.items():
    where = path.relative_to(root).as_posix()
    for line, text in parser.stray_latex:
      problems.append(f"{where}:{line}: unrendered LaTeX outside a math element: {text!r}")

    mathjax_loaded = False
    for line, url in parser.resources:
      if url.startswith("data:"):
        continue
      if _is_external(url):
        problems.append(f"{where}:{line}: loads {url} from another host")
        continue
      target, _ = _target(root, path, url)
      if not target.is_file():
        problems.append(f"{where}:{line}: loads {url}, which is not in the build")
      elif target.suffix == ".css":
        stylesheets.add(target)
      elif target.suffix == ".js" and "mathjax" in target.relative_to(root).as_posix().lower():
        mathjax_loaded = True
        # MathJax's CommonHTML output fetches its fonts from beside the script.
        fonts = target.parent / "output" / "chtml" / "fonts" / "woff-v2"
        if "chtml" in target.name and not any(fonts.glob("*.woff")):
          problems.append(f"{where}:{line}: {url} has no fonts at {fonts.relative_to(root)}")
    if parser.math_elements and not mathjax_loaded:
      problems.append(
        f"{where}: {parser.math_elements} math elements but no MathJax script from the site"
      )

    for line, url in parser.links:
      if _is_external(url) or url == "#":
        continue
      target, anchor = _target(root, path, url)
      if not target.is_file():
        problems.append(f"{where}:{line}: link to {url}, which is not in the build")
      elif anchor and target in pages and anchor not in pages[target].ids:
        problems.append(f"{where}:{line}: link to {url}: no id {anchor!r} in that page")
  problems += _check_stylesheets(root, stylesheets)
  return problems


def _check_stylesheets(root: pathlib.Path, stylesheets: set[pathlib.Path]) -> list[str]:
  """What the pages' stylesheets load (fonts, images, other stylesheets) is in the build."""
  problems = []
  seen = set()
  todo = sorted(stylesheets)
  while todo:
    sheet = todo.pop()
    if sheet in seen:
      continue
    seen.add(sheet)
    text = re.sub(r"/\*.*?\*/", "", sheet.read_text(encoding="utf-8"), flags=re.S)
    for match in _CSS_URL.finditer(text):
      url = match.group(1) or match.group(2)
      if url.startswith(("data:", "#")):
        continue
      where = sheet.relative_to(root).as_posix()
      if _is_external(url):
        problems.append(f"{where}: loads {url} from another host")
        continue
      target, _ = _target(root, sheet, url)
      if not target.is_file():
        problems.append(f"{where}: loads {url}, which is not in the build")
      elif target.suffix == ".css":
        todo.append(target)
  return problems


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("build_dir", type=pathlib.Path, help="the HTML build, e.g. docs/_build/html")
  args = parser.parse_args(argv)
  problems = check_site(args.build_dir)
  for problem in problems:
    print(problem, file=sys.stderr)
  pages = len(site_pages(args.build_dir.resolve()))
  if problems:
    print(f"check_site: {len(problems)} problem(s) in {args.build_dir}", file=sys.stderr)
    return 1
  print(f"check_site: {pages} pages in {args.build_dir}: math, resources and links all local")
  return 0


if __name__ == "__main__":
  sys.exit(main())
