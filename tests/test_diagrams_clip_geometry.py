"""The clipping diagram: its vectors are the package's clips, and it draws what it says."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle  # noqa: E402

from bptt.diagrams.clip_geometry import clipped_vectors, draw_clip_geometry  # noqa: E402
from bptt.diagrams.draw import PALETTE  # noqa: E402


def test_global_norm_keeps_the_direction_and_value_clipping_turns_it():
    v = clipped_vectors((2.4, 1.0), 1.0)
    assert np.linalg.norm(v["global"]) == pytest.approx(1.0, abs=1e-5)  # onto the ball (eps)
    assert v["cos_global"] == pytest.approx(1.0, abs=1e-12)
    g, c = v["g"], v["global"]
    assert g[0] * c[1] - g[1] * c[0] == pytest.approx(0.0, abs=1e-12)  # same ray
    np.testing.assert_array_equal(v["value"], [1.0, 1.0])  # the box's corner
    assert v["cos_value"] < 0.95
    with pytest.raises(ValueError, match="2 entries"):
        clipped_vectors((1.0, 2.0, 3.0))


def test_draws_ball_box_and_three_arrows():
    fig = draw_clip_geometry((2.4, 1.0), 1.0, unit=1.5)
    ax = fig.axes[0]
    circles = [p for p in ax.patches if isinstance(p, Circle)]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(circles) == 1 and circles[0].get_radius() == pytest.approx(1.5)
    assert any(b.get_width() == pytest.approx(3.0) for b in boxes)
    assert len(arrows) == 3
    colours = {tuple(np.round(a.get_edgecolor()[:3], 3)) for a in arrows}
    expected = {
        tuple(np.round(matplotlib.colors.to_rgb(PALETTE[k]), 3))
        for k in ("backward", "second", "forward")
    }
    assert colours == expected
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "global norm" in texts and "value" in texts and "cos = 1.00" in texts
    assert "ball ‖G‖ ≤ 1" in texts and "box |G₁|, |G₂| ≤ 1" in texts
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[1].startswith("clipped by global norm") and labels[2].endswith("turned")
    plt.close(fig)
