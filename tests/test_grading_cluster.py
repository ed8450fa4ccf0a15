"""`course grade --cluster`: a real Dask deployment on loopback grades the tiny class like the local pool.

A scheduler and two workers are started as the README says (`dask scheduler`, `dask worker`, on 127.0.0.1
only, each one thread), and always stopped. One test grades the class through them and compares its
grades.csv with the local pool's; another kills a worker while it grades and checks every submission
is graded exactly once.
"""
from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import nbformat
import pytest

from autograder import cluster
from autograder.batch import grade
from autograder.sandbox import sandbox_problem
from autograder.settings import GradingError, Limits
from grading_tiny import NAME, answer, insert_after, make_course

pytestmark = pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox: {sandbox_problem()}")

LIMITS = Limits(cell_timeout=60, timeout=300, memory_mb=3072, output_kb=256)
DASK = str(Path(sys.executable).parent / "dask")
ANSWERS = {"ada": {}, "bob": {"double": "return 3 * x"}, "cy": {"halve": "return x * 2"},
           "dee": {"double": "return x", "halve": "return x"}}
SCORES = {"ada": 5.0, "bob": 3.0, "cy": 2.0, "dee": 0.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@contextlib.contextmanager
def deployment(tmp: Path, workers: int = 2) -> Iterator[tuple[str, dict[str, subprocess.Popen]]]:
    """A scheduler and ``workers`` one-thread workers on loopback; yields its address and {worker address: process}."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{_free_port()}"
    log = (tmp / "dask.log").open("w")
    start = dict(stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                   "--no-dashboard"], **start)]
    try:
        processes += [subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--host",
                                        "127.0.0.1", "--no-dashboard", "--memory-limit", "0"], **start)
                      for _ in range(workers)]
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=180)
            pids = client.run(os.getpid)
        by_pid = {p.pid: p for p in processes[1:]}
        yield address, {a: by_pid[pid] for a, pid in pids.items()}
    finally:
        for process in processes:
            _stop(process)
        log.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """The tiny course, a class of four (``slow``: the same answers, each waiting 5 s) and the pool's grades."""
    root = tmp_path_factory.mktemp("cluster")
    course, release = make_course(root / "course")
    for folder, extra in (("class", None), ("slow", "import time\ntime.sleep(5)")):
        (root / folder).mkdir()
        for student, bodies in ANSWERS.items():
            nb = answer(release, **bodies)
            nbformat.write(insert_after(nb, "double", extra) if extra else nb, root / folder / f"{student}.ipynb")
    grade(root / "class", NAME, root / "pool", 2, LIMITS, course=course, echo=print)
    return {"root": root, "course": course}


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "grades.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_scheduler_and_two_workers_grade_like_the_pool(tiny):
    root = tiny["root"]
    assert {r["student"]: float(r["score"]) for r in _rows(root / "pool")} == SCORES
    with deployment(root) as (address, _):
        lines: list[str] = []
        grade(root / "class", NAME, root / "dask", 2, LIMITS, course=tiny["course"], echo=lines.append,
              cluster=address)
        assert any("2 worker(s) accept the batch" in line for line in lines), lines
        assert (root / "dask" / "grades.csv").read_bytes() == (root / "pool" / "grades.csv").read_bytes()
        for student in ANSWERS:
            assert (root / "dask" / "feedback" / student / NAME / f"{NAME}.html").is_file()
            assert (root / "dask" / "autograded" / student / NAME / f"{NAME}.ipynb").is_file()
        lines.clear()  # a re-run regrades nothing
        grade(root / "class", NAME, root / "dask", 2, LIMITS, course=tiny["course"], echo=lines.append,
              cluster=address)
        assert any("grading 0," in line for line in lines), lines

        from distributed import Client

        with Client(address, timeout="30s") as client:  # workers with another lock refuse, as the grader's fault
            wrong = dict(cluster.environment(), lock="0" * 64)
            with pytest.raises(GradingError, match=r"refused work.*its requirements.lock differs"):
                cluster._workers(client, wrong, True, print)


def test_a_worker_killed_mid_submission_loses_nothing(tiny):
    from distributed import Client

    root = tiny["root"]
    killed: list[str] = []
    with deployment(root) as (address, workers):
        def kill_one_busy_worker() -> None:
            with Client(address, timeout="30s") as client:
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    if any(client.processing().values()):
                        time.sleep(4)  # inside the submission: its kernel sleeps 5 s
                        still = [w for w, keys in client.processing().items() if keys]
                        if still:
                            victim = still[0]
                            killed.append(victim)
                            _stop(workers[victim])
                            return
                    time.sleep(0.2)

        killer = threading.Thread(target=kill_one_busy_worker)
        killer.start()
        try:
            rows = grade(root / "slow", NAME, root / "killed", 2, LIMITS, course=tiny["course"], echo=print,
                         cluster=address)
        finally:
            killer.join()
    assert killed, "no worker was killed while grading"
    assert sorted(r.student for r in rows) == sorted(ANSWERS)
    assert {r.student: r.score for r in rows} == SCORES, [(r.student, r.status, r.reason) for r in rows]
    assert sorted(r["student"] for r in _rows(root / "killed")) == sorted(ANSWERS)
