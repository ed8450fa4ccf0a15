"""Reference causal self-attention, one readable step per function.

Shapes use these names: ``batch``, ``pos`` (also ``q_pos`` / ``k_pos``), ``head``,
``d_head`` and ``d_model``. Every function is pure: it never changes its inputs.
These are the implementations the checks compare student code against.
"""
from __future__ import annotations

import math

import torch


def project(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-head linear map of the residual stream (queries, keys or values).

    x: [batch, pos, d_model]; W: [head, d_model, d_head]; b: [head, d_head]
    returns [batch, pos, head, d_head]
    """
    return torch.einsum("bpm,hmd->bphd", x, W) + b


def attention_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Scaled dot products of every query with every key.

    q, k: [batch, pos, head, d_head] -> [batch, head, q_pos, k_pos]
    """
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])


def apply_causal_mask(scores: torch.Tensor) -> torch.Tensor:
    """Set every score of a key after its query to -inf.

    scores: [batch, head, q_pos, k_pos] -> same shape
    """
    n_q, n_k = scores.shape[-2:]
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf"))


def attention_pattern(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal attention probabilities: each query's distribution over keys.

    q, k: [batch, pos, head, d_head] -> [batch, head, q_pos, k_pos]; rows sum to 1.
    """
    return apply_causal_mask(attention_scores(q, k)).softmax(dim=-1)


def weighted_values(pattern: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Each query's average of the value vectors, weighted by its pattern (``z``).

    pattern: [batch, head, q_pos, k_pos]; v: [batch, k_pos, head, d_head]
    returns [batch, q_pos, head, d_head]
    """
    return torch.einsum("bhqk,bkhd->bqhd", pattern, v)


def attention_output(z: torch.Tensor, W_O: torch.Tensor, b_O: torch.Tensor) -> torch.Tensor:
    """Project every head's z back to the residual stream and sum over heads.

    z: [batch, pos, head, d_head]; W_O: [head, d_head, d_model]; b_O: [d_model]
    returns [batch, pos, d_model]
    """
    return torch.einsum("bphd,hdm->bpm", z, W_O) + b_O


def attention_layer(
    x: torch.Tensor,
    W_Q: torch.Tensor, b_Q: torch.Tensor,
    W_K: torch.Tensor, b_K: torch.Tensor,
    W_V: torch.Tensor, b_V: torch.Tensor,
    W_O: torch.Tensor, b_O: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A whole causal attention layer.

    x: [batch, pos, d_model] (the layer's input, after any LayerNorm)
    returns (pattern [batch, head, q_pos, k_pos], z [batch, pos, head, d_head],
    out [batch, pos, d_model])
    """
    q, k, v = project(x, W_Q, b_Q), project(x, W_K, b_K), project(x, W_V, b_V)
    pattern = attention_pattern(q, k)
    z = weighted_values(pattern, v)
    return pattern, z, attention_output(z, W_O, b_O)
