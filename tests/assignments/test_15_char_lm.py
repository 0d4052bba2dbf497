# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 15_char_lm, the capstone: its reference solution against oracles nobody here wrote
(torch.autograd through nn.RNN with copied weights, torch.optim.Adam, clip_grad_norm_, the exact
sampling distribution), its typical mistakes (each must lose points with a message that names it)
and its valid variations (each keeps full marks). tests/test_exercises.py runs MUTANTS and
VARIANTS through the notebook's own tests; the functions below test the reference solution."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from exercise_harness import (
    EXERCISES,
    ROOT,
    SOLUTIONS,
    TOL,
    Mutant,
    max_rel_error,
    read,
    rnn_grads,
    source_path,
    t,
    torch_rnn,
)

M = Mutant
F = torch.nn.functional
A = "15_char_lm"
TRAIN = ("test_train_steps", "test_train_passes")
LM_STEP = "da = (dhs[t] + dh_next) * (1 - hs[t] ** 2)"
CLIP = "scale = max_norm / norm if norm > max_norm else 1.0"
PPL = "return float(np.exp(-logp[np.arange(len(ids) - 1), ids[1:]].mean()))"

MUTANTS = [
    M(
        A,
        "lm: dh_next dropped (gradient of the readout only, not through time)",
        "lm_loss_and_grads",
        {
            "test_lm_grads": "does not flow back through time",
            "test_lm_edge": "does not flow back through time",
            "test_train_steps": "",
            "test_train_passes": "",
        },
        [(LM_STEP, "da = dhs[t] * (1 - hs[t] ** 2)")],
    ),
    M(
        A,
        "lm: repeated characters of one step counted once (indexed +=)",
        "lm_loss_and_grads",
        {
            "test_lm_grads": "counts only once",
            "test_lm_edge": "counts only once",
            "test_train_steps": "",
            "test_train_passes": "",
        },
        [("np.add.at(dW_xh.T, ids_in[t], da)", "dW_xh[:, ids_in[t]] += da.T")],
    ),
    M(
        A,
        "lm: loss averaged over time too",
        "lm_loss_and_grads",
        {
            "test_lm_loss_state": "averaged over time",
            "test_train_steps": "",
            "test_train_passes": "",
        },
        [("loss = -picked.sum() / B", "loss = -picked.sum() / (B * T)")],
    ),
    M(
        A,
        "lm: gradients summed over the batch (dz not divided by B)",
        "lm_loss_and_grads",
        {
            "test_lm_grads": "summed over the batch",
            "test_lm_edge": "summed over the batch",
        },  # train passes: Adam does not see a constant factor of the gradients
        [("    dz = dz / B\n", "")],
    ),
    M(
        A,
        "lm: the chunk starts from zeros, not h0",
        "lm_loss_and_grads",
        {
            "test_lm_loss_state": "started from zeros",
            "test_lm_grads": "",
            "test_lm_edge": "",
            "test_train_steps": "",
            "test_train_passes": "",
        },
        [("    h = h0\n", "    h = np.zeros_like(h0)\n")],
    ),
    M(
        A,
        "clip: each tensor clipped on its own",
        "clip_global_norm",
        {"test_clip": "clipped on its own", "test_train_steps": "", "test_train_passes": ""},
        code="def clip_global_norm(grads, max_norm):\n"
        "    out = {n: g * min(1.0, max_norm / max(np.linalg.norm(g), 1e-12)) for n, g in grads.items()}\n"
        "    return out, float(np.sqrt(sum((g ** 2).sum() for g in grads.values())))\n",
    ),
    M(
        A,
        "clip: the factor upside down",
        "clip_global_norm",
        {"test_clip": "upside down", "test_train_steps": "", "test_train_passes": ""},
        [(CLIP, "scale = norm / max_norm if norm > max_norm else 1.0")],
    ),
    M(
        A,
        "clip: always scaled to max_norm (small gradients scaled up)",
        "clip_global_norm",
        {"test_clip_below": "scaled up", "test_train_steps": ""},
        [(CLIP, "scale = max_norm / norm")],
    ),
    M(
        A,
        "clip: returns the squared norm",
        "clip_global_norm",
        {"test_clip": "squared norm", "test_clip_below": "squared norm"},
        [
            (
                "return {n: g * scale for n, g in grads.items()}, norm",
                "return {n: g * scale for n, g in grads.items()}, norm ** 2",
            )
        ],
    ),
    M(
        A,
        "adam: no bias correction",
        "adam_step",
        {
            "test_adam_step": "not bias-corrected",
            "test_adam_steps": "not bias-corrected",
            "test_train_steps": "",
            "test_train_passes": "",
            "test_train_perplexity": "perplexity",
        },
        [
            ("m_hat = m[n] / (1 - beta1 ** t)", "m_hat = m[n]"),
            ("v_hat = v[n] / (1 - beta2 ** t)", "v_hat = v[n]"),
        ],
    ),
    M(
        A,
        "adam: bias correction with the step count before the step",
        "adam_step",
        {
            "test_adam_step": "increment it first",
            "test_adam_steps": "increment it first",
            "test_train_steps": "",
            "test_train_passes": "",
            "test_train_perplexity": "",
        },
        [
            ("m_hat = m[n] / (1 - beta1 ** t)", "m_hat = m[n] / (1 - beta1 ** state['t'])"),
            ("v_hat = v[n] / (1 - beta2 ** t)", "v_hat = v[n] / (1 - beta2 ** state['t'])"),
        ],
    ),
    M(
        A,
        "adam: eps inside the square root",
        "adam_step",
        {
            "test_adam_step": "inside the square root",
            "test_adam_steps": "inside the square root",
            "test_train_steps": "",
            "test_train_passes": "",
        },
        [("np.sqrt(v_hat) + eps", "np.sqrt(v_hat + eps)")],
    ),
    M(
        A,
        "adam: the step count incremented in place",
        "adam_step",
        {"test_adam_step": "in place", "test_adam_steps": "in place"},
        [('t = state["t"] + 1', 'state["t"] += 1\n    t = state["t"]')],
    ),
    M(
        A,
        "train: state not carried between chunks",
        "train",
        {"test_train_steps": "not carried", "test_train_passes": "not carried"},
        [("loss, grads, h = lm_loss_and_grads(", "loss, grads, _ = lm_loss_and_grads(")],
    ),
    M(
        A,
        "train: state not reset at a new pass over the text",
        "train",
        {"test_train_passes": "start from zeros there"},
        [
            (
                "        if j == 0:  # a new pass over the text: its streams start afresh\n            h = np.zeros_like(h)\n",
                "",
            )
        ],
    ),
    M(
        A,
        "train: the targets not shifted (predicting the character read)",
        "train",
        {
            "test_train_steps": "not the next ones",
            "test_train_passes": "not the next ones",
            "test_train_perplexity": "perplexity",
        },
        [("streams[:, s + 1:s + k + 1].T, h)", "streams[:, s:s + k].T, h)")],
    ),
    M(
        A,
        "train: no clipping",
        "train",
        {"test_train_steps": "not clipped", "test_train_passes": "not clipped"},
        [("        grads, _ = clip_global_norm(grads, max_norm)\n", "")],
    ),
    M(
        A,
        "train: Adam's state made anew at every step",
        "train",
        {
            "test_train_steps": "restarts at every step",
            "test_train_passes": "restarts at every step",
        },
        [
            (
                "        params, state = adam_step(",
                "        state = adam_init(params)\n        params, state = adam_step(",
            )
        ],
    ),
    M(
        A,
        "perplexity: exp of the summed loss",
        "perplexity",
        {"test_perplexity": "summed loss"},
        [(PPL, "return float(np.exp(-logp[np.arange(len(ids) - 1), ids[1:]].sum()))")],
    ),
    M(
        A,
        "perplexity: the mean over len(ids) (one prediction too many)",
        "perplexity",
        {"test_perplexity": "len(ids) - 1"},
        [(PPL, "return float(np.exp(-logp[np.arange(len(ids) - 1), ids[1:]].sum() / len(ids)))")],
    ),
    M(
        A,
        "perplexity: 2 to the mean loss in nats",
        "perplexity",
        {"test_perplexity": "nats"},
        [(PPL, "return float(2 ** (-logp[np.arange(len(ids) - 1), ids[1:]].mean()))")],
    ),
    M(
        A,
        "sample: temperature multiplied",
        "sample_next",
        {
            "test_sample_distribution": "multiplied by the temperature",
            "test_sample_cold": "multiplied by the temperature",
        },
        [("z = logits / temperature", "z = logits * temperature")],
    ),
    M(
        A,
        "sample: no max-subtraction (overflow at small temperature)",
        "sample_next",
        {"test_sample_cold": "overflows"},
        [("p = np.exp(z - z.max(axis=-1, keepdims=True))", "p = np.exp(z)")],
    ),
    M(
        A,
        "sample: argmax instead of sampling",
        "sample_next",
        {"test_sample_distribution": "greedy"},
        code="def sample_next(logits, temperature, u):\n    return np.asarray(logits).argmax(axis=-1)\n",
    ),
    M(
        A,
        "sample: inverse-CDF search off by one",
        "sample_next",
        {"test_sample_distribution": "off by one", "test_sample_cold": "off by one"},
        [
            (
                "idx = (cdf <= np.asarray(u)[:, None]).sum(axis=-1)",
                "idx = (cdf <= np.asarray(u)[:, None]).sum(axis=-1) + 1",
            )
        ],
    ),
]

VARIANTS = [
    M(
        A,
        "lm with one-hot matrices",
        "lm_loss_and_grads",
        {},
        code="def lm_loss_and_grads(params, ids_in, ids_target, h0):\n"
        "    V = params['W_hy'].shape[0]\n    X, Y = np.eye(V)[ids_in], np.eye(V)[ids_target]\n"
        "    T, B = ids_in.shape\n    hs, h = [], h0\n"
        "    for x in X:\n        h = np.tanh(x @ params['W_xh'].T + h @ params['W_hh'].T + params['b_h'])\n        hs.append(h)\n"
        "    hs = np.stack(hs)\n    z = hs @ params['W_hy'].T + params['b_y']\n"
        "    p = np.exp(z - z.max(-1, keepdims=True))\n    p /= p.sum(-1, keepdims=True)\n"
        "    loss = -(Y * np.log(p)).sum() / B\n    dz = (p - Y) / B\n"
        "    g = {n: np.zeros_like(v) for n, v in params.items()}\n"
        "    g['W_hy'] = np.einsum('tbv,tbh->vh', dz, hs)\n    g['b_y'] = dz.sum((0, 1))\n"
        "    dh = np.zeros_like(h0)\n"
        "    for t in range(T - 1, -1, -1):\n        da = (dz[t] @ params['W_hy'] + dh) * (1 - hs[t] ** 2)\n"
        "        g['W_xh'] += da.T @ X[t]\n        g['W_hh'] += da.T @ (hs[t - 1] if t else h0)\n"
        "        g['b_h'] += da.sum(0)\n        dh = da @ params['W_hh']\n"
        "    return loss, g, hs[-1]\n",
    ),
    M(
        A,
        "clip with np.linalg.norm of all the gradients, min(1, ...)",
        "clip_global_norm",
        {},
        code="def clip_global_norm(grads, max_norm):\n"
        "    norm = np.linalg.norm(np.concatenate([g.ravel() for g in grads.values()]))\n"
        "    factor = min(1.0, max_norm / norm) if norm > 0 else 1.0\n"
        "    return {n: factor * g for n, g in grads.items()}, norm\n",
    ),
    M(
        A,
        "adam in Kingma and Ba's efficient form (step size corrected)",
        "adam_step",
        {},
        code="def adam_step(params, grads, state, lr, beta1, beta2, eps):\n"
        "    t = state['t'] + 1\n    new_m, new_v, new_p = {}, {}, {}\n"
        "    step = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)\n"
        "    for n, p in params.items():\n"
        "        new_m[n] = beta1 * state['m'][n] + (1 - beta1) * grads[n]\n"
        "        new_v[n] = beta2 * state['v'][n] + (1 - beta2) * grads[n] * grads[n]\n"
        "        new_p[n] = p - step * new_m[n] / (np.sqrt(new_v[n]) + eps * np.sqrt(1 - beta2 ** t))\n"
        "    return new_p, {'t': t, 'm': new_m, 'v': new_v}\n",
    ),
    M(
        A,
        "train with its own streams and a position that wraps",
        "train",
        {},
        code="def train(text_ids, params, steps, B, k, lr, max_norm):\n"
        "    L = len(text_ids) // B\n    S = np.array([text_ids[b * L:(b + 1) * L] for b in range(B)])\n"
        "    opt, h, pos, out = adam_init(params), None, 0, []\n"
        "    for _ in range(steps):\n"
        "        if pos + k + 1 > L:\n            pos = 0\n"
        "        if pos == 0:\n            h = np.zeros((B, len(params['b_h'])))\n"
        "        x, y = S[:, pos:pos + k].T, S[:, pos + 1:pos + k + 1].T\n"
        "        loss, g, h = lm_loss_and_grads(params, x, y, h)\n"
        "        g = clip_global_norm(g, max_norm)[0]\n        params, opt = adam_step(params, g, opt, lr, 0.9, 0.999, 1e-8)\n"
        "        out.append(loss)\n        pos += k\n"
        "    return params, out\n",
    ),
    M(
        A,
        "perplexity through lm_loss_and_grads (B = 1)",
        "perplexity",
        {},
        code="def perplexity(params, ids):\n"
        "    ids = np.asarray(ids).reshape(-1, 1)\n"
        "    loss, _, _ = lm_loss_and_grads(params, ids[:-1], ids[1:], np.zeros((1, len(params['b_h']))))\n"
        "    return float(np.exp(loss / (len(ids) - 1)))\n",
    ),
    M(
        A,
        "sample with np.searchsorted",
        "sample_next",
        {},
        code="def sample_next(logits, temperature, u):\n"
        "    if temperature == 0:\n        return np.argmax(logits, axis=1)\n"
        "    z = np.asarray(logits) / temperature\n    z = z - z.max(axis=1, keepdims=True)\n"
        "    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)\n"
        "    c = np.cumsum(p, axis=1)\n"
        "    return np.array([min(np.searchsorted(c[b], u[b], side='right'), len(c[b]) - 1) for b in range(len(u))])\n",
    ),
    M(
        A,
        "sample inverting the CDF of the characters sorted by probability (other indices, same law)",
        "sample_next",
        {},
        code="def sample_next(logits, temperature, u):\n"
        "    logits = np.asarray(logits, dtype=float)\n"
        "    if temperature == 0:\n        return logits.argmax(axis=-1)\n"
        "    order = np.argsort(-logits, axis=-1, kind='stable')\n"
        "    z = np.take_along_axis(logits, order, axis=-1) / temperature\n"
        "    p = np.exp(z - z[:, :1])\n    cdf = np.cumsum(p, axis=-1) / p.sum(axis=-1, keepdims=True)\n"
        "    pos = np.minimum((cdf <= u[:, None]).sum(axis=-1), logits.shape[-1] - 1)\n"
        "    return np.take_along_axis(order, pos[:, None], axis=-1)[:, 0]\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def _params(rng, V, H):
    return {
        "W_xh": rng.standard_normal((H, V)),
        "W_hh": rng.standard_normal((H, H)) / np.sqrt(H),
        "b_h": rng.standard_normal(H),
        "W_hy": rng.standard_normal((V, H)),
        "b_y": rng.standard_normal(V),
    }


def _torch_model(params):
    """nn.RNN with the weights copied (bias_hh = 0), and the readout as leaf tensors."""
    rnn = torch_rnn(params["W_xh"], params["W_hh"], params["b_h"])
    W_hy, b_y = t(params["W_hy"]).requires_grad_(), t(params["b_y"]).requires_grad_()
    return rnn, W_hy, b_y


def _torch_chunk(rnn, W_hy, b_y, ids_in, ids_target, h0):
    V = W_hy.shape[0]
    out, h = rnn(F.one_hot(torch.tensor(ids_in), V).double(), t(h0)[None])
    z = (out @ W_hy.T + b_y).reshape(-1, V)
    loss = (
        F.cross_entropy(z, torch.tensor(ids_target).reshape(-1), reduction="sum") / ids_in.shape[1]
    )
    return loss, h[0]


def test_lm_loss_and_grads_reference(ref):
    ns = ref(A)
    rng = np.random.default_rng(7)
    for T, B, V, H in ((8, 4, 6, 5), (1, 1, 3, 2), (5, 9, 2, 3)):  # B > V: repeated ids in a step
        params = _params(rng, V, H)
        ids_in, ids_target = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
        h0 = np.tanh(rng.standard_normal((B, H)))
        kept = copy.deepcopy(params)
        loss, grads, h_last = ns["lm_loss_and_grads"](params, ids_in, ids_target, h0)
        rnn, W_hy, b_y = _torch_model(params)
        want_loss, want_h = _torch_chunk(rnn, W_hy, b_y, ids_in, ids_target, h0)
        want_loss.backward()
        assert abs(loss - want_loss.item()) < TOL * want_loss.item()
        assert max_rel_error(h_last, want_h.detach()) < TOL
        for name, g in rnn_grads(rnn, W_hy, b_y).items():
            assert max_rel_error(grads[name], g) < TOL, name
        assert all(np.array_equal(params[n], kept[n]) for n in params)


def test_clip_and_adam_reference(ref):
    ns = ref(A)
    rng = np.random.default_rng(8)
    params = _params(rng, 5, 4)
    for max_norm in (0.5, 1e6):
        grads = {n: 3 * rng.standard_normal(p.shape) for n, p in params.items()}
        clipped, norm = ns["clip_global_norm"](grads, max_norm)
        tensors = [t(g) for g in grads.values()]
        for x in tensors:
            x.grad = x.clone()
        assert abs(norm - float(torch.nn.utils.clip_grad_norm_(tensors, max_norm))) < 1e-9 * norm
        for name, x in zip(grads, tensors, strict=True):
            assert max_rel_error(clipped[name], x.grad) < 1e-5
    P = [t(p).requires_grad_() for p in params.values()]
    opt = torch.optim.Adam(P, lr=0.03, betas=(0.8, 0.95), eps=1e-6)
    state = ns["adam_init"](params)
    for _ in range(7):
        grads = {n: rng.standard_normal(p.shape) for n, p in params.items()}
        before, kept = state, copy.deepcopy(state)
        params, state = ns["adam_step"](params, grads, state, 0.03, 0.8, 0.95, 1e-6)
        assert state["t"] == kept["t"] + 1 and before["t"] == kept["t"]
        assert all(np.array_equal(before[key][n], kept[key][n]) for key in "mv" for n in params)
        for p, g in zip(P, grads.values(), strict=True):
            p.grad = t(g)
        opt.step()
        for p, name in zip(P, params, strict=True):
            assert max_rel_error(params[name], p.detach()) < 1e-9


def test_train_reference(ref):
    """train against nn.RNN + detach between chunks + clip_grad_norm_ + torch.optim.Adam."""
    ns = ref(A)
    rng = np.random.default_rng(9)
    V, H, B, k, steps, lr, max_norm = 6, 5, 3, 4, 11, 0.05, 1.0
    text = rng.integers(0, V, 70)  # L = 23, n_chunks = 5: two passes and a bit
    params = _params(rng, V, H)
    got, losses = ns["train"](text, params, steps, B, k, lr, max_norm)
    rnn, W_hy, b_y = _torch_model(params)
    leaves = [*rnn.parameters(), W_hy, b_y]
    with torch.no_grad():
        rnn.bias_hh_l0.requires_grad_(False)
    leaves = [p for p in leaves if p.requires_grad]
    opt = torch.optim.Adam(leaves, lr=lr)
    streams = text[: B * (len(text) // B)].reshape(B, -1)
    n_chunks = (streams.shape[1] - 1) // k
    h = np.zeros((B, H))
    for step in range(steps):
        j = step % n_chunks
        if j == 0:
            h = np.zeros((B, H))
        x, y = streams[:, j * k : j * k + k].T, streams[:, j * k + 1 : j * k + k + 1].T
        loss, h_t = _torch_chunk(rnn, W_hy, b_y, x, y, h)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(leaves, max_norm)
        opt.step()
        h = h_t.detach().numpy()
        assert (
            abs(losses[step] - loss.item()) < 1e-6 * loss.item()
        )  # clip_grad_norm_ adds 1e-6 to the norm
    want = {
        "W_xh": rnn.weight_ih_l0,
        "W_hh": rnn.weight_hh_l0,
        "b_h": rnn.bias_ih_l0,
        "W_hy": W_hy,
        "b_y": b_y,
    }
    for name, w in want.items():
        assert max_rel_error(got[name], w.detach()) < 1e-6, name


def test_perplexity_and_sampling_reference(ref):
    ns = ref(A)
    rng = np.random.default_rng(10)
    params = _params(rng, 7, 4)
    ids = rng.integers(0, 7, 300)
    rnn, W_hy, b_y = _torch_model(params)
    loss, _ = _torch_chunk(rnn, W_hy, b_y, ids[:-1, None], ids[1:, None], np.zeros((1, 4)))
    assert abs(ns["perplexity"](params, ids) - np.exp(loss.item() / 299)) < 1e-10 * np.exp(
        loss.item() / 299
    )
    # sampling: a chi-square test of 50,000 draws against softmax(z / tau), fixed seed
    row = rng.standard_normal(5) * 2
    for tau in (0.7, 1.0, 3.0):
        u = rng.random(50_000)
        draws = ns["sample_next"](np.tile(row, (len(u), 1)), tau, u)
        p = torch.softmax(t(row) / tau, 0).numpy()
        counts = np.bincount(draws, minlength=5)
        chi2 = ((counts - len(u) * p) ** 2 / (len(u) * p)).sum()
        assert chi2 < 18.5, (tau, chi2)  # the 0.1% quantile of chi-square with 4 degrees of freedom
    big = np.array([[1e4, 1e4 + 1, 0.0], [3.0, -2.0, 2.9]])
    assert list(ns["sample_next"](big, 0, np.array([0.3, 0.9]))) == [1, 0]
    assert list(ns["sample_next"](big, 1e-3, np.array([0.999, 0.999]))) == [1, 0]


def test_the_text_ships_with_the_notebook(ref):
    """One text, three copies: the package's, the source's and the release's; no boilerplate."""
    text = (ROOT / "bptt" / "data" / "coriolanus.txt").read_text(encoding="utf-8")
    for folder in (SOLUTIONS, EXERCISES):
        assert (folder / A / "coriolanus.txt").read_text(encoding="utf-8") == text
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")
    assert text.endswith("Yet he shall have a noble memory. Assist.\n")
    assert len(text) > 100_000 and "Gutenberg" not in text and "http" not in text
    ns = ref(A)
    assert ns["decode"](ns["IDS"]) == text and ns["V"] == len(set(text))


def test_the_hidden_check_of_the_budget_run_can_fail():
    """_check_train_losses reads the losses of the visible run: falling, finite, one per step."""
    ns: dict = {"__name__": "__main__"}
    for cell in read(source_path(A)).cells:
        if cell.id in ("given", "checks"):
            exec(compile(cell.source, cell.id, "exec"), ns)
    steps = ns["BUDGET"]["steps"]
    falling = np.linspace(4.0, 2.0, steps)
    for losses, phrase in [
        (np.ones(steps), "do not fall"),
        (falling[::-1], "do not fall"),
        (np.where(np.arange(steps) == 7, np.nan, falling), "NaN or inf"),
        (falling[:-1], "shape"),
    ]:
        ns["_tc_LAST"]["train"] = (None, losses)
        with pytest.raises(AssertionError, match=phrase):
            ns["_check_train_losses"]()
    ns["_tc_LAST"]["train"] = (None, falling)
    ns["_check_train_losses"]()
