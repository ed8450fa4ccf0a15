"""People's habits: executed notebooks stay small, graded cells write nothing to stderr, setup cells stay quiet."""
from __future__ import annotations

import nbformat

from course_tools.notebooks import write_notebook

MAX_EXECUTED_BYTES = 5_000_000


def _saved_size(nb: nbformat.NotebookNode, tmp_path) -> int:
    """Bytes of ``nb`` saved with the course's own notebook writer (what a submission weighs)."""
    path = tmp_path / "executed.ipynb"
    write_notebook(nb, path)
    return path.stat().st_size


def _graded(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade") or meta.get("solution"))


def test_graded_cells_write_nothing_to_stderr(assignment, executed_solutions):
    nb = executed_solutions[assignment]
    graded = [c for c in nb.cells if c.cell_type == "code" and _graded(c)]
    assert graded, "no graded cells found"
    noisy = {c.metadata["nbgrader"]["grade_id"]: o.text[:300] for c in graded for o in c.outputs
             if o.output_type == "stream" and o.name == "stderr"}
    assert not noisy, f"graded cells wrote to stderr (progress bars belong on stdout): {noisy}"


def test_colab_setup_cell_prints_nothing_outside_colab(assignment, executed_solutions):
    setup = executed_solutions[assignment].cells[1]
    assert setup.source.startswith("# Setup for Google Colab")
    assert setup.outputs == []


def test_executed_notebook_stays_small(assignment, executed_solutions, tmp_path):
    nb = executed_solutions[assignment]
    size = _saved_size(nb, tmp_path)
    print(f"{assignment}: executed notebook saves to {size:,} bytes")
    assert size < MAX_EXECUTED_BYTES, f"{assignment} executed is {size:,} bytes (limit {MAX_EXECUTED_BYTES:,})"
    inlined = [c.id for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "var CircuitsVis=" in str(o.get("data", {}).get("text/html", ""))]
    assert not inlined, f"circuitsvis's 1.3 MB bundle is inlined in cells {inlined}"
