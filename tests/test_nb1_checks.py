"""Notebook 1's checks: every diagnostic fires on the bug it names.
Correct answers, written apart from the reference, pass in tests/catalogue/ (tests/test_no_self_comparison.py).

The buggy functions below are written the way a student would write them, independently of
the ``Bug`` variants inside the checks.
"""
from __future__ import annotations

import math

import pytest
import torch

from induction_course import attention as ref
from induction_course.checks import CheckFailed, nb1
from induction_course.checks.record import Opaque, Raised, decode, encode


def fails_with(check, fn, *fragments: str) -> str:
    with pytest.raises(CheckFailed) as info:
        check(fn)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"expected {fragment!r} in: {message}"
    return message


# ----- project
def test_project_missing_bias():
    fails_with(nb1.check_project, lambda x, W, b: torch.einsum("bpm,hmd->bphd", x, W), "bias b is missing")


def test_project_heads_mixed_by_reshape():
    def project(x, W, b):
        h, m, d = W.shape
        return (x @ W.reshape(m, h * d)).view(x.shape[0], x.shape[1], h, d) + b
    fails_with(nb1.check_project, project, "heads are mixed up")


def test_project_wrong_axis_order():
    fails_with(nb1.check_project, lambda x, W, b: torch.einsum("bpm,hmd->bhpd", x, W) + b[:, None],
               "shape", "wrong order")


# ----- scores
def test_scores_missing_scale():
    fails_with(nb1.check_attention_scores, lambda q, k: torch.einsum("bqhd,bkhd->bhqk", q, k), "1/sqrt(d_head) scale")


def test_scores_divided_by_d_head():
    fails_with(nb1.check_attention_scores, lambda q, k: q.permute(0, 2, 1, 3) @ k.permute(0, 2, 3, 1) / q.shape[-1],
               "divided by d_head")


def test_scores_transposed():
    fails_with(nb1.check_attention_scores,
               lambda q, k: torch.einsum("bqhd,bkhd->bhkq", q, k) / math.sqrt(q.shape[-1]), "transposed")


def test_scores_heads_mixed_in_einsum():
    fails_with(nb1.check_attention_scores,
               lambda q, k: torch.einsum("bqhd,bkgd->bhqk", q, k) / math.sqrt(q.shape[-1]), "heads are mixed up")


def test_scores_heads_mixed_by_view():
    def attention_scores(q, k):
        b, p, h, d = q.shape
        return q.view(b, h, p, d) @ k.view(b, h, p, d).transpose(-1, -2) / math.sqrt(d)
    fails_with(nb1.check_attention_scores, attention_scores, "scrambles")


def test_scores_wrong_dtype():
    fails_with(nb1.check_attention_scores, lambda q, k: ref.attention_scores(q.double(), k.double()), "dtype")


def test_scores_wrong_device():
    fails_with(nb1.check_attention_scores, lambda q, k: ref.attention_scores(q, k).to("meta"), "device")


def test_scores_not_a_tensor():
    fails_with(nb1.check_attention_scores, lambda q, k: ref.attention_scores(q, k).tolist(), "torch.Tensor")


def test_not_implemented_yet():
    def attention_scores(q, k):
        raise NotImplementedError()
    fails_with(nb1.check_attention_scores, attention_scores, "not written yet")


def test_crashing_code_is_reported_with_its_error():
    fails_with(nb1.check_attention_scores, lambda q, k: q @ k, "raised RuntimeError")


def test_scores_scaled_by_the_number_of_heads():
    fails_with(nb1.check_attention_scores, lambda q, k: _scores(q, k) * math.sqrt(q.shape[-1] / q.shape[2]),
               "not q.shape[2] (head)")


def test_scores_divided_by_half_of_d_head():
    fails_with(nb1.check_attention_scores,
               lambda q, k: torch.einsum("bqhd,bkhd->bhqk", q, k) / (q.shape[-1] ** 1 / 2), "(d ** 1) / 2")


def test_scores_shape_of_a_known_mistake_is_named_by_shape_alone():
    def attention_scores(q, k):  # two mistakes: heads dotted with heads, and no scale
        return q @ k.transpose(2, 3)
    fails_with(nb1.check_attention_scores, attention_scores, "returned shape [2, 7, 3, 3]",
               "the shape this mistake gives", "wrong axes")


def test_merged_axes_are_named():
    def project(x, W, b):
        h, m, d = W.shape
        return x @ W.permute(1, 0, 2).reshape(m, h * d) + b.flatten()
    fails_with(nb1.check_project, project, "`head` and `d_head` are merged into one axis of size 12")


def _einsum_wrong_count(q, k):
    return torch.einsum("bqd,bkhd->bhqk", q, k)


def _einsum_unknown_output(q, k):
    return torch.einsum("bqhd,bkhd->bhqj", q, k)


def _mm_flat(q, k):
    return q.flatten(0, 2) @ k.flatten(0, 2)


def _bmm(q, k):
    return torch.bmm(q.flatten(0, 1), k.flatten(2))


def _view_transposed(q, k):
    return _scores(q, k).transpose(1, 2).view(q.shape[0], -1)


def _reshape_invalid(q, k):
    return _scores(q, k).reshape(2, 3, 5, -1, 7)


def _dim_out_of_range(q, k):
    return _scores(q, k).softmax(dim=4)


def _too_many_indices(q, k):
    return _scores(q, k)[0, 0, 0, 0, 0]


def _softmax_no_dim(q, k):
    return torch.softmax(_scores(q, k))


def _renamed(query, key):
    return _scores(query, key)


def _none_scale(q, k):
    scale = None
    return _scores(q, k) / scale


def _double_mask(q, k):
    return _scores(q, k) @ torch.eye(q.shape[1], dtype=torch.float64)


@pytest.mark.parametrize("fn, fragments", [
    (_einsum_wrong_count, ("einsum equation gives operand 0 3 letter(s), but that tensor has 4 axes",)),
    (_einsum_unknown_output, ("output letter j appears in no input",)),
    (_mm_flat, ("last axis of A (here 8) must equal the first axis of B (here 42)", "8 is `d_head`")),
    (_bmm, ("B should have shape [14, 8, ...] to fit A", "but it has [2, 7, ...]", "7 is `pos`")),
    (_view_transposed, (".view cannot reshape a transposed tensor",)),
    (_reshape_invalid, ("do not multiply to the tensor's 294 entries",)),
    (_dim_out_of_range, ("You named axis 4 of a tensor with 4 axes",)),
    (_too_many_indices, ("more axes than the tensor's 4",)),
    (_softmax_no_dim, ("softmax needs dim=",)),
    (_renamed, ("keep the given signature",)),
    (_none_scale, ("Something is None",)),
    (_double_mask, ("different dtypes",)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_the_students_own_errors_are_explained(fn, fragments):
    message = fails_with(nb1.check_attention_scores, fn, "attention_scores raised", *fragments)
    assert message.count("\n") == 1  # the error, then one line of explanation


def test_the_students_traceback_is_still_shown_under_the_explanation():
    with pytest.raises(CheckFailed) as info:
        nb1.check_attention_scores(_mm_flat)
    shown = "\n".join(info.value._render_traceback_())
    assert shown.index("must equal the first axis") < shown.index("Your code raised") < shown.index("_mm_flat")


def test_returning_nothing_is_named():
    def attention_scores(q, k):
        _scores(q, k)
    fails_with(nb1.check_attention_scores, attention_scores, "returned None", "`return`")


# ----- mask
def _tri(n, diagonal):
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=diagonal)


def test_mask_in_place():
    def apply_causal_mask(scores):
        scores[..., _tri(scores.shape[-1], 1)] = float("-inf")
        return scores
    fails_with(nb1.check_apply_causal_mask, apply_causal_mask, "in place")


def test_mask_missing():
    fails_with(nb1.check_apply_causal_mask, lambda scores: scores.clone(), "nothing is masked")


def test_mask_off_by_one_diagonal():
    fails_with(nb1.check_apply_causal_mask,
               lambda scores: scores.masked_fill(_tri(scores.shape[-1], 0), -1e9), "diagonal", "off by one")


def test_mask_past_instead_of_future():
    fails_with(nb1.check_apply_causal_mask,
               lambda scores: scores.masked_fill(torch.tril(torch.ones_like(scores, dtype=torch.bool), -1), -1e9),
               "the past instead of the future")


def test_mask_with_zero():
    fails_with(nb1.check_apply_causal_mask, lambda scores: scores * torch.tril(torch.ones_like(scores)), "set to 0")


def test_mask_accepts_any_large_negative_value(capsys):
    nb1.check_apply_causal_mask(lambda scores: scores.masked_fill(_tri(scores.shape[-1], 1), torch.finfo(scores.dtype).min))
    assert "✓" in capsys.readouterr().out


# ----- pattern
def _scores(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])


def test_pattern_mask_after_softmax():
    def attention_pattern(q, k):
        probs = torch.softmax(_scores(q, k), dim=-1)
        return probs * torch.tril(torch.ones(q.shape[1], q.shape[1]))
    fails_with(nb1.check_attention_pattern, attention_pattern, "mask is applied after the softmax")


def test_pattern_mask_after_softmax_with_inf():
    def attention_pattern(q, k):
        return torch.softmax(_scores(q, k), dim=-1).masked_fill(_tri(q.shape[1], 1), float("-inf"))
    fails_with(nb1.check_attention_pattern, attention_pattern, "after the softmax")


def test_pattern_without_mask():
    fails_with(nb1.check_attention_pattern, lambda q, k: torch.softmax(_scores(q, k), dim=-1), "no causal mask")


def test_pattern_softmax_over_query_axis():
    fails_with(nb1.check_attention_pattern,
               lambda q, k: _scores(q, k).masked_fill(_tri(q.shape[1], 1), float("-inf")).softmax(dim=2), "wrong axis")


def test_pattern_softmax_over_heads():
    fails_with(nb1.check_attention_pattern,
               lambda q, k: _scores(q, k).masked_fill(_tri(q.shape[1], 1), -1e9).softmax(dim=1), "head axis")


def test_pattern_missing_scale():
    fails_with(nb1.check_attention_pattern,
               lambda q, k: (torch.einsum("bqhd,bkhd->bhqk", q, k).masked_fill(_tri(q.shape[1], 1), -1e9)).softmax(-1),
               "scale is missing")


def test_pattern_queries_and_keys_swapped():
    fails_with(nb1.check_attention_pattern, lambda q, k: ref.attention_pattern(k, q), "transposed")


def test_pattern_nan_from_masking_diagonal():
    fails_with(nb1.check_attention_pattern,
               lambda q, k: _scores(q, k).masked_fill(_tri(q.shape[1], 0), float("-inf")).softmax(-1), "NaN", "diagonal")


# ----- z
def test_z_transposed_pattern():
    fails_with(nb1.check_weighted_values, lambda pattern, v: torch.einsum("bhkq,bkhd->bqhd", pattern, v), "transposed")


def test_z_heads_mixed():
    def weighted_values(pattern, v):
        return torch.einsum("bhqk,bkd->bqhd", pattern, v.sum(2))
    fails_with(nb1.check_weighted_values, weighted_values, "heads are mixed up")


def test_z_values_reshaped_into_head_first_layout():
    def weighted_values(pattern, v):
        b, p, h, d = v.shape
        return (pattern @ v.view(b, h, p, d)).permute(0, 2, 1, 3)
    fails_with(nb1.check_weighted_values, weighted_values, "heads are mixed up with positions", "needs .transpose")


def test_z_wrong_layout():
    fails_with(nb1.check_weighted_values, lambda pattern, v: pattern @ v.transpose(1, 2), "wrong order")


# ----- output
def test_output_missing_bias():
    fails_with(nb1.check_attention_output, lambda z, W_O, b_O: torch.einsum("bphd,hdm->bpm", z, W_O), "b_O is missing")


def test_output_bias_per_head():
    fails_with(nb1.check_attention_output,
               lambda z, W_O, b_O: (torch.einsum("bphd,hdm->bphm", z, W_O) + b_O).sum(2), "once per head")


def test_output_heads_mixed():
    fails_with(nb1.check_attention_output,
               lambda z, W_O, b_O: z.sum(2) @ W_O.sum(0) + b_O, "heads are mixed up")


def test_output_not_summed_over_heads():
    fails_with(nb1.check_attention_output,
               lambda z, W_O, b_O: torch.einsum("bphd,hdm->bphm", z, W_O) + b_O, "extra axis of size 3")


def test_output_averaged_over_heads():
    fails_with(nb1.check_attention_output,
               lambda z, W_O, b_O: torch.einsum("bphd,hdm->bphm", z, W_O).mean(2) + b_O, "averaged")


# ----- whole layer and TransformerLens
def test_layer_without_mask():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        q, k, v = ref.project(x, W_Q, b_Q), ref.project(x, W_K, b_K), ref.project(x, W_V, b_V)
        pattern = torch.softmax(_scores(q, k), dim=-1)
        z = ref.weighted_values(pattern, v)
        return pattern, z, ref.attention_output(z, W_O, b_O)
    fails_with(nb1.check_attention_layer, attention_layer, "no causal mask")


def test_layer_nan_output_is_named():
    def attention_layer(*args, **kwargs):
        pattern, z, out = ref.attention_layer(*args, **kwargs)
        return pattern, z, out * float("nan")
    fails_with(nb1.check_attention_layer, attention_layer, "out (output 2) of attention_layer", "NaN")


def test_layer_mistake_in_v_is_named_in_z():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        q, k = ref.project(x, W_Q, b_Q), ref.project(x, W_K, b_K)
        v = torch.einsum("bpm,hmd->bphd", x, W_V)                     # b_V forgotten
        pattern = ref.attention_pattern(q, k)
        z = ref.weighted_values(pattern, v)
        return pattern, z, ref.attention_output(z, W_O, b_O)
    fails_with(nb1.check_attention_layer, attention_layer, "z (output 1) of attention_layer",
               "in v = project(x, W_V, b_V): the bias b is missing")


def test_layer_mistake_in_the_mask_is_named_in_the_pattern():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        q, k, v = ref.project(x, W_Q, b_Q), ref.project(x, W_K, b_K), ref.project(x, W_V, b_V)
        n = x.shape[1]
        scores = _scores(q, k).masked_fill(torch.tril(torch.ones(n, n, dtype=torch.bool), -1), -1e9)
        pattern = scores.softmax(-1)
        z = ref.weighted_values(pattern, v)
        return pattern, z, ref.attention_output(z, W_O, b_O)
    fails_with(nb1.check_attention_layer, attention_layer, "the pattern (output 0)", "in the mask",
               "past instead of the future")


def test_layer_keys_from_the_query_weights():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        q, k, v = ref.project(x, W_Q, b_Q), ref.project(x, W_Q, b_Q), ref.project(x, W_V, b_V)
        pattern = ref.attention_pattern(q, k)
        z = ref.weighted_values(pattern, v)
        return pattern, z, ref.attention_output(z, W_O, b_O)
    fails_with(nb1.check_attention_layer, attention_layer, "k was computed with W_Q/b_Q")


def test_layer_output_step_judged_on_the_students_own_z():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        pattern, z, _ = ref.attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) * 2 + b_O
    message = fails_with(nb1.check_attention_layer, attention_layer, "out (output 2) of attention_layer is wrong")
    assert "pattern" not in message


def test_layer_outputs_in_the_wrong_order():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        pattern, z, out = ref.attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        return out, pattern, z
    fails_with(nb1.check_attention_layer, attention_layer, "(out, pattern, z)", "wrong order")


def test_layer_returning_one_tensor():
    fails_with(nb1.check_attention_layer, lambda **kw: ref.attention_layer(**kw)[2], "a single Tensor",
               "(pattern, z, out)")


def test_layer_squeeze_is_caught_by_the_visible_batch_of_one():
    def attention_layer(**kw):
        pattern, z, out = ref.attention_layer(**kw)
        return pattern.squeeze(), z.squeeze(), out.squeeze()
    fails_with(nb1.check_attention_layer, attention_layer, "the pattern (output 0) of attention_layer returned shape",
               "size 1 here, is missing")


def test_layer_changing_its_weights_in_place():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        W_O.mul_(1.0).add_(0.0)
        b_O += 0
        out = ref.attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        W_V.zero_()
        return out
    fails_with(nb1.check_attention_layer, attention_layer, "changed its input `W_V` in place")


def test_reference_equals_transformer_lens_on_random_models(capsys):
    for seed, n_layers, layer in [(0, 1, 0), (1, 2, 0), (2, 2, 1)]:
        nb1.check_against_transformer_lens(ref.attention_layer, seed=seed, n_layers=n_layers, layer=layer)
    assert capsys.readouterr().out.count("match TransformerLens") == 3


def test_transformer_lens_check_catches_a_missing_scale():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        q, k, v = ref.project(x, W_Q, b_Q), ref.project(x, W_K, b_K), ref.project(x, W_V, b_V)
        pattern = ref.apply_causal_mask(torch.einsum("bqhd,bkhd->bhqk", q, k)).softmax(-1)
        z = ref.weighted_values(pattern, v)
        return pattern, z, ref.attention_output(z, W_O, b_O)
    with pytest.raises(CheckFailed, match=r"TransformerLens model's layer 0 .* scale is missing"):
        nb1.check_against_transformer_lens(attention_layer)


def test_transformer_lens_check_names_a_mistake_in_the_output_step():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        pattern, z, _ = ref.attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) / z.shape[2] + b_O
    with pytest.raises(CheckFailed, match=r"out \(output 2\) of attention_layer: you averaged over heads"):
        nb1.check_against_transformer_lens(attention_layer)


@pytest.mark.parametrize("first, second", [("W_Q", "W_K"), ("W_Q", "W_V"), ("W_K", "W_V"),
                                           ("b_Q", "b_K"), ("b_Q", "b_V"), ("b_K", "b_V")])
def test_transformer_lens_check_names_a_swap_of_two_parameters(first, second):
    """The model's biases are not zero, so a swap of two biases (or two weights) changes the outputs."""
    def attention_layer(**params):
        params[first], params[second] = params[second], params[first]
        return ref.attention_layer(**params)
    with pytest.raises(CheckFailed) as failure:
        nb1.check_against_transformer_lens(attention_layer)
    assert first in str(failure.value) and second in str(failure.value), str(failure.value)


def test_transformer_lens_check_sees_a_forgotten_output_bias():
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        pattern, z, out = ref.attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        return pattern, z, out - b_O
    with pytest.raises(CheckFailed, match="b_O"):
        nb1.check_against_transformer_lens(attention_layer)


def test_transformer_lens_check_judges_from_the_record_alone():
    check = nb1.check_against_transformer_lens
    params = {**check.defaults, "seed": 3, "n_layers": 2, "layer": 1, "pos": 7}
    good, bad = (check.collect(fn, **params) for fn in (ref.attention_layer, _unscaled_layer))
    name, got_params, record = decode(encode(check.id, params, good))
    assert name == check.id and "✓" in check.judge(record, **got_params)
    with pytest.raises(CheckFailed, match="scale is missing"):
        check.judge(decode(encode(check.id, params, bad))[2], **params)


def test_transformer_lens_check_refuses_outputs_on_another_device():
    check = nb1.check_against_transformer_lens
    record = check.collect(ref.attention_layer, **check.defaults)
    assert record["output_devices"] == [record["device"]] * 3
    record = decode(encode(check.id, check.defaults, dict(record, device="cuda:0")))[2]
    with pytest.raises(CheckFailed, match="on 'cpu', but its inputs are on 'cuda:0'"):
        check.judge(record, **check.defaults)


def test_transformer_lens_check_of_something_not_a_function():
    with pytest.raises(CheckFailed, match="should be a function"):
        nb1.check_against_transformer_lens(torch.zeros(3))


def _unscaled_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = ref.project(x, W_Q, b_Q), ref.project(x, W_K, b_K), ref.project(x, W_V, b_V)
    pattern = ref.apply_causal_mask(torch.einsum("bqhd,bkhd->bhqk", q, k)).softmax(-1)
    z = ref.weighted_values(pattern, v)
    return pattern, z, ref.attention_output(z, W_O, b_O)


@pytest.mark.parametrize("name", ["project", "attention_scores", "apply_causal_mask", "attention_pattern",
                                  "weighted_values", "attention_output", "attention_layer"])
def test_every_check_judges_an_encoded_record_as_it_judges_at_home(name):
    check = getattr(nb1, f"check_{name}")
    params = {**check.defaults, "seeds": (0, 5)}
    name_back, params_back, record = decode(encode(check.id, params, check.collect(getattr(ref, name), **params)))
    assert name_back == check.id and "✓" in check.judge(record, **params_back)
    wrong = check.collect(lambda **kw: None, **params)
    with pytest.raises(CheckFailed, match="returned None"):
        check.judge(decode(encode(check.id, params, wrong))[2], **params)


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


# ----- multiple choice on reading a causal pattern
def test_pattern_answers_pass(capsys):
    nb1.check_pattern_answers({"first_row": "B", "longer_rows": " c"})
    assert "✓ both answers are right" in capsys.readouterr().out


@pytest.mark.parametrize("answers, fragment", [
    ({"first_row": "a", "longer_rows": "c"}, "nothing about the match makes row 0 special"),
    ({"first_row": "c", "longer_rows": "c"}, "does not copy the diagonal"),
    ({"first_row": "d", "longer_rows": "c"}, "cannot single out one key"),
    ({"first_row": "b", "longer_rows": "a"}, "nothing in it knows which tokens matter"),
    ({"first_row": "b", "longer_rows": "b"}, "later rows lose fewer keys"),
    ({"first_row": "b", "longer_rows": "d"}, "not how much it sums to"),
    ({"first_row": "b", "longer_rows": "e"}, "choose one of"),
    ({"first_row": "b"}, "must be a dict"),
    ("bc", "must be a dict"),
])
def test_pattern_answers_name_each_wrong_choice(answers, fragment):
    with pytest.raises(CheckFailed) as info:
        nb1.check_pattern_answers(answers)
    assert fragment in str(info.value)
