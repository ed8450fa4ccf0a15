"""A tokenizer for the course's number-token models, so string-based TransformerLens tools work.

The course's models read token ids, not text. A few TransformerLens tools, such as
``transformer_lens.head_detector.detect_head``, only accept strings and call ``model.to_tokens``.
:class:`IdTokenizer` reads a string of space-separated ids (``"BOS"`` for token 0) back into exactly
those ids, so ``detect_head(model, tokens_to_text(tokens), ...)`` scores the same tokens we would.
"""
from __future__ import annotations

import torch

from induction_course.data import BOS


class IdTokenizer:
    """Turns ``"BOS 5 17 3"`` into ``tensor([[0, 5, 17, 3]])``; every string must have the same length."""

    bos_token = "BOS"
    padding_side = "right"

    def __call__(self, texts: str | list[str], return_tensors: str = "pt", **_: object) -> dict[str, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else texts
        ids = [[BOS if word == self.bos_token else int(word) for word in text.split()] for text in texts]
        return {"input_ids": torch.tensor(ids, dtype=torch.long)}


def tokens_to_text(tokens: torch.Tensor) -> list[str]:
    """One string per sequence, readable by :class:`IdTokenizer`. tokens: [batch, pos]."""
    return [" ".join("BOS" if int(t) == BOS else str(int(t)) for t in row) for row in tokens]
