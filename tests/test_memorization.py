"""Verbatim copying and exposure (llmcourse.memorization), against plain search and scipy's ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from llmcourse.memorization import copied_fraction, copied_windows, exposure, rank_of

small_text = st.text(alphabet="abc ", min_size=0, max_size=60)


@settings(max_examples=150, deadline=None)
@given(generated=small_text, training=small_text, n=st.integers(1, 6))
def test_copied_windows_equal_plain_substring_search(generated: str, training: str, n: int) -> None:
    if len(generated) < n:
        with pytest.raises(ValueError, match="fewer than the window length"):
            copied_windows(generated, training, n)
        return
    expected = [generated[i : i + n] in training for i in range(len(generated) - n + 1)]
    assert copied_windows(generated, training, n).tolist() == expected


@settings(max_examples=100, deadline=None)
@given(
    generated=st.lists(st.sampled_from(["to", "be", "or", "not"]), min_size=3, max_size=30),
    training=st.lists(st.sampled_from(["to", "be", "or", "not", "that"]), max_size=40),
    n=st.integers(1, 3),
)
def test_token_windows_equal_a_set_of_tuples(generated: list[str], training: list[str], n: int) -> None:
    grams = {tuple(training[i : i + n]) for i in range(len(training) - n + 1)}
    expected = [tuple(generated[i : i + n]) in grams for i in range(len(generated) - n + 1)]
    assert copied_windows(generated, training, n).tolist() == expected


def test_copied_fraction_of_a_quotation_and_of_new_text() -> None:
    training = "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer"
    assert copied_fraction("that is the question", training, 8) == 1.0
    assert copied_fraction("xyzzy kvjzz", training, 3) == 0.0
    # half the windows of "question" + "zzzzzzzz" are copied at n = 4: "ques", "uest", "esti", "stio", "tion"
    assert copied_fraction("questionzzzz", training, 4) == pytest.approx(5 / 9)


def test_long_windows_on_a_real_text_agree_with_str_find() -> None:
    from llmcourse.data import tiny_shakespeare

    text = tiny_shakespeare()
    training, held_out = text[:200_000], text[200_000:203_000]
    quoted = training[50_000:51_000]
    for n in (10, 30):
        got = copied_windows(held_out + quoted, training, n)
        mixed = held_out + quoted
        assert got.tolist() == [training.find(mixed[i : i + n]) >= 0 for i in range(len(mixed) - n + 1)]
    assert copied_fraction(quoted, training, 50) == 1.0


@settings(max_examples=100, deadline=None)
@given(scores=st.lists(st.integers(-5, 5), min_size=1, max_size=30), data=st.data())
def test_rank_is_scipy_max_rank_of_the_negated_scores(scores: list[int], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(scores) - 1))
    # rankdata(-s, "max"): highest score gets rank 1, ties all take the worst (largest) rank
    assert rank_of(scores, index) == int(rankdata(-np.asarray(scores), method="max")[index])


def test_exposure_in_bits() -> None:
    scores = np.linspace(-10.0, -1.0, 1024)
    assert exposure(scores, 1023) == pytest.approx(10.0)  # the secret is the most likely of 2^10
    assert exposure(scores, 0) == pytest.approx(0.0)  # the least likely: nothing given away
    assert exposure(scores, 511) == pytest.approx(10 - math.log2(513))
    assert exposure(np.zeros(16), 3) == 0.0  # a model that cannot tell candidates apart reveals nothing


def test_bad_input_is_explained() -> None:
    with pytest.raises(ValueError, match="window length n"):
        copied_windows("abc", "abc", 0)
    with pytest.raises(TypeError, match="both be str"):
        copied_windows("abc", ["a", "b"], 1)
    with pytest.raises(TypeError, match="generated must be"):
        copied_windows(b"abc", "abc", 1)
    with pytest.raises(ValueError, match="position of the true secret"):
        exposure([0.1, 0.2], 2)
    with pytest.raises(ValueError, match="NaN"):
        exposure([0.1, float("nan")], 0)
    with pytest.raises(ValueError, match="non-empty"):
        rank_of([], 0)
