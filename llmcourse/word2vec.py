"""Word2vec: skip-gram with negative sampling (SGNS), written out in numpy.

Skip-gram (Mikolov et al. 2013a, b) learns two vectors per word: ``v_w`` when
``w`` is the centre word and ``u_c`` when ``c`` is a context word. For a
centre ``w`` with observed context ``c`` and ``k`` noise words ``n_1..n_k``
drawn from the unigram distribution raised to 3/4, the loss is

    L = -log sigma(u_c . v_w) - sum_i log sigma(-u_{n_i} . v_w)

("make the true pair score high and the noise pairs score low"). Its
gradients, with ``sigma' = sigma (1 - sigma)`` and ``1 - sigma(x) = sigma(-x)``:

    dL/dv_w     = (sigma(u_c . v_w) - 1) u_c + sum_i sigma(u_{n_i} . v_w) u_{n_i}
    dL/du_c     = (sigma(u_c . v_w) - 1) v_w
    dL/du_{n_i} = sigma(u_{n_i} . v_w) v_w

Two tricks from the word2vec code matter as much as the objective: frequent
words are randomly dropped (subsampling), and the window size is drawn
uniformly from 1..window for each centre word, so near contexts count more.
This module is the readable version, one pair at a time; the fast minibatched
PyTorch trainer is :mod:`llmcourse.word2vec_torch`.
Book section: *Word2vec*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from llmcourse.embeddings import Embeddings
from llmcourse.vocab import Vocabulary


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    """``sigma(x) = 1 / (1 + e^-x)``, computed without overflow for large ``|x|``."""
    x = np.asarray(x, dtype=np.float64)
    # e^-x overflows for x << 0; there sigma(x) = e^x / (1 + e^x) is the safe form.
    out = np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))
    return float(out) if out.ndim == 0 else out


def log_sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    """``log sigma(x) = -log(1 + e^-x)``, stable for large ``|x|``."""
    x = np.asarray(x, dtype=np.float64)
    out = -np.logaddexp(0.0, -x)
    return float(out) if out.ndim == 0 else out


def sgns_loss_and_gradients(
    center: np.ndarray, context: np.ndarray, negatives: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The SGNS loss of one (centre, context, k negatives) example and its three gradients.

    Args:
        center: ``v_w``, shape ``(d,)``.
        context: ``u_c``, shape ``(d,)``.
        negatives: ``u_{n_1} .. u_{n_k}`` as rows, shape ``(k, d)``.

    Returns:
        ``(loss, dL/dv_w, dL/du_c, dL/dU_neg)`` with the shapes of the inputs.
    """
    center, context, negatives = (np.asarray(a, dtype=np.float64) for a in (center, context, negatives))
    if center.ndim != 1 or context.shape != center.shape:
        raise ValueError(f"center and context must be vectors of the same length, got {center.shape} and {context.shape}")
    if negatives.ndim != 2 or negatives.shape[1] != center.shape[0]:
        raise ValueError(f"negatives must have shape (k, {center.shape[0]}), got {negatives.shape}")
    positive_score = context @ center  # u_c . v_w
    negative_scores = negatives @ center  # u_{n_i} . v_w, one per noise word
    loss = -log_sigmoid(positive_score) - np.sum(log_sigmoid(-negative_scores))
    positive_error = sigmoid(positive_score) - 1.0  # dL/d(u_c . v_w)
    negative_errors = sigmoid(negative_scores)  # dL/d(u_{n_i} . v_w)
    grad_center = positive_error * context + negative_errors @ negatives
    grad_context = positive_error * center
    grad_negatives = np.outer(negative_errors, center)
    return float(loss), grad_center, grad_context, grad_negatives


def keep_probabilities(counts: np.ndarray, sample: float = 1e-3) -> np.ndarray:
    """The probability of keeping each occurrence of a word under frequent-word subsampling.

    ``P(keep w) = (sqrt(f(w) / t) + 1) * t / f(w)``, capped at 1, where ``f(w)`` is
    the word's relative frequency and ``t = sample``. This is the formula of the
    word2vec C code (and gensim); the paper's ``1 - sqrt(t / f)`` is its
    simpler cousin. ``sample = 0`` keeps everything.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts <= 0):
        raise ValueError("counts must be a non-empty vector of positive word counts")
    if sample < 0:
        raise ValueError(f"sample must be >= 0 (0 turns subsampling off), got {sample}")
    if sample == 0:
        return np.ones_like(counts)
    frequency = counts / counts.sum()
    return np.minimum((np.sqrt(frequency / sample) + 1.0) * sample / frequency, 1.0)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Negative-sampling distribution ``P_n(w) = count(w)^power / sum count^power``.

    The 3/4 power flattens the unigram distribution: rare words are drawn
    more often than their frequency, *the* less often.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or counts.sum() == 0:
        raise ValueError("counts must be a non-empty vector of non-negative counts, not all zero")
    weights = counts**power
    return weights / weights.sum()


def skipgram_pairs(ids: Sequence[int], window: int, rng: np.random.Generator | None = None) -> Iterator[tuple[int, int]]:
    """Yield ``(centre, context)`` id pairs in corpus order.

    With ``rng``, each centre's window is drawn uniformly from ``1..window``
    (word2vec's "reduced window": a context at distance ``j`` is used with
    probability ``(window - j + 1) / window``); without, the full window is used.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    for i, centre in enumerate(ids):
        reach = int(rng.integers(1, window + 1)) if rng is not None else window
        for j in range(max(0, i - reach), min(len(ids), i + reach + 1)):
            if j != i:
                yield int(centre), int(ids[j])


def build_vocabulary(tokens: Sequence[str], min_count: int = 5) -> tuple[Vocabulary, np.ndarray]:
    """The word2vec vocabulary: words seen at least ``min_count`` times, most frequent first, and their counts.

    Rarer words are dropped from the text, not mapped to ``<unk>`` (as in word2vec).
    """
    if isinstance(tokens, str):
        raise ValueError("tokens must be a list of words, not one str; split the text first")
    counts = Counter(tokens)
    if not counts:
        raise ValueError("the corpus is empty: there are no words to build a vocabulary from")
    try:
        vocabulary = Vocabulary.from_counts(counts, min_count=min_count, unk=False)
    except ValueError as error:
        raise ValueError(f"empty vocabulary: {error}") from None
    return vocabulary, np.array([counts[w] for w in vocabulary.tokens], dtype=np.int64)


def encode_corpus(tokens: Sequence[str], vocabulary: Vocabulary) -> np.ndarray:
    """The ids of the in-vocabulary tokens, in order (out-of-vocabulary words are dropped)."""
    index = vocabulary.index
    return np.fromiter((index[t] for t in tokens if t in index), dtype=np.int64)


@dataclass
class SGNSHistory:
    """Mean loss per epoch and the learning rate at the end of each."""

    loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)


def train_sgns_numpy(
    tokens: Sequence[str],
    dim: int = 50,
    window: int = 2,
    negative: int = 5,
    epochs: int = 5,
    learning_rate: float = 0.025,
    min_learning_rate: float = 1e-4,
    min_count: int = 1,
    sample: float = 0.0,
    seed: int = 0,
) -> tuple[Embeddings, SGNSHistory]:
    """Train SGNS one pair at a time with plain SGD: slow, but every step is visible.

    Each pair takes one step ``theta <- theta - lr * dL/dtheta`` with the
    gradients of :func:`sgns_loss_and_gradients`; the learning rate falls
    linearly from ``learning_rate`` to ``min_learning_rate`` over training.
    Use it on corpora of up to ~10^5 words; :func:`llmcourse.word2vec_torch.train_word2vec`
    does the same job on millions. Returns the centre vectors ``v`` as embeddings.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    if dim < 1 or negative < 0 or epochs < 1:
        raise ValueError(f"need dim >= 1, negative >= 0 and epochs >= 1; got {dim}, {negative}, {epochs}")
    vocabulary, counts = build_vocabulary(tokens, min_count)
    ids = encode_corpus(tokens, vocabulary)
    rng = np.random.default_rng(seed)
    # word2vec's initialisation: small random centre vectors, zero context vectors.
    center_vectors = (rng.random((len(vocabulary), dim)) - 0.5) / dim
    context_vectors = np.zeros((len(vocabulary), dim))
    # Drawing from P_n by inverting its cumulative distribution is exact and much faster
    # than rng.choice(p=...), which rebuilds the table on every call.
    noise_cdf = np.cumsum(noise_distribution(counts))
    keep = keep_probabilities(counts, sample)
    history = SGNSHistory()
    lr = learning_rate
    for epoch in range(epochs):
        kept = ids[rng.random(len(ids)) < keep[ids]]
        losses = []
        for position, centre in enumerate(kept):
            # Linear decay over all centre words of all epochs, as in word2vec.
            progress = (epoch + position / max(len(kept), 1)) / epochs
            lr = learning_rate - (learning_rate - min_learning_rate) * progress
            reach = int(rng.integers(1, window + 1))  # the reduced window
            for j in range(max(0, position - reach), min(len(kept), position + reach + 1)):
                if j == position:
                    continue
                context = kept[j]
                noise_ids = np.minimum(np.searchsorted(noise_cdf, rng.random(negative), side="right"), len(noise_cdf) - 1)
                loss, g_center, g_context, g_negatives = sgns_loss_and_gradients(
                    center_vectors[centre], context_vectors[context], context_vectors[noise_ids]
                )
                center_vectors[centre] -= lr * g_center
                context_vectors[context] -= lr * g_context
                np.add.at(context_vectors, noise_ids, -lr * g_negatives)  # a noise word may repeat
                losses.append(loss)
        history.loss.append(float(np.mean(losses)) if losses else float("nan"))
        history.learning_rate.append(lr)
    return Embeddings(vocabulary.tokens, center_vectors), history
