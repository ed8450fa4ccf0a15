"""Notebook 4's checks: each diagnostic fires on the mistake it names.
Correct answers, written apart from the reference, pass in tests/catalogue/ (tests/test_no_self_comparison.py).

The buggy functions below are written the way a student might write them, independently of the
``Bug.fn`` that the check uses to recognise the mistake.
"""
from __future__ import annotations

from functools import partial

import pytest
import torch

from induction_course import ablation as A
from induction_course.checks import CheckFailed, nb4
from induction_course.data import BOS
from induction_course.heads import diagonal_score, induction_score
from induction_course.circuits import per_token_loss as token_losses

SMALL = {"trained": False}          # a seeded random model: fast, and needs no checkpoint


def fails_with(check, fn, message: str, **kwargs) -> None:
    with pytest.raises(CheckFailed, match=message):
        check(fn, **kwargs)


def not_written(*args, **kwargs):
    raise NotImplementedError()


# ---------------------------------------------------------------- 4.1 zero-ablation hook
def zero_all(z, hook, head):
    return torch.zeros_like(z)


def zero_position(z, hook, head):
    out = z.clone()
    out[:, head] = 0
    return out


def zero_sequence(z, hook, head):
    out = z.clone()
    out[head] = 0
    return out


def zero_component(z, hook, head):
    out = z.clone()
    out[..., head] = 0
    return out


def zero_in_place(z, hook, head):
    z[:, :, head] = 0
    return z


def keep_only(z, hook, head):
    out = torch.zeros_like(z)
    out[:, :, head] = z[:, :, head]
    return out


@pytest.mark.parametrize("fn, message", [
    (zero_all, "every head's output is zero"),
    (zero_position, r"z\[:, head\] is position"),
    (zero_sequence, r"z\[head\] is sequence `head` of the batch"),
    (zero_component, "component `head` of every head"),
    (zero_in_place, "changed its input `z` in place"),
    (keep_only, "kept head `head` and zeroed all the others"),
    (not_written, "not written yet"),
])
def test_zero_ablation_hook_diagnostics(fn, message):
    fails_with(nb4.check_zero_ablation_hook, fn, message)


# ---------------------------------------------------------------- 4.2 mean-ablation hook
def mean_is_zero(z, hook, head, z_ref):
    out = z.clone()
    out[:, :, head] = 0.0
    return out


def mean_everywhere(z, hook, head, z_ref):
    out = z.clone()
    out[:, :, head] = z_ref[:, :, head].mean(dim=(0, 1))
    return out


def mean_of_input(z, hook, head, z_ref):
    out = z.clone()
    out[:, :, head] = z[:, :, head].mean(0)
    return out


def mean_over_heads(z, hook, head, z_ref):
    out = z.clone()
    out[:, :, head] = z_ref.mean(dim=0).mean(dim=1)
    return out


def mean_all_heads(z, hook, head, z_ref):
    return z_ref.mean(dim=0, keepdim=True).repeat(z.shape[0], 1, 1, 1)


def first_reference(z, hook, head, z_ref):
    out = z.clone()
    out[:, :, head] = z_ref[0, :, head]
    return out


@pytest.mark.parametrize("fn, message", [
    (mean_is_zero, "that is zero-ablation"),
    (mean_everywhere, "averaged over positions as well"),
    (mean_of_input, "not the reference batch z_ref"),
    (mean_over_heads, "averaged over heads too"),
    (mean_all_heads, "every head was replaced"),
    (first_reference, "first reference sequence"),
])
def test_mean_ablation_hook_diagnostics(fn, message):
    fails_with(nb4.check_mean_ablation_hook, fn, message)


# ---------------------------------------------------------------- 4.3 loss increase per head
def _second(model, tokens, seq_len, hooks=()):
    logits = model.run_with_hooks(tokens, fwd_hooks=list(hooks))
    return token_losses(logits, tokens)[:, seq_len + 1:].mean()


def increase_good(model, tokens, seq_len, make_hook):
    clean = _second(model, tokens, seq_len)
    rows = []
    for layer in range(model.cfg.n_layers):
        hooks = [[(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))] for head in range(model.cfg.n_heads)]
        rows.append([float(_second(model, tokens, seq_len, h) - clean) for h in hooks])
    return torch.tensor(rows)


def increase_flipped(model, tokens, seq_len, make_hook):
    return -increase_good(model, tokens, seq_len, make_hook)


def increase_no_baseline(model, tokens, seq_len, make_hook):
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (f"blocks.{layer}.attn.hook_z", make_hook(layer, head))
            out[layer, head] = _second(model, tokens, seq_len, [hook])
    return out


def increase_add_hook(model, tokens, seq_len, make_hook):
    clean = _second(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            model.add_hook(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))   # never removed
            out[layer, head] = token_losses(model(tokens), tokens)[:, seq_len + 1:].mean() - clean
    return out


def increase_layer_zero(model, tokens, seq_len, make_hook):
    clean = _second(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = ("blocks.0.attn.hook_z", make_hook(layer, head))     # always layer 0
            out[layer, head] = _second(model, tokens, seq_len, [hook]) - clean
    return out


def _increase_on(select):
    def fn(model, tokens, seq_len, make_hook):
        def measure(hooks=()):
            return select(token_losses(model.run_with_hooks(tokens, fwd_hooks=list(hooks)), tokens), seq_len)
        clean = measure()
        out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):
                out[layer, head] = measure([(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))]) - clean
        return out
    return fn


@pytest.mark.parametrize("fn, message", [
    (increase_flipped, "sign is flipped"),
    (increase_no_baseline, "subtract the clean"),
    (increase_add_hook, "ablations pile up"),
    (increase_layer_zero, "every run ablates a head of layer 0"),
    (_increase_on(lambda loss, n: loss.mean()), "averaged over every token"),
    (_increase_on(lambda loss, n: loss[:, :n].mean()), "averaged over the first copy"),
    (_increase_on(lambda loss, n: loss[:, n:].mean()), "off by one"),
    (not_written, "not written yet"),
])
def test_loss_increase_per_head_diagnostics(fn, message):
    fails_with(nb4.check_loss_increase_per_head, fn, message)


def test_loss_increase_per_head_reference_passes():
    nb4.check_loss_increase_per_head(increase_good, shapes=({}, {"ablation": "halve"}, {"n_layers": 1, "n_heads": 2}))


# ---------------------------------------------------------------- 4.4 ICL change per head
def _icl_per_head(model, tokens, early, late, icl, combine, pile_up=False):
    def run(hooks=()):
        return icl(token_losses(model.run_with_hooks(tokens, fwd_hooks=list(hooks)), tokens), early, late)
    clean = run()
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    done = []
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (f"blocks.{layer}.attn.hook_z", partial(A.zero_ablation_hook, head=head))
            done = done + [hook] if pile_up else [hook]
            out[layer, head] = combine(run(done), clean)
    return out


def late_minus_early(loss, early, late):
    return loss[:, late].mean() - loss[:, early].mean()


def early_minus_late(loss, early, late):
    return loss[:, early].mean() - loss[:, late].mean()


@pytest.mark.parametrize("fn, message", [
    (partial(_icl_per_head, icl=early_minus_late, combine=lambda a, c: a - c), "sign is flipped"),
    (partial(_icl_per_head, icl=late_minus_early, combine=lambda a, c: c - a), "sign is flipped"),
    (partial(_icl_per_head, icl=late_minus_early, combine=lambda a, c: a), "subtract the clean ICL"),
    (partial(_icl_per_head, icl=late_minus_early, combine=lambda a, c: a / c), "a ratio"),
    (partial(_icl_per_head, icl=late_minus_early, combine=lambda a, c: a - c, pile_up=True), "ablations pile up"),
])
def test_icl_change_per_head_diagnostics(fn, message):
    fails_with(nb4.check_icl_change_per_head, fn, message)


def test_icl_change_per_head_reference_passes():
    good = partial(_icl_per_head, icl=late_minus_early, combine=lambda a, c: a - c)
    nb4.check_icl_change_per_head(good, shapes=({}, {"n_layers": 1, "n_heads": 3, "pos": 30}))


# ---------------------------------------------------------------- 4.5 induction scores with heads ablated
def _scores_with(model, tokens, seq_len, hooks, pattern_layer=None, score=induction_score):
    stored = {}
    last = model.cfg.n_layers - 1 if pattern_layer is None else pattern_layer
    def grab(pattern, hook):
        stored["p"] = pattern
    model.run_with_hooks(tokens, fwd_hooks=hooks + [(f"blocks.{last}.attn.hook_pattern", grab)])
    return score(stored["p"], seq_len)


def _z_hooks(heads):
    return [(f"blocks.{l}.attn.hook_z", partial(A.zero_ablation_hook, head=h)) for l, h in heads]


def after_good(model, tokens, seq_len, heads):
    return _scores_with(model, tokens, seq_len, _z_hooks(heads))


def after_separate_runs(model, tokens, seq_len, heads):
    model.run_with_hooks(tokens, fwd_hooks=_z_hooks(heads))
    _, cache = model.run_with_cache(tokens)
    return induction_score(cache[f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern"], seq_len)


def after_first_only(model, tokens, seq_len, heads):
    layer, head = heads[0]
    return _scores_with(model, tokens, seq_len, _z_hooks([(layer, head)]))


def after_on_pattern(model, tokens, seq_len, heads):
    return _scores_with(model, tokens, seq_len,
                        [(f"blocks.{l}.attn.hook_pattern", partial(A.zero_ablation_hook, head=h)) for l, h in heads])


def after_own_layer(model, tokens, seq_len, heads):
    return _scores_with(model, tokens, seq_len, _z_hooks(heads), pattern_layer=heads[0][0])


def after_duplicate_offset(model, tokens, seq_len, heads):
    return _scores_with(model, tokens, seq_len, _z_hooks(heads),
                        score=lambda p, n: diagonal_score(p, n, first_query=n + 1))


@pytest.mark.parametrize("fn, message", [
    (after_separate_runs, "clean model's induction scores"),
    (after_first_only, "only the first head of `heads` was ablated"),
    (after_on_pattern, "went on hook_pattern, not hook_z"),
    (after_own_layer, "scored the ablated layer's own heads"),
    (after_duplicate_offset, r"attends to the token \*after\* it"),
    (not_written, "not written yet"),
])
@pytest.mark.parametrize("shape", [{}, SMALL])
def test_induction_scores_after_ablation_diagnostics(fn, message, shape):
    fails_with(nb4.check_induction_scores_after_ablation, fn, message, shapes=(shape,))


def test_induction_scores_after_ablation_reference_passes():
    nb4.check_induction_scores_after_ablation(after_good, shapes=({}, {"heads": [(0, 1)]},
                                                                  {**SMALL, "n_layers": 3, "heads": [(1, 2), (0, 1)]}))


# ---------------------------------------------------------------- 4.6 pattern-preserving ablation
def _frozen_run(model, tokens, heads, freeze_scales=False, patterns="all", scales=None, ablate="all"):
    _, cache = model.run_with_cache(tokens)
    def freeze(value, hook):
        return cache[hook.name]
    n = model.cfg.n_layers
    names = []
    if patterns == "all":
        names += [f"blocks.{l}.attn.hook_pattern" for l in range(n)]
    elif patterns == "own":
        names += sorted({f"blocks.{l}.attn.hook_pattern" for l, _ in heads})
    if freeze_scales if scales is None else scales:
        names += [f"blocks.{l}.ln1.hook_scale" for l in range(n)] + ["ln_final.hook_scale"]
    hooks = [(name, freeze) for name in names]
    chosen = {"all": heads, "first": heads[:1], "none": []}[ablate]
    return model.run_with_hooks(tokens, fwd_hooks=hooks + _z_hooks(chosen))


def pp_not_frozen(model, tokens, heads, freeze_scales=False):
    return model.run_with_hooks(tokens, fwd_hooks=_z_hooks(heads))


@pytest.mark.parametrize("fn, message, shape", [
    (pp_not_frozen, "patterns are not frozen: this is the full ablation", {}),
    (pp_not_frozen, "patterns are not frozen: this is the full ablation", SMALL),
    (partial(_frozen_run, patterns="none"), r"patterns are not frozen \(the LayerNorm scales are\)",
     {"freeze_scales": True}),
    (partial(_frozen_run, scales=False), "LayerNorm scales are not", {"freeze_scales": True}),
    (partial(_frozen_run, scales=False), "LayerNorm scales are not", {**SMALL, "freeze_scales": True}),
    (partial(_frozen_run, scales=True), "froze the LayerNorm scales although", {}),
    (partial(_frozen_run, patterns="own"), "patterns are not frozen: this is the full ablation", {}),
    (partial(_frozen_run, ablate="first"), "only the first head of `heads` was ablated", {}),
    (partial(_frozen_run, ablate="none"), "these are the clean logits", {}),
    (partial(_frozen_run, ablate="none"), "these are the clean logits", {**SMALL, "freeze_scales": True}),
    (not_written, "not written yet", {}),
])
def test_pattern_preserving_logits_diagnostics(fn, message, shape):
    fails_with(nb4.check_pattern_preserving_logits, fn, message, shapes=(shape,))


def test_pattern_preserving_logits_reference_passes():
    nb4.check_pattern_preserving_logits(_frozen_run, shapes=({}, {"freeze_scales": True},
                                                             {**SMALL, "n_layers": 3, "heads": [(1, 2)]}))


# ---------------------------------------------------------------- 4.7 the hand computation
def _direct(model, cache, layer, head, centre=True, divide=True, weight=True, bias=False, with_b_O=False):
    attn = model.blocks[layer].attn
    x = torch.einsum("bpd,dm->bpm", cache[f"blocks.{layer}.attn.hook_z"][:, :, head], attn.W_O[head])
    if with_b_O:
        x = x + attn.b_O
    if centre:
        x = x - x.mean(-1, keepdim=True)
    if divide:
        x = x / cache["ln_final.hook_scale"]
    if weight:
        x = x * model.ln_final.w
    if bias:
        x = x + model.ln_final.b
    return x @ model.W_U


@pytest.mark.parametrize("kwargs, message", [
    ({"centre": False, "divide": False, "weight": False}, "final LayerNorm is missing"),
    ({"centre": False}, "centring is missing"),
    ({"divide": False}, "did not divide by the final LayerNorm's scale"),
    ({"weight": False}, "LayerNorm weight w"),
    ({"bias": True}, "added the LayerNorm bias b"),
    ({"with_b_O": True}, "you included b_O"),
])
def test_direct_logit_contribution_diagnostics(kwargs, message):
    fails_with(nb4.check_direct_logit_contribution, partial(_direct, **kwargs), message)


def test_direct_logit_contribution_reference_passes(capsys):
    nb4.check_direct_logit_contribution(_direct)
    nb4.check_direct_logit_contribution(_direct, shapes=({**SMALL, "n_layers": 1, "head": 3},))
    assert "= the ablated logits with patterns and scales frozen" in capsys.readouterr().out


# ---------------------------------------------------------------- 4.8 split second-copy loss
def _split(loss, tokens, seq_len, shift=0, prefix=True, swap=False):
    kept, new = [], []
    for b in range(tokens.shape[0]):
        for i in range(seq_len + 1, 2 * seq_len):
            j = i + shift
            if prefix and tokens[b, j] != tokens[b, j - seq_len]:
                continue
            (kept if tokens[b, j + 1] == tokens[b, j + 1 - seq_len] else new).append(loss[b, i])
    out = (torch.stack(kept).mean(), torch.stack(new).mean())
    return out[::-1] if swap else out


@pytest.mark.parametrize("kwargs, message", [
    ({"swap": True}, "two numbers are swapped"),
    ({"prefix": False}, "did not require the prefix to repeat"),
    ({"shift": -1}, "off by one"),
])
def test_split_second_copy_loss_diagnostics(kwargs, message):
    fails_with(nb4.check_split_second_copy_loss, partial(_split, **kwargs), message)


def test_split_second_copy_loss_reference_passes():
    nb4.check_split_second_copy_loss(_split, seeds=(0, 1, 2), shapes=({}, {"seq_len": 30, "n_changes": 1, "batch": 1}))


# ---------------------------------------------------------------- 4.9 probability on seen tokens
def _seen(logits, tokens, lo=1, hi=1, as_set=True):
    probs = logits.softmax(-1)
    out = torch.zeros(tokens.shape[0], tokens.shape[1] - 1)
    for b in range(tokens.shape[0]):
        for i in range(tokens.shape[1] - 1):
            window = tokens[b, lo:i + hi].tolist()
            chosen = set(window) if as_set else window
            out[b, i] = sum(float(probs[b, i, t]) for t in chosen)
    return out


@pytest.mark.parametrize("kwargs, message", [
    ({"hi": 2}, r"counted the token being predicted"),
    ({"hi": 0}, "left out the current token"),
    ({"lo": 0}, "counted BOS as a seen token"),
    ({"as_set": False}, "counted twice"),
])
def test_seen_token_probability_diagnostics(kwargs, message):
    fails_with(nb4.check_seen_token_probability, partial(_seen, **kwargs), message)


def test_seen_token_probability_reference_passes():
    nb4.check_seen_token_probability(_seen, seeds=(0, 1), shapes=({}, {"pos": 2}))


# ---------------------------------------------------------------- the data helper
def test_changed_repeat_tokens_changes_only_continuations():
    tokens, changed = A.changed_repeat_tokens(6, 15, 40, n_changes=4, seed=3)
    n = 15
    assert tokens.shape == changed.shape == (6, 1 + 2 * n)
    assert (tokens[:, 0] == BOS).all() and not changed[:, : n + 2].any()
    first, second = tokens[:, 1:n + 1], tokens[:, n + 1:]
    assert torch.equal(first != second, changed[:, n + 1:])
    assert (changed.sum(dim=1) == 4).all()
    assert not (changed[:, 1:] & changed[:, :-1]).any(), "two changes side by side"
    for b in range(6):
        assert not set(second[b][changed[b, n + 1:]].tolist()) & set(first[b].tolist())


# ---------------------------------------------------------------- mistakes the catalogue does not reach
def zero_next_head(z, hook, head):
    out = z.clone()
    out[:, :, head + 1] = 0
    return out


def mean_previous_head(z, hook, head, z_ref):
    out = z.clone()
    out[:, :, head - 1] = z_ref[:, :, head - 1].mean(0)
    return out


def increase_arguments_swapped(model, tokens, seq_len, make_hook):
    clean = _second(model, tokens, seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            out[layer, head] = _second(model, tokens, seq_len,
                                       [(f"blocks.{layer}.attn.hook_z", make_hook(head, layer))]) - clean
    return out


def after_pairs_backwards(model, tokens, seq_len, heads):
    return _scores_with(model, tokens, seq_len, _z_hooks([(h, l) for l, h in heads]))


def after_one_short(model, tokens, seq_len, heads):
    return _scores_with(model, tokens, seq_len, _z_hooks(heads), score=lambda p, n: induction_score(p, n - 1))


def pp_block_scales_only(model, tokens, heads, freeze_scales=False):
    _, cache = model.run_with_cache(tokens)
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    if freeze_scales:
        names += [f"blocks.{l}.ln1.hook_scale" for l in range(model.cfg.n_layers)]
    return model.run_with_hooks(tokens, fwd_hooks=[(n, lambda v, hook: cache[hook.name]) for n in names]
                                + _z_hooks(heads))


DEEP = {**SMALL, "n_layers": 3}


@pytest.mark.parametrize("check, fn, message, shape", [
    (nb4.check_zero_ablation_hook, zero_next_head, r"zeroed head `head \+ 1`", {}),
    (nb4.check_mean_ablation_hook, mean_previous_head, r"replaced head `head - 1`", {}),
    (nb4.check_loss_increase_per_head, increase_arguments_swapped, r"you called make_hook\(head, layer\)",
     {"ablation": "halve"}),
    (nb4.check_loss_increase_per_head, increase_arguments_swapped, r"It takes \(layer, head\)", {}),
    (nb4.check_induction_scores_after_ablation, after_pairs_backwards, "layer and head are swapped",
     {**DEEP, "heads": [(0, 1), (0, 2)]}),
    (nb4.check_induction_scores_after_ablation, after_one_short, "you scored with seq_len - 1", {}),
    (nb4.check_pattern_preserving_logits, partial(_frozen_run, patterns="own"), "only the ablated heads' own layers",
     {**DEEP, "heads": [(0, 0), (1, 2)]}),
    (nb4.check_pattern_preserving_logits, pp_block_scales_only, "not the final one", {"freeze_scales": True}),
])
def test_more_diagnostics(check, fn, message, shape):
    fails_with(check, fn, message, shapes=(shape,))


# ---------------------------------------------------------------- judged outside the student's interpreter
def _judged_from_record(check, fn):
    """Collect here, encode and decode the record as the grader does, then judge the decoded record alone."""
    from induction_course.checks.record import decode, encode

    record = check.collect(fn, **check.defaults)
    name, params, decoded = decode(encode(check.id, dict(check.defaults), record))
    return getattr(nb4, name.split(".", 1)[1]).judge(decoded, **params)


@pytest.mark.parametrize("check, good, bad, message", [
    (nb4.check_zero_ablation_hook, A.zero_ablation_hook, zero_sequence, "sequence `head` of the batch"),
    (nb4.check_mean_ablation_hook, A.mean_ablation_hook, mean_of_input, "not the reference batch"),
    (nb4.check_loss_increase_per_head, increase_good, increase_add_hook, "ablations pile up"),
    (nb4.check_icl_change_per_head, partial(_icl_per_head, icl=late_minus_early, combine=lambda a, c: a - c),
     partial(_icl_per_head, icl=late_minus_early, combine=lambda a, c: a / c), "a ratio"),
    (nb4.check_induction_scores_after_ablation, after_good, after_first_only, "only the first head"),
    (nb4.check_pattern_preserving_logits, _frozen_run, pp_not_frozen, "full ablation"),
    (nb4.check_direct_logit_contribution, _direct, partial(_direct, divide=False), "did not divide"),
    (nb4.check_split_second_copy_loss, _split, partial(_split, swap=True), "swapped"),
    (nb4.check_seen_token_probability, _seen, partial(_seen, lo=0), "counted BOS"),
])
def test_judged_from_the_encoded_record_alone(check, good, bad, message):
    assert _judged_from_record(check, good).startswith("✓")
    with pytest.raises(CheckFailed, match=message):
        _judged_from_record(check, bad)


def test_direct_identity_is_judged_from_the_record():
    line = _judged_from_record(nb4.check_direct_logit_contribution, _direct)
    assert "= the ablated logits with patterns and scales frozen" in line


def test_the_visible_heads_are_found_from_the_model():
    case = nb4._heads_case(0)
    _, cache = case["model"].run_with_cache(
        torch.cat([torch.full((16, 1), BOS), torch.randint(1, case["model"].cfg.d_vocab, (16, 46),
                                                           generator=torch.Generator().manual_seed(0))], dim=1))
    scores = diagonal_score(cache["blocks.0.attn.hook_pattern"], 1)
    assert len(case["heads"]) == 3 and all(layer == 0 for layer, _ in case["heads"])
    assert float(scores[case["heads"][0][1]]) == pytest.approx(float(scores.max()), abs=0.05)


# ----- multiple choice: which heads the model needs
def test_head_answers_pass(capsys):
    nb4.check_head_answers({"head_0_3": "B", "head_1_0": " c"})
    assert "✓ both answers are right" in capsys.readouterr().out


@pytest.mark.parametrize("answers, fragment", [
    ({"head_0_3": "a", "head_1_0": "c"}, "measured, not wrong"),
    ({"head_0_3": "c", "head_1_0": "c"}, "where the previous-token heads act"),
    ({"head_0_3": "d", "head_1_0": "c"}, "do not simply add up"),
    ({"head_0_3": "b", "head_1_0": "a"}, "shuffled decks"),
    ({"head_0_3": "b", "head_1_0": "b"}, "does not attend there"),
    ({"head_0_3": "b", "head_1_0": "d"}, "heads do many jobs"),
    ({"head_0_3": "b", "head_1_0": "x"}, "choose one of"),
    ({"head_1_0": "c"}, "must be a dict"),
    (("b", "c"), "must be a dict"),
])
def test_head_answers_name_each_wrong_choice(answers, fragment):
    with pytest.raises(CheckFailed) as info:
        nb4.check_head_answers(answers)
    assert fragment in str(info.value)
