"""Notebook 1 (attention from scratch): mistakes students make, and correct alternatives."""
from __future__ import annotations

import math

import torch

from catalogue import Correct, Mistake
from induction_course.checks import nb1


def _scores_unscaled(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k)


def _scores_sdpa_style(q, k):
    return (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)) / q.shape[-1] ** 0.5


MISTAKES = [
    Mistake(nb1.check_attention_scores, (_scores_unscaled,), "missing 1/sqrt(d_head)", "1/sqrt(d_head)"),
]
CORRECT = [
    Correct(nb1.check_attention_scores, (_scores_sdpa_style,), "matmul with transposes",
            hidden={"seeds": (11, 12), "shapes": ({}, {"pos": 1})}),
]
