"""Train a GPT on Tiny Shakespeare's characters: one script for a CPU, one GPU, or several (DDP under torchrun).

    python -m llmcourse.train                                  # nanoGPT's shakespeare_char run (GPU-sized)
    python -m llmcourse.train --config my.toml --max_iters 200 # a config file, then flags on top
    llmcourse train --device cpu --n_layer 2 --n_embd 64 --max_iters 300   # a quick CPU run
    torchrun --standalone --nproc_per_node=4 -m llmcourse.train          # data-parallel on 4 GPUs

Each step draws a batch of random windows of ``block_size`` characters, computes the
mean next-character cross-entropy, and takes an AdamW step with gradient clipping
and a cosine learning-rate schedule after a linear warm-up. Every ``eval_interval``
steps it estimates the training and validation loss on fixed batches and saves a
checkpoint; ``--resume`` continues from it exactly (every step's randomness is a
function of (seed, rank, step), so there is no generator state to restore). It
reports tokens per second and the model FLOPs utilisation: the FLOPs the model needs
(:func:`llmcourse.sizing.training_flops_per_token`) per second, over the device's peak.
Book chapter: *Training a GPT on Tiny Shakespeare*.

Config files are JSON or TOML holding the fields of :class:`TrainConfig` (read as data,
never executed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from llmcourse import data
from llmcourse.gpt import GPT, maybe_compile
from llmcourse.hardware import hardware_description, model_flops_utilization, peak_flops
from llmcourse.sizing import TransformerConfig

@dataclass
class TrainConfig:
    """Every setting of a run. The defaults are nanoGPT's config/train_shakespeare_char.py."""

    # model
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256  # characters of context
    dropout: float = 0.2  # the data set is small: regularise
    bias: bool = False  # no biases in Linear and LayerNorm: slightly faster, as good
    fused: bool = True  # scaled_dot_product_attention; False = attention written out
    # optimisation
    batch_size: int = 64  # sequences per micro-step, per process
    gradient_accumulation_steps: int = 1  # micro-steps per optimizer step
    max_iters: int = 5000
    learning_rate: float = 1e-3  # a small model tolerates a high rate
    min_lr: float = 1e-4  # learning_rate / 10, as Chinchilla
    warmup_iters: int = 100
    lr_decay_iters: int = 0  # end of the cosine decay; 0 = max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99  # few tokens per step: average the squared gradients over fewer steps than 0.999
    grad_clip: float = 1.0  # clip the gradient norm at this value; 0 = no clipping
    # evaluation, logging, checkpoints
    eval_interval: int = 250
    eval_iters: int = 200  # batches per loss estimate
    log_interval: int = 10
    target_loss: float = 0.0  # stop at the first evaluation with validation loss <= this; 0 = never
    out_dir: str = "out-shakespeare-char"
    resume: bool = False
    save_checkpoints: bool = True
    # system
    device: str = "auto"  # "cpu", "cuda", "cuda:1", ...; auto = CUDA if present
    dtype: str = "auto"  # "float32", "bfloat16" (autocast), "float16" (autocast + loss scaling); auto = bf16 on GPU
    compile: bool = False  # torch.compile the model (worth it for runs longer than a minute or two on a GPU)
    seed: int = 1337
    progress: bool = True

    def model_config(self, vocab_size: int) -> TransformerConfig:
        return TransformerConfig(
            n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd, block_size=self.block_size,
            vocab_size=vocab_size, dropout=self.dropout, bias=self.bias,
        )


@dataclass
class TrainResult:
    """What a run measured; ``evals`` holds (step, train loss, validation loss, seconds since start)."""

    losses: list[float] = field(default_factory=list)  # training loss of every step
    evals: list[tuple[int, float, float, float]] = field(default_factory=list)
    tokens_per_second: float = 0.0
    mfu: float = 0.0
    peak_flops: float = 0.0
    peak_source: str = ""
    seconds: float = 0.0
    steps: int = 0
    reached_target_at: float | None = None  # seconds from the start of train() to the evaluation that hit target_loss
    hardware: str = ""


# --- configuration --------------------------------------------------------------------------------


def load_config_file(path: str | Path) -> dict[str, object]:
    """The settings in a .json or .toml file, checked against :class:`TrainConfig`'s fields."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no config file {path}")
    if path.suffix == ".toml":
        values = tomllib.loads(path.read_text())
    elif path.suffix == ".json":
        values = json.loads(path.read_text())
    else:
        raise ValueError(f"config files must be .toml or .json, got {path.name}")
    return _checked(values, f"config file {path.name}")


def _checked(values: dict[str, object], where: str) -> dict[str, object]:
    types = {f.name: f.type for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; valid settings: {sorted(types)}")
    checked = {}
    for name, value in values.items():
        kind = {"int": int, "float": float, "bool": bool, "str": str}[types[name]]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{where}: {name} must be a {kind.__name__}, got {value!r}")
        checked[name] = value
    return checked


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Defaults, then ``--config FILE``, then one flag per field (``--max_iters 100``, ``--no-progress``)."""
    parser = argparse.ArgumentParser(prog="llmcourse train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="a .toml or .json file of settings")
    for f in fields(TrainConfig):
        if f.type == "bool":
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(f"--{f.name}", type={"int": int, "float": float, "str": str}[f.type], default=None,
                                help=f"default {f.default}")
    args = parser.parse_args(argv)
    values = load_config_file(args.config) if args.config else {}
    values |= {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    return TrainConfig(**values)  # type: ignore[arg-type]


# --- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CharTokenizer:
    """Characters <-> ids, ids in sorted order of the characters (65 for Tiny Shakespeare)."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text``'s characters, through a table indexed by code point (a million characters in ms)."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        known = np.frombuffer(self.chars.encode("utf-32-le"), dtype=np.uint32)
        table = np.full(int(max(codes.max(initial=0), known.max(initial=0))) + 1, -1, dtype=np.int64)
        table[known] = np.arange(len(known))
        ids = table[codes]
        if np.any(ids < 0):
            missing = sorted(set(text) - set(self.chars))
            raise ValueError(f"characters {missing} are not in the vocabulary of {len(self.chars)} characters")
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


def shakespeare_char_data() -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """The tokenizer and the first 90% / last 10% of Tiny Shakespeare as id tensors (nanoGPT's split)."""
    text = data.tiny_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.from_numpy(tokenizer.encode(text))
    n = int(0.9 * len(ids))
    return tokenizer, ids[:n], ids[n:]


def get_batch(ids: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows x of ``block_size`` ids, and y = x shifted by one (the next characters)."""
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(block_size + 1)
    windows = ids[offsets.to(ids.device)]
    return windows[:, :-1], windows[:, 1:]


def step_generator(seed: int, *key: int) -> torch.Generator:
    """A generator seeded from (seed, *key) by numpy's SeedSequence: independent streams per rank and step."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, *key]).generate_state(1)[0]))


# --- training -------------------------------------------------------------------------------------


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to learning_rate over warmup_iters, then cosine decay to min_lr at lr_decay_iters."""
    decay_end = config.lr_decay_iters or config.max_iters
    if step < config.warmup_iters:
        return config.learning_rate * (step + 1) / (config.warmup_iters + 1)
    if step >= decay_end:
        return config.min_lr
    progress = (step - config.warmup_iters) / max(1, decay_end - config.warmup_iters)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.learning_rate - config.min_lr)


def _setup_device(config: TrainConfig) -> tuple[torch.device, int, int, bool]:
    """(device, rank, world size, is DDP); starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    wanted = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(wanted)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        if device.type == "cuda":
            device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
            torch.cuda.set_device(device)
    return device, rank, world, world > 1


def _resolve_dtype(config: TrainConfig, device: torch.device) -> str:
    if config.dtype != "auto":
        if config.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {config.dtype!r}")
        return config.dtype
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, splits: dict[str, torch.Tensor], config: TrainConfig,
                  autocast: contextlib.AbstractContextManager) -> dict[str, float]:
    """Mean loss over ``eval_iters`` batches per split, the same batches at every evaluation (seeded)."""
    model.eval()
    result = {}
    for name, ids in splits.items():
        generator = step_generator(config.seed, 2**31 - 1, len(name))
        losses = torch.zeros(config.eval_iters, device=ids.device)  # on the device: no wait per batch
        for k in range(config.eval_iters):
            x, y = get_batch(ids, config.batch_size, config.block_size, generator)
            with autocast:
                _, loss = model(x, y)
            losses[k] = loss.float()
        result[name] = losses.mean().item()
    model.train()
    return result


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def checkpoint_path(config: TrainConfig) -> Path:
    return Path(config.out_dir) / "ckpt.pt"


def train(config: TrainConfig) -> TrainResult:
    """Run the training loop of the module docstring; returns what it measured (on rank 0)."""
    start = time.perf_counter()
    device, rank, world, ddp = _setup_device(config)
    master = rank == 0
    dtype = _resolve_dtype(config, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matrix products for whatever stays in fp32
        torch.backends.cudnn.allow_tf32 = True
    autocast = (torch.autocast(device.type, dtype=getattr(torch, dtype)) if dtype != "float32"
                else contextlib.nullcontext())
    tokenizer, train_ids, val_ids = shakespeare_char_data()
    train_ids, val_ids = train_ids.to(device), val_ids.to(device)

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model_config = config.model_config(len(tokenizer.chars))
    model = GPT(model_config, fused=config.fused).to(device)
    optimizer = model.configure_optimizer(config.weight_decay, config.learning_rate, (config.beta1, config.beta2),
                                          device.type)
    first_step, best_val = 0, math.inf
    if config.resume:
        if not checkpoint_path(config).is_file():
            raise ValueError(f"--resume: no checkpoint at {checkpoint_path(config)}; train without --resume first")
        state = torch.load(checkpoint_path(config), map_location=device, weights_only=True)
        if state["model_config"] != model_config.to_dict():
            raise ValueError(f"the checkpoint in {config.out_dir} is of a different model ({state['model_config']}); "
                             "resume with the same model settings or choose another out_dir")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_step, best_val = state["step"], state["best_val_loss"]
    raw_model = model
    model = maybe_compile(model, config.compile)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "float16")  # fp16 needs loss scaling, bf16 does not

    tokens_per_step = config.batch_size * config.block_size * config.gradient_accumulation_steps * world
    peak, peak_source = peak_flops(device, dtype)

    def mfu(tokens_per_second: float) -> float:
        return model_flops_utilization(model_config, tokens_per_second, peak, config.block_size)

    result = TrainResult(peak_flops=peak, peak_source=peak_source, hardware=hardware_description(device))
    if master:
        print(f"{raw_model.num_parameters():,} parameters, {tokens_per_step:,} tokens per step, {dtype} on {device}"
              f"{f' x {world} processes' if ddp else ''}; peak {peak:.3g} FLOP/s ({peak_source})", flush=True)

    def save(step: int) -> None:
        if master and config.save_checkpoints:
            Path(config.out_dir).mkdir(parents=True, exist_ok=True)
            torch.save({"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "best_val_loss": best_val, "model_config": model_config.to_dict(),
                        "train_config": asdict(config), "chars": tokenizer.chars}, checkpoint_path(config))

    bar = tqdm(total=config.max_iters, initial=first_step, disable=not (master and config.progress), unit="step")
    # Throughput is timed between synchronisation points (evaluations, log lines), not per step: reading a loss
    # from the GPU every step would stall the CPU, which must run ahead queueing kernels for the GPU to stay busy.
    pending: list[torch.Tensor] = []  # losses still on the device
    timed_seconds, timed_steps, clock_start = 0.0, 0, None

    def flush() -> None:
        result.losses.extend(torch.stack(pending).float().tolist() if pending else [])
        pending.clear()

    def running_seconds() -> float:
        _synchronize(device)
        return timed_seconds + (time.perf_counter() - clock_start if clock_start is not None else 0.0)

    for step in range(first_step, config.max_iters + 1):
        if step % config.eval_interval == 0 or step == config.max_iters:
            timed_seconds, clock_start = running_seconds(), None
            flush()
            losses = estimate_loss(raw_model, {"train": train_ids, "val": val_ids}, config, autocast)
            elapsed = time.perf_counter() - start
            result.evals.append((step, losses["train"], losses["val"], elapsed))
            if master:
                bar.write(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} ({elapsed:.1f} s)")
            best_val = min(best_val, losses["val"])
            if step > first_step:
                save(step)
            if config.target_loss and losses["val"] <= config.target_loss:
                result.reached_target_at = elapsed
                break
            if step > first_step:
                clock_start = time.perf_counter()
        if step == config.max_iters:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        # Every step's batches and dropout masks depend only on (seed, rank, step): resuming is exact.
        generator = step_generator(config.seed, rank, step)
        torch.manual_seed(int(np.random.SeedSequence([config.seed, rank, step, 1]).generate_state(1)[0]))
        for micro in range(config.gradient_accumulation_steps):
            x, y = get_batch(train_ids, config.batch_size, config.block_size, generator)
            last = micro == config.gradient_accumulation_steps - 1
            # Under DDP, average gradients across processes only once, after the last micro-step.
            with contextlib.nullcontext() if (last or not ddp) else model.no_sync():
                with autocast:
                    _, loss = model(x, y)
                    loss = loss / config.gradient_accumulation_steps
                scaler.scale(loss).backward()
        if config.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        pending.append(loss.detach() * config.gradient_accumulation_steps)
        bar.update(1)
        if step == first_step:  # the first step pays for compilation and warm-up: start timing after it
            _synchronize(device)
            clock_start = time.perf_counter()
            continue
        timed_steps += 1
        if master and step % config.log_interval == 0:
            rate = timed_steps * tokens_per_step / running_seconds()
            flush()
            bar.set_postfix(loss=f"{result.losses[-1]:.4f}", tok_s=f"{rate:,.0f}", mfu=f"{mfu(rate):.1%}")
    flush()
    timed_seconds = running_seconds()
    bar.close()
    result.steps = len(result.losses)
    result.seconds = time.perf_counter() - start
    if timed_steps:
        result.tokens_per_second = timed_steps * tokens_per_step / timed_seconds
        result.mfu = mfu(result.tokens_per_second)
    if master:
        print(f"done: {result.steps} steps in {result.seconds:.1f} s, {result.tokens_per_second:,.0f} tokens/s, "
              f"MFU {result.mfu:.1%} of {peak:.3g} FLOP/s ({peak_source})", flush=True)
    if ddp:
        torch.distributed.destroy_process_group()
    return result


def load_model(out_dir: str | Path, device: str = "cpu") -> tuple[GPT, CharTokenizer]:
    """The model and tokenizer saved in ``out_dir/ckpt.pt``, ready for :func:`llmcourse.gpt.generate`."""
    path = Path(out_dir) / "ckpt.pt"
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}; train first (python -m llmcourse.train --out_dir {out_dir})")
    state = torch.load(path, map_location=device, weights_only=True)
    model = GPT(TransformerConfig(**state["model_config"])).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), CharTokenizer(state["chars"])


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(argv)
        result = train(config)
    except ValueError as exc:
        print(f"llmcourse train: error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        summary = asdict(result) | {"config": asdict(config)}
        Path(config.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.out_dir) / "result.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
