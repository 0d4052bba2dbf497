# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Typical student mistakes (each must lose points, with a message that names it) and valid
variations (each must keep full marks), as edits of the reference solutions in ``solutions/``."""

from __future__ import annotations

from exercise_harness import Mutant

M = Mutant

# ---------------------------------------------------------------- 01_forward
STEP = "return np.tanh(x @ W_xh.T + h_prev @ W_hh.T + b_h)"
FWD_LOOP = "h = rnn_step_forward(xs[t], h, W_xh, W_hh, b_h)\n        hs[t] = h"
SOFTMAX = "e = np.exp(z - np.max(z, axis=-1, keepdims=True))\n    return e / e.sum(axis=-1, keepdims=True)"

MUTANTS_01 = [
    M(
        "01_forward",
        "step: x @ W_xh without transpose",
        "rnn_step_forward",
        {"test_rnn_step_forward": "W.T", "test_rnn_forward": "W.T"},
        [(STEP, "return np.tanh(x @ W_xh + h_prev @ W_hh.T + b_h)")],
    ),
    M(
        "01_forward",
        "step: h_prev @ W_hh without transpose",
        "rnn_step_forward",
        {"test_rnn_step_forward": "symmetric", "test_rnn_forward": "symmetric"},
        [(STEP, "return np.tanh(x @ W_xh.T + h_prev @ W_hh + b_h)")],
    ),
    M(
        "01_forward",
        "step: tanh forgotten",
        "rnn_step_forward",
        {"test_rnn_step_forward": "tanh is missing", "test_rnn_forward": "tanh is missing"},
        [(STEP, "return x @ W_xh.T + h_prev @ W_hh.T + b_h")],
    ),
    M(
        "01_forward",
        "forward: h0 included in hs",
        "rnn_forward",
        {"test_rnn_forward": "includes h0"},
        [
            ("hs = np.empty((xs.shape[0], ", "hs = np.empty((xs.shape[0] + 1, "),
            ("    h = h0\n", "    h = h0\n    hs[0] = h0\n"),
            ("hs[t] = h", "hs[t + 1] = h"),
        ],
    ),
    M(
        "01_forward",
        "forward: hs[t] stored before the update",
        "rnn_forward",
        {"test_rnn_forward": "before"},
        [(FWD_LOOP, "hs[t] = h\n        h = rnn_step_forward(xs[t], h, W_xh, W_hh, b_h)")],
    ),
    M(
        "01_forward",
        "forward: one array updated in place and appended T times",
        "rnn_forward",
        {"test_rnn_forward": "same array"},
        code="def rnn_forward(xs, h0, W_xh, W_hh, b_h):\n"
        "    hs = []\n    h = h0.copy()\n    for t in range(len(xs)):\n"
        "        h[:] = rnn_step_forward(xs[t], h, W_xh, W_hh, b_h)\n        hs.append(h)\n"
        "    return np.array(hs)\n",
    ),
    M(
        "01_forward",
        "forward: state not carried over",
        "rnn_forward",
        {"test_rnn_forward": "starts again from h0"},
        [("h = rnn_step_forward(xs[t], h, ", "h = rnn_step_forward(xs[t], h0, ")],
    ),
    M(
        "01_forward",
        "forward: h0 ignored",
        "rnn_forward",
        {"test_rnn_forward": "h0 is ignored"},
        [("    h = h0\n", "    h = np.zeros_like(h0)\n")],
    ),
    M(
        "01_forward",
        "softmax: no max subtraction",
        "softmax",
        {"test_softmax_stable": "overflow"},
        [("np.exp(z - np.max(z, axis=-1, keepdims=True))", "np.exp(z)")],
    ),
    M(
        "01_forward",
        "softmax: maximum of the whole array",
        "softmax",
        {"test_softmax_stable": "own maximum"},
        [("np.max(z, axis=-1, keepdims=True)", "np.max(z)")],
    ),
    M(
        "01_forward",
        "softmax: over axis 0",
        "softmax",
        {"test_softmax": "axis 0", "test_softmax_stable": "axis 0", "test_softmax_shapes": "axis"},
        [(SOFTMAX, SOFTMAX.replace("axis=-1", "axis=0"))],
    ),
    M(
        "01_forward",
        "softmax: over axis 1",
        "softmax",
        {"test_softmax_shapes": "axis=-1"},
        [(SOFTMAX, SOFTMAX.replace("axis=-1", "axis=1"))],
    ),
    M(
        "01_forward",
        "softmax: sum without keepdims",
        "softmax",
        {
            "test_softmax": "keepdims",
            "test_softmax_stable": "keepdims",
            "test_softmax_shapes": "keepdims",
        },
        [("e / e.sum(axis=-1, keepdims=True)", "e / e.sum(axis=-1)")],
    ),
    M(
        "01_forward",
        "softmax: z changed in place",
        "softmax",
        {"test_softmax": "in place"},
        [
            (
                SOFTMAX,
                "z -= np.max(z, axis=-1, keepdims=True)\n    e = np.exp(z)\n"
                "    return e / e.sum(axis=-1, keepdims=True)",
            )
        ],
    ),
    M(
        "01_forward",
        "loss: averaged over time too",
        "sequence_loss",
        {"test_sequence_loss": "averaged over time"},
        [("/ hs.shape[1]", "/ (hs.shape[0] * hs.shape[1])")],
    ),
    M(
        "01_forward",
        "loss: summed over the batch",
        "sequence_loss",
        {"test_sequence_loss": "summed over the batch"},
        [("float(-picked.sum() / hs.shape[1])", "float(-picked.sum())")],
    ),
    M(
        "01_forward",
        "loss: bias forgotten",
        "sequence_loss",
        {"test_sequence_loss": "b_y is missing"},
        [("z = hs @ W_hy.T + b_y", "z = hs @ W_hy.T")],
    ),
    M(
        "01_forward",
        "loss: one number per time step",
        "sequence_loss",
        {"test_sequence_loss": "single number"},
        [
            (
                "return float(-picked.sum() / hs.shape[1])",
                "return -picked.sum(axis=(1, 2)) / hs.shape[1]",
            )
        ],
    ),
]

VARIANTS_01 = [
    M(
        "01_forward",
        "step with np.dot and einsum",
        "rnn_step_forward",
        {},
        [(STEP, "return np.tanh(np.dot(x, W_xh.T) + np.einsum('bj,ij->bi', h_prev, W_hh) + b_h)")],
    ),
    M(
        "01_forward",
        "forward with a list, np.stack and a precomputed input term",
        "rnn_forward",
        {},
        code="def rnn_forward(xs, h0, W_xh, W_hh, b_h):\n"
        "    a = xs @ W_xh.T + b_h  # all input terms at once\n"
        "    states = []\n    h = h0\n    for a_t in a:\n"
        "        h = np.tanh(a_t + h @ W_hh.T)\n        states.append(h)\n"
        "    return np.stack(states)\n",
    ),
    M(
        "01_forward",
        "softmax through log-sum-exp",
        "softmax",
        {},
        code="def softmax(z):\n    m = z.max(axis=-1, keepdims=True)\n"
        "    return np.exp(z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))\n",
    ),
    M(
        "01_forward",
        "loss with loops and log(softmax), returning a numpy scalar",
        "sequence_loss",
        {},
        code="def sequence_loss(hs, W_hy, b_y, targets):\n    T, B, _ = hs.shape\n    total = 0.0\n"
        "    for t in range(T):\n        p = softmax(hs[t] @ W_hy.T + b_y)\n"
        "        for b in range(B):\n            total -= np.log(p[b, targets[t, b]])\n"
        "    return total / B\n",
    ),
]

MUTANTS = MUTANTS_01
VARIANTS = VARIANTS_01

# ---------------------------------------------------------------- 02_bptt
STEP_BW = (
    "da = dh * (1 - h**2)\n    return da @ W_xh, da @ W_hh, da.T @ x, da.T @ h_prev, da.sum(axis=0)"
)
BW_STEP = "dhs[t] + dh_next, xs[t], h_prev, hs[t], W_xh, W_hh)"
NUM = "grad[i] = (f_plus - f_minus) / (2 * eps)"

MUTANTS_02 = [
    M(
        "02_bptt",
        "step: tanh derivative forgotten",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "tanh derivative is missing",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da = dh * (1 - h**2)", "da = dh")],
    ),
    M(
        "02_bptt",
        "step: derivative with h_prev",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "1 - h**2",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da = dh * (1 - h**2)", "da = dh * (1 - h_prev**2)")],
    ),
    M(
        "02_bptt",
        "step: dW_hh transposed",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "transpose of dW_hh",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da.T @ h_prev", "h_prev.T @ da")],
    ),
    M(
        "02_bptt",
        "step: dW_xh transposed",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "looks transposed",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da.T @ x,", "x.T @ da,")],
    ),
    M(
        "02_bptt",
        "step: dh_prev through W_hh.T",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "without a transpose",
            "test_rnn_backward_one_step": "fix it first",
            "test_rnn_backward": "fix it first",
        },
        [("da @ W_hh,", "da @ W_hh.T,")],
    ),
    M(
        "02_bptt",
        "step: db_h not summed over the batch",
        "rnn_step_backward",
        {
            "test_rnn_step_backward": "sum da over the batch",
            "test_rnn_backward_one_step": "",
            "test_rnn_backward": "",
        },
        [("da.sum(axis=0)", "da")],
    ),
    M(
        "02_bptt",
        "bptt: dh_next not added",
        "rnn_backward",
        {"test_rnn_backward": "gradient from later steps is missing"},
        [(BW_STEP, "dhs[t], xs[t], h_prev, hs[t], W_xh, W_hh)")],
    ),
    M(
        "02_bptt",
        "bptt: weight gradients not accumulated",
        "rnn_backward",
        {"test_rnn_backward": "summed over time"},
        [
            (
                "dW_xh += dWx\n        dW_hh += dWh\n        db_h += db",
                "dW_xh = dWx\n        dW_hh = dWh\n        db_h = db",
            )
        ],
    ),
    M(
        "02_bptt",
        "bptt: hs[t - 1] at t = 0 (wraps to the last state)",
        "rnn_backward",
        {"test_rnn_backward_one_step": "h0", "test_rnn_backward": "hs[-1]"},
        [("h_prev = hs[t - 1] if t > 0 else h0", "h_prev = hs[t - 1]")],
    ),
    M(
        "02_bptt",
        "bptt: h_prev = hs[t]",
        "rnn_backward",
        {"test_rnn_backward_one_step": "h0", "test_rnn_backward": "not hs[t]"},
        [("h_prev = hs[t - 1] if t > 0 else h0", "h_prev = hs[t]")],
    ),
    M(
        "02_bptt",
        "bptt: forwards in time",
        "rnn_backward",
        {"test_rnn_backward": "backwards in time"},
        [("for t in reversed(range(len(xs))):", "for t in range(len(xs)):")],
    ),
    M(
        "02_bptt",
        "output: not divided by B",
        "output_backward",
        {"test_output_backward": "B times too large"},
        [("dz = (softmax(z) - np.eye(V)[targets]) / B", "dz = softmax(z) - np.eye(V)[targets]")],
    ),
    M(
        "02_bptt",
        "output: one-hot not subtracted",
        "output_backward",
        {"test_output_backward": "subtract 1 at the target"},
        [("dz = (softmax(z) - np.eye(V)[targets]) / B", "dz = softmax(z) / B")],
    ),
    M(
        "02_bptt",
        "output: dW_hy transposed",
        "output_backward",
        {"test_output_backward": "looks transposed"},
        [('np.einsum("tbv,tbh->vh", dz, hs)', 'np.einsum("tbv,tbh->hv", dz, hs)')],
    ),
    M(
        "02_bptt",
        "output: loss averaged over time",
        "output_backward",
        {"test_output_backward_loss": "averaged over time"},
        [
            (
                "loss = sequence_loss(hs, W_hy, b_y, targets)",
                "loss = sequence_loss(hs, W_hy, b_y, targets) / len(hs)",
            )
        ],
    ),
    M(
        "02_bptt",
        "numerical: one-sided difference",
        "numerical_gradient",
        {
            "test_numerical_gradient": "central difference",
            "test_numerical_gradient_eps": "central difference",
        },
        [
            ("x[i] = old - eps\n        f_minus = f(x)", "x[i] = old\n        f_minus = f(x)"),
            (NUM, "grad[i] = (f_plus - f_minus) / eps"),
        ],
    ),
    M(
        "02_bptt",
        "numerical: divided by eps",
        "numerical_gradient",
        {"test_numerical_gradient": "twice", "test_numerical_gradient_eps": "twice"},
        [(NUM, "grad[i] = (f_plus - f_minus) / eps")],
    ),
    M(
        "02_bptt",
        "numerical: x not restored",
        "numerical_gradient",
        {
            "test_numerical_gradient": "left x changed",
            "test_numerical_gradient_eps": "left x changed",
        },
        [("        x[i] = old\n", "")],
    ),
    M(
        "02_bptt",
        "numerical: eps ignored",
        "numerical_gradient",
        {"test_numerical_gradient_eps": "eps argument is ignored"},
        [("(2 * eps)", "(2 * 1e-6)"), ("old + eps", "old + 1e-6"), ("old - eps", "old - 1e-6")],
    ),
    M(
        "02_bptt",
        "numerical: only works for vectors",
        "numerical_gradient",
        {"test_numerical_gradient": "np.ndindex", "test_numerical_gradient_eps": "np.ndindex"},
        [("for i in np.ndindex(x.shape):", "for i in range(len(x)):")],
    ),
]

VARIANTS_02 = [
    M(
        "02_bptt",
        "step written out with einsum and an explicit tanh'",
        "rnn_step_backward",
        {},
        code="def rnn_step_backward(dh, x, h_prev, h, W_xh, W_hh):\n"
        "    da = dh * (1.0 - np.tanh(np.arctanh(h)) ** 2)\n"
        "    dW_xh = np.einsum('bh,bd->hd', da, x)\n    dW_hh = np.einsum('bh,bk->hk', da, h_prev)\n"
        "    return np.dot(da, W_xh), np.dot(da, W_hh), dW_xh, dW_hh, np.sum(da, axis=0)\n",
    ),
    M(
        "02_bptt",
        "bptt inlined, returning a list",
        "rnn_backward",
        {},
        code="def rnn_backward(dhs, xs, h0, hs, W_xh, W_hh):\n"
        "    T = xs.shape[0]\n    prev = np.concatenate([h0[None], hs[:-1]])\n"
        "    dxs = np.empty_like(xs)\n    das = np.empty_like(hs)\n    dh = np.zeros_like(h0)\n"
        "    for t in range(T - 1, -1, -1):\n"
        "        das[t] = (dhs[t] + dh) * (1 - hs[t] ** 2)\n        dxs[t] = das[t] @ W_xh\n"
        "        dh = das[t] @ W_hh\n"
        "    return [dxs, dh, np.einsum('tbh,tbd->hd', das, xs), np.einsum('tbh,tbk->hk', das, prev),\n"
        "            das.sum(axis=(0, 1))]\n",
    ),
    M(
        "02_bptt",
        "output backward with loops and its own log-softmax",
        "output_backward",
        {},
        code="def output_backward(hs, W_hy, b_y, targets):\n"
        "    T, B, H = hs.shape\n    dhs = np.zeros_like(hs)\n"
        "    dW_hy = np.zeros_like(W_hy)\n    db_y = np.zeros_like(b_y)\n    loss = 0.0\n"
        "    for t in range(T):\n        z = hs[t] @ W_hy.T + b_y\n"
        "        z = z - z.max(axis=1, keepdims=True)\n"
        "        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)\n"
        "        for b in range(B):\n            loss -= np.log(p[b, targets[t, b]]) / B\n"
        "            p[b, targets[t, b]] -= 1\n"
        "        dz = p / B\n        dhs[t] = dz @ W_hy\n        dW_hy += dz.T @ hs[t]\n"
        "        db_y += dz.sum(axis=0)\n"
        "    return loss, dhs, dW_hy, db_y\n",
    ),
    M(
        "02_bptt",
        "numerical gradient on copies, through x.flat",
        "numerical_gradient",
        {},
        code="def numerical_gradient(f, x, eps=1e-6):\n    grad = np.zeros_like(x, dtype=float)\n"
        "    for i in range(x.size):\n        xp = x.copy()\n        xm = x.copy()\n"
        "        xp.flat[i] += eps\n        xm.flat[i] -= eps\n"
        "        grad.flat[i] = (f(xp) - f(xm)) / (2 * eps)\n    return grad\n",
    ),
    M(
        "02_bptt",
        "numerical gradient with in-place += and -= (round-off in x)",
        "numerical_gradient",
        {},
        code="def numerical_gradient(f, x, eps=1e-6):\n    g = np.zeros(x.shape)\n"
        "    it = np.nditer(x, flags=['multi_index'], op_flags=['readwrite'])\n"
        "    for v in it:\n        i = it.multi_index\n        x[i] += eps\n        fp = f(x)\n"
        "        x[i] -= 2 * eps\n        fm = f(x)\n        x[i] += eps\n"
        "        g[i] = (fp - fm) / (2 * eps)\n    return g\n",
    ),
]

MUTANTS += MUTANTS_02
VARIANTS += VARIANTS_02

# ---------------------------------------------------------------- 03_clipping
GN = "return float(np.sqrt(sum(np.sum(g * g) for g in grads)))"
CLIP = "    if coef < 1:\n        for g in grads:\n            g *= coef\n"

MUTANTS_03 = [
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
        "value: one side only",
        "clip_grad_value",
        {"test_clip_grad_value": "only the upper side"},
        [("np.clip(g, -clip_value, clip_value, out=g)", "np.minimum(g, clip_value, out=g)")],
    ),
]

VARIANTS_03 = [
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

MUTANTS += MUTANTS_03
VARIANTS += VARIANTS_03

# ---------------------------------------------------------------- 04_truncated
CHUNKS = "return [(start, min(start + k, T)) for start in range(0, T, k)]"
TB_BW = "rnn_backward(dhs, xs[s:e], h_in, hs[s:e], W_xh, W_hh)"
TB_ALL = ("test_truncated_loss_state", "test_truncated_full", "test_truncated_grads")

MUTANTS_04 = [
    M(
        "04_truncated",
        "chunks: last partial chunk dropped",
        "tbptt_chunks",
        {
            "test_tbptt_chunks": "last, shorter chunk is missing",
            "test_truncated_loss_state": "skipped",
            "test_truncated_grads": "skipped",
        },
        [(CHUNKS, "return [(start, start + k) for start in range(0, T - k + 1, k)] or [(0, T)]")],
    ),
    M(
        "04_truncated",
        "chunks: the source notes' range(0, T - 1, k)",
        "tbptt_chunks",
        {
            "test_tbptt_chunks": "",
            "test_truncated_loss_state": "",
            "test_truncated_full": "",
            "test_truncated_grads": "",
        },
        [(CHUNKS, "return [(start, min(start + k, T - 1)) for start in range(0, T - 1, k)]")],
    ),
    M(
        "04_truncated",
        "chunks: stop not clipped to T",
        "tbptt_chunks",
        {"test_tbptt_chunks": "runs past T"},
        [(CHUNKS, "return [(start, start + k) for start in range(0, T, k)]")],
    ),
    M(
        "04_truncated",
        "chunks: k < 1 not checked",
        "tbptt_chunks",
        {"test_tbptt_chunks_invalid": "must raise ValueError"},
        [
            (
                '    if k < 1:\n        raise ValueError(f"the chunk length k must be >= 1, got {k}")\n',
                "",
            )
        ],
    ),
    M(
        "04_truncated",
        "chunks: assert instead of ValueError",
        "tbptt_chunks",
        {"test_tbptt_chunks_invalid": "must raise ValueError"},
        [
            (
                '    if k < 1:\n        raise ValueError(f"the chunk length k must be >= 1, got {k}")\n',
                "    assert k >= 1, 'k must be positive'\n",
            )
        ],
    ),
    M(
        "04_truncated",
        "tbptt: state not carried (each chunk from h0)",
        "truncated_bptt_grads",
        {"test_truncated_loss_state": "carried over", "test_truncated_grads": "carried over"},
        code="def truncated_bptt_grads(params, xs, h0, targets, k):\n"
        "    grads = {n: np.zeros_like(p) for n, p in params.items()}\n    loss = 0.0\n"
        "    for s, e in tbptt_chunks(len(xs), k):\n"
        "        hs = rnn_forward(xs[s:e], h0, params['W_xh'], params['W_hh'], params['b_h'])\n"
        "        l, dhs, dW_hy, db_y = output_backward(hs, params['W_hy'], params['b_y'], targets[s:e])\n"
        "        _, _, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs[s:e], h0, hs, params['W_xh'], params['W_hh'])\n"
        "        loss += l\n"
        "        for n, g in zip(('W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y'), (dW_xh, dW_hh, db_h, dW_hy, db_y)):\n"
        "            grads[n] += g\n"
        "    return loss, grads, hs[-1]\n",
    ),
    M(
        "04_truncated",
        "tbptt: gradient flows across chunks (full BPTT)",
        "truncated_bptt_grads",
        {"test_truncated_grads": "full BPTT"},
        code="def truncated_bptt_grads(params, xs, h0, targets, k):\n"
        "    hs = rnn_forward(xs, h0, params['W_xh'], params['W_hh'], params['b_h'])\n"
        "    loss, dhs, dW_hy, db_y = output_backward(hs, params['W_hy'], params['b_y'], targets)\n"
        "    _, _, dW_xh, dW_hh, db_h = rnn_backward(dhs, xs, h0, hs, params['W_xh'], params['W_hh'])\n"
        "    return loss, dict(W_xh=dW_xh, W_hh=dW_hh, b_h=db_h, W_hy=dW_hy, b_y=db_y), hs[-1]\n",
    ),
    M(
        "04_truncated",
        "tbptt: grads of the last chunk only",
        "truncated_bptt_grads",
        {"test_truncated_grads": "only the last chunk"},
        [("            grads[n] += g", "            grads[n] = g")],
    ),
    M(
        "04_truncated",
        "tbptt: loss of the last chunk only",
        "truncated_bptt_grads",
        {"test_truncated_loss_state": "last chunk only"},
        [("loss += chunk_loss", "loss = chunk_loss")],
    ),
    M(
        "04_truncated",
        "tbptt: loss averaged over chunks",
        "truncated_bptt_grads",
        {"test_truncated_loss_state": "averaged over the chunks"},
        [
            (
                "    return loss, grads, hs[-1]",
                "    return loss / len(tbptt_chunks(len(xs), k)), grads, hs[-1]",
            )
        ],
    ),
    M(
        "04_truncated",
        "tbptt: wrong state entering a chunk (hs[s])",
        "truncated_bptt_grads",
        {"test_truncated_full": "", "test_truncated_grads": ""},
        [("h_in = hs[s - 1] if s > 0 else h0", "h_in = hs[s]")],
    ),
    M(
        "04_truncated",
        "tbptt: grads as a tuple",
        "truncated_bptt_grads",
        {"test_truncated_full": "dict", "test_truncated_grads": "dict"},
        [("    return loss, grads, hs[-1]", "    return loss, tuple(grads.values()), hs[-1]")],
    ),
]

VARIANTS_04 = [
    M(
        "04_truncated",
        "chunks with a while loop, returning lists",
        "tbptt_chunks",
        {},
        code="def tbptt_chunks(T, k):\n    if not k >= 1:\n        raise ValueError('k must be >= 1')\n"
        "    out, s = [], 0\n    while s < T:\n        out.append([s, min(T, s + k)])\n        s += k\n"
        "    return out\n",
    ),
    M(
        "04_truncated",
        "tbptt chunk by chunk, forward per chunk from the carried state",
        "truncated_bptt_grads",
        {},
        code="def truncated_bptt_grads(params, xs, h0, targets, k):\n"
        "    W_xh, W_hh, b_h, W_hy, b_y = [params[n] for n in ['W_xh', 'W_hh', 'b_h', 'W_hy', 'b_y']]\n"
        "    grads = {n: 0.0 for n in params}\n    total = 0.0\n    h = h0\n"
        "    for s in range(0, len(xs), k):\n        e = min(s + k, len(xs))\n"
        "        hs = rnn_forward(xs[s:e], h, W_xh, W_hh, b_h)\n"
        "        l, dhs, gW_hy, gb_y = output_backward(hs, W_hy, b_y, targets[s:e])\n"
        "        _, _, gW_xh, gW_hh, gb_h = rnn_backward(dhs, xs[s:e], h, hs, W_xh, W_hh)\n"
        "        total += l\n        h = hs[-1]\n"
        "        for n, g in [('W_xh', gW_xh), ('W_hh', gW_hh), ('b_h', gb_h), ('W_hy', gW_hy), ('b_y', gb_y)]:\n"
        "            grads[n] = grads[n] + g\n"
        "    return total, grads, h\n",
    ),
]

MUTANTS += MUTANTS_04
VARIANTS += VARIANTS_04

# ---------------------------------------------------------------- 05_lstm_gru
LSTM_GATES = (
    "    i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])\n"
    "    g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])\n"
)
LSTM_FW = ("test_lstm_step_forward", "test_lstm_forward")

MUTANTS_05 = [
    M(
        "05_lstm_gru",
        "lstm: gate order i, f, o, g",
        "lstm_step_forward",
        {"test_lstm_step_forward": "i, f, o, g", "test_lstm_forward": ""},
        [
            (
                LSTM_GATES,
                "    i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])\n"
                "    o, g = sigmoid(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])\n",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "lstm: h = o * c",
        "lstm_step_forward",
        {"test_lstm_step_forward": "missing the tanh", "test_lstm_forward": ""},
        [("return o * np.tanh(c), c", "return o * c, c")],
    ),
    M(
        "05_lstm_gru",
        "lstm: g through a sigmoid",
        "lstm_step_forward",
        {"test_lstm_step_forward": "candidate g uses a sigmoid", "test_lstm_forward": ""},
        [("g, o = np.tanh(a[:, 2 * H:3 * H])", "g, o = sigmoid(a[:, 2 * H:3 * H])")],
    ),
    M(
        "05_lstm_gru",
        "lstm: returns (c, h)",
        "lstm_step_forward",
        {"test_lstm_step_forward": "returned (c, h)", "test_lstm_forward": ""},
        [("return o * np.tanh(c), c", "return c, o * np.tanh(c)")],
    ),
    M(
        "05_lstm_gru",
        "lstm forward: cell state not carried",
        "lstm_forward",
        {"test_lstm_forward": "cell state is not carried"},
        [
            (
                "h, c = lstm_step_forward(x, h, c, W_x, W_h, b)",
                "h, c = lstm_step_forward(x, h, c0, W_x, W_h, b)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: dc through h forgotten",
        "lstm_step_backward",
        {"test_lstm_step_backward": "through h = o * tanh(c) is missing"},
        [("dc_total = dc + dh * o * (1 - tc**2)", "dc_total = dc")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: upstream dc ignored",
        "lstm_step_backward",
        {"test_lstm_step_backward": "upstream dc is missing"},
        [("dc_total = dc + dh * o * (1 - tc**2)", "dc_total = dh * o * (1 - tc**2)")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: dc_prev without f",
        "lstm_step_backward",
        {"test_lstm_step_backward": "forget gate scales"},
        [("dc_total * f, da.T @ x", "dc_total, da.T @ x")],
    ),
    M(
        "05_lstm_gru",
        "lstm backward: gate gradients stacked i, f, o, g",
        "lstm_step_backward",
        {"test_lstm_step_backward": "order i, f, o, g"},
        [
            (
                "    da = np.concatenate([dc_total * g * i * (1 - i),        # input gate\n"
                "                         dc_total * c_prev * f * (1 - f),   # forget gate\n"
                "                         dc_total * i * (1 - g**2),         # candidate\n"
                "                         dh * tc * o * (1 - o)], axis=1)    # output gate\n",
                "    da = np.concatenate([dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f),\n"
                "                         dh * tc * o * (1 - o), dc_total * i * (1 - g**2)], axis=1)\n",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "gru: reset before the matmul (Cho et al.)",
        "gru_step_forward",
        {
            "test_gru_step_forward": "before the hidden matmul",
            "test_gru_forward": "before the hidden matmul",
        },
        [
            (
                "n = np.tanh(gi[:, 2 * H:] + r * (gh[:, 2 * H:] + b_hn))",
                "n = np.tanh(gi[:, 2 * H:] + (r * h_prev) @ W_h[2 * H:].T + b_hn)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "gru: update gate the other way round",
        "gru_step_forward",
        {"test_gru_step_forward": "other way round", "test_gru_forward": "other way round"},
        [("return (1 - u) * n + u * h_prev", "return u * n + (1 - u) * h_prev")],
    ),
    M(
        "05_lstm_gru",
        "gru: gate order u, r, n",
        "gru_step_forward",
        {"test_gru_step_forward": "u, r, n", "test_gru_forward": ""},
        [
            (
                "r = sigmoid(gi[:, :H] + gh[:, :H])\n    u = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])",
                "u = sigmoid(gi[:, :H] + gh[:, :H])\n    r = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "gru: b_hn outside the reset",
        "gru_step_forward",
        {"test_gru_step_forward": "b_hn must be inside", "test_gru_forward": ""},
        [
            (
                "n = np.tanh(gi[:, 2 * H:] + r * (gh[:, 2 * H:] + b_hn))",
                "n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:] + b_hn)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "gru forward: h0 included",
        "gru_forward",
        {"test_gru_forward": "leave h0 out"},
        [("    hs, h = [], h0\n", "    hs, h = [h0], h0\n")],
    ),
    M(
        "05_lstm_gru",
        "gru forward: state not carried",
        "gru_forward",
        {"test_gru_forward": "starts again from h0"},
        [("h = gru_step_forward(x, h, ", "h = gru_step_forward(x, h0, ")],
    ),
    M(
        "05_lstm_gru",
        "norms: s.backward() fills the parameters' grads",
        "input_grad_norms",
        {"test_input_grad_norms_untouched": "torch.autograd.grad"},
        [("    (grad,) = torch.autograd.grad(s, x)\n", "    s.backward()\n    grad = x.grad\n")],
    ),
    M(
        "05_lstm_gru",
        "norms: backward() then zero_grad()",
        "input_grad_norms",
        {"test_input_grad_norms_untouched": "changed"},
        [
            (
                "    (grad,) = torch.autograd.grad(s, x)\n",
                "    s.backward()\n    grad = x.grad.clone()\n    model.zero_grad()\n",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "norms: xs.requires_grad_() on the caller's tensor",
        "input_grad_norms",
        {"test_input_grad_norms_untouched": "xs was changed"},
        [("x = xs.detach().clone().requires_grad_(True)", "x = xs.requires_grad_(True)")],
    ),
    M(
        "05_lstm_gru",
        "norms: reversed order (the source notes' [::-1])",
        "input_grad_norms",
        {"test_input_grad_norms": "reverse order"},
        [
            (
                "return grad.flatten(1).norm(dim=1).numpy()",
                "return grad.flatten(1).norm(dim=1).numpy()[::-1]",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "norms: s = output.sum()",
        "input_grad_norms",
        {"test_input_grad_norms": "last step's output only"},
        [("s = model(x)[0][-1].sum()", "s = model(x)[0].sum()")],
    ),
    M(
        "05_lstm_gru",
        "norms: the copy forced to float64 (fails for a float32 model)",
        "input_grad_norms",
        {"test_input_grad_norms": "Keep xs's dtype"},
        [
            (
                "x = xs.detach().clone().requires_grad_(True)",
                "x = torch.tensor(xs.detach().numpy(), dtype=torch.float64, requires_grad=True)",
            )
        ],
    ),
    M(
        "05_lstm_gru",
        "norms: one norm per sequence",
        "input_grad_norms",
        {"test_input_grad_norms": "one norm per step and per sequence"},
        [("grad.flatten(1).norm(dim=1)", "grad.norm(dim=2)")],
    ),
]

VARIANTS_05 = [
    M(
        "05_lstm_gru",
        "lstm step with separate per-gate matrices",
        "lstm_step_forward",
        {},
        code="def lstm_step_forward(x, h_prev, c_prev, W_x, W_h, b):\n    H = h_prev.shape[1]\n"
        "    gate = lambda j: x @ W_x[j*H:(j+1)*H].T + h_prev @ W_h[j*H:(j+1)*H].T + b[j*H:(j+1)*H]\n"
        "    i, f, g, o = 1/(1+np.exp(-gate(0))), 1/(1+np.exp(-gate(1))), np.tanh(gate(2)), 1/(1+np.exp(-gate(3)))\n"
        "    c = f * c_prev + i * g\n    h = o * np.tanh(c)\n    return (h, c)\n",
    ),
    M(
        "05_lstm_gru",
        "input norms via backward on a copy of the model",
        "input_grad_norms",
        {},
        code="import copy\n\ndef input_grad_norms(model, xs):\n    m = copy.deepcopy(model)\n"
        "    x = xs.clone().detach()\n    x.requires_grad = True\n    out = m(x)\n"
        "    out[0][-1].sum().backward()\n"
        "    return np.array([x.grad[t].norm().item() for t in range(x.shape[0])])\n",
    ),
    M(
        "05_lstm_gru",
        "input norms via backward, saving and restoring the grads",
        "input_grad_norms",
        {},
        code="def input_grad_norms(model, xs):\n    saved = [p.grad for p in model.parameters()]\n"
        "    for p in model.parameters():\n        p.grad = None\n"
        "    x = xs.detach().clone().requires_grad_()\n    model(x)[0][-1].sum().backward()\n"
        "    for p, g in zip(model.parameters(), saved):\n        p.grad = g\n"
        "    return torch.linalg.vector_norm(x.grad, dim=(1, 2)).detach().numpy()\n",
    ),
]

MUTANTS += MUTANTS_05
VARIANTS += VARIANTS_05
