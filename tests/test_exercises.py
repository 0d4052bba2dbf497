"""The nbgrader assignments, outside Jupyter (fast; the real nbgrader pipeline is in
test_grading.py).

1. Structure: the fixed contract, no manually graded cells, no outputs, hidden tests in every
   test cell, no `import bptt` (students do not have the package), the chapter named.
2. The reference solutions (extracted from solutions/) against oracles written here, independently
   of the notebooks' own test helpers: torch modules with copied weights, torch.autograd, finite
   differences, torch.nn.utils' clipping.
3. The notebooks' own test cells, visible and hidden: all pass on the reference solutions and on
   valid variations, all fail on the untouched release notebooks, and each typical mistake fails
   exactly the expected cells with a message that names it.
4. exercises/ is what `make exercises` generates from solutions/.
"""

from __future__ import annotations

import copy
import inspect
import json
import re

import numpy as np
import pytest
import torch
from exercise_harness import (
    ASSIGNMENTS,
    CONTRACT,
    ROOT,
    is_solution,
    is_test,
    nbgrader_meta,
    points,
    read,
    release_path,
    run_cells,
    solution_sources,
    source_path,
)
from exercise_mutants import MUTANTS, VARIANTS

from bptt.oracles import max_rel_error

torch.set_num_threads(1)
F = torch.nn.functional
TOL = 1e-10


def reference(assignment: str) -> dict:
    """The namespace of a source notebook's code without its test helpers and tests: the given
    code and the reference solutions, as a student who solved it would have them."""
    namespace: dict = {"__name__": "reference"}
    solutions = solution_sources(assignment)
    for cell in read(source_path(assignment)).cells:
        if (
            cell.cell_type != "code"
            or nbgrader_meta(cell).get("grade_id") == "checks"
            or is_test(cell)
        ):
            continue
        exec(compile(solutions.get(cell.id, cell.source), cell.id, "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def ref():
    cache: dict = {}

    def get(assignment):
        if assignment not in cache:
            cache[assignment] = reference(assignment)
        return cache[assignment]

    return get


def t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def rnn_data(rng, T=6, B=3, D=5, H=4):
    W_hh = rng.standard_normal((H, H)) / np.sqrt(H)
    assert not np.allclose(W_hh, W_hh.T)
    return (
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        rng.standard_normal((H, D)) / np.sqrt(D),
        W_hh,
        rng.standard_normal(H),
    )


def torch_rnn(W_xh, W_hh, b_h):
    H, D = W_xh.shape
    rnn = torch.nn.RNN(D, H, dtype=torch.float64)
    with torch.no_grad():
        for name, value in zip(
            rnn._flat_weights_names, (W_xh, W_hh, b_h, np.zeros(H)), strict=False
        ):
            getattr(rnn, name).copy_(t(value))
    return rnn


# ---------------------------------------------------------------- 1. structure


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_structure(assignment):
    notebook, chapter = ASSIGNMENTS[assignment]
    nb = read(source_path(assignment))
    intro = nb.cells[0].source
    assert f"book/{chapter}" in intro, "the first cell names the chapter's file"
    assert (ROOT / "book" / chapter).exists()
    ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "grade ids are unique"
    solution_ids = [c.id for c in nb.cells if is_solution(c)]
    assert solution_ids, "there are solution cells"
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        assert not (meta.get("grade") and meta.get("solution")), "no manually graded cells"
        assert not meta.get("task"), "no manually graded task cells"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{cell.id} has outputs"
            assert not re.search(r"^\s*(import bptt|from bptt)", cell.source, re.M), cell.id
        if is_solution(cell):
            assert cell.cell_type == "code"
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        if is_test(cell):
            assert meta["locked"], f"{cell.id} is read-only"
            assert "### BEGIN HIDDEN TESTS" in cell.source, f"{cell.id} has hidden tests"
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert re.search(r"_check\w*\(", visible), f"{cell.id} has visible tests"
    total = sum(points(nb).values())
    table = [int(p) for p in re.findall(r"^\|.*\| (\d+) \|$", intro, re.M)]
    assert sum(table) == total, "the points in the introduction's table add up to the test cells'"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_contract_signatures(assignment, ref):
    """The graded functions exist with the contract's parameter names, in source and release."""
    ns = ref(assignment)
    release = "\n".join(c.source for c in read(release_path(assignment)).cells)
    for name in CONTRACT[assignment]:
        params = list(inspect.signature(ns[name]).parameters)
        assert f"def {name}({', '.join(params)}" in release
    expected = {
        "rnn_backward": ["dhs", "xs", "h0", "hs", "W_xh", "W_hh"],
        "numerical_gradient": ["f", "x", "eps"],
        "clip_grad_norm": ["grads", "max_norm", "eps"],
        "truncated_bptt_grads": ["params", "xs", "h0", "targets", "k"],
        "lstm_step_backward": ["dh", "dc", "x", "h_prev", "c_prev", "W_ih", "W_hh", "b"],
        "gru_step_forward": ["x", "h_prev", "W_ih", "W_hh", "b_ih", "b_hh"],
        "input_grad_norms": ["model", "xs"],
    }
    for name, params in expected.items():
        if name in ns:
            assert list(inspect.signature(ns[name]).parameters) == params


# ---------------------------------------------------------------- 2. reference vs oracles


def test_forward_reference(ref):
    ns = ref("01_forward")
    rng = np.random.default_rng(0)
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng)
    rnn = torch_rnn(W_xh, W_hh, b_h)
    with torch.no_grad():
        want = rnn(t(xs), t(h0)[None])[0]
    assert max_rel_error(ns["rnn_forward"](xs, h0, W_xh, W_hh, b_h), want) < TOL
    assert max_rel_error(ns["rnn_step_forward"](xs[0], h0, W_xh, W_hh, b_h), want[0]) < TOL
    assert max_rel_error(ns["rnn_forward"](xs[:1], h0, W_xh, W_hh, b_h), want[:1]) < TOL
    for z in (
        rng.standard_normal((4, 3)),
        rng.standard_normal(5),
        rng.standard_normal((2, 3, 4)),
        np.array([[1000.0, 999.0, 990.0], [-1000.0, -1001.0, 0.0]]),
    ):
        z_before = z.copy()
        assert max_rel_error(ns["softmax"](z), torch.softmax(t(z), -1)) < TOL
        assert np.array_equal(z, z_before)
    hs = np.tanh(rng.standard_normal((5, 3, 4)))
    W_hy, b_y, targets = (
        rng.standard_normal((6, 4)),
        rng.standard_normal(6),
        rng.integers(0, 6, (5, 3)),
    )
    logits = t(hs @ W_hy.T + b_y).reshape(15, 6)
    want = F.cross_entropy(logits, torch.tensor(targets).reshape(-1), reduction="sum").item() / 3
    loss = ns["sequence_loss"](hs, W_hy, b_y, targets)
    assert isinstance(loss, float) and abs(loss - want) < TOL * abs(want)


def test_bptt_reference(ref):
    ns = ref("02_bptt")
    rng = np.random.default_rng(1)
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T=7, B=3, D=5, H=4)
    hs = ns["rnn_forward"](xs, h0, W_xh, W_hh, b_h)
    dhs = rng.standard_normal(hs.shape)
    rnn = torch_rnn(W_xh, W_hh, b_h)
    txs, th0 = t(xs).requires_grad_(), t(h0).requires_grad_()
    (rnn(txs, th0[None])[0] * t(dhs)).sum().backward()
    got = ns["rnn_backward"](dhs, xs, h0, hs, W_xh, W_hh)
    want = (txs.grad, th0.grad, rnn.weight_ih_l0.grad, rnn.weight_hh_l0.grad, rnn.bias_ih_l0.grad)
    for g, w in zip(got, want, strict=True):
        assert max_rel_error(g, w) < TOL
    # one step: the last step of the sequence, with its upstream gradient only
    step = ns["rnn_step_backward"](dhs[0], xs[0], h0, hs[0], W_xh, W_hh)
    leaves = [t(a).requires_grad_() for a in (xs[0], h0, W_xh, W_hh, b_h)]
    x, h, W, U, b = leaves
    (torch.tanh(x @ W.T + h @ U.T + b) * t(dhs[0])).sum().backward()
    for g, leaf in zip(step, leaves, strict=True):
        assert max_rel_error(g, leaf.grad) < TOL
    # the output layer
    W_hy, b_y, targets = (
        rng.standard_normal((6, 4)),
        rng.standard_normal(6),
        rng.integers(0, 6, (7, 3)),
    )
    loss, dhs_out, dW_hy, db_y = ns["output_backward"](hs, W_hy, b_y, targets)
    ths, tW, tb = (t(a).requires_grad_() for a in (hs, W_hy, b_y))
    tloss = (
        F.cross_entropy(
            (ths @ tW.T + tb).reshape(21, 6), torch.tensor(targets).reshape(-1), reduction="sum"
        )
        / 3
    )
    tloss.backward()
    assert abs(loss - tloss.item()) < TOL * tloss.item()
    for g, w in ((dhs_out, ths.grad), (dW_hy, tW.grad), (db_y, tb.grad)):
        assert max_rel_error(g, w) < TOL
    # finite differences, with the reference numerical_gradient, agree with the analytic gradient
    W = W_hy.copy()
    num = ns["numerical_gradient"](lambda A: ns["sequence_loss"](hs, A, b_y, targets), W)
    assert np.array_equal(W, W_hy), "x is restored"
    assert max_rel_error(num, dW_hy) < 1e-7


def test_numerical_gradient_reference(ref):
    numerical_gradient = ref("02_bptt")["numerical_gradient"]
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3, 2))
    x_before = x.copy()
    tx = t(x).requires_grad_()
    torch.sum(torch.exp(2 * tx) * torch.sin(tx)).backward()
    grad = numerical_gradient(lambda v: float(np.sum(np.exp(2 * v) * np.sin(v))), x)
    assert np.array_equal(x, x_before)
    assert max_rel_error(grad, tx.grad) < 1e-8
    coarse = numerical_gradient(lambda v: float(np.sum(v**3)), np.array([1.0, 2.0]), eps=0.1)
    assert np.allclose(coarse, 3 * np.array([1.0, 4.0]) + 0.01)  # central: f''' eps^2 / 6 = 0.01


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


def torch_truncated(params, xs, h0, targets, k):
    """Truncated BPTT by nn.RNN + detach, one chunk at a time (chunk losses summed)."""
    W_hy, b_y = t(params["W_hy"]).requires_grad_(), t(params["b_y"]).requires_grad_()
    rnn = torch_rnn(params["W_xh"], params["W_hh"], params["b_h"])
    h, total = t(h0)[None], 0.0
    T, B = targets.shape
    for s in range(0, T, k):
        out, h = rnn(t(xs[s : s + k]), h.detach())
        z = (out @ W_hy.T + b_y).reshape(-1, W_hy.shape[0])
        total = (
            total
            + F.cross_entropy(z, torch.tensor(targets[s : s + k]).reshape(-1), reduction="sum") / B
        )
    total.backward()
    grads = {
        "W_xh": rnn.weight_ih_l0.grad,
        "W_hh": rnn.weight_hh_l0.grad,
        "b_h": rnn.bias_ih_l0.grad,
        "W_hy": W_hy.grad,
        "b_y": b_y.grad,
    }
    return total.item(), grads, h[0].detach()


def test_truncated_reference(ref):
    ns = ref("04_truncated")
    assert ns["tbptt_chunks"](10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert ns["tbptt_chunks"](6, 3) == [(0, 3), (3, 6)]
    assert ns["tbptt_chunks"](5, 9) == [(0, 5)]
    for k in (0, -1):
        with pytest.raises(ValueError):
            ns["tbptt_chunks"](5, k)
    rng = np.random.default_rng(4)
    T, B, D, H, V = 11, 3, 5, 4, 6
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T, B, D, H)
    params = {
        "W_xh": W_xh,
        "W_hh": W_hh,
        "b_h": b_h,
        "W_hy": rng.standard_normal((V, H)),
        "b_y": rng.standard_normal(V),
    }
    targets = rng.integers(0, V, (T, B))
    kept = copy.deepcopy(params)
    full = None
    for k in (1, 3, 4, 11, 50):
        loss, grads, h_last = ns["truncated_bptt_grads"](params, xs, h0, targets, k)
        want_loss, want, want_h = torch_truncated(params, xs, h0, targets, k)
        assert abs(loss - want_loss) < TOL * want_loss
        assert max_rel_error(h_last, want_h) < TOL
        for name in params:
            assert max_rel_error(grads[name], want[name]) < TOL, (k, name)
        if k == T:
            full = grads
        if k == 50:  # k >= T is full BPTT
            assert all(max_rel_error(grads[n], full[n]) < TOL for n in params)
    assert all(np.array_equal(params[n], kept[n]) for n in params)


def test_lstm_gru_reference(ref):
    ns = ref("05_lstm_gru")
    rng = np.random.default_rng(5)
    T, B, D, H = 6, 3, 5, 4
    xs, h0, c0 = (
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        rng.standard_normal((B, H)),
    )
    W_ih, W_hh, b = (
        rng.standard_normal((4 * H, D)),
        rng.standard_normal((4 * H, H)),
        rng.standard_normal(4 * H),
    )
    lstm = torch.nn.LSTM(D, H, dtype=torch.float64)
    with torch.no_grad():
        for name, v in zip(
            lstm._flat_weights_names, (W_ih, W_hh, b, np.zeros(4 * H)), strict=False
        ):
            getattr(lstm, name).copy_(t(v))
    with torch.no_grad():
        want_hs = lstm(t(xs), (t(h0)[None], t(c0)[None]))[0]
        _, (h1, c1) = lstm(t(xs[:1]), (t(h0)[None], t(c0)[None]))
    hs, cs = ns["lstm_forward"](xs, h0, c0, W_ih, W_hh, b)
    assert max_rel_error(hs, want_hs) < TOL
    h, c = ns["lstm_step_forward"](xs[0], h0, c0, W_ih, W_hh, b)
    assert max_rel_error(h, h1[0]) < TOL and max_rel_error(c, c1[0]) < TOL
    assert max_rel_error(cs[0], c1[0]) < TOL
    # backward through one step, by autograd on nn.LSTM run for one step
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    leaves = [t(a).requires_grad_() for a in (xs[0], h0, c0, W_ih, W_hh, b)]
    out = torch.func.functional_call(
        lstm,
        dict(
            zip(
                lstm._flat_weights_names,
                (*leaves[3:], torch.zeros(4 * H, dtype=torch.float64)),
                strict=False,
            )
        ),
        (leaves[0][None], (leaves[1][None], leaves[2][None])),
    )
    _, (th, tc) = out
    ((th[0] * t(dh)).sum() + (tc[0] * t(dc)).sum()).backward()
    got = ns["lstm_step_backward"](dh, dc, xs[0], h0, c0, W_ih, W_hh, b)
    for g, leaf in zip(got, leaves, strict=True):
        assert max_rel_error(g, leaf.grad) < TOL
    # GRU
    W_ih, W_hh = rng.standard_normal((3 * H, D)), rng.standard_normal((3 * H, H))
    b_ih, b_hh = rng.standard_normal(3 * H), rng.standard_normal(3 * H)
    gru = torch.nn.GRU(D, H, dtype=torch.float64)
    with torch.no_grad():
        for name, v in zip(gru._flat_weights_names, (W_ih, W_hh, b_ih, b_hh), strict=False):
            getattr(gru, name).copy_(t(v))
        want = gru(t(xs), t(h0)[None])[0]
    assert max_rel_error(ns["gru_forward"](xs, h0, W_ih, W_hh, b_ih, b_hh), want) < TOL
    assert max_rel_error(ns["gru_step_forward"](xs[0], h0, W_ih, W_hh, b_ih, b_hh), want[0]) < TOL


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_input_grad_norms_reference(ref, kind):
    input_grad_norms = ref("05_lstm_gru")["input_grad_norms"]
    torch.manual_seed(0)
    model = getattr(torch.nn, kind)(3, 5, dtype=torch.float64)
    xs = torch.randn(7, 2, 3, dtype=torch.float64)
    preset = [torch.randn_like(p) for p in model.parameters()]
    for p, g in zip(model.parameters(), preset, strict=False):
        p.grad = g.clone()
    norms = input_grad_norms(model, xs)
    assert isinstance(norms, np.ndarray) and norms.shape == (7,)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), preset, strict=False))
    assert not xs.requires_grad and xs.grad is None
    # oracle: the Jacobian of s = output[-1].sum() with respect to the inputs, by autograd
    jac = torch.autograd.functional.jacobian(lambda x: model(x)[0][-1].sum(), xs)
    assert max_rel_error(norms, jac.flatten(1).norm(dim=1)) < TOL


# ---------------------------------------------------------------- 3. the notebooks' own tests


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_tests_pass_on_reference(assignment):
    results = run_cells(read(source_path(assignment)))
    assert results and all(v is None for v in results.values()), results


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_tests_fail_on_release(assignment):
    """Untouched release notebooks fail every graded test (they would score 0)."""
    source = read(source_path(assignment))
    release = read(release_path(assignment))
    # The release notebook's cells with the source's tests (as nbgrader restores them).
    tests = {c.id: c.source for c in source.cells if is_test(c)}
    results = run_cells(release, tests)
    assert set(results) == set(tests)
    assert all(v and "not implemented yet" in v for v in results.values()), results


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: f"{m.assignment}: {m.name}")
def test_mistake_loses_points_with_a_message(mutant):
    results = run_cells(read(source_path(mutant.assignment)), {mutant.cell: mutant.source()})
    failed = {k: v for k, v in results.items() if v}
    assert set(failed) == set(mutant.fails), failed
    for cell, phrase in mutant.fails.items():
        assert failed[cell].startswith("AssertionError"), failed[cell]
        assert phrase.lower() in failed[cell].lower(), (cell, failed[cell])


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda m: f"{m.assignment}: {m.name}")
def test_valid_variation_keeps_full_marks(variant):
    results = run_cells(read(source_path(variant.assignment)), {variant.cell: variant.source()})
    assert all(v is None for v in results.values()), results


def test_every_graded_function_has_mistakes_and_a_variation():
    edited = {(m.assignment, m.cell) for m in MUTANTS}
    varied = {(m.assignment, m.cell) for m in VARIANTS}
    for assignment, functions in CONTRACT.items():
        for name in functions:
            assert (assignment, name) in edited, f"no typical mistake for {name}"
    assert len(varied) >= 10


# ---------------------------------------------------------------- 4. release in sync


def normalised(path):
    nb = json.loads(path.read_text())
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        cell["source"] = (
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        )
    return nb


def test_exercises_are_generated_from_solutions(tmp_path):
    from grader.release import generate_release

    paths = generate_release(tmp_path / "release", workdir=tmp_path / "work")
    assert len(paths) == len(ASSIGNMENTS)
    committed = sorted(
        p.relative_to(ROOT / "exercises") for p in (ROOT / "exercises").glob("*/*.ipynb")
    )
    assert committed == sorted(p.relative_to(tmp_path / "release") for p in paths)
    for path in paths:
        rel = path.relative_to(tmp_path / "release")
        assert normalised(ROOT / "exercises" / rel) == normalised(path), (
            f"exercises/{rel} differs from what solutions/ generates: run `make exercises`"
        )
    text = "\n".join(p.read_text() for p in paths)
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
