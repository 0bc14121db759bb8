"""Benchmark: an order-3 word model on Tiny Shakespeare, llmcourse vs NLTK's nltk.lm.

Both sides get the same tokenized sentences (the book's standard split: non-empty
lines, lower-cased, wordpunct-tokenized, first 90 % for training) and NLTK's padding
convention, fit a Laplace trigram and score the held-out 10 %. The benchmark fails
(exit 1) unless both give the same perplexity; it prints both sides' times, the
ratio and the hardware.

    python benchmarks/bench_ngram.py                 # full corpus (make bench)
    python benchmarks/bench_ngram.py --lines 3000    # a quick run on a prefix
    python benchmarks/bench_ngram.py --json benchmarks/results/ngram.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from common import best_of, hardware

from llmcourse import data, ngram


def run(lines: int | None, order: int, repeats: int) -> dict:
    from nltk import __version__ as nltk_version
    from nltk.lm import Laplace as NltkLaplace
    from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline
    from nltk.util import ngrams

    text = data.tiny_shakespeare()
    if lines is not None:
        text = "\n".join(text.splitlines()[:lines])
    start = time.perf_counter()
    train, test = data.train_test_split(data.sentences(text), 0.9)
    tokenize_s = time.perf_counter() - start

    def nltk_fit():
        model = NltkLaplace(order)
        model.fit(*padded_everygram_pipeline(order, train))
        return model

    def nltk_score(model):
        return model.perplexity([g for s in test for g in ngrams(pad_both_ends(s, n=order), order)])

    nltk_fit_s, nltk_model = best_of(1 if repeats > 1 else repeats, nltk_fit)  # seconds per run: once is plenty
    nltk_score_s, nltk_pp = best_of(1, lambda: nltk_score(nltk_model))

    ours_fit_s, ours_model = best_of(repeats, lambda: ngram.Laplace(order, nltk_padding=True).fit(train))
    ours_score_s, ours_pp = best_of(repeats, lambda: ours_model.perplexity(test))
    ours_total_s, _ = best_of(repeats, lambda: ngram.Laplace(order, nltk_padding=True).fit(train).perplexity(test))

    return {
        "command": "python " + " ".join(sys.argv),
        "hardware": hardware(),
        "nltk_version": nltk_version,
        "corpus": f"Tiny Shakespeare{'' if lines is None else f', first {lines} lines'}",
        "train_sentences": len(train),
        "test_sentences": len(test),
        "order": order,
        "tokenize_s": tokenize_s,
        "nltk": {"fit_s": nltk_fit_s, "score_s": nltk_score_s, "total_s": nltk_fit_s + nltk_score_s, "perplexity": nltk_pp},
        "llmcourse": {"fit_s": ours_fit_s, "score_s": ours_score_s, "total_s": ours_total_s, "perplexity": ours_pp},
        "speedup": (nltk_fit_s + nltk_score_s) / ours_total_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=None, help="use only the first N lines of the corpus")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="best of N runs for llmcourse (NLTK runs once)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.lines is not None and args.lines < 20:
        parser.error("--lines must be at least 20 so that both splits are non-empty")
    r = run(args.lines, args.order, args.repeats)
    print(f"Laplace {r['order']}-gram on {r['corpus']}: {r['train_sentences']} training / {r['test_sentences']} held-out lines")
    print(f"hardware: {r['hardware']}; NLTK {r['nltk_version']}")
    print(f"tokenization (shared by both, not timed below): {r['tokenize_s']:.3f} s")
    print(f"{'':12}{'fit (s)':>10}{'score (s)':>11}{'total (s)':>11}{'perplexity':>14}")
    for name in ("nltk", "llmcourse"):
        side = r[name]
        print(f"{name:12}{side['fit_s']:>10.3f}{side['score_s']:>11.3f}{side['total_s']:>11.3f}{side['perplexity']:>14.6f}")
    print(f"speed-up, end to end (fit + score): {r['speedup']:.1f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    if not math.isclose(r["nltk"]["perplexity"], r["llmcourse"]["perplexity"], rel_tol=1e-9):
        print("FAIL: the two perplexities differ", file=sys.stderr)
        return 1
    print("perplexities identical (relative difference < 1e-9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
