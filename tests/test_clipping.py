"""bptt.clipping against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (float64)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import clip_grad_norm_, clip_grad_value_

from bptt.clipping import (
    clip_grad_norm,
    clip_grad_value,
    clip_per_tensor_norm,
    cosine_similarity,
    global_norm,
)

SHAPES = [(4, 3), (4, 4), (4,), (5, 4), (5,)]  # W_xh, W_hh, b_h, W_hy, b_y with D=3, H=4, V=5


def random_grads(rng, scale=1.0, shapes=SHAPES):
    return [scale * rng.standard_normal(shape) for shape in shapes]


def torch_leaves(grads):
    """float64 parameters whose .grad holds a copy of each array."""
    params = []
    for g in grads:
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g)
        params.append(p)
    return params


def copies(grads):
    return [g.copy() for g in grads]


def test_global_norm_is_the_norm_of_all_entries_together():
    grads = random_grads(np.random.default_rng(0))
    flat = np.concatenate([g.ravel() for g in grads])
    assert global_norm(grads) == pytest.approx(np.sqrt(np.sum(flat**2)), rel=1e-14)
    expected = torch.linalg.vector_norm(torch.cat([torch.tensor(g).ravel() for g in grads]))
    assert global_norm(grads) == pytest.approx(expected.item(), rel=1e-14)
    assert global_norm([]) == 0.0
    assert global_norm([np.zeros((2, 3))]) == 0.0


@settings(deadline=None)  # the number of examples is the profile's (conftest.py)
@given(
    seed=st.integers(0, 2**32 - 1),
    log_scale=st.floats(-3, 3),
    max_norm=st.floats(0.0, 20.0),
)
def test_clip_grad_norm_matches_torch(seed, log_scale, max_norm):
    grads = random_grads(np.random.default_rng(seed), scale=10.0**log_scale)
    params = torch_leaves(grads)
    expected_total = clip_grad_norm_(params, max_norm).item()
    total = clip_grad_norm(grads, max_norm)
    assert isinstance(total, float)
    assert total == pytest.approx(expected_total, rel=1e-13)
    for g, p in zip(grads, params, strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-13, atol=0)
    # The promise: the clipped norm is at most max_norm, up to rounding. Rounding is relative
    # (1e-12) for normal numbers; a subnormal max_norm (hypothesis found 2.2e-313) makes entries
    # subnormal, where floats are spaced by an absolute 5e-324, so each entry may be off by that.
    rounding = np.sqrt(sum(g.size for g in grads)) * np.finfo(np.float64).smallest_subnormal
    assert global_norm(grads) <= max(max_norm, total) * (1 + 1e-12) + rounding
    if total > max_norm:
        assert global_norm(grads) <= max_norm * (1 + 1e-12) + rounding


def test_clip_grad_norm_scales_exactly_to_threshold_over_total_plus_eps():
    rng = np.random.default_rng(1)
    grads = random_grads(rng, scale=5.0)
    before = copies(grads)
    total = clip_grad_norm(grads, 1.0)
    factor = 1.0 / (total + 1e-6)
    for g, b in zip(grads, before, strict=True):
        np.testing.assert_allclose(g, factor * b, rtol=1e-15)
    assert global_norm(grads) == pytest.approx(total / (total + 1e-6), rel=1e-14)


def test_norm_below_threshold_leaves_arrays_untouched():
    grads = random_grads(np.random.default_rng(2), scale=0.01)
    before = copies(grads)
    total = clip_grad_norm(grads, 10.0)
    assert total < 10.0
    for g, b in zip(grads, before, strict=True):
        assert np.array_equal(g, b)


def test_eps_clips_a_gradient_whose_norm_equals_the_threshold_like_torch():
    grads = [np.array([3.0, 4.0])]  # norm 5 exactly
    params = torch_leaves(grads)
    assert clip_grad_norm(grads, 5.0) == 5.0
    clip_grad_norm_(params, 5.0)
    np.testing.assert_allclose(grads[0], [3.0 * 5 / (5 + 1e-6), 4.0 * 5 / (5 + 1e-6)], rtol=1e-15)
    np.testing.assert_allclose(grads[0], params[0].grad.numpy(), rtol=1e-15)
    assert grads[0][0] < 3.0  # really scaled
    untouched = [np.array([3.0, 4.0])]
    clip_grad_norm(untouched, 5.0, eps=0.0)
    assert np.array_equal(untouched[0], [3.0, 4.0])


def test_clip_grad_norm_modifies_torch_gradients_through_numpy_views():
    grads = random_grads(np.random.default_rng(3), scale=3.0)
    params = torch_leaves(grads)
    oracle = torch_leaves(grads)
    clip_grad_norm([p.grad.numpy() for p in params], 0.5)  # views share memory
    clip_grad_norm_(oracle, 0.5)
    for p, q in zip(params, oracle, strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-14, atol=0)


def test_zero_max_norm_zeroes_the_gradient_like_torch():
    grads = random_grads(np.random.default_rng(4))
    params = torch_leaves(grads)
    assert clip_grad_norm(grads, 0.0) == pytest.approx(clip_grad_norm_(params, 0.0).item())
    assert all(np.all(g == 0) for g in grads)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradients_raise_and_stay_unchanged(bad):
    grads = random_grads(np.random.default_rng(5), scale=3.0)
    grads[1][2, 0] = bad
    before = copies(grads)
    with pytest.raises(FloatingPointError):
        clip_grad_norm(grads, 1.0)
    for g, b in zip(grads, before, strict=True):
        np.testing.assert_array_equal(g, b)  # equal_nan: NaN in the same place
    # torch with error_if_nonfinite=True refuses too, and also leaves the gradients alone
    params = torch_leaves(before)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    for g, p in zip(before, params, strict=True):
        np.testing.assert_array_equal(p.grad.numpy(), g)
    with pytest.raises(FloatingPointError):
        clip_per_tensor_norm(grads, 1.0)
    np.testing.assert_array_equal(grads[1], before[1])


def test_huge_but_finite_gradients_do_not_overflow_the_norm():
    grads = [np.full((3, 2), 1e200), np.array([-1e200, 2.0])]
    expected = 1e200 * math.sqrt(7)
    assert global_norm(grads) == pytest.approx(expected, rel=1e-14)
    total = clip_grad_norm(grads, 1.0)
    assert total == pytest.approx(expected, rel=1e-14)
    assert global_norm(grads) == pytest.approx(1.0, rel=1e-12)
    # a naive sum of squares (and torch's norm) overflows to inf here
    with np.errstate(over="ignore"):
        assert np.isinf(np.sqrt(sum(np.sum(g**2) for g in [np.full(2, 1e200)])))


def test_clip_per_tensor_norm_equals_torch_applied_to_each_tensor_separately():
    rng = np.random.default_rng(6)
    grads = random_grads(rng)
    grads[1] *= 100.0  # one big tensor, the others small
    params = torch_leaves(grads)
    norms = clip_per_tensor_norm(grads, 2.0)
    assert norms.shape == (len(SHAPES),)
    for g, p, n in zip(grads, params, norms, strict=True):
        assert n == pytest.approx(clip_grad_norm_([p], 2.0).item(), rel=1e-14)
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-14, atol=0)
        assert np.linalg.norm(g) <= 2.0


def test_clip_grad_value_matches_torch_including_inf_and_nan():
    grads = random_grads(np.random.default_rng(7), scale=2.0)
    grads[0][0, 0], grads[2][1], grads[4][3] = np.inf, -np.inf, np.nan
    params = torch_leaves(grads)
    assert clip_grad_value(grads, 0.5) is None
    clip_grad_value_(params, 0.5)
    for g, p in zip(grads, params, strict=True):
        np.testing.assert_array_equal(g, p.grad.numpy())
    assert grads[0][0, 0] == 0.5 and grads[2][1] == -0.5 and np.isnan(grads[4][3])
    finite = np.concatenate([g.ravel() for g in grads])
    assert np.nanmax(np.abs(finite)) == 0.5


def test_cosine_shows_which_clipping_keeps_the_direction():
    rng = np.random.default_rng(8)
    grads = random_grads(rng)
    grads[1] *= 100.0
    by_norm, by_tensor, by_value = copies(grads), copies(grads), copies(grads)
    clip_grad_norm(by_norm, 1.0)
    clip_per_tensor_norm(by_tensor, 1.0)
    clip_grad_value(by_value, 0.1)
    assert cosine_similarity(grads, by_norm) == pytest.approx(1.0, abs=1e-14)
    assert cosine_similarity(grads, by_tensor) < 0.99
    assert cosine_similarity(grads, by_value) < 0.99
    flat = [torch.cat([torch.tensor(g).ravel() for g in gs]) for gs in (grads, by_value)]
    expected = torch.nn.functional.cosine_similarity(*flat, dim=0).item()
    assert cosine_similarity(grads, by_value) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(
    ("grads", "match"),
    [
        (np.ones(3), "list of numpy arrays"),
        ([np.ones(3), [1.0, 2.0]], r"grads\[1\] must be a numpy array"),
        ([torch.ones(3)], r"grads\[0\] must be a numpy array"),
        ([np.ones(3, dtype=int)], "must hold floats"),
        ([np.broadcast_to(np.ones(1), (3,))], "read-only"),
    ],
)
def test_bad_grads_raise_value_error(grads, match):
    for call in (
        lambda: global_norm(grads),
        lambda: clip_grad_norm(grads, 1.0),
        lambda: clip_per_tensor_norm(grads, 1.0),
        lambda: clip_grad_value(grads, 1.0),
    ):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("bad", [-1.0, np.nan, "1", True, None])
def test_bad_thresholds_raise_value_error(bad):
    grads = [np.ones(3)]
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(grads, bad)
    with pytest.raises(ValueError, match="max_norm"):
        clip_per_tensor_norm(grads, bad)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value(grads, bad)
    with pytest.raises(ValueError, match="eps"):
        clip_grad_norm(grads, 1.0, eps=bad)
    np.testing.assert_array_equal(grads[0], np.ones(3))


def test_cosine_rejects_mismatched_or_zero_gradients():
    with pytest.raises(ValueError, match="same"):
        cosine_similarity([np.ones(3)], [np.ones(4)])
    with pytest.raises(ValueError, match="same"):
        cosine_similarity([], [])
    with pytest.raises(ValueError, match="non-zero"):
        cosine_similarity([np.ones(3)], [np.zeros(3)])
