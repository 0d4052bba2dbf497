"""The graph-measuring helpers and the torch bridges."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from bptt.graph import graph_size, saved_bytes  # noqa: E402
from bptt.oracles import max_rel_error, torch_params, torch_rnn_from_params  # noqa: E402


def test_graph_size_counts_distinct_nodes():
    w = torch.tensor(2.0, requires_grad=True)
    y = w * w  # MulBackward0 -> AccumulateGrad
    assert graph_size(y) == 2
    z = (y * 3).sin()
    assert graph_size(z) == 4
    with pytest.raises(ValueError, match="requires grad"):
        graph_size(torch.tensor(1.0))


def test_saved_bytes_grows_linearly_with_steps():
    W = torch.randn(8, 8, requires_grad=True)

    def run(T):
        h = torch.ones(4, 8)
        for _ in range(T):
            h = torch.tanh(h @ W)
        return h.sum()

    Ts = [2, 4, 8, 16]
    sizes = [saved_bytes(lambda T=T: run(T))[1] for T in Ts]
    per_step = np.diff(sizes) / np.diff(Ts)
    # Each step saves its tanh output (4 x 8 float32 = 128 bytes), which the
    # next step's matmul reuses: counted once.
    np.testing.assert_array_equal(per_step, 128)


def test_max_rel_error():
    a = np.array([1.0, 100.0])
    assert max_rel_error(a, a) == 0.0
    assert max_rel_error(a, a + [0.0, 1.0]) == pytest.approx(1 / 101)
    assert max_rel_error(torch.tensor(a), a) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        max_rel_error(a, a[:1])


def test_torch_bridges_copy_values(problem):
    rnn = torch_rnn_from_params(problem["params"])
    np.testing.assert_array_equal(rnn.weight_hh_l0.detach().numpy(), problem["params"]["W_hh"])
    assert torch.count_nonzero(rnn.bias_hh_l0) == 0
    tp = torch_params(problem["params"])
    assert all(t.requires_grad and t.dtype == torch.float64 for t in tp.values())
    with pytest.raises(ValueError, match="params is missing"):
        torch_params({"W_xh": problem["params"]["W_xh"]})
