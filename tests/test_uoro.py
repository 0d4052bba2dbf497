"""UORO: unbiased, checked exactly by averaging over every possible sign pattern."""

import itertools

import numpy as np
import pytest

from bptt.backward import loss_and_grads
from bptt.oracles import max_rel_error
from bptt.uoro import uoro_grads

from conftest import make_problem

T, B, D, H, V = 2, 2, 3, 3, 4  # 2**(T*B*H) = 4096 sign patterns


@pytest.fixture
def setup():
    return make_problem(T, 5, B=B, D=D, H=H, V=V)


def all_sign_patterns():
    patterns = np.array(list(itertools.product([-1.0, 1.0], repeat=T * B * H)))
    return patterns.reshape(-1, T, B, H).transpose(1, 0, 2, 3)  # (T, S, B, H)


def test_exact_expectation_is_the_true_gradient(setup):
    params, xs, h0, targets = setup
    loss, grads = loss_and_grads(params, xs, h0, targets)
    loss_u, estimates = uoro_grads(params, xs, h0, targets, signs=all_sign_patterns())
    assert abs(loss_u - loss) <= 1e-12 * abs(loss)
    for key in grads:
        assert estimates[key].shape == (2 ** (T * B * H), *grads[key].shape)
        assert max_rel_error(estimates[key].mean(axis=0), grads[key]) <= 1e-12, key


def test_single_estimates_are_noisy_but_the_readout_is_exact(setup):
    params, xs, h0, targets = setup
    _, grads = loss_and_grads(params, xs, h0, targets)
    _, estimates = uoro_grads(params, xs, h0, targets, rng=np.random.default_rng(0), n_samples=5)
    for s in range(5):
        assert np.array_equal(estimates["W_hy"][s], estimates["W_hy"][0])
        assert max_rel_error(estimates["W_hy"][s], grads["W_hy"]) <= 1e-12
    worst = max(max_rel_error(estimates["W_hh"][s], grads["W_hh"]) for s in range(5))
    assert worst > 0.01  # an estimate, not the gradient


def test_same_signs_same_estimate(setup):
    params, xs, h0, targets = setup
    signs = np.random.default_rng(1).choice([-1.0, 1.0], size=(T, 3, B, H))
    _, a = uoro_grads(params, xs, h0, targets, signs=signs)
    _, b = uoro_grads(params, xs, h0, targets, signs=signs.copy())
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_bad_inputs_raise(setup):
    params, xs, h0, targets = setup
    with pytest.raises(ValueError, match="either rng"):
        uoro_grads(params, xs, h0, targets)
    with pytest.raises(ValueError, match=r"signs must have shape \(T, S, B, H\)"):
        uoro_grads(params, xs, h0, targets, signs=np.ones((T, 2, B, H + 1)))
    with pytest.raises(ValueError, match="only -1 and"):
        uoro_grads(params, xs, h0, targets, signs=np.full((T, 2, B, H), 0.5))
    with pytest.raises(ValueError, match="n_samples"):
        uoro_grads(params, xs, h0, targets, rng=np.random.default_rng(0), n_samples=0)
    with pytest.raises(ValueError, match="h0"):
        uoro_grads(params, xs, h0[:, :2], targets, rng=np.random.default_rng(0))
