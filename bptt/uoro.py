"""Unbiased online recurrent optimisation (UORO, Tallec & Ollivier, 2018) for a tanh RNN.

UORO replaces RTRL's sensitivity ``P_t = dh_t/dtheta`` (H x n per sequence,
see ``bptt.rtrl``) by a random rank-one matrix ``h~_t theta~_t^T`` whose
expectation is ``P_t``. With fresh random signs ``nu`` (each entry +-1) at
every step, and the one-step Jacobian ``J_t = diag(1 - h_t**2) W_hh`` and immediate
derivative ``F_t = diag(1 - h_t**2) d+a_t/dtheta``,

    h~_t     = rho0 J_t h~_{t-1} + rho1 nu
    theta~_t = theta~_{t-1} / rho0 + nu^T F_t / rho1

so ``h~_t theta~_t^T = J_t h~ theta~^T + nu nu^T F_t + (terms with one nu)``,
whose expectation over ``nu`` is ``J_t P_{t-1} + F_t = P_t``: by induction the
estimate is unbiased. ``rho0, rho1 > 0`` do not change the mean; they are chosen
to balance the norms of the two factors, which reduces the variance. The
estimate of ``dL_t/dtheta`` is ``(dL_t/dh_t . h~_t) theta~_t``. Cost per step:
O(n), like one step of BPTT; memory O(n), whatever T.
"""

from __future__ import annotations

import numpy as np

from bptt.backward import output_backward
from bptt.checks import check_array, check_positive_int
from bptt.rnn import rnn_step_forward
from bptt.rtrl import check_sequence_inputs, n_recurrent, split_recurrent

EPS = 1e-7  # keeps the rho's finite while h~ and theta~ are still zero


def _norm(a):
    return np.sqrt((a * a).sum(axis=-1, keepdims=True))


def uoro_grads(params: dict, xs, h0, targets, rng=None, n_samples: int = 1, signs=None):
    """``n_samples`` independent UORO estimates of the sequence loss's gradient.

    params: ``W_xh (H, D), W_hh (H, H), b_h (H,), W_hy (V, H), b_y (V,)``;
    xs: (T, B, D); h0: (B, H); targets: (T, B) integer classes.
    The random signs are drawn from ``rng`` (a ``numpy.random.Generator``),
    or given as ``signs`` (T, S, B, H) of +-1, one chain per sample and sequence.
    Returns ``loss`` (float) and ``grads``: every key of ``params`` with a
    leading sample axis S. ``W_hy`` and ``b_y`` do not go through the
    recurrence, so their gradients are exact and the same for every sample.
    """
    dims = check_sequence_inputs(params, xs, h0, targets)
    targets = np.asarray(targets)
    T, B, D, H = dims["T"], dims["B"], dims["D"], dims["H"]
    if signs is None:
        if rng is None:
            raise ValueError("give either rng (a numpy Generator) or signs (T, S, B, H)")
        S = check_positive_int("n_samples", n_samples)
        signs = rng.choice([-1.0, 1.0], size=(T, S, B, H))
    else:
        signs = check_array("signs", signs, "T S B H", dict(dims))
        if not np.all(np.abs(signs) == 1):
            raise ValueError("signs must hold only -1 and +1")
        S = signs.shape[1]
    p = params
    h = np.asarray(h0, dtype=float)
    h_tilde = np.zeros((S, B, H))
    theta_tilde = np.zeros((S, B, n_recurrent(D, H)))
    dtheta = np.zeros((S, n_recurrent(D, H)))
    loss, dW_hy, db_y = 0.0, np.zeros(np.shape(p["W_hy"])), np.zeros(np.shape(p["b_y"]))
    for t in range(T):
        h_prev, h = h, rnn_step_forward(xs[t], h, p["W_xh"], p["W_hh"], p["b_h"])
        d = 1.0 - h**2  # the tanh slopes, diag(1 - h_t^2), (B, H)
        J_h = d * (h_tilde @ p["W_hh"].T)  # J_t h~_{t-1}, (S, B, H)
        nu = signs[t]
        u = nu * d  # nu^T diag(1 - h_t^2); nu^T F_t is u in each unit's parameter slots
        nu_F = np.concatenate(
            [
                (u[..., :, None] * xs[t][:, None, :]).reshape(S, B, H * D),
                (u[..., :, None] * h_prev[:, None, :]).reshape(S, B, H * H),
                u,
            ],
            axis=-1,
        )
        rho0 = np.sqrt((_norm(theta_tilde) + EPS) / (_norm(J_h) + EPS))
        rho1 = np.sqrt((_norm(nu_F) + EPS) / (_norm(nu) + EPS))
        h_tilde = rho0 * J_h + rho1 * nu
        theta_tilde = theta_tilde / rho0 + nu_F / rho1
        loss_t, dh, dW_hy_t, db_y_t = output_backward(
            h[None], p["W_hy"], p["b_y"], targets[t : t + 1]
        )
        # (dL_t/dh_t . h~_t) theta~_t, summed over the batch.
        dtheta += np.einsum("sb,sbn->sn", (dh[0] * h_tilde).sum(axis=-1), theta_tilde)
        loss, dW_hy, db_y = loss + loss_t, dW_hy + dW_hy_t, db_y + db_y_t
    grads = split_recurrent(dtheta, D, H)
    grads["W_hy"] = np.broadcast_to(dW_hy, (S, *dW_hy.shape))
    grads["b_y"] = np.broadcast_to(db_y, (S, *db_y.shape))
    return loss, grads
