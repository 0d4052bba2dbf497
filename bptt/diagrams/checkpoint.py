"""The checkpoint schedule: which states the forward pass keeps, which the backward pass recomputes.

The layout is computed from ``bptt.checkpoint.checkpoint_schedule``, the plan that
``checkpointed_grads`` itself follows, so the picture cannot drift from the code.

Row 0 is the forward pass over ``h_0 .. h_T``: the checkpoints (the state entering each
segment) are kept, every other state is freed as soon as the next one is computed (grey).
Each later row is one segment of the backward pass, in the order the backward pass takes
them: from its checkpoint it recomputes the segment's states (green, a second forward pass),
then carries the gradient back through them (orange) and hands it to the previous segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from bptt.checkpoint import checkpoint_schedule
from bptt.diagrams.draw import PALETTE, arrow, canvas, node

DX, DY, LEFT = 1.25, 1.05, 3.4
W, H = 0.72, 0.46  # node size  # column spacing, row spacing, room for the row labels


@dataclass
class Layout:
    """What the diagram draws: nodes ``(row, t, role)`` and arrows ``(row, t, row, t, role)``.

    Node roles: ``stored`` (a checkpoint), ``freed`` (computed, not kept),
    ``recomputed``. Arrow roles: ``forward``, ``recompute``, ``gradient``, ``carry``
    (the gradient handed to the previous segment).
    """

    T: int
    segment: int
    rows: list[str] = field(default_factory=list)
    nodes: list[tuple[int, int, str]] = field(default_factory=list)
    arrows: list[tuple[int, int, int, int, str]] = field(default_factory=list)

    def count(self, role: str) -> int:
        return sum(item[-1] == role for item in self.nodes + self.arrows)


def schedule_layout(T: int, segment: int) -> Layout:
    """The nodes and arrows of the checkpoint schedule: ``T`` steps, segments of ``segment``."""
    plan = checkpoint_schedule(T, segment)
    starts = {start for _, start, _ in plan}
    out = Layout(T, segment, rows=["forward pass"])
    out.nodes += [(0, t, "stored" if t in starts else "freed") for t in range(T + 1)]
    out.arrows += [(0, t, 0, t + 1, "forward") for t in range(T)]
    for row, (i, start, stop) in enumerate(plan, start=1):
        out.rows.append(f"backward, segment {i + 1}")
        out.nodes.append((row, start, "stored"))
        out.nodes += [(row, t, "recomputed") for t in range(start + 1, stop + 1)]
        out.arrows += [(row, t, row, t + 1, "recompute") for t in range(start, stop)]
        out.arrows += [(row, t, row, t - 1, "gradient") for t in range(stop, start, -1)]
        if start > 0:  # the gradient at h_start is owed to the previous segment
            out.arrows.append((row, start, row + 1, start, "carry"))
    return out


NODE_STYLE = {
    "stored": {"kind": "state"},
    "freed": {"kind": "white", "edge": PALETTE["muted"]},
    "recomputed": {"kind": "white", "edge": PALETTE["second"]},
}
ARROW_STYLE = {
    "forward": {"kind": "forward"},
    "recompute": {"kind": "second"},
    "gradient": {"kind": "backward", "rad": -0.5},
    "carry": {"kind": "backward", "lw": 1.6},
}


def _xy(row: int, t: int, n_rows: int) -> tuple[float, float]:
    return LEFT + DX * t, DY * (n_rows - row - 0.5)


def _legend_below(ax):
    """One row of legend under the diagram: the node kinds as boxes, the arrow kinds as lines."""
    boxes = [
        Patch(facecolor=PALETTE["state"], edgecolor=PALETTE["forward"], label="stored checkpoint"),
        Patch(facecolor="white", edgecolor=PALETTE["muted"], label="freed at once"),
        Patch(facecolor="white", edgecolor=PALETTE["second"], label="recomputed"),
    ]
    lines = [
        plt.Line2D([], [], color=PALETTE["second"], lw=2, label="second forward pass"),
        plt.Line2D([], [], color=PALETTE["backward"], lw=2, label="gradient"),
    ]
    ax.legend(handles=boxes + lines, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=5,
              frameon=False, fontsize=9)  # fmt: skip


def draw_checkpoint_schedule(T: int = 12, segment: int = 4):
    """Draw the schedule of ``checkpointed_grads`` for ``T`` steps; returns ``(fig, layout)``."""
    lay = schedule_layout(T, segment)
    n_rows = len(lay.rows)
    width, height = LEFT + DX * (T + 0.6), DY * (n_rows + 0.9)
    fig, ax = canvas(width, height, figsize=(0.62 * width, 0.62 * height))
    for row, label in enumerate(lay.rows):
        y = _xy(row, 0, n_rows)[1]
        ax.text(0.1, y, label, ha="left", va="center", fontsize=9)
    for row, t, role in lay.nodes:
        node(ax, _xy(row, t, n_rows), f"$h_{{{t}}}$", size=(W, H), fontsize=9,
             **NODE_STYLE[role])  # fmt: skip
    for r0, t0, r1, t1, role in lay.arrows:
        style = dict(ARROW_STYLE[role])
        (x0, y0), (x1, y1) = _xy(r0, t0, n_rows), _xy(r1, t1, n_rows)
        if role in ("forward", "recompute"):  # box edge to box edge
            start, end = (x0 + W / 2, y0), (x1 - W / 2, y1)
        elif role == "gradient":  # under the row, bottom to bottom
            start, end = (x0 - 0.1, y0 - H / 2), (x1 + 0.1, y1 - H / 2)
        else:  # carry: straight down to the previous segment's last state
            start, end = (x0 + 0.12, y0 - H / 2), (x1 + 0.12, y1 + H / 2)
        arrow(ax, start, end, kind=style.pop("kind"), **{"lw": 1.2, **style})
    _legend_below(ax)
    return fig, lay
