"""The grader's own output, without kernels: CSVs a spreadsheet opens safely, a full disk, a second run
on one --out, a locked gradebook, and finished rows that survive a kill (the row journal).

The same classes with real kernels (ids from file names, a SIGKILL mid-batch, a fork bomb) are in
``tests/test_grading_crash.py``.
"""
from __future__ import annotations

import csv
import errno
import io
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import files
from autograder.reporting import FORMULA_START, safe_cell, write_csv, write_skipped
from autograder.scoring import check_gradebook
from autograder.settings import GradingError, Row, Skipped
from autograder.state import JOURNAL, journal_row, load_state, save_state

HOSTILE = ["+1+1", "=2+5.ipynb", "-2+3/x", "@SUM(A1)", "\tx", "\rx", "=cmd|' /C calc'!A0.txt", "=HYPERLINK(\"x\")"]


def assert_safe(text: str) -> list[dict[str, str]]:
    """Every cell of the CSV ``text``: none starts like a formula unless it is a number; returns the lines."""
    lines = list(csv.DictReader(io.StringIO(text, newline="")))
    for line in lines:
        for key, value in line.items():
            if value.startswith(FORMULA_START):
                float(value)  # a number such as -2.5 is allowed; anything else fails here
    return lines


@pytest.mark.parametrize("hostile", HOSTILE)
def test_every_column_a_student_controls_is_safe_and_readable(tmp_path, hostile):
    row = Row(hostile, hostile, "failed", reason=hostile, notes=hostile, file=f"/s/{hostile}", sha256=hostile)
    write_csv([row], tmp_path / "grades.csv")
    write_skipped([Skipped(hostile, hostile, hostile)], tmp_path / "skipped.csv")
    grades = assert_safe((tmp_path / "grades.csv").read_bytes().decode())
    skipped = assert_safe((tmp_path / "skipped.csv").read_bytes().decode())
    for line in grades + skipped:
        for key, value in line.items():
            if key in ("student", "notebook", "reason", "notes", "sha256", "file"):
                assert value.lstrip("'") in (hostile, f"/s/{hostile}", ""), (key, value)
    assert grades[0]["student"] == "'" + hostile


@pytest.mark.parametrize("number", ["-2.5", "+3", "-1e-3", "0"])
def test_numbers_stay_numbers(number):
    assert safe_cell(number) == number
    assert safe_cell(number + "x") == ("'" if number[0] in "+-" else "") + number + "x"


def _tmpfs(path: Path, size_kb: int) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_gives_a_message_and_leaves_no_half_written_file(tmp_path, monkeypatch):
    out = tmp_path / "small"
    mounted = _tmpfs(out, 64)
    try:
        files.write_text(out, "grades.csv", "old\n")
        if not mounted:  # not root: the write fails as a full disk would, at the flush
            monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
        with pytest.raises(files.DiskFull, match="disk under .* is full .* finished rows are kept"):
            files.write_text(out, "grades.csv", "x" * 2**20)
        monkeypatch.undo()
        assert sorted(p.name for p in out.iterdir()) == ["grades.csv"]  # no *.tmp left
        assert (out / "grades.csv").read_text() == "old\n"
    finally:
        if mounted:
            subprocess.run(["umount", str(out)], check=True)


def test_full_disk_in_course_grade_is_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    from autograder import batch, command

    def full(*args, **kwargs):
        raise files.DiskFull("the disk under OUT is full")
    monkeypatch.setattr(batch, "grade", full)
    args = command.argparse.Namespace(submissions=tmp_path, assignment=None, out=tmp_path, jobs=1, cell_timeout=1,
                                      timeout=1, memory=1, force=False, unsafe_no_sandbox=True, cluster=None)
    assert command.run(args) == 2
    assert "course grade: the disk under OUT is full" in capsys.readouterr().err


HOLD = "import sys, time; from pathlib import Path; from autograder import files; " \
       "files.lock_out(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)"


def test_a_second_run_on_one_out_is_told_and_a_killed_run_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(files.OutBusy, match=f"another course grade is already grading into .*pid {holder.pid}"):
            files.lock_out(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    files.lock_out(tmp_path)  # the kernel released the dead run's lock
    files.unlock_out(tmp_path)


def test_a_locked_gradebook_is_waited_for_then_named(tmp_path):
    db = sqlite3.connect(tmp_path / "gradebook.db", isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    db.execute("BEGIN EXCLUSIVE")  # as formgrader holds it while it saves
    try:
        with pytest.raises(GradingError, match="stayed locked by another process for 1 s.*formgrader.*another "
                                               "course grade"):
            check_gradebook(tmp_path, wait=1)
    finally:
        db.execute("ROLLBACK")
        db.close()
    check_gradebook(tmp_path, wait=1)  # free again: no error


def test_finished_rows_survive_a_kill_before_the_state_is_saved(tmp_path):
    state = load_state(tmp_path)
    save_state(tmp_path, state)
    journal_row(tmp_path, "ann/00_tiny", {"student": "ann", "score": 5})
    journal_row(tmp_path, "bob/00_tiny", {"student": "bob", "score": 3})
    with open(tmp_path / JOURNAL, "a") as f:
        f.write('{"version": "torn')  # killed while writing the third
    rows = load_state(tmp_path)["rows"]
    assert rows == {"ann/00_tiny": {"student": "ann", "score": 5}, "bob/00_tiny": {"student": "bob", "score": 3}}
    save_state(tmp_path, load_state(tmp_path))
    assert (tmp_path / JOURNAL).read_text() == "" and load_state(tmp_path)["rows"] == rows
