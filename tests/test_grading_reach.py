"""Out of reach: while notebook K is graded, its sandboxed kernel sees a build of the course package without K's
references, expected values, known bugs and answer keys (``autograder/withhold.py``), and its checks still collect.

Each test runs one Python in the grader's own sandbox (``sandbox.bwrap_args`` with the withheld build bound over
the package) and tries the routes to a reference that once scored full marks for a wrong answer; the records its
checks collect there from correct functions are judged outside, by the real checks, as ``course grade`` does.
The whole of ``course grade`` on Notebook 1 with these routes is in ``test_grading_notebook1.py`` (TRICKS).
"""
from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from autograder import deciding, withhold
from autograder.restoring import check_modules
from autograder.sandbox import bwrap_args, sandbox_problem
from autograder.settings import Limits, course_package
from induction_course import attention
from induction_course.checks import nb1, record
from course_tools.notebooks import SOLUTIONS

pytestmark = pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox: {sandbox_problem()}")
NB1 = SOLUTIONS / "01_attention" / "01_attention.ipynb"


def _in_sandbox(tmp_path: Path, source: Path | None, script: str) -> dict:
    ipc = tmp_path / "ipc"
    ipc.mkdir(exist_ok=True)
    cmd = bwrap_args(ipc, None, Limits(), course_package(), source) + [sys.executable, "-c", script]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _plans() -> deciding.Plan:
    return deciding.plan(nbformat.read(NB1, as_version=4))


@pytest.fixture(scope="module")
def nb1_copy(tmp_path_factory) -> Path:
    nb = nbformat.read(NB1, as_version=4)
    return withhold.build(course_package(), check_modules(nb), withhold.planned_calls(_plans()),
                          cache=tmp_path_factory.mktemp("withheld"))


ROUTES = '''
import builtins, gc, json, sys, importlib, torch
from induction_course.checks import nb1
x, W, b = torch.randn(2, 5, 12), torch.randn(3, 12, 4), torch.randn(3, 4)
q = k = torch.randn(2, 7, 3, 8)
found = {}
def attempt(label, route):
    try:
        route()
        found[label] = "reached"
    except Exception as e:
        found[label] = type(e).__name__
attempt("nb1.ref.project", lambda: nb1.ref.project(x, W, b))
attempt("nb1.PROJECT.reference", lambda: nb1.PROJECT.reference(x, W, b))
attempt("sys.modules, computed name", lambda: sys.modules.get("induction_course." + "atten" + "tion").project(x, W, b))
attempt("import_module", lambda: importlib.import_module("induction_course.attention").project(x, W, b))
attempt("exec of hex", lambda: exec(bytes.fromhex("66726f6d20696e64756374696f6e5f636f757273652e617474656e74696f6e20"
                                                  "696d706f72742070726f6a6563740a70726f6a65637428782c20572c206229").decode(),
                                    {"x": x, "W": W, "b": b}))
attempt("a known bug's formula", lambda: nb1._raw_scores(q, k))
attempt("a bug of the exercise", lambda: nb1.SCORES.bugs[0].fn(q, k))
attempt("the answer key", lambda: nb1.FIRST_ROW["b"])
attempt("the layer's judge", lambda: nb1.check_attention_layer.judge(
    [{"seed": 0, "shape": {}, "output": torch.zeros(1), "inputs": {}}], seeds=(0,), shapes=({},)))
def every_function_in_memory():
    for obj in gc.get_objects():
        try:
            name = obj.__name__ if isinstance(obj, type(every_function_in_memory)) else ""
        except Exception:
            continue
        if name in ("project", "attention_scores", "attention_layer"):
            try:
                obj(x, W, b) if name == "project" else obj(q, k)
            except Exception:
                pass
            else:
                return
    raise LookupError("none computes it")
attempt("gc", every_function_in_memory)
print(json.dumps(found))
'''


def test_no_route_reaches_notebook_1s_references_while_it_is_graded(tmp_path, nb1_copy):
    found = _in_sandbox(tmp_path, nb1_copy, ROUTES)
    assert found.pop("a bug of the exercise") == "IndexError", found  # the exercise has no bugs there
    assert found.pop("gc") == "LookupError", found
    assert set(found.values()) == {"Withheld"}, found
    # without the build (at home, and before this existed) the same routes reach the references
    home = _in_sandbox(tmp_path, None, ROUTES)
    assert home["nb1.ref.project"] == home["nb1.PROJECT.reference"] == home["exec of hex"] == "reached", home


COLLECT = '''
import importlib.util, json, sys, types
from induction_course.checks import nb1, record
spec = importlib.util.spec_from_file_location("_course_guard", "/run/grader/guard.py")
guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guard)
before = guard._course_attributes()
answers = types.ModuleType("answers")
exec(compile({source!r}, "answers", "exec"), answers.__dict__)
out = []
for label, params in {calls!r}:
    check = getattr(nb1, label.split(".", 1)[1])
    name = label.split(".check_", 1)[1]
    answer = {{"against_transformer_lens": answers.attention_layer,
              "pattern_answers": {{"first_row": "b", "longer_rows": "c"}}}}.get(name) or getattr(answers, name)
    params = {{**check.defaults, **params}}
    out.append(record.encode(check.id, check.collect(answer, **params)))
guard._STATE["course"] = before
out.append(guard._course_problems())  # collecting changes nothing of the course's modules (ChecksChanged)
print(json.dumps(out))
'''


def test_notebook_1s_checks_still_collect_and_their_records_pass(tmp_path, nb1_copy):
    """Correct answers (the references' own source, run as a student's) collected in the withheld build and
    judged outside by the real checks: every planned call passes, so the solution keeps its marks."""
    calls = withhold.planned_calls(_plans())
    source = "import math\nimport torch\n" + textwrap.dedent(inspect.getsource(attention).split("\nimport torch\n", 1)[1])
    *payloads, changed = _in_sandbox(tmp_path, nb1_copy, COLLECT.format(source=source, calls=calls))
    assert changed == []
    assert len(payloads) == len(calls) >= 8
    for (label, params), payload in zip(calls, payloads):
        check_id, data = record.decode(payload)
        check = getattr(nb1, label.split(".", 1)[1])
        assert check_id == check.id
        assert check.judge(data, **{**check.defaults, **params}).startswith("✓"), label


def test_other_notebooks_builds_import_and_keep_earlier_notebooks(tmp_path):
    script = '''
import importlib, json, sys, torch
name = sys.argv[1] if len(sys.argv) > 1 else None
found = {}
for k in range(1, 6):
    try:
        importlib.import_module(f"induction_course.checks.nb{k}")
        found[k] = "ok"
    except Exception as e:
        found[k] = f"{type(e).__name__}: {e}"
from induction_course import attention, circuits, training
found["nb1 project"] = float(attention.project(torch.ones(1, 1, 2), torch.ones(1, 2, 1), torch.zeros(1, 1)).sum())
try:
    training.per_token_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long))
    found["training re-export"] = "reached"
except Exception as e:
    found["training re-export"] = type(e).__name__
print(json.dumps(found))
'''
    copy = withhold.build(course_package(), ["induction_course.checks.nb3"], cache=tmp_path / "cache")
    found = _in_sandbox(tmp_path, copy, script)
    assert found.pop("nb1 project") == 2.0  # an earlier notebook's function stays
    assert found.pop("training re-export") == "Withheld", found  # Notebook 3's per_token_loss, through training
    assert set(found.values()) == {"ok"}, found
    for k in (2, 4, 5):
        copy = withhold.build(course_package(), [f"induction_course.checks.nb{k}"], cache=tmp_path / "cache")
        found = _in_sandbox(tmp_path, copy, script)
        found.pop("nb1 project"), found.pop("training re-export")
        assert set(found.values()) == {"ok"}, (k, found)


def test_the_build_is_cached_and_the_tiny_assignment_needs_none(tmp_path):
    first = withhold.build(course_package(), ["induction_course.checks.nb1"], cache=tmp_path)
    assert withhold.build(course_package(), ["induction_course.checks.nb1"], cache=tmp_path) == first
    assert withhold.build(course_package(), ["induction_course.checks.core"], cache=tmp_path) is None
    assert not (course_package() / "checks" / withhold.CASES).exists()  # the real package is never touched


def test_the_training_run_that_notebook_3s_release_makes_is_replayed_and_its_references_stay_withheld(tmp_path):
    """Notebook 3's release trains its model live (``train_induction_model`` computes ``per_token_loss`` and
    ``induction_score``). In the copy that run is replayed from the shipped checkpoint, so both stay withheld;
    a run the course never made raises ``Withheld`` and says what can be replayed."""
    from course_tools.notebooks import COURSE

    release = nbformat.read(COURSE / "03_induction" / "03_induction.ipynb", as_version=4)
    uses = withhold.notebook_uses(release)
    assert ("induction_course.training", "train_induction_model") in uses
    copy = withhold.build(course_package(), ["induction_course.checks.nb3"], cache=tmp_path / "cache", uses=uses)
    found = _in_sandbox(tmp_path, copy, """
import json, torch
from induction_course import circuits, heads, training
found = {}
routes = {"per_token_loss": lambda: training.per_token_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long)),
          "induction_score": lambda: heads.induction_score(torch.ones(1, 2, 9, 9) / 9, 4),
          "icl_score": lambda: circuits.icl_score(torch.zeros(1, 60), slice(0, 5), slice(40, 50)),
          "seed 1": lambda: training.train_induction_model(seed=1, device="cpu")}
for label, route in routes.items():
    try:
        route()
        found[label] = "reached"
    except Exception as e:
        found[label] = type(e).__name__ + (": " + str(e) if label == "seed 1" else "")
model, history = training.train_induction_model(n_layers=2, seed=0, device="cpu", progress=False)
saved = training.load_checkpoint(training.CHECKPOINT)
found["same weights"] = all(torch.equal(v, saved["state_dict"][k]) for k, v in model.state_dict().items())
found["same history"] = torch.equal(history["induction_score"], saved["history"]["induction_score"])
smeared, smeared_history, hooks = training.train_smeared_key_model(n_layers=1, seed=0, steps=training.SMEARED_STEPS)
found["same smeared"] = torch.equal(smeared_history["induction_score"], training.load_checkpoint(training.SMEARED_CHECKPOINT)["history"]["induction_score"])
print(json.dumps(found))
""")
    assert found.pop("same weights") and found.pop("same history") and found.pop("same smeared"), found
    assert "seed=1" in found["seed 1"] and "Keep the release's arguments" in found.pop("seed 1"), found
    assert found == dict.fromkeys(("per_token_loss", "induction_score", "icl_score"), "Withheld"), found


@pytest.mark.parametrize("notebook, routes", [
    ("02_previous_token", {
        "training.previous_token_score": "training.previous_token_score(torch.ones(1, 2, 4, 4) / 4)",
        "heads.first_token_score": "heads.first_token_score(torch.ones(1, 2, 4, 4) / 4)",
        "heads.current_token_score": "heads.current_token_score(torch.ones(1, 2, 4, 4) / 4)"}),
    ("04_ablation", {
        "ablation.zero_ablation_hook": "ablation.zero_ablation_hook(torch.ones(1, 2, 3, 4), None, 1)",
        "ablation.mean_ablation_hook": "ablation.mean_ablation_hook(torch.ones(1, 2, 3, 4), None, 1, torch.ones(5, 2, 3, 4))"}),
])
def test_no_input_a_check_hands_over_is_made_of_the_graded_notebooks_references(tmp_path, notebook, routes):
    """Notebook 2's score_all_heads gets score functions and Notebook 4's loss_increase_per_head hook makers of
    the checks' own, so the score functions and ablation hooks they ask for stay withheld while they are
    graded, release and planned calls included."""
    from course_tools.notebooks import COURSE

    release = nbformat.read(COURSE / notebook / f"{notebook}.ipynb", as_version=4)
    solution = nbformat.read(SOLUTIONS / notebook / f"{notebook}.ipynb", as_version=4)
    copy = withhold.build(course_package(), check_modules(solution),
                          withhold.planned_calls(deciding.plan(solution)), cache=tmp_path / "cache",
                          uses=withhold.notebook_uses(release))
    script = "import json, torch\nfrom induction_course import ablation, heads, training\nfound = {}\n"
    for label, route in routes.items():
        script += (f"try:\n    {route}\n    found[{label!r}] = 'reached'\n"
                   f"except Exception as e:\n    found[{label!r}] = type(e).__name__\n")
    found = _in_sandbox(tmp_path, copy, script + "print(json.dumps(found))")
    assert found == dict.fromkeys(routes, "Withheld"), found
