# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 05_lstm_gru: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_harness import TOL, Mutant, max_rel_error, t

M = Mutant
F = torch.nn.functional
LSTM_GATES = (
    "    i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])\n"
    "    g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])\n"
)
LSTM_FW = ("test_lstm_step_forward", "test_lstm_forward")

MUTANTS = [
    M(
        "05_lstm_gru",
        "lstm: gate order i, f, o, g",
        "lstm_step_forward",
        {"test_lstm_step_forward": "i, f, o, g", "test_lstm_forward": ""},
        [
            (
                LSTM_GATES,
                "    i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])\n"
                "    o, g = sigmoid(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])\n",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "lstm: h = o * c",
        "lstm_step_forward",
        {"test_lstm_step_forward": "missing the tanh", "test_lstm_forward": ""},
        [("return o * np.tanh(c), c", "return o * c, c")],
    ),
    M(
        "05_lstm_gru",
        "lstm: g through a sigmoid",
        "lstm_step_forward",
        {"test_lstm_step_forward": "candidate g uses a sigmoid", "test_lstm_forward": ""},
        [("g, o = np.tanh(a[:, 2 * H:3 * H])", "g, o = sigmoid(a[:, 2 * H:3 * H])")],
    ),
    M(
        "05_lstm_gru",
        "lstm: returns (c, h)",
        "lstm_step_forward",
        {"test_lstm_step_forward": "returned (c, h)", "test_lstm_forward": ""},
        [("return o * np.tanh(c), c", "return c, o * np.tanh(c)")],
    ),
    M(
        "05_lstm_gru",
        "lstm forward: cell state not carried",
        "lstm_forward",
        {"test_lstm_forward": "cell state is not carried"},
        [
            (
                "h, c = lstm_step_forward(x, h, c, W_x, W_h, b)",
                "h, c = lstm_step_forward(x, h, c0, W_x, W_h, b)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "lstm forward: hidden state not carried",
        "lstm_forward",
        {"test_lstm_forward": "hidden state is not carried"},
        [
            (
                "h, c = lstm_step_forward(x, h, c, W_x, W_h, b)",
                "h, c = lstm_step_forward(x, h0, c, W_x, W_h, b)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "lstm forward: returns (cs, hs)",
        "lstm_forward",
        {"test_lstm_forward": "returned (cs, hs)"},
        [("return np.stack(hs), np.stack(cs)", "return np.stack(cs), np.stack(hs)")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: dc through h forgotten",
        "lstm_step_backward",
        {"test_lstm_step_backward": "through h = o * tanh(c) is missing"},
        [("dc_total = dc + dh * o * (1 - tc**2)", "dc_total = dc")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: upstream dc ignored",
        "lstm_step_backward",
        {"test_lstm_step_backward": "upstream dc is missing"},
        [("dc_total = dc + dh * o * (1 - tc**2)", "dc_total = dh * o * (1 - tc**2)")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: dc_prev without f",
        "lstm_step_backward",
        {"test_lstm_step_backward": "forget gate scales"},
        [("dc_total * f, da.T @ x", "dc_total, da.T @ x")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: gate gradients stacked i, f, o, g",
        "lstm_step_backward",
        {"test_lstm_step_backward": "order i, f, o, g"},
        [
            (
                "    da = np.concatenate([dc_total * g * i * (1 - i),        # input gate\n"
                "                         dc_total * c_prev * f * (1 - f),   # forget gate\n"
                "                         dc_total * i * (1 - g**2),         # candidate\n"
                "                         dh * tc * o * (1 - o)], axis=1)    # output gate\n",
                "    da = np.concatenate([dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f),\n"
                "                         dh * tc * o * (1 - o), dc_total * i * (1 - g**2)], axis=1)\n",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: tanh of c_prev",
        "lstm_step_backward",
        {"test_lstm_step_backward": "tanh(c_prev)"},
        [("tc = np.tanh(f * c_prev + i * g)", "tc = np.tanh(c_prev)")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: df with the new c",
        "lstm_step_backward",
        {"test_lstm_step_backward": "multiplies c_prev"},
        [("dc_total * c_prev * f * (1 - f)", "dc_total * (f * c_prev + i * g) * f * (1 - f)")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: dx through W_x.T (the forward habit)",
        "lstm_step_backward",
        {"test_lstm_step_backward": "with no .T"},
        [("return da @ W_x,", "return da @ W_x.T,")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: recomputed pre-activations without the transposes",
        "lstm_step_backward",
        {"test_lstm_step_backward": "keep the transpose"},
        [("a = x @ W_x.T + h_prev @ W_h.T + b", "a = x @ W_x + h_prev @ W_h + b")],
    ),
    M(
        "05_lstm_gru",
        "gru: reset before the matmul (Cho et al.)",
        "gru_step_forward",
        {
            "test_gru_step_forward": "before the hidden matmul",
            "test_gru_forward": "before the hidden matmul",
        },
        [
            (
                "n = np.tanh(gi[:, 2 * H:] + r * (gh[:, 2 * H:] + b_hn))",
                "n = np.tanh(gi[:, 2 * H:] + (r * h_prev) @ W_h[2 * H:].T + b_hn)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "gru: update gate the other way round",
        "gru_step_forward",
        {"test_gru_step_forward": "other way round", "test_gru_forward": "other way round"},
        [("return (1 - u) * n + u * h_prev", "return u * n + (1 - u) * h_prev")],
    ),
    M(
        "05_lstm_gru",
        "gru: gate order u, r, n",
        "gru_step_forward",
        {"test_gru_step_forward": "u, r, n", "test_gru_forward": ""},
        [
            (
                "r = sigmoid(gi[:, :H] + gh[:, :H])\n    u = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])",
                "u = sigmoid(gi[:, :H] + gh[:, :H])\n    r = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "gru: b_hn outside the reset",
        "gru_step_forward",
        {"test_gru_step_forward": "b_hn must be inside", "test_gru_forward": ""},
        [
            (
                "n = np.tanh(gi[:, 2 * H:] + r * (gh[:, 2 * H:] + b_hn))",
                "n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:] + b_hn)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "gru forward: h0 included",
        "gru_forward",
        {"test_gru_forward": "leave h0 out"},
        [("    hs, h = [], h0\n", "    hs, h = [h0], h0\n")],
    ),
    M(
        "05_lstm_gru",
        "gru forward: state not carried",
        "gru_forward",
        {"test_gru_forward": "starts again from h0"},
        [("h = gru_step_forward(x, h, ", "h = gru_step_forward(x, h0, ")],
    ),
    M(
        "05_lstm_gru",
        "norms: s.backward() fills the parameters' grads",
        "input_grad_norms",
        {"test_input_grad_norms_untouched": "torch.autograd.grad"},
        [("    (grad,) = torch.autograd.grad(s, x)\n", "    s.backward()\n    grad = x.grad\n")],
    ),
    M(
        "05_lstm_gru",
        "norms: backward() then zero_grad()",
        "input_grad_norms",
        {"test_input_grad_norms_untouched": "changed"},
        [
            (
                "    (grad,) = torch.autograd.grad(s, x)\n",
                "    s.backward()\n    grad = x.grad.clone()\n    model.zero_grad()\n",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "norms: xs.requires_grad_() on the caller's tensor",
        "input_grad_norms",
        {"test_input_grad_norms_untouched": "xs was changed"},
        [("x = xs.detach().clone().requires_grad_(True)", "x = xs.requires_grad_(True)")],
    ),
    M(
        "05_lstm_gru",
        "norms: reversed order (the source notes' [::-1])",
        "input_grad_norms",
        {"test_input_grad_norms": "reverse order"},
        [
            (
                "return grad.flatten(1).norm(dim=1).numpy()",
                "return grad.flatten(1).norm(dim=1).numpy()[::-1]",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "norms: s = output.sum()",
        "input_grad_norms",
        {"test_input_grad_norms": "last step's output only"},
        [("s = model(x)[0][-1].sum()", "s = model(x)[0].sum()")],
    ),
    M(
        "05_lstm_gru",
        "norms: the copy forced to float64 (fails for a float32 model)",
        "input_grad_norms",
        {"test_input_grad_norms": "Keep xs's dtype"},
        [
            (
                "x = xs.detach().clone().requires_grad_(True)",
                "x = torch.tensor(xs.detach().numpy(), dtype=torch.float64, requires_grad=True)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "norms: one norm per sequence",
        "input_grad_norms",
        {"test_input_grad_norms": "one norm per step and per sequence"},
        [("grad.flatten(1).norm(dim=1)", "grad.norm(dim=2)")],
    ),
]

VARIANTS = [
    M(
        "05_lstm_gru",
        "lstm step with separate per-gate matrices",
        "lstm_step_forward",
        {},
        code="def lstm_step_forward(x, h_prev, c_prev, W_x, W_h, b):\n    H = h_prev.shape[1]\n"
        "    gate = lambda j: x @ W_x[j*H:(j+1)*H].T + h_prev @ W_h[j*H:(j+1)*H].T + b[j*H:(j+1)*H]\n"
        "    i, f, g, o = 1/(1+np.exp(-gate(0))), 1/(1+np.exp(-gate(1))), np.tanh(gate(2)), 1/(1+np.exp(-gate(3)))\n"
        "    c = f * c_prev + i * g\n    h = o * np.tanh(c)\n    return (h, c)\n",
    ),
    M(
        "05_lstm_gru",
        "lstm forward into preallocated arrays",
        "lstm_forward",
        {},
        code="def lstm_forward(xs, h0, c0, W_x, W_h, b):\n    T, (B, H) = len(xs), h0.shape\n"
        "    hs, cs = np.empty((T, B, H)), np.empty((T, B, H))\n    h, c = h0, c0\n"
        "    for t in range(T):\n        h, c = lstm_step_forward(xs[t], h, c, W_x, W_h, b)\n"
        "        hs[t], cs[t] = h, c\n    return hs, cs\n",
    ),
    M(
        "05_lstm_gru",
        "lstm step backward gate by gate, with np.hstack and einsum",
        "lstm_step_backward",
        {},
        code="def lstm_step_backward(dh, dc, x, h_prev, c_prev, W_x, W_h, b):\n    H = h_prev.shape[1]\n"
        "    a = np.einsum('bd,kd->bk', x, W_x) + np.einsum('bh,kh->bk', h_prev, W_h) + b\n"
        "    ai, af, ag, ao = np.split(a, 4, axis=1)\n"
        "    i, f, o = sigmoid(ai), sigmoid(af), sigmoid(ao)\n    g = np.tanh(ag)\n"
        "    c = f * c_prev + i * g\n    dc_bar = dc + dh * o * (1 - np.tanh(c) ** 2)\n"
        "    di, df, dg, do = dc_bar * g, dc_bar * c_prev, dc_bar * i, dh * np.tanh(c)\n"
        "    da = np.hstack([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)])\n"
        "    dW_x = np.einsum('bk,bd->kd', da, x)\n    dW_h = np.einsum('bk,bh->kh', da, h_prev)\n"
        "    return da.dot(W_x), da.dot(W_h), f * dc_bar, dW_x, dW_h, np.sum(da, axis=0)\n",
    ),
    M(
        "05_lstm_gru",
        "gru step with the weights sliced per gate",
        "gru_step_forward",
        {},
        code="def gru_step_forward(x, h_prev, W_x, W_h, b_x, b_hn):\n    H = h_prev.shape[1]\n"
        "    Wr, Wu, Wn = W_x[:H], W_x[H:2 * H], W_x[2 * H:]\n"
        "    Ur, Uu, Un = W_h[:H], W_h[H:2 * H], W_h[2 * H:]\n"
        "    br, bu, bn = b_x[:H], b_x[H:2 * H], b_x[2 * H:]\n"
        "    r = sigmoid(x @ Wr.T + h_prev @ Ur.T + br)\n    u = sigmoid(x @ Wu.T + h_prev @ Uu.T + bu)\n"
        "    n = np.tanh(x @ Wn.T + bn + r * (h_prev @ Un.T + b_hn))\n"
        "    return n + u * (h_prev - n)\n",
    ),
    M(
        "05_lstm_gru",
        "gru forward into a preallocated array",
        "gru_forward",
        {},
        code="def gru_forward(xs, h0, W_x, W_h, b_x, b_hn):\n"
        "    hs = np.empty((xs.shape[0],) + h0.shape)\n    h = h0\n"
        "    for t, x in enumerate(xs):\n        h = gru_step_forward(x, h, W_x, W_h, b_x, b_hn)\n"
        "        hs[t] = h\n    return hs\n",
    ),
    M(
        "05_lstm_gru",
        "input norms via backward on a copy of the model",
        "input_grad_norms",
        {},
        code="import copy\n\ndef input_grad_norms(model, xs):\n    m = copy.deepcopy(model)\n"
        "    x = xs.clone().detach()\n    x.requires_grad = True\n    out = m(x)\n"
        "    out[0][-1].sum().backward()\n"
        "    return np.array([x.grad[t].norm().item() for t in range(x.shape[0])])\n",
    ),
    M(
        "05_lstm_gru",
        "input norms via backward, saving and restoring the grads",
        "input_grad_norms",
        {},
        code="def input_grad_norms(model, xs):\n    saved = [p.grad for p in model.parameters()]\n"
        "    for p in model.parameters():\n        p.grad = None\n"
        "    x = xs.detach().clone().requires_grad_()\n    model(x)[0][-1].sum().backward()\n"
        "    for p, g in zip(model.parameters(), saved):\n        p.grad = g\n"
        "    return torch.linalg.vector_norm(x.grad, dim=(1, 2)).detach().numpy()\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def test_lstm_gru_reference(ref):
    ns = ref("05_lstm_gru")
    rng = np.random.default_rng(5)
    T, B, D, H = 6, 3, 5, 4
    xs, h0, c0 = (
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        rng.standard_normal((B, H)),
    )
    W_x, W_h, b = (
        rng.standard_normal((4 * H, D)),
        rng.standard_normal((4 * H, H)),
        rng.standard_normal(4 * H),
    )
    lstm = torch.nn.LSTM(D, H, dtype=torch.float64)
    with torch.no_grad():
        for name, v in zip(lstm._flat_weights_names, (W_x, W_h, b, np.zeros(4 * H)), strict=False):
            getattr(lstm, name).copy_(t(v))
    with torch.no_grad():
        want_hs = lstm(t(xs), (t(h0)[None], t(c0)[None]))[0]
        _, (h1, c1) = lstm(t(xs[:1]), (t(h0)[None], t(c0)[None]))
    hs, cs = ns["lstm_forward"](xs, h0, c0, W_x, W_h, b)
    assert max_rel_error(hs, want_hs) < TOL
    h, c = ns["lstm_step_forward"](xs[0], h0, c0, W_x, W_h, b)
    assert max_rel_error(h, h1[0]) < TOL and max_rel_error(c, c1[0]) < TOL
    assert max_rel_error(cs[0], c1[0]) < TOL
    # backward through one step, by autograd on nn.LSTM run for one step
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    leaves = [t(a).requires_grad_() for a in (xs[0], h0, c0, W_x, W_h, b)]
    out = torch.func.functional_call(
        lstm,
        dict(
            zip(
                lstm._flat_weights_names,
                (*leaves[3:], torch.zeros(4 * H, dtype=torch.float64)),
                strict=False,
            )
        ),
        (leaves[0][None], (leaves[1][None], leaves[2][None])),
    )
    _, (th, tc) = out
    ((th[0] * t(dh)).sum() + (tc[0] * t(dc)).sum()).backward()
    got = ns["lstm_step_backward"](dh, dc, xs[0], h0, c0, W_x, W_h, b)
    for g, leaf in zip(got, leaves, strict=True):
        assert max_rel_error(g, leaf.grad) < TOL
    # GRU
    W_x, W_h = rng.standard_normal((3 * H, D)), rng.standard_normal((3 * H, H))
    b_x, b_hn = rng.standard_normal(3 * H), rng.standard_normal(H)
    b_hh = np.concatenate([np.zeros(2 * H), b_hn])  # PyTorch's bias_hh: r, u folded into b_x
    gru = torch.nn.GRU(D, H, dtype=torch.float64)
    with torch.no_grad():
        for name, v in zip(gru._flat_weights_names, (W_x, W_h, b_x, b_hh), strict=False):
            getattr(gru, name).copy_(t(v))
        want = gru(t(xs), t(h0)[None])[0]
    assert max_rel_error(ns["gru_forward"](xs, h0, W_x, W_h, b_x, b_hn), want) < TOL
    assert max_rel_error(ns["gru_step_forward"](xs[0], h0, W_x, W_h, b_x, b_hn), want[0]) < TOL


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_input_grad_norms_reference(ref, kind):
    input_grad_norms = ref("05_lstm_gru")["input_grad_norms"]
    torch.manual_seed(0)
    model = getattr(torch.nn, kind)(3, 5, dtype=torch.float64)
    xs = torch.randn(7, 2, 3, dtype=torch.float64)
    preset = [torch.randn_like(p) for p in model.parameters()]
    for p, g in zip(model.parameters(), preset, strict=False):
        p.grad = g.clone()
    norms = input_grad_norms(model, xs)
    assert isinstance(norms, np.ndarray) and norms.shape == (7,)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), preset, strict=False))
    assert not xs.requires_grad and xs.grad is None
    # oracle: the Jacobian of s = output[-1].sum() with respect to the inputs, by autograd
    jac = torch.autograd.functional.jacobian(lambda x: model(x)[0][-1].sum(), xs)
    assert max_rel_error(norms, jac.flatten(1).norm(dim=1)) < TOL
