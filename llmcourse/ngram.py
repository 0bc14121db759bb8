"""N-gram language models: counting, maximum likelihood, and three ways to smooth.

An n-gram model assumes each token depends only on the ``n - 1`` tokens before it,

    P(w_i | w_1 .. w_{i-1})  ~=  P(w_i | w_{i-n+1} .. w_{i-1}),

and estimates that conditional from counts. The maximum-likelihood estimate is

    P_MLE(w | h) = C(h w) / sum_v C(h v),

e.g. P("in" | "homework") = C("homework in") / C("homework"). Book chapter:
*N-gram models, smoothing and perplexity*.

The module has two layers:

* small, readable functions on ``collections.Counter`` (:func:`count_ngrams`,
  :func:`mle_probability`, :func:`add_k_probability`): what Assignment 1 asks
  students to write;
* :class:`NgramModel` and its smoothing subclasses (:class:`MLE`, :class:`AddK`,
  :class:`Interpolated`, :class:`KneserNey`): the same estimates computed with
  vectorised numpy over a whole corpus, fast enough for the benchmark. The tests
  check the two layers give the same numbers, and check both against NLTK.

Every sentence is padded with ``n - 1`` copies of ``<s>`` before it, so the first
word has a full context, and one ``</s>`` after it, so the model learns where
sentences end (see :func:`pad_sentence`; ``nltk_padding=True`` reproduces NLTK).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from llmcourse.information import perplexity_from_log_probs
from llmcourse.sampling import sample_with_temperature
from llmcourse.vocab import BOS, EOS, Vocabulary

Sentence = Sequence[str]


def _check_order(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the n-gram order must be an integer >= 1 (1 = unigram, 2 = bigram, ...), got {n!r}")
    return int(n)


def pad_sentence(tokens: Sentence, n: int, nltk_padding: bool = False) -> list[str]:
    """Add ``n - 1`` start symbols and one end symbol: ``["a"], 3 -> [<s>, <s>, a, </s>]``.

    The ``n - 1`` starts give the first word a full context; the single ``</s>`` lets
    the model learn where sentences end, so that it is a distribution over whole
    sentences (Jurafsky & Martin's convention). ``nltk_padding=True`` adds ``n - 1``
    end symbols instead, as NLTK's ``pad_both_ends`` does; the extra ``</s> </s>``
    predictions are nearly free, which flatters perplexity more the higher the order.
    """
    n = _check_order(n)
    return [BOS] * (n - 1) + list(tokens) + [EOS] * (n - 1 if nltk_padding else 1)


def count_ngrams(sentences: Sequence[Sentence], n: int, nltk_padding: bool = False) -> Counter[tuple[str, ...]]:
    """Count every n-gram of every padded sentence (n-grams never cross sentences).

    ``count_ngrams([["a", "b"]], 2)`` counts ``(<s>, a)``, ``(a, b)`` and ``(b, </s>)`` once each.
    """
    n = _check_order(n)
    counts: Counter[tuple[str, ...]] = Counter()
    for sentence in sentences:
        padded = pad_sentence(sentence, n, nltk_padding)
        counts.update(tuple(padded[i : i + n]) for i in range(len(padded) - n + 1))
    return counts


def _context_total(counts: Counter[tuple[str, ...]], context: tuple[str, ...]) -> int:
    """sum_v C(context v): how often ``context`` is followed by anything."""
    k = len(context)
    return sum(c for gram, c in counts.items() if gram[:k] == context and len(gram) == k + 1)


def mle_probability(counts: Counter[tuple[str, ...]], context: Sequence[str], word: str) -> float:
    """P_MLE(word | context) = C(context word) / sum_v C(context v), from n-gram counts.

    Raises ``ValueError`` if the context never occurs: the MLE is 0/0 there.
    """
    context = tuple(context)
    total = _context_total(counts, context)
    if total == 0:
        raise ValueError(
            f"the context {context!r} never occurs in the training counts, so the maximum-likelihood "
            "estimate is 0/0; use a smoothed estimate (add_k_probability) or a shorter context"
        )
    return counts[context + (word,)] / total


def add_k_probability(
    counts: Counter[tuple[str, ...]], vocab_size: int, context: Sequence[str], word: str, k: float = 1.0
) -> float:
    """P_add-k(word | context) = (C(context word) + k) / (sum_v C(context v) + k |V|); k = 1 is Laplace."""
    if k <= 0:
        raise ValueError(f"k must be positive (k = 1 is Laplace smoothing), got {k}")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
    context = tuple(context)
    return (counts[context + (word,)] + k) / (_context_total(counts, context) + k * vocab_size)


@dataclass
class _Table:
    """All distinct k-grams of one order, as sorted integer keys ``context_id * V + token``.

    ``context_id`` is the row of the k-gram's first ``k - 1`` tokens in the table of
    order ``k - 1`` (0 for unigrams, whose context is empty). Giving every context a
    dense id keeps the keys below ``N * V`` for any order, so they fit in int64.
    """

    keys: np.ndarray  # sorted, distinct
    counts: np.ndarray  # occurrences of each k-gram
    vocab_size: int

    @property
    def contexts(self) -> np.ndarray:
        return self.keys // self.vocab_size

    def find(self, context_ids: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Row of each (context, token) pair, or -1 where the k-gram was never seen."""
        keys = context_ids * self.vocab_size + tokens
        rows = np.searchsorted(self.keys, keys)
        rows_clipped = np.minimum(rows, len(self.keys) - 1)
        found = (context_ids >= 0) & (self.keys[rows_clipped] == keys)
        return np.where(found, rows_clipped, -1)

    def row_range(self, context_id: int) -> tuple[int, int]:
        """Rows whose context is ``context_id`` (contiguous, because keys are sorted)."""
        lo, hi = np.searchsorted(self.keys, [context_id * self.vocab_size, (context_id + 1) * self.vocab_size])
        return int(lo), int(hi)


def _encode_padded(
    vocab: Vocabulary, sentences: Sequence[Sentence], n_start: int, n_end: int, tokens: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of all sentences end to end, each with ``n_start`` ``<s>`` before and ``n_end`` ``</s>``
    after it, and the index of the sentence each position belongs to.

    Same result as encoding ``pad_sentence`` of every sentence, but the pads are
    written by numpy instead of building one padded list per sentence. ``tokens``
    may hold the sentences' ids already (fit computes them while counting).
    """
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    if tokens is None:
        tokens = vocab.encode(list(chain.from_iterable(sentences)))
    padded_lengths = lengths + n_start + n_end
    starts = np.cumsum(padded_lengths) - padded_lengths  # where each padded sentence begins
    ids = np.empty(int(padded_lengths.sum()), dtype=np.int64)
    for j in range(n_start):
        ids[starts + j] = vocab.index[BOS]
    for j in range(n_end):
        ids[starts + n_start + lengths + j] = vocab.index[EOS]
    offset_in_sentence = np.arange(len(tokens)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ids[np.repeat(starts + n_start, lengths) + offset_in_sentence] = tokens
    return ids, np.repeat(np.arange(len(sentences)), padded_lengths)


def _unique_counts(keys: np.ndarray, bound: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True, return_counts=True)``; with a small ``bound`` on the keys
    (unigrams: keys < |V|) a counting pass replaces the sort."""
    if bound is None:
        return np.unique(keys, return_inverse=True, return_counts=True)
    all_counts = np.bincount(keys, minlength=bound)
    present = all_counts > 0
    rank = np.cumsum(present) - 1  # row of each present key among the distinct keys
    return np.flatnonzero(present), rank[keys], all_counts[present]


def _gram_ids(tables: list[_Table], ids: np.ndarray, sentence_of: np.ndarray, k: int) -> np.ndarray:
    """For every start position, the row of the k-gram starting there in ``tables[k-1]``; -1 if unseen or if
    it would cross a sentence boundary. Result has ``len(ids) - k + 1`` entries."""
    rows = np.zeros(len(ids), dtype=np.int64)  # row of the empty context
    for j in range(1, k + 1):
        m = len(ids) - j + 1
        same_sentence = sentence_of[j - 1 : j - 1 + m] == sentence_of[:m]
        rows = tables[j - 1].find(np.where(same_sentence, rows[:m], -1), ids[j - 1 : j - 1 + m])
    return rows


class NgramModel:
    """A smoothed n-gram language model over a closed vocabulary.

    Subclasses say how to turn counts into probabilities (:meth:`_smooth`). Every
    model is a proper distribution: for any context, the probabilities of all
    ``len(vocab)`` tokens sum to one (``<s>`` included, as in NLTK, though it is
    never observed as a next token).

    Args:
        order: n, the length of the n-grams (context = n - 1 tokens).
        min_count: training tokens seen fewer times become ``<unk>``.
        unk: keep an ``<unk>`` token for unseen test tokens. Use ``False`` for a
            closed alphabet (characters): an unseen symbol is then an error.
        nltk_padding: pad with ``n - 1`` end symbols as NLTK does (see :func:`pad_sentence`),
            to reproduce ``nltk.lm`` numbers exactly.
    """

    backs_off = False  # whether lower orders contribute (interpolation, Kneser-Ney)

    def __init__(self, order: int, min_count: int = 1, unk: bool = True, nltk_padding: bool = False) -> None:
        self.order = _check_order(order)
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        self.min_count, self.unk, self.nltk_padding = min_count, unk, nltk_padding
        self.vocab: Vocabulary | None = None
        self.padded = True

    # ------------------------------------------------------------------ fitting
    def fit(self, sentences: Sequence[Sentence], pad: bool = True) -> NgramModel:
        """Count all k-grams, k = 1 .. n, of the training sentences.

        ``sentences`` is a list of token lists (words), or of strings (each string
        is then a sequence of characters). With ``pad=False`` the sequences are
        counted as they are, e.g. one long character stream.
        """
        if isinstance(sentences, str):
            raise ValueError("fit expects a list of sentences (token lists or strings), not one string; wrap it: [text]")
        sentences = [s for s in sentences if len(s) > 0]
        if not sentences:
            raise ValueError("the training corpus is empty: fit needs at least one non-empty sentence")
        n = self.order
        self.padded = pad
        # Count tokens and encode them in one pass: number the distinct tokens in order of first
        # appearance (dict.fromkeys runs in C), count with bincount, then renumber into the
        # frequency-sorted vocabulary. Twice as fast as a Counter followed by a second lookup pass.
        flat = list(chain.from_iterable(sentences))
        distinct = list(dict.fromkeys(flat))
        first_ids = np.fromiter(map({t: i for i, t in enumerate(distinct)}.__getitem__, flat), np.int64, len(flat))
        token_counts = Counter(dict(zip(distinct, np.bincount(first_ids, minlength=len(distinct)).tolist())))
        n_start, n_end = self._pads()
        for symbol, per_sentence in ((BOS, n_start), (EOS, n_end)):
            if per_sentence:  # the pads are tokens of the training text too
                token_counts[symbol] += per_sentence * len(sentences)
        self.vocab = Vocabulary.from_counts(token_counts, self.min_count, unk=self.unk)
        tokens = self.vocab.encode(distinct)[first_ids]
        ids, sentence_of = _encode_padded(self.vocab, sentences, n_start, n_end, tokens)
        V = len(self.vocab)

        self._tables: list[_Table] = []
        train_rows: list[np.ndarray] = []  # per start position, the row of the k-gram there (-1: none)
        rows = np.zeros(len(ids), dtype=np.int64)  # every position starts with the empty context, row 0
        for k in range(1, n + 1):
            m = len(ids) - k + 1
            # A k-gram exists at p if its (k-1)-prefix does and its last token is in the same sentence.
            valid = (rows[:m] >= 0) & (sentence_of[k - 1 : k - 1 + m] == sentence_of[:m])
            keys = rows[:m][valid] * V + ids[k - 1 : k - 1 + m][valid]
            uniq, inverse, counts = _unique_counts(keys, V if k == 1 else None)
            self._tables.append(_Table(uniq, counts, V))
            rows = np.full(m, -1, dtype=np.int64)
            rows[valid] = inverse
            train_rows.append(rows)
        self._prepare_levels(train_rows)
        return self

    def _pads(self) -> tuple[int, int]:
        """How many ``<s>`` and ``</s>`` surround each sentence."""
        if not self.padded:
            return 0, 0
        return self.order - 1, (self.order - 1 if self.nltk_padding else 1)

    def _level_counts(self, k: int, train_rows: list[np.ndarray]) -> np.ndarray:
        """The counts that level k smooths: raw counts here; Kneser-Ney overrides the lower levels."""
        return self._tables[k - 1].counts

    def _prepare_levels(self, train_rows: list[np.ndarray]) -> None:
        """Per level used: the count of each k-gram and, per context, its total and its number of types."""
        n = self.order
        self._counts: list[np.ndarray | None] = [None] * n
        self._totals: list[np.ndarray | None] = [None] * n
        self._types: list[np.ndarray | None] = [None] * n
        for k in range(1, n + 1) if self.backs_off else [n]:
            table = self._tables[k - 1]
            counts = self._level_counts(k, train_rows)
            n_contexts = 1 if k == 1 else len(self._tables[k - 2].keys)
            self._counts[k - 1] = counts
            self._totals[k - 1] = np.bincount(table.contexts, weights=counts, minlength=n_contexts)
            self._types[k - 1] = np.bincount(table.contexts, weights=counts > 0, minlength=n_contexts)

    def _require_fitted(self) -> Vocabulary:
        if self.vocab is None:
            raise RuntimeError(f"this {type(self).__name__} model has not been trained yet: call .fit(sentences) first")
        return self.vocab

    # ---------------------------------------------------------------- smoothing
    def _smooth(
        self, k: int, c_hw: np.ndarray, c_h: np.ndarray, t_h: np.ndarray, lower: np.ndarray | None
    ) -> np.ndarray:
        """P^(k)(w | h) from C(h w), C(h) = sum_v C(h v), T(h) = #{v : C(h v) > 0} and P^(k-1)(w | h')."""
        raise NotImplementedError

    def _check_contexts(self, c_h: np.ndarray, contexts: list[tuple[str, ...]] | None = None) -> None:
        """Hook for estimates that are undefined on unseen contexts (MLE)."""

    # ------------------------------------------------------------------ queries
    def count(self, ngram: Sequence[str]) -> int:
        """C(ngram): how often a k-gram (k <= n) occurs in the padded training sentences."""
        ngram = tuple(ngram)
        if not 1 <= len(ngram) <= self.order:
            raise ValueError(f"can only count k-grams with 1 <= k <= {self.order}, got {len(ngram)} tokens")
        row = self._row(ngram)
        return int(self._tables[len(ngram) - 1].counts[row]) if row >= 0 else 0

    def _row(self, gram: Sequence[str] | np.ndarray) -> int:
        """Row of one k-gram (tokens, or their ids) in the order-k table; -1 if never seen; 0 for k = 0."""
        vocab = self._require_fitted()
        if len(gram) == 0:
            return 0  # the empty context
        if not isinstance(gram, np.ndarray):
            if any(t not in vocab for t in gram):
                return -1
            gram = vocab.encode(gram)
        return int(_gram_ids(self._tables, gram, np.zeros(len(gram), np.int64), len(gram))[0])

    def probability(self, word: str, context: Sequence[str] = ()) -> float:
        """P(word | context); only the last n - 1 tokens of the context matter."""
        vocab = self._require_fitted()
        return float(self.distribution(context)[vocab.encode([word])[0]])

    def distribution(self, context: Sequence[str] = ()) -> np.ndarray:
        """The next-token distribution after ``context``: an array of ``len(vocab)`` probabilities."""
        vocab = self._require_fitted()
        n, V = self.order, len(vocab)
        context = list(context)[-(n - 1) :] if n > 1 else []
        if len(context) < n - 1:
            if not self.padded:
                raise ValueError(f"an order-{n} model trained without padding needs a context of {n - 1} tokens")
            context = [BOS] * (n - 1 - len(context)) + context
        ids = vocab.encode(context)
        lower = np.full(V, 1.0 / V) if self.backs_off else None
        for k in range(1, n + 1) if self.backs_off else [n]:
            h = ids[len(ids) - (k - 1) :] if k > 1 else ids[:0]
            row = self._row(h)
            c_hw = np.zeros(V)
            c_h = np.zeros(1)
            t_h = np.zeros(1)
            if row >= 0:
                table = self._tables[k - 1]
                lo, hi = table.row_range(row)
                c_hw[table.keys[lo:hi] % V] = self._counts[k - 1][lo:hi]  # only this context's rows
                c_h[0], t_h[0] = self._totals[k - 1][row], self._types[k - 1][row]
            self._check_contexts(c_h, [tuple(context)])
            lower = self._smooth(k, c_hw, c_h, t_h, lower)
        return lower

    def log_probabilities(self, sentences: Sequence[Sentence]) -> np.ndarray:
        """ln P(w_i | h_i) for every predicted token of the (padded) sentences, in order.

        The chain rule makes the log-probability of a sentence the sum of these
        terms; cross-entropy and perplexity are their mean (see ``information``).
        """
        vocab = self._require_fitted()
        if isinstance(sentences, str):
            raise ValueError("log_probabilities expects a list of sentences, not one string; wrap it: [text]")
        n = self.order
        sentences = [s for s in sentences if len(s) > 0]
        ids, sentence_of = _encode_padded(vocab, sentences, *self._pads())
        m = len(ids) - n + 1  # candidate windows of n tokens
        if m <= 0:
            return np.zeros(0)
        window_ok = sentence_of[n - 1 :] == sentence_of[:m]
        targets = ids[n - 1 :][window_ok]
        lower = np.full(len(targets), 1.0 / len(vocab)) if self.backs_off else None
        for k in range(1, n + 1) if self.backs_off else [n]:
            if k == 1:
                h_rows = np.zeros(len(targets), dtype=np.int64)
            else:  # the context of level k is the k-1 tokens just before the target
                h_rows = _gram_ids(self._tables, ids[n - k :], sentence_of[n - k :], k - 1)[:m][window_ok]
            rows = self._tables[k - 1].find(h_rows, targets)
            c_hw = np.where(rows >= 0, self._counts[k - 1][rows], 0.0)
            c_h = np.where(h_rows >= 0, self._totals[k - 1][h_rows], 0.0)
            t_h = np.where(h_rows >= 0, self._types[k - 1][h_rows], 0.0)
            if k == n and not np.all(c_h > 0):
                first = int(np.flatnonzero(c_h == 0)[0])
                start = int(np.flatnonzero(window_ok)[first])
                self._check_contexts(c_h, [tuple(vocab.decode(ids[start : start + n - 1]))])
            lower = self._smooth(k, c_hw, c_h, t_h, lower)
        with np.errstate(divide="ignore"):  # P = 0 (an unseen word under MLE) gives -inf, on purpose
            return np.log(lower)

    def cross_entropy(self, sentences: Sequence[Sentence], base: float = 2.0) -> float:
        """H = -(1/N) sum_i log_base P(w_i | h_i): bits per token for base 2, nats for base e."""
        log_probs = self.log_probabilities(sentences)
        if len(log_probs) == 0:
            raise ValueError("cannot compute cross-entropy on an empty test set")
        return float(-log_probs.mean() / math.log(base))

    def perplexity(self, sentences: Sequence[Sentence]) -> float:
        """PP = P(w_1 .. w_N)^(-1/N) = 2^H over the padded test sentences."""
        return perplexity_from_log_probs(self.log_probabilities(sentences))

    # --------------------------------------------------------------- generation
    def generate(
        self,
        num_tokens: int,
        context: Sequence[str] = (),
        temperature: float = 1.0,
        seed: int | None = 0,
        rng: np.random.Generator | None = None,
        stop_at_end: bool = True,
    ) -> list[str]:
        """Sample up to ``num_tokens`` tokens after ``context``, one at a time, with temperature.

        Each step draws from P(. | last n - 1 tokens)^(1/T), renormalised: T = 0 is
        greedy, T = 1 the model itself, T = inf uniform. A padded model stops after
        it generates ``</s>``; with ``stop_at_end=False`` it emits ``</s>`` and starts
        a new sentence from ``<s>``. Seeded: the same seed gives the same tokens.
        """
        vocab = self._require_fitted()
        if num_tokens < 0:
            raise ValueError(f"num_tokens must be >= 0, got {num_tokens}")
        rng = rng if rng is not None else np.random.default_rng(seed)
        history = list(context)
        out: list[str] = []
        for _ in range(num_tokens):
            token = vocab.tokens[sample_with_temperature(self.distribution(history), temperature, rng)]
            if token == EOS and self.padded:
                if stop_at_end:
                    break
                out.append(token)
                history = [BOS] * (self.order - 1)  # the next sentence starts afresh, as in training
                continue
            out.append(token)
            history.append(token)
        return out

    def __repr__(self) -> str:
        size = f", vocab={len(self.vocab)}" if self.vocab is not None else ", unfitted"
        return f"{type(self).__name__}(order={self.order}{size})"


class MLE(NgramModel):
    """Maximum likelihood: P(w | h) = C(h w) / C(h). Undefined (an error) where C(h) = 0."""

    def _check_contexts(self, c_h: np.ndarray, contexts: list[tuple[str, ...]] | None = None) -> None:
        if np.any(c_h == 0):
            where = f" {contexts[0]!r}" if contexts else ""
            raise ValueError(
                f"the context{where} never occurs in the training text, so the maximum-likelihood "
                "estimate is 0/0. Use a smoothed model (AddK, Interpolated, KneserNey) for held-out text."
            )

    def _smooth(self, k, c_hw, c_h, t_h, lower):
        return c_hw / c_h


class AddK(NgramModel):
    """Add-k smoothing: P(w | h) = (C(h w) + k) / (C(h) + k |V|). ``k = 1`` is Laplace's rule."""

    def __init__(self, order: int, k: float = 1.0, **options) -> None:
        super().__init__(order, **options)
        if not k > 0:
            raise ValueError(f"k must be positive (k = 1 is Laplace smoothing), got {k}")
        self.k = float(k)

    def _smooth(self, k, c_hw, c_h, t_h, lower):
        return (c_hw + self.k) / (c_h + self.k * len(self.vocab))


def Laplace(order: int, **options) -> AddK:
    """Add-one smoothing, the model NLTK calls ``Laplace``."""
    return AddK(order, 1.0, **options)


class Interpolated(NgramModel):
    """Jelinek-Mercer interpolation, defined level by level from the uniform distribution up:

        P^(k)(w | h) = lambda_k P_MLE(w | h) + (1 - lambda_k) P^(k-1)(w | h'),   P^(0) = 1/|V|,

    where h' drops the oldest token of h; where C(h) = 0 the level passes P^(k-1) through.
    """

    backs_off = True

    def __init__(self, order: int, lambdas: float | Sequence[float] = 0.7, **options) -> None:
        super().__init__(order, **options)
        lambdas = [float(lambdas)] * self.order if np.isscalar(lambdas) else [float(x) for x in lambdas]
        if len(lambdas) != self.order or not all(0.0 <= x <= 1.0 for x in lambdas):
            raise ValueError(f"lambdas must be one weight in [0, 1] or {self.order} of them (one per order), got {lambdas}")
        self.lambdas = lambdas

    def _smooth(self, k, c_hw, c_h, t_h, lower):
        lam = self.lambdas[k - 1]
        seen = c_h > 0
        return np.where(seen, lam * c_hw / np.where(seen, c_h, 1.0) + (1 - lam) * lower, lower)


class KneserNey(NgramModel):
    """Interpolated Kneser-Ney smoothing (Kneser & Ney 1995; Chen & Goodman 1999):

        P^(k)(w | h) = max(c(h w) - D_k, 0) / c(h) + D_k T(h) / c(h) * P^(k-1)(w | h'),

    with P^(0) = 1/|V|. The top order uses raw counts c = C; every lower order uses
    *continuation* counts c(g) = N1+(. g), the number of distinct tokens seen before
    g, because a lower order only speaks when the longer context is rare. The default
    discount is D_k = n1 / (n1 + 2 n2), from the numbers of k-grams seen once and twice.
    """

    backs_off = True

    def __init__(self, order: int, discount: float | None = None, **options) -> None:
        super().__init__(order, **options)
        if discount is not None and not 0.0 < discount < 1.0:
            raise ValueError(f"the discount must lie strictly between 0 and 1, got {discount}")
        self.discount = discount
        self.discounts: list[float] = []  # D_k actually used, one per order, set by fit

    def _prepare_levels(self, train_rows: list[np.ndarray]) -> None:
        self.discounts = []
        super()._prepare_levels(train_rows)

    def _level_counts(self, k: int, train_rows: list[np.ndarray]) -> np.ndarray:
        if k == self.order:
            counts = self._tables[k - 1].counts
        else:
            # Each distinct (k+1)-gram adds one to the continuation count of its last k tokens.
            longer_rows = train_rows[k]
            first = np.unique(longer_rows[longer_rows >= 0], return_index=True)[1]
            first_positions = np.flatnonzero(longer_rows >= 0)[first]
            suffix_rows = train_rows[k - 1][first_positions + 1]
            counts = np.bincount(suffix_rows, minlength=len(self._tables[k - 1].keys))
        self.discounts.append(self.discount if self.discount is not None else _default_discount(counts))
        return counts

    def continuation_count(self, ngram: Sequence[str]) -> int:
        """N1+(. ngram): how many distinct tokens precede ``ngram`` in training (for k-grams, k < n).

        The quantity Kneser-Ney smooths at every order below the top one.
        """
        ngram = tuple(ngram)
        if not 1 <= len(ngram) < self.order:
            raise ValueError(f"continuation counts exist for k-grams with 1 <= k < {self.order}, got {len(ngram)} tokens")
        row = self._row(ngram)
        return int(self._counts[len(ngram) - 1][row]) if row >= 0 else 0

    def _smooth(self, k, c_hw, c_h, t_h, lower):
        d = self.discounts[k - 1]
        seen = c_h > 0
        safe = np.where(seen, c_h, 1.0)
        return np.where(seen, (np.maximum(c_hw - d, 0.0) + d * t_h * lower) / safe, lower)


def _default_discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2) (Ney, Essen & Kneser 1994); 0.75 when the counts cannot support it."""
    n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
    if n1 == 0 or n2 == 0:
        return 0.75
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)
