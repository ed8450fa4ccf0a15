"""The thread policy: passive OpenMP waiting with torch's default count, or one thread; a user's choice is kept."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from course_tools.notebooks import ROOT

CORES = len(os.sched_getaffinity(0))


def _after(code: str, **env: str) -> tuple[int, str]:
    """(torch's intra-op threads, OMP_WAIT_POLICY) after running ``code`` in a fresh interpreter."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport os, torch; print(torch.get_num_threads(), "
                          "os.environ.get('OMP_WAIT_POLICY', '-'))"],
                         capture_output=True, text=True, check=True, timeout=120, cwd=ROOT, env={**clean, **env})
    threads, policy = out.stdout.split()[-2:]
    return int(threads), policy


def test_importing_the_course_before_torch_makes_threads_wait_passively():
    assert _after("import induction_course") == (CORES, "PASSIVE")


def test_a_wait_policy_in_the_environment_keeps_the_default_count():
    assert _after("import torch, induction_course", OMP_WAIT_POLICY="PASSIVE") == (CORES, "PASSIVE")


def test_torch_loaded_without_passive_waiting_gets_one_thread():
    assert _after("import torch, induction_course") == (1, "-")
    assert _after("import torch, induction_course", OMP_WAIT_POLICY="ACTIVE") == (1, "ACTIVE")


@pytest.mark.skipif(CORES < 2, reason="needs 2 cores to tell a choice from the default")
def test_a_thread_count_chosen_before_the_import_is_kept():
    assert _after("import torch; torch.set_num_threads(2); torch.set_num_threads(3)\nimport induction_course")[0] == 3
    assert _after("import induction_course", OMP_NUM_THREADS="2")[0] == 2


def test_a_choice_made_after_the_import_survives_reimporting_the_course():
    code = ("import sys, torch, induction_course; torch.set_num_threads(3)\n"
            "[sys.modules.pop(m) for m in list(sys.modules) if m.startswith('induction_course')]\n"
            "import induction_course.checks.nb1")
    assert _after(code)[0] == 3


def test_run_sh_exports_passive_waiting():
    assert 'export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"' in (ROOT / "run.sh").read_text()
