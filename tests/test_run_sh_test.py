"""`./run.sh test` itself: its exit code is pytest's (5, "no tests", says so), and setup reinstalls exactly when
the lock changes.

Each case runs run.sh in a small copy of the repository whose `.venv/bin/python` is a stand-in: it logs and
skips pip's installs and hands everything else to this suite's own interpreter, so nothing is downloaded.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_tools.notebooks import ROOT

STAND_IN = """#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = pip ]; then echo "pip ${{*:3}}" >> "$(dirname "$0")/../pip.log"; exit 0; fi
exec {python} "$@"
"""


def _repository(tmp: Path, tests: dict[str, str]) -> Path:
    root = tmp / "repo"
    (root / "autograder").mkdir(parents=True)
    for name in ["run.sh", "requirements.lock", "pyproject.toml", "autograder/install_sandbox.sh"]:
        shutil.copy2(ROOT / name, root / name)
    (root / "tests").mkdir()
    for name, text in tests.items():
        (root / "tests" / name).write_text(text)
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STAND_IN.format(python=sys.executable))
    python.chmod(0o755)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CONDA_PREFIX", "CI")}
    env.update(TORCH_INDEX_URL="", TEST_WORKERS="0", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(["bash", "./run.sh", "test", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)


def _pip_calls(root: Path) -> list[str]:
    log = root / ".venv" / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("tests, code, words", [
    ({"test_ok.py": "def test_ok():\n    assert True\n"}, 0, "1 passed"),
    ({"test_bad.py": "def test_bad():\n    assert 1 == 2\n"}, 1, "1 failed"),
    ({"test_none.py": "# no tests here\n"}, 5, "pytest collected no tests: the suite is missing."),
])
def test_the_exit_code_is_pytests(tmp_path, tests, code, words):
    root = _repository(tmp_path, tests)
    proc = _run(root, "-p", "no:cacheprovider")
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert words in proc.stdout + proc.stderr


def test_setup_reinstalls_when_the_lock_changes_and_only_then(tmp_path):
    root = _repository(tmp_path, {"test_ok.py": "def test_ok():\n    assert True\n"})
    assert _run(root).returncode == 0
    first = _pip_calls(root)
    assert any("-r requirements.lock" in call for call in first), first
    assert (root / ".venv" / ".installed-lock").read_bytes() == (root / "requirements.lock").read_bytes()
    assert _run(root).returncode == 0 and _pip_calls(root) == first  # the same lock: nothing installed
    with open(root / "requirements.lock", "a") as lock:
        lock.write("some-new-package==1.0\n")
    assert _run(root).returncode == 0
    again = _pip_calls(root)[len(first):]
    assert any("-r requirements.lock" in call for call in again), again


def test_fast_runs_only_the_tests_not_marked_slow_and_installs_no_sandbox(tmp_path):
    root = _repository(tmp_path, {"test_tiers.py": "import pytest\n\ndef test_quick():\n    pass\n\n"
                                                   "@pytest.mark.slow\ndef test_heavy():\n    assert False\n"})
    (root / "autograder" / "install_sandbox.sh").write_text("echo SANDBOX-INSTALL-RAN >&2\nexit 1\n")
    proc = _run(root, "--fast", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1 passed, 1 deselected" in proc.stdout and "SANDBOX-INSTALL-RAN" not in proc.stderr


GROUPED = """import os, pytest

@pytest.mark.parametrize("n", range(6))
@pytest.mark.xdist_group("one")
def test_grouped(n, tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent / f"grouped-{n}").write_text(os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.parametrize("n", range(6))
def test_free(n):
    pass
"""


def test_the_suites_xdist_groups_take_effect(tmp_path):
    """``./run.sh test`` runs ``--dist loadgroup``: every test of one ``xdist_group`` runs on one worker (so a
    fixture they share is made once). pytest-xdist 3.8 marks a group in ``item._nodeid``, which pytest 9.2
    no longer reads; the lock's pytest must be one that does."""
    root = _repository(tmp_path, {"test_groups.py": GROUPED})
    env = {k: v for k, v in os.environ.items() if k not in ("CONDA_PREFIX", "CI")}
    env.update(TORCH_INDEX_URL="", TEST_WORKERS="2", PYTHONDONTWRITEBYTECODE="1")
    base = tmp_path / "base"
    proc = subprocess.run(["bash", "./run.sh", "test", "-p", "no:cacheprovider", "--basetemp", str(base)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    workers = {p.read_text() for p in base.glob("grouped-*")}
    assert len(list(base.glob("grouped-*"))) == 6 and len(workers) == 1, workers
