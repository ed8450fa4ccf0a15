"""Self-study on Colab: the header, the setup cell at the top of every notebook, and the installer it runs."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

from induction_course import colab
from course_tools.environment import read_lock
from course_tools.notebooks import COURSE, ROOT, SOLUTIONS


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _setup_source(assignment: str) -> str:
    return _source(_cells(COURSE / assignment / f"{assignment}.ipynb")[1])


class _ProcessRecorder:
    """Stands in for subprocess's process-starting functions; ``run`` records and answers with ``returncodes``."""

    def __init__(self, monkeypatch, returncodes=(0, 0)):
        self.calls: list[list[str]] = []
        self.returncodes = list(returncodes)
        monkeypatch.setattr(subprocess, "run", self._record)
        for name in ("check_call", "call", "check_output", "Popen"):
            monkeypatch.setattr(subprocess, name, self._refuse)
        monkeypatch.setattr("os.system", self._refuse)

    def _record(self, cmd, *args, **kwargs):
        self.calls.append(list(cmd))
        return subprocess.CompletedProcess(cmd, self.returncodes[len(self.calls) - 1], stdout="")

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
    monkeypatch.delenv(colab.REPO_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


@pytest.fixture(params=["module stub", "environment variable"])
def on_colab(request, monkeypatch, not_colab):
    if request.param == "module stub":
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-simulated")


def test_the_repository_url_lives_in_pyproject():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert colab.repository_url() == urls["Repository"]
    holders = []
    for path in [*ROOT.glob("induction_course/**/*.py"), *ROOT.glob("masters/*.py"), *ROOT.glob("tests/**/*.py"),
                 *ROOT.glob("*.toml"), *ROOT.glob("*.sh"), *ROOT.glob("*.md"), *ROOT.glob("autograder/*")]:
        if path.is_file() and colab.repository_url() in path.read_text(errors="replace"):
            holders.append(path.relative_to(ROOT).as_posix())
    assert holders == ["pyproject.toml"], "code and prose name the repository only through [project.urls] Repository"


def test_a_missing_repository_url_says_where_to_write_it(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"\[project.urls\] Repository"):
        colab.repository_url(tmp_path / "pyproject.toml")


def test_every_notebook_starts_with_the_colab_header_then_the_setup_cell(assignment):
    for variant, own, other in [("course", colab.course_path(assignment), colab.solution_path(assignment)),
                                ("solution", colab.solution_path(assignment), colab.course_path(assignment))]:
        cells = _cells(ROOT / own)
        header, setup = cells[0], cells[1]
        assert header["cell_type"] == "markdown" and setup["cell_type"] == "code", own
        text = _source(header)
        assert text == colab.header_markdown(assignment, variant), f"{own}: run `./run.sh build`"
        repo = colab.github_path(colab.repository_url())
        assert text.startswith(f"**[Open in Colab](https://colab.research.google.com/github/{repo}/blob/main/{own})**")
        # The course notebook links its solution, and the solution notebook its exercise version.
        assert f"https://github.com/{repo}/blob/main/{other}" in text, own
        assert "![" not in text and "<img" not in text, "the header loads no image"
        assert _source(setup) == colab.setup_cell_source(), f"{own}: run `./run.sh build`"
        assert "nbgrader" not in setup.get("metadata", {}), "the setup cell is not graded"
        assert setup["metadata"].get("jupyter") == {"source_hidden": True}, \
            f"{own}: off Colab the setup cell shows as one collapsed line, not its installer"


def test_course_notebook_links_its_solution(assignment):
    text = _source(_cells(COURSE / assignment / f"{assignment}.ipynb")[0])
    assert "solution" in text.lower()
    assert f"blob/{colab.REPO_BRANCH}/solutions/{assignment}/{assignment}.ipynb" in text
    assert (SOLUTIONS / assignment / f"{assignment}.ipynb").exists()


@pytest.mark.parametrize("url", ["https://gitlab.com/me/induction-heads.git", "git@github.com:me/induction-heads.git",
                                 "https://codeberg.org/me/induction-heads", "file:///srv/git/induction-heads.git"])
def test_any_git_url_builds_a_header_without_colab_links_where_colab_cannot_open_it(url):
    for variant in ("course", "solution"):
        text = colab.header_markdown("01_attention", variant, url)
        assert "colab.research.google.com" not in text and "](" not in text, text
        assert "Upload notebook" in text and url in text
    assert json.dumps(url) in colab.setup_cell_source(url)


@pytest.mark.parametrize("url", ["https://github.com/me/fork", "https://github.com/me/fork.git",
                                 "https://github.com/me/fork/"])
def test_a_github_url_gets_colab_links_in_any_spelling(url):
    assert colab.github_path(url) == "me/fork"
    text = colab.header_markdown("01_attention", "course", url)
    assert "https://colab.research.google.com/github/me/fork/blob/main/course/01_attention/01_attention.ipynb" in text


def test_outside_colab_the_setup_cell_does_nothing(assignment, monkeypatch, not_colab):
    processes = _ProcessRecorder(monkeypatch)
    printed = _run_cell(_setup_source(assignment))
    assert processes.calls == [] and printed == ""


@pytest.mark.parametrize("override", [None, "file:///tmp/fork.git"])
def test_on_colab_the_setup_cell_clones_the_repository_then_runs_its_installer(assignment, monkeypatch, on_colab,
                                                                               override):
    if override:
        monkeypatch.setenv(colab.REPO_ENV, override)
    processes = _ProcessRecorder(monkeypatch)
    printed = _run_cell(_setup_source(assignment))
    (clone_cmd, install_cmd) = processes.calls
    clone = clone_cmd[-1]
    assert clone_cmd == ["git", "clone", "--quiet", "--depth=1", "--branch=main", override or colab.repository_url(),
                         clone]
    assert install_cmd == [sys.executable, f"{clone}/induction_course/colab.py", "install", clone]
    assert "Setting up the course on Colab" in printed


@pytest.mark.parametrize("failing, advice", [(0, "COURSE_REPO_URL"), (1, "Disconnect and delete runtime")])
def test_a_failed_setup_says_what_to_do(assignment, monkeypatch, on_colab, failing, advice):
    codes = [0, 0]
    codes[failing] = 1
    processes = _ProcessRecorder(monkeypatch, codes)
    with pytest.raises(RuntimeError, match=advice):
        _run_cell(_setup_source(assignment))
    assert len(processes.calls) == failing + 1, "the setup stops at the first failure"


def test_colab_resolves_the_direct_dependencies_less_grading_and_build_tools():
    requirements = colab.colab_requirements()
    names = {re.split(r"[<>=!~\[ ]", r)[0] for r in requirements}
    assert {"torch", "transformer_lens", "circuitsvis", "matplotlib"} <= names
    assert not names & {"nbgrader", "jupytext", "jupyterlab", "notebook"}
    assert "transformer_lens>=4,<5" in requirements, "the ranges of pyproject.toml go with them"


def test_constraints_pin_what_the_runtime_lacks_to_the_lock():
    lock = colab.lock_pins((ROOT / "requirements.lock").read_text())
    assert lock["transformer-lens"] == dict(line.split("==") for line in read_lock())["transformer-lens"]
    installed = {"torch": "2.9.0+cu126", "numpy": "2.0.2"}
    pins = colab.constraints(lock, installed)
    assert "transformer-lens==" + lock["transformer-lens"] in pins
    assert not [p for p in pins if p.startswith(("torch==", "numpy=="))], "the runtime's own are kept"
    assert f"numpy=={lock['numpy']}" in colab.constraints(lock, installed, also=frozenset({"numpy"}))


def test_a_plan_off_the_lock_is_caught():
    lock = {"transformers": "5.23.0", "tqdm": "4.70.1"}
    report = {"install": [{"metadata": {"name": "Transformers", "version": "5.24.0"}},
                          {"metadata": {"name": "tqdm", "version": "4.70.1"}},
                          {"metadata": {"name": "py_only_dep", "version": "1.0"}}]}
    plan = colab.planned(report)
    assert plan == {"transformers": "5.24.0", "tqdm": "4.70.1", "py-only-dep": "1.0"}
    assert colab.off_lock(plan, lock) == {"transformers": "5.24.0"}


def _fake_runtime(tmp_path, monkeypatch, upgrades_to: str, fixed: bool = True) -> tuple[Path, list, list]:
    """A clone with a small lock, a runtime with an old transformers, and a pip that records its calls and the
    constraints each call saw.

    The fake pip upgrades transformers to ``upgrades_to`` unless the constraints pin it (and ``fixed``).
    """
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "requirements.lock").write_text("transformers==5.23.0\ntqdm==4.70.1\nnumpy==2.4.6\n")
    (clone / "pyproject.toml").write_text('[project]\nname = "x"\n'
                                          'dependencies = ["transformers>=5", "tqdm", "nbgrader"]\n')
    monkeypatch.setattr(colab, "installed_distributions", lambda: {"transformers": "4.57.1", "numpy": "2.0.2"})
    calls, seen = [], []

    def pip(*args):
        calls.append(args)
        pins = Path(args[args.index("-c") + 1]).read_text().split() if "-c" in args else []
        seen.append(pins)
        if "--report" in args:
            pinned = "transformers==5.23.0" in pins and fixed
            items = [("transformers", "5.23.0" if pinned else upgrades_to)] + [("tqdm", "4.70.1")] * (len(calls) == 1)
            report = {"install": [{"metadata": {"name": n, "version": v}} for n, v in items]}
            Path(args[args.index("--report") + 1]).write_text(json.dumps(report))

    monkeypatch.setattr(colab, "_pip", pip)
    return clone, calls, seen


def test_the_installer_pins_what_the_runtime_lacks_and_keeps_the_rest(tmp_path, monkeypatch, capsys):
    clone, calls, seen = _fake_runtime(tmp_path, monkeypatch, upgrades_to="5.23.0")
    colab.install(clone)
    (resolve, course) = calls
    assert resolve[-2:] == ("transformers>=5", "tqdm"), "direct dependencies with their ranges, no nbgrader"
    assert seen[0] == ["tqdm==4.70.1"], "absent packages are pinned; the runtime's numpy is kept"
    assert course == ("install", "--no-deps", "--no-compile", str(clone))
    assert "Replaced the runtime's transformers 4.57.1 -> 5.23.0" in capsys.readouterr().out


def test_a_runtime_package_upgraded_off_the_lock_is_brought_to_the_lock(tmp_path, monkeypatch, capsys):
    clone, calls, seen = _fake_runtime(tmp_path, monkeypatch, upgrades_to="5.24.0")
    colab.install(clone)
    assert len(calls) == 3 and "transformers==5.23.0" in seen[1] and "numpy==2.4.6" not in seen[1]
    assert "transformers 4.57.1 -> 5.23.0" in capsys.readouterr().out


def test_the_installer_stops_when_the_lock_cannot_be_kept(tmp_path, monkeypatch):
    clone, calls, _ = _fake_runtime(tmp_path, monkeypatch, upgrades_to="5.24.0", fixed=False)
    with pytest.raises(SystemExit, match=r"cannot install \['transformers'\] at the lock's versions"):
        colab.install(clone)
    assert all("--report" in call for call in calls), "the course is not installed over a broken plan"


def test_the_package_colab_installs_carries_every_file_of_the_helper(tmp_path):
    """Colab gets a regular (not editable) install from the clone, so data files need package-data."""
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
    assert not missing, f"an install on Colab would lack {missing}: list them in package-data"
