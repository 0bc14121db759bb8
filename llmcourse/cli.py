"""The ``llmcourse`` command: the instructor's and the maintainer's entry points.

    llmcourse assignments [ps1 ...]   regenerate assignments/psN from solutions/psN
    llmcourse grade ps1 [--force] [--jobs N]   autograde submitted/*/ps1, write feedback/, export grades.csv
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
    grade.add_argument("--force", action="store_true", help="regrade every submission, even those unchanged since the last run")
    grade.add_argument("--jobs", "-j", type=int, default=None, help="submissions graded at once (default: usable cores)")
    grade.add_argument("--db-url", default=None, help="gradebook SQLAlchemy URL (default: grading.toml's, else sqlite gradebook.db)")
    grade.add_argument("--config", type=Path, default=None, help="limits file (default: grading.toml in the course folder)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
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
        from llmcourse.autograder import CONFIG_FILE, GradingLimits

        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
        if args.config is not None and not args.config.is_file():
            raise ValueError(f"no limits file at {args.config}")
        limits = GradingLimits.from_file(args.config or root / CONFIG_FILE)
        report = assignments.grade(root, args.assignment, args.output, force=args.force, jobs=args.jobs,
                                   limits=limits, db_url=args.db_url, progress=not args.quiet)
        print(report.summary())
        return 1 if report.failed else 0
    except (ValueError, RuntimeError) as exc:
        print(f"llmcourse: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
