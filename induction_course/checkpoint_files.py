"""The checkpoint files in ``checkpoints/`` that the notebooks load (written by ``python -m induction_course.training``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from transformer_lens.model_bridge import TransformerBridge

from induction_course.models import make_model

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
CHECKPOINT = CHECKPOINTS / "attn_only_2l.pt"
CONTROL_CHECKPOINT = CHECKPOINTS / "attn_only_1l.pt"
SMEARED_CHECKPOINT = CHECKPOINTS / "smeared_keys_1l.pt"


def save_checkpoint(model: TransformerBridge, history: dict, config: dict, path: Path = CHECKPOINT,
                    alphas: Sequence[torch.Tensor] = ()) -> None:
    """Save weights (on CPU), the ``make_model`` config, the training history and any smeared-key ``alphas``
    (one [head] tensor per layer) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    extra = {"alphas": [a.detach().cpu() for a in alphas]} if alphas else {}
    torch.save({"state_dict": state, "config": config, "history": history, **extra}, path)


def load_checkpoint(path: Path | str = CHECKPOINT) -> dict:
    """The checkpoint dict: ``state_dict``, ``config`` (for ``make_model``), ``history`` (and ``alphas``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_trained(path: Path | str = CHECKPOINT, device: torch.device | str | None = None
                 ) -> tuple[TransformerBridge, dict]:
    """(model, history) of a model the course's script trained, as :func:`~induction_course.training.train_induction_model` returns them:
    ``path`` defaults to the standard 2-layer model (``CONTROL_CHECKPOINT`` is its 1-layer control), ``device``
    to ``pick_device()``. Needs no training and no download."""
    model, checkpoint = _from_checkpoint(path, device)
    return model, checkpoint["history"]


def load_induction_model(path: Path | str = CHECKPOINT, device: torch.device | str | None = None) -> TransformerBridge:
    """The model of :func:`load_trained`, without its history."""
    return _from_checkpoint(path, device)[0]


def load_smeared_key_model(path: Path | str = SMEARED_CHECKPOINT, device: torch.device | str | None = None
                           ) -> tuple[TransformerBridge, dict, list]:
    """The smeared-key model the course's script trained (:func:`~induction_course.training.train_smeared_key_model`, seed 0,
    ``SMEARED_STEPS`` steps): (model, history, hooks), as that function returns them."""
    from induction_course.training import smeared_key_hooks  # the loop's module imports this one

    model, checkpoint = _from_checkpoint(path, device)
    device = next(model.parameters()).device
    return model, checkpoint["history"], smeared_key_hooks([alpha.to(device) for alpha in checkpoint["alphas"]])


def _from_checkpoint(path: Path | str, device: torch.device | str | None) -> tuple[TransformerBridge, dict]:
    """The model saved at ``path`` (on ``device``, in eval mode) and the whole checkpoint dict, read once."""
    checkpoint = load_checkpoint(path)
    model = make_model(device=device, **checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint
