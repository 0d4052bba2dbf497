"""Train tanh RNN, LSTM and GRU on the adding and copy tasks at matched parameter counts.

The chapter "Long-range memory, measured" (book/memory.md) runs a small version of
this live; the full grid (several lengths, seeds, the copy task) runs as a script,

    python -m bptt.experiments --out bptt/data/adding_results.json

(``make experiments``), and writes a JSON file that the chapter plots.
Everything is seeded and runs on the CPU with one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bptt.checks import check_positive_int
from bptt.tasks import ADDING_BASELINE_MSE, adding_batch, copy_baseline, copy_batch

# The full grid's results, committed with the book (the chapter plots them).
# Package data, so that the chapter also runs where the package is pip-installed (Colab).
RESULTS = Path(__file__).resolve().parent / "data" / "adding_results.json"
KINDS = ("rnn", "lstm", "gru")
N_GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # row blocks in weight_ih_l0 / weight_hh_l0
MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


class SequenceModel(torch.nn.Module):
    """A one-layer recurrent module (``.rnn``) followed by a linear read-out (``.readout``).

    ``forward(xs)`` maps inputs (T, B, D) to outputs (T, B, n_out), one per step.
    """

    def __init__(self, kind: str, D: int, H: int, n_out: int):
        super().__init__()
        if kind not in MODULES:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.rnn = MODULES[kind](D, H)
        self.readout = torch.nn.Linear(H, n_out)

    def forward(self, xs):
        hs, _ = self.rnn(xs)
        return self.readout(hs)


def n_params(kind: str, D: int, H: int, n_out: int) -> int:
    """Parameter count of ``SequenceModel(kind, D, H, n_out)``, PyTorch's two biases included.

    Each gate block has ``H (D + H)`` weights and two biases of size H; the
    read-out has ``n_out (H + 1)``.
    """
    if kind not in N_GATES:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return N_GATES[kind] * (H * (D + H) + 2 * H) + n_out * (H + 1)


def matched_hidden_sizes(D: int, n_out: int, H_lstm: int) -> dict[str, int]:
    """For each kind, the H whose parameter count is closest to an LSTM's with ``H_lstm`` units."""
    target = n_params("lstm", D, check_positive_int("H_lstm", H_lstm), n_out)
    return {
        kind: min(
            range(1, 4 * H_lstm + 1),
            key=lambda H, kind=kind: abs(n_params(kind, D, H, n_out) - target),
        )
        for kind in KINDS
    }


def make_model(
    kind: str, D: int, H: int, n_out: int, seed: int, forget_bias: float | None = None
) -> SequenceModel:
    """A float32 ``SequenceModel`` with PyTorch's default initialisation drawn after ``seed``.

    ``forget_bias`` (LSTM only) sets the forget gate's total bias
    ``b_ih + b_hh`` to that value, as Jozefowicz et al. (2015) recommend with 1.
    """
    torch.manual_seed(seed)
    model = SequenceModel(kind, D, H, n_out)
    if forget_bias is not None:
        if kind != "lstm":
            raise ValueError(f"forget_bias applies to kind='lstm' only, got kind={kind!r}")
        with torch.no_grad():
            model.rnn.bias_ih_l0[H : 2 * H] = forget_bias  # rows [i; f; g; o]
            model.rnn.bias_hh_l0[H : 2 * H] = 0.0
    return model


def configure_torch() -> None:
    """One thread, and flush denormal floats to zero, for every training run of this module.

    The matrices are small, so a second thread costs more in synchronisation
    than it saves (and on a shared machine it can cost much more). A
    saturated tanh RNN back-propagates gradients so small that they become
    denormal floats, which the CPU handles many times slower: flushing them
    to zero kept the RNN's steps from slowing down several-fold.
    """
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _tensor(array):
    return torch.as_tensor(array, dtype=torch.float32)


def train(
    model: SequenceModel,
    task: str,
    T: int,
    steps: int,
    seed: int,
    *,
    lr: float = 3e-3,
    clip: float = 1.0,
    batch: int = 64,
    eval_every: int = 50,
    n_test: int = 1000,
    threshold: float | None = None,
    stop_when_solved: bool = False,
) -> dict:
    """Train ``model`` with Adam and gradient-norm clipping on ``task`` ("adding" or "copy").

    Each step draws a fresh batch from ``numpy.random.default_rng(seed)``; every
    ``eval_every`` steps the loss on a fixed test set (its own seed, the same for
    every model) is recorded. Adding: mean squared error of the last output.
    Copy: cross-entropy per step, in nats. ``threshold`` defines "solved"
    (default: MSE 0.01 for adding, a tenth of the memoryless baseline for copy).
    Runs with one thread (the previous setting is restored afterwards).
    Returns a dict with the curve (``steps``, ``test_loss``), ``steps_to_solve``
    (first evaluation below the threshold, or None), ``final_loss``,
    ``sec_per_step`` (training steps only, evaluation excluded), ``n_params``, and
    the gradient norm before clipping (median, maximum, fraction of steps clipped).
    """
    steps = check_positive_int("steps", steps)
    eval_every = check_positive_int("eval_every", eval_every)
    if task == "adding":
        make_batch = lambda n, rng: adding_batch(T, n, rng)  # noqa: E731
        threshold = 0.01 if threshold is None else threshold
        baseline = ADDING_BASELINE_MSE
    elif task == "copy":
        make_batch = lambda n, rng: copy_batch(T, n, rng)  # noqa: E731
        baseline = copy_baseline(T)
        threshold = 0.1 * baseline if threshold is None else threshold
    else:
        raise ValueError(f"task must be 'adding' or 'copy', got {task!r}")

    def loss_of(inputs, targets):
        if task == "adding":
            return ((model(_tensor(inputs))[-1, :, 0] - _tensor(targets)) ** 2).mean()
        one_hot = torch.nn.functional.one_hot(torch.as_tensor(inputs), 10).float()
        logits = model(one_hot)
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), torch.as_tensor(targets).reshape(-1)
        )

    test = make_batch(n_test, np.random.default_rng(10_000 + T))
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    curve_steps, curve_loss, grad_norms, seconds, solved = [], [], [], 0.0, None
    with _one_thread():  # see configure_torch; restored afterwards
        for step in range(steps + 1):
            if step % eval_every == 0 or step == steps:
                with torch.no_grad():
                    test_loss = float(loss_of(*test))
                curve_steps.append(step)
                curve_loss.append(test_loss)
                if solved is None and test_loss < threshold:
                    solved = step
                    if stop_when_solved:
                        break
            if step == steps:
                break
            start = time.perf_counter()
            loss = loss_of(*make_batch(batch, rng))
            optimiser.zero_grad()
            loss.backward()
            # the norm *before* clipping: how often (and how far) gradients explode
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
            optimiser.step()
            seconds += time.perf_counter() - start
    trained = curve_steps[-1]
    return {
        "task": task,
        "T": T,
        "kind": model.kind,
        "H": model.rnn.hidden_size,
        "seed": seed,
        "n_params": sum(p.numel() for p in model.parameters()),
        "steps": curve_steps,
        "test_loss": curve_loss,
        "baseline": baseline,
        "threshold": threshold,
        "steps_to_solve": solved,
        "final_loss": curve_loss[-1],
        "sec_per_step": seconds / max(trained, 1),
        "grad_norm_median": float(np.median(grad_norms)) if grad_norms else None,
        "grad_norm_max": max(grad_norms, default=None),
        "clipped_fraction": float(np.mean(np.array(grad_norms) > clip)) if grad_norms else None,
    }


def run_grid(
    task: str, lengths, seeds, steps: int, H_lstm: int, variants=None, log=print
) -> list[dict]:
    """Train every (length, seed, variant) of ``task``; return the list of ``train`` results.

    ``variants`` maps a name to ``(kind, forget_bias)``; by default the three
    kinds at PyTorch's default initialisation, with H matched to an LSTM of
    ``H_lstm`` units.
    """
    D, n_out = (2, 1) if task == "adding" else (10, 10)
    sizes = matched_hidden_sizes(D, n_out, H_lstm)
    variants = variants or {kind: (kind, None) for kind in KINDS}
    results = []
    for T in lengths:
        for seed in seeds:
            for name, (kind, forget_bias) in variants.items():
                model = make_model(kind, D, sizes[kind], n_out, seed, forget_bias)
                result = train(model, task, T, steps, seed)
                result["variant"], result["forget_bias"] = name, forget_bias
                results.append(result)
                log(
                    f"{task} T={T:<4} seed={seed} {name:<9} H={result['H']:<4} "
                    f"params={result['n_params']:<6} solved at {result['steps_to_solve']}, "
                    f"final {result['final_loss']:.4f}, {1e3 * result['sec_per_step']:.1f} ms/step",
                    flush=True,
                )
    return results


def race(T: int, max_steps: int, seed: int = 0, H_lstm: int = 64, **train_kwargs) -> dict:
    """The chapter's live run: the three kinds on the adding problem at one length.

    LSTM and GRU train until solved (at most ``max_steps``); the tanh RNN then
    gets as many steps as the slower of them used, so it is never given less.
    Returns ``{kind: (result, model_at_init, trained_model)}``.
    """
    sizes = matched_hidden_sizes(2, 1, H_lstm)
    out = {}
    for kind in ("lstm", "gru", "rnn"):
        steps = (
            max_steps
            if kind != "rnn"
            else max(out["lstm"][0]["steps"][-1], out["gru"][0]["steps"][-1])
        )
        model = make_model(kind, 2, sizes[kind], 1, seed)
        at_init = copy.deepcopy(model)
        result = train(
            model, "adding", T, steps, seed, stop_when_solved=kind != "rnn", **train_kwargs
        )
        out[kind] = (result, at_init, model)
    return {kind: out[kind] for kind in KINDS}


def summarise(runs: list[dict]) -> list[dict]:
    """One row per (task, T, variant) of a grid: sizes, steps to solve per seed, means.

    ``final_loss`` is the mean over seeds, ``ms_per_step`` the median,
    ``clipped`` the mean fraction of steps whose gradient norm exceeded the clip
    and ``grad_norm_max`` the largest gradient norm (before clipping) of any seed.
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["task"], run["T"], run["variant"]), []).append(run)
    rows = []
    for (task, T, variant), group in groups.items():
        rows.append(
            {
                "task": task,
                "T": T,
                "variant": variant,
                "H": group[0]["H"],
                "n_params": group[0]["n_params"],
                "steps_to_solve": [r["steps_to_solve"] for r in group],
                "final_loss": float(np.mean([r["final_loss"] for r in group])),
                "ms_per_step": 1e3 * float(np.median([r["sec_per_step"] for r in group])),
                "clipped": float(np.mean([r["clipped_fraction"] for r in group])),
                "grad_norm_max": max(r["grad_norm_max"] for r in group),
            }
        )
    return rows


def load_results(path: Path | str = RESULTS) -> dict:
    """The grid's results file (``{"meta": ..., "runs": [...]}``), with a useful error if absent.

    It ships as package data, so a ``pip install`` of ``bptt`` (as on Colab)
    has it too.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: it ships with the course package; "
            "run `make experiments` to recreate it"
        )
    return json.loads(path.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--copy-lengths", type=int, nargs="*", default=[])
    parser.add_argument("--copy-steps", type=int, default=10000)
    parser.add_argument("--copy-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--H-lstm", type=int, default=64)
    args = parser.parse_args(argv)
    configure_torch()
    started, load_at_start = time.perf_counter(), os.getloadavg()
    variants = {
        "rnn": ("rnn", None),
        "lstm": ("lstm", None),
        "lstm_fb1": ("lstm", 1.0),
        "gru": ("gru", None),
    }
    runs = run_grid("adding", args.lengths, args.seeds, args.steps, args.H_lstm, variants)
    if args.copy_lengths:
        runs += run_grid(
            "copy", args.copy_lengths, args.copy_seeds, args.copy_steps, args.H_lstm, variants
        )
    meta = {
        "command": "python -m bptt.experiments " + " ".join(argv or sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": 1,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    print(f"wrote {len(runs)} runs to {args.out} in {meta['total_seconds']} s")


if __name__ == "__main__":
    main()
