"""How many CPU threads torch uses for the course: one, unless you chose otherwise.

The course's tensors are small (a batch of 64 x 64 tokens through a 64-wide model), so a second
thread buys at most a ~1.6x speed-up on an idle machine, and on a busy one (a laptop with a browser and
a video call, a shared Colab or CI runner) torch's default of one spinning OpenMP thread per core
collapses: Notebook 3 took 560 s beside two busy processes instead of 24 s. One thread degrades
gracefully, to the machine's fair share. ``course bench --threads`` measures the options.

Importing :mod:`induction_course` applies the policy once. You keep your own choice: it is left alone
when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set, or when ``torch.set_num_threads`` was called
before the import (with a number other than torch's default). Calling ``torch.set_num_threads(n)``
afterwards works as usual.
"""
from __future__ import annotations

import os

import torch

COURSE_THREADS = 1
_USER_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def torch_default_threads() -> int:
    """The intra-op thread count torch starts with when nobody chose one: one per usable core."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def user_chose_threads() -> bool:
    """True when the environment or an earlier ``torch.set_num_threads`` call already decided."""
    return any(os.environ.get(name) for name in _USER_VARIABLES) or torch.get_num_threads() != torch_default_threads()


def apply_policy() -> int:
    """Use :data:`COURSE_THREADS` intra-op threads unless the user chose; returns the count in use.

    Idempotent: once applied, the count differs from torch's default, so a second import leaves it.
    """
    if not user_chose_threads():
        torch.set_num_threads(COURSE_THREADS)
    return torch.get_num_threads()
