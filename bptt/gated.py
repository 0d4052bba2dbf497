"""Gated recurrent cells, LSTM and GRU, in numpy, in PyTorch's layout.

Weights are stored ``(out, in)`` with the gates stacked along the rows, in
the order ``torch.nn.LSTM`` and ``torch.nn.GRU`` use:

    LSTM: W_ih (4H, D), W_hh (4H, H), rows [i; f; g; o]
    GRU : W_ih (3H, D), W_hh (3H, H), rows [r; z; n]

so the arrays can be copied into ``weight_ih_l0`` / ``weight_hh_l0`` as they
are. The LSTM's two PyTorch biases only ever appear summed, so the LSTM
functions take one ``b = b_ih + b_hh`` of shape ``(4H,)``; the GRU's cannot be
summed (the reset gate multiplies ``b_hn``), so the GRU functions take both.
"""

from __future__ import annotations

import numpy as np
import torch

from bptt.checks import check_array

N_GATES = {"lstm": 4, "gru": 3}


def init_gated(kind: str, D: int, H: int, rng: np.random.Generator) -> dict:
    """Random float64 weights ``W_ih (GH, D), W_hh (GH, H), b_ih, b_hh (GH,)`` with G = 4
    (``kind="lstm"``) or 3 (``"gru"``), uniform in ``±1/sqrt(H)`` like PyTorch's default."""
    if kind not in N_GATES:
        raise ValueError(f"kind must be 'lstm' or 'gru', got {kind!r}")
    G, bound = N_GATES[kind] * H, 1.0 / np.sqrt(H)
    return {
        "W_ih": rng.uniform(-bound, bound, (G, D)),
        "W_hh": rng.uniform(-bound, bound, (G, H)),
        "b_ih": rng.uniform(-bound, bound, G),
        "b_hh": rng.uniform(-bound, bound, G),
    }


def torch_gated(kind: str, W_ih, W_hh, b_ih, b_hh, cell: bool = False):
    """A float64 ``torch.nn.LSTM``/``GRU`` (or ``LSTMCell``/``GRUCell`` if ``cell``) holding copies.

    The weights are copied as they are: the numpy arrays already use PyTorch's
    row order ([i; f; g; o] or [r; z; n]).
    """
    if kind not in N_GATES:
        raise ValueError(f"kind must be 'lstm' or 'gru', got {kind!r}")
    dims: dict[str, int] = {}
    check_array("W_hh", W_hh, "G H", dims)
    check_array("W_ih", W_ih, "G D", dims)
    check_array("b_ih", b_ih, "G", dims)
    check_array("b_hh", b_hh, "G", dims)
    if dims["G"] != N_GATES[kind] * dims["H"]:
        raise ValueError(
            f"W_hh must have shape ({N_GATES[kind]}H, H) for kind={kind!r}, "
            f"got shape {np.shape(W_hh)}"
        )
    module = {
        ("lstm", False): torch.nn.LSTM,
        ("lstm", True): torch.nn.LSTMCell,
        ("gru", False): torch.nn.GRU,
        ("gru", True): torch.nn.GRUCell,
    }[kind, cell]
    net = module(dims["D"], dims["H"], dtype=torch.float64)
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        for name, value in (
            ("weight_ih", W_ih),
            ("weight_hh", W_hh),
            ("bias_ih", b_ih),
            ("bias_hh", b_hh),
        ):
            getattr(net, name + suffix).copy_(torch.as_tensor(np.asarray(value, dtype=float)))
    return net


def sigmoid(a):
    """Logistic function, computed without overflow for large ``|a|``."""
    a = np.asarray(a, dtype=float)
    e = np.exp(-np.abs(a))  # always <= 1
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_lstm(x, h_prev, c_prev, W_ih, W_hh, b):
    dims: dict[str, int] = {}
    x = check_array("x", x, "B D", dims)
    h_prev = check_array("h_prev", h_prev, "B H", dims)
    c_prev = check_array("c_prev", c_prev, "B H", dims)
    W_hh = check_array("W_hh", W_hh, "G H", dims)
    if dims["G"] != 4 * dims["H"]:
        raise ValueError(
            f"W_hh must have shape (4H, H) = {(4 * dims['H'], dims['H'])}, got shape {W_hh.shape}"
        )
    W_ih = check_array("W_ih", W_ih, "G D", dims)
    b = check_array("b", b, "G", dims)
    return x, h_prev, c_prev, W_ih, W_hh, b


def lstm_gates(x, h_prev, W_ih, W_hh, b):
    """The four gates of one LSTM step, each (B, H): ``i, f, g, o``.

    One matmul per weight matrix computes all four pre-activations at once;
    the rows of ``W_ih``/``W_hh`` are split in PyTorch's order i, f, g, o.
    """
    a = x @ W_ih.T + h_prev @ W_hh.T + b  # (B, 4H)
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    return sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)


def lstm_step_forward(x, h_prev, c_prev, W_ih, W_hh, b):
    """One LSTM step, as ``torch.nn.LSTMCell`` computes it.

    x: (B, D), h_prev: (B, H), c_prev: (B, H), W_ih: (4H, D), W_hh: (4H, H),
    b: (4H,) = b_ih + b_hh  ->  h: (B, H), c: (B, H).
    """
    x, h_prev, c_prev, W_ih, W_hh, b = _check_lstm(x, h_prev, c_prev, W_ih, W_hh, b)
    i, f, g, o = lstm_gates(x, h_prev, W_ih, W_hh, b)
    c = f * c_prev + i * g  # the additive path: dc/dc_prev = diag(f)
    h = o * np.tanh(c)
    return h, c


def lstm_forward(xs, h0, c0, W_ih, W_hh, b):
    """Run an LSTM over a sequence: xs (T, B, D), h0, c0 (B, H) -> hs, cs (T, B, H).

    ``hs[t]``, ``cs[t]`` are the states after reading ``xs[t]`` (h0, c0 excluded);
    ``hs`` is what ``torch.nn.LSTM`` returns as its output.
    """
    dims: dict[str, int] = {}
    xs = check_array("xs", xs, "T B D", dims)
    h = check_array("h0", h0, "B H", dims)
    c = check_array("c0", c0, "B H", dims)
    _check_lstm(xs[0], h, c, W_ih, W_hh, b)
    hs = np.empty((dims["T"], dims["B"], dims["H"]))
    cs = np.empty_like(hs)
    for t in range(len(xs)):
        h, c = lstm_step_forward(xs[t], h, c, W_ih, W_hh, b)
        hs[t], cs[t] = h, c
    return hs, cs


def lstm_step_backward(dh, dc, x, h_prev, c_prev, W_ih, W_hh, b):
    """Backward through one LSTM step (the forward is recomputed from the inputs).

    dh, dc: (B, H) gradients of the loss w.r.t. this step's h and c (from the
    output at this step and from step t+1). Returns
    ``dx (B, D), dh_prev (B, H), dc_prev (B, H), dW_ih (4H, D), dW_hh (4H, H), db (4H,)``.
    """
    x, h_prev, c_prev, W_ih, W_hh, b = _check_lstm(x, h_prev, c_prev, W_ih, W_hh, b)
    check_array("dh", dh, "B H", {"B": x.shape[0], "H": h_prev.shape[1]})
    check_array("dc", dc, "B H", {"B": x.shape[0], "H": h_prev.shape[1]})
    i, f, g, o = lstm_gates(x, h_prev, W_ih, W_hh, b)
    tanh_c = np.tanh(f * c_prev + i * g)
    # c reaches the loss directly (dc) and through h = o * tanh(c).
    dc_total = dc + dh * o * (1.0 - tanh_c**2)
    da = np.concatenate(
        [
            dc_total * g * i * (1.0 - i),  # input gate, sigmoid' = s(1 - s)
            dc_total * c_prev * f * (1.0 - f),  # forget gate
            dc_total * i * (1.0 - g**2),  # candidate, tanh' = 1 - tanh^2
            dh * tanh_c * o * (1.0 - o),  # output gate
        ],
        axis=1,
    )  # (B, 4H), rows in the order of W_ih
    dc_prev = dc_total * f
    return da @ W_ih, da @ W_hh, dc_prev, da.T @ x, da.T @ h_prev, da.sum(axis=0)


def lstm_backward(dhs, xs, h0, c0, W_ih, W_hh, b):
    """BPTT through a whole LSTM: a loop of ``lstm_step_backward`` from t = T-1 down to 0.

    dhs: (T, B, H) gradients of the loss w.r.t. ``hs`` (the outputs) at every step.
    Returns ``dxs (T, B, D), dh0 (B, H), dc0 (B, H), dW_ih, dW_hh, db``; weight
    gradients are summed over time because the same weights serve every step.
    """
    dims: dict[str, int] = {}
    xs = check_array("xs", xs, "T B D", dims)
    check_array("dhs", dhs, "T B H", dims)
    hs, cs = lstm_forward(xs, h0, c0, W_ih, W_hh, b)
    h_prevs = np.concatenate([np.asarray(h0)[None], hs[:-1]])
    c_prevs = np.concatenate([np.asarray(c0)[None], cs[:-1]])
    dxs = np.empty_like(xs, dtype=float)
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros_like(b)
    dh_next = np.zeros_like(hs[0])  # nothing flows in from beyond the last step
    dc_next = np.zeros_like(cs[0])
    for t in reversed(range(len(xs))):
        dxs[t], dh_next, dc_next, dWi, dWh, dbt = lstm_step_backward(
            dhs[t] + dh_next, dc_next, xs[t], h_prevs[t], c_prevs[t], W_ih, W_hh, b
        )
        dW_ih += dWi
        dW_hh += dWh
        db += dbt
    return dxs, dh_next, dc_next, dW_ih, dW_hh, db


def _check_gru(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    dims: dict[str, int] = {}
    x = check_array("x", x, "B D", dims)
    h_prev = check_array("h_prev", h_prev, "B H", dims)
    W_hh = check_array("W_hh", W_hh, "G H", dims)
    if dims["G"] != 3 * dims["H"]:
        raise ValueError(
            f"W_hh must have shape (3H, H) = {(3 * dims['H'], dims['H'])}, got shape {W_hh.shape}"
        )
    W_ih = check_array("W_ih", W_ih, "G D", dims)
    b_ih = check_array("b_ih", b_ih, "G", dims)
    b_hh = check_array("b_hh", b_hh, "G", dims)
    return x, h_prev, W_ih, W_hh, b_ih, b_hh


def gru_step_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    """One GRU step, as ``torch.nn.GRUCell`` computes it (reset gate *after* the matmul).

    x: (B, D), h_prev: (B, H), W_ih: (3H, D), W_hh: (3H, H), b_ih, b_hh: (3H,)
    -> h: (B, H), with rows of the weights in the order r, z, n.
    """
    x, h_prev, W_ih, W_hh, b_ih, b_hh = _check_gru(x, h_prev, W_ih, W_hh, b_ih, b_hh)
    ax_r, ax_z, ax_n = np.split(x @ W_ih.T + b_ih, 3, axis=1)
    ah_r, ah_z, ah_n = np.split(h_prev @ W_hh.T + b_hh, 3, axis=1)
    r = sigmoid(ax_r + ah_r)
    z = sigmoid(ax_z + ah_z)
    n = np.tanh(ax_n + r * ah_n)  # r scales W_hn h + b_hn, already multiplied
    return (1.0 - z) * n + z * h_prev  # the additive path: dh/dh_prev contains diag(z)


def gru_forward(xs, h0, W_ih, W_hh, b_ih, b_hh):
    """Run a GRU over a sequence: xs (T, B, D), h0 (B, H) -> hs (T, B, H) (h0 excluded)."""
    dims: dict[str, int] = {}
    xs = check_array("xs", xs, "T B D", dims)
    h = check_array("h0", h0, "B H", dims)
    _check_gru(xs[0], h, W_ih, W_hh, b_ih, b_hh)
    hs = np.empty((dims["T"], dims["B"], dims["H"]))
    for t in range(len(xs)):
        h = gru_step_forward(xs[t], h, W_ih, W_hh, b_ih, b_hh)
        hs[t] = h
    return hs


def gru_jacobian(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    """``dh/dh_prev`` of one GRU step, for each sequence of the batch: (B, H, H).

    ``J[b, j, k] = d h[b, j] / d h_prev[b, k]`` (rows: outputs, as in the math).
    Three terms: the direct path ``diag(z)``, the candidate ``diag(1 - z) dn/dh_prev``
    and the gate ``diag(h_prev - n) dz/dh_prev``.
    """
    x, h_prev, W_ih, W_hh, b_ih, b_hh = _check_gru(x, h_prev, W_ih, W_hh, b_ih, b_hh)
    H = h_prev.shape[1]
    W_hr, W_hz, W_hn = W_hh[:H], W_hh[H : 2 * H], W_hh[2 * H :]
    ax_r, ax_z, ax_n = np.split(x @ W_ih.T + b_ih, 3, axis=1)
    ah_r, ah_z, ah_n = np.split(h_prev @ W_hh.T + b_hh, 3, axis=1)
    r, z = sigmoid(ax_r + ah_r), sigmoid(ax_z + ah_z)
    n = np.tanh(ax_n + r * ah_n)
    # Row-scaling a matrix by a vector v is diag(v) @ W: v[:, :, None] * W, per batch row.
    dr = (r * (1 - r))[:, :, None] * W_hr
    dz = (z * (1 - z))[:, :, None] * W_hz
    dn = (1 - n**2)[:, :, None] * (r[:, :, None] * W_hn + ah_n[:, :, None] * dr)
    direct = z[:, :, None] * np.eye(H)
    return direct + (1 - z)[:, :, None] * dn + (h_prev - n)[:, :, None] * dz


# Other texts' conventions, kept to show that they are different functions of
# the same stored weights (the chapter prints the differences).


def lstm_step_forward_ifog(x, h_prev, c_prev, W_ih, W_hh, b):
    """An LSTM step that reads the stacked rows as [i; f; o; g] (CS231n's order), not [i; f; g; o].

    Same shapes as ``lstm_step_forward``; equal to it after swapping the last
    two row blocks of ``W_ih``, ``W_hh`` and ``b``.
    """
    x, h_prev, c_prev, W_ih, W_hh, b = _check_lstm(x, h_prev, c_prev, W_ih, W_hh, b)
    a_i, a_f, a_o, a_g = np.split(x @ W_ih.T + h_prev @ W_hh.T + b, 4, axis=1)
    c = sigmoid(a_f) * c_prev + sigmoid(a_i) * np.tanh(a_g)
    return sigmoid(a_o) * np.tanh(c), c


def gru_step_forward_reset_before(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    """A GRU step with the reset gate applied *before* the matmul (Cho et al. 2014, D2L).

    ``n = tanh(W_in x + b_in + W_hn (r * h_prev) + b_hn)``; otherwise as
    ``gru_step_forward``. Equal to it when r = 1 and b_hn = 0, different otherwise.
    """
    x, h_prev, W_ih, W_hh, b_ih, b_hh = _check_gru(x, h_prev, W_ih, W_hh, b_ih, b_hh)
    H = h_prev.shape[1]
    ax_r, ax_z, ax_n = np.split(x @ W_ih.T + b_ih, 3, axis=1)
    ah_r, ah_z, _ = np.split(h_prev @ W_hh.T + b_hh, 3, axis=1)
    r = sigmoid(ax_r + ah_r)
    z = sigmoid(ax_z + ah_z)
    n = np.tanh(ax_n + (r * h_prev) @ W_hh[2 * H :].T + b_hh[2 * H :])
    return (1.0 - z) * n + z * h_prev


def input_grad_norms(model, xs) -> np.ndarray:
    """``||d s / d xs[t]||`` for every t, with ``s = output[-1].sum()``: how much the last output
    depends on each input.

    model: a single-layer, sequence-first, unidirectional ``torch.nn.RNN``/``LSTM``/``GRU``;
    xs: float tensor (T, B, D). Returns a float64 array (T,), the Frobenius norm of
    each (B, D) slice of the gradient. Uses ``torch.autograd.grad`` on a detached
    copy of ``xs``, so neither ``xs`` nor the parameters' ``.grad`` are touched.
    """
    if not isinstance(model, torch.nn.RNNBase):
        raise ValueError(f"model must be a torch.nn.RNN, LSTM or GRU, got {type(model).__name__}")
    if model.num_layers != 1 or model.batch_first or model.bidirectional:
        raise ValueError(
            "model must be single-layer, sequence-first and unidirectional "
            f"(num_layers=1, batch_first=False, bidirectional=False), got {model}"
        )
    if not isinstance(xs, torch.Tensor) or not xs.is_floating_point():
        raise ValueError(f"xs must be a float torch.Tensor of shape (T, B, D), got {type(xs)}")
    check_array("xs", np.empty(xs.shape, dtype=np.float32), "T B D", {"D": model.input_size})
    dtype = next(model.parameters()).dtype
    x = xs.detach().clone().to(dtype).requires_grad_(True)
    output, _ = model(x)
    (grad,) = torch.autograd.grad(output[-1].sum(), x)
    return grad.flatten(1).norm(dim=1).double().numpy()
