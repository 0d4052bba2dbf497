"""The unrolled-graph diagram draws what its arguments say: nodes, forward and backward arrows."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bptt.diagrams.draw import PALETTE  # noqa: E402
from bptt.diagrams.unrolled import draw_unrolled  # noqa: E402


def _parts(fig):
    (ax,) = fig.axes
    texts = {t.get_text() for t in ax.texts}
    counts = {kind: len(items) for kind, items in ax.diagram.items()}
    plt.close(fig)
    return counts, texts


def test_every_step_has_its_nodes_and_forward_arrows():
    counts, texts = _parts(draw_unrolled(T=3))
    # h_0, then x_t, h_t, y_t, L_t per step; x->h, h->h, h->y, y->L per step.
    assert counts == {"nodes": 1 + 4 * 3, "forward": 4 * 3, "backward": 0, "second": 0}
    assert {"$x_1$", "$x_3$", "$h_0$", "$h_3$", "$y_3$", "$L_3$", "$W_{hh}$"} <= texts


def test_last_step_loss_keeps_one_output_and_one_loss():
    counts, texts = _parts(draw_unrolled(T=3, last_step_loss=True))
    assert counts["nodes"] == 1 + 2 * 3 + 2
    assert counts["forward"] == 2 * 3 + 2
    assert "$L_3$" in texts and "$L_1$" not in texts and "$y_2$" not in texts


def test_backward_draws_two_paths_into_every_state_but_the_last():
    counts, _ = _parts(draw_unrolled(T=4, backward=True))
    assert counts["backward"] == 4  # from each loss L_t into h_t
    assert counts["second"] == 3  # from h_{t+1} into h_t, t < T
    counts, _ = _parts(draw_unrolled(T=4, last_step_loss=True, backward=True))
    assert counts["backward"] == 1 and counts["second"] == 3


def test_highlight_draws_and_labels_only_the_paths_into_that_state():
    fig = draw_unrolled(T=4, highlight=2, rolled=True)
    (ax,) = fig.axes
    colours = [matplotlib.colors.to_hex(a.get_edgecolor()) for a in ax.diagram["backward"]]
    assert colours == [PALETTE["backward"]]
    assert len(ax.diagram["second"]) == 1
    counts, texts = _parts(fig)
    assert r"$\partial L_{2}/\partial h_{2}$" in texts
    assert r"$J_{3}^\top \delta_{3}$" in texts
    assert {"$h_t$", "$x_t$", "unroll"} <= texts  # the rolled cell beside the unrolled graph
    assert counts["nodes"] == 4 + 1 + 4 * 4


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="T must be a positive integer"):
        draw_unrolled(T=0)
    with pytest.raises(ValueError, match="highlight must be a step in 1..4"):
        draw_unrolled(T=4, highlight=5)
