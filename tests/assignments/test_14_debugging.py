# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 14_debugging: the source notes' listings 1, 4, 5 and 6, released as the notes wrote
them (each solution cell's ``release_source``), to be fixed. Its reference fixes against oracles
nobody here wrote, the listings with each of their bugs left in alone and typical wrong fixes
(each must lose points with a message that names the bug), and valid other fixes (each keeps
full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own tests,
and checks that the untouched release fails every test cell with the phrase of RELEASE_FAILS."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import Mutant, read, release_path

from bptt.gradflow import hidden_grad_norms
from bptt.truncated import truncated_bptt_corrected

A = "14_debugging"
F = torch.nn.functional


def M(name, cell, fails, edits=(), code=None):
    return Mutant(A, name, cell, fails, list(edits), code)


def released(cell: str) -> str:
    """The solution cell as released: the notes' listing, bugs included."""
    return next(c.source for c in read(release_path(A)).cells if c.id == cell)


def edited(cell: str, *edits: tuple[str, str]) -> str:
    """The released listing with some of its bugs fixed: a partial fix."""
    source = released(cell)
    for old, new in edits:
        if old not in source:
            raise ValueError(f"{old!r} is not in the released {cell}")
        source = source.replace(old, new)
    return source


# What the untouched release's test cells say: the first bug each one meets.
RELEASE_FAILS = {
    "test_clip_gradients_nonfinite": "inf entry",
    "test_clip_gradients_overflow": "overflowed",
    "test_bptt_manual_weights": "torch.outer takes two vectors",
    "test_bptt_manual_biases": "torch.outer takes two vectors",
    "test_truncated_bptt_rnn": "never defines",
    "test_truncated_bptt_lengths": "never defines",
    "test_truncated_bptt_lstm": "never defines",
    "test_gradient_flow_rnn": "one number, not one per step",
    "test_gradient_flow_gru": "one number, not one per step",
}

CLIP = ("test_clip_gradients_nonfinite", "test_clip_gradients_overflow")
BM = ("test_bptt_manual_weights", "test_bptt_manual_biases")
TB = ("test_truncated_bptt_rnn", "test_truncated_bptt_lengths", "test_truncated_bptt_lstm")
GF = ("test_gradient_flow_rnn", "test_gradient_flow_gru")

# ---- Listing 1: the fixes' pieces
L1_NORM = "    total_norm = np.sqrt(sum([np.sum(grad ** 2) for grad in gradients]))\n"
L1_CHECK = "    if not np.isfinite(total_norm):\n        raise FloatingPointError('the norm is not finite')\n"
L1_SAFE = (
    "    scale = max(float(np.max(np.abs(grad))) for grad in gradients)\n"
    "    total_norm = scale * np.sqrt(sum([np.sum((grad / scale) ** 2) for grad in gradients])) if scale > 0 else 0.0\n"
)
L1_ENTRIES = "    if not all(np.isfinite(grad).all() for grad in gradients):\n        raise FloatingPointError('not finite')\n"

# ---- Listing 4: the fixes' pieces
L4_BATCH = [
    ("torch.outer(dy, hs[t+1])", "dy.T @ hs[t+1]"),
    ("W_hy.T @ dy + dh_next", "dy @ W_hy + dh_next"),
    ("torch.outer(dh_raw, xs[t])", "dh_raw.T @ xs[t]"),
    ("torch.outer(dh_raw, hs[t])", "dh_raw.T @ hs[t]"),
    ("W_hh.T @ dh_raw", "dh_raw @ W_hh"),
]
L4_MEAN = ("dy = ys[t] - targets[t]", "dy = (ys[t] - targets[t]) / xs.shape[1]")
L4_SOFT = ("dy = ys[t] - targets[t]", "dy = (torch.softmax(ys[t], -1) - targets[t]) / xs.shape[1]")
L4_BIAS = [
    (
        "    dh_next = torch.zeros_like(hs[0])",
        "    db_h = torch.zeros(W_hh.shape[0], dtype=W_hh.dtype)\n    db_y = torch.zeros(W_hy.shape[0], dtype=W_hy.dtype)\n    dh_next = torch.zeros_like(hs[0])",
    ),
    (
        "        # Gradient flowing to hidden state",
        "        db_y += dy.sum(0)\n        # Gradient flowing to hidden state",
    ),
    (
        "        # Gradient for input weights",
        "        db_h += dh_raw.sum(0)\n        # Gradient for input weights",
    ),
    ("return dW_xh, dW_hh, dW_hy", "return dW_xh, dW_hh, dW_hy, db_h, db_y"),
]
BM_REF = "dy = (torch.softmax(ys[t], dim=-1) - targets[t]) / B"

# ---- Listing 5: the fixes' pieces
L5_CRIT = (
    "    hidden = None\n",
    "    criterion = torch.nn.CrossEntropyLoss()\n    hidden = None\n",
)
L5_READOUT = (
    "criterion(outputs.squeeze(0), targets)",
    "criterion(outputs.squeeze(0) @ W_hy.T + b_y, targets)",
)
L5_SHORT = (
    "inputs = sequence[i:i + chunk_size]",
    "inputs = sequence[i:min(i + chunk_size, len(sequence) - 1)]",
)
L5_TUPLE = (
    "hidden = hidden.detach()",
    "hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()",
)
L5_MEAN = [
    ("total_loss += loss.item()", "total_loss += loss.item() * len(targets)"),
    ("return total_loss", "return total_loss / (len(sequence) - 1)"),
]
TB_DETACH = "            hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()"

# ---- Listing 6
GF_HEAD = """def visualize_gradient_flow(rnn, sequence):
    model = RNNModel(rnn)
"""

MUTANTS = [
    # ---------------- Listing 1: clip_gradients
    M(
        "L1 as written: no finite check, an overflowing norm",
        "clip_gradients",
        {
            "test_clip_gradients_nonfinite": "inf entry",
            "test_clip_gradients_overflow": "overflowed",
        },
        code=released("clip_gradients"),
    ),
    M(
        "L1 overflow fixed, no finite check",
        "clip_gradients",
        {"test_clip_gradients_nonfinite": "inf entry"},
        code=edited("clip_gradients", (L1_NORM, L1_SAFE)),
    ),
    M(
        "L1 finite check on the overflowing norm",
        "clip_gradients",
        {"test_clip_gradients_overflow": "squares of such entries overflow"},
        code=edited("clip_gradients", (L1_NORM, L1_NORM + L1_CHECK)),
    ),
    M(
        "L1 wrong fix: only inf checked, a nan passes",
        "clip_gradients",
        {"test_clip_gradients_nonfinite": "`nan < 1` is False"},
        code=edited(
            "clip_gradients",
            (
                L1_NORM,
                "    if any(np.isinf(grad).any() for grad in gradients):\n        raise FloatingPointError('inf')\n"
                + L1_SAFE,
            ),
        ),
    ),
    M(
        "L1 wrong fix: raises after scaling in place",
        "clip_gradients",
        {
            "test_clip_gradients_nonfinite": "only after changing",
            "test_clip_gradients_overflow": "overflow",
        },
        code=edited("clip_gradients", ("    return gradients", L1_CHECK + "    return gradients")),
    ),
    M(
        "L1 wrong fix: ValueError",
        "clip_gradients",
        {"test_clip_gradients_nonfinite": "must raise FloatingPointError"},
        [
            (
                'raise FloatingPointError("the gradient has an inf or nan entry: its norm is not finite")',
                "raise ValueError('not finite')",
            )
        ],
    ),
    M(
        "L1 wrong fix: nan_to_num first",
        "clip_gradients",
        {
            "test_clip_gradients_nonfinite": "without an error",
            "test_clip_gradients_overflow": "overflowed",
        },
        code=edited(
            "clip_gradients",
            (L1_NORM, "    gradients = [np.nan_to_num(grad) for grad in gradients]\n" + L1_NORM),
        ),
    ),
    # ---------------- Listing 4: bptt_manual
    M(
        "L4 as written: one sequence only",
        "bptt_manual",
        dict.fromkeys(BM, "torch.outer takes two vectors"),
        code=released("bptt_manual"),
    ),
    M(
        "L4 batched only: no softmax, no biases",
        "bptt_manual",
        {
            "test_bptt_manual_weights": "the softmax is missing",
            "test_bptt_manual_biases": "no bias gradients",
        },
        code=edited("bptt_manual", *L4_BATCH, L4_MEAN),
    ),
    M(
        "L4 batched, softmax, no biases",
        "bptt_manual",
        {"test_bptt_manual_biases": "no bias gradients"},
        code=edited("bptt_manual", *L4_BATCH, L4_SOFT),
    ),
    M(
        "L4 batched, biases, no softmax",
        "bptt_manual",
        dict.fromkeys(BM, "the softmax is missing"),
        code=edited("bptt_manual", *L4_BATCH, L4_MEAN, *L4_BIAS),
    ),
    M(
        "L4 softmax and biases, still per sequence",
        "bptt_manual",
        dict.fromkeys(BM, "torch.outer takes two vectors"),
        code=edited("bptt_manual", L4_SOFT, *L4_BIAS),
    ),
    M(
        "L4 wrong fix: not averaged over the batch",
        "bptt_manual",
        dict.fromkeys(BM, "B times too large"),
        [(BM_REF, "dy = torch.softmax(ys[t], dim=-1) - targets[t]")],
    ),
    M(
        "L4 wrong fix: softmax over the batch axis",
        "bptt_manual",
        dict.fromkeys(BM, "wrong axis"),
        [(BM_REF, "dy = (torch.softmax(ys[t], dim=0) - targets[t]) / B")],
    ),
    M(
        "L4 wrong fix: tanh' at the previous state",
        "bptt_manual",
        dict.fromkeys(BM, "derivative of tanh"),
        [("dh_raw = dh * (1 - hs[t + 1] ** 2)", "dh_raw = dh * (1 - hs[t] ** 2)")],
    ),
    M(
        "L4 wrong fix: dW_hh with the new state",
        "bptt_manual",
        {"test_bptt_manual_weights": "previous state"},
        [("dW_hh += dh_raw.T @ hs[t]", "dW_hh += dh_raw.T @ hs[t + 1]")],
    ),
    M(
        "L4 wrong fix: W_hh transposed going back",
        "bptt_manual",
        dict.fromkeys(BM, "W_hh transposed"),
        [("dh_next = dh_raw @ W_hh", "dh_next = dh_raw @ W_hh.T")],
    ),
    M(
        "L4 wrong fix: the recursion dropped",
        "bptt_manual",
        dict.fromkeys(BM, "later steps"),
        [("dh = dy @ W_hy + dh_next", "dh = dy @ W_hy")],
    ),
    M(
        "L4 wrong fix: a transposed product",
        "bptt_manual",
        dict.fromkeys(BM, "transposed product"),
        [("dW_xh += dh_raw.T @ xs[t]", "dW_xh += xs[t].T @ dh_raw")],
    ),
    # ---------------- Listing 5: truncated_bptt
    M(
        "L5 as written: no criterion",
        "truncated_bptt",
        dict.fromkeys(TB, "never defines"),
        code=released("truncated_bptt"),
    ),
    M(
        "L5 criterion only: states as logits",
        "truncated_bptt",
        dict.fromkeys(TB, "not logits"),
        code=edited("truncated_bptt", L5_CRIT),
    ),
    M(
        "L5 criterion and readout: short chunk, tuple state, summed loss left",
        "truncated_bptt",
        {
            "test_truncated_bptt_rnn": "sum of the chunks' mean losses",
            "test_truncated_bptt_lengths": "one step more than its targets",
            "test_truncated_bptt_lstm": "tuple",
        },
        code=edited("truncated_bptt", L5_CRIT, L5_READOUT),
    ),
    M(
        "L5 all but the short last chunk",
        "truncated_bptt",
        {"test_truncated_bptt_lengths": "one step more than its targets"},
        code=edited("truncated_bptt", L5_CRIT, L5_READOUT, L5_TUPLE, *L5_MEAN),
    ),
    M(
        "L5 all but the LSTM's tuple state",
        "truncated_bptt",
        {"test_truncated_bptt_lstm": "tuple"},
        code=edited("truncated_bptt", L5_CRIT, L5_READOUT, L5_SHORT, *L5_MEAN),
    ),
    M(
        "L5 all but the summed chunk means",
        "truncated_bptt",
        {
            "test_truncated_bptt_rnn": "sum of the chunks' mean losses",
            "test_truncated_bptt_lengths": "sum of the chunks' mean losses",
        },
        code=edited("truncated_bptt", L5_CRIT, L5_READOUT, L5_SHORT, L5_TUPLE),
    ),
    M(
        "L5 wrong fix: the mean of the chunks' means",
        "truncated_bptt",
        {"test_truncated_bptt_lengths": "mean of the chunks' mean losses"},
        [
            ("total_loss += loss.item() * len(targets)", "total_loss += loss.item()"),
            ("return total_loss / n", "return total_loss / len(range(0, n, chunk_size))"),
        ],
    ),
    M(
        "L5 wrong fix: no detach",
        "truncated_bptt",
        dict.fromkeys(TB, "must be detached"),
        [(TB_DETACH, "            pass")],
    ),
    M(
        "L5 wrong fix: only h of (h, c) detached",
        "truncated_bptt",
        {"test_truncated_bptt_lstm": "both must be detached"},
        [
            (
                TB_DETACH,
                "            hidden = (hidden[0].detach(), hidden[1]) if isinstance(hidden, tuple) else hidden.detach()",
            )
        ],
    ),
    M(
        "L5 wrong fix: the state reset at each chunk",
        "truncated_bptt",
        dict.fromkeys(TB, "zero state"),
        [(TB_DETACH, "            hidden = None")],
    ),
    M(
        "L5 wrong fix: the short chunk dropped",
        "truncated_bptt",
        {"test_truncated_bptt_lengths": "skipped"},
        [
            (
                "for i in range(0, n, chunk_size):",
                "for i in range(0, n - chunk_size + 1, chunk_size):",
            )
        ],
    ),
    M(
        "L5 wrong fix: zero_grad dropped",
        "truncated_bptt",
        dict.fromkeys(TB, "accumulated across chunks"),
        [("        optimizer.zero_grad()\n", "")],
    ),
    M(
        "L5 wrong fix: summed chunk loss",
        "truncated_bptt",
        dict.fromkeys(TB, "summed loss"),
        [("torch.nn.CrossEntropyLoss()", "torch.nn.CrossEntropyLoss(reduction='sum')")],
    ),
    # ---------------- Listing 6: visualize_gradient_flow
    M(
        "L6 as written: a module hook",
        "visualize_gradient_flow",
        dict.fromkeys(GF, "one number, not one per step"),
        code=released("visualize_gradient_flow"),
    ),
    M(
        "L6 wrong fix: full backward hook, sliced by time",
        "visualize_gradient_flow",
        dict.fromkeys(GF, "direct shares"),
        code=edited(
            "visualize_gradient_flow",
            (
                "gradients.append(grad_output[0].norm().item())",
                "gradients.extend(g.norm().item() for g in grad_output[0])",
            ),
            ("register_backward_hook", "register_full_backward_hook"),
            ("return gradients[::-1]", "return gradients"),
        ),
    ),
    M(
        "L6 wrong fix: retain_grad on the outputs",
        "visualize_gradient_flow",
        dict.fromkeys(GF, "direct shares"),
        code=GF_HEAD
        + "    outputs, _ = model(sequence)\n    outputs.retain_grad()\n    outputs.sum().backward()\n"
        "    return [g.norm().item() for g in outputs.grad]\n",
    ),
    M(
        "L6 wrong fix: tensor hooks, not reversed",
        "visualize_gradient_flow",
        dict.fromkeys(GF, "reverse order"),
        [("return gradients[::-1]  # the hooks", "return gradients  # the hooks")],
    ),
    M(
        "L6 wrong fix: the inputs' gradients",
        "visualize_gradient_flow",
        dict.fromkeys(GF, "inputs x_t"),
        code=GF_HEAD
        + "    x = sequence.clone().requires_grad_()\n    model(x)[0].sum().backward()\n"
        "    return [g.norm().item() for g in x.grad]\n",
    ),
]

VARIANTS = [
    M(
        "L1 fixed with math.hypot, new arrays returned",
        "clip_gradients",
        {},
        code="import math\n\ndef clip_gradients(gradients, max_norm):\n"
        "    flat = np.concatenate([g.ravel() for g in gradients])\n"
        "    if not np.isfinite(flat).all():\n        raise FloatingPointError('non-finite gradient')\n"
        "    norm = math.hypot(*flat)\n    coef = min(1.0, max_norm / (norm + 1e-6))\n"
        "    return [g * coef for g in gradients]\n",
    ),
    M(
        "L1 fixed with np.linalg.norm of the scaled gradient",
        "clip_gradients",
        {},
        code="def clip_gradients(gradients, max_norm):\n"
        "    m = np.max([np.abs(g).max() for g in gradients])\n"
        "    if np.isnan(m) or np.isinf(m):\n        raise FloatingPointError('non-finite gradient')\n"
        "    total_norm = m * np.linalg.norm([np.linalg.norm(g / m) for g in gradients]) if m > 0 else 0.0\n"
        "    clip_coef = max_norm / (total_norm + 1e-6)\n"
        "    if clip_coef < 1:\n        for grad in gradients:\n            grad *= clip_coef\n"
        "    return gradients\n",
    ),
    M(
        "L4 fixed row by row, keeping the listing's outer products",
        "bptt_manual",
        {},
        code=edited(
            "bptt_manual",
            L4_SOFT,
            *L4_BIAS,
            (
                "dW_hy += torch.outer(dy, hs[t+1])",
                "dW_hy += sum(torch.outer(a, b) for a, b in zip(dy, hs[t+1]))",
            ),
            ("W_hy.T @ dy + dh_next", "(W_hy.T @ dy.T).T + dh_next"),
            (
                "dW_xh += torch.outer(dh_raw, xs[t])",
                "dW_xh += sum(torch.outer(a, b) for a, b in zip(dh_raw, xs[t]))",
            ),
            (
                "dW_hh += torch.outer(dh_raw, hs[t])",
                "dW_hh += sum(torch.outer(a, b) for a, b in zip(dh_raw, hs[t]))",
            ),
            ("W_hh.T @ dh_raw", "(W_hh.T @ dh_raw.T).T"),
        ),
    ),
    M(
        "L4 fixed with einsum and log_softmax",
        "bptt_manual",
        {},
        [
            (BM_REF, "dy = (torch.log_softmax(ys[t], dim=1).exp() - targets[t]) / len(xs[t])"),
            ("dW_xh += dh_raw.T @ xs[t]", "dW_xh += torch.einsum('bh,bd->hd', dh_raw, xs[t])"),
        ],
    ),
    M(
        "L5 fixed with class indices, inputs cut to the targets",
        "truncated_bptt",
        {},
        code=edited(
            "truncated_bptt",
            L5_TUPLE,
            *L5_MEAN,
            (
                "    hidden = None\n",
                "    criterion = torch.nn.functional.cross_entropy\n    hidden = None\n",
            ),
            (
                "        inputs = sequence[i:i + chunk_size]\n        targets = sequence[i + 1:i + chunk_size + 1]",
                "        targets = sequence[i + 1:i + chunk_size + 1]\n        inputs = sequence[i:i + len(targets)]",
            ),
            (
                "criterion(outputs.squeeze(0), targets)",
                "criterion(outputs[0] @ W_hy.T + b_y, targets.argmax(-1))",
            ),
        ),
    ),
    M(
        "L5 fixed by dropping the last input's output",
        "truncated_bptt",
        {},
        code=edited(
            "truncated_bptt",
            L5_CRIT,
            L5_TUPLE,
            *L5_MEAN,
            (
                "criterion(outputs.squeeze(0), targets)",
                "criterion((outputs.squeeze(0) @ W_hy.T + b_y)[:len(targets)], targets)",
            ),
        ),
    ),
    M(
        "L6 fixed with retain_grad, in forward order",
        "visualize_gradient_flow",
        {},
        code=GF_HEAD
        + "    h, hs = None, []\n    for x in sequence:\n        h = model.rnn(x[None], h)[0]\n"
        "        h.retain_grad()\n        hs.append(h)\n    torch.cat(hs).sum().backward()\n"
        "    return [h.grad.norm().item() for h in hs]\n",
    ),
    M(
        "L6 fixed with torch.autograd.grad",
        "visualize_gradient_flow",
        {},
        code=GF_HEAD + "    h, hs = None, []\n    for t in range(len(sequence)):\n"
        "        h = model.rnn(sequence[t:t + 1], h)[0]\n        hs.append(h)\n"
        "    grads = torch.autograd.grad(torch.cat(hs).sum(), hs)\n"
        "    return np.array([g.norm().item() for g in grads])\n",
    ),
]


# ---------------------------------------------------------------- the reference fixes


def test_release_holds_the_listings():
    """Each released solution cell is the notes' listing, as written, behind its signature."""
    from pathlib import Path

    listings = Path(__file__).resolve().parents[2] / "bptt" / "data" / "listings"
    for cell, n, start in [
        ("clip_gradients", 1, "total_norm"),
        ("bptt_manual", 4, "    T = len(xs)"),
        ("truncated_bptt", 5, "    hidden = None"),
        ("visualize_gradient_flow", 6, "    gradients = []"),
    ]:
        text = (listings / f"listing_{n}.py").read_text()
        body = text[text.index(start) :]
        if n == 6:
            body = body.split("    # Plot")[0].rstrip()
        assert body.rstrip() in released(cell), cell
        assert "NotImplementedError" not in released(cell)


def test_clip_gradients_reference(ref):
    clip = ref(A)["clip_gradients"]
    rng = np.random.default_rng(0)
    for scale, max_norm in [(1.0, 1.0), (1.0, 50.0), (1e-3, 1e-4)]:
        gs = [scale * rng.standard_normal(s) for s in [(3,), (2, 4)]]
        leaves = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
        for leaf, g in zip(leaves, gs, strict=True):
            leaf.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_norm_(leaves, max_norm)
        out = clip([g.copy() for g in gs], max_norm)
        for o, leaf in zip(out, leaves, strict=True):
            np.testing.assert_allclose(o, leaf.grad.numpy(), rtol=1e-12)
    for bad in (np.inf, -np.inf, np.nan):
        gs = [np.array([1.0, bad]), np.ones((2, 2))]
        kept = copy.deepcopy(gs)
        with pytest.raises(FloatingPointError):
            clip(gs, 1.0)
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(gs, kept, strict=True))
    huge = [np.array([3e200, 4e200])]
    np.testing.assert_allclose(clip(huge, 1.0)[0], [0.6, 0.8], rtol=1e-12)


def test_bptt_manual_reference(ref):
    bm = ref(A)["bptt_manual"]
    torch.manual_seed(0)
    T, B, D, H, V = 5, 3, 4, 6, 7
    W_xh, W_hh, W_hy = (
        torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in [(H, D), (H, H), (V, H)]
    )
    b_h, b_y = (torch.randn(n, dtype=torch.float64, requires_grad=True) for n in (H, V))
    rnn = torch.nn.RNN(D, H, dtype=torch.float64)
    xs, h0 = torch.randn(T, B, D, dtype=torch.float64), torch.randn(1, B, H, dtype=torch.float64)
    ids = torch.randint(0, V, (T, B))
    with torch.no_grad():  # nn.RNN with the weights copied computes the states
        rnn.weight_ih_l0.copy_(W_xh), rnn.weight_hh_l0.copy_(W_hh), rnn.bias_ih_l0.copy_(b_h)
        rnn.bias_hh_l0.zero_()
    hs, _ = rnn(xs, h0)
    zs = hs @ W_hy.T + b_y
    loss = F.cross_entropy(zs.reshape(-1, V), ids.reshape(-1), reduction="sum") / B
    want = torch.autograd.grad(
        loss, [rnn.weight_ih_l0, rnn.weight_hh_l0, W_hy, rnn.bias_ih_l0, b_y]
    )
    got = bm(
        xs,
        torch.cat([h0, hs]).detach(),
        zs.detach(),
        F.one_hot(ids, V).double(),
        W_xh.detach(),
        W_hh.detach(),
        W_hy.detach(),
    )
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


class _Model(torch.nn.Module):
    """For bptt.truncated.truncated_bptt_corrected: ids -> logits of an RNN and a readout."""

    def __init__(self, rnn, W_hy, b_y):
        super().__init__()
        self.rnn, self.W, self.b = rnn, torch.nn.Parameter(W_hy), torch.nn.Parameter(b_y)

    def forward(self, ids, hidden=None):
        out, hidden = self.rnn(F.one_hot(ids, self.W.shape[0]).double(), hidden)
        return out @ self.W.T + self.b, hidden


@pytest.mark.parametrize("kind, N, k", [("RNN", 13, 4), ("RNN", 12, 5), ("LSTM", 11, 3)])
def test_truncated_bptt_reference(ref, kind, N, k):
    tb = ref(A)["truncated_bptt"]
    V, H, lr = 5, 4, 0.3
    torch.manual_seed(1)
    rnn = getattr(torch.nn, kind)(V, H, batch_first=True, dtype=torch.float64)
    W_hy, b_y = torch.randn(V, H, dtype=torch.float64), torch.randn(V, dtype=torch.float64)
    ids = torch.randint(0, V, (N,))
    model = _Model(copy.deepcopy(rnn), W_hy.clone(), b_y.clone())
    want = truncated_bptt_corrected(
        model, ids, k, torch.optim.SGD(model.parameters(), lr=lr), torch.nn.CrossEntropyLoss()
    )
    mine_W, mine_b = W_hy.clone().requires_grad_(), b_y.clone().requires_grad_()
    got = tb(rnn, mine_W, mine_b, F.one_hot(ids, V).double(), k, lr)
    assert abs(got - want) < 1e-12
    for a, b in zip([mine_W, mine_b, *rnn.parameters()], model.parameters(), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-14)


def test_truncated_bptt_zero_lr_is_one_forward_pass(ref):
    """With lr = 0 the chunked loss is the loss of one forward pass: the forward is not truncated."""
    V, H, N = 4, 3, 14
    torch.manual_seed(2)
    rnn = torch.nn.RNN(V, H, batch_first=True, dtype=torch.float64)
    W_hy, b_y = torch.randn(V, H, dtype=torch.float64), torch.randn(V, dtype=torch.float64)
    seq = F.one_hot(torch.randint(0, V, (N,)), V).double()
    with torch.no_grad():
        out, _ = rnn(seq[None, :-1])
        want = F.cross_entropy(out[0] @ W_hy.T + b_y, seq[1:].argmax(-1)).item()
    got = ref(A)["truncated_bptt"](
        rnn, W_hy.clone().requires_grad_(), b_y.clone().requires_grad_(), seq, 4, 0.0
    )
    assert abs(got - want) < 1e-12


def test_visualize_gradient_flow_reference(ref):
    flow = ref(A)["visualize_gradient_flow"]
    torch.manual_seed(3)
    rnn = torch.nn.RNN(3, 5, dtype=torch.float64)
    xs = torch.randn(9, 2, 3, dtype=torch.float64)
    want = hidden_grad_norms(copy.deepcopy(rnn), xs, lambda s: s.sum())
    np.testing.assert_allclose(flow(rnn, xs), want, rtol=1e-12)
