"""The batch: ``grade(SUBMISSIONS)`` is ``course grade``.

It finds every file under SUBMISSIONS (``submissions``), brings the gradebook's source cells up to
date (``scoring.sync_gradebook``), grades each new or changed submission on a pool of worker
processes (``worker``), records each result in nbgrader's gradebook here, in the one process that
writes it, and writes ``grades.csv``, ``skipped.csv`` and the re-run state under --out.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import nbformat

from autograder import files
from autograder.reporting import (autograded_rel, copy_receipts, manual_digest, skipped_summary, write_csv, write_failure_feedback,
                                  write_feedback, write_skipped)
from autograder.restoring import check_modules
from autograder.sandbox import sandbox_problem
from autograder.scoring import (check_gradebook, db_url, manual_grades, refresh_score, release_rel, save_grades,
                                sync_gradebook)
from autograder.settings import Course, GradingError, Job, Limits, Row, Submission, default_jobs
from autograder.state import fingerprint, journal_row, load_state, package_digest, reusable, save_state
from autograder.submissions import catalog, find_submissions
from autograder.worker import grade_one


def _die_with_parent(parent: int) -> None:
    """Have Linux SIGKILL this worker when the grader dies (SIGKILL included); its sandbox follows it
    (bwrap ``--die-with-parent``). Exit at once if the grader is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _one_thread(parent: int) -> None:
    """A worker's first acts: die with the grader; torch on one thread, so it never touches the OpenMP pool
    its parent forked from."""
    _die_with_parent(parent)
    import torch

    torch.set_num_threads(1)


def _pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes: forked (they start with nbgrader imported, and callers need no
    ``if __name__ == "__main__"``), each on one torch thread. torch's OpenMP pool is not fork-safe: a worker
    forked from a process that already used several torch threads (a test session, a notebook) would hang on
    its first parallel operation. ``spawn`` where there is no fork (Windows).
    """
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method),
                               initializer=_one_thread, initargs=(os.getpid(),))


def run_jobs(todo: list[Job], jobs: int, on_result: Callable[[Job, Row, str | None], None]) -> None:
    """Grade ``todo`` on ``jobs`` worker processes; a crashed worker fails only its own submissions."""
    import jupyter_client.manager  # noqa: F401  (imported once here, so forked workers start warm)
    import nbclient  # noqa: F401
    import nbconvert.exporters  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401

    attempts: dict[int, int] = {}
    remaining = list(enumerate(todo))
    while remaining:
        retry = []
        with _pool(jobs) as pool:
            futures: dict[Future, tuple[int, Job]] = {pool.submit(grade_one, job): (n, job) for n, job in remaining}
            for future in as_completed(futures):
                n, job = futures[future]
                try:
                    row, autograded = future.result()
                except BrokenProcessPool:
                    attempts[n] = attempts.get(n, 0) + 1
                    if attempts[n] < 2:
                        retry.append((n, job))
                        continue
                    row, autograded = _failed(job.submission, "the grader's worker process crashed twice",
                                              "internal", job.sha256, job.fingerprint), None
                except Exception as e:
                    row, autograded = _failed(job.submission, f"grader error: {type(e).__name__}: {e}", "internal",
                                              job.sha256, job.fingerprint), None
                on_result(job, row, autograded)
        remaining = retry


def _failed(s: Submission, reason: str, kind: str, sha: str = "", fp: str = "") -> Row:
    return Row(s.student, s.notebook, "failed", reason=reason, kind=kind, notes=s.note, file=str(s.path), sha256=sha,
               fingerprint=fp)


def _refresh(gb: Any, row: Row, out: Path) -> None:
    """Bring a graded row up to date with the gradebook: its score, and its feedback if manual grades changed."""
    try:
        refresh_score(gb, row)
    except Exception:  # the gradebook lost this submission: keep the last known score
        return
    manual = manual_grades(gb, row.notebook, row.student)
    if row.manual != manual_digest(manual):
        try:
            nb = nbformat.reads(files.read_bytes(out, autograded_rel(row.student, row.notebook)).decode(), as_version=4)
            write_feedback(nb, manual, row, out)
        except (OSError, ValueError) as e:  # the executed notebook was removed or damaged: --force regrades
            row.notes = "; ".join(filter(None, [row.notes, f"feedback not refreshed: {e}"]))


def _setup(submissions: Path, assignment: str | None, out: Path, course: Course, sandbox: bool,
           echo: Callable[[str], None]) -> dict:
    """Check the arguments, the sandbox and --out; return the course's notebooks as the finder knows them."""
    scripts = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from here when it creates a gradebook
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder of submissions")
    known = catalog({name: course.notebook(name) for name in course.assignments()})
    if assignment and assignment not in known:
        raise GradingError(f"unknown notebook {assignment!r}; the course has: {', '.join(known) or 'none'}")
    problem = sandbox_problem() if sandbox else None
    if problem:
        raise GradingError(problem)
    if not sandbox:
        echo("WARNING: --unsafe-no-sandbox: student code runs with your permissions; trusted notebooks only.")
    try:
        files.make_out(out, ".grading", "autograded", "feedback")
    except OSError as e:
        raise GradingError(f"cannot write to --out: {e}") from None
    try:
        files.lock_out(out)  # held until this run ends (or dies): a second run on --out is told and stops
    except files.OutBusy as e:
        raise GradingError(str(e)) from None
    check_gradebook(out)
    return known


def grade(submissions: Path, assignment: str | None = None, out: Path | None = None, jobs: int | None = None,
          limits: Limits = Limits(), force: bool = False, course: Course | None = None, sandbox: bool = True,
          echo: Callable[[str], None] = print, cluster: str | None = None) -> list[Row]:
    """Grade every submission under ``submissions``; write ``out/grades.csv``; return all rows of ``out``.

    ``cluster``: a Dask scheduler's address, or ``local``, to grade there (``autograder.cluster``) instead of
    on this machine's pool.
    """
    from nbgrader.api import Gradebook

    course = course or Course.default()
    out = Path(out or course.root / "autograder").absolute()
    submissions = Path(submissions).resolve()
    known = _setup(submissions, assignment, out, course, sandbox, echo)
    found, skipped = find_submissions(submissions, known, assignment, out)
    state = load_state(out)
    names = sorted({s.notebook for s in found if s.notebook and not s.problem})
    snapshot, broken = sync_gradebook(course, out, names, state)
    for name, reason in broken.items():
        echo(f"cannot grade {name}: {reason}")
    digests = {name: package_digest(check_modules(nbformat.read(course.notebook(name), as_version=4)), course.package)
               for name in names}
    url = db_url(out / "gradebook.db")
    rows = {key: Row(**value) for key, value in state["rows"].items()}
    todo: list[Job] = []
    with Gradebook(url) as gb:
        for s in found:
            try:
                sha = "" if s.problem else files.sha256(s.root, s.rel)
            except OSError as e:
                s = Submission(s.student, s.root, s.rel, s.notebook, s.note, str(e))
                sha = ""
            if s.problem or not s.notebook or s.notebook in broken:
                reason = s.problem or broken.get(s.notebook, s.note).splitlines()[0]
                rows[s.key] = _failed(s, reason, "internal" if s.notebook in broken else "input", sha)
                write_failure_feedback(rows[s.key], out)
                continue
            fp = fingerprint(state["sources"][s.notebook], digests[s.notebook], limits, sandbox)
            if not force and reusable(state["rows"].get(s.key), sha, fp):
                continue
            todo.append(Job(s, out / release_rel(s.notebook), db_url(snapshot, read_only=True), out, limits,
                            course.package, sandbox, fp, sha, manual_grades(gb, s.notebook, s.student)))
        echo(f"{len(found)} submission(s) found; grading {len(todo)}, {len(found) - len(todo)} unchanged or failed "
             f"before running (--force regrades them), on {jobs or default_jobs()} worker(s); {skipped_summary(skipped)}")
        done, saved = 0, [time.monotonic()]

        def record(job: Job, row: Row, autograded: str | None) -> None:
            nonlocal done
            done += 1
            if row.status == "graded" and autograded:
                try:
                    executed = files.read_bytes(out, autograded_rel(row.student, row.notebook)).decode()
                    save_grades(gb, url, row, nbformat.reads(executed, as_version=4), job.submission.timestamp)
                except Exception as e:
                    row.status, row.kind = "failed", "internal"
                    row.reason = f"could not save grades to the gradebook: {type(e).__name__}: {e}"
            rows[job.submission.key] = row
            state["rows"][job.submission.key] = asdict(row)
            journal_row(out, job.submission.key, state["rows"][job.submission.key])  # survives a kill from here
            if time.monotonic() - saved[0] > 10:  # progress survives a crash; not O(class size) per result
                save_state(out, state)
                saved[0] = time.monotonic()
            result = f"{row.score:g}/{row.max_score:g}" if row.status == "graded" else f"FAILED: {row.reason}"
            echo(f"[{done}/{len(todo)}] {row.student} {row.notebook}: {result} ({row.seconds:.1f} s)")

        if cluster:
            from autograder import cluster as dask_cluster

            dask_cluster.run_jobs(cluster, todo, jobs or default_jobs(), record, sandbox, echo)
        else:
            run_jobs(todo, jobs or default_jobs(), record)
        receipts = {s.key: s for s in found}
        for key, row in rows.items():
            if row.status == "graded":
                _refresh(gb, row, out)
                if key in receipts:
                    copy_receipts(receipts[key], row, out)
            state["rows"][key] = asdict(row)
    save_state(out, state)
    write_csv(rows.values(), out / "grades.csv")
    write_skipped(skipped, out / "skipped.csv")
    failed = sum(r.status == "failed" for r in rows.values())
    echo(f"wrote {out / 'grades.csv'}: {len(rows) - failed} graded, {failed} failed; feedback in {out / 'feedback'}; "
         f"{len(skipped)} skipped, listed in {out / 'skipped.csv'}")
    files.unlock_out(out)
    return sorted(rows.values(), key=lambda r: (r.student, r.notebook, r.file))
