"""Notebook 1 (attention from scratch): mistakes students make, and correct alternatives.

Written the way students write them, independently of the checks' ``Bug`` functions. This is Notebook 1's one
corpus of mistakes: tests/test_nb1_checks.py asserts that every ``Bug`` of checks/nb1.py is named for one of them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from catalogue import Correct, Mistake, hidden
from induction_course.checks import nb1


def H(check):  # noqa: N802  (the master's hidden parameters of nb1.<check>, never copied here)
    return hidden("nb1", check.id.split(".")[1])


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


def project_first_sequence(x, W, b):
    return torch.einsum("pm,hmd->phd", x[0], W) + b       # written for one sequence


def project_merged_by_permute(x, W, b):
    h, m, d = W.shape
    return x @ W.permute(1, 0, 2).reshape(m, h * d) + b.flatten()


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


def scores_on_another_device(q, k):
    return (torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])).to("meta")  # stands for a GPU


def scores_as_list(q, k):
    return (torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])).tolist()


def scores_not_written(q, k):
    raise NotImplementedError()


def scores_matmul_crash(q, k):
    return q @ k


def scores_size_of_heads(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[2])


def scores_power_parenthesised(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / (q.shape[-1] ** 1 / 2)


def scores_heads_dotted_unscaled(q, k):  # two mistakes: heads dotted with heads, and no scale
    return q @ k.transpose(2, 3)


def scores_no_return(q, k):
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])  # noqa: F841


def scores_floor_division(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) // math.sqrt(q.shape[-1])


def scores_heads_summed(q, k):
    return torch.einsum("bqhd,bkhd->bqk", q, k) / math.sqrt(q.shape[-1])


def scores_power_floor(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** (1 // 2)


def scores_floor_scale(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) * (1 // math.sqrt(q.shape[-1]))


# the student's own errors, each explained
def scores_einsum_wrong_count(q, k):
    return torch.einsum("bqd,bkhd->bhqk", q, k)


def scores_einsum_unknown_output(q, k):
    return torch.einsum("bqhd,bkhd->bhqj", q, k)


def scores_mm_flat(q, k):
    return q.flatten(0, 2) @ k.flatten(0, 2)


def scores_bmm(q, k):
    return torch.bmm(q.flatten(0, 1), k.flatten(2))


def scores_view_transposed(q, k):
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    return s.transpose(1, 2).view(q.shape[0], -1)


def scores_reshape_invalid(q, k):
    return (torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])).reshape(2, 3, 5, -1, 7)


def scores_dim_out_of_range(q, k):
    return (torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])).softmax(dim=4)


def scores_too_many_indices(q, k):
    return (torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1]))[0, 0, 0, 0, 0]


def scores_softmax_no_dim(q, k):
    return torch.softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1]))


def scores_renamed(query, key):
    return torch.einsum("bqhd,bkhd->bhqk", query, key) / math.sqrt(query.shape[-1])


def scores_none_scale(q, k):
    scale = None  # to fill in later
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / scale


def scores_float64_identity(q, k):
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    return s @ torch.eye(q.shape[1], dtype=torch.float64)


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


def mask_index_assign(scores):
    scores[..., _upper(scores.shape[-1])] = float("-inf")
    return scores


def mask_clone_only(scores):
    out = scores.clone()
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


def pattern_mask_after_with_inf(q, k):
    return torch.softmax(_scaled(q, k), dim=-1).masked_fill(_upper(q.shape[1]), float("-inf"))


def pattern_softmax_heads_big_negative(q, k):
    return _scaled(q, k).masked_fill(_upper(q.shape[1]), -1e9).softmax(dim=1)


def pattern_softmax_batch_big_negative(q, k):
    return _scaled(q, k).masked_fill(_upper(q.shape[1]), -1e9).softmax(dim=0)


def pattern_floor_division(q, k):
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) // math.sqrt(q.shape[-1])
    return _causal(scores).softmax(-1)


def pattern_heads_averaged(q, k):
    return _causal(_scaled(q, k)).softmax(-1).mean(dim=1)


def pattern_power_floor(q, k):
    d_head = q.shape[-1]
    return _causal(torch.einsum("bqhd,bkhd->bhqk", q, k) / d_head ** (1 // 2)).softmax(-1)


def pattern_floor_scale(q, k):
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * (1 // math.sqrt(q.shape[-1]))
    return _causal(scores).softmax(-1)


def pattern_manual_softmax_floor(q, k):
    e = _causal(_scaled(q, k)).exp()
    return e // e.sum(dim=-1, keepdim=True)


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


def z_values_viewed_head_first(pattern, v):
    b, p, h, d = v.shape
    return (pattern @ v.view(b, h, p, d)).permute(0, 2, 1, 3)


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


def output_summed_over_positions(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bm", z, W_O) + b_O


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


def layer_nan_accumulator(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    pattern = _good_pattern(q, k)
    z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    out = torch.full((x.shape[0], x.shape[1], W_O.shape[-1]), float("nan"))  # "unset" marker, never overwritten
    for h in range(z.shape[2]):
        out += z[:, :, h] @ W_O[h]
    return pattern, z, out + b_O


def layer_v_without_bias(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K)
    v = torch.einsum("bpm,hmd->bphd", x, W_V)                     # b_V forgotten
    pattern = _good_pattern(q, k)
    z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def layer_tril_mask(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    n = x.shape[1]
    scores = _scaled(q, k).masked_fill(torch.tril(torch.ones(n, n, dtype=torch.bool), -1), -1e9)
    pattern = scores.softmax(-1)
    z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def layer_keys_from_query_weights(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_Q, b_Q), _proj(x, W_V, b_V)
    pattern = _good_pattern(q, k)
    z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def layer_output_doubled(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    pattern = _good_pattern(q, k)
    z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) * 2 + b_O


def layer_squeezes_outputs(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    pattern = _good_pattern(q, k)
    z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    out = torch.einsum("bphd,hdm->bpm", z, W_O) + b_O
    return pattern.squeeze(), z.squeeze(), out.squeeze()


def _swapped_layer(first, second):
    """A layer whose call passes two of its parameters the wrong way round."""
    def attention_layer(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
        p = {"W_Q": W_Q, "b_Q": b_Q, "W_K": W_K, "b_K": b_K, "W_V": W_V, "b_V": b_V}
        p[first], p[second] = p[second], p[first]
        q, k, v = (_proj(x, p[f"W_{s}"], p[f"b_{s}"]) for s in "QKV")
        pattern = _good_pattern(q, k)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        return pattern, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O
    return attention_layer


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
    (_layer(pattern_floor_division), "scores floor-divided by sqrt(d_head)", "rounded down to whole numbers"),
    (_layer(_good_pattern, order=(2, 0, 1)), "outputs returned as (out, pattern, z)",
     "(out, pattern, z), judged by their shapes"),
    (layer_nan_accumulator, "out accumulated into a NaN-filled tensor", "out (output 2) of attention_layer contains"),
    (layer_v_without_bias, "v without b_V", "z (output 1) of attention_layer: in v = project(x, W_V, b_V): the bias"),
    (layer_tril_mask, "mask of the past (tril)", "the pattern (output 0) of attention_layer: in the mask: you masked "
     "the past instead of the future"),
    (layer_keys_from_query_weights, "keys projected with W_Q, b_Q", "k was computed with W_Q/b_Q"),
    (layer_output_doubled, "out doubled", "out (output 2) of attention_layer is wrong"),
    (layer_squeezes_outputs, ".squeeze() on every output", "The `batch` axis, of size 1 here, is missing"),
]


# ================================================================ the catalogue
def _m(check, fn, kind, expect):
    return Mistake(check, (fn,), kind, expect, H(check))


MISTAKES = [
    _m(nb1.check_project, project_no_bias, "missing bias", "bias b is missing"),
    _m(nb1.check_project, project_flattened_heads, "heads mixed by reshaping W", "heads are mixed up"),
    _m(nb1.check_project, project_head_first, "output axes [batch, head, pos, d_head]", "wrong order"),
    _m(nb1.check_project, project_stacked_first, "torch.stack along a new first axis", "wrong order"),
    _m(nb1.check_project, project_cat_heads, "torch.cat merges head and d_head", "merged"),
    _m(nb1.check_project, project_matmul_broadcast, "x @ W broadcasts batch against head", "`batch`"),
    _m(nb1.check_project, project_first_head_only, "head 0's weights for every head", "head 0's weights"),
    _m(nb1.check_project, project_renamed_argument, "parameter renamed", "signature"),
    _m(nb1.check_project, project_no_return, "forgot return", "`return`"),
    _m(nb1.check_project, project_bias_summed, "bias summed over heads", "b.sum(0)"),
    _m(nb1.check_project, project_einsum_wrong_letters, "einsum letters for W in the wrong order", "letter m"),
    _m(nb1.check_project, project_first_sequence, "x[0]: one sequence only",
       "your values are the expected ones at index 0 of the `batch` axis"),
    _m(nb1.check_project, project_merged_by_permute, "heads flattened into d_head by permute and reshape",
       "`head` and `d_head` are merged into one axis of size 12"),

    _m(nb1.check_attention_scores, scores_unscaled, "missing 1/sqrt(d_head)", "1/sqrt(d_head)"),
    _m(nb1.check_attention_scores, scores_over_d_head, "divided by d_head", "divided by d_head"),
    _m(nb1.check_attention_scores, scores_times_sqrt, "multiplied by sqrt(d_head)", "instead of dividing"),
    _m(nb1.check_attention_scores, scores_power_precedence, "d ** 1/2 precedence", "d ** 0.5"),
    _m(nb1.check_attention_scores, scores_size_of_pos, "scale from the pos axis", "not q.shape[1]"),
    _m(nb1.check_attention_scores, scores_keys_first, "queries and keys transposed", "transposed"),
    _m(nb1.check_attention_scores, scores_head_letters_differ, "heads mixed in einsum", "heads are mixed up"),
    _m(nb1.check_attention_scores, scores_view_heads, "heads mixed by .view", "scrambles"),
    _m(nb1.check_attention_scores, scores_query_layout, "output axes [batch, q_pos, head, k_pos]", "wrong order"),
    _m(nb1.check_attention_scores, scores_matmul_untransposed, "matmul without moving the head axis",
       "wrong axes"),
    _m(nb1.check_attention_scores, scores_with_softmax, "softmax inside the scores", "softmax comes later"),
    _m(nb1.check_attention_scores, scores_double, "float64 result", "dtype"),
    _m(nb1.check_attention_scores, scores_on_another_device, "result on another device", "on device 'meta'"),
    _m(nb1.check_attention_scores, scores_as_list, "returns a list", "a plain torch.Tensor was expected"),
    _m(nb1.check_attention_scores, scores_not_written, "the stub left as it is", "not written yet"),
    _m(nb1.check_attention_scores, scores_no_return, "forgot return", "returned None: the `return`"),
    _m(nb1.check_attention_scores, scores_size_of_heads, "scale from the head axis", "not q.shape[2] (head)"),
    _m(nb1.check_attention_scores, scores_power_parenthesised, "(d ** 1 / 2) precedence", "(d ** 1) / 2"),
    _m(nb1.check_attention_scores, scores_heads_dotted_unscaled, "heads dotted with heads, and no scale",
       "the shape this mistake gives: the matrix product ran over the wrong axes"),
    _m(nb1.check_attention_scores, scores_floor_division, "floor division by sqrt(d_head)",
       "every value of your result is a whole number (100 of the 294 finite ones are 0)"),
    _m(nb1.check_attention_scores, scores_heads_summed, "einsum without h in the output",
       "your values are the expected ones summed over the `head` axis"),
    _m(nb1.check_attention_scores, scores_power_floor, "d ** (1 // 2), which is 1",
       "d_head ** (1 // 2) is d_head ** 0"),
    _m(nb1.check_attention_scores, scores_floor_scale, "scale 1 // sqrt(d_head), which is 0",
       "every value of your result is a whole number (294 of the 294 finite ones are 0)"),
    # the student's own errors, each explained in one line under the error
    _m(nb1.check_attention_scores, scores_matmul_crash, "q @ k on [batch, pos, head, d_head]",
       "raised RuntimeError: Expected size for first two dimensions of batch2 tensor"),
    _m(nb1.check_attention_scores, scores_einsum_wrong_count, "einsum with 3 letters for a 4-axis q",
       "einsum equation gives operand 0 3 letter(s), but that tensor has 4 axes"),
    _m(nb1.check_attention_scores, scores_einsum_unknown_output, "einsum output letter in no input",
       "output letter j appears in no input"),
    _m(nb1.check_attention_scores, scores_mm_flat, "flattened matrix product of mismatched axes",
       "the last axis of A (here 6) must equal the first axis of B (here 42). Here 6 is `d_head`"),
    _m(nb1.check_attention_scores, scores_bmm, "torch.bmm of mismatched batches",
       "B should have shape [14, 6, ...] to fit A (same batch, and A's last axis against B's second-to-last), "
       "but it has [2, 7, ...]. Here 6 is `d_head`, 2 is `batch`, 7 is `pos`"),
    _m(nb1.check_attention_scores, scores_view_transposed, ".view of a transposed tensor",
       ".view cannot reshape a transposed tensor"),
    _m(nb1.check_attention_scores, scores_reshape_invalid, "reshape to sizes of another product",
       "do not multiply to the tensor's 294 entries"),
    _m(nb1.check_attention_scores, scores_dim_out_of_range, "softmax over axis 4 of 4",
       "You named axis 4 of a tensor with 4 axes"),
    _m(nb1.check_attention_scores, scores_too_many_indices, "five indices into four axes",
       "more axes than the tensor's 4"),
    _m(nb1.check_attention_scores, scores_softmax_no_dim, "torch.softmax without dim", "softmax needs dim="),
    _m(nb1.check_attention_scores, scores_renamed, "parameters renamed (query, key)", "keep the given signature"),
    _m(nb1.check_attention_scores, scores_none_scale, "a scale left None", "Something is None"),
    _m(nb1.check_attention_scores, scores_float64_identity, "a float64 tensor in a matmul", "different dtypes"),

    _m(nb1.check_apply_causal_mask, mask_in_place, "masked_fill_ changes the input", "in place"),
    _m(nb1.check_apply_causal_mask, mask_returns_input, "result of masked_fill thrown away", "nothing is masked"),
    _m(nb1.check_apply_causal_mask, mask_with_diagonal, "diagonal masked too", "masked the diagonal (off by one)"),
    _m(nb1.check_apply_causal_mask, mask_tril, "past masked instead of future", "past instead of the future"),
    _m(nb1.check_apply_causal_mask, mask_lower_with_diagonal, "~triu masks past and diagonal",
       "the past and the diagonal"),
    _m(nb1.check_apply_causal_mask, mask_multiply, "masked scores set to 0", "set to 0"),
    _m(nb1.check_apply_causal_mask, mask_float_mask, "float mask in masked_fill", "boolean"),
    _m(nb1.check_apply_causal_mask, mask_numpy_float64, "numpy mask makes float64", "dtype"),
    _m(nb1.check_apply_causal_mask, mask_wrong_size, "mask sized by the head axis", "`head`"),
    _m(nb1.check_apply_causal_mask, mask_index_assign, "writes -inf into a slice of scores", "in place"),
    _m(nb1.check_apply_causal_mask, mask_clone_only, "returns a copy, nothing masked", "nothing is masked"),

    _m(nb1.check_attention_pattern, pattern_mask_after, "mask after softmax", "after the softmax"),
    _m(nb1.check_attention_pattern, pattern_no_mask, "no causal mask", "no causal mask"),
    _m(nb1.check_attention_pattern, pattern_softmax_queries, "softmax over queries", "wrong axis"),
    _m(nb1.check_attention_pattern, pattern_softmax_no_dim, "softmax over heads (F.softmax's implicit dim)",
       "head axis"),
    _m(nb1.check_attention_pattern, pattern_softmax_batch, "softmax over batch", "batch axis"),
    _m(nb1.check_attention_pattern, pattern_unscaled, "missing 1/sqrt(d_head)", "scale is missing"),
    _m(nb1.check_attention_pattern, pattern_swapped_args, "queries and keys swapped", "transposed"),
    _m(nb1.check_attention_pattern, pattern_diagonal_masked, "diagonal masked: NaN rows",
       "covers the diagonal, so row 0 has nothing left to attend to (NaN"),
    _m(nb1.check_attention_pattern, pattern_log_softmax, "log_softmax", "log_softmax"),
    _m(nb1.check_attention_pattern, pattern_no_softmax, "no softmax", "no softmax"),
    _m(nb1.check_attention_pattern, pattern_transposed, "pattern returned transposed", "transposed"),
    _m(nb1.check_attention_pattern, pattern_mask_after_with_inf, "-inf mask after softmax",
       "after the softmax (future entries are -inf)"),
    _m(nb1.check_attention_pattern, pattern_softmax_heads_big_negative, "softmax over heads, -1e9 mask",
       "over the head axis"),
    _m(nb1.check_attention_pattern, pattern_softmax_batch_big_negative, "softmax over batch, -1e9 mask",
       "over the batch axis"),
    _m(nb1.check_attention_pattern, pattern_floor_division, "scores floor-divided by sqrt(d_head)",
       "rounded down to whole numbers before the softmax"),
    _m(nb1.check_attention_pattern, pattern_heads_averaged, "pattern averaged over heads",
       "your values are the expected ones averaged over the `head` axis"),
    _m(nb1.check_attention_pattern, pattern_power_floor, "d ** (1 // 2), which is 1", "since // is floor division"),
    _m(nb1.check_attention_pattern, pattern_floor_scale, "scale 1 // sqrt(d_head), which is 0",
       "your pattern is uniform"),
    _m(nb1.check_attention_pattern, pattern_manual_softmax_floor, "exp // sum in a hand-written softmax",
       "every value of your result is a whole number"),

    _m(nb1.check_weighted_values, z_pattern_transposed, "pattern used transposed", "transposed"),
    _m(nb1.check_weighted_values, z_heads_summed, "values summed over heads", "heads are mixed up"),
    _m(nb1.check_weighted_values, z_head_layout, "z left as [batch, head, pos, d_head]", "wrong order"),
    _m(nb1.check_weighted_values, z_matmul_untransposed, "pattern @ v without moving v's head axis", "`head`"),
    _m(nb1.check_weighted_values, z_query_letter, "v indexed by the query", "z equals v"),
    _m(nb1.check_weighted_values, z_mean_over_keys, "mean over keys instead of sum", "mean where a sum"),
    _m(nb1.check_weighted_values, z_transpose_in_place, "transpose_ changes v", "in place"),
    _m(nb1.check_weighted_values, z_view_back, ".view instead of transpose back", "heads are mixed up"),
    _m(nb1.check_weighted_values, z_values_viewed_head_first, "v viewed as [batch, head, pos, d_head]",
       "needs .transpose, not .view/.reshape"),

    _m(nb1.check_attention_output, output_no_bias, "missing b_O", "b_O is missing"),
    _m(nb1.check_attention_output, output_bias_per_head, "b_O added per head", "once per head"),
    _m(nb1.check_attention_output, output_not_summed, "heads not summed", "extra axis of size 3"),
    _m(nb1.check_attention_output, output_mean_heads, "mean over heads", "averaged"),
    _m(nb1.check_attention_output, output_sum_first, "z and W_O summed over heads first", "heads are mixed up"),
    _m(nb1.check_attention_output, output_flatten_mismatch, "z and W_O flattened in different orders",
       "same order"),
    _m(nb1.check_attention_output, output_cat_heads, "heads concatenated instead of summed", "concatenated"),
    _m(nb1.check_attention_output, output_summed_over_positions, "einsum without p in the output",
       "the `pos` axis (size 5) is missing, removed by a sum, mean or max over it"),
    _m(nb1.check_attention_output, output_squeeze, ".squeeze() without dim", "squeeze"),

    *[_m(nb1.check_attention_layer, fn, kind, expect) for fn, kind, expect in _COMPOSITE_MISTAKES],

    _m(nb1.check_against_transformer_lens, _layer(pattern_unscaled), "missing 1/sqrt(d_head)", "scale is missing"),
    _m(nb1.check_against_transformer_lens, _layer(pattern_no_mask), "no causal mask", "no causal mask"),
    _m(nb1.check_against_transformer_lens, _layer(pattern_softmax_no_dim), "softmax over heads", "head axis"),
    _m(nb1.check_against_transformer_lens, _layer(_good_pattern, v_weights="Q"), "values projected with W_Q",
       "v was computed with W_Q"),
    _m(nb1.check_against_transformer_lens, _layer(_good_pattern, out_fn=output_not_summed), "heads not summed",
       "extra axis"),
    _m(nb1.check_against_transformer_lens, layer_scale_d_model, "scaled by sqrt(d_model)", "sqrt(d_model)"),
    _m(nb1.check_against_transformer_lens, _layer(_good_pattern, out_fn=output_mean_heads), "mean over heads",
       "out (output 2) of attention_layer: you averaged over heads"),
    _m(nb1.check_against_transformer_lens, _layer(_good_pattern, out_fn=output_no_bias), "output without b_O",
       "b_O is missing"),
    _m(nb1.check_against_transformer_lens, _swapped_layer("W_Q", "W_K"), "W_Q and W_K swapped",
       "W_Q and W_K are swapped"),
    _m(nb1.check_against_transformer_lens, _swapped_layer("W_Q", "W_V"), "W_Q and W_V swapped",
       "q was computed with the weights W_V: use W_Q"),
    _m(nb1.check_against_transformer_lens, _swapped_layer("W_K", "W_V"), "W_K and W_V swapped",
       "k was computed with W_V/b_V"),
    # the keys' bias adds the same amount to a query's every score, which the softmax ignores: only q shows
    _m(nb1.check_against_transformer_lens, _swapped_layer("b_Q", "b_K"), "b_Q and b_K swapped",
       "q was computed with the bias b_K: use b_Q"),
    _m(nb1.check_against_transformer_lens, _swapped_layer("b_Q", "b_V"), "b_Q and b_V swapped",
       "q was computed with the bias b_V: use b_Q"),
    _m(nb1.check_against_transformer_lens, _swapped_layer("b_K", "b_V"), "b_K and b_V swapped",
       "v was computed with the bias b_K: use b_V"),
    _m(nb1.check_against_transformer_lens, torch.zeros(3), "a tensor passed instead of the function",
       "should be a function"),
]


def _c(check, fn, kind):
    return Correct(check, (fn,), kind, H(check))


CORRECT = [
    _c(nb1.check_project, project_loop, "loop over heads, torch.stack(dim=2)"),
    _c(nb1.check_project, project_broadcast_matmul, "broadcast matmul and squeeze(-2)"),
    _c(nb1.check_project, project_float64_inside, "float64 inside, cast back"),
    _c(nb1.check_attention_scores, scores_transposes, "matmul with transposes"),
    _c(nb1.check_attention_scores, scores_other_letters, "other einsum letters, ** -0.5"),
    _c(nb1.check_attention_scores, scores_numpy_scale, "numpy sqrt as a 0-dim tensor"),
    _c(nb1.check_apply_causal_mask, mask_min_float, "finfo.min"),
    _c(nb1.check_apply_causal_mask, mask_where, "torch.where with -1e9"),
    _c(nb1.check_apply_causal_mask, mask_add_inf, "adding a -inf upper triangle"),
    _c(nb1.check_apply_causal_mask, mask_clone_then_in_place, "clone, then write into a slice"),
    _c(nb1.check_attention_pattern, pattern_manual_softmax, "exp / sum with the max subtracted"),
    _c(nb1.check_attention_pattern, pattern_float64, "softmax in float64, cast back"),
    _c(nb1.check_attention_pattern, pattern_sdpa, "scaled_dot_product_attention on one-hot values"),
    _c(nb1.check_weighted_values, z_matmul, "matmul with transposes"),
    _c(nb1.check_weighted_values, z_loop, "loop over heads into zeros_like"),
    _c(nb1.check_attention_output, output_flattened, "flatten heads into one matmul"),
    _c(nb1.check_attention_output, output_loop, "loop over heads, in-place sum on a new tensor"),
    _c(nb1.check_attention_layer, layer_keyword_sdpa, "scaled_dot_product_attention for z"),
    _c(nb1.check_attention_layer, layer_big_negative_mask, "-1e9 mask, matmul, flattened W_O"),
    _c(nb1.check_against_transformer_lens, layer_keyword_sdpa, "scaled_dot_product_attention for z"),
    _c(nb1.check_against_transformer_lens, layer_big_negative_mask, "-1e9 mask, matmul, flattened W_O"),
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


# ================================================================ 1.8 reading a causal pattern (multiple choice)
def _answers(first_row, longer_rows):
    return ({"first_row": first_row, "longer_rows": longer_rows},)


MISTAKES += [
    Mistake(nb1.check_pattern_answers, _answers("a", "c"), "row 0 from the match",
            "nothing about the match makes row 0 special"),
    Mistake(nb1.check_pattern_answers, _answers("c", "c"), "row 0 from a copied diagonal",
            "does not copy the diagonal"),
    Mistake(nb1.check_pattern_answers, _answers("d", "c"), "row 0 from the scale", "cannot single out one key"),
    Mistake(nb1.check_pattern_answers, _answers("b", "a"), "the untrained model knows tokens",
            "nothing in it knows which tokens matter"),
    Mistake(nb1.check_pattern_answers, _answers("b", "b"), "later rows lose more keys", "later rows lose fewer keys"),
    Mistake(nb1.check_pattern_answers, _answers("b", "d"), "the scale changes a row's sum", "not how much it sums to"),
    Mistake(nb1.check_pattern_answers, _answers("b", "e"), "a letter that is no choice", "choose one of"),
    Mistake(nb1.check_pattern_answers, ({"first_row": "b"},), "one answer missing", "must be a dict"),
    Mistake(nb1.check_pattern_answers, ("bc",), "a string, not a dict", "must be a dict"),
]
CORRECT += [
    Correct(nb1.check_pattern_answers, _answers("B", " c"), "right letters in upper case and with a space"),
]


# ================================================================ more mistakes, by symptom class (helper mist1)
_NOTEBOOK_D_HEAD = 8                                        # the notebook model's d_head
_NOTEBOOK_WEIGHTS = torch.Generator().manual_seed(321)
_NOTEBOOK_B_Q = torch.randn(4, 8, generator=_NOTEBOOK_WEIGHTS)          # the notebook's attn.b_Q
_NOTEBOOK_W_O = torch.randn(4, 8, 32, generator=_NOTEBOOK_WEIGHTS)      # the notebook's attn.W_O
_NOTEBOOK_B_O = torch.zeros(32)                                         # the notebook's attn.b_O


def _future_of(scores):
    n = scores.shape[-1]
    return torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device), diagonal=1)


def project_unsqueeze_in_place(x, W, b):
    x.unsqueeze_(2)                                  # [batch, pos, 1, d_model]
    return (x.unsqueeze(-1) * W).sum(-2) + b


def project_centres_x_in_place(x, W, b):
    x -= x.mean(dim=-1, keepdim=True)
    return torch.einsum("bpm,hmd->bphd", x, W) + b


def project_bfloat16(x, W, b):
    return (torch.einsum("bpm,hmd->bphd", x.bfloat16(), W.bfloat16()) + b.bfloat16()).float()


def project_float64_kept(x, W, b):
    return torch.einsum("bpm,hmd->bphd", x.double(), W.double()) + b.double()


def project_bias_of_head_0(x, W, b):
    return torch.einsum("bpm,hmd->bphd", x, W) + b[0]


def project_notebook_bias(x, W, b):
    return torch.einsum("bpm,hmd->bphd", x, W) + _NOTEBOOK_B_Q


def project_heads_summed(x, W, b):
    return torch.einsum("bpm,hmd->bpd", x, W)[:, :, None, :] + b


def scores_scaled_twice(q, k):
    d = q.shape[-1]
    return torch.einsum("bqhd,bkhd->bhqk", q / math.sqrt(d), k) / math.sqrt(d)


def scores_notebook_d_head(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(_NOTEBOOK_D_HEAD)


def scores_scale_q_in_place(q, k):
    q /= math.sqrt(q.shape[-1])
    return torch.einsum("bqhd,bkhd->bhqk", q, k)


def scores_half(q, k):
    return (torch.einsum("bqhd,bkhd->bhqk", q.half(), k.half()) / math.sqrt(q.shape[-1])).float()


def mask_diagonal_2(scores):
    n = scores.shape[-1]
    return scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=2), float("-inf"))


def mask_plus_inf(scores):
    return scores.masked_fill(_future_of(scores), float("inf"))


def mask_times_inf(scores):
    n = scores.shape[-1]
    return scores + torch.triu(torch.ones(n, n), diagonal=1) * float("-inf")


def mask_small_negative(scores):
    return scores.masked_fill(_future_of(scores), -100.0)


def mask_only(scores):
    return torch.zeros_like(scores).masked_fill(_future_of(scores), float("-inf"))


def mask_half(scores):
    return scores.half().masked_fill(_future_of(scores), float("-inf")).float()


def pattern_scaled_twice(q, k):
    return _causal(_scaled(q, k) / math.sqrt(q.shape[-1])).softmax(-1)


def pattern_mask_zero(q, k):
    scores = _scaled(q, k)
    return scores.masked_fill(_future_of(scores), 0.0).softmax(-1)


def pattern_diagonal_masked_row_0_kept(q, k):
    scores = _scaled(q, k)
    n = scores.shape[-1]
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=0)
    mask[0, 0] = False                               # "fixes" the NaN of row 0
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def pattern_half(q, k):
    return _causal(_scaled(q, k)).half().softmax(-1).float()


def pattern_sum_without_keepdim(q, k):
    e = _causal(_scaled(q, k)).exp()
    return e / e.sum(-1)


def z_batch_0_for_all(pattern, v):
    return torch.stack([torch.einsum("hqk,khd->qhd", pattern[0], v[0]) for _ in range(pattern.shape[0])])


def z_summed_over_batch(pattern, v):
    return torch.einsum("bhqk,bkhd->qhd", pattern, v)[None]


def z_unsqueeze_in_place(pattern, v):
    pattern.unsqueeze_(-1)
    return (pattern * v.permute(0, 2, 1, 3).unsqueeze(2)).sum(3).permute(0, 2, 1, 3)


def z_numpy(pattern, v):
    return np.einsum("bhqk,bkhd->bqhd", pattern.numpy(), v.numpy())


def z_bfloat16(pattern, v):
    return torch.einsum("bhqk,bkhd->bqhd", pattern.bfloat16(), v.bfloat16()).to(v.dtype)


def output_z_flattened_transposed(z, W_O, b_O):
    b, p, h, d = z.shape
    return z.transpose(2, 3).reshape(b, p, h * d) @ W_O.reshape(h * d, -1) + b_O


def output_notebook_bias(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bpm", z, W_O) + _NOTEBOOK_B_O


def output_first_sequence(z, W_O, b_O):
    return torch.einsum("phd,hdm->pm", z[0], W_O) + b_O


def output_bfloat16(z, W_O, b_O):
    return (torch.einsum("bphd,hdm->bpm", z.bfloat16(), W_O.bfloat16()) + b_O.bfloat16()).float()


def layer_notebook_W_O(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    return _layer(_good_pattern)(x, W_Q, b_Q, W_K, b_K, W_V, b_V, _NOTEBOOK_W_O, _NOTEBOOK_B_O)


def layer_layer_norm_again(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    x = F.layer_norm(x, x.shape[-1:])
    return _layer(_good_pattern)(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)


def layer_adds_residual(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    pattern, z, out = _layer(_good_pattern)(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
    out += x                                         # "add to the residual stream"
    return pattern, z, out


def layer_returns_scores(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = _proj(x, W_Q, b_Q), _proj(x, W_K, b_K), _proj(x, W_V, b_V)
    scores = _causal(_scaled(q, k))
    z = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)
    return scores, z, torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def layer_z_head_first(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    pattern, z, out = _layer(_good_pattern)(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
    return pattern, z.transpose(1, 2), out


def layer_half(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    halves = [t.half() for t in (x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)]
    return tuple(t.float() for t in _layer(_good_pattern)(*halves))


def _s(check, fn, kind, expect, symptom):
    return Mistake(check, (fn,), kind, expect, H(check), symptom=symptom)


MISTAKES += [
    _s(nb1.check_project, project_unsqueeze_in_place, "x.unsqueeze_ to add a head axis",
       "changed its input `x` in place", "in place/alias"),
    _s(nb1.check_project, project_centres_x_in_place, "x -= its mean", "changed its input `x` in place",
       "in place/alias"),
    _s(nb1.check_project, project_bfloat16, "bfloat16 inside, cast back", "bfloat16", "float16"),
    _s(nb1.check_project, project_float64_kept, "float64 result", "dtype torch.float64", "float16"),
    _s(nb1.check_project, project_bias_of_head_0, "b[0] added to every head", "head 0's bias b[0]", "other"),
    _s(nb1.check_project, project_notebook_bias, "the notebook's attn.b_Q in place of b",
       "No axis of the inputs has size 8. A guess: a tensor that is not one of the arguments", "global"),
    _s(nb1.check_project, project_heads_summed, "h missing from the einsum output, broadcast back",
       "every head holds the sum over heads", "transpose/einsum"),
    _s(nb1.check_attention_scores, scores_scaled_twice, "q and the scores both divided by sqrt(d_head)",
       "you divided by d_head", "scale"),
    _s(nb1.check_attention_scores, scores_notebook_d_head, "the notebook model's d_head (8)",
       "divided by sqrt(8), but this q's d_head is 6", "global"),
    _s(nb1.check_attention_scores, scores_scale_q_in_place, "q /= sqrt(d_head)", "changed its input `q` in place",
       "in place/alias"),
    _s(nb1.check_attention_scores, scores_half, "float16 inside, cast back", "float16", "float16"),
    _s(nb1.check_apply_causal_mask, mask_diagonal_2, "triu(diagonal=2): key i + 1 left visible",
       "hides the keys j >= i + 2", "off by one"),
    _s(nb1.check_apply_causal_mask, mask_plus_inf, "+inf instead of -inf", "the masked scores are +inf", "mask value"),
    _s(nb1.check_apply_causal_mask, mask_times_inf, "0/1 mask times -inf (NaN)", "0 * inf is NaN", "mask value"),
    _s(nb1.check_apply_causal_mask, mask_small_negative, "-100 as the mask value", "set to -100", "mask value"),
    _s(nb1.check_apply_causal_mask, mask_only, "the additive mask returned without the scores",
       "the scores are missing from it", "other"),
    _s(nb1.check_apply_causal_mask, mask_half, "float16 inside, cast back", "float16", "float16"),
    _s(nb1.check_attention_pattern, pattern_scaled_twice, "scores divided by sqrt(d_head) again",
       "divided by sqrt(d_head) a second time", "scale"),
    _s(nb1.check_attention_pattern, pattern_mask_zero, "masked scores set to 0", "gives weight to later keys",
       "mask value"),
    _s(nb1.check_attention_pattern, pattern_diagonal_masked_row_0_kept, "diagonal masked, row 0 patched",
       "0 on the diagonal", "off by one"),
    _s(nb1.check_attention_pattern, pattern_half, "softmax in float16, cast back", "float16", "float16"),
    _s(nb1.check_attention_pattern, pattern_sum_without_keepdim, "e / e.sum(-1) without keepdim",
       "have axes that do not line up", "transpose/einsum"),
    _s(nb1.check_weighted_values, z_batch_0_for_all, "batch entry 0 for every entry",
       "every batch entry holds the expected result of batch entry 0", "batch axis"),
    _s(nb1.check_weighted_values, z_summed_over_batch, "einsum without b in the output", "Axis `batch` has 1",
       "batch axis"),
    _s(nb1.check_weighted_values, z_unsqueeze_in_place, "pattern.unsqueeze_", "changed its input `pattern` in place",
       "in place/alias"),
    _s(nb1.check_weighted_values, z_numpy, "NumPy result", "NumPy array", "numpy/device"),
    _s(nb1.check_weighted_values, z_bfloat16, "bfloat16 inside, cast back", "bfloat16", "float16"),
    _s(nb1.check_attention_output, output_z_flattened_transposed, "z flattened as [d_head, head]",
       "z was flattened as [d_head, head]", "transpose/einsum"),
    _s(nb1.check_attention_output, output_notebook_bias, "the notebook's attn.b_O in place of b_O",
       "No axis of the inputs has size 32", "global"),
    _s(nb1.check_attention_output, output_first_sequence, "z[0]: one sequence only",
       "the expected ones at index 0 of the `batch` axis", "batch axis"),
    _s(nb1.check_attention_output, output_bfloat16, "bfloat16 inside, cast back", "bfloat16", "float16"),
    _s(nb1.check_attention_layer, layer_notebook_W_O, "the notebook's attn.W_O, attn.b_O",
       "No axis of the inputs has size 8", "global"),
    _s(nb1.check_attention_layer, layer_layer_norm_again, "LayerNorm applied to x again", "a LayerNorm applied again",
       "other"),
    _s(nb1.check_attention_layer, layer_adds_residual, "out += x", "out is the attention output plus x", "other"),
    _s(nb1.check_attention_layer, layer_returns_scores, "masked scores returned as the pattern", "no softmax",
       "other"),
    _s(nb1.check_attention_layer, layer_z_head_first, "z returned as [batch, head, pos, d_head]", "wrong order",
       "transpose/einsum"),
    _s(nb1.check_attention_layer, layer_half, "float16 throughout, cast back", "float16", "float16"),
    _s(nb1.check_against_transformer_lens, layer_adds_residual, "out += x", "out is the attention output plus x",
       "other"),
    _s(nb1.check_against_transformer_lens, layer_half, "float16 throughout, cast back", "float16", "float16"),
]


def project_tensordot(x, W, b):
    return torch.tensordot(x, W, dims=([2], [1])) + b


def scores_loops(q, k):
    batch, pos, heads, d_head = q.shape
    out = torch.empty(batch, heads, pos, k.shape[1], dtype=q.dtype, device=q.device)
    for b in range(batch):
        for h in range(heads):
            out[b, h] = q[b, :, h] @ k[b, :, h].T / math.sqrt(d_head)
    return out


def scores_both_scaled(q, k):
    s = q.shape[-1] ** 0.25
    return torch.einsum("bqhd,bkhd->bhqk", q / s, k / s)


def mask_not_tril(scores):
    n = scores.shape[-1]
    return scores.masked_fill(~torch.tril(torch.ones(n, n, dtype=torch.bool, device=scores.device)), float("-inf"))


def mask_arange(scores):
    i = torch.arange(scores.shape[-2], device=scores.device)[:, None]
    j = torch.arange(scores.shape[-1], device=scores.device)[None, :]
    return scores.masked_fill(j > i, float("-inf"))


def mask_row_loop(scores):
    out = scores.clone()
    for i in range(scores.shape[-2]):
        out[..., i, i + 1:] = float("-inf")
    return out


def mask_where_inf_tensor(scores):
    return torch.where(_future_of(scores), torch.tensor(float("-inf"), dtype=scores.dtype), scores)


def pattern_exp_without_max(q, k):
    e = _causal(_scaled(q, k)).exp()
    return e / e.sum(dim=-1, keepdim=True)


def pattern_F_softmax_dim_3(q, k):
    return F.softmax(_causal(_scaled(q, k)), dim=3)


def z_broadcast_sum(pattern, v):
    return (pattern.permute(0, 2, 1, 3)[..., None] * v.permute(0, 2, 1, 3)[:, None]).sum(-2)


def z_loop_over_keys(pattern, v):
    z = torch.zeros_like(v)
    for j in range(v.shape[1]):
        z = z + pattern[:, :, :, j].transpose(1, 2)[..., None] * v[:, j][:, None]
    return z


def output_per_head_then_sum(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bphm", z, W_O).sum(dim=2) + b_O


def output_bias_first(z, W_O, b_O):
    out = b_O.expand(*z.shape[:2], -1).clone()
    for h in range(z.shape[2]):
        out += z[:, :, h] @ W_O[h]
    return out


def layer_inline_head_first(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = (torch.einsum("bpm,hmd->bhpd", x, W) + b[:, None] for W, b in ((W_Q, b_Q), (W_K, b_K), (W_V, b_V)))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    pattern = torch.softmax(_causal(scores), dim=-1)
    z = (pattern @ v).transpose(1, 2)
    return pattern, z, z.reshape(*z.shape[:2], -1) @ W_O.reshape(-1, W_O.shape[-1]) + b_O


def layer_returns_list(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    return list(_layer(_good_pattern)(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O))


CORRECT += [
    _c(nb1.check_project, project_tensordot, "torch.tensordot over d_model"),
    _c(nb1.check_attention_scores, scores_loops, "loops over batch and head"),
    _c(nb1.check_attention_scores, scores_both_scaled, "q and k each divided by d_head ** 0.25"),
    _c(nb1.check_apply_causal_mask, mask_not_tril, "~tril"),
    _c(nb1.check_apply_causal_mask, mask_arange, "j > i from two aranges"),
    _c(nb1.check_apply_causal_mask, mask_row_loop, "clone, then a loop over rows"),
    _c(nb1.check_apply_causal_mask, mask_where_inf_tensor, "torch.where with a -inf tensor"),
    _c(nb1.check_attention_pattern, pattern_exp_without_max, "exp / sum without the max subtracted"),
    _c(nb1.check_attention_pattern, pattern_F_softmax_dim_3, "F.softmax(dim=3)"),
    _c(nb1.check_weighted_values, z_broadcast_sum, "broadcast product, sum over keys"),
    _c(nb1.check_weighted_values, z_loop_over_keys, "loop over keys"),
    _c(nb1.check_attention_output, output_per_head_then_sum, "per-head einsum, then .sum(dim=2)"),
    _c(nb1.check_attention_output, output_bias_first, "b_O expanded and cloned, heads added in place"),
    _c(nb1.check_attention_layer, layer_inline_head_first, "all inline, head-first layout"),
    _c(nb1.check_attention_layer, layer_returns_list, "returns a list"),
    _c(nb1.check_against_transformer_lens, layer_inline_head_first, "all inline, head-first layout"),
]
