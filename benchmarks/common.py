"""Helpers shared by the benchmark scripts: what machine a number was measured on, and timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def hardware(torch_device: str | None = None) -> str:
    """CPU model, usable cores and library versions; with ``torch_device``, torch and the GPU too."""
    text = f"{cpu_model()}, {usable_cores()} cores usable, Python {platform.python_version()}, numpy {np.__version__}"
    if torch_device is not None:
        import torch

        text += f", torch {torch.__version__}, {torch.get_num_threads()} torch threads"
        if torch_device.startswith("cuda") and torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(torch.device(torch_device))}"
    return text


def best_of(repeats: int, fn: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeats`` calls of ``fn`` in seconds, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result  # type: ignore[return-value]
