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
    """The grader's options; the grader is its own package (``autograder``), loaded only here."""
    try:
        from autograder.command import add_arguments
    except ImportError:  # an install without the grader (a student's): `course grade` says so when run
        parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
        return
    add_arguments(parser)


def _grade(args: argparse.Namespace) -> int:
    try:
        from autograder.command import run
    except ImportError as e:
        print(f"course grade: the grader package is not installed here ({e}); use a clone of the repository",
              file=sys.stderr)
        return 2
    return run(args)


def _no_args(parser: argparse.ArgumentParser) -> None:
    """For subcommands that take no arguments."""


def _build(args: argparse.Namespace) -> int:
    from course_tools.notebooks import ROOT, build_all

    for path in build_all():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _bench_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="notebooks to measure (default: all)")
    parser.add_argument("--threads", action="store_true", help="also compare torch thread options, quiet and loaded")
    parser.add_argument("--grading", action="store_true", help="also time grading 100 copies, serial vs parallel")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="another checkout of the course (e.g. `git worktree add DIR COMMIT`): time its "
                             "notebooks quiet too, on this machine")


def _bench(args: argparse.Namespace) -> int:
    from course_tools import benchmark

    benchmark.run(args.notebooks or None, threads=args.threads, baseline=args.baseline)
    if args.grading:
        from autograder.bench import bench

        bench()
    return 0


def _lock(args: argparse.Namespace) -> int:
    from course_tools.environment import ENVIRONMENT, LOCK, write_lock

    write_lock()
    print(f"wrote {LOCK.name} and {ENVIRONMENT.name} from the running environment")
    return 0


COMMANDS: dict[str, Command] = {
    "build": ("regenerate solutions/*.ipynb from the masters and course/ with nbgrader", _no_args, _build),
    "bench": ("print the budgets measured: notebooks quiet and loaded, training, named mistakes", _bench_args, _bench),
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
