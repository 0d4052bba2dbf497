"""RTRL against BPTT, torch.autograd (reverse mode) and torch.func.jacfwd (forward mode).

Non-symmetric weights, B > 1, D != H != V and a non-zero h0.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bptt.backward import loss_and_grads
from bptt.cost import peak_bytes
from bptt.oracles import max_rel_error, torch_rnn_from_params
from bptt.rnn import init_params
from bptt.rtrl import (
    flatten_recurrent,
    n_recurrent,
    per_step_seconds,
    rtrl_grads,
    rtrl_online,
    rtrl_step,
    rtrl_step_flops,
    split_recurrent,
)

from conftest import make_problem

T, B, D, H, V = 7, 3, 5, 4, 6
TOL = 1e-12


@pytest.fixture
def setup():
    return make_problem(T, 3, B=B, D=D, H=H, V=V)


def test_rtrl_equals_bptt(setup):
    params, xs, h0, targets = setup
    loss, grads = loss_and_grads(params, xs, h0, targets)
    loss_r, grads_r = rtrl_grads(params, xs, h0, targets)
    assert abs(loss - loss_r) <= TOL * abs(loss)
    assert set(grads_r) == set(grads)
    for key in grads:
        assert grads_r[key].shape == grads[key].shape
        assert max_rel_error(grads_r[key], grads[key]) <= TOL, key


def test_rtrl_equals_torch_autograd(setup):
    params, xs, h0, targets = setup
    rnn = torch_rnn_from_params(params)
    W_hy = torch.tensor(params["W_hy"], requires_grad=True)
    b_y = torch.tensor(params["b_y"], requires_grad=True)
    hs, _ = rnn(torch.tensor(xs), torch.tensor(h0)[None])
    logits = hs @ W_hy.T + b_y
    loss = F.cross_entropy(
        logits.reshape(T * B, V), torch.tensor(targets).reshape(-1), reduction="sum"
    )
    (loss / B).backward()
    _, grads = rtrl_grads(params, xs, h0, targets)
    expected = {
        "W_xh": rnn.weight_ih_l0.grad,
        "W_hh": rnn.weight_hh_l0.grad,
        "b_h": rnn.bias_ih_l0.grad,
        "W_hy": W_hy.grad,
        "b_y": b_y.grad,
    }
    for key, g in expected.items():
        assert max_rel_error(grads[key], g) <= TOL, key


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_sensitivity_is_the_forward_mode_jacobian(setup):
    params, xs, h0, _ = setup
    theta = flatten_recurrent(params["W_xh"], params["W_hh"], params["b_h"])

    def last_state(th):
        W_xh, W_hh = th[: H * D].reshape(H, D), th[H * D : H * D + H * H].reshape(H, H)
        h = torch.tensor(h0)
        for x in torch.tensor(xs):
            h = torch.tanh(x @ W_xh.T + h @ W_hh.T + th[H * D + H * H :])
        return h

    expected = torch.func.jacfwd(last_state)(torch.tensor(theta))  # (B, H, n)
    h, P = h0, np.zeros((B, H, n_recurrent(D, H)))
    for x in xs:
        h, P = rtrl_step(x, h, P, params["W_xh"], params["W_hh"], params["b_h"])
    assert P.shape == tuple(expected.shape) == (B, H, H * D + H * H + H)
    assert max_rel_error(P, expected) <= TOL


def test_online_gradients_are_the_prefix_gradients(setup):
    # After step t, the sum of the per-step gradients is BPTT's gradient of the
    # first t + 1 losses: available without waiting for the end of the sequence.
    params, xs, h0, targets = setup
    running = {key: np.zeros(np.shape(v)) for key, v in params.items()}
    for t, loss_t, grads_t, h in rtrl_online(params, xs, h0, targets):
        for key, g in grads_t.items():
            running[key] += g
        if t in (0, 3, T - 1):
            _, expected = loss_and_grads(params, xs[: t + 1], h0, targets[: t + 1])
            for key in expected:
                assert max_rel_error(running[key], expected[key]) <= TOL, (t, key)
        assert h.shape == (B, H) and np.isfinite(loss_t)


def test_online_uses_parameters_updated_in_place(setup):
    params, xs, h0, targets = setup
    params = {k: v.copy() for k, v in params.items()}
    steps = rtrl_online(params, xs, h0, targets)
    next(steps)
    params["W_hh"][...] = 0.0  # the next step must see it: no memory of h_1
    _, _, _, h = next(steps)
    assert np.allclose(h, np.tanh(xs[1] @ params["W_xh"].T + params["b_h"]))


def test_rtrl_memory_does_not_grow_with_T():
    rng = np.random.default_rng(0)
    params = init_params(D, H, V, rng)

    def peak(T_):
        xs, h0 = rng.standard_normal((T_, B, D)), rng.standard_normal((B, H))
        targets = rng.integers(0, V, size=(T_, B))
        return peak_bytes(lambda: rtrl_grads(params, xs, h0, targets))

    short, long = peak(10), peak(200)
    assert long < 1.2 * short + 2000


def test_flatten_and_split_are_inverse(setup):
    params, *_ = setup
    theta = flatten_recurrent(params["W_xh"], params["W_hh"], params["b_h"])
    assert theta.shape == (n_recurrent(D, H),) == (H * D + H * H + H,)
    parts = split_recurrent(theta, D, H)
    for key in ("W_xh", "W_hh", "b_h"):
        assert np.array_equal(parts[key], params[key])
    stacked = split_recurrent(np.stack([theta, 2 * theta]), D, H)
    assert stacked["W_hh"].shape == (2, H, H)
    assert np.array_equal(stacked["W_hh"][1], 2 * params["W_hh"])


def test_bad_inputs_raise(setup):
    params, xs, h0, targets = setup
    W = params["W_xh"], params["W_hh"], params["b_h"]
    n = n_recurrent(D, H)
    with pytest.raises(ValueError, match=r"P_prev must have shape \(B, H, n\)"):
        rtrl_step(xs[0], h0, np.zeros((B, H, n - 1)), *W)
    with pytest.raises(ValueError, match="h_prev"):
        rtrl_step(xs[0], h0[:, :-1], np.zeros((B, H, n)), *W)
    with pytest.raises(ValueError, match="theta must have shape"):
        split_recurrent(np.zeros(n + 1), D, H)
    with pytest.raises(ValueError, match="W_hh"):
        flatten_recurrent(params["W_xh"], params["W_hh"][:, :-1], params["b_h"])
    with pytest.raises(ValueError, match="xs"):
        rtrl_grads(params, xs[..., :-1], h0, targets)
    with pytest.raises(ValueError, match="targets"):
        rtrl_grads(params, xs, h0, -targets - 1)


def test_rtrl_step_flops_is_the_sensitivity_product():
    assert rtrl_step_flops(B=2, D=3, H=4) == 2 * 2 * 4 * 4 * n_recurrent(3, 4)
    assert rtrl_step_flops(1, 8, 96) / rtrl_step_flops(1, 8, 48) > 2**3.5  # about H^4


def test_per_step_seconds_rows():
    rows = per_step_seconds([4, 8], T=8, repeats=1)
    assert rows.shape == (2, 3) and list(rows[:, 0]) == [4, 8]
    assert (rows[:, 1:] > 0).all()
