"""The four grading limits and their defaults, defined here and nowhere else.

``make grade`` (MEMORY, CELL_TIMEOUT, NOTEBOOK_TIMEOUT), ``python -m grader`` (--memory, ...) and
nbgrader's ``SandboxedExecute`` (nbgrader_config.py) all start from :data:`DEFAULTS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


def parse_size(text: str | int) -> int:
    """'4G', '512M', '1.5GiB' or a number of bytes -> bytes."""
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        if s and s[-1] in units:
            return int(float(s[:-1]) * units[s[-1]])
        return int(float(s))
    except ValueError:
        raise ValueError(f"not a size: {text!r} (e.g. 4G, 512M)") from None


@dataclass(frozen=True)
class Limits:
    memory: int = 4 * 2**30  # bytes of address space for the student's process
    cell_timeout: float = 60.0  # seconds per cell
    notebook_timeout: float = 600.0  # seconds per notebook, replays after a restart included
    max_output: int = 100_000  # characters per output (streams, results, tracebacks)
    disk: int = 256 * 2**20  # bytes in each private tmpfs (/tmp, the working copy)
    sandbox: bool = True  # bubblewrap; False only with SANDBOX=off

    def as_dict(self) -> dict:
        return asdict(self)

    def but(self, **changes) -> Limits:
        """These limits with ``changes`` (None values ignored; sizes may be '4G')."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "memory" in changes:
            changes["memory"] = parse_size(changes["memory"])
        return replace(self, **changes)


DEFAULTS = Limits()
