"""The grader's trusted side against hostile input, without kernels: links, odd layouts, names, malformed files.

The same cases run end to end (in sandboxes) in test_grading_sandbox.py and test_grading_notebook1.py.
"""
from __future__ import annotations

import copy
import json
import os
import random
import unicodedata

import nbformat
import pytest

from autograder import files
from autograder.reading import read_notebook
from autograder.restoring import check_modules, restore_structure, review_notes
from autograder.settings import SubmissionError
from autograder.submissions import find_submissions, grade_ids, cell_texts, safe_name, student_ids
from grading_cases import MALFORMED, ODD_SKIPPED, malformed, odd_class
from grading_tiny import NAME, answer, approximate_release


@pytest.fixture(scope="module")
def release() -> nbformat.NotebookNode:
    return approximate_release()


def _known(release: nbformat.NotebookNode) -> dict:
    raw = json.loads(nbformat.writes(release))
    return {NAME: (grade_ids(raw), cell_texts(raw)), "01_other": ({"check_other"}, {"a different notebook " * 3})}


# ---------------------------------------------------------------------------------------- links
def test_reading_never_follows_a_link_at_any_depth(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ipynb").write_text("solution")
    root = tmp_path / "submissions"
    (root / "bob" / "work").mkdir(parents=True)
    (root / "bob" / "work" / "real.ipynb").write_text("mine")
    (root / "bob" / "file.ipynb").symlink_to(outside / "secret.ipynb")
    (root / "bob" / "dir").symlink_to(outside, target_is_directory=True)
    (root / "carol").symlink_to(root / "bob", target_is_directory=True)
    assert files.read_bytes(root, "bob/work/real.ipynb") == b"mine"
    for rel in ("bob/file.ipynb", "bob/dir/secret.ipynb", "carol/work/real.ipynb"):
        with pytest.raises(files.UnsafePath, match="symbolic link"):
            files.read_bytes(root, rel)
    with pytest.raises(files.UnsafePath):
        files.read_bytes(root, "../outside/secret.ipynb")
    os.mkfifo(root / "bob" / "pipe.ipynb")
    with pytest.raises(files.UnsafePath, match="not a regular file"):  # and it does not hang
        files.read_bytes(root, "bob/pipe.ipynb")
    with pytest.raises(files.UnsafePath, match="over 0 MB"):
        files.read_bytes(root, "bob/work/real.ipynb", limit=2)


def test_writing_never_follows_a_link_planted_in_out(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.txt"
    victim.write_text("keep")
    files.make_out(out, "feedback")
    (out / "grades.csv").symlink_to(victim)  # a file link is replaced, not written through
    files.write_text(out, "grades.csv", "new")
    assert victim.read_text() == "keep" and not (out / "grades.csv").is_symlink()
    (out / "feedback" / "bob").symlink_to(elsewhere, target_is_directory=True)  # a folder link is refused
    with pytest.raises(files.UnsafePath, match="symbolic link"):
        files.write_text(out, "feedback/bob/01/01.html", "x")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.txt"]
    link = tmp_path / "out-link"
    link.symlink_to(out, target_is_directory=True)
    with pytest.raises(files.UnsafePath, match="--out"):
        files.make_out(link)


# ---------------------------------------------------------------------------------------- layouts and names
def test_every_file_is_a_submission_or_skipped_with_a_reason(tmp_path, release):
    folder = tmp_path / "class"
    folder.mkdir()
    solution = tmp_path / "solution.ipynb"
    solution.write_text(nbformat.writes(answer(release)))
    expected = odd_class(folder, NAME, answer(release), answer(release, double="return 3 * x"), solution)
    found, skipped = find_submissions(folder, _known(release))
    by_student = {s.student: s for s in found}
    for student, outcome in expected.items():
        s = by_student[student]
        if outcome == "symbolic link":  # never opened: named by its name or folders, else by --assignment
            assert outcome in s.problem and s.notebook == ("" if student in ("linked_solution", "linker") else NAME), s
        else:
            assert s.notebook == NAME and not s.problem, s
    assert "found in a/b/" in by_student["deep"].note and by_student["dup"].rel == f"dup/{NAME}.ipynb"
    reasons = {s.file: s.reason for s in skipped}
    for file, words in ODD_SKIPPED.items():
        assert words in reasons.get(file, ""), (file, reasons)
    listed = {s.rel for s in found} | set(reasons)
    for top, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            rel = os.path.relpath(os.path.join(top, name), folder)
            assert rel in listed or any(s.endswith("/") and rel.startswith(s) for s in reasons), rel


def test_assignment_option_skips_other_notebooks_with_a_reason(tmp_path, release):
    other = answer(release)
    for c in other.cells:
        c.source = c.source.replace("double", "treble")
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "01_other.ipynb").write_text(nbformat.writes(other))
    (tmp_path / "ann" / f"{NAME}.ipynb").write_text(nbformat.writes(answer(release)))
    found, skipped = find_submissions(tmp_path, _known(release), NAME)
    assert [s.rel for s in found] == [f"ann/{NAME}.ipynb"]
    assert [(s.file, s.student) for s in skipped] == [("ann/01_other.ipynb", "ann")]
    assert "another notebook (01_other); --assignment 00_tiny" in skipped[0].reason


def test_the_output_folder_inside_submissions_is_not_graded(tmp_path, release):
    (tmp_path / "graded" / "autograded" / "x").mkdir(parents=True)
    (tmp_path / "graded" / "autograded" / "x" / f"{NAME}.ipynb").write_text(nbformat.writes(answer(release)))
    found, skipped = find_submissions(tmp_path, _known(release), out=tmp_path / "graded")
    assert found == [] and [s.reason for s in skipped] == ["the grader's own output folder (--out) (1 file(s))"]


def test_distinct_names_get_distinct_ids():
    nfd = unicodedata.normalize("NFD", "José")
    names = {"müller", "möller", "Ann Lee", "Ann_Lee", "Ann  Lee", "Bob", "bob", "李雷", "李電", "x" * 200,
             "x" * 199 + "y", "../etc", "etc"}
    ids, notes = student_ids(names)
    assert len(set(ids.values())) == len(names) and len({i.casefold() for i in ids.values()}) == len(names)
    assert ids["müller"] == "müller" and ids["möller"] == "möller" and ids["李雷"] == "李雷"
    assert ids["Ann_Lee"] == "Ann_Lee" and ids["Ann Lee"].startswith("Ann_Lee-") and ids["etc"] == "etc"
    assert ids["Bob"] != ids["bob"] and "same as 'bob'" in notes["Bob"] and "müller" not in notes
    assert all(len(i) <= 80 and "/" not in i and i not in (".", "..") for i in ids.values())
    assert safe_name(nfd) == "José"  # the same name typed on macOS (decomposed) is the same student
    assert student_ids({"José", nfd}) == ({"José": "José", nfd: "José"}, {})


# ---------------------------------------------------------------------------------------- malformed files
def _usable(nb: nbformat.NotebookNode, release: nbformat.NotebookNode) -> None:
    """What the grader does with a notebook before any kernel: it must not raise."""
    nbformat.validate(nb)
    restored, _ = restore_structure(nb, release)
    nbformat.validate(restored)
    check_modules(restored), review_notes(restored, release), nbformat.writes(restored)


@pytest.mark.parametrize("damage", sorted(MALFORMED))
def test_malformed_notebooks_are_repaired(release, damage):
    nb, notes = read_notebook(malformed(answer(release), damage))
    _usable(nb, release)
    assert "return 2 * x" in nbformat.writes(nb)
    if damage in ("source_number", "bad_ids"):
        assert any("repaired" in n for n in notes), notes


def _mutate(rng: random.Random, value: object, depth: int = 0) -> object:
    """``value`` with one random part replaced by a random JSON value of another type."""
    junk = [None, True, 0, -1, 3.5, "", "x\ud800y", [], {}, [1, "a"], {"a": [None]}, "code", "nbgrader", [[[]]]]
    if isinstance(value, dict) and value and rng.random() < 0.85:
        key = rng.choice(sorted(value))
        value[key] = _mutate(rng, value[key], depth + 1)
        return value
    if isinstance(value, list) and value and rng.random() < 0.85:
        i = rng.randrange(len(value))
        value[i] = _mutate(rng, value[i], depth + 1)
        return value
    return rng.choice(junk)


def test_fuzzed_notebooks_are_repaired_or_failed_with_a_reason(release):
    """A seeded fuzzer (hypothesis is not a dependency): 400 random damages, never an unexplained error."""
    rng = random.Random(12)
    base = json.loads(nbformat.writes(answer(release)))
    outcomes = {"repaired": 0, "failed": 0}
    for _ in range(400):
        raw = copy.deepcopy(base)
        for _ in range(rng.randint(1, 4)):
            raw = _mutate(rng, raw)
        data = json.dumps(raw).encode() if rng.random() < 0.9 else json.dumps(raw).encode()[: rng.randint(0, 400)]
        try:
            nb, _ = read_notebook(data)
        except SubmissionError as e:
            assert e.kind == "input" and e.reason, e
            outcomes["failed"] += 1
            continue
        _usable(nb, release)
        outcomes["repaired"] += 1
    assert min(outcomes.values()) > 20, outcomes


def test_deeply_nested_json_fails_with_a_reason():
    with pytest.raises(SubmissionError, match="nested too deeply|no list of cells"):
        read_notebook(b'{"cells": ' + b"[" * 100000 + b"]" * 100000 + b"}")
