"""The notes' six listings: stored verbatim, shown once each in the appendix, and runnable."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bptt import listings

ROOT = Path(__file__).resolve().parents[1]
APPENDIX = ROOT / "book" / "source_notes.md"
DOCUMENTS = ("bptt-overview.md", "bptt-derivation.md")  # Listings 1-2, then 3-6
CANDIDATES = (Path("/work/shared/source-notes"), ROOT.parent / "shared" / "source-notes")
SOURCES = next((p for p in CANDIDATES if all((p / d).exists() for d in DOCUMENTS)), None)
needs_sources = pytest.mark.skipif(SOURCES is None, reason="the source documents are not here")


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


@needs_sources
def test_each_listing_is_the_nth_python_block_of_the_source_documents():
    blocks = [b for d in DOCUMENTS for b in _python_blocks((SOURCES / d).read_text())]
    assert len(blocks) == len(listings.TITLES) == 6
    for n, block in enumerate(blocks, start=1):
        assert listings.source(n) == block, f"listing_{n}.py differs from the notes"


@needs_sources
def test_the_appendix_reproduces_every_line_of_prose():
    appendix = APPENDIX.read_text()
    for document in DOCUMENTS:
        text = re.sub(r"^```.*?^```", "", (SOURCES / document).read_text(), flags=re.M | re.S)
        for line in filter(str.strip, text.splitlines()):
            if line.startswith("#"):
                line = "#" + line  # headings move down one level
            elif "$$" in line and not line.strip().startswith("$$"):
                line = re.sub(r"\$\$(.+?)\$\$", r"$\1$", line)  # inline formulas: single $
            line = line.replace("Ã—", "×").rstrip()  # the mis-encoded times sign, repaired
            assert line in appendix, f"{document}: {line!r} is not in the appendix"
    assert "Ã" not in appendix.split("[^encoding]:")[0]


def test_the_appendix_shows_each_listing_once_under_its_label():
    appendix = APPENDIX.read_text()
    for n in listings.TITLES:
        assert appendix.count(f"(listing-{n})=") == 1
        include = f"```{{literalinclude}} ../bptt/data/listings/listing_{n}.py"
        assert appendix.count(include) == 1
        # The label sits right above its listing.
        assert f"(listing-{n})=\n{include}" in appendix
    assert appendix.count("literalinclude") == len(listings.TITLES)


def test_load_runs_listing_1_which_clips_a_norm_of_10_to_1():
    clip_gradients = listings.load(1, np=np)["clip_gradients"]
    grads = [np.array([6.0, 0.0]), np.array([[0.0], [8.0]])]  # global norm 10
    out = clip_gradients(grads, 1.0)
    assert out is grads  # in place, and returned
    assert np.sqrt(sum((g**2).sum() for g in out)) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(out[0], [0.6, 0.0], rtol=1e-5)  # the direction is kept
    small = [np.array([0.3, 0.4])]
    assert np.array_equal(clip_gradients(small, 1.0)[0], [0.3, 0.4])  # under the limit: untouched


def test_load_refuses_an_unknown_listing_and_names_missing_globals():
    with pytest.raises(ValueError, match="n must be one of"):
        listings.load(7)
    train_rnn = listings.load(2)["train_rnn"]  # defines fine; its helpers do not exist
    with pytest.raises(NameError, match="initialize_hidden_state"):
        train_rnn(None, [], 0.1)


def test_listing_4_on_logits_is_the_gradient_of_the_squared_error():
    """What the errata table says: bptt_manual, fed logits, differentiates 1/2 ||z_t - e_t||^2."""

    bptt_manual = listings.load(4, torch=torch)["bptt_manual"]
    gen = torch.Generator().manual_seed(0)
    T, D, H, V = 5, 3, 4, 6
    W_xh, W_hh, W_hy = (torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True)
                        for s in ((H, D), (H, H), (V, H)))  # fmt: skip
    b = torch.randn(H, generator=gen, dtype=torch.float64)
    xs = list(torch.randn(T, D, generator=gen, dtype=torch.float64))
    targets = list(torch.eye(V, dtype=torch.float64)[torch.randint(0, V, (T,), generator=gen)])
    hs = [torch.randn(H, generator=gen, dtype=torch.float64)]
    for x in xs:
        hs.append(torch.tanh(W_hh @ hs[-1] + W_xh @ x + b))
    ys = [W_hy @ h for h in hs[1:]]  # the derivation's model: y_t = W_hy h_t, a logit
    loss = sum(0.5 * ((y - e) ** 2).sum() for y, e in zip(ys, targets, strict=True))
    expected = torch.autograd.grad(loss, (W_xh, W_hh, W_hy))
    with torch.no_grad():
        got = bptt_manual(xs, hs, ys, targets, W_xh, W_hh, W_hy)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)
