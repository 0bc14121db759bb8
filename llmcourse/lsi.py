"""Latent semantic indexing (truncated SVD) and non-negative matrix factorisation.

Both factor a term-document matrix ``M`` (terms x documents) into a few
"topics". The SVD writes ``M = U S V^T = sum_i s_i u_i v_i^T`` with orthonormal
``u_i`` (a topic's weight on each term), ``v_i`` (each document's weight on the
topic) and singular values ``s_1 >= s_2 >= ... >= 0``. Keeping the first ``r``
terms gives the best rank-``r`` approximation in the Frobenius norm
(Eckart-Young), and its squared error is exactly the tail
``sum_{i > r} s_i^2``. Deerwester et al. (1990) called this latent semantic
indexing.

SVD topics may have negative entries and must be orthogonal, which makes them
hard to read; NMF (Lee & Seung 1999, 2001) instead asks for ``M ~ W H`` with
``W, H >= 0``, so a document is an additive mixture of parts.
Book section: *SVD, latent semantic indexing and NMF*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Lee & Seung's updates divide by W H H^T and W^T W H; a zero denominator (a whole zero
# row or column) is replaced by this, as scikit-learn does, so the two agree step for step.
_EPSILON = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class SVD:
    """A (possibly truncated) singular value decomposition ``M ~ U diag(S) Vt``.

    ``U`` is terms x r (topics as columns), ``S`` the r singular values in
    decreasing order, ``Vt`` is r x documents (row i = documents' weight on topic i).
    """

    U: np.ndarray
    S: np.ndarray
    Vt: np.ndarray

    @property
    def rank(self) -> int:
        return len(self.S)

    def reconstruct(self, rank: int | None = None) -> np.ndarray:
        """``M_r = sum_{i <= r} s_i u_i v_i^T``, the best rank-``r`` approximation."""
        r = self.rank if rank is None else _check_rank(rank, self.rank)
        return (self.U[:, :r] * self.S[:r]) @ self.Vt[:r]

    def document_vectors(self, rank: int | None = None) -> np.ndarray:
        """Documents as points in topic space: rows of ``V_r S_r`` (documents x r)."""
        r = self.rank if rank is None else _check_rank(rank, self.rank)
        return self.Vt[:r].T * self.S[:r]

    def term_vectors(self, rank: int | None = None) -> np.ndarray:
        """Terms as points in topic space: rows of ``U_r S_r`` (terms x r)."""
        r = self.rank if rank is None else _check_rank(rank, self.rank)
        return self.U[:, :r] * self.S[:r]


def svd(matrix: np.ndarray, rank: int | None = None) -> SVD:
    """The SVD of ``matrix``, truncated to its first ``rank`` singular triples.

    Signs are made deterministic: each ``u_i`` has its largest-magnitude entry
    positive (an SVD is unique only up to flipping ``u_i`` and ``v_i`` together).
    """
    matrix = _finite_matrix(matrix)
    U, S, Vt = np.linalg.svd(matrix, full_matrices=False)
    if rank is not None:
        rank = _check_rank(rank, len(S))
        U, S, Vt = U[:, :rank], S[:rank], Vt[:rank]
    biggest = np.argmax(np.abs(U), axis=0)
    signs = np.sign(U[biggest, np.arange(U.shape[1])])
    signs[signs == 0] = 1.0
    return SVD(U * signs, S, Vt * signs[:, None])


def reconstruction_error(matrix: np.ndarray, rank: int) -> float:
    """``||M - M_r||_F^2`` for the rank-``r`` truncated SVD (equals ``sum_{i > r} s_i^2``)."""
    matrix = _finite_matrix(matrix)
    return float(np.sum((matrix - svd(matrix).reconstruct(rank)) ** 2))


def explained_variance(singular_values: np.ndarray) -> np.ndarray:
    """The fraction of ``||M||_F^2`` that the first r components capture, for r = 1, 2, ...: ``cumsum(s^2) / sum(s^2)``."""
    squares = np.asarray(singular_values, dtype=np.float64) ** 2
    return np.cumsum(squares) / squares.sum()


def top_terms(component: np.ndarray, terms: tuple[str, ...] | list[str], n: int = 10, signed: bool = True) -> list[tuple[str, float]]:
    """The ``n`` terms with the largest weights in one topic vector (a column of U or a row of H).

    With ``signed=True`` the largest positive weights are returned; an SVD topic
    also has a negative end, which ``top_terms(-u, ...)`` shows. With
    ``signed=False`` terms are ranked by absolute weight.
    """
    component = np.asarray(component, dtype=np.float64)
    if component.shape != (len(terms),):
        raise ValueError(f"the topic vector has shape {component.shape}, expected ({len(terms)},), one weight per term")
    key = component if signed else np.abs(component)
    order = np.argsort(-key, kind="stable")[:n]
    return [(terms[i], float(component[i])) for i in order]


@dataclass(frozen=True)
class NMF:
    """``M ~ W H`` with ``W`` (terms x r) and ``H`` (r x documents) non-negative; ``losses`` per iteration."""

    W: np.ndarray
    H: np.ndarray
    losses: np.ndarray

    def reconstruct(self) -> np.ndarray:
        return self.W @ self.H


def nmf(
    matrix: np.ndarray,
    rank: int,
    iterations: int = 200,
    seed: int = 0,
    init: tuple[np.ndarray, np.ndarray] | None = None,
) -> NMF:
    """Non-negative matrix factorisation by Lee & Seung's multiplicative updates (Frobenius loss).

    Repeats ``W <- W * (M H^T) / (W H H^T)`` then ``H <- H * (W^T M) / (W^T W H)``.
    Each update is gradient descent with a per-entry step chosen so that the
    subtraction becomes a multiplication: entries never turn negative, and
    ``||M - W H||_F^2`` never increases (Lee & Seung 2001, Theorem 1).

    Args:
        matrix: non-negative data (terms x documents).
        rank: the number of parts (topics).
        iterations: update rounds; ``losses[i]`` is the squared error after round i.
        seed: seeds the random initialisation, uniform in ``[0, sqrt(mean(M) / rank))``.
        init: start from these ``(W, H)`` instead (copied).
    """
    matrix = _finite_matrix(matrix)
    if np.any(matrix < 0):
        raise ValueError("NMF needs a non-negative matrix (counts or tf-idf weights); found negative entries")
    rank = _check_rank(rank, min(matrix.shape))
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    if init is None:
        rng = np.random.default_rng(seed)
        scale = np.sqrt(matrix.mean() / rank)
        W = rng.uniform(0, scale, size=(matrix.shape[0], rank))
        H = rng.uniform(0, scale, size=(rank, matrix.shape[1]))
    else:
        W, H = (np.array(a, dtype=np.float64) for a in init)
        if W.shape != (matrix.shape[0], rank) or H.shape != (rank, matrix.shape[1]):
            raise ValueError(
                f"init shapes {W.shape} and {H.shape} do not fit: expected W {(matrix.shape[0], rank)} "
                f"and H {(rank, matrix.shape[1])}"
            )
        if np.any(W < 0) or np.any(H < 0):
            raise ValueError("init must be non-negative: multiplicative updates cannot fix a negative entry")
    losses = np.empty(iterations)
    for step in range(iterations):
        W *= (matrix @ H.T) / _nonzero(W @ (H @ H.T))
        H *= (W.T @ matrix) / _nonzero(W.T @ W @ H)
        losses[step] = np.sum((matrix - W @ H) ** 2)
    return NMF(W, H, losses)


def _nonzero(denominator: np.ndarray) -> np.ndarray:
    return np.where(denominator == 0, _EPSILON, denominator)


def _finite_matrix(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"expected a non-empty 2-D matrix (terms x documents), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("the matrix has NaN or infinite entries")
    return matrix


def _check_rank(rank: int, largest: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= largest:
        raise ValueError(f"rank must be an integer from 1 to {largest} (the smaller side of the matrix), got {rank!r}")
    return int(rank)
