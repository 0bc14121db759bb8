"""Word embeddings as a table of vectors: similarity, neighbours, analogies and their evaluation.

Whatever produced the vectors (SVD of counts, word2vec), the questions asked
of them are the same:

* **similarity**: the cosine of two words' vectors;
* **neighbours**: the words whose vectors are most cosine-similar;
* **analogies** "a is to b as c is to ?" (Mikolov, Yih & Zweig 2013):
  3CosAdd picks ``argmax_x cos(x, b) - cos(x, a) + cos(x, c)`` (the word
  nearest ``b - a + c``); 3CosMul (Levy & Goldberg 2014) picks
  ``argmax_x cos'(x, b) cos'(x, c) / (cos'(x, a) + eps)`` with cosines shifted
  to ``[0, 1]`` by ``cos' = (1 + cos) / 2``, so one large term cannot
  dominate. The three question words are never answers.
* **evaluation**: accuracy on the Google analogy set, and the Spearman
  correlation between cosine similarity and human judgements (WordSim-353,
  SimLex-999, MEN).

Book section: *Word2vec*, "What the vectors know".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from llmcourse.vectors import normalize_rows

COSMUL_EPSILON = 1e-3  # Levy & Goldberg (2014) use 0.001 to avoid dividing by zero


@dataclass(frozen=True)
class AnalogyResult:
    """Accuracy on an analogy set: ``correct / evaluated`` overall and per section.

    Questions with a word outside the (restricted) vocabulary are not evaluated;
    ``skipped`` counts them, so a reader can see how much of the set a small
    vocabulary covers.
    """

    accuracy: float
    correct: int
    evaluated: int
    skipped: int
    sections: dict[str, tuple[int, int]]  # section -> (correct, evaluated)


@dataclass(frozen=True)
class SimilarityResult:
    """Spearman's rank correlation between model cosines and human scores, over the pairs in vocabulary."""

    spearman: float
    pairs_used: int
    pairs_skipped: int


class Embeddings:
    """A vocabulary of words, each with a dense vector (one row of ``vectors``).

    Args:
        words: the words, most frequent first if ``restrict_vocab`` is to mean anything.
        vectors: a ``(len(words), dim)`` array.
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float64)
        words = list(words)
        if not words:
            raise ValueError("an embedding table needs at least one word; the vocabulary is empty")
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"vectors has shape {vectors.shape}; expected ({len(words)}, dim), one row per word")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        if len(self.index) != len(words):
            raise ValueError("embedding words must be distinct")
        self.vectors = vectors
        self.unit = normalize_rows(vectors)  # cosine = dot product of unit rows

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __repr__(self) -> str:
        return f"Embeddings({len(self)} words, dim {self.dim})"

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def _id(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise ValueError(
                f"{word!r} is not in the vocabulary ({len(self)} words); check the spelling and case "
                "(the course lower-cases text), or lower min_count when training"
            ) from None

    def vector(self, word: str) -> np.ndarray:
        """The vector of ``word``."""
        return self.vectors[self._id(word)]

    def similarity(self, first: str, second: str) -> float:
        """``cos(v_first, v_second)``."""
        return float(self.unit[self._id(first)] @ self.unit[self._id(second)])

    def most_similar(
        self,
        positive: str | Sequence[str],
        negative: Sequence[str] = (),
        k: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` words nearest (by cosine) to ``sum(positive) - sum(negative)`` of unit vectors.

        ``most_similar("king")`` gives the neighbours of *king*;
        ``most_similar(["king", "woman"], ["man"])`` is the 3CosAdd analogy.
        Query words are excluded. ``restrict_vocab`` searches only the first
        (most frequent) words.
        """
        positive = [positive] if isinstance(positive, str) else list(positive)
        negative = list(negative)
        if not positive and not negative:
            raise ValueError("give at least one word in positive or negative")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        query = sum(self.unit[self._id(w)] for w in positive) - sum(
            (self.unit[self._id(w)] for w in negative), np.zeros(self.dim)
        )
        limit = self._limit(restrict_vocab)
        scores = self.unit[:limit] @ normalize_rows(query)
        for w in positive + negative:
            if self.index[w] < limit:
                scores[self.index[w]] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.words[i], float(scores[i])) for i in order if np.isfinite(scores[i])]

    def analogy(self, a: str, b: str, c: str, method: str = "3cosadd", restrict_vocab: int | None = None) -> str:
        """Answer "``a`` is to ``b`` as ``c`` is to ?" with 3CosAdd or 3CosMul."""
        ids = np.array([[self._id(a), self._id(b), self._id(c)]])
        return self.words[int(self._answer(ids, method, self._limit(restrict_vocab))[0])]

    def _limit(self, restrict_vocab: int | None) -> int:
        if restrict_vocab is None:
            return len(self)
        if restrict_vocab < 1:
            raise ValueError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
        return min(restrict_vocab, len(self))

    def _answer(self, ids: np.ndarray, method: str, limit: int) -> np.ndarray:
        """Answer a batch of questions given as rows of ids ``(a, b, c)``; returns the answer ids."""
        if method not in ("3cosadd", "3cosmul"):
            raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
        candidates = self.unit[:limit]
        cos_a, cos_b, cos_c = (self.unit[ids[:, j]] @ candidates.T for j in range(3))
        if method == "3cosadd":
            scores = cos_b - cos_a + cos_c
        else:
            shift = lambda cos: (1.0 + cos) / 2.0  # noqa: E731 - the formula's own notation
            scores = shift(cos_b) * shift(cos_c) / (shift(cos_a) + COSMUL_EPSILON)
        rows = np.arange(len(ids))
        for j in range(3):  # a question's own words are never its answer
            inside = ids[:, j] < limit
            scores[rows[inside], ids[inside, j]] = -np.inf
        return scores.argmax(axis=1)

    def evaluate_analogies(
        self,
        questions: Iterable[tuple[str, str, str, str, str]],
        method: str = "3cosadd",
        restrict_vocab: int | None = 300_000,
        batch_size: int = 512,
    ) -> AnalogyResult:
        """Accuracy on ``(section, a, b, c, d)`` questions (e.g. ``data.analogy_questions()``).

        A question counts only if all four words are among the first
        ``restrict_vocab`` words (gensim's convention, so results compare).
        """
        limit = self._limit(restrict_vocab)
        kept, sections_of, skipped = [], [], 0
        for section, *words in questions:
            ids = [self.index.get(w, limit) for w in words]
            if max(ids) >= limit:
                skipped += 1
                continue
            kept.append(ids)
            sections_of.append(section)
        per_section: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        correct = 0
        if kept:
            table = np.array(kept)
            for start in range(0, len(table), batch_size):
                chunk = table[start : start + batch_size]
                hits = self._answer(chunk[:, :3], method, limit) == chunk[:, 3]
                for section, hit in zip(sections_of[start : start + batch_size], hits):
                    per_section[section][0] += int(hit)
                    per_section[section][1] += 1
                correct += int(hits.sum())
        evaluated = len(kept)
        return AnalogyResult(
            accuracy=correct / evaluated if evaluated else 0.0,
            correct=correct,
            evaluated=evaluated,
            skipped=skipped,
            sections={s: (c, n) for s, (c, n) in per_section.items()},
        )

    def evaluate_similarity(self, pairs: Iterable[tuple[str, str, float]]) -> SimilarityResult:
        """Spearman's rho between ``cos(w1, w2)`` and the human score, over pairs with both words known."""
        model, human, skipped = [], [], 0
        for first, second, score in pairs:
            if first in self.index and second in self.index:
                model.append(self.similarity(first, second))
                human.append(score)
            else:
                skipped += 1
        if len(model) < 3:
            raise ValueError(f"only {len(model)} pairs have both words in the vocabulary; need at least 3")
        return SimilarityResult(spearman_correlation(np.array(model), np.array(human)), len(model), skipped)

    def project_2d(self, words: Sequence[str]) -> np.ndarray:
        """2-D coordinates of ``words`` by PCA of their vectors (centred, top two principal axes)."""
        if len(words) < 2:
            raise ValueError("give at least two words to project")
        points = np.stack([self.vector(w) for w in words])
        centred = points - points.mean(axis=0)
        _, _, Vt = np.linalg.svd(centred, full_matrices=False)
        return centred @ Vt[:2].T

    def plot(self, words: Sequence[str], ax=None, **scatter):  # noqa: ANN001, ANN201 - matplotlib objects
        """Scatter ``words`` in the plane of :meth:`project_2d`, each labelled; returns the axes."""
        import matplotlib.pyplot as plt

        xy = self.project_2d(words)
        ax = ax or plt.subplots(figsize=(6, 5))[1]
        ax.scatter(xy[:, 0], xy[:, 1], **scatter)
        for (x, y), word in zip(xy, words):
            ax.annotate(word, (x, y), xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("principal axis 1")
        ax.set_ylabel("principal axis 2")
        return ax


def spearman_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's correlation of the ranks, ties sharing their average rank."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got shapes {x.shape} and {y.shape}")
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    if denominator == 0:
        raise ValueError("Spearman's rho is undefined when one side is constant")
    return float((rx * ry).sum() / denominator)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    # Tied values share the mean of the ranks they span.
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]
