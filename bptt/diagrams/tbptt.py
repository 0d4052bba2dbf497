"""The timeline of TBPTT(k1, k2): which losses send gradient to which states, update by update.

The top row is the forward pass, ``h_0 -> h_1 -> ... -> h_T``, never cut. Below it, one row per
update of ``bptt.truncated.tbptt_schedule``: the update's losses (the steps since the previous
update), the states of its window with the gradient flowing back through them (orange), and
the state just before the window, a constant (grey, the ``detach``). A loss whose step lies
before the window reaches no state (grey arrow). Everything is read off the schedule, so the
picture is the algorithm the gradient code runs.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from bptt.diagrams.draw import PALETTE, arrow, node
from bptt.truncated import tbptt_schedule

ROW = 1.5  # vertical distance between two updates' rows


def draw_tbptt_timeline(T: int, k1: int, k2: int, ax=None):
    """Draw TBPTT(k1, k2) on ``T`` steps; return the figure.

    Column ``t`` holds ``h_t`` (``t = 0..T``). Row 0 is the forward chain; row ``u + 1`` is
    update ``u``: loss boxes ``L_s`` above the states they were computed from, orange arrows
    ``L_s -> h_s`` for losses inside the window and ``h_j -> h_{j-1}`` inside the window, a
    grey state for the constant the window starts from, grey arrows for losses outside it.
    """
    schedule = tbptt_schedule(T, k1, k2)
    n = len(schedule)
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.7 * (T + 3), 0.84 * ROW * (n + 1.6)))
    fig = ax.figure
    ax.set_xlim(-1.9, T + 0.6)
    ax.set_ylim(-ROW * n - 0.6, 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    box = (0.68, 0.44)

    # The forward pass: every state, every transition, whatever the truncation.
    for t in range(T + 1):
        node(ax, (t, 0), f"$h_{{{t}}}$", size=box, fontsize=10)
        if t:
            arrow(ax, (t - 1 + box[0] / 2, 0), (t - box[0] / 2, 0), "forward", lw=1.2)
    ax.text(-0.55, 0, "forward", ha="right", va="center", fontsize=9)

    for u, (window, start, stop) in enumerate(schedule, 1):
        y = -ROW * u
        ax.text(-0.55, y, f"update at\n$t = {stop}$", ha="right", va="center", fontsize=9)
        # States h_{window+1} .. h_stop (1-based) are in the window; h_window is a constant.
        if window < stop:
            node(ax, (window, y), f"$h_{{{window}}}$", kind="muted", size=box, fontsize=10)
        for t in range(window + 1, stop + 1):
            node(ax, (t, y), f"$h_{{{t}}}$", size=box, fontsize=10, edge=PALETTE["backward"])
            if t > window + 1:  # the gradient crosses the transition h_{t-1} -> h_t
                arrow(ax, (t - box[0] / 2, y), (t - 1 + box[0] / 2, y), "backward", lw=1.6)
        if window < stop:  # the cut edge: no gradient to the constant
            ax.plot([window + 0.35, window + 0.65], [y, y], color=PALETTE["muted"], lw=1.2)
            ax.text(window + 0.5, y, "×", color="0.45", ha="center", va="center", fontsize=13)
        for s in range(start + 1, stop + 1):  # the losses this update owns, 1-based steps
            inside = s > window
            node(ax, (s, y + 0.62), f"$L_{{{s}}}$", kind="loss", size=(0.54, 0.32), fontsize=9)
            kind = "backward" if inside else "muted"
            arrow(ax, (s, y + 0.47), (s, y + box[1] / 2), kind, lw=1.2, dashed=not inside)

    entries = [
        ("forward", "forward pass (never cut)"),
        ("backward", "gradient inside the window"),
        ("muted", "a constant (detached), or a loss outside the window"),
    ]
    handles = [plt.Line2D([], [], color=PALETTE[k], lw=2) for k, _ in entries]
    ax.legend(
        handles, [text for _, text in entries], loc="upper center", bbox_to_anchor=(0.5, 0.0),
        ncol=3, frameon=False, fontsize=9,
    )  # fmt: skip
    ax.set_title(f"TBPTT($k_1$ = {k1}, $k_2$ = {k2}), T = {T}", fontsize=11)
    return fig


def backward_arrows(ax) -> int:
    """How many orange (gradient) arrows ``ax`` holds: a test's view of the drawing."""
    return _count_arrows(ax, PALETTE["backward"])


def _count_arrows(ax, colour) -> int:
    from matplotlib.colors import to_hex
    from matplotlib.patches import FancyArrowPatch

    return sum(
        isinstance(p, FancyArrowPatch) and to_hex(p.get_edgecolor()) == colour for p in ax.patches
    )
