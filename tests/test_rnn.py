"""The numpy forward pass against torch.nn.RNN and torch's softmax/cross-entropy."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bptt.oracles import max_rel_error, torch_rnn_from_params
from bptt.rnn import (
    init_params,
    last_step_loss,
    log_softmax,
    output_forward,
    rnn_forward,
    rnn_step_forward,
    sequence_loss,
    softmax,
)


def _rnn_args(p):
    q = p["params"]
    return q["W_xh"], q["W_hh"], q["b_h"]


def test_forward_matches_torch_rnn(problem):
    hs = rnn_forward(problem["xs"], problem["h0"], *_rnn_args(problem))
    rnn = torch_rnn_from_params(problem["params"])
    expected, h_n = rnn(torch.from_numpy(problem["xs"]), torch.from_numpy(problem["h0"])[None])
    assert hs.shape == (6, 3, 4)
    assert max_rel_error(hs, expected) < 1e-12
    assert max_rel_error(hs[-1], h_n[0]) < 1e-12


def test_forward_starts_from_h0_and_excludes_it(problem):
    W_xh, W_hh, b_h = _rnn_args(problem)
    hs = rnn_forward(problem["xs"], problem["h0"], W_xh, W_hh, b_h)
    first = rnn_step_forward(problem["xs"][0], problem["h0"], W_xh, W_hh, b_h)
    np.testing.assert_allclose(hs[0], first, rtol=0, atol=1e-15)
    zero_start = rnn_forward(problem["xs"], np.zeros_like(problem["h0"]), W_xh, W_hh, b_h)
    assert not np.allclose(hs[0], zero_start[0]), "h0 must influence the first state"


def test_step_forward_is_batched_row_convention(problem):
    W_xh, W_hh, b_h = _rnn_args(problem)
    x, h_prev = problem["xs"][0], problem["h0"]
    h = rnn_step_forward(x, h_prev, W_xh, W_hh, b_h)
    for b in range(x.shape[0]):  # column-vector form, one sequence at a time
        np.testing.assert_allclose(h[b], np.tanh(W_xh @ x[b] + W_hh @ h_prev[b] + b_h), atol=1e-15)


def test_softmax_is_stable_for_large_logits():
    z = np.array([[1000.0, 1001.0, 999.0], [-1000.0, 0.0, 1000.0]])
    p = softmax(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, torch.softmax(torch.from_numpy(z), -1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        log_softmax(z), torch.log_softmax(torch.from_numpy(z), -1).numpy(), rtol=1e-12
    )


def test_softmax_is_over_the_last_axis(rng):
    z = rng.standard_normal((4, 3, 5))
    np.testing.assert_allclose(softmax(z).sum(axis=-1), 1.0, rtol=1e-14)
    assert not np.allclose(softmax(z).sum(axis=0), 1.0)


@given(arrays(np.float64, (3, 4), elements=st.floats(-50, 50)), st.floats(-1e3, 1e3))
def test_softmax_is_shift_invariant(z, c):
    np.testing.assert_allclose(softmax(z + c), softmax(z), rtol=1e-9, atol=1e-300)


def test_sequence_loss_matches_torch_cross_entropy(problem):
    q = problem["params"]
    hs = rnn_forward(problem["xs"], problem["h0"], *_rnn_args(problem))
    T, B, V = 6, 3, 7
    logits = torch.from_numpy(output_forward(hs, q["W_hy"], q["b_y"])).reshape(T * B, V)
    expected = F.cross_entropy(
        logits, torch.from_numpy(problem["targets"]).reshape(-1), reduction="sum"
    )
    loss = sequence_loss(hs, q["W_hy"], q["b_y"], problem["targets"])
    assert isinstance(loss, float)
    assert loss == pytest.approx(expected.item() / B, rel=1e-12)


def test_last_step_loss_is_the_last_term(problem):
    q = problem["params"]
    hs = rnn_forward(problem["xs"], problem["h0"], *_rnn_args(problem))
    target = problem["targets"][-1]
    expected = F.cross_entropy(
        torch.from_numpy(output_forward(hs[-1], q["W_hy"], q["b_y"])), torch.from_numpy(target)
    )
    assert last_step_loss(hs[-1], q["W_hy"], q["b_y"], target) == pytest.approx(expected.item())


def test_init_params_shapes_and_scale(rng):
    p = init_params(5, 4, 7, rng, scale=1.0)
    assert {k: v.shape for k, v in p.items()} == {
        "W_xh": (4, 5),
        "W_hh": (4, 4),
        "b_h": (4,),
        "W_hy": (7, 4),
        "b_y": (7,),
    }
    assert max(np.abs(v).max() for v in p.values()) <= 0.5  # 1/sqrt(H)


@pytest.mark.parametrize(
    ("name", "make_bad", "message"),
    [
        ("xs", lambda a: a["xs"][0], r"xs must have shape \(T, B, D\)"),
        ("h0", lambda a: a["h0"][:, :-1], r"h0 must have shape \(B, H\)"),
        ("h0", lambda a: a["h0"][:-1], r"h0 must have shape \(B, H\)"),
        ("W_xh", lambda a: a["W_xh"].T, r"W_xh must have shape \(H, D\)"),
        ("W_hh", lambda a: a["W_hh"][:, :-1], r"W_hh must have shape \(H, H\)"),
        ("b_h", lambda a: a["b_h"][None], r"b_h must have shape \(H\)"),
    ],
)
def test_rnn_forward_rejects_bad_shapes(problem, name, make_bad, message):
    W_xh, W_hh, b_h = _rnn_args(problem)
    args = {"xs": problem["xs"], "h0": problem["h0"], "W_xh": W_xh, "W_hh": W_hh, "b_h": b_h}
    args[name] = make_bad(args)
    with pytest.raises(ValueError, match=message):
        rnn_forward(**args)


def test_step_forward_rejects_transposed_weight(problem):
    W_xh, W_hh, b_h = _rnn_args(problem)
    with pytest.raises(ValueError, match="W_xh"):
        rnn_step_forward(problem["xs"][0], problem["h0"], W_xh.T, W_hh, b_h)


def test_sequence_loss_rejects_bad_targets(problem):
    q = problem["params"]
    hs = rnn_forward(problem["xs"], problem["h0"], *_rnn_args(problem))
    with pytest.raises(ValueError, match=r"targets must hold class indices in \[0, 7\)"):
        sequence_loss(hs, q["W_hy"], q["b_y"], problem["targets"] + 7)
    with pytest.raises(ValueError, match="integer class indices"):
        sequence_loss(hs, q["W_hy"], q["b_y"], problem["targets"].astype(float))
    with pytest.raises(ValueError, match=r"targets must have shape \(T, B\)"):
        sequence_loss(hs, q["W_hy"], q["b_y"], problem["targets"].T)


def test_softmax_rejects_scalars():
    with pytest.raises(ValueError, match="z must have at least one axis"):
        softmax(3.0)
