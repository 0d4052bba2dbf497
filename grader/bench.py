"""Grading throughput for ``make bench``: a class of reference submissions, graded end to end."""

from __future__ import annotations

import json
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
    answers = {
        c["id"]: [
            ln
            for ln in c["source"]
            if "### BEGIN SOLUTION" not in ln and "### END SOLUTION" not in ln
        ]
        for c in source["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    for cell in release["cells"]:
        if cell.get("id") in answers:
            cell["source"] = answers[cell["id"]]
    return release


def grading_throughput(workers: int = 1, students: int = 2) -> dict:
    """Grade ``students`` copies of every reference solution; seconds for the whole batch."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        for s in range(students):
            for assignment, notebooks in assignments().items():
                for nb in notebooks:
                    path = tmp / "submitted" / f"student{s:02d}" / assignment / f"{nb}.ipynb"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(solved_notebook(assignment, nb)))
        start = time.perf_counter()
        rows = grade(
            tmp / "submitted",
            tmp / "grades.csv",
            tmp / "work",
            workers=workers,
            log=lambda *a: None,
        )
        seconds = time.perf_counter() - start
        full = all(r.status == GRADED and r.score == r.max_score for r in rows)
        return {
            "workers": workers,
            "notebooks": len(rows),
            "seconds": seconds,
            "all_full_marks": full,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
