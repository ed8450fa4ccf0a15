"""Notebook 4's claims, asserted on the course's own seeded model (Notebook 3's checkpoint).

Ablating all the induction heads together removes at least 80% of the ICL score. Full ablation of the
previous-token heads (score above 0.3: this model has two, 0.0 and 0.3, and only 0.0 matters on its own)
raises the second-copy loss by at least 1 nat, and by at least 10 times what pattern-preserving ablation does; it also collapses the
induction heads' scores. With attention
patterns and LayerNorm scales frozen, zero-ablating a head equals subtracting its contribution to the
logits, computed by hand. Induction predicts confidently wrong when a prefix recurs with a new
continuation.
"""
from __future__ import annotations

import math

import pytest
import torch

from induction_course import ablation as A
from induction_course.data import repeated_tokens
from induction_course.heads import induction_score
from induction_course.training import load_induction_model, repeating_batch

SEQ_LEN = 23


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def model():
    return load_induction_model(device="cpu")


@pytest.fixture(scope="module")
def tokens(model):
    """The notebook's test data: 32 sequences of [BOS] R R with |R| = 23 (a length never trained on)."""
    return repeated_tokens(32, SEQ_LEN, model.cfg.d_vocab, seed=0)


@pytest.fixture(scope="module")
def clean(model, tokens):
    with torch.no_grad():
        return model.run_with_cache(tokens)


@pytest.fixture(scope="module")
def induction_heads(model, clean):
    last = model.cfg.n_layers - 1
    scores = induction_score(clean[1][A.pattern_name(last)], SEQ_LEN)
    heads = [(last, h) for h in range(model.cfg.n_heads) if scores[h] > 0.3]
    assert heads, f"no induction head: last-layer scores {scores}"
    return heads


def _second_copy(logits: torch.Tensor, tokens: torch.Tensor) -> float:
    return float(A.second_copy_loss(A.per_token_loss(logits, tokens), SEQ_LEN))


def test_ablating_all_induction_heads_removes_most_icl(model, induction_heads):
    icl_tokens, _ = repeating_batch(128, model.cfg.n_ctx, model.cfg.d_vocab, torch.Generator().manual_seed(3))
    clean = float(A.icl_score(A.run_loss(model, icl_tokens), A.ICL_EARLY, A.ICL_LATE))
    ablated_loss = A.run_loss(model, icl_tokens, A.ablation_hooks(induction_heads))
    ablated = float(A.icl_score(ablated_loss, A.ICL_EARLY, A.ICL_LATE))
    removed = (ablated - clean) / -clean
    print(f"ICL clean {clean:.3f}, induction heads {induction_heads} ablated {ablated:.3f}: {removed:.1%} removed")
    assert clean < -1.0, "the model shows little in-context learning to begin with"
    assert removed >= 0.8


def test_single_induction_heads_are_redundant(model, induction_heads):
    """Each induction head alone removes less of the ICL score than all of them together."""
    icl_tokens, _ = repeating_batch(64, model.cfg.n_ctx, model.cfg.d_vocab, torch.Generator().manual_seed(3))
    changes = A.icl_change_per_head(model, icl_tokens, A.ICL_EARLY, A.ICL_LATE)
    ablated_loss = A.run_loss(model, icl_tokens, A.ablation_hooks(induction_heads))
    together = float(A.icl_score(ablated_loss, A.ICL_EARLY, A.ICL_LATE)
                     - A.icl_score(A.run_loss(model, icl_tokens), A.ICL_EARLY, A.ICL_LATE))
    print("ICL change per head [layer, head]:\n", changes, "\ntogether:", together)
    assert all(changes[l, h] < together for l, h in induction_heads)


@pytest.fixture(scope="module")
def prev_heads(model):
    heads = A.previous_token_heads(model)
    print("previous-token heads:", heads)
    return heads


def test_previous_token_heads_full_versus_pattern_preserving(model, tokens, prev_heads):
    clean = _second_copy(model(tokens), tokens)
    full = _second_copy(A.ablated_logits(model, tokens, prev_heads), tokens) - clean
    preserving = _second_copy(A.pattern_preserving_logits(model, tokens, prev_heads), tokens) - clean
    linear = _second_copy(A.pattern_preserving_logits(model, tokens, prev_heads, freeze_scales=True), tokens) - clean
    print(f"heads {prev_heads}: clean {clean:.3f}; full {full:+.3f}, pattern-preserving {preserving:+.4f} "
          f"(LayerNorm scales frozen too: {linear:+.4f}) nats")
    assert full >= 1.0
    assert full >= 10 * abs(preserving)
    assert full >= 10 * abs(linear)


def test_previous_token_ablation_collapses_induction_scores(model, tokens, clean, induction_heads, prev_heads):
    last = model.cfg.n_layers - 1
    before = induction_score(clean[1][A.pattern_name(last)], SEQ_LEN)
    after = A.induction_scores_after_ablation(model, tokens, SEQ_LEN, prev_heads)
    print("induction scores before", before, f"after ablating {prev_heads}", after)
    for _, h in induction_heads:
        assert after[h] < 0.5 * before[h]


def test_induction_heads_full_equals_pattern_preserving(model, tokens, induction_heads):
    """Nothing after the last layer has a pattern to preserve."""
    full = A.ablated_logits(model, tokens, induction_heads)
    preserving = A.pattern_preserving_logits(model, tokens, induction_heads)
    assert float((full - preserving).abs().max()) < 1e-4


def test_frozen_ablation_is_subtraction(model, tokens, clean):
    """Patterns and LayerNorm scales frozen: ablation = clean logits − the head's frozen contribution.
    For a last-layer head that is its direct path; earlier heads also reach the logits through later values."""
    logits, cache = clean
    last = model.cfg.n_layers - 1
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            frozen = A.pattern_preserving_logits(model, tokens, [(layer, head)], freeze_scales=True)
            by_hand = logits - A.frozen_logit_contribution(model, cache, layer, head)
            err = float((frozen - by_hand).abs().max())
            print(f"head {layer}.{head}: max |error| {err:.2e}")
            assert err < 1e-4
            if layer == last:
                direct = logits - A.direct_logit_contribution(model, cache, layer, head)
                assert float((frozen - direct).abs().max()) < 1e-4


def test_frozen_scales_are_needed_for_exactness(model, tokens, clean):
    """With patterns frozen but LayerNorm scales free, the hand computation is only approximate."""
    logits, cache = clean
    layer, head = model.cfg.n_layers - 1, 0
    patterns_only = A.pattern_preserving_logits(model, tokens, [(layer, head)])
    err = float((patterns_only - (logits - A.direct_logit_contribution(model, cache, layer, head))).abs().max())
    print(f"patterns frozen, scales free: max |error| {err:.3g}")
    assert err > 1e-3


def test_new_continuation_is_predicted_wrongly(model):
    tokens, _ = A.changed_repeat_tokens(32, SEQ_LEN, model.cfg.d_vocab, n_changes=4, seed=4)
    right, wrong = A.split_second_copy_loss(A.run_loss(model, tokens), tokens, SEQ_LEN)
    chance = math.log(model.cfg.d_vocab - 1)
    print(f"induction right {float(right):.3f}, wrong {float(wrong):.3f}, chance {chance:.3f} nats")
    assert float(right) < 1.0
    assert float(wrong) > chance + 1.0
