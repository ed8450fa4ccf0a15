"""Notebook 2's checks: the reference passes, and every diagnostic fires on the bug it names.

The buggy answers below are written the way a student would write them, independently of
the ``Bug`` variants and the diagnostics inside the checks.
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


# ----- 1. scores from a pattern
@pytest.mark.parametrize("name", ["previous_token_score", "current_token_score", "first_token_score"])
def test_reference_scores_pass_visible_and_hidden_cases(name, capsys):
    getattr(nb2, f"check_{name}")(getattr(ref, name), seeds=(0, 11, 12), shapes=({}, {"pos": 2}, {"head": 7}))
    assert "✓" in capsys.readouterr().out


def test_score_not_written_yet():
    def previous_token_score(pattern):
        raise NotImplementedError()
    fails_with(nb2.check_previous_token_score, previous_token_score, fragments=("not written yet",))


def test_previous_reads_the_next_key():
    def previous_token_score(pattern):
        n = pattern.shape[-1]
        return torch.stack([pattern[:, :, i, i + 1] for i in range(n - 1)], dim=-1).mean(dim=(0, 2))
    fails_with(nb2.check_previous_token_score, previous_token_score, fragments=("key i+1",))


def test_previous_is_the_diagonal():
    fails_with(nb2.check_previous_token_score, lambda pattern: torch.einsum("bhii->bhi", pattern).mean(dim=(0, 2)),
               fragments=("current-token score",))


def test_previous_counts_query_zero():
    def previous_token_score(pattern):
        n = pattern.shape[-1]
        total = sum(pattern[:, :, i, i - 1] for i in range(1, n))
        return total.mean(dim=0) / n
    fails_with(nb2.check_previous_token_score, previous_token_score, fragments=("query 0 has no previous token",))


def test_previous_sums_over_batch():
    fails_with(nb2.check_previous_token_score,
               lambda pattern: torch.diagonal(pattern, -1, 2, 3).mean(dim=2).sum(dim=0), fragments=("summed over the batch",))


def test_previous_averages_over_heads():
    fails_with(nb2.check_previous_token_score, lambda pattern: torch.diagonal(pattern, -1, 2, 3).mean(dim=(1, 2)),
               fragments=("averaged over the head axis and kept the batch axis",))


def test_current_skips_query_zero():
    fails_with(nb2.check_current_token_score, lambda pattern: torch.diagonal(pattern, 0, 2, 3)[:, :, 1:].mean(dim=(0, 2)),
               fragments=("skipped query 0",))


def test_current_is_the_previous_stripe():
    fails_with(nb2.check_current_token_score, lambda pattern: torch.diagonal(pattern, -1, 2, 3).mean(dim=(0, 2)),
               fragments=("previous-token score",))


def test_current_sums_over_positions():
    fails_with(nb2.check_current_token_score, lambda pattern: torch.diagonal(pattern, 0, 2, 3).sum(dim=2).mean(dim=0),
               fragments=("summed over query positions",))


def test_first_counts_query_zero():
    fails_with(nb2.check_first_token_score, lambda pattern: pattern[:, :, :, 0].mean(dim=(0, 2)),
               fragments=("included query 0",))


def test_first_reads_row_zero():
    fails_with(nb2.check_first_token_score, lambda pattern: pattern[:, :, 0, 1:].mean(dim=(0, 2)),
               fragments=("row 0",))


# ----- 2. every head of a model
def test_reference_score_all_heads_passes(capsys):
    def score_all_heads(model, tokens, score_fn):
        _, cache = model.run_with_cache(tokens)
        return torch.stack([score_fn(cache[f"blocks.{l}.attn.hook_pattern"]) for l in range(model.cfg.n_layers)])
    nb2.check_score_all_heads(score_all_heads, seeds=(0, 11), shapes=({}, {"n_layers": 2, "score": "first_token_score"}))
    assert "✓" in capsys.readouterr().out


def test_score_all_heads_reads_layer_zero_every_time():
    def score_all_heads(model, tokens, score_fn):
        _, cache = model.run_with_cache(tokens)
        return torch.stack([score_fn(cache["pattern", 0]) for _ in range(model.cfg.n_layers)])
    fails_with(nb2.check_score_all_heads, score_all_heads, fragments=("layer 0's scores",))


def test_score_all_heads_first_sequence_only():
    def score_all_heads(model, tokens, score_fn):
        rows = []
        for l in range(model.cfg.n_layers):
            _, cache = model.run_with_cache(tokens[:1])
            rows.append(score_fn(cache["pattern", l]))
        return torch.stack(rows)
    fails_with(nb2.check_score_all_heads, score_all_heads, fragments=("only the first sequence",))


def test_score_all_heads_head_by_layer():
    def score_all_heads(model, tokens, score_fn):
        _, cache = model.run_with_cache(tokens)
        return torch.stack([score_fn(cache["pattern", l]) for l in range(model.cfg.n_layers)], dim=1)
    fails_with(nb2.check_score_all_heads, score_all_heads, fragments=("your rows are the heads",))


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


def test_found_head_is_another_head(trained):
    prev = trained["scores"][ref.previous_token_score]
    worst = tuple(int(i) for i in torch.unravel_index(prev.argmin(), prev.shape))
    fails_with(nb2.check_previous_token_head, worst, trained["detect"], factor, trained["tokens"],
               fragments=(f"head {worst[0]}.{worst[1]}",))


def test_found_head_is_the_bos_head(trained):
    bos = trained["scores"][ref.first_token_score]
    found = tuple(int(i) for i in torch.unravel_index(bos.argmax(), bos.shape))
    assert found != trained["best"]
    fails_with(nb2.check_previous_token_head, found, trained["detect"], factor, trained["tokens"],
               fragments=("highest first-token (BOS) score",))


def test_found_head_not_a_pair(trained):
    fails_with(nb2.check_previous_token_head, "0.3", trained["detect"], factor, trained["tokens"],
               fragments=("pair of ints",))


def test_found_head_out_of_range(trained):
    layer, head = trained["best"]
    fails_with(nb2.check_previous_token_head, (layer + 5, head), trained["detect"], factor, trained["tokens"],
               fragments=("is not a head",))


def test_detect_scores_are_our_own(trained):
    fails_with(nb2.check_previous_token_head, trained["best"], trained["scores"][ref.previous_token_score], factor,
               trained["tokens"], fragments=("our own previous-token scores",))


def test_detect_scores_exclude_bos(trained):
    other = detect_head(trained["model"], tokens_to_text(trained["tokens"]), "previous_token_head", exclude_bos=True)
    fails_with(nb2.check_previous_token_head, trained["best"], other, factor, trained["tokens"],
               fragments=("default options",))


def test_detect_factor_upside_down():
    fails_with(nb2.check_detect_factor, lambda seq_len: seq_len / (seq_len - 1), fragments=("upside down",))


def test_detect_factor_one():
    fails_with(nb2.check_detect_factor, lambda seq_len: 1, fragments=("not equal", "How many rows"))


def test_detect_factor_hard_coded():
    fails_with(nb2.check_detect_factor, lambda seq_len: 23 / 24, fragments=("in terms of n",))


# ----- 4. a picture of one head
def test_reference_plot_passes(capsys):
    nb2.check_plot_head_pattern(lambda cache, layer, head, tokens: attention_heatmap(cache["pattern", layer][0, head]))
    assert "✓" in capsys.readouterr().out


def test_plot_transposed():
    fails_with(nb2.check_plot_head_pattern,
               lambda cache, layer, head, tokens: attention_heatmap(cache["pattern", layer][0, head].T),
               fragments=("transposed",))


def test_plot_wrong_head():
    fails_with(nb2.check_plot_head_pattern,
               lambda cache, layer, head, tokens: attention_heatmap(cache["pattern", layer][0, layer]),
               fragments=("shows head 1.1 of sequence 0",))


def test_plot_wrong_sequence():
    fails_with(nb2.check_plot_head_pattern,
               lambda cache, layer, head, tokens: attention_heatmap(cache["pattern", layer][-1, head]),
               fragments=("of sequence 1",))


def test_plot_returns_nothing():
    fails_with(nb2.check_plot_head_pattern,
               lambda cache, layer, head, tokens: attention_heatmap(cache["pattern", layer][0, head]) and None,
               fragments=("returned None",))


def test_plot_without_image():
    import matplotlib.pyplot as plt

    def plot_head_pattern(cache, layer, head, tokens):
        _, ax = plt.subplots()
        ax.plot(cache["pattern", layer][0, head].diagonal(-1).cpu())
        return ax
    fails_with(nb2.check_plot_head_pattern, plot_head_pattern, fragments=("holds no image",))


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


def test_qk_attends_to_itself():
    fails_with(nb2.check_previous_token_qk, qk_with(query_shift=0), fragments=("attends to itself",))


def test_qk_looks_at_the_next_position():
    fails_with(nb2.check_previous_token_qk, qk_with(query_shift=+1), fragments=("key i+1",))


def test_qk_too_soft():
    fails_with(nb2.check_previous_token_qk, qk_with(c=5.0), fragments=("too soft", "ln(19·23)"))


def test_qk_scale_hard_coded_for_the_default_layout():
    fails_with(nb2.check_previous_token_qk, qk_with(c=32.0), layouts=({}, {"d_vocab": 10, "n_ctx": 40}),
               fragments=("On Layout(d_vocab=10, n_ctx=40)", "too soft", "suits the default layout"))


def test_qk_two_back():
    fails_with(nb2.check_previous_token_qk, qk_with(query_shift=-2), fragments=("key i-2",))


def test_qk_without_positions():
    def previous_token_qk(layout):
        W_pos, W_Q, W_K = qk_with()(layout)
        return torch.zeros_like(W_pos), W_Q, W_K
    fails_with(nb2.check_previous_token_qk, previous_token_qk, fragments=("same score",))


def test_qk_positions_in_the_token_block():
    fails_with(nb2.check_previous_token_qk, qk_with(pos_cols=slice(0, 24)), fragments=("outside the position block",))


def test_qk_wrong_shape():
    def previous_token_qk(layout):
        W_pos, W_Q, W_K = qk_with()(layout)
        return W_pos, W_Q.T, W_K
    fails_with(nb2.check_previous_token_qk, previous_token_qk, fragments=("W_Q has shape",))


def test_qk_returns_two_things():
    fails_with(nb2.check_previous_token_qk, lambda layout: qk_with()(layout)[:2], fragments=("returned 2 value(s)",))


def test_ov_writes_into_the_token_block():
    fails_with(nb2.check_previous_token_ov, ov_with(write="token"), fragments=("current-token block",))


def test_ov_reads_the_position_block():
    fails_with(nb2.check_previous_token_ov, ov_with(read="pos"), fragments=("does not depend on the tokens",))


def test_ov_one_direction_for_every_token():
    fails_with(nb2.check_previous_token_ov, ov_with(order=lambda t, v: 0), fragments=("ambiguous",))


def test_ov_sign_flipped():
    fails_with(nb2.check_previous_token_ov, ov_with(sign=-1.0), fragments=("sign is flipped",))


def test_ov_two_tokens_per_coordinate():
    fails_with(nb2.check_previous_token_ov, ov_with(order=lambda t, v: t // 2), fragments=("same coordinate",))


def test_ov_two_coordinates_per_token():
    def previous_token_ov(layout):
        W_V, W_O = ov_with()(layout)
        return W_V, W_O + W_O.roll(-1, dims=1) * (torch.arange(layout.d_model) >= layout.prev.start)
    fails_with(nb2.check_previous_token_ov, previous_token_ov, fragments=("tie for the top logit",))


def test_ov_tokens_in_reverse_order():
    fails_with(nb2.check_previous_token_ov, ov_with(order=lambda t, v: v - 1 - t), fragments=("permutation",))


def test_ov_writes_nothing():
    def previous_token_ov(layout):
        W_V, W_O = ov_with()(layout)
        return W_V, torch.zeros_like(W_O)
    fails_with(nb2.check_previous_token_ov, previous_token_ov, fragments=("writes nothing",))


def test_ov_half_the_vocabulary():
    fails_with(nb2.check_previous_token_ov, ov_with(width=8), fragments=("one of [8, 9,",))


def test_ov_random_values():
    def previous_token_ov(layout):
        _, W_O = ov_with()(layout)
        return torch.randn(layout.d_model, layout.d_head, generator=torch.Generator().manual_seed(0)), W_O
    fails_with(nb2.check_previous_token_ov, previous_token_ov, fragments=("only",))


def test_whole_head_that_attends_to_itself():
    fails_with(nb2.check_handbuilt_head, qk_with(query_shift=0), ov_with(), fragments=("attends to itself",))


def test_whole_head_with_positions_in_the_prev_block():
    fails_with(nb2.check_handbuilt_head, qk_with(pos_cols=slice(32, 56)), ov_with(),
               fragments=("outside the position block",))


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


def test_key_change_uses_queries():
    def key_change(model, tokens, corrupted, layer):
        clean, dirty = _runs(model, tokens, corrupted)
        return torch.linalg.vector_norm(dirty["q", layer] - clean["q", layer], dim=-1).mean(dim=0)
    fails_with(nb2.check_key_change, key_change, fragments=("queries",))


def test_key_change_always_layer_zero():
    def key_change(model, tokens, corrupted, layer):
        clean, dirty = _runs(model, tokens, corrupted)
        return (dirty["blocks.0.attn.hook_k"] - clean["blocks.0.attn.hook_k"]).norm(dim=-1).mean(dim=0)
    fails_with(nb2.check_key_change, key_change, fragments=("layer 0's keys",))


def test_key_change_squared_length():
    def key_change(model, tokens, corrupted, layer):
        clean, dirty = _runs(model, tokens, corrupted)
        return ((dirty["k", layer] - clean["k", layer]) ** 2).sum(dim=-1).mean(dim=0)
    fails_with(nb2.check_key_change, key_change, fragments=("squared length",))


def test_key_change_summed_over_batch():
    def key_change(model, tokens, corrupted, layer):
        clean, dirty = _runs(model, tokens, corrupted)
        return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).sum(dim=0)
    fails_with(nb2.check_key_change, key_change, fragments=("summed over the batch",))


def test_key_change_head_by_pos():
    def key_change(model, tokens, corrupted, layer):
        clean, dirty = _runs(model, tokens, corrupted)
        return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).mean(dim=0).T
    fails_with(nb2.check_key_change, key_change, fragments=("wrong order",))


# ----- 7. why an earlier layer
def test_right_answers_pass(capsys):
    nb2.check_layer_answers({"why_earlier": "B", "one_layer_fix": " c"})
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("answers, fragment", [
    ({"why_earlier": "a", "one_layer_fix": "c"}, "one softmax per head"),
    ({"why_earlier": "c", "one_layer_fix": "c"}, "same position information"),
    ({"why_earlier": "d", "one_layer_fix": "c"}, "never earlier ones"),
    ({"why_earlier": "b", "one_layer_fix": "a"}, "more heads in the same layer"),
    ({"why_earlier": "b", "one_layer_fix": "b"}, "wider head"),
    ({"why_earlier": "b", "one_layer_fix": "d"}, "*where* it is"),
    ({"why_earlier": "b", "one_layer_fix": "e"}, "choose one of"),
    ({"why_earlier": "b"}, "must be a dict"),
    ("b, c", "must be a dict"),
])
def test_wrong_answers_explain_themselves(answers, fragment):
    fails_with(nb2.check_layer_answers, answers, fragments=(fragment,))


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
        name, decoded_params, decoded = decode(encode(check.id, params, record))
        assert name == check.id
        assert check.judge(decoded, **decoded_params).startswith("✓"), ast.unparse(call)


def test_a_wrong_hand_built_head_fails_the_same_way_from_its_decoded_record():
    check = nb2.check_handbuilt_head
    record = check.collect(qk_with(query_shift=0), ov_with(), **check.defaults)
    with pytest.raises(CheckFailed, match="attends to itself"):
        check.judge(decode(encode(check.id, check.defaults, record))[2], **check.defaults)


def test_a_tensor_subclass_answer_travels_only_as_its_type(trained):
    class Sneaky(torch.Tensor):
        pass

    fails_with(nb2.check_previous_token_head, trained["best"], trained["detect"].as_subclass(Sneaky), factor,
               trained["tokens"], fragments=("but it is a Sneaky",))


# ----- new diagnostics not covered by the catalogue
def test_tokens_that_are_not_token_ids(trained):
    fails_with(nb2.check_previous_token_head, trained["best"], trained["detect"], factor,
               trained["tokens"].float(), fragments=("re-run the cell that defines `tokens`",))


def test_detect_scores_excluding_the_current_token(trained):
    other = detect_head(trained["model"], tokens_to_text(trained["tokens"]), "previous_token_head",
                        exclude_current_token=True)
    assert not torch.allclose(other, trained["detect"], atol=1e-4)
    fails_with(nb2.check_previous_token_head, trained["best"], other, factor, trained["tokens"],
               fragments=("exclude_current_token=True",))


def test_found_as_numpy_ints(trained):
    import numpy as np
    fails_with(nb2.check_previous_token_head, tuple(np.int64(i) for i in trained["best"]), trained["detect"], factor,
               trained["tokens"], fragments=("convert each with int",))


def test_detect_factor_that_raises():
    def detect_factor(seq_len):
        return (seq_len - 1) / seq_len if seq_len < 50 else [][0]
    message = fails_with(nb2.check_detect_factor, detect_factor, fragments=("detect_factor raised IndexError",))
    assert "checks/" not in message


def test_qk_that_works_only_for_the_default_layout():
    def previous_token_qk(layout):
        W_pos, W_Q, _ = qk_with()(layout)
        W_K = torch.zeros(layout.d_model, layout.d_head)
        W_K[layout.pos, :24] = torch.eye(24)
        return W_pos, W_Q, W_K
    fails_with(nb2.check_previous_token_qk, previous_token_qk,
               fragments=("worked on the default layout but raised on Layout(d_vocab=40, n_ctx=12)",
                          "another shape than the slice"))


def test_score_shape_bug_needs_the_same_values_not_just_the_shape():
    fails_with(nb2.check_previous_token_score, lambda pattern: torch.zeros(pattern.shape[0]),
               fragments=("returned shape [3], expected [head=4]",))
