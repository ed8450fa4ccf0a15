"""Pictures: interactive circuitsvis views and static matplotlib heatmaps and curves."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch


def token_labels(tokens: torch.Tensor) -> list[str]:
    """Readable labels for a 1-D tensor of token ids; token 0 is shown as BOS."""
    return ["BOS" if int(t) == 0 else str(int(t)) for t in tokens]


def attention_view(tokens: Sequence[str], pattern: torch.Tensor, head_names: Sequence[str] | None = None):
    """Interactive circuitsvis view of one sequence's attention.

    tokens: labels for the positions; pattern: [head, q_pos, k_pos]. Returns a renderable object.
    """
    import circuitsvis as cv

    names = list(head_names) if head_names else [f"head {h}" for h in range(pattern.shape[0])]
    return cv.attention.attention_heads(
        attention=pattern.detach().float().cpu(), tokens=list(tokens), attention_head_names=names
    )


def attention_heatmap(pattern: torch.Tensor, tokens: Sequence[str] | None = None, title: str = "",
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Static heatmap of one head's pattern [q_pos, k_pos]: rows are queries, columns keys."""
    ax = ax or plt.subplots(figsize=(4.5, 4))[1]
    image = ax.imshow(pattern.detach().float().cpu(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position (attending)")
    if tokens is not None and len(tokens) <= 24:
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax


def head_grid(values: torch.Tensor, title: str, ax: plt.Axes | None = None, fmt: str = "{:.2f}",
              cmap: str = "viridis", center: bool = False) -> plt.Axes:
    """Heatmap over (layer, head) with each value written in its cell. values: [layer, head]."""
    values = values.detach().float().cpu()
    ax = ax or plt.subplots(figsize=(1.2 + 0.9 * values.shape[1], 0.8 + 0.7 * values.shape[0]))[1]
    kwargs = {}
    if center:
        bound = float(values.abs().max()) or 1.0
        kwargs = {"vmin": -bound, "vmax": bound}
    image = ax.imshow(values, cmap=cmap, **kwargs)
    for (layer, head), value in zip(torch.cartesian_prod(torch.arange(values.shape[0]), torch.arange(values.shape[1])).tolist(),
                                    values.flatten().tolist()):
        ax.text(head, layer, fmt.format(value), ha="center", va="center", color="white", fontsize=9)
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax
