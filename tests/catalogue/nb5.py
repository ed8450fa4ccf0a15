"""Notebook 5 (a language model of real text): mistakes students make, and correct alternatives.

Every function below is written the way a student would write it, independently of the checks' ``Bug``s.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from catalogue import Correct, Mistake, hidden
from induction_course.checks import nb5
from induction_course.circuits import per_token_loss
from induction_course.heads import induction_score, previous_token_score


def H(check) -> dict:  # noqa: N802  (the master's hidden parameters of nb5.<check>, never copied here)
    return hidden("nb5", check.id.split(".")[1])


# ================================================================ 5.1 text ICL score
def icl_early_minus_late(losses, width=5):
    n = losses.shape[1]
    e, l = round(0.1 * n) - width // 2, min(round(0.98 * n) - width // 2, n - width)
    return losses[:, e:e + width].mean() - losses[:, l:l + width].mean()


def icl_fixed_windows(losses, width=5):
    return losses[:, 55:63].mean() - losses[:, 4:10].mean()


def icl_single_positions(losses, width=5):
    n = losses.shape[1]
    return losses[:, min(round(0.98 * n), n - 1)].mean() - losses[:, round(0.1 * n)].mean()


def icl_windows_from_centre(losses, width=5):
    n = losses.shape[1]
    e = round(0.1 * n)
    l = min(round(0.98 * n), n - width)
    return losses[:, l:l + width].mean() - losses[:, e:e + width].mean()


def icl_batch_axis(losses, width=5):
    b = losses.shape[0]
    s, e = max(0, min(round(0.98 * b) - width // 2, b - width)), max(0, min(round(0.1 * b) - width // 2, b - width))
    return losses[:, s:s + width].mean() - losses[:, e:e + width].mean()


def icl_python_float(losses, width=5):
    n = losses.shape[1]
    e, l = round(0.1 * n) - width // 2, min(round(0.98 * n) - width // 2, n - width)
    return float(losses[:, l:l + width].mean() - losses[:, e:e + width].mean())


def icl_not_written(losses, width=5):
    raise NotImplementedError()


def icl_loop(losses, width=5):
    n = losses.shape[-1]
    early_start = int(round(n / 10)) - width // 2
    late_start = min(int(round(n * 0.98)) - width // 2, n - width)
    late = torch.stack([losses[:, late_start + k] for k in range(width)]).mean()
    early = torch.stack([losses[:, early_start + k] for k in range(width)]).mean()
    return late - early


def icl_per_row(losses, width=5):
    n = losses.shape[-1]
    e, l = round(0.1 * n) - width // 2, min(round(0.98 * n) - width // 2, n - width)
    return (losses[:, l:l + width].mean(dim=1) - losses[:, e:e + width].mean(dim=1)).mean()


# ================================================================ 5.2 both scores
def scores_swapped(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    prev = torch.stack([previous_token_score(cache["pattern", l]) for l in range(model.cfg.n_layers)])
    ind = torch.stack([induction_score(cache["pattern", l], seq_len) for l in range(model.cfg.n_layers)])
    return ind, prev


def scores_layer_zero_only(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    p = cache["pattern", 0]
    return (torch.stack([previous_token_score(p)] * model.cfg.n_layers),
            torch.stack([induction_score(p, seq_len)] * model.cfg.n_layers))


def scores_same_token(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", l] for l in range(model.cfg.n_layers)]
    ind = [p.diagonal(offset=-seq_len, dim1=-2, dim2=-1)[..., 1:].mean(dim=(0, -1)) for p in patterns]
    return torch.stack([previous_token_score(p) for p in patterns]), torch.stack(ind)


def scores_with_bos(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", l] for l in range(model.cfg.n_layers)]
    return (torch.stack([previous_token_score(p) for p in patterns]),
            torch.stack([induction_score(p, seq_len + 1) for p in patterns]))


def scores_self_attention(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", l] for l in range(model.cfg.n_layers)]
    return (torch.stack([p.diagonal(dim1=-2, dim2=-1).mean(dim=(0, -1)) for p in patterns]),
            torch.stack([induction_score(p, seq_len) for p in patterns]))


def scores_whole_stripe(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", layer] for layer in range(model.cfg.n_layers)]
    ind = [p.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1).mean(dim=(0, -1)) for p in patterns]
    return torch.stack([previous_token_score(p) for p in patterns]), torch.stack(ind)


def scores_misspelled_name(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    patterns = [cache[f"blocks.{layer}.attn.pattern"] for layer in range(model.cfg.n_layers)]
    return (torch.stack([previous_token_score(p) for p in patterns]),
            torch.stack([induction_score(p, seq_len) for p in patterns]))


def scores_next_layer(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", layer + 1] for layer in range(model.cfg.n_layers)]
    return (torch.stack([previous_token_score(p) for p in patterns]),
            torch.stack([induction_score(p, seq_len) for p in patterns]))


def scores_by_hand(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    prev, ind = [], []
    for layer in range(model.cfg.n_layers):
        p = cache[f"blocks.{layer}.attn.hook_pattern"]
        q = torch.arange(1, p.shape[-1])
        prev.append(p[:, :, q, q - 1].mean(dim=(0, 2)))
        q2 = torch.arange(seq_len + 1, 2 * seq_len + 1)
        ind.append(p[:, :, q2, q2 - seq_len + 1].mean(dim=(0, 2)))
    return torch.stack(prev), torch.stack(ind)


# ================================================================ 5.3 direct logit attribution
def _dla(model, cache, tokens, targets, centre=True, scale=True, weight=True):
    out = []
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, :-1]
        heads_out = torch.einsum("bphd,hdm->bphm", z, model.blocks[layer].attn.W_O)
        if centre:
            heads_out = heads_out - heads_out.mean(-1, keepdim=True)
        if scale:
            heads_out = heads_out / cache["ln_final.hook_scale"][:, :-1].unsqueeze(-1)
        if weight:
            heads_out = heads_out * model.ln_final.w
        unembed = model.W_U.T[targets]                                  # [batch, pos - 1, d_model]
        out.append((heads_out * unembed[:, :, None]).sum(-1))
    return torch.stack(out, dim=2)


def dla_current_token(model, cache, tokens):
    return _dla(model, cache, tokens, tokens[:, :-1])


def dla_no_layernorm(model, cache, tokens):
    return _dla(model, cache, tokens, tokens[:, 1:], centre=False, scale=False, weight=False)


def dla_no_centring(model, cache, tokens):
    return _dla(model, cache, tokens, tokens[:, 1:], centre=False)


def dla_no_scale(model, cache, tokens):
    return _dla(model, cache, tokens, tokens[:, 1:], scale=False)


def dla_no_weight(model, cache, tokens):
    return _dla(model, cache, tokens, tokens[:, 1:], weight=False)


def dla_straight_to_unembed(model, cache, tokens):
    return cache["blocks.0.attn.hook_z"] @ model.W_U


def dla_layer_head_swapped(model, cache, tokens):
    result = torch.zeros(tokens.shape[0], tokens.shape[1] - 1, model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            vec = cache[f"blocks.{head}.attn.hook_z"][:, :-1, layer] @ model.blocks[head].attn.W_O[layer]
            vec = (vec - vec.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][:, :-1] * model.ln_final.w
            result[:, :, layer, head] = (vec @ model.W_U).gather(-1, tokens[:, 1:, None])[..., 0]
    return result


def dla_with_bias(model, cache, tokens):
    out = []
    for layer in range(model.cfg.n_layers):
        attn = model.blocks[layer].attn
        z = cache[f"blocks.{layer}.attn.hook_z"][:, :-1]
        x = torch.einsum("bphd,hdm->bphm", z, attn.W_O) + attn.b_O
        x = (x - x.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][:, :-1, None] * model.ln_final.w
        out.append(torch.einsum("bphm,mbp->bph", x, model.W_U[:, tokens[:, 1:]]))
    return torch.stack(out, dim=2)


def dla_by_hand_loop(model, cache, tokens):
    batch, pos = tokens.shape
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    result = torch.zeros(batch, pos - 1, n_layers, n_heads)
    for layer in range(n_layers):
        for head in range(n_heads):
            vec = cache[f"blocks.{layer}.attn.hook_z"][:, :-1, head] @ model.blocks[layer].attn.W_O[head]
            vec = vec - vec.mean(dim=-1, keepdim=True)
            vec = vec / cache["ln_final.hook_scale"][:, :-1] * model.ln_final.w
            logits = vec @ model.W_U                                       # [batch, pos - 1, d_vocab]
            result[:, :, layer, head] = logits.gather(-1, tokens[:, 1:, None])[..., 0]
    return result


# ================================================================ 5.4 ICL with heads ablated
def _zero(z, hook, head):
    z = z.clone()
    z[:, :, head] = 0
    return z


def _icl(losses, width):
    n = losses.shape[-1]
    e, l = round(0.1 * n) - width // 2, min(round(0.98 * n) - width // 2, n - width)
    return losses[:, l:l + width].mean() - losses[:, e:e + width].mean()


def ablate_first_only(model, tokens, heads, width=5):
    layer, head = heads[0]
    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head))])
    return _icl(per_token_loss(logits, tokens), width)


def ablate_patterns(model, tokens, heads, width=5):
    hooks = [(f"blocks.{layer}.attn.hook_pattern", partial(_zero, head=head)) for layer, head in heads]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)


def ablate_misspelled_name(model, tokens, heads, width=5):
    hooks = [(f"blocks.{layer}.hook_z", partial(_zero, head=head)) for layer, head in heads]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)


def ablate_permanent_hooks(model, tokens, heads, width=5):
    for layer, head in heads:
        model.add_hook(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head))
    return _icl(per_token_loss(model(tokens), tokens), width)


def ablate_nothing(model, tokens, heads, width=5):
    return _icl(per_token_loss(model(tokens), tokens), width)


def ablate_last_only(model, tokens, heads, width=5):
    for layer, head in heads:
        hooks = [(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head))]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)


def ablate_swapped(model, tokens, heads, width=5):
    hooks = [(f"blocks.{head}.attn.hook_z", partial(_zero, head=layer)) for layer, head in heads]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)


def ablate_notebook3_windows(model, tokens, heads, width=5):
    hooks = [(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head)) for layer, head in heads]
    losses = per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens)
    return losses[:, 55:63].mean() - losses[:, 4:10].mean()


def ablate_with_context_manager(model, tokens, heads, width=5):
    hooks = [(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head)) for layer, head in heads]
    with model.hooks(fwd_hooks=hooks):
        logits = model(tokens)
    return _icl(F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none"), width)


MISTAKES = [
    Mistake(nb5.check_text_icl_score, (icl_early_minus_late,), "early minus late", "sign is flipped"),
    Mistake(nb5.check_text_icl_score, (icl_fixed_windows,), "Notebook 3's fixed windows", "Notebook 3's windows"),
    Mistake(nb5.check_text_icl_score, (icl_single_positions,), "single positions", "single positions"),
    Mistake(nb5.check_text_icl_score, (icl_windows_from_centre,), "windows start at the centre", "should be centred"),
    Mistake(nb5.check_text_icl_score, (icl_not_written,), "not written", "not written yet"),
    Mistake(nb5.check_text_icl_score, (icl_batch_axis,), "windows scaled to the batch axis", "batch axis"),
    Mistake(nb5.check_text_icl_score, (icl_python_float,), "a Python float", "torch.Tensor"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_swapped,), "grids swapped", "swapped"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_layer_zero_only,), "layer 0 for every layer", "layer 0's pattern"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_same_token,), "attention to the same token", "*same* token"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_with_bos,), "seq_len counting BOS", "seq_len + 1"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_self_attention,), "offset 0 for previous token", "offset 0"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_whole_stripe,), "the whole stripe, first copy too",
            "first copy too"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_misspelled_name,), "misspelled cache name (attn.pattern)",
            "the model has no hook point and the cache has no entry 'blocks.0.attn.pattern'"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_next_layer,), "layer + 1", "is layer + 1 (off by one?)"),
    Mistake(nb5.check_head_logit_attribution, (dla_current_token,), "current token's logit", "current token"),
    Mistake(nb5.check_head_logit_attribution, (dla_no_layernorm,), "no final LayerNorm", "LayerNorm is missing"),
    Mistake(nb5.check_head_logit_attribution, (dla_no_centring,), "no centring", "centring is missing"),
    Mistake(nb5.check_head_logit_attribution, (dla_no_scale,), "no scale", "did not divide"),
    Mistake(nb5.check_head_logit_attribution, (dla_with_bias,), "b_O included", "b_O"),
    Mistake(nb5.check_head_logit_attribution, (dla_no_weight,), "no LayerNorm weight", "ln_final.w is missing"),
    Mistake(nb5.check_head_logit_attribution, (dla_straight_to_unembed,), "hook_z times W_U", "the shapes did not fit"),
    Mistake(nb5.check_head_logit_attribution, (dla_layer_head_swapped,), "layer and head swapped in the loop",
            "did you swap layer and head?"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_permanent_hooks,), "hooks left on", "left its hooks"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_nothing,), "no ablation", "clean model's ICL"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_last_only,), "only the last head", "only the last head"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_swapped,), "(head, layer)", "(head, layer)"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_first_only,), "only the first head", "only the first head"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_patterns,), "hooks on hook_pattern", "hook_pattern, not hook_z"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_misspelled_name,), "misspelled hook point (blocks.{l}.hook_z)",
            "the model has no hook point and the cache has no entry 'blocks.1.hook_z'"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_notebook3_windows,), "Notebook 3's windows",
            "Notebook 3's fixed windows"),
    Mistake(nb5.check_limits_answers, ({"new_continuation": "a", "in_weights": "c", "rest_of_icl": "d"},),
            "earlier copy helps any prediction", "less* likely"),
    Mistake(nb5.check_limits_answers, ({"new_continuation": "b", "in_weights": "b", "rest_of_icl": "d"},),
            "word pairs from induction heads", "control"),
    Mistake(nb5.check_limits_answers, ({"new_continuation": "b", "in_weights": "c", "rest_of_icl": "a"},),
            "induction heads carry all ICL", "measurement on one model"),
    Mistake(nb5.check_limits_answers, ({"new_continuation": "e", "in_weights": "c", "rest_of_icl": "d"},),
            "a letter not offered", "choose one of"),
    Mistake(nb5.check_limits_answers, ({"new_continuation": "b"},), "answers missing", "keys"),
]

CORRECT = [
    Correct(nb5.check_text_icl_score, (icl_loop,), "a loop over the window", H(nb5.check_text_icl_score)),
    Correct(nb5.check_text_icl_score, (icl_per_row,), "mean of per-row differences", H(nb5.check_text_icl_score)),
    Correct(nb5.check_head_scores_on_repeats, (scores_by_hand,), "indexing by hand", H(nb5.check_head_scores_on_repeats)),
    Correct(nb5.check_head_logit_attribution, (dla_by_hand_loop,), "a loop over heads with gather",
            H(nb5.check_head_logit_attribution)),
    Correct(nb5.check_icl_with_heads_ablated, (ablate_with_context_manager,), "model.hooks and cross_entropy",
            H(nb5.check_icl_with_heads_ablated)),
    Correct(nb5.check_limits_answers, ({"new_continuation": "B", "in_weights": " c", "rest_of_icl": "d"},),
            "letters in other cases"),
]


# engine symptoms: an off by one along positions and a sum for a mean, named by the engine (no Bug of nb5's)
def dla_rolled_targets(model, cache, tokens):
    """Every position's attribution to torch.roll'ed targets, then the wrong end dropped (the first, not the last)."""
    directions = model.W_U[:, tokens.roll(-1, dims=1)].permute(1, 2, 0)        # [batch, pos, d_model]
    scale = cache["ln_final.hook_scale"][:, :, None]
    per_layer = []
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"]
        written = torch.einsum("bphd,hdm->bphm", z, model.blocks[layer].attn.W_O)
        written = (written - written.mean(dim=-1, keepdim=True)) / scale * model.ln_final.w
        per_layer.append(torch.einsum("bphm,bpm->bph", written, directions))
    return torch.stack(per_layer, dim=-2)[:, 1:]


def icl_rows_summed(losses, width=5):
    n = losses.shape[-1]
    early = round(0.1 * n) - width // 2
    late = min(round(0.98 * n) - width // 2, n - width)
    return (losses[:, late:late + width].mean(dim=1) - losses[:, early:early + width].mean(dim=1)).sum()


MISTAKES += [
    Mistake(nb5.check_head_logit_attribution, (dla_rolled_targets,), "torch.roll targets, the first entry dropped",
            "shifted one position earlier along `pos`", symptom="off by one"),
    Mistake(nb5.check_text_icl_score, (icl_rows_summed,), "rows summed, not averaged", "4 times the expected one",
            symptom="sum/mean"),
]


# ================================================================ more mistakes and alternatives (helper mist45, written blind)
def icl_int_positions(losses, width=5):
    n = losses.shape[-1]
    e, l = int(0.1 * n) - width // 2, min(int(0.98 * n) - width // 2, n - width)
    return losses[:, l:l + width].mean() - losses[:, e:e + width].mean()


def icl_late_unclamped(losses, width=5):
    n = losses.shape[-1]
    e, l = round(0.1 * n) - width // 2, round(0.98 * n) - width // 2
    return losses[:, l:l + width].mean() - losses[:, e:e + width].mean()


def icl_tokens_count(losses, width=5):
    n = losses.shape[-1] + 1                        # "contexts of n + 1 tokens"
    e, l = round(0.1 * n) - width // 2, min(round(0.98 * n) - width // 2, n - width)
    return losses[:, l:l + width].mean() - losses[:, e:e + width].mean()


def icl_window_sums(losses, width=5):
    n = losses.shape[-1]
    e, l = round(0.1 * n) - width // 2, min(round(0.98 * n) - width // 2, n - width)
    return losses[:, l:l + width].sum() - losses[:, e:e + width].sum()


def icl_ratio(losses, width=5):
    n = losses.shape[-1]
    e, l = round(0.1 * n) - width // 2, min(round(0.98 * n) - width // 2, n - width)
    return losses[:, l:l + width].mean() / losses[:, e:e + width].mean()


def icl_width_five(losses, width=5):
    n = losses.shape[-1]
    e, l = round(0.1 * n) - 2, min(round(0.98 * n) - 2, n - 5)
    return losses[:, l:l + 5].mean() - losses[:, e:e + 5].mean()


def icl_batch_length(losses, width=5):
    n = len(losses)                                  # the batch size, not the number of loss entries
    e, l = round(0.1 * n) - width // 2, min(round(0.98 * n) - width // 2, n - width)
    return losses[:, l:l + width].mean() - losses[:, e:e + width].mean()


def icl_narrow(losses, width=5):
    n = losses.size(1)
    early = losses.narrow(1, round(n / 10) - width // 2, width)
    late = losses.narrow(1, min(round(n * 0.98) - width // 2, n - width), width)
    return (late.double().mean() - early.double().mean()).float()


def scores_notebook_tokens(model, tokens, seq_len, rep=torch.full((16, 81), 200)):
    """The notebook's `rep` (a stand-in default, ids of the text model's vocabulary) in place of `tokens`."""
    _, cache = model.run_with_cache(rep)
    patterns = [cache["pattern", layer] for layer in range(model.cfg.n_layers)]
    return (torch.stack([previous_token_score(p) for p in patterns]),
            torch.stack([induction_score(p, seq_len) for p in patterns]))


def _dla_finished(model, cache, tokens, finish=lambda x, scale, model: x / scale * model.ln_final.w, z_from=0,
         scale_name="ln_final.hook_scale"):
    pos = tokens.shape[1]
    directions = model.W_U[:, tokens[:, 1:]].permute(1, 2, 0)
    scale = cache[scale_name][:, z_from:pos - 1 + z_from, None]
    out = []
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, z_from:pos - 1 + z_from]
        x = torch.einsum("bphd,hdm->bphm", z, model.blocks[layer].attn.W_O)
        out.append(torch.einsum("bphm,bpm->bph", finish(x - x.mean(-1, keepdim=True), scale, model), directions))
    return torch.stack(out, dim=-2)


def dla_with_ln_bias(model, cache, tokens):
    return _dla_finished(model, cache, tokens, finish=lambda x, scale, model: x / scale * model.ln_final.w + model.ln_final.b)


def dla_times_scale(model, cache, tokens):
    return _dla_finished(model, cache, tokens, finish=lambda x, scale, model: x * scale * model.ln_final.w)


def dla_block_scale(model, cache, tokens):
    return _dla_finished(model, cache, tokens, scale_name="blocks.0.ln1.hook_scale")


def dla_outputs_one_later(model, cache, tokens):
    return _dla_finished(model, cache, tokens, z_from=1)


def dla_folded_unembedding(model, cache, tokens):
    WU = model.ln_final.w[:, None] * model.W_U
    dirs = (WU - WU.mean(0, keepdim=True))[:, tokens[:, 1:]]           # centring moved onto W_U
    outs = [torch.einsum("bphd,hdm,mbp->bph", cache["z", l][:, :-1], model.blocks[l].attn.W_O, dirs)
            for l in range(model.cfg.n_layers)]
    return torch.stack(outs, -2) / cache["ln_final.hook_scale"][:, :-1, :, None]


def ablate_change_returned(model, tokens, heads, width=5):
    hooks = [(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head)) for layer, head in heads]
    ablated = _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)
    return ablated - _icl(per_token_loss(model(tokens), tokens), width)


def ablate_default_width(model, tokens, heads, width=5):
    hooks = [(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head)) for layer, head in heads]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), 5)


def ablate_notebook_tokens(model, tokens, heads, width=5, held_out=torch.full((4, 128), 1000)):
    """The notebook's `held_out` (a stand-in default, ids of the text model's vocabulary) in place of `tokens`."""
    hooks = [(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head)) for layer, head in heads]
    return _icl(per_token_loss(model.run_with_hooks(held_out, fwd_hooks=hooks), held_out), width)


def ablate_one_hook_per_layer(model, tokens, heads, width=5):
    def zero_some(z, hook, hs):
        z = z.clone()
        z[:, :, hs] = 0
        return z
    by_layer = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    hooks = [(f"blocks.{layer}.attn.hook_z", partial(zero_some, hs=hs)) for layer, hs in by_layer.items()]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)


def ablate_add_hook_finally(model, tokens, heads, width=5):
    try:
        for layer, head in heads:
            model.add_hook(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head))
        losses = per_token_loss(model(tokens), tokens)
    finally:
        model.reset_hooks()
    return _icl(losses, width)


MISTAKES += [
    Mistake(nb5.check_text_icl_score, (icl_int_positions,), "int() instead of round()", "int() cuts"),
    Mistake(nb5.check_text_icl_score, (icl_late_unclamped,), "late window not kept inside the context",
            "late window runs past the last loss entry"),
    Mistake(nb5.check_text_icl_score, (icl_tokens_count,), "positions scaled to the token count n + 1, clamped at n + 1",
            "late window runs past the last loss entry"),
    Mistake(nb5.check_text_icl_score, (icl_window_sums,), "window sums, not means", "summed each window",
            symptom="sum/mean"),
    Mistake(nb5.check_text_icl_score, (icl_ratio,), "ratio late / early", "ratio late / early"),
    Mistake(nb5.check_text_icl_score, (icl_width_five,), "width ignored (5 wide)", "5 entries wide"),
    Mistake(nb5.check_text_icl_score, (icl_batch_length,), "n = len(losses), the batch size, unclamped",
            "one of your windows selects no loss entries"),
    Mistake(nb5.check_head_scores_on_repeats, (scores_notebook_tokens,), "the notebook's rep tokens",
            "token id this model's vocabulary does not have", symptom="global"),
    Mistake(nb5.check_head_logit_attribution, (dla_with_ln_bias,), "ln_final.b added", "ln_final.b"),
    Mistake(nb5.check_head_logit_attribution, (dla_times_scale,), "multiplied by the scale", "*divides* by it"),
    Mistake(nb5.check_head_logit_attribution, (dla_block_scale,), "block 0's ln1 scale", "ln1 scale"),
    Mistake(nb5.check_head_logit_attribution, (dla_outputs_one_later,), "z[:, 1:] against tokens[:, 1:]",
            "positions 1 … pos - 1 (z[:, 1:])", symptom="off by one"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_change_returned,), "returns ICL(ablated) − ICL(clean)",
            "ICL(ablated) − ICL(clean), the change"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_default_width,), "width not passed on", "ignores `width`"),
    Mistake(nb5.check_icl_with_heads_ablated, (ablate_notebook_tokens,), "the notebook's held_out tokens",
            "token id this model's vocabulary does not have", symptom="global"),
]

CORRECT += [
    Correct(nb5.check_text_icl_score, (icl_narrow,), "narrow, float64 means", H(nb5.check_text_icl_score)),
    Correct(nb5.check_head_logit_attribution, (dla_folded_unembedding,), "centring folded into W_U, one einsum",
            H(nb5.check_head_logit_attribution)),
    Correct(nb5.check_icl_with_heads_ablated, (ablate_one_hook_per_layer,), "one hook per layer zeroing several heads",
            H(nb5.check_icl_with_heads_ablated)),
    Correct(nb5.check_icl_with_heads_ablated, (ablate_add_hook_finally,), "add_hook, reset_hooks in finally",
            H(nb5.check_icl_with_heads_ablated)),
]


def scores_first_sequence(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens[:1])            # one sequence to look at, as when exploring
    patterns = [cache["pattern", layer] for layer in range(model.cfg.n_layers)]
    return (torch.stack([previous_token_score(p) for p in patterns]),
            torch.stack([induction_score(p, seq_len) for p in patterns]))


def _ablate_with(model, tokens, heads, width=5, name="blocks.{layer}.attn.hook_z", hook_fn=None):
    hooks = [(name.format(layer=layer), partial(hook_fn or _zero, head=head)) for layer, head in heads]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)


def _mean_of_batch(z, hook, head):
    z = z.clone()
    z[:, :, head] = z[:, :, head].mean(dim=0)
    return z


MISTAKES += [
    Mistake(nb5.check_head_scores_on_repeats, (scores_first_sequence,), "scores of tokens[:1] only",
            "first sequence alone"),
    Mistake(nb5.check_icl_with_heads_ablated, (partial(_ablate_with, name="blocks.{layer}.hook_attn_out"),),
            "zero hooks on hook_attn_out", "sit on hook_attn_out", symptom="wrong hook point"),
    Mistake(nb5.check_icl_with_heads_ablated, (partial(_ablate_with, hook_fn=_mean_of_batch),),
            "mean-ablation with the batch's own mean", "mean-ablation with the batch's own mean"),
]

CORRECT += [
    Correct(nb5.check_limits_answers, ({"new_continuation": "(b)", "in_weights": "(c)", "rest_of_icl": "(d)"},),
            "letters written as (b)"),
]
