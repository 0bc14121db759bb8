"""How long each chapter takes to run top to bottom (the book's budget: 60 s on a 2-core CPU).

    python benchmarks/chapter_times.py [--json benchmarks/results/chapter_times.json]

Executes every notebook listed in _toc.yml in a fresh kernel (as a reader's "Run All"),
kernel start-up included, and prints each time beside the budget and the hardware.
Exit status 1 if a chapter fails or exceeds the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import nbformat
from bench_ngram import hardware
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from run_chapters import toc_chapters  # noqa: E402 - the one list of chapters, shared with `make chapters`

BUDGET_S = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    print(f"hardware: {hardware()}")
    print(f"{'chapter':60}{'seconds':>10}{'budget':>8}")
    for path in toc_chapters():
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        status = "ok"
        try:
            NotebookClient(nb, kernel_name="python3", timeout=BUDGET_S * 2, resources={"metadata": {"path": str(path.parent)}}).execute()
        except Exception as exc:  # report and go on: one broken chapter should not hide the others
            status = f"failed: {type(exc).__name__}"
        seconds = time.perf_counter() - start
        if status == "ok" and seconds > BUDGET_S:
            status = "over budget"
        rows.append({"chapter": str(path.relative_to(ROOT)), "seconds": round(seconds, 1), "status": status})
        print(f"{rows[-1]['chapter']:60}{seconds:>10.1f}{BUDGET_S:>8.0f}  {status}")
    if args.json:
        args.json.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "hardware": hardware(), "chapters": rows}, indent=2) + "\n")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
