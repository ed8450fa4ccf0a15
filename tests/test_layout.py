"""The three houses: the student package imports neither the grader nor the maintainers' tools, and nothing
that ships puts ``tests/`` on ``sys.path``. Read from the syntax trees, so a lazy import inside a function counts."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("induction_course", "autograder", "course_tools")


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package, forbidden", [("induction_course", ("autograder", "course_tools")),
                                                ("autograder", ("course_tools",))])
def test_package_imports_nothing_above_it(package, forbidden):
    offending = {f"{path.relative_to(ROOT)}: {name}" for path in _files(package) for name in _imported(path)
                 if name.split(".")[0] in forbidden}
    assert not offending, f"{package} must not import {forbidden}: {sorted(offending)}"


def test_the_scan_sees_a_forbidden_import(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from autograder.command import run\n    import course_tools.cli\n")
    assert _imported(path) == {"autograder.command", "course_tools.cli"}


def _changes_sys_path(path: Path) -> bool:
    """A call of ``sys.path.insert``/``append``/``extend`` or an assignment to ``sys.path``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        target = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
        targets = node.targets if isinstance(node, ast.Assign) else [target] if target is not None else []
        if any(ast.unparse(t) == "sys.path" for t in targets):
            return True
    return False


def test_the_sys_path_scan_sees_an_insert(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import sys\nsys.path.insert(0, 'tests')\n")
    assert _changes_sys_path(path)


def test_nothing_shipped_reaches_into_tests():
    offending = [str(path.relative_to(ROOT)) for package in SHIPPED for path in _files(package)
                 if _changes_sys_path(path) or "catalogue" in _imported(path)]
    assert not offending, f"shipped code that changes sys.path or imports the catalogue: {offending}"
