"""Gated recurrent cells, LSTM and GRU, in numpy, with PyTorch's gates and row order.

Weights are stored ``(out, in)`` with the gates stacked along the rows, in the
order ``torch.nn.LSTM`` and ``torch.nn.GRU`` use:

    LSTM: W_x (4H, D), W_h (4H, H), b (4H,),               rows [i; f; g; o]
    GRU : W_x (3H, D), W_h (3H, H), b_x (3H,), b_hn (H,),  rows [r; u; n]

``W_x`` and ``W_h`` are PyTorch's ``weight_ih_l0`` and ``weight_hh_l0`` as
they are (the names ``W_xh``, ``W_hh`` and ``b_h`` belong to the tanh RNN).
PyTorch keeps two bias vectors per layer, ``bias_ih`` and ``bias_hh``. In the
LSTM they only ever appear summed, so the LSTM functions take one
``b = bias_ih + bias_hh``. In the GRU the reset gate multiplies the recurrent
bias of the candidate, ``b_hn = bias_hh[2H:]``, so that block must stay
separate; everything else is summed into ``b_x = bias_ih + [bias_hr; bias_hu; 0]``.
``numpy_weights`` and ``torch_gated`` convert both ways.

PyTorch's documentation calls the GRU's update gate ``z``; here it is ``u``,
because ``z`` is the book's name for the logits.
"""

from __future__ import annotations

import numpy as np
import torch

from bptt.checks import check_array

N_GATES = {"lstm": 4, "gru": 3}


def _check_kind(kind):
    if kind not in N_GATES:
        raise ValueError(f"kind must be 'lstm' or 'gru', got {kind!r}")


def init_gated(kind: str, D: int, H: int, rng: np.random.Generator) -> dict:
    """Random float64 weights in this module's names, drawn like PyTorch's default.

    PyTorch draws every weight and both bias vectors from ``U(-1/sqrt(H), 1/sqrt(H))``;
    the biases are then combined as the module docstring says. Returns
    ``{"W_x", "W_h", "b"}`` for ``kind="lstm"`` and ``{"W_x", "W_h", "b_x", "b_hn"}`` for ``"gru"``.
    """
    _check_kind(kind)
    G, bound = N_GATES[kind] * H, 1.0 / np.sqrt(H)
    W_x = rng.uniform(-bound, bound, (G, D))
    W_h = rng.uniform(-bound, bound, (G, H))
    b_ih, b_hh = rng.uniform(-bound, bound, (2, G))
    return _from_pytorch_biases(kind, W_x, W_h, b_ih, b_hh)


def _from_pytorch_biases(kind, W_x, W_h, b_ih, b_hh):
    if kind == "lstm":
        return {"W_x": W_x, "W_h": W_h, "b": b_ih + b_hh}
    H = W_h.shape[1]
    b_x = np.array(b_ih, dtype=float)
    b_x[: 2 * H] += b_hh[: 2 * H]  # r and u: the two biases only add up
    return {"W_x": W_x, "W_h": W_h, "b_x": b_x, "b_hn": np.array(b_hh[2 * H :], dtype=float)}


def numpy_weights(module) -> dict:
    """The weights of a one-layer ``torch.nn.LSTM``/``GRU`` (or ``LSTMCell``/``GRUCell``)
    as float64 arrays in this module's names: ``W_x, W_h, b`` or ``W_x, W_h, b_x, b_hn``."""
    kinds = {torch.nn.LSTM: "lstm", torch.nn.LSTMCell: "lstm", torch.nn.GRU: "gru"}
    kinds[torch.nn.GRUCell] = "gru"
    kind = kinds.get(type(module))
    if kind is None:
        raise ValueError(f"module must be an nn.LSTM, LSTMCell, GRU or GRUCell, got {module}")
    suffix = "_l0" if hasattr(module, "weight_ih_l0") else ""
    get = lambda name: getattr(module, name + suffix).detach().double().numpy().copy()  # noqa: E731
    return _from_pytorch_biases(
        kind, get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")
    )


def torch_gated(kind: str, W_x, W_h, b=None, b_hn=None, *, b_x=None, cell: bool = False):
    """A float64 ``torch.nn.LSTM``/``GRU`` (``LSTMCell``/``GRUCell`` if ``cell``) holding copies.

    LSTM: ``torch_gated("lstm", W_x, W_h, b)``; GRU: ``torch_gated("gru", W_x, W_h, b_x, b_hn)``
    (``b_x`` may also be given by keyword, so ``torch_gated(kind, **init_gated(...))`` works).
    The matrices are copied as they are; ``bias_ih`` receives ``b`` (or ``b_x``) and
    ``bias_hh`` zeros, except the GRU's candidate block, which receives ``b_hn``.
    """
    _check_kind(kind)
    if kind == "gru":
        b_x = b if b_x is None else b_x
        if b_x is None or b_hn is None:
            raise ValueError("a GRU needs b_x (3H,) and b_hn (H,)")
        bias = b_x
    else:
        if b is None or b_hn is not None or b_x is not None:
            raise ValueError("an LSTM takes one bias b (4H,)")
        bias = b
    dims: dict[str, int] = {}
    check_array("W_h", W_h, "G H", dims)
    check_array("W_x", W_x, "G D", dims)
    check_array("b_x" if kind == "gru" else "b", bias, "G", dims)
    if dims["G"] != N_GATES[kind] * dims["H"]:
        raise ValueError(
            f"W_h must have shape ({N_GATES[kind]}H, H) for kind={kind!r}, "
            f"got shape {np.shape(W_h)}"
        )
    b_hh = np.zeros(dims["G"])
    if kind == "gru":
        b_hh[2 * dims["H"] :] = check_array("b_hn", b_hn, "H", dims)
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
            ("weight_ih", W_x),
            ("weight_hh", W_h),
            ("bias_ih", bias),
            ("bias_hh", b_hh),
        ):
            getattr(net, name + suffix).copy_(torch.as_tensor(np.asarray(value, dtype=float)))
    return net


def sigmoid(a):
    """Logistic function, computed without overflow for large ``|a|``."""
    a = np.asarray(a, dtype=float)
    e = np.exp(-np.abs(a))  # always <= 1
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_lstm(x, h_prev, c_prev, W_x, W_h, b):
    dims: dict[str, int] = {}
    x = check_array("x", x, "B D", dims)
    h_prev = check_array("h_prev", h_prev, "B H", dims)
    c_prev = check_array("c_prev", c_prev, "B H", dims)
    W_h = check_array("W_h", W_h, "G H", dims)
    if dims["G"] != 4 * dims["H"]:
        raise ValueError(
            f"W_h must have shape (4H, H) = {(4 * dims['H'], dims['H'])}, got shape {W_h.shape}"
        )
    W_x = check_array("W_x", W_x, "G D", dims)
    b = check_array("b", b, "G", dims)
    return x, h_prev, c_prev, W_x, W_h, b


def lstm_gates(x, h_prev, W_x, W_h, b):
    """The four gates of one LSTM step, each (B, H): ``i, f, g, o``.

    One matmul per weight matrix computes all four pre-activations at once;
    the rows of ``W_x``/``W_h`` are split in PyTorch's order i, f, g, o.
    """
    a = x @ W_x.T + h_prev @ W_h.T + b  # (B, 4H)
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    return sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)


def lstm_step_forward(x, h_prev, c_prev, W_x, W_h, b):
    """One LSTM step, as ``torch.nn.LSTMCell`` computes it.

    x: (B, D), h_prev: (B, H), c_prev: (B, H), W_x: (4H, D), W_h: (4H, H),
    b: (4H,)  ->  h: (B, H), c: (B, H).
    """
    x, h_prev, c_prev, W_x, W_h, b = _check_lstm(x, h_prev, c_prev, W_x, W_h, b)
    i, f, g, o = lstm_gates(x, h_prev, W_x, W_h, b)
    c = f * c_prev + i * g  # the additive path: dc/dc_prev = diag(f)
    h = o * np.tanh(c)
    return h, c


def lstm_forward(xs, h0, c0, W_x, W_h, b):
    """Run an LSTM over a sequence: xs (T, B, D), h0, c0 (B, H) -> hs, cs (T, B, H).

    ``hs[t]``, ``cs[t]`` are the states after reading ``xs[t]`` (h0, c0 excluded);
    ``hs`` is what ``torch.nn.LSTM`` returns as its output.
    """
    dims: dict[str, int] = {}
    xs = check_array("xs", xs, "T B D", dims)
    h = check_array("h0", h0, "B H", dims)
    c = check_array("c0", c0, "B H", dims)
    _check_lstm(xs[0], h, c, W_x, W_h, b)
    hs = np.empty((dims["T"], dims["B"], dims["H"]))
    cs = np.empty_like(hs)
    for t in range(len(xs)):
        h, c = lstm_step_forward(xs[t], h, c, W_x, W_h, b)
        hs[t], cs[t] = h, c
    return hs, cs


def lstm_step_backward(dh, dc, x, h_prev, c_prev, W_x, W_h, b):
    """Backward through one LSTM step (the forward is recomputed from the inputs).

    dh, dc: (B, H) gradients of the loss w.r.t. this step's h and c (from the
    output at this step and from step t+1). Returns
    ``dx (B, D), dh_prev (B, H), dc_prev (B, H), dW_x (4H, D), dW_h (4H, H), db (4H,)``.
    """
    x, h_prev, c_prev, W_x, W_h, b = _check_lstm(x, h_prev, c_prev, W_x, W_h, b)
    check_array("dh", dh, "B H", {"B": x.shape[0], "H": h_prev.shape[1]})
    check_array("dc", dc, "B H", {"B": x.shape[0], "H": h_prev.shape[1]})
    i, f, g, o = lstm_gates(x, h_prev, W_x, W_h, b)
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
    )  # (B, 4H), rows in the order of W_x
    dc_prev = dc_total * f
    return da @ W_x, da @ W_h, dc_prev, da.T @ x, da.T @ h_prev, da.sum(axis=0)


def lstm_backward(dhs, xs, h0, c0, W_x, W_h, b):
    """BPTT through a whole LSTM: a loop of ``lstm_step_backward`` from t = T-1 down to 0.

    dhs: (T, B, H) gradients of the loss w.r.t. ``hs`` (the outputs) at every step.
    Returns ``dxs (T, B, D), dh0 (B, H), dc0 (B, H), dW_x, dW_h, db``; weight
    gradients are summed over time because the same weights serve every step.
    """
    dims: dict[str, int] = {}
    xs = check_array("xs", xs, "T B D", dims)
    check_array("dhs", dhs, "T B H", dims)
    hs, cs = lstm_forward(xs, h0, c0, W_x, W_h, b)
    h_prevs = np.concatenate([np.asarray(h0)[None], hs[:-1]])
    c_prevs = np.concatenate([np.asarray(c0)[None], cs[:-1]])
    dxs = np.empty_like(xs, dtype=float)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dh_next = np.zeros_like(hs[0])  # nothing flows in from beyond the last step
    dc_next = np.zeros_like(cs[0])
    for t in reversed(range(len(xs))):
        dxs[t], dh_next, dc_next, dWx, dWh, dbt = lstm_step_backward(
            dhs[t] + dh_next, dc_next, xs[t], h_prevs[t], c_prevs[t], W_x, W_h, b
        )
        dW_x += dWx
        dW_h += dWh
        db += dbt
    return dxs, dh_next, dc_next, dW_x, dW_h, db


def _check_gru(x, h_prev, W_x, W_h, b_x, b_hn):
    dims: dict[str, int] = {}
    x = check_array("x", x, "B D", dims)
    h_prev = check_array("h_prev", h_prev, "B H", dims)
    W_h = check_array("W_h", W_h, "G H", dims)
    if dims["G"] != 3 * dims["H"]:
        raise ValueError(
            f"W_h must have shape (3H, H) = {(3 * dims['H'], dims['H'])}, got shape {W_h.shape}"
        )
    W_x = check_array("W_x", W_x, "G D", dims)
    b_x = check_array("b_x", b_x, "G", dims)
    b_hn = check_array("b_hn", b_hn, "H", dims)
    return x, h_prev, W_x, W_h, b_x, b_hn


def gru_gates(x, h_prev, W_x, W_h, b_x, b_hn):
    """The reset gate, update gate and candidate of one GRU step, each (B, H): ``r, u, n``.

    The reset gate acts *after* the recurrent matmul, on ``h_prev W_hn^T + b_hn``.
    """
    ax_r, ax_u, ax_n = np.split(x @ W_x.T + b_x, 3, axis=1)
    ah_r, ah_u, ah_n = np.split(h_prev @ W_h.T, 3, axis=1)
    r = sigmoid(ax_r + ah_r)
    u = sigmoid(ax_u + ah_u)
    n = np.tanh(ax_n + r * (ah_n + b_hn))
    return r, u, n


def gru_step_forward(x, h_prev, W_x, W_h, b_x, b_hn):
    """One GRU step, as ``torch.nn.GRUCell`` computes it (reset gate *after* the matmul).

    x: (B, D), h_prev: (B, H), W_x: (3H, D), W_h: (3H, H), b_x: (3H,), b_hn: (H,)
    -> h: (B, H), with rows of the weights in the order r, u, n.
    """
    x, h_prev, W_x, W_h, b_x, b_hn = _check_gru(x, h_prev, W_x, W_h, b_x, b_hn)
    r, u, n = gru_gates(x, h_prev, W_x, W_h, b_x, b_hn)
    return (1.0 - u) * n + u * h_prev  # the additive path: dh/dh_prev contains diag(u)


def gru_forward(xs, h0, W_x, W_h, b_x, b_hn):
    """Run a GRU over a sequence: xs (T, B, D), h0 (B, H) -> hs (T, B, H) (h0 excluded)."""
    dims: dict[str, int] = {}
    xs = check_array("xs", xs, "T B D", dims)
    h = check_array("h0", h0, "B H", dims)
    _check_gru(xs[0], h, W_x, W_h, b_x, b_hn)
    hs = np.empty((dims["T"], dims["B"], dims["H"]))
    for t in range(len(xs)):
        h = gru_step_forward(xs[t], h, W_x, W_h, b_x, b_hn)
        hs[t] = h
    return hs


def gru_jacobian(x, h_prev, W_x, W_h, b_x, b_hn):
    """``dh/dh_prev`` of one GRU step, for each sequence of the batch: (B, H, H).

    ``J[b, j, k] = d h[b, j] / d h_prev[b, k]`` (rows: outputs, as in the math).
    Three terms: the direct path ``diag(u)``, the candidate ``diag(1 - u) dn/dh_prev``
    and the gate ``diag(h_prev - n) du/dh_prev``.
    """
    x, h_prev, W_x, W_h, b_x, b_hn = _check_gru(x, h_prev, W_x, W_h, b_x, b_hn)
    H = h_prev.shape[1]
    W_hr, W_hu, W_hn = W_h[:H], W_h[H : 2 * H], W_h[2 * H :]
    r, u, n = gru_gates(x, h_prev, W_x, W_h, b_x, b_hn)
    ah_n = h_prev @ W_hn.T + b_hn
    # Row-scaling a matrix by a vector v is diag(v) @ W: v[:, :, None] * W, per batch row.
    dr = (r * (1 - r))[:, :, None] * W_hr
    du = (u * (1 - u))[:, :, None] * W_hu
    dn = (1 - n**2)[:, :, None] * (r[:, :, None] * W_hn + ah_n[:, :, None] * dr)
    direct = u[:, :, None] * np.eye(H)
    return direct + (1 - u)[:, :, None] * dn + (h_prev - n)[:, :, None] * du


# Other texts' conventions, kept to show that they are different functions of
# the same stored weights (the chapter prints the differences).


def lstm_step_forward_ifog(x, h_prev, c_prev, W_x, W_h, b):
    """An LSTM step that reads the stacked rows as [i; f; o; g] (CS231n's order), not [i; f; g; o].

    Same shapes as ``lstm_step_forward``; equal to it after swapping the last
    two row blocks of ``W_x``, ``W_h`` and ``b``.
    """
    x, h_prev, c_prev, W_x, W_h, b = _check_lstm(x, h_prev, c_prev, W_x, W_h, b)
    a_i, a_f, a_o, a_g = np.split(x @ W_x.T + h_prev @ W_h.T + b, 4, axis=1)
    c = sigmoid(a_f) * c_prev + sigmoid(a_i) * np.tanh(a_g)
    return sigmoid(a_o) * np.tanh(c), c


def gru_step_forward_reset_before(x, h_prev, W_x, W_h, b_x, b_hn):
    """A GRU step with the reset gate applied *before* the matmul (Cho et al. 2014, D2L).

    ``n = tanh(W_xn x + b_n + W_hn (r * h_prev) + b_hn)``; otherwise as
    ``gru_step_forward``. Equal to it when r = 1, different otherwise.
    """
    x, h_prev, W_x, W_h, b_x, b_hn = _check_gru(x, h_prev, W_x, W_h, b_x, b_hn)
    H = h_prev.shape[1]
    ax_r, ax_u, ax_n = np.split(x @ W_x.T + b_x, 3, axis=1)
    ah_r, ah_u, _ = np.split(h_prev @ W_h.T, 3, axis=1)
    r = sigmoid(ax_r + ah_r)
    u = sigmoid(ax_u + ah_u)
    n = np.tanh(ax_n + (r * h_prev) @ W_h[2 * H :].T + b_hn)
    return (1.0 - u) * n + u * h_prev


def gru_step_forward_chung(x, h_prev, W_x, W_h, b_x, b_hn):
    """A GRU step whose update gate weighs the *candidate*: ``h = (1 - u_bar) h_prev + u_bar n``.

    The convention of Chung et al. (2014), who call ``u_bar`` z; PyTorch's ``u`` weighs the
    old state.
    Otherwise as ``gru_step_forward``. Since ``1 - sigmoid(a) = sigmoid(-a)``, it
    equals ``gru_step_forward`` after negating the update-gate rows of ``W_x``,
    ``W_h`` and ``b_x``.
    """
    x, h_prev, W_x, W_h, b_x, b_hn = _check_gru(x, h_prev, W_x, W_h, b_x, b_hn)
    r, u_bar, n = gru_gates(x, h_prev, W_x, W_h, b_x, b_hn)
    return (1.0 - u_bar) * h_prev + u_bar * n


def input_grad_norms(model, xs) -> np.ndarray:
    """``||d q / d xs[t]||`` for every t, with ``q = output[-1].sum()``: how much the last output
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
    (grad,) = torch.autograd.grad(output[-1].sum(), x)  # dq/dx
    return grad.flatten(1).norm(dim=1).double().numpy()
