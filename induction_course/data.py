"""Seeded token generators. Token 0 is BOS everywhere in the course."""
from __future__ import annotations

import torch

BOS = 0


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_tokens(batch: int, seq_len: int, d_vocab: int, seed: int = 0) -> torch.Tensor:
    """Uniform random non-BOS tokens, shape [batch, seq_len], dtype long."""
    return torch.randint(1, d_vocab, (batch, seq_len), generator=_generator(seed))


def repeated_tokens(batch: int, seq_len: int, d_vocab: int, seed: int = 0) -> torch.Tensor:
    """``[BOS] R R`` with ``R`` random of length ``seq_len``: shape [batch, 1 + 2 * seq_len]."""
    r = random_tokens(batch, seq_len, d_vocab, seed)
    bos = torch.full((batch, 1), BOS, dtype=torch.long)
    return torch.cat([bos, r, r], dim=1)
