"""Measure what BPTT costs: seconds and peak bytes of one gradient computation.

Time is the fastest of a few runs (``best_time``): on a shared machine every
disturbance makes a run slower, never faster. Memory is the peak of the bytes
``tracemalloc`` traces while the computation runs, above the level before it
(``peak_bytes``): numpy reports its array buffers to ``tracemalloc``, so this
counts every array the computation allocates (states, logits, gradients,
temporaries) and nothing that existed before (the inputs, the parameters).
The two are measured in separate runs, because tracing slows Python down.

``measure`` and ``measure_strategies`` are what ``make bench`` calls; ``flops_per_step``,
``phase_fns``, ``sweep``, ``exponent_table``, ``fit_segment_memory`` and ``strategy_table``
assemble the measurements of the chapter "What BPTT costs".
"""

from __future__ import annotations

import contextlib
import ctypes
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import torch

from bptt.backward import loss_and_grads, output_backward, rnn_backward
from bptt.checkpoint import checkpointed_grads
from bptt.checks import check_positive_int
from bptt.rnn import init_params, rnn_forward
from bptt.truncated import truncated_bptt_grads

STRATEGIES = ("full", "truncated", "checkpointed")
_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def best_time(fn: Callable[[], object], repeats: int = 3, clock=time.perf_counter) -> float:
    """Fastest seconds of ``repeats`` calls of ``fn()``, read on ``clock``.

    ``clock=time.perf_counter`` is wall-clock time; ``time.process_time`` is the
    CPU time of this process, which does not count the time other processes
    hold the core (with one thread, the work done).
    """
    repeats = check_positive_int("repeats", repeats)
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated while ``fn()`` runs, above the level before it (``tracemalloc``)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if started:
            tracemalloc.stop()


def fit_exponent(sizes, values) -> float:
    """Slope ``p`` of the least-squares line ``log(value) = p log(size) + c``: value ~ size**p."""
    sizes, values = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    if sizes.shape != values.shape or sizes.ndim != 1 or len(sizes) < 2:
        raise ValueError(
            "sizes and values must be 1-D of the same length >= 2, "
            f"got shapes {sizes.shape} and {values.shape}"
        )
    if (sizes <= 0).any() or (values <= 0).any():
        raise ValueError("sizes and values must be positive (their logarithms are fitted)")
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def _openblas_setter():
    """The loaded OpenBLAS's ``set_num_threads`` (Linux), or None if it cannot be found."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for name in _BLAS_SETTERS:
            if hasattr(lib, name):
                return getattr(lib, name), getattr(lib, name.replace("set", "get"))
    return None


@contextlib.contextmanager
def blas_threads(n: int):
    """Run numpy's BLAS (OpenBLAS) and torch with ``n`` threads inside the block.

    Small matrix products gain little from a second thread, and on a busy
    machine a thread that waits for a core makes every product wait: timings
    are steadier with one. Yields True if numpy's OpenBLAS was found (else
    only torch's setting changes). The previous settings are restored.
    """
    n = check_positive_int("n", n)
    setter = _openblas_setter()
    torch_before = torch.get_num_threads()
    blas_before = setter[1]() if setter else None
    torch.set_num_threads(n)
    if setter:
        setter[0](n)
    try:
        yield setter is not None
    finally:
        torch.set_num_threads(torch_before)
        if setter:
            setter[0](blas_before)


def make_problem(T: int, B: int, D: int, H: int, V: int, seed: int = 0):
    """A random, seeded problem: ``(params, xs (T, B, D), h0 (B, H), targets (T, B))``."""
    for name, value in {"T": T, "B": B, "D": D, "H": H, "V": V}.items():
        check_positive_int(name, value)
    rng = np.random.default_rng(seed)
    params = init_params(D, H, V, rng)
    xs = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    targets = rng.integers(0, V, size=(T, B))
    return params, xs, h0, targets


def gradient_fn(strategy: str, params, xs, h0, targets, k: int = 32, segment: int | None = None):
    """A no-argument function computing the loss and gradients with one strategy.

    ``"full"``: ``bptt.backward.loss_and_grads``; ``"truncated"``: TBPTT(k),
    ``bptt.truncated.truncated_bptt_grads``; ``"checkpointed"``:
    ``bptt.checkpoint.checkpointed_grads`` (segment default ``ceil(sqrt(T))``).
    """
    if strategy == "full":
        return lambda: loss_and_grads(params, xs, h0, targets)
    if strategy == "truncated":
        return lambda: truncated_bptt_grads(params, xs, h0, targets, k)
    if strategy == "checkpointed":
        return lambda: checkpointed_grads(params, xs, h0, targets, segment)
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def best_times(
    fns: dict[str, Callable[[], object]],
    repeats: int = 3,
    min_seconds: float = 0.0,
    clock=time.perf_counter,
) -> dict[str, float]:
    """Fastest seconds per call of each function, the functions run in turn ``repeats`` times.

    Interleaving spreads a burst of load from other processes over all of them
    instead of penalising whichever happened to run during it. A function
    faster than ``min_seconds`` is called several times per timing (the
    count is set by one untimed first call), so that short timings are not
    mostly clock and scheduler noise. ``clock`` as for ``best_time``.
    """
    repeats = check_positive_int("repeats", repeats)
    numbers = {}
    for name, fn in fns.items():
        once = best_time(fn, 1, clock)
        numbers[name] = max(1, int(np.ceil(min_seconds / max(once, 1e-9))))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            number = numbers[name]
            start = clock()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (clock() - start) / number)
    return best


def measure_strategies(
    T: int,
    *,
    strategies=STRATEGIES,
    B: int = 32,
    D: int = 32,
    H: int = 128,
    V: int = 32,
    k: int = 32,
    segment: int | None = None,
    repeats: int = 3,
    seed: int = 0,
    threads: int | None = 1,
    clock=time.process_time,
) -> dict:
    """Seconds and peak memory of full, truncated and checkpointed BPTT at one ``T``, one flat row.

    numpy, float64, one random problem of sizes ``T, B, D, H, V``; truncated
    is TBPTT(k), checkpointed uses ``segment`` steps per segment (default
    ``ceil(sqrt(T))``). ``threads``: BLAS threads during the measurement (None
    leaves the setting alone). ``clock``: ``time.process_time`` (default) counts
    the CPU seconds of this process, which with one thread is the work done and
    stays steady on a shared machine; ``time.perf_counter`` counts wall-clock
    seconds. Returns ``T``, ``<strategy>_seconds`` (best of ``repeats``,
    interleaved), ``<strategy>_peak_MiB`` (``peak_bytes``) and,
    when both are measured, ``checkpointed_memory_saved`` (fraction of full
    BPTT's peak saved) and ``checkpointed_time_overhead`` (fraction of extra time).
    """
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategies must be among {STRATEGIES}, got {strategy!r}")
    problem = make_problem(T, B, D, H, V, seed)
    fns = {s: gradient_fn(s, *problem, k=k, segment=segment) for s in strategies}
    row: dict = {"T": T}
    with blas_threads(threads) if threads else contextlib.nullcontext():
        seconds = best_times(fns, repeats, clock=clock)  # its untimed first calls warm up
        for s, fn in fns.items():
            row[f"{s}_seconds"] = seconds[s]
            row[f"{s}_peak_MiB"] = peak_bytes(fn) / 2**20
    if "full" in fns and "checkpointed" in fns:
        row["checkpointed_memory_saved"] = 1 - row["checkpointed_peak_MiB"] / row["full_peak_MiB"]
        row["checkpointed_time_overhead"] = row["checkpointed_seconds"] / row["full_seconds"] - 1
    return row


def measure(strategy: str, T: int, **kwargs) -> dict:
    """``seconds`` and ``peak_bytes`` of one strategy at one ``T``.

    Keyword arguments as for ``measure_strategies``.
    """
    row = measure_strategies(T, strategies=(strategy,), **kwargs)
    return {
        "strategy": strategy,
        "T": T,
        "seconds": row[f"{strategy}_seconds"],
        "peak_bytes": int(round(row[f"{strategy}_peak_MiB"] * 2**20)),
    }


def flops_per_step(B: int, D: int, H: int, V: int) -> dict[str, int]:
    """Floating-point operations of one time step's matrix products (a multiply-add counts 2).

    ``forward``: ``x W_xh^T``, ``h W_hh^T`` and the output layer ``h W_hy^T``,
    ``2B(HD + H^2 + HV)``. ``backward``: twice that, one product for the gradient
    flowing to each product's input and one for its weight. ``total``: their sum.
    Elementwise work (``tanh``, softmax) is not counted.
    """
    for name, value in {"B": B, "D": D, "H": H, "V": V}.items():
        check_positive_int(name, value)
    forward = 2 * B * (H * D + H * H + H * V)
    return {"forward": forward, "backward": 2 * forward, "total": 3 * forward}


def phase_fns(T: int, H: int, B: int = 16, D: int = 16, V: int = 16, seed: int = 0):
    """The phases of one random problem as no-argument functions, for timing.

    ``forward``: ``rnn_forward`` (keeping every state); ``backward``: the output
    layer's and ``rnn_backward``'s gradients from the stored states; ``total``:
    ``loss_and_grads``, both together.
    """
    p, xs, h0, targets = make_problem(T, B, D, H, V, seed)
    W = p["W_xh"], p["W_hh"], p["b_h"]
    hs = rnn_forward(xs, h0, *W)

    def backward():
        _, dhs, _, _ = output_backward(hs, p["W_hy"], p["b_y"], targets)
        return rnn_backward(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])

    return {
        "forward": lambda: rnn_forward(xs, h0, *W),
        "backward": backward,
        "total": lambda: loss_and_grads(p, xs, h0, targets),
    }


def sweep(sizes, make, repeats: int = 3, min_seconds: float = 0.005, clock=time.process_time):
    """One row per size: ``size, forward s, backward s, total s, peak bytes of total``.

    ``make(size)`` returns the functions of ``phase_fns``; times are
    ``best_times`` (interleaved, best of ``repeats``), the memory ``peak_bytes``.
    Returns an array of shape ``(len(sizes), 5)``.
    """
    rows = []
    for size in sizes:
        fns = make(size)
        t = best_times(fns, repeats=repeats, min_seconds=min_seconds, clock=clock)
        rows.append([size, t["forward"], t["backward"], t["total"], peak_bytes(fns["total"])])
    return np.array(rows, dtype=float)


def exponent_table(by_T, by_H, large: float = 128) -> dict[str, dict[str, float]]:
    """Fitted exponents of the columns of two ``sweep`` tables.

    Returns ``{column: {"T": e, "H": e, "H_large": e}}`` for the columns
    ``forward, backward, total, memory``; ``H_large`` fits only the sizes ``>= large``.
    """
    by_T, by_H = np.asarray(by_T, dtype=float), np.asarray(by_H, dtype=float)
    big = by_H[:, 0] >= large
    out = {}
    for j, name in enumerate(("forward", "backward", "total", "memory"), start=1):
        out[name] = {
            "T": fit_exponent(by_T[:, 0], by_T[:, j]),
            "H": fit_exponent(by_H[:, 0], by_H[:, j]),
            "H_large": fit_exponent(by_H[big, 0], by_H[big, j]),
        }
    return out


def fit_segment_memory(T: int, segments, peaks) -> dict[str, float]:
    """Least-squares fit of ``M(k) = a T/k + b k + m0`` to peak memories of checkpointed BPTT.

    ``a``: memory of one checkpoint, ``b``: of one step of a segment, ``m0``:
    what does not depend on ``k``. Returns ``a, b, m0`` and the minimiser
    ``k_star = sqrt(a T / b)``.
    """
    ks = np.asarray(segments, dtype=float)
    peaks = np.asarray(peaks, dtype=float)
    if ks.shape != peaks.shape or ks.ndim != 1 or len(ks) < 3:
        raise ValueError(f"need >= 3 segments and as many peaks, got {ks.shape}, {peaks.shape}")
    design = np.stack([T / ks, ks, np.ones_like(ks)], axis=1)
    (a, b, m0), *_ = np.linalg.lstsq(design, peaks, rcond=None)
    return {"a": float(a), "b": float(b), "m0": float(m0), "k_star": float(np.sqrt(a * T / b))}


def strategy_table(T_list, **kwargs) -> dict[str, np.ndarray]:
    """``measure_strategies`` at each ``T``, as arrays.

    Returns ``T``, ``<strategy>_MiB`` and ``<strategy>_seconds`` for each strategy,
    and ``saved`` and ``overhead`` (checkpointed against full), one entry per ``T``.
    Keyword arguments go to ``measure_strategies``.
    """
    rows = [measure_strategies(T, **kwargs) for T in T_list]
    strategies = kwargs.get("strategies", STRATEGIES)
    out = {"T": np.array(T_list)}
    for s in strategies:
        out[f"{s}_MiB"] = np.array([r[f"{s}_peak_MiB"] for r in rows])
        out[f"{s}_seconds"] = np.array([r[f"{s}_seconds"] for r in rows])
    if "full" in strategies and "checkpointed" in strategies:
        out["saved"] = np.array([r["checkpointed_memory_saved"] for r in rows])
        out["overhead"] = np.array([r["checkpointed_time_overhead"] for r in rows])
    return out
