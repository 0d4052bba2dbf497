"""The RNN unrolled over time, with the forward arrows and, optionally, the backward paths.

``draw_unrolled`` draws the computation of the forward pass as a graph: inputs ``x_t`` at the
bottom, states ``h_t`` in the middle, outputs ``y_t`` and losses ``L_t`` on top, one column per
step. Every arrow of one kind is the *same* weight matrix, used ``T`` times. Options add

- the rolled loop on the left (``rolled=True``): one cell with a self-loop, the network as it is
  written, beside the network as it is differentiated;
- the backward paths (``backward=True``): the gradient a state ``h_t`` receives from its own loss
  ``L_t`` (orange) and from the next state ``h_{t+1}`` (green);
- one highlighted step (``highlight=t``): only the two backward paths into ``h_t`` are drawn,
  labelled with the two terms of ``delta_t = dL_t/dh_t + J_{t+1}^T delta_{t+1}``.

The figure's axes carry the drawn parts in ``ax.diagram`` (a dict of lists), which the tests read.
"""

from __future__ import annotations

from bptt.checks import check_positive_int
from bptt.diagrams.draw import PALETTE, arrow, canvas, legend, node

ROWS = {"x": 0.6, "h": 2.0, "y": 3.4, "L": 4.6}
NODE = (0.62, 0.5)
DX = 1.6  # horizontal distance between steps


def _column(t: int, x0: float) -> float:
    return x0 + DX * t


def _weight(ax, xy, label, ha="center"):
    """The name of the weight matrix an arrow applies."""
    ax.text(*xy, label, ha=ha, va="bottom" if ha == "center" else "center", fontsize=9)


def _draw_rolled(ax, parts):
    """The loop as it is written: one cell whose state feeds back into itself."""
    cx = 0.7
    for row, label, kind in (("x", "$x_t$", "input"), ("h", "$h_t$", "state")):
        parts["nodes"].append(node(ax, (cx, ROWS[row]), label, kind=kind, size=NODE))
    parts["nodes"].append(node(ax, (cx, ROWS["y"]), "$y_t$", kind="input", size=NODE))
    parts["nodes"].append(node(ax, (cx, ROWS["L"]), "$L_t$", kind="loss", size=NODE))
    up = NODE[1] / 2
    parts["forward"].append(arrow(ax, (cx, ROWS["x"] + up), (cx, ROWS["h"] - up)))
    parts["forward"].append(arrow(ax, (cx, ROWS["h"] + up), (cx, ROWS["y"] - up)))
    parts["forward"].append(arrow(ax, (cx, ROWS["y"] + up), (cx, ROWS["L"] - up)))
    # The self-loop: out of the right side of h_t and back into its left side, under it.
    right = cx + NODE[0] / 2
    loop = arrow(ax, (right - 0.05, ROWS["h"] - 0.2), (right - 0.05, ROWS["h"] + 0.2), rad=2.6)
    parts["forward"].append(loop)
    ax.text(right + 0.2, ROWS["h"] + 0.42, "$W_{hh}$", ha="left", va="center", fontsize=9)
    ax.text(cx, 0.05, "rolled", ha="center", fontsize=10, style="italic")
    parts["forward"].append(arrow(ax, (1.9, ROWS["h"]), (2.5, ROWS["h"]), lw=2.4))
    ax.text(2.2, ROWS["h"] + 0.2, "unroll", ha="center", fontsize=9, style="italic")


def draw_unrolled(
    T: int = 4,
    last_step_loss: bool = False,
    backward: bool = False,
    highlight: int | None = None,
    rolled: bool = False,
):
    """Draw the RNN unrolled over ``T`` steps and return the matplotlib figure.

    ``last_step_loss``: only the last step has an output and a loss (sequence classification).
    ``backward``: draw every backward path into every state: orange from its loss ``L_t``,
    green from the next state ``h_{t+1}``. ``highlight``: a step ``t`` in ``1..T``; only the
    paths into ``h_t`` are drawn, labelled. ``rolled``: draw the rolled loop on the left.
    """
    T = check_positive_int("T", T)
    if highlight is not None and not (isinstance(highlight, int) and 1 <= highlight <= T):
        raise ValueError(f"highlight must be a step in 1..{T} or None, got {highlight!r}")
    x0 = 3.1 if rolled else 0.6
    width = _column(T, x0) + 0.8
    drawn_back = backward or highlight is not None
    bottom = 1.0 if drawn_back else 0.0  # room for the legend under the graph
    fig, ax = canvas(width, 5.2 + bottom, figsize=(0.9 * width, 0.9 * (5.2 + bottom)))
    ax.set_ylim(-bottom, 5.2)
    parts = {"nodes": [], "forward": [], "backward": [], "second": []}
    ax.diagram = parts
    if rolled:
        _draw_rolled(ax, parts)

    half_w, half_h = NODE[0] / 2, NODE[1] / 2
    parts["nodes"].append(node(ax, (x0, ROWS["h"]), "$h_0$", kind="state", size=NODE))
    has_loss = [not last_step_loss or t == T for t in range(T + 1)]
    for t in range(1, T + 1):
        cx, prev = _column(t, x0), _column(t - 1, x0)
        parts["nodes"].append(node(ax, (cx, ROWS["x"]), f"$x_{t}$", kind="input", size=NODE))
        parts["nodes"].append(node(ax, (cx, ROWS["h"]), f"$h_{t}$", kind="state", size=NODE))
        first = t == 1
        parts["forward"].append(arrow(ax, (cx, ROWS["x"] + half_h), (cx, ROWS["h"] - half_h)))
        parts["forward"].append(arrow(ax, (prev + half_w, ROWS["h"]), (cx - half_w, ROWS["h"])))
        _weight(ax, ((prev + cx) / 2, ROWS["h"] + 0.08), "$W_{hh}$")
        if first:
            _weight(ax, (cx - 0.1, (ROWS["x"] + ROWS["h"]) / 2), "$W_{xh}$", ha="right")
        if has_loss[t]:
            parts["nodes"].append(node(ax, (cx, ROWS["y"]), f"$y_{t}$", kind="input", size=NODE))
            parts["nodes"].append(node(ax, (cx, ROWS["L"]), f"$L_{t}$", kind="loss", size=NODE))
            parts["forward"].append(arrow(ax, (cx, ROWS["h"] + half_h), (cx, ROWS["y"] - half_h)))
            if first or last_step_loss:
                _weight(ax, (cx - 0.1, (ROWS["h"] + ROWS["y"]) / 2), "$W_{hy}$", ha="right")
            parts["forward"].append(arrow(ax, (cx, ROWS["y"] + half_h), (cx, ROWS["L"] - half_h)))

    if drawn_back:
        steps = [highlight] if highlight is not None else range(1, T + 1)
        for t in steps:
            cx = _column(t, x0)
            if has_loss[t]:
                # From L_t back down to h_t, beside the forward arrows.
                parts["backward"].append(
                    arrow(ax, (cx + 0.42, ROWS["L"] - 0.1), (cx + half_w, ROWS["h"] + 0.12),
                          kind="backward", rad=-0.25, lw=1.8)
                )  # fmt: skip
            if t < T:
                # From h_{t+1} back to h_t, under the forward arrow.
                parts["second"].append(
                    arrow(ax, (_column(t + 1, x0) - half_w + 0.05, ROWS["h"] - 0.2),
                          (cx + half_w - 0.05, ROWS["h"] - 0.2), kind="second", rad=-0.45, lw=1.8)
                )  # fmt: skip
        if highlight is not None:
            t, cx = highlight, _column(highlight, x0)
            if has_loss[t]:
                own = rf"$\partial L_{{{t}}}/\partial h_{{{t}}}$"
                ax.text(cx + 0.62, (ROWS["h"] + ROWS["y"]) / 2, own,
                        color=PALETTE["backward"], fontsize=10, ha="left", va="center")  # fmt: skip
            if t < T:
                ax.text(cx + DX / 2, ROWS["h"] - 0.95, rf"$J_{{{t + 1}}}^\top \delta_{{{t + 1}}}$",
                        color=PALETTE["second"], fontsize=10, ha="center", va="center")  # fmt: skip
        entries = [("forward", "forward"), ("backward", "from its own loss $L_t$"),
                   ("second", "from the next state $h_{t+1}$")]  # fmt: skip
        legend(ax, entries, loc="lower right")
    return fig
