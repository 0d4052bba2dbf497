"""``python -m grader SUBMISSIONS GRADES.csv``: autograde a class (``make grade``)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from grader.batch import grade
from grader.layout import ROOT
from grader.limits import DEFAULTS


def _shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise argparse.ArgumentTypeError("SHARD is i/n with 1 <= i <= n, e.g. 2/3")
    return int(m.group(1)), int(m.group(2))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m grader", description=__doc__.split(":")[1])
    p.add_argument("submissions", type=Path, help="<student_id>/<assignment_id>/<notebook>.ipynb")
    p.add_argument("grades", type=Path, help="the CSV to write (and <name>-by-question.csv)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "_grading",
        help="gradebook, submitted/, autograded/, feedback/ (default: _grading/)",
    )
    p.add_argument("--no-feedback", action="store_true", help="skip the feedback pages")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="submissions graded at once (default: the cores)",
    )
    p.add_argument("--memory", default=DEFAULTS.memory, help="memory of the student's process")
    p.add_argument("--cell-timeout", type=float, default=DEFAULTS.cell_timeout, help="seconds")
    p.add_argument(
        "--notebook-timeout",
        type=float,
        default=DEFAULTS.notebook_timeout,
        help="seconds per notebook",
    )
    p.add_argument(
        "--max-output",
        type=int,
        default=DEFAULTS.max_output,
        help="characters kept per cell output",
    )
    p.add_argument(
        "--sandbox",
        choices=["on", "off"],
        default="on",
        help="off: run the students' code WITHOUT isolation (unsafe)",
    )
    p.add_argument(
        "--gradebook",
        default=os.environ.get("BPTT_GRADEBOOK_URL"),
        help="SQLAlchemy URL (default: SQLite in the work directory)",
    )
    p.add_argument("--regrade", action="store_true", help="grade unchanged submissions again")
    p.add_argument("--shard", type=_shard, help="i/n: grade the i-th of n shares of the students")
    p.add_argument("--student", help="grade only this student, anew (the others are kept)")
    return p  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    limits = DEFAULTS.but(
        memory=args.memory,
        cell_timeout=args.cell_timeout,
        notebook_timeout=args.notebook_timeout,
        max_output=args.max_output,
        sandbox=args.sandbox == "on",
    )
    grade(args.submissions, args.grades, args.workdir, feedback=not args.no_feedback,
          limits=limits, workers=args.workers, db_url=args.gradebook or None,
          regrade=args.regrade, shard=args.shard, student=args.student)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
