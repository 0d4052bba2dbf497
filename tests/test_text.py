"""The character corpus, its vocabulary, batching and sampling."""

import numpy as np
import pytest

from bptt.rnn import init_params
from bptt.text import Vocab, batch_windows, load_sonnets, one_hot, sample


def test_corpus_ships_with_the_package():
    text = load_sonnets()
    assert text.startswith("From fairest creatures")
    assert "Shall I compare thee to a summer's day?" in text
    assert len(text) > 5000


def test_vocab_round_trip():
    text = load_sonnets()
    vocab = Vocab.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert list(vocab.chars) == sorted(set(text))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.encode("§")


def test_one_hot():
    x = one_hot(np.array([[0, 2], [1, 1]]), 3)
    assert x.shape == (2, 2, 3)
    np.testing.assert_array_equal(x.argmax(-1), [[0, 2], [1, 1]])
    np.testing.assert_array_equal(x.sum(-1), 1)
    with pytest.raises(ValueError, match="ids must lie in"):
        one_hot(np.array([3]), 3)
    with pytest.raises(ValueError, match="ids must be integers"):
        one_hot(np.array([0.5]), 3)


def test_batch_windows_targets_are_the_next_characters(rng):
    ids = np.arange(100)
    inputs, targets = batch_windows(ids, T=10, B=4, rng=rng)
    assert inputs.shape == targets.shape == (10, 4)
    np.testing.assert_array_equal(targets, inputs + 1)
    np.testing.assert_array_equal(np.diff(inputs, axis=0), 1)  # time runs down axis 0
    with pytest.raises(ValueError, match="at least T \\+ 1"):
        batch_windows(np.arange(5), T=5, B=1, rng=rng)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        batch_windows(ids, T=0, B=1, rng=rng)


def test_sample_is_reproducible_and_uses_the_vocab(rng):
    vocab = Vocab.from_text("abc ")
    params = init_params(4, 8, 4, rng)
    a = sample(params, vocab, "ab", 30, np.random.default_rng(0))
    b = sample(params, vocab, "ab", 30, np.random.default_rng(0))
    assert a == b and len(a) == 32 and a.startswith("ab") and set(a) <= set(vocab.chars)
    with pytest.raises(ValueError, match="prefix"):
        sample(params, vocab, "", 3, rng)
    with pytest.raises(ValueError, match="W_xh must have shape"):
        sample(init_params(5, 8, 4, rng), vocab, "a", 3, rng)
