"""Commands that produce the numbers the book reports from long runs, with the command line, hardware and timing.

Each is run as ``python -m llmcourse.experiments.<name> --out book/<part>/results/<name>.json``;
the chapters load the JSON instead of re-training. Every command has a ``--quick``
mode, run by the tests, that exercises the same code on a small slice in seconds.
"""

from __future__ import annotations

import argparse

THREADS_HELP = "CPU threads for PyTorch (default: PyTorch's choice, one per core; 1 is best on a shared machine)"


def add_threads_option(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """The ``--threads N`` option every experiment takes."""
    parser.add_argument("--threads", type=int, default=default, help=THREADS_HELP)


def apply_threads(parser: argparse.ArgumentParser, threads: int | None) -> None:
    """Set PyTorch's CPU threads from ``--threads`` (None: leave PyTorch's default); 0 or less is an error."""
    if threads is None:
        return
    if threads < 1:
        parser.error(f"--threads must be at least 1, got {threads}")
    import torch  # the command has imported it already; the package's __init__ must not

    torch.set_num_threads(threads)
