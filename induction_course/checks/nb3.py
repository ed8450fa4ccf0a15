"""Checks for Notebook 3, induction heads in a 2-layer attention-only model.

Each ``check_*`` is a :class:`~induction_course.checks.core.Check`: its ``collect`` half runs the
student's code and records plain data, its ``judge`` half decides from that record alone (see
:mod:`induction_course.checks.core`). Visible tests use the default seed; hidden tests pass other
seeds and shapes, always as literals.

The function exercises are declared as data (:class:`~induction_course.checks.core.Exercise` with its bugs and
its diagnoses, each a ``Diagnosis(case, output, inputs)``) and made by ``make_check``, so the engine alone
collects, judges and formats them. Notebook 3's diagnoses read what the output shows: what the student's own
exception means, a list of tensors or a Python number where one tensor goes, a shape that a known mistake gives
(a flattened, concatenated or one-to-one paired result), infinite losses, a grid of zeros.

Checks that need the course's trained model rebuild it from the checkpoint, and the check of the
student's named heads rebuilds *their* model from its recorded weights: no head index is written
down here, so a retrained model changes nothing.
"""
from __future__ import annotations

import functools
import math
import re
from typing import Any, Callable, Sequence

import torch

from induction_course import circuits as ref
from induction_course.checks.core import (Bug, Case, Check, CheckFailed, Diagnosis, Exercise, choices_check,
                                          float16_diagnosis, make_check, seeded, unwrap)
from induction_course.checks.record import Opaque, Raised, as_data, capture
from induction_course.data import BOS, repeated_tokens
from induction_course.heads import diagonal_score, induction_score, previous_token_score
from induction_course.training import STANDARD_CONFIG

Explanation = Callable[[Case, Raised], "str | None"]


# ---------------------------------------------------------------- Notebook 3's diagnoses (stage 1 of core's order)
def _raised_means(name: str, explain: Explanation) -> Diagnosis:
    """Say what the student's own exception means: its first line, then ``explain(case, error)`` (None: no idea)."""
    def diagnose(case: Case, output: Any, inputs: Any = None) -> str | None:
        if not isinstance(output, Raised) or output.type_name == "NotImplementedError":
            return None
        hint = explain(case, output)
        first = (output.message.splitlines() or [""])[0]
        return f"{name} raised {output.type_name}: {first}\n{hint}" if hint else None
    return diagnose


def _one_tensor(name: str) -> Diagnosis:
    """Name a result that is not one tensor: a list or tuple of tensors, or a Python number."""
    def diagnose(case: Case, output: Any, inputs: Any = None) -> str | None:
        if isinstance(output, (list, tuple)) and output and all(isinstance(o, torch.Tensor) for o in output):
            return (f"{name} returned a {type(output).__name__} of {len(output)} tensors; return one "
                    "tensor (torch.stack(...) the pieces along a new axis).")
        if isinstance(output, (bool, int, float)):
            return (f"{name} returned a Python {type(output).__name__}; return the tensor itself "
                    "(drop the .item() or float(...)).")
        return None
    return diagnose


def _shape(output: Any) -> tuple[int, ...] | None:
    return tuple(output.shape) if type(output) is torch.Tensor else None  # noqa: E721


# ---------------------------------------------------------------- 1. [BOS] R R
def _collect_tokens(student_fn: Any, cases: Sequence[Sequence[int]]) -> Any:
    """Call ``generate_repeated_tokens`` on every case with seed 0, seed 0 again and seed 1, then once on a
    large draw over a small vocabulary (to see every token)."""
    if not callable(student_fn):
        return as_data(Opaque(type(student_fn).__name__))
    calls = [(int(b), int(n), int(v), seed) for b, n, v in cases for seed in (0, 0, 1)] + [_MANY]
    return [{"args": list(args), "output": as_data(capture(student_fn, *args))} for args in calls]


_MANY = (64, 40, 8, 0)  # batch, seq_len, d_vocab, seed: 2560 draws from 7 tokens, each token certain to appear


def _judge_tokens(record: Any, cases: Sequence[Sequence[int]]) -> str:
    if not isinstance(record, list):
        raise CheckFailed(f"generate_repeated_tokens should be a function, but it is a "
                          f"{getattr(record, 'type_name', type(record).__name__)}.")
    calls = [(int(b), int(n), int(v), seed) for b, n, v in cases for seed in (0, 0, 1)] + [_MANY]
    if [tuple(e.get("args", ())) if isinstance(e, dict) else None for e in record] != calls:
        raise CheckFailed("generate_repeated_tokens: the recorded calls do not match the check's; "
                          "run the check cell as it is.")
    outputs = [_tokens(e["output"], tuple(e["args"])) for e in record]
    for i, (batch, seq_len, d_vocab) in enumerate(cases):
        first, again, other = outputs[3 * i: 3 * i + 3]
        _check_layout(first, int(batch), int(seq_len), int(d_vocab))
        _check_randomness(first, again, other, int(batch))
        _check_repeats(first, int(seq_len), int(d_vocab))
    _check_uniform(outputs[-1])
    return (f"✓ generate_repeated_tokens gives [BOS] R R with a fresh uniform R per row "
            f"({len(cases)} shape(s) checked).")


def _tokens(output: Any, args: tuple[int, ...]) -> torch.Tensor:
    if isinstance(output, Raised):
        hint = _explain_tokens(output)
        if hint:
            raise CheckFailed(f"generate_repeated_tokens raised {output.type_name}: {output.message.splitlines()[0]}"
                              f"\n{hint}", output.traceback)
    output = unwrap(output, "generate_repeated_tokens")
    if type(output) is not torch.Tensor:  # noqa: E721
        kind = output.type_name if isinstance(output, Opaque) else type(output).__name__
        raise CheckFailed(f"generate_repeated_tokens{args} returned {kind}, but a torch.Tensor was expected.")
    if output.dtype != torch.long:
        why = (" A BOS column from torch.zeros or torch.ones is float, and torch.cat then makes everything float: "
               "give it dtype=torch.long." if output.is_floating_point() else "")
        raise CheckFailed(f"generate_repeated_tokens returned dtype {output.dtype}; token ids must be torch.long "
                          f"(torch.randint's default), the type an embedding lookup expects.{why}")
    return output.cpu()


def _explain_tokens(error: Raised) -> str | None:
    message = error.message
    if "must match except in dimension 0" in message:
        return ("torch.cat joined the pieces along dim 0, its default, stacking them as rows. Pass dim=1 to put "
                "BOS, R and R side by side in each row.")
    if "same number of dimensions" in message or "Dimension out of range" in message:
        return ("the pieces you concatenate have different numbers of axes: make the BOS piece [batch, 1], like R, "
                "which is [batch, seq_len].")
    if "without replacement" in message:
        return ("R was drawn without replacement, which cannot give more tokens than the vocabulary holds (and "
                "never repeats one, as independent draws do): use torch.randint(1, d_vocab, (batch, seq_len)).")
    if "generator=" in message and "Generator" in message:
        return ("generator= takes a torch.Generator, not the seed itself: "
                "generator=torch.Generator().manual_seed(seed).")
    return None


def _check_layout(tokens: torch.Tensor, batch: int, seq_len: int, d_vocab: int) -> None:
    want = (batch, 1 + 2 * seq_len)
    shape = tuple(tokens.shape)
    if shape == (batch, 2 * seq_len) and not (tokens[:, 0] == BOS).all():
        raise CheckFailed(f"the sequences have shape {shape}: the BOS token is missing. "
                          f"Put token {BOS} (BOS) in front of R R, so the shape is {want}.")
    if shape == (batch, 1 + seq_len):
        raise CheckFailed(f"the sequences have shape {shape}: there is only one copy of R. "
                          f"Concatenate [BOS], R and R again, for shape {want}.")
    if shape == want[::-1] and batch != want[1]:
        raise CheckFailed(f"the tokens have shape {shape}: they are transposed, one sequence per column. Each row "
                          f"must be one sequence: shape [batch, 1 + 2 * seq_len] = {want}.")
    if len(shape) == 2 and shape[1] == want[1] and shape[0] != batch:
        raise CheckFailed(f"the tokens have shape {shape} for batch = {batch}: the first axis must be the batch, "
                          f"one row per sequence, for shape {want}.")
    if shape != want:
        raise CheckFailed(f"the tokens have shape {shape}; expected [batch, 1 + 2 * seq_len] = {want}.")
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


def _check_randomness(tokens: torch.Tensor, again: torch.Tensor, other: torch.Tensor, batch: int) -> None:
    if batch > 1 and (tokens == tokens[:1]).all():
        raise CheckFailed("every row has the same R. Draw a [batch, seq_len] tensor so each sequence gets its own R.")
    if not torch.equal(again, tokens):
        raise CheckFailed("two calls with the same seed gave different tokens. Draw with a generator seeded by "
                          "`seed`: torch.randint(..., generator=torch.Generator().manual_seed(seed)).")
    if torch.equal(other, tokens):
        raise CheckFailed("seeds 0 and 1 gave the same tokens: the `seed` argument is ignored.")


def _check_repeats(tokens: torch.Tensor, seq_len: int, d_vocab: int) -> None:
    """Fail if no row of R repeats a token where uniform independent draws would almost surely repeat one."""
    r = tokens[:, 1:1 + seq_len]
    if any(len(set(row.tolist())) < seq_len for row in r):
        return
    no_repeat_in_a_row = math.prod(1 - i / (d_vocab - 1) for i in range(seq_len))
    if no_repeat_in_a_row ** r.shape[0] < 1e-6:
        raise CheckFailed(f"no row of R repeats a token: each row holds {seq_len} different tokens of "
                          f"{d_vocab - 1}. Independent uniform draws would repeat one in almost every row (all "
                          f"{r.shape[0]} rows without a repeat has probability {no_repeat_in_a_row ** r.shape[0]:.1g}). "
                          "R looks drawn without replacement (torch.randperm, or torch.multinomial without "
                          "replacement=True): use torch.randint(1, d_vocab, (batch, seq_len)).")


def _check_uniform(many: torch.Tensor) -> None:
    if many.dim() != 2 or many.shape[0] != _MANY[0]:
        raise CheckFailed(f"generate_repeated_tokens{_MANY} returned shape {list(many.shape)}; expected "
                          f"[{_MANY[0]}, {1 + 2 * _MANY[1]}].")
    body = many[:, 1:]
    seen = set(body.unique().tolist())
    if 7 not in seen:
        raise CheckFailed("with d_vocab = 8 the largest token, 7, never appears. torch.randint's upper bound is "
                          "exclusive: use torch.randint(1, d_vocab, ...).")
    if seen != set(range(1, 8)):
        raise CheckFailed(f"with d_vocab = 8 only tokens {sorted(seen)} appear; R should be uniform over 1 .. 7.")
    counts = torch.bincount(body.flatten(), minlength=8)[1:].double()
    expected = body.numel() / 7
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    if chi2 > 40:  # 6 degrees of freedom: a uniform draw exceeds 40 with probability below 1e-6
        share = ", ".join(f"{t}: {c / body.numel():.0%}" for t, c in zip(range(1, 8), counts.tolist()))
        raise CheckFailed(f"with d_vocab = 8 the tokens are far from uniform ({share}); draw every token of "
                          "1 .. d_vocab - 1 with the same probability (torch.randint).")


# generate_repeated_tokens(batch, seq_len, d_vocab, seed), checked by its properties: any way of drawing R is
# accepted if it is uniform over the non-BOS tokens, seeded and fresh per row.
check_generate_repeated_tokens = Check("nb3.check_generate_repeated_tokens", _collect_tokens, _judge_tokens,
                                       {"cases": ((8, 10, 12),)})


# ---------------------------------------------------------------- 2. per-token loss
def _loss_case(seed: int, batch: int = 3, pos: int = 9, d_vocab: int = 11) -> dict:
    g = seeded(seed)
    return {"logits": 2 * torch.randn(batch, pos, d_vocab, generator=g),
            "tokens": torch.randint(0, d_vocab, (batch, pos), generator=g)}


def _nll(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -log_probs.gather(-1, targets[..., None])[..., 0]


def _loss_shape(case: Case, output: Any, inputs: Any = None) -> str | None:
    shape, tokens = _shape(output), case["tokens"]
    batch, pos = tokens.shape
    if shape == (batch, pos):
        return ("per_token_loss returned [batch, pos]: every position was scored against its own token. The logits "
                "at position i predict the token at i + 1; the last position predicts nothing we know. Compare "
                "logits[:, :-1] with tokens[:, 1:].")
    if shape == ():
        return ("per_token_loss returned a single number: keep one loss per position (reduction='none', and no "
                ".mean() or .sum()).")
    if shape == (batch * (pos - 1),) and batch > 1:
        return (f"per_token_loss returned a flat vector of {batch * (pos - 1)} losses: the [batch, pos - 1] grid was "
                "flattened (e.g. for F.cross_entropy). Reshape it back: .reshape(batch, pos - 1), or "
                ".view_as(tokens[:, 1:]).")
    if shape == (batch, pos - 1, batch, pos - 1):
        return ("per_token_loss returned shape [batch, pos - 1, batch, pos - 1]: indexing log_probs[..., targets] "
                "with the whole target tensor picks every target for every position. Pick one entry per position "
                "with log_probs.gather(-1, targets[..., None])[..., 0].")
    return None


def _loss_infinite(case: Case, output: Any, inputs: Any = None) -> str | None:
    """Infinite losses, where a softmax of these logits gives every token a probability above 0."""
    if _shape(output) is None or not output.is_floating_point() or not torch.isinf(output).any():
        return None
    return (f"per_token_loss returned an infinite loss at {int(torch.isinf(output).sum())} of {output.numel()} "
            "positions: the log of a probability of exactly 0, where a softmax of these logits gives every token "
            "a probability above 0. A guess: the probabilities were rounded down (a floor division //, or an "
            "integer cast). Use log_softmax (or F.cross_entropy), which never rounds a probability.")


def _explain_loss(case: Case, error: Raised) -> str | None:
    message = error.message
    if "Expected target size" in message or "Expected input batch_size" in message:
        return ("F.cross_entropy wants the class (vocabulary) axis second: pass logits[:, :-1].transpose(1, 2), of "
                "shape [batch, d_vocab, pos - 1], with targets [batch, pos - 1] (or flatten both to [N, d_vocab] "
                "and [N]).")
    if "could not be broadcast" in message:
        return ("the index tensors must broadcast to [batch, pos - 1]: index with torch.arange(batch)[:, None], "
                "torch.arange(pos - 1)[None, :] and the targets, or use .gather(-1, targets[..., None]).")
    if "same number of dimensions" in message:
        return ("gather's index needs as many axes as log_probs: use targets[..., None], then drop that axis "
                "again with [..., 0].")
    if "Size does not match at dimension" in message or "must match the size of tensor" in message:
        return ("the predictions and their targets don't line up: the logits at positions 0 .. pos - 2 (logits[:, "
                ":-1]) predict the tokens at 1 .. pos - 1 (tokens[:, 1:]); both have pos - 1 positions.")
    return None


LOSS = Exercise(
    name="per_token_loss",
    make_case=_loss_case,
    reference=ref.per_token_loss,
    dims=("batch", "pos - 1"),
    bugs=(
        Bug("the shift goes the wrong way: the logits at position i predict the token at i + 1, so compare "
            "logits[:, :-1] with tokens[:, 1:] (not logits[:, 1:] with tokens[:, :-1]).",
            lambda logits, tokens: _nll(logits[:, 1:].log_softmax(-1), tokens[:, :-1])),
        Bug("each prediction was scored against the token at its own position: logits[:, 1:] with tokens[:, 1:]. "
            "The logits at position i predict the *next* token: compare logits[:, :-1] with tokens[:, 1:].",
            lambda logits, tokens: _nll(logits[:, 1:].log_softmax(-1), tokens[:, 1:])),
        Bug("each prediction was scored against the token at its own position: logits[:, :-1] with tokens[:, :-1]. "
            "The logits at position i predict the *next* token: compare logits[:, :-1] with tokens[:, 1:].",
            lambda logits, tokens: _nll(logits[:, :-1].log_softmax(-1), tokens[:, :-1])),
        Bug("the values are log-probabilities (negative numbers); the loss is minus the log-probability.",
            lambda logits, tokens: -ref.per_token_loss(logits, tokens)),
        Bug("you used probabilities instead of log-probabilities: use log_softmax, not softmax.",
            lambda logits, tokens: -logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]),
        Bug("the logits were not normalised: take log_softmax over the vocabulary before picking the "
            "correct token's entry.",
            lambda logits, tokens: -logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]),
        Bug("log_softmax is over the wrong axis: normalise over the vocabulary (dim=-1), not over positions.",
            lambda logits, tokens: _nll(logits.log_softmax(dim=1)[:, :-1], tokens[:, 1:])),
        Bug("log_softmax is over the wrong axis: normalise over the vocabulary (dim=-1), not over positions.",
            lambda logits, tokens: _nll(logits[:, :-1].log_softmax(dim=1), tokens[:, 1:])),
        Bug("log_softmax is over the wrong axis: normalise over the vocabulary (dim=-1), not over the batch.",
            lambda logits, tokens: _nll(logits.log_softmax(dim=0)[:, :-1], tokens[:, 1:])),
        Bug("the loss is in bits (log base 2); the course measures it in nats, with the natural log.",
            lambda logits, tokens: ref.per_token_loss(logits, tokens) / math.log(2)),
    ),
    diagnoses=(_raised_means("per_token_loss", _explain_loss), _one_tensor("per_token_loss"), _loss_shape,
               _loss_infinite, float16_diagnosis(ref.per_token_loss)),
)
check_per_token_loss = make_check(LOSS, "nb3")


# ---------------------------------------------------------------- 3. induction score
def _pattern_case(seed: int, batch: int = 2, head: int = 3, seq_len: int = 6) -> dict:
    n = 1 + 2 * seq_len
    scores = torch.randn(batch, head, n, n, generator=seeded(seed)) * 2
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return {"pattern": scores.masked_fill(future, float("-inf")).softmax(-1), "seq_len": seq_len}


def _stripe(pattern: torch.Tensor, seq_len: int) -> torch.Tensor:
    """The induction stripe, query i to key i - (seq_len - 1), for queries seq_len - 1 .. 2 * seq_len."""
    return pattern.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)


INDUCTION_BUGS = (
    Bug("this is a duplicate-token score: you measured attention to the earlier copy of the *current* token "
        "(offset seq_len). An induction head attends to the token *after* it: offset seq_len - 1.",
        lambda pattern, seq_len: diagonal_score(pattern, seq_len, first_query=seq_len + 1)),
    Bug("this is a duplicate-token score (offset seq_len); the induction target is offset seq_len - 1.",
        lambda pattern, seq_len: diagonal_score(pattern, seq_len)),
    Bug("the offset is off by one: a query at i in the second copy should attend to i - (seq_len - 1), "
        "not i - (seq_len - 2).",
        lambda pattern, seq_len: diagonal_score(pattern, seq_len - 2, first_query=seq_len + 1)),
    Bug("the offset is off by one: i - (seq_len + 1) is the token *before* the earlier copy of the current token; "
        "the induction target is the token after it, i - (seq_len - 1).",
        lambda pattern, seq_len: diagonal_score(pattern, seq_len + 1, first_query=seq_len + 1)),
    Bug("you also scored queries in the first copy. The stripe pattern.diagonal(offset=1 - seq_len) starts at "
        "query seq_len - 1, but only second-copy queries (positions seq_len + 1 .. 2 * seq_len) have an "
        "earlier copy to look back at: drop the first two entries of the stripe.",
        lambda pattern, seq_len: diagonal_score(pattern, seq_len - 1)),
    Bug("the scored queries are shifted by one, as if there were no BOS: with BOS at position 0 the second copy "
        "is positions seq_len + 1 .. 2 * seq_len, so the stripe entries to keep are [2:], not [1:-1].",
        lambda pattern, seq_len: _stripe(pattern, seq_len)[..., 1:-1].mean((0, -1))),
    Bug("the last query is missing: the second copy runs up to position 2 * seq_len inclusive, so a range of "
        "queries ends at 2 * seq_len + 1 (a range's end is exclusive), and the stripe slice is [2:], not [2:-1].",
        lambda pattern, seq_len: _stripe(pattern, seq_len)[..., 2:-1].mean((0, -1))),
    Bug("every score is exactly 0, as the stripe above the diagonal gives (a causal pattern is 0 there). A guess: "
        "the pattern was read as [k_pos, q_pos] (rows are queries and columns keys, so the stripe is below the "
        "diagonal: offset=1 - seq_len, or -(seq_len - 1)), or a floor division (//) rounded the scores down to 0 "
        "(divide with /, or take .mean).",
        lambda pattern, seq_len: diagonal_score(pattern.transpose(-1, -2), seq_len - 1, first_query=seq_len + 1)),
    Bug("the stripe was summed over the queries instead of averaged: the score is a mean attention probability "
        "(between 0 and 1), so take .mean over batch and queries.",
        lambda pattern, seq_len: _stripe(pattern, seq_len)[..., 2:].sum(-1).mean(0)),
)


def _score_shape(case: Case, output: Any, inputs: Any = None) -> str | None:
    shape, pattern, seq_len = _shape(output), case["pattern"], case["seq_len"]
    heads = pattern.shape[1]
    if shape is not None and len(shape) == 1 and shape[0] != heads and abs(shape[0] - seq_len) <= 3:
        return (f"induction_score returned {shape[0]} values, one per query position, instead of one per head "
                f"({heads}): the average went over the head axis. Average over the batch (dim 0) and the queries "
                "(the stripe's last axis), and keep the heads (dim 1).")
    return None


def _query_range(case: Case, output: Any, inputs: Any = None) -> str | None:
    """Scores that are the induction stripe's mean over another run of queries than the second copy's (the runs
    that a Bug of INDUCTION_BUGS names keep its message)."""
    pattern, seq_len = case["pattern"], case["seq_len"]
    want = induction_score(pattern, seq_len)
    if (type(output) is not torch.Tensor or output.shape != want.shape or output.dtype != want.dtype  # noqa: E721
            or torch.allclose(output, want, atol=1e-5, rtol=1e-4)):
        return None
    stripe, first = _stripe(pattern, seq_len), seq_len - 1          # stripe entry e is query first + e
    named_runs = {(seq_len - 1, 2 * seq_len), (seq_len, 2 * seq_len - 1), (seq_len + 1, 2 * seq_len - 1)}
    for start in range(stripe.shape[-1]):
        for stop in range(start + 1, stripe.shape[-1] + 1):
            run = (first + start, first + stop - 1)
            if run in named_runs or not torch.allclose(output, stripe[..., start:stop].mean((0, -1)), atol=1e-5,
                                                       rtol=1e-4):
                continue
            return (f"your scores are the induction stripe averaged over queries {run[0]} .. {run[1]}; the "
                    f"second copy, whose queries count, is positions seq_len + 1 .. 2 * seq_len = {seq_len + 1} .. "
                    f"{2 * seq_len} (BOS is position 0, the first copy 1 .. seq_len): keep the stripe entries [2:].")
    return None


def _explain_score(case: Case, error: Raised) -> str | None:
    if error.type_name == "IndexError" and "out of bounds" in error.message:
        n = (case["pattern"] if "pattern" in case else case["tokens"]).shape[-1]  # a model's case has tokens
        return (f"an index went past the end: the pattern has {n} positions, 0 .. 2 * seq_len = {n - 1}. Second-copy "
                "queries are seq_len + 1 .. 2 * seq_len, and range(a, b) already stops at b - 1.")
    return None


INDUCTION = Exercise(
    name="induction_score",
    make_case=_pattern_case,
    reference=induction_score,
    dims=("head",),
    bugs=INDUCTION_BUGS,
    diagnoses=(_raised_means("induction_score", _explain_score), _one_tensor("induction_score"), _score_shape,
               float16_diagnosis(induction_score), _query_range),
)
check_induction_score = make_check(INDUCTION, "nb3")


# ---------------------------------------------------------------- 4. every head's score on a model
@functools.lru_cache(maxsize=1)
def _checkpoint() -> dict:
    from induction_course.training import load_checkpoint

    return load_checkpoint()


def _trained_model(permute_seed: int | None = None):
    """A fresh copy of the course's trained model on the CPU, so nothing one call does to it lasts; with
    ``permute_seed``, each layer's heads in another order drawn from it (the same function, other head numbers)."""
    from induction_course.models import make_model

    checkpoint = _checkpoint()
    model = make_model(device="cpu", **checkpoint["config"])
    state = dict(checkpoint["state_dict"])
    if permute_seed is not None:
        state = _permute_heads(state, checkpoint["config"], seeded(permute_seed))
    model.load_state_dict(state)
    return model.eval()


def _permute_heads(state: dict, config: dict, generator: torch.Generator) -> dict:
    """``state`` with every layer's heads reordered by a random permutation that moves at least one head."""
    n_heads, d_head = config["n_heads"], config["d_head"]
    for layer in range(config["n_layers"]):
        order = torch.randperm(n_heads, generator=generator)
        if torch.equal(order, torch.arange(n_heads)):
            order = order.roll(1)
        rows = (order[:, None] * d_head + torch.arange(d_head)).flatten()   # the heads' rows, in the new order
        prefix = f"blocks.{layer}.attn."
        for part in "qkv":
            state[f"{prefix}{part}.weight"] = state[f"{prefix}{part}.weight"][rows]
            state[f"{prefix}{part}.bias"] = state[f"{prefix}{part}.bias"][rows]
        state[f"{prefix}o.weight"] = state[f"{prefix}o.weight"][:, rows]
    return state


def _model_case(seed: int, seq_len: int = 17, batch: int = 8) -> dict:
    # The heads are renumbered per seed, so that a notebook's own model, used in place of the argument, gives
    # other rows than the model passed in.
    model = _trained_model(permute_seed=seed)
    return {"model": model, "tokens": repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed), "seq_len": seq_len}


def _patterns(model, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention pattern [batch, head, q_pos, k_pos], in layer order."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    return [cache["pattern", layer] for layer in range(model.cfg.n_layers)]


def _all_scores(model, tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Reference: induction score of every head, [layer, head]."""
    return torch.stack([induction_score(p, seq_len) for p in _patterns(model, tokens)])


def _per_layer(bug: Bug) -> Bug:
    """A mistake of Exercise 3.3 made inside Exercise 3.4: the same message, about the same score."""
    return Bug(f"in the score itself, {bug.message}",
               lambda model, tokens, seq_len: torch.stack([bug.fn(p, seq_len) for p in _patterns(model, tokens)]))


def _scores_shape(case: Case, output: Any, inputs: Any = None) -> str | None:
    shape, model = _shape(output), case["model"]
    layers, heads = model.cfg.n_layers, model.cfg.n_heads
    if shape == (layers * heads,):
        return (f"induction_scores_of_model returned {layers * heads} values in one axis: torch.cat joined the "
                f"layers end to end. torch.stack makes a new layer axis, for shape [layer={layers}, head={heads}].")
    if shape == (heads,):
        return (f"induction_scores_of_model returned one row of {heads} scores: stack one row per layer, for shape "
                f"[layer={layers}, head={heads}].")
    return None


def _other_length(case: Case, output: Any, inputs: Any = None) -> str | None:
    """Scores that are every head's induction score for another seq_len than the one passed in (23 is a Bug's)."""
    model, tokens, seq_len = case["model"], case["tokens"], case["seq_len"]
    want = _all_scores(model, tokens, seq_len)
    if (type(output) is not torch.Tensor or output.shape != want.shape  # noqa: E721
            or torch.allclose(output, want, atol=1e-4, rtol=1e-4)):
        return None
    patterns = _patterns(model, tokens)
    for other in range(2, tokens.shape[-1] - 2):
        if other in (seq_len, 23):
            continue
        scores = torch.stack([induction_score(p, other) for p in patterns])
        if torch.allclose(output, scores, atol=1e-4, rtol=1e-4):
            by = f" (off by {abs(other - seq_len)})" if abs(other - seq_len) <= 2 else ""
            return (f"these are the induction scores for seq_len = {other}{by}, but the tokens are [BOS] R R with "
                    f"|R| = seq_len = {seq_len}: pass the function's own seq_len to induction_score, unchanged.")
    return None


def _explain_scores(case: Case, error: Raised) -> str | None:
    if error.type_name == "KeyError":
        return ("the cache has no such entry: a layer's pattern is cache['pattern', layer], or "
                "cache[f'blocks.{layer}.attn.hook_pattern'].")
    return _explain_score(case, error)


def _no_grad(fn: Callable) -> Callable:
    def run(**case: Any) -> Any:
        with torch.no_grad():
            return fn(**case)
    return run


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
        Bug("every row holds layer 0's scores: read the pattern of the loop's own layer, cache['pattern', layer].",
            lambda model, tokens, seq_len: _all_scores(model, tokens, seq_len)[:1].expand(model.cfg.n_layers, -1)),
        Bug("you scored only the first sequence of the batch: give the score the whole pattern, "
            "[batch, head, q_pos, k_pos], so it averages over every sequence.",
            lambda model, tokens, seq_len: torch.stack([induction_score(p[:1], seq_len)
                                                        for p in _patterns(model, tokens)])),
        Bug("the scores belong to |R| = 23, not to the seq_len passed in: use the function's seq_len argument.",
            lambda model, tokens, seq_len: _all_scores(model, tokens, 23)),
        *(_per_layer(bug) for bug in INDUCTION_BUGS),
    ),
    diagnoses=(_raised_means("induction_scores_of_model", _explain_scores), _one_tensor("induction_scores_of_model"),
               _scores_shape, float16_diagnosis(_all_scores), _other_length),
)
check_induction_scores_of_model = make_check(HEAD_SCORES, "nb3", wrap=_no_grad)


# ---------------------------------------------------------------- 5. naming the heads of the student's model
THRESHOLD = 0.4
MARGIN = 0.05  # a head this close to the threshold may be listed or not: it depends on the sample
PREVIOUS_MARGIN = 0.02
NAMING_SEED = 2  # the notebook's held-out tokens, generate_repeated_tokens(32, 23, d_vocab, seed=2)
_SIZES = {"n_layers": (1, 4), "d_model": (1, 512), "n_heads": (1, 16), "d_head": (1, 128), "n_ctx": (1, 512),
          "d_vocab": (2, 4096)}
_CHOICES = {"normalization_type": ("LN", "LNPre", None), "positional_embedding_type": ("standard", "rotary")}


def _collect_roles(model: Any, induction_heads: Any, previous_token_head: Any, seq_len: int) -> dict:
    """The model as weights and config (the judge rebuilds it), and the two answers as plain data."""
    return {"model": _model_record(model), "induction_heads": as_data(_listed(induction_heads)),
            "previous_token_head": as_data(_listed(previous_token_head))}


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, (set, frozenset)) else value


def _model_record(model: Any) -> Any:
    cfg = getattr(model, "cfg", None)
    if cfg is None or not callable(getattr(model, "state_dict", None)):
        return as_data(Opaque(type(model).__name__))
    config = {name: getattr(cfg, name, None) for name in (*_SIZES, *_CHOICES, "seed")}
    state = capture(lambda: {k: v.detach().to("cpu") for k, v in model.state_dict().items()})
    return {"config": as_data(config), "state_dict": as_data(state)}


def _rebuild(record: Any):
    """The student's model, rebuilt on the CPU from its recorded config and weights."""
    from induction_course.models import make_model

    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        kind = record.type_name if isinstance(record, Opaque) else type(record).__name__
        raise CheckFailed(f"model should be the 2-layer model you trained (`model`), but it is a {kind}.")
    config, state = record["config"], unwrap(record.get("state_dict"), "model.state_dict()")
    for name, (low, high) in _SIZES.items():
        if not (isinstance(config.get(name), int) and low <= config[name] <= high):
            raise CheckFailed(f"model.cfg.{name} is {config.get(name)!r}: pass the model you trained (`model`).")
    if config.get("seed") is not None and not isinstance(config["seed"], int):
        raise CheckFailed(f"model.cfg.seed is {config['seed']!r}: pass the model you trained (`model`).")
    for name, allowed in _CHOICES.items():
        if config.get(name) not in allowed:
            raise CheckFailed(f"model.cfg.{name} is {config.get(name)!r}: pass the model you trained (`model`).")
    if not isinstance(state, dict) or not all(type(v) is torch.Tensor for v in state.values()):  # noqa: E721
        raise CheckFailed("the model's weights could not be recorded: pass the model you trained (`model`).")
    model = make_model(device="cpu", **{name: config.get(name) for name in (*_SIZES, *_CHOICES, "seed")})
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckFailed(f"the model's weights do not fit its config ({str(error)[:200]}); pass the model you "
                          "trained (`model`).") from None
    return model.eval()


def _as_heads(heads: Any, name: str, single: bool = False) -> list[tuple[int, int]]:
    """``heads`` as (layer, head) pairs of ints: a list of pairs, or one pair if ``single``."""
    heads = _unwrap_answer(heads, name)
    try:
        if type(heads) is torch.Tensor:  # noqa: E721  (e.g. the rows of .nonzero())
            heads = heads.tolist()
        if isinstance(heads, (str, dict)) or heads is None:
            raise TypeError
        listed = [heads] if single else list(heads)
        if not all(type(pair) is torch.Tensor or isinstance(pair, (list, tuple)) for pair in listed):  # noqa: E721
            raise TypeError
        listed = [pair.tolist() if type(pair) is torch.Tensor else pair for pair in listed]  # noqa: E721
        if not all(len(pair) == 2 for pair in listed):
            raise TypeError
        return [(_integer(layer), _integer(head)) for layer, head in listed]
    except (TypeError, ValueError):
        example = "(0, 1)" if single else "[(1, 0), (1, 2)]"
        what = "one (layer, head) pair of integers" if single else "a list of (layer, head) pairs of integers"
        raise CheckFailed(f"{name} should be {what}, e.g. {example}; it is {_describe(heads)}.") from None


def _describe(value: Any) -> str:
    if isinstance(value, Opaque):
        return f"a {value.type_name}"
    text = repr(value.tolist() if type(value) is torch.Tensor else value)  # noqa: E721
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(value: Any) -> int:
    if type(value) is torch.Tensor and value.numel() == 1:  # noqa: E721
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError
    return int(value)


def _judge_roles(record: Any, seq_len: int) -> str:
    if not isinstance(record, dict):
        raise CheckFailed("check_head_roles needs three answers: model, induction_heads, previous_token_head.")
    model = _rebuild(record.get("model"))
    cfg = model.cfg
    tokens = repeated_tokens(32, seq_len, cfg.d_vocab, seed=NAMING_SEED)
    if tokens.shape[1] > cfg.n_ctx:
        raise CheckFailed(f"this model's context holds {cfg.n_ctx} tokens, too few for [BOS] R R with |R| = "
                          f"{seq_len}: pass the model you trained (`model`).")
    patterns = _patterns(model, tokens)
    scores = torch.stack([induction_score(p, seq_len) for p in patterns])
    sure = {(layer, head) for layer, head in (scores > THRESHOLD + MARGIN).nonzero().tolist()}
    maybe = {(layer, head) for layer, head in ((scores - THRESHOLD).abs() <= MARGIN).nonzero().tolist()}
    if not sure | maybe:
        raise CheckFailed(f"this model has no head with an induction score above {THRESHOLD} on [BOS] R R "
                          f"(best {float(scores.max()):.2f}): pass the 2-layer model you trained (`model`), not "
                          "the 1-layer control or an untrained model.")
    got = _as_heads(record.get("induction_heads"), "induction_heads")
    _check_exists(got, cfg.n_layers, cfg.n_heads, "induction_heads")
    _check_induction_heads(set(got), sure, maybe, scores)
    previous = _as_heads(record.get("previous_token_head"), "previous_token_head", single=True)
    _check_exists(previous, cfg.n_layers, cfg.n_heads, "previous_token_head")
    best = _check_previous_head(previous[0], previous_token_score(patterns[0]))
    return f"✓ induction heads {sorted(got)}; previous-token head {best}."


def _unwrap_answer(value: Any, name: str) -> Any:
    if isinstance(value, Raised):
        raise CheckFailed(f"reading {name} raised {value.type_name}: {value.message}", value.traceback)
    return value


def _check_exists(heads: list[tuple[int, int]], n_layers: int, n_heads: int, name: str) -> None:
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise CheckFailed(f"{name} names head ({layer}, {head}), which does not exist: the model has layers "
                              f"0 .. {n_layers - 1} and heads 0 .. {n_heads - 1}, and each pair is (layer, head).")


def _check_induction_heads(got: set, sure: set, maybe: set, scores: torch.Tensor) -> None:
    if any(layer == 0 for layer, _ in got - sure - maybe):
        raise CheckFailed("a layer-0 head cannot be an induction head here: it sees only token embeddings and "
                          "positions, so it cannot know which token came before each key. Look at layer 1.")
    missing, extra = sorted(sure - got), sorted(got - sure - maybe)
    if missing or extra:
        def listed(heads: list) -> str:
            return ", ".join(f"({l}, {h}) scoring {float(scores[l, h]):.2f}" for l, h in heads) or "none"
        raise CheckFailed(f"induction_heads should be every head whose induction score on [BOS] R R with |R| = 23 is "
                          f"above {THRESHOLD}: missing {listed(missing)}; listed but not induction heads "
                          f"{listed(extra)}. Select them from your scores (scores[23] > {THRESHOLD}).")


def _check_previous_head(head: tuple[int, int], previous: torch.Tensor) -> tuple[int, int]:
    best = (0, int(previous.argmax()))
    if head[0] != 0:
        raise CheckFailed(f"previous_token_head {head} is not in layer 0: the previous-token head writes what the "
                          "layer-1 keys read, so look among the layer-0 heads (cache['pattern', 0]).")
    if float(previous[head[1]]) < float(previous.max()) - PREVIOUS_MARGIN:
        raise CheckFailed(f"previous_token_head should be the layer-0 head that attends most to the previous "
                          f"position: yours, {head}, scores {float(previous[head[1]]):.2f}, and the best "
                          f"{float(previous.max()):.2f}. Take the argmax of layer 0's previous-token scores.")
    return head


# The student's induction heads and previous-token head, checked against *their* model. Induction heads: every
# head whose induction score on the notebook's held-out [BOS] R R is above 0.4 (heads within 0.05 of it may go
# either way). Previous-token head: the layer-0 head with the highest previous-token score (or within 0.02 of it).
check_head_roles = Check("nb3.check_head_roles", _collect_roles, _judge_roles, {"seq_len": 23})


# ---------------------------------------------------------------- 6. copying: eigenvalue positivity
def _matrix_case(seed: int, batch: int = 4, n: int = 6) -> dict:
    return {"matrix": torch.randn(batch, n, n, generator=seeded(seed)) + 0.3 * torch.eye(n)}


def _ratio(values: Callable[[torch.Tensor], torch.Tensor], numerator: Callable[[torch.Tensor], torch.Tensor],
           denominator: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A mistaken score: numerator(v) / denominator(v) of some values v of the matrix, in the input's dtype."""
    def score(matrix: torch.Tensor) -> torch.Tensor:
        v = values(matrix.double())
        return (numerator(v) / denominator(v)).to(matrix.dtype)
    return score


def _eigenvalues(matrix: torch.Tensor) -> torch.Tensor:
    return torch.linalg.eigvals(matrix)


def _real_sum(v: torch.Tensor) -> torch.Tensor:
    return v.sum(-1).real


def _modulus_sum(v: torch.Tensor) -> torch.Tensor:
    return v.abs().sum(-1)


def _positivity_shape(case: Case, output: Any, inputs: Any = None) -> str | None:
    if type(output) is torch.Tensor and output.is_complex():  # noqa: E721
        return ("eigenvalue_positivity returned complex numbers: eigenvalues are complex, but the score is real. "
                "Take .real of the numerator's sum (Re Σλ), and the moduli .abs() for the denominator.")
    return None


def _explain_positivity(case: Case, error: Raised) -> str | None:
    if "linalg_eig" in error.message or "torch.return_types" in error.message:
        return ("torch.linalg.eig returns a pair (eigenvalues, eigenvectors): take .eigenvalues, or call "
                "torch.linalg.eigvals, which returns the eigenvalues alone.")
    return None


POSITIVITY = Exercise(
    name="eigenvalue_positivity",
    make_case=_matrix_case,
    reference=ref.eigenvalue_positivity,
    dims=("matrix",),
    atol=1e-4,
    bugs=(
        Bug("singular values are never negative, so this is always 1. Use the eigenvalues: torch.linalg.eigvals.",
            lambda matrix: torch.ones(matrix.shape[:-2], dtype=matrix.dtype)),
        Bug("you used the diagonal entries. Their sum equals the sum of the eigenvalues, but Σ|M_ii| is not Σ|λ|: "
            "take the eigenvalues (torch.linalg.eigvals).",
            _ratio(lambda m: m.diagonal(dim1=-2, dim2=-1), _real_sum, _modulus_sum)),
        Bug("the numerator lost its sign: it is the real part of Σλ, not |Σλ|, so an anti-copying matrix scores "
            "near -1.", _ratio(_eigenvalues, lambda v: v.sum(-1).abs(), _modulus_sum)),
        Bug("the denominator should be Σ|λ| with |λ| the complex modulus, not Σ|Re λ|.",
            _ratio(_eigenvalues, _real_sum, lambda v: v.real.abs().sum(-1))),
        Bug("the denominator should be Σ|λ| (the sum of the moduli), not |Σλ| (the modulus of the sum).",
            _ratio(_eigenvalues, _real_sum, lambda v: v.sum(-1).abs())),
        Bug("torch.linalg.eigvalsh is only for symmetric matrices: it reads one triangle and ignores the rest. "
            "A full OV circuit is not symmetric; use torch.linalg.eigvals.",
            _ratio(torch.linalg.eigvalsh, _real_sum, _modulus_sum)),
        Bug("the denominator is the sum of the singular values (the nuclear norm); the score divides by Σ|λ|, the "
            "sum of the eigenvalues' moduli.",
            _ratio(lambda m: m, lambda m: m.diagonal(dim1=-2, dim2=-1).sum(-1),
                   lambda m: torch.linalg.svdvals(m).sum(-1))),
        Bug("the denominator is a mean (of |λ|) where the formula has a sum: Σ|λ|, over all n eigenvalues.",
            _ratio(_eigenvalues, _real_sum, lambda v: v.abs().mean(-1))),
        Bug("the numerator is a mean (of λ) where the formula has a sum: Re(Σλ), over all n eigenvalues.",
            _ratio(_eigenvalues, lambda v: v.mean(-1).real, _modulus_sum)),
    ),
    diagnoses=(_raised_means("eigenvalue_positivity", _explain_positivity), _one_tensor("eigenvalue_positivity"),
               _positivity_shape, float16_diagnosis(ref.eigenvalue_positivity)),
)
check_eigenvalue_positivity = make_check(POSITIVITY, "nb3")


# ---------------------------------------------------------------- 7. K-composition
def _comp_case(seed: int, head0: int = 3, head1: int = 2, d_model: int = 10, d_head: int = 4) -> dict:
    g = seeded(seed)
    return {"W_V0": torch.randn(head0, d_model, d_head, generator=g),
            "W_O0": torch.randn(head0, d_head, d_model, generator=g),
            "W_Q1": torch.randn(head1, d_model, d_head, generator=g),
            "W_K1": torch.randn(head1, d_model, d_head, generator=g)}


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


def _k_reversed(W_V0, W_O0, W_Q1, W_K1) -> torch.Tensor:
    ov, qk = _products(W_V0, W_O0, W_Q1, W_K1)
    return _fro(qk.transpose(-1, -2) @ ov) / (_fro(ov) * _fro(qk))


def _k_elementwise(W_V0, W_O0, W_Q1, W_K1) -> torch.Tensor:
    ov, qk = _products(W_V0, W_O0, W_Q1, W_K1)
    return _fro(ov * qk.transpose(-1, -2)) / (_fro(ov) * _fro(qk))


def _k_nuclear(W_V0, W_O0, W_Q1, W_K1) -> torch.Tensor:
    ov, qk = _products(W_V0, W_O0, W_Q1, W_K1)
    norm = functools.partial(torch.linalg.matrix_norm, ord="nuc")
    return norm(ov @ qk.transpose(-1, -2)) / (norm(ov) * norm(qk))


def _k_over(denominator: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def score(W_V0, W_O0, W_Q1, W_K1) -> torch.Tensor:
        ov, qk = _products(W_V0, W_O0, W_Q1, W_K1)
        return _fro(ov @ qk.transpose(-1, -2)) / denominator(W_V0, W_O0, W_Q1, W_K1, ov, qk)
    return score


def _comp_shape(case: Case, output: Any, inputs: Any = None) -> str | None:
    shape = _shape(output)
    head0, head1 = case["W_V0"].shape[0], case["W_Q1"].shape[0]
    if shape is not None and len(shape) == 1 and shape[0] in (head0, head1) and head0 != head1:
        return (f"k_composition_scores returned {shape[0]} values, not a [head0, head1] grid: the head axes were "
                "paired up one to one. Index W_OV with [:, None] and W_QK with [None] so every layer-0 head meets "
                "every layer-1 head.")
    return None


def _comp_zeros(case: Case, output: Any, inputs: Any = None) -> str | None:
    """Every score exactly 0, where random weights give scores strictly between 0 and 1."""
    grid = (case["W_V0"].shape[0], case["W_Q1"].shape[0])
    if _shape(output) == grid and not output.is_complex() and bool((output == 0).all()):
        return ("k_composition_scores returned only zeros, where the scores of these random weights lie strictly "
                "between 0 and 1. A guess: a floor division (//) rounded every ratio down to 0 (divide with /), or "
                "the tensor of results was never filled in.")
    return None


def _explain_comp(case: Case, error: Raised) -> str | None:
    head0, d_model, d_head = case["W_V0"].shape
    head1 = case["W_Q1"].shape[0]
    sizes = {int(n) for n in re.findall(r"\((\d+)\)", error.message)}
    if "must match the size of tensor" in error.message and sizes == {head0, head1}:
        return ("W_OV has one matrix per layer-0 head and W_QK one per layer-1 head, and a plain @ tries to pair "
                "them one to one. Index W_OV with [:, None] and W_QK with [None] so the product broadcasts to "
                "every (head0, head1) pair.")
    if error.type_name == "RuntimeError" and ("size" in error.message or "shape" in error.message):
        return (f"two of your matrices' shapes don't fit. With d_model = {d_model} and d_head = {d_head}: "
                "W_OV = W_V0 @ W_O0 is [head0, d_model, d_model] (not W_O0 @ W_V0), W_QK = W_Q1 @ "
                "W_K1.transpose(-1, -2) is [head1, d_model, d_model]. On a 3-D tensor .T reverses all three axes: "
                "use .transpose(-1, -2) or .mT.")
    return None


K_COMPOSITION = Exercise(
    name="k_composition_scores",
    make_case=_comp_case,
    reference=ref.k_composition_scores,
    dims=("head0", "head1"),
    atol=1e-5,
    rtol=1e-3,
    bugs=(
        Bug("this is Q-composition (||W_OV W_QK||). The layer-0 output feeds the *keys*, which sit on the right "
            "of W_QK = W_Q W_K^T, so K-composition uses W_OV @ W_QK.T. (W_K @ W_Q.T is W_QK.T already: "
            "transposing it again gives Q-composition too.)", _k_q_composition),
        Bug("the score is not normalised: divide ||W_OV W_QK^T||_F by ||W_OV||_F * ||W_QK||_F.", _k_unnormalised),
        Bug("you squared the norms. The score is ||W_OV W_QK^T||_F / (||W_OV||_F ||W_QK||_F), with plain "
            "Frobenius norms.", _k_squared),
        Bug("use the Frobenius norm (torch.linalg.matrix_norm's default, or .norm()), not the spectral norm.",
            _k_spectral),
        Bug("use the Frobenius norm (torch.linalg.matrix_norm's default, or .norm()), not the nuclear norm.",
            _k_nuclear),
        Bug("the product is in the wrong order, W_QK^T @ W_OV: the layer-0 head writes x @ W_OV, and the key reads "
            "that through W_QK^T, so the product is W_OV @ W_QK^T (matrix products do not commute).", _k_reversed),
        Bug("the two matrices were multiplied element by element (*); the composition is a matrix product, "
            "W_OV @ W_QK^T.", _k_elementwise),
        Bug("the norms in the denominator are squared (the numerator is not): the score is "
            "||W_OV W_QK^T||_F / (||W_OV||_F ||W_QK||_F).",
            _k_over(lambda V, O, Q, K, ov, qk: _fro(ov) ** 2 * _fro(qk) ** 2)),
        Bug("the normaliser is missing ||W_QK||_F: divide by the product of both norms, ||W_OV||_F * ||W_QK||_F.",
            _k_over(lambda V, O, Q, K, ov, qk: _fro(ov))),
        Bug("the normaliser is missing ||W_OV||_F: divide by the product of both norms, ||W_OV||_F * ||W_QK||_F.",
            _k_over(lambda V, O, Q, K, ov, qk: _fro(qk))),
        Bug("the normaliser uses the norms of the four factors, ||W_V|| ||W_O|| ||W_Q|| ||W_K||; it should use "
            "the norms of the two products, ||W_OV||_F * ||W_QK||_F.",
            _k_over(lambda V, O, Q, K, ov, qk: (_fro(V) * _fro(O))[:, None] * (_fro(Q) * _fro(K))[None])),
        Bug("the normaliser is a sum where the formula has a product: divide by ||W_OV||_F * ||W_QK||_F.",
            _k_over(lambda V, O, Q, K, ov, qk: _fro(ov) + _fro(qk))),
    ),
    diagnoses=(_raised_means("k_composition_scores", _explain_comp), _one_tensor("k_composition_scores"),
               _comp_shape, _comp_zeros, float16_diagnosis(ref.k_composition_scores)),
)
check_k_composition_scores = make_check(K_COMPOSITION, "nb3")


# ---------------------------------------------------------------- 8. the random baseline
def _random_factors(draw: Callable[..., torch.Tensor], d_model: int, d_head: int, heads: int,
                    seed: int) -> list[torch.Tensor]:
    g = seeded(seed)
    shapes = ((d_model, d_head), (d_head, d_model), (d_model, d_head), (d_model, d_head))  # W_V0, W_O0, W_Q1, W_K1
    return [draw((heads, *shape), g) for shape in shapes]


def _gaussian(shape: tuple, g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g)


def _uniform(shape: tuple, g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g)


def _baseline_of(score: Callable[..., torch.Tensor], draw=_gaussian, reduce=torch.mean, d_head_only: bool = False,
                 heads: int = 50) -> Callable[[int, int], float]:
    """What a baseline recipe gives for the model's sizes (a maximum with 50 heads per layer, as the notebook
    says; a mean needs fewer)."""
    @functools.lru_cache(maxsize=4)
    def value(d_model: int, d_head: int) -> float:
        size = d_head if d_head_only else d_model
        with torch.no_grad():
            return float(reduce(score(*_random_factors(draw, size, d_head, heads, seed=0))))
    return value


# Each wrong recipe: (what gives it, its value from the model's sizes). The right one: about 1/sqrt(d_model).
BASELINE_MISTAKES = (
    ("it is the mean score of weights drawn with torch.rand: entries in [0, 1) are all positive, so random "
     "matrices share one big common direction and compose strongly. Draw zero-mean Gaussian weights with "
     "torch.randn.", _baseline_of(ref.k_composition_scores, draw=_uniform)),
    ("it is the mean of the *squared* scores: the norms were squared (or the score divided by its norms twice). "
     "Average k_composition_scores of random weights as it is.", _baseline_of(_k_squared, heads=20)),
    ("it is the largest score of all the random pairs; the baseline is their mean (.mean()).",
     _baseline_of(ref.k_composition_scores, reduce=torch.max)),
    ("it uses spectral norms; the composition score uses Frobenius norms (torch.linalg.matrix_norm's default).",
     _baseline_of(_k_spectral, heads=10)),
    ("it is the mean K-composition score of the trained model's heads; the baseline is the same score for random "
     "weights of the same shapes (torch.randn), to compare the trained model's scores with.",
     lambda d_model, d_head: _trained_mean_composition()),
    ("the random matrices are d_head x d_head; the model's W_V0, W_O0, W_Q1, W_K1 are [d_model, d_head], "
     "[d_head, d_model], [d_model, d_head], [d_model, d_head] (use model.cfg.d_model and model.cfg.d_head).",
     _baseline_of(ref.k_composition_scores, d_head_only=True)),
)


@functools.lru_cache(maxsize=1)
def _trained_mean_composition() -> float:
    model = _trained_model()
    with torch.no_grad():
        return float(ref.k_composition_scores(model.W_V[0], model.W_O[0], model.W_Q[1], model.W_K[1]).mean())


def _collect_baseline(baseline: Any, d_model: int, d_head: int) -> Any:
    return as_data(baseline)


@functools.lru_cache(maxsize=4)
def _expected_baseline(d_model: int, d_head: int) -> float:
    return ref.random_composition_baseline(d_model, d_head, n_samples=1000)


def _judge_baseline(record: Any, d_model: int, d_head: int) -> str:
    value = _one_number(record)
    expected = _expected_baseline(d_model, d_head)
    if value == 1 / math.sqrt(d_model):
        raise CheckFailed(f"baseline is exactly 1/sqrt(d_model) = {value:.4f}: that is the number to compare with, "
                          "not a measurement. Compute it: the mean k_composition_scores of random weights.")
    if abs(value - expected) <= 0.1 * expected:
        return f"✓ random baseline {value:.3f} ≈ 1/sqrt({d_model}) = {1 / math.sqrt(d_model):.3f}."
    typed = _typed_constant(value, d_model, d_head)
    if typed:
        raise CheckFailed(typed)
    if value > 1:
        raise CheckFailed(f"baseline is {value:.3g}, but a composition score lies between 0 and 1: the scores were "
                          "not normalised. Divide by ||W_OV||_F * ||W_QK||_F (your k_composition_scores should pass "
                          "its check first).")
    causes = []
    for message, recipe in BASELINE_MISTAKES:
        wrong = recipe(d_model, d_head)
        if abs(value - wrong) <= min(0.1 * wrong, 0.5 * abs(wrong - expected)):
            causes.append(message)
    if len(causes) == 1:
        raise CheckFailed(f"baseline is {value:.3f}, what this mistake gives: {causes[0]}")
    if causes:
        raise CheckFailed(f"baseline is {value:.3f}, what each of these mistakes gives: "
                          + " ".join(f"({i}) {cause}" for i, cause in enumerate(causes, 1)))
    raise CheckFailed(f"baseline is {value:.3f}; random weights with the model's shapes give about "
                      f"{expected:.3f} ≈ 1/sqrt(d_model) = {1 / math.sqrt(d_model):.3f}. Draw W_V0, W_O0, W_Q1, W_K1 "
                      "with torch.randn in the shapes of the model's weights and average k_composition_scores over "
                      "all pairs.")


def _size_formulas(d_model: int, d_head: int) -> dict[str, float]:
    """Numbers a student may write down from the model's sizes instead of measuring the baseline."""
    return {"1/d_model": 1 / d_model, "1/d_head": 1 / d_head, "1/sqrt(d_head)": 1 / math.sqrt(d_head),
            "d_head/d_model": d_head / d_model, "sqrt(d_head/d_model)": math.sqrt(d_head / d_model),
            "1/sqrt(d_model * d_head)": 1 / math.sqrt(d_model * d_head)}


def _float32(value: float) -> float:
    return float(torch.tensor(value, dtype=torch.float32))


def _typed_constant(value: float, d_model: int, d_head: int) -> str | None:
    """A baseline that is exactly a formula of the sizes, or a round number (three significant digits at most),
    compared in float32 so that a typed-in tensor counts too: whatever the weights, a mean score of random weights
    is neither. The message says what the number shows, and that its cause is a guess."""
    measure = ("Compute it: the mean k_composition_scores of random weights drawn with torch.randn in the shapes "
               "of the model's weights.")
    if not math.isfinite(_float32(value)):
        return None
    names = [name for name, formula in _size_formulas(d_model, d_head).items() if _float32(value) == _float32(formula)]
    if names:
        return (f"baseline is exactly {' = '.join(names)} = {value:.6g} (d_model = {d_model}, d_head = {d_head}), a "
                "number made from the model's sizes alone; a mean score of random weights is never exactly such a "
                f"number. A guess: it was typed in or computed from the sizes instead of measured. {measure}")
    if _float32(value) == _float32(float(f"{value:.3g}")):
        return (f"baseline is {value:g}, a round number: a mean score of random weights has many more digits. "
                f"A guess: it was typed in (or rounded) instead of measured. {measure}")
    return None


def _one_number(record: Any) -> float:
    if type(record) is torch.Tensor:  # noqa: E721
        if record.numel() != 1:
            raise CheckFailed(f"baseline is a tensor of shape {list(record.shape)}; it should be one number, the "
                              "mean over all pairs: .mean() (and float(...)).")
        record = record.item()
    if isinstance(record, bool) or not isinstance(record, (int, float)) or math.isnan(record):
        raise CheckFailed("baseline should be one number, the mean composition score of random weights.")
    return float(record)


# The student's random K-composition baseline, one number: about 1/sqrt(d_model) for the course model's sizes.
check_random_baseline = Check("nb3.check_random_baseline", _collect_baseline, _judge_baseline,
                              {"d_model": STANDARD_CONFIG["d_model"], "d_head": STANDARD_CONFIG["d_head"]})


# ---------------------------------------------------------------- 9. ICL score
def _icl_case(seed: int, batch: int = 4, pos: int = 70) -> dict:
    g = seeded(seed)
    losses = torch.rand(batch, pos, generator=g) * 5 * torch.linspace(1.0, 0.3, pos)
    return {"losses": losses, "early": slice(3, 9), "late": slice(pos - 7, pos)}


ICL = Exercise(
    name="icl_score",
    make_case=_icl_case,
    reference=ref.icl_score,
    dims=(),
    nan_hint=("A mean over an empty selection is NaN: losses[late] slices the *batch* axis. Index positions with "
              "losses[:, late]."),
    bugs=(
        Bug("the sign is flipped. The convention is late minus early, so a model that learns in context "
            "(lower loss later) gets a *negative* score.",
            lambda losses, early, late: -ref.icl_score(losses, early, late)),
        Bug("you used single positions; average the loss over each whole window (losses[:, early]).",
            lambda losses, early, late: losses[:, late.start].mean() - losses[:, early.start].mean()),
        Bug("you used single positions (the windows' ends); average the loss over each whole window "
            "(losses[:, early]).",
            lambda losses, early, late: losses[:, late.stop - 1].mean() - losses[:, early.stop - 1].mean()),
        Bug("this is a ratio; the ICL score is a difference of mean losses, late minus early.",
            lambda losses, early, late: losses[:, late].mean() / losses[:, early].mean()),
        Bug("these are sums over the windows; the ICL score compares *mean* losses (the windows have different "
            "lengths), so use .mean().",
            lambda losses, early, late: (losses[:, late].sum(-1) - losses[:, early].sum(-1)).mean()),
        Bug("these are sums over the windows and the batch; the ICL score compares *mean* losses, so use .mean().",
            lambda losses, early, late: losses[:, late].sum() - losses[:, early].sum()),
        Bug("the windows are one position short: a slice's stop is already exclusive, so losses[:, late] is the "
            "whole window (no - 1).",
            lambda losses, early, late: (losses[:, late.start:late.stop - 1].mean()
                                         - losses[:, early.start:early.stop - 1].mean())),
        Bug("the windows are one position too long: a slice already ends before its stop; use losses[:, late] "
            "and losses[:, early] as they are.",
            lambda losses, early, late: (losses[:, late.start:late.stop + 1].mean()
                                         - losses[:, early.start:early.stop + 1].mean())),
        Bug("the windows are the notebook's (circuits.ICL_EARLY / ICL_LATE, entries 4 .. 9 and 55 .. 62), not the "
            "`early` and `late` passed in: use the function's arguments.",
            lambda losses, early, late: losses[:, ref.ICL_LATE].mean() - losses[:, ref.ICL_EARLY].mean()),
    ),
    diagnoses=(_one_tensor("icl_score"), float16_diagnosis(ref.icl_score)),
)
check_icl_score = make_check(ICL, "nb3")


# ---------------------------------------------------------------- 10. what the ICL score can tell
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

check_icl_answers = choices_check("nb3.check_icl_answers", {"control_icl": CONTROL_ICL, "icl_alone": ICL_ALONE},
                                  ICL_EXPLANATION)


# ---------------------------------------------------------------- 3. the layer-1 head that is not an induction head
# The facts behind these answers are asserted on the seed-0 run in tests/test_nb3_science.py.
OTHER_HEAD = {
    "a": "No: its induction score stays low on every held-out length, the shortest (13) and the longest (23) alike.",
    "b": None,
    "c": "No: the previous-token heads are in layer 0, and the printed attention shows where this head looks on "
         "decks: at BOS, almost entirely.",
    "d": "No: switching it off raises the loss on shuffled decks by the amount printed above; the model uses it "
         "there, just not for induction.",
}
OTHER_HEAD_EXPLANATION = ("The model was trained on two kinds of sequence, and one head took the second job: on a "
                          "shuffled deck it rests on BOS, and the loss on decks rises when it is switched off, while "
                          "the second copy of [BOS] R R hardly notices. Real models are full of heads like it, which "
                          "is why induction heads have to be found, not assumed.")
check_other_head_answer = choices_check("nb3.check_other_head_answer", {"other_head": OTHER_HEAD},
                                        OTHER_HEAD_EXPLANATION)


# ---------------------------------------------------------------- 5. what the weight score can tell
K_COMP = {
    "a": "No: the score is right about the weights: that head's output does land where the induction heads' keys "
         "read. Whether the model relies on it is a different question, which weights alone cannot answer.",
    "b": None,
    "c": "No: computing the keys without the previous-token head collapses induction; without the second head, "
         "it barely changes.",
    "d": "No: the previous-token head's row shows that it matters here: compute the keys without it and the "
         "induction scores collapse.",
}
K_COMP_EXPLANATION = ("The weight score ranks the layer-0 heads: a previous-token head first, far above the random "
                      "baseline. It cannot separate two heads that compose about equally strongly; the causal test "
                      "on the keys does. A weight score is a hypothesis about a circuit; an intervention "
                      "tests it.")
check_k_comp_answer = choices_check("nb3.check_k_comp_answer", {"k_comp": K_COMP}, K_COMP_EXPLANATION)
