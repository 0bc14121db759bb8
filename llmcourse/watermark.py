"""A statistical watermark for generated text (Kirchenbauer et al. 2023, "soft" green-list variant).

Book chapter: *Harms and responsibilities*, section "Fraud, misinformation and watermarks".

Before each token is sampled, the previous token and a secret key seed a random split of the
vocabulary V into a *green list* G of size gamma |V| and a red list. The generator adds delta to
the logit of every green token,

    p'(x) = p(x) e^{delta [x in G]} / sum_y p(y) e^{delta [y in G]},

so green tokens become a little more likely wherever the model has several good choices. A detector
that knows the key (and not the model) recounts the green tokens s_G among T scored tokens; without
a watermark each token is green with probability gamma independently of the text, so

    z = (s_G - gamma T) / sqrt(T gamma (1 - gamma))

is approximately standard normal, and a large z (say > 4, a false-positive rate near 3e-5) flags
watermarked text. Where the model is nearly certain (low entropy) delta barely changes the choice,
which is why short or formulaic texts carry little watermark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def _check_gamma(gamma: float) -> float:
    if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not 0 < gamma < 1:
        raise ValueError(f"gamma (the green fraction of the vocabulary) must lie strictly between 0 and 1, got {gamma!r}")
    return float(gamma)


def _check_vocab_size(vocab_size: int) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    return int(vocab_size)


def green_list(previous_token: int, vocab_size: int, gamma: float = 0.25, key: int = 15485863) -> np.ndarray:
    """A boolean mask over the vocabulary: True for the green tokens after ``previous_token``.

    The split is a function of (key, previous token) only, so generator and detector agree on it
    without sharing the model. Exactly round(gamma * |V|) tokens are green.
    """
    vocab_size = _check_vocab_size(vocab_size)
    gamma = _check_gamma(gamma)
    if isinstance(previous_token, bool) or not isinstance(previous_token, (int, np.integer)) or not 0 <= previous_token < vocab_size:
        raise ValueError(f"previous_token must be a token id in [0, {vocab_size}), got {previous_token!r}")
    rng = np.random.default_rng([int(key), int(previous_token)])
    mask = np.zeros(vocab_size, dtype=bool)
    mask[rng.permutation(vocab_size)[: round(gamma * vocab_size)]] = True
    return mask


def watermark_distribution(probs: Sequence[float] | np.ndarray, green: np.ndarray, delta: float) -> np.ndarray:
    """p'(x) proportional to p(x) e^{delta [x in G]}: the next-token distribution with green tokens boosted."""
    p = np.asarray(probs, dtype=np.float64)
    g = np.asarray(green, dtype=bool)
    if p.ndim != 1 or p.shape != g.shape:
        raise ValueError(f"probs and the green mask must be 1-D and the same length, got {p.shape} and {g.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("probs must be finite, non-negative and not all zero (a next-token distribution)")
    if not math.isfinite(delta) or delta < 0:
        raise ValueError(f"delta (the green-logit bias) must be a finite number >= 0, got {delta!r}")
    boosted = p * np.where(g, math.exp(delta), 1.0)
    return boosted / boosted.sum()


def generate(
    next_distribution: Callable[[list[int]], np.ndarray],
    prompt: Sequence[int],
    length: int,
    rng: np.random.Generator,
    delta: float = 2.0,
    gamma: float = 0.25,
    key: int = 15485863,
) -> list[int]:
    """Sample ``length`` tokens after ``prompt``, boosting each step's green list by ``delta``.

    ``next_distribution(history)`` is any model's next-token distribution over the vocabulary
    (an n-gram model, a GPT's softmax). delta = 0 samples the model unchanged, with the same
    random numbers, so watermarked and plain text differ only where the bias changed a choice.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    history = [int(t) for t in prompt]
    if not history:
        raise ValueError("the prompt needs at least one token: it seeds the first green list")
    for _ in range(length):
        probs = np.asarray(next_distribution(history), dtype=np.float64)
        probs = watermark_distribution(probs, green_list(history[-1], probs.size, gamma, key), delta)
        history.append(int(rng.choice(probs.size, p=probs)))
    return history[len(prompt):]


@dataclass(frozen=True)
class Detection:
    """The detector's count: green tokens among the scored ones, and the z-score of that count."""

    green: int
    scored: int
    z: float

    def is_watermarked(self, threshold: float = 4.0) -> bool:
        """z above ``threshold``: at 4 an unwatermarked text is flagged with probability about 3e-5."""
        return self.z > threshold


def detect(tokens: Sequence[int], vocab_size: int, gamma: float = 0.25, key: int = 15485863) -> Detection:
    """Count green tokens (each judged by the green list of the token before it) and return the z-score.

    z = (s_G - gamma T) / sqrt(T gamma (1 - gamma)) with T = len(tokens) - 1 scored tokens.
    """
    gamma = _check_gamma(gamma)
    ids = [int(t) for t in tokens]
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens to score one (the first only seeds a green list), got {len(ids)}")
    green = 0
    for prev, cur in zip(ids[:-1], ids[1:]):
        if not 0 <= cur < vocab_size:
            raise ValueError(f"token id {cur} is outside the vocabulary [0, {vocab_size})")
        green += bool(green_list(prev, vocab_size, gamma, key)[cur])
    scored = len(ids) - 1
    z = (green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma))
    return Detection(green=green, scored=scored, z=z)

