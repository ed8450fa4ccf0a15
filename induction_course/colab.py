"""Self-study on Colab: the header and setup cell every notebook starts with, and the installer that cell runs.

The repository's address is written in one place: ``[project.urls] Repository`` in ``pyproject.toml``. The
builder (:func:`course_tools.notebooks.parse_master`) puts two cells, made from it, in front of every master:

1. a markdown header: an "Open in Colab" link (only where Colab can open the repository, i.e. a GitHub https
   address; elsewhere a note says to upload the notebook), and the link to the solution notebook (from a
   course notebook) or to the exercise version (from a solution notebook). Text links only: the page loads
   nothing from the web;
2. a setup code cell, its source collapsed to one line in JupyterLab (``jupyter.source_hidden``: one click
   shows it). Anywhere but Colab it does nothing. On Colab it clones the repository (the environment
   variable :data:`REPO_ENV` overrides its address, for forks and tests) and runs this very file from the
   clone, as a script, to install (:func:`install`). The cell is self-contained: ``induction_course`` is not
   importable on Colab until it has run.

What the installer installs, and why (decided here, once): the runtime's own packages are kept (Colab's torch
is a CUDA build matched to its GPU and driver; a package the kernel has imported cannot be replaced without a
restart). Every package the course needs that the runtime lacks is installed at its exact version from
``requirements.lock``: pip installs the course's direct dependencies (``pyproject.toml``, less
:data:`NOT_FOR_COLAB`) under constraints that pin every absent package to the lock. A runtime package that
does not satisfy the course is upgraded by pip; if its new version is not the lock's, a second pass pins it
to the lock. Then the helper package itself is installed from the clone, without dependencies.

This file imports only the standard library, so that it runs before anything is installed.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

# Defined here, not imported: this file runs as a script on Colab before the course is installed.
# induction_course.repository re-exports them for everything else.
ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

#: The environment variable that overrides the repository the setup cell installs from.
REPO_ENV = "COURSE_REPO_URL"
#: The branch that links and the Colab install point at.
REPO_BRANCH = "main"
#: Direct dependencies Colab does not get: nbgrader (grading; its Jupyter server stack would fight Colab's)
#: and jupytext (it only builds the notebooks from their masters).
NOT_FOR_COLAB = frozenset({"nbgrader", "jupytext"})
SETUP_MARKER = "# Setup for Google Colab"

_GITHUB = re.compile(r"^https://github\.com/(?P<path>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def on_colab() -> bool:
    """True in a Colab runtime (the same test as the setup cell's)."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def repository_url(pyproject: Path = PYPROJECT) -> str:
    """The course's git repository, from ``[project.urls] Repository`` in ``pyproject.toml``."""
    url = tomllib.loads(pyproject.read_text()).get("project", {}).get("urls", {}).get("Repository", "").strip()
    if not url:
        raise ValueError(f"{pyproject} needs the course's git address: [project.urls] Repository = \"https://...\"")
    return url


def github_path(url: str) -> str | None:
    """``OWNER/NAME`` when ``url`` is a GitHub https address (Colab opens notebooks only from there), else None."""
    match = _GITHUB.match(url)
    return match["path"] if match else None


def course_path(name: str) -> str:
    return f"course/{name}/{name}.ipynb"


def solution_path(name: str) -> str:
    return f"solutions/{name}/{name}.ipynb"


def _links(url: str, path: str) -> tuple[str, str] | None:
    """(GitHub page, Colab address) of the notebook ``path``, or None when Colab cannot open the repository."""
    repo = github_path(url)
    if repo is None:
        return None
    return (f"https://github.com/{repo}/blob/{REPO_BRANCH}/{path}",
            f"https://colab.research.google.com/github/{repo}/blob/{REPO_BRANCH}/{path}")


def header_markdown(name: str, variant: str, url: str | None = None) -> str:
    """The first cell: "Open in Colab" (a text link) and the link between exercise and solution versions."""
    url = url or repository_url()
    course, solution = course_path(name), solution_path(name)
    if variant not in ("course", "solution"):
        raise ValueError(f"variant must be 'course' or 'solution', not {variant!r}")
    own, other = (course, solution) if variant == "course" else (solution, course)
    own_links, other_links = _links(url, own), _links(url, other)
    if own_links:
        top = f"**[Open in Colab]({own_links[1]})**: its first code cell installs the course there."
        other_ref = f"[`{other}`]({other_links[0]}) ([open it in Colab]({other_links[1]}))"
    else:
        top = (f"**Colab:** it opens notebooks from GitHub only, and this course lives at `{url}`: upload this "
               "notebook to Colab (*File > Upload notebook*); its first code cell installs the course there.")
        other_ref = f"`{other}` in the repository"
    if variant == "course":
        link = (f"**Self-study:** the worked solutions are in the solution notebook, {other_ref}. "
                "Try each exercise first: its check cell says what is wrong.")
    else:
        link = f"**This is the solution notebook.** The exercise version is {other_ref}."
    return f"{top}\n\n{link}"


def setup_cell_source(url: str | None = None) -> str:
    """The self-contained setup cell: on Colab it clones the repository and runs :func:`install` from it."""
    url = url or repository_url()
    fork = f"os.environ['{REPO_ENV}'] = 'https://github.com/YOU/FORK'"
    return f'''{SETUP_MARKER}: it installs the course there (about a minute) and does nothing anywhere else.
# Colab's own packages are kept (its torch uses the GPU); those the course lacks are installed at the exact
# versions of its requirements.lock. For a fork, set the {REPO_ENV} environment variable first.
import os, subprocess, sys, tempfile

if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
    repo = os.environ.get("{REPO_ENV}", {json.dumps(url)})
    clone = tempfile.mkdtemp(prefix="induction-course-")
    print("Setting up the course on Colab (about a minute)...", flush=True)

    def run(cmd, failure):
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(proc.stdout, end="")
        if proc.returncode != 0:
            raise RuntimeError(failure)

    run(["git", "clone", "--quiet", "--depth=1", "--branch={REPO_BRANCH}", repo, clone],
        f"Could not download the course from {{repo}} (git's message is above). Check that the runtime is online "
        "and the address is right. For a fork, run this in a cell above, then this one again: "
        "{fork}")
    run([sys.executable, os.path.join(clone, "induction_course", "colab.py"), "install", clone],
        "Could not install the course's packages (pip's messages are above). Run this cell again; if it fails "
        "again: Runtime > Disconnect and delete runtime, then Runtime > Run all.")'''


def header_cell_id(name: str) -> str:
    return f"{name[:2]}-colab"


def setup_cell_id(name: str) -> str:
    return f"{name[:2]}-setup"


# The installer: run on Colab as ``python <clone>/induction_course/colab.py install <clone>``.


def lock_pins(lock_text: str) -> dict[str, str]:
    """normalised name -> exact version, from the text of ``requirements.lock``."""
    pins = {}
    for line in lock_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_normalise(name)] = version.strip()
    return pins


def colab_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The direct dependencies (with their ranges) the setup cell resolves on Colab: all but :data:`NOT_FOR_COLAB`."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if _normalise(re.split(r"[\s<>=!~;\[(]", d, maxsplit=1)[0]) not in NOT_FOR_COLAB]


def installed_distributions() -> dict[str, str]:
    """normalised name -> version of every distribution this interpreter can import."""
    return {_normalise(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
            if d.metadata["Name"]}


def constraints(lock: dict[str, str], installed: dict[str, str], also: frozenset[str] = frozenset()) -> list[str]:
    """``name==version`` from the lock for every locked package the runtime lacks, and for those in ``also``."""
    return sorted(f"{n}=={v}" for n, v in lock.items() if n not in installed or n in also)


def planned(report: dict) -> dict[str, str]:
    """normalised name -> version of what a ``pip install --report`` would install."""
    return {_normalise(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}


def off_lock(plan: dict[str, str], lock: dict[str, str]) -> dict[str, str]:
    """The planned installs whose version is not the lock's (the runtime had them at a version that does not do)."""
    return {n: v for n, v in plan.items() if n in lock and lock[n] != v}


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"])
    if proc.returncode != 0:
        raise SystemExit(f"pip {args[0]} failed (exit {proc.returncode}); its messages are above.")


def _install(requirements: list[str], pins: list[str], tmp: Path) -> dict[str, str]:
    """pip-install ``requirements`` under the constraints ``pins``; return what it installed (name -> version)."""
    (tmp / "constraints.txt").write_text("\n".join(pins) + "\n")
    _pip("install", "--no-compile", "--report", str(tmp / "report.json"), "-c", str(tmp / "constraints.txt"),
         *requirements)
    return planned(json.loads((tmp / "report.json").read_text()))


def install(clone: Path) -> None:
    """Install what the course needs and the runtime lacks, at the lock's versions, then the course from ``clone``."""
    lock = lock_pins((clone / "requirements.lock").read_text())
    requirements = colab_requirements(clone / "pyproject.toml")
    before = installed_distributions()
    with tempfile.TemporaryDirectory() as tmp:
        plan = _install(requirements, constraints(lock, before), Path(tmp))
        drifted = off_lock(plan, lock)
        if drifted:  # runtime packages that do not satisfy the course, upgraded by pip: bring them to the lock
            plan |= _install(requirements, constraints(lock, before, frozenset(drifted)), Path(tmp))
        if off_lock(plan, lock):
            raise SystemExit(f"pip cannot install {sorted(off_lock(plan, lock))} at the lock's versions here.")
    _pip("install", "--no-deps", "--no-compile", str(clone))
    print(_summary(plan, before, lock))


def _summary(plan: dict[str, str], before: dict[str, str], lock: dict[str, str]) -> str:
    replaced = [f"{n} {before[n]} -> {v}" for n, v in sorted(plan.items()) if n in before]
    unlocked = [f"{n}=={v}" for n, v in sorted(plan.items()) if n not in lock]
    lines = [f"Colab setup done: installed {len(plan) - len(unlocked)} packages at the course's locked versions, "
             f"kept the runtime's own {len(before) - len(replaced)}, and installed the course."]
    if replaced:
        lines.append(f"Replaced the runtime's {', '.join(replaced)}. If this session had imported any of them, "
                     "restart it (Runtime > Restart session) and run the notebook again.")
    if unlocked:
        lines.append(f"Not in the lock (this runtime's Python needs them): {', '.join(unlocked)}.")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "install":
        raise SystemExit("usage: python colab.py install CLONE_OF_THE_REPOSITORY")
    install(Path(sys.argv[2]))
