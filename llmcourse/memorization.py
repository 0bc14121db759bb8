"""What a language model keeps of its training data: verbatim copying, and the exposure of a secret.

Book chapter: *Harms and responsibilities*, sections "Memorisation and copyright" and "Privacy".

**Verbatim copying.** A generated text g (characters or tokens) copies its training text T at
position i, for length n, when the window g[i : i+n] occurs somewhere in T. The copied fraction

    c_n(g, T) = |{ i : g[i : i+n] occurs in T }| / (|g| - n + 1)

is the share of generated windows of length n that are verbatim training text. Carlini et al.
(2021) extracted training data from GPT-2 by generating many samples and keeping those with long
verbatim matches; c_n is the simplest measurement of the same thing. For short n every fluent text
scores near 1 (common phrases recur); what matters is how c_n stays high as n grows.

**Exposure** (Carlini et al. 2019, "The Secret Sharer"). Plant a canary, a sentence with a random
secret r drawn from a space R (e.g. "the code is 3 8 1 5", |R| = 10^4), in the training data. After
training, score every candidate r' in R by the model's log-likelihood of the canary filled with r'
and rank them, rank 1 being the most likely. The exposure of the secret is

    exposure(r) = log2 |R| - log2 rank(r).

It is log2 |R| when the model ranks the true secret first (an attacker who enumerates R and asks
the model finds it), and about 1 when the secret sits in the middle (the model learned nothing
about it). Exposure is measured in bits: how much of the secret's entropy the model has given away.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

# A 64-bit polynomial rolling hash identifies each window. Two different windows collide with
# probability about 2^-64 per pair, so a copied-fraction measured over 10^4 generated windows against
# 10^6 training windows is wrong with probability below 10^-9; tests compare it with plain search.
_HASH_BASE = np.uint64(1_000_003)


def _codes(text: str | Sequence[Hashable], vocabulary: dict[Hashable, int]) -> np.ndarray:
    """Integer codes of the symbols of ``text`` (characters of a str, items of a sequence)."""
    return np.fromiter((vocabulary.setdefault(s, len(vocabulary) + 1) for s in text), dtype=np.uint64, count=len(text))


def _window_hashes(codes: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every length-``n`` window: h_i = sum_j codes[i + j] * B^(n-1-j) mod 2^64."""
    count = len(codes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):  # arithmetic modulo 2^64 is the point
        for j in range(n):
            hashes = hashes * _HASH_BASE + codes[j : j + count]
    return hashes


def _check_texts(generated: object, training: object) -> None:
    for name, value in (("generated", generated), ("training", training)):
        if not isinstance(value, (str, Sequence)) or isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{name} must be a str or a sequence of tokens, got {type(value).__name__}")
    if isinstance(generated, str) != isinstance(training, str):
        raise TypeError("generated and training must both be str (characters) or both token sequences")


def copied_windows(generated: str | Sequence[Hashable], training: str | Sequence[Hashable], n: int) -> np.ndarray:
    """For each window g[i : i+n] of ``generated``, whether it occurs verbatim in ``training`` (bool array).

    Works on characters (two str) or on tokens (two sequences of hashable tokens, e.g. word lists).
    """
    _check_texts(generated, training)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the window length n must be an integer >= 1, got {n!r}")
    if len(generated) < n:
        raise ValueError(f"the generated text has {len(generated)} symbols, fewer than the window length n={n}")
    vocabulary: dict[Hashable, int] = {}
    seen = np.unique(_window_hashes(_codes(training, vocabulary), n))
    mine = _window_hashes(_codes(generated, vocabulary), n)
    return np.isin(mine, seen, assume_unique=False)


def copied_fraction(generated: str | Sequence[Hashable], training: str | Sequence[Hashable], n: int) -> float:
    """c_n(g, T): the fraction of length-``n`` windows of ``generated`` that occur verbatim in ``training``."""
    return float(copied_windows(generated, training, n).mean())


def rank_of(scores: Sequence[float] | np.ndarray, index: int) -> int:
    """The rank of candidate ``index`` when candidates are sorted by score, highest first (1 = best).

    Ties are counted against the secret (rank = 1 + the number of candidates scoring at least as
    high, other than itself), so a model that cannot tell candidates apart gets rank |R|, not 1.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array (one log-likelihood per candidate), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; score every candidate with a finite log-likelihood (or -inf)")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < s.size:
        raise ValueError(f"index must be the position of the true secret among the {s.size} candidates, got {index!r}")
    return int(np.count_nonzero(s >= s[index]))  # includes the secret itself


def exposure(scores: Sequence[float] | np.ndarray, index: int) -> float:
    """exposure = log2 |R| - log2 rank: bits of the secret ``scores[index]`` that the model gives away.

    ``scores`` holds the model's log-likelihood of the canary filled with each candidate secret of R.
    """
    s = np.asarray(scores, dtype=np.float64)
    return math.log2(s.size) - math.log2(rank_of(s, index))
