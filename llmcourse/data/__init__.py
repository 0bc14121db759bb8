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


# --- Part 2: the plays, a Wikipedia prefix and the word-vector evaluation sets -----------------

PLAYS_DIR = DATA_DIR / "shakespeare_plays"
EVAL_DIR = DATA_DIR / "eval"
POEMS = frozenset(
    {"sonnets", "lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece", "venus_and_adonis"}
)
_WORD = re.compile(r"[a-z]+")


def simple_word_tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and keep runs of the letters a-z: ``"Good, my lord!"`` -> ``['good', 'my', 'lord']``.

    The tokenizer of the term-document example: apostrophes split words
    (``fool's`` -> ``fool``, ``s``), so possessives count towards the word.
    Book section: *Vector semantics*, "Words as vectors".
    """
    if not isinstance(text, str):
        raise ValueError(f"simple_word_tokenize expects a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


@cache
def play_titles() -> dict[str, str]:
    """Map each shipped play's short name (``"as_you_like_it"``) to its title (``"As You Like It"``)."""
    titles: dict[str, str] = {}
    section = None
    for line in (PLAYS_DIR / "metadata.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line.startswith("title") and section is not None and section.endswith("_gut"):
            name = section.removesuffix("_gut")
            if (PLAYS_DIR / f"{section}.txt").is_file():
                titles[name] = line.split("=", 1)[1].replace("[Gutenberg]", "").strip()
    return dict(sorted(titles.items()))


def shakespeare_plays(include_poems: bool = False) -> dict[str, str]:
    """The complete works as ``{short name: full text}``, sorted by name (37 plays, +6 poems on request).

    Project Gutenberg etexts (1998-2000) with their licence headers removed;
    see ``DATA.md``. Book section: *Vector semantics*, "The Shakespeare term-document matrix".
    """
    return {
        name: _play_text(name) for name in play_titles() if include_poems or name not in POEMS
    }


@cache
def _play_text(name: str) -> str:
    return (PLAYS_DIR / f"{name}_gut.txt").read_text(encoding="utf-8")


def play(name: str) -> str:
    """The full text of one play, by short name (``play("hamlet")``)."""
    titles = play_titles()
    if name not in titles:
        raise ValueError(f"no play named {name!r}; the shipped works are: {', '.join(titles)}")
    return _play_text(name)


@cache
def text8_prefix() -> tuple[str, ...]:
    """The words of ``text8_prefix.txt.gz``: the first 12.5 MB of text8 (lower-case Wikipedia, 2,139,748 words).

    Returned as a tuple so the cached corpus cannot be modified by a caller.
    Book section: *Word2vec*, "Training on Wikipedia".
    """
    import gzip

    with gzip.open(DATA_DIR / "text8_prefix.txt.gz", "rt", encoding="ascii") as f:
        return tuple(f.read().split())


@cache
def analogy_questions() -> tuple[tuple[str, str, str, str, str], ...]:
    """The Google analogy set (Mikolov et al. 2013): 19,544 questions ``(section, a, b, c, d)``, lower-cased.

    Each question reads "a is to b as c is to d" (``athens greece baghdad iraq``).
    """
    questions = []
    section = ""
    for line in (EVAL_DIR / "questions-words.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            a, b, c, d = line.lower().split()
            questions.append((section, a, b, c, d))
    return tuple(questions)


SIMILARITY_SETS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "men": "MEN_dataset_natural_form_full"}


@cache
def word_similarity_pairs(name: str) -> tuple[tuple[str, str, float], ...]:
    """A human word-similarity set as ``(word1, word2, score)`` triples, lower-cased.

    ``name`` is ``"wordsim353"`` (Finkelstein et al. 2002, 353 pairs, relatedness 0-10),
    ``"simlex999"`` (Hill et al. 2015, 999 pairs, similarity 0-10) or ``"men"``
    (Bruni et al. 2014, 3,000 pairs, 0-50).
    """
    if name not in SIMILARITY_SETS:
        raise ValueError(f"no similarity set named {name!r}; choose one of {', '.join(SIMILARITY_SETS)}")
    pairs = []
    for line in (EVAL_DIR / SIMILARITY_SETS[name]).read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or line.startswith("word1") or not line.strip():
            continue
        first, second, score = line.split()[:3]
        pairs.append((first.lower(), second.lower(), float(score)))
    return tuple(pairs)
