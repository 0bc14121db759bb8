"""In-context learning of linear functions: a small Transformer against least squares (Garg et al. 2022).

The task family is the linear functions f(x) = w^T x on R^d with a fresh random w for
every prompt:

    w ~ N(0, I_d),   x_1 .. x_n ~ N(0, I_d) independently,   y_i = w^T x_i   (no noise).

A prompt is the sequence x_1, y_1, x_2, y_2, .., x_n, each element a vector in R^d (a
y sits in the first coordinate, zeros elsewhere: Garg et al.'s "interleaved" encoding;
the "paired" encoding writes (x_i, 0) and (x_i, y_i) in R^(d+1) instead, see
:func:`encode_prompts`); a linear layer reads the vectors into the model's width, learned positions are added, pre-norm causal blocks
(:class:`llmcourse.gpt.Block`) follow, and a linear readout predicts y_i at the position
of x_i. The causal mask lets that prediction see x_1, y_1 .. x_{i-1}, y_{i-1} and x_i, so
it uses k = i - 1 in-context examples, and one prompt of n points trains every k from
0 to n - 1 at once:

    loss = (1/n) sum_i (yhat_i - y_i)^2,   averaged over a batch of prompts.

Since E[y^2] = E||w||^2 = d, errors are reported normalised by d (as Garg et al. do):
predicting 0 scores 1. The baselines see the same prompts and the same k examples:

    least squares      w = X^+ y, the minimum-norm solution when k < d (pseudo-inverse)
    ridge              w = (X^T X + alpha I)^{-1} X^T y
    k nearest (k = 3)  the mean y of the 3 examples closest to the query
    averaging          w = (1/k) sum_i y_i x_i (Garg et al.'s "averaging"; one gradient
                       step from w = 0, see :func:`gradient_descent`)
    zero               0

Without noise and with w ~ N(0, I), the minimum-norm least-squares prediction is the
posterior mean, so it is the best any learner can do: its error falls as (d - k)/d and is
0 from k = d on. A Transformer that learns linear regression in context should follow
that curve. Book chapter: *In-context learning*.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.gpt import GPT, Block, LayerNorm
from llmcourse.sizing import TransformerConfig

RIDGE_ALPHA = 1.0  # the ridge baseline's penalty: its prediction is the posterior mean if each y carried N(0, 1) noise
NEIGHBOURS = 3  # Garg et al.'s nearest-neighbour baseline averages the 3 nearest examples
ENCODINGS = ("interleaved", "paired")  # how a prompt becomes a sequence of vectors: see encode_prompts

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


# --- the task ------------------------------------------------------------------------------------


def sample_prompts(batch: int, n_points: int, dim: int, generator: torch.Generator | None = None,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` prompts of ``n_points`` points each: xs (batch, n_points, dim) and ys (batch, n_points).

    Every prompt draws its own w ~ N(0, I_dim); x ~ N(0, I_dim); y = w^T x, computed
    in float64 and returned in ``dtype``. The same generator seed gives the same prompts
    on any machine (the numbers are drawn on the CPU).
    """
    for name, value in (("batch", batch), ("n_points", n_points), ("dim", dim)):
        _positive_int(name, value)
    xs = torch.randn(batch, n_points, dim, generator=generator, dtype=torch.float64)
    w = torch.randn(batch, dim, 1, generator=generator, dtype=torch.float64)
    ys = (xs @ w)[..., 0]
    return xs.to(dtype), ys.to(dtype)


def _check_prompts(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray) -> None:
    if xs.ndim != 3:
        raise ValueError(f"xs must have shape (batch, n_points, dim), got {tuple(xs.shape)}")
    if tuple(ys.shape) != tuple(xs.shape[:2]):
        raise ValueError(
            f"ys must have shape (batch, n_points) = {tuple(xs.shape[:2])} to match xs, got {tuple(ys.shape)}"
        )


def _check_encoding(encoding: object) -> str:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(map(repr, ENCODINGS))}, got {encoding!r}")
    return encoding


def input_width(dim: int, encoding: str = "interleaved") -> int:
    """The length of the vectors :func:`encode_prompts` writes: d interleaved, d + 1 paired."""
    return _positive_int("dim", dim) + (_check_encoding(encoding) == "paired")


def encode_prompts(xs: torch.Tensor, ys: torch.Tensor, encoding: str = "interleaved") -> torch.Tensor:
    """The prompt as a sequence of 2 n - 1 vectors: shape (batch, 2 n - 1, input_width(d, encoding)).

    ``"interleaved"`` (Garg et al.): x_1, y_1, x_2, y_2, .., x_n in R^d, with x_i at
    position 2(i - 1) and y_i at 2i - 1 written as (y_i, 0, .., 0).

    ``"paired"``: (x_1, 0), (x_1, y_1), (x_2, 0), (x_2, y_2), .., (x_n, 0) in R^(d+1).
    The query vector (x_i, 0) sits where x_i did and the prediction is read there as
    before; the example vector (x_i, y_i) sits where y_i did, so an example arrives as
    one vector instead of two neighbouring ones (the chapter's plateau experiment).

    Either way the last y is left out: no prediction may see it, so it would only cost compute.
    """
    _check_prompts(xs, ys)
    _check_encoding(encoding)
    B, n, d = xs.shape
    if encoding == "interleaved":
        queries, examples = xs, torch.zeros_like(xs)
        examples[..., 0] = ys
    else:
        queries = torch.cat([xs, torch.zeros_like(xs[..., :1])], dim=-1)
        examples = torch.cat([xs, ys[..., None]], dim=-1)
    return torch.stack([queries, examples], dim=2).reshape(B, 2 * n, -1)[:, :-1]


# --- the model -----------------------------------------------------------------------------------


class ICLTransformer(nn.Module):
    """A GPT without a vocabulary: vectors in, one number out per x position.

    Args:
        dim: d, the input dimension of the function class.
        max_points: the most points a prompt may have; the context holds 2 max_points - 1 vectors.
        n_layer, n_head, n_embd: the Transformer's shape (Garg et al.: 12, 8, 256).
        encoding: how prompts become vectors, ``"interleaved"`` (Garg et al.) or ``"paired"``;
            see :func:`encode_prompts`.

    ``forward(xs, ys)`` returns predictions (batch, n): entry i is the model's guess of
    y_i from x_1, y_1 .. x_{i-1}, y_{i-1}, x_i. Initialisation as :class:`llmcourse.gpt.GPT`.
    """

    def __init__(self, dim: int, max_points: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 64,
                 encoding: str = "interleaved") -> None:
        super().__init__()
        self.dim = _positive_int("dim", dim)
        self.max_points = _positive_int("max_points", max_points)
        self.encoding = _check_encoding(encoding)
        # vocab_size is unused: the inputs are vectors, read in by a linear layer instead of an embedding table.
        self.config = TransformerConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                                        block_size=2 * max_points - 1, vocab_size=1, dropout=0.0)
        self.read_in = nn.Linear(input_width(dim, encoding), n_embd)
        self.wpe = nn.Embedding(self.config.block_size, n_embd)  # learned positions, as GPT-2
        self.blocks = nn.ModuleList(Block(self.config, layer) for layer in range(n_layer))
        self.ln_f = LayerNorm(n_embd)
        self.read_out = nn.Linear(n_embd, 1)
        self.apply(GPT._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("attn.out.weight") or name.endswith("mlp.down.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))  # as GPT: residual growth

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Predictions (batch, n) of y_1 .. y_n for xs (batch, n, dim) and ys (batch, n); causal."""
        _check_prompts(xs, ys)
        if xs.shape[-1] != self.dim:
            raise ValueError(f"the model reads {self.dim}-dimensional inputs, got xs with dim {xs.shape[-1]}")
        n = xs.shape[1]
        if 2 * n - 1 > self.config.block_size:
            raise ValueError(
                f"the prompt has {n} points ({2 * n - 1} positions) but the model's context holds "
                f"{self.config.block_size} positions, at most max_points = {self.max_points} points; "
                f"shorten the prompt or build the model with a larger max_points"
            )
        seq = encode_prompts(xs, ys, self.encoding)
        x = self.read_in(seq) + self.wpe(torch.arange(seq.shape[1], device=seq.device))
        for block in self.blocks:
            x, _ = block(x)
        return self.read_out(self.ln_f(x[:, ::2]))[..., 0]  # the x positions 0, 2, 4, ..


# --- baselines: each sees the first k points and predicts y_{k+1} -------------------------------


def _numpy_prompts(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(xs, torch.Tensor):
        xs = xs.detach().cpu().numpy()
    if isinstance(ys, torch.Tensor):
        ys = ys.detach().cpu().numpy()
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    _check_prompts(xs, ys)
    return xs, ys


def _linear_baseline(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray,
                     fit: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """preds[:, i] = x_{i+1}^T w_i, where w_i = fit(X, y) on the first i points (w_0 = 0)."""
    xs, ys = _numpy_prompts(xs, ys)
    preds = np.zeros(ys.shape)
    for k in range(1, xs.shape[1]):
        w = fit(xs[:, :k], ys[:, :k])  # (B, d)
        preds[:, k] = np.einsum("bd,bd->b", xs[:, k], w)
    return preds


def least_squares(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray) -> np.ndarray:
    """Predict y_{k+1} = x_{k+1}^T X^+ y from the first k points; X^+ the pseudo-inverse.

    With k < d the system is underdetermined and X^+ y is its minimum-norm solution (as
    ``np.linalg.lstsq``). Returns (batch, n) predictions in float64; k = 0 predicts 0.
    """
    return _linear_baseline(xs, ys, lambda X, y: (np.linalg.pinv(X) @ y[..., None])[..., 0])


def ridge(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray, alpha: float = RIDGE_ALPHA) -> np.ndarray:
    """Predict y_{k+1} = x_{k+1}^T (X^T X + alpha I)^{-1} X^T y from the first k points (no intercept)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"alpha must be a number > 0 (alpha = 0 is least_squares), got {alpha!r}")

    def fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
        gram = X.transpose(0, 2, 1) @ X + alpha * np.eye(X.shape[-1])
        return np.linalg.solve(gram, (X.transpose(0, 2, 1) @ y[..., None]))[..., 0]

    return _linear_baseline(xs, ys, fit)


def averaging(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray) -> np.ndarray:
    """Predict y_{k+1} = x_{k+1}^T w with w = (1/k) sum_i y_i x_i (unbiased for w, since E[x x^T] = I)."""
    return _linear_baseline(xs, ys, lambda X, y: (X * y[..., None]).mean(axis=1))


def gradient_descent(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray, steps: int = 1,
                     learning_rate: float = 1.0) -> np.ndarray:
    """Predict with w after ``steps`` of gradient descent on L(w) = (1/2k) ||X w - y||^2 from w = 0.

    One step: w = learning_rate (1/k) X^T y, the averaging estimator when the rate is 1.
    von Oswald et al. (2023) build one layer of linear attention that computes this step.
    """
    _positive_int("steps", steps)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be a number > 0, got {learning_rate!r}")

    def fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
        w = np.zeros((X.shape[0], X.shape[2]))
        for _ in range(steps):
            residual = np.einsum("bkd,bd->bk", X, w) - y
            w = w - learning_rate * np.einsum("bkd,bk->bd", X, residual) / X.shape[1]
        return w

    return _linear_baseline(xs, ys, fit)


def nearest_neighbours(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray,
                       n_neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Predict y_{k+1} as the mean y of the ``n_neighbours`` examples nearest x_{k+1} (Euclidean).

    With fewer examples than neighbours, all of them are averaged; k = 0 predicts 0.
    """
    _positive_int("n_neighbours", n_neighbours)
    xs, ys = _numpy_prompts(xs, ys)
    preds = np.zeros(ys.shape)
    for k in range(1, xs.shape[1]):
        dist = ((xs[:, :k] - xs[:, k : k + 1]) ** 2).sum(axis=-1)  # (B, k)
        nearest = np.argsort(dist, axis=1, kind="stable")[:, :n_neighbours]
        preds[:, k] = np.take_along_axis(ys[:, :k], nearest, axis=1).mean(axis=1)
    return preds


def zero(xs: torch.Tensor | np.ndarray, ys: torch.Tensor | np.ndarray) -> np.ndarray:
    """Predict 0 everywhere: the error is E[y^2] = d, or 1 after normalising by d."""
    _, ys = _numpy_prompts(xs, ys)
    return np.zeros(ys.shape)


BASELINES: dict[str, Predictor] = {
    "least squares": least_squares,
    f"ridge (alpha = {RIDGE_ALPHA:g})": ridge,
    f"{NEIGHBOURS}-nearest neighbours": nearest_neighbours,
    "averaging": averaging,
    "zero": zero,
}


# --- evaluation ----------------------------------------------------------------------------------


@torch.no_grad()
def predict(predictor: ICLTransformer | Predictor, xs: torch.Tensor, ys: torch.Tensor) -> np.ndarray:
    """Predictions (batch, n) of a model (run in eval mode on its device) or a baseline function."""
    if isinstance(predictor, nn.Module):
        device = next(predictor.parameters()).device
        was_training = predictor.training
        predictor.eval()
        try:
            out = predictor(xs.to(device), ys.to(device))
        finally:
            predictor.train(was_training)
        return out.double().cpu().numpy()
    if not callable(predictor):
        raise TypeError(f"predictor must be an ICLTransformer or a function (xs, ys) -> predictions, got {predictor!r}")
    return np.asarray(predictor(xs, ys), dtype=np.float64)


def squared_errors(predictor: ICLTransformer | Predictor, xs: torch.Tensor, ys: torch.Tensor) -> np.ndarray:
    """(yhat - y)^2 / d for every prompt and position: shape (batch, n); column k used k examples."""
    _check_prompts(xs, ys)
    return (predict(predictor, xs, ys) - ys.double().cpu().numpy()) ** 2 / xs.shape[-1]


EVAL_CHUNK = 256  # prompts drawn (and scored) at a time by evaluate


def evaluation_prompts(dim: int, n_points: int, n_prompts: int = 1024, seed: int = 1234
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The prompts :func:`evaluate` scores: chunks of up to EVAL_CHUNK prompts from a generator seeded ``seed``."""
    _positive_int("n_prompts", n_prompts)
    generator = torch.Generator().manual_seed(seed)
    return [sample_prompts(min(EVAL_CHUNK, n_prompts - start), n_points, dim, generator)
            for start in range(0, n_prompts, EVAL_CHUNK)]


def evaluate(predictor: ICLTransformer | Predictor, dim: int, n_points: int, n_prompts: int = 1024,
             seed: int = 1234) -> np.ndarray:
    """Mean squared error / d for k = 0 .. n_points - 1 in-context examples: shape (n_points,).

    The prompts are :func:`evaluation_prompts` (``dim``, ``n_points``, ``n_prompts``,
    ``seed``), so every predictor given the same arguments is scored on the same prompts.
    """
    errors = [squared_errors(predictor, xs, ys) for xs, ys in evaluation_prompts(dim, n_points, n_prompts, seed)]
    return np.concatenate(errors).mean(axis=0)


# --- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curriculum:
    """Garg et al.'s curriculum: start easy, grow the task every ``every`` steps.

    Training starts with ``start_dim`` live input coordinates (the others are 0) and
    ``start_points`` points; every ``every`` steps one coordinate and two points are
    added, up to the model's dim and the full number of points.
    """

    start_dim: int
    start_points: int
    every: int

    def __post_init__(self) -> None:
        for name in ("start_dim", "start_points", "every"):
            _positive_int(name, getattr(self, name))

    def at(self, step: int, dim: int, n_points: int) -> tuple[int, int]:
        """(live dimensions, points) at ``step``."""
        grown = step // self.every
        return min(dim, self.start_dim + grown), min(n_points, self.start_points + 2 * grown)


@dataclass
class TrainHistory:
    """The loss (mean squared error / d over all positions of the batch) every ``log_every`` steps."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "loss": self.loss, "seconds": self.seconds}


def train(model: ICLTransformer, n_points: int, steps: int, batch_size: int = 64, learning_rate: float = 1e-3,
          weight_decay: float = 0.0, seed: int = 0, curriculum: Curriculum | None = None,
          log_every: int = 50, progress: bool = False) -> TrainHistory:
    """Train ``model`` with AdamW on fresh prompts every step; returns the loss history.

    The loss is the mean squared error over the x positions of every prompt (Garg et al.),
    so one prompt of n points trains all k = 0 .. n - 1. Prompts are drawn on the CPU
    from a generator seeded ``seed`` (the same data on any device) and moved to the
    model's device. The learning rate warms up linearly over the first 5 % of the steps,
    then stays constant (as Garg et al.; 1e-4 there for a 12-layer model).
    """
    _positive_int("n_points", n_points)
    _positive_int("steps", steps)
    _positive_int("batch_size", batch_size)
    _positive_int("log_every", log_every)
    if n_points > model.max_points:
        raise ValueError(f"n_points = {n_points} but the model's context holds at most {model.max_points} points")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay,
                                  fused=device.type == "cuda")
    warmup = max(1, steps // 20)
    history = TrainHistory()
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        live_dim, points = (model.dim, n_points) if curriculum is None else curriculum.at(step, model.dim, n_points)
        xs, ys = sample_prompts(batch_size, points, live_dim, generator)
        if live_dim < model.dim:  # the curriculum's unused coordinates are zero, so w^T x is unchanged
            xs = F.pad(xs, (0, model.dim - live_dim))
        xs, ys = xs.to(device), ys.to(device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * min(1.0, (step + 1) / warmup)
        loss = F.mse_loss(model(xs, ys), ys)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % log_every == 0 or step == steps - 1:
            history.steps.append(step)
            history.loss.append(loss.item() / live_dim)
            if progress:
                print(f"step {step:6d}  loss/d {history.loss[-1]:.4f}  ({live_dim} dims, {points} points)", flush=True)
    history.seconds = time.perf_counter() - start
    return history
