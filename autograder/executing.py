"""Executing a restored notebook top to bottom in a fresh sandboxed kernel, with guards around its tests.

A hidden first cell loads the guard (``guard.py``, bound read-only into the sandbox) and records the
clean interpreter; hidden cells before and after every test cell check it is unchanged and display a
proof carrying this run's nonce; the one before a test cell also reloads the course's modules. The
kernel runs in record mode (``sandbox.RECORD_ENV``): graded checks display records, they judge nothing.
:func:`execute` returns the student's cells with their outputs (guard cells removed, tests that did not
run or could not be verified marked with an error) and notes. It decides nothing about scores: the
worker hands its result to ``deciding``, then to the scoring stage.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder import guard, sandbox
from autograder.restoring import check_modules, is_test, meta
from autograder.settings import Job, Limits, SubmissionError

# A graded check call displays one output of this type (the course's record.MIME, defined there), the record of the
# student's answers, which ``deciding`` decodes and judges after execution; its own per-cell allowance is
# Limits.record_kb.
from induction_course.checks.record import MIME as RECORD_MIME  # noqa: E402
# Said in a cell's output when its records went over their allowance: the cell's test then fails (deciding.py).
RECORDS_DROPPED = "records of answers"
KERNEL_START_TIMEOUT = 300  # seconds for the sandboxed kernel to start and answer (a loaded machine is slow)
IOPUB_TIMEOUT = 60  # seconds to wait for a cell's last outputs after its reply

_SETUP = '''\
def _course_grader_setup():
    import importlib.util, sys
    for name in {modules!r}:
        try:
            __import__(name)
        except Exception:
            pass
    spec = importlib.util.spec_from_file_location("_course_guard", {guard!r})
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    [sys.modules.pop(m) for m in list(sys.modules) if m.startswith("induction_course")]
    sys.modules["_course_guard"] = guard
    guard.setup({nonce!r}, {package!r}, {modules!r})
_course_grader_setup()
del _course_grader_setup
'''
_GUARD = '__import__("sys").modules["_course_guard"].check({stage!r}, {cell!r})'


@dataclass
class Executed:
    """The student's cells after execution, what happened (notes), and the kernel's CPU seconds."""

    cells: list[NotebookNode]
    notes: list[str]
    kernel_cpu_s: float


def with_guards(nb: NotebookNode, nonce: str, package: Path, guard_file: str) -> tuple[NotebookNode, list[str]]:
    """The notebook to execute: a setup cell, then every test cell between a 'pre' and a 'post' guard cell."""
    setup = nbformat.v4.new_code_cell(_SETUP.format(modules=check_modules(nb), nonce=nonce, package=str(package),
                                                    guard=guard_file))
    cells, roles = [setup], ["setup"]
    for cell in nb.cells:
        if is_test(cell):
            grade_id = meta(cell)["grade_id"]
            cells += [nbformat.v4.new_code_cell(_GUARD.format(stage="pre", cell=grade_id)), cell,
                      nbformat.v4.new_code_cell(_GUARD.format(stage="post", cell=grade_id))]
            roles += [f"pre:{grade_id}", "cell", f"post:{grade_id}"]
        else:
            cells.append(cell)
            roles.append("cell")
    for i, cell in enumerate(cells):
        cell.id = cell.get("id") or f"guard-{i:04d}"
    executable = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata), cells=cells)
    return executable, roles


def _client(nb: NotebookNode, km: Any, limits: Limits) -> Any:
    """nbclient's NotebookClient with nbgrader's execute-reply handling and caps on stored output."""
    from nbclient import NotebookClient
    from nbgrader.preprocessors import Execute

    class Client(NotebookClient):
        executed: set[int]
        used: dict[tuple[int, bool], int]
        current: int = -1

        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            if msg["msg_type"] != "error":
                record = RECORD_MIME in (msg["content"].get("data") or {})
                cap = (limits.record_kb if record else limits.output_kb) * 1024
                size = len(json.dumps(msg["content"], default=str))
                used = self.used[cell_index, record] = self.used.get((cell_index, record), 0) + size
                if used > cap:
                    if used - size <= cap:
                        what = RECORDS_DROPPED if record else "output"
                        outs.append(nbformat.v4.new_output("stream", name="stdout", text=(
                            f"\n[grader: {what} beyond {cap // 1024} KB was dropped]\n")))
                    return None
            return super().output(outs, msg, display_id, cell_index)

    timeout_error = {"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {limits.cell_timeout} s",
                     "traceback": [f"CellTimeoutError: the cell ran longer than {limits.cell_timeout} s "
                                   "and was interrupted by the grader"]}
    client = Client(nb, km=km, timeout=limits.cell_timeout, iopub_timeout=IOPUB_TIMEOUT, allow_errors=True,
                    interrupt_on_timeout=True, raise_on_iopub_timeout=True, error_on_timeout=timeout_error,
                    shutdown_kernel="immediate", record_timing=False, startup_timeout=KERNEL_START_TIMEOUT,
                    kernel_name="python3")
    client.executed, client.used = set(), {}

    def on_start(cell: NotebookNode, cell_index: int, **kwargs: Any) -> None:
        client.current = cell_index

    def on_executed(cell: NotebookNode, cell_index: int, execute_reply: dict, **kwargs: Any) -> None:
        Execute.on_cell_executed(client, cell=cell, execute_reply=execute_reply)
        client.executed.add(cell_index)

    client.on_cell_start, client.on_cell_executed = on_start, on_executed
    return client


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and its descendants (read from Linux's /proc)."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, CPU seconds incl. reaped children)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            stats[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / tick)
        except (OSError, ValueError, IndexError):
            continue
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += children.get(current, [])
    return total


async def _run(client: Any, roles: list[str], limits: Limits, log: Any, ipc: Path) -> tuple[str, int]:
    """Execute every code cell; stop at a dead or stuck kernel. Returns (outcome, index of the stopping cell)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    deadline = asyncio.get_running_loop().time() + limits.timeout

    async def cells() -> tuple[str, int]:
        async with client.async_setup_kernel(stdout=log, stderr=log):
            ipc.chmod(0o711)  # sockets exist: the kernel may no longer create files on the host's disk
            for index, cell in enumerate(client.nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    await client.async_execute_cell(cell, index, store_history=roles[index] == "cell")
                except DeadKernelError:
                    return "deadline" if asyncio.get_running_loop().time() >= deadline else "died", index
                except CellTimeoutError:
                    return "stuck", index
                except (RuntimeError, OSError):  # the kernel ran, then the host could not talk to it: a bomb
                    return "exhausted", index
        return "complete", -1

    try:
        return await asyncio.wait_for(cells(), limits.timeout)
    except asyncio.TimeoutError:
        return "deadline", client.current
    finally:
        process = getattr(getattr(client.km, "provisioner", None), "process", None)
        client.kernel_cpu = _tree_cpu(process.pid) if process is not None else 0.0
        try:
            if client.km.has_kernel:
                await client.km.shutdown_kernel(now=True)
        except Exception:  # the kernel is already gone
            pass


def _error(ename: str, evalue: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _proof(cell: NotebookNode, nonce: str, stage: str) -> dict | None:
    """The guard's proof in ``cell`` for ``stage``, or None."""
    for out in cell.get("outputs", []):
        data = out.get("data", {}).get(guard.MIME) if out.get("output_type") == "display_data" else None
        if isinstance(data, dict) and data.get("nonce") == nonce and data.get("stage") == stage:
            return data
    return None


def _guard_failure(cell: NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}"
    return "its output was suppressed"


_STOPPED = {
    "died": "the kernel died in cell {n} (os._exit, a crash, or out of memory)",
    "stuck": "cell {n} ran past the {t} s limit and did not stop when interrupted",
    "deadline": "stopped at the {T} s limit for a submission, in cell {n}",
    "exhausted": "cell {n} exhausted the sandbox's processes, threads or memory (a fork or thread bomb?), so its "
                 "kernel was stopped",
}


def finish(exe: NotebookNode, roles: list[str], executed: set[int], outcome: str, stop: int, nonce: str,
           limits: Limits) -> tuple[list[NotebookNode], list[str]]:
    """Check the guards, mark what never ran, and return the student's cells (guards removed) and notes.

    Raises SubmissionError(kind="refused") when a guard caught tampering or its proof is missing.
    """
    notes: list[str] = []
    setup = exe.cells[0]
    if 0 not in executed or any(o.get("output_type") == "error" for o in setup.outputs):
        failure = _guard_failure(setup) if 0 in executed else _STOPPED.get(outcome, outcome)
        raise SubmissionError(f"the grader's setup cell failed: {failure}", "internal")
    number = {i: n for n, i in enumerate((i for i, r in enumerate(roles) if r == "cell"), 1)}
    stop_text = _STOPPED.get(outcome, "").format(n=number.get(stop, number.get(stop + 1, "?")), t=limits.cell_timeout,
                                                 T=limits.timeout)
    verified: dict[str, set[str]] = {}
    changed: dict[str, str] = {}
    for i, role in enumerate(roles):
        if ":" not in role or i not in executed:
            continue
        stage, grade_id = role.split(":", 1)
        proof = _proof(exe.cells[i], nonce, stage)
        if proof is None:
            raise SubmissionError(f"refused: tampering detected around test cell {grade_id}: "
                                  f"{_guard_failure(exe.cells[i])}", "refused")
        if proof.get("changed"):
            changed[grade_id] = "; ".join(str(c) for c in proof["changed"])[:300]
        verified.setdefault(grade_id, set()).add(stage)
    cells, unverified = [], 0
    for i, (cell, role) in enumerate(zip(exe.cells, roles)):
        if role != "cell":
            continue
        if i == stop and outcome != "complete" and not any(o.get("ename") == "CellTimeoutError" for o in cell.outputs):
            cell.outputs.append(_error("GraderStopped", stop_text))
        if is_test(cell):
            grade_id = meta(cell)["grade_id"]
            if i > stop >= 0 and outcome != "complete":
                cell.outputs.append(_error("NotRun", f"this test did not run: {stop_text}"))
            elif grade_id in changed:
                cell.outputs.append(_error("ChecksChanged", "this test's checks were changed while it ran "
                                           f"({changed[grade_id]}), so it cannot pass: leave the checks as they are"))
                notes.append(f"test {grade_id}: the course's checks were changed while it ran: {changed[grade_id]}")
            elif verified.get(grade_id) != {"pre", "post"} and not any(o.output_type == "error" for o in cell.outputs):
                cell.outputs.append(_error("NotVerified", "the grader could not verify this test ran untampered"))
                unverified += 1
            for out in cell.outputs:  # warnings on stderr are not a failure here: checks fail by raising
                if out.output_type == "stream" and out.name == "stderr":
                    out.name = "stdout"
        cells.append(cell)
    if outcome != "complete":
        later = sum(1 for i, c in enumerate(exe.cells) if i > stop and roles[i] == "cell" and is_test(c))
        notes.append(stop_text + (f"; {later} later test cell(s) scored 0" if later else ""))
    timeouts = [number[i] for i, c in enumerate(exe.cells) if roles[i] == "cell" and i != stop
                and any(o.get("ename") == "CellTimeoutError" for o in c.get("outputs", []))]
    if timeouts:
        notes.append(f"cell(s) {', '.join(map(str, timeouts))} ran past {limits.cell_timeout} s and were interrupted")
    if unverified:
        notes.append(f"{unverified} test cell(s) could not be verified and scored 0")
    return cells, notes


def execute(job: Job, nb: NotebookNode, source: Path | None = None) -> Executed:
    """Run the restored notebook in a fresh (sandboxed) kernel; the student's executed cells and notes.

    ``source`` is the build of the course package the sandbox shows at the package's path (``withhold``)."""
    nonce = uuid.uuid4().hex
    exe, roles = with_guards(nb, nonce, job.package, sandbox.guard_path(job.sandbox))
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        ipc = Path(tmp) / "ipc"
        ipc.mkdir(mode=0o700)
        with open(Path(tmp) / "kernel.log", "w+b") as log:
            km = sandbox.kernel_manager(ipc, job.limits, job.package, job.sandbox, source)
            client = _client(exe, km, job.limits)
            if not job.sandbox:
                client.resources = {"metadata": {"path": tmp}}
            try:
                outcome, stop = asyncio.run(_run(client, roles, job.limits, log, ipc))
            except Exception as e:  # the kernel could not start: a sandbox or environment problem
                log.seek(0)
                tail = log.read().decode(errors="replace").strip()[-600:]
                raise SubmissionError(f"the kernel could not start: {type(e).__name__}: {e} {tail}", "internal") from None
            finally:  # whatever happened, no sandbox outlives its submission
                process = getattr(getattr(km, "provisioner", None), "process", None)
                if process is not None and process.poll() is None:
                    process.kill()
    cells, notes = finish(exe, roles, client.executed, outcome, stop, nonce, job.limits)
    return Executed(cells, notes, client.kernel_cpu)
