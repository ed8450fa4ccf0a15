"""Run a throwaway JupyterLab on 127.0.0.1 for tests, and make course notebooks as a student would fill them."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat

from course_tools.notebooks import COURSE, ROOT, SOLUTIONS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def filled_course_notebook(name: str) -> nbformat.NotebookNode:
    """The released ``course/`` notebook with every solution cell filled in from the solution notebook.

    This is what a student who solved everything submits: the course header, the checks without hidden tests,
    nbgrader's checksums, and the student's answers.
    """
    course = nbformat.read(COURSE / name / f"{name}.ipynb", as_version=4)
    solution = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in course.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    return course


STARTUP_S = 300  # JupyterLab imports every server extension (nbgrader's among them) at start: slow when busy
REQUEST_S = 30  # one HTTP request to the server


def copy_course(dest: Path) -> Path:
    """The files nbgrader and Jupyter read in a clone of the repository, copied to ``dest`` (returned).

    Servers started on the copy write their exchange, gradebook and fetched assignments there, never into
    the repository under test.
    """
    for name in ["nbgrader_config.py", "autograder/nbgrader_config.py", "autograder/jupyter", "solutions", "course"]:
        src, dst = ROOT / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copy2(src, dst)
    return dest


class LabServer:
    """``jupyter lab`` from this environment, on a free 127.0.0.1 port, with a random token.

    The environment's own configuration applies (that is what is under test: nbgrader's and the course's
    server extensions); the user's (~/.jupyter), JupyterLab's settings and workspaces are fresh temporary
    directories, with ``settings`` (plugin id -> settings dict) written there. ``env`` adds variables, e.g.
    ``JUPYTER_CONFIG_PATH`` for one of the course's roles (autograder/jupyter/student or instructor).
    """

    def __init__(self, root: Path, scratch: Path, settings: dict[str, dict] | None = None,
                 env: dict[str, str] | None = None):
        self.root, self.scratch = Path(root), Path(scratch)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.scratch / "jupyterlab.log"
        self.settings = settings or {}
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "LabServer":
        env = dict(os.environ)
        for var, sub in [("JUPYTER_CONFIG_DIR", "user-config"), ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
                         ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"), ("JUPYTER_RUNTIME_DIR", "runtime")]:
            env[var] = str(self.scratch / sub)
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        for plugin, values in self.settings.items():
            package, _, name = plugin.partition(":")
            path = self.scratch / "lab-settings" / package / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.setdefault("COURSE_DEVICE", "cpu")
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        env.update(self.env)
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers and CI runners often run as root
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "api/status")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"jupyter lab did not answer within {STARTUP_S} s:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.request("POST", "api/shutdown")
            except OSError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=30)
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def url(self, path: str, **query: str) -> str:
        return self.base + path + "?" + urllib.parse.urlencode({**query, "token": self.token})

    def request(self, method: str, path: str, form: dict | None = None, timeout: float = REQUEST_S,
                **query: str) -> tuple[int, bytes]:
        data = urllib.parse.urlencode(form).encode() if form is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.base + path + ("?" + urllib.parse.urlencode(query) if query else ""),
                                     data=data, method=method, headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
