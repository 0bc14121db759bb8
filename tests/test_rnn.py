"""The numpy Elman network: forward pass against torch.nn.RNN, BPTT against torch autograd, vanishing gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmcourse import rnn
from llmcourse.gradcheck import gradient_check

TOL = dict(rtol=1e-9, atol=1e-12)


def _torch_unrolled(model, x, targets, h0):
    """The same network unrolled by hand in torch (float64); returns loss, hidden states and leaf tensors."""
    p = {name: torch.tensor(v, requires_grad=True) for name, v in model.params.items()}
    h = torch.tensor(h0, requires_grad=True)
    leaves = dict(p, h0=h)
    hidden = []
    for t in range(len(x)):
        h = torch.tanh(p["U"] @ h + p["W"] @ torch.tensor(x[t]) + p["b"])
        h.retain_grad()
        hidden.append(h)
    logits = torch.stack(hidden) @ p["V"].T + p["c"]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets))
    return loss, hidden, logits, leaves


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bptt_matches_torch_autograd(seed):
    rng = np.random.default_rng(seed)
    model = rnn.ElmanRNN(6, 5, 7, seed=seed)
    ids, targets, h0 = rng.integers(0, 6, 9), rng.integers(0, 7, 9), rng.normal(size=5) * 0.5
    loss, grads = model.loss_and_gradients(ids, targets, h0)
    expected, _, _, leaves = _torch_unrolled(model, np.eye(6)[ids], targets, h0)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    assert set(grads) == {"U", "W", "V", "b", "c", "h0"}
    for name, leaf in leaves.items():
        np.testing.assert_allclose(grads[name], leaf.grad.numpy(), **TOL, err_msg=name)


def test_bptt_matches_finite_differences_with_vector_inputs():
    rng = np.random.default_rng(5)
    model = rnn.ElmanRNN(4, 3, 5, seed=5)
    x, targets = rng.normal(size=(6, 4)), rng.integers(0, 5, 6)
    _, grads = model.loss_and_gradients(x, targets)
    params_only = {name: grads[name] for name in rnn.PARAMETERS}
    assert gradient_check(lambda _: model.loss_and_gradients(x, targets)[0], model.params, params_only) < 1e-7


def test_forward_equals_torch_rnn_with_the_same_weights():
    rng = np.random.default_rng(1)
    model = rnn.ElmanRNN(6, 5, 7, seed=1)
    model.params["b"] = rng.normal(size=5)
    ids = rng.integers(0, 6, 11)
    hidden, probs = model.forward(ids)
    reference = torch.nn.RNN(6, 5, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        reference.weight_ih_l0.copy_(torch.tensor(model.params["W"]))
        reference.weight_hh_l0.copy_(torch.tensor(model.params["U"]))
        reference.bias_ih_l0.copy_(torch.tensor(model.params["b"]))
        reference.bias_hh_l0.zero_()
        expected, _ = reference(torch.tensor(np.eye(6)[ids])[None])
    np.testing.assert_allclose(hidden, expected[0].numpy(), **TOL)
    expected_probs = torch.softmax(expected[0] @ torch.tensor(model.params["V"]).T + torch.tensor(model.params["c"]), -1)
    np.testing.assert_allclose(probs, expected_probs.numpy(), **TOL)
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_gradient_norms_through_time_match_torch():
    rng = np.random.default_rng(2)
    model = rnn.ElmanRNN(5, 8, 5, seed=2, spectral_radius=1.2)
    ids = rng.integers(0, 5, 12)
    norms = rnn.gradient_norms_through_time(model, ids, target=3)
    _, hidden, logits, leaves = _torch_unrolled(model, np.eye(5)[ids], np.zeros(12, int), np.zeros(8))
    last_loss = torch.nn.functional.cross_entropy(logits[-1:], torch.tensor([3]))  # L_T: the last step only
    last_loss.backward()
    expected = [h.grad.norm().item() for h in reversed(hidden)] + [leaves["h0"].grad.norm().item()]
    assert norms.shape == (13,)
    np.testing.assert_allclose(norms, expected, rtol=1e-9)


def test_small_spectral_radius_vanishes_large_explodes():
    curves = rnn.vanishing_gradient_demo((0.5, 1.0, 1.5), steps=25)
    small, one, large = curves[0.5], curves[1.0], curves[1.5]
    assert small[20] < 1e-5 * small[0]  # about 0.5^20 ~ 1e-6
    assert large[20] > 1e3 * large[0]  # about 1.5^20 ~ 3e3
    assert np.all(np.diff(small) < 0) and np.all(np.diff(large) > 0)
    np.testing.assert_allclose(one, one[0], rtol=1e-3)  # an orthogonal U keeps the norm (tanh is linear near 0)
    # In the linear range the ratio of successive norms is the spectral radius itself.
    np.testing.assert_allclose(small[1:] / small[:-1], 0.5, rtol=1e-3)


def test_saturated_tanh_shrinks_the_gradient_again():
    """With ordinary inputs a large U drives tanh into saturation, where 1 - h^2 ~ 0 damps the explosion."""
    linear = rnn.vanishing_gradient_demo((1.5,), steps=25, input_scale=1e-6)[1.5]
    saturated = rnn.vanishing_gradient_demo((1.5,), steps=25, input_scale=1.0)[1.5]
    assert saturated[20] < linear[20] / 100


def test_clipping_matches_torch_and_bounds_the_norm():
    rng = np.random.default_rng(3)
    grads = {"U": rng.normal(size=(4, 4)) * 10, "b": rng.normal(size=4) * 10}
    clipped, norm = rnn.clip_gradient_norm(grads, max_norm=1.0)
    assert norm == pytest.approx(np.sqrt(sum(np.sum(g**2) for g in grads.values())), rel=1e-12)
    tensors = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    torch_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm=1.0)
    assert norm == pytest.approx(torch_norm.item(), rel=1e-12)
    for t, name in zip(tensors, grads):
        np.testing.assert_allclose(clipped[name], t.grad.numpy(), rtol=1e-12)
    new_norm = np.sqrt(sum(np.sum(g**2) for g in clipped.values()))
    assert new_norm <= 1.0 and new_norm == pytest.approx(1.0, rel=1e-5)
    cosine = np.sum(clipped["U"] * grads["U"]) / (np.linalg.norm(clipped["U"]) * np.linalg.norm(grads["U"]))
    assert cosine == pytest.approx(1.0)  # same direction
    small = {"U": np.full((2, 2), 0.1)}
    unchanged, _ = rnn.clip_gradient_norm(small, max_norm=1.0)
    np.testing.assert_array_equal(unchanged["U"], small["U"])
    assert grads["U"][0, 0] != clipped["U"][0, 0]  # the input was not modified in place ...
    assert np.abs(grads["U"]).max() > 1  # ... and still holds the large values


def test_spectral_radius_is_what_was_asked():
    model = rnn.ElmanRNN(3, 10, 3, spectral_radius=0.8, seed=4)
    assert np.abs(np.linalg.eigvals(model.params["U"])).max() == pytest.approx(0.8, rel=1e-9)
    np.testing.assert_allclose(model.params["U"].T @ model.params["U"], 0.64 * np.eye(10), atol=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.forward([0, 1, 7]), r"token ids must lie in 0 .. 5 \(input_size = 6\)"),
        (lambda m: m.forward(np.ones((3, 4))), r"shape \(T,\) or vectors of shape \(T, 6\), got shape \(3, 4\)"),
        (lambda m: m.forward(np.array([], dtype=int)), "sequence is empty"),
        (lambda m: m.forward([0, 1], h0=np.zeros(4)), r"h0 must have shape \(5,\)"),
        (lambda m: m.loss_and_gradients([0, 1], [0]), "targets must be 2 integer class ids"),
        (lambda m: m.loss_and_gradients([0, 1], [0, 7]), r"lie in 0 .. 6"),
        (lambda m: rnn.gradient_norms_through_time(m, [0, 1], target=9), r"target must lie in 0 .. 6"),
        (lambda m: rnn.clip_gradient_norm({"U": np.ones(2)}, 0), "max_norm must be positive"),
        (lambda m: rnn.ElmanRNN(6, 0, 7), "hidden_size must be a positive integer"),
        (lambda m: rnn.ElmanRNN(6, 5, 7, spectral_radius=-1), "spectral_radius must be >= 0"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call(rnn.ElmanRNN(6, 5, 7))


def test_loss_stays_finite_when_a_target_probability_underflows():
    """Huge output weights make some probabilities exactly 0 in float64; the loss must not be inf."""
    net = rnn.ElmanRNN(5, 4, 5, seed=0)
    net.params["V"] = net.params["V"] * 1e4
    inputs, targets = [0, 1, 2, 3], [4, 3, 2, 1]
    loss, _ = net.loss_and_gradients(inputs, targets)
    assert np.isfinite(loss)
    logits = torch.tensor(net.forward(inputs)[0] @ net.params["V"].T + net.params["c"])
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor(targets)).item(), rel=1e-9)
