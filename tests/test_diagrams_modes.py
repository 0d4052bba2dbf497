"""The forward-mode / reverse-mode diagram: what each panel keeps and where gradients leave."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bptt.diagrams.modes import draw_modes, modes_layout  # noqa: E402


@pytest.mark.parametrize("T", [1, 3, 4, 6])
def test_layout_counts(T):
    lay = modes_layout(T)
    # reverse mode keeps h_0 .. h_T; forward mode keeps only h_T and P_T
    assert lay.count("reverse", "kept") == T + 1 and lay.count("reverse", "freed") == 0
    assert lay.count("forward", "kept") == 2 and lay.count("forward", "freed") == 2 * T
    # one gradient for the whole sequence against one per step
    assert lay.count("reverse", "grad") == 1 and lay.count("forward", "grad") == T
    # reverse: L_t -> h_t, h_t -> h_{t-1} (t >= 2), h_1 -> gradient; forward: P_t -> gradient
    assert lay.count("reverse", "gradient") == 2 * T and lay.count("forward", "gradient") == T
    assert lay.count("forward", "sensitivity") == 2 * T
    assert lay.count("reverse", "sensitivity") == 0
    assert lay.count("reverse", "forward") == lay.count("forward", "forward") == 2 * T


def test_draw_labels_and_patches():
    fig, lay = draw_modes(4)
    ax = fig.axes[0]
    assert len(ax.patches) == len(lay.nodes) + len(lay.arrows)
    texts = {t.get_text() for t in ax.texts}
    assert {"reverse mode: BPTT", "forward mode: RTRL", "$P_{4}$", "$h_{0}$", "$L_{4}$"} <= texts
    assert r"$\nabla_{\theta} L_{4}$" in texts
    plt.close(fig)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        modes_layout(0)
