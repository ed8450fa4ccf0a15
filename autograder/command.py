"""The command line: ``course grade SUBMISSIONS`` and ``python -m autograder SUBMISSIONS`` (the same options)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.settings import Limits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``course grade`` (defaults from :class:`Limits`)."""
    d = Limits()
    parser.add_argument("submissions", type=Path, help="folder of submissions: nbgrader's submitted/<student>/"
                        "<assignment>/, or <student>.ipynb files, or <student>/<notebook>.ipynb")
    parser.add_argument("--assignment", help="grade only this notebook (e.g. 01_attention); required to name "
                        "flat <student>.ipynb files whose content is ambiguous")
    parser.add_argument("--out", type=Path,
                        help="gradebook, grades.csv, skipped.csv, autograded/ and feedback/ (default: autograder/)")
    parser.add_argument("--jobs", type=int, help="parallel workers (default: one per core)")
    parser.add_argument("--cell-timeout", type=int, default=d.cell_timeout,
                        help="seconds per cell (default %(default)s)")
    parser.add_argument("--timeout", type=int, default=d.timeout, help="seconds per submission (default %(default)s)")
    parser.add_argument("--memory", type=int, default=d.memory_mb,
                        help="MB of address space per kernel (default %(default)s)")
    parser.add_argument("--cluster", metavar="ADDRESS", help="grade on a Dask scheduler (tcp://host:8786), or on a "
                        "LocalCluster of --jobs workers (local); see autograder/README.md")
    parser.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run kernels without bubblewrap: only for trusted notebooks (e.g. CI on your own)")


def run(args: argparse.Namespace) -> int:
    """Grade as the options say; 0 when the batch ran, 2 when it could not start."""
    from autograder.batch import grade
    from autograder.files import DiskFull
    from autograder.settings import GradingError

    limits = Limits(cell_timeout=args.cell_timeout, timeout=args.timeout, memory_mb=args.memory)
    try:
        grade(args.submissions, args.assignment, args.out, args.jobs, limits, args.force,
              sandbox=not args.unsafe_no_sandbox, cluster=args.cluster)
    except (GradingError, DiskFull) as e:
        print(f"course grade: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder",
                                     description="Autograde a folder of submissions in sandboxes.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
