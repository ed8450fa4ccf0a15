"""Notebook 2: mistakes students make, and correct alternatives (to be written)."""
from __future__ import annotations

MISTAKES = []
CORRECT = []
