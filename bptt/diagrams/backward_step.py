"""One backward step through the tanh cell: what flows in, what flows out.

Two gradients arrive at the state ``h_t``: ``dhs[t]`` from the step's own loss and ``dh_next``
from the later steps, through ``h_{t+1}``. Their sum is the total derivative ``delta_t`` (``dh``).
Multiplied by the tanh slopes ``1 - h_t**2`` it becomes ``dL/da_t`` (``da``), which leaves in
three ways: to the previous state (``dh_prev``), to the input (``dx``), and into the running
sums of the shared weights' gradients. The picture is the body of
``bptt.backward.rnn_step_backward`` plus the addition in ``rnn_backward``.
"""

from __future__ import annotations

from bptt.diagrams.draw import PALETTE, arrow, canvas, legend, node

# Where each box sits, in the canvas's data coordinates.
POSITIONS = {
    "h_prev": (1.2, 3.0),
    "a": (4.6, 3.0),
    "h": (7.6, 3.0),
    "h_next": (10.6, 3.0),
    "L": (7.6, 5.6),
    "x": (4.6, 0.6),
    "weights": (1.6, 5.5),
}
LABELS = {
    "h_prev": "$h_{t-1}$",
    "a": "$a_t$",
    "h": "$h_t$",
    "h_next": "$h_{t+1}$",
    "L": "$L_t$",
    "x": "$x_t$",
    "weights": "$W_{xh},\\ W_{hh},\\ b_h$",
}
KINDS = {"h_prev": "state", "a": "input", "h": "state", "h_next": "state", "L": "loss",
         "x": "input", "weights": "input"}  # fmt: skip
SIZES = {"weights": (2.2, 0.6)}

# (from, to) pairs; forward arrows run above/left of their backward twins.
FORWARD = [("h_prev", "a"), ("x", "a"), ("a", "h"), ("h", "L"), ("h", "h_next")]
BACKWARD = [("L", "h"), ("h_next", "h"), ("h", "a"), ("a", "h_prev"), ("a", "x")]
# What each backward arrow carries: (maths, code).
CARRIES = {
    ("L", "h"): ("$\\partial L_t / \\partial h_t$", "dhs[t]"),
    ("h_next", "h"): ("$J_{t+1}^{\\top} \\delta_{t+1}$", "dh_next"),
    ("h", "a"): ("$\\odot\\,(1 - h_t^2)$", ""),
    ("a", "h_prev"): ("$W_{hh}^{\\top}\\, \\partial L / \\partial a_t$", "dh_prev = da @ W_hh"),
    ("a", "x"): ("$W_{xh}^{\\top}\\, \\partial L / \\partial a_t$", "dx = da @ W_xh"),
}
GAP = 0.16  # half the distance between a forward arrow and its backward twin


def _ends(a, b, offset):
    """The end points of an arrow from box ``a`` to box ``b``, shifted sideways by ``offset``."""
    (x0, y0), (x1, y1) = POSITIONS[a], POSITIONS[b]
    half = {k: (SIZES.get(k, (0.9, 0.6))[0] / 2, SIZES.get(k, (0.9, 0.6))[1] / 2) for k in (a, b)}
    if y0 == y1:  # horizontal
        sign = 1 if x1 > x0 else -1
        return (x0 + sign * half[a][0], y0 + offset), (x1 - sign * half[b][0], y1 + offset)
    sign = 1 if y1 > y0 else -1  # vertical
    return (x0 + offset, y0 + sign * half[a][1]), (x1 + offset, y1 - sign * half[b][1])


def draw_backward_step(ax=None):
    """Draw one backward step through the cell; return ``(fig, parts)``.

    ``parts`` holds the matplotlib artists by role: ``nodes`` (name to box), ``forward`` and
    ``backward`` (lists of arrows, in the order of ``FORWARD`` and ``BACKWARD``) and
    ``accumulate`` (the one arrow into the shared weights' gradients).
    """
    if ax is None:
        fig, ax = canvas(12.0, 6.4, figsize=(9.6, 5.1))
    else:
        fig = ax.figure
    nodes = {
        name: node(ax, xy, LABELS[name], kind=KINDS[name], size=SIZES.get(name, (0.9, 0.6)))
        for name, xy in POSITIONS.items()
    }
    forward = []
    for a, b in FORWARD:
        # Horizontal forward arrows run above their twin; vertical ones to its left.
        start, end = _ends(a, b, GAP if POSITIONS[a][1] == POSITIONS[b][1] else -GAP)
        forward.append(arrow(ax, start, end, kind="forward", lw=1.0))
    ax.text(6.1, 3.0 + GAP + 0.08, "tanh", ha="center", va="bottom", fontsize=9)

    backward = []
    for a, b in BACKWARD:
        horizontal = POSITIONS[a][1] == POSITIONS[b][1]
        start, end = _ends(a, b, -GAP if horizontal else GAP)
        backward.append(arrow(ax, start, end, kind="backward", lw=2.0))
        maths, code = CARRIES[(a, b)]
        if horizontal:
            mid = ((start[0] + end[0]) / 2, start[1] - 0.12)
            ax.text(*mid, maths, color=PALETTE["backward"], ha="center", va="top", fontsize=10)
            if code:
                ax.text(mid[0], mid[1] - 0.42, code, color=PALETTE["backward"], ha="center",
                        va="top", fontsize=8, family="monospace")  # fmt: skip
        else:
            mid = (start[0] + 0.12, (start[1] + end[1]) / 2)
            ax.text(*mid, maths, color=PALETTE["backward"], ha="left", va="bottom", fontsize=10)
            ax.text(mid[0], mid[1] - 0.08, code, color=PALETTE["backward"], ha="left",
                    va="top", fontsize=8, family="monospace")  # fmt: skip

    # What the step computes at h_t and a_t.
    ax.text(7.25, 1.75, "$\\delta_t$ = dhs[t] + dh_next: dh", color=PALETTE["backward"],
            ha="left", va="top", fontsize=10)  # fmt: skip
    ax.text(4.95, 3.6, "$\\partial L / \\partial a_t$: da", color=PALETTE["backward"],
            ha="left", va="bottom", fontsize=10)  # fmt: skip

    # The shared weights' gradients are summed over the steps, not passed on.
    start = (POSITIONS["a"][0] - 0.3, POSITIONS["a"][1] + 0.3)
    end = (POSITIONS["weights"][0] + 1.1, POSITIONS["weights"][1])
    accumulate = [arrow(ax, start, end, kind="second", lw=2.0, rad=-0.3)]
    sums = "dW_xh += da.T @ x\ndW_hh += da.T @ h_prev\ndb_h  += da.sum(0)"
    ax.text(0.15, 4.95, sums, color=PALETTE["second"], ha="left", va="top", fontsize=8,
            family="monospace")  # fmt: skip

    legend(ax, [("forward", "forward pass"), ("backward", "gradient passed on"),
                ("second", "added to a shared weight's gradient")], loc="lower right")  # fmt: skip
    return fig, {"nodes": nodes, "forward": forward, "backward": backward,
                 "accumulate": accumulate}  # fmt: skip
