"""Notebook 5's claims, asserted on the shipped text models (induction_course/checkpoints/text_*.pt).

Each test repeats one measurement of the notebook with the reference helpers of
:mod:`induction_course.text_analysis`, on the same seeded held-out text, and asserts what the prose says of it.
"""
from __future__ import annotations

import pytest
import torch
from transformer_lens.head_detector import detect_head

from induction_course import text, text_analysis as T
from induction_course.data import BOS, repeated_tokens
from induction_course.tokenizer import IdTokenizer, tokens_to_text

SEQ_LEN = 40
THRESHOLD = 0.3


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def models():
    return text.load_text_model(2, device="cpu")[0], text.load_text_model(1, device="cpu")[0]


@pytest.fixture(scope="module")
def held_out(models):
    return text.held_out_batch(32, models[0].cfg.n_ctx, seed=0)


@pytest.fixture(scope="module")
def losses(models, held_out):
    return [T.run_loss(m, held_out) for m in models]


@pytest.fixture(scope="module")
def scores(models):
    rep = repeated_tokens(16, SEQ_LEN, models[0].cfg.d_vocab, seed=1)
    return rep, [T.head_scores_on_repeats(m, rep, SEQ_LEN) for m in models]


@pytest.fixture(scope="module")
def heads(models, scores):
    (prev, ind), _ = scores[1]
    induction = [(1, h) for h in range(models[0].cfg.n_heads) if ind[1, h] > THRESHOLD]
    return induction, (0, int(prev[0].argmax()))


def test_the_two_layer_model_has_induction_heads_and_the_control_none(scores, heads):
    (_, ind), (_, control_ind) = scores[1]
    assert heads[0], f"no layer-1 head above {THRESHOLD}: {ind[1]}"
    assert float(control_ind.max()) < THRESHOLD


def test_chance_for_an_even_head_is_about_0_02():
    queries = torch.arange(SEQ_LEN + 1, 2 * SEQ_LEN + 1).double()
    assert round(float((1 / (queries + 1)).mean()), 2) == 0.02


def test_detect_head_ranks_the_same_heads_on_top_with_smaller_numbers(models, scores, heads):
    model, rep = models[0], scores[0]
    model.tokenizer = IdTokenizer()
    detected = detect_head(model, tokens_to_text(rep[:4]), "induction_head")
    top = set(detected.flatten().topk(len(heads[0])).indices.tolist())
    assert top == {l * model.cfg.n_heads + h for l, h in heads[0]}
    assert float(detected.max()) < float(scores[1][0][1].max())


def test_two_layer_model_learns_more_in_context_than_the_control(losses):
    two, one = (float(T.text_icl_score(l)) for l in losses)
    assert two < one < 0, (two, one)


def test_loss_falls_fastest_over_the_first_positions(losses, models):
    early, late = T.icl_windows(models[0].cfg.n_ctx - 1)
    for l in losses:
        by_position = l.mean(dim=0)
        assert by_position[:3].mean() - by_position[early].mean() > by_position[early].mean() - by_position[late].mean()


def test_induction_heads_push_the_correct_token_on_repeats_not_first_occurrences(models, held_out, heads):
    model = models[0]
    _, cache = model.run_with_cache(held_out)
    by_group = T.group_means(T.head_logit_attribution(model, cache, held_out), T.occurrence_groups(held_out))
    for head in heads[0]:
        assert by_group["repeat"][head] > 2 * by_group["first"][head].clamp(min=0) + 0.5, head
    assert abs(float(by_group["repeat"][heads[1]])) < min(float(by_group["repeat"][h]) for h in heads[0])


def test_no_other_single_head_removes_as_much_icl_as_the_induction_heads(models, held_out, losses, heads):
    model = models[0]
    clean = float(T.text_icl_score(losses[0]))
    share = T.ablation_share(clean, float(T.icl_with_heads_ablated(model, held_out, heads[0])))
    others = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads) if (l, h) not in heads[0]]
    for head in others:
        assert T.ablation_share(clean, float(T.icl_with_heads_ablated(model, held_out, [head]))) < share, head


def test_a_new_continuation_costs_more_than_a_repeat(losses, held_out):
    groups = T.occurrence_groups(held_out)
    two = losses[0]
    assert two[groups["new_continuation"]].mean() > two[groups["repeat"]].mean() + 0.5


def test_the_stripe_appears_across_the_snapshots(models, scores, heads):
    steps, snapshots = text.load_snapshots(device="cpu")
    rep = scores[0]
    best = max(heads[0], key=lambda lh: float(scores[1][0][1][lh]))
    first, last = (float(T.head_scores_on_repeats(m, rep, SEQ_LEN)[1][best]) for m in (snapshots[0], snapshots[-1]))
    assert steps == sorted(steps) and first < 0.1 < THRESHOLD < last


def test_occurrence_groups_sort_each_prediction_once():
    tokens = torch.tensor([[BOS, 5, 6, 7, 5, 6, 7, 5, 6, 8]])
    groups = T.occurrence_groups(tokens)
    assert groups["repeat"][0].nonzero()[:, 0].tolist() == [5, 6, 7]    # "5 6 -> 7", "6 7 -> 5", "7 5 -> 6" again
    assert groups["new_continuation"][0].nonzero()[:, 0].tolist() == [8]  # "5 6 -> 8": 7 followed before
    total = sum(g.long() for g in groups.values())
    assert total[0, 2:].eq(1).all() and total[0, :2].eq(0).all()


def test_loss_pca_finds_the_direction_of_a_straight_path():
    path = torch.arange(5.0)[:, None] * torch.tensor([[1.0, 2.0, 0.0]])
    coords, variance = T.loss_pca(path)
    assert float(variance[0]) == pytest.approx(1.0)
    assert torch.allclose(coords[:, 0].abs().diff(), torch.full((4,), 5 ** 0.5), atol=1e-5) or \
        torch.allclose(coords[:, 0].diff().abs(), torch.full((4,), 5 ** 0.5), atol=1e-5)
    turning = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 1.0], [2.0, 2.0]])
    assert T.turning_point(turning) == 2
