"""Shared fixtures: executed solution notebooks and an nbgrader course directory, each made once."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from autograder.plain import autograde, autograded_path, prepare
from induction_course.notebooks import SOLUTIONS, assignments

os.environ.setdefault("COURSE_DEVICE", "cpu")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


@pytest.fixture(scope="session")
def graded_solutions(course_dirs) -> dict[str, tuple[nbformat.NotebookNode, dict[str, tuple[float, float]]]]:
    """Every solution notebook autograded by nbgrader once per test session (lazily): the notebook as nbgrader
    executed it, top to bottom with the hidden tests in place, and its grades {grade_id: (score, max_score)}."""

    class Lazy(dict):
        def __missing__(self, name: str) -> tuple[nbformat.NotebookNode, dict[str, tuple[float, float]]]:
            grades = autograde(SOLUTIONS / name / f"{name}.ipynb", name, course_dirs[name])
            self[name] = nbformat.read(autograded_path(name, course_dirs[name]), as_version=4), grades
            return self[name]

    return Lazy()


@pytest.fixture(scope="session")
def executed_solutions(graded_solutions) -> dict[str, nbformat.NotebookNode]:
    """Every solution notebook, executed top to bottom once per test session (by nbgrader's autograde)."""

    class Lazy(dict):
        def __missing__(self, name: str) -> nbformat.NotebookNode:
            return graded_solutions[name][0]

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
