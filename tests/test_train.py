"""The training helpers: Adam and clipping against torch, and a loop that learns."""

import numpy as np
import pytest
import torch

from bptt.rnn import init_params
from bptt.train import adam_init, adam_step, train_char_rnn


def test_adam_step_matches_torch_adam():
    rng = np.random.default_rng(0)
    params = init_params(3, 4, 5, rng)
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adam(theirs.values(), lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    state = adam_init(params)
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        adam_step(params, grads, state, lr=1e-2)
        for k, g in grads.items():
            theirs[k].grad = torch.from_numpy(g.copy())
        opt.step()
    for k in params:
        np.testing.assert_allclose(params[k], theirs[k].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_training_lowers_the_loss_on_a_periodic_text():
    ids = np.tile(np.arange(4), 50)  # "abcdabcd...": perfectly predictable
    rng = np.random.default_rng(2)
    params = init_params(4, 8, 4, rng)
    before = {k: v.copy() for k, v in params.items()}
    calls = []
    trained, losses, norms = train_char_rnn(
        params,
        ids,
        steps=150,
        rng=rng,
        T=8,
        B=4,
        lr=2e-2,
        callback=lambda step, p: calls.append(step),
    )
    assert calls == list(range(1, 151))
    assert losses.shape == norms.shape == (150,)
    assert losses[:5].mean() > 1.0  # about log 4 = 1.39 at the start
    assert losses[-10:].mean() < 0.1 * losses[:5].mean()
    for k in params:  # the caller's params are untouched
        np.testing.assert_array_equal(params[k], before[k])
        assert not np.allclose(trained[k], before[k])


def test_value_errors():
    rng = np.random.default_rng(3)
    params = init_params(4, 8, 4, rng)
    ids = np.tile(np.arange(4), 10)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        train_char_rnn(params, ids, steps=0, rng=rng)
    with pytest.raises(ValueError, match="max_norm must be positive"):
        train_char_rnn(params, ids, steps=1, rng=rng, max_norm=0.0)
    with pytest.raises(ValueError, match=r"ids must hold class indices in \[0, 4\)"):
        train_char_rnn(params, ids + 1, steps=1, rng=rng)
    with pytest.raises(ValueError, match=r"W_xh must have shape \(H, V\)"):
        train_char_rnn(init_params(3, 8, 4, rng), ids, steps=1, rng=rng)
    with pytest.raises(ValueError, match="lr must be positive"):
        adam_step(params, params, adam_init(params), lr=-1.0)
    with pytest.raises(ValueError, match="grads must have the keys of params"):
        adam_step(params, {"W_xh": params["W_xh"]}, adam_init(params), lr=1e-3)
    with pytest.raises(ValueError, match="max_norm"):
        train_char_rnn(params, ids, steps=1, rng=rng, max_norm=-1.0)
