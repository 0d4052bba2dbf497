"""A character-level corpus: load it, encode it, cut it into batches, sample from a model."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from bptt.checks import check_array, check_positive_int
from bptt.rnn import check_params, softmax


def load_sonnets() -> str:
    """Nine of Shakespeare's sonnets (public domain), shipped in ``bptt/data``."""
    return resources.files("bptt").joinpath("data/sonnets.txt").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Vocab:
    """The sorted set of characters of a text, with ``encode``/``decode``."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """String -> int64 ids of shape (len(text),)."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"text has characters outside the vocabulary: {unknown!r}")
        return np.array([index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in np.ravel(ids))


def one_hot(ids, V: int) -> np.ndarray:
    """Integer ids of any shape -> float64 one-hot vectors of shape ``ids.shape + (V,)``."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"ids must lie in [0, {V}), got {ids.min()}..{ids.max()}")
    return np.eye(V)[ids]


def batch_windows(ids, T: int, B: int, rng: np.random.Generator):
    """B random windows of the id stream: inputs (T, B) and next-character targets (T, B).

    Sequence-first, like every array in this book: ``inputs[t, b]`` is the
    character the model reads at step t of row b, ``targets[t, b]`` the one
    it must predict, i.e. ``ids[start_b + t + 1]``.
    """
    ids = check_array("ids", ids, "N", {})
    T, B = check_positive_int("T", T), check_positive_int("B", B)
    if len(ids) < T + 1:
        raise ValueError(f"ids must hold at least T + 1 = {T + 1} characters, got {len(ids)}")
    starts = rng.integers(0, len(ids) - T, size=B)
    window = starts[None, :] + np.arange(T)[:, None]
    return ids[window], ids[window + 1]


def sample(
    params: dict,
    vocab: Vocab,
    prefix: str,
    n: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
) -> str:
    """Feed ``prefix`` through a character RNN, then draw ``n`` more characters.

    ``params`` holds ``W_xh (H, V), W_hh, b_h, W_hy (V, H), b_y``; inputs are one-hot.
    """
    dims = check_params(params, {"D": len(vocab), "V": len(vocab)})
    if not prefix:
        raise ValueError("prefix must hold at least one character")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    V = len(vocab)
    h = np.zeros((1, dims["H"]))

    def step(i, h):  # one-hot input: x W_xh^T is just column i of W_xh
        return np.tanh(params["W_xh"][:, i] + h @ params["W_hh"].T + params["b_h"])

    for i in vocab.encode(prefix):
        h = step(i, h)
    out = []
    for _ in range(n):
        p = softmax((h @ params["W_hy"].T + params["b_y"]) / temperature)[0]
        i = rng.choice(V, p=p)
        out.append(vocab.chars[i])
        h = step(i, h)
    return prefix + "".join(out)
