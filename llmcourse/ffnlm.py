"""The feed-forward neural language model of Bengio, Ducharme, Vincent & Jauvin (2003), in PyTorch.

Like an n-gram model, it predicts w_t from the n - 1 words before it; unlike one,
it looks each word up in a shared embedding matrix C (one row of m numbers per
vocabulary word), so that similar words can share what is learned about them:

    x = [C(w_{t-n+1}); ... ; C(w_{t-1})]          concatenation, (n - 1) m numbers
    h = tanh(d + H x)                             hidden layer
    z = b + U h  (+ W x, the optional "direct connections")
    P(w_t = i | context) = softmax(z)_i

The lecture notes (after Jurafsky & Martin) write the same network as
e = [E x_1; E x_2; E x_3], h = sigma(W e + b), y = softmax(U h): E is Bengio's C and
their W is his H. Training minimises the cross-entropy -ln P(w_t | context), the
mean over all training windows. Book chapter: *Neural language models: feed-forward and recurrent*, "The feed-forward neural language model".

The data helpers cut sentences exactly as :class:`llmcourse.ngram.NgramModel` does
(n - 1 ``<s>`` before each sentence, one ``</s>`` after it, unseen words as
``<unk>``) over the same vocabulary (:func:`ngram_vocabulary`), so the model
predicts the same N tokens as an n-gram model and the perplexities are comparable.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from llmcourse.hardware import default_device
from llmcourse.information import perplexity_from_log_probs
from llmcourse.ngram import pad_sentence
from llmcourse.vocab import BOS, EOS, Vocabulary

Sentence = Sequence[str]


# ------------------------------------------------------------------------- data
def ngram_vocabulary(sentences: Sequence[Sentence], order: int = 3, min_count: int = 1) -> Vocabulary:
    """The vocabulary ``NgramModel(order, min_count=min_count).fit(sentences)`` builds: the training words
    seen at least ``min_count`` times, ``<s>``, ``</s>`` and ``<unk>``.

    Ids are sorted by frequency, counting the ``order - 1`` start and one end symbol of
    each sentence as the n-gram model does, so with the same ``order`` the ids agree too.
    """
    if order < 2:
        raise ValueError(f"order must be at least 2 (a context of order - 1 >= 1 words), got {order}")
    sentences = [s for s in sentences if len(s) > 0]
    if not sentences:
        raise ValueError("the training corpus is empty: need at least one non-empty sentence")
    counts = Counter(chain.from_iterable(sentences))
    counts[BOS] += (order - 1) * len(sentences)
    counts[EOS] += len(sentences)
    return Vocabulary.from_counts(counts, min_count)


@dataclass(frozen=True)
class Windows:
    """Training or test examples of a fixed-window model: ``contexts[i]`` (n - 1 ids) predicts ``targets[i]``."""

    contexts: np.ndarray  # (N, n - 1) int64
    targets: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def context_size(self) -> int:
        return self.contexts.shape[1]


def make_windows(sentences: Sequence[Sentence], vocab: Vocabulary, context_size: int) -> Windows:
    """Every (context, next token) pair of the padded sentences, as ids.

    Each sentence is padded as ``pad_sentence(s, context_size + 1)`` pads it for an
    n-gram model, so a sentence of k words gives k + 1 windows (its words and
    ``</s>``), never crossing into the next sentence. Words outside ``vocab`` become ``<unk>``.
    """
    if isinstance(sentences, str):
        raise ValueError("make_windows expects a list of sentences (token lists), not one string; wrap it: [text.split()]")
    if isinstance(context_size, bool) or not isinstance(context_size, (int, np.integer)) or context_size < 1:
        raise ValueError(f"context_size (n - 1) must be an integer >= 1, got {context_size!r}")
    n = int(context_size) + 1
    padded = [pad_sentence(s, n) for s in sentences if len(s) > 0]
    if not padded:
        return Windows(np.zeros((0, n - 1), np.int64), np.zeros(0, np.int64))
    ids = vocab.encode(list(chain.from_iterable(padded)))
    lengths = np.array([len(p) for p in padded])
    sentence_of = np.repeat(np.arange(len(padded)), lengths)
    windows = np.lib.stride_tricks.sliding_window_view(ids, n)
    inside = sentence_of[: len(windows)] == sentence_of[n - 1 :]  # the window starts and ends in one sentence
    windows = windows[inside]
    return Windows(np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, -1]))


# ------------------------------------------------------------------------- model
class FeedForwardLM(nn.Module):
    """Bengio et al.'s (2003) model: shared embeddings, concatenated, a tanh layer, a softmax over the vocabulary.

    Args:
        vocab_size: |V|, the number of rows of C and of outputs.
        context_size: n - 1, the number of previous tokens the model sees.
        embedding_dim: m, the length of each word's vector (Bengio et al. tried 30 to 100).
        hidden_dim: the number of tanh units (they tried up to 100).
        direct_connections: add the paper's W x term, a linear path from the embeddings to the output.
        dropout: dropout on the hidden layer while training (not in the paper; it helps on a small corpus).
        seed: seeds the initial weights, without touching PyTorch's global random state.
    """

    def __init__(
        self,
        vocab_size: int,
        context_size: int,
        embedding_dim: int = 64,
        hidden_dim: int = 128,
        direct_connections: bool = False,
        dropout: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, size in (("vocab_size", vocab_size), ("context_size", context_size),
                           ("embedding_dim", embedding_dim), ("hidden_dim", hidden_dim)):  # fmt: skip
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.vocab_size, self.context_size = int(vocab_size), int(context_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embedding = nn.Embedding(vocab_size, embedding_dim)  # C
            self.hidden = nn.Linear(context_size * embedding_dim, hidden_dim)  # H and d
            self.output = nn.Linear(hidden_dim, vocab_size)  # U and b
            self.direct = nn.Linear(context_size * embedding_dim, vocab_size, bias=False) if direct_connections else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, contexts: torch.Tensor) -> torch.Tensor:
        """Logits z of shape (batch, vocab_size) for contexts of shape (batch, context_size); softmax(z) = P(w_t | context)."""
        check_token_ids(contexts, self.vocab_size, f"(batch, {self.context_size})", width=self.context_size)
        x = self.embedding(contexts).flatten(1)  # (batch, context_size * m): the embeddings side by side
        h = torch.tanh(self.hidden(x))
        z = self.output(self.dropout(h))
        if self.direct is not None:
            z = z + self.direct(x)
        return z


def check_token_ids(ids: torch.Tensor, vocab_size: int, shape: str, width: int | None = None) -> None:
    """Token-id tensors must be integer, 2-D, of the right width, and inside the vocabulary."""
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"expected a tensor of token ids (torch.long) of shape {shape}, got {type(ids).__name__}"
                         f"{' of dtype ' + str(ids.dtype) if isinstance(ids, torch.Tensor) else ''}")  # fmt: skip
    if ids.ndim != 2 or (width is not None and ids.shape[1] != width):
        raise ValueError(f"expected token ids of shape {shape}, got shape {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(
            f"token ids must lie in 0 .. {vocab_size - 1} (the model's vocabulary), got ids from "
            f"{int(ids.min())} to {int(ids.max())}; encode text with the vocabulary the model was built for"
        )


# ------------------------------------------------------------------------- evaluation
@torch.no_grad()
def log_probabilities(model: FeedForwardLM, data: Windows, batch_size: int = 1024, device: str | None = None) -> np.ndarray:
    """ln P(target_i | context_i) for every window, in float64 (the model itself computes in float32)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()  # no dropout when scoring
    out = np.empty(len(data), dtype=np.float64)
    for start in range(0, len(data), batch_size):
        contexts = torch.as_tensor(data.contexts[start : start + batch_size], device=device)
        targets = torch.as_tensor(data.targets[start : start + batch_size], device=device)
        log_p = F.log_softmax(model(contexts).float(), dim=-1)
        out[start : start + len(targets)] = log_p.gather(1, targets[:, None])[:, 0].double().cpu().numpy()
    model.train(was_training)
    return out


def perplexity(model: FeedForwardLM, data: Windows, batch_size: int = 1024) -> float:
    """PP = exp(-(1/N) sum_i ln P(target_i | context_i)) over the N windows: the n-gram models' definition."""
    if len(data) == 0:
        raise ValueError("cannot compute perplexity on an empty set of windows")
    return perplexity_from_log_probs(log_probabilities(model, data, batch_size))


# ------------------------------------------------------------------------- training
@dataclass
class TrainingHistory:
    """One entry per epoch: mean training loss (nats per token), held-out perplexity, seconds since the start."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    held_out_perplexity: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return asdict(self)


def make_optimizer(model: nn.Module, optimizer: str, learning_rate: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``"adam"`` (the usual choice today) or ``"sgd"`` (what Bengio et al. used)."""
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")


def train(
    model: FeedForwardLM,
    train_data: Windows,
    held_out: Windows | None = None,
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    max_steps: int | None = None,
) -> TrainingHistory:
    """Minibatch training on shuffled windows; after each epoch, the held-out perplexity.

    Seeded: the shuffling and dropout draw from ``torch.manual_seed(seed)``, so the
    same call gives the same history on the same hardware. ``max_steps`` stops early
    (for tests and quick looks). Returns a :class:`TrainingHistory` to plot.
    """
    if train_data.context_size != model.context_size:
        raise ValueError(f"the windows have contexts of {train_data.context_size} tokens, the model expects "
                         f"{model.context_size}; build them with make_windows(..., context_size={model.context_size})")  # fmt: skip
    if len(train_data) == 0:
        raise ValueError("the training set has no windows")
    device = device or default_device()
    model.to(device)
    torch.manual_seed(seed)
    opt = make_optimizer(model, optimizer, learning_rate, weight_decay)
    contexts = torch.as_tensor(train_data.contexts, device=device)
    targets = torch.as_tensor(train_data.targets, device=device)
    history, start, step = TrainingHistory(), time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(targets), device=device)
        total, count = 0.0, 0
        batches = range(0, len(targets), batch_size)
        for i in tqdm(batches, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False):
            batch = order[i : i + batch_size]
            loss = F.cross_entropy(model(contexts[batch]), targets[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
            count += len(batch)
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        history.epoch.append(epoch)
        history.train_loss.append(total / count)
        history.held_out_perplexity.append(perplexity(model, held_out) if held_out is not None else float("nan"))
        history.seconds.append(time.perf_counter() - start)
        if max_steps is not None and step >= max_steps:
            break
    model.eval()
    return history
