"""Decoding rules: greedy, temperature, top-k, top-p; numpy and PyTorch.

Oracles: straightforward sort-and-loop versions of top-k and top-p written here, the
temperature formula p^(1/T) / sum p^(1/T) written directly, and scipy's chi-square
goodness-of-fit test on 20,000 seeded draws (accept the right distribution with p > 1e-3,
reject a wrong one with p < 1e-6). Hugging Face's TopPLogitsWarper would be a further
oracle, but transformers is not a dependency of the course.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from llmcourse import decoding, sampling
from llmcourse.decoding import (
    filter_logits,
    filtered_distribution,
    greedy,
    nucleus_size,
    sample,
    top_k_filter,
    top_k_top_p_probs,
    top_p_filter,
)
from llmcourse.gpt import next_token

pytestmark = pytest.mark.usefixtures("one_torch_thread")

P = np.array([0.05, 0.30, 0.02, 0.18, 0.25, 0.01, 0.12, 0.07])  # 8 tokens, distinct probabilities
DRAWS = 20_000  # the PyTorch sampler draws a batch at once
NUMPY_DRAWS = 10_000  # one call per draw: enough to reject each wrong distribution below by far


# --- independent oracles ------------------------------------------------------------------------


def oracle_temperature(p: np.ndarray, t: float) -> np.ndarray:
    w = p ** (1.0 / t)
    return w / w.sum()


def oracle_ranked(p: np.ndarray) -> list[int]:
    return sorted(range(len(p)), key=lambda i: (-p[i], i))  # most probable first, smaller id first on ties


def oracle_top_k(p: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(p)
    for i in oracle_ranked(p)[:k]:
        out[i] = p[i]
    return out / out.sum()


def oracle_top_p(p: np.ndarray, top_p: float) -> np.ndarray:
    out, mass = np.zeros_like(p), 0.0
    for i in oracle_ranked(p):
        out[i] = p[i]
        mass += p[i]
        if mass >= top_p:
            break
    return out / out.sum()


def counts_of(draws: list[int] | np.ndarray, vocab: int) -> np.ndarray:
    return np.bincount(np.asarray(draws), minlength=vocab)


def chi_square_p(counts: np.ndarray, target: np.ndarray) -> float:
    """Goodness of fit on the target's support (tokens the target gives probability 0 are checked separately)."""
    support = target > 0
    expected = target[support] * counts.sum()
    return float(chisquare(counts[support], expected).pvalue)


# --- the numpy sampler matches the filtered distribution ----------------------------------------

CASES = {
    "plain": (dict(), P),
    "temperature 0.6": (dict(temperature=0.6), oracle_temperature(P, 0.6)),
    "temperature 2": (dict(temperature=2.0), oracle_temperature(P, 2.0)),
    "top-k 3": (dict(top_k=3), oracle_top_k(P, 3)),
    "top-p 0.7": (dict(top_p=0.7), oracle_top_p(P, 0.7)),
    "T 0.8, top-k 5, top-p 0.8": (dict(temperature=0.8, top_k=5, top_p=0.8),
                                  oracle_top_p(oracle_top_k(oracle_temperature(P, 0.8), 5), 0.8)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_sampler_frequencies_match_the_target_and_reject_a_wrong_one(name):
    options, target = CASES[name]
    rng = np.random.default_rng(2024)
    counts = counts_of([sample(P, rng, **options) for _ in range(NUMPY_DRAWS)], P.size)
    assert np.all(counts[target == 0] == 0)  # never a token outside the top-k / nucleus
    assert chi_square_p(counts, target) > 1e-3
    # A deliberately wrong target: the unfiltered model, or for the plain case two probabilities swapped.
    wrong = P.copy() if options else P[[0, 4, 2, 3, 1, 5, 6, 7]]
    assert chi_square_p(counts, wrong) < 1e-6


def test_filters_keep_only_their_tokens():
    assert set(np.flatnonzero(top_k_filter(P, 3))) == {1, 4, 3}
    assert set(np.flatnonzero(top_p_filter(P, 0.7))) == {1, 4, 3}  # 0.30 + 0.25 = 0.55 < 0.7 <= 0.73
    assert set(np.flatnonzero(top_p_filter(P, 0.55))) == {1, 4}  # mass exactly p is enough
    assert nucleus_size(P, 0.56) == 3


# --- against the oracles, on random distributions -------------------------------------------------

distributions = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12).filter(lambda xs: sum(xs) > 1e-3).map(
    lambda xs: np.array(xs) / np.sum(xs))
# Ties are frequent in these lists (st.floats shrinks towards repeated values), which tests the tie rule.
tied = st.lists(st.sampled_from([0.0, 0.1, 0.2, 0.5]), min_size=2, max_size=10).filter(
    lambda xs: sum(xs) > 0).map(lambda xs: np.array(xs) / np.sum(xs))


@settings(max_examples=150, deadline=None)
@given(st.one_of(distributions, tied), st.data())
def test_top_k_and_top_p_equal_the_sort_and_loop_oracles(p, data):
    k = data.draw(st.integers(1, p.size))
    top_p = data.draw(st.floats(1e-6, 1.0))
    np.testing.assert_allclose(top_k_filter(p, k), oracle_top_k(p, k), rtol=0, atol=1e-12)
    np.testing.assert_allclose(top_p_filter(p, top_p), oracle_top_p(p, top_p), rtol=0, atol=1e-12)
    assert np.count_nonzero(top_k_filter(p, k) > 0) <= k  # exactly k kept (fewer non-zero if p has zeros)
    assert greedy(p) == oracle_ranked(p)[0]


@settings(max_examples=60, deadline=None)
@given(distributions)
def test_top_p_one_and_k_equal_vocabulary_are_the_identity(p):
    np.testing.assert_array_equal(top_p_filter(p, 1.0), p / p.sum())
    np.testing.assert_allclose(top_k_filter(p, p.size), p, rtol=0, atol=1e-12)
    logits = torch.log(torch.from_numpy(p))
    assert torch.equal(filter_logits(logits, top_k=p.size, top_p=1.0), logits)


def test_ties_keep_the_smaller_ids_and_greedy_is_top_1():
    p = np.array([0.1, 0.3, 0.3, 0.3])
    assert greedy(p) == 1
    np.testing.assert_allclose(top_k_filter(p, 2), [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(top_p_filter(p, 0.5), [0, 0.5, 0.5, 0])
    assert np.argmax(top_k_filter(p, 1)) == greedy(p) and np.argmax(top_p_filter(p, 1e-9)) == greedy(p)
    logits = torch.log(torch.from_numpy(np.stack([p, p[::-1]])))
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[False, True, True, False], [True, True, False, False]]


def test_the_order_is_temperature_then_top_k_then_top_p():
    p = np.array([0.5, 0.3, 0.2])
    # At T = 0.3 the top token holds 0.81 > 0.7 of the mass, so the nucleus is that token alone;
    # top-p first (nucleus {0, 1}) and temperature after would keep two tokens.
    assert np.count_nonzero(filtered_distribution(p, temperature=0.3, top_p=0.7)) == 1
    assert np.count_nonzero(oracle_temperature(oracle_top_p(p, 0.7), 0.3)) == 2
    # After top-2 the mass is renormalised: 0.5 / 0.8 = 0.625 < 0.7, so top-p 0.7 keeps both.
    np.testing.assert_allclose(filtered_distribution(p, top_k=2, top_p=0.7), [0.625, 0.375, 0])


def test_greedy_sampling_ignores_the_generator_and_plain_sampling_equals_part_1s_sampler():
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    assert sample(P, rng, temperature=0, top_k=4, top_p=0.5) == 1
    assert rng.bit_generator.state == state
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    for t in (0.5, 1.0, 3.0):
        assert [sample(P, a, t) for _ in range(300)] == [sampling.sample_with_temperature(P, t, b) for _ in range(300)]


# --- PyTorch: the same rules, batched -------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-6.0, 6.0), min_size=2, max_size=12), st.data())
def test_torch_filter_agrees_with_the_numpy_filters(values, data):
    gaps = np.diff(np.sort(values))
    assume(np.all((gaps == 0) | (gaps > 1e-6)))  # logits 1e-172 apart are distinct to a sort but equal after exp
    logits = torch.tensor(values, dtype=torch.float64)
    p = torch.softmax(logits, dim=0).numpy()
    k = data.draw(st.none() | st.integers(1, len(values)))
    top_p = data.draw(st.none() | st.floats(0.01, 1.0))
    q = p if k is None else top_k_filter(p, k)
    if top_p is not None:
        # Away from a boundary, where float64 rounding in two different cumulative sums could disagree.
        assume(np.min(np.abs(np.cumsum(np.sort(q)[::-1]) - top_p)) > 1e-9)
        q = top_p_filter(q, top_p)
    got = top_k_top_p_probs(logits[None], 1.0, k, top_p)[0].double().numpy()
    np.testing.assert_allclose(got, q, rtol=0, atol=1e-6)
    assert np.array_equal(got > 0, q > 0)


def test_torch_next_token_frequencies_match_the_numpy_filtered_distribution():
    logits = torch.log(torch.from_numpy(P)).float()
    generator = torch.Generator().manual_seed(11)
    for options in (dict(temperature=0.7, top_p=0.8), dict(temperature=1.3, top_k=4, top_p=0.9)):
        draws = next_token(logits.expand(DRAWS, -1), generator=generator, **options)
        counts = counts_of(draws.ravel().numpy(), P.size)
        target = filtered_distribution(P, **options)
        assert np.all(counts[target == 0] == 0)
        assert chi_square_p(counts, target) > 1e-3
        assert chi_square_p(counts, oracle_temperature(P, options["temperature"])) < 1e-6


def test_filter_logits_handles_batches_and_any_leading_shape():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 50, generator=generator)
    out = filter_logits(logits, top_k=10, top_p=0.5)
    assert out.shape == logits.shape
    for row, kept in zip(logits.reshape(-1, 50), out.reshape(-1, 50)):
        q = top_p_filter(top_k_filter(torch.softmax(row.double(), 0).numpy(), 10), 0.5)
        assert np.array_equal(torch.isfinite(kept).numpy(), q > 0)
        assert torch.equal(kept[torch.isfinite(kept)], row[torch.isfinite(kept)])  # kept logits are untouched


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: top_p_filter(P, 0.0), r"p must be a number in \(0, 1\]"),
        (lambda: top_p_filter(P, 1.5), r"p must be a number in \(0, 1\]"),
        (lambda: top_p_filter(P, math.nan), r"p must be a number in \(0, 1\]"),
        (lambda: top_p_filter(P, True), r"p must be a number in \(0, 1\]"),
        (lambda: top_k_filter(P, 0), "k must be an integer from 1 to the vocabulary size 8, got 0"),
        (lambda: top_k_filter(P, 2.0), "k must be an integer from 1 to the vocabulary size 8, got 2.0"),
        (lambda: top_k_filter(P, 9), "k must be an integer from 1 to the vocabulary size 8, got 9"),
        (lambda: top_k_filter(P, True), "k must be an integer"),
        (lambda: greedy([0.5, 0.6]), "probs must sum to 1, but they sum to 1.1"),
        (lambda: greedy([1.5, -0.5]), "finite and non-negative"),
        (lambda: greedy([[0.5, 0.5]]), "non-empty 1-D array"),
        (lambda: greedy([]), "non-empty 1-D array"),
        (lambda: greedy([math.nan, 1.0]), "finite and non-negative"),
        (lambda: greedy("ab"), "got a string"),
        (lambda: sample(P, 42), "rng must be a numpy Generator"),
        (lambda: sample(P, np.random.default_rng(0), temperature=-1), "temperature must be >= 0"),
        (lambda: sample(P, np.random.default_rng(0), top_k=0), "top_k must be None or an integer from 1"),
        (lambda: sample(P, np.random.default_rng(0), top_p=2), r"top_p must be None or a number in \(0, 1\]"),
        (lambda: filter_logits(torch.zeros(2, 5), top_k=6), "top_k must be None or an integer from 1 to the vocabulary size 5"),
        (lambda: filter_logits(torch.zeros(2, 5), top_p=-0.1), r"top_p must be None or a number in \(0, 1\]"),
        (lambda: filter_logits([0.0, 1.0], top_k=1), r"logits must be a tensor of shape \(\.\.\., V\)"),
        (lambda: top_k_top_p_probs(torch.zeros(1, 5), 0.0), "temperature must be a finite number > 0"),
    ],
)
def test_errors_are_clear(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_module_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, llmcourse.decoding; assert 'torch' not in sys.modules, 'decoding imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert decoding.SUM_TOLERANCE < 1e-3
