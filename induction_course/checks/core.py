"""The check engine: run a student's answer on fresh seeded inputs and say what is wrong.

Every public check is a :class:`Check` made of two halves:

- ``collect(*answers, **params)`` runs the student's code (their function on seeded inputs, or reads
  their numbers, lists, weights) and returns a *record*: plain data (:mod:`.record`);
- ``judge(record, **params)`` decides from the record alone, running the reference implementation
  and the known bugs on inputs it regenerates from the seeds, and returns the success line or
  raises :class:`CheckFailed` with a message that names the mistake.

In a notebook both halves run at once, so the student gets instant feedback. In ``course grade``'s
sandbox only ``collect`` runs; the grader judges the record outside the student's interpreter.

A function exercise is declared as data (:class:`Exercise`: its cases, reference, known bugs, diagnoses
and messages) and :func:`make_check` makes its check; the engine alone collects, judges and formats.
The judge reads each recorded case in one order, and the first stage with something to say fails it:

1. the exercise's own :data:`Diagnosis` functions, on the raw recorded output (they may read a raised error);
2. an error the student's code raised (with what an ``IndexError`` on a batch axis usually means);
3. an input changed in place (through a view of it, if the output is one);
4. structure: number of outputs, type (NumPy, Python number), device, shape, dtype, NaN;
5. a hook left on a model fails the case (after a known bug's message, if one matches); otherwise, if
   every output is close to the reference, the case passes, unless an output is a view of an input
   where the reference's is a new tensor;
6. symptom diagnoses that read the values: a float16 round trip, an argument the result ignores;
7. each known :class:`Bug`: "is this what you would have got?";
8. two value symptoms read from the axes' names: values shifted along a position axis (an off by one), and
   values N or 1/N times the expected ones where N is the length of an axis (a sum for a mean, or the converse);
9. a description of how the values differ (:mod:`.symptoms`).

To see an ignored argument, ``collect`` reruns the function on the first case once per argument, with that
argument alone taken from another seed's case (the record's ``probes``); ``hooks_left`` and ``aliases``
record what only the student's interpreter can see.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from induction_course.checks.record import Opaque, Raised, as_data, capture, emit, recording
from induction_course.checks.symptoms import (half_rounded, is_position_axis, named, position_shift, shape_problem,
                                              size_factor, value_symptom)

Case = dict[str, Any]
Diagnosis = Callable[[Case, Any, Any], "str | None"]
"""(case, recorded output, recorded inputs after the call) -> a message naming the mistake, or None."""
PROBE_SEED = 7919  # the probe case of seed s is make_case(s + PROBE_SEED)


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
    ``dims`` names the output's axes and ``input_dims`` {input: its axes} the inputs' (optional), for messages
    and for the symptoms that read them (stage 8). ``transform`` maps outputs before the value comparison
    (e.g. clamp -inf so any large negative mask value is accepted).
    ``diagnoses`` are asked first, in order, about each recorded case (stage 1 of the module's order);
    ``after(case, seed, shape, output)`` adds a line about the first case to the success line.
    ``probe=False`` skips the reruns that look for an ignored argument (for very slow functions).
    """

    name: str
    make_case: Callable[..., Case]
    reference: Callable[..., Any]
    dims: Sequence[str] | Sequence[Sequence[str]] = ()
    input_dims: Mapping[str, Sequence[str]] = field(default_factory=dict)
    bugs: Sequence[Bug] = ()
    nan_hint: str = ""
    atol: float = 1e-5
    rtol: float = 1e-4
    transform: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda t: t)
    diagnoses: Sequence[Diagnosis] = ()
    after: Callable[[Case, int, dict, Any], str] | None = None
    probe: bool = True


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
            emit(self.id, record)
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
def _models(case: Case) -> list[Any]:
    """The TransformerLens models among a case's inputs (anything with a ``hook_dict``)."""
    return [v for v in case.values() if hasattr(v, "hook_dict") and hasattr(v, "reset_hooks")]


def hooks_on(model: Any) -> list[str]:
    """The hook points of ``model`` that hold a forward or backward hook, one name per hook function
    (TransformerLens gives one hook point several names; the shortest is kept)."""
    names: dict[int, str] = {}
    for name, point in model.hook_dict.items():
        for hook in [*getattr(point, "fwd_hooks", []), *getattr(point, "bwd_hooks", [])]:
            key = id(getattr(hook, "hook", hook))
            if key not in names or len(name) < len(names[key]):
                names[key] = name
    return sorted(set(names.values()))


def _aliases(output: Any, inputs: Case) -> list[str]:
    """The inputs whose memory an output tensor shares (a view of the input, or the input itself)."""
    outs = [o for o in as_tuple(output, 2 if isinstance(output, (tuple, list)) else 1) if type(o) is torch.Tensor]  # noqa: E721
    found = []
    for key, value in inputs.items():
        if type(value) is torch.Tensor and value.numel() and any(  # noqa: E721
                o.numel() and o.untyped_storage().data_ptr() == value.untyped_storage().data_ptr() for o in outs):
            found.append(key)
    return found


def _call(fn: Callable, case: Case) -> tuple[Any, Case, list[str]]:
    """Run ``fn`` on a copy of ``case``: (output or Raised, the inputs as it left them, hooks it left).
    Hooks left on a model are removed after being noted, so one call cannot spoil the next."""
    given = clone(case)
    output = capture(fn, **given)
    left = sorted({name for model in _models(given) for name in hooks_on(model)})
    for model in _models(given):
        model.reset_hooks(including_permanent=False)
    return output, given, left


def _probe_cases(exercise: Exercise, case: Case, seed: int, shape: dict) -> dict[str, Case]:
    """For each input of ``case``: ``case`` with that input alone taken from another seed's case."""
    if not exercise.probe:
        return {}
    other = exercise.make_case(seed + PROBE_SEED, **shape)
    probes = {}
    for key, value in case.items():
        new = other.get(key)
        same = (torch.equal(value, new) if isinstance(value, torch.Tensor) and isinstance(new, torch.Tensor)
                and value.shape == new.shape and value.dtype == new.dtype else value is new or value == new)
        if not isinstance(same, bool):
            same = True
        if not same and (isinstance(value, torch.Tensor) or _models({key: value})):
            probes[key] = {**case, key: new}
    return probes


def collect_calls(exercise: Exercise, wrap: Callable[[Callable], Callable] | None = None) -> Callable[..., Any]:
    """The collect half of a function exercise: call the student's function on every seeded case.

    The record is a list of {seed, shape, output, inputs, aliases, hooks_left} (``inputs``: the case's
    tensors as the function left them, to spot in-place changes), the first also with ``probes``
    {argument: output with that argument changed}. ``wrap`` adapts how the function is called.
    """
    def collect(student_fn: Any, seeds: Sequence[int], shapes: Sequence[dict]) -> Any:
        if not callable(student_fn):
            return as_data(Opaque(type(student_fn).__name__))
        fn = wrap(student_fn) if wrap else student_fn
        entries = []
        for shape in shapes:
            for seed in seeds:
                case = exercise.make_case(seed, **shape)
                output, given, left = _call(fn, case)
                inputs = {k: v for k, v in given.items() if isinstance(v, torch.Tensor)}
                entry = {"seed": seed, "shape": dict(shape), "output": as_data(output), "inputs": as_data(inputs),
                         "aliases": _aliases(output, inputs), "hooks_left": left}
                if not entries:
                    entry["probes"] = {key: as_data(_call(fn, probe)[0])
                                       for key, probe in _probe_cases(exercise, case, seed, shape).items()}
                entries.append(entry)
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
        first = None
        for (seed, shape), entry in zip(cases, record):
            if not isinstance(entry, dict) or entry.get("seed") != seed or entry.get("shape") != shape:
                raise CheckFailed(f"{exercise.name}: the recorded cases do not match the check's; "
                                  "run the check cell as it is.")
            case = exercise.make_case(seed, **shape)
            judge_case(exercise, case, entry.get("output"), entry.get("inputs"), entry, seed, shape)
            first = first or (case, seed, shape, entry.get("output"))
        line = (f"✓ {exercise.name} matches the reference on {len(cases)} fresh random input(s) "
                f"(atol={exercise.atol:g}, rtol={exercise.rtol:g}).")
        return line + "\n" + exercise.after(*first) if exercise.after and first else line
    return judge


def judge_case(exercise: Exercise, case: Case, output: Any, inputs_after: Any = None,
               entry: Mapping[str, Any] | None = None, seed: int = 0, shape: dict | None = None) -> None:
    """Raise CheckFailed with a specific message if ``output`` (for ``case``) is wrong, in the order of
    the module docstring. ``entry`` is the whole recorded case (aliases, hooks left, probes), if any."""
    entry = entry or {}
    trace = output.traceback if isinstance(output, Raised) else ""
    for diagnose in exercise.diagnoses:
        message = diagnose(case, output, inputs_after)
        if message:
            raise CheckFailed(message if message.startswith(exercise.name) else f"{exercise.name}: {message}", trace)
    if isinstance(output, Raised):
        raise _raised_with_hint(exercise, output)
    want = as_tuple(exercise.reference(**clone(case)))
    problem = _side_effect(exercise, case, inputs_after, entry)
    if problem:
        raise CheckFailed(problem)
    got = as_tuple(output, len(want))
    if len(got) != len(want):
        raise CheckFailed(f"{exercise.name} returned {len(got)} value(s), expected {len(want)}.")
    for i, (g, w) in enumerate(zip(got, want)):
        problem = _structure_problem(g, w, _label(exercise, i, len(want)), _dims_for(exercise, i, len(want)),
                                     exercise.nan_hint)
        if problem:
            ignored = _ignored_argument(exercise, case, output, entry, seed, shape or {})
            raise CheckFailed(f"{problem} {ignored}" if ignored else problem)
    hooks = _hooks_left(exercise, entry)
    if all(_close(g, w, exercise) for g, w in zip(got, want)):
        problem = f"Your values are right, but {hooks}" if hooks else _alias(exercise, case, entry)
        if problem:
            raise CheckFailed(problem)
        return
    for bug in exercise.bugs if hooks else ():
        if _matches(got, bug.fn(**clone(case)), exercise):
            raise CheckFailed(f"{exercise.name}: {bug.message} Also, {hooks}")
    if hooks:
        raise CheckFailed(hooks)
    for i, (g, w) in enumerate(zip(got, want)):
        rounded = _rounded(g, w, exercise)
        if rounded:
            raise CheckFailed(f"{_label(exercise, i, len(want))}: {rounded}")
    for bug in exercise.bugs:
        if _matches(got, bug.fn(**clone(case)), exercise):
            raise CheckFailed(f"{exercise.name}: {bug.message}")
    ignored = _ignored_argument(exercise, case, output, entry, seed, shape or {})
    if ignored:
        raise CheckFailed(f"{exercise.name} is wrong. {ignored}")
    for i, (g, w) in enumerate(zip(got, want)):
        if not _close(g, w, exercise):
            raise CheckFailed(_axis_symptom(g, w, exercise, case, i, len(want)) or
                              _value_message(g, w, exercise, i, len(want)))


# ---------------------------------------------------------------- symptom diagnoses, written once
def float16_diagnosis(reference: Callable[..., Any], what: str = "value") -> Diagnosis:
    """A diagnosis: a result computed in float16 and cast back, however few its values (symptoms.half_rounded;
    the engine's own float16 test needs 8 values and a result outside the tolerance)."""
    def diagnose(case: Case, output: Any, inputs: Any = None) -> str | None:
        return half_rounded(output, reference(**clone(case)), what)
    return diagnose


def _raised_with_hint(exercise: Exercise, error: Raised) -> CheckFailed:
    """The student's error; an IndexError on an output with a batch axis gets a (guessed) reason."""
    failure = raised(exercise.name, error)
    dims = _dims_for(exercise, 0, 1)
    if error.type_name == "IndexError" and dims and dims[0] == "batch":
        return CheckFailed(f"{failure}\nA guess: the inputs have a batch axis first ([batch, ...]); an index "
                           "written for one sequence, like t[i], picks a sequence, not a position. "
                           "Index the batch axis too (t[:, i]).", error.traceback)
    return failure


def _side_effect(exercise: Exercise, case: Case, inputs_after: Any, entry: Mapping[str, Any]) -> str | None:
    """An input changed in place, an output that shares an input's memory, or a hook left on a model."""
    changed = _changed_input(case, inputs_after)
    aliases = [a for a in entry.get("aliases") or [] if isinstance(a, str)]
    if changed:
        view = (f" Your output is a view of `{changed}`, so the two change together." if changed in aliases else "")
        return (f"{exercise.name} changed its input `{changed}` in place (an in-place op such as "
                "masked_fill_, +=, or writing into a slice)." + view + " Use the out-of-place version so the "
                "caller's tensor is untouched.")
    return None


def _alias(exercise: Exercise, case: Case, entry: Mapping[str, Any]) -> str | None:
    """A right output that shares an input's memory (the reference's does not): a later change to one
    changes the other."""
    aliases = [a for a in entry.get("aliases") or [] if isinstance(a, str)]
    if aliases and not _aliases(exercise.reference(**(given := clone(case))), given):
        return (f"{exercise.name}'s values are right, but it returned a view of its input `{aliases[0]}` (the two "
                "share memory), so a later change to either changes the other. Return a new tensor (for "
                "example `.clone()` it).")
    return None


def _hooks_left(exercise: Exercise, entry: Mapping[str, Any]) -> str | None:
    """A hook the student's function left on a model, named, and what the check did about it."""
    hooks = [h for h in entry.get("hooks_left") or [] if isinstance(h, str)]
    if hooks:
        return (f"{exercise.name} left a hook on the model at {', '.join(repr(h) for h in hooks)}: every later "
                "forward pass of that model runs with it. The check removed it from its own model; in your "
                "notebook it stays on yours (model.reset_hooks() removes it). Add hooks only through "
                "model.run_with_hooks(..., fwd_hooks=[...]) or `with model.hooks(...)`, which remove them.")
    return None


def _rounded(got: Any, want: Any, exercise: Exercise) -> str | None:
    """A float32 result computed in float16 or bfloat16 and cast back: every value is exactly a number of
    the narrow type (by chance that almost never happens to float32 results), the reference's are not, and
    the two agree to the narrow type's precision."""
    if not (type(got) is torch.Tensor and type(want) is torch.Tensor and want.dtype == torch.float32  # noqa: E721
            and got.shape == want.shape and got.dtype == want.dtype and got.numel() >= 8):
        return None
    for narrow, rtol in ((torch.bfloat16, 1e-1), (torch.float16, 2e-2)):  # bfloat16 numbers are float16 ones
        exact = torch.isinf(got) | (got.to(narrow).float() == got)  # a masked -inf is a narrow number too
        if not exact.all() or int(torch.isfinite(got).sum()) < 8 or (want.to(narrow).float() == want).all():
            continue
        scale = float(want.abs().nan_to_num(posinf=0.0, neginf=0.0).max())
        if torch.allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True):
            kind = str(narrow).removeprefix("torch.")
            return (f"every value is exactly a {kind} number and close to the expected one: the computation ran "
                    f"in {kind} (.half(), .to(torch.{kind}) or autocast) and was cast back to float32, losing "
                    "digits. Keep float32 throughout.")
    return None


def _ignored_argument(exercise: Exercise, case: Case, output: Any, entry: Mapping[str, Any], seed: int,
                      shape: dict) -> str | None:
    """What the probes show: the result stayed the same when an argument changed, where the reference's did not."""
    probes = entry.get("probes")
    if not isinstance(probes, dict) or not probes:
        return None
    others = _probe_cases(exercise, case, seed, shape)
    want = as_tuple(exercise.reference(**clone(case)))
    got = as_tuple(output, len(want))
    matters = [key for key in probes if key in others
               and not _same(want, as_tuple(exercise.reference(**clone(others[key])), len(want)))]
    ignored = [key for key in matters if _same(got, as_tuple(probes[key], len(want)))]
    if len(ignored) > 1 and ignored == matters:
        return (f"Your result stays the same whichever argument the check changes ({', '.join(ignored)}), where "
                f"the expected one changes with each: it does not depend on the inputs{_constant(got)}. A guess: "
                "a value typed in, a floor division (//) that gives 0, or a result that is never filled in.")
    if ignored:
        return (f"Your result stays the same when the check changes only `{ignored[0]}`, where the expected one "
                f"changes: `{ignored[0]}` is not used. A guess: a notebook variable is used in place of the "
                f"argument `{ignored[0]}`.")
    return None


def _constant(got: tuple) -> str:
    """", and every value is 0" (or "... is 0.25") when the result is one number repeated; else ""."""
    values = [t.detach().flatten() for t in got if isinstance(t, torch.Tensor) and t.numel()]
    if not values or not all(torch.equal(v, v[:1].expand_as(v)) for v in values):
        return ""
    numbers = {float(v[0]) for v in values}
    return f", and every value is {numbers.pop():g}" if len(numbers) == 1 else ""


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(
        type(x) is torch.Tensor and type(y) is torch.Tensor and x.shape == y.shape  # noqa: E721
        and x.dtype == y.dtype and torch.equal(x.cpu().nan_to_num(), y.cpu().nan_to_num()) for x, y in zip(a, b))


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
        if kind == "ndarray":
            return (f"{label} returned a NumPy array, but a torch.Tensor was expected: drop the .numpy() "
                    "(or np.* call) and keep torch operations throughout.")
        if isinstance(got, (bool, int, float)):
            return (f"{label} returned {kind} (a Python number), but a torch.Tensor {named(want.shape, dims)} was "
                    "expected: drop the .item(), float(...) or .tolist().")
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


def _axis_symptom(got: torch.Tensor, want: torch.Tensor, exercise: Exercise, case: Case, index: int,
                  n_outputs: int) -> str | None:
    """Stage 8: values shifted along a position axis, or N or 1/N times the expected ones for an axis length N.
    The factor is judged on the entries that ``transform`` leaves alone (a masked -inf is no value to scale);
    the others must be right."""
    label, dims = _label(exercise, index, n_outputs), _dims_for(exercise, index, n_outputs)
    g, w = exercise.transform(got), exercise.transform(want)
    symptom = position_shift(g, w, dims, exercise.atol, exercise.rtol)
    if not symptom and not want.dtype.is_complex and want.dtype != torch.bool:
        kept = torch.isfinite(want) & (w == want)
        rest = torch.isclose(g, w, atol=exercise.atol, rtol=exercise.rtol, equal_nan=True)
        if bool(rest[~kept].all()):
            symptom = size_factor(got[kept], want[kept], _axis_lengths(exercise, case, want, dims),
                                  exercise.atol, exercise.rtol)
    return f"{label}: {symptom}" if symptom else None


def _axis_lengths(exercise: Exercise, case: Case, want: torch.Tensor, dims: Sequence[str]) -> dict[int, list[str]]:
    """{N >= 2: what has length N}: the output's axes and the inputs', by name where named (else "axis 1 of
    `x`", only for a length no named axis has), and one less than each named position axis (a count of
    positions but the first)."""
    named_axes = [*zip(want.shape, dims if len(dims) == want.dim() else ())]
    unnamed = []
    for key, value in case.items():
        if isinstance(value, torch.Tensor):
            names = exercise.input_dims.get(key, ())
            if len(names) == value.dim():
                named_axes += zip(value.shape, names)
            else:
                unnamed += [(n, f"the length of axis {i} of `{key}`") for i, n in enumerate(value.shape)]
    lengths: dict[int, list[str]] = {}
    found = [(int(n), f"the length of `{d}`") for n, d in named_axes]
    found += [(int(n) - 1, f"one less than the length of `{d}`") for n, d in named_axes if is_position_axis(d)]
    for n, what in found + [(int(n), what) for n, what in unnamed if n not in {m for m, _ in named_axes}]:
        if n >= 2 and what not in lengths.setdefault(n, []):
            lengths[n].append(what)
    return lengths


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


def make_check(exercise: Exercise, notebook: str, wrap: Callable[[Callable], Callable] | None = None,
               shapes: Sequence[dict] = ({},),
               context: Callable[[], contextlib.AbstractContextManager] | None = None) -> Check:
    """The public ``check_<name>(student_fn, seeds=(0,), shapes=shapes)`` of a function exercise.

    ``shapes`` are the visible cases; ``wrap`` adapts how the student's function is called; both halves
    run inside ``context()`` if given (e.g. ``torch.no_grad`` and quiet TransformerLens notices).
    """
    collect, judge = collect_calls(exercise, wrap), judge_calls(exercise)
    if context:
        collect, judge = _within(context, collect), _within(context, judge)
    return Check(f"{notebook}.check_{exercise.name}", collect, judge, {"seeds": (0,), "shapes": tuple(shapes)})


def _within(context: Callable[[], contextlib.AbstractContextManager], fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        with context():
            return fn(*args, **kwargs)
    return run


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
            choice = str(record[key]).strip().strip("()").lower() if isinstance(record[key], (str, int)) else ""
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
