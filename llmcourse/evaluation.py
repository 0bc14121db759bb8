"""Evaluating a pretrained language model: perplexity with teacher forcing, per-unit normalisation,
and the n-gram overlap check for test-set contamination.

**Perplexity.** Given held-out token ids x_0 .. x_{N-1}, a next-token model scores every
token after the first from the true tokens before it (teacher forcing: the model's own
guesses are never fed back):

    NLL = - sum_{t=1}^{N-1} ln P(x_t | x_{max(0, t-c)} .. x_{t-1})        (nats)
    mean NLL = NLL / (N - 1),   perplexity = exp(mean NLL),   bits per token = mean NLL / ln 2,

where c is the context the model can see. A GPT sees at most ``block_size`` tokens, so a
long text is cut into windows of c tokens that start every ``stride`` tokens
(:func:`token_log_probs`). With ``stride = c`` the windows do not overlap: each is one
forward pass, but a token early in a window sees little context (the average is c / 2).
With ``stride < c`` consecutive windows overlap by c - stride tokens and each window
scores only its last ``stride`` tokens, so every token after the first window has at
least c - stride + 1 tokens of context; ``stride = 1`` gives every token the full c, at c
times the cost. This is the strided sliding window of Hugging Face's perplexity guide;
every token is scored exactly once in all cases.

**Comparing tokenizers.** The NLL of a text is a property of the text, whatever the
model's tokens: a character model and a word model that both give probability P to the
same string have the same NLL = -ln P. Their perplexities differ because each divides by
its own number of tokens. Dividing the same total NLL by a shared count of units (words,
characters or UTF-8 bytes of the text) gives numbers that compare across tokenizers:

    per-unit perplexity = exp(NLL / n_units),   bits per unit = NLL / (n_units ln 2).

**Contamination.** GPT-3's authors flagged a benchmark example as possibly seen in training
when it shared an n-gram of (usually) 13 words with the training data (Brown et al. 2020);
:func:`ngram_overlap` is that check on lower-cased words, ignoring punctuation.

PyTorch is imported only by the functions that run a model. Book chapter: *Pretraining
and evaluation*.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits; punctuation, spaces and case are ignored


# --- perplexity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Perplexity:
    """What :func:`evaluate_perplexity` measured on ``tokens`` predicted tokens."""

    total_nll: float  # nats: -ln P(text) under the model, summed over the scored tokens
    tokens: int  # how many tokens were scored

    @property
    def mean_nll(self) -> float:
        """Cross-entropy in nats per token."""
        return self.total_nll / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll)

    @property
    def bits_per_token(self) -> float:
        return self.mean_nll / math.log(2)

    def per(self, n_units: int) -> float:
        """Perplexity per unit of another count (words, characters, bytes) of the same text."""
        return per_unit_perplexity(self.total_nll, n_units)

    def bits_per(self, n_units: int) -> float:
        """Bits per unit of another count of the same text (bits per character, per byte, ...)."""
        return bits_per_unit(self.total_nll, n_units)


def _check_total(total_nll_nats: float, n_units: int) -> None:
    if isinstance(total_nll_nats, bool) or not isinstance(total_nll_nats, (int, float, np.integer, np.floating)) \
            or math.isnan(total_nll_nats) or total_nll_nats < 0:
        raise ValueError(f"total_nll_nats must be a number >= 0 (minus the natural log of the text's probability), "
                         f"got {total_nll_nats!r}")
    if isinstance(n_units, bool) or not isinstance(n_units, (int, np.integer)) or n_units < 1:
        raise ValueError(f"n_units must be a positive integer (the number of words, characters or bytes), got {n_units!r}")


def per_unit_perplexity(total_nll_nats: float, n_units: int) -> float:
    """exp(total NLL / n_units): the perplexity per word, per character or per byte of the text.

    ``total_nll_nats`` is -ln P(text) (the sum of the per-token NLLs in nats, whatever the
    tokenizer); ``n_units`` counts the units of the *same* text. Infinite if the NLL is.
    """
    _check_total(total_nll_nats, n_units)
    return math.exp(total_nll_nats / n_units) if total_nll_nats / n_units < 709 else math.inf


def bits_per_unit(total_nll_nats: float, n_units: int) -> float:
    """total NLL / (n_units ln 2): bits per character (BPC), per byte (BPB) or per word of the text."""
    _check_total(total_nll_nats, n_units)
    return total_nll_nats / (n_units * math.log(2))


def _as_ids(ids: object) -> np.ndarray:
    import torch

    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    array = np.asarray(ids)
    if array.ndim != 1 or array.size < 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D sequence of at least 2 integer token ids (the first one is context "
                         f"only), got shape {array.shape} of {array.dtype}")
    if array.min() < 0:
        raise ValueError("token ids must be >= 0")
    return array.astype(np.int64)


def windows(n_tokens: int, context_length: int, stride: int) -> list[tuple[int, int, int]]:
    """The evaluation windows for a sequence of ``n_tokens`` ids: (begin, end, first_scored).

    The window feeds ids[begin:end] and predicts ids[begin + 1 : end + 1]; of those it scores
    the targets at positions first_scored .. end. Every position 1 .. n_tokens - 1 is scored
    exactly once, and a target at position t sees ids[begin:t] as context.
    """
    if n_tokens < 2:
        raise ValueError(f"need at least 2 tokens (one of context, one to predict), got {n_tokens}")
    for name, value in (("context_length", context_length), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if stride > context_length:
        raise ValueError(f"stride ({stride}) must be at most context_length ({context_length}), or some tokens "
                         "would never be scored")
    result, scored_until, begin = [], 0, 0  # positions <= scored_until are done (position 0 is never a target)
    while scored_until < n_tokens - 1:
        end = min(begin + context_length, n_tokens - 1)
        result.append((begin, end, scored_until + 1))
        scored_until = end
        begin += stride
    return result


def token_log_probs(
    model: Callable[[torch.Tensor], object],
    ids: Sequence[int] | np.ndarray | torch.Tensor,
    context_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 16,
) -> np.ndarray:
    """ln P(x_t | context) for t = 1 .. N - 1, by teacher forcing in (possibly overlapping) windows.

    Args:
        model: maps ids (B, T) to logits (B, T, V), or to a tuple whose first item is the
            logits (as :class:`llmcourse.gpt.GPT` returns (logits, loss)). Position i's logits
            predict token i + 1.
        ids: the held-out token ids x_0 .. x_{N-1}; x_0 is context only.
        context_length: the window length c (default: ``model.config.block_size``).
        stride: how far each window starts after the previous one (default c: no overlap).
        batch_size: windows per forward pass.

    Returns:
        float64 array of N - 1 natural-log probabilities, in text order. Runs in eval mode
        under ``torch.no_grad``, on the device of the model's parameters.
    """
    import torch

    ids = _as_ids(ids)
    if context_length is None:
        config = getattr(model, "config", None)
        if config is None or not hasattr(config, "block_size"):
            raise ValueError("context_length is needed for a model without config.block_size")
        context_length = int(config.block_size)
    stride = context_length if stride is None else stride
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    spans = windows(len(ids), context_length, stride)
    parameters = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    device = parameters[0].device if parameters else torch.device("cpu")
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    out = np.empty(len(ids) - 1, dtype=np.float64)
    tokens = torch.from_numpy(ids)
    try:
        with torch.no_grad():
            # Windows of equal length go through the model together; only the last one or two can be shorter.
            by_length: dict[int, list[tuple[int, int, int]]] = {}
            for span in spans:
                by_length.setdefault(span[1] - span[0], []).append(span)
            for length, group in by_length.items():
                for start in range(0, len(group), batch_size):
                    batch = group[start : start + batch_size]
                    x = torch.stack([tokens[b:e] for b, e, _ in batch]).to(device)
                    y = torch.stack([tokens[b + 1 : e + 1] for b, e, _ in batch]).to(device)
                    logits = model(x)
                    logits = logits[0] if isinstance(logits, tuple) else logits
                    if logits.shape[:2] != x.shape:
                        raise ValueError(f"the model returned logits of shape {tuple(logits.shape)} for ids of shape "
                                         f"{tuple(x.shape)}; expected (batch, length, vocabulary)")
                    log_probs = torch.log_softmax(logits.double(), dim=-1).gather(-1, y[..., None])[..., 0].cpu()
                    for row, (b, e, first) in enumerate(batch):
                        # Target position t sits at column t - b - 1 of the window.
                        out[first - 1 : e] = log_probs[row, first - b - 1 : e - b].numpy()
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return out


def evaluate_perplexity(
    model: Callable[[torch.Tensor], object],
    ids: Sequence[int] | np.ndarray | torch.Tensor,
    context_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 16,
) -> Perplexity:
    """Total NLL and count of the N - 1 scored tokens (see :func:`token_log_probs`); ``.perplexity``,
    ``.bits_per_token``, ``.per(n_words)`` and ``.bits_per(n_chars)`` derive the rest."""
    log_probs = token_log_probs(model, ids, context_length, stride, batch_size)
    return Perplexity(total_nll=float(-log_probs.sum()), tokens=int(log_probs.size))


# --- contamination ----------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits: ``"O Romeo, Romeo!"`` -> ``['o', 'romeo', 'romeo']``."""
    if not isinstance(text, str):
        raise ValueError(f"expected a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive words of ``text`` (see :func:`words`), as a set of tuples."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (GPT-3 used 13), got {n!r}")
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def _documents(test: str | Sequence[str]) -> list[str]:
    if isinstance(test, str):
        # Blank lines separate documents (in Tiny Shakespeare: one speech each).
        docs = [d for d in re.split(r"\n\s*\n", test) if d.strip()]
    elif isinstance(test, Sequence) and all(isinstance(d, str) for d in test):
        docs = list(test)
    else:
        raise ValueError("test_text must be a str (documents separated by blank lines) or a list of str documents")
    if not docs:
        raise ValueError("test_text holds no documents")
    return docs


def contaminated_documents(train_text: str, test_text: str | Sequence[str], n: int = 13) -> list[int]:
    """Indices of the test documents that share at least one word n-gram with ``train_text``."""
    train = word_ngrams(train_text, n)
    return [i for i, doc in enumerate(_documents(test_text)) if not train.isdisjoint(word_ngrams(doc, n))]


def ngram_overlap(train_text: str, test_text: str | Sequence[str], n: int = 13) -> float:
    """The fraction of test documents that share a word n-gram with the training text (GPT-3's check, n = 13).

    ``test_text`` is a list of documents, or one string whose documents are separated by
    blank lines. Words are lower-cased runs of letters and digits, so case, punctuation and
    line breaks do not hide a match. A document shorter than n words has no n-gram and so
    counts as clean (GPT-3 used a shorter n for benchmarks with short examples).
    """
    docs = _documents(test_text)
    return len(contaminated_documents(train_text, docs, n)) / len(docs)
