"""Parameter, FLOP and memory calculators, against instantiated models and published totals.

Oracles: ``sum(p.numel())`` of torch models built two ways (the course's GPT, and a
GPT and a BERT assembled here from ``torch.nn.TransformerEncoderLayer``); published
parameter totals; ``torch.utils.flop_counter.FlopCounterMode``; the bytes of the
tensors an AdamW step allocates; the tensors autograd saves
(``torch.autograd.graph.saved_tensors_hooks``).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from llmcourse import sizing
from llmcourse.gpt import GPT
from llmcourse.sizing import TransformerConfig
from llmcourse.gpt import KVCache


@st.composite
def small_configs(draw: st.DrawFn, architecture: str = "gpt") -> TransformerConfig:
    n_head = draw(st.integers(1, 4))
    return TransformerConfig(
        n_layer=draw(st.integers(1, 3)),
        n_head=n_head,
        n_embd=n_head * draw(st.integers(1, 6)),
        block_size=draw(st.integers(1, 24)),
        vocab_size=draw(st.integers(2, 40)),
        tied_embeddings=draw(st.booleans()),
        bias=draw(st.booleans()),
        mlp_ratio=draw(st.integers(1, 4)),
        architecture=architecture,
        type_vocab_size=draw(st.integers(1, 3)),
        pooler=draw(st.booleans()),
        mlm_head=draw(st.booleans()),
        nsp_head=draw(st.booleans()),
    )


def _numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied (shared) parameter is listed once


def _torch_layer(config: TransformerConfig, norm_first: bool) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(
        config.n_embd, config.n_head, dim_feedforward=config.d_ff, dropout=0.0, activation="gelu",
        batch_first=True, norm_first=norm_first, bias=config.bias,
    )


def torch_gpt(config: TransformerConfig) -> nn.Module:
    """A GPT-shaped stack from torch's own layers: embeddings, pre-norm layers, final norm, head."""
    model = nn.Module()
    model.wte = nn.Embedding(config.vocab_size, config.n_embd)
    model.wpe = nn.Embedding(config.block_size, config.n_embd)
    model.layers = nn.ModuleList(_torch_layer(config, norm_first=True) for _ in range(config.n_layer))
    model.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
    model.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
    if config.tied_embeddings:
        model.head.weight = model.wte.weight
    return model


def torch_bert(config: TransformerConfig) -> nn.Module:
    """BERT as in Devlin et al. / Hugging Face's BertModel, from torch's post-norm encoder layers."""
    d = config.n_embd
    model = nn.Module()
    model.word = nn.Embedding(config.vocab_size, d)
    model.position = nn.Embedding(config.block_size, d)
    model.token_type = nn.Embedding(config.type_vocab_size, d)
    model.embedding_norm = nn.LayerNorm(d, bias=config.bias)
    model.layers = nn.ModuleList(_torch_layer(config, norm_first=False) for _ in range(config.n_layer))
    if config.pooler:
        model.pooler = nn.Linear(d, d, bias=config.bias)
    if config.mlm_head:
        model.transform = nn.Linear(d, d, bias=config.bias)
        model.transform_norm = nn.LayerNorm(d, bias=config.bias)
        model.decoder = nn.Linear(d, config.vocab_size, bias=config.bias)
        if config.tied_embeddings:
            model.decoder.weight = model.word.weight
    if config.nsp_head:
        model.nsp = nn.Linear(d, 2, bias=config.bias)
    return model


# --- counts equal instantiated models ------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(small_configs())
def test_gpt_counts_equal_instantiated_models(config):
    expected = sizing.parameter_count(config)
    assert _numel(GPT(config)) == expected
    assert _numel(torch_gpt(config)) == expected


@settings(max_examples=30, deadline=None)
@given(small_configs(architecture="bert"))
def test_bert_counts_equal_an_instantiated_encoder(config):
    assert _numel(torch_bert(config)) == sizing.parameter_count(config)


@settings(max_examples=15, deadline=None)
@given(small_configs())
def test_components_match_the_modules_that_hold_them(config):
    model = GPT(config)
    counts = sizing.parameter_counts(config)
    by_part = {"attn.": 0, "mlp.": 0, "ln_": 0}
    for name, p in model.named_parameters():
        for part in by_part:
            if part in name:
                by_part[part] += p.numel()
    assert by_part["attn."] == counts.attention
    assert by_part["mlp."] == counts.mlp
    assert by_part["ln_"] == counts.norms
    assert model.wte.weight.numel() == counts.token_embeddings and model.wpe.weight.numel() == counts.position_embeddings
    assert counts.head == (0 if config.tied_embeddings else model.lm_head.weight.numel())


# --- published totals -------------------------------------------------------------------------


# Sources: the four GPT-2 totals are what Hugging Face's GPT2LMHeadModel reports for the released
# checkpoints, also listed as "params" in keras-hub's gpt2_presets.py (124439808, 354823168, 774030080,
# 1557611200). BERT: keras-hub's bert_presets.py lists 4385920 (tiny, L=2 H=128), 28763648 (small, L=4
# H=512), 109482240 (base uncased) and 335141888 (large uncased) for the encoder with its pooler; issue
# google-research/bert#1225 reports 109,482,240 from sum(p.nelement()) of BERT-Base Uncased. The
# bert-base-uncased checkpoint (BertForPreTraining: + MLM and NSP heads) holds 110,106,428 parameters
# (its safetensors header, quoted in huggingface.js's tests); BertForMaskedLM (MLM head, no pooler) 109,514,298.
@pytest.mark.parametrize(
    "name, overrides, total",
    [
        ("gpt2", {}, 124_439_808),
        ("gpt2-medium", {}, 354_823_168),
        ("gpt2-large", {}, 774_030_080),
        ("gpt2-xl", {}, 1_557_611_200),
        ("bert-base", {}, 109_482_240),
        ("bert-large", {}, 335_141_888),
        ("bert-base", {"n_layer": 2, "n_head": 2, "n_embd": 128}, 4_385_920),
        ("bert-base", {"n_layer": 4, "n_head": 8, "n_embd": 512}, 28_763_648),
        ("bert-base", {"mlm_head": True, "nsp_head": True}, 110_106_428),
        ("bert-base", {"mlm_head": True, "pooler": False}, 109_514_298),
    ],
)
def test_published_totals(name, overrides, total):
    assert sizing.parameter_count(sizing.preset(name, **overrides)) == total


def test_paper_rounded_totals():
    # Brown et al. (2020), Table 2.1: 175.0B; Devlin et al. (2019): BERT-base 110M, BERT-large 340M.
    assert sizing.parameter_count(sizing.preset("gpt3")) / 1e9 == pytest.approx(175.0, rel=0.005)
    assert round(sizing.parameter_count(sizing.preset("bert-base")) / 1e6, -1) == 110
    assert sizing.parameter_count(sizing.preset("bert-large")) / 1e6 == pytest.approx(340, rel=0.02)
    # nanoGPT prints 123.65M for GPT-2: it leaves out the position embeddings.
    gpt2 = sizing.parameter_counts(sizing.preset("gpt2"))
    assert round((gpt2.total - gpt2.position_embeddings) / 1e6, 2) == 123.65
    # Untying GPT-2's head adds one more 50257 x 768 matrix: the 163M some reimplementations report.
    assert sizing.parameter_count(sizing.preset("gpt2", tied_embeddings=False)) == 124_439_808 + 50257 * 768


def test_gpt3_napkin_estimate_and_what_it_leaves_out():
    napkin = sizing.napkin_estimate(sizing.preset("gpt3"))
    # The lecture's arithmetic, literally (its "50527" is a transposition of GPT-3's 50257 tokens).
    assert napkin.estimate == 50257 * 12288 + 96 * (12288 * 128 * 3 * 96 + 12288 * 12288 * 9)
    assert round(napkin.estimate / 1e9, 1) == 174.6
    assert napkin.omitted == {
        "position embeddings": 2048 * 12288,
        "biases": 96 * (3 * 12288 + 12288 + 4 * 12288 + 12288),  # q, k, v; W_o; W_1; W_2
        "layer norms": (2 * 96 + 1) * 2 * 12288,  # two per block and the final one, gain and shift each
    }
    assert napkin.estimate + sum(napkin.omitted.values()) == napkin.full == sizing.parameter_count(sizing.preset("gpt3"))


@settings(max_examples=20, deadline=None)
@given(st.one_of(small_configs(), small_configs("bert")))
def test_napkin_plus_omitted_is_the_full_count(config):
    napkin = sizing.napkin_estimate(config)
    assert napkin.estimate + sum(napkin.omitted.values()) == napkin.full == sizing.parameter_count(config)
    assert all(n > 0 for n in napkin.omitted.values())


# --- FLOPs ------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(small_configs(), st.integers(1, 3))
def test_flops_match_torch_flop_counter(config, batch):
    """FlopCounterMode counts 2 FLOPs per multiply-add of every matrix product (attention written out)."""
    torch.manual_seed(0)
    model = GPT(config, fused=False)
    T = config.block_size
    idx = torch.randint(0, config.vocab_size, (batch, T))
    with FlopCounterMode(display=False) as forward_counter:
        _, loss = model(idx, idx)
    assert forward_counter.get_total_flops() == batch * T * sizing.forward_flops_per_token(config, T)
    with FlopCounterMode(display=False) as backward_counter:
        loss.backward()
    total = forward_counter.get_total_flops() + backward_counter.get_total_flops()
    assert total == batch * T * sizing.training_flops_per_token(config, T)
    assert sizing.training_flops(config, batch * T, T) == total


def test_six_n_d_and_the_attention_term():
    gpt3 = sizing.preset("gpt3")
    # GPT-3 175B on 300B tokens: about 3.14e23 FLOPs (Brown et al. 2020, Table D.1: 3.64e3 petaflop/s-days).
    assert sizing.six_n_d(175e9, 300e9) == pytest.approx(3.15e23)
    assert sizing.training_flops(gpt3, 300e9) / (3640 * 1e15 * 86400) == pytest.approx(1.0, rel=0.03)
    # The attention term 12 L T d is small next to 6 N when d >> T / 6 ...
    n = sizing.matmul_parameters(gpt3)
    assert 12 * 96 * 2048 * 12288 / (6 * n) < 0.03
    # ... and dominant for a small, long-context model.
    small = TransformerConfig(n_layer=2, n_head=2, n_embd=64, block_size=8192, vocab_size=100)
    assert 12 * 2 * 8192 * 64 > 6 * sizing.matmul_parameters(small)


# --- memory -------------------------------------------------------------------------------------


def test_kv_cache_bytes_match_the_cache_tensors():
    config = TransformerConfig(n_layer=3, n_head=4, n_embd=32, block_size=20, vocab_size=10)
    for dtype, torch_dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        cache = KVCache(config, batch_size=5, max_length=16, dtype=torch_dtype)
        measured = cache.keys.nbytes + cache.values.nbytes
        assert sizing.kv_cache_bytes(config, batch_size=5, context=16, dtype=dtype) == measured
    # GPT-3, one sequence of 2048 tokens in 16-bit floats: 9.66 GB.
    assert sizing.kv_cache_bytes(sizing.preset("gpt3"), 1) == 2 * 96 * 2048 * 12288 * 2


@pytest.mark.parametrize("bias", [True, False])
def test_weights_gradients_and_adam_state_match_torch(bias):
    config = TransformerConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=20, bias=bias)
    model = GPT(config)
    optimizer = model.configure_optimizer(0.1, 1e-3, (0.9, 0.95))
    idx = torch.randint(0, 20, (2, 8))
    model(idx, idx)[1].backward()
    optimizer.step()
    params = list(model.parameters())
    state_bytes = sum(
        t.nbytes for s in optimizer.state.values() for key, t in s.items() if key != "step"  # "step" is a scalar
    )
    memory = sizing.training_memory(config, batch_size=2, context=8)
    assert memory.weights == sum(p.nbytes for p in params)
    assert memory.gradients == sum(p.grad.nbytes for p in params)
    assert memory.optimizer == state_bytes
    # Mixed precision: 2 + 2 bytes of 16-bit weights and gradients + 12 of fp32 master and Adam = ZeRO's 16.
    mixed = sizing.training_memory(config, batch_size=2, context=8, param_dtype="bfloat16")
    n = sizing.parameter_count(config)
    assert (mixed.weights, mixed.gradients, mixed.optimizer) == (2 * n, 2 * n, 12 * n)


def _saved_activation_bytes(model: nn.Module, idx: torch.Tensor, targets: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass (parameters excluded)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(idx, targets)
    return sum(n for ptr, n in storages.items() if ptr not in parameters)


@pytest.mark.parametrize("flash", [True, False])
@pytest.mark.parametrize("shape", [(2, 2, 32, 16, 3, 50, True), (3, 4, 64, 32, 2, 70, False), (1, 1, 16, 8, 1, 10, True)])
def test_activation_bytes_match_what_autograd_saves(shape, flash):
    L, h, d, T, B, V, bias = shape
    config = TransformerConfig(n_layer=L, n_head=h, n_embd=d, block_size=T, vocab_size=V, bias=bias)
    torch.manual_seed(0)
    model = GPT(config, fused=flash)
    for module in model.modules():  # the written-out LayerNorm keeps 3 copies of x; the formula counts the fused one
        if hasattr(module, "eps"):
            module.fused = True
    idx, targets = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    measured = _saved_activation_bytes(model, idx, targets)
    assert measured == sizing.activation_bytes(config, B, T, dtype="float32", flash_attention=flash)


def test_gpt2_training_memory_orders_of_magnitude():
    memory = sizing.training_memory(sizing.preset("gpt2"), batch_size=12, context=1024)
    assert memory.weights + memory.gradients + memory.optimizer == 16 * 124_439_808
    # Activations dwarf the 2 GB of weights and optimizer state at batch 12 x 1024: about 7.2 GB in the
    # blocks and 2.5 GB of float32 log-probabilities over 50257 tokens at 12,288 positions ...
    assert 9.5e9 < memory.activations < 10e9
    assert 4 * 12 * 1024 * 50257 / memory.activations == pytest.approx(0.25, abs=0.01)
    # ... and keeping the attention weights would add 12 layers x 12 heads x 1024^2 x 12 x 4 bytes.
    plain = sizing.training_memory(sizing.preset("gpt2"), batch_size=12, context=1024, flash_attention=False)
    assert plain.activations - memory.activations == pytest.approx(12 * 12 * 1024**2 * 12 * 4, rel=0.01)


# --- bad input ------------------------------------------------------------------------------


def test_bad_configs_and_names():
    with pytest.raises(ValueError, match=r"n_embd \(770\) must be divisible by n_head \(12\)"):
        TransformerConfig(n_embd=770, n_head=12)
    with pytest.raises(ValueError, match="n_layer must be an integer >= 1"):
        TransformerConfig(n_layer=0)
    with pytest.raises(ValueError, match="architecture must be 'gpt'"):
        TransformerConfig(architecture="t5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown preset 'gpt4'; the presets are: gpt2, gpt2-medium"):
        sizing.preset("gpt4")
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['layers'\]"):
        sizing.preset("gpt2", layers=3)
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        sizing.kv_cache_bytes(sizing.preset("gpt2"), 1, dtype="fp8")
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        sizing.training_memory(sizing.preset("gpt2"), 1, optimizer="lion")
    with pytest.raises(ValueError, match="context must be an integer >= 1"):
        sizing.forward_flops_per_token(sizing.preset("gpt2"), context=0)


# --- mixture of experts: total vs active parameters ---------------------------------------------


def torch_moe(config: sizing.MoEConfig, routed: int | None = None) -> nn.Module:
    """A mixture-of-experts decoder from torch layers on the meta device (no memory), laid out as Hugging Face's
    Mixtral and DeepSeek-V3 modules. With ``routed``, only that many routed experts per MoE layer are built."""
    d, h, dh = config.d_model, config.n_head, config.head_dim
    meta = dict(bias=False, device="meta")

    def mlp(d_ff: int) -> nn.Module:
        m = nn.Module()
        m.up, m.down = nn.Linear(d, d_ff, **meta), nn.Linear(d_ff, d, **meta)
        if config.gated:
            m.gate = nn.Linear(d, d_ff, **meta)
        return m

    def attention() -> nn.Module:
        a = nn.Module()
        if config.attention == "gqa":
            kv = (config.n_kv_head or h) * dh
            a.q, a.k, a.v = nn.Linear(d, h * dh, **meta), nn.Linear(d, kv, **meta), nn.Linear(d, kv, **meta)
            a.o = nn.Linear(h * dh, d, **meta)
        else:
            rope, dv, rq, rkv = config.qk_rope_head_dim, config.v_head_dim or dh, config.q_lora_rank, config.kv_lora_rank
            if rq:  # queries through a rank-rq bottleneck (DeepSeek-V3), or straight from x (DeepSeek-V2-Lite)
                a.q_a, a.q_a_norm = nn.Linear(d, rq, **meta), nn.RMSNorm(rq, device="meta")
                a.q_b = nn.Linear(rq, h * (dh + rope), **meta)
            else:
                a.q = nn.Linear(d, h * (dh + rope), **meta)
            a.kv_a, a.kv_a_norm = nn.Linear(d, rkv + rope, **meta), nn.RMSNorm(rkv, device="meta")
            a.kv_b = nn.Linear(rkv, h * (dh + dv), **meta)
            a.o = nn.Linear(h * dv, d, **meta)
        return a

    model = nn.Module()
    model.embed = nn.Embedding(config.vocab_size, d, device="meta")
    model.layers = nn.ModuleList()
    for i in range(config.n_layer):
        block = nn.Module()
        block.attn, block.norm1, block.norm2 = attention(), nn.RMSNorm(d, device="meta"), nn.RMSNorm(d, device="meta")
        if i < config.n_dense_layers:
            block.mlp = mlp(config.dense_d_ff)
        else:
            block.router = nn.Linear(d, config.n_routed_experts, **meta)
            if config.router_bias:
                block.router_bias = nn.Parameter(torch.zeros(config.n_routed_experts, device="meta"))
            count = config.n_routed_experts if routed is None else routed
            block.experts = nn.ModuleList(mlp(config.expert_d_ff) for _ in range(count))
            block.shared = nn.ModuleList(mlp(config.expert_d_ff) for _ in range(config.n_shared_experts))
        model.layers.append(block)
    model.norm = nn.RMSNorm(d, device="meta")
    model.head = nn.Linear(d, config.vocab_size, **meta)
    if config.tied_embeddings:
        model.head.weight = model.embed.weight
    return model


# DeepSeek-V3's shapes with fewer layers and experts (the full model would build ~47k modules).
SMALL_DEEPSEEK = sizing.moe_preset("deepseek-v3", n_layer=5, n_dense_layers=2, n_routed_experts=16, experts_per_token=4)


@pytest.mark.parametrize("config", [
    sizing.moe_preset("mixtral-8x7b", n_layer=2),  # Mixtral's shapes, 2 of its 32 layers
    SMALL_DEEPSEEK,
    sizing.moe_preset("deepseek-v3", n_layer=2, n_dense_layers=0, n_routed_experts=4, q_lora_rank=0,
                      experts_per_token=1, router_bias=False),
    sizing.MoEConfig(n_layer=2, d_model=24, vocab_size=50, n_head=4, head_dim=6, n_routed_experts=5,
                     experts_per_token=2, n_shared_experts=2, expert_d_ff=10, n_dense_layers=1, dense_d_ff=40,
                     gated=False, tied_embeddings=True),
], ids=["mixtral", "deepseek-small", "mla-no-q-rank", "tiny-tied"])  # fmt: skip
def test_moe_counts_match_torch_modules(config):
    counts = sizing.moe_parameter_counts(config)
    assert counts.total == _numel(torch_moe(config))
    assert counts.active == _numel(torch_moe(config, routed=config.experts_per_token))  # the experts a token uses


def test_moe_counts_match_published_totals():
    # Mixtral 8x7B: 46.7B total / 12.9B active (Mistral AI). Our exact count is 46,702,792,704 / 12,879,925,248.
    mixtral = sizing.moe_parameter_counts(sizing.moe_preset("mixtral-8x7b"))
    assert mixtral.total == pytest.approx(46.7e9, rel=1e-3) and mixtral.active == pytest.approx(12.9e9, rel=5e-3)
    # DeepSeek-V3: 671B total / 37B active (report abstract). The total matches to 0.01%; the active count
    # (37.55B with the input embedding and the output head) is 1.5% above "37B", a rounded-down figure
    # (without the 0.93B input embedding, which a token only looks up, it is 36.6B): tolerance 2%.
    v3 = sizing.moe_parameter_counts(sizing.moe_preset("deepseek-v3"))
    assert v3.total == pytest.approx(671e9, rel=1e-3)
    assert v3.active == pytest.approx(37e9, rel=0.02)
    assert v3.active - v3.embeddings == pytest.approx(37e9, rel=0.02)
    for name, (total, active) in sizing.PUBLISHED_MOE_PARAMETERS.items():
        counts = sizing.moe_parameter_counts(sizing.moe_preset(name))
        assert counts.total == pytest.approx(total, rel=1e-3) and counts.active == pytest.approx(active, rel=0.02)
    # Only ~5.6% of DeepSeek-V3's parameters meet a given token; Mixtral uses ~28% of its own.
    assert v3.active / v3.total == pytest.approx(0.056, abs=0.001)
    assert mixtral.active / mixtral.total == pytest.approx(0.276, abs=0.001)


@settings(max_examples=25, deadline=None)
@given(n_experts=st.integers(1, 64), k=st.integers(1, 8), shared=st.integers(0, 2), layers=st.integers(1, 4))
def test_more_experts_add_parameters_not_active_ones(n_experts, k, shared, layers):
    k = min(k, n_experts)
    base = dict(n_layer=layers, d_model=16, vocab_size=30, n_head=2, head_dim=8, expert_d_ff=32,
                experts_per_token=k, n_shared_experts=shared)
    small = sizing.moe_parameter_counts(sizing.MoEConfig(n_routed_experts=n_experts, **base))
    large = sizing.moe_parameter_counts(sizing.MoEConfig(n_routed_experts=2 * n_experts, **base))
    router = layers * 16 * n_experts  # doubling the experts doubles the router's rows too
    assert large.active == small.active + router  # compute per token barely moves ...
    assert large.total - small.total == layers * n_experts * 3 * 16 * 32 + router  # ... while the model grows
    everyone = sizing.moe_parameter_counts(sizing.MoEConfig(n_routed_experts=k, **base))
    assert everyone.active == everyone.total  # routing to every expert makes the model dense


def test_moe_training_flops_is_six_active_matmul_weights_per_token():
    config = sizing.moe_preset("mixtral-8x7b")
    counts = sizing.moe_parameter_counts(config)
    # Per token: attention 41,943,040 + 2 experts x 176,160,768 + router 32,768 per layer, and the 4096 x 32000 head.
    per_layer = 4096 * 4096 * 2 + 2 * 4096 * 1024 + 2 * 3 * 4096 * 14336 + 4096 * 8
    assert counts.active_matmul == 32 * per_layer + 4096 * 32000
    assert sizing.moe_training_flops(config, 1e12) == pytest.approx(6 * counts.active_matmul * 1e12)


def test_bad_moe_configs():
    with pytest.raises(ValueError, match=r"experts_per_token \(3\) cannot exceed n_routed_experts \(2\)"):
        sizing.MoEConfig(n_layer=1, d_model=8, vocab_size=10, n_head=2, head_dim=4, n_routed_experts=2,
                         experts_per_token=3)
    with pytest.raises(ValueError, match=r"n_head \(6\) must be a multiple of n_kv_head \(4\)"):
        sizing.MoEConfig(n_layer=1, d_model=8, vocab_size=10, n_head=6, head_dim=4, n_kv_head=4)
    with pytest.raises(ValueError, match="attention='mla' needs kv_lora_rank"):
        sizing.MoEConfig(n_layer=1, d_model=8, vocab_size=10, n_head=2, head_dim=4, attention="mla")
    with pytest.raises(ValueError, match="set dense_d_ff"):
        sizing.MoEConfig(n_layer=2, d_model=8, vocab_size=10, n_head=2, head_dim=4, n_dense_layers=1)
    with pytest.raises(ValueError, match="n_shared_experts must be an integer >= 0"):
        sizing.MoEConfig(n_layer=1, d_model=8, vocab_size=10, n_head=2, head_dim=4, n_shared_experts=-1)
    with pytest.raises(ValueError, match="unknown MoE preset 'gpt4'"):
        sizing.moe_preset("gpt4")
    with pytest.raises(ValueError, match="tokens must be >= 0"):
        sizing.moe_training_flops(sizing.moe_preset("mixtral-8x7b"), -1)
