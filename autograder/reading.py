"""Reading a submitted file into a clean nbformat 4.5 notebook (trusted code, nothing runs).

The file is parsed defensively and the notebook rebuilt from a whitelist: only what grading needs is
kept (each cell's type, its source as text, its nbgrader grade id, tags and markdown attachments of
the right shape; the kernelspec), so malformed values of any type are repaired with a note, never
passed on to nbgrader. What cannot be read fails with the reason, which is final until the file changes.
"""
from __future__ import annotations

import json
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder.settings import MAX_NOTEBOOK_BYTES, SubmissionError

_TYPES = ("code", "markdown", "raw")


def read_notebook(data: bytes) -> tuple[NotebookNode, list[str]]:
    """Parse a submitted file's bytes into a v4.5 notebook, with notes on anything converted or repaired."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"the file is {len(data) // 2**20} MB; notebooks over "
                              f"{MAX_NOTEBOOK_BYTES // 2**20} MB are not graded (clear the outputs and resubmit)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SubmissionError("not a notebook: the file is not UTF-8 text (a zip, PDF or image?)") from None
    if not text.strip():
        raise SubmissionError("not a notebook: the file is empty")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise SubmissionError(f"not a notebook: invalid JSON at line {e.lineno}, column {e.colno} ({e.msg}); "
                              "the file is truncated or was edited outside Jupyter") from None
    except RecursionError:
        raise SubmissionError("not a notebook: the JSON is nested too deeply") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise SubmissionError("not a notebook: the JSON has no list of cells")
    notes = []
    version = raw.get("nbformat")
    if version != 4 or isinstance(version, bool):
        notes.append(f"converted from nbformat {version}" if version is not None else "the file had no nbformat version")
    if version is not None and (version != 4 or isinstance(version, bool)):
        try:  # older versions go through nbformat's converters, then the same rebuild
            raw = json.loads(nbformat.writes(nbformat.reads(text, as_version=4)))
        except Exception as e:  # nbformat raises many kinds of errors on odd files
            raise SubmissionError(f"not a readable notebook (nbformat {str(version)[:20]}): "
                                  f"{type(e).__name__}: {str(e)[:200]}") from None
    return rebuild(raw, notes), notes


def _text(value: Any) -> str | None:
    """A cell's source as text: a string, or a list of strings joined; None when it is anything else."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot be written back
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return _text("".join(value))
    return None


def _repaired_source(value: Any) -> str:
    """What is left of a malformed source: its strings and numbers, in order."""
    items = value if isinstance(value, list) else [value]
    return _text("".join(str(x) for x in items if isinstance(x, (str, int, float)) and not isinstance(x, bool))) or ""


def _metadata(cell: dict) -> dict:
    """The cell metadata grading keeps: the nbgrader grade id and tags (restoring sets the rest)."""
    given = cell.get("metadata")
    given = given if isinstance(given, dict) else {}
    kept: dict[str, Any] = {}
    nbgrader = given.get("nbgrader")
    if isinstance(nbgrader, dict) and isinstance(nbgrader.get("grade_id"), str):
        kept["nbgrader"] = {"grade_id": _text(nbgrader["grade_id"])}
    tags = given.get("tags")
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        kept["tags"] = [_text(t) for t in tags]
    return kept


def _attachments(cell: dict) -> dict | None:
    """Images pasted into a markdown answer, when they have the shape nbformat requires."""
    found = cell.get("attachments")
    if not isinstance(found, dict):
        return None
    ok = all(isinstance(name, str) and isinstance(bundle, dict) and all(
        isinstance(mime, str) and (isinstance(data, str) or (isinstance(data, list) and all(
            isinstance(x, str) for x in data))) for mime, data in bundle.items()) for name, bundle in found.items())
    return found if ok and found else None


def rebuild(raw: dict, notes: list[str]) -> NotebookNode:
    """A fresh, valid v4.5 notebook holding what grading keeps of ``raw``; notes say what was repaired."""
    cells, dropped, repaired = [], 0, []
    for i, cell in enumerate(raw.get("cells") if isinstance(raw.get("cells"), list) else []):
        if not isinstance(cell, dict) or cell.get("cell_type") not in _TYPES:
            dropped += 1
            continue
        source = _text(cell.get("source", ""))
        if source is None:
            source = _repaired_source(cell.get("source"))
            repaired.append(i + 1)
        new = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
               "raw": nbformat.v4.new_raw_cell}[cell["cell_type"]](source, metadata=_metadata(cell))
        attachments = _attachments(cell) if cell["cell_type"] != "code" else None
        if attachments:
            new["attachments"] = attachments
        new["id"] = f"cell-{len(cells):04d}"
        cells.append(new)
    if dropped:
        notes.append(f"repaired malformed cells: dropped {dropped} that were not code, markdown or raw cells")
    if repaired:
        notes.append(f"repaired malformed cells: the source of cell(s) {', '.join(map(str, repaired[:10]))} "
                     "was not text")
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    nb = nbformat.v4.new_notebook(cells=cells)
    spec = metadata.get("kernelspec")
    if isinstance(spec, dict) and all(isinstance(spec.get(k), str) for k in ("name", "display_name")):
        nb.metadata["kernelspec"] = {k: _text(spec[k]) for k in ("name", "display_name")}
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb
