"""A student's HTML and JavaScript run nowhere the grader shows them, checked in Chromium.

A graded notebook is planted with a ``<script>``, an ``<img onerror>``, an ``<svg onload>``, a
``javascript:`` link, markdown HTML in the written answer and an ``application/javascript`` output, each
of which would set ``document.title`` and a global if it ran. The notebook goes through what ``course
grade`` does to it (``autograder.inert.make_inert`` before it is stored, ``reporting.write_feedback``),
then the feedback page and the page formgrader makes from the stored notebook (nbgrader's own
``formgrade`` template, as ``SubmissionHandler`` renders it) are loaded in Chromium: nothing ran, and
each planted text is still visible on the page.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from autograder.inert import make_inert
from autograder.reporting import feedback_rel, write_feedback
from autograder.settings import Row
from browsing import PAGE_LOAD_S, wait

RAN = "document.title='PWNED';window.__pwned=(window.__pwned||[]).concat(['{tag}'])"
PLANTS = {  # what the student wrote -> the text that must stay visible on the page
    "script": (f"<script>{RAN.format(tag='script')}</script>", "PWNED"),
    "onerror": (f"<img src='x' onerror=\"{RAN.format(tag='onerror')}\">", None),
    "svg": (f"<svg onload=\"{RAN.format(tag='svg')}\"></svg>", "svg onload"),
    "link": ("<a id='planted-link' href=\"javascript:" + RAN.format(tag="link") + "\">click me</a>", "click me"),
}
MARKDOWN = f"My answer <script>{RAN.format(tag='markdown')}</script> <img src=x onerror=\"{RAN.format(tag='md-img')}\">"


def _planted() -> nbformat.NotebookNode:
    """A graded notebook whose student cells display every plant (as HTML, as JS, as text) and a markdown answer."""
    outputs = [nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": f"plain {name}"})
               for name, (html, _) in PLANTS.items()]
    outputs += [nbformat.v4.new_output("display_data", data={"application/javascript": RAN.format(tag="js"),
                                                             "text/plain": "<IPython.core.display.Javascript>"}),
                nbformat.v4.new_output("display_data", data={"image/svg+xml": PLANTS["svg"][0]}),
                nbformat.v4.new_output("stream", name="stdout", text=PLANTS["script"][0])]
    code = nbformat.v4.new_code_cell("show()", outputs=outputs, execution_count=1,
                                     metadata={"nbgrader": {"solution": True, "grade": False, "locked": False,
                                                            "grade_id": "double", "schema_version": 3}})
    answer = nbformat.v4.new_markdown_cell(MARKDOWN, metadata={"nbgrader": {
        "solution": True, "grade": True, "locked": False, "points": 1, "grade_id": "explain", "schema_version": 3}})
    return nbformat.v4.new_notebook(cells=[code, answer])


def _formgrader_page(stored: Path) -> str:
    """The HTML formgrader serves for an autograded notebook: its exporter, template and resources."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {"assignment_id": "00_tiny", "notebook_id": "00_tiny", "submission_id": "x", "index": 0, "total": 1,
                 "base_url": "", "student": "mallory", "last_name": "", "first_name": "", "notebook_path": ""}
    body, _ = HTMLExporter(config=config).from_filename(str(stored), resources=resources)
    return body


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("inert")
    nb = make_inert(_planted())  # what worker.score stores for formgrader
    stored = out / "autograded.ipynb"
    nbformat.write(nb, stored)
    (out / "formgrader.html").write_text(_formgrader_page(stored))
    row = Row("mallory", "00_tiny", "graded")
    write_feedback(nbformat.read(stored, as_version=4), {}, row, out)
    return {"formgrader": out / "formgrader.html", "feedback": out / feedback_rel("mallory", "00_tiny")}


def test_stored_notebook_has_no_runnable_output(pages):
    nb = nbformat.read(pages["formgrader"].with_name("autograded.ipynb"), as_version=4)
    kinds = {k for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {})}
    assert kinds <= {"text/plain", "text/html"}, kinds
    html = [o.data["text/html"] for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert html and not any(re.search(r"<script|<[^>]*\son\w+\s*=|javascript:", h, re.I) for h in html), html
    assert "<" not in nb.cells[1].source
    assert "application/javascript output not shown" in json.dumps(nb)


@pytest.mark.parametrize("page", ["feedback", "formgrader"])
def test_no_planted_script_runs_and_the_text_stays_visible(driver, pages, page):
    driver.get(pages[page].as_uri())
    wait(driver, "return document.readyState === 'complete'", timeout=PAGE_LOAD_S, what="the page to load")
    links = driver.execute_script("return Array.from(document.querySelectorAll('a')).filter("
                                  "a => (a.getAttribute('href') || '').toLowerCase().startsWith('javascript'))"
                                  ".map(a => a.outerHTML)")
    for element in driver.execute_script("return Array.from(document.querySelectorAll('a')).filter("
                                         "a => a.textContent.includes('click me'))"):
        element.click()  # what an instructor might do: a javascript: link would run now
    ran = driver.execute_script("return [document.title, window.__pwned || []]")
    text = driver.execute_script("return document.body.innerText")
    assert ran[0] != "PWNED" and ran[1] == [], f"student code ran in the {page} page: {ran}"
    assert links == []
    for name, (_, visible) in PLANTS.items():
        if visible:
            assert visible in text, f"the planted {name} text is not visible in the {page} page"
    assert "My answer" in text and "script" in text
    assert "application/javascript output not shown" in text
