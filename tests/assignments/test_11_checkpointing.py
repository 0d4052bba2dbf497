# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 11_checkpointing: its reference solution against oracles nobody here wrote, its
typical mistakes (each must lose points with a message that names it) and its valid variations
(each keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's
own tests; the functions below test the reference solution itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_data, rnn_problem, torch_full_bptt

M = Mutant
F = torch.nn.functional
A = "11_checkpointing"
STATES = ("test_checkpoint_states", "test_checkpoint_states_edges")
GRADS_ALL = ("test_checkpointed_grads", "test_checkpointed_plan", "test_checkpointed_edges")
KEEP = "        if t % k == 0:\n            checkpoints.append(h)\n        h = rnn_step_forward(x, h, W_xh, W_hh, b_h)\n"
LOOP = "for i, (start, stop) in reversed(list(enumerate(segments(len(xs), k)))):"
PEAK = "peak = max(peak, len(checkpoints) + len(hs))"
HAND = (
    "        dhs[-1] = dhs[-1] + dh_next  # what the later segments send back into the last state\n"
)
RECOMPUTE = "hs = forward(xs[start:stop], checkpoints[i], W_xh, W_hh, b_h)"

VALIDATE = (
    '    if k < 1:\n        raise ValueError(f"the segment length k must be >= 1, got {k}")\n'
)

MUTANTS = [
    M(
        A,
        "states: k < 1 not checked",
        "checkpoint_states",
        {"test_checkpoint_states_invalid": "must raise ValueError"},
        [(VALIDATE, "")],
    ),
    M(
        A,
        "states: assert instead of ValueError",
        "checkpoint_states",
        {"test_checkpoint_states_invalid": "must raise ValueError"},
        [(VALIDATE, "    assert k >= 1, 'k must be positive'\n")],
    ),
    M(
        A,
        "states: checkpoint taken after the step (one step late)",
        "checkpoint_states",
        {
            "test_checkpoint_states": "one step late",
            "test_checkpoint_states_edges": "one step late",
            "test_checkpointed_grads": "",
            "test_checkpointed_plan": "one step late",
            "test_checkpointed_edges": "",
        },
        [
            (
                KEEP,
                "        h = rnn_step_forward(x, h, W_xh, W_hh, b_h)\n        if t % k == 0:\n            checkpoints.append(h)\n",
            )
        ],
    ),
    M(
        A,
        "states: the states leaving the segments",
        "checkpoint_states",
        {"test_checkpoint_states": "leaving", "test_checkpoint_states_edges": ""}
        | dict.fromkeys(GRADS_ALL, ""),
        [
            (
                KEEP,
                "        h = rnn_step_forward(x, h, W_xh, W_hh, b_h)\n        if (t + 1) % k == 0 or t == len(xs) - 1:\n            checkpoints.append(h)\n",
            )
        ],
    ),
    M(
        A,
        "states: every state kept",
        "checkpoint_states",
        {
            "test_checkpoint_states": "kept every state",
            "test_checkpoint_states_edges": "kept every state",
            "test_checkpointed_grads": "",
            "test_checkpointed_plan": "",
            "test_checkpointed_edges": "",
        },
        [
            (
                "        if t % k == 0:\n            checkpoints",
                "        if True:\n            checkpoints",
            )
        ],
    ),
    M(
        A,
        "states: last partial segment dropped",
        "checkpoint_states",
        {
            "test_checkpoint_states": "last, shorter segment",
            "test_checkpoint_states_edges": "",
            "test_checkpointed_grads": "",
            "test_checkpointed_plan": "",
            "test_checkpointed_edges": "",
        },
        [("for t, x in enumerate(xs):", "for t, x in enumerate(xs[: len(xs) - len(xs) % k]):")],
    ),
    M(
        A,
        "states: the final state h_T kept as one more checkpoint",
        "checkpoint_states",
        {
            "test_checkpoint_states": "one too many",
            "test_checkpoint_states_edges": "one too many",
            "test_checkpointed_plan": "peak is",
            "test_checkpointed_edges": "peak is",
        },
        [("return np.stack(checkpoints)", "return np.stack(checkpoints + [h])")],
    ),
    M(
        A,
        "grads: segments processed first to last",
        "checkpointed_grads",
        {
            "test_checkpointed_grads": "first to last",
            "test_checkpointed_plan": "first to last",
            "test_checkpointed_edges": "first to last",
        },
        [(LOOP, "for i, (start, stop) in enumerate(segments(len(xs), k)):")],
    ),
    M(
        A,
        "grads: dh_next not handed to the segment before (truncated BPTT)",
        "checkpointed_grads",
        {"test_checkpointed_grads": "truncated BPTT", "test_checkpointed_edges": "truncated BPTT"},
        [(HAND, "")],
    ),
    M(
        A,
        "grads: dh_next added at the segment's first state",
        "checkpointed_grads",
        {"test_checkpointed_grads": "first state", "test_checkpointed_edges": "first state"},
        [(HAND, "        dhs[0] = dhs[0] + dh_next\n")],
    ),
    M(
        A,
        "grads: each segment recomputed from h0",
        "checkpointed_grads",
        {"test_checkpointed_plan": "from h0", "test_checkpointed_edges": "from h0"},
        [(RECOMPUTE, "hs = forward(xs[:stop], h0, W_xh, W_hh, b_h)[start:]")],
    ),
    M(
        A,
        "grads: every state kept, nothing recomputed",
        "checkpointed_grads",
        {"test_checkpointed_plan": "never called", "test_checkpointed_edges": "never called"},
        [
            (RECOMPUTE, "hs = all_hs[start:stop]"),
            ("    grads = {", "    all_hs = rnn_forward(xs, h0, W_xh, W_hh, b_h)\n    grads = {"),
        ],
    ),
    M(
        A,
        "grads: all segments recomputed first, then backpropagated",
        "checkpointed_grads",
        {"test_checkpointed_plan": "held at once", "test_checkpointed_edges": "held at once"},
        code="def checkpointed_grads(params, xs, h0, targets, k, forward, backward):\n"
        "    W_xh, W_hh, b_h, W_hy, b_y = (params[n] for n in ('W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y'))\n"
        "    checkpoints = checkpoint_states(xs, h0, W_xh, W_hh, b_h, k)\n"
        "    segs = segments(len(xs), k)\n"
        "    states = [forward(xs[s:e], checkpoints[i], W_xh, W_hh, b_h) for i, (s, e) in reversed(list(enumerate(segs)))][::-1]\n"
        "    loss, dhs, dW_hy, db_y = output_backward(np.concatenate(states), W_hy, b_y, targets)\n"
        "    grads = {'W_xh': 0, 'W_hh': 0, 'b_h': 0, 'W_hy': dW_hy, 'b_y': db_y}\n"
        "    dh_next = np.zeros_like(h0)\n"
        "    for i in reversed(range(len(segs))):\n"
        "        s, e = segs[i]\n"
        "        d = dhs[s:e].copy()\n"
        "        d[-1] += dh_next\n"
        "        _, dh_next, a, b, c = backward(d, xs[s:e], checkpoints[i], states[i], W_xh, W_hh)\n"
        "        grads['W_xh'] = grads['W_xh'] + a\n        grads['W_hh'] = grads['W_hh'] + b\n        grads['b_h'] = grads['b_h'] + c\n"
        "    return loss, grads, len(checkpoints) + min(k, len(xs))\n",
    ),
    M(
        A,
        "grads: last partial segment dropped",
        "checkpointed_grads",
        {
            "test_checkpointed_grads": "last, shorter segment",
            "test_checkpointed_plan": "last, shorter segment",
            "test_checkpointed_edges": "shorter than k",
        },
        [("enumerate(segments(len(xs), k))", "enumerate(segments(len(xs) - len(xs) % k, k))")],
    ),
    M(
        A,
        "grads: only the last processed segment's share",
        "checkpointed_grads",
        {
            "test_checkpointed_grads": "only the first segment",
            "test_checkpointed_edges": "only the first segment",
        },
        [("            grads[n] += g", "            grads[n] = g")],
    ),
    M(
        A,
        "peak: the formula with k (k >= T)",
        "checkpointed_grads",
        {"test_checkpointed_edges": "one segment of T"},
        [(PEAK, "peak = len(checkpoints) + k")],
    ),
    M(
        A,
        "peak: checkpoints not counted",
        "checkpointed_grads",
        {"test_checkpointed_plan": "checkpoints too", "test_checkpointed_edges": "checkpoints too"},
        [(PEAK, "peak = max(peak, len(hs))")],
    ),
    M(
        A,
        "peak: every state counted (T)",
        "checkpointed_grads",
        {"test_checkpointed_plan": "counts every state", "test_checkpointed_edges": "peak is"},
        [(PEAK, "peak = len(xs)")],
    ),
]

VARIANTS = [
    M(
        A,
        "states: a list, each segment run with its own loop",
        "checkpoint_states",
        {},
        code="def checkpoint_states(xs, h0, W_xh, W_hh, b_h, k):\n"
        "    if k < 1:\n        raise ValueError('k must be >= 1')\n"
        "    out, h = [], h0\n"
        "    for start, stop in segments(len(xs), k):\n"
        "        out.append(h.copy())\n"
        "        for x in xs[start:stop]:\n"
        "            h = np.tanh(x @ W_xh.T + h @ W_hh.T + b_h)\n"
        "    return out\n",
    ),
    M(
        A,
        "grads: a while loop from the end, peak as a running count of held states",
        "checkpointed_grads",
        {},
        code="def checkpointed_grads(params, xs, h0, targets, k, forward, backward):\n"
        "    p = params\n"
        "    ck = checkpoint_states(xs, h0, p['W_xh'], p['W_hh'], p['b_h'], k)\n"
        "    T = len(xs)\n"
        "    grads = {n: np.zeros(np.shape(v)) for n, v in p.items()}\n"
        "    loss, dh, held, peak = 0.0, np.zeros(np.shape(h0)), len(ck), 0\n"
        "    i = len(ck) - 1\n"
        "    while i >= 0:\n"
        "        start, stop = i * k, min(i * k + k, T)\n"
        "        hs = forward(xs[start:stop], ck[i], p['W_xh'], p['W_hh'], p['b_h'])\n"
        "        held += len(hs)\n"
        "        peak = max(peak, held)\n"
        "        l, dhs, gW_hy, gb_y = output_backward(hs, p['W_hy'], p['b_y'], targets[start:stop])\n"
        "        dhs = np.concatenate([dhs[:-1], dhs[-1:] + dh])\n"
        "        _, dh, a, b, c = backward(dhs, xs[start:stop], ck[i], hs, p['W_xh'], p['W_hh'])\n"
        "        for n, g in zip(['W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y'], [a, b, c, gW_hy, gb_y]):\n"
        "            grads[n] = grads[n] + g\n"
        "        loss += l\n"
        "        held -= len(hs)\n"
        "        i -= 1\n"
        "    return loss, grads, peak\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def counted(ns):
    """rnn_forward and rnn_backward that count the steps they run."""
    calls = {"f": 0, "b": 0}

    def fwd(*a):
        calls["f"] += len(a[0])
        return ns["rnn_forward"](*a)

    def bwd(*a):
        calls["b"] += len(a[1])
        return ns["rnn_backward"](*a)

    return fwd, bwd, calls


def test_checkpointing_reference(ref):
    ns = ref(A)
    rng = np.random.default_rng(11)
    T, B, D, H, V = 13, 3, 5, 4, 6
    params, xs, h0, targets = rnn_problem(rng, T, B, D, H, V)
    W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
    kept = copy.deepcopy(params)
    want_loss, want, hs = torch_full_bptt(params, xs, h0, targets)
    states = np.concatenate([h0[None], hs])
    for k in (1, 2, 4, 5, 13, 40):
        n = -(-T // k)
        ck = np.asarray(ns["checkpoint_states"](xs, h0, W_xh, W_hh, b_h, k))
        assert ck.shape == (n, B, H)
        assert max_rel_error(ck, states[0:T:k]) < TOL
        fwd, bwd, calls = counted(ns)
        loss, grads, peak = ns["checkpointed_grads"](params, xs, h0, targets, k, fwd, bwd)
        assert abs(loss - want_loss) < TOL * want_loss
        for name in params:
            assert max_rel_error(grads[name], want[name]) < TOL, (k, name)
        assert calls == {"f": T, "b": T}  # one extra forward pass, whatever k
        assert peak == n + min(k, T)
    assert all(np.array_equal(params[n], kept[n]) for n in params)
    for k in (0, -3):
        with pytest.raises(ValueError, match="k"):
            ns["checkpoint_states"](xs, h0, W_xh, W_hh, b_h, k)


def test_checkpointing_saves_memory_at_sqrt_T(ref):
    """k = sqrt(T): 2 sqrt(T) states held instead of T, for T more forward steps only."""
    ns = ref(A)
    rng = np.random.default_rng(12)
    T, B, D, H, V = 100, 2, 3, 4, 5
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T, B, D, H)
    params = {"W_xh": W_xh, "W_hh": W_hh, "b_h": b_h, "W_hy": rng.standard_normal((V, H))}
    params["b_y"] = rng.standard_normal(V)
    targets = rng.integers(0, V, (T, B))
    want_loss, want, _ = torch_full_bptt(params, xs, h0, targets)
    fwd, bwd, calls = counted(ns)
    loss, grads, peak = ns["checkpointed_grads"](params, xs, h0, targets, 10, fwd, bwd)
    assert peak == 20 and calls == {"f": T, "b": T}
    assert abs(loss - want_loss) < TOL * want_loss
    assert all(max_rel_error(grads[n], want[n]) < TOL for n in params)
