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
    return text.held_out_batch(64, models[0].cfg.n_ctx, seed=0)   # the notebook's held-out text


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


def test_the_control_has_no_induction_head(scores):
    assert float(scores[1][1][1].max()) < THRESHOLD


def test_chance_for_an_even_head_is_about_0_02():
    queries = torch.arange(SEQ_LEN + 1, 2 * SEQ_LEN + 1).double()
    assert round(float((1 / (queries + 1)).mean()), 2) == 0.02


def test_detect_head_gives_smaller_numbers(models, scores):
    model, rep = models[0], scores[0]
    model.tokenizer = IdTokenizer()
    detected = detect_head(model, tokens_to_text(rep[:4]), "induction_head")
    assert float(detected.max()) < float(scores[1][0][1].max())


def test_the_notebook_icl_score_is_the_training_script_s(losses):
    for l in losses:
        assert float(T.text_icl_score(l)) == pytest.approx(text.icl_score(l), abs=1e-6)


def test_loss_falls_fastest_over_the_first_positions(losses, models):
    early, late = T.icl_windows(models[0].cfg.n_ctx - 1)
    for l in losses:
        by_position = l.mean(dim=0)
        assert by_position[:3].mean() - by_position[early].mean() > abs(by_position[early].mean() - by_position[late].mean())


def test_heads_that_pass_the_threshold_push_more_on_repeats(models, held_out, heads):
    """Section 4 says what a copying head shows; every head that passes the induction threshold shows it."""
    model = models[0]
    _, cache = model.run_with_cache(held_out)
    by_group = T.group_means(T.head_logit_attribution(model, cache, held_out), T.occurrence_groups(held_out))
    for head in heads[0]:
        assert by_group["repeat"][head] > by_group["first"][head], head


def test_ablation_leaves_the_model_clean(models, held_out, losses):
    model = models[0]
    T.icl_with_heads_ablated(model, held_out, [(1, 0), (0, 0)])
    assert torch.equal(T.run_loss(model, held_out), losses[0])
    assert T.ablation_share(-0.4, -0.1) == pytest.approx(0.75)


def test_a_new_continuation_costs_more_than_a_repeat(losses, held_out):
    groups = T.occurrence_groups(held_out)
    for l in losses:
        assert l[groups["new_continuation"]].mean() > l[groups["repeat"]].mean()


def test_common_word_pairs_come_from_the_weights(models):
    ids = torch.cat([torch.tensor([BOS]), text.encode("And the children of")])[None]
    for model in models:
        assert text.token_strings([int(model(ids)[0, -1].argmax())]) == [" Israel"]


def test_snapshots_run_from_the_start_to_the_end_of_training(models):
    steps, snapshots = text.load_snapshots(device="cpu")
    history = text.load_text_model(2, device="cpu")[1]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == int(history["step"][-1])
    assert len(snapshots) == len(steps) >= 3


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


def test_the_two_layer_model_has_induction_heads(scores, heads):
    """Section 2 names the layer-1 heads above the threshold; the rest of the notebook studies them."""
    assert heads[0], f"no layer-1 head above {THRESHOLD}: {scores[1][0][1][1]}"


def test_induction_predicts_repeats_and_is_wrong_on_new_continuations(losses, held_out):
    """Section 7: against the control (no induction head), the 2-layer model is better on repeats and worse on a
    repeated prefix with a new continuation."""
    groups = T.occurrence_groups(held_out)
    two, one = losses
    assert two[groups["repeat"]].mean() < one[groups["repeat"]].mean()
    assert two[groups["new_continuation"]].mean() > one[groups["new_continuation"]].mean()


def test_the_loss_pca_path_turns_inside_the_rise_of_the_induction_score(models, held_out):
    """Section 6: the sharpest turn of the snapshots' per-token-loss path lies in the first half of the induction
    score's rise."""
    steps, snapshots = text.load_snapshots(device="cpu")
    history = text.load_text_model(2, device="cpu")[1]
    positions = torch.randint(1, models[0].cfg.n_ctx - 1, (held_out.shape[0],),
                              generator=torch.Generator().manual_seed(4))
    coords, _ = T.loss_pca(T.per_token_losses(snapshots, held_out, positions))
    turn_step = steps[T.turning_point(coords)]
    best = history["induction_score"][:, 1].amax(-1)
    low, high = float(best[0]), float(best.max())
    at_turn = float(best[history["step"].tolist().index(turn_step)])
    assert low + 0.05 * (high - low) < at_turn < low + 0.5 * (high - low), (turn_step, at_turn, low, high)
