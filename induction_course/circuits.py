"""Reference maths for Notebook 3: per-token loss, ICL score, OV copying and K-composition.

Weights use TransformerLens's row-vector convention: a head reads ``x @ W_V`` and writes
``z @ W_O``, so its OV matrix is ``W_V @ W_O`` and its QK matrix ``W_Q @ W_K.T`` (both
[d_model, d_model]); the full OV circuit from tokens to logits is ``W_E @ W_V @ W_O @ W_U``.
LayerNorm is left out: these scores ignore an overall scale, and folding the learned LayerNorm weights
into the matrices moves them by about 0.01 in the course's trained model.
"""
from __future__ import annotations

import math

import torch

ICL_EARLY = slice(4, 10)
ICL_LATE = slice(55, 63)


def per_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each next-token prediction, in nats.

    logits: [batch, pos, d_vocab]; tokens: [batch, pos] -> [batch, pos - 1], where entry i is
    the loss of the prediction made at position i for the token at position i + 1.
    """
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]


def copy_losses(losses: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss on the first and on the second copy of ``[BOS] R R`` with |R| = ``seq_len``.

    losses: [batch, 2 * seq_len] from :func:`per_token_loss`. The first copy is entries
    0 .. seq_len - 1 (predicting R from BOS on); the second copy skips its first token, which
    follows a first-copy token and cannot be predicted: entries seq_len + 1 .. 2 * seq_len - 1.
    Returns two scalars.
    """
    return losses[:, :seq_len].mean(), losses[:, seq_len + 1:].mean()


def icl_score(losses: torch.Tensor, early: slice = ICL_EARLY, late: slice = ICL_LATE) -> torch.Tensor:
    """In-context learning score: mean loss late in the context minus mean loss early on.

    losses: [batch, pos] per-token losses -> scalar. Sign convention (Olsson et al.): late minus
    early, so a **negative** score means later tokens are predicted better, i.e. the model
    learns from its context; 0 means no in-context learning.
    """
    return losses[:, late].mean() - losses[:, early].mean()


def ov_matrices(W_V: torch.Tensor, W_O: torch.Tensor) -> torch.Tensor:
    """Each head's OV matrix: W_V [head, d_model, d_head], W_O [head, d_head, d_model] -> [head, d_model, d_model]."""
    return W_V @ W_O


def qk_matrices(W_Q: torch.Tensor, W_K: torch.Tensor) -> torch.Tensor:
    """Each head's QK matrix: W_Q, W_K [head, d_model, d_head] -> [head, d_model, d_model] (query rows, key columns)."""
    return W_Q @ W_K.transpose(-1, -2)


def full_ov_circuit(W_E: torch.Tensor, W_V: torch.Tensor, W_O: torch.Tensor, W_U: torch.Tensor) -> torch.Tensor:
    """Logit change of every output token when a head attends to an input token.

    W_E: [d_vocab, d_model]; W_V: [head, d_model, d_head]; W_O: [head, d_head, d_model];
    W_U: [d_model, d_vocab] -> [head, d_vocab (attended token), d_vocab (logit)].
    """
    return W_E @ ov_matrices(W_V, W_O) @ W_U


def eigenvalue_positivity(matrix: torch.Tensor) -> torch.Tensor:
    """Sum of eigenvalues over sum of their absolute values, Re(Σλ) / Σ|λ|, per matrix.

    matrix: [..., n, n] -> [...]. +1 for a pure copying matrix, -1 for pure anti-copying,
    about 0 for a random one.
    """
    eigenvalues = torch.linalg.eigvals(matrix.detach().double())
    return (eigenvalues.sum(-1).real / eigenvalues.abs().sum(-1)).to(matrix.dtype)


def copying_score(W_E: torch.Tensor, W_V: torch.Tensor, W_O: torch.Tensor, W_U: torch.Tensor) -> torch.Tensor:
    """Eigenvalue positivity of each head's full OV circuit W_E W_V W_O W_U: [head].

    Shapes as in :func:`full_ov_circuit`. The nonzero eigenvalues of a product do not change when
    its factors are cycled, so this uses the small [d_head, d_head] matrix W_O W_U W_E W_V.
    """
    return eigenvalue_positivity(W_O @ W_U @ W_E @ W_V)


def top1_copying_accuracy(full_ov: torch.Tensor) -> torch.Tensor:
    """Fraction of non-BOS tokens whose own logit is the largest when attended to.

    full_ov: [..., d_vocab, d_vocab] (attended token, logit) -> [...].
    """
    inner = full_ov[..., 1:, 1:]
    own = torch.arange(inner.shape[-1], device=full_ov.device)
    return (inner.argmax(dim=-1) == own).float().mean(dim=-1)


def composition_score(W_A: torch.Tensor, W_B: torch.Tensor) -> torch.Tensor:
    """How much of W_A's output W_B reads: ||W_A W_B||_F / (||W_A||_F ||W_B||_F).

    W_A: [..., d_model, d_model]; W_B: [..., d_model, d_model] -> [...]; lies in [0, 1].
    """
    return (torch.linalg.matrix_norm(W_A @ W_B)
            / (torch.linalg.matrix_norm(W_A) * torch.linalg.matrix_norm(W_B)))


def k_composition_scores(W_V0: torch.Tensor, W_O0: torch.Tensor, W_Q1: torch.Tensor,
                         W_K1: torch.Tensor) -> torch.Tensor:
    """K-composition of every (layer-0 head, layer-1 head) pair: [head0, head1].

    W_V0: [head0, d_model, d_head]; W_O0: [head0, d_head, d_model]; W_Q1, W_K1:
    [head1, d_model, d_head]. A layer-0 head writes ``x @ W_OV``; a layer-1 key made from it scores
    ``q @ W_QK @ (x @ W_OV).T``, so the product that matters is W_OV @ W_QK.T.
    """
    ov = ov_matrices(W_V0, W_O0)[:, None]  # [head0, 1, d_model, d_model]
    qk = qk_matrices(W_Q1, W_K1)[None]  # [1, head1, d_model, d_model]
    return composition_score(ov, qk.transpose(-1, -2))


def random_composition_baseline(d_model: int, d_head: int, n_samples: int = 200, seed: int = 0) -> float:
    """Mean composition score of random rank-``d_head`` [d_model, d_model] matrices, about 1/sqrt(d_model)."""
    g = torch.Generator().manual_seed(seed)
    factors = torch.randn(4, n_samples, d_model, d_head, generator=g)
    W_A = factors[0] @ factors[1].transpose(-1, -2)
    W_B = factors[2] @ factors[3].transpose(-1, -2)
    return float(composition_score(W_A, W_B).mean())


def chance_loss(d_vocab: int) -> float:
    """Loss of a uniform guess over the d_vocab - 1 non-BOS tokens, in nats."""
    return math.log(d_vocab - 1)
