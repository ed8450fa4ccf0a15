"""Notebook 4's checks, beyond "this mistake gets this message" (that is the catalogue, tests/catalogue/nb4.py):
records judged alone, the data helper, the heads a case ablates and the unknown-hook message. That every ``Bug``
is reached by a catalogue mistake is asserted for every notebook in test_catalogue.py.
"""
from __future__ import annotations

import pytest
import torch

from catalogue import entries
from induction_course import ablation as A
from induction_course.checks import CheckFailed, nb4
from induction_course.checks.core import Check
from induction_course.checks.record import decode, encode
from induction_course.checks.symptoms import unknown_hook_symptom
from induction_course.data import BOS
from induction_course.heads import diagonal_score

MISTAKES, CORRECT = entries("nb4")
FUNCTION_CHECKS = sorted({c.check.id for c in CORRECT if c.hidden})


# ---------------------------------------------------------------- judged outside the student's interpreter
def _judged_from_record(check: Check, answer) -> str:
    """Collect here, encode and decode the record as the grader does, then judge the decoded record alone."""
    record = check.collect(answer, **check.defaults)
    name, decoded = decode(encode(check.id, record))
    return getattr(nb4, name.split(".", 1)[1]).judge(decoded, **check.defaults)


@pytest.mark.parametrize("check_id", FUNCTION_CHECKS)
def test_judged_from_the_encoded_record_alone(check_id):
    """A correct answer and a named mistake of each exercise (both from the catalogue), judged from the record."""
    good = next(c for c in CORRECT if c.check.id == check_id)
    bad = next(m for m in MISTAKES if m.check.id == check_id and m.expect)
    assert _judged_from_record(good.check, *good.answers).startswith("✓")
    with pytest.raises(CheckFailed) as info:
        _judged_from_record(bad.check, *bad.answers)
    assert bad.expect in str(info.value)


def test_direct_identity_is_judged_from_the_record():
    good = next(c for c in CORRECT if c.check is nb4.check_direct_logit_contribution)
    line = _judged_from_record(good.check, *good.answers)
    assert "= the ablated logits with patterns and scales frozen" in line


# ---------------------------------------------------------------- the cases
def test_changed_repeat_tokens_changes_only_continuations():
    tokens, changed = A.changed_repeat_tokens(6, 15, 40, n_changes=4, seed=3)
    n = 15
    assert tokens.shape == changed.shape == (6, 1 + 2 * n)
    assert (tokens[:, 0] == BOS).all() and not changed[:, : n + 2].any()
    first, second = tokens[:, 1:n + 1], tokens[:, n + 1:]
    assert torch.equal(first != second, changed[:, n + 1:])
    assert (changed.sum(dim=1) == 4).all()
    assert not (changed[:, 1:] & changed[:, :-1]).any(), "two changes side by side"
    for b in range(6):
        assert not set(second[b][changed[b, n + 1:]].tolist()) & set(first[b].tolist())


def test_the_visible_heads_are_found_from_the_model():
    case = nb4._heads_case(0)
    _, cache = case["model"].run_with_cache(
        torch.cat([torch.full((16, 1), BOS), torch.randint(1, case["model"].cfg.d_vocab, (16, 46),
                                                           generator=torch.Generator().manual_seed(0))], dim=1))
    scores = diagonal_score(cache["blocks.0.attn.hook_pattern"], 1)
    assert len(case["heads"]) == 3 and all(layer == 0 for layer, _ in case["heads"])
    assert float(scores[case["heads"][0][1]]) == pytest.approx(float(scores.max()), abs=0.05)


# ---------------------------------------------------------------- an unknown hook name
@pytest.mark.parametrize("name, pairs, says, never", [
    ("blocks.2.attn.hook_z", [(1, 0)], "layer + 1 (off by one?).", "swap"),
    ("blocks.3.attn.hook_z", [(0, 3), (0, 1)], "did you swap layer and head?", "off by one"),
    ("blocks.2.attn.hook_z", [(1, 2)], "off by one?), and also a head's number: did you swap", None),
    ("blocks.7.attn.hook_z", [(0, 3), (1, 1)], "this model has layers 0 … 1.", "swap"),
    ("blocks.0.attn.hook_Z", [(0, 3)], "the cache has no entry 'blocks.0.attn.hook_Z'. The names used here", "layer"),
])
def test_an_unknown_hook_guesses_only_what_fits(name, pairs, says, never):
    """Layer + 1 only when the name is one past an asked layer, a swap only when the number is an asked head."""
    message = unknown_hook_symptom(f"Hook name '{name}' does not exist on this model.", "NAMES", 2, pairs)
    assert says in message and not (never and never in message), message


