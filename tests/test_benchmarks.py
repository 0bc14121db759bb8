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


def test_word2vec_benchmark_runs_both_systems(tmp_path):
    """A 1-epoch run on a 100k-word prefix: both systems train and are scored by one evaluator."""
    out = tmp_path / "word2vec.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_word2vec.py", "--words", "100000", "--epochs", "1", "--device", "cpu",
         "--json", str(out)],
        cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hardware:" in result.stdout and "gensim" in result.stdout and "llmcourse" in result.stdout
    record = json.loads(out.read_text())
    for side in ("gensim", "llmcourse"):
        assert record[side]["words_per_second"] > 0
        assert record[side]["analogy"]["evaluated"] > 0
    # Our evaluator and gensim's agree on gensim's own vectors.
    assert abs(record["gensim"]["analogy"]["accuracy"] - record["gensim"]["gensim_own_analogy_accuracy"]) < 1e-12
    bad = subprocess.run([sys.executable, "benchmarks/bench_word2vec.py", "--words", "50"], cwd=REPO_ROOT,
                         env=tool_env(), capture_output=True, text=True)
    assert bad.returncode == 2 and "--words must be at least 10000" in bad.stderr


def test_recorded_word2vec_run_meets_the_targets():
    """The README's word2vec figures: a full text8_prefix run, 5 epochs, both targets met on this CPU."""
    record = json.loads((REPO_ROOT / "benchmarks/results/word2vec.json").read_text())
    assert record["corpus"] == "text8_prefix" and record["epochs"] == 5 and record["corpus_words"] == 2_139_748
    assert record["llmcourse"]["device"] == "cpu"
    assert record["ratio_words_per_second"] >= 0.5
    assert record["analogy_gap_points"] >= -2.0
    assert record["llmcourse"]["analogy"]["evaluated"] == record["gensim"]["analogy"]["evaluated"] > 9000
