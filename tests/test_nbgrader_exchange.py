"""nbgrader's whole loop on one machine, with the course's own configuration and a local exchange.

Instructor and student are the same user here, as on a laptop: release, fetch, validate, submit, collect,
grade with ``course grade``, release feedback, fetch feedback. Everything runs from the repository root, as the
README says, with nbgrader's command line; the exchange comes from ``COURSE_EXCHANGE`` and the course
directories are redirected into a temporary folder, so the repository is untouched. The student's work is
Notebook 1's released notebook with every answer filled in from the solution.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools.notebooks import COURSE, ROOT
from labserver import filled_course_notebook

NAME = "01_attention"
COURSE_ID = "induction-heads"
QUICK_S = 120  # an nbgrader command that only copies files
RUN_S = 900  # one that executes the notebook (kernel start included), on a loaded 2-core machine


def _run(cmd: list[str], env: dict, timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd[:4])} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def test_release_fetch_validate_submit_collect_grade_feedback(tmp_path):
    exchange, student, course = tmp_path / "exchange", tmp_path / "student", tmp_path / "course"
    exchange.mkdir()
    course.mkdir()
    env = {**os.environ, "COURSE_EXCHANGE": str(exchange), "COURSE_DEVICE": "cpu"}
    env.pop("JUPYTERHUB_API_URL", None)
    bindir = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join([str(bindir), env.get("PATH", "")])
    nbgrader = [sys.executable, "-m", "nbgrader"]
    # The instructor's course directories, out of the repository (the config's defaults live in autograder/).
    instructor = [f"--CourseDirectory.submitted_directory={course / 'submitted'}",
                  f"--CourseDirectory.autograded_directory={course / 'autograded'}",
                  f"--CourseDirectory.feedback_directory={course / 'feedback'}",
                  f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    as_student = [f"--Exchange.assignment_dir={student}"]

    _run(nbgrader + ["release_assignment", NAME, *instructor], env, QUICK_S)
    assert (exchange / COURSE_ID / "outbound" / NAME / f"{NAME}.ipynb").is_file()
    listed = _run(nbgrader + ["list", *as_student], env, QUICK_S)
    assert f"{COURSE_ID} {NAME}" in listed, listed

    _run(nbgrader + ["fetch_assignment", NAME, *as_student], env, QUICK_S)
    fetched = student / NAME / f"{NAME}.ipynb"
    assert fetched.read_text() == (COURSE / NAME / f"{NAME}.ipynb").read_text()

    nbformat.write(filled_course_notebook(NAME), fetched)
    validated = _run(nbgrader + ["validate", str(fetched)], env, RUN_S)
    assert "Success! Your notebook passes all the tests." in validated, validated[-3000:]

    _run(nbgrader + ["submit", NAME, *as_student], env, QUICK_S)
    _run(nbgrader + ["collect", NAME, *instructor], env, QUICK_S)
    submitted = list((course / "submitted").glob(f"*/{NAME}/{NAME}.ipynb"))
    assert len(submitted) == 1, list((course / "submitted").rglob("*"))
    student_id = submitted[0].parent.parent.name

    # The course's grader, on what nbgrader collected. The work is the course's own solution (trusted), so
    # no sandbox: the sandbox has its own tests, and this one runs wherever nbgrader does.
    _run([str(bindir / "course"), "grade", str(course / "submitted"), "--out", str(course), "--assignment", NAME,
          "--jobs", "1", "--unsafe-no-sandbox", "--cell-timeout", "300", "--timeout", str(RUN_S)], env, RUN_S + 60)
    with open(course / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["student"], r["notebook"], r["status"]) for r in rows] == [(student_id, NAME, "graded")], rows
    assert float(rows[0]["score"]) == float(rows[0]["max_score"]) > 0, rows

    feedback = course / "feedback" / student_id / NAME
    assert (feedback / f"{NAME}.html").is_file(), list((course / "feedback").rglob("*"))
    # nbgrader's release_feedback reads both receipts beside the report (its generate_feedback copies them).
    for receipt in ("timestamp.txt", "submission_secret.txt"):
        assert (feedback / receipt).read_bytes() == (submitted[0].parent / receipt).read_bytes(), receipt
    _run(nbgrader + ["release_feedback", NAME, *instructor], env, QUICK_S)
    _run(nbgrader + ["fetch_feedback", NAME, *as_student], env, QUICK_S)
    reports = list((student / NAME / "feedback").glob(f"*/{NAME}.html"))
    assert len(reports) == 1, list(student.rglob("*"))
    assert reports[0].read_bytes() == (feedback / f"{NAME}.html").read_bytes()
