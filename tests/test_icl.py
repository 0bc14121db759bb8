"""In-context learning of linear functions: prompts, the model's causality and context limit, baselines, training.

Oracles: numpy.linalg.lstsq and scikit-learn's LinearRegression (least squares),
Ridge(fit_intercept=False) (ridge), KNeighborsRegressor (nearest neighbours), the
closed form (d - k)/d of the minimum-norm least-squares error, and the Part 4
regression-as-attention weights.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor

from conftest import REPO_ROOT, tool_env
from llmcourse import icl
from llmcourse.attention import least_squares_attention_weights
from llmcourse.experiments.icl_linear import SIZES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECORDS = {"interleaved": REPO_ROOT / "book/part5/results/icl_linear.json",
           "paired": REPO_ROOT / "book/part5/results/icl_linear_paired.json"}


def _prompts(batch: int = 6, n: int = 9, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return icl.sample_prompts(batch, n, d, torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- the task and its encoding -------------------------------------------------------------------


def test_prompts_are_linear_in_x_with_one_w_per_prompt():
    xs, ys = _prompts(batch=50, n=12, d=3)
    assert xs.shape == (50, 12, 3) and ys.shape == (50, 12)
    for b in range(50):  # 12 noise-free points in 3 dimensions determine w exactly
        w, residual, rank, _ = np.linalg.lstsq(xs[b].numpy(), ys[b].numpy(), rcond=None)
        assert rank == 3 and np.allclose(xs[b].numpy() @ w, ys[b].numpy(), atol=1e-10)
    xs_big, ys_big = icl.sample_prompts(4000, 1, 5, torch.Generator().manual_seed(1), dtype=torch.float64)
    assert abs(xs_big.var().item() - 1) < 0.05  # x ~ N(0, I)
    assert abs((ys_big**2).mean().item() / 5 - 1) < 0.1  # E[y^2] = d: why errors are normalised by d
    again = icl.sample_prompts(50, 12, 3, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(again[0], xs) and torch.equal(again[1], ys)


def test_encoding_interleaves_x_and_y_with_y_in_the_first_coordinate():
    xs, ys = _prompts(batch=2, n=4, d=3)
    seq = icl.encode_prompts(xs, ys)
    assert seq.shape == (2, 7, 3)  # x1 y1 x2 y2 x3 y3 x4: the last y is never an input
    for i in range(4):
        assert torch.equal(seq[:, 2 * i], xs[:, i])
    for i in range(3):
        assert torch.equal(seq[:, 2 * i + 1, 0], ys[:, i])
        assert torch.all(seq[:, 2 * i + 1, 1:] == 0)


def test_paired_encoding_puts_each_example_in_one_vector():
    xs, ys = _prompts(batch=2, n=4, d=3)
    seq = icl.encode_prompts(xs, ys, "paired")
    assert seq.shape == (2, 7, 4) and icl.input_width(3, "paired") == 4 and icl.input_width(3) == 3
    for i in range(4):  # the query (x_i, 0) where the interleaved encoding has x_i
        assert torch.equal(seq[:, 2 * i, :3], xs[:, i]) and torch.all(seq[:, 2 * i, 3] == 0)
    for i in range(3):  # the example (x_i, y_i) where it has y_i
        assert torch.equal(seq[:, 2 * i + 1, :3], xs[:, i]) and torch.equal(seq[:, 2 * i + 1, 3], ys[:, i])
    with pytest.raises(ValueError, match="encoding must be one of 'interleaved', 'paired', got 'pairs'"):
        icl.encode_prompts(xs, ys, "pairs")
    with pytest.raises(ValueError, match="encoding must be one of"):
        icl.ICLTransformer(3, 4, encoding="stacked")


# --- the model -----------------------------------------------------------------------------------


def _model(d: int = 4, max_points: int = 9, seed: int = 0, encoding: str = "interleaved") -> icl.ICLTransformer:
    torch.manual_seed(seed)
    model = icl.ICLTransformer(d, max_points, n_layer=2, n_head=2, n_embd=16, encoding=encoding).double().eval()
    with torch.no_grad():  # larger weights than the init, so attention is far from uniform
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(std=0.3)
    return model


@pytest.mark.parametrize("encoding", icl.ENCODINGS)
def test_prediction_at_x_i_sees_only_earlier_points_and_x_i(encoding):
    model = _model(encoding=encoding)
    xs, ys = _prompts(batch=3, n=9, d=4)
    base = model(xs, ys)
    assert base.shape == (3, 9)
    for i in range(9):
        xs2, ys2 = xs.clone(), ys.clone()
        xs2[:, i + 1 :] += 5.0
        ys2[:, i:] -= 7.0  # y_i itself is what position i predicts: it must not be visible
        changed = model(xs2, ys2)
        torch.testing.assert_close(changed[:, : i + 1], base[:, : i + 1], atol=1e-12, rtol=0)
        if i < 8:  # and the later predictions really do depend on the changed points
            assert not torch.allclose(changed[:, i + 1 :], base[:, i + 1 :])
    assert not torch.allclose(model(xs + 1.0, ys)[:, 0], base[:, 0])  # x_1 is read


def test_prompt_longer_than_the_context_is_refused():
    model = _model(d=4, max_points=9)
    assert model.config.block_size == 17
    xs, ys = _prompts(batch=1, n=10, d=4)
    with pytest.raises(ValueError, match=r"10 points \(19 positions\).*17 positions.*max_points = 9"):
        model(xs, ys)
    model(xs[:, :9], ys[:, :9])  # the longest prompt that fits


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        icl.sample_prompts(2, 3, 0)
    with pytest.raises(ValueError, match="n_points must be an integer >= 1"):
        icl.sample_prompts(2, 2.5, 3)
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        icl.sample_prompts(True, 3, 3)
    with pytest.raises(ValueError, match="max_points must be"):
        icl.ICLTransformer(3, 0)
    with pytest.raises(ValueError, match="divisible by n_head"):
        icl.ICLTransformer(3, 5, n_head=3, n_embd=16)
    model = _model(d=4)
    xs, ys = _prompts(batch=2, n=5, d=3)
    with pytest.raises(ValueError, match="reads 4-dimensional inputs, got xs with dim 3"):
        model(xs.double(), ys.double())
    with pytest.raises(ValueError, match=r"ys must have shape \(batch, n_points\) = \(2, 5\)"):
        icl.least_squares(xs, ys[:, :4])
    with pytest.raises(ValueError, match=r"xs must have shape \(batch, n_points, dim\)"):
        icl.averaging(xs[0], ys[0])
    with pytest.raises(ValueError, match="alpha must be a number > 0"):
        icl.ridge(xs, ys, alpha=0.0)
    with pytest.raises(ValueError, match="n_neighbours must be an integer >= 1"):
        icl.nearest_neighbours(xs, ys, n_neighbours=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        icl.gradient_descent(xs, ys, steps=0)
    with pytest.raises(TypeError, match="predictor must be"):
        icl.evaluate("least squares", 3, 5)
    with pytest.raises(ValueError, match="n_points = 12 but the model's context holds at most 9"):
        icl.train(model, 12, steps=1)
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        icl.Curriculum(1, 3, 0)


# --- the baselines against independent oracles ---------------------------------------------------


def test_least_squares_matches_lstsq_sklearn_and_attention_weights():
    xs, ys = _prompts(batch=4, n=9, d=4)
    preds = icl.least_squares(xs, ys)
    assert preds.shape == (4, 9) and np.all(preds[:, 0] == 0)
    X, Y = xs.numpy(), ys.numpy()
    for b in range(4):
        for k in range(1, 9):
            w = np.linalg.lstsq(X[b, :k], Y[b, :k], rcond=None)[0]  # minimum-norm when k < d
            assert preds[b, k] == pytest.approx(X[b, k] @ w, abs=1e-9)
            attention = least_squares_attention_weights(X[b, :k], X[b, k]) @ Y[b, :k]  # Part 4's form
            assert preds[b, k] == pytest.approx(attention[0], abs=1e-9)
            if k >= 4:  # sklearn needs a determined system to agree on w
                sk = LinearRegression(fit_intercept=False).fit(X[b, :k], Y[b, :k])
                assert preds[b, k] == pytest.approx(sk.predict(X[b, k : k + 1])[0], abs=1e-8)


def test_least_squares_error_follows_d_minus_k_over_d_and_is_zero_from_k_equal_d():
    d = 5
    errors = icl.evaluate(icl.least_squares, d, 11, n_prompts=3000, seed=3)
    for k in range(d):  # minimum-norm: w's component outside the span of k points is lost, E = (d - k)/d
        assert errors[k] == pytest.approx((d - k) / d, abs=0.08)
    assert np.all(errors[d:] < 1e-8)


def test_ridge_matches_sklearn():
    xs, ys = _prompts(batch=3, n=8, d=3, seed=5)
    for alpha in (0.1, 1.0, 4.0):
        preds = icl.ridge(xs, ys, alpha=alpha)
        for b in range(3):
            for k in range(1, 8):
                sk = Ridge(alpha=alpha, fit_intercept=False).fit(xs[b, :k].numpy(), ys[b, :k].numpy())
                assert preds[b, k] == pytest.approx(sk.predict(xs[b, k : k + 1].numpy())[0], abs=1e-9)


def test_nearest_neighbours_matches_sklearn():
    xs, ys = _prompts(batch=3, n=10, d=2, seed=7)
    for n_neighbours in (1, 3):
        preds = icl.nearest_neighbours(xs, ys, n_neighbours=n_neighbours)
        assert np.all(preds[:, 0] == 0)
        for b in range(3):
            for k in range(1, 10):
                sk = KNeighborsRegressor(n_neighbors=min(n_neighbours, k)).fit(xs[b, :k].numpy(), ys[b, :k].numpy())
                assert preds[b, k] == pytest.approx(sk.predict(xs[b, k : k + 1].numpy())[0], abs=1e-12)


def test_averaging_is_one_gradient_step_and_many_steps_approach_least_squares():
    xs, ys = _prompts(batch=4, n=10, d=3, seed=2)
    X, Y = xs.numpy(), ys.numpy()
    preds = icl.averaging(xs, ys)
    for b in range(4):
        for k in range(1, 10):
            w = (Y[b, :k, None] * X[b, :k]).sum(axis=0) / k
            assert preds[b, k] == pytest.approx(X[b, k] @ w, abs=1e-12)
    np.testing.assert_allclose(icl.gradient_descent(xs, ys, steps=1, learning_rate=1.0), preds, atol=1e-12)
    # torch autograd as the oracle for the gradient of L(w) = (1/2k) ||X w - y||^2, two steps of rate 0.3
    k = 6
    w = torch.zeros(4, 3, dtype=torch.float64)
    for _ in range(2):
        w.requires_grad_(True)
        loss = (0.5 / k * ((torch.einsum("bkd,bd->bk", xs[:, :k], w) - ys[:, :k]) ** 2).sum(dim=1)).sum()
        (grad,) = torch.autograd.grad(loss, w)
        w = (w - 0.3 * grad).detach()
    two_steps = icl.gradient_descent(xs, ys, steps=2, learning_rate=0.3)[:, k]
    np.testing.assert_allclose(two_steps, torch.einsum("bd,bd->b", xs[:, k], w).numpy(), atol=1e-12)
    many = icl.gradient_descent(xs, ys, steps=300, learning_rate=0.3)
    np.testing.assert_allclose(many[:, 6:], icl.least_squares(xs, ys)[:, 6:], atol=1e-6)


def test_evaluate_scores_everyone_on_the_same_prompts():
    prompts = icl.evaluation_prompts(3, 6, n_prompts=300, seed=9)
    assert [len(xs) for xs, _ in prompts] == [256, 44]
    xs, ys = torch.cat([p[0] for p in prompts]), torch.cat([p[1] for p in prompts])
    expected = ((icl.averaging(xs, ys) - ys.double().numpy()) ** 2).mean(axis=0) / 3
    np.testing.assert_allclose(icl.evaluate(icl.averaging, 3, 6, n_prompts=300, seed=9), expected, rtol=1e-12)
    zero_errors = (ys.double().numpy() ** 2).mean(axis=0) / 3
    np.testing.assert_allclose(icl.evaluate(icl.zero, 3, 6, n_prompts=300, seed=9), zero_errors, rtol=1e-12)


# --- training ------------------------------------------------------------------------------------


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = icl.ICLTransformer(2, 5, n_layer=1, n_head=2, n_embd=16)
    with torch.no_grad():
        model.read_out.bias.fill_(3.0)  # a bad start: every prediction 3, error about 1 + 9/d = 5.5
    before = icl.evaluate(model, 2, 5, n_prompts=512)
    history = icl.train(model, 5, steps=60, batch_size=64, learning_rate=1e-2, seed=0, log_every=10)
    after = icl.evaluate(model, 2, 5, n_prompts=512)
    assert history.steps == [0, 10, 20, 30, 40, 50, 59]
    assert before.mean() > 4 and after.mean() < 1.3, (before, after)  # at least as good as predicting about 0
    assert history.loss[-1] < history.loss[0] / 3


def test_training_is_seeded_and_the_curriculum_grows():
    curriculum = icl.Curriculum(start_dim=1, start_points=3, every=2)
    assert [curriculum.at(s, 3, 6) for s in (0, 2, 4, 100)] == [(1, 3), (2, 5), (3, 6), (3, 6)]
    losses = []
    for _ in range(2):
        torch.manual_seed(1)
        model = icl.ICLTransformer(3, 6, n_layer=1, n_head=2, n_embd=8)
        losses.append(icl.train(model, 6, steps=6, seed=4, curriculum=curriculum, log_every=1).loss)
    assert losses[0] == losses[1] and len(losses[0]) == 6


# --- the experiment command ----------------------------------------------------------------------


def test_quick_experiment_writes_a_complete_record(tmp_path):
    out = tmp_path / "icl.json"
    result = subprocess.run(
        [sys.executable, "-m", "llmcourse.experiments.icl_linear", "--quick", "--device", "cpu", "--out", str(out)],
        cwd=REPO_ROOT, env=tool_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(out.read_text())
    assert "--quick" in record["command"] and record["settings"]["quick"] is True
    assert {"description", "cpu", "torch"} <= set(record["hardware"])
    s = record["settings"]
    n = s["n_points"]
    assert record["k"] == list(range(n))
    assert set(record["errors"]) == {"transformer", *icl.BASELINES}
    for curve in record["errors"].values():
        assert len(curve) == n and all(np.isfinite(curve))
    expected = icl.evaluate(icl.least_squares, s["dim"], n, n_prompts=s["eval_prompts"], seed=s["eval_seed"])
    np.testing.assert_allclose(record["errors"]["least squares"], expected, rtol=1e-9)


def _recorded(encoding: str) -> tuple[dict, dict[str, np.ndarray]]:
    record = json.loads(RECORDS[encoding].read_text())
    return record, {name: np.array(curve) for name, curve in record["errors"].items()}


@pytest.mark.parametrize("encoding", icl.ENCODINGS)
def test_recorded_run(encoding):
    """The JSON the chapter plots: recorded with the current code and settings; the claims the chapter makes."""
    record, errors = _recorded(encoding)
    s = record["settings"]
    d, n = s["dim"], s["n_points"]
    assert s["quick"] is False and s["encoding"] == encoding and n >= 2 * d + 1
    assert {key: s[key] for key in SIZES["cpu"]} == SIZES["cpu"]
    expected = icl.evaluate(icl.least_squares, d, n, n_prompts=s["eval_prompts"], seed=s["eval_seed"])
    np.testing.assert_allclose(errors["least squares"], expected, rtol=1e-9)
    tf, ls, ridge = errors["transformer"], errors["least squares"], errors[f"ridge (alpha = {icl.RIDGE_ALPHA:g})"]
    se = np.array(record["standard_errors"]["transformer"])
    assert np.all(tf[1:] < errors["zero"][1:] - 0.1)  # it uses the examples at every k
    assert np.all(tf[1:3] < 1.03 * ls[1:3])  # within 3 % of the optimum after one and two examples
    assert np.all(tf[1:] < errors["averaging"][1:]) and np.all(tf[1:] < errors["3-nearest neighbours"][1:])
    assert np.all(tf[2:] + 2 * se[2:] < ridge[2:])  # below ridge from k = 2 on, by more than two standard errors
    assert tf[2 * d] < 0.05 and np.all(np.diff(tf[d:]) < 0)  # still falling at k = 2d, but not the exact fit
    assert tf[d] > 0.1  # least squares is exact from k = d on; the CPU-sized model is not (the chapter says so)


def test_the_paired_encoding_leaves_the_plateau_sooner():
    """The chapter's test of its plateau explanation: same model, data and steps; only the encoding differs."""
    (interleaved, _), (paired, _) = _recorded("interleaved"), _recorded("paired")
    differ = {"encoding", "parameters"}  # the paired read-in has one more input column: n_embd more weights
    assert {k: v for k, v in interleaved["settings"].items() if k not in differ} == {
        k: v for k, v in paired["settings"].items() if k not in differ}

    def first_step_below(record: dict, level: float) -> int:
        return next(step for step, loss in zip(record["history"]["steps"], record["history"]["loss"]) if loss < level)

    for level in (0.6, 0.45):
        assert 2 * first_step_below(paired, level) < first_step_below(interleaved, level), level
    d = paired["settings"]["dim"]  # and it ends a little better once w is determined
    assert np.all(np.array(paired["errors"]["transformer"][d:]) < np.array(interleaved["errors"]["transformer"][d:]))
