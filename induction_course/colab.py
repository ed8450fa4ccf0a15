"""Self-study on Colab: the "Open in Colab" header and the setup cell that every notebook starts with.

The builder (:func:`induction_course.notebooks.parse_master`) puts two cells in front of every master:

1. a markdown header: the "Open in Colab" badge of this notebook, and a link to its solution notebook
   (from a course notebook) or to its exercise version (from a solution notebook);
2. a setup code cell. On Colab it installs the course's pinned packages, then this helper package from
   :data:`REPO_URL`; anywhere else it does nothing. It must be self-contained: ``induction_course`` is not
   importable on Colab until the cell has run.

Which packages, and why (decided here, once): every direct dependency in ``pyproject.toml``, each at its
exact version from ``requirements.lock``, except

- ``torch`` and ``matplotlib``: Colab preinstalls them, torch as a CUDA build matched to the runtime's GPU
  and driver. The locked ``torch==2.13.0`` from PyPI would be a multi-GB download, and the kernel may
  already have imported them, so replacing them would need a runtime restart. The course uses only their
  stable APIs, and ``pick_device()`` uses the GPU whenever the runtime has one;
- ``nbgrader``: grading only; it would pull in a Jupyter server stack that conflicts with Colab's own;
- ``jupytext``: it only builds the notebooks from their masters.

The helper package is installed with ``--no-deps`` for the same reason. Dependencies of the pinned packages
are left to pip (a constraints file of the whole lock would force-replace numpy and friends in a running
Colab kernel).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"

#: The course's public repository: the one place its address is written.
REPO_URL = "https://github.com/induction-heads-course/induction-heads-course"
#: The branch that badges, solution links and the Colab install point at.
REPO_BRANCH = "main"

#: Direct dependencies that the Colab setup cell does not install (see the module docstring).
COLAB_PREINSTALLED = frozenset({"torch", "matplotlib"})
NOT_FOR_COLAB = frozenset({"nbgrader", "jupytext"})

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
SETUP_MARKER = "# Setup for Google Colab"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _repo_path() -> str:
    prefix = "https://github.com/"
    if not REPO_URL.startswith(prefix):
        raise ValueError(f"REPO_URL must be a GitHub address, not {REPO_URL!r}")
    return REPO_URL[len(prefix):].rstrip("/")


def github_url(path: str) -> str:
    """The GitHub page of ``path`` (relative to the repository root) on :data:`REPO_BRANCH`."""
    return f"{REPO_URL.rstrip('/')}/blob/{REPO_BRANCH}/{path}"


def colab_url(path: str) -> str:
    """The address that opens the notebook ``path`` of the repository in Colab."""
    return f"https://colab.research.google.com/github/{_repo_path()}/blob/{REPO_BRANCH}/{path}"


def course_path(name: str) -> str:
    return f"course/{name}/{name}.ipynb"


def solution_path(name: str) -> str:
    return f"solutions/{name}/{name}.ipynb"


def direct_dependencies(pyproject: Path = PYPROJECT) -> list[str]:
    """Normalised names of the project's direct dependencies, in pyproject order."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [_normalise(re.split(r"[\s<>=!~;\[(]", dep, maxsplit=1)[0]) for dep in deps]


def lock_pins(lock_text: str) -> dict[str, str]:
    """normalised name -> ``name==version`` line, from the text of ``requirements.lock``."""
    pins = {}
    for line in lock_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            pins[_normalise(line.split("==", 1)[0])] = line
    return pins


def colab_packages(lock_text: str, pyproject: Path = PYPROJECT) -> list[str]:
    """The exact pins the setup cell installs on Colab, sorted."""
    pins = lock_pins(lock_text)
    wanted = [d for d in direct_dependencies(pyproject) if d not in COLAB_PREINSTALLED | NOT_FOR_COLAB]
    missing = [d for d in wanted if d not in pins]
    if missing:
        raise ValueError(f"requirements.lock has no exact pin for {missing}: run `course lock`")
    return sorted(pins[d] for d in wanted)


def helper_requirement() -> str:
    """pip's requirement for this helper package, straight from the repository."""
    return f"induction-course @ git+{REPO_URL.rstrip('/')}.git@{REPO_BRANCH}"


def pip_commands(lock_text: str, pyproject: Path = PYPROJECT) -> list[list[str]]:
    """The arguments of each ``python -m pip`` call the setup cell makes on Colab, in order."""
    return [
        ["install", "--quiet", *colab_packages(lock_text, pyproject)],
        ["install", "--quiet", "--no-deps", helper_requirement()],
    ]


def setup_cell_source(lock_text: str | None = None) -> str:
    """The self-contained setup cell: pip installs on Colab, nothing elsewhere."""
    if lock_text is None:
        lock_text = LOCK.read_text()
    commands = pip_commands(lock_text)
    listed = "".join(f"\n        {cmd!r}," for cmd in commands)
    return (
        f"{SETUP_MARKER}: it installs the course's pinned packages there (about a minute) and does\n"
        "# nothing anywhere else. Colab's own torch is kept, so a GPU runtime stays a GPU runtime.\n"
        "import os, subprocess, sys\n"
        "\n"
        'if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:\n'
        f"    for pip_args in [{listed}\n    ]:\n"
        '        subprocess.check_call([sys.executable, "-m", "pip", *pip_args])\n'
        '    print("Colab setup done: the course packages are installed.")'
    )


def header_markdown(name: str, variant: str) -> str:
    """The first cell: the Colab badge, and the link between exercise and solution versions."""
    course, solution = course_path(name), solution_path(name)
    if variant == "course":
        own = course
        link = (f"**Self-study:** the worked solutions are in the [solution notebook]({github_url(solution)}) "
                f"([open it in Colab]({colab_url(solution)}); in a copy of the repository it is "
                f"`{solution}`). Try each exercise first: its check cell says what is wrong.")
    elif variant == "solution":
        own = solution
        link = (f"**This is the solution notebook.** The exercise version is [`{course}`]({github_url(course)}) "
                f"([open it in Colab]({colab_url(course)})).")
    else:
        raise ValueError(f"variant must be 'course' or 'solution', not {variant!r}")
    return f"[![Open In Colab]({COLAB_BADGE})]({colab_url(own)})\n\n{link}"


def header_cell_id(name: str) -> str:
    return f"{name[:2]}-colab"


def setup_cell_id(name: str) -> str:
    return f"{name[:2]}-setup"
