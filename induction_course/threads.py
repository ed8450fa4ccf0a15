"""How many CPU threads torch uses for the course, chosen from measurements on a busy 2-core machine.

torch's default is one OpenMP thread per core, and OpenMP threads *spin* while they wait. On a busy
machine (a laptop with a browser and a video call, a shared Colab or CI runner) the spinning threads
fight the other processes for the cores: training slowed 4x beside two busy processes (7.2 s -> 28.3 s
for 100 steps, ``course bench --threads``). Two remedies were measured (100 training steps, 2 cores):

=======================================  =======  ==========  =====
option                                   quiet s  2 busy s    ratio
=======================================  =======  ==========  =====
torch default (one thread per core)          7.2        28.3   3.96
1 thread                                     9.8        16.5   1.68
1 thread, 1 inter-op thread                  9.4        15.0   1.60
one per core, ``OMP_WAIT_POLICY=PASSIVE``    8.0        14.8   1.85
=======================================  =======  ==========  =====

So the course's policy is: threads that *wait passively* (``OMP_WAIT_POLICY=PASSIVE``) and torch's default
count, wherever that setting can still take effect, i.e. when it is in the environment before torch is
loaded (``./run.sh`` exports it for JupyterLab, its kernels, the tests and the benchmark; importing
:mod:`induction_course` before ``torch`` sets it too). Where torch was loaded without it, one thread.
With several threads, training switches on torch's deterministic kernels (:mod:`induction_course.training`),
so a seed still gives the same model bit for bit on a given machine.

You keep your own choice: nothing is changed when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set, or
when ``torch.set_num_threads`` was called before the import (with a number other than torch's default).
Calling ``torch.set_num_threads(n)`` afterwards works as usual. (The grader runs every notebook with one
thread, so the same submission always gets the same numbers.)
"""
from __future__ import annotations

import os
import sys

FALLBACK_THREADS = 1
WAIT_POLICY = "OMP_WAIT_POLICY"
_USER_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def prepare_environment() -> bool:
    """Ask for passive OpenMP waiting if torch is not loaded yet; True when passive waiting is in effect.

    Call before ``import torch``. A wait policy already in the environment is the user's (or ``run.sh``'s)
    and is kept; it is taken to be in effect, since the environment is read when torch loads.
    """
    if WAIT_POLICY not in os.environ and "torch" not in sys.modules:
        os.environ[WAIT_POLICY] = "PASSIVE"
    return os.environ.get(WAIT_POLICY, "").upper() == "PASSIVE"


def torch_default_threads() -> int:
    """The intra-op thread count torch starts with when nobody chose one: one per usable core."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def user_chose_threads() -> bool:
    """True when the environment or an earlier ``torch.set_num_threads`` call already decided."""
    import torch

    return any(os.environ.get(name) for name in _USER_VARIABLES) or torch.get_num_threads() != torch_default_threads()


def apply_policy(passive: bool) -> int:
    """Keep torch's default count when ``passive`` waiting is in effect, else use one thread, unless the user
    chose; returns the count in use. Idempotent."""
    import torch

    if not passive and not user_chose_threads():
        torch.set_num_threads(FALLBACK_THREADS)
    return torch.get_num_threads()
