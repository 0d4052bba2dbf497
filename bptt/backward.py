"""Backpropagation through time by hand, batched, in numpy.

The backward pass of ``bptt.rnn``'s forward pass. Shapes follow the book's
notation: inputs ``xs`` are ``(T, B, D)``, states ``(B, H)``, weights
``(out, in)``; the gradient of a thing has the thing's shape.

    h_t = tanh(a_t),  a_t = x_t W_xh^T + h_{t-1} W_hh^T + b_h     (forward)
    da_t = dh_t * (1 - h_t**2)                                   (through tanh)
    dh_{t-1} = da_t W_hh,   dW_hh += da_t^T h_{t-1}              (one step back)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bptt.checks import check_array, check_targets
from bptt.rnn import check_params, log_softmax, output_forward, rnn_forward


def rnn_step_backward(dh, x, h_prev, h, W_xh, W_hh):
    """Backward of one step ``h = tanh(x W_xh^T + h_prev W_hh^T + b_h)``.

    dh: (B, H) gradient of the loss w.r.t. ``h`` (all paths into ``h``);
    x: (B, D); h_prev: (B, H); h: (B, H), the step's output; W_xh: (H, D);
    W_hh: (H, H).
    Returns ``dx (B, D), dh_prev (B, H), dW_xh (H, D), dW_hh (H, H), db_h (H,)``:
    the *immediate* gradients of this step, with ``h_prev`` held fixed.
    """
    dims: dict[str, int] = {}
    dh = check_array("dh", dh, "B H", dims)
    x = check_array("x", x, "B D", dims)
    h_prev = check_array("h_prev", h_prev, "B H", dims)
    h = check_array("h", h, "B H", dims)
    W_xh = check_array("W_xh", W_xh, "H D", dims)
    W_hh = check_array("W_hh", W_hh, "H H", dims)
    # tanh'(a) = 1 - tanh(a)^2, so the saved output is all we need.
    da = dh * (1.0 - h**2)
    dx = da @ W_xh
    dh_prev = da @ W_hh
    dW_xh = da.T @ x  # sums over the batch: the weights are shared by its rows
    dW_hh = da.T @ h_prev
    db_h = da.sum(axis=0)
    return dx, dh_prev, dW_xh, dW_hh, db_h


def rnn_backward(dhs, xs, h0, hs, W_xh, W_hh):
    """Backpropagation through time over a whole sequence.

    dhs: (T, B, H), ``dhs[t]`` the gradient reaching ``hs[t]`` directly from the
    loss at step t (not through later steps); xs: (T, B, D); h0: (B, H);
    hs: (T, B, H) the states from ``rnn_forward``; W_xh: (H, D); W_hh: (H, H).
    Returns ``dxs (T, B, D), dh0 (B, H), dW_xh (H, D), dW_hh (H, H), db_h (H,)``.
    """
    dims: dict[str, int] = {}
    dhs = check_array("dhs", dhs, "T B H", dims)
    xs = check_array("xs", xs, "T B D", dims)
    h0 = check_array("h0", h0, "B H", dims)
    hs = check_array("hs", hs, "T B H", dims)
    W_xh = check_array("W_xh", W_xh, "H D", dims)
    W_hh = check_array("W_hh", W_hh, "H H", dims)
    dxs = np.zeros(xs.shape, dtype=float)
    dW_xh, dW_hh = np.zeros(W_xh.shape), np.zeros(W_hh.shape)
    db_h = np.zeros(dims["H"])
    dh_next = np.zeros(h0.shape)  # no future: nothing flows back into the last state
    for t in reversed(range(dims["T"])):
        h_prev = hs[t - 1] if t > 0 else h0
        # Two paths into h_t: its own loss, and h_{t+1} (already carried back).
        dh = dhs[t] + dh_next
        dxs[t], dh_next, dW_xh_t, dW_hh_t, db_h_t = rnn_step_backward(
            dh, xs[t], h_prev, hs[t], W_xh, W_hh
        )
        # Shared weights: the gradient is the sum of every step's immediate one.
        dW_xh += dW_xh_t
        dW_hh += dW_hh_t
        db_h += db_h_t
    return dxs, dh_next, dW_xh, dW_hh, db_h


def output_backward(hs, W_hy, b_y, targets):
    """Loss of ``bptt.rnn.sequence_loss`` and its gradients.

    hs: (T, B, H), W_hy: (V, H), b_y: (V,), targets: (T, B) integer classes.
    Returns ``loss`` (float: cross-entropy summed over time, averaged over the
    batch), ``dhs (T, B, H)`` (each step's own loss only), ``dW_hy (V, H)`` and
    ``db_y (V,)``.
    """
    dims: dict[str, int] = {}
    hs = check_array("hs", hs, "T B H", dims)
    W_hy = check_array("W_hy", W_hy, "V H", dims)
    check_array("b_y", b_y, "V", dims)
    targets = check_targets("targets", targets, "T B", dims, n_classes=dims["V"])
    logp = log_softmax(output_forward(hs, W_hy, b_y))
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)
    loss = float(-picked.sum() / dims["B"])
    # d(-log softmax(z)[c])/dz = softmax(z) - onehot(c); the 1/B is the batch mean.
    dz = (np.exp(logp) - np.eye(dims["V"])[targets]) / dims["B"]
    dhs = dz @ W_hy
    # sum_t dz_t^T h_t; each product also sums over the batch. (A single
    # (V, T*B) @ (T*B, H) product is slower on small, busy machines: threaded BLAS.)
    dW_hy = sum(dz[t].T @ hs[t] for t in range(dims["T"]))
    db_y = dz.sum(axis=(0, 1))
    return loss, dhs, dW_hy, db_y


def loss_and_grads(params: dict, xs, h0, targets):
    """Forward and backward for the whole model: ``(loss, grads)``.

    params: ``W_xh (H, D), W_hh (H, H), b_h (H,), W_hy (V, H), b_y (V,)``;
    xs: (T, B, D); h0: (B, H); targets: (T, B) integer classes.
    ``grads`` has exactly the keys and shapes of ``params``, so it can be
    clipped and applied as it is. (The gradient w.r.t. ``h0``, not a
    parameter, is left out; ``rnn_backward`` returns it.)
    """
    dims = check_params(params)
    xs = check_array("xs", xs, "T B D", dims)
    h0 = check_array("h0", h0, "B H", dims)
    check_targets("targets", targets, "T B", dims, n_classes=dims["V"])
    p = params
    hs = rnn_forward(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    loss, dhs, dW_hy, db_y = output_backward(hs, p["W_hy"], p["b_y"], targets)
    _, _, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])
    grads = {"W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h, "W_hy": dW_hy, "b_y": db_y}
    return loss, grads


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps=1e-6):
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``, every i.

    ``x`` (a float ndarray of any shape) is perturbed in place, one entry at a
    time, and holds its original values on return, even if ``f`` raises.
    Returns an array of ``x``'s shape. Costs ``2 * x.size`` calls of ``f``.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            "x must be a float numpy array (it is perturbed in place), "
            f"got {type(x).__name__} of dtype {getattr(x, 'dtype', None)}"
        )
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        original = x[i]
        try:
            x[i] = original + eps
            f_plus = float(f(x))
            x[i] = original - eps
            f_minus = float(f(x))
        finally:
            x[i] = original  # restore exactly, whatever f did
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad
