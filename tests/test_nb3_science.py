"""Notebook 3's science, asserted on the course's own seeded runs (the runs the notebook makes).

One 2-layer and one 1-layer model are trained once per module, on the CPU, with the notebook's seed.
"""
from __future__ import annotations

import pytest
import torch
from transformer_lens.head_detector import detect_head

from induction_course import circuits as C
from induction_course import training as T
from induction_course.data import repeated_tokens
from induction_course.heads import previous_token_score
from induction_course.tokenizer import IdTokenizer, tokens_to_text


@pytest.fixture(scope="module")
def run():
    return T.train_induction_model(n_layers=2, seed=0, progress=False, device="cpu")


@pytest.fixture(scope="module")
def control():
    return T.train_induction_model(n_layers=1, seed=0, progress=False, device="cpu")


def held_out(model, seq_len: int) -> torch.Tensor:
    return repeated_tokens(32, seq_len, model.cfg.d_vocab, seed=2)


def induction_heads(model, seq_len: int = 23) -> set[tuple[int, int]]:
    scores, _ = T.head_scores(model, held_out(model, seq_len), seq_len)
    return {(layer, head) for layer, head in (scores > 0.4).nonzero().tolist()}


def test_held_out_lengths_never_occur_in_training():
    assert not set(T.HELD_OUT_LENGTHS) & set(T.TRAIN_LENGTHS)
    _, repeated = T.repeating_batch(512, 64, 128, torch.Generator().manual_seed(0))
    first_repeat = repeated.float().argmax(dim=1)  # = block length + 1
    assert not set((first_repeat - 1).tolist()) & set(T.HELD_OUT_LENGTHS)


@pytest.mark.parametrize("seq_len", T.HELD_OUT_LENGTHS)
def test_a_layer1_head_is_an_induction_head_on_held_out_lengths(run, seq_len):
    model, _ = run
    scores, _ = T.head_scores(model, held_out(model, seq_len), seq_len)
    assert scores[1].max() >= 0.5
    assert scores[0].max() < 0.15


@pytest.mark.parametrize("seq_len", T.HELD_OUT_LENGTHS)
def test_second_copy_loss_is_at_most_a_tenth_of_the_first(run, seq_len):
    model, _ = run
    tokens = held_out(model, seq_len)
    with torch.no_grad():
        first, second = C.copy_losses(C.per_token_loss(model(tokens), tokens), seq_len)
    assert second <= 0.1 * first


@pytest.mark.parametrize("seq_len", T.HELD_OUT_LENGTHS)
def test_one_layer_control_forms_no_induction_head(control, seq_len):
    model, _ = control
    scores, _ = T.head_scores(model, held_out(model, seq_len), seq_len)
    assert scores.max() < 0.15


def test_induction_jump_coincides_with_steepest_drop_of_repeated_loss(run):
    _, history = run
    jump, drop = T.jump_step(history), T.steepest_drop_step(history)
    assert abs(jump - drop) <= 100
    best = history["induction_score"][:, -1].amax(-1)
    before, after = best[history["step"] < jump - 50], best[history["step"] > jump + 50]
    assert before.max() < 0.2 and after.min() > 0.5, "the score should jump, not creep up"


def test_previous_token_head_k_composes_with_the_induction_heads(run):
    model, _ = run
    tokens = held_out(model, 23)
    _, cache = model.run_with_cache(tokens)
    prev_head = int(previous_token_score(cache["blocks.0.attn.hook_pattern"]).argmax())
    k_comp = C.k_composition_scores(model.W_V[0], model.W_O[0], model.W_Q[1], model.W_K[1]).detach()
    baseline = C.random_composition_baseline(model.cfg.d_model, model.cfg.d_head)
    assert abs(baseline - model.cfg.d_model ** -0.5) < 0.01
    heads = [head for _, head in induction_heads(model)]
    assert k_comp[prev_head, heads].max() > 2 * baseline


def test_detect_head_ranks_the_same_heads_first(run):
    model, _ = run
    model.tokenizer = IdTokenizer()
    ours = induction_heads(model)
    detected = detect_head(model, tokens_to_text(held_out(model, 23)[:8]), "induction_head")
    top = detected.flatten().topk(len(ours)).indices.tolist()
    assert {divmod(i, model.cfg.n_heads) for i in top} == ours


def test_induction_heads_copy(run):
    model, _ = run
    with torch.no_grad():
        copying = C.copying_score(model.W_E, model.W_V[1], model.W_O[1], model.W_U)
    assert all(copying[head] > 0.8 for _, head in induction_heads(model))


def test_two_layers_learn_more_in_context_than_one(run, control):
    tokens, _ = T.repeating_batch(128, 64, 128, torch.Generator().manual_seed(3))
    scores = []
    for model, _ in (run, control):
        with torch.no_grad():
            scores.append(float(C.icl_score(C.per_token_loss(model(tokens), tokens))))
    assert scores[0] < scores[1] < 0


def test_shipped_checkpoint_is_the_seed0_run(run):
    model, _ = run
    shipped = T.load_induction_model(device="cpu")
    assert T.load_checkpoint()["config"] == {**T.STANDARD_CONFIG, "seed": 0}
    assert T.CHECKPOINT.stat().st_size < 400_000
    tokens = held_out(model, 23)
    fresh, _ = T.head_scores(model, tokens, 23)
    loaded, _ = T.head_scores(shipped, tokens, 23)
    assert torch.allclose(fresh, loaded, atol=0.02)


def test_training_is_deterministic():
    histories = []
    for _ in range(2):
        _, history = T.train_induction_model(n_layers=1, seed=3, steps=20, progress=False, device="cpu")
        histories.append(history)
    for key in ("loss", "repeated_loss", "induction_score", "previous_token_score"):
        assert torch.equal(histories[0][key].nan_to_num(), histories[1][key].nan_to_num())


def test_smeared_keys_let_one_layer_form_induction_heads(control):
    smeared, _, hooks = T.train_smeared_key_model(n_layers=1, seed=0, steps=150, progress=False, device="cpu")
    tokens = held_out(smeared, 23)
    with smeared.hooks(fwd_hooks=hooks):
        scores, _ = T.head_scores(smeared, tokens, 23)
    plain, _ = T.head_scores(control[0], tokens, 23)
    assert scores.max() > 0.4 > 0.15 > plain.max()
