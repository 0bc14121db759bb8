"""Word2vec (numpy and PyTorch) and the embedding queries, against independent oracles.

Oracles: central finite differences and torch autograd for the SGNS gradients; gensim
4.4 for subsampling, the noise table, most_similar, 3CosMul, analogy accuracy and
word-pair evaluation; SciPy for Spearman's rho.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors, Word2Vec
from scipy.stats import spearmanr

from llmcourse import data, embeddings, word2vec, word2vec_torch
from llmcourse.embeddings import Embeddings

# gensim 4.4 calls its own deprecated init_sims() inside evaluate_word_analogies.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")

# --- the SGNS loss and its gradient ---------------------------------------------------------


def _example(seed: int, dim: int = 6, k: int = 4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=dim), rng.normal(size=dim), rng.normal(size=(k, dim))


@pytest.mark.parametrize("seed", range(5))
def test_sgns_gradients_match_finite_differences(seed):
    center, context, negatives = _example(seed)
    _, g_center, g_context, g_negatives = word2vec.sgns_loss_and_gradients(center, context, negatives)
    eps = 1e-6
    for array, grad in ((center, g_center), (context, g_context), (negatives, g_negatives)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + eps
            plus = word2vec.sgns_loss_and_gradients(center, context, negatives)[0]
            array[index] = saved - eps
            minus = word2vec.sgns_loss_and_gradients(center, context, negatives)[0]
            array[index] = saved
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_sgns_loss_and_gradients_match_torch_autograd(seed):
    center, context, negatives = _example(seed, dim=10, k=5)
    loss, g_center, g_context, g_negatives = word2vec.sgns_loss_and_gradients(center, context, negatives)
    v, u, n = (torch.tensor(a, requires_grad=True) for a in (center, context, negatives))
    expected = -torch.nn.functional.logsigmoid(u @ v) - torch.nn.functional.logsigmoid(-(n @ v)).sum()
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    for ours, theirs in ((g_center, v.grad), (g_context, u.grad), (g_negatives, n.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_sigmoid_is_stable_at_extremes():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = word2vec.sigmoid(x)
        ls = word2vec.log_sigmoid(x)
    np.testing.assert_allclose(s, torch.sigmoid(torch.tensor(x)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(ls, torch.nn.functional.logsigmoid(torch.tensor(x)).numpy(), rtol=1e-12)


def test_sgns_shape_errors():
    with pytest.raises(ValueError, match=r"negatives must have shape \(k, 4\)"):
        word2vec.sgns_loss_and_gradients(np.ones(4), np.ones(4), np.ones((3, 5)))
    with pytest.raises(ValueError, match="same length"):
        word2vec.sgns_loss_and_gradients(np.ones(4), np.ones(3), np.ones((3, 4)))


# --- subsampling, noise, windows --------------------------------------------------------------


@pytest.fixture(scope="module")
def gensim_vocab():
    words = list(data.text8_prefix()[:200_000])
    model = Word2Vec(sg=1, negative=5, min_count=5, sample=1e-3, vector_size=10, workers=1, seed=1)
    model.build_vocab([words[i : i + 10_000] for i in range(0, len(words), 10_000)])
    return words, model


def test_keep_probabilities_match_gensim(gensim_vocab):
    words, model = gensim_vocab
    vocabulary, counts = word2vec.build_vocabulary(words, min_count=5)
    assert set(vocabulary.tokens) == set(model.wv.index_to_key)
    keep = word2vec.keep_probabilities(counts, 1e-3)
    theirs = np.array([model.wv.get_vecattr(w, "sample_int") for w in vocabulary.tokens]) / (2**32 - 1)
    np.testing.assert_allclose(keep, theirs, atol=1e-8)
    assert keep[0] < 0.2 and keep[-1] == 1.0  # "the" is mostly dropped, rare words never


def test_noise_distribution_matches_gensims_table(gensim_vocab):
    words, model = gensim_vocab
    vocabulary, counts = word2vec.build_vocabulary(words, min_count=5)
    noise = word2vec.noise_distribution(counts)
    cumulative = model.cum_table / float(2**31 - 1)
    theirs = np.diff(np.concatenate([[0.0], cumulative]))
    order = [model.wv.key_to_index[w] for w in vocabulary.tokens]
    np.testing.assert_allclose(noise, theirs[order], atol=1e-9)
    # The 3/4 power: rare words gain, frequent words lose, relative to the unigram distribution.
    unigram = counts / counts.sum()
    assert noise[0] < unigram[0] and noise[-1] > unigram[-1]


def test_reduced_window_uses_near_words_more():
    rng = np.random.default_rng(0)
    ids = np.arange(11)  # centre 5 sees offsets -5..5
    distance_counts = np.zeros(6)
    for _ in range(3000):
        for centre, context in word2vec.skipgram_pairs(ids, 5, rng):
            if centre == 5:
                distance_counts[abs(context - 5)] += 1
    # Distance j is used with probability (6 - j) / 5, on each of 2 sides.
    expected = np.array([0] + [2 * 3000 * (6 - j) / 5 for j in range(1, 6)])
    assert np.all(np.abs(distance_counts[1:] - expected[1:]) < 5 * np.sqrt(expected[1:]))
    full = list(word2vec.skipgram_pairs([1, 2, 3], 1))
    assert full == [(1, 2), (2, 1), (2, 3), (3, 2)]
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        list(word2vec.skipgram_pairs([1, 2], 0))


def test_vocabulary_errors():
    with pytest.raises(ValueError, match="corpus is empty"):
        word2vec.build_vocabulary([])
    with pytest.raises(ValueError, match="empty vocabulary"):
        word2vec.build_vocabulary(["a", "b"], min_count=5)
    with pytest.raises(ValueError, match="not one str"):
        word2vec.build_vocabulary("some text")


# --- training ------------------------------------------------------------------------------


def _planted_corpus(seed: int = 0, length: int = 40_000) -> tuple[list[str], list[str], list[str]]:
    """Sentences of animals or of tools, never mixed: a model must put each group together."""
    rng = np.random.default_rng(seed)
    animals = ["cat", "dog", "horse", "cow", "sheep", "goat"]
    tools = ["hammer", "saw", "drill", "wrench", "chisel", "file"]
    tokens = []
    while len(tokens) < length:
        group = animals if rng.random() < 0.5 else tools
        tokens += list(rng.choice(group, size=8)) + ["the"]
    return tokens, animals, tools


def _group_margin(emb: Embeddings, first: list[str], second: list[str]) -> float:
    within = np.mean([emb.similarity(a, b) for a in first for b in first if a != b])
    across = np.mean([emb.similarity(a, b) for a in first for b in second])
    return float(within - across)


def test_numpy_sgns_learns_planted_groups():
    tokens, animals, tools = _planted_corpus(length=6_000)
    emb, history = word2vec.train_sgns_numpy(tokens, dim=10, window=2, epochs=2, seed=0)
    assert history.loss[-1] < history.loss[0]
    assert _group_margin(emb, animals, tools) > 0.5


def test_torch_sgns_learns_planted_groups_and_is_seeded():
    tokens, animals, tools = _planted_corpus()
    kwargs = dict(dim=16, window=3, epochs=3, min_count=1, sample=0.0, batch_size=64, progress=False, device="cpu")
    model = word2vec_torch.train_word2vec(tokens, **kwargs)
    assert model.history.loss[-1] < model.history.loss[0]
    assert _group_margin(model.embeddings, animals, tools) > 0.5
    again = word2vec_torch.train_word2vec(tokens, **kwargs)
    np.testing.assert_array_equal(model.input_vectors, again.input_vectors)


def test_torch_step_is_minus_lr_times_the_autograd_gradient():
    """One batched step equals -lr x (gradient of the summed SGNS losses), computed by autograd."""
    torch.manual_seed(0)
    vocab, dim, negative, lr = 12, 5, 3, 0.1
    inputs, outputs = torch.randn(vocab, dim, dtype=torch.float64), torch.randn(vocab, dim, dtype=torch.float64)
    centres = torch.tensor([0, 3, 3])  # a repeated centre: its updates must add up
    contexts = torch.tensor([[1, 2, 4, 5], [6, 7, 1, 0], [2, 2, 9, 11]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0]], dtype=torch.float64)
    noise_cdf = torch.linspace(1 / vocab, 1, vocab, dtype=torch.float64)
    labels = torch.zeros(1 + negative, dtype=torch.float64)
    labels[0] = 1
    # Replay the same noise draw for the autograd side.
    generator = torch.Generator().manual_seed(5)
    uniform = torch.rand(3, negative, generator=generator, dtype=torch.float64)
    noise_ids = torch.searchsorted(noise_cdf, uniform, right=True).clamp(max=vocab - 1)
    targets = torch.cat([centres[:, None], noise_ids], 1)

    v, u = inputs.clone().requires_grad_(), outputs.clone().requires_grad_()
    scores = torch.einsum("bwd,btd->bwt", v[contexts], u[targets])
    signs = 2 * labels - 1
    total = -(torch.nn.functional.logsigmoid(signs * scores).sum(2) * mask).sum()
    total.backward()

    new_inputs, new_outputs = inputs.clone(), outputs.clone()
    loss, pairs = word2vec_torch._sgns_step(
        new_inputs, new_outputs, centres, contexts, mask, noise_cdf, labels, negative, lr, torch.Generator().manual_seed(5)
    )
    assert loss.item() == pytest.approx(total.item(), rel=1e-12) and pairs.item() == mask.sum().item()
    torch.testing.assert_close(new_inputs, inputs - lr * v.grad)
    torch.testing.assert_close(new_outputs, outputs - lr * u.grad)


def test_divergence_is_reported_not_returned():
    """Twelve words in batches of 1,024 windows: every row repeats hundreds of times per step."""
    tokens, _, _ = _planted_corpus(length=20_000)
    with pytest.raises(FloatingPointError, match="training diverged .* Lower batch_size"):
        word2vec_torch.train_word2vec(tokens, dim=16, min_count=1, sample=0.0, epochs=1, progress=False, device="cpu")


def test_train_word2vec_bad_input():
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        word2vec_torch.train_word2vec(["a", "b"], window=0, min_count=1)
    with pytest.raises(ValueError, match="unknown option"):
        word2vec_torch.train_word2vec(["a", "b"], windw=3)
    with pytest.raises(ValueError, match="empty vocabulary"):
        word2vec_torch.train_word2vec(["a", "b"], min_count=5, progress=False)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        word2vec.train_sgns_numpy(["a", "b"], window=0)


# --- embedding queries and evaluation, against gensim -----------------------------------------


@pytest.fixture(scope="module")
def random_embeddings() -> tuple[Embeddings, KeyedVectors]:
    """Vectors with structure (planted clusters plus noise) over real words, in both libraries."""
    questions = data.analogy_questions()
    words = sorted({w for q in questions[:3000] for w in q[1:]})
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 30))
    vectors = centres[rng.integers(0, 20, size=len(words))] + 0.7 * rng.normal(size=(len(words), 30))
    kv = KeyedVectors(30)
    kv.add_vectors(words, vectors)
    return Embeddings(words, vectors), kv


def test_most_similar_matches_gensim(random_embeddings):
    ours, kv = random_embeddings
    for word in ("athens", "greece", "paris"):
        assert [w for w, _ in ours.most_similar(word, k=8)] == [w for w, _ in kv.most_similar(word, topn=8)]
    got = ours.most_similar(["king", "woman"], ["man"], k=5) if "king" in ours else ours.most_similar(["paris", "italy"], ["france"], k=5)
    query = (["king", "woman"], ["man"]) if "king" in ours else (["paris", "italy"], ["france"])
    expected = kv.most_similar(positive=query[0], negative=query[1], topn=5)
    assert [w for w, _ in got] == [w for w, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)


def test_3cosmul_matches_gensim(random_embeddings, monkeypatch):
    ours, kv = random_embeddings
    monkeypatch.setattr(embeddings, "COSMUL_EPSILON", 1e-6)  # gensim's epsilon
    for _, a, b, c, _ in data.analogy_questions()[:200:7]:
        expected = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0]
        assert ours.analogy(a, b, c, method="3cosmul") == expected


def test_analogy_accuracy_matches_gensim(random_embeddings):
    ours, kv = random_embeddings
    result = ours.evaluate_analogies(data.analogy_questions())
    path = data.EVAL_DIR / "questions-words.txt"
    score, sections = kv.evaluate_word_analogies(str(path), restrict_vocab=300_000)
    theirs = next(s for s in sections if s["section"] == "Total accuracy")
    assert result.correct == len(theirs["correct"])
    assert result.evaluated == len(theirs["correct"]) + len(theirs["incorrect"])
    assert result.accuracy == pytest.approx(score)


def test_similarity_evaluation_matches_gensim_and_scipy(random_embeddings):
    ours, kv = random_embeddings
    pairs = [(a, b, float(i % 7)) for i, (_, a, b, _, _) in enumerate(data.analogy_questions()[:400])]
    result = ours.evaluate_similarity(pairs)
    rho = spearmanr([ours.similarity(a, b) for a, b, _ in pairs], [s for *_, s in pairs]).statistic
    assert result.spearman == pytest.approx(rho, abs=1e-12)
    x = np.random.default_rng(1).integers(0, 5, size=50).astype(float)
    y = x + np.random.default_rng(2).normal(size=50)
    assert embeddings.spearman_correlation(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_wordsim_loader_and_gensim_word_pairs(random_embeddings):
    ours, kv = random_embeddings
    pairs = data.word_similarity_pairs("wordsim353")
    assert len(pairs) == 353 and pairs[0] == ("love", "sex", 6.77)
    assert len(data.word_similarity_pairs("simlex999")) == 999
    assert len(data.word_similarity_pairs("men")) == 3000
    with pytest.raises(ValueError, match="no similarity set named 'ws'"):
        data.word_similarity_pairs("ws")


def test_embedding_errors(random_embeddings):
    ours, _ = random_embeddings
    with pytest.raises(ValueError, match="'qwertyuiop' is not in the vocabulary"):
        ours.most_similar("qwertyuiop")
    with pytest.raises(ValueError, match="is not in the vocabulary"):
        ours.analogy("athens", "greece", "qwertyuiop")
    with pytest.raises(ValueError, match="method must be"):
        ours.analogy("athens", "greece", "paris", method="cosine")
    with pytest.raises(ValueError, match="vocabulary is empty"):
        Embeddings([], np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"expected \(2, dim\)"):
        Embeddings(["a", "b"], np.zeros((3, 4)))
    assert ours.project_2d(["athens", "greece", "paris"]).shape == (3, 2)


def test_unshuffled_batches_repeat_rows_and_learn_worse():
    """The trap the module docstring describes: corpus-order batches share their context words,
    so summed updates overshoot; on real text the loss ends clearly higher (3.6 vs 3.1 here)."""
    tokens = data.text8_prefix()[:300_000]
    kwargs = dict(epochs=1, progress=False, device="cpu")
    shuffled = word2vec_torch.train_word2vec(tokens, **kwargs)
    ordered = word2vec_torch.train_word2vec(tokens, shuffle=False, **kwargs)
    assert ordered.history.loss[-1] > shuffled.history.loss[-1] + 0.2
