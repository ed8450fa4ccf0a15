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
from functools import partial

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


# ----- the prose names heads and describes single-head ablations; these hold it to the shipped model
@pytest.fixture(scope="module")
def reference_z(model):
    _, cache = model.run_with_cache(repeated_tokens(64, SEQ_LEN, model.cfg.d_vocab, seed=2))
    return [cache[A.z_name(layer)] for layer in range(model.cfg.n_layers)]


def test_the_heads_the_prose_names(induction_heads, prev_heads):
    """Notebook 4 says: layer-1 heads 1.1-1.3 are induction heads and 1.0 is not; 0.0 and 0.3 lean to the
    previous token."""
    assert induction_heads == [(1, 1), (1, 2), (1, 3)]
    assert prev_heads == [(0, 0), (0, 3)]


def test_single_head_loss_increases(model, tokens, reference_z):
    """0.0 alone costs most of the second copy's gain, mean-ablated at least as much; 0.3 and 1.0 almost nothing;
    each induction head far less than the gain; zero and mean agree except for 0.0."""
    clean_loss = A.run_loss(model, tokens)
    gain = float(clean_loss[:, :SEQ_LEN].mean() - A.second_copy_loss(clean_loss, SEQ_LEN))
    zero = A.loss_increase_per_head(model, tokens, SEQ_LEN)
    clean = float(A.second_copy_loss(clean_loss, SEQ_LEN))
    mean = torch.zeros_like(zero)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (A.z_name(layer), partial(A.mean_ablation_hook, head=head, z_ref=reference_z[layer]))
            mean[layer, head] = _second_copy(model.run_with_hooks(tokens, fwd_hooks=[hook]), tokens) - clean
    print(f"gain {gain:.3f}\nzero\n{zero}\nmean\n{mean}")
    assert zero[0, 0] > 0.5 * gain and mean[0, 0] >= zero[0, 0]
    assert zero[0, 3] < 0.1 and zero[1, 0] < 0.1
    assert all(0 < zero[1, h] < 0.3 * gain for h in (1, 2, 3))
    difference = (zero - mean).abs()
    difference[0, 0] = 0
    assert float(difference.max()) < 0.1


def test_single_previous_token_head_ablations(model, tokens, clean, induction_heads):
    """0.0 alone cuts every induction score to a fraction; 0.3 alone barely matters, but with 0.0 it lowers them
    further, near the score of even attention; 0.1 and 0.2 change nothing."""
    last = model.cfg.n_layers - 1
    before = induction_score(clean[1][A.pattern_name(last)], SEQ_LEN)
    after = {h: A.induction_scores_after_ablation(model, tokens, SEQ_LEN, [(0, h)]) for h in range(model.cfg.n_heads)}
    both = A.induction_scores_after_ablation(model, tokens, SEQ_LEN, [(0, 0), (0, 3)])
    even = float((1 / (torch.arange(SEQ_LEN + 1, 1 + 2 * SEQ_LEN) + 1)).mean())
    print("before", before, "after", after, "both", both, f"even {even:.3f}")
    for _, h in induction_heads:
        assert after[0][h] < 0.4 * before[h]
        assert after[3][h] > 0.9 * before[h]
        assert after[1][h] > 0.95 * before[h] and after[2][h] > 0.95 * before[h]
        assert both[h] < 0.6 * after[0][h] and both[h] < 4 * even


def test_single_head_icl_changes(model, induction_heads):
    """Each induction head alone removes at most a small share (one even adds ICL, raising the early loss more than
    the late); 0.0 alone removes a large share."""
    icl_tokens, _ = repeating_batch(128, model.cfg.n_ctx, model.cfg.d_vocab, torch.Generator().manual_seed(3))
    clean_loss = A.run_loss(model, icl_tokens)
    clean = float(A.icl_score(clean_loss, A.ICL_EARLY, A.ICL_LATE))
    shares = A.icl_change_per_head(model, icl_tokens, A.ICL_EARLY, A.ICL_LATE) / -clean
    print("share of ICL removed per head\n", shares)
    assert all(shares[l, h] < 0.25 for l, h in induction_heads)
    assert shares[0, 0] > 0.4
    layer, head = divmod(int(shares.argmin()), model.cfg.n_heads)
    assert (layer, head) in induction_heads and shares[layer, head] < 0
    ablated = A.run_loss(model, icl_tokens, A.ablation_hooks([(layer, head)]))
    early_rise = float(ablated[:, A.ICL_EARLY].mean() - clean_loss[:, A.ICL_EARLY].mean())
    late_rise = float(ablated[:, A.ICL_LATE].mean() - clean_loss[:, A.ICL_LATE].mean())
    assert early_rise > 2 * late_rise > 0


def test_layernorm_hides_single_heads_not_groups(model, induction_heads, prev_heads):
    """Frozen LayerNorm scales move a group's share of the ICL removed by a few points at most, but make each
    single induction head's share larger, one of them from negative to positive."""
    icl_tokens, _ = repeating_batch(128, model.cfg.n_ctx, model.cfg.d_vocab, torch.Generator().manual_seed(3))
    clean = float(A.icl_score(A.run_loss(model, icl_tokens), A.ICL_EARLY, A.ICL_LATE))

    def share(heads, freeze):
        logits = A.pattern_preserving_logits(model, icl_tokens, heads, freeze_scales=freeze)
        return (float(A.icl_score(A.per_token_loss(logits, icl_tokens), A.ICL_EARLY, A.ICL_LATE)) - clean) / -clean

    for group in (prev_heads, induction_heads):
        print(group, share(group, False), share(group, True))
        assert abs(share(group, True) - share(group, False)) < 0.03
    singles = [(share([head], False), share([head], True)) for head in induction_heads]
    print("single heads, patterns frozen / scales frozen too:", singles)
    assert all(frozen > free for free, frozen in singles)
    assert any(free < 0 < frozen for free, frozen in singles)


def test_induction_reaches_about_as_far_as_the_training_distances(model, induction_heads):
    """Attention on the token after the earlier occurrence, d positions back: high at training distances (at most
    30), falling steadily beyond."""
    from induction_course.data import BOS, random_tokens
    from induction_course.training import TRAIN_LENGTHS

    assert max(TRAIN_LENGTHS) == 30
    reach = {}
    for d in (10, 20, 28, 34, 40, 46):
        block = random_tokens(64, d, model.cfg.d_vocab, seed=5)
        far = torch.cat([torch.full((64, 1), BOS), block, block[:, :model.cfg.n_ctx - 1 - d]], dim=1)
        scores = induction_score(model.run_with_cache(far)[1][A.pattern_name(model.cfg.n_layers - 1)], d)
        reach[d] = float(scores[[h for _, h in induction_heads]].mean())
    print("mean induction score by distance:", reach)
    assert min(reach[10], reach[20], reach[28]) > 0.6
    assert reach[28] > reach[34] > reach[40] > reach[46]
    assert reach[46] < 0.3 * reach[20]


def test_from_entry_30_the_loss_stays_low(model):
    """Notebook 4's loss-by-position text: once every training block has repeated (the longest is 30 tokens),
    the loss stays far below its start."""
    icl_tokens, repeated = repeating_batch(128, model.cfg.n_ctx, model.cfg.d_vocab, torch.Generator().manual_seed(3))
    curve = A.run_loss(model, icl_tokens).mean(dim=0)
    print(f"loss at entry 0 {float(curve[0]):.2f}, highest from entry 30 on {float(curve[30:].max()):.2f}")
    assert float(repeated[:, 31:].float().mean()) == 1.0
    assert float(curve[30:].max()) < 0.15 * float(curve[0])
