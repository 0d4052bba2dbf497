"""The forward pass of a tanh RNN with a softmax output, batched, in numpy.

Notation (the book's appendix "Notation"): inputs ``xs`` are ``(T, B, D)``,
states ``(B, H)``, weights are stored ``(out, in)`` as PyTorch stores them, so
a batch of row vectors is multiplied by the transpose:

    h_t = tanh(x_t W_xh^T + h_{t-1} W_hh^T + b_h)
    z_t = h_t W_hy^T + b_y,   y_t = softmax(z_t)

The math counts steps t = 1..T, the code from 0: ``xs[t-1]`` is x_t and
``hs[t-1]`` is h_t, the state after reading ``xs[t-1]``; h_0 is ``h0``.
"""

from __future__ import annotations

import numpy as np

from bptt.checks import check_array, check_targets

PARAM_SHAPES = {
    "W_xh": "H D",
    "W_hh": "H H",
    "b_h": "H",
    "W_hy": "V H",
    "b_y": "V",
}


def init_params(D: int, H: int, V: int, rng: np.random.Generator, scale: float = 1.0) -> dict:
    """Random float64 parameters ``W_xh (H, D), W_hh (H, H), b_h (H,), W_hy (V, H), b_y (V,)``.

    Weights and biases are drawn uniformly from ``±scale/sqrt(H)``, PyTorch's ``nn.RNN``
    default when ``scale == 1``. ``scale`` multiplies every one of them; to change only the
    recurrence, scale ``W_hh`` afterwards.
    """
    bound = scale / np.sqrt(H)

    def uniform(*shape):
        return rng.uniform(-bound, bound, size=shape)

    return {
        "W_xh": uniform(H, D),
        "W_hh": uniform(H, H),
        "b_h": uniform(H),
        "W_hy": uniform(V, H),
        "b_y": uniform(V),
    }


def check_params(params: dict, dims: dict[str, int] | None = None) -> dict[str, int]:
    """Check a parameter dict's keys and shapes; return the bound sizes ``D, H, V``."""
    dims = {} if dims is None else dims
    missing = set(PARAM_SHAPES) - set(params)
    if missing:
        raise ValueError(f"params is missing {sorted(missing)}; expected keys {list(PARAM_SHAPES)}")
    for name, spec in PARAM_SHAPES.items():
        check_array(name, params[name], spec, dims)
    return dims


def rnn_step_forward(x, h_prev, W_xh, W_hh, b_h):
    """One step ``h = tanh(x W_xh^T + h_prev W_hh^T + b_h)``.

    x: (B, D), h_prev: (B, H), W_xh: (H, D), W_hh: (H, H), b_h: (H,) -> h: (B, H).
    """
    dims: dict[str, int] = {}
    # Weights first: they define H, so a wrong state is the one blamed.
    x = check_array("x", x, "B D", dims)
    W_xh = check_array("W_xh", W_xh, "H D", dims)
    W_hh = check_array("W_hh", W_hh, "H H", dims)
    b_h = check_array("b_h", b_h, "H", dims)
    h_prev = check_array("h_prev", h_prev, "B H", dims)
    return np.tanh(x @ W_xh.T + h_prev @ W_hh.T + b_h)


def rnn_forward(xs, h0, W_xh, W_hh, b_h):
    """Run the RNN over a sequence.

    xs: (T, B, D), h0: (B, H) -> hs: (T, B, H), where ``hs[t]`` is the state
    after reading ``xs[t]``: h_{t+1} in the book's 1-based notation, so
    ``hs[t-1]`` is h_t. ``h0`` itself is not included.
    """
    dims: dict[str, int] = {}
    xs = check_array("xs", xs, "T B D", dims)
    check_array("W_xh", W_xh, "H D", dims)
    check_array("W_hh", W_hh, "H H", dims)
    check_array("b_h", b_h, "H", dims)
    h = check_array("h0", h0, "B H", dims)
    hs = np.empty((dims["T"], dims["B"], dims["H"]), dtype=np.result_type(xs, h, W_xh, 0.0))
    for t in range(len(xs)):
        h = np.tanh(xs[t] @ W_xh.T + h @ W_hh.T + b_h)
        hs[t] = h
    return hs


def log_softmax(z):
    """Row-wise log-softmax over the last axis, stable for large logits.

    Subtracting the row maximum leaves the result unchanged (softmax is
    shift-invariant) and keeps ``exp`` from overflowing.
    """
    z = np.asarray(z, dtype=float)
    if z.ndim == 0:
        raise ValueError("z must have at least one axis (the classes), got a scalar")
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z):
    """Row-wise softmax over the last axis, stable for large logits (any leading shape)."""
    return np.exp(log_softmax(z))


def output_forward(hs, W_hy, b_y):
    """Logits ``z = hs W_hy^T + b_y``: hs (..., B, H), W_hy (V, H), b_y (V,) -> (..., B, V)."""
    hs = np.asarray(hs)
    dims: dict[str, int] = {}
    if hs.ndim not in (2, 3):
        raise ValueError(f"hs must have shape (T, B, H) or (B, H), got shape {hs.shape}")
    check_array("hs", hs[None] if hs.ndim == 2 else hs, "T B H", dims)
    check_array("W_hy", W_hy, "V H", dims)
    check_array("b_y", b_y, "V", dims)
    return hs @ np.asarray(W_hy).T + b_y


def sequence_loss(hs, W_hy, b_y, targets) -> float:
    """Cross-entropy summed over time and averaged over the batch.

    hs: (T, B, H), W_hy: (V, H), b_y: (V,), targets: (T, B) integer classes.
    ``L = (1/B) sum_b sum_t -log softmax(z_t)[b, targets[t, b]]``.
    """
    dims: dict[str, int] = {}
    hs = check_array("hs", hs, "T B H", dims)
    check_array("W_hy", W_hy, "V H", dims)
    check_targets("targets", targets, "T B", dims, n_classes=dims["V"])
    logp = log_softmax(output_forward(hs, W_hy, b_y))
    picked = np.take_along_axis(logp, np.asarray(targets)[..., None], axis=-1)
    return float(-picked.sum() / dims["B"])


def last_step_loss(h_T, W_hy, b_y, target) -> float:
    """Sequence classification: cross-entropy of the last state only, averaged over the batch.

    h_T: (B, H), W_hy: (V, H), b_y: (V,), target: (B,) integer classes.
    """
    dims: dict[str, int] = {}
    h_T = check_array("h_T", h_T, "B H", dims)
    check_array("W_hy", W_hy, "V H", dims)
    check_targets("target", target, "B", dims, n_classes=dims["V"])
    return sequence_loss(h_T[None], W_hy, b_y, np.asarray(target)[None])
