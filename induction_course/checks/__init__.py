"""Checks shared by the notebooks' check cells and nbgrader's graded cells.

``core`` holds the engine; ``nb1`` ... ``nb4`` hold one notebook's exercises each.
Graded cells purge ``induction_course`` from ``sys.modules`` and import these afresh, so
a monkeypatch made in an earlier cell cannot switch a check off.
"""
from induction_course.checks.core import Bug, CheckFailed, Exercise, run_check

__all__ = ["Bug", "CheckFailed", "Exercise", "run_check"]
