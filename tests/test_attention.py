"""Attention, against independent oracles.

Oracles: numpy's lstsq and scikit-learn's Ridge, KernelRidge and SVC for regression as
attention; SciPy's and torch's softmax; ``torch.nn.functional.scaled_dot_product_attention``
and ``torch.nn.MultiheadAttention`` (weights copied in) in float64; the variance of a
sum of d independent products (d) for the sqrt(d) scaling.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import softmax as scipy_softmax
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.svm import SVC

from llmcourse import attention

ATOL = 1e-10  # float64 attention against float64 references


def _regression_data(seed: int, n: int = 30, d: int = 4, m: int = 7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.3 * rng.normal(size=n)
    return X, y, rng.normal(size=(m, d))


# --- regression as attention ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_least_squares_prediction_is_a_weighted_sum_of_the_values(seed):
    X, y, Z = _regression_data(seed)
    weights = attention.least_squares_attention_weights(X, Z)
    assert weights.shape == (len(Z), len(X))
    w, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(weights @ y, Z @ w, atol=ATOL)
    np.testing.assert_allclose(weights @ y, LinearRegression(fit_intercept=False).fit(X, y).predict(Z), atol=1e-9)
    # The formula as the book writes it, for one query: a_i = z^T (X^T X)^{-1} x_i.
    z = Z[0]
    a = np.array([z @ np.linalg.inv(X.T @ X) @ x for x in X])
    np.testing.assert_allclose(weights[0], a, atol=ATOL)


def test_least_squares_weights_with_collinear_inputs_match_lstsq():
    X, y, Z = _regression_data(3)
    X = np.column_stack([X, X[:, 0]])  # X^T X is singular: lstsq returns the minimum-norm fit
    Z = np.column_stack([Z, Z[:, 0]])
    w, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(attention.least_squares_attention_weights(X, Z) @ y, Z @ w, atol=1e-9)


@pytest.mark.parametrize("alpha", [0.01, 1.0, 25.0])
def test_ridge_weights_match_sklearn(alpha):
    X, y, Z = _regression_data(4)
    weights = attention.ridge_attention_weights(X, Z, alpha)
    np.testing.assert_allclose(weights @ y, Ridge(alpha=alpha, fit_intercept=False).fit(X, y).predict(Z), atol=1e-9)
    # More shrinkage, smaller weights.
    assert np.abs(attention.ridge_attention_weights(X, Z, 10 * alpha)).sum() < np.abs(weights).sum()


@pytest.mark.parametrize(
    "kind, args", [("rbf", {"gamma": 0.3}), ("linear", {}), ("poly", {"gamma": 0.5, "degree": 2, "coef0": 1.0})]
)
def test_kernel_ridge_dual_weights_match_sklearn(kind, args):
    X, y, Z = _regression_data(5)
    weights = attention.kernel_ridge_attention_weights(X, Z, 0.5, kind, **args)
    expected = KernelRidge(alpha=0.5, kernel=kind, **args).fit(X, y).predict(Z)
    np.testing.assert_allclose(weights @ y, expected, atol=1e-9)
    if kind == "linear":  # the dual and the primal give the same weights
        np.testing.assert_allclose(weights, attention.ridge_attention_weights(X, Z, 0.5), atol=ATOL)


def test_svm_decision_is_attention_over_support_vectors():
    X, y, Z = _regression_data(6, n=40)
    labels = (y > np.median(y)).astype(int)
    svm = SVC(kernel="rbf", gamma=0.4, C=1.0).fit(X, labels)
    weights = attention.svm_attention_weights(svm.support_vectors_, svm.dual_coef_, Z, "rbf", gamma=0.4)
    values = svm.dual_coef_.ravel()  # alpha_i y_i
    np.testing.assert_allclose(weights @ values + svm.intercept_[0], svm.decision_function(Z), atol=1e-9)


def test_regression_errors():
    X, _, Z = _regression_data(0)
    with pytest.raises(ValueError, match="the queries have 3 features but the training inputs"):
        attention.least_squares_attention_weights(X, Z[:, :3])
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        attention.ridge_attention_weights(X, Z, -1.0)
    with pytest.raises(ValueError, match="unknown kernel 'cosine'"):
        attention.kernel_ridge_attention_weights(X, Z, 1.0, "cosine")
    with pytest.raises(ValueError, match="2 dual coefficients"):
        attention.svm_attention_weights(X, [1.0, 2.0], Z)


# --- softmax -------------------------------------------------------------------------------------


def test_naive_softmax_overflows_and_the_stable_one_does_not():
    x = np.array([1000.0, 1001.0, 1002.0])
    assert np.all(np.isnan(attention.naive_softmax(x)))
    with np.errstate(all="raise"):  # no overflow, no invalid operation, no division by zero
        stable = attention.softmax(x)
    np.testing.assert_allclose(stable, scipy_softmax(x), rtol=1e-15)
    np.testing.assert_allclose(stable, attention.naive_softmax(x - 1000), rtol=1e-15)
    # Very negative scores underflow in the naive form: 0 / 0.
    assert np.all(np.isnan(attention.naive_softmax(-x)))
    np.testing.assert_allclose(attention.softmax(-x), scipy_softmax(-x), rtol=1e-12)


finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=finite), finite)
def test_softmax_matches_torch_and_ignores_shifts(x, shift):
    ours = attention.softmax(x, axis=-1)
    np.testing.assert_allclose(ours, torch.softmax(torch.from_numpy(x), dim=-1).numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ours.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(attention.softmax(x + shift), ours, rtol=1e-9, atol=1e-300)


def test_softmax_masked_entries():
    w = attention.softmax(np.array([[0.0, -np.inf, 1.0]]))
    assert w[0, 1] == 0.0 and w[0].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="entirely -inf"):
        attention.softmax(np.array([-np.inf, -np.inf]))


# --- scaled dot-product attention --------------------------------------------------------------


def _qkv(seed: int, shape=(2, 3, 5), d_k=4, d_v=6, n_k=None):
    rng = np.random.default_rng(seed)
    *lead, n_q = shape
    n_k = n_q if n_k is None else n_k
    return (rng.normal(size=(*lead, n_q, d_k)), rng.normal(size=(*lead, n_k, d_k)), rng.normal(size=(*lead, n_k, d_v)))


@pytest.mark.parametrize("causal", [False, True])
def test_numpy_attention_matches_torch_sdpa(causal):
    Q, K, V = _qkv(0)
    out, weights = attention.scaled_dot_product_attention(Q, K, V, causal=causal)
    q, k, v = (torch.from_numpy(a) for a in (Q, K, V))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    np.testing.assert_allclose(out, expected.numpy(), atol=ATOL)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)
    if causal:
        assert np.all(weights[..., np.triu_indices(5, k=1)[0], np.triu_indices(5, k=1)[1]] == 0)
    out_t, weights_t = attention.attention_torch(q, k, v, causal=causal)
    torch.testing.assert_close(out_t, expected, atol=ATOL, rtol=0)
    np.testing.assert_allclose(weights_t.numpy(), weights, atol=ATOL)


def test_attention_with_a_mask_and_more_keys_than_queries():
    Q, K, V = _qkv(1, shape=(2, 3), n_k=7)
    mask = np.random.default_rng(2).random((3, 7)) < 0.6
    mask[:, 0] = True  # every query sees at least one key
    out, weights = attention.scaled_dot_product_attention(Q, K, V, mask=mask)
    expected = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (Q, K, V)), attn_mask=torch.from_numpy(mask))
    np.testing.assert_allclose(out, expected.numpy(), atol=ATOL)
    assert np.all(weights[:, ~mask] == 0)


def test_attention_errors():
    Q, K, V = _qkv(0)
    with pytest.raises(ValueError, match=r"need Q \(.., n_q, d_k\)"):
        attention.scaled_dot_product_attention(Q, K[..., :3], V)
    with pytest.raises(ValueError, match="a causal mask needs as many queries as keys"):
        attention.scaled_dot_product_attention(*_qkv(0, n_k=7), causal=True)
    with pytest.raises(ValueError, match="must be divisible by n_head = 3"):
        attention.split_heads(np.zeros((4, 8)), 3)


# --- multi-head attention ------------------------------------------------------------------


def _mha_weights(seed: int, d: int):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(d, d)) / np.sqrt(d) for _ in range(4)], [rng.normal(size=d) for _ in range(4)]


@pytest.mark.parametrize("n_head, causal", [(1, False), (2, True), (4, True), (8, False)])
def test_multi_head_attention_matches_torch_multiheadattention(n_head, causal):
    d, n, batch = 8, 6, 3
    (W_q, W_k, W_v, W_o), biases = _mha_weights(n_head, d)
    X = np.random.default_rng(10).normal(size=(batch, n, d))
    out, weights = attention.multi_head_attention(X, W_q, W_k, W_v, W_o, n_head, causal=causal, biases=tuple(biases))

    mha = torch.nn.MultiheadAttention(d, n_head, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # torch computes x W^T: copy the transposes in
        mha.in_proj_weight.copy_(torch.from_numpy(np.concatenate([W_q.T, W_k.T, W_v.T])))
        mha.in_proj_bias.copy_(torch.from_numpy(np.concatenate(biases[:3])))
        mha.out_proj.weight.copy_(torch.from_numpy(W_o.T))
        mha.out_proj.bias.copy_(torch.from_numpy(biases[3]))
    x = torch.from_numpy(X)
    # torch's boolean attn_mask marks the positions that may NOT be attended to.
    blocked = torch.ones(n, n, dtype=torch.bool).triu(1) if causal else None
    expected, expected_weights = mha(x, x, x, attn_mask=blocked, need_weights=True, average_attn_weights=False)
    np.testing.assert_allclose(out, expected.detach().numpy(), atol=ATOL)
    np.testing.assert_allclose(weights, expected_weights.detach().numpy(), atol=ATOL)

    out_t, weights_t = attention.multi_head_attention_torch(x, *(torch.from_numpy(W) for W in (W_q, W_k, W_v, W_o)),
                                                            n_head, causal=causal)
    no_bias, _ = attention.multi_head_attention(X, W_q, W_k, W_v, W_o, n_head, causal=causal)
    np.testing.assert_allclose(out_t.numpy(), no_bias, atol=ATOL)
    np.testing.assert_allclose(weights_t.numpy(), attention.multi_head_attention(X, W_q, W_k, W_v, W_o, n_head, causal)[1],
                               atol=ATOL)


@pytest.mark.parametrize("n_head", [1, 2, 4])
def test_multi_head_is_a_sum_of_low_rank_per_head_maps(n_head):
    d, n = 8, 5
    (W_q, W_k, W_v, W_o), _ = _mha_weights(20 + n_head, d)
    X = np.random.default_rng(3).normal(size=(n, d))
    out, weights = attention.multi_head_attention(X, W_q, W_k, W_v, W_o, n_head, causal=True)
    maps = attention.head_value_output_maps(W_v, W_o, n_head)
    assert maps.shape == (n_head, d, d)
    assert all(np.linalg.matrix_rank(M) <= d // n_head for M in maps)
    np.testing.assert_allclose(attention.multi_head_as_sum_of_heads(X, weights, maps), out, atol=ATOL)
    np.testing.assert_allclose(maps.sum(0), W_v @ W_o, atol=ATOL)  # the maps split W_v W_o by head


def test_one_head_collapses_w_v_w_o_into_one_matrix():
    d = 6
    (W_q, W_k, W_v, W_o), _ = _mha_weights(7, d)
    X = np.random.default_rng(4).normal(size=(2, 5, d))
    out, _ = attention.multi_head_attention(X, W_q, W_k, W_v, W_o, 1, causal=True)
    # Any (W_v, W_o) with the same product gives the same layer: here (W_v W_o, I) and (I, W_v W_o).
    M = W_v @ W_o
    for pair in ((M, np.eye(d)), (np.eye(d), M)):
        np.testing.assert_allclose(attention.multi_head_attention(X, W_q, W_k, *pair, 1, causal=True)[0], out, atol=ATOL)
    # With two heads that fails: the per-head products differ, although their sum is W_v W_o.
    two, _ = attention.multi_head_attention(X, W_q, W_k, W_v, W_o, 2, causal=True)
    collapsed, _ = attention.multi_head_attention(X, W_q, W_k, M, np.eye(d), 2, causal=True)
    assert not np.allclose(two, collapsed)


# --- why sqrt(d) ---------------------------------------------------------------------------------


def test_dot_products_grow_with_d_and_scaling_fixes_it():
    n = 10_000
    rows = attention.dot_product_scaling([4, 64, 256], n_samples=n, n_keys=8, seed=0)
    for row in rows:
        d = row["d"]
        # q.k is a sum of d products with variance 1 and fourth moment 9: Var(q.k) = d, and the sample
        # variance has standard deviation about sqrt((2 d^2 + 6 d) / n).
        sigma = np.sqrt((2 * d**2 + 6 * d) / n)
        assert abs(row["variance"] - d) < 5 * sigma
        assert abs(row["scaled_variance"] - 1) < 5 * sigma / d
    # Unscaled, the softmax saturates as d grows; scaled, it does not.
    assert rows[0]["max_weight"] < rows[1]["max_weight"] < rows[2]["max_weight"] and rows[2]["max_weight"] > 0.9
    scaled = [r["scaled_max_weight"] for r in rows]
    assert max(scaled) - min(scaled) < 0.05
