"""Autograde one trusted notebook with plain nbgrader, in a throwaway course directory.

Used by the test suite (solution -> full marks, untouched release -> zero) and by the
benchmark. Untrusted class submissions go through the sandboxed ``course grade`` instead.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from nbgrader.api import Gradebook

from induction_course.notebooks import SOLUTIONS, nbgrader_env

STUDENT = "student"


def _nbgrader(args: list[str], root: Path) -> None:
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}",
           f"--CourseDirectory.db_url=sqlite:///{root}/gradebook.db", "--log-level=ERROR"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=nbgrader_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed:\n{proc.stdout}\n{proc.stderr}")


def prepare(assignment: str, root: Path) -> None:
    """Set up a course directory under ``root`` with ``assignment`` generated into its gradebook."""
    shutil.copytree(SOLUTIONS / assignment, root / "source" / assignment)
    _nbgrader(["generate_assignment", assignment, "--force"], root)


def autograde(submission: Path, assignment: str, root: Path) -> dict[str, tuple[float, float]]:
    """Autograde ``submission`` (a notebook) as the student's copy of ``assignment``.

    ``root`` must have been set up by :func:`prepare`. Returns {grade_id: (score, max_score)}
    for every autograded test cell.
    """
    target = root / "submitted" / STUDENT / assignment
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy(submission, target / f"{assignment}.ipynb")
    _nbgrader(["autograde", assignment, "--force", f"--student={STUDENT}"], root)
    with Gradebook(f"sqlite:///{root}/gradebook.db") as gb:
        notebook = gb.find_submission_notebook(assignment, assignment, STUDENT)
        return {g.name: (g.score, g.max_score) for g in notebook.grades if g.cell_type == "code"}
