"""The Elman recurrent network in numpy: forward inference, backpropagation through time, vanishing gradients.

An Elman network (Elman 1990) reads a sequence one input at a time and keeps a
hidden state h_t, its memory of everything read so far:

    h_t = g(U h_{t-1} + W x_t + b),     g = tanh,  h_0 = 0 unless given
    y_t = softmax(V h_t + c)

W maps the input to the hidden layer, U the previous hidden state to the current
one (the recurrent connection), V the hidden state to the output. The same three
matrices serve every time step. Trained as a language model, x_t is the one-hot
vector of token t and y_t is the distribution of token t + 1; the loss is the mean
cross-entropy L = (1/T) sum_t -ln y_t[target_t].

Backpropagation through time (BPTT) unrolls the network over the T steps and
runs ordinary backprop on the unrolled graph. The gradient reaching h_t comes
from two places, the output at step t and the hidden state at step t + 1:

    dL/dh_t = V^T dz_t + U^T da_{t+1},    da_t = dL/dh_t * (1 - h_t^2)   (tanh' = 1 - tanh^2)

and, because the weights are shared, each weight's gradient is a sum over steps:
dU = sum_t da_t h_{t-1}^T, dW = sum_t da_t x_t^T, dV = sum_t dz_t h_t^T.
Book chapter: *Neural language models: feed-forward and recurrent*. The tests check every gradient
against PyTorch autograd.

Going k steps back multiplies the gradient by k Jacobians diag(1 - h^2) U^T, so
its norm behaves roughly like rho(U)^k: it vanishes when the spectral radius
rho(U) < 1 and can explode when rho(U) > 1 (:func:`gradient_norms_through_time`).
Clipping the gradient norm (:func:`clip_gradient_norm`) tames the explosion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from llmcourse.mlp import log_softmax, softmax

PARAMETERS = ("U", "W", "V", "b", "c")


class ElmanRNN:
    """A one-layer Elman network with parameters ``params = {"U", "W", "V", "b", "c"}`` (numpy, float64).

    Args:
        input_size: D, the length of x_t (the vocabulary size for one-hot tokens).
        hidden_size: H, the length of h_t.
        output_size: K, the number of output classes (the vocabulary size for a language model).
        seed: seeds the initial weights.
        spectral_radius: if given, U = spectral_radius * Q for a random orthogonal Q, so that
            every eigenvalue of U has modulus ``spectral_radius`` (and U^k scales any vector by
            exactly spectral_radius^k): the knob of the vanishing/exploding-gradient demo.
            Otherwise U, like W and V, is drawn from N(0, 1 / fan_in).
        input_scale: multiplies the initial W; a small value keeps tanh in its linear range.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        seed: int = 0,
        spectral_radius: float | None = None,
        input_scale: float = 1.0,
    ) -> None:
        for name, size in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size)):
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        rng = np.random.default_rng(seed)
        if spectral_radius is None:
            U = rng.normal(0.0, 1.0 / np.sqrt(hidden_size), (hidden_size, hidden_size))
        else:
            if not spectral_radius >= 0:
                raise ValueError(f"spectral_radius must be >= 0, got {spectral_radius}")
            Q, R = np.linalg.qr(rng.normal(size=(hidden_size, hidden_size)))
            U = spectral_radius * Q * np.sign(np.diag(R))  # sign fix: Q uniformly distributed over rotations
        self.params: dict[str, np.ndarray] = {
            "U": U,
            "W": input_scale * rng.normal(0.0, 1.0 / np.sqrt(input_size), (hidden_size, input_size)),
            "V": rng.normal(0.0, 1.0 / np.sqrt(hidden_size), (output_size, hidden_size)),
            "b": np.zeros(hidden_size),
            "c": np.zeros(output_size),
        }

    @property
    def input_size(self) -> int:
        return self.params["W"].shape[1]

    @property
    def hidden_size(self) -> int:
        return self.params["U"].shape[0]

    @property
    def output_size(self) -> int:
        return self.params["V"].shape[0]

    def _inputs(self, inputs: Sequence[int] | np.ndarray) -> np.ndarray:
        """Token ids (T,) become one-hot rows (T, D); vectors (T, D) pass through."""
        x = np.asarray(inputs)
        D = self.input_size
        if len(x) == 0:
            raise ValueError("the input sequence is empty: an RNN needs at least one time step")
        if x.ndim == 1 and np.issubdtype(x.dtype, np.integer):
            if x.min() < 0 or x.max() >= D:
                raise ValueError(f"token ids must lie in 0 .. {D - 1} (input_size = {D}), got {x.min()} .. {x.max()}")
            return np.eye(D)[x]
        if x.ndim != 2 or x.shape[1] != D:
            raise ValueError(f"inputs must be token ids of shape (T,) or vectors of shape (T, {D}), got shape {x.shape}")
        return x.astype(np.float64)

    def _h0(self, h0: np.ndarray | None) -> np.ndarray:
        if h0 is None:
            return np.zeros(self.hidden_size)
        h0 = np.asarray(h0, dtype=np.float64)
        if h0.shape != (self.hidden_size,):
            raise ValueError(f"h0 must have shape ({self.hidden_size},), the hidden size, got {h0.shape}")
        return h0

    def forward(self, inputs: Sequence[int] | np.ndarray, h0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the sequence through the network: hidden states h_1 .. h_T (T, H) and outputs y_1 .. y_T (T, K).

        The notes' FORWARDRNN: for t = 1 .. T, h_t = tanh(U h_{t-1} + W x_t + b), y_t = softmax(V h_t + c).
        """
        p = self.params
        x = self._inputs(inputs)
        h_prev = self._h0(h0)
        hidden = np.empty((len(x), self.hidden_size))
        for t in range(len(x)):
            hidden[t] = np.tanh(p["U"] @ h_prev + p["W"] @ x[t] + p["b"])
            h_prev = hidden[t]
        probabilities = softmax(hidden @ p["V"].T + p["c"])  # all steps at once: y_t depends only on h_t
        return hidden, probabilities

    def loss_and_gradients(
        self, inputs: Sequence[int] | np.ndarray, targets: Sequence[int] | np.ndarray, h0: np.ndarray | None = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """L = (1/T) sum_t -ln y_t[target_t] and its gradients by backpropagation through time.

        Returns the gradients of U, W, V, b, c and also of ``"h0"``, the gradient that
        truncated BPTT would pass on to the previous chunk.
        """
        p = self.params
        x = self._inputs(inputs)
        h0 = self._h0(h0)
        targets = np.asarray(targets)
        T = len(x)
        if targets.shape != (T,) or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"targets must be {T} integer class ids, one per input, got shape {targets.shape}")
        if targets.min() < 0 or targets.max() >= self.output_size:
            raise ValueError(f"targets must lie in 0 .. {self.output_size - 1}, got {targets.min()} .. {targets.max()}")
        hidden, probs = self.forward(x, h0)
        # From log-softmax, not log(probs): a target whose probability underflows to 0
        # still gives a finite (large) loss instead of inf.
        log_probs = log_softmax(hidden @ p["V"].T + p["c"])
        loss = float(-np.mean(log_probs[np.arange(T), targets]))

        grads = {name: np.zeros_like(value) for name, value in p.items()}
        dh_from_future = np.zeros(self.hidden_size)  # dL/dh_t through h_{t+1}; nothing beyond the last step
        for t in reversed(range(T)):
            h_prev = hidden[t - 1] if t > 0 else h0
            dz = probs[t].copy()  # dL/dz_t = (y_t - onehot(target_t)) / T, z_t = V h_t + c
            dz[targets[t]] -= 1.0
            dz /= T
            grads["V"] += np.outer(dz, hidden[t])
            grads["c"] += dz
            dh = p["V"].T @ dz + dh_from_future  # the two paths into h_t: its output and the next step
            da = dh * (1.0 - hidden[t] ** 2)  # through tanh: a_t = U h_{t-1} + W x_t + b
            grads["U"] += np.outer(da, h_prev)
            grads["W"] += np.outer(da, x[t])
            grads["b"] += da
            dh_from_future = p["U"].T @ da  # what h_{t-1} receives from step t
        grads["h0"] = dh_from_future
        return loss, grads


def gradient_norms_through_time(
    rnn: ElmanRNN, inputs: Sequence[int] | np.ndarray, target: int, h0: np.ndarray | None = None
) -> np.ndarray:
    """||dL_T / dh_{T-k}|| for k = 0, 1, .., T, where L_T = -ln y_T[target] is the loss at the last step only.

    Entry k says how strongly the last prediction's error reaches the hidden state k
    steps back (entry T is h_0). Each step back multiplies the gradient by the Jacobian
    dh_t/dh_{t-1} transposed, U^T diag(1 - h_t^2): with tanh in its linear range the
    norms fall or grow like rho(U)^k.
    """
    p = rnn.params
    hidden, probs = rnn.forward(inputs, h0)
    T = len(hidden)
    if not 0 <= target < rnn.output_size:
        raise ValueError(f"target must lie in 0 .. {rnn.output_size - 1}, got {target}")
    dz = probs[-1].copy()
    dz[target] -= 1.0
    dh = p["V"].T @ dz  # dL_T/dh_T
    norms = [np.linalg.norm(dh)]
    for t in reversed(range(T)):  # from h_t (index t) to h_{t-1}
        dh = p["U"].T @ (dh * (1.0 - hidden[t] ** 2))
        norms.append(np.linalg.norm(dh))
    return np.array(norms)


def clip_gradient_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> tuple[dict[str, np.ndarray], float]:
    """Scale all gradients together so their global norm sqrt(sum ||g||^2) is at most ``max_norm``.

    Returns the clipped gradients (new arrays) and the norm before clipping. Every
    gradient is multiplied by ``min(1, max_norm / (norm + 1e-6))``, exactly as
    ``torch.nn.utils.clip_grad_norm_`` does (so a norm just below ``max_norm`` is
    shrunk by a factor of about 1 - 1e-6 too): the direction is kept, only the step shrinks.
    Pass only the parameters' gradients: an extra entry such as ``"h0"`` would count in the norm.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    norm = float(np.sqrt(sum(float(np.sum(np.asarray(g, dtype=np.float64) ** 2)) for g in grads.values())))
    scale = min(1.0, max_norm / (norm + 1e-6))
    return {name: np.asarray(g, dtype=np.float64) * scale for name, g in grads.items()}, norm


def vanishing_gradient_demo(
    spectral_radii: Sequence[float] = (0.5, 0.9, 1.0, 1.1, 1.5),
    steps: int = 30,
    hidden_size: int = 32,
    vocab_size: int = 10,
    input_scale: float = 1e-6,
    seed: int = 0,
) -> dict[float, np.ndarray]:
    """For each spectral radius of U, :func:`gradient_norms_through_time` on one seeded random sequence.

    A tiny ``input_scale`` keeps the hidden states near 0, where tanh is linear, so the
    curves show the pure rho^k law; with ``input_scale=1`` large radii saturate tanh,
    and the factors 1 - h^2 shrink the gradient again.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, vocab_size, steps)
    target = int(rng.integers(0, vocab_size))
    return {
        float(r): gradient_norms_through_time(
            ElmanRNN(vocab_size, hidden_size, vocab_size, seed=seed, spectral_radius=r, input_scale=input_scale), inputs, target
        )
        for r in spectral_radii
    }
