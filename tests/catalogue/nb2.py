"""Notebook 2 (the previous-token head): mistakes students make, and correct alternatives.

Every entry is written the way a student would write it, without looking at the checks' ``Bug``s.
The answers about the trained model (``found``, ``detect_scores``) are computed from the shipped
checkpoint, as the student's notebook computes them, so a retrained model changes nothing here.
"""
from __future__ import annotations

import math

import numpy

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from transformer_lens.head_detector import detect_head  # noqa: E402

from catalogue import Correct, Mistake, hidden  # noqa: E402
from induction_course import heads  # noqa: E402
from induction_course.checks import nb2  # noqa: E402
from induction_course.data import BOS, random_tokens  # noqa: E402
from induction_course.plotting import attention_heatmap, token_labels  # noqa: E402
from induction_course.tokenizer import tokens_to_text  # noqa: E402



def H(check):  # noqa: N802  (the master's hidden parameters of nb2.<check>, never copied here)
    return hidden("nb2", check.id.split(".")[1])


# ---------------------------------------------------------------- 2.1 previous-token score
def prev_next_key(pattern):
    n = pattern.shape[-1]
    return torch.stack([pattern[:, :, i, i + 1] for i in range(n - 1)], dim=-1).mean(dim=(0, 2))


def prev_main_diagonal(pattern):
    return torch.einsum("bhii->bhi", pattern).mean(dim=(0, 2))


def prev_divides_by_n(pattern):
    n = pattern.shape[-1]
    total = sum(pattern[:, :, i, i - 1] for i in range(1, n))
    return total.mean(dim=0) / n


def prev_loop_from_zero(pattern):
    # i = 0 reads pattern[..., 0, -1], the last key, which the mask set to 0
    return torch.stack([pattern[:, :, i, i - 1] for i in range(pattern.shape[-1])], dim=-1).mean(dim=(0, 2))


def prev_sums_batch(pattern):
    return torch.diagonal(pattern, -1, 2, 3).mean(dim=2).sum(dim=0)


def prev_sums_queries(pattern):
    return torch.diagonal(pattern, -1, -2, -1).sum(dim=-1).mean(dim=0)


def prev_means_heads(pattern):
    return torch.diagonal(pattern, -1, 2, 3).mean(dim=(1, 2))


def prev_default_diagonal_axes(pattern):
    return pattern.diagonal(-1).mean(dim=(0, -1))


def prev_squeezes(pattern):
    stripe = pattern.diagonal(offset=-1, dim1=2, dim2=3).squeeze()
    return stripe.mean(dim=0).mean(dim=-1)


def prev_in_place(pattern):
    n = pattern.shape[-1]
    pattern *= torch.diag(torch.ones(n - 1), diagonal=-1)
    return pattern.sum(dim=(-2, -1)).mean(dim=0) / (n - 1)


def prev_float64(pattern):
    return pattern.double().diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def prev_as_list(pattern):
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1)).tolist()


def prev_two_back(pattern):
    return pattern.diagonal(offset=-2, dim1=-2, dim2=-1).mean(dim=(0, -1))


def prev_index_past_end(pattern):
    n = pattern.shape[-1]
    return torch.stack([pattern[:, :, i, i - 1] for i in range(1, n + 1)], dim=-1).mean(dim=(0, 2))


def prev_loop_ok(pattern):
    n = pattern.shape[-1]
    return sum(pattern[:, :, i, i - 1] for i in range(1, n)).mean(dim=0) / (n - 1)


def prev_swapped_dims_ok(pattern):
    return torch.diagonal(pattern, offset=1, dim1=-1, dim2=-2).mean(dim=(0, -1))


def prev_mask_ok(pattern):
    n = pattern.shape[-1]
    mask = torch.diag(torch.ones(n - 1), diagonal=-1)
    return (pattern * mask).sum(dim=(-2, -1)).mean(dim=0) / (n - 1)


def prev_float64_cast_back_ok(pattern):
    return pattern.double()[..., 1:, :-1].diagonal(dim1=-2, dim2=-1).mean(dim=(0, -1)).to(pattern.dtype)


# ---------------------------------------------------------------- 2.2 current-token score
def cur_skips_query_zero(pattern):
    return torch.diagonal(pattern, 0, 2, 3)[:, :, 1:].mean(dim=(0, 2))


def cur_divides_by_n_minus_1(pattern):
    n = pattern.shape[-1]
    return torch.einsum("bhii->bh", pattern).mean(dim=0) / (n - 1)


def cur_previous_stripe(pattern):
    return torch.diagonal(pattern, -1, 2, 3).mean(dim=(0, 2))


def cur_sums_positions(pattern):
    return torch.diagonal(pattern, 0, 2, 3).sum(dim=2).mean(dim=0)


def cur_default_diagonal_axes(pattern):
    return pattern.diagonal().mean(dim=(0, -1))


def cur_means_heads(pattern):
    return torch.diagonal(pattern, dim1=-2, dim2=-1).mean(dim=(1, -1))


def cur_sums_batch(pattern):
    return pattern.diagonal(dim1=-2, dim2=-1).mean(dim=-1).sum(dim=0)


def cur_einsum_ok(pattern):
    b, _, n, _ = pattern.shape
    return torch.einsum("bhii->h", pattern) / (b * n)


def cur_eye_mask_ok(pattern):
    n = pattern.shape[-1]
    return (pattern * torch.eye(n)).sum(dim=-1).mean(dim=(0, -1))


# ---------------------------------------------------------------- 2.3 first-token score
def first_includes_query_zero(pattern):
    return pattern[:, :, :, 0].mean(dim=(0, 2))


def first_row_zero(pattern):
    return pattern[:, :, 0, 1:].mean(dim=(0, 2))


def first_last_column(pattern):
    return pattern[:, :, 1:, -1].mean(dim=(0, 2))


def first_divides_by_n(pattern):
    n = pattern.shape[-1]
    return pattern[:, :, 1:, 0].sum(dim=-1).mean(dim=0) / n


def first_slices_heads(pattern):
    return pattern[:, 1:, 0].mean(dim=(0, -1))


def first_sums_batch(pattern):
    return pattern[..., 1:, 0].mean(dim=-1).sum(dim=0)


def first_means_heads(pattern):
    return pattern[..., 1:, 0].mean(dim=(1, 2))


def first_select_ok(pattern):
    return pattern.select(-1, 0).narrow(-1, 1, pattern.shape[-2] - 1).mean(dim=(0, -1))


def first_sum_ok(pattern):
    n = pattern.shape[-1]
    return pattern[:, :, 1:, 0].sum(dim=(0, 2)) / (pattern.shape[0] * (n - 1))


# ---------------------------------------------------------------- 2.6 every head of a model
def _cache(model, tokens):
    with torch.no_grad():
        return model.run_with_cache(tokens)[1]


def all_layer_zero(model, tokens, score_fn):
    cache = _cache(model, tokens)
    return torch.stack([score_fn(cache["pattern", 0]) for _ in range(model.cfg.n_layers)])


def all_first_sequence(model, tokens, score_fn):
    cache = _cache(model, tokens[0])
    return torch.stack([score_fn(cache["pattern", l]) for l in range(model.cfg.n_layers)])


def all_stack_dim1(model, tokens, score_fn):
    cache = _cache(model, tokens)
    return torch.stack([score_fn(cache["pattern", l]) for l in range(model.cfg.n_layers)], dim=1)


def all_cat(model, tokens, score_fn):
    cache = _cache(model, tokens)
    return torch.cat([score_fn(cache["pattern", l]) for l in range(model.cfg.n_layers)])


def all_loops_over_heads(model, tokens, score_fn):
    cache = _cache(model, tokens)
    return torch.stack([score_fn(cache["pattern", l]) for l in range(model.cfg.n_heads)])


def all_skips_layer_zero(model, tokens, score_fn):
    cache = _cache(model, tokens)
    return torch.stack([score_fn(cache["pattern", l]) for l in range(1, model.cfg.n_layers)])


def all_torch_tensor(model, tokens, score_fn):
    cache = _cache(model, tokens)
    return torch.tensor([score_fn(cache["pattern", l]) for l in range(model.cfg.n_layers)])


def all_returns_list(model, tokens, score_fn):
    cache = _cache(model, tokens)
    return [score_fn(cache["pattern", l]) for l in range(model.cfg.n_layers)]


def all_reversed(model, tokens, score_fn):
    cache = _cache(model, tokens)
    return torch.stack([score_fn(cache["pattern", l]) for l in reversed(range(model.cfg.n_layers))])


def all_hook_names_ok(model, tokens, score_fn):
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    return torch.stack([score_fn(cache[f"blocks.{l}.attn.hook_pattern"]) for l in range(model.cfg.n_layers)])


def all_fill_ok(model, tokens, score_fn):
    cache = _cache(model, tokens)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=tokens.device)
    for l in range(model.cfg.n_layers):
        out[l] = score_fn(cache["pattern", l])
    return out


# ---------------------------------------------------------------- 2.7 the head in the trained model
MODEL = nb2.course_model()
TOKENS = torch.cat([torch.full((16, 1), BOS), random_tokens(16, 23, MODEL.cfg.d_vocab, seed=0)], dim=1)
with torch.no_grad():
    _CACHE = MODEL.run_with_cache(TOKENS)[1]
SCORES = {name: torch.stack([getattr(heads, f"{name}_token_score")(_CACHE["pattern", l])
                             for l in range(MODEL.cfg.n_layers)]) for name in ("previous", "current", "first")}
PREV = SCORES["previous"]
FOUND = tuple(int(i) for i in torch.unravel_index(PREV.argmax(), PREV.shape))
DETECT = detect_head(MODEL, tokens_to_text(TOKENS), "previous_token_head")


def factor_ok(seq_len):
    return (seq_len - 1) / seq_len


def _argmax_head(scores):
    return tuple(int(i) for i in torch.unravel_index(scores.argmax(), scores.shape))


def head_mistake(kind, found=FOUND, detect_scores=DETECT, detect_factor=factor_ok, expect=None):
    return Mistake(nb2.check_previous_token_head, (found, detect_scores, detect_factor, TOKENS), kind, expect)


# ---------------------------------------------------------------- 2.8 a picture of one head
def plot_transposed(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", layer][0, head].T, token_labels(tokens[0]))


def plot_layer_as_head(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", layer][0, layer])


def plot_last_sequence(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", layer][-1, head])


def plot_returns_nothing(cache, layer, head, tokens):
    attention_heatmap(cache["pattern", layer][0, head], token_labels(tokens[0]))
    plt.show()


def plot_line(cache, layer, head, tokens):
    _, ax = plt.subplots()
    ax.plot(cache["pattern", layer][0, head].diagonal(-1).cpu())
    return ax


def plot_batch_mean(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", layer][:, head].mean(dim=0))


def plot_head_mean(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", layer][0].mean(dim=0))


def plot_swapped_indices(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", head][0, layer])


def plot_returns_figure(cache, layer, head, tokens):
    fig, ax = plt.subplots()
    attention_heatmap(cache["pattern", layer][0, head], ax=ax)
    return fig


def plot_imshow_ok(cache, layer, head, tokens):
    plt.figure()
    plt.imshow(cache["pattern", layer][0, head].cpu(), cmap="Blues")
    return plt.gca()


def plot_own_axes_ok(cache, layer, head, tokens):
    _, ax = plt.subplots(figsize=(4, 4))
    attention_heatmap(cache[f"blocks.{layer}.attn.hook_pattern"][0][head], token_labels(tokens[0]), ax=ax)
    return ax


# ---------------------------------------------------------------- 2.4 the QK circuit by hand
def _qk(layout, query_shift=-1, c=None, key_shift=0):
    """A student's usual plan: one-hot positions, W_K = identity, W_Q = c times a shifted identity."""
    n = layout.n_ctx
    c = math.sqrt(layout.d_head) * math.log(100 * n) if c is None else c
    W_pos = torch.zeros(n, layout.d_model)
    W_pos[:, layout.pos] = torch.eye(n)
    W_Q = torch.zeros(layout.d_model, layout.d_head)
    W_K = torch.zeros(layout.d_model, layout.d_head)
    for i in range(n):
        if 0 <= i + query_shift < n:
            W_Q[layout.pos.start + i, i + query_shift] = c
        if 0 <= i + key_shift < n:
            W_K[layout.pos.start + i, i + key_shift] = 1.0
    return W_pos, W_Q, W_K


def qk_attends_to_itself(layout):
    return _qk(layout, query_shift=0)


def qk_next_position(layout):
    n = layout.n_ctx
    W_pos, _, W_K = _qk(layout)
    W_Q = torch.zeros(layout.d_model, layout.d_head)
    W_Q[layout.pos, :n] = 50 * torch.diag(torch.ones(n - 1), diagonal=1)
    return W_pos, W_Q, W_K


def qk_too_soft(layout):
    return _qk(layout, c=5.0)


def qk_hard_coded_scale(layout):
    return _qk(layout, c=32.0)


def qk_without_sqrt(layout):
    return _qk(layout, c=math.log(100 * layout.n_ctx))


def qk_two_back(layout):
    return _qk(layout, query_shift=-2)


def qk_no_positions(layout):
    _, W_Q, W_K = _qk(layout)
    return torch.zeros(layout.n_ctx, layout.d_model), W_Q, W_K


def qk_positions_in_token_block(layout):
    n = layout.n_ctx
    W_pos = torch.zeros(n, layout.d_model)
    W_pos[:, :n] = torch.eye(n)
    W_Q = torch.zeros(layout.d_model, layout.d_head)
    W_K = torch.zeros(layout.d_model, layout.d_head)
    W_Q[:n, :n] = 100 * torch.diag(torch.ones(n - 1), diagonal=-1)
    W_K[:n, :n] = torch.eye(n)
    return W_pos, W_Q, W_K


def qk_transposed_query(layout):
    W_pos, W_Q, W_K = _qk(layout)
    return W_pos, W_Q.T, W_K


def qk_returns_two(layout):
    W_pos, W_Q, W_K = _qk(layout)
    return W_Q, W_K


def qk_negative_scale(layout):
    return _qk(layout, c=-math.sqrt(layout.d_head) * math.log(100 * layout.n_ctx))


def qk_integer_weights(layout):
    n = layout.n_ctx
    W_pos = torch.zeros(n, layout.d_model, dtype=torch.long)
    W_pos[:, layout.pos] = torch.eye(n, dtype=torch.long)
    W_Q = torch.zeros(layout.d_model, layout.d_head, dtype=torch.long)
    W_Q[layout.pos, :n] = 100 * torch.diag(torch.ones(n - 1, dtype=torch.long), diagonal=-1)
    W_K = torch.zeros(layout.d_model, layout.d_head, dtype=torch.long)
    W_K[layout.pos, :n] = torch.eye(n, dtype=torch.long)
    return W_pos, W_Q, W_K


def qk_hard_coded_sizes(layout):
    W_pos, W_Q, W_K = torch.zeros(24, 56), torch.zeros(56, 24), torch.zeros(56, 24)
    W_pos[:, 16:40] = torch.eye(24)
    W_Q[16:40, :] = 40 * torch.diag(torch.ones(23), diagonal=-1)
    W_K[16:40, :] = torch.eye(24)
    return W_pos, W_Q, W_K


def qk_head_axis_is_n_ctx(layout):
    n = layout.n_ctx
    c = math.sqrt(layout.d_head) * math.log(100 * n)
    W_pos = torch.zeros(n, layout.d_model)
    W_pos[:, layout.pos] = torch.eye(n)
    W_Q = torch.zeros(layout.d_model, layout.d_head)
    W_Q[layout.pos] = c * torch.diag(torch.ones(n - 1), diagonal=-1)
    W_K = torch.zeros(layout.d_model, layout.d_head)
    W_K[layout.pos] = torch.eye(n)
    return W_pos, W_Q, W_K


def qk_diag_too_big(layout):
    n = layout.n_ctx
    W_pos, _, W_K = _qk(layout)
    W_Q = torch.zeros(layout.d_model, layout.d_head)
    W_Q[layout.pos, :n] = 50 * torch.diag(torch.ones(n), diagonal=-1)
    return W_pos, W_Q, W_K


def qk_key_shift_ok(layout):
    return _qk(layout, query_shift=0, key_shift=1)


def qk_big_scale_ok(layout):
    return _qk(layout, c=200.0 * math.sqrt(layout.d_head))


def qk_float64_ok(layout):
    W_pos, W_Q, W_K = _qk(layout, c=math.sqrt(layout.d_head) * (math.log(19 * layout.n_ctx) + 1))
    return W_pos.double().float(), W_Q.double().float(), W_K.float()


# ---------------------------------------------------------------- 2.5 the OV circuit by hand
def _ov(layout, read=None, write=None, sign=1.0, where=lambda t, v: t, tokens=None):
    """A student's loop: token t (read from block ``read``) goes to coordinate where(t) of block ``write``."""
    read, write = read or layout.token, write or layout.prev
    W_V = torch.zeros(layout.d_model, layout.d_head)
    W_O = torch.zeros(layout.d_head, layout.d_model)
    for t in range(tokens or layout.d_vocab):
        W_V[read.start + t, t] = 1.0
        W_O[t, write.start + where(t, layout.d_vocab)] = sign
    return W_V, W_O


def ov_writes_token_block(layout):
    return _ov(layout, write=layout.token)


def ov_reads_positions(layout):
    return _ov(layout, read=layout.pos)


def ov_one_coordinate(layout):
    return _ov(layout, where=lambda t, v: 0)


def ov_negative(layout):
    W_V = torch.zeros(layout.d_model, layout.d_head)
    W_V[layout.token, :layout.d_vocab] = torch.eye(layout.d_vocab)
    W_O = torch.zeros(layout.d_head, layout.d_model)
    W_O[:layout.d_vocab, layout.prev] = -torch.eye(layout.d_vocab)
    return W_V, W_O


def ov_pairs_share(layout):
    return _ov(layout, where=lambda t, v: t // 2)


def ov_two_coordinates(layout):
    W_V, W_O = _ov(layout)
    for t in range(layout.d_vocab - 1):
        W_O[t, layout.prev.start + t + 1] = 1.0
    return W_V, W_O


def ov_reversed(layout):
    return _ov(layout, where=lambda t, v: v - 1 - t)


def ov_zero_output(layout):
    W_V, _ = _ov(layout)
    return W_V, torch.zeros(layout.d_head, layout.d_model)


def ov_half_vocabulary(layout):
    return _ov(layout, tokens=8)


def ov_random_values(layout):
    _, W_O = _ov(layout)
    return torch.randn(layout.d_model, layout.d_head, generator=torch.Generator().manual_seed(0)), W_O


def ov_transposed_output(layout):
    W_V, W_O = _ov(layout)
    return W_V, W_O.T


def ov_reads_prev_block(layout):
    return _ov(layout, read=layout.prev)


def ov_one_off(layout):
    W_V, _ = _ov(layout)
    W_O = torch.zeros(layout.d_head, layout.d_model)
    for t in range(1, layout.d_vocab):
        W_O[t, layout.prev.start + t - 1] = 1.0
    return W_V, W_O


def ov_head_axis_is_vocab(layout):
    W_V = torch.zeros(layout.d_model, layout.d_head)
    W_V[layout.token] = torch.eye(layout.d_vocab)
    W_O = torch.zeros(layout.d_head, layout.d_model)
    W_O[:, layout.prev] = torch.eye(layout.d_vocab)
    return W_V, W_O


def ov_hard_coded_sizes(layout):
    W_V, W_O = torch.zeros(56, 24), torch.zeros(24, 56)
    W_V[:16, :16] = torch.eye(16)
    W_O[:16, 40:] = torch.eye(16)
    return W_V, W_O


def ov_scaled_ok(layout):
    W_V, W_O = _ov(layout)
    return 0.01 * W_V, 3.0 * W_O


def ov_slices_ok(layout):
    v = layout.d_vocab
    W_V = torch.zeros(layout.d_model, layout.d_head)
    W_O = torch.zeros(layout.d_head, layout.d_model)
    W_V[:v, :v] = torch.eye(v)
    W_O[:v, -v:] = torch.eye(v)
    return W_V, W_O


def ov_other_directions_ok(layout):
    v, h = layout.d_vocab, layout.d_head
    W_V = torch.zeros(layout.d_model, h)
    W_O = torch.zeros(h, layout.d_model)
    W_V[layout.token, h - v:] = torch.eye(v)
    W_O[h - v:, layout.prev] = torch.eye(v)
    return W_V, W_O


# ---------------------------------------------------------------- 2.9 can a key see the previous token?
def _two_caches(model, tokens, corrupted):
    with torch.no_grad():
        return model.run_with_cache(tokens)[1], model.run_with_cache(corrupted)[1]


def key_queries(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return torch.linalg.vector_norm(dirty["q", layer] - clean["q", layer], dim=-1).mean(dim=0)


def key_values(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty[f"blocks.{layer}.attn.hook_v"] - clean[f"blocks.{layer}.attn.hook_v"]).norm(dim=-1).mean(dim=0)


def key_layer_zero(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["blocks.0.attn.hook_k"] - clean["blocks.0.attn.hook_k"]).norm(dim=-1).mean(dim=0)


def key_layer_minus_one(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer - 1] - clean["k", layer - 1]).norm(dim=-1).mean(dim=0)


def key_squared(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return ((dirty["k", layer] - clean["k", layer]) ** 2).sum(dim=-1).mean(dim=0)


def key_l1(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer] - clean["k", layer]).abs().sum(dim=-1).mean(dim=0)


def key_sums_batch(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).sum(dim=0)


def key_transposed(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).mean(dim=0).T


def key_no_batch_mean(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer] - clean["k", layer]).norm(dim=-1)


def key_norm_over_heads(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer] - clean["k", layer]).norm(dim=2).mean(dim=0)


def key_means_positions(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).mean(dim=1)


def key_hook_typo(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    name = f"blocks.{layer}.attn.hook_key"
    return (dirty[name] - clean[name]).norm(dim=-1).mean(dim=0)


def key_one_norm_per_position(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return torch.linalg.matrix_norm(dirty["k", layer] - clean["k", layer]).mean(dim=0)


def key_next_layer(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    name = f"blocks.{layer + 1}.attn.hook_k"
    return (dirty[name] - clean[name]).norm(dim=-1).mean(dim=0)


def key_reverse_difference_ok(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (clean["k", layer] - dirty["k", layer]).pow(2).sum(dim=-1).sqrt().mean(dim=0)


def key_float64_ok(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    diff = dirty[f"blocks.{layer}.attn.hook_k"].double() - clean[f"blocks.{layer}.attn.hook_k"].double()
    return torch.linalg.vector_norm(diff, dim=-1).mean(dim=0).float()


def key_hooks_ok(model, tokens, corrupted, layer):
    keys = []

    def keep(k, hook):
        keys.append(k.detach().clone())

    name = f"blocks.{layer}.attn.hook_k"
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(name, keep)])
        model.run_with_hooks(corrupted, fwd_hooks=[(name, keep)])
    return (keys[1] - keys[0]).norm(dim=-1).mean(dim=0)


# ---------------------------------------------------------------- the catalogue
def _choice(why, fix, kind, expect):
    return Mistake(nb2.check_layer_answers, ({"why_earlier": why, "one_layer_fix": fix},), kind, expect)


# ---------------------------------------------------------------- by symptom class (issue 18), written blind
# A notebook global: the notebook's own `pattern`, `model` and `tokens` stand in for the arguments.
def all_uses_notebook_model(model, tokens, score_fn):
    cache = _cache(MODEL, tokens)
    return torch.stack([score_fn(cache["pattern", l]) for l in range(MODEL.cfg.n_layers)])


def key_uses_notebook_model(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(MODEL, tokens, corrupted)
    return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).mean(dim=0)


# Off by one position: a stripe one further back, or one query too many or too few.
def prev_three_back(pattern):
    n = pattern.shape[-1]
    return torch.stack([pattern[:, :, i, i - 3] for i in range(3, n)], dim=-1).mean(dim=(0, 2))


def cur_off_by_one_stripe(pattern):
    return torch.diagonal(pattern, offset=-2, dim1=2, dim2=3).mean(dim=(0, 2))


# A sum where a mean was wanted.
def first_sums_queries(pattern):
    return pattern[:, :, 1:, 0].sum(dim=2).mean(dim=0)


def key_sums_heads_and_batch(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).sum(dim=0)


# A hook on the wrong hook point.
def key_attention_output(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    name = f"blocks.{layer}.attn.hook_z"
    return (dirty[name] - clean[name]).norm(dim=-1).mean(dim=0)


def key_residual_input(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    name = f"blocks.{layer}.hook_resid_pre"
    return (dirty[name] - clean[name]).norm(dim=-1).mean(dim=0)


# A hook left on the model.
def key_hook_left(model, tokens, corrupted, layer):
    kept = []
    model.add_hook(f"blocks.{layer}.attn.hook_k", lambda k, hook: kept.append(k.detach()))
    with torch.no_grad():
        model(tokens)
        model(corrupted)
    return (kept[1] - kept[0]).norm(dim=-1).mean(dim=0)


def all_hook_left(model, tokens, score_fn):
    patterns = {}
    for l in range(model.cfg.n_layers):
        model.add_hook(f"blocks.{l}.attn.hook_pattern", lambda p, hook, l=l: patterns.__setitem__(l, p.detach()))
    with torch.no_grad():
        model(tokens)
    return torch.stack([score_fn(patterns[l]) for l in range(model.cfg.n_layers)])


# float16 inside, cast back.
def prev_half_precision(pattern):
    return pattern.half().diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1)).float()


def key_half_precision(model, tokens, corrupted, layer):
    clean, dirty = _two_caches(model, tokens, corrupted)
    return (dirty["k", layer].half() - clean["k", layer].half()).norm(dim=-1).mean(dim=0).float()


# NumPy results.
def prev_numpy(pattern):
    return pattern.numpy().diagonal(offset=-1, axis1=-2, axis2=-1).mean(axis=(0, -1))


def all_numpy(model, tokens, score_fn):
    cache = _cache(model, tokens)
    import numpy as np
    return np.stack([score_fn(cache["pattern", l]).numpy() for l in range(model.cfg.n_layers)])


# A batch axis forgotten: code written for one sequence's pattern [head, q, k].
def prev_one_sequence_index(pattern):
    n = pattern.shape[-1]
    return torch.stack([pattern[:, i, i - 1] for i in range(1, n)], dim=-1).mean(dim=(0, -1))


def cur_keeps_batch(pattern):
    return torch.diagonal(pattern, 0, -2, -1).mean(dim=-1)


# In place.
def first_zeroes_query_zero_in_place(pattern):
    pattern[:, :, 0, 0] = 0
    return pattern[..., 0].sum(dim=-1).mean(dim=0) / (pattern.shape[-1] - 1)


def cur_masks_in_place(pattern):
    n = pattern.shape[-1]
    pattern.mul_(torch.eye(n))
    return pattern.sum(dim=(-2, -1)).mean(dim=0) / n


# ---------------------------------------------------------------- moved from tests/test_nb2_checks.py
def score_not_written(pattern):
    raise NotImplementedError()


def prev_zeros_per_sequence(pattern):
    return torch.zeros(pattern.shape[0])


def qk_positions_in_prev_block(layout):
    W_pos, W_Q, W_K = _qk(layout)
    moved = torch.zeros_like(W_pos)
    width = min(layout.n_ctx, layout.d_model - layout.prev.start)
    moved[:, layout.prev.start:layout.prev.start + width] = W_pos[:, layout.pos][:, :width]
    return moved, W_Q, W_K


def factor_raises_for_long_sequences(seq_len):
    return (seq_len - 1) / seq_len if seq_len < 50 else [][0]


MISTAKES = [
    # 2.1
    Mistake(nb2.check_previous_token_score, (prev_next_key,), "reads key i+1", "key i+1"),
    Mistake(nb2.check_previous_token_score, (prev_main_diagonal,), "reads the main diagonal", "current-token score"),
    Mistake(nb2.check_previous_token_score, (prev_divides_by_n,), "divides by pos, not pos-1",
            "query 0 has no previous token"),
    Mistake(nb2.check_previous_token_score, (prev_loop_from_zero,), "loop from query 0 wraps to key -1",
            "query 0 has no previous token"),
    Mistake(nb2.check_previous_token_score, (prev_sums_batch,), "sum over the batch", "summed over the batch"),
    Mistake(nb2.check_previous_token_score, (prev_sums_queries,), "sum over the queries", "summed over the queries"),
    Mistake(nb2.check_previous_token_score, (prev_means_heads,), "mean over heads, not batch",
            "averaged over the head axis"),
    Mistake(nb2.check_previous_token_score, (prev_default_diagonal_axes,), "diagonal of the first two axes",
            "without dim1/dim2"),
    Mistake(nb2.check_previous_token_score, (prev_squeezes,), "squeeze drops the size-1 batch", "squeezed away"),
    Mistake(nb2.check_previous_token_score, (prev_in_place,), "multiplies the input in place", "in place",
            symptom="in place/alias"),
    Mistake(nb2.check_previous_token_score, (prev_float64,), "returns float64", "dtype torch.float64"),
    Mistake(nb2.check_previous_token_score, (prev_as_list,), "returns a list", "plain torch.Tensor"),
    Mistake(nb2.check_previous_token_score, (prev_two_back,), "offset -2", "key i-2", symptom="off by one"),
    Mistake(nb2.check_previous_token_score, (prev_index_past_end,), "loop one past the end (IndexError)",
            "index past the end"),
    # 2.2
    Mistake(nb2.check_current_token_score, (cur_skips_query_zero,), "skips query 0", "skipped query 0"),
    Mistake(nb2.check_current_token_score, (cur_divides_by_n_minus_1,), "divides by pos-1", "by pos-1"),
    Mistake(nb2.check_current_token_score, (cur_previous_stripe,), "reads the previous stripe", "previous-token score"),
    Mistake(nb2.check_current_token_score, (cur_sums_positions,), "sum over positions", "summed over query positions"),
    Mistake(nb2.check_current_token_score, (cur_default_diagonal_axes,), "diagonal of the first two axes",
            "without dim1/dim2"),
    Mistake(nb2.check_current_token_score, (cur_means_heads,), "mean over heads, not batch",
            "averaged over the head axis"),
    Mistake(nb2.check_current_token_score, (cur_sums_batch,), "sum over the batch", "summed over the batch"),
    # 2.3
    Mistake(nb2.check_first_token_score, (first_includes_query_zero,), "includes query 0", "included query 0"),
    Mistake(nb2.check_first_token_score, (first_row_zero,), "row 0 instead of column 0", "row 0"),
    Mistake(nb2.check_first_token_score, (first_last_column,), "last column", "last column"),
    Mistake(nb2.check_first_token_score, (first_divides_by_n,), "divides by pos", "divided by pos"),
    Mistake(nb2.check_first_token_score, (first_slices_heads,), "pattern[:, 1:, 0] slices heads",
            "indexes the head axis"),
    Mistake(nb2.check_first_token_score, (first_sums_batch,), "sum over the batch", "summed over the batch"),
    Mistake(nb2.check_first_token_score, (first_means_heads,), "mean over heads, not batch",
            "averaged over the head axis"),
    # 2.6
    Mistake(nb2.check_score_all_heads, (all_layer_zero,), "layer 0 every time", "layer 0's scores"),
    Mistake(nb2.check_score_all_heads, (all_first_sequence,), "first sequence only", "only the first sequence"),
    Mistake(nb2.check_score_all_heads, (all_stack_dim1,), "stacked along dim 1", "rows are the heads"),
    Mistake(nb2.check_score_all_heads, (all_cat,), "torch.cat instead of torch.stack", "torch.cat"),
    Mistake(nb2.check_score_all_heads, (all_loops_over_heads,), "loops over n_heads", "there is no layer 3"),
    Mistake(nb2.check_score_all_heads, (all_skips_layer_zero,), "range(1, n_layers)", "off-by-one",
            symptom="off by one"),
    Mistake(nb2.check_score_all_heads, (all_torch_tensor,), "torch.tensor of a list of tensors", "torch.stack"),
    Mistake(nb2.check_score_all_heads, (all_returns_list,), "returns a list", "plain torch.Tensor"),
    Mistake(nb2.check_score_all_heads, (all_reversed,), "layers in reverse order", "reverse layer order"),
    # 2.7
    head_mistake("argmin instead of argmax", found=_argmax_head(-PREV), expect="lowest"),
    head_mistake("the BOS head", found=_argmax_head(SCORES["first"]), expect="highest first-token (BOS) score"),
    head_mistake("a string", found=f"{FOUND[0]}.{FOUND[1]}", expect="pair of ints"),
    head_mistake("the flat argmax", found=int(PREV.argmax()), expect="flat index"),
    head_mistake("tensors, not ints", found=tuple(torch.unravel_index(PREV.argmax(), PREV.shape)),
                 expect="convert each with int"),
    # (layer and head swapped cannot be caught here: the shipped model's previous-token head is 0.0.)
    head_mistake("argmax over one axis", found=PREV.argmax(dim=0), expect="pair of ints"),
    head_mistake("our own scores as detect_scores", detect_scores=PREV, expect="our own previous-token scores"),
    head_mistake("exclude_bos=True", expect="exclude_bos=True",
                 detect_scores=detect_head(MODEL, tokens_to_text(TOKENS), "previous_token_head", exclude_bos=True)),
    head_mistake("detect_head on the first sequence", expect="first sequence only",
                 detect_scores=detect_head(MODEL, tokens_to_text(TOKENS[:1]), "previous_token_head")),
    head_mistake("duplicate_token_head", expect="duplicate-token scores",
                 detect_scores=detect_head(MODEL, tokens_to_text(TOKENS), "duplicate_token_head")),
    head_mistake("detect_scores transposed", detect_scores=DETECT.T, expect="wrong order"),
    head_mistake("detect_scores as a list", detect_scores=DETECT.tolist(), expect="it is a list"),
    head_mistake("factor hard-coded for 24 tokens", detect_factor=lambda seq_len: 23 / 24, expect="in terms of n"),
    Mistake(nb2.check_detect_factor, (lambda seq_len: seq_len / (seq_len - 1),), "factor upside down", "upside down"),
    Mistake(nb2.check_detect_factor, (lambda seq_len: 1,), "factor 1", "not equal"),
    Mistake(nb2.check_detect_factor, (lambda seq_len: (seq_len - 1) // seq_len,), "integer division",
            "integer division"),
    Mistake(nb2.check_detect_factor, (lambda seq_len: 1 / seq_len,), "factor 1/n", "1/n"),
    Mistake(nb2.check_detect_factor, (lambda seq_len: (seq_len - 2) / (seq_len - 1),), "factor off by one",
            "off by one"),
    Mistake(nb2.check_detect_factor, (lambda seq_len: seq_len / (seq_len + 1),), "factor n/(n+1)", "off by one"),
    # 2.8
    Mistake(nb2.check_plot_head_pattern, (plot_transposed,), "transposed", "transposed"),
    Mistake(nb2.check_plot_head_pattern, (plot_layer_as_head,), "layer used as head", "shows head 1.1"),
    Mistake(nb2.check_plot_head_pattern, (plot_last_sequence,), "last sequence", "of sequence 1"),
    Mistake(nb2.check_plot_head_pattern, (plot_returns_nothing,), "returns nothing", "returned None"),
    Mistake(nb2.check_plot_head_pattern, (plot_line,), "a line plot", "holds no image"),
    Mistake(nb2.check_plot_head_pattern, (plot_batch_mean,), "mean over sequences", "averaged over the sequences"),
    Mistake(nb2.check_plot_head_pattern, (plot_head_mean,), "mean over heads", "averaged over the heads"),
    Mistake(nb2.check_plot_head_pattern, (plot_swapped_indices,), "layer and head swapped", "swap layer and head"),
    Mistake(nb2.check_plot_head_pattern, (plot_returns_figure,), "returns the Figure", "not the Figure"),
    # 2.4
    Mistake(nb2.check_previous_token_qk, (qk_attends_to_itself,), "attends to itself", "attends to itself"),
    Mistake(nb2.check_previous_token_qk, (qk_next_position,), "looks at i+1", "key i+1"),
    Mistake(nb2.check_previous_token_qk, (qk_too_soft,), "scale too small", "too soft"),
    Mistake(nb2.check_previous_token_qk, (qk_hard_coded_scale,), "scale hard-coded for the default layout",
            "suits the default layout"),
    Mistake(nb2.check_previous_token_qk, (qk_without_sqrt,), "forgets the 1/sqrt(d_head) when choosing c",
            "without the 1/sqrt(d_head)"),
    Mistake(nb2.check_previous_token_qk, (qk_two_back,), "looks at i-2", "key i-2"),
    Mistake(nb2.check_previous_token_qk, (qk_no_positions,), "W_pos left at zero", "same score"),
    Mistake(nb2.check_previous_token_qk, (qk_positions_in_token_block,), "positions in the token block",
            "outside the position block"),
    Mistake(nb2.check_previous_token_qk, (qk_transposed_query,), "W_Q transposed", "It is transposed"),
    Mistake(nb2.check_previous_token_qk, (qk_returns_two,), "returns two weights", "returned 2 value(s)"),
    Mistake(nb2.check_previous_token_qk, (qk_negative_scale,), "negative scale", "sign is flipped"),
    Mistake(nb2.check_previous_token_qk, (qk_integer_weights,), "integer weights", "floating-point"),
    Mistake(nb2.check_previous_token_qk, (qk_hard_coded_sizes,), "sizes of the default layout hard-coded",
            "shape for the default layout"),
    Mistake(nb2.check_previous_token_qk, (qk_head_axis_is_n_ctx,), "assumes d_head == n_ctx",
            "worked on the default layout"),
    Mistake(nb2.check_previous_token_qk, (qk_diag_too_big,), "torch.diag(torch.ones(n), -1) is (n+1)x(n+1)",
            "(m+1) × (m+1)"),
    # 2.5
    Mistake(nb2.check_previous_token_ov, (ov_writes_token_block,), "writes into the token block",
            "current-token block"),
    Mistake(nb2.check_previous_token_ov, (ov_reads_positions,), "reads the position block",
            "does not depend on the tokens"),
    Mistake(nb2.check_previous_token_ov, (ov_one_coordinate,), "every token to one coordinate", "ambiguous"),
    Mistake(nb2.check_previous_token_ov, (ov_negative,), "sign flipped", "sign is flipped"),
    Mistake(nb2.check_previous_token_ov, (ov_pairs_share,), "two tokens per coordinate", "same coordinate"),
    Mistake(nb2.check_previous_token_ov, (ov_two_coordinates,), "two coordinates per token", "tie for the top logit"),
    Mistake(nb2.check_previous_token_ov, (ov_reversed,), "tokens in reverse order", "permutation"),
    Mistake(nb2.check_previous_token_ov, (ov_zero_output,), "W_O left at zero", "W_O is zero"),
    Mistake(nb2.check_previous_token_ov, (ov_half_vocabulary,), "only 8 tokens carried", "one of [8, 9,"),
    Mistake(nb2.check_previous_token_ov, (ov_random_values,), "random W_V", None),
    Mistake(nb2.check_previous_token_ov, (ov_transposed_output,), "W_O transposed", "It is transposed"),
    Mistake(nb2.check_previous_token_ov, (ov_reads_prev_block,), "reads the (empty) previous-token block",
            "reads rows that are empty"),
    Mistake(nb2.check_previous_token_ov, (ov_one_off,), "token t to coordinate t-1", "one coordinate off"),
    Mistake(nb2.check_previous_token_ov, (ov_head_axis_is_vocab,), "assumes d_head == d_vocab",
            "another shape than the slice"),
    Mistake(nb2.check_previous_token_ov, (ov_hard_coded_sizes,), "sizes of the default layout hard-coded",
            "shape for the default layout"),
    # the whole head
    Mistake(nb2.check_handbuilt_head, (qk_attends_to_itself, ov_slices_ok), "QK attends to itself",
            "attends to itself"),
    Mistake(nb2.check_handbuilt_head, (qk_hard_coded_scale, ov_slices_ok), "QK scale hard-coded",
            "suits the default layout"),
    Mistake(nb2.check_handbuilt_head, (qk_positions_in_token_block, ov_slices_ok), "positions in the token block",
            "outside the position block"),
    Mistake(nb2.check_handbuilt_head, (qk_key_shift_ok, ov_negative), "OV sign flipped", "sign is flipped"),
    Mistake(nb2.check_handbuilt_head, (qk_big_scale_ok, ov_writes_token_block), "OV writes the token block",
            "current-token block"),
    Mistake(nb2.check_handbuilt_head, (qk_returns_two, ov_slices_ok), "QK returns two weights",
            "returned 2 value(s)"),
    Mistake(nb2.check_handbuilt_head, (qk_key_shift_ok, ov_hard_coded_sizes), "OV sizes hard-coded",
            "shape for the default layout"),
    Mistake(nb2.check_handbuilt_head, (qk_negative_scale, ov_slices_ok), "QK sign flipped", "sign is flipped"),
    # 2.9
    Mistake(nb2.check_key_change, (key_queries,), "queries instead of keys", "queries", symptom="wrong hook point"),
    Mistake(nb2.check_key_change, (key_values,), "values instead of keys", "values'", symptom="wrong hook point"),
    Mistake(nb2.check_key_change, (key_layer_zero,), "layer 0 hard-coded", "layer 0's keys"),
    Mistake(nb2.check_key_change, (key_layer_minus_one,), "layer - 1", "layer 0's keys"),
    Mistake(nb2.check_key_change, (key_squared,), "squared length", "squared length"),
    Mistake(nb2.check_key_change, (key_l1,), "L1 length", "L1"),
    Mistake(nb2.check_key_change, (key_sums_batch,), "sum over the batch", "summed over the batch"),
    Mistake(nb2.check_key_change, (key_transposed,), "[head, pos]", "wrong order"),
    Mistake(nb2.check_key_change, (key_no_batch_mean,), "no mean over the batch", "extra axis of size 3"),
    Mistake(nb2.check_key_change, (key_norm_over_heads,), "norm over the head axis", "norm over the head axis"),
    Mistake(nb2.check_key_change, (key_means_positions,), "mean over positions", "averaged over the positions"),
    Mistake(nb2.check_key_change, (key_hook_typo,), "hook name typo", "has no entry 'blocks.1.attn.hook_key'"),
    Mistake(nb2.check_key_change, (key_one_norm_per_position,), "one matrix norm per position",
            "one norm over every axis"),
    Mistake(nb2.check_key_change, (key_next_layer,), "layer + 1", "there is no layer 2"),
    # 2.10
    _choice("a", "c", "why_earlier: two softmaxes", "one softmax per head"),
    _choice("c", "c", "why_earlier: positional embeddings", "same position information"),
    _choice("d", "c", "why_earlier: the causal mask", "never earlier ones"),
    _choice("b", "a", "one_layer_fix: more heads", "more heads in the same layer"),
    _choice("b", "b", "one_layer_fix: wider heads", "wider head"),
    _choice("b", "d", "one_layer_fix: bigger positions", "*where* it is"),
    Mistake(nb2.check_layer_answers, ({"why_earlier": "b"},), "a key missing", "must be a dict"),
    Mistake(nb2.check_layer_answers, (["b", "c"],), "a list, not a dict", "must be a dict"),

    # ---- by symptom class (issue 18)
    Mistake(nb2.check_score_all_heads, (all_uses_notebook_model,), "the notebook's model, not the argument",
            "`model` is not used", symptom="global"),
    Mistake(nb2.check_key_change, (key_uses_notebook_model,), "the notebook's model, not the argument",
            "`model` is not used", symptom="global"),
    Mistake(nb2.check_previous_token_score, (prev_three_back,), "key i-3", "key i - 3", symptom="off by one"),
    Mistake(nb2.check_current_token_score, (cur_off_by_one_stripe,), "key i-2 for the current token", "key i - 2",
            symptom="off by one"),
    Mistake(nb2.check_first_token_score, (first_sums_queries,), "sum over the queries", "a sum of 8 things",
            symptom="sum/mean"),
    Mistake(nb2.check_key_change, (key_sums_heads_and_batch,), "sum over the batch", "summed over the batch",
            symptom="sum/mean"),
    Mistake(nb2.check_key_change, (key_attention_output,), "hook_z instead of hook_k", "hook_z",
            symptom="wrong hook point"),
    Mistake(nb2.check_key_change, (key_residual_input,), "hook_resid_pre instead of hook_k", "hook_resid_pre",
            symptom="wrong hook point"),
    Mistake(nb2.check_key_change, (key_hook_left,), "add_hook never removed", "left a hook on the model",
            symptom="hook left"),
    Mistake(nb2.check_score_all_heads, (all_hook_left,), "add_hook never removed", "left a hook on the model",
            symptom="hook left"),
    Mistake(nb2.check_previous_token_score, (prev_half_precision,), "float16 inside, cast back", "float16",
            symptom="float16"),
    Mistake(nb2.check_key_change, (key_half_precision,), "float16 inside, cast back", "float16", symptom="float16"),
    Mistake(nb2.check_previous_token_score, (prev_numpy,), "NumPy result", "NumPy array", symptom="numpy/device"),
    Mistake(nb2.check_score_all_heads, (all_numpy,), "NumPy result", "NumPy array", symptom="numpy/device"),
    Mistake(nb2.check_previous_token_score, (prev_one_sequence_index,), "indexed as if [head, q, k]",
            "written for one sequence", symptom="batch axis"),
    Mistake(nb2.check_current_token_score, (cur_keeps_batch,), "no mean over the batch", "extra axis",
            symptom="batch axis"),
    Mistake(nb2.check_first_token_score, (first_zeroes_query_zero_in_place,), "zeroes the pattern in place",
            "in place", symptom="in place/alias"),
    Mistake(nb2.check_current_token_score, (cur_masks_in_place,), "mul_ by the identity", "in place",
            symptom="in place/alias"),
    # ---- moved from tests/test_nb2_checks.py
    Mistake(nb2.check_previous_token_score, (score_not_written,), "not written yet", "not written yet"),
    Mistake(nb2.check_previous_token_score, (prev_zeros_per_sequence,), "one zero per sequence",
            "returned shape [3], expected [head=4]"),
    Mistake(nb2.check_previous_token_qk, (qk_positions_in_prev_block,), "positions in the previous-token block",
            "outside the position block"),
    Mistake(nb2.check_handbuilt_head, (qk_positions_in_prev_block, ov_slices_ok), "positions in the prev block",
            "outside the position block"),
    Mistake(nb2.check_detect_factor, (factor_raises_for_long_sequences,), "raises for long sequences",
            "detect_factor raised IndexError"),
    head_mistake("a layer past the end", found=(FOUND[0] + 5, FOUND[1]), expect="is not a head"),
    head_mistake("numpy ints", found=tuple(numpy.int64(i) for i in FOUND), expect="convert each with int"),
    Mistake(nb2.check_previous_token_head, (FOUND, DETECT, factor_ok, TOKENS.float()), "tokens as floats",
            "re-run the cell that defines `tokens`"),
    head_mistake("exclude_current_token=True", expect="exclude_current_token=True",
                 detect_scores=detect_head(MODEL, tokens_to_text(TOKENS), "previous_token_head",
                                           exclude_current_token=True)),
]

CORRECT = [
    Correct(nb2.check_previous_token_score, (prev_loop_ok,), "loop over queries", H(nb2.check_previous_token_score)),
    Correct(nb2.check_previous_token_score, (prev_swapped_dims_ok,), "diagonal(offset=1, dim1=-1, dim2=-2)",
            H(nb2.check_previous_token_score)),
    Correct(nb2.check_previous_token_score, (prev_mask_ok,), "shifted-identity mask", H(nb2.check_previous_token_score)),
    Correct(nb2.check_previous_token_score, (prev_float64_cast_back_ok,), "float64 cast back", H(nb2.check_previous_token_score)),
    Correct(nb2.check_current_token_score, (cur_einsum_ok,), "einsum bhii->h", H(nb2.check_current_token_score)),
    Correct(nb2.check_current_token_score, (cur_eye_mask_ok,), "identity mask", H(nb2.check_current_token_score)),
    Correct(nb2.check_first_token_score, (first_select_ok,), "select and narrow", H(nb2.check_first_token_score)),
    Correct(nb2.check_first_token_score, (first_sum_ok,), "sum over both, one division", H(nb2.check_first_token_score)),
    Correct(nb2.check_score_all_heads, (all_hook_names_ok,), "hook names and names_filter", H(nb2.check_score_all_heads)),
    Correct(nb2.check_score_all_heads, (all_fill_ok,), "fill a preallocated tensor", H(nb2.check_score_all_heads)),
    Correct(nb2.check_previous_token_head, (FOUND, DETECT, lambda seq_len: 1 - 1 / seq_len, TOKENS),
            "1 - 1/n"),
    Correct(nb2.check_previous_token_head, ((FOUND[0], FOUND[1]), DETECT.clone(),
                                            lambda n: torch.tensor((n - 1) / n), TOKENS), "factor as a tensor"),
    Correct(nb2.check_detect_factor, (lambda seq_len: 1 - 1 / seq_len,), "1 - 1/n", H(nb2.check_detect_factor)),
    Correct(nb2.check_plot_head_pattern, (plot_imshow_ok,), "plt.imshow and plt.gca()",
            H(nb2.check_plot_head_pattern)),
    Correct(nb2.check_plot_head_pattern, (plot_own_axes_ok,), "own Axes passed to attention_heatmap",
            H(nb2.check_plot_head_pattern)),
    Correct(nb2.check_previous_token_qk, (qk_key_shift_ok,), "the shift in W_K", H(nb2.check_previous_token_qk)),
    Correct(nb2.check_previous_token_qk, (qk_big_scale_ok,), "a much larger scale", H(nb2.check_previous_token_qk)),
    Correct(nb2.check_previous_token_qk, (qk_float64_ok,), "float64 built, cast back; margin ln(19 n) + 1",
            H(nb2.check_previous_token_qk)),
    Correct(nb2.check_previous_token_ov, (ov_scaled_ok,), "scaled W_V and W_O", H(nb2.check_previous_token_ov)),
    Correct(nb2.check_previous_token_ov, (ov_slices_ok,), "negative slice for the prev block", H(nb2.check_previous_token_ov)),
    Correct(nb2.check_previous_token_ov, (ov_other_directions_ok,), "other head directions", H(nb2.check_previous_token_ov)),
    Correct(nb2.check_handbuilt_head, (qk_key_shift_ok, ov_other_directions_ok), "shift in W_K, other directions",
            H(nb2.check_handbuilt_head)),
    Correct(nb2.check_key_change, (key_reverse_difference_ok,), "clean - dirty, sqrt of squares", H(nb2.check_key_change)),
    Correct(nb2.check_key_change, (key_float64_ok,), "float64 cast back", H(nb2.check_key_change)),
    Correct(nb2.check_key_change, (key_hooks_ok,), "keys kept by hooks", H(nb2.check_key_change)),
    Correct(nb2.check_layer_answers, ({"why_earlier": "B", "one_layer_fix": " c"},), "capitals and spaces"),
    Correct(nb2.check_layer_answers, ({"why_earlier": "(b)", "one_layer_fix": "(c)"},), "letters written as (b)"),
]


# ================================================================ a blind pass over the exercises (helper mist23)
def first_second_column(pattern):
    return pattern[..., 1:, 1].mean(dim=(0, -1))


def all_queries_not_patterns(model, tokens, score_fn):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([score_fn(cache["q", l].transpose(1, 2)) for l in range(model.cfg.n_layers)])


def plot_no_batch_index(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", layer][head], token_labels(tokens[0]))


def plot_other_labels(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", layer][0, head], token_labels(tokens[1]))


def key_mean_abs(model, tokens, corrupted, layer):
    _, clean = model.run_with_cache(tokens)
    _, dirty = model.run_with_cache(corrupted)
    return (dirty["k", layer] - clean["k", layer]).abs().mean(-1).mean(0)


def key_layer_before(model, tokens, corrupted, layer):
    _, clean = model.run_with_cache(tokens)
    _, dirty = model.run_with_cache(corrupted)
    return (dirty["k", layer - 1] - clean["k", layer - 1]).norm(dim=-1).mean(0)


def key_notebook_tokens(model, tokens, corrupted, layer):
    changed = TOKENS.clone()
    changed[:, 10] = TOKENS[:, 10] % 127 + 1
    _, clean = model.run_with_cache(TOKENS)
    _, dirty = model.run_with_cache(changed)
    return (dirty["k", layer] - clean["k", layer]).norm(dim=-1).mean(0)


def prev_gather_ok(pattern):
    n = pattern.shape[-1]
    index = torch.arange(n - 1).expand(*pattern.shape[:2], n - 1)[..., None]
    return pattern[..., 1:, :].gather(-1, index)[..., 0].mean(dim=(0, -1))


def prev_einsum_ok(pattern):
    shift = torch.diag(torch.ones(pattern.shape[-1] - 1, dtype=pattern.dtype), -1)
    return torch.einsum("bhij,ij->h", pattern, shift) / (pattern.shape[0] * (pattern.shape[-1] - 1))


def first_transpose_ok(pattern):
    return pattern.transpose(-1, -2)[..., 0, 1:].mean(dim=(0, -1))


def all_hooks_context_ok(model, tokens, score_fn):
    patterns = {}
    with torch.no_grad(), model.hooks(fwd_hooks=[(lambda name: name.endswith("hook_pattern"),
                                                  lambda x, hook: patterns.__setitem__(hook.layer(), x))]):
        model(tokens)
    return torch.stack([score_fn(patterns[l]) for l in range(model.cfg.n_layers)])


def key_vector_norm_ok(model, tokens, corrupted, layer):
    _, dirty = model.run_with_cache(corrupted)
    _, clean = model.run_with_cache(tokens)
    return torch.linalg.vector_norm(clean["k", layer] - dirty["k", layer], dim=-1).mean(0)


def plot_unlabelled_ok(cache, layer, head, tokens):
    return attention_heatmap(cache["pattern", layer][0, head], title=f"head {layer}.{head}")


MISTAKES += [
    Mistake(nb2.check_first_token_score, (first_second_column,), "column 1 instead of column 0", "attention on key 1",
            symptom="off by one"),
    Mistake(nb2.check_score_all_heads, (all_queries_not_patterns,), "hook_q rearranged like a pattern",
            "hook point attn.hook_q", symptom="wrong hook point"),
    Mistake(nb2.check_plot_head_pattern, (plot_no_batch_index,), "cache['pattern', layer][head]: no batch index",
            "dimension 0 of cache['pattern', layer] is the batch", symptom="batch axis"),
    Mistake(nb2.check_plot_head_pattern, (plot_other_labels,), "labels of sequence 1", "sequence 1's tokens"),
    Mistake(nb2.check_key_change, (key_mean_abs,), "mean |difference| over d_head", "mean of the absolute differences"),
    Mistake(nb2.check_key_change, (key_layer_before,), "the keys of layer - 1", "layer 0's keys",
            H(nb2.check_key_change), symptom="wrong layer"),
    Mistake(nb2.check_key_change, (key_notebook_tokens,), "the notebook's tokens instead of the arguments",
            "notebook variable", symptom="global"),
]

CORRECT += [
    Correct(nb2.check_previous_token_score, (prev_gather_ok,), "gather", H(nb2.check_previous_token_score)),
    Correct(nb2.check_previous_token_score, (prev_einsum_ok,), "einsum with a shifted identity",
            H(nb2.check_previous_token_score)),
    Correct(nb2.check_first_token_score, (first_transpose_ok,), "row 0 of the transpose",
            H(nb2.check_first_token_score)),
    Correct(nb2.check_score_all_heads, (all_hooks_context_ok,), "model.hooks with a name filter",
            H(nb2.check_score_all_heads)),
    Correct(nb2.check_key_change, (key_vector_norm_ok,), "clean - dirty, vector_norm", H(nb2.check_key_change)),
    Correct(nb2.check_plot_head_pattern, (plot_unlabelled_ok,), "no token labels (passes with a note)",
            H(nb2.check_plot_head_pattern)),
]
