"""Notebook 3's checks: every diagnostic fires on the bug it names.
Correct answers, written apart from the reference, pass in tests/catalogue/ (tests/test_no_self_comparison.py).

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
    tokens = nb3.repeated_tokens(32, 23, model.cfg.d_vocab, seed=2)
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
    _, cache = model.run_with_cache(nb3.repeated_tokens(32, 23, model.cfg.d_vocab, seed=2))
    worst = (0, int(nb3.diagonal_score(cache["pattern", 0], 1).argmin()))
    fails_with(nb3.check_head_roles, model, heads, worst, fragments=("previous_token_head should be",))


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
    w = torch.randn(1, 64, 16, generator=torch.Generator().manual_seed(1))  # unseeded, 0.37-0.38 reads as spectral norms
    one_pair = float(ref.k_composition_scores(w, w.transpose(1, 2), w, w).mean())  # the same head everywhere
    fails_with(nb3.check_random_baseline, one_pair, fragments=("1/sqrt(d_model)",))


def test_random_baseline_not_a_number():
    fails_with(nb3.check_random_baseline, "0.12", fragments=("one number",))


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


# ----- every known mistake is reachable: fed its own output, the judge names it
def _exercise_checks():
    return [(nb3.LOSS, nb3.check_per_token_loss), (nb3.INDUCTION, nb3.check_induction_score),
            (nb3.HEAD_SCORES, nb3.check_induction_scores_of_model), (nb3.POSITIVITY, nb3.check_eigenvalue_positivity),
            (nb3.K_COMPOSITION, nb3.check_k_composition_scores), (nb3.ICL, nb3.check_icl_score)]


@pytest.mark.parametrize("exercise, check", _exercise_checks(), ids=lambda x: getattr(x, "name", ""))
def test_every_bug_is_named_when_it_is_the_answer(exercise, check):
    for bug in exercise.bugs:
        case = exercise.make_case(0)
        output = bug.fn(**{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in case.items()})
        inputs = {k: v for k, v in case.items() if isinstance(v, torch.Tensor)}
        record = [{"seed": 0, "shape": {}, "output": output, "inputs": inputs}]
        with pytest.raises(CheckFailed) as info:
            check.judge(record, seeds=(0,), shapes=({},))
        assert bug.message in str(info.value), f"{bug.message!r} shadowed by: {info.value}"


# ----- records: what the grader sees is enough, and is plain data
def test_catalogue_judged_from_decoded_records_says_what_the_notebook_says():
    """Every catalogued answer, recorded, encoded, decoded and judged as the grader does, gets the same verdict."""
    import contextlib
    import io

    from catalogue import entries
    from induction_course.checks.record import decode, encode

    mistakes, correct = entries("nb3")
    for entry in mistakes + correct:
        check, params = entry.check, {**entry.check.defaults}
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                check(*entry.answers)
                home = "passed"
            except CheckFailed as failure:
                home = str(failure)
        _, decoded_params, record = decode(encode(check.id, params, check.collect(*entry.answers, **params)))
        try:
            graded = check.judge(record, **decoded_params) and "passed"
        except CheckFailed as failure:
            graded = str(failure)
        assert graded == home, f"{entry.kind}: at home {home!r}, graded {graded!r}"


def test_head_roles_record_holds_the_model_not_scores(model):
    heads, prev = _roles(model)
    record = nb3.check_head_roles.collect(model, heads, prev, seq_len=23)
    assert set(record) == {"model", "induction_heads", "previous_token_head"}
    assert set(record["model"]) == {"config", "state_dict"}
    assert all(type(v) is torch.Tensor for v in record["model"]["state_dict"].values())


@pytest.mark.parametrize("change, fragment", [
    (lambda config: config.update(d_model=10 ** 6), "model.cfg.d_model"),
    (lambda config: config.update(positional_embedding_type="alibi; import os"), "positional_embedding_type"),
    (lambda config: config.update(n_heads=8), "do not fit its config"),
])
def test_head_roles_judge_refuses_a_forged_model_record(model, change, fragment):
    heads, prev = _roles(model)
    record = nb3.check_head_roles.collect(model, heads, prev, seq_len=23)
    change(record["model"]["config"])
    with pytest.raises(CheckFailed, match=fragment.replace(".", r"\.")):
        nb3.check_head_roles.judge(record, seq_len=23)


def test_head_roles_follow_the_students_model_not_a_fixed_list(model):
    """Knock out one induction head's queries: the check now wants the list without it, whatever the heads are."""
    heads, prev = _roles(model)
    layer, head = heads[0]
    d_head = model.cfg.d_head
    broken = nb3._trained_model()
    state = broken.state_dict()
    for name in (f"blocks.{layer}.attn.q.weight", f"blocks.{layer}.attn.q.bias"):
        state[name][head * d_head:(head + 1) * d_head] = 0
    broken.load_state_dict(state)
    fails_with(nb3.check_head_roles, broken, heads, prev, fragments=(f"({layer}, {head}) scoring",))
    nb3.check_head_roles(broken, heads[1:], prev)


def test_head_roles_accept_heads_near_the_threshold_either_way(model, monkeypatch):
    _, cache = model.run_with_cache(nb3.repeated_tokens(32, 23, model.cfg.d_vocab, seed=2))
    scores = torch.stack([ref_induction_score(cache["pattern", l], 23) for l in range(model.cfg.n_layers)])
    _, prev = _roles(model)
    layer, head = (int(i) for i in divmod(int(scores.argmax()), model.cfg.n_heads))
    threshold = float(scores[layer, head]) - 0.01  # the best head now sits just above the threshold
    monkeypatch.setattr(nb3, "THRESHOLD", threshold)
    sure = [tuple(p) for p in (scores > threshold + nb3.MARGIN).nonzero().tolist()]
    nb3.check_head_roles(model, sure + [(layer, head)], prev)
    nb3.check_head_roles(model, sure, prev)


# ----- the random baseline names the recipe that gives the student's number
@pytest.mark.parametrize("message, recipe", nb3.BASELINE_MISTAKES, ids=lambda x: x[:30] if isinstance(x, str) else "")
def test_random_baseline_names_each_wrong_recipe(message, recipe):
    fails_with(nb3.check_random_baseline, recipe(64, 16), fragments=(message,))


def test_random_baseline_typed_in():
    fails_with(nb3.check_random_baseline, 0.125, fragments=("exactly 1/sqrt(d_model)",))


# ----- the student's own exceptions are explained, and their traceback kept
@pytest.mark.parametrize("check, fn, fragment", [
    (nb3.check_per_token_loss, lambda logits, tokens: F.cross_entropy(logits[:, :-1], tokens[:, 1:], reduction="none"),
     "class (vocabulary) axis second"),
    (nb3.check_k_composition_scores, lambda W_V0, W_O0, W_Q1, W_K1: (W_V0 @ W_O0) @ (W_Q1 @ W_K1.mT), "[:, None]"),
    (nb3.check_eigenvalue_positivity, lambda matrix: torch.linalg.eig(matrix).sum(-1), "(eigenvalues, eigenvectors)"),
    (nb3.check_generate_repeated_tokens,
     lambda batch, seq_len, d_vocab, seed=0: torch.cat([_bos(batch)] + [_r(batch, seq_len, d_vocab, seed)] * 2),
     "Pass dim=1"),
])
def test_student_exceptions_are_explained_with_their_traceback(check, fn, fragment):
    with pytest.raises(CheckFailed) as info:
        check(fn)
    assert fragment in str(info.value) and info.value.student_traceback, str(info.value)
