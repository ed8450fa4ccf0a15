"""Build notebooks: percent-format masters -> `solutions/` notebooks -> `course/` release.

A master ``masters/NN_name.py`` is a notebook in jupytext's percent format. Each cell opens with a marker
line; the nbgrader role of a cell is written as jupytext cell metadata on that line:

``# %% [markdown]``                              prose; jupytext strips the leading ``# `` of each line
``# %%``                                         ordinary code (students may edit it)
``# %% solution="NAME"``                         code the student writes (nbgrader autograded answer)
``# %% test="NAME" points=N``                    a graded check cell (locked, with hidden tests inside)
``# %% [markdown] answer="NAME" points=N``       a free-text answer graded by hand
``tags=["a", "b"]`` may follow on any marker line.

The solution notebook is ``solutions/NN_name/NN_name.ipynb``; nbgrader's
``generate_assignment`` turns it into ``course/NN_name/NN_name.ipynb``.

Every notebook starts with two cells the builder adds (see :mod:`induction_course.colab`): a header with the
"Open in Colab" link and the link between the exercise and solution versions, and the Colab setup cell.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import jupytext
import nbformat

from autograder.nbgrader_run import generate_assignment
from induction_course import colab
from induction_course.repository import MASTERS, ROOT

SOURCES = MASTERS  # the masters: outside nbgrader's source folder (solutions/), so nbgrader never lists them
SOLUTIONS = ROOT / "solutions"
COURSE = ROOT / "course"
CONFIG = ROOT / "autograder" / "nbgrader_config.py"

#: The nbgrader roles a master's cell can take, each a jupytext metadata key whose value is the grade id.
ROLES = ("solution", "test", "answer")
_ALLOWED_METADATA = {*ROLES, "points", "tags"}


def assignments() -> list[str]:
    """Names of all assignments, e.g. ``["01_attention", ...]``, from the masters."""
    return sorted(p.stem for p in SOURCES.glob("[0-9][0-9]_*.py"))


def _nbgrader_meta(role: str, grade_id: object, points: object) -> dict:
    if not isinstance(grade_id, str) or not grade_id:
        raise ValueError(f'a {role} cell needs a name: # %% {role}="NAME"')
    meta = {"grade_id": grade_id, "schema_version": 3, "locked": role == "test",
            "solution": role in ("solution", "answer"), "grade": role in ("test", "answer")}
    if meta["grade"]:
        meta["points"] = float(1 if points is None else points)
    return meta


def _course_cell(cell: nbformat.NotebookNode, where: str) -> nbformat.NotebookNode:
    """A cell as jupytext read it -> the cell of the solution notebook (nbgrader metadata, tags, nothing else)."""
    # jupytext's own layout keys (blank lines between cells, ...) say nothing about the notebook: drop them.
    meta = {k: v for k, v in cell.metadata.items() if k not in jupytext.cell_metadata._JUPYTEXT_CELL_METADATA}
    unknown = sorted(set(meta) - _ALLOWED_METADATA)
    if unknown:
        raise ValueError(f"{where}: unknown cell metadata {unknown} ({meta}); a marker line takes "
                         f'solution="NAME", test="NAME" points=N, answer="NAME" points=N or tags=[...] '
                         f"(see CONTRIBUTING.md, Master format)")
    roles = [r for r in ROLES if r in meta]
    if len(roles) > 1:
        raise ValueError(f"{where}: a cell has one role, not {roles}")
    if roles and (roles[0] == "answer") != (cell.cell_type == "markdown"):
        raise ValueError(f'{where}: answer cells are markdown (# %% [markdown] answer="NAME"), '
                         f"solution and test cells code")
    if "points" in meta and not (roles and roles[0] in ("test", "answer")):
        raise ValueError(f"{where}: points belong to test or answer cells")
    if cell.cell_type == "markdown":
        out = nbformat.v4.new_markdown_cell(cell.source)
    else:
        out = nbformat.v4.new_code_cell(cell.source)
    if roles:
        out.metadata["nbgrader"] = _nbgrader_meta(roles[0], meta[roles[0]], meta.get("points"))
    if "tags" in meta:
        out.metadata["tags"] = list(meta["tags"])
    return out


def _colab_cells(name: str, variant: str) -> list[nbformat.NotebookNode]:
    header = nbformat.v4.new_markdown_cell(colab.header_markdown(name, variant))
    header.id = colab.header_cell_id(name)
    setup = nbformat.v4.new_code_cell(colab.setup_cell_source())
    setup.id = colab.setup_cell_id(name)
    setup.metadata = {"jupyter": {"source_hidden": True}}  # JupyterLab shows it as one collapsed line
    return [header, setup]


def parse_master(text: str, name: str) -> nbformat.NotebookNode:
    """Turn the text of a percent-format master into a notebook (no outputs), reading it with jupytext.

    The notebook starts with the Colab header and setup cells (:mod:`induction_course.colab`), in their
    solution-notebook variant; :func:`release` switches the header to the course variant.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(jupytext.reads(text, fmt="py:percent").cells):
        cell = _course_cell(cell, f"{name} cell {i}")
        cell.id = f"{name[:2]}-{i:03d}"
        nb.cells.append(cell)
    nb.cells[:0] = _colab_cells(name, "solution")
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write ``nb`` with stable formatting, so regeneration gives identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def build_solution(name: str) -> Path:
    """Master ``masters/<name>.py`` -> ``solutions/<name>/<name>.ipynb``."""
    nb = parse_master((SOURCES / f"{name}.py").read_text(), name)
    out = SOLUTIONS / name / f"{name}.ipynb"
    write_notebook(nb, out)
    return out


def release(name: str, dest: Path) -> Path:
    """Run nbgrader ``generate_assignment`` for ``name`` and write the release under ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = generate_assignment(name, CONFIG.parent, f"--CourseDirectory.release_directory={tmp}/release",
                                   f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db")
        if proc.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{proc.stderr}{proc.stdout}")
        return finish_release(Path(tmp) / "release" / name / f"{name}.ipynb", name, dest)


def finish_release(generated: Path, name: str, dest: Path) -> Path:
    """Write nbgrader's ``generated`` release of ``name`` under ``dest`` as ``course/`` holds it (its Colab header
    pointing at the student's copy)."""
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
