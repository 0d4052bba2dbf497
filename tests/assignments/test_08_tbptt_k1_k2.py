# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 08_tbptt_k1_k2: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_grads, t, torch_rnn

M = Mutant
F = torch.nn.functional
A = "08_tbptt_k1_k2"
SCHED = ("test_tbptt_schedule",)
GRADS = ("test_k1_k2_loss_state", "test_k1_k2_overlap", "test_k1_k2_special")
LOOP = ("test_stateful_tbptt_losses", "test_stateful_tbptt_training", "test_stateful_tbptt_edge")
WINDOW = "window = min(max(start + k1 - k2, 0), stop)"
CHECK = '    if k1 < 1 or k2 < 1:\n        raise ValueError(f"k1 and k2 must be >= 1, got k1 = {k1}, k2 = {k2}")\n'
RANGE = "for start in range(0, T, k)"
ZERO = "        for p in params:\n            p.grad = None\n"
STEP = "        with torch.no_grad():\n            for p in params:\n                p -= lr * p.grad\n"

MUTANTS = [
    # ---- tbptt_schedule
    M(
        A,
        "schedule: window anchored at the short last chunk's stop",
        "tbptt_schedule",
        {
            "test_tbptt_schedule": "short last chunk",
            "test_k1_k2_overlap": "short last chunk",
            "test_k1_k2_special": "short last chunk",
        },
        [(WINDOW, "window = min(max(stop - k2, 0), stop)")],
    ),
    M(
        A,
        "schedule: window not clipped at 0",
        "tbptt_schedule",
        {
            "test_tbptt_schedule": "before step 0",
            "test_k1_k2_overlap": "fix it first",
            "test_k1_k2_special": "fix it first",
        },
        [(WINDOW, "window = min(start + k1 - k2, stop)")],
    ),
    M(
        A,
        "schedule: window not clipped at stop (k2 < k1)",
        "tbptt_schedule",
        {
            "test_tbptt_schedule": "after its chunk's stop",
            "test_k1_k2_loss_state": "fix it first",
            "test_k1_k2_special": "fix it first",
        },
        [(WINDOW, "window = max(start + k1 - k2, 0)")],
    ),
    M(
        A,
        "schedule: windows are the chunks (k2 ignored)",
        "tbptt_schedule",
        {
            "test_tbptt_schedule": "TBPTT(k1, k1)",
            "test_k1_k2_overlap": "TBPTT(k1, k1)",
            "test_k1_k2_special": "",
        },
        [(WINDOW, "window = start")],
    ),
    M(
        A,
        "schedule: window counted back from the chunk's start",
        "tbptt_schedule",
        {
            "test_tbptt_schedule": "before the chunk's start",
            "test_k1_k2_overlap": "",
            "test_k1_k2_special": "",
        },
        [(WINDOW, "window = min(max(start - k2, 0), stop)")],
    ),
    M(
        A,
        "schedule: window off by one (k2 + 1 states)",
        "tbptt_schedule",
        {"test_tbptt_schedule": "off by one", "test_k1_k2_overlap": "", "test_k1_k2_special": ""},
        [(WINDOW, "window = min(max(start + k1 - k2 - 1, 0), stop)")],
    ),
    M(
        A,
        "schedule: the source notes' range(0, T - 1, k1)",
        "tbptt_schedule",
        {"test_tbptt_schedule": "range(0, T - 1, k1)", **dict.fromkeys(GRADS, "")},
        [("for start in range(0, T, k1)", "for start in range(0, T - 1, k1)")],
    ),
    M(
        A,
        "schedule: last partial chunk dropped",
        "tbptt_schedule",
        {"test_tbptt_schedule": "last chunk", **dict.fromkeys(GRADS, "")},
        [("for start in range(0, T, k1)", "for start in range(0, T - k1 + 1, k1)")],
    ),
    M(
        A,
        "schedule: stop not clipped to T",
        "tbptt_schedule",
        {
            "test_tbptt_schedule": "runs past T",
            "test_k1_k2_loss_state": "fix it first",
            "test_k1_k2_overlap": "fix it first",
            "test_k1_k2_special": "fix it first",
        },
        [("stop = min(start + k1, T)", "stop = start + k1")],
    ),
    M(
        A,
        "schedule: k2 < k1 refused",
        "tbptt_schedule",
        {
            "test_tbptt_schedule": "k2 < k1 is allowed",
            "test_k1_k2_loss_state": "k2 < k1 is allowed",
            "test_k1_k2_special": "k2 < k1 is allowed",
        },
        [(CHECK, CHECK + "    if k2 < k1:\n        raise ValueError('k2 must be >= k1')\n")],
    ),
    M(
        A,
        "schedule: k2 not checked",
        "tbptt_schedule",
        {"test_tbptt_schedule_invalid": "check both"},
        [("if k1 < 1 or k2 < 1:", "if k1 < 1:")],
    ),
    M(
        A,
        "schedule: assert instead of ValueError",
        "tbptt_schedule",
        {"test_tbptt_schedule_invalid": "must raise ValueError"},
        [(CHECK, "    assert k1 >= 1 and k2 >= 1, 'k1 and k2 must be positive'\n")],
    ),
    # ---- tbptt_k1_k2_grads
    M(
        A,
        "k1k2: gradient back to h0 (full BPTT per update)",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_overlap": "full BPTT", "test_k1_k2_special": "full BPTT"},
        [
            (
                "dhs_window = np.zeros((stop - window,) + h0.shape)\n        first = max(start, window)\n        dhs_window[first - window:] = dhs[first - start:]\n        h_in = hs[window - 1] if window > 0 else h0",
                "window = 0\n        dhs_window = np.zeros((stop,) + h0.shape)\n        dhs_window[start:] = dhs\n        h_in = h0",
            )
        ],
    ),
    M(
        A,
        "k1k2: backward through the chunk only (TBPTT(k1))",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_overlap": "TBPTT(k1, k1)", "test_k1_k2_special": "full BPTT"},
        code="def tbptt_k1_k2_grads(params, xs, h0, targets, k1, k2):\n"
        "    W_xh, W_hh, b_h, W_hy, b_y = (params[n] for n in ('W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y'))\n"
        "    hs = rnn_forward(xs, h0, W_xh, W_hh, b_h)\n    updates = []\n"
        "    for window, start, stop in tbptt_schedule(len(xs), k1, k2):\n"
        "        _, dhs, dW_hy, db_y = output_backward(hs[start:stop], W_hy, b_y, targets[start:stop])\n"
        "        h_in = hs[start - 1] if start > 0 else h0\n"
        "        _, _, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs[start:stop], h_in, hs[start:stop], W_xh, W_hh)\n"
        "        updates.append((stop, {'W_xh': dW_xh, 'W_hh': dW_hh, 'b_h': db_h, 'W_hy': dW_hy, 'b_y': db_y}))\n"
        "    return sequence_loss(hs, W_hy, b_y, targets), updates, hs[-1]\n",
    ),
    M(
        A,
        "k1k2: the overlap's losses back-propagated again",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_overlap": "overlap's included"},
        code="def tbptt_k1_k2_grads(params, xs, h0, targets, k1, k2):\n"
        "    W_xh, W_hh, b_h, W_hy, b_y = (params[n] for n in ('W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y'))\n"
        "    hs = rnn_forward(xs, h0, W_xh, W_hh, b_h)\n    updates = []\n"
        "    for window, start, stop in tbptt_schedule(len(xs), k1, k2):\n"
        "        first = min(window, start)\n"
        "        _, dhs, dW_hy, db_y = output_backward(hs[first:stop], W_hy, b_y, targets[first:stop])\n"
        "        dhs = dhs[window - first:]\n"
        "        h_in = hs[window - 1] if window > 0 else h0\n"
        "        _, _, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs[window:stop], h_in, hs[window:stop], W_xh, W_hh)\n"
        "        updates.append((stop, {'W_xh': dW_xh, 'W_hh': dW_hh, 'b_h': db_h, 'W_hy': dW_hy, 'b_y': db_y}))\n"
        "    return sequence_loss(hs, W_hy, b_y, targets), updates, hs[-1]\n",
    ),
    M(
        A,
        "k1k2: the losses before a short window dropped (k2 < k1)",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_special": "W_hy and b_y"},
        [
            (
                "_, dhs, dW_hy, db_y = output_backward(hs[start:stop], W_hy, b_y, targets[start:stop])",
                "_, dhs, dW_hy, db_y = output_backward(hs[max(start, window):stop], W_hy, b_y, targets[max(start, window):stop])",
            ),
            (
                "dhs_window[first - window:] = dhs[first - start:]",
                "dhs_window[first - window:] = dhs",
            ),
        ],
    ),
    M(
        A,
        "k1k2: hs[window - 1] wraps to hs[-1] at window 0",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_overlap": "wraps around", "test_k1_k2_special": "wraps around"},
        [("h_in = hs[window - 1] if window > 0 else h0", "h_in = hs[window - 1]")],
    ),
    M(
        A,
        "k1k2: running sums instead of each update",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_overlap": "running sum", "test_k1_k2_special": "running sum"},
        [
            (
                '        updates.append((stop, {"W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h, "W_hy": dW_hy, "b_y": db_y}))',
                '        new = {"W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h, "W_hy": dW_hy, "b_y": db_y}\n'
                "        if updates:\n            new = {n: g + updates[-1][1][n] for n, g in new.items()}\n"
                "        updates.append((stop, new))",
            )
        ],
    ),
    M(
        A,
        "k1k2: one dict changed in place and appended each time",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_overlap": "same arrays", "test_k1_k2_special": "same arrays"},
        [
            (
                "    updates = []\n",
                "    updates = []\n    grads = {n: np.zeros_like(p) for n, p in params.items()}\n",
            ),
            (
                '        updates.append((stop, {"W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h, "W_hy": dW_hy, "b_y": db_y}))',
                '        for n, g in zip(("W_xh", "W_hh", "b_h", "W_hy", "b_y"), (dW_xh, dW_hh, db_h, dW_hy, db_y)):\n'
                "            grads[n] += g\n        updates.append((stop, grads))",
            ),
        ],
    ),
    M(
        A,
        "k1k2: update time t = start",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_loss_state": "not its start"},
        [("updates.append((stop, {", "updates.append((start, {")],
    ),
    M(
        A,
        "k1k2: loss of the windows (overlaps counted twice)",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_loss_state": "counted twice"},
        [
            (
                "    return sequence_loss(hs, W_hy, b_y, targets), updates, hs[-1]",
                "    loss = sum(sequence_loss(hs[w:e], W_hy, b_y, targets[w:e]) for w, s, e in tbptt_schedule(len(xs), k1, k2))\n"
                "    return loss, updates, hs[-1]",
            )
        ],
    ),
    M(
        A,
        "k1k2: grads as a tuple",
        "tbptt_k1_k2_grads",
        {"test_k1_k2_overlap": "dict", "test_k1_k2_special": "dict"},
        [
            (
                'updates.append((stop, {"W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h, "W_hy": dW_hy, "b_y": db_y}))',
                "updates.append((stop, (dW_xh, dW_hh, db_h, dW_hy, db_y)))",
            )
        ],
    ),
    # ---- stateful_tbptt
    M(
        A,
        "loop: no detach",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_losses": "backward through the graph a second time",
            "test_stateful_tbptt_training": "Detach the state that enters every chunk",
            "test_stateful_tbptt_edge": "detach",
        },
        [
            (
                "        h = h.detach()  # the same values; no edge back into the previous chunk's graph\n",
                "",
            )
        ],
    ),
    M(
        A,
        "loop: no detach, retain_graph=True",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_losses": "retain_graph=True is not the fix",
            "test_stateful_tbptt_training": "retain_graph=True is not the fix",
            "test_stateful_tbptt_edge": "retain_graph=True is not the fix",
        },
        [
            (
                "        h = h.detach()  # the same values; no edge back into the previous chunk's graph\n",
                "",
            ),
            ("loss.backward()", "loss.backward(retain_graph=True)"),
        ],
    ),
    M(
        A,
        "loop: no detach, retain_graph=True, steps through .data",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_training": "not detached",
            "test_stateful_tbptt_edge": "not detached",
        },
        [
            (
                "        h = h.detach()  # the same values; no edge back into the previous chunk's graph\n",
                "",
            ),
            ("loss.backward()", "loss.backward(retain_graph=True)"),
            ("                p -= lr * p.grad", "                p.data -= lr * p.grad"),
        ],
    ),
    M(
        A,
        "loop: every chunk from h0",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_losses": "carried over",
            "test_stateful_tbptt_training": "carried over",
            "test_stateful_tbptt_edge": "carried over",
        },
        [("h = h.detach()  #", "h = h0[None]  #")],
    ),
    M(
        A,
        "loop: every chunk from zeros",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_losses": "carried over",
            "test_stateful_tbptt_training": "carried over",
            "test_stateful_tbptt_edge": "carried over",
        },
        [("h = h.detach()  #", "h = torch.zeros_like(h0)[None]  #")],
    ),
    M(
        A,
        "loop: grads never cleared (accumulate)",
        "stateful_tbptt",
        {"test_stateful_tbptt_training": "accumulate", "test_stateful_tbptt_edge": ""},
        [(ZERO, "")],
    ),
    M(
        A,
        "loop: grads cleared after the step only (stale .grad)",
        "stateful_tbptt",
        {"test_stateful_tbptt_edge": "left over"},
        [(ZERO, ""), (STEP, STEP + ZERO)],
    ),
    M(
        A,
        "loop: one step at the end",
        "stateful_tbptt",
        {"test_stateful_tbptt_training": "one SGD step per chunk", "test_stateful_tbptt_edge": ""},
        [
            (STEP, ""),
            (
                "    return losses, h[0].detach()",
                STEP.replace("        ", "    ", 1)
                .replace("\n            ", "\n        ")
                .replace("\n                ", "\n            ")
                + "    return losses, h[0].detach()",
            ),
        ],
    ),
    M(
        A,
        "loop: last partial chunk dropped",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_losses": "last chunk",
            "test_stateful_tbptt_training": "last chunk",
            "test_stateful_tbptt_edge": "",
        },
        [(RANGE, "for start in range(0, T - k + 1, k)")],
    ),
    M(
        A,
        "loop: the source notes' range(0, T - 1, k)",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_losses": "range(0, T - 1, k)",
            "test_stateful_tbptt_training": "",
            "test_stateful_tbptt_edge": "",
        },
        [(RANGE, "for start in range(0, T - 1, k)")],
    ),
    M(
        A,
        "loop: cross_entropy's default mean",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_losses": "reduction='mean'",
            "test_stateful_tbptt_training": "reduction='mean'",
            "test_stateful_tbptt_edge": "reduction='mean'",
        },
        [
            (
                'targets[start:start + k].flatten(), reduction="sum") / B',
                "targets[start:start + k].flatten())",
            )
        ],
    ),
    M(
        A,
        "loop: parameters rebound, not updated in place",
        "stateful_tbptt",
        {"test_stateful_tbptt_training": "in place", "test_stateful_tbptt_edge": "in place"},
        [("                p -= lr * p.grad", "                p = p - lr * p.grad")],
    ),
    M(
        A,
        "loop: readout not stepped",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_training": "W_hy and b_y",
            "test_stateful_tbptt_edge": "W_hy and b_y",
        },
        [
            ("params = [*rnn.parameters(), W_hy, b_y]", "params = list(rnn.parameters())"),
            (ZERO, "        for p in [*params, W_hy, b_y]:\n            p.grad = None\n"),
        ],
    ),
    M(
        A,
        "loop: gradient ascent",
        "stateful_tbptt",
        {"test_stateful_tbptt_training": "uphill", "test_stateful_tbptt_edge": "uphill"},
        [("p -= lr * p.grad", "p += lr * p.grad")],
    ),
    M(
        A,
        "loop: h_last with the layer axis",
        "stateful_tbptt",
        {
            "test_stateful_tbptt_losses": "leading layer axis",
            "test_stateful_tbptt_training": "leading layer axis",
            "test_stateful_tbptt_edge": "leading layer axis",
        },
        [("    return losses, h[0].detach()", "    return losses, h.detach()")],
    ),
]

VARIANTS = [
    M(
        A,
        "schedule with a while loop, lists and if-clipping",
        "tbptt_schedule",
        {},
        code="def tbptt_schedule(T, k1, k2):\n    if min(k1, k2) <= 0:\n        raise ValueError('k1, k2 >= 1')\n"
        "    out, start = [], 0\n    while start < T:\n        stop = start + k1 if start + k1 < T else T\n"
        "        w = start + k1 - k2\n        if w < 0:\n            w = 0\n        if w > stop:\n            w = stop\n"
        "        out.append([w, start, stop])\n        start += k1\n    return out\n",
    ),
    M(
        A,
        "k1k2: the window rerun from its frozen state, the schedule inline",
        "tbptt_k1_k2_grads",
        {},
        code="def tbptt_k1_k2_grads(params, xs, h0, targets, k1, k2):\n"
        "    p = params\n    T = xs.shape[0]\n    hs = rnn_forward(xs, h0, p['W_xh'], p['W_hh'], p['b_h'])\n"
        "    updates = []\n    for start in range(0, T, k1):\n        stop = min(T, start + k1)\n"
        "        window = min(stop, max(0, start + k1 - k2))\n"
        "        h_in = h0 if window == 0 else hs[window - 1].copy()\n"
        "        if window < stop:\n            hw = rnn_forward(xs[window:stop], h_in, p['W_xh'], p['W_hh'], p['b_h'])\n"
        "        else:\n            hw = np.zeros((0,) + h0.shape)\n"
        "        _, d, gW_hy, gb_y = output_backward(hs[start:stop], p['W_hy'], p['b_y'], targets[start:stop])\n"
        "        inside = d[max(window - start, 0):]\n"
        "        dhw = np.concatenate([np.zeros((len(hw) - len(inside),) + h0.shape), inside])\n"
        "        _, _, gW_xh, gW_hh, gb_h = rnn_backward(dhw, xs[window:stop], h_in, hw, p['W_xh'], p['W_hh'])\n"
        "        updates.append([stop, dict(W_xh=gW_xh, W_hh=gW_hh, b_h=gb_h, W_hy=gW_hy, b_y=gb_y)])\n"
        "    return sequence_loss(hs, p['W_hy'], p['b_y'], targets), updates, hs[T - 1]\n",
    ),
    M(
        A,
        "loop: detach after the forward pass, zero_() and add_, log_softmax loss",
        "stateful_tbptt",
        {},
        code="def stateful_tbptt(rnn, W_hy, b_y, xs, h0, targets, k, lr):\n"
        "    T, B = targets.shape\n    h = h0.unsqueeze(0)\n    out = []\n    ps = list(rnn.parameters()) + [W_hy, b_y]\n"
        "    for window, start, stop in tbptt_schedule(T, k, k):\n"
        "        for q in ps:\n            if q.grad is not None:\n                q.grad.zero_()\n"
        "        hs, h_new = rnn(xs[start:stop], h)\n        h = h_new.detach()\n"
        "        logp = torch.log_softmax(hs @ W_hy.T + b_y, dim=-1)\n"
        "        loss = -logp.gather(-1, targets[start:stop].unsqueeze(-1)).sum() / B\n"
        "        loss.backward()\n        with torch.no_grad():\n            for q in ps:\n                q.add_(q.grad, alpha=-lr)\n"
        "        out.append(float(loss))\n    return out, h.squeeze(0)\n",
    ),
    M(
        A,
        "loop: torch.autograd.grad, .grad left alone, losses as a tensor",
        "stateful_tbptt",
        {},
        code="def stateful_tbptt(rnn, W_hy, b_y, xs, h0, targets, k, lr):\n"
        "    ps = [*rnn.parameters(), W_hy, b_y]\n    h = h0.detach().clone()[None]\n    losses = []\n"
        "    for s in range(0, len(xs), k):\n        hs, h = rnn(xs[s:s + k], h.detach())\n"
        "        z = torch.einsum('tbh,vh->tbv', hs, W_hy) + b_y\n"
        "        loss = F.cross_entropy(z.reshape(-1, z.shape[-1]), targets[s:s + k].reshape(-1), reduction='mean') * hs.shape[0]\n"
        "        gs = torch.autograd.grad(loss, ps)\n        with torch.no_grad():\n"
        "            for q, g in zip(ps, gs):\n                q.sub_(lr * g)\n        losses.append(loss.detach())\n"
        "    return torch.stack(losses), h[0].detach()\n",
    ),
    M(
        A,
        "loop: its own torch.optim.SGD, the mean loss times the chunk's steps",
        "stateful_tbptt",
        {},
        code="def stateful_tbptt(rnn, W_hy, b_y, xs, h0, targets, k, lr):\n"
        "    opt = torch.optim.SGD(list(rnn.parameters()) + [W_hy, b_y], lr=lr)\n"
        "    state, losses = h0.unsqueeze(0), []\n"
        "    for start in range(0, xs.shape[0], k):\n"
        "        stop = min(start + k, xs.shape[0])\n"
        "        state = state.detach()\n"
        "        outputs, state = rnn(xs[start:stop], state)\n"
        "        logits = outputs @ W_hy.t() + b_y\n"
        "        loss = (stop - start) * F.cross_entropy(logits.reshape(-1, W_hy.shape[0]), targets[start:stop].reshape(-1))\n"
        "        opt.zero_grad()\n        loss.backward()\n        opt.step()\n"
        "        losses.append(loss.item())\n"
        "    return losses, state.detach()[0]\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def _params(rng, D, H, V):
    return {
        "W_xh": rng.standard_normal((H, D)) / np.sqrt(D),
        "W_hh": 1.3 * rng.standard_normal((H, H)) / np.sqrt(H),
        "b_h": rng.standard_normal(H),
        "W_hy": rng.standard_normal((V, H)),
        "b_y": rng.standard_normal(V),
    }


def windows_by_definition(T, k1, k2):
    """Williams & Peng's windows from the chapter's words, one time step at a time (1-based
    times, as the chapter counts): an update after each k1-th step and at T, reaching back to
    k2 states before the nominal update time, never before h_1 or after the update."""
    out, last = [], 0
    for now in range(1, T + 1):
        if now % k1 == 0 or now == T:
            nominal = last + k1
            first_state = min(max(nominal - k2 + 1, 1), now + 1)  # h_{first_state}, ..., h_now
            out.append((first_state - 1, last, now))
            last = now
    return out


def test_schedule_reference(ref):
    sched = ref(A)["tbptt_schedule"]
    assert sched(12, 3, 5) == [(0, 0, 3), (1, 3, 6), (4, 6, 9), (7, 9, 12)]
    assert sched(10, 4, 6) == [(0, 0, 4), (2, 4, 8), (6, 8, 10)]
    for T in range(1, 15):
        for k1 in range(1, 7):
            for k2 in range(1, 9):
                assert sched(T, k1, k2) == windows_by_definition(T, k1, k2), (T, k1, k2)
    for k1, k2 in [(0, 1), (1, 0), (-2, 3)]:
        with pytest.raises(ValueError):
            sched(5, k1, k2)


def fd_update(params, xs, h0, targets, window, start, stop, eps=1e-6):
    """Central differences of the chunk's losses with the state before the window frozen."""
    B = xs.shape[1]
    hs, h = [], h0
    for x in xs:  # the forward pass, to freeze the state before the window
        h = np.tanh(x @ params["W_xh"].T + h @ params["W_hh"].T + params["b_h"])
        hs.append(h)
    frozen = h0 if window == 0 else hs[window - 1]

    def loss(p):
        h, inside = frozen, {}
        for j in range(window, stop):  # the window, rerun from its frozen first state
            h = np.tanh(xs[j] @ p["W_xh"].T + h @ p["W_hh"].T + p["b_h"])
            inside[j] = h
        total = 0.0
        for j in range(start, stop):  # the chunk's losses; states before the window are constants
            z = inside.get(j, hs[j]) @ p["W_hy"].T + p["b_y"]
            z = z - z.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            total -= logp[np.arange(B), targets[j]].sum() / B
        return total

    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            p_plus, p_minus = copy.deepcopy(params), copy.deepcopy(params)
            p_plus[name][i] += eps
            p_minus[name][i] -= eps
            g[i] = (loss(p_plus) - loss(p_minus)) / (2 * eps)
        grads[name] = g
    return grads


@pytest.mark.parametrize("T, k1, k2", [(9, 2, 5), (8, 3, 2), (7, 7, 9)])
def test_k1_k2_reference_against_finite_differences(ref, T, k1, k2):
    ns = ref(A)
    rng = np.random.default_rng(T * 10 + k1)
    B, D, H, V = 2, 3, 4, 5
    params = _params(rng, D, H, V)
    xs, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((B, H))
    targets = rng.integers(0, V, (T, B))
    kept = copy.deepcopy(params)
    loss, updates, h_last = ns["tbptt_k1_k2_grads"](params, xs, h0, targets, k1, k2)
    assert all(np.array_equal(params[n], kept[n]) for n in params)
    sched = ns["tbptt_schedule"](T, k1, k2)
    assert [u[0] for u in updates] == [e for _, _, e in sched]
    for (w, s, e), (_, g) in zip(sched, updates, strict=True):
        want = fd_update(params, xs, h0, targets, w, s, e)
        for n in params:
            assert np.allclose(g[n], want[n], rtol=1e-5, atol=1e-7), (w, s, e, n)
    rnn = torch_rnn(params["W_xh"], params["W_hh"], params["b_h"])
    with torch.no_grad():
        hs = rnn(t(xs), t(h0)[None])[0]
        z = (hs @ t(params["W_hy"]).T + t(params["b_y"])).reshape(-1, V)
        want_loss = (
            F.cross_entropy(z, torch.tensor(targets).reshape(-1), reduction="sum").item() / B
        )
    assert abs(loss - want_loss) < TOL * want_loss
    assert max_rel_error(h_last, hs[-1].numpy()) < TOL


def test_k1_k2_reference_special_cases(ref):
    """k1 = k2 = k: the updates are assignment 4's chunks; k1 = T, k2 >= T: full BPTT by autograd."""
    ns = ref(A)
    rng = np.random.default_rng(8)
    T, B, D, H, V = 10, 3, 5, 4, 6
    params = _params(rng, D, H, V)
    xs, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((B, H))
    targets = rng.integers(0, V, (T, B))
    trunc = ref("04_truncated")["truncated_bptt_grads"]
    _, want, _ = trunc(params, xs, h0, targets, 4)
    _, updates, _ = ns["tbptt_k1_k2_grads"](params, xs, h0, targets, 4, 4)
    for n in params:
        assert max_rel_error(sum(g[n] for _, g in updates), want[n]) < TOL
    _, ((t_full, full),), _ = ns["tbptt_k1_k2_grads"](params, xs, h0, targets, T, T + 3)
    assert t_full == T
    leaves = {n: t(v).requires_grad_() for n, v in params.items()}
    rnn = torch_rnn(params["W_xh"], params["W_hh"], params["b_h"])
    hs = rnn(t(xs), t(h0)[None])[0]
    z = (hs @ leaves["W_hy"].T + leaves["b_y"]).reshape(-1, V)
    (F.cross_entropy(z, torch.tensor(targets).reshape(-1), reduction="sum") / B).backward()
    got = rnn_grads(rnn, leaves["W_hy"], leaves["b_y"])
    for n in params:
        assert max_rel_error(full[n], got[n]) < TOL


def test_stateful_reference_against_torch_optim(ref):
    """The reference loop against one written with torch.optim.SGD and nn.Linear: same losses,
    state and weights; the inputs untouched; a stale .grad does not leak in."""
    ns = ref(A)
    torch.manual_seed(3)
    T, B, D, H, V, k, lr = 11, 3, 4, 5, 6, 3, 0.4
    rnn = torch.nn.RNN(D, H, dtype=torch.float64)
    readout = torch.nn.Linear(H, V, dtype=torch.float64)
    xs, h0 = torch.randn(T, B, D, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    targets = torch.randint(0, V, (T, B))
    model, W_hy, b_y = (
        copy.deepcopy(rnn),
        readout.weight.detach().clone(),
        readout.bias.detach().clone(),
    )
    W_hy.requires_grad_()
    b_y.requires_grad_()
    for p in [*model.parameters(), W_hy, b_y]:
        p.grad = torch.randn_like(p)  # stale
    before = (xs.clone(), h0.clone(), targets.clone())
    losses, h_last = ns["stateful_tbptt"](model, W_hy, b_y, xs, h0, targets, k, lr)
    assert all(torch.equal(a, b) for a, b in zip(before, (xs, h0, targets), strict=True))
    opt = torch.optim.SGD([*rnn.parameters(), *readout.parameters()], lr=lr)
    h, want = h0[None], []
    for s in range(0, T, k):
        out, h = rnn(xs[s : s + k], h.detach())
        loss = (
            F.cross_entropy(
                readout(out).flatten(0, 1), targets[s : s + k].flatten(), reduction="sum"
            )
            / B
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        want.append(loss.item())
    assert np.allclose(losses, want, rtol=1e-12) and len(losses) == 4
    assert torch.allclose(h_last, h[0].detach(), rtol=1e-12)
    for a, b in zip(
        [*model.parameters(), W_hy, b_y], [*rnn.parameters(), *readout.parameters()], strict=True
    ):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
