"""A catalogue of students' mistakes and correct alternatives, written independently of the checks.

Each notebook's module (``nb1`` ... ``nb4``) lists :class:`Mistake` and :class:`Correct` entries: code a
student might plausibly write, as a student would write it (never built from the checks' own ``Bug``
functions). ``tests/test_catalogue.py`` asserts that every mistake fails the check a student runs
(the visible one), that its message contains the words that name the mistake or its precise symptom,
and that every correct alternative passes the visible and the hidden checks. :func:`report` gives the
figures that ``course bench`` prints.
"""
from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

NOTEBOOKS = ("nb1", "nb2", "nb3", "nb4", "nb5")
MASTERS = Path(__file__).resolve().parents[2] / "masters"


@functools.cache
def _hidden_calls(notebook: str) -> dict[str, list[dict[str, Any]]]:
    """{check name: [keyword arguments of each hidden call]} read from the master's hidden-test blocks."""
    master = next(MASTERS.glob(f"0{notebook[2:]}_*.py"))
    calls: dict[str, list[dict[str, Any]]] = {}
    for block in master.read_text().split("### BEGIN HIDDEN TESTS")[1:]:
        source = "\n".join(line[2:] if line.startswith("# ") else line
                           for line in block.split("### END HIDDEN TESTS")[0].splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
                calls.setdefault(node.func.attr, []).append(kwargs)
    return calls


def hidden(notebook: str, check: str, index: int = 0) -> dict[str, Any]:
    """The keyword arguments of the master's hidden call ``nbK.<check>(...)`` (its ``index``-th one).

    Hidden-test parameters are read from the masters, never copied into the catalogue."""
    return _hidden_calls(notebook)[check][index]


@dataclass(frozen=True)
class Mistake:
    """A wrong answer. ``expect`` is a fragment of the message that names it; None if the check cannot.
    ``symptom`` is its class of symptom (issue 18's list: "hook left", "float16", "global", ...), or ""."""

    check: Callable[..., None]
    answers: tuple
    kind: str
    expect: str | None
    hidden: dict[str, Any] = field(default_factory=dict)
    symptom: str = ""


@dataclass(frozen=True)
class Correct:
    """A right answer written differently from the reference; it must pass every check."""

    check: Callable[..., None]
    answers: tuple
    kind: str
    hidden: dict[str, Any] = field(default_factory=dict)


def entries(notebook: str) -> tuple[list[Mistake], list[Correct]]:
    """The mistakes and correct alternatives of one notebook (``"nb1"`` ...)."""
    module = importlib.import_module(f"catalogue.{notebook}")
    return list(module.MISTAKES), list(module.CORRECT)


def outcome(mistake: Mistake) -> str:
    """'named', 'generic' (failed with another message) or 'passed' (the visible check let it through)."""
    from induction_course.checks.core import CheckFailed

    try:
        mistake.check(*mistake.answers)
    except CheckFailed as failure:
        return "named" if mistake.expect and mistake.expect in str(failure) else "generic"
    return "passed"


def report() -> dict[str, dict[str, int]]:
    """{notebook: {"mistakes", "named", "generic", "passed", "correct"}} over the whole catalogue."""
    figures = {}
    for notebook in NOTEBOOKS:
        try:
            mistakes, correct = entries(notebook)
        except ModuleNotFoundError:
            continue
        counts = {"mistakes": len(mistakes), "named": 0, "generic": 0, "passed": 0, "correct": len(correct)}
        for mistake in mistakes:
            counts[outcome(mistake)] += 1
        figures[notebook] = counts
    return figures


def by_symptom() -> dict[str, dict[str, int]]:
    """{symptom class: {"mistakes", "named", "generic", "passed"}} over the mistakes that have a class."""
    figures: dict[str, dict[str, int]] = {}
    for notebook in NOTEBOOKS:
        for mistake in entries(notebook)[0]:
            if mistake.symptom:
                counts = figures.setdefault(mistake.symptom, {"mistakes": 0, "named": 0, "generic": 0, "passed": 0})
                counts["mistakes"] += 1
                counts[outcome(mistake)] += 1
    return figures
