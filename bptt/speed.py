"""Where BPTT's time goes: the textbook loop, the fast one, torch.autograd, and the machine's limit.

The limit of one size is the sum of two measured times: the four large GEMMs that the fast
version hoists out of the loop (``bptt.fast``), timed alone on their own shapes, and the
sequential part, the T steps forward and T steps back with their elementwise work and nothing
else. No implementation of BPTT can do less work than that on the same BLAS.

    python -m bptt.speed [--sizes T,B,D,H ...]   # one JSON object per size and dtype, and the BLAS

``make bench`` runs this as a separate process, so that it can start numpy with or without the
OpenBLAS settings of the environment (they are read once, when OpenBLAS loads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

from bptt.backward import rnn_backward
from bptt.cost import best_times, make_problem
from bptt.fast import rnn_backward_fast, rnn_forward_fast
from bptt.rnn import rnn_forward

SIZES = [(50, 8, 32, 64), (100, 32, 64, 128), (200, 64, 128, 256)]  # (T, B, D, H)
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def problem(T: int, B: int, D: int, H: int, dtype=np.float64, seed: int = 0) -> dict:
    """``bptt.cost.make_problem``'s RNN weights, inputs and ``h0``, with upstream gradients
    ``dhs (T, B, H)``, all in ``dtype``."""
    params, xs, h0, _ = make_problem(T, B, D, H, V=1, seed=seed)
    dhs = np.random.default_rng(seed + 1).standard_normal((T, B, H))
    p = {k: params[k] for k in ("W_xh", "W_hh", "b_h")} | {"xs": xs, "h0": h0, "dhs": dhs}
    return {k: v.astype(dtype) for k, v in p.items()}


def textbook(p: dict):
    """The chapters' loop: ``rnn_forward`` then ``rnn_backward``, one step at a time."""
    hs = rnn_forward(p["xs"], p["h0"], p["W_xh"], p["W_hh"], p["b_h"])
    return rnn_backward(p["dhs"], p["xs"], p["h0"], hs, p["W_xh"], p["W_hh"])


def fast(p: dict):
    """``bptt.fast``: the same gradients with the parallel work hoisted out of the loop."""
    hs = rnn_forward_fast(p["xs"], p["h0"], p["W_xh"], p["W_hh"], p["b_h"])
    return rnn_backward_fast(p["dhs"], p["xs"], p["h0"], hs, p["W_xh"], p["W_hh"])


def torch_autograd(p: dict):
    """A no-argument function: ``nn.RNN`` forward and ``torch.autograd`` backward, same problem."""
    D, H = p["W_xh"].shape[1], p["W_hh"].shape[0]
    dtype = torch.float64 if p["W_hh"].dtype == np.float64 else torch.float32
    rnn = torch.nn.RNN(D, H, dtype=dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b_h"]))
        rnn.bias_hh_l0.zero_()
    xs = torch.from_numpy(p["xs"]).requires_grad_()
    h0 = torch.from_numpy(p["h0"])[None].requires_grad_()
    dhs = torch.from_numpy(p["dhs"])

    def run():
        out, _ = rnn(xs, h0)
        out.backward(dhs)  # the same upstream gradient as the numpy versions get

    return run


def hoisted_gemms(p: dict):
    """A no-argument function: only the four large GEMMs of ``bptt.fast``, on their shapes."""
    T, B, D = p["xs"].shape
    H = p["W_hh"].shape[0]
    X, A = p["xs"].reshape(T * B, D), p["dhs"].reshape(T * B, H)  # A stands in for da, any values
    proj = np.empty((T * B, H), dtype=X.dtype)
    dX = np.empty((T * B, D), dtype=X.dtype)

    def run():
        np.matmul(X, p["W_xh"].T, out=proj)  # x_t W_xh^T for every t
        np.matmul(A, p["W_xh"], out=dX)  # dx_t = da_t W_xh
        A.T @ X  # dW_xh
        A.T @ proj  # dW_hh, an (H, TB) x (TB, H) product like sum_t da_t^T h_{t-1}

    return run


def critical_path(p: dict):
    """A no-argument function: only the T steps forward and T steps back, with elementwise work."""
    T, B, _ = p["xs"].shape
    W_hh = p["W_hh"]
    hs = np.empty((T, B, W_hh.shape[0]), dtype=W_hh.dtype)
    r, slope, dh = (np.empty_like(p["h0"]) for _ in range(3))

    def run():
        h_prev = p["h0"]
        for t in range(T):
            np.matmul(h_prev, W_hh.T, out=r)
            np.add(p["dhs"][t], r, out=hs[t])  # dhs stands in for the hoisted input part
            np.tanh(hs[t], out=hs[t])
            h_prev = hs[t]
        dh.fill(0)
        for t in reversed(range(T)):
            np.add(p["dhs"][t], dh, out=r)
            np.multiply(hs[t], hs[t], out=slope)
            np.subtract(1.0, slope, out=slope)
            np.multiply(r, slope, out=r)
            np.matmul(r, W_hh, out=dh)

    run.hs, run.dh0 = hs, dh  # what the last run computed, for the tests
    return run


def measure(T: int, B: int, D: int, H: int, dtype=np.float64, repeats: int = 5) -> dict:
    """Milliseconds of each version and of the limit's two parts, measured in turn in one run."""
    p = problem(T, B, D, H, dtype)
    fns = {
        "textbook": lambda: textbook(p),
        "fast": lambda: fast(p),
        "torch": torch_autograd(p),
        "gemm": hoisted_gemms(p),
        "loop": critical_path(p),
    }
    seconds = best_times(fns, repeats=repeats, min_seconds=0.05)
    ms = {f"{name}_ms": round(1e3 * s, 4) for name, s in seconds.items()}
    ms["limit_ms"] = round(ms["gemm_ms"] + ms["loop_ms"], 4)
    return {"T": T, "B": B, "D": D, "H": H, "dtype": np.dtype(dtype).name, **ms}


def blas_info() -> dict:
    """The BLAS numpy runs on (threadpoolctl), torch's threads, and the OpenBLAS settings."""
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return {
        "numpy_blas": [{k: d.get(k) for k in keep} for d in threadpool_info()],
        "torch_threads": torch.get_num_threads(),
        "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_ENV},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", help="T,B,D,H each (default: the bench's sizes)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = [tuple(map(int, s.split(","))) for s in args.sizes] if args.sizes else SIZES
    rows = [
        measure(*size, dtype, args.repeats) for size in sizes for dtype in (np.float64, np.float32)
    ]
    json.dump({"bptt_speed": rows, "blas": blas_info()}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
