"""The grader's pure parts (no kernels): finding submissions, reading and restoring notebooks, the CSV, the CLI.

Hostile paths, odd layouts, colliding names and malformed files are in test_grading_input.py."""
from __future__ import annotations

import ast
import copy
import csv
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import torch

from autograder import sandbox, state, submissions
from autograder.reading import read_notebook
from autograder.reporting import write_csv
from autograder.restoring import restore_structure
from autograder.settings import ROOT, Limits, Row, SubmissionError, course_package
from autograder.submissions import find_submissions, safe_name
from grading_tiny import NAME, answer, approximate_release, cell, index
from course_tools import cli


@pytest.fixture(scope="module")
def release() -> nbformat.NotebookNode:
    return approximate_release()


def _ids(nb: nbformat.NotebookNode) -> list[str]:
    return [c.metadata.get("nbgrader", {}).get("grade_id", "-") for c in nb.cells]


def _known(release: nbformat.NotebookNode) -> dict:
    raw = json.loads(nbformat.writes(release))
    return {NAME: (submissions.grade_ids(raw), submissions.cell_texts(raw)),
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
    found, skipped = find_submissions(tmp_path, _known(release))
    found = {s.student: s for s in found}
    assert sorted(found) == ["Ann_Lee", "bo", "cy", "flat", "mystery"]
    assert all(found[s].notebook == NAME for s in ("Ann_Lee", "bo", "cy", "flat"))
    assert "identified as" in found["bo"].note and "renamed" in found["cy"].note
    assert found["cy"].timestamp == "2024-01-01 10:00:00"
    assert found["mystery"].notebook == "" and "could not tell" in found["mystery"].note
    assert [(s.file, s.reason) for s in skipped] == [(".ipynb_checkpoints/", "Jupyter's autosave checkpoints (1 file(s))")]
    assert find_submissions(tmp_path, _known(release), NAME)[0][-1].notebook == NAME  # --assignment names flat files


def test_student_ids_are_safe_path_parts():
    assert safe_name("../../etc/passwd") == "etc_passwd" and safe_name("Zoë O'Neil") == "Zoë_O_Neil"
    assert safe_name("...") == "unnamed" and "/" not in safe_name("a/b") and len(safe_name("x" * 300)) <= 80


@pytest.mark.parametrize("data, words", [
    (b"", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "not UTF-8"), (b'{"cells": [', "invalid JSON at line 1"),
    (b'{"metadata": {}}', "no list of cells"), (b"[1, 2]", "no list of cells"),
])
def test_unreadable_files_say_why(tmp_path, data, words):
    with pytest.raises(SubmissionError, match=words):
        read_notebook(data)


def test_old_formats_and_odd_cells_are_converted(tmp_path, release):
    v3 = nbformat.writes(nbformat.v3.convert.downgrade(copy.deepcopy(answer(release))), version=3)
    nb, notes = read_notebook(v3.encode())
    assert nb.nbformat == 4 and "converted from nbformat 3" in notes
    assert _ids(nb) == _ids(release)
    raw = json.loads(nbformat.writes(answer(release)))
    raw["cells"].append({"cell_type": "weird"})
    del raw["cells"][0]["metadata"]
    nb, notes = read_notebook(json.dumps(raw).encode())
    assert len(nb.cells) == len(release.cells) and any("repaired malformed cells" in n for n in notes)


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
    monkeypatch.setattr(sandbox.shutil, "which", lambda tool: None if tool == "bwrap" else "/usr/bin/" + tool)
    assert "bwrap" in sandbox.sandbox_problem() and "install_sandbox.sh" in sandbox.sandbox_problem()


def test_sandbox_exposes_only_what_the_kernel_needs(tmp_path):
    args = sandbox.bwrap_args(tmp_path, 201234, Limits())
    binds = {args[i + 1]: args[i + 2] for i, a in enumerate(args) if a in ("--ro-bind", "--bind")}
    root = str(ROOT)
    assert {"--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv"} <= set(args)
    assert str(course_package()) in binds and not any(b in (root, f"{root}/solutions", f"{root}/autograder")
                                                       for b in binds)
    # of the grader, only the guard is visible (read-only, one file), never the package or its --out
    assert [b for b in binds if b.startswith(f"{root}/autograder")] == [str(sandbox.GUARD)]
    assert binds[str(sandbox.GUARD)] == sandbox.GUARD_INSIDE and args[args.index(str(sandbox.GUARD)) - 1] == "--ro-bind"
    assert args[args.index("setpriv") + 1] == "--reuid=201234" and "--bounding-set=-all" in args


def _imported(path: Path) -> set[str]:
    """Top-level names of the modules a Python file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_guard_imports_nothing_of_the_grader():
    imported = _imported(sandbox.GUARD) | {m.split(".")[0] for m in re.findall(r'import_module\("([\w.]+)', sandbox.GUARD.read_text())}
    assert imported <= {"__future__", "builtins", "importlib", "math", "os", "sys", "typing", "torch", "IPython"}, imported


def test_fingerprint_follows_the_checks_a_notebook_loads():
    files = {p.name for p in state.course_files(["induction_course.checks.nb1"], course_package())}
    assert {"core.py", "nb1.py", "attention.py", "__init__.py"} <= files and "nb2.py" not in files


def test_the_course_package_holds_no_grading_machinery():
    package = course_package()
    assert not [p.name for p in package.glob("grading*.py")] and not (package / "autograde.py").exists()
    # `course grade` and the benchmark that times plain autograde are maintainers' tools (course_tools/)
    users = {p.name for p in package.rglob("*.py") if "autograder" in _imported(p)}
    assert not users, users


def test_cli_registers_grade_and_reports_bad_input(tmp_path, capsys):
    assert "grade" in cli.COMMANDS
    assert cli.main(["grade", str(tmp_path / "missing"), "--unsafe-no-sandbox"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_plain_autograde_uses_the_course_config_with_explicit_timeouts(tmp_path):
    from traitlets.config.loader import PyFileConfigLoader

    from autograder import plain

    (tmp_path / "nbgrader_config.py").write_text(plain._CONFIG.format(
        course=str(plain.COURSE_CONFIG), root=str(tmp_path), db=plain._db(tmp_path), timeout=plain.CELL_TIMEOUT))
    config = PyFileConfigLoader("nbgrader_config.py", str(tmp_path)).load_config()
    assert config.CourseDirectory.root == str(tmp_path) and str(tmp_path) in config.CourseDirectory.db_url
    assert config.ClearSolutions.code_stub["python"].endswith("raise NotImplementedError()")  # the course's
    assert config.Execute.timeout == plain.CELL_TIMEOUT >= 300 and config.Execute.startup_timeout >= 120
    assert config.Execute.iopub_timeout >= 30 and config.Execute.interrupt_on_timeout


def test_a_cell_may_hand_the_grader_a_record_of_a_few_megabytes():
    """Ordinary output is capped per cell; a record for the trusted side (executing.RECORD_MIME) has its own allowance."""
    from autograder.executing import RECORD_MIME, _client

    limits = Limits(output_kb=64, record_kb=4096)
    client = _client(nbformat.v4.new_notebook(), None, limits)
    client.reset_execution_trackers()  # what nbclient does before executing a cell, here without a kernel
    client.clear_before_next_output = False
    outs: list = []

    def send(data: dict) -> None:
        client.output(outs, {"msg_type": "display_data", "parent_header": {"msg_id": "m"},
                             "header": {"msg_type": "display_data"},
                             "content": {"data": data, "metadata": {}}}, None, 0)

    send({RECORD_MIME: {"blob": "x" * 3_000_000}})
    for _ in range(3):
        send({"text/plain": "y" * 30_000})
    kinds = [next(iter(o.get("data", {"stream": 0}))) for o in outs]
    assert kinds == [RECORD_MIME, "text/plain", "text/plain", "stream"], kinds  # the third plain output was dropped
    assert "beyond 64 KB was dropped" in outs[-1].text


def _matmul_sum(n: int) -> float:
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(0))
    return float((a @ a).sum())


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for torch to use a thread pool")
def test_workers_start_safely_after_the_caller_used_several_torch_threads():
    """A forked worker must not inherit torch's OpenMP pool (it hung the whole suite once)."""
    from autograder.batch import _pool

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _matmul_sum(800)  # the caller's pool is now running
        with _pool(2) as pool:
            results = [pool.submit(_matmul_sum, 800) for _ in range(2)]
            assert [f.result(timeout=120) for f in results] == pytest.approx([_matmul_sum(800)] * 2, rel=1e-4)
    finally:
        torch.set_num_threads(before)
