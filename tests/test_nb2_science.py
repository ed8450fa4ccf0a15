"""Notebook 2's claims, asserted on the course's own seeded models.

The trained model has one clear previous-token head in layer 0 (a second, weaker one trails it) and two
averaging heads that spread their attention evenly over everything seen so far; detect_head agrees with our score
up to the factor (n-1)/n; the hand-built head meets 0.95 attention and 99% read-out accuracy; and a
layer-0 key cannot see the previous token while a layer-1 key can.
"""
from __future__ import annotations

import pytest
import torch
from transformer_lens.head_detector import detect_head

from induction_course import handbuilt as hb
from induction_course.checks import nb2
from induction_course.data import BOS, random_tokens
from induction_course.heads import current_token_score, first_token_score, previous_token_score, spread_score
from induction_course.models import make_model
from induction_course.tokenizer import tokens_to_text


@pytest.fixture(scope="module")
def model():
    return nb2.course_model()


@pytest.fixture(scope="module")
def tokens(model):
    """The notebook's scoring tokens: [BOS] then 23 random tokens, 16 sequences."""
    return torch.cat([torch.full((16, 1), BOS), random_tokens(16, 23, model.cfg.d_vocab, seed=0)], dim=1)


@pytest.fixture(scope="module")
def prev_scores(model, tokens):
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return torch.stack([previous_token_score(cache["pattern", l]) for l in range(model.cfg.n_layers)])


def test_one_clear_previous_token_head_in_layer_0(prev_scores):
    print("previous-token scores [layer, head]:\n", prev_scores)
    layer, head = (int(i) for i in torch.unravel_index(prev_scores.argmax(), prev_scores.shape))
    assert layer == 0
    assert prev_scores[layer, head] >= 0.5
    top = prev_scores.flatten().topk(2).values
    assert top[0] - top[1] >= 0.1, "another head ties with the previous-token head"


def test_other_layer_0_heads_spread_their_attention_evenly(model, tokens, prev_scores):
    """Not every layer-0 head is a previous-token head: some average over all the tokens so far."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    spread = spread_score(cache["pattern", 0])
    print("layer-0 spread scores:", spread, "previous-token scores:", prev_scores[0])
    averaging = [h for h in range(model.cfg.n_heads) if spread[h] > 0.9 and prev_scores[0, h] < 0.2]
    assert averaging
    assert spread[int(prev_scores[0].argmax())] < 0.5


def test_two_previous_token_heads_and_two_averaging_heads_in_layer_0(model, tokens, prev_scores):
    """Notebook 2's grid text and its `averaging` question: two layer-0 heads attend to the previous token,
    the other two spread evenly over everything so far and rest little on BOS."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    pattern = cache["pattern", 0]
    spread, bos, current = spread_score(pattern), first_token_score(pattern), current_token_score(pattern)
    print("layer 0: previous", prev_scores[0], "spread", spread, "BOS", bos, "current", current)
    previous = [h for h in range(model.cfg.n_heads) if prev_scores[0, h] >= 0.5 and spread[h] < 0.5]
    averaging = [h for h in range(model.cfg.n_heads) if spread[h] > 0.9 and prev_scores[0, h] < 0.2]
    assert len(previous) == 2 and len(averaging) == 2
    assert all(bos[h] < 0.25 and current[h] < 0.25 for h in averaging), "the averaging heads score low on all three"


def test_previous_token_heads_hold_then_fall_late_in_the_context(model):
    """Notebook 2's curve text and its `where_measured` question, on the notebook's long tokens."""
    cfg = model.cfg
    long_tokens = torch.cat([torch.full((16, 1), BOS), random_tokens(16, cfg.n_ctx - 1, cfg.d_vocab, seed=1)], dim=1)
    with torch.no_grad():
        _, cache = model.run_with_cache(long_tokens)
    on_previous = cache["pattern", 0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=0)  # [head, pos - 1]
    stretches = [(1, 23), (24, 38), (39, 55), (56, cfg.n_ctx - 1)]
    means = torch.tensor([[float(on_previous[h, a - 1:b].mean()) for a, b in stretches] for h in range(cfg.n_heads)])
    print("mean attention on i-1 over", stretches, ":\n", means)
    previous = [h for h in range(cfg.n_heads) if means[h, 0] >= 0.5]
    assert len(previous) == 2
    for h in previous:
        assert means[h, 1] >= means[h, 0] - 0.1, "holds its level beyond the scoring tokens"
        assert means[h, 3] < 0.5 * means[h, 0], "falls to less than half over the last stretch"
    for h in set(range(cfg.n_heads)) - set(previous):
        assert (means[h].diff() < 0).all() and means[h, 3] < 0.05, "an averaging head falls smoothly towards 0"


@pytest.mark.parametrize("answers, right", [({"averaging": "b", "where_measured": "b"}, True),
                                            ({"averaging": "a", "where_measured": "b"}, False),
                                            ({"averaging": "b", "where_measured": "d"}, False)])
def test_layer0_answers(answers, right, capsys):
    if right:
        nb2.check_layer0_answers(answers)
        assert "✓" in capsys.readouterr().out
    else:
        with pytest.raises(nb2.CheckFailed):
            nb2.check_layer0_answers(answers)


def test_detect_head_agrees_up_to_n_minus_1_over_n(model, tokens, prev_scores):
    detect = detect_head(model, tokens_to_text(tokens), "previous_token_head")
    n = tokens.shape[1]
    torch.testing.assert_close(detect.float(), prev_scores * (n - 1) / n, atol=1e-5, rtol=1e-4)
    assert int(detect.argmax()) == int(prev_scores.argmax())


def test_id_tokenizer_round_trips(model, tokens):
    torch.testing.assert_close(model.to_tokens(tokens_to_text(tokens[:3])).cpu(), tokens[:3])


def test_layer_0_keys_cannot_see_the_previous_token_but_layer_1_keys_can(model, tokens):
    p = 10
    corrupted = tokens.clone()
    corrupted[:, p] = tokens[:, p] % (model.cfg.d_vocab - 1) + 1
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens)
        _, dirty = model.run_with_cache(corrupted)
    change = [(dirty["k", l] - clean["k", l]).norm(dim=-1).mean(dim=0) for l in range(2)]   # [pos, head]
    assert float(change[0][p + 1:].abs().max()) == 0.0
    assert float(change[1][p + 1].min()) > 0.0
    assert float(change[1][p + 1].mean()) > float(change[1][p + 2:].mean())


def test_the_previous_token_grid_is_bright_in_layer_0_only(prev_scores):
    """Notebook 2's grid text: two bright layer-0 cells, none in layer 1."""
    print("previous-token scores, layer 0:", [round(float(v), 2) for v in prev_scores[0]],
          f"highest in later layers: {float(prev_scores[1:].max()):.2f}")
    assert int((prev_scores[0] >= 0.5).sum()) == 2
    assert float(prev_scores[1:].max()) < 0.3


@pytest.mark.parametrize("p", [5, 10, 15])
def test_later_layer1_keys_move_mostly_through_the_previous_token_heads(model, tokens, prev_scores, p):
    """Notebook 2's key-change text: with the averaging heads held at their clean output most of the later
    keys' movement is left; with the previous-token heads held, most of it is gone."""
    corrupted = tokens.clone()
    corrupted[:, p] = tokens[:, p] % (model.cfg.d_vocab - 1) + 1
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens)

    def later_change(hold: list[int]) -> float:
        def keep(z, hook):
            z = z.clone()
            z[:, :, hold] = clean["blocks.0.attn.hook_z"][:, :, hold]
            return z
        with torch.no_grad(), model.hooks(fwd_hooks=[("blocks.0.attn.hook_z", keep)]):
            _, dirty = model.run_with_cache(corrupted)
        return float((dirty["k", 1] - clean["k", 1])[:, p + 2:].norm(dim=-1).mean())

    previous = [h for h in range(model.cfg.n_heads) if prev_scores[0, h] > 0.5]
    averaging = [h for h in range(model.cfg.n_heads) if h not in previous]
    moved = later_change([])
    left_avg, left_prev = later_change(averaging) / moved, later_change(previous) / moved
    print(f"p = {p}: averaging heads held, {left_avg:.0%} left; previous-token heads held, {left_prev:.0%} left")
    assert left_avg > 0.6 and left_prev < 0.5


@pytest.mark.parametrize("layout", [hb.Layout(), hb.Layout(d_vocab=10, n_ctx=40), hb.Layout(d_vocab=30, n_ctx=12)])
def test_handbuilt_head_meets_095_and_99_percent(layout):
    model = hb.install(hb.make_handbuilt_model(layout), *hb.reference_qk(layout), *hb.reference_ov(layout))
    for seed in (0, 1, 2):
        tokens = hb.fresh_tokens(layout, 64, seed)
        with torch.no_grad():
            logits, cache = model.run_with_cache(tokens)
        on_prev = hb.attention_on_previous(cache["pattern", 0][:, 0])
        accuracy = float((hb.read_out(logits) == tokens[:, :-1]).float().mean())
        print(f"{layout}: worst attention on i-1 {float(on_prev.min()):.4f}, read-out accuracy {accuracy:.2%}")
        assert float(on_prev.min()) >= 0.95
        assert accuracy >= 0.99


def test_write_head_changes_only_that_head():
    model = make_model(n_layers=2, d_model=32, n_heads=4, d_head=8, n_ctx=16, d_vocab=20, seed=0, device="cpu")
    before = {n: getattr(model.blocks[1].attn, n).detach().clone() for n in ("W_Q", "W_K", "W_V", "W_O")}
    new = {n: torch.randn(before[n].shape[1:], generator=torch.Generator().manual_seed(i))
           for i, n in enumerate(before)}
    hb.write_head(model, 1, 2, **new)
    for name, old in before.items():
        now = getattr(model.blocks[1].attn, name)
        torch.testing.assert_close(now[2], new[name])
        torch.testing.assert_close(now[[0, 1, 3]], old[[0, 1, 3]])
