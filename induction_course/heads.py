"""Scores that say what a head does, computed from attention patterns.

Every score averages attention probability over the batch and the scored query positions,
so it lies in [0, 1]. ``pattern`` is always [batch, head, q_pos, k_pos].
"""
from __future__ import annotations

import torch


def diagonal_score(pattern: torch.Tensor, offset: int, first_query: int | None = None) -> torch.Tensor:
    """Mean attention from query i to key i - offset, per head: [head].

    Queries before ``first_query`` (default: ``offset``, the first with such a key) are skipped.
    """
    start = offset if first_query is None else first_query
    stripe = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [batch, head, q_pos - offset]
    return stripe[..., start - offset:].mean(dim=(0, -1))


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each position i >= 1 to i - 1, per head: [head]."""
    return diagonal_score(pattern, offset=1)


def current_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each position to itself, per head: [head]."""
    return diagonal_score(pattern, offset=0)


def first_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each position i >= 1 to position 0 (BOS), per head: [head]."""
    return pattern[..., 1:, 0].mean(dim=(0, -1))


def induction_score(pattern: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Prefix-matching score on ``[BOS] R R`` with |R| = ``seq_len``, per head: [head].

    A query in the second copy at position i attends to i - (seq_len - 1): the token right
    after the earlier occurrence of the current token. Only second-copy queries are scored.
    """
    return diagonal_score(pattern, offset=seq_len - 1, first_query=seq_len + 1)


def spread_score(pattern: torch.Tensor, first_query: int = 8) -> torch.Tensor:
    """How evenly each head spreads its attention over the earlier tokens (BOS left out), per head: [head].

    For each query from ``first_query`` on, the entropy of its attention over keys 1 … i (renormalised)
    divided by the largest possible, log i; averaged over batch and queries. 1 means perfectly even
    (an averaging head), 0 means all on one token (a previous-token head is near 0).
    """
    keys = pattern[..., first_query:, 1:]  # [batch, head, q, k - 1]
    keys = keys / keys.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    entropy = -(keys * keys.clamp(min=1e-12).log()).sum(dim=-1)  # [batch, head, q]
    n_keys = torch.arange(first_query, pattern.shape[-2], device=pattern.device).clamp(min=2)
    return (entropy / n_keys.log()).mean(dim=(0, -1))
