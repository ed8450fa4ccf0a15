"""Shared helpers for the Induction Heads from Scratch course: what the notebooks import.

Modules are named after what they hold:
- maths and models: ``attention`` (reference attention), ``heads`` (head scores), ``circuits``
  (composition, copying, ICL), ``training`` (the loop), ``batches`` (its data), ``checkpoint_files`` (the saved
  models), ``ablation``, ``handbuilt``, ``models``, ``data``, ``tokenizer`` (token ids as text, for TransformerLens's string tools), ``device``;
- pictures: ``plotting`` (with ``jupyter_extension`` serving circuitsvis offline), ``progress`` (live progress
  that saves as one line);
- feedback: ``checks`` (shared by check cells and graded cells; the grader itself is the separate
  ``autograder`` package, for instructors);
- setup: ``colab`` (the notebooks' Colab setup cell and its installer), ``threads`` (the thread policy applied
  on import, below), ``repository`` (where the checkout is).

It imports neither the grader (``autograder``) nor the maintainers' tools (``course_tools``), which sit above it
(``tests/test_layout.py`` asserts it).
"""
from induction_course.threads import apply_policy, prepare_environment

_PASSIVE = prepare_environment()  # before torch loads: see induction_course/threads.py

__version__ = "0.1.0"
apply_policy(_PASSIVE)  # passive waiting threads, or one thread; your own choice is kept
