"""Scaling laws, compute-optimal allocation, costs and power-law fits; the scaling sweep at toy size.

Oracles: published numbers (Kaplan et al. 2020; Hoffmann et al. 2022, Tables 2 and 3 and
Figure 4; the DeepSeek-V3 report), numerical minimisation with scipy, ``scipy.stats.linregress``,
known synthetic laws, and ``sum(p.numel())`` of the course GPT.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from llmcourse import scaling, sizing
from llmcourse.gpt import GPT
from llmcourse.hardware import GPU_PEAKS
from llmcourse.scaling import (
    CHINCHILLA,
    KAPLAN,
    PF_DAY,
    chinchilla_loss,
    chinchilla_optimal,
    chinchilla_plan,
    fit_power_law,
    implied_mfu,
    kaplan_loss,
    kaplan_loss_compute,
    kaplan_loss_parameters,
    kaplan_loss_tokens,
    kaplan_optimal_parameters,
    kaplan_optimal_tokens,
    tokens_for_budget,
    tokens_per_parameter_allocation,
    training_cost,
)

GOPHER_BUDGET = 5.76e23  # FLOPs: Hoffmann et al., Table 3 and section 3.4 (Gopher's training compute)


# --- Kaplan et al. ------------------------------------------------------------------------------


def test_kaplan_laws_are_power_laws_with_the_published_constants():
    # At N = N_c, D = D_c, C = C_c each law is 1 nat, and a factor 10 in the resource divides it by 10^alpha.
    assert kaplan_loss_parameters(8.8e13) == pytest.approx(1.0)
    assert kaplan_loss_tokens(5.4e13) == pytest.approx(1.0)
    assert kaplan_loss_compute(3.1e8 * 8.64e19) == pytest.approx(1.0)
    for law, x, alpha in [(kaplan_loss_parameters, 1e8, 0.076), (kaplan_loss_tokens, 1e9, 0.095),
                          (kaplan_loss_compute, 1e20, 0.050)]:
        assert law(10 * x) / law(x) == pytest.approx(10**-alpha, rel=1e-12)
    # Kaplan et al. (Figure 1) plot losses between ~2 and ~6 nats for 1e3..1e9 parameters; GPT-2 XL's N ~ 1.5e9.
    assert 2.0 < kaplan_loss_parameters(1.5e9) < 2.5


def test_kaplan_combined_law_tends_to_each_single_law():
    n, d = 1e8, 1e10
    assert kaplan_loss(n, 1e40) == pytest.approx(kaplan_loss_parameters(n), rel=1e-9)  # unlimited data
    assert kaplan_loss(1e40, d) == pytest.approx(kaplan_loss_tokens(d), rel=1e-9)  # unlimited model
    assert kaplan_loss(n, d) > max(kaplan_loss_parameters(n), kaplan_loss_tokens(d))  # both limits bind


def test_kaplan_allocation_grows_the_model_5x_per_10x_compute():
    # Kaplan et al., Figure 14: N_opt ~ C_min^0.73, "increasing by 5x for each 10x increase in compute".
    c = np.logspace(18, 26, 9)
    n = kaplan_optimal_parameters(c)
    assert np.allclose(n[1:] / n[:-1], 10**0.73) and 5.0 < 10**0.73 < 5.5
    d = kaplan_optimal_tokens(c)
    assert np.allclose(6 * n * d, c)  # the budget is spent exactly
    assert np.allclose(d[1:] / d[:-1], 10**0.27)
    assert kaplan_optimal_parameters(PF_DAY) == pytest.approx(1.3e9)


# --- Chinchilla ---------------------------------------------------------------------------------


def test_chinchilla_beats_gopher_at_similar_compute():
    # Chinchilla: 70B parameters, 1.4T tokens; Gopher: 280B, 300B (Hoffmann et al., section 4; Rae et al. 2021).
    chinchilla, gopher = chinchilla_loss(70e9, 1.4e12), chinchilla_loss(280e9, 300e9)
    assert chinchilla < gopher
    assert chinchilla == pytest.approx(1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28)
    for n, d in [(70e9, 1.4e12), (280e9, 300e9)]:
        assert sizing.six_n_d(n, d) == pytest.approx(GOPHER_BUDGET, rel=0.13)  # the same budget, up to 13%


@pytest.mark.parametrize("flops", [1e18, 1e21, GOPHER_BUDGET, 1e26])
def test_closed_form_optimum_matches_numerical_minimisation(flops):
    # Minimise L(N, C / 6N) over log N with scipy: the Lagrangian's closed form must agree.
    def loss(log_n: float) -> float:
        n = math.exp(log_n)
        return chinchilla_loss(n, flops / (6 * n))

    found = optimize.minimize_scalar(loss, bounds=(math.log(1e3), math.log(1e15)), method="bounded",
                                     options={"xatol": 1e-10})
    best = chinchilla_optimal(flops)
    assert best.parameters == pytest.approx(math.exp(found.x), rel=1e-5)
    assert 6 * best.parameters * best.tokens == pytest.approx(flops, rel=1e-12)


def test_chinchilla_exponents_and_gopher_budget_against_the_paper():
    # Table 2, approach 3: N_opt ~ C^0.46, D_opt ~ C^0.54. The printed (rounded) alpha, beta give 0.452 / 0.548.
    assert CHINCHILLA.parameter_exponent == pytest.approx(0.46, abs=0.01)
    assert CHINCHILLA.token_exponent == pytest.approx(0.54, abs=0.01)
    a = chinchilla_optimal(1e24).parameters / chinchilla_optimal(1e23).parameters
    assert math.log10(a) == pytest.approx(CHINCHILLA.parameter_exponent, rel=1e-9)
    # Figure 4 (approach 3): "the optimal model size given the Gopher budget [is] 40B parameters". The printed
    # constants give 32B: with C/6 ~ 1e23, rounding beta/(alpha+beta) by 0.005 moves N_opt by 10^(0.005*23) ~ 30%
    # (Besiroglu et al. 2024 trace the gap to this rounding). Tolerance: 25%.
    n_opt = chinchilla_optimal(GOPHER_BUDGET).parameters
    assert n_opt == pytest.approx(40e9, rel=0.25)
    assert 30e9 < n_opt < 35e9
    # Approaches 1 and 2 put the Gopher budget at 67B / 63B parameters: approach 3 is the smallest of the three.
    assert n_opt < 63e9


def test_twenty_tokens_per_parameter_reproduces_chinchilla_and_table_3():
    rule = tokens_per_parameter_allocation(GOPHER_BUDGET)
    assert rule.tokens_per_parameter == pytest.approx(20.0)
    assert 6 * rule.parameters * rule.tokens == pytest.approx(GOPHER_BUDGET)
    assert rule.parameters == pytest.approx(70e9, rel=0.02) and rule.tokens == pytest.approx(1.4e12, rel=0.02)
    # Table 3 (approach 1): 67B parameters for 5.76e23 FLOPs with 1.5T tokens.
    assert rule.parameters == pytest.approx(67e9, rel=0.05) and rule.tokens == pytest.approx(1.5e12, rel=0.10)
    # Table 3 also lists 175B -> 3.7T tokens and 1T -> 21.2T tokens, i.e. ~21 tokens per parameter.
    for n, d in [(175e9, 3.7e12), (1e12, 21.2e12)]:
        rule = tokens_per_parameter_allocation(6 * n * d)
        assert rule.parameters == pytest.approx(n, rel=0.05)


def test_plans_and_budgets_use_the_part4_calculators():
    gpt3 = sizing.preset("gpt3")
    plan = chinchilla_plan(gpt3)
    assert plan.parameters == pytest.approx(175e9, rel=0.005)  # Brown et al. (2020): 175B
    assert plan.tokens == pytest.approx(20 * plan.parameters)
    assert plan.flops == pytest.approx(sizing.training_flops(gpt3, plan.tokens))
    assert plan.six_n_d == pytest.approx(plan.flops, rel=0.05)  # the attention term is ~3% at 2048 tokens
    # tokens_for_budget inverts training_flops, and for GPT-3's 3.14e23 FLOPs (Brown et al. 2020) gives ~300B tokens.
    assert tokens_for_budget(gpt3, sizing.training_flops(gpt3, 123e9)) == pytest.approx(123e9, rel=1e-12)
    assert tokens_for_budget(gpt3, 3.14e23) == pytest.approx(300e9, rel=0.05)
    # The course's GPT: a token costs 6 x (weights it meets) FLOPs, checked against numel of the real model.
    tiny = sizing.TransformerConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=65, bias=False)
    torch.manual_seed(0)
    numel = sum(p.numel() for p in GPT(tiny).parameters())
    weights = numel - 8 * 16 - (2 * 2 + 1) * 16  # minus position embeddings and the LayerNorm gains
    assert tokens_for_budget(tiny, 1e9, context=8) == pytest.approx(1e9 / (6 * weights + 12 * 2 * 8 * 16))


# --- costs --------------------------------------------------------------------------------------


def test_training_cost_by_hand_and_implied_mfu_round_trip():
    cost = training_cost(3.14e23, peak_flops=312e12, mfu=0.5, dollars_per_gpu_hour=2.0)
    assert cost.gpu_hours == pytest.approx(3.14e23 / (312e12 * 0.5) / 3600)
    assert cost.dollars == pytest.approx(2.0 * cost.gpu_hours)
    assert cost.days_on(1024) == pytest.approx(cost.gpu_hours / 1024 / 24)
    assert implied_mfu(3.14e23, cost.gpu_hours, 312e12) == pytest.approx(0.5)


def test_deepseek_v3_reported_gpu_hours_imply_a_plausible_mfu():
    # DeepSeek-V3 report: 14.8T tokens, 2.788M H800 GPU-hours in all. The H800 has the H100 SXM's compute
    # (989 dense bf16 TFLOP/s). 6 N_active D then implies an MFU between 20% and 50% of the bf16 peak: the
    # range large runs report, and DeepSeek trained in FP8 (twice the peak), so a lower fraction of it.
    flops = sizing.moe_training_flops(sizing.moe_preset("deepseek-v3"), 14.8e12)
    assert flops == pytest.approx(6 * 37e9 * 14.8e12, rel=0.02)
    mfu = implied_mfu(flops, 2.788e6, GPU_PEAKS["H100"][0])
    assert 0.2 < mfu < 0.5
    # $2 per H800-hour is the report's own assumption: $5.576M.
    assert 2.788e6 * 2.0 == pytest.approx(5.576e6)


# --- fitting ------------------------------------------------------------------------------------


def test_fit_matches_linregress_on_noisy_data():
    rng = np.random.default_rng(0)
    x = np.logspace(3, 7, 12)
    y = 5.0 * x**-0.2 * np.exp(rng.normal(0, 0.05, x.size))
    fit = fit_power_law(x, y)
    reference = stats.linregress(np.log(x), np.log(y))
    assert fit.exponent == pytest.approx(reference.slope, rel=1e-10)
    assert fit.constant == pytest.approx(math.exp(reference.intercept), rel=1e-10)
    assert fit.predict(1e5) == pytest.approx(math.exp(reference.intercept + reference.slope * math.log(1e5)))


@settings(max_examples=30, deadline=None)
@given(exponent=st.floats(-1.5, -0.02), constant=st.floats(0.1, 100.0))
def test_fit_recovers_exact_power_laws(exponent, constant):
    x = np.logspace(2, 8, 7)
    fit = fit_power_law(x, constant * x**exponent)
    assert fit.exponent == pytest.approx(exponent, rel=1e-8, abs=1e-10)
    assert fit.constant == pytest.approx(constant, rel=1e-6)


def test_fit_recovers_kaplans_law_in_kaplans_notation():
    n = np.logspace(4, 9, 10)
    fit = fit_power_law(n, kaplan_loss_parameters(n))
    assert fit.alpha == pytest.approx(KAPLAN.alpha_n, rel=1e-9)
    assert fit.scale == pytest.approx(KAPLAN.n_c, rel=1e-6)


@pytest.mark.parametrize("e, c, k", [(1.5, 4.0, -0.4), (1.69, 406.4, -0.34), (0.8, 20.0, -0.7)])
def test_fit_with_irreducible_term(e, c, k):
    x = np.logspace(2, 6, 9)  # the power-law part spans ~E down to ~E/100, well above the 0.1% noise below
    fit = fit_power_law(x, e + c * x**k, irreducible=True)
    assert (fit.irreducible, fit.constant, fit.exponent) == pytest.approx((e, c, k), rel=1e-4)
    # With 0.1% noise the estimate stays close, and beats the pure power law (which must bend to fit E).
    rng = np.random.default_rng(1)
    y = (e + c * x**k) * (1 + rng.normal(0, 1e-3, x.size))
    noisy = fit_power_law(x, y, irreducible=True)
    assert noisy.exponent == pytest.approx(k, rel=0.1)
    pure = fit_power_law(x, y)
    assert np.sum((noisy.predict(x) - y) ** 2) < np.sum((pure.predict(x) - y) ** 2)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: kaplan_loss_parameters(0),
    lambda: kaplan_loss_tokens(-1e9),
    lambda: kaplan_loss_compute(float("nan")),
    lambda: kaplan_loss(1e9, 0),
    lambda: chinchilla_loss(-70e9, 1.4e12),
    lambda: chinchilla_loss(70e9, np.array([1e12, 0.0])),
    lambda: chinchilla_optimal(0),
    lambda: tokens_per_parameter_allocation(1e20, 0),
    lambda: kaplan_optimal_parameters(-1),
    lambda: tokens_for_budget(sizing.preset("gpt2"), 0),
    lambda: chinchilla_plan(sizing.preset("gpt2"), -20),
    lambda: implied_mfu(1e23, 0, 1e15),
    lambda: scaling.pf_days(0),
])  # fmt: skip
def test_non_positive_quantities_raise(call):
    with pytest.raises(ValueError, match="positive"):
        call()


def test_bad_costs_and_fits_raise():
    with pytest.raises(ValueError, match="mfu"):
        training_cost(1e23, 1e15, mfu=0.0)
    with pytest.raises(ValueError, match="mfu"):
        training_cost(1e23, 1e15, mfu=1.5)
    with pytest.raises(ValueError, match="gpus"):
        training_cost(1e23, 1e15).days_on(0)
    with pytest.raises(ValueError, match="equal length"):
        fit_power_law([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        fit_power_law([1.0], [1.0])
    with pytest.raises(ValueError, match="at least 4"):
        fit_power_law([1, 2, 3], [3, 2, 1], irreducible=True)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3], [1, -2, 3])
    with pytest.raises(ValueError, match="two different"):
        fit_power_law([2, 2, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="decaying"):
        _ = fit_power_law([1, 2, 4], [1, 2, 4]).scale


# --- the sweep at toy size ----------------------------------------------------------------------


def test_sweep_core_at_toy_size(tmp_path, one_torch_thread):
    from llmcourse.experiments import scaling_sweep

    out = tmp_path / "sweep.json"
    assert scaling_sweep.main(["--quick", "--device", "cpu", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["sweep"] == "quick" and "--quick" in record["command"]
    assert {"cpu", "torch", "device"} <= set(record["hardware"])
    settings_ = scaling_sweep.QUICK
    assert len(record["models"]) == len(settings_.sizes) == 2
    for row, (n_layer, n_embd, n_head) in zip(record["models"], settings_.sizes):
        config = sizing.TransformerConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                                          block_size=settings_.block_size, vocab_size=65, bias=False)
        torch.manual_seed(0)
        assert row["parameters"] == sum(p.numel() for p in GPT(config).parameters())
        assert row["tokens"] == row["steps"] * settings_.batch_size * settings_.block_size == settings_.tokens
        # 6 x the weights a token meets + the attention term 12 L T d, per token (Part 4's formula, by hand).
        per_token = 6 * (n_layer * 12 * n_embd**2 + 65 * n_embd) + 12 * n_layer * settings_.block_size * n_embd
        assert row["training_flops"] == pytest.approx(per_token * row["tokens"])
        assert math.isfinite(row["val_loss"]) and row["val_loss"] < row["initial_val_loss"]
        assert abs(row["initial_val_loss"] - math.log(65)) < 0.3  # an untrained model guesses ~uniformly
    n = [r["non_embedding_parameters"] for r in record["models"]]
    slope = stats.linregress(np.log(n), np.log([r["val_loss"] for r in record["models"]])).slope
    assert record["fit"]["exponent"] == pytest.approx(slope, rel=1e-9)


def test_sweep_rejects_a_budget_below_one_step():
    from llmcourse.experiments import scaling_sweep

    tiny = scaling_sweep.SweepSettings(sizes=((1, 16, 2),), tokens=10, block_size=16, batch_size=8)
    with pytest.raises(ValueError, match="at least one step"):
        scaling_sweep.train_config(tiny, (1, 16, 2), "cpu", "/tmp/unused")
