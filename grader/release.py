"""Generate the release notebooks (``exercises/``) from the source notebooks (``solutions/``).

    python -m grader.release [--out DIR]

Runs ``nbgrader generate_assignment`` for every assignment in one process (the five separate
commands cost a few seconds of imports each), without touching the gradebook. ``make exercises``
writes into ``exercises/``; the sync test writes into a temporary folder and compares.

A solution cell whose metadata has ``release_source`` is released with that text instead of
nbgrader's ``raise NotImplementedError()`` stub: a debugging assignment hands out a listing with
its bugs, and the reference fix stays in the source notebook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.config import load_config
from grader.layout import ROOT, assignments

RELEASE_SOURCE = "release_source"  # cell metadata: what a solution cell's release holds


def apply_release_sources(source: Path, release: Path) -> None:
    """Give each solution cell of ``release`` its source cell's ``release_source``, if any."""
    import nbformat

    given = {
        c.id: c.metadata[RELEASE_SOURCE]
        for c in nbformat.read(source, as_version=4).cells
        if RELEASE_SOURCE in c.metadata
    }
    if not given:
        return
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop(RELEASE_SOURCE, None)
        if cell.id in given:
            cell.source = given[cell.id]
    nbformat.write(nb, release)


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
        for nb in notebooks:
            apply_release_sources(
                ROOT / "solutions" / assignment / f"{nb}.ipynb", out / assignment / f"{nb}.ipynb"
            )
            paths.append(out / assignment / f"{nb}.ipynb")
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
