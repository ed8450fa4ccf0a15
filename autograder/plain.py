"""Plain nbgrader autograde of one trusted notebook, in a throwaway course directory.

Used by the test suite (solution -> full marks, untouched release -> zero) and by the benchmark.
The throwaway directory's ``nbgrader_config.py`` loads the course's ``autograder/nbgrader_config.py``
(its stubs, its execution timeouts) and only moves the folders and the gradebook into the throwaway
directory. The checks judge in the kernel, as in a student's notebook (the record mode of ``course
grade`` is switched off even if the caller's environment sets it). Untrusted class submissions go
through the sandboxed ``course grade`` instead.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from autograder.sandbox import RECORD_ENV
from autograder.settings import ROOT

STUDENT = "student"
COURSE_CONFIG = ROOT / "autograder" / "nbgrader_config.py"
CELL_TIMEOUT = 600  # seconds per cell: these notebooks are trusted, so only a loaded machine makes them slow
NBGRADER_TIMEOUT = 3600  # seconds for one nbgrader command (autograde executes the whole notebook)
_CONFIG = '''c = get_config()  # noqa: F821  (provided by nbgrader)
load_subconfig({course!r})  # noqa: F821  the course's configuration, then its folders moved here
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = {db!r}
c.Execute.timeout = {timeout}
'''


def _db(root: Path) -> str:
    return f"sqlite:///{root}/gradebook.db"


def _nbgrader(args: list[str], root: Path) -> None:
    from autograder.nbgrader_run import nbgrader, nbgrader_env

    env = {k: v for k, v in nbgrader_env().items() if k != RECORD_ENV}  # the checks judge in the kernel here
    try:
        proc = nbgrader(args, root, env, NBGRADER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(args[:2])} took over {NBGRADER_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed:\n{proc.stdout}\n{proc.stderr}")


def prepare(assignment: str, root: Path, solutions: Path = ROOT / "solutions") -> None:
    """Set up a course directory under ``root`` with ``assignment`` generated into its gradebook."""
    if not COURSE_CONFIG.is_file():  # nbgrader would silently go on without it
        raise RuntimeError(f"the course's nbgrader configuration {COURSE_CONFIG} is missing")
    shutil.copytree(solutions / assignment, root / "source" / assignment)
    (root / "nbgrader_config.py").write_text(_CONFIG.format(course=str(COURSE_CONFIG), root=str(root), db=_db(root),
                                                            timeout=CELL_TIMEOUT))
    _nbgrader(["generate_assignment", assignment, "--force"], root)


def autograde(submission: Path, assignment: str, root: Path) -> dict[str, tuple[float, float]]:
    """Autograde ``submission`` (a notebook) as the student's copy of ``assignment``.

    ``root`` must have been set up by :func:`prepare`. Returns {grade_id: (score, max_score)}
    for every autograded test cell; the executed notebook is at :func:`autograded_path` until the next call.
    """
    from nbgrader.api import Gradebook

    target = root / "submitted" / STUDENT / assignment
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy(submission, target / f"{assignment}.ipynb")
    _nbgrader(["autograde", assignment, "--force", f"--student={STUDENT}"], root)
    with Gradebook(_db(root)) as gb:
        notebook = gb.find_submission_notebook(assignment, assignment, STUDENT)
        return {g.name: (g.score, g.max_score) for g in notebook.grades if g.cell_type == "code"}


def autograded_path(assignment: str, root: Path) -> Path:
    """Where the last :func:`autograde` of ``assignment`` under ``root`` left the executed notebook (with outputs)."""
    return root / "autograded" / STUDENT / assignment / f"{assignment}.ipynb"
