"""Truncated BPTT against oracles: torch.autograd (full and chunk-and-detach), an explicit
sum of Jacobian products, and central finite differences.

Every case uses non-symmetric random weights, B > 1, D != H != V and a non-zero h0.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bptt.backward import numerical_gradient
from bptt.graph import graph_saved_bytes
from bptt.oracles import max_rel_error, torch_rnn_from_params
from bptt.rnn import log_softmax, rnn_forward, sequence_loss, softmax
from bptt.truncated import (
    detach_state,
    echo_stream,
    stateful_batches,
    tbptt_chunks,
    tbptt_k1_k2_grads,
    tbptt_reach,
    tbptt_schedule,
    torch_tbptt_k1_k2,
    truncated_bptt_corrected,
    truncated_bptt_grads,
)

from conftest import make_problem

TOL = 1e-10
B, D, H, V = 3, 5, 4, 6
KEYS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


def torch_model(params):
    rnn = torch_rnn_from_params(params)
    readout = nn.Linear(H, V, dtype=torch.float64)
    with torch.no_grad():
        readout.weight.copy_(torch.from_numpy(params["W_hy"]))
        readout.bias.copy_(torch.from_numpy(params["b_y"]))
    return rnn, readout


def torch_grads(rnn, readout):
    """The model's .grad in the book's names (nn.RNN's bias_ih plays b_h)."""
    tensors = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, readout.weight, readout.bias)
    # A parameter that no loss reached has no .grad: its gradient is zero.
    grads = {
        k: t.grad if t.grad is not None else torch.zeros_like(t)
        for k, t in zip(KEYS, tensors, strict=True)
    }
    return {k: g.detach().numpy().copy() for k, g in grads.items()}


def zero_grads(rnn, readout):
    for p in (*rnn.parameters(), *readout.parameters()):
        p.grad = None


def torch_chunk_and_detach(params, xs, h0, targets, k):
    """Oracle for TBPTT(k): nn.RNN over chunks, the state detached between them."""
    rnn, readout = torch_model(params)
    h = torch.from_numpy(h0)[None]
    x, y = torch.from_numpy(xs), torch.from_numpy(targets)
    total = 0.0
    for start in range(0, len(xs), k):
        h = h.detach()
        hs, h = rnn(x[start : start + k], h)
        logits = readout(hs).flatten(0, 1)
        loss = F.cross_entropy(logits, y[start : start + k].flatten(), reduction="sum") / B
        loss.backward()
        total += loss.item()
    return total, torch_grads(rnn, readout), h[0].detach().numpy()


def assert_grads_close(ours, theirs, tol=TOL):
    assert set(ours) == set(KEYS)
    for k in KEYS:
        assert ours[k].shape == theirs[k].shape, k
        assert max_rel_error(ours[k], theirs[k]) < tol, k


# --- schedules -------------------------------------------------------------------------


def test_tbptt_chunks_cover_the_sequence():
    assert tbptt_chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert tbptt_chunks(6, 3) == [(0, 3), (3, 6)]
    assert tbptt_chunks(4, 10) == [(0, 4)]
    assert tbptt_chunks(3, 1) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("T, k", [(7, 0), (7, -2), (7, 1.5), (0, 3), (7, True)])
def test_tbptt_chunks_rejects_bad_sizes(T, k):
    with pytest.raises(ValueError, match="must be a positive integer"):
        tbptt_chunks(T, k)


def test_tbptt_schedule_by_hand():
    # Updates at t = 3, 6, 7 (1-based); a window ends k2 = 5 states after it starts at
    # start + k1 - k2, never before h_1; the short last chunk keeps that start.
    assert tbptt_schedule(7, 3, 5) == [(0, 0, 3), (1, 3, 6), (4, 6, 7)]
    # k2 < k1: the window starts after the update's first loss.
    assert tbptt_schedule(6, 3, 2) == [(1, 0, 3), (4, 3, 6)]
    assert tbptt_schedule(5, 4, 1) == [(3, 0, 4), (5, 4, 5)]  # a short chunk outside its window
    # k1 = k2: the chunks themselves.
    assert tbptt_schedule(7, 3, 3) == [(0, 0, 3), (3, 3, 6), (6, 6, 7)]
    with pytest.raises(ValueError, match="k2"):
        tbptt_schedule(6, 3, 0)


def test_tbptt_reach_by_hand():
    # T = 4, k1 = 2, k2 = 3: updates at t = 2 (window from h_1) and t = 4 (from h_2).
    expected = np.array(
        [
            [1, 0, 0, 0],
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [0, 1, 1, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(tbptt_reach(4, 2, 3), expected)
    np.testing.assert_array_equal(tbptt_reach(5, 5, 5), np.tril(np.ones((5, 5), dtype=bool)))
    np.testing.assert_array_equal(
        tbptt_reach(4, 2, 2), np.kron(np.eye(2), np.tril(np.ones((2, 2))))
    )
    with pytest.raises(ValueError, match="T"):
        tbptt_reach(-1, 2, 2)


# --- TBPTT(k) ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [7, 10])
def test_k_at_least_T_is_full_bptt(k):
    params, xs, h0, targets = make_problem(7)
    loss, grads, h_last = truncated_bptt_grads(params, xs, h0, targets, k)
    # Full BPTT by autograd: nn.RNN over the whole sequence, nothing detached.
    rnn, readout = torch_model(params)
    hs, h_n = rnn(torch.from_numpy(xs), torch.from_numpy(h0)[None])
    logits = readout(hs).flatten(0, 1)
    full = F.cross_entropy(logits, torch.from_numpy(targets).flatten(), reduction="sum") / B
    full.backward()
    assert abs(loss - full.item()) < TOL * abs(full.item())
    assert_grads_close(grads, torch_grads(rnn, readout))
    assert max_rel_error(h_last, h_n[0]) < TOL


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_truncated_equals_torch_chunk_and_detach(k):
    params, xs, h0, targets = make_problem(7, seed=1)
    loss, grads, h_last = truncated_bptt_grads(params, xs, h0, targets, k)
    loss_t, grads_t, h_last_t = torch_chunk_and_detach(params, xs, h0, targets, k)
    assert abs(loss - loss_t) < TOL * abs(loss_t)
    assert_grads_close(grads, grads_t)
    assert max_rel_error(h_last, h_last_t) < TOL
    # The loss is the whole sequence's: truncation changes gradients, not the forward pass.
    hs = rnn_forward(xs, h0, params["W_xh"], params["W_hh"], params["b_h"])
    assert abs(loss - sequence_loss(hs, params["W_hy"], params["b_y"], targets)) < 1e-12 * loss


def test_truncation_changes_only_the_recurrent_gradients():
    params, xs, h0, targets = make_problem(7, seed=2)
    _, full, _ = truncated_bptt_grads(params, xs, h0, targets, 7)
    _, trunc, _ = truncated_bptt_grads(params, xs, h0, targets, 2)
    for k in ("W_xh", "W_hh", "b_h"):
        assert max_rel_error(full[k], trunc[k]) > 1e-3, k
    for k in ("W_hy", "b_y"):  # they need no backpropagation through time
        assert max_rel_error(full[k], trunc[k]) < TOL, k


def test_truncated_rejects_bad_inputs():
    params, xs, h0, targets = make_problem(5)
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\)"):
        truncated_bptt_grads(params, xs, h0[:, :2], targets, 2)
    with pytest.raises(ValueError, match=r"xs must have shape \(T, B, D\)"):
        truncated_bptt_grads(params, xs[0], h0, targets, 2)
    with pytest.raises(ValueError, match="targets must hold class indices"):
        truncated_bptt_grads(params, xs, h0, targets + V, 2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        truncated_bptt_grads(params, xs, h0, targets, 0)
    with pytest.raises(ValueError, match="missing"):
        truncated_bptt_grads({"W_xh": params["W_xh"]}, xs, h0, targets, 2)


# --- TBPTT(k1, k2) ----------------------------------------------------------------------


def test_k1_k2_with_k1_equal_k2_sums_to_truncated():
    params, xs, h0, targets = make_problem(7, seed=3)
    loss, updates, h_last = tbptt_k1_k2_grads(params, xs, h0, targets, 3, 3)
    loss_k, grads_k, h_k = truncated_bptt_grads(params, xs, h0, targets, 3)
    assert [t for t, _ in updates] == [3, 6, 7]
    summed = {k: sum(g[k] for _, g in updates) for k in KEYS}
    assert_grads_close(summed, grads_k)
    assert abs(loss - loss_k) < TOL * loss and max_rel_error(h_last, h_k) < TOL


@pytest.mark.parametrize("k2", [6, 9])
def test_k1_T_and_k2_at_least_T_is_full_bptt(k2):
    params, xs, h0, targets = make_problem(6, seed=4)
    _, updates, _ = tbptt_k1_k2_grads(params, xs, h0, targets, 6, k2)
    _, full, _ = torch_chunk_and_detach(params, xs, h0, targets, 6)  # one chunk: full BPTT
    assert len(updates) == 1 and updates[0][0] == 6
    assert_grads_close(updates[0][1], full)


@pytest.mark.parametrize("k1, k2", [(2, 5), (3, 2), (1, 3), (4, 1), (3, 3), (5, 2)])
def test_k1_k2_numpy_equals_torch_per_update(k1, k2):
    params, xs, h0, targets = make_problem(8, seed=5)
    _, updates, _ = tbptt_k1_k2_grads(params, xs, h0, targets, k1, k2)
    rnn, readout = torch_model(params)
    steps = torch_tbptt_k1_k2(
        rnn,
        readout,
        torch.from_numpy(xs),
        torch.from_numpy(h0),
        torch.from_numpy(targets),
        k1,
        k2,
    )
    n = 0
    for (t, grads), (t_torch, _) in zip(updates, steps, strict=True):
        assert t == t_torch
        assert_grads_close(grads, torch_grads(rnn, readout))
        zero_grads(rnn, readout)
        n += 1
    assert n == len(tbptt_chunks(8, k1))


def explicit_jacobian_sum(params, xs, h0, targets, updates):
    """Sum over updates, losses s and states j >= window of dL_s/dh_s (prod J) d+h_j/dW.

    Written term by term from the formula, one batch row at a time, with the
    Jacobians J_i = diag(1 - h_i^2) W_hh built as matrices.
    """
    W_xh, W_hh, b_h, W_hy, b_y = (params[k] for k in KEYS)
    hs = rnn_forward(xs, h0, W_xh, W_hh, b_h)
    prev = np.concatenate([h0[None], hs[:-1]])  # prev[j] is the state before hs[j]
    out = {k: np.zeros_like(params[k]) for k in ("W_xh", "W_hh", "b_h")}
    for window, losses in updates:
        for s in losses:
            for r in range(B):
                p = softmax(hs[s, r] @ W_hy.T + b_y)
                g = (p - np.eye(V)[targets[s, r]]) @ W_hy / B  # dL_s/dh_s, a row vector
                for j in range(window, s + 1):
                    product = np.eye(H)
                    for i in range(s, j, -1):  # dh_s/dh_j = J_s J_{s-1} ... J_{j+1}
                        product = product @ (np.diag(1 - hs[i, r] ** 2) @ W_hh)
                    da = (g @ product) * (1 - hs[j, r] ** 2)
                    out["W_hh"] += np.outer(da, prev[j, r])
                    out["W_xh"] += np.outer(da, xs[j, r])
                    out["b_h"] += da
    return out


@pytest.mark.parametrize(
    "k1, k2, hand_schedule",
    [
        # (window start, losses) per update, worked out by hand for T = 4.
        (2, 3, [(0, [0, 1]), (1, [2, 3])]),
        (3, 2, [(1, [0, 1, 2]), (4, [3])]),  # loss 3 reaches no state: position 0, k2 < k1
        (2, 1, [(1, [0, 1]), (3, [2, 3])]),
        (4, 4, [(0, [0, 1, 2, 3])]),  # full BPTT: products of up to three Jacobians
        (1, 2, [(0, [0]), (0, [1]), (1, [2]), (2, [3])]),
    ],
)
def test_k1_k2_equals_explicit_jacobian_sum(k1, k2, hand_schedule):
    params, xs, h0, targets = make_problem(4, seed=6)
    _, updates, _ = tbptt_k1_k2_grads(params, xs, h0, targets, k1, k2)
    assert len(updates) == len(hand_schedule)
    for (_, grads), one in zip(updates, hand_schedule, strict=True):
        expected = explicit_jacobian_sum(params, xs, h0, targets, [one])
        for k in expected:
            assert max_rel_error(grads[k], expected[k]) < TOL, k


def test_k1_k2_update_matches_finite_differences():
    """An update's gradient is the gradient of its losses with the window's first state fixed."""
    params, xs, h0, targets = make_problem(7, seed=7)
    k1, k2 = 2, 3
    _, updates, _ = tbptt_k1_k2_grads(params, xs, h0, targets, k1, k2)
    hs = rnn_forward(xs, h0, params["W_xh"], params["W_hh"], params["b_h"])
    window, start, stop = tbptt_schedule(7, k1, k2)[2]  # update at t = 6: window h_4..h_6
    h_fixed = hs[window - 1].copy()
    p = {k: v.copy() for k, v in params.items()}

    def window_loss(_):
        states = rnn_forward(xs[window:stop], h_fixed, p["W_xh"], p["W_hh"], p["b_h"])
        logp = log_softmax(states[start - window :] @ p["W_hy"].T + p["b_y"])
        picked = np.take_along_axis(logp, targets[start:stop, :, None], axis=-1)
        return -picked.sum() / B

    for k in KEYS:
        numeric = numerical_gradient(window_loss, p[k])
        assert max_rel_error(updates[2][1][k], numeric) < 1e-7, k


def test_k1_k2_rejects_bad_inputs():
    params, xs, h0, targets = make_problem(5)
    with pytest.raises(ValueError, match="k1 must be a positive integer"):
        tbptt_k1_k2_grads(params, xs, h0, targets, 0, 2)
    with pytest.raises(ValueError, match="k2 must be a positive integer"):
        tbptt_k1_k2_grads(params, xs, h0, targets, 2, -1)
    with pytest.raises(ValueError, match=r"targets must have shape \(T, B\)"):
        tbptt_k1_k2_grads(params, xs, h0, targets[:3], 2, 2)
    rnn, readout = torch_model(params)
    x, h, y = (torch.from_numpy(a) for a in (xs, h0, targets))
    with pytest.raises(ValueError, match=r"xs must have shape \(T, B, D\)"):
        torch_tbptt_k1_k2(rnn, readout, x[..., :2], h, y, 2, 2)
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\)"):
        torch_tbptt_k1_k2(rnn, readout, x, h[:2], y, 2, 2)
    with pytest.raises(ValueError, match="k2 must be a positive integer"):
        torch_tbptt_k1_k2(rnn, readout, x, h, y, 2, 0)


def test_torch_k1_k2_trains_with_an_optimizer():
    params, xs, h0, targets = make_problem(12, seed=8)
    rnn, readout = torch_model(params)
    before = rnn.weight_hh_l0.detach().clone()
    opt = torch.optim.SGD([*rnn.parameters(), *readout.parameters()], lr=0.1)
    x, h, y = (torch.from_numpy(a) for a in (xs, h0, targets))
    times = [t for t, _ in torch_tbptt_k1_k2(rnn, readout, x, h, y, 4, 6, optimizer=opt)]
    assert times == [4, 8, 12]
    assert not torch.equal(before, rnn.weight_hh_l0)


# --- PyTorch helpers and the corrected listing -----------------------------------------


def test_detach_state_handles_tensors_tuples_and_none():
    w = torch.ones(2, requires_grad=True)
    h, c = w * 2, w * 3
    assert detach_state(None) is None
    assert not detach_state(h).requires_grad
    hd, cd = detach_state((h, c))
    assert not hd.requires_grad and not cd.requires_grad
    assert torch.equal(hd, h) and torch.equal(cd, c)


class TinyLM(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.embed = nn.Embedding(V, 3)
        self.rnn = cell(3, H, batch_first=True)
        self.out = nn.Linear(H, V)

    def forward(self, inputs, hidden=None):
        states, hidden = self.rnn(self.embed(inputs), hidden)
        return self.out(states), hidden


@pytest.mark.parametrize("cell", [nn.RNN, nn.LSTM])
@pytest.mark.parametrize("length", [21, 23])  # 20 and 22 predictions: k = 5 divides one
def test_corrected_listing_loss_is_the_unchunked_loss(cell, length):
    torch.manual_seed(0)
    model = TinyLM(cell)
    sequence = torch.randint(0, V, (length,))
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # no update: compare losses
    loss = truncated_bptt_corrected(model, sequence, 5, frozen, nn.CrossEntropyLoss())
    with torch.no_grad():
        logits, _ = model(sequence[:-1].unsqueeze(0))
        whole = F.cross_entropy(logits.squeeze(0), sequence[1:]).item()
    assert abs(loss - whole) < 1e-6


def test_corrected_listing_rejects_bad_inputs():
    model = TinyLM(nn.RNN)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="at least 2 ids"):
        truncated_bptt_corrected(model, torch.tensor([1]), 5, opt, nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="chunk_size"):
        truncated_bptt_corrected(model, torch.arange(6), 0, opt, nn.CrossEntropyLoss())


# --- data -------------------------------------------------------------------------------


def test_stateful_batches_rows_continue_across_batches():
    ids = np.arange(103)
    batches = stateful_batches(ids, 4, 7)
    n = 102 // 4  # 25 steps per row
    assert [x.shape for x, _ in batches] == [(7, 4)] * 3 + [(4, 4)]
    for (x, y), (x_next, _) in zip(batches, batches[1:], strict=False):
        np.testing.assert_array_equal(x_next[0], y[-1])  # row j resumes where it stopped
        np.testing.assert_array_equal(x_next[0], x[-1] + 1)
    inputs = np.concatenate([x for x, _ in batches])
    targets = np.concatenate([y for _, y in batches])
    for j in range(4):  # each row is one contiguous slice of the stream
        np.testing.assert_array_equal(inputs[:, j], ids[j * n : (j + 1) * n])
        np.testing.assert_array_equal(targets[:, j], ids[j * n + 1 : (j + 1) * n + 1])


def test_stateful_batches_rejects_bad_inputs():
    with pytest.raises(ValueError, match="at least B \\+ 1"):
        stateful_batches(np.arange(4), 4, 2)
    with pytest.raises(ValueError, match=r"ids must have shape \(N\)"):
        stateful_batches(np.zeros((3, 4), dtype=int), 2, 2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        stateful_batches(np.arange(20), 2, 0)


def test_echo_stream_targets_are_delayed_inputs():
    inputs, targets = echo_stream(30, 4, 5, 6, np.random.default_rng(0))
    assert inputs.shape == targets.shape == (30, 4)
    np.testing.assert_array_equal(targets[6:], inputs[:-6])
    assert inputs.min() >= 0 and inputs.max() < 5
    with pytest.raises(ValueError, match="lag"):
        echo_stream(30, 4, 5, 0, np.random.default_rng(0))


def test_graph_saved_bytes_counts_what_backward_needs():
    x = torch.randn(10, dtype=torch.float64, requires_grad=True)
    # exp saves its result (80 bytes); sum saves only a size.
    assert graph_saved_bytes(torch.exp(x).sum()) == 80
    y = torch.randn(10, dtype=torch.float64)
    assert graph_saved_bytes((x * y).sum()) == 80  # mul saves y (x's grad needs it)
    with pytest.raises(ValueError, match="requires grad"):
        graph_saved_bytes(y.sum())
