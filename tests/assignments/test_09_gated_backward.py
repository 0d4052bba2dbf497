# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 09_gated_backward: its reference solution against oracles nobody here wrote, its
typical mistakes (each must lose points with a message that names it) and its valid variations
(each keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's
own tests; the functions below test the reference solution itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import TOL, Mutant, max_rel_error, t

M = Mutant
A = "09_gated_backward"
LSTM = ("test_lstm_backward", "test_lstm_backward_edges")
GRU_STEP = ("test_gru_step_backward_state", "test_gru_step_backward_weights", "test_gru_backward")
LSTM_CALL = (
    "dxs[t], dh_next, dc_next, dWx_t, dWh_t, db_t = lstm_step_backward(\n"
    "            dhs[t] + dh_next, dc_next, xs[t], h_prev, c_prev, W_x, W_h, b)"
)
LSTM_SUMS = "        dW_x += dWx_t\n        dW_h += dWh_t\n        db += db_t\n"
LSTM_PREV = "h_prev, c_prev = (hs[t - 1], cs[t - 1]) if t > 0 else (h0, c0)"
GRU_CALL = "gru_step_backward(dhs[t] + dh_next, xs[t], h_prev, W_x, W_h, b_x, b_hn)"
GRU_SUMS = "        for g, g_t in zip(grads, step_grads):\n            g += g_t\n"
FIX_STEP = "gru_step_backward"  # gru_backward's message when the step it calls is wrong


def lstm_mutant(name, phrase, edits=None, code=None, fails=LSTM):
    return M(A, name, "lstm_backward", dict.fromkeys(fails, phrase), edits or [], code)


def gru_step_mutant(name, fails, edits=None, code=None):
    """fails: {cell: phrase} of the step's cells; gru_backward, which calls it, fails too."""
    return M(
        A, name, "gru_step_backward", {**fails, "test_gru_backward": FIX_STEP}, edits or [], code
    )


def gru_mutant(name, phrase, edits):
    return M(A, name, "gru_backward", {"test_gru_backward": phrase}, edits)


MUTANTS = [
    # ------------------------------------------------------------ lstm_backward
    lstm_mutant(
        "lstm bptt: dc_next not carried (only dh flows back)",
        "only the hidden state's gradient flows back",
        [
            (
                LSTM_CALL,
                LSTM_CALL.replace(
                    "dh_next, dc_next, xs[t]", "dh_next, np.zeros(np.shape(c0)), xs[t]"
                ),
            )
        ],
    ),
    lstm_mutant(
        "lstm bptt: dh_next reset at every step",
        "does not reach earlier ones through h",
        [(LSTM_CALL, LSTM_CALL.replace("dhs[t] + dh_next, dc_next", "dhs[t], dc_next"))],
    ),
    lstm_mutant(
        "lstm bptt: reset inside the loop",
        "does not reach earlier ones through h",
        [(LSTM_PREV, LSTM_PREV + "\n        dh_next = np.zeros(np.shape(h0))")],
    ),
    lstm_mutant(
        "lstm bptt: dhs[t] added after the step",
        "one step too late",
        [
            (LSTM_CALL, LSTM_CALL.replace("dhs[t] + dh_next, dc_next", "dh_next, dc_next")),
            (LSTM_SUMS, "        dh_next = dh_next + dhs[t]\n" + LSTM_SUMS),
        ],
    ),
    lstm_mutant(
        "lstm bptt: the states after the step",
        "states it started from: h_{t-1} and c_{t-1}",
        [(LSTM_PREV, "h_prev, c_prev = hs[t], cs[t]")],
    ),
    lstm_mutant(
        "lstm bptt: hs[t - 1] at t = 0",
        "hs[-1]",
        [(LSTM_PREV, "h_prev, c_prev = hs[t - 1], cs[t - 1]")],
    ),
    lstm_mutant(
        "lstm bptt: weight gradients overwritten",
        "step 0 only",
        [(LSTM_SUMS, "        dW_x, dW_h, db = dWx_t, dWh_t, db_t\n")],
    ),
    lstm_mutant(
        "lstm bptt: dxs collected backwards",
        "reverse time order",
        code="def lstm_backward(dhs, xs, h0, c0, W_x, W_h, b):\n"
        "    hs, cs = lstm_forward(xs, h0, c0, W_x, W_h, b)\n"
        "    dxs, dW_x, dW_h, db = [], 0, 0, 0\n    dh, dc = 0 * h0, 0 * c0\n"
        "    for t in range(len(xs) - 1, -1, -1):\n"
        "        hp, cp = (hs[t - 1], cs[t - 1]) if t else (h0, c0)\n"
        "        dx, dh, dc, a, b_, c = lstm_step_backward(dhs[t] + dh, dc, xs[t], hp, cp, W_x, W_h, b)\n"
        "        dxs.append(dx)\n        dW_x, dW_h, db = dW_x + a, dW_h + b_, db + c\n"
        "    return np.array(dxs), dh, dc, dW_x, dW_h, db\n",
    ),
    lstm_mutant(
        "lstm bptt: dhs changed in place",
        "changed its input `dhs` in place",
        [
            (
                LSTM_CALL,
                "dh = dhs[t]\n        dh += dh_next\n"
                + "        "
                + LSTM_CALL.replace("dhs[t] + dh_next, dc_next", "dh, dc_next"),
            )
        ],
    ),
    lstm_mutant(
        "lstm bptt: dh and dc swapped in the call",
        "swapped in the call",
        [
            (
                LSTM_CALL,
                LSTM_CALL.replace("dhs[t] + dh_next, dc_next,", "dc_next, dhs[t] + dh_next,"),
            )
        ],
    ),
    # ------------------------------------------------------------ gru_step_backward
    gru_step_mutant(
        "gru step bw: reset gate before the matmul (Cho et al.)",
        {
            "test_gru_step_backward_state": "reset gate before the matmul",
            "test_gru_step_backward_weights": "reset gate before the matmul",
        },
        code="def gru_step_backward(dh, x, h_prev, W_x, W_h, b_x, b_hn):\n    H = h_prev.shape[1]\n"
        "    W_hr, W_hu, W_hn = W_h[:H], W_h[H:2 * H], W_h[2 * H:]\n    a = x @ W_x.T + b_x\n"
        "    r = sigmoid(a[:, :H] + h_prev @ W_hr.T)\n    u = sigmoid(a[:, H:2 * H] + h_prev @ W_hu.T)\n"
        "    rh = r * h_prev\n    n = np.tanh(a[:, 2 * H:] + rh @ W_hn.T + b_hn)\n"
        "    da_n = dh * (1 - u) * (1 - n**2)\n    da_u = dh * (h_prev - n) * u * (1 - u)\n"
        "    d_rh = da_n @ W_hn\n    da_r = d_rh * h_prev * r * (1 - r)\n"
        "    da = np.concatenate([da_r, da_u, da_n], axis=1)\n"
        "    dh_prev = dh * u + d_rh * r + da_r @ W_hr + da_u @ W_hu\n"
        "    dW_h = np.concatenate([da_r.T @ h_prev, da_u.T @ h_prev, da_n.T @ rh])\n"
        "    return da @ W_x, dh_prev, da.T @ x, dW_h, da.sum(axis=0), da_n.sum(axis=0)\n",
    ),
    gru_step_mutant(
        "gru step bw: reset gate's backward as before the matmul, forward right",
        {
            "test_gru_step_backward_state": "reset gate before the matmul",
            "test_gru_step_backward_weights": "reset gate before the matmul",
        },
        [
            (
                "    da_r = da_n * hn * r * (1 - r)\n",
                "    da_r = (da_n @ W_h[2 * H:]) * h_prev * r * (1 - r)\n",
            ),
            ("    d_hn = da_n * r\n", "    d_hn = 0 * da_n\n"),
            (
                "dh_prev = dh * u + da_hat @ W_h",
                "dh_prev = dh * u + (da_n @ W_h[2 * H:]) * r + da_hat @ W_h",
            ),
            (
                "da_hat.T @ h_prev,",
                "np.concatenate([da_hat[:, :2 * H].T @ h_prev, da_n.T @ (r * h_prev)]),",
            ),
            ("d_hn.sum(axis=0)", "da_n.sum(axis=0)"),
        ],
    ),
    gru_step_mutant(
        "gru step bw: u and 1 - u swapped",
        {"test_gru_step_backward_state": "swapped", "test_gru_step_backward_weights": "swapped"},
        [
            ("da_n = dh * (1 - u) * (1 - n**2)", "da_n = dh * u * (1 - n**2)"),
            ("da_u = dh * (h_prev - n) * u * (1 - u)", "da_u = dh * (n - h_prev) * u * (1 - u)"),
            ("dh_prev = dh * u + da_hat @ W_h", "dh_prev = dh * (1 - u) + da_hat @ W_h"),
        ],
    ),
    gru_step_mutant(
        "gru step bw: update gate's gradient with the wrong sign",
        {
            "test_gru_step_backward_state": "wrong sign",
            "test_gru_step_backward_weights": "wrong sign",
        },
        [("da_u = dh * (h_prev - n) * u * (1 - u)", "da_u = dh * (n - h_prev) * u * (1 - u)")],
    ),
    gru_step_mutant(
        "gru step bw: direct path dh * u missing",
        {"test_gru_step_backward_state": "missing the direct path"},
        [("dh_prev = dh * u + da_hat @ W_h", "dh_prev = da_hat @ W_h")],
    ),
    gru_step_mutant(
        "gru step bw: db_hn without the factor r",
        {"test_gru_step_backward_weights": "db_hn lacks the factor r"},
        [("d_hn.sum(axis=0)", "da_n.sum(axis=0)")],
    ),
    gru_step_mutant(
        "gru step bw: r missing on the recurrent side",
        {
            "test_gru_step_backward_state": "factor r is missing",
            "test_gru_step_backward_weights": "factor r is missing",
        },
        [("d_hn = da_n * r", "d_hn = da_n")],
    ),
    gru_step_mutant(
        "gru step bw: b_hn left out of the reset gate's gradient",
        {
            "test_gru_step_backward_state": "leaves out b_hn",
            "test_gru_step_backward_weights": "leaves out b_hn",
        },
        [("da_r = da_n * hn * r", "da_r = da_n * a_hat[:, 2 * H:] * r")],
    ),
    gru_step_mutant(
        "gru step bw: tanh' of the candidate missing",
        {
            "test_gru_step_backward_state": "tanh is missing",
            "test_gru_step_backward_weights": "tanh is missing",
        },
        [("da_n = dh * (1 - u) * (1 - n**2)", "da_n = dh * (1 - u)")],
    ),
    gru_step_mutant(
        "gru step bw: the gates' sigmoid derivative missing",
        {
            "test_gru_step_backward_state": "sigmoid's derivative is missing",
            "test_gru_step_backward_weights": "sigmoid's derivative is missing",
        },
        [
            ("da_u = dh * (h_prev - n) * u * (1 - u)", "da_u = dh * (h_prev - n)"),
            ("da_r = da_n * hn * r * (1 - r)", "da_r = da_n * hn"),
        ],
    ),
    gru_step_mutant(
        "gru step bw: W_h's blocks transposed going back",
        {"test_gru_step_backward_state": "transposed blocks of W_h"},
        [
            (
                "dh_prev = dh * u + da_hat @ W_h",
                "dh_prev = dh * u + sum(da_hat[:, j * H:(j + 1) * H] @ W_h[j * H:(j + 1) * H].T for j in range(3))",
            )
        ],
    ),
    gru_step_mutant(
        "gru step bw: dW_x transposed",
        {"test_gru_step_backward_weights": "looks transposed"},
        [("da.T @ x,", "x.T @ da,")],
    ),
    gru_step_mutant(
        "gru step bw: gates' gradients stacked u, r, n",
        {
            "test_gru_step_backward_state": "order u, r, n",
            "test_gru_step_backward_weights": "order u, r, n",
        },
        [
            ("[da_r, da_u, da_n]", "[da_u, da_r, da_n]"),
            ("[da_r, da_u, d_hn]", "[da_u, da_r, d_hn]"),
        ],
    ),
    # ------------------------------------------------------------ gru_backward
    gru_mutant(
        "gru bptt: dh_next reset at every step",
        "does not reach earlier ones through h",
        [(GRU_CALL, GRU_CALL.replace("dhs[t] + dh_next", "dhs[t]"))],
    ),
    gru_mutant(
        "gru bptt: dhs[t] added after the step",
        "one step too late",
        [
            (GRU_CALL, GRU_CALL.replace("dhs[t] + dh_next", "dh_next")),
            (GRU_SUMS, "        dh_next = dh_next + dhs[t]\n" + GRU_SUMS),
        ],
    ),
    gru_mutant(
        "gru bptt: the state after the step",
        "state it started from",
        [("h_prev = hs[t - 1] if t > 0 else h0", "h_prev = hs[t]")],
    ),
    gru_mutant(
        "gru bptt: hs[t - 1] at t = 0",
        "hs[-1]",
        [("h_prev = hs[t - 1] if t > 0 else h0", "h_prev = hs[t - 1]")],
    ),
    gru_mutant(
        "gru bptt: weight gradients overwritten",
        "step 0 only",
        [(GRU_SUMS, "        grads = step_grads\n")],
    ),
]

VARIANTS = [
    M(
        A,
        "lstm bptt with lists of states, reversed and stacked",
        "lstm_backward",
        {},
        code="def lstm_backward(dhs, xs, h0, c0, W_x, W_h, b):\n"
        "    hs, cs = lstm_forward(xs, h0, c0, W_x, W_h, b)\n"
        "    h_prevs = [h0] + list(hs[:-1])\n    c_prevs = [c0] + list(cs[:-1])\n"
        "    dh, dc, dxs, parts = np.zeros_like(h0), np.zeros_like(c0), [], []\n"
        "    for t in range(len(xs) - 1, -1, -1):\n"
        "        dx, dh, dc, *g = lstm_step_backward(dh + dhs[t], dc, xs[t], h_prevs[t], c_prevs[t], W_x, W_h, b)\n"
        "        dxs.append(dx)\n        parts.append(g)\n"
        "    dW_x, dW_h, db = (sum(p[i] for p in parts) for i in range(3))\n"
        "    return np.stack(dxs[::-1]), dh, dc, dW_x, dW_h, db\n",
    ),
    M(
        A,
        "lstm bptt with a while loop and its own copy of dhs",
        "lstm_backward",
        {},
        code="def lstm_backward(dhs, xs, h0, c0, W_x, W_h, b):\n"
        "    hs, cs = lstm_forward(xs, h0, c0, W_x, W_h, b)\n    g = np.array(dhs, dtype=float)\n"
        "    dxs = np.empty_like(xs, dtype=float)\n    dW_x = 0.0 * W_x\n    dW_h = 0.0 * W_h\n    db = 0.0 * b\n"
        "    t = len(xs) - 1\n    dc = np.zeros_like(c0, dtype=float)\n    dh0 = None\n"
        "    while t >= 0:\n        hp = hs[t - 1] if t >= 1 else h0\n        cp = cs[t - 1] if t >= 1 else c0\n"
        "        dxs[t], dhp, dc, a1, a2, a3 = lstm_step_backward(g[t], dc, xs[t], hp, cp, W_x, W_h, b)\n"
        "        if t >= 1:\n            g[t - 1] += dhp\n        else:\n            dh0 = dhp\n"
        "        dW_x += a1\n        dW_h += a2\n        db += a3\n        t -= 1\n"
        "    return dxs, dh0, dc, dW_x, dW_h, db\n",
    ),
    M(
        A,
        "gru step bw gate by gate, with einsum",
        "gru_step_backward",
        {},
        code="def gru_step_backward(dh, x, h_prev, W_x, W_h, b_x, b_hn):\n    H = h_prev.shape[1]\n"
        "    Wx = [W_x[k * H:(k + 1) * H] for k in range(3)]\n    Wh = [W_h[k * H:(k + 1) * H] for k in range(3)]\n"
        "    bx = [b_x[k * H:(k + 1) * H] for k in range(3)]\n"
        "    r = 1 / (1 + np.exp(-(x @ Wx[0].T + bx[0] + h_prev @ Wh[0].T)))\n"
        "    u = 1 / (1 + np.exp(-(x @ Wx[1].T + bx[1] + h_prev @ Wh[1].T)))\n"
        "    m = h_prev @ Wh[2].T + b_hn\n    n = np.tanh(x @ Wx[2].T + bx[2] + r * m)\n"
        "    g_n = dh * (1 - u) * (1 - n * n)\n    g_u = dh * (h_prev - n) * u * (1 - u)\n"
        "    g_m = g_n * r\n    g_r = g_n * m * r * (1 - r)\n"
        "    dx = g_r @ Wx[0] + g_u @ Wx[1] + g_n @ Wx[2]\n"
        "    dh_prev = u * dh + g_r @ Wh[0] + g_u @ Wh[1] + g_m @ Wh[2]\n"
        "    dW_x = np.concatenate([np.einsum('bi,bj->ij', g, x) for g in (g_r, g_u, g_n)])\n"
        "    dW_h = np.concatenate([np.einsum('bi,bj->ij', g, h_prev) for g in (g_r, g_u, g_m)])\n"
        "    db_x = np.concatenate([g.sum(0) for g in (g_r, g_u, g_n)])\n"
        "    return dx, dh_prev, dW_x, dW_h, db_x, g_m.sum(0)\n",
    ),
    M(
        A,
        "gru bptt accumulating into lists",
        "gru_backward",
        {},
        code="def gru_backward(dhs, xs, h0, W_x, W_h, b_x, b_hn):\n"
        "    states = [h0]\n    for x in xs:\n        states.append(gru_step_forward(x, states[-1], W_x, W_h, b_x, b_hn))\n"
        "    dh = np.zeros_like(h0)\n    dxs = [None] * len(xs)\n    acc = None\n"
        "    for t in reversed(range(len(xs))):\n"
        "        dxs[t], dh, *g = gru_step_backward(dh + dhs[t], xs[t], states[t], W_x, W_h, b_x, b_hn)\n"
        "        acc = g if acc is None else [a + b for a, b in zip(acc, g)]\n"
        "    return (np.array(dxs), dh, *acc)\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def lstm_data(rng, T, B, D, H):
    return (
        rng.standard_normal((T, B, H)),
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        rng.standard_normal((B, H)),
        rng.standard_normal((4 * H, D)) / np.sqrt(D),
        rng.standard_normal((4 * H, H)) / np.sqrt(H),
        rng.standard_normal(4 * H),
    )


def gru_data(rng, T, B, D, H):
    return (
        rng.standard_normal((T, B, H)),
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        rng.standard_normal((3 * H, D)) / np.sqrt(D),
        rng.standard_normal((3 * H, H)) / np.sqrt(H),
        rng.standard_normal(3 * H),
        rng.standard_normal(H),
    )


@pytest.mark.parametrize(("T", "B", "D", "H"), [(7, 3, 5, 4), (1, 1, 2, 3), (4, 2, 3, 3)])
def test_lstm_backward_reference(ref, T, B, D, H):
    """Against nn.LSTM with PyTorch's two biases (any split of b) and autograd."""
    lstm_backward = ref(A)["lstm_backward"]
    rng = np.random.default_rng(T + 10 * H)
    dhs, xs, h0, c0, W_x, W_h, b = args = lstm_data(rng, T, B, D, H)
    kept = copy.deepcopy(args)
    net = torch.nn.LSTM(D, H, dtype=torch.float64)
    split = rng.standard_normal(4 * H)
    with torch.no_grad():
        for name, v in zip(net._flat_weights_names, (W_x, W_h, b - split, split), strict=True):
            getattr(net, name).copy_(t(v))
    leaves = [t(a).requires_grad_() for a in (xs, h0[None], c0[None])]
    out, _ = net(leaves[0], (leaves[1], leaves[2]))
    (out * t(dhs)).sum().backward()
    want = [leaves[0].grad, leaves[1].grad[0], leaves[2].grad[0]]
    want += [net.weight_ih_l0.grad, net.weight_hh_l0.grad, net.bias_ih_l0.grad]
    got = lstm_backward(*args)
    assert len(got) == 6
    for g, w in zip(got, want, strict=True):
        assert max_rel_error(g, w) < TOL
    assert max_rel_error(net.bias_ih_l0.grad, net.bias_hh_l0.grad) < 1e-14
    assert all(np.array_equal(a, k) for a, k in zip(args, kept, strict=True))


@pytest.mark.parametrize(("B", "D", "H"), [(3, 5, 4), (1, 3, 6), (2, 4, 4)])
def test_gru_step_backward_reference(ref, B, D, H):
    """Against torch.func.vjp through nn.GRUCell's functional form, and central differences."""
    gru_step_backward = ref(A)["gru_step_backward"]
    rng = np.random.default_rng(B + 10 * H)
    dhs, xs, h_prev, W_x, W_h, b_x, b_hn = gru_data(rng, 1, B, D, H)
    dh, x = dhs[0], xs[0]
    cell = torch.nn.GRUCell(D, H, dtype=torch.float64)

    def f(x, h, W_x, W_h, b_x, b_hn):
        bias_hh = torch.cat([torch.zeros(2 * H, dtype=torch.float64), b_hn])
        params = {"weight_ih": W_x, "weight_hh": W_h, "bias_ih": b_x, "bias_hh": bias_hh}
        return torch.func.functional_call(cell, params, (x, h))

    args = (x, h_prev, W_x, W_h, b_x, b_hn)
    kept = copy.deepcopy(args)
    _, vjp = torch.func.vjp(f, *(t(a) for a in args))
    want = vjp(t(dh))
    got = gru_step_backward(dh, *args)
    assert len(got) == 6
    for g, w in zip(got, want, strict=True):
        assert max_rel_error(g, w) < TOL
    assert all(np.array_equal(a, k) for a, k in zip(args, kept, strict=True))
    # central differences for b_hn, the bias the reset gate multiplies
    ns = ref(A)
    eps, numeric = 1e-6, np.zeros(H)
    for j in range(H):
        e = np.zeros(H)
        e[j] = eps
        up = ns["gru_step_forward"](x, h_prev, W_x, W_h, b_x, b_hn + e)
        down = ns["gru_step_forward"](x, h_prev, W_x, W_h, b_x, b_hn - e)
        numeric[j] = ((up - down) * dh).sum() / (2 * eps)
    assert max_rel_error(got[5], numeric) < 1e-7


@pytest.mark.parametrize(("T", "B", "D", "H"), [(6, 3, 5, 4), (1, 2, 3, 2), (9, 1, 2, 5)])
def test_gru_backward_reference(ref, T, B, D, H):
    """Against nn.GRU (the r and u biases split between bias_ih and bias_hh) and autograd."""
    gru_backward = ref(A)["gru_backward"]
    rng = np.random.default_rng(T + 10 * H)
    dhs, xs, h0, W_x, W_h, b_x, b_hn = args = gru_data(rng, T, B, D, H)
    kept = copy.deepcopy(args)
    split = np.concatenate([rng.standard_normal(2 * H), np.zeros(H)])
    net = torch.nn.GRU(D, H, dtype=torch.float64)
    bias_hh = split + np.concatenate([np.zeros(2 * H), b_hn])
    with torch.no_grad():
        for name, v in zip(net._flat_weights_names, (W_x, W_h, b_x - split, bias_hh), strict=True):
            getattr(net, name).copy_(t(v))
    leaves = [t(a).requires_grad_() for a in (xs, h0[None])]
    out, _ = net(*leaves)
    (out * t(dhs)).sum().backward()
    want = [leaves[0].grad, leaves[1].grad[0], net.weight_ih_l0.grad, net.weight_hh_l0.grad]
    want += [net.bias_ih_l0.grad, net.bias_hh_l0.grad[2 * H :]]
    got = gru_backward(*args)
    assert len(got) == 6
    for g, w in zip(got, want, strict=True):
        assert max_rel_error(g, w) < TOL
    assert all(np.array_equal(a, k) for a, k in zip(args, kept, strict=True))
