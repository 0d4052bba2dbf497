"""The checkpoint-schedule diagram draws what checkpointed_grads does."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bptt.checkpoint import checkpoint_schedule  # noqa: E402
from bptt.diagrams.checkpoint import draw_checkpoint_schedule, schedule_layout  # noqa: E402


@pytest.mark.parametrize("T, k", [(12, 4), (10, 4), (7, 3), (5, 5)])
def test_layout_follows_the_schedule(T, k):
    lay = schedule_layout(T, k)
    n_seg = len(checkpoint_schedule(T, k))
    assert len(lay.rows) == 1 + n_seg and lay.rows[0] == "forward pass"
    forward = [n for n in lay.nodes if n[0] == 0]
    assert len(forward) == T + 1  # h_0 .. h_T
    assert {t for _, t, role in forward if role == "stored"} == set(range(0, T, k))
    assert lay.count("recomputed") == T  # every state recomputed exactly once
    assert lay.count("gradient") == T  # one backward step per time step
    assert lay.count("recompute") == T and lay.count("forward") == T
    assert lay.count("carry") == n_seg - 1  # handed from each segment to the one before
    assert lay.rows[1] == f"backward, segment {n_seg}"  # the last segment comes first


def test_draw_puts_every_node_and_arrow_on_the_canvas():
    fig, lay = draw_checkpoint_schedule(12, 4)
    ax = fig.axes[0]
    assert len(ax.patches) == len(lay.nodes) + len(lay.arrows) == 28 + 38
    labels = {text.get_text() for text in ax.texts}
    assert {"$h_{0}$", "$h_{12}$", "forward pass", "backward, segment 1"} <= labels
    assert len(ax.get_legend().get_texts()) == 5
    plt.close(fig)
