"""Where the course's repository is, for code that runs from a checkout (an editable install).

``ROOT`` is defined once, in :mod:`induction_course.colab` (which must import only the standard library, since
it runs as a script on Colab before anything is installed); the build (``course_tools``) reads it from here. ``MASTERS`` holds each notebook's percent-format master (see CONTRIBUTING.md).
"""
from induction_course.colab import PYPROJECT, ROOT

__all__ = ["MASTERS", "PYPROJECT", "ROOT"]
MASTERS = ROOT / "masters"
