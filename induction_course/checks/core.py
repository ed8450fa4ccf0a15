"""The check engine: run a student's function on fresh seeded inputs and say what is wrong.

A check compares the student's output with the reference implementation's on each case.
When they differ it first looks at structure (type, shape, dtype, device, NaN, an input
changed in place), then asks each known bug, "is this what you would have got?", and names
the first that matches. Only if none does, it reports the size and place of the difference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

Case = dict[str, Any]


class CheckFailed(AssertionError):
    """A check found a mistake. The message says which, and what to do about it."""


@dataclass(frozen=True)
class Bug:
    """A known mistake: ``fn`` takes the same inputs as the exercise and returns what the mistake gives."""

    message: str
    fn: Callable[..., Any]


@dataclass(frozen=True)
class Exercise:
    """Everything needed to check one student function.

    make_case(seed, **shape) -> dict of named inputs; reference(**inputs) -> expected output.
    ``dims`` names the output's axes, for messages. ``transform`` maps outputs before
    the value comparison (e.g. clamp -inf so any large negative mask value is accepted).
    """

    name: str
    make_case: Callable[..., Case]
    reference: Callable[..., Any]
    dims: Sequence[str] | Sequence[Sequence[str]] = ()
    bugs: Sequence[Bug] = ()
    nan_hint: str = ""
    atol: float = 1e-5
    rtol: float = 1e-4
    transform: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda t: t)


def _clone(case: Case) -> Case:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in case.items()}


def as_tuple(value: Any, n_expected: int = 2) -> tuple:
    """``value`` as a tuple of outputs; a single expected output is never unpacked."""
    return tuple(value) if n_expected > 1 and isinstance(value, (tuple, list)) else (value,)


def _dims_for(exercise: Exercise, index: int, n_outputs: int) -> Sequence[str]:
    if n_outputs > 1 and exercise.dims and not isinstance(exercise.dims[0], str):
        return exercise.dims[index]
    return exercise.dims


def _label(exercise: Exercise, index: int, n_outputs: int) -> str:
    return f"output {index} of {exercise.name}" if n_outputs > 1 else exercise.name


def _describe_shape(shape: Sequence[int], dims: Sequence[str]) -> str:
    if len(dims) == len(shape):
        return "[" + ", ".join(f"{d}={n}" for d, n in zip(dims, shape)) + "]"
    return str(list(shape))


def _structure_problem(got: Any, want: torch.Tensor, label: str, dims: Sequence[str], nan_hint: str) -> str | None:
    """The first structural problem of ``got`` against ``want``, as a message, or None."""
    if type(got) is not torch.Tensor:  # subclasses could redefine comparisons
        return f"{label} returned {type(got).__name__}, but a plain torch.Tensor was expected."
    if got.device != want.device:
        return (f"{label} returned a tensor on device '{got.device}', but its inputs are on '{want.device}'. "
                "Create new tensors with device=<input>.device and don't move results with .to()/.cuda()/.cpu().")
    if got.shape != want.shape:
        msg = (f"{label} returned shape {_describe_shape(got.shape, dims)}, "
               f"expected {_describe_shape(want.shape, dims)}.")
        if sorted(got.shape) == sorted(want.shape):
            msg += " The sizes are right but the axes are in the wrong order: check your einsum output or permute."
        elif got.dim() != want.dim():
            msg += f" You returned {got.dim()} axes instead of {want.dim()}: did you forget to sum, or sum over one axis too many?"
        return msg
    if got.dtype != want.dtype:
        return (f"{label} returned dtype {got.dtype}, expected {want.dtype}. Keep the input's dtype: "
                "avoid .double(), .float() on other dtypes, or torch.tensor(...) without dtype=.")
    if want.is_floating_point() and torch.isnan(got).any() and not torch.isnan(want).any():
        count = int(torch.isnan(got).sum())
        return f"{label} contains {count} NaN value(s). " + (nan_hint or "Look for 0/0, or a softmax over a row that is all -inf.")
    return None


def _close(got: torch.Tensor, want: torch.Tensor, exercise: Exercise) -> bool:
    got, want = exercise.transform(got), exercise.transform(want)
    return torch.allclose(got, want, atol=exercise.atol, rtol=exercise.rtol, equal_nan=True)


def _matches(got_outputs: tuple, bug_output: Any, exercise: Exercise) -> bool:
    bug_outputs = as_tuple(bug_output, len(got_outputs))
    if len(bug_outputs) != len(got_outputs):
        return False
    for got, bad in zip(got_outputs, bug_outputs):
        if not (isinstance(got, torch.Tensor) and isinstance(bad, torch.Tensor)):
            return False
        if got.shape != bad.shape or got.dtype != bad.dtype or got.device != bad.device:
            return False
        if not _close(got, bad, exercise):
            return False
    return True


def _value_message(got: torch.Tensor, want: torch.Tensor, label: str, exercise: Exercise) -> str:
    g, w = exercise.transform(got), exercise.transform(want)
    diff = (g - w).abs().nan_to_num(nan=float("inf"))
    flat = int(diff.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    return (f"{label} differs from the reference: max |difference| {float(diff.max()):.3g} at index {list(index)} "
            f"(got {float(g.flatten()[flat]):.5g}, expected {float(w.flatten()[flat]):.5g}; "
            f"tolerance atol={exercise.atol:g}, rtol={exercise.rtol:g}).")


def _changed_input(before: Case, after: Case) -> str | None:
    for key, value in before.items():
        if isinstance(value, torch.Tensor) and not torch.equal(value, after[key]) and not (
            value.is_floating_point() and torch.equal(value.nan_to_num(), after[key].nan_to_num())
        ):
            return key
    return None


def call_student(fn: Callable[..., Any], case: Case, name: str) -> Any:
    try:
        return fn(**case)
    except NotImplementedError:
        raise CheckFailed(f"{name} is not written yet: replace `raise NotImplementedError()` with your code.") from None
    except CheckFailed:
        raise
    except Exception as exc:  # the student's code failed: say how, keep the traceback attached
        raise CheckFailed(f"{name} raised {type(exc).__name__}: {exc}") from exc


def check_case(student_fn: Callable[..., Any], exercise: Exercise, case: Case) -> None:
    """Check one input case; raise CheckFailed with a specific message on the first problem."""
    want = as_tuple(exercise.reference(**_clone(case)))
    pristine = _clone(case)
    got = as_tuple(call_student(student_fn, case, exercise.name), len(want))
    changed = _changed_input(pristine, case)
    if changed:
        raise CheckFailed(f"{exercise.name} changed its input `{changed}` in place (an in-place op such as "
                          "masked_fill_, +=, or writing into a slice). Use the out-of-place version so the "
                          "caller's tensor is untouched.")
    if len(got) != len(want):
        raise CheckFailed(f"{exercise.name} returned {len(got)} value(s), expected {len(want)}.")
    for i, (g, w) in enumerate(zip(got, want)):
        label = _label(exercise, i, len(want))
        problem = _structure_problem(g, w, label, _dims_for(exercise, i, len(want)), exercise.nan_hint)
        if problem:
            raise CheckFailed(problem)
    if all(_close(g, w, exercise) for g, w in zip(got, want)):
        return
    for bug in exercise.bugs:
        if _matches(got, bug.fn(**_clone(pristine)), exercise):
            raise CheckFailed(f"{exercise.name}: {bug.message}")
    for i, (g, w) in enumerate(zip(got, want)):
        if not _close(g, w, exercise):
            raise CheckFailed(_value_message(g, w, _label(exercise, i, len(want)), exercise))


def run_check(student_fn: Callable[..., Any], exercise: Exercise, seeds: Sequence[int] = (0,),
              shapes: Sequence[dict[str, int]] = ({},), quiet: bool = False) -> None:
    """Check ``student_fn`` on every (seed, shape) pair, then print a one-line success."""
    if not callable(student_fn):
        raise CheckFailed(f"{exercise.name} should be a function, but it is a {type(student_fn).__name__}.")
    n = 0
    for shape in shapes:
        for seed in seeds:
            check_case(student_fn, exercise, exercise.make_case(seed, **shape))
            n += 1
    if not quiet:
        print(f"✓ {exercise.name} matches the reference on {n} fresh random input(s) "
              f"(atol={exercise.atol:g}, rtol={exercise.rtol:g}).")


def seeded(seed: int) -> torch.Generator:
    """A CPU random generator seeded with ``seed``, for reproducible check inputs."""
    return torch.Generator().manual_seed(seed)


def make_check(exercise: Exercise) -> Callable[..., None]:
    """The public ``check_<name>(student_fn, seeds=(0,), shapes=({},))`` function of an exercise."""
    def check(student_fn: Callable, seeds: Sequence[int] = (0,), shapes: Sequence[dict] = ({},)) -> None:
        run_check(student_fn, exercise, seeds=seeds, shapes=shapes)
    check.__name__ = f"check_{exercise.name}"
    check.__doc__ = f"Check a student's ``{exercise.name}`` against the reference on seeded random inputs."
    return check


def check_choices(answers: Any, questions: dict[str, dict[str, str | None]], explanation: str) -> None:
    """Check multiple-choice ``answers`` {question: letter}. Each question maps every letter to the
    feedback for that wrong choice, or to None for the right one.
    """
    keys = " and ".join(f'"{k}"' for k in questions)
    if not isinstance(answers, dict) or set(answers) != set(questions):
        raise CheckFailed(f'answers must be a dict with the keys {keys}, each a letter "a" to "d".')
    for key, feedback in questions.items():
        choice = str(answers[key]).strip().lower()
        if choice not in feedback:
            letters = ", ".join(f'"{c}"' for c in feedback)
            raise CheckFailed(f'answers["{key}"] is {answers[key]!r}; choose one of {letters}.')
        if feedback[choice]:
            raise CheckFailed(f'answers["{key}"] = "{choice}": {feedback[choice]}')
    print(f"✓ {'both' if len(questions) == 2 else 'all'} answers are right. {explanation}")

