"""The trainer end to end on the CPU: learning, exact resume, configs, the CLI (DDP: test_train_ddp.py).

Oracles: nanoGPT's data preparation (65 characters; 1,003,854 training and 111,540
validation tokens, as its shakespeare_char/prepare.py prints); an uninterrupted run
for the resumed one; NVIDIA's data-sheet peaks for the GPU table.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from llmcourse import cli, hardware, train
from llmcourse.gpt import generate
from llmcourse.sizing import training_flops_per_token

TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=8, eval_iters=4, device="cpu",
            progress=False, learning_rate=3e-3, warmup_iters=2)


def test_data_matches_nanogpt_prepare():
    tokenizer, train_ids, val_ids = train.shakespeare_char_data()
    assert len(tokenizer.chars) == 65 and tokenizer.chars[:3] == "\n !"
    assert (len(train_ids), len(val_ids)) == (1_003_854, 111_540)
    assert tokenizer.decode(train_ids[:14].tolist()) == "First Citizen:"
    assert tokenizer.encode("To be").tolist() == [tokenizer.chars.index(c) for c in "To be"]
    with pytest.raises(ValueError, match=r"characters \['é'\] are not in the vocabulary of 65"):
        tokenizer.encode("café")


def test_a_few_cpu_steps_learn_and_report(tmp_path):
    config = train.TrainConfig(**TINY, max_iters=40, eval_interval=20, out_dir=str(tmp_path), dropout=0.0)
    result = train.train(config)
    assert result.steps == 40 and len(result.evals) == 3
    first, last = result.evals[0], result.evals[-1]
    assert first[2] == pytest.approx(math.log(65), rel=0.02)  # uniform over 65 characters at the start
    assert last[1] < first[1] - 0.3 and last[2] < first[2] - 0.3
    assert result.tokens_per_second > 0 and 0 < result.mfu < 1
    # MFU is the model's FLOPs per second over the peak.
    model_config = config.model_config(65)
    flops = result.tokens_per_second * training_flops_per_token(model_config, config.block_size)
    assert result.mfu == pytest.approx(flops / result.peak_flops)
    assert "CPU estimate" in result.peak_source

    model, tokenizer = train.load_model(tmp_path)
    prompt = torch.tensor([tokenizer.encode("ROMEO:").tolist()])
    text = tokenizer.decode(generate(model, prompt, 20, temperature=0)[0].tolist())
    assert text.startswith("ROMEO:") and len(text) == 26


def test_resume_continues_exactly(tmp_path):
    common = dict(TINY, dropout=0.1, lr_decay_iters=6, eval_interval=3)  # dropout: its masks must replay too
    whole = train.train(train.TrainConfig(**common, max_iters=6, out_dir=str(tmp_path / "whole")))
    first_half = train.train(train.TrainConfig(**common, max_iters=3, out_dir=str(tmp_path / "split")))
    second_half = train.train(train.TrainConfig(**common, max_iters=6, out_dir=str(tmp_path / "split"), resume=True))
    assert first_half.losses == whole.losses[:3]
    assert second_half.losses == whole.losses[3:]  # bit for bit
    assert second_half.evals[-1][2] == whole.evals[-1][2]
    with pytest.raises(ValueError, match="--resume: no checkpoint at"):
        train.train(train.TrainConfig(**common, max_iters=6, out_dir=str(tmp_path / "nowhere"), resume=True))
    with pytest.raises(ValueError, match="is of a different model"):
        train.train(train.TrainConfig(**dict(common, n_embd=64), max_iters=7, out_dir=str(tmp_path / "split"), resume=True))


def test_learning_rate_schedule():
    config = train.TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    rates = [train.learning_rate(step, config) for step in range(120)]
    assert rates[0] == pytest.approx(1 / 11) and rates[10] == pytest.approx(1.0)
    assert rates[60] == pytest.approx(0.55)  # half-way through the cosine: the mean of the two ends
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and rates[110] == rates[119] == 0.1


def test_config_files_and_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('n_layer = 3\nlearning_rate = 1\ndevice = "cpu"\nbias = true\n')
    config = train.parse_args(["--config", str(toml), "--n_layer", "4", "--no-progress"])
    assert (config.n_layer, config.learning_rate, config.device, config.bias, config.progress) == (4, 1.0, "cpu", True, False)
    js = tmp_path / "run.json"
    js.write_text(json.dumps({"max_iters": 7}))
    assert train.parse_args(["--config", str(js)]).max_iters == 7
    js.write_text(json.dumps({"max_iter": 7}))
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['max_iter'\]"):
        train.parse_args(["--config", str(js)])
    js.write_text(json.dumps({"max_iters": "7"}))
    with pytest.raises(ValueError, match="max_iters must be a int, got '7'"):
        train.parse_args(["--config", str(js)])
    with pytest.raises(ValueError, match="config files must be .toml or .json"):
        train.load_config_file(__file__)


def test_gpu_peaks_from_the_device_name(monkeypatch):
    for name, peak in (("NVIDIA H100 80GB HBM3", 989.4e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989.4e12),
                       ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA L4", 121e12), ("NVIDIA L40S", 362e12)):
        # Ampere and later: TF32 tensor cores give float32 matrix products half the bf16 rate.
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device, name=name: name)
        assert hardware.peak_flops(torch.device("cuda"), "bfloat16")[0] == peak
        assert hardware.peak_flops(torch.device("cuda"), "float32")[0] == pytest.approx(peak / 2, rel=0.01)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA Z9000")
    flops, source = hardware.peak_flops(torch.device("cuda"), "bfloat16")
    assert math.isnan(flops) and "peak unknown" in source
    flops, source = hardware.peak_flops(torch.device("cpu"), "float32")
    assert flops > 1e9 and "FLOP/cycle" in source


def test_cli_train_subcommand(tmp_path, capsys):
    argv = ["train", "--device", "cpu", "--n_layer", "1", "--n_head", "1", "--n_embd", "16", "--block_size", "16",
            "--batch_size", "4", "--max_iters", "3", "--eval_interval", "3", "--eval_iters", "2", "--no-progress",
            "--out_dir", str(tmp_path)]
    assert cli.main(argv) == 0
    assert "done: 3 steps" in capsys.readouterr().out
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["steps"] == 3 and record["config"]["n_embd"] == 16 and (tmp_path / "ckpt.pt").is_file()
    assert cli.main(["train", "--n_embd", "10", "--n_head", "4", "--out_dir", str(tmp_path)]) == 2
    assert "n_embd (10) must be divisible by n_head (4)" in capsys.readouterr().err
