"""The Part 3 perplexity command: a quick run end to end, and the recorded full run the chapter loads."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, tool_env
from llmcourse import data, ngram
from llmcourse.experiments.part3_perplexity import FULL

RECORD = REPO_ROOT / "book/part3/results/perplexity.json"


def test_quick_run_writes_a_complete_record(tmp_path):
    out = tmp_path / "perplexity.json"
    result = subprocess.run(
        [sys.executable, "-m", "llmcourse.experiments.part3_perplexity", "--quick", "--device", "cpu", "--out", str(out)],
        cwd=REPO_ROOT, env=tool_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Kneser-Ney trigram" in result.stdout and "LSTM" in result.stdout
    record = json.loads(out.read_text())
    assert record["quick"] is True and "--quick" in record["command"]
    assert {"cpu", "torch", "device", "platform"} <= set(record["hardware"])
    train, test = data.shakespeare_split()
    expected_tokens = sum(len(s) + 1 for s in test[:300] if s)
    names = [m["name"] for m in record["models"]]
    assert any(n.startswith("FFNLM") for n in names) and "LSTM" in names
    for model in record["models"]:
        assert model["tokens"] == expected_tokens, model["name"]  # every model scores the same tokens
        assert math.isfinite(model["perplexity"]) and model["perplexity"] > 1
    laplace = next(m for m in record["models"] if m["name"] == "Laplace trigram")
    assert laplace["perplexity"] == pytest.approx(ngram.Laplace(3).fit(train[:2000]).perplexity(test[:300]), rel=1e-12)
    for model in record["models"]:
        if model["family"] == "neural":
            assert len(model["history"]["train_loss"]) == model["settings"]["epochs"]


def test_recorded_full_run():
    """The JSON the chapter plots: a full-split run, on the standard held-out tokens, with honest comparisons."""
    record = json.loads(RECORD.read_text())
    assert record["quick"] is False
    assert record["split"]["held_out_tokens"] == 27982 and record["split"]["vocabulary"] == 10896
    models = {m["name"]: m for m in record["models"]}
    train, test = data.shakespeare_split()
    assert models["Laplace trigram"]["perplexity"] == pytest.approx(ngram.Laplace(3).fit(train).perplexity(test), rel=1e-9)
    assert models["Kneser-Ney trigram"]["perplexity"] == pytest.approx(ngram.KneserNey(3).fit(train).perplexity(test), rel=1e-9)
    neural = [m for m in record["models"] if m["family"] == "neural"]
    assert [m["settings"] for m in neural] == [FULL["ffnlm"], FULL["lstm"]]  # recorded with the current settings
    for m in neural:
        assert m["tokens"] == 27982
        assert m["perplexity"] < models["Laplace trigram"]["perplexity"] / 10
        history = m["history"]["held_out_perplexity"]
        assert len(history) == m["settings"]["epochs"]
        assert history[-1] == pytest.approx(m["perplexity"], rel=1e-6)  # the table reports the final epoch
    assert 0 < record["total_cpu_seconds"] and 0 < record["total_seconds"]
