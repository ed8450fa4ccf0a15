"""Restoring a submission's structure against the release (trusted code, before anything runs).

Cells are matched in order (difflib) by nbgrader grade id, or by text for cells that lost their
metadata. A deleted test cell is put back after the student's code for that exercise; of duplicated
test cells only the one in release order is graded; cell ids nbgrader does not know lose their
metadata. Then nbgrader's own sanitising preprocessors restore every locked cell (with its hidden
tests), its type, its points and the kernelspec. ``review_notes`` flags code a human should look at.
"""
from __future__ import annotations

import copy
import difflib
import re

from nbformat import NotebookNode

from autograder.settings import SubmissionError

BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def normalise(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def visible(source: str) -> str:
    """A test cell's text without its hidden tests (as the release shows it)."""
    hidden = re.compile(re.escape(BEGIN_HIDDEN) + ".*?" + re.escape(END_HIDDEN) + r"\n?", re.S)
    return normalise(hidden.sub("", source))


def meta(cell: NotebookNode) -> dict:
    """The cell's nbgrader metadata ({} when it has none)."""
    found = cell.get("metadata", {}).get("nbgrader")
    return found if isinstance(found, dict) else {}


def is_test(cell: NotebookNode) -> bool:
    """Whether the cell is an autograded test cell (graded code, not a solution)."""
    m = meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def check_modules(nb: NotebookNode) -> list[str]:
    """Modules the test cells import from the course package."""
    names: set[str] = set()
    for cell in nb.cells:
        if not is_test(cell):
            continue
        for module, items in re.findall(r"from\s+(induction_course[\w.]*)\s+import\s+([\w, ]+)", cell.source):
            names.add(module)
            names.update(f"{module}.{item.strip()}" for item in items.split(",") if item.strip())
        names.update(re.findall(r"import\s+(induction_course[\w.]*)", cell.source))
    return sorted(names)


def _submitted_keys(nb: NotebookNode, release: NotebookNode, notes: list[str]) -> list[str]:
    """A key per submitted cell: ``id:<grade_id>`` when it is an nbgrader cell of the release, else its text."""
    rel_ids = {meta(c).get("grade_id") for c in release.cells} - {None}
    locked_text = {normalise(c.source): meta(c)["grade_id"] for c in release.cells if meta(c).get("locked")}
    keys, relabelled = [], []
    for cell in nb.cells:
        grade_id = meta(cell).get("grade_id")
        if grade_id not in rel_ids:
            cell.metadata.pop("nbgrader", None)
            grade_id = locked_text.get(normalise(cell.source))
            if grade_id:
                relabelled.append(grade_id)
        keys.append(f"id:{grade_id}" if grade_id else f"text:{cell.cell_type}:{normalise(cell.source)}")
    if relabelled:
        notes.append(f"nbgrader metadata was missing from {len(relabelled)} test cell(s); matched them by content")
    return keys


def _release_keys(release: NotebookNode) -> list[str]:
    return [f"id:{meta(c)['grade_id']}" if meta(c).get("grade_id") else f"text:{c.cell_type}:{normalise(c.source)}"
            for c in release.cells]


def _pair_block(rel: list[NotebookNode], sub: list[NotebookNode], sub_keys: list[str], i_range: range,
                j_range: range) -> dict[int, int]:
    """Inside an unmatched stretch, pair release solution/answer cells with the student's cells in order."""
    pairs, js = {}, [j for j in j_range if not sub_keys[j].startswith("id:")]
    for i in i_range:
        if not meta(rel[i]).get("solution"):
            continue
        while js and sub[js[0]].cell_type != rel[i].cell_type:
            js.pop(0)
        if js:
            pairs[js.pop(0)] = i
    return pairs


def restore_structure(nb: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """Match the submission's cells to the release's, put back missing test cells, drop duplicate ids.

    A test cell that is missing is re-inserted from the release just before the next cell that
    matched, so it runs after the student's code for that exercise; a duplicated test cell keeps its
    metadata only where it fits the release order (copies run as ordinary code). nbgrader's
    OverwriteCells then restores the source, type and points of every locked cell.
    """
    notes: list[str] = []
    rel, sub = release.cells, nb.cells
    sub_keys, rel_keys = _submitted_keys(nb, release, notes), _release_keys(release)
    matched: dict[int, int] = {}  # submitted index -> release index
    inserts: dict[int, list[int]] = {}  # submitted position -> release indices to insert before it
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, rel_keys, sub_keys, autojunk=False).get_opcodes():
        if tag == "equal":
            matched.update({j1 + k: i1 + k for k in range(i2 - i1)})
            continue
        matched.update(_pair_block(rel, sub, sub_keys, range(i1, i2), range(j1, j2)))
        taken = set(matched.values())
        missing = [i for i in range(i1, i2) if i not in taken and meta(rel[i]).get("grade")]
        inserts.setdefault(j2, []).extend(missing)
    cells = []
    for j in range(len(sub) + 1):
        for i in inserts.get(j, []):
            cells.append(copy.deepcopy(rel[i]))
            notes.append(f"cell {meta(rel[i])['grade_id']} was missing; restored from the release")
        if j == len(sub):
            break
        cell = sub[j]
        if j in matched and meta(rel[matched[j]]):
            given = meta(rel[matched[j]])
            if sub_keys[j].startswith("id:") and cell.cell_type != rel[matched[j]].cell_type:
                notes.append(f"cell {given['grade_id']} had been changed to {cell.cell_type}; restored")
            elif given.get("locked") and visible(cell.source) != normalise(rel[matched[j]].source):
                notes.append(f"test cell {given['grade_id']} had been edited; restored")
            cell.metadata["nbgrader"] = copy.deepcopy(given)
        elif sub_keys[j].startswith("id:"):
            cell.metadata.pop("nbgrader", None)
            notes.append(f"a copy of cell {sub_keys[j][3:]} ran as ordinary code (duplicate)")
        cells.append(cell)
    if not any(sub_keys[j] == rel_keys[i] for j, i in matched.items()):
        notes.append("the file shares no cells with the release: is it the right notebook?")
    nb.cells = cells
    return nb, notes


def sanitize(nb: NotebookNode, resources: dict) -> NotebookNode:
    """nbgrader's autograde sanitising step: outputs cleared, ids deduplicated, kernelspec and locked cells restored."""
    from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells,
                                        OverwriteKernelspec)

    try:
        for preprocessor in (ClearOutput(), DeduplicateIds(), OverwriteKernelspec(), OverwriteCells(),
                             CheckCellMetadata()):
            nb, resources = preprocessor.preprocess(nb, resources)
    except Exception as e:  # nbgrader's validation of the restored metadata
        raise SubmissionError(f"nbgrader could not sanitise the notebook: {type(e).__name__}: {e}") from None
    return nb


_REVIEW = {
    r"input_transformers|ast_transformers|input_transformer_manager": "touches IPython's input transformers",
    r"set_custom_exc|custom_exceptions": "installs a custom exception handler",
    r"events\.register": "registers an IPython event callback",
    r"meta_path|path_hooks|path_importer_cache|sys\.modules\[": "changes the import system",
    r"_getframe|\.f_back|\.f_locals|inspect\.stack|inspect\.currentframe|gc\.get_|_current_frames|f_\"|f_'":
        "inspects the caller's frames or heap",
    r"__torch_function__|__torch_dispatch__|TorchFunctionMode|TorchDispatchMode": "overrides torch functions",
    r"settrace|setprofile": "installs a tracer",
    r"import builtins|__builtins__|builtins\.": "changes Python builtins",
    r"solutions/|/solutions|gradebook": "looks for the solutions or the gradebook",
    r"induction_course\.(attention|heads|circuits|ablation)|from induction_course import (attention|heads)":
        "imports the course's reference implementation",
    r"import_module|__import__": "imports a module under a computed name",
    r"autograder|_course_guard": "touches the grading guard",
    r"induction_course\.checks|\bnb\d\.\w+\s*=": "uses or patches the course's checks directly",
    r"ctypes|os\._exit": "uses ctypes or os._exit",
}


def review_notes(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Heuristic flags for code a human should look at (only cells the student wrote or edited)."""
    given = {normalise(c.source) for c in release.cells}
    flags: dict[str, list[int]] = {}
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code" or normalise(cell.source) in given or is_test(cell):
            continue
        for pattern, what in _REVIEW.items():
            if re.search(pattern, cell.source):
                flags.setdefault(what, []).append(number)
    return [f"review: cell {', '.join(map(str, sorted(set(n))))} {what}" for what, n in flags.items()]
