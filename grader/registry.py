"""The registry of assignments, ``solutions/assignments.toml``, read in one place: each entry's
id, notebook, chapter, points, functions (the contract) and summary, and its notebooks' paths."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "solutions" / "assignments.toml"
FIELDS = ("id", "notebook", "chapter", "points", "functions", "summary")


@dataclass(frozen=True)
class Assignment:
    id: str
    notebook: str
    chapter: str
    points: float
    functions: tuple[str, ...]
    summary: str
    root: Path = ROOT

    @property
    def source(self) -> Path:
        """The nbgrader source notebook (reference solution, hidden tests)."""
        return self.root / "solutions" / self.id / f"{self.notebook}.ipynb"

    @property
    def release(self) -> Path:
        """The release notebook students get, generated from ``source``."""
        return self.root / "exercises" / self.id / f"{self.notebook}.ipynb"


def assignments(path: Path = REGISTRY) -> list[Assignment]:
    """Every registered assignment, in the registry's order; a malformed entry raises ValueError."""
    entries = tomllib.loads(Path(path).read_text()).get("assignment", [])
    out = []
    for i, entry in enumerate(entries):
        missing = [f for f in FIELDS if f not in entry]
        extra = sorted(set(entry) - set(FIELDS))
        if missing or extra:
            raise ValueError(f"{path}: assignment {i + 1} lacks {missing} / has unknown {extra}")
        root = Path(path).resolve().parents[1]
        out.append(Assignment(**{**entry, "functions": tuple(entry["functions"])}, root=root))
    ids = [a.id for a in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: an assignment id is listed twice: {ids}")
    return out


def by_id(path: Path = REGISTRY) -> dict[str, Assignment]:
    return {a.id: a for a in assignments(path)}
