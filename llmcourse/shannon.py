"""Shannon's series of approximations to English (Shannon 1948, section 3).

Shannon generated text from ever richer statistical models of English: letters
chosen uniformly (zero order), by their frequencies (first order), by the
frequencies of letter pairs (second order, "digram") and triples (third order,
"trigram"), and then words chosen by their frequencies (first-order word) and by
word-pair frequencies (second-order word). The output looks more like English at
every step. Here the statistics come from a real corpus instead of his tables.
Book chapter: *Language models and Shannon's approximations*.

Shannon drew his samples by opening a book at a random page and reading on from
a matching passage; sampling from maximum-likelihood n-gram counts is the same
distribution. We treat the corpus as circular so every context has a successor.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llmcourse.information import entropy
from llmcourse.ngram import MLE, Laplace, NgramModel

#: Shannon's 27-symbol alphabet: the word space and the 26 capital letters.
ALPHABET = " " + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTERS = ALPHABET[1:]

_NON_LETTERS = re.compile(r"[^A-Z]+")


def normalize_letters(text: str) -> str:
    """Upper-case ``text`` and turn every run of non-letters into one space: ``"Don't!"`` -> ``"DON T"``."""
    if not isinstance(text, str):
        raise ValueError(f"normalize_letters expects a str, got {type(text).__name__}")
    return _NON_LETTERS.sub(" ", text.upper()).strip()


def letter_frequencies(text: str) -> dict[str, float]:
    """Relative frequency of each of the 26 letters in ``text`` (spaces and other symbols ignored)."""
    counts = Counter(c for c in normalize_letters(text) if c != " ")
    total = sum(counts.values())
    if total == 0:
        raise ValueError("the text contains no letters A-Z, so letter frequencies are undefined")
    return {letter: counts[letter] / total for letter in LETTERS}


def letter_entropy(text: str) -> float:
    """Entropy, in bits, of the first-order letter distribution: H = -sum_x p(x) log2 p(x) over A-Z."""
    return entropy(np.array(list(letter_frequencies(text).values())), base=2)


@dataclass(frozen=True)
class Approximation:
    """One step of Shannon's series: its name, the model behind it and a sample."""

    name: str
    unit: str  # "letter" or "word"
    order: int  # 0 = uniform; n = n-gram of that many units
    text: str


def _check_length(length: int) -> int:
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    return length


def _sample_stream(units: list[str], order: int, length: int, rng: np.random.Generator, temperature: float) -> list[str]:
    """Sample ``length`` units from the order-``order`` MLE model of the circular stream ``units``."""
    if len(units) < order:
        raise ValueError(f"the corpus has {len(units)} units, fewer than the order {order}; give more text")
    # Wrap around: the last n-1 units are followed by the first one, so no context is a dead end.
    stream = units + units[: order - 1]
    model = MLE(order, unk=False).fit([stream], pad=False)
    start = int(rng.integers(len(units)))  # "open the book at a random page"
    context = (units + units)[start : start + order - 1]
    return context[:length] + model.generate(length - len(context[:length]), context, temperature, rng=rng)


def letter_approximation(
    text: str, order: int, length: int = 100, seed: int = 0, temperature: float = 1.0
) -> str:
    """A sample of ``length`` symbols from the order-``order`` letter model of ``text``.

    ``order`` 0: symbols of the 27-letter alphabet, independent and equiprobable;
    1: independent, with the corpus's letter-and-space frequencies; n >= 2: each
    symbol drawn given the n - 1 before it (digram, trigram, ... structure).
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be an integer >= 0 (0 = uniform letters), got {order!r}")
    _check_length(length)
    rng = np.random.default_rng(seed)
    if order == 0:
        return "".join(rng.choice(list(ALPHABET), size=length))
    letters = list(normalize_letters(text))
    if not letters:
        raise ValueError("the corpus contains no letters A-Z; Shannon's approximations need English text")
    return "".join(_sample_stream(letters, order, length, rng, temperature))


def word_approximation(
    text: str, order: int, length: int = 20, seed: int = 0, temperature: float = 1.0
) -> str:
    """A sample of ``length`` words: ``order`` 1 draws words independently by frequency,
    ``order`` 2 draws each word given the previous one (word-transition probabilities)."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"a word approximation needs order >= 1, got {order!r}")
    _check_length(length)
    words = normalize_letters(text).split()
    if not words:
        raise ValueError("the corpus contains no words; Shannon's approximations need English text")
    return " ".join(_sample_stream(words, order, length, np.random.default_rng(seed), temperature))


def shannon_series(text: str, seed: int = 0, letters: int = 80, words: int = 16) -> list[Approximation]:
    """Shannon's six approximations to English, each sampled from ``text`` with one seed."""
    steps = [
        ("Zero-order approximation (symbols independent and equiprobable)", "letter", 0),
        ("First-order approximation (letter frequencies)", "letter", 1),
        ("Second-order approximation (digram structure)", "letter", 2),
        ("Third-order approximation (trigram structure)", "letter", 3),
        ("First-order word approximation (word frequencies)", "word", 1),
        ("Second-order word approximation (word transitions)", "word", 2),
    ]
    series = []
    for name, unit, order in steps:
        if unit == "letter":
            sample = letter_approximation(text, order, letters, seed)
        else:
            sample = word_approximation(text, order, words, seed)
        series.append(Approximation(name, unit, order, sample))
    return series


def bits_per_letter(
    text: str, order: int, test_fraction: float = 0.1, smoothing: Callable[..., NgramModel] = Laplace
) -> float:
    """Held-out cross-entropy, in bits per symbol, of a smoothed letter model of ``order`` on ``text``.

    ``smoothing`` builds the model from the order (``Laplace`` by default; try
    ``KneserNey``). Shannon (1951) estimated English at about 1 bit per letter with
    long contexts; short n-gram models sit far above that. The last
    ``test_fraction`` of the text is held out.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    letters = normalize_letters(text)
    cut = int(len(letters) * (1 - test_fraction))
    if cut < order or len(letters) - cut < order:
        raise ValueError("the text is too short to split into training and held-out letters")
    model = smoothing(order, unk=False).fit([letters[:cut]], pad=False)
    # Score the held-out letters with the n-1 training letters before them as context.
    log_probs = model.log_probabilities([letters[cut - (order - 1) :]])
    return float(-log_probs.mean() / math.log(2))
