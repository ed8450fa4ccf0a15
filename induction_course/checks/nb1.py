"""Checks for Notebook 1, attention from scratch.

Each ``check_*`` function is what the student's check cell and the graded test cell call.
Visible tests use the default seed; hidden tests pass other seeds and shapes.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from induction_course import attention as ref
from induction_course.checks.core import Bug, CheckFailed, Exercise, as_tuple, call_student, seeded, make_check

SCORE_DIMS = ("batch", "head", "q_pos", "k_pos")
HEAD_DIMS = ("batch", "pos", "head", "d_head")
RESID_DIMS = ("batch", "pos", "d_model")



def _qk_case(seed: int, batch: int = 2, pos: int = 7, head: int = 3, d_head: int = 8) -> dict:
    g = seeded(seed)
    return {"q": torch.randn(batch, pos, head, d_head, generator=g),
            "k": torch.randn(batch, pos, head, d_head, generator=g)}


def _scrambled_heads(t: torch.Tensor) -> torch.Tensor:
    """[batch, pos, head, d] viewed as if the head axis came first: the classic .view mistake."""
    b, p, h, d = t.shape
    return t.reshape(b, h, p, d).transpose(1, 2)


# ---------------------------------------------------------------- 1. project (Q, K, V)
def _project_case(seed: int, batch: int = 2, pos: int = 5, head: int = 3, d_model: int = 12, d_head: int = 4) -> dict:
    g = seeded(seed)
    return {"x": torch.randn(batch, pos, d_model, generator=g),
            "W": torch.randn(head, d_model, d_head, generator=g) / math.sqrt(d_model),
            "b": torch.randn(head, d_head, generator=g)}


PROJECT = Exercise(
    name="project",
    make_case=_project_case,
    reference=ref.project,
    dims=HEAD_DIMS,
    bugs=(
        Bug("the bias b is missing: add b (shape [head, d_head]) after the matrix product.",
            lambda x, W, b: torch.einsum("bpm,hmd->bphd", x, W)),
        Bug("heads are mixed up: W has shape [head, d_model, d_head], so reshaping it to "
            "[d_model, head*d_head] interleaves heads. Use einsum('bpm,hmd->bphd', x, W).",
            lambda x, W, b: (x @ W.reshape(W.shape[1], -1)).reshape(*x.shape[:2], *b.shape) + b),
    ),
)


# ---------------------------------------------------------------- 2. attention scores
SCORES = Exercise(
    name="attention_scores",
    make_case=_qk_case,
    reference=ref.attention_scores,
    dims=SCORE_DIMS,
    bugs=(
        Bug("the 1/sqrt(d_head) scale is missing: divide the dot products by sqrt(d_head).",
            lambda q, k: torch.einsum("bqhd,bkhd->bhqk", q, k)),
        Bug("you divided by d_head; the scale is 1/sqrt(d_head).",
            lambda q, k: torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1]),
        Bug("queries and keys are transposed: entry [b, h, i, j] must be query i dotted with key j, "
            "not key i with query j.",
            lambda q, k: ref.attention_scores(k, q)),
        Bug("heads are mixed up: a query of head h must only meet keys of the same head h "
            "(use the same einsum letter for the head axis of q and k).",
            lambda q, k: torch.einsum("bqhd,bkgd->bhqk", q, k) / math.sqrt(q.shape[-1])),
        Bug("heads are mixed up with positions: reshaping [batch, pos, head, d_head] to "
            "[batch, head, pos, d_head] with .view/.reshape scrambles them; use .transpose(1, 2) or einsum.",
            lambda q, k: ref.attention_scores(_scrambled_heads(q), _scrambled_heads(k))),
    ),
)


# ---------------------------------------------------------------- 3. causal mask
def _scores_case(seed: int, batch: int = 2, head: int = 3, pos: int = 6) -> dict:
    return {"scores": torch.randn(batch, head, pos, pos, generator=seeded(seed))}


def _future(n: int, diagonal: int) -> torch.Tensor:
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=diagonal)


MASK = Exercise(
    name="apply_causal_mask",
    make_case=_scores_case,
    reference=ref.apply_causal_mask,
    dims=SCORE_DIMS,
    # Any value <= -1e4 counts as masked, so -inf, -1e9 and torch.finfo(...).min all pass.
    transform=lambda t: t.clamp(min=-1e4),
    bugs=(
        Bug("nothing is masked: every score of a key after its query (j > i) must become -inf.",
            lambda scores: scores),
        Bug("you also masked the diagonal (off by one): position i may attend to itself. "
            "Mask only j > i, e.g. torch.triu(..., diagonal=1).",
            lambda scores: scores.masked_fill(_future(scores.shape[-1], 0), float("-inf"))),
        Bug("you masked the past instead of the future: keep j <= i and mask j > i (triu, not tril).",
            lambda scores: scores.masked_fill(_future(scores.shape[-1], 1).T, float("-inf"))),
        Bug("masked scores were set to 0. A zero still gets attention after the softmax: use -inf.",
            lambda scores: scores.masked_fill(_future(scores.shape[-1], 1), 0.0)),
    ),
)


# ---------------------------------------------------------------- 4. attention pattern
def _masked_after(q: torch.Tensor, k: torch.Tensor, fill: float) -> torch.Tensor:
    probs = ref.attention_scores(q, k).softmax(dim=-1)
    return probs.masked_fill(_future(q.shape[1], 1), fill)


PATTERN = Exercise(
    name="attention_pattern",
    make_case=_qk_case,
    reference=ref.attention_pattern,
    dims=SCORE_DIMS,
    nan_hint="A NaN in the pattern means a softmax over entries that were all -inf: "
             "did the mask also cover the diagonal, or is the softmax over the wrong axis?",
    bugs=(
        Bug("the mask is applied after the softmax. Mask the scores first, then softmax, "
            "so each row's probabilities over the allowed keys sum to 1.",
            lambda q, k: _masked_after(q, k, 0.0)),
        Bug("the mask is applied after the softmax (future entries are -inf). Mask the scores, then softmax.",
            lambda q, k: _masked_after(q, k, float("-inf"))),
        Bug("there is no causal mask: a query must not see later keys.",
            lambda q, k: ref.attention_scores(q, k).softmax(dim=-1)),
        Bug("the softmax is over the wrong axis: normalise over keys (the last axis, dim=-1), "
            "so each query's row sums to 1.",
            lambda q, k: ref.apply_causal_mask(ref.attention_scores(q, k)).softmax(dim=-2)),
        Bug("the softmax is over the head axis; it must be over keys (dim=-1).",
            lambda q, k: ref.attention_scores(q, k).masked_fill(_future(q.shape[1], 1), -1e9).softmax(dim=1)),
        Bug("the 1/sqrt(d_head) scale is missing from the scores.",
            lambda q, k: ref.apply_causal_mask(torch.einsum("bqhd,bkhd->bhqk", q, k)).softmax(dim=-1)),
        Bug("queries and keys are transposed: row i must hold query i's attention over keys.",
            lambda q, k: ref.attention_pattern(k, q)),
        Bug("the pattern is transposed ([.., k_pos, q_pos]): rows are queries, columns are keys.",
            lambda q, k: ref.attention_pattern(q, k).transpose(-1, -2)),
    ),
)


# ---------------------------------------------------------------- 5. weighted values (z)
def _pattern_v_case(seed: int, batch: int = 2, pos: int = 6, head: int = 3, d_head: int = 4) -> dict:
    g = seeded(seed)
    q, k = torch.randn(2, batch, pos, head, d_head, generator=g)
    return {"pattern": ref.attention_pattern(q, k), "v": torch.randn(batch, pos, head, d_head, generator=g)}


Z = Exercise(
    name="weighted_values",
    make_case=_pattern_v_case,
    reference=ref.weighted_values,
    dims=HEAD_DIMS,
    bugs=(
        Bug("the pattern is used transposed: z at query i is sum over keys j of pattern[b, h, i, j] * v[b, j, h].",
            lambda pattern, v: torch.einsum("bhkq,bkhd->bqhd", pattern, v)),
        Bug("heads are mixed up: head h's pattern must weight head h's values only.",
            lambda pattern, v: torch.einsum("bhqk,bkgd->bqhd", pattern, v)),
        Bug("heads are mixed up with positions: reshaping between [batch, pos, head, d_head] and "
            "[batch, head, pos, d_head] needs .transpose, not .view/.reshape.",
            lambda pattern, v: (pattern @ v.reshape(v.shape[0], v.shape[2], v.shape[1], -1)).transpose(1, 2)),
    ),
)


# ---------------------------------------------------------------- 6. output projection
def _z_case(seed: int, batch: int = 2, pos: int = 5, head: int = 3, d_head: int = 4, d_model: int = 12) -> dict:
    g = seeded(seed)
    return {"z": torch.randn(batch, pos, head, d_head, generator=g),
            "W_O": torch.randn(head, d_head, d_model, generator=g) / math.sqrt(d_head),
            "b_O": torch.randn(d_model, generator=g)}


OUTPUT = Exercise(
    name="attention_output",
    make_case=_z_case,
    reference=ref.attention_output,
    dims=RESID_DIMS,
    bugs=(
        Bug("the bias b_O is missing: add it once, after summing over heads.",
            lambda z, W_O, b_O: torch.einsum("bphd,hdm->bpm", z, W_O)),
        Bug("b_O is added once per head; add it once, after the sum over heads.",
            lambda z, W_O, b_O: torch.einsum("bphd,hdm->bpm", z, W_O) + z.shape[2] * b_O),
        Bug("heads are mixed up: each head's z goes through its own W_O[h] "
            "(use the same einsum letter for the head axis of z and W_O).",
            lambda z, W_O, b_O: torch.einsum("bphd,gdm->bpm", z, W_O) + b_O),
        Bug("you averaged over heads; the heads' outputs are summed.",
            lambda z, W_O, b_O: torch.einsum("bphd,hdm->bpm", z, W_O) / z.shape[2] + b_O),
    ),
)


# ---------------------------------------------------------------- 7. whole layer vs TransformerLens
def _layer_case(seed: int, batch: int = 2, pos: int = 9, d_model: int = 32, head: int = 4, d_head: int = 8) -> dict:
    g = seeded(seed)
    shapes = {"W_Q": (head, d_model, d_head), "W_K": (head, d_model, d_head), "W_V": (head, d_model, d_head),
              "W_O": (head, d_head, d_model)}
    case = {"x": torch.randn(batch, pos, d_model, generator=g)}
    case.update({k: torch.randn(*s, generator=g) / math.sqrt(s[1]) for k, s in shapes.items()})
    case.update({f"b_{n}": 0.1 * torch.randn(head, d_head, generator=g) for n in "QKV"})
    case["b_O"] = 0.1 * torch.randn(d_model, generator=g)
    return case


def _layer_without_mask(x, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O):
    q, k, v = ref.project(x, W_Q, b_Q), ref.project(x, W_K, b_K), ref.project(x, W_V, b_V)
    pattern = ref.attention_scores(q, k).softmax(dim=-1)
    z = ref.weighted_values(pattern, v)
    return pattern, z, ref.attention_output(z, W_O, b_O)


LAYER = Exercise(
    name="attention_layer",
    make_case=_layer_case,
    reference=ref.attention_layer,
    dims=(SCORE_DIMS, HEAD_DIMS, RESID_DIMS),
    bugs=(Bug("the pattern has no causal mask.", _layer_without_mask),),
)



check_project = make_check(PROJECT, "nb1")
check_attention_scores = make_check(SCORES, "nb1")
check_apply_causal_mask = make_check(MASK, "nb1")
check_attention_pattern = make_check(PATTERN, "nb1")
check_weighted_values = make_check(Z, "nb1")
check_attention_output = make_check(OUTPUT, "nb1")
check_attention_layer = make_check(LAYER, "nb1")


def check_against_transformer_lens(student_layer: Callable, seed: int = 0, n_layers: int = 1, layer: int = 0,
                                   batch: int = 2, pos: int = 12, atol: float = 1e-4) -> None:
    """Build a seeded TransformerLens model, run ``student_layer`` on its own attention input and
    weights at ``layer``, and compare with the model's ``hook_pattern``, ``hook_z`` and attention output.
    """
    from induction_course.models import make_model  # TransformerLens loads only for this check

    model = make_model(n_layers=n_layers, d_model=32, n_heads=4, d_head=8, n_ctx=32, d_vocab=20, seed=seed)
    tokens = torch.randint(0, 20, (batch, pos), generator=seeded(seed)).to(model.cfg.device)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    attn = model.blocks[layer].attn
    weights = {name: getattr(attn, name).detach() for name in
               ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O")}
    x = cache[f"blocks.{layer}.attn.hook_in"]
    got = as_tuple(call_student(student_layer, {"x": x, **weights}, "attention_layer"))
    expected = {"pattern": cache[f"blocks.{layer}.attn.hook_pattern"], "z": cache[f"blocks.{layer}.attn.hook_z"],
                "attention output": cache[f"blocks.{layer}.hook_attn_out"]}
    if len(got) != len(expected):
        raise CheckFailed(f"attention_layer returned {len(got)} values; expected (pattern, z, out).")
    for (label, want), value in zip(expected.items(), got):
        if not isinstance(value, torch.Tensor) or value.shape != want.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckFailed(f"your {label} has shape {shape}; TransformerLens's has {tuple(want.shape)}.")
        err = float((value.to(want.device) - want).abs().max())
        if not err <= atol:
            raise CheckFailed(f"your {label} differs from TransformerLens's by up to {err:.3g} (tolerance {atol:g}).")
    print(f"✓ pattern, z and attention output of layer {layer} match TransformerLens's (max error ≤ {atol:g}).")
