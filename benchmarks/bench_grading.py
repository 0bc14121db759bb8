"""Grading throughput: `llmcourse grade` (forked sandboxes) against plain `nbgrader autograde`, on Assignment 1.

    python benchmarks/bench_grading.py [--n 200] [--jobs 2] [--nbgrader-subset 10] [--json benchmarks/results/grading.json]

Generates ``n`` submissions of ps1 in a temporary course folder (a mix: the solution, the
solution with one of three bugs, the untouched release), grades them all with
:func:`llmcourse.autograder.grade_assignment`, then runs ``nbgrader autograde`` on the first
``--nbgrader-subset`` of them (the per-submission time is extrapolated to ``n`` and labelled so).
Both sides start from a gradebook that already knows the assignment.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import hardware  # noqa: E402

from llmcourse import assignments, autograder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUGS = [
    ("(total + k * vocab_size)", "(total + vocab_size)"),
    ("return float(np.exp(-log_probs.mean()))", "return float(np.exp(log_probs.mean()))"),
    ("counts[tuple(padded[i : i + n])] += 1", "counts[tuple(padded[i : i + n])] = 1"),
]


def make_class(root: Path, n: int) -> dict[str, float]:
    """``n`` submissions (solution, buggy, release) under ``root/submitted``; returns the expected scores."""
    solution = json.loads((root / "solutions" / "ps1" / "ps1.ipynb").read_text())
    release = (root / "assignments" / "ps1" / "ps1.ipynb").read_text()
    expected = {}
    for i in range(n):
        student = f"s{i:04d}"
        folder = root / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        kind = i % 5
        if kind == 4:
            text, score = release, 0.0
        elif kind == 0 or kind == 1:
            text, score = json.dumps(solution), 12.0
        else:
            old, new = BUGS[i % len(BUGS)]
            nb = json.loads(json.dumps(solution))
            cell = next(c for c in nb["cells"] if old in "".join(c["source"]))
            cell["source"] = "".join(cell["source"]).replace(old, new)
            text, score = json.dumps(nb), None
        (folder / "ps1.ipynb").write_text(text)
        expected[student] = score
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--nbgrader-subset", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.n < 1 or args.jobs < 1 or args.nbgrader_subset < 0:
        parser.error("--n and --jobs must be at least 1, --nbgrader-subset at least 0")

    work = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        ours_root = assignments.copy_course(ROOT, work / "ours")
        expected = make_class(ours_root, args.n)
        db = f"sqlite:///{ours_root / 'gradebook.db'}"
        autograder.ensure_gradebook(ours_root / "assignments" / "ps1", "ps1", db)
        start = time.perf_counter()
        report = autograder.grade_assignment(ours_root, "ps1", jobs=args.jobs, progress=True)
        ours = time.perf_counter() - start
        wrong = [s for s, score in expected.items() if score is not None and report.results[s].score != score]
        print(report.summary().splitlines()[0])

        nb_seconds = None
        if args.nbgrader_subset:
            theirs_root = assignments.copy_course(ROOT, work / "theirs")
            for student in sorted(expected)[: args.nbgrader_subset]:
                shutil.copytree(ours_root / "submitted" / student, theirs_root / "submitted" / student)
            assignments.run_nbgrader(["generate_assignment", "ps1", "--force"], theirs_root)
            start = time.perf_counter()
            assignments.run_nbgrader(["autograde", "ps1", "--force"], theirs_root, check=False)
            nb_seconds = time.perf_counter() - start

        per_ours = ours / args.n
        result = {
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "hardware": hardware(),
            "submissions": args.n,
            "jobs": args.jobs,
            "llmcourse_seconds": round(ours, 2),
            "llmcourse_seconds_per_submission": round(per_ours, 3),
            "wrong_scores": wrong,
        }
        print(f"hardware: {result['hardware']}")
        print(f"llmcourse grade  : {args.n} submissions in {ours:.1f} s, {per_ours:.3f} s per submission (jobs={args.jobs})")
        if nb_seconds is not None:
            per_nb = nb_seconds / args.nbgrader_subset
            result.update({"nbgrader_subset": args.nbgrader_subset, "nbgrader_seconds": round(nb_seconds, 2),
                           "nbgrader_seconds_per_submission": round(per_nb, 3),
                           "nbgrader_extrapolated_seconds": round(per_nb * args.n, 1)})
            print(f"nbgrader autograde: {args.nbgrader_subset} submissions in {nb_seconds:.1f} s, {per_nb:.3f} s per submission "
                  f"(EXTRAPOLATED to {args.n}: {per_nb * args.n:.0f} s)")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        return 1 if wrong else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
