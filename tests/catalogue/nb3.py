"""Notebook 3 (induction heads and the phase change): mistakes students make, and correct alternatives.

Written as a student would write them, never from the checks' own ``Bug`` functions. The head-naming
entries measure the course's trained model here, so they hold for whatever model is shipped.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from catalogue import Correct, Mistake, hidden
from induction_course import circuits
from induction_course.checks import nb3
from induction_course.data import repeated_tokens
from induction_course.models import make_model
from induction_course.training import STANDARD_CONFIG, load_induction_model


# ---------------------------------------------------------------- 3.1 generate_repeated_tokens
def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _bos_col(batch):
    return torch.zeros(batch, 1, dtype=torch.long)


def tokens_from_zero(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(0, d_vocab, (batch, seq_len), generator=_gen(seed))
    return torch.cat([_bos_col(batch), r, r], dim=1)


def tokens_high_too_low(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab - 1, (batch, seq_len), generator=_gen(seed))
    return torch.cat([_bos_col(batch), r, r], dim=1)


def tokens_no_bos(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(seed))
    return torch.cat([r, r], dim=1)


def tokens_one_copy(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(seed))
    return torch.cat([_bos_col(batch), r], dim=1)


def tokens_two_draws(batch, seq_len, d_vocab, seed=0):
    g = _gen(seed)
    first = torch.randint(1, d_vocab, (batch, seq_len), generator=g)
    second = torch.randint(1, d_vocab, (batch, seq_len), generator=g)
    return torch.cat([_bos_col(batch), first, second], dim=1)


def tokens_unseeded(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len))
    return torch.cat([_bos_col(batch), r, r], dim=1)


def tokens_same_row(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (seq_len,), generator=_gen(seed)).repeat(batch, 1)
    return torch.cat([_bos_col(batch), r, r], dim=1)


def tokens_float_bos(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(seed))
    return torch.cat([torch.zeros(batch, 1), r, r], dim=1)


def tokens_cat_default_dim(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(seed))
    return torch.cat([_bos_col(batch), r, r])


def tokens_flat_bos(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(seed))
    return torch.cat([torch.zeros(batch, dtype=torch.long), r, r], dim=1)


def tokens_generator_is_seed(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=seed)
    return torch.cat([_bos_col(batch), r, r], dim=1)


def tokens_seed_ignored(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(42))
    return torch.cat([_bos_col(batch), r, r], dim=1)


def tokens_bos_at_end(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(seed))
    return torch.cat([r, r, _bos_col(batch)], dim=1)


def tokens_columns(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (seq_len, batch), generator=_gen(seed))
    return torch.cat([torch.zeros(1, batch, dtype=torch.long), r, r], dim=0)


def tokens_int32(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(seed), dtype=torch.int32)
    return torch.cat([torch.zeros(batch, 1, dtype=torch.int32), r, r], dim=1)


def tokens_rounded(batch, seq_len, d_vocab, seed=0):
    r = (torch.rand(batch, seq_len, generator=_gen(seed)) * (d_vocab - 2)).round().long() + 1
    return torch.cat([_bos_col(batch), r, r], dim=1)


def tokens_global_seed(batch, seq_len, d_vocab, seed=0):
    torch.manual_seed(seed)
    r = torch.randint(1, d_vocab, (batch, seq_len))
    return torch.cat([torch.full((batch, 1), 0), r, r], dim=-1)


def tokens_numpy(batch, seq_len, d_vocab, seed=0):
    r = np.random.default_rng(seed).integers(1, d_vocab, size=(batch, seq_len))
    return torch.from_numpy(np.concatenate([np.zeros((batch, 1), dtype=np.int64), r, r], axis=1))


def tokens_repeat(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=_gen(seed))
    out = torch.zeros(batch, 1 + 2 * seq_len, dtype=torch.long)
    out[:, 1:] = r.repeat(1, 2)
    return out


def tokens_floor_of_uniform(batch, seq_len, d_vocab, seed=0):
    r = (torch.rand(batch, seq_len, generator=_gen(seed)) * (d_vocab - 1)).floor().long() + 1
    return torch.cat([_bos_col(batch), r, r], dim=1)


# ---------------------------------------------------------------- 3.2 per_token_loss
def loss_no_shift(logits, tokens):
    return F.cross_entropy(logits.permute(0, 2, 1), tokens, reduction="none")


def loss_shift_backwards(logits, tokens):
    lp = torch.log_softmax(logits[:, 1:], dim=-1)
    return -torch.gather(lp, 2, tokens[:, :-1].unsqueeze(-1)).squeeze(-1)


def loss_mean(logits, tokens):
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:])


def loss_not_negated(logits, tokens):
    lp = logits.log_softmax(-1)[:, :-1]
    return lp.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)


def loss_probabilities(logits, tokens):
    probs = logits[:, :-1].softmax(-1)
    return -probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_raw_logits(logits, tokens):
    return -logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]


def loss_softmax_over_positions(logits, tokens):
    lp = F.log_softmax(logits, dim=1)
    return -lp[:, :-1].gather(2, tokens[:, 1:, None])[..., 0]


def loss_bits(logits, tokens):
    probs = logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return -torch.log2(probs)


def loss_log10(logits, tokens):
    probs = logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return -torch.log10(probs)


def loss_flattened(logits, tokens):
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, v), tokens[:, 1:].reshape(-1), reduction="none")


def loss_class_axis_last(logits, tokens):
    return F.cross_entropy(logits[:, :-1], tokens[:, 1:], reduction="none")


def loss_fancy_index(logits, tokens):
    lp = logits[:, :-1].log_softmax(-1)
    return -lp[..., tokens[:, 1:]]


def loss_arange_index(logits, tokens):
    lp = logits[:, :-1].log_softmax(-1)
    b, p = tokens.shape
    return -lp[torch.arange(b), torch.arange(p - 1), tokens[:, 1:]]


def loss_gather_no_unsqueeze(logits, tokens):
    lp = logits[:, :-1].log_softmax(-1)
    return -lp.gather(-1, tokens[:, 1:])


def loss_own_token(logits, tokens):
    lp = logits[:, 1:].log_softmax(-1)
    return -lp.gather(-1, tokens[:, 1:, None])[..., 0]


def loss_batch_mean(logits, tokens):
    lp = logits[:, :-1].log_softmax(-1)
    return -lp.gather(-1, tokens[:, 1:, None])[..., 0].mean(0)


def loss_in_place(logits, tokens):
    logits -= logits.logsumexp(-1, keepdim=True)
    return -logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]


def loss_float64(logits, tokens):
    lp = logits.double()[:, :-1].log_softmax(-1)
    return -lp.gather(-1, tokens[:, 1:, None])[..., 0]


def loss_all_targets(logits, tokens):
    lp = logits[:, :-1].log_softmax(-1)
    return -lp.gather(-1, tokens[..., None])[..., 0]


def loss_softmax_floor_division(logits, tokens):
    e = logits[:, :-1].exp()
    probs = e // e.sum(-1, keepdim=True)
    return -probs.gather(-1, tokens[:, 1:, None])[..., 0].log()


def loss_targets_unshifted(logits, tokens):
    lp = logits[:, :-1].log_softmax(-1)
    return -lp.gather(-1, tokens[:, :-1, None])[..., 0]


def loss_softmax_over_batch(logits, tokens):
    lp = F.log_softmax(logits, dim=0)
    return -lp[:, :-1].gather(2, tokens[:, 1:, None])[..., 0]


def loss_one_hot(logits, tokens):
    targets = F.one_hot(tokens[:, 1:], logits.shape[-1]).to(logits.dtype)
    return -(targets * logits[:, :-1].log_softmax(-1)).sum(-1)


def loss_nll(logits, tokens):
    return F.nll_loss(F.log_softmax(logits[:, :-1], -1).transpose(1, 2), tokens[:, 1:], reduction="none")


def loss_float64_cast_back(logits, tokens):
    lp = logits.double()[:, :-1].log_softmax(-1)
    return (-lp.gather(-1, tokens[:, 1:, None])[..., 0]).to(logits.dtype)


def loss_logsumexp(logits, tokens):
    picked = logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    return logits[:, :-1].logsumexp(-1) - picked


# ---------------------------------------------------------------- 3.3 induction_score
def _diag(pattern, k):
    return torch.diagonal(pattern, offset=-k, dim1=2, dim2=3)


def score_duplicate(pattern, seq_len):
    return _diag(pattern, seq_len)[..., 1:].mean(dim=(0, 2))


def score_whole_stripe(pattern, seq_len):
    return _diag(pattern, seq_len - 1).mean(dim=(0, 2))


def score_no_bos(pattern, seq_len):
    return _diag(pattern, seq_len - 1)[:, :, 1:-1].mean(dim=(0, 2))


def score_offset_minus_two(pattern, seq_len):
    return _diag(pattern, seq_len - 2)[..., 3:].mean(dim=(0, 2))


def score_offset_plus_one(pattern, seq_len):
    values = [pattern[:, :, q, q - seq_len - 1] for q in range(seq_len + 1, 2 * seq_len + 1)]
    return torch.stack(values, -1).mean(dim=(0, -1))


def score_above_diagonal(pattern, seq_len):
    return torch.diagonal(pattern, offset=seq_len - 1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def score_everything_averaged(pattern, seq_len):
    return _diag(pattern, seq_len - 1)[..., 2:].mean()


def score_loop_short(pattern, seq_len):
    values = [pattern[:, :, q, q - seq_len + 1] for q in range(seq_len + 1, 2 * seq_len)]
    return torch.stack(values, -1).mean(dim=(0, -1))


def score_loop_past_end(pattern, seq_len):
    values = [pattern[:, :, q, q - seq_len + 1] for q in range(seq_len + 1, 2 * seq_len + 2)]
    return torch.stack(values, -1).mean(dim=(0, -1))


def score_summed(pattern, seq_len):
    return _diag(pattern, seq_len - 1)[..., 2:].sum(-1).mean(0)


def score_heads_averaged(pattern, seq_len):
    return _diag(pattern, seq_len - 1)[..., 2:].mean(dim=(0, 1))


def score_batch_kept(pattern, seq_len):
    return _diag(pattern, seq_len - 1)[..., 2:].mean(-1)


def score_duplicate_whole_stripe(pattern, seq_len):
    return _diag(pattern, seq_len).mean(dim=(0, 2))


def score_floor_division(pattern, seq_len):
    stripe = _diag(pattern, seq_len - 1)[..., 2:]
    return stripe.sum(-1).mean(0) // seq_len


def score_loop(pattern, seq_len):
    rows = [pattern[:, :, i, i - seq_len + 1] for i in range(seq_len + 1, 2 * seq_len + 1)]
    return torch.stack(rows, dim=-1).mean(dim=(0, 2))


def score_arange(pattern, seq_len):
    q = torch.arange(seq_len + 1, 2 * seq_len + 1)
    return pattern[:, :, q, q - (seq_len - 1)].mean(dim=(0, 2))


def score_mask(pattern, seq_len):
    n = pattern.shape[-1]
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    mask = (k == q - seq_len + 1) & (q > seq_len)
    return (pattern * mask).sum(dim=(-2, -1)).mean(0) / seq_len


# ---------------------------------------------------------------- 3.4 induction_scores_of_model
def _score(pattern, seq_len):
    return _diag(pattern, seq_len - 1)[..., 2:].mean(dim=(0, 2))


def model_scores_reversed(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([_score(cache["pattern", l], seq_len) for l in range(model.cfg.n_layers - 1, -1, -1)])


def model_scores_last_layer(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([_score(cache["pattern", model.cfg.n_layers - 1], seq_len)] * model.cfg.n_layers)


def model_scores_layer_zero(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    rows = []
    for layer in range(model.cfg.n_layers):
        rows.append(_score(cache["blocks.0.attn.hook_pattern"], seq_len))
    return torch.stack(rows)


def model_scores_cat(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return torch.cat([_score(cache["pattern", l], seq_len) for l in range(model.cfg.n_layers)])


def model_scores_list(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return [_score(cache["pattern", l], seq_len) for l in range(model.cfg.n_layers)]


def model_scores_first_sequence(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([_score(cache["pattern", l][:1], seq_len) for l in range(model.cfg.n_layers)])


def model_scores_fixed_length(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([_score(cache["pattern", l], 23) for l in range(model.cfg.n_layers)])


def model_scores_duplicate(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    rows = [_diag(cache["pattern", l], seq_len)[..., 1:].mean(dim=(0, 2)) for l in range(model.cfg.n_layers)]
    return torch.stack(rows)


def model_scores_wrong_key(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([_score(cache["patterns", l], seq_len) for l in range(model.cfg.n_layers)])


def model_scores_one_layer(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return _score(cache["pattern", 1], seq_len)


def model_scores_whole_stripe(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([_diag(cache["pattern", l], seq_len - 1).mean(dim=(0, 2)) for l in range(model.cfg.n_layers)])


def model_scores_with(score):
    """A student's induction_scores_of_model that calls their own (wrong) induction_score."""
    def induction_scores_of_model(model, tokens, seq_len):
        _, cache = model.run_with_cache(tokens)
        return torch.stack([score(cache["pattern", l], seq_len) for l in range(model.cfg.n_layers)])
    return induction_scores_of_model


def model_scores_hooks(model, tokens, seq_len):
    patterns = {}

    def keep(pattern, hook):
        patterns[hook.name] = pattern.detach()

    model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), keep)])
    return torch.stack([_score(patterns[f"blocks.{l}.attn.hook_pattern"], seq_len) for l in range(model.cfg.n_layers)])


def model_scores_names_filter(model, tokens, seq_len):
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: "pattern" in name)
    rows = [score_loop(cache[f"blocks.{l}.attn.hook_pattern"], seq_len) for l in range(model.cfg.n_layers)]
    return torch.stack(rows).clone()


# ---------------------------------------------------------------- 3.5 naming the heads (measured here)
MODEL = load_induction_model(device="cpu")
UNTRAINED = make_model(device="cpu", **STANDARD_CONFIG)


def _measure(model):
    """Induction scores [layer, head] and previous-token scores [layer, head] on the notebook's held-out tokens."""
    tokens = repeated_tokens(32, 23, model.cfg.d_vocab, seed=2)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", l] for l in range(model.cfg.n_layers)]
    return (torch.stack([_score(p, 23) for p in patterns]),
            torch.stack([_diag(p, 1).mean(dim=(0, 2)) for p in patterns]))


SCORES, PREVIOUS_ALL = _measure(MODEL)
PREVIOUS = PREVIOUS_ALL[0]
HEADS = [tuple(pair) for pair in (SCORES > 0.4).nonzero().tolist()]
PREV = (0, int(PREVIOUS.argmax()))
LAYER1_PREV = (1, int(PREVIOUS_ALL[1].argmax()))


# ---------------------------------------------------------------- 3.6 eigenvalue_positivity
def pos_singular(matrix):
    s = torch.linalg.svdvals(matrix)
    return s.sum(-1) / s.abs().sum(-1)


def pos_diagonal(matrix):
    d = matrix.diagonal(dim1=-2, dim2=-1)
    return d.sum(-1) / d.abs().sum(-1)


def pos_abs_numerator(matrix):
    lam = torch.linalg.eigvals(matrix)
    return (lam.sum(-1).abs() / lam.abs().sum(-1)).float()


def pos_real_denominator(matrix):
    lam = torch.linalg.eigvals(matrix)
    return lam.real.sum(-1) / lam.real.abs().sum(-1)


def pos_eigvalsh(matrix):
    lam = torch.linalg.eigvalsh(matrix)
    return lam.sum(-1) / lam.abs().sum(-1)


def pos_complex(matrix):
    lam = torch.linalg.eigvals(matrix)
    return lam.sum(-1) / lam.abs().sum(-1)


def pos_float64(matrix):
    lam = torch.linalg.eigvals(matrix.double())
    return lam.sum(-1).real / lam.abs().sum(-1)


def pos_no_dim(matrix):
    lam = torch.linalg.eigvals(matrix)
    return lam.sum().real / lam.abs().sum()


def pos_eig_tuple(matrix):
    lam = torch.linalg.eig(matrix)
    return lam.sum(-1).real / lam.abs().sum(-1)


def pos_mean_denominator(matrix):
    lam = torch.linalg.eigvals(matrix)
    return lam.sum(-1).real / lam.abs().mean(-1)


def pos_nuclear(matrix):
    return torch.diagonal(matrix, dim1=-2, dim2=-1).sum(-1) / torch.linalg.matrix_norm(matrix, ord="nuc")


def pos_modulus_of_sum(matrix):
    lam = torch.linalg.eigvals(matrix)
    return lam.sum(-1).real / lam.sum(-1).abs()


def pos_mean_numerator(matrix):
    lam = torch.linalg.eigvals(matrix)
    return lam.mean(-1).real / lam.abs().sum(-1)


def pos_eig_named(matrix):
    lam = torch.linalg.eig(matrix).eigenvalues
    return (lam.real.sum(-1) / lam.abs().sum(-1)).to(matrix.dtype)


def pos_trace(matrix):
    trace = matrix.diagonal(dim1=-2, dim2=-1).sum(-1)
    return trace / torch.linalg.eigvals(matrix).abs().sum(-1)


def pos_float64_cast_back(matrix):
    lam = torch.linalg.eigvals(matrix.to(torch.float64))
    return (lam.sum(-1).real / lam.abs().sum(-1)).to(matrix.dtype)


# ---------------------------------------------------------------- 3.7 k_composition_scores
def _pairs(W_V0, W_O0, W_Q1, W_K1, score):
    out = torch.empty(W_V0.shape[0], W_Q1.shape[0])
    for i in range(W_V0.shape[0]):
        for j in range(W_Q1.shape[0]):
            out[i, j] = score(W_V0[i] @ W_O0[i], W_Q1[j] @ W_K1[j].T)
    return out


def comp_q(W_V0, W_O0, W_Q1, W_K1):
    return _pairs(W_V0, W_O0, W_Q1, W_K1, lambda ov, qk: (ov @ qk).norm() / (ov.norm() * qk.norm()))


def comp_unnormalised(W_V0, W_O0, W_Q1, W_K1):
    return _pairs(W_V0, W_O0, W_Q1, W_K1, lambda ov, qk: (ov @ qk.T).norm())


def comp_squared(W_V0, W_O0, W_Q1, W_K1):
    return _pairs(W_V0, W_O0, W_Q1, W_K1, lambda ov, qk: (ov @ qk.T).norm() ** 2 / (ov.norm() ** 2 * qk.norm() ** 2))


def comp_spectral(W_V0, W_O0, W_Q1, W_K1):
    n = torch.linalg.matrix_norm
    return _pairs(W_V0, W_O0, W_Q1, W_K1, lambda ov, qk: n(ov @ qk.T, 2) / (n(ov, 2) * n(qk, 2)))


def comp_swapped_axes(W_V0, W_O0, W_Q1, W_K1):
    ov = torch.einsum("hmd,hdn->hmn", W_V0, W_O0)
    qk = torch.einsum("gmd,gnd->gmn", W_Q1, W_K1)
    prod = torch.einsum("hmn,gkn->ghmk", ov, qk)
    return prod.norm(dim=(-2, -1)) / (qk.norm(dim=(-2, -1))[:, None] * ov.norm(dim=(-2, -1))[None])


def comp_only_ov_norm(W_V0, W_O0, W_Q1, W_K1):
    ov = (W_V0 @ W_O0)[:, None]
    qk = (W_Q1 @ W_K1.mT)[None]
    return torch.linalg.matrix_norm(ov @ qk.mT) / torch.linalg.matrix_norm(ov)


def comp_factor_norms(W_V0, W_O0, W_Q1, W_K1):
    ov = (W_V0 @ W_O0)[:, None]
    qk = (W_Q1 @ W_K1.mT)[None]
    n = torch.linalg.matrix_norm
    return n(ov @ qk.mT) / ((n(W_V0) * n(W_O0))[:, None] * (n(W_Q1) * n(W_K1))[None])


def comp_no_broadcast(W_V0, W_O0, W_Q1, W_K1):
    ov = W_V0 @ W_O0
    qk = W_Q1 @ W_K1.transpose(-1, -2)
    n = torch.linalg.matrix_norm
    return n(ov @ qk.transpose(-1, -2)) / (n(ov) * n(qk))


def comp_dot_T(W_V0, W_O0, W_Q1, W_K1):
    ov = (W_V0 @ W_O0)[:, None]
    qk = (W_Q1 @ W_K1.T)[None]
    n = torch.linalg.matrix_norm
    return n(ov @ qk.transpose(-1, -2)) / (n(ov) * n(qk))


def comp_ov_backwards(W_V0, W_O0, W_Q1, W_K1):
    ov = (W_O0 @ W_V0)[:, None]
    qk = (W_Q1 @ W_K1.transpose(-1, -2))[None]
    n = torch.linalg.matrix_norm
    return n(ov @ qk.transpose(-1, -2)) / (n(ov) * n(qk))


def comp_qk_from_kq(W_V0, W_O0, W_Q1, W_K1):
    ov = (W_V0 @ W_O0)[:, None]
    qk = (W_K1 @ W_Q1.transpose(-1, -2))[None]   # meant as W_QK, but it is W_QK^T
    n = torch.linalg.matrix_norm
    return n(ov @ qk.transpose(-1, -2)) / (n(ov) * n(qk))


def comp_sum_normaliser(W_V0, W_O0, W_Q1, W_K1):
    return _pairs(W_V0, W_O0, W_Q1, W_K1, lambda ov, qk: (ov @ qk.T).norm() / (ov.norm() + qk.norm()))


def comp_vector_norm(W_V0, W_O0, W_Q1, W_K1):
    ov = (W_V0 @ W_O0)[:, None]
    qk = (W_Q1 @ W_K1.mT)[None]
    return (ov @ qk.mT).norm(dim=-1) / (ov.norm(dim=-1) * qk.norm(dim=-1))


def comp_only_qk_norm(W_V0, W_O0, W_Q1, W_K1):
    return _pairs(W_V0, W_O0, W_Q1, W_K1, lambda ov, qk: (ov @ qk.T).norm() / qk.norm())


def comp_floor_division(W_V0, W_O0, W_Q1, W_K1):
    return _pairs(W_V0, W_O0, W_Q1, W_K1, lambda ov, qk: (ov @ qk.T).norm() // (ov.norm() * qk.norm()))


def comp_never_filled(W_V0, W_O0, W_Q1, W_K1):
    scores = torch.zeros(W_V0.shape[0], W_Q1.shape[0])
    for i in range(W_V0.shape[0]):
        for j in range(W_Q1.shape[0]):
            ov, qk = W_V0[i] @ W_O0[i], W_Q1[j] @ W_K1[j].T
            score = (ov @ qk.T).norm() / (ov.norm() * qk.norm())  # noqa: F841  (never stored in scores)
    return scores


def comp_einsum(W_V0, W_O0, W_Q1, W_K1):
    ov = torch.einsum("hmd,hdn->hmn", W_V0, W_O0)
    qk = torch.einsum("gmd,gnd->gmn", W_Q1, W_K1)
    prod = torch.einsum("hmn,gkn->hgmk", ov, qk)
    return prod.pow(2).sum((-2, -1)).sqrt() / (ov.pow(2).sum((-2, -1)).sqrt()[:, None] * qk.pow(2).sum((-2, -1)).sqrt())


def comp_loop(W_V0, W_O0, W_Q1, W_K1):
    norm = torch.linalg.norm
    return _pairs(W_V0, W_O0, W_Q1, W_K1, lambda ov, qk: norm(ov @ qk.T) / (norm(ov) * norm(qk)))


def comp_float64(W_V0, W_O0, W_Q1, W_K1):
    V, O, Q, K = (w.double() for w in (W_V0, W_O0, W_Q1, W_K1))
    ov = (V @ O).unsqueeze(1)
    qk = (Q @ K.mT).unsqueeze(0)
    n = torch.linalg.matrix_norm
    return (n(ov @ qk.mT) / (n(ov) * n(qk))).float()


# ---------------------------------------------------------------- 3.8 the random baseline
D_MODEL, D_HEAD = STANDARD_CONFIG["d_model"], STANDARD_CONFIG["d_head"]


def _weights(draw, d_model=D_MODEL, d_head=D_HEAD, heads=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [draw(heads, a, b, generator=g) for a, b in ((d_model, d_head), (d_head, d_model), (d_model, d_head),
                                                       (d_model, d_head))]


def _ref_comp(*weights):
    with torch.no_grad():
        return circuits.k_composition_scores(*weights)


BASELINE_RAND = float(_ref_comp(*_weights(torch.rand)).mean())
BASELINE_SQUARED = float(comp_squared(*_weights(torch.randn, heads=10)).mean())
BASELINE_MAX = float(_ref_comp(*_weights(torch.randn)).max())
BASELINE_TENSOR = _ref_comp(*_weights(torch.randn))
BASELINE_UNNORMALISED = float(comp_unnormalised(*_weights(torch.randn, heads=10)).mean())
BASELINE_SPECTRAL = float(comp_spectral(*_weights(torch.randn, heads=8)).mean())
BASELINE_SMALL = float(_ref_comp(*_weights(torch.randn, d_model=D_HEAD)).mean())
BASELINE_TRAINED = float(_ref_comp(MODEL.W_V[0], MODEL.W_O[0], MODEL.W_Q[1], MODEL.W_K[1]).mean())
BASELINE_OTHER_SEED = float(_ref_comp(*_weights(torch.randn, seed=3)).mean())
BASELINE_CENTRED_UNIFORM = float(_ref_comp(*[2 * w - 1 for w in _weights(torch.rand, seed=1)]).mean())
_SAME_HEAD = torch.randn(1, D_MODEL, D_HEAD, generator=torch.Generator().manual_seed(1))
BASELINE_ONE_HEAD = float(_ref_comp(_SAME_HEAD, _SAME_HEAD.transpose(1, 2), _SAME_HEAD, _SAME_HEAD).mean())
BASELINE_SCALED = float(_ref_comp(*[w / math.sqrt(D_MODEL) for w in _weights(torch.randn, heads=30, seed=2)]).mean())


# ---------------------------------------------------------------- 3.9 icl_score
def icl_flipped(losses, early, late):
    return losses[:, early].mean() - losses[:, late].mean()


def icl_single(losses, early, late):
    return (losses[:, late.start] - losses[:, early.start]).mean()


def icl_ratio(losses, early, late):
    return losses[:, late].mean() / losses[:, early].mean()


def icl_sums(losses, early, late):
    return (losses[:, late].sum(1) - losses[:, early].sum(1)).mean()


def icl_batch_sliced(losses, early, late):
    return losses[late].mean() - losses[early].mean()


def icl_window_short(losses, early, late):
    return losses[:, late.start:late.stop - 1].mean() - losses[:, early.start:early.stop - 1].mean()


def icl_notebook_windows(losses, early, late):
    return losses[:, 55:63].mean() - losses[:, 4:10].mean()


def icl_per_row(losses, early, late):
    return losses[:, late].mean(dim=1) - losses[:, early].mean(dim=1)


def icl_item(losses, early, late):
    return (losses[:, late].mean() - losses[:, early].mean()).item()


def icl_magnitude(losses, early, late):
    return (losses[:, late].mean() - losses[:, early].mean()).abs()


def icl_window_long(losses, early, late):
    return losses[:, late.start:late.stop + 1].mean() - losses[:, early.start:early.stop + 1].mean()


def icl_window_ends(losses, early, late):
    return (losses[:, late.stop - 1] - losses[:, early.stop - 1]).mean()


def icl_row_differences(losses, early, late):
    return (losses[:, late].mean(-1) - losses[:, early].mean(-1)).mean()


def icl_narrow(losses, early, late):
    width = lambda s: s.stop - s.start  # noqa: E731
    return (losses.narrow(1, late.start, width(late)).mean()
            - losses.narrow(1, early.start, width(early)).mean())


# ---------------------------------------------------------------- the catalogue
def _m(check, answers, kind, expect):
    return Mistake(check, answers, kind, expect)


TOKENS, LOSS, SCORE = nb3.check_generate_repeated_tokens, nb3.check_per_token_loss, nb3.check_induction_score
MODEL_SCORES, ROLES, POS = nb3.check_induction_scores_of_model, nb3.check_head_roles, nb3.check_eigenvalue_positivity
COMP, BASE = nb3.check_k_composition_scores, nb3.check_random_baseline
ICL, ANSWERS = nb3.check_icl_score, nb3.check_icl_answers

MISTAKES = [
    # 3.1
    _m(TOKENS, (tokens_from_zero,), "R drawn from 0, so BOS inside R", "R contains token 0"),
    _m(TOKENS, (tokens_high_too_low,), "randint's upper bound taken as inclusive", "upper bound is exclusive"),
    _m(TOKENS, (tokens_no_bos,), "BOS forgotten", "BOS token is missing"),
    _m(TOKENS, (tokens_one_copy,), "R only once", "only one copy"),
    _m(TOKENS, (tokens_two_draws,), "two separate draws for the copies", "second copy differs"),
    _m(TOKENS, (tokens_unseeded,), "global RNG, no generator", "same seed gave different tokens"),
    _m(TOKENS, (tokens_same_row,), "one R repeated for every row", "every row has the same R"),
    _m(TOKENS, (tokens_float_bos,), "float BOS column makes cat float", "torch.long"),
    _m(TOKENS, (tokens_cat_default_dim,), "torch.cat along the default dim 0", "Pass dim=1"),
    _m(TOKENS, (tokens_flat_bos,), "BOS piece of shape [batch]", "different numbers of axes"),
    _m(TOKENS, (tokens_generator_is_seed,), "generator=seed", "generator= takes a torch.Generator"),
    _m(TOKENS, (tokens_seed_ignored,), "generator seeded with a constant", "`seed` argument is ignored"),
    _m(TOKENS, (tokens_bos_at_end,), "BOS at the end", "position 0 must be the BOS"),
    _m(TOKENS, (tokens_columns,), "sequences as columns", "transposed"),
    _m(TOKENS, (tokens_int32,), "int32 token ids", "torch.long"),
    _m(TOKENS, (tokens_rounded,), "round() makes the end tokens half as likely", "far from uniform"),
    # 3.2
    _m(LOSS, (loss_no_shift,), "no shift: each position scored on its own token", "scored against its own token"),
    _m(LOSS, (loss_shift_backwards,), "shift the wrong way", "shift goes the wrong way"),
    _m(LOSS, (loss_mean,), "mean over everything", "single number"),
    _m(LOSS, (loss_not_negated,), "log-probabilities, not negated", "minus the log-probability"),
    _m(LOSS, (loss_probabilities,), "probabilities instead of log-probabilities", "probabilities instead of log"),
    _m(LOSS, (loss_raw_logits,), "raw logits, no log_softmax", "not normalised"),
    _m(LOSS, (loss_softmax_over_positions,), "log_softmax over positions", "wrong axis"),
    _m(LOSS, (loss_bits,), "log base 2", "log base 2"),
    _m(LOSS, (loss_log10,), "log base 10", "log base 10"),
    _m(LOSS, (loss_flattened,), "flattened for cross_entropy, not reshaped back", "flat vector"),
    _m(LOSS, (loss_class_axis_last,), "cross_entropy with the class axis last", "class (vocabulary) axis second"),
    _m(LOSS, (loss_fancy_index,), "fancy index with the whole target tensor", "gather(-1, targets[..., None])"),
    _m(LOSS, (loss_arange_index,), "arange indices that do not broadcast", "must broadcast"),
    _m(LOSS, (loss_gather_no_unsqueeze,), "gather without the extra axis", "as many axes"),
    _m(LOSS, (loss_own_token,), "logits[:, 1:] with tokens[:, 1:]", "its own position"),
    _m(LOSS, (loss_batch_mean,), "mean over the batch", "`batch` axis (size 3) is missing"),
    _m(LOSS, (loss_in_place,), "log_softmax done in place on the logits", "in place"),
    _m(LOSS, (loss_float64,), "float64 result not cast back", "dtype torch.float64"),
    _m(LOSS, (loss_all_targets,), "targets not shifted for gather", "don't line up"),
    _m(LOSS, (loss_targets_unshifted,), "logits[:, :-1] with tokens[:, :-1]", "logits[:, :-1] with tokens[:, :-1]"),
    _m(LOSS, (loss_softmax_over_batch,), "log_softmax over the batch", "not over the batch"),
    _m(LOSS, (loss_softmax_floor_division,), "softmax by hand with a floor division", "a floor division //"),
    # 3.3
    _m(SCORE, (score_duplicate,), "duplicate-token offset seq_len", "duplicate-token"),
    _m(SCORE, (score_whole_stripe,), "whole stripe, first-copy queries included", "first copy"),
    _m(SCORE, (score_no_bos,), "queries shifted as if there were no BOS", "as if there were no BOS"),
    _m(SCORE, (score_offset_minus_two,), "offset seq_len - 2", "off by one"),
    _m(SCORE, (score_offset_plus_one,), "offset seq_len + 1", "token *before* the earlier copy"),
    _m(SCORE, (score_above_diagonal,), "stripe above the diagonal (pattern read as [k, q])", "[k_pos, q_pos]"),
    _m(SCORE, (score_everything_averaged,), "mean over every axis", "single number"),
    _m(SCORE, (score_loop_short,), "range of queries one short", "last query is missing"),
    _m(SCORE, (score_loop_past_end,), "range of queries one too long", "went past the end"),
    _m(SCORE, (score_summed,), "sum over queries", "summed"),
    _m(SCORE, (score_heads_averaged,), "mean over heads, queries kept", "one per query position"),
    _m(SCORE, (score_batch_kept,), "batch not averaged", "extra axis of size 2 at position 0"),
    _m(SCORE, (score_duplicate_whole_stripe,), "the whole duplicate-token stripe", "(offset seq_len);"),
    _m(SCORE, (score_floor_division,), "floor division // for the mean", "floor division (//)"),
    # 3.4 (composite: the score's own mistakes inside)
    _m(MODEL_SCORES, (model_scores_reversed,), "layers in reverse order", "reverse order"),
    _m(MODEL_SCORES, (model_scores_last_layer,), "last layer for every row", "last layer"),
    _m(MODEL_SCORES, (model_scores_layer_zero,), "layer 0 for every row", "layer 0's scores"),
    _m(MODEL_SCORES, (model_scores_cat,), "torch.cat instead of torch.stack", "torch.cat joined"),
    _m(MODEL_SCORES, (model_scores_list,), "a list of rows", "torch.stack"),
    _m(MODEL_SCORES, (model_scores_first_sequence,), "only the first sequence scored", "only the first sequence"),
    _m(MODEL_SCORES, (model_scores_fixed_length,), "seq_len hard-coded to 23", "|R| = 23"),
    _m(MODEL_SCORES, (model_scores_duplicate,), "duplicate-token score inside", "duplicate-token"),
    _m(MODEL_SCORES, (model_scores_wrong_key,), "cache key 'patterns'", "no such entry"),
    _m(MODEL_SCORES, (model_scores_one_layer,), "only layer 1's row", "one row"),
    _m(MODEL_SCORES, (model_scores_whole_stripe,), "first-copy queries included inside", "first copy"),
    _m(MODEL_SCORES, (model_scores_with(score_duplicate_whole_stripe),), "whole duplicate-token stripe inside",
       "(offset seq_len);"),
    _m(MODEL_SCORES, (model_scores_with(score_no_bos),), "queries shifted as if there were no BOS, inside",
       "as if there were no BOS"),
    _m(MODEL_SCORES, (model_scores_with(score_offset_minus_two),), "offset seq_len - 2 inside",
       "not i - (seq_len - 2)"),
    _m(MODEL_SCORES, (model_scores_with(score_offset_plus_one),), "offset seq_len + 1 inside",
       "token *before* the earlier copy"),
    _m(MODEL_SCORES, (model_scores_with(score_above_diagonal),), "pattern read as [k, q] inside", "[k_pos, q_pos]"),
    _m(MODEL_SCORES, (model_scores_with(score_floor_division),), "floor division inside", "floor division (//)"),
    _m(MODEL_SCORES, (model_scores_with(score_loop_short),), "range of queries one short, inside",
       "last query is missing"),
    _m(MODEL_SCORES, (model_scores_with(score_summed),), "sum over queries inside", "summed over the queries"),
    # 3.5
    _m(ROLES, (MODEL, HEADS + [PREV], PREV), "previous-token head listed as an induction head",
       "layer-0 head cannot be"),
    _m(ROLES, (MODEL, HEADS, (0, int(PREVIOUS.argmin()))), "argmin for the previous-token head",
       "previous_token_head should be the layer-0 head"),
    _m(ROLES, (MODEL, HEADS, PREV[1]), "previous-token head as a bare index", "one (layer, head) pair"),
    _m(ROLES, (MODEL, (SCORES.flatten() > 0.4).nonzero().flatten().tolist(), PREV), "flat indices",
       "list of (layer, head) pairs"),
    _m(ROLES, (UNTRAINED, HEADS, PREV), "an untrained model passed", "no head with an induction score above"),
    _m(ROLES, (MODEL, HEADS[1:], PREV), "one induction head left out", "missing ("),
    _m(ROLES, (MODEL, HEADS, LAYER1_PREV), "previous-token head looked for in layer 1", "not in layer 0"),
    _m(ROLES, (MODEL, [f"{l}.{h}" for l, h in HEADS], PREV), "heads as strings", "list of (layer, head) pairs"),
    _m(ROLES, (MODEL, SCORES, PREV), "the score grid passed as the heads", "list of (layer, head) pairs"),
    _m(ROLES, (MODEL, [], PREV), "empty list", "missing ("),
    # 3.6
    _m(POS, (pos_singular,), "singular values", "singular values"),
    _m(POS, (pos_diagonal,), "diagonal entries", "diagonal entries"),
    _m(POS, (pos_abs_numerator,), "|Σλ| in the numerator", "lost its sign"),
    _m(POS, (pos_real_denominator,), "Σ|Re λ| in the denominator", "complex modulus"),
    _m(POS, (pos_eigvalsh,), "eigvalsh on a non-symmetric matrix", "eigvalsh"),
    _m(POS, (pos_complex,), "complex result, no .real", "complex numbers"),
    _m(POS, (pos_float64,), "float64 not cast back", "dtype torch.float64"),
    _m(POS, (pos_no_dim,), "sums over the whole batch", "single number"),
    _m(POS, (pos_eig_tuple,), "torch.linalg.eig's pair used as eigenvalues", "(eigenvalues, eigenvectors)"),
    _m(POS, (pos_mean_denominator,), "mean of |λ| in the denominator", "denominator is a mean"),
    _m(POS, (pos_nuclear,), "trace over nuclear norm", "nuclear norm"),
    _m(POS, (pos_modulus_of_sum,), "|Σλ| in the denominator", "modulus of the sum"),
    _m(POS, (pos_mean_numerator,), "mean of λ in the numerator", "numerator is a mean"),
    # 3.7
    _m(COMP, (comp_q,), "Q-composition", "Q-composition"),
    _m(COMP, (comp_unnormalised,), "not normalised", "not normalised"),
    _m(COMP, (comp_squared,), "squared norms", "squared the norms"),
    _m(COMP, (comp_spectral,), "spectral norm", "Frobenius"),
    _m(COMP, (comp_swapped_axes,), "output [head1, head0]", "[head1, head0]"),
    _m(COMP, (comp_only_ov_norm,), "normaliser without ||W_QK||", "missing ||W_QK||_F"),
    _m(COMP, (comp_factor_norms,), "norms of the four factors", "four factors"),
    _m(COMP, (comp_no_broadcast,), "no [:, None] / [None] for pairs", "[:, None]"),
    _m(COMP, (comp_dot_T,), ".T on a 3-D tensor", ".mT"),
    _m(COMP, (comp_ov_backwards,), "W_O0 @ W_V0", "not W_O0 @ W_V0"),
    _m(COMP, (comp_qk_from_kq,), "W_QK built as W_K W_Q^T, then transposed", "Q-composition"),
    _m(COMP, (comp_sum_normaliser,), "sum of norms as normaliser", "a sum where the formula has a product"),
    _m(COMP, (comp_vector_norm,), "vector norms over the last axis", "extra axis of size 10"),
    _m(COMP, (comp_only_qk_norm,), "normaliser without ||W_OV||", "missing ||W_OV||_F"),
    _m(COMP, (comp_floor_division,), "floor division // for the ratio", "floor division (//)"),
    _m(COMP, (comp_never_filled,), "scores computed in a loop but never stored", "never filled in"),
    # 3.8
    _m(BASE, (BASELINE_RAND,), "torch.rand weights", "torch.rand"),
    _m(BASE, (BASELINE_SQUARED,), "squared scores", "*squared* scores"),
    _m(BASE, (BASELINE_MAX,), "max instead of mean", "largest score"),
    _m(BASE, (BASELINE_TENSOR,), "the [head0, head1] grid, not averaged", "one number, the mean"),
    _m(BASE, (1 / math.sqrt(D_MODEL),), "typed 1/sqrt(d_model)", "exactly 1/sqrt(d_model)"),
    _m(BASE, (BASELINE_SMALL,), "d_head x d_head matrices", "d_head x d_head"),
    _m(BASE, (BASELINE_UNNORMALISED,), "unnormalised scores", "not normalised"),
    _m(BASE, (BASELINE_SPECTRAL,), "spectral norms", "spectral norms"),
    _m(BASE, ("0.125",), "a string", "one number"),
    _m(BASE, (BASELINE_TRAINED,), "the trained model's mean score", "trained model"),
    _m(BASE, (1 / D_MODEL,), "typed 1/d_model (1/64)", "exactly 1/d_model"),
    _m(BASE, (1 / D_HEAD,), "typed 1/d_head", "exactly 1/d_head"),
    _m(BASE, (1 / math.sqrt(D_HEAD),), "typed 1/sqrt(d_head)", "exactly 1/sqrt(d_head)"),
    _m(BASE, (0.0156,), "typed 0.0156", "a round number"),
    _m(BASE, (torch.tensor(0.25),), "a typed 0-d tensor", "exactly 1/sqrt(d_head)"),
    _m(BASE, (2,), "typed an int", "a round number"),
    _m(BASE, (BASELINE_ONE_HEAD,), "one head's weights used for all four matrices",
       "with torch.randn in the shapes of the model's weights"),
    # 3.9
    _m(ICL, (icl_flipped,), "early minus late", "sign is flipped"),
    _m(ICL, (icl_single,), "single positions", "single positions"),
    _m(ICL, (icl_ratio,), "ratio", "ratio"),
    _m(ICL, (icl_sums,), "sums over the windows", "sums over the windows"),
    _m(ICL, (icl_batch_sliced,), "windows applied to the batch axis", "slices the *batch* axis"),
    _m(ICL, (icl_window_short,), "windows one position short", "one position short"),
    _m(ICL, (icl_notebook_windows,), "the notebook's windows hard-coded", "not the `early` and `late` passed in"),
    _m(ICL, (icl_per_row,), "one score per sequence", "extra axis of size 4"),
    _m(ICL, (icl_item,), ".item()", "Python float"),
    _m(ICL, (icl_magnitude,), "magnitude instead of the signed score", "sign is flipped"),
    _m(ICL, (icl_window_long,), "windows one position too long", "one position too long"),
    _m(ICL, (icl_window_ends,), "the windows' last positions", "the windows' ends"),
    # 3.10
    _m(ANSWERS, ({"control_icl": "a", "icl_alone": "b"},), "control has a hidden induction head", "stays near chance"),
    _m(ANSWERS, ({"control_icl": "c", "icl_alone": "b"},), "positions get sharper", "says nothing about which token"),
    _m(ANSWERS, ({"control_icl": "d", "icl_alone": "b"},), "later positions trained more", "trained equally often"),
    _m(ANSWERS, ({"control_icl": "b", "icl_alone": "a"},), "negative ICL proves induction", "no induction head"),
    _m(ANSWERS, ({"control_icl": "b", "icl_alone": "c"},), "only on [BOS] R R", "choice of sequence"),
    _m(ANSWERS, ({"control_icl": "b", "icl_alone": "d"},), "flip the sign for 1 layer", "same for every model"),
    _m(ANSWERS, (["b", "b"],), "a list, not a dict", "must be a dict"),
    _m(ANSWERS, ({"control_icl": "b"},), "one answer left out", "must be a dict"),
    _m(ANSWERS, ({"control_icl": "b", "icl_alone": "yes"},), "not a letter", "choose one of"),
]

_HIDDEN_TOKENS = hidden("nb3", "check_generate_repeated_tokens")
_HIDDEN_LOSS = hidden("nb3", "check_per_token_loss")
_HIDDEN_SCORE = hidden("nb3", "check_induction_score")
_HIDDEN_MODEL = hidden("nb3", "check_induction_scores_of_model")
_HIDDEN_POS = hidden("nb3", "check_eigenvalue_positivity")
_HIDDEN_COMP = hidden("nb3", "check_k_composition_scores")
_HIDDEN_ICL = hidden("nb3", "check_icl_score")

CORRECT = [
    Correct(TOKENS, (tokens_global_seed,), "torch.manual_seed and full(), cat on dim -1", _HIDDEN_TOKENS),
    Correct(TOKENS, (tokens_numpy,), "numpy Generator", _HIDDEN_TOKENS),
    Correct(TOKENS, (tokens_repeat,), "r.repeat(1, 2) into a zeros tensor", _HIDDEN_TOKENS),
    Correct(TOKENS, (tokens_floor_of_uniform,), "floor of a uniform draw", _HIDDEN_TOKENS),
    Correct(LOSS, (lambda logits, tokens: F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:],
                                                          reduction="none"),), "F.cross_entropy, reduction none",
            _HIDDEN_LOSS),
    Correct(LOSS, (loss_one_hot,), "one-hot dot log-probabilities", _HIDDEN_LOSS),
    Correct(LOSS, (loss_nll,), "F.nll_loss on log_softmax", _HIDDEN_LOSS),
    Correct(LOSS, (loss_float64_cast_back,), "float64 intermediates cast back", _HIDDEN_LOSS),
    Correct(LOSS, (loss_logsumexp,), "logsumexp minus the picked logit", _HIDDEN_LOSS),
    Correct(SCORE, (score_loop,), "loop over second-copy queries", _HIDDEN_SCORE),
    Correct(SCORE, (score_arange,), "arange indexing", _HIDDEN_SCORE),
    Correct(SCORE, (score_mask,), "a mask of the stripe", _HIDDEN_SCORE),
    Correct(MODEL_SCORES, (model_scores_hooks,), "run_with_hooks collecting the patterns", _HIDDEN_MODEL),
    Correct(MODEL_SCORES, (model_scores_names_filter,), "names_filter, inference_mode, string keys", _HIDDEN_MODEL),
    Correct(ROLES, (MODEL, [list(pair) for pair in HEADS], PREV), "pairs as lists from .tolist()"),
    Correct(ROLES, (MODEL, (SCORES > 0.4).nonzero(), (torch.tensor(0), PREVIOUS.argmax())),
            "the .nonzero() tensor and tensor indices"),
    Correct(ROLES, (MODEL, set(HEADS), list(PREV)), "a set of tuples, a list pair"),
    Correct(POS, (pos_eig_named,), "torch.linalg.eig(...).eigenvalues", _HIDDEN_POS),
    Correct(POS, (pos_trace,), "the trace as the numerator", _HIDDEN_POS),
    Correct(POS, (pos_float64_cast_back,), "float64 eigenvalues cast back", _HIDDEN_POS),
    Correct(COMP, (comp_einsum,), "einsum and explicit Frobenius norms", _HIDDEN_COMP),
    Correct(COMP, (comp_loop,), "loop over pairs", _HIDDEN_COMP),
    Correct(COMP, (comp_float64,), "float64 intermediates cast back", _HIDDEN_COMP),
    Correct(BASE, (BASELINE_OTHER_SEED,), "another seed"),
    Correct(BASE, (BASELINE_CENTRED_UNIFORM,), "zero-mean uniform weights"),
    Correct(BASE, (BASELINE_SCALED,), "Gaussian weights scaled like an initialisation"),
    Correct(BASE, (torch.tensor(BASELINE_SCALED),), "a 0-d tensor"),
    Correct(ICL, (icl_row_differences,), "mean of per-sequence differences", _HIDDEN_ICL),
    Correct(ICL, (icl_narrow,), "narrow() windows", _HIDDEN_ICL),
    Correct(ANSWERS, ({"control_icl": " B", "icl_alone": "b"},), "upper case with a space"),
]


# ================================================================ symptom classes (issue 18), written as students would
def tokens_randperm_rows(batch, seq_len, d_vocab, seed=0):
    g = _gen(seed)
    r = torch.stack([torch.randperm(d_vocab - 1, generator=g)[:seq_len] + 1 for _ in range(batch)])
    return torch.cat([_bos_col(batch), r, r], dim=1)


def tokens_multinomial(batch, seq_len, d_vocab, seed=0):
    weights = torch.ones(batch, d_vocab - 1)
    r = torch.multinomial(weights, seq_len, generator=_gen(seed)) + 1
    return torch.cat([_bos_col(batch), r, r], dim=1)


def loss_half_precision(logits, tokens):
    logprobs = logits.half().log_softmax(dim=-1).float()
    return -logprobs[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]


def loss_numpy(logits, tokens):
    logprobs = torch.log_softmax(logits, dim=-1).numpy()
    b, p = np.indices(tokens[:, 1:].shape)
    return -logprobs[b, p, tokens[:, 1:].numpy()]


MISTAKES += [
    Mistake(TOKENS, (tokens_randperm_rows,), "R from randperm: no repeats within a row", "without replacement",
            symptom="samples"),
    Mistake(TOKENS, (tokens_multinomial,), "R from multinomial, replacement left False", "without replacement",
            symptom="samples"),
    Mistake(LOSS, (loss_half_precision,), "log_softmax in float16, cast back", "float16", symptom="float16"),
    Mistake(LOSS, (loss_numpy,), "NumPy result", "NumPy array", symptom="numpy/device"),
]


# engine symptoms: an off by one along positions and a sum for a mean, named by the engine (no Bug of nb3's)
def loss_rolled_targets(logits, tokens):
    """The targets by torch.roll, every position scored, then the wrong end dropped (the first, not the last)."""
    targets = tokens.roll(-1, dims=1)
    losses = -F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return losses[:, 1:]


def icl_sum_over_batch(losses, early, late):
    """Each row's window means, then the rows summed instead of averaged."""
    per_row = losses[:, late].mean(dim=1) - losses[:, early].mean(dim=1)
    return per_row.sum()


MISTAKES += [
    Mistake(LOSS, (loss_rolled_targets,), "torch.roll targets, the first entry dropped",
            "shifted one position earlier along `pos - 1`", symptom="off by one"),
    Mistake(ICL, (icl_sum_over_batch,), "rows summed, not averaged", "4 times the expected one", symptom="sum/mean"),
]


# ================================================================ a blind pass over the exercises (helper mist23)
def loss_softmax_over_kept_positions(logits, tokens):
    log_probs = logits[:, :-1].log_softmax(dim=1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]


def score_drops_one(pattern, seq_len):
    return pattern.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)[..., 1:].mean(dim=(0, -1))


def score_loop_from_seq_len(pattern, seq_len):
    rows = [pattern[:, :, i, i - seq_len + 1] for i in range(seq_len, 2 * seq_len + 1)]
    return torch.stack(rows, dim=-1).mean(dim=(0, -1))


def score_half(pattern, seq_len):
    stripe = pattern.half().diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)
    return stripe[..., 2:].mean(dim=(0, -1)).float()


def _stripe_score(pattern, seq_len):
    return pattern.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)[..., 2:].mean(dim=(0, -1))


def model_scores_notebook_model(model, tokens, seq_len):
    with torch.no_grad():
        _, cache = MODEL.run_with_cache(tokens)
    return torch.stack([_stripe_score(cache["pattern", l], seq_len) for l in range(MODEL.cfg.n_layers)])


def model_scores_seq_len_plus_one(model, tokens, seq_len):
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return torch.stack([_stripe_score(cache["pattern", l], seq_len + 1) for l in range(model.cfg.n_layers)])


def pos_half_result(matrix):
    eig = torch.linalg.eigvals(matrix)
    return (eig.sum(-1).real / eig.abs().sum(-1)).half().float()


def _ov_qk(W_V0, W_O0, W_Q1, W_K1):
    return (W_V0 @ W_O0)[:, None], (W_Q1 @ W_K1.transpose(-1, -2))[None]


def comp_reversed(W_V0, W_O0, W_Q1, W_K1):
    ov, qk = _ov_qk(W_V0, W_O0, W_Q1, W_K1)
    norm = torch.linalg.matrix_norm
    return norm(qk.transpose(-1, -2) @ ov) / (norm(ov) * norm(qk))


def comp_elementwise(W_V0, W_O0, W_Q1, W_K1):
    ov, qk = _ov_qk(W_V0, W_O0, W_Q1, W_K1)
    norm = torch.linalg.matrix_norm
    return norm(ov * qk.transpose(-1, -2)) / (norm(ov) * norm(qk))


def comp_nuclear(W_V0, W_O0, W_Q1, W_K1):
    ov, qk = _ov_qk(W_V0, W_O0, W_Q1, W_K1)
    norm = lambda x: torch.linalg.matrix_norm(x, ord="nuc")  # noqa: E731
    return norm(ov @ qk.transpose(-1, -2)) / (norm(ov) * norm(qk))


def comp_squared_denominator(W_V0, W_O0, W_Q1, W_K1):
    ov, qk = _ov_qk(W_V0, W_O0, W_Q1, W_K1)
    norm = torch.linalg.matrix_norm
    return norm(ov @ qk.transpose(-1, -2)) / (norm(ov) ** 2 * norm(qk) ** 2)


def icl_total_sums(losses, early, late):
    return losses[:, late].sum() - losses[:, early].sum()


def tokens_rows_ok(batch, seq_len, d_vocab, seed=0):
    g = _gen(seed)
    rows = []
    for _ in range(batch):
        r = torch.randint(1, d_vocab, (seq_len,), generator=g)
        rows.append(torch.cat([torch.tensor([0]), r, r]))
    return torch.stack(rows)


def tokens_multinomial_replacement_ok(batch, seq_len, d_vocab, seed=0):
    r = torch.multinomial(torch.ones(batch, d_vocab - 1), seq_len, replacement=True, generator=_gen(seed)) + 1
    return torch.cat([_bos_col(batch), r, r], dim=1)


def score_second_half_diagonal_ok(pattern, seq_len):
    return pattern[..., seq_len + 1:, :].diagonal(offset=2, dim1=-2, dim2=-1).mean(dim=(0, -1))


def comp_key_query_loops_ok(W_V0, W_O0, W_Q1, W_K1):
    out = torch.zeros(W_V0.shape[0], W_Q1.shape[0])
    for a in range(W_V0.shape[0]):
        ov = W_V0[a] @ W_O0[a]
        for b in range(W_Q1.shape[0]):
            qk_t = W_K1[b] @ W_Q1[b].T
            out[a, b] = (ov @ qk_t).norm() / (ov.norm() * qk_t.norm())
    return out


def pos_real_parts_ok(matrix):
    eig = torch.linalg.eigvals(matrix.mT)
    return (eig.real.sum(-1) / eig.abs().sum(-1)).to(matrix.dtype)


MISTAKES += [
    Mistake(LOSS, (loss_softmax_over_kept_positions,), "log_softmax over the kept positions (dim=1)",
            "not over positions"),
    Mistake(SCORE, (score_drops_one,), "stripe[..., 1:]: query seq_len scored too", "averaged over queries",
            symptom="off by one"),
    Mistake(SCORE, (score_loop_from_seq_len,), "loop from query seq_len", "averaged over queries",
            symptom="off by one"),
    Mistake(SCORE, (score_half,), "float16 stripe, cast back", "float16", symptom="float16"),
    Mistake(MODEL_SCORES, (model_scores_notebook_model,), "the notebook's model instead of the argument",
            "in place of the argument `model`", symptom="global"),
    Mistake(MODEL_SCORES, (model_scores_seq_len_plus_one,), "seq_len + 1", "for seq_len = 18", symptom="off by one"),
    Mistake(POS, (pos_half_result,), "float16 result, within tolerance", "float16", symptom="float16"),
    Mistake(COMP, (comp_reversed,), "W_QK^T @ W_OV", "wrong order"),
    Mistake(COMP, (comp_elementwise,), "element-wise product", "element by element"),
    Mistake(COMP, (comp_nuclear,), "nuclear norms", "nuclear norm"),
    Mistake(COMP, (comp_squared_denominator,), "squared norms below only", "denominator are squared"),
    Mistake(ICL, (icl_total_sums,), "sums over windows and batch", "sums over the windows and the batch",
            symptom="sum/mean"),
]

CORRECT += [
    Correct(TOKENS, (tokens_rows_ok,), "row by row from one generator", _HIDDEN_TOKENS),
    Correct(TOKENS, (tokens_multinomial_replacement_ok,), "multinomial with replacement", _HIDDEN_TOKENS),
    Correct(SCORE, (score_second_half_diagonal_ok,), "second-copy rows, then diagonal offset 2", _HIDDEN_SCORE),
    Correct(POS, (pos_real_parts_ok,), "real parts summed, eigenvalues of the transpose", _HIDDEN_POS),
    Correct(COMP, (comp_key_query_loops_ok,), "loops with W_K W_Q^T", _HIDDEN_COMP),
]
