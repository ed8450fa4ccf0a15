"""Shared fixtures: executed solution notebooks and an nbgrader course directory, each made once."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from autograder.plain import prepare
from induction_course.notebooks import SOLUTIONS, assignments

os.environ.setdefault("COURSE_DEVICE", "cpu")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

# Explicit, generous limits for executing notebooks (a loaded 2-core machine can be 3x slower than a quiet one).
CELL_S = 600  # one cell
STARTUP_S = 300  # the kernel's start
IOPUB_S = 60  # a cell's last outputs after its reply (nbclient's default, 4 s, can drop them when busy)


@pytest.fixture(scope="session")
def executed_solutions() -> dict[str, nbformat.NotebookNode]:
    """Every solution notebook, executed top to bottom once per test session (lazily)."""

    class Lazy(dict):
        def __missing__(self, name: str) -> nbformat.NotebookNode:
            path = SOLUTIONS / name / f"{name}.ipynb"
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                           timeout=CELL_S, startup_timeout=STARTUP_S, iopub_timeout=IOPUB_S).execute()
            self[name] = nb
            return nb

    return Lazy()


@pytest.fixture(scope="session")
def course_dirs(tmp_path_factory) -> dict[str, Path]:
    """name -> an nbgrader course directory with that assignment generated (made lazily)."""

    class Lazy(dict):
        def __missing__(self, name: str) -> Path:
            root = tmp_path_factory.mktemp(f"course-{name}")
            prepare(name, root)
            self[name] = root
            return root

    return Lazy()


def pytest_generate_tests(metafunc):
    if "assignment" in metafunc.fixturenames:
        metafunc.parametrize("assignment", assignments())
