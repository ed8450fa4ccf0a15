"""Checks for Notebook 1, attention from scratch.

Each ``check_*`` is a :class:`~induction_course.checks.core.Check`: what the student's check cell and the
graded test cell call. Visible tests use the default seed and shapes; hidden tests pass other seeds and
shapes. The whole layer is diagnosed step by step: its first wrong output (pattern, z, out) is judged by
that step's own diagnoses, on the layer's inputs, so a mistake in a step gets the step's message.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any, Callable, Sequence

import torch

from induction_course import attention as ref
from induction_course.checks.core import (Bug, Case, Check, CheckFailed, Diagnosis, Exercise, as_tuple, choices_check,
                                          clone, judge_case, make_check, not_a_function, raised, seeded)
from induction_course.checks.record import Opaque, Raised, as_data, capture
from induction_course.checks.symptoms import named
from induction_course.device import pick_device

SCORE_DIMS = ("batch", "head", "q_pos", "k_pos")
HEAD_DIMS = ("batch", "pos", "head", "d_head")
RESID_DIMS = ("batch", "pos", "d_model")
LAYER_INPUT_DIMS = {"x": RESID_DIMS, "W_Q": ("head", "d_model", "d_head"), "b_Q": ("head", "d_head"),
                    "W_K": ("head", "d_model", "d_head"), "b_K": ("head", "d_head"),
                    "W_V": ("head", "d_model", "d_head"), "b_V": ("head", "d_head"),
                    "W_O": ("head", "d_head", "d_model"), "b_O": ("d_model",)}


# ---------------------------------------------------------------- the student's own errors
_ERROR_HINTS: tuple[tuple[str, str], ...] = (
    (r"only supports boolean masks",
     "The mask must be a boolean tensor: build it with dtype=torch.bool (or compare, e.g. j > i, or call .bool())."),
    (r"same device|Expected all tensors to be on",
     "A tensor you created is on another device than the inputs: create new tensors with device=<input>.device."),
    (r"same dtype|expected scalar type|dtype .* != |found dtype",
     "You combined tensors of different dtypes (float64 and float32?): create new tensors with "
     "dtype=<input>.dtype; torch.tensor of numpy arrays or Python floats gives float64."),
    (r"number of subscripts in the equation \((\d+)\) does not match the number of dimensions \((\d+)\)"
     r" for operand (\d+)",
     "Your einsum equation gives operand {2} {0} letter(s), but that tensor has {1} axes: one letter per axis."),
    (r"subscript (\w) has size (\d+) for operand (\d+) which does not broadcast with previously seen size (\d+)",
     "In your einsum, the letter {0} stands for two axes of different sizes ({3} and {1}): the same letter must "
     "name the same axis in every operand."),
    (r"output subscript (\w) does not appear",
     "In your einsum, the output letter {0} appears in no input: every output letter must name an input axis."),
    (r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)",
     "Two tensors you combined (+, *, masked_fill, where, @...) have axes that do not line up: one has size {0} "
     "where the other has {1}. Line the axes up first (.transpose/.permute, a None index, or einsum)."),
    (r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)",
     "In a matrix product A @ B the last axis of A (here {1}) must equal the first axis of B (here {2})."),
    (r"Expected size for first two dimensions of batch2 tensor to be: \[(\d+), (\d+)\] but got: \[(\d+), (\d+)\]",
     "In a batched matrix product A @ B, B should have shape [{0}, {1}, ...] to fit A (same batch, and A's last "
     "axis against B's second-to-last), but it has [{2}, {3}, ...]."),
    (r"view size is not compatible",
     ".view cannot reshape a transposed tensor: use .reshape (and remember neither reorders axes: that is "
     ".transpose/.permute's job)."),
    (r"shape '\[[\d, -]*\]' is invalid for input of size (\d+)",
     "The sizes in your .view/.reshape do not multiply to the tensor's {0} entries."),
    (r"Dimension out of range \(expected to be in range of \[-(\d+), \d+\], but got (-?\d+)\)",
     "You named axis {1} of a tensor with {0} axes: check the dim= of your sum, softmax or transpose."),
    (r"too many indices for tensor of dimension (\d+)",
     "You indexed more axes than the tensor's {0}."),
    (r"missing 1 required positional arguments?: \"dim\"|softmax\(\) received an invalid",
     "softmax needs dim=: the key axis, dim=-1."),
    (r"got an unexpected keyword argument '(\w+)'|missing \d+ required positional argument",
     "The check calls your function with the parameter names of the exercise: keep the given signature."),
    (r"'NoneType'",
     "Something is None: a helper without `return`, or the result of an in-place method you did not need?"),
)


_CLASHES = (r"subscript (\w) has size", r"size of tensor a")


def _sizes(case: Case, input_dims: dict[str, Sequence[str]]) -> dict[int, list[str]]:
    """{size: names of the input axes of that size}, e.g. {3: ["head"], 5: ["pos"]}."""
    sizes: dict[int, list[str]] = {}
    for key, dims in input_dims.items():
        value = case.get(key)
        if isinstance(value, torch.Tensor) and value.dim() == len(dims):
            for n, dim in zip(value.shape, dims):
                names = sizes.setdefault(int(n), [])
                if dim not in names:
                    names.append(dim)
    return sizes


def _input_shapes(case: Case, input_dims: dict[str, Sequence[str]]) -> str:
    """``x [batch=2, pos=5, d_model=12], W_Q/W_K/W_V [head=4, ...]``: inputs of the same shape listed once."""
    by_shape: dict[str, list[str]] = {}
    for key, dims in input_dims.items():
        if isinstance(case.get(key), torch.Tensor):
            by_shape.setdefault(named(case[key].shape, dims), []).append(key)
    return ", ".join(f"{'/'.join(keys)} {shape}" for shape, keys in by_shape.items())


def _error_hint(error: Raised, case: Case, input_dims: dict[str, Sequence[str]]) -> str:
    """What the student's exception means here, with the sizes in it named by the inputs' axes."""
    for pattern, hint in _ERROR_HINTS:
        found = re.search(pattern, error.message)
        if found:
            hint = hint.format(*(g or "" for g in found.groups()))
            sizes = _sizes(case, input_dims)
            numbers = [int(n) for n in dict.fromkeys(found.groups()) if n and n.isdigit()]
            known = [f"{n} is {' or '.join(f'`{d}`' for d in sizes[n])}" for n in numbers if n in sizes]
            if known:
                hint += f" Here {', '.join(known)} (inputs: {_input_shapes(case, input_dims)})."
            # in a broadcast or einsum clash (no reshape involved) a size no input has came from elsewhere
            foreign = [str(n) for n in numbers if n not in sizes and n > 1]
            if foreign and input_dims and pattern.startswith(_CLASHES):
                hint += (f" No axis of the inputs has size {' or '.join(foreign)}. A guess: a tensor that is not "
                         "one of the arguments (a notebook variable, such as the model's weights or a fixed size) is used.")
            return hint
    return ""


def _explained(name: str, error: Raised, case: Case, input_dims: dict[str, Sequence[str]]) -> CheckFailed:
    failure = raised(name, error)
    hint = "" if error.type_name == "NotImplementedError" else _error_hint(error, case, input_dims)
    return CheckFailed(f"{failure}\n{hint}" if hint else str(failure), failure.student_traceback)


# ---------------------------------------------------------------- judging a function exercise
def _merged_axes(got: Any, want: torch.Tensor, dims: Sequence[str], label: str) -> str | None:
    """A message when two neighbouring axes of the expected shape came back merged into one."""
    if type(got) is not torch.Tensor or got.dim() != want.dim() - 1 or len(dims) != want.dim():  # noqa: E721
        return None
    w = list(want.shape)
    for i in range(len(w) - 1):
        if min(w[i], w[i + 1]) > 1 and w[:i] + [w[i] * w[i + 1]] + w[i + 2:] == list(got.shape):
            return (f"{label} returned shape {list(got.shape)}, expected {named(want.shape, dims)}: axes "
                    f"`{dims[i]}` and `{dims[i + 1]}` are merged into one axis of size {w[i] * w[i + 1]} "
                    f"(torch.cat or a .reshape/.view joined them). Keep them apart: torch.stack(..., dim={i}), "
                    "or reshape to separate axes.")
    return None


_REDUCTIONS: tuple[tuple[str, Callable[[torch.Tensor, int], torch.Tensor]], ...] = (
    ("summed over", lambda t, a: t.sum(a)), ("averaged over", lambda t, a: t.mean(a)),
    ("at index 0 of", lambda t, a: t.select(a, 0)), ("at the last index of", lambda t, a: t.select(a, -1)))


def _lost_axis(got: Any, want: torch.Tensor, exercise: Exercise, label: str) -> str | None:
    """A message when one axis of size > 1 is missing: which reduction of the expected result the student's is.
    (A size-1 axis, which a .squeeze() drops, is the engine's to name.)"""
    dims = exercise.dims
    if (type(got) is not torch.Tensor or got.dim() != want.dim() - 1 or len(dims) != want.dim()  # noqa: E721
            or got.dtype != want.dtype or got.device != want.device):
        return None
    lost = [a for a in range(want.dim()) if list(want.shape[:a]) + list(want.shape[a + 1:]) == list(got.shape)]
    if len(lost) != 1 or want.shape[lost[0]] == 1:
        return None
    a = lost[0]
    shown = f"{label} returned shape {list(got.shape)}, expected {named(want.shape, dims)}"
    for words, reduce in _REDUCTIONS:
        if torch.allclose(got, reduce(want, a), atol=exercise.atol, rtol=exercise.rtol, equal_nan=True):
            return f"{shown}: your values are the expected ones {words} the `{dims[a]}` axis. Keep that axis."
    return (f"{shown}: the `{dims[a]}` axis (size {want.shape[a]}) is missing, removed by a sum, mean or max over "
            "it, or by an index into it. Keep it.")


def _early_bug(exercise: Exercise, case: Case, got: Any, want: torch.Tensor) -> str | None:
    """A known bug named where the engine would first report a shape or a NaN: the bug's output has the
    student's shape (and NaNs), so the message can say which mistake gives that shape.
    """
    if type(got) is not torch.Tensor or type(want) is not torch.Tensor:  # noqa: E721
        return None
    nan = got.is_floating_point() and bool(torch.isnan(got).any()) and not bool(torch.isnan(want).any())
    if got.shape == want.shape and not nan:
        return None
    same_shape = []
    for bug in exercise.bugs:
        bad = bug.fn(**clone(case))
        if type(bad) is not torch.Tensor or bad.shape != got.shape or bad.dtype != got.dtype:  # noqa: E721
            continue
        if torch.allclose(exercise.transform(got), exercise.transform(bad), atol=exercise.atol, rtol=exercise.rtol,
                          equal_nan=True):
            return f"{exercise.name}: {bug.message}"
        same_shape.append(bug)
    if got.shape != want.shape and len({b.message for b in same_shape}) == 1:
        return (f"{exercise.name} returned shape {list(got.shape)}, expected {named(want.shape, exercise.dims)}, "
                f"the shape this mistake gives: {same_shape[0].message}")
    return None


def _returned_none(output: Any, label: str) -> str | None:
    if output is None:
        return f"{label} returned None: the `return` statement is missing (or returns the result of an in-place call)."
    return None


def _whole(t: torch.Tensor) -> bool:
    """Every finite value of ``t`` is a whole number (and it has one)."""
    finite = t[torch.isfinite(t)]
    return finite.numel() > 0 and bool((finite == finite.round()).all())


def _whole_numbers(got: Any, want: torch.Tensor, label: str) -> str | None:
    """A message when every value came back a whole number where the expected ones are not (a floor division?)."""
    if (type(got) is not torch.Tensor or got.shape != want.shape or got.dtype != want.dtype  # noqa: E721
            or got.device != want.device or not got.is_floating_point()):
        return None
    if not _whole(got.detach()) or _whole(want):
        return None
    zeros, n = int((got == 0).sum()), int(torch.isfinite(got).sum())
    return (f"{label} is wrong: every value of your result is a whole number ({zeros} of the {n} finite ones are 0), "
            "where the expected values are not. A guess: a floor division `//` where `/` is wanted "
            "(x // y rounds down to a whole number), or a rounding (int(), .long(), .round()) on the way.")


def _simple_diagnosis(exercise: Exercise) -> Diagnosis:
    """Notebook 1's own questions of a single-output exercise: None returned, a known bug that gives the
    student's (wrong) shape or NaNs, two axes merged into one, an axis lost, every value a whole number."""
    def diagnose(case: Case, output: Any, inputs_after: Any) -> str | None:
        if isinstance(output, Raised):
            return None
        want = exercise.reference(**clone(case))
        return (_returned_none(output, exercise.name) or _early_bug(exercise, case, output, want)
                or _merged_axes(output, want, exercise.dims, exercise.name)
                or _lost_axis(output, want, exercise, exercise.name)
                or (_symptom(exercise, case, output, want, exercise.name) if _unchanged(case, inputs_after) else None)
                or _whole_numbers(output, want, exercise.name))
    return diagnose


def _symptom(exercise: Exercise, case: Case, got: Any, want: torch.Tensor, label: str) -> str | None:
    """What the values of a wrong result of the right form show, for mistakes no ``Bug`` names (asked only
    when none of the exercise's bugs matches, so a bug's message comes first)."""
    if not _same_form((got,), (want,)) or torch.allclose(exercise.transform(got), exercise.transform(want),
                                                         atol=exercise.atol, rtol=exercise.rtol, equal_nan=True):
        return None
    if any(_matches_bug(bug, case, got, exercise) for bug in exercise.bugs):
        return None
    for read in (*_SYMPTOMS.get(exercise.reference, ()), _batch_copies):
        found = read(case, got.detach(), want)
        if found:
            return f"{label}: {found}"
    return None


def _matches_bug(bug: Bug, case: Case, got: torch.Tensor, exercise: Exercise) -> bool:
    bad = bug.fn(**clone(case))
    return _same_form((bad,), (got,)) and torch.allclose(exercise.transform(got), exercise.transform(bad),
                                                          atol=exercise.atol, rtol=exercise.rtol, equal_nan=True)


def _batch_copies(case: Case, got: torch.Tensor, want: torch.Tensor) -> str | None:
    """Every batch entry holds batch entry 0's expected result (an index [0] where the batch axis is wanted)."""
    if want.dim() < 2 or want.shape[0] < 2 or torch.allclose(want[1], want[0], atol=1e-4):
        return None
    if all(torch.allclose(g, want[0], atol=1e-5, rtol=1e-4, equal_nan=True) for g in got):
        return ("every batch entry holds the expected result of batch entry 0: an index [0] (or a loop that always "
                "takes entry 0) where each entry of the `batch` axis should be used.")
    return None


def _error_diagnosis(exercise: Exercise, input_dims: dict[str, Sequence[str]]) -> Diagnosis:
    """What the student's own error means, from its message and the inputs' shapes (None: the engine's words)."""
    def diagnose(case: Case, output: Any, inputs_after: Any) -> str | None:
        if not isinstance(output, Raised) or output.type_name == "NotImplementedError":
            return None
        hint = _error_hint(output, case, input_dims)
        return f"{raised(exercise.name, output)}\n{hint}" if hint else None
    return diagnose


def _check(exercise: Exercise, input_dims: dict[str, Sequence[str]], shapes: tuple[dict, ...] = ({},),
           diagnose: Diagnosis | None = None) -> Check:
    """The public check of a function exercise; ``shapes`` are the visible cases."""
    diagnoses = (_error_diagnosis(exercise, input_dims), diagnose or _simple_diagnosis(exercise))
    return make_check(replace(exercise, diagnoses=diagnoses), "nb1", shapes=shapes)


# ---------------------------------------------------------------- inputs shared by several exercises
# The default sizes differ from the notebook model's (d_model 32, d_head 8), so a notebook variable in place of an
# argument shows in the visible check too.
def _qk_case(seed: int, batch: int = 2, pos: int = 7, head: int = 3, d_head: int = 6) -> dict:
    g = seeded(seed)
    return {"q": torch.randn(batch, pos, head, d_head, generator=g),
            "k": torch.randn(batch, pos, head, d_head, generator=g)}


def _scrambled_heads(t: torch.Tensor) -> torch.Tensor:
    """[batch, pos, head, d] viewed as if the head axis came first: the classic .view mistake."""
    b, p, h, d = t.shape
    return t.reshape(b, h, p, d).transpose(1, 2)


def _raw_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bqhd,bkhd->bhqk", q, k)


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
        Bug("every head got head 0's weights: use W[h] (and b[h]) for head h, e.g. einsum('bpm,hmd->bphd', x, W).",
            lambda x, W, b: (x @ W[0] + b[0])[:, :, None].expand(-1, -1, W.shape[0], -1)),
        Bug("the bias is added once per head, summed over heads (b.sum(0)): each head adds only its own b[h].",
            lambda x, W, b: torch.einsum("bpm,hmd->bphd", x, W) + b.sum(0)),
    ),
)
PROJECT_INPUT_DIMS = {"x": RESID_DIMS, "W": ("head", "d_model", "d_head"), "b": ("head", "d_head")}


# ---------------------------------------------------------------- 2. attention scores
# A scale that came out as 1 looks like no scale: the one way to write one that does (a guess, so it says so).
_SCALE_OF_ONE = (" (If you wrote a scale, it came out as 1: d_head ** (1 // 2) is d_head ** 0, since // is floor "
                 "division; write d_head ** 0.5.)")


def _scaled_by_axis(q: torch.Tensor, k: torch.Tensor, axis: int) -> torch.Tensor:
    return _raw_scores(q, k) / math.sqrt(q.shape[axis])


SCORES = Exercise(
    name="attention_scores",
    make_case=_qk_case,
    reference=ref.attention_scores,
    dims=SCORE_DIMS,
    bugs=(
        Bug("the 1/sqrt(d_head) scale is missing: divide the dot products by sqrt(d_head)." + _SCALE_OF_ONE,
            lambda q, k: _raw_scores(q, k)),
        Bug("you divided by d_head; the scale is 1/sqrt(d_head).",
            lambda q, k: _raw_scores(q, k) / q.shape[-1]),
        Bug("you multiplied by sqrt(d_head) instead of dividing by it.",
            lambda q, k: _raw_scores(q, k) * math.sqrt(q.shape[-1])),
        Bug("you divided by d_head and then by 2: `x / d ** 1/2` means (x / d) / 2. Write d ** 0.5 or math.sqrt(d).",
            lambda q, k: _raw_scores(q, k) / q.shape[-1] / 2),
        Bug("you divided by d_head / 2: `d ** 1/2` means (d ** 1) / 2. Write d ** 0.5 or math.sqrt(d).",
            lambda q, k: _raw_scores(q, k) / (q.shape[-1] / 2)),
        Bug("the scale uses the number of positions: d_head is q.shape[-1], not q.shape[1] (pos).",
            lambda q, k: _scaled_by_axis(q, k, 1)),
        Bug("the scale uses the number of heads: d_head is q.shape[-1], not q.shape[2] (head).",
            lambda q, k: _scaled_by_axis(q, k, 2)),
        Bug("queries and keys are transposed: entry [b, h, i, j] must be query i dotted with key j, "
            "not key i with query j.",
            lambda q, k: ref.attention_scores(k, q)),
        Bug("heads are mixed up: a query of head h must only meet keys of the same head h "
            "(use the same einsum letter for the head axis of q and k).",
            lambda q, k: torch.einsum("bqhd,bkgd->bhqk", q, k) / math.sqrt(q.shape[-1])),
        Bug("heads are mixed up with positions: reshaping [batch, pos, head, d_head] to "
            "[batch, head, pos, d_head] with .view/.reshape scrambles them; use .transpose(1, 2) or einsum.",
            lambda q, k: ref.attention_scores(_scrambled_heads(q), _scrambled_heads(k))),
        Bug("the matrix product ran over the wrong axes: on [batch, pos, head, d_head] tensors, "
            "q @ k.transpose(-1, -2) dots heads with heads at each position. Move the head axis first "
            "(q.transpose(1, 2)) or use einsum('bqhd,bkhd->bhqk', q, k).",
            lambda q, k: q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])),
        Bug("you took a softmax: attention_scores returns the raw scaled scores; the softmax comes later, "
            "in attention_pattern.",
            lambda q, k: ref.attention_scores(q, k).softmax(dim=-1)),
    ),
)
QK_INPUT_DIMS = {"q": HEAD_DIMS, "k": HEAD_DIMS}


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
        Bug("nothing is masked: every score of a key after its query (j > i) must become -inf. "
            "(masked_fill without an underscore returns a new tensor: return that one.)",
            lambda scores: scores),
        Bug("you also masked the diagonal (off by one): position i may attend to itself. "
            "Mask only j > i, e.g. torch.triu(..., diagonal=1).",
            lambda scores: scores.masked_fill(_future(scores.shape[-1], 0), float("-inf"))),
        Bug("you masked the past instead of the future: keep j <= i and mask j > i (triu, not tril).",
            lambda scores: scores.masked_fill(_future(scores.shape[-1], 1).T, float("-inf"))),
        Bug("you masked the past and the diagonal instead of the future: keep j <= i and mask j > i "
            "(torch.triu(..., diagonal=1)).",
            lambda scores: scores.masked_fill(_future(scores.shape[-1], 0).T, float("-inf"))),
        Bug("masked scores were set to 0. A zero still gets attention after the softmax: use -inf.",
            lambda scores: scores.masked_fill(_future(scores.shape[-1], 1), 0.0)),
    ),
)
MASK_INPUT_DIMS = {"scores": SCORE_DIMS}


# ---------------------------------------------------------------- 4. attention pattern
def _masked_after(q: torch.Tensor, k: torch.Tensor, fill: float) -> torch.Tensor:
    probs = ref.attention_scores(q, k).softmax(dim=-1)
    return probs.masked_fill(_future(q.shape[1], 1), fill)


def _masked_scores(q: torch.Tensor, k: torch.Tensor, fill: float = float("-inf")) -> torch.Tensor:
    return ref.attention_scores(q, k).masked_fill(_future(q.shape[1], 1), fill)


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
            lambda q, k: _masked_scores(q, k).softmax(dim=-2)),
        *[Bug("the softmax is over the head axis; it must be over keys (dim=-1). "
              "(F.softmax without dim= picks dim=1 for a 4-axis tensor.)",
              lambda q, k, fill=fill: _masked_scores(q, k, fill).softmax(dim=1)) for fill in (float("-inf"), -1e9)],
        *[Bug("the softmax is over the batch axis; it must be over keys (dim=-1).",
              lambda q, k, fill=fill: _masked_scores(q, k, fill).softmax(dim=0)) for fill in (float("-inf"), -1e9)],
        Bug("the mask also covers the diagonal, so row 0 has nothing left to attend to (NaN after the softmax): "
            "position i may attend to itself, mask only j > i (torch.triu(..., diagonal=1)).",
            lambda q, k: ref.attention_scores(q, k).masked_fill(_future(q.shape[1], 0), float("-inf")).softmax(-1)),
        Bug("there is no softmax: the pattern is the softmax of the masked scores over keys.",
            lambda q, k: _masked_scores(q, k)),
        Bug("you took log_softmax: the pattern is probabilities, so use softmax.",
            lambda q, k: _masked_scores(q, k).log_softmax(dim=-1)),
        Bug("the 1/sqrt(d_head) scale is missing from the scores." + _SCALE_OF_ONE,
            lambda q, k: ref.apply_causal_mask(_raw_scores(q, k)).softmax(dim=-1)),
        Bug("the scores were rounded down to whole numbers before the softmax (your pattern is the softmax of "
            "the scores' floor). A guess: a floor division `//` where `/` is wanted; x // y rounds down.",
            lambda q, k: ref.apply_causal_mask(torch.floor(ref.attention_scores(q, k))).softmax(dim=-1)),
        Bug("your pattern is uniform: each query spreads its weight evenly over the keys it may see, as if every "
            "score were 0. A guess: the scores were multiplied by 0, e.g. a scale 1 // math.sqrt(d_head), which is "
            "0 (// is floor division); write 1 / math.sqrt(d_head).",
            lambda q, k: ref.apply_causal_mask(torch.zeros_like(_raw_scores(q, k))).softmax(dim=-1)),
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
        Bug("heads are mixed up with positions: the result of pattern @ v is [batch, head, pos, d_head]; "
            ".view/.reshape to [batch, pos, head, d_head] scrambles it. Use .transpose(1, 2).",
            lambda pattern, v: (pattern @ v.transpose(1, 2)).reshape(v.shape)),
        Bug("z equals v: the pattern was summed over keys without weighting each key's value "
            "(v's position must be the key letter, e.g. einsum('bhqk,bkhd->bqhd', pattern, v)).",
            lambda pattern, v: torch.einsum("bhqk,bqhd->bqhd", pattern, v)),
    ),
)
Z_INPUT_DIMS = {"pattern": SCORE_DIMS, "v": HEAD_DIMS}


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
        Bug("the bias b_O is missing from the output: add the argument b_O once, after summing over heads.",
            lambda z, W_O, b_O: torch.einsum("bphd,hdm->bpm", z, W_O)),
        Bug("b_O is added once per head; add it once, after the sum over heads.",
            lambda z, W_O, b_O: torch.einsum("bphd,hdm->bpm", z, W_O) + z.shape[2] * b_O),
        Bug("heads are mixed up: each head's z goes through its own W_O[h] "
            "(use the same einsum letter for the head axis of z and W_O).",
            lambda z, W_O, b_O: torch.einsum("bphd,gdm->bpm", z, W_O) + b_O),
        Bug("heads are mixed up: z's (head, d_head) and W_O's (head, d_head) were flattened in different "
            "orders. Flatten both in the same order, [head, d_head], or use einsum('bphd,hdm->bpm', z, W_O).",
            lambda z, W_O, b_O: z.flatten(2) @ W_O.transpose(0, 1).reshape(-1, W_O.shape[-1]) + b_O),
        Bug("heads are mixed up: z was flattened as [d_head, head] (a transpose before the reshape) but W_O as "
            "[head, d_head]. Flatten both in the same order, or use einsum('bphd,hdm->bpm', z, W_O).",
            lambda z, W_O, b_O: z.transpose(2, 3).flatten(2) @ W_O.flatten(0, 1) + b_O),
        Bug("the heads' outputs are concatenated along d_model; they are summed: "
            "out = sum over h of z[:, :, h] @ W_O[h], plus b_O once.",
            lambda z, W_O, b_O: torch.cat([z[:, :, h] @ W_O[h] for h in range(z.shape[2])], dim=-1)),
        Bug("you averaged over heads; the heads' outputs are summed.",
            lambda z, W_O, b_O: torch.einsum("bphd,hdm->bpm", z, W_O) / z.shape[2] + b_O),
    ),
)
OUTPUT_INPUT_DIMS = {"z": HEAD_DIMS, "W_O": ("head", "d_head", "d_model"), "b_O": ("d_model",)}


# ---------------------------------------------------------------- 7. whole layer
# d_model and d_head differ from the notebook model's (32, 8): see _qk_case.
def _layer_case(seed: int, batch: int = 2, pos: int = 9, d_model: int = 24, head: int = 4, d_head: int = 6) -> dict:
    g = seeded(seed)
    shapes = {"W_Q": (head, d_model, d_head), "W_K": (head, d_model, d_head), "W_V": (head, d_model, d_head),
              "W_O": (head, d_head, d_model)}
    case = {"x": torch.randn(batch, pos, d_model, generator=g)}
    case.update({k: torch.randn(*s, generator=g) / math.sqrt(s[1]) for k, s in shapes.items()})
    case.update({f"b_{n}": 0.1 * torch.randn(head, d_head, generator=g) for n in "QKV"})
    case["b_O"] = 0.1 * torch.randn(d_model, generator=g)
    return case


LAYER = Exercise(
    name="attention_layer",
    make_case=_layer_case,
    reference=ref.attention_layer,
    dims=(SCORE_DIMS, HEAD_DIMS, RESID_DIMS),
)
LAYER_OUTPUTS = ("the pattern (output 0) of attention_layer", "z (output 1) of attention_layer",
                 "out (output 2) of attention_layer")


def _qkv(case: Case) -> tuple[torch.Tensor, ...]:
    """The layer's q, k and v: [batch, pos, head, d_head] each."""
    return tuple(ref.project(case["x"], case[f"W_{s}"], case[f"b_{s}"]) for s in "QKV")


_ROLE = {"Q": "the queries", "K": "the keys", "V": "the values"}


def _projection_bugs(case: Case, target: str) -> list[tuple[str, torch.Tensor]]:
    """(message, wrong tensor) for the mistakes of computing ``target`` ("q", "k" or "v") in the layer."""
    own = target.upper()
    inputs = {"x": case["x"], "W": case[f"W_{own}"], "b": case[f"b_{own}"]}
    wrong = [(f"in {target} = project(x, W_{own}, b_{own}): {bug.message}", bug.fn(**inputs)) for bug in PROJECT.bugs]
    for other in "QKV".replace(own, ""):
        wrong.append((f"{target} was computed with W_{other}/b_{other}: use W_{own} and b_{own} for {_ROLE[own]}.",
                      ref.project(case["x"], case[f"W_{other}"], case[f"b_{other}"])))
        wrong.append((f"{target} was computed with the bias b_{other}: use b_{own} for {_ROLE[own]}.",
                      ref.project(case["x"], case[f"W_{own}"], case[f"b_{other}"])))
        wrong.append((f"{target} was computed with the weights W_{other}: use W_{own} for {_ROLE[own]}.",
                      ref.project(case["x"], case[f"W_{other}"], case[f"b_{own}"])))
    return wrong


def _pattern_bugs(case: Case) -> list[Bug]:
    """The layer's ways to a wrong pattern, from the steps before it: q or k, the scores, the mask."""
    q, k, _ = _qkv(case)
    scores = ref.attention_scores(q, k)
    found: list[tuple[str, torch.Tensor]] = []
    for message, wrong_q in _projection_bugs(case, "q"):
        found.append((message, ref.attention_pattern(wrong_q, k)))
    for message, wrong_k in _projection_bugs(case, "k"):
        found.append((message, ref.attention_pattern(q, wrong_k)))
    x, W_Q, b_Q, W_K, b_K = (case[name] for name in ("x", "W_Q", "b_Q", "W_K", "b_K"))
    for message, (wrong_q, wrong_k) in (
            ("W_Q and W_K are swapped: q = project(x, W_Q, b_Q), k = project(x, W_K, b_K).",
             (ref.project(x, W_K, b_Q), ref.project(x, W_Q, b_K))),
            ("b_Q and b_K are swapped: q = project(x, W_Q, b_Q), k = project(x, W_K, b_K).",
             (ref.project(x, W_Q, b_K), ref.project(x, W_K, b_Q))),
            ("q and k are swapped (W_Q, b_Q made k and W_K, b_K made q): q = project(x, W_Q, b_Q).",
             (k, q))):
        found.append((message, ref.attention_pattern(wrong_q, wrong_k)))
    normed = {"x": torch.nn.functional.layer_norm(x, x.shape[-1:])}
    found.append(("the pattern is the one of a normalised x (x / its std, centred): x is already the "
                  "LayerNorm's output, so use it as it is. A guess: a LayerNorm applied again.",
                  ref.attention_pattern(*_qkv({**case, **normed})[:2])))
    for bug in PROJECT.bugs:
        both = [bug.fn(x=case["x"], W=case[f"W_{s}"], b=case[f"b_{s}"]) for s in "QK"]
        found.append((f"in q and k (project): {bug.message}", ref.attention_pattern(*both)))
    found.append(("the scores are divided by sqrt(d_model) (the size of x's last axis); the scale is "
                  "1/sqrt(d_head), the size of q's last axis.",
                  ref.apply_causal_mask(_raw_scores(q, k) / math.sqrt(case["x"].shape[-1])).softmax(dim=-1)))
    for bug in SCORES.bugs:
        found.append((f"in the scores: {bug.message}", ref.apply_causal_mask(bug.fn(q=q, k=k)).softmax(dim=-1)))
    for bug in MASK.bugs:
        found.append((f"in the mask: {bug.message}", bug.fn(scores=scores).softmax(dim=-1)))
    return [Bug(message, lambda q, k, value=value: value) for message, value in found]


def _z_bugs(case: Case, pattern: Any) -> list[Bug]:
    """The layer's ways to a wrong z given a right pattern: a wrong v."""
    return [Bug(message, lambda pattern, v, value=ref.weighted_values(pattern, wrong_v): value)
            for message, wrong_v in _projection_bugs(case, "v")]


def _out_bugs(case: Case) -> list[Bug]:
    """The layer's ways to a wrong out given a right z: the residual stream added in."""
    plus_x = ref.attention_layer(**clone(case))[2] + case["x"]
    return [Bug("out is the attention output plus x: the layer returns only what attention adds; the residual "
                "stream x + out is summed outside the layer.", lambda z, W_O, b_O, value=plus_x: value)]


def _layer_order_problem(got: tuple, want: tuple) -> str | None:
    """A message if the three outputs came back with the right shapes in another order."""
    if len(got) != 3 or not all(type(g) is torch.Tensor for g in got):  # noqa: E721
        return None
    shapes, wanted = [tuple(g.shape) for g in got], [tuple(w.shape) for w in want]
    if shapes != wanted and sorted(shapes) == sorted(wanted) and len(set(wanted)) == 3:
        names = {s: n for s, n in zip(wanted, ("pattern", "z", "out"))}
        return (f"attention_layer returned ({', '.join(names[s] for s in shapes)}), judged by their shapes: "
                "the outputs are in the wrong order. Return (pattern, z, out).")
    return None


def _same_form(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(
        type(g) is torch.Tensor and g.shape == w.shape and g.dtype == w.dtype and g.device == w.device  # noqa: E721
        for g, w in zip(got, want))


def _unchanged(case: Case, inputs_after: Any) -> bool:
    if not isinstance(inputs_after, dict):
        return True
    return all(not isinstance(after := inputs_after.get(key), torch.Tensor)
               or (after.shape == value.shape and after.dtype == value.dtype
                   and torch.equal(value.nan_to_num(), after.cpu().nan_to_num()))
               for key, value in case.items())


def _diagnose_layer(case: Case, output: Any, inputs_after: Any = None) -> str | None:
    """Judge the layer's (pattern, z, out) in order: the first wrong one is judged as its step would be,
    on the layer's inputs and the student's own earlier outputs, with the mistakes of the steps before it.
    """
    if isinstance(output, Raised):
        return None
    want = as_tuple(ref.attention_layer(**clone(case)), 3)
    problem = _returned_none(output, "attention_layer")
    if problem:
        raise CheckFailed(problem)
    if not isinstance(output, (tuple, list)) or len(output) != 3:
        count = f"{len(output)} values" if isinstance(output, (tuple, list)) else f"a single {type(output).__name__}"
        raise CheckFailed(f"attention_layer returned {count}; it must return three: (pattern, z, out).")
    got = tuple(output)
    problem = _layer_order_problem(got, want)
    if problem:
        raise CheckFailed(problem)
    if not _unchanged(case, inputs_after):
        judge_case(LAYER, case, output, inputs_after)  # the engine names the input changed in place
    q, k, v = _qkv(case)
    for i, step in enumerate((PATTERN, Z, OUTPUT)):
        if _same_form((got[i],), (want[i],)) and torch.allclose(got[i], want[i], atol=step.atol, rtol=step.rtol):
            continue
        # every earlier output is right, so the student's own earlier outputs are this step's inputs
        stage_case = ({"q": q, "k": k}, {"pattern": got[0], "v": v},
                      {"z": got[1], "W_O": case["W_O"], "b_O": case["b_O"]})[i]
        extra = (_pattern_bugs, lambda c: _z_bugs(c, got[0]), _out_bugs)[i](case)
        stage = replace(step, name=LAYER_OUTPUTS[i], bugs=(*step.bugs, *extra))
        problem = (_early_bug(stage, stage_case, got[i], want[i])
                   or _merged_axes(got[i], want[i], step.dims, LAYER_OUTPUTS[i])
                   or _lost_axis(got[i], want[i], step, LAYER_OUTPUTS[i])
                   or _symptom(stage, stage_case, got[i], want[i], LAYER_OUTPUTS[i])
                   or _whole_numbers(got[i], want[i], LAYER_OUTPUTS[i]))
        if problem:
            raise CheckFailed(problem)
        judge_case(stage, stage_case, got[i])
        raise CheckFailed(f"{LAYER_OUTPUTS[i]} differs from the reference.")  # not reached: judge_case raised
    return None


# ---------------------------------------------------------------- what a wrong result's values show
def _project_symptom(case: Case, got: torch.Tensor, want: torch.Tensor) -> str | None:
    """The bias or the heads of a projection, read from the result: the added term, the heads' sameness."""
    x, W, b = case["x"], case["W"], case["b"]
    term = got - torch.einsum("bpm,hmd->bphd", x, W)
    if torch.allclose(term, term[:1, :1].expand_as(term), atol=1e-4):
        if b.shape[0] > 1 and torch.allclose(term[0, 0], b[0].expand_as(b), atol=1e-4):
            return "every head got head 0's bias b[0]: head h adds its own b[h] (add all of b, [head, d_head])."
        return ("the matrix product is right, but the term added to it is not b: it is the same at every position, "
                "like a bias, yet differs from b. A guess: another tensor (a notebook variable?) in place of b.")
    unbiased = got - b
    if W.shape[0] > 1 and torch.allclose(unbiased, unbiased[:, :, :1].expand_as(unbiased), atol=1e-4):
        summed = torch.einsum("bpm,hmd->bpd", x, W)[:, :, None].expand_as(unbiased)
        if torch.allclose(unbiased, summed, atol=1e-4, rtol=1e-4):
            return ("before the bias, every head holds the sum over heads of x @ W[h]: the head letter is missing "
                    "from the einsum's output, so heads were summed. Keep it: einsum('bpm,hmd->bphd', x, W).")
        return "before the bias, every head has the same values: head h must use its own W[h]."
    return None


def _scores_symptom(case: Case, got: torch.Tensor, want: torch.Tensor) -> str | None:
    """Scores that are the dot products over sqrt(n) for a whole n other than this q's d_head."""
    raw = _raw_scores(case["q"], case["k"])
    c = float((got * raw).sum() / (raw * raw).sum())
    d_head = case["q"].shape[-1]
    if c <= 0 or not torch.allclose(got, c * raw, atol=1e-5, rtol=1e-4):
        return None
    n = round(1 / c ** 2)
    if n < 2 or n == d_head or not math.isclose(c, 1 / math.sqrt(n), rel_tol=1e-4):
        return None
    return (f"your scores are the dot products divided by sqrt({n}), but this q's d_head is {d_head}: take the "
            "scale from the input, math.sqrt(q.shape[-1]). A guess: a fixed number or a notebook variable "
            "(such as the model's d_head) in its place.")


def _mask_symptom(case: Case, got: torch.Tensor, want: torch.Tensor) -> str | None:
    """Where the mask went and what it wrote, read from the result against the scores."""
    scores = case["scores"]
    n_q, n_k = scores.shape[-2:]
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool), diagonal=1).expand_as(scores)
    nan = torch.isnan(got)
    if nan.any() and torch.equal(nan, ~future):
        return ("your result is NaN wherever a score should be kept (on and below the diagonal). A guess: a 0/1 mask "
                "multiplied by inf (0 * inf is NaN). Use scores.masked_fill(mask, float('-inf')) or torch.where.")
    kept = torch.isclose(got, scores, atol=1e-5, rtol=1e-4)
    if not kept[~future].all():
        if bool((got[~future] == 0).all()):
            return ("your result is 0 wherever a score should be kept (on and below the diagonal): the scores are "
                    "missing from it. Return the scores with only the later keys replaced: "
                    "scores.masked_fill(mask, float('-inf')).")
        return None
    hidden = got <= -1e4
    for d in range(-n_q + 1, n_k + 1):
        region = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool), diagonal=d).expand_as(scores)
        if d not in (0, 1) and torch.equal(hidden, region) and kept[~region].all():
            later = "key i + 1" if d == 2 else f"keys i + 1 to i + {d - 1}"
            where = (f"query i still sees {later}, after it" if d > 1
                     else f"it also hides keys up to {-d} position(s) before the query, and the query itself")
            return (f"your mask hides the keys j >= i + {d} (torch.triu(..., diagonal={d})): {where}. "
                    "Mask exactly the keys after the query, j > i: diagonal=1.")
    masked = got[future]
    if masked.numel() and bool((masked == masked[0]).all()) and float(masked[0]) > -1e4:
        value = float(masked[0])
        if value == math.inf:
            return ("the masked scores are +inf, where they must be -inf: after the softmax a +inf key would take "
                    "all the weight (or give NaN). Use float('-inf').")
        return (f"the masked scores were set to {value:g}, which still gets weight after the softmax (e^{value:g} is "
                "not 0): use float('-inf').")
    return None


def _pattern_symptom(case: Case, got: torch.Tensor, want: torch.Tensor) -> str | None:
    """A pattern that leaks to later keys, has an empty diagonal, or is the softmax of rescaled scores."""
    n = got.shape[-1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    sums_to_one = torch.allclose(got.sum(-1), torch.ones(()), atol=1e-4)
    leak = float(got[..., future].abs().max()) if n > 1 else 0.0
    if sums_to_one and leak > 1e-4:
        return (f"your pattern gives weight to later keys (entries above the diagonal reach {leak:.3g}; they must be "
                "0): the mask did not take effect before the softmax. A guess: the masked scores were set to 0 or "
                "another finite number, which still gets weight, instead of -inf.")
    diagonal = got.diagonal(dim1=-2, dim2=-1)[..., 1:]
    if n > 1 and sums_to_one and bool((diagonal.abs() < 1e-6).all()):
        return ("your pattern is 0 on the diagonal (rows 1 and on): a query may attend to itself. The mask must hide "
                "only the keys after the query, j > i (torch.triu(..., diagonal=1)).")
    scores = _raw_scores(case["q"], case["k"]) / math.sqrt(case["q"].shape[-1])
    visible = ~future.expand_as(scores)
    if not bool((got[visible] > 0).all()):
        return None
    counts = visible.sum(-1, keepdim=True)
    centred = lambda t: torch.where(visible, t - (t * visible).sum(-1, keepdim=True) / counts, 0.0)  # noqa: E731
    a, t = centred(got.clamp_min(1e-30).log()), centred(scores)
    c = float((a * t).sum() / (t * t).sum())
    if abs(c - 1) < 1e-3 or not torch.allclose(ref.apply_causal_mask(c * scores).softmax(-1), got, atol=1e-5,
                                               rtol=1e-4):
        return None
    d_head = case["q"].shape[-1]
    if math.isclose(c, 1 / math.sqrt(d_head), rel_tol=1e-3):
        return ("your pattern is the softmax of the scores divided by sqrt(d_head) a second time: the scale is "
                "applied twice (attention_scores already divides by sqrt(d_head)).")
    return (f"your pattern is the softmax of {c:.4g} times the right scores: the scale of the scores is off (it is "
            "1/sqrt(d_head), applied once).")


_SYMPTOMS: dict[Callable[..., Any], tuple[Callable[[Case, torch.Tensor, torch.Tensor], str | None], ...]] = {
    ref.project: (_project_symptom,), ref.attention_scores: (_scores_symptom,), ref.apply_causal_mask: (_mask_symptom,),
    ref.attention_pattern: (_pattern_symptom,)}


check_project = _check(PROJECT, PROJECT_INPUT_DIMS)
check_attention_scores = _check(SCORES, QK_INPUT_DIMS)
check_apply_causal_mask = _check(MASK, MASK_INPUT_DIMS)
check_attention_pattern = _check(PATTERN, QK_INPUT_DIMS)
check_weighted_values = _check(Z, Z_INPUT_DIMS)
# A batch of one sequence is what students feed their layer later on: a visible case catches a stray .squeeze().
check_attention_output = _check(OUTPUT, OUTPUT_INPUT_DIMS, shapes=({}, {"batch": 1}))
check_attention_layer = _check(LAYER, LAYER_INPUT_DIMS, shapes=({}, {"batch": 1}), diagnose=_diagnose_layer)


# ---------------------------------------------------------------- 8. the layer against TransformerLens
def _transformer_lens_layer(seed: int, n_layers: int, layer: int, batch: int, pos: int) -> tuple[Case, tuple]:
    """A seeded TransformerLens model's layer ``layer``: its input and weights, and its (pattern, z, out).

    Built on the CPU, so the collecting and the judging side build the same model. Its attention biases
    (b_Q, b_K, b_V, b_O; zero in a fresh model) are set to seeded random values, so that every argument
    matters and a swap of any two is seen.
    """
    from induction_course.models import make_model  # TransformerLens loads only for this check

    model = make_model(n_layers=n_layers, d_model=32, n_heads=4, d_head=8, n_ctx=32, d_vocab=20, seed=seed,
                       device="cpu")
    biases = seeded(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".attn." in name and name.endswith(".bias"):
                param.copy_(0.5 * torch.randn(param.shape, generator=biases))
    tokens = torch.randint(0, 20, (batch, pos), generator=seeded(seed))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    attn = model.blocks[layer].attn
    case = {"x": cache[f"blocks.{layer}.attn.hook_in"].detach().clone()}
    case.update({name: getattr(attn, name).detach().clone() for name in LAYER_INPUT_DIMS if name != "x"})
    hooks = (f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_attn_out")
    expected = tuple(cache[name].detach().clone() for name in hooks)
    return case, expected


def _collect_transformer_lens(student_layer: Any, seed: int, n_layers: int, layer: int, batch: int, pos: int,
                              atol: float) -> Any:
    if not callable(student_layer):
        return as_data(Opaque(type(student_layer).__name__))
    case, _ = _transformer_lens_layer(seed, n_layers, layer, batch, pos)
    given = {key: value.to(pick_device()) for key, value in case.items()}
    output = capture(student_layer, **given)
    # Devices as text: a decoded record's tensors are all on the CPU, wherever they were made.
    devices = [str(t.device) for t in as_tuple(output, 3) if isinstance(t, torch.Tensor)]
    return {"device": str(given["x"].device), "output_devices": devices, "output": as_data(output),
            "inputs": as_data(given)}


def _judge_transformer_lens(record: Any, seed: int, n_layers: int, layer: int, batch: int, pos: int,
                            atol: float) -> str:
    if not isinstance(record, dict):
        raise not_a_function("attention_layer", record)
    case, expected = _transformer_lens_layer(seed, n_layers, layer, batch, pos)
    output = record.get("output")
    if isinstance(output, Raised):
        raise _explained("attention_layer", output, case, LAYER_INPUT_DIMS)
    device, devices = record.get("device"), record.get("output_devices")
    elsewhere = [d for d in devices if d != device] if isinstance(devices, list) else []
    if elsewhere:
        raise CheckFailed(f"attention_layer returned a tensor on '{elsewhere[0]}', but its inputs are on "
                          f"'{device}'. Create new tensors with device=<input>.device.")
    got = tuple(g.cpu() if type(g) is torch.Tensor else g for g in as_tuple(output, 3))  # noqa: E721
    inputs = record.get("inputs")
    if isinstance(inputs, dict):
        inputs = {k: v.cpu() for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    errors = [float((g - w).abs().max()) if _same_form((g,), (w,)) else math.inf for g, w in zip(got, expected)]
    if len(got) == 3 and all(e <= atol for e in errors) and _unchanged(case, inputs):
        return (f"✓ pattern, z and attention output of layer {layer} match TransformerLens's "
                f"(max error ≤ {atol:g}).")
    try:
        _diagnose_layer(case, got if isinstance(output, (tuple, list)) else got[0], inputs)
    except CheckFailed as failure:
        raise CheckFailed(f"On the TransformerLens model's layer {layer} (its own input and weights): {failure}",
                          failure.student_traceback) from None
    worst = max(range(len(errors)), key=lambda i: errors[i])
    label = ("pattern", "z", "attention output")[worst]
    raise CheckFailed(f"your {label} differs from TransformerLens's by up to {errors[worst]:.3g} "
                      f"(tolerance {atol:g}).")


check_against_transformer_lens = Check(
    "nb1.check_against_transformer_lens", _collect_transformer_lens, _judge_transformer_lens,
    {"seed": 0, "n_layers": 1, "layer": 0, "batch": 2, "pos": 12, "atol": 1e-4})


# ---------------------------------------------------------------- 8. reading a causal pattern
FIRST_ROW = {
    "a": "No: a one-hot query for \"cat\" scores 0 against the key of \"the\", the same as against any other word "
         "that is not \"cat\"; nothing about the match makes row 0 special.",
    "b": None,
    "c": "No: the mask does not copy the diagonal; it removes every key after the query. In row 0 that is every key "
         "but the first.",
    "d": "No: the scale divides every score in a row by the same number, so it cannot single out one key; and row 0 "
         "has only one key to give weight to anyway.",
}
LONGER_ROWS = {
    "a": "No: the model is untrained and its tokens are random; nothing in it knows which tokens matter.",
    "b": "No: the mask removes keys *after* the query, so later rows lose fewer keys, not more.",
    "c": None,
    "d": "No: the weights of a row always sum to 1 whatever the scores are; the scale changes how peaked a row is, "
         "not how much it sums to.",
}
PATTERN_EXPLANATION = ("Each row of a pattern is a softmax over the keys its query may see: its weights are at least 0 "
                       "and sum to 1. Row i may see i + 1 keys, so a head with no preference gives each about "
                       "1 / (i + 1); attention becomes concentrated only when one score clearly beats the others, as "
                       "\"cat\" does for the head looking for it.")

check_pattern_answers = choices_check("nb1.check_pattern_answers",
                                      {"first_row": FIRST_ROW, "longer_rows": LONGER_ROWS}, PATTERN_EXPLANATION)
