"""The PyTorch RNN/LSTM/GRU language model: same tokens as the n-gram models, state carry-over, generation, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmcourse import data, ffnlm, ngram, rnnlm
from llmcourse.vocab import BOS, EOS

SENTENCES = [["a", "b", "c"], ["b", "c"], ["c", "a", "b", "c"], ["a", "c"]] * 30


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def split():
    return data.shakespeare_split()


@pytest.fixture(scope="module")
def small():
    vocab = ffnlm.ngram_vocabulary(SENTENCES, 3)
    return vocab, rnnlm.token_stream(SENTENCES, vocab)


def test_the_stream_predicts_the_same_tokens_as_the_ngram_model(split):
    train, test = split
    model = ngram.KneserNey(3).fit(train)
    stream = rnnlm.token_stream(test, model.vocab)
    assert stream[0] == model.vocab.index[BOS]
    assert len(stream) - 1 == len(model.log_probabilities(test))  # N predicted tokens, the same count
    assert np.array_equal(stream[1:], model.vocab.encode([w for s in test if s for w in s + [EOS]]))
    assert np.sum(stream == model.vocab.index[BOS]) == 1


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_shapes_and_state_carry_over(cell, small):
    vocab, stream = small
    model = rnnlm.RNNLanguageModel(len(vocab), 8, 12, cell=cell, num_layers=2, seed=0).eval()
    ids = torch.as_tensor(stream[:20])[None]
    logits, state = model(ids)
    assert logits.shape == (1, 20, len(vocab))
    first, state_half = model(ids[:, :7])
    second, _ = model(ids[:, 7:], state_half)
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits, rtol=1e-5, atol=1e-6)
    assert isinstance(state, tuple) == (cell == "lstm")


def test_log_probabilities_equal_one_pass_cross_entropy(small):
    vocab, stream = small
    model = rnnlm.RNNLanguageModel(len(vocab), 8, 12, cell="lstm", seed=1)
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(stream[:-1])[None])
        expected = math.exp(F.cross_entropy(logits[0].double(), torch.as_tensor(stream[1:])).item())
    log_p = rnnlm.log_probabilities(model, stream, chunk_length=13)  # chunks carry the state: same numbers
    assert log_p.shape == (len(stream) - 1,)
    assert math.exp(-log_p.mean()) == pytest.approx(expected, rel=1e-5)
    assert rnnlm.perplexity(model, stream, chunk_length=1000) == pytest.approx(expected, rel=1e-5)


def test_training_learns_a_deterministic_pattern(small):
    vocab, stream = small
    model = rnnlm.RNNLanguageModel(len(vocab), 16, 32, cell="lstm", seed=0)
    before = rnnlm.perplexity(model, stream)
    history = rnnlm.train(model, stream, stream, epochs=8, batch_size=4, bptt=10, learning_rate=1e-2,
                          device="cpu", progress=False)  # fmt: skip
    assert history.train_loss[-1] < history.train_loss[0]
    # The sentences cycle with period 4, so after the first few tokens every next token is predictable.
    assert history.held_out_perplexity[-1] < 1.5 < before / 3
    again = rnnlm.RNNLanguageModel(len(vocab), 16, 32, cell="lstm", seed=0)
    assert rnnlm.train(again, stream, stream, epochs=8, batch_size=4, bptt=10, learning_rate=1e-2,
                       device="cpu", progress=False).train_loss == history.train_loss  # fmt: skip


def test_clipping_bounds_each_sgd_step(small):
    vocab, stream = small
    model = rnnlm.RNNLanguageModel(len(vocab), 8, 8, cell="rnn", seed=2)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    rnnlm.train(model, stream, epochs=1, batch_size=2, bptt=10, optimizer="sgd", learning_rate=1.0, clip_norm=1e-3,
                max_steps=1, device="cpu", progress=False)  # fmt: skip
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = (after - before).norm().item()
    assert 0 < step <= 1e-3 * (1 + 1e-4)  # learning rate 1 times a gradient clipped to norm 1e-3


def test_generation_is_seeded_and_greedy_is_argmax(small):
    vocab, stream = small
    model = rnnlm.RNNLanguageModel(len(vocab), 8, 12, cell="gru", seed=3)
    prompt = [vocab.index[BOS], vocab.index["a"]]
    a = model.generate(prompt, 30, temperature=1.0, seed=5)
    assert a == model.generate(prompt, 30, temperature=1.0, seed=5)
    assert a != model.generate(prompt, 30, temperature=1.0, seed=6)
    assert len(a) == 30 and all(0 <= t < len(vocab) for t in a)
    greedy = model.generate(prompt, 10, temperature=0)
    expected, ids = [], list(prompt)
    with torch.no_grad():
        for _ in range(10):  # the slow way: re-read the whole text, take the argmax
            logits, _ = model(torch.tensor([ids]))
            expected.append(int(logits[0, -1].argmax()))
            ids.append(expected[-1])
    assert greedy == expected
    assert greedy == model.generate(prompt, 10, temperature=0, seed=99)  # greedy ignores the seed
    stop = greedy[3]
    assert model.generate(prompt, 10, temperature=0, stop_id=stop) == greedy[: greedy.index(stop) + 1]


def test_batchify_keeps_rows_contiguous():
    rows = rnnlm.batchify(np.arange(23), 4)
    assert rows.shape == (4, 5)
    assert rows[1].tolist() == [5, 6, 7, 8, 9]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: rnnlm.RNNLanguageModel(10, cell="transformer"), "cell must be one of 'rnn', 'lstm', 'gru'"),
        (lambda m: rnnlm.RNNLanguageModel(10, hidden_dim=0), "hidden_dim must be a positive integer"),
        (lambda m: m(torch.tensor([[0, 10]])), r"lie in 0 .. 9.*got ids from 0 to 10"),
        (lambda m: m(torch.tensor([0, 1])), r"shape \(batch, time\), got shape \(2,\)"),
        (lambda m: m.generate([], 5), "at least one token id"),
        (lambda m: m.generate([1], 5, temperature=-1), "temperature must be >= 0"),
        (lambda m: rnnlm.batchify(np.arange(5), 4), "too short for 4 rows"),
        (lambda m: rnnlm.train(m, np.arange(10) % 10, bptt=0, progress=False), "bptt"),
        (lambda m: rnnlm.train(m, np.arange(10) % 10, clip_norm=0, progress=False), "clip_norm must be positive"),
        (lambda m: rnnlm.log_probabilities(m, np.array([3])), "at least 2 token ids"),
        (lambda m: rnnlm.token_stream("a b c", None), "not one string"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call(rnnlm.RNNLanguageModel(10, 4, 4, cell="lstm"))
