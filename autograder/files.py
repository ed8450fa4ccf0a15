"""The file system as the trusted side touches it: SUBMISSIONS is hostile, --out is the grader's own.

Every path below SUBMISSIONS or --out is walked one component at a time, each opened relative to its
parent's descriptor with ``O_NOFOLLOW``: a symbolic link, to a file or a folder, at any depth, is never
followed, so nothing outside SUBMISSIONS is read and nothing outside --out is written. Files are
written under a temporary name and renamed into place, which replaces a planted link instead of
writing through it. The two roots themselves are the instructor's choice; --out must not be a link.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path that the grader will not open: a symbolic link, not a regular file, or too large."""


class OutBusy(OSError):
    """--out is locked by another running grader."""


class DiskFull(OSError):
    """No space (or quota) left under --out; nothing half-written stays behind."""


def _parts(rel: str | Path) -> list[str]:
    parts = Path(rel).parts
    if not parts or any(p in ("", ".", "..") or "/" in p for p in parts) or Path(rel).is_absolute():
        raise UnsafePath(f"{rel}: not a plain relative path")
    return list(parts)


def _refuse(dir_fd: int, name: str, shown: str, error: OSError) -> UnsafePath:
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode) or error.errno == errno.ELOOP:
        return UnsafePath(f"{shown} is a symbolic link; the grader does not follow links")
    return UnsafePath(f"{shown}: {error.strerror or error}")


def open_dir(root: Path, parts: list[str], create: bool = False) -> int:
    """A descriptor of ``root/parts...``, no link followed below ``root`` (made when ``create``). Close it."""
    fd = os.open(root, _DIR_FLAGS if create else os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                raise _refuse(fd, part, "/".join(parts[: i + 1]), e) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(root: Path, rel: str | Path, limit: int | None = None) -> BinaryIO:
    """``root/rel`` opened for reading: a regular file reached without following any link below ``root``."""
    parts = _parts(rel)
    dir_fd = open_dir(root, parts[:-1])
    try:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as e:
            raise _refuse(dir_fd, parts[-1], str(rel), e) from None
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafePath(f"{rel} is not a regular file")
    if limit is not None and info.st_size > limit:
        os.close(fd)
        raise UnsafePath(f"the file is {info.st_size // 2**20} MB; notebooks over {limit // 2**20} MB are not "
                         "graded (clear the outputs and resubmit)")
    return os.fdopen(fd, "rb")


def read_bytes(root: Path, rel: str | Path, limit: int | None = None) -> bytes:
    """The bytes of ``root/rel`` (see :func:`open_file`); at most ``limit`` of them, else UnsafePath."""
    with open_file(root, rel, limit) as f:
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise UnsafePath(f"the file grew past {limit // 2**20} MB while it was read")
    return data


def sha256(root: Path, rel: str | Path) -> str:
    """SHA-256 of ``root/rel``, read without following links."""
    h = hashlib.sha256()
    with open_file(root, rel) as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def write_bytes(out: Path, rel: str | Path, data: bytes) -> Path:
    """Write ``out/rel`` atomically, creating folders; a link at any level below ``out`` is an error."""
    parts = _parts(rel)
    dir_fd = open_dir(out, parts[:-1], create=True)
    tmp = f".{parts[-1]}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename makes it the file: a crash leaves old or new
            os.replace(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.fsync(dir_fd)  # the rename itself survives a power cut
        except BaseException as e:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"the disk under {out} is full (or over quota) writing {'/'.join(parts)}: free some "
                               "space and run course grade again; finished rows are kept") from None
            raise
    finally:
        os.close(dir_fd)
    return out.joinpath(*parts)


def append_line(out: Path, rel: str | Path, line: str) -> None:
    """Append ``line`` and a newline to ``out/rel`` (no link followed) and fsync it."""
    parts = _parts(rel)
    dir_fd = open_dir(out, parts[:-1], create=True)
    try:
        fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"the disk under {out} is full (or over quota) writing {rel}: free some space and run "
                           "course grade again; finished rows are kept") from None
        raise
    finally:
        os.close(fd)


def write_text(out: Path, rel: str | Path, text: str) -> Path:
    return write_bytes(out, rel, text.encode("utf-8"))


def make_out(out: Path, *folders: str) -> None:
    """Create --out (and ``folders`` under it); refuse a --out, or a folder or file in it, that is a link."""
    if out.is_symlink():
        raise UnsafePath(f"--out {out} is a symbolic link; give the real folder")
    out.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        os.close(open_dir(out, _parts(folder), create=True))


#: Locks this process holds, by --out: a call that raised keeps its lock, and the next call reuses it.
_LOCKS: dict[Path, int] = {}
LOCK = ".grading/lock"


def lock_out(out: Path) -> None:
    """Hold ``out/.grading/lock`` (``flock``) until :func:`unlock_out`; another run on ``out`` gets OutBusy.

    The kernel releases the lock when the process dies, SIGKILL included: a stale lock file never blocks.
    """
    if out in _LOCKS:
        return
    dir_fd = open_dir(out, _parts(LOCK)[:-1], create=True)
    try:
        fd = os.open(_parts(LOCK)[-1], os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise OutBusy(f"another course grade is already grading into {out} ({holder}); wait for it to finish, "
                      "or give this run another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
    _LOCKS[out] = fd


def unlock_out(out: Path) -> None:
    fd = _LOCKS.pop(out, None)
    if fd is not None:
        os.close(fd)
