"""A progress line that fits where it is shown: live in a notebook or terminal, one line once saved.

::

    with Progress(total=steps, label="training") as bar:
        for step in range(steps):
            ...
            bar.update(1, loss="2.31", induction="0.05")

- In a Jupyter kernel (JupyterLab, Notebook, Colab, nbclient, nbgrader) it is one ``display_data`` output
  that is updated in place (``display(..., display_id=True)`` then ``update``), so a saved notebook, its HTML
  export and nbgrader's feedback hold a single final line, not one output per redraw.
- In a terminal it redraws one line with ``\\r``; when stdout is not a terminal (a log, a pipe) it prints only
  the final line. It writes to stdout, never to stderr.
- Redraws are throttled (at most one per ``min_interval`` seconds), so ``update`` costs a clock read between
  them; the final state is always drawn. With ``enabled=False`` it shows nothing at all.
"""
from __future__ import annotations

import sys
import time
from types import TracebackType

BAR_WIDTH = 20


def _in_kernel() -> bool:
    """True inside a Jupyter kernel, where outputs are displayed (not in a terminal IPython)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return getattr(shell, "kernel", None) is not None


class _Text:
    """A plain-text output: the text/plain of the display, so every frontend and export shows one line."""

    def __init__(self, line: str):
        self.line = line

    def __repr__(self) -> str:
        return self.line


class Progress:
    """Progress of ``total`` units of work, labelled ``label``, with ``key value`` fields after the count."""

    def __init__(self, total: int, label: str = "", enabled: bool = True, min_interval: float = 0.25):
        if total < 0:
            raise ValueError(f"total must be 0 or more, not {total}")
        self.total, self.label, self.enabled, self.min_interval = total, label, enabled, min_interval
        self.n = 0
        self.fields: dict[str, str] = {}
        self._start = self._last_draw = 0.0
        self._kernel = self._tty = False
        self._handle = None  # the notebook display, once shown
        self._width = 0  # of the line last drawn in a terminal

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if self.enabled:
            self._kernel = _in_kernel()
            self._tty = not self._kernel and sys.stdout.isatty()
            self._draw(final=False)
        return self

    def update(self, n: int = 1, **fields: object) -> None:
        """Advance by ``n``; each field (e.g. ``loss="2.31"``) replaces the value shown under its name."""
        self.n += n
        self.fields.update({k: str(v) for k, v in fields.items()})
        if self.enabled and time.monotonic() - self._last_draw >= self.min_interval:
            self._draw(final=False)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.enabled:
            self._draw(final=True, stopped=exc_type is not None)

    def line(self, stopped: bool = False) -> str:
        """The line shown, e.g. ``training 100% |████████████████████| 200/200 · 3 s · loss 2.31``."""
        done = min(self.n / self.total, 1.0) if self.total else 1.0
        filled = int(done * BAR_WIDTH)
        parts = [f"{self.label} {int(done * 100):3d}% |{'█' * filled}{'·' * (BAR_WIDTH - filled)}| "
                 f"{self.n}/{self.total}", f"{time.monotonic() - self._start:.0f} s"]
        parts += [f"{k} {v}" for k, v in self.fields.items()]
        return " · ".join(parts).lstrip() + (" (stopped)" if stopped else "")

    def _draw(self, final: bool, stopped: bool = False) -> None:
        self._last_draw = time.monotonic()
        text = self.line(stopped)
        if self._kernel:
            if self._handle is None:
                from IPython.display import display

                self._handle = display(_Text(text), display_id=True)
            else:
                self._handle.update(_Text(text))
        elif self._tty:
            sys.stdout.write("\r" + text.ljust(self._width) + ("\n" if final else ""))
            sys.stdout.flush()
            self._width = len(text)
        elif final:
            print(text, flush=True)
