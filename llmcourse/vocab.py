"""Vocabularies: the map between tokens (words or characters) and integer ids.

A model works with ids, people read tokens. Three symbols are special:
``<s>`` pads the start of a sentence, ``</s>`` its end, and ``<unk>`` stands
for any token the training text did not contain (or contained too rarely).
Book section: *N-gram models, smoothing and perplexity*, "Vocabulary, padding and unknown words".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"


class Vocabulary:
    """An ordered set of tokens with ids ``0 .. len(vocab) - 1``.

    Args:
        tokens: the distinct tokens, in id order.
        unk: whether ``<unk>`` is part of the vocabulary. If it is, unseen
            tokens encode to it; if not, encoding one is an error (the right
            behaviour for a character model, whose alphabet is closed).
    """

    def __init__(self, tokens: Iterable[str], unk: bool = True) -> None:
        self.tokens: list[str] = list(tokens)
        if unk and UNK not in self.tokens:
            self.tokens.append(UNK)
        self.index: dict[str, int] = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be distinct")
        if not self.tokens:
            raise ValueError("a vocabulary needs at least one token; the training text was empty")
        self.unk_id: int | None = self.index.get(UNK) if unk else None

    @classmethod
    def from_counts(cls, counts: Counter[str], min_count: int = 1, unk: bool = True) -> Vocabulary:
        """Keep the tokens seen at least ``min_count`` times, most frequent first (ties by token)."""
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        # Sort by token, then (stably) by falling count: ties stay alphabetical, and both
        # sorts run in C, which matters for a 10^4-word vocabulary rebuilt on every fit.
        kept = sorted(t for t, c in counts.items() if c >= min_count)
        kept.sort(key=counts.__getitem__, reverse=True)
        if not kept:
            raise ValueError(
                f"no token occurs at least min_count={min_count} times; the corpus is empty "
                "or min_count is too high"
            )
        return cls(kept, unk=unk)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.tokens[:5])
        return f"Vocabulary({len(self)} tokens: {head}{', ...' if len(self) > 5 else ''})"

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Map tokens to ids; unknown tokens become ``<unk>``, or raise if there is none."""
        # map() over a bound dict method runs at C speed: this is the hot loop of every fit.
        if self.unk_id is not None:
            return np.fromiter(map(self.index.get, tokens, repeat(self.unk_id)), dtype=np.int64, count=len(tokens))
        try:
            return np.fromiter(map(self.index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        except KeyError:
            unknown = sorted({t for t in tokens if t not in self.index})
            shown = ", ".join(repr(t) for t in unknown[:10])
            raise ValueError(
                f"{len(unknown)} symbol(s) are outside the vocabulary: {shown}"
                f"{' ...' if len(unknown) > 10 else ''}. This vocabulary has no <unk> token, so "
                "normalise the text to the training alphabet first (e.g. shannon.normalize_letters) "
                "or build the model with unk=True."
            ) from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids back to tokens."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"token id {i} is outside the vocabulary (ids run from 0 to {len(self) - 1})")
            out.append(self.tokens[i])
        return out
