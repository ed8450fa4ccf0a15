"""Reporting: each student's feedback page, grades.csv, and skipped.csv (with a console summary).

Feedback is nbgrader's feedback HTML (the template of ``nbgrader generate_feedback``) made from the
executed notebook with the hidden tests removed, also from outputs, and the manual scores and
comments of the gradebook. In test cells, the kernel's tracebacks are cut to their last line (they
may quote hidden tests); the grader's own verdict (``deciding``) keeps its message and the student's
traceback. Every file is written under --out without following links.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import html
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from nbformat import NotebookNode

from autograder import files
from autograder.deciding import verdict_index
from autograder.inert import make_inert
from autograder.restoring import BEGIN_HIDDEN, END_HIDDEN, is_test, meta
from autograder.settings import CSV_FIELDS, SKIPPED_FIELDS, Row, Skipped, Submission


def autograded_rel(student: str, notebook: str) -> str:
    return f"autograded/{student}/{notebook}/{notebook}.ipynb"


def feedback_rel(student: str, notebook: str) -> str:
    return f"feedback/{student}/{notebook or 'unknown'}/{notebook or 'unknown'}.html"


def manual_digest(manual: dict[str, dict[str, Any]]) -> str:
    """A digest of the manual grades and comments a feedback page shows (to know when to rewrite it)."""
    return hashlib.sha256(json.dumps(manual, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _hidden_lines(nb: NotebookNode) -> list[str]:
    lines = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if BEGIN_HIDDEN in line or END_HIDDEN in line:
                inside = BEGIN_HIDDEN in line
            elif inside and len(line.strip()) >= 8:
                lines.append(line.strip())
    return lines


def _redact(text: str, hidden: list[str]) -> str:
    for line in hidden:
        text = text.replace(line, "[hidden test]")
    return text


def feedback_notebook(nb: NotebookNode, manual: dict[str, dict[str, Any]]) -> tuple[NotebookNode, dict]:
    """A copy for students: hidden tests removed (also from outputs), scores and comments as nbgrader's GetGrades."""
    from nbgrader.preprocessors import ClearHiddenTests
    from nbgrader.utils import determine_grade, is_grade, is_solution

    hidden = _hidden_lines(nb)
    fb = copy.deepcopy(nb)
    fb, _ = ClearHiddenTests().preprocess(fb, {})
    score = max_score = 0.0
    for cell in fb.cells:
        grade_id = meta(cell).get("grade_id")
        verdict = verdict_index(cell)
        for k, out in enumerate(cell.get("outputs", [])):
            if out.output_type == "error" and is_test(cell) and k != verdict:  # the kernel's: it may quote the test
                out.traceback = [f"{out.ename}: {out.evalue}"]
            for key in ("text", "evalue"):
                if isinstance(out.get(key), str):
                    out[key] = _redact(out[key], hidden)
            for mime in ("text/plain", "text/html"):
                if isinstance(out.get("data", {}).get(mime), str):
                    out.data[mime] = _redact(out.data[mime], hidden)
            if "traceback" in out:
                out.traceback = [_redact(line, hidden) for line in out.traceback]
        given = manual.get(grade_id or "", {})
        if is_grade(cell):
            auto, points = determine_grade(cell)
            manual_score = given.get("manual_score")
            value = (manual_score if manual_score is not None else auto or 0.0) + (given.get("extra_credit") or 0.0)
            meta(cell)["score"], meta(cell)["points"] = value, points
            score, max_score = score + value, max_score + points
        if is_solution(cell):
            meta(cell)["comment"] = given.get("comment")
    return fb, {"score": score, "max_score": max_score, "late_penalty": 0}


def write_feedback(nb: NotebookNode, manual: dict[str, dict[str, Any]], row: Row, out: Path) -> None:
    """The nbgrader feedback HTML report of a graded row (the same template as ``nbgrader generate_feedback``)."""
    import nbgrader
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config

    fb, scores = feedback_notebook(make_inert(copy.deepcopy(nb)), manual)
    base = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.sanitize_html = True  # besides make_inert: nbconvert's own cleaning of markdown and HTML
    config.HTMLExporter.extra_template_basedirs = [str(base / "templates")]
    config.HTMLExporter.extra_template_paths = [str(base / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    resources = {"nbgrader": {**scores, "student": row.student, "notebook": row.notebook,
                              "assignment": row.notebook}, "metadata": {"name": row.notebook}}
    body, _ = HTMLExporter(config=config).from_notebook_node(fb, resources=resources)
    files.write_text(out, feedback_rel(row.student, row.notebook), body)
    row.manual = manual_digest(manual)


#: nbgrader's receipts beside a submitted notebook; ``nbgrader release_feedback`` needs them beside the report.
RECEIPTS = ("timestamp.txt", "submission_secret.txt")


def copy_receipts(submission: Submission, row: Row, out: Path) -> None:
    """Copy nbgrader's receipts (regular files, at most 1 KB, no link followed) beside the row's feedback page."""
    if "/" not in submission.rel:
        return
    folder = submission.rel.rsplit("/", 1)[0]
    for name in RECEIPTS:
        try:
            data = files.read_bytes(submission.root, f"{folder}/{name}", 1024)
        except (OSError, ValueError):  # absent, a link, or too large: release_feedback then says what is missing
            continue
        files.write_bytes(out, Path(feedback_rel(row.student, row.notebook)).parent / name, data)


def write_failure_feedback(row: Row, out: Path) -> None:
    """A short HTML page for a submission that could not be graded."""
    title = html.escape(row.notebook or Path(row.file).name)
    files.write_text(out, feedback_rel(row.student, row.notebook), (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}: not graded</h1><p>Your submission could not be graded automatically:</p>"
        f"<p><b>{html.escape(row.reason)}</b></p>"
        "<p>Your instructor has been told. Fix the problem and resubmit, or ask them.</p></body></html>"))


#: What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection"): such a cell gets a leading quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: object) -> str:
    """A CSV cell no spreadsheet runs: text starting like a formula gets a leading ``'``; numbers stay numbers.

    ``"+1+1"`` -> ``"'+1+1"``; ``"-2.5"`` -> ``"-2.5"``; ``"=cmd|' /C calc'!A0"`` -> ``"'=cmd|' /C calc'!A0"``.
    """
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(fields: tuple[str, ...], lines: Iterable[dict[str, object]]) -> str:
    """The one writer of every CSV of the grader: a header, then each line with every cell made safe."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows({key: safe_cell(value) for key, value in line.items()} for line in lines)
    return buffer.getvalue()


def write_csv(rows: Iterable[Row], path: Path) -> None:
    """grades.csv: one line per (student, notebook), failures with an empty score and their reason."""
    ordered = sorted(rows, key=lambda r: (r.student, r.notebook, r.file))
    files.write_text(path.parent, path.name, csv_text(CSV_FIELDS, (r.csv_row() for r in ordered)))


def write_skipped(skipped: list[Skipped], path: Path) -> None:
    """skipped.csv: every file under SUBMISSIONS that this run did not grade, and why."""
    files.write_text(path.parent, path.name, csv_text(SKIPPED_FIELDS, (
        {"file": s.file, "student": s.student, "reason": s.reason} for s in skipped)))


def skipped_summary(skipped: list[Skipped]) -> str:
    """One console line: how many files were skipped, by reason."""
    if not skipped:
        return "no file skipped"
    kinds = Counter(s.reason.split(":")[0].split(" (")[0] for s in skipped)
    return f"{len(skipped)} file(s) or folder(s) skipped: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
