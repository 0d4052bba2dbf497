"""Gradient checkpointing over time: BPTT in O(sqrt(T)) memory for one extra forward pass.

Full BPTT keeps every state ``h_1 .. h_T`` for the backward pass. Checkpointed
BPTT keeps only every ``segment``-th state (the *checkpoints*) during the
forward pass; the backward pass walks the segments from last to first, reruns
the forward pass inside each segment from its checkpoint, and backpropagates
through the recomputed states. The recomputation repeats the same floating-point
operations on the same inputs, so it reproduces the states exactly, and the
gradient is full BPTT's, not an approximation (only the order of the sums over
time differs).

With ``segment = k``, the memory for states is ``T/k`` checkpoints plus one
segment of ``k`` states: minimal at ``k ~ sqrt(T)`` (Chen et al., 2016).
"""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from bptt.backward import output_backward, rnn_backward
from bptt.checks import check_array, check_positive_int, check_targets
from bptt.rnn import check_params, rnn_forward
from bptt.truncated import GRAD_KEYS, tbptt_chunks


def default_segment(T: int) -> int:
    """The segment length that minimises stored states, ``ceil(sqrt(T))``."""
    return math.isqrt(check_positive_int("T", T) - 1) + 1


def checkpoint_schedule(T: int, segment: int) -> list[tuple[int, int, int]]:
    """The backward pass's plan: ``(i, start, stop)`` for each segment, last segment first.

    Segment ``i`` covers the 0-based steps ``start .. stop - 1``, i.e. the
    states ``h_{start+1} .. h_stop`` in the 1-based notation of the book. Its
    checkpoint is ``h_start`` (``h_0`` for the first segment), stored by the
    forward pass; the backward pass recomputes ``h_{start+1} .. h_stop`` from it,
    then back-propagates through them. ``checkpointed_grads`` follows this plan,
    and the book's diagram is drawn from it.
    ``checkpoint_schedule(7, 3) == [(2, 6, 7), (1, 3, 6), (0, 0, 3)]``.
    """
    chunks = tbptt_chunks(T, segment)
    return [(i, *chunks[i]) for i in reversed(range(len(chunks)))]


def checkpoint_states(xs, h0, W_xh, W_hh, b_h, segment: int):
    """Forward pass that keeps only the state entering each segment.

    xs: (T, B, D), h0: (B, H) -> (n_segments, B, H): ``out[i]`` is the state
    before step ``i * segment`` (``out[0]`` is ``h0``). Memory: one segment's
    states at a time, plus the checkpoints.
    """
    dims: dict[str, int] = {}
    xs = check_array("xs", xs, "T B D", dims)
    h = check_array("h0", h0, "B H", dims)
    segment = check_positive_int("segment", segment)
    chunks = tbptt_chunks(dims["T"], segment)
    saved = np.empty((len(chunks), dims["B"], dims["H"]))
    for i, (start, stop) in enumerate(chunks):
        saved[i] = h
        # Copy the last state, so that the segment's other states can be freed.
        h = rnn_forward(xs[start:stop], h, W_xh, W_hh, b_h)[-1].copy()
    return saved


def checkpointed_grads(params: dict, xs, h0, targets, segment: int | None = None):
    """Full BPTT's loss and gradients, storing states only every ``segment`` steps.

    params: ``W_xh (H, D), W_hh (H, H), b_h (H,), W_hy (V, H), b_y (V,)``;
    xs: (T, B, D); h0: (B, H); targets: (T, B) integer classes;
    segment: steps per segment, default ``ceil(sqrt(T))``.
    Returns ``(loss, grads)`` like ``bptt.backward.loss_and_grads``.
    """
    dims = check_params(params)
    xs = check_array("xs", xs, "T B D", dims)
    h0 = check_array("h0", h0, "B H", dims)
    check_targets("targets", targets, "T B", dims, n_classes=dims["V"])
    segment = default_segment(dims["T"]) if segment is None else segment
    p = params
    saved = checkpoint_states(xs, h0, p["W_xh"], p["W_hh"], p["b_h"], segment)
    grads = {key: np.zeros(np.shape(p[key])) for key in GRAD_KEYS}
    loss, dh_next = 0.0, np.zeros(h0.shape)
    for i, start, stop in checkpoint_schedule(dims["T"], segment):
        x, h_in = xs[start:stop], saved[i]
        hs = rnn_forward(x, h_in, p["W_xh"], p["W_hh"], p["b_h"])  # the recomputation
        seg_loss, dhs, dW_hy, db_y = output_backward(hs, p["W_hy"], p["b_y"], targets[start:stop])
        # The gradient owed by the later segments enters at this segment's last state.
        dhs[-1] += dh_next
        _, dh_next, dW_xh, dW_hh, db_h = rnn_backward(dhs, x, h_in, hs, p["W_xh"], p["W_hh"])
        for key, g in zip(GRAD_KEYS, (dW_xh, dW_hh, db_h, dW_hy, db_y), strict=True):
            grads[key] += g
        loss += seg_loss
    return loss, grads


def _torch_segment_loss(rnn, W_hy, b_y, xs, h, targets):
    """One segment in torch: its summed cross-entropy (over time, / B) and its last state."""
    hs, h_last = rnn(xs, h[None])
    logits = hs @ W_hy.T + b_y
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum") / xs.shape[1]
    return loss, h_last[0]


def torch_checkpointed_loss(
    rnn, W_hy, b_y, xs, h0, targets, segment: int | None = None, use_reentrant: bool = False
):
    """The sequence loss in torch, each segment wrapped in ``torch.utils.checkpoint``.

    rnn: a one-layer, sequence-first ``nn.RNN``; W_hy: (V, H) and b_y: (V,)
    tensors; xs: (T, B, D); h0: (B, H); targets: (T, B) long.
    ``segment=None`` means ``ceil(sqrt(T))``; ``segment >= T`` is plain autograd.
    Autograd then keeps only each segment's input state; ``backward()`` reruns
    a segment's forward pass when it reaches it. ``use_reentrant`` selects
    PyTorch's older implementation (False, the recommended one, by default).
    Returns the loss tensor.
    """
    if xs.ndim != 3 or h0.shape != (xs.shape[1], rnn.hidden_size):
        raise ValueError(
            f"xs must be (T, B, D) and h0 (B, H), got {tuple(xs.shape)}, {tuple(h0.shape)}"
        )
    if targets.shape != xs.shape[:2]:
        raise ValueError(
            f"targets must have shape (T, B) = {tuple(xs.shape[:2])}, got {tuple(targets.shape)}"
        )
    T = xs.shape[0]
    segment = default_segment(T) if segment is None else check_positive_int("segment", segment)
    if segment >= T:
        return _torch_segment_loss(rnn, W_hy, b_y, xs, h0, targets)[0]
    loss, h = 0.0, h0
    for start, stop in tbptt_chunks(T, segment):
        # use_reentrant=False is PyTorch's recommendation: it also handles
        # segments none of whose tensor inputs require grad (the first one here).
        seg_loss, h = checkpoint(
            _torch_segment_loss,
            rnn,
            W_hy,
            b_y,
            xs[start:stop],
            h,
            targets[start:stop],
            use_reentrant=use_reentrant,
        )
        loss = loss + seg_loss
    return loss
