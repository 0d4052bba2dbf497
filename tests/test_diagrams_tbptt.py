"""The TBPTT(k1, k2) timeline draws what the schedule says: states, losses and gradient arrows."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from bptt.diagrams.draw import PALETTE  # noqa: E402
from bptt.diagrams.tbptt import backward_arrows, draw_tbptt_timeline  # noqa: E402


def texts(ax):
    return [t.get_text() for t in ax.texts]


def arrows(ax, kind):
    return [
        p
        for p in ax.patches
        if isinstance(p, FancyArrowPatch) and to_hex(p.get_edgecolor()) == PALETTE[kind]
    ]


@pytest.mark.parametrize(
    "T, k1, k2, n_backward, n_cut",
    [
        # Updates at t = 3, 6, 9, 12 with windows from h_0, h_1, h_4, h_7: transitions
        # 2 + 4 + 4 + 4 inside the windows, and all 12 losses inside theirs.
        (12, 3, 5, 26, 4),
        # k2 < k1: windows h_3..h_4 and h_7..h_8 (one transition each) take 2 losses each;
        # L_1, L_2, L_5, L_6 and the short last chunk's L_9, L_10 reach no state.
        (10, 4, 2, 2 + 4, 2),
        (6, 6, 6, 5 + 6, 1),  # full BPTT: one update, one window from h_0
    ],
)
def test_timeline_follows_the_schedule(T, k1, k2, n_backward, n_cut):
    fig = draw_tbptt_timeline(T, k1, k2)
    ax = fig.axes[0]
    assert backward_arrows(ax) == len(arrows(ax, "backward")) == n_backward
    assert len(arrows(ax, "forward")) == T  # the forward pass is never cut
    assert texts(ax).count("×") == n_cut
    # Every loss L_1..L_T is drawn exactly once, by the update that owns it.
    for s in range(1, T + 1):
        assert texts(ax).count(f"$L_{{{s}}}$") == 1, s
    muted = [
        p
        for p in ax.patches
        if isinstance(p, FancyBboxPatch) and to_hex(p.get_facecolor()) == PALETTE["muted"]
    ]
    assert len(muted) == n_cut  # one constant state per update that has a window
    plt.close(fig)


def test_losses_outside_the_window_are_grey_and_dashed():
    fig = draw_tbptt_timeline(10, 4, 2)
    grey = arrows(fig.axes[0], "muted")
    assert len(grey) == 6 and all(p.get_linestyle() == "--" for p in grey)
    assert "update at\n$t = 10$" in texts(fig.axes[0])
    plt.close(fig)
