"""Backpropagation by hand: the worked example of a one-layer network, every number computed by code.

The network has no activation function and one output,

    y = w1 x1 + w2 x2 + b,        L = (y_true - y)^2,

trained on one example (x1, x2, y_true) = (4, -3, 10) from w1 = 2, w2 = -1, b = 1.
Backpropagation applies the chain rule node by node, from the loss back to the
parameters, through the intermediate nodes h1 = w1 x1 and h2 = w2 x2:

    dL/dy  = 2 (y - y_true)                      = 2 (12 - 10)  = 4
    dL/dw1 = dL/dy * dy/dh1 * dh1/dw1 = 4 * 1 * x1 = 4 * 1 * 4    = 16
    dL/dw2 = dL/dy * dy/dh2 * dh2/dw2 = 4 * 1 * x2 = 4 * 1 * (-3) = -12
    dL/db  = dL/dy * dy/db            = 4 * 1                     = 4

and one step of gradient descent, w <- w - eta dL/dw with eta = 0.01, gives
w1 = 1.84, w2 = -0.88, b = 0.96 and a new prediction of 10.96, closer to 10.
Book chapter: *Neural networks and backpropagation*, "A backprop example".

:func:`worked_example` returns a :class:`ComputationGraph` holding every node's
forward value and gradient (a chapter prints it as a table with
:meth:`ComputationGraph.table`), :func:`sgd_step` the updated parameters, and
:func:`draw_computation_graph` draws the graph with matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

@dataclass(frozen=True)
class Node:
    """One node of the computation graph: its forward value and dL/d(node)."""

    name: str
    kind: str  # "input", "parameter", "intermediate" or "loss"
    formula: str  # how the forward pass computes it, e.g. "h1 = w1 * x1"
    value: float
    grad: float


@dataclass(frozen=True)
class Edge:
    """``source`` feeds ``target``; ``local_grad`` is d(target)/d(source), the factor backprop multiplies by."""

    source: str
    target: str
    local_grad: float


@dataclass(frozen=True)
class ComputationGraph:
    """The graph of y = w1 x1 + w2 x2 + b and L = (y_true - y)^2, after a forward and a backward pass.

    ``nodes`` are in forward (topological) order; the backward pass visits them in reverse.
    """

    nodes: dict[str, Node]
    edges: list[Edge] = field(default_factory=list)

    def value(self, name: str) -> float:
        """The forward value of a node, e.g. ``graph.value("y") == 12``."""
        return self._node(name).value

    def grad(self, name: str) -> float:
        """dL/d(node), e.g. ``graph.grad("w1") == 16``."""
        return self._node(name).grad

    @property
    def parameters(self) -> dict[str, float]:
        return {n.name: n.value for n in self.nodes.values() if n.kind == "parameter"}

    @property
    def gradients(self) -> dict[str, float]:
        """dL/dw for every parameter w: what gradient descent needs."""
        return {n.name: n.grad for n in self.nodes.values() if n.kind == "parameter"}

    def table(self) -> list[dict[str, Any]]:
        """One row per node (name, kind, formula, value, gradient), ready for printing or a DataFrame."""
        return [
            {"node": n.name, "kind": n.kind, "formula": n.formula, "value": n.value, "dL/dnode": n.grad}
            for n in self.nodes.values()
        ]

    def _node(self, name: str) -> Node:
        if name not in self.nodes:
            raise ValueError(f"no node named {name!r}; the graph has {', '.join(self.nodes)}")
        return self.nodes[name]


@dataclass(frozen=True)
class SGDStep:
    """The result of one gradient-descent step: new parameters, and the forward pass they give."""

    parameters: dict[str, float]
    prediction: float
    loss: float


def worked_example(
    w1: float = 2.0, w2: float = -1.0, b: float = 1.0, x1: float = 4.0, x2: float = -3.0, y_true: float = 10.0
) -> ComputationGraph:
    """Forward and backward pass through y = w1 x1 + w2 x2 + b, L = (y_true - y)^2, node by node.

    Each gradient is the gradient of the node it feeds times a local derivative
    (the chain rule), computed in reverse order of the forward pass:
    dL/dL = 1, dL/dy = 2 (y - y_true), dL/dh1 = dL/dy * 1, dL/dw1 = dL/dh1 * x1, ...
    The inputs get gradients too (dL/dx1 = dL/dh1 * w1), though training does not
    use them: x is data, not something we can change.
    """
    # Forward pass: every intermediate value is kept, because the backward pass needs them.
    h1 = w1 * x1
    h2 = w2 * x2
    y = h1 + h2 + b
    loss = (y_true - y) ** 2

    # Backward pass: start from dL/dL = 1 and multiply by one local derivative per edge.
    dL_dloss = 1.0
    dL_dy = dL_dloss * 2 * (y - y_true)  # d/dy (y_true - y)^2 = 2 (y_true - y) * (-1)
    dL_dh1 = dL_dy * 1.0  # y = h1 + h2 + b, so dy/dh1 = 1
    dL_dh2 = dL_dy * 1.0
    dL_db = dL_dy * 1.0
    dL_dw1 = dL_dh1 * x1  # h1 = w1 x1, so dh1/dw1 = x1
    dL_dx1 = dL_dh1 * w1
    dL_dw2 = dL_dh2 * x2
    dL_dx2 = dL_dh2 * w2
    dL_dytrue = dL_dloss * 2 * (y_true - y)

    nodes = [
        Node("x1", "input", "x1", x1, dL_dx1),
        Node("w1", "parameter", "w1", w1, dL_dw1),
        Node("x2", "input", "x2", x2, dL_dx2),
        Node("w2", "parameter", "w2", w2, dL_dw2),
        Node("b", "parameter", "b", b, dL_db),
        Node("y_true", "input", "y_true", y_true, dL_dytrue),
        Node("h1", "intermediate", "h1 = w1 * x1", h1, dL_dh1),
        Node("h2", "intermediate", "h2 = w2 * x2", h2, dL_dh2),
        Node("y", "intermediate", "y = h1 + h2 + b", y, dL_dy),
        Node("L", "loss", "L = (y_true - y)^2", loss, dL_dloss),
    ]
    edges = [
        Edge("w1", "h1", x1),
        Edge("x1", "h1", w1),
        Edge("w2", "h2", x2),
        Edge("x2", "h2", w2),
        Edge("h1", "y", 1.0),
        Edge("h2", "y", 1.0),
        Edge("b", "y", 1.0),
        Edge("y", "L", 2 * (y - y_true)),
        Edge("y_true", "L", 2 * (y_true - y)),
    ]
    return ComputationGraph({n.name: n for n in nodes}, edges)


def sgd_step(graph: ComputationGraph, learning_rate: float = 0.01) -> SGDStep:
    """One step of gradient descent, w_new = w - eta dL/dw for w in (w1, w2, b), then a new forward pass."""
    if not learning_rate > 0:
        raise ValueError(f"the learning rate must be positive (the notes use 0.01), got {learning_rate}")
    new = {name: value - learning_rate * graph.grad(name) for name, value in graph.parameters.items()}
    inputs = {name: graph.value(name) for name in ("x1", "x2", "y_true")}
    after = worked_example(**new, **inputs)
    return SGDStep(new, after.value("y"), after.value("L"))


#: Where each node sits when drawn: inputs and parameters on the left, the loss on the right.
_LAYOUT = {
    "x1": (0.0, 4.0), "w1": (0.0, 3.0), "x2": (0.0, 2.0), "w2": (0.0, 1.0), "b": (0.0, 0.0),
    "h1": (2.2, 3.6), "h2": (2.2, 2.0), "y": (4.4, 2.0), "y_true": (4.4, 0.0), "L": (6.6, 1.0),
}  # fmt: skip


def graph_layout(graph: ComputationGraph) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str]]]:
    """Node positions (x, y) and the edges (source, target), for drawing the graph with any plotting tool."""
    return {name: _LAYOUT[name] for name in graph.nodes}, [(e.source, e.target) for e in graph.edges]


def draw_computation_graph(graph: ComputationGraph, ax: Any = None, show_gradients: bool = True) -> Any:
    """Draw the computation graph with matplotlib and return the Axes.

    Each node shows its formula and forward value and, in red, dL/d(node); each edge
    shows "x local derivative", the factor the backward pass multiplies by along it.
    """
    import matplotlib.pyplot as plt  # here, not at the top: the rest of the module needs no plotting library
    from matplotlib.patches import FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(11, 5.5))
    positions, _ = graph_layout(graph)
    colours = {"input": "#e8e8e8", "parameter": "#cfe2f3", "intermediate": "#fff2cc", "loss": "#f4cccc"}
    half_w, half_h = 0.72, 0.36
    for edge in graph.edges:
        (x0, y0), (x1, y1) = positions[edge.source], positions[edge.target]
        start, end = (x0 + half_w, y0), (x1 - half_w, y1)
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="0.45", lw=1.2))
        if show_gradients:  # label near the arrowhead, where the edges into one node are far apart
            lx, ly = start[0] + 0.72 * (end[0] - start[0]), start[1] + 0.72 * (end[1] - start[1])
            ax.text(lx, ly + 0.1, f"×{edge.local_grad:g}", fontsize=8, color="0.3", ha="center",
                    bbox=dict(facecolor="white", edgecolor="none", pad=0.5))  # fmt: skip
    for node in graph.nodes.values():
        x, y = positions[node.name]
        ax.add_patch(FancyBboxPatch((x - half_w, y - half_h), 2 * half_w, 2 * half_h, boxstyle="round,pad=0.03",
                                    facecolor=colours[node.kind], edgecolor="0.3"))  # fmt: skip
        ax.text(x, y + 0.17, node.formula, ha="center", va="center", fontsize=9)
        ax.text(x, y - 0.02, f"= {node.value:g}", ha="center", va="center", fontsize=10, weight="bold")
        if show_gradients:
            ax.text(x, y - 0.22, f"∂L/∂{node.name} = {node.grad:g}", ha="center", va="center", fontsize=8, color="#c00000")
    ax.set_xlim(-0.9, 7.5)
    ax.set_ylim(-0.6, 4.6)
    ax.axis("off")
    return ax
