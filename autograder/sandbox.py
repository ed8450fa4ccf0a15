"""The sandbox: a kernel started by ``prlimit`` then ``bwrap`` (bubblewrap) and, as root, ``setpriv``.

Inside, student code sees only /usr, the Python installation, the virtual environment, the course
package (read-only; while a notebook is graded, the build of it without that notebook's answers, bound over
its path: ``withhold``) and the grader's guard file (read-only, at ``GUARD_INSIDE``); it can write only to
private tmpfs folders; it has no network, no view of other processes, no capabilities and a clean
environment. Nothing else of the grader package is visible, and students' kernels at home never load it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from autograder.settings import GRADER, Limits, course_package

GUARD = GRADER / "guard.py"  # the one grader file that runs in the kernel
GUARD_INSIDE = "/run/grader/guard.py"
PROBE_TIMEOUT = 60  # seconds for the trial sandbox that checks bubblewrap works here
# Set in every grading kernel, so graded checks only collect and hand out records, and the grader decides them
# outside (``deciding``). Without it (at home, plain nbgrader) they judge. The course's record module owns it.
from induction_course.checks.record import RECORD_ENV  # noqa: E402


def sandbox_problem() -> str | None:
    """Why bubblewrap cannot isolate kernels here, or None when it can."""
    missing = [tool for tool in ("bwrap", "prlimit") + (("setpriv",) if os.geteuid() == 0 else ())
               if not shutil.which(tool)]
    if missing:
        return (f"{', '.join(missing)} not found: install Debian's bubblewrap and util-linux "
                "(autograder/install_sandbox.sh), or pass --unsafe-no-sandbox for trusted notebooks only")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = bwrap_args(Path(tmp), None, Limits()) + [sys.executable, "-c", "print('ok')"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"a trial sandbox did not start within {PROBE_TIMEOUT} s"
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        return (f"bubblewrap cannot create a sandbox here ({proc.stderr.strip() or proc.returncode}); on a desktop "
                "allow unprivileged user namespaces, in a container run it privileged or as root")
    return None


def _ancestors(path: Path) -> list[Path]:
    return list(reversed(path.parents))[1:]


def bwrap_args(ipc: Path, uid: int | None, limits: Limits, package: Path | None = None,
               source: Path | None = None) -> list[str]:
    """The bwrap command line: read-only system, python, course package and guard; private /tmp and home; no network.

    ``source``, when given, is what the kernel sees at the package's path: the build of the package without the
    graded notebook's references, expected values and answer keys (``withhold.build``).
    """
    package = (package or course_package()).resolve()
    args = ["bwrap", "--die-with-parent", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--clearenv", "--hostname", "grader"]
    if os.geteuid() != 0:
        args.append("--unshare-user")
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for item in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "fonts", "passwd", "group", "mime.types"):
        args += ["--ro-bind-try", f"/etc/{item}", f"/etc/{item}"]
    # Scratch space first, so a course that itself lives under /tmp or /home is bound on top of it.
    size = str(limits.scratch_mb * 2**20)
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm",
             "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "0755", "--dir", "/home", "--perms", "1777", "--size", size, "--tmpfs", "/home/student"]
    mounts = {Path(sys.base_prefix).resolve(), Path(sys.prefix), Path(sys.executable).resolve().parent, package}
    mounts = {m for m in mounts if not any(m != o and o in m.parents for o in mounts) and not str(m).startswith("/usr")}
    made: set[Path] = {Path(p) for p in ("/", "/usr", "/tmp", "/dev", "/home", "/home/student")}
    for mount in sorted(mounts):
        for parent in _ancestors(mount):
            if parent not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--ro-bind", str(mount), str(mount)]
    if source is not None:  # over the package (wherever it was bound, e.g. inside the virtual environment)
        args += ["--ro-bind", str(Path(source).resolve()), str(package)]
    args += ["--perms", "0755", "--dir", "/run", "--bind", str(ipc), "/run/kernel",
             "--perms", "0755", "--dir", str(Path(GUARD_INSIDE).parent), "--ro-bind", str(GUARD), GUARD_INSIDE,
             "--chdir", "/home/student"]
    env = {"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": "/home/student",
           "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": str(package.parent),  # the course package wherever it is installed, nothing else of there
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "NBGRADER_EXECUTION": "autograde", "CUDA_VISIBLE_DEVICES": "", RECORD_ENV: "1"}
    for key, value in env.items():
        args += ["--setenv", key, value]
    args.append("--")
    if uid is not None:
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--"]
    return args


def limits_args(limits: Limits, uid: int | None) -> list[str]:
    """prlimit's command line: address space, file size, no core dumps, and processes when the uid is our own."""
    args = ["prlimit", f"--as={limits.memory_mb * 2**20}", f"--fsize={limits.scratch_mb * 2**20}", "--core=0"]
    if uid is not None:
        args.append("--nproc=512")  # counts this job's uid only (threads included)
    return args + ["--"]


def plain_env() -> dict[str, str]:
    """The kernel's extra environment without the sandbox (--unsafe-no-sandbox)."""
    return {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NBGRADER_EXECUTION": "autograde",
            "HF_HUB_OFFLINE": "1", "JPY_PARENT_PID": "", RECORD_ENV: "1"}


def kernel_manager(ipc: Path, limits: Limits, package: Path, sandbox: bool, source: Path | None = None) -> Any:
    """An AsyncKernelManager whose kernel runs in the sandbox and talks over unix sockets in ``ipc``; ``source``
    is bound over the package (``bwrap_args``)."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    uid = 200000 + os.getpid() if sandbox and os.geteuid() == 0 else None
    inside = "/run/kernel" if sandbox else str(ipc)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", f"{inside}/kernel.json",
            "--HistoryManager.hist_file=:memory:"]
    # no kernel outlives its worker: bwrap --die-with-parent, or without the sandbox setpriv's parent-death signal
    prefix = limits_args(limits, uid) + (bwrap_args(ipc, uid, limits, package, source) if sandbox else
                                         ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else [])

    class SandboxKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return prefix + argv

        def write_connection_file(self, **kwargs: Any) -> None:
            super().write_connection_file(**kwargs)
            info = json.loads(Path(self.connection_file).read_text())
            info["ip"] = f"{inside}/k"
            (ipc / "kernel.json").write_text(json.dumps(info))
            if uid is not None:
                os.chown(ipc / "kernel.json", uid, uid)

    if uid is not None:  # the kernel may create its sockets here; executing closes the folder once it has
        ipc.chmod(0o733)
    km = SandboxKernelManager(transport="ipc", ip=str(ipc / "k"), connection_file=str(ipc / "host.json"))
    km._kernel_spec = KernelSpec(argv=argv, display_name="Python 3 (sandboxed grader)", language="python",
                                 interrupt_mode="message", env={} if sandbox else plain_env())
    km.context.setsockopt(__import__("zmq").MAXMSGSIZE, 64 * 2**20)
    return km


def guard_path(sandbox: bool) -> str:
    """Where the kernel finds the guard: bound read-only in the sandbox, the package's own file without it."""
    return GUARD_INSIDE if sandbox else str(GUARD)
