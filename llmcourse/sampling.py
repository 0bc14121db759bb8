"""Sampling the next token, with temperature.

Given a next-token distribution p, temperature T reshapes it to

    p_T(x) = p(x)^(1/T) / sum_y p(y)^(1/T):

T = 1 leaves the model as it is, T -> 0 concentrates all mass on the most likely
token (greedy decoding), and T -> infinity flattens it towards uniform. Book
chapter: *Language models and Shannon's approximations*, "Sampling with temperature".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating, np.integer)):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    t = float(temperature)
    if math.isnan(t) or t < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy, 1 = the model, inf = uniform), got {temperature}")
    return t


def _check_distribution(probs: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probs must be a non-empty 1-D array, got shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("probs must be finite, non-negative and not all zero")
    return p / p.sum()


def apply_temperature(probs: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """The distribution p^(1/T), renormalised. T = 0 puts all mass on the argmax (ties shared equally);
    T = inf gives the uniform distribution over all tokens.

    Computed in log space, log p / T minus its maximum, because the direct formula
    underflows: for T = 0.01, p^(1/T) = p^100 is 0 in float64 for every p below
    about 6e-4, and when every token underflows the renormalisation is 0 / 0.
    """
    p = _check_distribution(probs)
    t = _check_temperature(temperature)
    if t == 0.0:
        best = p == p.max()
        return best / best.sum()
    if math.isinf(t):
        return np.full_like(p, 1.0 / p.size)
    with np.errstate(divide="ignore"):
        logits = np.log(p) / t
    logits -= logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


def sample_with_temperature(
    probs: Sequence[float] | np.ndarray, temperature: float, rng: np.random.Generator
) -> int:
    """Draw one token id from ``apply_temperature(probs, temperature)`` using ``rng``.

    T = 0 returns the most likely id (the smallest one if several tie) without
    using ``rng``, so greedy decoding is deterministic.
    """
    t = _check_temperature(temperature)
    if t == 0.0:
        return int(np.argmax(_check_distribution(probs)))
    q = apply_temperature(probs, t)
    # Inverse-CDF sampling: one uniform draw per token keeps seeded runs reproducible.
    cdf = np.cumsum(q)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), q.size - 1))
