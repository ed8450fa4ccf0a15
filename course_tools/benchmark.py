"""The budgets, measured and printed, never asserted (shared machines are noisy).

``course bench`` (``./run.sh bench``) prints:

- for each solution notebook: seconds to execute it on a quiet machine and beside two CPU-bound
  processes (which the benchmark starts and stops itself), their ratio, the kernel's peak memory, and
  the seconds to autograde it with plain nbgrader;
- training: seconds to train the 2-layer model, the step at which induction appears, the number of
  steps, and the cost of one training step through the TransformerLens bridge against plain torch;
- the catalogue of students' mistakes: how many the checks name (``tests/catalogue``);
- with ``--threads``: torch thread options compared, quiet and loaded (see :mod:`induction_course.threads`);
- with ``--baseline DIR``: each notebook of another checkout of the course (e.g. an older commit, made with
  ``git worktree add DIR COMMIT``) executed the same way on this machine, beside this one's quiet time.

The budgets were set on a machine where one training step of the 2-layer model through the bridge, at one
thread, took ``REFERENCE_STEP_MS``; the benchmark times that step here and prints the ratio, so that a slower
machine's figures can be read against them.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import nbformat
from nbclient import NotebookClient

from course_tools.notebooks import ROOT, SOLUTIONS, assignments

QUIET_BUDGETS = {"01_attention": 5.9, "02_previous_token": 7.6, "03_induction": 20.0, "04_ablation": 18.0}
LOAD_RATIO_BUDGET = 2.0
MEMORY_BUDGET_MB = 1536
TRAINING_BUDGET_S = 10.0
STEPS_BUDGET = 250
REFERENCE_STEP_MS = 43.8  # one bridge training step at one thread where the budgets were set
CELL_TIMEOUT_S = 1800
BUSY = 2

#: label -> (intra-op threads: a number or "cores" for torch's default; inter-op threads or None; environment).
#: An empty OMP_WAIT_POLICY is OpenMP's default (spin a while, then sleep); the course sets PASSIVE.
THREAD_OPTIONS: dict[str, tuple[int | str, int | None, dict[str, str]]] = {
    "torch default (one per core)": ("cores", None, {"OMP_WAIT_POLICY": ""}),
    "1 thread": (1, None, {"OMP_WAIT_POLICY": ""}),
    "1 thread, 1 inter-op thread": (1, 1, {"OMP_WAIT_POLICY": ""}),
    "one per core, PASSIVE (the course's)": ("cores", None, {"OMP_WAIT_POLICY": "PASSIVE"}),
}


@contextlib.contextmanager
def busy(n: int = BUSY) -> Iterator[None]:
    """``n`` CPU-bound processes running beside the block (a busy laptop or a shared runner)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)


def execute(name: str, root: Path = ROOT) -> dict[str, float]:
    """Execute one solution notebook of the checkout ``root`` in a fresh kernel: {seconds, peak_mb} of the kernel."""
    path = root / "solutions" / name / f"{name}.ipynb"
    if root != ROOT:  # the kernel imports that checkout's package, with torch's thread defaults of its time
        os.environ["PYTHONPATH"] = str(root)
        os.environ.pop("OMP_WAIT_POLICY", None)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, startup_timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the kernel, reaped at shutdown
    return {"seconds": seconds, "peak_mb": peak_kb / 1024}


def _in_subprocess(*args: str, env: dict[str, str] | None = None) -> dict:
    """Run ``python -m course_tools.benchmark <args>`` and read the JSON it prints last."""
    out = subprocess.run([sys.executable, "-m", "course_tools.benchmark", *args], capture_output=True,
                         text=True, check=True, timeout=3 * CELL_TIMEOUT_S, env={**os.environ, **(env or {})}).stdout
    return json.loads(out.strip().splitlines()[-1])


def _autograde_seconds(name: str) -> float:
    from autograder.plain import autograde, prepare

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


def _baseline_seconds(name: str, baseline: Path | None) -> str:
    """Quiet seconds of ``name`` from the checkout ``baseline`` (its own package first on the path), as text."""
    if baseline is None:
        return ""
    if not (baseline / "solutions" / name / f"{name}.ipynb").is_file():
        return f"{'-':>11}"
    return f"{_in_subprocess('--execute', name, str(baseline.resolve()))['seconds']:>11.1f}"


def _against(seconds: float, budget: float, factor: float) -> str:
    """How ``seconds`` stand against ``budget`` here and at the speed of the budgets' machine (``factor`` slower)."""
    if seconds <= budget:
        return "ok"
    if seconds / factor <= budget:
        return f"over quiet budget here; within it at the budgets' machine speed ({seconds / factor:.1f} s)"
    return f"over quiet budget, even at the budgets' machine speed ({seconds / factor:.1f} s)"


def notebooks_table(names: list[str], baseline: Path | None = None, factor: float = 1.0) -> None:
    """One row per notebook: quiet seconds (and the ``baseline`` checkout's), loaded seconds, their ratio, peak
    memory, autograde seconds."""
    print(f"{'notebook':<20}{'quiet s':>9}{'budget':>8}{'baseline s' if baseline else '':>11}{'loaded s':>10}"
          f"{'ratio':>7}{'peak MB':>9}{'autograde s':>13}")
    for name in names:
        budget = QUIET_BUDGETS.get(name, 60)
        quiet = _in_subprocess("--execute", name)
        before = _baseline_seconds(name, baseline)
        with busy():
            loaded = _in_subprocess("--execute", name)
        grade_s = _autograde_seconds(name)
        ratio = loaded["seconds"] / quiet["seconds"]
        flags = [flag for flag, bad in (
            (_against(quiet["seconds"], budget, factor), quiet["seconds"] > budget),
            (f"loaded > {LOAD_RATIO_BUDGET}x quiet", ratio > LOAD_RATIO_BUDGET),
            ("over memory budget", quiet["peak_mb"] > MEMORY_BUDGET_MB)) if bad]
        print(f"{name:<20}{quiet['seconds']:>9.1f}{budget:>8}{before:>11}{loaded['seconds']:>10.1f}"
              f"{ratio:>7.2f}{quiet['peak_mb']:>9.0f}{grade_s:>13.1f}  {'; '.join(flags) or 'ok'}", flush=True)


def training_figures() -> dict[str, float]:
    """Seconds and steps to train the 2-layer model (seed 0), and the bridge's cost per training step."""
    from induction_course import training

    _, history = training.train_induction_model(n_layers=2, seed=0, progress=False, device="cpu")
    step_ms = training.step_milliseconds()
    return {"seconds": float(history["seconds"]), "jump": training.jump_step(history),
            "steps": int(history["step"][-1]), "bridge_ms": step_ms["bridge"], "plain_ms": step_ms["plain"]}


def machine_factor() -> float:
    """How much slower than where the budgets were set this machine runs one bridge training step at one thread."""
    ms = _in_subprocess("--reference-step", env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})["bridge"]
    return ms / REFERENCE_STEP_MS


def training_table(factor: float = 1.0) -> None:
    quiet = _in_subprocess("--training")
    with busy():
        loaded = _in_subprocess("--training")
    print(f"\ntraining the 2-layer model (seed 0): {quiet['seconds']:.1f} s quiet (budget {TRAINING_BUDGET_S:g}: "
          f"{_against(quiet['seconds'], TRAINING_BUDGET_S, factor)}), {loaded['seconds']:.1f} s beside {BUSY} busy processes (ratio {loaded['seconds'] / quiet['seconds']:.2f}); "
          f"induction at step {quiet['jump']} of {quiet['steps']} (budget {STEPS_BUDGET})")
    print(f"one training step: {quiet['bridge_ms']:.1f} ms through the TransformerLens bridge, "
          f"{quiet['plain_ms']:.1f} ms in plain torch (ratio {quiet['bridge_ms'] / quiet['plain_ms']:.2f})")


def text_model_line() -> None:
    """Notebook 5's text models: the training script's time as its checkpoints record it, and the shipped size.

    Retraining takes about 14 minutes, so the benchmark reads the time of the run that made the shipped files
    (``python -m induction_course.text_training``) rather than repeating it."""
    import torch

    from induction_course import text

    runs = {n: torch.load(path, map_location="cpu", weights_only=True) for n, path in text.MODEL_PATHS.items()}
    seconds = {n: float(run["history"]["seconds"]) for n, run in runs.items()}
    files = [text.TOKENIZER_PATH, text.SNAPSHOTS_PATH, *text.MODEL_PATHS.values()]
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"\ntext models (Notebook 5): the script trained them in {seconds[2]:.0f} s (2 layers) + {seconds[1]:.0f} s "
          f"(1 layer), {runs[2]['recipe']['steps']} steps at {runs[2]['threads']} thread(s) (budget 3600 s on 2 "
          f"cores); shipped files {size:.1f} MB (budget 30 MB)")


def catalogue_table() -> None:
    """How many of the catalogued students' mistakes the checks name (tests/catalogue).

    The catalogue is part of the repository's tests, not of what ships: it is read only from a checkout, by
    loading ``tests/catalogue`` as a package from its file (nothing is added to ``sys.path``).
    """
    init = ROOT / "tests" / "catalogue" / "__init__.py"
    if not init.is_file():
        print("\n(no tests/catalogue here: the mistake catalogue lives in the repository's tests, in a checkout)")
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location("catalogue", init, submodule_search_locations=[str(init.parent)])
    catalogue = importlib.util.module_from_spec(spec)
    sys.modules["catalogue"] = catalogue
    spec.loader.exec_module(catalogue)
    report = catalogue.report
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        figures = report()
    print(f"\n{'mistakes catalogue':<20}{'mistakes':>9}{'named':>7}{'generic':>9}{'passed':>8}{'named %':>9}"
          f"{'correct alternatives':>22}")
    total = {"mistakes": 0, "named": 0}
    for notebook, f in figures.items():
        total = {k: total[k] + f[k] for k in total}
        print(f"{notebook:<20}{f['mistakes']:>9}{f['named']:>7}{f['generic']:>9}{f['passed']:>8}"
              f"{100 * f['named'] / max(f['mistakes'], 1):>8.0f}%{f['correct']:>22}")
    print(f"{'all':<20}{total['mistakes']:>9}{total['named']:>7}{'':>17}"
          f"{100 * total['named'] / max(total['mistakes'], 1):>8.0f}%")


def thread_workload(label: str) -> float:
    """Seconds to train the standard 2-layer model for 100 steps with the thread option ``label``."""
    import torch

    from induction_course import training
    from induction_course.threads import torch_default_threads

    threads, interop, _ = THREAD_OPTIONS[label]
    if interop is not None:
        torch.set_num_interop_threads(interop)
    torch.set_num_threads(torch_default_threads() if threads == "cores" else int(threads))
    _, history = training.train_induction_model(n_layers=2, seed=0, steps=100, progress=False, device="cpu")
    return float(history["seconds"])


def threads_table() -> None:
    print(f"\n{'torch threads (100 training steps)':<40}{'quiet s':>9}{'loaded s':>10}{'ratio':>7}")
    for label, (_, _, env) in THREAD_OPTIONS.items():
        quiet = _in_subprocess("--threads", label, env=env)["seconds"]
        with busy():
            loaded = _in_subprocess("--threads", label, env=env)["seconds"]
        print(f"{label:<40}{quiet:>9.1f}{loaded:>10.1f}{loaded / quiet:>7.2f}", flush=True)


def run(names: list[str] | None = None, threads: bool = False, baseline: Path | None = None) -> None:
    """Print every table (notebooks ``names``, default all; ``baseline``: another checkout to compare with)."""
    factor = machine_factor()
    print(f"this machine: one bridge training step at 1 thread takes {factor * REFERENCE_STEP_MS:.1f} ms, "
          f"{factor:.2f}x the {REFERENCE_STEP_MS} ms of the machine the budgets were set on "
          f"(budgets x {factor:.2f} would be the same speed here)\n", flush=True)
    notebooks_table(names or assignments(), baseline, factor)
    training_table(factor)
    text_model_line()
    catalogue_table()
    if threads:
        threads_table()


if __name__ == "__main__":
    command, *rest = sys.argv[1:] or ["--all"]
    if command == "--execute":
        print(json.dumps(execute(rest[0], Path(rest[1]) if rest[1:] else ROOT)))
    elif command == "--reference-step":
        from induction_course.training import step_milliseconds

        print(json.dumps(step_milliseconds()))
    elif command == "--training":
        print(json.dumps(training_figures()))
    elif command == "--threads":
        print(json.dumps({"seconds": thread_workload(rest[0])}))
    else:
        run()
