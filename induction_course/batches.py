"""The training data of the course's attention-only models (Notebook 3): repeated random blocks and shuffled decks.

See :mod:`induction_course.training` for why the data is made this way; ``HELD_OUT_LENGTHS`` never occur in
training, and scores are measured on them.
"""
from __future__ import annotations

import torch

from induction_course.data import BOS

HELD_OUT_LENGTHS = (13, 19, 23)
TRAIN_LENGTHS = tuple(n for n in range(4, 31) if n not in HELD_OUT_LENGTHS)
SHUFFLED_SHARE = 0.1875


def repeating_batch(batch: int, seq_len: int, d_vocab: int, generator: torch.Generator,
                    lengths: tuple[int, ...] = TRAIN_LENGTHS) -> tuple[torch.Tensor, torch.Tensor]:
    """``[BOS]`` then a random block of random length (one of ``lengths``) repeated to fill ``seq_len``.

    Returns (tokens [batch, seq_len] long, repeated [batch, seq_len - 1] bool). ``repeated[b, i]``
    says whether the token at ``i + 1`` (the target predicted at position ``i``) is induction-
    predictable: it and the token before it both lie in a later copy of the block, so the same
    pair occurred earlier. The first token of the second copy follows a first-copy token, so it
    counts as unrepeated.
    """
    block_len = torch.tensor(lengths)[torch.randint(len(lengths), (batch,), generator=generator)]
    blocks = torch.randint(1, d_vocab, (batch, max(lengths)), generator=generator)
    offset = torch.arange(seq_len - 1)  # position in the repeating part, i.e. token position - 1
    body = blocks.gather(1, offset % block_len[:, None])
    tokens = torch.cat([torch.full((batch, 1), BOS, dtype=torch.long), body], dim=1)
    return tokens, offset > block_len[:, None]


def shuffled_batch(batch: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """``[BOS]`` then a shuffled deck: the tokens 1 … ``seq_len - 1``, each exactly once: [batch, seq_len] long.

    Nothing repeats, so a token already dealt never comes again, and late in the sequence only a few
    tokens remain: a head that attends to every earlier token and lowers their logits pays off.
    """
    deck = torch.rand(batch, seq_len - 1, generator=generator).argsort(dim=1) + 1
    return torch.cat([torch.full((batch, 1), BOS, dtype=torch.long), deck], dim=1)


def training_batch(batch: int, seq_len: int, d_vocab: int, generator: torch.Generator,
                   shuffled_share: float = SHUFFLED_SHARE) -> tuple[torch.Tensor, torch.Tensor]:
    """The training data: :func:`repeating_batch` rows, then a ``shuffled_share`` of :func:`shuffled_batch` rows.

    Returns (tokens [batch, seq_len] long, repeated [batch, seq_len - 1] bool), as :func:`repeating_batch`;
    no target of a shuffled row is repeated.
    """
    n_shuffled = round(batch * shuffled_share)
    tokens, repeated = repeating_batch(batch - n_shuffled, seq_len, d_vocab, generator)
    return (torch.cat([tokens, shuffled_batch(n_shuffled, seq_len, generator)]),
            torch.cat([repeated, torch.zeros(n_shuffled, seq_len - 1, dtype=torch.bool)]))
