"""Look at the computational graph: draw the unrolled RNN, and measure autograd's graph.

``draw_unrolled`` is the figure of the unrolling chapter; ``graph_size`` and
``saved_bytes`` measure what autograd actually builds and keeps for backward.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch

from bptt.checks import check_positive_int

# One colour per role, reused by every figure of the book that shows the graph.
COLOURS = {"x": "#dbeafe", "h": "#fde68a", "y": "#dcfce7", "L": "#fecaca"}
WEIGHT_COLOURS = {"W_xh": "#2563eb", "W_hh": "#d97706", "W_hy": "#16a34a"}


def _node(ax, xy, label, role):
    ax.text(
        *xy,
        label,
        ha="center",
        va="center",
        fontsize=12,
        zorder=3,
        bbox={"boxstyle": "circle,pad=0.35", "fc": COLOURS[role], "ec": "0.25"},
    )


def _edge(ax, start, end, colour="0.3", label=None, rad=0.0):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            lw=1.4,
            color=colour,
            shrinkA=15,
            shrinkB=15,
            connectionstyle=f"arc3,rad={rad}",
            zorder=2,
        )
    )
    if label:
        mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        ax.text(mid[0] + 0.08, mid[1], label, fontsize=8, color=colour, ha="left", va="center")


def draw_unrolled(T: int, ax=None, last_step_loss: bool = False):
    """Draw the RNN unrolled over ``T`` steps: x_t -> h_t -> y_t -> L_t, h_{t-1} -> h_t.

    Every arrow of one colour is the *same* weight matrix, used T times: that
    sharing is why the gradients of the weights are sums over time.
    With ``last_step_loss`` only the last step has an output and a loss
    (sequence classification). Returns the axes.
    """
    T = check_positive_int("T", T)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * (T + 1) + 1, 4.4))
    rows = {"x": 0.0, "h": 1.0, "y": 2.0, "L": 3.0}
    _node(ax, (0, rows["h"]), "$h_0$", "h")
    for t in range(1, T + 1):
        x, h, y, L = ((t, rows[r]) for r in "xhyL")
        _node(ax, x, f"$x_{t}$", "x")
        _node(ax, h, f"$h_{t}$", "h")
        first = t == 1
        _edge(ax, x, h, WEIGHT_COLOURS["W_xh"], "$W_{xh}$" if first else None)
        _edge(ax, (t - 1, rows["h"]), h, WEIGHT_COLOURS["W_hh"], None)
        if first:
            ax.text(
                t - 0.5,
                rows["h"] + 0.12,
                "$W_{hh}$",
                fontsize=8,
                ha="center",
                color=WEIGHT_COLOURS["W_hh"],
            )
        if not last_step_loss or t == T:
            _node(ax, y, f"$y_{t}$", "y")
            _node(ax, L, f"$L_{t}$", "L")
            _edge(ax, h, y, WEIGHT_COLOURS["W_hy"], "$W_{hy}$" if first or last_step_loss else None)
            _edge(ax, y, L)
    ax.set_xlim(-0.6, T + 0.8)
    ax.set_ylim(-0.5, 3.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def _nodes(output: torch.Tensor):
    """The distinct autograd nodes (backward functions) reachable from ``output``."""
    if output.grad_fn is None:
        raise ValueError("output must be the result of a computation that requires grad")
    seen, stack = set(), [output.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return seen


def graph_size(output: torch.Tensor) -> int:
    """Number of distinct autograd nodes (backward functions) reachable from ``output``."""
    return len(_nodes(output))


def graph_saved_bytes(output: torch.Tensor) -> int:
    """Bytes of the tensors saved for backward by every autograd node reachable from ``output``.

    Reads the nodes' documented ``_saved_*`` attributes; a storage saved by
    several nodes counts once. This is the memory a ``backward()`` from
    ``output`` still needs, i.e. what ``retain_graph=True`` keeps alive.
    Call it before ``backward()`` frees the graph.
    """
    storages: dict[int, int] = {}
    for fn in _nodes(output):
        for name in dir(fn):
            if name.startswith("_saved_"):
                value = getattr(fn, name)
                for t in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(t, torch.Tensor):
                        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(storages.values())


def saved_bytes(
    forward: Callable[[], torch.Tensor], exclude: tuple[torch.Tensor, ...] = ()
) -> tuple[torch.Tensor, int]:
    """Run ``forward()`` and count the bytes of the tensors autograd saves for backward.

    Uses ``torch.autograd.graph.saved_tensors_hooks``: every tensor that a
    backward function will need passes through the pack hook. A tensor saved
    by several nodes is counted once. Storages shared with the tensors in
    ``exclude`` (inputs and parameters, which exist whatever autograd keeps)
    are not counted.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(tensor):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = forward()
    return out, sum(seen.values())
