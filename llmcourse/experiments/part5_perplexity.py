"""Part 5's perplexity table: the course's models on ONE held-out text, per token and per word.

Every model is trained on the training lines of the book's standard split
(``data.shakespeare_split()``) and scored on the same held-out text: the 3,278 held-out
lines, lower-cased and ``wordpunct``-tokenized, written as text with one space between
tokens and a newline at the end of each line. The word models predict its 27,982
word-level tokens (24,704 words and punctuation marks, and 3,278 end-of-line symbols
``</s>``); the character models predict its 108,219 characters (each ``</s>`` is the
character ``\\n``). Both describe the same string, so the total negative log-likelihood
-ln P(text) of every model is comparable, and dividing it by one shared count gives
comparable numbers:

    per-word perplexity = exp(NLL / 27,982),   bits per character = NLL / (108,219 ln 2).

Per-token perplexities are not comparable: a character model divides by ~3.9 times
as many tokens. One caveat stays: the word models have a closed vocabulary and predict
``<unk>`` for the 1,002 held-out words they never saw (3.6 %), an easier event than
spelling the word out, which the character models must do; the word models' per-word
numbers are therefore somewhat optimistic.

The models: the word-level Kneser-Ney trigram (refitted; it must reproduce Part 3's
number), the rest of Part 3's table (read from ``book/part3/results/perplexity.json``,
not retrained), a character 7-gram with Kneser-Ney smoothing, and two small GPTs
(:mod:`llmcourse.gpt`): one over the 10,896 words of Part 3's vocabulary and one over
the 39 characters, each trained for a few minutes of CPU and evaluated with
:func:`llmcourse.evaluation.token_log_probs` in half-overlapping windows. Book chapter:
*Pretraining and evaluation*, "Perplexity across the course's models".

    python -m llmcourse.experiments.part5_perplexity --out book/part5/results/perplexity.json --threads 1
    python -m llmcourse.experiments.part5_perplexity --quick --part3 none --out /tmp/p5.json   # seconds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from llmcourse import data, evaluation, ffnlm, ngram, rnnlm
from llmcourse.gpt import GPT
from llmcourse.hardware import hardware_description
from llmcourse.sizing import TransformerConfig
from llmcourse.train import CharTokenizer, TrainConfig, get_batch, learning_rate
from llmcourse.experiments import add_threads_option, apply_threads

PART3_RECORD = Path("book/part3/results/perplexity.json")

# Sized for about five minutes of one CPU core in all; the word GPT's cost is dominated by its
# 10,896-way output layer, the character GPT's by its blocks.
FULL = {
    "char_gpt": dict(n_layer=3, n_head=4, n_embd=96, block_size=96, dropout=0.0,
                     batch_size=16, max_iters=1500, learning_rate=2e-3, warmup_iters=50),
    "word_gpt": dict(n_layer=2, n_head=4, n_embd=64, block_size=64, dropout=0.1,
                     batch_size=16, max_iters=450, learning_rate=3e-3, warmup_iters=30),
    "char_ngram_order": 7,
}  # fmt: skip
QUICK = {
    "char_gpt": dict(n_layer=1, n_head=2, n_embd=32, block_size=32, dropout=0.0,
                     batch_size=8, max_iters=60, learning_rate=3e-3, warmup_iters=5),
    "word_gpt": dict(n_layer=1, n_head=2, n_embd=16, block_size=16, dropout=0.0,
                     batch_size=8, max_iters=20, learning_rate=3e-3, warmup_iters=5),
    "char_ngram_order": 4,
}  # fmt: skip


def as_text(lines: list[list[str]]) -> str:
    """The tokenized lines as one string: tokens joined by spaces, each line ended by a newline.

    Splitting it on whitespace gives back the tokens, and its newlines are the ``</s>``
    symbols, so a character model of this string and a word model of the tokens describe
    the same event.
    """
    return "".join(" ".join(line) + "\n" for line in lines if line)


def train_gpt(ids: torch.Tensor, vocab_size: int, settings: dict, seed: int = 0) -> tuple[GPT, float, list[float]]:
    """A GPT trained on random windows of ``ids`` with AdamW and the course trainer's warm-up + cosine schedule.

    Returns the model, the training seconds and the loss every 50 steps.
    """
    s = dict(settings)
    config = TransformerConfig(n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"],
                               block_size=s["block_size"], vocab_size=vocab_size, dropout=s["dropout"])  # fmt: skip
    schedule = TrainConfig(max_iters=s["max_iters"], learning_rate=s["learning_rate"], min_lr=s["learning_rate"] / 10,
                           warmup_iters=s["warmup_iters"])  # fmt: skip
    torch.manual_seed(seed)
    model = GPT(config)
    optimizer = model.configure_optimizer(weight_decay=0.1, learning_rate=s["learning_rate"], betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    for step in range(s["max_iters"]):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, schedule)
        x, y = get_batch(ids, s["batch_size"], s["block_size"], generator)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0 or step == s["max_iters"] - 1:
            losses.append(round(loss.item(), 4))
    return model.eval(), time.perf_counter() - start, losses


def _row(name: str, family: str, tokenizer: str, total_nll: float, tokens: int, split: dict, **extra: object) -> dict:
    result = evaluation.Perplexity(total_nll, tokens)
    return {
        "name": name, "family": family, "tokenizer": tokenizer, "tokens": tokens, "total_nll": total_nll,
        "perplexity_per_token": result.perplexity, "bits_per_token": result.bits_per_token,
        "perplexity_per_word": result.per(split["words"]), "bits_per_character": result.bits_per(split["characters"]),
        "bits_per_byte": result.bits_per(split["bytes"]), **extra,
    }  # fmt: skip


def run(quick: bool = False, part3: Path | None = PART3_RECORD) -> dict:
    """Train and score every model; return the record that the command writes as JSON."""
    start, cpu_start = time.perf_counter(), time.process_time()
    train, test = data.shakespeare_split()
    if quick:
        train, test = train[:3000], test[:200]
    settings = QUICK if quick else FULL
    train_text, test_text = as_text(train), as_text(test)
    split = {
        "train_lines": len(train), "test_lines": len(test),
        "words": sum(len(line) + 1 for line in test if line),  # word-level tokens, </s> included, as Part 3 counts
        "characters": len(test_text), "bytes": len(test_text.encode("utf-8")),
    }  # fmt: skip
    rows: list[dict] = []

    # Word-level: the Kneser-Ney trigram, refitted (a check that this is Part 3's held-out text).
    seconds = time.perf_counter()
    kn = ngram.KneserNey(3).fit(train)
    log_probs = kn.log_probabilities(test)
    seconds = time.perf_counter() - seconds
    vocab = ffnlm.ngram_vocabulary(train, 3)
    split["word_vocabulary"] = len(vocab)
    split["unk_words"] = int(sum(w not in vocab for line in test for w in line))
    rows.append(_row("Kneser-Ney trigram (words)", "n-gram", "word", float(-log_probs.sum()), int(log_probs.size), split,
                     train_seconds=seconds))  # fmt: skip

    # Part 3's other models, from its record: same text, same tokens, so total NLL = tokens x ln(perplexity).
    if part3 is not None and not quick:
        record = json.loads(Path(part3).read_text())
        if record["split"]["held_out_tokens"] != split["words"]:
            raise ValueError(f"{part3} scored {record['split']['held_out_tokens']} tokens, this split has {split['words']}")
        for model in record["models"]:
            if model["name"] == "Kneser-Ney trigram":
                if not math.isclose(model["perplexity"], rows[0]["perplexity_per_token"], rel_tol=1e-9):
                    raise ValueError("the refitted Kneser-Ney trigram does not reproduce Part 3's perplexity")
                continue
            rows.append(_row(f"{model['name']} (words)", model["family"], "word",
                             model["tokens"] * math.log(model["perplexity"]), model["tokens"], split,
                             source=str(part3)))  # fmt: skip

    # Word-level GPT over Part 3's vocabulary, on the same token stream as the LSTM.
    s = settings["word_gpt"]
    train_ids = torch.from_numpy(rnnlm.token_stream(train, vocab)).long()
    test_ids = rnnlm.token_stream(test, vocab)  # starts with <s>: the context of the first word
    model, seconds, losses = train_gpt(train_ids, len(vocab), s)
    result = evaluation.evaluate_perplexity(model, test_ids, stride=s["block_size"] // 2)
    rows.append(_row("GPT (words)", "neural", "word", result.total_nll, result.tokens, split, train_seconds=seconds,
                     parameters=model.num_parameters(), settings=s, training_losses=losses))  # fmt: skip

    # Character-level: a Kneser-Ney n-gram over characters (each line a "sentence"; </s> is the newline).
    order = settings["char_ngram_order"]
    seconds = time.perf_counter()
    char_kn = ngram.KneserNey(order).fit([list(" ".join(line)) for line in train if line])
    log_probs = char_kn.log_probabilities([list(" ".join(line)) for line in test if line])
    seconds = time.perf_counter() - seconds
    rows.append(_row(f"Kneser-Ney {order}-gram (characters)", "n-gram", "character", float(-log_probs.sum()),
                     int(log_probs.size), split, train_seconds=seconds))  # fmt: skip

    # Character-level GPT; the held-out text is preceded by one newline, the end of the line before it.
    s = settings["char_gpt"]
    tokenizer = CharTokenizer.from_text(train_text)
    split["alphabet"] = len(tokenizer.chars)
    model, seconds, losses = train_gpt(torch.from_numpy(tokenizer.encode(train_text)), len(tokenizer.chars), s)
    result = evaluation.evaluate_perplexity(model, tokenizer.encode("\n" + test_text), stride=s["block_size"] // 2)
    rows.append(_row("character GPT", "neural", "character", result.total_nll, result.tokens, split,
                     train_seconds=seconds, parameters=model.num_parameters(), settings=s, training_losses=losses))  # fmt: skip

    for row in rows:  # every model scored the whole text: as many tokens as its tokenizer makes of it
        expected = split["words"] if row["tokenizer"] == "word" else split["characters"]
        if row["tokens"] != expected:
            raise ValueError(f"{row['name']} scored {row['tokens']} tokens, expected {expected}")
    return {
        "command": "python -m llmcourse.experiments.part5_perplexity " + " ".join(sys.argv[1:]),
        "hardware": hardware_description(torch.device("cpu")),
        "quick": quick,
        "split": split,
        "evaluation": "teacher forcing; GPTs in windows of block_size tokens with stride block_size / 2",
        "models": rows,
        "total_seconds": time.perf_counter() - start,
        "total_cpu_seconds": time.process_time() - cpu_start,
        "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON record")
    parser.add_argument("--quick", action="store_true", help="a small slice and tiny models (seconds): a smoke test")
    parser.add_argument("--part3", default=str(PART3_RECORD),
                        help="Part 3's record to include ('none' to leave it out; always left out with --quick)")
    add_threads_option(parser)
    args = parser.parse_args(argv)
    apply_threads(parser, args.threads)
    record = run(args.quick, None if args.part3 == "none" else Path(args.part3))
    width = max(len(r["name"]) for r in record["models"])
    print(f"{'model':<{width}}  {'tokens':>7}  {'PP/token':>9}  {'PP/word':>9}  {'bits/char':>9}")
    for r in record["models"]:
        print(f"{r['name']:<{width}}  {r['tokens']:7d}  {r['perplexity_per_token']:9.2f}  "
              f"{r['perplexity_per_word']:9.2f}  {r['bits_per_character']:9.3f}")  # fmt: skip
    print(f"total {record['total_seconds']:.0f} s ({record['total_cpu_seconds']:.0f} s of CPU) on {record['hardware']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
