# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 13_rtrl: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import copy

import numpy as np
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_data, rnn_grads, t, torch_rnn

M = Mutant
F = torch.nn.functional
A = "13_rtrl"
STEP_ALL = ("test_rtrl_step_first", "test_rtrl_step_carry", "test_rtrl_step_edges")
GRADS_ALL = ("test_rtrl_grads", "test_rtrl_grads_running", "test_rtrl_grads_edges")
RUNNING = ("test_rtrl_grads_running", "test_rtrl_grads_edges")
UPDATE = "P = (1 - h**2)[:, :, None] * (immediate + np.matmul(W_hh, P_prev))"
STEP = "h, P = rtrl_step(xs[t], h, P, W_xh, W_hh, b_h)"
ACC = 'dtheta += np.einsum("bk,bkn->n", dh[0], P)'
RUN = "running[t] = dtheta"
ALLOC = "running = np.zeros((len(xs), n))"
BPTT = (
    "def rtrl_grads(params, xs, h0, targets):\n"
    "    W_xh, W_hh, b_h, W_hy, b_y = (params[k] for k in ('W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y'))\n"
    "    hs = [h0]\n"
    "    for x in xs:\n"
    "        hs.append(rnn_step_forward(x, hs[-1], W_xh, W_hh, b_h))\n"
    "    hs = np.array(hs)\n"
    "    loss, dhs, dW_hy, db_y = output_backward(hs[1:], W_hy, b_y, targets)\n"
    "    gx, gh, gb = np.zeros(W_xh.shape), np.zeros(W_hh.shape), np.zeros(b_h.shape)\n"
    "    dh_next, terms = np.zeros(h0.shape), []\n"
    "    for t in reversed(range(len(xs))):\n"
    "        da = (dhs[t] + dh_next) * (1 - hs[t + 1] ** 2)\n"
    "        gx, gh, gb = gx + da.T @ xs[t], gh + da.T @ hs[t], gb + da.sum(axis=0)\n"
    "        terms.append(flatten_theta(da.T @ xs[t], da.T @ hs[t], da.sum(axis=0)))\n"
    "        dh_next = da @ W_hh\n"
    "    grads = {'W_xh': gx, 'W_hh': gh, 'b_h': gb, 'W_hy': dW_hy, 'b_y': db_y}\n"
)

MUTANTS = [
    M(
        A,
        "step: the recurrent term W_hh P_{t-1} forgotten",
        "rtrl_step",
        {
            "test_rtrl_step_carry": "W_hh P_{t-1} is missing",
            "test_rtrl_step_edges": "W_hh P_{t-1} is missing",
            "test_rtrl_grads": "cut off",
            "test_rtrl_grads_running": "cut off",
            "test_rtrl_grads_edges": "cut off",
        },
        [(UPDATE, "P = (1 - h**2)[:, :, None] * immediate")],
    ),
    M(
        A,
        "step: the tanh slope applied before adding the recurrent term",
        "rtrl_step",
        {
            "test_rtrl_step_carry": "multiplies only the immediate",
            "test_rtrl_step_edges": "multiplies only the immediate",
            "test_rtrl_grads": "",
            "test_rtrl_grads_running": "",
            "test_rtrl_grads_edges": "",
        },
        [(UPDATE, "P = (1 - h**2)[:, :, None] * immediate + np.matmul(W_hh, P_prev)")],
    ),
    M(
        A,
        "step: no tanh slope",
        "rtrl_step",
        {s: "slope is missing" for s in STEP_ALL} | dict.fromkeys(GRADS_ALL, ""),
        [(UPDATE, "P = immediate + np.matmul(W_hh, P_prev)")],
    ),
    M(
        A,
        "step: the slope at h_prev",
        "rtrl_step",
        {s: "slope is taken at h_{t-1}" for s in STEP_ALL} | dict.fromkeys(GRADS_ALL, ""),
        [(UPDATE, "P = (1 - h_prev**2)[:, :, None] * (immediate + np.matmul(W_hh, P_prev))")],
    ),
    M(
        A,
        "step: W_hh transposed in the recurrent term",
        "rtrl_step",
        {
            "test_rtrl_step_carry": "transposed",
            "test_rtrl_step_edges": "transposed",
            "test_rtrl_grads": "",
            "test_rtrl_grads_running": "",
            "test_rtrl_grads_edges": "",
        },
        [(UPDATE, "P = (1 - h**2)[:, :, None] * (immediate + np.matmul(W_hh.T, P_prev))")],
    ),
    M(
        A,
        "step: the W_xh block column by column (transposed flatten order)",
        "rtrl_step",
        {
            "test_rtrl_step_first": "W_xh block",
            "test_rtrl_step_carry": "W_xh block",
            "test_rtrl_grads": "column by column",
            "test_rtrl_grads_running": "W_xh block",
            "test_rtrl_grads_edges": "column by column",
        },
        [
            (
                "        immediate[:, k, k * D:(k + 1) * D] = x\n",
                "        immediate[:, k, k:H * D:H] = x\n",
            )
        ],
    ),
    M(
        A,
        "step: the W_hh block column by column (transposed flatten order)",
        "rtrl_step",
        {
            "test_rtrl_step_first": "W_hh block",
            "test_rtrl_step_carry": "W_hh block",
            "test_rtrl_step_edges": "W_hh block",
            "test_rtrl_grads": "row by row",
            "test_rtrl_grads_running": "W_hh block",
            "test_rtrl_grads_edges": "row by row",
        },
        [
            (
                "        immediate[:, k, H * D + k * H:H * D + (k + 1) * H] = h_prev\n",
                "        immediate[:, k, H * D + k:H * D + H * H:H] = h_prev\n",
            )
        ],
    ),
    M(
        A,
        "step: the bias slots forgotten",
        "rtrl_step",
        {s: "b_h block" for s in STEP_ALL} | dict.fromkeys(GRADS_ALL, ""),
        [("        immediate[:, k, H * D + H * H + k] = 1.0\n", "")],
    ),
    M(
        A,
        "step: the W_hh slots filled with the new state h_t",
        "rtrl_step",
        {s: "W_hh slots" for s in STEP_ALL} | dict.fromkeys(GRADS_ALL, "fix it first"),
        [
            (
                "immediate[:, k, H * D + k * H:H * D + (k + 1) * H] = h_prev",
                "immediate[:, k, H * D + k * H:H * D + (k + 1) * H] = h",
            )
        ],
    ),
    M(
        A,
        "step: P_prev changed in place",
        "rtrl_step",
        {"test_rtrl_step_carry": "in place", "test_rtrl_step_edges": "in place"},
        [
            (
                UPDATE,
                "P_prev[:] = np.matmul(W_hh, P_prev)\n    P = (1 - h**2)[:, :, None] * (immediate + P_prev)",
            )
        ],
    ),
    M(
        A,
        "grads: P not carried (reset every step)",
        "rtrl_grads",
        dict.fromkeys(GRADS_ALL, "cut off"),
        [(STEP, "h, P = rtrl_step(xs[t], h, np.zeros_like(P), W_xh, W_hh, b_h)")],
    ),
    M(
        A,
        "grads: the loss gradient of step t with P_{t-1}",
        "rtrl_grads",
        {
            "test_rtrl_grads": "P_{t-1}",
            "test_rtrl_grads_running": "P_{t-1}",
            "test_rtrl_grads_edges": "",
        },
        [
            (STEP, "P_old = P\n        " + STEP),
            (ACC, 'dtheta += np.einsum("bk,bkn->n", dh[0], P_old)'),
        ],
    ),
    M(
        A,
        "grads: averaged over the batch twice",
        "rtrl_grads",
        dict.fromkeys(GRADS_ALL, "batch twice"),
        [(ACC, 'dtheta += np.einsum("bk,bkn->n", dh[0], P) / len(h0)')],
    ),
    M(
        A,
        "grads: only the last step's gradient",
        "rtrl_grads",
        {
            "test_rtrl_grads": "only the last step",
            "test_rtrl_grads_running": "alone",
            "test_rtrl_grads_edges": "only the last step",
        },
        [(ACC, 'dtheta = np.einsum("bk,bkn->n", dh[0], P)')],
    ),
    M(
        A,
        "grads: the flat gradient reshaped column by column",
        "rtrl_grads",
        {"test_rtrl_grads": "row by row", "test_rtrl_grads_edges": "row by row"},
        [
            (
                '    grads["W_xh"], grads["W_hh"], grads["b_h"] = split_theta(dtheta, D, H)',
                '    grads["W_xh"] = dtheta[:H * D].reshape(D, H).T\n    grads["W_hh"] = dtheta[H * D:H * D + H * H].reshape(H, H).T\n    grads["b_h"] = dtheta[H * D + H * H:]',
            )
        ],
    ),
    M(
        A,
        "grads: the loss of the last step only",
        "rtrl_grads",
        {"test_rtrl_grads": "last step only", "test_rtrl_grads_edges": "last step only"},
        [("        loss += loss_t", "        loss = loss_t")],
    ),
    M(
        A,
        "running: step t's gradient alone, not the sum so far",
        "rtrl_grads",
        dict.fromkeys(RUNNING, "alone"),
        [(RUN, 'running[t] = np.einsum("bk,bkn->n", dh[0], P)')],
    ),
    M(
        A,
        "running: stored before step t's gradient is added (one step behind)",
        "rtrl_grads",
        dict.fromkeys(RUNNING, "one step behind"),
        [(RUN, "pass"), (ACC, RUN + "\n        " + ACC)],
    ),
    M(
        A,
        "running: every row the same array, changed in place afterwards",
        "rtrl_grads",
        {
            "test_rtrl_grads_running": "one and the same array",
            "test_rtrl_grads_edges": "one and the same array",
        },
        [(ALLOC, "running = []"), (RUN, "running.append(dtheta)")],
    ),
    M(
        A,
        "running: averaged over the steps so far",
        "rtrl_grads",
        dict.fromkeys(RUNNING, "number of steps so far"),
        [(RUN, "running[t] = dtheta / (t + 1)")],
    ),
    M(
        A,
        "running: a zero row in front, T + 1 rows",
        "rtrl_grads",
        dict.fromkeys(RUNNING, "T + 1"),
        [(ALLOC, "running = np.zeros((len(xs) + 1, n))"), (RUN, "running[t + 1] = dtheta")],
    ),
    M(
        A,
        "running: one running gradient per sequence, not summed over the batch",
        "rtrl_grads",
        dict.fromkeys(RUNNING, "one gradient per sequence"),
        [
            (
                ALLOC,
                "running = np.zeros((len(xs), len(h0), n))\n    per_seq = np.zeros((len(h0), n))",
            ),
            (
                RUN,
                'per_seq = per_seq + np.einsum("bk,bkn->bn", dh[0], P)\n        running[t] = per_seq',
            ),
        ],
    ),
    M(
        A,
        "running: BPTT, its partial sums in the order of the backward pass",
        "rtrl_grads",
        dict.fromkeys(RUNNING, "backward pass through time"),
        code=BPTT + "    return loss, grads, np.cumsum(terms, axis=0)\n",
    ),
    M(
        A,
        "running: BPTT, its per-step terms summed up in time order",
        "rtrl_grads",
        dict.fromkeys(RUNNING, "backward pass through time"),
        code=BPTT + "    return loss, grads, np.cumsum(terms[::-1], axis=0)\n",
    ),
]

VARIANTS = [
    M(
        A,
        "step: the immediate derivative from identity blocks (einsum), concatenated",
        "rtrl_step",
        {},
        code="def rtrl_step(x, h_prev, P_prev, W_xh, W_hh, b_h):\n"
        "    B, H = h_prev.shape\n"
        "    I = np.eye(H)\n"
        "    h = np.tanh(x @ W_xh.T + h_prev @ W_hh.T + b_h)\n"
        "    dx = np.einsum('ki,bj->bkij', I, x).reshape(B, H, -1)\n"
        "    dh = np.einsum('ki,bj->bkij', I, h_prev).reshape(B, H, -1)\n"
        "    db = np.broadcast_to(I, (B, H, H))\n"
        "    immediate = np.concatenate([dx, dh, db], axis=2)\n"
        "    recurrent = np.einsum('kj,bjn->bkn', W_hh, P_prev)\n"
        "    return h, (1 - h * h)[..., None] * (immediate + recurrent)\n",
    ),
    M(
        A,
        "step: one sequence at a time, with flatten_theta on the rows",
        "rtrl_step",
        {},
        code="def rtrl_step(x, h_prev, P_prev, W_xh, W_hh, b_h):\n"
        "    H, D = W_xh.shape\n"
        "    h = rnn_step_forward(x, h_prev, W_xh, W_hh, b_h)\n"
        "    P = np.empty(P_prev.shape)\n"
        "    for b in range(len(x)):\n"
        "        rows = []\n"
        "        for k in range(H):\n"
        "            gx, gh, gb = np.zeros((H, D)), np.zeros((H, H)), np.zeros(H)\n"
        "            gx[k], gh[k], gb[k] = x[b], h_prev[b], 1.0\n"
        "            rows.append(flatten_theta(gx, gh, gb))\n"
        "        P[b] = np.diag(1 - h[b] ** 2) @ (np.array(rows) + W_hh @ P_prev[b])\n"
        "    return h, P\n",
    ),
    M(
        A,
        "grads: per-step gradients split at once and added per key; running a list of new arrays",
        "rtrl_grads",
        {},
        code="def rtrl_grads(params, xs, h0, targets):\n"
        "    H, D = params['W_xh'].shape\n"
        "    grads = {k: np.zeros(np.shape(v)) for k, v in params.items()}\n"
        "    h, P, total = h0.copy(), np.zeros((h0.shape[0], H, H * D + H * H + H)), 0.0\n"
        "    running = []\n"
        "    for t in range(xs.shape[0]):\n"
        "        h, P = rtrl_step(xs[t], h, P, params['W_xh'], params['W_hh'], params['b_h'])\n"
        "        l, dh, gW_hy, gb_y = output_backward(h[None], params['W_hy'], params['b_y'], targets[t:t + 1])\n"
        "        g = sum(P[b].T @ dh[0, b] for b in range(len(h)))\n"
        "        for k, v in zip(['W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y'], [*split_theta(g, D, H), gW_hy, gb_y]):\n"
        "            grads[k] = grads[k] + v\n"
        "        total = total + l\n"
        "        running.append(flatten_theta(grads['W_xh'], grads['W_hh'], grads['b_h']))\n"
        "    return total, grads, running\n",
    ),
    M(
        A,
        "grads: the per-step terms kept (T, n) and summed with np.cumsum, a copy of each row",
        "rtrl_grads",
        {},
        code="def rtrl_grads(params, xs, h0, targets):\n"
        "    W_xh, W_hh, b_h = params['W_xh'], params['W_hh'], params['b_h']\n"
        "    H, D = W_xh.shape\n"
        "    h, P = h0, np.zeros((len(h0), H, H * D + H * H + H))\n"
        "    loss, terms, gW_hy, gb_y = 0.0, [], 0.0, 0.0\n"
        "    for t, x in enumerate(xs):\n"
        "        h, P = rtrl_step(x, h, P, W_xh, W_hh, b_h)\n"
        "        l, dh, a, b = output_backward(h[None], params['W_hy'], params['b_y'], targets[t:t + 1])\n"
        "        loss, gW_hy, gb_y = loss + l, gW_hy + a, gb_y + b\n"
        "        terms.append(np.einsum('bk,bkn->n', dh[0], P))\n"
        "    running = np.cumsum(np.array(terms), axis=0)\n"
        "    gx, gh, gb = split_theta(running[-1].copy(), D, H)\n"
        "    return loss, {'W_xh': gx, 'W_hh': gh, 'b_h': gb, 'W_hy': gW_hy, 'b_y': gb_y}, running\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def test_rtrl_reference(ref):
    """rtrl_step's P_t is torch.func.jacfwd's dh_t/dtheta; rtrl_grads is BPTT's gradient."""
    ns = ref(A)
    rng = np.random.default_rng(13)
    T, B, D, H, V = 7, 3, 5, 4, 6
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T, B, D, H)
    params = {"W_xh": W_xh, "W_hh": W_hh, "b_h": b_h, "W_hy": rng.standard_normal((V, H))}
    params["b_y"] = rng.standard_normal(V)
    targets = rng.integers(0, V, (T, B))
    kept = copy.deepcopy(params)
    theta = t(ns["flatten_theta"](W_xh, W_hh, b_h))

    def h_T(th, steps):
        Wx, Wh, bh = th[: H * D].reshape(H, D), th[H * D : H * D + H * H].reshape(H, H), th[-H:]
        h = t(h0)
        for x in t(xs[:steps]):
            h = torch.tanh(x @ Wx.T + h @ Wh.T + bh)
        return h

    h, P = h0, np.zeros((B, H, H * D + H * H + H))
    for step in range(1, T + 1):
        h, P = ns["rtrl_step"](xs[step - 1], h, P, W_xh, W_hh, b_h)
        want = torch.func.jacfwd(lambda th, s=step: h_T(th, s))(theta)
        assert max_rel_error(P, want) < TOL
    rnn = torch_rnn(W_xh, W_hh, b_h)
    W_hy, b_y = t(params["W_hy"]).requires_grad_(), t(params["b_y"]).requires_grad_()
    out, _ = rnn(t(xs), t(h0)[None])
    z = (out @ W_hy.T + b_y).reshape(T * B, V)
    loss = F.cross_entropy(z, torch.tensor(targets).reshape(-1), reduction="sum") / B
    loss.backward(retain_graph=True)
    want = rnn_grads(rnn, W_hy, b_y)
    got_loss, grads, running = ns["rtrl_grads"](params, xs, h0, targets)
    assert abs(got_loss - loss.item()) < TOL * loss.item()
    for name in params:
        assert max_rel_error(grads[name], want[name]) < TOL, name
    assert all(np.array_equal(params[n], kept[n]) for n in params)
    # running[s]: the gradient of theta of the losses of steps 0..s, one autograd call per prefix
    assert np.shape(running) == (T, H * D + H * H + H)
    step_losses = F.cross_entropy(z, torch.tensor(targets).reshape(-1), reduction="none")
    step_losses = step_losses.reshape(T, B).sum(dim=1) / B
    weights = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0]
    for s in range(T):
        prefix = torch.autograd.grad(step_losses[: s + 1].sum(), weights, retain_graph=True)
        assert max_rel_error(running[s], torch.cat([g.reshape(-1) for g in prefix])) < TOL, s
    # and by torch.func.jacfwd's sensitivities: the sum of P_s^T dL_s/dh_s up to step s
    P_all = torch.func.jacfwd(lambda th: torch.stack([h_T(th, s) for s in range(1, T + 1)]))(theta)
    dh = torch.autograd.grad(step_losses.sum(), out)[0]  # (T, B, H): dL_s/dh_s, direct only
    want_running = torch.cumsum(torch.einsum("tbk,tbkn->tn", dh, P_all), dim=0)
    assert max_rel_error(running, want_running) < TOL
