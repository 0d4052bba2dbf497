"""Put a submission's nbgrader structure back as released, before nbgrader sees it.

Read-only cells (test cells, test helpers, given code) are replaced by the released ones and
re-inserted where deleted; cells whose grading metadata is unknown, duplicated or stripped become
ordinary cells of the student's; answer cells get the released metadata. The student's own code
is untouched. nbgrader then restores the hidden tests from the gradebook.
"""

from __future__ import annotations

import copy
import uuid


def grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
        return meta["grade_id"]
    return None


def _restore(sub, rel: dict, locked: set) -> tuple[list, dict]:
    """The submission's cells with the released structure; what was found, by kind."""
    seen: set[str] = set()
    cells, found = [], {"forged": [], "changed": [], "edited": []}
    for cell in sub.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        gid = grade_id(cell)
        if meta is not None and (gid not in rel or gid in seen):
            found["forged"].append(gid or cell.get("id", "?"))
            del cell.metadata["nbgrader"]
        if meta is None or "nbgrader" not in cell.metadata:
            cells.append(cell)
            continue
        seen.add(gid)
        want, kind = rel[gid].metadata.nbgrader, rel[gid].cell_type
        keys = ("grade", "solution", "locked", "points")
        if any(meta.get(k) != want.get(k) for k in keys) or cell.cell_type != kind:
            found["changed"].append(gid)
        if gid in locked:
            if cell.get("source") != rel[gid].source:
                found["edited"].append(gid)
            cell = copy.deepcopy(rel[gid])
        elif cell.cell_type != kind:
            cell = copy.deepcopy(rel[gid])
        else:
            cell.metadata["nbgrader"] = copy.deepcopy(want)
        cells.append(cell)
    found["missing"] = [g for g in rel if g in locked and g not in seen]
    for gid in found["missing"]:  # after the released cell that precedes it
        before = [g for g in list(rel)[: list(rel).index(gid)] if g in seen]
        at = 1 + max(i for i, c in enumerate(cells) if grade_id(c) == before[-1]) if before else 0
        cells.insert(at, copy.deepcopy(rel[gid]))
        seen.add(gid)
    return cells, found


def normalize(sub, release) -> tuple[object, list[str], list[str]]:
    """``sub`` with the structure of ``release`` put back: (notebook, notes, tampering)."""
    rel = {g: c for c in release.cells if (g := grade_id(c))}
    locked = {g for g, c in rel.items() if c.metadata.nbgrader.get("locked")}
    cells, found = _restore(sub, rel, locked)
    ids: set[str] = set()
    for cell in cells:  # nbformat wants unique cell ids
        if cell.get("id") in ids or not cell.get("id"):
            cell["id"] = uuid.uuid4().hex[:8]
        ids.add(cell["id"])
    sub.cells = cells
    notes, tampering = [], []
    if found["edited"]:
        edited = ", ".join(found["edited"])
        notes.append(f"edited read-only cells restored: {edited}")
        tampering.append(f"edited test or read-only cells (restored): {edited}")
    if found["missing"]:
        missing = ", ".join(found["missing"])
        notes.append(f"deleted or unmarked read-only cells re-added: {missing}")
        tampering.append(f"deleted or unmarked test or read-only cells (re-added): {missing}")
    if found["forged"]:
        tampering.append(
            "cells with unknown or duplicated grading metadata (graded as ordinary cells): "
            + ", ".join(str(f) for f in found["forged"])
        )
    if found["changed"]:
        tampering.append("changed the grading metadata of: " + ", ".join(found["changed"]))
    return sub, notes, tampering
