"""Tiny attention-only transformers built with TransformerLens 4 (no downloads)."""
from __future__ import annotations

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from induction_course.device import pick_device


def make_config(
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    d_head: int = 16,
    n_ctx: int = 64,
    d_vocab: int = 64,
    seed: int = 0,
    normalization_type: str | None = "LN",
    positional_embedding_type: str = "standard",
) -> TransformerBridgeConfig:
    """Config of an attention-only model; every field the course relies on is explicit."""
    return TransformerBridgeConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_head,
        n_ctx=n_ctx,
        d_vocab=d_vocab,
        attn_only=True,
        normalization_type=normalization_type,
        positional_embedding_type=positional_embedding_type,
        seed=seed,
    )


def make_model(device: torch.device | str | None = None, **config) -> TransformerBridge:
    """Build a seeded attention-only ``TransformerBridge`` on ``device`` (default: ``pick_device()``).

    Keyword arguments go to :func:`make_config`.
    """
    cfg = make_config(**config)
    return TransformerBridge.boot_native(cfg, device=device or pick_device())
