"""How gradients flow back through time: Jacobian products and per-step gradient norms.

The state Jacobian of step t of ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)`` is

    J_t = dh_t/dh_{t-1} = diag(1 - h_t**2) W_hh            (H, H), one per batch row,

and the Jacobian across a lag of s = T - t steps is their product, latest step on the left:

    dh_T/dh_t = J_T J_{T-1} ... J_{t+1}.

Indexing follows ``bptt.rnn.rnn_forward``: ``hs[t - 1]`` is h_t, and h_0 is the given
initial state, so ``jacobians[t - 1]`` is J_t.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bptt.checks import check_array


def tanh_jacobians(hs, W_hh) -> np.ndarray:
    """Per-step state Jacobians of a tanh RNN.

    hs: (T, B, H) states from ``rnn_forward``; W_hh: (H, H).
    Returns (T, B, H, H) with ``out[t - 1, b] = diag(1 - hs[t - 1, b]**2) @ W_hh``,
    the Jacobian J_t = dh_t/dh_{t-1} of batch row b.
    """
    dims: dict[str, int] = {}
    hs = check_array("hs", hs, "T B H", dims)
    W_hh = check_array("W_hh", W_hh, "H H", dims)
    # diag(d) @ W scales row i of W by d_i: broadcast instead of building diag.
    return (1.0 - hs**2)[..., :, None] * W_hh


def jacobian_products(jacobians) -> np.ndarray:
    """All the long-range Jacobians dh_T/dh_t, t = 0..T, from the per-step ones.

    jacobians: (T, B, H, H), ``jacobians[t - 1]`` = J_t = dh_t/dh_{t-1}.
    Returns (T + 1, B, H, H) with ``out[t]`` = dh_T/dh_t = J_T ... J_{t+1}
    and ``out[T]`` the identity. Built from the end backwards, one matrix
    product per step, as backpropagation itself would.
    """
    dims: dict[str, int] = {}
    jacobians = check_array("jacobians", jacobians, "T B H G", dims)
    if dims["H"] != dims["G"]:
        raise ValueError(f"jacobians must have shape (T, B, H, H), got {jacobians.shape}")
    T, B, H = dims["T"], dims["B"], dims["H"]
    out = np.empty((T + 1, B, H, H), dtype=np.result_type(jacobians, 0.0))
    out[T] = np.eye(H)
    for t in reversed(range(T)):
        out[t] = out[t + 1] @ jacobians[t]  # dh_T/dh_t = dh_T/dh_{t+1} J_{t+1}
    return out


def spectral_norms(matrices) -> np.ndarray:
    """Largest singular value of each matrix: (..., M, N) -> (...)."""
    matrices = np.asarray(matrices, dtype=float)
    if matrices.ndim < 2:
        raise ValueError(f"matrices must have shape (..., M, N), got shape {matrices.shape}")
    return np.linalg.norm(matrices, ord=2, axis=(-2, -1))


def scale_to_spectral_norm(W, sigma: float) -> np.ndarray:
    """``W`` rescaled so that its largest singular value is ``sigma`` (>= 0). W: (M, N)."""
    W = check_array("W", W, "M N", {})
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    norm = spectral_norms(W)
    if norm == 0:
        raise ValueError("W is zero: it cannot be rescaled to a spectral norm")
    return W * (sigma / norm)


def hidden_grad_norms(
    rnn: torch.nn.RNN,
    xs: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    h0: torch.Tensor | None = None,
) -> np.ndarray:
    """One number per time step: the norm of the *total* gradient dL/dh_t, t = 1..T.

    rnn: a one-layer, sequence-first ``torch.nn.RNN``; xs: (T, B, D);
    loss_fn: maps the states (T, B, H) to a scalar loss; h0: (B, H) or None
    (zeros). Returns (T,) array, entry t-1 the Frobenius norm over the batch
    of dL/dh_t.

    ``nn.RNN`` run on the whole sequence returns a *stack* of its states, whose
    gradient holds only each step's direct share. Run one step at a time, h_t is
    one tensor on both its paths (to its loss and to h_{t+1}), so its gradient is
    the total one. ``autograd.grad`` leaves the parameters' ``.grad`` untouched.
    """
    if not isinstance(rnn, torch.nn.RNN) or rnn.num_layers != 1 or rnn.batch_first:
        raise ValueError("rnn must be a one-layer, sequence-first torch.nn.RNN")
    dims = {"D": rnn.input_size, "H": rnn.hidden_size}
    check_array("xs", xs.detach(), "T B D", dims)
    if h0 is None:
        h0 = torch.zeros(dims["B"], dims["H"], dtype=xs.dtype)
    check_array("h0", h0.detach(), "B H", dims)
    h = h0[None]
    states = []
    for t in range(dims["T"]):
        h = rnn(xs[t : t + 1], h)[0]  # (1, B, H): output of one step = the new state
        states.append(h)
    loss = loss_fn(torch.cat(states))
    if loss.ndim != 0:
        raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, states, allow_unused=True)
    return np.array([0.0 if g is None else g.norm().item() for g in grads])
