"""The build pipeline: masters -> solutions -> course stay in sync, output-free, and the lock agrees."""
from __future__ import annotations

import json
import re

import pytest

from course_tools.environment import read_lock
from course_tools.notebooks import COURSE, ROOT, SOLUTIONS, SOURCES, finish_release, parse_master


def _bytes_of(nb) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_master_markers_become_nbgrader_metadata():
    master = """# %% [markdown]
# # Title
# %%
x = 1
# %% solution="f" tags=["a", "b"]
def f():
    ### BEGIN SOLUTION
    return 1
    ### END SOLUTION
# %% test="check_f" points=3
assert f() == 1
# %% [markdown] answer="why" points=1
# YOUR ANSWER HERE
"""
    cells = parse_master(master, "00_demo").cells[2:]
    assert [(c.cell_type, c.source) for c in cells] == [
        ("markdown", "# Title"), ("code", "x = 1"),
        ("code", "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        ("code", "assert f() == 1"), ("markdown", "YOUR ANSWER HERE")]
    assert [c.metadata.get("nbgrader") for c in cells] == [
        None, None,
        {"grade_id": "f", "schema_version": 3, "locked": False, "solution": True, "grade": False},
        {"grade_id": "check_f", "schema_version": 3, "locked": True, "solution": False, "grade": True, "points": 3.0},
        {"grade_id": "why", "schema_version": 3, "locked": False, "solution": True, "grade": True, "points": 1.0}]
    assert cells[2].metadata["tags"] == ["a", "b"]
    assert [c.id for c in cells] == [f"00-{i:03d}" for i in range(5)]


@pytest.mark.parametrize("marker, message", [
    ("# %% [solution] id=f", "unknown cell metadata"),      # the old syntax, or a typo, is not an ordinary cell
    ("# %% soluton=\"f\"", "unknown cell metadata"),
    ("# %% solution=\"f\" test=\"g\"", "one role"),
    ("# %% [markdown] solution=\"f\"", "answer cells are markdown"),
    ("# %% answer=\"f\"", "answer cells are markdown"),
    ("# %% solution=\"f\" points=2", "points belong to test or answer cells"),
    ("# %% test=\"\"", "needs a name"),
])
def test_a_wrong_marker_is_refused_with_a_message(marker, message):
    with pytest.raises(ValueError, match=message):
        parse_master(f"# %%\nx = 1\n{marker}\ny = 2\n", "00_demo")


def test_every_master_has_both_notebooks(assignment):
    assert (SOLUTIONS / assignment / f"{assignment}.ipynb").exists(), "run `./run.sh build`"
    assert (COURSE / assignment / f"{assignment}.ipynb").exists(), "run `./run.sh build`"


def test_solution_notebook_matches_its_master(assignment):
    built = _bytes_of(parse_master((SOURCES / f"{assignment}.py").read_text(), assignment))
    committed = (SOLUTIONS / assignment / f"{assignment}.ipynb").read_text()
    assert committed == built, f"solutions/{assignment} drifted from masters/{assignment}.py: run `./run.sh build`"


def test_course_notebook_is_what_nbgrader_generates(assignment, course_dirs, tmp_path):
    """``course_dirs`` generated the assignment with the course's nbgrader configuration (as `./run.sh build` does)."""
    nbgrader_release = course_dirs[assignment] / "release" / assignment / f"{assignment}.ipynb"
    generated = finish_release(nbgrader_release, assignment, tmp_path).read_text()
    committed = (COURSE / assignment / f"{assignment}.ipynb").read_text()
    assert committed == generated, f"course/{assignment} drifted from solutions/{assignment}: run `./run.sh build`"


def test_course_release_holds_no_solution_text(assignment):
    text = (COURSE / assignment / f"{assignment}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert not list((COURSE / assignment).glob("*.py")), "masters must not reach students"


def test_no_notebook_carries_outputs():
    notebooks = [p for p in ROOT.rglob("*.ipynb") if ".venv" not in p.parts and ".ipynb_checkpoints" not in p.parts]
    assert notebooks
    dirty = []
    for path in notebooks:
        nb = json.loads(path.read_text())
        if any(c.get("outputs") or c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"):
            dirty.append(str(path.relative_to(ROOT)))
    assert not dirty, f"notebooks committed with outputs: {dirty}"


def test_lock_pins_every_package_exactly_and_the_stack():
    pins = dict(line.split("==") for line in read_lock())
    assert all(v and "*" not in v for v in pins.values())
    names = {k.lower().replace("_", "-") for k in pins}
    assert {"torch", "transformer-lens", "nbgrader", "jupyterlab", "circuitsvis", "matplotlib", "pytest"} <= names
    assert pins["torch"] == "2.13.0"
    assert pins["transformer-lens"].startswith("4.") and pins["nbgrader"].startswith("0.9.")
    assert pins["jupyterlab"].startswith("4.")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "./run.sh test" in readme and "./run.sh lab" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "exec bash ./run.sh test"


def _minutes(pattern: str, text: str) -> list[int]:
    return [int(m) for m in re.findall(pattern, text, flags=re.M)]


def test_one_set_of_time_estimates(assignment):
    """The notebook's header time is the README's, and at least the sum of its exercises' times."""
    master = (SOURCES / f"{assignment}.py").read_text()
    header = _minutes(r"\*\*Time\.\*\* About (\d+) minutes", master)
    exercises = _minutes(r"\*\*About (\d+) min\*\*", master)
    number = int(assignment[:2])
    readme = _minutes(rf"^\| {number} \| `course/{assignment}` \|.*\| (\d+) min \|$",
                      (ROOT / "README.md").read_text())
    assert len(header) == 1 and readme == header, (header, readme)
    assert header[0] >= sum(exercises), f"{assignment}: {header[0]} min in the header, {sum(exercises)} in its exercises"
