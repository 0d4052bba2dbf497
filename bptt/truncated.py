"""Truncated backpropagation through time: TBPTT(k) and Williams & Peng's TBPTT(k1, k2).

The forward pass always runs over the whole stream, carrying the state; only
the *backward* pass is cut. Time is counted from 1 in the docstrings (``h_0``
is the initial state, ``h_t`` the state after reading ``x_t``) and from 0 in
the arrays: ``hs[i]`` is ``h_{i+1}``, as ``bptt.rnn.rnn_forward`` returns it.

TBPTT(k1, k2): every ``k1`` steps, at time ``t``, the losses of the steps
since the previous update are backpropagated through the states
``h_{t-k2+1}, ..., h_t``; ``h_{t-k2}`` is a constant. ``k1 = k2 = k`` is the
common chunk-and-detach TBPTT(k); ``k1 = T, k2 >= T`` is full BPTT. The
gradients are computed at fixed parameters; a training loop applies each
update before the next chunk is read.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
import torch.nn.functional as F

from bptt.backward import output_backward, rnn_backward
from bptt.checks import check_array, check_positive_int, check_targets
from bptt.rnn import check_params, rnn_forward, sequence_loss

GRAD_KEYS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


def tbptt_chunks(T: int, k: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` index ranges of length ``k`` covering ``range(T)``.

    The last chunk is shorter when ``k`` does not divide ``T``.
    ``tbptt_chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]``.
    """
    T, k = check_positive_int("T", T), check_positive_int("k", k)
    return [(start, min(start + k, T)) for start in range(0, T, k)]


def tbptt_schedule(T: int, k1: int, k2: int) -> list[tuple[int, int, int]]:
    """The updates of TBPTT(k1, k2) on ``T`` steps, as ``(window, start, stop)`` indices.

    One update per chunk ``start:stop`` of ``tbptt_chunks(T, k1)``: its losses are
    backpropagated through ``hs[window:stop]``; the state before ``hs[window]`` is a constant.
    The window starts ``k2`` steps before the chunk's nominal end ``start + k1``, clipped to
    ``[0, stop]``, so a short last chunk keeps the reach a full one would give.
    """
    k1, k2 = check_positive_int("k1", k1), check_positive_int("k2", k2)
    return [
        (min(max(start + k1 - k2, 0), stop), start, stop) for start, stop in tbptt_chunks(T, k1)
    ]


def tbptt_reach(T: int, k1: int, k2: int) -> np.ndarray:
    """``reach[s, j]`` is True when TBPTT(k1, k2) carries loss ``s``'s gradient to ``hs[j]``.

    Shape ``(T, T)``, indices 0-based like ``hs``. Full BPTT is the lower
    triangle ``j <= s``; truncation keeps ``window <= j <= s`` of each update.
    """
    schedule = tbptt_schedule(T, k1, k2)
    reach = np.zeros((T, T), dtype=bool)
    for window, start, stop in schedule:
        for s in range(start, stop):
            reach[s, window : s + 1] = True
    return reach


def _check_inputs(params, xs, h0, targets):
    dims = check_params(params)
    xs = check_array("xs", xs, "T B D", dims)
    h0 = check_array("h0", h0, "B H", dims)
    targets = check_targets("targets", targets, "T B", dims, n_classes=dims["V"])
    return dims, xs, h0, targets


def truncated_bptt_grads(params: dict, xs, h0, targets, k: int):
    """TBPTT(k): chunks of ``k`` steps; the state flows across chunks, the gradient does not.

    Shapes as in ``rnn_forward``; targets (T, B) classes. Returns the whole sequence's loss,
    ``grads`` keyed like ``params`` (summed over chunks) and ``h_last``. ``k >= T``: full BPTT.
    """
    dims, xs, h0, targets = _check_inputs(params, xs, h0, targets)
    k = check_positive_int("k", k)
    p = params
    grads = {key: np.zeros(np.shape(p[key])) for key in GRAD_KEYS}
    loss, h = 0.0, np.asarray(h0, dtype=float)
    for start, stop in tbptt_chunks(dims["T"], k):
        x, y = xs[start:stop], targets[start:stop]
        hs = rnn_forward(x, h, p["W_xh"], p["W_hh"], p["b_h"])  # h carries the past forward
        chunk_loss, dhs, dW_hy, db_y = output_backward(hs, p["W_hy"], p["b_y"], y)
        # rnn_backward also returns dL/dh (the gradient owed to earlier chunks): dropping
        # it is the truncation.
        _, _, dW_xh, dW_hh, db_h = rnn_backward(dhs, x, h, hs, p["W_xh"], p["W_hh"])
        for key, g in zip(GRAD_KEYS, (dW_xh, dW_hh, db_h, dW_hy, db_y), strict=True):
            grads[key] += g
        loss += chunk_loss
        h = hs[-1]
    return loss, grads, h


def tbptt_k1_k2_grads(params: dict, xs, h0, targets, k1: int, k2: int):
    """TBPTT(k1, k2) of Williams & Peng: one gradient per update, all at the same parameters.

    Arguments as in ``truncated_bptt_grads``. At each update time ``t``
    (every ``k1`` steps, and at ``T``) the losses of the steps since the last
    update are backpropagated through ``h_t, ..., h_{t-k2+1}`` only
    (``tbptt_schedule`` has the indices; a short last chunk keeps the
    depth each position has in a full one). Returns ``loss`` (whole sequence), ``updates``, a
    list of ``(t, grads)`` with ``grads`` keyed like ``params``, and ``h_last``.
    """
    dims, xs, h0, targets = _check_inputs(params, xs, h0, targets)
    k1, k2 = check_positive_int("k1", k1), check_positive_int("k2", k2)
    p = params
    hs = rnn_forward(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
    updates = []
    for window, start, stop in tbptt_schedule(dims["T"], k1, k2):
        _, dhs, dW_hy, db_y = output_backward(
            hs[start:stop], p["W_hy"], p["b_y"], targets[start:stop]
        )
        # Losses of steps older than the window (only when k2 < k1) reach W_hy and b_y only.
        dhs_window = np.zeros((stop - window, dims["B"], dims["H"]))
        first = max(start, window)
        dhs_window[first - window :] = dhs[first - start :]
        h_in = h0 if window == 0 else hs[window - 1]  # the constant the window starts from
        if window < stop:
            _, _, dW_xh, dW_hh, db_h = rnn_backward(
                dhs_window, xs[window:stop], h_in, hs[window:stop], p["W_xh"], p["W_hh"]
            )
        else:  # k2 < k1 and a short last chunk: no state of it is in the window
            dW_xh, dW_hh, db_h = (np.zeros(np.shape(p[k])) for k in ("W_xh", "W_hh", "b_h"))
        grads = dict(zip(GRAD_KEYS, (dW_xh, dW_hh, db_h, dW_hy, db_y), strict=True))
        updates.append((stop, grads))
    loss = sequence_loss(hs, p["W_hy"], p["b_y"], targets)
    return loss, updates, hs[-1]


def stateful_batches(ids, B: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut one id stream into B contiguous rows, then into batches of ``k`` steps.

    Row ``j`` holds the ``j``-th slice of the stream, so row ``j`` of batch
    ``i + 1`` continues exactly where row ``j`` of batch ``i`` ended: a state
    carried from one batch to the next belongs to the same text.
    Returns a list of ``(inputs, targets)``, each ``(k, B)`` (the last batch
    may be shorter), with ``targets`` the next id. The stream's tail that does
    not fill all B rows is dropped.
    """
    ids = check_array("ids", ids, "N", {})
    B, k = check_positive_int("B", B), check_positive_int("k", k)
    n = (len(ids) - 1) // B  # steps per row; each row needs one extra id as last target
    if n < 1:
        raise ValueError(f"ids must hold at least B + 1 = {B + 1} ids, got {len(ids)}")
    rows = ids[: B * n + 1]
    starts = np.arange(B) * n
    batches = []
    for start, stop in tbptt_chunks(n, k):
        index = starts[None, :] + np.arange(start, stop)[:, None]  # (steps, B)
        batches.append((rows[index], rows[index + 1]))
    return batches


def detach_state(state):
    """Cut a state from its graph: a tensor, a tuple of them (an LSTM's ``(h, c)``) or None."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(detach_state(s) for s in state)
    return state.detach()


def truncated_bptt_corrected(model, sequence, chunk_size: int, optimizer, criterion) -> float:
    """Listing 5's ``truncated_bptt``, corrected; trains ``model`` in place.

    model: ``(ids (1, n), hidden) -> (logits (1, n, V), hidden)``, hidden None, a tensor or a
    tuple. sequence: 1-D ids. criterion: a chunk's mean loss. Returns the mean loss per id.
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    if sequence.ndim != 1 or len(sequence) < 2:
        raise ValueError(
            f"sequence must be 1-D with at least 2 ids, got shape {tuple(sequence.shape)}"
        )
    hidden, total, count = None, 0.0, 0
    # The last id is only ever a target, so the inputs are sequence[:-1]: every chunk
    # then has as many targets as inputs, the last one included.
    for start, stop in tbptt_chunks(len(sequence) - 1, chunk_size):
        inputs, targets = sequence[start:stop], sequence[start + 1 : stop + 1]
        hidden = detach_state(hidden)  # a tensor, or (h, c) for an LSTM
        outputs, hidden = model(inputs.unsqueeze(0), hidden)
        loss = criterion(outputs.squeeze(0), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(targets)  # chunks differ in length: weight by it
        count += len(targets)
    return total / count


def torch_tbptt_k1_k2(rnn, readout, xs, h0, targets, k1: int, k2: int, optimizer=None):
    """TBPTT(k1, k2) in PyTorch, by recomputing a sliding window of the last ``k2`` steps.

    rnn: a one-layer, sequence-first ``nn.RNN`` or ``nn.GRU`` (state a tensor);
    readout: maps states (..., H) to logits (..., V); xs: (T, B, D);
    h0: (B, H); targets: (T, B) long. Only *detached* states are kept between
    updates, at most ``k2 + 1`` of them. At each update the window is rerun
    from the constant ``h_{t-k2}`` with a graph, the new losses are
    backpropagated, and ``optimizer.step()`` runs if one is given (gradients
    are zeroed first then; without an optimizer they accumulate in ``.grad``).
    Returns an iterator that performs one update per ``next`` and yields
    ``(t, loss)``, ``loss`` a float (summed over the update's steps, averaged
    over the batch).
    """
    k1, k2 = check_positive_int("k1", k1), check_positive_int("k2", k2)
    dims = {"D": rnn.input_size, "H": rnn.hidden_size}
    check_array("xs", xs.detach(), "T B D", dims)
    check_array("h0", h0.detach(), "B H", dims)
    check_array("targets", targets, "T B", dims)
    return _torch_tbptt_updates(rnn, readout, xs, h0, targets, k1, k2, optimizer)


def _torch_tbptt_updates(rnn, readout, xs, h0, targets, k1, k2, optimizer):
    B, H = h0.shape
    history = deque([h0.detach()], maxlen=k2 + 1)  # detached h_{t-k2}, ..., h_t
    for window, start, stop in tbptt_schedule(len(xs), k1, k2):
        before = xs.new_empty(0, B, H)
        if window > start:  # k2 < k1: the steps before the window run without a graph
            with torch.no_grad():
                before, _ = rnn(xs[start:window], history[-1][None])
            history.extend(before)
        h_window = history[-1 - max(start - window, 0)]  # a constant: no graph behind it
        hs = rnn(xs[window:stop], h_window[None])[0] if window < stop else xs.new_empty(0, B, H)
        new = hs[max(start - window, 0) :]
        history.extend(new.detach())
        logits = readout(torch.cat([before, new])).flatten(0, 1)
        loss = F.cross_entropy(logits, targets[start:stop].flatten(), reduction="sum") / B
        if optimizer is not None:
            optimizer.zero_grad()
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        yield stop, loss.item()


def echo_stream(T: int, B: int, n_symbols: int, lag: int, rng: np.random.Generator):
    """A delayed echo: B streams of random symbols; the target at step t is the input at t - lag.

    Returns ``inputs, targets``, int64 of shape (T, B). The first ``lag``
    targets are symbols from before the stream began (never shown), so
    nothing can predict them; score accuracy from step ``lag`` on. Chance is
    ``1 / n_symbols``.
    """
    T, B = check_positive_int("T", T), check_positive_int("B", B)
    n_symbols, lag = check_positive_int("n_symbols", n_symbols), check_positive_int("lag", lag)
    symbols = rng.integers(0, n_symbols, size=(T + lag, B))
    return symbols[lag:], symbols[:T]
