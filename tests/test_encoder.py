"""The causal switch, BERT's masking, the masked LM, and the encoder-decoder.

Oracles: softmax(Q K^T / sqrt(d_head)) V written out per head in float64;
``torch.nn.MultiheadAttention`` carrying our weights (self- and cross-attention, with
and without masks); ``F.cross_entropy`` on the chosen positions only; binomial
tolerances (5 sigma) for the masking rates; published BERT parameter totals
(keras-hub's presets and the bert-base-uncased checkpoint, see tests/test_sizing.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import torch_encoder_layer
from llmcourse import sizing
from llmcourse.encoder import (
    IGNORE_INDEX, CrossAttention, Encoder, EncoderDecoder, MaskedLM, fill_masked, fit, mask_tokens,
)
from llmcourse.gpt import GPT, Block, KVCache, SelfAttention
from llmcourse.sizing import TransformerConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = TransformerConfig(n_layer=2, n_head=4, n_embd=32, block_size=16, vocab_size=21, architecture="bert",
                           pooler=True)


def _ids(batch: int, length: int, seed: int = 1, vocab: int = CONFIG.vocab_size) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def _larger_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights far from GPT-2's small init, so that attention is far from uniform and masks matter."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(std=0.3)
            elif name.endswith("bias"):
                p.normal_(std=0.1)
    return model


def _attention(causal: bool, fused: bool = True, seed: int = 0) -> SelfAttention:
    return _larger_weights(SelfAttention(CONFIG, fused=fused, causal=causal), seed).double().eval()


def _oracle(attn: SelfAttention, x: torch.Tensor, causal: bool, keep: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_head) + mask) v per head, with a Python loop over heads."""
    B, T, d = x.shape
    h = attn.n_head
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
    heads = []
    for i in range(h):
        cols = slice(i * d // h, (i + 1) * d // h)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d // h)  # (B, T, T)
        allowed = torch.ones(B, T, T, dtype=torch.bool)
        if causal:
            allowed &= torch.ones(T, T, dtype=torch.bool).tril()
        if keep is not None:
            allowed &= keep[:, None, :]
        scores = torch.where(allowed, scores, torch.tensor(float("-inf"), dtype=x.dtype))
        heads.append(torch.softmax(scores, dim=-1) @ v[..., cols])
    return torch.cat(heads, dim=-1) @ attn.out.weight.T + attn.out.bias


# --- the causal switch --------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_attention_matches_the_written_out_formula(causal, fused):
    attn = _attention(causal, fused)
    x = torch.randn(3, 10, CONFIG.n_embd, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(attn(x)[0], _oracle(attn, x, causal), atol=1e-12, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_attention_matches_torch_multihead_attention(causal, padded):
    attn = _attention(causal)
    mha = nn.MultiheadAttention(CONFIG.n_embd, CONFIG.n_head, batch_first=True, dtype=torch.float64).eval()
    mha.load_state_dict({"in_proj_weight": attn.qkv.weight, "in_proj_bias": attn.qkv.bias,
                         "out_proj.weight": attn.out.weight, "out_proj.bias": attn.out.bias})
    x = torch.randn(2, 9, CONFIG.n_embd, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    keep = torch.ones(2, 9, dtype=torch.bool)
    keep[1, 6:] = False  # the second sequence has 3 padding positions at its end
    expected, _ = mha(x, x, x, need_weights=False, key_padding_mask=~keep if padded else None,
                      attn_mask=torch.ones(9, 9, dtype=torch.bool).triu(1) if causal else None)  # True = hidden
    for fused in (True, False):
        attn.fused = fused
        got, _ = attn(x, padding_mask=keep if padded else None)
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(got, _oracle(attn, x, causal, keep if padded else None), atol=1e-12, rtol=0)


@pytest.mark.parametrize("fused", [True, False])
def test_only_bidirectional_attention_sees_the_future(fused):
    x = torch.randn(1, 12, CONFIG.n_embd, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    changed = x.clone()
    changed[0, 8] += 1.0  # a change at position 8 only
    for causal in (True, False):
        attn = _attention(causal, fused)
        before, after = attn(x)[0], attn(changed)[0]
        moved = (before - after).abs().amax(dim=-1)[0]  # per position
        assert torch.all(moved[8:] > 1e-3)
        if causal:
            assert torch.all(moved[:8] == 0)
        else:
            assert torch.all(moved[:8] > 1e-3)


def test_bidirectional_block_equals_a_torch_encoder_layer_without_mask():
    block = _larger_weights(Block(CONFIG, causal=False)).double().eval()
    layer = torch_encoder_layer(block, CONFIG)
    x = torch.randn(2, 11, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(block(x)[0], layer.eval()(x), atol=1e-12, rtol=0)


def test_bidirectional_weights_are_full_distributions():
    attn = _attention(causal=False)
    x = torch.randn(2, 7, CONFIG.n_embd, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    _, weights = attn(x, need_weights=True)
    assert weights.shape == (2, CONFIG.n_head, 7, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, CONFIG.n_head, 7, dtype=torch.float64))
    assert torch.all(weights.triu(1).sum((-1, -2)) > 0.1)  # mass above the diagonal: the future is read


def test_padding_hides_what_the_padding_holds():
    model = _larger_weights(Encoder(CONFIG)).double().eval()
    idx = _ids(2, 12)
    keep = torch.ones(2, 12, dtype=torch.bool)
    keep[0, 9:] = False
    other = idx.clone()
    other[0, 9:] = (other[0, 9:] + 5) % CONFIG.vocab_size  # change only what sits in the padding
    a, b = model(idx, padding_mask=keep), model(other, padding_mask=keep)
    torch.testing.assert_close(a[0, :9], b[0, :9], atol=1e-12, rtol=0)
    torch.testing.assert_close(a[1], b[1], atol=0, rtol=0)
    assert (model(idx)[0, :9] - a[0, :9]).abs().max() > 1e-3  # without the mask the padding is read


def test_bidirectional_attention_refuses_a_kv_cache():
    config = TransformerConfig(n_layer=1, n_head=4, n_embd=32, block_size=16)
    attn = SelfAttention(config, causal=False)
    with pytest.raises(ValueError, match="cannot use a KV cache"):
        attn(torch.zeros(1, 3, 32), cache=KVCache(config, 1))


def test_bad_padding_masks():
    attn = _attention(causal=False)
    x = torch.zeros(2, 5, CONFIG.n_embd, dtype=torch.float64)
    with pytest.raises(TypeError, match="bool tensor"):
        attn(x, padding_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="shape"):
        attn(x, padding_mask=torch.ones(2, 4, dtype=torch.bool))
    keep = torch.ones(2, 5, dtype=torch.bool)
    keep[1] = False
    with pytest.raises(ValueError, match="no key"):
        attn(x, padding_mask=keep)
    causal = _attention(causal=True)
    keep = torch.ones(2, 5, dtype=torch.bool)
    keep[0, 0] = False  # left padding: the first query of a causal layer would see nothing
    with pytest.raises(ValueError, match="pad on the right"):
        causal(x, padding_mask=keep)


# --- BERT's masking -----------------------------------------------------------------------------


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("rate", [0.15, 0.4])
def test_mask_tokens_follows_berts_recipe(rate):
    V, mask_id = 50, 50
    ids = _ids(400, 500, seed=7, vocab=V)
    inputs, labels = mask_tokens(ids, mask_id, V, torch.Generator().manual_seed(8), rate)
    chosen = labels != IGNORE_INDEX
    n, k = ids.numel(), int(chosen.sum())
    assert _within(k, n, rate)
    # Labels: the original id where chosen, -100 elsewhere; inputs unchanged where not chosen.
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    # Of the chosen: 80% [MASK]; 10% random (which equals the original with probability 1/V); 10% unchanged.
    masked = int((inputs[chosen] == mask_id).sum())
    same = int((inputs[chosen] == ids[chosen]).sum())
    other = k - masked - same
    assert _within(masked, k, 0.8)
    assert _within(same, k, 0.1 + 0.1 / V)
    assert _within(other, k, 0.1 * (1 - 1 / V))
    # [MASK] appears only where chosen, and random tokens are ordinary tokens.
    assert not torch.any(inputs[~chosen] == mask_id)
    replaced = inputs[chosen & (inputs != mask_id)]
    assert replaced.min() >= 0 and replaced.max() < V
    # The random replacements are spread over the vocabulary, not a few ids.
    assert len(torch.unique(inputs[chosen & (inputs != mask_id) & (inputs != ids)])) > 0.9 * V


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 30), st.integers(2, 40), st.floats(0.01, 0.99), st.integers(0, 2**31))
def test_mask_tokens_properties(batch, length, vocab, rate, seed):
    ids = _ids(batch, length, seed=seed % 1000, vocab=vocab)
    inputs, labels = mask_tokens(ids, vocab, vocab, torch.Generator().manual_seed(seed), rate)
    again = mask_tokens(ids, vocab, vocab, torch.Generator().manual_seed(seed), rate)
    assert torch.equal(inputs, again[0]) and torch.equal(labels, again[1])  # seeded: reproducible
    assert inputs.shape == labels.shape == ids.shape and inputs.dtype == labels.dtype == ids.dtype
    chosen = labels != IGNORE_INDEX
    assert torch.equal(inputs[~chosen], ids[~chosen]) and torch.equal(labels[chosen], ids[chosen])
    assert torch.all((inputs[chosen] == vocab) | (inputs[chosen] < vocab))


def test_mask_tokens_errors():
    ids, g = _ids(2, 8), torch.Generator().manual_seed(0)
    for rate in (0, 1, 1.5, -0.1, True, "0.15"):
        with pytest.raises(ValueError, match="rate must be a probability"):
            mask_tokens(ids, 21, 21, g, rate)
    with pytest.raises(TypeError, match="integer tensor"):
        mask_tokens(ids.float(), 21, 21, g)
    with pytest.raises(TypeError, match="torch.Generator"):
        mask_tokens(ids, 21, 21, None)
    with pytest.raises(ValueError, match="mask_id"):
        mask_tokens(ids, -1, 21, g)
    with pytest.raises(ValueError, match="vocab_size - 1"):
        mask_tokens(ids, 21, 10, g)


# --- the masked language model ------------------------------------------------------------------


def test_mlm_loss_counts_only_the_chosen_positions():
    torch.manual_seed(0)
    model = MaskedLM(CONFIG).eval()
    ids = _ids(4, 16, vocab=20)
    inputs, labels = mask_tokens(ids, 20, 20, torch.Generator().manual_seed(9), rate=0.3)
    logits, loss = model(inputs, labels)
    chosen = labels != IGNORE_INDEX
    torch.testing.assert_close(loss, F.cross_entropy(logits[chosen], ids[chosen]))
    assert loss.item() == pytest.approx(math.log(CONFIG.vocab_size), rel=0.05)  # near-uniform at initialisation


def test_mlm_training_lowers_the_loss():
    torch.manual_seed(0)
    model = MaskedLM(CONFIG)
    ids = _ids(8, 16, seed=10, vocab=20)

    def batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_tokens(ids, 20, 20, generator, rate=0.3)

    losses = fit(model, batch, steps=60, learning_rate=3e-3)
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    assert not model.training


def test_fill_masked_changes_only_the_masks():
    torch.manual_seed(0)
    model = MaskedLM(CONFIG)
    idx = _ids(3, 10, vocab=20)
    idx[:, [2, 7]] = 20
    filled = fill_masked(model, idx, 20)
    keep = idx != 20
    assert torch.equal(filled[keep], idx[keep])
    torch.testing.assert_close(filled[~keep], model(idx)[0].argmax(-1)[~keep])
    assert model.training  # restored


@pytest.mark.parametrize("fused", [True, False])
def test_encoder_is_fully_bidirectional(fused):
    model = _larger_weights(MaskedLM(CONFIG, fused=fused)).double().eval()
    idx = _ids(1, 12)
    other = idx.clone()
    other[0, 11] = (other[0, 11] + 1) % CONFIG.vocab_size  # change the last token only
    moved = (model(idx)[0] - model(other)[0]).abs().amax(-1)[0]
    assert torch.all(moved > 1e-6)  # every position, the first included, sees it


def test_encoder_fused_and_explicit_agree():
    fused = _larger_weights(MaskedLM(CONFIG)).double().eval()
    explicit = MaskedLM(CONFIG, fused=False).double().eval()
    explicit.load_state_dict(fused.state_dict())
    idx = _ids(3, 16)
    keep = torch.ones(3, 16, dtype=torch.bool)
    keep[2, 10:] = False
    torch.testing.assert_close(fused(idx, padding_mask=keep)[0], explicit(idx, padding_mask=keep)[0],
                               atol=1e-10, rtol=0)


def test_segments_and_pooler():
    model = _larger_weights(Encoder(CONFIG)).double().eval()
    idx = _ids(2, 8)
    zeros = torch.zeros_like(idx)
    torch.testing.assert_close(model(idx), model(idx, zeros), atol=0, rtol=0)
    assert (model(idx) - model(idx, torch.ones_like(idx))).abs().max() > 1e-3
    hidden = model(idx)
    pooled = model.pool(hidden)
    torch.testing.assert_close(pooled, torch.tanh(hidden[:, 0] @ model.pooler.weight.T + model.pooler.bias))
    with pytest.raises(ValueError, match="no pooler"):
        Encoder(sizing.preset("bert-base", n_layer=1, n_embd=32, n_head=2, pooler=False)).pool(hidden)


@pytest.mark.parametrize("name, overrides, cls, published", [
    # keras-hub's bert_presets.py (encoder + pooler), and BertForMaskedLM of bert-base-uncased (MLM head, no pooler).
    ("bert-base", {}, Encoder, 109_482_240),
    ("bert-large", {}, Encoder, 335_141_888),
    ("bert-base", {"n_layer": 2, "n_head": 2, "n_embd": 128}, Encoder, 4_385_920),
    ("bert-base", {"pooler": False}, MaskedLM, 109_514_298),
])
def test_bert_parameter_counts_match_published_totals(name, overrides, cls, published):
    with torch.device("meta"):  # shapes without memory: BERT-large would take 1.3 GB
        model = cls(sizing.preset(name, **overrides))
    assert model.num_parameters() == published
    assert sizing.parameter_count(model.config) == published


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.sampled_from([(2, 16), (4, 32), (3, 24)]), st.integers(4, 40), st.booleans(),
       st.booleans(), st.booleans())
def test_parameter_counts_equal_sizing(n_layer, heads_width, vocab, bias, tied, pooler):
    n_head, n_embd = heads_width
    config = TransformerConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=12, vocab_size=vocab,
                               bias=bias, tied_embeddings=tied, pooler=pooler, architecture="bert")
    with torch.device("meta"):
        encoder, mlm = Encoder(config), MaskedLM(config)
    assert encoder.num_parameters() == sizing.parameter_count(config)
    assert mlm.num_parameters() == sizing.parameter_count(mlm.config)
    assert mlm.config.mlm_head and not config.mlm_head


def test_encoder_errors():
    with pytest.raises(ValueError, match="architecture='bert'"):
        Encoder(TransformerConfig())
    with pytest.raises(ValueError, match="architecture='bert'"):
        MaskedLM(TransformerConfig())
    with pytest.raises(ValueError, match="architecture='gpt'"):
        GPT(CONFIG)
    with pytest.raises(ValueError, match="next-sentence"):
        MaskedLM(sizing.preset("bert-base", nsp_head=True))
    with pytest.raises(TypeError, match="TransformerConfig"):
        Encoder({"n_layer": 2})
    model = MaskedLM(CONFIG)
    with pytest.raises(ValueError, match="block_size"):
        model(_ids(1, 17))
    with pytest.raises(ValueError, match="outside 0 .. 20"):
        model(torch.full((1, 4), 21))
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="labels must have the shape"):
        model(_ids(1, 4), _ids(1, 5))
    with pytest.raises(ValueError, match="steps"):
        fit(model, lambda g: (_ids(1, 4), _ids(1, 4)), steps=0)


# --- the encoder-decoder ------------------------------------------------------------------------

SEQ2SEQ = TransformerConfig(n_layer=2, n_head=4, n_embd=32, block_size=12, vocab_size=13)


def test_cross_attention_matches_torch_multihead_attention():
    cross = _larger_weights(CrossAttention(SEQ2SEQ)).double().eval()
    mha = nn.MultiheadAttention(32, 4, batch_first=True, dtype=torch.float64).eval()
    mha.load_state_dict({"in_proj_weight": torch.cat([cross.q.weight, cross.kv.weight]),
                         "in_proj_bias": torch.cat([cross.q.bias, cross.kv.bias]),
                         "out_proj.weight": cross.out.weight, "out_proj.bias": cross.out.bias})
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 5, 32, generator=g, dtype=torch.float64)
    memory = torch.randn(2, 9, 32, generator=g, dtype=torch.float64)
    keep = torch.ones(2, 9, dtype=torch.bool)
    keep[0, 7:] = False
    expected, expected_weights = mha(x, memory, memory, key_padding_mask=~keep, average_attn_weights=False)
    for fused in (True, False):
        cross.fused = fused
        torch.testing.assert_close(cross(x, memory, memory_mask=keep)[0], expected, atol=1e-12, rtol=0)
    got, weights = cross(x, memory, need_weights=True, memory_mask=keep)
    torch.testing.assert_close(weights, expected_weights, atol=1e-12, rtol=0)
    assert torch.all(weights[0, :, :, 7:] == 0)


def test_encoder_decoder_masks():
    model = _larger_weights(EncoderDecoder(SEQ2SEQ)).double().eval()
    source, target = _ids(1, 10, vocab=13), _ids(1, 8, seed=2, vocab=13)
    logits, _ = model(source, target)
    later = target.clone()
    later[0, 5] = (later[0, 5] + 1) % 13
    moved = (model(source, later)[0] - logits).abs().amax(-1)[0]
    assert torch.all(moved[:5] == 0) and torch.all(moved[5:] > 1e-6)  # the decoder is causal
    last_source = source.clone()
    last_source[0, 9] = (last_source[0, 9] + 1) % 13
    assert torch.all((model(last_source, target)[0] - logits).abs().amax(-1) > 1e-6)  # every step sees all the source
    keep = torch.ones(1, 10, dtype=torch.bool)
    keep[0, 8:] = False
    torch.testing.assert_close(model(source, target, source_mask=keep)[0], model(source[:, :8], target)[0],
                               atol=1e-12, rtol=0)  # masking padding = removing it
    explicit = EncoderDecoder(SEQ2SEQ, fused=False).double().eval()
    explicit.load_state_dict(model.state_dict())
    torch.testing.assert_close(explicit(source, target)[0], logits, atol=1e-10, rtol=0)


def test_encoder_decoder_learns_to_reverse():
    torch.manual_seed(0)
    model = EncoderDecoder(SEQ2SEQ)
    start = 12

    def batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        source = torch.randint(0, 12, (32, 5), generator=generator)
        target = source.flip(1)
        return source, torch.cat([torch.full((32, 1), start), target[:, :-1]], 1), target

    losses = fit(model, batch, steps=150, learning_rate=3e-3)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    source = _ids(4, 5, seed=3, vocab=12)
    out = model.generate(source, start, 5)
    assert out.shape == (4, 5)
    assert (out == source.flip(1)).float().mean() > 0.5
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(source, start, 12)


def test_encoder_vs_decoder_experiment_at_toy_size():
    from llmcourse.experiments.encoder_vs_decoder import run

    record = run(steps=4, eval_every=2, n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
                 learning_rate=3e-3, eval_windows=16, seed=0)
    assert [e["step"] for e in record["evals"]] == [2, 4]
    assert len(record["mlm_losses"]) == len(record["gpt_losses"]) == 4
    for e in record["evals"]:
        assert 0 <= e["encoder_accuracy"] <= 1 and 0 <= e["decoder_accuracy"] <= 1
        # Near-uniform models at the start: cross-entropy close to log(vocabulary size).
        assert abs(e["encoder_loss"] - math.log(66)) < 0.5 and abs(e["decoder_loss"] - math.log(65)) < 0.5
    assert record["parameters"]["encoder"] > record["parameters"]["decoder"]  # segments, MLM head, [MASK]
    assert all(x["true"].isalpha() and len(x["encoder"]) == 1 for x in record["examples"])
    assert record["decoder_sample"].startswith("ROMEO:\n")
