"""Vector semantics, LSI and NMF against independent oracles.

Oracles: scikit-learn (CountVectorizer, TfidfVectorizer, cosine_similarity, NMF),
SciPy's sparse SVD, Jurafsky & Martin's published tf-idf numbers, the shared data
notes' counts, and brute-force loops written straight from the formulas.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.sparse.linalg import svds
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity as sklearn_cosine

from llmcourse import data, lsi, vectors

FOUR_PLAYS = ["as_you_like_it", "twelfth_night", "julius_caesar", "henry_v"]
FOUR_WORDS = ["battle", "good", "fool", "wit"]


@pytest.fixture(scope="module")
def plays() -> dict[str, list[str]]:
    return {name: data.simple_word_tokenize(text) for name, text in data.shakespeare_plays().items()}


# --- the data ---------------------------------------------------------------------------


def test_the_complete_plays_ship():
    titles = data.play_titles()
    assert len(data.shakespeare_plays()) == 37
    assert len(data.shakespeare_plays(include_poems=True)) == 43
    assert titles["as_you_like_it"] == "As You Like It"
    assert "HAMLET" in data.play("hamlet")[:2000]
    with pytest.raises(ValueError, match="no play named 'hamlett'"):
        data.play("hamlett")


def test_shakespeare_table_matches_the_data_notes(plays):
    """The counts recorded in ../shared/data/README.md, from the real texts."""
    table = vectors.term_document_matrix({p: plays[p] for p in FOUR_PLAYS}, vocabulary=FOUR_WORDS)
    expected = np.array([[1, 0, 8, 14], [115, 80, 71, 91], [37, 58, 1, 5], [21, 15, 2, 3]])
    np.testing.assert_array_equal(table.values, expected)
    assert table.rows == tuple(FOUR_WORDS) and table.columns == tuple(FOUR_PLAYS)


def test_term_document_matrix_matches_sklearn(plays):
    names = FOUR_PLAYS
    ours = vectors.term_document_matrix({p: plays[p] for p in names})
    vectorizer = CountVectorizer(token_pattern=r"[a-z]+", lowercase=True)
    theirs = vectorizer.fit_transform([data.play(p) for p in names]).toarray().T  # terms x documents
    index = {t: i for i, t in enumerate(vectorizer.get_feature_names_out())}
    assert set(index) == set(ours.rows)
    np.testing.assert_array_equal(ours.values, theirs[[index[t] for t in ours.rows]])
    # Rows run from the most to the least frequent term.
    totals = ours.values.sum(axis=1)
    assert np.all(np.diff(totals) <= 0)


def test_simple_word_tokenize():
    assert data.simple_word_tokenize("Good, my LORD! The fool's wit.") == ["good", "my", "lord", "the", "fool", "s", "wit"]
    with pytest.raises(ValueError, match="expects a str"):
        data.simple_word_tokenize(["a"])


def test_term_document_bad_input():
    with pytest.raises(ValueError, match="at least one document"):
        vectors.term_document_matrix({})
    with pytest.raises(ValueError, match="is a str"):
        vectors.term_document_matrix({"a": "raw text"})
    with pytest.raises(ValueError, match="vocabulary is empty"):
        vectors.term_document_matrix({"a": ["x"]}, min_count=2)
    matrix = vectors.term_document_matrix({"a": ["x", "y"], "b": ["x"]})
    with pytest.raises(ValueError, match="'z' is not a row"):
        matrix.row("z")


# --- weighting ---------------------------------------------------------------------------


def test_tf_idf_reproduces_jurafsky_martin():
    """J&M (3rd ed., section 6.5) weight their Shakespeare counts over N = 37 plays.

    Their counts and document frequencies (battle in 21 plays, wit in 34) give the
    published tf-idf values 0.246, 0, 0.454, 0.520 and 0.085, 0.081, 0.048, 0.054.
    The book rounds intermediate idf values inconsistently (0.081 needs idf rounded to
    0.037, 0.054 needs it unrounded), so agreement is to within 0.0015.
    """
    counts = np.array([[1, 0, 7, 13], [20, 15, 2, 3]], dtype=float)
    idf = np.log10(37 / np.array([21, 34]))
    weights = vectors.term_frequency(counts) * idf[:, None]
    np.testing.assert_allclose(weights, [[0.246, 0.0, 0.454, 0.520], [0.085, 0.081, 0.048, 0.054]], atol=1.5e-3)


def test_tf_idf_matches_sklearn(plays):
    """sklearn's sublinear tf-idf (smooth_idf=False, no norm) is (1 + ln tf) (ln(N/df) + 1)."""
    ours = vectors.term_document_matrix(plays)
    vectorizer = TfidfVectorizer(token_pattern=r"[a-z]+", sublinear_tf=True, smooth_idf=False, norm=None)
    theirs = vectorizer.fit_transform([data.play(p) for p in plays]).toarray().T
    index = {t: i for i, t in enumerate(vectorizer.get_feature_names_out())}
    theirs = theirs[[index[t] for t in ours.rows]]
    tf = vectors.term_frequency(ours.values, base=math.e)
    idf = vectors.inverse_document_frequency(ours.values, base=math.e)
    np.testing.assert_allclose(tf * (idf[:, None] + 1), theirs, rtol=1e-12)
    np.testing.assert_allclose(vectors.tf_idf(ours.values, base=math.e), tf * idf[:, None])


def test_words_in_every_play_get_no_weight(plays):
    matrix = vectors.term_document_matrix(plays, vocabulary=["good", "the", "battle"])
    weights = vectors.tf_idf(matrix.values)
    assert np.all(weights[:2] == 0)  # good and the occur in all 37 plays
    assert np.all(weights[2][matrix.values[2] > 0] > 0)


def _ppmi_by_loops(counts: np.ndarray, alpha: float) -> np.ndarray:
    total = sum(sum(row) for row in counts.tolist())
    rows = [sum(row) for row in counts.tolist()]
    columns = [sum(counts[i][j] for i in range(len(counts))) for j in range(len(counts[0]))]
    context_mass = sum(c**alpha for c in columns)
    out = np.zeros_like(counts, dtype=float)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i][j] > 0:
                pmi = math.log2((counts[i][j] / total) / ((rows[i] / total) * (columns[j] ** alpha / context_mass)))
                out[i][j] = max(pmi, 0.0)
    return out


@settings(max_examples=40, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.integers(0, 50)), st.sampled_from([1.0, 0.75]))
def test_ppmi_matches_the_formula(counts, alpha):
    if counts.sum() == 0:
        with pytest.raises(ValueError, match="all zeros"):
            vectors.ppmi(counts, alpha)
        return
    np.testing.assert_allclose(vectors.ppmi(counts, alpha), _ppmi_by_loops(counts, alpha), atol=1e-12)


def test_ppmi_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        vectors.ppmi(np.array([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="alpha"):
        vectors.ppmi(np.ones((2, 2)), alpha=0)


def test_cooccurrence_counts_by_brute_force():
    rng = np.random.default_rng(0)
    words = list("abcdefg")
    sentences = [[words[i] for i in rng.integers(0, 7, size=rng.integers(1, 15))] for _ in range(30)]
    for window in (1, 2, 4):
        matrix = vectors.cooccurrence_matrix(sentences, window=window)
        expected = Counter()
        for s in sentences:
            for i, w in enumerate(s):
                for j in range(max(0, i - window), min(len(s), i + window + 1)):
                    if j != i:
                        expected[w, s[j]] += 1
        for (w, c), n in expected.items():
            assert matrix.values[matrix.rows.index(w), matrix.columns.index(c)] == n
        assert matrix.values.sum() == sum(expected.values())
        np.testing.assert_array_equal(matrix.values, matrix.values.T)


def test_cooccurrence_bad_input():
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        vectors.cooccurrence_matrix([["a", "b"]], window=0)
    with pytest.raises(ValueError, match="list of token lists"):
        vectors.cooccurrence_matrix(["a b c"], window=2)
    with pytest.raises(ValueError, match="vocabulary is empty"):
        vectors.cooccurrence_matrix([[]], window=2)
    with pytest.raises(ValueError, match="pass max_vocab"):
        vectors.cooccurrence_matrix([[str(i) for i in range(8000)]], window=1)


def test_cosine_matches_sklearn():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(3, 7))
    np.testing.assert_allclose(vectors.cosine_similarity(a, b), sklearn_cosine(a, b), atol=1e-12)
    assert vectors.cosine_similarity(a[0], a[0]) == pytest.approx(1.0)
    assert vectors.cosine_similarity(np.zeros(7), a[0]) == 0.0
    with pytest.raises(ValueError, match="dimension mismatch: vectors of length 7 and 6"):
        vectors.cosine_similarity(a[0], np.ones(6))


def test_nearest_neighbours_of_fool_are_comedies(plays):
    """Rows of the 37-play matrix: *fool* is closer to *wit* than to *battle* (the chapter's point)."""
    matrix = vectors.term_document_matrix(plays)
    weighted = matrix.with_values(vectors.tf_idf(matrix.values))
    fool, wit, battle = (weighted.row(w) for w in ("fool", "wit", "battle"))
    assert vectors.cosine_similarity(fool, wit) > vectors.cosine_similarity(fool, battle)
    neighbours = vectors.nearest_neighbours(matrix, "fool", k=5)
    sims = sklearn_cosine(matrix.values, matrix.row("fool")[None])[:, 0]
    sims[matrix.rows.index("fool")] = -np.inf
    best = [matrix.rows[i] for i in np.argsort(-sims, kind="stable")[:5]]
    assert [w for w, _ in neighbours] == best
    with pytest.raises(ValueError, match="k must be at least 1"):
        vectors.nearest_neighbours(matrix, "fool", k=0)
    with pytest.raises(ValueError, match="'good' has an all-zero vector"):
        vectors.nearest_neighbours(weighted, "good")


def test_tf_idf_of_a_subset_can_use_the_collections_idf(plays):
    """Four plays weighted with the 37-play idf: fool and wit keep their weight (four-play idf zeroes them)."""
    every = vectors.term_document_matrix(plays, vocabulary=FOUR_WORDS)
    four = every.select(columns=FOUR_PLAYS)
    local = vectors.tf_idf(four.values)
    assert np.all(local[2:] == 0)  # fool and wit occur in all four plays
    collection = vectors.tf_idf(four.values, idf=vectors.inverse_document_frequency(every.values))
    np.testing.assert_allclose(collection, vectors.tf_idf(every.values)[:, [every.columns.index(p) for p in FOUR_PLAYS]])
    assert np.all(collection[2:] > 0)
    with pytest.raises(ValueError, match="one value per term"):
        vectors.tf_idf(four.values, idf=np.ones(3))


# --- SVD and LSI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def play_matrix(plays) -> vectors.CountMatrix:
    matrix = vectors.term_document_matrix(plays, min_count=20)
    return matrix.with_values(vectors.tf_idf(matrix.values))


def test_singular_values_match_scipy(play_matrix):
    ours = lsi.svd(play_matrix.values, rank=6)
    _, theirs, _ = svds(play_matrix.values, k=6)
    np.testing.assert_allclose(ours.S, np.sort(theirs)[::-1], rtol=1e-8)
    np.testing.assert_allclose(ours.U.T @ ours.U, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(ours.Vt @ ours.Vt.T, np.eye(6), atol=1e-10)


def test_reconstruction_error_is_the_tail_of_the_singular_values(play_matrix):
    full = lsi.svd(play_matrix.values)
    np.testing.assert_allclose(full.reconstruct(), play_matrix.values, atol=1e-9)
    for rank in (1, 3, 10, 36):
        error = lsi.reconstruction_error(play_matrix.values, rank)
        assert error == pytest.approx(np.sum(full.S[rank:] ** 2), rel=1e-8)


def test_truncated_svd_beats_other_low_rank_matrices():
    """Eckart-Young: no rank-r matrix is closer; random rank-r factorisations never win."""
    rng = np.random.default_rng(2)
    matrix = rng.poisson(2.0, size=(30, 12)).astype(float)
    best = lsi.reconstruction_error(matrix, 3)
    for _ in range(20):
        A, B = rng.normal(size=(30, 3)), rng.normal(size=(3, 12))
        # The best B for this A by least squares, to give the competitor a fair chance.
        B = np.linalg.lstsq(A, matrix, rcond=None)[0]
        assert np.sum((matrix - A @ B) ** 2) >= best - 1e-9


def test_svd_signs_are_deterministic_and_explained_variance(play_matrix):
    a, b = lsi.svd(play_matrix.values, 4), lsi.svd(play_matrix.values[::-1][::-1].copy(), 4)
    np.testing.assert_array_equal(a.U, b.U)
    assert np.all(np.abs(a.U).argmax(axis=0) == a.U.argmax(axis=0))  # largest entry positive
    ratio = lsi.explained_variance(lsi.svd(play_matrix.values).S)
    assert ratio[-1] == pytest.approx(1.0) and np.all(np.diff(ratio) >= 0)


def test_topics_read_off_u(play_matrix):
    decomposition = lsi.svd(play_matrix.values, 3)
    top = lsi.top_terms(decomposition.U[:, 0], play_matrix.rows, n=5)
    assert [w for w, _ in top] == [play_matrix.rows[i] for i in np.argsort(-decomposition.U[:, 0])[:5]]
    with pytest.raises(ValueError, match="one weight per term"):
        lsi.top_terms(decomposition.U[:5, 0], play_matrix.rows)
    with pytest.raises(ValueError, match="rank must be an integer from 1 to"):
        lsi.svd(play_matrix.values, rank=0)


# --- NMF ---------------------------------------------------------------------------------


def test_nmf_matches_sklearn_step_for_step():
    rng = np.random.default_rng(3)
    matrix = rng.poisson(3.0, size=(25, 10)).astype(float)
    W0, H0 = rng.random((25, 4)), rng.random((4, 10))
    ours = lsi.nmf(matrix, 4, iterations=50, init=(W0, H0))
    model = SklearnNMF(n_components=4, solver="mu", init="custom", max_iter=50, tol=0.0)
    W = model.fit_transform(matrix, W=W0.copy(), H=H0.copy())
    np.testing.assert_allclose(ours.W, W, rtol=1e-8)
    np.testing.assert_allclose(ours.H, model.components_, rtol=1e-8)


def test_nmf_is_non_negative_and_never_gets_worse(play_matrix):
    result = lsi.nmf(play_matrix.values, 5, iterations=100, seed=0)
    assert np.all(result.W >= 0) and np.all(result.H >= 0)
    assert np.all(np.diff(result.losses) <= 1e-9 * result.losses[0])  # Lee & Seung's theorem
    # It cannot beat the SVD of the same rank (Eckart-Young), and should not be far off.
    best = lsi.reconstruction_error(play_matrix.values, 5)
    assert best <= result.losses[-1] <= 1.5 * best


def test_nmf_bad_input():
    with pytest.raises(ValueError, match="non-negative matrix"):
        lsi.nmf(-np.ones((3, 3)), 2)
    with pytest.raises(ValueError, match="do not fit"):
        lsi.nmf(np.ones((3, 4)), 2, init=(np.ones((3, 2)), np.ones((3, 4))))
    with pytest.raises(ValueError, match="NaN or infinite"):
        lsi.svd(np.array([[1.0, np.nan]]))
