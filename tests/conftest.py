"""Shared paths and helpers for the test suite (kept small and generic)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Under pytest-xdist, each of the 2 workers (and every kernel nbval starts) would otherwise
# run 2 OpenMP threads on 2 cores; spinning threads then fight over the CPU and torch code
# runs ten times slower. One thread per worker keeps the cores busy without contention.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "_build"  # ignored by git; every tool writes its caches here


def venv_bin() -> Path:
    """The folder holding the running interpreter's console scripts (jupyter-book, nbgrader, ...)."""
    return Path(sys.executable).parent


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that runs a course tool.

    Puts the venv's bin/ first on PATH (nbgrader shells out to `alembic`) and points
    every cache that would otherwise land in $HOME or /tmp into the ignored `_build/`.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(venv_bin()), env.get("PATH", "")])
    caches = {
        "MPLCONFIGDIR": BUILD_DIR / "mplconfig",
        "TORCHINDUCTOR_CACHE_DIR": BUILD_DIR / "torchinductor",
    }
    for name, path in caches.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


# Kernels started by nbval and nbgrader inherit these: keep their caches in _build/ too.
for _name, _sub in (("MPLCONFIGDIR", "mplconfig"), ("TORCHINDUCTOR_CACHE_DIR", "torchinductor")):
    os.environ.setdefault(_name, str(BUILD_DIR / _sub))
    Path(os.environ[_name]).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules that train tiny torch models: one thread is faster than two, and fair to a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
