"""Recurrent language models in PyTorch: Elman RNN, LSTM and GRU cells, trained with truncated BPTT.

The model reads one token at a time and predicts the next from its hidden state,

    e_t = E[w_t],   h_t = cell(e_t, h_{t-1}),   P(w_{t+1} | w_1 .. w_t) = softmax(U h_t + b),

where ``cell`` is the Elman update tanh(W e_t + U h_{t-1} + b_h) (``"rnn"``), an LSTM
(Hochreiter & Schmidhuber 1997) or a GRU (Cho et al. 2014). There is no fixed window:
the context is everything read so far, folded into h_t.

Training uses teacher forcing (the input at t + 1 is the true token, whatever the
model predicted) and truncated backpropagation through time: the training text is
cut into chunks of ``bptt`` tokens; the hidden state flows from one chunk to the
next, but gradients stop at chunk boundaries, so memory and time per step stay fixed.
Book chapter: *Neural language models: feed-forward and recurrent*, "RNN language models".

The text is one stream (:func:`token_stream`): a single ``<s>``, then every sentence
followed by its ``</s>``. The model scores every token of the stream after the
first, i.e. every word and every ``</s>`` once, exactly the N tokens an n-gram model
scores on the same sentences (its padding adds only context, never predicted
tokens), over the same vocabulary. So the perplexities are comparable; the RNN's
one advantage is real, not an artefact: its context may reach back across sentence ends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import chain

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from llmcourse.ffnlm import TrainingHistory, check_token_ids, make_optimizer
from llmcourse.hardware import default_device
from llmcourse.information import perplexity_from_log_probs
from llmcourse.sampling import sample_with_temperature
from llmcourse.vocab import BOS, EOS, Vocabulary

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # h, or (h, c) for an LSTM


def token_stream(sentences: Sequence[Sequence[str]], vocab: Vocabulary) -> np.ndarray:
    """``<s> w_1 .. w_k </s> w'_1 .. </s> ...`` as ids: one start symbol, then each sentence and its end symbol."""
    if isinstance(sentences, str):
        raise ValueError("token_stream expects a list of sentences (token lists), not one string; wrap it: [text.split()]")
    tokens = [BOS] + list(chain.from_iterable(list(s) + [EOS] for s in sentences if len(s) > 0))
    return vocab.encode(tokens)


class RNNLanguageModel(nn.Module):
    """Embedding -> recurrent layers -> linear layer to logits over the vocabulary.

    Args:
        vocab_size: |V|.
        embedding_dim: length of each token's vector.
        hidden_dim: length of the hidden state h_t.
        cell: ``"rnn"`` (Elman, tanh), ``"lstm"`` or ``"gru"``.
        num_layers: recurrent layers stacked, each reading the hidden states of the one below.
        dropout: dropout on the embeddings, between layers and before the output (Zaremba et al. 2014).
        seed: seeds the initial weights without touching PyTorch's global random state.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 128,
        hidden_dim: int = 256,
        cell: str = "lstm",
        num_layers: int = 1,
        dropout: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(map(repr, CELLS))}, got {cell!r}")
        for name, size in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                           ("hidden_dim", hidden_dim), ("num_layers", num_layers)):  # fmt: skip
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.vocab_size, self.cell = int(vocab_size), cell
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embedding = nn.Embedding(vocab_size, embedding_dim)
            self.recurrent = CELLS[cell](embedding_dim, hidden_dim, num_layers, batch_first=True,
                                         dropout=dropout if num_layers > 1 else 0.0)  # fmt: skip
            self.output = nn.Linear(hidden_dim, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits (batch, time, vocab_size) for ids (batch, time), and the hidden state after the last step.

        ``state=None`` starts from h_0 = 0; pass the returned state to continue the same text.
        """
        check_token_ids(ids, self.vocab_size, "(batch, time)")
        hidden, state = self.recurrent(self.dropout(self.embedding(ids)), state)
        return self.output(self.dropout(hidden)), state

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Sequence[int],
        num_tokens: int,
        temperature: float = 1.0,
        seed: int | None = 0,
        stop_id: int | None = None,
    ) -> list[int]:
        """Sample ``num_tokens`` ids after the prompt, each from softmax(z)^(1/T) renormalised.

        Uses :func:`llmcourse.sampling.sample_with_temperature`: T = 0 is greedy (the
        argmax, no randomness), T = 1 the model's own distribution. Seeded: the same
        seed gives the same tokens. Stops early after generating ``stop_id`` (e.g. ``</s>``),
        which is included in the result. To generate a fresh line, start from
        ``[vocab.index["</s>"]]``: in a :func:`token_stream` every line but the first
        follows ``</s>``, while ``<s>`` occurs only once.
        """
        prompt = list(prompt_ids)
        if not prompt:
            raise ValueError("prompt_ids must hold at least one token id; start with the id of </s> to generate a fresh line")
        if num_tokens < 0:
            raise ValueError(f"num_tokens must be >= 0, got {num_tokens}")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        rng = np.random.default_rng(seed)
        logits, state = self(torch.tensor([prompt], device=device))
        out: list[int] = []
        for _ in range(num_tokens):
            probs = torch.softmax(logits[0, -1].double(), dim=-1).cpu().numpy()
            token = sample_with_temperature(probs, temperature, rng)
            out.append(token)
            if token == stop_id:
                break
            logits, state = self(torch.tensor([[token]], device=device), state)
        self.train(was_training)
        return out


def _detach(state: State) -> State:
    """Keep the values of the hidden state but cut its history, so backprop stops at the chunk boundary."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


@torch.no_grad()
def log_probabilities(model: RNNLanguageModel, stream: np.ndarray, chunk_length: int = 512) -> np.ndarray:
    """ln P(stream[i + 1] | stream[0 .. i]) for i = 0 .. len(stream) - 2, in float64.

    The stream is read as one sequence from h_0 = 0, in chunks whose hidden state is
    carried over, so every prediction sees the whole text before it.
    """
    stream = np.asarray(stream, dtype=np.int64)
    if stream.ndim != 1 or len(stream) < 2:
        raise ValueError(f"the stream must be a 1-D array of at least 2 token ids, got shape {stream.shape}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ids = torch.as_tensor(stream, device=device)
    out = np.empty(len(stream) - 1, dtype=np.float64)
    state = None
    for start in range(0, len(stream) - 1, chunk_length):
        inputs = ids[start : start + chunk_length]
        targets = ids[start + 1 : start + 1 + chunk_length]
        inputs = inputs[: len(targets)]
        logits, state = model(inputs[None], state)
        log_p = F.log_softmax(logits[0].float(), dim=-1).gather(1, targets[:, None])[:, 0]
        out[start : start + len(targets)] = log_p.double().cpu().numpy()
    model.train(was_training)
    return out


def perplexity(model: RNNLanguageModel, stream: np.ndarray, chunk_length: int = 512) -> float:
    """PP = exp(-(1/N) sum_i ln P(w_i | w_<i)) over the N = len(stream) - 1 predicted tokens."""
    return perplexity_from_log_probs(log_probabilities(model, stream, chunk_length))


def batchify(stream: np.ndarray, batch_size: int) -> torch.Tensor:
    """Cut the stream into ``batch_size`` equal contiguous rows (shape (batch_size, L)), dropping the remainder.

    Row j holds the j-th slice of the text, so consecutive chunks of a row continue
    the same text and its hidden state can be carried from one chunk to the next.
    """
    stream = np.asarray(stream, dtype=np.int64)
    length = len(stream) // batch_size
    if length < 2:
        raise ValueError(f"a stream of {len(stream)} tokens is too short for {batch_size} rows of at least 2 tokens")
    return torch.as_tensor(stream[: batch_size * length].reshape(batch_size, length))


def train(
    model: RNNLanguageModel,
    train_stream: np.ndarray,
    held_out_stream: np.ndarray | None = None,
    epochs: int = 3,
    batch_size: int = 32,
    bptt: int = 35,
    learning_rate: float = 2e-3,
    optimizer: str = "adam",
    clip_norm: float | None = 1.0,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    max_steps: int | None = None,
) -> TrainingHistory:
    """Teacher-forced training with truncated BPTT over chunks of ``bptt`` tokens.

    Each step reads a (batch_size, bptt) chunk, predicts each next token, and
    backpropagates the mean cross-entropy within the chunk only. ``clip_norm`` rescales
    the gradient when its global norm exceeds it (``None``: no clipping), the usual
    guard against exploding gradients. Seeded like :func:`llmcourse.ffnlm.train`.
    """
    if bptt < 1:
        raise ValueError(f"bptt (the chunk length) must be at least 1, got {bptt}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be positive or None, got {clip_norm}")
    device = device or default_device()
    model.to(device)
    torch.manual_seed(seed)
    opt = make_optimizer(model, optimizer, learning_rate)
    rows = batchify(train_stream, batch_size).to(device)
    history, start, step = TrainingHistory(), time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        model.train()
        state, total, count = None, 0.0, 0
        chunks = range(0, rows.shape[1] - 1, bptt)
        for i in tqdm(chunks, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False):
            inputs = rows[:, i : i + bptt]
            targets = rows[:, i + 1 : i + 1 + bptt]
            inputs = inputs[:, : targets.shape[1]]
            logits, state = model(inputs, state)
            loss = F.cross_entropy(logits.reshape(-1, model.vocab_size), targets.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            opt.step()
            state = _detach(state)
            total += loss.item() * targets.numel()
            count += targets.numel()
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        history.epoch.append(epoch)
        history.train_loss.append(total / count)
        history.held_out_perplexity.append(
            perplexity(model, held_out_stream) if held_out_stream is not None else float("nan")
        )
        history.seconds.append(time.perf_counter() - start)
        if max_steps is not None and step >= max_steps:
            break
    model.eval()
    return history
