"""The gradient of a last-step loss travelling back through ``T`` Jacobians.

``draw_jacobian_chain`` draws one row per regime. Each row holds the states ``h_1 .. h_T`` and
the loss ``L_T``, with the forward arrows in black. The gradient starts at ``L_T`` with norm 1
and goes back one step at a time (orange arcs): from ``h_t`` to ``h_{t-1}`` it is multiplied by
``J_t^T = W_hh^T diag(1 - h_t^2)``. The diagram takes each multiplication to scale the norm by
the same ``factor``, so ``||delta_t|| = factor ** (T - t)``. The width of each arc grows linearly
with the log of the norm it carries, and the norm is written under each state. A factor below 1
makes the arcs thin out geometrically towards ``h_1`` (vanishing), and a factor above 1 makes
them thicken (exploding).

The figure's axes carry the drawn parts in ``ax.diagram`` (a dict), which the tests read:
``nodes`` (patches), ``labels`` (the node labels, in drawing order), ``forward`` and
``backward`` (arrow patches), ``norms`` (one array per row, ``||delta_t||`` for t = 1..T).
"""

from __future__ import annotations

import numpy as np

from bptt.checks import check_positive_int
from bptt.diagrams.draw import PALETTE, arrow, canvas, node

NODE = (0.62, 0.5)
DX = 1.45  # horizontal distance between steps
ROW_HEIGHT = 2.5
LW_MIN, LW_MAX = 0.5, 7.0  # arc widths for the smallest and the largest norm drawn

DEFAULT_ROWS = (
    ("each step multiplies the norm by 0.5: it vanishes", 0.5),
    ("each step multiplies the norm by 1.6: it explodes", 1.6),
)


def chain_norms(T: int, factor: float) -> np.ndarray:
    """``||delta_t||`` for t = 1..T when every step back scales the norm by ``factor``: (T,)."""
    T = check_positive_int("T", T)
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor!r}")
    return float(factor) ** np.arange(T - 1, -1, -1, dtype=float)


def arc_widths(norms, lo: float, hi: float) -> np.ndarray:
    """Line widths affine in ``log(norms)``: LW_MIN at log-norm ``lo``, LW_MAX at ``hi``."""
    logs = np.log(np.asarray(norms, dtype=float))
    if hi <= lo:
        return np.full(logs.shape, (LW_MIN + LW_MAX) / 2)
    return LW_MIN + (LW_MAX - LW_MIN) * (logs - lo) / (hi - lo)


def _fmt(norm: float) -> str:
    return f"{norm:.2g}" if 1e-2 <= norm < 1e3 else f"{norm:.0e}"


def draw_jacobian_chain(T: int = 6, rows=DEFAULT_ROWS):
    """Draw the backward chain of a last-step loss over ``T`` steps; return the figure.

    ``rows``: (title, factor) pairs, one row each; ``factor`` is how much one step back
    multiplies the gradient's norm (in a tanh RNN at most ``sigma_max(W_hh) max|tanh'|``).
    """
    T = check_positive_int("T", T)
    rows = tuple(rows)
    if not rows:
        raise ValueError("rows must hold at least one (title, factor) pair")
    norms = [chain_norms(T, factor) for _, factor in rows]
    logs = np.log(np.concatenate(norms))
    lo, hi = logs.min(), logs.max()

    x0 = 0.7
    width = x0 + DX * T + 0.6
    height = ROW_HEIGHT * len(rows) + 1.2
    fig, ax = canvas(width, height, figsize=(0.82 * width, 0.82 * height))
    parts = {"nodes": [], "labels": [], "forward": [], "backward": [], "norms": norms}
    ax.diagram = parts
    ax.text(width / 2, height - 0.3,
            r"one step back: $\delta_{t-1} = J_t^\top \delta_t$,  "
            r"$J_t = \mathrm{diag}(1 - h_t^2)\, W_{hh}$",
            ha="center", va="center", fontsize=11)  # fmt: skip

    for r, ((title, _), row_norms) in enumerate(zip(rows, norms, strict=True)):
        y = height - 1.5 - ROW_HEIGHT * r
        ax.text(0.15, y + 0.55, title, ha="left", va="bottom", fontsize=10, style="italic")
        xs = [x0 + DX * (t - 1) for t in range(1, T + 2)]  # h_1 .. h_T, then L_T
        for t in range(1, T + 1):
            label = f"$h_{{{t}}}$"
            parts["nodes"].append(node(ax, (xs[t - 1], y), label, size=NODE))
            parts["labels"].append(label)
            ax.text(xs[t - 1], y - 1.2, _fmt(row_norms[t - 1]), ha="center", va="top",
                    fontsize=9, color=PALETTE["backward"])  # fmt: skip
        parts["nodes"].append(node(ax, (xs[T], y), f"$L_{{{T}}}$", kind="loss", size=NODE))
        parts["labels"].append(f"$L_{{{T}}}$")
        half = NODE[0] / 2
        for t in range(1, T + 1):  # forward: h_t -> h_{t+1}, and h_T -> L_T
            parts["forward"].append(arrow(ax, (xs[t - 1] + half, y + 0.08),
                                          (xs[t] - half, y + 0.08), lw=1.0))  # fmt: skip
        # backward: L_T -> h_T carries delta_T; h_t -> h_{t-1} carries delta_{t-1}
        widths = arc_widths(row_norms, lo, hi)
        for t in range(T, 0, -1):
            start, end = (xs[t] - 0.1, y - NODE[1] / 2), (xs[t - 1] + 0.1, y - NODE[1] / 2)
            parts["backward"].append(
                arrow(ax, start, end, kind="backward", rad=-0.45, lw=float(widths[t - 1]))
            )
            if t < T:
                ax.text((xs[t] + xs[t - 1]) / 2, y - 0.78, f"$J_{{{t + 1}}}^\\top$",
                        ha="center", va="top", fontsize=9, color=PALETTE["backward"])  # fmt: skip
    key = r"under each state: $\|\delta_t\|$;  arc width grows with $\log\|\delta_t\|$"
    ax.text(0.15, 0.15, key, ha="left", va="bottom", fontsize=9, color=PALETTE["backward"])
    return fig
