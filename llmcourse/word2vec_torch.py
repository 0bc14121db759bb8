"""A fast skip-gram-with-negative-sampling trainer in PyTorch (CPU or GPU).

Same objective, subsampling, reduced window, noise distribution and linear
learning-rate decay as :mod:`llmcourse.word2vec` (and the word2vec C code), but
minibatched, with the gradients of the SGNS loss applied by hand: no autograd
graph, no optimizer, just gathers, two batched matrix products and two
``index_add_`` scatters per step. Three choices make it both fast and faithful:

1. **A batch is a set of centre positions, each with its whole window.** For
   one centre ``w`` the (up to ``2 * window``) context vectors meet the same
   ``1 + k`` output rows (``w`` itself and ``k`` noise words shared across the
   window), so the scores are one small matrix product per centre instead of
   ``2 * window`` separate dot-product sets. As in the word2vec code, the
   context word's *input* vector predicts the centre word's *output* vector.
2. **Centre positions are shuffled each epoch.** Plain minibatch SGD sums the
   updates of a row that occurs several times in a batch, all computed from
   the same stale value. In corpus order, neighbouring centres share most of
   their context words, so every batch repeats rows and the summed steps
   overshoot: quality collapses as the batch grows (analogy accuracy on
   ``text8_prefix`` falls from 1.5 % to 0.02 % after one epoch when the batch
   goes from 1,024 to 2,048 centres). Shuffling spreads a passage's words over
   many batches; repeats are then only as common as the word itself.
3. **Moderate batches** (1,024 centres by default, about 6,000 pairs): large
   enough to amortise Python's per-step cost, small enough that frequent words
   do not pile up. On a GPU, larger batches pay off; the quality test in the
   benchmark is what tells you how far you can go.

Book section: *Word2vec*, "Training on a real corpus".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from llmcourse.embeddings import Embeddings
from llmcourse.hardware import default_device
from llmcourse.vocab import Vocabulary
from llmcourse.word2vec import build_vocabulary, encode_corpus, keep_probabilities, noise_distribution

# Build each epoch's windows this many centres at a time: bounds memory on big corpora
# (the (centres x 2*window) id table of 10^7 words would be 800 MB at once).
_CHUNK = 1 << 20


@dataclass
class Word2VecConfig:
    """Hyper-parameters; defaults are word2vec's (and gensim's) for skip-gram with negative sampling."""

    dim: int = 100  # vector size
    window: int = 5  # maximum distance of a context word; each centre draws its own from 1..window
    negative: int = 5  # noise words per (centre, window)
    epochs: int = 5
    learning_rate: float = 0.025  # falls linearly to min_learning_rate over training
    min_learning_rate: float = 1e-4
    min_count: int = 5  # rarer words are removed from the text
    sample: float = 1e-3  # subsampling threshold t; 0 keeps every word
    batch_size: int = 1024  # centre positions per step (see the module docstring)
    shuffle: bool = True  # visit centres in random order; False shows the repeated-row trap
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "window", "epochs", "batch_size", "min_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.negative < 0:
            raise ValueError(f"negative must be >= 0, got {self.negative}")
        if not 0 < self.min_learning_rate <= self.learning_rate:
            raise ValueError(
                f"need 0 < min_learning_rate <= learning_rate, got {self.min_learning_rate} and {self.learning_rate}"
            )
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0, got {self.sample}")


@dataclass
class Word2VecHistory:
    """Per-epoch mean loss, words trained per second, and the total training time."""

    loss: list[float] = field(default_factory=list)
    words_per_second: list[float] = field(default_factory=list)
    seconds: float = 0.0
    words: int = 0  # in-vocabulary corpus words per epoch (before subsampling)


@dataclass
class Word2VecModel:
    """The trained input (``v``) and output (``u``) vectors with their vocabulary and counts."""

    vocabulary: Vocabulary
    counts: np.ndarray
    input_vectors: np.ndarray
    output_vectors: np.ndarray
    config: Word2VecConfig
    history: Word2VecHistory

    @property
    def embeddings(self) -> Embeddings:
        """The input vectors, the ones word2vec publishes as "the" word vectors."""
        return Embeddings(self.vocabulary.tokens, self.input_vectors)


def train_word2vec(
    tokens: Sequence[str],
    config: Word2VecConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    **overrides: object,
) -> Word2VecModel:
    """Train skip-gram with negative sampling on a token stream; see the module docstring.

    Args:
        tokens: the corpus as one list of words (e.g. ``data.text8_prefix()``).
        config: hyper-parameters; keyword ``overrides`` replace single fields
            (``train_word2vec(tokens, epochs=1)``).
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA if available.
        progress: show a tqdm bar per epoch.
    """
    config = config or Word2VecConfig()
    if overrides:
        unknown = set(overrides) - set(Word2VecConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(Word2VecConfig.__dataclass_fields__)}")
        config = Word2VecConfig(**{**config.__dict__, **overrides})
    device = torch.device(device if device is not None else default_device())
    vocabulary, counts = build_vocabulary(tokens, config.min_count)
    ids = encode_corpus(tokens, vocabulary)
    if len(ids) < 2:
        raise ValueError("the corpus has fewer than 2 in-vocabulary words; there is nothing to train on")

    rng = np.random.default_rng(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    size, dim = len(vocabulary), config.dim
    # word2vec's initialisation: uniform(-0.5, 0.5) / dim input vectors, zero output vectors.
    init = (rng.random((size, dim), dtype=np.float32) - 0.5) / dim
    input_vectors = torch.from_numpy(init).to(device)
    output_vectors = torch.zeros(size, dim, device=device)
    noise_cdf = torch.from_numpy(np.cumsum(noise_distribution(counts))).to(device)
    keep = keep_probabilities(counts, config.sample)
    offsets = np.array([o for o in range(-config.window, config.window + 1) if o != 0])
    # Target row 0 of each window is the centre word (label 1); the k noise words follow (label 0).
    labels = torch.zeros(1 + config.negative, device=device)
    labels[0] = 1.0

    history = Word2VecHistory(words=len(ids))
    expected_steps = config.epochs * int(np.ceil(keep[ids].sum() / config.batch_size))
    step = 0
    start = time.perf_counter()
    for epoch in range(config.epochs):
        epoch_start = time.perf_counter()
        kept = ids[rng.random(len(ids)) < keep[ids]]  # subsampling, fresh each epoch
        reach = rng.integers(1, config.window + 1, size=len(kept))  # the reduced window per centre
        order = rng.permutation(len(kept)) if config.shuffle else np.arange(len(kept))
        kept_on_device = torch.from_numpy(kept).to(device)
        # Accumulated on the device: reading a GPU number every step would stall the pipeline.
        loss_sum = torch.zeros((), device=device)
        loss_count = torch.zeros((), device=device)
        bar = tqdm(total=len(kept), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, unit="word")
        for chunk_start in range(0, len(kept), _CHUNK):
            centres = order[chunk_start : chunk_start + _CHUNK]
            positions = centres[:, None] + offsets[None, :]
            valid = (np.abs(offsets)[None, :] <= reach[centres, None]) & (positions >= 0) & (positions < len(kept))
            context_ids = torch.from_numpy(kept[np.clip(positions, 0, len(kept) - 1)]).to(device)
            mask = torch.from_numpy(valid).to(device=device, dtype=torch.float32)
            centre_ids = kept_on_device[torch.from_numpy(centres).to(device)]
            for b in range(0, len(centres), config.batch_size):
                fraction = min(step / max(expected_steps, 1), 1.0)
                lr = config.learning_rate - (config.learning_rate - config.min_learning_rate) * fraction
                loss = _sgns_step(
                    input_vectors,
                    output_vectors,
                    centre_ids[b : b + config.batch_size],
                    context_ids[b : b + config.batch_size],
                    mask[b : b + config.batch_size],
                    noise_cdf,
                    labels,
                    config.negative,
                    lr,
                    generator,
                )
                loss_sum += loss[0]
                loss_count += loss[1]
                step += 1
            bar.update(len(centres))
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - epoch_start
        history.loss.append(loss_sum.item() / max(loss_count.item(), 1.0))
        if not np.isfinite(history.loss[-1]):
            raise FloatingPointError(
                f"training diverged in epoch {epoch + 1} (the loss is {history.loss[-1]}): a batch repeats some "
                f"words so often that their summed steps overshoot. Lower batch_size (now {config.batch_size}) "
                f"or learning_rate (now {config.learning_rate}); small vocabularies need small batches."
            )
        history.words_per_second.append(len(ids) / elapsed)
    history.seconds = time.perf_counter() - start
    return Word2VecModel(
        vocabulary, counts, input_vectors.cpu().numpy(), output_vectors.cpu().numpy(), config, history
    )


def _sgns_step(
    input_vectors: torch.Tensor,
    output_vectors: torch.Tensor,
    centre_ids: torch.Tensor,
    context_ids: torch.Tensor,
    mask: torch.Tensor,
    noise_cdf: torch.Tensor,
    labels: torch.Tensor,
    negative: int,
    lr: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a batch of windows; returns (sum of pair losses, number of pairs) as tensors.

    Shapes: B centres, W = 2 * window context slots (``mask`` marks the real
    ones), T = 1 + negative targets, d dimensions.
    """
    batch, dim = len(centre_ids), input_vectors.shape[1]
    uniform = torch.rand(batch, negative, generator=generator, device=noise_cdf.device, dtype=noise_cdf.dtype)
    noise_ids = torch.searchsorted(noise_cdf, uniform, right=True).clamp_(max=len(noise_cdf) - 1)
    targets = torch.cat([centre_ids[:, None], noise_ids], dim=1)  # (B, T)
    contexts = input_vectors[context_ids]  # (B, W, d): v of each context word
    outputs = output_vectors[targets]  # (B, T, d): u of the centre and the noise words
    scores = torch.bmm(contexts, outputs.transpose(1, 2))  # (B, W, T): v . u
    probabilities = torch.sigmoid(scores)
    # labels - sigma(score) is minus the derivative of the loss with respect to the score;
    # masked slots (outside the reduced window) contribute nothing.
    step = (labels - probabilities) * (lr * mask).unsqueeze(2)  # (B, W, T)
    input_step = torch.bmm(step, outputs)  # (B, W, d) = -lr dL/dv
    output_step = torch.bmm(step.transpose(1, 2), contexts)  # (B, T, d) = -lr dL/du
    input_vectors.index_add_(0, context_ids.reshape(-1), input_step.reshape(-1, dim))
    output_vectors.index_add_(0, targets.reshape(-1), output_step.reshape(-1, dim))
    # The loss is only monitored: -log sigma(s) for the centre, -log sigma(-s) for noise.
    pair_losses = -torch.nn.functional.logsigmoid((2 * labels - 1) * scores).sum(dim=2)
    return (pair_losses * mask).sum(), mask.sum()
