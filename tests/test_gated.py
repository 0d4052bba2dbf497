"""LSTM and GRU in numpy (bptt.gated) against torch.nn, autograd and finite differences;
the tasks and the experiment helpers (bptt.tasks, bptt.experiments)."""

import numpy as np
import pytest
import torch

from bptt.experiments import (
    KINDS,
    load_results,
    make_model,
    matched_hidden_sizes,
    n_params,
    race,
    summarise,
    train,
)
from bptt.gated import (
    gru_forward,
    gru_jacobian,
    gru_step_forward,
    gru_step_forward_chung,
    gru_step_forward_reset_before,
    init_gated,
    input_grad_norms,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    lstm_step_forward_ifog,
    numpy_weights,
    sigmoid,
    torch_gated,
)
from bptt.oracles import max_rel_error
from bptt.tasks import ADDING_BASELINE_MSE, adding_batch, copy_baseline, copy_batch

T, B, D, H = 6, 3, 5, 4  # B > 1 and D != H so that transposes cannot hide


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def lstm_setup(rng, scale=1.0):
    w = init_gated("lstm", D, H, rng)
    W_h = w["W_h"] * scale
    assert not np.allclose(W_h[:H], W_h[:H].T)  # a transpose bug would show
    return (
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        rng.standard_normal((B, H)),
        w["W_x"],
        W_h,
        w["b"],
    )


def gru_setup(rng):
    w = init_gated("gru", D, H, rng)
    return (
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        w["W_x"],
        w["W_h"],
        w["b_x"],
        w["b_hn"],
    )


def test_sigmoid_is_stable_and_correct():
    a = np.array([-1000.0, -3.0, 0.0, 2.5, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = sigmoid(a)
    assert np.allclose(s, torch.sigmoid(torch.tensor(a)).numpy(), rtol=0, atol=1e-15)


def test_lstm_step_matches_lstmcell(rng):
    xs, h0, c0, W_x, W_h, b = lstm_setup(rng)
    h, c = lstm_step_forward(xs[0], h0, c0, W_x, W_h, b)
    cell = torch_gated("lstm", W_x, W_h, b, cell=True)
    h_t, c_t = cell(torch.from_numpy(xs[0]), (torch.from_numpy(h0), torch.from_numpy(c0)))
    assert max_rel_error(h, h_t) < 1e-10
    assert max_rel_error(c, c_t) < 1e-10
    assert h.shape == (B, H) and c.dtype == np.float64


def test_lstm_forward_matches_nn_lstm(rng):
    xs, h0, c0, W_x, W_h, b = lstm_setup(rng)
    hs, cs = lstm_forward(xs, h0, c0, W_x, W_h, b)
    net = torch_gated("lstm", W_x, W_h, b)
    out, (h_n, c_n) = net(
        torch.from_numpy(xs), (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None])
    )
    assert hs.shape == cs.shape == (T, B, H)
    assert max_rel_error(hs, out) < 1e-10
    assert max_rel_error(cs[-1], c_n[0]) < 1e-10
    assert max_rel_error(hs[-1], h_n[0]) < 1e-10


def test_gru_step_matches_grucell(rng):
    xs, h0, W_x, W_h, b_x, b_hn = gru_setup(rng)
    h = gru_step_forward(xs[0], h0, W_x, W_h, b_x, b_hn)
    cell = torch_gated("gru", W_x, W_h, b_x, b_hn, cell=True)
    assert max_rel_error(h, cell(torch.from_numpy(xs[0]), torch.from_numpy(h0))) < 1e-10


def test_gru_forward_matches_nn_gru(rng):
    xs, h0, W_x, W_h, b_x, b_hn = gru_setup(rng)
    hs = gru_forward(xs, h0, W_x, W_h, b_x, b_hn)
    out, h_n = torch_gated("gru", W_x, W_h, b_x, b_hn)(
        torch.from_numpy(xs), torch.from_numpy(h0)[None]
    )
    assert hs.shape == (T, B, H)
    assert max_rel_error(hs, out) < 1e-10
    assert max_rel_error(hs[-1], h_n[0]) < 1e-10


def test_gru_biases_cannot_be_summed(rng):
    # b_hn sits inside r * (W_hn h + b_hn): moving it to b_in changes the function.
    xs, h0, W_x, W_h, b_x, b_hn = gru_setup(rng)
    moved_x = b_x.copy()
    moved_x[2 * H :] += b_hn
    a = gru_step_forward(xs[0], h0, W_x, W_h, b_x, b_hn)
    b = gru_step_forward(xs[0], h0, W_x, W_h, moved_x, np.zeros(H))
    assert np.abs(a - b).max() > 1e-3


def test_ifog_order_is_a_row_permutation(rng):
    xs, h0, c0, W_x, W_h, b = lstm_setup(rng)
    swap = np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]  # [i; f; g; o] <-> [i; f; o; g]
    ours = lstm_step_forward(xs[0], h0, c0, W_x, W_h, b)
    same = lstm_step_forward_ifog(xs[0], h0, c0, W_x[swap], W_h[swap], b[swap])
    other = lstm_step_forward_ifog(xs[0], h0, c0, W_x, W_h, b)
    for a, s, o in zip(ours, same, other, strict=True):
        assert max_rel_error(a, s) < 1e-12
        assert np.abs(a - o).max() > 1e-2


def test_reset_before_equals_pytorch_only_when_reset_is_open(rng):
    xs, h0, W_x, W_h, b_x, b_hn = gru_setup(rng)
    args = (xs[0], h0, W_x, W_h, b_x, b_hn)
    assert np.abs(gru_step_forward(*args) - gru_step_forward_reset_before(*args)).max() > 1e-2
    open_x = b_x.copy()
    open_x[:H] = 1000.0  # r = sigmoid(1000) = 1.0 exactly in float64
    args = (xs[0], h0, W_x, W_h, open_x, b_hn)
    assert max_rel_error(gru_step_forward(*args), gru_step_forward_reset_before(*args)) < 1e-14


def step_loss_torch(dh, dc, x, h_prev, c_prev, W_x, W_h, b):
    """<dh, h> + <dc, c> for one LSTMCell step, all inputs float64 leaves."""
    t = {
        k: torch.tensor(v, requires_grad=True)
        for k, v in dict(x=x, h_prev=h_prev, c_prev=c_prev, W_x=W_x, W_h=W_h, b=b).items()
    }
    cell = torch.nn.LSTMCell(x.shape[1], h_prev.shape[1], dtype=torch.float64)
    h, c = torch.func.functional_call(
        cell,
        {
            "weight_ih": t["W_x"],
            "weight_hh": t["W_h"],
            "bias_ih": t["b"],
            "bias_hh": torch.zeros_like(t["b"]),
        },
        (t["x"], (t["h_prev"], t["c_prev"])),
    )
    loss = (h * torch.from_numpy(dh)).sum() + (c * torch.from_numpy(dc)).sum()
    loss.backward()
    return [t[k].grad.numpy() for k in ("x", "h_prev", "c_prev", "W_x", "W_h", "b")]


def test_lstm_step_backward_matches_autograd(rng):
    xs, h0, c0, W_x, W_h, b = lstm_setup(rng)
    dh, dc = rng.standard_normal((2, B, H))
    args = (xs[0], h0, c0, W_x, W_h, b)
    ours = lstm_step_backward(dh, dc, *args)
    theirs = step_loss_torch(dh, dc, *args)
    names = ("dx", "dh_prev", "dc_prev", "dW_x", "dW_h", "db")
    for name, a, t in zip(names, ours, theirs, strict=True):
        assert a.shape == t.shape, name
        assert max_rel_error(a, t) < 1e-10, name


def test_lstm_step_backward_matches_finite_differences():
    rng = np.random.default_rng(7)
    Bs, Ds, Hs = 2, 3, 2
    w = init_gated("lstm", Ds, Hs, rng)
    inputs = [
        rng.standard_normal((Bs, Ds)),
        rng.standard_normal((Bs, Hs)),
        rng.standard_normal((Bs, Hs)),
        w["W_x"] * 2,
        w["W_h"] * 2,
        w["b"],
    ]
    dh, dc = rng.standard_normal((2, Bs, Hs))

    def loss(args):
        h, c = lstm_step_forward(*args)
        return float((h * dh).sum() + (c * dc).sum())

    grads = lstm_step_backward(dh, dc, *inputs)
    eps = 1e-6
    for k, (array, grad) in enumerate(zip(inputs, grads, strict=True)):
        numeric = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        assert max_rel_error(grad, numeric) < 1e-8, k


def test_lstm_backward_through_time_matches_nn_lstm(rng):
    xs, h0, c0, W_x, W_h, b = lstm_setup(rng)
    dhs = rng.standard_normal((T, B, H))
    ours = lstm_backward(dhs, xs, h0, c0, W_x, W_h, b)
    net = torch_gated("lstm", W_x, W_h, b)
    x_t = torch.tensor(xs, requires_grad=True)
    h0_t = torch.tensor(h0[None], requires_grad=True)
    c0_t = torch.tensor(c0[None], requires_grad=True)
    out, _ = net(x_t, (h0_t, c0_t))
    (out * torch.from_numpy(dhs)).sum().backward()
    theirs = (
        x_t.grad,
        h0_t.grad[0],
        c0_t.grad[0],
        net.weight_ih_l0.grad,
        net.weight_hh_l0.grad,
        net.bias_ih_l0.grad,
    )
    for a, t in zip(ours, theirs, strict=True):
        assert max_rel_error(a, t) < 1e-10
    assert max_rel_error(net.bias_ih_l0.grad, net.bias_hh_l0.grad) < 1e-14  # why one b is enough


def test_cell_path_jacobian_is_diag_forget_gate(rng):
    xs, h0, c0, W_x, W_h, b = lstm_setup(rng)
    f = sigmoid(xs[0] @ W_x[H : 2 * H].T + h0 @ W_h[H : 2 * H].T + b[H : 2 * H])
    # dc = e_j picks column j of dc/dc_prev; with dh = 0 only the cell path is left.
    for j in range(H):
        dc = np.zeros((B, H))
        dc[:, j] = 1.0
        _, _, dc_prev, *_ = lstm_step_backward(np.zeros((B, H)), dc, xs[0], h0, c0, W_x, W_h, b)
        assert np.allclose(dc_prev, f * dc, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "fn, args, name",
    [
        (
            lstm_step_forward,
            lambda a: (a["x"][:, :-1], a["h"], a["c"], a["Wi"], a["Wh"], a["b"]),
            "W_x",
        ),
        (
            lstm_step_forward,
            lambda a: (a["x"], a["h"], a["c"][:, :-1], a["Wi"], a["Wh"], a["b"]),
            "c_prev",
        ),
        (
            lstm_step_forward,
            lambda a: (a["x"], a["h"], a["c"], a["Wi"], a["Wh"][:H], a["b"]),
            "W_h",
        ),
        (lstm_step_forward, lambda a: (a["x"], a["h"], a["c"], a["Wi"], a["Wh"], a["b"][:-1]), "b"),
        (lstm_forward, lambda a: (a["x"], a["h"], a["c"], a["Wi"], a["Wh"], a["b"]), "xs"),
        (
            lstm_step_backward,
            lambda a: (a["h"][:, :-1], a["c"], a["x"], a["h"], a["c"], a["Wi"], a["Wh"], a["b"]),
            "dh",
        ),
        (
            gru_step_forward,
            lambda a: (a["x"], a["h"], a["Gi"], a["Gh"], a["gb"], a["gb"]),
            "b_hn",
        ),
        (gru_step_forward, lambda a: (a["x"], a["h"], a["Gi"], a["Wh"], a["gb"], a["gb"]), "W_h"),
        (
            gru_forward,
            lambda a: (a["x"][None], a["h"][0], a["Gi"], a["Gh"], a["gb"], a["gb"]),
            "h0",
        ),
    ],
)
def test_bad_shapes_raise_naming_the_argument(rng, fn, args, name):
    xs, h0, c0, W_x, W_h, b = lstm_setup(rng)
    g = init_gated("gru", D, H, rng)
    a = {
        "x": xs[0],
        "h": h0,
        "c": c0,
        "Wi": W_x,
        "Wh": W_h,
        "b": b,
        "Gi": g["W_x"],
        "Gh": g["W_h"],
        "gb": g["b_x"],
    }
    with pytest.raises(ValueError, match=name):
        fn(*args(a))


def test_bad_kind_raises():
    with pytest.raises(ValueError, match="kind"):
        init_gated("rnn", D, H, np.random.default_rng(0))
    with pytest.raises(ValueError, match="kind"):
        n_params("transformer", D, H, 1)


# input_grad_norms ---------------------------------------------------------------------------


def per_step_leaves_norms(model, xs):
    """Independent route: T separate leaf tensors, stacked, and one backward()."""
    leaves = [x.clone().requires_grad_(True) for x in xs]
    out, _ = model(torch.stack(leaves))
    out[-1].sum().backward()
    return np.array([leaf.grad.norm().item() for leaf in leaves])


@pytest.mark.parametrize("module", [torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU])
def test_input_grad_norms_matches_independent_route_and_touches_nothing(module):
    torch.manual_seed(0)
    model = module(D, H, dtype=torch.float64)
    xs = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    before = xs.detach().clone()
    norms = input_grad_norms(model, xs)
    assert norms.shape == (T,) and norms.dtype == np.float64
    assert all(p.grad is None for p in model.parameters())
    assert xs.grad is None and torch.equal(xs.detach(), before)
    expected = per_step_leaves_norms(model, xs.detach())
    assert max_rel_error(norms, expected) < 1e-12
    # existing .grad survive unchanged
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    input_grad_norms(model, xs)
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())


def test_input_grad_norms_of_lstm_matches_numpy_bptt(rng):
    xs, h0, c0, W_x, W_h, b = lstm_setup(rng)
    net = torch_gated("lstm", W_x, W_h, b)
    dhs = np.zeros((T, B, H))
    dhs[-1] = 1.0  # s = sum of the last output
    dxs, *_ = lstm_backward(dhs, xs, np.zeros((B, H)), np.zeros((B, H)), W_x, W_h, b)
    expected = np.linalg.norm(dxs.reshape(T, -1), axis=1)
    assert max_rel_error(input_grad_norms(net, torch.from_numpy(xs)), expected) < 1e-10


def test_input_grad_norms_float32_input_to_float64_model():
    torch.manual_seed(1)
    model = torch.nn.GRU(D, H, dtype=torch.float64)
    xs = torch.randn(T, B, D)
    assert np.allclose(input_grad_norms(model, xs), input_grad_norms(model, xs.double()))


@pytest.mark.parametrize(
    "model, xs, match",
    [
        (torch.nn.Linear(D, H), torch.zeros(T, B, D), "model"),
        (torch.nn.LSTM(D, H, num_layers=2), torch.zeros(T, B, D), "model"),
        (torch.nn.GRU(D, H, batch_first=True), torch.zeros(T, B, D), "model"),
        (torch.nn.RNN(D, H, bidirectional=True), torch.zeros(T, B, D), "model"),
        (torch.nn.RNN(D, H), torch.zeros(T, B, D + 1), "xs"),
        (torch.nn.RNN(D, H), torch.zeros(B, D), "xs"),
        (torch.nn.RNN(D, H), np.zeros((T, B, D)), "xs"),
        (torch.nn.RNN(D, H), torch.zeros(T, B, D, dtype=torch.int64), "xs"),
    ],
)
def test_input_grad_norms_rejects_bad_arguments(model, xs, match):
    with pytest.raises(ValueError, match=match):
        input_grad_norms(model, xs)


# tasks ----------------------------------------------------------------------------------


def test_adding_batch_structure():
    xs, targets = adding_batch(10, 500, np.random.default_rng(0))
    assert xs.shape == (10, 500, 2) and targets.shape == (500,)
    values, marks = xs[..., 0], xs[..., 1]
    assert values.min() >= 0 and values.max() <= 1
    assert np.array_equal(marks.sum(axis=0), np.full(500, 2.0))
    assert np.array_equal(marks[:5].sum(axis=0), np.ones(500))  # one mark in each half
    assert np.allclose((values * marks).sum(axis=0), targets)


def test_adding_baseline_is_one_sixth():
    _, targets = adding_batch(4, 40_000, np.random.default_rng(1))
    assert ADDING_BASELINE_MSE == pytest.approx(1 / 6)
    assert np.mean((targets - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.005)


def test_copy_batch_structure():
    inputs, targets = copy_batch(7, 4, np.random.default_rng(0))
    assert inputs.shape == targets.shape == (27, 4)
    assert np.array_equal(targets[17:], inputs[:10])
    assert (targets[:17] == 0).all() and (inputs[10:16] == 0).all() and (inputs[17:] == 0).all()
    assert (inputs[16] == 9).all() and inputs[:10].min() >= 1 and inputs[:10].max() <= 8
    assert copy_baseline(7) == pytest.approx(10 * np.log(8) / 27)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: adding_batch(1, 4, np.random.default_rng(0)), "T"),
        (lambda: adding_batch(5, 0, np.random.default_rng(0)), "B"),
        (lambda: copy_batch(5, 2, np.random.default_rng(0), n_copy=0), "n_copy"),
        (lambda: copy_baseline(0), "T"),
    ],
)
def test_tasks_reject_bad_values(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# experiments ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("Dx, Hx, n_out", [(2, 7, 1), (10, 5, 10)])
def test_n_params_counts_the_model(kind, Dx, Hx, n_out):
    model = make_model(kind, Dx, Hx, n_out, seed=0)
    assert n_params(kind, Dx, Hx, n_out) == sum(p.numel() for p in model.parameters())


def test_matched_hidden_sizes_within_two_percent():
    sizes = matched_hidden_sizes(2, 1, 64)
    assert sizes["lstm"] == 64
    counts = [n_params(k, 2, h, 1) for k, h in sizes.items()]
    assert max(counts) / min(counts) < 1.02


def test_forget_bias_sets_the_summed_bias():
    model = make_model("lstm", 2, 5, 1, seed=0, forget_bias=1.0)
    total = (model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0).detach()
    assert torch.equal(total[5:10], torch.ones(5))
    with pytest.raises(ValueError, match="forget_bias"):
        make_model("gru", 2, 5, 1, seed=0, forget_bias=1.0)


def test_train_is_seeded_and_reports(rng):
    runs = [
        train(make_model("gru", 2, 8, 1, seed=3), "adding", 6, 20, seed=3, eval_every=10, n_test=50)
        for _ in range(2)
    ]
    assert runs[0]["test_loss"] == runs[1]["test_loss"]
    assert runs[0]["steps"] == [0, 10, 20]
    assert runs[0]["test_loss"][-1] < runs[0]["test_loss"][0]  # it learns something
    assert 0 <= runs[0]["clipped_fraction"] <= 1 and runs[0]["grad_norm_max"] > 0
    copy = train(
        make_model("lstm", 10, 8, 10, seed=0), "copy", 3, 5, seed=0, eval_every=5, n_test=20
    )
    assert copy["baseline"] == pytest.approx(copy_baseline(3))
    with pytest.raises(ValueError, match="task"):
        train(make_model("rnn", 2, 4, 1, seed=0), "sorting", 5, 5, seed=0)


def test_gru_jacobian_matches_autograd(rng):
    xs, h0, W_x, W_h, b_x, b_hn = gru_setup(rng)
    J = gru_jacobian(xs[0], h0, W_x, W_h, b_x, b_hn)
    cell = torch_gated("gru", W_x, W_h, b_x, b_hn, cell=True)
    x_t = torch.from_numpy(xs[0])
    for b in range(B):
        expected = torch.autograd.functional.jacobian(
            lambda h, b=b: cell(x_t[b : b + 1], h[None])[0], torch.from_numpy(h0[b])
        )
        assert max_rel_error(J[b], expected) < 1e-10
    # z -> 1 leaves only the direct path: the identity
    shut = b_x.copy()
    shut[H : 2 * H] = 1000.0
    assert np.allclose(gru_jacobian(xs[0], h0, W_x, W_h, shut, b_hn), np.eye(H), rtol=0, atol=1e-12)


def test_race_gives_the_rnn_as_many_steps_as_the_slower_gated_model():
    out = race(T=4, max_steps=10, seed=0, H_lstm=4, eval_every=5, n_test=20)
    assert list(out) == list(KINDS)
    used = {kind: result["steps"][-1] for kind, (result, _, _) in out.items()}
    assert used["rnn"] == max(used["lstm"], used["gru"])
    result, at_init, trained = out["lstm"]
    assert not torch.equal(at_init.rnn.weight_hh_l0, trained.rnn.weight_hh_l0)


def test_summarise_groups_seeds():
    runs = [
        {
            "task": "adding",
            "T": 5,
            "variant": "gru",
            "H": 3,
            "n_params": 10,
            "seed": s,
            "steps_to_solve": solved,
            "final_loss": loss,
            "sec_per_step": 0.002 * (s + 1),
            "clipped_fraction": 0.5 * s,
            "grad_norm_max": 3.0 + s,
        }
        for s, solved, loss in [(0, 100, 0.002), (1, None, 0.004)]
    ]
    (row,) = summarise(runs)
    assert row["steps_to_solve"] == [100, None]
    assert row["final_loss"] == pytest.approx(0.003)
    assert row["ms_per_step"] == pytest.approx(3.0)
    assert row["clipped"] == pytest.approx(0.25)
    assert row["grad_norm_max"] == 4.0


def test_load_results_reads_the_committed_file_and_explains_a_missing_one(tmp_path):
    grid = load_results()
    assert {"meta", "runs"} <= set(grid) and grid["runs"]
    assert {"command", "date"} <= set(grid["meta"])
    with pytest.raises(FileNotFoundError, match="make experiments"):
        load_results(tmp_path / "missing.json")


def test_chung_update_gate_is_pytorchs_with_the_update_rows_negated(rng):
    # 1 - sigmoid(a) = sigmoid(-a): Chung et al.'s z is PyTorch's 1 - u.
    xs, h0, W_x, W_h, b_x, b_hn = gru_setup(rng)
    args = (xs[0], h0, W_x, W_h, b_x, b_hn)
    assert np.abs(gru_step_forward(*args) - gru_step_forward_chung(*args)).max() > 1e-2
    flip = np.ones(3 * H)
    flip[H : 2 * H] = -1.0
    flipped = (xs[0], h0, W_x * flip[:, None], W_h * flip[:, None], b_x * flip, b_hn)
    assert max_rel_error(gru_step_forward_chung(*flipped), gru_step_forward(*args)) < 1e-14


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("cell", [False, True])
def test_numpy_weights_inverts_torch_gated_and_reads_pytorch_defaults(kind, cell):
    w = init_gated(kind, D, H, np.random.default_rng(3))
    back = numpy_weights(torch_gated(kind, **w, cell=cell))
    assert back.keys() == w.keys()
    assert all(np.array_equal(back[k], w[k]) for k in w)
    # a module with PyTorch's own (non-zero) bias_hh computes what our functions compute
    torch.manual_seed(0)
    module = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind](D, H, dtype=torch.float64)
    x, h = np.random.default_rng(4).standard_normal((2, B, D))[0], np.zeros((B, H)) + 0.3
    p = numpy_weights(module)
    if kind == "lstm":
        want = module(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(h)))[0]
        got = lstm_step_forward(x, h, h, **p)[0]
    else:
        want = module(torch.from_numpy(x), torch.from_numpy(h))
        got = gru_step_forward(x, h, **p)
    assert max_rel_error(got, want.detach()) < 1e-12


def test_torch_gated_rejects_wrong_biases():
    lstm, gru = (init_gated(k, D, H, np.random.default_rng(0)) for k in ("lstm", "gru"))
    with pytest.raises(ValueError, match="one bias b"):
        torch_gated("lstm", lstm["W_x"], lstm["W_h"], lstm["b"], np.zeros(H))
    with pytest.raises(ValueError, match="b_hn"):
        torch_gated("gru", gru["W_x"], gru["W_h"], gru["b_x"])
    with pytest.raises(ValueError, match="b_hn"):
        torch_gated("gru", gru["W_x"], gru["W_h"], gru["b_x"], np.zeros(H + 1))
    with pytest.raises(ValueError, match="module"):
        numpy_weights(torch.nn.RNN(D, H))
