"""Bridges to PyTorch, the oracle this book checks its numpy code against.

``torch.nn.RNN`` stores the same weights in the same ``(out, in)`` layout but
has *two* biases, ``bias_ih_l0`` and ``bias_hh_l0``, that are simply added:
copying ``b_h`` into one and zeros into the other gives the same function.
"""

from __future__ import annotations

import numpy as np
import torch

from bptt.rnn import check_params


def torch_rnn_from_params(params: dict) -> torch.nn.RNN:
    """A float64, sequence-first ``torch.nn.RNN`` (tanh) holding copies of ``W_xh, W_hh, b_h``."""
    dims = check_params(params)
    rnn = torch.nn.RNN(dims["D"], dims["H"], nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.as_tensor(params["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.as_tensor(params["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.as_tensor(params["b_h"]))
        rnn.bias_hh_l0.zero_()
    return rnn


def torch_params(params: dict) -> dict[str, torch.Tensor]:
    """float64 leaf tensors (``requires_grad=True``) with the values of ``params``."""
    check_params(params)
    return {
        k: torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=True)
        for k, v in params.items()
    }


def max_rel_error(a, b) -> float:
    """``max|a - b| / max(max|a|, max|b|)``: agreement relative to the arrays' scale.

    Dividing by the largest entry rather than entry by entry keeps tiny
    entries (where float64 round-off is large *relative to the entry*) from
    dominating the figure.
    """
    a = np.asarray(a.detach() if isinstance(a, torch.Tensor) else a, dtype=float)
    b = np.asarray(b.detach() if isinstance(b, torch.Tensor) else b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.abs(a).max(), np.abs(b).max(), np.finfo(float).tiny)
    return float(np.abs(a - b).max() / scale)
