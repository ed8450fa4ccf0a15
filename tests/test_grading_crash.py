"""`course grade` on the tiny assignment, as an attacker of its output and its process would try it.

One batch (two workers) holds students whose ids, notes and skipped file names start like spreadsheet
formulas, a fork bomb and a thread bomb placed after the first test: every CSV cell must be safe, and
each bomb must be that student's graded row keeping the points earned before it. A second batch is run
by ``python -m autograder`` in a child process and SIGKILLed once its first row is finished: no worker,
kernel or sandbox may outlive it, and a re-run must keep the finished row and grade the rest.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest

from autograder.batch import grade
from autograder.sandbox import sandbox_problem
from autograder.settings import Limits
from grading_tiny import NAME, answer, insert_after, make_course
from test_grading_safety import assert_safe

pytestmark = pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox: {sandbox_problem()}")

LIMITS = Limits(cell_timeout=30, timeout=300, memory_mb=3072, output_kb=256)
FORK_BOMB = '''import os, time
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(3600)
        os._exit(0)'''
THREAD_BOMB = '''import threading, time
while True:
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()'''
SKIPPED = "=cmd|' /C calc'!A0.txt"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return make_course(tmp_path_factory.mktemp("crash") / "course")


@pytest.fixture(scope="module")
def hostile(course, tmp_path_factory) -> dict:
    course, release = course
    root = tmp_path_factory.mktemp("hostile")
    folder, out = root / "submissions", root / "out"
    folder.mkdir()
    nbformat.write(answer(release), folder / "+1+1.ipynb")
    (folder / "-2+3").mkdir()
    nbformat.write(answer(release, halve="return x"), folder / "-2+3" / "=2+5.ipynb")  # renamed: a note
    nbformat.write(insert_after(answer(release), "check_double", FORK_BOMB), folder / "forkbomb.ipynb")
    nbformat.write(insert_after(answer(release), "check_double", THREAD_BOMB), folder / "threadbomb.ipynb")
    (folder / SKIPPED).parent.mkdir()  # a folder "=cmd|' " holding "C calc'!A0.txt"
    (folder / SKIPPED).write_text("not a notebook")
    (folder / "@SUM(A1).ipynb").write_text("{ not json")
    lines: list[str] = []
    rows = grade(folder, NAME, out, 2, LIMITS, course=course, echo=lines.append)
    return {"rows": {r.student: r for r in rows}, "out": out, "lines": lines}


def test_every_csv_cell_is_safe_and_readable(hostile):
    grades = assert_safe((hostile["out"] / "grades.csv").read_bytes().decode())
    skipped = assert_safe((hostile["out"] / "skipped.csv").read_bytes().decode())
    assert {g["student"] for g in grades} >= {"'+1+1", "'@SUM_A1"}, grades
    assert {g["status"] for g in grades if g["student"] == "'@SUM_A1"} == {"failed"}
    assert any(s["file"].startswith("'=cmd|' ") for s in skipped), skipped
    assert {g["student"]: g["score"] for g in grades}["'+1+1"] == "5"


@pytest.mark.parametrize("student", ["forkbomb", "threadbomb"])
def test_a_resource_bomb_is_that_students_graded_row(hostile, student):
    row = hostile["rows"][student]
    assert row.status == "graded", (row.reason, row.notes)
    assert row.score >= 2, row  # the test before the bomb keeps its points
    assert row.kind != "internal"


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie runs nothing; init reaps it


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv", newline="") as f:
        return {line["student"]: line for line in csv.DictReader(f)}


def test_sigkill_mid_batch_leaves_no_process_and_a_rerun_loses_nothing(course, tmp_path):
    course, release = course
    folder, out = tmp_path / "submissions", tmp_path / "out"
    folder.mkdir()
    nbformat.write(answer(release), folder / "first.ipynb")
    for k in range(3):  # slow ones, still running when the kill comes
        nbformat.write(insert_after(answer(release), "check_double", "import time\ntime.sleep(20)"),
                       folder / f"slow{k}.ipynb")
    code = ("import sys; from pathlib import Path; from autograder.batch import grade; from autograder.settings "
            "import Course, Limits; from grading_tiny import NAME\n"
            f"grade(Path(sys.argv[1]), NAME, Path(sys.argv[2]), 2, Limits(**{asdict(LIMITS)!r}), course=Course(Path({str(course.root)!r}), Path({str(course.config)!r}), Path({str(course.source)!r})))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder), str(out)], stdout=subprocess.PIPE, text=True,
                            env=env)
    finished = []
    try:
        for line in proc.stdout:
            if line.startswith("["):
                finished.append(line)
                break
        assert finished, "the batch ended before any row was finished"
        before = _descendants(proc.pid)
        assert any("bwrap" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
                   for p in before if _alive(p)), "no sandbox was running at the kill"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30  # a bound for the kernel to deliver the signals, not a timing claim
    while any(map(_alive, before)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in before if _alive(p)], "processes outlived the killed grader"
    journal = (out / ".grading" / "rows.jsonl").read_text()[:3000]
    lines: list[str] = []
    rows = {r.student: r for r in grade(folder, NAME, out, 2, LIMITS, course=course, echo=lines.append)}
    assert {s: (r.status, r.score) for s, r in rows.items()} == {
        "first": ("graded", 5), **{f"slow{k}": ("graded", 5) for k in range(3)}}
    regraded = int(lines[0].split("; grading ")[1].split(",")[0])
    assert regraded < 4, (finished, journal, lines)  # the rows finished before the kill were kept, not regraded
    assert not list(out.rglob("*.tmp"))
