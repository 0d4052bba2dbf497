"""Grade a folder of submissions: the batch (which jobs, resumed from the journal, in parallel
workers), then the two CSVs and a summary. One submission is graded by :mod:`grader.job`."""

from __future__ import annotations

import random
import time
from pathlib import Path

from grader import journal
from grader.check import check_sandbox
from grader.config import load_config, prepare_process
from grader.csvs import by_question_path, question_scores, write_by_question, write_csv
from grader.job import Settings, grade_in_worker, init_worker
from grader.layout import ROOT, assignments, discover
from grader.limits import DEFAULTS, Limits
from grader.rows import GRADED, NOT_GRADED, STOPPED, Row


def _load_assignments(api, names):
    """Each assignment's source cells (hidden tests included) into the gradebook; this also writes
    the release notebooks into the work directory, to compare submissions with."""
    for assignment in sorted(names):
        for _ in range(4):  # another machine sharing the gradebook may write the same rows
            result = api.generate_assignment(assignment, force=True, create=True)
            if result["success"]:
                break
            time.sleep(1 + random.random() * 2)
        else:
            log = f"{result.get('log', '')}{result.get('error', '')}"
            raise SystemExit(f"could not load {assignment} into the gradebook:\n{log}")


def _pending(jobs, rows, settings, regrade, student, log):
    """The jobs to grade; rows of unchanged ones (from the journal) are added to ``rows``."""
    todo, fps, kept = [], {}, 0
    for job in jobs:
        fps[id(job)] = fp = journal.fingerprint(job, settings.limits)
        again = regrade or job.student_id == student
        done = None if again else journal.load(settings.workdir, job, fp)
        if done is not None and journal.refresh_scores(settings.db_url, done):
            rows += done
            kept += 1
        elif student is None or job.student_id == student:
            todo.append(job)
        else:
            log(f"  not graded yet (grade without STUDENT): {job.student_id} {job.assignment}")
    if kept:
        log(f"{kept} submissions already graded (unchanged): kept")
    return todo, fps


def _run_pool(todo, settings, workers, finished, known):
    """Grade ``todo`` in ``workers`` processes; a dead worker costs a retry, not the batch."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    tries = {id(j): 0 for j in todo}
    while todo:
        pending = []
        with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                                 initargs=(settings,)) as pool:  # fmt: skip
            futures = {pool.submit(grade_in_worker, job): job for job in todo}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    finished(job, future.result())
                except BrokenProcessPool:
                    pending.append(job)
                except Exception as e:  # noqa: BLE001 - a grader bug loses only this job
                    finished(job, job.rows(known, f"the grading worker failed: {e}"))
        todo = []
        for job in pending:
            tries[id(job)] += 1
            if tries[id(job)] > 1:
                finished(job, job.rows(known, "the grading worker died twice on this submission"))
            else:
                todo.append(job)


def _summary(rows: list[Row], grades: Path, sandbox: bool, log):
    bad = [r for r in rows if r.status == NOT_GRADED]
    stopped = [r for r in rows if r.status == STOPPED]
    done = [r for r in rows if r.status != NOT_GRADED]
    per = sum(r.seconds for r in done) / len(done) if done else 0.0
    log(f"{len(done)} notebooks graded ({per:.1f} s each), {len(stopped)} of them with code "
        f"stopped, {len(bad)} not graded; CSV: {grades}, {by_question_path(grades)}")  # fmt: skip
    for r in bad:
        log(f"  not graded: {r.student_id} {r.assignment}/{r.notebook}: {r.reason}")
    for r in stopped:
        log(f"  stopped: {r.student_id} {r.assignment}/{r.notebook}: {r.reason[:300]}")
    for r in (r for r in rows if r.tampering):
        what = "; ".join(r.tampering)[:300]
        log(f"  tampering: {r.student_id} {r.assignment}/{r.notebook}: {what}")
    if not sandbox:
        log("WARNING: graded WITHOUT the sandbox (SANDBOX=off)")


def _line(row: Row) -> str:
    shown = f"{row.score:g}/{row.max_score:g}" if row.score is not None else "NOT GRADED"
    extra = f" [{row.status}]" if row.status != GRADED else ""
    return f"{row.student_id} {row.assignment}/{row.notebook}: {shown}{extra} ({row.seconds:.1f} s)"


def grade(submissions: Path, grades: Path, workdir: Path = ROOT / "_grading", feedback=True,
          limits: Limits = DEFAULTS, workers: int = 1, db_url: str | None = None,
          regrade=False, shard: tuple[int, int] | None = None, student: str | None = None,
          log=print) -> list[Row]:  # fmt: skip
    """Autograde everything under ``submissions`` (``student``: only that student, graded anew);
    write the CSVs; return the rows. ``shard=(i, n)``: the i-th of n shares of the students."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    submissions, workdir = Path(submissions).resolve(), Path(workdir).resolve()
    if not submissions.is_dir():
        raise SystemExit(f"SUBMISSIONS={submissions} is not a folder")
    prepare_process()
    workdir.mkdir(parents=True, exist_ok=True)
    known = assignments()
    jobs, rows = discover(submissions, known)
    if shard is not None:
        ids = sorted({j.student_id for j in jobs} | {r.student_id for r in rows})
        mine = set(ids[shard[0] - 1 :: shard[1]])
        jobs, rows = (
            [j for j in jobs if j.student_id in mine],
            [r for r in rows if r.student_id in mine],
        )
    if student is not None and student not in {j.student_id for j in jobs} | {
        r.student_id for r in rows
    }:
        raise SystemExit(f"STUDENT={student}: no such folder in {submissions}")
    api = NbGraderAPI(config=load_config(workdir, limits, db_url))
    settings = Settings(workdir, limits, feedback, api.coursedir.db_url)
    check_sandbox(limits, workdir, submissions, settings.db_url, log)
    _load_assignments(api, {j.assignment for j in jobs})
    with Gradebook(settings.db_url) as gb:  # once here: workers creating a student would collide
        for sid in sorted({j.student_id for j in jobs}):
            gb.update_or_create_student(sid)
    todo, fps = _pending(jobs, rows, settings, regrade, student, log)

    def finished(job, new):
        journal.save(workdir, job, fps[id(job)], new)
        rows.extend(new)
        for row in new:
            log(_line(row))

    workers = max(1, min(workers, len(todo)))
    if workers == 1:
        init_worker(settings)
        for job in todo:
            finished(job, grade_in_worker(job))
    elif todo:
        _run_pool(todo, settings, workers, finished, known)
    rows.sort(key=lambda r: (r.student_id, r.assignment, r.notebook))
    write_csv(grades, rows)
    write_by_question(by_question_path(grades), rows, question_scores(settings.db_url, rows))
    _summary(rows, grades, limits.sandbox, log)
    return rows
