"""Measurements on a language model of real text (Notebook 5): reference implementations and helpers.

Conventions (as in Notebooks 3 and 4): ``losses[b, i]`` is the loss of predicting ``tokens[b, i + 1]``, so a
context of T tokens gives ``n = T - 1`` loss entries. The **ICL score** is Olsson et al.'s "loss late in the
context minus loss early in the context", with both positions scaled to the context: the windows of
:func:`induction_course.text.icl_positions`, ``width`` loss entries around 0.1 n and 0.98 n (the late one
kept inside the context). Negative means the model predicts better with more context.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from induction_course import text
from induction_course.ablation import ablation_hooks, quiet_hooks, run_loss
from induction_course.circuits import per_token_loss
from induction_course.heads import induction_score, previous_token_score

ICL_WIDTH = 5


def icl_windows(n: int, width: int = ICL_WIDTH) -> tuple[slice, slice]:
    """(early, late) windows of ``width`` loss entries out of ``n``, around 0.1 n and 0.98 n, as slices."""
    early, late = text.icl_positions(n + 1, width)
    return slice(int(early[0]), int(early[-1]) + 1), slice(int(late[0]), int(late[-1]) + 1)


def text_icl_score(losses: torch.Tensor, width: int = ICL_WIDTH) -> torch.Tensor:
    """Mean loss in the late window minus mean loss in the early window (negative = ICL).

    losses: [batch, n] -> scalar tensor
    """
    early, late = icl_windows(losses.shape[-1], width)
    return losses[:, late].mean() - losses[:, early].mean()


def loss_by_position(model: Any, tokens: torch.Tensor, hooks: Sequence = ()) -> torch.Tensor:
    """Mean loss of each prediction position over the batch: tokens [batch, T] -> [T - 1]."""
    return run_loss(model, tokens, hooks).mean(dim=0)


def head_scores_on_repeats(model: Any, tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(previous-token scores, induction scores) of every head on ``[BOS] R R``: two [layer, head] tensors.

    tokens: [batch, 1 + 2 * seq_len]
    """
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", layer] for layer in range(model.cfg.n_layers)]
    return (torch.stack([previous_token_score(p) for p in patterns]),
            torch.stack([induction_score(p, seq_len) for p in patterns]))


def head_logit_attribution(model: Any, cache: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Each head's direct push on the logit of the correct next token: [batch, pos - 1, layer, head].

    The head's output ``z[:, :, h] @ W_O[h]`` goes through the final LayerNorm with its scale frozen at the
    cached value (centre over d_model, divide by the scale, times ``ln_final.w``) and then through the
    unembedding column of the token that comes next. tokens: [batch, pos].
    """
    targets = tokens[:, 1:]                                                   # [batch, pos - 1]
    directions = model.W_U[:, targets].permute(1, 2, 0)                       # [batch, pos - 1, d_model]
    out = []
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, :-1]                      # [batch, pos - 1, head, d_head]
        written = torch.einsum("bphd,hdm->bphm", z, model.blocks[layer].attn.W_O)
        if hasattr(model.ln_final, "w"):
            written = written - written.mean(dim=-1, keepdim=True)
            written = written / cache["ln_final.hook_scale"][:, :-1, None] * model.ln_final.w
        out.append(torch.einsum("bphm,bpm->bph", written, directions))
    return torch.stack(out, dim=-2)


def icl_with_heads_ablated(model: Any, tokens: torch.Tensor, heads: Sequence[tuple[int, int]],
                           width: int = ICL_WIDTH) -> torch.Tensor:
    """The text ICL score with every ``(layer, head)`` in ``heads`` zero-ablated (hooks removed after): scalar.

    tokens: [batch, T]
    """
    return text_icl_score(run_loss(model, tokens, ablation_hooks(heads)), width)


def ablation_share(clean: float, ablated: float) -> float:
    """The share of the ICL score that an ablation removed: (ablated − clean) / −clean (1 = all of it)."""
    return (ablated - clean) / -clean


def occurrence_groups(tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sort each prediction by what an earlier copy says about it: three [batch, pos - 1] bool masks.

    Entry i predicts ``tokens[:, i + 1]`` from the prefix ``tokens[:, i - 1 : i + 1]`` (two tokens, BOS never
    part of one). "repeat": the prefix occurred earlier in the row and was followed there by the same target
    (a second occurrence of a phrase); "new_continuation": the prefix occurred earlier but never followed by
    this target; "first": the prefix never occurred earlier.
    """
    batch, pos = tokens.shape
    groups = {name: torch.zeros(batch, pos - 1, dtype=torch.bool) for name in ("repeat", "new_continuation", "first")}
    for b in range(batch):
        row = tokens[b].tolist()
        followers: dict[tuple[int, int], set[int]] = {}
        for i in range(2, pos - 1):
            prefix, target = (row[i - 1], row[i]), row[i + 1]
            seen = followers.get(prefix)
            name = "first" if seen is None else "repeat" if target in seen else "new_continuation"
            groups[name][b, i] = True
            followers.setdefault(prefix, set()).add(target)
    return groups


def group_means(values: torch.Tensor, groups: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean of ``values`` [batch, pos - 1, ...] over the entries of each group mask [batch, pos - 1]."""
    return {name: values[mask.to(values.device)].mean(dim=0) for name, mask in groups.items()}


def per_token_losses(models: Sequence[Any], tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Loss of one chosen position per row, for each model: [n_models, batch]. positions: [batch] loss entries."""
    rows = torch.arange(tokens.shape[0])
    out = []
    for model in models:
        with torch.no_grad(), quiet_hooks():
            losses = per_token_loss(model(tokens), tokens)
        out.append(losses[rows, positions])
    return torch.stack(out)


def loss_pca(losses: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Project snapshots' per-token loss vectors onto their first ``k`` principal components.

    losses: [snapshot, token] -> (coordinates [snapshot, k], share of variance of each component [k])
    """
    centred = losses - losses.mean(dim=0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    variance = s ** 2
    return centred @ vh[:k].T, variance[:k] / variance.sum()


def turning_point(coords: torch.Tensor) -> int:
    """Index of the snapshot where the trajectory turns most sharply (largest angle between steps in and out)."""
    steps = coords[1:] - coords[:-1]
    cos = torch.nn.functional.cosine_similarity(steps[:-1], steps[1:], dim=-1)
    return int(cos.argmin()) + 1
