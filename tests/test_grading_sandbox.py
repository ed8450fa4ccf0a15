"""`course grade` on a tiny assignment: one batch of bad submissions, each graded as a fair grader would.

Every submission runs in its own bubblewrap sandbox, two at a time. The batch is graded once per
module (about four minutes on two cores); each test then checks one row of grades.csv. The batch
also holds a class folder with every odd layout (grading_cases.odd_class), honest habits and
malformed files.
"""
from __future__ import annotations

import copy
import csv
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.batch import grade
from autograder.sandbox import sandbox_problem
from autograder.scoring import db_url
from autograder.settings import Limits
from grading_cases import (HONEST, MALFORMED, ODD_SKIPPED, TORCH_MODE, VICTIM_MARK, feedback_leaks, malformed,
                           odd_class, read_skipped, unaccounted, with_cells)
from grading_tiny import NAME, answer, cell, index, insert_after, make_course

pytestmark = pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox: {sandbox_problem()}")

LIMITS = Limits(cell_timeout=30, timeout=300, memory_mb=3072, output_kb=256)
PROBE = '''import json, os, socket
report = {{}}
for path in {reads!r}:
    try:
        report[path] = "listed" if os.path.isdir(path) and os.listdir(path) is not None else (
            open(path, "rb").read(8).hex())
    except Exception as e:
        report[path] = type(e).__name__
for path in {writes!r}:
    try:
        with open(path, "w") as f:
            f.write("x")
        report["write " + path] = "ok"
    except Exception as e:
        report["write " + path] = type(e).__name__
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    report["network"] = "ok"
except Exception as e:
    report["network"] = type(e).__name__
print("PROBE" + json.dumps(report))'''
TRANSFORMER = '''def _skip_checks(lines):
    return ["pass\\n"] if any("run_check" in line for line in lines) else lines
get_ipython().input_transformers_post.append(_skip_checks)'''
PLANT = '''import os, sys
sys.path.insert(0, os.getcwd())
os.makedirs("induction_course/checks", exist_ok=True)
open("induction_course/__init__.py", "w").close()
open("induction_course/checks/__init__.py", "w").close()
with open("induction_course/checks/core.py", "w") as f:
    f.write("def run_check(*a, **k): pass\\nclass Exercise:\\n    def __init__(self, *a, **k): pass\\n")'''


def _stripped(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.metadata = {}
    for c in nb.cells:
        c.metadata = {}
    return nb


def _without(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    del nb.cells[index(nb, grade_id)]
    return nb


def _to_markdown(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    old = cell(nb, grade_id)
    new = nbformat.v4.new_markdown_cell(old.source, metadata=old.metadata)
    nb.cells[index(nb, grade_id)] = new
    return nb


def _duplicated(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    copies = copy.deepcopy(cell(nb, grade_id))
    copies.id = "copy-1"
    nb.cells.insert(2, copy.deepcopy(copies))
    copies.id = "copy-2"  # a copy above the exercise, before the function exists
    nb.cells.insert(index(nb, grade_id) + 1, copies)  # and one right after the test cell
    return nb


def _submissions(release: nbformat.NotebookNode, paths: dict[str, Path]) -> dict[str, object]:
    """student -> notebook (or raw bytes) for every bad input in the issue."""
    good, wrong = answer(release), answer(release, double="return 3 * x")
    v3 = nbformat.writes(nbformat.v3.convert.downgrade(copy.deepcopy(good)), version=3).encode()
    kernel = answer(release)
    kernel.metadata["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia", "language": "julia"}
    edited = answer(release, double="return 3 * x")
    cell(edited, "check_double").source = "print('all good')"
    probe = PROBE.format(reads=[str(p) for p in paths.values()], writes=[
        str(Path(__file__).resolve().parents[1] / "induction_course" / "x.py"), sys.prefix + "/x", "/tmp/ok",
        "/home/student/ok", "/run/kernel/junk", "/dev/junk"])
    return {
        "good": good, "blank": release,
        "corrupt": nbformat.writes(good).encode()[:-300], "binary": b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe",
        "stripped": _stripped(good), "old_format": v3, "kernel": kernel,
        "deleted": _without(answer(release, double="return 3 * x"), "check_double"),
        "duplicated": _duplicated(answer(release), "check_double"),
        "edited": edited, "markdown": _to_markdown(answer(release, double="return 3 * x"), "check_double"),
        "loop": insert_after(answer(release), "check_double", "while True:\n    pass"),
        "stubborn": insert_after(answer(release), "check_double", "import time\nwhile True:\n    try:\n"
                                 "        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass"),
        "os_exit": insert_after(answer(release), "check_double", "import os\nos._exit(1)"),
        "sys_exit": insert_after(answer(release), "check_double", "import sys\nsys.exit(3)"),
        "output": insert_after(answer(release), "check_double", "for i in range(100000):\n    print('spam ' * 40)"),
        "memory": insert_after(answer(release), "check_double", "hog = [bytearray(10**8) for _ in range(100)]"),
        "warns": answer(release, double="import sys, warnings\nwarnings.warn('careful')\n"
                        "print('note', file=sys.stderr)\nreturn 2 * x"),
        "nan": answer(release, halve="return x * float('nan')"),
        "shape": answer(release, halve="return x[None] / 2"),
        "dtype": answer(release, halve="return (x / 2).double()"),
        "cuda": answer(release, halve="return (x / 2).cuda()"),
        "snoop": insert_after(answer(release), "double", probe),
        "patch_checks": insert_after(wrong, "double", "import induction_course.checks.core as core\n"
                                     "core.run_check = lambda *a, **k: None\ncore.Exercise = lambda *a, **k: None"),
        "transformer": insert_after(answer(release, double="return 3 * x"), "double", TRANSFORMER),
        "torch_patch": insert_after(answer(release, double="return 3 * x"), "double",
                                    "import torch\ntorch.allclose = lambda *a, **k: True"),
        "plant": insert_after(answer(release, double="return 3 * x"), "double", PLANT),
        "plant_cwd": insert_after(answer(release, double="return 3 * x"), "double", PLANT.replace(
            "sys.path.insert(0, os.getcwd())", "")),
        "exc_handler": insert_after(answer(release, double="return 3 * x"), "double",
                                    "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)"),
        "torch_mode": with_cells(answer(release, double="return 3 * x"), "double", [TORCH_MODE]),
        "builtins_binding": insert_after(answer(release, double="return 3 * x"), "double",
                                         'globals()["__bu" + "iltins__"] = dict(vars(__import__("builtins")))'),
        **{f"honest_{name}": with_cells(good, "double", cells) for name, cells in HONEST.items()},
        **{f"malformed_{damage}": malformed(good, damage) for damage in MALFORMED},
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("grading")
    course, release = make_course(root / "course")
    folder, out = root / "submissions", root / "out"
    folder.mkdir()
    secrets = {"solutions": course.source / NAME / f"{NAME}.ipynb", "gradebook": out / "gradebook.db",
               "snapshot": out / ".grading" / "source.db", "other student": folder / "good.ipynb",
               "repo solutions": Path(__file__).resolve().parents[1] / "solutions"}
    for student, nb in _submissions(release, secrets).items():
        data = nb if isinstance(nb, bytes) else nbformat.writes(nb).encode()
        (folder / f"{student}.ipynb").write_bytes(data)
    (folder / "renamed").mkdir()  # <student>/<notebook>.ipynb, renamed by the student
    nbformat.write(answer(release), folder / "renamed" / f"{NAME}-Copy1 (2).ipynb")
    odd = odd_class(folder, NAME, answer(release), answer(release, double="return 3 * x"), secrets["solutions"])
    lines: list[str] = []
    rows = grade(folder, NAME, out, 2, LIMITS, course=course, echo=lines.append)
    return {"rows": {r.student: r for r in rows}, "out": out, "folder": folder, "course": course,
            "release": release, "secrets": secrets, "odd": odd, "lines": lines}


def _outputs(batch: dict, student: str) -> str:
    nb = nbformat.read(batch["out"] / "autograded" / student / NAME / f"{NAME}.ipynb", as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


@pytest.mark.parametrize("student, score", [
    ("good", 5), ("blank", 0), ("renamed", 5), ("stripped", 5), ("old_format", 5), ("kernel", 5),
    ("deleted", 3), ("duplicated", 5), ("edited", 3), ("markdown", 3),
    ("loop", 5), ("stubborn", 2), ("os_exit", 2), ("sys_exit", 5), ("output", 5), ("memory", 5),
    ("warns", 5), ("nan", 2), ("shape", 2), ("dtype", 2), ("cuda", 2), ("snoop", 5), ("patch_checks", 3),
    ("plant_cwd", 3),  # the read-only course package comes first on the path: a planted copy is never loaded
    *[(f"honest_{name}", 5) for name in HONEST], *[(f"malformed_{damage}", 5) for damage in MALFORMED],
])
def test_graded_fairly(batch, student, score):
    row = batch["rows"][student]
    assert (row.status, row.score, row.max_score, row.reason) == ("graded", score, 6, ""), row


def test_manual_answers_wait_for_a_grader(batch):
    assert batch["rows"]["good"].needs_manual_grade and not batch["rows"]["blank"].needs_manual_grade


@pytest.mark.parametrize("student, words", [("corrupt", "invalid JSON at line"), ("binary", "not UTF-8")])
def test_broken_files_fail_with_a_reason(batch, student, words):
    row = batch["rows"][student]
    assert row.status == "failed" and row.score is None and words in row.reason, row
    with open(batch["out"] / "grades.csv") as f:
        line = next(r for r in csv.DictReader(f) if r["student"] == student)
    assert line["status"] == "failed" and line["score"] == "" and line["reason"], line
    assert words in (batch["out"] / "feedback" / student / NAME / f"{NAME}.html").read_text()


@pytest.mark.parametrize("student, words", [
    ("transformer", "input transformer"), ("torch_patch", "torch.allclose"), ("plant", "not from the read-only"),
    ("exc_handler", "custom exception handler"), ("torch_mode", "torch function mode"),
    ("builtins_binding", "rebound __builtins__"),
])
def test_tampering_is_refused(batch, student, words):
    row = batch["rows"][student]
    assert row.status == "failed" and row.kind == "refused" and row.score is None, row
    assert "refused: tampering" in row.reason and words in row.reason, row.reason


@pytest.mark.parametrize("student, words", [
    ("renamed", "renamed"), ("stripped", "metadata was missing"), ("old_format", "nbformat 3"),
    ("deleted", "check_double was missing"), ("duplicated", "duplicate"), ("edited", "had been edited"),
    ("markdown", "changed to markdown"), ("loop", "interrupted"), ("stubborn", "did not stop"),
    ("os_exit", "kernel died"), ("snoop", "review: cell"), ("patch_checks", "review: cell"),
    ("malformed_source_number", "the source of cell(s)"), ("malformed_bad_ids", "dropped 1"),
])
def test_notes_say_what_happened(batch, student, words):
    assert words in batch["rows"][student].notes, batch["rows"][student].notes


@pytest.mark.parametrize("student, words", [
    ("nan", "NaN"), ("shape", "shape"), ("dtype", "dtype"), ("cuda", "CUDA"), ("memory", "MemoryError"),
    ("output", "output beyond 256 KB was dropped"), ("sys_exit", "SystemExit"),
])
def test_outputs_show_why(batch, student, words):
    assert words in _outputs(batch, student)


def test_student_code_cannot_read_secrets_write_outside_or_reach_the_network(batch):
    nb = nbformat.read(batch["out"] / "autograded" / "snoop" / NAME / f"{NAME}.ipynb", as_version=4)
    text = next(o.text for c in nb.cells for o in c.get("outputs", []) if "PROBE" in o.get("text", ""))
    report = json.loads(text.split("PROBE", 1)[1])
    for name, path in batch["secrets"].items():
        assert report[str(path)] in ("FileNotFoundError", "PermissionError"), (name, report)
    writes = {k: v for k, v in report.items() if k.startswith("write ")}
    assert writes.pop("write /tmp/ok") == "ok" and writes.pop("write /home/student/ok") == "ok", report
    assert set(writes.values()) <= {"OSError", "PermissionError", "FileNotFoundError"}, report
    assert report["network"] == "OSError", report


def test_feedback_has_scores_but_no_hidden_tests(batch):
    page = (batch["out"] / "feedback" / "edited" / NAME / f"{NAME}.html").read_text()
    assert "Score: 3.0 / 6.0" in page and "double is wrong. Every value is 1.5 times the expected one" in page
    assert "seeds=(1, 2)" not in page and "HIDDEN" not in page


def _odd_row(batch: dict, student: str):
    rows = batch["rows"]
    return rows.get(student) or next(r for key, r in rows.items() if key.startswith(student.replace(" ", "_") + "-"))


@pytest.mark.parametrize("student", ["victim", "linked_solution", "linker", "nested_link", "nested_dir", "deep", "dup",
                                     "müller", "möller", "Ann_Lee", "Ann Lee"])
def test_odd_layouts_links_and_names(batch, student):
    expected = {**batch["odd"], "Ann Lee": "full"}[student]
    row = _odd_row(batch, student)
    if expected in ("full", "wrong"):
        assert (row.status, row.score, row.max_score) == ("graded", 5 if expected == "full" else 3, 6), row
    else:
        assert row.status == "failed" and row.kind == "input" and expected in row.reason, row
        assert "not graded" in (batch["out"] / "feedback" / row.student / NAME / f"{NAME}.html").read_text()


def test_nested_folders_and_colliding_names_are_told(batch):
    assert "found in a/b/" in _odd_row(batch, "deep").notes
    ann = _odd_row(batch, "Ann Lee")
    assert ann.student.startswith("Ann_Lee-") and "same as 'Ann_Lee'" in ann.notes, ann
    assert "same as 'Ann Lee'" in _odd_row(batch, "Ann_Lee").notes
    assert "1 other file(s)" in _odd_row(batch, "dup").notes


def test_every_file_is_graded_failed_or_skipped_with_a_reason(batch):
    skipped = read_skipped(batch["out"])
    for file, words in ODD_SKIPPED.items():
        assert words in skipped.get(file, ""), (file, skipped)
    assert unaccounted(batch["folder"], batch["out"]) == []
    assert any("skipped" in line and "duplicate" in line for line in batch["lines"]), batch["lines"]


def test_no_solution_or_other_students_work_in_any_feedback(batch):
    solution = batch["secrets"]["solutions"].read_text()
    assert "### BEGIN SOLUTION" in solution
    secrets = {"solution": "### BEGIN SOLUTION", "hidden tests": "seeds=(1, 2)", "victim": VICTIM_MARK}
    assert feedback_leaks(batch["out"], secrets, {"victim": "victim"}) == []
    assert VICTIM_MARK in (batch["out"] / "feedback" / "victim" / NAME / f"{NAME}.html").read_text()


def test_rerun_regrades_only_changes_and_keeps_manual_grades(batch):
    out, folder, course = batch["out"], batch["folder"], batch["course"]
    with Gradebook(db_url(out / "gradebook.db")) as gb:
        grade_cell = gb.find_grade("explain", NAME, NAME, "good")
        grade_cell.manual_score = 1.0
        gb.find_comment("explain", NAME, NAME, "good").manual_comment = "Clear and right."
        gb.db.commit()
    feedback = out / "feedback" / "good" / NAME / f"{NAME}.html"
    assert "Score: 5.0 / 6.0" in feedback.read_text() and "Clear and right." not in feedback.read_text()
    nbformat.write(answer(batch["release"]), folder / "blank.ipynb")  # blank resubmits a full answer
    lines: list[str] = []
    rows = {r.student: r for r in grade(folder, NAME, out, 2, LIMITS, course=course, echo=lines.append)}
    assert "grading 1," in lines[0], lines
    assert (rows["blank"].score, rows["good"].score, rows["good"].max_score) == (5, 6, 6)
    assert rows["corrupt"].status == "failed" and rows["transformer"].kind == "refused"
    # a plain re-run (no --force) brings the feedback up to date too: the manual score and the comment
    assert "Score: 6.0 / 6.0" in feedback.read_text() and "Clear and right." in feedback.read_text()
    with open(out / "grades.csv") as f:
        assert next(r for r in csv.DictReader(f) if r["student"] == "good")["score"] == "6"
    # the same submissions, regraded from scratch, get the same scores; manual grades survive
    again = folder.parent / "again"
    again.mkdir()
    for student in ("good", "edited"):
        (again / f"{student}.ipynb").write_bytes((folder / f"{student}.ipynb").read_bytes())
    rows = {r.student: r for r in grade(again, NAME, out, 2, LIMITS, force=True, course=course,
                                        echo=lambda line: None)}
    assert (rows["good"].score, rows["edited"].score) == (6, 3)
    with Gradebook(db_url(out / "gradebook.db")) as gb:
        assert gb.find_comment("explain", NAME, NAME, "good").manual_comment == "Clear and right."
    assert "Clear and right." in (out / "feedback" / "good" / NAME / f"{NAME}.html").read_text()
