# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 01_forward: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import numpy as np
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_data, t, torch_rnn

M = Mutant
F = torch.nn.functional
STEP = "return np.tanh(x @ W_xh.T + h_prev @ W_hh.T + b_h)"
FWD_LOOP = "h = rnn_step_forward(xs[t], h, W_xh, W_hh, b_h)\n        hs[t] = h"
SOFTMAX = "e = np.exp(z - np.max(z, axis=-1, keepdims=True))\n    return e / e.sum(axis=-1, keepdims=True)"

MUTANTS = [
    M(
        "01_forward",
        "step: x @ W_xh without transpose",
        "rnn_step_forward",
        {"test_rnn_step_forward": "W.T", "test_rnn_forward": "W.T"},
        [(STEP, "return np.tanh(x @ W_xh + h_prev @ W_hh.T + b_h)")],
    ),
    M(
        "01_forward",
        "step: h_prev @ W_hh without transpose",
        "rnn_step_forward",
        {"test_rnn_step_forward": "symmetric", "test_rnn_forward": "symmetric"},
        [(STEP, "return np.tanh(x @ W_xh.T + h_prev @ W_hh + b_h)")],
    ),
    M(
        "01_forward",
        "step: tanh forgotten",
        "rnn_step_forward",
        {"test_rnn_step_forward": "tanh is missing", "test_rnn_forward": "tanh is missing"},
        [(STEP, "return x @ W_xh.T + h_prev @ W_hh.T + b_h")],
    ),
    M(
        "01_forward",
        "forward: h0 included in hs",
        "rnn_forward",
        {"test_rnn_forward": "includes h0"},
        [
            ("hs = np.empty((xs.shape[0], ", "hs = np.empty((xs.shape[0] + 1, "),
            ("    h = h0\n", "    h = h0\n    hs[0] = h0\n"),
            ("hs[t] = h", "hs[t + 1] = h"),
        ],
    ),
    M(
        "01_forward",
        "forward: hs[t] stored before the update",
        "rnn_forward",
        {"test_rnn_forward": "before"},
        [(FWD_LOOP, "hs[t] = h\n        h = rnn_step_forward(xs[t], h, W_xh, W_hh, b_h)")],
    ),
    M(
        "01_forward",
        "forward: one array updated in place and appended T times",
        "rnn_forward",
        {"test_rnn_forward": "same array"},
        code="def rnn_forward(xs, h0, W_xh, W_hh, b_h):\n"
        "    hs = []\n    h = h0.copy()\n    for t in range(len(xs)):\n"
        "        h[:] = rnn_step_forward(xs[t], h, W_xh, W_hh, b_h)\n        hs.append(h)\n"
        "    return np.array(hs)\n",
    ),
    M(
        "01_forward",
        "forward: state not carried over",
        "rnn_forward",
        {"test_rnn_forward": "starts again from h0"},
        [("h = rnn_step_forward(xs[t], h, ", "h = rnn_step_forward(xs[t], h0, ")],
    ),
    M(
        "01_forward",
        "forward: h0 ignored",
        "rnn_forward",
        {"test_rnn_forward": "h0 is ignored"},
        [("    h = h0\n", "    h = np.zeros_like(h0)\n")],
    ),
    M(
        "01_forward",
        "forward: hs allocated with xs's shape",
        "rnn_forward",
        {"test_rnn_forward": "state size H"},
        [("hs = np.empty((xs.shape[0], h0.shape[0], h0.shape[1]))", "hs = np.zeros_like(xs)")],
    ),
    M(
        "01_forward",
        "softmax: no max subtraction",
        "softmax",
        {"test_softmax_stable": "overflow"},
        [("np.exp(z - np.max(z, axis=-1, keepdims=True))", "np.exp(z)")],
    ),
    M(
        "01_forward",
        "softmax: maximum of the whole array",
        "softmax",
        {"test_softmax_stable": "own maximum"},
        [("np.max(z, axis=-1, keepdims=True)", "np.max(z)")],
    ),
    M(
        "01_forward",
        "softmax: over axis 0",
        "softmax",
        {"test_softmax": "axis 0", "test_softmax_stable": "axis 0", "test_softmax_shapes": "axis"},
        [(SOFTMAX, SOFTMAX.replace("axis=-1", "axis=0"))],
    ),
    M(
        "01_forward",
        "softmax: over axis 1",
        "softmax",
        {"test_softmax_shapes": "axis=-1"},
        [(SOFTMAX, SOFTMAX.replace("axis=-1", "axis=1"))],
    ),
    M(
        "01_forward",
        "softmax: sum without keepdims",
        "softmax",
        {
            "test_softmax": "keepdims",
            "test_softmax_stable": "keepdims",
            "test_softmax_shapes": "keepdims",
        },
        [("e / e.sum(axis=-1, keepdims=True)", "e / e.sum(axis=-1)")],
    ),
    M(
        "01_forward",
        "softmax: z changed in place",
        "softmax",
        {"test_softmax": "in place"},
        [
            (
                SOFTMAX,
                "z -= np.max(z, axis=-1, keepdims=True)\n    e = np.exp(z)\n"
                "    return e / e.sum(axis=-1, keepdims=True)",
            )
        ],
    ),
    M(
        "01_forward",
        "loss: averaged over time too",
        "sequence_loss",
        {"test_sequence_loss": "averaged over time"},
        [("/ hs.shape[1]", "/ (hs.shape[0] * hs.shape[1])")],
    ),
    M(
        "01_forward",
        "loss: summed over the batch",
        "sequence_loss",
        {"test_sequence_loss": "summed over the batch"},
        [("float(-picked.sum() / hs.shape[1])", "float(-picked.sum())")],
    ),
    M(
        "01_forward",
        "loss: bias forgotten",
        "sequence_loss",
        {"test_sequence_loss": "b_y is missing"},
        [("z = hs @ W_hy.T + b_y", "z = hs @ W_hy.T")],
    ),
    M(
        "01_forward",
        "loss: one number per time step",
        "sequence_loss",
        {"test_sequence_loss": "single number"},
        [
            (
                "return float(-picked.sum() / hs.shape[1])",
                "return -picked.sum(axis=(1, 2)) / hs.shape[1]",
            )
        ],
    ),
    M(
        "01_forward",
        "loss: targets index the last axis alone",
        "sequence_loss",
        {"test_sequence_loss": "own class"},
        [
            (
                "picked = np.take_along_axis(logp, targets[..., None], axis=-1)",
                "picked = logp[..., targets]",
            )
        ],
    ),
]

VARIANTS = [
    M(
        "01_forward",
        "step with np.dot and einsum",
        "rnn_step_forward",
        {},
        [(STEP, "return np.tanh(np.dot(x, W_xh.T) + np.einsum('bj,ij->bi', h_prev, W_hh) + b_h)")],
    ),
    M(
        "01_forward",
        "forward with a list, np.stack and a precomputed input term",
        "rnn_forward",
        {},
        code="def rnn_forward(xs, h0, W_xh, W_hh, b_h):\n"
        "    a = xs @ W_xh.T + b_h  # all input terms at once\n"
        "    states = []\n    h = h0\n    for a_t in a:\n"
        "        h = np.tanh(a_t + h @ W_hh.T)\n        states.append(h)\n"
        "    return np.stack(states)\n",
    ),
    M(
        "01_forward",
        "softmax through log-sum-exp",
        "softmax",
        {},
        code="def softmax(z):\n    m = z.max(axis=-1, keepdims=True)\n"
        "    return np.exp(z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))\n",
    ),
    M(
        "01_forward",
        "loss with loops and log(softmax), returning a numpy scalar",
        "sequence_loss",
        {},
        code="def sequence_loss(hs, W_hy, b_y, targets):\n    T, B, _ = hs.shape\n    total = 0.0\n"
        "    for t in range(T):\n        p = softmax(hs[t] @ W_hy.T + b_y)\n"
        "        for b in range(B):\n            total -= np.log(p[b, targets[t, b]])\n"
        "    return total / B\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def test_forward_reference(ref):
    ns = ref("01_forward")
    rng = np.random.default_rng(0)
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng)
    rnn = torch_rnn(W_xh, W_hh, b_h)
    with torch.no_grad():
        want = rnn(t(xs), t(h0)[None])[0]
    assert max_rel_error(ns["rnn_forward"](xs, h0, W_xh, W_hh, b_h), want) < TOL
    assert max_rel_error(ns["rnn_step_forward"](xs[0], h0, W_xh, W_hh, b_h), want[0]) < TOL
    assert max_rel_error(ns["rnn_forward"](xs[:1], h0, W_xh, W_hh, b_h), want[:1]) < TOL
    for z in (
        rng.standard_normal((4, 3)),
        rng.standard_normal(5),
        rng.standard_normal((2, 3, 4)),
        np.array([[1000.0, 999.0, 990.0], [-1000.0, -1001.0, 0.0]]),
    ):
        z_before = z.copy()
        assert max_rel_error(ns["softmax"](z), torch.softmax(t(z), -1)) < TOL
        assert np.array_equal(z, z_before)
    hs = np.tanh(rng.standard_normal((5, 3, 4)))
    W_hy, b_y, targets = (
        rng.standard_normal((6, 4)),
        rng.standard_normal(6),
        rng.integers(0, 6, (5, 3)),
    )
    logits = t(hs @ W_hy.T + b_y).reshape(15, 6)
    want = F.cross_entropy(logits, torch.tensor(targets).reshape(-1), reduction="sum").item() / 3
    loss = ns["sequence_loss"](hs, W_hy, b_y, targets)
    assert isinstance(loss, float) and abs(loss - want) < TOL * abs(want)
