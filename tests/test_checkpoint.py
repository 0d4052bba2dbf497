"""Checkpointed BPTT (numpy and torch.utils.checkpoint) against full BPTT and torch.autograd.

Non-symmetric weights, B > 1, D != H != V, non-zero h0, and a T that the
segment lengths do not divide, so a lost remainder segment or a gradient
not carried across a segment boundary shows.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bptt.backward import loss_and_grads
from bptt.checkpoint import (
    checkpoint_schedule,
    checkpoint_states,
    checkpointed_grads,
    default_segment,
    torch_checkpointed_loss,
)
from bptt.cost import peak_bytes
from bptt.graph import saved_bytes
from bptt.oracles import max_rel_error, torch_rnn_from_params
from bptt.rnn import init_params, rnn_forward

from conftest import make_problem

T, B, D, H, V = 11, 3, 5, 4, 6
TOL = 1e-12


@pytest.fixture
def setup():
    return make_problem(T, 7, B=B, D=D, H=H, V=V)


def torch_setup(params, xs, h0, targets):
    rnn = torch_rnn_from_params(params)
    W_hy = torch.tensor(params["W_hy"], requires_grad=True)
    b_y = torch.tensor(params["b_y"], requires_grad=True)
    tensors = torch.tensor(xs), torch.tensor(h0), torch.tensor(targets)
    return rnn, W_hy, b_y, tensors


def torch_grads(rnn, W_hy, b_y):
    return {
        "W_xh": rnn.weight_ih_l0.grad,
        "W_hh": rnn.weight_hh_l0.grad,
        "b_h": rnn.bias_ih_l0.grad,
        "W_hy": W_hy.grad,
        "b_y": b_y.grad,
    }


@pytest.mark.parametrize("segment", [1, 2, 3, 4, 10, 11, 50, None])
def test_checkpointed_equals_full_bptt(setup, segment):
    params, xs, h0, targets = setup
    loss, grads = loss_and_grads(params, xs, h0, targets)
    loss_c, grads_c = checkpointed_grads(params, xs, h0, targets, segment)
    assert abs(loss - loss_c) <= TOL * abs(loss)
    assert set(grads_c) == set(grads)
    for key in grads:
        assert grads_c[key].shape == grads[key].shape
        assert max_rel_error(grads_c[key], grads[key]) <= TOL, key


def test_checkpointed_equals_torch_autograd(setup):
    params, xs, h0, targets = setup
    rnn, W_hy, b_y, (txs, th0, ttargets) = torch_setup(params, xs, h0, targets)
    hs, _ = rnn(txs, th0[None])
    logits = hs @ W_hy.T + b_y
    loss = F.cross_entropy(logits.reshape(T * B, V), ttargets.reshape(-1), reduction="sum") / B
    loss.backward()
    loss_c, grads_c = checkpointed_grads(params, xs, h0, targets, 3)
    assert abs(loss.item() - loss_c) <= TOL * abs(loss_c)
    for key, g in torch_grads(rnn, W_hy, b_y).items():
        assert max_rel_error(grads_c[key], g) <= TOL, key


def test_checkpoints_are_exactly_the_forward_states(setup):
    params, xs, h0, _ = setup
    W = params["W_xh"], params["W_hh"], params["b_h"]
    saved = checkpoint_states(xs, h0, *W, segment=4)
    hs = rnn_forward(xs, h0, *W)
    assert saved.shape == (3, B, H)  # steps 0, 4, 8
    assert np.array_equal(saved[0], h0)
    # bit for bit: the recomputation repeats exactly the same operations
    assert np.array_equal(saved[1], hs[3]) and np.array_equal(saved[2], hs[7])


@pytest.mark.parametrize(("T_", "expected"), [(1, 1), (4, 2), (5, 3), (100, 10), (1000, 32)])
def test_default_segment_is_ceil_sqrt(T_, expected):
    assert default_segment(T_) == expected


def test_checkpointing_saves_memory():
    rng = np.random.default_rng(0)
    T_, H_ = 400, 32
    params = init_params(D, H_, V, rng)
    xs, h0 = rng.standard_normal((T_, B, D)), rng.standard_normal((B, H_))
    targets = rng.integers(0, V, size=(T_, B))
    full = peak_bytes(lambda: loss_and_grads(params, xs, h0, targets))
    checkpointed = peak_bytes(lambda: checkpointed_grads(params, xs, h0, targets))
    # every state alone is T * B * H * 8 bytes; checkpointing keeps ~2 sqrt(T) of them
    assert full > T_ * B * H_ * 8
    assert checkpointed < 0.25 * full


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_torch_checkpoint_matches_plain_autograd_and_numpy(setup, use_reentrant):
    params, xs, h0, targets = setup
    rnn, W_hy, b_y, (txs, th0, ttargets) = torch_setup(params, xs, h0, targets)
    plain = torch_checkpointed_loss(rnn, W_hy, b_y, txs, th0, ttargets, segment=T)
    plain.backward()
    expected = {k: g.clone() for k, g in torch_grads(rnn, W_hy, b_y).items()}
    rnn.zero_grad()
    W_hy.grad = b_y.grad = None
    loss = torch_checkpointed_loss(
        rnn, W_hy, b_y, txs, th0, ttargets, segment=3, use_reentrant=use_reentrant
    )
    loss.backward()
    _, ours = loss_and_grads(params, xs, h0, targets)
    assert abs(loss.item() - plain.item()) <= TOL * abs(plain.item())
    for key, g in torch_grads(rnn, W_hy, b_y).items():
        assert max_rel_error(g, expected[key]) <= TOL, key
        assert max_rel_error(g, ours[key]) <= TOL, key


def test_torch_checkpoint_saves_less_for_backward():
    rng = np.random.default_rng(1)
    T_ = 100
    params = init_params(D, H, V, rng)
    xs, h0 = rng.standard_normal((T_, B, D)), rng.standard_normal((B, H))
    targets = rng.integers(0, V, size=(T_, B))
    rnn, W_hy, b_y, tensors = torch_setup(params, xs, h0, targets)
    exclude = [*tensors, *rnn.parameters(), W_hy, b_y]
    _, plain = saved_bytes(
        lambda: torch_checkpointed_loss(rnn, W_hy, b_y, *tensors, segment=T_), exclude
    )
    _, saved = saved_bytes(lambda: torch_checkpointed_loss(rnn, W_hy, b_y, *tensors), exclude)
    assert plain > T_ * B * H * 8  # at least every state
    assert saved < plain / 5


def test_bad_inputs_raise(setup):
    params, xs, h0, targets = setup
    with pytest.raises(ValueError, match="segment"):
        checkpointed_grads(params, xs, h0, targets, 0)
    with pytest.raises(ValueError, match=r"xs must have shape \(T, B, D\)"):
        checkpointed_grads(params, xs[:, :, :-1], h0, targets)
    with pytest.raises(ValueError, match="h0"):
        checkpointed_grads(params, xs, h0[:-1], targets)
    with pytest.raises(ValueError, match="targets"):
        checkpointed_grads(params, xs, h0, targets + V)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        default_segment(0)
    rnn, W_hy, b_y, (txs, th0, ttargets) = torch_setup(params, xs, h0, targets)
    with pytest.raises(ValueError, match="xs must be"):
        torch_checkpointed_loss(rnn, W_hy, b_y, txs[0], th0, ttargets)
    with pytest.raises(ValueError, match="targets must have shape"):
        torch_checkpointed_loss(rnn, W_hy, b_y, txs, th0, ttargets[:-1])
    with pytest.raises(ValueError, match="segment"):
        torch_checkpointed_loss(rnn, W_hy, b_y, txs, th0, ttargets, segment=-2)


@pytest.mark.parametrize("T_, k", [(7, 3), (12, 4), (5, 5), (5, 9), (1, 1)])
def test_checkpoint_schedule_covers_every_step_once_backwards(T_, k):
    plan = checkpoint_schedule(T_, k)
    assert [i for i, _, _ in plan] == list(reversed(range(len(plan))))
    steps = [t for _, start, stop in reversed(plan) for t in range(start, stop)]
    assert steps == list(range(T_))  # every step recomputed exactly once
    assert all(0 < stop - start <= k for _, start, stop in plan)
    assert checkpoint_schedule(7, 3) == [(2, 6, 7), (1, 3, 6), (0, 0, 3)]
