"""Attention from first principles: regression as attention, stable softmax, scaled dot-product and multi-head.

A linear model already attends. Least squares fits w = (X^T X)^{-1} X^T y on rows
x_i with targets y_i, so its prediction at a query z is

    z^T w = sum_i (z^T (X^T X)^{-1} x_i) y_i:

a weighted sum of the training *values* y_i, each weighted by how the query z meets
the *key* x_i. Ridge regression and kernel methods have the same form with other
weights. Softmax attention picks the weights directly, as a distribution over keys,

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V,

where M is 0 where a query may look and -inf where it may not (the causal mask hides
later positions). Several heads attend in parallel in d_k = d / h dimensions each;
their outputs are concatenated and multiplied by W_o. Book chapter: *Attention*.

The numpy functions are the readable versions (and what Assignment 4 grades
against); :func:`attention_torch` and :func:`multi_head_attention_torch` are the same
in PyTorch. This module imports torch only inside those two, so it stays cheap to import.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def _matrix(a: object, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (one row per example), got shape {a.shape}")
    return a


def _same_width(X: np.ndarray, Z: np.ndarray) -> None:
    if X.shape[1] != Z.shape[1]:
        raise ValueError(
            f"the queries have {Z.shape[1]} features but the training inputs (keys) have {X.shape[1]}; they must match"
        )


# --- regression as attention ---------------------------------------------------------------------


def least_squares_attention_weights(X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """a[q, i] = z_q^T (X^T X)^{-1} x_i: how much query z_q's least-squares prediction takes from y_i.

    ``X`` is (n, d) (keys, one training input per row), ``Z`` is (m, d) (queries);
    the result is (m, n) and ``a @ y`` equals the predictions of the least-squares fit
    of y on X (no intercept). X^+ = (X^T X)^{-1} X^T is computed as the pseudo-inverse,
    so the weights exist even when X^T X is singular (they are then those of the
    minimum-norm solution, as ``np.linalg.lstsq`` gives).
    """
    X, Z = _matrix(X, "X"), _matrix(Z, "Z")
    _same_width(X, Z)
    return Z @ np.linalg.pinv(X)


def ridge_attention_weights(X: np.ndarray, Z: np.ndarray, alpha: float) -> np.ndarray:
    """a[q, i] = z_q^T (X^T X + alpha I)^{-1} x_i: the weights of ridge regression's prediction (no intercept).

    The penalty alpha ||w||^2 shrinks every weight towards zero: the predictions lean
    less on any single training value.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0 (0 is least squares), got {alpha}")
    X, Z = _matrix(X, "X"), _matrix(Z, "Z")
    _same_width(X, Z)
    gram = X.T @ X + alpha * np.eye(X.shape[1])
    return np.linalg.solve(gram, Z.T).T @ X.T


def kernel(A: np.ndarray, B: np.ndarray, kind: str = "rbf", gamma: float = 1.0, degree: int = 3, coef0: float = 1.0
           ) -> np.ndarray:
    """The kernel matrix k(a_i, b_j): "linear" a.b, "rbf" exp(-gamma ||a - b||^2), "poly" (gamma a.b + coef0)^degree."""
    A, B = _matrix(A, "A"), _matrix(B, "B")
    _same_width(A, B)
    if kind == "linear":
        return A @ B.T
    if kind == "rbf":
        squared = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * A @ B.T
        return np.exp(-gamma * np.maximum(squared, 0.0))
    if kind == "poly":
        return (gamma * A @ B.T + coef0) ** degree
    raise ValueError(f"unknown kernel {kind!r}; use 'linear', 'rbf' or 'poly'")


def kernel_ridge_attention_weights(X: np.ndarray, Z: np.ndarray, alpha: float, kind: str = "rbf", **kernel_args: float
                                   ) -> np.ndarray:
    """The dual form: a[q, :] = k(z_q, X) (K + alpha I)^{-1}, with K = k(X, X).

    Kernel ridge regression predicts f(z) = sum_i a_i(z) y_i with these weights. With
    the linear kernel they equal :func:`ridge_attention_weights` (the push-through
    identity (X^T X + aI)^{-1} X^T = X^T (X X^T + aI)^{-1}); with an RBF kernel a key
    counts more the closer it is to the query, as in softmax attention.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (K alone may be singular), got {alpha}")
    X, Z = _matrix(X, "X"), _matrix(Z, "Z")
    K = kernel(X, X, kind, **kernel_args)
    return np.linalg.solve(K + alpha * np.eye(len(X)), kernel(X, Z, kind, **kernel_args)).T


def svm_attention_weights(support_vectors: np.ndarray, dual_coef: np.ndarray, Z: np.ndarray, kind: str = "rbf",
                          **kernel_args: float) -> np.ndarray:
    """A kernel SVM's decision f(z) = sum_i alpha_i y_i k(x_i, z) + b as attention: the weight of support vector i
    is k(z, x_i) (how the query meets key x_i), its value alpha_i y_i (``dual_coef``, one per support vector)."""
    dual = np.asarray(dual_coef, dtype=np.float64).ravel()
    weights = kernel(Z, support_vectors, kind, **kernel_args)
    if weights.shape[1] != dual.size:
        raise ValueError(f"got {weights.shape[1]} support vectors but {dual.size} dual coefficients; they must match")
    return weights


# --- softmax ------------------------------------------------------------------------------------


def naive_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x_i) / sum_j exp(x_j), as written. Overflows: exp(1000) is inf in float64, and inf / inf is nan,
    so ``naive_softmax([1000, 1001])`` is [nan, nan] (warnings silenced, the nan is the point)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x).

    Subtracting the maximum changes nothing mathematically (it cancels between
    numerator and denominator) but makes the largest exponent exp(0) = 1: nothing
    overflows, and the sum is at least 1, so nothing divides by zero. Entries of -inf
    (masked positions) get weight exactly 0; a row that is all -inf is an error.
    """
    x = np.asarray(x, dtype=np.float64)
    top = x.max(axis=axis, keepdims=True)
    if np.any(np.isneginf(top)):
        raise ValueError("a softmax row is entirely -inf (every position masked): there is nothing to attend to")
    e = np.exp(x - top)
    return e / e.sum(axis=axis, keepdims=True)


# --- scaled dot-product and multi-head attention -------------------------------------------------


def causal_mask(n: int) -> np.ndarray:
    """(n, n) boolean matrix, True where query i may attend to key j, i.e. j <= i (lower triangle)."""
    return np.tril(np.ones((n, n), dtype=bool))


def scaled_dot_product_attention(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray | None = None, causal: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(Q K^T / sqrt(d_k) + M) V and the attention weights.

    Shapes: Q (..., n_q, d_k), K (..., n_k, d_k), V (..., n_k, d_v); leading axes
    (batch, heads) broadcast. ``mask`` is boolean, True where attending is allowed;
    ``causal=True`` adds the lower-triangular mask (query i sees keys 0 .. i).
    Returns (output (..., n_q, d_v), weights (..., n_q, n_k)); each row of weights sums to 1.
    """
    Q, K, V = (np.asarray(a, dtype=np.float64) for a in (Q, K, V))
    if Q.shape[-1] != K.shape[-1] or K.shape[-2] != V.shape[-2]:
        raise ValueError(
            f"need Q (.., n_q, d_k), K (.., n_k, d_k), V (.., n_k, d_v); got {Q.shape}, {K.shape}, {V.shape}"
        )
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    allowed = np.ones(scores.shape[-2:], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if causal:
        if scores.shape[-2] != scores.shape[-1]:
            raise ValueError(f"a causal mask needs as many queries as keys, got {scores.shape[-2]} and {scores.shape[-1]}")
        allowed = allowed & causal_mask(scores.shape[-1])
    scores = np.where(allowed, scores, -np.inf)
    weights = softmax(scores, axis=-1)
    return weights @ V, weights


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """(..., n, d) -> (..., n_head, n, d / n_head): head h gets columns h d_k .. (h + 1) d_k - 1."""
    *lead, n, d = x.shape
    if d % n_head:
        raise ValueError(f"the width d = {d} must be divisible by n_head = {n_head}")
    return np.swapaxes(x.reshape(*lead, n, n_head, d // n_head), -3, -2)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(..., n_head, n, d_k) -> (..., n, n_head d_k): concatenate the heads' outputs."""
    x = np.swapaxes(x, -3, -2)
    return x.reshape(*x.shape[:-2], -1)


def multi_head_attention(
    X: np.ndarray,
    W_q: np.ndarray,
    W_k: np.ndarray,
    W_v: np.ndarray,
    W_o: np.ndarray,
    n_head: int,
    causal: bool = False,
    biases: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head self-attention of X (..., n, d): Concat(head_1 .. head_h) W_o with
    head_h = Attention(X W_q^h, X W_k^h, X W_v^h), W^h the h-th block of d_k = d / h columns.

    Weights act on the right (x W, W of shape (d, d)); ``biases`` are (b_q, b_k, b_v, b_o).
    Returns (output (..., n, d), weights (..., n_head, n, n)).
    """
    X = np.asarray(X, dtype=np.float64)
    b_q, b_k, b_v, b_o = biases if biases is not None else (0.0, 0.0, 0.0, 0.0)
    Q, K, V = (split_heads(X @ W + b, n_head) for W, b in ((W_q, b_q), (W_k, b_k), (W_v, b_v)))
    heads, weights = scaled_dot_product_attention(Q, K, V, causal=causal)
    return merge_heads(heads) @ W_o + b_o, weights


def head_value_output_maps(W_v: np.ndarray, W_o: np.ndarray, n_head: int) -> np.ndarray:
    """The (n_head, d, d) matrices W_v^h W_o^h, where W_o^h is the block of W_o's rows that head h's output meets.

    Multi-head attention's output is sum_h A_h X (W_v^h W_o^h): each head moves
    information through its own d x d map of rank at most d_k = d / n_head. With one
    head the two matrices W_v W_o only ever appear as their product, a single d x d
    matrix: learning them separately adds parameters but no expressive power.
    """
    d = W_v.shape[0]
    if d % n_head or W_v.shape != (d, d) or W_o.shape != (d, d):
        raise ValueError(f"need square (d, d) W_v and W_o with d divisible by n_head; got {W_v.shape}, {W_o.shape}, n_head={n_head}")
    d_k = d // n_head
    return np.stack([W_v[:, h * d_k : (h + 1) * d_k] @ W_o[h * d_k : (h + 1) * d_k, :] for h in range(n_head)])


def multi_head_as_sum_of_heads(X: np.ndarray, weights: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """sum_h A_h X M_h, with A_h the (n, n) attention weights of head h and M_h = W_v^h W_o^h (no biases)."""
    return np.einsum("hij,jd,hde->ie", weights, np.asarray(X, dtype=np.float64), maps)


def dot_product_scaling(dims: list[int], n_samples: int = 10_000, n_keys: int = 16, seed: int = 0
                        ) -> list[dict[str, float]]:
    """Why divide by sqrt(d_k): for q, k with independent N(0, 1) entries, q.k has mean 0 and variance d_k.

    For each d in ``dims`` returns the sample variance of q.k and of q.k / sqrt(d), and
    the mean largest softmax weight over ``n_keys`` keys with and without the scaling:
    unscaled scores grow like sqrt(d), the softmax saturates towards one-hot, and its
    gradient vanishes.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for d in dims:
        q = rng.standard_normal((n_samples, 1, d))
        k = rng.standard_normal((n_samples, n_keys, d))
        scores = (q * k).sum(-1)  # (n_samples, n_keys)
        rows.append({
            "d": float(d),
            "variance": float(scores[:, 0].var()),
            "scaled_variance": float((scores[:, 0] / math.sqrt(d)).var()),
            "max_weight": float(softmax(scores).max(-1).mean()),
            "scaled_max_weight": float(softmax(scores / math.sqrt(d)).max(-1).mean()),
        })
    return rows


# --- the same in PyTorch -----------------------------------------------------------------------


def attention_torch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k) + M) v in PyTorch, returning (output, weights); ``mask`` True = may attend.

    Written out so the weights can be plotted; ``F.scaled_dot_product_attention`` gives
    the same output (tested) without ever storing the weights.
    """
    import torch

    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device) if mask is None else mask
    if causal:
        allowed = allowed & torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return weights @ v, weights


def multi_head_attention_torch(x: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor, W_v: torch.Tensor,
                               W_o: torch.Tensor, n_head: int, causal: bool = False
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`multi_head_attention` in PyTorch (no biases): x (B, n, d) -> (output (B, n, d), weights (B, h, n, n))."""
    B, n, d = x.shape
    if d % n_head:
        raise ValueError(f"the width d = {d} must be divisible by n_head = {n_head}")
    q, k, v = ((x @ W).view(B, n, n_head, d // n_head).transpose(1, 2) for W in (W_q, W_k, W_v))
    heads, weights = attention_torch(q, k, v, causal=causal)
    return heads.transpose(1, 2).reshape(B, n, d) @ W_o, weights
