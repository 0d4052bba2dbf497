"""The backward-step diagram draws the cell's inputs, outputs and the gradients between them."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from bptt.diagrams.backward_step import BACKWARD, FORWARD, draw_backward_step  # noqa: E402
from bptt.diagrams.draw import PALETTE  # noqa: E402


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_draws_every_box_and_arrow():
    fig, parts = draw_backward_step()
    try:
        assert set(parts["nodes"]) == {"h_prev", "a", "h", "h_next", "L", "x", "weights"}
        assert len(parts["forward"]) == len(FORWARD) == 5
        assert len(parts["backward"]) == len(BACKWARD) == 5
        assert len(parts["accumulate"]) == 1
        ax = fig.axes[0]
        assert len(ax.patches) == 7 + 5 + 5 + 1  # boxes and arrows, nothing else
    finally:
        plt.close(fig)


def test_gradients_are_orange_and_run_backwards():
    fig, parts = draw_backward_step()
    try:
        orange = matplotlib.colors.to_rgba(PALETTE["backward"])
        for patch in parts["backward"]:
            assert patch.get_edgecolor() == orange
        # dh_next arrives from h_{t+1} (right) and dh_prev leaves towards h_{t-1} (left).
        (x0, _), (x1, _) = parts["backward"][BACKWARD.index(("h_next", "h"))]._posA_posB
        assert x0 > x1
        (x0, _), (x1, _) = parts["backward"][BACKWARD.index(("a", "h_prev"))]._posA_posB
        assert x0 > x1
        green = matplotlib.colors.to_rgba(PALETTE["second"])
        assert parts["accumulate"][0].get_edgecolor() == green
    finally:
        plt.close(fig)


def test_labels_name_what_flows_in_and_out():
    fig, _ = draw_backward_step()
    try:
        text = _texts(fig)
        for code in ["dhs[t]", "dh_next", "da", "dh_prev = da @ W_hh", "dx = da @ W_xh",
                     "dW_hh += da.T @ h_prev", "db_h"]:  # fmt: skip
            assert code in text, code
        for maths in ["J_{t+1}^{\\top}", "(1 - h_t^2)", "\\delta_t", "h_{t-1}", "h_{t+1}"]:
            assert maths in text, maths
    finally:
        plt.close(fig)
