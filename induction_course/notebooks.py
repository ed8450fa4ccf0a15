"""Build notebooks: percent-format masters -> `solutions/` notebooks -> `course/` release.

A master ``solutions/src/NN_name.py`` is a sequence of cells, each opened by a marker line:

``# %% [markdown]``                 prose; a leading ``# `` is stripped from each line
``# %%``                            ordinary code (students may edit it)
``# %% [solution] id=NAME``          code the student writes (nbgrader autograded answer)
``# %% [test] id=NAME points=N``     a graded check cell (locked, with hidden tests inside)
``# %% [answer] id=NAME points=N``   a free-text answer graded by hand (markdown)

The solution notebook is ``solutions/NN_name/NN_name.ipynb``; nbgrader's
``generate_assignment`` turns it into ``course/NN_name/NN_name.ipynb``.

Every notebook starts with two cells the builder adds (see :mod:`induction_course.colab`): a header with the
"Open in Colab" badge and the link between the exercise and solution versions, and the Colab setup cell.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from induction_course import colab

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "solutions" / "src"
SOLUTIONS = ROOT / "solutions"
COURSE = ROOT / "course"
CONFIG = ROOT / "autograder" / "nbgrader_config.py"

_MARKER = re.compile(r"^# %%(?: \[(?P<kind>markdown|solution|test|answer)\])?(?P<attrs>.*)$")


def assignments() -> list[str]:
    """Names of all assignments, e.g. ``["01_attention", ...]``, from the masters."""
    return sorted(p.stem for p in SOURCES.glob("[0-9][0-9]_*.py"))


def _nbgrader_meta(kind: str, attrs: dict[str, str]) -> dict:
    grade_id = attrs.get("id")
    if not grade_id:
        raise ValueError(f"a [{kind}] cell needs id=NAME")
    meta = {"grade_id": grade_id, "schema_version": 3, "locked": kind == "test",
            "solution": kind in ("solution", "answer"), "grade": kind in ("test", "answer")}
    if meta["grade"]:
        meta["points"] = float(attrs.get("points", 1))
    return meta


def _cell(kind: str | None, attrs: dict[str, str], lines: list[str]) -> nbformat.NotebookNode:
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if kind in ("markdown", "answer"):
        text = "\n".join(re.sub(r"^# ?", "", line) for line in lines)
        cell = nbformat.v4.new_markdown_cell(text)
    else:
        cell = nbformat.v4.new_code_cell("\n".join(lines))
    if kind in ("solution", "test", "answer"):
        cell.metadata["nbgrader"] = _nbgrader_meta(kind, attrs)
    if "tags" in attrs:
        cell.metadata["tags"] = attrs["tags"].split(",")
    return cell


def _colab_cells(name: str, variant: str) -> list[nbformat.NotebookNode]:
    header = nbformat.v4.new_markdown_cell(colab.header_markdown(name, variant))
    header.id = colab.header_cell_id(name)
    setup = nbformat.v4.new_code_cell(colab.setup_cell_source())
    setup.id = colab.setup_cell_id(name)
    return [header, setup]


def parse_master(text: str, name: str) -> nbformat.NotebookNode:
    """Turn the text of a percent-format master into a notebook (no outputs).

    The notebook starts with the Colab header and setup cells (:mod:`induction_course.colab`), in their
    solution-notebook variant; :func:`release` switches the header to the course variant.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    kind, attrs, lines = None, {}, []
    started = False
    for line in text.splitlines():
        match = _MARKER.match(line)
        if match:
            if started:
                nb.cells.append(_cell(kind, attrs, lines))
            kind = match["kind"]
            attrs = dict(a.split("=", 1) for a in match["attrs"].split())
            lines, started = [], True
        elif started:
            lines.append(line)
    if started:
        nb.cells.append(_cell(kind, attrs, lines))
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name[:2]}-{i:03d}"
    nb.cells[:0] = _colab_cells(name, "solution")
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write ``nb`` with stable formatting, so regeneration gives identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def build_solution(name: str) -> Path:
    """Master ``solutions/src/<name>.py`` -> ``solutions/<name>/<name>.ipynb``."""
    nb = parse_master((SOURCES / f"{name}.py").read_text(), name)
    out = SOLUTIONS / name / f"{name}.ipynb"
    write_notebook(nb, out)
    return out


def nbgrader_env() -> dict[str, str]:
    """The environment for an nbgrader subprocess.

    nbgrader runs ``alembic`` from PATH, so this interpreter's scripts go first, even when the
    virtual environment is not activated.
    """
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def release(name: str, dest: Path) -> Path:
    """Run nbgrader ``generate_assignment`` for ``name`` and write the release under ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force",
               f"--CourseDirectory.release_directory={tmp}/release",
               f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db", "--log-level=ERROR"]
        proc = subprocess.run(cmd, cwd=CONFIG.parent, capture_output=True, text=True, env=nbgrader_env())
        if proc.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{proc.stderr}{proc.stdout}")
        generated = Path(tmp) / "release" / name / f"{name}.ipynb"
        nb = nbformat.read(generated, as_version=4)
        for cell in nb.cells:
            if cell.get("id") == colab.header_cell_id(name):
                cell.source = colab.header_markdown(name, "course")
        out = dest / name / f"{name}.ipynb"
        write_notebook(nb, out)
    return out


def build_all(dest: Path = COURSE) -> list[Path]:
    """Rebuild every solution notebook from its master, then every release notebook."""
    outputs = []
    for name in assignments():
        outputs.append(build_solution(name))
        outputs.append(release(name, dest))
    return outputs
