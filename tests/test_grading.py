"""The grader's pure parts (no kernels): finding submissions, reading and restoring notebooks, the CSV, the CLI."""
from __future__ import annotations

import copy
import csv
import json

import nbformat
import pytest

from grading_tiny import MASTER, NAME, answer, cell, index
from induction_course import cli, grading
from induction_course.grading import (Row, SubmissionError, find_submissions, read_notebook, restore_structure,
                                      student_id, write_csv)
from induction_course.notebooks import parse_master


@pytest.fixture(scope="module")
def release() -> nbformat.NotebookNode:
    """The tiny assignment as nbgrader releases it, approximated without running nbgrader (stubs, no hidden tests)."""
    nb = parse_master(MASTER, NAME)
    for c in nb.cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution") and c.cell_type == "code":
            head = c.source.split("### BEGIN SOLUTION")[0]
            c.source = head + "# YOUR CODE HERE\n    raise NotImplementedError()"
        if meta.get("locked"):
            c.source = c.source.split("### BEGIN HIDDEN TESTS")[0].rstrip()
    return nb


def _ids(nb: nbformat.NotebookNode) -> list[str]:
    return [c.metadata.get("nbgrader", {}).get("grade_id", "-") for c in nb.cells]


def _known(release: nbformat.NotebookNode) -> dict:
    raw = json.loads(nbformat.writes(release))
    return {NAME: (grading._grade_ids(raw), grading._cell_texts(raw)),
            "01_other": ({"check_other"}, {"an entirely different notebook " * 3})}


def test_three_layouts_and_renamed_files(tmp_path, release):
    text = nbformat.writes(answer(release))
    (tmp_path / "flat.ipynb").write_text(text)  # <student>.ipynb
    (tmp_path / "Ann Lee").mkdir()
    (tmp_path / "Ann Lee" / f"{NAME}.ipynb").write_text(text)  # <student>/<notebook>.ipynb
    (tmp_path / "bo").mkdir()
    (tmp_path / "bo" / "my homework (1).ipynb").write_text(text)  # renamed: identified by content
    (tmp_path / "cy" / NAME).mkdir(parents=True)  # nbgrader: submitted/<student>/<assignment>/
    (tmp_path / "cy" / NAME / "Untitled.ipynb").write_text(text)
    (tmp_path / "cy" / NAME / "timestamp.txt").write_text("2024-01-01 10:00:00")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "flat-checkpoint.ipynb").write_text(text)
    (tmp_path / "mystery.ipynb").write_text("{not json")
    found = {s.student: s for s in find_submissions(tmp_path, _known(release))}
    assert sorted(found) == ["Ann_Lee", "bo", "cy", "flat", "mystery"]
    assert all(found[s].notebook == NAME for s in ("Ann_Lee", "bo", "cy", "flat"))
    assert "identified as" in found["bo"].note and "renamed" in found["cy"].note
    assert found["mystery"].notebook == "" and "could not tell" in found["mystery"].note
    assert find_submissions(tmp_path, _known(release), NAME)[-1].notebook == NAME  # --assignment names flat files


def test_student_ids_are_safe_path_parts():
    assert student_id("../../etc/passwd") == "etc_passwd" and student_id("Zoë O'Neil") == "Zo_O_Neil"
    assert student_id("...") == "unnamed"


@pytest.mark.parametrize("data, words", [
    (b"", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "not UTF-8"), (b'{"cells": [', "invalid JSON at line 1"),
    (b'{"metadata": {}}', "no list of cells"), (b"[1, 2]", "no list of cells"),
])
def test_unreadable_files_say_why(tmp_path, data, words):
    path = tmp_path / "x.ipynb"
    path.write_bytes(data)
    with pytest.raises(SubmissionError, match=words):
        read_notebook(path)


def test_old_formats_and_odd_cells_are_converted(tmp_path, release):
    path = tmp_path / "v3.ipynb"
    path.write_text(nbformat.writes(nbformat.v3.convert.downgrade(copy.deepcopy(answer(release))), version=3))
    nb, notes = read_notebook(path)
    assert nb.nbformat == 4 and "converted from nbformat 3" in notes
    assert _ids(nb) == _ids(release)
    raw = json.loads(nbformat.writes(answer(release)))
    raw["cells"].append({"cell_type": "weird"})
    del raw["cells"][0]["metadata"]
    path.write_text(json.dumps(raw))
    nb, notes = read_notebook(path)
    assert len(nb.cells) == len(release.cells) and "repaired malformed cells" in notes


def test_deleted_test_cell_is_restored_after_the_students_code(release):
    nb = answer(release)
    nb.cells.insert(index(nb, "check_double") + 1, nbformat.v4.new_code_cell("scratch = 1"))
    del nb.cells[index(nb, "check_double")]
    restored, notes = restore_structure(nb, release)
    ids = _ids(restored)
    assert ids.index("double") < ids.index("check_double") < ids.index("halve")
    assert restored.cells[ids.index("check_double") - 1].source == "scratch = 1"
    assert "cell check_double was missing; restored from the release" in notes


def test_duplicate_test_cells_keep_one_graded_copy_in_order(release):
    nb = answer(release)
    dup = copy.deepcopy(cell(nb, "check_double"))
    nb.cells.insert(1, copy.deepcopy(dup))  # before the function exists
    nb.cells.insert(index(nb, "check_double") + 1, dup)
    restored, notes = restore_structure(nb, release)
    ids = _ids(restored)
    assert ids.count("check_double") == 1 and ids.index("double") < ids.index("check_double")
    assert sum("duplicate" in n for n in notes) == 2


def test_stripped_metadata_is_matched_by_content_and_position(release):
    nb = answer(release)
    nb.metadata = {}
    for c in nb.cells:
        c.metadata = {}
    restored, notes = restore_structure(nb, release)
    assert _ids(restored) == _ids(release)
    assert cell(restored, "explain").source == "Because." and "return 2 * x" in cell(restored, "double").source


def test_markdown_or_edited_test_cells_get_their_metadata_back(release):
    nb = answer(release)
    old = cell(nb, "check_double")
    nb.cells[index(nb, "check_double")] = nbformat.v4.new_markdown_cell(old.source, metadata=old.metadata)
    cell(nb, "check_halve").source = "pass"
    restored, notes = restore_structure(nb, release)
    assert _ids(restored) == _ids(release)
    assert any("changed to markdown" in n for n in notes) and any("check_halve had been edited" in n for n in notes)


def test_unknown_grade_ids_lose_their_metadata(release):
    nb = answer(release)
    nb.cells.append(nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "forged", "grade": True,
                                                                              "points": 100}}))
    restored, _ = restore_structure(nb, release)
    assert "forged" not in _ids(restored) and "nbgrader" not in restored.cells[-1].metadata


def test_failures_never_look_like_zero(tmp_path):
    rows = [Row("a", NAME, "graded", 0.0, 6.0), Row("b", NAME, "failed", 0.0, 6.0, reason="not a notebook")]
    write_csv(rows, tmp_path / "grades.csv")
    with open(tmp_path / "grades.csv") as f:
        lines = list(csv.DictReader(f))
    assert (lines[0]["score"], lines[0]["max_score"]) == ("0", "6")
    assert (lines[1]["status"], lines[1]["score"], lines[1]["max_score"], lines[1]["reason"]) == (
        "failed", "", "", "not a notebook")


def test_missing_bubblewrap_is_explained(monkeypatch):
    monkeypatch.setattr(grading.shutil, "which", lambda tool: None if tool == "bwrap" else "/usr/bin/" + tool)
    assert "bwrap" in grading.sandbox_problem() and "install_sandbox.sh" in grading.sandbox_problem()


def test_sandbox_exposes_only_what_the_kernel_needs(tmp_path):
    args = grading._bwrap_args(tmp_path, 201234, grading.Limits())
    binds = {args[i + 1] for i, a in enumerate(args) if a in ("--ro-bind", "--bind")}
    root = str(grading.ROOT)
    assert {"--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv"} <= set(args)
    assert str(grading.PACKAGE) in binds and not any(b in (root, f"{root}/solutions", f"{root}/autograder")
                                                      for b in binds)
    assert args[args.index("setpriv") + 1] == "--reuid=201234" and "--bounding-set=-all" in args


def test_fingerprint_follows_the_checks_a_notebook_loads():
    files = {p.name for p in grading.course_files(["induction_course.checks.nb1"], grading.PACKAGE)}
    assert {"core.py", "nb1.py", "attention.py", "__init__.py"} <= files and "nb2.py" not in files


def test_cli_registers_grade_and_reports_bad_input(tmp_path, capsys):
    assert "grade" in cli.COMMANDS
    assert cli.main(["grade", str(tmp_path / "missing"), "--unsafe-no-sandbox"]) == 2
    assert "is not a folder" in capsys.readouterr().err
