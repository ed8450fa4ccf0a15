"""Speed of the grader: copies of a solution graded on one worker, then on one per core (``course bench --grading``).

Printed, never asserted. Besides wall-clock times it prints CPU seconds of the main process (gradebook
writes: the serial part), of the workers and of the kernels, and the speed-up a pure CPU task gets on
this machine just before and after (the ceiling when other work shares the cores).
"""
from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from autograder.batch import _pool, grade
from autograder.scoring import sync_gradebook
from autograder.settings import Course, GradingError, Limits, default_jobs
from autograder.state import load_state, save_state


def _burn(n: int) -> float:
    start, x = time.perf_counter(), 0
    for i in range(n):
        x += i
    return time.perf_counter() - start


def cpu_ceiling(jobs: int, n: int = 10_000_000) -> float:
    """Speed-up of a pure CPU task on ``jobs`` processes right now: the best any parallel grader could do here."""
    start = time.perf_counter()
    for _ in range(jobs):
        _burn(n)
    serial = time.perf_counter() - start
    with _pool(jobs) as pool:
        start = time.perf_counter()
        list(pool.map(_burn, [n] * jobs))
        parallel = time.perf_counter() - start
    return serial / parallel


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def bench(copies: int = 100, jobs: int | None = None, notebook: str = "01_attention", course: Course | None = None,
          limits: Limits = Limits(), echo: Callable[[str], None] = print) -> dict[str, float]:
    """Grade ``copies`` copies of the solution one at a time, then in parallel; print and return the figures."""
    course = course or Course.default()
    jobs = jobs or default_jobs()
    ceiling_before = cpu_ceiling(jobs)
    figures: dict[str, float] = {"copies": copies, "jobs": jobs, "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for n in range(copies):
            shutil.copyfile(course.notebook(notebook), folder / f"student{n:04d}.ipynb")
        for label in ("serial", "parallel"):  # nbgrader generate_assignment, once per gradebook, is not timed
            (Path(tmp) / label).mkdir()
            state = load_state(Path(tmp) / label)
            _, broken = sync_gradebook(course, Path(tmp) / label, [notebook], state)
            if broken:
                raise GradingError(broken[notebook])
            save_state(Path(tmp) / label, state)
        for label, workers in (("serial", 1), ("parallel", jobs)):
            main, children = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            rows = grade(folder, notebook, Path(tmp) / label, workers, limits, force=True, course=course,
                         echo=lambda line: None)
            figures[f"{label}_s"] = time.perf_counter() - start
            figures[f"{label}_main_cpu_s"] = _cpu_seconds(resource.RUSAGE_SELF) - main
            figures[f"{label}_worker_cpu_s"] = _cpu_seconds(resource.RUSAGE_CHILDREN) - children
            figures[f"{label}_failed"] = sum(r.status != "graded" for r in rows)
            figures[f"{label}_kernel_cpu_s"] = sum(r.kernel_cpu_s for r in rows)
            echo(f"{label}: {copies} submissions on {workers} worker(s) in {figures[f'{label}_s']:.1f} s "
                 f"({figures[f'{label}_s'] / copies:.2f} s per submission, {figures[f'{label}_failed']:g} failed); "
                 f"CPU per submission: {figures[f'{label}_main_cpu_s'] / copies:.2f} s main process, "
                 f"{figures[f'{label}_worker_cpu_s'] / copies:.2f} s worker, "
                 f"{figures[f'{label}_kernel_cpu_s'] / copies:.2f} s kernel")
    figures["speedup"] = figures["serial_s"] / figures["parallel_s"]
    figures["cpu_ceiling"] = (ceiling_before + cpu_ceiling(jobs)) / 2
    total = figures["parallel_main_cpu_s"] + figures["parallel_worker_cpu_s"] + figures["parallel_kernel_cpu_s"]
    figures["amdahl_bound"] = total / max(figures["parallel_main_cpu_s"], total / jobs)
    echo(f"speed-up with {jobs} workers: {figures['speedup']:.2f}x; a pure CPU task gets "
         f"{figures['cpu_ceiling']:.2f}x on this machine now (load average {figures['load_average']:.1f}); "
         f"with {jobs} idle cores the grader's CPU split bounds it at {figures['amdahl_bound']:.2f}x")
    return figures
