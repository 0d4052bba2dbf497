"""The journal that makes grading resumable: ``<workdir>/results/<student>/<assignment>.json``,
one per graded submission, with a fingerprint of its files, of the tests and of the limits."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from grader.layout import ROOT
from grader.limits import Limits
from grader.rows import NOT_GRADED, Job, Row

VERSION = "3"  # part of every fingerprint: bump to regrade everything after a grader change


def fingerprint(job: Job, limits: Limits) -> str:
    """Changes when the submitted files, the tests, the grader or the limits change."""
    h = hashlib.sha256()
    files = [job.folder / f"{nb}.ipynb" for nb in job.notebooks]
    files += sorted((ROOT / "solutions" / job.assignment).glob("*.ipynb"))
    limits_text = json.dumps(limits.as_dict(), sort_keys=True)
    for part in (VERSION.encode(), limits_text.encode(), *(p.read_bytes() for p in files)):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _path(workdir: Path, job: Job) -> Path:
    return workdir / "results" / job.student_id / f"{job.assignment}.json"


def save(workdir: Path, job: Job, fp: str, rows: list[Row]):
    path = _path(workdir, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": fp, "rows": [asdict(r) for r in rows]}))
    os.replace(tmp, path)  # atomic: a kill leaves the old result or the new one


def load(workdir: Path, job: Job, fp: str) -> list[Row] | None:
    """The recorded rows of ``job`` if it was graded with fingerprint ``fp`` (failures: None)."""
    try:
        data = json.loads(_path(workdir, job).read_text())
        if data.get("fingerprint") != fp:
            return None
        rows = [Row(**r) for r in data["rows"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return None if any(r.status == NOT_GRADED for r in rows) else rows


def refresh_scores(db_url: str, rows: list[Row]) -> bool:
    """Scores of recorded rows from the gradebook (manual grades included); False if missing."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        for row in rows:
            try:
                sub = gb.find_submission_notebook(row.notebook, row.assignment, row.student_id)
            except MissingEntry:
                return False
            row.score, row.max_score = float(sub.score), float(sub.max_score)
    return True
