"""Self-study on Colab: the badge, the solution link and the setup cell at the top of every notebook."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from induction_course import colab
from induction_course.environment import read_lock
from induction_course.notebooks import COURSE, ROOT, SOLUTIONS


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _setup_source(assignment: str) -> str:
    return _source(_cells(COURSE / assignment / f"{assignment}.ipynb")[1])


class _PipRecorder:
    """Stands in for subprocess's process-starting functions and records what would have run."""

    def __init__(self, monkeypatch):
        self.calls: list[list[str]] = []
        monkeypatch.setattr(subprocess, "check_call", self._record)
        for name in ("run", "call", "check_output", "Popen"):
            monkeypatch.setattr(subprocess, name, self._refuse)
        monkeypatch.setattr("os.system", self._refuse)

    def _record(self, cmd, *args, **kwargs):
        self.calls.append(list(cmd))
        return 0

    @staticmethod
    def _refuse(*args, **kwargs):
        raise AssertionError(f"the setup cell started a process another way: {args!r}")


def _run_cell(source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        exec(compile(source, "<setup cell>", "exec"), {"__name__": "__main__"})
    return out.getvalue()


@pytest.fixture
def not_colab(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def _expected_calls() -> list[list[str]]:
    return [[sys.executable, "-m", "pip", *args] for args in colab.pip_commands((ROOT / "requirements.lock").read_text())]


def test_every_notebook_starts_with_the_badge_then_the_setup_cell(assignment):
    for variant, own, other in [("course", colab.course_path(assignment), colab.solution_path(assignment)),
                                ("solution", colab.solution_path(assignment), colab.course_path(assignment))]:
        cells = _cells(ROOT / own)
        header, setup = cells[0], cells[1]
        assert header["cell_type"] == "markdown" and setup["cell_type"] == "code", own
        text = _source(header)
        assert text.startswith(f"[![Open In Colab]({colab.COLAB_BADGE})]({colab.colab_url(own)})"), own
        # The course notebook links its solution, and the solution notebook its exercise version.
        assert colab.github_url(other) in text and colab.colab_url(other) in text, own
        assert _source(setup) == colab.setup_cell_source(), f"{own}: run `./run.sh build`"
        assert "nbgrader" not in setup.get("metadata", {}), "the setup cell is not graded"


def test_course_notebook_links_its_solution(assignment):
    text = _source(_cells(COURSE / assignment / f"{assignment}.ipynb")[0])
    assert "solution" in text.lower()
    assert f"blob/{colab.REPO_BRANCH}/solutions/{assignment}/{assignment}.ipynb" in text
    assert (SOLUTIONS / assignment / f"{assignment}.ipynb").exists()


def test_outside_colab_the_setup_cell_does_nothing(assignment, monkeypatch, not_colab):
    pip = _PipRecorder(monkeypatch)
    printed = _run_cell(_setup_source(assignment))
    assert pip.calls == [] and printed == ""


@pytest.mark.parametrize("simulate", ["module stub", "environment variable"])
def test_on_colab_the_setup_cell_issues_exactly_the_pinned_installs(assignment, monkeypatch, not_colab, simulate):
    if simulate == "module stub":
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-simulated")
    pip = _PipRecorder(monkeypatch)
    printed = _run_cell(_setup_source(assignment))
    assert pip.calls == _expected_calls()
    assert "Colab setup done" in printed


def test_colab_installs_are_exact_pins_from_the_lock():
    lock = set(read_lock())
    (packages, helper) = colab.pip_commands((ROOT / "requirements.lock").read_text())
    pins = [a for a in packages if not a.startswith("-") and a != "install"]
    assert pins and all(pin in lock for pin in pins), pins
    names = {pin.split("==")[0] for pin in pins}
    assert {"transformer-lens", "circuitsvis"} <= names
    # Colab's own CUDA torch is kept; nbgrader's server stack would fight Colab's.
    assert not names & {"torch", "nbgrader", "jupyterlab", "notebook"}
    assert helper == ["install", "--quiet", "--no-deps", f"induction-course @ git+{colab.REPO_URL}.git@{colab.REPO_BRANCH}"]


def test_the_repository_url_is_written_in_one_place():
    """Code and configuration name the repository only through ``colab.REPO_URL`` (prose may quote it)."""
    holders = []
    for path in [*ROOT.glob("induction_course/**/*.py"), *ROOT.glob("solutions/src/*.py"), *ROOT.glob("tests/**/*.py"),
                 *ROOT.glob("*.toml"), *ROOT.glob("*.sh"), *ROOT.glob("autograder/*.py")]:
        if colab.REPO_URL in path.read_text(errors="replace"):
            holders.append(path.relative_to(ROOT).as_posix())
    assert holders == ["induction_course/colab.py"]


def test_the_package_colab_installs_carries_every_file_of_the_helper(tmp_path):
    """Colab gets a regular (not editable) install from the repository, so data files need package-data."""
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(ROOT / "induction_course", src / "induction_course",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {p.relative_to(src).as_posix() for p in (src / "induction_course").rglob("*") if p.is_file()}
    missing = sorted(wanted - shipped)
    assert not missing, f"a pip install from {colab.REPO_URL} would lack {missing}: list them in package-data"
