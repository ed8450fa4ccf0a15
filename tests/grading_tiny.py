"""A tiny nbgrader assignment for the grader's tests: two 2- and 3-point checks and a 1-point written answer.

Its test cells use the real check engine's in-kernel ``run_check`` (``induction_course.checks.core``) and
import only torch, so a kernel starts fast. They call no notebook's ``Check``, so ``course grade`` leaves
them to the kernel, as nbgrader judges any test cell (``autograder.deciding``); they do not purge the
course's modules themselves: the grader's hidden guard cell does it before every test cell.
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from autograder.scoring import generate, release_rel
from autograder.settings import Course
from course_tools.notebooks import parse_master, write_notebook

NAME = "00_tiny"
MASTER = '''# %% [markdown]
# # A tiny assignment
# %%
import torch
# %% [markdown]
# ### Exercise 1: double it
# %% solution="double"
def double(x: torch.Tensor) -> torch.Tensor:
    """x: [n] -> [n]"""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
# %% test="check_double" points=2
import torch
from induction_course.checks.core import Exercise, run_check
EX = Exercise("double", lambda seed, n=4: {"x": torch.randn(n, generator=torch.Generator().manual_seed(seed))},
              lambda x: 2 * x, dims=("n",))
run_check(double, EX)
### BEGIN HIDDEN TESTS
run_check(double, EX, seeds=(1, 2), shapes=({}, {"n": 7}))
### END HIDDEN TESTS
# %% [markdown]
# ### Exercise 2: halve it
# %% solution="halve"
def halve(x: torch.Tensor) -> torch.Tensor:
    """x: [n] -> [n]"""
    ### BEGIN SOLUTION
    return x / 2
    ### END SOLUTION
# %% test="check_halve" points=3
import torch
from induction_course.checks.core import Exercise, run_check
EX = Exercise("halve", lambda seed, n=4: {"x": torch.randn(n, generator=torch.Generator().manual_seed(seed))},
              lambda x: x / 2, dims=("n",))
run_check(halve, EX)
### BEGIN HIDDEN TESTS
run_check(halve, EX, seeds=(3, 4), shapes=({}, {"n": 9}))
### END HIDDEN TESTS
# %% [markdown]
# ### Question: why?
# %% [markdown] answer="explain" points=1
# YOUR ANSWER HERE
'''


CONFIG = """c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "tiny"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
"""


def make_course(root: Path) -> tuple[Course, nbformat.NotebookNode]:
    """An nbgrader course under ``root`` with the tiny assignment; returns it and its release notebook."""
    source = root / "source"
    write_notebook(parse_master(MASTER, NAME), source / NAME / f"{NAME}.ipynb")
    config = root / "nbgrader_config.py"
    config.write_text(CONFIG)
    course = Course(root, config, source)
    scratch = root / "generated"
    scratch.mkdir()
    generate(course, scratch, NAME)
    return course, nbformat.read(scratch / release_rel(NAME), as_version=4)


def approximate_release() -> nbformat.NotebookNode:
    """The tiny assignment as nbgrader releases it, approximated without running nbgrader (stubs, no hidden tests)."""
    nb = parse_master(MASTER, NAME)
    for c in nb.cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution") and c.cell_type == "code":
            c.source = c.source.split("### BEGIN SOLUTION")[0] + "# YOUR CODE HERE\n    raise NotImplementedError()"
        if meta.get("locked"):
            c.source = c.source.split("### BEGIN HIDDEN TESTS")[0].rstrip()
    return nb


def cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def index(nb: nbformat.NotebookNode, grade_id: str) -> int:
    return nb.cells.index(cell(nb, grade_id))


def answer(release: nbformat.NotebookNode, double: str = "return 2 * x", halve: str = "return x / 2",
           written: str = "Because.") -> nbformat.NotebookNode:
    """A student's notebook: the release with these function bodies and written answer."""
    nb = copy.deepcopy(release)
    for grade_id, body in (("double", double), ("halve", halve)):
        c = cell(nb, grade_id)
        head = c.source.split("# YOUR CODE HERE")[0].rstrip(" ")
        c.source = head + "\n".join("    " + line for line in body.splitlines())
    cell(nb, "explain").source = written
    return nb


def insert_after(nb: nbformat.NotebookNode, grade_id: str, source: str) -> nbformat.NotebookNode:
    """Add an ordinary code cell right after the cell ``grade_id``."""
    nb.cells.insert(index(nb, grade_id) + 1, nbformat.v4.new_code_cell(source))
    return nb
