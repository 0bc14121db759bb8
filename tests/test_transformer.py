"""LayerNorm, BatchNorm, positions and the Transformer block (numpy and torch), against torch and the literature.

Oracles: ``torch.nn.LayerNorm``/``BatchNorm1d`` (float64); Ba, Kiros & Hinton (2016), Table 1
for the invariance table; the sinusoid formula evaluated term by term with ``math``;
``torch.nn.TransformerEncoderLayer(norm_first=True)`` with our weights copied in for the
torch block, and that torch layer again for the numpy block.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import torch_encoder_layer
from llmcourse import transformer
from llmcourse.sizing import TransformerConfig
from llmcourse.gpt import Block, LayerNorm


def test_numpy_layer_norm_matches_torch():
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.normal(3, 2, size=(4, 5, 8)), rng.normal(size=8), rng.normal(size=8)
    ln = nn.LayerNorm(8, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(gamma))
        ln.bias.copy_(torch.from_numpy(beta))
    expected = ln(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(transformer.layer_norm(x, gamma, beta), expected, atol=1e-12)
    plain = transformer.layer_norm(x)
    np.testing.assert_allclose(plain.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(plain.var(-1), 1, atol=1e-4)  # eps = 1e-5 keeps it just under 1


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_module_written_out_and_fused_match_torch(bias):
    torch.manual_seed(0)
    x = torch.randn(3, 7, 16, dtype=torch.float64) * 4 + 2
    reference = nn.LayerNorm(16, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.normal_()
        if bias:
            reference.bias.normal_()
    for fused in (True, False):
        ours = LayerNorm(16, bias=bias, fused=fused).double()
        ours.load_state_dict(reference.state_dict())
        torch.testing.assert_close(ours(x), reference(x), atol=1e-12, rtol=0)
    # Gradients agree too (the written-out one goes through autograd's mean, pow and sqrt).
    xs = [x.clone().requires_grad_() for _ in range(2)]
    written = LayerNorm(16, bias=bias, fused=False).double()
    written.load_state_dict(reference.state_dict())
    (written(xs[0]) ** 2).sum().backward()
    (reference(xs[1]) ** 2).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, atol=1e-10, rtol=0)


def test_numpy_batch_norm_matches_torch_training_mode():
    rng = np.random.default_rng(1)
    x, gamma, beta = rng.normal(1, 3, size=(10, 6)), rng.normal(size=6), rng.normal(size=6)
    bn = nn.BatchNorm1d(6, dtype=torch.float64).train()
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    np.testing.assert_allclose(transformer.batch_norm(x, gamma, beta), bn(torch.from_numpy(x)).detach().numpy(), atol=1e-12)


# Ba, Kiros & Hinton (2016), "Layer normalization", Table 1: invariance of each method under each change.
BA_ET_AL_TABLE_1 = {  # change: (batch norm, weight norm, layer norm)
    "weight matrix re-scaling": (True, True, True),
    "weight matrix re-centering": (False, False, True),
    "weight vector re-scaling": (True, True, False),
    "dataset re-scaling": (True, False, True),
    "dataset re-centering": (True, False, False),
    "single training case re-scaling": (False, False, True),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariance_table_reproduces_ba_et_al(seed):
    rows = transformer.normalization_invariances(seed=seed)
    assert [r.change for r in rows] == list(BA_ET_AL_TABLE_1)
    for row in rows:
        assert (row.batch_norm, row.weight_norm, row.layer_norm) == BA_ET_AL_TABLE_1[row.change], row.change


def test_sinusoidal_positions_match_the_formula_term_by_term():
    n, d = 50, 16
    P = transformer.sinusoidal_positions(n, d)
    for i in range(n):
        for j in range(d // 2):
            assert P[i, 2 * j] == pytest.approx(math.sin(i / 10000 ** (2 * j / d)), abs=1e-12)
            assert P[i, 2 * j + 1] == pytest.approx(math.cos(i / 10000 ** (2 * j / d)), abs=1e-12)


@pytest.mark.parametrize("offset", [1, 3, 10])
def test_relative_position_is_a_linear_map(offset):
    """P[i + k] = P[i] R_k with one matrix R_k for every i: least squares finds it with zero residual."""
    P = transformer.sinusoidal_positions(200, 16)
    R, *_ = np.linalg.lstsq(P[:-offset], P[offset:], rcond=None)
    np.testing.assert_allclose(P[:-offset] @ R, P[offset:], atol=1e-8)
    # The map is a rotation (orthogonal). The slow clocks of base 10000 barely turn in 200 positions, which
    # leaves R poorly determined; with base 10 every clock turns and R is pinned down.
    P = transformer.sinusoidal_positions(200, 16, base=10.0)
    R, *_ = np.linalg.lstsq(P[:-offset], P[offset:], rcond=None)
    np.testing.assert_allclose(R.T @ R, np.eye(16), atol=1e-8)


def test_sinusoidal_errors():
    with pytest.raises(ValueError, match="even d"):
        transformer.sinusoidal_positions(10, 7)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_block_matches_torch_pre_norm_encoder_layer_with_causal_mask(fused, bias):
    config = TransformerConfig(n_layer=1, n_head=4, n_embd=16, block_size=12, vocab_size=5, bias=bias)
    torch.manual_seed(1)
    block = Block(config, fused=fused).double().eval()
    for p in block.parameters():  # non-trivial gains, shifts and biases
        nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    ours, weights = block(x, need_weights=True)
    mask = nn.Transformer.generate_square_subsequent_mask(9, dtype=torch.float64)
    expected = torch_encoder_layer(block, config)(x, src_mask=mask, is_causal=True)
    torch.testing.assert_close(ours, expected, atol=1e-10, rtol=0)
    assert weights.shape == (3, 4, 9, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 9, dtype=torch.float64))
    assert torch.all(weights.triu(1) == 0)


@pytest.mark.parametrize("bias", [True, False])
def test_numpy_block_matches_torch_encoder_layer(bias):
    config = TransformerConfig(n_layer=1, n_head=2, n_embd=8, block_size=12, vocab_size=5, bias=bias)
    torch.manual_seed(2)
    block = Block(config).double().eval()
    for p in block.parameters():
        nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    mask = nn.Transformer.generate_square_subsequent_mask(7, dtype=torch.float64)
    expected = torch_encoder_layer(block, config)(x, src_mask=mask, is_causal=True).detach().numpy()
    ours = transformer.transformer_block(x.numpy(), block.numpy_parameters(), n_head=2)
    np.testing.assert_allclose(ours, expected, atol=1e-10)
    # Without the mask every position sees every other: the output changes.
    assert not np.allclose(transformer.transformer_block(x.numpy(), block.numpy_parameters(), 2, causal=False), expected)
    with pytest.raises(ValueError, match=r"params is missing \['W_1'\]"):
        transformer.transformer_block(x.numpy(), {k: v for k, v in block.numpy_parameters().items() if k != "W_1"}, 2)


def test_numpy_gelu_is_torchs_tanh_gelu():
    x = np.linspace(-6, 6, 101)
    np.testing.assert_allclose(transformer.gelu(x), F.gelu(torch.from_numpy(x), approximate="tanh").numpy(), atol=1e-12)


def test_numpy_modules_do_not_import_torch():
    code = "import sys, llmcourse.transformer, llmcourse.attention, llmcourse.sizing; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
