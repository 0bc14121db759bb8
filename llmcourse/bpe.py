"""Byte-pair encoding (BPE): the subword tokenizer of GPT-2 and most language models since.

BPE (Sennrich, Haddow & Birch 2016, after Gage's 1994 compression algorithm) builds a
vocabulary bottom-up. GPT-2's byte-level variant (Radford et al. 2019) starts from the
256 byte values, so every string has an encoding and nothing is ever out of vocabulary:

1. **Pre-tokenize.** Split the text into pre-tokens with GPT-2's regular expression
   (:data:`GPT2_SPLIT_PATTERN`: contractions, letter runs, digit runs and punctuation
   runs, each with at most one leading space, and whitespace runs), so that no merge
   ever crosses a word boundary. Count each distinct pre-token once, with its frequency
   ``f(w)``, and write it as its sequence of UTF-8 bytes. (The pattern is written for the
   third-party ``regex`` module; this module needs no such dependency: it compiles an
   equivalent pattern with the standard library's ``re``, spelling out ``\\p{L}`` and
   ``\\p{N}`` from ``unicodedata``, and a test checks the two agree.)
2. **Count pairs.** For every adjacent pair of tokens ``(a, b)``,
   ``count(a, b) = sum_w f(w) * (number of times a b occurs in w)``.
3. **Merge.** Add the token ``ab`` for the most frequent pair, replace every
   occurrence of ``a b`` (left to right, non-overlapping) by ``ab``, and repeat from 2
   until the vocabulary (256 bytes + special tokens + merged tokens) has ``vocab_size`` entries.

Ties. Equally frequent pairs are broken the way Hugging Face ``tokenizers`` breaks them,
so that the two agree merge for merge: take the pair whose *left* token is oldest, then
whose *right* token is oldest, where "age" is :func:`token_rank`: the 256 bytes come
first, in GPT-2's byte order (the 188 printable bytes ``!``..``~``, ``¡``..``¬``,
``®``..``ÿ`` in byte order, then the 68 others: control bytes, space, DEL, no-break
space, soft hyphen), and merged tokens follow in the order they were made.

Training keeps step 2 incremental: a merge changes only the pre-tokens that contain the
merged pair, so only their pair counts are updated (the index ``where[pair]`` says
which pre-tokens to visit), and a heap with lazily refreshed counts finds the next
most frequent pair. Encoding applies the learned merges to each pre-token in the order
they were learned (lowest rank first), exactly as GPT-2's encoder does.

Book chapter: Part 5, *Tokens: from characters to subwords*.
"""

from __future__ import annotations

import heapq
import json
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

#: GPT-2's pre-tokenizer (Radford et al. 2019, ``encoder.py``), as written for the third-party
#: ``regex`` module, which knows the Unicode classes ``\p{L}`` (letters) and ``\p{N}`` (numbers).
#: Alternatives, first match wins: the English contractions ``'s 't 're 've 'm 'll 'd`` (lower
#: case only, a GPT-2 quirk); an optional space and a run of letters; an optional space and a run
#: of numbers; an optional space and a run of anything else that is not whitespace; a run of
#: whitespace not followed by a non-space (so that the last space before a word stays with the
#: word: ``"a   b"`` -> ``"a"``, ``"  "``, ``" b"``); any other run of whitespace.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

#: Unicode's White_Space property (PropList.txt). The ``regex`` module and Hugging Face's
#: Oniguruma use it for ``\s``; Python's ``re`` would also count U+001C..U+001F as space.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _ranges(codepoints: Iterable[int]) -> str:
    """A regex character-class body matching exactly ``codepoints`` (sorted), as ranges."""
    parts, start, prev = [], None, None
    for cp in codepoints:
        if start is None:
            start = prev = cp
        elif cp == prev + 1:
            prev = cp
        else:
            parts.append((start, prev))
            start = prev = cp
    if start is not None:
        parts.append((start, prev))
    # re.escape keeps ']', '\\', '-' and '^' literal inside the class.
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in parts)


@cache
def unicode_classes() -> dict[str, str]:
    """Bodies of ``re`` character classes for ``\\p{L}``, ``\\p{N}`` and ``\\s``, keyed ``"L"``, ``"N"``, ``"s"``.

    ``re`` has no ``\\p{L}``/``\\p{N}``, so the two classes are spelled out from
    ``unicodedata`` (every code point whose general category starts with L, resp. N), and
    ``\\s`` is Unicode's White_Space list. Built once per process (about 0.3 s).
    """
    letters, numbers = [], []
    for cp in range(sys.maxunicode + 1):
        major = unicodedata.category(chr(cp))[0]
        if major == "L":
            letters.append(cp)
        elif major == "N":
            numbers.append(cp)
    return {"L": _ranges(letters), "N": _ranges(numbers), "s": _WHITESPACE}


@cache
def _split_regex() -> re.Pattern[str]:
    """:data:`GPT2_SPLIT_PATTERN` compiled with the standard library's ``re`` (see :func:`unicode_classes`).

    It matches the ``regex`` module's reading of the pattern on every code point assigned
    in Python's Unicode database (tests check this, class by class and on random text).
    """
    c = unicode_classes()
    L, N, S = c["L"], c["N"], c["s"]
    pattern = (
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])|[{S}]+"
    )
    return re.compile(pattern)


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2 pre-tokens (:data:`GPT2_SPLIT_PATTERN`); their concatenation is ``text``.

    >>> pretokenize("Hello world's  end")
    ['Hello', ' world', "'s", ' ', ' end']
    """
    _check_text(text)
    return _split_regex().findall(text)


@cache
def gpt2_byte_order() -> tuple[int, ...]:
    """The 256 byte values in GPT-2's order: printable bytes first, then the rest, each in byte order.

    GPT-2 (``bytes_to_unicode`` in its ``encoder.py``) shows byte ``b`` as a printable
    character: the 188 printable ones as themselves, the other 68 as ``chr(256 + n)``
    in this order, so that a byte-level token can be written as a string (space is ``Ġ``,
    newline ``Ċ``). Sorting those characters gives this order; it is also the order of
    GPT-2's first 256 token ids and of Hugging Face's byte-level alphabet.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    return tuple(printable + [b for b in range(256) if b not in set(printable)])


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte value (``b' '`` -> ``'Ġ'``, ``b'\\n'`` -> ``'Ċ'``)."""
    order = gpt2_byte_order()
    return {b: chr(b) if i < 188 else chr(256 + i - 188) for i, b in enumerate(order)}


def printable_token(token: bytes) -> str:
    """A token's bytes in GPT-2's printable notation, e.g. ``b' the'`` -> ``'Ġthe'``."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def _check_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}; decode bytes first (data.decode('utf-8'))")
    return text


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start]
        raise ValueError(
            f"text contains the lone surrogate U+{ord(bad):04X} at position {err.start}, which has no UTF-8 "
            "encoding; remove it or read the text with errors='replace'"
        ) from None


def _check_special_tokens(special_tokens: object) -> tuple[str, ...]:
    if isinstance(special_tokens, (str, bytes)) or not isinstance(special_tokens, Iterable):
        raise TypeError(
            f"special_tokens must be a list of strings, e.g. ['<|endoftext|>'], got {special_tokens!r}"
        )
    tokens = tuple(special_tokens)
    for token in tokens:
        if not isinstance(token, str):
            raise TypeError(f"every special token must be a str, got {token!r}")
        if token == "":
            raise ValueError("a special token must not be the empty string")
    duplicates = sorted({t for t in tokens if tokens.count(t) > 1})
    if duplicates:
        raise ValueError(f"special tokens must be distinct; repeated: {duplicates}")
    return tokens


def _special_regex(special_tokens: Sequence[str]) -> re.Pattern[str] | None:
    if not special_tokens:
        return None
    # Longest first, so that a special token containing another one wins.
    alternatives = sorted(special_tokens, key=lambda t: (-len(t), t))
    return re.compile("(" + "|".join(re.escape(t) for t in alternatives) + ")")


def _split_specials(text: str, special_tokens: Sequence[str]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is_special) parts; special tokens are found before pre-tokenization."""
    regex = _special_regex(special_tokens)
    if regex is None:
        return [(text, False)] if text else []
    parts = regex.split(text)  # the capturing group keeps the specials at odd positions
    return [(part, i % 2 == 1) for i, part in enumerate(parts) if part]


def token_rank(token_id: int, n_special: int = 0) -> int:
    """The tie-breaking age of a token id in a :class:`BPETokenizer` with ``n_special`` special tokens.

    Bytes: their position in :func:`gpt2_byte_order` (0..255); merged tokens:
    ``token_id - n_special`` (they are numbered in the order they were made, from
    ``256 + n_special``). Among equally frequent pairs, training merges the one with
    the smallest ``(rank(left), rank(right))``.
    """
    if token_id < 256:
        return _BYTE_RANK[token_id]
    return token_id - n_special


_BYTE_RANK = {b: i for i, b in enumerate(gpt2_byte_order())}


class BPETokenizer:
    """A trained byte-level BPE tokenizer: an ordered merge list plus special tokens.

    Token ids: ``0..255`` are the single bytes (id ``b`` is ``bytes([b])``); the special
    tokens follow, ``256..256 + k - 1`` in the order given, so their ids do not depend
    on the vocabulary size; then one id per new token made by a merge, in merge order.
    (If two merges make the same byte string, as Hugging Face's trainer does, the second
    reuses the first one's id, so ``len(merges)`` can exceed ``len(vocab) - 256 - k``.)

    Attributes:
        merges: the merges in the order they were learned, each a pair of byte strings.
        vocab: id -> the bytes it stands for (special tokens as their UTF-8 bytes).
        special_tokens: the special tokens, in id order.
        special_token_ids: special token -> id.
    """

    def __init__(self, merges: Sequence[tuple[bytes, bytes]], special_tokens: Sequence[str] = ()) -> None:
        self.special_tokens: tuple[str, ...] = _check_special_tokens(special_tokens)
        self.vocab: dict[int, bytes] = {b: bytes([b]) for b in range(256)}
        self.special_token_ids: dict[str, int] = {}
        for token in self.special_tokens:
            self.special_token_ids[token] = len(self.vocab)
            self.vocab[len(self.vocab)] = token.encode("utf-8")
        # Ordinary tokens only: a special token's bytes must still encode byte by byte when typed as text.
        self._id_of: dict[bytes, int] = {bytes([b]): b for b in range(256)}
        self.merges: list[tuple[bytes, bytes]] = []
        # (left id, right id) -> (rank, new id): the table encode() applies.
        self._merge_table: dict[tuple[int, int], tuple[int, int]] = {}
        for i, merge in enumerate(merges):
            if not (isinstance(merge, (tuple, list)) and len(merge) == 2 and all(isinstance(p, bytes) for p in merge)):
                raise TypeError(f"merge {i} must be a pair of bytes objects, got {merge!r}")
            left, right = merge
            if left not in self._id_of or right not in self._id_of:
                raise ValueError(
                    f"merge {i} {merge!r} uses a token that neither is a byte nor was made by an earlier merge"
                )
            self._add_merge(left, right)
        self._special_regex = _special_regex(self.special_tokens)
        self._cache: dict[str, tuple[int, ...]] = {}

    def _add_merge(self, left: bytes, right: bytes) -> int:
        new = left + right
        new_id = self._id_of.get(new)
        if new_id is None:
            new_id = len(self.vocab)
            self.vocab[new_id] = new
            self._id_of[new] = new_id
        self._merge_table.setdefault((self._id_of[left], self._id_of[right]), (len(self.merges), new_id))
        self.merges.append((left, right))
        return new_id

    def __len__(self) -> int:
        """The vocabulary size: bytes + special tokens + merged tokens."""
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={len(self)}, merges={len(self.merges)}, special_tokens={list(self.special_tokens)})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BPETokenizer)
            and self.merges == other.merges
            and self.special_tokens == other.special_tokens
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container: equality by value only

    def _encode_pretoken(self, pretoken: str) -> tuple[int, ...]:
        """BPE on one pre-token: repeatedly merge the adjacent pair learned earliest, all its occurrences."""
        cached = self._cache.get(pretoken)
        if cached is not None:
            return cached
        ids = list(pretoken.encode("utf-8"))
        table = self._merge_table
        while len(ids) > 1:
            best = None
            for pair in zip(ids, ids[1:]):
                entry = table.get(pair)
                if entry is not None and (best is None or entry[0] < best[0]):
                    best = (entry[0], entry[1], pair)
            if best is None:
                break
            _, new_id, (a, b) = best
            ids = _merge_ids(ids, a, b, new_id)
        result = tuple(ids)
        if len(self._cache) < 100_000:  # bounded: pre-tokens of real text repeat (Zipf), garbage need not
            self._cache[pretoken] = result
        return result

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``.

        Special tokens are found first (the longest one wins where two overlap) and become
        their single ids; the text between them is pre-tokenized and each pre-token is
        encoded on its own, so ``decode(encode(text)) == text`` for every ``str`` that has
        a UTF-8 encoding (anything but lone surrogates, which raise ``ValueError``).
        """
        _check_text(text)
        _utf8(text)
        ids: list[int] = []
        split = _split_regex()
        for piece, special in _split_specials(text, self.special_tokens):
            if special:
                ids.append(self.special_token_ids[piece])
            else:
                for pretoken in split.findall(piece):
                    ids.extend(self._encode_pretoken(pretoken))
        return ids

    def _check_ids(self, ids: Sequence[int]) -> None:
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be a sequence of token ids (ints), got {type(ids).__name__}")
        for position, i in enumerate(ids):
            if isinstance(i, bool) or not hasattr(i, "__index__"):
                raise TypeError(f"token ids must be ints, got {i!r} at position {position}")
            if not 0 <= int(i) < len(self.vocab):
                raise ValueError(
                    f"token id {int(i)} at position {position} is not in the vocabulary: valid ids are 0..{len(self.vocab) - 1}"
                )

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The bytes the ids stand for, concatenated (no UTF-8 decoding)."""
        ids = list(ids) if not isinstance(ids, (str, bytes)) and isinstance(ids, Iterable) else ids
        self._check_ids(ids)
        return b"".join(self.vocab[int(i)] for i in ids)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``: their bytes joined and read as UTF-8.

        A byte-level token can end in the middle of a multi-byte character (``"é"`` is
        the two bytes ``c3 a9``), so an arbitrary id sequence need not be valid UTF-8;
        such bytes are shown as U+FFFD (``errors="replace"``) instead of raising, as
        GPT-2 does. Ids from :meth:`encode` always decode exactly.
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_to_id(self, token: bytes | str) -> int:
        """The id of a token: its bytes, or a special token's string."""
        if isinstance(token, str) and token in self.special_token_ids:
            return self.special_token_ids[token]
        if not isinstance(token, bytes):
            raise TypeError(f"token must be bytes (or a special token's str), got {token!r}")
        if token not in self._id_of:
            raise ValueError(f"{token!r} is not a token of this vocabulary")
        return self._id_of[token]

    def tokens(self, text: str) -> list[bytes]:
        """The tokens of ``text`` as byte strings, e.g. ``[b'First', b' Citizen', b':']``."""
        return [self.vocab[i] for i in self.encode(text)]

    def truncated(self, vocab_size: int) -> BPETokenizer:
        """The tokenizer :func:`train_bpe` would have returned for the smaller ``vocab_size``.

        Training is greedy, so stopping earlier gives a prefix of the same merge list.
        """
        _check_vocab_size(vocab_size, len(self.special_tokens))
        small = BPETokenizer([], self.special_tokens)
        for left, right in self.merges:
            if len(small) >= vocab_size:
                break
            small._add_merge(left, right)
        return small

    def to_dict(self) -> dict:
        """A JSON-ready description: the special tokens and the merges in GPT-2's printable notation."""
        return {
            "format": "llmcourse-bpe-1",
            "special_tokens": list(self.special_tokens),
            "merges": [[printable_token(a), printable_token(b)] for a, b in self.merges],
        }

    @classmethod
    def from_dict(cls, record: dict) -> BPETokenizer:
        """The inverse of :meth:`to_dict`."""
        if not isinstance(record, dict) or record.get("format") != "llmcourse-bpe-1":
            raise ValueError("not an llmcourse BPE tokenizer record (expected 'format': 'llmcourse-bpe-1')")
        back = {c: b for b, c in bytes_to_unicode().items()}
        try:
            merges = [(bytes(back[c] for c in a), bytes(back[c] for c in b)) for a, b in record["merges"]]
        except KeyError as err:
            raise ValueError(f"merge list contains {err.args[0]!r}, which is not a GPT-2 byte character") from None
        return cls(merges, record.get("special_tokens", ()))

    def save(self, path: str | Path) -> None:
        """Write the tokenizer to ``path`` as JSON (:meth:`to_dict`)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _merge_ids(ids: Sequence[int], a: int, b: int, new_id: int) -> list[int]:
    """``ids`` with every ``a b`` (scanning left to right, non-overlapping) replaced by ``new_id``."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _check_vocab_size(vocab_size: object, n_special: int) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    if vocab_size < 256 + n_special:
        raise ValueError(
            f"vocab_size must be at least 256 (the bytes) + {n_special} (special tokens) = {256 + n_special}, "
            f"got {vocab_size}"
        )
    return vocab_size


def pretoken_counts(text: str, special_tokens: Sequence[str] = ()) -> Counter[str]:
    """How often each pre-token occurs in ``text``; special tokens are cut out first and not counted."""
    _check_text(text)
    _utf8(text)
    special_tokens = _check_special_tokens(special_tokens)
    split = _split_regex()
    counts: Counter[str] = Counter()
    for piece, special in _split_specials(text, special_tokens):
        if not special:
            counts.update(split.findall(piece))
    return counts


def pair_counts(text: str, tokenizer: BPETokenizer | None = None) -> Counter[tuple[bytes, bytes]]:
    """Step 2 of training, done from scratch: ``count(a, b) = sum_w f(w) * (occurrences of a b in w)``.

    ``w`` runs over the distinct pre-tokens of ``text`` (special tokens of ``tokenizer``
    cut out), each segmented by ``tokenizer`` (into single bytes if ``None``). The next
    merge :func:`train_bpe` makes after ``tokenizer``'s merges is the most frequent of
    these pairs. Slow on purpose: it recounts everything, which training never does.
    """
    if tokenizer is None:
        tokenizer = BPETokenizer([])
    if not isinstance(tokenizer, BPETokenizer):
        raise TypeError(f"tokenizer must be a BPETokenizer or None, got {type(tokenizer).__name__}")
    counts: Counter[tuple[bytes, bytes]] = Counter()
    for word, freq in pretoken_counts(text, tokenizer.special_tokens).items():
        ids = tokenizer._encode_pretoken(word)
        for a, b in zip(ids, ids[1:]):
            counts[tokenizer.vocab[a], tokenizer.vocab[b]] += freq
    return counts


def train_bpe(text: str, vocab_size: int, special_tokens: Sequence[str] = ()) -> BPETokenizer:
    """Learn byte-level BPE merges from ``text`` until the vocabulary has ``vocab_size`` tokens.

    The vocabulary counts the 256 bytes, the special tokens and the merged tokens.
    Training stops early, with a smaller vocabulary, if no adjacent pair is left (every
    pre-token is a single token). Special tokens in ``text`` separate the text around
    them and are never part of a merge. Deterministic: ties go to the pair with the
    smallest ``(token_rank(left), token_rank(right))`` (see the module docstring).

    Cost: one pass to count pre-tokens, then per merge work proportional to the
    pre-tokens that contain the merged pair, plus heap operations.
    """
    _check_text(text)
    special_tokens = _check_special_tokens(special_tokens)
    _check_vocab_size(vocab_size, len(special_tokens))
    counts = pretoken_counts(text, special_tokens)

    tokenizer = BPETokenizer([], special_tokens)
    n_special = len(special_tokens)
    words: list[list[int]] = [list(w.encode("utf-8")) for w in counts]
    freqs: list[int] = list(counts.values())

    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}  # pair -> indices of the words that (may) contain it
    for index, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + freq
            where.setdefault(pair, set()).add(index)

    def entry(pair: tuple[int, int], count: int) -> tuple[int, int, int, int, int]:
        # heapq is a min-heap: most frequent first, then the oldest left token, then the oldest right token.
        return (-count, token_rank(pair[0], n_special), token_rank(pair[1], n_special), pair[0], pair[1])

    heap = [entry(pair, count) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    while len(tokenizer) < vocab_size and heap:
        negative_count, _, _, a, b = heapq.heappop(heap)
        pair = (a, b)
        current = pair_counts.get(pair, 0)
        if current != -negative_count:
            # A stale entry: the pair lost occurrences to earlier merges. Re-file it at its true count.
            if current > 0:
                heapq.heappush(heap, entry(pair, current))
            continue
        new_id = tokenizer._add_merge(tokenizer.vocab[a], tokenizer.vocab[b])

        touched: set[tuple[int, int]] = set()
        for index in where.pop(pair):
            word = words[index]
            merged = _merge_ids(word, a, b, new_id)
            if len(merged) == len(word):
                continue  # the index was stale: an earlier merge already removed the pair here
            freq = freqs[index]
            for old in zip(word, word[1:]):
                pair_counts[old] -= freq
            for new in zip(merged, merged[1:]):
                pair_counts[new] = pair_counts.get(new, 0) + freq
                if new_id in new:
                    where.setdefault(new, set()).add(index)
                    touched.add(new)
            words[index] = merged
        del pair_counts[pair]  # every occurrence was merged (left-to-right leaves no a b behind)
        # Only pairs containing the new token can have grown; the others are refreshed lazily above.
        for new in touched:
            if pair_counts[new] > 0:
                heapq.heappush(heap, entry(new, pair_counts[new]))
    return tokenizer


def _count_tokens(tokenizer: BPETokenizer, text: str) -> int:
    if not isinstance(tokenizer, BPETokenizer):
        raise TypeError(f"tokenizer must be a BPETokenizer, got {type(tokenizer).__name__}")
    _check_text(text)
    n = len(tokenizer.encode(text))
    if n == 0:
        raise ValueError("text is empty: there is nothing to measure")
    return n


def tokens_per_word(tokenizer: BPETokenizer, text: str) -> float:
    """Tokens per whitespace-separated word: ``len(encode(text)) / len(text.split())``.

    1.0 would mean every word is one token; character-level models pay about 5.5 on English.
    """
    n_tokens = _count_tokens(tokenizer, text)
    n_words = len(text.split())
    if n_words == 0:
        raise ValueError("text has no words (only whitespace); tokens per word is undefined")
    return n_tokens / n_words


def bytes_per_token(tokenizer: BPETokenizer, text: str) -> float:
    """The compression ratio ``len(text.encode('utf-8')) / len(encode(text))``: UTF-8 bytes per token.

    1.0 for a tokenizer without merges; the higher, the shorter the sequences a model sees.
    """
    n_tokens = _count_tokens(tokenizer, text)
    return len(_utf8(text)) / n_tokens


#: The compression ratio of a tokenizer on a text is its bytes per token.
compression_ratio = bytes_per_token


def vocabulary_size_study(
    train_text: str, test_text: str, vocab_sizes: Sequence[int], special_tokens: Sequence[str] = ()
) -> list[dict[str, float]]:
    """Tokens per word, bytes per token and sequence length on ``test_text`` for each vocabulary size.

    Trains once, to the largest size, and truncates (:meth:`BPETokenizer.truncated`):
    the merges of a smaller vocabulary are a prefix of those of a larger one.
    Returns one dict per size: ``vocab_size``, ``tokens``, ``tokens_per_word``, ``bytes_per_token``.
    """
    sizes = list(vocab_sizes)
    if not sizes:
        raise ValueError("vocab_sizes is empty: give at least one vocabulary size, e.g. [256, 500, 1000]")
    for size in sizes:
        _check_vocab_size(size, len(special_tokens))
    _check_text(test_text, "test_text")
    full = train_bpe(train_text, max(sizes), special_tokens)
    n_words, n_bytes = len(test_text.split()), len(_utf8(test_text))
    if n_words == 0:
        raise ValueError("test_text has no words (only whitespace); tokens per word is undefined")
    rows = []
    for size in sizes:
        tokenizer = full.truncated(size)
        n_tokens = len(tokenizer.encode(test_text))
        rows.append({
            "vocab_size": len(tokenizer),
            "tokens": n_tokens,
            "tokens_per_word": n_tokens / n_words,
            "bytes_per_token": n_bytes / n_tokens,
        })
    return rows
