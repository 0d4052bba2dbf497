"""``make bench``: measure the course's costs in one run and write one report.

Writes ``bench/results.json`` (raw numbers) and ``bench/report.md`` (tables).
Every figure in one report comes from the same run on the same machine, so
ratios are meaningful even where absolute times are noisy. Benchmarks are not
tests: nothing here asserts a time.

    python -m bptt.tools.bench [--only SECTION ...] [--out bench]

Sections: ``bptt`` (numpy BPTT vs torch.autograd, GFLOP/s), ``memory`` (full,
truncated and checkpointed BPTT), ``grading`` (seconds per notebook, 1 vs N
workers), ``book`` (cold and cached build), ``make_test`` (wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from bptt.backward import rnn_backward
from bptt.rnn import init_params, rnn_forward

ROOT = Path(__file__).resolve().parents[2]
BPTT_SIZES = [(100, 32, 64, 128), (50, 8, 32, 64), (200, 64, 128, 256)]  # (T, B, D, H)


def best_of(fn: Callable[[], object], repeats: int = 5, min_seconds: float = 0.2) -> float:
    """Fastest of ``repeats`` timings of ``fn()`` after a warm-up, each looped >= min_seconds."""
    fn()
    start, loops = time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds:
        fn()
        loops += 1
    loops = max(loops, 1)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def rnn_flops(T: int, B: int, D: int, H: int) -> float:
    """Multiply-adds x 2 of one forward + backward pass of the tanh RNN layer.

    Forward: ``x W_xh^T`` and ``h W_hh^T`` per step, 2BH(D + H) flops. Backward:
    ``dx``, ``dh_prev``, ``dW_xh`` and ``dW_hh``, twice that. Elementwise work
    (tanh, its derivative) is O(TBH) and left out.
    """
    return 3 * T * 2 * B * H * (D + H)


def matmul_peak(dtype, n: int = 2048) -> float:
    """GFLOP/s of one large square matmul: the practical ceiling for this machine."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    return 2 * n**3 / best_of(lambda: a @ a, repeats=3) / 1e9


def bench_bptt() -> dict:
    """Manual numpy BPTT vs torch.autograd on ``nn.RNN``, forward + backward of the RNN layer."""
    torch.manual_seed(0)
    rows = []
    for T, B, D, H in BPTT_SIZES:
        rng = np.random.default_rng(0)
        row = {"T": T, "B": B, "D": D, "H": H, "gflop": rnn_flops(T, B, D, H) / 1e9}
        repeats = 5 if T * B * H * (D + H) < 1e8 else 3  # the largest size takes seconds
        for dtype, tdtype, tag in (
            (np.float64, torch.float64, "f64"),
            (np.float32, torch.float32, "f32"),
        ):
            p = {k: v.astype(dtype) for k, v in init_params(D, H, 1, rng).items()}
            xs = rng.standard_normal((T, B, D)).astype(dtype)
            h0 = np.zeros((B, H), dtype)
            dhs = rng.standard_normal((T, B, H)).astype(dtype)

            def numpy_step(p=p, xs=xs, h0=h0, dhs=dhs):
                hs = rnn_forward(xs, h0, p["W_xh"], p["W_hh"], p["b_h"])
                return rnn_backward(dhs, xs, h0, hs, p["W_xh"], p["W_hh"])

            rnn = torch.nn.RNN(D, H, dtype=tdtype)
            txs = torch.from_numpy(xs).requires_grad_()
            tdhs = torch.from_numpy(dhs)

            def torch_step(rnn=rnn, txs=txs, tdhs=tdhs):
                rnn.zero_grad(set_to_none=True)
                txs.grad = None
                out, _ = rnn(txs)
                out.backward(tdhs)

            row[f"numpy_{tag}_s"] = best_of(numpy_step, repeats)
            row[f"torch_{tag}_s"] = best_of(torch_step, repeats)
            row[f"numpy_{tag}_gflops"] = row["gflop"] / row[f"numpy_{tag}_s"]
            row[f"torch_{tag}_gflops"] = row["gflop"] / row[f"torch_{tag}_s"]
            row[f"ratio_{tag}"] = row[f"numpy_{tag}_s"] / row[f"torch_{tag}_s"]
        rows.append(row)
    return {
        "sizes": rows,
        "matmul_peak_gflops": {"f64": matmul_peak(np.float64), "f32": matmul_peak(np.float32)},
        "torch_threads": torch.get_num_threads(),
    }


def bench_memory() -> dict:
    """Peak memory and time of full, truncated (k=32) and checkpointed BPTT (numpy)."""
    from bptt.cost import measure_strategies

    return {"rows": [measure_strategies(T) for T in (100, 1000)]}


def bench_grading() -> dict:
    """Seconds per notebook when grading a class of reference submissions, 1 vs N workers."""
    from grader.bench import grading_throughput

    workers = os.cpu_count() or 1
    return {"runs": [grading_throughput(w) for w in sorted({1, workers})]}


def _chapter_seconds(log: str) -> dict[str, float]:
    found = re.findall(r"book/(\w+)\.md: Executed notebook in ([\d.]+) seconds", log)
    return {name: float(seconds) for name, seconds in found}


def bench_book() -> dict:
    """A cold build (empty execution cache) and a cached rebuild of the whole book."""
    out = Path(tempfile.mkdtemp(prefix="bench-book-"))
    jb = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(ROOT),
        "--all",
        "--path-output",
        str(out),
        "-n",
        "--keep-going",
    ]
    try:
        runs = {}
        for name in ("cold", "cached"):
            start = time.perf_counter()
            done = subprocess.run(jb, capture_output=True, text=True, cwd=ROOT)
            runs[name] = {
                "seconds": time.perf_counter() - start,
                "exit_code": done.returncode,
                "chapters_executed_s": _chapter_seconds(done.stdout + done.stderr),
            }
        return runs
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bench_make_test() -> dict:
    start = time.perf_counter()
    # Run it as a user would from a shell: `make bench`'s own MAKEFLAGS/MAKELEVEL would
    # otherwise leak into `make test` and the make calls its tests start.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(
        ["make", "--no-print-directory", "test"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    result = {"seconds": time.perf_counter() - start, "exit_code": done.returncode}
    if done.returncode:  # keep the evidence: a failing run's time means little without it
        result["output_tail"] = (done.stdout + done.stderr)[-4000:]
    return result


SECTIONS = {
    "bptt": bench_bptt,
    "memory": bench_memory,
    "grading": bench_grading,
    "book": bench_book,
    "make_test": bench_make_test,
}


def machine() -> dict:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "blas_env": {
            k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL"))
        },
    }


def render(results: dict) -> str:
    """The Markdown report."""
    m = results["machine"]
    lines = [
        "# Benchmark report",
        "",
        f"Measured {m['date']} on {m['cpus']} CPUs ({m['processor']}), Python {m['python']}, "
        f"numpy {m['numpy']}, torch {m['torch']}; BLAS environment {m['blas_env'] or 'default'}. "
        "All numbers in this report come from this one run (`make bench`); compare ratios, "
        "not absolute times, across machines.",
        "",
    ]
    for name, section in results["sections"].items():
        if "error" in section:
            lines += [f"## {name}", "", f"Not measured: {section['error']}", ""]
        else:
            lines += RENDERERS[name](section) + [""]
    return "\n".join(lines)


def _render_bptt(s: dict) -> list[str]:
    peak = s["matmul_peak_gflops"]
    lines = [
        "## Manual numpy BPTT vs torch.autograd (`nn.RNN`), forward + backward",
        "",
        f"Large-matmul peak on this machine: {peak['f64']:.1f} GFLOP/s (float64), "
        f"{peak['f32']:.1f} GFLOP/s (float32); torch uses {s['torch_threads']} threads. "
        "Ratio = numpy time / torch time (below 1: numpy is faster).",
        "",
        "| T | B | D | H | dtype | numpy ms | torch ms | ratio | numpy GFLOP/s "
        "| torch GFLOP/s | numpy % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["sizes"]:
        for tag in ("f64", "f32"):
            lines.append(
                f"| {r['T']} | {r['B']} | {r['D']} | {r['H']} | {tag} "
                f"| {r[f'numpy_{tag}_s'] * 1e3:.2f} | {r[f'torch_{tag}_s'] * 1e3:.2f} "
                f"| {r[f'ratio_{tag}']:.2f} | {r[f'numpy_{tag}_gflops']:.1f} "
                f"| {r[f'torch_{tag}_gflops']:.1f} "
                f"| {100 * r[f'numpy_{tag}_gflops'] / peak[tag]:.0f} % |"
            )
    return lines


def _render_memory(s: dict) -> list[str]:
    lines = ["## Full, truncated and checkpointed BPTT: time and peak memory (numpy, float64)", ""]
    rows = s["rows"]
    keys = [k for k in rows[0] if k != "T"]
    lines += ["| T | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in rows:
        cells = [f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys]
        lines.append(f"| {r['T']} | " + " | ".join(cells) + " |")
    return lines


def _render_grading(s: dict) -> list[str]:
    lines = [
        "## Grading throughput",
        "",
        "| workers | notebooks | seconds | seconds per notebook | notebooks per minute |",
        "|---|---|---|---|---|",
    ]
    for r in s["runs"]:
        lines.append(
            f"| {r['workers']} | {r['notebooks']} | {r['seconds']:.1f} "
            f"| {r['seconds'] / r['notebooks']:.2f} | {60 * r['notebooks'] / r['seconds']:.1f} |"
        )
    if len(s["runs"]) == 2:
        one, many = s["runs"]
        lines += [
            "",
            f"Speed-up with {many['workers']} workers: "
            f"{one['seconds'] / one['notebooks'] / (many['seconds'] / many['notebooks']):.2f}x.",
        ]
    return lines


def _render_book(s: dict) -> list[str]:
    cold, cached = s["cold"], s["cached"]
    lines = [
        "## The executed book",
        "",
        f"Cold build (empty execution cache): {cold['seconds']:.1f} s; cached rebuild: "
        f"{cached['seconds']:.1f} s ({cold['seconds'] / cached['seconds']:.1f}x faster). "
        f"Exit codes {cold['exit_code']} and {cached['exit_code']}.",
        "",
        "| chapter | executed in (s), cold build |",
        "|---|---|",
    ]
    for name, seconds in cold["chapters_executed_s"].items():
        lines.append(f"| {name} | {seconds:.1f} |")
    total = sum(cold["chapters_executed_s"].values())
    lines.append(f"| **all chapters** | **{total:.1f}** |")
    return lines


def _render_make_test(s: dict) -> list[str]:
    lines = ["## `make test`", "", f"Wall time {s['seconds']:.0f} s (exit code {s['exit_code']})."]
    if "output_tail" in s:
        lines += ["", "It failed; the end of its output:", "", "```", s["output_tail"], "```"]
    return lines


RENDERERS = {
    "bptt": _render_bptt,
    "memory": _render_memory,
    "grading": _render_grading,
    "book": _render_book,
    "make_test": _render_make_test,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    results = {"machine": machine(), "sections": {}}
    for name in args.only:
        print(f"bench: {name} ...", flush=True)
        start = time.perf_counter()
        try:
            results["sections"][name] = SECTIONS[name]()
        except Exception as error:  # a missing piece is reported, the rest still runs
            results["sections"][name] = {"error": f"{type(error).__name__}: {error}"}
        print(f"bench: {name} done in {time.perf_counter() - start:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "report.md").write_text(render(results) + "\n")
    print(f"wrote {args.out / 'report.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
