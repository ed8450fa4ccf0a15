"""`course grade` on the real Notebook 1, in sandboxes: the solution, the untouched release, and a solution
whose metadata was stripped and that tries to switch a check off. About a minute on two cores."""
from __future__ import annotations

import copy

import nbformat
import pytest

from autograder.batch import grade
from autograder.sandbox import sandbox_problem
from autograder.settings import Limits
from induction_course.notebooks import COURSE, SOLUTIONS

NAME = "01_attention"
pytestmark = [pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox: {sandbox_problem()}"),
              pytest.mark.skipif(not (SOLUTIONS / NAME / f"{NAME}.ipynb").exists(), reason="Notebook 1 not built")]
PATCH = "from induction_course.checks import nb1\nnb1.check_project = lambda *args, **kwargs: None"


def _student(release: nbformat.NotebookNode, solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release with every solution cell filled in from the solution notebook."""
    nb = copy.deepcopy(release)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for c in nb.cells:
        grade_id = c.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            c.source = answers[grade_id]
    return nb


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("nb1-submissions")
    release = nbformat.read(COURSE / NAME / f"{NAME}.ipynb", as_version=4)
    solution = nbformat.read(SOLUTIONS / NAME / f"{NAME}.ipynb", as_version=4)
    nbformat.write(_student(release, solution), folder / "solved.ipynb")
    nbformat.write(release, folder / "untouched.ipynb")
    sneaky = _student(release, solution)
    sneaky.metadata = {}
    for c in sneaky.cells:
        c.metadata = {}
    project = next(i for i, c in enumerate(sneaky.cells) if c.source.startswith("def project("))
    sneaky.cells[project].source = sneaky.cells[project].source.replace("+ b", "")  # forgets the bias
    sneaky.cells.insert(project + 1, nbformat.v4.new_code_cell(PATCH))
    nbformat.write(sneaky, folder / "sneaky.ipynb")
    out = tmp_path_factory.mktemp("nb1-out")
    graded = grade(folder, NAME, out, 2, Limits(timeout=600), echo=lambda line: None)
    return {r.student: r for r in graded} | {"out": out}


def test_solution_gets_full_marks_and_the_release_zero(rows):
    solved, untouched = rows["solved"], rows["untouched"]
    assert (solved.status, solved.score, solved.max_score, solved.notes) == ("graded", 17, 17, ""), solved
    assert (untouched.status, untouched.score, untouched.max_score) == ("graded", 0, 17), untouched


def test_stripped_metadata_is_restored_and_a_switched_off_check_still_counts(rows):
    sneaky = rows["sneaky"]
    assert (sneaky.status, sneaky.max_score) == ("graded", 17), sneaky
    assert sneaky.score == 13, sneaky  # check_project (2) and check_attention_layer, which calls project (2)
    assert "metadata was missing" in sneaky.notes and "patches the course's checks" in sneaky.notes
    html = (rows["out"] / "feedback" / "sneaky" / NAME / f"{NAME}.html").read_text()
    assert "the bias b is missing" in html
