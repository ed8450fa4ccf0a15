"""Pages work offline: no notebook of the course loads an image, script, style or frame from the web.

Links (``[text](https://...)``, ``<a href>``) are fine: they load nothing until clicked. The scan covers the
markdown of every solution and course notebook, and the outputs of every executed solution notebook.
"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import nbformat
import pytest
from markdown_it import MarkdownIt

from course_tools.notebooks import COURSE, SOLUTIONS

#: The attributes through which a tag makes the page fetch something.
_FETCHING = {"img": ("src", "srcset"), "script": ("src",), "iframe": ("src",), "frame": ("src",),
             "link": ("href",), "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",),
             "track": ("src",), "embed": ("src",), "object": ("data",), "input": ("src",),
             "image": ("href", "xlink:href"), "use": ("href", "xlink:href"), "feimage": ("href", "xlink:href")}
_WEB = re.compile(r"(?:https?:)?//[^\s\"'<>)]+", re.IGNORECASE)
_CSS_URL = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])\s*((?:https?:)?//[^\s\"')]+)", re.IGNORECASE)


class _Scanner(HTMLParser):
    """Collects every web address that an HTML (or SVG) document would fetch by itself."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._inside: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and name in _FETCHING.get(tag, ()) and _WEB.match(value.strip()):
                self.found.append(f"<{tag} {name}={value.strip()}>")
            if value and name == "style":
                self.found += _CSS_URL.findall(value)
        self._inside.append(tag)

    def handle_endtag(self, tag):
        if tag in self._inside:
            del self._inside[len(self._inside) - 1 - self._inside[::-1].index(tag):]

    def handle_data(self, data):
        if self._inside and self._inside[-1] == "script":
            self.found += [f"<script> {url}" for url in _WEB.findall(data) if url.lower().startswith("http")]
        elif self._inside and self._inside[-1] == "style":
            self.found += _CSS_URL.findall(data)


def external_resources(html: str) -> list[str]:
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    return scanner.found


def _markdown_html(text: str) -> str:
    return MarkdownIt("commonmark").render(text)


def scan(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell id, what it fetches) for every external resource in the notebook's markdown and outputs."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found += [(cell.get("id"), r) for r in external_resources(_markdown_html(cell.source))]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = {k: "".join(v) if isinstance(v, list) else v for k, v in data.items() if isinstance(v, (str, list))}
            pages = [text.get("text/html", ""), text.get("image/svg+xml", ""),
                     _markdown_html(text.get("text/markdown", "")),
                     f"<script>{text.get('application/javascript', '')}</script>"]
            for page in pages:
                found += [(cell.get("id"), r) for r in external_resources(page)]
    return found


def _read(path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_the_scan_finds_every_kind_of_external_resource_and_no_link():
    fetching = [
        "![badge](https://example.org/badge.svg)",
        "![ref][logo]\n\n[logo]: http://example.org/logo.png",
        '<img src="https://example.org/a.png">',
        "<img src=//example.org/a.png>",
        '<script src="https://cdn.example.org/x.js"></script>',
        '<script>import("https://unpkg.com/x/esm.js")</script>',
        '<link rel="stylesheet" href="https://example.org/s.css">',
        '<div style="background: url(https://example.org/bg.png)">x</div>',
        '<iframe src="https://example.org/"></iframe>',
        '<svg><image href="https://example.org/i.png"/></svg>',
    ]
    for source in fetching:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(source)])
        assert scan(nb), f"missed: {source}"
    output = nbformat.v4.new_output("display_data", data={"text/html": fetching[5]})
    code = nbformat.v4.new_code_cell("x", outputs=[output])
    assert scan(nbformat.v4.new_notebook(cells=[code])), "missed a script in an output"
    harmless = ["[the paper](https://arxiv.org/abs/2209.11895)", '<a href="https://example.org">x</a>',
                "<details><summary>Hint</summary>`https://example.org` in code</details>",
                '<img src="data:image/png;base64,AAAA">', "<script>var local = 1;</script>"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(s) for s in harmless])
    assert scan(nb) == []


@pytest.mark.parametrize("where", ["solutions", "course"])
def test_no_notebook_loads_anything_from_the_web(assignment, where):
    folder = SOLUTIONS if where == "solutions" else COURSE
    found = scan(_read(folder / assignment / f"{assignment}.ipynb"))
    assert not found, f"{where}/{assignment} loads from the web: {found}"


def test_executed_outputs_load_nothing_from_the_web(assignment, executed_solutions):
    nb = executed_solutions[assignment]
    found = scan(nb)
    assert not found, f"the outputs of {assignment} load from the web: {json.dumps(found)[:1000]}"
