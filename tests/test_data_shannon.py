"""Shipped corpora, tokenization, vocabularies and Shannon's approximations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nltk.tokenize import wordpunct_tokenize as nltk_wordpunct

from llmcourse import data, shannon
from llmcourse.vocab import UNK, Vocabulary


def test_tiny_shakespeare_is_the_published_file():
    text = data.tiny_shakespeare()
    assert len(text.encode("utf-8")) == 1_115_394
    assert len(text.splitlines()) == 40_000
    assert len(set(text)) == 65


def test_tokenizer_equals_nltk_wordpunct():
    text = data.tiny_shakespeare()[:200_000]
    assert data.wordpunct_tokenize(text) == nltk_wordpunct(text)


def test_standard_split():
    train, test = data.shakespeare_split()
    assert len(train) == 29_499 and len(test) == 3_278  # int(0.9 * 32,777 non-empty lines)
    assert train[0] == ["first", "citizen", ":"]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 2.0])
def test_bad_split_fraction(fraction):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        data.train_test_split([1, 2, 3], fraction)


def test_unknown_data_file():
    with pytest.raises(ValueError, match="no data file named 'nope.txt'; the package ships"):
        data.data_path("nope.txt")


def test_vocabulary_round_trip_and_unk():
    vocab = Vocabulary(["a", "b"])
    assert vocab.decode(vocab.encode(["b", "a", "zzz"])) == ["b", "a", UNK]
    closed = Vocabulary(["a", "b"], unk=False)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        closed.encode(["a", "c"])
    with pytest.raises(ValueError, match="id 7 is outside"):
        vocab.decode([7])


# ----------------------------------------------------------------------------- Shannon
def test_letter_frequencies_match_the_measured_and_published_values():
    """Shared data notes: E 0.1183, W 0.0248, T 0.0870, O 0.0838 in Tiny Shakespeare; English E is 0.1270
    (Lewand 2000), which Shannon rounds to .12 and W to .02."""
    f = shannon.letter_frequencies(data.tiny_shakespeare())
    assert round(f["E"], 4) == 0.1183 and round(f["W"], 4) == 0.0248
    assert round(f["T"], 4) == 0.0870 and round(f["O"], 4) == 0.0838
    assert sum(f.values()) == pytest.approx(1.0)
    english = data.english_letter_frequencies()
    assert round(english["E"], 2) == 0.13 and round(english["W"], 2) == 0.02
    assert round(shannon.letter_entropy(data.tiny_shakespeare()), 2) == 4.19
    assert shannon.letter_entropy(data.tiny_shakespeare()) < math.log2(26)


def test_normalize_letters():
    assert shannon.normalize_letters("Don't -- stop!\n Now") == "DON T STOP NOW"


def test_zero_order_uses_the_whole_alphabet_uniformly():
    sample = shannon.letter_approximation("", 0, length=27_000, seed=1)
    counts = np.array([sample.count(c) for c in shannon.ALPHABET])
    assert np.all(np.abs(counts - 1000) < 5 * math.sqrt(1000 * 26 / 27))


@pytest.mark.parametrize("order", [2, 3, 4])
def test_letter_approximation_only_uses_observed_ngrams(order):
    text = data.tiny_shakespeare()[:50_000]
    letters = shannon.normalize_letters(text)
    circular = letters + letters[: order - 1]
    seen = {circular[i : i + order] for i in range(len(letters))}
    sample = shannon.letter_approximation(text, order, length=300, seed=3)
    assert len(sample) == 300
    assert all(sample[i : i + order] in seen for i in range(len(sample) - order + 1))


def test_first_order_frequencies_converge_to_the_corpus():
    text = data.tiny_shakespeare()[:100_000]
    sample = shannon.letter_approximation(text, 1, length=50_000, seed=0)
    freq = shannon.letter_frequencies(text)
    got = shannon.letter_frequencies(sample)
    assert max(abs(got[c] - freq[c]) for c in freq) < 0.01


def test_word_approximation_and_series_are_seeded():
    text = data.tiny_shakespeare()
    words = set(shannon.normalize_letters(text).split())
    sample = shannon.word_approximation(text, 2, length=30, seed=4)
    assert len(sample.split()) == 30 and set(sample.split()) <= words
    a = shannon.shannon_series(text, seed=9)
    assert [s.text for s in a] == [s.text for s in shannon.shannon_series(text, seed=9)]
    assert [(s.unit, s.order) for s in a] == [("letter", 0), ("letter", 1), ("letter", 2), ("letter", 3), ("word", 1), ("word", 2)]


def test_longer_contexts_lower_the_bits_per_letter():
    text = data.tiny_shakespeare()
    bits = [shannon.bits_per_letter(text, n) for n in (1, 2, 3, 4)]
    assert bits[0] == pytest.approx(4.07, abs=0.01)  # close to the 4.19-bit letter entropy (spaces included)
    assert all(a > b for a, b in zip(bits, bits[1:]))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: shannon.letter_approximation("abc", -1), "order must be an integer >= 0"),
        (lambda: shannon.letter_approximation("123", 2), "no letters"),
        (lambda: shannon.letter_approximation("abc", 2, length=0), "length must be a positive integer"),
        (lambda: shannon.word_approximation("abc", 0), "order >= 1"),
        (lambda: shannon.letter_frequencies("1234"), "no letters"),
        (lambda: shannon.letter_approximation("abc", 2, temperature=-1), "temperature must be >= 0"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
