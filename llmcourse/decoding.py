"""Decoding: turning a next-token distribution into a token (greedy, temperature, top-k, top-p).

A language model gives, at every step, a distribution p over the V tokens of its
vocabulary. A decoding rule picks one token from it:

    greedy        x = argmax_i p_i                                   (no randomness)
    temperature   p_T(i) = p_i^(1/T) / sum_j p_j^(1/T)                (llmcourse.sampling)
    top-k         keep the k most probable tokens K, p_k(i) = p_i / sum_{j in K} p_j   (Fan et al. 2018)
    top-p         keep the nucleus N(p): the smallest set of most probable tokens
                  whose mass sum_{j in N} p_j >= p, then renormalise   (Holtzman et al. 2020)

:func:`sample` applies them in this order: temperature first, then top-k, then top-p on
what is left, then one draw. The order matters: top-p's nucleus depends on the
temperature (a low T concentrates the mass, so fewer tokens reach p), and top-p after
top-k measures mass within the k survivors, as in Hugging Face's ``generate``.

Ties are broken towards the smaller token id, everywhere: greedy returns the smallest
id among the most probable tokens, and top-k / top-p sort tokens by probability with a
*stable* sort, so a tie at the boundary keeps the tokens with the smaller ids and the
kept set always has exactly k tokens (top-k) or exactly the minimal size (top-p). With
this rule top-k with k = 1 and top-p with a tiny p are both greedy.

The numpy functions work on one probability vector, for teaching and testing;
:func:`filter_logits` is the batched PyTorch version on logits that
:func:`llmcourse.gpt.next_token` uses, with the same rules (tested to agree). PyTorch is
imported only when a torch function is called, so the numpy part needs numpy alone.
Book chapter: *Decoding: from distributions to text*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from llmcourse.sampling import apply_temperature

if TYPE_CHECKING:  # only for the annotations; the module itself does not need torch
    import torch

# How far from 1 a probability vector's sum may be: float64 softmax outputs are within ~1e-15,
# float32 ones (a model's output cast to float64) within ~1e-6.
SUM_TOLERANCE = 1e-5


# --- checks -------------------------------------------------------------------------------------


def check_distribution(probs: Sequence[float] | np.ndarray) -> np.ndarray:
    """``probs`` as a float64 vector, after checking it is a distribution: 1-D, non-empty, finite,
    non-negative, summing to 1 within ``SUM_TOLERANCE``. Raises ValueError saying what is wrong."""
    if isinstance(probs, (str, bytes)):
        raise ValueError("probs must be a 1-D array of probabilities, got a string")
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"probs must be a 1-D array of numbers, got {type(probs).__name__}") from error
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probs must be a non-empty 1-D array (one probability per token), got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probs must be finite and non-negative; if you have logits, apply a softmax first")
    total = float(p.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"probs must sum to 1, but they sum to {total:.6g}; normalise them first (p / p.sum())")
    return p


def check_top_k(k: object, vocab_size: int, name: str = "k") -> int:
    """``k`` as an int, after checking it is an integer from 1 to ``vocab_size``."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 1 <= k <= vocab_size:
        optional = "None or " if name == "top_k" else ""
        raise ValueError(f"{name} must be {optional}an integer from 1 to the vocabulary size {vocab_size}, got {k!r}")
    return int(k)


def check_top_p(p: object, name: str = "p") -> float:
    """``p`` as a float, after checking 0 < p <= 1 (p = 1 keeps every token)."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0 < p <= 1:
        optional = "None or " if name == "top_p" else ""
        raise ValueError(f"{name} must be {optional}a number in (0, 1] (the probability mass to keep; 1 keeps "
                         f"every token), got {p!r}")
    return float(p)


# --- numpy: one distribution --------------------------------------------------------------------


def greedy(probs: Sequence[float] | np.ndarray) -> int:
    """The most probable token, argmax_i p_i; the smallest id if several tie."""
    return int(np.argmax(check_distribution(probs)))  # np.argmax returns the first maximum


def _ranked(p: np.ndarray) -> np.ndarray:
    """Token ids from most to least probable; equal probabilities keep id order (a stable sort)."""
    return np.argsort(-p, kind="stable")


def top_k_filter(probs: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """Keep the k most probable tokens and renormalise: p_i / sum_{j in K} p_j for i in K, else 0.

    Exactly k tokens are kept: at a tie on the boundary, the tokens with the smaller ids
    stay. k = V returns the distribution unchanged. Shape (V,) -> (V,).
    """
    p = check_distribution(probs)
    return _top_k(p, check_top_k(k, p.size))


def _top_k(p: np.ndarray, k: int) -> np.ndarray:
    kept = np.zeros_like(p)
    best = _ranked(p)[:k]
    kept[best] = p[best]
    return kept / kept.sum()  # the most probable token has p > 0, so the sum is positive


def nucleus_size(probs: Sequence[float] | np.ndarray, p: float) -> int:
    """|N(p)|: how many of the most probable tokens it takes for their mass to reach p."""
    return _nucleus_size(check_distribution(probs), check_top_p(p))


def _nucleus_size(q: np.ndarray, p: float) -> int:
    if p == 1.0:
        return int(q.size)
    ranked = q[_ranked(q)]
    mass_before = np.concatenate(([0.0], np.cumsum(ranked)[:-1]))
    # Token r (in ranked order) is needed while the tokens before it hold less than p.
    return int(np.count_nonzero(mass_before < p))


def top_p_filter(probs: Sequence[float] | np.ndarray, p: float) -> np.ndarray:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set N of most probable tokens
    with sum_{j in N} p_j >= p, renormalised; the rest get 0.

    The most probable token is always kept, so p -> 0 is greedy; p = 1 keeps every token
    (returned unchanged, not recomputed, so rounding in a cumulative sum cannot drop one).
    Ties at the boundary keep the smaller ids. ``p`` must lie in (0, 1]. Shape (V,) -> (V,).
    """
    return _top_p(check_distribution(probs), check_top_p(p))


def _top_p(q: np.ndarray, p: float) -> np.ndarray:
    if p == 1.0:
        return q / q.sum()
    nucleus = _ranked(q)[: _nucleus_size(q, p)]
    kept = np.zeros_like(q)
    kept[nucleus] = q[nucleus]
    return kept / kept.sum()


def filtered_distribution(
    probs: Sequence[float] | np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    """The distribution :func:`sample` draws from: temperature, then top-k, then top-p. Shape (V,)."""
    p = check_distribution(probs)
    if top_k is not None:
        check_top_k(top_k, p.size, "top_k")
    if top_p is not None:
        check_top_p(top_p, "top_p")
    q = apply_temperature(p, temperature)  # checks the temperature; T = 0 gives the argmax (ties shared)
    if top_k is not None:
        q = _top_k(q, top_k)
    if top_p is not None:
        q = _top_p(q, top_p)
    return q


def sample(
    probs: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> int:
    """Draw one token id from ``filtered_distribution(probs, temperature, top_k, top_p)`` with ``rng``.

    Temperature 0 is greedy: it returns :func:`greedy` (the smallest id among ties)
    without touching ``rng``. Otherwise one uniform draw u from ``rng`` picks the first id
    whose cumulative probability exceeds u (inverse-CDF sampling), the same draw as
    :func:`llmcourse.sampling.sample_with_temperature`, so with no filter both give the
    same token from the same generator state.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    q = filtered_distribution(probs, temperature, top_k, top_p)
    if temperature == 0:
        return greedy(probs)
    cdf = np.cumsum(q)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), q.size - 1))


# --- PyTorch: a batch of logits -----------------------------------------------------------------


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set every logit outside the top-k, then outside the top-p nucleus, to -inf. Shape (..., V) -> (..., V).

    ``softmax`` of the result is ``top_p_filter(top_k_filter(softmax(logits), k), p)`` row by
    row, with the same tie rule (a stable descending sort: smaller ids first). Apply the
    temperature before calling this (divide the logits by T), as :func:`llmcourse.gpt.next_token`
    does. The nucleus is measured in float32 or better. With neither filter the input is
    returned as it is.
    """
    import torch

    if not isinstance(logits, torch.Tensor) or logits.dim() < 1 or logits.shape[-1] < 1:
        raise ValueError("logits must be a tensor of shape (..., V) with V >= 1")
    vocab_size = logits.shape[-1]
    if top_k is not None:
        top_k = check_top_k(top_k, vocab_size, "top_k")
    if top_p is not None:
        top_p = check_top_p(top_p, "top_p")
    if (top_k is None or top_k == vocab_size) and (top_p is None or top_p == 1.0):
        return logits
    ranked, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    remove = torch.zeros_like(ranked, dtype=torch.bool)
    if top_k is not None:
        remove[..., top_k:] = True
    if top_p is not None and top_p < 1.0:
        kept = ranked.masked_fill(remove, float("-inf"))
        probs = torch.softmax(kept.float() if kept.dtype in (torch.float16, torch.bfloat16) else kept, dim=-1)
        # The same "mass before < p" rule as nucleus_size, with an exclusive cumulative sum.
        mass_before = torch.cat([torch.zeros_like(probs[..., :1]), torch.cumsum(probs, dim=-1)[..., :-1]], dim=-1)
        remove |= mass_before >= top_p
    remove_by_id = torch.zeros_like(remove).scatter(-1, order, remove)  # back from ranked order to token ids
    return logits.masked_fill(remove_by_id, float("-inf"))


def top_k_top_p_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None) -> torch.Tensor:
    """softmax(filter_logits(logits / T, top_k, top_p)): the distribution that sampling draws from, (..., V).

    ``temperature`` must be > 0 here (temperature 0 is greedy decoding: an argmax, not a distribution).
    """
    import torch

    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0 \
            or math.isinf(temperature):
        raise ValueError(f"temperature must be a finite number > 0 here (0 means greedy: use argmax), got {temperature!r}")
    return torch.softmax(filter_logits(logits / temperature, top_k, top_p).float(), dim=-1)
