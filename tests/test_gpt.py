"""The GPT: fused vs explicit paths, torch's own layers, the KV cache, sampling, and bad input.

Oracles: a GPT assembled from ``torch.nn.TransformerEncoderLayer`` carrying our weights
(float64); the full forward pass for every cached step; ``torch.softmax`` for the
sampling distribution (counts within 5 sigma).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import torch_encoder_layer
from llmcourse.gpt import GPT, KVCache, generate, next_token
from llmcourse.sizing import TransformerConfig

CONFIG = TransformerConfig(n_layer=2, n_head=4, n_embd=32, block_size=24, vocab_size=17, dropout=0.0)


def _model(config: TransformerConfig = CONFIG, fused: bool = True, seed: int = 0, double: bool = False) -> GPT:
    torch.manual_seed(seed)
    model = GPT(config, fused=fused)
    with torch.no_grad():  # larger weights than GPT-2's init, so that attention is far from uniform
        for name, p in model.named_parameters():
            if "weight" in name and p.dim() == 2:
                p.normal_(std=0.3)
    model = model.double() if double else model
    return model.eval()


def _ids(batch: int, length: int, seed: int = 1, vocab: int = CONFIG.vocab_size) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


# --- the forward pass ---------------------------------------------------------------------------


@pytest.mark.parametrize("double, tolerance", [(True, 1e-12), (False, 2e-5)])
def test_fused_and_explicit_paths_agree(double, tolerance):
    fused, explicit = _model(double=double), _model(fused=False, double=double)
    explicit.load_state_dict(fused.state_dict())
    idx, targets = _ids(3, 24), _ids(3, 24, seed=2)
    logits_f, loss_f = fused(idx, targets)
    logits_e, loss_e = explicit(idx, targets)
    torch.testing.assert_close(logits_f, logits_e, atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(loss_f, loss_e, atol=tolerance, rtol=tolerance)
    loss_f.backward()
    loss_e.backward()
    for (name, p), q in zip(fused.named_parameters(), explicit.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=10 * tolerance, rtol=10 * tolerance, msg=name)


@pytest.mark.parametrize("tied", [True, False])
def test_gpt_matches_a_stack_of_torch_encoder_layers(tied):
    config = TransformerConfig(n_layer=3, n_head=2, n_embd=16, block_size=10, vocab_size=11, tied_embeddings=tied)
    model = _model(config, double=True)
    layers = []
    for block in model.blocks:
        layers.append(torch_encoder_layer(block, config))
    idx = _ids(2, 10, vocab=11)
    x = model.wte.weight[idx] + model.wpe.weight[:10]
    mask = nn.Transformer.generate_square_subsequent_mask(10, dtype=torch.float64)
    for layer in layers:
        x = layer(x, src_mask=mask, is_causal=True)
    x = F.layer_norm(x, (16,), model.ln_f.weight, model.ln_f.bias)
    head = model.wte.weight if tied else model.lm_head.weight
    torch.testing.assert_close(model(idx)[0], x @ head.T, atol=1e-10, rtol=0)
    assert (model.lm_head.weight is model.wte.weight) == tied


@pytest.mark.parametrize("fused", [True, False])
def test_the_causal_switch_changes_only_the_mask(fused):
    from llmcourse.gpt import Block, CausalSelfAttention, SelfAttention

    decoder, encoder = Block(CONFIG, fused=fused).double().eval(), Block(CONFIG, fused=fused, causal=False).double().eval()
    assert type(decoder.attn) is CausalSelfAttention and decoder.attn.causal and not encoder.attn.causal
    assert isinstance(decoder.attn, SelfAttention)
    encoder.load_state_dict(decoder.state_dict())  # the same parameters, name for name
    x = torch.randn(2, 9, CONFIG.n_embd, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    causal, bidirectional = decoder(x)[0], encoder(x)[0]
    # The last position sees every position under both masks; every earlier one sees more without the mask.
    torch.testing.assert_close(causal[:, -1], bidirectional[:, -1], atol=1e-12, rtol=0)
    assert torch.all((causal[:, :-1] - bidirectional[:, :-1]).abs().amax(-1) > 1e-6)


def test_loss_at_initialisation_is_log_vocab_and_ignore_index():
    config = TransformerConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50)
    torch.manual_seed(0)
    model = GPT(config)  # GPT-2's small init: near-uniform predictions
    idx, targets = _ids(4, 16, vocab=50), _ids(4, 16, seed=5, vocab=50)
    _, loss = model(idx, targets)
    assert loss.item() == pytest.approx(np.log(50), rel=0.02)
    ignored = targets.clone()
    ignored[:, :8] = -1  # ignored positions
    logits, partial = model(idx, ignored)
    expected = F.cross_entropy(logits[:, 8:].reshape(-1, 50), targets[:, 8:].reshape(-1))
    torch.testing.assert_close(partial, expected)


def test_attention_weights_are_causal_distributions():
    model = _model()
    weights = model.attention_weights(_ids(2, 12))
    assert weights.shape == (CONFIG.n_layer, 2, CONFIG.n_head, 12, 12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert torch.all(weights.triu(1) == 0)


def test_residual_stream_ends_in_the_logits():
    model = _model(double=True)
    idx = _ids(2, 10)
    stream = model.residual_stream(idx)
    assert stream.shape == (CONFIG.n_layer + 1, 2, 10, CONFIG.n_embd)
    torch.testing.assert_close(stream[0], model.wte(idx) + model.wpe.weight[:10])
    torch.testing.assert_close(model.lm_head(model.ln_f(stream[-1])), model(idx)[0], atol=1e-12, rtol=0)


def test_bf16_autocast_stays_close_to_float32():
    model = _model()
    idx, targets = _ids(2, 24), _ids(2, 24, seed=3)
    _, loss32 = model(idx, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits16, loss16 = model(idx, targets)
    assert logits16.dtype == torch.bfloat16
    assert loss16.item() == pytest.approx(loss32.item(), rel=3e-2)


# --- the KV cache -------------------------------------------------------------------------------


def test_cached_steps_give_the_same_logits_as_the_full_pass():
    model = _model(double=True)
    idx = _ids(2, 20)
    full, _ = model(idx)
    cache = KVCache(CONFIG, batch_size=2, dtype=torch.float64)
    pieces = [model(idx[:, :5], cache=cache)[0]]  # prefill 5 positions
    pieces.append(model(idx[:, 5:9], cache=cache)[0])  # 4 at once, with past: the offset causal mask
    for t in range(9, 20):
        pieces.append(model(idx[:, t : t + 1], cache=cache)[0])  # one at a time
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-12, rtol=0)
    assert cache.length == 20


@pytest.mark.parametrize("prompt_length, new", [(1, 20), (5, 40)])  # 5 + 40 > block_size: the cropping path too
def test_generation_with_and_without_cache_gives_the_same_tokens(prompt_length, new):
    greedy_model = _model()
    prompt = _ids(3, prompt_length)
    with_cache = generate(greedy_model, prompt, new, temperature=0, use_cache=True)
    without = generate(greedy_model, prompt, new, temperature=0, use_cache=False)
    assert with_cache.shape == (3, prompt_length + new)
    assert torch.equal(with_cache, without)
    assert torch.equal(with_cache[:, :prompt_length], prompt)

    # Sampling: the same seed gives the same draws; float64 keeps the two paths' probabilities identical
    # to ~1e-15, far below the chance that a uniform draw falls between them.
    model = _model(double=True)
    kwargs = dict(temperature=0.8, top_k=6)
    a = generate(model, prompt, new, use_cache=True, generator=torch.Generator().manual_seed(7), **kwargs)
    b = generate(model, prompt, new, use_cache=False, generator=torch.Generator().manual_seed(7), **kwargs)
    assert torch.equal(a, b)
    c = generate(model, prompt, new, use_cache=True, generator=torch.Generator().manual_seed(8), **kwargs)
    assert not torch.equal(a, c)


# --- sampling -----------------------------------------------------------------------------------


def test_next_token_greedy_top_k_and_temperature_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 3.0]])
    assert next_token(logits, temperature=0).item() == 4
    assert next_token(logits, temperature=1.0, top_k=1).item() == 4
    n = 20_000
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([next_token(logits.expand(1000, 5), 0.7, top_k=3, generator=generator) for _ in range(n // 1000)])
    counts = torch.bincount(draws.ravel(), minlength=5).double()
    kept = torch.tensor([0, 1, 4])
    expected = torch.zeros(5, dtype=torch.float64)
    expected[kept] = torch.softmax(logits[0, kept].double() / 0.7, dim=0) * n
    assert counts[2] == 0 and counts[3] == 0  # outside the top 3
    sigma = torch.sqrt(expected * (1 - expected / n))
    assert torch.all((counts[kept] - expected[kept]).abs() < 5 * sigma[kept])


def test_top_p_keeps_the_nucleus_and_a_tiny_nucleus_is_greedy():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 3.0]])  # softmax: 0.232, 0.085, 0.052, 0.011, 0.631
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([next_token(logits.expand(1000, 5), 1.0, generator=generator, top_p=0.8) for _ in range(5)])
    assert set(draws.ravel().tolist()) == {0, 4}  # 0.631 < 0.8 <= 0.631 + 0.232
    model, prompt = _model(), _ids(2, 5)
    greedy = generate(model, prompt, 6, temperature=0)
    tiny_nucleus = generate(model, prompt, 6, temperature=1.0, top_p=1e-6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(greedy, tiny_nucleus)
    with pytest.raises(ValueError, match=r"top_p must be None or a number in \(0, 1\]"):
        generate(model, prompt, 3, top_p=1.5)


# --- bad input --------------------------------------------------------------------------------


def test_errors_are_clear():
    model = _model()
    with pytest.raises(ValueError, match="has 25 positions but the model has only block_size = 24"):
        model(_ids(1, 25))
    cache = KVCache(CONFIG, batch_size=1, max_length=8)
    model(_ids(1, 6), cache=cache)
    with pytest.raises(ValueError, match="the KV cache holds 8 positions and already has 6; it has no room for 3 more"):
        model(_ids(1, 3), cache=cache)
    with pytest.raises(ValueError, match="max_length must be between 1 and block_size"):
        KVCache(CONFIG, batch_size=1, max_length=30)
    with pytest.raises(ValueError, match="unknown preset 'gpt5'"):
        GPT.from_preset("gpt5")
    with pytest.raises(ValueError, match=r"n_embd \(30\) must be divisible by n_head \(4\)"):
        GPT.from_preset("shakespeare-char", n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="GPT needs a decoder config"):
        GPT(TransformerConfig(architecture="bert"))
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        generate(model, _ids(1, 2), 3, temperature=-1)
    with pytest.raises(ValueError, match="top_k must be None or an integer from 1 to the vocabulary size 17"):
        generate(model, _ids(1, 2), 3, top_k=0)
    with pytest.raises(ValueError, match=r"idx must be a \(batch, length\) tensor"):
        generate(model, torch.zeros(3, dtype=torch.long), 3)
