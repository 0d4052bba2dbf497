"""Grade one student's assignment through nbgrader: stage the notebooks (structure restored),
autograde, write the feedback, and turn the gradebook and the execution report into rows."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from grader.config import load_config, prepare_process
from grader.layout import assignments
from grader.limits import Limits
from grader.restore import normalize
from grader.rows import GRADED, NOT_GRADED, STOPPED, Job, Row


@dataclass
class Settings:
    """What a worker needs besides the job."""

    workdir: Path
    limits: Limits
    feedback: bool = True
    db_url: str | None = None


_WORKER: dict = {}


def init_worker(settings: Settings):
    from nbgrader.apps import NbGraderAPI

    prepare_process()
    config = load_config(settings.workdir, settings.limits, settings.db_url)
    _WORKER.update(settings=settings, api=NbGraderAPI(config=config))


def grade_in_worker(job: Job) -> list[Row]:
    return grade_job(_WORKER["api"], job, _WORKER["settings"])


def failure_reason(result: dict) -> str:
    """A short reason from nbgrader's captured log of a failed autograde."""
    log = result.get("log", "") + "\n" + result.get("error", "")
    if "NotJSONError" in log or "does not appear to be JSON" in log:
        return "the notebook is not valid JSON"
    if "database is locked" in log:
        return "the gradebook stayed locked (another program holds it); grade again"
    if "the sandbox could not start" in log or "SandboxError" in log:
        return "the sandbox could not start (see the log in the work directory)"
    generic = ("There was an error processing", "Please see", "Traceback", "nbgrader.converters.")
    errors = [
        ln.strip().removeprefix("[ERROR] ")
        for ln in log.splitlines()
        if re.match(r"^(\[ERROR\] )?\w+(\.\w+)*(Error|Exception):", ln.strip())
        and not any(g in ln for g in generic)
    ]
    if errors:
        return "nbgrader failed: " + errors[-1][:300]
    return "nbgrader failed (see the log in the work directory)"


def _stage(api, job: Job) -> dict:
    """Copy the notebooks into nbgrader's submitted folder with their structure restored;
    returns {notebook: (notes, tampering)}."""
    import nbformat

    cd = api.coursedir
    dest = Path(cd.submitted_directory) / job.student_id / job.assignment
    release = Path(cd.release_directory) / job.assignment
    same = dest.resolve() == job.folder.resolve()
    if not same:
        shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    structure = {}
    for nb in job.notebooks:
        sub = nbformat.read(job.folder / f"{nb}.ipynb", as_version=4)
        sub, notes, tampering = normalize(sub, nbformat.read(release / f"{nb}.ipynb", as_version=4))
        structure[nb] = (notes, tampering)
        nbformat.write(sub, dest / f"{nb}.ipynb")
    if (job.folder / "timestamp.txt").is_file() and not same:
        shutil.copy2(job.folder / "timestamp.txt", dest / "timestamp.txt")
    for extra in release.iterdir() if release.is_dir() else ():  # files the notebook reads
        if extra.is_file() and extra.suffix != ".ipynb":
            shutil.copy2(extra, dest / extra.name)  # the release's copy, not the student's
    return structure


def _apply_report(row: Row, report: dict | None):
    """The execution report's events, tampering and notes on the row."""
    if report is None:
        row.status, row.score = NOT_GRADED, None
        row.reason = "the grader wrote no execution report for this notebook"
        return
    texts = list(dict.fromkeys(f"{e['cell']}: {e['text']}" for e in report["events"]))
    if texts:
        row.status, row.reason = STOPPED, "; ".join(texts)[:2000]
    row.tampering += [t for t in report["tampering"] if t not in row.tampering]
    row.notes += report.get("notes", [])
    if report.get("sandbox") == "off":
        row.notes.append("graded WITHOUT the sandbox (SANDBOX=off)")


def _collect(api, job: Job, rows: list[Row], structure: dict, reports: Path, feedback: bool):
    from nbgrader.api import Gradebook, MissingEntry

    pages = Path(api.coursedir.feedback_directory) / job.student_id / job.assignment
    with Gradebook(api.coursedir.db_url) as gb:
        for row in rows:
            try:
                sub = gb.find_submission_notebook(row.notebook, job.assignment, job.student_id)
            except MissingEntry:
                row.reason = "nbgrader graded nothing (the notebook is not in the gradebook)"
                continue
            row.score, row.max_score, row.status = float(sub.score), float(sub.max_score), GRADED
            row.notes, row.tampering = (list(x) for x in structure[row.notebook])
            path = reports / f"{row.notebook}.json"
            _apply_report(row, json.loads(path.read_text()) if path.is_file() else None)
            if row.status != NOT_GRADED and feedback:
                if (pages / f"{row.notebook}.html").is_file():
                    row.feedback = str(pages / f"{row.notebook}.html")
                else:
                    row.notes.append("no feedback page was written")


def grade_job(api, job: Job, settings: Settings) -> list[Row]:
    """Autograde one student's assignment with ``api`` (an NbGraderAPI); never raises."""
    rows = job.rows(assignments())
    start = time.perf_counter()
    try:
        structure = _stage(api, job)
        reports = settings.workdir / "reports" / job.student_id / job.assignment
        shutil.rmtree(reports, ignore_errors=True)
        result = api.autograde(job.assignment, job.student_id, force=True, create=True)
        for row in rows:
            row.seconds = (time.perf_counter() - start) / len(rows)
            row.notes, row.tampering = structure.get(row.notebook, ([], []))
        if not result["success"]:
            for row in rows:
                row.reason = failure_reason(result)
            log = settings.workdir / "logs" / f"{job.student_id}-{job.assignment}.log"
            log.parent.mkdir(exist_ok=True)
            log.write_text(result.get("log", "") + "\n" + result.get("error", ""))
            return rows
        if settings.feedback:
            api.generate_feedback(job.assignment, job.student_id)
        _collect(api, job, rows, structure, reports, settings.feedback)
    except Exception as e:  # noqa: BLE001 - one submission must never stop the batch
        for row in rows:
            row.status, row.score = NOT_GRADED, None
            row.reason = f"the grader failed on this submission: {type(e).__name__}: {e}"
    return rows
