"""The LSTM cell and the GRU cell, drawn in PyTorch's convention.

Each cell is first described as data, ``lstm_cell_spec()`` / ``gru_cell_spec()``: named nodes
(states, gates, operators) and the edges between them. ``draw_cell`` renders a spec with the
primitives of ``bptt.diagrams.draw``, so the tests can check the structure (which edges make
up the cell state's path, which gates exist) and the drawing alike.

Colours follow the book's palette: black is the computation; green marks the path along which
the state is carried by a product with a gate and an addition, with no weight matrix.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from bptt.diagrams.draw import PALETTE, arrow, canvas, node

# node kinds -> (fill, size)
_STYLE = {
    "state": ("state", (1.0, 0.6)),
    "input": ("input", (1.0, 0.6)),
    "gate": ("white", (1.1, 0.62)),
    "op": ("white", (0.5, 0.5)),
    "wide": ("white", (1.05, 0.5)),
    "long": ("white", (1.6, 0.62)),
    "dot": (PALETTE["second"], (0.12, 0.12)),
}
TOP, OPS, GATES, BUS = 4.4, 3.4, 2.45, 1.5


def lstm_cell_spec() -> dict:
    """One LSTM step, ``c_t = f_t * c_{t-1} + i_t * g_t`` and ``h_t = o_t * tanh(c_t)``.

    Returns ``{"nodes": {name: (x, y, label, kind)}, "edges": [(from, to, path)],
    "bus": {...}, "notes": [(x, y, text)]}``; ``path`` is ``"cell"`` on the cell state's path.
    """
    nodes = {
        "c_prev": (0.8, TOP, r"$c_{t-1}$", "state"),
        "forget": (3.0, TOP, r"$\times$", "op"),
        "add": (5.6, TOP, r"$+$", "op"),
        "branch": (8.4, TOP, "", "dot"),
        "c": (10.4, TOP, r"$c_t$", "state"),
        "h_prev": (0.8, BUS, r"$h_{t-1}$", "state"),
        "x": (2.2, 0.45, r"$x_t$", "input"),
        "f": (3.0, GATES, r"$f_t = \sigma$", "gate"),
        "i": (4.4, GATES, r"$i_t = \sigma$", "gate"),
        "g": (5.8, GATES, r"$g_t = \tanh$", "gate"),
        "o": (7.2, GATES, r"$o_t = \sigma$", "gate"),
        "write": (5.6, OPS, r"$\times$", "op"),
        "squash": (8.4, OPS, r"$\tanh$", "wide"),
        "show": (8.4, GATES, r"$\times$", "op"),
        "h": (10.4, GATES, r"$h_t$", "state"),
    }
    edges = [
        ("c_prev", "forget", "cell"),
        ("forget", "add", "cell"),
        ("add", "branch", "cell"),
        ("branch", "c", "cell"),
        ("f", "forget", "forward"),
        ("i", "write", "forward"),
        ("g", "write", "forward"),
        ("write", "add", "forward"),
        ("branch", "squash", "forward"),
        ("squash", "show", "forward"),
        ("o", "show", "forward"),
        ("show", "h", "forward"),
    ]
    bus = {"from": "h_prev", "joins": ["x"], "to": ["f", "i", "g", "o"]}
    notes = [
        (6.0, 0.9, r"$a_t = W_x x_t + W_h h_{t-1} + b$, split in rows $i, f, g, o$"),
        (5.6, 4.95, "cell state: one product with $f_t$ and one addition per step"),
    ]
    return {"nodes": nodes, "edges": edges, "bus": bus, "notes": notes}


def gru_cell_spec() -> dict:
    """One GRU step in PyTorch's convention, ``h_t = (1 - u_t) * n_t + u_t * h_{t-1}``,
    with the reset gate applied after the recurrent matmul. Same format as ``lstm_cell_spec``;
    ``path`` is ``"cell"`` on the direct path ``h_{t-1} -> u_t * h_{t-1} -> h_t``."""
    nodes = {
        "h_top": (0.8, TOP, r"$h_{t-1}$", "state"),
        "keep": (3.0, TOP, r"$\times$", "op"),
        "add": (9.2, TOP, r"$+$", "op"),
        "h": (10.4, TOP, r"$h_t$", "state"),
        "h_prev": (0.8, BUS, r"$h_{t-1}$", "state"),
        "x": (2.2, 0.45, r"$x_t$", "input"),
        "u": (3.0, GATES, r"$u_t = \sigma$", "gate"),
        "r": (4.6, GATES, r"$r_t = \sigma$", "gate"),
        "hn": (6.3, GATES, r"$W_{hn}h_{t-1} + b_{hn}$", "long"),
        "reset": (6.3, OPS, r"$\times$", "op"),
        "n": (7.7, OPS, r"$n_t = \tanh$", "gate"),
        "mix": (9.2, OPS, r"$\times (1 - u_t)$", "wide"),
    }
    edges = [
        ("h_top", "keep", "cell"),
        ("keep", "add", "cell"),
        ("add", "h", "cell"),
        ("u", "keep", "forward"),
        ("r", "reset", "forward"),
        ("hn", "reset", "forward"),
        ("reset", "n", "forward"),
        ("n", "mix", "forward"),
        ("mix", "add", "forward"),
    ]
    bus = {"from": "h_prev", "joins": ["x"], "to": ["u", "r", "hn", "n"]}
    notes = [
        (6.2, 0.9, r"$W_x x_t + b_x$ and $W_h h_{t-1}$, split in rows $r, u, n$"),
        (5.9, 4.95, "direct path: one product with $u_t$ and one addition per step"),
    ]
    return {"nodes": nodes, "edges": edges, "bus": bus, "notes": notes}


def _half(kind):
    w, h = _STYLE[kind][1]
    return w / 2 + 0.03, h / 2 + 0.03


def _edge_points(a, b):
    """Where the segment between two node centres leaves box ``a`` and enters box ``b``."""
    (xa, ya, _, ka), (xb, yb, _, kb) = a, b
    dx, dy = xb - xa, yb - ya

    def leave(kind):
        hw, hh = _half(kind)
        return min(hw / abs(dx) if dx else float("inf"), hh / abs(dy) if dy else float("inf"))

    ta, tb = leave(ka), 1.0 - leave(kb)
    return (xa + ta * dx, ya + ta * dy), (xa + tb * dx, ya + tb * dy)


def draw_cell(spec: dict, title: str | None = None, figsize=(9.0, 4.4)):
    """Render a cell spec; returns the figure. Every node is one box patch, every edge and every
    arrow of the input bus one arrow patch:
    ``len(ax.patches) == len(nodes) + len(edges) + len(bus["joins"]) + len(bus["to"])``."""
    fig, ax = canvas(11.0, 5.3, figsize=figsize)
    nodes = spec["nodes"]
    for x, y, label, kind in nodes.values():
        fill, size = _STYLE[kind]
        node(ax, (x, y), label, kind=fill, size=size, fontsize=10, edge=None)
    for start, end, path in spec["edges"]:
        a, b = _edge_points(nodes[start], nodes[end])
        cell = path == "cell"
        arrow(ax, a, b, kind="second" if cell else "forward", lw=3.0 if cell else 1.3)
    bus = spec["bus"]
    hx, y, _, kind = nodes[bus["from"]]
    left = hx + _half(kind)[0]
    right = max(nodes[n][0] for n in bus["to"])
    ax.plot([left, right], [y, y], color=PALETTE["forward"], lw=1.3)
    for name in bus["joins"]:
        jx, jy, _, kind = nodes[name]
        arrow(ax, (jx, jy + _half(kind)[1]), (jx, y), lw=1.3)
    for name in bus["to"]:
        gx, gy, _, kind = nodes[name]
        arrow(ax, (gx, y), (gx, gy - _half(kind)[1]), lw=1.3)
    for x, y_note, text in spec["notes"]:
        ax.text(x, y_note, text, ha="center", va="center", fontsize=9, color=PALETTE["forward"])
    if title:
        ax.set_title(title, fontsize=11)
    return fig


def draw_lstm_cell():
    """The LSTM cell (PyTorch's gates i, f, g, o); the cell state's path in green."""
    return draw_cell(lstm_cell_spec())


def draw_gru_cell():
    """The GRU cell (PyTorch's gates r, u, n, reset after the matmul); the direct path in green."""
    return draw_cell(gru_cell_spec())


if __name__ == "__main__":  # python -m bptt.diagrams.gated_cells: write both to /tmp
    for name, fn in (("lstm", draw_lstm_cell), ("gru", draw_gru_cell)):
        fn().savefig(f"/tmp/diag/{name}.png", dpi=110, bbox_inches="tight")
        plt.close("all")
