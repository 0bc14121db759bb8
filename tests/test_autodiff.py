"""The scalar autodiff engine against PyTorch autograd (float64), as micrograd's own tests do."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llmcourse.autodiff import MLP, Value, topological_order, zero_grad

# Each operation is written once and applied to both engines: Value and torch.Tensor share the
# operator syntax, and the method names differ only where torch has its own (sigmoid, relu, exp, ...).
# The guards (a * a + 0.5, b * b + 1) keep log and division inside their domains.
UNARY = [
    ("neg", lambda a: -a),
    ("exp(tanh)", lambda a: a.tanh().exp()),
    ("log", lambda a: (a * a + 0.5).log()),
    ("tanh", lambda a: a.tanh()),
    ("relu", lambda a: a.relu()),
    ("sigmoid", lambda a: a.sigmoid()),
    ("square", lambda a: a**2),
    ("sqrt", lambda a: (a * a + 1) ** 0.5),
    ("pow -1.5", lambda a: (a * a + 1) ** -1.5),
    ("rsub", lambda a: 2.0 - a),
    ("rdiv", lambda a: 3.0 / (a * a + 1)),
    ("radd rmul", lambda a: 0.5 + 2.0 * a),
]
BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / (b * b + 1)),
]


def _build(leaves, program):
    """Apply the program (a list of (op, i, j) steps over earlier nodes) and return the last node.

    Steps reuse earlier nodes, so the graph has shared subexpressions whose gradients must accumulate.
    """
    nodes = list(leaves)
    for op, i, j in program:
        a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
        nodes.append(UNARY[op % len(UNARY)][1](a) if op < len(UNARY) else BINARY[op % len(BINARY)][1](a, b))
    return nodes[-1]


@given(
    st.lists(st.floats(-2, 2, allow_nan=False).filter(lambda x: abs(x) > 1e-3), min_size=3, max_size=3),
    st.lists(st.tuples(st.integers(0, len(UNARY) + len(BINARY) - 1), st.integers(0, 50), st.integers(0, 50)),
             min_size=1, max_size=15),
)  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_random_expressions_match_torch(inputs, program):
    ours = [Value(x) for x in inputs]
    theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    out_ours = _build(ours, program)
    out_theirs = _build(theirs, program)
    assume(math.isfinite(out_theirs.item()) and abs(out_theirs.item()) < 1e8)
    if not isinstance(out_ours, Value):  # the program returned a leaf untouched
        return
    out_ours.backward()
    out_theirs.backward()
    assert out_ours.data == pytest.approx(out_theirs.item(), rel=1e-6, abs=1e-6)
    for v, t in zip(ours, theirs):
        expected = t.grad.item() if t.grad is not None else 0.0
        assert v.grad == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_micrograd_sanity_check():
    """The expression of micrograd's test_engine.py, every operation and a reused variable."""
    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()

    xt = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    zt = 2 * xt + 2 + xt
    qt = zt.relu() + zt * xt
    ht = (zt * zt).relu()
    yt = ht + qt + qt * xt
    yt.backward()
    assert y.data == pytest.approx(yt.item(), abs=1e-12)
    assert x.grad == pytest.approx(xt.grad.item(), abs=1e-12)


def test_a_value_used_twice_gets_both_gradients():
    x = Value(3.0)
    (x * x).backward()
    assert x.grad == 6.0  # 2x: one x.data from each use, accumulated by +=
    y = Value(5.0)
    (y + y).backward()
    assert y.grad == 2.0


def test_gradients_accumulate_until_zeroed():
    x = Value(2.0)
    (x * 3).backward()
    (x * 3).backward()
    assert x.grad == 6.0
    zero_grad([x])
    (x * 3).backward()
    assert x.grad == 3.0


def test_a_second_backward_over_the_same_graph_accumulates_like_torch():
    """Twice backward through a deep graph: each leaf gets exactly twice its gradient (torch, retain_graph)."""
    x, w = Value(0.7), Value(-1.3)
    y = ((x * w).tanh() * x + w).exp()
    y.backward()
    y.backward()

    xt = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(-1.3, dtype=torch.float64, requires_grad=True)
    yt = ((xt * wt).tanh() * xt + wt).exp()
    yt.backward(retain_graph=True)
    yt.backward()
    assert x.grad == pytest.approx(xt.grad.item(), rel=1e-12)
    assert w.grad == pytest.approx(wt.grad.item(), rel=1e-12)
    assert y.grad == 1.0  # the output's own gradient is dL/dL = 1 each pass, not accumulated


def test_topological_order_puts_inputs_first():
    a, b = Value(1.0, label="a"), Value(2.0, label="b")
    c = a * b
    d = c + a
    order = topological_order(d)
    position = {id(v): i for i, v in enumerate(order)}
    assert len(order) == 4
    assert position[id(a)] < position[id(c)] < position[id(d)]
    assert position[id(b)] < position[id(c)]


def test_a_long_chain_does_not_hit_the_recursion_limit():
    x = Value(1.0)
    y = x
    steps = sys.getrecursionlimit() * 3
    for _ in range(steps):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001**steps, rel=1e-9)


def test_sigmoid_does_not_overflow():
    big, small = Value(800.0).sigmoid(), Value(-800.0).sigmoid()
    assert big.data == 1.0 and small.data == 0.0
    assert torch.sigmoid(torch.tensor(-30.0, dtype=torch.float64)).item() == pytest.approx(Value(-30.0).sigmoid().data, rel=1e-12)


def test_mlp_gradients_match_finite_differences_and_training_lowers_loss():
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    net = MLP(3, [4, 4, 1], seed=1)
    assert len(net.parameters()) == (3 * 4 + 4) + (4 * 4 + 4) + (4 + 1)

    def loss_fn():
        return sum(((net(x)[0] - y) ** 2 for x, y in zip(xs, ys)), Value(0.0))

    loss = loss_fn()
    zero_grad(net.parameters())
    loss.backward()
    for p in net.parameters()[::5]:  # central differences on every fifth parameter
        original, eps = p.data, 1e-6
        p.data = original + eps
        plus = loss_fn().data
        p.data = original - eps
        minus = loss_fn().data
        p.data = original
        assert p.grad == pytest.approx((plus - minus) / (2 * eps), rel=1e-5, abs=1e-7)
    before = loss.data
    for _ in range(20):
        loss = loss_fn()
        zero_grad(net.parameters())
        loss.backward()
        for p in net.parameters():
            p.data -= 0.05 * p.grad
    assert loss_fn().data < before / 2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Value(0.0).log(), "log is defined only for positive numbers"),
        (lambda: Value(-1.0).log(), "got -1.0"),
        (lambda: Value(2.0) ** Value(3.0), r"only for a number y, not a Value.*\(y \* x.log\(\)\).exp\(\)"),
        (lambda: Value(-8.0) ** 0.5, "negative base needs an integer exponent"),
        (lambda: Value(1.0) / Value(0.0), "divides by zero"),
        (lambda: Value("3"), "a Value holds one int or float, got str"),
        (lambda: Value(1.0) + "a", "combine a Value with another Value or a number"),
        (lambda: MLP(2, [3, 1], activation="sigmoid"), "activation must be"),
        (lambda: MLP(2, [1])([1.0, 2.0, 3.0]), "takes 2 inputs, got 3"),
    ],
)
def test_errors_say_what_to_do(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_numpy_scalars_are_numbers_and_exp_overflow_is_explained():
    import numpy as np

    assert (Value(np.int64(3)) * np.float64(2.0)).data == 6.0
    with pytest.raises(ValueError, match="overflows a float"):
        Value(800.0).exp()
    assert Value(700.0).exp().data == pytest.approx(math.exp(700.0))
