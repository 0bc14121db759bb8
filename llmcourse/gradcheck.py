"""Gradient checking: compare a hand-written gradient with central finite differences.

The derivative of f at x along coordinate i is approximated by

    df/dx_i  ~=  (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),

whose error shrinks like eps^2 (the one-sided difference's error shrinks only like
eps). With eps = 1e-5 in float64, a correct gradient typically agrees to a
relative error of 1e-8 or better, and a wrong one is off by far more than 1e-6.
Book chapter: *Neural networks and backpropagation*, "Checking gradients".

Every hand-written backward pass in the course (``mlp``, ``rnn``) is checked
this way in the tests, and students check theirs with :func:`gradient_check`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Union

import numpy as np

Arrays = Union[np.ndarray, Mapping[str, np.ndarray]]

TINY = 1e-12  # floor of the denominator, so two zero gradients have relative error 0 rather than 0 / 0


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one (an ``AssertionError``, so tests report it as a failure)."""


def _check_array(x: object, name: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array (it is changed in place and restored), got {type(x).__name__}")
    if x.dtype != np.float64:
        raise ValueError(
            f"{name} must have dtype float64, got {x.dtype}: finite differences in float32 lose about half "
            f"the digits. Convert it first: {name} = {name}.astype(np.float64)"
        )
    return x


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """df/dx by central differences, one element of ``x`` at a time: (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).

    ``x`` is changed in place and restored after each element, so ``f`` may read
    ``x`` through its argument or through a closure (e.g. a model's weight array).
    """
    x = _check_array(x)
    if not eps > 0:
        raise ValueError(f"eps must be positive (1e-5 suits float64), got {eps}")
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        original = x[i]
        x[i] = original + eps
        f_plus = float(f(x))
        x[i] = original - eps
        f_minus = float(f(x))
        x[i] = original  # restore before the next element
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max_i |a_i - b_i| / max(max_i (|a_i| + |b_i|), 1e-12): 0 for equal arrays, at most 1.

    Dividing by the arrays' scale makes the error independent of the loss's units;
    taking the scale over the whole array (not per element) keeps tiny elements,
    where both gradients are nearly 0, from dominating.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare gradients of different shapes: {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a) + np.abs(b))), TINY))


def gradient_check(
    f: Callable[[Arrays], float],
    x: Arrays,
    analytic_grad: Arrays,
    tolerance: float = 1e-6,
    eps: float = 1e-5,
) -> float:
    """Check ``analytic_grad`` against :func:`numerical_gradient` of ``f`` at ``x``; return the relative error.

    ``x`` is one float64 array, or a dict of them (``{"W1": W1, "b1": b1, ...}``) with
    ``analytic_grad`` a dict with the same keys; ``f(x)`` returns the scalar loss.
    Raises :class:`GradientCheckError` naming the parameter and the element where the
    two gradients differ most, if the relative error exceeds ``tolerance``.
    """
    if isinstance(x, Mapping) != isinstance(analytic_grad, Mapping):
        raise ValueError("x and analytic_grad must both be arrays or both be dicts of arrays with the same keys")
    if isinstance(x, Mapping):
        missing = set(x) ^ set(analytic_grad)  # type: ignore[arg-type]
        if missing:
            raise ValueError(f"x and analytic_grad must have the same keys; these appear in only one: {sorted(missing)}")
        items = [(name, x[name], analytic_grad[name]) for name in x]  # type: ignore[index]
    else:
        items = [("x", x, analytic_grad)]
    worst = 0.0
    for name, array, analytic in items:
        array = _check_array(array, name)
        analytic = np.asarray(analytic, dtype=np.float64)
        if analytic.shape != array.shape:
            raise ValueError(
                f"the gradient of {name} must have the shape of {name}, {array.shape}, got {analytic.shape}; "
                "a gradient has one entry per parameter"
            )
        numerical = numerical_gradient(lambda _: f(x), array, eps)
        error = relative_error(analytic, numerical)
        if not error <= tolerance:  # also catches NaN
            where = np.unravel_index(int(np.argmax(np.abs(analytic - numerical))), array.shape) if array.ndim else ()
            index = tuple(int(i) for i in where)
            raise GradientCheckError(
                f"gradient check failed for {name}: relative error {error:.3g} > tolerance {tolerance:g}. "
                f"Largest difference at {name}[{', '.join(map(str, index))}]: analytic {analytic[where]:.8g}, "
                f"numerical {numerical[where]:.8g}. Re-derive the backward step that produces d{name}; "
                "check for a missing factor, a transposed matrix or a sign. If the function has kinks "
                "(ReLU, max), an input within eps of one also breaks finite differences: retry with a "
                "smaller eps before hunting for a bug."
            )
        worst = max(worst, error)
    return worst
