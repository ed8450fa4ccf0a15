"""Notebook 3's checks: the reference passes, and every diagnostic fires on the bug it names.

The buggy functions below are written the way a student would write them, independently of
the ``Bug`` variants inside the checks.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from induction_course import circuits as ref
from induction_course.checks import CheckFailed, nb3
from induction_course.heads import induction_score as ref_induction_score
from induction_course.training import load_induction_model


def fails_with(check, *args, fragments: tuple[str, ...]) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"expected {fragment!r} in: {message}"
    return message


@pytest.fixture(scope="module")
def model():
    return load_induction_model(device="cpu")


# ----- reference solutions pass, on visible and hidden cases
def good_tokens(batch, seq_len, d_vocab, seed=0):
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), r, r], dim=1)


def ref_scores_of_model(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([ref_induction_score(cache["pattern", layer], seq_len) for layer in range(model.cfg.n_layers)])


def test_references_pass(capsys):
    nb3.check_generate_repeated_tokens(good_tokens, cases=((8, 10, 12), (3, 5, 50), (16, 23, 128), (2, 3, 40)))
    nb3.check_per_token_loss(ref.per_token_loss, seeds=(0, 11), shapes=({}, {"pos": 2}, {"batch": 1, "d_vocab": 3}))
    nb3.check_induction_score(ref_induction_score, seeds=(0, 11), shapes=({}, {"seq_len": 2}, {"head": 1, "seq_len": 13}))
    nb3.check_induction_scores_of_model(ref_scores_of_model, seeds=(0, 5), shapes=({}, {"seq_len": 13, "batch": 4}))
    nb3.check_eigenvalue_positivity(ref.eigenvalue_positivity, seeds=(0, 11), shapes=({}, {"n": 1}, {"batch": 1, "n": 9}))
    nb3.check_k_composition_scores(ref.k_composition_scores, seeds=(0, 11),
                                   shapes=({}, {"head0": 1, "head1": 4}, {"d_model": 6, "d_head": 6}))
    nb3.check_icl_score(ref.icl_score, seeds=(0, 11), shapes=({}, {"batch": 1, "pos": 20}))
    nb3.check_random_baseline(ref.random_composition_baseline(64, 16), 64)
    assert capsys.readouterr().out.count("✓") == 8


def test_student_style_alternatives_pass():
    def loss_with_cross_entropy(logits, tokens):
        return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")

    def score_with_loop(pattern, seq_len):
        rows = [pattern[:, :, i, i - seq_len + 1] for i in range(seq_len + 1, 2 * seq_len + 1)]
        return torch.stack(rows, dim=-1).mean(dim=(0, 2))

    nb3.check_per_token_loss(loss_with_cross_entropy)
    nb3.check_induction_score(score_with_loop)


# ----- generate_repeated_tokens
def _r(batch, seq_len, d_vocab, seed, low=1):
    return torch.randint(low, d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))


def _bos(batch):
    return torch.zeros(batch, 1, dtype=torch.long)


@pytest.mark.parametrize("fn, fragment", [
    (lambda batch, seq_len, d_vocab, seed=0: torch.cat([_r(batch, seq_len, d_vocab, seed)] * 2, dim=1),
     "BOS token is missing"),
    (lambda batch, seq_len, d_vocab, seed=0: torch.cat([_bos(batch), _r(batch, seq_len, d_vocab, seed)], dim=1),
     "only one copy"),
    (lambda batch, seq_len, d_vocab, seed=0: torch.cat([_bos(batch), _r(batch, seq_len, d_vocab, seed),
                                                        _r(batch, seq_len, d_vocab, seed + 1)], dim=1),
     "second copy differs"),
    (lambda batch, seq_len, d_vocab, seed=0: torch.cat([_bos(batch)] + [_r(batch, seq_len, d_vocab, seed, low=0)] * 2, dim=1),
     "R contains token 0"),
    (lambda batch, seq_len, d_vocab, seed=0: torch.cat([_r(batch, seq_len, d_vocab, seed)] * 2 + [_bos(batch)], dim=1),
     "position 0 must be the BOS"),
    (lambda batch, seq_len, d_vocab, seed=0: torch.cat([_bos(batch)] + [_r(1, seq_len, d_vocab, seed).expand(batch, -1)] * 2, dim=1),
     "every row has the same R"),
    (lambda batch, seq_len, d_vocab, seed=0: (lambda r: torch.cat([_bos(batch), r, r], dim=1))(
        torch.randint(1, d_vocab, (batch, seq_len))), "same seed gave different tokens"),
    (lambda batch, seq_len, d_vocab, seed=0: (lambda r: torch.cat([_bos(batch), r, r], dim=1))(
        _r(batch, seq_len, d_vocab, 1234)), "`seed` argument is ignored"),
    (lambda batch, seq_len, d_vocab, seed=0: (lambda r: torch.cat([_bos(batch), r, r], dim=1))(
        _r(batch, seq_len, d_vocab - 1, seed)), "upper bound is exclusive"),
    (lambda batch, seq_len, d_vocab, seed=0: (lambda r: torch.cat([_bos(batch), r, r], dim=1).float())(
        _r(batch, seq_len, d_vocab, seed)), "torch.long"),
])
def test_generate_repeated_tokens_diagnostics(fn, fragment):
    fails_with(nb3.check_generate_repeated_tokens, fn, fragments=(fragment,))


# ----- per_token_loss
@pytest.mark.parametrize("fn, fragment", [
    (lambda logits, tokens: F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none"),
     "scored against its own token"),
    (lambda logits, tokens: F.cross_entropy(logits[:, 1:].transpose(1, 2), tokens[:, :-1], reduction="none"),
     "shift goes the wrong way"),
    (lambda logits, tokens: F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:]), "single number"),
    (lambda logits, tokens: torch.log_softmax(logits, -1)[:, :-1].gather(2, tokens[:, 1:].unsqueeze(2)).squeeze(2),
     "log-probabilities"),
    (lambda logits, tokens: -torch.softmax(logits[:, :-1], -1).gather(2, tokens[:, 1:].unsqueeze(2)).squeeze(2),
     "probabilities instead of log-probabilities"),
    (lambda logits, tokens: -logits[:, :-1].gather(2, tokens[:, 1:].unsqueeze(2)).squeeze(2), "not normalised"),
    (lambda logits, tokens: -torch.log_softmax(logits, 1)[:, :-1].gather(2, tokens[:, 1:].unsqueeze(2)).squeeze(2),
     "wrong axis"),
])
def test_per_token_loss_diagnostics(fn, fragment):
    fails_with(nb3.check_per_token_loss, fn, fragments=(fragment,))


# ----- induction_score
def _stripe(pattern, offset):
    return torch.diagonal(pattern, offset=-offset, dim1=2, dim2=3)


@pytest.mark.parametrize("fn, fragment", [
    (lambda pattern, seq_len: _stripe(pattern, seq_len)[..., 1:].mean((0, 2)), "duplicate-token"),
    (lambda pattern, seq_len: _stripe(pattern, seq_len - 1).mean((0, 2)), "also scored queries in the first copy"),
    (lambda pattern, seq_len: _stripe(pattern, seq_len - 1)[..., 1:-1].mean((0, 2)), "as if there were no BOS"),
    (lambda pattern, seq_len: _stripe(pattern, seq_len - 2)[..., 3:].mean((0, 2)), "off by one"),
    (lambda pattern, seq_len: torch.diagonal(pattern, offset=seq_len - 1, dim1=2, dim2=3).mean((0, 2)),
     "[k_pos, q_pos]"),
    (lambda pattern, seq_len: _stripe(pattern, seq_len - 1)[..., 2:].mean(), "expected [head=3]"),
])
def test_induction_score_diagnostics(fn, fragment):
    fails_with(nb3.check_induction_score, fn, fragments=(fragment,))


# ----- every head of a model
def test_scores_of_model_layers_reversed():
    def scores(model, tokens, seq_len):
        _, cache = model.run_with_cache(tokens)
        return torch.stack([ref_induction_score(cache["pattern", l], seq_len) for l in reversed(range(2))])
    fails_with(nb3.check_induction_scores_of_model, scores, fragments=("reverse order",))


def test_scores_of_model_only_last_layer():
    def scores(model, tokens, seq_len):
        _, cache = model.run_with_cache(tokens)
        last = ref_induction_score(cache["pattern", 1], seq_len)
        return torch.stack([last, last])
    fails_with(nb3.check_induction_scores_of_model, scores, fragments=("last layer",))


# ----- naming the heads
def _roles(model):
    tokens = nb3.repeated_tokens(32, 23, model.cfg.d_vocab, seed=99)
    _, cache = model.run_with_cache(tokens)
    scores = torch.stack([ref_induction_score(cache["pattern", l], 23) for l in range(2)])
    heads = [tuple(p) for p in (scores > 0.4).nonzero().tolist()]
    prev = (0, int(nb3.diagonal_score(cache["pattern", 0], 1).argmax()))
    return heads, prev


def test_head_roles_pass(model, capsys):
    heads, prev = _roles(model)
    nb3.check_head_roles(model, heads, prev)
    assert "✓" in capsys.readouterr().out


def test_head_roles_layer0_included(model):
    heads, prev = _roles(model)
    fails_with(nb3.check_head_roles, model, heads + [prev], prev, fragments=("layer-0 head cannot be",))


def test_head_roles_missing_head(model):
    heads, prev = _roles(model)
    fails_with(nb3.check_head_roles, model, heads[1:], prev, fragments=("missing",))


def test_head_roles_wrong_previous_token_head(model):
    heads, prev = _roles(model)
    fails_with(nb3.check_head_roles, model, heads, (0, (prev[1] + 1) % 4), fragments=("previous_token_head should be",))


def test_head_roles_not_pairs(model):
    _, prev = _roles(model)
    fails_with(nb3.check_head_roles, model, [1, 2], prev, fragments=("(layer, head) pairs",))


# ----- eigenvalue positivity
def _ratio(values):
    return values.sum(-1).real / values.abs().sum(-1)


@pytest.mark.parametrize("fn, fragment", [
    (lambda matrix: _ratio(torch.linalg.svd(matrix).S), "singular values"),
    (lambda matrix: _ratio(torch.diagonal(matrix, dim1=-2, dim2=-1)), "diagonal entries"),
    (lambda matrix: (lambda e: e.sum(-1).abs() / e.abs().sum(-1))(torch.linalg.eigvals(matrix)), "lost its sign"),
    (lambda matrix: (lambda e: e.real.sum(-1) / e.real.abs().sum(-1))(torch.linalg.eigvals(matrix)), "complex modulus"),
])
def test_eigenvalue_positivity_diagnostics(fn, fragment):
    fails_with(nb3.check_eigenvalue_positivity, fn, fragments=(fragment,))


# ----- K-composition
def _k_comp(W_V0, W_O0, W_Q1, W_K1, transpose=True, norm=lambda x: x.norm(dim=(-2, -1)), power=1):
    out = torch.zeros(W_V0.shape[0], W_Q1.shape[0])
    for i in range(W_V0.shape[0]):
        for j in range(W_Q1.shape[0]):
            ov, qk = W_V0[i] @ W_O0[i], W_Q1[j] @ W_K1[j].T
            out[i, j] = (norm(ov @ (qk.T if transpose else qk)) / (norm(ov) * norm(qk))) ** power
    return out


@pytest.mark.parametrize("fn, fragment", [
    (lambda W_V0, W_O0, W_Q1, W_K1: _k_comp(W_V0, W_O0, W_Q1, W_K1, transpose=False), "Q-composition"),
    (lambda W_V0, W_O0, W_Q1, W_K1: torch.stack([torch.stack([
        ((W_V0[i] @ W_O0[i]) @ (W_Q1[j] @ W_K1[j].T).T).norm() for j in range(W_Q1.shape[0])])
        for i in range(W_V0.shape[0])]), "not normalised"),
    (lambda W_V0, W_O0, W_Q1, W_K1: _k_comp(W_V0, W_O0, W_Q1, W_K1, power=2), "squared the norms"),
    (lambda W_V0, W_O0, W_Q1, W_K1: _k_comp(W_V0, W_O0, W_Q1, W_K1, norm=lambda x: torch.linalg.matrix_norm(x, ord=2)), "Frobenius"),
    (lambda W_V0, W_O0, W_Q1, W_K1: _k_comp(W_V0, W_O0, W_Q1, W_K1).T, "wrong order"),
])
def test_k_composition_diagnostics(fn, fragment):
    fails_with(nb3.check_k_composition_scores, fn, fragments=(fragment,))


# ----- ICL score
@pytest.mark.parametrize("fn, fragment", [
    (lambda losses, early, late: losses[:, early].mean() - losses[:, late].mean(), "sign is flipped"),
    (lambda losses, early, late: (losses[:, late.start] - losses[:, early.start]).mean(), "single positions"),
    (lambda losses, early, late: losses[:, late].mean() / losses[:, early].mean(), "ratio"),
])
def test_icl_score_diagnostics(fn, fragment):
    fails_with(nb3.check_icl_score, fn, fragments=(fragment,))


# ----- random baseline
def test_random_baseline_from_one_pair_of_identical_heads():
    w = torch.randn(1, 64, 16)
    one_pair = float(ref.k_composition_scores(w, w.transpose(1, 2), w, w).mean())  # the same head everywhere
    fails_with(nb3.check_random_baseline, one_pair, 64, fragments=("1/sqrt(d_model)",))


def test_random_baseline_not_a_number():
    fails_with(nb3.check_random_baseline, "0.12", 64, fragments=("one number",))


# ----- multiple choice on the ICL score
def test_icl_answers_pass(capsys):
    nb3.check_icl_answers({"control_icl": "B", "icl_alone": " b"})
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("answers, fragment", [
    ({"control_icl": "a", "icl_alone": "b"}, "stays near chance"),
    ({"control_icl": "d", "icl_alone": "b"}, "trained equally often"),
    ({"control_icl": "b", "icl_alone": "a"}, "negative ICL score and no induction head"),
    ({"control_icl": "b", "icl_alone": "e"}, "choose one of"),
    ({"control_icl": "b"}, "must be a dict"),
    (["b", "b"], "must be a dict"),
])
def test_icl_answers_diagnostics(answers, fragment):
    fails_with(nb3.check_icl_answers, answers, fragments=(fragment,))
