"""The ``course`` command. Each subcommand is one entry of ``COMMANDS``: (help, add_arguments, run).

To add one, write ``_name_args(parser)`` and ``_name(args) -> int`` and register them in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _grade_args(parser: argparse.ArgumentParser) -> None:
    from induction_course.grading import Limits

    d = Limits()
    parser.add_argument("submissions", type=Path, help="folder of submissions: nbgrader's submitted/<student>/"
                        "<assignment>/, or <student>.ipynb files, or <student>/<notebook>.ipynb")
    parser.add_argument("--assignment", help="grade only this notebook (e.g. 01_attention); required to name "
                        "flat <student>.ipynb files whose content is ambiguous")
    parser.add_argument("--out", type=Path,
                        help="gradebook, grades.csv, autograded/ and feedback/ (default: autograder/)")
    parser.add_argument("--jobs", type=int, help="parallel workers (default: one per core)")
    parser.add_argument("--cell-timeout", type=int, default=d.cell_timeout,
                        help="seconds per cell (default %(default)s)")
    parser.add_argument("--timeout", type=int, default=d.timeout, help="seconds per submission (default %(default)s)")
    parser.add_argument("--memory", type=int, default=d.memory_mb,
                        help="MB of address space per kernel (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run kernels without bubblewrap: only for trusted notebooks (e.g. CI on your own)")


def _grade(args: argparse.Namespace) -> int:
    from induction_course.grading import GradingError, Limits, grade

    limits = Limits(cell_timeout=args.cell_timeout, timeout=args.timeout, memory_mb=args.memory)
    try:
        grade(args.submissions, args.assignment, args.out, args.jobs, limits, args.force,
              sandbox=not args.unsafe_no_sandbox)
    except GradingError as e:
        print(f"course grade: {e}", file=sys.stderr)
        return 2
    return 0


def _no_args(parser: argparse.ArgumentParser) -> None:
    """For subcommands that take no arguments."""


def _build(args: argparse.Namespace) -> int:
    from induction_course.notebooks import ROOT, build_all

    for path in build_all():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _bench_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="notebooks to measure (default: all)")
    parser.add_argument("--grading", action="store_true", help="also time grading 100 copies, serial vs parallel")


def _bench(args: argparse.Namespace) -> int:
    from induction_course import benchmark

    benchmark.run(args.notebooks or None)
    if args.grading:
        from induction_course.grading import bench

        bench()
    return 0


def _lock(args: argparse.Namespace) -> int:
    from induction_course.environment import ENVIRONMENT, LOCK, write_lock

    write_lock()
    print(f"wrote {LOCK.name} and {ENVIRONMENT.name} from the running environment")
    return 0


COMMANDS: dict[str, Command] = {
    "build": ("regenerate solutions/*.ipynb from the masters and course/ with nbgrader", _no_args, _build),
    "bench": ("print execution seconds, peak memory and autograde seconds per notebook", _bench_args, _bench),
    "lock": ("write requirements.lock and environment.yml from the running environment", _no_args, _lock),
    "grade": ("autograde a folder of submissions in sandboxes; write grades.csv and feedback", _grade_args, _grade),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description="Induction Heads from Scratch: course tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
