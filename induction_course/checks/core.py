"""The check engine: run a student's answer on fresh seeded inputs and say what is wrong.

Every public check is a :class:`Check` made of two halves:

- ``collect(*answers, **params)`` runs the student's code (their function on seeded inputs, or reads
  their numbers, lists, weights) and returns a *record*: plain data (:mod:`.record`);
- ``judge(record, **params)`` decides from the record alone, running the reference implementation
  and the known bugs on inputs it regenerates from the seeds, and returns the success line or
  raises :class:`CheckFailed` with a message that names the mistake.

In a notebook both halves run at once, so the student gets instant feedback. In ``course grade``'s
sandbox only ``collect`` runs; the grader judges the record outside the student's interpreter.

For a function exercise the judge first looks at structure (type, device, shape, dtype, NaN, an input
changed in place), then asks each known :class:`Bug` "is this what you would have got?", and only
if none matches describes how the values differ (:mod:`.symptoms`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from induction_course.checks.record import Opaque, Raised, as_data, capture, emit, recording
from induction_course.checks.symptoms import named, shape_problem, value_symptom

Case = dict[str, Any]


class CheckFailed(AssertionError):
    """A check found a mistake. The message says which, and what to do about it.

    In a notebook it shows as the message alone, then the student's own traceback when their code
    raised: never the check engine's frames (IPython calls :meth:`_render_traceback_`).
    """

    def __init__(self, message: str, student_traceback: str = "") -> None:
        super().__init__(message)
        self.student_traceback = student_traceback

    def _render_traceback_(self) -> list[str]:
        lines = [f"\x1b[1;31m✗ {self}\x1b[0m"]
        if self.student_traceback:
            lines += ["", "Your code raised this error (most recent call last):", self.student_traceback]
        return lines


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


@dataclass(frozen=True)
class Check:
    """One public check, ``nbN.check_<name>(*answers, **params)``.

    ``id`` is how graded cells call it (``"nb1.check_project"``); ``defaults`` lists every parameter
    and its default, so both halves always see the same values.
    """

    id: str
    collect: Callable[..., Any]
    judge: Callable[..., str]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, *answers: Any, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.id}() got unexpected parameter(s) {sorted(unknown)}")
        params = {**self.defaults, **params}
        record = self.collect(*answers, **params)
        if recording():
            emit(self.id, params, record)
            return
        print(self.judge(record, **params))


def clone(case: Case) -> Case:
    """A copy of ``case`` whose tensors the student may change without touching the original."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in case.items()}


def seeded(seed: int) -> torch.Generator:
    """A CPU random generator seeded with ``seed``, for reproducible check inputs."""
    return torch.Generator().manual_seed(seed)


def as_tuple(value: Any, n_expected: int = 2) -> tuple:
    """``value`` as a tuple of outputs; a single expected output is never unpacked."""
    return tuple(value) if n_expected > 1 and isinstance(value, (tuple, list)) else (value,)


def raised(name: str, error: Raised) -> CheckFailed:
    """The failure to show when the student's ``name`` raised ``error``."""
    if error.type_name == "NotImplementedError":
        return CheckFailed(f"{name} is not written yet: replace `raise NotImplementedError()` with your code.")
    return CheckFailed(f"{name} raised {error.type_name}: {error.message}", error.traceback)


def unwrap(value: Any, name: str) -> Any:
    """``value`` from a record, or the failure that says the student's ``name`` raised."""
    if isinstance(value, Raised):
        raise raised(name, value)
    return value


def not_a_function(name: str, record: Any) -> CheckFailed:
    kind = record.type_name if isinstance(record, Opaque) else type(record).__name__
    return CheckFailed(f"{name} should be a function, but it is a {kind}.")


# ---------------------------------------------------------------- function exercises: collect
def collect_calls(exercise: Exercise, wrap: Callable[[Callable], Callable] | None = None) -> Callable[..., Any]:
    """The collect half of a function exercise: call the student's function on every seeded case.

    The record is a list of {seed, shape, output, inputs}, ``inputs`` being the case's tensors as the
    function left them (to spot in-place changes). ``wrap`` adapts how the function is called.
    """
    def collect(student_fn: Any, seeds: Sequence[int], shapes: Sequence[dict]) -> Any:
        if not callable(student_fn):
            return as_data(Opaque(type(student_fn).__name__))
        fn = wrap(student_fn) if wrap else student_fn
        entries = []
        for shape in shapes:
            for seed in seeds:
                given = clone(exercise.make_case(seed, **shape))
                output = capture(fn, **given)
                inputs = {k: v for k, v in given.items() if isinstance(v, torch.Tensor)}
                entries.append({"seed": seed, "shape": dict(shape), "output": as_data(output),
                                "inputs": as_data(inputs)})
        return entries
    return collect


# ---------------------------------------------------------------- function exercises: judge
def judge_calls(exercise: Exercise) -> Callable[..., str]:
    """The judge half of a function exercise: compare each recorded case with the reference."""
    def judge(record: Any, seeds: Sequence[int], shapes: Sequence[dict]) -> str:
        if not isinstance(record, list):
            raise not_a_function(exercise.name, record)
        cases = [(seed, dict(shape)) for shape in shapes for seed in seeds]
        if len(record) != len(cases):
            raise CheckFailed(f"{exercise.name}: the check recorded {len(record)} case(s) instead of {len(cases)}; "
                              "run the check cell as it is.")
        for (seed, shape), entry in zip(cases, record):
            if not isinstance(entry, dict) or entry.get("seed") != seed or entry.get("shape") != shape:
                raise CheckFailed(f"{exercise.name}: the recorded cases do not match the check's; "
                                  "run the check cell as it is.")
            judge_case(exercise, exercise.make_case(seed, **shape), entry.get("output"), entry.get("inputs"))
        return (f"✓ {exercise.name} matches the reference on {len(cases)} fresh random input(s) "
                f"(atol={exercise.atol:g}, rtol={exercise.rtol:g}).")
    return judge


def judge_case(exercise: Exercise, case: Case, output: Any, inputs_after: Any = None) -> None:
    """Raise CheckFailed with a specific message if ``output`` (for ``case``) is wrong."""
    output = unwrap(output, exercise.name)
    want = as_tuple(exercise.reference(**clone(case)))
    changed = _changed_input(case, inputs_after)
    if changed:
        raise CheckFailed(f"{exercise.name} changed its input `{changed}` in place (an in-place op such as "
                          "masked_fill_, +=, or writing into a slice). Use the out-of-place version so the "
                          "caller's tensor is untouched.")
    got = as_tuple(output, len(want))
    if len(got) != len(want):
        raise CheckFailed(f"{exercise.name} returned {len(got)} value(s), expected {len(want)}.")
    for i, (g, w) in enumerate(zip(got, want)):
        problem = _structure_problem(g, w, _label(exercise, i, len(want)), _dims_for(exercise, i, len(want)),
                                     exercise.nan_hint)
        if problem:
            raise CheckFailed(problem)
    if all(_close(g, w, exercise) for g, w in zip(got, want)):
        return
    for bug in exercise.bugs:
        if _matches(got, bug.fn(**clone(case)), exercise):
            raise CheckFailed(f"{exercise.name}: {bug.message}")
    for i, (g, w) in enumerate(zip(got, want)):
        if not _close(g, w, exercise):
            raise CheckFailed(_value_message(g, w, exercise, i, len(want)))


def _dims_for(exercise: Exercise, index: int, n_outputs: int) -> Sequence[str]:
    if n_outputs > 1 and exercise.dims and not isinstance(exercise.dims[0], str):
        return exercise.dims[index]
    return exercise.dims


def _label(exercise: Exercise, index: int, n_outputs: int) -> str:
    return f"output {index} of {exercise.name}" if n_outputs > 1 else exercise.name


def _structure_problem(got: Any, want: torch.Tensor, label: str, dims: Sequence[str], nan_hint: str) -> str | None:
    """The first structural problem of ``got`` against ``want``, as a message, or None."""
    if isinstance(got, Raised):
        return f"{label}: computing it raised {got.type_name}: {got.message}"
    if isinstance(got, Opaque) and got.type_name == "Tensor":
        return f"{label} returned a tensor {got.detail}; expected {named(want.shape, dims)} on '{want.device}'."
    if type(got) is not torch.Tensor:  # noqa: E721  (subclasses could redefine comparisons)
        kind = got.type_name if isinstance(got, Opaque) else type(got).__name__
        return f"{label} returned {kind}, but a plain torch.Tensor was expected."
    if got.device != want.device:
        return (f"{label} returned a tensor on device '{got.device}', but its inputs are on '{want.device}'. "
                "Create new tensors with device=<input>.device and don't move results with .to()/.cuda()/.cpu().")
    if got.shape != want.shape:
        return shape_problem(got.shape, want.shape, dims, label)
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


def _value_message(got: torch.Tensor, want: torch.Tensor, exercise: Exercise, index: int, n_outputs: int) -> str:
    label, dims = _label(exercise, index, n_outputs), _dims_for(exercise, index, n_outputs)
    g, w = exercise.transform(got), exercise.transform(want)
    symptom = value_symptom(g, w, dims, exercise.atol, exercise.rtol)
    diff = (g - w).abs().nan_to_num(nan=float("inf"))
    flat = int(diff.argmax())
    where = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    largest = (f"largest difference {float(diff.max()):.3g} at {named(where, dims)}: "
               f"got {float(g.flatten()[flat]):.5g}, expected {float(w.flatten()[flat]):.5g}")
    return f"{label} is wrong. {symptom + ' ' if symptom else ''}({largest}; atol={exercise.atol:g}, rtol={exercise.rtol:g}.)"


def _changed_input(before: Case, after: Any) -> str | None:
    if not isinstance(after, dict):
        return None
    for key, value in before.items():
        new = after.get(key)
        if not isinstance(value, torch.Tensor) or not isinstance(new, torch.Tensor):
            continue
        if new.shape != value.shape or new.dtype != value.dtype:
            return key
        if not torch.equal(value.cpu(), new.cpu()) and not (
                value.is_floating_point() and torch.equal(value.cpu().nan_to_num(), new.cpu().nan_to_num())):
            return key
    return None


def make_check(exercise: Exercise, notebook: str, wrap: Callable[[Callable], Callable] | None = None) -> Check:
    """The public ``check_<name>(student_fn, seeds=(0,), shapes=({},))`` of a function exercise."""
    return Check(f"{notebook}.check_{exercise.name}", collect_calls(exercise, wrap), judge_calls(exercise),
                 {"seeds": (0,), "shapes": ({},)})


# ---------------------------------------------------------------- multiple choice
def choices_check(check_id: str, questions: dict[str, dict[str, str | None]], explanation: str) -> Check:
    """A check of multiple-choice ``answers`` {question: letter}. Each question maps every letter to the
    feedback for that wrong choice, or to None for the right one.
    """
    def judge(record: Any) -> str:
        keys = " and ".join(f'"{k}"' for k in questions)
        if not isinstance(record, dict) or set(record) != set(questions):
            raise CheckFailed(f'answers must be a dict with the keys {keys}, each a letter "a" to "d".')
        for key, feedback in questions.items():
            choice = str(record[key]).strip().lower() if isinstance(record[key], (str, int)) else ""
            if choice not in feedback:
                letters = ", ".join(f'"{c}"' for c in feedback)
                raise CheckFailed(f'answers["{key}"] is {record[key]!r}; choose one of {letters}.')
            if feedback[choice]:
                raise CheckFailed(f'answers["{key}"] = "{choice}": {feedback[choice]}')
        return f"✓ {'both' if len(questions) == 2 else 'all'} answers are right. {explanation}"

    return Check(check_id, lambda answers: as_data(answers), judge)


# ---------------------------------------------------------------- in one go
def run_check(student_fn: Callable[..., Any], exercise: Exercise, seeds: Sequence[int] = (0,),
              shapes: Sequence[dict[str, int]] = ({},), quiet: bool = False) -> None:
    """Collect and judge ``exercise`` in this interpreter, without a named :class:`Check` (small courses, tests)."""
    message = judge_calls(exercise)(collect_calls(exercise)(student_fn, seeds, shapes), seeds, shapes)
    if not quiet:
        print(message)
