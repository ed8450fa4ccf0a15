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


def plain_parameters(model: TransformerBridge) -> dict[str, torch.Tensor]:
    """The bridge's own parameters (and the unembedding bias buffer), by their plain-torch names.

    Names follow the native module, e.g. ``tok_embed.weight``, ``layers.0.attn.q.weight``, ``ln_out.bias``,
    ``head.weight``. The tensors are the model's: training them trains the bridge.
    """
    native = model.original_model
    tensors = dict(native.named_parameters()) | dict(native.named_buffers())
    return {name.replace("._original_component", ""): t for name, t in tensors.items()
            if not name.endswith(("causal_mask", "cos_cached", "sin_cached"))}


def plain_forward(model: TransformerBridge, tokens: torch.Tensor, params: dict[str, torch.Tensor] | None = None,
                  patterns: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The bridge's forward pass in plain torch, without hooks: tokens [batch, pos] -> logits [batch, pos, d_vocab].

    Computes what ``model(tokens)`` computes, from the same parameters, for the attention-only, LayerNorm,
    rotary or standard-position models :func:`make_model` builds. Training steps use it because it skips the
    bridge's hook machinery; every analysis still runs through the bridge. ``params`` defaults to
    :func:`plain_parameters` (pass it once to save the lookup on every step). If ``patterns`` is a list, each
    layer's attention pattern [batch, head, q_pos, k_pos] is appended to it.
    """
    cfg, native = model.cfg, model.original_model
    p = params or plain_parameters(model)
    n = tokens.shape[1]
    x = p["tok_embed.weight"][tokens]  # [batch, pos, d_model]
    if native.pos is not None:
        x = x + p["pos.weight"][:n]
    mask = torch.ones(n, n, dtype=torch.bool, device=tokens.device).triu(1)
    for layer in range(cfg.n_layers):
        x = x + _plain_attention(model, p, layer, _plain_norm(cfg, p, f"layers.{layer}.ln1", x), mask, patterns)
    logits = _plain_norm(cfg, p, "ln_out", x) @ p["head.weight"].T
    return logits + p["head.bias"] if "head.bias" in p else logits


def _plain_norm(cfg: TransformerBridgeConfig, p: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm ``name`` of x [batch, pos, d_model] (identity when the model has none)."""
    if cfg.normalization_type is None:
        return x
    x = x - x.mean(-1, keepdim=True)  # the bridge's own arithmetic, so the two agree to rounding
    return x / (x.pow(2).mean(-1, keepdim=True) + cfg.eps).sqrt() * p[f"{name}.weight"] + p[f"{name}.bias"]


def _plain_attention(model: TransformerBridge, p: dict[str, torch.Tensor], layer: int, x: torch.Tensor,
                     mask: torch.Tensor, patterns: list[torch.Tensor] | None) -> torch.Tensor:
    """Layer ``layer``'s attention output [batch, pos, d_model] from its normalised input x [batch, pos, d_model]."""
    cfg = model.cfg
    batch, n, _ = x.shape
    name = f"layers.{layer}.attn"
    q, k, v = (torch.nn.functional.linear(x, p[f"{name}.{w}.weight"], p[f"{name}.{w}.bias"])
               .view(batch, n, cfg.n_heads, cfg.d_head).transpose(1, 2) for w in "qkv")  # [batch, head, pos, d_head]
    rotary = model.original_model.rotary
    if rotary is not None:
        q, k = rotary.apply_rope(q, k)
    scale = 1 / model.original_model.layers[layer]._original_component.attn._original_component.scale
    if patterns is None:  # the fused kernel: same maths, cheaper backward
        z = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    else:
        pattern = (q @ k.transpose(-1, -2) * scale).masked_fill(mask, float("-inf")).softmax(dim=-1)
        patterns.append(pattern)
        z = pattern @ v
    z = z.transpose(1, 2).reshape(batch, n, cfg.n_heads * cfg.d_head)
    return torch.nn.functional.linear(z, p[f"{name}.o.weight"], p[f"{name}.o.bias"])
