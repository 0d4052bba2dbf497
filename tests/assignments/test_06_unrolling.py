# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 06_unrolling: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import numpy as np
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_data, t, torch_rnn

M = Mutant
A = "06_unrolling"
IMM = ("test_immediate_dh_dW_hh", "test_immediate_first_step")
H_PREV = "h_prev = hs[t - 1] if t > 0 else h0"
CARRY = "carried = (deltas[t] * (1 - hs[t] ** 2)) @ W_hh"

MUTANTS = [
    M(
        A,
        "immediate: h_t instead of h_{t-1}",
        "immediate_dh_dW_hh",
        {c: "off-by-one" for c in IMM},
        [(H_PREV, "h_prev = hs[t]")],
    ),
    M(
        A,
        "immediate: hs[t - 1] at t = 0 (wraps to the last state)",
        "immediate_dh_dW_hh",
        {"test_immediate_first_step": "hs[-1]"},
        [(H_PREV, "h_prev = hs[t - 1]")],
    ),
    M(
        A,
        "immediate: no tanh slope",
        "immediate_dh_dW_hh",
        {c: "slope is missing" for c in IMM},
        [("slope = 1 - hs[t] ** 2", "slope = np.ones_like(hs[t])")],
    ),
    M(
        A,
        "immediate: slope of h_{t-1}",
        "immediate_dh_dW_hh",
        {c: "wrong state" for c in IMM},
        [("slope = 1 - hs[t] ** 2", "slope = 1 - h_prev ** 2")],
    ),
    M(
        A,
        "immediate: j and k swapped",
        "immediate_dh_dW_hh",
        {c: "swapped" for c in IMM},
        [("out[:, i, i, :] = ", "out[:, i, :, i] = ")],
    ),
    M(
        A,
        "states: the immediate derivative only (deltas = dhs)",
        "total_state_grads",
        {
            "test_total_state_grads": "direct shares",
            "test_total_state_grads_edges": "direct shares",
        },
        [("deltas[t] = dhs[t] + carried", "deltas[t] = dhs[t]")],
    ),
    M(
        A,
        "states: no tanh slope in J",
        "total_state_grads",
        {
            "test_total_state_grads": "slope is missing",
            "test_total_state_grads_edges": "slope is missing",
        },
        [(CARRY, "carried = deltas[t] @ W_hh")],
    ),
    M(
        A,
        "states: transposed Jacobian",
        "total_state_grads",
        {"test_total_state_grads": "transposed", "test_total_state_grads_edges": "transposed"},
        [(CARRY, "carried = (deltas[t] * (1 - hs[t] ** 2)) @ W_hh.T")],
    ),
    M(
        A,
        "states: slope on the wrong side of W_hh",
        "total_state_grads",
        {"test_total_state_grads": "wrong side", "test_total_state_grads_edges": "wrong side"},
        [(CARRY, "carried = (deltas[t] @ W_hh) * (1 - hs[t] ** 2)")],
    ),
    M(
        A,
        "states: slope of h_t instead of h_{t+1} (off-by-one)",
        "total_state_grads",
        {"test_total_state_grads": "wrong step", "test_total_state_grads_edges": "wrong step"},
        code="def total_state_grads(dhs, hs, W_hh):\n    deltas = dhs.copy()\n"
        "    for t in range(len(dhs) - 2, -1, -1):\n"
        "        deltas[t] = dhs[t] + (deltas[t + 1] * (1 - hs[t] ** 2)) @ W_hh\n    return deltas\n",
    ),
    M(
        A,
        "states: only the last step's loss",
        "total_state_grads",
        {"test_total_state_grads": "only the last step"},
        code="def total_state_grads(dhs, hs, W_hh):\n    deltas = np.zeros_like(dhs)\n    deltas[-1] = dhs[-1]\n"
        "    for t in range(len(dhs) - 2, -1, -1):\n"
        "        deltas[t] = (deltas[t + 1] * (1 - hs[t + 1] ** 2)) @ W_hh\n    return deltas\n",
    ),
    M(
        A,
        "states: the recursion run forward in time",
        "total_state_grads",
        {"test_total_state_grads": "forward in time", "test_total_state_grads_edges": ""},
        [("for t in reversed(range(len(dhs))):", "for t in range(len(dhs)):")],
    ),
    M(
        A,
        "states: dhs changed in place",
        "total_state_grads",
        {"test_total_state_grads": "in place", "test_total_state_grads_edges": "in place"},
        code="def total_state_grads(dhs, hs, W_hh):\n"
        "    for t in range(len(dhs) - 2, -1, -1):\n"
        "        dhs[t] += (dhs[t + 1] * (1 - hs[t + 1] ** 2)) @ W_hh\n    return dhs\n",
    ),
    M(
        A,
        "W_hh: the last step's term only",
        "total_grad_W_hh",
        {
            "test_total_grad_W_hh": "only the last step",
            "test_total_grad_W_hh_one_step": "only the last step",
        },
        [("dW_hh += da.T @ h_prev", "dW_hh = da.T @ h_prev")],
    ),
    M(
        A,
        "W_hh: h_t instead of h_{t-1}",
        "total_grad_W_hh",
        {"test_total_grad_W_hh": "off-by-one", "test_total_grad_W_hh_one_step": "off-by-one"},
        [(H_PREV, "h_prev = hs[t]")],
    ),
    M(
        A,
        "W_hh: transposed",
        "total_grad_W_hh",
        {"test_total_grad_W_hh": "transposed", "test_total_grad_W_hh_one_step": "transposed"},
        [("dW_hh += da.T @ h_prev", "dW_hh += h_prev.T @ da")],
    ),
    M(
        A,
        "W_hh: delta summed without the tanh slope",
        "total_grad_W_hh",
        {
            "test_total_grad_W_hh": "slope is missing",
            "test_total_grad_W_hh_one_step": "slope is missing",
        },
        [("da = deltas[t] * (1 - hs[t] ** 2)", "da = deltas[t]")],
    ),
    M(
        A,
        "W_hh: the first step (h0) skipped",
        "total_grad_W_hh",
        {"test_total_grad_W_hh": "first step", "test_total_grad_W_hh_one_step": "first step"},
        [("for t in range(len(hs)):", "for t in range(1, len(hs)):")],
    ),
    M(
        A,
        "W_hh: hs[t - 1] at t = 0 (wraps to the last state)",
        "total_grad_W_hh",
        {"test_total_grad_W_hh": "wraps around", "test_total_grad_W_hh_one_step": "off-by-one"},
        [(H_PREV, "h_prev = hs[t - 1]")],
    ),
    M(
        A,
        "W_hh: averaged over the batch",
        "total_grad_W_hh",
        {
            "test_total_grad_W_hh": "averaged over the batch",
            "test_total_grad_W_hh_one_step": "averaged over the batch",
        },
        [("    return dW_hh", "    return dW_hh / len(h0)")],
    ),
]

VARIANTS = [
    M(
        A,
        "immediate with einsum and an identity",
        "immediate_dh_dW_hh",
        {},
        code="def immediate_dh_dW_hh(hs, h0, t):\n    prev = h0 if t == 0 else hs[t - 1]\n"
        "    return np.einsum('bi,ij,bk->bijk', 1 - hs[t] * hs[t], np.eye(h0.shape[1]), prev)\n",
    ),
    M(
        A,
        "states with explicit Jacobian matrices",
        "total_state_grads",
        {},
        code="def total_state_grads(dhs, hs, W_hh):\n    J = (1 - hs**2)[..., :, None] * W_hh  # J[t] = dh_t/dh_{t-1}\n"
        "    deltas = [dhs[-1]]\n    for t in range(len(dhs) - 2, -1, -1):\n"
        "        deltas.insert(0, dhs[t] + np.einsum('bi,bij->bj', deltas[0], J[t + 1]))\n"
        "    return np.array(deltas)\n",
    ),
    M(
        A,
        "W_hh in one einsum over time",
        "total_grad_W_hh",
        {},
        code="def total_grad_W_hh(deltas, hs, h0):\n    prev = np.concatenate([h0[None], hs[:-1]])\n"
        "    return np.einsum('tbj,tbk->jk', deltas * (1 - hs**2), prev)\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def test_unrolling_reference(ref):
    """Against nn.RNN run one step at a time (retain_grad on each state) and torch.func.jacrev."""
    ns = ref(A)
    rng = np.random.default_rng(6)
    T, B, D, H = 7, 3, 5, 4
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T, B, D, H)
    h0 = np.tanh(h0)
    W_hy, targets = rng.standard_normal((6, H)), rng.integers(0, 6, (T, B))
    rnn = torch_rnn(W_xh, W_hh, b_h)
    h, states = t(h0)[None], []
    for step in range(T):
        h = rnn(t(xs[step : step + 1]), h)[0]
        h.retain_grad()
        states.append(h)
    logits = torch.cat(states) @ t(W_hy).T
    loss = (
        torch.nn.functional.cross_entropy(
            logits.reshape(-1, 6), torch.tensor(targets).reshape(-1), reduction="sum"
        )
        / B
    )
    (dhs_direct,) = torch.autograd.grad(loss, logits, retain_graph=True)
    loss.backward()
    hs = torch.cat(states).detach().numpy()
    dhs = (dhs_direct @ t(W_hy)).numpy()  # dL_t/dh_t, the direct shares
    kept = [a.copy() for a in (dhs, hs, W_hh, h0)]
    deltas = ns["total_state_grads"](dhs, hs, W_hh)
    assert max_rel_error(deltas, torch.cat([s.grad for s in states])) < TOL
    dW_hh = ns["total_grad_W_hh"](deltas, hs, h0)
    assert max_rel_error(dW_hh, rnn.weight_hh_l0.grad) < TOL
    assert all(np.array_equal(a, b) for a, b in zip(kept, (dhs, hs, W_hh, h0), strict=True))
    # the immediate derivative of each step, against the Jacobian of nn.RNN's one step
    for step in (0, 3, T - 1):
        prev = t(hs[step - 1] if step > 0 else h0)

        def one_step(W, step=step, prev=prev):
            params = dict(rnn.named_parameters(), weight_hh_l0=W)
            return torch.func.functional_call(rnn, params, (t(xs[step : step + 1]), prev[None]))[0][
                0
            ]

        want = torch.func.jacrev(one_step)(t(W_hh))
        assert max_rel_error(ns["immediate_dh_dW_hh"](hs, h0, step), want) < TOL
    # the total derivative is the sum of the immediate terms weighted by delta
    imm = np.stack([ns["immediate_dh_dW_hh"](hs, h0, s) for s in range(T)])
    assert max_rel_error(np.einsum("tbi,tbijk->jk", deltas, imm), dW_hh) < TOL
