"""Device choice: CUDA when present, CPU otherwise."""
from __future__ import annotations

import os

import torch


def pick_device() -> torch.device:
    """Return ``cuda`` when a GPU is usable, else ``cpu``.

    Set ``COURSE_DEVICE=cpu`` (or ``cuda``) to force a choice.
    """
    forced = os.environ.get("COURSE_DEVICE")
    if forced:
        return torch.device(forced)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
