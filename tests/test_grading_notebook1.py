"""`course grade` on the real Notebook 1, in sandboxes, as an instructor would run it on a class folder: the
solution, the untouched release, a solution whose metadata was stripped and that tries to switch a check off,
wrong answers dressed to pass their check from inside the student's function, or calling the reference through
routes that the graded kernel no longer has (grading_cases.TRICKS; autograder/withhold.py), honest
habits, malformed files, links of both kinds (to a student outside the class folder) and files nobody should
grade; then a manual grade and a plain re-run. The odd layouts and colliding names that do get graded are
tried on a tiny assignment (test_grading_sandbox.py): they exercise the same code, at a fifth of the cost.
About three minutes on two cores."""
from __future__ import annotations

import copy
import csv

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.batch import grade
from autograder.sandbox import sandbox_problem
from autograder.scoring import db_url
from autograder.settings import Limits
from grading_cases import (HONEST, MALFORMED, ODD_SKIPPED, REFUSED_TRICKS, REFUSED_WORDS, TRICKS, VICTIM_MARK, feedback_leaks, links_and_strays,
                           malformed, read_skipped, unaccounted, with_cells)
from course_tools.notebooks import COURSE, SOLUTIONS

NAME = "01_attention"
pytestmark = [pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox: {sandbox_problem()}"),
              pytest.mark.skipif(not (SOLUTIONS / NAME / f"{NAME}.ipynb").exists(), reason="Notebook 1 not built")]
PATCH = "from induction_course.checks import nb1\nnb1.check_project = lambda *args, **kwargs: None"
LIMITS = Limits(cell_timeout=120, timeout=600)


def _student(release: nbformat.NotebookNode, solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release with every solution cell filled in from the solution notebook (without nbgrader's markers)."""
    nb = copy.deepcopy(release)
    answers = {c.metadata["nbgrader"]["grade_id"]: "\n".join(
        line for line in c.source.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
        for c in solution.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for c in nb.cells:
        grade_id = c.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            c.source = answers[grade_id]
    return nb


def _without_bias(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy whose project() forgets the bias (check_project and check_attention_layer fail: 14 of 18)."""
    nb = copy.deepcopy(nb)
    project = next(i for i, c in enumerate(nb.cells) if c.source.startswith("def project("))
    nb.cells[project].source = nb.cells[project].source.replace("+ b", "")
    return nb, project


def _tricked(nb: nbformat.NotebookNode, trick: str) -> nbformat.NotebookNode:
    """A copy whose project() cell is the trick's: wrong (no bias), dressed to pass its check."""
    nb, project = _without_bias(nb)
    nb.cells[project].source = {**TRICKS, **REFUSED_TRICKS}[trick]
    return nb


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("nb1-submissions")
    release = nbformat.read(COURSE / NAME / f"{NAME}.ipynb", as_version=4)
    solution = nbformat.read(SOLUTIONS / NAME / f"{NAME}.ipynb", as_version=4)
    solved = _student(release, solution)
    nbformat.write(solved, folder / "solved.ipynb")
    nbformat.write(release, folder / "untouched.ipynb")
    sneaky, project = _without_bias(solved)
    sneaky.metadata = {}
    for c in sneaky.cells:
        c.metadata = {}
    sneaky.cells.insert(project + 1, nbformat.v4.new_code_cell(PATCH))
    nbformat.write(sneaky, folder / "sneaky.ipynb")
    nbformat.write(with_cells(solved, "project", [c for cells in HONEST.values() for c in cells]),
                   folder / "honest.ipynb")
    (folder / "malformed.ipynb").write_bytes(malformed(solved, *MALFORMED))
    for trick in {**TRICKS, **REFUSED_TRICKS}:
        nbformat.write(_tricked(solved, trick), folder / f"trick_{trick}.ipynb")
    # a wrong mask that returns its input itself: its record once failed to save, hiding the mistake's name
    unmasked = copy.deepcopy(solved)
    mask = next(c for c in unmasked.cells if c.source.startswith("def apply_causal_mask("))
    mask.source = mask.source.replace("return scores.masked_fill(", "scores.masked_fill(") + "\n    return scores"
    nbformat.write(unmasked, folder / "unmasked.ipynb")
    victim = copy.deepcopy(solved)  # a student outside the class folder, whom links point at
    victim.cells.append(nbformat.v4.new_code_cell(VICTIM_MARK))
    (folder.parent / "elsewhere").mkdir()
    nbformat.write(victim, folder.parent / "elsewhere" / f"{NAME}.ipynb")
    odd = links_and_strays(folder, NAME, solved, folder.parent / "elsewhere", SOLUTIONS / NAME / f"{NAME}.ipynb")
    out = tmp_path_factory.mktemp("nb1-out")
    lines: list[str] = []
    rows = grade(folder, NAME, out, 2, LIMITS, echo=lines.append)
    return {"rows": {r.student: r for r in rows}, "out": out, "folder": folder, "odd": odd, "lines": lines,
            "solution": solution}


def test_solution_gets_full_marks_and_the_release_zero(batch):
    solved, untouched = batch["rows"]["solved"], batch["rows"]["untouched"]
    assert (solved.status, solved.score, solved.max_score) == ("graded", 18, 18), solved
    # the worked solutions are the references: each function is named as a copy of one, and nothing else is said
    notes = solved.notes.split("; ")
    assert all(n.startswith("review: cell ") and ", a copy of induction_course." in n for n in notes), notes
    assert any(" defines project, a copy of induction_course.attention.project " in n for n in notes), notes
    assert (untouched.status, untouched.score, untouched.max_score) == ("graded", 0, 18), untouched


def test_stripped_metadata_is_restored_and_a_switched_off_check_still_counts(batch):
    sneaky = batch["rows"]["sneaky"]
    assert (sneaky.status, sneaky.max_score) == ("graded", 18), sneaky
    assert sneaky.score == 11, sneaky  # check_project (2), check_attention_layer (2), the TransformerLens comparison (3)
    assert "metadata was missing" in sneaky.notes and "patches the course's checks" in sneaky.notes
    html = (batch["out"] / "feedback" / "sneaky" / NAME / f"{NAME}.html").read_text()
    assert "the bias b is missing" in html


# What each trick keeps: the tests its wrong project() does not reach (the TransformerLens layer has no bias, so
# a project() without it passes there, unless the trick also breaks that check: a subclass, no record, a forgery).
# A project without its bias fails check_project (2), check_attention_layer (2) and the TransformerLens comparison
# (3), which runs on non-zero biases; a trick that changes the checks while they run fails the same tests.
TRICK_SCORES = {"patch_engine": 11, "frames": 11, "computed_import": 11, "subclass": 11, "no_record": 11,
                "forged_record": 11, "emit_collects_reference": 11,
                # out of reach: these call the reference itself, which the graded kernel does not have
                "test_cells_nb1": 11, "exercise_reference": 11, "gc_objects": 11, "hex_exec": 11}


@pytest.mark.parametrize("trick", TRICKS)
def test_a_wrong_answer_scores_zero_however_it_is_dressed(batch, trick):
    """Each trick passes the check at home (test_grading_decide); graded, its check_project scores 0."""
    row = batch["rows"][f"trick_{trick}"]
    assert (row.status, row.max_score, row.reason) == ("graded", 18, ""), row
    with Gradebook(db_url(batch["out"] / "gradebook.db")) as gb:
        assert gb.find_grade("check_project", NAME, NAME, row.student).score == 0, trick
        assert gb.find_grade("check_attention_layer", NAME, NAME, row.student).score == 0, trick
    assert row.score == TRICK_SCORES[trick], row


@pytest.mark.parametrize("trick", REFUSED_TRICKS)
def test_a_trick_on_the_whole_notebook_is_refused(batch, trick):
    row = batch["rows"][f"trick_{trick}"]
    assert row.status == "failed" and row.kind == "refused" and row.score is None, row
    assert REFUSED_WORDS[trick] in row.reason, row.reason


@pytest.mark.parametrize("student, words", [
    ("solved", "✓ project matches the reference on 6 fresh random input(s)"),
    ("solved", "✓ pattern, z and attention output of layer 1 match TransformerLens"),
    ("untouched", "project is not written yet"), ("sneaky", "the bias b is missing"),
    ("trick_subclass", "but a plain torch.Tensor was expected"), ("trick_no_record", "checks were changed while it ran"),
    ("trick_emit_collects_reference", "checks were changed while it ran"),
    ("trick_forged_record", "checks were changed while it ran"), ("trick_patch_engine", "the bias b is missing"),
    ("unmasked", "nothing is masked"), ("trick_test_cells_nb1", "not available while grading"),
])
def test_feedback_shows_the_graders_verdict(batch, student, words):
    page = (batch["out"] / "feedback" / student / NAME / f"{NAME}.html").read_text()
    assert words in page, student
    assert "your answers were recorded" not in page  # the records themselves are gone


def test_honest_habits_are_graded_normally(batch):
    """set_default_device, dtype, threads, seeds, warnings, matplotlib, tqdm, magics, timing, stderr: all at once."""
    honest = batch["rows"]["honest"]
    assert (honest.status, honest.score, honest.max_score, honest.reason) == ("graded", 18, 18, ""), honest


def test_malformed_cells_are_repaired(batch):
    row = batch["rows"]["malformed"]
    assert (row.status, row.score, row.max_score) == ("graded", 18, 18), row
    assert "repaired malformed cells" in row.notes, row.notes


@pytest.mark.parametrize("student", ["linked_solution", "linker", "nested_link", "nested_dir"])
def test_links_are_not_followed(batch, student):
    row = batch["rows"][student]
    assert row.status == "failed" and row.score is None and batch["odd"][student] in row.reason, row


def test_every_student_is_accounted_for_and_no_feedback_leaks(batch):
    out = batch["out"]
    skipped = read_skipped(out)
    strays = {file: words for file, words in ODD_SKIPPED.items() if not file.startswith("dup/")}
    assert all(words in skipped.get(file, "") for file, words in strays.items()), skipped
    assert unaccounted(batch["folder"], out) == []
    hidden = next(c.source.split("### BEGIN HIDDEN TESTS\n", 1)[1].splitlines()[0].strip()
                  for c in batch["solution"].cells if "### BEGIN HIDDEN TESTS" in c.source)
    assert len(hidden) > 20, hidden
    secrets = {"solution": "### BEGIN SOLUTION", "hidden tests": hidden, "victim": VICTIM_MARK}
    assert feedback_leaks(out, secrets, {"victim": "victim"}) == []


def test_manual_grade_then_plain_rerun_refreshes_csv_and_feedback(batch):
    out, folder = batch["out"], batch["folder"]
    feedback = out / "feedback" / "untouched" / NAME / f"{NAME}.html"
    assert "Score: 0.0 / 18.0" in feedback.read_text()
    with Gradebook(db_url(out / "gradebook.db")) as gb:  # as formgrader does: a manual score and a comment
        gb.find_grade("check_project", NAME, NAME, "untouched").manual_score = 1.5
        gb.find_comment("project", NAME, NAME, "untouched").manual_comment = "Close: see the bias."
        gb.db.commit()
    lines: list[str] = []
    rows = {r.student: r for r in grade(folder, NAME, out, 2, LIMITS, echo=lines.append)}
    assert "grading 0," in lines[0], lines
    assert rows["untouched"].score == 1.5
    with open(out / "grades.csv") as f:
        assert next(r for r in csv.DictReader(f) if r["student"] == "untouched")["score"] == "1.5"
    page = feedback.read_text()
    assert "Score: 1.5 / 18.0" in page and "Close: see the bias." in page
