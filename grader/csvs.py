"""The two grade files: one row per submitted notebook (status, reason, tampering, ...) and, for
a learning platform's gradebook, one row per student with one column per question.

The second follows Canvas's gradebook import: ``Student, ID``, then one column per graded test
cell (``<assignment>/<notebook>: <test cell>``), ``Total`` and ``Max``; its second line is the
"Points Possible" row. A question of a notebook that could not be graded is empty, never 0.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from grader.layout import questions
from grader.rows import FIELDS, NOT_GRADED, Row


def _write(path: Path, header: list[str], lines: list[list]):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(lines)
    os.replace(tmp, path)  # a kill leaves the old file or the new one


def write_csv(path: Path, rows: list[Row]):
    _write(path, FIELDS, [[r.csv_row()[f] for f in FIELDS] for r in rows])


def by_question_path(grades: Path) -> Path:
    grades = Path(grades)
    return grades.with_name(f"{grades.stem}-by-question{grades.suffix or '.csv'}")


def question_scores(db_url: str, rows: list[Row]) -> dict[tuple, float]:
    """{(student, assignment, notebook, test cell): score} from the gradebook (manual grades
    included), for the rows that were graded."""
    from nbgrader.api import Gradebook, MissingEntry

    out = {}
    with Gradebook(db_url) as gb:
        for r in rows:
            if r.status == NOT_GRADED:
                continue
            try:
                sub = gb.find_submission_notebook(r.notebook, r.assignment, r.student_id)
            except MissingEntry:
                continue
            for g in sub.grades:
                out[(r.student_id, r.assignment, r.notebook, g.name)] = float(g.score)
    return out


def write_by_question(path: Path, rows: list[Row], scores: dict[tuple, float]):
    """The per-question gradebook CSV (see the module doc)."""
    present = {(r.assignment, r.notebook) for r in rows}
    cols = [q for q in questions() if q[3] > 0 and (q[0], q[1]) in present]
    header = ["Student", "ID", *(f"{a}/{nb}: {q}" for a, nb, q, _ in cols), "Total", "Max"]
    possible = sum(p for *_, p in cols)
    points = [f"{p:g}" for *_, p in cols]
    lines = [["Points Possible", "", *points, f"{possible:g}", f"{possible:g}"]]
    for student in sorted({r.student_id for r in rows}):
        got = [scores.get((student, a, nb, q)) for a, nb, q, _ in cols]
        total = sum(s for s in got if s is not None)
        cells = ["" if s is None else f"{s:g}" for s in got]
        lines.append([student, student, *cells, f"{total:g}", f"{possible:g}"])
    _write(path, header, lines)
