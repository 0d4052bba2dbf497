"""Global-norm clipping against value clipping, drawn in two dimensions.

A gradient ``g`` (the chapter's $G$) longer than ``max_norm`` is clipped two ways. Global-norm
clipping moves its tip along the ray through ``g`` back onto the circle of radius ``max_norm``:
same direction, shorter. Value clipping clamps each coordinate to ``[-max_norm, max_norm]``, so
the tip lands on the square's boundary and the arrow turns. The vectors come from
``bptt.clipping`` itself.
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Circle, Rectangle

from bptt.clipping import clip_grad_norm, clip_grad_value, cosine_similarity
from bptt.diagrams.draw import PALETTE, arrow, canvas, legend


def clipped_vectors(g=(2.4, 1.0), max_norm: float = 1.0) -> dict:
    """The 2-D gradient ``g`` and its two clipped versions, with their cosines to ``g``.

    Returns ``{"g", "global", "value"}`` as arrays of shape (2,), plus ``"cos_global"`` and
    ``"cos_value"``.
    """
    g = np.asarray(g, dtype=float)
    if g.shape != (2,):
        raise ValueError(f"g must have 2 entries, got shape {g.shape}")
    by_norm, by_value = g.copy(), g.copy()
    clip_grad_norm([by_norm], max_norm)
    clip_grad_value([by_value], max_norm)
    return {
        "g": g,
        "global": by_norm,
        "value": by_value,
        "cos_global": cosine_similarity([g], [by_norm]),
        "cos_value": cosine_similarity([g], [by_value]),
    }


def draw_clip_geometry(g=(2.4, 1.0), max_norm: float = 1.0, unit: float = 1.5):
    """Draw ``g``, the ball and the box of radius ``max_norm``, and both clipped gradients.

    ``unit`` is the drawn length of one gradient unit. Returns the matplotlib figure.
    """
    v = clipped_vectors(g, max_norm)
    r = unit * max_norm
    origin = np.array([r + 0.3, r + 0.5])
    width = origin[0] + max(r, unit * abs(v["g"][0])) + 1.6  # room for the legend
    height = origin[1] + max(r, unit * abs(v["g"][1])) + 0.6
    fig, ax = canvas(width, height, figsize=(width * 1.1, height * 1.1))

    def at(vec):
        return tuple(origin + unit * np.asarray(vec))

    ax.add_patch(Circle(tuple(origin), r, fill=False, ls="--", color=PALETTE["muted"], lw=1.4))
    ax.add_patch(
        Rectangle(tuple(origin - r), 2 * r, 2 * r, fill=False, color=PALETTE["muted"], lw=1.4)
    )
    ax.plot(*origin, "o", color=PALETTE["forward"], ms=3)
    ax.text(origin[0] - 0.1, origin[1] - 0.25, "0", ha="right", fontsize=10)
    ax.text(origin[0], origin[1] - r + 0.15, f"ball ‖G‖ ≤ {max_norm:g}", ha="center",
            va="bottom", fontsize=9, color="0.45")  # fmt: skip
    ax.text(origin[0], origin[1] - r - 0.12, f"box |G₁|, |G₂| ≤ {max_norm:g}", ha="center",
            va="top", fontsize=9, color="0.45")  # fmt: skip

    # Where each clip moves the tip of g: along the ray (norm) or straight to the box (value).
    for key in ("global", "value"):
        (x0, y0), (x1, y1) = at(v["g"]), at(v[key])
        ax.plot([x0, x1], [y0, y1], ls=":", color=PALETTE["muted"], lw=1.2)

    arrow(ax, at((0, 0)), at(v["g"]), kind="backward", lw=2.2)
    arrow(ax, at((0, 0)), at(v["global"]), kind="second", lw=2.2)
    arrow(ax, at((0, 0)), at(v["value"]), kind="forward", lw=2.2)

    tip = at(v["g"])
    ax.text(tip[0] + 0.1, tip[1], "G", color=PALETTE["backward"], fontsize=12, va="center")
    gx, gy = at(v["global"])
    ax.text(gx + 0.12, gy - 0.22, f"global norm\ncos = {v['cos_global']:.2f}",
            color=PALETTE["second"], fontsize=9, va="top")  # fmt: skip
    vx, vy = at(v["value"])
    ax.text(vx - 0.1, vy + 0.08, f"value  cos = {v['cos_value']:.2f}",
            color=PALETTE["forward"], fontsize=9, va="bottom", ha="right")  # fmt: skip
    legend(
        ax,
        [("backward", "gradient G"), ("second", "clipped by global norm: same direction"),
         ("forward", "clipped by value: turned")],
        loc="lower right",
    )  # fmt: skip
    return fig
