"""Notebook 2's checks, beyond "this mistake gets this message" (that is the catalogue, tests/catalogue/nb2.py):
student-style answers pass, records survive encoding and the graded cells are readable (that every ``Bug`` is
reached by a catalogue mistake: test_catalogue.py, for every notebook).
"""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from transformer_lens.head_detector import detect_head

from induction_course import handbuilt as hb
from induction_course import heads as ref
from induction_course.checks import CheckFailed, nb2
from induction_course.checks.core import Check
from induction_course.checks.record import decode, encode
from induction_course.plotting import attention_heatmap
from induction_course.tokenizer import tokens_to_text


def fails_with(check, *args, fragments: tuple[str, ...], **params) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args, **params)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"expected {fragment!r} in: {message}"
    return message


# ----- 2. every head of a model
def test_reference_score_all_heads_passes(capsys):
    def score_all_heads(model, tokens, score_fn):
        _, cache = model.run_with_cache(tokens)
        return torch.stack([score_fn(cache[f"blocks.{l}.attn.hook_pattern"]) for l in range(model.cfg.n_layers)])
    nb2.check_score_all_heads(score_all_heads, seeds=(0, 11), shapes=({}, {"n_layers": 2, "score": "peak"}))
    assert "✓" in capsys.readouterr().out


# ----- 3. the head in the trained model
@pytest.fixture(scope="module")
def trained():
    """The course model, the notebook's tokens, our scores and detect_head's."""
    model = nb2.course_model()
    tokens = torch.cat([torch.zeros(16, 1, dtype=torch.long),
                        torch.randint(1, model.cfg.d_vocab, (16, 23), generator=torch.Generator().manual_seed(0))], dim=1)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    scores = {fn: torch.stack([fn(cache["pattern", l]) for l in range(model.cfg.n_layers)])
              for fn in (ref.previous_token_score, ref.current_token_score, ref.first_token_score)}
    prev = scores[ref.previous_token_score]
    best = tuple(int(i) for i in torch.unravel_index(prev.argmax(), prev.shape))
    detect = detect_head(model, tokens_to_text(tokens), "previous_token_head")
    return {"model": model, "tokens": tokens, "scores": scores, "best": best, "detect": detect}


def factor(seq_len):
    return 1 - 1 / seq_len


def test_found_head_passes(trained, capsys):
    nb2.check_previous_token_head(trained["best"], trained["detect"], factor, trained["tokens"])
    assert "✓" in capsys.readouterr().out


# ----- 4. a picture of one head
def test_reference_plot_passes(capsys):
    nb2.check_plot_head_pattern(lambda cache, layer, head, tokens: attention_heatmap(cache["pattern", layer][0, head]))
    assert "✓" in capsys.readouterr().out


# ----- 5. a previous-token head by hand
def qk_with(query_shift: int = -1, c: float | None = None, pos_cols: slice | None = None):
    """A student's QK builder: position i queries head direction i + query_shift, with margin c."""
    def previous_token_qk(layout):
        n, d, h = layout.n_ctx, layout.d_model, layout.d_head
        scale = c if c is not None else 10 * math.sqrt(h)
        W_pos = torch.zeros(n, d)
        W_pos[:, pos_cols or layout.pos] = torch.eye(n)
        W_Q, W_K = torch.zeros(d, h), torch.zeros(d, h)
        for i in range(n):
            W_K[layout.pos.start + i, i] = 1.0
            if 0 <= i + query_shift < n:
                W_Q[layout.pos.start + i, i + query_shift] = scale
        return W_pos, W_Q, W_K
    return previous_token_qk


def ov_with(read: str = "token", write: str = "prev", sign: float = 1.0, order=lambda t, v: t, width: int | None = None):
    """A student's OV builder: token t (read from block ``read``) goes to coordinate order(t) of block ``write``."""
    def previous_token_ov(layout):
        v = layout.d_vocab
        W_V, W_O = torch.zeros(layout.d_model, layout.d_head), torch.zeros(layout.d_head, layout.d_model)
        src, dst = getattr(layout, read), getattr(layout, write)
        for t in range(width or v):
            W_V[src.start + t, t] = 1.0
            W_O[t, dst.start + order(t, v)] = sign
        return W_V, W_O
    return previous_token_ov


LAYOUTS = ({}, {"d_vocab": 10, "n_ctx": 40}, {"d_vocab": 30, "n_ctx": 12})


def test_student_style_head_passes(capsys):
    nb2.check_previous_token_qk(qk_with(), layouts=LAYOUTS, seeds=(0, 5))
    nb2.check_previous_token_ov(ov_with(), layouts=LAYOUTS, seeds=(0, 5))
    nb2.check_handbuilt_head(qk_with(), ov_with())
    nb2.check_handbuilt_head(qk_with(), ov_with(), layouts=LAYOUTS)
    assert capsys.readouterr().out.count("✓") == 4


# ----- 6. can a key see the previous token?
def _runs(model, tokens, corrupted):
    with torch.no_grad():
        return model.run_with_cache(tokens)[1], model.run_with_cache(corrupted)[1]


def test_reference_key_change_passes(capsys):
    def key_change(model, tokens, corrupted, layer):
        clean, dirty = _runs(model, tokens, corrupted)
        diff = dirty["k", layer] - clean["k", layer]
        return diff.pow(2).sum(dim=-1).sqrt().mean(dim=0)
    nb2.check_key_change(key_change, seeds=(0, 11), shapes=({}, {"layer": 0}, {"n_layers": 3, "layer": 2, "at": 1}))
    assert "✓" in capsys.readouterr().out


# ----- judged from the record alone
MASTER = Path(__file__).resolve().parents[1] / "masters" / "02_previous_token.py"


def _graded_calls() -> list[ast.Call]:
    """Every ``nb2.check_*(...)`` call in the test cells of the master, visible and hidden."""
    cells = re.split(r"^# %%", MASTER.read_text(), flags=re.M)
    calls = []
    for cell in cells:
        if cell.startswith(" test="):
            calls += [node for node in ast.walk(ast.parse(cell.split("\n", 1)[1])) if isinstance(node, ast.Call)
                      and isinstance(node.func, ast.Attribute) and node.func.attr.startswith("check_")]
    return calls


def test_graded_cells_pass_answers_by_position_and_literal_parameters():
    calls = _graded_calls()
    assert len(calls) >= 20
    for call in calls:
        check = getattr(nb2, call.func.attr)
        assert isinstance(check, Check), call.func.attr
        assert all(isinstance(arg, ast.Name) for arg in call.args), ast.unparse(call)
        for keyword in call.keywords:
            assert keyword.arg in check.defaults, ast.unparse(call)
            ast.literal_eval(keyword.value)  # raises if the grader could not read it


def _score_all_heads(model, tokens, score_fn):
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return torch.stack([score_fn(cache["pattern", l]) for l in range(model.cfg.n_layers)])


def _key_change(model, tokens, corrupted, layer):
    with torch.no_grad():
        clean, dirty = model.run_with_cache(tokens)[1], model.run_with_cache(corrupted)[1]
    return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).mean(dim=0)


def test_every_graded_call_of_the_solution_passes_when_judged_from_its_decoded_record(trained, capsys):
    answers = {"previous_token_score": ref.previous_token_score, "current_token_score": ref.current_token_score,
               "first_token_score": ref.first_token_score, "score_all_heads": _score_all_heads,
               "key_change": _key_change, "previous_token_qk": hb.reference_qk, "previous_token_ov": hb.reference_ov,
               "plot_head_pattern": lambda cache, layer, head, tokens: attention_heatmap(cache["pattern", layer][0, head]),
               "found": trained["best"], "detect_scores": trained["detect"], "detect_factor": factor,
               "tokens": trained["tokens"], "answers": {"why_earlier": "b", "one_layer_fix": "c"},
               "layer0_answers": {"averaging": "b", "where_measured": "b"}}
    for call in _graded_calls():
        check = getattr(nb2, call.func.attr)
        params = {**check.defaults, **{k.arg: ast.literal_eval(k.value) for k in call.keywords}}
        record = check.collect(*(answers[arg.id] for arg in call.args), **params)
        name, decoded = decode(encode(check.id, record))
        assert name == check.id
        assert check.judge(decoded, **params).startswith("✓"), ast.unparse(call)


def test_a_wrong_hand_built_head_fails_the_same_way_from_its_decoded_record():
    check = nb2.check_handbuilt_head
    record = check.collect(qk_with(query_shift=0), ov_with(), **check.defaults)
    with pytest.raises(CheckFailed, match="attends to itself"):
        check.judge(decode(encode(check.id, record))[1], **check.defaults)


def test_a_tensor_subclass_answer_travels_only_as_its_type(trained):
    class Sneaky(torch.Tensor):
        pass

    fails_with(nb2.check_previous_token_head, trained["best"], trained["detect"].as_subclass(Sneaky), factor,
               trained["tokens"], fragments=("but it is a Sneaky",))


def test_a_student_error_shows_the_students_frames_not_the_checks():
    def detect_factor(seq_len):
        return (seq_len - 1) / seq_len if seq_len < 50 else [][0]
    with pytest.raises(CheckFailed) as info:
        nb2.check_detect_factor(detect_factor)
    assert "checks/" not in str(info.value)
    assert "detect_factor" in info.value.student_traceback and "checks/" not in info.value.student_traceback



