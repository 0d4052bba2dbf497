# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 03_clipping: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import Mutant, max_rel_error, t

M = Mutant
F = torch.nn.functional
GN = "return float(np.sqrt(sum(np.sum(g * g) for g in grads)))"
CLIP = "    if coef < 1:\n        for g in grads:\n            g *= coef\n"

MUTANTS = [
    M(
        "03_clipping",
        "norm: sum of the arrays' norms",
        "global_norm",
        {
            "test_global_norm": "adds the arrays' norms",
            "test_clip_grad_norm": "adds the arrays' norms",
            "test_clip_grad_norm_below": "",
            "test_clip_grad_norm_eps": "",
        },
        [(GN, "return float(sum(np.linalg.norm(g) for g in grads))")],
    ),
    M(
        "03_clipping",
        "norm: spectral norm of matrices",
        "global_norm",
        {
            "test_global_norm": "singular value",
            "test_clip_grad_norm": "singular value",
            "test_clip_grad_norm_below": "",
            "test_clip_grad_norm_nonfinite": "",
            "test_clip_grad_norm_eps": "",
        },
        [
            (
                GN,
                "return float(np.sqrt(sum(np.linalg.norm(g, 2) ** 2 if g.ndim == 2 else np.sum(g * g) "
                "for g in grads)))",
            )
        ],
    ),
    M(
        "03_clipping",
        "norm: np.linalg.norm of the whole list",
        "global_norm",
        {
            "test_global_norm": "one by one",
            "test_clip_grad_norm": "one by one",
            "test_clip_grad_norm_below": "one by one",
            "test_clip_grad_norm_nonfinite": "one by one",
            "test_clip_grad_norm_eps": "one by one",
        },
        [
            (
                "return float(np.sqrt(sum(np.sum(g * g) for g in grads)))",
                "return float(np.linalg.norm(grads))",
            )
        ],
    ),
    M(
        "03_clipping",
        "norm: no square root",
        "global_norm",
        {
            "test_global_norm": "square root",
            "test_clip_grad_norm": "",
            "test_clip_grad_norm_below": "",
            "test_clip_grad_norm_eps": "",
        },
        [(GN, "return float(sum(np.sum(g * g) for g in grads))")],
    ),
    M(
        "03_clipping",
        "clip: returns the norm after clipping",
        "clip_grad_norm",
        {
            "test_clip_grad_norm": "norm *after* clipping",
            "test_clip_grad_norm_eps": "norm *after* clipping",
        },
        [("\n    return total", "\n    return global_norm(grads)")],
    ),
    M(
        "03_clipping",
        "clip: not in place (g = g * coef)",
        "clip_grad_norm",
        {"test_clip_grad_norm": "in place", "test_clip_grad_norm_eps": "in place"},
        [("g *= coef", "g = g * coef")],
    ),
    M(
        "03_clipping",
        "clip: new arrays put into the list",
        "clip_grad_norm",
        {"test_clip_grad_norm": "new arrays", "test_clip_grad_norm_eps": "new arrays"},
        [
            (
                CLIP,
                "    if coef < 1:\n        for i in range(len(grads)):\n            grads[i] = grads[i] * coef\n",
            )
        ],
    ),
    M(
        "03_clipping",
        "clip: scales even below the threshold",
        "clip_grad_norm",
        {"test_clip_grad_norm_below": "below max_norm"},
        [(CLIP, "    for g in grads:\n        g *= coef\n")],
    ),
    M(
        "03_clipping",
        "clip: NaN not checked",
        "clip_grad_norm",
        {"test_clip_grad_norm_nonfinite": "FloatingPointError"},
        [
            (
                '    if not np.isfinite(total):\n        raise FloatingPointError(f"the total norm of the gradients is {total}")\n',
                "",
            )
        ],
    ),
    M(
        "03_clipping",
        "clip: raises ValueError",
        "clip_grad_norm",
        {"test_clip_grad_norm_nonfinite": "must raise FloatingPointError"},
        [("raise FloatingPointError(", "raise ValueError(")],
    ),
    M(
        "03_clipping",
        "clip: only NaN checked, not inf",
        "clip_grad_norm",
        {"test_clip_grad_norm_nonfinite": "np.isfinite"},
        [("if not np.isfinite(total):", "if np.isnan(total):")],
    ),
    M(
        "03_clipping",
        "clip: raises after scaling",
        "clip_grad_norm",
        {"test_clip_grad_norm_nonfinite": "only after changing the arrays"},
        [
            (
                '    if not np.isfinite(total):\n        raise FloatingPointError(f"the total norm of the gradients is {total}")\n'
                "    coef = max_norm / (total + eps)\n" + CLIP,
                "    coef = max_norm / (total + eps)\n    for g in grads:\n        g *= min(coef, 1.0)\n"
                "    if not np.isfinite(total):\n        raise FloatingPointError('not finite')\n",
            )
        ],
    ),
    M(
        "03_clipping",
        "clip: no eps",
        "clip_grad_norm",
        {"test_clip_grad_norm_eps": "max_norm / (total + eps)"},
        [("coef = max_norm / (total + eps)", "coef = max_norm / total")],
    ),
    M(
        "03_clipping",
        "value: np.clip not in place",
        "clip_grad_value",
        {"test_clip_grad_value": "not changed"},
        [("np.clip(g, -clip_value, clip_value, out=g)", "g = np.clip(g, -clip_value, clip_value)")],
    ),
    M(
        "03_clipping",
        "value: new arrays put into the list",
        "clip_grad_value",
        {"test_clip_grad_value": "new arrays"},
        [
            (
                "for g in grads:\n        np.clip(g, -clip_value, clip_value, out=g)",
                "for i, g in enumerate(grads):\n        grads[i] = np.clip(g, -clip_value, clip_value)",
            )
        ],
    ),
    M(
        "03_clipping",
        "value: one side only",
        "clip_grad_value",
        {"test_clip_grad_value": "only the upper side"},
        [("np.clip(g, -clip_value, clip_value, out=g)", "np.minimum(g, clip_value, out=g)")],
    ),
]

VARIANTS = [
    M(
        "03_clipping",
        "global norm by concatenation, numpy scalar",
        "global_norm",
        {},
        code="def global_norm(grads):\n    return np.linalg.norm(np.concatenate([g.ravel() for g in grads]))\n",
    ),
    M(
        "03_clipping",
        "clip with a threshold test and slice assignment",
        "clip_grad_norm",
        {},
        code="def clip_grad_norm(grads, max_norm, eps=1e-6):\n"
        "    total = np.sqrt(sum((g ** 2).sum() for g in grads))\n"
        "    if np.isnan(total) or np.isinf(total):\n        raise FloatingPointError('non-finite norm')\n"
        "    scale = min(1.0, max_norm / (total + eps))\n"
        "    for g in grads:\n        g[...] = g * scale\n    return total\n",
    ),
    M(
        "03_clipping",
        "value clipping with boolean masks, returning the list",
        "clip_grad_value",
        {},
        code="def clip_grad_value(grads, clip_value):\n    for g in grads:\n"
        "        g[g > clip_value] = clip_value\n        g[g < -clip_value] = -clip_value\n    return grads\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def test_clipping_reference(ref):
    ns = ref("03_clipping")
    rng = np.random.default_rng(3)
    shapes = [(4, 3), (4, 4), (4,), (5, 4), (5,)]
    for scale, max_norm in ((3.0, 1.0), (0.01, 1.0), (1e-5, 1e-6)):
        grads = [scale * rng.standard_normal(s) for s in shapes]
        params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
        for p, g in zip(params, grads, strict=False):
            p.grad = t(g)
        assert (
            abs(
                ns["global_norm"](grads)
                - torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in params])).item()
            )
            < 1e-12
        )
        before = list(grads)
        total = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        assert abs(ns["clip_grad_norm"](grads, max_norm) - total) < 1e-12 * total
        for g, b, p in zip(grads, before, params, strict=False):
            assert g is b and max_rel_error(g, p.grad) < 1e-12
    grads = [rng.standard_normal(s) for s in shapes]
    grads[2][1] = np.nan
    kept = copy.deepcopy(grads)
    with pytest.raises(FloatingPointError):
        ns["clip_grad_norm"](grads, 1.0)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(grads, kept, strict=False))
    grads[2][1] = np.inf
    with pytest.raises(FloatingPointError):
        ns["clip_grad_norm"](grads, 1.0)
    grads = [3 * rng.standard_normal(s) for s in shapes]
    params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, g in zip(params, grads, strict=False):
        p.grad = t(g)
    torch.nn.utils.clip_grad_value_(params, 0.5)
    assert ns["clip_grad_value"](grads, 0.5) is None
    assert all(np.array_equal(g, p.grad.numpy()) for g, p in zip(grads, params, strict=False))
