"""What a check hands from the student's interpreter to whoever decides: plain data only.

A check runs in two halves (see :mod:`induction_course.checks.core`): *collect* calls the student's
code and returns a **record**, and *judge* decides from the record alone. A record is nested
``dict`` (string keys) / ``list`` / ``tuple`` of ``None``, ``bool``, ``int``, ``float``, ``str``,
plain ``torch.Tensor``, :class:`Opaque` (an object that is not data, described by its type) and
:class:`Raised` (the student's code raised).

At home both halves run in the notebook. Inside ``course grade``'s sandbox (environment variable
``INDUCTION_COURSE_RECORD=1``) the check only *emits* the record as a display output of type
:data:`MIME`: JSON plus a safetensors blob, formats that cannot run code when read. The grader,
outside the sandbox, decodes it with :func:`decode` and judges it there.
"""
from __future__ import annotations

import base64
import json
import math
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

MIME = "application/vnd.induction-course.record+json"
RECORD_ENV = "INDUCTION_COURSE_RECORD"
MAX_TENSOR_ELEMENTS = 4_000_000  # a bigger output is described, not copied (an answer is never that big)
_PACKAGE = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Opaque:
    """An object that is not data (a function, an Axes, a tensor subclass...): only its type travels."""

    type_name: str
    detail: str = ""


@dataclass(frozen=True)
class Raised:
    """The student's code raised: the exception's type, message and the student's own frames."""

    type_name: str
    message: str
    traceback: str = ""


def recording() -> bool:
    """True inside ``course grade``'s sandbox, where checks emit records instead of judging."""
    return os.environ.get(RECORD_ENV) == "1"


def student_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without the check engine's own frames (at most 12 frames)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_PACKAGE)]
    lines = traceback.format_list(frames[-12:]) + traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def capture(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or a :class:`Raised` if it raises an ``Exception``."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # the student's mistake becomes data; the judge words it
        return Raised(type(exc).__name__, str(exc)[:2000], student_traceback(exc))


def as_data(value: Any, depth: int = 0) -> Any:
    """``value`` as record data: tensors detached, anything that is not data an :class:`Opaque`."""
    if depth > 8:
        return Opaque(type(value).__name__, "nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str, Opaque, Raised)):
        return value
    if type(value) is torch.Tensor:  # noqa: E721  (a subclass could redefine what it reports)
        if value.numel() > MAX_TENSOR_ELEMENTS:
            return Opaque("Tensor", f"of shape {list(value.shape)}, too large to record")
        if value.device.type not in ("cpu", "cuda", "mps"):
            return Opaque("Tensor", f"on device '{value.device}', which holds no values")
        return value.detach()
    if isinstance(value, (list, tuple)) and len(value) <= 10_000:
        items = [as_data(v, depth + 1) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict) and len(value) <= 10_000 and all(isinstance(k, str) for k in value):
        return {k: as_data(v, depth + 1) for k, v in value.items()}
    return Opaque(type(value).__name__, _short_repr(value))


def _short_repr(value: Any) -> str:
    try:
        return repr(value)[:200]
    except Exception:  # a student's object whose repr fails still gets described
        return ""


# ---------------------------------------------------------------- encoding (trusted to read)
def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        # A copy of its own: an output that is an input (or a view of one), an expanded or transposed view, a
        # conjugate: each travels as plain values, and what was shared is in the record's own words ("aliases").
        plain = value.detach().cpu()
        plain = plain.resolve_conj().resolve_neg() if not plain.is_sparse else plain.to_dense()
        tensors[key] = plain.clone(memory_format=torch.contiguous_format)
        return {"tensor": key, "device": str(value.device)}
    if isinstance(value, Opaque):
        return {"opaque": value.type_name, "detail": value.detail}
    if isinstance(value, Raised):
        return {"raised": value.type_name, "message": value.message, "traceback": value.traceback}
    if isinstance(value, (list, tuple)):
        return {"tuple" if isinstance(value, tuple) else "list": [_encode(v, tensors) for v in value]}
    if isinstance(value, dict):
        return {"dict": {k: _encode(v, tensors) for k, v in value.items()}}
    return _encode(as_data(value), tensors)


def encode(check: str, record: Any) -> dict[str, str]:
    """The MIME bundle's payload for one check: JSON structure plus base64 safetensors. It carries no parameters:
    the grader reads them from the trusted master, never from the kernel."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(as_data(record), tensors)
    blob = save(tensors) if tensors else b""
    return {"check": check, "record": json.dumps(structure),
            "tensors": base64.b64encode(blob).decode("ascii")}


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) not in (1, 2, 3):
        raise ValueError("malformed record")
    if "float" in node:
        if node["float"] not in ("nan", "inf", "-inf"):
            _bad()
        return float(node["float"])
    if "tensor" in node:
        return tensors[str(node["tensor"])]  # the grader runs on the CPU, as the sandbox did
    if "opaque" in node:
        return Opaque(str(node["opaque"]), str(node.get("detail", "")))
    if "raised" in node:
        return Raised(str(node["raised"]), str(node.get("message", "")), str(node.get("traceback", "")))
    if "list" in node or "tuple" in node:
        items = node.get("list", node.get("tuple"))
        if not isinstance(items, list):
            _bad()
        decoded = [_decode(v, tensors) for v in items]
        return tuple(decoded) if "tuple" in node else decoded
    if "dict" in node and isinstance(node["dict"], dict):
        return {str(k): _decode(v, tensors) for k, v in node["dict"].items()}
    return _bad()


def _bad() -> Any:
    raise ValueError("malformed record")


def decode(payload: dict[str, Any], max_bytes: int = 64 << 20) -> tuple[str, Any]:
    """(check name, record) from a payload written by :func:`encode`; raises ValueError if malformed."""
    try:
        return _decode_payload(payload, max_bytes)
    except Exception as exc:  # JSON, base64, safetensors or structure: all mean the same to the grader
        raise ValueError(f"malformed record ({type(exc).__name__})") from None


def _decode_payload(payload: dict[str, Any], max_bytes: int) -> tuple[str, Any]:
    from safetensors.torch import load

    if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in
                                                ("check", "record", "tensors")):
        raise ValueError("malformed record")
    if sum(len(payload[k]) for k in ("record", "tensors")) > max_bytes:
        raise ValueError("record too large")
    blob = base64.b64decode(payload["tensors"], validate=True)
    tensors = load(blob) if blob else {}
    return payload["check"], _decode(json.loads(payload["record"]), tensors)


def emit(check: str, record: Any) -> None:
    """Hand ``record`` to the grader as a display output, with one line that says so."""
    from IPython.display import display

    display({MIME: encode(check, record),
             "text/plain": f"[{check}: your answers were recorded; the grader checks them outside this notebook]"},
            raw=True)
