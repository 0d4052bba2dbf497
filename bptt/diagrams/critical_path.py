"""BPTT's critical path: the textbook loop beside the loop with its parallel work hoisted out.

Each box is one piece of work, drawn in the order it must happen. In the textbook loop every
step does all of its products; in the fast loop each step keeps only the product with W_hh
(the chain that cannot be parallel), and every product that touches all steps independently
becomes one large GEMM before or after the chain.
"""

from __future__ import annotations

from bptt.diagrams.draw import PALETTE, arrow, canvas, node

STEP_W, GAP = 1.0, 0.35
# What one step computes, per direction (names as in bptt.backward / bptt.fast).
TEXTBOOK_FORWARD = ["$x_t W_{xh}^\\top$", "$h_{t-1} W_{hh}^\\top$", "tanh"]
TEXTBOOK_BACKWARD = [
    "tanh'", "$da_t W_{hh}$", "$da_t W_{xh}$", "$da_t^\\top x_t$", "$da_t^\\top h_{t-1}$",
]  # fmt: skip
FAST_STEP_FORWARD = ["$h_{t-1} W_{hh}^\\top$", "tanh"]
FAST_STEP_BACKWARD = ["tanh'", "$da_t W_{hh}$"]
HOISTED_BEFORE = "$X W_{xh}^\\top$\nall $t$: one GEMM"
HOISTED_AFTER = "$dX$, $dW_{xh}$, $dW_{hh}$\nall $t$: three GEMMs"


def _chain(ax, x0, y, T, name, work, kind, backward=False):
    """T step boxes in a row from ``x0``, joined by the sequential arrows (leftwards if
    ``backward``); box t sits under step t in both rows."""
    height = 0.3 + 0.24 * len(work)
    for t in range(T):
        x = x0 + t * (STEP_W + GAP)
        node(ax, (x + STEP_W / 2, y), "\n".join(work), kind, size=(STEP_W, height), fontsize=8)
        ax.text(x + STEP_W / 2, y + height / 2 + 0.1, f"{name} {t + 1}", ha="center", fontsize=8)
        if t:
            start, end = (x, y), (x - GAP, y)
            arrow(ax, *((start, end) if backward else (end, start)), "backward")
    return x0 + T * (STEP_W + GAP) - GAP


def draw_critical_path(T: int = 4):
    """The two schedules for ``T`` steps, forward above backward; returns the figure."""
    if T < 2:
        raise ValueError(f"T must be at least 2 to show a chain, got {T}")
    big = 2.0
    width = big + 0.5 + T * (STEP_W + GAP)
    fig, ax = canvas(width, 7.6, figsize=(width * 1.15, 7.0))
    rows = [
        ("textbook loop", 6.4, 4.75, TEXTBOOK_FORWARD, TEXTBOOK_BACKWARD, False),
        ("fast loop", 2.65, 1.0, FAST_STEP_FORWARD, FAST_STEP_BACKWARD, True),
    ]
    x0 = big + 0.5
    for title, y_fwd, y_bwd, forward, backward, hoisted in rows:
        ax.text(0.1, y_fwd + 0.9, title, fontsize=11, weight="bold")
        end = _chain(ax, x0, y_fwd, T, "step", forward, "state")
        _chain(ax, x0, y_bwd, T, "back", backward, "loss", backward=True)
        last = end - STEP_W / 2
        arrow(ax, (last, y_fwd - 0.45), (last, y_bwd + 0.6), "forward")
        if hoisted:
            node(ax, (big / 2 + 0.2, y_fwd), HOISTED_BEFORE, "input", size=(big, 0.8), fontsize=8)
            arrow(ax, (big + 0.2, y_fwd), (x0, y_fwd), "forward")
            node(ax, (big / 2 + 0.2, y_bwd), HOISTED_AFTER, "input", size=(big, 0.8), fontsize=8)
            arrow(ax, (x0, y_bwd), (big + 0.2, y_bwd), "forward")
    ax.text(
        0.1, 0.05, "orange arrows: the sequential chain, which cannot run in parallel",
        color=PALETTE["backward"], fontsize=9,
    )  # fmt: skip
    return fig
