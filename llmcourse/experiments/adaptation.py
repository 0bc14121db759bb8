"""Part 5's adaptation table: one pretrained character GPT, one downstream task, every way of adapting it.

Two commands:

    python -m llmcourse.experiments.adaptation pretrain --out book/part5/results/adaptation_base.pt
    python -m llmcourse.experiments.adaptation compare --base book/part5/results/adaptation_base.pt \\
        --out book/part5/results/adaptation.json
    python -m llmcourse.experiments.adaptation compare --quick --base ... --out /tmp/a.json   # seconds, for the tests

``pretrain`` trains a 4-layer character GPT on Tiny Shakespeare with :func:`llmcourse.train.train`
(13 minutes on one thread of the course's 2-core CPU while it was shared; about 7 on an
idle core) and stores its weights in float16 (1.7 MB; float32
would be 3.3 MB), with the command, settings, losses and hardware beside them. The
model has biases (``bias=True``) so that BitFit has something to train.

``compare`` adapts that model to :func:`llmcourse.adaptation.genre_task` (is a 64-character
passage from a comedy or a tragedy? split by play) with full fine-tuning, LoRA,
BitFit, prompt tuning and a linear probe, and prompts it with 0, 1 and 2 labelled
examples, and records trainable parameters and held-out accuracy for each. Every
trained method gets the same steps and batches and runs once per seed in
``settings["train"]["seeds"]`` (three in :data:`FULL`); each row records the mean, the
per-seed values and their standard deviation, so a ranking can be told from seed noise.
The learning rates are fixed in :data:`FULL` (the usual values for each method, not tuned
on the test plays). The record says how long the run took (``seconds``).
Book chapter: *Adapting a pretrained model*.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from llmcourse import adaptation
from llmcourse.gpt import GPT
from llmcourse.hardware import hardware_description
from llmcourse.train import CharTokenizer, TrainConfig, load_model, train
from llmcourse.experiments import add_threads_option, apply_threads

# The pretrained base: nanoGPT's "baby GPT" shape (4 layers, 4 heads, d = 128) with a 256-character
# context, so that two labelled examples and a query fit into one prompt. Small batches and many steps:
# early in training the number of steps matters more than the characters per step (350 steps of 4,096
# characters reached only 2.37 nats per character). 1,000 steps of 2,048 characters (2 M characters,
# about two passes over the training text) take about 7 CPU-minutes on one thread.
PRETRAIN = TrainConfig(
    n_layer=4, n_head=4, n_embd=128, block_size=256, dropout=0.0, bias=True,
    batch_size=8, max_iters=1000, learning_rate=3e-3, min_lr=3e-4, warmup_iters=30,
    eval_interval=1000, eval_iters=10, device="cpu", dtype="float32", progress=False,
    out_dir="_build/adaptation-pretrain",
)  # fmt: skip

# The comparison's settings. Learning rates: full fine-tuning wants a small one (it moves every
# pretrained weight); the lightweight methods start from zero (LoRA's B) or move few numbers and
# take larger ones, as in their papers.
FULL = {
    "task": dict(length=64, train_per_class=1500, val_per_class=250, test_per_class=500, seed=0),
    "train": dict(steps=300, batch_size=32, seeds=(0, 1, 2)),
    "learning_rates": {"full fine-tuning": 3e-4, "LoRA": 2e-3, "BitFit": 3e-3, "prompt tuning": 1e-2},
    "lora": dict(rank=4, alpha=8.0),
    "prompt_tokens": 8,
    "probe_l2": 1e-3,
    "shots": (0, 1, 2),
    "prompt_queries": 500,
}  # fmt: skip
QUICK = {
    "task": dict(length=32, train_per_class=40, val_per_class=10, test_per_class=20, seed=0),
    "train": dict(steps=3, batch_size=8, seeds=(0, 1)),
    "learning_rates": FULL["learning_rates"],
    "lora": dict(rank=2, alpha=4.0),
    "prompt_tokens": 2,
    "probe_l2": 1e-3,
    "shots": (0, 1),
    "prompt_queries": 6,
}  # fmt: skip


def pretrain(out: str | Path, config: TrainConfig = PRETRAIN, command: str = "") -> dict[str, object]:
    """Pretrain with :func:`llmcourse.train.train`, then save the weights in float16 with their provenance."""
    result = train(config)
    model, tokenizer = load_model(config.out_dir)
    provenance = {
        "command": command,
        "train_config": asdict(config),
        "steps": result.steps,
        "characters_seen": result.steps * config.batch_size * config.block_size,
        "final_train_loss": result.evals[-1][1],
        "final_val_loss": result.evals[-1][2],
        "seconds": round(result.seconds, 1),
        "tokens_per_second": round(result.tokens_per_second),
        "hardware": result.hardware,
    }
    adaptation.save_pretrained(model, tokenizer, out, provenance)
    return provenance


def compare(model: GPT, tokenizer: CharTokenizer, settings: dict) -> dict[str, object]:
    """Adapt ``model`` to the genre task by every method; the record the command writes (without hardware)."""
    task = adaptation.genre_task(**settings["task"])
    train_ids, train_labels = task["train"].encode(tokenizer)
    val_ids, val_labels = task["validation"].encode(tokenizer)
    test_ids, test_labels = task["test"].encode(tokenizer)
    base_total = model.num_parameters()
    rows: list[dict[str, object]] = [{
        "method": "chance (one genre always)", "trainable": 0, "total": base_total, "fraction": 0.0,
        "validation_accuracy": 0.5, "test_accuracy": 0.5, "seconds": 0.0,
    }]  # fmt: skip
    train = settings["train"]
    seeds = train["seeds"]

    def summarise(method: str, runs: list[dict[str, float]], counts: tuple[int, int], **extra: object) -> None:
        """One row: the mean over the seeds' runs, each run listed, and the spread (std over seeds)."""
        trainable, total = counts
        row: dict[str, object] = {"method": method, "trainable": trainable, "total": total,
                                  "fraction": trainable / total, **extra}
        for key in runs[0]:
            values = np.array([run[key] for run in runs])
            row[key] = float(values.mean())
            row[key + "_per_seed"] = values.tolist()
            if key.endswith("accuracy"):
                row[key + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
        print(f"{method}: test accuracy {row['test_accuracy']:.3f} "
              f"(std {row.get('test_accuracy_std', 0.0):.3f} over {len(runs)} runs)", flush=True)

    # The trained methods: one run per seed (the seed sets the head's initialisation, LoRA's A and the
    # batches); the data split is the same for every seed, so the spread is that of training alone.
    for method in ("full fine-tuning", "LoRA", "BitFit", "prompt tuning"):
        runs = []
        for seed in seeds:
            start = time.perf_counter()
            classifier = adaptation.prepare_classifier(model, method, rank=settings["lora"]["rank"],
                                                       alpha=settings["lora"]["alpha"],
                                                       prompt_tokens=settings["prompt_tokens"], seed=seed)
            losses = adaptation.train_classifier(classifier, train_ids, train_labels, train["steps"],
                                                 settings["learning_rates"][method], train["batch_size"], seed)
            runs.append({
                "first_loss": losses[0], "last_loss": sum(losses[-20:]) / len(losses[-20:]),
                "validation_accuracy": adaptation.accuracy(classifier, val_ids, val_labels),
                "test_accuracy": adaptation.accuracy(classifier, test_ids, test_labels),
                "seconds": time.perf_counter() - start,
            })  # fmt: skip
        summarise(method, runs, adaptation.count_trainable(classifier), learning_rate=settings["learning_rates"][method])

    # The probe is a convex problem solved to convergence (L-BFGS from zero): every seed gives the same
    # head, so it runs once.
    start = time.perf_counter()
    classifier = adaptation.prepare_classifier(model, "linear probe", seed=seeds[0])
    classifier.head = adaptation.linear_probe(adaptation.extract_features(model, train_ids), train_labels,
                                              l2=settings["probe_l2"])
    summarise("linear probe", [{
        "validation_accuracy": adaptation.accuracy(classifier, val_ids, val_labels),
        "test_accuracy": adaptation.accuracy(classifier, test_ids, test_labels),
        "seconds": time.perf_counter() - start,
    }], adaptation.count_trainable(classifier), l2=settings["probe_l2"])  # fmt: skip

    # Prompting: k labelled training passages (balanced when k is even, random order), then the query;
    # one draw of demonstrations per seed.
    queries = task["test"].texts[: settings["prompt_queries"]]
    query_labels = np.array(task["test"].labels[: settings["prompt_queries"]])
    by_genre = [[t for t, y in zip(task["train"].texts, task["train"].labels, strict=True) if y == g] for g in (0, 1)]
    for k in settings["shots"]:
        runs = []
        for seed in seeds:
            start = time.perf_counter()
            rng = np.random.default_rng(seed)
            prompts = []
            for query in queries:
                genres = rng.permutation([i % 2 for i in range(k)]) if k % 2 == 0 else rng.integers(0, 2, size=k)
                demos = [(by_genre[g][rng.integers(len(by_genre[g]))], adaptation.GENRES[g]) for g in genres]
                prompts.append(adaptation.few_shot_prompt(demos, query))
            predicted = adaptation.prompt_predictions(model, tokenizer, prompts, adaptation.GENRES)
            runs.append({"test_accuracy": float((predicted == query_labels).mean()),
                         "predicted_tragedy": float(predicted.mean()), "seconds": time.perf_counter() - start})
        summarise(f"prompting, {k}-shot", runs, (0, base_total), test_examples=len(queries))
    sizes = {split: len(texts) for split, texts in task.items()}
    return {"settings": settings, "split": {s: list(p) for s, p in adaptation.GENRE_SPLIT.items()}, "sizes": sizes,
            "methods": rows}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llmcourse.experiments.adaptation",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pretrain", help="pretrain the base model and save it")
    p.add_argument("--out", required=True, help="where to write the checkpoint (.pt)")
    p.add_argument("--max_iters", type=int, default=PRETRAIN.max_iters)
    add_threads_option(p, default=1)
    c = commands.add_parser("compare", help="adapt the base model every way and record the table")
    c.add_argument("--base", required=True, help="the checkpoint written by pretrain")
    c.add_argument("--out", required=True, help="where to write the JSON record")
    c.add_argument("--quick", action="store_true", help="toy sizes: seconds, for the tests")
    add_threads_option(c, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    apply_threads(parser, args.threads)
    command = "python -m llmcourse.experiments.adaptation " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.command == "pretrain":
        config = TrainConfig(**(asdict(PRETRAIN) | {"max_iters": args.max_iters, "eval_interval": args.max_iters}))
        provenance = pretrain(args.out, config, command)
        print(json.dumps(provenance, indent=1))
        return 0
    start = time.perf_counter()
    model, tokenizer, provenance = adaptation.load_pretrained(args.base)
    settings = QUICK if args.quick else FULL
    record = compare(model, tokenizer, settings)
    record |= {
        "command": command, "quick": args.quick, "base": {"path": str(args.base), **provenance},
        "hardware": hardware_description(torch.device("cpu")), "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    for row in record["methods"]:
        print(f"{row['method']:<24} {row['trainable']:>8,} {row['fraction']:>8.4%} {row['test_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
