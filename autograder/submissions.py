"""Finding submissions: every file under SUBMISSIONS becomes a submission or a skipped line, with why.

The layouts (see autograder/README.md): ``<student>.ipynb``; ``<student>/<notebook>.ipynb``;
nbgrader's ``<student>/<assignment>/<notebook>.ipynb``; and deeper folders inside a student's folder
(``<student>/a/b/<notebook>.ipynb``, e.g. an unpacked zip), graded as that student's with a note, down
to ``MAX_DEPTH`` path parts. A symbolic link is never followed: it becomes a failed row. Hidden files
and folders, Jupyter checkpoints, archive and cache folders, files that are not notebooks and
duplicates are skipped, each with its reason. Student ids keep what tells names apart (Unicode
letters); names that still collide get distinct ids and a note.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from autograder import files
from autograder.restoring import normalise
from autograder.settings import MAX_NOTEBOOK_BYTES, Skipped, Submission

MAX_DEPTH = 6  # path parts below SUBMISSIONS, the file included: <student>/ + 4 folders + the notebook
MAX_ID = 80  # characters of a student id (the rest is replaced by a digest)
_IGNORED = {".ipynb_checkpoints": "Jupyter's autosave checkpoints", "__MACOSX": "macOS archive metadata",
            "__pycache__": "Python's cache"}

Known = dict[str, tuple[set[str], set[str]]]  # notebook -> (grade ids, cell texts) that identify it


@dataclass(frozen=True)
class Found:
    """A candidate notebook: its path parts under SUBMISSIONS, and whether it is a link."""

    parts: tuple[str, ...]
    mtime: float
    link: bool = False

    @property
    def rel(self) -> str:
        return "/".join(self.parts)

    @property
    def raw_student(self) -> str:
        return Path(self.parts[0]).stem if len(self.parts) == 1 else self.parts[0]


# ---------------------------------------------------------------------------------------- student ids
def safe_name(name: str) -> str:
    """A name made safe for a path part: letters, marks and digits of any script kept, the rest '_'."""
    name = unicodedata.normalize("NFC", name)
    kept = "".join(ch if unicodedata.category(ch)[0] in "LMN" or ch in "_.@+-" else "_" for ch in name)
    kept = re.sub(r"_+", "_", kept).strip("._-") or "unnamed"
    if len(kept) > MAX_ID:
        kept = kept[: MAX_ID - 7] + "-" + _digest(name)
    return kept


def _digest(name: str) -> str:
    return hashlib.sha256(unicodedata.normalize("NFC", name).encode("utf-8", "surrogatepass")).hexdigest()[:6]


def student_ids(names: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Raw folder or file names -> distinct student ids, and a note for each name whose id was changed.

    Names are compared in Unicode's composed form (a name typed on macOS is the same name). A name
    keeps its safe form unless another name has the same safe form (ignoring case, so ids stay
    distinct on any file system); then every such name that is not exactly its own safe form gets a
    digest of the name appended, and if that still leaves several, all of them do.
    """
    canonical = {name: unicodedata.normalize("NFC", name) for name in names}
    groups: dict[str, list[str]] = {}
    for name in sorted(set(canonical.values())):
        groups.setdefault(safe_name(name).casefold(), []).append(name)
    ids, notes = {}, {}
    for group in groups.values():
        keep = [n for n in group if safe_name(n) == n]
        keep = group if len(group) == 1 else keep if len(keep) == 1 else []
        for name in group:
            ids[name] = safe_name(name) if name in keep else f"{safe_name(name)[:MAX_ID - 7]}-{_digest(name)}"
            if len(group) > 1:
                others = ", ".join(repr(n) for n in group if n != name)
                notes[name] = f"the name {name!r} is the same as {others} once made safe for paths; graded as {ids[name]}"
    return ({raw: ids[name] for raw, name in canonical.items()},
            {raw: notes[name] for raw, name in canonical.items() if name in notes})


# ---------------------------------------------------------------------------------------- the walk
def _count(root: Path, parts: list[str]) -> int:
    """Files in a folder that is skipped whole (links and special files included, nothing followed)."""
    total = 0
    try:
        fd = files.open_dir(root, parts)
    except OSError:
        return 0
    try:
        names = os.listdir(fd)
        for name in names:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            total += _count(root, parts + [name]) if stat.S_ISDIR(mode) and len(parts) < 64 else 1
    finally:
        os.close(fd)
    return total


def _walk(root: Path, parts: list[str], out_id: tuple[int, int] | None) -> Iterator[Found | Skipped]:
    """Candidate notebooks and skipped entries in ``root/parts``, depth first, sorted, no link followed."""
    rel = "/".join(parts)
    try:
        fd = files.open_dir(root, parts)
    except OSError as e:
        yield Skipped(rel, "", f"the folder could not be read: {e}")
        return
    try:
        entries = [(name, os.stat(name, dir_fd=fd, follow_symlinks=False)) for name in sorted(os.listdir(fd))]
    finally:
        os.close(fd)
    stamps = {"timestamp.txt", "submission_secret.txt"} if any(n.lower().endswith(".ipynb") for n, _ in entries) and parts else set()
    for name, info in entries:
        here = parts + [name]
        shown = "/".join(here)
        if stat.S_ISDIR(info.st_mode):
            ignored = _IGNORED.get(name) or ("a hidden folder" if name.startswith(".") else None)
            if (info.st_dev, info.st_ino) == out_id:
                ignored = "the grader's own output folder (--out)"
            elif ignored is None and len(here) >= MAX_DEPTH:
                ignored = f"unexpected depth: the grader looks {MAX_DEPTH - 1} folders deep"
            if ignored:
                yield Skipped(shown + "/", "", f"{ignored} ({_count(root, here)} file(s))")
            else:
                yield from _walk(root, here, out_id)
        elif stat.S_ISLNK(info.st_mode):
            yield Found(tuple(here), info.st_mtime, link=True) if not name.startswith(".") else Skipped(
                shown, "", "a hidden symbolic link (not followed)")
        elif name in stamps:
            continue  # nbgrader's receipts (submission time, secret), read with the notebook beside them
        elif name.startswith("."):
            yield Skipped(shown, "", "a hidden file")
        elif not stat.S_ISREG(info.st_mode):
            yield Skipped(shown, "", "not a regular file")
        elif not name.lower().endswith(".ipynb"):
            yield Skipped(shown, "", f"not a notebook ({Path(name).suffix or 'no extension'})")
        else:
            yield Found(tuple(here), info.st_mtime)


# ---------------------------------------------------------------------------------------- which notebook
def grade_ids(nb: dict) -> set[str]:
    cells = nb.get("cells") or [c for ws in nb.get("worksheets", []) if isinstance(ws, dict)
                                for c in ws.get("cells", [])]
    found = set()
    for c in cells if isinstance(cells, list) else []:
        meta = c.get("metadata") if isinstance(c, dict) else None
        nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
        if isinstance(nbgrader, dict) and isinstance(nbgrader.get("grade_id"), str):
            found.add(nbgrader["grade_id"])
    return found


def cell_texts(nb: dict) -> set[str]:
    cells = nb.get("cells") or [c for ws in nb.get("worksheets", []) if isinstance(ws, dict)
                                for c in ws.get("cells", [])]
    texts = set()
    for c in cells if isinstance(cells, list) else []:
        source = c.get("source", "") if isinstance(c, dict) else ""
        source = "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else str(source)
        if len(source.strip()) > 40:
            texts.add(normalise(source))
    return texts


def catalog(notebooks: dict[str, Path]) -> Known:
    """For each assignment, the grade ids and cell texts that identify its notebook."""
    result = {}
    for name, path in notebooks.items():
        nb = json.loads(path.read_text())
        result[name] = (grade_ids(nb), cell_texts(nb))
    return result


def _by_content(root: Path, rel: str, known: Known) -> str:
    try:
        nb = json.loads(files.read_bytes(root, rel, MAX_NOTEBOOK_BYTES).decode("utf-8-sig"))
        ids, texts = grade_ids(nb), cell_texts(nb)
    except (OSError, ValueError, RecursionError, AttributeError, TypeError):
        return ""
    scores = {name: 10 * len(ids & k_ids) + len(texts & k_texts) for name, (k_ids, k_texts) in known.items()}
    best = max(scores, key=lambda n: scores[n], default="")
    return best if best and scores[best] > 0 else ""


def identify(root: Path, found: Found, known: Known, assignment: str | None) -> tuple[str, str]:
    """Which notebook a file is, and a note: by its name, its folders, its content, then --assignment."""
    name, folders = found.parts[-1], found.parts[1:-1]
    stem = Path(name).stem
    if stem in known:
        return stem, ""
    renamed = f"the notebook was renamed to {name}"
    folder = next((f for f in reversed(folders) if f in known), None)
    if folder:
        return folder, renamed
    by_content = "" if found.link else _by_content(root, found.rel, known)
    if by_content and len(found.parts) == 1:  # <student>.ipynb: the name is the student's, not the notebook's
        return by_content, "" if by_content == assignment else f"{name} was identified as {by_content} by its content"
    if by_content:
        return by_content, f"{renamed}; identified as {by_content} by its content"
    if assignment:
        return assignment, renamed if len(found.parts) > 1 else ""
    similar = [n for n in known if n in stem or stem.startswith(n[:3])]
    if len(similar) == 1:
        return similar[0], renamed
    if len(known) == 1:
        return next(iter(known)), renamed
    return "", f"could not tell which notebook {name} is (name or content)"


# ---------------------------------------------------------------------------------------- one per notebook
def _rank(s: Submission, found: Found) -> tuple:
    """Higher is preferred: a real file, where a layout puts it, exactly named, newest."""
    return (not found.link, len(found.parts) <= 3, Path(found.parts[-1]).stem == s.notebook, found.mtime, s.rel)


def _dedupe(candidates: list[tuple[Submission, Found]]) -> tuple[list[Submission], list[Skipped]]:
    groups: dict[str, list[tuple[Submission, Found]]] = {}
    for s, f in candidates:
        groups.setdefault(s.key, []).append((s, f))
    chosen, skipped = [], []
    for group in groups.values():
        group.sort(key=lambda sf: _rank(*sf), reverse=True)
        best = group[0][0]
        for other, found in group[1:]:
            link = " (a symbolic link, not followed)" if found.link else ""
            skipped.append(Skipped(other.rel, other.student,
                                   f"duplicate{link}: {best.rel} is graded as {best.student}'s {best.notebook}"))
        if len(group) > 1:
            best = replace(best, note=_join(best.note, f"{len(group) - 1} other file(s) for this notebook "
                                                       "skipped (see skipped.csv)"))
        chosen.append(best)
    return sorted(chosen, key=lambda s: s.key), skipped


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _timestamp(root: Path, parts: tuple[str, ...]) -> str | None:
    """nbgrader's timestamp.txt beside a notebook, when it holds a date nbgrader can read."""
    from nbgrader.utils import parse_utc

    if len(parts) < 2:
        return None
    try:
        text = files.read_bytes(root, "/".join(parts[:-1] + ("timestamp.txt",)), 200).decode("utf-8", "replace")
        parse_utc(text.strip())
    except Exception:  # unreadable, or not a date nbgrader can parse: the submission has no timestamp
        return None
    return text.strip() or None


def find_submissions(root: Path, known: Known, assignment: str | None = None,
                     out: Path | None = None) -> tuple[list[Submission], list[Skipped]]:
    """Every file under ``root``: one submission per (student, notebook), and the skipped list with reasons."""
    out_id = None
    if out is not None and out.is_dir() and not out.is_symlink():
        info = out.stat()
        out_id = (info.st_dev, info.st_ino)
    walked = list(_walk(root, [], out_id))
    found = [f for f in walked if isinstance(f, Found)]
    ids, id_notes = student_ids({f.raw_student for f in found})
    skipped = [replace(s, student=ids.get(s.file.split("/")[0], "")) for s in walked if isinstance(s, Skipped)]
    candidates = []
    for f in found:
        student = ids[f.raw_student]
        notebook, note = identify(root, f, known, assignment)
        if assignment and notebook not in (assignment, ""):
            skipped.append(Skipped(f.rel, student, f"another notebook ({notebook}); --assignment {assignment}"))
            continue
        nested = f"found in {'/'.join(f.parts[1:-1])}/ inside the student's folder" if len(f.parts) > 3 else ""
        problem = f"{f.rel} is a symbolic link; the grader does not follow links: submit the file itself" \
            if f.link else ""
        candidates.append((Submission(student, root, f.rel, notebook, _join(note, nested, id_notes.get(f.raw_student, "")),
                                      problem, None if f.link else _timestamp(root, f.parts)), f))
    chosen, duplicates = _dedupe(candidates)
    return chosen, sorted(skipped + duplicates, key=lambda s: s.file)
