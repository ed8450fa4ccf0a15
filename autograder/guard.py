"""Tripwire run inside a grading kernel, around every graded test cell (see ``executing.py``).

The only file of the grader that runs in the sandbox: it is bound read-only into it and loaded by
path, so it imports nothing of the grader package (only the standard library, torch and IPython).
``course grade`` runs a hidden setup cell first, before any student code: it imports the
checks the notebook uses (so their dependencies are loaded), loads this file as
``sys.modules["_course_guard"]`` and takes a ``snapshot`` of what the checks rely on (builtins,
torch, the import system, IPython's shell and kernel objects). Hidden cells before and after each
test cell call ``check``: it compares the interpreter with the snapshot and either displays a
proof (a display_data message with the run's nonce, which the grader removes) or raises
``TamperingDetected``. Before a test cell it also purges the course's modules from ``sys.modules``,
so the test cell imports its checks afresh, and restores the kernel's record mode (``RECORD_ENV``).
The grader refuses a submission whose guard raised, or whose guard did not display its proof.

This is a tripwire, not a proof: student code shares the interpreter, so code written against
this module can defeat it. It catches the generic tricks (input/AST transformers, custom
exception handlers, patched torch or builtins, import hooks, planted check modules, tracers,
torch function modes of the notebook's own) that would otherwise turn failing checks into passes.
Hooks that installed packages add for honest reasons (``torch.set_default_device``'s mode,
``%matplotlib inline``'s and autoreload's callbacks, import hooks) are allowed.
"""
from __future__ import annotations

import builtins
import importlib
import math
import os
import sys
from typing import Any, Iterator

MIME = "application/x-course-guard+json"
RECORD_ENV = "INDUCTION_COURSE_RECORD"  # sandbox.RECORD_ENV (this file imports nothing of the grader)

# Names whose values IPython or the kernel legitimately replace while cells run.
_VOLATILE = frozenset({"_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh", "_dh", "In", "Out", "exit", "quit",
                       "get_ipython", "display", "__IPYTHON__", "__builtins__", "_exit_code",
                       "input", "raw_input", "getpass", "excepthook"})  # ipykernel rebinds these per request
_STATE: dict[str, Any] = {}


class TamperingDetected(Exception):
    """Student code changed something the graded checks depend on."""


def _shell() -> Any:
    return builtins.get_ipython()  # type: ignore[attr-defined]  # provided by IPython


def _watched_objects() -> list[Any]:
    ip = _shell()
    kernel = getattr(ip, "kernel", None)
    objects = [ip, ip.display_pub, ip.displayhook, ip.compile, ip.input_transformer_manager, ip.events,
               kernel, getattr(kernel, "session", None), getattr(kernel, "iopub_socket", None),
               getattr(kernel, "iopub_thread", None)]
    return [o for o in objects if o is not None]


def _watched_classes() -> set[type]:
    import torch

    classes: set[type] = {torch.Tensor, torch.nn.Parameter, torch.nn.Module, torch.Generator}
    tensor_base = getattr(torch._C, "TensorBase", None) or getattr(torch._C, "_TensorBase", None)
    if tensor_base is not None:
        classes.add(tensor_base)
    for obj in _watched_objects():
        classes.update(c for c in type(obj).__mro__ if c is not object)
    return classes


def _namespaces() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, name, mapping) for everything the checks and the kernel's reporting rely on."""
    import torch
    import torch.nn.functional

    for module in (builtins, torch, torch.nn.functional, torch.linalg, math, importlib, importlib._bootstrap,
                   importlib._bootstrap_external):
        yield "module", module.__name__, dict(vars(module))
    yield "module", "sys", {name: getattr(sys, name, None) for name in (
        "excepthook", "displayhook", "settrace", "setprofile", "gettrace", "getprofile", "_getframe",
        "modules", "meta_path", "path_hooks", "path_importer_cache", "audit")}
    for cls in _watched_classes():
        yield "class", f"{cls.__module__}.{cls.__qualname__}", dict(vars(cls))
    for obj in _watched_objects():
        attrs = vars(obj) if hasattr(obj, "__dict__") else {}
        yield "instance", type(obj).__qualname__, {k: v for k, v in attrs.items() if callable(v)}
        for table in ("shell_handlers", "control_handlers"):
            if isinstance(attrs.get(table), dict):
                yield "instance", f"{type(obj).__qualname__}.{table}", dict(attrs[table])


def _snapshot() -> dict[tuple[str, str, str], tuple[int, str | None]]:
    """(kind, namespace, attribute) -> (id, qualified name) of everything watched."""
    return {(kind, name, key): (id(value), getattr(value, "__qualname__", None)) for kind, name, mapping in _namespaces()
            for key, value in mapping.items() if key not in _VOLATILE}


def _rewrapped(key: tuple[str, str, str], before: tuple[int, str | None]) -> bool:
    """Whether the attribute now holds the same-named function from an installed package.

    torch, for one, swaps some functions (``torch.manual_seed``) for wrapped copies on first use.
    """
    kind, name, attr = key
    for k, n, mapping in _namespaces():
        if (k, n) == (kind, name) and attr in mapping:
            value = mapping[attr]
            return before[1] is not None and getattr(value, "__qualname__", None) == before[1] and _trusted(value)
    return False


def _trusted(obj: Any) -> bool:
    """Whether ``obj`` (a function, method or object) comes from an installed package, not a notebook cell."""
    func = getattr(obj, "__func__", obj)
    name = getattr(func, "__module__", None) if callable(func) and not isinstance(func, type) else None
    name = name or getattr(type(obj) if not isinstance(obj, type) else obj, "__module__", None)
    path = getattr(sys.modules.get(name or ""), "__file__", None)
    if name in (None, "__main__") or not path:
        return name in ("builtins", "sys", "_imp", "_frozen_importlib", "_frozen_importlib_external")
    path = os.path.realpath(path)
    return any(path.startswith(root + os.sep) for root in _STATE["roots"])


def _modes(length: Any, at: Any) -> list[Any]:
    """The torch function or dispatch modes in effect, innermost last (torch.set_default_device adds one)."""
    return [at(i) for i in range(length())]


def _hooks() -> dict[str, tuple[bool, list[Any]]]:
    """The interpreter's hook lists, each with whether entries from installed packages may be added."""
    import torch

    ip = _shell()
    manager = ip.input_transformer_manager
    hooks: dict[str, tuple[bool, list[Any]]] = {
        "an IPython input transformer (input_transformers_cleanup)": (False, list(ip.input_transformers_cleanup)),
        "an IPython input transformer (input_transformers_post)": (False, list(ip.input_transformers_post)),
        "an IPython AST transformer": (False, list(ip.ast_transformers)),
        "an IPython input transformer (cleanup_transforms)": (False, list(getattr(manager, "cleanup_transforms", []))),
        "an IPython input transformer (line_transforms)": (False, list(getattr(manager, "line_transforms", []))),
        "an IPython input transformer (token_transformers)": (False, list(getattr(manager, "token_transformers", []))),
        "a custom exception handler (set_custom_exc)": (False, list(ip.custom_exceptions)),
        "a trace function (sys.settrace)": (False, [sys.gettrace()]),
        "a profile function (sys.setprofile)": (False, [sys.getprofile()]),
        "a torch function mode": (True, _modes(torch._C._len_torch_function_stack, torch._C._get_function_stack_at)),
        "a torch dispatch mode": (True, _modes(torch._C._len_torch_dispatch_stack, torch._C._get_dispatch_stack_at)),
        "an import hook (sys.meta_path)": (True, list(sys.meta_path)),
        "an import hook (sys.path_hooks)": (True, list(sys.path_hooks)),
    }
    for event, callbacks in ip.events.callbacks.items():
        hooks[f"an IPython '{event}' event callback"] = (True, list(callbacks))
    return hooks


def _hook_problems() -> list[str]:
    found = []
    for label, (packages_may_add, entries) in _hooks().items():
        before = _STATE["hooks"].get(label, (packages_may_add, []))[1]
        if [x if isinstance(x, int) else id(x) for x in entries] == before:
            continue
        known = set(before)
        new = [x for x in entries if (x if isinstance(x, int) else id(x)) not in known]
        if not packages_may_add or not all(_trusted(x) for x in new):  # removing a package's hook cheats nothing
            found.append(f"installed or removed {label}")
    return found


def setup(nonce: str, package: str, modules: list[str] = ()) -> None:
    """Remember the clean interpreter. Called once, by the grader's hidden first cell.

    ``modules`` are the course modules the test cells import: before each test cell they are loaded afresh
    and their attributes remembered, so a check module changed while the cell runs is caught after it.
    """
    package = os.path.realpath(package)
    roots = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, package)})
    _STATE.update(nonce=nonce, package=package, roots=roots, snapshot=_snapshot(), modules_type=type(sys.modules),
                  record=os.environ.get(RECORD_ENV), modules=list(modules), course={})
    _STATE["hooks"] = {label: (may_add, [x if isinstance(x, int) else id(x) for x in entries])
                       for label, (may_add, entries) in _hooks().items()}


def _course_modules_problem() -> str | None:
    package = _STATE["package"]
    for name, module in list(sys.modules.items()):
        if name == "induction_course" or name.startswith("induction_course."):
            path = os.path.realpath(getattr(module, "__file__", None) or "?")
            if not path.startswith(package + os.sep):
                return f"module {name} was loaded from {path}, not from the read-only course package"
    return None


def _is_course(name: str) -> bool:
    return name == "induction_course" or name.startswith("induction_course.")


def _course_attributes() -> dict[tuple[str, str], int]:
    """(namespace, attribute) -> id of the value, for every loaded course module, the classes it defines and
    the instances of those classes it holds (a check's ``Check`` object, say)."""
    found: dict[tuple[str, str], int] = {}
    for name, module in list(sys.modules.items()):
        if not _is_course(name) or module is None:
            continue
        for key, value in list(vars(module).items()):
            if type(value).__name__ == "module":
                continue  # a submodule bound to its package on first import
            found[(name, key)] = id(value)
            owner = value if isinstance(value, type) else type(value)
            if getattr(owner, "__module__", "").startswith("induction_course") and hasattr(value, "__dict__"):
                for attr, inner in list(vars(value).items()):
                    found[(f"{name}.{key}", attr)] = id(inner)
    return found


def _course_problems() -> list[str]:
    """Course attributes replaced, deleted or added since the test cell's checks were loaded."""
    before, now = _STATE.get("course") or {}, _course_attributes()
    changed = sorted(f"{ns}.{attr}" for (ns, attr), old in before.items() if now.get((ns, attr)) != old)
    spaces = {ns for ns, _ in before}
    added = sorted(f"{ns}.{attr}" for (ns, attr) in now.keys() - before.keys() if ns in spaces)
    words = []
    if changed:
        words.append("replaced or deleted " + ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else ""))
    if added:
        words.append("added " + ", ".join(added[:6]) + (" ..." if len(added) > 6 else ""))
    return words


def _namespace_problem() -> str | None:
    """The notebook's own binding of ``__builtins__``: the module IPython put there, or a copy of the student's."""
    ip = _shell()
    for label, ns in (("the notebook's namespace", ip.user_ns), ("the notebook's globals", ip.user_global_ns)):
        bound = ns.get("__builtins__", builtins)
        if bound is not builtins and bound is not vars(builtins):
            return f"rebound __builtins__ in {label}"
    return None


def problems(stage: str = "pre") -> list[str]:
    """What changed since ``setup``, in words (empty when nothing did)."""
    found = _hook_problems()
    namespace_problem = _namespace_problem()
    if namespace_problem:
        found.append(namespace_problem)

    now, before = _snapshot(), _STATE["snapshot"]
    changed = sorted({f"{name}.{key}" for (kind, name, key), old in before.items()
                      if now.get((kind, name, key), (None,))[0] != old[0] and not _rewrapped((kind, name, key), old)})
    added = sorted({f"{name}.{key}" for (kind, name, key) in now.keys() - before.keys() if kind != "module"})
    if changed:
        found.append("replaced or deleted " + ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else ""))
    if added:
        found.append("added " + ", ".join(added[:6]) + (" ..." if len(added) > 6 else ""))
    if type(sys.modules) is not _STATE["modules_type"]:
        found.append("replaced sys.modules")
    module_problem = _course_modules_problem()
    if module_problem:
        found.append(module_problem)
    return found


def fresh() -> None:
    """Forget every loaded course module, so the test cell imports its checks afresh from the read-only package,
    and put back the record mode the kernel started with (an earlier cell may have switched it off).
    """
    for name in [m for m in sys.modules if _is_course(m)]:
        sys.modules.pop(name, None)
    if _STATE.get("record") is not None:
        os.environ[RECORD_ENV] = _STATE["record"]
    for name in _STATE.get("modules", ()):
        try:
            importlib.import_module(name)
        except Exception:  # a name that is not a module (a function imported from one), or an import error the
            pass           # test cell will show the student itself
    _STATE["course"] = _course_attributes()


def check(stage: str, cell: str) -> None:
    """Raise TamperingDetected if anything changed; otherwise display the proof the grader expects.

    After a test cell ("post") the proof lists what changed in the course's modules since the cell's checks were
    loaded (its ``changed``): the grader then fails that test, and only that one.

    Before a test cell ("pre") it also makes the course's modules load afresh: a check module patched by an
    earlier cell is not the one the test cell calls, whether or not the cell purges them itself.
    """
    from IPython.display import display

    found = problems(stage)
    if found:
        raise TamperingDetected(f"before/after test cell {cell} ({stage}): " + "; ".join(found))
    changed = _course_problems() if stage == "post" else []  # the test cell's own checks: that test fails
    if stage == "pre":
        fresh()
    display({MIME: {"nonce": _STATE["nonce"], "stage": stage, "cell": cell, "changed": changed}}, raw=True)
