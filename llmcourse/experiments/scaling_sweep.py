"""A scaling sweep: GPTs of six sizes trained on the same number of Tiny Shakespeare characters.

Every model is trained by :func:`llmcourse.train.train` with the same settings and the same
token budget D (so the sweep measures loss against model size N at fixed data, Kaplan et
al.'s L(N) before convergence); the record holds each model's parameters (all, and Kaplan's
non-embedding N), its training FLOPs from :func:`llmcourse.sizing.training_flops`, the
tokens it saw, its final training and validation loss (nats per character) and its time,
plus the command, the hardware and the settings. The chapter fits L = c N^k to the
validation losses. Book chapter: *Scaling laws and what training costs*.

    python -m llmcourse.experiments.scaling_sweep --out book/part5/results/scaling_sweep.json --threads 1
    python -m llmcourse.experiments.scaling_sweep --device cuda --out scaling_sweep_gpu.json   # larger models, more tokens
    python -m llmcourse.experiments.scaling_sweep --quick --out /tmp/sweep.json               # seconds, for the tests

The CPU sweep (about 10k to 1.2M non-embedding parameters, 2^19 tokens each) takes about
five minutes on one core; the GPU sweep (100k to 25M parameters, 2^23 tokens) is sized for
a single modern GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


from llmcourse.experiments.part3_perplexity import hardware
from llmcourse.hardware import default_device
from llmcourse.scaling import fit_power_law
from llmcourse.sizing import parameter_counts, training_flops
from llmcourse.train import TrainConfig, train
from llmcourse.experiments import add_threads_option, apply_threads


@dataclass(frozen=True)
class SweepSettings:
    """What every model of a sweep shares: the token budget and the optimiser settings."""

    sizes: tuple[tuple[int, int, int], ...]  # (n_layer, n_embd, n_head) per model
    tokens: int  # training tokens per model (rounded down to whole steps)
    block_size: int = 64
    batch_size: int = 32
    learning_rate: float = 3e-3
    min_lr: float = 3e-4
    warmup_fraction: float = 0.05
    dropout: float = 0.0  # the CPU budget is well under one epoch: nothing to regularise
    eval_iters: int = 50  # batches per split in the final loss estimate
    seed: int = 1337


# Non-embedding parameters 12k, 38k, 99k, 231k, 590k, 1.23M: about x2.5 apart.
CPU = SweepSettings(sizes=((1, 32, 2), (2, 40, 2), (2, 64, 4), (3, 80, 4), (3, 128, 4), (4, 160, 4)), tokens=2**19)
# 99k to 25M on a GPU: 2^23 tokens is about 9 passes over the 1M training characters, so dropout 0.1.
GPU = SweepSettings(sizes=((2, 64, 4), (2, 128, 4), (4, 192, 6), (4, 256, 8), (6, 384, 6), (8, 512, 8)),
                    tokens=2**23, block_size=256, batch_size=64, learning_rate=1e-3, min_lr=1e-4, dropout=0.1,
                    eval_iters=100)
QUICK = SweepSettings(sizes=((1, 16, 2), (1, 32, 2)), tokens=4 * 8 * 16, block_size=16, batch_size=8,
                      learning_rate=1e-2, min_lr=1e-3, eval_iters=2)


def train_config(settings: SweepSettings, size: tuple[int, int, int], device: str, out_dir: str) -> TrainConfig:
    """The :class:`TrainConfig` of one model of the sweep: evaluate only at the start and the end."""
    n_layer, n_embd, n_head = size
    steps = settings.tokens // (settings.batch_size * settings.block_size)
    if steps < 1:
        raise ValueError(f"tokens ({settings.tokens}) must cover at least one step of "
                         f"{settings.batch_size} x {settings.block_size} tokens")
    return TrainConfig(
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=settings.block_size, dropout=settings.dropout,
        batch_size=settings.batch_size, max_iters=steps, learning_rate=settings.learning_rate,
        min_lr=settings.min_lr, warmup_iters=max(1, round(settings.warmup_fraction * steps)),
        eval_interval=steps, eval_iters=settings.eval_iters, log_interval=max(1, steps // 4), out_dir=out_dir,
        save_checkpoints=False, device=device, seed=settings.seed, progress=False,
    )  # fmt: skip


def run_sweep(settings: SweepSettings, device: str | None = None, out_dir: str = "_build/scaling_sweep") -> dict:
    """Train every size of ``settings`` and return the rows of the record (one per model) and the fit."""
    device = device or default_device()
    rows = []
    for size in settings.sizes:
        config = train_config(settings, size, device, out_dir)
        model_config = config.model_config(65)  # Tiny Shakespeare's 65 characters
        counts = parameter_counts(model_config)
        cpu_start = time.process_time()
        result = train(config)
        step, train_loss, val_loss, _ = result.evals[-1]
        tokens = step * config.batch_size * config.block_size
        rows.append({
            "n_layer": config.n_layer, "n_embd": config.n_embd, "n_head": config.n_head,
            "parameters": counts.total, "non_embedding_parameters": counts.non_embedding,
            "steps": step, "tokens": tokens,
            "training_flops": training_flops(model_config, tokens, config.block_size),
            "six_n_d": 6.0 * counts.non_embedding * tokens,
            "train_loss": train_loss, "val_loss": val_loss, "initial_val_loss": result.evals[0][2],
            "seconds": result.seconds, "cpu_seconds": time.process_time() - cpu_start,
            "tokens_per_second": result.tokens_per_second, "mfu": result.mfu,
        })  # fmt: skip
    n = [r["non_embedding_parameters"] for r in rows]
    fit = fit_power_law(n, [r["val_loss"] for r in rows])
    return {"models": rows, "fit": {"form": "val_loss = constant * N^exponent (N: non-embedding parameters)",
                                    "exponent": fit.exponent, "constant": fit.constant}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON record")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--sizes", choices=["cpu", "gpu"], default=None,
                        help="which sweep (default: gpu on a GPU, cpu otherwise)")
    parser.add_argument("--tokens", type=int, default=None, help="override the token budget per model")
    parser.add_argument("--quick", action="store_true", help="two tiny models, a few steps (seconds): a smoke test")
    add_threads_option(parser)
    args = parser.parse_args(argv)
    apply_threads(parser, args.threads)
    device = args.device or default_device()
    name = "quick" if args.quick else (args.sizes or ("gpu" if device.startswith("cuda") else "cpu"))
    settings = {"quick": QUICK, "cpu": CPU, "gpu": GPU}[name]
    if args.tokens is not None:
        if args.tokens < 1:
            parser.error("--tokens must be at least 1")
        settings = SweepSettings(**(asdict(settings) | {"tokens": args.tokens}))
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        sweep = run_sweep(settings, device)
    except ValueError as exc:
        parser.error(str(exc))
    record = {
        "command": "python -m llmcourse.experiments.scaling_sweep " + " ".join(sys.argv[1:] if argv is None else argv),
        "hardware": hardware(device),
        "sweep": name,
        "settings": asdict(settings) | {"data": "Tiny Shakespeare characters, nanoGPT's 90/10 split",
                                        "schedule": "linear warm-up, cosine decay to min_lr (llmcourse.train)"},
        **sweep,
        "total_seconds": time.perf_counter() - start,
        "total_cpu_seconds": time.process_time() - cpu_start,
        "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{'L':>2} {'d':>4} {'N (non-emb)':>12} {'FLOPs':>10} {'val loss':>8} {'seconds':>8}")
    for r in record["models"]:
        print(f"{r['n_layer']:2d} {r['n_embd']:4d} {r['non_embedding_parameters']:12,d} {r['training_flops']:10.3g} "
              f"{r['val_loss']:8.4f} {r['seconds']:8.1f}")
    print(f"fit: val loss = {record['fit']['constant']:.3f} N^{record['fit']['exponent']:.4f}; "
          f"total {record['total_seconds']:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
