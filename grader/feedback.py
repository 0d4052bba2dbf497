"""Feedback without hidden tests.

nbgrader's ``ClearHiddenTests`` removes the hidden region from a test cell's source, but when a
hidden test fails, IPython's traceback prints the lines around the failing one, hidden tests
included. ``HideHiddenTestFrames`` drops, from the error outputs of test cells, the traceback
frames that belong to the test cell itself; the error message and the frames in the student's own
code and in the (visible) test helpers remain.
"""

from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def hide_cell_frames(traceback: list[str], execution_count: int | None) -> list[str]:
    """The traceback entries that do not show the code of cell ``In[execution_count]``."""
    if execution_count is None:
        return list(traceback)
    own = re.compile(rf"\bIn\s*\[{execution_count}\]")
    return [entry for entry in traceback if not own.search(strip_ansi(entry))]


class HideHiddenTestFrames(NbGraderPreprocessor):
    """Remove a test cell's own frames from the tracebacks of its errors (see the module doc)."""

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = hide_cell_frames(
                        output.get("traceback", []), cell.get("execution_count")
                    )
        return cell, resources
