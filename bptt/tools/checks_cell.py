"""One source for the test helpers that every assignment's notebook carries.

Each source notebook has a locked, 0-point cell ``checks`` with the helpers its test cells
call. Their shared part (``_tc_call``, ``_tc_compare``, ...) is the module
``solutions/checks_common.py``, linted and tested like the rest of the code; this copies it to
the top of every ``checks`` cell, above the assignment's own checks, and ``make exercises``
then releases it. A test fails when a notebook's copy differs from the module.

    python -m bptt.tools.checks_cell write   # refresh the checks cells of solutions/
    python -m bptt.tools.checks_cell check   # exit 1 if one is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from grader.registry import assignments

COMMON = (Path(__file__).resolve().parents[2] / "solutions" / "checks_common.py").read_text()
MARK = "# ---- The checks of this assignment ----\n"
CELL_ID = "checks"


def checks_cell(nb) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == CELL_ID]
    if len(cells) != 1:
        raise ValueError(f"a notebook must have exactly one {CELL_ID!r} cell, found {len(cells)}")
    return cells[0]


def own_part(source: str) -> str:
    """The assignment's own checks: what follows the shared helpers and the marker."""
    if MARK not in source:
        raise ValueError(f"the {CELL_ID!r} cell has no line {MARK.strip()!r}")
    return source.split(MARK, 1)[1]


def with_common(source: str) -> str:
    """The cell's source with the shared helpers refreshed from the module."""
    return COMMON + "\n\n" + MARK + own_part(source)


def stale(path: Path) -> bool:
    cell = checks_cell(nbformat.read(path, as_version=4))
    return cell.source != with_common(cell.source)


def write(path: Path) -> bool:
    """Refresh ``path``'s checks cell; return whether it changed."""
    nb = nbformat.read(path, as_version=4)
    cell = checks_cell(nb)
    new = with_common(cell.source)
    if new == cell.source:
        return False
    cell.source = new
    nbformat.write(nb, path)
    return True


def main(argv: list[str]) -> int:
    if argv not in (["write"], ["check"]):
        print(__doc__.split("\n\n")[-1], file=sys.stderr)
        return 2
    paths = [a.source for a in assignments()]
    if argv == ["write"]:
        for path in paths:
            print(f"{'updated' if write(path) else 'current'}: {path}")
        return 0
    bad = [p for p in paths if stale(p)]
    for p in bad:
        print(f"{p}: its checks cell differs from solutions/checks_common.py", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
