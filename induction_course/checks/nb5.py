"""Checks for Notebook 5, induction heads in a language model of real text.

Each ``check_*`` is a :class:`~induction_course.checks.core.Check`: collect runs the student's function on
seeded inputs, judge decides from the record alone, regenerating the inputs from the seeds. Exercises that
take a model run on the course's trained 2-layer model of Notebook 3 (small, quick, and it has
previous-token and induction heads, so every mistake changes the numbers); the reference implementations
are in :mod:`induction_course.text_analysis`. Visible tests use the defaults; hidden tests pass other seeds
and shapes.
"""
from __future__ import annotations

import functools
import itertools
import re
from typing import Any, Callable, Sequence

import torch
from transformer_lens.model_bridge import TransformerBridge

from induction_course import text_analysis as ref
from induction_course.ablation import ablation_hooks, quiet_hooks, run_loss, z_name
from induction_course.checks.core import (Bug, Check, CheckFailed, Exercise, choices_check, collect_calls,
                                          judge_case, not_a_function, seeded)
from induction_course.checks.record import Raised
from induction_course.checks.symptoms import foreign_size_diagnosis, unknown_hook_symptom
from induction_course.circuits import ICL_EARLY, ICL_LATE
from induction_course.data import repeated_tokens
from induction_course.heads import diagonal_score, induction_score, previous_token_score

Case = dict[str, Any]
Diagnosis = Callable[[Case, Any, Any], "str | None"]


class HooksLeftOn(RuntimeError):
    """The student's function returned with hooks still on the model."""


# ================================================================ running students' functions
@functools.lru_cache(maxsize=1)
def course_model() -> TransformerBridge:
    """Notebook 3's trained 2-layer model, on the CPU (it has previous-token and induction heads)."""
    from induction_course.training import load_induction_model

    return load_induction_model(device="cpu")


def _hooks_on(model: TransformerBridge) -> int:
    return sum(len(point.fwd_hooks) for point in model.hook_dict.values())


def _guarded(fn: Callable) -> Callable:
    """Run a student's function without gradients; if it leaves hooks on the model, remove them and say so."""
    def run(**case: Any) -> Any:
        model = case.get("model")
        try:
            with torch.no_grad(), quiet_hooks():
                out = fn(**case)
        finally:
            left = _hooks_on(model) if isinstance(model, TransformerBridge) else 0
            if isinstance(model, TransformerBridge):
                model.reset_hooks(including_permanent=True)
        if left:
            raise HooksLeftOn(f"{left} hook(s) were still on the model after your function returned")
        return out
    return run


def _safe(fn: Callable) -> Callable:
    """A bug that does not apply to this case matches nothing."""
    def run(**case: Any) -> Any:
        try:
            with torch.no_grad(), quiet_hooks():
                return fn(**case)
        except (IndexError, KeyError, RuntimeError, ValueError):
            return None
    return run


def _raised(output: Any, *types: str) -> str | None:
    if isinstance(output, Raised) and output.type_name in types:
        return output.message
    return None


def _judge(exercise: Exercise, diagnoses: Sequence[Diagnosis], visible: Sequence[dict]) -> Callable[..., str]:
    """Judge a function exercise's record: the ``diagnoses`` first, then the engine's comparison."""
    def judge(record: Any, seeds: Sequence[int] = (0,), shapes: Sequence[dict] = tuple(visible)) -> str:
        if not isinstance(record, list):
            raise not_a_function(exercise.name, record)
        cases = [(seed, dict(shape)) for shape in shapes for seed in seeds]
        if len(record) != len(cases) or any(
                not isinstance(entry, dict) or entry.get("seed") != seed or entry.get("shape") != shape
                for (seed, shape), entry in zip(cases, record)):
            raise CheckFailed(f"{exercise.name}: the recorded cases do not match the check's; "
                              "run the check cell as it is.")
        for (seed, shape), entry in zip(cases, record):
            case = exercise.make_case(seed, **shape)
            output, inputs = entry.get("output"), entry.get("inputs")
            for diagnose in diagnoses:
                message = diagnose(case, output, inputs)
                if message:
                    trace = output.traceback if isinstance(output, Raised) else ""
                    raise CheckFailed(f"{exercise.name}: {message}", trace)
            judge_case(exercise, case, output, inputs)
        return (f"✓ {exercise.name} matches the reference on {len(cases)} fresh input(s) "
                f"(atol={exercise.atol:g}, rtol={exercise.rtol:g}).")
    return judge


def _check(exercise: Exercise, diagnoses: Sequence[Diagnosis] = (), shapes: Sequence[dict] = ({},)) -> Check:
    collect = collect_calls(exercise, wrap=_guarded)

    def quiet(fn: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            with torch.no_grad(), quiet_hooks():
                return fn(*args, **kwargs)
        return run
    return Check(f"nb5.check_{exercise.name}", quiet(collect), quiet(_judge(exercise, diagnoses, shapes)),
                 {"seeds": (0,), "shapes": tuple(shapes)})


def _hooks_left(case: Case, output: Any, inputs: Any) -> str | None:
    if _raised(output, "HooksLeftOn"):
        return ("your function left its hooks on the model (model.add_hook without removing them), so every "
                "later run of the model would still be ablated. Use model.run_with_hooks(tokens, fwd_hooks=[...]) "
                "or `with model.hooks(fwd_hooks=[...]):`, which remove them when the run ends.")
    return None



def _hook_name(case: Case, output: Any, inputs: Any) -> str | None:
    message = _raised(output, "KeyError")
    if message is None:
        return None
    cfg = case["model"].cfg
    pairs = case.get("heads") or itertools.product(range(cfg.n_layers), range(cfg.n_heads))
    return unknown_hook_symptom(message, "f\"blocks.{layer}.attn.hook_z\", f\"blocks.{layer}.attn.hook_pattern\" "
                                "and \"ln_final.hook_scale\"", cfg.n_layers, pairs)


# ================================================================ 5.1 the ICL score, scaled to the context
def _icl_case(seed: int, batch: int = 4, n: int = 66, width: int = 3) -> Case:
    """n = 66 and width 3: round(0.1 n) is not int(0.1 n), the late window must be kept inside the context,
    and the width is not the default 5, so each of those mistakes changes the score."""
    g = seeded(seed)
    trend = torch.linspace(5.0, 3.0, n)        # losses fall with position, as in a model that learns in context
    return {"losses": trend + torch.rand(batch, n, generator=g) * 2, "width": width}


def _icl_variant(losses, width, early_frac=0.1, late_frac=0.98, centred=True, sign=1, windows=None,
                 rounding=round, clamp=True, reduce="mean", combine=torch.sub):
    """The reference with one step changed: ``rounding`` (int truncates), the late window not ``clamp``ed
    inside the context, each window's ``reduce`` ("sum"), or the two windows combined by ``combine``
    (torch.div: a ratio)."""
    n = losses.shape[-1]
    if windows is not None:
        early, late = windows
    else:
        def window(frac: float) -> slice:
            centre = rounding(frac * n)
            start = centre - width // 2 if centred else centre
            start = max(0, min(start, n - width)) if clamp else start
            return slice(start, start + width)
        early, late = window(early_frac), window(late_frac)
    return sign * combine(getattr(losses[:, late], reduce)(), getattr(losses[:, early], reduce)())


ICL = Exercise(
    name="text_icl_score",
    make_case=_icl_case,
    reference=ref.text_icl_score,
    dims=(),
    bugs=(
        Bug("the sign is flipped: the ICL score is late minus early (negative means the model predicts better "
            "later in the context).",
            lambda **c: _icl_variant(**c, sign=-1)),
        Bug("these are Notebook 3's windows (ICL_EARLY, ICL_LATE), fixed for a context of 64. Here the positions "
            "scale with the context: around 0.1 and 0.98 of the number of loss entries.",
            _safe(lambda losses, width: losses[:, ICL_LATE].mean() - losses[:, ICL_EARLY].mean())),
        Bug("you took single positions, not windows of `width` entries around them.",
            _safe(lambda losses, width: losses[:, min(round(0.98 * losses.shape[-1]), losses.shape[-1] - 1)].mean()
                  - losses[:, round(0.1 * losses.shape[-1])].mean())),
        Bug("your windows start at 0.1 n and 0.98 n; they should be centred there: start at centre - width // 2 "
            "(and keep the late window inside the context).",
            lambda **c: _icl_variant(**c, centred=False)),
        Bug("you scaled the positions to the batch axis (losses.shape[0]); scale them to the number of loss "
            "entries, losses.shape[-1].",
            _safe(lambda losses, width: losses[:, slice(*_frac_window(losses.shape[0], 0.98, width))].mean()
                  - losses[:, slice(*_frac_window(losses.shape[0], 0.1, width))].mean())),
        Bug("int() cuts 0.1 n and 0.98 n down; the windows are centred on the *rounded* positions: "
            "round(0.1 * n) and round(0.98 * n).",
            lambda **c: _icl_variant(**c, rounding=int)),
        Bug("your late window runs past the last loss entry, so it holds fewer than `width` entries. Keep it "
            "inside the context: start it at min(round(0.98 * n) - width // 2, n - width).",
            lambda **c: _icl_variant(**c, clamp=False)),
        Bug("you summed each window's losses; the score is a difference of *means*: "
            "losses[:, start:start + width].mean().",
            lambda **c: _icl_variant(**c, reduce="sum")),
        Bug("this is the ratio late / early; the ICL score is the difference late − early.",
            lambda **c: _icl_variant(**c, combine=torch.div)),
        Bug("the window is 5 entries wide whatever `width` says: use the argument `width` for both windows.",
            lambda losses, width: _icl_variant(losses, 5) if width != 5 else None),
    ),
    nan_hint="A mean over an empty slice is NaN: one of your windows selects no loss entries. Print its start "
             "and end: they should lie between 0 and n = losses.shape[-1].",
)


def _frac_window(n: int, frac: float, width: int) -> tuple[int, int]:
    start = max(0, min(round(frac * n) - width // 2, n - width))
    return start, start + width


check_text_icl_score = _check(ICL, shapes=({},))


# ================================================================ 5.2 previous-token and induction scores
def _scores_case(seed: int, batch: int = 4, seq_len: int = 23) -> Case:
    model = course_model()
    return {"model": model, "tokens": repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed + 700),
            "seq_len": seq_len}


def _patterns(model, tokens) -> list[torch.Tensor]:
    _, cache = model.run_with_cache(tokens)
    return [cache["pattern", layer] for layer in range(model.cfg.n_layers)]


def _scores_variant(model, tokens, seq_len, prev=previous_token_score, ind=induction_score, swap=False, layer0=False,
                    first_only=False):
    patterns = _patterns(model, tokens[:1] if first_only else tokens)
    if layer0:
        patterns = [patterns[0]] * len(patterns)
    out = (torch.stack([prev(p) for p in patterns]), torch.stack([ind(p, seq_len) for p in patterns]))
    return out[::-1] if swap else out


SCORES = Exercise(
    name="head_scores_on_repeats",
    make_case=_scores_case,
    reference=ref.head_scores_on_repeats,
    dims=(("layer", "head"), ("layer", "head")),
    bugs=(
        Bug("the two grids are swapped: return (previous-token scores, induction scores).",
            lambda **c: _scores_variant(**c, swap=True)),
        Bug("you scored layer 0's pattern for every layer: take cache[\"pattern\", layer] inside the loop.",
            lambda **c: _scores_variant(**c, layer0=True)),
        Bug("your induction score measures attention to i - seq_len, the earlier copy of the *same* token. An "
            "induction head attends to the token after it, i - (seq_len - 1): induction_score(pattern, seq_len).",
            lambda **c: _scores_variant(**c, ind=lambda p, n: diagonal_score(p, n, first_query=n + 1))),
        Bug("your induction score averages over the first copy too, where there is nothing to look up. Score the "
            "second copy only: induction_score(pattern, seq_len) from induction_course.heads.",
            lambda **c: _scores_variant(**c, ind=lambda p, n: diagonal_score(p, n - 1))),
        Bug("these are the scores of the first sequence alone; score the whole batch: induction_score and "
            "previous_token_score average over it (pattern[:, ...], not pattern[0] or tokens[:1]).",
            lambda **c: _scores_variant(**c, first_only=True) if len(c["tokens"]) > 1 else None),
        Bug("you passed seq_len + 1 (counting BOS): induction_score(pattern, seq_len) takes |R| itself.",
            lambda **c: _scores_variant(**c, ind=lambda p, n: induction_score(p, n + 1))),
        Bug("your previous-token score is the attention to the token itself (offset 0); it is the attention "
            "from i to i - 1: previous_token_score(pattern).",
            lambda **c: _scores_variant(**c, prev=lambda p: diagonal_score(p, 0))),
    ),
)
check_head_scores_on_repeats = _check(SCORES, (_hook_name, foreign_size_diagnosis))


# ================================================================ 5.3 direct logit attribution
def _dla_case(seed: int, batch: int = 3, seq_len: int = 23) -> Case:
    model = course_model()
    tokens = repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed + 900)
    _, cache = model.run_with_cache(tokens)
    return {"model": model, "cache": cache, "tokens": tokens}


def _dla_variant(model, cache, tokens, shift=1, centre=True, scale="ln_final", weight=True, b_O=False,
                 ln_bias=False, z_start=0):
    """The reference with one step changed: the targets ``shift``ed, no centring, the ``scale`` of "ln_final",
    "ln1" (block 0's), "multiply" or None, no weight, b_O or ln_final.b added, or the heads' outputs and
    scales read from position ``z_start`` on (z[:, 1:] against the targets tokens[:, 1:])."""
    targets = tokens[:, shift:tokens.shape[1] - 1 + shift]
    directions = model.W_U[:, targets].permute(1, 2, 0)
    kept = slice(z_start, tokens.shape[1] - 1 + z_start)
    scales = {"ln_final": cache["ln_final.hook_scale"], "ln1": cache["blocks.0.ln1.hook_scale"],
              "multiply": 1 / cache["ln_final.hook_scale"]}
    out = []
    for layer in range(model.cfg.n_layers):
        written = torch.einsum("bphd,hdm->bphm", cache[z_name(layer)][:, kept], model.blocks[layer].attn.W_O)
        if b_O:
            written = written + model.blocks[layer].attn.b_O
        if centre:
            written = written - written.mean(dim=-1, keepdim=True)
        if scale:
            written = written / scales[scale][:, kept, None]
        if weight:
            written = written * model.ln_final.w
        if ln_bias:
            written = written + model.ln_final.b
        out.append(torch.einsum("bphm,bpm->bph", written, directions))
    return torch.stack(out, dim=-2)


def _dla_shapes(case: Case, output: Any, inputs: Any) -> str | None:
    message = _raised(output, "RuntimeError", "IndexError")
    if message is None or not re.search(r"shape|size|out of (range|bounds)", message):
        return None
    model, cache = case["model"], case["cache"]
    return (f"the shapes did not fit ({message.splitlines()[0][:160]}). The pieces: "
            f"cache[\"blocks.0.attn.hook_z\"] {list(cache[z_name(0)].shape)} [batch, pos, head, d_head]; "
            f"W_O {list(model.blocks[0].attn.W_O.shape)} [head, d_head, d_model]; "
            f"cache[\"ln_final.hook_scale\"] {list(cache['ln_final.hook_scale'].shape)}; "
            f"model.W_U {list(model.W_U.shape)} [d_model, d_vocab]; the targets tokens[:, 1:] are [batch, pos - 1].")


DLA = Exercise(
    name="head_logit_attribution",
    make_case=_dla_case,
    reference=ref.head_logit_attribution,
    dims=("batch", "pos", "layer", "head"),
    atol=1e-4,
    rtol=1e-3,
    bugs=(
        Bug("you read the logit of the current token, tokens[:, :-1]. Position i predicts the *next* token: "
            "use the unembedding columns of tokens[:, 1:].",
            lambda **c: _dla_variant(**c, shift=0)),
        Bug("the final LayerNorm is missing: the head's output reaches W_U through ln_final, which (its scale "
            "frozen) centres over d_model, divides by cache[\"ln_final.hook_scale\"] and multiplies by "
            "model.ln_final.w.",
            lambda **c: _dla_variant(**c, centre=False, scale=False, weight=False)),
        Bug("the centring is missing: LayerNorm subtracts the mean over d_model before dividing by the scale.",
            lambda **c: _dla_variant(**c, centre=False)),
        Bug("you did not divide by the final LayerNorm's scale, cache[\"ln_final.hook_scale\"][:, :-1].",
            lambda **c: _dla_variant(**c, scale=None)),
        Bug("you multiplied by the final LayerNorm's scale; LayerNorm *divides* by it: "
            "/ cache[\"ln_final.hook_scale\"].",
            lambda **c: _dla_variant(**c, scale="multiply")),
        Bug("you divided by a block's ln1 scale. The heads' outputs reach the logits through the final "
            "LayerNorm: divide by cache[\"ln_final.hook_scale\"].",
            lambda **c: _dla_variant(**c, scale="ln1")),
        Bug("the LayerNorm weight model.ln_final.w is missing: multiply after dividing by the scale.",
            lambda **c: _dla_variant(**c, weight=False)),
        Bug("you included b_O: it is the layer's shared bias, not any one head's output.",
            lambda **c: _dla_variant(**c, b_O=True)),
        Bug("you added the LayerNorm bias ln_final.b. It is in every run's logits, whatever the heads write, so "
            "it is no head's contribution: leave it out.",
            lambda **c: _dla_variant(**c, ln_bias=True)),
        Bug("you took the heads' outputs from positions 1 … pos - 1 (z[:, 1:]). The prediction of tokens[:, i + 1] "
            "is made at position i: keep z[:, :-1] and the scale's [:, :-1], and shift only the targets.",
            lambda **c: _dla_variant(**c, z_start=1)),
    ),
)
check_head_logit_attribution = _check(DLA, (foreign_size_diagnosis, _dla_shapes, _hook_name))


# ================================================================ 5.4 ICL with heads ablated
def _ablate_case(seed: int, batch: int = 8, heads: Sequence[tuple[int, int]] | None = None, width: int = 3) -> Case:
    from induction_course.training import repeating_batch

    model = course_model()
    tokens, _ = repeating_batch(batch, model.cfg.n_ctx, model.cfg.d_vocab, seeded(seed + 1100))
    if heads is None:  # read backwards as (head, layer), these are other heads of this 2-layer model
        heads = [(1, 1), (1, 0), (0, 0)]
    return {"model": model, "tokens": tokens, "heads": [tuple(h) for h in heads], "width": width}


def _batch_mean(z: torch.Tensor, hook: Any, head: int) -> torch.Tensor:
    z = z.clone()
    z[:, :, head] = z[:, :, head].mean(dim=0)
    return z


def _ablated_icl(model, tokens, heads, width, icl=ref.text_icl_score, hook_point="z"):
    """The reference with the hooks on ``hook_point`` "pattern" or "attn_out" (the block's hook_attn_out), or
    "mean" (hook_z, each head replaced by its mean over the batch)."""
    hooks = ablation_hooks(heads)
    if hook_point == "pattern":
        hooks = [(f"blocks.{layer}.attn.hook_pattern", hook) for (layer, _), (_, hook) in zip(heads, hooks)]
    if hook_point == "attn_out":
        hooks = [(f"blocks.{layer}.hook_attn_out", hook) for (layer, _), (_, hook) in zip(heads, hooks)]
    if hook_point == "mean":
        hooks = [(z_name(layer), functools.partial(_batch_mean, head=head)) for layer, head in heads]
    return icl(run_loss(model, tokens, hooks), width)


ABLATE = Exercise(
    name="icl_with_heads_ablated",
    make_case=_ablate_case,
    reference=ref.icl_with_heads_ablated,
    dims=(),
    atol=1e-4,
    bugs=(
        Bug("this is the clean model's ICL score: the ablation never reached the heads. Put one zero-ablation "
            "hook per (layer, head) on f\"blocks.{layer}.attn.hook_z\" in the run that computes the losses.",
            lambda **c: _ablated_icl(**{**c, "heads": []})),
        Bug("only the first head of `heads` was ablated: add one hook for every (layer, head) in the list.",
            lambda **c: _ablated_icl(**{**c, "heads": c["heads"][:1]}) if len(c["heads"]) > 1 else None),
        Bug("only the last head of `heads` was ablated: each pass of your loop replaced the hooks of the one "
            "before. Append one hook per (layer, head) to a single list.",
            lambda **c: _ablated_icl(**{**c, "heads": c["heads"][-1:]}) if len(c["heads"]) > 1 else None),
        Bug("you read each pair as (head, layer): the pairs in `heads` are (layer, head).",
            _safe(lambda **c: _ablated_icl(**{**c, "heads": [(h, l) for l, h in c["heads"]]}))),
        Bug("your hooks went on hook_pattern, not hook_z: zeroing a pattern's third axis blanks one query "
            "position of every head. Ablate the heads' outputs, hook_z.",
            _safe(lambda **c: _ablated_icl(**c, hook_point="pattern"))),
        Bug("these are Notebook 3's fixed windows (ICL_EARLY, ICL_LATE); use the text ICL score of Exercise 5.1, "
            "with windows scaled to the context.",
            lambda **c: _ablated_icl(**c, icl=lambda losses, width: losses[:, ICL_LATE].mean()
                                     - losses[:, ICL_EARLY].mean())),
        Bug("your hooks sit on hook_attn_out, the whole layer's output [batch, pos, d_model], where [:, :, head] "
            "is one residual-stream dimension, not a head. Put them on f\"blocks.{layer}.attn.hook_z\".",
            _safe(lambda **c: _ablated_icl(**c, hook_point="attn_out"))),
        Bug("this is mean-ablation with the batch's own mean (each head's output replaced by its average over the "
            "batch); here the heads are zero-ablated, as Notebook 4's zero_ablation_hook does.",
            lambda **c: _ablated_icl(**c, hook_point="mean")),
        Bug("this is ICL(ablated) − ICL(clean), the change; return the ablated model's ICL score itself.",
            lambda **c: _ablated_icl(**c) - _ablated_icl(**{**c, "heads": []})),
        Bug("your score ignores `width`: it uses windows of 5 entries. Pass it on: text_icl_score(losses, width).",
            lambda **c: _ablated_icl(**{**c, "width": 5}) if c["width"] != 5 else None),
    ),
)
check_icl_with_heads_ablated = _check(ABLATE, (_hooks_left, _hook_name, foreign_size_diagnosis))


# ================================================================ questions: the limits
NEW_CONTINUATION = {
    "a": "No: the cell shows the opposite. After a repeated prefix, the heads copy what came next last time, so a "
         "new continuation is *less* likely than it would be without the earlier copy.",
    "b": None,
    "c": "No: the induction heads do attend to the token after the earlier occurrence of the prefix; what they "
         "copy from there is the old continuation.",
    "d": "No: the loss on the new continuation is measured above, and it is higher than where the text repeats.",
}
IN_WEIGHTS = {
    "a": "No: there was no earlier copy in the context to attend to, so nothing was copied from the context.",
    "b": "No: the 1-layer control, which has no induction head, predicts these pairs too.",
    "c": None,
    "d": "No: a common word pair is predicted from the current token alone; a previous-token head does not need to "
         "attend anywhere special for that.",
}
REST_OF_ICL = {
    "a": "No: a share is a measurement on one model and one text, and it can come out below or above 100%: "
         "other mechanisms use the context too, and an ablation can do more than remove one.",
    "b": "No: a model can use the earlier context without copying, e.g. by raising the probability of tokens it has "
         "already seen (Notebook 4's 1-layer model did exactly that).",
    "c": "No: the score compares positions of the same unmodified held-out text; the training copies are not in it.",
    "d": None,
}
LIMITS_EXPLANATION = ("Induction copies; it is right when text repeats and confidently wrong when a familiar prefix "
                      "goes on differently. Much of what a language model predicts comes from its weights, and "
                      "some of what it learns in context is not copying at all.")

check_limits_answers = choices_check("nb5.check_limits_answers", {
    "new_continuation": NEW_CONTINUATION, "in_weights": IN_WEIGHTS, "rest_of_icl": REST_OF_ICL},
    LIMITS_EXPLANATION)
