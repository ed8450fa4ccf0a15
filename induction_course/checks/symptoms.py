"""Describe what is wrong with a student's tensor, truthfully, when no known bug explains it.

Two kinds of description: of a shape that differs from the expected one (which axis is missing,
extra, reordered or off by one, matched by size, never by assuming the student's axes mean what the
expected ones do), and of values that differ in a recognisable way (a constant factor, a sign, an
offset, a shift by one, swapped axes, or differences confined to one region). The engine asks two of its
own first (:func:`position_shift`, :func:`size_factor`), which name the axis from the exercise's axis names.
"""
from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import torch

from induction_course.checks.record import Raised

_FACTORS = {1 / math.log(2): "log base 2 instead of the natural log",
            1 / math.log(10): "log base 10 instead of the natural log",
            math.log(2): "natural log and log base 2 mixed up",
            math.log(10): "natural log and log base 10 mixed up"}


def named(shape: Sequence[int], dims: Sequence[str]) -> str:
    """``[batch=2, pos=7]`` when every axis has a name, else ``[2, 7]``."""
    if len(dims) == len(shape):
        return "[" + ", ".join(f"{d}={n}" for d, n in zip(dims, shape)) + "]"
    return str(list(shape))


def shape_problem(got: Sequence[int], want: Sequence[int], dims: Sequence[str], label: str) -> str:
    """One message: the student's shape as it is, the expected shape with names, and what differs."""
    got, want = list(got), list(want)
    dims = list(dims) if len(dims) == len(want) else [str(i) for i in range(len(want))]
    message = f"{label} returned shape {got}, expected {named(want, dims)}."
    hint = _shape_hint(got, want, dims)
    return f"{message} {hint}" if hint else message


def _shape_hint(got: list[int], want: list[int], dims: list[str]) -> str:
    if not got:
        return "It is a single number: something reduced over every axis (a .sum() or .mean() without dim=?)."
    if len(got) == len(want) and sorted(got) == sorted(want):
        return _order_hint(got, want, dims)
    if len(got) == len(want) - 1:
        return _missing_hint(got, want, dims)
    if len(got) == len(want) + 1:
        return _extra_hint(got, want)
    if len(got) == len(want):
        wrong = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        if len(wrong) == 1:
            return _size_hint(got[wrong[0]], want[wrong[0]], dims[wrong[0]])
    if math.prod(got) == math.prod(want):
        return "It has the right number of entries arranged differently: a .view/.reshape in the wrong order?"
    return f"It has {len(got)} axes; {len(want)} are expected."


def _order_hint(got: list[int], want: list[int], dims: list[str]) -> str:
    if len(set(want)) < len(want):
        return "The sizes are right but the axes are in the wrong order: check the einsum output or permute."
    order = [dims[want.index(n)] for n in got]
    return (f"Matched by size, your axes are [{', '.join(order)}]: the right axes in the wrong order. "
            f"Put them in the order [{', '.join(dims)}] (einsum's output letters, or .permute).")


def _missing_hint(got: list[int], want: list[int], dims: list[str]) -> str:
    gone = sorted({dims[i] for i in range(len(want)) if want[:i] + want[i + 1:] == got})
    if len(gone) != 1:
        return "It has one axis fewer than expected."
    i = dims.index(gone[0])
    if want[i] == 1:
        return (f"The `{gone[0]}` axis, of size 1 here, is missing: .squeeze() or an index like [..., 0] "
                "removes size-1 axes. Keep it.")
    return (f"The `{gone[0]}` axis (size {want[i]}) is missing: a sum/mean over it, an index into it, "
            "or a .squeeze() removes it. Keep it.")


def _extra_hint(got: list[int], want: list[int]) -> str:
    extra = sorted({i for i in range(len(got)) if got[:i] + got[i + 1:] == want})
    if not extra:
        return "It has one axis more than expected."
    i = extra[0]
    if got[i] == 1:
        return f"It has an extra axis of size 1 at position {i}: remove it (.squeeze({i}) or index it with 0)."
    return (f"It has an extra axis of size {got[i]} at position {i}: a reduction over it (sum or mean) is "
            "missing, or tensors were stacked where they should be combined.")


def _size_hint(got: int, want: int, dim: str) -> str:
    if abs(got - want) == 1:
        return (f"Axis `{dim}` has {got} entries instead of {want}: an off-by-one slice or range, "
                "or a reduction over the wrong axis?")
    if want and got % want == 0:
        return f"Axis `{dim}` is {got // want}x too long: pieces concatenated along it that belong elsewhere?"
    return f"Axis `{dim}` has {got} entries instead of {want}."


# ---------------------------------------------------------------- values
def value_symptom(got: torch.Tensor, want: torch.Tensor, dims: Sequence[str], atol: float, rtol: float) -> str | None:
    """A sentence naming how ``got`` differs from ``want`` (same shape), or None if no pattern is clear."""
    g, w = got.detach().double().cpu(), want.detach().double().cpu()
    finite = torch.isfinite(g) & torch.isfinite(w)
    if not finite.all() or g.numel() < 2:
        return _region_symptom(g, w, dims, atol, rtol)
    dims = list(dims) if len(dims) == w.dim() else [str(i) for i in range(w.dim())]

    def close(a: torch.Tensor) -> bool:
        return a.shape == w.shape and bool(torch.allclose(g, a, atol=atol, rtol=rtol))

    for check in (_sign, _factor, _offset, _swapped, _shifted, _flipped):
        found = check(g, w, dims, close)
        if found:
            return found
    return _region_symptom(g, w, dims, atol, rtol)


def _sign(g, w, dims, close) -> str | None:
    return "Every value has the opposite sign of the expected one." if close(-w) else None


def _factor(g, w, dims, close) -> str | None:
    norm = float((w * w).sum())
    if norm == 0:
        return None
    c = float((g * w).sum()) / norm
    if abs(c - 1) < 1e-3 or abs(c) < 1e-6 or not close(c * w):
        return None
    return f"Every value is {c:.4g} times the expected one{_factor_reason(c, w.shape, dims)}."


def _factor_reason(c: float, shape: Sequence[int], dims: Sequence[str]) -> str:
    for factor, reason in _FACTORS.items():
        if math.isclose(c, factor, rel_tol=1e-3):
            return f" ({reason})"
    for size, name in zip(shape, dims):
        if size > 1 and math.isclose(abs(c), size, rel_tol=1e-3):
            return f" (the size of axis `{name}`: a sum where a mean is wanted?)"
        if size > 1 and math.isclose(abs(c), 1 / size, rel_tol=1e-3):
            return f" (one over the size of axis `{name}`: a mean where a sum is wanted?)"
    for k in range(2, 4097):
        if math.isclose(abs(c), math.sqrt(k), rel_tol=1e-4):
            return f" (sqrt({k}): a missing 1/sqrt({k}) scale?)"
        if math.isclose(abs(c), 1 / math.sqrt(k), rel_tol=1e-4):
            return f" (1/sqrt({k}): an extra 1/sqrt({k}) scale?)"
        if k <= 64 and math.isclose(abs(c), k, rel_tol=1e-4):
            return f" ({k}: a sum of {k} things where their mean is wanted?)"
        if k <= 64 and math.isclose(abs(c), 1 / k, rel_tol=1e-4):
            return f" (1/{k}: divided by {k} once too often?)"
    return ""


def _offset(g, w, dims, close) -> str | None:
    d = float((g - w).mean())
    if abs(d) < 1e-6 or not close(w + d):
        return None
    return f"Every value is off by the same constant, {d:+.4g}: a term added or subtracted once too often?"


def _swapped(g, w, dims, close) -> str | None:
    if w.dim() >= 2 and w.shape[-1] == w.shape[-2] and close(w.transpose(-1, -2)):
        return (f"It is the transpose of the expected result: axes `{dims[-2]}` and `{dims[-1]}` are swapped "
                "(rows and columns exchanged).")
    return None


def _shifted(g, w, dims, close) -> str | None:
    for a in range(w.dim()):
        n = w.shape[a]
        if n < 3 or torch.allclose(w.narrow(a, 1, n - 1), w.narrow(a, 0, n - 1)):  # a shift would not show
            continue
        inner_g, inner_w = g.narrow(a, 1, n - 1), w.narrow(a, 0, n - 1)
        if torch.allclose(inner_g, inner_w) and not torch.allclose(g.narrow(a, 0, n - 1), inner_w):
            return (f"Along axis `{dims[a]}` your values are shifted by one: your entry i holds the expected "
                    "entry i - 1. An off-by-one index or slice?")
        if torch.allclose(g.narrow(a, 0, n - 1), w.narrow(a, 1, n - 1)):
            return (f"Along axis `{dims[a]}` your values are shifted by one: your entry i holds the expected "
                    "entry i + 1. An off-by-one index or slice?")
    return None


def _flipped(g, w, dims, close) -> str | None:
    for a in range(w.dim()):
        if w.shape[a] > 1 and close(w.flip(a)):
            return f"Your values are reversed along axis `{dims[a]}`."
    return None


def _region_symptom(g: torch.Tensor, w: torch.Tensor, dims: Sequence[str], atol: float, rtol: float) -> str | None:
    wrong = ~torch.isclose(g, w, atol=atol, rtol=rtol, equal_nan=True)
    if not wrong.any():
        return None
    dims = list(dims) if len(dims) == w.dim() else [str(i) for i in range(w.dim())]
    if w.dim() >= 2 and w.shape[-1] == w.shape[-2] and w.shape[-1] > 2:
        n = w.shape[-1]
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        for region, mask in (("above the diagonal (later keys than the query)", upper),
                             ("below the diagonal", upper.T),
                             ("on the diagonal", torch.eye(n, dtype=torch.bool))):
            if not (wrong & ~mask).any():
                return f"Only entries {region} differ from the expected ones."
    for a in range(w.dim()):
        rows = wrong.transpose(0, a).reshape(w.shape[a], -1).any(dim=1)
        bad = rows.nonzero().flatten().tolist()
        if 0 < len(bad) <= max(1, w.shape[a] // 3) and w.shape[a] > 2:
            return f"Only the entries at {dims[a]} = {bad} differ from the expected ones."
    return None


# ---------------------------------------------------------------- asked by the engine before the generic message
_POSITION_AXIS = re.compile(r"(?:^|_)(?:pos|seq|positions?|ctx)(?:$|_|\b)")
_WORDS = {1: "one", 2: "two", 3: "three"}


def is_position_axis(name: str) -> bool:
    """Whether an axis named ``name`` runs over positions: pos, q_pos, k_pos, "pos - 1", seq, seq_len, n_ctx."""
    return bool(_POSITION_AXIS.search(name))


def position_shift(got: torch.Tensor, want: torch.Tensor, dims: Sequence[str], atol: float, rtol: float,
                   largest: int = 3) -> str | None:
    """How far, and which way, ``got`` is ``want`` moved along a position axis (by 1 to ``largest``), judged on
    the positions both have; None if no such shift fits, or if ``want`` looks the same shifted (then a shift
    cannot be seen). ``dims`` names the axes of both (same shape)."""
    if len(dims) != want.dim():
        return None
    g, w = got.detach().cpu().double(), want.detach().cpu().double()

    def close(a: torch.Tensor, b: torch.Tensor) -> bool:
        return bool(torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))

    for axis, name in enumerate(dims):
        n = want.shape[axis] if is_position_axis(name) else 0
        for k in range(1, min(largest, n - 2, n // 2) + 1):  # at least two positions, and k, in common
            both = n - k
            if close(w.narrow(axis, k, both), w.narrow(axis, 0, both)):
                continue
            for later, (mine, theirs) in ((True, (k, 0)), (False, (0, k))):
                if close(g.narrow(axis, mine, both), w.narrow(axis, theirs, both)):
                    return _shift_message(name, k, later, both)
    return None


def _shift_message(name: str, k: int, later: bool, both: int) -> str:
    steps = f"{_WORDS.get(k, k)} position{'s' if k > 1 else ''}"
    yours, theirs = (f"i + {k}", "i") if later else ("i", f"i + {k}")
    return (f"your values are shifted {steps} {'later' if later else 'earlier'} along `{name}`: your entry "
            f"{yours} holds the expected entry {theirs}, at all {both} positions where both exist. "
            f"An index or slice off by {_WORDS.get(k, k)}?")


def size_factor(got: torch.Tensor, want: torch.Tensor, lengths: dict[int, list[str]], atol: float,
                rtol: float) -> str | None:
    """``got`` is N or 1/N times ``want`` (flat, the entries to compare), where N is a key of ``lengths``
    {N: what has that length, e.g. ["the length of `pos`"]}; None if no such N fits."""
    g, w = got.detach().cpu().double().flatten(), want.detach().cpu().double().flatten()
    if not g.numel() or torch.allclose(g, w, atol=atol, rtol=rtol):
        return None
    yours, theirs = ("your value is", "one") if g.numel() == 1 else ("your values are", "ones")
    for n, what in sorted(lengths.items()):
        why = f"{n} is {' or '.join(what)}"
        if torch.allclose(g, n * w, atol=n * atol, rtol=rtol):
            return f"{yours} {n} times the expected {theirs} ({why}): a sum of {n} things where a mean was wanted?"
        if torch.allclose(g, w / n, atol=atol, rtol=rtol):
            return f"{yours} 1/{n} of the expected {theirs} ({why}): a mean where a sum was wanted?"
    return None


_NOT_A_SIZE = re.compile(r"(?:dimension|dim|operand|axis|index|argument|position)\s*$", re.IGNORECASE)


def foreign_size_symptom(message: str, sizes: Iterable[int]) -> str | None:
    """A guess at why code raised ``message`` (an error about sizes or an index) when the check's inputs
    have only the axis lengths ``sizes``: a size in the message that no input has, or a token id the
    model's embedding does not have, is what a notebook variable used in place of an argument gives."""
    if "index out of range in self" in message:
        return ("A guess: an embedding lookup met a token id this model's vocabulary does not have, which is "
                "what tokens made for another model give: a notebook variable (tokens, held_out, rep ...) used "
                "in place of the argument?")
    known = set(sizes)
    found = [int(m.group(1)) for m in re.finditer(r"(?<![\w.])(\d+)(?![\w.])", message)
             if not _NOT_A_SIZE.search(message[:m.start()])]
    foreign = sorted({n for n in found if n >= 2 and n not in known})
    if not foreign:
        return None
    return (f"A guess: the error mentions a size, {foreign[0]}, that none of the check's inputs has (theirs: "
            f"{', '.join(str(n) for n in sorted(n for n in known if n >= 2))}), which is what a notebook variable "
            "used in place of an argument gives (tokens, a cache, losses or a clean score from the notebook).")


def case_sizes(case: dict) -> set[int]:
    """Every axis length a check's inputs have (one less and one more, and products of neighbouring axes),
    with an attention-only model's configured sizes and a cache's tensors' axes: the sizes an error from code
    that uses only its arguments can mention."""
    shapes, sizes = [], set()
    for value in case.values():
        if isinstance(value, torch.Tensor):
            shapes.append(value.shape)
        elif isinstance(value, int) and not isinstance(value, bool):
            sizes.add(value)
        elif hasattr(value, "cache_dict"):
            shapes += [t.shape for t in value.cache_dict.values()]
        cfg = getattr(value, "cfg", None)
        if cfg is not None:
            sizes |= {getattr(cfg, k) for k in ("d_vocab", "n_ctx", "d_model", "d_head", "n_heads", "n_layers")
                      if isinstance(getattr(cfg, k, None), int)}
    for shape in shapes:
        sizes |= {*shape, *(n - 1 for n in shape), *(a * b for a, b in zip(shape, shape[1:]))}
    return sizes | {n + 1 for n in list(sizes)}


def foreign_size_diagnosis(case: dict, output: object, inputs: object = None) -> str | None:
    """A diagnosis (Notebooks 4 and 5): an error that mentions a size none of the inputs has, or a token id the
    model lacks, with the guess of :func:`foreign_size_symptom`."""
    if not (isinstance(output, Raised) and output.type_name in ("RuntimeError", "IndexError")) or not output.message:
        return None
    guess = foreign_size_symptom(output.message, case_sizes(case))
    return f"your code raised {output.type_name}: {output.message.splitlines()[0][:200]}\n{guess}" if guess else None


def unknown_hook_symptom(message: str, names: str, n_layers: int | None = None,
                         pairs: Iterable[tuple[int, int | None]] = ()) -> str:
    """The feedback for a KeyError ``message`` from a hook or cache look-up (shared by Notebooks 2, 4 and 5).

    A name whose layer is past the last of ``n_layers`` gets a guess at why, from the (layer, head) ``pairs``
    the code was asked about (head None where it was given a layer only): layer + 1, or layer and head
    swapped, each only where it fits (the head a swap would read as a layer is one of those asked about);
    any other unknown name gets the ``names`` this notebook uses."""
    found = re.search(r"'([\w.]+)'", message)
    name = found.group(1) if found else message
    layer = re.match(r"blocks\.(\d+)\.", name)
    if n_layers is None or not layer or int(layer.group(1)) < n_layers:
        return f"the model has no hook point and the cache has no entry '{name}'. The names used here are {names}."
    asked, pairs = int(layer.group(1)), list(pairs)
    after_last = any(l == asked - 1 for l, _ in pairs)
    swapped = any(h == asked for _, h in pairs)
    swap = "did you swap layer and head? Every pair here is (layer, head)."
    if after_last:
        why = f" {asked} is layer + 1 (off by one?)" + (f", and also a head's number: {swap}" if swapped else ".")
    elif swapped:
        why = f" {asked} is a head's number: {swap}"
    elif not pairs:
        why = " Loop over range(model.cfg.n_layers), not over the heads or one past the end."
    else:
        why = ""
    return f"there is no layer {asked} ('{name}'); this model has layers 0 … {n_layers - 1}.{why}"


def half_rounded(got: object, want: torch.Tensor, what: str = "value") -> str | None:
    """A float32 result, however few its values, that is all exactly float16 numbers close to the expected ones,
    where the expected ones are not: it was computed in float16 and cast back (even when within tolerance)."""
    if (type(got) is not torch.Tensor or got.dtype != torch.float32 or not got.numel()  # noqa: E721
            or type(want) is not torch.Tensor or got.shape != want.shape or want.dtype != torch.float32):  # noqa: E721
        return None
    got, want = got.detach().cpu(), want.detach().cpu()
    if (want.half().float() == want).all() or not (got.half().float() == got).all():
        return None
    if not torch.allclose(got, want, rtol=2e-2, atol=2e-3):
        return None
    return (f"every {what} is exactly a float16 number and close to the expected one: the computation ran in "
            "float16 (.half() or autocast) and was cast back to float32, losing digits. Keep float32 throughout.")
