"""Out of reach: the build of the course package that a notebook's sandboxed kernel sees while it is graded.

While notebook K is graded, nothing in its kernel can compute or reveal K's answers. The sandbox gets, bound
read-only over the package's own path, a copy of the package made here from its source (``ast``), in which:

- **K's reference functions** are stubs that raise :class:`Withheld`: every ``reference=`` of an Exercise
  that K's checks use, and every function named like one of K's checks (``check_project`` -> ``project``),
  wherever they live in the package (``induction_course.attention.project``; a re-export such as
  ``induction_course.training``'s then binds the stub), with the module's private helpers only they use;
- in **K's check module** ``checks/nbK.py``, every function body (nested ones and lambdas included: known
  bugs, diagnoses, judges, helpers of the references) that neither runs while the module is imported nor can
  be reached from a check's ``collect`` half is a stub; each Exercise keeps only what ``collect`` reads
  (name, inputs, dims, probe); the questions and explanations of K's multiple-choice checks are gone, and
  module-level values that nothing left reads (answer keys, expected values, messages) are stubs too;
- inputs that a check's ``collect`` needs but that K's references compute (Notebook 1's pattern, made by
  ``attention_pattern``, for ``weighted_values``) are computed here, on the trusted side, for every seed and
  shape the notebook's test cells use, and shipped as data (``checks/_withheld_cases.safetensors``).

Earlier notebooks' functions stay (later notebooks use them), and so does everything else of the package; so
does a reference that the release's own cells run through the package (``notebook_uses``: Notebook 3 trains
with ``per_token_loss``) or that inputs which are not tensors are made of (none in the course: the checks
hand over score functions and hook makers of their own).
``collect`` works as before, so the records are the same; the judge runs outside with the real package.
The copy is cached by the package's digest and the notebook's planned calls; at home nothing changes.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Iterable

HELPER = "_withheld"  # induction_course/checks/_withheld.py, in the copy only
CASES = "_withheld_cases.safetensors"
# Exercise fields that only the judge reads: the copy's Exercises keep the others (name, make_case, dims, probe).
JUDGE_FIELDS = ("reference", "bugs", "nan_hint", "transform", "diagnoses", "after")

_HELPER_SOURCE = '''"""Stubs of what is withheld from this kernel while its notebook is graded (autograder/withhold.py)."""
from __future__ import annotations

import json
from pathlib import Path


class Withheld(RuntimeError):
    """Something of the notebook being graded that its kernel may not use: the grader keeps it outside."""


class _MissingAttribute(Withheld, AttributeError):
    pass


def _message(name: str) -> str:
    return (f"{name} is not available while grading: the grader keeps this notebook's reference, "
            "expected values and answer keys outside the kernel")


def withheld(name: str, *args, **kwargs):
    """A stub's body: always raises."""
    raise Withheld(_message(name))


def withheld_function(name: str):
    def stub(*args, **kwargs):
        raise Withheld(_message(name))
    stub.__name__ = stub.__qualname__ = name.rsplit(".", 1)[-1]
    return stub


class _Value:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __repr__(self) -> str:
        return f"<{object.__getattribute__(self, '_name')}: withheld while grading>"

    def _raise(self, *args, **kwargs):
        raise Withheld(_message(object.__getattribute__(self, "_name")))

    def __getattr__(self, attribute):  # an AttributeError too, so hasattr() and getattr(x, a, default) still work
        raise _MissingAttribute(_message(object.__getattribute__(self, "_name")))

    __getitem__ = __call__ = __iter__ = __len__ = __bool__ = __contains__ = __eq__ = _raise
    __hash__ = None


def withheld_value(name: str) -> _Value:
    return _Value(name)


def _load() -> dict:
    path = Path(__file__).with_name(%(cases)r)
    if not path.exists():
        return {}
    from safetensors.torch import load_file
    return load_file(str(path))


_CASES = _load()  # at import, before the grader's guard remembers this module


def case(name: str, arguments: dict):
    """The inputs make_case ``name`` gives for ``arguments``, computed by the grader (they need a reference)."""
    key = name + "|" + json.dumps(arguments, sort_keys=True, default=str)
    found = {k.split("|", 2)[2]: v.clone() for k, v in _CASES.items() if k.startswith(key + "|")}
    if not found:
        raise Withheld(f"{name}{arguments} is not available while grading: the grader computed its inputs only "
                       "for the seeds and shapes of this notebook's checks")
    return found
''' % {"cases": CASES}


class WithholdError(RuntimeError):
    """The package cannot be withheld for this notebook (a construct the transformation does not know)."""


# ---------------------------------------------------------------- what to withhold (trusted side, real modules)
def _exercise_type() -> type:
    from induction_course.checks.core import Exercise
    return Exercise


def _check_type() -> type:
    from induction_course.checks.core import Check
    return Check


def _walk(obj: Any, seen: set[int], found: list[Any], follow_globals_of: str | None = None) -> None:
    """Every function, Exercise and class reachable from ``obj`` through closures, defaults and containers;
    through the globals a function's code loads only for functions of the file ``follow_globals_of``."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    found.append(obj)
    Exercise, Check = _exercise_type(), _check_type()
    if isinstance(obj, Check):
        _walk(obj.collect, seen, found, follow_globals_of)
    elif isinstance(obj, Exercise):
        _walk(obj.make_case, seen, found, follow_globals_of)
    elif isinstance(obj, (tuple, list, set, frozenset)):
        for item in obj:
            _walk(item, seen, found, follow_globals_of)
    elif isinstance(obj, dict):
        for item in obj.values():
            _walk(item, seen, found, follow_globals_of)
    elif isinstance(obj, types.FunctionType):
        for cell in obj.__closure__ or ():
            try:
                _walk(cell.cell_contents, seen, found, follow_globals_of)
            except ValueError:  # an empty cell
                pass
        for default in (obj.__defaults__ or ()) + tuple((obj.__kwdefaults__ or {}).values()):
            _walk(default, seen, found, follow_globals_of)
        if follow_globals_of and obj.__code__.co_filename == follow_globals_of:
            for name in _names(obj.__code__):
                if name in obj.__globals__:
                    _walk(obj.__globals__[name], seen, found, follow_globals_of)
    elif isinstance(obj, type) and follow_globals_of and getattr(sys.modules.get(obj.__module__), "__file__", "") \
            == follow_globals_of:
        for value in vars(obj).values():
            _walk(getattr(value, "__func__", value), seen, found, follow_globals_of)
    elif isinstance(getattr(obj, "__wrapped__", None), types.FunctionType):  # functools.lru_cache, wraps
        _walk(obj.__wrapped__, seen, found, follow_globals_of)
    elif hasattr(obj, "func") and hasattr(obj, "args"):  # functools.partial
        _walk(obj.func, seen, found, follow_globals_of)
        _walk(obj.args, seen, found, follow_globals_of)


def _codes(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _names(code: types.CodeType) -> set[str]:
    return {name for c in _codes(code) for name in c.co_names}


def _key(code: types.CodeType) -> tuple[str, int]:
    return code.co_name, code.co_firstlineno


def _import_time_codes(path: str) -> set[tuple[str, int]]:
    """The functions of ``path`` that run while it is imported (a private, profiled copy of the module)."""
    ran: set[tuple[str, int]] = set()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename == path:
            ran.add(_key(frame.f_code))

    spec = importlib.util.spec_from_file_location("_withhold_probe", path)
    module = importlib.util.module_from_spec(spec)
    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.setprofile(old)
    return ran


class _Analysis:
    """What to withhold for one check module, read from the real (imported) module."""

    def __init__(self, module_name: str):
        self.name = module_name
        self.short = module_name.rsplit(".", 1)[-1]
        self.module = importlib.import_module(module_name)
        self.path = os.path.realpath(self.module.__file__)
        Exercise, Check = _exercise_type(), _check_type()
        self.checks = {k: v for k, v in vars(self.module).items() if isinstance(v, Check)}
        found: list[Any] = []
        seen: set[int] = set()
        for check in self.checks.values():
            _walk(check, seen, found, self.path)
        self.collect_codes = {_key(c) for f in found if isinstance(f, types.FunctionType)
                              and f.__code__.co_filename == self.path for c in _codes(f.__code__)}
        for cls in (f for f in found if isinstance(f, type)):
            for value in vars(cls).values():
                value = getattr(value, "__func__", value)
                if isinstance(value, types.FunctionType):
                    self.collect_codes |= {_key(c) for c in _codes(value.__code__)}
        self.import_codes = _import_time_codes(self.path)
        # every Exercise of the module, its checks' closures included (judge halves too)
        exercises: list[Any] = [v for v in vars(self.module).values() if isinstance(v, Exercise)]
        everything: list[Any] = []
        seen = set()
        for check in self.checks.values():
            _walk(check.collect, seen, everything)
            _walk(check.judge, seen, everything)
        exercises += [e for e in everything if isinstance(e, Exercise)]
        self.exercises = exercises
        self.make_cases = {id(e.make_case): e.make_case for e in exercises}
        self.references: set[tuple[str, str]] = set()  # (module, function) outside the checks package
        for exercise in exercises:
            fn = exercise.reference
            module = getattr(fn, "__module__", "") or ""
            if isinstance(fn, types.FunctionType) and module.startswith("induction_course") \
                    and not module.startswith("induction_course.checks") and "." not in fn.__qualname__:
                self.references.add((module, fn.__name__))
        self.answer_names = {check.id.split(".check_", 1)[-1] for check in self.checks.values()
                             if ".check_" in check.id} | {e.name for e in exercises}


# ---------------------------------------------------------------- the source transformation
def _stub_call(helper: str, label: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(helper, ast.Load()), [ast.Constant(label), *args], [])


def _stub_body(label: str) -> list[ast.stmt]:
    return [ast.Expr(_stub_call("_withheld", label))]


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None)
    return min([d.lineno for d in decorators] + [node.lineno]) if decorators else node.lineno


def _insert_helper_import(tree: ast.Module) -> None:
    names = [ast.alias(n, a) for n, a in (("withheld", "_withheld"), ("withheld_function", "_withheld_function"),
                                         ("withheld_value", "_withheld_value"), ("case", "_withheld_case"))]
    node = ast.ImportFrom(f"induction_course.checks.{HELPER}", names, 0)
    at = 0
    for i, stmt in enumerate(tree.body):
        if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and i == 0) or \
                (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
            at = i + 1
    tree.body.insert(at, node)


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


class _Rewrite(ast.NodeTransformer):
    """Stubs the function bodies outside ``keep``; strips Exercises, replace(), Check judges and choices."""

    def __init__(self, short: str, keep: set[tuple[str, int]], cases: dict[tuple[str, int], str]):
        self.short, self.keep, self.cases, self.scope = short, keep, cases, []

    def _label(self, name: str) -> str:
        return ".".join([self.short, *self.scope, name])

    def visit_FunctionDef(self, node: Any) -> Any:
        key = (node.name, _first_line(node))
        if key in self.cases:
            args = ast.Call(ast.Name("locals", ast.Load()), [], [])
            node.body = [ast.Return(_stub_call("_withheld_case", self.cases[key], args))]
            return node
        if key not in self.keep:
            node.body = _stub_body(self._label(node.name))
            node.decorator_list = [d for d in node.decorator_list if not isinstance(d, ast.Call)]
            return node
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        if ("<lambda>", node.lineno) not in self.keep:
            node.body = _stub_call("_withheld", self._label("<lambda>"))
            return node
        self.generic_visit(node)
        return node

    def visit_Call(self, node: ast.Call) -> Any:
        name = _call_name(node)
        if name == "Exercise":
            label = f"{self.short}.Exercise.reference"
            for kw in node.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    label = f"{self.short}.{kw.value.value} (its reference)"
            if len(node.args) > 4:
                raise WithholdError(f"{self.short}: an Exercise with judge fields given by position")
            if len(node.args) >= 3:
                node.args[2] = _stub_call("_withheld_function", label)
            node.keywords = [kw for kw in node.keywords if kw.arg not in JUDGE_FIELDS]
            if len(node.args) < 3:
                node.keywords.append(ast.keyword("reference", _stub_call("_withheld_function", label)))
        elif name == "replace":
            node.keywords = [kw for kw in node.keywords if kw.arg not in JUDGE_FIELDS]
        elif name == "choices_check" and len(node.args) >= 1:
            node.args = [node.args[0], ast.Dict([], []), ast.Constant("")]
            node.keywords = []
            return node
        elif name == "Check" and len(node.args) >= 3:
            label = node.args[0].value if isinstance(node.args[0], ast.Constant) else self.short
            node.args[2] = _stub_call("_withheld_function", f"{label} (its judge)")
        elif name == "Bug":
            return _stub_call("_withheld_value", f"{self.short}: a known mistake")
        self.generic_visit(node)
        return node


def _loads(nodes: Iterable[ast.AST]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _withhold_values(tree: ast.Module, short: str, public: Iterable[str]) -> None:
    """Module-level values nothing left in the module reads (answer keys, expected values) become stubs."""
    public = set(public)
    while True:
        changed = False
        for i, stmt in enumerate(tree.body):
            if not isinstance(stmt, (ast.Assign, ast.AnnAssign)) or getattr(stmt, "value", None) is None:
                continue
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if not all(isinstance(t, ast.Name) for t in targets):
                continue
            names = [t.id for t in targets]
            if any(n in public or n.startswith("__") for n in names):
                continue
            if isinstance(stmt.value, ast.Call) and _call_name(stmt.value) == "_withheld_value":
                continue
            others = [s for j, s in enumerate(tree.body) if j != i]
            if not set(names) & _loads(others):
                stmt.value = _stub_call("_withheld_value", f"{short}.{names[0]}")
                changed = True
        if not changed:
            return


def transform_check_module(source: str, analysis: _Analysis, cases: dict[tuple[str, int], str]) -> str:
    tree = ast.parse(source)
    keep = analysis.collect_codes | analysis.import_codes
    tree = _Rewrite(analysis.short, keep, cases).visit(tree)
    _withhold_values(tree, analysis.short, analysis.checks)
    _insert_helper_import(tree)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def transform_module(source: str, module: str, names: set[str]) -> tuple[str, set[str]]:
    """``module``'s source with the top-level functions ``names`` (and private helpers only they use) stubbed."""
    tree = ast.parse(source)
    defs = {s.name: s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
    stubbed = {n for n in names if n in defs}
    if not stubbed:
        return source, set()
    while True:  # private helpers that only stubbed functions use
        used_by_rest = _loads([s for s in tree.body if not (isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                                                            and s.name in stubbed)])
        used_by_stubbed = _loads([defs[n] for n in stubbed])
        more = {n for n in used_by_stubbed if n in defs and n.startswith("_") and n not in used_by_rest} - stubbed
        if not more:
            break
        stubbed |= more
    short = module.removeprefix("induction_course.")
    for name in stubbed:
        node = defs[name]
        doc = ast.get_docstring(node)
        node.body = ([ast.Expr(ast.Constant(doc))] if doc and not name.startswith("_") else []) + \
            _stub_body(f"induction_course.{short}.{name}")
        node.decorator_list = []
    _insert_helper_import(tree)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n", stubbed


# ---------------------------------------------------------------- inputs computed on the trusted side
def _touched(fn: Any, withheld: set[int], path: str, seen: set[int] | None = None) -> set[int]:
    """The withheld functions that ``fn`` (a function of ``path``) reads, itself or through its helpers."""
    seen = seen if seen is not None else set()
    fn = fn.__wrapped__ if isinstance(getattr(fn, "__wrapped__", None), types.FunctionType) else fn
    if id(fn) in seen or not isinstance(fn, types.FunctionType) or fn.__code__.co_filename != path:
        return set()
    seen.add(id(fn))
    names, found = _names(fn.__code__), set()
    for value in list(fn.__defaults__ or ()) + [fn.__globals__.get(n) for n in names]:
        if id(value) in withheld:
            found.add(id(value))
        elif isinstance(value, types.ModuleType):
            found |= {id(getattr(value, n, None)) for n in names} & withheld
        else:
            found |= _touched(value, withheld, path, seen)
    return found


def _case_arguments(fn: Any, seed: int, shape: dict) -> dict:
    bound = inspect.signature(fn).bind(seed, **shape)
    bound.apply_defaults()
    return dict(bound.arguments)


def _precompute(analysis: _Analysis, withheld: set[int], calls: Iterable[tuple[str, dict]]) -> tuple[dict, dict, set]:
    """(AST key -> label) of the make_case functions that need a reference, and their cases' tensors; and the
    withheld functions that inputs which are not tensors (a model, a hook maker) are made of: those stay."""
    from induction_course.checks.core import PROBE_SEED
    import torch

    Exercise = _exercise_type()
    by_check: dict[str, list[Any]] = {}
    for name, check in analysis.checks.items():
        found: list[Any] = []
        _walk(check.collect, set(), found)
        by_check[name] = [e for e in found if isinstance(e, Exercise)]
    keys, tensors, spare = {}, {}, set()
    params_of: dict[str, list[dict]] = {name: [dict(c.defaults)] for name, c in analysis.checks.items()}
    for name, params in calls:
        if name in params_of:
            params_of[name].append({**analysis.checks[name].defaults, **params})
    for name, exercises in by_check.items():
        for exercise in exercises:
            fn = exercise.make_case
            handed = _handed(fn, params_of[name], withheld)
            if handed:  # a reference given to the student as an input (a score function, a hook maker): it stays
                spare |= handed
                continue
            touched = _touched(fn, withheld, analysis.path)
            if not touched:
                continue
            label = f"{analysis.short}.{fn.__name__}"
            found: dict[str, Any] = {}
            try:
                found = _cases(fn, label, params_of[name])
            except WithholdError:
                spare |= touched
                continue
            keys[(fn.__name__, fn.__code__.co_firstlineno)] = label
            tensors.update(found)
    return keys, tensors, spare


def _handed(fn: Any, params_list: list[dict], withheld: set[int]) -> set[int]:
    """The withheld functions among the inputs ``fn`` makes for the planned seeds and shapes, closures included."""
    found: list[Any] = []
    seen: set[int] = set()
    for params in params_list:
        for shape in params.get("shapes", ({},)):
            for seed in params.get("seeds", (0,))[:1]:
                _walk(list(fn(seed, **dict(shape)).values()), seen, found)
    return {id(f) for f in found} & withheld


def _cases(fn: Any, label: str, params_list: list[dict]) -> dict[str, Any]:
    from induction_course.checks.core import PROBE_SEED
    import torch

    tensors = {}
    for params in params_list:
        for shape in params.get("shapes", ({},)):
            for seed in params.get("seeds", (0,)):
                for s in (seed, seed + PROBE_SEED):
                    arguments = _case_arguments(fn, s, dict(shape))
                    case = fn(**arguments)
                    if not all(isinstance(v, torch.Tensor) for v in case.values()):
                        raise WithholdError(f"{label}: inputs that are not tensors need a reference")
                    prefix = label + "|" + json.dumps(arguments, sort_keys=True, default=str)
                    tensors.update({f"{prefix}|{k}": v.contiguous().clone() for k, v in case.items()})
    return tensors


# ---------------------------------------------------------------- runs that a release makes, replayed
# A function that a release runs whose real body would keep the graded notebook's references within reach
# (Notebook 3 trains its model live, and train_induction_model computes per_token_loss and induction_score).
# In the copy its body is a replay of the course's own run, read from the shipped checkpoint made with the
# same arguments (the tests assert that a live run reproduces it); any other call raises Withheld, saying what
# can be replayed. So the references it would reach stay withheld.
REPLAYS = {("induction_course.training", "train_induction_model"): '''
def train_induction_model(n_layers=2, seed=0, steps=STEPS, progress=True, device=None, **train_kwargs):
    """While this notebook is graded: the course's own training run with these arguments, from its checkpoint."""
    from induction_course.checks._withheld import Withheld
    for path in (CHECKPOINT, CONTROL_CHECKPOINT):
        saved = load_checkpoint(path)
        if not train_kwargs and saved["config"] == {**STANDARD_CONFIG, "n_layers": n_layers, "seed": seed} \\
                and int(saved["history"]["step"][-1]) == steps:
            return load_trained(path, device=device)
    raise Withheld(f"train_induction_model(n_layers={n_layers}, seed={seed}, steps={steps}) cannot run while "
                   "this notebook is graded: training uses the functions you are graded on, so the grader "
                   f"replays the course's own runs (n_layers 1 or 2, seed 0, {STEPS} steps) from their "
                   "checkpoints. Keep the release's arguments in the submitted notebook.")
''', ("induction_course.training", "train_smeared_key_model"): '''
def train_smeared_key_model(n_layers=1, seed=0, steps=STEPS, progress=True, device=None):
    """While this notebook is graded: the course's own smeared-key run, from its checkpoint."""
    from induction_course.checks._withheld import Withheld
    saved = load_checkpoint(SMEARED_CHECKPOINT)
    if saved["config"] == {**STANDARD_CONFIG, "n_layers": n_layers, "seed": seed} \\
            and int(saved["history"]["step"][-1]) == steps:
        return load_smeared_key_model(device=device)
    raise Withheld(f"train_smeared_key_model(n_layers={n_layers}, seed={seed}, steps={steps}) cannot run while "
                   "this notebook is graded: training uses the functions you are graded on, so the grader "
                   f"replays the course's own run (n_layers 1, seed 0, {SMEARED_STEPS} steps) from its "
                   "checkpoint. Keep the release's arguments in the submitted notebook.")
'''}


def _replayed_ids() -> dict[int, tuple[str, str]]:
    return {id(getattr(importlib.import_module(m), n)): (m, n) for m, n in REPLAYS}


def replay_module(source: str, module: str, names: set[str]) -> str:
    """``module``'s source with the functions ``names`` replaced by their replays (``REPLAYS``)."""
    tree = ast.parse(source)
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, ast.FunctionDef) and stmt.name in names:
            tree.body[i] = ast.parse(REPLAYS[(module, stmt.name)]).body[0]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


# ---------------------------------------------------------------- what the notebook's own cells use
def notebook_uses(nb: Any) -> list[tuple[str, str]]:
    """(module, name) of the package that the code cells of ``nb`` (the release: trusted) import or use as
    ``module.name``; the notebook's checks excluded."""
    uses: set[tuple[str, str]] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("induction_course"):
                for alias in node.names:
                    if node.module == "induction_course":
                        aliases[alias.asname or alias.name] = f"induction_course.{alias.name}"
                    else:
                        uses.add((node.module, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("induction_course") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                uses.add((aliases[node.value.id], node.attr))
    return sorted(u for u in uses if not u[0].startswith("induction_course.checks"))


def _reachable(uses: Iterable[tuple[str, str]], leaves: Iterable[int] = ()) -> set[int]:
    """ids of every function and class of the package that the ``uses`` run, through the globals they read;
    the functions ``leaves`` (replayed ones) count, but what they read does not."""
    found: set[int] = set()
    leaves = set(leaves)
    todo: list[Any] = []
    for module, name in uses:
        try:
            todo.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    while todo:
        obj = todo.pop()
        if isinstance(getattr(obj, "__wrapped__", None), types.FunctionType):  # functools.lru_cache, wraps
            found.add(id(obj))
            obj = obj.__wrapped__
        if id(obj) in leaves:
            found.add(id(obj))
            continue
        if id(obj) in found:
            continue
        if isinstance(obj, type) and (obj.__module__ or "").startswith("induction_course"):
            found.add(id(obj))
            todo += [getattr(v, "__func__", v) for v in vars(obj).values()]
        elif isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith("induction_course"):
            found.add(id(obj))
            names = _names(obj.__code__)
            for value in [obj.__globals__.get(n) for n in names] + list(obj.__defaults__ or ()):
                if isinstance(value, types.ModuleType) and value.__name__.startswith("induction_course"):
                    todo += [getattr(value, n) for n in names if hasattr(value, n)]
                elif value is not None:
                    todo.append(value)
            todo += [c.cell_contents for c in obj.__closure__ or () if _filled(c)]
    return found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- the copy, cached
def _digest(package: Path, modules: list[str], calls: list[tuple[str, dict]]) -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(json.dumps([modules, calls], sort_keys=True, default=str).encode())
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" not in path.parts:
            h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:20]


def check_modules_of(modules: Iterable[str]) -> list[str]:
    """The notebooks' check modules among ``modules`` (``induction_course.checks.nbK``)."""
    return sorted({m for m in modules if m.startswith("induction_course.checks.nb") and m.count(".") == 2})


def build(package: Path, modules: Iterable[str], calls: Iterable[tuple[str, dict]] = (),
          cache: Path | None = None, uses: Iterable[tuple[str, str]] = ()) -> Path | None:
    """The withheld copy of ``package`` for a notebook whose test cells use ``modules`` (None: nothing to withhold).

    ``calls`` are the planned (check name, params) of its test cells, for the inputs computed here; ``uses``
    what its own cells use of the package (``notebook_uses``): a reference that those run stays.
    """
    uses = sorted({(str(m), str(n)) for m, n in uses})
    modules = check_modules_of(modules)
    if not modules:
        return None
    package = Path(package).resolve()
    calls = sorted(((n, p) for n, p in calls), key=lambda c: json.dumps(c, sort_keys=True, default=str))
    cache = Path(cache) if cache else Path(tempfile.gettempdir()) / f"course-grader-{os.getuid()}"
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = cache / f"{_digest(package, modules, [calls, uses])}-{'+'.join(m.rsplit('.', 1)[-1] for m in modules)}"
    if (target / package.name / "checks" / f"{HELPER}.py").is_file():
        return target / package.name
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    try:
        copy = work / package.name
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _write_copy(package, copy, modules, calls, uses)
        for path in [copy, *copy.rglob("*")]:  # readable by the kernel's own uid (setpriv as root)
            path.chmod(0o755 if path.is_dir() else 0o644)
        work.chmod(0o755)
        try:
            os.rename(work, target)
        except OSError:  # another worker built it first
            if not (target / package.name / "checks" / f"{HELPER}.py").is_file():
                raise
        suffix = target.name.split("-", 1)[1]
        for old in cache.glob(f"*-{suffix}"):  # this notebook's builds for other versions of the package
            if old != target and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / package.name


def _write_copy(package: Path, copy: Path, modules: list[str], calls: list[tuple[str, dict]],
                uses: list[tuple[str, str]]) -> None:
    from safetensors.torch import save_file

    analyses = [_Analysis(m) for m in modules]
    wanted: dict[str, set[str]] = {}  # module -> functions to stub there
    for a in analyses:
        for module, name in a.references:
            wanted.setdefault(module, set()).add(name)
    check_files = {os.path.realpath(a.path) for a in analyses}
    names = set().union(*(a.answer_names for a in analyses))
    sources: dict[str, tuple[Path, str]] = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if "__pycache__" in rel.parts or rel.parts[0] == "checks" or os.path.realpath(path) in check_files:
            continue
        sources[".".join((package.name, *rel.with_suffix("").parts)).removesuffix(".__init__")] = (rel, path.read_text())
    # withheld functions that the notebook's own cells run, or that inputs which are not tensors are made of
    replayed = _replayed_ids()
    needed = _reachable(uses, leaves=replayed)
    for i in needed & set(replayed):
        module, name = replayed[i]
        rel, source = sources[module]
        sources[module] = (rel, replay_module(source, module, {name}))
        (copy / rel).write_text(sources[module][1])  # and again below if something there is stubbed too
    spare: set[tuple[str, str]] = set()
    for _ in range(4):
        transformed, objects = {}, {}
        for module, (rel, source) in sources.items():
            new, stubbed = transform_module(source, module, (wanted.get(module, set()) | names)
                                            - {n for m, n in spare if m == module})
            if stubbed:
                transformed[rel] = new
                real = importlib.import_module(module)
                objects.update({id(getattr(real, n)): (module, n) for n in stubbed if hasattr(real, n)})
        tensors, keys_of, more = {}, {}, {objects[i] for i in needed & set(objects)}
        for a in analyses:
            own = [(label.split(".", 1)[1], p) for label, p in calls if label.startswith(a.short + ".")]
            keys, found, made_of = _precompute(a, set(objects), own)
            keys_of[a.name] = keys
            tensors.update(found)
            more |= {objects[i] for i in made_of}
        if more <= spare:
            break
        spare |= more
    for rel, new in transformed.items():
        (copy / rel).write_text(new)
    for a in analyses:
        rel = Path(a.path).relative_to(os.path.realpath(package))
        (copy / rel).write_text(transform_check_module(Path(a.path).read_text(), a, keys_of[a.name]))
    (copy / "checks" / f"{HELPER}.py").write_text(_HELPER_SOURCE)
    if tensors:
        save_file(tensors, str(copy / "checks" / CASES))


def planned_calls(plans: dict) -> list[tuple[str, dict]]:
    """(``nbK.check_x``, params) of every planned call of ``deciding.plan``."""
    return [(call.label, dict(call.params)) for calls in plans.values() for call, _ in calls]

