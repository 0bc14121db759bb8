"""n-gram models against independent oracles: NLTK's nltk.lm, brute-force formulas, hand counts."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.lm import MLE as NltkMLE
from nltk.lm import Laplace as NltkLaplace
from nltk.lm.preprocessing import padded_everygram_pipeline, pad_both_ends
from nltk.util import everygrams, ngrams

from llmcourse import data, ngram
from llmcourse.vocab import BOS, EOS

HOMEWORK = [
    ["please", "turn", "your", "homework", "in"],
    ["turn", "your", "homework", "over"],
    ["your", "homework", "is", "in", "the", "refrigerator"],
]


@pytest.fixture(scope="module")
def split():
    return data.shakespeare_split()


# ----------------------------------------------------------------------------- counting
def test_count_ngrams_pads_one_end_symbol():
    counts = ngram.count_ngrams([["a", "b"]], 3)
    assert counts == Counter({(BOS, BOS, "a"): 1, (BOS, "a", "b"): 1, ("a", "b", EOS): 1})


def test_homework_example_from_the_notes():
    model = ngram.MLE(2).fit(HOMEWORK)
    # C("homework in") = 1, C("homework" followed by anything) = 3
    assert model.count(["homework", "in"]) == 1
    assert model.count(["homework"]) == 3
    assert model.probability("in", ["homework"]) == pytest.approx(1 / 3, abs=1e-15)
    counts = ngram.count_ngrams(HOMEWORK, 2)
    assert ngram.mle_probability(counts, ["homework"], "in") == pytest.approx(1 / 3, abs=1e-15)


@given(st.lists(st.lists(st.sampled_from("abcde"), max_size=7), min_size=1, max_size=6), st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_fast_model_counts_equal_counter_counts(sentences, n):
    """The vectorised tables hold exactly the Counter of every k-gram, k <= n."""
    if not any(sentences) and n == 1:
        sentences = [["a"]]
    model = ngram.MLE(n).fit(sentences) if any(sentences) else None
    if model is None:
        return
    nonempty = [s for s in sentences if s]
    for k in range(1, n + 1):
        # k-grams of sentences padded for order n (what the model counts)
        expected = Counter()
        for s in nonempty:
            padded = ngram.pad_sentence(s, n)
            expected.update(tuple(padded[i : i + k]) for i in range(len(padded) - k + 1))
        for gram, c in expected.items():
            assert model.count(gram) == c
        assert sum(model._tables[k - 1].counts) == sum(expected.values())


@given(st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=6), min_size=1, max_size=5), st.integers(1, 3))
@settings(max_examples=60, deadline=None)
def test_fast_mle_and_add_k_equal_readable_versions(sentences, n):
    counts = ngram.count_ngrams(sentences, n)
    mle, addk = ngram.MLE(n).fit(sentences), ngram.AddK(n, k=0.5).fit(sentences)
    V = len(addk.vocab)
    for gram in counts:
        context, word = gram[:-1], gram[-1]
        assert mle.probability(word, context) == pytest.approx(ngram.mle_probability(counts, context, word), rel=1e-12)
        assert addk.probability(word, context) == pytest.approx(
            ngram.add_k_probability(counts, V, context, word, 0.5), rel=1e-12
        )


# ----------------------------------------------------------------------------- NLTK as the oracle
def _nltk_fit(model, sentences, n):
    train, vocab = padded_everygram_pipeline(n, sentences)
    model.fit(train, vocab)
    return model


@pytest.mark.parametrize("order", [1, 2, 3])
def test_laplace_perplexity_equals_nltk_on_shakespeare(split, order):
    """NLTK's published protocol (padded_everygram_pipeline; test n-grams of pad_both_ends)."""
    train, test = split
    ours = ngram.Laplace(order, nltk_padding=True).fit(train)
    theirs = _nltk_fit(NltkLaplace(order), train, order)
    test_ngrams = [g for s in test for g in ngrams(pad_both_ends(s, n=order), order)]
    assert len(ours.vocab) == len(theirs.vocab)
    assert ours.perplexity(test) == pytest.approx(theirs.perplexity(test_ngrams), rel=1e-10)


def test_laplace_trigram_reproduces_the_published_number(split):
    train, test = split
    assert round(ngram.Laplace(3, nltk_padding=True).fit(train).perplexity(test), 2) == 2265.55


def test_default_padding_equals_nltk_fed_the_same_padding(split):
    """With one </s> per sentence, NLTK given the same padded n-grams agrees token for token."""
    train, test = split
    n = 3
    pad = lambda s: [BOS] * (n - 1) + s + [EOS]  # noqa: E731
    theirs = NltkLaplace(n)
    theirs.fit((everygrams(pad(s), max_len=n) for s in train), (t for s in train for t in pad(s)))
    ours = ngram.Laplace(n).fit(train)
    test_ngrams = [g for s in test for g in ngrams(pad(s), n)]
    assert len(ours.log_probabilities(test)) == len(test_ngrams)
    assert ours.perplexity(test) == pytest.approx(theirs.perplexity(test_ngrams), rel=1e-10)


def test_mle_scores_equal_nltk(split):
    train, _ = split
    ours = ngram.MLE(2, nltk_padding=True).fit(train)
    theirs = _nltk_fit(NltkMLE(2), train, 2)
    for context, word in [("my", "lord"), ("good", "night"), ("thou", "art"), ("the", "king"), ("i", "pray")]:
        assert ours.probability(word, [context]) == pytest.approx(theirs.score(word, [context]), rel=1e-12)


# ----------------------------------------------------------------------------- brute-force oracles
def _brute_force_tables(sentences, n):
    """Counts of every k-gram of the padded sentences, the Counter way."""
    counts = Counter()
    for s in sentences:
        padded = ngram.pad_sentence(s, n)
        for k in range(1, n + 1):
            counts.update(tuple(padded[i : i + k]) for i in range(len(padded) - k + 1))
    return counts


def _brute_kneser_ney(sentences, n, vocab, discounts):
    """Interpolated Kneser-Ney, straight from the formula (Chen & Goodman 1999), with dictionaries."""
    counts = _brute_force_tables(sentences, n)
    continuation = Counter()  # N1+(. g): distinct left neighbours of each k-gram, k < n
    for gram in counts:
        if 2 <= len(gram) <= n:
            continuation[gram[1:]] += 1

    def level_counts(k):
        return {g: (counts[g] if k == n else continuation.get(g, 0)) for g in counts if len(g) == k}

    tables = {k: level_counts(k) for k in range(1, n + 1)}

    def prob(word, context, k):
        if k == 0:
            return 1.0 / len(vocab)
        h = tuple(context[len(context) - (k - 1) :]) if k > 1 else ()
        table = tables[k]
        total = sum(c for g, c in table.items() if g[:-1] == h)
        types = sum(1 for g, c in table.items() if g[:-1] == h and c > 0)
        lower = prob(word, context, k - 1)
        if total == 0:
            return lower
        d = discounts[k - 1]
        return (max(table.get(h + (word,), 0) - d, 0) + d * types * lower) / total

    return lambda word, context: prob(word, context, n)


def _brute_interpolated(sentences, n, vocab, lambdas):
    counts = _brute_force_tables(sentences, n)

    def prob(word, context, k):
        if k == 0:
            return 1.0 / len(vocab)
        h = tuple(context[len(context) - (k - 1) :]) if k > 1 else ()
        total = sum(c for g, c in counts.items() if len(g) == k and g[:-1] == h)
        lower = prob(word, context, k - 1)
        if total == 0:
            return lower
        return lambdas[k - 1] * counts.get(h + (word,), 0) / total + (1 - lambdas[k - 1]) * lower

    return lambda word, context: prob(word, context, n)


@given(
    st.lists(st.lists(st.sampled_from("abcde"), min_size=1, max_size=8), min_size=1, max_size=6),
    st.integers(1, 4),
    st.lists(st.sampled_from(list("abcdef") + [BOS]), min_size=0, max_size=3),
)
@settings(max_examples=40, deadline=None)
def test_kneser_ney_equals_the_formula(sentences, n, context):
    model = ngram.KneserNey(n).fit(sentences)
    oracle = _brute_kneser_ney(sentences, n, model.vocab.tokens, model.discounts)
    ctx = ([BOS] * (n - 1) + [t if t in model.vocab else "<unk>" for t in context])[-(n - 1) :] if n > 1 else []
    dist = model.distribution(ctx)
    for i, word in enumerate(model.vocab.tokens):
        assert dist[i] == pytest.approx(oracle(word, ctx), rel=1e-9, abs=1e-15)
    assert dist.sum() == pytest.approx(1.0, abs=1e-12)


@given(
    st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=8), min_size=1, max_size=6),
    st.integers(1, 3),
    st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
)
@settings(max_examples=40, deadline=None)
def test_interpolation_equals_the_formula(sentences, n, lambdas):
    model = ngram.Interpolated(n, lambdas[:n]).fit(sentences)
    oracle = _brute_interpolated(sentences, n, model.vocab.tokens, lambdas[:n])
    for ctx in ([BOS] * (n - 1), (["a", "b", "c"])[-(n - 1) :] if n > 1 else [], (["d", "e"] + ["a"])[-(n - 1) :] if n > 1 else []):
        ctx = [t if t in model.vocab else "<unk>" for t in ctx]
        dist = model.distribution(ctx)
        for i, word in enumerate(model.vocab.tokens):
            assert dist[i] == pytest.approx(oracle(word, ctx), rel=1e-9, abs=1e-15)


def test_kneser_ney_continuation_counts_by_hand():
    # "b" follows "a" and "c" (2 distinct left neighbours); "d" follows only "a", twice.
    sentences = [["a", "b"], ["c", "b"], ["a", "d"], ["a", "d"]]
    model = ngram.KneserNey(2, discount=0.5).fit(sentences)
    # Unigram level uses continuation counts: N1+(. b) = 2, N1+(. d) = 1, N1+(. </s>) = 2, N1+(. a) = N1+(. c) = 1
    # (left neighbour <s>). Total 7; types 5; V = 6 (a b c d <s> </s> ... + <unk>).
    V = len(model.vocab)
    lower_b = (2 - 0.5) / 7 + 0.5 * 5 / 7 / V
    lower_d = (1 - 0.5) / 7 + 0.5 * 5 / 7 / V
    # Bigram level after "a": C(a b) = 1, C(a d) = 2, total 3, 2 types.
    assert model.probability("b", ["a"]) == pytest.approx((1 - 0.5) / 3 + 0.5 * 2 / 3 * lower_b, rel=1e-12)
    assert model.probability("d", ["a"]) == pytest.approx((2 - 0.5) / 3 + 0.5 * 2 / 3 * lower_d, rel=1e-12)


@pytest.mark.parametrize("make", [ngram.Laplace, lambda n: ngram.AddK(n, 0.01), ngram.KneserNey, ngram.Interpolated])
@pytest.mark.parametrize("context", [["my", "good"], ["zzz", "qqq"], [], [BOS, BOS]])
def test_every_smoothed_distribution_sums_to_one(split, make, context):
    model = make(3).fit(split[0][:3000])
    dist = model.distribution(context)
    assert dist.shape == (len(model.vocab),)
    assert np.all(dist > 0)
    assert dist.sum() == pytest.approx(1.0, abs=1e-9)


def test_log_probabilities_follow_the_chain_rule(split):
    """Scoring a sentence at once equals multiplying P(w_i | h_i) one query at a time."""
    train, test = split
    model = ngram.KneserNey(3).fit(train)
    sentence = test[5]
    history = [BOS, BOS]
    expected = []
    for word in sentence + [EOS]:
        expected.append(math.log(model.probability(word if word in model.vocab else "<unk>", history)))
        history.append(word if word in model.vocab else "<unk>")
    assert np.allclose(model.log_probabilities([sentence]), expected, rtol=1e-12)


def test_kneser_ney_beats_laplace_and_close_to_kenlm(split):
    """KenLM's modified Kneser-Ney 3-gram gives 150.25 on this split (shared data notes); interpolated KN
    with one discount per order should be close, and far better than add-one."""
    train, test = split
    kn = ngram.KneserNey(3).fit(train).perplexity(test)
    assert 140 < kn < 165
    assert kn < ngram.Laplace(3).fit(train).perplexity(test) / 10


def test_higher_orders_overfit_under_add_one(split):
    train, test = split
    train_pp = [ngram.MLE(n).fit(train).perplexity(train) for n in (1, 2, 3)]
    held_out = [ngram.Laplace(n).fit(train).perplexity(test) for n in (1, 2, 3)]
    assert train_pp[0] > train_pp[1] > train_pp[2]
    assert held_out[0] < held_out[1] < held_out[2]


def test_generation_is_seeded_and_stops_at_sentence_end(split):
    model = ngram.KneserNey(3).fit(split[0])
    a = model.generate(40, seed=7, temperature=0.8)
    assert a == model.generate(40, seed=7, temperature=0.8)
    assert a != model.generate(40, seed=8, temperature=0.8)
    assert EOS not in a and BOS not in a
    greedy = model.generate(10, temperature=0)
    assert greedy == model.generate(10, temperature=0, seed=123)  # greedy ignores the seed


def test_unpadded_character_model():
    model = ngram.MLE(2, unk=False).fit(["abab"], pad=False)
    assert model.probability("b", ["a"]) == 1.0
    assert model.probability("a", ["b"]) == 1.0


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("order", [0, -1, 1.5, "3", True])
def test_bad_order(order):
    with pytest.raises(ValueError, match="order must be an integer >= 1"):
        ngram.MLE(order)


@pytest.mark.parametrize("corpus", [[], [[]], [[], []], [""]])
def test_empty_corpus(corpus):
    with pytest.raises(ValueError, match="corpus is empty"):
        ngram.Laplace(2).fit(corpus)


def test_one_string_instead_of_sentences():
    with pytest.raises(ValueError, match="not one string"):
        ngram.MLE(2).fit("to be or not to be")


def test_unseen_context_under_mle():
    model = ngram.MLE(2).fit(HOMEWORK)
    with pytest.raises(ValueError, match=r"context \('banana',\) never occurs.*smoothed model"):
        model.probability("in", ["banana"])
    with pytest.raises(ValueError, match="never occurs"):
        model.perplexity([["banana", "split"]])


def test_unseen_word_under_mle_gives_infinite_perplexity():
    model = ngram.MLE(2).fit(HOMEWORK)
    assert model.probability("over", ["your"]) == 0.0
    assert math.isinf(model.perplexity([["your", "over"]]))


def test_characters_outside_a_closed_vocabulary():
    model = ngram.AddK(2, unk=False).fit(["abc"], pad=False)
    with pytest.raises(ValueError, match=r"outside the vocabulary: 'z'.*normalise"):
        model.perplexity(["abz"])


def test_not_fitted():
    with pytest.raises(RuntimeError, match="call .fit"):
        ngram.KneserNey(2).perplexity([["a"]])


@pytest.mark.parametrize("bad", [dict(k=0), dict(k=-1)])
def test_bad_add_k(bad):
    with pytest.raises(ValueError, match="k must be positive"):
        ngram.AddK(2, **bad)
    with pytest.raises(ValueError, match="k must be positive"):
        ngram.add_k_probability(Counter(), 5, ("a",), "b", bad["k"])


def test_bad_lambdas_and_discount():
    with pytest.raises(ValueError, match="lambdas"):
        ngram.Interpolated(3, [0.5, 0.5])
    with pytest.raises(ValueError, match="lambdas"):
        ngram.Interpolated(2, 1.5)
    with pytest.raises(ValueError, match="discount"):
        ngram.KneserNey(2, discount=1.0)


def test_negative_temperature_in_generation():
    model = ngram.Laplace(2).fit(HOMEWORK)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        model.generate(5, temperature=-0.5)


def test_count_needs_a_short_enough_ngram():
    model = ngram.MLE(2).fit(HOMEWORK)
    with pytest.raises(ValueError, match="1 <= k <= 2"):
        model.count(["a", "b", "c"])


def test_continuation_counts_equal_distinct_left_neighbours(split):
    train = split[0][:4000]
    model = ngram.KneserNey(3).fit(train)
    left = defaultdict(set)
    for s in train:
        padded = ngram.pad_sentence(s, 3)
        for i in range(1, len(padded)):
            left[(padded[i],)].add(padded[i - 1])
            if i + 1 < len(padded):
                left[(padded[i], padded[i + 1])].add(padded[i - 1])
    for gram in [("lord",), ("morrow",), ("my", "lord"), ("good", "morrow"), (EOS,)]:
        assert model.continuation_count(gram) == len(left[gram])
    with pytest.raises(ValueError, match="1 <= k < 3"):
        model.continuation_count(("a", "b", "c"))


def test_generation_across_sentences():
    model = ngram.MLE(2).fit([["a", "b"], ["a", "c"]])
    out = model.generate(12, seed=0, stop_at_end=False)
    # every sentence restarts from <s>: "a" always follows </s>
    assert all(out[i + 1] == "a" for i, t in enumerate(out[:-1]) if t == EOS)
    assert out[0] == "a"
