"""Generate the release notebooks (``exercises/``) from the source notebooks (``solutions/``).

    python -m grader.release [--out DIR]

Runs ``nbgrader generate_assignment`` for every assignment in one process (the five separate
commands cost a few seconds of imports each), without touching the gradebook. ``make exercises``
writes into ``exercises/``; the sync test writes into a temporary folder and compares.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.config import load_config
from grader.layout import ROOT, assignments


def generate_release(out: Path = ROOT / "exercises", workdir: Path | None = None) -> list[Path]:
    """Write ``out/<assignment>/<notebook>.ipynb`` for every assignment; return the paths."""
    from nbgrader.apps import NbGraderAPI

    out = Path(out).resolve()
    config = load_config(Path(workdir or ROOT / "_grading"))
    config.CourseDirectory.release_directory = str(out)
    config.GenerateAssignment.no_database = True  # what `--no-db` sets
    config.SaveCells.enabled = False
    api = NbGraderAPI(config=config)
    paths = []
    for assignment, notebooks in assignments().items():
        result = api.generate_assignment(assignment, force=True, create=False)
        if not result["success"]:
            raise RuntimeError(
                f"generate_assignment {assignment} failed:\n{result.get('log', '')}"
                f"{result.get('error', '')}"
            )
        paths += [out / assignment / f"{nb}.ipynb" for nb in notebooks]
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grader.release", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=ROOT / "exercises", help="default: exercises/")
    args = parser.parse_args(argv)
    for path in generate_release(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
