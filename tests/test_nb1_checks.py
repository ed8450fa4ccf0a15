"""Notebook 1's checks: the reference passes, and every diagnostic fires on the bug it names.

The buggy functions below are written the way a student would write them, independently of
the ``Bug`` variants inside the checks.
"""
from __future__ import annotations

import math

import pytest
import torch

from induction_course import attention as ref
from induction_course.checks import CheckFailed, nb1


def fails_with(check, fn, *fragments: str) -> str:
    with pytest.raises(CheckFailed) as info:
        check(fn)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"expected {fragment!r} in: {message}"
    return message


@pytest.mark.parametrize("name", ["project", "attention_scores", "apply_causal_mask", "attention_pattern",
                                  "weighted_values", "attention_output", "attention_layer"])
def test_reference_passes_visible_and_hidden_cases(name, capsys):
    check = getattr(nb1, f"check_{name}")
    check(getattr(ref, name), seeds=(0, 11, 12), shapes=({}, {"pos": 1}))
    assert "✓" in capsys.readouterr().out


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


def test_graded_cell_reloads_checks_so_monkeypatching_cannot_disable_them(monkeypatch):
    """Run the real graded cell of the release after a student switched the check off."""
    import json
    import sys

    from induction_course.notebooks import COURSE

    nb = json.loads((COURSE / "01_attention" / "01_attention.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "check_attention_scores")
    monkeypatch.setattr(nb1, "check_attention_scores", lambda fn, **kw: None)
    saved = {m: mod for m, mod in sys.modules.items() if m.startswith("induction_course")}
    try:
        with pytest.raises(AssertionError, match="scale is missing"):
            exec("".join(cell["source"]), {"attention_scores": lambda q, k: torch.einsum("bqhd,bkhd->bhqk", q, k)})
    finally:
        for m in [m for m in sys.modules if m.startswith("induction_course")]:
            sys.modules.pop(m)
        sys.modules.update(saved)
