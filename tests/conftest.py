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


def torch_encoder_layer(block, config):  # noqa: ANN001, ANN201 - torch is imported only by the tests that use it
    """``torch.nn.TransformerEncoderLayer(norm_first=True)`` in float64 carrying the weights of our pre-norm
    ``block`` (llmcourse.gpt.Block or llmcourse.transformer's): the independent oracle for a Transformer block."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    layer = nn.TransformerEncoderLayer(
        config.n_embd, config.n_head, config.d_ff, dropout=0.0, batch_first=True, norm_first=True,
        activation=lambda u: F.gelu(u, approximate="tanh"), bias=config.bias, dtype=torch.float64,
    )
    ours = {  # in_proj rows are W_q, W_k, W_v, as in our qkv
        "self_attn.in_proj_weight": block.attn.qkv.weight, "self_attn.in_proj_bias": block.attn.qkv.bias,
        "self_attn.out_proj.weight": block.attn.out.weight, "self_attn.out_proj.bias": block.attn.out.bias,
        "linear1.weight": block.mlp.up.weight, "linear1.bias": block.mlp.up.bias,
        "linear2.weight": block.mlp.down.weight, "linear2.bias": block.mlp.down.bias,
        "norm1.weight": block.ln_1.weight, "norm1.bias": block.ln_1.bias,
        "norm2.weight": block.ln_2.weight, "norm2.bias": block.ln_2.bias,
    }
    layer.load_state_dict({name: value for name, value in ours.items() if value is not None})  # no biases if bias=False
    return layer.eval()
