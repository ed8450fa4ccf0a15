"""One verdict: for any answer, the verdict and message at home and in ``course grade`` are the same.

Every entry of the mistake catalogue and every correct alternative (``tests/catalogue/``), with the visible
and, where it has one, the hidden parameters, is collected once and then judged both ways, in this process:

- at home, as the notebook's check call does: the judge reads the record ``collect`` returned;
- the grading way, as ``deciding.py`` does: the record is encoded as the sandbox displays it (JSON plus
  safetensors), decoded on the trusted side and judged with the planned parameters.

The success line, or the failure's message and the student's traceback, must be identical. A few real
``course grade`` runs of these answers are in ``test_grading_notebook1.py``.
"""
from __future__ import annotations

import contextlib
import io

import pytest
import torch

from autograder import deciding
from autograder.settings import Limits
from catalogue import NOTEBOOKS, Correct, Mistake, entries
from induction_course.checks import record
from induction_course.checks.core import Check, CheckFailed

ENTRIES = [e for nb in NOTEBOOKS for kind in entries(nb) for e in kind]


def _id(entry: Mistake | Correct) -> str:
    name = getattr(entry.check, "id", None) or getattr(entry.check, "__name__", "?")
    return f"{name}: {entry.kind}"


def _home(check: Check, data, params: dict) -> tuple:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return ("passed", str(check.judge(data, **params)), "")
    except CheckFailed as failure:
        return ("failed", str(failure), failure.student_traceback)


def _graded(check: Check, payload: dict, given: dict) -> tuple:
    module, name = check.id.split(".", 1)
    call = deciding.Call(module, name, given)
    try:
        return ("passed", deciding._judge(call, check, payload, Limits().record_kb << 10), "")
    except deciding._Verdict as verdict:
        return ("failed", str(verdict.failure), getattr(verdict.failure, "student_traceback", ""))


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_home_and_grading_give_the_same_verdict(entry, monkeypatch):
    check = entry.check
    if not isinstance(check, Check):
        pytest.skip("not a notebook's Check: judged in the kernel at home and in grading alike")
    for given in ({}, entry.hidden) if entry.hidden else ({},):
        params = {**check.defaults, **given}
        monkeypatch.setenv(record.RECORD_ENV, "1")  # collect as in the sandbox
        with contextlib.redirect_stdout(io.StringIO()):
            data = check.collect(*entry.answers, **params)
        payload = record.encode(check.id, data)
        monkeypatch.delenv(record.RECORD_ENV)
        home, graded = _home(check, data, params), _graded(check, payload, given)
        assert graded == home, f"{'hidden' if given else 'visible'} parameters"
        if isinstance(entry, Correct):
            assert home[0] == "passed", home


def test_an_index_past_the_end_is_explained_for_a_model_too():
    """The explainer of Notebook 3's every-head scores once read a pattern its model's case does not have
    (KeyError: 'pattern'), so the student was told their answers "could not be judged"."""
    from induction_course.checks import nb3

    def induction_scores_of_model(model, tokens, seq_len):
        return torch.zeros(3)[torch.arange(seq_len)]  # IndexError: index 3 is out of bounds

    check = nb3.check_induction_scores_of_model
    params = dict(check.defaults)
    data = check.collect(induction_scores_of_model, **params)
    home, graded = _home(check, data, params), _graded(check, record.encode(check.id, data), {})
    assert graded == home and home[0] == "failed", home
    assert "an index went past the end" in home[1], home


def test_tensors_that_share_memory_travel_in_the_record():
    """An output that is its input, views of it (a slice, a transpose, an expanded view), two outputs sharing
    memory, a conjugate and a subclass: each is recorded, its values intact (a subclass as its type name)."""
    x = torch.randn(3, 4)

    class Sub(torch.Tensor):
        pass

    data = {"output": (x, x[:, 1:], x.T, x[:1].expand(5, 4), x), "inputs": {"x": x},
            "complex": torch.randn(2, dtype=torch.complex64).conj(), "sub": record.as_data(x.as_subclass(Sub))}
    _, back = record.decode(record.encode("nb1.check_x", data))
    for got, want in zip(back["output"], data["output"]):
        assert type(got) is torch.Tensor and torch.equal(got, want) and got.is_contiguous()
    assert torch.equal(back["inputs"]["x"], x)
    assert torch.equal(back["complex"], data["complex"].resolve_conj())
    assert back["sub"] == record.Opaque("Sub", back["sub"].detail)


def test_a_mask_that_returns_its_input_when_nothing_is_masked_gets_one_verdict():
    """Its record once failed to save in grading (the output is the input itself), unlike at home."""
    from induction_course.checks import nb1

    def apply_causal_mask(scores):
        future = torch.triu(torch.ones(scores.shape[-2:], dtype=torch.bool), diagonal=1)
        return scores if not future.any() else scores.masked_fill(future, float("-inf"))

    check = nb1.check_apply_causal_mask
    for given in ({}, {"shapes": ({"pos": 1},)}):
        params = {**check.defaults, **given}
        data = check.collect(apply_causal_mask, **params)
        assert _graded(check, record.encode(check.id, data), given) == _home(check, data, params)
