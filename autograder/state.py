"""Re-run state: what decided each row, so a re-run regrades only what changed.

``.grading/state.json`` under --out keeps, per (student, notebook), the row, the SHA-256 of the file
and a fingerprint of everything else that decides its grade: the notebook's source, the grader's own
code, the course code its checks load (found by reading their imports) and the limits. A row is
reused when both match and it was graded or failed for a reason of its input (final until the file
changes); the grader's own failures are retried. Its feedback is rewritten when the gradebook's manual
grades or comments for it changed.
"""
from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

from autograder import files
from autograder.settings import GRADER, GRADER_VERSION, Course, Limits

STATE = ".grading/state.json"


JOURNAL = ".grading/rows.jsonl"


def load_state(out: Path) -> dict:
    """The state of --out, or a fresh one (also when it was written by another version of the grader),
    with the rows journaled since it was saved (a run killed before saving loses no finished row)."""
    try:
        state = json.loads(files.read_bytes(out, STATE))
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict) or state.get("version") != GRADER_VERSION:
        state = {"version": GRADER_VERSION, "sources": {}, "rows": {}}
    try:
        journal = files.read_bytes(out, JOURNAL).decode(errors="replace")
    except OSError:
        journal = ""
    for line in journal.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # the last line, torn by a kill while it was written
            continue
        if isinstance(entry, dict) and entry.get("version") == GRADER_VERSION and isinstance(entry.get("row"), dict):
            state["rows"][entry["key"]] = entry["row"]
    return state


def journal_row(out: Path, key: str, row: dict) -> None:
    """Append one finished row to the journal, on disk (fsync) before the next result is taken."""
    files.append_line(out, JOURNAL, json.dumps({"version": GRADER_VERSION, "key": key, "row": row}, sort_keys=True))


def save_state(out: Path, state: dict) -> None:
    """Write the whole state atomically, then empty the journal it now holds."""
    files.write_text(out, STATE, json.dumps(state, indent=1, sort_keys=True))
    files.write_text(out, JOURNAL, "")


def source_digest(course: Course, name: str) -> str:
    return hashlib.sha256(course.notebook(name).read_bytes()).hexdigest()


def _module_path(name: str, package: Path) -> Path | None:
    base = package.parent.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _course_imports(path: Path, package: Path) -> set[str]:
    """Course modules that ``path`` imports (absolute or relative), by reading its source."""
    names, here = set(), ".".join(path.relative_to(package.parent).with_suffix("").parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = here.split(".")[: len(here.split(".")) - node.level + (path.name == "__init__.py")]
            module = ".".join(parts + ([node.module] if node.module else [])) if node.level else node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return {n for n in names if n == package.name or n.startswith(package.name + ".")}


def course_files(modules: Iterable[str], package: Path) -> list[Path]:
    """The course package's files that loading ``modules`` reads, parents' __init__ included."""
    todo, seen = list(modules), set()
    found: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]
        path = _module_path(name, package)
        if path and path not in found:
            found.add(path)
            todo += sorted(_course_imports(path, package))
    return sorted(found)


def package_digest(modules: Iterable[str], package: Path) -> str:
    """Digest of the grader's code and of the course code the notebook's checks load (not the whole package)."""
    h = hashlib.sha256()
    for path in sorted(GRADER.glob("*.py")) + course_files(modules, package):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def fingerprint(source: str, package: str, limits: Limits, sandbox: bool) -> str:
    """What besides the submission decides its grade: grader, notebook source, course package, limits."""
    text = json.dumps([GRADER_VERSION, source, package, asdict(limits), sandbox])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reusable(previous: dict | None, sha: str, fp: str) -> bool:
    """Whether a row from an earlier run still holds: same file, same fingerprint, and not the grader's failure."""
    return bool(previous) and previous["sha256"] == sha and previous["fingerprint"] == fp and (
        previous["status"] == "graded" or previous["kind"] in ("input", "refused"))
