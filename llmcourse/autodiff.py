"""Reverse-mode automatic differentiation on scalars, in the style of micrograd.

A :class:`Value` wraps one number. Every operation on Values creates a new Value
that remembers its inputs and a ``_backward`` closure: given d(output), it adds
the output's contribution to each input's gradient by the chain rule,

    input.grad += (d output / d input) * output.grad.

:meth:`Value.backward` orders the graph topologically (every node after the
nodes it was computed from) and runs the closures in reverse, starting from
dL/dL = 1, so each node's gradient is complete before it is passed on. The
``+=`` is essential: a value used twice (``x * x``) receives a gradient from each
use. Book chapter: *Neural networks and backpropagation*, "Automatic differentiation".

The tests build random expressions both here and in PyTorch (float64) and
require equal values and gradients to 1e-6, as micrograd's own tests do.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import Union

import numpy as np

Number = Union[int, float]


def _is_number(x: object) -> bool:
    # numpy scalars (np.float64, np.int64) count: inputs often come from arrays.
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


class Value:
    """A scalar in a computation graph: ``data`` (the forward value) and ``grad`` (dL/d this, after backward)."""

    __slots__ = ("data", "grad", "_backward", "_prev", "_op", "label")

    def __init__(self, data: Number, _children: tuple[Value, ...] = (), _op: str = "", label: str = "") -> None:
        if not _is_number(data):
            raise ValueError(f"a Value holds one int or float, got {type(data).__name__}: {data!r}")
        self.data = float(data)
        self.grad = 0.0
        self._backward: Callable[[], None] = lambda: None  # leaves have nothing to pass back
        self._prev = _children
        self._op = _op
        self.label = label

    # ---------------------------------------------------------------- operations
    def __add__(self, other: Value | Number) -> Value:
        """out = a + b;  d out/d a = 1, d out/d b = 1."""
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        """out = a * b;  d out/d a = b, d out/d b = a."""
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> Value:
        """out = a^k for a number k;  d out/d a = k a^(k-1)."""
        if isinstance(exponent, Value):
            raise ValueError(
                "x ** y is supported only for a number y, not a Value (its gradient with respect to y "
                "needs ln x); write (y * x.log()).exp() for x > 0"
            )
        if not _is_number(exponent):
            raise ValueError(f"the exponent must be an int or float, got {type(exponent).__name__}")
        if self.data < 0 and not float(exponent).is_integer():
            raise ValueError(f"({self.data}) ** {exponent} is not a real number: a negative base needs an integer exponent")
        if self.data == 0 and exponent < 0:
            raise ValueError(f"0 ** {exponent} divides by zero (this is 1 / 0 when dividing by a Value equal to 0)")
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward() -> None:
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        """out = e^a;  d out/d a = e^a = out."""
        if self.data > 709.78:  # e^709.78 is the largest float64
            raise ValueError(
                f"exp({self.data:g}) overflows a float; inputs that large usually mean a missing "
                "normalisation (subtract the maximum before exp, as a stable softmax does)"
            )
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward() -> None:
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        """out = ln a (a > 0);  d out/d a = 1 / a."""
        if self.data <= 0:
            raise ValueError(f"log is defined only for positive numbers, got {self.data}; a probability of 0 has log -inf")
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        """out = tanh a;  d out/d a = 1 - tanh(a)^2."""
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            self.grad += (1 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        """out = max(0, a);  d out/d a = 1 if a > 0 else 0 (0 at a = 0, as in PyTorch)."""
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward() -> None:
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        """out = 1 / (1 + e^-a);  d out/d a = out (1 - out)."""
        # Two formulas, so that exp() never overflows: e^-a for a >= 0, e^a / (1 + e^a) otherwise.
        s = 1.0 / (1.0 + math.exp(-self.data)) if self.data >= 0 else math.exp(self.data) / (1.0 + math.exp(self.data))
        out = Value(s, (self,), "sigmoid")

        def _backward() -> None:
            self.grad += out.data * (1 - out.data) * out.grad

        out._backward = _backward
        return out

    # Everything else is built from the operations above, so it needs no backward of its own.
    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-_as_value(other))

    def __truediv__(self, other: Value | Number) -> Value:
        return self * _as_value(other) ** -1

    def __radd__(self, other: Number) -> Value:  # 2 + x
        return self + other

    def __rmul__(self, other: Number) -> Value:  # 2 * x
        return self * other

    def __rsub__(self, other: Number) -> Value:  # 2 - x
        return _as_value(other) - self

    def __rtruediv__(self, other: Number) -> Value:  # 2 / x
        return _as_value(other) / self

    # ---------------------------------------------------------------- backward
    def backward(self) -> None:
        """Set dL/dL = 1 for this (output) value and fill ``.grad`` of every Value it was computed from.

        Gradients accumulate into the leaves (the Values not computed from others: inputs
        and parameters), as in PyTorch: call :func:`zero_grad` on the parameters before
        a second backward pass. The intermediate Values are reset to 0 first, so a
        second pass over the same graph adds exactly one more gradient to each leaf
        (PyTorch's ``retain_graph=True``) instead of re-sending the first pass's.
        """
        order = topological_order(self)
        for node in order:
            if node._prev:  # an intermediate result: its old gradient belongs to the previous pass
                node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            node._backward()

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g}{', ' + repr(self.label) if self.label else ''})"


def _as_value(x: Value | Number) -> Value:
    if isinstance(x, Value):
        return x
    if not _is_number(x):
        raise ValueError(f"can only combine a Value with another Value or a number, got {type(x).__name__}")
    return Value(x)


def topological_order(root: Value) -> list[Value]:
    """Every Value ``root`` depends on, each listed after all the Values it was computed from.

    Depth-first search with an explicit stack rather than recursion, so a long
    chain (an RNN unrolled over 5,000 steps) does not hit Python's recursion limit.
    """
    order: list[Value] = []
    visited: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)  # all of its inputs are already in the list
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in node._prev if id(child) not in visited)
    return order


def zero_grad(values: Iterable[Value]) -> None:
    """Reset ``.grad`` to 0, before the next backward pass accumulates into it."""
    for v in values:
        v.grad = 0.0


# ------------------------------------------------------------------- a tiny neural network of Values
class Neuron:
    """out = act(sum_i w_i x_i + b): one unit, with weights drawn uniformly from [-1, 1] (seeded)."""

    def __init__(self, n_inputs: int, activation: str = "tanh", rng: random.Random | None = None) -> None:
        if activation not in ("tanh", "relu", "linear"):
            raise ValueError(f"activation must be 'tanh', 'relu' or 'linear', got {activation!r}")
        rng = rng or random.Random(0)
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(n_inputs)]
        self.b = Value(0.0)
        self.activation = activation

    def __call__(self, x: list[Value | Number]) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"this neuron takes {len(self.w)} inputs, got {len(x)}")
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act if self.activation == "linear" else getattr(act, self.activation)()

    def parameters(self) -> list[Value]:
        return self.w + [self.b]


class MLP:
    """A stack of fully connected layers of :class:`Neuron`; ``MLP(3, [4, 4, 1])`` maps 3 inputs to 1 output.

    Hidden layers use ``activation``; the last layer is linear, so the output can take any value.
    """

    def __init__(self, n_inputs: int, layer_sizes: list[int], activation: str = "tanh", seed: int = 0) -> None:
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu' (for the hidden layers), got {activation!r}")
        if not layer_sizes or any(size < 1 for size in layer_sizes):
            raise ValueError(f"layer_sizes must list at least one positive layer width, got {layer_sizes}")
        rng = random.Random(seed)
        sizes = [n_inputs] + list(layer_sizes)
        self.layers = [
            [Neuron(sizes[i], activation if i < len(layer_sizes) - 1 else "linear", rng) for _ in range(sizes[i + 1])]
            for i in range(len(layer_sizes))
        ]

    def __call__(self, x: list[Value | Number]) -> list[Value]:
        out: list[Value | Number] = list(x)
        for layer in self.layers:
            out = [neuron(out) for neuron in layer]
        return out  # type: ignore[return-value]

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for neuron in layer for p in neuron.parameters()]
