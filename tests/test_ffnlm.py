"""The feed-forward neural LM: same tokens and vocabulary as the n-gram models, the paper's equations, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmcourse import data, ffnlm, ngram
from llmcourse.vocab import BOS, EOS

HOMEWORK = [
    ["please", "turn", "your", "homework", "in"],
    ["turn", "your", "homework", "over"],
    ["your", "homework", "is", "in", "the", "refrigerator"],
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def split():
    return data.shakespeare_split()


@pytest.mark.parametrize("order, min_count", [(2, 1), (3, 1), (4, 1), (3, 2)])
def test_vocabulary_is_the_ngram_models_vocabulary(split, order, min_count):
    train, _ = split
    expected = ngram.MLE(order, min_count=min_count).fit(train).vocab.tokens
    assert ffnlm.ngram_vocabulary(train, order, min_count).tokens == expected


@pytest.mark.parametrize("order", [2, 3, 5])
def test_windows_predict_the_same_tokens_as_the_ngram_model(split, order):
    """Same N, and target for target the tokens NgramModel.log_probabilities scores."""
    train, test = split
    model = ngram.KneserNey(order).fit(train)
    windows = ffnlm.make_windows(test, model.vocab, order - 1)
    assert len(windows) == len(model.log_probabilities(test)) == sum(len(s) + 1 for s in test if s)
    expected_targets = model.vocab.encode([w for s in test if s for w in s + [EOS]])
    assert np.array_equal(windows.targets, expected_targets)


def test_windows_equal_brute_force_padding():
    vocab = ffnlm.ngram_vocabulary(HOMEWORK, 3)
    test = HOMEWORK[:2] + [[], ["your", "unseen", "word"]]
    windows = ffnlm.make_windows(test, vocab, 2)
    expected = []
    for s in test:
        if not s:
            continue
        padded = [t if t in vocab else "<unk>" for t in ngram.pad_sentence(s, 3)]
        expected += [padded[i : i + 3] for i in range(len(padded) - 2)]
    got = [vocab.decode(c) + vocab.decode([t]) for c, t in zip(windows.contexts, windows.targets)]
    assert got == expected
    assert got[0] == [BOS, BOS, "please"] and got[-1] == ["<unk>", "<unk>", EOS]  # "unseen", "word" are not in vocab
    assert windows.contexts.dtype == np.int64 and windows.context_size == 2


def test_forward_is_the_papers_equation():
    """z = b + U tanh(d + H x) + W x with x the concatenated embeddings, written out in numpy."""
    model = ffnlm.FeedForwardLM(11, 3, embedding_dim=4, hidden_dim=5, direct_connections=True, seed=3)
    contexts = torch.tensor([[1, 2, 3], [10, 0, 10]])
    C = model.embedding.weight.detach().numpy().astype(np.float64)
    H, d = model.hidden.weight.detach().numpy(), model.hidden.bias.detach().numpy()
    U, b = model.output.weight.detach().numpy(), model.output.bias.detach().numpy()
    W = model.direct.weight.detach().numpy()
    for row, ctx in zip(model(contexts).detach().numpy(), contexts.numpy()):
        x = np.concatenate([C[i] for i in ctx])  # oldest word first
        expected = b + U @ np.tanh(d + H @ x) + W @ x
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 11 * 4 + (12 * 5 + 5) + (5 * 11 + 11) + 12 * 11


def test_perplexity_is_exp_of_torch_cross_entropy(split):
    train, test = split
    vocab = ffnlm.ngram_vocabulary(train[:2000], 3)
    windows = ffnlm.make_windows(test[:300], vocab, 2)
    model = ffnlm.FeedForwardLM(len(vocab), 2, embedding_dim=8, hidden_dim=16, seed=0)
    with torch.no_grad():
        logits = model(torch.as_tensor(windows.contexts)).double()
        expected = math.exp(F.cross_entropy(logits, torch.as_tensor(windows.targets)).item())
    assert ffnlm.perplexity(model, windows, batch_size=97) == pytest.approx(expected, rel=1e-5)
    log_p = ffnlm.log_probabilities(model, windows)
    assert log_p.shape == (len(windows),) and log_p.dtype == np.float64 and np.all(log_p < 0)


def test_a_few_training_steps_lower_the_loss_and_are_seeded(split):
    train, test = split
    vocab = ffnlm.ngram_vocabulary(train[:1500], 3)
    train_windows = ffnlm.make_windows(train[:1500], vocab, 2)
    held_out = ffnlm.make_windows(test[:200], vocab, 2)
    model = ffnlm.FeedForwardLM(len(vocab), 2, embedding_dim=16, hidden_dim=32, dropout=0.1, seed=1)
    before = ffnlm.perplexity(model, held_out)
    history = ffnlm.train(model, train_windows, held_out, epochs=2, batch_size=256, learning_rate=5e-3,
                          seed=4, device="cpu", progress=False)  # fmt: skip
    assert history.epoch == [1, 2] and len(history.seconds) == 2
    assert history.train_loss[1] < history.train_loss[0]
    assert before == pytest.approx(len(vocab), rel=0.2)  # an untrained model is near-uniform: PP ~ |V|
    assert history.held_out_perplexity[-1] < before / 3
    assert set(history.as_dict()) == {"epoch", "train_loss", "held_out_perplexity", "seconds"}
    runs = [
        ffnlm.train(ffnlm.FeedForwardLM(len(vocab), 2, 16, 32, dropout=0.1, seed=1), train_windows, held_out,
                    batch_size=256, max_steps=10, seed=4, device="cpu", progress=False)
        for _ in range(2)
    ]  # fmt: skip
    assert runs[0].train_loss == runs[1].train_loss and runs[0].held_out_perplexity == runs[1].held_out_perplexity


def test_max_steps_stops_early():
    vocab = ffnlm.ngram_vocabulary(HOMEWORK, 2)
    windows = ffnlm.make_windows(HOMEWORK * 20, vocab, 1)
    model = ffnlm.FeedForwardLM(len(vocab), 1, 4, 4)
    history = ffnlm.train(model, windows, epochs=5, batch_size=2, max_steps=3, device="cpu", progress=False)
    assert history.epoch == [1] and math.isnan(history.held_out_perplexity[0])


def test_the_same_seed_gives_the_same_weights_and_leaves_global_state_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = ffnlm.FeedForwardLM(20, 2, seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    b = ffnlm.FeedForwardLM(20, 2, seed=7)
    c = ffnlm.FeedForwardLM(20, 2, seed=8)
    assert torch.equal(a.embedding.weight, b.embedding.weight)
    assert not torch.equal(a.embedding.weight, c.embedding.weight)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m(torch.zeros(4, 2, dtype=torch.long)), r"shape \(batch, 3\), got shape \(4, 2\)"),
        (lambda m: m(torch.zeros(3, dtype=torch.long)), r"shape \(batch, 3\), got shape \(3,\)"),
        (lambda m: m(torch.tensor([[1, 2, 20]])), r"lie in 0 .. 19.*got ids from 1 to 20"),
        (lambda m: m(torch.tensor([[-1, 2, 3]])), "lie in 0 .. 19"),
        (lambda m: m(torch.zeros(2, 3)), "tensor of token ids"),
        (lambda m: ffnlm.train(m, ffnlm.Windows(np.zeros((5, 2), np.int64), np.zeros(5, np.int64)), progress=False),
         r"contexts of 2 tokens, the model expects 3.*context_size=3"),
        (lambda m: ffnlm.train(m, ffnlm.Windows(np.zeros((5, 3), np.int64), np.zeros(5, np.int64)), optimizer="rmsprop",
                               device="cpu", progress=False), "optimizer must be 'adam' or 'sgd'"),
        (lambda m: ffnlm.FeedForwardLM(20, 0), "context_size must be a positive integer"),
        (lambda m: ffnlm.make_windows("to be or not", None, 2), "not one string"),
        (lambda m: ffnlm.make_windows(HOMEWORK, None, 0), r"context_size \(n - 1\) must be an integer >= 1"),
        (lambda m: ffnlm.ngram_vocabulary(HOMEWORK, 1), "order must be at least 2"),
        (lambda m: ffnlm.perplexity(m, ffnlm.Windows(np.zeros((0, 3), np.int64), np.zeros(0, np.int64))), "empty"),
    ],
)  # fmt: skip
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call(ffnlm.FeedForwardLM(20, 3, embedding_dim=4, hidden_dim=4))
