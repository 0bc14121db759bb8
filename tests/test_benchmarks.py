"""The benchmarks keep working: a quick run on a corpus prefix (the full runs are `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, tool_env


def test_ngram_benchmark_runs_and_agrees_with_nltk(tmp_path):
    out = tmp_path / "ngram.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_ngram.py", "--lines", "3000", "--repeats", "1", "--json", str(out)],
        cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "perplexities identical" in result.stdout
    assert "hardware:" in result.stdout and "nltk" in result.stdout and "llmcourse" in result.stdout
    record = json.loads(out.read_text())
    assert record["nltk"]["perplexity"] == record["llmcourse"]["perplexity"] or abs(
        record["nltk"]["perplexity"] / record["llmcourse"]["perplexity"] - 1
    ) < 1e-9
    assert record["speedup"] > 1


def test_benchmark_rejects_bad_arguments():
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_ngram.py", "--lines", "5"], cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True
    )
    assert result.returncode == 2 and "--lines must be at least 20" in result.stderr


def test_recorded_full_run_is_current():
    """The README's figures come from benchmarks/results/ngram.json: a full-corpus run, identical perplexities."""
    record = json.loads((REPO_ROOT / "benchmarks/results/ngram.json").read_text())
    assert record["corpus"] == "Tiny Shakespeare" and record["order"] == 3
    assert round(record["nltk"]["perplexity"], 2) == round(record["llmcourse"]["perplexity"], 2) == 2265.55
    assert record["speedup"] >= 50
