"""What every stage of the grader shares: its limits, the course it grades, the records it passes along
(a submission found, a file skipped, a row of grades.csv, a job for a worker) and its two errors.

Light on purpose: ``course --help`` imports this module, so it imports nothing heavy.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRADER = Path(__file__).resolve().parent  # this package: its files are part of every row's fingerprint
ROOT = GRADER.parent  # the course repository
GRADER_VERSION = "2"
CSV_FIELDS = ("student", "notebook", "status", "score", "max_score", "reason", "notes", "needs_manual_grade",
              "file", "sha256")
SKIPPED_FIELDS = ("file", "student", "reason")
MAX_NOTEBOOK_BYTES = 50 * 2**20


class GradingError(RuntimeError):
    """The batch cannot start (bad arguments, no sandbox, a broken course source, an unsafe --out)."""


class SubmissionError(Exception):
    """One submission cannot be graded; ``kind`` is input, refused or internal (only internal is retried)."""

    def __init__(self, reason: str, kind: str = "input"):
        super().__init__(reason)
        self.reason, self.kind = reason, kind


def course_package() -> Path:
    """The folder of the ``induction_course`` package, found without importing it."""
    spec = importlib.util.find_spec("induction_course")
    if spec is None or not spec.origin:
        raise GradingError("the induction_course package is not installed (pip install -e . in the repository)")
    return Path(spec.origin).resolve().parent


def default_jobs() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission (all part of its fingerprint: changing one regrades)."""

    cell_timeout: int = 300  # seconds a cell may run before it is interrupted (Notebook 3 trains in one)
    timeout: int = 900  # seconds for the whole notebook, kernel start included
    memory_mb: int = 4096  # address space of the kernel (torch alone maps about 2.5 GB)
    output_kb: int = 1024  # ordinary output kept per cell; errors are always kept
    record_kb: int = 8192  # per cell, for outputs the trusted side decodes (executing.RECORD_MIME)
    scratch_mb: int = 256  # size of each private tmpfs (/tmp and the home folder)


@dataclass(frozen=True)
class Course:
    """Where an nbgrader course keeps its source notebooks and configuration, and the package its checks use."""

    root: Path
    config: Path
    source: Path
    package: Path = field(default_factory=course_package)

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
    """One student's file for one notebook, as found under SUBMISSIONS (nothing of it read yet).

    ``notebook`` is empty when it could not be identified; ``problem`` says why it fails before it is
    read (a symbolic link); ``timestamp`` is nbgrader's ``timestamp.txt`` beside it, if any.
    """

    student: str
    root: Path  # SUBMISSIONS
    rel: str  # the file's path under SUBMISSIONS, "/"-separated
    notebook: str = ""
    note: str = ""
    problem: str = ""
    timestamp: str | None = None

    @property
    def path(self) -> Path:
        return self.root / self.rel

    @property
    def key(self) -> str:
        return f"{self.student}/{self.notebook or self.rel}"


@dataclass(frozen=True)
class Skipped:
    """A file (or a folder of files) under SUBMISSIONS that is not graded, and why: one line of skipped.csv."""

    file: str
    student: str
    reason: str


@dataclass
class Row:
    """One line of grades.csv (and of the re-run state)."""

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
    manual: str = ""  # digest of the manual grades and comments its feedback shows
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
    package: Path  # the course package, bound read-only into the sandbox
    sandbox: bool
    fingerprint: str
    sha256: str
    manual: dict[str, dict[str, Any]] = field(default_factory=dict)  # grade_id -> manual score/comment
