# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 02_bptt: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import numpy as np
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_data, t, torch_rnn

M = Mutant
F = torch.nn.functional
STEP_BW = (
    "da = dh * (1 - h**2)\n    return da @ W_xh, da @ W_hh, da.T @ x, da.T @ h_prev, da.sum(axis=0)"
)
BW_STEP = "dhs[t] + dh_next, xs[t], h_prev, hs[t], W_xh, W_hh)"
NUM = "grad[i] = (f_plus - f_minus) / (2 * eps)"

MUTANTS = [
    M(
        "02_bptt",
        "step: tanh derivative forgotten",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "tanh derivative is missing",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da = dh * (1 - h**2)", "da = dh")],
    ),
    M(
        "02_bptt",
        "step: derivative with h_prev",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "1 - h**2",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da = dh * (1 - h**2)", "da = dh * (1 - h_prev**2)")],
    ),
    M(
        "02_bptt",
        "step: dW_hh transposed",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "transpose of dW_hh",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da.T @ h_prev", "h_prev.T @ da")],
    ),
    M(
        "02_bptt",
        "step: dW_xh transposed",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "looks transposed",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da.T @ x,", "x.T @ da,")],
    ),
    M(
        "02_bptt",
        "step: dh_prev through W_hh.T",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "W_hh itself",
            "test_rnn_backward_one_step": "fix it first",
            "test_rnn_backward": "fix it first",
        },
        [("da @ W_hh,", "da @ W_hh.T,")],
    ),
    M(
        "02_bptt",
        "step: db_h not summed over the batch",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "sums da over the batch",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da.sum(axis=0)", "da")],
    ),
    M(
        "02_bptt",
        "bptt: dh_next not added",
        "rnn_backward",
        {"test_rnn_backward": "gradient from later steps is missing"},
        [(BW_STEP, "dhs[t], xs[t], h_prev, hs[t], W_xh, W_hh)")],
    ),
    M(
        "02_bptt",
        "bptt: weight gradients not accumulated",
        "rnn_backward",
        {"test_rnn_backward": "summed over time"},
        [
            (
                "dW_xh += dWx\n        dW_hh += dWh\n        db_h += db",
                "dW_xh = dWx\n        dW_hh = dWh\n        db_h = db",
            )
        ],
    ),
    M(
        "02_bptt",
        "bptt: hs[t - 1] at t = 0 (wraps to the last state)",
        "rnn_backward",
        {"test_rnn_backward_one_step": "h0", "test_rnn_backward": "hs[-1]"},
        [("h_prev = hs[t - 1] if t > 0 else h0", "h_prev = hs[t - 1]")],
    ),
    M(
        "02_bptt",
        "bptt: h_prev = hs[t]",
        "rnn_backward",
        {"test_rnn_backward_one_step": "h0", "test_rnn_backward": "own output hs[t]"},
        [("h_prev = hs[t - 1] if t > 0 else h0", "h_prev = hs[t]")],
    ),
    M(
        "02_bptt",
        "bptt: forwards in time",
        "rnn_backward",
        {"test_rnn_backward": "backwards in time"},
        [("for t in reversed(range(len(xs))):", "for t in range(len(xs)):")],
    ),
    M(
        "02_bptt",
        "bptt: dh0 is the gradient at hs[0]",
        "rnn_backward",
        {"test_rnn_backward_one_step": "entering* step 0", "test_rnn_backward": "entering* step 0"},
        [
            (BW_STEP, "dh_t, xs[t], h_prev, hs[t], W_xh, W_hh)"),
            (
                "        h_prev = hs[t - 1] if t > 0 else h0\n",
                "        h_prev = hs[t - 1] if t > 0 else h0\n        dh_t = dhs[t] + dh_next\n",
            ),
            ("return dxs, dh_next,", "return dxs, dh_t,"),
        ],
    ),
    M(
        "02_bptt",
        "output: not divided by B",
        "output_backward",
        {"test_output_backward": "B times too large"},
        [("dz = (softmax(z) - np.eye(V)[targets]) / B", "dz = softmax(z) - np.eye(V)[targets]")],
    ),
    M(
        "02_bptt",
        "output: one-hot not subtracted",
        "output_backward",
        {"test_output_backward": "subtract 1 at the target"},
        [("dz = (softmax(z) - np.eye(V)[targets]) / B", "dz = softmax(z) / B")],
    ),
    M(
        "02_bptt",
        "output: dW_hy transposed",
        "output_backward",
        {"test_output_backward": "looks transposed"},
        [('np.einsum("tbv,tbh->vh", dz, hs)', 'np.einsum("tbv,tbh->hv", dz, hs)')],
    ),
    M(
        "02_bptt",
        "output: dhs through W_hy.T (the forward habit)",
        "output_backward",
        {"test_output_backward_loss": "with no .T", "test_output_backward": "with no .T"},
        [("dz @ W_hy,", "dz @ W_hy.T,")],
    ),
    M(
        "02_bptt",
        "output: logits without the transpose",
        "output_backward",
        {
            "test_output_backward_loss": "keep the transpose",
            "test_output_backward": "keep the transpose",
        },
        [("z = hs @ W_hy.T + b_y", "z = hs @ W_hy + b_y")],
    ),
    M(
        "02_bptt",
        "output: loss averaged over time",
        "output_backward",
        {"test_output_backward_loss": "averaged over time"},
        [
            (
                "loss = sequence_loss(hs, W_hy, b_y, targets)",
                "loss = sequence_loss(hs, W_hy, b_y, targets) / len(hs)",
            )
        ],
    ),
    M(
        "02_bptt",
        "numerical: one-sided difference",
        "numerical_gradient",
        {
            "test_numerical_gradient": "central difference",
            "test_numerical_gradient_eps": "central difference",
        },
        [
            ("x[i] = old - eps\n        f_minus = f(x)", "x[i] = old\n        f_minus = f(x)"),
            (NUM, "grad[i] = (f_plus - f_minus) / eps"),
        ],
    ),
    M(
        "02_bptt",
        "numerical: divided by eps",
        "numerical_gradient",
        {"test_numerical_gradient": "twice", "test_numerical_gradient_eps": "twice"},
        [(NUM, "grad[i] = (f_plus - f_minus) / eps")],
    ),
    M(
        "02_bptt",
        "numerical: x not restored",
        "numerical_gradient",
        {
            "test_numerical_gradient": "left x changed",
            "test_numerical_gradient_eps": "left x changed",
        },
        [("        x[i] = old\n", "")],
    ),
    M(
        "02_bptt",
        "numerical: eps ignored",
        "numerical_gradient",
        {"test_numerical_gradient_eps": "eps argument is ignored"},
        [("(2 * eps)", "(2 * 1e-6)"), ("old + eps", "old + 1e-6"), ("old - eps", "old - 1e-6")],
    ),
    M(
        "02_bptt",
        "numerical: only works for vectors",
        "numerical_gradient",
        {"test_numerical_gradient": "np.ndindex", "test_numerical_gradient_eps": "np.ndindex"},
        [("for i in np.ndindex(x.shape):", "for i in range(len(x)):")],
    ),
]

VARIANTS = [
    M(
        "02_bptt",
        "step written out with einsum and an explicit tanh'",
        "rnn_step_backward",
        {},
        code="def rnn_step_backward(dh, x, h_prev, h, W_xh, W_hh):\n"
        "    da = dh * (1.0 - np.tanh(np.arctanh(h)) ** 2)\n"
        "    dW_xh = np.einsum('bh,bd->hd', da, x)\n    dW_hh = np.einsum('bh,bk->hk', da, h_prev)\n"
        "    return np.dot(da, W_xh), np.dot(da, W_hh), dW_xh, dW_hh, np.sum(da, axis=0)\n",
    ),
    M(
        "02_bptt",
        "bptt inlined, returning a list",
        "rnn_backward",
        {},
        code="def rnn_backward(dhs, xs, h0, hs, W_xh, W_hh):\n"
        "    T = xs.shape[0]\n    prev = np.concatenate([h0[None], hs[:-1]])\n"
        "    dxs = np.empty_like(xs)\n    das = np.empty_like(hs)\n    dh = np.zeros_like(h0)\n"
        "    for t in range(T - 1, -1, -1):\n"
        "        das[t] = (dhs[t] + dh) * (1 - hs[t] ** 2)\n        dxs[t] = das[t] @ W_xh\n"
        "        dh = das[t] @ W_hh\n"
        "    return [dxs, dh, np.einsum('tbh,tbd->hd', das, xs), np.einsum('tbh,tbk->hk', das, prev),\n"
        "            das.sum(axis=(0, 1))]\n",
    ),
    M(
        "02_bptt",
        "output backward with loops and its own log-softmax",
        "output_backward",
        {},
        code="def output_backward(hs, W_hy, b_y, targets):\n"
        "    T, B, H = hs.shape\n    dhs = np.zeros_like(hs)\n"
        "    dW_hy = np.zeros_like(W_hy)\n    db_y = np.zeros_like(b_y)\n    loss = 0.0\n"
        "    for t in range(T):\n        z = hs[t] @ W_hy.T + b_y\n"
        "        z = z - z.max(axis=1, keepdims=True)\n"
        "        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)\n"
        "        for b in range(B):\n            loss -= np.log(p[b, targets[t, b]]) / B\n"
        "            p[b, targets[t, b]] -= 1\n"
        "        dz = p / B\n        dhs[t] = dz @ W_hy\n        dW_hy += dz.T @ hs[t]\n"
        "        db_y += dz.sum(axis=0)\n"
        "    return loss, dhs, dW_hy, db_y\n",
    ),
    M(
        "02_bptt",
        "numerical gradient on copies, through x.flat",
        "numerical_gradient",
        {},
        code="def numerical_gradient(f, x, eps=1e-6):\n    grad = np.zeros_like(x, dtype=float)\n"
        "    for i in range(x.size):\n        xp = x.copy()\n        xm = x.copy()\n"
        "        xp.flat[i] += eps\n        xm.flat[i] -= eps\n"
        "        grad.flat[i] = (f(xp) - f(xm)) / (2 * eps)\n    return grad\n",
    ),
    M(
        "02_bptt",
        "numerical gradient with in-place += and -= (round-off in x)",
        "numerical_gradient",
        {},
        code="def numerical_gradient(f, x, eps=1e-6):\n    g = np.zeros(x.shape)\n"
        "    it = np.nditer(x, flags=['multi_index'], op_flags=['readwrite'])\n"
        "    for v in it:\n        i = it.multi_index\n        x[i] += eps\n        fp = f(x)\n"
        "        x[i] -= 2 * eps\n        fm = f(x)\n        x[i] += eps\n"
        "        g[i] = (fp - fm) / (2 * eps)\n    return g\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def test_bptt_reference(ref):
    ns = ref("02_bptt")
    rng = np.random.default_rng(1)
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T=7, B=3, D=5, H=4)
    hs = ns["rnn_forward"](xs, h0, W_xh, W_hh, b_h)
    dhs = rng.standard_normal(hs.shape)
    rnn = torch_rnn(W_xh, W_hh, b_h)
    txs, th0 = t(xs).requires_grad_(), t(h0).requires_grad_()
    (rnn(txs, th0[None])[0] * t(dhs)).sum().backward()
    got = ns["rnn_backward"](dhs, xs, h0, hs, W_xh, W_hh)
    want = (txs.grad, th0.grad, rnn.weight_ih_l0.grad, rnn.weight_hh_l0.grad, rnn.bias_ih_l0.grad)
    for g, w in zip(got, want, strict=True):
        assert max_rel_error(g, w) < TOL
    # one step: the last step of the sequence, with its upstream gradient only
    step = ns["rnn_step_backward"](dhs[0], xs[0], h0, hs[0], W_xh, W_hh)
    leaves = [t(a).requires_grad_() for a in (xs[0], h0, W_xh, W_hh, b_h)]
    x, h, W, U, b = leaves
    (torch.tanh(x @ W.T + h @ U.T + b) * t(dhs[0])).sum().backward()
    for g, leaf in zip(step, leaves, strict=True):
        assert max_rel_error(g, leaf.grad) < TOL
    # the output layer
    W_hy, b_y, targets = (
        rng.standard_normal((6, 4)),
        rng.standard_normal(6),
        rng.integers(0, 6, (7, 3)),
    )
    loss, dhs_out, dW_hy, db_y = ns["output_backward"](hs, W_hy, b_y, targets)
    ths, tW, tb = (t(a).requires_grad_() for a in (hs, W_hy, b_y))
    tloss = (
        F.cross_entropy(
            (ths @ tW.T + tb).reshape(21, 6), torch.tensor(targets).reshape(-1), reduction="sum"
        )
        / 3
    )
    tloss.backward()
    assert abs(loss - tloss.item()) < TOL * tloss.item()
    for g, w in ((dhs_out, ths.grad), (dW_hy, tW.grad), (db_y, tb.grad)):
        assert max_rel_error(g, w) < TOL
    # finite differences, with the reference numerical_gradient, agree with the analytic gradient
    W = W_hy.copy()
    num = ns["numerical_gradient"](lambda A: ns["sequence_loss"](hs, A, b_y, targets), W)
    assert np.array_equal(W, W_hy), "x is restored"
    assert max_rel_error(num, dW_hy) < 1e-7


def test_numerical_gradient_reference(ref):
    numerical_gradient = ref("02_bptt")["numerical_gradient"]
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3, 2))
    x_before = x.copy()
    tx = t(x).requires_grad_()
    torch.sum(torch.exp(2 * tx) * torch.sin(tx)).backward()
    grad = numerical_gradient(lambda v: float(np.sum(np.exp(2 * v) * np.sin(v))), x)
    assert np.array_equal(x, x_before)
    assert max_rel_error(grad, tx.grad) < 1e-8
    coarse = numerical_gradient(lambda v: float(np.sum(v**3)), np.array([1.0, 2.0]), eps=0.1)
    assert np.allclose(coarse, 3 * np.array([1.0, 4.0]) + 0.01)  # central: f''' eps^2 / 6 = 0.01
