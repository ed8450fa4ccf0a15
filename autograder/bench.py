"""Speed of the grader: copies of a solution graded on one worker, then on one per core (``course bench --grading``),
then on a Dask ``LocalCluster`` of 1 and 2 workers (``--cluster local``, the path a real cluster takes).

Printed, never asserted. Besides wall-clock times it prints CPU seconds of the main process (gradebook
writes: the serial part), of the workers and of the kernels, and the speed-up a pure CPU task gets on
this machine just before and after (the ceiling when other work shares the cores). For the cluster it
prints the main process's share of all CPU spent per submission and the number of workers at which the
main process, recording results one at a time, would be busy all the time (adding more would not help).
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
          limits: Limits = Limits(), echo: Callable[[str], None] = print, cluster: bool = True) -> dict[str, float]:
    """Grade ``copies`` copies of the solution one at a time, then in parallel, then on a LocalCluster of 1 and 2
    workers (unless ``cluster`` is false); print and return the figures."""
    course = course or Course.default()
    jobs = jobs or default_jobs()
    ceiling_before = cpu_ceiling(jobs)
    figures: dict[str, float] = {"copies": copies, "jobs": jobs, "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for n in range(copies):
            shutil.copyfile(course.notebook(notebook), folder / f"student{n:04d}.ipynb")
        runs = [("serial", 1, None), ("parallel", jobs, None)]
        runs += [("cluster1", 1, "local"), ("cluster2", 2, "local")] if cluster else []
        for label, _, _ in runs:  # nbgrader generate_assignment, once per gradebook, is not timed
            (Path(tmp) / label).mkdir()
            state = load_state(Path(tmp) / label)
            _, broken = sync_gradebook(course, Path(tmp) / label, [notebook], state)
            if broken:
                raise GradingError(broken[notebook])
            save_state(Path(tmp) / label, state)
        for label, workers, address in runs:
            main, children = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            rows = grade(folder, notebook, Path(tmp) / label, workers, limits, force=True, course=course,
                         echo=lambda line: None, cluster=address)
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
    if cluster:
        _cluster_figures(figures, copies, echo)
    return figures


def _cluster_figures(figures: dict[str, float], copies: int, echo: Callable[[str], None]) -> None:
    """Speed-ups of the LocalCluster runs against the pool, and where the main process would saturate.

    The main process's CPU here includes the in-process scheduler and nannies of the LocalCluster (on a real
    cluster the scheduler runs elsewhere), so its share is an upper bound. Worker-side CPU is the reaped
    children's (workers and their kernels), at least the kernels' own.
    """
    for n in (1, 2):
        label = f"cluster{n}"
        figures[f"{label}_speedup_vs_pool1"] = figures["serial_s"] / figures[f"{label}_s"]
        figures[f"{label}_speedup_vs_pool"] = figures["parallel_s"] / figures[f"{label}_s"]
    main = figures["cluster2_main_cpu_s"]
    side = max(figures["cluster2_worker_cpu_s"], figures["cluster2_kernel_cpu_s"])
    figures["cluster_main_share"] = main / (main + side)
    figures["cluster_saturation_workers"] = side / main if main else float("inf")
    echo(f"cluster: 1 worker {figures['cluster1_s'] / copies:.2f} s per submission "
         f"({figures['cluster1_speedup_vs_pool1']:.2f}x the pool's 1 worker), 2 workers "
         f"{figures['cluster2_s'] / copies:.2f} s per submission ({figures['cluster2_speedup_vs_pool1']:.2f}x the "
         f"pool's 1 worker, {figures['cluster2_speedup_vs_pool']:.2f}x the pool's {figures['jobs']:g}); the main "
         f"process did {100 * figures['cluster_main_share']:.1f} % of the CPU work ({main / copies:.2f} s per "
         f"submission, scheduler included), so it would saturate at about "
         f"{figures['cluster_saturation_workers']:.0f} busy workers")
