"""The primitives of the book's diagrams: a canvas, nodes, arrows and one palette.

Every diagram uses the same colours for the same things, so a reader who has learnt that
orange means "gradient" in one chapter reads it the same way in the next.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

PALETTE = {
    "forward": "#303030",  # the computation
    "backward": "#d95f02",  # gradients flowing back
    "second": "#1b9e77",  # a second backward path, or a second kind of thing
    "state": "#deebf7",  # hidden states
    "input": "#f0f0f0",  # inputs and parameters
    "loss": "#fde0dd",  # losses
    "muted": "#bdbdbd",  # what is cut, dropped or not stored
}


def canvas(width: float, height: float, figsize=None):
    """A blank figure whose data coordinates run over [0, width] x [0, height]."""
    fig, ax = plt.subplots(figsize=figsize or (width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def node(ax, xy, label, kind="state", size=(0.9, 0.6), round_=True, fontsize=11, edge=None):
    """A labelled box centred at ``xy``; ``kind`` picks its fill from the palette."""
    w, h = size
    style = "round,pad=0.02,rounding_size=0.15" if round_ else "square,pad=0.02"
    box = FancyBboxPatch(
        (xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle=style,
        facecolor=PALETTE.get(kind, kind), edgecolor=edge or PALETTE["forward"], linewidth=1.2,
    )  # fmt: skip
    ax.add_patch(box)
    ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=fontsize)
    return box


def arrow(ax, start, end, kind="forward", label=None, rad=0.0, dashed=False, lw=1.4, **text):
    """An arrow from point ``start`` to point ``end``, curved by ``rad``, optionally labelled."""
    colour = PALETTE.get(kind, kind)
    patch = FancyArrowPatch(
        start, end,
        connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=12, color=colour,
        linewidth=lw, linestyle="--" if dashed else "-", shrinkA=4, shrinkB=4,
    )  # fmt: skip
    ax.add_patch(patch)
    if label:
        mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        ax.text(*mid, label, color=colour, ha="center", va="bottom", fontsize=10, **text)
    return patch


def legend(ax, entries, loc="lower right"):
    """A legend of (palette kind, text) pairs drawn as short lines."""
    handles = [plt.Line2D([], [], color=PALETTE[k], lw=2) for k, _ in entries]
    ax.legend(handles, [t for _, t in entries], loc=loc, frameon=False, fontsize=9)
