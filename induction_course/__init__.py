"""Shared helpers for the Induction Heads from Scratch course.

Modules are named after what they hold: ``attention`` (reference maths), ``models``,
``data``, ``device``, ``plotting`` and ``checks`` (the feedback shared by students and grading).
"""
__version__ = "0.1.0"
