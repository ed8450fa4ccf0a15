"""Deciding checks outside the student's interpreter (``autograder.deciding``), without kernels: planning test
cells from their trusted source, judging records, rewriting outputs; and the tricks the sandboxed tests try.

The same decisions, end to end in sandboxes, are in test_grading_notebook1.py.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbgrader.utils import determine_grade

from autograder import deciding, executing, guard, plain, sandbox
from autograder.deciding import Call, PlanError, decide, plan, plan_cell, resolve
from autograder.executing import RECORDS_DROPPED
from autograder.reporting import feedback_notebook
from autograder.settings import Limits
from grading_cases import HOME, TRICKS
from grading_tiny import MASTER, NAME
from induction_course.checks import nb1, record
from induction_course.checks.core import Check, CheckFailed
from course_tools.notebooks import SOLUTIONS, assignments, parse_master

PARAMS = {"seeds": (11, 12), "shapes": ({}, {"pos": 1})}
CELL = f"""# Check: run this cell.
from induction_course.checks import nb1
nb1.check_project(project)
### BEGIN HIDDEN TESTS
nb1.check_project(project, seeds={PARAMS['seeds']}, shapes={PARAMS['shapes']})
### END HIDDEN TESTS"""


def right(x, W, b):
    return torch.einsum("bpm,hmd->bphd", x, W) + b


def no_bias(x, W, b):
    return torch.einsum("bpm,hmd->bphd", x, W)


def helper(x):
    raise ValueError("my own mistake")


def raises(x, W, b):
    return helper(x)


def _record(fn, check=nb1.check_project, **params) -> dict:
    """The display output a graded call makes in the sandbox: the record of ``fn``, as the kernel encodes it."""
    params = {**check.defaults, **params}
    payload = record.encode(check.id, check.collect(fn, **params))
    return nbformat.v4.new_output("display_data", data={record.MIME: payload, "text/plain": "[recorded]"})


def _records(fn) -> list:
    return [_record(fn), _record(fn, **PARAMS)]


def _cell(outputs: list, source: str = CELL, grade_id: str = "check_project") -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": grade_id, "points": 2}
    return cell


def _stdout(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _decided(outputs: list, source: str = CELL) -> tuple[nbformat.NotebookNode, list[str]]:
    cell = _cell(outputs, source)
    plans = plan(nbformat.v4.new_notebook(cells=[cell]))
    return cell, decide([cell], plans, Limits())


def _errors(cell: nbformat.NotebookNode) -> list[str]:
    return [o.evalue for o in cell.outputs if o.output_type == "error"]


# ---------------------------------------------------------------- planning
@pytest.mark.parametrize("name", assignments())
def test_every_test_cell_of_the_course_is_planned(name):
    """Every autograded test cell of the four notebooks is decided outside the kernel: none left to it."""
    nb = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
    plans = plan(nb)  # raises PlanError, with the cell and the reason, on anything it cannot plan
    tests = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if deciding.is_test(c)]
    assert tests and sorted(plans) == sorted(tests), set(tests) - set(plans)
    for grade_id, calls in plans.items():
        for call, check in calls:
            assert check.id == call.label and set(call.params) <= set(check.defaults), (grade_id, call)


def test_a_cell_is_planned_from_its_source_with_literal_parameters():
    calls = plan_cell(CELL.replace("### BEGIN HIDDEN TESTS\n", "").replace("### END HIDDEN TESTS", ""))
    assert calls == [Call("nb1", "check_project", {}, 3), Call("nb1", "check_project", PARAMS, 4)]
    aliased = plan_cell("from induction_course.checks import nb1 as c\nimport os\nc.check_project(f, seeds=(1,))")
    assert aliased == [Call("nb1", "check_project", {"seeds": (1,)}, 3)]
    assert plan_cell(MASTER.split("# %% test=\"check_double\" points=2\n")[1].split("# %%")[0]) is None  # tiny


@pytest.mark.parametrize("source, words", [
    ("from induction_course.checks import nb1\nnb1.check_project(project)\nassert project(1) == 2", "line 3"),
    ("from induction_course.checks import nb1\nnb1.check_project(project, seeds=SEEDS)", "not a Python literal"),
    ("from induction_course.checks import nb1\nnb1.check_project(project, **params)", "**kwargs"),
    ("from induction_course.checks import nb1\nnb1.check_project(*answers)", "*args"),
    ("from induction_course.checks import nb1\nprint(nb1.check_project(project))", "neither an import nor a call"),
    ("from induction_course.checks import nb1\nx = nb1.check_project(project)", "neither an import nor a call"),
    ("if True:\n    from induction_course.checks import nb1\n    nb1.check_project(project)", "line 1"),
    ("from induction_course.checks.nb1 import check_project\ncheck_project(project)", "form the grader does not plan"),
    ("import induction_course.checks.nb1 as nb1\nnb1.check_project(project)", "form the grader does not plan"),
    ("from induction_course.checks import nb1", "calls none"),
    ("from induction_course.checks import nb1\nnb1.check_project(project", "does not parse"),
])
def test_what_cannot_be_planned_is_refused_with_the_reason(source, words):
    with pytest.raises(PlanError, match=words.replace("*", r"\*").replace("(", r"\(")):
        plan_cell(source)


def test_only_the_courses_checks_are_resolved(monkeypatch):
    assert resolve(Call("nb1", "check_project")) is nb1.check_project
    monkeypatch.setattr(nb1, "check_legacy", lambda fn: None, raising=False)
    for call, words in [(Call("nb1", "check_legacy"), "not a Check"), (Call("nb1", "check_nothing"), "does not exist"),
                        (Call("nb1", "check_project", {"seed": 1}), "no parameter"),
                        (Call("nb9", "check_x"), "could not be imported")]:
        with pytest.raises(PlanError, match=words):
            resolve(call)


def test_an_unplannable_course_cell_fails_the_submission_as_the_graders_problem():
    from autograder.settings import SubmissionError
    from autograder.worker import plan as worker_plan

    nb = nbformat.v4.new_notebook(cells=[_cell([], "from induction_course.checks import nb1\nnb1.check_legacy(f)")])
    with pytest.raises(SubmissionError) as info:
        worker_plan(nb)
    assert info.value.kind == "internal" and "cannot decide this notebook's checks" in info.value.reason
    assert "test cell check_project: nb1.check_legacy does not exist" in info.value.reason


# ---------------------------------------------------------------- deciding
def test_a_right_answer_gets_one_success_line_per_call_and_keeps_the_students_output():
    cell, notes = _decided([_stdout("my own print\n"), *_records(right)])
    assert [o.output_type for o in cell.outputs] == ["stream", "stream"] and not notes
    assert cell.outputs[0].text == "my own print\n" and cell.outputs[1].text.count("✓ project matches") == 2
    assert record.MIME not in str(cell.outputs) and determine_grade(cell) == (2, 2)


def test_a_wrong_answer_fails_with_the_checks_own_message():
    cell, notes = _decided(_records(no_bias))
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    assert error.ename == "CheckFailed" and "the bias b is missing" in error.evalue and not notes
    assert error.traceback[0].startswith("\x1b[1;31m✗ ") and determine_grade(cell) == (0, 2)
    assert deciding.verdict_index(cell) == len(cell.outputs) - 1


def test_the_hidden_cases_are_judged_with_the_trusted_parameters():
    visible_only = [_record(right), _record(right)]  # the second record claims the visible parameters
    cell, _ = _decided(visible_only)
    assert "recorded 1 case(s) instead of 4" in _errors(cell)[0] and determine_grade(cell) == (0, 2)


def test_the_students_exception_shows_its_message_then_their_traceback():
    cell, _ = _decided(_records(raises))
    error = cell.outputs[-1]
    shown = "\n".join(error.traceback)
    assert "project raised ValueError: my own mistake" in error.evalue
    assert shown.index("my own mistake") < shown.index("Your code raised") < shown.index("helper")
    nb = nbformat.v4.new_notebook(cells=[cell, _cell([nbformat.v4.new_output(
        "error", ename="NameError", evalue="name 'project' is not defined",
        traceback=["\x1b[0;31mNameError\x1b[0m", "nb1.check_project(project, seeds=(11, 12))"])], grade_id="other")])
    fb, _ = feedback_notebook(nb, {})
    assert "Your code raised" in "\n".join(fb.cells[0].outputs[-1].traceback)  # the grader's verdict, whole
    assert fb.cells[1].outputs[0].traceback == ["NameError: name 'project' is not defined"]  # the kernel's, cut


@pytest.mark.parametrize("outputs, words, note", [
    (lambda: _records(right)[:1], "received no record", "no record from nb1.check_project"),
    (lambda: [], "received no record", "no record from nb1.check_project"),
    (lambda: [*_records(right), _record(right)], "3 records for 2 check call(s)", "1 extra record(s)"),
    (lambda: [_record(right), _record(right, check=nb1.check_attention_scores)],
     "expected the record of nb1.check_project here, but received one of 'nb1.check_attention_scores'",
     "a record of 'nb1.check_attention_scores'"),
    (lambda: [_record(right), nbformat.v4.new_output("display_data", data={record.MIME: {
        "check": "nb1.check_project", "record": '{"pickle": "cos\\nsystem"}', "tensors": ""}})],
     "could not read the record", "an unreadable record"),
    (lambda: [_record(right), nbformat.v4.new_output("display_data", data={record.MIME: "not a record"})],
     "could not read the record", "an unreadable record"),
    # a record of the reference's answers displayed first, then the check's own pushed past the allowance
    (lambda: [*_records(right), _stdout(f"\n[grader: {RECORDS_DROPPED} beyond 8192 KB was dropped]\n")],
     "some were dropped and the cell cannot be decided", "records dropped at the cell's allowance"),
])
def test_missing_extra_foreign_or_malformed_records_fail_the_test_with_a_reason(outputs, words, note):
    cell, notes = _decided(outputs())
    assert words in _errors(cell)[-1] and determine_grade(cell) == (0, 2), _errors(cell)
    assert len(notes) == 1 and notes[0].startswith(f"review: test cell check_project: {note}"), notes


def test_a_record_over_the_size_limit_is_refused():
    cell = _cell(_records(right))
    decide([cell], plan(nbformat.v4.new_notebook(cells=[_cell([])])), Limits(record_kb=1))
    assert "larger than the grader accepts" in _errors(cell)[0] and determine_grade(cell) == (0, 2)


def test_a_judge_that_crashes_on_a_record_fails_the_test_never_the_grader():
    def judge(record, seeds, shapes):
        return record["output"][0]  # a judge that assumes the record's form

    crashing = Check("nb1.check_project", nb1.check_project.collect, judge, nb1.check_project.defaults)
    cell = _cell(_records(right))
    notes = decide([cell], {"check_project": [(Call("nb1", "check_project"), crashing)] * 2}, Limits())
    assert "your answers could not be judged (TypeError" in _errors(cell)[0], _errors(cell)
    assert notes == ["review: test cell check_project: nb1.check_project's judge raised TypeError on its record"]


def test_a_kernel_error_stays_and_fails_the_test():
    name_error = nbformat.v4.new_output("error", ename="NameError", evalue="name 'project' is not defined",
                                        traceback=["NameError"])
    cell, notes = _decided([name_error])
    assert [o.ename for o in cell.outputs] == ["NameError"] and not notes and determine_grade(cell) == (0, 2)
    timeout = nbformat.v4.new_output("error", ename="CellTimeoutError", evalue="ran longer", traceback=[])
    cell, _ = _decided([_records(no_bias)[0], timeout])  # what was recorded before is still judged and shown
    assert [o.get("ename") for o in cell.outputs] == ["CellTimeoutError", "CheckFailed"]


def test_a_number_shown_as_the_cells_result_is_not_partial_credit():
    result = nbformat.v4.new_output("execute_result", data={"text/plain": "0.5"}, execution_count=1)
    cell, _ = _decided([result, *_records(no_bias)])
    assert cell.outputs[0].output_type == "display_data" and determine_grade(cell) == (0, 2)
    cell, _ = _decided([result, *_records(right)])
    assert determine_grade(cell) == (2, 2)


def test_cells_left_to_the_kernel_fail_on_a_record_and_other_cells_lose_theirs():
    tiny = MASTER.split("# %% test=\"check_double\" points=2\n")[1].split("# %%")[0]
    kept = _cell([_stdout("✓ double matches\n")], tiny)
    recorded = _cell([_record(right)], tiny, grade_id="other")
    ordinary = nbformat.v4.new_code_cell("nb1.check_project(project)", outputs=[_record(right)])
    notes = decide([kept, recorded, ordinary], plan(nbformat.v4.new_notebook(cells=[kept, recorded])), Limits())
    assert kept.outputs == [_stdout("✓ double matches\n")] and determine_grade(kept) == (2, 2)
    assert "calls no check the grader can decide" in _errors(recorded)[0] and determine_grade(recorded) == (0, 2)
    assert notes == ["review: test cell other: a record in a test cell that calls no notebook check"]
    assert ordinary.outputs[0].data == {"text/plain": "[recorded]"}


# ---------------------------------------------------------------- the kernel's side
def test_grading_kernels_record_and_plain_nbgrader_judges_in_the_kernel(tmp_path, monkeypatch):
    assert sandbox.RECORD_ENV == guard.RECORD_ENV == record.RECORD_ENV and executing.RECORD_MIME == record.MIME
    args = sandbox.bwrap_args(tmp_path, None, Limits(), Path(deciding.__file__).parent)
    assert any(args[i:i + 3] == ["--setenv", record.RECORD_ENV, "1"] for i in range(len(args)))
    assert sandbox.plain_env()[record.RECORD_ENV] == "1"
    seen = {}
    monkeypatch.setenv(record.RECORD_ENV, "1")
    monkeypatch.setattr(plain.subprocess, "run",
                        lambda cmd, **kw: seen.update(kw["env"]) or subprocess.CompletedProcess(cmd, 0, "", ""))
    plain._nbgrader(["autograde", NAME], tmp_path)
    assert seen and record.RECORD_ENV not in seen


def test_the_guard_reloads_the_checks_and_the_record_mode_before_each_test_cell(monkeypatch):
    saved = {m: mod for m, mod in sys.modules.items() if m.startswith("induction_course")}
    monkeypatch.setitem(guard._STATE, "record", "1")
    monkeypatch.setenv(record.RECORD_ENV, "0")
    try:
        guard.fresh()
        assert not [m for m in sys.modules if m.startswith("induction_course")]
        import os
        assert os.environ[record.RECORD_ENV] == "1"
    finally:
        sys.modules.update(saved)


@pytest.mark.parametrize("trick", HOME)
def test_the_tricks_pass_a_check_judged_in_the_students_own_kernel(trick):
    """So the sandboxed tests that give them 0 test something real: in a notebook at home each trick passes."""
    cell = f"import torch\n{TRICKS[trick]}\nfrom induction_course.checks import nb1\nnb1.check_project(project)\n"
    env = {k: v for k, v in __import__("os").environ.items() if k != record.RECORD_ENV}
    proc = subprocess.run([sys.executable, "-c", cell], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "✓ project matches" in proc.stdout, proc.stderr[-2000:]
    with pytest.raises(CheckFailed, match="bias b is missing"):  # while the plain wrong function fails
        nb1.check_project(no_bias)


def test_the_parsed_tiny_master_calls_no_notebook_check():
    nb = parse_master(MASTER, NAME)
    assert plan(nb) == {}
