"""Input validation shared by the package's public functions.

Every public function names its arrays' shapes with letters (``"T B D"``) and
checks them here, so a wrong shape fails at the call with a message that
names the argument and the expected shape, instead of deep inside a matmul.
"""

from __future__ import annotations

import numpy as np


def check_array(name: str, array, spec: str, dims: dict[str, int]) -> np.ndarray:
    """Return ``array`` as an ndarray after checking it against ``spec``.

    ``spec`` names the axes, e.g. ``"T B D"``; ``dims`` binds names to sizes
    and is updated in place, so later arrays must agree with earlier ones.
    Raises ``ValueError`` naming ``name`` and the expected shape.
    """
    array = np.asarray(array)
    axes = spec.split()
    expected = "(" + ", ".join(axes) + ")"
    if array.ndim != len(axes):
        raise ValueError(
            f"{name} must have shape {expected} ({len(axes)} axes), got shape {array.shape}"
        )
    for axis, size in zip(axes, array.shape, strict=True):
        bound = dims.setdefault(axis, size)
        if bound != size:
            known = ", ".join(f"{k}={v}" for k, v in dims.items())
            raise ValueError(
                f"{name} must have shape {expected} with {known}; got shape {array.shape}"
            )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def check_targets(name: str, targets, spec: str, dims: dict[str, int], n_classes: int):
    """Check an integer class-index array against ``spec`` and ``[0, n_classes)``."""
    targets = check_array(name, targets, spec, dims)
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {targets.dtype}")
    if targets.size and (targets.min() < 0 or targets.max() >= n_classes):
        raise ValueError(
            f"{name} must hold class indices in [0, {n_classes}), "
            f"got values from {targets.min()} to {targets.max()}"
        )
    return targets


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int, raising ``ValueError`` unless it is >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
