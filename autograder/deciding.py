"""Deciding the graded checks outside the student's interpreter (trusted code, between executing and scoring).

In ``course grade`` the kernel runs with ``INDUCTION_COURSE_RECORD=1`` (``sandbox.RECORD_ENV``): a graded
call ``nbK.check_x(<answers>, <params>)`` only *collects* (runs the student's code on the check's seeded
inputs) and displays a record of what came back, as JSON plus safetensors, formats that cannot run code
when read. Then, in the worker process:

1. :func:`plan`, before anything runs, reads each autograded test cell's trusted source (the one nbgrader
   restored from the gradebook, hidden tests included; never anything the kernel sent) with ``ast``: the
   imports ``from induction_course.checks import nbK [as alias]`` and the top-level calls
   ``alias.check_x(...)``, their keyword parameters by ``ast.literal_eval``, each call resolved to the
   course's :class:`~induction_course.checks.core.Check`. A cell it cannot plan is the course's problem:
   the submission fails with the reason (kind ``internal``, so it is retried once the course is fixed).
2. :func:`decide`, after execution, takes the records out of each test cell's outputs, decodes them
   (bounded, no pickle), matches them in order to the planned calls by check id, judges each with the
   course's check module here, and rewrites the outputs: the student's own output, then one success line
   per call (stdout), or the first failure as an error ``CheckFailed`` whose traceback is what a notebook
   shows (the message, then the student's own traceback if their code raised). An error of the kernel in
   the cell (a missing function, a timeout) stays and fails the test. nbgrader then scores as usual.

A test cell that uses no notebook's checks (an instructor's own ``assert``, the tests' tiny assignment)
is left as the kernel ran it, judged as nbgrader judges it; a record found in it fails it, since nothing
would judge it.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import io
import re
from dataclasses import dataclass, field
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder.executing import RECORD_MIME, RECORDS_DROPPED
from autograder.restoring import is_test, meta
from autograder.settings import Limits

CHECKS = "induction_course.checks"
_NOTEBOOK_MODULE = re.compile(r"nb\d+")
MARK = "autograder"  # cell metadata the grader writes: the calls it decided, the index of its verdict output


class PlanError(Exception):
    """A test cell the grader cannot decide outside the kernel: a problem of the course, not the student's."""


@dataclass(frozen=True)
class Call:
    """One planned call ``nbK.check_x(...)`` of a test cell: the notebook module, the check, literal params."""

    module: str  # "nb1"
    name: str  # "check_project"
    params: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name}"


# ---------------------------------------------------------------- planning (trusted source only)
def _aliases(tree: ast.Module) -> dict[str, str]:
    """{name bound in the cell: notebook module} for every import of a notebook's checks, at any depth.

    Imports that bind a check module or a check under another form are refused, so no use of the
    checks goes unplanned.
    """
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == CHECKS and not node.level:
            for name in node.names:
                if _NOTEBOOK_MODULE.fullmatch(name.name):
                    aliases[name.asname or name.name] = name.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CHECKS + ".nb") or isinstance(
                node, ast.Import) and any(a.name.startswith(CHECKS + ".nb") for a in node.names):
            raise PlanError(f"line {node.lineno} imports a notebook's checks in a form the grader does not plan; "
                            f"write `from {CHECKS} import nbK` and call `nbK.check_x(...)`")
    return aliases


def _planned_call(node: ast.stmt, aliases: dict[str, str], source: str) -> Call:
    call = node.value if isinstance(node, ast.Expr) else None
    func = getattr(call, "func", None)
    if not (isinstance(call, ast.Call) and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id in aliases):
        text = "".join((ast.get_source_segment(source, node) or "").splitlines()[:1])[:80]
        raise PlanError(f"line {node.lineno} (`{text}`) is neither an import nor a call nbK.check_x(...), so its "
                        "verdict could not be decided outside the student's interpreter")
    label = f"{aliases[func.value.id]}.{func.attr}"
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        raise PlanError(f"line {node.lineno}: {label} is called with *args or **kwargs; spell its parameters out")
    params = {}
    for keyword in call.keywords:
        try:
            params[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise PlanError(f"line {node.lineno}: the parameter {keyword.arg}= of {label} is not a Python literal "
                            "(the grader reads parameters from the source, never from the kernel)") from None
    return Call(aliases[func.value.id], func.attr, params, node.lineno)


def plan_cell(source: str) -> list[Call] | None:
    """The check calls of a test cell's source, in order; None if it uses no notebook's checks.

    Only imports and top-level calls ``alias.check_x(<answers>, <literal params>)``
    are allowed beside each other; anything else raises PlanError.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise PlanError(f"its source does not parse ({e.msg}, line {e.lineno})") from None
    aliases = _aliases(tree)
    if not aliases:
        return None
    calls = [_planned_call(node, aliases, source) for node in tree.body
             if not isinstance(node, (ast.Import, ast.ImportFrom))]
    if not calls:
        raise PlanError("it imports a notebook's checks but calls none")
    return calls


def resolve(call: Call) -> Any:
    """The course's Check that ``call`` names; PlanError if there is none or a parameter is unknown."""
    from induction_course.checks.core import Check

    try:
        module = importlib.import_module(f"{CHECKS}.{call.module}")
    except Exception as e:  # the course's own module is broken: say so, do not grade in the kernel instead
        raise PlanError(f"{CHECKS}.{call.module} could not be imported ({type(e).__name__}: {e})") from None
    check = getattr(module, call.name, None)
    if not isinstance(check, Check):
        what = "does not exist" if check is None else f"is a {type(check).__name__}, not a Check (collect + judge)"
        raise PlanError(f"{call.label} {what}, so the grader cannot decide it outside the student's interpreter; "
                        f"convert it in induction_course/checks/{call.module}.py")
    unknown = sorted(set(call.params) - set(check.defaults))
    if unknown:
        raise PlanError(f"line {call.line}: {call.label} has no parameter(s) {', '.join(unknown)}")
    return check


Plan = dict[str, list[tuple[Call, Any]]]  # grade id -> its calls, each with the course's Check


def plan(nb: NotebookNode) -> Plan:
    """Every autograded test cell that uses a notebook's checks, planned and resolved (trusted source only)."""
    plans: Plan = {}
    for cell in nb.cells:
        if not is_test(cell):
            continue
        grade_id = meta(cell)["grade_id"]
        try:
            calls = plan_cell(cell.source)
            if calls is not None:
                plans[grade_id] = [(call, resolve(call)) for call in calls]
        except PlanError as e:
            raise PlanError(f"test cell {grade_id}: {e}") from None
    return plans


# ---------------------------------------------------------------- deciding (records from the kernel)
def _failed(message: str, student_traceback: str = "") -> Any:
    from induction_course.checks.core import CheckFailed

    return CheckFailed(message, student_traceback)


class _Verdict(Exception):
    """A test that fails: the CheckFailed the student sees, and a note for the instructor ("" for a wrong answer)."""

    def __init__(self, failure: Any, note: str = ""):
        super().__init__(str(failure))
        self.failure, self.note = failure, note


def _refused(message: str, note: str) -> _Verdict:
    return _Verdict(_failed(message), note)


def _judge(call: Call, check: Any, payload: Any, max_bytes: int) -> str:
    """The success line of one record, judged by the course's check; raises _Verdict when the test fails."""
    from induction_course.checks.core import CheckFailed
    from induction_course.checks.record import decode

    size = sum(len(v) for v in payload.values() if isinstance(v, str)) if isinstance(payload, dict) else 0
    if size > max_bytes:
        raise _refused(f"{call.label}: the record of your answers is larger than the grader accepts ({size >> 10} KB, "
                       f"at most {max_bytes >> 10} KB): return answers of the expected size.",
                       f"an oversized record for {call.label}")
    try:
        name, record = decode(payload, max_bytes)  # no parameters travel: the plan's are the master's
    except ValueError as e:
        raise _refused(f"{call.label}: the grader could not read the record of your answers ({e}). Run the test "
                       "cell as it is.", f"an unreadable record for {call.label}") from None
    if name != check.id:
        raise _refused(f"The grader expected the record of {check.id} here, but received one of {name[:80]!r}: "
                       "records come only from the checks this cell calls.",
                       f"a record of {name[:80]!r} where {check.id}'s was due")
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return str(check.judge(record, **{**check.defaults, **call.params}))
    except CheckFailed as failure:
        raise _Verdict(failure) from None
    except Exception as e:  # the record is not what the check collects: the student's answer, never the grader's error
        raise _refused(f"{call.label}: your answers could not be judged ({type(e).__name__}: {str(e)[:200]}); they "
                       "are not in the form this check collects. Run the test cell as it is.",
                       f"{call.label}'s judge raised {type(e).__name__} on its record") from None


def _verdict(planned: list[tuple[Call, Any]], records: list[Any], crashed: bool, dropped: bool,
             max_bytes: int, records_dropped: bool = False) -> tuple[list[str], _Verdict | None]:
    """The success lines of the calls judged, in order, and the first failure (None when the test passes)."""
    lines: list[str] = []
    try:
        if records_dropped:  # a record displayed before the checks' own can push theirs out: decide nothing
            raise _refused("This cell displayed more records of answers than the grader accepts, so some were "
                           "dropped and the cell cannot be decided. Records come only from the checks themselves: "
                           "do not display records of your own.", "records dropped at the cell's allowance")
        for i, (call, check) in enumerate(planned):
            if i < len(records):
                lines.append(_judge(call, check, records[i], max_bytes))
            elif crashed:  # the kernel's own error says why the cell stopped
                break
            else:
                why = " This cell's output was over the grader's limit: print less." if dropped else ""
                raise _refused(f"{call.label}: the grader received no record of your answers from this check, so it "
                               f"was not decided.{why} Run the test cell as it is: do not switch checks off, replace "
                               "them, or change the environment they run in.", f"no record from {call.label}")
        if len(records) > len(planned) and not crashed:
            raise _refused(f"This cell handed the grader {len(records)} records for {len(planned)} check call(s). "
                           "Records come only from the checks themselves: do not display records of your own.",
                           f"{len(records) - len(planned)} extra record(s)")
    except _Verdict as verdict:
        return lines, verdict
    return lines, None


def _error(failure: Any) -> NotebookNode:
    return nbformat.v4.new_output("error", ename="CheckFailed", evalue=str(failure),
                                  traceback=[str(line) for line in failure._render_traceback_()])


def _split(cell: NotebookNode) -> tuple[list[Any], list[NotebookNode]]:
    """The cell's record payloads, in order, and its other outputs."""
    records, others = [], []
    for out in cell.get("outputs", []):
        data = out.get("data")
        if isinstance(data, dict) and RECORD_MIME in data:
            records.append(data[RECORD_MIME])
        else:
            others.append(out)
    return records, others


def decide_cell(cell: NotebookNode, planned: list[tuple[Call, Any]] | None, max_bytes: int) -> str:
    """Judge one executed test cell's records and rewrite its outputs; returns a note for the instructor or ""."""
    records, outputs = _split(cell)
    if planned is None:  # judged in the kernel, as nbgrader does; a record here would be judged by nothing
        if records:
            cell.outputs = outputs + [_error(_failed(
                "This test cell produced a record of answers but calls no check the grader can decide, so it "
                "cannot pass. Tell your instructor."))]
            return "a record in a test cell that calls no notebook check"
        return ""
    # nbgrader reads a number shown as the cell's result as partial credit: here only the verdict counts
    outputs = [nbformat.v4.new_output("display_data", data=o.get("data", {}), metadata=o.get("metadata", {}))
               if o.get("output_type") == "execute_result" else o for o in outputs]
    crashed = any(o.get("output_type") == "error" for o in outputs)
    texts = [str(o.get("text", "")) for o in outputs]
    dropped = any("[grader: output beyond" in t for t in texts)
    records_dropped = any(f"[grader: {RECORDS_DROPPED} beyond" in t for t in texts)
    lines, verdict = _verdict(planned, records, crashed, dropped, max_bytes, records_dropped)
    if lines:
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n"))
    if verdict is not None:
        outputs.append(_error(verdict.failure))
    cell.outputs = outputs
    cell.metadata[MARK] = {"decided": [call.label for call, _ in planned],
                           "verdict": len(outputs) - 1 if verdict is not None else None}
    return verdict.note if verdict is not None else ""


def _strip_records(cell: NotebookNode) -> None:
    """Drop record payloads from an ordinary cell (a student's own check call): the text beside them stays."""
    kept = []
    for out in cell.get("outputs", []):
        data = out.get("data")
        if isinstance(data, dict) and RECORD_MIME in data:
            data.pop(RECORD_MIME)
            if not data:
                continue
        kept.append(out)
    cell.outputs = kept


def decide(cells: list[NotebookNode], plans: Plan, limits: Limits) -> list[str]:
    """Decide every executed test cell with its plan (see the module's docstring); returns notes for review."""
    notes = []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        if not is_test(cell):
            _strip_records(cell)
            continue
        grade_id = meta(cell)["grade_id"]
        cell.metadata.pop(MARK, None)  # only this stage writes it
        note = decide_cell(cell, plans.get(grade_id), limits.record_kb * 1024)
        if note:
            notes.append(f"review: test cell {grade_id}: {note}")
    return notes


def verdict_index(cell: NotebookNode) -> int | None:
    """Index of the output the grader wrote as its verdict in a decided cell (None if there is none)."""
    mark = cell.get("metadata", {}).get(MARK)
    index = mark.get("verdict") if isinstance(mark, dict) else None
    return index if isinstance(index, int) else None
