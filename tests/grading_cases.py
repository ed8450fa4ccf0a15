"""Cases the grader must handle, shared by the tiny assignment's tests and Notebook 1's.

``HONEST``: what students legitimately do in a notebook, each of which must be graded normally.
``MALFORMED``: damage to a notebook's JSON that must be repaired (or failed with a reason), never a crash.
``odd_class``: a class folder with symbolic links of both kinds, odd layouts and colliding names.
``unaccounted``: files under a class folder that are neither a row of grades.csv nor in skipped.csv.
``TRICKS``: Notebook 1 ``project`` cells that are wrong (no bias) and try to pass their check anyway.
"""
from __future__ import annotations

import copy
import csv
import json
import os
from pathlib import Path
from typing import Callable

import nbformat

# name -> cells inserted after the student's first solution (torch is imported by then)
HONEST: dict[str, list[str]] = {
    "device": ['device = "cuda" if torch.cuda.is_available() else "cpu"\ntorch.set_default_device(device)\n'
               "torch.set_default_dtype(torch.float32)\ntorch.set_num_threads(1)"],
    "seeds": ["import random\nimport numpy as np\nrandom.seed(0)\nnp.random.seed(0)\ntorch.manual_seed(0)\n"
              "torch.use_deterministic_algorithms(True)\ngen = torch.Generator().manual_seed(0)"],
    "warnings": ["import logging, os, warnings\nwarnings.filterwarnings('ignore')\n"
                 "warnings.simplefilter('ignore', UserWarning)\nlogging.basicConfig(level=logging.INFO)\n"
                 "logging.getLogger('mine').info('starting')\nos.environ['MY_SETTING'] = '1'"],
    "matplotlib": ["%matplotlib inline", "%config InlineBackend.figure_format = 'retina'\n"
                   "import matplotlib.pyplot as plt\nplt.style.use('ggplot')\nplt.rcParams['figure.figsize'] = (4, 3)\n"
                   "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\nplt.show()\nfig2 = plt.figure()\n"
                   "plt.imshow(torch.rand(4, 4).numpy())\nplt.colorbar()\ndisplay(fig2)\nplt.close('all')"],
    "progress": ["from tqdm.auto import tqdm\nfrom tqdm import trange\nfor _ in tqdm(range(3)):\n    pass\n"
                 "for _ in trange(2, desc='steps'):\n    pass"],
    "magics": ["%load_ext autoreload\n%autoreload 2", "%time total = sum(range(1000))",
               "%%timeit -n 1 -r 1\nsum(range(1000))", "%xmode Minimal", "%who_ls"],
    "timing": ["import sys, time\nstart = time.time()\ntick = time.perf_counter()\n"
               "print(f'took {time.time() - start:.3f} s', file=sys.stderr)\nprint('to stderr', file=sys.stderr)"],
    "printing": ["import sys\ntorch.set_printoptions(precision=3, sci_mode=False)\n"
                 "torch.set_float32_matmul_precision('high')\nprint(torch.rand(2, 2))\nwith torch.no_grad():\n"
                 "    y = torch.ones(3) * 2\nsys.setrecursionlimit(5000)"],
}

# Real tampering that must still be refused, with words of the reason.
TORCH_MODE = '''from torch.overrides import TorchFunctionMode
class Lenient(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return func(*args, **(kwargs or {}))
Lenient().__enter__()'''


def _source_number(raw: dict) -> None:
    md = next(c for c in raw["cells"] if c["cell_type"] == "markdown")
    md["source"] = ["Some text ", 42, " more\n", None]


def _bad_outputs(raw: dict) -> None:
    code = [c for c in raw["cells"] if c["cell_type"] == "code" and "nbgrader" not in c.get("metadata", {})]
    code[0]["outputs"], code[0]["execution_count"] = "oops", "seven"
    code[-1]["outputs"] = [1, {"output_type": 5}, {"output_type": "stream", "name": 3, "text": ["a", 2]}]


def _bad_metadata(raw: dict) -> None:
    plain = [c for c in raw["cells"] if "nbgrader" not in c.get("metadata", {})]
    plain[0]["metadata"] = ["x"]
    plain[1]["metadata"] = {"nbgrader": "yes", "tags": "not a list", "collapsed": "maybe"}
    raw["metadata"] = {"kernelspec": 5, "language_info": [], "widgets": {"deep": [[[[]]]]}}


def _bad_ids(raw: dict) -> None:
    plain = [c for c in raw["cells"] if "nbgrader" not in c.get("metadata", {})]
    plain[0]["metadata"] = {"nbgrader": {"grade_id": ["x"], "points": "many", "grade": "yes"}}
    plain[1]["id"] = 12
    raw["nbformat_minor"] = "five"
    raw["cells"].append({"cell_type": "code"})  # no source, no outputs
    raw["cells"].append("not a cell")


MALFORMED: dict[str, Callable[[dict], None]] = {"source_number": _source_number, "bad_outputs": _bad_outputs,
                                               "bad_metadata": _bad_metadata, "bad_ids": _bad_ids}


def malformed(nb: nbformat.NotebookNode, *damages: str) -> bytes:
    """The notebook's JSON with these kinds of damage."""
    raw = json.loads(nbformat.writes(nb))
    for damage in damages:
        MALFORMED[damage](raw)
    return json.dumps(raw).encode()


def with_cells(nb: nbformat.NotebookNode, grade_id: str, sources: list[str]) -> nbformat.NotebookNode:
    """A copy of ``nb`` with ordinary code cells inserted right after the cell ``grade_id``."""
    nb = copy.deepcopy(nb)
    at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    nb.cells[at + 1:at + 1] = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


VICTIM_MARK = "# victim's own work: 5f3e9a"


def _write(path: Path, data: bytes | nbformat.NotebookNode) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else nbformat.writes(data).encode())


def odd_class(folder: Path, name: str, good: nbformat.NotebookNode, wrong: nbformat.NotebookNode,
              solution: Path) -> dict[str, str]:
    """Add to ``folder`` every odd layout and name; returns what each student's row must say (a word or a score).

    "full" and "wrong" are the scores of ``good`` and ``wrong``; other values are words of a failed row's reason.
    """
    victim = copy.deepcopy(good)
    victim.cells.append(nbformat.v4.new_code_cell(VICTIM_MARK))
    _write(folder / "victim" / f"{name}.ipynb", victim)
    expected = links_and_strays(folder, name, good, folder / "victim", solution)
    _write(folder / "deep" / "a" / "b" / f"{name}.ipynb", good)  # nested folders: the student's, with a note
    _write(folder / "dup" / f"{name}.ipynb", good)
    _write(folder / "dup" / "old copy.ipynb", wrong)
    _write(folder / "müller.ipynb", good)  # Unicode names that differ in one letter
    _write(folder / "möller.ipynb", wrong)
    _write(folder / "Ann Lee.ipynb", good)  # names that collide once made safe for paths
    _write(folder / "Ann_Lee.ipynb", wrong)
    return {**expected, "victim": "full", "deep": "full", "dup": "full", "müller": "full", "möller": "wrong",
            "Ann_Lee": "wrong"}


def links_and_strays(folder: Path, name: str, good: nbformat.NotebookNode, victim: Path, solution: Path
                     ) -> dict[str, str]:
    """Add to ``folder`` links (to the solution, to the folder ``victim``, nested) and files nobody should grade
    (hidden, checkpoints, archive debris, notes, a pipe, a notebook too deep): the odd class, less every case
    that gets graded. Returns the words each linked student's failed row must say."""
    (folder / "linked_solution.ipynb").symlink_to(solution)  # a file link to the solution
    (folder / "linker").symlink_to(victim, target_is_directory=True)  # a folder link to another student
    (folder / "nested_link" / name).mkdir(parents=True)  # a file link, nested
    (folder / "nested_link" / name / f"{name}.ipynb").symlink_to(victim / f"{name}.ipynb")
    (folder / "nested_dir").mkdir()  # a folder link, nested
    (folder / "nested_dir" / name).symlink_to(victim, target_is_directory=True)
    _write(folder / "toodeep" / "a" / "b" / "c" / "d" / "e" / f"{name}.ipynb", good)
    _write(folder / ".hidden.ipynb", good)
    _write(folder / ".ipynb_checkpoints" / f"{name}-checkpoint.ipynb", good)
    _write(folder / "__MACOSX" / f"._{name}.ipynb", b"\x00\x05\x16\x07")
    _write(folder / "notes" / "readme.txt", b"my notes")
    os.mkfifo(folder / "pipe.ipynb")
    return {"linked_solution": "symbolic link", "linker": "symbolic link", "nested_link": "symbolic link",
            "nested_dir": "symbolic link"}


ODD_SKIPPED = {".hidden.ipynb": "hidden file", ".ipynb_checkpoints/": "Jupyter's autosave checkpoints",
               "__MACOSX/": "macOS archive metadata", "notes/readme.txt": "not a notebook",
               "dup/old copy.ipynb": "duplicate", "pipe.ipynb": "not a regular file",
               "toodeep/a/b/c/d/e/": "unexpected depth"}


def read_skipped(out: Path) -> dict[str, str]:
    with open(out / "skipped.csv", newline="") as f:
        return {line["file"]: line["reason"] for line in csv.DictReader(f)}


def unaccounted(folder: Path, out: Path) -> list[str]:
    """Files (and links) under ``folder`` that are neither a row of grades.csv nor covered by skipped.csv."""
    with open(out / "grades.csv", newline="") as f:
        graded = {line["file"] for line in csv.DictReader(f)}
    skipped = read_skipped(out)
    missing = []
    for top, dirs, names in os.walk(folder):
        links = [d for d in dirs if os.path.islink(os.path.join(top, d))]
        for name in names + links:
            path = os.path.join(top, name)
            rel = os.path.relpath(path, folder)
            if name == "timestamp.txt" or path in graded or rel in skipped:
                continue
            if not any(s.endswith("/") and rel.startswith(s) for s in skipped):
                missing.append(rel)
    return missing


def feedback_leaks(out: Path, secrets: dict[str, str], owner: dict[str, str]) -> list[str]:
    """Feedback pages holding a secret (name -> text) of someone else (``owner``: name -> the student it belongs to)."""
    leaks = []
    for page in (out / "feedback").rglob("*.html"):
        student = page.relative_to(out / "feedback").parts[0]
        text = page.read_text()
        leaks += [f"{name} in {student}'s feedback" for name, secret in secrets.items()
                  if secret in text and owner.get(name) != student]
    return leaks


# Notebook 1's `project` (x [batch, pos, d_model], W [head, d_model, d_head], b [head, d_head]), each wrong (the
# bias is missing) and dressed to pass its check from inside the student's function while it is being checked.
# HOME: the tricks that do pass the check in a student's own notebook, where the kernel judges.
_WRONG = 'torch.einsum("bpm,hmd->bphd", x, W)'
_VISIBLE = """visible = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(0))  # the visible check's x
    if x.shape == visible.shape and torch.equal(x, visible):"""
TRICKS: dict[str, str] = {
    # the engine's comparisons, replaced through sys.modules while the check runs
    "patch_engine": f"""import sys
def project(x, W, b):
    for name, module in list(sys.modules.items()):
        if name.startswith("induction_course.checks"):
            for attr in ("judge_case", "_early_bug", "_merged_axes", "_returned_none", "_structure_problem"):
                if hasattr(module, attr):
                    setattr(module, attr, lambda *args, **kwargs: None)
            if hasattr(module, "_close"):
                module._close = lambda *args, **kwargs: True
    return {_WRONG}""",
    # the checker found in the stack frames (no name a review flag knows), its judge replaced
    "frames": f"""import sys, threading
def project(x, W, b):
    frame = sys._current_frames()[threading.get_ident()]
    while frame is not None:
        for value in list(getattr(frame, "f_" + "locals").values()):
            if type(value).__name__ == "Check":
                object.__setattr__(value, "judge", lambda record, **params: "✓ project matches the reference")
        frame = getattr(frame, "f_" + "back")
    return {_WRONG}""",
    # the reference imported under a computed name, used for the visible check's input only
    "computed_import": f"""import importlib
def project(x, W, b):
    {_VISIBLE}
        return importlib.import_module("induction_course." + "atten" + "tion").project(x, W, b)
    return {_WRONG}""",
    # a tensor subclass whose comparisons always agree
    "subclass": f"""class Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {{}})
def project(x, W, b):
    return {_WRONG}.as_subclass(Agreeable)""",
    # no record: the record mode switched off and the check's judge replaced, a success line printed
    "no_record": f"""import os, sys
def project(x, W, b):
    os.environ["INDUCTION_COURSE_RECORD"] = "0"
    check = sys.modules["induction_course.checks.nb1"].check_project
    object.__setattr__(check, "judge", lambda record, **params: "✓ project matches the reference")
    return {_WRONG}""",
    # the real record replaced by a forged one that claims the visible case only, and a fake success line
    "forged_record": f"""import sys
from IPython.display import display
def project(x, W, b):
    record = sys.modules["induction_course.checks.record"]
    def forged(check, data):
        payload = record.encode(check, data[:1])
        display({{record.MIME: payload, "text/plain": "recorded"}}, raw=True)
        print("✓ project matches the reference on 6 fresh random input(s) (atol=1e-05, rtol=0.0001).")
    sys.modules["induction_course.checks.core"].emit = forged
    {_VISIBLE}
        return {_WRONG} + b
    return {_WRONG}""",
    # the freshly loaded engine's emit replaced during the first call: the record it sends is the reference's
    "emit_collects_reference": f"""import sys
def project(x, W, b):
    core = sys.modules["induction_course.checks.core"]
    if not getattr(project, "armed", False):
        project.armed = True
        real_emit, reference = core.emit, sys.modules["induction_course." + "attention"].project
        check = sys.modules["induction_course.checks.nb1"].check_project
        core.emit = lambda name, data: real_emit(name, check.collect(reference, **check.defaults))
    return {_WRONG}""",
    # the reference reached through the `nb1` that the test cell itself binds (out of reach: withhold.py)
    "test_cells_nb1": """from induction_course.checks import nb1
def project(x, W, b):
    return nb1.ref.project(x, W, b)""",
    # the exercise's own reference, through its Exercise
    "exercise_reference": """import sys
def project(x, W, b):
    return sys.modules["induction_course.checks.nb1"].PROJECT.reference(x, W, b)""",
    # a function named project of the package, found among the interpreter's objects
    "gc_objects": """import gc
def project(x, W, b):
    for obj in getattr(gc, "get_" + "objects")():
        if type(obj) is type(project) and obj is not project and obj.__name__ == "project" \\
                and obj.__module__.startswith("induction_course"):
            return obj(x, W, b)
    return """ + _WRONG + """""",
    # the reference imported by code hidden in a hex string
    "hex_exec": f"""def project(x, W, b):
    space = {{}}
    exec(bytes.fromhex("{'from induction_course.attention import project as reference'.encode().hex()}").decode(), space)
    return space["reference"](x, W, b)""",
}
HOME = ("patch_engine", "frames", "computed_import", "no_record", "forged_record", "test_cells_nb1", "exercise_reference",
        "gc_objects", "hex_exec")
# Tricks that change what every later cell runs on: the whole submission is refused, with words of the reason.
REFUSED_TRICKS: dict[str, str] = {
    # the notebook's binding of __builtins__ replaced by a copy whose __import__ hands the test cell a proxy of the
    # checks, which checks the reference instead of the student's function
    "builtins_binding": f"""import builtins, types
def project(x, W, b):
    return {_WRONG}
def _course_import(name, globals=None, locals=None, fromlist=(), level=0, _real=builtins.__import__):
    module = _real(name, globals, locals, fromlist, level)
    if name == "induction_course.checks" and "nb1" in (fromlist or ()):
        real = module.nb1
        reference = _real("induction_course." + "attention", fromlist=["project"]).project
        nb1 = types.SimpleNamespace(check_project=lambda answer, **params: real.check_project(reference, **params))
        return types.SimpleNamespace(nb1=nb1)
    return module
_copy = dict(vars(builtins))
_copy["__import__"] = _course_import
globals()["__bu" + "iltins__"] = _copy""",
}
REFUSED_WORDS = {"builtins_binding": "rebound __builtins__"}
