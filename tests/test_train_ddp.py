"""The trainer under torchrun: two CPU processes (gloo), data-parallel, one report.

Kept apart from test_train.py because starting two torch processes takes most of its 20-25 s.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, tool_env


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_under_torchrun(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "llmcourse.train",
               "--device", "cpu", "--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--block_size", "32",
               "--batch_size", "8", "--max_iters", "20", "--eval_interval", "20", "--eval_iters", "4",
               "--learning_rate", "3e-3", "--warmup_iters", "2", "--no-progress", "--out_dir", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=tool_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "512 tokens per step, float32 on cpu x 2 processes" in result.stdout  # 8 x 32 per process, 2 processes
    assert result.stdout.count("done: 20 steps") == 1  # only rank 0 reports
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["evals"][-1][2] < record["evals"][0][2] - 0.1
