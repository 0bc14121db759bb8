"""An encoder (masked LM) and a decoder (GPT) built from the same blocks, trained side by side on Tiny Shakespeare.

Both models have the same shape (layers, heads, width, context) and see the same
batches of character windows; they differ only in the attention mask and in the
objective: the encoder (:class:`llmcourse.encoder.MaskedLM`) predicts the 15% of
characters BERT's recipe corrupts, using both sides; the decoder
(:class:`llmcourse.gpt.GPT`) predicts every next character from the left. Every
``eval_every`` steps both are asked the same question on held-out windows: what is
the character in the middle? The encoder sees it as [MASK] with its left and right
context; the decoder sees only the left. Book chapter: *Encoders, decoders and
encoder-decoders*.

    python -m llmcourse.experiments.encoder_vs_decoder --out book/part5/results/encoder_vs_decoder.json
    python -m llmcourse.experiments.encoder_vs_decoder --quick --out /tmp/evd.json   # seconds, for the tests
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from llmcourse.encoder import MaskedLM, fill_masked, fit, mask_tokens
from llmcourse.gpt import GPT, generate
from llmcourse.hardware import hardware_description
from llmcourse.sizing import TransformerConfig
from llmcourse.train import get_batch, shakespeare_char_data
from llmcourse.experiments import add_threads_option, apply_threads

FULL = dict(steps=5000, eval_every=250, n_layer=2, n_head=4, n_embd=64, block_size=32, batch_size=32,
            learning_rate=3e-3, eval_windows=1024, seed=0)
QUICK = dict(steps=20, eval_every=10, n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8,
             learning_rate=3e-3, eval_windows=64, seed=0)
PHRASES = ["To be, or not to be, that is the question:", "Now is the winter of our discontent",
           "O Romeo, Romeo! wherefore art thou Romeo?", "Friends, Romans, countrymen, lend me your ears;"]


def middle_character_scores(mlm: MaskedLM, gpt: GPT, windows: torch.Tensor, mask_id: int) -> dict[str, float]:
    """Accuracy and cross-entropy (nats) of each model at the middle position p = T // 2 of ``windows`` (N, T).

    The encoder reads the window with [MASK] at p (both sides); the decoder's logits at p - 1
    predict p from the left only.
    """
    p = windows.shape[1] // 2
    target = windows[:, p]
    masked = windows.clone()
    masked[:, p] = mask_id
    was = mlm.training, gpt.training
    mlm.eval(), gpt.eval()
    with torch.no_grad():
        enc = mlm(masked)[0][:, p]
        dec = gpt(windows[:, :p])[0][:, -1]
    mlm.train(was[0]), gpt.train(was[1])
    return {"encoder_accuracy": (enc.argmax(-1) == target).float().mean().item(),
            "encoder_loss": F.cross_entropy(enc, target).item(),
            "decoder_accuracy": (dec.argmax(-1) == target).float().mean().item(),
            "decoder_loss": F.cross_entropy(dec, target).item()}


def run(steps: int, eval_every: int, n_layer: int, n_head: int, n_embd: int, block_size: int, batch_size: int,
        learning_rate: float, eval_windows: int, seed: int) -> dict[str, object]:
    """Train both models; returns their losses, the middle-character scores over training, and examples."""
    settings = dict(locals())
    tokenizer, train_ids, val_ids = shakespeare_char_data()
    V = len(tokenizer.chars)
    mask_id = V  # one id past the characters
    shape = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, dropout=0.0)
    torch.manual_seed(seed)
    mlm = MaskedLM(TransformerConfig(vocab_size=V + 1, architecture="bert", pooler=False, **shape))
    torch.manual_seed(seed)
    gpt = GPT(TransformerConfig(vocab_size=V, **shape))
    windows = get_batch(val_ids, eval_windows, block_size, torch.Generator().manual_seed(seed + 1))[0]

    def mlm_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_tokens(get_batch(train_ids, batch_size, block_size, g)[0], mask_id, V, g)

    # One joint loop: after each encoder step (inside fit) the decoder takes its step on its own batch,
    # and every eval_every steps both answer the same middle-character questions.
    evals: list[dict[str, float]] = []
    gpt_losses: list[float] = []
    gpt_optimizer = torch.optim.AdamW(gpt.parameters(), lr=learning_rate, weight_decay=0.0)
    gpt_generator = torch.Generator().manual_seed(seed)
    gpt_seconds = 0.0

    def decoder_step_and_evaluate(step: int, _loss: float) -> None:
        nonlocal gpt_seconds
        tic = time.perf_counter()
        gpt.train()
        _, loss = gpt(*get_batch(train_ids, batch_size, block_size, gpt_generator))
        gpt_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        gpt_optimizer.step()
        gpt_losses.append(loss.item())
        gpt_seconds += time.perf_counter() - tic
        if step % eval_every == 0 or step == steps:
            evals.append({"step": step, **middle_character_scores(mlm, gpt, windows, mask_id)})

    start, cpu = time.perf_counter(), time.process_time()
    mlm_losses = fit(mlm, mlm_batch, steps, learning_rate, seed=seed, on_step=decoder_step_and_evaluate)
    mlm_seconds = time.perf_counter() - start - gpt_seconds  # includes the evaluations
    gpt.eval()
    examples = []
    with torch.no_grad():
        for phrase in PHRASES:
            ids = torch.from_numpy(tokenizer.encode(phrase))[None]
            for p in range(min(len(phrase), block_size)):
                if not phrase[p].isalpha():
                    continue
                masked = ids[:, :block_size].clone()
                masked[0, p] = mask_id
                filled = fill_masked(mlm, masked, mask_id)[0, p].item()
                guess = gpt(ids[:, :p])[0][0, -1].argmax().item() if p > 0 else -1
                examples.append({"phrase": phrase, "position": p, "true": phrase[p],
                                 "encoder": tokenizer.decode([filled]),
                                 "decoder": tokenizer.decode([guess]) if guess >= 0 else ""})
    prompt = torch.from_numpy(tokenizer.encode("ROMEO:\n"))[None]
    sampled = generate(gpt, prompt, 120, temperature=0.8, generator=torch.Generator().manual_seed(seed))
    sample = tokenizer.decode(sampled[0].tolist())
    return {
        "hardware": hardware_description(torch.device("cpu")),
        "settings": settings,
        "parameters": {"encoder": mlm.num_parameters(), "decoder": gpt.num_parameters()},
        "mlm_losses": [round(x, 4) for x in mlm_losses], "gpt_losses": [round(x, 4) for x in gpt_losses],
        "train_seconds": {"encoder_and_evaluations": mlm_seconds, "decoder": gpt_seconds},
        "total_cpu_seconds": time.process_time() - cpu,
        "evals": evals, "examples": examples, "decoder_sample": sample,
        "uniform_loss": math.log(V),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON record")
    parser.add_argument("--quick", action="store_true", help="tiny models, a few steps (seconds): a smoke test")
    parser.add_argument("--steps", type=int, default=None, help=f"training steps (default {FULL['steps']})")
    add_threads_option(parser, default=1)
    args = parser.parse_args(argv)
    apply_threads(parser, args.threads)
    settings = dict(QUICK if args.quick else FULL)
    if args.steps is not None:
        settings["steps"] = args.steps
    words = argv if argv is not None else sys.argv[1:]
    record = {"command": " ".join(["python -m llmcourse.experiments.encoder_vs_decoder", *words]), **run(**settings)}
    last = record["evals"][-1]
    print(f"step {last['step']}: middle character, encoder (both sides) accuracy {last['encoder_accuracy']:.3f}, "
          f"decoder (left only) {last['decoder_accuracy']:.3f}; {record['total_cpu_seconds']:.0f} s of CPU")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
