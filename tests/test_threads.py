"""The thread policy: one torch thread when the course is imported, unless the user chose."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from induction_course.notebooks import ROOT


def _threads_after(code: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport torch; print(torch.get_num_threads())"],
                         capture_output=True, text=True, check=True, timeout=120, cwd=ROOT, env={**clean, **env})
    return int(out.stdout.split()[-1])


def test_importing_the_course_uses_one_thread():
    assert _threads_after("import torch, induction_course") == 1


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to tell a choice from the default")
def test_a_thread_count_chosen_before_the_import_is_kept():
    assert _threads_after("import torch; torch.set_num_threads(2); torch.set_num_threads(3)\nimport induction_course") == 3
    assert _threads_after("import induction_course", OMP_NUM_THREADS="2") == 2


def test_a_choice_made_after_the_import_survives_reimporting_the_course():
    code = ("import sys, torch, induction_course; torch.set_num_threads(3)\n"
            "[sys.modules.pop(m) for m in list(sys.modules) if m.startswith('induction_course')]\n"
            "import induction_course.checks.nb1")
    assert _threads_after(code) == 3
