"""Shared fixtures (executed solution notebooks, an nbgrader course directory, each made once), the two tiers of
the suite, and the groups in which ``./run.sh test`` hands the suite to pytest-xdist workers (``--dist loadgroup``).

Both the tier and the group of a test follow from what the test needs, by the rules in
``pytest_collection_modifyitems`` below; nothing here is a list of tests or of timings.
"""
from __future__ import annotations

import inspect
import os
import types
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


def pytest_generate_tests(metafunc):
    if "assignment" in metafunc.fixturenames:
        metafunc.parametrize("assignment", assignments())


# ----- Tiers and groups
# The fast tier (`./run.sh test --fast`, i.e. `-m "not slow"`) is what runs in this one Python process in about two
# minutes on 2 cores. A test is `slow` when it needs one of the session fixtures below (a notebook executed by
# nbgrader, a browser), or when the code it runs (its function, the fixtures and helpers of tests/ it uses, read
# transitively) names something that starts another program (STARTS_A_PROGRAM: a kernel, a JupyterLab server,
# nbgrader, the grading sandbox, a subprocess) or trains a model (calls `train` or a `train_...`).
TESTS = Path(__file__).resolve().parent
NOTEBOOK_FIXTURES = {"course_dirs", "graded_solutions", "executed_solutions"}  # one per notebook, above
BROWSER_FIXTURES = {"chromium", "driver"}                                      # one Chromium, tests/browser/
STARTS_A_PROGRAM = ("subprocess", "nbclient", "jupyter_client", "labserver", "selenium",
                    "autograder.plain", "autograder.sandbox", "autograder.batch", "autograder.executing",
                    "autograder.cluster", "course_tools.cli")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow(reason): needs a kernel, nbgrader, the sandbox, a browser, another "
                                       "program or a training run (set by tests/conftest.py; fast: -m 'not slow')")
    if not config.pluginmanager.hasplugin("xdist"):  # -p no:xdist: the marks are still set, and mean nothing
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's group (set by tests/conftest.py)")


def _origin(value: object) -> str | None:
    origin = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    return origin if isinstance(origin, str) else None


def _in_tests(value: object) -> bool:
    file = getattr(inspect.getmodule(value), "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(TESTS)


def _codes(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def why_slow(function: object, seen: set[int] | None = None) -> str | None:
    """Why running ``function`` (a test, a fixture, a helper of tests/) is slow, or None: the first name it or a
    helper of tests/ it calls refers to that starts a program or trains a model."""
    seen = set() if seen is None else seen
    function = inspect.unwrap(function)
    if id(function) in seen:
        return None
    seen.add(id(function))
    if isinstance(function, type):  # a class of tests/: its bases, and its methods
        for base in function.__mro__[1:]:
            if (origin := _origin(base)) and origin.startswith(STARTS_A_PROGRAM):
                return f"{function.__name__} is a {origin}.{base.__name__}"
        return next(filter(None, (why_slow(v, seen) for v in vars(function).values() if inspect.isfunction(v))), None)
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    for names in (c.co_names for c in _codes(code)):
        for name in names:
            if name == "train" or name.startswith("train_"):
                return f"trains a model ({name})"
            if name not in function.__globals__:
                continue
            value = function.__globals__[name]
            origin = _origin(value)
            if origin and any(origin == p or origin.startswith(p + ".") for p in STARTS_A_PROGRAM):
                return f"starts a program ({name}, from {origin})"
            if (inspect.isfunction(value) or isinstance(value, type) or hasattr(value, "__wrapped__")) \
                    and _in_tests(value) and (reason := why_slow(value, seen)):
                return reason
    return None


def module_fixtures(item: pytest.Item) -> list[object]:
    """The fixtures ``item`` uses that its module defines or imports (tests/conftest.py's are NOTEBOOK_FIXTURES
    and BROWSER_FIXTURES)."""
    module = vars(getattr(item, "module", None) or types.ModuleType("none"))
    return [module[name] for name in item.fixturenames if hasattr(module.get(name), "__wrapped__")]


def xdist_group(item: pytest.Item) -> str | None:
    """Each xdist worker gets whole groups, so that a fixture is made by one worker only: one notebook's tests
    that use its executed notebook (an nbgrader autograde, up to a minute), the browser tests (one Chromium),
    a module's tests that use a fixture of that module. Any other test is a unit of its own."""
    fixtures = set(item.fixturenames)
    if fixtures & NOTEBOOK_FIXTURES:
        return f"notebook-{item.callspec.params['assignment']}"
    if fixtures & BROWSER_FIXTURES:
        return "browser"
    return item.nodeid.split("::", 1)[0] if module_fixtures(item) else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(item.fixturenames)
        if fixtures & NOTEBOOK_FIXTURES and "assignment" not in getattr(getattr(item, "callspec", None), "params", {}):
            raise pytest.UsageError(f"{item.nodeid} uses a session fixture of tests/conftest.py: parametrize it "
                                    "by `assignment`, so that each notebook's tests share one worker")
        if fixtures & NOTEBOOK_FIXTURES:
            reason = "executes a notebook with nbgrader"
        elif fixtures & BROWSER_FIXTURES:
            reason = "needs a browser"
        else:
            reason = next(filter(None, map(why_slow, [getattr(item, "function", None), *module_fixtures(item)])),
                          None)
        if reason:
            item.add_marker(pytest.mark.slow(reason))
        if group := xdist_group(item):
            item.add_marker(pytest.mark.xdist_group(group))


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
