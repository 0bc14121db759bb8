"""The ``llmcourse`` command: the instructor's and the maintainer's entry points.

    llmcourse assignments [ps1 ...]   regenerate assignments/psN from solutions/psN
    llmcourse grade ps1               autograde submitted/*/ps1, write feedback/, export grades.csv
    llmcourse train [options]         train a GPT on Tiny Shakespeare (python -m llmcourse.train; --help lists options)

The Makefile targets (`make assignments`, `make grade ASSIGNMENT=ps1`) call these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmcourse import assignments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmcourse", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="course folder (default: found from the current one)")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("assignments", help="regenerate assignments/psN from solutions/psN with nbgrader")
    gen.add_argument("names", nargs="*", help="assignments to regenerate (default: all)")
    grade = sub.add_parser("grade", help="autograde every submission, write feedback, export grades.csv")
    grade.add_argument("assignment", help="assignment name, e.g. ps1")
    grade.add_argument("--output", type=Path, default=None, help="where to write the grades (default: grades.csv)")
    # The trainer parses its own options (llmcourse train --help), so they are passed through untouched.
    sub.add_parser("train", help="train a GPT on Tiny Shakespeare's characters", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, options = parser.parse_known_args(argv)
    if args.command == "train":
        from llmcourse import train  # imports torch: only for this command

        return train.main(options)
    if options:
        parser.error(f"unrecognized arguments: {' '.join(options)}")
    try:
        root = assignments.find_course_root(args.root)
        if args.command == "assignments":
            for path in assignments.generate_assignments(root, args.names or None):
                print(f"generated {path.relative_to(root)}")
            return 0
        report = assignments.grade(root, args.assignment, args.output)
        print(report.summary())
        return 1 if report.failed else 0
    except (ValueError, RuntimeError) as exc:
        print(f"llmcourse: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
