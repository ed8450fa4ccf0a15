"""The one place that starts ``nbgrader generate_assignment`` (for ``course build``, ``course grade`` and
:mod:`autograder.plain`), and the environment every nbgrader subprocess gets.

Light on purpose: it imports nothing of the course or of nbgrader.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def nbgrader_env() -> dict[str, str]:
    """The environment for an nbgrader subprocess.

    nbgrader runs ``alembic`` from PATH, so this interpreter's scripts go first, even when the
    virtual environment is not activated.
    """
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def nbgrader(args: list[str], cwd: Path, env: dict[str, str] | None = None,
             timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` from ``cwd`` (where its nbgrader_config.py is), quietly.

    Returns the finished process (its output captured); raises ``subprocess.TimeoutExpired`` after ``timeout``.
    """
    cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=ERROR"]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=nbgrader_env() if env is None else env,
                          timeout=timeout)


def generate_assignment(name: str, cwd: Path, *options: str, env: dict[str, str] | None = None,
                        timeout: float | None = None) -> subprocess.CompletedProcess:
    """``nbgrader generate_assignment NAME --force OPTIONS``: see :func:`nbgrader`."""
    return nbgrader(["generate_assignment", name, "--force", *options], cwd, env, timeout)
