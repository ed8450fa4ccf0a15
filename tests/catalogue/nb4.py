"""Notebook 4 (ablation): mistakes students make, and correct alternatives.

Every function below is written the way a student would write it, independently of the checks' ``Bug``s.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from catalogue import Correct, Mistake, hidden
from induction_course.checks import nb4
from induction_course.circuits import ICL_EARLY, ICL_LATE, per_token_loss
from induction_course.heads import induction_score


def H(check, index: int = 0) -> dict:  # noqa: N802  (the master's hidden parameters of nb4.<check>, never copied here)
    return hidden("nb4", check.id.split(".")[1], index)


def not_written(*args, **kwargs):
    raise NotImplementedError()


# ================================================================ 4.1 zero-ablation hook
def zero_every_head(z, hook, head):
    return torch.zeros_like(z)


def zero_position(z, hook, head):
    z = z.clone()
    z[:, head] = 0
    return z


def zero_component(z, hook, head):
    z = z.clone()
    z[..., head] = 0.0
    return z


def zero_in_place_no_return(z, hook, head):
    z[:, :, head] = 0


def zero_the_copy_return_original(z, hook, head):
    new_z = z.clone()
    new_z[:, :, head] = 0
    return z


def zero_original_return_copy(z, hook, head):
    out = z.clone()
    z[:, :, head] = 0
    return out


def zero_in_place(z, hook, head):
    z[:, :, head] *= 0
    return z


def zero_slice_only(z, hook, head):
    return z[:, :, head] * 0


def zero_one_indexed(z, hook, head):
    z = z.clone()
    z[:, :, head - 1] = 0
    return z


def zero_sequence(z, hook, head):
    z = z.clone()
    z[head] = 0
    return z


def zero_next_head(z, hook, head):
    z = z.clone()
    z[:, :, head + 1] = 0
    return z


def zero_float64_mask(z, hook, head):
    keep = torch.ones(z.shape[2], dtype=torch.float64)
    keep[head] = 0
    return z * keep[:, None]


def zero_keep_only(z, hook, head):
    mask = torch.zeros_like(z)
    mask[:, :, head] = 1
    return z * mask


def zero_by_mask(z, hook, head):
    keep = torch.ones(z.shape[2], dtype=z.dtype, device=z.device)
    keep[head] = 0
    return z * keep[:, None]


def zero_by_where(z, hook, head):
    heads = torch.arange(z.shape[2], device=z.device)
    return torch.where((heads == head)[:, None], torch.zeros_like(z), z)


def zero_by_index_fill(z, hook, head):
    return z.index_fill(2, torch.tensor([head], device=z.device), 0.0)


def zero_by_cat(z, hook, head):
    return torch.cat([z[:, :, :head], torch.zeros_like(z[:, :, head:head + 1]), z[:, :, head + 1:]], dim=2)


# ================================================================ 4.2 mean-ablation hook
def mean_zeroes(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = torch.zeros_like(z[:, :, head])
    return z


def mean_one_vector(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref[:, :, head].mean(dim=[0, 1])
    return z


def mean_of_own_batch(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z[:, :, head].mean(dim=0)
    return z


def mean_over_positions(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref[:, :, head].mean(dim=1)
    return z


def mean_over_d_head(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref[:, :, head].mean(-1)
    return z


def mean_forgotten(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref[:, :, head]
    return z


def mean_position_axis(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref[:, head].mean(0)
    return z


def mean_summed(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref[:, :, head].sum(0)
    return z


def mean_wrong_count(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref[:, :, head].sum(dim=0) / len(z)
    return z


def mean_every_head(z, hook, head, z_ref):
    return z_ref.mean(0).expand_as(z)


def mean_in_place(z, hook, head, z_ref):
    z[:, :, head] = z_ref[:, :, head].mean(0)
    return z


def mean_in_place_no_return(z, hook, head, z_ref):
    z[:, :, head] = z_ref[:, :, head].mean(0)


def mean_first_sequence(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref[0, :, head]
    return z


def mean_over_heads(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head] = z_ref.mean(dim=0).mean(dim=1)
    return z


def mean_previous_head(z, hook, head, z_ref):
    z = z.clone()
    z[:, :, head - 1] = z_ref[:, :, head - 1].mean(0)
    return z


def mean_keepdim(z, hook, head, z_ref):
    out = z.clone()
    out[:, :, head] = z_ref[:, :, head].mean(dim=0, keepdim=True)
    return out


def mean_where(z, hook, head, z_ref):
    is_head = (torch.arange(z.shape[2], device=z.device) == head)[:, None]
    return torch.where(is_head, z_ref.mean(dim=0, keepdim=True), z)


def mean_float64(z, hook, head, z_ref):
    out = z.clone()
    out[:, :, head] = z_ref[:, :, head].double().sum(dim=0) / z_ref.shape[0]
    return out


# ================================================================ 4.3 loss increase per head
def _second_copy(model, tokens, seq_len, hooks=(), part=lambda loss, n: loss[:, n + 1:].mean()):
    logits = model.run_with_hooks(tokens, fwd_hooks=list(hooks))
    return part(per_token_loss(logits, tokens), seq_len)


def _increase_loop(model, tokens, seq_len, make_hook, **changes):
    """A student's loop with one thing changed: ``part`` (which losses), ``combine(ablated, clean)``,
    ``name_layer(layer)`` (which layer's hook_z), ``call(make_hook, layer, head)``."""
    part = changes.get("part", lambda loss, n: loss[:, n + 1:].mean())
    combine = changes.get("combine", lambda ablated, clean: ablated - clean)
    name_layer = changes.get("name_layer", lambda layer: layer)
    call = changes.get("call", lambda make, layer, head: make(layer, head))
    clean = _second_copy(model, tokens, seq_len, part=part)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (f"blocks.{name_layer(layer)}.attn.hook_z", call(make_hook, layer, head))
            out[layer, head] = combine(_second_copy(model, tokens, seq_len, [hook], part=part), clean)
    return out


def increase_misspelled_hook(model, tokens, seq_len, make_hook):
    clean = _second_copy(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (f"blocks.{layer}.attn.hook_Z", make_hook(layer, head))
            out[layer, head] = _second_copy(model, tokens, seq_len, [hook]) - clean
    return out


def increase_piled_up(model, tokens, seq_len, make_hook):
    clean = _second_copy(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            model.add_hook(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))
            loss = per_token_loss(model(tokens), tokens)
            out[layer, head] = loss[:, seq_len + 1:].mean() - clean
    return out


def increase_zero_always(model, tokens, seq_len, make_hook):
    def make_zero(layer, head):
        def hook(z, hook):
            z = z.clone()
            z[:, :, head] = 0
            return z
        return hook
    return _increase_loop(model, tokens, seq_len, make_zero)


def increase_hook_not_in_list(model, tokens, seq_len, make_hook):
    clean = _second_copy(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            logits = model.run_with_hooks(tokens, fwd_hooks=(f"blocks.{layer}.attn.hook_z", make_hook(layer, head)))
            out[layer, head] = per_token_loss(logits, tokens)[:, seq_len + 1:].mean() - clean
    return out


def increase_transposed(model, tokens, seq_len, make_hook):
    clean = _second_copy(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_heads, model.cfg.n_layers)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            out[head, layer] = _second_copy(model, tokens, seq_len,
                                            [(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))]) - clean
    return out


def increase_no_mean(model, tokens, seq_len, make_hook):
    clean = per_token_loss(model(tokens), tokens)[:, seq_len + 1:]
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))])
            out[layer, head] = per_token_loss(logits, tokens)[:, seq_len + 1:] - clean
    return out


def increase_as_list(model, tokens, seq_len, make_hook):
    clean = float(_second_copy(model, tokens, seq_len))
    return [[float(_second_copy(model, tokens, seq_len, [(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))]))
             - clean for head in range(model.cfg.n_heads)] for layer in range(model.cfg.n_layers)]


def increase_cross_entropy(model, tokens, seq_len, make_hook):
    def second_copy_loss(logits):
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
        return loss.view(tokens.shape[0], -1)[:, seq_len + 1:].mean()

    clean = second_copy_loss(model(tokens))
    rows = []
    for layer in range(model.cfg.n_layers):
        row = []
        for head in range(model.cfg.n_heads):
            with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))]):
                row.append(second_copy_loss(model(tokens)) - clean)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def increase_float64(model, tokens, seq_len, make_hook):
    clean = _second_copy(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.float64)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            model.add_hook(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))
            out[layer, head] = per_token_loss(model(tokens), tokens)[:, seq_len + 1:].double().mean() - clean
            model.reset_hooks()
    return out


# ================================================================ 4.4 ICL change per head
def _icl_loop(model, tokens, early, late, score=None, combine=lambda ablated, clean: ablated - clean,
              where=lambda layer, head: (layer, head), pile_up=False):
    def hook_fn(z, hook, head):
        z = z.clone()
        z[:, :, head] = 0
        return z

    def icl(hooks):
        loss = per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens)
        return score(loss) if score else loss[:, late].mean() - loss[:, early].mean()

    clean = icl([])
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    done = []
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            name_layer, which = where(layer, head)
            hook = (f"blocks.{name_layer}.attn.hook_z", partial(hook_fn, head=which))
            done = done + [hook] if pile_up else [hook]
            out[layer, head] = combine(icl(done), clean)
    return out


def icl_early_minus_late(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late,
                     score=lambda loss: loss[:, early].mean() - loss[:, late].mean())


def icl_clean_minus_ablated(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late, combine=lambda ablated, clean: clean - ablated)


def icl_no_baseline(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late, combine=lambda ablated, clean: ablated)


def icl_ratio(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late, combine=lambda ablated, clean: ablated / clean)


def icl_piled_up(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late, pile_up=True)


def icl_constants(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late,
                     score=lambda loss: loss[:, ICL_LATE].mean() - loss[:, ICL_EARLY].mean())


def icl_sums(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late, score=lambda loss: loss[:, late].sum() - loss[:, early].sum())


def icl_window_difference(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late, score=lambda loss: (loss[:, late] - loss[:, early]).mean())


def icl_layer_head_swapped(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late, where=lambda layer, head: (head, layer))


def icl_layer_zero(model, tokens, early, late):
    return _icl_loop(model, tokens, early, late, where=lambda layer, head: (0, head))


def icl_with_helpers(model, tokens, early, late):
    from induction_course.circuits import icl_score

    def zero(z, hook, head):
        z[:, :, head] = 0.0          # in place: a hook may edit the activation it is given

    clean = icl_score(per_token_loss(model(tokens), tokens), early, late)
    rows = []
    for layer in range(model.cfg.n_layers):
        rows.append([])
        for head in range(model.cfg.n_heads):
            with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", partial(zero, head=head))]):
                loss = per_token_loss(model(tokens), tokens)
            rows[-1].append(float(icl_score(loss, early, late) - clean))
    return torch.tensor(rows)


def icl_by_cross_entropy(model, tokens, early, late):
    def icl(logits):
        loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
        return loss[:, late].mean() - loss[:, early].mean()

    clean = icl(model(tokens))
    grid = torch.empty(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            def zero(z, hook):
                return z * (torch.arange(z.shape[2], device=z.device) != head)[:, None]
            grid[layer, head] = icl(model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero)]))
    return grid - clean


# ================================================================ 4.5 induction scores with heads ablated
def _zero_head(z, hook, head):
    z = z.clone()
    z[:, :, head] = 0
    return z


def _last_layer_scores(model, tokens, seq_len, hooks, layer=None, score=induction_score):
    saved = {}
    layer = model.cfg.n_layers - 1 if layer is None else layer

    def save(pattern, hook):
        saved["pattern"] = pattern

    model.run_with_hooks(tokens, fwd_hooks=hooks + [(f"blocks.{layer}.attn.hook_pattern", save)])
    return score(saved["pattern"], seq_len)


def after_two_runs(model, tokens, seq_len, heads):
    model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h))
                                            for l, h in heads])
    _, cache = model.run_with_cache(tokens)
    return induction_score(cache["pattern", model.cfg.n_layers - 1], seq_len)


def after_first_head(model, tokens, seq_len, heads):
    layer, head = heads[0]
    return _last_layer_scores(model, tokens, seq_len, [(f"blocks.{layer}.attn.hook_z", partial(_zero_head, head=head))])


def after_overwritten_list(model, tokens, seq_len, heads):
    for layer, head in heads:
        hooks = [(f"blocks.{layer}.attn.hook_z", partial(_zero_head, head=head))]
    return _last_layer_scores(model, tokens, seq_len, hooks)


def after_on_pattern(model, tokens, seq_len, heads):
    return _last_layer_scores(model, tokens, seq_len,
                              [(f"blocks.{l}.attn.hook_pattern", partial(_zero_head, head=h)) for l, h in heads])


def after_layer_zero_pattern(model, tokens, seq_len, heads):
    hooks = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    return _last_layer_scores(model, tokens, seq_len, hooks, layer=0)


def after_same_token(model, tokens, seq_len, heads):
    def same_token_score(pattern, n):
        return pattern.diagonal(offset=-n, dim1=-2, dim2=-1)[..., 1:].mean(dim=(0, -1))

    hooks = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    return _last_layer_scores(model, tokens, seq_len, hooks, score=same_token_score)


def after_score_with_bos(model, tokens, seq_len, heads):
    hooks = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    return _last_layer_scores(model, tokens, seq_len, hooks, score=lambda p, n: induction_score(p, n + 1))


def after_score_one_short(model, tokens, seq_len, heads):
    hooks = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    return _last_layer_scores(model, tokens, seq_len, hooks, score=lambda p, n: induction_score(p, n - 1))


def after_pairs_swapped(model, tokens, seq_len, heads):
    hooks = [(f"blocks.{layer}.attn.hook_z", partial(_zero_head, head=head)) for head, layer in heads]
    return _last_layer_scores(model, tokens, seq_len, hooks)


def after_every_layer(model, tokens, seq_len, heads):
    hooks = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    return torch.stack([_last_layer_scores(model, tokens, seq_len, hooks, layer=layer)
                        for layer in range(model.cfg.n_layers)])


def after_mean_score(model, tokens, seq_len, heads):
    hooks = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    return _last_layer_scores(model, tokens, seq_len, hooks).mean()


def after_hooks_context(model, tokens, seq_len, heads):
    def zero(z, hook, head):
        z[:, :, head] = 0            # edits the activation in place and returns None

    with model.hooks(fwd_hooks=[(f"blocks.{l}.attn.hook_z", partial(zero, head=h)) for l, h in heads]):
        _, cache = model.run_with_cache(tokens)
    return induction_score(cache[f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern"], seq_len)


def after_own_stripe(model, tokens, seq_len, heads):
    def stripe(pattern, n):
        rows = torch.arange(n + 1, tokens.shape[1])
        return pattern[:, :, rows, rows - (n - 1)].mean(dim=(0, 2))

    hooks = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    return _last_layer_scores(model, tokens, seq_len, hooks, score=stripe)


# ================================================================ 4.6 pattern-preserving ablation
def _pp(model, tokens, heads, freeze_scales=False, pattern_layers="all", scale_names="all", ablate=True,
        point="hook_pattern"):
    n = model.cfg.n_layers
    ablation = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads] if ablate else []
    _, cache = model.run_with_cache(tokens)

    def freeze(value, hook):
        return cache[hook.name]

    layers = {"all": range(n), "last": [n - 1], "own": sorted({l for l, _ in heads})}[pattern_layers]
    names = [f"blocks.{l}.attn.{point}" for l in layers]
    if freeze_scales:
        names += {"all": [f"blocks.{l}.ln1.hook_scale" for l in range(n)] + ["ln_final.hook_scale"],
                  "final": ["ln_final.hook_scale"], "blocks": [f"blocks.{l}.ln1.hook_scale" for l in range(n)],
                  "ln2": [f"blocks.{l}.ln2.hook_scale" for l in range(n)]}[scale_names]
    return model.run_with_hooks(tokens, fwd_hooks=[(name, freeze) for name in names] + ablation)


def pp_unfrozen(model, tokens, heads, freeze_scales=False):
    return model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h))
                                                   for l, h in heads])


def pp_last_layer(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, freeze_scales, pattern_layers="last")


def pp_scales_always(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, True)


def pp_scales_never(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, False)


def pp_final_scale_only(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, freeze_scales, scale_names="final")


def pp_own_layers(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, freeze_scales, pattern_layers="own")


def pp_block_scales_only(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, freeze_scales, scale_names="blocks")


def pp_scales_instead_of_patterns(model, tokens, heads, freeze_scales=False):
    _, cache = model.run_with_cache(tokens)
    if freeze_scales:
        names = [name for name in cache.keys() if name.endswith("hook_scale")]
    else:
        names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    hooks = [(name, lambda value, hook: cache[hook.name]) for name in names]
    hooks += [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


def pp_wrong_scale_name(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, freeze_scales, scale_names="ln2")


def pp_first_head(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads[:1], freeze_scales)


def pp_nothing_ablated(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, freeze_scales, ablate=False)


def pp_ablated_cache(model, tokens, heads, freeze_scales=False):
    ablation = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    with model.hooks(fwd_hooks=ablation):
        _, cache = model.run_with_cache(tokens)          # the cache of the *ablated* run
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    if freeze_scales:
        names += [f"blocks.{l}.ln1.hook_scale" for l in range(model.cfg.n_layers)] + ["ln_final.hook_scale"]
    return model.run_with_hooks(tokens, fwd_hooks=[(name, lambda v, hook: cache[hook.name]) for name in names]
                                + ablation)


def pp_scores_frozen(model, tokens, heads, freeze_scales=False):
    return _pp(model, tokens, heads, freeze_scales, point="hook_attn_scores")


def pp_copy_in_place(model, tokens, heads, freeze_scales=False):
    _, cache = model.run_with_cache(tokens)

    def freeze(value, hook):
        value.copy_(cache[hook.name])

    def zero(z, hook, head):
        z[:, :, head] = 0

    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    if freeze_scales:
        names += [name for name in cache.keys() if name.endswith("hook_scale")]
    hooks = [(name, freeze) for name in names] + [(f"blocks.{l}.attn.hook_z", partial(zero, head=h)) for l, h in heads]
    with model.hooks(fwd_hooks=hooks):
        return model(tokens)


def pp_filter_by_name(model, tokens, heads, freeze_scales=False):
    _, cache = model.run_with_cache(tokens)
    wanted = ("hook_pattern", "hook_scale") if freeze_scales else ("hook_pattern",)
    hooks = [(name, lambda value, hook: cache[hook.name].clone()) for name in cache.keys() if name.endswith(wanted)]
    for layer, head in heads:
        hooks.append((f"blocks.{layer}.attn.hook_z", partial(_zero_head, head=head)))
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


# ================================================================ 4.7 the hand computation
def _direct(model, cache, layer, head, centre=-1, scale="divide", scale_name="ln_final.hook_scale", weight=True,
            ln_bias=False, with_b_O=False):
    z = cache[f"blocks.{layer}.attn.hook_z"]
    out = torch.einsum("bpd,dm->bpm", z[:, :, head], model.blocks[layer].attn.W_O[head])
    if with_b_O:
        out = out + model.blocks[layer].attn.b_O
    if centre is not None:
        out = out - out.mean(dim=centre, keepdim=True)
    if scale == "divide":
        out = out / cache[scale_name]
    elif scale == "multiply":
        out = out * cache[scale_name]
    if weight:
        out = out * model.ln_final.w
    if ln_bias:
        out = out + model.ln_final.b
    return out @ model.W_U


def direct_every_head(model, cache, layer, head):
    z = cache[f"blocks.{layer}.attn.hook_z"]
    out = (z[:, :, :, :, None] * model.blocks[layer].attn.W_O[None, None]).sum(dim=(2, 3))
    out = (out - out.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"] * model.ln_final.w
    return out @ model.W_U


def direct_wrong_W_O_axis(model, cache, layer, head):
    out = cache[f"blocks.{layer}.attn.hook_z"][:, :, head] @ model.blocks[layer].attn.W_O[:, head]
    out = (out - out.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"] * model.ln_final.w
    return out @ model.W_U


def direct_float64(model, cache, layer, head):
    z = cache[f"blocks.{layer}.attn.hook_z"][:, :, head].double()
    out = z @ model.blocks[layer].attn.W_O[head].double()
    d = out.shape[-1]
    centre = torch.eye(d, dtype=torch.float64, device=out.device) - 1.0 / d
    out = (out @ centre) / cache["ln_final.hook_scale"].double() * model.ln_final.w.double()
    return (out @ model.W_U.double()).float()


# ================================================================ 4.8 split second-copy loss
def _split(loss, tokens, seq_len, shift=0, prefix_right=True, prefix_any=True, swap=False, reduce="mean"):
    i = torch.arange(seq_len + 1, 2 * seq_len) + shift
    prefix = tokens[:, i] == tokens[:, i - seq_len]
    repeats = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    entries = loss[:, torch.arange(seq_len + 1, 2 * seq_len)]
    if not prefix_any:
        prefix = torch.ones_like(prefix)
    right = entries[(prefix if prefix_right else torch.ones_like(prefix)) & repeats]
    wrong = entries[prefix & ~repeats]
    out = (right.sum(), wrong.sum()) if reduce == "sum" else (right.mean(), wrong.mean())
    return out[::-1] if swap else out


def split_one_past(loss, tokens, seq_len):
    right, wrong = [], []
    for i in range(seq_len + 2, 2 * seq_len + 1):
        prefix = tokens[:, i] == tokens[:, i - seq_len]
        nxt = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
        right.append(loss[:, i - 1][prefix & nxt])
        wrong.append(loss[:, i - 1][prefix & ~nxt])
    return torch.cat(right).mean(), torch.cat(wrong).mean()


def split_python_and(loss, tokens, seq_len):
    i = torch.arange(seq_len + 1, 2 * seq_len)
    prefix = tokens[:, i] == tokens[:, i - seq_len]
    same = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    return loss[:, i][prefix and same].mean(), loss[:, i][prefix and not same].mean()


def split_minus_mask(loss, tokens, seq_len):
    i = torch.arange(seq_len + 1, 2 * seq_len)
    prefix = tokens[:, i] == tokens[:, i - seq_len]
    same = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    return loss[:, i][prefix & same].mean(), loss[:, i][prefix & -same].mean()


def split_mean_of_means(loss, tokens, seq_len):
    rights, wrongs = [], []
    for b in range(tokens.shape[0]):
        i = torch.arange(seq_len + 1, 2 * seq_len)
        prefix = tokens[b, i] == tokens[b, i - seq_len]
        same = tokens[b, i + 1] == tokens[b, i + 1 - seq_len]
        rights.append(loss[b, i][prefix & same].mean())
        wrongs.append(loss[b, i][prefix & ~same].mean())
    return torch.stack(rights).mean(), torch.stack(wrongs).mean()


def split_floats(loss, tokens, seq_len):
    right, wrong = _split(loss, tokens, seq_len)
    return right.item(), wrong.item()


def split_weighted(loss, tokens, seq_len):
    pos = torch.arange(seq_len, 2 * seq_len)       # entry seq_len never counts: its prefix is compared with BOS
    prefix = (tokens[:, pos] == tokens[:, pos - seq_len]).float()
    same = (tokens[:, pos + 1] == tokens[:, pos + 1 - seq_len]).float()
    part = loss[:, pos]
    return (part * prefix * same).sum() / (prefix * same).sum(), \
        (part * prefix * (1 - same)).sum() / (prefix * (1 - same)).sum()


def split_loops(loss, tokens, seq_len):
    right, wrong = [], []
    for b in range(tokens.shape[0]):
        for i in range(seq_len + 1, 2 * seq_len):
            if tokens[b, i] == tokens[b, i - seq_len]:
                (right if tokens[b, i + 1] == tokens[b, i + 1 - seq_len] else wrong).append(loss[b, i])
    return torch.stack(right).mean(), torch.stack(wrong).mean()


# ================================================================ 4.9 probability on seen tokens
def _seen(logits, tokens, start=1, upto=0, as_set=True, probs=lambda x: x.softmax(-1), num_classes=True,
          dtype=None):
    """Query i sums ``probs`` over tokens[:, start : i + 1 + upto] (right: start=1, upto=0)."""
    hot = F.one_hot(tokens, logits.shape[-1]) if num_classes else F.one_hot(tokens)
    hot[:, :start] = 0
    counts = torch.cat([torch.zeros_like(hot[:, :1]), hot.cumsum(dim=1)], dim=1)    # counts[:, j]: tokens before j
    counts = counts[:, 1 + upto: upto + tokens.shape[1]]                               # query i: tokens up to i + upto
    weight = (counts > 0).float() if as_set else counts.float()
    p = probs(logits)[:, :-1]
    if dtype is not None:
        p = p.to(dtype)
    return (p * weight).sum(-1)


def seen_one_hot_one_wider(logits, tokens):
    hot = F.one_hot(tokens, logits.shape[-1] + 1)
    hot[:, 0] = 0                                                                  # BOS is never "seen"
    seen = hot.cumsum(dim=1)[:, :-1] > 0
    return (logits[:, :-1].softmax(-1) * seen).sum(-1)


def seen_one_hot_hard_coded(logits, tokens):
    hot = F.one_hot(tokens, 100)
    hot[:, 0] = 0                                                                  # BOS is never "seen"
    seen = hot.cumsum(dim=1)[:, :-1] > 0
    return (logits[:, :-1].softmax(-1) * seen).sum(-1)


def seen_every_position(logits, tokens):
    seen = F.one_hot(tokens, logits.shape[-1]).cumsum(1) > 0
    seen[..., 0] = False
    return (logits.softmax(-1) * seen).sum(-1)


def seen_drop_first(logits, tokens):
    seen = (F.one_hot(tokens, logits.shape[-1]).cumsum(1) > 0)[:, :-1]
    seen[..., 0] = False
    return (logits[:, 1:].softmax(-1) * seen).sum(-1)


def seen_by_scatter(logits, tokens):
    batch, pos = tokens.shape
    probs = logits.softmax(dim=-1)
    out = torch.empty(batch, pos - 1, dtype=logits.dtype)
    for i in range(pos - 1):
        mask = torch.zeros(batch, logits.shape[-1], dtype=torch.bool).scatter_(1, tokens[:, 1:i + 1], True)
        out[:, i] = (probs[:, i] * mask).sum(-1)
    return out


def seen_by_einsum(logits, tokens):
    n = tokens.shape[1]
    upto = torch.tril(torch.ones(n - 1, n - 1), diagonal=-1)           # query i sees positions 1..i (key k is k + 1)
    hot = F.one_hot(tokens[:, 1:], logits.shape[-1]).float()                       # [batch, pos - 1, vocab]
    seen = torch.einsum("qk,bkv->bqv", upto, hot).clamp(max=1)
    return torch.einsum("bqv,bqv->bq", logits[:, :-1].softmax(-1), seen)


def seen_by_cummax(logits, tokens):
    hot = F.one_hot(tokens, logits.shape[-1])
    hot[:, 0] = 0                                                                  # BOS is never "seen"
    seen = hot.cummax(dim=1).values[:, :-1].bool()
    return torch.where(seen, logits[:, :-1].softmax(-1), 0.0).sum(-1)


# ================================================================ the catalogue
_ZERO, _MEAN = nb4.check_zero_ablation_hook, nb4.check_mean_ablation_hook
_LOSS, _ICL = nb4.check_loss_increase_per_head, nb4.check_icl_change_per_head
_AFTER, _PP = nb4.check_induction_scores_after_ablation, nb4.check_pattern_preserving_logits
_DIRECT, _SPLIT, _SEEN = nb4.check_direct_logit_contribution, nb4.check_split_second_copy_loss, nb4.check_seen_token_probability

MISTAKES = [
    # 4.1
    Mistake(_ZERO, (zero_every_head,), "ablating every head", "every head's output is zero"),
    Mistake(_ZERO, (zero_position,), "wrong head index: z[:, head] (positions)", "z[:, head] is position"),
    Mistake(_ZERO, (zero_component,), "wrong head index: z[..., head] (d_head)", "component `head`"),
    Mistake(_ZERO, (zero_in_place_no_return,), "edits in place and returns None", "edited z in place and returned None"),
    Mistake(_ZERO, (zero_the_copy_return_original,), "edits a copy, returns the original", "returned z unchanged"),
    Mistake(_ZERO, (zero_original_return_copy,), "edits the original, returns the copy",
            "changed z itself (in place) and returned an untouched copy"),
    Mistake(_ZERO, (zero_in_place,), "in-place edit of the input", "changed its input `z` in place"),
    Mistake(_ZERO, (zero_slice_only,), "returns one head's slice", "returned one head's slice"),
    Mistake(_ZERO, (zero_one_indexed,), "off by one head (1-indexed)", "head `head - 1`"),
    Mistake(_ZERO, (zero_float64_mask,), "float64 mask changes the dtype", "dtype torch.float64"),
    Mistake(_ZERO, (zero_keep_only,), "keeps the head, zeroes the others", "kept head `head`"),
    Mistake(_ZERO, (zero_sequence,), "wrong head index: z[head] (sequences)", "z[head] is sequence `head` of the batch"),
    Mistake(_ZERO, (zero_next_head,), "off by one head (head + 1)", "zeroed head `head + 1`"),
    Mistake(_ZERO, (not_written,), "not written", "not written yet"),
    # 4.2
    Mistake(_MEAN, (mean_zeroes,), "zero instead of mean", "that is zero-ablation"),
    Mistake(_MEAN, (mean_one_vector,), "mean over batch and positions", "averaged over positions as well"),
    Mistake(_MEAN, (mean_of_own_batch,), "mean of z, not z_ref", "not the reference batch z_ref"),
    Mistake(_MEAN, (mean_over_positions,), "wrong axis for the mean: positions", "you averaged over positions (dim=1)"),
    Mistake(_MEAN, (mean_over_d_head,), "wrong axis for the mean: d_head", "you averaged over d_head"),
    Mistake(_MEAN, (mean_forgotten,), "no mean at all", "you did not average"),
    Mistake(_MEAN, (mean_position_axis,), "wrong head index: z_ref[:, head]", "you indexed the position axis"),
    Mistake(_MEAN, (mean_summed,), "sum instead of mean", "summed over the reference batch"),
    Mistake(_MEAN, (mean_wrong_count,), "divides by the wrong batch size", "divided the reference batch's sum by z's"),
    Mistake(_MEAN, (mean_every_head,), "mean-ablates every head", "every head was replaced"),
    Mistake(_MEAN, (mean_in_place,), "in-place edit of the input", "changed its input `z` in place"),
    Mistake(_MEAN, (mean_in_place_no_return,), "edits in place and returns None", "edited z in place and returned None"),
    Mistake(_MEAN, (mean_first_sequence,), "first reference sequence instead of the mean", "first reference sequence"),
    Mistake(_MEAN, (mean_over_heads,), "mean over the heads too", "averaged over heads too"),
    Mistake(_MEAN, (mean_previous_head,), "off by one head (head - 1)", "replaced head `head - 1`"),
    # 4.3
    Mistake(_LOSS, (partial(_increase_loop, combine=lambda a, c: c - a),), "sign flipped", "sign is flipped"),
    Mistake(_LOSS, (partial(_increase_loop, combine=lambda a, c: a),), "no clean baseline", "subtract the clean"),
    Mistake(_LOSS, (partial(_increase_loop, combine=lambda a, c: a / c),), "ratio instead of difference", "ratio"),
    Mistake(_LOSS, (increase_piled_up,), "hooks added and never removed", "ablations pile up"),
    Mistake(_LOSS, (partial(_increase_loop, name_layer=lambda layer: 0),), "hook always on layer 0",
            "every run ablates a head of layer 0"),
    Mistake(_LOSS, (partial(_increase_loop, call=lambda make, layer, head: make(head, layer)),),
            "make_hook arguments swapped", "It takes (layer, head)"),
    Mistake(_LOSS, (increase_zero_always,), "ignores make_hook (always zero-ablation)", "whatever make_hook does"),
    Mistake(_LOSS, (partial(_increase_loop, part=lambda loss, n: loss.mean()),), "every token averaged",
            "averaged over every token"),
    Mistake(_LOSS, (partial(_increase_loop, part=lambda loss, n: loss[:, n:].mean()),),
            "off-by-one per-token loss slice (seq_len:)", "loss[:, seq_len:]"),
    Mistake(_LOSS, (partial(_increase_loop, part=lambda loss, n: loss[:, n + 2:].mean()),),
            "off-by-one per-token loss slice (seq_len + 2:)", "loss[:, seq_len + 2:]"),
    Mistake(_LOSS, (partial(_increase_loop, part=lambda loss, n: loss[:, n + 1:].sum()),), "sum instead of mean",
            "summed the second-copy losses"),
    Mistake(_LOSS, (increase_hook_not_in_list,), "fwd_hooks given a bare pair", "fwd_hooks takes a *list*"),
    Mistake(_LOSS, (increase_transposed,), "[head, layer] instead of [layer, head]", "your axes are [head, layer]"),
    Mistake(_LOSS, (increase_no_mean,), "per-token losses stored in one cell", "each [layer, head] entry holds one number"),
    Mistake(_LOSS, (increase_as_list,), "returns a list of lists", "returned list"),
    Mistake(_LOSS, (partial(_increase_loop, part=lambda loss, n: loss[:, :n].mean()),), "first copy averaged",
            "averaged over the first copy"),
    Mistake(_LOSS, (partial(_increase_loop, name_layer=lambda layer: layer + 1),), "hook on layer + 1",
            "is layer + 1 (off by one?)"),
    Mistake(_LOSS, (increase_misspelled_hook,), "misspelled hook point (hook_Z)",
            "the model has no hook point and the cache has no entry 'blocks.0.attn.hook_Z'"),
    Mistake(_LOSS, (not_written,), "not written", "not written yet"),
    # 4.4
    Mistake(_ICL, (icl_early_minus_late,), "ICL score early − late", "sign is flipped"),
    Mistake(_ICL, (icl_clean_minus_ablated,), "change clean − ablated", "sign is flipped"),
    Mistake(_ICL, (icl_no_baseline,), "no clean baseline", "subtract the clean ICL"),
    Mistake(_ICL, (icl_ratio,), "ratio", "a ratio"),
    Mistake(_ICL, (icl_piled_up,), "hooks pile up", "ablations pile up"),
    Mistake(_ICL, (icl_constants,), "ICL_EARLY/ICL_LATE instead of the arguments", "ICL_EARLY and ICL_LATE instead"),
    Mistake(_ICL, (icl_sums,), "sums instead of means", "summed the losses in each window"),
    Mistake(_ICL, (icl_window_difference,), "windows subtracted entry by entry", "entry by entry"),
    Mistake(_ICL, (icl_layer_head_swapped,), "layer and head swapped in the hook", "did you swap layer and head?"),
    Mistake(_ICL, (icl_layer_zero,), "hook always on layer 0", "every run ablates a head of layer 0"),
    # 4.5
    Mistake(_AFTER, (after_two_runs,), "ablation and recording in separate runs", "clean model's induction scores"),
    Mistake(_AFTER, (after_first_head,), "only the first head ablated", "only the first head of `heads`"),
    Mistake(_AFTER, (after_overwritten_list,), "hook list overwritten in the loop", "only the last head of `heads`"),
    Mistake(_AFTER, (after_on_pattern,), "ablation hooks on hook_pattern", "went on hook_pattern, not hook_z"),
    Mistake(_AFTER, (after_layer_zero_pattern,), "records layer 0's pattern", "scored the ablated layer's own heads"),
    Mistake(_AFTER, (after_same_token,), "off-by-one induction stripe (i - seq_len)", "attends to the token *after* it"),
    Mistake(_AFTER, (after_score_with_bos,), "induction_score with seq_len + 1", "seq_len + 1"),
    Mistake(_AFTER, (after_pairs_swapped,), "(layer, head) read as (head, layer)", "did you swap layer and head?"),
    Mistake(_AFTER, (after_score_one_short,), "induction_score with seq_len - 1", "you scored with seq_len - 1"),
    Mistake(_AFTER, (not_written,), "not written", "not written yet"),
    Mistake(_AFTER, (after_every_layer,), "scores of every layer stacked", "extra axis of size 2"),
    Mistake(_AFTER, (after_mean_score,), "averaged over heads", "It is a single number"),
    # 4.6
    Mistake(_PP, (pp_unfrozen,), "nothing frozen (full ablation)", "this is the full ablation"),
    Mistake(_PP, (pp_last_layer,), "only the last layer's pattern frozen", "only the last layer's pattern is frozen"),
    Mistake(_PP, (pp_scales_always,), "scales frozen although freeze_scales=False", "froze the LayerNorm scales although"),
    Mistake(_PP, (pp_scales_never,), "freeze_scales ignored", "LayerNorm scales are not, although freeze_scales=True"),
    Mistake(_PP, (pp_final_scale_only,), "only ln_final's scale frozen", "only ln_final's scale is frozen"),
    Mistake(_PP, (pp_wrong_scale_name,), "hook name that does not exist (ln2)",
            "the model has no hook point and the cache has no entry 'blocks.0.ln2.hook_scale'"),
    Mistake(_PP, (pp_first_head,), "only the first head ablated", "only the first head of `heads`"),
    Mistake(_PP, (pp_nothing_ablated,), "ablation hooks forgotten", "these are the clean logits"),
    Mistake(_PP, (pp_ablated_cache,), "patterns cached from the ablated run", "this is the full ablation"),
    Mistake(_PP, (pp_scores_frozen,), "hook_attn_scores frozen (the edit is discarded)", "this is the full ablation"),
    Mistake(_PP, (pp_own_layers,), "only the ablated heads' own layers frozen", "only the ablated heads' own layers"),
    Mistake(_PP, (pp_block_scales_only,), "ln1 scales frozen, not ln_final's", "not the final one"),
    Mistake(_PP, (pp_scales_instead_of_patterns,), "freeze_scales read as 'scales instead of patterns'",
            "patterns are not frozen (the LayerNorm scales are)"),
    Mistake(_PP, (not_written,), "not written", "not written yet"),
    # 4.7
    Mistake(_DIRECT, (partial(_direct, centre=None, scale=None, weight=False),), "no final LayerNorm",
            "final LayerNorm is missing"),
    Mistake(_DIRECT, (partial(_direct, centre=None),), "no centring", "centring is missing"),
    Mistake(_DIRECT, (partial(_direct, centre=1),), "centred over positions (wrong axis)", "centred over positions"),
    Mistake(_DIRECT, (partial(_direct, scale=None),), "scale not divided", "did not divide by the final LayerNorm's"),
    Mistake(_DIRECT, (partial(_direct, scale="multiply"),), "multiplied by the scale", "multiplied by the final"),
    Mistake(_DIRECT, (partial(_direct, scale_name="blocks.1.ln1.hook_scale"),), "ln1's scale instead of ln_final's",
            "own ln1"),
    Mistake(_DIRECT, (partial(_direct, weight=False),), "no LayerNorm weight", "LayerNorm weight w"),
    Mistake(_DIRECT, (partial(_direct, ln_bias=True),), "LayerNorm bias added", "added the LayerNorm bias b"),
    Mistake(_DIRECT, (partial(_direct, with_b_O=True),), "b_O included", "you included b_O"),
    Mistake(_DIRECT, (direct_every_head,), "every head of the layer", "every head of the layer"),
    Mistake(_DIRECT, (direct_wrong_W_O_axis,), "W_O[:, head] (heads mixed up)", "the shapes did not fit"),
    # 4.8
    Mistake(_SPLIT, (partial(_split, swap=True),), "results swapped", "two numbers are swapped"),
    Mistake(_SPLIT, (partial(_split, prefix_any=False),), "prefix condition dropped", "did not require the prefix"),
    Mistake(_SPLIT, (partial(_split, prefix_right=False),), "prefix condition only on the 'new' group",
            "did not require the prefix"),
    Mistake(_SPLIT, (partial(_split, shift=-1),), "off-by-one: loss entry i taken to predict token i", "off by one"),
    Mistake(_SPLIT, (split_one_past,), "off-by-one range past the end", "runs past the end of tokens"),
    Mistake(_SPLIT, (split_python_and,), "Python and/not on masks", "Python's `and`"),
    Mistake(_SPLIT, (split_minus_mask,), "minus instead of ~ on a mask", "does not negate a boolean mask"),
    Mistake(_SPLIT, (split_mean_of_means,), "mean of per-sequence means", "averaged each sequence's mean"),
    Mistake(_SPLIT, (partial(_split, reduce="sum"),), "sum instead of mean", "these are sums"),
    Mistake(_SPLIT, (split_floats,), "Python floats instead of tensors", "returned float"),
    # 4.9
    Mistake(_SEEN, (partial(_seen, upto=1),), "counts the token being predicted", "counted the token being predicted"),
    Mistake(_SEEN, (partial(_seen, upto=-1),), "leaves out the current token", "left out the current token"),
    Mistake(_SEEN, (partial(_seen, start=0),), "BOS counted as seen", "counted BOS"),
    Mistake(_SEEN, (partial(_seen, as_set=False),), "repeated tokens counted twice", "counted twice"),
    Mistake(_SEEN, (partial(_seen, probs=lambda x: x.softmax(dim=1)),), "softmax over the wrong axis",
            "softmax over positions"),
    Mistake(_SEEN, (partial(_seen, probs=lambda x: x),), "logits summed, not probabilities", "summed logits"),
    Mistake(_SEEN, (partial(_seen, probs=lambda x: x.log_softmax(-1)),), "log-probabilities summed",
            "summed log-probabilities"),
    Mistake(_SEEN, (partial(_seen, num_classes=False),), "one_hot without num_classes", "fewer columns than the vocabulary"),
    Mistake(_SEEN, (seen_every_position,), "last position kept", "has 10 entries instead of 9"),
    Mistake(_SEEN, (seen_drop_first,), "first position dropped instead of the last", "dropped the first position"),
    Mistake(_SEEN, (seen_one_hot_one_wider,), "one_hot with d_vocab + 1 classes", "more columns (13) than the vocabulary"),
    Mistake(_SEEN, (seen_one_hot_hard_coded,), "one_hot with a hard-coded 100 classes",
            "more columns (100) than the vocabulary"),
    Mistake(nb4.check_head_answers, ({"head_0_3": "a", "head_1_0": "c"},), "a score measured wrong", "measured, not wrong"),
    Mistake(nb4.check_head_answers, ({"head_0_3": "c", "head_1_0": "c"},), "0.3 does not reach the keys",
            "where the previous-token heads act"),
    Mistake(nb4.check_head_answers, ({"head_0_3": "d", "head_1_0": "c"},), "effects add up", "do not simply add up"),
    Mistake(nb4.check_head_answers, ({"head_0_3": "b", "head_1_0": "a"},), "1.0 useless", "shuffled decks"),
    Mistake(nb4.check_head_answers, ({"head_0_3": "b", "head_1_0": "b"},), "1.0 an induction head",
            "does not attend there"),
    Mistake(nb4.check_head_answers, ({"head_0_3": "b", "head_1_0": "d"},), "1.0 a previous-token head",
            "heads do many jobs"),
    Mistake(nb4.check_head_answers, ({"head_0_3": "b", "head_1_0": "x"},), "a letter not offered", "choose one of"),
    Mistake(nb4.check_head_answers, ({"head_1_0": "c"},), "one answer missing", "must be a dict"),
    Mistake(nb4.check_head_answers, (("b", "c"),), "a tuple, not a dict", "must be a dict"),
    Mistake(_SEEN, (partial(_seen, dtype=torch.float64),), "float64 result", "dtype torch.float64"),
]

CORRECT = [
    Correct(_ZERO, (zero_by_mask,), "multiply by a 0/1 mask over heads", H(_ZERO)),
    Correct(_ZERO, (zero_by_where,), "torch.where", H(_ZERO)),
    Correct(_ZERO, (zero_by_index_fill,), "index_fill (out of place)", H(_ZERO)),
    Correct(_ZERO, (zero_by_cat,), "torch.cat of the pieces", H(_ZERO)),
    Correct(_MEAN, (mean_keepdim,), "mean with keepdim=True", H(_MEAN)),
    Correct(_MEAN, (mean_where,), "torch.where with the mean of every head", H(_MEAN)),
    Correct(_MEAN, (mean_float64,), "float64 sum / count, cast back on assignment", H(_MEAN)),
    Correct(_LOSS, (increase_cross_entropy,), "F.cross_entropy(reduction='none') and model.hooks", H(_LOSS)),
    Correct(_LOSS, (increase_float64,), "add_hook + reset_hooks, float64 result", H(_LOSS)),
    Correct(_ICL, (icl_with_helpers,), "icl_score, model.hooks and an in-place hook", H(_ICL)),
    Correct(_ICL, (icl_by_cross_entropy,), "F.cross_entropy over [batch, vocab, pos], mask hook", H(_ICL)),
    Correct(_AFTER, (after_hooks_context,), "in-place hooks in model.hooks, then run_with_cache", H(_AFTER)),
    Correct(_AFTER, (after_own_stripe,), "the stripe indexed by hand", H(_AFTER)),
    Correct(_PP, (pp_copy_in_place,), "in-place copy_ freezing hooks in model.hooks", H(_PP)),
    Correct(_PP, (pp_filter_by_name,), "hooks chosen from the cache's names", H(_PP)),
    Correct(_DIRECT, (_direct,), "einsum spelling", H(_DIRECT, 1)),
    Correct(_DIRECT, (direct_float64,), "float64 intermediates, centring matrix, cast back", H(_DIRECT, 0)),
    Correct(_SPLIT, (split_weighted,), "weighted sums over a range that starts at seq_len", H(_SPLIT)),
    Correct(_SPLIT, (split_loops,), "Python loops", H(_SPLIT)),
    Correct(_SEEN, (seen_by_scatter,), "scatter per position", H(_SEEN)),
    Correct(_SEEN, (seen_by_einsum,), "einsum with a triangular mask", H(_SEEN)),
    Correct(_SEEN, (seen_by_cummax,), "cummax and torch.where", H(_SEEN)),
    Correct(nb4.check_head_answers, ({"head_0_3": "B", "head_1_0": " c"},), "letters in other cases"),
]


# ================================================================ symptom classes (issue 18), written as students would
def increase_last_hook_stays(model, tokens, seq_len, make_hook):
    clean = per_token_loss(model(tokens), tokens)[:, seq_len + 1:].mean()
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            model.reset_hooks()
            model.add_hook(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))
            out[layer, head] = per_token_loss(model(tokens), tokens)[:, seq_len + 1:].mean() - clean
    return out


def _increase_at(point):
    def loss_increase_per_head(model, tokens, seq_len, make_hook):
        clean = per_token_loss(model(tokens), tokens)[:, seq_len + 1:].mean()
        out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):
                hooks = [(f"blocks.{layer}.attn.{point}", make_hook(layer, head))]
                ablated = per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens)
                out[layer, head] = ablated[:, seq_len + 1:].mean() - clean
        return out
    return loss_increase_per_head


def zero_hook_returns_view(z, hook, head):
    z[:, :, head] = 0.0
    return z[:]


MISTAKES += [
    Mistake(_LOSS, (increase_last_hook_stays,), "resets before each add_hook, leaves the last one",
            "left a hook on the model", symptom="hook left"),
    *(Mistake(_LOSS, (_increase_at(point),), f"ablates {point} instead of hook_z", f"sit on {point}",
              symptom="wrong hook point") for point in ("hook_v", "hook_q", "hook_k")),
    Mistake(_ZERO, (zero_hook_returns_view,), "edits z in place, returns a view of it", "in place",
            symptom="in place/alias"),
]


# ================================================================ more mistakes and alternatives (helper mist45, written blind)
def increase_notebook_clean_loss(model, tokens, seq_len, make_hook, clean_loss=torch.full((1, 64), 3.0)):
    """The notebook's `clean_loss` (here a stand-in default) in place of a clean run on these tokens."""
    clean = clean_loss[:, seq_len + 1:].mean()
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))])
            out[layer, head] = float(per_token_loss(logits, tokens)[:, seq_len + 1:].mean() - clean)
    return out


def icl_notebook_clean_score(model, tokens, early, late, clean_icl=-4.0):
    """The notebook's `clean_icl` (a stand-in default) in place of the clean score on these tokens."""
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (f"blocks.{layer}.attn.hook_z", partial(_zero_head, head=head))
            loss = per_token_loss(model.run_with_hooks(tokens, fwd_hooks=[hook]), tokens)
            out[layer, head] = float(loss[:, late].mean() - loss[:, early].mean() - clean_icl)
    return out


def icl_notebook_tokens_in_loss(model, tokens, early, late, icl_tokens=torch.ones(128, 64, dtype=torch.long)):
    """The loss computed against the notebook's `icl_tokens` (a stand-in default of another batch size)."""
    def icl(logits):
        loss = per_token_loss(logits, icl_tokens)
        return loss[:, late].mean() - loss[:, early].mean()
    clean = icl(model(tokens))
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (f"blocks.{layer}.attn.hook_z", partial(_zero_head, head=head))
            out[layer, head] = float(icl(model.run_with_hooks(tokens, fwd_hooks=[hook])) - clean)
    return out


def split_loss_one_before(loss, tokens, seq_len):
    i = torch.arange(seq_len + 1, 2 * seq_len)
    prefix = tokens[:, i] == tokens[:, i - seq_len]
    same = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    entries = loss[:, i - 1]              # "the loss at the token i" thought to be entry i - 1
    return entries[prefix & same].mean(), entries[prefix & ~same].mean()


def split_loss_one_after(loss, tokens, seq_len):
    i = torch.arange(seq_len + 1, 2 * seq_len)
    prefix = tokens[:, i] == tokens[:, i - seq_len]
    same = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    entries = loss[:, i + 1]              # "the loss of the next token" read one entry too far
    return entries[prefix & same].mean(), entries[prefix & ~same].mean()


def split_next_not_shifted(loss, tokens, seq_len):
    i = torch.arange(seq_len + 1, 2 * seq_len)
    prefix = tokens[:, i] == tokens[:, i - seq_len]
    same = tokens[:, i] == tokens[:, i - seq_len]       # the same comparison twice: the "new" group is empty
    entries = loss[:, i]
    return entries[prefix & same].mean(), entries[prefix & ~same].mean()


def seen_softmax_over_kept_positions(logits, tokens):
    seen = F.one_hot(tokens, logits.shape[-1]).cumsum(dim=1)[:, :-1] > 0
    seen[..., 0] = False
    return (logits[:, :-1].softmax(dim=1) * seen).sum(dim=-1)


def seen_next_token_only(logits, tokens):
    return logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


def increase_hooks_context(model, tokens, seq_len, make_hook):
    clean = _second_copy(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))]):
                out[layer, head] = (per_token_loss(model(tokens), tokens)[:, seq_len + 1:].mean() - clean).item()
    return out


def after_lambda_store(model, tokens, seq_len, heads):
    seen = []
    name = f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern"
    hooks = [(f"blocks.{l}.attn.hook_z", partial(_zero_head, head=h)) for l, h in heads]
    model.run_with_hooks(tokens, fwd_hooks=hooks + [(name, lambda p, hook: seen.append(p.clone()))])
    return induction_score(seen[-1], seq_len)


def direct_folded_matrix(model, cache, layer, head):
    d = model.cfg.d_model
    centre = torch.eye(d, device=model.W_U.device) - 1.0 / d
    M = model.blocks[layer].attn.W_O[head] @ centre @ (model.ln_final.w[:, None] * model.W_U)
    return cache[f"blocks.{layer}.attn.hook_z"][:, :, head] @ M / cache["ln_final.hook_scale"]


def seen_scatter_loop(logits, tokens):
    probs = logits[:, :-1].softmax(-1)
    out = torch.zeros(probs.shape[:2], dtype=probs.dtype)
    mask = torch.zeros(tokens.shape[0], logits.shape[-1], dtype=torch.bool)
    for i in range(tokens.shape[1] - 1):
        mask[torch.arange(tokens.shape[0]), tokens[:, i]] = True
        m = mask.clone()
        m[:, 0] = False
        out[:, i] = (probs[:, i] * m).sum(-1)
    return out


MISTAKES += [
    Mistake(_LOSS, (increase_notebook_clean_loss,), "the notebook's clean_loss as the clean term",
            "the clean value you subtract is not the clean run", symptom="global"),
    Mistake(_ICL, (icl_notebook_clean_score,), "the notebook's clean_icl as the clean term",
            "the clean value you subtract is not the clean run", symptom="global"),
    Mistake(_ICL, (icl_notebook_tokens_in_loss,), "the loss taken against the notebook's icl_tokens",
            "that none of the check's inputs has", symptom="global"),
    Mistake(_SPLIT, (split_loss_one_before,), "masks right, loss[:, i - 1] averaged", "averaged loss[:, i - 1]",
            symptom="off by one"),
    Mistake(_SPLIT, (split_loss_one_after,), "masks right, loss[:, i + 1] averaged (past the end)",
            "runs past the end of loss", symptom="off by one"),
    Mistake(_SPLIT, (split_next_not_shifted,), "the next-token test compares i, not i + 1 (empty group)",
            "one of your two masks selects no entry"),
    Mistake(_SEEN, (seen_softmax_over_kept_positions,), "softmax over the kept positions",
            "softmax over positions"),
    Mistake(_SEEN, (seen_next_token_only,), "the next token's probability only", "the next token alone"),
]

CORRECT += [
    Correct(_LOSS, (increase_hooks_context,), "model.hooks context, .item()", H(_LOSS)),
    Correct(_AFTER, (after_lambda_store,), "a lambda that appends a clone", H(_AFTER)),
    Correct(_DIRECT, (direct_folded_matrix,), "one folded [d_head, d_vocab] matrix", H(_DIRECT, 1)),
    Correct(_SEEN, (seen_scatter_loop,), "a running boolean mask, position by position", H(_SEEN)),
]


def _icl_with_hook(model, tokens, early, late, name, hook_fn):
    """ICL change per head with ``hook_fn`` (a hook of (z, hook, head)) put on ``name.format(layer=...)``."""
    def icl(logits):
        loss = per_token_loss(logits, tokens)
        return loss[:, late].mean() - loss[:, early].mean()
    clean = icl(model(tokens))
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hooks = [(name.format(layer=layer), partial(hook_fn, head=head))]
            out[layer, head] = float(icl(model.run_with_hooks(tokens, fwd_hooks=hooks)) - clean)
    return out


def _batch_mean_head(z, hook, head):
    z = z.clone()
    z[:, :, head] = z[:, :, head].mean(0)
    return z


def after_on_attn_out(model, tokens, seq_len, heads):
    stored = {}
    hooks = [(f"blocks.{layer}.hook_attn_out", partial(_zero_head, head=head)) for layer, head in heads]
    hooks.append((f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern", lambda p, hook: stored.update(p=p)))
    model.run_with_hooks(tokens, fwd_hooks=hooks)
    return induction_score(stored["p"], seq_len)


MISTAKES += [
    Mistake(_ICL, (partial(_icl_with_hook, name="blocks.{layer}.hook_attn_out", hook_fn=_zero_head),),
            "zero hook on hook_attn_out", "sit on hook_attn_out", symptom="wrong hook point"),
    Mistake(_ICL, (partial(_icl_with_hook, name="blocks.{layer}.attn.hook_z", hook_fn=_batch_mean_head),),
            "mean-ablation with the batch's own mean", "mean-ablation with the batch's own mean"),
    Mistake(_AFTER, (after_on_attn_out,), "zero hooks on hook_attn_out", "sit on hook_attn_out",
            symptom="wrong hook point"),
]

CORRECT += [
    Correct(nb4.check_head_answers, ({"head_0_3": "(b)", "head_1_0": "(c)"},), "letters written as (b)"),
]


NOTEBOOK_SEQ_LEN = 23   # the notebook's global seq_len, as a student's function may pick it up


def split_notebook_seq_len(loss, tokens, seq_len):
    i = torch.arange(NOTEBOOK_SEQ_LEN + 1, 2 * NOTEBOOK_SEQ_LEN)
    prefix = tokens[:, i] == tokens[:, i - NOTEBOOK_SEQ_LEN]
    same = tokens[:, i + 1] == tokens[:, i + 1 - NOTEBOOK_SEQ_LEN]
    return loss[:, i][prefix & same].mean(), loss[:, i][prefix & ~same].mean()


MISTAKES += [
    Mistake(_SPLIT, (split_notebook_seq_len,), "the notebook's seq_len in place of the argument",
            "the seq_len in it is another", symptom="global"),
]


def _own_loss(logits, tokens):
    """Cross-entropy written by hand, the logits one position off their targets."""
    return F.cross_entropy(logits[:, 1:].transpose(1, 2), tokens[:, 1:], reduction="none")


def icl_own_loss_misaligned(model, tokens, early, late):
    def icl(logits):
        loss = _own_loss(logits, tokens)
        return loss[:, late].mean() - loss[:, early].mean()
    clean = icl(model(tokens))
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (f"blocks.{layer}.attn.hook_z", partial(_zero_head, head=head))
            out[layer, head] = float(icl(model.run_with_hooks(tokens, fwd_hooks=[hook])) - clean)
    return out


def increase_own_loss_misaligned(model, tokens, seq_len, make_hook):
    clean = _own_loss(model(tokens), tokens)[:, seq_len + 1:].mean()
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))])
            out[layer, head] = float(_own_loss(logits, tokens)[:, seq_len + 1:].mean() - clean)
    return out


MISTAKES += [
    Mistake(_ICL, (icl_own_loss_misaligned,), "own cross-entropy, logits[:, 1:] against tokens[:, 1:]",
            "against the token at that same position", symptom="off by one"),
    Mistake(_LOSS, (increase_own_loss_misaligned,), "own cross-entropy, logits[:, 1:] against tokens[:, 1:]",
            "against the token at that same position", symptom="off by one"),
]
