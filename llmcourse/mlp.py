"""A two-layer neural network in numpy, with its backward pass written out by hand.

The network maps a batch X (N examples, D features) to class probabilities:

    A = X W1 + b1,   H = g(A),   Z = H W2 + b2,   P = softmax(Z),
    L = -(1/N) sum_n ln P[n, y_n],

with g = ReLU or tanh. Each layer is a pair of functions: ``*_forward`` returns its
output and a cache of what the backward pass needs; ``*_backward`` takes dL/d(output)
and returns dL/d(inputs) by the chain rule. The gradients, in matrix form:

    dZ  = (P - onehot(y)) / N                   (softmax and cross-entropy together)
    dW2 = H^T dZ,   db2 = sum_n dZ[n],   dH = dZ W2^T
    dA  = dH * g'(A)                            (elementwise: 1[A > 0] for ReLU, 1 - H^2 for tanh)
    dW1 = X^T dA,   db1 = sum_n dA[n]

Rows are examples (the batch convention of numpy and PyTorch), so a layer is
x W + b rather than the notes' W x + b. Book chapter: *Neural networks and
backpropagation*, "Backpropagation with matrices". The tests check every
gradient against PyTorch autograd and against finite differences.
"""

from __future__ import annotations

import numpy as np

# The stable softmax (subtract the max before exp) is taught once, with attention; the
# output layer here uses the same function.
from llmcourse.attention import softmax

Cache = tuple


def _check_2d(name: str, x: np.ndarray, columns: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or (columns is not None and x.shape[1] != columns):
        expected = f"(batch, {columns})" if columns is not None else "(batch, features)"
        raise ValueError(f"{name} must have shape {expected}, one row per example, got shape {x.shape}")
    return x


# ------------------------------------------------------------------------- layers
def affine_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x W + b, for x of shape (N, D), W of shape (D, M), b of shape (M,)."""
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if W.ndim != 2 or b.shape != (W.shape[1],):
        raise ValueError(f"W must have shape (D, M) and b shape (M,); got W {W.shape} and b {b.shape}")
    x = _check_2d("x", x, W.shape[0])
    return x @ W + b, (x, W)


def affine_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx = dout W^T, dW = x^T dout, db = sum over the batch of dout."""
    x, W = cache
    dout = _check_2d("dout", dout, W.shape[1])
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = max(0, x), elementwise."""
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0.0), (x,)


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * 1[x > 0]: the gradient passes where the unit was active (0 at x = 0, as in PyTorch)."""
    (x,) = cache
    return np.asarray(dout, dtype=np.float64) * (x > 0)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = tanh(x), elementwise."""
    out = np.tanh(np.asarray(x, dtype=np.float64))
    return out, (out,)


def tanh_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * (1 - tanh(x)^2); the cache holds tanh(x) itself, so nothing is recomputed."""
    (out,) = cache
    return np.asarray(dout, dtype=np.float64) * (1.0 - out**2)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """ln softmax(z)_i = (z_i - max z) - ln sum_j e^(z_j - max z): finite even where softmax underflows to 0."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _check_targets(targets: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    targets = np.asarray(targets)
    if targets.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), one class id per example, got shape {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integer class ids, got dtype {targets.dtype}")
    if n and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"targets must lie in 0 .. {num_classes - 1} (one per class), got values {targets.min()} .. {targets.max()}")
    return targets


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """L = -(1/N) sum_n ln softmax(z_n)[y_n], and dL/dz = (softmax(z) - onehot(y)) / N.

    The gradient of the two steps together is that simple difference, which is
    why frameworks fuse them (``torch.nn.functional.cross_entropy`` takes logits).
    """
    z = _check_2d("logits", logits)
    if z.shape[0] == 0:
        raise ValueError("the batch is empty: cross-entropy is a mean over at least one example")
    y = _check_targets(targets, z.shape[0], z.shape[1])
    n = z.shape[0]
    rows = np.arange(n)
    loss = float(-log_softmax(z)[rows, y].mean())
    dlogits = softmax(z)
    dlogits[rows, y] -= 1.0
    return loss, dlogits / n


# ------------------------------------------------------------------------- the network
class TwoLayerMLP:
    """affine -> ReLU or tanh -> affine -> softmax cross-entropy, with parameters in ``self.params``.

    Weights are drawn from N(0, 1 / fan_in) (so the pre-activations start with
    variance about 1 whatever the layer width), biases start at 0, seeded.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_classes: int, activation: str = "relu", seed: int = 0
    ) -> None:
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size), ("num_classes", num_classes)):
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        rng = np.random.default_rng(seed)
        self.activation = activation
        self.params: dict[str, np.ndarray] = {
            "W1": rng.normal(0.0, 1.0 / np.sqrt(input_size), (input_size, hidden_size)),
            "b1": np.zeros(hidden_size),
            "W2": rng.normal(0.0, 1.0 / np.sqrt(hidden_size), (hidden_size, num_classes)),
            "b2": np.zeros(num_classes),
        }

    @property
    def input_size(self) -> int:
        return self.params["W1"].shape[0]

    @property
    def num_classes(self) -> int:
        return self.params["W2"].shape[1]

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, tuple[Cache, Cache, Cache]]:
        p = self.params
        X = _check_2d("X", X, self.input_size)
        A, cache1 = affine_forward(X, p["W1"], p["b1"])
        H, cache_g = relu_forward(A) if self.activation == "relu" else tanh_forward(A)
        Z, cache2 = affine_forward(H, p["W2"], p["b2"])
        return Z, (cache1, cache_g, cache2)

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Z = g(X W1 + b1) W2 + b2, shape (N, num_classes)."""
        return self._forward(X)[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class of each example."""
        return self.logits(X).argmax(axis=1)

    def loss_and_gradients(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The mean cross-entropy on (X, y) and its gradient with respect to every parameter (same keys)."""
        Z, (cache1, cache_g, cache2) = self._forward(X)
        loss, dZ = softmax_cross_entropy(Z, y)
        # Backward: the forward steps in reverse, each turning dL/d(output) into dL/d(input).
        dH, dW2, db2 = affine_backward(dZ, cache2)
        dA = relu_backward(dH, cache_g) if self.activation == "relu" else tanh_backward(dH, cache_g)
        _, dW1, db1 = affine_backward(dA, cache1)
        return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    def train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        learning_rate: float = 0.1,
        epochs: int = 100,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> list[float]:
        """Minibatch SGD, p <- p - learning_rate * dL/dp; returns the mean training loss of each epoch.

        ``batch_size=None`` uses the whole set each step (full-batch gradient descent);
        otherwise the examples are shuffled each epoch with a seeded generator.
        """
        X = _check_2d("X", X, self.input_size)
        _check_targets(y, X.shape[0], self.num_classes)
        if not learning_rate > 0 or epochs < 0:
            raise ValueError(f"need learning_rate > 0 and epochs >= 0, got {learning_rate} and {epochs}")
        rng = np.random.default_rng(seed)
        n = X.shape[0]
        if n == 0:
            raise ValueError("X has no rows: training needs at least one example")
        size = n if batch_size is None else int(batch_size)
        if not 1 <= size:
            raise ValueError(f"batch_size must be a positive integer or None (full batch), got {batch_size}")
        history = []
        for _ in range(epochs):
            order = rng.permutation(n) if batch_size is not None else np.arange(n)
            total = 0.0
            for start in range(0, n, size):
                batch = order[start : start + size]
                loss, grads = self.loss_and_gradients(X[batch], y[batch])
                for name, g in grads.items():
                    self.params[name] -= learning_rate * g
                total += loss * len(batch)
            history.append(total / n)
        return history
