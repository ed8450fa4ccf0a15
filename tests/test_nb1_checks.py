"""Notebook 1's checks, beyond "this mistake gets this message" (that is the catalogue, tests/catalogue/nb1.py):
the student's own error is explained in one line above their traceback, an in-place call that changes no value is
not blamed, the reference matches TransformerLens, records survive encoding and forging, the graded cell cannot be
switched off (that every ``Bug`` is reached by a catalogue mistake: test_catalogue.py, for every notebook).
"""
from __future__ import annotations

import contextlib
import io

import pytest
import torch

from catalogue import entries
from catalogue import nb1 as corpus
from induction_course import attention as ref
from induction_course.checks import CheckFailed, nb1
from induction_course.checks.record import Opaque, Raised, decode, encode


def _failure(mistake) -> str:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            mistake.check(*mistake.answers)
        except CheckFailed as failure:
            return str(failure)
    return ""




# ----- the student's own errors
def test_an_explained_error_is_the_error_then_one_line():
    explained = {m.kind: message for m in entries("nb1")[0] if " raised " in (message := _failure(m))}
    assert len(explained) >= 10
    for kind, message in explained.items():
        assert message.count("\n") == 1, kind  # the error, then one line of explanation


def test_the_students_traceback_is_still_shown_under_the_explanation():
    with pytest.raises(CheckFailed) as info:
        nb1.check_attention_scores(corpus.scores_mm_flat)
    shown = "\n".join(info.value._render_traceback_())
    assert (shown.index("must equal the first axis") < shown.index("Your code raised")
            < shown.index("scores_mm_flat"))


def test_an_in_place_call_that_changes_no_value_is_not_blamed():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        W_O.mul_(1.0).add_(0.0)
        b_O += 0
        out = ref.attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        W_V.zero_()
        return out
    with pytest.raises(CheckFailed) as info:
        nb1.check_attention_layer(attention_layer)
    assert "changed its input `W_V` in place" in str(info.value)
    assert "W_O" not in str(info.value) and "b_O" not in str(info.value)


# ----- the layer against TransformerLens
def test_reference_equals_transformer_lens_on_random_models(capsys):
    for seed, n_layers, layer in [(0, 1, 0), (1, 2, 0), (2, 2, 1)]:
        nb1.check_against_transformer_lens(ref.attention_layer, seed=seed, n_layers=n_layers, layer=layer)
    assert capsys.readouterr().out.count("match TransformerLens") == 3


def test_transformer_lens_check_judges_from_the_record_alone():
    check = nb1.check_against_transformer_lens
    params = {**check.defaults, "seed": 3, "n_layers": 2, "layer": 1, "pos": 7}
    good, bad = (check.collect(fn, **params) for fn in (ref.attention_layer, corpus._layer(corpus.pattern_unscaled)))
    name, record = decode(encode(check.id, good))
    assert name == check.id and "✓" in check.judge(record, **params)
    with pytest.raises(CheckFailed, match="scale is missing"):
        check.judge(decode(encode(check.id, bad))[1], **params)


def test_transformer_lens_check_refuses_outputs_on_another_device():
    check = nb1.check_against_transformer_lens
    record = check.collect(ref.attention_layer, **check.defaults)
    assert record["output_devices"] == [record["device"]] * 3
    record = decode(encode(check.id, dict(record, device="cuda:0")))[1]
    with pytest.raises(CheckFailed, match="on 'cpu', but its inputs are on 'cuda:0'"):
        check.judge(record, **check.defaults)


@pytest.mark.parametrize("name", ["project", "attention_scores", "apply_causal_mask", "attention_pattern",
                                  "weighted_values", "attention_output", "attention_layer"])
def test_every_check_judges_an_encoded_record_as_it_judges_at_home(name):
    check = getattr(nb1, f"check_{name}")
    params = {**check.defaults, "seeds": (0, 5)}
    name_back, record = decode(encode(check.id, check.collect(getattr(ref, name), **params)))
    assert name_back == check.id and "✓" in check.judge(record, **params)
    wrong = check.collect(lambda **kw: None, **params)
    with pytest.raises(CheckFailed, match="returned None"):
        check.judge(decode(encode(check.id, wrong))[1], **params)


ODD_OUTPUTS = [None, 3, "text", [1, 2], {"a": torch.zeros(2)}, torch.zeros(2, 3, dtype=torch.int64),
               torch.zeros(2, 3, 7, 7, dtype=torch.complex64), torch.ones(2, 3, 7, 7, dtype=torch.bool),
               torch.full((2, 3, 7, 7), float("nan")), torch.zeros(0), (torch.zeros(1),) * 3, ("a", "b", "c"),
               Opaque("Axes"), Raised("ValueError", "odd")]


@pytest.mark.parametrize("name", ["project", "attention_scores", "apply_causal_mask", "attention_pattern",
                                  "weighted_values", "attention_output", "attention_layer",
                                  "against_transformer_lens"])
def test_odd_records_are_refused_with_a_message_never_a_crash(name):
    """A record holds whatever a student's code returned, or what a forger wrote: the judge only says no."""
    check = getattr(nb1, f"check_{name}")
    record = check.collect(getattr(ref, name, ref.attention_layer), **check.defaults)
    for odd in ODD_OUTPUTS:
        if isinstance(record, dict):
            forged = dict(record, output=odd)
            forged_inputs = dict(record, inputs={"x": torch.zeros(1, dtype=torch.int64)})
        else:
            forged = [dict(entry, output=odd) for entry in record]
            forged_inputs = [dict(entry, inputs={k: torch.zeros(1, dtype=torch.int64) for k in entry["inputs"]})
                             for entry in record]
        with pytest.raises(CheckFailed):
            check.judge(forged, **check.defaults)
        with pytest.raises(CheckFailed, match="in place"):
            check.judge(forged_inputs, **check.defaults)


def test_graded_cell_after_the_graders_purge_cannot_be_monkeypatched(monkeypatch):
    """The release's graded cell shows only its intent (no purge line: the grader purges the course's modules
    before every test cell, autograder/executing.py). After that purge, a check the student switched off is the
    real one again."""
    import json
    import sys

    from course_tools.notebooks import COURSE

    nb = json.loads((COURSE / "01_attention" / "01_attention.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "check_attention_scores")
    assert "sys.modules" not in "".join(cell["source"])
    monkeypatch.setattr(nb1, "check_attention_scores", lambda fn, **kw: None)
    saved = {m: mod for m, mod in sys.modules.items() if m.startswith("induction_course")}
    try:
        for m in [m for m in sys.modules if m.startswith("induction_course")]:
            sys.modules.pop(m)                                               # what the grader does before the cell
        with pytest.raises(AssertionError, match="scale is missing"):
            exec("".join(cell["source"]), {"attention_scores": lambda q, k: torch.einsum("bqhd,bkhd->bhqk", q, k)})
    finally:
        for m in [m for m in sys.modules if m.startswith("induction_course")]:
            sys.modules.pop(m)
        sys.modules.update(saved)
