"""Grading on a Dask cluster: ``course grade SUBMISSIONS --cluster tcp://host:8786`` (or ``--cluster local``).

The main process (``batch``) still finds the submissions, decides what to regrade and is the only writer
of the gradebook, the CSVs and the state. Here each job goes to a Dask worker, which grades it with
``worker.grade_one`` in its own bubblewrap sandbox, exactly as a pool worker does, but into a scratch
``--out`` of its own; what it wrote there (the executed notebook, the feedback page) comes back with the
row as plain data (a JSON-able dict of strings and numbers, files as base64) and the main process writes
it under the real ``--out``. Nothing the student's kernel made is ever unpickled here.

What a node needs besides the course package: bubblewrap, the exact lock (the same installed
distributions) and the same grader and course code, and read access to SUBMISSIONS at the same path.
The release notebooks and the gradebook snapshot travel with the work. A worker that lacks one of these
refuses the work (``preflight``); its reason is the grader's, reported on the console, never a student's row.
A worker that dies mid-submission has its submission rescheduled by Dask on another worker; each job's
result is recorded once.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import importlib.metadata
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

from autograder.settings import GRADER, ROOT, GradingError, Job, Row, course_package

_SCRATCH = Path(tempfile.gettempdir()) / "course-cluster"


def _lock() -> list[str]:
    """The ``name==version`` pins of this node's requirements.lock (beside the grader package); [] when none."""
    try:
        text = (ROOT / "requirements.lock").read_text()
    except OSError:
        return []
    return sorted(line.strip() for line in text.splitlines() if "==" in line and not line.startswith("#"))


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, str]:
    """What must match between the main process and a worker: the lock, the grader's and course's code, Python."""
    code = hashlib.sha256()
    for path in sorted(GRADER.glob("*.py")) + sorted(course_package().rglob("*.py")):
        code.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"lock": hashlib.sha256("\n".join(_lock()).encode()).hexdigest(), "code": code.hexdigest(),
            "python": ".".join(map(str, sys.version_info[:3]))}


@functools.lru_cache(maxsize=1)
def _unlocked() -> str | None:
    """Why this node's installed packages are not its lock's (missing lock, other versions), or None."""
    pins = _lock()
    if not pins:
        return f"it has no requirements.lock at {ROOT}"
    wrong = []
    for pin in pins:
        name, version = pin.split("==", 1)
        try:
            installed = importlib.metadata.version(name).split("+")[0]  # torch's +cpu build tag is not pinned
        except importlib.metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong.append(f"{name} {installed} (locked {version})")
    return f"its installed packages are not requirements.lock's: {', '.join(wrong[:5])}" if wrong else None


def preflight(expected: dict[str, str], sandbox: bool) -> str | None:
    """On a worker: why it must refuse this batch (no sandbox, another lock, other code), or None."""
    from autograder.sandbox import sandbox_problem

    here = f"worker {socket.gethostname()} (pid {os.getpid()})"
    problem = sandbox_problem() if sandbox else None
    if problem:
        return f"{here} has no usable sandbox: {problem}"
    unlocked = _unlocked()
    if unlocked:
        return f"{here} refuses: {unlocked}"
    mine = environment()
    what = {"python": "Python version", "lock": "requirements.lock", "code": "grader or course code"}
    for key, label in what.items():
        if mine[key] != expected[key]:
            return f"{here} refuses: its {label} differs from the main process's ({mine[key][:12]} != {expected[key][:12]})"
    return None


def bundle(jobs: list[Job]) -> dict[str, str]:
    """The files under --out the workers read (release notebooks, gradebook snapshot), by path, base64."""
    paths = {str(j.release) for j in jobs} | {j.source_db.split("file:", 1)[1].split("?")[0] for j in jobs}
    return {p: base64.b64encode(Path(p).read_bytes()).decode() for p in sorted(paths)}


def _materialise(files_: dict[str, str]) -> dict[str, Path]:
    """On a worker: the bundle's files in a scratch folder (once per content), by their main-process path."""
    digest = hashlib.sha256(repr(sorted(files_.items())).encode()).hexdigest()[:16]
    home = _SCRATCH / digest
    local = {p: home / f"{n}-{Path(p).name}" for n, p in enumerate(sorted(files_))}
    if not home.is_dir():
        _SCRATCH.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=_SCRATCH))
        for p, data in files_.items():
            (tmp / local[p].name).write_bytes(base64.b64decode(data))
        try:
            tmp.rename(home)
        except OSError:  # another thread of this node made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return local


def grade_remote(job: Job, files_: dict[str, str], expected: dict[str, str]) -> dict[str, Any]:
    """On a worker: grade one job into a scratch --out; return its row and the files written, as plain data."""
    from autograder import worker
    from autograder.scoring import db_url
    from autograder.worker import grade_one

    refused = preflight(expected, job.sandbox)
    if refused:
        return {"refused": refused}
    local = _materialise(files_)
    snapshot = job.source_db.split("file:", 1)[1].split("?")[0]
    _SCRATCH.mkdir(parents=True, exist_ok=True)
    worker.WITHHELD_CACHE = _SCRATCH / "withheld"  # the node's own builds, never shipped back as output
    with tempfile.TemporaryDirectory(prefix="out-", dir=_SCRATCH) as out:
        mine = replace(job, release=local[str(job.release)], source_db=db_url(local[snapshot], read_only=True),
                       out=Path(out), package=course_package())
        row, autograded = grade_one(mine)
        written = {str(p.relative_to(out)): base64.b64encode(p.read_bytes()).decode()
                   for p in sorted(Path(out).rglob("*")) if p.is_file()}
    return {"row": asdict(row), "autograded": autograded is not None, "files": written}


def _connect(address: str, jobs: int) -> tuple[Any, Any]:
    """A client of the scheduler at ``address``, or of a LocalCluster of ``jobs`` one-thread workers."""
    from distributed import Client, LocalCluster

    if address == "local":
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, memory_limit=0,
                               host="127.0.0.1", dashboard_address=None)
        return Client(cluster), cluster
    try:
        client = Client(address, timeout="30s")
        client.wait_for_workers(1, timeout=120)
    except (OSError, TimeoutError) as e:
        raise GradingError(f"--cluster {address}: no scheduler with workers answered ({e})") from None
    return client, None


def _workers(client: Any, expected: dict[str, str], sandbox: bool, echo: Callable[[str], None]) -> list[str]:
    """The workers that accept this batch; those that refuse are named with their reason."""
    answers = client.run(preflight, expected, sandbox)
    for address, reason in sorted(answers.items()):
        if reason:
            echo(f"cluster: {address} refuses work: {reason}")
    good = sorted(a for a, reason in answers.items() if not reason)
    if not good:
        raise GradingError("every worker of the cluster refused work: " +
                           "; ".join(sorted(r for r in answers.values() if r)))
    return good


def _row(job: Job, result: dict[str, Any], out: Path) -> tuple[Row, str | None]:
    """Write a worker's files under --out (only autograded/ and feedback/) and rebuild its row."""
    from autograder import files
    from autograder.reporting import autograded_rel

    for rel, data in result["files"].items():
        if rel.split("/", 1)[0] not in ("autograded", "feedback") or ".." in rel.split("/"):
            raise ValueError(f"a worker returned an unexpected file {rel!r}")
        files.write_bytes(out, rel, base64.b64decode(data))
    row = Row(**result["row"])
    return row, str(out / autograded_rel(row.student, row.notebook)) if result["autograded"] else None


def run_jobs(address: str, todo: list[Job], jobs: int, on_result: Callable[[Job, Row, str | None], None],
             sandbox: bool = True, echo: Callable[[str], None] = print) -> None:
    """Grade ``todo`` on the cluster at ``address``; ``on_result`` (main process) records each job once."""
    from distributed import as_completed

    from autograder.batch import _failed

    if not todo:
        return
    client, cluster = _connect(address, jobs)
    try:
        expected = environment()
        good = _workers(client, expected, sandbox, echo)
        echo(f"cluster: {len(good)} worker(s) accept the batch at {client.scheduler.address}")
        shared = client.scatter([bundle(todo)], broadcast=True, workers=good)[0]
        futures = {client.submit(grade_remote, job, shared, expected, key=f"grade-{n}-{job.sha256[:12]}",
                                 pure=False, workers=good): job for n, job in enumerate(todo)}
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
                if "refused" in result:
                    row, autograded = _failed(job.submission, f"the grader's worker refused: {result['refused']}",
                                              "internal", job.sha256, job.fingerprint), None
                else:
                    row, autograded = _row(job, result, job.out)
            except Exception as e:  # KilledWorker (died on every try), a lost scheduler, a grader bug
                row, autograded = _failed(job.submission, f"grader error on the cluster: {type(e).__name__}: {e}",
                                          "internal", job.sha256, job.fingerprint), None
            on_result(job, row, autograded)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
