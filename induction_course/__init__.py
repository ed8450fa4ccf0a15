"""Shared helpers for the Induction Heads from Scratch course.

Modules are named after what they hold:
- maths and models: ``attention`` (reference attention), ``heads`` (head scores), ``circuits``
  (composition, copying, ICL), ``training``, ``ablation``, ``handbuilt``, ``models``, ``data``, ``device``;
- pictures: ``plotting`` (with ``jupyter_extension`` serving circuitsvis offline);
- feedback and grading: ``checks`` (shared by check cells and graded cells), ``grading`` and
  ``grading_guard`` (sandboxed class grading), ``autograde`` (plain nbgrader for trusted notebooks);
- tooling: ``notebooks`` (build), ``colab``, ``environment`` (lock), ``benchmark``, ``tokenizer``, ``cli``.
"""
from induction_course.threads import apply_policy

__version__ = "0.1.0"
apply_policy()  # one torch thread unless you chose otherwise: see induction_course/threads.py
