"""Every "Expected output" in a notebook's prose is what its check cell prints, when the solution notebook runs.

The notebook executed is the session's one autograde of each solution (``executed_solutions``): nothing is run
again. In the prose, ``…`` (or ``...``, ``..``) stands for any text, ``x`` after a digit and a point for any
digits (``head 0.x``), and a line "followed by" more text may go on; everything else must match a printed line
exactly, and the lines in the order given.
"""
from __future__ import annotations

import re

import nbformat
import pytest

from course_tools.notebooks import SOLUTIONS, assignments

MARK = "**Expected output:**"


def expected_lines(markdown: str) -> list[str]:
    """The output lines a markdown cell promises: the code spans of its "Expected output" paragraph that start
    with ✓ or ✗, or the fenced block right after it."""
    after = markdown.split(MARK, 1)[1]
    fence = re.match(r"\s*```[^\n]*\n(.*?)\n```", after, re.S)
    if fence:
        return [line for line in fence.group(1).splitlines() if line.strip()]
    paragraph = after.split("\n\n", 1)[0]
    # "`✓ both answers are right.` followed by a short explanation": the line goes on after the span.
    return [span + ("…" if rest.startswith(" followed by") else "")
            for span, rest in re.findall(r"`([^`]+)`([^`]*)", paragraph) if span.startswith(("✓", "✗"))]


def pattern(line: str) -> re.Pattern:
    """``line`` as a regular expression for one whole printed line."""
    parts = re.split(r"(…|\.\.\.|\.\.|(?<=\d\.)x\b)", line.strip())
    wild = {"…": ".*?", "...": ".*?", "..": ".*?", "x": r"\d+"}
    return re.compile("".join(wild.get(p, re.escape(p)) for p in parts))


def promises(nb: nbformat.NotebookNode) -> list[tuple[int, list[str], list[str]]]:
    """For each "Expected output" cell: its index, the lines it promises, and what the code cells after it
    (up to the next markdown cell: the solution and its check) printed to stdout, line by line."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or MARK not in cell.source:
            continue
        printed = []
        for after in nb.cells[i + 1:]:
            if after.cell_type == "markdown":
                break
            printed += [line for o in after.get("outputs", []) if o.output_type == "stream" and o.name == "stdout"
                        for line in o.text.splitlines()]
        found.append((i, expected_lines(cell.source), printed))
    return found


def unmatched(expected: list[str], printed: list[str]) -> list[str]:
    """The expected lines that no printed line matches, in order (each match must come after the last)."""
    missing, rest = [], list(printed)
    for line in expected:
        regex = pattern(line)
        hit = next((k for k, p in enumerate(rest) if regex.fullmatch(p.strip())), None)
        if hit is None:
            missing.append(line)
        else:
            rest = rest[hit + 1:]
    return missing


def test_every_expected_output_promises_a_line():
    """The parser reads every "Expected output" of every solution notebook (so the test below cannot pass by
    finding nothing to compare)."""
    for name in assignments():
        nb = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
        cells = promises(nb)
        assert cells, f"{name} has no Expected output"
        assert all(lines for _, lines, _ in cells), [nb.cells[i].source for i, lines, _ in cells if not lines]


@pytest.mark.parametrize("expected, printed, missing", [
    (["✓ a matches on 1 input(s) ..."], ["✓ a matches on 1 input(s) (atol=1e-05)."], []),
    (["✓ head 0.x is it (score 0.…)"], ["noise", "✓ head 0.1 is it (score 0.93)"], []),
    (["✓ a matches on 1 input(s) ..."], ["✓ a matches on 2 input(s) (atol=1e-05)."],
     ["✓ a matches on 1 input(s) ..."]),
    (["✓ one", "✓ two"], ["✓ two", "✓ one"], ["✓ two"]),
    (["✓ head 0.x is it"], ["✓ head 0.a is it"], ["✓ head 0.x is it"]),
])
def test_the_comparison_can_fail(expected, printed, missing):
    assert unmatched(expected, printed) == missing


def test_every_expected_output_is_what_the_check_prints(assignment, executed_solutions):
    nb = executed_solutions[assignment]
    cells = promises(nb)
    wrong = {i: (missing, printed) for i, lines, printed in cells if (missing := unmatched(lines, printed))}
    print(f"{assignment}: {sum(len(lines) for _, lines, _ in cells)} expected lines in {len(cells)} cells compared")
    assert not wrong, "\n".join(f"cell {i}: expected {m}, printed {p}" for i, (m, p) in wrong.items())


def test_a_line_followed_by_more_may_go_on():
    promised = expected_lines("**Expected output:** `✓ both answers are right.` followed by a short explanation.\n")
    assert unmatched(promised, ["✓ both answers are right. Because rows sum to 1."]) == []
    assert unmatched(expected_lines("**Expected output:** `✓ both answers are right.`\n"),
                     ["✓ both answers are right. Because rows sum to 1."]) == ["✓ both answers are right."]
