"""Inert HTML: nothing a student wrote or printed runs in a page that shows it.

The executed notebook that formgrader renders (on the Jupyter server's origin, where a script could act
as the instructor) and every feedback page are made from a notebook passed through :func:`make_inert`:

- outputs keep only kinds that cannot run code: plain text, PNG/JPEG/GIF images, JSON, and HTML cleaned
  by ``bleach`` (tags and attributes from a short list, no ``on*`` handler, no ``javascript:`` URL; any
  other tag, ``<script>`` included, is escaped, so its text stays visible). JavaScript, SVG (which may
  hold scripts), markdown, LaTeX and widget outputs are dropped, with a plain-text note saying so;
- markdown the student could edit (every cell nbgrader does not lock) has its HTML escaped (it shows
  as typed) and its ``javascript:`` links broken;
- raw cells lose their format, so no exporter writes them into a page verbatim.

The grader's records and guard proofs are read before this runs (``deciding``, ``executing``).
"""
from __future__ import annotations

import re

from nbformat import NotebookNode

from autograder.restoring import meta

SAFE_DATA = ("text/plain", "image/png", "image/jpeg", "image/gif", "application/json")
TAGS = frozenset({"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
                  "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li",
                  "ol", "p", "pre", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table",
                  "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul"})
ATTRIBUTES = {"*": ["class", "title", "align", "colspan", "rowspan", "border"], "a": ["href"],
              "img": ["src", "alt", "width", "height"]}
PROTOCOLS = frozenset({"http", "https", "mailto", "data"})


def clean_html(text: str) -> str:
    """``text`` as HTML that runs nothing: allowed tags kept, others escaped, handlers and script URLs gone."""
    import bleach

    cleaned = bleach.clean(text, tags=TAGS, attributes=ATTRIBUTES, protocols=PROTOCOLS, strip=False)
    return cleaned.replace("data:text", "data-removed:text")  # a data: URL may only carry an image


_SCRIPT_URL = re.compile(r"(?i)\b((?:java|vb)\s*script|data)\s*:")


def inert_markdown(text: str) -> str:
    """Markdown that shows its HTML as typed (``<`` escaped) and links to no script (``javascript:`` broken)."""
    return _SCRIPT_URL.sub(lambda m: m.group(1) + " :", text.replace("<", "&lt;"))


def _inert_output(out: NotebookNode) -> None:
    data = out.get("data")
    if not isinstance(data, dict):
        return
    dropped = sorted(k for k in data if k not in SAFE_DATA and k != "text/html")
    for key in dropped:
        del data[key]
    if isinstance(data.get("text/html"), (str, list)):
        raw = data["text/html"] if isinstance(data["text/html"], str) else "".join(data["text/html"])
        data["text/html"] = clean_html(raw)
    if dropped:
        note = f"[grader: {', '.join(dropped)} output not shown: it could run code in this page]"
        plain = data.get("text/plain", "")
        plain = plain if isinstance(plain, str) else "".join(plain)
        data["text/plain"] = f"{plain}\n{note}" if plain else note


def make_inert(nb: NotebookNode) -> NotebookNode:
    """Make ``nb``'s outputs and student-editable markdown inert, in place (see the module's docstring)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not meta(cell).get("locked"):
            cell.source = inert_markdown(cell.source)
        elif cell.cell_type == "raw":
            for key in ("format", "raw_mimetype"):
                cell.metadata.pop(key, None)
        for out in cell.get("outputs", []):
            _inert_output(out)
    return nb
