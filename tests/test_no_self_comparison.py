"""No test passes a reference to the check built on it: such a test cannot fail.

A check compares the student's function with the package's reference, so the reference always passes it. What
shows a check accepts right answers is a right answer written apart from the reference: the catalogue's
``Correct`` entries (tests/catalogue/), each run on the visible and the hidden cases by tests/test_catalogue.py.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

from catalogue import NOTEBOOKS, entries

TESTS = Path(__file__).resolve().parent


def _checks(notebook: str) -> dict[str, object]:
    module = importlib.import_module(f"induction_course.checks.{notebook}")
    return {name: value for name, value in vars(module).items() if name.startswith("check_") and callable(value)}


def _name(check: object) -> str:
    return (getattr(check, "id", None) or check.__name__).rsplit(".", 1)[-1]


def is_reference_of(value: object, check_name: str) -> bool:
    """``value`` is the course package's function that ``check_name`` (``check_X``) compares answers with."""
    module = getattr(value, "__module__", "") or ""
    return (callable(value) and module.startswith("induction_course.")
            and not module.startswith("induction_course.checks") and getattr(value, "__name__", None) == check_name.removeprefix("check_"))


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_check_of_a_function_has_a_correct_answer_written_apart(notebook):
    """Each check but the multiple-choice ones (``check_*answer*``, asserted right and wrong in the science
    tests) has a Correct entry that is run on the hidden cases too."""
    _, correct = entries(notebook)
    with_hidden = {_name(c.check) for c in correct if c.hidden}
    missing = sorted(name for name in _checks(notebook) if "answer" not in name and name not in with_hidden
                     and name not in {_name(c.check) for c in correct})
    assert not missing, f"no correct alternative in tests/catalogue/{notebook}.py for {missing}"
    assert with_hidden, f"no correct alternative of {notebook} is run on the hidden cases"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_no_correct_answer_is_the_reference(notebook):
    _, correct = entries(notebook)
    same = [(_name(c.check), c.kind) for c in correct
            if any(is_reference_of(inspect.unwrap(a), _name(c.check)) for a in c.answers)]
    assert not same, f"these 'correct alternatives' are the reference itself: {same}"


def _resolve(node: ast.AST, module: types.ModuleType) -> object:
    if isinstance(node, ast.Name):
        return vars(module).get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, module)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def self_comparisons(module: types.ModuleType, source: str) -> list[str]:
    """Calls ``check_X(X, ...)``, and tuples holding just ``check_X`` and ``X`` (a parametrized case), where ``X``
    is the reference the check is built on."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args:
            pairs = [(node.func, node.args[0])]
        elif isinstance(node, ast.Tuple):
            callables = [e for e in node.elts if callable(_resolve(e, module))]
            pairs = [(a, b) for a in callables for b in callables if a is not b] if len(callables) == 2 else []
        else:
            continue
        for check_node, answer_node in pairs:
            check, answer = _resolve(check_node, module), _resolve(answer_node, module)
            name = _name(check) if check is not None and (hasattr(check, "id") or hasattr(check, "__name__")) else ""
            if name.startswith("check_") and is_reference_of(inspect.unwrap(answer) if answer else None, name):
                found.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
    return found


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_nb*_checks.py")), ids=lambda p: p.name)
def test_no_test_passes_a_reference_to_its_own_check(path):
    module = importlib.import_module(path.stem)
    assert not self_comparisons(module, path.read_text())


def test_the_scan_finds_a_self_comparison():
    """The scan above can fail: it finds the two forms it looks for in a module written to hold them."""
    module = types.ModuleType("fake")
    exec("from induction_course.checks import nb3\nfrom induction_course import circuits as ref\n"
         "def per_token_loss(logits, tokens):\n    return ref.per_token_loss(logits, tokens)\n", vars(module))
    source = ("nb3.check_per_token_loss(ref.per_token_loss, seeds=(0,))\n"
              "CASES = [(nb3.check_icl_score, ref.icl_score)]\n"
              "nb3.check_per_token_loss(per_token_loss)\n")  # written here: not the reference object
    assert [line.split(":")[0] for line in self_comparisons(module, source)] == ["line 1", "line 2"]
