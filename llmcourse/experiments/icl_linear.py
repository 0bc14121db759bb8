"""In-context learning of linear functions: a small Transformer against least squares, ridge, 3-NN and averaging.

Trains :class:`llmcourse.icl.ICLTransformer` on prompts x_1, y_1, .., x_n with y = w^T x
and a fresh w ~ N(0, I_d) per prompt (Garg et al. 2022), then scores it and every
baseline of :data:`llmcourse.icl.BASELINES` on the same held-out prompts: the mean
squared error / d for each number k = 0 .. n - 1 of in-context examples. Book chapter:
*In-context learning*.

    python -m llmcourse.experiments.icl_linear --device cpu --threads 1 --out book/part5/results/icl_linear.json
    python -m llmcourse.experiments.icl_linear --device cpu --threads 1 --encoding paired \
        --out book/part5/results/icl_linear_paired.json                                # each ~8 CPU-minutes
    python -m llmcourse.experiments.icl_linear --size gpu --device cuda --out /tmp/icl_gpu.json   # larger, on a GPU
    python -m llmcourse.experiments.icl_linear --quick --out /tmp/icl.json          # seconds, for the tests

The "cpu" size (d = 5, 11 points, a 3-layer model of width 32, 8,000 steps of 256
prompts) fits about 8 minutes of one CPU core. Garg et al. trained a 12-layer,
width-256 GPT-2 for 500k steps on d = 20 and 41 points, with a curriculum; the "gpu"
size is a step towards that (not yet run). ``--encoding paired`` trains on
(x_i, 0), (x_i, y_i), .. instead of Garg et al.'s x_1, y_1, ..: the chapter's test of
why training sits on a plateau first.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from llmcourse import icl
from llmcourse.hardware import cpu_model, default_device, hardware_description, usable_cores
from llmcourse.experiments import add_threads_option, apply_threads

SIZES: dict[str, dict] = {
    # about 8 minutes of one CPU core. Batches of 256, not 64: with 64 prompts a step, a width-64 model
    # still sat on the loss plateau after 3,500 steps (error 0.7 from k = d on); the less noisy gradient
    # leaves it within 2,000 steps, and a narrower model (width 32) pays for the larger batches.
    "cpu": dict(dim=5, n_points=11, n_layer=3, n_head=4, n_embd=32, steps=8000, batch_size=256,
                learning_rate=1e-3, weight_decay=0.0, curriculum=None, eval_prompts=4096),
    # closer to Garg et al. (d = 20, 41 points, 12 layers x 256, 500k steps); for a GPU
    "gpu": dict(dim=10, n_points=21, n_layer=8, n_head=8, n_embd=256, steps=50_000, batch_size=64,
                learning_rate=1e-4, weight_decay=0.0, curriculum=dict(start_dim=3, start_points=7, every=2000),
                eval_prompts=8192),
    # seconds: for the tests of this command
    "quick": dict(dim=3, n_points=7, n_layer=1, n_head=2, n_embd=16, steps=30, batch_size=32,
                  learning_rate=3e-3, weight_decay=0.0, curriculum=None, eval_prompts=256),
}  # fmt: skip
SEED, EVAL_SEED = 0, 1234


def run(size: str = "cpu", device: str | None = None, progress: bool = False, encoding: str = "interleaved") -> dict:
    """Train the transformer at ``size``, score it and the baselines; return the record written as JSON.

    ``encoding`` is how prompts become vectors (:func:`llmcourse.icl.encode_prompts`):
    Garg et al.'s "interleaved" x_1, y_1, x_2, .. or "paired" (x_i, 0), (x_i, y_i), ..
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    device = device or default_device()
    s = SIZES[size]
    d, n = s["dim"], s["n_points"]
    torch.manual_seed(SEED)
    model = icl.ICLTransformer(d, n, n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"],
                               encoding=encoding).to(device)
    curriculum = icl.Curriculum(**s["curriculum"]) if s["curriculum"] else None
    history = icl.train(model, n, s["steps"], batch_size=s["batch_size"], learning_rate=s["learning_rate"],
                        weight_decay=s["weight_decay"], seed=SEED, curriculum=curriculum,
                        log_every=max(1, s["steps"] // 100), progress=progress)  # fmt: skip
    errors = {"transformer": icl.evaluate(model, d, n, s["eval_prompts"], seed=EVAL_SEED)}
    sem = {}
    for name, baseline in icl.BASELINES.items():
        errors[name] = icl.evaluate(baseline, d, n, s["eval_prompts"], seed=EVAL_SEED)
    # standard errors of the transformer's and least squares' means, on the prompts evaluate scored
    prompts = icl.evaluation_prompts(d, n, s["eval_prompts"], seed=EVAL_SEED)
    for name, predictor in (("transformer", model), ("least squares", icl.least_squares)):
        per_prompt = np.concatenate([icl.squared_errors(predictor, xs, ys) for xs, ys in prompts])
        sem[name] = (per_prompt.std(axis=0, ddof=1) / np.sqrt(len(per_prompt))).tolist()
    return {
        "hardware": {
            "description": hardware_description(torch.device(device)),
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cores_usable": usable_cores(),
            "torch": torch.__version__,
            "device": device,
        },
        "note": ("CPU-sized run (about 8 minutes of one idle core; longer on a loaded machine, see train_seconds); "
                 "Garg et al.'s setting (d = 20, 41 points, 12 layers x 256, 500k steps) needs a GPU: "
                 "--size gpu --device cuda") if size == "cpu" else "",
        "settings": {**s, "size": size, "encoding": encoding, "quick": size == "quick", "seed": SEED, "eval_seed": EVAL_SEED,
                     "ridge_alpha": icl.RIDGE_ALPHA, "neighbours": icl.NEIGHBOURS,
                     "parameters": model.num_parameters()},
        "train_seconds": history.seconds,
        "history": history.as_dict(),
        "k": list(range(n)),
        "errors": {name: curve.tolist() for name, curve in errors.items()},
        "standard_errors": sem,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON record")
    parser.add_argument("--size", choices=list(SIZES), default="cpu", help="the settings (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="same as --size quick")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--encoding", choices=icl.ENCODINGS, default="interleaved",
                        help="how a prompt becomes vectors: Garg et al.'s x_1, y_1, x_2, .. (interleaved, "
                             "the default) or (x_i, 0), (x_i, y_i), .. (paired)")
    add_threads_option(parser)
    args = parser.parse_args(argv)
    apply_threads(parser, args.threads)
    start = time.perf_counter()
    arguments = sys.argv[1:] if argv is None else argv
    record = {"command": "python -m llmcourse.experiments.icl_linear " + shlex.join(arguments)}
    record |= run("quick" if args.quick else args.size, args.device, progress=True, encoding=args.encoding)
    record["wall_seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    d = record["settings"]["dim"]
    for k in sorted({1, max(1, d // 2), d, 2 * d} & set(record["k"])):
        row = "  ".join(f"{name} {curve[k]:.4f}" for name, curve in record["errors"].items())
        print(f"k = {k:2d}: {row}")
    print(f"wrote {args.out} ({record['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
