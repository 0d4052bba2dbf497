"""Autograde a folder of submissions with nbgrader, write per-student feedback and one CSV.

    python -m bptt.grading SUBMISSIONS GRADES.csv [--workdir _grading] [--no-feedback]

``SUBMISSIONS`` is laid out like nbgrader's submitted folder,
``<student_id>/<assignment_id>/<notebook>.ipynb``; students are created in the gradebook as
needed. Every submission is graded on its own (one kernel per notebook, in one process), so a
broken or hostile one affects only itself; each one that cannot be graded gets a CSV row with the
status ``not graded`` and the reason (damaged or renamed notebook, wrong folder, the kernel died,
...), never a silent zero.

The CSV has one row per student, assignment and notebook:
``student_id, assignment, notebook, score, max_score, status, reason, notes, seconds, feedback``.
``score`` is empty when the notebook could not be graded; ``notes`` lists what the grader repaired
or noticed (test cells restored or re-added, cells that timed out); ``seconds`` is the time spent
autograding that notebook; ``feedback`` the HTML page for the student (hidden tests removed).

The gradebook, the submitted, autograded and feedback folders live in the work directory
(``_grading/`` by default, git-ignored); the source notebooks are ``solutions/``, as configured in
``nbgrader_config.py`` at the repository's root.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
    "seconds",
    "feedback",
]
GRADED, NOT_GRADED = "graded", "not graded"

# The kernels that run student code inherit this environment: no warnings on stderr (a test
# cell with stderr output scores 0 in nbgrader), one thread each (tiny tensors; threads only
# contend on a busy machine), no GUI backend, and the venv's tools (alembic) found first.
KERNEL_ENV = {
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
    seconds: float = 0.0
    feedback: str = ""

    def csv_row(self) -> dict:
        row = asdict(self)
        row["score"] = "" if self.score is None else f"{self.score:g}"
        row["max_score"] = f"{self.max_score:g}"
        row["notes"] = "; ".join(self.notes)
        row["seconds"] = f"{self.seconds:.2f}"
        return row


@dataclass
class Job:
    """A submission that passed the layout checks: nbgrader will grade ``notebooks`` of it."""

    student_id: str
    assignment: str
    folder: Path
    notebooks: list[str]


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
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return f"cannot read {path.name}: {e}"
    if not text.strip():
        return f"{path.name} is empty"
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return f"{path.name} is not valid JSON (line {e.lineno}): damaged, or not a notebook"
    try:
        nbformat.reads(text, as_version=4)
    except Exception as e:  # noqa: BLE001 - any reader error means "not a notebook"
        return f"{path.name} is not a Jupyter notebook: {type(e).__name__}: {e}"
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


def load_config(workdir: Path, timeout: int | None = None):
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
    if (
        workdir.resolve() != (ROOT / "_grading").resolve()
        and "BPTT_GRADEBOOK_URL" not in os.environ
    ):
        cd.db_url = f"sqlite:///{workdir / 'gradebook.db'}?timeout=60"
    if timeout is not None:
        config.Execute.timeout = timeout
    return config


def failure_reason(result: dict) -> str:
    """A short reason from nbgrader's captured log of a failed autograde."""
    log = result.get("log", "") + "\n" + result.get("error", "")
    if "Kernel died" in log or "DeadKernelError" in log:
        return "the kernel died while running the notebook (os._exit, a crash, or out of memory)"
    if "UnresponsiveKernelError" in log or "could not interrupt" in log:
        return "the kernel stopped responding and could not be interrupted"
    if "NotJSONError" in log or "does not appear to be JSON" in log:
        return "the notebook is not valid JSON"
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


def notes_from(submitted: Path, release: Path, autograded: Path) -> list[str]:
    """What nbgrader repaired or what went wrong in cells, for the CSV's notes column.

    Read-only and test cells are compared with the release notebook: nbgrader restores edited
    ones from the gradebook and (with ``add_missing_cells``) re-adds deleted ones.
    """
    import nbformat

    notes = []
    try:
        sub = nbformat.read(submitted, as_version=4)
        rel = nbformat.read(release, as_version=4)
    except Exception:  # noqa: BLE001 - notes are best effort
        return notes

    def locked(nb):
        return {
            c.metadata.nbgrader["grade_id"]: c.source.strip()
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("locked") and "grade_id" in c.metadata.nbgrader
        }

    mine, theirs = locked(sub), locked(rel)
    edited = sorted(k for k in theirs if k in mine and mine[k] != theirs[k])
    missing = sorted(k for k in theirs if k not in mine)
    if edited:
        notes.append("edited read-only cells restored: " + ", ".join(edited))
    if missing:
        notes.append("deleted or unmarked read-only cells re-added: " + ", ".join(missing))
    if autograded.is_file():
        for cell in nbformat.read(autograded, as_version=4).cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and out.get("ename") == "CellTimeoutError":
                    notes.append(f"cell {cell.get('id', '?')} timed out")
    return notes


@contextlib.contextmanager
def stderr_to(path: Path):
    """Send file descriptor 2 (inherited by the kernels) to ``path``: kernels print notices and
    crash reports there, which belong in a log, not in the instructor's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as fh:
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def grade_job(api, job: Job, workdir: Path, known: dict, feedback: bool = True) -> list[Row]:
    """Autograde one student's assignment with ``api`` (an NbGraderAPI); never raises."""
    from nbgrader.api import Gradebook, MissingEntry

    cd = api.coursedir
    rows = [
        Row(job.student_id, job.assignment, nb, known[job.assignment][nb]) for nb in job.notebooks
    ]
    try:
        dest = Path(cd.submitted_directory) / job.student_id / job.assignment
        if dest.resolve() != job.folder.resolve():  # `nbgrader collect` may have put them there
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for name in [f"{nb}.ipynb" for nb in job.notebooks] + ["timestamp.txt"]:
                if (job.folder / name).is_file():
                    shutil.copy2(job.folder / name, dest / name)
        start = time.perf_counter()
        with stderr_to(workdir / "kernels.log"):
            result = api.autograde(job.assignment, job.student_id, force=True, create=True)
        for row in rows:
            row.seconds = (time.perf_counter() - start) / len(rows)
        if not result["success"]:
            reason = failure_reason(result)
            for row in rows:
                row.reason = reason
            (workdir / "logs").mkdir(exist_ok=True)
            (workdir / "logs" / f"{job.student_id}-{job.assignment}.log").write_text(
                result.get("log", "") + "\n" + result.get("error", "")
            )
            return rows
        fb = None
        if feedback:
            with stderr_to(workdir / "kernels.log"):
                fb = api.generate_feedback(job.assignment, job.student_id)
        autograded = Path(cd.autograded_directory) / job.student_id / job.assignment
        release = Path(cd.release_directory) / job.assignment
        pages = Path(cd.feedback_directory) / job.student_id / job.assignment
        with Gradebook(cd.db_url) as gb:
            for row in rows:
                name = f"{row.notebook}.ipynb"
                try:
                    sub = gb.find_submission_notebook(row.notebook, job.assignment, job.student_id)
                except MissingEntry:
                    row.reason = "nbgrader graded nothing (the notebook is not in the gradebook)"
                    continue
                row.score, row.max_score = float(sub.score), float(sub.max_score)
                row.status = GRADED
                row.notes = notes_from(dest / name, release / name, autograded / name)
                if fb is not None and (pages / f"{row.notebook}.html").is_file():
                    row.feedback = str(pages / f"{row.notebook}.html")
                elif fb is not None:
                    row.notes.append("no feedback page was written")
    except Exception as e:  # noqa: BLE001 - one submission must never stop the batch
        for row in rows:
            row.status, row.score = NOT_GRADED, None
            row.reason = f"the grader failed on this submission: {type(e).__name__}: {e}"
    return rows


def _grade_jobs(jobs: list[Job], workdir: Path, known: dict, feedback: bool, timeout):
    """Grade ``jobs`` in this process (a worker of ``grade``); returns their rows."""
    from nbgrader.apps import NbGraderAPI

    os.environ.update(KERNEL_ENV)
    api = NbGraderAPI(config=load_config(workdir, timeout))
    rows = []
    for job in jobs:
        new = grade_job(api, job, workdir, known, feedback)
        rows.extend(new)
        for row in new:
            shown = f"{row.score:g}/{row.max_score:g}" if row.status == GRADED else "NOT GRADED"
            print(
                f"{row.student_id} {row.assignment}/{row.notebook}: {shown} ({row.seconds:.1f} s)",
                flush=True,
            )
    return rows


def grade(
    submissions: Path,
    grades: Path,
    workdir: Path = ROOT / "_grading",
    feedback: bool = True,
    timeout: int | None = None,
    workers: int = 1,
    log=print,
) -> list[Row]:
    """Autograde everything under ``submissions``; write the CSV ``grades``; return its rows.

    ``workers`` > 1 grades different submissions in that many processes at once (one gradebook;
    SQLite waits for its lock).
    """
    from nbgrader.apps import NbGraderAPI

    submissions, workdir = Path(submissions).resolve(), Path(workdir).resolve()
    if not submissions.is_dir():
        raise SystemExit(f"SUBMISSIONS={submissions} is not a folder")
    os.environ.update(KERNEL_ENV)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    workdir.mkdir(parents=True, exist_ok=True)
    known = assignments()
    jobs, rows = discover(submissions, known)
    api = NbGraderAPI(config=load_config(workdir, timeout))

    # The gradebook needs each assignment's source cells (hidden tests included) before grading;
    # this also writes the release notebooks into the work directory, to compare submissions with.
    for assignment in sorted({j.assignment for j in jobs}):
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise SystemExit(
                f"could not load {assignment} into the gradebook:\n{result.get('log', '')}"
                f"{result.get('error', '')}"
            )

    # Students are created here, once: workers creating the same student at once would collide.
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url) as gb:
        for student in sorted({j.student_id for j in jobs}):
            gb.update_or_create_student(student)

    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        rows += _grade_jobs(jobs, workdir, known, feedback, timeout)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        students = sorted({j.student_id for j in jobs})
        shares = [[j for j in jobs if j.student_id in students[i::workers]] for i in range(workers)]
        shares = [share for share in shares if share]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(shares), mp_context=context) as pool:
            futures = [
                pool.submit(_grade_jobs, share, workdir, known, feedback, timeout)
                for share in shares
            ]
            for share, future in zip(shares, futures, strict=True):
                try:
                    rows += future.result()
                except Exception as e:  # noqa: BLE001 - a dead worker loses only its share
                    for job in share:
                        rows += [
                            Row(
                                job.student_id,
                                job.assignment,
                                nb,
                                known[job.assignment][nb],
                                reason=f"the grading worker failed: {type(e).__name__}: {e}",
                            )
                            for nb in job.notebooks
                        ]

    rows.sort(key=lambda r: (r.student_id, r.assignment, r.notebook))
    grades = Path(grades)
    grades.parent.mkdir(parents=True, exist_ok=True)
    with grades.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(r.csv_row() for r in rows)
    bad = [r for r in rows if r.status != GRADED]
    done = [r for r in rows if r.status == GRADED]
    per = sum(r.seconds for r in done) / len(done) if done else 0.0
    log(f"{len(done)} notebooks graded ({per:.1f} s each), {len(bad)} not graded; CSV: {grades}")
    for r in bad:
        log(f"  not graded: {r.student_id} {r.assignment}/{r.notebook}: {r.reason}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bptt.grading", description=__doc__.split("\n\n")[0]
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
    parser.add_argument(
        "--timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="submissions graded at once, in processes (default 1)",
    )
    args = parser.parse_args(argv)
    grade(
        args.submissions,
        args.grades,
        args.workdir,
        feedback=not args.no_feedback,
        timeout=args.timeout,
        workers=args.workers,
    )
    return 0
