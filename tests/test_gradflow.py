"""bptt.gradflow against torch.autograd (float64, B > 1, D != H, non-zero h0)."""

import numpy as np
import pytest
import torch

from bptt.gradflow import (
    hidden_grad_norms,
    jacobian_products,
    scale_to_spectral_norm,
    spectral_norms,
    tanh_jacobians,
)
from bptt.oracles import max_rel_error, torch_rnn_from_params
from bptt.rnn import init_params, rnn_forward, rnn_step_forward

T, B, D, H, V = 6, 3, 5, 4, 2


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    params = init_params(D, H, V, rng, scale=2.0)
    xs = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    return params, xs, h0


def torch_states(params, xs, h0):
    """A torch copy of the forward loop whose every state keeps its gradient."""
    W_xh, W_hh, b_h = (torch.tensor(params[k]) for k in ("W_xh", "W_hh", "b_h"))
    h = torch.tensor(h0, requires_grad=True)
    states = [h]
    for x in torch.tensor(xs):
        h = torch.tanh(x @ W_xh.T + h @ W_hh.T + b_h)
        states.append(h)
    return states  # h_0 .. h_T


def test_tanh_jacobians_match_autograd_of_one_step(setup):
    params, xs, h0 = setup
    hs = rnn_forward(xs, h0, params["W_xh"], params["W_hh"], params["b_h"])
    J = tanh_jacobians(hs, params["W_hh"])
    assert J.shape == (T, B, H, H)
    k, b = 2, 1
    step = lambda h: torch.tanh(  # noqa: E731
        torch.tensor(xs[k + 1, b] @ params["W_xh"].T + params["b_h"])
        + torch.tensor(params["W_hh"]) @ h
    )
    expected = torch.autograd.functional.jacobian(step, torch.tensor(hs[k, b]))
    assert max_rel_error(J[k + 1, b], expected) < 1e-13
    # and the step really is the package's forward step
    assert np.allclose(
        rnn_step_forward(xs[k + 1], hs[k], params["W_xh"], params["W_hh"], params["b_h"]),
        hs[k + 1],
    )


def test_jacobian_products_match_autograd(setup):
    params, xs, h0 = setup
    hs = rnn_forward(xs, h0, params["W_xh"], params["W_hh"], params["b_h"])
    P = jacobian_products(tanh_jacobians(hs, params["W_hh"]))
    assert P.shape == (T + 1, B, H, H)
    states = torch_states(params, xs, h0)
    for s in states[1:]:
        s.retain_grad()
    expected = np.zeros_like(P)
    for i in range(H):  # row i of every dh_T/dh_t: backpropagate unit i of h_T
        for s in states:
            s.grad = None
        states[-1][:, i].sum().backward(retain_graph=True)  # rows of the batch are independent
        for t, s in enumerate(states[:-1]):
            expected[t, :, i, :] = s.grad.numpy()
    expected[T] = np.eye(H)
    assert max_rel_error(P, expected) < 1e-12
    assert np.abs(P[0]).max() > 1e-3  # not trivially zero


def test_linear_rnn_products_are_matrix_powers_and_respect_the_bound():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((H, H))
    P = jacobian_products(np.broadcast_to(W, (T, 2, H, H)))
    for t in range(T + 1):
        np.testing.assert_allclose(P[t, 1], np.linalg.matrix_power(W, T - t), rtol=1e-12)
    sigma = spectral_norms(W)
    assert np.all(spectral_norms(P[:, 0]) <= sigma ** np.arange(T, -1, -1) * (1 + 1e-12))


def test_tanh_products_respect_the_sigma_max_bound(setup):
    params, xs, h0 = setup
    hs = rnn_forward(xs, h0, params["W_xh"], params["W_hh"], params["b_h"])
    norms = spectral_norms(jacobian_products(tanh_jacobians(hs, params["W_hh"])))
    bound = spectral_norms(params["W_hh"]) ** np.arange(T, -1, -1)
    assert np.all(norms <= bound[:, None] * (1 + 1e-12))


def test_spectral_norms_and_rescaling():
    rng = np.random.default_rng(2)
    Ws = rng.standard_normal((3, H, D))
    expected = torch.linalg.matrix_norm(torch.tensor(Ws), ord=2).numpy()
    np.testing.assert_allclose(spectral_norms(Ws), expected, rtol=1e-13)
    W = scale_to_spectral_norm(Ws[0], 1.5)
    assert spectral_norms(W) == pytest.approx(1.5, rel=1e-13)
    np.testing.assert_allclose(W / Ws[0], W[0, 0] / Ws[0, 0, 0])  # same direction


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_hidden_grad_norms_match_an_independent_autograd_loop(setup, scale):
    params, xs, h0 = setup
    params = dict(params, W_hh=params["W_hh"] * scale)
    rnn = torch_rnn_from_params(params)
    target = torch.tensor(np.random.default_rng(3).standard_normal((T, B, H)))
    loss_fn = lambda hs: ((hs - target) ** 2).sum() / B  # noqa: E731
    norms = hidden_grad_norms(rnn, torch.tensor(xs), loss_fn, torch.tensor(h0))
    assert norms.shape == (T,)
    states = torch_states(params, xs, h0)  # no nn.RNN involved
    grads = torch.autograd.grad(loss_fn(torch.stack(states[1:])), states[1:])
    expected = np.array([g.norm().item() for g in grads])
    assert max_rel_error(norms, expected) < 1e-12
    assert all(p.grad is None for p in rnn.parameters())  # no side effect on .grad


def test_hidden_grad_norms_of_a_last_step_loss_equal_the_jacobian_products(setup):
    params, xs, h0 = setup
    hs = rnn_forward(xs, h0, params["W_xh"], params["W_hh"], params["b_h"])
    P = jacobian_products(tanh_jacobians(hs, params["W_hh"]))
    # L = 0.5 ||h_T||^2, so dL/dh_t = h_T^T dh_T/dh_t for every batch row
    expected = np.linalg.norm(np.einsum("bi,tbij->tbj", hs[-1], P[1:]), axis=(1, 2))
    rnn = torch_rnn_from_params(params)
    norms = hidden_grad_norms(
        rnn, torch.tensor(xs), lambda s: 0.5 * (s[-1] ** 2).sum(), torch.tensor(h0)
    )
    assert max_rel_error(norms, expected) < 1e-12
    # the gradient of nn.RNN's stacked output holds only the direct part: zero before T
    out, _ = rnn(torch.tensor(xs), torch.tensor(h0)[None])
    out.retain_grad()
    (0.5 * (out[-1] ** 2).sum()).backward()
    assert torch.all(out.grad[:-1] == 0) and norms[0] > 0


def test_hidden_grad_norms_default_h0_is_zeros(setup):
    params, xs, _ = setup
    rnn = torch_rnn_from_params(params)
    loss_fn = lambda s: s.sum()  # noqa: E731
    zeros = torch.zeros(B, H, dtype=torch.float64)
    np.testing.assert_array_equal(
        hidden_grad_norms(rnn, torch.tensor(xs), loss_fn),
        hidden_grad_norms(rnn, torch.tensor(xs), loss_fn, zeros),
    )


def test_value_errors(setup):
    params, xs, h0 = setup
    hs = rnn_forward(xs, h0, params["W_xh"], params["W_hh"], params["b_h"])
    with pytest.raises(ValueError, match=r"hs must have shape \(T, B, H\)"):
        tanh_jacobians(hs[0], params["W_hh"])
    with pytest.raises(ValueError, match="W_hh must have shape"):
        tanh_jacobians(hs, params["W_xh"])
    with pytest.raises(ValueError, match="jacobians must have shape"):
        jacobian_products(np.zeros((T, B, H, D)))
    with pytest.raises(ValueError, match="jacobians must have shape"):
        jacobian_products(np.zeros((T, H, H)))
    with pytest.raises(ValueError, match="matrices"):
        spectral_norms(np.ones(3))
    with pytest.raises(ValueError, match="sigma"):
        scale_to_spectral_norm(params["W_hh"], -1.0)
    with pytest.raises(ValueError, match="zero"):
        scale_to_spectral_norm(np.zeros((H, H)), 1.0)
    rnn = torch_rnn_from_params(params)
    txs, th0 = torch.tensor(xs), torch.tensor(h0)
    with pytest.raises(ValueError, match="xs must have shape"):
        hidden_grad_norms(rnn, txs[..., :-1], lambda s: s.sum(), th0)
    with pytest.raises(ValueError, match="h0 must have shape"):
        hidden_grad_norms(rnn, txs, lambda s: s.sum(), th0[:-1])
    with pytest.raises(ValueError, match="scalar"):
        hidden_grad_norms(rnn, txs, lambda s: s, th0)
    two_layer = torch.nn.RNN(D, H, num_layers=2, dtype=torch.float64)
    with pytest.raises(ValueError, match="one-layer"):
        hidden_grad_norms(two_layer, txs, lambda s: s.sum())
    with pytest.raises(ValueError, match="one-layer"):
        hidden_grad_norms(torch.nn.LSTM(D, H), txs, lambda s: s.sum())
