"""The grading harness: it passes correct code, pinpoints wrong code, and blocks the reference."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import llmcourse.ngram as reference
from llmcourse import grading, sampling
from llmcourse.vocab import BOS, EOS


def student_count_ngrams(sentences, n):
    counts = Counter()
    for s in sentences:
        padded = [BOS] * (n - 1) + list(s) + [EOS]
        counts.update(tuple(padded[i : i + n]) for i in range(len(padded) - n + 1))
    return counts


def random_case(rng):
    return grading.random_sentences(rng), int(rng.integers(1, 4))


def test_correct_function_passes(capsys):
    grading.check(student_count_ngrams, reference.count_ngrams, random_cases=random_case, seed=5, tolerance="exact")
    assert "all 20 inputs match" in capsys.readouterr().out


def test_wrong_function_fails_with_an_actionable_message():
    def off_by_one(sentences, n):  # forgets the end symbol
        counts = Counter()
        for s in sentences:
            padded = [BOS] * (n - 1) + list(s)
            counts.update(tuple(padded[i : i + n]) for i in range(len(padded) - n + 1))
        return counts

    with pytest.raises(AssertionError) as err:
        grading.check(off_by_one, reference.count_ngrams, cases={"one sentence": ([["a", "b"]], 2)}, tolerance="exact")
    message = str(err.value)
    assert "off_by_one gives a wrong answer on one sentence" in message
    assert "missing key ('b', '</s>')" in message


def test_array_mismatch_names_the_first_differing_element():
    def sloppy(p, t):
        q = np.asarray(p, float) ** (1 / t)
        return q / q.sum() + np.array([0, 0, 1e-3, -1e-3])

    with pytest.raises(AssertionError, match=r"the result\[2\] differs: got .* expected .*2 of 4 elements differ"):
        grading.check(sloppy, sampling.apply_temperature, cases=[(np.array([0.1, 0.2, 0.3, 0.4]), 1.0)], tolerance="probability")


def test_shape_and_type_errors_are_explained():
    with pytest.raises(AssertionError, match=r"has shape \(2,\), expected shape \(3,\)"):
        grading.check(lambda p, t: np.ones(2) / 2, sampling.apply_temperature, cases=[(np.ones(3) / 3, 1.0)])
    with pytest.raises(AssertionError, match="should be a number, got str"):
        grading.check(lambda lp: "2.0", lambda lp: 2.0, cases=[([0.0],)])


def test_student_exceptions_are_reported():
    def broken(sentences, n):
        raise KeyError("oops")

    with pytest.raises(AssertionError, match="raised KeyError"):
        grading.check(broken, reference.count_ngrams, cases=[([["a"]], 1)])


def test_expected_value_error_must_be_raised():
    def lenient(counts, context, word):
        return 0.0

    with pytest.raises(AssertionError, match="should raise ValueError"):
        grading.check(lenient, reference.mle_probability, cases=[(Counter({("a", "b"): 1}), ("z",), "b")])


def test_calling_the_reference_scores_nothing():
    def cheat(sentences, n):
        return reference.count_ngrams(sentences, n)

    with pytest.raises(AssertionError, match=r"called llmcourse\.ngram\.count_ngrams.*no points"):
        grading.check(cheat, reference.count_ngrams, cases=[([["a"]], 2)], tolerance="exact")


def test_hiding_a_reference_call_behind_try_except_still_fails():
    stolen = reference.KneserNey  # a class: its methods live in the package too

    def sneaky(sentences, n):
        try:
            stolen(n).fit(sentences)
        except Exception:
            pass
        return student_count_ngrams(sentences, n)

    with pytest.raises(AssertionError, match=r"called llmcourse\.ngram\.__init__"):
        grading.check(sneaky, reference.count_ngrams, cases=[([["a"]], 2)], tolerance="exact")


def test_assigning_the_reference_as_the_answer_fails():
    with pytest.raises(AssertionError, match="reference implementation"):
        grading.check(reference.count_ngrams, reference.count_ngrams, cases=[([["a"]], 2)])


def test_data_loaders_stay_allowed():
    from llmcourse import data

    def uses_tokenizer(text):
        return data.wordpunct_tokenize(text)

    grading.check(uses_tokenizer, data.wordpunct_tokenize, cases=[("Speak, speak.",)], tolerance="exact")


def test_the_guard_is_removed_afterwards():
    with pytest.raises(AssertionError):
        grading.check(lambda s, n: reference.count_ngrams(s, n), reference.count_ngrams, cases=[([["a"]], 1)])
    assert reference.count_ngrams([["a"]], 1)  # callable again


def test_inputs_are_copied_so_students_cannot_corrupt_the_reference():
    def mutating(sentences, n):
        result = student_count_ngrams(sentences, n)
        sentences.clear()
        return result

    grading.check(mutating, reference.count_ngrams, cases=[([["a", "b"]], 2)], tolerance="exact")


def test_sampler_check():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    grading.check_sampler(lambda rng: int(rng.choice(4, p=p)), p, n_samples=5000)
    with pytest.raises(AssertionError, match="came up .* times, but with probability"):
        grading.check_sampler(lambda rng: int(rng.choice(4, p=[0.45, 0.35, 0.2, 0])), p, n_samples=5000)
    with pytest.raises(AssertionError, match="must return a token id"):
        grading.check_sampler(lambda rng: 7, p, n_samples=10)
    with pytest.raises(AssertionError, match="reference implementation"):
        grading.check_sampler(lambda rng: sampling.sample_with_temperature(p, 1.0, rng), p, n_samples=10)


def test_hidden_seeds_give_different_cases():
    seen = []
    grading.check(lambda *a: seen.append(a) or student_count_ngrams(*a), reference.count_ngrams,
                  random_cases=random_case, n_random=3, seed=1, tolerance="exact")
    first = list(seen)
    seen.clear()
    grading.check(lambda *a: seen.append(a) or student_count_ngrams(*a), reference.count_ngrams,
                  random_cases=random_case, n_random=3, seed=2, tolerance="exact")
    assert first != seen


def test_bad_use_of_the_harness():
    with pytest.raises(ValueError, match="unknown tolerance"):
        grading.check(len, len, cases=[("a",)], tolerance="close enough")
    with pytest.raises(ValueError, match="at least one case"):
        grading.check(len, len)
    with pytest.raises(AssertionError, match="expected a function"):
        grading.check(None, len, cases=[("a",)])


def test_messages_stay_short_for_large_inputs():
    big = list(range(10**6))
    text = grading._short(big)
    assert text.startswith("list of 1000000 items: 0, 1, 2") and len(text) <= 300
    assert "dict of 100 items: 0: 0" in grading._short({i: i for i in range(100)})
    assert grading._short([1, 2]) == "[1, 2]"
