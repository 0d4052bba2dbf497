# nbgrader configuration of the course (nbgrader 0.9.6), read by every `nbgrader` command run
# from this directory and by `make exercises` / `make grade` (python -m grader).
#
#   solutions/<assignment>/<notebook>.ipynb   source notebooks (reference solutions, hidden tests)
#   exercises/<assignment>/<notebook>.ipynb   release notebooks, generated: `make exercises`
#   _grading/                                 instructor-only and git-ignored: the gradebook and
#                                             the submitted/, autograded/, feedback/ folders
#
# The defaults are chosen so that a correct answer cannot lose points for reasons that have
# nothing to do with it, and feedback never shows the hidden tests.
import os
from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

from grader.execute import SandboxedExecute
from grader.feedback import HideHiddenTestFrames

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_grading"
WORK.mkdir(exist_ok=True)  # SQLite creates the file, not its folder

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "bptt"
# nbgrader's layout is {root}/{step}/{student}/{assignment}; source and release have no
# student level, so generate_assignment writes exercises/<assignment>/ directly.
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "_grading/submitted"
c.CourseDirectory.autograded_directory = "_grading/autograded"
c.CourseDirectory.feedback_directory = "_grading/feedback"
c.CourseDirectory.solution_directory = "_grading/solution"
# SQLite waits 5 s for a lock by default and a lock error aborts a whole batch; wait 60 s.
# Any SQLAlchemy URL works here (e.g. PostgreSQL when several machines grade).
c.CourseDirectory.db_url = os.environ.get(
    "BPTT_GRADEBOOK_URL", f"sqlite:///{WORK / 'gradebook.db'}?timeout=60"
)

# Autograding: a test cell with any stderr output scores 0 in nbgrader, and a warning (from
# numpy, torch, or the student's code) is stderr. Tests report failures as errors, never on
# stderr, so stderr is dropped from the graded notebooks; warnings are switched off in the
# kernels too (kernels inherit this process's environment).
os.environ.setdefault("PYTHONWARNINGS", "ignore")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugger notice on stderr
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = "."

# Execution: nbgrader's Execute runs the tests in the kernel that runs the student's code, where
# the code can patch them. SandboxedExecute (grader/execute.py) runs the read-only cells (tests,
# helpers) here and the student's cells in a bubblewrap sandbox, calling the student's functions
# across; everything else is nbgrader's. Its limits (memory, time per cell and per notebook,
# output size) default to grader/limits.py; `make grade` sets them from MEMORY, CELL_TIMEOUT,
# NOTEBOOK_TIMEOUT and SANDBOX. If the sandbox cannot start, the submission fails (an error in
# nbgrader's log, a non-zero exit), it is never scored 0.
c.Autograde.autograde_preprocessors = [
    SandboxedExecute,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
c.SandboxedExecute.tests_only_cells = ["checks"]  # read-only cells the student's code never needs
c.SandboxedExecute.report_dir = str(WORK / "reports")
# Test cells deleted from a submission are put back and run, rather than silently skipped.
c.OverwriteCells.add_missing_cells = True
c.Autograde.create_student = True

# Feedback pages never run scripts from a submission (markdown cells may hold raw HTML).
c.HTMLExporter.sanitize_html = True

# Feedback: hidden tests are removed from the test cells, and from the tracebacks of failed
# tests (which would otherwise print the hidden lines around the failing one).
c.GenerateFeedback.preprocessors = [
    GetGrades,
    CSSHTMLHeaderPreprocessor,
    ClearHiddenTests,
    HideHiddenTestFrames,
]
