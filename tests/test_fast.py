"""The fast BPTT equals the textbook loop to 1e-12, and torch.autograd on nn.RNN."""

import numpy as np
import pytest
import torch

from bptt.backward import rnn_backward
from bptt.fast import rnn_backward_fast, rnn_forward_fast
from bptt.oracles import torch_rnn_from_params
from bptt.rnn import rnn_forward

from conftest import make_problem


def problem(T=9, dtype=np.float64, **sizes):
    params, xs, h0, _ = make_problem(T, seed=3, **sizes)
    dhs = np.random.default_rng(4).standard_normal((T, xs.shape[1], params["W_hh"].shape[0]))
    cast = {k: v.astype(dtype) for k, v in params.items()}
    return cast, xs.astype(dtype), h0.astype(dtype), dhs.astype(dtype)


@pytest.mark.parametrize("T", [1, 2, 9])
def test_equals_the_textbook_loop_in_float64(T):
    p, xs, h0, dhs = problem(T)
    hs = rnn_forward(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    fast_hs = rnn_forward_fast(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    np.testing.assert_allclose(fast_hs, hs, rtol=1e-12, atol=1e-14)
    slow = rnn_backward(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])
    fast = rnn_backward_fast(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])
    for name, a, b in zip(["dxs", "dh0", "dW_xh", "dW_hh", "db_h"], fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=name)


def test_matches_torch_autograd_on_nn_rnn():
    p, xs, h0, dhs = problem(T=7, B=3, D=5, H=4)
    hs = rnn_forward_fast(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    rnn = torch_rnn_from_params(p)
    x_t = torch.from_numpy(xs).requires_grad_()
    h0_t = torch.from_numpy(h0)[None].requires_grad_()
    out, _ = rnn(x_t, h0_t)
    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    (out * torch.from_numpy(dhs)).sum().backward()
    dxs, dh0, dW_xh, dW_hh, db_h = rnn_backward_fast(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])
    expected = {
        "dxs": (dxs, x_t.grad),
        "dh0": (dh0, h0_t.grad[0]),
        "dW_xh": (dW_xh, rnn.weight_ih_l0.grad),
        "dW_hh": (dW_hh, rnn.weight_hh_l0.grad),
    }
    for name, (a, b) in expected.items():
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-12, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(db_h, rnn.bias_ih_l0.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_float32_stays_float32_and_close():
    p64, xs64, h064, dhs64 = problem()
    p, xs, h0, dhs = problem(dtype=np.float32)
    hs = rnn_forward_fast(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    grads = rnn_backward_fast(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])
    assert hs.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    hs64 = rnn_forward(xs64, h064, p64["W_xh"], p64["W_hh"], p64["b_h"])
    np.testing.assert_allclose(hs, hs64, rtol=1e-4, atol=1e-5)
    slow = rnn_backward(dhs64, xs64, h064, hs64, p64["W_xh"], p64["W_hh"])
    for a, b in zip(grads, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_bad_input_is_named():
    p, xs, h0, dhs = problem()
    with pytest.raises(ValueError, match="h0 must have shape"):
        rnn_forward_fast(xs, h0[:, :-1], p["W_xh"], p["W_hh"], p["b_h"])
    with pytest.raises(ValueError, match="float32 or all float64"):
        rnn_forward_fast(xs.astype(np.float32), h0, p["W_xh"], p["W_hh"], p["b_h"])
    hs = rnn_forward_fast(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    with pytest.raises(ValueError, match="dhs must have shape"):
        rnn_backward_fast(dhs[1:], xs, h0, hs, p["W_xh"], p["W_hh"])
