"""The lock of exact versions (``requirements.lock``) and its conda mirror (``environment.yml``).

``course lock`` writes both from the running environment. Run it from a virtual environment made by
``./run.sh setup`` on the oldest Python the course supports (Debian 12's 3.11.2), so that every pin installs
there; ``tests/setup/python_versions.sh`` then checks the lock on each supported Python.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from induction_course.repository import ROOT

LOCK = ROOT / "requirements.lock"
ENVIRONMENT = ROOT / "environment.yml"
HEADER = "# Exact versions of everything the course installs. Regenerate with `course lock`.\n"
# PyTorch's index of CPU-only builds: the course runs on a CPU, and PyPI's Linux torch is a CUDA build of
# several GB. run.sh uses the same address (its TORCH_INDEX_URL default on Linux).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# conda's Python for environment.yml: the oldest minor version the lock supports.
CONDA_PYTHON = "3.11"


def read_lock(path: Path = LOCK) -> list[str]:
    """The ``name==version`` lines of the lock, in file order."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def freeze() -> list[str]:
    """Exact pins of the running environment, pip and setuptools included, minus the course package itself.

    torch's local build tag (``+cpu``) is dropped so the same lock works on CPU and GPU machines.
    """
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    pins = [line.split("+")[0] if line.startswith("torch==") else line for line in out.splitlines()]
    return sorted((p for p in pins if "==" in p and not p.startswith("induction-course")), key=str.lower)


def environment_yml(pins: list[str]) -> str:
    """A conda environment that installs exactly ``pins`` with pip, torch from PyTorch's CPU index."""
    lines = ["# Mirrors requirements.lock for conda users; `course lock` writes both.",
             "# After `conda activate induction-course`, start the course with `./run.sh lab`: it uses this",
             "# environment and enables what a plain `jupyter lab` lacks (circuitsvis served offline, nbgrader's",
             "# student or instructor tools and the local exchange).",
             "name: induction-course", "channels:", "  - conda-forge", "dependencies:",
             f"  - python={CONDA_PYTHON}", "  - pip", "  - pip:",
             # An extra index: pip takes the highest version, and 2.13.0+cpu sorts above PyPI's 2.13.0.
             f"      - --extra-index-url {TORCH_CPU_INDEX}"]
    lines += [f"      - {pin}" for pin in pins]
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def write_lock() -> None:
    """Write ``requirements.lock`` and ``environment.yml`` from the running environment."""
    pins = freeze()
    LOCK.write_text(HEADER + "\n".join(pins) + "\n")
    ENVIRONMENT.write_text(environment_yml(pins))
