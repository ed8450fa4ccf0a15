"""Every notebook: the solution runs top to bottom and scores full marks; the release scores zero."""
from __future__ import annotations

from autograder.plain import autograde
from course_tools.notebooks import COURSE


def test_solution_executes_top_to_bottom(assignment, executed_solutions):
    nb = executed_solutions[assignment]
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


def test_solution_scores_full_marks(assignment, graded_solutions):
    _, grades = graded_solutions[assignment]
    assert grades, "no autograded cells found"
    lost = {k: v for k, v in grades.items() if v[0] != v[1]}
    assert not lost, f"the solution lost points: {lost}"


def test_untouched_release_scores_zero(assignment, course_dirs):
    grades = autograde(COURSE / assignment / f"{assignment}.ipynb", assignment, course_dirs[assignment])
    assert grades and all(max_score > 0 for _, max_score in grades.values())
    scored = {k: v for k, v in grades.items() if v[0] != 0}
    assert not scored, f"an untouched notebook earned points: {scored}"
