"""Reverse mode (BPTT) against forward mode (RTRL), on the same unrolled tanh RNN.

Top, reverse mode: the forward pass stores every state ``h_1 .. h_T``; then the gradient runs
backwards through them, and the parameters' gradient is complete only when it reaches
``h_1``, after the sequence has ended.

Bottom, forward mode: each state travels with its sensitivity ``P_t = dh_t/dtheta``, updated
from ``P_{t-1}`` and ``h_t`` (green). The gradient of each step's loss leaves at that step
(orange); states and sensitivities of the past are freed (grey), only ``h_T, P_T`` remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from bptt.checks import check_positive_int
from bptt.diagrams.draw import PALETTE, arrow, canvas, node

DX, LEFT = 1.3, 3.7
W, H = 0.78, 0.46
# The height of each row of nodes, top to bottom; the first word names the panel.
ROWS = {
    ("reverse", "loss"): 8.9,
    ("reverse", "state"): 8.0,
    ("reverse", "gradient"): 6.85,
    ("forward", "loss"): 5.3,
    ("forward", "state"): 4.4,
    ("forward", "sensitivity"): 3.5,
    ("forward", "gradient"): 2.55,
}
TITLES = {"reverse": ("reverse mode: BPTT", 9.65), "forward": ("forward mode: RTRL", 6.05)}
ROW_LABELS = {
    ("reverse", "state"): "states, all stored",
    ("reverse", "gradient"): "gradient, at the end",
    ("forward", "state"): "states, the last kept",
    ("forward", "sensitivity"): "sensitivities",
    ("forward", "gradient"): "gradient, every step",
    ("reverse", "loss"): "losses",
    ("forward", "loss"): "losses",
}


@dataclass
class Layout:
    """Nodes ``(panel, row, t, role, label)``, arrows ``((panel, row, t), (panel, row, t), role)``.

    Node roles: ``kept`` (in memory at the end), ``freed``, ``loss``, ``grad``. Arrow roles:
    ``forward`` (the computation), ``sensitivity`` (the forward-mode update) and
    ``gradient``.
    """

    T: int
    nodes: list[tuple[str, str, int, str, str]] = field(default_factory=list)
    arrows: list[tuple[tuple, tuple, str]] = field(default_factory=list)

    def count(self, panel: str, role: str) -> int:
        nodes = sum(n[0] == panel and n[3] == role for n in self.nodes)
        arrows = sum(a[0][0] == panel and a[2] == role for a in self.arrows)
        return nodes + arrows


def modes_layout(T: int = 4) -> Layout:
    """What the two panels draw for a sequence of ``T`` steps."""
    T = check_positive_int("T", T)
    out = Layout(T)
    for panel in ("reverse", "forward"):
        for t in range(T + 1):
            kept = panel == "reverse" or t == T
            out.nodes.append((panel, "state", t, "kept" if kept else "freed", f"$h_{{{t}}}$"))
        for t in range(1, T + 1):
            out.nodes.append((panel, "loss", t, "loss", f"$L_{{{t}}}$"))
            out.arrows.append(((panel, "state", t - 1), (panel, "state", t), "forward"))
            out.arrows.append(((panel, "state", t), (panel, "loss", t), "forward"))
    # reverse mode: the gradient enters each state from its loss and from the next state
    out.nodes.append(("reverse", "gradient", 0, "grad", r"$\nabla_{\theta}\mathcal{L}$"))
    for t in range(T, 0, -1):
        out.arrows.append((("reverse", "loss", t), ("reverse", "state", t), "gradient"))
        if t > 1:
            out.arrows.append((("reverse", "state", t), ("reverse", "state", t - 1), "gradient"))
    out.arrows.append((("reverse", "state", 1), ("reverse", "gradient", 0), "gradient"))
    # forward mode: the sensitivity travels with the state; each step's gradient leaves at once
    for t in range(T + 1):
        role = "kept" if t == T else "freed"
        out.nodes.append(("forward", "sensitivity", t, role, f"$P_{{{t}}}$"))
    for t in range(1, T + 1):
        out.arrows.append((("forward", "sensitivity", t - 1), ("forward", "sensitivity", t),
                           "sensitivity"))  # fmt: skip
        out.arrows.append((("forward", "state", t), ("forward", "sensitivity", t), "sensitivity"))
        out.nodes.append(("forward", "gradient", t, "grad", rf"$\nabla_{{\theta}} L_{{{t}}}$"))
        out.arrows.append((("forward", "sensitivity", t), ("forward", "gradient", t), "gradient"))
    return out


NODE_STYLE = {
    "kept": {"kind": "state"},
    "freed": {"kind": "white", "edge": PALETTE["muted"]},
    "loss": {"kind": "loss"},
    "grad": {"kind": "input", "edge": PALETTE["backward"]},
}
ARROW_COLOUR = {"forward": "forward", "sensitivity": "second", "gradient": "backward"}


def _xy(panel, row, t):
    return LEFT + DX * t, ROWS[(panel, row)]


def _ends(a, b):
    """Start and end of an arrow from node ``a`` to node ``b``, on the boxes' edges."""
    (x0, y0), (x1, y1) = _xy(*a), _xy(*b)
    if y0 == y1:  # along a row
        sign = 1 if x1 > x0 else -1
        return (x0 + sign * W / 2, y0), (x1 - sign * W / 2, y1), 0.0
    if x0 == x1:  # up or down a column
        sign = 1 if y1 > y0 else -1
        return (x0, y0 + sign * H / 2), (x1, y1 - sign * H / 2), 0.0
    # reverse mode's last arrow, from h_1 down and left to the gradient
    return (x0, y0 - H / 2), (x1 + (W + 0.2) / 2, y1), 0.0


def draw_modes(T: int = 4):
    """Draw both modes for ``T`` steps; returns ``(fig, layout)``."""
    lay = modes_layout(T)
    width, height = LEFT + DX * (T + 0.6), 10.2
    fig, ax = canvas(width, height, figsize=(0.62 * width, 0.62 * (height - 1.6)))
    ax.set_ylim(1.6, height)
    for title, y in TITLES.values():
        ax.text(0.1, y, title, ha="left", va="center", fontsize=11, fontweight="bold")
    for (panel, row), label in ROW_LABELS.items():
        ax.text(0.1, ROWS[(panel, row)], label, ha="left", va="center", fontsize=9)
    for panel, row, t, role, label in lay.nodes:
        size = (W + 0.2, H) if role == "grad" else (W, H)
        node(ax, _xy(panel, row, t), label, size=size, fontsize=9, **NODE_STYLE[role])
    for a, b, role in lay.arrows:
        start, end, rad = _ends(a, b)
        if role == "gradient" and a[1] == b[1] == "state":  # backwards, under the row
            (x0, y0), (x1, y1) = _xy(*a), _xy(*b)
            start, end, rad = (x0 - 0.1, y0 - H / 2), (x1 + 0.1, y1 - H / 2), -0.6
        if a[1:] == ("state", b[2]) and b[1] == "loss":
            start, end = (start[0] - 0.13, start[1]), (end[0] - 0.13, end[1])
        if role == "gradient" and a[1] == "loss":  # down beside the forward arrow
            start, end = (start[0] + 0.13, start[1]), (end[0] + 0.13, end[1])
        arrow(ax, start, end, kind=ARROW_COLOUR[role], rad=rad, lw=1.2)
    handles = [
        Patch(facecolor=PALETTE["state"], edgecolor=PALETTE["forward"], label="in memory"),
        Patch(facecolor="white", edgecolor=PALETTE["muted"], label="freed"),
        plt.Line2D([], [], color=PALETTE["forward"], lw=2, label="forward"),
        plt.Line2D([], [], color=PALETTE["second"], lw=2, label="sensitivity update"),
        plt.Line2D([], [], color=PALETTE["backward"], lw=2, label="gradient"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.04), ncol=5,
              frameon=False, fontsize=9)  # fmt: skip
    return fig, lay
