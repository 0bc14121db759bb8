"""Gradient checking: closed-form derivatives, a deliberately wrong gradient, and messages a student can act on."""

from __future__ import annotations

import re

import numpy as np
import pytest

from llmcourse.gradcheck import GradientCheckError, gradient_check, numerical_gradient, relative_error


def test_numerical_gradient_of_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    # f = sum(sin(x) * x^2): df/dx = cos(x) x^2 + 2 x sin(x)
    grad = numerical_gradient(lambda v: float(np.sum(np.sin(v) * v**2)), x)
    assert np.allclose(grad, np.cos(x) * x**2 + 2 * x * np.sin(x), rtol=1e-8, atol=1e-9)
    A = rng.normal(size=(4, 4))
    v = rng.normal(size=4)
    # f = v^T A v: df/dv = (A + A^T) v
    assert np.allclose(numerical_gradient(lambda u: float(u @ A @ u), v), (A + A.T) @ v, rtol=1e-8, atol=1e-9)


def test_central_differences_are_second_order():
    """Halving eps divides the error of the central difference by about 4 (one-sided: by 2)."""
    x = np.array([0.7])
    exact = np.exp(0.7)
    errors = [abs(numerical_gradient(lambda v: float(np.exp(v[0])), x, eps)[0] - exact) for eps in (1e-2, 5e-3)]
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.01)


def test_x_is_restored_and_closures_see_the_change():
    W = np.arange(6, dtype=np.float64).reshape(2, 3)
    before = W.copy()
    grad = numerical_gradient(lambda _: float(np.sum(W**2)), W)  # f ignores its argument and reads W
    assert np.array_equal(W, before)
    assert np.allclose(grad, 2 * before, atol=1e-7)


def test_relative_error():
    a = np.array([1.0, 2.0, 3.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, -a) == 1.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(a, a + 0.06) == pytest.approx(0.06 / 6.06)
    assert relative_error(1e6 * a, 1e6 * (a + 0.06)) == pytest.approx(relative_error(a, a + 0.06))  # unit-free


def test_correct_gradients_pass_for_a_dict_of_parameters():
    rng = np.random.default_rng(1)
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    X = rng.normal(size=(5, 3))

    def loss(p):
        return float(np.sum(np.tanh(X @ p["W"] + p["b"]) ** 2))

    H = np.tanh(X @ params["W"] + params["b"])
    dA = 2 * H * (1 - H**2)
    error = gradient_check(loss, params, {"W": X.T @ dA, "b": dA.sum(axis=0)})
    assert error < 1e-8


def test_a_wrong_gradient_is_caught_and_located():
    rng = np.random.default_rng(2)
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    X = rng.normal(size=(5, 3))

    def loss(p):
        return float(np.sum((X @ p["W"] + p["b"]) ** 2))

    A = X @ params["W"] + params["b"]
    right = {"W": X.T @ (2 * A), "b": (2 * A).sum(axis=0)}
    assert gradient_check(loss, params, right) < 1e-8
    wrong = {"W": right["W"].copy(), "b": right["b"]}
    wrong["W"][2, 1] *= 1.5  # one element off, as a slip in a derivation would leave it
    with pytest.raises(GradientCheckError, match=r"for W: relative error .* at W\[2, 1\]: analytic .*numerical") as info:
        gradient_check(loss, params, wrong)
    assert isinstance(info.value, AssertionError)
    shown = re.search(r"analytic (\S+), numerical (\S+?)\.\s", str(info.value))
    assert float(shown[1]) == pytest.approx(wrong["W"][2, 1], rel=1e-7)  # both values, to 8 digits
    assert float(shown[2]) == pytest.approx(right["W"][2, 1], rel=1e-7)
    with pytest.raises(GradientCheckError, match="for b"):
        gradient_check(loss, params, {"W": right["W"], "b": -right["b"]})


def test_a_transposed_gradient_is_caught_for_a_single_array():
    A = np.random.default_rng(3).normal(size=(3, 3))
    x = np.random.default_rng(4).normal(size=(3, 3))
    loss = lambda m: float(np.sum(A * (m @ m)))  # noqa: E731  d/dm = A m^T + m^T A
    right = A @ x.T + x.T @ A
    assert gradient_check(loss, x, right) < 1e-8
    with pytest.raises(GradientCheckError, match=r"x\["):
        gradient_check(loss, x, right.T)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: numerical_gradient(lambda v: 0.0, [1.0, 2.0]), "must be a numpy array"),
        (lambda: numerical_gradient(lambda v: 0.0, np.ones(3, np.float32)), r"float64.*astype\(np.float64\)"),
        (lambda: numerical_gradient(lambda v: 0.0, np.ones(3), eps=0), "eps must be positive"),
        (lambda: relative_error(np.ones(2), np.ones(3)), "different shapes"),
        (lambda: gradient_check(lambda p: 0.0, {"W": np.ones(2)}, {"V": np.ones(2)}), r"same keys.*\['V', 'W'\]"),
        (lambda: gradient_check(lambda p: 0.0, {"W": np.ones(2)}, np.ones(2)), "both be arrays or both be dicts"),
        (lambda: gradient_check(lambda p: 0.0, np.ones((2, 3)), np.ones((3, 2))), r"shape of x, \(2, 3\), got \(3, 2\)"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
