"""Progress: live in a notebook, one final line once saved or exported, plain text in a terminal, never stderr."""
from __future__ import annotations

import os
import pty
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from induction_course.progress import Progress

LOOP = """\
import time
from induction_course.progress import Progress
with Progress(total=300, label="training", min_interval=0.01) as bar:
    for step in range(300):
        time.sleep(0.002)
        bar.update(1, loss=f"{3 - step / 100:.2f}", induction=f"{step / 300:.2f}")
"""


class _CountingClient(NotebookClient):
    """Counts the kernel's messages by type, to prove the display was redrawn while the cell ran."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts: dict[str, int] = {}

    def process_message(self, msg, cell, cell_index):
        self.counts[msg["msg_type"]] = self.counts.get(msg["msg_type"], 0) + 1
        return super().process_message(msg, cell, cell_index)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(LOOP),
        nbformat.v4.new_code_cell(LOOP.replace('label="training"', 'label="quiet", enabled=False')),
        nbformat.v4.new_code_cell("with Progress(total=10, label='broken') as bar:\n"
                                  "    bar.update(3)\n    raise KeyboardInterrupt"),
    ])
    client = _CountingClient(nb, timeout=120, startup_timeout=120, kernel_name="python3", allow_errors=True,
                             resources={"metadata": {"path": str(tmp_path_factory.mktemp("progress"))}})
    client.execute()
    return nb, client.counts


def _line(output) -> str:
    return output["data"]["text/plain"]


def test_a_notebook_saves_one_final_line_after_live_updates(executed):
    nb, counts = executed
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    line = _line(outputs[0])
    assert "\n" not in line and line.startswith("training 100% |████████████████████| 300/300")
    assert "loss 0.01" in line and "induction 1.00" in line
    # It was live: the one display was redrawn many times while the cell ran, in place.
    assert counts.get("update_display_data", 0) >= 10, counts


def test_nothing_goes_to_stderr_and_disabled_shows_nothing(executed):
    nb, _ = executed
    assert not [o for c in nb.cells for o in c.outputs if o.output_type == "stream"]
    assert nb.cells[1].outputs == []


def test_an_interrupted_run_says_where_it_stopped(executed):
    nb, _ = executed
    shown = [o for o in nb.cells[2].outputs if o.output_type == "display_data"]
    assert len(shown) == 1 and _line(shown[0]).startswith("broken  30%") and _line(shown[0]).endswith("(stopped)")
    assert nb.cells[2].outputs[-1].output_type == "error"


def test_the_html_export_shows_one_line(executed):
    nb, _ = executed
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert html.count("training 100%") == 1 and "training   0%" not in html


def _run(code: str, tty: bool) -> tuple[str, str]:
    """Run ``code`` in a fresh interpreter; return (stdout, stderr). stdout is a terminal when ``tty``."""
    args = [sys.executable, "-c", code]
    if not tty:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        return proc.stdout, proc.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=follower, stderr=subprocess.PIPE, text=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    stderr = proc.communicate(timeout=120)[1]
    return b"".join(chunks).decode(), stderr


@pytest.mark.parametrize("enabled", [True, False])
def test_a_log_gets_only_the_final_line(enabled):
    out, err = _run(LOOP.replace("min_interval=0.01", f"min_interval=0.01, enabled={enabled}"), tty=False)
    assert err == ""
    if enabled:
        assert out.count("\n") == 1 and out.startswith("training 100%") and "\r" not in out, out
    else:
        assert out == ""


def test_a_terminal_redraws_one_line_in_place():
    out, err = _run(LOOP, tty=True)
    assert err == ""
    redraws = out.split("\r")
    assert len(redraws) >= 10 and out.count("\n") == 1, out  # a pty turns "\n" into "\r\n"
    assert redraws[-2].startswith("training 100%") and redraws[-1] == "\n"


def test_updates_between_redraws_only_count(monkeypatch, capsys):
    """Between redraws ``update`` formats and draws nothing: 200,000 updates inside one ``min_interval`` draw the
    line twice (on entering and on leaving), and the final line holds the last count and field."""
    draws, lines = [], []
    real_draw, real_line = Progress._draw, Progress.line
    monkeypatch.setattr(Progress, "_draw", lambda self, final, stopped=False: draws.append(final)
                        or real_draw(self, final, stopped))
    monkeypatch.setattr(Progress, "line", lambda self, stopped=False: lines.append(1) or real_line(self, stopped))
    with Progress(total=200_000, label="cheap", min_interval=60) as bar:
        for step in range(200_000):
            bar.update(1, loss=f"{step % 7}")
    assert bar.n == 200_000
    assert draws == [False, True] and len(lines) == 2, (draws[:5], len(draws))
    out = capsys.readouterr().out  # not a terminal: only the final line is printed
    assert out.startswith("cheap 100% |") and out.endswith(f"loss {199_999 % 7}\n"), out


def test_a_negative_total_is_refused():
    with pytest.raises(ValueError, match="total must be 0 or more"):
        Progress(total=-1)
