"""The course's nbgrader configuration (nbgrader_config.py), pointed at a work directory."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from grader.layout import ROOT
from grader.limits import Limits

CONFIG = ROOT / "nbgrader_config.py"
# The grader's own processes (the student's code runs with sandbox.sandbox_env instead).
GRADER_ENV = {
    "PYTHONWARNINGS": "ignore",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}


def prepare_process():
    """Environment of a grading process: quiet warnings, the venv's bin (alembic) on PATH."""
    os.environ.update(GRADER_ENV)
    warnings.simplefilter("ignore")  # nbgrader's SQLAlchemy warnings are not the instructor's
    bin_dir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def database_url(url: str) -> str:
    """``url`` with the PostgreSQL driver the course installs (psycopg2-binary): SQLAlchemy 2.1
    reads a bare ``postgresql://`` as psycopg 3."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def load_config(workdir: Path, limits: Limits | None = None, db_url: str | None = None):
    """The course's nbgrader config with every writable folder and the gradebook in ``workdir``."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG.name, path=str(CONFIG.parent)).load_config()
    cd = config.CourseDirectory
    cd.root = str(ROOT)
    cd.release_directory = str(workdir / "release")  # never touch the committed exercises/
    for step in ("submitted", "autograded", "feedback", "solution"):
        setattr(cd, f"{step}_directory", str(workdir / step))
    own = workdir.resolve() != (ROOT / "_grading").resolve()
    if db_url:
        cd.db_url = db_url
    elif own and "BPTT_GRADEBOOK_URL" not in os.environ:
        cd.db_url = f"sqlite:///{workdir / 'gradebook.db'}?timeout=60"
    cd.db_url = database_url(cd.db_url)
    ex = config.SandboxedExecute
    ex.report_dir = str(workdir / "reports")
    if limits is not None:
        ex.memory, ex.cell_timeout = str(limits.memory), limits.cell_timeout
        ex.notebook_timeout, ex.max_output = limits.notebook_timeout, limits.max_output
        ex.sandbox = limits.sandbox
    return config
