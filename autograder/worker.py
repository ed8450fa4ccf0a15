"""One submission, start to finish, in a worker process: read, restore, execute, then score and report.

The stages, in order, each in its module:

1. ``reading``: the file's bytes (read without following links) into a clean notebook;
2. ``restoring``: its structure against the release, then nbgrader's sanitising preprocessors;
3. ``deciding`` plans every graded check call from the test cells' trusted source (before anything runs);
4. ``executing``: top to bottom in a fresh sandboxed kernel, guards around every test cell;
5. ``deciding`` judges the records the checks handed out, here, and rewrites the test cells' outputs;
6. ``scoring`` and ``reporting``: nbgrader's scores, the executed notebook and the feedback page.

Saving scores into the gradebook happens in the main process (``batch``), one writer for SQLite.
A failure of the input (unreadable, refused, a file the grader cannot process) is final until the
file or the grader changes; the grader's own trouble (a kernel that cannot start) is retried next run.
"""
from __future__ import annotations

import hashlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder import deciding, files, withhold
from autograder.copies import copy_notes
from autograder.executing import execute
from autograder.inert import make_inert
from autograder.reading import read_notebook
from autograder.reporting import autograded_rel, write_failure_feedback, write_feedback
from autograder.restoring import check_modules, restore_structure, review_notes, sanitize
from autograder.scoring import auto_scores
from autograder.settings import MAX_NOTEBOOK_BYTES, Job, Row, SubmissionError


def prepare(job: Job) -> tuple[NotebookNode, list[str]]:
    """Read, restore and sanitise the submission (trusted code, before anything runs)."""
    s = job.submission
    try:
        data = files.read_bytes(s.root, s.rel, MAX_NOTEBOOK_BYTES)
    except files.UnsafePath as e:
        raise SubmissionError(str(e)) from None
    except OSError as e:
        raise SubmissionError(f"the file could not be read: {e.strerror or e}", "internal") from None
    if hashlib.sha256(data).hexdigest() != job.sha256:
        raise SubmissionError("the file changed while the batch was running; run course grade again", "internal")
    try:
        nb, notes = read_notebook(data)
        release = nbformat.read(job.release, as_version=4)
        nb, restored = restore_structure(nb, release)
        resources = {"nbgrader": {"notebook": s.notebook, "assignment": s.notebook, "student": s.student,
                                  "db_url": job.source_db}}
        nb = sanitize(nb, resources)
    except SubmissionError:
        raise
    except Exception as e:  # deterministic for this file and this grader: final until either changes
        raise SubmissionError(f"the grader could not process this file ({type(e).__name__}: {str(e)[:200]}); "
                              "please report it with the file") from None
    return nb, notes + restored + review_notes(nb, release) + copy_notes(nb, release)


def plan(nb: NotebookNode) -> deciding.Plan:
    """The graded check calls of the restored notebook; a cell that cannot be planned fails the submission."""
    try:
        return deciding.plan(nb)
    except deciding.PlanError as e:  # the course's problem: retried once the course or the grader changes
        raise SubmissionError(f"the grader cannot decide this notebook's checks: {e}", "internal") from None


WITHHELD_CACHE: Path | None = None  # where the builds are kept; None: under --out/.grading/ (a cluster node sets its own)


def withheld_package(job: Job, nb: NotebookNode, plans: deciding.Plan) -> Path | None:
    """The build of the course package its sandbox sees: without this notebook's references, expected values and
    answer keys (``withhold``); None when its test cells use no notebook's checks or there is no sandbox."""
    if not job.sandbox:
        return None
    try:
        release = nbformat.read(job.release, as_version=4)  # trusted: what the notebook's own cells use
        return withhold.build(job.package, check_modules(nb), withhold.planned_calls(plans),
                              cache=WITHHELD_CACHE or job.out / ".grading" / "withheld",
                              uses=withhold.notebook_uses(release))
    except Exception as e:  # the course's problem: never grade with the answers in reach
        raise SubmissionError(f"the grader could not withhold this notebook's answers from its kernel "
                              f"({type(e).__name__}: {str(e)[:200]})", "internal") from None


def score(job: Job, nb: NotebookNode, row: Row) -> str:
    """Keep the executed notebook, score it with nbgrader and write its feedback; returns the notebook's path."""
    from nbgrader.preprocessors import LimitOutput

    nb, _ = LimitOutput().preprocess(nb, {})
    make_inert(nb)  # formgrader shows this notebook on the Jupyter server's origin: nothing of the student runs
    rel = autograded_rel(row.student, row.notebook)
    path = files.write_text(job.out, rel, nbformat.writes(nb))
    scores = auto_scores(nb)
    row.score = sum(a or 0.0 for a, _ in scores.values())
    row.max_score = sum(m for _, m in scores.values())
    write_feedback(nb, job.manual, row, job.out)
    return str(path)


class _Watchdog(BaseException):  # not an Exception: no handler on the way may swallow it
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Watchdog()


def grade_one(job: Job) -> tuple[Row, str | None]:
    """Grade one submission. Returns its row and, when graded, the executed notebook's path."""
    if threading.current_thread() is not threading.main_thread():
        return _grade_one(job)
    signal.signal(signal.SIGALRM, _alarm)  # a backstop, should the grader itself hang on a submission
    signal.alarm(job.limits.timeout + 120)
    try:
        return _grade_one(job)
    finally:
        signal.alarm(0)


def _grade_one(job: Job) -> tuple[Row, str | None]:
    start = time.monotonic()
    s = job.submission
    row = Row(s.student, s.notebook, "graded", file=str(s.path), sha256=job.sha256, fingerprint=job.fingerprint)
    notes = [s.note] if s.note else []
    try:
        nb, prepared = prepare(job)
        plans = plan(nb)
        executed = execute(job, nb, withheld_package(job, nb, plans))
        nb.cells, row.kernel_cpu_s = executed.cells, executed.kernel_cpu_s
        decided = deciding.decide(nb.cells, plans, job.limits)
        autograded = score(job, nb, row)
        row.notes = "; ".join(notes + prepared + executed.notes + decided)
        row.seconds = time.monotonic() - start
        return row, autograded
    except SubmissionError as e:
        row.status, row.reason, row.kind = "failed", e.reason, e.kind
    except _Watchdog:
        row.status, row.reason, row.kind = "failed", "the grader stopped responding on this submission", "internal"
    except Exception as e:  # a grader bug must not stop the batch: report it on this row
        row.status, row.reason, row.kind = "failed", f"grader error: {type(e).__name__}: {e}", "internal"
    row.notes, row.score, row.max_score = "; ".join(notes), None, None
    try:
        write_failure_feedback(row, job.out)
    except OSError as e:
        row.notes = "; ".join(notes + [f"its feedback page could not be written: {e}"])
    row.seconds = time.monotonic() - start
    return row, None
