"""The lock of exact versions (``requirements.lock``) and its conda mirror (``environment.yml``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
ENVIRONMENT = ROOT / "environment.yml"
HEADER = "# Exact versions of everything the course installs. Regenerate with `course lock`.\n"


def read_lock(path: Path = LOCK) -> list[str]:
    """The ``name==version`` lines of the lock, in file order."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def freeze() -> list[str]:
    """Exact pins of the running environment, minus the course package itself.

    torch's local build tag (``+cpu``) is dropped so the same lock works on CPU and GPU machines.
    """
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                         capture_output=True, text=True, check=True).stdout
    pins = [line.split("+")[0] if line.startswith("torch==") else line for line in out.splitlines()]
    return sorted((p for p in pins if "==" in p and not p.startswith("induction-course")), key=str.lower)


def environment_yml(pins: list[str]) -> str:
    """A conda environment that installs exactly ``pins`` with pip, torch first."""
    lines = ["# Mirrors requirements.lock for conda users; `course lock` writes both.",
             "name: induction-course", "channels:", "  - conda-forge", "dependencies:",
             f"  - python={sys.version_info.major}.{sys.version_info.minor}", "  - pip", "  - pip:"]
    lines += [f"      - {pin}" for pin in pins]
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def write_lock() -> None:
    """Write ``requirements.lock`` and ``environment.yml`` from the running environment."""
    pins = freeze()
    LOCK.write_text(HEADER + "\n".join(pins) + "\n")
    ENVIRONMENT.write_text(environment_yml(pins))
