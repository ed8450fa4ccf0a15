"""Scoring with nbgrader: the gradebook's source cells, each test cell's score, and the gradebook's totals.

``sync_gradebook`` runs ``nbgrader generate_assignment`` (source cells with hidden tests into the
gradebook, the release aside for restoring); ``auto_scores`` is nbgrader's ``determine_grade`` on an
executed notebook; ``save_grades`` is nbgrader's ``SaveAutoGrades``, which keeps manual grades and
comments; ``refresh_score`` reads a row's totals back, manual grades included.
"""
from __future__ import annotations

import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

from nbformat import NotebookNode

from autograder import files
from autograder.restoring import meta
from autograder.settings import Course, GradingError, Row

NBGRADER_TIMEOUT = 600  # seconds for one `nbgrader generate_assignment` (it executes nothing)
GRADEBOOK_FILES = ("gradebook.db", "gradebook.db-journal", "gradebook.db-wal", "gradebook.db-shm")


def db_url(path: Path, read_only: bool = False) -> str:
    return f"sqlite:///file:{path}?mode=ro&uri=true" if read_only else f"sqlite:///{path}"


def release_rel(name: str) -> str:
    """Where, under --out, the release of notebook ``name`` is kept for restoring."""
    return f".grading/release/{name}/{name}.ipynb"


GRADEBOOK_WAIT = 60  # seconds to wait for another process's write lock on the gradebook


def check_gradebook(out: Path, wait: float = GRADEBOOK_WAIT) -> None:
    """Refuse a gradebook (or its journals) that is a symbolic link; wait ``wait`` s at most for one that
    another process holds locked, then stop naming the likely holder."""
    import sqlite3

    for name in GRADEBOOK_FILES:
        if (out / name).is_symlink():
            raise GradingError(f"{out / name} is a symbolic link; the grader writes only real files under --out")
    if not (out / "gradebook.db").is_file():
        return
    db = sqlite3.connect(out / "gradebook.db", timeout=wait, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")  # the write lock SaveAutoGrades will need, taken and given back
        db.execute("ROLLBACK")
    except sqlite3.OperationalError as e:
        raise GradingError(f"{out / 'gradebook.db'} stayed locked by another process for {wait:g} s ({e}): most "
                           "likely nbgrader's formgrader saving a grade (./run.sh instructor), a `nbgrader` "
                           "command, or another course grade on this --out; close it and run again") from None
    finally:
        db.close()


def generate(course: Course, out: Path, name: str) -> None:
    """nbgrader generate_assignment: source cells (with hidden tests) into the gradebook, release aside."""
    from autograder.nbgrader_run import generate_assignment

    check_gradebook(out)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = generate_assignment(name, course.config.parent, f"--CourseDirectory.root={course.root}",
                                       f"--CourseDirectory.source_directory={course.source}",
                                       f"--CourseDirectory.release_directory={tmp}/release",
                                       f"--CourseDirectory.db_url={db_url(out / 'gradebook.db')}",
                                       timeout=NBGRADER_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise GradingError(f"nbgrader generate_assignment {name} took over {NBGRADER_TIMEOUT} s") from None
        generated = Path(tmp) / "release" / name / f"{name}.ipynb"
        if proc.returncode != 0 or not generated.exists():
            raise GradingError(f"nbgrader generate_assignment {name} failed (if cells were added or removed "
                               f"after grading started, grade into a new --out folder):\n{proc.stderr}{proc.stdout}")
        files.write_bytes(out, release_rel(name), generated.read_bytes())


def sync_gradebook(course: Course, out: Path, names: Iterable[str], state: dict) -> tuple[Path | None, dict[str, str]]:
    """Bring the gradebook's source cells up to date. Returns a snapshot for the workers to read, and
    the notebooks that could not be synced, with why (their submissions fail; the others are graded)."""
    from nbgrader.api import Gradebook

    from autograder.state import source_digest

    names, broken = list(names), {}
    if not names:
        return None, broken
    for name in names:
        digest = source_digest(course, name)
        if state["sources"].get(name) != digest or not (out / release_rel(name)).is_file():
            try:
                generate(course, out, name)
                state["sources"][name] = digest
            except GradingError as e:
                broken[name] = str(e)
    if not (out / "gradebook.db").exists():
        return None, broken
    snapshot = files.write_bytes(out, ".grading/source.db", files.read_bytes(out, "gradebook.db"))
    Gradebook(db_url(snapshot)).close()  # creates nbgrader's default course row, so readers never write
    return snapshot, broken


def manual_grades(gb: Any, notebook: str, student: str) -> dict[str, dict[str, Any]]:
    """Manual scores and comments already in the gradebook for one submission."""
    from nbgrader.api import MissingEntry

    try:
        sub = gb.find_submission_notebook(notebook, notebook, student)
    except MissingEntry:
        return {}
    given = [(g.name, "manual_score", g.manual_score) for g in sub.grades] + [
        (g.name, "extra_credit", g.extra_credit) for g in sub.grades] + [
        (c.name, "comment", c.manual_comment) for c in sub.comments]
    result: dict[str, dict[str, Any]] = {}
    for name, key, value in given:  # only what an instructor entered: {} until someone grades by hand
        if value is not None and value != "":
            result.setdefault(name, {})[key] = value
    return result


def auto_scores(nb: NotebookNode) -> dict[str, tuple[float | None, float]]:
    """nbgrader's determine_grade for every grade cell: grade_id -> (score or None if manual, max)."""
    from nbgrader.utils import determine_grade, is_grade

    return {meta(c)["grade_id"]: determine_grade(c) for c in nb.cells if is_grade(c)}


def save_grades(gb: Any, url: str, row: Row, nb: NotebookNode, timestamp: str | None) -> None:
    """nbgrader's SaveAutoGrades for one executed notebook; fills the row's score from the gradebook."""
    from nbgrader.preprocessors import SaveAutoGrades

    gb.update_or_create_student(row.student)
    with warnings.catch_warnings():  # nbgrader's own autoflush warnings on a first submission
        warnings.simplefilter("ignore")
        gb.update_or_create_submission(row.notebook, row.student, **({"timestamp": timestamp} if timestamp else {}))
    resources = {"nbgrader": {"notebook": row.notebook, "assignment": row.notebook, "student": row.student,
                              "db_url": url}}
    SaveAutoGrades().preprocess(nb, resources)
    refresh_score(gb, row)


def refresh_score(gb: Any, row: Row) -> None:
    """Score, maximum and needs-manual-grade of a graded row, from the gradebook (manual grades win)."""
    gb.db.expire_all()
    sub = gb.find_submission_notebook(row.notebook, row.notebook, row.student)
    row.score, row.max_score, row.needs_manual_grade = float(sub.score), float(sub.max_score), bool(
        sub.needs_manual_grade)
