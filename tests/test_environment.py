"""The install routes agree: requirements.lock, its conda mirror environment.yml, run.sh and the README.

What needs a download or another Python is checked by ``tests/setup/python_versions.sh`` (fresh clone, setup,
smoke test per Python); here, what can be read.
"""
from __future__ import annotations

import http.server
import importlib.metadata
import re
import subprocess
import sys
import threading
import tomllib
import urllib.request

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from course_tools.environment import ENVIRONMENT, TORCH_CPU_INDEX, environment_yml, read_lock
from course_tools.notebooks import ROOT

OLDEST_PYTHON = "3.11.2"  # Debian 12's


def test_environment_yml_is_the_lock_with_cpu_torch_and_says_how_to_start():
    text = ENVIRONMENT.read_text()
    assert text == environment_yml(read_lock()), "environment.yml drifted from requirements.lock: run `course lock`"
    env = yaml.safe_load(text)
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert f"--extra-index-url {TORCH_CPU_INDEX}" in pip
    assert [p for p in pip if "==" in p] == read_lock() and pip[-1] == "-e ."
    # A plain `jupyter lab` lacks the server extension and the roles: the file says to start with run.sh.
    assert "./run.sh lab" in text


def test_run_sh_takes_torch_from_the_same_cpu_index():
    assert f"TORCH_CPU_INDEX={TORCH_CPU_INDEX}\n" in (ROOT / "run.sh").read_text()


def test_lock_pins_the_installers_and_torch():
    names = {canonicalize_name(pin.split("==")[0]) for pin in read_lock()}
    assert {"pip", "setuptools", "torch"} <= names
    assert len(names) == len(read_lock()), "a package is pinned twice"


def test_every_installed_pin_admits_the_oldest_python():
    """Each locked distribution installed here declares a Requires-Python that Debian 12's Python meets."""
    pins = dict(pin.split("==") for pin in read_lock())
    refused = {}
    for name, version in pins.items():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        requires = dist.metadata.get("Requires-Python")
        if dist.version == version and requires and OLDEST_PYTHON not in SpecifierSet(requires):
            refused[name] = f"{version} requires Python {requires}"
    assert not refused, f"these pins do not install on Python {OLDEST_PYTHON}: {refused}"


def test_readme_and_pyproject_state_the_same_oldest_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={OLDEST_PYTHON}"
    assert "(3, 11, 2)" in (ROOT / "run.sh").read_text()
    assert re.search(rf"Python 3\.11 \({re.escape(OLDEST_PYTHON)} or newer\)", (ROOT / "README.md").read_text())


def _torch_index_probe() -> str:
    """The Python program run.sh runs to ask whether a torch index answers (its heredoc)."""
    return re.search(r"<<'PY'\n(.*?)\nPY\n", (ROOT / "run.sh").read_text(), re.S).group(1)


def test_torch_index_probe_gives_up_on_a_silent_index_after_its_own_timeout(monkeypatch):
    """A silent index makes urlopen time out; the probe bounds that wait itself (a finite urlopen timeout, of at
    most 10 s) and answers 1, "no", and run.sh bounds the whole probe, name lookup included (``timeout 15``)."""
    asked = []

    def silent(request, timeout=None):
        asked.append(timeout)
        raise TimeoutError("timed out")  # what urlopen raises when the server accepts and never answers

    monkeypatch.setattr(urllib.request, "urlopen", silent)
    monkeypatch.setattr(sys, "argv", ["probe", "http://127.0.0.1:9/"])
    with pytest.raises(SystemExit) as exit_code:
        exec(_torch_index_probe(), {"__name__": "__main__"})
    assert exit_code.value.code == 1
    assert len(asked) == 1 and asked[0] is not None and 0 < asked[0] <= 10, asked
    assert "probe=(timeout 15 " in (ROOT / "run.sh").read_text()


def test_torch_index_probe_accepts_any_answer():
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), NotFound) as server:
        threading.Thread(target=server.handle_request, daemon=True).start()
        proc = subprocess.run([sys.executable, "-c", _torch_index_probe(), f"http://127.0.0.1:{server.server_port}/"],
                              capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
