"""Synthetic long-memory tasks: the adding problem and the copy (memory) task.

Both are generated afresh from a seeded ``numpy`` generator, sequence-first
like every array in this book, and both have a known "memoryless" baseline,
the loss of the best model that ignores what it would have to remember.
"""

from __future__ import annotations

import numpy as np

from bptt.checks import check_positive_int

# Predicting the mean, 1, for a sum of two independent U[0, 1] numbers costs
# its variance: Var(u1 + u2) = 1/12 + 1/12.
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_batch(T: int, B: int, rng: np.random.Generator):
    """B adding-problem sequences of length T (Le, Jaitly & Hinton 2015 form).

    Returns ``xs (T, B, 2)`` and ``targets (B,)``, float64. Channel 0 holds
    numbers drawn from U[0, 1]; channel 1 is 0 except at exactly two marked
    steps, one drawn uniformly from the first half and one from the second
    half, so the first marked number must be held for at least T/2 steps.
    The target is the sum of the two marked numbers.
    """
    T, B = check_positive_int("T", T), check_positive_int("B", B)
    if T < 2:
        raise ValueError(f"T must be at least 2 (two marked steps), got {T}")
    values = rng.uniform(0.0, 1.0, size=(T, B))
    first = rng.integers(0, T // 2, size=B)
    second = rng.integers(T // 2, T, size=B)
    marks = np.zeros((T, B))
    cols = np.arange(B)
    marks[first, cols] = 1.0
    marks[second, cols] = 1.0
    targets = values[first, cols] + values[second, cols]
    return np.stack([values, marks], axis=-1), targets


def copy_batch(T: int, B: int, rng: np.random.Generator, n_symbols: int = 8, n_copy: int = 10):
    """B copy-task sequences with delay T (Arjovsky, Shah & Bengio 2016 form).

    Symbols are integers: 0 is the blank, 1..n_symbols the data, n_symbols + 1
    the delimiter. The input is ``n_copy`` random data symbols, T - 1 blanks,
    the delimiter and ``n_copy`` blanks (length T + 2 n_copy); the target is
    blanks for T + n_copy steps, then the ``n_copy`` data symbols.
    Returns ``inputs, targets``, both int64 of shape (T + 2 n_copy, B).
    """
    T, B = check_positive_int("T", T), check_positive_int("B", B)
    n_symbols = check_positive_int("n_symbols", n_symbols)
    n_copy = check_positive_int("n_copy", n_copy)
    data = rng.integers(1, n_symbols + 1, size=(n_copy, B))
    inputs = np.zeros((T + 2 * n_copy, B), dtype=np.int64)
    targets = np.zeros_like(inputs)
    inputs[:n_copy] = data
    inputs[T + n_copy - 1] = n_symbols + 1
    targets[T + n_copy :] = data
    return inputs, targets


def copy_baseline(T: int, n_symbols: int = 8, n_copy: int = 10) -> float:
    """Cross-entropy per step (nats) of the memoryless strategy for ``copy_batch``.

    Predict the blank with certainty for T + n_copy steps (cost 0), then a
    uniform guess over the data symbols for n_copy steps (log n_symbols each).
    """
    T = check_positive_int("T", T)
    n_symbols = check_positive_int("n_symbols", n_symbols)
    n_copy = check_positive_int("n_copy", n_copy)
    return n_copy * float(np.log(n_symbols)) / (T + 2 * n_copy)
