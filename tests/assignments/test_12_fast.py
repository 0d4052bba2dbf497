# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 12_fast: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself.

The contract splits the layer so that the structure of the chapter is what each function
receives: the two loops (`recurrence`, `recurrence_backward`) never see xs or W_xh, so the input
projection and the weight gradients can only be done outside them, by `input_projections` and
`parameter_grads`, over all T*B rows at once."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_data, t, torch_rnn

M = Mutant
A = "12_fast"
F = torch.nn.functional
IP = ("test_input_projections", "test_input_projections_edges")
REC = ("test_recurrence", "test_recurrence_edges")
RB = ("test_recurrence_backward", "test_recurrence_backward_dh0", "test_recurrence_backward_edges")
PG = ("test_parameter_grads_inputs", "test_parameter_grads_weights", "test_parameter_grads_edges")
PG_W = ("test_parameter_grads_weights", "test_parameter_grads_edges")
STEP = "h = np.tanh(xw[t] + h @ W_hh.T)"
DA = "das[t] = (dhs[t] + dh_next) * slopes[t]"
H_PREV = "H_prev = np.concatenate([h0[None], hs[:-1]]).reshape(T * B, H)"

MUTANTS = [
    # ---- input_projections
    M(
        A,
        "projections: time and batch axes mixed in the stacked product",
        "input_projections",
        {"test_input_projections": "wrong steps"},
        [("xs.reshape(T * B, D) @ W_xh.T", "xs.transpose(1, 0, 2).reshape(B * T, D) @ W_xh.T")],
    ),
    M(
        A,
        "projections: bias forgotten",
        "input_projections",
        {n: "b_h is missing" for n in IP},
        [("@ W_xh.T + b_h)", "@ W_xh.T)")],
    ),
    M(
        A,
        "projections: tanh applied to the input part",
        "input_projections",
        {n: "the tanh belongs to the recurrence" for n in IP},
        [("return (xs", "return np.tanh(xs")],
    ),
    M(
        A,
        "projections: W_xh not transposed",
        "input_projections",
        {n: "weights are stored (out, in)" for n in IP},
        [("@ W_xh.T", "@ W_xh")],
    ),
    M(
        A,
        "projections: the stacked (T*B, H) result not read back into (T, B, H)",
        "input_projections",
        {n: "read them back into (T, B, H)" for n in IP},
        [(".reshape(T, B, H)", "")],
    ),
    # ---- recurrence
    M(
        A,
        "recurrence: W_hh not transposed",
        "recurrence",
        {n: "without the transpose" for n in REC},
        [(STEP, "h = np.tanh(xw[t] + h @ W_hh)")],
    ),
    M(
        A,
        "recurrence: h0 at every step",
        "recurrence",
        {n: "not carried" for n in REC},
        [(STEP, "h = np.tanh(xw[t] + h0 @ W_hh.T)")],
    ),
    M(
        A,
        "recurrence: tanh forgotten",
        "recurrence",
        {n: "tanh is missing" for n in REC},
        [(STEP, "h = xw[t] + h @ W_hh.T")],
    ),
    M(
        A,
        "recurrence: the state before the step stored (off by one)",
        "recurrence",
        {n: "state before reading" for n in REC},
        [(f"        {STEP}\n        hs[t] = h\n", f"        hs[t] = h\n        {STEP}\n")],
    ),
    M(
        A,
        "recurrence: h0 kept in hs",
        "recurrence",
        {n: "leave h0 out" for n in REC},
        [("    return hs", "    return np.concatenate([h0[None], hs])")],
    ),
    M(
        A,
        "recurrence: the states written into xw (in place)",
        "recurrence",
        {n: "changed its input `xw` in place" for n in REC},
        [("hs = np.empty_like(xw)", "hs = xw")],
    ),
    M(
        A,
        "recurrence: the state written into h0's buffer (in place)",
        "recurrence",
        {n: "changed its input `h0` in place" for n in REC},
        [(STEP, "np.tanh(xw[t] + h @ W_hh.T, out=h)")],
    ),
    # ---- recurrence_backward
    M(
        A,
        "backward loop: das without the tanh slope",
        "recurrence_backward",
        {n: "slope is missing" for n in RB},
        [(DA, "das[t] = dhs[t] + dh_next")],
    ),
    M(
        A,
        "backward loop: slope of the previous state",
        "recurrence_backward",
        {n: "own state" for n in RB},
        [("slopes = 1 - hs**2", "slopes = 1 - np.concatenate([h0[None], hs[:-1]]) ** 2")],
    ),
    M(
        A,
        "backward loop: the slope on the direct share only",
        "recurrence_backward",
        {n: "multiplies only the direct share" for n in RB},
        [(DA, "das[t] = dhs[t] * slopes[t] + dh_next")],
    ),
    M(
        A,
        "backward loop: the gradient from later steps forgotten",
        "recurrence_backward",
        {n: "from later steps is missing" for n in RB},
        [(DA, "das[t] = dhs[t] * slopes[t]")],
    ),
    M(
        A,
        "backward loop: dh_next through W_hh.T",
        "recurrence_backward",
        {n: "with no .T" for n in RB},
        [("dh_next = das[t] @ W_hh", "dh_next = das[t] @ W_hh.T")],
    ),
    M(
        A,
        "backward loop: run forward in time",
        "recurrence_backward",
        {n: "runs forward in time" for n in RB},
        [("reversed(range(len(hs)))", "range(len(hs))")],
    ),
    M(
        A,
        "backward loop: dh0 taken as das[0] instead of das[0] @ W_hh",
        "recurrence_backward",
        {n: "pre-activation" for n in RB[1:]},
        [("return das, dh_next", "return das, das[0]")],
    ),
    M(
        A,
        "backward loop: dh0 given a tanh slope of h0",
        "recurrence_backward",
        {n: "slope of h0" for n in RB[1:]},
        [("return das, dh_next", "return das, dh_next * (1 - h0**2)")],
    ),
    M(
        A,
        "backward loop: das written into dhs (in place)",
        "recurrence_backward",
        {n: "changed its input `dhs` in place" for n in RB},
        [("das = np.empty_like(hs)", "das = dhs")],
    ),
    # ---- parameter_grads
    M(
        A,
        "parameter grads: dW_hh with hs instead of the previous states (off by one)",
        "parameter_grads",
        {n: "one step behind" for n in PG_W},
        [(H_PREV, "H_prev = hs.reshape(T * B, H)")],
    ),
    M(
        A,
        "parameter grads: the previous states stacked without h0",
        "parameter_grads",
        {n: "first step is missing" for n in PG_W},
        [
            (
                "dW_hh = A.T @ H_prev",
                "dW_hh = das[1:].reshape((T - 1) * B, H).T @ hs[:-1].reshape((T - 1) * B, H)",
            )
        ],
    ),
    M(
        A,
        "parameter grads: stacked gradients in (b, t) order against xs in (t, b)",
        "parameter_grads",
        {"test_parameter_grads_weights": "not paired up"},
        [
            (
                "dW_xh = A.T @ xs.reshape(T * B, D)",
                "dW_xh = das.transpose(1, 0, 2).reshape(B * T, H).T @ xs.reshape(T * B, D)",
            )
        ],
    ),
    M(
        A,
        "parameter grads: previous states stacked batch-first",
        "parameter_grads",
        {"test_parameter_grads_weights": "not paired up"},
        [
            (
                H_PREV,
                "H_prev = np.concatenate([h0[None], hs[:-1]]).transpose(1, 0, 2).reshape(B * T, H)",
            )
        ],
    ),
    M(
        A,
        "parameter grads: dW_hh transposed",
        "parameter_grads",
        {n: "transposed" for n in PG_W},
        [("dW_hh = A.T @ H_prev", "dW_hh = H_prev.T @ A")],
    ),
    M(
        A,
        "parameter grads: dW_xh transposed",
        "parameter_grads",
        {n: "looks transposed" for n in PG_W},
        [("dW_xh = A.T @ xs.reshape(T * B, D)", "dW_xh = xs.reshape(T * B, D).T @ A")],
    ),
    M(
        A,
        "parameter grads: db_h summed over time only",
        "parameter_grads",
        {n: "time axis only" for n in PG_W},
        [("db_h = A.sum(axis=0)", "db_h = das.sum(axis=0)")],
    ),
    M(
        A,
        "parameter grads: db_h summed over the batch only",
        "parameter_grads",
        {n: "batch axis only" for n in PG_W},
        [("db_h = A.sum(axis=0)", "db_h = das.sum(axis=1)")],
    ),
    M(
        A,
        "parameter grads: db_h averaged",
        "parameter_grads",
        {n: "averaged" for n in PG_W},
        [("db_h = A.sum(axis=0)", "db_h = A.mean(axis=0)")],
    ),
    M(
        A,
        "parameter grads: dxs with W_xh.T",
        "parameter_grads",
        {n: "with no .T" for n in PG},
        [("dxs = (A @ W_xh)", "dxs = (A @ W_xh.T)")],
    ),
]

VARIANTS = [
    M(
        A,
        "projections with tensordot",
        "input_projections",
        {},
        code="def input_projections(xs, W_xh, b_h):\n    return np.tensordot(xs, W_xh, axes=([2], [1])) + b_h\n",
    ),
    M(
        A,
        "recurrence with a list of states",
        "recurrence",
        {},
        code="def recurrence(xw, h0, W_hh):\n    out, h = [], h0\n    for a in xw:\n"
        "        h = np.tanh(a + h @ W_hh.T)\n        out.append(h)\n    return np.array(out)\n",
    ),
    M(
        A,
        "recurrence in a preallocated buffer (the chapter's style)",
        "recurrence",
        {},
        code="def recurrence(xw, h0, W_hh):\n    hs = xw.copy()\n    rec = np.empty(h0.shape)\n    h = h0\n"
        "    for t in range(len(hs)):\n        np.matmul(h, W_hh.T, out=rec)\n        hs[t] += rec\n"
        "        np.tanh(hs[t], out=hs[t])\n        h = hs[t]\n    return hs\n",
    ),
    M(
        A,
        "backward loop collecting a reversed list",
        "recurrence_backward",
        {},
        code="def recurrence_backward(dhs, hs, h0, W_hh):\n    out, g = [], np.zeros(h0.shape)\n"
        "    for dh, h in zip(dhs[::-1], hs[::-1]):\n        da = (dh + g) * (1 - h * h)\n"
        "        out.append(da)\n        g = da @ W_hh\n    return np.stack(out[::-1]), g\n",
    ),
    M(
        A,
        "parameter grads with einsum sums and h0's term apart",
        "parameter_grads",
        {},
        code="def parameter_grads(das, xs, h0, hs, W_xh):\n"
        "    dW_hh = das[0].T @ h0 + np.einsum('tbi,tbj->ij', das[1:], hs[:-1])\n"
        "    return (np.einsum('tbh,hd->tbd', das, W_xh), np.einsum('tbh,tbd->hd', das, xs), dW_hh,\n"
        "            das.sum(axis=(0, 1)))\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def _layer(ns, xs, h0, W_xh, W_hh, b_h, dhs):
    """The four functions composed into the layer's forward and backward passes."""
    hs = ns["recurrence"](ns["input_projections"](xs, W_xh, b_h), h0, W_hh)
    das, dh0 = ns["recurrence_backward"](dhs, hs, h0, W_hh)
    dxs, dW_xh, dW_hh, db_h = ns["parameter_grads"](das, xs, h0, hs, W_xh)
    return hs, das, (dxs, dh0, dW_xh, dW_hh, db_h)


@pytest.mark.parametrize(
    ("T", "B", "D", "H"), [(6, 3, 5, 4), (1, 4, 3, 2), (9, 1, 2, 5), (1, 1, 3, 3)]
)
def test_fast_reference(ref, T, B, D, H):
    """The composed layer against torch.nn.RNN and autograd; das against autograd with the
    pre-activations kept as tensors (retain_grad); inputs left unchanged."""
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
    hs, das, got = _layer(ns, *args)
    assert max_rel_error(hs, out.detach()) < TOL
    want = [txs.grad, th0.grad, rnn.weight_ih_l0.grad, rnn.weight_hh_l0.grad, rnn.bias_ih_l0.grad]
    for g, w in zip(got, want, strict=True):
        assert g.shape == tuple(w.shape) and max_rel_error(g, w) < TOL
    tW_xh, tW_hh = t(W_xh).requires_grad_(), t(W_hh).requires_grad_()
    h, pre = t(h0), []  # the pre-activations as tensors of their own
    for step in t(xs):
        a = F.linear(step, tW_xh, t(b_h)) + F.linear(h, tW_hh)
        a.retain_grad()
        pre.append(a)
        h = torch.tanh(a)
    (torch.stack([torch.tanh(a) for a in pre]) * t(dhs)).sum().backward()
    assert max_rel_error(das, torch.stack([a.grad for a in pre])) < TOL
    assert all(np.array_equal(a, b) for a, b in zip(args, kept, strict=True))


def test_fast_equals_the_course_package(ref):
    """The notebook's composed layer and bptt.fast agree (both hoist; rounding only)."""
    from bptt.fast import rnn_backward_fast, rnn_forward_fast

    ns = ref(A)
    xs, h0, W_xh, W_hh, b_h = rnn_data(np.random.default_rng(7), 12, 3, 5, 4)
    dhs = np.random.default_rng(8).standard_normal((12, 3, 4))
    hs, _, mine = _layer(ns, xs, h0, W_xh, W_hh, b_h, dhs)
    assert max_rel_error(hs, rnn_forward_fast(xs, h0, W_xh, W_hh, b_h)) < TOL
    theirs = rnn_backward_fast(dhs, xs, h0, hs, W_xh, W_hh)
    assert all(max_rel_error(a, b) < TOL for a, b in zip(mine, theirs, strict=True))


def test_fast_loops_see_only_the_chain(ref):
    """recurrence and recurrence_backward are the RNN with identity input weights and no bias:
    torch.func.vjp of that layer, a function of (xw, h0) alone, gives das and dh0."""
    ns = ref(A)
    T, B, H = 5, 3, 4
    rng = np.random.default_rng(11)
    xw, h0 = rng.standard_normal((T, B, H)), np.tanh(rng.standard_normal((B, H)))
    W_hh, dhs = rng.standard_normal((H, H)) / 2, rng.standard_normal((T, B, H))
    rnn = torch.nn.RNN(H, H, bias=False, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.eye(H, dtype=torch.float64))
        rnn.weight_hh_l0.copy_(t(W_hh))
    hs_t, vjp = torch.func.vjp(lambda x, h: rnn(x, h[None])[0], t(xw), t(h0))
    hs = ns["recurrence"](xw, h0, W_hh)
    assert max_rel_error(hs, hs_t.detach()) < TOL
    das, dh0 = ns["recurrence_backward"](dhs, hs, h0, W_hh)
    want_das, want_dh0 = vjp(t(dhs))
    assert max_rel_error(das, want_das) < TOL and max_rel_error(dh0, want_dh0) < TOL


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
    assert max_rel_error(_layer(ns, xs, h0, W_xh, W_hh, b_h, dhs)[2][0], want) < TOL
