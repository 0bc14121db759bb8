"""Helpers shared by the benchmark scripts: what machine a number was measured on, and timing."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from llmcourse.hardware import cpu_model, usable_cores

T = TypeVar("T")


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
