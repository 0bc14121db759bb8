"""The GPT benchmark keeps working: every section on tiny models, on the CPU (the real runs are in the README)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, tool_env


def test_gpt_benchmark_smoke(tmp_path):
    out = tmp_path / "gpt.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_gpt.py", "--tiny", "--device", "cpu", "--new-tokens", "40", "--json", str(out)],
        cwd=REPO_ROOT, env=tool_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hardware:" in result.stdout and "tokens/s" in result.stdout and "MFU" in result.stdout
    assert "time to val loss <= 3.5" in result.stdout and "same tokens: True" in result.stdout
    record = json.loads(out.read_text())
    assert record["throughput"]["tokens_per_second"] > 0 and 0 < record["throughput"]["mfu"] < 1
    assert "CPU estimate" in record["throughput"]["peak_source"]
    run = record["time_to_target"][0]
    assert run["reached"] and run["seconds_from_launch"] > run["seconds_in_training"] > 0
    assert record["kv_cache"]["same_tokens"] and record["kv_cache"]["new_tokens"] == 40


def test_gpt_benchmark_rejects_bad_sections():
    result = subprocess.run([sys.executable, "benchmarks/bench_gpt.py", "--sections", "speed"], cwd=REPO_ROOT,
                            env=tool_env(), capture_output=True, text=True)
    assert result.returncode == 2 and "--sections must name throughput, target or kvcache" in result.stderr
