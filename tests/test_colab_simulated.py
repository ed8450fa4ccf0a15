"""A simulated Colab runtime runs the setup cell against a local bare clone, then Notebook 1's solution.

The runtime is a fresh virtual environment with only what the course relies on Colab to have (torch, numpy,
matplotlib, ipykernel, pandas) and ``COLAB_RELEASE_TAG`` set, as on Colab. Its kernel has no access to this
checkout (another working directory, no ``PYTHONPATH``), so everything the notebook imports comes from what the
setup cell installed. The cell installs from a fresh bare clone of the committed HEAD (``COURSE_REPO_URL``),
so uncommitted changes are not what it tests. It needs the package registry; without one it skips.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from induction_course import colab
from course_tools.environment import read_lock
from course_tools.notebooks import ROOT, SOLUTIONS

#: What the simulated runtime starts with: the packages the course expects Colab to provide.
RUNTIME = ["numpy", "matplotlib", "ipykernel", "pandas"]
NOTEBOOK = "01_attention"


def _lock() -> dict[str, str]:
    return {colab._normalise(name): version for name, version in (line.split("==") for line in read_lock())}


def _run(cmd: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run ``cmd`` away from this checkout: no PYTHONPATH, another working directory."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tempfile.gettempdir())


def _distributions(python: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    return {colab._normalise(k): v for k, v in json.loads(_run([str(python), "-c", code], 120).stdout).items()}


def _megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


@pytest.fixture(scope="module")
def bare_clone(tmp_path_factory) -> Path:
    """A fresh ``git clone --bare`` of this checkout whose ``main`` is the committed HEAD."""
    if shutil.which("git") is None or _run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], 60).returncode != 0:
        pytest.skip("the Colab simulation installs from a git clone: this is not a git checkout")
    bare = tmp_path_factory.mktemp("remote") / "induction-heads-course.git"
    head = _run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], 60).stdout.strip()
    for cmd in (["git", "clone", "--quiet", "--bare", str(ROOT), str(bare)],
                ["git", "-C", str(bare), "update-ref", f"refs/heads/{colab.REPO_BRANCH}", head]):
        proc = _run(cmd, 300)
        assert proc.returncode == 0, proc.stderr
    return bare


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    """A fresh venv with only torch (the lock's version), numpy, matplotlib, ipykernel and pandas."""
    folder = tmp_path_factory.mktemp("colab-runtime")
    probe = _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder / "probe"),
                  f"tqdm=={_lock()['tqdm']}"], 300)
    if probe.returncode != 0:
        pytest.skip(f"the Colab simulation installs packages, and the package registry is not reachable: "
                    f"{(probe.stderr.strip().splitlines() or ['pip download failed'])[-1]}")
    venv = folder / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], 300).returncode == 0
    proc = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile",
                 f"torch=={_lock()['torch']}", *RUNTIME], 900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


def _client(nb: nbformat.NotebookNode, venv: Path, bare: Path, home: Path) -> NotebookClient:
    """An nbclient that runs ``nb`` in the simulated runtime's kernel (in ``home/jupyter``), in an empty folder."""
    spec = home / "jupyter" / "kernels" / "colab-simulated"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab (simulated)", "language": "python",
        "env": {"COLAB_RELEASE_TAG": "release-colab-simulated", colab.REPO_ENV: bare.as_uri(),
                "PYTHONPATH": "", "COURSE_DEVICE": "cpu", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    }))
    work = home / "content"
    work.mkdir()
    return NotebookClient(nb, timeout=600, startup_timeout=180, kernel_name="colab-simulated",
                          resources={"metadata": {"path": str(work)}})


def _text(cell) -> str:
    return "".join(o.get("text", "") + json.dumps(o.get("data", {})) + "".join(o.get("traceback", []))
                   for o in cell.outputs)


@pytest.mark.timeout(2400)
def test_colab_setup_installs_the_lock_and_notebook_1_runs(runtime, bare_clone, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    python = runtime / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], 60).stdout.strip())
    before, size_before = _distributions(python), _megabytes(runtime)
    nb = nbformat.read(SOLUTIONS / NOTEBOOK / f"{NOTEBOOK}.ipynb", as_version=4)
    setup = nb.cells[1]
    assert setup.source.startswith(colab.SETUP_MARKER)
    client = _client(nb, runtime, bare_clone, tmp_path)
    with client.setup_kernel():
        start = time.perf_counter()
        client.execute_cell(setup, 1)
        setup_seconds = time.perf_counter() - start
        after, size_after = _distributions(python), _megabytes(runtime)
        start = time.perf_counter()
        for index, cell in enumerate(nb.cells[2:], start=2):
            client.execute_cell(cell, index)
        notebook_seconds = time.perf_counter() - start

    added = {n: v for n, v in after.items() if n not in before}
    print(f"\nColab simulation: setup cell {setup_seconds:.0f} s, installed {len(added)} distributions "
          f"(+{size_after - size_before:.0f} MB), then {NOTEBOOK} ran in {notebook_seconds:.0f} s")
    assert "Colab setup done" in _text(setup), _text(setup)
    lock = _lock()
    # No drift: everything installed is at the lock's version; nothing the runtime had was replaced.
    assert "induction-course" in added
    off_lock = {n: (v, lock.get(n)) for n, v in added.items() if n != "induction-course" and lock.get(n) != v}
    assert not off_lock, f"installed off the lock: {off_lock}"
    assert {n: v for n, v in after.items() if n in before and before[n] != v} == {}, "the runtime's own were replaced"
    assert {"transformer-lens", "circuitsvis", "transformers"} <= set(added) and "nbgrader" not in added
    # The kernel imported the course from what the setup cell installed, not from this checkout.
    where = _run([str(python), "-c", "import induction_course; print(induction_course.__file__)"], 120).stdout.strip()
    assert where.startswith(str(site)), where
    errors = [(i, _text(c)[-500:]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    checks = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    assert checks and all("✓" in _text(c) for c in checks), "every check cell passes on the simulated Colab"
