"""The hand-written backward pass against torch.autograd and central finite differences.

Every case uses non-symmetric random weights, B > 1, D != H and a non-zero h0,
so a transposed weight gradient or a swapped axis cannot hide.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bptt.backward import (
    loss_and_grads,
    numerical_gradient,
    output_backward,
    rnn_backward,
    rnn_step_backward,
)
from bptt.oracles import max_rel_error, torch_params, torch_rnn_from_params
from bptt.rnn import rnn_forward, rnn_step_forward, sequence_loss

from conftest import make_problem

TOL = 1e-10
D, H, V, B = 5, 4, 6, 3


def test_problem_weights_are_not_symmetric():
    # Otherwise a transposed dW_hh would pass the tests below.
    params, *_ = make_problem(3)
    assert not np.allclose(params["W_hh"], params["W_hh"].T, atol=1e-3)


def test_step_backward_matches_autograd():
    params, xs, h0, _ = make_problem(1)
    rng = np.random.default_rng(1)
    dh = rng.standard_normal((B, H))
    W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
    h = rnn_step_forward(xs[0], h0, W_xh, W_hh, b_h)
    ours = rnn_step_backward(dh, xs[0], h0, h, W_xh, W_hh)

    x_t, h_prev_t = (torch.tensor(a, requires_grad=True) for a in (xs[0], h0))
    p = torch_params(params)
    h_t = torch.tanh(x_t @ p["W_xh"].T + h_prev_t @ p["W_hh"].T + p["b_h"])
    (h_t * torch.from_numpy(dh)).sum().backward()
    theirs = (x_t.grad, h_prev_t.grad, p["W_xh"].grad, p["W_hh"].grad, p["b_h"].grad)
    for name, a, b in zip(["dx", "dh_prev", "dW_xh", "dW_hh", "db_h"], ours, theirs, strict=True):
        assert a.shape == b.shape, name
        assert max_rel_error(a, b) < TOL, name


def torch_sequence_grads(params, xs, h0, targets):
    """Oracle: nn.RNN with copied weights + a linear output, cross-entropy summed / B."""
    T = len(xs)
    rnn = torch_rnn_from_params(params)
    W_hy = torch.tensor(params["W_hy"], requires_grad=True)
    b_y = torch.tensor(params["b_y"], requires_grad=True)
    xs_t = torch.tensor(xs, requires_grad=True)
    h0_t = torch.tensor(h0, requires_grad=True)
    hs, _ = rnn(xs_t, h0_t[None])
    logits = hs @ W_hy.T + b_y
    loss = (
        F.cross_entropy(
            logits.reshape(T * B, V), torch.from_numpy(targets).reshape(-1), reduction="sum"
        )
        / B
    )
    loss.backward()
    grads = {
        "W_xh": rnn.weight_ih_l0.grad,
        "W_hh": rnn.weight_hh_l0.grad,
        "b_h": rnn.bias_ih_l0.grad,
        "W_hy": W_hy.grad,
        "b_y": b_y.grad,
        "xs": xs_t.grad,
        "h0": h0_t.grad,
    }
    return loss.item(), grads


@pytest.mark.parametrize("T", [1, 7])
def test_sequence_backward_matches_autograd(T):
    params, xs, h0, targets = make_problem(T)
    p = params
    hs = rnn_forward(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    loss, dhs, dW_hy, db_y = output_backward(hs, p["W_hy"], p["b_y"], targets)
    dxs, dh0, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])
    ours = {
        "W_xh": dW_xh,
        "W_hh": dW_hh,
        "b_h": db_h,
        "W_hy": dW_hy,
        "b_y": db_y,
        "xs": dxs,
        "h0": dh0,
    }
    torch_loss, theirs = torch_sequence_grads(params, xs, h0, targets)
    assert abs(loss - torch_loss) <= TOL * abs(torch_loss)
    for name in ours:
        assert ours[name].shape == tuple(theirs[name].shape), name
        assert max_rel_error(ours[name], theirs[name]) < TOL, name


def test_a_transposed_recurrent_gradient_would_be_caught():
    params, xs, h0, targets = make_problem(7)
    _, grads = loss_and_grads(params, xs, h0, targets)
    _, theirs = torch_sequence_grads(params, xs, h0, targets)
    assert max_rel_error(grads["W_hh"], theirs["W_hh"]) < TOL
    assert max_rel_error(grads["W_hh"].T, theirs["W_hh"]) > 1e-2


def test_rnn_backward_with_arbitrary_upstream_gradients():
    # dhs need not come from a softmax: any upstream gradient, checked via sum(hs * dhs).
    T = 5
    params, xs, h0, _ = make_problem(T, seed=3)
    dhs = np.random.default_rng(4).standard_normal((T, B, H))
    p = params
    hs = rnn_forward(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    dxs, dh0, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])
    rnn = torch_rnn_from_params(params)
    xs_t, h0_t = torch.tensor(xs, requires_grad=True), torch.tensor(h0, requires_grad=True)
    hs_t, _ = rnn(xs_t, h0_t[None])
    (hs_t * torch.from_numpy(dhs)).sum().backward()
    pairs = [
        (dxs, xs_t.grad),
        (dh0, h0_t.grad),
        (dW_xh, rnn.weight_ih_l0.grad),
        (dW_hh, rnn.weight_hh_l0.grad),
        (db_h, rnn.bias_ih_l0.grad),
    ]
    for a, b in pairs:
        assert max_rel_error(a, b) < TOL


def test_output_backward_matches_cross_entropy():
    T = 4
    rng = np.random.default_rng(5)
    hs = rng.standard_normal((T, B, H))
    W_hy, b_y = rng.standard_normal((V, H)), rng.standard_normal(V)
    targets = rng.integers(0, V, size=(T, B))
    loss, dhs, dW_hy, db_y = output_backward(hs, W_hy, b_y, targets)
    hs_t = torch.tensor(hs, requires_grad=True)
    W_t, b_t = torch.tensor(W_hy, requires_grad=True), torch.tensor(b_y, requires_grad=True)
    logits = hs_t @ W_t.T + b_t
    loss_t = (
        F.cross_entropy(
            logits.reshape(-1, V), torch.from_numpy(targets).reshape(-1), reduction="sum"
        )
        / B
    )
    loss_t.backward()
    assert abs(loss - loss_t.item()) <= TOL * abs(loss_t.item())
    assert loss == pytest.approx(sequence_loss(hs, W_hy, b_y, targets), rel=1e-14)
    for a, b in [(dhs, hs_t.grad), (dW_hy, W_t.grad), (db_y, b_t.grad)]:
        assert max_rel_error(a, b) < TOL


def test_loss_and_grads_matches_finite_differences():
    params, xs, h0, targets = make_problem(4, seed=7)
    loss, grads = loss_and_grads(params, xs, h0, targets)
    assert set(grads) == set(params)

    def f(_):
        p = params
        hs = rnn_forward(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
        return sequence_loss(hs, p["W_hy"], p["b_y"], targets)

    assert f(None) == pytest.approx(loss, rel=1e-14)
    for name, value in params.items():
        numeric = numerical_gradient(f, value)
        assert max_rel_error(grads[name], numeric) < 1e-7, name


def test_numerical_gradient_matches_analytic_and_restores_x():
    rng = np.random.default_rng(8)
    A = rng.standard_normal((3, 4))
    x = rng.standard_normal((3, 4))
    before = x.copy()
    grad = numerical_gradient(lambda x: float(np.sum(A * np.sin(x))), x)
    np.testing.assert_array_equal(x, before)
    assert max_rel_error(grad, A * np.cos(before)) < 1e-8


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.arange(6.0).reshape(2, 3)
    before = x.copy()
    calls = []

    def f(x):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return float(x.sum())

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_works_on_non_contiguous_views():
    base = np.random.default_rng(9).standard_normal((4, 6))
    x = base[:, ::2]
    grad = numerical_gradient(lambda x: float(np.sum(x**2)), x)
    assert max_rel_error(grad, 2 * x) < 1e-8


@pytest.mark.parametrize(
    ("x", "eps", "match"),
    [
        ([1.0, 2.0], 1e-6, "x must be a float numpy array"),
        (np.arange(3), 1e-6, "x must be a float numpy array"),
        (np.zeros(3), 0.0, "eps must be positive"),
    ],
)
def test_numerical_gradient_rejects_bad_arguments(x, eps, match):
    with pytest.raises(ValueError, match=match):
        numerical_gradient(lambda x: 0.0, x, eps=eps)


def test_shape_errors_name_the_argument():
    params, xs, h0, targets = make_problem(3)
    p = params
    hs = rnn_forward(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    dhs = np.zeros_like(hs)
    with pytest.raises(ValueError, match=r"W_hh must have shape \(H, H\)"):
        rnn_backward(dhs, xs, h0, hs, p["W_xh"], p["W_hh"][:, :2])
    with pytest.raises(ValueError, match=r"dhs must have shape \(T, B, H\)"):
        rnn_backward(dhs[0], xs, h0, hs, p["W_xh"], p["W_hh"])
    with pytest.raises(ValueError, match=r"hs must have shape \(T, B, H\)"):
        rnn_backward(dhs, xs, h0, hs[:2], p["W_xh"], p["W_hh"])
    with pytest.raises(ValueError, match=r"h_prev must have shape \(B, H\)"):
        rnn_step_backward(dhs[0], xs[0], h0[:1], hs[0], p["W_xh"], p["W_hh"])
    with pytest.raises(ValueError, match=r"W_xh must have shape \(H, D\)"):
        rnn_step_backward(dhs[0], xs[0], h0, hs[0], p["W_xh"].T, p["W_hh"])
    with pytest.raises(ValueError, match=r"W_hy must have shape \(V, H\)"):
        output_backward(hs, p["W_hy"].T, p["b_y"], targets)
    with pytest.raises(ValueError, match=r"targets must have shape \(T, B\)"):
        output_backward(hs, p["W_hy"], p["b_y"], targets[:, :1])
    with pytest.raises(ValueError, match=r"xs must have shape \(T, B, D\)"):
        loss_and_grads(params, xs[..., :2], h0, targets)
    with pytest.raises(ValueError, match="params is missing"):
        loss_and_grads({k: v for k, v in params.items() if k != "b_y"}, xs, h0, targets)


def test_value_errors_for_targets():
    params, xs, h0, targets = make_problem(3)
    with pytest.raises(ValueError, match=r"targets must hold class indices in \[0, 6\)"):
        loss_and_grads(params, xs, h0, targets + V)
    with pytest.raises(ValueError, match="targets must hold integer class indices"):
        loss_and_grads(params, xs, h0, targets.astype(float))
