# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 04_truncated: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import (
    TOL,
    Mutant,
    max_rel_error,
    rnn_grads,
    rnn_problem,
    t,
    torch_rnn,
)

M = Mutant
F = torch.nn.functional
CHUNKS = "return [(start, min(start + k, T)) for start in range(0, T, k)]"
TB_BW = "rnn_backward(dhs, xs[s:e], h_in, hs[s:e], W_xh, W_hh)"
TB_ALL = ("test_truncated_loss_state", "test_truncated_full", "test_truncated_grads")

MUTANTS = [
    M(
        "04_truncated",
        "chunks: last partial chunk dropped",
        "tbptt_chunks",
        {
            "test_tbptt_chunks": "last, shorter chunk is missing",
            "test_truncated_loss_state": "skipped",
            "test_truncated_grads": "skipped",
        },
        [(CHUNKS, "return [(start, start + k) for start in range(0, T - k + 1, k)] or [(0, T)]")],
    ),
    M(
        "04_truncated",
        "chunks: the source notes' range(0, T - 1, k)",
        "tbptt_chunks",
        {
            "test_tbptt_chunks": "",
            "test_truncated_loss_state": "",
            "test_truncated_full": "",
            "test_truncated_grads": "",
        },
        [(CHUNKS, "return [(start, min(start + k, T - 1)) for start in range(0, T - 1, k)]")],
    ),
    M(
        "04_truncated",
        "chunks: stop not clipped to T",
        "tbptt_chunks",
        {"test_tbptt_chunks": "runs past T"},
        [(CHUNKS, "return [(start, start + k) for start in range(0, T, k)]")],
    ),
    M(
        "04_truncated",
        "chunks: stop inclusive",
        "tbptt_chunks",
        {
            "test_tbptt_chunks": "stop is exclusive",
            "test_truncated_loss_state": "fix it first",
            "test_truncated_full": "fix it first",
            "test_truncated_grads": "fix it first",
        },
        [(CHUNKS, "return [(start, min(start + k, T) - 1) for start in range(0, T, k)]")],
    ),
    M(
        "04_truncated",
        "chunks: k < 1 not checked",
        "tbptt_chunks",
        {"test_tbptt_chunks_invalid": "must raise ValueError"},
        [
            (
                '    if k < 1:\n        raise ValueError(f"the chunk length k must be >= 1, got {k}")\n',
                "",
            )
        ],
    ),
    M(
        "04_truncated",
        "chunks: assert instead of ValueError",
        "tbptt_chunks",
        {"test_tbptt_chunks_invalid": "must raise ValueError"},
        [
            (
                '    if k < 1:\n        raise ValueError(f"the chunk length k must be >= 1, got {k}")\n',
                "    assert k >= 1, 'k must be positive'\n",
            )
        ],
    ),
    M(
        "04_truncated",
        "tbptt: state not carried (each chunk from h0)",
        "truncated_bptt_grads",
        {"test_truncated_loss_state": "carried over", "test_truncated_grads": "carried over"},
        code="def truncated_bptt_grads(params, xs, h0, targets, k):\n"
        "    grads = {n: np.zeros_like(p) for n, p in params.items()}\n    loss = 0.0\n"
        "    for s, e in tbptt_chunks(len(xs), k):\n"
        "        hs = rnn_forward(xs[s:e], h0, params['W_xh'], params['W_hh'], params['b_h'])\n"
        "        l, dhs, dW_hy, db_y = output_backward(hs, params['W_hy'], params['b_y'], targets[s:e])\n"
        "        _, _, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs[s:e], h0, hs, params['W_xh'], params['W_hh'])\n"
        "        loss += l\n"
        "        for n, g in zip(('W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y'), (dW_xh, dW_hh, db_h, dW_hy, db_y)):\n"
        "            grads[n] += g\n"
        "    return loss, grads, hs[-1]\n",
    ),
    M(
        "04_truncated",
        "tbptt: gradient flows across chunks (full BPTT)",
        "truncated_bptt_grads",
        {"test_truncated_grads": "full BPTT"},
        code="def truncated_bptt_grads(params, xs, h0, targets, k):\n"
        "    hs = rnn_forward(xs, h0, params['W_xh'], params['W_hh'], params['b_h'])\n"
        "    loss, dhs, dW_hy, db_y = output_backward(hs, params['W_hy'], params['b_y'], targets)\n"
        "    _, _, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs, h0, hs, params['W_xh'], params['W_hh'])\n"
        "    return loss, dict(W_xh=dW_xh, W_hh=dW_hh, b_h=db_h, W_hy=dW_hy, b_y=db_y), hs[-1]\n",
    ),
    M(
        "04_truncated",
        "tbptt: grads of the last chunk only",
        "truncated_bptt_grads",
        {"test_truncated_grads": "only the last chunk"},
        [("            grads[n] += g", "            grads[n] = g")],
    ),
    M(
        "04_truncated",
        "tbptt: loss of the last chunk only",
        "truncated_bptt_grads",
        {"test_truncated_loss_state": "last chunk only"},
        [("loss += chunk_loss", "loss = chunk_loss")],
    ),
    M(
        "04_truncated",
        "tbptt: loss averaged over chunks",
        "truncated_bptt_grads",
        {"test_truncated_loss_state": "averaged over the chunks"},
        [
            (
                "    return loss, grads, hs[-1]",
                "    return loss / len(tbptt_chunks(len(xs), k)), grads, hs[-1]",
            )
        ],
    ),
    M(
        "04_truncated",
        "tbptt: wrong state entering a chunk (hs[s])",
        "truncated_bptt_grads",
        {
            "test_truncated_full": "*before* its first step",
            "test_truncated_grads": "*before* its first step",
        },
        [("h_in = hs[s - 1] if s > 0 else h0", "h_in = hs[s]")],
    ),
    M(
        "04_truncated",
        "tbptt: h0 as the state entering every chunk in the backward pass",
        "truncated_bptt_grads",
        {"test_truncated_grads": "given h0"},
        [(TB_BW, "rnn_backward(dhs, xs[s:e], h0, hs[s:e], W_xh, W_hh)")],
    ),
    M(
        "04_truncated",
        "tbptt: grads as a tuple",
        "truncated_bptt_grads",
        {"test_truncated_full": "dict", "test_truncated_grads": "dict"},
        [("    return loss, grads, hs[-1]", "    return loss, tuple(grads.values()), hs[-1]")],
    ),
]

VARIANTS = [
    M(
        "04_truncated",
        "chunks with a while loop, returning lists",
        "tbptt_chunks",
        {},
        code="def tbptt_chunks(T, k):\n    if not k >= 1:\n        raise ValueError('k must be >= 1')\n"
        "    out, s = [], 0\n    while s < T:\n        out.append([s, min(T, s + k)])\n        s += k\n"
        "    return out\n",
    ),
    M(
        "04_truncated",
        "tbptt chunk by chunk, forward per chunk from the carried state",
        "truncated_bptt_grads",
        {},
        code="def truncated_bptt_grads(params, xs, h0, targets, k):\n"
        "    W_xh, W_hh, b_h, W_hy, b_y = [params[n] for n in ['W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y']]\n"
        "    grads = {n: 0.0 for n in params}\n    total = 0.0\n    h = h0\n"
        "    for s in range(0, len(xs), k):\n        e = min(s + k, len(xs))\n"
        "        hs = rnn_forward(xs[s:e], h, W_xh, W_hh, b_h)\n"
        "        l, dhs, gW_hy, gb_y = output_backward(hs, W_hy, b_y, targets[s:e])\n"
        "        _, _, gW_xh, gW_hh, gb_h = rnn_backward(dhs, xs[s:e], h, hs, W_xh, W_hh)\n"
        "        total += l\n        h = hs[-1]\n"
        "        for n, g in [('W_xh', gW_xh), ('W_hh', gW_hh), ('b_h', gb_h), ('W_hy', gW_hy), ('b_y', gb_y)]:\n"
        "            grads[n] = grads[n] + g\n"
        "    return total, grads, h\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def torch_truncated(params, xs, h0, targets, k):
    """Truncated BPTT by nn.RNN + detach, one chunk at a time (chunk losses summed)."""
    W_hy, b_y = t(params["W_hy"]).requires_grad_(), t(params["b_y"]).requires_grad_()
    rnn = torch_rnn(params["W_xh"], params["W_hh"], params["b_h"])
    h, total = t(h0)[None], 0.0
    T, B = targets.shape
    for s in range(0, T, k):
        out, h = rnn(t(xs[s : s + k]), h.detach())
        z = (out @ W_hy.T + b_y).reshape(-1, W_hy.shape[0])
        total = (
            total
            + F.cross_entropy(z, torch.tensor(targets[s : s + k]).reshape(-1), reduction="sum") / B
        )
    total.backward()
    return total.item(), rnn_grads(rnn, W_hy, b_y), h[0].detach()


def test_truncated_reference(ref):
    ns = ref("04_truncated")
    assert ns["tbptt_chunks"](10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert ns["tbptt_chunks"](6, 3) == [(0, 3), (3, 6)]
    assert ns["tbptt_chunks"](5, 9) == [(0, 5)]
    for k in (0, -1):
        with pytest.raises(ValueError):
            ns["tbptt_chunks"](5, k)
    rng = np.random.default_rng(4)
    T, B, D, H, V = 11, 3, 5, 4, 6
    params, xs, h0, targets = rnn_problem(rng, T, B, D, H, V)
    kept = copy.deepcopy(params)
    full = None
    for k in (1, 3, 4, 11, 50):
        loss, grads, h_last = ns["truncated_bptt_grads"](params, xs, h0, targets, k)
        want_loss, want, want_h = torch_truncated(params, xs, h0, targets, k)
        assert abs(loss - want_loss) < TOL * want_loss
        assert max_rel_error(h_last, want_h) < TOL
        for name in params:
            assert max_rel_error(grads[name], want[name]) < TOL, (k, name)
        if k == T:
            full = grads
        if k == 50:  # k >= T is full BPTT
            assert all(max_rel_error(grads[n], full[n]) < TOL for n in params)
    assert all(np.array_equal(params[n], kept[n]) for n in params)
