"""Checks shared by the notebooks' check cells and nbgrader's graded cells.

``core`` holds the engine; ``nb1`` ... ``nb5`` hold one notebook's exercises each; ``record`` is the record a
graded check emits for the grader (``course grade``) to judge outside the kernel; ``symptoms`` describes a wrong
tensor no known bug explains. Before every graded cell the grader's guard (``autograder/guard.py``) purges
``induction_course`` from ``sys.modules``, so that a monkeypatch made in an earlier cell cannot switch a check off.
"""
from induction_course.checks.core import Bug, CheckFailed, Exercise, run_check

__all__ = ["Bug", "CheckFailed", "Exercise", "run_check"]
