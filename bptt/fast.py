"""BPTT at the speed of the machine: the textbook loop with everything parallel taken out of it.

Only one thing in BPTT is truly sequential: ``h_t`` needs ``h_{t-1}``, and ``dh_{t-1}`` needs
``dh_t``. That is T small products ``(B, H) x (H, H)`` forward, T backward, and their elementwise
work. Everything else touches each step independently, so it can leave the time loop as one
large matrix product over all ``T * B`` rows at once:

    forward:  x_t W_xh^T for every t               (T B, D) x (D, H)
    backward: dx_t = da_t W_xh for every t         (T B, H) x (H, D)
              dW_xh = sum_t da_t^T x_t             (H, T B) x (T B, D)
              dW_hh = sum_t da_t^T h_{t-1}         (H, T B) x (T B, H)
              db_h  = sum_t sum_b da_t             one reduction

The sums over t are exactly the products over the stacked ``T * B`` rows, so the results equal
``bptt.backward``'s (to rounding). The loops work in preallocated buffers, in place, and the
arguments are validated once, at entry. Shapes as everywhere in the book: ``xs (T, B, D)``,
``hs (T, B, H)`` with ``hs[t]`` the state after reading ``xs[t]``, weights ``(out, in)``.
"""

from __future__ import annotations

import numpy as np

from bptt.checks import check_array

DTYPES = (np.float32, np.float64)


def _check(arrays: dict, specs: dict) -> tuple[list[np.ndarray], dict[str, int]]:
    """Validate every argument once; all must share one float dtype (float32 or float64)."""
    dims: dict[str, int] = {}
    checked = [check_array(name, arrays[name], spec, dims) for name, spec in specs.items()]
    if len({a.dtype for a in checked}) != 1 or checked[0].dtype not in DTYPES:
        found = {name: str(a.dtype) for name, a in zip(specs, checked, strict=True)}  # fmt: skip
        raise ValueError(f"arguments must all be float32 or all float64, got {found}")
    return checked, dims


def rnn_forward_fast(xs, h0, W_xh, W_hh, b_h):
    """The tanh RNN over a sequence: xs (T, B, D), h0 (B, H) -> hs (T, B, H).

    Same result as ``bptt.rnn.rnn_forward``; the input projection of all steps is one GEMM.
    """
    args = {"W_hh": W_hh, "W_xh": W_xh, "b_h": b_h, "xs": xs, "h0": h0}
    specs = {"W_hh": "H H", "W_xh": "H D", "b_h": "H", "xs": "T B D", "h0": "B H"}
    (W_hh, W_xh, b_h, xs, h0), dims = _check(args, specs)
    T, B, D, H = dims["T"], dims["B"], dims["D"], dims["H"]
    hs = np.empty((T, B, H), dtype=W_hh.dtype)
    # hs[t] first holds a_t's input part, x_t W_xh^T + b_h, for every t at once.
    np.matmul(xs.reshape(T * B, D), W_xh.T, out=hs.reshape(T * B, H))
    hs += b_h
    recurrent = np.empty((B, H), dtype=W_hh.dtype)
    h_prev = h0
    for t in range(T):  # the critical path: one (B, H) x (H, H) product per step
        np.matmul(h_prev, W_hh.T, out=recurrent)
        hs[t] += recurrent
        np.tanh(hs[t], out=hs[t])
        h_prev = hs[t]
    return hs


def rnn_backward_fast(dhs, xs, h0, hs, W_xh, W_hh):
    """BPTT over a sequence, with every weight gradient computed as one GEMM after the loop.

    dhs: (T, B, H) the gradient reaching ``hs[t]`` from step t's own loss; xs: (T, B, D);
    h0: (B, H); hs: (T, B, H) from the forward pass; W_xh: (H, D); W_hh: (H, H).
    Returns ``dxs (T, B, D), dh0 (B, H), dW_xh (H, D), dW_hh (H, H), db_h (H,)``, as
    ``bptt.backward.rnn_backward`` does.
    """
    args = {"W_hh": W_hh, "W_xh": W_xh, "xs": xs, "h0": h0, "hs": hs, "dhs": dhs}
    specs = {"W_hh": "H H", "W_xh": "H D", "xs": "T B D", "h0": "B H", "hs": "T B H"}
    (W_hh, W_xh, xs, h0, hs, dhs), dims = _check(args, {**specs, "dhs": "T B H"})
    dtype = W_hh.dtype
    T, B, D, H = dims["T"], dims["B"], dims["D"], dims["H"]
    das = np.empty((T, B, H), dtype=dtype)  # da_t = dL/da_t, kept for the GEMMs below
    slope = np.empty((B, H), dtype=dtype)
    dh_next = np.zeros((B, H), dtype=dtype)  # nothing flows back into the last state
    for t in reversed(range(T)):  # the critical path, backwards
        np.add(dhs[t], dh_next, out=das[t])  # both paths into h_t
        np.multiply(hs[t], hs[t], out=slope)
        np.subtract(1.0, slope, out=slope)  # tanh' = 1 - h_t^2
        das[t] *= slope
        np.matmul(das[t], W_hh, out=dh_next)
    rows = das.reshape(T * B, H)
    dxs = (rows @ W_xh).reshape(T, B, D)
    dW_xh = rows.T @ xs.reshape(T * B, D)
    # h_{t-1} for every t: h0, then hs[0..T-2]
    dW_hh = das[0].T @ h0
    if T > 1:
        dW_hh += das[1:].reshape((T - 1) * B, H).T @ hs[:-1].reshape((T - 1) * B, H)
    db_h = rows.sum(axis=0)
    return dxs, dh_next, dW_xh, dW_hh, db_h
