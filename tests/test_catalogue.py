"""Students' mistakes are named; correct alternatives pass (the catalogue in tests/catalogue/)."""
from __future__ import annotations

import contextlib
import io

import pytest

from induction_course.checks.core import CheckFailed
from catalogue import NOTEBOOKS, Correct, Mistake, entries, outcome

MISTAKES = [m for nb in NOTEBOOKS for m in entries(nb)[0]]
CORRECT = [c for nb in NOTEBOOKS for c in entries(nb)[1]]


def _id(entry: Mistake | Correct) -> str:
    name = getattr(entry.check, "id", None) or entry.check.__name__
    return f"{name}: {entry.kind}"


@pytest.mark.parametrize("mistake", MISTAKES, ids=_id)
def test_every_mistake_fails_the_visible_check_with_its_name(mistake):
    with contextlib.redirect_stdout(io.StringIO()):
        result = outcome(mistake)
    assert result != "passed", "the visible check lets this mistake through"
    if mistake.expect:
        assert result == "named", f"expected {mistake.expect!r} in the message"


@pytest.mark.parametrize("correct", CORRECT, ids=_id)
def test_correct_alternatives_pass_visible_and_hidden_checks(correct):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            correct.check(*correct.answers)
            correct.check(*correct.answers, **correct.hidden)
        except CheckFailed as failure:
            pytest.fail(f"a correct answer failed: {failure}")


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_at_least_nine_in_ten_mistakes_are_named(notebook):
    mistakes, _ = entries(notebook)
    named = sum(m.expect is not None for m in mistakes)
    assert mistakes and named >= 0.9 * len(mistakes), f"{named} of {len(mistakes)} named"
