"""Benchmark: byte-level BPE training on Tiny Shakespeare, llmcourse (pure Python) vs Hugging Face tokenizers (Rust).

Both sides get the whole corpus as one string, GPT-2's pre-tokenizer (HF: ``ByteLevel``,
no prefix space) and all 256 bytes as the initial alphabet, and train to the same
vocabulary sizes. Times include pre-tokenization on both sides (also reported alone:
ours as ``pretoken_counts``, HF's as training to 256 tokens, i.e. no merges). The benchmark fails (exit 1) unless both learn exactly the same merges, in the
same order, and encode the corpus into the same tokens; it prints both sides' times,
the ratio and the hardware.

    python benchmarks/bench_bpe.py                          # sizes 500, 1000, 2000 (make bench)
    python benchmarks/bench_bpe.py --sizes 300 --chars 100000 --repeats 1   # a quick run
    python benchmarks/bench_bpe.py --json benchmarks/results/bpe.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from common import best_of, hardware

from llmcourse import bpe, data
from llmcourse.hardware import usable_cores


def run(sizes: list[int], chars: int | None, repeats: int, hf_threads: int) -> dict:
    # Rayon reads this once, when tokenizers first runs in parallel: set it before the import.
    os.environ["RAYON_NUM_THREADS"] = str(hf_threads)
    import tokenizers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    load_before = os.getloadavg()[0]
    text = data.tiny_shakespeare()
    if chars is not None:
        text = text[:chars]
    table = bpe.bytes_to_unicode()
    byte_of = {c: b for b, c in table.items()}

    def hf_train(vocab_size: int) -> Tokenizer:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator([text], trainer)
        return tokenizer

    def hf_merges(tokenizer: Tokenizer) -> list[tuple[bytes, bytes]]:
        merges = json.loads(tokenizer.to_str())["model"]["merges"]
        return [tuple(bytes(byte_of[c] for c in part) for part in (m.split(" ") if isinstance(m, str) else m))
                for m in merges]

    bpe.pretokenize("warm up")  # builds the pre-tokenizer's regex once (about 0.3 s), not part of training
    pretokenize_s, _ = best_of(repeats, lambda: bpe.pretoken_counts(text))
    hf_pretokenize_s, _ = best_of(repeats, lambda: hf_train(256))  # no merges: pre-tokenization and counting only
    rows = []
    for size in sizes:
        ours_s, ours = best_of(repeats, lambda: bpe.train_bpe(text, size))
        hf_s, hf = best_of(repeats, lambda: hf_train(size))
        ours_encode_s, ours_ids = best_of(1, lambda: bpe.BPETokenizer(ours.merges).encode(text))  # cold cache
        hf_encode_s, hf_encoding = best_of(1, lambda: hf.encode(text))
        same_tokens = [ours.vocab[i] for i in ours_ids] == [bytes(byte_of[c] for c in t) for t in hf_encoding.tokens]
        rows.append({
            "vocab_size": size,
            "merges": len(ours.merges),
            "llmcourse_train_s": ours_s,
            "hf_train_s": hf_s,
            "ratio": ours_s / hf_s,
            "llmcourse_encode_s": ours_encode_s,
            "hf_encode_s": hf_encode_s,
            "tokens": len(ours_ids),
            "bytes_per_token": len(text.encode()) / len(ours_ids),
            "same_merges": ours.merges == hf_merges(hf),
            "same_tokens": same_tokens,
        })
    return {
        "command": "python " + " ".join(sys.argv),
        "hardware": hardware(),
        "tokenizers_version": tokenizers.__version__,
        "hf_threads": hf_threads,
        "llmcourse_threads": 1,
        "corpus": f"Tiny Shakespeare{'' if chars is None else f', first {chars} characters'}",
        "corpus_bytes": len(text.encode()),
        "repeats": repeats,
        "llmcourse_pretokenize_s": pretokenize_s,
        "hf_pretokenize_s": hf_pretokenize_s,
        "results": rows,
        # Other work on the machine inflates both sides' times: a load well above the core count means noisy numbers.
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000], help="vocabulary sizes")
    parser.add_argument("--chars", type=int, default=None, help="use only the first N characters of the corpus")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs for each side")
    parser.add_argument("--hf-threads", type=int, default=usable_cores(), help="Rayon threads for HF (default: usable cores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if any(size < 256 for size in args.sizes):
        parser.error("--sizes must all be at least 256 (the byte alphabet)")
    if args.chars is not None and args.chars < 1000:
        parser.error("--chars must be at least 1000")
    if args.repeats < 1 or args.hf_threads < 1:
        parser.error("--repeats and --hf-threads must be at least 1")
    r = run(args.sizes, args.chars, args.repeats, args.hf_threads)
    print(f"byte-level BPE training on {r['corpus']} ({r['corpus_bytes']:,} bytes), best of {r['repeats']}")
    print(f"hardware: {r['hardware']}; tokenizers {r['tokenizers_version']} on {r['hf_threads']} thread(s), llmcourse on 1")
    load = r["load_average_1min"]
    print(f"load average (1 min) before/after: {load['before']:.2f}/{load['after']:.2f}")
    print(f"pre-tokenization and counting alone: llmcourse {r['llmcourse_pretokenize_s']:.3f} s, "
          f"HF {r['hf_pretokenize_s']:.3f} s (HF trained to 256 tokens, no merges)")
    print(f"{'vocab':>6}{'merges':>8}{'llmcourse (s)':>15}{'HF (s)':>9}{'ratio':>8}"
          f"{'encode ours (s)':>17}{'encode HF (s)':>15}{'bytes/token':>13}  same merges, tokens")
    for row in r["results"]:
        print(f"{row['vocab_size']:>6}{row['merges']:>8}{row['llmcourse_train_s']:>15.3f}{row['hf_train_s']:>9.3f}"
              f"{row['ratio']:>8.2f}{row['llmcourse_encode_s']:>17.3f}{row['hf_encode_s']:>15.3f}"
              f"{row['bytes_per_token']:>13.3f}  {row['same_merges']}, {row['same_tokens']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    if not all(row["same_merges"] and row["same_tokens"] for row in r["results"]):
        print("FAIL: the two tokenizers differ", file=sys.stderr)
        return 1
    print("merges and encodings identical at every size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
