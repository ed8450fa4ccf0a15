"""Checks for Notebook 2, the previous-token head.

Every public ``check_*`` is a :class:`~induction_course.checks.core.Check`: its ``collect`` runs the
student's code and records plain data (outputs, weights, the picture's pixels, numbers), and its ``judge``
decides from that record and the call's literal parameters alone. The judge rebuilds everything else
itself from seeds: the small random models, their caches, the hand-built model, the course's trained model.
Visible checks use the defaults; hidden tests pass other seeds, shapes and layouts.

The function exercises are declared as data (:class:`~induction_course.checks.core.Exercise` with its bugs and
its diagnoses, each a ``Diagnosis(case, output, inputs)``) and made by ``make_check``, so the engine alone
collects, judges and formats them. Notebook 2's diagnoses read what the output shows: a wrong shape that a
known bug gives, an index run off a named axis of the pattern, a score that is another stripe of the pattern,
float16 digits, the change at another hook point than ``hook_k``.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any, Callable, Sequence

import torch
from transformer_lens.head_detector import detect_head
from transformer_lens.model_bridge import TransformerBridge

from induction_course import handbuilt as hb
from induction_course import heads as ref
from induction_course.attention import apply_causal_mask
from induction_course.checks.core import (Bug, Case, Check, CheckFailed, Diagnosis, Exercise, choices_check,
                                          clone, float16_diagnosis, make_check, not_a_function, raised,
                                          seeded, unwrap)
from induction_course.checks.record import Opaque, Raised, as_data, capture
from induction_course.checks.symptoms import named, shape_problem, unknown_hook_symptom
from induction_course.models import make_model
from induction_course.tokenizer import IdTokenizer, tokens_to_text


# ---------------------------------------------------------------- Notebook 2's diagnoses (stage 1 of core's order)
def _shape_bugs(reference: Callable[..., Any], *bugs: Bug) -> Diagnosis:
    """Name a wrong shape that one of ``bugs`` gives exactly (values included)."""
    def diagnose(case: Case, output: Any, inputs: Any = None) -> str | None:
        if type(output) is not torch.Tensor:  # noqa: E721
            return None
        if output.shape == reference(**clone(case)).shape:
            return None
        for bug in bugs:
            try:
                bad = bug.fn(**clone(case))
            except Exception:  # a mistake that cannot even run on this case is not the one made
                continue
            if (bad.shape == output.shape and bad.dtype == output.dtype
                    and torch.allclose(output.cpu(), bad.cpu(), atol=1e-5, rtol=1e-4, equal_nan=True)):
                return bug.message
        return None
    return diagnose


def _raised_as(*hints: tuple[str, str, str]) -> Diagnosis:
    """Name an exception the student's code raised: ``(type name, regex on its message, what it means)``."""
    def diagnose(case: Case, output: Any, inputs: Any = None) -> str | None:
        if not isinstance(output, Raised):
            return None
        for type_name, pattern, meaning in hints:
            if output.type_name == type_name and re.search(pattern, output.message):
                return f"your code raised {output.type_name}: {output.message.splitlines()[0]}\n{meaning}"
        return None
    return diagnose


CACHE_NAMES = ("cache['pattern', l] (or cache[f'blocks.{l}.attn.hook_pattern']) for layer l's pattern and "
               "cache['k', l] (blocks.{l}.attn.hook_k) for its keys")


def _missing_layer_message(error: Any, n_layers: int, pairs: Sequence[tuple[int, int | None]] = ()) -> str | None:
    """What a KeyError from the cache means (symptoms.unknown_hook_symptom), for the (layer, head) ``pairs`` asked."""
    if not (isinstance(error, Raised) and error.type_name == "KeyError"):
        return None
    return f"your code raised KeyError: {unknown_hook_symptom(error.message, CACHE_NAMES, n_layers, pairs)}"


def _missing_layer(case: Case, output: Any, inputs: Any = None) -> str | None:
    pairs = [(case["layer"], None)] if "layer" in case else []
    return _missing_layer_message(output, case["model"].cfg.n_layers, pairs)


# ---------------------------------------------------------------- 1. scores from a pattern
SCORE_SHAPES = ({}, {"batch": 1})   # a size-1 batch catches a .squeeze() that drops it


def _pattern_case(seed: int, batch: int = 3, head: int = 4, pos: int = 9) -> dict:
    """A random causal pattern [batch, head, pos, pos], peaked enough that every score differs."""
    scores = 2.0 * torch.randn(batch, head, pos, pos, generator=seeded(seed))
    return {"pattern": apply_causal_mask(scores).softmax(dim=-1)}


def _stripe(pattern: torch.Tensor, offset: int) -> torch.Tensor:
    """Entries [.., i, i - offset]: [batch, head, pos - offset]."""
    return pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)


PATTERN_AXES = ("batch", "head", "q_pos", "k_pos")


def _score_index_error(case: Case, output: Any, inputs: Any = None) -> str | None:
    """An IndexError on the pattern, read from torch's message: which axis the index ran off."""
    if not (isinstance(output, Raised) and output.type_name == "IndexError"):
        return None
    first = output.message.splitlines()[0] if output.message else ""
    found = re.search(r"index (-?\d+) is out of bounds for dimension (\d+) with size (\d+)", first)
    if found and int(found.group(2)) < 2:
        axis = PATTERN_AXES[int(found.group(2))]
        return (f"your code raised IndexError: {first}\nDimension {found.group(2)} of the pattern is its {axis} "
                "axis, so a position was used as an index into it. A guess: the code was written for one "
                "sequence's pattern [head, q_pos, k_pos], but pattern is [batch, head, q_pos, k_pos]: index "
                "the last two axes, pattern[..., i, j] (or pattern[:, :, i, j]).")
    if found or re.search("out of bounds|out of range", first):
        return (f"your code raised IndexError: {first}\nAn index past the end: positions run from 0 to pos-1, "
                "and query 0 has no key -1.")
    return None


def _other_stripe(reference: Callable[..., Any], offset: int, known: Sequence[int]) -> Diagnosis:
    """Scores that are exactly the mean of another stripe of the pattern (key i-k for some k not in ``known``)."""
    def diagnose(case: Case, output: Any, inputs: Any = None) -> str | None:
        if type(output) is not torch.Tensor:  # noqa: E721
            return None
        pattern = case["pattern"]
        want = reference(**clone(case))
        if (output.shape != want.shape or output.dtype != want.dtype
                or torch.allclose(output, want, atol=1e-5, rtol=1e-4)):
            return None
        for k in range(pattern.shape[-1]):  # above the diagonal (k < 0) the mask leaves only zeros
            if k == offset or k in known:
                continue
            stripe = _stripe(pattern, k).mean(dim=(0, -1))
            if stripe.shape == output.shape and torch.allclose(output, stripe, atol=1e-5, rtol=1e-4):
                key = "key i" + (f" - {k}" if k else "")
                want_key = "key i" + (f" - {offset}" if offset else "")
                return (f"your scores are exactly the attention on {key} (off by {abs(k - offset)} position(s)), "
                        f"averaged; this score wants {want_key}: pattern.diagonal(offset={-offset}, dim1=-2, dim2=-1).")
        return None
    return diagnose


def _other_column(case: Case, output: Any, inputs: Any = None) -> str | None:
    """First-token scores that are exactly the mean attention on another key k than 0 (queries i >= 1 or i >= k)."""
    pattern, want = case["pattern"], ref.first_token_score(case["pattern"])
    if (type(output) is not torch.Tensor or output.shape != want.shape or output.dtype != want.dtype  # noqa: E721
            or torch.allclose(output, want, atol=1e-5, rtol=1e-4)):
        return None
    for k in range(1, pattern.shape[-1] - 1):   # the last column is a Bug of its own
        for start in {1, k}:
            if torch.allclose(output, pattern[..., start:, k].mean(dim=(0, -1)), atol=1e-5, rtol=1e-4):
                return (f"your scores are exactly the attention on key {k} (column {k}), averaged; BOS is key 0, "
                        "the first column: pattern[..., 1:, 0].")
    return None


def _score_diagnoses(reference: Callable[..., Any], offset: int | None, known: Sequence[int] = ()) -> tuple:
    """Wrong axes in a score (the default diagonal of the first two axes, the mean over the wrong axis), an
    index run off an axis, float16, and (for the stripe scores) another stripe than the one asked for."""
    stripe = (lambda p: p[..., 1:, 0]) if offset is None else (lambda p: _stripe(p, offset))
    bugs = [Bug("you averaged over the head axis and kept the batch axis: a score has one value per head, "
                "so average over the batch (dim 0) and the queries.",
                lambda pattern: stripe(pattern).mean(dim=(1, -1))),
            Bug("on the case with a batch of 1 sequence your result lost the head axis. A guess: the size-1 batch "
                "axis was squeezed away (.squeeze()) and then the mean went over the wrong axis: don't .squeeze(); "
                "average over dim 0 and the queries.",
                lambda pattern: stripe(pattern).squeeze().mean(dim=(0, -1)))]
    if offset is not None:
        bugs.append(Bug("pattern.diagonal(...) without dim1/dim2 takes the diagonal of the first two axes (batch "
                        f"and head). Say which axes: pattern.diagonal(offset={-offset}, dim1=-2, dim2=-1).",
                        lambda pattern: pattern.diagonal(-offset).mean(dim=(0, -1))))
    else:
        bugs.append(Bug("pattern[:, 1:, 0] indexes the head axis (dim 1), not the queries: index the last two "
                        "axes, pattern[..., 1:, 0] (or pattern[:, :, 1:, 0]).",
                        lambda pattern: pattern[:, 1:, 0].mean(dim=(0, -1))))
    found = [_shape_bugs(reference, *bugs), _score_index_error,
             float16_diagnosis(reference, "score")]
    found.append(_other_stripe(reference, offset, known) if offset is not None else _other_column)
    return tuple(found)


def _score_check(exercise: Exercise, diagnoses: tuple) -> Check:
    return make_check(replace(exercise, diagnoses=diagnoses), "nb2", shapes=SCORE_SHAPES)


PREVIOUS = Exercise(
    name="previous_token_score",
    make_case=_pattern_case,
    reference=ref.previous_token_score,
    dims=("head",),
    bugs=(
        Bug("you read the diagonal above the main one (key i+1), which the causal mask sets to 0. "
            "The previous token is key i-1: pattern.diagonal(offset=-1, dim1=-2, dim2=-1).",
            lambda pattern: pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, -1))),
        Bug("this is the current-token score (key i). The previous token is key i-1, one below the diagonal.",
            lambda pattern: _stripe(pattern, 0).mean(dim=(0, -1))),
        Bug("you divided by the number of positions, but query 0 has no previous token: average over the "
            "pos-1 queries i >= 1 only (the stripe below the diagonal has pos-1 entries; take its mean).",
            lambda pattern: _stripe(pattern, 1).sum(dim=-1).mean(dim=0) / pattern.shape[-1]),
        Bug("you summed over the batch; average over it, so the score is a probability between 0 and 1.",
            lambda pattern: _stripe(pattern, 1).mean(dim=-1).sum(dim=0)),
        Bug("you summed over the queries; average over them, so the score is a probability between 0 and 1.",
            lambda pattern: _stripe(pattern, 1).sum(dim=-1).mean(dim=0)),
        Bug("this is the attention two positions back (key i-2): the previous token is key i-1, offset=-1.",
            lambda pattern: _stripe(pattern, 2).mean(dim=(0, -1))),
    ),
)

CURRENT = Exercise(
    name="current_token_score",
    make_case=_pattern_case,
    reference=ref.current_token_score,
    dims=("head",),
    bugs=(
        Bug("you skipped query 0. The current-token score averages over every query i >= 0, "
            "including position 0 (which can only attend to itself).",
            lambda pattern: _stripe(pattern, 0)[..., 1:].mean(dim=(0, -1))),
        Bug("you divided the diagonal's sum by pos-1, but every one of the pos queries counts: divide by pos "
            "(or take the mean of the diagonal).",
            lambda pattern: _stripe(pattern, 0).sum(dim=-1).mean(dim=0) / (pattern.shape[-1] - 1)),
        Bug("this is the previous-token score (key i-1). The current token is key i: the main diagonal.",
            lambda pattern: _stripe(pattern, 1).mean(dim=(0, -1))),
        Bug("you summed over query positions; average over them, so the score lies between 0 and 1.",
            lambda pattern: _stripe(pattern, 0).sum(dim=-1).mean(dim=0)),
        Bug("you summed over the batch; average over it, so the score is a probability between 0 and 1.",
            lambda pattern: _stripe(pattern, 0).mean(dim=-1).sum(dim=0)),
    ),
)

FIRST = Exercise(
    name="first_token_score",
    make_case=_pattern_case,
    reference=ref.first_token_score,
    dims=("head",),
    bugs=(
        Bug("you included query 0. Position 0 can only attend to itself, so it always puts 1 on BOS and "
            "says nothing about the head: average over queries i >= 1 only.",
            lambda pattern: pattern[..., :, 0].mean(dim=(0, -1))),
        Bug("you read row 0 (where position 0 looks). The BOS score is column 0: how much each query i >= 1 "
            "attends to position 0, pattern[..., 1:, 0].",
            lambda pattern: pattern[..., 0, 1:].mean(dim=(0, -1))),
        Bug("you divided by pos, but only the pos-1 queries i >= 1 count: take the mean of pattern[..., 1:, 0].",
            lambda pattern: pattern[..., 1:, 0].sum(dim=-1).mean(dim=0) / pattern.shape[-1]),
        Bug("you read the last column (key pos-1, index -1). BOS is the first key: column 0.",
            lambda pattern: pattern[..., 1:, -1].mean(dim=(0, -1))),
        Bug("you summed over the batch; average over it, so the score is a probability between 0 and 1.",
            lambda pattern: pattern[..., 1:, 0].mean(dim=-1).sum(dim=0)),
    ),
)

# The stripes named by a Bug (key i+1, i, i-2 for the previous-token score; i-1 for the current one) keep their
# own messages; any other stripe is named by _other_stripe.
check_previous_token_score = _score_check(PREVIOUS, _score_diagnoses(ref.previous_token_score, 1, (-1, 0, 2)))
check_current_token_score = _score_check(CURRENT, _score_diagnoses(ref.current_token_score, 0, (1,)))
check_first_token_score = _score_check(FIRST, _score_diagnoses(ref.first_token_score, None))


# ---------------------------------------------------------------- 2. every head of a model
def _small_model(seed: int, n_layers: int) -> TransformerBridge:
    return make_model(n_layers=n_layers, d_model=32, n_heads=4, d_head=8, n_ctx=32, d_vocab=20, seed=seed)


def _key_one_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention to key 1 from the queries after it, over the batch: [batch, head, q, k] -> [head]."""
    return pattern[:, :, 1:, 1].mean((0, 2))


def _peak_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean over the batch and the queries of each row's largest weight: [batch, head, q, k] -> [head]."""
    return pattern.amax(-1).mean((0, 2))


# The score functions handed to score_all_heads are the check's own, not any exercise's answer, so that while
# Notebook 2 is graded no input of a check computes a score the notebook asks for.
SCORE_FNS = {"key_one": _key_one_score, "peak": _peak_score}


def _model_case(seed: int, n_layers: int = 3, batch: int = 2, pos: int = 12, score: str = "key_one") -> dict:
    model = _small_model(seed, n_layers)
    tokens = torch.randint(1, 20, (batch, pos), generator=seeded(seed))
    tokens[:, 0] = 0
    return {"model": model, "tokens": tokens.to(model.cfg.device), "score_fn": SCORE_FNS[score]}


def _caches(model: TransformerBridge, tokens: torch.Tensor) -> Any:
    with torch.no_grad():
        return model.run_with_cache(tokens)[1]


def _patterns(model: TransformerBridge, tokens: torch.Tensor, hook: str = "pattern") -> list[torch.Tensor]:
    """Every layer's pattern (or ``hook``) [batch, head, q_pos, k_pos], in layer order."""
    cache = _caches(model, tokens)
    return [cache[hook, layer] for layer in range(model.cfg.n_layers)]


def _score_all_heads(model: TransformerBridge, tokens: torch.Tensor, score_fn: Callable) -> torch.Tensor:
    return torch.stack([score_fn(p) for p in _patterns(model, tokens)])


SCORE_ALL = Exercise(
    name="score_all_heads",
    make_case=_model_case,
    reference=_score_all_heads,
    dims=("layer", "head"),
    bugs=(
        Bug("every row holds layer 0's scores: read the pattern of the loop's own layer from the cache.",
            lambda model, tokens, score_fn: torch.stack([score_fn(_patterns(model, tokens)[0])] * model.cfg.n_layers)),
        Bug("you scored only the first sequence: give score_fn the whole batch, pattern [batch, head, q_pos, k_pos].",
            lambda model, tokens, score_fn: torch.stack([score_fn(p[:1]) for p in _patterns(model, tokens)])),
        Bug("your rows are in reverse layer order: row l must be layer l.",
            lambda model, tokens, score_fn: _score_all_heads(model, tokens, score_fn).flip(0)),
    ),
)

def _score_hook_point(case: Case, output: Any, inputs: Any = None) -> str | None:
    """Scores that are score_fn applied to another cached activation than the pattern (as it is, or with its
    second and third axes swapped, [batch, pos, head, ...] -> [batch, head, pos, ...])."""
    model, tokens, score_fn = case["model"], case["tokens"], case["score_fn"]
    want = _score_all_heads(model, tokens, score_fn)
    if (type(output) is not torch.Tensor or output.shape != want.shape  # noqa: E721
            or torch.allclose(output, want, atol=1e-5, rtol=1e-4)):
        return None
    cache, layers = _caches(model, tokens), range(model.cfg.n_layers)
    patterns = [cache["pattern", layer] for layer in layers]
    for suffix in sorted({name.split(".", 2)[2] for name in cache.keys() if name.startswith("blocks.0.")}, key=len):
        acts = [cache[f"blocks.{layer}.{suffix}"] for layer in layers]
        if acts[0].dim() != 4 or any(a.shape == p.shape and torch.equal(a, p) for a, p in zip(acts, patterns)):
            continue
        for swap in (False, True):
            try:
                scores = torch.stack([score_fn(a.transpose(1, 2) if swap else a) for a in acts])
            except Exception:  # a score_fn that cannot read this activation is not what the student did
                continue
            if scores.shape == output.shape and torch.allclose(output, scores, atol=1e-5, rtol=1e-4):
                return (f"these are score_fn's values on the hook point {suffix} of each layer"
                        f"{' (its head and position axes swapped)' if swap else ''}, not on the attention pattern: "
                        "give score_fn cache['pattern', layer] (blocks.{layer}.attn.hook_pattern).")
    return None


# An IndexError from the embedding: a token id that the check's small model (20 tokens) does not have.
FOREIGN_TOKENS = ("IndexError", "index out of range in self",
                  "The embedding met a token id that the check's model (a vocabulary of 20 tokens) does not have, "
                  "though every token the check passes is below 20. A guess: the tokens came from a notebook "
                  "variable (the notebook's `tokens`, from a vocabulary of 128) instead of the function's arguments.")

check_score_all_heads = make_check(replace(SCORE_ALL, diagnoses=(
    _score_hook_point,
    _shape_bugs(_score_all_heads,
                Bug("torch.cat joined the layers' [head] scores end to end into one long vector: torch.stack "
                    "them, which adds a new layer axis in front.",
                    lambda model, tokens, score_fn: _score_all_heads(model, tokens, score_fn).flatten()),
                Bug("your rows are the heads and your columns the layers: stack along dim 0 (the default), "
                    "so that the result is [layer, head].",
                    lambda model, tokens, score_fn: _score_all_heads(model, tokens, score_fn).T)),
    _missing_layer,
    _raised_as(FOREIGN_TOKENS, ("ValueError", "only one element tensors",
                "torch.tensor(...) cannot build one tensor out of a list of tensors: use torch.stack(list)."),
               ("TypeError", "expected Tensor as element|must be tuple of Tensors",
                "torch.stack needs a list of tensors: give it the [head] tensors that score_fn returns."))),
    ), "nb2")


# ---------------------------------------------------------------- 3. the head in the trained model
def course_model() -> TransformerBridge:
    """The course's trained 2-layer model, with the id tokenizer that ``detect_head`` needs."""
    from induction_course.training import load_induction_model

    model = load_induction_model()
    model.tokenizer = IdTokenizer()
    return model


def _collect_factor(detect_factor: Any, lengths: Sequence[int]) -> Any:
    if not callable(detect_factor):
        return as_data(Opaque(type(detect_factor).__name__))
    return [{"seq_len": n, "value": as_data(capture(detect_factor, n))} for n in lengths]


def _as_number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if type(value) is torch.Tensor and value.numel() == 1 and not value.is_complex():  # noqa: E721
        return float(value)
    return None


def _factor_problem(record: Any, lengths: Sequence[int]) -> str | None:
    """What is wrong with the recorded ``detect_factor(n)`` values, or None."""
    if not isinstance(record, list):
        raise not_a_function("detect_factor", record)
    if [e.get("seq_len") if isinstance(e, dict) else None for e in record] != list(lengths):
        return "the check recorded other sequence lengths than it asked for: run the check cell as it is."
    for entry in record:
        n, value = entry["seq_len"], unwrap(entry["value"], "detect_factor")
        got, want = _as_number(value), (n - 1) / n
        if got is None:
            kind = value.type_name if isinstance(value, Opaque) else type(value).__name__
            return f"detect_factor({n}) returned {kind}; return a number."
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        for wrong, message in (
                (1 / want, "it is upside down: detect_head's score is the smaller one, so the factor is below 1."),
                (1.0, "the two scores are not equal. detect_head divides the attention on the "
                      "stripe by the attention of *all* rows, and every row sums to 1. How many rows are there, "
                      "and how many of them have a previous token?"),
                (0.0, "integer division? (seq_len - 1) // seq_len rounds down to 0; use /."),
                (1 / n, "that is 1/n, the part detect_head's score loses, not the ratio of the two scores."),
                ((n - 2) / (n - 1), "off by one: there are seq_len rows (one per query), and seq_len - 1 of "
                                    "them have a previous token."),
                (n / (n + 1), "off by one: there are seq_len rows (one per query), and seq_len - 1 of them have "
                              "a previous token.")):
            if math.isclose(got, wrong, rel_tol=1e-6, abs_tol=1e-12):
                return f"detect_factor({n}) returned {got:.4g}: {message}"
        return (f"detect_factor({n}) = {got:.4g}, but detect_head's score is ours times {want:.4g} on sequences of "
                f"length {n}. Compare the two on one head, then write the ratio in terms of n (seq_len).")
    return None


def _judge_factor(record: Any, lengths: Sequence[int]) -> str:
    problem = _factor_problem(record, lengths)
    if problem:
        raise CheckFailed(problem)
    return f"✓ detect_factor(n) = (n-1)/n for n in {tuple(lengths)}."


check_detect_factor = Check("nb2.check_detect_factor", _collect_factor, _judge_factor, {"lengths": (64, 10)})


def _valid_tokens(tokens: Any, model: TransformerBridge) -> torch.Tensor:
    """The recorded ``tokens`` if they are a batch of token ids this model can read; else CheckFailed."""
    cfg = model.cfg
    if not (type(tokens) is torch.Tensor and tokens.dim() == 2 and not tokens.is_floating_point()  # noqa: E721
            and not tokens.is_complex() and tokens.dtype != torch.bool and 1 <= tokens.shape[0] <= 256
            and 2 <= tokens.shape[1] <= cfg.n_ctx and int(tokens.min()) >= 0 and int(tokens.max()) < cfg.d_vocab):
        shape = list(tokens.shape) if type(tokens) is torch.Tensor else type(tokens).__name__  # noqa: E721
        raise CheckFailed(f"tokens should be the [16, 24] batch of token ids the notebook made, not {shape}: "
                          "re-run the cell that defines `tokens`, then this one.")
    return tokens.long()


def _found_problem(found: Any, scores: dict[str, torch.Tensor]) -> str | None:
    prev = scores["previous-token"]
    best = tuple(int(i) for i in torch.unravel_index(prev.argmax(), prev.shape))
    if isinstance(found, int) and not isinstance(found, bool):
        return (f"found is the single number {found}: the flat index of the argmax? Turn it into (layer, head) with "
                "torch.unravel_index(scores.argmax(), scores.shape).")
    if not (isinstance(found, (tuple, list)) and len(found) == 2):
        shown = found.type_name if isinstance(found, Opaque) else (
            f"a tensor of shape {list(found.shape)}" if isinstance(found, torch.Tensor) else repr(found))
        return f"found should be a pair of ints (layer, head), but it is {shown}."
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in found):
        kinds = ", ".join(i.type_name if isinstance(i, Opaque) else type(i).__name__ for i in found)
        return (f"found should be a pair of ints (layer, head), but its entries are ({kinds}): "
                "convert each with int(...).")
    layer, head = found
    if tuple(found) == best:
        return None
    if (head, layer) == best:
        return f"({layer}, {head}) is ({best[0]}, {best[1]}) backwards: did you swap layer and head? found is (layer, head)."
    if not (0 <= layer < prev.shape[0] and 0 <= head < prev.shape[1]):
        return f"({layer}, {head}) is not a head: the model has {prev.shape[0]} layers of {prev.shape[1]} heads."
    flat = layer * prev.shape[1] + head
    other = [f"the highest {name} score" for name, values in scores.items()
             if name != "previous-token" and int(values.argmax()) == flat]
    if int(prev.argmin()) == flat:
        also = f" It also has {other[0]}: did you score the wrong pattern?" if other else ""
        return (f"head {layer}.{head} has the *lowest* previous-token score ({float(prev[layer, head]):.2f}): "
                f"argmin instead of argmax?{also}")
    if other:
        return (f"head {layer}.{head} has {other[0]}, not the highest previous-token score "
                f"({float(prev[layer, head]):.2f} against {float(prev.max()):.2f}).")
    return (f"head {layer}.{head} has a previous-token score of {float(prev[layer, head]):.2f}; "
            f"another head scores {float(prev.max()):.2f}. Take the argmax over both axes.")


def _detect_problem(detect_scores: Any, model: TransformerBridge, tokens: torch.Tensor, want: torch.Tensor,
                    ours: torch.Tensor) -> str | None:
    if type(detect_scores) is not torch.Tensor:  # noqa: E721
        kind = detect_scores.type_name if isinstance(detect_scores, Opaque) else type(detect_scores).__name__
        return f"detect_scores should be the tensor detect_head returns, [layer, head], but it is a {kind}."
    if detect_scores.shape != want.shape:
        return shape_problem(detect_scores.shape, want.shape, ("layer", "head"), "detect_scores")
    got = detect_scores.detach().float().cpu()
    if torch.allclose(got, want, atol=1e-4):
        return None
    if torch.allclose(got, ours, atol=1e-4):
        return "detect_scores are our own previous-token scores; call TransformerLens's detect_head to get its scores."
    text = tokens_to_text(tokens)
    for pattern, options, message in (
            ("previous_token_head", {"exclude_bos": True}, "you passed exclude_bos=True"),
            ("previous_token_head", {"exclude_current_token": True}, "you passed exclude_current_token=True"),
            ("previous_token_head", {"exclude_bos": True, "exclude_current_token": True},
             "you excluded BOS and the current token"),
            ("duplicate_token_head", {}, "these are detect_head's duplicate-token scores"),
            ("induction_head", {}, "these are detect_head's induction scores")):
        if torch.allclose(got, detect_head(model, text, pattern, **options).float().cpu(), atol=1e-4):
            return (f"{message}: ask for \"previous_token_head\" with detect_head's default options, "
                    "detect_head(model, tokens_to_text(tokens), \"previous_token_head\").")
    if torch.allclose(got, detect_head(model, text[:1], "previous_token_head").float().cpu(), atol=1e-4):
        return "detect_scores come from the first sequence only: pass tokens_to_text(tokens), all the sequences."
    return ("detect_scores differ from detect_head(model, tokens_to_text(tokens), \"previous_token_head\") with its "
            f"default options (max difference {float((got - want).abs().max()):.3g}). Pass the same tokens as above.")


def _collect_head(found: Any, detect_scores: Any, detect_factor: Any, tokens: Any, lengths: Sequence[int]) -> Any:
    n = tokens.shape[-1] if type(tokens) is torch.Tensor else None  # noqa: E721
    return {"found": as_data(found), "detect_scores": as_data(detect_scores), "tokens": as_data(tokens),
            "factor": _collect_factor(detect_factor, ((n,) if n else ()) + tuple(lengths))}


def _judge_head(record: Any, lengths: Sequence[int]) -> str:
    """The student's (layer, head), detect_head's scores on their tokens and the factor between the scores."""
    if not isinstance(record, dict) or set(record) != {"found", "detect_scores", "tokens", "factor"}:
        raise CheckFailed("the check's record is incomplete: run the check cell as it is.")
    model = course_model()
    tokens = _valid_tokens(record["tokens"], model).to(model.cfg.device)
    patterns = _patterns(model, tokens)
    scores = {name: torch.stack([fn(p) for p in patterns]).cpu() for name, fn in
              (("previous-token", ref.previous_token_score), ("current-token", ref.current_token_score),
               ("first-token (BOS)", ref.first_token_score))}
    want = detect_head(model, tokens_to_text(tokens), "previous_token_head").float().cpu()
    n = tokens.shape[1]
    problem = (_found_problem(record["found"], scores)
               or _detect_problem(record["detect_scores"], model, tokens, want, scores["previous-token"])
               or _factor_problem(record["factor"], (n, *lengths)))
    if problem:
        raise CheckFailed(problem)
    layer, head = record["found"]
    top = divmod(int(want.argmax()), want.shape[1])
    verdict = "ranks it first too" if top == (layer, head) else f"but ranks head {top[0]}.{top[1]} first"
    return (f"✓ head {layer}.{head} is the previous-token head (score {float(scores['previous-token'][layer, head]):.3f}); "
            f"detect_head gives {float(want[layer, head]):.3f} = score × ({n}-1)/{n} and {verdict}.")


check_previous_token_head = Check("nb2.check_previous_token_head", _collect_head, _judge_head, {"lengths": (64, 10)})


# ---------------------------------------------------------------- 4. a picture of one head
def _plot_case(seed: int, n_layers: int) -> tuple[torch.Tensor, Any]:
    """The tokens [2, 10] and the cache of a small random model, both rebuilt from ``seed``."""
    model = _small_model(seed, n_layers)
    tokens = torch.randint(1, 20, (2, 10), generator=seeded(seed))
    tokens[:, 0] = 0
    return tokens, _caches(model, tokens.to(model.cfg.device))


def _collect_plot(plot_fn: Any, seed: int, n_layers: int, layer: int, head: int) -> Any:
    """What the student's ``plot_fn`` returned: its type, and the pixels of the last image on it."""
    import matplotlib.pyplot as plt

    if not callable(plot_fn):
        return as_data(Opaque(type(plot_fn).__name__))
    tokens, cache = _plot_case(seed, n_layers)
    try:
        ax = capture(plot_fn, cache, layer, head, tokens)
        if isinstance(ax, Raised):
            return {"returned": ax}
        returned = "Axes" if isinstance(ax, plt.Axes) else type(ax).__name__
        images = ax.images if isinstance(ax, plt.Axes) else []
        image = (torch.as_tensor(images[-1].get_array().data, dtype=torch.float32) if images else None)
        labels = [label.get_text() for label in ax.get_xticklabels()] if isinstance(ax, plt.Axes) else []
        return {"returned": returned, "image": as_data(image), "labels": as_data(labels)}
    finally:
        plt.close("all")


def _judge_plot(record: Any, seed: int, n_layers: int, layer: int, head: int) -> str:
    name = "plot_head_pattern"
    if not isinstance(record, dict) or "returned" not in record:
        raise not_a_function(name, record)
    returned = record["returned"]
    message = _missing_layer_message(returned, n_layers, [(layer, head)]) or _plot_error(returned)
    if message:
        raise CheckFailed(f"{name}: {message}", returned.traceback)
    returned = unwrap(returned, name)
    if returned == "NoneType":
        raise CheckFailed(f"{name} returned None: end it with `return attention_heatmap(...)`, the Axes it draws on.")
    if returned != "Axes":
        raise CheckFailed(f"{name} returned {returned}; return the matplotlib Axes that attention_heatmap returns"
                          + (" (fig.axes[0], or the ax you passed it), not the Figure." if returned == "Figure" else "."))
    image = record.get("image")
    if type(image) is not torch.Tensor:  # noqa: E721
        raise CheckFailed(f"the Axes returned by {name} holds no image: draw the pattern with attention_heatmap.")
    _, cache = _plot_case(seed, n_layers)
    patterns = torch.stack([cache["pattern", l].cpu() for l in range(n_layers)])  # [layer, batch, head, q, k]
    want = patterns[layer, 0, head]

    def shows(other: torch.Tensor) -> bool:
        return image.shape == other.shape and bool(torch.allclose(image, other.float(), atol=1e-5, equal_nan=True))

    if shows(want):
        note = _labels_note(record.get("labels"), seed, n_layers)
        return f"✓ {name} draws head {layer}.{head}'s pattern of sequence 0.{note}"
    if shows(want.T):
        raise CheckFailed("the picture is transposed: rows must be queries and columns keys (pattern[q_pos, k_pos]).")
    for (l, b, h) in torch.cartesian_prod(*(torch.arange(s) for s in patterns.shape[:3])).tolist():
        if shows(patterns[l, b, h]):
            raise CheckFailed(f"the picture shows head {l}.{h} of sequence {b}; it should show head {layer}.{head} "
                              "of sequence 0. Index the cache with the layer, then [0, head].")
    if shows(patterns[layer, :, head].mean(dim=0)):
        raise CheckFailed("the picture is the pattern averaged over the sequences; draw sequence 0 only, [0, head].")
    if shows(patterns[layer, 0].mean(dim=0)):
        raise CheckFailed("the picture is the pattern averaged over the heads; draw one head, [0, head].")
    raise CheckFailed(f"the picture ({list(image.shape)}) is not head {layer}.{head}'s pattern of sequence 0 "
                      f"({list(want.shape)}): pass cache['pattern', layer][0, head] to attention_heatmap.")


def _plot_error(error: Any) -> str | None:
    """What an error raised while picking one head's pattern out of the cache usually means."""
    if not isinstance(error, Raised):
        return None
    first = (error.message.splitlines() or [""])[0]
    if error.type_name == "IndexError" and re.search(r"for dimension 0 with size \d+", first):
        return (f"your code raised IndexError: {first}\nA guess: dimension 0 of cache['pattern', layer] is the batch "
                "([batch, head, q_pos, k_pos]), so the head number was used as a sequence number: index [0, head].")
    if error.type_name == "TypeError" and re.search(r"Invalid shape \(\d+, \d+, \d+\)", first):
        return (f"your code raised TypeError: {first}\nattention_heatmap draws one [q_pos, k_pos] matrix, but it got "
                "one with three axes: one index too few. cache['pattern', layer] is [batch, head, q_pos, k_pos]; "
                "pass cache['pattern', layer][0, head].")
    return None


def _labels_note(labels: Any, seed: int, n_layers: int) -> str:
    """Another sequence's tokens on the axes fail (the picture would be mislabelled); axes without the tokens
    pass with a note, since the picture itself is right."""
    from induction_course.plotting import token_labels

    tokens, _ = _plot_case(seed, n_layers)
    rows = [token_labels(row) for row in tokens]
    if labels == rows[0]:
        return ""
    other = next((b for b, row in enumerate(rows) if labels == row), None)
    if other is not None:
        raise CheckFailed(f"the picture is right, but the axes are labelled with sequence {other}'s tokens: "
                          "label them with token_labels(tokens[0]).")
    return (" Its axes do not show the tokens, though: pass token_labels(tokens[0]) to attention_heatmap as its "
            "second argument.")


check_plot_head_pattern = Check("nb2.check_plot_head_pattern", _collect_plot, _judge_plot,
                                {"seed": 0, "n_layers": 2, "layer": 1, "head": 2})


# ---------------------------------------------------------------- 5. a previous-token head by hand
DEFAULT_LAYOUT = hb.Layout()
# The second visible layout has d_vocab > n_ctx (so d_head != n_ctx) and a wide head, where a hard-coded
# size or margin that happens to fit the default layout breaks.
LAYOUTS = ({}, {"d_vocab": 40, "n_ctx": 12})
HANDBUILT_DEFAULTS = {"layouts": LAYOUTS, "seeds": (0,), "batch": 64}
QK_NAMES, OV_NAMES = ("W_pos", "W_Q", "W_K"), ("W_V", "W_O")
AXES = {"W_pos": ("n_ctx", "d_model"), "W_Q": ("d_model", "d_head"), "W_K": ("d_model", "d_head"),
        "W_V": ("d_model", "d_head"), "W_O": ("d_head", "d_model")}


def _shapes(layout: hb.Layout, names: Sequence[str]) -> list[tuple[int, int]]:
    return [tuple(getattr(layout, axis) for axis in AXES[name]) for name in names]


def _describe(layout: hb.Layout) -> str:
    return f"Layout(d_vocab={layout.d_vocab}, n_ctx={layout.n_ctx})"


def _collect_builders(*names: str) -> Callable[..., Any]:
    """The collect half of the hand-built head: each builder's weights for every layout."""
    def collect(*builders: Any, layouts: Sequence[dict], seeds: Sequence[int], batch: int) -> Any:
        record = {}
        for name, fn in zip(names, builders):
            record[name] = ([as_data(capture(fn, hb.Layout(**dict(spec)))) for spec in layouts]
                            if callable(fn) else as_data(Opaque(type(fn).__name__)))
        return record
    return collect


_BUILDER_ERRORS = (
    ("RuntimeError", r"expanded size|must match the size|shape mismatch|cannot be broadcast",
     "A value you assign into a slice has another shape than the slice. The slice layout.pos has n_ctx entries, "
     "layout.token and layout.prev have d_vocab; :n on the head axis takes n of the d_head = max(n_ctx, d_vocab) "
     "columns; and torch.diag(torch.ones(m), diagonal=±1) is (m+1) × (m+1)."),
    ("IndexError", r"out of bounds|out of range",
     "An index past the end of a weight: positions run 0 … n_ctx-1, head directions 0 … d_head-1, and the "
     "residual stream's columns 0 … d_model-1 (layout.prev ends at d_model)."),
)


def _builder_failure(name: str, error: Raised, layout: hb.Layout, worked_on_default: bool) -> CheckFailed:
    failure = raised(name, error)
    if error.type_name == "NotImplementedError":
        return failure
    extra = [meaning for type_name, pattern, meaning in _BUILDER_ERRORS
             if error.type_name == type_name and re.search(pattern, error.message)]
    if layout != DEFAULT_LAYOUT and worked_on_default:
        extra.insert(0, f"It worked on the default layout but raised on {_describe(layout)}: build every size from "
                        "layout (layout.n_ctx, layout.d_vocab, layout.d_model, layout.d_head), not from numbers.")
    return CheckFailed("\n".join([str(failure), *extra]), failure.student_traceback)


def _builder_weights(record: Any, name: str, names: Sequence[str], layouts: Sequence[hb.Layout],
                     index: int) -> list[torch.Tensor]:
    """The weights ``name`` built for ``layouts[index]``, as float tensors of the right shapes; else CheckFailed."""
    entries = record.get(name) if isinstance(record, dict) else None
    if not isinstance(entries, list):
        raise not_a_function(name, entries)
    if len(entries) != len(layouts):
        raise CheckFailed(f"{name}: the check recorded {len(entries)} layout(s) instead of {len(layouts)}; "
                          "run the check cell as it is.")
    layout, got = layouts[index], entries[index]
    if isinstance(got, Raised):
        worked = any(not isinstance(e, Raised) and l == DEFAULT_LAYOUT for e, l in zip(entries, layouts))
        raise _builder_failure(name, got, layout, worked)
    got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
    where = "" if layout == DEFAULT_LAYOUT else f" for {_describe(layout)}"
    if len(got) != len(names):
        raise CheckFailed(f"{name} returned {len(got)} value(s); expected ({', '.join(names)}).")
    for value_name, value, shape, default_shape in zip(names, got, _shapes(layout, names),
                                                       _shapes(DEFAULT_LAYOUT, names)):
        if type(value) is not torch.Tensor:  # noqa: E721
            kind = value.type_name if isinstance(value, Opaque) else type(value).__name__
            raise CheckFailed(f"{value_name} is a {kind}; it should be a torch.Tensor.")
        if tuple(value.shape) != shape:
            hint = f"; expected {named(shape, AXES[value_name])}{where}."
            if tuple(value.shape) == shape[::-1]:
                hint += " It is transposed."
            elif layout != DEFAULT_LAYOUT and tuple(value.shape) == default_shape:
                hint += (" That is its shape for the default layout: build it from layout.d_model, layout.d_head "
                         "and layout.n_ctx, not from numbers.")
            raise CheckFailed(f"{value_name} has shape {list(value.shape)}{hint}")
        if not value.is_floating_point():
            raise CheckFailed(f"{value_name} has dtype {value.dtype}; it must hold floating-point numbers "
                              "(torch.zeros(...) without dtype=, or .float()).")
        if not torch.isfinite(value).all():
            raise CheckFailed(f"{value_name} holds inf or NaN; every weight must be a finite number.")
    return [v.detach().float().cpu() for v in got]


def _qk(record: Any, layouts: Sequence[hb.Layout], index: int) -> list[torch.Tensor]:
    layout = layouts[index]
    W_pos, W_Q, W_K = _builder_weights(record, "previous_token_qk", QK_NAMES, layouts, index)
    outside = W_pos.clone()
    outside[:, layout.pos] = 0
    if outside.abs().max() > 0:
        raise CheckFailed(f"W_pos writes outside the position block (columns {layout.pos.start}..{layout.pos.stop - 1}). "
                          "Keep the token and previous-token blocks clean: the OV circuit reads one and writes the other.")
    return [W_pos, W_Q, W_K]


def _ov(record: Any, layouts: Sequence[hb.Layout], index: int) -> list[torch.Tensor]:
    return _builder_weights(record, "previous_token_ov", OV_NAMES, layouts, index)


def _run(layout: hb.Layout, qk: Sequence[torch.Tensor], ov: Sequence[torch.Tensor], seed: int, batch: int) -> tuple:
    """Run the hand-built model on fresh tokens: (tokens [b, n], logits [b, n, vocab], cache)."""
    model = hb.install(hb.make_handbuilt_model(layout), *qk, *ov)
    tokens = hb.fresh_tokens(layout, batch, seed)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return tokens, logits, cache


def _most_common(values: torch.Tensor) -> int:
    return int(values.flatten().mode().values)


def _soft_message(scores: torch.Tensor, on_prev: torch.Tensor, layout: hb.Layout, after_default: bool) -> str:
    """The pattern points at i-1 but not sharply enough: say by how much the margin falls short.

    ``after_default``: the default layout passed, so a margin that falls short here was not computed from the layout.
    """
    worst_b, worst_i = (int(v) for v in torch.unravel_index(on_prev.argmin(), on_prev.shape))
    i = worst_i + 1
    row = scores[worst_b, i, : i + 1].clone()
    target = float(row[i - 1])
    row[i - 1] = float("-inf")
    margin = target - float(row.max())
    message = (f"the pattern is too soft: position {i} puts only {float(on_prev.min()):.3f} of its attention on "
               f"{i - 1}. After the 1/sqrt(d_head) scale, key {i - 1}'s score beats the best other key by "
               f"{margin:.2f}; against {i} other keys that score alike, 0.95 needs a margin of ln(19·{i}) ≈ "
               f"{math.log(19 * i):.2f}. Multiply W_Q (or W_K) by a larger number")
    if after_default:
        return message + (f", computed from the layout (here d_head={layout.d_head}, n_ctx={layout.n_ctx}): a number "
                          "that suits the default layout is too small for this one.")
    if margin * math.sqrt(layout.d_head) >= math.log(19 * i):
        return message + (f": it would be enough without the 1/sqrt(d_head) scale, which divides every score by "
                          f"sqrt({layout.d_head}). Put sqrt(d_head) into c.")
    return message + "."


def _qk_problem(cache: Any, layout: hb.Layout, after_default: bool = False) -> str | None:
    """What is wrong with the pattern of the hand-built head, or None if every i >= 1 puts >= 0.95 on i-1."""
    pattern = cache["pattern", 0][:, 0]                                     # [batch, q, k]
    on_prev = hb.attention_on_previous(pattern)
    if on_prev.min() >= 0.95:
        return None
    q, k = cache["blocks.0.attn.hook_q"][:, :, 0], cache["blocks.0.attn.hook_k"][:, :, 0]
    scores = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.shape[-1])     # unmasked
    if (scores - scores[..., :1]).abs().max() < 1e-6:
        return ("every key gets the same score, so attention is spread evenly over the past. The scores must depend "
                "on position: is W_pos still zero, or do W_Q and W_K read rows where W_pos writes nothing?")
    causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
    positions = torch.arange(1, pattern.shape[1])
    lowest = scores.masked_fill(~causal, float("inf"))[:, 1:].argmin(dim=-1)
    if bool(((positions - lowest) == 1).float().mean() > 0.9):
        return ("the sign is flipped: key i-1 gets the *lowest* score of all the keys query i can see, so query i "
                "avoids it. Its score must be the highest: use a positive scale c.")
    wanted = positions - _most_common(positions - scores[:, 1:].argmax(dim=-1))
    if bool((wanted > positions).all()):
        return ("your queries look for key i+1, the next position, which the causal mask hides; so they spread "
                "their attention instead. Shift the other way: query i must match key i-1.")
    offset = _most_common(positions - pattern[:, 1:].argmax(dim=-1))
    if offset == 0:
        return "the head attends to itself (offset 0): query i matches key i, but it must match key i-1."
    if offset == 1:
        return _soft_message(scores, on_prev, layout, after_default)
    if bool((pattern[:, 1:].argmax(dim=-1) == 0).float().mean() > 0.5):
        return "most queries attend to position 0 (BOS), not to i-1: the scores must depend on the query's position."
    return f"most queries attend to key i-{offset}; they must attend to key i-1."


def _permutation(guess: torch.Tensor, truth: torch.Tensor, d_vocab: int) -> torch.Tensor | None:
    """If ``guess`` is a fixed function of ``truth``, that function as a lookup table [d_vocab], else None."""
    table = torch.full((d_vocab,), -1, dtype=torch.long)
    for t in truth.unique().tolist():
        values = guess[truth == t]
        if not bool((values == values[0]).all()):
            return None
        table[t] = values[0]
    return table


def _ov_problem(layout: hb.Layout, tokens: torch.Tensor, logits: torch.Tensor, cache: Any) -> str | None:
    """What is wrong with what the head writes, or None if the read-out finds the previous token >= 99% of the time."""
    truth, guess = tokens[:, :-1], hb.read_out(logits)
    if (guess == truth).float().mean() >= 0.99:
        return None
    written = cache["blocks.0.hook_attn_out"]                                 # [batch, pos, d_model]
    values = cache["blocks.0.attn.hook_v"]
    size = float(written.abs().max())
    if size == 0:
        if float(values.abs().max()) == 0:
            return ("the head writes nothing at all: its values are zero, so W_V is zero or reads rows that are empty "
                    "in the head's input. The current token's one-hot is in the token block, rows layout.token.")
        return ("the head writes nothing at all: the values are there, but W_O is zero or reads other head "
                "directions than the ones W_V writes. Token t must travel on one head direction, W_V → W_O.")
    if float(written[..., layout.prev].abs().max()) < 1e-6 * size:
        block = "current-token block (layout.token)" if float(written[..., layout.token].abs().max()) > 0 \
            else "position block (layout.pos)"
        return (f"the head writes into the {block}, but nothing reaches the previous-token block (layout.prev), "
                "which is where the read-out looks: W_O must write into the columns of layout.prev.")
    prev = written[:, 1:, layout.prev]
    if float((prev - prev[:1]).abs().max()) < 1e-6 * size:
        if float((values - values[:1]).abs().max()) < 1e-6 * float(values.abs().max()):
            return ("what the head writes does not depend on the tokens, only on the position: W_V must read the "
                    "token block (rows layout.token), not the position block.")
        return ("the read-out is ambiguous: W_O sends every token's value to the same place in the previous-token "
                "block. Each token needs its own coordinate: token t -> layout.prev.start + t.")
    top2 = logits[:, 1:].topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) >= 0.05 * size                   # no tie for the top logit
    for shift in (1, -1):
        if float(((guess == truth + shift) & clear).float().mean()) > 0.5:
            return (f"token t lands one coordinate off, at layout.prev.start + t {'+' if shift > 0 else '-'} 1, so "
                        "the read-out reads the neighbouring token: W_O must send head direction t to exactly "
                        "layout.prev.start + t.")
    strength = prev.abs().amax(dim=-1)                                          # [batch, pos - 1]
    missing = [t for t in truth.unique().tolist() if float(strength[truth == t].max()) < 0.05 * size]
    if missing:
        return (f"nothing reaches the previous-token block when the previous token is one of {missing}: "
                "W_V and W_O must carry every token 0 … d_vocab-1, not just some of them.")
    if (logits[:, 1:].argmin(dim=-1) == truth).float().mean() >= 0.99:
        return "the sign is flipped: the previous token gets the *lowest* logit. Its coordinate must go up, not down."
    if float((~clear).float().mean()) > 0.5:
        return ("the read-out is ambiguous: at most positions several tokens tie for the top logit. Each token needs "
                "exactly one coordinate of its own in the previous-token block: token t -> layout.prev.start + t.")
    table = _permutation(guess, truth, layout.d_vocab)
    if table is not None:
        seen = table[table >= 0]
        if seen.unique().numel() < seen.numel():
            return ("the read-out is ambiguous: different tokens land on the same coordinate of the previous-token "
                    "block, so it can't tell them apart. Token t must go to coordinate layout.prev.start + t.")
        return ("the previous token's identity is there, but in the wrong coordinates: the read-out expects token t "
                "at coordinate layout.prev.start + t, and yours puts it somewhere else (a permutation).")
    return (f"the read-out recovers the previous token only {float((guess == truth).float().mean()):.1%} of the time: "
            "W_V must send token t's one-hot to one head direction, and W_O that direction to layout.prev.start + t.")


def _judge_handbuilt(parts: str) -> Callable[..., str]:
    """The judge of the QK half (``"qk"``), the OV half (``"ov"``) or the whole head (``"qk+ov"``)."""
    def judge(record: Any, layouts: Sequence[dict], seeds: Sequence[int], batch: int) -> str:
        built = [hb.Layout(**dict(spec)) for spec in layouts]
        worst, accuracy, means = 1.0, 1.0, []
        for index, layout in enumerate(built):
            qk = _qk(record, built, index) if "qk" in parts else list(hb.reference_qk(layout))
            ov = _ov(record, built, index) if "ov" in parts else list(hb.reference_ov(layout))
            for seed in seeds:
                tokens, logits, cache = _run(layout, qk, ov, seed, batch)
                after_default = DEFAULT_LAYOUT in built[:index]
                problem = ((_qk_problem(cache, layout, after_default) if "qk" in parts else None)
                           or (_ov_problem(layout, tokens, logits, cache) if "ov" in parts else None))
                if problem:
                    raise CheckFailed(problem if layout == DEFAULT_LAYOUT else f"On {_describe(layout)}: {problem}")
                on_prev = hb.attention_on_previous(cache["pattern", 0][:, 0])
                worst, means = min(worst, float(on_prev.min())), means + [float(on_prev.mean())]
                accuracy = min(accuracy, float((hb.read_out(logits) == tokens[:, :-1]).float().mean()))
        sequences = f"{batch} fresh random sequences on each of {len(built)} layout(s)"
        if parts == "qk":
            return (f"✓ every position i ≥ 1 puts at least 0.95 of its attention on i-1 (worst {worst:.4f}, "
                    f"mean {sum(means) / len(means):.4f}, {sequences}).")
        if parts == "ov":
            return (f"✓ the read-out recovers the previous token {accuracy:.1%} of the time "
                    f"(≥ 99% needed, {sequences}, reference QK circuit).")
        return (f"✓ your hand-built head: every position puts ≥ {worst:.4f} on the previous token, and the read-out "
                f"recovers it {accuracy:.1%} of the time ({sequences}).")
    return judge


check_previous_token_qk = Check("nb2.check_previous_token_qk", _collect_builders("previous_token_qk"),
                                _judge_handbuilt("qk"), HANDBUILT_DEFAULTS)
check_previous_token_ov = Check("nb2.check_previous_token_ov", _collect_builders("previous_token_ov"),
                                _judge_handbuilt("ov"), HANDBUILT_DEFAULTS)
check_handbuilt_head = Check("nb2.check_handbuilt_head", _collect_builders("previous_token_qk", "previous_token_ov"),
                             _judge_handbuilt("qk+ov"), HANDBUILT_DEFAULTS)


# ---------------------------------------------------------------- 6. can a key see the previous token?
def _corrupt_case(seed: int, n_layers: int = 2, layer: int = 1, batch: int = 3, pos: int = 12, at: int = 5) -> dict:
    case = _model_case(seed, n_layers=n_layers, batch=batch, pos=pos)
    tokens = case["tokens"]
    corrupted = tokens.clone()
    corrupted[:, at] = tokens[:, at] % 19 + 1                                  # another non-BOS token
    return {"model": case["model"], "tokens": tokens, "corrupted": corrupted, "layer": layer}


def _key_change(model: TransformerBridge, tokens: torch.Tensor, corrupted: torch.Tensor, layer: int,
                hook: str = "k", norm: Callable[[torch.Tensor], torch.Tensor] = lambda d: d.norm(dim=-1),
                batch_dim: int = 0) -> torch.Tensor:
    clean, dirty = _caches(model, tokens), _caches(model, corrupted)
    name = f"blocks.{layer}.attn.hook_{hook}"
    return norm(dirty[name] - clean[name]).mean(dim=batch_dim)                # [pos, head]


KEY_CHANGE = Exercise(
    name="key_change",
    make_case=_corrupt_case,
    reference=_key_change,
    dims=("pos", "head"),
    atol=1e-4,
    bugs=(
        Bug("these are the queries' changes (hook_q); the question is about the keys, hook_k.",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer, hook="q")),
        Bug("these are the values' changes (hook_v); the question is about the keys, hook_k.",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer, hook="v")),
        Bug("these are layer 0's keys, not those of the layer `layer` asks for: build the hook name from `layer` "
            "itself (f\"blocks.{layer}.attn.hook_k\"), not from a fixed 0 or from layer - 1.",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, 0)),
        Bug("you took the squared length; use the Euclidean norm, .norm(dim=-1).",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer,
                                                                 norm=lambda d: d.pow(2).sum(dim=-1))),
        Bug("you took the sum of absolute differences (the L1 length); use the Euclidean norm, .norm(dim=-1).",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer,
                                                                 norm=lambda d: d.abs().sum(dim=-1))),
        Bug("you summed over the batch; average over it.",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer) * tokens.shape[0]),
        Bug("you took the mean of the absolute differences over d_head; use the Euclidean norm, .norm(dim=-1).",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer,
                                                                 norm=lambda d: d.abs().mean(dim=-1))),
    ),
)


def _key_hook_point(case: Case, output: Any, inputs: Any = None) -> str | None:
    """The change at another hook point of the same layer than hook_k (hook_q and hook_v are Bugs of their own),
    measured as the exercise asks (length over the last axis, mean over the batch)."""
    if type(output) is not torch.Tensor or not output.is_floating_point():  # noqa: E721
        return None
    if output.shape == (want := _key_change(**clone(case))).shape and torch.allclose(output, want, atol=1e-4, rtol=1e-4):
        return None
    model, layer = case["model"], case["layer"]
    clean, dirty = _caches(model, case["tokens"]), _caches(model, case["corrupted"])
    prefix = f"blocks.{layer}."
    named_elsewhere = [clean[f"{prefix}attn.hook_{x}"] for x in "qkv"]   # and their aliases
    for name in sorted(clean.keys(), key=len):
        if not name.startswith(prefix) or any(
                clean[name].shape == t.shape and torch.equal(clean[name], t) for t in named_elsewhere):
            continue
        change = (dirty[name] - clean[name]).norm(dim=-1).mean(dim=0)
        if change.shape == output.shape and torch.allclose(output, change, atol=1e-4, rtol=1e-4):
            same = [n for n in sorted(clean.keys(), key=len) if n != name and n.startswith(prefix)
                    and clean[n].shape == clean[name].shape and torch.equal(clean[n], clean[name])]
            name += f" (= {', '.join(same)})" if same else ""
            return (f"these are the changes at the hook point {name}, not the keys: read "
                    f"blocks.{layer}.attn.hook_k (cache['k', layer]).")
    return None


def _key_layer(case: Case, output: Any, inputs: Any = None) -> str | None:
    """The key change of another layer than ``layer`` (layer 0 is a Bug of its own)."""
    if type(output) is not torch.Tensor or not output.is_floating_point():  # noqa: E721
        return None
    want = _key_change(**clone(case))
    if output.shape != want.shape or torch.allclose(output, want, atol=1e-4, rtol=1e-4):
        return None
    layer = case["layer"]
    for other in range(1, case["model"].cfg.n_layers):
        if other != layer and torch.allclose(output, _key_change(**{**clone(case), "layer": other}), atol=1e-4,
                                             rtol=1e-4):
            return (f"these are layer {other}'s keys, not those of layer `layer` = {layer}: build the hook name "
                    "from `layer` itself (f\"blocks.{layer}.attn.hook_k\"), not from layer - 1 or a fixed number.")
    return None


check_key_change = make_check(replace(KEY_CHANGE, diagnoses=(
    _key_hook_point, _key_layer, _raised_as(FOREIGN_TOKENS),
    _shape_bugs(_key_change,
                Bug("you took the norm over the head axis (dim=-2); a key's length is over its own components, "
                    "d_head, the last axis: .norm(dim=-1).",
                    lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer,
                                                                         norm=lambda d: d.norm(dim=-2))),
                Bug("you averaged over the positions (dim 1) instead of the batch (dim 0).",
                    lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer,
                                                                         batch_dim=1)),
                Bug("you took one norm over every axis but the batch (torch.norm(..., dim=(2, 3)) or a flatten?): "
                    "take the length of each key, .norm(dim=-1), then average over the batch.",
                    lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer,
                                                                         norm=lambda d: d.norm(dim=(-2, -1))))),
    _missing_layer)), "nb2")


# ---------------------------------------------------------------- 7. why an earlier layer
WHY_EARLIER = {
    "a": "No: every layer takes exactly one softmax per head; that limits nothing here.",
    "b": None,
    "c": "No: every layer gets the same position information (here, rotary positions rotate the queries and keys "
         "of every layer alike). It says where a key is, not which token came before it.",
    "d": "No: the causal mask hides later positions, never earlier ones. A head can attend to any earlier key.",
}
ONE_LAYER_FIX = {
    "a": "No: more heads in the same layer still compute their keys from the layer's input, in which position j "
         "holds only token j and position j.",
    "b": "No: a wider head still reads only position j's own residual vector when it computes key j.",
    "c": None,
    "d": "No: positional embeddings tell a key *where* it is, not what the token before it was.",
}
EXPLANATION = ("A head computes key j from the residual stream at position j alone, as it was when the layer began. "
               "An induction head needs key j to say \"the token before me was A\", and that only exists at position "
               "j once some earlier head has copied token j-1 into it. Smeared keys do that copying inside the key "
               "itself, which is why a 1-layer model with them can form induction heads.")

check_layer_answers = choices_check("nb2.check_layer_answers",
                                    {"why_earlier": WHY_EARLIER, "one_layer_fix": ONE_LAYER_FIX}, EXPLANATION)


# ---------------------------------------------------------------- 3. what the layer-0 heads do
# The facts behind these answers are asserted on the shipped model in tests/test_nb2_science.py.
AVERAGING = {
    "a": "No: a previous-token head puts most of its attention on i-1 at every position it works at. These put "
         "little on it from the first positions on, and their spread score says their attention is even.",
    "b": None,
    "c": "No: their first-token (BOS) scores in the grid are low. A head resting on BOS would put most of its "
         "attention on position 0 at every position.",
    "d": "No: a current-token head puts its attention on the diagonal, all on one token: its spread score would "
         "be near 0, not near 1.",
}
WHERE_MEASURED = {
    "a": "No: look at the printed averages over the last stretch of the context. The curve falls in steps there, "
         "to less than half of its early level.",
    "b": None,
    "c": "No: detect_head's number differs from yours only by the factor (n-1)/n, and it averages over the same "
         "positions; neither looks past position 24.",
    "d": "No: the last stretch would pull a score over all 64 positions down; the printed averages show by how much.",
}
LAYER0_EXPLANATION = ("Two layer-0 heads attend to the previous token and two average over everything seen so far: "
                      "one job can be shared, and other heads do other jobs. A score is an average over the batch "
                      "and over the positions it was measured on, so it should always come with them.")

check_layer0_answers = choices_check("nb2.check_layer0_answers",
                                     {"averaging": AVERAGING, "where_measured": WHERE_MEASURED}, LAYER0_EXPLANATION)
