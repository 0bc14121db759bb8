"""Perplexity by teacher forcing in windows, per-unit normalisation, and the n-gram contamination check.

Oracles: a bigram table whose log-probabilities numpy computes directly; a token-by-token
loop that runs the GPT on each prefix (the sliding window with stride 1, written
independently); the GPT's own cross-entropy loss for non-overlapping windows; Part 1's
``information.cross_entropy`` and ``perplexity``; and a substring search for shared n-grams.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from llmcourse import information
from llmcourse.evaluation import (
    Perplexity,
    bits_per_unit,
    contaminated_documents,
    evaluate_perplexity,
    ngram_overlap,
    per_unit_perplexity,
    token_log_probs,
    windows,
    word_ngrams,
    words,
)
from llmcourse.gpt import GPT
from llmcourse.sizing import TransformerConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = TransformerConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=11, dropout=0.0)


def _gpt() -> GPT:
    torch.manual_seed(0)
    model = GPT(CONFIG)
    with torch.no_grad():  # larger weights than the init, so that the context matters
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(std=0.4)
    return model


def _ids(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CONFIG.vocab_size, n)


class Bigram(nn.Module):
    """logits[b, i] = table[ids[b, i]]: a model whose context is one token, so any window gives the same answer."""

    def __init__(self, vocab: int, seed: int = 0) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.from_numpy(np.random.default_rng(seed).normal(size=(vocab, vocab))))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx]


# --- windows ------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 60), st.integers(1, 12), st.data())
def test_windows_score_every_token_once_with_the_promised_context(n, context, data):
    stride = data.draw(st.integers(1, context))
    scored = []
    for begin, end, first in windows(n, context, stride):
        assert end - begin <= context and begin < first <= end <= n - 1
        for t in range(first, end + 1):
            scored.append(t)
            # Context of target t is ids[begin:t]: all of it if t <= context, else at least c - stride + 1.
            assert t - begin >= min(t, context - stride + 1)
    assert scored == list(range(1, n))


def test_log_probs_of_a_bigram_table_are_exact_for_any_stride():
    model = Bigram(CONFIG.vocab_size)
    ids = _ids(50)
    table = model.table.detach().numpy()
    log_softmax = table - np.log(np.exp(table).sum(axis=1, keepdims=True))
    expected = log_softmax[ids[:-1], ids[1:]]
    for context, stride in [(8, 8), (8, 3), (8, 1), (5, 5), (64, 64)]:
        got = token_log_probs(model, ids, context_length=context, stride=stride, batch_size=3)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_stride_one_equals_a_token_by_token_loop_over_prefixes():
    model, ids = _gpt().eval(), _ids(30)
    c = CONFIG.block_size
    with torch.no_grad():
        expected = [torch.log_softmax(model(torch.tensor(ids[max(0, t - c) : t])[None])[0][0, -1].double(), -1)[ids[t]].item()
                    for t in range(1, len(ids))]  # fmt: skip
    np.testing.assert_allclose(token_log_probs(model, ids, stride=1), expected, rtol=0, atol=1e-5)


def test_non_overlapping_windows_equal_the_models_own_cross_entropy():
    model, ids = _gpt().eval(), _ids(41)
    c = CONFIG.block_size
    total, count = 0.0, 0
    with torch.no_grad():
        for begin in range(0, len(ids) - 1, c):
            x = torch.tensor(ids[begin : begin + c])
            y = torch.tensor(ids[begin + 1 : begin + c + 1])
            x = x[: len(y)]
            _, loss = model(x[None], targets=y[None])
            total, count = total + loss.item() * len(y), count + len(y)
    result = evaluate_perplexity(model, torch.tensor(ids))
    assert result.tokens == count == len(ids) - 1
    assert math.isclose(result.total_nll, total, rel_tol=1e-5)
    assert math.isclose(result.perplexity, math.exp(total / count), rel_tol=1e-5)
    # More context per token cannot be checked to help a random model, but the numbers must differ.
    assert evaluate_perplexity(model, ids, stride=2).total_nll != pytest.approx(result.total_nll, rel=1e-9)
    assert model.training is False


def test_evaluation_restores_training_mode():
    model = _gpt().train()
    evaluate_perplexity(model, _ids(20))
    assert model.training


# --- units ------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-20.0, -1e-6), min_size=1, max_size=40))
def test_conversions_agree_with_part_1s_information_functions(log_probs):
    lp = np.array(log_probs)
    total = float(-lp.sum())
    assert math.isclose(per_unit_perplexity(total, lp.size), information.perplexity(lp), rel_tol=1e-9)
    assert math.isclose(bits_per_unit(total, lp.size), information.cross_entropy(lp, base=2), rel_tol=1e-9)
    result = Perplexity(total, lp.size)
    assert math.isclose(result.bits_per_token, information.cross_entropy(lp, base=2), rel_tol=1e-9)
    assert math.isclose(result.per(lp.size), result.perplexity, rel_tol=1e-12)


def test_per_word_normalisation_undoes_the_tokenizer():
    # "to be or not" spelled as 4 words or as 12 characters: a word model with P(word) = 1/1000 each and a
    # character model that gives each word's characters the same total probability agree on P(text),
    # so their per-word perplexities agree although per-token ones differ enormously.
    text_words, text_chars = 4, len("to be or not")
    word_nll = 4 * math.log(1000)
    char_log_probs = np.full(text_chars, -word_nll / text_chars)
    assert math.isclose(per_unit_perplexity(word_nll, text_words), 1000.0)
    assert math.isclose(per_unit_perplexity(-char_log_probs.sum(), text_words), 1000.0)
    assert information.perplexity(char_log_probs) == pytest.approx(10.0)  # 1000^(4/12): looks 100 times "better"


# --- contamination ----------------------------------------------------------------------------------


def test_words_and_ngrams_ignore_case_and_punctuation():
    assert words("O Romeo, Romeo!\nwherefore") == ["o", "romeo", "romeo", "wherefore"]
    assert word_ngrams("a b c a b", 2) == {("a", "b"), ("b", "c"), ("c", "a")}
    assert word_ngrams("a b", 3) == set()


def test_ngram_overlap_on_known_documents():
    train = "to be or not to be that is the question\n\nwhether tis nobler in the mind to suffer"
    test = ["TO BE, or not to be: that is", "the question whether tis", "something else entirely here"]
    assert contaminated_documents(train, test, n=4) == [0, 1]  # the second crosses a document boundary of train
    assert ngram_overlap(train, test, n=4) == pytest.approx(2 / 3)
    assert ngram_overlap(train, "a b c d e\n\nf g h", n=2) == 0.0
    assert ngram_overlap(train, "to be\n\nthat is the", n=13) == 0.0  # shorter than n: counts as clean


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from("abc"), min_size=0, max_size=30),
       st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=8), min_size=1, max_size=5),
       st.integers(1, 4))  # fmt: skip
def test_ngram_overlap_equals_a_substring_search(train_words, test_docs, n):
    train_text = " ".join(train_words)
    haystack = " " + train_text + " "
    expected = []
    for i, doc in enumerate(test_docs):
        grams = [" " + " ".join(doc[j : j + n]) + " " for j in range(len(doc) - n + 1)]
        if any(g in haystack for g in grams):
            expected.append(i)
    docs = [" ".join(d) for d in test_docs]
    assert contaminated_documents(train_text, docs, n) == expected
    assert ngram_overlap(train_text, docs, n) == len(expected) / len(docs)


# --- the experiment, at toy size --------------------------------------------------------------------


def test_part5_experiment_runs_at_toy_size(tmp_path):
    from llmcourse.experiments import part5_perplexity

    out = tmp_path / "p5.json"
    assert part5_perplexity.main(["--quick", "--out", str(out), "--part3", "none"]) == 0
    record = json.loads(out.read_text())
    split = record["split"]
    rows = {r["name"]: r for r in record["models"]}
    for row in rows.values():
        # The same total NLL, three normalisations: they must be consistent with one another.
        assert math.isclose(row["perplexity_per_token"], math.exp(row["total_nll"] / row["tokens"]), rel_tol=1e-9)
        assert math.isclose(row["perplexity_per_word"], math.exp(row["total_nll"] / split["words"]), rel_tol=1e-9)
        assert math.isclose(row["bits_per_character"], row["total_nll"] / split["characters"] / math.log(2), rel_tol=1e-9)
    assert rows["Kneser-Ney trigram (words)"]["tokens"] == split["words"]
    assert rows["character GPT"]["tokens"] == split["characters"]
    # A trained character model is far better than uniform over its alphabet.
    assert rows["character GPT"]["perplexity_per_token"] < split["alphabet"]


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: per_unit_perplexity(-1.0, 5), "total_nll_nats must be a number >= 0"),
        (lambda: per_unit_perplexity(float("nan"), 5), "total_nll_nats must be a number >= 0"),
        (lambda: per_unit_perplexity(3.0, 0), "n_units must be a positive integer"),
        (lambda: bits_per_unit(3.0, 2.5), "n_units must be a positive integer"),
        (lambda: windows(1, 8, 8), "need at least 2 tokens"),
        (lambda: windows(10, 8, 9), r"stride \(9\) must be at most context_length \(8\)"),
        (lambda: windows(10, 0, 1), "context_length must be a positive integer"),
        (lambda: token_log_probs(_gpt(), [3]), "at least 2 integer token ids"),
        (lambda: token_log_probs(_gpt(), [0.5, 1.5]), "integer token ids"),
        (lambda: token_log_probs(_gpt(), [[1, 2]]), "1-D sequence"),
        (lambda: token_log_probs(_gpt(), [1, -2]), "token ids must be >= 0"),
        (lambda: token_log_probs(Bigram(4), [1, 2]), "context_length is needed"),
        (lambda: token_log_probs(_gpt(), [1, 2, 3], batch_size=0), "batch_size must be a positive integer"),
        (lambda: token_log_probs(lambda x: torch.zeros(1, 4), [1, 2, 3], context_length=4), "returned logits of shape"),
        (lambda: word_ngrams("a b", 0), "n must be a positive integer"),
        (lambda: ngram_overlap("a b", 42), "test_text must be a str"),
        (lambda: ngram_overlap("a b", "  \n\n  "), "holds no documents"),
        (lambda: words(None), "expected a str"),
    ],
)
def test_errors_are_clear(call, message):
    with pytest.raises(ValueError, match=message):
        call()
