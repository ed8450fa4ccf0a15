"""Students' mistakes are named; correct alternatives pass (the catalogue in tests/catalogue/)."""
from __future__ import annotations

import contextlib
import gc
import importlib
import io

import pytest

from induction_course.checks.core import Bug, CheckFailed, Exercise
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


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_known_bug_is_named_for_some_catalogue_mistake(notebook):
    """Each ``Bug`` of checks/nbK.py (its Exercises' and its diagnoses', found by the module of their formula) and
    each wrong recipe it lists (``BASELINE_MISTAKES``) is the message some mistake of tests/catalogue/nbK.py gets
    and expects: no known bug is dead code, and the catalogue is the one corpus the checks are tested on."""
    module = importlib.import_module(f"induction_course.checks.{notebook}")
    bugs = {b.message for e in vars(module).values() if isinstance(e, Exercise) for b in e.bugs}
    bugs |= {b.message for b in gc.get_objects() if type(b) is Bug  # noqa: E721
             and getattr(b.fn, "__module__", "") == module.__name__}
    bugs |= {message for message, _ in getattr(module, "BASELINE_MISTAKES", ())}
    assert len(bugs) >= 10, bugs
    hit = set()
    for mistake in entries(notebook)[0]:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                mistake.check(*mistake.answers)
        except CheckFailed as failure:
            hit |= {b for b in bugs if b in str(failure) and mistake.expect and mistake.expect in b}
    assert bugs - hit == set()
