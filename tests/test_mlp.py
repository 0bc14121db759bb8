"""The numpy MLP's hand-written backward pass against PyTorch autograd and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmcourse import mlp
from llmcourse.gradcheck import gradient_check

TOL = dict(rtol=1e-10, atol=1e-12)  # float64 on both sides, same operations: only rounding differs


def _data(seed, n=7, d=5, k=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, n)


def _torch_loss_and_grads(model, X, y):
    """The same network written with torch operations; autograd gives the oracle gradients."""
    p = {name: torch.tensor(v, requires_grad=True) for name, v in model.params.items()}
    A = torch.tensor(X) @ p["W1"] + p["b1"]
    H = torch.relu(A) if model.activation == "relu" else torch.tanh(A)
    Z = H @ p["W2"] + p["b2"]
    loss = torch.nn.functional.cross_entropy(Z, torch.tensor(y))
    loss.backward()
    return loss.item(), {name: t.grad.numpy() for name, t in p.items()}


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_match_torch_autograd(activation, seed):
    X, y = _data(seed)
    model = mlp.TwoLayerMLP(5, 6, 4, activation=activation, seed=seed)
    loss, grads = model.loss_and_gradients(X, y)
    expected_loss, expected = _torch_loss_and_grads(model, X, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert set(grads) == {"W1", "b1", "W2", "b2"}
    for name in grads:
        assert grads[name].shape == model.params[name].shape
        np.testing.assert_allclose(grads[name], expected[name], **TOL, err_msg=name)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_gradients_match_finite_differences(activation):
    X, y = _data(5)
    model = mlp.TwoLayerMLP(5, 6, 4, activation=activation, seed=5)
    _, grads = model.loss_and_gradients(X, y)
    assert gradient_check(lambda _: model.loss_and_gradients(X, y)[0], model.params, grads, tolerance=1e-7) < 1e-7


def test_each_layer_backward_matches_torch():
    rng = np.random.default_rng(3)
    x, W, b, dout = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=(4, 5))
    out, cache = mlp.affine_forward(x, W, b)
    dx, dW, db = mlp.affine_backward(dout, cache)
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    (xt @ Wt + bt).backward(torch.tensor(dout))
    np.testing.assert_allclose(out, x @ W + b, **TOL)
    for ours, theirs in ((dx, xt), (dW, Wt), (db, bt)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), **TOL)
    a = rng.normal(size=(4, 5))
    for forward, backward, torch_fn in ((mlp.relu_forward, mlp.relu_backward, torch.relu),
                                        (mlp.tanh_forward, mlp.tanh_backward, torch.tanh)):  # fmt: skip
        out, cache = forward(a)
        at = torch.tensor(a, requires_grad=True)
        torch_fn(at).backward(torch.tensor(dout))
        np.testing.assert_allclose(out, torch_fn(torch.tensor(a)).numpy(), **TOL)
        np.testing.assert_allclose(backward(dout, cache), at.grad.numpy(), **TOL)


def test_softmax_cross_entropy_matches_torch_even_for_huge_logits():
    rng = np.random.default_rng(4)
    for scale, shift in ((1.0, 0.0), (50.0, 1000.0), (1.0, -1000.0)):
        z = scale * rng.normal(size=(6, 9)) + shift
        y = rng.integers(0, 9, 6)
        loss, dz = mlp.softmax_cross_entropy(z, y)
        zt = torch.tensor(z, requires_grad=True)
        expected = torch.nn.functional.cross_entropy(zt, torch.tensor(y))
        expected.backward()
        assert np.isfinite(loss) and loss == pytest.approx(expected.item(), rel=1e-12)
        np.testing.assert_allclose(dz, zt.grad.numpy(), **TOL)
        np.testing.assert_allclose(mlp.softmax(z), torch.softmax(torch.tensor(z), -1).numpy(), **TOL)
        np.testing.assert_allclose(mlp.log_softmax(z), torch.log_softmax(torch.tensor(z), -1).numpy(), **TOL)


def test_softmax_is_shift_invariant_and_sums_to_one():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]])
    p = mlp.softmax(z)
    assert np.allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], [1 / 3] * 3)
    np.testing.assert_allclose(mlp.softmax(z[:1] + 500.0), p[:1], rtol=1e-12)


def test_training_fits_a_nonlinear_problem():
    """Two interleaved half-moons: no straight line separates them, a hidden layer does."""
    rng = np.random.default_rng(0)
    t = rng.uniform(0, np.pi, 200)
    X = np.concatenate([np.c_[np.cos(t[:100]), np.sin(t[:100])], np.c_[1 - np.cos(t[100:]), 0.5 - np.sin(t[100:])]])
    X += rng.normal(0, 0.05, X.shape)
    y = np.repeat([0, 1], 100)
    model = mlp.TwoLayerMLP(2, 32, 2, activation="tanh", seed=0)
    history = model.train(X, y, learning_rate=0.5, epochs=300, batch_size=50, seed=0)
    assert len(history) == 300
    assert history[-1] < history[0] / 5
    assert np.mean(model.predict(X) == y) > 0.95
    again = mlp.TwoLayerMLP(2, 32, 2, activation="tanh", seed=0)
    assert again.train(X, y, learning_rate=0.5, epochs=300, batch_size=50, seed=0) == history  # seeded


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.loss_and_gradients(np.ones((3, 4)), np.zeros(3, int)), r"X must have shape \(batch, 5\).*got shape \(3, 4\)"),
        (lambda m: m.loss_and_gradients(np.ones(5), np.zeros(1, int)), r"X must have shape \(batch, 5\)"),
        (lambda m: m.loss_and_gradients(np.ones((3, 5)), np.zeros(2, int)), r"targets must have shape \(3,\)"),
        (lambda m: m.loss_and_gradients(np.ones((3, 5)), np.array([0, 1, 4])), r"lie in 0 .. 3"),
        (lambda m: m.loss_and_gradients(np.ones((3, 5)), np.zeros(3)), "integer class ids"),
        (lambda m: mlp.affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.ones(3)), r"b shape \(M,\)"),
        (lambda m: mlp.softmax_cross_entropy(np.ones((0, 3)), np.zeros(0, int)), "batch is empty"),
        (lambda m: mlp.TwoLayerMLP(5, 0, 4), "hidden_size must be a positive integer"),
        (lambda m: mlp.TwoLayerMLP(5, 6, 4, activation="sigmoid"), "activation must be 'relu' or 'tanh'"),
        (lambda m: m.train(np.ones((3, 5)), np.zeros(3, int), batch_size=0), "batch_size must be a positive integer"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call(mlp.TwoLayerMLP(5, 6, 4))
