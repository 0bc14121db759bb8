"""The backprop worked example: the lecture notes' numbers, and PyTorch autograd on the same graph."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse import backprop


def _torch_gradients(w1, w2, b, x1, x2, y_true):
    """The same loss in PyTorch (float64): its autograd is the independent oracle."""
    params = {name: torch.tensor(v, dtype=torch.float64, requires_grad=True) for name, v in dict(w1=w1, w2=w2, b=b).items()}
    y = params["w1"] * x1 + params["w2"] * x2 + params["b"]
    loss = (y_true - y) ** 2
    loss.backward()
    return y.item(), loss.item(), {name: p.grad.item() for name, p in params.items()}


def test_the_notes_numbers():
    graph = backprop.worked_example()  # w1=2, w2=-1, b=1 on (x1, x2, y_true) = (4, -3, 10)
    assert graph.value("h1") == 8 and graph.value("h2") == 3
    assert graph.value("y") == 12
    assert graph.value("L") == 4  # (10 - 12)^2
    assert graph.grad("y") == 4  # 2 (y - y_true)
    assert graph.grad("h1") == graph.grad("h2") == 4
    assert graph.gradients == {"w1": 16, "w2": -12, "b": 4}


def test_one_sgd_step_gives_the_notes_weights_and_prediction():
    step = backprop.sgd_step(backprop.worked_example(), learning_rate=0.01)
    assert step.parameters == pytest.approx({"w1": 1.84, "w2": -0.88, "b": 0.96}, abs=1e-12)
    assert step.prediction == pytest.approx(10.96, abs=1e-12)  # 1.84*4 + 0.88*3 + 0.96
    assert step.loss == pytest.approx(0.96**2, abs=1e-12)
    assert step.loss < backprop.worked_example().value("L")


def test_the_example_agrees_with_torch_autograd():
    y, loss, grads = _torch_gradients(2.0, -1.0, 1.0, 4.0, -3.0, 10.0)
    graph = backprop.worked_example()
    assert (graph.value("y"), graph.value("L")) == (y, loss)
    assert graph.gradients == grads


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=6, max_size=6))
@settings(max_examples=50, deadline=None)
def test_any_example_agrees_with_torch_autograd(values):
    w1, w2, b, x1, x2, y_true = values
    y, loss, grads = _torch_gradients(w1, w2, b, x1, x2, y_true)
    graph = backprop.worked_example(w1, w2, b, x1, x2, y_true)
    assert graph.value("y") == pytest.approx(y, rel=1e-12, abs=1e-12)
    assert graph.value("L") == pytest.approx(loss, rel=1e-12, abs=1e-12)
    for name, g in grads.items():
        assert graph.grad(name) == pytest.approx(g, rel=1e-12, abs=1e-12)


def test_every_gradient_is_the_chain_rule_product_along_its_edge():
    """dL/d(source) = sum over outgoing edges of local_grad * dL/d(target): the graph is self-consistent."""
    graph = backprop.worked_example(0.5, 1.5, -2.0, 3.0, 7.0, -1.0)
    for name, node in graph.nodes.items():
        outgoing = [e for e in graph.edges if e.source == name]
        if outgoing:
            assert node.grad == pytest.approx(sum(e.local_grad * graph.grad(e.target) for e in outgoing), rel=1e-12)
    assert graph.grad("L") == 1.0


def test_table_lists_every_node_in_forward_order():
    rows = backprop.worked_example().table()
    names = [r["node"] for r in rows]
    assert names[-1] == "L" and set(names) == {"x1", "x2", "w1", "w2", "b", "y_true", "h1", "h2", "y", "L"}
    assert names.index("h1") < names.index("y") < names.index("L")
    assert {r["node"]: r["dL/dnode"] for r in rows}["w2"] == -12


def test_layout_and_drawing():
    graph = backprop.worked_example()
    positions, edges = backprop.graph_layout(graph)
    assert set(positions) == set(graph.nodes)
    assert ("w1", "h1") in edges and ("y", "L") in edges
    for source, target in edges:  # edges point rightwards, from inputs towards the loss
        assert positions[source][0] < positions[target][0]
    ax = backprop.draw_computation_graph(graph)
    texts = [t.get_text() for t in ax.texts]
    assert "∂L/∂w1 = 16" in texts and "= 12" in texts
    plt.close(ax.figure)


def test_bad_inputs():
    graph = backprop.worked_example()
    with pytest.raises(ValueError, match="learning rate must be positive"):
        backprop.sgd_step(graph, learning_rate=0)
    with pytest.raises(ValueError, match="no node named 'w3'; the graph has"):
        graph.grad("w3")
