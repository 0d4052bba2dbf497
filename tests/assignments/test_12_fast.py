# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 12_fast: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_data, t, torch_rnn

M = Mutant
A = "12_fast"
FW = ("test_rnn_forward_fast", "test_rnn_forward_fast_edges")
BW = (
    "test_rnn_backward_fast_chain",
    "test_rnn_backward_fast_weights",
    "test_rnn_backward_fast_edges",
)
H_PREV = "H_prev = np.concatenate([h0[None], hs[:-1]]).reshape(T * B, H)"

MUTANTS = [
    M(
        A,
        "forward: time and batch axes mixed in the hoisted product",
        "rnn_forward_fast",
        {"test_rnn_forward_fast": "wrong steps"},
        [("xs.reshape(T * B, D) @ W_xh.T", "xs.transpose(1, 0, 2).reshape(B * T, D) @ W_xh.T")],
    ),
    M(
        A,
        "forward: bias forgotten in the hoisted part",
        "rnn_forward_fast",
        {n: "b_h is missing" for n in FW},
        [("@ W_xh.T + b_h)", "@ W_xh.T)")],
    ),
    M(
        A,
        "forward: bias added again in the loop",
        "rnn_forward_fast",
        {n: "added twice" for n in FW},
        [("h = np.tanh(hs[t] + h @ W_hh.T)", "h = np.tanh(hs[t] + h @ W_hh.T + b_h)")],
    ),
    M(
        A,
        "forward: W_hh not transposed",
        "rnn_forward_fast",
        {n: "without the transpose" for n in FW},
        [("h = np.tanh(hs[t] + h @ W_hh.T)", "h = np.tanh(hs[t] + h @ W_hh)")],
    ),
    M(
        A,
        "forward: h0 at every step",
        "rnn_forward_fast",
        {n: "not carried" for n in FW},
        [("h = np.tanh(hs[t] + h @ W_hh.T)", "h = np.tanh(hs[t] + h0 @ W_hh.T)")],
    ),
    M(
        A,
        "forward: h0 kept in hs",
        "rnn_forward_fast",
        {n: "leave h0 out" for n in FW},
        [("    return hs", "    return np.concatenate([h0[None], hs])")],
    ),
    M(
        A,
        "forward: the state written into h0's buffer (in place)",
        "rnn_forward_fast",
        {n: "changed its input `h0` in place" for n in FW},
        [
            (
                "        h = np.tanh(hs[t] + h @ W_hh.T)\n",
                "        np.tanh(hs[t] + h @ W_hh.T, out=h)\n",
            )
        ],
    ),
    M(
        A,
        "backward: dW_hh with hs instead of the previous states (off by one)",
        "rnn_backward_fast",
        {n: "one step behind" for n in BW[1:]},
        [(H_PREV, "H_prev = hs.reshape(T * B, H)")],
    ),
    M(
        A,
        "backward: h0's term missing from dW_hh",
        "rnn_backward_fast",
        {n: "first step is missing" for n in BW[1:]},
        [
            (
                "dW_hh = A.T @ H_prev",
                "dW_hh = das[1:].reshape((T - 1) * B, H).T @ hs[:-1].reshape((T - 1) * B, H)",
            )
        ],
    ),
    M(
        A,
        "backward: tanh slope forgotten",
        "rnn_backward_fast",
        {n: "slope is missing" for n in BW},
        [("das[t] = (dhs[t] + dh_next) * slopes[t]", "das[t] = dhs[t] + dh_next")],
    ),
    M(
        A,
        "backward: slope of the previous state",
        "rnn_backward_fast",
        {n: "own state" for n in BW},
        [("slopes = 1 - hs**2", "slopes = 1 - np.concatenate([h0[None], hs[:-1]]) ** 2")],
    ),
    M(
        A,
        "backward: stacked gradients in (b, t) order against xs in (t, b)",
        "rnn_backward_fast",
        {"test_rnn_backward_fast_weights": "not paired up"},
        [
            (
                "dW_xh = A.T @ xs.reshape(T * B, D)",
                "dW_xh = das.transpose(1, 0, 2).reshape(B * T, H).T @ xs.reshape(T * B, D)",
            )
        ],
    ),
    M(
        A,
        "backward: previous states stacked batch-first",
        "rnn_backward_fast",
        {"test_rnn_backward_fast_weights": "not paired up"},
        [
            (
                H_PREV,
                "H_prev = np.concatenate([h0[None], hs[:-1]]).transpose(1, 0, 2).reshape(B * T, H)",
            )
        ],
    ),
    M(
        A,
        "backward: dW_hh transposed",
        "rnn_backward_fast",
        {n: "transposed" for n in BW[1:]},
        [("dW_hh = A.T @ H_prev", "dW_hh = H_prev.T @ A")],
    ),
    M(
        A,
        "backward: db_h summed over time only",
        "rnn_backward_fast",
        {n: "time axis only" for n in BW[1:]},
        [("db_h = A.sum(axis=0)", "db_h = das.sum(axis=0)")],
    ),
    M(
        A,
        "backward: db_h summed over the batch only",
        "rnn_backward_fast",
        {n: "batch axis only" for n in BW[1:]},
        [("db_h = A.sum(axis=0)", "db_h = das.sum(axis=1)")],
    ),
    M(
        A,
        "backward: the A_t written into dhs (in place)",
        "rnn_backward_fast",
        {n: "changed its input `dhs` in place" for n in BW},
        [("das = np.empty_like(hs)", "das = dhs")],
    ),
    M(
        A,
        "backward: dxs with W_xh.T",
        "rnn_backward_fast",
        {n: "no .T" for n in BW},
        [("dxs = (A @ W_xh)", "dxs = (A @ W_xh.T)")],
    ),
    M(
        A,
        "backward: dh0 is A_0, not A_0 W_hh",
        "rnn_backward_fast",
        {n: "pre-activation" for n in (BW[0], BW[2])},
        [("return dxs, dh_next, dW_xh", "return dxs, das[0], dW_xh")],
    ),
]

VARIANTS = [
    M(
        A,
        "forward with tensordot and a list of states",
        "rnn_forward_fast",
        {},
        code="def rnn_forward_fast(xs, h0, W_xh, W_hh, b_h):\n"
        "    inputs = np.tensordot(xs, W_xh, axes=([2], [1])) + b_h\n"
        "    out, h = [], h0\n    for a in inputs:\n        h = np.tanh(a + h @ W_hh.T)\n        out.append(h)\n"
        "    return np.array(out)\n",
    ),
    M(
        A,
        "forward in preallocated buffers (the chapter's style)",
        "rnn_forward_fast",
        {},
        code="def rnn_forward_fast(xs, h0, W_xh, W_hh, b_h):\n    T, B, D = xs.shape\n    H = len(b_h)\n"
        "    hs = np.empty((T, B, H))\n    np.matmul(xs.reshape(T * B, D), W_xh.T, out=hs.reshape(T * B, H))\n"
        "    hs += b_h\n    rec = np.empty((B, H))\n    h = h0\n    for t in range(T):\n"
        "        np.matmul(h, W_hh.T, out=rec)\n        hs[t] += rec\n        np.tanh(hs[t], out=hs[t])\n"
        "        h = hs[t]\n    return hs\n",
    ),
    M(
        A,
        "backward with einsum sums and h0's term apart",
        "rnn_backward_fast",
        {},
        code="def rnn_backward_fast(dhs, xs, h0, hs, W_xh, W_hh):\n"
        "    das = np.zeros(hs.shape)\n    g = np.zeros(h0.shape)\n"
        "    for t in range(len(xs) - 1, -1, -1):\n        das[t] = (dhs[t] + g) * (1 - hs[t] * hs[t])\n"
        "        g = das[t] @ W_hh\n"
        "    dW_hh = das[0].T @ h0 + np.einsum('tbi,tbj->ij', das[1:], hs[:-1])\n"
        "    return (np.einsum('tbh,hd->tbd', das, W_xh), g, np.einsum('tbh,tbd->hd', das, xs), dW_hh,\n"
        "            das.sum(axis=(0, 1)))\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


@pytest.mark.parametrize(
    ("T", "B", "D", "H"), [(6, 3, 5, 4), (1, 4, 3, 2), (9, 1, 2, 5), (1, 1, 3, 3)]
)
def test_fast_reference(ref, T, B, D, H):
    ns = ref(A)
    rng = np.random.default_rng(T * 100 + B)
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T, B, D, H)
    dhs = rng.standard_normal((T, B, H))
    args = [xs, h0, W_xh, W_hh, b_h, dhs]
    kept = copy.deepcopy(args)
    rnn = torch_rnn(W_xh, W_hh, b_h)
    txs, th0 = t(xs).requires_grad_(), t(h0).requires_grad_()
    out = rnn(txs, th0[None])[0]
    (out * t(dhs)).sum().backward()
    hs = ns["rnn_forward_fast"](xs, h0, W_xh, W_hh, b_h)
    assert max_rel_error(hs, out.detach()) < TOL
    got = ns["rnn_backward_fast"](dhs, xs, h0, hs, W_xh, W_hh)
    want = [txs.grad, th0.grad, rnn.weight_ih_l0.grad, rnn.weight_hh_l0.grad, rnn.bias_ih_l0.grad]
    for g, w in zip(got, want, strict=True):
        assert g.shape == tuple(w.shape) and max_rel_error(g, w) < TOL
    assert all(np.array_equal(a, b) for a, b in zip(args, kept, strict=True))


def test_fast_equals_the_course_package(ref):
    """The notebook's answer and bptt.fast agree (both hoist; rounding only)."""
    from bptt.fast import rnn_backward_fast, rnn_forward_fast

    ns = ref(A)
    xs, h0, W_xh, W_hh, b_h = rnn_data(np.random.default_rng(7), 12, 3, 5, 4)
    dhs = np.random.default_rng(8).standard_normal((12, 3, 4))
    hs = ns["rnn_forward_fast"](xs, h0, W_xh, W_hh, b_h)
    assert max_rel_error(hs, rnn_forward_fast(xs, h0, W_xh, W_hh, b_h)) < TOL
    mine = ns["rnn_backward_fast"](dhs, xs, h0, hs, W_xh, W_hh)
    theirs = rnn_backward_fast(dhs, xs, h0, hs, W_xh, W_hh)
    assert all(max_rel_error(a, b) < TOL for a, b in zip(mine, theirs, strict=True))


def test_fast_jacobian_oracle(ref):
    """dxs by torch.func.jacrev of the forward pass (an oracle independent of nn.RNN)."""
    ns = ref(A)
    T, B, D, H = 4, 2, 3, 5
    xs, h0, W_xh, W_hh, b_h = rnn_data(np.random.default_rng(9), T, B, D, H)
    dhs = np.random.default_rng(10).standard_normal((T, B, H))

    def f(x):
        h, out = t(h0), []
        for step in x:
            h = torch.tanh(step @ t(W_xh).T + h @ t(W_hh).T + t(b_h))
            out.append(h)
        return (torch.stack(out) * t(dhs)).sum()

    want = torch.func.jacrev(f)(t(xs))
    hs = ns["rnn_forward_fast"](xs, h0, W_xh, W_hh, b_h)
    assert max_rel_error(ns["rnn_backward_fast"](dhs, xs, h0, hs, W_xh, W_hh)[0], want) < TOL
