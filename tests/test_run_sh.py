"""The README's commands as a new user types them: `./run.sh lab` and `./run.sh instructor`, ARGS passed on.

Each runs in a copy of the repository (so servers write their exchange and gradebook there) that shares this
checkout's `.venv`; without a `.venv` made by `./run.sh` for this lock (the suite started from another
environment), they skip: `./run.sh test` always has one. As root (CI, containers) this also proves that
JupyterLab does not refuse to start.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from course_tools.notebooks import ROOT, assignments
from labserver import REQUEST_S, STARTUP_S, copy_course, free_port

VENV = ROOT / ".venv"
pytestmark = pytest.mark.skipif(
    not (VENV / ".installed-lock").is_file()
    or (VENV / ".installed-lock").read_bytes() != (ROOT / "requirements.lock").read_bytes(),
    reason="no .venv set up by ./run.sh for this lock here (`./run.sh test` makes one)")


class RunSh:
    """``./run.sh ROLE --no-browser --port P ...`` in a copy of the repository; stopped on exit."""

    def __init__(self, tmp: Path, command: str):
        self.root = copy_course(tmp / "clone")
        for name in ["run.sh", "requirements.lock", "pyproject.toml"]:
            shutil.copy2(ROOT / name, self.root / name)
        (self.root / ".venv").symlink_to(VENV)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.log_path = tmp / f"{command}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("COURSE_EXCHANGE", "JUPYTERHUB_API_URL")}
        env.update(JUPYTER_CONFIG_DIR=str(tmp / "user-config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
                   JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
        self.cmd = ["bash", "./run.sh", command, "--no-browser", "--port", str(self.port),
                    "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}"]
        self.env = env

    def __enter__(self) -> "RunSh":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=self.root, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"./run.sh exited {self.proc.returncode}:\n{self.log()}"
            try:
                if self.get("api/status")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise AssertionError(f"./run.sh did not answer within {STARTUP_S} s:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def get(self, path: str) -> tuple[int, bytes, str]:
        """Status, body and final address (after redirects) of GET ``path``."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}",
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_S) as resp:
                return resp.status, resp.read(), resp.url
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.url


def test_lab_opens_the_first_notebook_with_the_repository_in_the_file_browser(tmp_path):
    with RunSh(tmp_path, "lab") as lab:
        status, _, url = lab.get("")
        first = assignments()[0]
        assert status == 200 and url.endswith(f"/lab/tree/course/{first}/{first}.ipynb"), url
        status, body, _ = lab.get("api/contents")
        assert {"course", "solutions"} <= {c["name"] for c in json.loads(body)["content"]}, body
        status, body, _ = lab.get("courses")  # nbgrader's student panel: the local exchange answers
        assert status == 200 and json.loads(body)["success"], body
        assert lab.get("formgrader/api/assignments")[0] == 404
        assert "Running as root is not recommended" not in lab.log()


def test_instructor_opens_the_formgrader_on_the_four_assignments(tmp_path):
    with RunSh(tmp_path, "instructor") as instructor:
        status, body, url = instructor.get("")
        assert status == 200 and "/formgrader/" in url, url  # formgrader's own start page
        status, body, _ = instructor.get("formgrader/api/assignments")
        assert status == 200 and sorted(a["name"] for a in json.loads(body)) == assignments(), body
