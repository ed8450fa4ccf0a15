"""A previous-token head built by hand (Notebook 2).

The hand-built model has one attention layer with one head, no LayerNorm and no MLP, so every
number it computes can be worked out on paper. Its residual stream is cut into three blocks
(see :class:`Layout`): the current token, the position, and the previous token. The embedding
``W_E`` writes the current token's one-hot into the first block and the unembedding ``W_U`` reads
the third block, so the model's prediction *is* the linear read-out of "which token came before".
The student supplies ``W_pos``, ``W_Q``, ``W_K`` (where to look) and ``W_V``, ``W_O`` (what to move).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformer_lens.model_bridge import TransformerBridge

from induction_course.data import BOS, random_tokens
from induction_course.models import make_model


@dataclass(frozen=True)
class Layout:
    """Where each piece of information lives in the hand-built model's residual stream.

    ``token``: one-hot of the current token (written by ``W_E``), ``d_vocab`` dimensions;
    ``pos``: one-hot of the position (written by ``W_pos``), ``n_ctx`` dimensions;
    ``prev``: one-hot of the previous token (written by the head, read by ``W_U``), ``d_vocab`` dimensions.
    """

    d_vocab: int = 16
    n_ctx: int = 24

    @property
    def token(self) -> slice:
        return slice(0, self.d_vocab)

    @property
    def pos(self) -> slice:
        return slice(self.d_vocab, self.d_vocab + self.n_ctx)

    @property
    def prev(self) -> slice:
        return slice(self.d_vocab + self.n_ctx, 2 * self.d_vocab + self.n_ctx)

    @property
    def d_model(self) -> int:
        return 2 * self.d_vocab + self.n_ctx

    @property
    def d_head(self) -> int:
        """Wide enough for a one-hot of a position (queries, keys) or of a token (values)."""
        return max(self.n_ctx, self.d_vocab)


def write_head(model: TransformerBridge, layer: int, head: int, **weights: torch.Tensor) -> None:
    """Write one head's weights into the model's parameters.

    The bridge's ``W_Q`` etc. are computed views: writing into them changes nothing. This writes
    into the underlying ``nn.Linear`` weights instead. Accepted keywords: ``W_Q``, ``W_K``, ``W_V``
    ([d_model, d_head]) and ``W_O`` ([d_head, d_model]).
    """
    attn = model.blocks[layer].attn
    d_head = model.cfg.d_head
    rows = slice(head * d_head, (head + 1) * d_head)
    with torch.no_grad():
        for name, value in weights.items():
            if name == "W_O":
                attn.o.weight[:, rows] = value.T
            else:
                getattr(attn, name[-1].lower()).weight[rows] = value.T


def make_handbuilt_model(layout: Layout, device: torch.device | str = "cpu") -> TransformerBridge:
    """The 1-layer, 1-head hand-built model: ``W_E`` and ``W_U`` set, every other weight and bias zero."""
    model = make_model(n_layers=1, n_heads=1, d_model=layout.d_model, d_head=layout.d_head, n_ctx=layout.n_ctx,
                       d_vocab=layout.d_vocab, normalization_type=None, device=device)
    one_hot = torch.eye(layout.d_vocab)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.W_E[:, layout.token] = one_hot
        model.unembed.weight[:, layout.prev] = one_hot
    return model


def install(model: TransformerBridge, W_pos: torch.Tensor, W_Q: torch.Tensor, W_K: torch.Tensor,
            W_V: torch.Tensor, W_O: torch.Tensor) -> TransformerBridge:
    """Put a hand-built head into ``model`` (from :func:`make_handbuilt_model`) and return it.

    W_pos: [n_ctx, d_model]; W_Q, W_K, W_V: [d_model, d_head]; W_O: [d_head, d_model].
    """
    device = model.W_E.device
    with torch.no_grad():
        model.W_pos.copy_(W_pos)
    write_head(model, 0, 0, **{k: v.to(device) for k, v in
                               {"W_Q": W_Q, "W_K": W_K, "W_V": W_V, "W_O": W_O}.items()})
    return model


def reference_qk(layout: Layout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A working (W_pos [n_ctx, d_model], W_Q [d_model, d_head], W_K [d_model, d_head]).

    Position i is one-hot; its query is the one-hot of i - 1, scaled so that the score of key i - 1
    beats the other i keys by ln(100 * n_ctx), far more than the ln(19 * n_ctx) that 0.95 needs.
    """
    n = layout.n_ctx
    scale = math.sqrt(layout.d_head) * math.log(100 * n)
    W_pos = torch.zeros(n, layout.d_model)
    W_pos[:, layout.pos] = torch.eye(n)
    W_Q = torch.zeros(layout.d_model, layout.d_head)
    W_Q[layout.pos, :n] = scale * torch.diag(torch.ones(n - 1), diagonal=-1)
    W_K = torch.zeros(layout.d_model, layout.d_head)
    W_K[layout.pos, :n] = torch.eye(n)
    return W_pos, W_Q, W_K


def reference_ov(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """A working (W_V [d_model, d_head], W_O [d_head, d_model]): copy the token block into the prev block."""
    W_V = torch.zeros(layout.d_model, layout.d_head)
    W_V[layout.token, :layout.d_vocab] = torch.eye(layout.d_vocab)
    W_O = torch.zeros(layout.d_head, layout.d_model)
    W_O[:layout.d_vocab, layout.prev] = torch.eye(layout.d_vocab)
    return W_V, W_O


def fresh_tokens(layout: Layout, batch: int, seed: int) -> torch.Tensor:
    """``[BOS]`` then ``n_ctx - 1`` uniform random tokens: [batch, n_ctx]."""
    bos = torch.full((batch, 1), BOS, dtype=torch.long)
    return torch.cat([bos, random_tokens(batch, layout.n_ctx - 1, layout.d_vocab, seed)], dim=1)


def attention_on_previous(pattern: torch.Tensor) -> torch.Tensor:
    """Attention from each position i >= 1 to i - 1: [batch, q_pos - 1] from pattern [batch, q_pos, k_pos]."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1)


def read_out(logits: torch.Tensor) -> torch.Tensor:
    """The read-out's guess of the previous token at every position i >= 1: [batch, pos - 1] (long).

    logits: [batch, pos, d_vocab]. W_U reads the prev block, so the argmax is the decoded token.
    """
    return logits[:, 1:].argmax(dim=-1)
