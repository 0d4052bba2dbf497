"""What is there to grade: the assignments (from solutions/) and the submissions folder,
``<student_id>/<assignment_id>/<notebook>.ipynb``, with a reason for every file that cannot be."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grader.rows import Job, Row

ROOT = Path(__file__).resolve().parents[1]  # the course repository
MAX_NOTEBOOK_BYTES = 64 * 2**20


def questions(source: Path = ROOT / "solutions") -> list[tuple[str, str, str, float]]:
    """(assignment, notebook, test cell's grade id, points) of every graded cell, in order."""
    out = []
    for path in sorted(source.glob("*/*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade"):
                points = float(meta.get("points", 0))
                out.append((path.parent.name, path.stem, meta["grade_id"], points))
    return out


def assignments(source: Path = ROOT / "solutions") -> dict[str, dict[str, float]]:
    """{assignment id: {notebook name: max score}}: the registry's assignments
    (``solutions/assignments.toml``), scored from their source notebooks."""
    from grader.registry import assignments as registered

    out = {a.id: {a.notebook: 0.0} for a in registered(source / "assignments.toml")}
    for assignment, notebook, _, points in questions(source):
        if notebook in out.get(assignment, {}):
            out[assignment][notebook] += points
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
        cells = nbformat.reads(text, as_version=4)["cells"]
        kinds = ("code", "markdown", "raw")
        if not isinstance(cells, list) or not all(
            isinstance(c, dict) and c.get("cell_type") in kinds and isinstance(c.get("source"), str)
            for c in cells
        ):
            raise ValueError("its cells are not notebook cells")
    except Exception as e:  # noqa: BLE001 - any reader error means "not a notebook"
        return f"{path.name} is not a Jupyter notebook: {type(e).__name__}: {str(e)[:200]}"
    return None


def _loose_file(entry: Path, sid: str, known: dict) -> Row:
    """A row for a notebook lying in the student's folder instead of an assignment folder."""
    guess = {nb: a for a, nbs in known.items() for nb in nbs}.get(entry.stem)
    where = f"{sid}/{guess or '<assignment_id>'}/{entry.name}"
    reason = f"{entry.name} is not in an assignment folder: expected {where}"
    max_score = known.get(guess, {}).get(entry.stem, 0.0)
    return Row(sid, guess or "?", entry.stem if guess else entry.name, max_score, reason=reason)


def _notebook_problem(folder: Path, nb: str, expected: dict) -> str | None:
    path = folder / f"{nb}.ipynb"
    if path.is_file():
        return check_notebook(path)
    if path.exists():
        return f"{nb}.ipynb is not a file"
    present = sorted(p.name for p in folder.glob("*.ipynb"))
    if not present:
        return f"no notebook: expected {nb}.ipynb"
    others = ", ".join(p for p in present if p[:-6] not in expected)
    return (
        f"renamed notebook: found {others or 'none'}, expected {nb}.ipynb"
        " (nbgrader grades notebooks by name)"
    )


def discover(submissions: Path, known: dict[str, dict[str, float]]) -> tuple[list[Job], list[Row]]:
    """The submissions to grade, and a row for each one that cannot be (wrong layout or file)."""
    jobs: list[Job] = []
    rows: list[Row] = []
    for student in sorted(p for p in submissions.iterdir() if not p.name.startswith(".")):
        if not student.is_dir():
            print(f"ignored {student}: submissions are folders <student_id>/<assignment_id>/",
                  file=sys.stderr)  # fmt: skip
            continue
        sid = student.name
        for entry in sorted(p for p in student.iterdir() if not p.name.startswith(".")):
            if entry.is_file():
                if entry.suffix == ".ipynb":
                    rows.append(_loose_file(entry, sid, known))
                continue
            if entry.name not in known:
                reason = (
                    f"unknown assignment folder '{entry.name}'; expected one of {', '.join(known)}"
                )
                rows.append(Row(sid, entry.name, "?", 0.0, reason=reason))
                continue
            good = []
            for nb, max_score in known[entry.name].items():
                problem = _notebook_problem(entry, nb, known[entry.name])
                if problem:
                    rows.append(Row(sid, entry.name, nb, max_score, reason=problem))
                else:
                    good.append(nb)
            if good:
                jobs.append(Job(sid, entry.name, entry, good))
    return jobs, rows
