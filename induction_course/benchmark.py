"""The budgets, measured: seconds and peak memory to execute each solution notebook, and
seconds to autograde a submission of it. Printed, never asserted (these machines are noisy).

Run ``course bench`` (or ``./run.sh bench``).
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder.plain import autograde, prepare
from induction_course.notebooks import SOLUTIONS, assignments

BUDGETS = {"01_attention": 30, "02_previous_token": 45, "03_induction": 60, "04_ablation": 60}
MEMORY_BUDGET_MB = 1536
AUTOGRADE_RATIO_BUDGET = 1.3


def execute(name: str) -> dict[str, float]:
    """Execute one solution notebook in a fresh kernel: {seconds, peak_mb} of the kernel process."""
    path = SOLUTIONS / name / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the kernel, reaped at shutdown
    return {"seconds": seconds, "peak_mb": peak_kb / 1024}


def _execute_in_subprocess(name: str) -> dict[str, float]:
    """Run :func:`execute` in a new process, so each notebook's peak memory is its own."""
    out = subprocess.run([sys.executable, "-m", "induction_course.benchmark", "--execute", name],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _autograde_seconds(name: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare(name, root)
        start = time.perf_counter()
        grades = autograde(SOLUTIONS / name / f"{name}.ipynb", name, root)
        seconds = time.perf_counter() - start
    lost = {k: v for k, v in grades.items() if v[0] != v[1]}
    if lost:
        print(f"  warning: the solution of {name} lost points when autograded: {lost}")
    return seconds


def run(names: list[str] | None = None) -> None:
    """Print the benchmark table for ``names`` (default: every notebook)."""
    names = names or assignments()
    print(f"{'notebook':<20}{'execute s':>10}{'budget':>8}{'peak MB':>9}{'autograde s':>13}{'ratio':>7}")
    for name in names:
        run_stats = _execute_in_subprocess(name)
        grade_s = _autograde_seconds(name)
        ratio = grade_s / run_stats["seconds"]
        flags = []
        if run_stats["seconds"] > BUDGETS.get(name, 60):
            flags.append("over time budget")
        if run_stats["peak_mb"] > MEMORY_BUDGET_MB:
            flags.append("over memory budget")
        if ratio > AUTOGRADE_RATIO_BUDGET:
            flags.append(f"autograde > {AUTOGRADE_RATIO_BUDGET}x execute")
        print(f"{name:<20}{run_stats['seconds']:>10.1f}{BUDGETS.get(name, 60):>8}{run_stats['peak_mb']:>9.0f}"
              f"{grade_s:>13.1f}{ratio:>7.2f}  {'; '.join(flags) or 'ok'}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--execute"]:
        print(json.dumps(execute(sys.argv[2])))
    else:
        run(sys.argv[1:] or None)
