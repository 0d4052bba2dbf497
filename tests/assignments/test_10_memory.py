# ruff: noqa: E501 - the mistakes are edits of code: long lines of code inside strings
"""Assignment 10_memory: its reference solution against oracles nobody here wrote, its typical
mistakes (each must lose points with a message that names it) and its valid variations (each
keeps full marks). tests/test_exercises.py runs MUTANTS and VARIANTS through the notebook's own
tests; the functions below test the reference solution itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_harness import Mutant

M = Mutant
A = "10_memory"
COPY = ("test_copy_task", "test_copy_task_edges")
BASE = ("test_memoryless_baseline", "test_memoryless_baseline_edges")
NP = ("test_n_params_rnn", "test_n_params_gated")
DELIM = "inputs[T + n_copy - 1] = n_symbols + 1"

MUTANTS = [
    M(
        A,
        "copy: T blanks before the delimiter (one step late)",
        "copy_task",
        {n: "one step late" for n in COPY},
        [(DELIM, "inputs[T + n_copy] = n_symbols + 1")],
    ),
    M(
        A,
        "copy: sequence one step longer (T blanks, then the delimiter)",
        "copy_task",
        {n: "steps" for n in COPY},
        [
            ("(T + 2 * n_copy, B)", "(T + 2 * n_copy + 1, B)"),
            (DELIM, "inputs[T + n_copy] = n_symbols + 1"),
            ("targets[T + n_copy:] = data", "targets[T + n_copy + 1:] = data"),
        ],
    ),
    M(
        A,
        "copy: the delimiter is n_symbols",
        "copy_task",
        {n: "a data symbol" for n in COPY},
        [(DELIM, "inputs[T + n_copy - 1] = n_symbols")],
    ),
    M(
        A,
        "copy: targets start at the delimiter",
        "copy_task",
        {n: "one step early" for n in COPY},
        [("targets[T + n_copy:] = data", "targets[T + n_copy - 1:T + 2 * n_copy - 1] = data")],
    ),
    M(
        A,
        "copy: symbols copied in reverse",
        "copy_task",
        {n: "reverse" for n in COPY},
        [("targets[T + n_copy:] = data", "targets[T + n_copy:] = data[::-1]")],
    ),
    M(
        A,
        "copy: float arrays",
        "copy_task",
        {n: "integer" for n in COPY},
        [(", dtype=np.int64)", ")")],
    ),
    M(
        A,
        "copy: (targets, inputs) returned",
        "copy_task",
        {n: "returned (targets, inputs)" for n in COPY},
        [("return inputs, targets", "return targets, inputs")],
    ),
    M(
        A,
        "baseline: one frequency table for the whole sequence",
        "memoryless_baseline",
        {n: "one frequency table" for n in BASE},
        code="def memoryless_baseline(targets, n_classes):\n"
        "    p = np.bincount(targets.ravel(), minlength=n_classes) / targets.size\n"
        "    p = p[p > 0]\n    return float(-np.sum(p * np.log(p)))\n",
    ),
    M(
        A,
        "baseline: 0 log 0 left as NaN",
        "memoryless_baseline",
        {n: "0 * log 0" for n in BASE},
        [("        p = p[p > 0]  # 0 log 0 = 0\n", "")],
    ),
    M(
        A,
        "baseline: in bits",
        "memoryless_baseline",
        {"test_memoryless_baseline": "bits", "test_memoryless_baseline_edges": "bits"},
        [("np.log(p)", "np.log2(p)")],
    ),
    M(
        A,
        "baseline: summed over the steps",
        "memoryless_baseline",
        {n: "summed over the steps" for n in BASE},
        [("np.mean(entropies)", "np.sum(entropies)")],
    ),
    M(
        A,
        "baseline: counts divided by n_classes",
        "memoryless_baseline",
        {n: "divided by n_classes" for n in BASE},
        [("minlength=n_classes) / B", "minlength=n_classes) / n_classes")],
    ),
    M(
        A,
        "baseline: uniform over all classes",
        "memoryless_baseline",
        {n: "uniform guess" for n in BASE},
        code="def memoryless_baseline(targets, n_classes):\n    return float(np.log(n_classes))\n",
    ),
    M(
        A,
        "params: one bias per gate block",
        "n_params",
        {n: "bias_ih and bias_hh" for n in NP},
        [("H * H + 2 * H", "H * H + H")],
    ),
    M(
        A,
        "params: the biases of one gate block only",
        "n_params",
        {"test_n_params_gated": "one gate block only"},
        [("K * (H * D + H * H + 2 * H)", "K * (H * D + H * H) + 2 * H")],
    ),
    M(
        A,
        "params: read-out forgotten",
        "n_params",
        {n: "read-out is missing" for n in NP},
        [(" + n_out * (H + 1)", "")],
    ),
    M(
        A,
        "params: read-out bias forgotten",
        "n_params",
        {n: "bias (n_out entries)" for n in NP},
        [("n_out * (H + 1)", "n_out * H")],
    ),
    M(
        A,
        "params: recurrent weights forgotten",
        "n_params",
        {n: "recurrent weights are missing" for n in NP},
        [("H * D + H * H + 2 * H", "H * D + 2 * H")],
    ),
    M(
        A,
        "params: LSTM and GRU gate counts swapped",
        "n_params",
        {"test_n_params_gated": "gate block"},
        [('{"rnn": 1, "lstm": 4, "gru": 3}', '{"rnn": 1, "lstm": 3, "gru": 4}')],
    ),
]

VARIANTS = [
    M(
        A,
        "copy task from blocks with np.concatenate",
        "copy_task",
        {},
        code="def copy_task(data, T, n_symbols):\n    n_copy, B = data.shape\n"
        "    blank = lambda n: np.zeros((n, B), dtype=int)\n"
        "    delim = np.full((1, B), n_symbols + 1)\n"
        "    inputs = np.concatenate([data, blank(T - 1), delim, blank(n_copy)])\n"
        "    targets = np.concatenate([blank(T + n_copy), data])\n"
        "    return inputs.astype(np.int32), targets.astype(np.int32)\n",
    ),
    M(
        A,
        "baseline as the cross-entropy of the frequency predictor",
        "memoryless_baseline",
        {},
        code="def memoryless_baseline(targets, n_classes):\n    T, B = targets.shape\n"
        "    total = 0.0\n    for t in range(T):\n"
        "        values, counts = np.unique(targets[t], return_counts=True)\n"
        "        freq = dict(zip(values, counts / B))\n"
        "        total += -sum(np.log(freq[y]) for y in targets[t])\n"
        "    return total / (T * B)\n",
    ),
    M(
        A,
        "params summed part by part, returned as a numpy integer",
        "n_params",
        {},
        code="def n_params(kind, D, H, n_out):\n"
        "    gates = {'rnn': 1, 'gru': 3, 'lstm': 4}[kind]\n"
        "    parts = [gates * H * D, gates * H * H, gates * H, gates * H, n_out * H, n_out]\n"
        "    return np.int64(sum(parts))\n",
    ),
]


# ---------------------------------------------------------------- the reference solution


def test_copy_task_equals_the_course_package(ref):
    from bptt.tasks import copy_batch

    ns = ref(A)
    for T, B, n_symbols, n_copy in [(10, 4, 8, 10), (1, 3, 2, 1), (7, 1, 5, 3)]:
        inputs, targets = copy_batch(T, B, np.random.default_rng(T), n_symbols, n_copy)
        data = inputs[:n_copy].copy()
        got_in, got_tg = ns["copy_task"](data, T, n_symbols)
        assert np.array_equal(got_in, inputs) and np.array_equal(got_tg, targets)
        assert np.array_equal(data, inputs[:n_copy])


def test_baseline_against_torch_and_the_chapter(ref):
    """The entropy oracle, the closed form of bptt.tasks.copy_baseline on balanced data, and a
    sampled batch that approaches it from below."""
    from bptt.tasks import copy_baseline, copy_batch

    ns = ref(A)
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, size=(9, 30))
    targets[2] = 3  # one class only at a step
    p = torch.tensor(np.stack([np.bincount(r, minlength=6) / 30 for r in targets]))
    want = float(torch.distributions.Categorical(probs=p).entropy().mean())
    assert abs(ns["memoryless_baseline"](targets, 6) - want) < 1e-12
    for T in (1, 10, 100):
        data = (np.arange(16)[None, :] + np.arange(10)[:, None]) % 8 + 1
        _, tg = ns["copy_task"](data, T, 8)
        assert abs(ns["memoryless_baseline"](tg, 10) - copy_baseline(T)) < 1e-12
    _, sampled = copy_batch(10, 20_000, np.random.default_rng(1))
    got = ns["memoryless_baseline"](sampled, 10)
    assert copy_baseline(10) - 1e-3 < got < copy_baseline(10)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_n_params_against_torch_and_the_course_package(ref, kind):
    from bptt.experiments import make_model
    from bptt.experiments import n_params as course_n_params

    ns = ref(A)
    for D, H, n_out in [(2, 64, 1), (10, 3, 10), (1, 1, 1)]:
        model = make_model(kind, D, H, n_out, seed=0)
        count = sum(p.numel() for p in model.parameters())
        assert ns["n_params"](kind, D, H, n_out) == count == course_n_params(kind, D, H, n_out)
