"""``make bench``: measure the course's costs in one run and write one report.

Writes ``bench/results.json`` (raw numbers) and ``bench/report.md`` (tables).
Every figure in one report comes from the same run on the same machine, so
ratios are meaningful even where absolute times are noisy. Benchmarks are not
tests: nothing here asserts a time.

    python -m bptt.tools.bench [--only SECTION ...] [--out bench]

Sections: ``bptt_speed`` (textbook, fast and torch BPTT against the machine's limit,
``bptt.speed``), ``memory`` (full,
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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def bench_bptt_speed(unset_openblas_env: bool = True) -> dict:
    """Textbook, fast and torch BPTT against the machine's limit, per size and dtype.

    Runs ``python -m bptt.speed`` in its own process. These machines set OPENBLAS_CORETYPE and
    OPENBLAS_L2_SIZE, which make current numpy pick slower kernels; they are read when OpenBLAS
    loads, so the process starts without both (``unset_openblas_env``), and the report says so.
    """
    from bptt.speed import OPENBLAS_ENV

    env = dict(os.environ)
    unset = [k for k in OPENBLAS_ENV if k in env] if unset_openblas_env else []
    for k in unset:
        del env[k]
    done = subprocess.run(
        [sys.executable, "-m", "bptt.speed"], capture_output=True, text=True, env=env, check=True
    )
    result = json.loads(done.stdout)
    return {"rows": result["bptt_speed"], "blas": result["blas"], "unset": unset}


def bench_memory() -> dict:
    """Peak memory and time of full, truncated (k=32) and checkpointed BPTT (numpy)."""
    from bptt.cost import measure_strategies

    return {"rows": [measure_strategies(T) for T in (100, 1000)]}


def bench_grading() -> dict:
    """Seconds per notebook when grading a class of reference submissions, 1 vs N workers."""
    from grader.bench import grading_throughput

    workers = os.cpu_count() or 1
    # A small class: six students, each handing in every assignment (fixed costs such as the
    # gradebook's creation are shared by the batch, as in a real class).
    return {"runs": [grading_throughput(w, students=6) for w in sorted({1, workers})]}


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
    "bptt_speed": bench_bptt_speed,
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


def _render_bptt_speed(s: dict) -> list[str]:
    blas = ", ".join(
        f"{b['internal_api']} {b['version'] or ''} ({b['architecture'] or '-'}, "
        f"{b['num_threads']} threads)"
        for b in s["blas"]["numpy_blas"]
    )
    unset = " and ".join(s["unset"]) or "nothing"
    lines = [
        "## BPTT at the speed of the machine: textbook, fast, torch and the limit",
        "",
        f"Forward + backward of the tanh RNN layer. numpy ran on {blas}; torch on "
        f"{s['blas']['torch_threads']} threads. The measuring process unset {unset}. "
        "The limit is the four hoisted GEMMs timed alone plus the sequential steps alone "
        "(`bptt.speed`). Goals: fast/torch <= 0.67, fast/limit <= 1.5.",
        "",
        "| T | B | D | H | dtype | textbook ms | fast ms | torch ms | limit ms "
        "| textbook/torch | fast/torch | fast/limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['T']} | {r['B']} | {r['D']} | {r['H']} | {r['dtype']} "
            f"| {r['textbook_ms']:.2f} | {r['fast_ms']:.2f} | {r['torch_ms']:.2f} "
            f"| {r['limit_ms']:.2f} | {r['textbook_ms'] / r['torch_ms']:.2f} "
            f"| {r['fast_ms'] / r['torch_ms']:.2f} | {r['fast_ms'] / r['limit_ms']:.2f} |"
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
    "bptt_speed": _render_bptt_speed,
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
    # The per-size rows also stand at the top level, where other tools look for them.
    results["bptt_speed"] = results["sections"].get("bptt_speed", {}).get("rows", [])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "report.md").write_text(render(results) + "\n")
    print(f"wrote {args.out / 'report.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
