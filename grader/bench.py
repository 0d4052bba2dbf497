"""Grading throughput for ``make bench``: a class of reference submissions, graded end to end."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from grader.batch import grade
from grader.layout import ROOT, assignments
from grader.rows import GRADED


def solved_notebook(assignment: str, notebook: str) -> dict:
    """The release notebook with its solution cells filled in from the source (markers removed)."""
    source = json.loads((ROOT / "solutions" / assignment / f"{notebook}.ipynb").read_text())
    release = json.loads((ROOT / "exercises" / assignment / f"{notebook}.ipynb").read_text())
    marker = ("### BEGIN SOLUTION", "### END SOLUTION")
    solutions = [
        c for c in source["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    ]
    answers = {
        c["id"]: [ln for ln in c["source"] if not ln.strip().startswith(marker)] for c in solutions
    }
    for cell in release["cells"]:
        cell["source"] = answers.get(cell.get("id"), cell["source"])
    return release


def grading_throughput(workers: int = 1, students: int = 2) -> dict:
    """Grade ``students`` copies of every reference solution; seconds for the whole batch.
    The grader's environment (one BLAS thread, no plots) is undone after, for what runs next."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    environ = dict(os.environ)
    try:
        for s, (assignment, notebooks) in (
            (s, a) for s in range(students) for a in assignments().items()
        ):
            for nb in notebooks:
                path = tmp / "submitted" / f"student{s:02d}" / assignment / f"{nb}.ipynb"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(solved_notebook(assignment, nb)))
        start = time.perf_counter()
        rows = grade(tmp / "submitted", tmp / "grades.csv", tmp / "work", workers=workers,
                     log=lambda *a: None)  # fmt: skip
        full = all(r.status == GRADED and r.score == r.max_score for r in rows)
        seconds = time.perf_counter() - start
        return {
            "workers": workers,
            "notebooks": len(rows),
            "seconds": seconds,
            "all_full_marks": full,
        }
    finally:
        os.environ.clear()
        os.environ.update(environ)
        shutil.rmtree(tmp, ignore_errors=True)
