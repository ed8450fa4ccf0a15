"""Shared fixtures (executed solution notebooks, an nbgrader course directory, each made once), and the units
of work in which ``./run.sh test`` hands the suite to several pytest-xdist workers."""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from autograder.plain import autograde, autograded_path, prepare
from course_tools.notebooks import SOLUTIONS, assignments

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


# Each xdist worker gets whole units, so a fixture is made by one worker only: a module (its module-scoped
# fixtures), the browser tests (one Chromium), or one notebook's tests in the modules that use the session
# fixtures above (a notebook's autograde takes up to a minute; its tests need no other notebook's).
SHARED = {"course_dirs", "graded_solutions", "executed_solutions"}
NOTEBOOK_MODULES = {"tests/test_notebook_hygiene.py", "tests/test_notebooks.py", "tests/test_offline_pages.py",
                    "tests/test_pipeline.py"}
ASSIGNMENTS = set(assignments())
# The slowest units first, so that the workers finish together (seconds with two workers on 2 cores, in this
# order: 277, 135, 102, 93, 92, 83, 70, 59, 46, 37, 31, 29; every other unit under 25, 1165 in all).
SLOWEST_FIRST = ["tests/test_grading_sandbox.py", "tests/test_grading_notebook1.py", "tests/test_nb3_science.py",
                 "tests/test_colab_simulated.py", "browser", "notebook 03_induction", "tests/test_jupyterlab.py",
                 "tests/test_nbgrader_exchange.py", "notebook 04_ablation", "notebook 02_previous_token",
                 "notebook 01_attention", "tests/test_catalogue.py"]


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to, from its node id alone (xdist's controller collects nothing)."""
    module = nodeid.split("::", 1)[0]
    if module.startswith("tests/browser/"):
        return "browser"
    param = re.search(r"\[([^\]]*)\]$", nodeid)
    if module in NOTEBOOK_MODULES and param and param[1] in ASSIGNMENTS:
        return f"notebook {param[1]}"
    return module


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SHARED & set(item.fixturenames) and not work_unit(item.nodeid).startswith("notebook "):
            raise pytest.UsageError(f"{item.nodeid} uses a session fixture of tests/conftest.py: parametrize it "
                                    "by `assignment` and add its module to NOTEBOOK_MODULES there")
    rank = {unit: i for i, unit in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Hand xdist's workers whole units (``work_unit``), in the collection's order: slowest first."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return ByWorkUnit(config, log)


def pytest_generate_tests(metafunc):
    if "assignment" in metafunc.fixturenames:
        metafunc.parametrize("assignment", assignments())


# In CI a test that skips for want of the grading sandbox or the browser fails instead: a green CI must have run them.
MISSING_IN_CI = ("no sandbox", "no Chromium", "selenium is not installed")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(MISSING_IN_CI):
            report.outcome, report.longrepr = "failed", f"CI=true, and this test could not run: {reason}"
