"""Benchmark: the course's GPT — training throughput and MFU, time to a target loss, and KV-cache generation.

Three measurements, each printed with the hardware it ran on:

1. **Throughput** of a GPT-2-small-shaped model (12 layers, 12 heads, 768 wide, vocabulary
   50304) on random tokens: forward, backward and a fused AdamW step, as nanoGPT's
   ``bench.py``. Tokens per second and MFU = (training FLOPs per token, from
   :func:`llmcourse.sizing.training_flops_per_token`) x tokens/s / the device's peak
   (:func:`llmcourse.hardware.peak_flops`: NVIDIA's data sheet on a GPU, an estimate on a CPU).
   Defaults: batch 12 x context 1024, bf16 and ``torch.compile`` on a GPU; batch 4 x 128
   in float32 on a CPU.
2. **Time to target**: ``python -m llmcourse.train`` on Tiny Shakespeare's characters until
   the validation loss reaches the target, once per seed, each in a fresh process; seconds
   from launch (imports, data and compilation included) and from the start of training.
   On a GPU: nanoGPT's shakespeare_char model (6 x 6 x 384, context 256, batch 64, dropout
   0.2, bf16, compiled only with ``--compile``), target 1.47, two seeds. On a CPU: a
   scaled-down model (2 x 4 x 128, context 64, batch 32), target 2.0, one seed.
3. **KV cache**: greedy generation of 200 new tokens after a 16-token prompt with a
   GPT-2-small-shaped model, with and without the cache (same tokens, checked).

    python benchmarks/bench_gpt.py --json benchmarks/results/gpt_cpu.json       # on a CPU: minutes (the no-cache generation is the slow part)
    python benchmarks/bench_gpt.py --device cuda --json benchmarks/results/gpt_h100.json
    python benchmarks/bench_gpt.py --tiny          # seconds: a smoke test of every section
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import hardware

from llmcourse.hardware import peak_flops
from llmcourse.gpt import GPT, generate, maybe_compile
from llmcourse.sizing import TransformerConfig, training_flops_per_token

GPT2_SMALL = dict(n_layer=12, n_head=12, n_embd=768, bias=False, vocab_size=50304)  # 50257 padded to 64 x 786
TINY_MODEL = dict(n_layer=2, n_head=2, n_embd=32, bias=False, vocab_size=256)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(device: torch.device, dtype: str, batch: int, context: int, steps: int, compile_model: bool,
               shape: dict) -> dict:
    """Tokens/s and MFU of full training steps on random tokens (after warm-up steps that absorb compilation)."""
    config = TransformerConfig(block_size=context, **shape)
    torch.manual_seed(0)
    model = GPT(config).to(device)
    optimizer = model.configure_optimizer(0.1, 6e-4, (0.9, 0.95), device.type)
    step_model = maybe_compile(model, compile_model)
    autocast = torch.autocast(device.type, dtype=getattr(torch, dtype)) if dtype != "float32" else contextlib.nullcontext()
    x = torch.randint(config.vocab_size, (batch, context), device=device)
    y = torch.randint(config.vocab_size, (batch, context), device=device)

    def step() -> float:
        with autocast:
            _, loss = step_model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    warmup_start = time.perf_counter()
    for _ in range(3 if compile_model else 1):
        step()
    warmup = time.perf_counter() - warmup_start
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    tokens_per_second = batch * context / seconds
    peak, source = peak_flops(device, dtype)
    flops = training_flops_per_token(config, context) * tokens_per_second
    return {"batch": batch, "context": context, "dtype": dtype, "compile": compile_model,
            "parameters": model.num_parameters(), "ms_per_step": 1000 * seconds, "warmup_seconds": warmup,
            "tokens_per_second": tokens_per_second, "model_flops_per_second": flops, "peak_flops": peak,
            "peak_source": source, "mfu": flops / peak}


def time_to_target(device: torch.device, seeds: list[int], target: float, overrides: dict, out_dir: Path) -> list[dict]:
    """Run ``python -m llmcourse.train`` once per seed, stopping at validation loss <= target.

    Each run is a fresh process, so "from launch" counts Python's start, the imports,
    data loading and compilation, everything a user waits for.
    """
    runs = []
    for seed in seeds:
        run_dir = out_dir / f"seed{seed}"
        settings = dict(overrides, device=str(device), seed=seed, target_loss=target, progress=False,
                        save_checkpoints=False, out_dir=str(run_dir))
        command = [sys.executable, "-m", "llmcourse.train"]
        for name, value in settings.items():
            command += [f"--{name}" if value is not False else f"--no-{name}"] + ([] if isinstance(value, bool) else [str(value)])
        start = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if completed.returncode != 0:
            raise SystemExit(f"error: the training run failed:\n{completed.stdout}{completed.stderr}")
        result = json.loads((run_dir / "result.json").read_text())
        reached = result["reached_target_at"] is not None
        runs.append({
            "seed": seed, "target": target, "reached": reached, "seconds_from_launch": wall if reached else None,
            "seconds_in_training": result["reached_target_at"], "steps": result["steps"],
            "best_val_loss": min(val for _, _, val, _ in result["evals"]), "evals": result["evals"],
            "tokens_per_second": result["tokens_per_second"], "mfu": result["mfu"], "command": " ".join(command[1:]),
        })
    return runs


def kv_cache_speedup(device: torch.device, shape: dict, prompt_length: int, new_tokens: int) -> dict:
    """Greedy generation with and without the KV cache: tokens/s of each, and whether the tokens agree."""
    config = TransformerConfig(block_size=1024, **shape)
    torch.manual_seed(0)
    model = GPT(config).to(device).eval()
    prompt = torch.randint(config.vocab_size, (1, prompt_length), device=device)
    generate(model, prompt, 2, temperature=0)  # warm-up
    timings, outputs = {}, {}
    for use_cache in (True, False):
        _sync(device)
        start = time.perf_counter()
        outputs[use_cache] = generate(model, prompt, new_tokens, temperature=0, use_cache=use_cache)
        _sync(device)
        timings[use_cache] = time.perf_counter() - start
    return {"prompt_tokens": prompt_length, "new_tokens": new_tokens, "parameters": model.num_parameters(),
            "cache_tokens_per_second": new_tokens / timings[True], "no_cache_tokens_per_second": new_tokens / timings[False],
            "speedup": timings[False] / timings[True], "same_tokens": bool(torch.equal(outputs[True], outputs[False]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--sections", default="throughput,target,kvcache", help="comma-separated subset to run")
    parser.add_argument("--batch", type=int, help="throughput batch (default 12 on a GPU, 4 on a CPU)")
    parser.add_argument("--context", type=int, help="throughput context (default 1024 on a GPU, 128 on a CPU)")
    parser.add_argument("--steps", type=int, help="timed throughput steps (default 20 on a GPU, 3 on a CPU)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile (default: on a GPU)")
    parser.add_argument("--dtype", default="auto", help="float32 or bfloat16 (default: bf16 on a GPU, float32 on a CPU)")
    parser.add_argument("--target-loss", type=float, help="validation loss to reach (default 1.47 GPU, 2.0 CPU)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds for the target runs (default 1337,1338 GPU; 1337 CPU)")
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--tiny", action="store_true", help="tiny models everywhere: a smoke test in seconds")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    if not sections <= {"throughput", "target", "kvcache"}:
        parser.error(f"--sections must name throughput, target or kvcache, got {args.sections!r}")

    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if gpu else "float32")
    compile_model = gpu if args.compile is None else args.compile
    shape = TINY_MODEL if args.tiny else GPT2_SMALL
    record: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "hardware": hardware(str(device)),
                    "device": str(device)}
    print(f"hardware: {record['hardware']}")

    if "throughput" in sections:
        batch = args.batch or (12 if gpu else 4)
        context = args.context or (1024 if gpu else (32 if args.tiny else 128))
        steps = args.steps or (20 if gpu else 3)
        result = throughput(device, dtype, batch, context, steps, compile_model, shape)
        record["throughput"] = result
        print(f"throughput ({result['parameters'] / 1e6:.1f}M parameters, batch {batch} x context {context}, {dtype}"
              f"{', compiled' if compile_model else ''}): {result['ms_per_step']:.1f} ms/step, "
              f"{result['tokens_per_second']:,.0f} tokens/s, MFU {result['mfu']:.1%} of {result['peak_flops']:.3g} "
              f"FLOP/s ({result['peak_source']})")

    if "target" in sections:
        if args.tiny:
            overrides = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=16, dropout=0.0,
                             learning_rate=3e-3, warmup_iters=5, max_iters=300, eval_interval=20, eval_iters=4)
            target = args.target_loss or 3.5
        elif gpu:
            # nanoGPT's shakespeare_char, evaluated often enough to notice the target, on fewer batches (each
            # evaluation costs 2 x eval_iters forward passes). Not compiled unless asked: compiling takes longer
            # than the whole run is meant to.
            overrides = dict(max_iters=5000, eval_interval=100, eval_iters=10, compile=bool(args.compile), dtype=dtype)
            target = args.target_loss or 1.47
        else:
            overrides = dict(n_layer=2, n_head=4, n_embd=128, block_size=64, batch_size=32, dropout=0.0,
                             learning_rate=3e-3, warmup_iters=30, max_iters=3000, eval_interval=50, eval_iters=10)
            target = args.target_loss or 2.0
        seeds = [int(s) for s in (args.seeds or ("1337,1338" if gpu else "1337")).split(",")]
        runs = time_to_target(device, seeds, target, overrides, Path("_build") / "bench_gpt")
        record["time_to_target"] = runs
        for run in runs:
            if run["reached"]:
                print(f"time to val loss <= {target} (seed {run['seed']}): {run['seconds_from_launch']:.1f} s from launch, "
                      f"{run['seconds_in_training']:.1f} s in training, {run['steps']} steps, "
                      f"{run['tokens_per_second']:,.0f} tokens/s, MFU {run['mfu']:.1%}")
            else:
                print(f"time to val loss <= {target} (seed {run['seed']}): not reached in {run['steps']} steps "
                      f"(best {run['best_val_loss']:.4f})")

    if "kvcache" in sections:
        result = kv_cache_speedup(device, shape, prompt_length=16, new_tokens=args.new_tokens)
        record["kv_cache"] = result
        print(f"KV cache ({result['parameters'] / 1e6:.1f}M parameters, {result['new_tokens']} new tokens): "
              f"{result['cache_tokens_per_second']:.1f} tokens/s with, {result['no_cache_tokens_per_second']:.1f} without, "
              f"{result['speedup']:.1f}x faster; same tokens: {result['same_tokens']}")
        if not result["same_tokens"]:
            print("error: the cached and uncached generations differ", file=sys.stderr)
            return 1

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
