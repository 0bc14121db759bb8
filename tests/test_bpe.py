"""Byte-level BPE (llmcourse.bpe), checked against hand-worked merges, the `regex` module's reading of
GPT-2's split pattern, and Hugging Face `tokenizers` (its BpeTrainer and BPE model with GPT-2's
ByteLevel pre-tokenizer), which must agree with us merge for merge and token for token."""

from __future__ import annotations

import json
import os
import sys
import time
import unicodedata

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers: one thread on the shared 2-core machine

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmcourse import bpe, data

EOT = "<|endoftext|>"


# ---------------------------------------------------------------------------------------------
# Independent oracles


def gpt2_bytes_to_unicode() -> dict[int, str]:
    """OpenAI's GPT-2 encoder.py `bytes_to_unicode`, transcribed: the published byte <-> character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_OF = {c: b for b, c in gpt2_bytes_to_unicode().items()}


def hf_bytes(token: str) -> bytes:
    return bytes(BYTE_OF[c] for c in token)


def hf_trained(texts: list[str], vocab_size: int, special_tokens=()) -> Tokenizer:
    """HF's byte-level BPE as GPT-2 set it up: ByteLevel pre-tokenizer (GPT-2 regex, no prefix space), all 256 bytes."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False, special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def hf_merges(tokenizer: Tokenizer) -> list[tuple[bytes, bytes]]:
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    merges = [m.split(" ") if isinstance(m, str) else m for m in merges]
    return [(hf_bytes(a), hf_bytes(b)) for a, b in merges]


def hf_from_ours(tok: bpe.BPETokenizer) -> Tokenizer:
    """HF's BPE model loaded with *our* vocabulary and merges: an independent encoder for the same table."""
    table = gpt2_bytes_to_unicode()
    show = lambda t: "".join(table[b] for b in t)  # noqa: E731
    vocab = {show(t): i for i, t in tok.vocab.items() if i not in tok.special_token_ids.values()}
    merges = [(show(a), show(b)) for a, b in tok.merges]
    hf = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(list(tok.special_tokens))
    return hf


def hf_tokens(hf: Tokenizer, text: str, special_tokens=()) -> list[bytes]:
    return [t.encode() if t in special_tokens else hf_bytes(t) for t in hf.encode(text).tokens]


# ---------------------------------------------------------------------------------------------
# Fixtures: Tiny Shakespeare, 90 % to train, the last 10 % held out


@pytest.fixture(scope="module")
def shakespeare() -> tuple[str, str]:
    text = data.tiny_shakespeare()
    cut = text.index("\n\n", int(0.9 * len(text))) + 2
    return text[:cut], text[cut:]


@pytest.fixture(scope="module")
def ours_1000(shakespeare) -> tuple[bpe.BPETokenizer, float]:
    start = time.perf_counter()
    tok = bpe.train_bpe(shakespeare[0], 1000)
    return tok, time.perf_counter() - start


@pytest.fixture(scope="module")
def hf_1000(shakespeare) -> Tokenizer:
    return hf_trained([shakespeare[0]], 1000)


@pytest.fixture(scope="module")
def small() -> bpe.BPETokenizer:
    """A quick tokenizer with a special token, for the round-trip properties."""
    return bpe.train_bpe(data.tiny_shakespeare()[:60_000], 400, special_tokens=[EOT, "<pad>"])


# ---------------------------------------------------------------------------------------------
# Pre-tokenization

# Every assigned code point but surrogates (Python's Unicode database; Unicode versions differ beyond it).
assigned = st.characters(exclude_categories=("Cs", "Cn"))
unicode_text = st.text(alphabet=assigned, max_size=60)
# Text likely to exercise the pattern: contractions, spaces, digits, letters with marks, emoji, NUL.
pieces = st.sampled_from(["'s", "'ll", "'D", " ", "  ", "\n", "\t", "\r\n", "\x00", "\x1c", "12", "٣", "½",
                          "a", "Ab", "é", "e\u0301", "ß", "日本", "😀", "👩‍👩‍👧", "!", "--", "\u00a0", "\u3000"])
tricky_text = st.lists(st.one_of(pieces, unicode_text), max_size=12).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(unicode_text, tricky_text))
def test_pretokenize_matches_the_regex_module_reading_of_gpt2_pattern(text):
    """Our `re` spelling of \\p{L}, \\p{N} and \\s agrees with the `regex` module on the GPT-2 pattern."""
    assert bpe.pretokenize(text) == regex.findall(bpe.GPT2_SPLIT_PATTERN, text)


@settings(max_examples=150, deadline=None)
@given(st.one_of(unicode_text, tricky_text))
def test_pretokenize_matches_hf_byte_level_pre_tokenizer(text):
    hf = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    assert [bpe.printable_token(p.encode()) for p in bpe.pretokenize(text)] == [t for t, _ in hf.pre_tokenize_str(text)]


def test_unicode_classes_agree_with_regex_module_on_every_assigned_code_point():
    """Exhaustive, class by class: our spelled-out \\p{L}, \\p{N} and \\s against the `regex` module's.

    (A one-off run also split "a<c>1 <c><c> " for every assigned <c> identically with HF's ByteLevel
    pre-tokenizer; it takes about 15 s, so the suite samples that comparison with hypothesis instead.)
    """
    import re

    classes = bpe.unicode_classes()
    text = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) not in ("Cs", "Cn"))
    for ours, theirs in (("L", r"\p{L}"), ("N", r"\p{N}"), ("s", r"\s")):
        assert re.findall(f"[{classes[ours]}]", text) == regex.findall(theirs, text), ours


def test_pretokenize_examples():
    assert bpe.pretokenize("Hello world's  end") == ["Hello", " world", "'s", " ", " end"]
    assert bpe.pretokenize("I'll pay 1234 ducats!!\n\nAll:") == ["I", "'ll", " pay", " 1234", " ducats", "!!", "\n", "\n", "All", ":"]
    text = data.tiny_shakespeare()[:20_000]
    assert "".join(bpe.pretokenize(text)) == text


def test_byte_table_is_gpt2s():
    assert bpe.bytes_to_unicode() == gpt2_bytes_to_unicode()
    assert set(bpe.bytes_to_unicode().values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert bpe.printable_token(b" the\n") == "Ġthe\u010a"
    # GPT-2's byte order is the order of the stand-in characters (its first 256 ids).
    assert list(bpe.gpt2_byte_order()) == sorted(range(256), key=lambda b: gpt2_bytes_to_unicode()[b])


# ---------------------------------------------------------------------------------------------
# Hand-checkable training


def test_sennrich_low_lower_newest_widest_by_hand():
    """Sennrich et al.'s toy corpus, one word per line (no end-of-word symbol: '\\n' is its own pre-token).

    Pair counts: e s 9 (newest 6 + widest 3) and s t 9 tie, broken by the older left token: e s, then es t (9).
    w e is now left only in lower (2), so l o and o w (7) come next: l o (l is older than o), then lo w.
    At 6: n e, e w and w est tie; e is the oldest left token: e w. Then n ew (6) beats ew est (6) because
    n is a byte and ew a merged token; then new est (6).
    """
    text = "\n".join(["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3)
    tok = bpe.train_bpe(text, 256 + 7)
    assert tok.merges == [(b"e", b"s"), (b"es", b"t"), (b"l", b"o"), (b"lo", b"w"), (b"e", b"w"), (b"n", b"ew"), (b"new", b"est")]
    assert tok.tokens("newest lowest") == [b"newest", b" ", b"low", b"est"]
    assert len(tok) == 263 and tok.vocab[262] == b"newest"


def test_ties_go_to_the_oldest_left_then_right_token():
    # Pairs b a, ' ' a and a b all occur once. a and b are printable (ranks 64, 65); space ranks 220.
    tok = bpe.train_bpe("ba ab", 259)
    assert tok.merges == [(b"a", b"b"), (b"b", b"a"), (b" ", b"ab")]
    assert tok.merges == hf_merges(hf_trained(["ba ab"], 259))
    assert bpe.token_rank(ord("!")) == 0 and bpe.token_rank(0) == 188 and bpe.token_rank(ord(" ")) == 220
    assert bpe.token_rank(256) == 256 and bpe.token_rank(258, n_special=2) == 256


def test_every_merge_is_the_most_frequent_pair_by_a_full_recount(shakespeare):
    """The incremental counts against a from-scratch recount before each of 44 merges."""
    text = shakespeare[0][:15_000]
    tok = bpe.train_bpe(text, 300)
    for k, (left, right) in enumerate(tok.merges):
        before = tok.truncated(256 + k)
        counts = bpe.pair_counts(text, before)
        top = max(counts.values())
        tied = [p for p, c in counts.items() if c == top]
        rank = lambda t: bpe.token_rank(before.token_to_id(t))  # noqa: E731
        assert (left, right) == min(tied, key=lambda p: (rank(p[0]), rank(p[1]))), k


def test_training_stops_when_no_pair_is_left():
    tok = bpe.train_bpe("aaaa", 1000)
    assert tok.merges == [(b"a", b"a"), (b"aa", b"aa")] and len(tok) == 258
    assert bpe.train_bpe("", 300).merges == []


def test_smaller_vocabularies_are_prefixes(shakespeare):
    text = shakespeare[0][:100_000]
    big = bpe.train_bpe(text, 600)
    small = bpe.train_bpe(text, 400)
    assert small.merges == big.merges[:144] and len(small) == 400
    assert big.truncated(400) == small
    # Each merge shortens the training text by its (positive) count: strictly fewer tokens.
    counts = [len(big.truncated(v).encode(text)) for v in (256, 300, 400, 500, 600)]
    assert counts[0] == len(text.encode()) and all(a > b for a, b in zip(counts, counts[1:]))


def test_special_tokens_are_cut_out_of_training_and_get_fixed_ids():
    text = f"the cat{EOT}the cats{EOT}" * 3
    tok = bpe.train_bpe(text, 270, special_tokens=[EOT])
    assert tok.special_token_ids == {EOT: 256} and tok.vocab[256] == EOT.encode()
    assert not any(b"|" in a + b or b"<" in a + b for a, b in tok.merges)  # nothing learned inside <|endoftext|>
    assert tok.encode(f"cat{EOT}") == tok.encode("cat") + [256]
    # HF's trainer does not cut special tokens out of its training text: it learns '<' '|' and the
    # like from them (checked here). Fed the pieces between them as separate sequences, it agrees.
    hf_raw = hf_merges(hf_trained([text], 270, [EOT]))
    assert (b"<", b"|") in hf_raw
    assert hf_merges(hf_trained([p for p in text.split(EOT) if p], 270, [EOT])) == tok.merges


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizers as the oracle


def test_tiny_shakespeare_merges_identical_to_hf(ours_1000, hf_1000):
    tok, seconds = ours_1000
    hf = hf_1000
    assert len(tok) == hf.get_vocab_size() == 1000
    assert tok.merges == hf_merges(hf)  # all 744, in order
    # Resource limit (CS336-style): a few seconds on one CPU core; generous for a loaded machine.
    assert seconds < 20, f"training to 1000 tokens took {seconds:.1f} s"


def test_held_out_encodings_identical_to_hf(shakespeare, ours_1000, hf_1000):
    tok, _ = ours_1000
    held_out = shakespeare[1]
    hf = hf_1000
    assert tok.tokens(held_out) == hf_tokens(hf, held_out)
    ids = tok.encode(held_out)
    assert tok.decode(ids) == held_out == hf.decode(hf.encode(held_out).ids)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["low", "lower", "newest", "widest", " ", "\n", "a", "aa", "ab", "é", "😀", "1", "12", "'s"]),
                max_size=40).map("".join),
       st.integers(min_value=256, max_value=300))
def test_merges_identical_to_hf_on_random_small_corpora(text, vocab_size):
    """Many ties here: this exercises the tie-break rule and the incremental counts against HF's trainer."""
    assert bpe.train_bpe(text, vocab_size).merges == hf_merges(hf_trained([text], vocab_size))


@settings(max_examples=150, deadline=None)
@given(st.one_of(unicode_text, tricky_text, st.lists(st.sampled_from([EOT, "<pad>", "the ", "\n"]), max_size=5).map("".join)))
def test_encoder_identical_to_hf_bpe_model_with_our_merges(small, text):
    hf = hf_from_ours(small)
    assert small.tokens(text) == hf_tokens(hf, text, small.special_tokens)


# ---------------------------------------------------------------------------------------------
# Round trips


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), tricky_text))
def test_decode_encode_round_trip(small, text):
    """Any text (surrogates aside) survives: emoji, NUL, combining marks, unassigned code points."""
    ids = small.encode(text)
    assert small.decode(ids) == text
    assert all(0 <= i < len(small) for i in ids)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), st.sampled_from([EOT, "<pad>"])), max_size=8))
def test_round_trip_with_special_tokens_inside(small, parts):
    text = "".join(parts)
    ids = small.encode(text)
    assert small.decode(ids) == text
    # Each special token typed in the text is one id, never split.
    expected = sum(p in (EOT, "<pad>") for p in parts)
    assert ids.count(256) + ids.count(257) == text.count(EOT) + text.count("<pad>") >= expected


def test_special_token_is_matched_before_pretokenization(small):
    ids = small.encode(f"Hello{EOT}world")
    assert ids[len(small.encode("Hello"))] == small.special_token_ids[EOT] == 256
    assert small.tokens(EOT) == [EOT.encode()]
    # Without the special token registered, the same characters are ordinary text.
    plain = bpe.BPETokenizer(small.merges)
    assert len(plain.encode(EOT)) > 1 and plain.decode(plain.encode(EOT)) == EOT


def test_decode_replaces_partial_utf8():
    tok = bpe.BPETokenizer([])
    ids = tok.encode("é")  # two bytes, c3 a9
    assert ids == [0xC3, 0xA9]
    assert tok.decode(ids[:1]) == "\ufffd" and tok.decode(ids) == "é"
    assert tok.decode_bytes(ids[:1]) == b"\xc3"


def test_save_load_round_trip(tmp_path, small, ours_1000, hf_1000):
    path = tmp_path / "bpe.json"
    small.save(path)
    loaded = bpe.BPETokenizer.load(path)
    assert loaded == small and loaded.vocab == small.vocab and loaded.special_token_ids == small.special_token_ids
    # The printable notation is HF's (and GPT-2's merges.txt): our saved merges read as its merge list.
    tok, _ = ours_1000
    theirs = json.loads(hf_1000.to_str())["model"]["merges"]
    assert tok.to_dict()["merges"] == [m.split(" ") if isinstance(m, str) else list(m) for m in theirs]


# ---------------------------------------------------------------------------------------------
# The vocabulary-size study


def test_compression_measures():
    text = "To be, or not to be: that is the question.\n"
    bytes_only = bpe.BPETokenizer([])
    assert bpe.bytes_per_token(bytes_only, text) == 1.0
    assert bpe.tokens_per_word(bytes_only, text) == len(text.encode()) / 10
    assert bpe.compression_ratio is bpe.bytes_per_token
    tok = bpe.train_bpe(text * 20, 300)
    n = len(tok.encode(text))
    assert bpe.bytes_per_token(tok, text) == len(text) / n and bpe.tokens_per_word(tok, text) == n / 10


def test_vocabulary_size_study(shakespeare):
    rows = bpe.vocabulary_size_study(shakespeare[0][:80_000], shakespeare[1][:20_000], [256, 300, 500])
    assert [r["vocab_size"] for r in rows] == [256, 300, 500]
    assert rows[0]["bytes_per_token"] == 1.0
    assert rows[0]["tokens"] > rows[1]["tokens"] > rows[2]["tokens"]
    assert all(r["tokens_per_word"] == pytest.approx(r["tokens"] / len(shakespeare[1][:20_000].split())) for r in rows)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_errors(small):
    with pytest.raises(ValueError, match=r"at least 256 \(the bytes\) \+ 1 \(special tokens\) = 257, got 256"):
        bpe.train_bpe("abc", 256, special_tokens=[EOT])
    with pytest.raises(ValueError, match="at least 256"):
        bpe.train_bpe("abc", 100)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        bpe.train_bpe("abc", 300.0)
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        bpe.train_bpe(b"abc", 300)
    with pytest.raises(TypeError, match="text must be a str, got list"):
        small.encode(["abc"])
    with pytest.raises(ValueError, match=r"token id 400 at position 1 is not in the vocabulary: valid ids are 0\.\.399"):
        small.decode([5, 400])
    with pytest.raises(ValueError, match=r"token id -1 .* valid ids are 0\.\.399"):
        small.decode([-1])
    with pytest.raises(TypeError, match="token ids must be ints"):
        small.decode([1.5])
    with pytest.raises(TypeError, match="ids must be a sequence"):
        small.decode("abc")
    with pytest.raises(ValueError, match=r"special tokens must be distinct; repeated: \['<\|endoftext\|>'\]"):
        bpe.train_bpe("abc", 300, special_tokens=[EOT, EOT])
    with pytest.raises(ValueError, match="must not be the empty string"):
        bpe.train_bpe("abc", 300, special_tokens=[""])
    with pytest.raises(TypeError, match="special_tokens must be a list of strings"):
        bpe.train_bpe("abc", 300, special_tokens=EOT)
    with pytest.raises(ValueError, match="lone surrogate U\\+D800"):
        small.encode("a\ud800")
    with pytest.raises(ValueError, match="text is empty"):
        bpe.tokens_per_word(small, "")
    with pytest.raises(ValueError, match="no words"):
        bpe.tokens_per_word(small, "   ")
    with pytest.raises(ValueError, match="neither is a byte nor was made by an earlier merge"):
        bpe.BPETokenizer([(b"ab", b"c")])
    with pytest.raises(TypeError, match="must be a pair of bytes"):
        bpe.BPETokenizer([("a", "b")])
    with pytest.raises(ValueError, match="is not a token of this vocabulary"):
        small.token_to_id(b"zzzzzzzz")
    assert small.token_to_id(EOT) == 256 and small.token_to_id(b"a") == 97
    with pytest.raises(ValueError, match="vocab_sizes is empty"):
        bpe.vocabulary_size_study("abc", "abc", [])
    with pytest.raises(ValueError, match="not an llmcourse BPE tokenizer record"):
        bpe.BPETokenizer.from_dict({"merges": []})


def test_module_is_torch_free():
    import subprocess

    code = "import sys, llmcourse.bpe; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


# ---------------------------------------------------------------------------------------------
# The benchmark


def test_benchmark_runs_and_agrees_with_hf(tmp_path):
    import subprocess

    from conftest import REPO_ROOT, tool_env

    out = tmp_path / "bpe.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_bpe.py", "--sizes", "300", "--chars", "50000", "--repeats", "1", "--json", str(out)],
        cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hardware:" in result.stdout and "merges and encodings identical" in result.stdout
    record = json.loads(out.read_text())
    assert record["results"][0]["same_merges"] and record["results"][0]["merges"] == 44
    bad = subprocess.run([sys.executable, "benchmarks/bench_bpe.py", "--sizes", "100"], cwd=REPO_ROOT,
                         env=tool_env(), capture_output=True, text=True)
    assert bad.returncode == 2 and "--sizes must all be at least 256" in bad.stderr


def test_recorded_benchmark_is_a_full_run_with_identical_results():
    from conftest import REPO_ROOT

    record = json.loads((REPO_ROOT / "benchmarks/results/bpe.json").read_text())
    assert record["corpus"] == "Tiny Shakespeare" and record["corpus_bytes"] == 1_115_394
    assert [r["vocab_size"] for r in record["results"]] == [500, 1000, 2000]
    assert all(r["same_merges"] and r["same_tokens"] and r["merges"] == r["vocab_size"] - 256 for r in record["results"])
