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
    options = [  # flag, type, default, help
        ("--workdir", Path, ROOT / "_grading", "gradebook, submitted/, autograded/, feedback/"),
        ("--workers", int, os.cpu_count() or 1, "submissions graded at once (default: the cores)"),
        ("--memory", str, DEFAULTS.memory, "memory of the student's process (bytes, or 2G)"),
        ("--cell-timeout", float, DEFAULTS.cell_timeout, "seconds per cell"),
        ("--notebook-timeout", float, DEFAULTS.notebook_timeout, "seconds per notebook"),
        ("--max-output", int, DEFAULTS.max_output, "characters kept per cell output"),
        (
            "--gradebook",
            str,
            os.environ.get("BPTT_GRADEBOOK_URL"),
            "SQLAlchemy URL (default: SQLite)",
        ),
        ("--shard", _shard, None, "i/n: grade the i-th of n shares of the students"),
        ("--student", str, None, "grade only this student, anew (the others are kept)"),
    ]
    for flag, kind, default, text in options:
        p.add_argument(flag, type=kind, default=default, help=text)
    p.add_argument("--sandbox", choices=["on", "off"], default="on",
                   help="off: run the students' code WITHOUT isolation (unsafe)")  # fmt: skip
    p.add_argument("--no-feedback", action="store_true", help="skip the feedback pages")
    p.add_argument("--regrade", action="store_true", help="grade unchanged submissions again")
    return p


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
