"""Entropy, cross-entropy and perplexity: how surprised a model is by text.

For a test text w_1 .. w_N and a model P, the chain rule gives

    log P(w_1 .. w_N) = sum_i log P(w_i | w_1 .. w_{i-1}),

the cross-entropy (in bits per token) is H = -(1/N) sum_i log2 P(w_i | ...), and the
perplexity is PP = 2^H = P(w_1 .. w_N)^(-1/N): the size of a uniform choice that
would be exactly as surprising. Book chapter: *N-gram models, smoothing and
perplexity*, "Perplexity and cross-entropy".

Every model in the course reports perplexity through these functions, from the
natural-log probabilities it assigns, so the numbers are comparable across parts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _as_probabilities(p: Sequence[float] | np.ndarray, name: str = "p") -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of probabilities, got shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must contain finite, non-negative probabilities")
    if not math.isclose(float(p.sum()), 1.0, rel_tol=0, abs_tol=1e-6):
        raise ValueError(f"{name} must sum to 1, but sums to {p.sum():.6g}; normalise it first (p / p.sum())")
    return p


def _log_base(base: float) -> float:
    if not (base > 0 and base != 1 and math.isfinite(base)):
        raise ValueError(f"the logarithm base must be positive and not 1 (2 for bits, e for nats), got {base}")
    return math.log(base)


def entropy(p: Sequence[float] | np.ndarray, base: float = 2.0) -> float:
    """H(p) = -sum_x p(x) log p(x), with 0 log 0 = 0. Bits for base 2, nats for base e."""
    p = _as_probabilities(p)
    nz = p[p > 0]
    # + 0.0 turns the -0.0 of a certain outcome into 0.0, so it prints as "0.000".
    return float(-(nz * np.log(nz)).sum() / _log_base(base)) + 0.0


def cross_entropy(log_probs: Sequence[float] | np.ndarray, base: float = 2.0) -> float:
    """H = -(1/N) sum_i ln P(w_i | h_i) / ln(base), from the natural-log probabilities of N tokens."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 1 or lp.size == 0:
        raise ValueError(f"log_probs must be a non-empty 1-D array (one log-probability per token), got shape {lp.shape}")
    if np.any(lp > 1e-12) or np.any(np.isnan(lp)):
        raise ValueError("log_probs must be natural logarithms of probabilities, so <= 0 and not NaN")
    return float(-lp.mean() / _log_base(base))


def perplexity_from_log_probs(log_probs: Sequence[float] | np.ndarray) -> float:
    """PP = exp(-(1/N) sum_i ln P(w_i | h_i)) = 2^(cross-entropy in bits). Infinite if any P is 0."""
    return float(math.exp(cross_entropy(log_probs, base=math.e))) if np.all(np.isfinite(log_probs)) else math.inf


# The name the book and the assignment use.
perplexity = perplexity_from_log_probs


def kl_divergence(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray, base: float = 2.0) -> float:
    """D(p || q) = sum_x p(x) log(p(x) / q(x)) = H(p, q) - H(p) >= 0; infinite if q misses p's support."""
    p, q = _as_probabilities(p, "p"), _as_probabilities(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same length, got {p.shape[0]} and {q.shape[0]}")
    support = p > 0
    if np.any(q[support] == 0):
        return math.inf
    return float((p[support] * np.log(p[support] / q[support])).sum() / _log_base(base))
