# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 07_vanishing: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import numpy as np
import torch
from exercise_harness import TOL, Mutant, max_rel_error, rnn_data, t, torch_rnn

M = Mutant
A = "07_vanishing"
F = torch.nn.functional
SJ = ("test_state_jacobians", "test_state_jacobians_edges")
PN = ("test_jacobian_product_norms", "test_jacobian_product_norms_edges")
SB = ("test_spectral_bound", "test_spectral_bound_edges")
GN = "test_per_step_grad_norms"
GU = "test_per_step_grad_norms_untouched"
J = "return (1 - hs**2)[..., :, None] * W_hh"
NORM = "np.linalg.norm(P, ord=2, axis=(-2, -1))"
SIGMA = "np.linalg.svd(W_hh, compute_uv=False)[0]"
LOSS = "loss = sum(F.cross_entropy(h[0] @ W_hy.T + b_y, y) for h, y in zip(states, targets))"
WHOLE = (
    "def per_step_grad_norms(rnn, xs, h0, W_hy, b_y, targets):\n    m = copy.deepcopy(rnn)\n    seen = []\n"
    "    m.{hook}(lambda module, g_in, g_out: seen.append(g_out[0]))\n"
    "    outputs, _ = m(xs, h0[None])\n"
    "    sum(F.cross_entropy(o @ W_hy.T + b_y, y) for o, y in zip(outputs, targets)).backward()\n"
    "    return np.array([g.norm().item() for g in seen[0]])\n"
)

MUTANTS = [
    M(
        A,
        "jacobians: W_hh alone, no tanh slope",
        "state_jacobians",
        {c: "slope is missing" for c in SJ},
        [(J, "return np.broadcast_to(W_hh, hs.shape + hs.shape[-1:]).copy()")],
    ),
    M(
        A,
        "jacobians: W_hh^T",
        "state_jacobians",
        {c: "W_hh^T" for c in SJ},
        [(J, "return (1 - hs**2)[..., :, None] * W_hh.T")],
    ),
    M(
        A,
        "jacobians: slopes scale the columns (W_hh diag)",
        "state_jacobians",
        {c: "columns" for c in SJ},
        [(J, "return (1 - hs**2)[..., None, :] * W_hh")],
    ),
    M(
        A,
        "jacobians: slope of the previous state (np.roll)",
        "state_jacobians",
        {c: "previous" for c in SJ},
        [(J, "return (1 - np.roll(hs, 1, axis=0) ** 2)[..., :, None] * W_hh")],
    ),
    M(
        A,
        "jacobians: 1 - h without the square",
        "state_jacobians",
        {c: "square" for c in SJ},
        [(J, "return (1 - hs)[..., :, None] * W_hh")],
    ),
    M(
        A,
        "products: wrong order (J_{T-s+1} ... J_T)",
        "jacobian_product_norms",
        {c: "wrong order" for c in PN},
        [("P = P @ jacobians[T - s]", "P = jacobians[T - s] @ P")],
    ),
    M(
        A,
        "products: Frobenius norm",
        "jacobian_product_norms",
        {c: "Frobenius" for c in PN},
        [(NORM, "np.linalg.norm(P, axis=(-2, -1))")],
    ),
    M(
        A,
        "products: the product of the norms",
        "jacobian_product_norms",
        {c: "only the upper bound" for c in PN},
        code="def jacobian_product_norms(jacobians):\n    step = np.linalg.norm(jacobians, ord=2, axis=(-2, -1))\n"
        "    return np.cumprod(step[::-1], axis=0)\n",
    ),
    M(
        A,
        "products: rows in reverse order",
        "jacobian_product_norms",
        {c: "reverse order" for c in PN},
        [("    return norms", "    return norms[::-1]")],
    ),
    M(
        A,
        "products: the first s Jacobians",
        "jacobian_product_norms",
        {c: "first" for c in PN},
        [("P = P @ jacobians[T - s]", "P = P @ jacobians[s - 1]")],
    ),
    M(
        A,
        "products: single Jacobians, no running product",
        "jacobian_product_norms",
        {c: "single Jacobians" for c in PN},
        [("P = P @ jacobians[T - s]", "P = jacobians[T - s]")],
    ),
    M(
        A,
        "products: np.linalg.norm(P, 2) on a stack",
        "jacobian_product_norms",
        {c: "axis=(-2, -1)" for c in PN},
        [(NORM, "np.linalg.norm(P, 2)")],
    ),
    M(
        A,
        "products: the largest over the batch",
        "jacobian_product_norms",
        {c: "per sequence" for c in PN},
        [("    return norms", "    return norms.max(axis=1)")],
    ),
    M(
        A,
        "bound: Frobenius norm",
        "spectral_bound",
        {c: "Frobenius" for c in SB},
        [(SIGMA, "np.linalg.norm(W_hh)")],
    ),
    M(
        A,
        "bound: spectral radius",
        "spectral_bound",
        {c: "spectral radius" for c in SB},
        [(SIGMA, "np.abs(np.linalg.eigvals(W_hh)).max()")],
    ),
    M(
        A,
        "bound: smallest singular value",
        "spectral_bound",
        {c: "smallest" for c in SB},
        [(SIGMA, "np.linalg.svd(W_hh, compute_uv=False)[-1]")],
    ),
    M(
        A,
        "bound: linear in the lag",
        "spectral_bound",
        {c: "linearly" for c in SB},
        [("sigma_max ** np.asarray", "sigma_max * np.asarray")],
    ),
    M(
        A,
        "norms: nn.RNN's output tensor (the direct shares)",
        "per_step_grad_norms",
        {GN: "direct shares"},
        code="def per_step_grad_norms(rnn, xs, h0, W_hy, b_y, targets):\n    outputs, _ = rnn(xs, h0[None])\n"
        "    loss = sum(F.cross_entropy(o @ W_hy.T + b_y, y) for o, y in zip(outputs, targets))\n"
        "    (g,) = torch.autograd.grad(loss, outputs)\n    return g.norm(dim=(1, 2)).numpy()\n",
    ),
    M(
        A,
        "norms: register_full_backward_hook on the module",
        "per_step_grad_norms",
        {GN: "direct shares"},
        code="import copy\n\n" + WHOLE.format(hook="register_full_backward_hook"),
    ),
    M(
        A,
        "norms: the deprecated register_backward_hook",
        "per_step_grad_norms",
        {GN: "direct shares"},
        code="import copy\n\n" + WHOLE.format(hook="register_backward_hook"),
    ),
    M(
        A,
        "norms: .grad of the states without retain_grad",
        "per_step_grad_norms",
        {GN: "retain_grad", GU: "retain_grad"},
        code="import copy\n\ndef per_step_grad_norms(rnn, xs, h0, W_hy, b_y, targets):\n    m = copy.deepcopy(rnn)\n"
        "    h, states = h0[None], []\n    for t in range(len(xs)):\n        h = m(xs[t : t + 1], h)[0]\n        states.append(h)\n"
        "    sum(F.cross_entropy(h[0] @ W_hy.T + b_y, y) for h, y in zip(states, targets)).backward()\n"
        "    return np.array([h.grad.norm().item() for h in states])\n",
    ),
    M(
        A,
        "norms: retain_grad and backward() on the caller's RNN",
        "per_step_grad_norms",
        {GU: "copy.deepcopy"},
        code="def per_step_grad_norms(rnn, xs, h0, W_hy, b_y, targets):\n"
        "    h, states = h0[None], []\n    for t in range(len(xs)):\n        h = rnn(xs[t : t + 1], h)[0]\n"
        "        h.retain_grad()\n        states.append(h)\n"
        "    sum(F.cross_entropy(h[0] @ W_hy.T + b_y, y) for h, y in zip(states, targets)).backward()\n"
        "    return np.array([h.grad.norm().item() for h in states])\n",
    ),
    M(
        A,
        "norms: the gradient of W_hh for each step's loss",
        "per_step_grad_norms",
        {GN: "gradients of a parameter"},
        code="def per_step_grad_norms(rnn, xs, h0, W_hy, b_y, targets):\n    outputs, _ = rnn(xs, h0[None])\n    norms = []\n"
        "    for o, y in zip(outputs, targets):\n"
        "        (g,) = torch.autograd.grad(F.cross_entropy(o @ W_hy.T + b_y, y), rnn.weight_hh_l0, retain_graph=True)\n"
        "        norms.append(g.norm().item())\n    return np.array(norms)\n",
    ),
    M(
        A,
        "norms: the gradients of the inputs x_t",
        "per_step_grad_norms",
        {GN: "inputs x_t"},
        code="def per_step_grad_norms(rnn, xs, h0, W_hy, b_y, targets):\n    x = xs.detach().clone().requires_grad_(True)\n"
        "    outputs, _ = rnn(x, h0[None])\n"
        "    loss = sum(F.cross_entropy(o @ W_hy.T + b_y, y) for o, y in zip(outputs, targets))\n"
        "    (g,) = torch.autograd.grad(loss, x)\n    return g.norm(dim=(1, 2)).numpy()\n",
    ),
    M(
        A,
        "norms: the last step's loss only",
        "per_step_grad_norms",
        {GN: "last step's loss"},
        [(LOSS, "loss = F.cross_entropy(states[-1][0] @ W_hy.T + b_y, targets[-1])")],
    ),
    M(
        A,
        "norms: loss summed over the batch",
        "per_step_grad_norms",
        {GN: "summed over the batch"},
        [
            (
                "F.cross_entropy(h[0] @ W_hy.T + b_y, y)",
                "F.cross_entropy(h[0] @ W_hy.T + b_y, y, reduction='sum')",
            )
        ],
    ),
    M(
        A,
        "norms: loss averaged over time",
        "per_step_grad_norms",
        {GN: "averaged over time"},
        [
            (
                "grads = torch.autograd.grad(loss, states)",
                "grads = torch.autograd.grad(loss / len(xs), states)",
            )
        ],
    ),
    M(
        A,
        "norms: one norm per sequence",
        "per_step_grad_norms",
        {GN: "per step and per sequence"},
        [
            (
                "return np.array([g.norm().item() for g in grads])",
                "return np.array([g[0].norm(dim=1).numpy() for g in grads])",
            )
        ],
    ),
    M(
        A,
        "norms: h0 without its layer axis",
        "per_step_grad_norms",
        {GN: "leading axis for the layer", GU: "leading axis for the layer"},
        [("h, states = h0[None], []", "h, states = h0, []")],
    ),
]

VARIANTS = [
    M(
        A,
        "jacobians with einsum",
        "state_jacobians",
        {},
        code="def state_jacobians(hs, W_hh):\n    return np.einsum('tbi,ij->tbij', 1.0 - hs * hs, W_hh)\n",
    ),
    M(
        A,
        "products explicit, one sequence at a time, with an SVD",
        "jacobian_product_norms",
        {},
        code="def jacobian_product_norms(jacobians):\n    T, B = jacobians.shape[:2]\n    out = np.zeros((T, B))\n"
        "    for b in range(B):\n        for s in range(1, T + 1):\n"
        "            P = np.eye(jacobians.shape[2])\n            for k in range(T - 1, T - s - 1, -1):\n                P = P @ jacobians[k, b]\n"
        "            out[s - 1, b] = np.linalg.svd(P, compute_uv=False).max()\n    return out\n",
    ),
    M(
        A,
        "bound with np.linalg.norm(W, 2), as a list",
        "spectral_bound",
        {},
        code="def spectral_bound(W_hh, lags):\n    sigma = np.linalg.norm(W_hh, 2)\n    return np.array([sigma**int(s) for s in lags])\n",
    ),
    M(
        A,
        "norms by retain_grad and backward() on a copy of the RNN",
        "per_step_grad_norms",
        {},
        code="import copy\n\ndef per_step_grad_norms(rnn, xs, h0, W_hy, b_y, targets):\n    m = copy.deepcopy(rnn)\n"
        "    h, states = h0.unsqueeze(0), []\n    for x in xs:\n        h = m(x[None], h)[1]  # h_n of one step\n"
        "        h.retain_grad()\n        states.append(h)\n"
        "    logits = torch.cat(states) @ W_hy.T + b_y\n"
        "    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction='sum') / xs.shape[1]\n"
        "    loss.backward()\n    return torch.stack([h.grad.norm() for h in states]).numpy()\n",
    ),
    M(
        A,
        "norms by tensor hooks, with the RNN's weights in a loop of my own",
        "per_step_grad_norms",
        {},
        code="def per_step_grad_norms(rnn, xs, h0, W_hy, b_y, targets):\n"
        "    W_ih, W_hh = rnn.weight_ih_l0.detach(), rnn.weight_hh_l0.detach()\n"
        "    b = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach()\n    norms = [0.0] * len(xs)\n"
        "    h = h0.detach().clone().requires_grad_(True)\n    loss = 0\n"
        "    for t in range(len(xs)):\n        h = torch.tanh(xs[t] @ W_ih.T + h @ W_hh.T + b)\n"
        "        h.register_hook(lambda g, t=t: norms.__setitem__(t, g.norm().item()))\n"
        "        loss = loss + F.cross_entropy(h @ W_hy.T + b_y, targets[t])\n"
        "    loss.backward()\n    return np.array(norms)\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def test_vanishing_reference(ref):
    """Against torch.autograd through a forward loop: the Jacobians of every state with respect to
    the previous one, and of h_T with respect to h_{T-s}; and nn.RNN run step by step with
    retain_grad for the per-step gradients."""
    ns = ref(A)
    rng = np.random.default_rng(7)
    T, B, D, H, V = 6, 3, 5, 4, 5
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T, B, D, H)
    W_hh = 1.5 * W_hh
    h0 = np.tanh(h0)
    states = [t(h0).requires_grad_()]
    for x in t(xs):
        states.append(torch.tanh(x @ t(W_xh).T + states[-1] @ t(W_hh).T + t(b_h)))
    hs = torch.stack(states[1:]).detach().numpy()
    kept = hs.copy(), W_hh.copy()
    jac = ns["state_jacobians"](hs, W_hh)
    long_range = np.empty((T, B, H, H))  # dh_T/dh_{T-s}, row i from unit i of h_T
    for i in range(H):
        rows = torch.autograd.grad(states[-1][:, i].sum(), states, retain_graph=True)
        for s in range(1, T + 1):
            long_range[s - 1, :, i, :] = rows[T - s].numpy()
        for step in range(T):  # row i of every one-step Jacobian
            (one,) = torch.autograd.grad(
                states[step + 1][:, i].sum(), states[step], retain_graph=True
            )
            assert max_rel_error(jac[step, :, i, :], one) < TOL
    norms = ns["jacobian_product_norms"](jac)
    want = np.linalg.svd(long_range, compute_uv=False)[..., 0]
    assert norms.shape == (T, B) and max_rel_error(norms, want) < TOL
    bound = ns["spectral_bound"](W_hh, np.arange(1, T + 1))
    assert (
        max_rel_error(bound, torch.linalg.matrix_norm(t(W_hh), ord=2).item() ** np.arange(1, T + 1))
        < TOL
    )
    assert np.all(norms <= bound[:, None] * (1 + 1e-12))  # the bound holds
    assert all(np.array_equal(a, b) for a, b in zip(kept, (hs, W_hh), strict=True))
    # the total gradient of each state, by nn.RNN run one step at a time with retain_grad
    rnn = torch_rnn(W_xh, W_hh, b_h)
    W_hy, b_y = t(rng.standard_normal((V, H))), t(rng.standard_normal(V))
    targets = torch.tensor(rng.integers(0, V, (T, B)))
    h, retained = t(h0)[None], []
    for step in range(T):
        h = rnn(t(xs[step : step + 1]), h)[0]
        h.retain_grad()
        retained.append(h)
    logits = torch.cat(retained) @ W_hy.T + b_y
    (F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="sum") / B).backward()
    want = np.array([h.grad.norm().item() for h in retained])
    fresh = torch_rnn(W_xh, W_hh, b_h)
    got = ns["per_step_grad_norms"](fresh, t(xs), t(h0), W_hy, b_y, targets)
    assert isinstance(got, np.ndarray) and got.shape == (T,) and max_rel_error(got, want) < TOL
    assert all(p.grad is None for p in fresh.parameters())
