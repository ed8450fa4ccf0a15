"""Notebook 5's text models: the script trains reproducibly, and the shipped checkpoints hold what the prose claims."""
from __future__ import annotations

import pytest
import torch

from induction_course import text, text_training
from induction_course.circuits import per_token_loss
from induction_course.data import BOS, repeated_tokens
from induction_course.heads import induction_score, previous_token_score

INDUCTION_MIN = 0.3      # best layer-1 head of the shipped 2-layer model, on [BOS] R R (|R| = 40)
PREVIOUS_MIN = 0.3       # best layer-0 head
CONTROL_INDUCTION_MAX = 0.1
LOSS_MARGIN = 0.02       # 2-layer held-out loss at least this much below the control's (nats; measured 0.035-0.043)


@pytest.fixture(scope="module")
def checkpoint() -> dict:
    return torch.load(text.MODEL_PATHS[2], map_location="cpu", weights_only=True)


def _scores(model, tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Induction and previous-token scores [layer, head] through the bridge."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    patterns = [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(model.cfg.n_layers)]
    return (torch.stack([induction_score(p, seq_len) for p in patterns]),
            torch.stack([previous_token_score(p) for p in patterns]))


def test_held_out_books_are_never_trained_on() -> None:
    train, held_out = text.corpus("train"), text.corpus("held_out")
    assert len(held_out) == len(text.HELD_OUT_BOOKS) and len(train) + len(held_out) == 66
    assert not set(held_out) & set(train)
    assert text.book_text("Ruth").startswith("Now it came to pass in the days when the judges ruled")


def test_tokenizer_is_the_one_the_script_trains_and_reads_back() -> None:
    assert text_training.train_tokenizer().get_vocab() == text.tokenizer().get_vocab()
    passage = "And Moses said unto the LORD"
    ids = text.encode(passage)
    assert "".join(text.token_strings(ids)) == passage and "Ġ" not in "".join(text.token_strings(ids))
    assert text.token_strings([BOS]) == [text.BOS_TOKEN]


def test_copied_spans_vary_in_length_and_offset() -> None:
    recipe = text_training.RECIPE
    stream = torch.arange(10_000) % 500 + 1  # every token one more than the one before (mod 500): copies stand out
    tokens = text_training.training_batch(stream, torch.Generator().manual_seed(0), recipe)
    n_copied = round(recipe["batch_size"] * recipe["copy_share"])
    continuous = lambda row: ((row[2:] - row[1:-1]) % 500 == 1)  # noqa: E731
    assert (tokens[:, 0] == BOS).all() and all(continuous(row).all() for row in tokens[n_copied:])
    lengths, distances = set(), set()
    for row in tokens[:n_copied]:
        breaks = (~continuous(row)).nonzero()[:, 0] + 2  # positions that do not follow on from the one before
        dst, length = int(breaks[0]), int(breaks[1] - breaks[0])
        assert recipe["copy_min"] <= length <= recipe["copy_max"]
        assert (row[dst + length:] == row[dst:len(row) - length]).all()  # repeated with period L to the end
        src = int((row[1:dst] == row[dst]).nonzero()[0]) + 1  # the span's earlier place in the real text
        assert (row[src:src + length] == row[dst:dst + length]).all()
        lengths.add(length)
        distances.add(dst - src)
    assert len(lengths) > 5 and len(distances) > 5


def test_a_short_run_trains_exactly_as_the_shipped_run(checkpoint: dict) -> None:
    recipe = {**checkpoint["recipe"], "steps": text_training.FIRST_STEPS, "eval_every": text_training.FIRST_STEPS}
    tok = text.tokenizer()
    before = torch.get_num_threads()
    torch.set_num_threads(checkpoint["threads"])
    try:
        _, history, _ = text_training.train(2, text_training.stream(tok, "train"),
                                            text_training.stream(tok, "held_out"), recipe, device="cpu")
    finally:
        torch.set_num_threads(before)
    shipped = checkpoint["history"]
    assert torch.equal(history["first_losses"], shipped["first_losses"])
    assert history["icl_score"][0] == shipped["icl_score"][0]
    assert torch.equal(history["induction_score"][0], shipped["induction_score"][0])


def test_two_layer_model_has_induction_and_previous_token_heads() -> None:
    model, _ = text.load_text_model(2, device="cpu")
    tokens = repeated_tokens(16, 40, model.cfg.d_vocab, seed=123)
    induction, previous = _scores(model, tokens, 40)
    assert induction[1].max() > INDUCTION_MIN
    assert previous[0].max() > PREVIOUS_MIN


def test_control_has_no_induction_head_and_a_higher_held_out_loss() -> None:
    """What the shipped models show. Not claimed: a 2-layer ICL score clearly below the control's (on 256 held-out
    windows both are within +-0.2 nats of zero and differ by less than their noise; TEXT_MODEL.md)."""
    model, _ = text.load_text_model(2, device="cpu")
    control, _ = text.load_text_model(1, device="cpu")
    induction, _ = _scores(control, repeated_tokens(16, 40, control.cfg.d_vocab, seed=123), 40)
    assert induction.max() < CONTROL_INDUCTION_MAX
    for seed in (0, 1):
        tokens = text.held_out_batch(256, model.cfg.n_ctx, seed=seed)
        with torch.no_grad():
            two, one = (per_token_loss(m(tokens), tokens).mean() for m in (model, control))
        assert two < one - LOSS_MARGIN, (seed, float(two), float(one))


def test_on_all_held_out_text_the_two_layer_icl_is_below_the_controls() -> None:
    """Paired over every non-overlapping held-out window (about 1,000): the 2-layer model's per-window ICL score
    minus the control's is negative by more than four standard errors, and each model's own ICL score is within
    2.5 standard errors of zero (about +-0.045 nats), as Notebook 5 says."""
    tokens = text.held_out_windows(128)
    per_window = []
    for n_layers in (2, 1):
        model, _ = text.load_text_model(n_layers, device="cpu")
        with torch.no_grad():
            losses = torch.cat([per_token_loss(model(batch), batch) for batch in tokens.split(64)])
        early, late = text.icl_positions(tokens.shape[1])
        per_window.append(losses[:, late].mean(1) - losses[:, early].mean(1))
    difference = per_window[0] - per_window[1]
    standard_error = difference.std() / len(difference) ** 0.5
    assert len(difference) > 1000
    assert difference.mean() < -4 * standard_error, (float(difference.mean()), float(standard_error))  # -5.7 SE
    for own in per_window:  # Notebook 5: "each model's own score lies within 2.5 standard errors of zero"
        assert abs(own.mean()) < 2.5 * own.std() / len(own) ** 0.5, float(own.mean())


def test_snapshots_span_the_phase_change() -> None:
    steps, models = text.load_snapshots(device="cpu")
    assert 8 <= len(steps) <= 12 and steps == sorted(steps)
    tokens = repeated_tokens(16, 40, models[0].cfg.d_vocab, seed=123)
    first, last = (_scores(m, tokens, 40)[0][1].max() for m in (models[0], models[-1]))
    assert first < CONTROL_INDUCTION_MAX and last > INDUCTION_MIN
    middle = [float(_scores(m, tokens, 40)[0][1].max()) for m in models[1:-1]]
    assert sum(first + 0.1 < s < last - 0.1 for s in middle) >= 2  # some snapshots inside the rise
