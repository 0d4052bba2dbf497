"""The six code listings of the source notes, exactly as written, to run and to correct.

The notes the course was commissioned from (reproduced in the appendix "The source notes") hold
six listings. Each is stored once, verbatim, in ``bptt/data/listings/listing_<n>.py``: the
appendix shows that file and the chapters run it from here, so the two cannot disagree.

    1  clip_gradients           (overview: gradient clipping)
    2  train_rnn                (overview: pseudo-code for BPTT)
    3  the nn.RNN autograd demo (derivation: implementation in PyTorch)
    4  bptt_manual              (derivation: manual BPTT)
    5  truncated_bptt           (derivation: truncated BPTT)
    6  visualize_gradient_flow  (derivation: gradient-flow visualisation)
"""

from __future__ import annotations

from importlib import resources

TITLES = {
    1: "clip_gradients",
    2: "train_rnn",
    3: "nn.RNN and autograd",
    4: "bptt_manual",
    5: "truncated_bptt",
    6: "visualize_gradient_flow",
}


def source(n: int) -> str:
    """The text of Listing ``n`` (1 to 6), as the notes print it."""
    if n not in TITLES:
        raise ValueError(f"n must be one of {sorted(TITLES)}, got {n!r}")
    return resources.files("bptt").joinpath(f"data/listings/listing_{n}.py").read_text()


def load(n: int, **namespace) -> dict:
    """Run Listing ``n`` in a fresh namespace (pre-filled with ``namespace``) and return it.

    A listing that defines a function leaves it in the namespace, e.g.
    ``load(1)["clip_gradients"]``; names a listing uses but never defines (``np``,
    ``criterion``) are passed in as keywords.
    """
    scope = dict(namespace)
    exec(compile(source(n), f"<Listing {n}>", "exec"), scope)  # the notes' code, as written
    return scope
