"""The LSTM and GRU cell diagrams draw PyTorch's gates and the additive path."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bptt.diagrams.draw import PALETTE  # noqa: E402
from bptt.diagrams.gated_cells import (  # noqa: E402
    draw_gru_cell,
    draw_lstm_cell,
    gru_cell_spec,
    lstm_cell_spec,
)


def path(spec, start, end):
    """The chain of 'cell' edges from start to end, as a list of node names."""
    nxt = {a: b for a, b, kind in spec["edges"] if kind == "cell"}
    chain = [start]
    while chain[-1] != end:
        chain.append(nxt[chain[-1]])
    return chain


def test_lstm_spec_has_pytorchs_gates_and_the_cell_path():
    spec = lstm_cell_spec()
    labels = " ".join(label for *_, label, _ in spec["nodes"].values())
    for gate in ("i_t", "f_t", "g_t", "o_t", "c_{t-1}", "c_t", "h_{t-1}", "h_t", "x_t"):
        assert gate in labels
    assert spec["bus"]["to"] == ["f", "i", "g", "o"]  # each gate reads x_t and h_{t-1}
    chain = path(spec, "c_prev", "c")
    assert [spec["nodes"][n][2] for n in chain if spec["nodes"][n][3] == "op"] == [
        r"$\times$",
        r"$+$",
    ]  # c_{t-1} -> forget multiply -> add -> c_t, nothing else on the way
    assert ("f", "forget", "forward") in spec["edges"]
    assert ("write", "add", "forward") in spec["edges"]  # i_t * g_t is added
    assert ("o", "show", "forward") in spec["edges"]


def test_gru_spec_has_reset_after_the_matmul_and_the_direct_path():
    spec = gru_cell_spec()
    labels = " ".join(label for *_, label, _ in spec["nodes"].values())
    for name in ("r_t", "u_t", "n_t", "W_{hn}h_{t-1} + b_{hn}", "1 - u_t"):
        assert name in labels
    assert "z_t" not in labels  # z is the logits in this book
    assert path(spec, "h_top", "h") == ["h_top", "keep", "add", "h"]
    assert ("u", "keep", "forward") in spec["edges"]
    assert ("hn", "reset", "forward") in spec["edges"] and ("r", "reset", "forward") in spec[
        "edges"
    ]


@pytest.mark.parametrize(
    "draw, spec", [(draw_lstm_cell, lstm_cell_spec), (draw_gru_cell, gru_cell_spec)]
)
def test_drawing_has_one_patch_per_node_and_arrow_and_the_path_in_green(draw, spec):
    s = spec()
    fig = draw()
    ax = fig.axes[0]
    bus = s["bus"]
    assert len(ax.patches) == len(s["nodes"]) + len(s["edges"]) + len(bus["joins"]) + len(bus["to"])
    green = matplotlib.colors.to_rgba(PALETTE["second"])
    thick = [p for p in ax.patches if p.get_linewidth() == 3.0]
    assert len(thick) == sum(kind == "cell" for *_, kind in s["edges"])
    assert all(p.get_edgecolor() == green for p in thick)
    texts = {t.get_text() for t in ax.texts}
    assert {label for *_, label, _ in s["nodes"].values() if label} <= texts
    plt.close(fig)
