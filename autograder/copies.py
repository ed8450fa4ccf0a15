"""Review notes for a student's function that is a copy of a reference, verbatim or renamed.

The references are every function of the course package (``induction_course``) and every solution of the
masters (``masters/``). Two functions are the same when their syntax trees are, after dropping docstrings
and annotations and numbering every name (variables, arguments, the function's own) in order of first use:
renaming, reformatting and comments change nothing. Functions of fewer than ``MIN_NODES`` nodes are not
compared, since a one-line answer written from scratch often is the reference.
"""
from __future__ import annotations

import ast
import copy
import functools
import re
from pathlib import Path

from nbformat import NotebookNode

from autograder.restoring import is_test

MIN_NODES = 12  # syntax-tree nodes below which a function's shape says nothing about where it came from
_MARKER = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$", re.M)


class _Numbered(ast.NodeTransformer):
    """Names numbered in order of first use; docstrings and annotations dropped."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        return self.names.setdefault(name, f"n{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Name(id=self._name(node.id), ctx=node.ctx)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return ast.arg(arg=self._name(node.arg), annotation=None)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._name(node.name)
        node.returns, node.decorator_list = None, []
        body = node.body[1:] if node.body and _is_docstring(node.body[0]) else node.body
        node.body = body or [ast.Pass()]
        return self.generic_visit(node)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def shape(fn: ast.FunctionDef) -> str | None:
    """The function's normalised syntax tree as text, or None when it is too small to tell anything."""
    tree = _Numbered().visit(copy.deepcopy(fn))
    if sum(1 for _ in ast.walk(tree)) < MIN_NODES:
        return None
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _functions(source: str) -> list[ast.FunctionDef]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]


@functools.lru_cache(maxsize=1)
def reference_shapes() -> dict[str, str]:
    """shape -> where the reference is written (``induction_course.attention.project``, ``master 01_attention``)."""
    import induction_course
    from induction_course.repository import MASTERS

    package = Path(induction_course.__file__).resolve().parent
    shapes: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for fn in _functions(path.read_text()):
            shapes.setdefault(shape(fn) or "", f"{module}.{fn.name}")
    for path in sorted(MASTERS.glob("[0-9][0-9]_*.py")):
        for cell in _MARKER.sub("", path.read_text()).split("\n# %%"):
            for fn in _functions(cell.split("\n", 1)[-1]):
                shapes.setdefault(shape(fn) or "", f"the solution of {fn.name} in master {path.stem}")
    shapes.pop("", None)
    return shapes


def copy_notes(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """``review:`` notes for the student's functions whose shape is a reference's."""
    given = {c.source for c in release.cells}
    known = reference_shapes()
    notes = []
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code" or is_test(cell) or cell.source in given:
            continue
        for fn in _functions(cell.source):
            where = known.get(shape(fn) or "")
            if where:
                notes.append(f"review: cell {number} defines {fn.name}, a copy of {where} (the same syntax tree "
                             "up to names)")
    return notes
