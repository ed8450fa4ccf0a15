"""Ablation: switch heads off and measure what the model loses (Notebook 4).

Reference implementations that the Notebook 4 checks compare student code against, plus the helpers the
notebook uses for its experiments. Shapes use ``batch``, ``pos``, ``head``, ``d_head``, ``d_model``,
``d_vocab`` and ``layer``. ``model`` is always an attention-only ``TransformerBridge`` built by
:func:`induction_course.models.make_model` (with LayerNorm or without).

Conventions used throughout:

- ``per_token_loss(logits, tokens)[b, i]`` is the loss of predicting ``tokens[b, i + 1]`` from position ``i``
  (``per_token_loss``, ``icl_score`` and the ICL windows come from :mod:`induction_course.circuits`).
- On ``[BOS] R R`` with ``|R| = seq_len``, the *second copy* is the tokens at positions
  ``seq_len + 2 … 2 * seq_len``: the ones induction can predict (the first token of the second copy has
  no earlier occurrence of its predecessor to look at). Their losses are ``loss[:, seq_len + 1:]``.
- The ICL score is ``mean loss late in the context − mean loss early in the context`` (``ICL_LATE`` and
  ``ICL_EARLY``): more negative means more in-context learning. An ablation's *ICL change* is
  ``ICL(ablated) − ICL(clean)``: positive means the ablation removed in-context learning.
- Zero-ablating a head sets its ``hook_z`` to zero, which removes its term ``z[:, :, h] @ W_O[h]`` from the
  layer's output and keeps the shared bias ``b_O``.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from induction_course.circuits import ICL_EARLY, ICL_LATE, copy_losses, icl_score, per_token_loss  # noqa: F401
from induction_course.data import BOS, random_tokens

# ICL_EARLY, ICL_LATE, icl_score and per_token_loss are Notebook 3's, re-exported here for convenience.

Hook = tuple[str, Callable[..., torch.Tensor]]


def z_name(layer: int) -> str:
    """Name of layer ``layer``'s ``hook_z`` ([batch, pos, head, d_head], the input of ``W_O``)."""
    return f"blocks.{layer}.attn.hook_z"


def pattern_name(layer: int) -> str:
    """Name of layer ``layer``'s ``hook_pattern`` ([batch, head, q_pos, k_pos])."""
    return f"blocks.{layer}.attn.hook_pattern"


def scale_names(n_layers: int) -> list[str]:
    """Names of every LayerNorm's ``hook_scale`` ([batch, pos, 1]): one per block, then the final one."""
    return [f"blocks.{layer}.ln1.hook_scale" for layer in range(n_layers)] + ["ln_final.hook_scale"]


@contextmanager
def quiet_hooks() -> Iterator[None]:
    """Silence TransformerLens's notices that a hook edited an activation (they would go to stderr)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(hook_scale|hook_normalized|hook_pattern).*")
        yield


# ------------------------------------------------------------------ hooks
def zero_ablation_hook(z: torch.Tensor, hook: Any, head: int) -> torch.Tensor:
    """A copy of ``z`` with head ``head``'s output set to zero.

    z: [batch, pos, head, d_head] -> same shape. ``hook`` is TransformerLens's HookPoint (unused).
    """
    z = z.clone()
    z[:, :, head] = 0.0
    return z


def mean_ablation_hook(z: torch.Tensor, hook: Any, head: int, z_ref: torch.Tensor) -> torch.Tensor:
    """A copy of ``z`` with head ``head``'s output replaced by its mean over a reference batch.

    z: [batch, pos, head, d_head]; z_ref: [ref_batch, pos, head, d_head] (the same layer's ``hook_z`` on
    reference data). The mean is taken over the reference batch only, so it keeps one vector per position.
    Returns [batch, pos, head, d_head].
    """
    z = z.clone()
    z[:, :, head] = z_ref[:, :, head].mean(dim=0)
    return z


def freeze_hooks(cache: Any, n_layers: int, scales: bool = True) -> list[Hook]:
    """Hooks that force every attention pattern (and, if ``scales``, every LayerNorm scale) to its
    value in ``cache``, a clean run's ``ActivationCache`` on the same tokens."""
    def frozen(value: torch.Tensor, hook: Any, name: str) -> torch.Tensor:
        return cache[name].clone()

    names = [pattern_name(layer) for layer in range(n_layers)]
    if scales:
        names += scale_names(n_layers)
    return [(name, partial(frozen, name=name)) for name in names]


# ------------------------------------------------------------------ losses
def second_copy_loss(loss: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Mean loss on the induction-predictable tokens of ``[BOS] R R``: a scalar.

    loss: [batch, 2 * seq_len] (from ``per_token_loss``); uses entries ``seq_len + 1`` onwards.
    """
    return copy_losses(loss, seq_len)[1]


def run_loss(model: Any, tokens: torch.Tensor, hooks: Sequence[Hook] = ()) -> torch.Tensor:
    """Per-token loss of ``model`` on ``tokens`` with ``hooks`` applied: [batch, pos - 1]."""
    with torch.no_grad(), quiet_hooks():
        logits = model.run_with_hooks(tokens, fwd_hooks=list(hooks))
    return per_token_loss(logits, tokens)


def ablation_hooks(heads: Sequence[tuple[int, int]]) -> list[Hook]:
    """Zero-ablation hooks for every ``(layer, head)`` in ``heads``."""
    return [(z_name(layer), partial(zero_ablation_hook, head=head)) for layer, head in heads]


# ------------------------------------------------------------------ per-head measurements
def loss_increase_per_head(model: Any, tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Second-copy loss with each head zero-ablated, minus the clean second-copy loss.

    tokens: [batch, 1 + 2 * seq_len], ``[BOS] R R``. Returns [layer, head]; positive means the head helped.
    """
    clean = second_copy_loss(run_loss(model, tokens), seq_len)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        for head in range(n_heads):
            ablated = run_loss(model, tokens, ablation_hooks([(layer, head)]))
            out[layer, head] = second_copy_loss(ablated, seq_len) - clean
    return out


def icl_change_per_head(model: Any, tokens: torch.Tensor, early: slice, late: slice) -> torch.Tensor:
    """ICL score with each head zero-ablated minus the clean ICL score.

    tokens: [batch, pos]. Returns [layer, head]; positive means ablating the head removed in-context learning.
    """
    clean = icl_score(run_loss(model, tokens), early, late)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        for head in range(n_heads):
            ablated = run_loss(model, tokens, ablation_hooks([(layer, head)]))
            out[layer, head] = icl_score(ablated, early, late) - clean
    return out


def induction_scores_after_ablation(model: Any, tokens: torch.Tensor, seq_len: int,
                                    heads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Induction scores of the last layer's heads while every ``(layer, head)`` in ``heads`` is zero-ablated.

    tokens: [batch, 1 + 2 * seq_len], ``[BOS] R R``. Returns [head] (of the last layer).
    """
    from induction_course.heads import induction_score

    store: dict[str, torch.Tensor] = {}

    def keep(pattern: torch.Tensor, hook: Any) -> None:
        store["pattern"] = pattern.detach().clone()

    hooks = ablation_hooks(heads) + [(pattern_name(model.cfg.n_layers - 1), keep)]
    with torch.no_grad(), quiet_hooks():
        model.run_with_hooks(tokens, fwd_hooks=hooks)
    return induction_score(store["pattern"], seq_len)


def previous_token_heads(model: Any, threshold: float = 0.3, seed: int = 0) -> list[tuple[int, int]]:
    """The layer-0 heads whose previous-token score on ``[BOS]`` + 46 random tokens exceeds ``threshold``
    (chance is about 0.1), strongest first; at least the strongest one."""
    from induction_course.heads import previous_token_score

    tokens = torch.cat([torch.full((16, 1), BOS), random_tokens(16, 46, model.cfg.d_vocab, seed)], dim=1)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(model.cfg.device))
    scores = previous_token_score(cache[pattern_name(0)])
    order = scores.argsort(descending=True).tolist()
    return [(0, h) for h in order if scores[h] > threshold] or [(0, order[0])]


# ------------------------------------------------------------------ full vs pattern-preserving
def ablated_logits(model: Any, tokens: torch.Tensor, heads: Sequence[tuple[int, int]],
                   freeze_patterns: bool = False, freeze_scales: bool = False) -> torch.Tensor:
    """Logits with ``heads`` zero-ablated: [batch, pos, d_vocab].

    ``freeze_patterns`` forces every attention pattern to its clean value (pattern-preserving ablation);
    ``freeze_scales`` also forces every LayerNorm scale to its clean value.
    """
    hooks = ablation_hooks(heads)
    with torch.no_grad(), quiet_hooks():
        if freeze_patterns or freeze_scales:
            _, cache = model.run_with_cache(tokens)
            frozen = freeze_hooks(cache, model.cfg.n_layers, scales=freeze_scales)
            if not freeze_patterns:
                frozen = frozen[model.cfg.n_layers:]
            hooks = frozen + hooks
        return model.run_with_hooks(tokens, fwd_hooks=hooks)


def pattern_preserving_logits(model: Any, tokens: torch.Tensor, heads: Sequence[tuple[int, int]],
                              freeze_scales: bool = False) -> torch.Tensor:
    """Logits with ``heads`` zero-ablated while every attention pattern is held at its value from the clean
    run (Olsson et al.'s pattern-preserving ablation); with ``freeze_scales``, every LayerNorm scale too,
    which makes the ablated model exactly linear in the heads' outputs. [batch, pos, d_vocab]."""
    return ablated_logits(model, tokens, heads, freeze_patterns=True, freeze_scales=freeze_scales)


def _ln_linear(model: Any, name: str, cache: Any, delta: torch.Tensor) -> torch.Tensor:
    """How LayerNorm ``name`` ("blocks.{l}.ln1" or "ln_final") maps a change ``delta`` [batch, pos, d_model]
    of its input when its scale is frozen at the cached value: centre, divide by scale, times the weight."""
    norm = model.get_submodule(name)
    if not hasattr(norm, "w"):  # a model built without LayerNorm
        return delta
    centred = delta - delta.mean(dim=-1, keepdim=True)
    return centred / cache[f"{name}.hook_scale"] * norm.w


def head_output(model: Any, cache: Any, layer: int, head: int) -> torch.Tensor:
    """What head ``layer.head`` writes into the residual stream: z[:, :, head] @ W_O[head].

    Returns [batch, pos, d_model].
    """
    return cache[z_name(layer)][:, :, head] @ model.blocks[layer].attn.W_O[head]


def direct_logit_contribution(model: Any, cache: Any, layer: int, head: int) -> torch.Tensor:
    """The head's direct path to the logits, with the final LayerNorm's scale frozen at its cached value:
    head output -> centre -> / scale -> * w -> W_U. Returns [batch, pos, d_vocab].

    For a last-layer head, with all patterns and LayerNorm scales frozen, zero-ablating the head changes
    the logits by exactly minus this (earlier heads also reach the logits through later heads' values).
    """
    return _ln_linear(model, "ln_final", cache, head_output(model, cache, layer, head)) @ model.W_U


def frozen_logit_contribution(model: Any, cache: Any, layer: int, head: int) -> torch.Tensor:
    """Everything head ``layer.head`` adds to the logits once patterns and LayerNorm scales are frozen:
    its direct path plus every path through the value vectors of later heads. [batch, pos, d_vocab].

    With patterns and LayerNorm scales frozen the model is linear in the head's output, so this is exactly
    ``clean logits − pattern_preserving_logits(model, tokens, [(layer, head)], freeze_scales=True)``.
    """
    delta = head_output(model, cache, layer, head)  # change to the residual stream, [batch, pos, d_model]
    total = delta
    for later in range(layer + 1, model.cfg.n_layers):
        attn = model.blocks[later].attn
        x = _ln_linear(model, f"blocks.{later}.ln1", cache, total)
        v = torch.einsum("bpm,hmd->bphd", x, attn.W_V)                       # no bias: it cancels
        z = torch.einsum("bhqk,bkhd->bqhd", cache[pattern_name(later)], v)
        total = total + torch.einsum("bphd,hdm->bpm", z, attn.W_O)
    return _ln_linear(model, "ln_final", cache, total) @ model.W_U


# ------------------------------------------------------------------ limits
def changed_repeat_tokens(batch: int, seq_len: int, d_vocab: int, n_changes: int = 4,
                          seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[BOS] R R'``: R' is R with ``n_changes`` tokens replaced by tokens that are nowhere in R.

    Changed places are never the first token of the copy and never next to each other, so every change
    follows a token that repeats: the prefix recurs, with a new continuation.
    Returns (tokens [batch, 1 + 2 * seq_len], changed [batch, 1 + 2 * seq_len] bool, True at changed tokens).
    """
    generator = torch.Generator().manual_seed(seed)
    block = random_tokens(batch, seq_len, d_vocab, seed)
    second = block.clone()
    changed = torch.zeros(batch, seq_len, dtype=torch.bool)
    for b in range(batch):
        taken: list[int] = []
        for place in (torch.randperm(seq_len - 1, generator=generator) + 1).tolist():
            if len(taken) < n_changes and all(abs(place - t) > 1 for t in taken):
                taken.append(place)
        unused = torch.tensor([t for t in range(1, d_vocab) if t not in set(block[b].tolist())])
        fresh = unused[torch.randperm(len(unused), generator=generator)[: len(taken)]]
        second[b, taken] = fresh
        changed[b, taken] = True
    bos = torch.full((batch, 1), BOS, dtype=torch.long)
    no = torch.zeros(batch, 1 + seq_len, dtype=torch.bool)
    return torch.cat([bos, block, second], dim=1), torch.cat([no, changed], dim=1)


def split_second_copy_loss(loss: torch.Tensor, tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean second-copy loss where induction is right, and where it is wrong.

    loss: [batch, 2 * seq_len] (entry i predicts ``tokens[:, i + 1]``); tokens: [batch, 1 + 2 * seq_len],
    ``[BOS] R R'``. Only entries whose prefix repeats count (``tokens[:, i] == tokens[:, i - seq_len]``), so
    induction has an earlier occurrence to look up. Among them, returns (mean loss where the next token
    repeats too, mean loss where it is new): two scalars.
    """
    i = torch.arange(seq_len + 1, 2 * seq_len, device=tokens.device)
    prefix_repeats = tokens[:, i] == tokens[:, i - seq_len]
    same_next = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    entries = loss[:, i]
    return entries[prefix_repeats & same_next].mean(), entries[prefix_repeats & ~same_next].mean()


def seen_token_probability(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Probability the model gives, at each position, to the set of tokens it has already seen.

    logits: [batch, pos, d_vocab]; tokens: [batch, pos]. Entry i sums the probabilities of the distinct
    tokens among ``tokens[:, 1 : i + 1]`` (BOS excluded). Returns [batch, pos - 1].
    """
    seen = F.one_hot(tokens, logits.shape[-1]).cumsum(dim=1)[:, :-1] > 0  # [batch, pos - 1, d_vocab]
    seen[..., BOS] = False
    return (logits[:, :-1].softmax(dim=-1) * seen).sum(dim=-1)
