"""Train a character RNN with the hand-written gradients of ``bptt.backward``.

Three small pieces: Adam in a few numpy lines, a clip of the gradient's
global norm (the clipping chapter derives and tests clipping properly), and
the loop that draws random windows of the text and applies both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bptt.backward import loss_and_grads
from bptt.checks import check_positive_int, check_targets
from bptt.clipping import clip_grad_norm
from bptt.rnn import check_params
from bptt.text import batch_windows, one_hot


def adam_init(params: dict) -> dict:
    """Adam's state for ``params``: zero first and second moments, step count 0."""
    check_params(params)
    return {
        "m": {k: np.zeros_like(v, dtype=float) for k, v in params.items()},
        "v": {k: np.zeros_like(v, dtype=float) for k, v in params.items()},
        "t": 0,
    }


def adam_step(
    params: dict,
    grads: dict,
    state: dict,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> None:
    """One Adam update of ``params`` in place (Kingma & Ba, 2015).

    Each entry moves by about ``lr`` in the direction of the sign of its
    running mean gradient, scaled by how consistent that gradient has been.
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if set(grads) != set(params):
        raise ValueError(
            f"grads must have the keys of params {sorted(params)}, got {sorted(grads)}"
        )
    state["t"] += 1
    t = state["t"]
    for k, g in grads.items():
        m, v = state["m"][k], state["v"][k]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g**2
        # Bias correction: m and v start at 0 and would underestimate early on.
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        params[k] -= lr * m_hat / (np.sqrt(v_hat) + eps)


def train_char_rnn(
    params: dict,
    ids,
    *,
    steps: int,
    rng: np.random.Generator,
    T: int = 25,
    B: int = 32,
    lr: float = 3e-3,
    max_norm: float = 25.0,
    callback: Callable[[int, dict], None] | None = None,
):
    """Train a one-hot character RNN on random windows of ``ids`` (Adam, clipping).

    params: ``W_xh (H, V), W_hh, b_h, W_hy (V, H), b_y`` (not modified: a copy
    is trained); ids: (N,) integer character ids in ``[0, V)``. Each step draws
    ``B`` windows of ``T`` characters, starts from ``h = 0`` and takes one
    Adam step on the loss's gradient, clipped to ``max_norm``; then calls
    ``callback(step, params)`` if given (step counts from 1).
    Returns ``(trained params, per-character losses (steps,), gradient norms
    before clipping (steps,))``.
    """
    dims = check_params(params)
    if dims["D"] != dims["V"]:
        raise ValueError(
            f"W_xh must have shape (H, V) for one-hot inputs, got D={dims['D']}, V={dims['V']}"
        )
    ids = check_targets("ids", ids, "N", {}, n_classes=dims["V"])
    steps = check_positive_int("steps", steps)
    T, B = check_positive_int("T", T), check_positive_int("B", B)
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    params = {k: np.array(v, dtype=float) for k, v in params.items()}
    state = adam_init(params)
    h0 = np.zeros((B, dims["H"]))
    losses, norms = np.empty(steps), np.empty(steps)
    for i in range(steps):
        inputs, targets = batch_windows(ids, T, B, rng)
        loss, grads = loss_and_grads(params, one_hot(inputs, dims["V"]), h0, targets)
        norms[i] = clip_grad_norm(list(grads.values()), max_norm)  # in place
        adam_step(params, grads, state, lr)
        losses[i] = loss / T  # the loss sums over time: report nats per character
        if callback is not None:
            callback(i + 1, params)
    return params, losses, norms
