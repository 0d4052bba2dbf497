"""The Jacobian-chain diagram draws what its caption says: T states, a loss, T backward arcs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bptt.diagrams.draw import PALETTE  # noqa: E402
from bptt.diagrams.jacobian_chain import (  # noqa: E402
    LW_MAX,
    LW_MIN,
    arc_widths,
    chain_norms,
    draw_jacobian_chain,
)


@pytest.mark.parametrize("T", [1, 4, 7])
def test_counts_per_row(T):
    rows = (("shrinks", 0.5), ("grows", 2.0), ("neutral", 1.0))
    fig = draw_jacobian_chain(T=T, rows=rows)
    parts = fig.axes[0].diagram
    assert len(parts["nodes"]) == len(rows) * (T + 1)  # h_1..h_T and L_T in every row
    assert len(parts["forward"]) == len(rows) * T  # h_1 -> .. -> h_T -> L_T
    assert len(parts["backward"]) == len(rows) * T  # L_T -> h_T -> .. -> h_1
    assert parts["labels"][: T + 1] == [f"$h_{{{t}}}$" for t in range(1, T + 1)] + [f"$L_{{{T}}}$"]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert all(title in texts for title, _ in rows)
    # one J_{t+1}^T label per step between two states, in every row
    assert sum("^\\top$" in t and t.startswith("$J_") for t in texts) == len(rows) * (T - 1)
    plt.close(fig)


def test_backward_arcs_are_orange_and_thin_out_when_the_factor_is_below_one():
    T = 6
    fig = draw_jacobian_chain(T=T, rows=(("v", 0.5), ("e", 1.6)))
    parts = fig.axes[0].diagram
    colours = {tuple(np.round(a.get_edgecolor()[:3], 3)) for a in parts["backward"]}
    assert colours == {tuple(np.round(matplotlib.colors.to_rgb(PALETTE["backward"]), 3))}
    widths = [a.get_linewidth() for a in parts["backward"]]  # drawn from L_T backwards
    vanishing, exploding = widths[:T], widths[T:]
    assert np.all(np.diff(vanishing) < 0) and np.all(np.diff(exploding) > 0)
    assert min(widths) == pytest.approx(LW_MIN) and max(widths) == pytest.approx(LW_MAX)
    np.testing.assert_allclose(parts["norms"][0], 0.5 ** np.arange(T - 1, -1, -1))
    plt.close(fig)


def test_widths_are_affine_in_the_log_of_the_norm():
    norms = chain_norms(5, 3.0)
    assert norms[-1] == 1.0 and norms[0] == 81.0
    w = arc_widths(norms, np.log(norms.min()), np.log(norms.max()))
    np.testing.assert_allclose(np.diff(w), np.diff(w)[0])  # equal steps: log-linear
    assert np.all(arc_widths([2.0, 2.0], 1.0, 1.0) == (LW_MIN + LW_MAX) / 2)


def test_value_errors():
    with pytest.raises(ValueError, match="T"):
        draw_jacobian_chain(T=0)
    with pytest.raises(ValueError, match="factor"):
        chain_norms(3, 0.0)
    with pytest.raises(ValueError, match="rows"):
        draw_jacobian_chain(T=3, rows=())
