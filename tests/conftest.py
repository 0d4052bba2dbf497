"""Shared fixtures: a seeded generator and a small, deliberately awkward RNN problem.

Awkward on purpose: non-symmetric weights, B > 1, D != H != V and a non-zero
h0, so that a transpose, a swapped axis or a forgotten initial state shows.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from bptt.rnn import init_params

ROOT = Path(__file__).resolve().parent.parent

# `make test` is deterministic: Hypothesis draws the same examples on every run, from no
# database. `make fuzz` (HYPOTHESIS_PROFILE=fuzz) searches widely and at random.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", max_examples=3000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def make_problem(T, seed=0, *, B=3, D=5, H=4, V=6, scale=1.5):
    """``(params, xs, h0, targets)`` of a seeded, awkward RNN problem (see the module docstring)."""
    rng = np.random.default_rng(seed)
    params = init_params(D, H, V, rng, scale=scale)
    xs = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    targets = rng.integers(0, V, size=(T, B))
    return params, xs, h0, targets


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def problem(rng):
    T, B, D, H, V = 6, 3, 5, 4, 7
    params = init_params(D, H, V, rng, scale=2.0)
    assert not np.allclose(params["W_hh"], params["W_hh"].T)
    return {
        "params": params,
        "xs": rng.standard_normal((T, B, D)),
        "h0": rng.standard_normal((B, H)) * 0.5,
        "targets": rng.integers(0, V, size=(T, B)),
        "dims": {"T": T, "B": B, "D": D, "H": H, "V": V},
    }


@pytest.fixture(scope="module")
def ref():
    """ref(assignment): the namespace of the assignment's reference solution (cached)."""
    from exercise_harness import reference

    cache: dict = {}

    def get(assignment):
        if assignment not in cache:
            cache[assignment] = reference(assignment)
        return cache[assignment]

    return get
