"""Adaptation: LoRA, BitFit, prompt tuning, the linear probe, prompting, the genre task and the comparison command.

Oracles: hand formulas for LoRA's gradients and parameter counts, finite differences
(``torch.autograd.gradcheck``, float64), the GPT's own forward pass (a soft prompt made of
real token embeddings must equal running those tokens), scikit-learn's
``LogisticRegression`` for the probe, unbatched scoring for the batched prompt scorer, and
Tiny Shakespeare's own lines for the claim that no task play was seen in pretraining.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn

from conftest import REPO_ROOT
from llmcourse import adaptation, data
from llmcourse.adaptation import (
    LoRALinear,
    PromptTuning,
    SequenceClassifier,
    add_lora,
    apply_bitfit,
    count_trainable,
    final_hidden,
    full_finetuning,
    linear_probe,
    merge_lora,
)
from llmcourse.experiments import adaptation as experiment
from llmcourse.gpt import GPT
from llmcourse.sizing import TransformerConfig
from llmcourse.train import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

L, D = 2, 16
CONFIG = TransformerConfig(n_layer=L, n_head=2, n_embd=D, block_size=40, vocab_size=65, dropout=0.0, bias=True)


def _gpt(config: TransformerConfig = CONFIG, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config).eval()


def _ids(batch: int, length: int, seed: int = 1, vocab: int = CONFIG.vocab_size) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def _linear(d_in: int = 6, d_out: int = 5, dtype: torch.dtype = torch.float64, bias: bool = True) -> nn.Linear:
    torch.manual_seed(3)
    return nn.Linear(d_in, d_out, bias=bias, dtype=dtype)


def _randomise_B(model: nn.Module, seed: int = 4) -> None:
    """Give every LoRA B non-zero values, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.B.copy_(0.1 * torch.randn(module.B.shape, generator=generator, dtype=module.B.dtype))


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _one_step(model: nn.Module, loss_fn, steps: int = 1) -> None:
    """AdamW over *all* parameters with weight decay: frozen ones must still not move (they get no gradient)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()


# --- LoRALinear ---------------------------------------------------------------------------------


def test_lora_starts_equal_to_its_base_layer():
    base = _linear()
    lora = LoRALinear(base, rank=3, alpha=6.0)
    x = torch.randn(4, 7, 6, dtype=torch.float64)
    assert torch.count_nonzero(lora.B) == 0 and torch.count_nonzero(lora.A) > 0
    assert torch.equal(lora(x), base(x))  # B = 0: exactly, not approximately
    assert lora.scaling == 2.0 and lora.A.shape == (3, 6) and lora.B.shape == (5, 3)
    assert not base.weight.requires_grad and not base.bias.requires_grad
    assert lora.A.requires_grad and lora.B.requires_grad
    bound = 1 / np.sqrt(6)  # PEFT's (and nn.Linear's) Kaiming-uniform bound
    assert lora.A.abs().max() <= bound


def test_lora_forward_is_the_formula():
    base = _linear()
    lora = LoRALinear(base, rank=2, alpha=3.0)
    _randomise_B(lora)
    x = torch.randn(8, 6, dtype=torch.float64)
    expected = x @ base.weight.T + base.bias + (3.0 / 2) * (x @ lora.A.T) @ lora.B.T
    torch.testing.assert_close(lora(x), expected, atol=1e-14, rtol=0)
    assert torch.linalg.matrix_rank(lora.delta_weight()) == 2


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("bias", [True, False])
def test_merge_gives_the_same_outputs(dtype, tolerance, bias):
    base = _linear(16, 12, dtype=dtype, bias=bias)
    lora = LoRALinear(base, rank=4)
    _randomise_B(lora)
    merged = lora.merge()
    assert type(merged) is nn.Linear and merged.weight.dtype == dtype
    x = torch.randn(10, 16, dtype=dtype)
    torch.testing.assert_close(merged(x), lora(x), atol=tolerance, rtol=0)
    torch.testing.assert_close(merged.weight, base.weight + lora.scaling * lora.B @ lora.A, atol=tolerance, rtol=0)
    assert (merged.bias is None) == (not bias)


def test_lora_gradients_match_the_hand_formula_and_finite_differences():
    base = _linear(6, 5)
    lora = LoRALinear(base, rank=3, alpha=6.0)
    _randomise_B(lora)
    x = torch.randn(7, 6, dtype=torch.float64)
    G = torch.randn(7, 5, dtype=torch.float64)  # dL/dy for L = sum(y * G)
    (lora(x) * G).sum().backward()
    s = lora.scaling
    torch.testing.assert_close(lora.B.grad, s * G.T @ (x @ lora.A.T), atol=1e-12, rtol=0)  # dL/dB = s G^T (x A^T)
    torch.testing.assert_close(lora.A.grad, s * lora.B.T @ G.T @ x, atol=1e-12, rtol=0)  # dL/dA = s B^T G^T x
    assert base.weight.grad is None  # frozen

    def f(A, B, inputs):
        return base(inputs) + s * F.linear(F.linear(inputs, A), B)

    A = lora.A.detach().clone().requires_grad_(True)
    B = lora.B.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (A, B, x.clone().requires_grad_(True)))
    torch.testing.assert_close(f(A, B, x), lora(x))


def test_lora_rejects_bad_arguments():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(3, 3, 1), rank=1)
    with pytest.raises(ValueError, match=r"min\(d_in, d_out\) = min\(6, 5\) = 5"):
        LoRALinear(_linear(6, 5), rank=6)
    with pytest.raises(ValueError, match="between 1 and"):
        LoRALinear(_linear(6, 5), rank=0)
    with pytest.raises(TypeError, match="integer"):
        LoRALinear(_linear(6, 5), rank=2.0)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(_linear(6, 5), rank=2, alpha=0)
    LoRALinear(_linear(6, 5), rank=5)  # the bound itself is allowed


# --- which parameters train -----------------------------------------------------------------------


def test_add_lora_trains_only_A_and_B_of_the_attention_projections():
    model = _gpt()
    before = _snapshot(model)
    add_lora(model, rank=2, alpha=4.0)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    expected = {f"blocks.{i}.attn.{m}.{ab}" for i in range(L) for m in ("qkv", "out") for ab in "AB"}
    assert trainable == expected
    # Hand count: W_qkv is d x 3d, r (d + 3d) = 4 r d; W_o is d x d, 2 r d. Six r d per block.
    r = 2
    n_trainable, total = count_trainable(model)
    assert n_trainable == L * (4 * r * D + 2 * r * D) == 6 * r * D * L
    assert total == GPT(CONFIG).num_parameters() + n_trainable
    idx = _ids(3, 20)
    reference = _gpt()
    torch.testing.assert_close(model(idx)[0], reference(idx)[0], atol=0, rtol=0)  # B = 0: the base model exactly

    # Step 1: B moves; A's gradient is B^T(...) = 0, so A stays. Step 2: both move. Frozen weights never.
    targets = _ids(3, 20, seed=2)
    _one_step(model, lambda: model(idx, targets)[1])
    after_one = _snapshot(model)
    _one_step(model, lambda: model(idx, targets)[1])
    for name, p in model.named_parameters():
        if name in expected:
            continue
        original = before[name.replace(".base.", ".")]
        assert torch.equal(p, original), name  # bit-identical
    for i in range(L):
        for m in ("qkv", "out"):
            prefix = f"blocks.{i}.attn.{m}"
            assert torch.count_nonzero(after_one[f"{prefix}.B"]) > 0
            assert not torch.equal(model.get_parameter(f"{prefix}.A"), after_one[f"{prefix}.A"]), prefix


def test_lora_A_does_not_move_on_the_first_step():
    model = add_lora(_gpt(), rank=2)
    A0 = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith(".A")}
    idx, targets = _ids(2, 12), _ids(2, 12, seed=5)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    model(idx, targets)[1].backward()
    assert all(torch.count_nonzero(model.get_parameter(n).grad) == 0 for n in A0)  # dL/dA = s B^T G^T x, B = 0
    optimizer.step()
    assert all(torch.equal(model.get_parameter(n), a) for n, a in A0.items())


def test_merge_lora_gives_a_plain_model_with_the_same_outputs():
    model = add_lora(_gpt(), rank=3)
    _randomise_B(model)
    idx = _ids(2, 16)
    expected = model(idx)[0]
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert count_trainable(model)[1] == GPT(CONFIG).num_parameters()
    torch.testing.assert_close(model(idx)[0], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(_gpt()(idx)[0], expected, atol=1e-3)  # and LoRA did change the model


def test_add_lora_other_targets_and_errors():
    model = add_lora(_gpt(), rank=2, targets=("mlp.up",))
    assert count_trainable(model)[0] == L * 2 * (D + 4 * D)  # W_1 is 4d x d
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, rank=2, targets=("mlp.up",))
    with pytest.raises(ValueError, match="no module of the model matches"):
        add_lora(_gpt(), rank=2, targets=("attn.c_attn",))
    with pytest.raises(TypeError, match="nn.Linear layers only"):
        add_lora(_gpt(), rank=2, targets=("ln_1",))
    with pytest.raises(ValueError, match="non-empty sequence"):
        add_lora(_gpt(), rank=2, targets="attn.qkv")
    with pytest.raises(TypeError, match="nn.Module"):
        add_lora("a model", rank=2)


def test_bitfit_trains_only_the_biases():
    model = _gpt()
    before = _snapshot(model)
    apply_bitfit(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith(".bias") for name in trainable)
    # Per block: b_qkv (3d), b_o (d), b_1 (4d), b_2 (d), two LayerNorm shifts (d each); then the final LayerNorm's.
    assert count_trainable(model) == (L * 11 * D + D, model.num_parameters())
    idx, targets = _ids(3, 20), _ids(3, 20, seed=2)
    _one_step(model, lambda: model(idx, targets)[1], steps=2)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != (name in trainable), name
    with pytest.raises(ValueError, match="bias=True"):
        apply_bitfit(_gpt(TransformerConfig(n_layer=1, n_head=2, n_embd=8, block_size=8, bias=False)))


def test_full_finetuning_and_count_trainable():
    model = apply_bitfit(_gpt())
    full_finetuning(model)
    assert count_trainable(model) == (model.num_parameters(), model.num_parameters())
    hand = (CONFIG.vocab_size * D + CONFIG.block_size * D  # tied token embedding, positions
            + L * (D * 3 * D + 3 * D + D * D + D + D * 4 * D + 4 * D + 4 * D * D + D + 4 * D) + 2 * D)  # fmt: skip
    assert count_trainable(model)[1] == hand
    adaptation.freeze(model)
    assert count_trainable(model) == (0, hand)


# --- prompt tuning and the features ---------------------------------------------------------------


def test_final_hidden_is_the_gpt_forward_pass_before_its_head():
    model = _gpt()
    idx = _ids(2, 17)
    torch.testing.assert_close(model.lm_head(final_hidden(model, idx)), model(idx)[0], atol=1e-6, rtol=1e-6)


def test_a_prompt_of_real_token_embeddings_equals_those_tokens():
    model = _gpt()
    prefix = torch.tensor([5, 9, 2])
    tuned = PromptTuning(model, 3, init_ids=prefix)
    idx = _ids(4, 12)
    logits, _ = tuned(idx)
    assert logits.shape == (4, 12, CONFIG.vocab_size)
    full, _ = model(torch.cat([prefix.expand(4, -1), idx], dim=1))
    torch.testing.assert_close(logits, full[:, 3:, :], atol=1e-6, rtol=1e-6)


def test_prompt_tuning_trains_only_the_prompt():
    model = _gpt()
    before = _snapshot(model)
    tuned = PromptTuning(model, 4, generator=torch.Generator().manual_seed(0))
    assert count_trainable(tuned) == (4 * D, model.num_parameters() + 4 * D)
    idx, targets = _ids(3, 10), _ids(3, 10, seed=2)
    logits, loss = tuned(idx, targets)
    assert logits.shape == (3, 10, CONFIG.vocab_size)
    loss.backward()
    assert tuned.prompt.grad is not None and torch.count_nonzero(tuned.prompt.grad) > 0
    assert all(p.grad is None for p in model.parameters())
    prompt_before = tuned.prompt.detach().clone()
    _one_step(tuned, lambda: tuned(idx, targets)[1])
    assert not torch.equal(tuned.prompt, prompt_before)
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_prompt_tuning_errors():
    with pytest.raises(ValueError, match="n_tokens"):
        PromptTuning(_gpt(), 0)
    with pytest.raises(ValueError, match="n_tokens"):
        PromptTuning(_gpt(), CONFIG.block_size)
    with pytest.raises(ValueError, match="init_ids"):
        PromptTuning(_gpt(), 2, init_ids=[1, 65])
    with pytest.raises(TypeError, match="GPT"):
        PromptTuning(nn.Linear(2, 2), 2)
    tuned = PromptTuning(_gpt(), 8)
    with pytest.raises(ValueError, match="8 prompt vectors"):
        tuned(_ids(1, CONFIG.block_size - 7))


def test_classifier_methods_leave_the_pretrained_model_alone():
    model = _gpt()
    before = _snapshot(model)
    counts = {}
    for method in adaptation.METHODS:
        classifier = adaptation.prepare_classifier(model, method, rank=2, prompt_tokens=3)
        counts[method] = count_trainable(classifier)[0]
        assert classifier(_ids(5, 12)).shape == (5, 2)
    head = D * 2 + 2
    assert counts == {"full fine-tuning": model.num_parameters() + head, "LoRA": 6 * 2 * D * L + head,
                      "BitFit": L * 11 * D + D + head, "prompt tuning": 3 * D + head, "linear probe": head}
    assert all(torch.equal(p, before[n]) and p.requires_grad for n, p in model.named_parameters())
    with pytest.raises(ValueError, match="unknown method"):
        adaptation.prepare_classifier(model, "adapters")
    with pytest.raises(TypeError, match="backbone"):
        SequenceClassifier(nn.Linear(2, 2))


def test_lora_learns_an_easy_task():
    # Class 0: sequences of one character; class 1: of another. A few LoRA steps must separate them.
    ids = torch.cat([torch.full((16, 8), 3), torch.full((16, 8), 7)])
    labels = torch.cat([torch.zeros(16), torch.ones(16)]).long()
    classifier = adaptation.prepare_classifier(_gpt(), "LoRA", rank=2)
    losses = adaptation.train_classifier(classifier, ids, labels, steps=30, learning_rate=1e-2, batch_size=8)
    assert losses[-1] < 0.5 * losses[0]
    assert adaptation.accuracy(classifier, ids, labels) == 1.0
    with pytest.raises(ValueError, match="no trainable parameters"):
        adaptation.train_classifier(adaptation.freeze(classifier), ids, labels, steps=1, learning_rate=1e-3)
    with pytest.raises(ValueError, match="same N"):
        adaptation.accuracy(classifier, ids, labels[:3])


# --- the linear probe -----------------------------------------------------------------------------


def test_linear_probe_is_scikit_learns_logistic_regression():
    rng = np.random.default_rng(0)
    n, d, l2 = 300, 5, 1e-2
    centres = rng.normal(size=(3, d))
    y = rng.integers(0, 3, size=n)
    X = centres[y] + rng.normal(size=(n, d))
    head = linear_probe(torch.from_numpy(X), torch.from_numpy(y), l2=l2)
    ours = torch.softmax(head(torch.from_numpy(X)), dim=-1).detach().numpy()
    sk = LogisticRegression(C=1 / (l2 * n), tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours, sk.predict_proba(X), atol=1e-5)
    # softmax weights are defined up to a shared shift; sklearn's are centred (sum over classes = 0), as are ours
    np.testing.assert_allclose(head.weight.detach().numpy(), sk.coef_, atol=1e-4)
    with pytest.raises(ValueError, match="single class"):
        linear_probe(torch.from_numpy(X), torch.zeros(n, dtype=torch.long))


# --- prompting ----------------------------------------------------------------------------------------


def test_few_shot_prompt_format():
    prompt = adaptation.few_shot_prompt([("Who's there?", "tragedy"), ("Good morrow.", "comedy")], "O, let me hear")
    assert prompt == "Who's there?\n-- from a tragedy.\n\nGood morrow.\n-- from a comedy.\n\nO, let me hear\n-- from a "
    assert adaptation.few_shot_prompt([], "Hark") == "Hark\n-- from a "
    with pytest.raises(ValueError, match="placeholders"):
        adaptation.few_shot_prompt([], "Hark", template="{text}")


def test_continuation_log_probs_batched_equals_one_at_a_time_and_the_logits():
    model = _gpt()
    tokenizer = CharTokenizer.from_text(data.tiny_shakespeare())
    contexts = ["To be, or not", "Hark", "What light through yonder"]
    continuations = ["comedy.", "tragedy.", "x"]
    batched = adaptation.continuation_log_probs(model, tokenizer, contexts, continuations)
    for i, (c, x) in enumerate(zip(contexts, continuations, strict=True)):
        single = adaptation.continuation_log_probs(model, tokenizer, [c], [x])[0]
        ids = torch.from_numpy(tokenizer.encode(c + x))[None]
        log_probs = torch.log_softmax(model(ids)[0][0].double(), dim=-1)
        by_hand = sum(log_probs[len(c) - 1 + j, ids[0, len(c) + j]].item() for j in range(len(x)))
        assert batched[i] == pytest.approx(single, abs=1e-5)
        assert batched[i] == pytest.approx(by_hand, abs=1e-5)
    predicted = adaptation.prompt_predictions(model, tokenizer, contexts)
    assert predicted.shape == (3,) and set(predicted) <= {0, 1}
    with pytest.raises(ValueError, match="block_size"):
        adaptation.continuation_log_probs(model, tokenizer, ["a" * 40], ["b"])


# --- the task -----------------------------------------------------------------------------------------


def test_genre_task_is_balanced_and_split_by_play():
    task = adaptation.genre_task(length=48, train_per_class=60, val_per_class=20, test_per_class=30, seed=1)
    plays = {split: set(t.plays) for split, t in task.items()}
    assert plays["train"].isdisjoint(plays["test"]) and plays["train"].isdisjoint(plays["validation"])
    assert plays["validation"].isdisjoint(plays["test"])
    assert plays["test"] <= set(adaptation.GENRE_SPLIT["test"])
    vocabulary = set(data.tiny_shakespeare())
    for split, texts in task.items():
        assert np.bincount(texts.labels).tolist() == [len(texts) // 2] * 2, split
        for text, label, play in zip(texts.texts, texts.labels, texts.plays, strict=True):
            assert len(text) == 48 and set(text) <= vocabulary
            assert play in (adaptation.COMEDIES, adaptation.TRAGEDIES)[label]
            assert text in adaptation.spoken_text(play)
    ids, labels = task["test"].encode(CharTokenizer.from_text(data.tiny_shakespeare()))
    assert ids.shape == (60, 48) and labels.tolist() == list(task["test"].labels)
    with pytest.raises(ValueError, match="hold only"):
        adaptation.genre_task(length=64, test_per_class=10**6)


def test_spoken_text_drops_names_headings_and_stage_directions():
    hamlet = adaptation.spoken_text("hamlet")
    assert hamlet.startswith("Who's there?\nNay, answer me: stand, and unfold yourself.\nLong live the king!")
    lines = set(hamlet.splitlines())
    assert "[" not in hamlet and "Ber." not in lines and "Ham." not in lines
    dream = adaptation.spoken_text("midsummer_nights_dream")  # speakers without a full stop: "THESEUS"
    assert dream.startswith("Now, fair Hippolyta, our nuptial hour") and "THESEUS" not in dream.splitlines()
    assert "Hippolyta, I woo'd thee with my sword," in dream  # a speech resumed after a stage direction is kept


def test_no_task_play_is_in_the_pretraining_text():
    seen = {line.strip() for line in data.tiny_shakespeare().splitlines()}

    def overlap(play: str) -> float:
        long_lines = [line for line in adaptation.spoken_text(play).splitlines() if len(line) >= 30]
        return sum(line in seen for line in long_lines) / len(long_lines)

    assert overlap("coriolanus") > 0.3  # the check finds a play that is in Tiny Shakespeare
    for play in adaptation.COMEDIES + adaptation.TRAGEDIES:
        assert overlap(play) == 0.0, play


# --- the base checkpoint and the command ----------------------------------------------------------


def _tiny_checkpoint(tmp_path) -> tuple[GPT, str]:
    config = TransformerConfig(n_layer=1, n_head=2, n_embd=16, block_size=128, vocab_size=65, bias=True)
    model = _gpt(config)
    path = str(tmp_path / "base.pt")
    adaptation.save_pretrained(model, CharTokenizer.from_text(data.tiny_shakespeare()), path, {"note": "test"})
    return model, path


def test_save_and_load_pretrained(tmp_path):
    model, path = _tiny_checkpoint(tmp_path)
    loaded, tokenizer, provenance = adaptation.load_pretrained(path)
    assert provenance == {"note": "test"} and len(tokenizer.chars) == 65
    assert loaded.lm_head.weight is loaded.wte.weight  # still tied
    for (name, p), q in zip(model.named_parameters(), loaded.parameters(), strict=True):
        torch.testing.assert_close(q, p.detach().half().float(), atol=0, rtol=0, msg=name)  # float16, exactly
    with pytest.raises(ValueError, match="pretrain --out"):
        adaptation.load_pretrained(tmp_path / "missing.pt")


def test_the_compare_command_at_toy_size(tmp_path, capsys):
    _, path = _tiny_checkpoint(tmp_path)
    out = tmp_path / "adaptation.json"
    assert experiment.main(["compare", "--quick", "--base", path, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["quick"] is True and "--quick" in record["command"] and record["hardware"]
    methods = {row["method"]: row for row in record["methods"]}
    assert set(methods) == {"chance (one genre always)", "full fine-tuning", "LoRA", "BitFit", "prompt tuning",
                            "linear probe", "prompting, 0-shot", "prompting, 1-shot"}
    head = 16 * 2 + 2
    assert methods["LoRA"]["trainable"] == 6 * experiment.QUICK["lora"]["rank"] * 16 + head
    assert methods["full fine-tuning"]["fraction"] == 1.0
    for row in record["methods"]:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and 0.0 <= row["fraction"] <= 1.0
    seeds = experiment.QUICK["train"]["seeds"]
    for method in ("full fine-tuning", "LoRA", "BitFit", "prompt tuning", "prompting, 1-shot"):
        per_seed = methods[method]["test_accuracy_per_seed"]  # one run per seed, summarised by mean and std
        assert len(per_seed) == len(seeds)
        assert methods[method]["test_accuracy"] == pytest.approx(np.mean(per_seed))
        assert methods[method]["test_accuracy_std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert len(methods["linear probe"]["test_accuracy_per_seed"]) == 1  # convex, solved exactly: one run
    assert record["sizes"] == {"train": 80, "validation": 20, "test": 40}
    assert "LoRA" in capsys.readouterr().out


def test_recorded_comparison():
    """The table the chapter prints: recorded with the current settings, and the claims its text makes."""
    record = json.loads((REPO_ROOT / "book/part5/results/adaptation.json").read_text())
    assert record["quick"] is False
    assert json.loads(json.dumps(experiment.FULL)) == record["settings"]  # tuples become lists in JSON
    rows = {row["method"]: row for row in record["methods"]}
    trained = ("full fine-tuning", "LoRA", "BitFit", "prompt tuning")
    seeds = record["settings"]["train"]["seeds"]
    for method in trained:
        assert len(rows[method]["test_accuracy_per_seed"]) == len(seeds) == 3
    for method in (*trained, "linear probe"):
        assert 0.55 < rows[method]["test_accuracy"] < 0.62  # 6 to 11 points above chance
    for method in (m for m in rows if m.startswith("prompting")):
        assert abs(rows[method]["test_accuracy"] - 0.5) < 0.02  # a coin
    mean = {m: rows[m]["test_accuracy"] for m in (*trained, "linear probe")}
    assert max(mean, key=mean.get) == "LoRA"
    # ... but its lead over full fine-tuning and the probe is about one of its seed standard deviations
    assert mean["LoRA"] - max(mean["full fine-tuning"], mean["linear probe"]) < 1.5 * rows["LoRA"]["test_accuracy_std"]
    lora_val = rows["LoRA"]["validation_accuracy_per_seed"]
    for method in trained:
        if method != "LoRA":
            assert all(lv > v for lv, v in zip(lora_val, rows[method]["validation_accuracy_per_seed"], strict=True))
    assert max(trained, key=lambda m: rows[m]["test_accuracy_std"]) == "BitFit"  # the least stable
    assert min(trained, key=lambda m: rows[m]["last_loss"]) == "full fine-tuning"  # fits best, not best on test
