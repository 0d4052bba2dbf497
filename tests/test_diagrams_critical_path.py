"""The critical-path diagram draws T steps each way, twice, and the hoisted GEMMs once each."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from bptt.diagrams.critical_path import draw_critical_path  # noqa: E402
from bptt.diagrams.draw import PALETTE  # noqa: E402


@pytest.mark.parametrize("T", [2, 4, 6])
def test_boxes_and_sequential_arrows(T):
    ax = draw_critical_path(T).axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(boxes) == 4 * T + 2  # 2T per loop, plus the fast loop's two GEMM blocks
    orange = mcolors.to_rgba(PALETTE["backward"])
    chain = [a for a in arrows if mcolors.to_rgba(a.get_edgecolor()) == orange]
    assert len(chain) == 4 * (T - 1)  # forward and backward chains of both loops
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "one GEMM" in texts and "three GEMMs" in texts and f"step {T}" in texts


def test_a_chain_needs_two_steps():
    with pytest.raises(ValueError, match="T must be at least 2"):
        draw_critical_path(1)
