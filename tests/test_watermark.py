"""The green-list watermark (llmcourse.watermark): its lists, its bias, and its detector's statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from llmcourse import watermark as wm

V = 200


def peaked(history: list[int]) -> np.ndarray:
    """A fixed random high-entropy next-token distribution per previous token (a toy 'model')."""
    return np.random.default_rng(1000 + history[-1]).dirichlet(np.full(V, 0.5))


def test_green_list_size_determinism_and_dependence_on_the_previous_token() -> None:
    a = wm.green_list(7, V, gamma=0.25, key=42)
    assert a.dtype == bool and a.sum() == 50
    assert np.array_equal(a, wm.green_list(7, V, gamma=0.25, key=42))
    assert not np.array_equal(a, wm.green_list(8, V, gamma=0.25, key=42))
    assert not np.array_equal(a, wm.green_list(7, V, gamma=0.25, key=43))


def test_every_token_is_green_about_gamma_of_the_time() -> None:
    counts = sum(wm.green_list(prev, V, gamma=0.5, key=1).astype(int) for prev in range(V))
    # each token's count over 200 lists is Binomial(200, 1/2) if the lists are unbiased
    p = stats.chisquare(np.stack([counts, V - counts]).ravel(), np.full(2 * V, V / 2)).pvalue
    assert p > 1e-3


def test_the_bias_multiplies_green_odds_by_e_to_the_delta() -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(V))
    green = wm.green_list(3, V)
    q = wm.watermark_distribution(p, green, delta=2.0)
    assert q.sum() == pytest.approx(1.0)
    g, r = np.flatnonzero(green)[0], np.flatnonzero(~green)[0]
    assert (q[g] / q[r]) / (p[g] / p[r]) == pytest.approx(math.exp(2.0))
    assert np.allclose(wm.watermark_distribution(p, green, delta=0.0), p)


def test_without_a_watermark_z_is_standard_normal() -> None:
    rng = np.random.default_rng(5)
    zs = [wm.detect(wm.generate(peaked, [int(rng.integers(V))], 60, rng, delta=0.0), V).z for _ in range(300)]
    assert stats.kstest(zs, "norm").pvalue > 1e-3
    assert max(zs) < 4.0  # no false alarm at the usual threshold in 300 texts


def test_watermarked_text_is_detected_and_agrees_with_an_exact_binomial_test() -> None:
    rng = np.random.default_rng(6)
    text = wm.generate(peaked, [0], 200, rng, delta=2.0)
    found = wm.detect([0, *text], V)
    assert found.scored == 200 and found.is_watermarked()
    # the exact one-sided binomial test on the same count agrees: far beyond chance
    assert stats.binomtest(found.green, found.scored, 0.25, alternative="greater").pvalue < 1e-6
    assert not wm.detect([0, *text], V, key=999).is_watermarked()  # the wrong key sees nothing


def test_low_entropy_text_carries_little_watermark() -> None:
    def almost_certain(history: list[int]) -> np.ndarray:
        p = np.full(V, 1e-6)
        p[(history[-1] * 7 + 3) % V] = 1.0
        return p / p.sum()

    rng = np.random.default_rng(7)
    text = wm.generate(almost_certain, [0], 200, rng, delta=2.0)
    assert wm.detect([0, *text], V).z < 4.0


def test_bad_input_is_explained() -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        wm.green_list(0, V, gamma=1.0)
    with pytest.raises(ValueError, match="previous_token"):
        wm.green_list(V, V)
    with pytest.raises(ValueError, match="vocab_size"):
        wm.green_list(0, 1)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        wm.detect([3], V)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        wm.detect([3, V + 5], V)
    with pytest.raises(ValueError, match="delta"):
        wm.watermark_distribution(np.ones(V) / V, wm.green_list(0, V), delta=-1.0)
    with pytest.raises(ValueError, match="same length"):
        wm.watermark_distribution(np.ones(3) / 3, wm.green_list(0, V), delta=1.0)
    with pytest.raises(ValueError, match="prompt needs"):
        wm.generate(peaked, [], 5, np.random.default_rng(0))
