"""The Transformer block in numpy: LayerNorm, what normalisation is invariant to, positions, and the block.

A GPT block is *pre-norm*: each sub-layer reads a normalised copy of the residual
stream x and adds its result back,

    x = x + MultiHeadAttention(LN_1(x))
    x = x + MLP(LN_2(x)),          MLP(u) = GELU(u W_1 + b_1) W_2 + b_2,

so the stream itself is never normalised: every block writes into it, and the
gradient reaches early layers through the identity paths unchanged. LayerNorm
normalises one token's vector across its d features,

    LN(x) = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta,

unlike BatchNorm, which normalises one feature across the batch; the two are
invariant to different rescalings (:func:`normalization_invariances`, Ba, Kiros &
Hinton 2016, Table 1). Positions enter as added vectors, learned or sinusoidal
(Vaswani et al. 2017, section 3.5). Book chapter: *The Transformer block and GPT*.

These are the readable numpy versions (no torch: cheap to import in a grading
kernel). The PyTorch modules of the same block, fast and with a KV cache, are in
:mod:`llmcourse.gpt`; the tests check the two agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmcourse.attention import multi_head_attention

# --- LayerNorm, BatchNorm and what they are invariant to (numpy) ---------------------------------


def layer_norm(x: np.ndarray, gamma: np.ndarray | None = None, beta: np.ndarray | None = None, eps: float = 1e-5) -> np.ndarray:
    """LN(x) = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis (one token's features).

    The variance is the biased one (divide by d), as in ``torch.nn.LayerNorm``.
    """
    return _normalize(x, -1, gamma, beta, eps)


def batch_norm(x: np.ndarray, gamma: np.ndarray | None = None, beta: np.ndarray | None = None, eps: float = 1e-5) -> np.ndarray:
    """BN(x) = gamma * (x - mean) / sqrt(var + eps) + beta over the first axis (one feature across the batch),
    with the batch's own statistics, as in training mode."""
    return _normalize(x, 0, gamma, beta, eps)


def _normalize(x: np.ndarray, axis: int, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float) -> np.ndarray:
    """gamma * (x - mean) / sqrt(var + eps) + beta with statistics along ``axis``: the only
    difference between layer norm (last axis: one example's features) and batch norm (axis 0)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def weight_norm(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weight normalisation (Salimans & Kingma 2016), gain 1: unit i computes w_i . x / ||w_i||."""
    return np.asarray(x, dtype=np.float64) @ (weights / np.linalg.norm(weights, axis=0, keepdims=True))


@dataclass(frozen=True)
class InvarianceRow:
    """One row of the invariance table: a change to the weights or the data, and whether each method's
    normalised summed inputs stay exactly the same under it."""

    change: str
    description: str
    batch_norm: bool
    layer_norm: bool
    weight_norm: bool


def normalization_invariances(seed: int = 0, batch: int = 8, d_in: int = 5, d_out: int = 6) -> list[InvarianceRow]:
    """Check numerically which changes leave BatchNorm, LayerNorm and weight norm unchanged.

    A layer computes summed inputs a = x W for a batch X (rows = training cases) and
    W (column i = unit i's incoming weights), then normalises them (no gain or shift,
    eps = 0, which is exact invariance). Each change is applied and the outputs are
    compared: the result reproduces Ba, Kiros & Hinton (2016), Table 1.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, d_in))
    W = rng.normal(size=(d_in, d_out))
    methods = {
        "batch_norm": lambda x, w: batch_norm(x @ w, eps=0.0),
        "layer_norm": lambda x, w: layer_norm(x @ w, eps=0.0),
        "weight_norm": weight_norm,
    }
    per_case = np.ones((batch, 1))
    per_case[2] = 3.7  # rescale one training case only
    changes = [
        ("weight matrix re-scaling", "W -> 2.5 W", X, 2.5 * W),
        ("weight matrix re-centering", "every unit's weights + the same vector g", X, W + rng.normal(size=(d_in, 1))),
        ("weight vector re-scaling", "unit i's weights x c_i, one scale per unit", X, W * rng.uniform(0.5, 3.0, size=d_out)),
        ("dataset re-scaling", "every input x -> 2.5 x", 2.5 * X, W),
        ("dataset re-centering", "every input x -> x + g", X + rng.normal(size=d_in), W),
        ("single training case re-scaling", "one input x_n -> 3.7 x_n", X * per_case, W),
    ]
    rows = []
    for name, description, x_new, w_new in changes:
        same = {m: bool(np.allclose(f(X, W), f(x_new, w_new), rtol=1e-9, atol=1e-9)) for m, f in methods.items()}
        rows.append(InvarianceRow(name, description, **same))
    return rows


# --- positions ------------------------------------------------------------------------------------


def sinusoidal_positions(n_positions: int, d: int, base: float = 10000.0) -> np.ndarray:
    """The (n_positions, d) matrix P of Vaswani et al. (2017):

        P[i, 2j] = sin(i / base^(2j/d)),   P[i, 2j+1] = cos(i / base^(2j/d)).

    Each pair of columns is a clock turning at its own speed, from one radian per
    position down to one turn per ~2 pi base positions, so P[i + k] is a rotation of
    P[i] that depends only on k: relative position is a linear map.
    """
    if n_positions < 1 or d < 2 or d % 2:
        raise ValueError(f"need n_positions >= 1 and an even d >= 2, got n_positions={n_positions}, d={d}")
    positions = np.arange(n_positions)[:, None]
    frequencies = base ** (-np.arange(0, d, 2) / d)  # 1 / base^(2j/d)
    angles = positions * frequencies[None, :]
    P = np.empty((n_positions, d))
    P[:, 0::2] = np.sin(angles)
    P[:, 1::2] = np.cos(angles)
    return P


# --- the block --------------------------------------------------------------------------------


def gelu(x: np.ndarray) -> np.ndarray:
    """GPT-2's GELU, the tanh approximation: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


BLOCK_PARAMETERS = ("ln_1_weight", "ln_1_bias", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o",
                    "ln_2_weight", "ln_2_bias", "W_1", "b_1", "W_2", "b_2")


def transformer_block(x: np.ndarray, params: dict[str, np.ndarray], n_head: int, causal: bool = True,
                      eps: float = 1e-5) -> np.ndarray:
    """One pre-norm block on x (..., n, d): x + MHA(LN_1(x)), then x + MLP(LN_2(x)).

    ``params`` holds the arrays named in :data:`BLOCK_PARAMETERS`, with weights acting
    on the right (u W): W_q, W_k, W_v, W_o are (d, d), W_1 is (d, 4d), W_2 is (4d, d).
    A missing bias counts as zero (GPT configs with ``bias=False``).
    """
    missing = [name for name in BLOCK_PARAMETERS if not name.startswith(("b_", "ln_1_b", "ln_2_b")) and name not in params]
    if missing:
        raise ValueError(f"params is missing {missing}; a block needs {', '.join(BLOCK_PARAMETERS)} (biases optional)")
    p = {name: params.get(name, 0.0) for name in BLOCK_PARAMETERS}
    x = np.asarray(x, dtype=np.float64)
    attended, _ = multi_head_attention(layer_norm(x, p["ln_1_weight"], p["ln_1_bias"], eps), p["W_q"], p["W_k"],
                                       p["W_v"], p["W_o"], n_head, causal=causal,
                                       biases=(p["b_q"], p["b_k"], p["b_v"], p["b_o"]))
    x = x + attended  # the residual stream: each sub-layer adds to it, nothing overwrites it
    hidden = gelu(layer_norm(x, p["ln_2_weight"], p["ln_2_bias"], eps) @ p["W_1"] + p["b_1"])
    return x + hidden @ p["W_2"] + p["b_2"]
