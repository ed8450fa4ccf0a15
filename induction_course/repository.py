"""Where the course's repository is, for code that runs from a checkout (an editable install).

``ROOT`` is defined here once; the build (``course_tools``) and the setup cell (:mod:`induction_course.colab`)
read it. ``MASTERS`` holds each notebook's percent-format master (see CONTRIBUTING.md).
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
MASTERS = ROOT / "masters"
