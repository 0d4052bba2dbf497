"""Real-time recurrent learning (Williams & Zipser, 1989): forward-mode gradients of a tanh RNN.

The recurrent parameters are gathered, in this order, in one vector
``theta = (W_xh.ravel(), W_hh.ravel(), b_h)`` of ``n = H*D + H*H + H`` numbers.
RTRL carries, alongside each state, its *sensitivity* ``P_t = dh_t/dtheta``
(H x n per sequence) and updates it with the state:

    a_t = x_t W_xh^T + h_{t-1} W_hh^T + b_h,   h_t = tanh(a_t)
    P_t = diag(1 - h_t**2) (d+a_t/dtheta + W_hh P_{t-1}),   P_0 = 0  (h_0 does not depend on theta)

where ``d+a_t/dtheta`` is the immediate derivative, with ``h_{t-1}`` held
fixed: row k is ``x_t`` in the slot of ``W_xh[k, :]``, ``h_{t-1}`` in the slot
of ``W_hh[k, :]`` and 1 in the slot of ``b_h[k]``. The gradient of the loss at
step t is then available at step t, ``dL_t/dtheta = P_t^T dL_t/dh_t``: no past
state has to be stored, at the price of an H x H times H x n product per step.
Batched arrays carry the batch first: sensitivities are ``(B, H, n)``.
"""

from __future__ import annotations

import numpy as np

from bptt.backward import output_backward
from bptt.checks import check_array, check_targets
from bptt.rnn import check_params

RECURRENT_KEYS = ("W_xh", "W_hh", "b_h")


def n_recurrent(D: int, H: int) -> int:
    """Number of recurrent parameters ``H*D + H*H + H``: the columns of a sensitivity."""
    return H * D + H * H + H


def flatten_recurrent(W_xh, W_hh, b_h) -> np.ndarray:
    """``theta = (W_xh.ravel(), W_hh.ravel(), b_h)``: W_xh (H, D), W_hh (H, H), b_h (H,) -> (n,)."""
    dims: dict[str, int] = {}
    arrays = [
        check_array("W_xh", W_xh, "H D", dims),
        check_array("W_hh", W_hh, "H H", dims),
        check_array("b_h", b_h, "H", dims),
    ]
    return np.concatenate([a.ravel() for a in arrays]).astype(float)


def split_recurrent(theta, D: int, H: int) -> dict[str, np.ndarray]:
    """Inverse of ``flatten_recurrent`` on the last axis: (..., n) -> {W_xh (..., H, D), ...}.

    Returns views of ``theta``.
    """
    theta = np.asarray(theta)
    n = n_recurrent(D, H)
    if theta.ndim < 1 or theta.shape[-1] != n:
        raise ValueError(
            f"theta must have shape (..., n) with n = H*D + H*H + H = {n}, got shape {theta.shape}"
        )
    lead = theta.shape[:-1]
    return {
        "W_xh": theta[..., : H * D].reshape(*lead, H, D),
        "W_hh": theta[..., H * D : H * D + H * H].reshape(*lead, H, H),
        "b_h": theta[..., H * D + H * H :],
    }


def rtrl_step(x, h_prev, P_prev, W_xh, W_hh, b_h):
    """One step of the state and of its sensitivity.

    x: (B, D), h_prev: (B, H), P_prev: (B, H, n) = dh_prev/dtheta, W_xh: (H, D),
    W_hh: (H, H), b_h: (H,). Returns ``h (B, H)`` and ``P (B, H, n)`` = dh/dtheta.
    """
    dims: dict[str, int] = {}
    W_xh = check_array("W_xh", W_xh, "H D", dims)
    W_hh = check_array("W_hh", W_hh, "H H", dims)
    check_array("b_h", b_h, "H", dims)
    x = check_array("x", x, "B D", dims)
    h_prev = check_array("h_prev", h_prev, "B H", dims)
    dims["n"] = n_recurrent(dims["D"], dims["H"])
    P_prev = check_array("P_prev", P_prev, "B H n", dims)
    h = np.tanh(x @ W_xh.T + h_prev @ W_hh.T + b_h)
    # W_hh P_{t-1}: the dependence on theta carried in by h_{t-1}. This
    # (H, H) @ (H, n) product per sequence is RTRL's O(H^4) per step.
    P = np.matmul(W_hh, P_prev)
    # The immediate term is block-diagonal: row k only touches the parameters of unit k.
    H, D = dims["H"], dims["D"]
    block = split_recurrent(P, D, H)
    units = np.arange(H)
    block["W_xh"][:, units, units, :] += x[:, None, :]
    block["W_hh"][:, units, units, :] += h_prev[:, None, :]
    block["b_h"][:, units, units] += 1.0
    P *= (1.0 - h**2)[:, :, None]  # diag(1 - h_t^2): through the tanh
    return h, P


def check_sequence_inputs(params, xs, h0, targets) -> dict[str, int]:
    """Check a model and a labelled batch of sequences; return the sizes ``T, B, D, H, V``."""
    dims = check_params(params)
    check_array("xs", xs, "T B D", dims)
    check_array("h0", h0, "B H", dims)
    check_targets("targets", targets, "T B", dims, n_classes=dims["V"])
    return dims


def rtrl_online(params: dict, xs, h0, targets):
    """Run forward in time, yielding each step's loss and its gradient as soon as it is known.

    params: ``W_xh (H, D), W_hh (H, H), b_h (H,), W_hy (V, H), b_y (V,)``;
    xs: (T, B, D); h0: (B, H); targets: (T, B) integer classes.
    Yields ``(t, loss_t, grads_t, h_t)`` for t = 0..T-1: the loss of step t
    (cross-entropy averaged over the batch), its gradient w.r.t. every
    parameter (keys of ``params``), and the state. Only the current state and
    sensitivity are kept, whatever T.
    """
    dims = check_sequence_inputs(params, xs, h0, targets)
    p = params
    h = np.asarray(h0, dtype=float)
    P = np.zeros((dims["B"], dims["H"], n_recurrent(dims["D"], dims["H"])))
    for t in range(dims["T"]):
        h, P = rtrl_step(xs[t], h, P, p["W_xh"], p["W_hh"], p["b_h"])
        loss_t, dh, dW_hy, db_y = output_backward(h[None], p["W_hy"], p["b_y"], targets[t : t + 1])
        # dL_t/dtheta = P_t^T dL_t/dh_t, summed over the batch: sum_bk dh[b, k] P_t[b, k, :].
        dtheta = np.einsum("bk,bkn->n", dh[0], P)
        grads = split_recurrent(dtheta, dims["D"], dims["H"])
        grads.update(W_hy=dW_hy, b_y=db_y)
        yield t, loss_t, grads, h


def rtrl_grads(params: dict, xs, h0, targets):
    """Loss and gradients by RTRL: ``(loss, grads)`` exactly like ``bptt.backward.loss_and_grads``.

    Arguments as in ``rtrl_online``; the per-step gradients are summed.
    """
    grads = {key: np.zeros(np.shape(value)) for key, value in params.items()}
    loss = 0.0
    for _, loss_t, grads_t, _ in rtrl_online(params, xs, h0, targets):
        loss += loss_t
        for key, g in grads_t.items():
            grads[key] += g
    return loss, grads


def rtrl_step_flops(B: int, D: int, H: int) -> int:
    """Operations of RTRL's dominant product per step: ``W_hh P_{t-1}``, (H, H) @ (H, n), B times.

    A multiply-add counts 2: ``2 B H^2 n`` with ``n = H(H + D + 1)``, i.e. O(H^4). Compare with
    ``bptt.cost.flops_per_step`` for a step of BPTT, O(H^2).
    """
    return 2 * B * H * H * n_recurrent(D, H)


def per_step_seconds(H_list, T: int = 64, B: int = 2, D: int = 8, V: int = 8, repeats: int = 2):
    """CPU seconds per time step of BPTT and of RTRL, one row ``(H, bptt, rtrl)`` per ``H``.

    BPTT (``loss_and_grads``) runs ``T`` steps; RTRL runs ``T (8/H)^2`` steps, at least 2 and
    at most ``T``, so that large ``H`` stays quick. Both with one BLAS thread,
    ``bptt.cost.best_times`` on ``time.process_time``.
    """
    import time

    from bptt.backward import loss_and_grads
    from bptt.cost import best_times, blas_threads, make_problem

    rows = []
    with blas_threads(1):
        for H in H_list:
            problem = make_problem(T, B, D, H, V)
            Tr = int(np.clip(T * (8 / H) ** 2, 2, T))  # fewer RTRL steps for large H
            short = (problem[0], problem[1][:Tr], problem[2], problem[3][:Tr])
            fns = {
                "bptt": lambda p=problem: loss_and_grads(*p),
                "rtrl": lambda s=short: rtrl_grads(*s),
            }
            t = best_times(fns, repeats=repeats, min_seconds=0.01, clock=time.process_time)
            rows.append((H, t["bptt"] / T, t["rtrl"] / Tr))
    return np.array(rows, dtype=float)
