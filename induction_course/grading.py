"""Grade a class with nbgrader: every submission in its own sandboxed kernel, in parallel.

``grade(SUBMISSIONS)`` is ``course grade``. For each (student, notebook) it:

1. finds the file (nbgrader's ``submitted/<student>/<assignment>/``, a flat folder of
   ``<student>.ipynb`` or ``<student>/<notebook>.ipynb``) and tells which notebook it is;
2. reads it defensively and restores its structure against the release: test cells that were
   deleted, duplicated, edited, turned into markdown or stripped of metadata are put back, then
   nbgrader's own sanitising preprocessors (``OverwriteCells`` etc.) run against the gradebook;
3. executes it in a fresh kernel inside bubblewrap (no network, read-only course package and venv,
   a private tmpfs, an unprivileged uid, address-space/file-size/process limits), with a per-cell
   and a per-submission time limit, and hidden guard cells around every test cell;
4. scores it with nbgrader (``determine_grade``, ``SaveAutoGrades``) into the gradebook, which
   keeps manual grades and comments, and writes an HTML feedback report;
5. writes ``grades.csv``: one row per (student, notebook) with status ``graded`` or ``failed`` and
   a reason for every failure (a failure never shows as a score).

A re-run regrades only submissions whose bytes, notebook source, course package or limits changed.
See ``autograder/README.md`` for the instructor's view, and what the sandbox does and does not protect.
"""
from __future__ import annotations

import ast
import asyncio
import copy
import csv
import difflib
import hashlib
import html
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import nbformat
from nbformat import NotebookNode

from induction_course import grading_guard
from induction_course.notebooks import nbgrader_env

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent
GRADER_VERSION = "1"
CSV_FIELDS = ("student", "notebook", "status", "score", "max_score", "reason", "notes", "needs_manual_grade",
              "file", "sha256")
MAX_NOTEBOOK_BYTES = 50 * 2**20
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


class GradingError(RuntimeError):
    """The batch cannot start (bad arguments, no sandbox, a broken course source)."""


class SubmissionError(Exception):
    """One submission cannot be graded; ``kind`` is input, refused or internal."""

    def __init__(self, reason: str, kind: str = "input"):
        super().__init__(reason)
        self.reason, self.kind = reason, kind


# ---------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission."""

    cell_timeout: int = 120  # seconds a cell may run before it is interrupted
    timeout: int = 900  # seconds for the whole notebook, kernel start included
    memory_mb: int = 4096  # address space of the kernel (torch alone maps about 2.5 GB)
    output_kb: int = 1024  # output kept per cell; errors are always kept
    scratch_mb: int = 256  # size of each private tmpfs (/tmp and the home folder)


@dataclass(frozen=True)
class Course:
    """Where an nbgrader course keeps its source notebooks and configuration."""

    root: Path
    config: Path
    source: Path
    package: Path = PACKAGE

    @classmethod
    def default(cls) -> Course:
        return cls(ROOT, ROOT / "autograder" / "nbgrader_config.py", ROOT / "solutions")

    def assignments(self) -> list[str]:
        """Assignment names: folders of the source holding a notebook of the same name."""
        if not self.source.is_dir():
            return []
        return sorted(p.name for p in self.source.iterdir() if (p / f"{p.name}.ipynb").is_file())

    def notebook(self, name: str) -> Path:
        return self.source / name / f"{name}.ipynb"


@dataclass(frozen=True)
class Submission:
    """One student's file for one notebook (``notebook`` is empty when it could not be identified)."""

    student: str
    path: Path
    notebook: str = ""
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.student}/{self.notebook or self.path.name}"


@dataclass
class Row:
    """One line of grades.csv."""

    student: str
    notebook: str
    status: str  # "graded" or "failed"
    score: float | None = None
    max_score: float | None = None
    reason: str = ""  # why it failed (failed rows only)
    notes: str = ""  # anything the instructor should know about a graded row
    needs_manual_grade: bool = False
    file: str = ""
    sha256: str = ""
    kind: str = ""  # failure kind: input, refused or internal
    fingerprint: str = ""
    seconds: float = 0.0
    kernel_cpu_s: float = 0.0  # CPU seconds of the sandboxed kernel (for the benchmark)

    def csv_row(self) -> dict[str, str]:
        def number(x: float | None) -> str:
            return "" if x is None or self.status != "graded" else f"{x:g}"
        return {"student": self.student, "notebook": self.notebook, "status": self.status,
                "score": number(self.score), "max_score": number(self.max_score), "reason": self.reason,
                "notes": self.notes, "needs_manual_grade": "yes" if self.needs_manual_grade else "",
                "file": self.file, "sha256": self.sha256}


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to grade one submission (picklable)."""

    submission: Submission
    release: Path  # the release notebook nbgrader generated, to restore structure against
    source_db: str  # read-only snapshot of the gradebook (source cells, kernelspec)
    out: Path
    limits: Limits
    package: Path
    sandbox: bool
    fingerprint: str
    sha256: str
    manual: dict[str, dict[str, Any]] = field(default_factory=dict)  # grade_id -> manual score/comment


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_jobs() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ---------------------------------------------------------------------------------------- finding submissions
def student_id(name: str) -> str:
    """A safe student id from a file or folder name."""
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", name).strip("._") or "unnamed"


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "__")))


def _grade_ids(nb: dict) -> set[str]:
    cells = nb.get("cells") or [c for ws in nb.get("worksheets", []) for c in ws.get("cells", [])]
    return {str(c.get("metadata", {}).get("nbgrader", {}).get("grade_id")) for c in cells
            if isinstance(c, dict) and isinstance(c.get("metadata"), dict)
            and isinstance(c["metadata"].get("nbgrader"), dict)} - {"None"}


def _cell_texts(nb: dict) -> set[str]:
    cells = nb.get("cells") or [c for ws in nb.get("worksheets", []) for c in ws.get("cells", [])]
    texts = set()
    for c in cells:
        source = c.get("source", "") if isinstance(c, dict) else ""
        source = "".join(source) if isinstance(source, list) else str(source)
        if len(source.strip()) > 40:
            texts.add(_normalise(source))
    return texts


def catalog(course: Course) -> dict[str, tuple[set[str], set[str]]]:
    """For each assignment, the grade ids and cell texts that identify its notebook."""
    result = {}
    for name in course.assignments():
        nb = json.loads(course.notebook(name).read_text())
        result[name] = (_grade_ids(nb), _cell_texts(nb))
    return result


def _by_content(path: Path, known: dict[str, tuple[set[str], set[str]]]) -> str:
    try:
        nb = json.loads(path.read_bytes()[:MAX_NOTEBOOK_BYTES].decode("utf-8-sig"))
        ids, texts = _grade_ids(nb), _cell_texts(nb)
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
        return ""
    scores = {name: 10 * len(ids & k_ids) + len(texts & k_texts) for name, (k_ids, k_texts) in known.items()}
    best = max(scores, key=lambda n: scores[n], default="")
    return best if best and scores[best] > 0 else ""


def _identify(student: str, path: Path, known: dict[str, tuple[set[str], set[str]]], assignment: str | None,
              folder: str | None = None) -> Submission:
    """Which notebook ``path`` is: by file name, by folder name, by --assignment, then by content."""
    stem = path.stem
    if stem in known:
        return Submission(student, path, stem)
    renamed = f"the notebook was renamed to {path.name}"
    if folder in known:
        return Submission(student, path, folder, renamed)
    if assignment:
        return Submission(student, path, assignment, renamed if folder is not None else "")
    found = _by_content(path, known)
    if found:
        return Submission(student, path, found, f"{path.name} was identified as {found} by its content")
    similar = [n for n in known if n in stem or stem.startswith(n[:3])]
    if len(similar) == 1:
        return Submission(student, path, similar[0], renamed)
    if len(known) == 1:
        return Submission(student, path, next(iter(known)), renamed)
    return Submission(student, path, "", f"could not tell which notebook {path.name} is (name or content)")


def _dedupe(found: Iterable[Submission]) -> list[Submission]:
    """Keep one file per (student, notebook): the exactly named one, else the newest."""
    groups: dict[str, list[Submission]] = {}
    for s in found:
        groups.setdefault(s.key, []).append(s)
    chosen = []
    for group in groups.values():
        group.sort(key=lambda s: (s.path.stem == s.notebook, s.path.stat().st_mtime), reverse=True)
        best = group[0]
        if len(group) > 1:
            others = ", ".join(str(s.path.name) for s in group[1:])
            best = replace(best, note="; ".join(filter(None, [best.note, f"ignored other files: {others}"])))
        chosen.append(best)
    return sorted(chosen, key=lambda s: s.key)


def find_submissions(folder: Path, known: dict[str, tuple[set[str], set[str]]],
                     assignment: str | None = None) -> list[Submission]:
    """All submissions under ``folder``, in any of the three layouts."""
    found: list[Submission] = []
    for entry in _entries(folder):
        if entry.is_file() and entry.suffix == ".ipynb":
            found.append(_identify(student_id(entry.stem), entry, known, assignment))
        elif entry.is_dir():
            student = student_id(entry.name)
            for inner in _entries(entry):
                if inner.is_file() and inner.suffix == ".ipynb":
                    found.append(_identify(student, inner, known, assignment, folder=""))
                elif inner.is_dir():  # nbgrader: submitted/<student>/<assignment>/<notebook>.ipynb
                    notebooks = [p for p in _entries(inner) if p.is_file() and p.suffix == ".ipynb"]
                    found.extend(_identify(student, p, known, None, folder=inner.name) for p in notebooks)
    if assignment:
        found = [s for s in found if s.notebook in (assignment, "")]
    return _dedupe(found)


# ---------------------------------------------------------------------------------------- the gradebook
def db_url(path: Path, read_only: bool = False) -> str:
    return f"sqlite:///file:{path}?mode=ro&uri=true" if read_only else f"sqlite:///{path}"


def _release_path(out: Path, name: str) -> Path:
    return out / ".grading" / "release" / name / f"{name}.ipynb"


def _generate(course: Course, out: Path, name: str) -> None:
    """nbgrader generate_assignment: source cells (with hidden tests) into the gradebook, release aside."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force",
               f"--CourseDirectory.root={course.root}",
               f"--CourseDirectory.source_directory={course.source}",
               f"--CourseDirectory.release_directory={tmp}/release",
               f"--CourseDirectory.db_url={db_url(out / 'gradebook.db')}", "--log-level=ERROR"]
        env = nbgrader_env()
        proc = subprocess.run(cmd, cwd=course.config.parent, capture_output=True, text=True, env=env)
        generated = Path(tmp) / "release" / name / f"{name}.ipynb"
        if proc.returncode != 0 or not generated.exists():
            raise GradingError(f"nbgrader generate_assignment {name} failed (if cells were added or removed "
                               f"after grading started, grade into a new --out folder):\n{proc.stderr}{proc.stdout}")
        _release_path(out, name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated, _release_path(out, name))


def sync_gradebook(course: Course, out: Path, names: Iterable[str], state: dict) -> tuple[Path | None, dict[str, str]]:
    """Bring the gradebook's source cells up to date. Returns a snapshot for the workers to read, and
    the notebooks that could not be synced, with why (their submissions fail; the others are graded)."""
    from nbgrader.api import Gradebook

    names, broken = list(names), {}
    if not names:
        return None, broken
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        digest = file_sha256(course.notebook(name))
        if state["sources"].get(name) != digest or not _release_path(out, name).exists():
            try:
                _generate(course, out, name)
                state["sources"][name] = digest
            except GradingError as e:
                broken[name] = str(e)
    if not (out / "gradebook.db").exists():
        return None, broken
    snapshot = out / ".grading" / "source.db"
    shutil.copyfile(out / "gradebook.db", snapshot)
    Gradebook(db_url(snapshot)).close()  # creates nbgrader's default course row, so readers never write
    return snapshot, broken


def manual_grades(gb: Any, notebook: str, student: str) -> dict[str, dict[str, Any]]:
    """Manual scores and comments already in the gradebook for one submission."""
    from nbgrader.api import MissingEntry

    try:
        sub = gb.find_submission_notebook(notebook, notebook, student)
    except MissingEntry:
        return {}
    result: dict[str, dict[str, Any]] = {}
    for g in sub.grades:
        result.setdefault(g.name, {}).update(manual_score=g.manual_score, extra_credit=g.extra_credit)
    for c in sub.comments:
        result.setdefault(c.name, {}).update(comment=c.manual_comment)
    return result


def save_grades(gb: Any, url: str, row: Row, nb: NotebookNode, timestamp: str | None) -> None:
    """nbgrader's SaveAutoGrades for one executed notebook; fills the row's score from the gradebook."""
    from nbgrader.preprocessors import SaveAutoGrades

    gb.update_or_create_student(row.student)
    with warnings.catch_warnings():  # nbgrader's own autoflush warnings on a first submission
        warnings.simplefilter("ignore")
        gb.update_or_create_submission(row.notebook, row.student, **({"timestamp": timestamp} if timestamp else {}))
    resources = {"nbgrader": {"notebook": row.notebook, "assignment": row.notebook, "student": row.student,
                              "db_url": url}}
    SaveAutoGrades().preprocess(nb, resources)
    refresh_score(gb, row)


def refresh_score(gb: Any, row: Row) -> None:
    """Score, maximum and needs-manual-grade of a graded row, from the gradebook (manual grades win)."""
    gb.db.expire_all()
    sub = gb.find_submission_notebook(row.notebook, row.notebook, row.student)
    row.score, row.max_score, row.needs_manual_grade = float(sub.score), float(sub.max_score), bool(
        sub.needs_manual_grade)


# ---------------------------------------------------------------------------------------- reading a submission
def read_notebook(path: Path) -> tuple[NotebookNode, list[str]]:
    """Parse a submitted file into a v4 notebook, with notes on anything repaired."""
    data = path.read_bytes()
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"the file is {len(data) // 2**20} MB; notebooks over "
                              f"{MAX_NOTEBOOK_BYTES // 2**20} MB are not graded (clear the outputs and resubmit)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SubmissionError("not a notebook: the file is not UTF-8 text (a zip, PDF or image?)") from None
    if not text.strip():
        raise SubmissionError("not a notebook: the file is empty")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise SubmissionError(f"not a notebook: invalid JSON at line {e.lineno}, column {e.colno} ({e.msg}); "
                              "the file is truncated or was edited outside Jupyter") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise SubmissionError("not a notebook: the JSON has no list of cells")
    notes = []
    version = raw.get("nbformat")
    if version != 4:
        notes.append(f"converted from nbformat {version}" if version else "the file had no nbformat version")
    try:  # version 4 is repaired cell by cell below; older versions go through nbformat's converters
        nb = nbformat.from_dict(raw) if version in (4, None) else nbformat.reads(text, as_version=4)
    except Exception as e:  # nbformat raises many kinds of errors on odd files
        raise SubmissionError(f"not a readable notebook (nbformat {version}): {type(e).__name__}: {e}") from None
    return _repair(nb, notes), notes


def _repair(nb: NotebookNode, notes: list[str]) -> NotebookNode:
    """Give every cell the fields nbformat 4.5 requires, so nbgrader and nbclient can process it."""
    repaired = False
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            repaired = True
            continue
        source = cell.get("source", "")
        cell["source"] = "".join(source) if isinstance(source, list) else str(source)
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"], repaired = NotebookNode(), True
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        cell["id"] = f"cell-{i:04d}"
        cells.append(nbformat.from_dict(cell))
    if repaired:
        notes.append("repaired malformed cells")
    nb["cells"] = cells
    nb["nbformat"], nb["nbformat_minor"] = 4, 5
    if not isinstance(nb.get("metadata"), dict):
        nb["metadata"] = NotebookNode()
    return nb


# ---------------------------------------------------------------------------------------- restoring structure
def _normalise(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _visible(source: str) -> str:
    """A test cell's text without its hidden tests (as the release shows it)."""
    hidden = re.compile(re.escape(BEGIN_HIDDEN) + ".*?" + re.escape(END_HIDDEN) + r"\n?", re.S)
    return _normalise(hidden.sub("", source))


def _meta(cell: NotebookNode) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def _is_test(cell: NotebookNode) -> bool:
    meta = _meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _submitted_keys(nb: NotebookNode, release: NotebookNode, notes: list[str]) -> list[str]:
    """A key per submitted cell: ``id:<grade_id>`` when it is an nbgrader cell of the release, else its text."""
    rel_ids = {_meta(c).get("grade_id") for c in release.cells} - {None}
    locked_text = {_normalise(c.source): _meta(c)["grade_id"] for c in release.cells if _meta(c).get("locked")}
    keys, relabelled = [], []
    for cell in nb.cells:
        grade_id = _meta(cell).get("grade_id")
        if grade_id not in rel_ids:
            cell.metadata.pop("nbgrader", None)
            grade_id = locked_text.get(_normalise(cell.source))
            if grade_id:
                relabelled.append(grade_id)
        keys.append(f"id:{grade_id}" if grade_id else f"text:{cell.cell_type}:{_normalise(cell.source)}")
    if relabelled:
        notes.append(f"nbgrader metadata was missing from {len(relabelled)} test cell(s); matched them by content")
    return keys


def _release_keys(release: NotebookNode) -> list[str]:
    return [f"id:{_meta(c)['grade_id']}" if _meta(c).get("grade_id") else f"text:{c.cell_type}:{_normalise(c.source)}"
            for c in release.cells]


def _pair_block(rel: list[NotebookNode], sub: list[NotebookNode], sub_keys: list[str], i_range: range,
                j_range: range) -> dict[int, int]:
    """Inside an unmatched stretch, pair release solution/answer cells with the student's cells in order."""
    pairs, js = {}, [j for j in j_range if not sub_keys[j].startswith("id:")]
    for i in i_range:
        meta = _meta(rel[i])
        if not meta.get("solution"):
            continue
        while js and sub[js[0]].cell_type != rel[i].cell_type:
            js.pop(0)
        if js:
            pairs[js.pop(0)] = i
    return pairs


def restore_structure(nb: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """Match the submission's cells to the release's, put back missing test cells, drop duplicate ids.

    Cells are matched in order (difflib) by grade id, or by text for cells that lost their metadata.
    A test cell that is missing is re-inserted from the release just before the next cell that
    matched, so it runs after the student's code for that exercise; a duplicated test cell keeps its
    metadata only where it fits the release order (copies run as ordinary code). nbgrader's
    OverwriteCells then restores the source, type and points of every locked cell.
    """
    notes: list[str] = []
    rel, sub = release.cells, nb.cells
    sub_keys, rel_keys = _submitted_keys(nb, release, notes), _release_keys(release)
    matched: dict[int, int] = {}  # submitted index -> release index
    inserts: dict[int, list[int]] = {}  # submitted position -> release indices to insert before it
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, rel_keys, sub_keys, autojunk=False).get_opcodes():
        if tag == "equal":
            matched.update({j1 + k: i1 + k for k in range(i2 - i1)})
            continue
        matched.update(_pair_block(rel, sub, sub_keys, range(i1, i2), range(j1, j2)))
        taken = set(matched.values())
        missing = [i for i in range(i1, i2) if i not in taken and _meta(rel[i]).get("grade")]
        inserts.setdefault(j2, []).extend(missing)
    cells = []
    for j in range(len(sub) + 1):
        for i in inserts.get(j, []):
            cells.append(copy.deepcopy(rel[i]))
            notes.append(f"cell {_meta(rel[i])['grade_id']} was missing; restored from the release")
        if j == len(sub):
            break
        cell = sub[j]
        if j in matched and _meta(rel[matched[j]]):
            if sub_keys[j].startswith("id:") and cell.cell_type != rel[matched[j]].cell_type:
                grade_id = _meta(rel[matched[j]])["grade_id"]
                notes.append(f"cell {grade_id} had been changed to {cell.cell_type}; restored")
            elif _meta(rel[matched[j]]).get("locked") and _visible(cell.source) != _normalise(rel[matched[j]].source):
                notes.append(f"test cell {_meta(rel[matched[j]])['grade_id']} had been edited; restored")
            cell.metadata["nbgrader"] = copy.deepcopy(_meta(rel[matched[j]]))
        elif sub_keys[j].startswith("id:"):
            cell.metadata.pop("nbgrader", None)
            notes.append(f"a copy of cell {sub_keys[j][3:]} ran as ordinary code (duplicate)")
        cells.append(cell)
    if not any(sub_keys[j] == rel_keys[i] for j, i in matched.items()):
        notes.append("the file shares no cells with the release: is it the right notebook?")
    nb.cells = cells
    return nb, notes


def sanitize(nb: NotebookNode, resources: dict) -> NotebookNode:
    """nbgrader's autograde sanitising step: outputs cleared, ids deduplicated, kernelspec and locked cells restored."""
    from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells,
                                        OverwriteKernelspec)

    for preprocessor in (ClearOutput(), DeduplicateIds(), OverwriteKernelspec(), OverwriteCells(), CheckCellMetadata()):
        nb, resources = preprocessor.preprocess(nb, resources)
    return nb


_REVIEW = {
    r"input_transformers|ast_transformers|input_transformer_manager": "touches IPython's input transformers",
    r"set_custom_exc|custom_exceptions": "installs a custom exception handler",
    r"events\.register": "registers an IPython event callback",
    r"meta_path|path_hooks|path_importer_cache|sys\.modules\[": "changes the import system",
    r"_getframe|\.f_back|\.f_locals|inspect\.stack|inspect\.currentframe|gc\.get_":
        "inspects the caller's frames or heap",
    r"__torch_function__|__torch_dispatch__|TorchFunctionMode|TorchDispatchMode": "overrides torch functions",
    r"settrace|setprofile": "installs a tracer",
    r"import builtins|__builtins__|builtins\.": "changes Python builtins",
    r"solutions/|/solutions|gradebook": "looks for the solutions or the gradebook",
    r"induction_course\.(attention|heads|circuits|ablation)|from induction_course import (attention|heads)":
        "imports the course's reference implementation",
    r"grading_guard|_course_guard": "touches the grading guard",
    r"induction_course\.checks|\bnb\d\.\w+\s*=": "uses or patches the course's checks directly",
    r"ctypes|os\._exit": "uses ctypes or os._exit",
}


def review_notes(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Heuristic flags for code a human should look at (only cells the student wrote or edited)."""
    given = {_normalise(c.source) for c in release.cells}
    flags: dict[str, list[int]] = {}
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code" or _normalise(cell.source) in given or _is_test(cell):
            continue
        for pattern, what in _REVIEW.items():
            if re.search(pattern, cell.source):
                flags.setdefault(what, []).append(number)
    return [f"review: cell {', '.join(map(str, sorted(set(n))))} {what}" for what, n in flags.items()]


# ---------------------------------------------------------------------------------------- the sandbox
def sandbox_problem() -> str | None:
    """Why bubblewrap cannot isolate kernels here, or None when it can."""
    missing = [tool for tool in ("bwrap", "prlimit") + (("setpriv",) if os.geteuid() == 0 else ())
               if not shutil.which(tool)]
    if missing:
        return (f"{', '.join(missing)} not found: install Debian's bubblewrap and util-linux "
                "(autograder/install_sandbox.sh), or pass --unsafe-no-sandbox for trusted notebooks only")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = _bwrap_args(Path(tmp), None, Limits()) + [sys.executable, "-c", "print('ok')"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        return (f"bubblewrap cannot create a sandbox here ({proc.stderr.strip() or proc.returncode}); on a desktop "
                "allow unprivileged user namespaces, in a container run it privileged or as root")
    return None


def _ancestors(path: Path) -> list[Path]:
    return list(reversed(path.parents))[1:]


def _bwrap_args(ipc: Path, uid: int | None, limits: Limits, package: Path = PACKAGE) -> list[str]:
    """The bwrap command line: read-only system, python and course package; private /tmp and home; no network."""
    args = ["bwrap", "--die-with-parent", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--clearenv", "--hostname", "grader"]
    if os.geteuid() != 0:
        args.append("--unshare-user")
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for item in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "fonts", "passwd", "group", "mime.types"):
        args += ["--ro-bind-try", f"/etc/{item}", f"/etc/{item}"]
    # Scratch space first, so a course that itself lives under /tmp or /home is bound on top of it.
    size = str(limits.scratch_mb * 2**20)
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm",
             "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "0755", "--dir", "/home", "--perms", "1777", "--size", size, "--tmpfs", "/home/student"]
    mounts = {Path(sys.base_prefix).resolve(), Path(sys.prefix), Path(sys.executable).resolve().parent,
              package.resolve()}
    mounts = {m for m in mounts if not any(m != o and o in m.parents for o in mounts) and not str(m).startswith("/usr")}
    made: set[Path] = {Path(p) for p in ("/", "/usr", "/tmp", "/dev", "/home", "/home/student")}
    for mount in sorted(mounts):
        for parent in _ancestors(mount):
            if parent not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--ro-bind", str(mount), str(mount)]
    args += ["--perms", "0755", "--dir", "/run", "--bind", str(ipc), "/run/kernel", "--chdir", "/home/student"]
    env = {"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": "/home/student",
           "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "NBGRADER_EXECUTION": "autograde", "CUDA_VISIBLE_DEVICES": ""}
    for key, value in env.items():
        args += ["--setenv", key, value]
    args.append("--")
    if uid is not None:
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--"]
    return args


def _limits_args(limits: Limits, uid: int | None) -> list[str]:
    args = ["prlimit", f"--as={limits.memory_mb * 2**20}", f"--fsize={limits.scratch_mb * 2**20}", "--core=0"]
    if uid is not None:
        args.append("--nproc=512")  # counts this job's uid only (threads included)
    return args + ["--"]


def _kernel_manager(job: Job, ipc: Path) -> Any:
    """An AsyncKernelManager whose kernel runs in the sandbox and talks over unix sockets in ``ipc``."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    uid = 200000 + os.getpid() if job.sandbox and os.geteuid() == 0 else None
    inside = "/run/kernel" if job.sandbox else str(ipc)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", f"{inside}/kernel.json",
            "--HistoryManager.hist_file=:memory:"]
    prefix = _limits_args(job.limits, uid) + (_bwrap_args(ipc, uid, job.limits, job.package) if job.sandbox else [])

    class SandboxKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return prefix + argv

        def write_connection_file(self, **kwargs: Any) -> None:
            super().write_connection_file(**kwargs)
            info = json.loads(Path(self.connection_file).read_text())
            info["ip"] = f"{inside}/k"
            (ipc / "kernel.json").write_text(json.dumps(info))
            if uid is not None:
                os.chown(ipc / "kernel.json", uid, uid)

    if uid is not None:  # the kernel may create its sockets here; _run closes the folder once it has
        ipc.chmod(0o733)
    km = SandboxKernelManager(transport="ipc", ip=str(ipc / "k"), connection_file=str(ipc / "host.json"))
    km._kernel_spec = KernelSpec(argv=argv, display_name="Python 3 (sandboxed grader)", language="python",
                                 interrupt_mode="message", env={} if job.sandbox else _plain_env())
    km.context.setsockopt(__import__("zmq").MAXMSGSIZE, 64 * 2**20)
    return km


def _plain_env() -> dict[str, str]:
    return {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NBGRADER_EXECUTION": "autograde",
            "HF_HUB_OFFLINE": "1", "JPY_PARENT_PID": ""}


# ---------------------------------------------------------------------------------------- execution
_SETUP = '''\
def _course_grader_setup():
    import sys
    for name in {modules!r}:
        try:
            __import__(name)
        except Exception:
            pass
    from induction_course import grading_guard
    [sys.modules.pop(m) for m in list(sys.modules) if m.startswith("induction_course")]
    sys.modules["_course_guard"] = grading_guard
    grading_guard.setup({nonce!r}, {package!r})
_course_grader_setup()
del _course_grader_setup
'''
_GUARD = '__import__("sys").modules["_course_guard"].check({stage!r}, {cell!r})'


def _check_modules(nb: NotebookNode) -> list[str]:
    """Modules the test cells import from the course package (loaded before the guard's snapshot)."""
    names: set[str] = set()
    for cell in nb.cells:
        if not _is_test(cell):
            continue
        for module, items in re.findall(r"from\s+(induction_course[\w.]*)\s+import\s+([\w, ]+)", cell.source):
            names.add(module)
            names.update(f"{module}.{item.strip()}" for item in items.split(",") if item.strip())
        names.update(re.findall(r"import\s+(induction_course[\w.]*)", cell.source))
    return sorted(names)


def with_guards(nb: NotebookNode, nonce: str, package: Path) -> tuple[NotebookNode, list[str]]:
    """The notebook to execute: a setup cell, then every test cell between a 'pre' and a 'post' guard cell."""
    setup = nbformat.v4.new_code_cell(_SETUP.format(modules=_check_modules(nb), nonce=nonce, package=str(package)))
    cells, roles = [setup], ["setup"]
    for cell in nb.cells:
        if _is_test(cell):
            grade_id = _meta(cell)["grade_id"]
            cells += [nbformat.v4.new_code_cell(_GUARD.format(stage="pre", cell=grade_id)), cell,
                      nbformat.v4.new_code_cell(_GUARD.format(stage="post", cell=grade_id))]
            roles += [f"pre:{grade_id}", "cell", f"post:{grade_id}"]
        else:
            cells.append(cell)
            roles.append("cell")
    for i, cell in enumerate(cells):
        cell.id = cell.get("id") or f"guard-{i:04d}"
    executable = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata), cells=cells)
    return executable, roles


def _client(nb: NotebookNode, km: Any, limits: Limits) -> Any:
    """nbclient's NotebookClient with nbgrader's execute-reply handling and a cap on stored output."""
    from nbclient import NotebookClient
    from nbgrader.preprocessors import Execute

    class Client(NotebookClient):
        executed: set[int]
        used: dict[int, int]
        current: int = -1

        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            if msg["msg_type"] != "error":
                size = len(json.dumps(msg["content"], default=str))
                self.used[cell_index] = self.used.get(cell_index, 0) + size
                if self.used[cell_index] > limits.output_kb * 1024:
                    if self.used[cell_index] - size <= limits.output_kb * 1024:
                        outs.append(nbformat.v4.new_output("stream", name="stdout", text=(
                            f"\n[grader: output beyond {limits.output_kb} KB was dropped]\n")))
                    return None
            return super().output(outs, msg, display_id, cell_index)

    timeout_error = {"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {limits.cell_timeout} s",
                     "traceback": [f"CellTimeoutError: the cell ran longer than {limits.cell_timeout} s "
                                   "and was interrupted by the grader"]}
    client = Client(nb, km=km, timeout=limits.cell_timeout, iopub_timeout=15, allow_errors=True,
                    interrupt_on_timeout=True, raise_on_iopub_timeout=True, error_on_timeout=timeout_error,
                    shutdown_kernel="immediate", record_timing=False, startup_timeout=120, kernel_name="python3")
    client.executed, client.used = set(), {}

    def on_start(cell: NotebookNode, cell_index: int, **kwargs: Any) -> None:
        client.current = cell_index

    def on_executed(cell: NotebookNode, cell_index: int, execute_reply: dict, **kwargs: Any) -> None:
        Execute.on_cell_executed(client, cell=cell, execute_reply=execute_reply)
        client.executed.add(cell_index)

    client.on_cell_start, client.on_cell_executed = on_start, on_executed
    return client


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and its descendants (read from Linux's /proc)."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, CPU seconds incl. reaped children)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            stats[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / tick)
        except (OSError, ValueError, IndexError):
            continue
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += children.get(current, [])
    return total


async def _run(client: Any, roles: list[str], limits: Limits, log: Any, ipc: Path) -> tuple[str, int]:
    """Execute every code cell; stop at a dead or stuck kernel. Returns (outcome, index of the stopping cell)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    async def cells() -> tuple[str, int]:
        async with client.async_setup_kernel(stdout=log, stderr=log):
            ipc.chmod(0o711)  # sockets exist: the kernel may no longer create files on the host's disk
            for index, cell in enumerate(client.nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    await client.async_execute_cell(cell, index, store_history=roles[index] == "cell")
                except DeadKernelError:
                    return "died", index
                except CellTimeoutError:
                    return "stuck", index
        return "complete", -1

    try:
        return await asyncio.wait_for(cells(), limits.timeout)
    except asyncio.TimeoutError:
        return "deadline", client.current
    finally:
        process = getattr(getattr(client.km, "provisioner", None), "process", None)
        client.kernel_cpu = _tree_cpu(process.pid) if process is not None else 0.0
        try:
            if client.km.has_kernel:
                await client.km.shutdown_kernel(now=True)
        except Exception:  # the kernel is already gone
            pass


def _error(ename: str, evalue: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _proof(cell: NotebookNode, nonce: str, stage: str) -> bool:
    for out in cell.get("outputs", []):
        data = out.get("data", {}).get(grading_guard.MIME) if out.get("output_type") == "display_data" else None
        if isinstance(data, dict) and data.get("nonce") == nonce and data.get("stage") == stage:
            return True
    return False


def _guard_failure(cell: NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}"
    return "its output was suppressed"


_STOPPED = {
    "died": "the kernel died in cell {n} (os._exit, a crash, or out of memory)",
    "stuck": "cell {n} ran past the {t} s limit and did not stop when interrupted",
    "deadline": "the notebook ran past the {T} s limit for a submission, in cell {n}",
}


def finish(exe: NotebookNode, roles: list[str], executed: set[int], outcome: str, stop: int, nonce: str,
           limits: Limits) -> tuple[list[NotebookNode], list[str]]:
    """Check the guards, score what never ran as 0, and return the student's cells (guards removed).

    Raises SubmissionError(kind="refused") when a guard caught tampering or its proof is missing.
    """
    notes: list[str] = []
    setup = exe.cells[0]
    if 0 not in executed or any(o.get("output_type") == "error" for o in setup.outputs):
        failure = _guard_failure(setup) if 0 in executed else _STOPPED.get(outcome, outcome)
        raise SubmissionError(f"the grader's setup cell failed: {failure}", "internal")
    number = {i: n for n, i in enumerate((i for i, r in enumerate(roles) if r == "cell"), 1)}
    stop_text = _STOPPED.get(outcome, "").format(n=number.get(stop, number.get(stop + 1, "?")), t=limits.cell_timeout,
                                                 T=limits.timeout)
    verified: dict[str, set[str]] = {}
    for i, role in enumerate(roles):
        if ":" not in role or i not in executed:
            continue
        stage, grade_id = role.split(":", 1)
        if not _proof(exe.cells[i], nonce, stage):
            raise SubmissionError(f"refused: tampering detected around test cell {grade_id}: "
                                  f"{_guard_failure(exe.cells[i])}", "refused")
        verified.setdefault(grade_id, set()).add(stage)
    cells, unverified = [], 0
    for i, (cell, role) in enumerate(zip(exe.cells, roles)):
        if role != "cell":
            continue
        if i == stop and outcome != "complete" and not any(o.get("ename") == "CellTimeoutError" for o in cell.outputs):
            cell.outputs.append(_error("GraderStopped", stop_text))
        if _is_test(cell):
            grade_id = _meta(cell)["grade_id"]
            if i > stop >= 0 and outcome != "complete":
                cell.outputs.append(_error("NotRun", f"this test did not run: {stop_text}"))
            elif verified.get(grade_id) != {"pre", "post"} and not any(o.output_type == "error" for o in cell.outputs):
                cell.outputs.append(_error("NotVerified", "the grader could not verify this test ran untampered"))
                unverified += 1
            for out in cell.outputs:  # warnings on stderr are not a failure here: checks fail by raising
                if out.output_type == "stream" and out.name == "stderr":
                    out.name = "stdout"
        cells.append(cell)
    if outcome != "complete":
        later = sum(1 for i, c in enumerate(exe.cells) if i > stop and roles[i] == "cell" and _is_test(c))
        notes.append(stop_text + (f"; {later} later test cell(s) scored 0" if later else ""))
    timeouts = [number[i] for i, c in enumerate(exe.cells) if roles[i] == "cell" and i != stop
                and any(o.get("ename") == "CellTimeoutError" for o in c.get("outputs", []))]
    if timeouts:
        notes.append(f"cell(s) {', '.join(map(str, timeouts))} ran past {limits.cell_timeout} s and were interrupted")
    if unverified:
        notes.append(f"{unverified} test cell(s) could not be verified and scored 0")
    return cells, notes


def auto_scores(nb: NotebookNode) -> dict[str, tuple[float | None, float]]:
    """nbgrader's determine_grade for every grade cell: grade_id -> (score or None if manual, max)."""
    from nbgrader.utils import determine_grade, is_grade

    return {_meta(c)["grade_id"]: determine_grade(c) for c in nb.cells if is_grade(c)}


# ---------------------------------------------------------------------------------------- feedback
def _hidden_lines(nb: NotebookNode) -> list[str]:
    lines = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if BEGIN_HIDDEN in line or END_HIDDEN in line:
                inside = BEGIN_HIDDEN in line
            elif inside and len(line.strip()) >= 8:
                lines.append(line.strip())
    return lines


def _redact(text: str, hidden: list[str]) -> str:
    for line in hidden:
        text = text.replace(line, "[hidden test]")
    return text


def feedback_notebook(nb: NotebookNode, manual: dict[str, dict[str, Any]]) -> tuple[NotebookNode, dict]:
    """A copy for students: hidden tests removed (also from outputs), scores and comments as nbgrader's GetGrades."""
    from nbgrader.preprocessors import ClearHiddenTests
    from nbgrader.utils import determine_grade, is_grade, is_solution

    hidden = _hidden_lines(nb)
    fb = copy.deepcopy(nb)
    fb, _ = ClearHiddenTests().preprocess(fb, {})
    score = max_score = 0.0
    for cell in fb.cells:
        meta, grade_id = _meta(cell), _meta(cell).get("grade_id")
        for out in cell.get("outputs", []):
            if out.output_type == "error" and _is_test(cell):
                out.traceback = [f"{out.ename}: {out.evalue}"]
            for key in ("text", "evalue"):
                if isinstance(out.get(key), str):
                    out[key] = _redact(out[key], hidden)
            for mime in ("text/plain", "text/html"):
                if isinstance(out.get("data", {}).get(mime), str):
                    out.data[mime] = _redact(out.data[mime], hidden)
            if "traceback" in out:
                out.traceback = [_redact(line, hidden) for line in out.traceback]
        given = manual.get(grade_id or "", {})
        if is_grade(cell):
            auto, points = determine_grade(cell)
            manual_score = given.get("manual_score")
            value = (manual_score if manual_score is not None else auto or 0.0) + (given.get("extra_credit") or 0.0)
            meta["score"], meta["points"] = value, points
            score, max_score = score + value, max_score + points
        if is_solution(cell):
            meta["comment"] = given.get("comment")
    return fb, {"score": score, "max_score": max_score, "late_penalty": 0}


def write_feedback(nb: NotebookNode, manual: dict[str, dict[str, Any]], row: Row, path: Path) -> None:
    """The nbgrader feedback HTML report (the same template as ``nbgrader generate_feedback``)."""
    import nbgrader
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config

    fb, scores = feedback_notebook(nb, manual)
    base = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [str(base / "templates")]
    config.HTMLExporter.extra_template_paths = [str(base / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    resources = {"nbgrader": {**scores, "student": row.student, "notebook": row.notebook,
                              "assignment": row.notebook}, "metadata": {"name": row.notebook}}
    body, _ = HTMLExporter(config=config).from_notebook_node(fb, resources=resources)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)


def write_failure_feedback(row: Row, path: Path) -> None:
    """A short HTML page for a submission that could not be graded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(row.notebook)}</title>"
                    f"</head><body><h1>{html.escape(row.notebook or row.file)}: not graded</h1>"
                    f"<p>Your submission could not be graded automatically:</p><p><b>{html.escape(row.reason)}</b></p>"
                    "<p>Your instructor has been told. Fix the problem and resubmit, or ask them.</p></body></html>")


# ---------------------------------------------------------------------------------------- one submission (worker)
def _paths(out: Path, student: str, notebook: str) -> tuple[Path, Path]:
    autograded = out / "autograded" / student / notebook / f"{notebook}.ipynb"
    feedback = out / "feedback" / student / notebook / f"{notebook}.html"
    return autograded, feedback


def _prepare(job: Job) -> tuple[NotebookNode, list[str]]:
    """Read, restore and sanitise the submission (trusted code, before anything runs)."""
    s = job.submission
    nb, notes = read_notebook(s.path)
    release = nbformat.read(job.release, as_version=4)
    nb, restored = restore_structure(nb, release)
    resources = {"nbgrader": {"notebook": s.notebook, "assignment": s.notebook, "student": s.student,
                              "db_url": job.source_db}}
    try:
        nb = sanitize(nb, resources)
    except Exception as e:  # nbgrader's validation of the restored metadata
        raise SubmissionError(f"nbgrader could not sanitise the notebook: {type(e).__name__}: {e}") from None
    return nb, notes + restored + review_notes(nb, release)


def _execute(job: Job, nb: NotebookNode) -> tuple[list[NotebookNode], list[str], float]:
    """Run the notebook in a fresh sandboxed kernel; return the student's executed cells and notes."""
    nonce = uuid.uuid4().hex
    exe, roles = with_guards(nb, nonce, job.package)
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        ipc = Path(tmp) / "ipc"
        ipc.mkdir(mode=0o700)
        with open(Path(tmp) / "kernel.log", "w+b") as log:
            km = _kernel_manager(job, ipc)
            client = _client(exe, km, job.limits)
            if not job.sandbox:
                client.resources = {"metadata": {"path": tmp}}
            try:
                outcome, stop = asyncio.run(_run(client, roles, job.limits, log, ipc))
            except Exception as e:  # the kernel could not start: a sandbox or environment problem
                log.seek(0)
                tail = log.read().decode(errors="replace").strip()[-600:]
                reason = f"the kernel could not start: {type(e).__name__}: {e} {tail}"
                raise SubmissionError(reason, "internal") from None
            finally:  # whatever happened, no sandbox outlives its submission
                process = getattr(getattr(km, "provisioner", None), "process", None)
                if process is not None and process.poll() is None:
                    process.kill()
    return *finish(exe, roles, client.executed, outcome, stop, nonce, job.limits), client.kernel_cpu


class _Watchdog(BaseException):  # not an Exception: no handler on the way may swallow it
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Watchdog()


def grade_one(job: Job) -> tuple[Row, str | None]:
    """Grade one submission. Returns its row and, when graded, the executed notebook's path."""
    if threading.current_thread() is not threading.main_thread():
        return _grade_one(job)
    signal.signal(signal.SIGALRM, _alarm)  # a backstop, should the grader itself hang on a submission
    signal.alarm(job.limits.timeout + 120)
    try:
        return _grade_one(job)
    finally:
        signal.alarm(0)


def _grade_one(job: Job) -> tuple[Row, str | None]:
    start = time.monotonic()
    s = job.submission
    row = Row(s.student, s.notebook, "graded", file=str(s.path), sha256=job.sha256, fingerprint=job.fingerprint)
    notes = [s.note] if s.note else []
    autograded, feedback = _paths(job.out, s.student, s.notebook)
    try:
        nb, prepared = _prepare(job)
        cells, ran, row.kernel_cpu_s = _execute(job, nb)
        nb.cells = cells
        from nbgrader.preprocessors import LimitOutput

        nb, _ = LimitOutput().preprocess(nb, {})
        autograded.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, autograded)
        scores = auto_scores(nb)
        row.score = sum(a or 0.0 for a, _ in scores.values())
        row.max_score = sum(m for _, m in scores.values())
        write_feedback(nb, job.manual, row, feedback)
        row.notes = "; ".join(notes + prepared + ran)
        row.seconds = time.monotonic() - start
        return row, str(autograded)
    except SubmissionError as e:
        row.status, row.reason, row.kind = "failed", e.reason, e.kind
    except _Watchdog:
        row.status, row.reason, row.kind = "failed", "the grader stopped responding on this submission", "internal"
    except Exception as e:  # a grader bug must not stop the batch: report it on this row
        row.status, row.reason, row.kind = "failed", f"grader error: {type(e).__name__}: {e}", "internal"
    row.notes, row.score, row.max_score = "; ".join(notes), None, None
    write_failure_feedback(row, feedback)
    row.seconds = time.monotonic() - start
    return row, None


# ---------------------------------------------------------------------------------------- the batch
def _load_state(out: Path) -> dict:
    path = out / ".grading" / "state.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    if state.get("version") != GRADER_VERSION:
        state = {"version": GRADER_VERSION, "sources": {}, "rows": {}}
    return state


def _save_state(out: Path, state: dict) -> None:
    path = out / ".grading" / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.replace(path)


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
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]
        path = _module_path(name, package)
        if path and path not in files:
            files.add(path)
            todo += sorted(_course_imports(path, package))
    return sorted(files)


def package_digest(modules: Iterable[str], package: Path) -> str:
    """Digest of the grader and of the course code the notebook's checks load (not the whole package)."""
    h = hashlib.sha256()
    for path in [Path(__file__), Path(grading_guard.__file__)] + course_files(modules, package):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def fingerprint(source_digest: str, package: str, limits: Limits, sandbox: bool) -> str:
    """What besides the submission decides its grade: grader, notebook source, course package, limits."""
    text = json.dumps([GRADER_VERSION, source_digest, package, asdict(limits), sandbox])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reusable(previous: dict | None, sha: str, fp: str) -> bool:
    return bool(previous) and previous["sha256"] == sha and previous["fingerprint"] == fp and (
        previous["status"] == "graded" or previous["kind"] in ("input", "refused"))


def _timestamp(path: Path) -> str | None:
    stamp = path.parent / "timestamp.txt"
    return stamp.read_text().strip() or None if stamp.is_file() else None


def write_csv(rows: Iterable[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (r.student, r.notebook, r.file)):
            writer.writerow(row.csv_row())
    tmp.replace(path)


def _pool(jobs: int) -> ProcessPoolExecutor:
    # fork: workers start with nbgrader already imported, and callers need no `if __name__ == "__main__"`
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method))


def run_jobs(todo: list[Job], jobs: int, on_result: Callable[[Job, Row, str | None], None]) -> None:
    """Grade ``todo`` on ``jobs`` worker processes; a crashed worker fails only its own submissions."""
    import jupyter_client.manager  # noqa: F401  (imported once here, so forked workers start warm)
    import nbclient  # noqa: F401
    import nbconvert.exporters  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401

    attempts: dict[int, int] = {}
    remaining = list(enumerate(todo))
    while remaining:
        retry = []
        with _pool(jobs) as pool:
            futures: dict[Future, tuple[int, Job]] = {pool.submit(grade_one, job): (n, job) for n, job in remaining}
            for future in as_completed(futures):
                n, job = futures[future]
                try:
                    row, autograded = future.result()
                except BrokenProcessPool:
                    attempts[n] = attempts.get(n, 0) + 1
                    if attempts[n] < 2:
                        retry.append((n, job))
                        continue
                    row, autograded = _internal_failure(job, "the grader's worker process crashed twice"), None
                except Exception as e:
                    row, autograded = _internal_failure(job, f"grader error: {type(e).__name__}: {e}"), None
                on_result(job, row, autograded)
        remaining = retry


def _internal_failure(job: Job, reason: str) -> Row:
    s = job.submission
    return Row(s.student, s.notebook, "failed", reason=reason, kind="internal", file=str(s.path), sha256=job.sha256,
               fingerprint=job.fingerprint)


def grade(submissions: Path, assignment: str | None = None, out: Path | None = None, jobs: int | None = None,
          limits: Limits = Limits(), force: bool = False, course: Course | None = None, sandbox: bool = True,
          echo: Callable[[str], None] = print) -> list[Row]:
    """Grade every submission under ``submissions``; write ``out/grades.csv``; return all rows of ``out``."""
    from nbgrader.api import Gradebook

    course = course or Course.default()
    out = (out or course.root / "autograder").resolve()
    scripts = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from here when it creates a gradebook
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    submissions = Path(submissions)
    known = catalog(course)
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder of submissions")
    if assignment and assignment not in known:
        raise GradingError(f"unknown notebook {assignment!r}; the course has: {', '.join(known) or 'none'}")
    problem = sandbox_problem() if sandbox else None
    if problem:
        raise GradingError(problem)
    if not sandbox:
        echo("WARNING: --unsafe-no-sandbox: student code runs with your permissions; trusted notebooks only.")
    found = find_submissions(submissions, known, assignment)
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out)
    names = sorted({s.notebook for s in found if s.notebook})
    snapshot, broken = sync_gradebook(course, out, names, state)
    for name, reason in broken.items():
        echo(f"cannot grade {name}: {reason}")
    digests = {name: package_digest(_check_modules(nbformat.read(course.notebook(name), as_version=4)), course.package)
               for name in names}
    url = db_url(out / "gradebook.db")
    rows = {key: Row(**value) for key, value in state["rows"].items()}
    todo: list[Job] = []
    with Gradebook(url) as gb:
        for s in found:
            sha = file_sha256(s.path)
            if not s.notebook or s.notebook in broken:
                reason = broken.get(s.notebook, s.note).splitlines()[0]
                rows[s.key] = Row(s.student, s.notebook, "failed", reason=reason, kind="input" if not s.notebook
                                  else "internal", file=str(s.path), sha256=sha)
                continue
            fp = fingerprint(state["sources"][s.notebook], digests[s.notebook], limits, sandbox)
            if not force and _reusable(state["rows"].get(s.key), sha, fp):
                continue
            todo.append(Job(s, _release_path(out, s.notebook), db_url(snapshot, read_only=True), out, limits,
                            course.package, sandbox, fp, sha, manual_grades(gb, s.notebook, s.student)))
        reused = len(found) - len(todo)
        echo(f"{len(found)} submission(s) found; grading {len(todo)}, {reused} unchanged "
             f"(--force regrades them), on {jobs or default_jobs()} worker(s)")
        done, saved = 0, [time.monotonic()]

        def record(job: Job, row: Row, autograded: str | None) -> None:
            nonlocal done
            done += 1
            if row.status == "graded" and autograded:
                try:
                    save_grades(gb, url, row, nbformat.read(autograded, as_version=4), _timestamp(job.submission.path))
                except Exception as e:
                    row.status, row.kind = "failed", "internal"
                    row.reason = f"could not save grades to the gradebook: {type(e).__name__}: {e}"
            rows[job.submission.key] = row
            state["rows"][job.submission.key] = asdict(row)
            if time.monotonic() - saved[0] > 10:  # progress survives a crash; not O(class size) per result
                _save_state(out, state)
                saved[0] = time.monotonic()
            result = (f"{row.score:g}/{row.max_score:g}" if row.status == "graded" else f"FAILED: {row.reason}")
            echo(f"[{done}/{len(todo)}] {row.student} {row.notebook}: {result} ({row.seconds:.1f} s)")

        run_jobs(todo, jobs or default_jobs(), record)
        for key, row in rows.items():
            if row.status == "graded":
                try:
                    refresh_score(gb, row)
                except Exception:  # the gradebook lost this submission: keep the last known score
                    pass
            state["rows"][key] = asdict(row)
    _save_state(out, state)
    write_csv(rows.values(), out / "grades.csv")
    failed = sum(r.status == "failed" for r in rows.values())
    echo(f"wrote {out / 'grades.csv'}: {len(rows) - failed} graded, {failed} failed; "
         f"feedback in {out / 'feedback'}")
    return sorted(rows.values(), key=lambda r: (r.student, r.notebook, r.file))


# ---------------------------------------------------------------------------------------- benchmark
def _burn(n: int) -> float:
    start, x = time.perf_counter(), 0
    for i in range(n):
        x += i
    return time.perf_counter() - start


def cpu_ceiling(jobs: int, n: int = 10_000_000) -> float:
    """Speed-up of a pure CPU task on ``jobs`` processes right now: the best any parallel grader could do here."""
    start = time.perf_counter()
    for _ in range(jobs):
        _burn(n)
    serial = time.perf_counter() - start
    with _pool(jobs) as pool:
        start = time.perf_counter()
        list(pool.map(_burn, [n] * jobs))
        parallel = time.perf_counter() - start
    return serial / parallel


def _cpu_seconds(who: int) -> float:
    import resource

    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def bench(copies: int = 100, jobs: int | None = None, notebook: str = "01_attention", course: Course | None = None,
          limits: Limits = Limits(), echo: Callable[[str], None] = print) -> dict[str, float]:
    """Grade ``copies`` copies of the solution one at a time, then in parallel; print and return the figures.

    Besides wall-clock times it prints CPU seconds of the main process (gradebook writes: the serial part)
    and of the workers and kernels, and the speed-up a pure CPU task gets on this machine just before and
    after (the ceiling when other work shares the cores).
    """
    import resource

    course = course or Course.default()
    jobs = jobs or default_jobs()
    ceiling_before = cpu_ceiling(jobs)
    figures: dict[str, float] = {"copies": copies, "jobs": jobs, "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for n in range(copies):
            shutil.copyfile(course.notebook(notebook), folder / f"student{n:04d}.ipynb")
        for label in ("serial", "parallel"):  # nbgrader generate_assignment, once per gradebook, is not timed
            state = _load_state(Path(tmp) / label)
            _, broken = sync_gradebook(course, Path(tmp) / label, [notebook], state)
            if broken:
                raise GradingError(broken[notebook])
            _save_state(Path(tmp) / label, state)
        for label, workers in (("serial", 1), ("parallel", jobs)):
            main, children = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            rows = grade(folder, notebook, Path(tmp) / label, workers, limits, force=True, course=course,
                         echo=lambda line: None)
            figures[f"{label}_s"] = time.perf_counter() - start
            figures[f"{label}_main_cpu_s"] = _cpu_seconds(resource.RUSAGE_SELF) - main
            figures[f"{label}_worker_cpu_s"] = _cpu_seconds(resource.RUSAGE_CHILDREN) - children
            figures[f"{label}_failed"] = sum(r.status != "graded" for r in rows)
            figures[f"{label}_kernel_cpu_s"] = sum(r.kernel_cpu_s for r in rows)
            echo(f"{label}: {copies} submissions on {workers} worker(s) in {figures[f'{label}_s']:.1f} s "
                 f"({figures[f'{label}_s'] / copies:.2f} s per submission, {figures[f'{label}_failed']:g} failed); "
                 f"CPU per submission: {figures[f'{label}_main_cpu_s'] / copies:.2f} s main process, "
                 f"{figures[f'{label}_worker_cpu_s'] / copies:.2f} s worker, "
                 f"{figures[f'{label}_kernel_cpu_s'] / copies:.2f} s kernel")
    figures["speedup"] = figures["serial_s"] / figures["parallel_s"]
    figures["cpu_ceiling"] = (ceiling_before + cpu_ceiling(jobs)) / 2
    total = figures["parallel_main_cpu_s"] + figures["parallel_worker_cpu_s"] + figures["parallel_kernel_cpu_s"]
    figures["amdahl_bound"] = total / max(figures["parallel_main_cpu_s"], total / jobs)
    echo(f"speed-up with {jobs} workers: {figures['speedup']:.2f}x; a pure CPU task gets "
         f"{figures['cpu_ceiling']:.2f}x on this machine now (load average {figures['load_average']:.1f}); "
         f"with {jobs} idle cores the grader's CPU split bounds it at {figures['amdahl_bound']:.2f}x")
    return figures
