"""Part 3's perplexity table: n-gram models against the feed-forward and recurrent neural LMs.

Every model is trained on the book's standard split (``data.shakespeare_split()``)
and scored on the same held-out tokens: the N = 27,982 words and ``</s>`` of the
3,278 held-out lines, over the same 10,896-token vocabulary (every training word,
``<s>``, ``</s>``, ``<unk>``). The n-gram models pad each line with ``<s>``; the
FFNLM uses the same windows (``ffnlm.make_windows``); the RNN reads the lines as
one stream (``rnnlm.token_stream``) and predicts the same tokens. So the
perplexities are directly comparable. Book chapter: *Neural language models: feed-forward and recurrent*,
"How good are neural language models?".

    python -m llmcourse.experiments.part3_perplexity --out book/part3/results/perplexity.json --threads 1
    python -m llmcourse.experiments.part3_perplexity --quick --out /tmp/p3.json   # seconds, for the tests

About 1,002 held-out tokens (3.6 %) are ``<unk>``: words the training text never
contains. No model sees ``<unk>`` as a target in training, so all give it a small
probability; the JSON also reports each model's perplexity on the other tokens.

Besides each model alone, the table has the mixture 0.5 P_neural + 0.5 P_KN
(Bengio et al. 2003 mixed their network with a trigram model the same way); the
weight 0.5 is fixed in advance, not tuned on the held-out text.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from llmcourse import data, ffnlm, ngram, rnnlm
from llmcourse.hardware import cpu_model, default_device, usable_cores
from llmcourse.information import perplexity_from_log_probs
from llmcourse.experiments import add_threads_option, apply_threads

MIXTURE_WEIGHT = 0.5  # of the neural model in the mixture with Kneser-Ney; fixed, not tuned on test data

# Sizes chosen so the full run takes under about 10 minutes on 2 CPU cores; the output
# layer (hidden x 10,896) dominates the cost of both networks.
FULL = {
    "ffnlm": dict(context_size=3, embedding_dim=64, hidden_dim=128, dropout=0.2,
                  epochs=3, batch_size=512, learning_rate=2e-3),
    "lstm": dict(embedding_dim=64, hidden_dim=128, num_layers=1, dropout=0.2,
                 epochs=3, batch_size=32, bptt=35, learning_rate=3e-3, clip_norm=1.0),
}  # fmt: skip
QUICK = {
    "ffnlm": dict(context_size=2, embedding_dim=8, hidden_dim=16, dropout=0.0,
                  epochs=1, batch_size=256, learning_rate=3e-3),
    "lstm": dict(embedding_dim=8, hidden_dim=16, num_layers=1, dropout=0.0,
                 epochs=1, batch_size=8, bptt=20, learning_rate=3e-3, clip_norm=1.0),
}  # fmt: skip


def hardware(device: str) -> dict[str, str | int]:
    """What the numbers were measured on."""
    info: dict[str, str | int] = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores_usable": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _scores(log_probs: np.ndarray, known: np.ndarray) -> dict[str, float | int]:
    return {
        "perplexity": perplexity_from_log_probs(log_probs),
        "perplexity_in_vocabulary": perplexity_from_log_probs(log_probs[known]),
        "mean_log_prob_unk": float(log_probs[~known].mean()) if np.any(~known) else float("nan"),
        "tokens": int(len(log_probs)),
    }


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run(quick: bool = False, device: str | None = None, progress: bool = False) -> dict:
    """Train and score every model; return the record that the command writes as JSON."""
    device = device or default_device()
    start, cpu_start = time.perf_counter(), time.process_time()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    train, test = data.shakespeare_split()
    if quick:
        train, test = train[:2000], test[:300]
    settings = QUICK if quick else FULL
    vocab = ffnlm.ngram_vocabulary(train, 3)
    targets = np.array([w for s in test if s for w in s + ["</s>"]], dtype=object)
    known = np.array([w in vocab for w in targets])
    rows: list[dict] = []
    log_probs: dict[str, np.ndarray] = {}

    ngrams = {
        "Laplace trigram": lambda: ngram.Laplace(3),
        "add-0.01 trigram": lambda: ngram.AddK(3, 0.01),
        "Jelinek-Mercer trigram": lambda: ngram.Interpolated(3, [0.1, 0.3, 0.6]),
        "Kneser-Ney bigram": lambda: ngram.KneserNey(2),
        "Kneser-Ney trigram": lambda: ngram.KneserNey(3),
        "Kneser-Ney 4-gram": lambda: ngram.KneserNey(4),
    }
    for name, make in ngrams.items():
        seconds, model = _timed(lambda: make().fit(train))
        assert set(model.vocab.tokens) == set(vocab.tokens)  # the same event space (ids differ with the order)
        log_probs[name] = model.log_probabilities(test)
        rows.append({"name": name, "family": "n-gram", **_scores(log_probs[name], known), "train_seconds": seconds})

    # Feed-forward LM (Bengio et al. 2003): windows of the same padded sentences.
    s = dict(settings["ffnlm"])
    train_windows = ffnlm.make_windows(train, vocab, s["context_size"])
    test_windows = ffnlm.make_windows(test, vocab, s["context_size"])
    model = ffnlm.FeedForwardLM(len(vocab), s["context_size"], s["embedding_dim"], s["hidden_dim"], dropout=s["dropout"])
    seconds, history = _timed(lambda: ffnlm.train(model, train_windows, test_windows, epochs=s["epochs"],
                                                  batch_size=s["batch_size"], learning_rate=s["learning_rate"],
                                                  device=device, progress=progress))  # fmt: skip
    name = f"FFNLM ({s['context_size']} words of context)"
    log_probs[name] = ffnlm.log_probabilities(model, test_windows)
    rows.append({"name": name, "family": "neural", **_scores(log_probs[name], known), "train_seconds": seconds,
                 "parameters": sum(p.numel() for p in model.parameters()), "settings": s,
                 "history": history.as_dict()})  # fmt: skip

    # LSTM LM: the sentences as one stream, truncated BPTT.
    s = dict(settings["lstm"])
    train_stream, test_stream = rnnlm.token_stream(train, vocab), rnnlm.token_stream(test, vocab)
    model = rnnlm.RNNLanguageModel(len(vocab), s["embedding_dim"], s["hidden_dim"], "lstm", s["num_layers"], s["dropout"])
    seconds, history = _timed(lambda: rnnlm.train(model, train_stream, test_stream, epochs=s["epochs"],
                                                  batch_size=s["batch_size"], bptt=s["bptt"],
                                                  learning_rate=s["learning_rate"], clip_norm=s["clip_norm"],
                                                  device=device, progress=progress))  # fmt: skip
    name = "LSTM"
    log_probs[name] = rnnlm.log_probabilities(model, test_stream)
    rows.append({"name": name, "family": "neural", **_scores(log_probs[name], known), "train_seconds": seconds,
                 "parameters": sum(p.numel() for p in model.parameters()), "settings": s,
                 "history": history.as_dict()})  # fmt: skip

    # Mixtures with the Kneser-Ney trigram, token by token (both score the same tokens in the same order).
    for neural in (n for n in list(log_probs) if n.startswith(("FFNLM", "LSTM"))):
        mixed = np.logaddexp(np.log(MIXTURE_WEIGHT) + log_probs[neural],
                             np.log(1 - MIXTURE_WEIGHT) + log_probs["Kneser-Ney trigram"])  # fmt: skip
        rows.append({"name": f"{neural} + Kneser-Ney trigram, mixed 50/50", "family": "mixture", **_scores(mixed, known)})

    return {
        "command": "python -m llmcourse.experiments.part3_perplexity " + " ".join(sys.argv[1:]),
        "hardware": hardware(str(device)),
        "quick": quick,
        "split": {
            "train_sentences": len(train),
            "test_sentences": len(test),
            "vocabulary": len(vocab),
            "held_out_tokens": int(len(targets)),
            "held_out_unk_tokens": int((~known).sum()),
        },
        "mixture_weight": MIXTURE_WEIGHT,
        "models": rows,
        "total_seconds": time.perf_counter() - start,
        # Wall time depends on what else the machine runs; CPU time and the load average
        # (processes wanting a core, averaged over a minute) say how much of that was waiting.
        "total_cpu_seconds": time.process_time() - cpu_start,
        "load_average": {"start": load_before, "end": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON record")
    parser.add_argument("--quick", action="store_true", help="a small slice and tiny models (seconds): a smoke test")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--progress", action="store_true", help="show tqdm progress bars")
    add_threads_option(parser)
    args = parser.parse_args(argv)
    apply_threads(parser, args.threads)
    record = run(args.quick, args.device, args.progress)
    width = max(len(r["name"]) for r in record["models"])
    print(f"{'model':<{width}}  {'perplexity':>10}  {'in-vocab PP':>11}  {'train (s)':>9}")
    for r in record["models"]:
        seconds = f"{r['train_seconds']:9.1f}" if "train_seconds" in r else " " * 9
        print(f"{r['name']:<{width}}  {r['perplexity']:10.2f}  {r['perplexity_in_vocabulary']:11.2f}  {seconds}")
    print(f"{record['split']['held_out_tokens']} held-out tokens; total {record['total_seconds']:.0f} s "
          f"({record['total_cpu_seconds']:.0f} s of CPU) on {record['hardware']['cpu']} ({record['hardware']['device']}, "
          f"{record['hardware']['torch_threads']} threads)")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
