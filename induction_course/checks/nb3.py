"""Checks for Notebook 3, induction heads in a 2-layer attention-only model.

Each ``check_*`` function is what the student's check cell and the graded test cell call.
Visible tests use the default seed; hidden tests pass other seeds and shapes.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import torch

from induction_course import circuits as ref
from induction_course.checks.core import Bug, CheckFailed, Exercise, call_student, run_check, seeded, make_check, check_choices
from induction_course.data import BOS, repeated_tokens
from induction_course.heads import diagonal_score, induction_score




# ---------------------------------------------------------------- 1. [BOS] R R
def check_generate_repeated_tokens(student_fn: Callable, cases: Sequence[tuple[int, int, int]] = ((8, 10, 12),)) -> None:
    """Check ``generate_repeated_tokens(batch, seq_len, d_vocab, seed)`` by its properties.

    Any way of drawing R is accepted if it is uniform over the non-BOS tokens, seeded and fresh per row.
    """
    for batch, seq_len, d_vocab in cases:
        tokens = _call_generate(student_fn, batch, seq_len, d_vocab, seed=0)
        _check_layout(tokens, batch, seq_len, d_vocab)
        _check_randomness(student_fn, tokens, batch, seq_len, d_vocab)
    print(f"✓ generate_repeated_tokens gives [BOS] R R with a fresh uniform R per row ({len(cases)} shape(s) checked).")


def _call_generate(student_fn: Callable, batch: int, seq_len: int, d_vocab: int, seed: int) -> torch.Tensor:
    case = {"batch": batch, "seq_len": seq_len, "d_vocab": d_vocab, "seed": seed}
    tokens = call_student(student_fn, case, "generate_repeated_tokens")
    if not isinstance(tokens, torch.Tensor):
        raise CheckFailed(f"generate_repeated_tokens returned {type(tokens).__name__}, but a torch.Tensor was expected.")
    if tokens.dtype != torch.long:
        raise CheckFailed(f"generate_repeated_tokens returned dtype {tokens.dtype}; token ids must be torch.long "
                          "(torch.randint gives long by default).")
    return tokens.cpu()


def _check_layout(tokens: torch.Tensor, batch: int, seq_len: int, d_vocab: int) -> None:
    want = (batch, 1 + 2 * seq_len)
    if tuple(tokens.shape) == (batch, 2 * seq_len) and not (tokens[:, 0] == BOS).all():
        raise CheckFailed(f"the sequences have shape {tuple(tokens.shape)}: the BOS token is missing. "
                          f"Put token {BOS} (BOS) in front of R R, so the shape is {want}.")
    if tuple(tokens.shape) == (batch, 1 + seq_len):
        raise CheckFailed(f"the sequences have shape {tuple(tokens.shape)}: there is only one copy of R. "
                          f"Concatenate [BOS], R and R again, for shape {want}.")
    if tuple(tokens.shape) != want:
        raise CheckFailed(f"the tokens have shape {tuple(tokens.shape)}; expected [batch, 1 + 2 * seq_len] = {want}.")
    if not (tokens[:, 0] == BOS).all():
        raise CheckFailed(f"position 0 must be the BOS token ({BOS}) in every row.")
    body = tokens[:, 1:]
    if (body == BOS).any():
        raise CheckFailed(f"R contains token {BOS}, which is BOS. Draw R from 1 .. d_vocab - 1: "
                          "torch.randint(1, d_vocab, ...).")
    if (body < 0).any() or (body >= d_vocab).any():
        raise CheckFailed(f"some tokens are outside 1 .. d_vocab - 1 = {d_vocab - 1}.")
    if not torch.equal(body[:, :seq_len], body[:, seq_len:]):
        raise CheckFailed("the second copy differs from the first. Draw R once and use it twice "
                          "(torch.cat([bos, r, r], dim=1)); two separate draws give two unrelated halves.")


def _check_randomness(student_fn: Callable, tokens: torch.Tensor, batch: int, seq_len: int, d_vocab: int) -> None:
    if batch > 1 and (tokens == tokens[:1]).all():
        raise CheckFailed("every row has the same R. Draw a [batch, seq_len] tensor so each sequence gets its own R.")
    if not torch.equal(_call_generate(student_fn, batch, seq_len, d_vocab, seed=0), tokens):
        raise CheckFailed("two calls with the same seed gave different tokens. Draw with a generator seeded by "
                          "`seed`: torch.randint(..., generator=torch.Generator().manual_seed(seed)).")
    if torch.equal(_call_generate(student_fn, batch, seq_len, d_vocab, seed=1), tokens):
        raise CheckFailed("seeds 0 and 1 gave the same tokens: the `seed` argument is ignored.")
    many = _call_generate(student_fn, 64, 40, 8, seed=0)[:, 1:]
    seen = set(many.unique().tolist())
    if 7 not in seen:
        raise CheckFailed("with d_vocab = 8 the largest token, 7, never appears. torch.randint's upper bound is "
                          "exclusive: use torch.randint(1, d_vocab, ...).")
    if seen != set(range(1, 8)):
        raise CheckFailed(f"with d_vocab = 8 only tokens {sorted(seen)} appear; R should be uniform over 1 .. 7.")


# ---------------------------------------------------------------- 2. per-token loss
def _loss_case(seed: int, batch: int = 3, pos: int = 9, d_vocab: int = 11) -> dict:
    g = seeded(seed)
    return {"logits": 2 * torch.randn(batch, pos, d_vocab, generator=g),
            "tokens": torch.randint(0, d_vocab, (batch, pos), generator=g)}


def _nll(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -log_probs.gather(-1, targets[..., None])[..., 0]


LOSS = Exercise(
    name="per_token_loss",
    make_case=_loss_case,
    reference=ref.per_token_loss,
    dims=("batch", "pos - 1"),
    bugs=(
        Bug("the shift goes the wrong way: the logits at position i predict the token at i + 1, so compare "
            "logits[:, :-1] with tokens[:, 1:] (not logits[:, 1:] with tokens[:, :-1]).",
            lambda logits, tokens: _nll(logits[:, 1:].log_softmax(-1), tokens[:, :-1])),
        Bug("the values are log-probabilities (negative numbers); the loss is minus the log-probability.",
            lambda logits, tokens: -ref.per_token_loss(logits, tokens)),
        Bug("you used probabilities instead of log-probabilities: use log_softmax, not softmax.",
            lambda logits, tokens: -logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]),
        Bug("the logits were not normalised: take log_softmax over the vocabulary before picking the "
            "correct token's entry.",
            lambda logits, tokens: -logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]),
        Bug("log_softmax is over the wrong axis: normalise over the vocabulary (dim=-1), not over positions.",
            lambda logits, tokens: _nll(logits.log_softmax(dim=1)[:, :-1], tokens[:, 1:])),
    ),
)


def check_per_token_loss(student_fn: Callable, seeds: Sequence[int] = (0,), shapes: Sequence[dict] = ({},)) -> None:
    """Check ``per_token_loss(logits, tokens) -> [batch, pos - 1]`` on seeded random logits."""
    case = _loss_case(0)
    got = call_student(student_fn, dict(case), "per_token_loss")
    if isinstance(got, torch.Tensor) and got.dim() == 0:
        raise CheckFailed("per_token_loss returned a single number: keep one loss per position "
                          "(reduction='none', or no .mean()).")
    if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(case["tokens"].shape):
        raise CheckFailed("per_token_loss returned [batch, pos]: every position was scored against its own token. "
                          "The logits at position i predict the token at i + 1; the last position predicts "
                          "nothing we know. Compare logits[:, :-1] with tokens[:, 1:].")
    run_check(student_fn, LOSS, seeds=seeds, shapes=shapes)


# ---------------------------------------------------------------- 3. induction score
def _pattern_case(seed: int, batch: int = 2, head: int = 3, seq_len: int = 6) -> dict:
    n = 1 + 2 * seq_len
    scores = torch.randn(batch, head, n, n, generator=seeded(seed)) * 2
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return {"pattern": scores.masked_fill(future, float("-inf")).softmax(-1), "seq_len": seq_len}


INDUCTION = Exercise(
    name="induction_score",
    make_case=_pattern_case,
    reference=induction_score,
    dims=("head",),
    bugs=(
        Bug("this is a duplicate-token score: you measured attention to the earlier copy of the *current* token "
            "(offset seq_len). An induction head attends to the token *after* it: offset seq_len - 1.",
            lambda pattern, seq_len: diagonal_score(pattern, seq_len, first_query=seq_len + 1)),
        Bug("this is a duplicate-token score (offset seq_len); the induction target is offset seq_len - 1.",
            lambda pattern, seq_len: diagonal_score(pattern, seq_len)),
        Bug("the offset is off by one: a query at i in the second copy should attend to i - (seq_len - 1), "
            "not i - (seq_len - 2).",
            lambda pattern, seq_len: diagonal_score(pattern, seq_len - 2, first_query=seq_len + 1)),
        Bug("you also scored queries in the first copy. The stripe pattern.diagonal(offset=1 - seq_len) starts at "
            "query seq_len - 1, but only second-copy queries (positions seq_len + 1 .. 2 * seq_len) have an "
            "earlier copy to look back at: drop the first two entries of the stripe.",
            lambda pattern, seq_len: diagonal_score(pattern, seq_len - 1)),
        Bug("the scored queries are shifted by one, as if there were no BOS: with BOS at position 0 the second copy "
            "is positions seq_len + 1 .. 2 * seq_len, so the stripe entries to keep are [2:], not [1:-1].",
            lambda pattern, seq_len: pattern.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)[..., 1:-1].mean((0, -1))),
        Bug("the pattern was read as [k_pos, q_pos]: rows are queries and columns keys, so the stripe is "
            "below the diagonal (offset=1 - seq_len, or -(seq_len - 1)).",
            lambda pattern, seq_len: diagonal_score(pattern.transpose(-1, -2), seq_len - 1, first_query=seq_len + 1)),
    ),
)
check_induction_score = make_check(INDUCTION, "nb3")


# ---------------------------------------------------------------- 4. every head's score on a model
@functools.lru_cache(maxsize=1)
def _trained_model():
    from induction_course.training import load_induction_model

    return load_induction_model(device="cpu")


def _model_case(seed: int, seq_len: int = 23, batch: int = 8) -> dict:
    model = _trained_model()
    return {"model": model, "tokens": repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed), "seq_len": seq_len}


@torch.no_grad()
def _all_scores(model, tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Reference: induction score of every head, [layer, head]."""
    _, cache = model.run_with_cache(tokens)
    return torch.stack([induction_score(cache[f"blocks.{layer}.attn.hook_pattern"], seq_len)
                        for layer in range(model.cfg.n_layers)])


HEAD_SCORES = Exercise(
    name="induction_scores_of_model",
    make_case=_model_case,
    reference=_all_scores,
    dims=("layer", "head"),
    atol=1e-4,
    bugs=(
        Bug("the layers are in reverse order: row l must hold layer l's heads.",
            lambda model, tokens, seq_len: _all_scores(model, tokens, seq_len).flip(0)),
        Bug("every row holds the last layer's scores: read blocks.{layer}.attn.hook_pattern for each layer.",
            lambda model, tokens, seq_len: _all_scores(model, tokens, seq_len)[-1:].expand(model.cfg.n_layers, -1)),
    ),
)


check_induction_scores_of_model = make_check(HEAD_SCORES, "nb3")


# ---------------------------------------------------------------- 5. naming the heads
def check_head_roles(model, induction_heads: Sequence[tuple[int, int]], previous_token_head: tuple[int, int],
                     seq_len: int = 23) -> None:
    """Check the student's list of induction heads and their previous-token head against measured scores.

    Induction heads: every head whose induction score on held-out ``[BOS] R R`` is above 0.4.
    Previous-token head: the layer-0 head with the highest previous-token score.
    """
    tokens = repeated_tokens(32, seq_len, model.cfg.d_vocab, seed=99).to(next(model.parameters()).device)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    patterns = [cache[f"blocks.{layer}.attn.hook_pattern"].cpu() for layer in range(model.cfg.n_layers)]
    scores = torch.stack([induction_score(p, seq_len) for p in patterns])
    want = {(int(l), int(h)) for l, h in (scores > 0.4).nonzero().tolist()}
    got = _as_heads(induction_heads, "induction_heads")
    if any(layer == 0 for layer, _ in got):
        raise CheckFailed("a layer-0 head cannot be an induction head here: it sees only token embeddings and "
                          "positions, so it cannot know which token came before each key. Look at layer 1.")
    if got != want:
        missing, extra = sorted(want - got), sorted(got - want)
        raise CheckFailed(f"induction heads should be every head with induction score > 0.4 on held-out [BOS] R R: "
                          f"missing {missing}, not induction heads {extra}.")
    previous = diagonal_score(patterns[0], 1)
    best = (0, int(previous.argmax()))
    if _as_heads([previous_token_head], "previous_token_head") != {best}:
        raise CheckFailed(f"previous_token_head should be the layer-0 head that attends most to the previous "
                          f"position; its score is {float(previous.max()):.2f}. Compare previous-token scores of layer 0.")
    print(f"✓ induction heads {sorted(want)}; previous-token head {best}.")


def _as_heads(heads: Sequence, name: str) -> set[tuple[int, int]]:
    try:
        return {(int(layer), int(head)) for layer, head in heads}
    except (TypeError, ValueError):
        raise CheckFailed(f"{name} should be (layer, head) pairs, e.g. [(1, 0), (1, 2)].") from None


# ---------------------------------------------------------------- 6. copying: eigenvalue positivity
def _matrix_case(seed: int, batch: int = 4, n: int = 6) -> dict:
    return {"matrix": torch.randn(batch, n, n, generator=seeded(seed)) + 0.3 * torch.eye(n)}


def _positivity_from(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (values.sum(-1).real / values.abs().sum(-1)).to(dtype)


POSITIVITY = Exercise(
    name="eigenvalue_positivity",
    make_case=_matrix_case,
    reference=ref.eigenvalue_positivity,
    dims=("matrix",),
    atol=1e-4,
    bugs=(
        Bug("singular values are never negative, so this is always 1. Use the eigenvalues: torch.linalg.eigvals.",
            lambda matrix: _positivity_from(torch.linalg.svdvals(matrix), matrix.dtype)),
        Bug("you used the diagonal entries. Their sum equals the sum of the eigenvalues, but Σ|M_ii| is not Σ|λ|: "
            "take the eigenvalues (torch.linalg.eigvals).",
            lambda matrix: _positivity_from(matrix.diagonal(dim1=-2, dim2=-1), matrix.dtype)),
        Bug("the numerator lost its sign: it is the real part of Σλ, not |Σλ|, so an anti-copying matrix scores "
            "near -1.",
            lambda matrix: (lambda e: (e.sum(-1).abs() / e.abs().sum(-1)).to(matrix.dtype))(torch.linalg.eigvals(matrix))),
        Bug("the denominator should be Σ|λ| with |λ| the complex modulus, not Σ|Re λ|.",
            lambda matrix: (lambda e: (e.sum(-1).real / e.real.abs().sum(-1)).to(matrix.dtype))(torch.linalg.eigvals(matrix))),
    ),
)
check_eigenvalue_positivity = make_check(POSITIVITY, "nb3")


# ---------------------------------------------------------------- 7. K-composition
def _comp_case(seed: int, head0: int = 3, head1: int = 2, d_model: int = 10, d_head: int = 4) -> dict:
    g = seeded(seed)
    return {"W_V0": torch.randn(head0, d_model, d_head, generator=g), "W_O0": torch.randn(head0, d_head, d_model, generator=g),
            "W_Q1": torch.randn(head1, d_model, d_head, generator=g), "W_K1": torch.randn(head1, d_model, d_head, generator=g)}


def _products(W_V0, W_O0, W_Q1, W_K1) -> tuple[torch.Tensor, torch.Tensor]:
    """OV [head0, 1, m, m] and QK [1, head1, m, m] ready to broadcast over pairs."""
    return (W_V0 @ W_O0)[:, None], (W_Q1 @ W_K1.transpose(-1, -2))[None]


def _fro(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(x)


def _k_unnormalised(W_V0, W_O0, W_Q1, W_K1) -> torch.Tensor:
    ov, qk = _products(W_V0, W_O0, W_Q1, W_K1)
    return _fro(ov @ qk.transpose(-1, -2))


def _k_q_composition(W_V0, W_O0, W_Q1, W_K1) -> torch.Tensor:
    ov, qk = _products(W_V0, W_O0, W_Q1, W_K1)
    return _fro(ov @ qk) / (_fro(ov) * _fro(qk))


def _k_squared(W_V0, W_O0, W_Q1, W_K1) -> torch.Tensor:
    ov, qk = _products(W_V0, W_O0, W_Q1, W_K1)
    return _fro(ov @ qk.transpose(-1, -2)) ** 2 / (_fro(ov) ** 2 * _fro(qk) ** 2)


def _k_spectral(W_V0, W_O0, W_Q1, W_K1) -> torch.Tensor:
    ov, qk = _products(W_V0, W_O0, W_Q1, W_K1)
    norm = functools.partial(torch.linalg.matrix_norm, ord=2)
    return norm(ov @ qk.transpose(-1, -2)) / (norm(ov) * norm(qk))


K_COMPOSITION = Exercise(
    name="k_composition_scores",
    make_case=_comp_case,
    reference=ref.k_composition_scores,
    dims=("head0", "head1"),
    atol=1e-5,
    rtol=1e-3,
    bugs=(
        Bug("this is Q-composition (||W_OV W_QK||). The layer-0 output feeds the *keys*, which sit on the right "
            "of W_QK = W_Q W_K^T, so K-composition uses W_OV @ W_QK.T.", _k_q_composition),
        Bug("the score is not normalised: divide ||W_OV W_QK^T||_F by ||W_OV||_F * ||W_QK||_F.", _k_unnormalised),
        Bug("you squared the norms. The score is ||W_OV W_QK^T||_F / (||W_OV||_F ||W_QK||_F), with plain "
            "Frobenius norms.", _k_squared),
        Bug("use the Frobenius norm (torch.linalg.matrix_norm's default, or .norm()), not the spectral norm.",
            _k_spectral),
    ),
)
check_k_composition_scores = make_check(K_COMPOSITION, "nb3")


# ---------------------------------------------------------------- 8. ICL score
def _icl_case(seed: int, batch: int = 4, pos: int = 63) -> dict:
    g = seeded(seed)
    losses = torch.rand(batch, pos, generator=g) * 5 * torch.linspace(1.0, 0.3, pos)
    return {"losses": losses, "early": slice(4, 10), "late": slice(pos - 8, pos)}


ICL = Exercise(
    name="icl_score",
    make_case=_icl_case,
    reference=ref.icl_score,
    dims=(),
    bugs=(
        Bug("the sign is flipped. The convention is late minus early, so a model that learns in context "
            "(lower loss later) gets a *negative* score.",
            lambda losses, early, late: -ref.icl_score(losses, early, late)),
        Bug("you used single positions; average the loss over each whole window (losses[:, early]).",
            lambda losses, early, late: losses[:, late.start].mean() - losses[:, early.start].mean()),
        Bug("this is a ratio; the ICL score is a difference of mean losses, late minus early.",
            lambda losses, early, late: losses[:, late].mean() / losses[:, early].mean()),
    ),
)
check_icl_score = make_check(ICL, "nb3")


def check_random_baseline(baseline: float, d_model: int) -> None:
    """Check the student's random K-composition baseline is about 1/sqrt(d_model)."""
    if not isinstance(baseline, (float, int, torch.Tensor)) or math.isnan(float(baseline)):
        raise CheckFailed("baseline should be one number, the mean composition score of random matrices.")
    expected = 1 / math.sqrt(d_model)
    if not 0.7 * expected < float(baseline) < 1.3 * expected:
        raise CheckFailed(f"baseline is {float(baseline):.3f}; random low-rank matrices give about "
                          f"1/sqrt(d_model) = {expected:.3f}. Average the score of many random pairs.")
    print(f"✓ random baseline {float(baseline):.3f} ≈ 1/sqrt({d_model}) = {expected:.3f}.")


# ---------------------------------------------------------------- 9. what the ICL score can tell
CONTROL_ICL = {
    "a": "No: the control's best induction score on held-out [BOS] R R stays near chance. Prefix matching needs keys "
         "that know the previous token, and one layer cannot build them.",
    "b": None,
    "c": "No: the tokens are random, so a position says nothing about which token comes next.",
    "d": "No: every training sequence fills all 64 positions, so each position is trained equally often.",
}
ICL_ALONE = {
    "a": "No: the 1-layer control has a negative ICL score and no induction head.",
    "b": None,
    "c": "No: on [BOS] R R the control's copying heads also make the second copy cheaper; what separates the "
         "mechanisms is measuring where heads attend and what they copy, not the choice of sequence.",
    "d": "No: the convention (late minus early; negative means learning from context) is the same for every model.",
}
ICL_EXPLANATION = ("A 1-layer model can still learn 'tokens seen in this context are likely to come again', which on "
                   "this data narrows about 127 candidates down to the block's tokens: a gain of roughly "
                   "ln(127) - ln(block length) nats. Only a head that matches the previous token can also say "
                   "*which* of them comes next. A score is a symptom; the mechanism needs its own measurements.")


def check_icl_answers(answers: Any) -> None:
    """Two multiple-choice answers about what the ICL score does and does not show."""
    check_choices(answers, {"control_icl": CONTROL_ICL, "icl_alone": ICL_ALONE}, ICL_EXPLANATION)
