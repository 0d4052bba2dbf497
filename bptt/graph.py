"""Measure autograd's graph: how many nodes it records and how many bytes it saves for backward.

``graph_size`` and ``saved_bytes`` measure what autograd actually builds and keeps for
backward. The picture of the unrolled graph is drawn by ``bptt.diagrams.unrolled``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


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
