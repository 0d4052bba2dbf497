"""bptt.speed: what it times computes the real thing, and the limit is the sum of its parts."""

import numpy as np
import pytest

from bptt.fast import rnn_backward_fast, rnn_forward_fast
from bptt.speed import critical_path, fast, measure, problem, textbook, torch_autograd


def test_the_timed_versions_compute_the_same_gradients():
    p = problem(6, 3, 5, 4)
    for a, b in zip(fast(p), textbook(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_the_critical_path_runs_the_real_recurrence():
    # The loop alone, with dhs standing in for the hoisted input part x_t W_xh^T + b_h: its
    # states are rnn_forward_fast's for inputs whose projection is dhs, and its backward pass
    # carries dhs back to dh0 like rnn_backward_fast does.
    p = problem(5, 2, 3, 4)
    run = critical_path(p)
    run()
    H = p["W_hh"].shape[0]
    identity = dict(p, xs=p["dhs"], W_xh=np.eye(H), b_h=np.zeros(H))
    hs = rnn_forward_fast(identity["xs"], p["h0"], identity["W_xh"], p["W_hh"], identity["b_h"])
    np.testing.assert_allclose(run.hs, hs, rtol=1e-13)
    _, dh0, *_ = rnn_backward_fast(p["dhs"], identity["xs"], p["h0"], hs, np.eye(H), p["W_hh"])
    np.testing.assert_allclose(run.dh0, dh0, rtol=1e-12)


def test_torch_version_backpropagates():
    p = problem(4, 2, 3, 5)
    torch_autograd(p)()  # runs forward and backward without error


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_measure_reports_every_key_and_the_limit_is_the_sum(dtype):
    row = measure(3, 2, 3, 4, dtype, repeats=1)
    assert row["dtype"] == np.dtype(dtype).name
    for key in ("textbook_ms", "fast_ms", "torch_ms", "gemm_ms", "loop_ms", "limit_ms"):
        assert row[key] > 0
    assert row["limit_ms"] == pytest.approx(row["gemm_ms"] + row["loop_ms"], abs=1e-3)
