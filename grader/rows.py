"""What a batch is made of: jobs (submissions to grade) and rows (lines of the grades CSV)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

GRADED, STOPPED, NOT_GRADED = "graded", "stopped", "not graded"


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
    tampering: list[str] = field(default_factory=list)
    seconds: float = 0.0
    feedback: str = ""

    def csv_row(self) -> dict:
        row = asdict(self)
        row["score"] = "" if self.score is None else f"{self.score:g}"
        row["max_score"] = f"{self.max_score:g}"
        row["notes"] = "; ".join(self.notes)
        row["tampering"] = "; ".join(self.tampering)
        row["seconds"] = f"{self.seconds:.2f}"
        return row


FIELDS = list(Row.__dataclass_fields__)
FIELDS.insert(3, FIELDS.pop(4))  # student_id, assignment, notebook, score, max_score, status, ...


@dataclass
class Job:
    """A submission that passed the layout checks: nbgrader will grade ``notebooks`` of it."""

    student_id: str
    assignment: str
    folder: Path
    notebooks: list[str]

    def rows(self, known: dict, reason: str = "") -> list[Row]:
        return [
            Row(self.student_id, self.assignment, nb, known[self.assignment][nb], reason=reason)
            for nb in self.notebooks
        ]
