"""The measuring tools of bptt.cost: fits, clocks, tracemalloc peaks, the benchmark rows."""

import tracemalloc

import numpy as np
import pytest
import torch

from bptt.backward import loss_and_grads
from bptt.cost import (
    STRATEGIES,
    best_time,
    best_times,
    blas_threads,
    exponent_table,
    fit_exponent,
    fit_segment_memory,
    flops_per_step,
    gradient_fn,
    make_problem,
    measure,
    measure_strategies,
    peak_bytes,
    phase_fns,
    strategy_table,
    sweep,
)
from bptt.graph import saved_bytes
from bptt.oracles import max_rel_error


def test_fit_exponent_recovers_a_power_law():
    sizes = np.array([2.0, 4, 8, 16, 32])
    assert fit_exponent(sizes, 3.0 * sizes**2.5) == pytest.approx(2.5, abs=1e-12)
    assert fit_exponent(sizes, 7.0 / sizes) == pytest.approx(-1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("sizes", "values", "match"),
    [([1, 2], [1, 0], "positive"), ([1, 2, 3], [1, 2], "same length"), ([1], [1], "length")],
)
def test_fit_exponent_rejects_bad_input(sizes, values, match):
    with pytest.raises(ValueError, match=match):
        fit_exponent(sizes, values)


def fake_clock(readings):
    it = iter(readings)
    return lambda: next(it)


def test_best_time_is_the_fastest_run():
    # durations 5, 2, 7 on a fake clock
    assert best_time(lambda: None, 3, fake_clock([0, 5, 10, 12, 20, 27])) == 2


def test_best_times_interleave_and_divide_by_the_number_of_calls():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    # first (untimed) calls take 1 and 4 -> a runs 4 times per timing, b once;
    # then a, b, a, b timed: 8 for 4 calls, 3, 4 for 4 calls, 6
    clock = fake_clock([0, 1, 10, 14, 20, 28, 30, 33, 40, 44, 50, 56])
    best = best_times(fns, repeats=2, min_seconds=4, clock=clock)
    assert best == {"a": 1.0, "b": 3}
    assert calls == ["a", "b"] + ["a"] * 4 + ["b"] + ["a"] * 4 + ["b"]
    with pytest.raises(ValueError, match="repeats"):
        best_times(fns, repeats=0)


def test_peak_bytes_counts_numpy_arrays_and_restores_tracing():
    assert not tracemalloc.is_tracing()
    n = 10**6
    peak = peak_bytes(lambda: np.ones(n).sum())
    assert 8 * n <= peak < 8 * n + 100_000
    assert peak_bytes(lambda: None) < 10_000
    assert not tracemalloc.is_tracing()


def test_peak_bytes_ignores_arrays_allocated_before():
    big = np.ones(10**6)
    assert peak_bytes(lambda: big.sum()) < 10_000


def test_torch_saved_bytes_skips_excluded_storages():
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    _, counted = saved_bytes(lambda: (x * w).sum())  # mul saves both factors
    _, without_x = saved_bytes(lambda: (x * w).sum(), exclude=[x])
    assert counted == 16_000 and without_x == 8_000


def test_blas_threads_restores_the_settings():
    before = torch.get_num_threads()
    with blas_threads(1) as found:
        assert torch.get_num_threads() == 1
        assert isinstance(found, bool)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be a positive integer"):
        with blas_threads(0):
            pass


def test_gradient_fns_compute_the_right_gradients():
    params, xs, h0, targets = make_problem(9, 2, 3, 4, 5)
    _, full = loss_and_grads(params, xs, h0, targets)
    _, checkpointed = gradient_fn("checkpointed", params, xs, h0, targets, segment=2)()
    _, truncated, _ = gradient_fn("truncated", params, xs, h0, targets, k=9)()  # k >= T: full
    _, short, _ = gradient_fn("truncated", params, xs, h0, targets, k=2)()
    for key in full:
        assert max_rel_error(checkpointed[key], full[key]) < 1e-12
        assert max_rel_error(truncated[key], full[key]) < 1e-12
    assert max_rel_error(short["W_hh"], full["W_hh"]) > 1e-3  # truncation changes it
    with pytest.raises(ValueError, match="strategy must be one of"):
        gradient_fn("magic", params, xs, h0, targets)


def test_measure_strategies_row():
    row = measure_strategies(64, B=2, D=3, H=8, V=5, k=8, repeats=1)
    for s in STRATEGIES:
        assert row[f"{s}_seconds"] > 0 and row[f"{s}_peak_MiB"] > 0
    assert row["T"] == 64
    assert row["checkpointed_peak_MiB"] < row["full_peak_MiB"]
    saved = 1 - row["checkpointed_peak_MiB"] / row["full_peak_MiB"]
    assert row["checkpointed_memory_saved"] == pytest.approx(saved)
    assert all(isinstance(v, int | float) for v in row.values())  # a flat row for the report
    one = measure("full", 16, B=2, D=3, H=8, V=5, repeats=1, threads=None)
    assert one["strategy"] == "full" and one["seconds"] > 0 and one["peak_bytes"] > 0
    with pytest.raises(ValueError, match="strategies must be among"):
        measure_strategies(8, strategies=("full", "fast"))


def test_make_problem_is_seeded_and_validated():
    a, b = make_problem(3, 2, 3, 4, 5, seed=1), make_problem(3, 2, 3, 4, 5, seed=1)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0]["W_hh"], b[0]["W_hh"])
    assert a[1].shape == (3, 2, 3) and a[2].shape == (2, 4) and a[3].shape == (3, 2)
    with pytest.raises(ValueError, match="H must be a positive integer"):
        make_problem(3, 2, 3, 0, 5)


def test_flops_per_step_counts_the_three_products():
    f = flops_per_step(B=2, D=3, H=4, V=5)
    assert f["forward"] == 2 * 2 * (4 * 3 + 4 * 4 + 4 * 5)
    assert f["backward"] == 2 * f["forward"] and f["total"] == 3 * f["forward"]
    with pytest.raises(ValueError, match="H must be a positive integer"):
        flops_per_step(2, 3, 0, 5)


def test_phase_fns_compute_the_phases():
    fns = phase_fns(5, 4, B=2, D=3, V=3)
    p, xs, h0, targets = make_problem(5, 2, 3, 4, 3)
    assert fns["forward"]().shape == (5, 2, 4)
    loss, grads = fns["total"]()
    assert loss == pytest.approx(loss_and_grads(p, xs, h0, targets)[0])
    _, _, dW_xh, dW_hh, _ = fns["backward"]()  # the recurrent part of the same gradient
    assert max_rel_error(dW_hh, grads["W_hh"]) < 1e-12
    assert max_rel_error(dW_xh, grads["W_xh"]) < 1e-12


def test_sweep_and_exponent_table():
    by_T = sweep([4, 8, 16], lambda T: phase_fns(T, 4, B=2, D=3, V=3), repeats=1, min_seconds=0)
    assert by_T.shape == (3, 5) and (by_T[:, 1:] > 0).all()
    assert list(by_T[:, 0]) == [4, 8, 16]
    assert by_T[2, 4] > by_T[0, 4]  # memory grows with T
    # a synthetic table: time ~ size, memory ~ size^2 above 128
    sizes = np.array([32.0, 64, 128, 256])
    table = np.stack([sizes, sizes, sizes, sizes, sizes**2], 1)
    e = exponent_table(table, table, large=128)
    assert e["total"]["T"] == pytest.approx(1) and e["memory"]["H_large"] == pytest.approx(2)


def test_fit_segment_memory_recovers_the_model():
    T, ks = 400, np.array([2, 4, 8, 16, 32])
    fit = fit_segment_memory(T, ks, 0.5 * T / ks + 2.0 * ks + 3.0)
    assert fit["a"] == pytest.approx(0.5) and fit["b"] == pytest.approx(2.0)
    assert fit["m0"] == pytest.approx(3.0) and fit["k_star"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="need >= 3"):
        fit_segment_memory(T, [1, 2], [1, 2])


def test_strategy_table_collects_rows():
    out = strategy_table([64, 128], B=2, D=3, H=8, V=5, k=8, repeats=1)
    assert list(out["T"]) == [64, 128]
    assert (out["checkpointed_MiB"] < out["full_MiB"]).all()
    assert out["saved"].shape == (2,) and out["overhead"].shape == (2,)
