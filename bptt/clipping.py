"""Gradient clipping for a list of numpy gradients, modified in place.

Three ways to bound an update, from the one that keeps its direction to the
ones that do not:

- ``clip_grad_norm``: one factor for all gradients together (Pascanu et al.
  2013, algorithm 1). On finite gradients it is ``torch.nn.utils.clip_grad_norm_``;
  on a NaN or infinite norm it raises, as torch does only with
  ``error_if_nonfinite=True`` (torch's default clips with a NaN or zero factor).
- ``clip_per_tensor_norm``: one factor per array.
- ``clip_grad_value``: clamp every entry to ``[-clip_value, clip_value]``;
  the semantics of ``torch.nn.utils.clip_grad_value_``.

``grads`` is always a list (or tuple) of float numpy arrays of any shapes,
e.g. ``[dW_xh, dW_hh, db_h, dW_hy, db_y]``. A torch gradient can be clipped
through its ``.numpy()`` view, which shares its memory.
"""

from __future__ import annotations

import math

import numpy as np


def _check_grads(grads) -> list[np.ndarray]:
    """Return ``grads`` as a list after checking it holds writeable float ndarrays."""
    if isinstance(grads, np.ndarray) or not isinstance(grads, list | tuple):
        raise ValueError(
            f"grads must be a list of numpy arrays, got {type(grads).__name__}"
            " (wrap a single array as [array])"
        )
    for i, g in enumerate(grads):
        if not isinstance(g, np.ndarray):
            raise ValueError(f"grads[{i}] must be a numpy array, got {type(g).__name__}")
        if not np.issubdtype(g.dtype, np.floating):
            raise ValueError(f"grads[{i}] must hold floats to be scaled in place, got {g.dtype}")
        if not g.flags.writeable:
            raise ValueError(f"grads[{i}] is read-only; clipping modifies it in place")
    return list(grads)


def _check_threshold(name: str, value) -> float:
    """A threshold must be a real number >= 0 (a negative one would flip the gradient's sign)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__}")
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def _norm(a: np.ndarray) -> float:
    """L2 norm of all entries, without overflow: ``m * sqrt(sum((a / m)**2))``, m = max|a|.

    Squaring an entry of 1e200 overflows to inf although the norm is finite;
    dividing by the largest magnitude first keeps every square <= 1.
    Returns inf or nan when ``a`` holds one.
    """
    if a.size == 0:
        return 0.0
    m = float(np.max(np.abs(a)))  # nan if any entry is nan
    if m == 0.0 or not math.isfinite(m):
        return m
    return m * math.sqrt(float(np.sum(np.square(a / m))))


def global_norm(grads) -> float:
    """``sqrt(sum of the squares of every entry of every array)``: the norm of the whole gradient.

    grads: list of float arrays of any shapes -> float (0.0 for an empty list).
    """
    norms = np.array([_norm(g) for g in _check_grads(grads)])
    return _norm(norms)


def clip_grad_norm(grads, max_norm, eps: float = 1e-6) -> float:
    """Rescale all gradients together so that their global norm is at most ``max_norm``.

    grads: list of float arrays, scaled in place by ``max_norm / (total + eps)``
    when that factor is below 1 (Pascanu et al. 2013, algorithm 1, with the eps
    of ``torch.nn.utils.clip_grad_norm_``). Returns the global norm *before*
    clipping. A NaN or infinite norm raises ``FloatingPointError`` and leaves
    the arrays as they were: there is no direction to keep. That is torch's
    ``error_if_nonfinite=True`` (which raises ``RuntimeError``), not its
    default. Entries whose squares overflow (1e200) still get their true norm.
    """
    grads = _check_grads(grads)
    max_norm = _check_threshold("max_norm", max_norm)
    eps = _check_threshold("eps", eps)
    total = global_norm(grads)
    if not math.isfinite(total):
        raise FloatingPointError(
            f"the global gradient norm is {total}; refusing to clip (arrays left unchanged)"
        )
    if max_norm < total + eps:  # i.e. the factor below is < 1 (and the division is safe)
        factor = max_norm / (total + eps)
        for g in grads:
            g *= factor
    return total


def clip_per_tensor_norm(grads, max_norm, eps: float = 1e-6) -> np.ndarray:
    """Rescale each array on its own so that its norm is at most ``max_norm``.

    grads: list of float arrays, each scaled in place by its own factor
    ``max_norm / (norm + eps)`` when that is below 1. Returns the per-array
    norms before clipping, shape (len(grads),). The arrays' relative sizes,
    and so the update's direction, change. Non-finite norms raise
    ``FloatingPointError`` before anything is modified.
    """
    grads = _check_grads(grads)
    max_norm = _check_threshold("max_norm", max_norm)
    eps = _check_threshold("eps", eps)
    norms = np.array([_norm(g) for g in grads])
    if not np.all(np.isfinite(norms)):
        raise FloatingPointError(
            f"gradient norms {norms.tolist()} are not all finite; refusing to clip"
        )
    for g, norm in zip(grads, norms, strict=True):
        if max_norm < norm + eps:
            g *= max_norm / (norm + eps)
    return norms


def clip_grad_value(grads, clip_value) -> None:
    """Clamp every entry in place to ``[-clip_value, clip_value]``.

    grads: list of float arrays of any shapes. ``inf`` becomes ``±clip_value``;
    NaN stays NaN (as in ``torch.nn.utils.clip_grad_value_``).
    """
    grads = _check_grads(grads)
    clip_value = _check_threshold("clip_value", clip_value)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)


def cosine_similarity(grads_a, grads_b) -> float:
    """Cosine of the angle between two gradients, each a list of arrays read as one long vector."""
    grads_a, grads_b = _check_grads(grads_a), _check_grads(grads_b)
    shapes_a, shapes_b = [g.shape for g in grads_a], [g.shape for g in grads_b]
    if not shapes_a or shapes_a != shapes_b:
        raise ValueError(
            f"grads_a and grads_b must have the same, non-empty, shapes; got {shapes_a}, {shapes_b}"
        )
    a = np.concatenate([g.ravel() for g in grads_a])
    b = np.concatenate([g.ravel() for g in grads_b])
    norm_a, norm_b = _norm(a), _norm(b)
    if not (math.isfinite(norm_a) and math.isfinite(norm_b)) or norm_a == 0 or norm_b == 0:
        raise ValueError("the cosine needs two finite, non-zero gradients")
    return float((a / norm_a) @ (b / norm_b))
