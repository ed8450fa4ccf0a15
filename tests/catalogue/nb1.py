"""Notebook 1 (attention from scratch): mistakes students make, and correct alternatives.

Written the way students write them, independently of the checks' ``Bug`` functions.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from catalogue import Correct, Mistake
from induction_course.checks import nb1

# The hidden calls of the notebook's graded cells (masters/01_attention.py).
HIDDEN = {
    "project": {"seeds": (11, 12), "shapes": ({}, {"pos": 1}, {"head": 1, "d_head": 7})},
    "scores": {"seeds": (11, 12), "shapes": ({}, {"pos": 1}, {"head": 1, "d_head": 5})},
    "mask": {"seeds": (11, 12), "shapes": ({}, {"pos": 1}, {"pos": 13, "head": 1})},
    "pattern": {"seeds": (11, 12), "shapes": ({}, {"pos": 1}, {"head": 1, "d_head": 5})},
    "z": {"seeds": (11, 12), "shapes": ({}, {"pos": 1}, {"head": 1, "d_head": 5})},
    "output": {"seeds": (11, 12), "shapes": ({}, {"pos": 1}, {"head": 1, "d_model": 7})},
    "layer": {"seeds": (11, 12), "shapes": ({}, {"pos": 1}, {"head": 2, "d_head": 3})},
    "lens": {"seed": 7, "n_layers": 2, "layer": 1, "pos": 20},
}


# ================================================================ 1.1 project
def project_no_bias(x, W, b):
    return torch.einsum("bpm,hmd->bphd", x, W)


def project_flattened_heads(x, W, b):
    n_heads, d_model, d_head = W.shape
    flat = W.reshape(d_model, n_heads * d_head)          # looks like the nn.Linear layout, but mixes heads
    return (x @ flat).reshape(x.shape[0], x.shape[1], n_heads, d_head) + b


def project_head_first(x, W, b):
    return torch.einsum("bpm,hmd->bhpd", x, W) + b[:, None, :]


def project_stacked_first(x, W, b):
    return torch.stack([x @ W[h] + b[h] for h in range(W.shape[0])])


def project_cat_heads(x, W, b):
    return torch.cat([x @ W[h] + b[h] for h in range(W.shape[0])], dim=-1)


def project_matmul_broadcast(x, W, b):
    return x @ W + b


def project_first_head_only(x, W, b):
    out = x @ W[0] + b[0]
    return out.unsqueeze(2).repeat(1, 1, W.shape[0], 1)


def project_renamed_argument(inputs, W, b):
    return torch.einsum("bpm,hmd->bphd", inputs, W) + b


def project_no_return(x, W, b):
    out = torch.einsum("bpm,hmd->bphd", x, W) + b  # noqa: F841  (the student forgot to return it)


def project_bias_summed(x, W, b):
    return torch.einsum("bpm,hmd->bphd", x, W) + b.sum(dim=0)


def project_einsum_wrong_letters(x, W, b):
    return torch.einsum("bpm,hdm->bphd", x, W) + b


def project_loop(x, W, b):
    heads = [x @ W[h] + b[h] for h in range(W.shape[0])]
    return torch.stack(heads, dim=2)


def project_broadcast_matmul(x, W, b):
    return x[:, :, None, None, :].matmul(W).squeeze(-2) + b


def project_float64_inside(x, W, b):
    return (torch.einsum("bpm,hmd->bphd", x.double(), W.double()) + b.double()).to(x.dtype)


# ================================================================ 1.2 attention scores
def scores_unscaled(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k)


def scores_over_d_head(q, k):
    return q.permute(0, 2, 1, 3) @ k.permute(0, 2, 3, 1) / q.shape[-1]


def scores_times_sqrt(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) * math.sqrt(q.shape[-1])


def scores_power_precedence(q, k):
    d_head = q.shape[-1]
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / d_head ** 1/2


def scores_size_of_pos(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.size(1))


def scores_keys_first(q, k):
    return torch.einsum("bkhd,bqhd->bhqk", q, k) / math.sqrt(q.shape[-1])


def scores_head_letters_differ(q, k):
    return torch.einsum("bihd,bjgd->bhij", q, k) / math.sqrt(q.shape[-1])


def scores_view_heads(q, k):
    b, p, h, d = q.shape
    return q.view(b, h, p, d) @ k.view(b, h, p, d).transpose(-1, -2) / math.sqrt(d)


def scores_query_layout(q, k):
    return torch.einsum("bqhd,bkhd->bqhk", q, k) / math.sqrt(q.shape[-1])


def scores_matmul_untransposed(q, k):
    return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])


def scores_with_softmax(q, k):
    return torch.softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1]), dim=-1)


def scores_numpy_scale(q, k):
    scale = torch.tensor(np.sqrt(q.shape[-1]))  # float64 scalar tensor: 0-dim, so the dtype stays float32
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / scale


def scores_double(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q.double(), k.double()) / math.sqrt(q.shape[-1])


def scores_transposes(q, k):
    return (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)) / q.shape[-1] ** 0.5


def scores_other_letters(q, k):
    return torch.einsum("nihe,njhe->nhij", q, k) * q.shape[-1] ** -0.5


# ================================================================ 1.3 causal mask
def _upper(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)


def mask_in_place(scores):
    n = scores.shape[-1]
    scores.masked_fill_(_upper(n), float("-inf"))
    return scores


def mask_returns_input(scores):
    scores.masked_fill(_upper(scores.shape[-1]), float("-inf"))
    return scores


def mask_with_diagonal(scores):
    n = scores.shape[-1]
    return scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool)), -1e9)


def mask_tril(scores):
    n = scores.shape[-1]
    return scores.masked_fill(torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=-1), float("-inf"))


def mask_multiply(scores):
    return scores * torch.tril(torch.ones_like(scores))


def mask_float_mask(scores):
    n = scores.shape[-1]
    return scores.masked_fill(torch.triu(torch.ones(n, n), diagonal=1), float("-inf"))


def mask_numpy_float64(scores):
    n = scores.shape[-1]
    return scores + torch.from_numpy(np.triu(np.full((n, n), -np.inf), k=1))


def mask_wrong_size(scores):
    n = scores.shape[1]  # the head axis, not the position axis
    return scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1), float("-inf"))


def mask_lower_with_diagonal(scores):
    n = scores.shape[-1]
    keep = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return scores.masked_fill(~keep, float("-inf"))


def mask_min_float(scores):
    return scores.masked_fill(_upper(scores.shape[-1]), torch.finfo(scores.dtype).min)


def mask_where(scores):
    n = scores.shape[-1]
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    return torch.where(j > i, torch.tensor(-1e9), scores)


def mask_add_inf(scores):
    n = scores.shape[-1]
    return scores + torch.full((n, n), float("-inf")).triu(1)


def mask_clone_then_in_place(scores):
    out = scores.clone()
    out[..., _upper(scores.shape[-1])] = float("-inf")
    return out


# ================================================================ 1.4 attention pattern
def _scaled(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])


def _causal(scores):
    n = scores.shape[-1]
    return scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))


def pattern_mask_after(q, k):
    probs = _scaled(q, k).softmax(dim=-1)
    return probs * torch.tril(torch.ones(q.shape[1], q.shape[1]))


def pattern_no_mask(q, k):
    return F.softmax(_scaled(q, k), dim=-1)


def pattern_softmax_queries(q, k):
    return _causal(_scaled(q, k)).softmax(dim=2)


def pattern_softmax_no_dim(q, k):
    return F.softmax(_causal(_scaled(q, k)), dim=1)


def pattern_softmax_batch(q, k):
    return torch.softmax(_causal(_scaled(q, k)), 0)


def pattern_unscaled(q, k):
    return _causal(torch.einsum("bqhd,bkhd->bhqk", q, k)).softmax(-1)


def pattern_swapped_args(q, k):
    return _causal(_scaled(k, q)).softmax(-1)


def pattern_diagonal_masked(q, k):
    n = q.shape[1]
    return _scaled(q, k).masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool)), float("-inf")).softmax(-1)


def pattern_log_softmax(q, k):
    return torch.log_softmax(_causal(_scaled(q, k)), dim=-1)


def pattern_no_softmax(q, k):
    return _causal(_scaled(q, k))


def pattern_transposed(q, k):
    return _causal(_scaled(q, k)).softmax(-1).transpose(2, 3)


def pattern_manual_softmax(q, k):
    s = _causal(_scaled(q, k))
    e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def pattern_float64(q, k):
    return _causal(_scaled(q, k)).double().softmax(-1).float()


def pattern_sdpa(q, k):
    qh, kh = q.transpose(1, 2), k.transpose(1, 2)
    eye = torch.eye(q.shape[1]).expand(q.shape[0], q.shape[2], -1, -1)  # values = one-hot keys
    return F.scaled_dot_product_attention(qh, kh, eye, is_causal=True)


# ================================================================ 1.5 weighted values
def z_pattern_transposed(pattern, v):
    return torch.einsum("bhkq,bkhd->bqhd", pattern, v)


def z_heads_summed(pattern, v):
    return torch.einsum("bhqk,bkd->bqhd", pattern, v.sum(2))


def z_head_layout(pattern, v):
    return pattern @ v.transpose(1, 2)


def z_matmul_untransposed(pattern, v):
    return (pattern @ v).transpose(1, 2)


def z_query_letter(pattern, v):
    return torch.einsum("bhqk,bqhd->bqhd", pattern, v)


def z_mean_over_keys(pattern, v):
    weighted = pattern[..., None] * v.transpose(1, 2)[:, :, None]  # [b, h, q, k, d]
    return weighted.mean(dim=3).transpose(1, 2)


def z_transpose_in_place(pattern, v):
    v.transpose_(1, 2)
    return (pattern @ v).transpose(1, 2)


def z_view_back(pattern, v):
    out = pattern @ v.permute(0, 2, 1, 3)                # [b, h, q, d]
    return out.view(v.shape)                              # a view cannot move the head axis


def z_matmul(pattern, v):
    return (pattern @ v.transpose(1, 2)).transpose(1, 2)


def z_loop(pattern, v):
    z = torch.zeros_like(v)
    for h in range(v.shape[2]):
        z[:, :, h] = pattern[:, h] @ v[:, :, h]
    return z


# ================================================================ 1.6 output projection
def output_no_bias(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bpm", z, W_O)


def output_bias_per_head(z, W_O, b_O):
    per_head = torch.einsum("bphd,hdm->bphm", z, W_O) + b_O
    return per_head.sum(dim=2)


def output_not_summed(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bphm", z, W_O) + b_O


def output_mean_heads(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bphm", z, W_O).mean(2) + b_O


def output_sum_first(z, W_O, b_O):
    return z.sum(2) @ W_O.sum(0) + b_O


def output_flatten_mismatch(z, W_O, b_O):
    b, p, h, d = z.shape
    return z.reshape(b, p, h * d) @ W_O.permute(1, 0, 2).reshape(d * h, -1) + b_O


def output_cat_heads(z, W_O, b_O):
    return torch.cat([z[:, :, h] @ W_O[h] for h in range(z.shape[2])], dim=-1)


def output_squeeze(z, W_O, b_O):
    per_head = (z.unsqueeze(-2) @ W_O).squeeze()        # [b, p, h, 1, m] -> squeeze() also eats size-1 axes
    return per_head.sum(dim=-2) + b_O


def output_flattened(z, W_O, b_O):
    return z.flatten(2) @ W_O.flatten(0, 1) + b_O


def output_loop(z, W_O, b_O):
    out = b_O.expand(z.shape[0], z.shape[1], -1).clone()
    for h in range(z.shape[2]):
        out += z[:, :, h] @ W_O[h]
    return out


# ================================================================ 1.7 the whole layer
def _proj(x, W, b):
    return torch.einsum("bpm,hmd->bphd", x, W) + b


def _layer(pattern_fn, *, project=_proj, v_weights="V", order=(0, 1, 2), out_fn=None):
    """A student's layer built from their helpers, one of which may be wrong."""
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        weights = {"Q": (W_Q, b_Q), "K": (W_K, b_K), "V": (W_V, b_V)}
        q, k = project(x, W_Q, b_Q), project(x, W_K, b_K)
        v = project(x, *weights[v_weights])
        pattern = pattern_fn(q, k)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        out = out_fn(z, W_O, b_O) if out_fn else torch.einsum("bphd,hdm->bpm", z, W_O) + b_O
        results = (pattern, z, out)
        return tuple(results[i] for i in order)
    return attention_layer


def _good_pattern(q, k):
    return _causal(_scaled(q, k)).softmax(-1)


def layer_scale_d_model(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(x.shape[-1])
    pattern = _causal(scores).softmax(-1)
    z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def layer_only_output(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    z = torch.einsum("bhqk,bkhd->bqhd", _good_pattern(q, k), v)
    return torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def layer_z_from_unprojected_values(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K)
    pattern = _good_pattern(q, k)
    z = torch.einsum("bhqk,bkm->bqhm", pattern, x)      # forgot W_V: the shapes no longer fit W_O
    return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def layer_keyword_sdpa(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = (_proj(x, W, b).transpose(1, 2) for W, b in ((W_Q, b_Q), (W_K, b_K), (W_V, b_V)))
    z = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    pattern = _good_pattern(q.transpose(1, 2), k.transpose(1, 2))
    return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def layer_big_negative_mask(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    n = x.shape[1]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), -1e9)
    pattern = scores.softmax(-1)
    z = pattern @ v.transpose(1, 2)
    z = z.transpose(1, 2)
    out = z.flatten(2) @ W_O.flatten(0, 1) + b_O
    return pattern, z, out


def layer_scale_folded_in_place(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    scale = W_Q.shape[-1] ** -0.5
    W_Q *= scale                                          # folds the scale into the caller's weights
    b_Q *= scale
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    pattern = _causal(torch.einsum("bqhd,bkhd->bhqk", q, k)).softmax(-1)
    z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


_COMPOSITE_MISTAKES = [
    (layer_scale_folded_in_place, "scale folded into W_Q in place", "changed its input `W_Q` in place"),
    (_layer(pattern_no_mask), "no causal mask", "no causal mask"),
    (_layer(pattern_unscaled), "missing 1/sqrt(d_head)", "scale is missing"),
    (layer_scale_d_model, "scaled by sqrt(d_model)", "sqrt(d_model)"),
    (_layer(pattern_mask_after), "mask after softmax", "after the softmax"),
    (_layer(pattern_softmax_queries), "softmax over queries", "wrong axis"),
    (_layer(pattern_diagonal_masked), "diagonal masked (NaN)", "NaN"),
    (_layer(pattern_swapped_args), "queries and keys transposed", "transposed"),
    (_layer(_good_pattern, project=project_no_bias), "projection without bias", "bias b is missing"),
    (_layer(_good_pattern, project=project_flattened_heads), "projection mixes heads", "heads are mixed up"),
    (_layer(_good_pattern, v_weights="K"), "values projected with W_K", "v was computed with W_K"),
    (_layer(_good_pattern, order=(1, 0, 2)), "outputs returned as (z, pattern, out)", "wrong order"),
    (layer_only_output, "returns only the output", "a single Tensor"),
    (_layer(_good_pattern, out_fn=output_bias_per_head), "b_O once per head", "once per head"),
    (_layer(_good_pattern, out_fn=output_no_bias), "output without b_O", "b_O is missing"),
    (_layer(_good_pattern, out_fn=output_sum_first), "output mixes heads", "heads are mixed up"),
    (layer_z_from_unprojected_values, "values not projected (x used as v)", "size"),
    (_layer(_good_pattern, out_fn=output_squeeze), ".squeeze() in the output", "squeeze"),
    (_layer(pattern_softmax_no_dim), "softmax over heads (F.softmax's implicit dim)", "head axis"),
]


# ================================================================ the catalogue
def _m(check, fn, kind, expect, hidden_key):
    return Mistake(check, (fn,), kind, expect, HIDDEN[hidden_key])


MISTAKES = [
    _m(nb1.check_project, project_no_bias, "missing bias", "bias b is missing", "project"),
    _m(nb1.check_project, project_flattened_heads, "heads mixed by reshaping W", "heads are mixed up", "project"),
    _m(nb1.check_project, project_head_first, "output axes [batch, head, pos, d_head]", "wrong order", "project"),
    _m(nb1.check_project, project_stacked_first, "torch.stack along a new first axis", "wrong order", "project"),
    _m(nb1.check_project, project_cat_heads, "torch.cat merges head and d_head", "merged", "project"),
    _m(nb1.check_project, project_matmul_broadcast, "x @ W broadcasts batch against head", "`batch`", "project"),
    _m(nb1.check_project, project_first_head_only, "head 0's weights for every head", "head 0's weights", "project"),
    _m(nb1.check_project, project_renamed_argument, "parameter renamed", "signature", "project"),
    _m(nb1.check_project, project_no_return, "forgot return", "`return`", "project"),
    _m(nb1.check_project, project_bias_summed, "bias summed over heads", "b.sum(0)", "project"),
    _m(nb1.check_project, project_einsum_wrong_letters, "einsum letters for W in the wrong order", "letter m",
       "project"),

    _m(nb1.check_attention_scores, scores_unscaled, "missing 1/sqrt(d_head)", "1/sqrt(d_head)", "scores"),
    _m(nb1.check_attention_scores, scores_over_d_head, "divided by d_head", "divided by d_head", "scores"),
    _m(nb1.check_attention_scores, scores_times_sqrt, "multiplied by sqrt(d_head)", "instead of dividing", "scores"),
    _m(nb1.check_attention_scores, scores_power_precedence, "d ** 1/2 precedence", "d ** 0.5", "scores"),
    _m(nb1.check_attention_scores, scores_size_of_pos, "scale from the pos axis", "not q.shape[1]", "scores"),
    _m(nb1.check_attention_scores, scores_keys_first, "queries and keys transposed", "transposed", "scores"),
    _m(nb1.check_attention_scores, scores_head_letters_differ, "heads mixed in einsum", "heads are mixed up",
       "scores"),
    _m(nb1.check_attention_scores, scores_view_heads, "heads mixed by .view", "scrambles", "scores"),
    _m(nb1.check_attention_scores, scores_query_layout, "output axes [batch, q_pos, head, k_pos]", "wrong order",
       "scores"),
    _m(nb1.check_attention_scores, scores_matmul_untransposed, "matmul without moving the head axis",
       "wrong axes", "scores"),
    _m(nb1.check_attention_scores, scores_with_softmax, "softmax inside the scores", "softmax comes later",
       "scores"),
    _m(nb1.check_attention_scores, scores_double, "float64 result", "dtype", "scores"),

    _m(nb1.check_apply_causal_mask, mask_in_place, "masked_fill_ changes the input", "in place", "mask"),
    _m(nb1.check_apply_causal_mask, mask_returns_input, "result of masked_fill thrown away", "nothing is masked",
       "mask"),
    _m(nb1.check_apply_causal_mask, mask_with_diagonal, "diagonal masked too", "diagonal", "mask"),
    _m(nb1.check_apply_causal_mask, mask_tril, "past masked instead of future", "past instead of the future",
       "mask"),
    _m(nb1.check_apply_causal_mask, mask_lower_with_diagonal, "~triu masks past and diagonal",
       "the past and the diagonal", "mask"),
    _m(nb1.check_apply_causal_mask, mask_multiply, "masked scores set to 0", "set to 0", "mask"),
    _m(nb1.check_apply_causal_mask, mask_float_mask, "float mask in masked_fill", "boolean", "mask"),
    _m(nb1.check_apply_causal_mask, mask_numpy_float64, "numpy mask makes float64", "dtype", "mask"),
    _m(nb1.check_apply_causal_mask, mask_wrong_size, "mask sized by the head axis", "`head`", "mask"),

    _m(nb1.check_attention_pattern, pattern_mask_after, "mask after softmax", "after the softmax", "pattern"),
    _m(nb1.check_attention_pattern, pattern_no_mask, "no causal mask", "no causal mask", "pattern"),
    _m(nb1.check_attention_pattern, pattern_softmax_queries, "softmax over queries", "wrong axis", "pattern"),
    _m(nb1.check_attention_pattern, pattern_softmax_no_dim, "softmax over heads (F.softmax's implicit dim)",
       "head axis", "pattern"),
    _m(nb1.check_attention_pattern, pattern_softmax_batch, "softmax over batch", "batch axis", "pattern"),
    _m(nb1.check_attention_pattern, pattern_unscaled, "missing 1/sqrt(d_head)", "scale is missing", "pattern"),
    _m(nb1.check_attention_pattern, pattern_swapped_args, "queries and keys swapped", "transposed", "pattern"),
    _m(nb1.check_attention_pattern, pattern_diagonal_masked, "diagonal masked: NaN rows", "NaN", "pattern"),
    _m(nb1.check_attention_pattern, pattern_log_softmax, "log_softmax", "log_softmax", "pattern"),
    _m(nb1.check_attention_pattern, pattern_no_softmax, "no softmax", "no softmax", "pattern"),
    _m(nb1.check_attention_pattern, pattern_transposed, "pattern returned transposed", "transposed", "pattern"),

    _m(nb1.check_weighted_values, z_pattern_transposed, "pattern used transposed", "transposed", "z"),
    _m(nb1.check_weighted_values, z_heads_summed, "values summed over heads", "heads are mixed up", "z"),
    _m(nb1.check_weighted_values, z_head_layout, "z left as [batch, head, pos, d_head]", "wrong order", "z"),
    _m(nb1.check_weighted_values, z_matmul_untransposed, "pattern @ v without moving v's head axis", "`head`", "z"),
    _m(nb1.check_weighted_values, z_query_letter, "v indexed by the query", "z equals v", "z"),
    _m(nb1.check_weighted_values, z_mean_over_keys, "mean over keys instead of sum", "mean where a sum", "z"),
    _m(nb1.check_weighted_values, z_transpose_in_place, "transpose_ changes v", "in place", "z"),
    _m(nb1.check_weighted_values, z_view_back, ".view instead of transpose back", "heads are mixed up", "z"),

    _m(nb1.check_attention_output, output_no_bias, "missing b_O", "b_O is missing", "output"),
    _m(nb1.check_attention_output, output_bias_per_head, "b_O added per head", "once per head", "output"),
    _m(nb1.check_attention_output, output_not_summed, "heads not summed", "extra axis of size 3", "output"),
    _m(nb1.check_attention_output, output_mean_heads, "mean over heads", "averaged", "output"),
    _m(nb1.check_attention_output, output_sum_first, "z and W_O summed over heads first", "heads are mixed up",
       "output"),
    _m(nb1.check_attention_output, output_flatten_mismatch, "z and W_O flattened in different orders",
       "same order", "output"),
    _m(nb1.check_attention_output, output_cat_heads, "heads concatenated instead of summed", "concatenated", "output"),
    _m(nb1.check_attention_output, output_squeeze, ".squeeze() without dim", "squeeze", "output"),

    *[_m(nb1.check_attention_layer, fn, kind, expect, "layer") for fn, kind, expect in _COMPOSITE_MISTAKES],

    _m(nb1.check_against_transformer_lens, _layer(pattern_unscaled), "missing 1/sqrt(d_head)", "scale is missing",
       "lens"),
    _m(nb1.check_against_transformer_lens, _layer(pattern_no_mask), "no causal mask", "no causal mask", "lens"),
    _m(nb1.check_against_transformer_lens, _layer(pattern_softmax_no_dim), "softmax over heads", "head axis",
       "lens"),
    _m(nb1.check_against_transformer_lens, _layer(_good_pattern, v_weights="Q"), "values projected with W_Q",
       "v was computed with W_Q", "lens"),
    _m(nb1.check_against_transformer_lens, _layer(_good_pattern, out_fn=output_not_summed), "heads not summed",
       "extra axis", "lens"),
    _m(nb1.check_against_transformer_lens, layer_scale_d_model, "scaled by sqrt(d_model)", "sqrt(d_model)", "lens"),
]


def _c(check, fn, kind, hidden_key):
    return Correct(check, (fn,), kind, HIDDEN[hidden_key])


CORRECT = [
    _c(nb1.check_project, project_loop, "loop over heads, torch.stack(dim=2)", "project"),
    _c(nb1.check_project, project_broadcast_matmul, "broadcast matmul and squeeze(-2)", "project"),
    _c(nb1.check_project, project_float64_inside, "float64 inside, cast back", "project"),
    _c(nb1.check_attention_scores, scores_transposes, "matmul with transposes", "scores"),
    _c(nb1.check_attention_scores, scores_other_letters, "other einsum letters, ** -0.5", "scores"),
    _c(nb1.check_attention_scores, scores_numpy_scale, "numpy sqrt as a 0-dim tensor", "scores"),
    _c(nb1.check_apply_causal_mask, mask_min_float, "finfo.min", "mask"),
    _c(nb1.check_apply_causal_mask, mask_where, "torch.where with -1e9", "mask"),
    _c(nb1.check_apply_causal_mask, mask_add_inf, "adding a -inf upper triangle", "mask"),
    _c(nb1.check_apply_causal_mask, mask_clone_then_in_place, "clone, then write into a slice", "mask"),
    _c(nb1.check_attention_pattern, pattern_manual_softmax, "exp / sum with the max subtracted", "pattern"),
    _c(nb1.check_attention_pattern, pattern_float64, "softmax in float64, cast back", "pattern"),
    _c(nb1.check_attention_pattern, pattern_sdpa, "scaled_dot_product_attention on one-hot values", "pattern"),
    _c(nb1.check_weighted_values, z_matmul, "matmul with transposes", "z"),
    _c(nb1.check_weighted_values, z_loop, "loop over heads into zeros_like", "z"),
    _c(nb1.check_attention_output, output_flattened, "flatten heads into one matmul", "output"),
    _c(nb1.check_attention_output, output_loop, "loop over heads, in-place sum on a new tensor", "output"),
    _c(nb1.check_attention_layer, layer_keyword_sdpa, "scaled_dot_product_attention for z", "layer"),
    _c(nb1.check_attention_layer, layer_big_negative_mask, "-1e9 mask, matmul, flattened W_O", "layer"),
    _c(nb1.check_against_transformer_lens, layer_keyword_sdpa, "scaled_dot_product_attention for z", "lens"),
    _c(nb1.check_against_transformer_lens, layer_big_negative_mask, "-1e9 mask, matmul, flattened W_O", "lens"),
]


# ================================================================ symptom classes (issue 18), written as students would
_NOTEBOOK_X = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(123))  # a notebook's own x


def project_notebook_x(x, W, b):
    return torch.einsum("bpm,hmd->bphd", _NOTEBOOK_X, W) + b


def project_half_precision(x, W, b):
    return (torch.einsum("bpm,hmd->bphd", x.half(), W.half()) + b.half()).float()


def project_numpy(x, W, b):
    return np.einsum("bpm,hmd->bphd", x.numpy(), W.numpy()) + b.numpy()


def project_one_sequence_at_a_time(x, W, b):
    rows = []
    for p in range(x.shape[1]):
        rows.append(torch.stack([x[p] @ W[h] + b[h] for h in range(W.shape[0])]))
    return torch.stack(rows)


def mask_through_a_view(scores):
    out = scores.view(scores.shape)
    n = scores.shape[-1]
    out[..., torch.triu(torch.ones(n, n, dtype=torch.bool), 1)] = float("-inf")
    return out


def scores_bfloat16(q, k):
    return (torch.einsum("bqhd,bkhd->bhqk", q.bfloat16(), k.bfloat16()) / math.sqrt(q.shape[-1])).float()


MISTAKES += [
    Mistake(nb1.check_project, (project_notebook_x,), "a notebook x instead of the argument", "`x` is not used",
            symptom="global"),
    Mistake(nb1.check_project, (project_half_precision,), "float16 inside, cast back", "float16", symptom="float16"),
    Mistake(nb1.check_attention_scores, (scores_bfloat16,), "bfloat16 inside, cast back", "bfloat16",
            symptom="float16"),
    Mistake(nb1.check_project, (project_numpy,), "NumPy result", "NumPy array", symptom="numpy/device"),
    Mistake(nb1.check_project, (project_one_sequence_at_a_time,), "indexes x[p] as if unbatched", "batch axis",
            symptom="batch axis"),
    Mistake(nb1.check_apply_causal_mask, (mask_through_a_view,), "writes -inf through a view of scores",
            "in place", symptom="in place/alias"),
]
