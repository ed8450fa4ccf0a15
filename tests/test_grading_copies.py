"""A student's function that is a copy of a reference (verbatim, renamed, reformatted) gets a review note."""
from __future__ import annotations

import inspect

import nbformat
import pytest

from autograder.copies import copy_notes
from induction_course import attention, heads

RELEASE = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch")])


def _notes(*sources: str) -> list[str]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch"),
                                         *(nbformat.v4.new_code_cell(s) for s in sources)])
    return copy_notes(nb, RELEASE)


VERBATIM = inspect.getsource(attention.project)
RENAMED = '''def project(inp, weights, bias):
    # my own comments, my own names
    return torch.einsum(
        "bpm,hmd->bphd", inp, weights
    ) + bias
'''


@pytest.mark.parametrize("source", [VERBATIM, RENAMED, inspect.getsource(heads.diagonal_score)])
def test_a_copy_of_a_reference_is_named(source):
    notes = _notes(source)
    assert len(notes) == 1 and notes[0].startswith("review: cell 2 defines ") and "a copy of induction_course." \
        in notes[0], notes


@pytest.mark.parametrize("source", [
    'def project(x, W, b):\n    return torch.einsum("bpm,hmd->bphd", x, W)\n',  # wrong: no bias
    'def project(x, W, b):\n    return torch.einsum("bsd,hde->bshe", x, W) + b\n',  # the student's own letters
    "def double(x):\n    return 2 * x\n",  # too small to tell anything
])
def test_a_function_of_the_students_own_gets_no_note(source):
    assert _notes(source) == []


def test_cells_of_the_release_and_test_cells_are_not_compared():
    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(VERBATIM)])
    test = nbformat.v4.new_code_cell(RENAMED, metadata={"nbgrader": {"grade": True, "solution": False,
                                                                     "grade_id": "t", "points": 1}})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(VERBATIM), test])
    assert copy_notes(nb, release) == []
