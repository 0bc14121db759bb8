"""The corpora the book uses, shipped inside the package, and the tokenizers that cut them.

Nothing here downloads: every file lives beside this module (see ``DATA.md``
for provenance and licences). Book section: *Language models and Shannon's
approximations*, "The corpus".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TypeVar

DATA_DIR = Path(__file__).resolve().parent

T = TypeVar("T")

# NLTK's ``wordpunct_tokenize`` pattern: runs of word characters, or runs of
# punctuation. Using the same rule lets the tests compare our models with
# ``nltk.lm`` token for token.
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")


def data_path(name: str) -> Path:
    """Return the path of a shipped data file, e.g. ``data_path("tinyshakespeare.txt")``."""
    path = DATA_DIR / name
    if not path.is_file() or name.startswith((".", "_")):
        available = sorted(p.name for p in DATA_DIR.iterdir() if p.suffix in {".txt", ".tsv"})
        raise ValueError(f"no data file named {name!r}; the package ships: {', '.join(available)}")
    return path


@cache
def tiny_shakespeare() -> str:
    """The Tiny Shakespeare corpus (Karpathy 2015): 40,000 lines, 1,115,394 characters."""
    return data_path("tinyshakespeare.txt").read_text(encoding="utf-8")


def wordpunct_tokenize(text: str) -> list[str]:
    """Split ``text`` into words and punctuation runs: ``"Speak, speak."`` -> ``['Speak', ',', 'speak', '.']``.

    Same rule as NLTK's ``wordpunct_tokenize`` (regex ``\\w+|[^\\w\\s]+``).
    """
    if not isinstance(text, str):
        raise ValueError(f"wordpunct_tokenize expects a str, got {type(text).__name__}")
    return _WORDPUNCT.findall(text)


def sentences(text: str, lowercase: bool = True) -> list[list[str]]:
    """Cut a corpus into tokenized "sentences", one per non-empty line.

    Tiny Shakespeare has one verse line per line, so a line is the natural unit.
    Blank lines are dropped; each kept line is lower-cased (by default) and
    tokenized with :func:`wordpunct_tokenize`.
    """
    if lowercase:
        text = text.lower()
    return [wordpunct_tokenize(line) for line in text.splitlines() if line.strip()]


def train_test_split(items: Sequence[T], train_fraction: float = 0.9) -> tuple[list[T], list[T]]:
    """Split a sequence in order: the first ``train_fraction`` for training, the rest held out.

    No shuffling: held-out text must come from a *different part* of the corpus,
    as text a model meets after training does.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction}")
    if len(items) < 2:
        raise ValueError(f"need at least 2 items to split into train and test, got {len(items)}")
    cut = min(max(int(train_fraction * len(items)), 1), len(items) - 1)
    return list(items[:cut]), list(items[cut:])


def shakespeare_split(train_fraction: float = 0.9) -> tuple[list[list[str]], list[list[str]]]:
    """The book's standard word-level split of Tiny Shakespeare.

    Non-empty lines, lower-cased, ``wordpunct``-tokenized; the first 90 % of
    lines train, the last 10 % are held out. Every model in the course that is
    compared by perplexity uses this split.
    """
    return train_test_split(sentences(tiny_shakespeare()), train_fraction)


@cache
def english_letter_frequencies() -> dict[str, float]:
    """Relative frequencies of the 26 letters in English text (Lewand 2000), keyed by upper-case letter.

    The published table is rounded to five decimals and sums to 0.99999; it is
    renormalised here so it is a probability distribution.
    """
    freqs: dict[str, float] = {}
    for line in data_path("english_letter_frequency_lewand2000.tsv").read_text().splitlines():
        if line.startswith("#") or line.startswith("letter") or not line.strip():
            continue
        letter, value = line.split("\t")
        freqs[letter.upper()] = float(value)
    total = sum(freqs.values())
    return {letter: value / total for letter, value in freqs.items()}
