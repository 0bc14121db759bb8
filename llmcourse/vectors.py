"""Vector semantics: words as points in a space built from counts.

A word is represented by the contexts it occurs in (Firth's "you shall know a
word by the company it keeps"; Harris's distributional hypothesis). Two
kinds of count matrix carry that idea:

* a **term-document** matrix ``M[t, d]`` = how often term ``t`` occurs in
  document ``d`` (a row is a word's vector, a column is a document's);
* a **term-term** (co-occurrence) matrix ``C[w, c]`` = how often context word
  ``c`` occurs within ``window`` words of ``w``.

Raw counts are dominated by frequent, uninformative words, so they are
re-weighted with **tf-idf** (for term-document matrices) or **PPMI** (for
term-term matrices) and compared with the **cosine** of the angle between
vectors. Book section: *Vector semantics*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# A dense V x V co-occurrence matrix of more entries than this (400 MB as float64) is
# almost certainly a mistake: restrict the vocabulary with max_vocab instead.
_MAX_DENSE_ENTRIES = 50_000_000


@dataclass(frozen=True)
class CountMatrix:
    """A count matrix with its row and column labels.

    ``values[i, j]`` belongs to row ``rows[i]`` and column ``columns[j]``.
    For a term-document matrix the rows are terms and the columns documents;
    for a term-term matrix both are words.
    """

    values: np.ndarray
    rows: tuple[str, ...]
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.rows), len(self.columns)):
            raise ValueError(
                f"values has shape {self.values.shape} but there are {len(self.rows)} row labels "
                f"and {len(self.columns)} column labels"
            )
        # Label -> position maps, built once: a matrix of 20,000 terms is looked up often.
        object.__setattr__(self, "_row_index", {label: i for i, label in enumerate(self.rows)})
        object.__setattr__(self, "_column_index", {label: i for i, label in enumerate(self.columns)})

    def row(self, label: str) -> np.ndarray:
        """The vector of one row (a word), e.g. ``matrix.row("fool")``."""
        return self.values[_index_of(self._row_index, label, "row")]

    def column(self, label: str) -> np.ndarray:
        """The vector of one column (a document or a context word)."""
        return self.values[:, _index_of(self._column_index, label, "column")]

    def select(self, rows: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> CountMatrix:
        """The sub-matrix of the given rows and columns, in the order given (all if None)."""
        rows = list(self.rows) if rows is None else list(rows)
        columns = list(self.columns) if columns is None else list(columns)
        r = [_index_of(self._row_index, label, "row") for label in rows]
        c = [_index_of(self._column_index, label, "column") for label in columns]
        return CountMatrix(self.values[np.ix_(r, c)], tuple(rows), tuple(columns))

    def with_values(self, values: np.ndarray) -> CountMatrix:
        """The same labels with new values (e.g. after weighting)."""
        return CountMatrix(np.asarray(values), self.rows, self.columns)


def _index_of(index: Mapping[str, int], label: str, what: str) -> int:
    try:
        return index[label]
    except KeyError:
        raise ValueError(f"{label!r} is not a {what} of this matrix ({len(index)} {what}s)") from None


def term_document_matrix(
    documents: Mapping[str, Sequence[str]], vocabulary: Sequence[str] | None = None, min_count: int = 1
) -> CountMatrix:
    """Count every term in every document: ``M[t, d] = count(t in d)``.

    Args:
        documents: ``{document name: its tokens}``; columns keep this order.
        vocabulary: the terms to count (rows, in this order). By default every
            term that occurs at least ``min_count`` times in all documents
            together, most frequent first (ties alphabetical).
        min_count: see ``vocabulary``.
    """
    if not documents:
        raise ValueError("need at least one document; got an empty mapping")
    totals: Counter[str] = Counter()
    per_document = {}
    for name, tokens in documents.items():
        if isinstance(tokens, str):
            raise ValueError(f"document {name!r} is a str; pass its tokens (e.g. simple_word_tokenize(text))")
        per_document[name] = Counter(tokens)
        totals.update(per_document[name])
    if vocabulary is None:
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        vocabulary = sorted((t for t, c in totals.items() if c >= min_count), key=lambda t: (-totals[t], t))
    if len(vocabulary) == 0:
        raise ValueError("the vocabulary is empty: the documents have no tokens, or min_count is too high")
    if len(set(vocabulary)) != len(vocabulary):
        raise ValueError("vocabulary terms must be distinct")
    values = np.array([[counts[t] for counts in per_document.values()] for t in vocabulary], dtype=np.float64)
    return CountMatrix(values, tuple(vocabulary), tuple(documents))


def cooccurrence_matrix(
    sentences: Sequence[Sequence[str]], window: int = 4, vocabulary: Sequence[str] | None = None, max_vocab: int | None = None
) -> CountMatrix:
    """Term-term counts: ``C[w, c]`` = times ``c`` occurs within ``window`` tokens of ``w`` (either side).

    Windows stop at sentence boundaries. Only words in the vocabulary are
    counted (as targets and as contexts), which is the usual way of keeping a
    dense ``V x V`` matrix small. The matrix is symmetric.

    Args:
        sentences: tokenized sentences (or one long token list inside a list).
        window: how many tokens on each side count as context (at least 1).
        vocabulary: the words to keep; by default all, most frequent first.
        max_vocab: keep only the ``max_vocab`` most frequent words.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1 (tokens on each side), got {window!r}")
    if isinstance(sentences, str) or any(isinstance(s, str) for s in sentences[:1]):
        raise ValueError("sentences must be a list of token lists, e.g. [['the', 'cat'], ['a', 'dog']]")
    if vocabulary is None:
        counts = Counter(t for s in sentences for t in s)
        vocabulary = sorted(counts, key=lambda t: (-counts[t], t))[:max_vocab]
    if len(vocabulary) == 0:
        raise ValueError("the vocabulary is empty: there are no tokens to count")
    size = len(vocabulary)
    if size * size > _MAX_DENSE_ENTRIES:
        raise ValueError(
            f"a dense co-occurrence matrix for {size:,} words has {size * size:,} entries; "
            "pass max_vocab (e.g. 5000) to keep the most frequent words only"
        )
    index = {w: i for i, w in enumerate(vocabulary)}
    targets, contexts = [], []
    for sentence in sentences:
        ids = np.array([index.get(t, -1) for t in sentence], dtype=np.int64)
        # Every pair (i, i + offset) with 1 <= offset <= window is one co-occurrence in
        # each direction; pairs touching out-of-vocabulary words are dropped.
        for offset in range(1, min(window, len(ids) - 1) + 1):
            left, right = ids[:-offset], ids[offset:]
            keep = (left >= 0) & (right >= 0)
            targets += [left[keep], right[keep]]
            contexts += [right[keep], left[keep]]
    values = np.zeros((size, size))
    if targets:
        np.add.at(values, (np.concatenate(targets), np.concatenate(contexts)), 1.0)
    return CountMatrix(values, tuple(vocabulary), tuple(vocabulary))


def term_frequency(counts: np.ndarray, base: float = 10.0) -> np.ndarray:
    """Log-scaled term frequency: ``tf = 1 + log_base(count)`` where count > 0, else 0 (Jurafsky & Martin, eq. 6.12)."""
    counts = _nonnegative(counts, "counts")
    out = np.zeros_like(counts, dtype=np.float64)
    positive = counts > 0
    out[positive] = 1.0 + np.log(counts[positive]) / np.log(base)
    return out


def inverse_document_frequency(counts: np.ndarray, base: float = 10.0) -> np.ndarray:
    """``idf_t = log_base(N / df_t)``: N documents, df_t of them contain term t (one value per row).

    A term in every document gets 0 (it says nothing about which document
    you are in); a term in one document gets the most weight, ``log N``.
    """
    counts = _nonnegative(counts, "counts")
    if counts.ndim != 2:
        raise ValueError(f"counts must be a terms x documents matrix, got shape {counts.shape}")
    document_frequency = (counts > 0).sum(axis=1)
    if np.any(document_frequency == 0):
        raise ValueError("some terms occur in no document (an all-zero row); drop them before computing idf")
    return np.log(counts.shape[1] / document_frequency) / np.log(base)


def tf_idf(counts: np.ndarray, base: float = 10.0, idf: np.ndarray | None = None) -> np.ndarray:
    """tf-idf weighting of a term-document matrix: ``w[t, d] = tf(t, d) * idf(t)`` (Salton; J&M section 6.5).

    With base 10 this reproduces Jurafsky & Martin's Shakespeare example
    (e.g. *battle* in *Julius Caesar*: ``(1 + log10 7) * log10(37/21) = 0.454``).

    By default idf is computed from ``counts`` itself, i.e. over *its* columns:
    weighting four plays out of 37 gives four-play idf values. To weight a
    subset with the whole collection's idf, pass ``idf`` (one value per row),
    e.g. ``inverse_document_frequency(all_plays)[rows]``.
    """
    tf = term_frequency(counts, base)
    if idf is None:
        idf = inverse_document_frequency(counts, base)
    idf = np.asarray(idf, dtype=np.float64)
    if idf.shape != (tf.shape[0],):
        raise ValueError(f"idf has shape {idf.shape}; expected ({tf.shape[0]},), one value per term (row)")
    return tf * idf[:, None]


def ppmi(counts: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Positive pointwise mutual information of a word-by-context count matrix.

    ``PPMI(w, c) = max(0, log2 P(w, c) / (P(w) P_alpha(c)))`` with
    ``P(w, c) = f(w, c) / sum f``, ``P(w) = sum_c f(w, c) / sum f`` and the
    context distribution raised to ``alpha`` and renormalised,
    ``P_alpha(c) = f(c)^alpha / sum_c' f(c')^alpha``. ``alpha = 0.75``
    (Levy, Goldberg & Dagan 2015) lowers the PMI of rare contexts; 1 is plain PPMI.
    Book section: *Vector semantics*, "Pointwise mutual information".
    """
    counts = _nonnegative(counts, "counts")
    if counts.ndim != 2:
        raise ValueError(f"counts must be a 2-D word x context matrix, got shape {counts.shape}")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
    total = counts.sum()
    if total == 0:
        raise ValueError("the count matrix is all zeros; there is nothing to weight")
    p_joint = counts / total
    p_word = counts.sum(axis=1) / total
    context = counts.sum(axis=0) ** alpha
    p_context = context / context.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log2(p_joint / np.outer(p_word, p_context))
    # Unseen pairs give log 0 = -inf; PPMI replaces every negative (and undefined) value by 0.
    return np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """``cos(a, b) = a . b / (|a| |b|)``; rows against rows when given matrices.

    Two vectors give a float; a matrix ``(n, d)`` and a vector ``(d,)`` give
    ``n`` similarities; two matrices give the ``(n, m)`` table. A zero vector
    has similarity 0 with everything (it points nowhere).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"dimension mismatch: vectors of length {a.shape[-1]} and {b.shape[-1]}")
    if a.ndim > 2 or b.ndim > 2:
        raise ValueError("cosine_similarity takes vectors or 2-D matrices of row vectors")
    a_unit, b_unit = normalize_rows(a), normalize_rows(b)
    result = a_unit @ b_unit.T
    return float(result) if result.ndim == 0 else result


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Scale each row (or a single vector) to unit length; zero rows stay zero."""
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def nearest_neighbours(matrix: CountMatrix, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` rows most cosine-similar to ``word``'s row, most similar first (the word itself excluded)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    target = matrix.row(word)
    if not np.any(target):
        raise ValueError(
            f"{word!r} has an all-zero vector (e.g. tf-idf zeroes a word found in every document), "
            "so it has no direction and no neighbours; use the raw counts or another word"
        )
    similarities = cosine_similarity(matrix.values, target)
    order = np.argsort(-similarities, kind="stable")
    neighbours = [(matrix.rows[i], float(similarities[i])) for i in order if matrix.rows[i] != word]
    return neighbours[:k]


def _nonnegative(counts: np.ndarray, name: str) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size == 0:
        raise ValueError(f"{name} is empty")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError(f"{name} must be finite and non-negative (they are counts)")
    return counts
