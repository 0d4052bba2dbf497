"""The grading pipeline for real: `make grade` on one batch of submissions, through nbgrader.

One batch (kernels start once per notebook, so a batch is what costs time): the reference
solutions, the untouched release notebooks, submissions with typical mistakes, and broken ones
(damaged JSON, a renamed notebook, a notebook in the wrong folder, a kernel that dies, edited and
deleted test cells, warnings on stderr). Then the CSV, the feedback pages and the autograded
notebooks are checked. The fast, in-process checks of the tests themselves are in
test_exercises.py.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from exercise_harness import (
    ASSIGNMENTS,
    ROOT,
    all_mutants,
    is_test,
    mutant_replacements,
    points,
    read,
    release_path,
    source_path,
    student_notebook,
)

from grader.feedback import hide_cell_frames
from grader.layout import check_notebook, discover

MUTANTS, _ = all_mutants()

NOTEBOOK = {a: f"{nb}.ipynb" for a, (nb, _) in ASSIGNMENTS.items()}
# `make` with this interpreter's environment as the Makefile's VENV, never (re)installing it:
# `-o` takes the venv's install stamp as up to date whatever its age.
MAKE = ["make", "--no-print-directory", f"VENV={sys.prefix}", "-o", f"{sys.prefix}/.installed"]


def combined_mistakes(assignment):
    """Mutants of one assignment that can share a notebook: different cells, disjoint failures."""
    chosen, failing, cells = [], set(), set()
    for m in sorted((m for m in MUTANTS if m.assignment == assignment), key=lambda m: len(m.fails)):
        if m.cell not in cells and not failing & set(m.fails):
            chosen.append(m)
            failing |= set(m.fails)
            cells.add(m.cell)
    return chosen


def write(folder: Path, nb=None, text=None, name=None, assignment=None):
    path = folder / (name or NOTEBOOK[assignment])
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is not None:
        path.write_text(text)
    else:
        nbformat.write(nb, path)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grading")
    subs = tmp / "submissions"
    for a in ASSIGNMENTS:
        write(subs / "reference" / a, student_notebook(a), assignment=a)
        write(subs / "untouched" / a, student_notebook(a, solved=False), assignment=a)
        write(
            subs / "mistakes" / a,
            student_notebook(a, mutant_replacements(combined_mistakes(a))),
            assignment=a,
        )
    write(subs / "damaged" / "01_forward", text='{"cells": [', assignment="01_forward")
    write(subs / "renamed" / "01_forward", student_notebook("01_forward"), name="forward (1).ipynb")
    write(subs / "misplaced", student_notebook("02_bptt"), name="bptt.ipynb")
    write(
        subs / "crash" / "02_bptt",
        student_notebook("02_bptt", {"rnn_backward": "import os\nos._exit(1)\n"}),
        assignment="02_bptt",
    )
    tamper = student_notebook(
        "03_clipping",
        {
            "global_norm": (
                "import sys\nimport warnings\n\n\ndef global_norm(grads):\n"
                "    warnings.warn('a warning on stderr must not cost points')\n"
                "    print('debugging output on stderr', file=sys.stderr)\n"
                "    return float(np.sqrt(sum(np.sum(g * g) for g in grads)))\n"
            )
        },
    )
    for cell in tamper.cells:
        if cell.id == "test_global_norm":
            cell.source = "pass  # the student emptied the test"
    tamper.cells = [c for c in tamper.cells if c.id != "test_clip_grad_value"]
    write(subs / "tamper" / "03_clipping", tamper, assignment="03_clipping")

    grades, workdir = tmp / "grades.csv", tmp / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    start = time.perf_counter()
    proc = subprocess.run(
        [
            *MAKE,
            "grade",
            f"SUBMISSIONS={subs}",
            f"GRADES={grades}",
            f"GRADING_DIR={workdir}",
            "WORKERS=2",  # two processes share one SQLite gradebook, as on a 2-core machine
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with grades.open() as fh:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}
    graded = [r for r in rows.values() if r["status"] == "graded"]
    per_notebook = sum(float(r["seconds"]) for r in graded) / len(graded)
    print(
        f"\n`make grade`: {len(graded)} notebooks graded in {seconds:.0f} s, "
        f"{per_notebook:.1f} s of autograding per notebook",
        file=sys.stderr,
    )
    return {"rows": rows, "out": proc.stdout, "workdir": workdir, "seconds": seconds,
            "subs": subs, "grades": grades}  # fmt: skip


def max_points(assignment):
    return sum(points(read(source_path(assignment))).values())


def autograded(batch, student, assignment):
    return nbformat.read(
        batch["workdir"] / "autograded" / student / assignment / NOTEBOOK[assignment], 4
    )


def error_text(cell) -> str:
    return "\n".join(
        f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"
    )


def test_csv_columns_and_one_row_per_submission(batch):
    row = next(iter(batch["rows"].values()))
    assert list(row)[:6] == ["student_id", "assignment", "notebook", "score", "max_score", "status"]
    assert len(batch["rows"]) == 3 * len(ASSIGNMENTS) + 5


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_solutions_get_full_marks(batch, assignment):
    row = batch["rows"][("reference", assignment)]
    assert row["status"] == "graded" and row["notes"] == ""
    assert float(row["score"]) == float(row["max_score"]) == max_points(assignment)
    assert Path(row["feedback"]).is_file()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_notebooks_get_zero(batch, assignment):
    row = batch["rows"][("untouched", assignment)]
    assert row["status"] == "graded" and float(row["score"]) == 0.0
    assert float(row["max_score"]) == max_points(assignment)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mistakes_lose_their_points_with_their_messages(batch, assignment):
    mutants = combined_mistakes(assignment)
    assert len(mutants) >= 2
    pts = points(read(source_path(assignment)))
    expected = {cell: phrase for m in mutants for cell, phrase in m.fails.items()}
    row = batch["rows"][("mistakes", assignment)]
    assert row["status"] == "graded"
    assert float(row["score"]) == max_points(assignment) - sum(pts[c] for c in expected)
    cells = {c.id: c for c in autograded(batch, "mistakes", assignment).cells}
    for cell, phrase in expected.items():
        assert phrase.lower() in error_text(cells[cell]).lower(), (cell, error_text(cells[cell]))
    page = html.unescape(Path(row["feedback"]).read_text())
    for m in mutants:
        phrase = next(iter(m.fails.values()))
        assert phrase in page, f"the feedback shows the message for {m.name}"


def test_submissions_that_cannot_be_graded_are_named(batch):
    rows, out = batch["rows"], batch["out"]
    expect = {
        ("damaged", "01_forward"): "not valid JSON",
        ("renamed", "01_forward"): "renamed notebook: found forward (1).ipynb",
        (
            "misplaced",
            "02_bptt",
        ): "not in an assignment folder: expected misplaced/02_bptt/bptt.ipynb",
    }
    for key, reason in expect.items():
        assert rows[key]["status"] == "not graded" and rows[key]["score"] == "", key
        assert reason in rows[key]["reason"], rows[key]
        assert f"not graded: {key[0]} {key[1]}" in out


def test_a_process_that_ends_costs_only_its_own_tests(batch):
    """os._exit in one answer cell: the sandbox restarts, the other functions are graded."""
    row = batch["rows"][("crash", "02_bptt")]
    pts = points(read(source_path("02_bptt")))
    lost = pts["test_rnn_backward"] + pts["test_rnn_backward_one_step"]
    assert row["status"] == "stopped" and float(row["score"]) == max_points("02_bptt") - lost
    assert "rnn_backward" in row["reason"] and "exited with code 1" in row["reason"]
    assert "ended its own process" in row["tampering"]
    assert "stopped: crash 02_bptt/bptt" in batch["out"]


def test_repairs_are_noted_and_stderr_costs_nothing(batch):
    row = batch["rows"][("tamper", "03_clipping")]
    assert row["status"] == "graded" and float(row["score"]) == max_points("03_clipping")
    assert "restored: test_global_norm" in row["notes"]
    assert "re-added: test_clip_grad_value" in row["notes"]


def hidden_lines():
    """Lines of hidden tests that appear nowhere in the release notebooks."""
    lines, public = set(), ""
    for a in ASSIGNMENTS:
        public += release_path(a).read_text()
        for cell in read(source_path(a)).cells:
            if is_test(cell):
                hidden = re.search(
                    r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.S
                )
                lines |= {ln.strip() for ln in hidden.group(1).splitlines() if len(ln.strip()) > 12}
    return {ln for ln in lines if json.dumps(ln)[1:-1] not in public}


def test_feedback_never_shows_hidden_tests(batch):
    secret = hidden_lines()
    pages = sorted((batch["workdir"] / "feedback").glob("*/*/*.html"))
    assert len(pages) == sum(r["status"] != "not graded" for r in batch["rows"].values())
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        leaked = [ln for ln in secret if ln in text]
        assert not leaked, (page, leaked[:3])
        assert "HIDDEN TESTS" not in text


def test_grading_time_per_notebook(batch):
    graded = [r for r in batch["rows"].values() if r["status"] == "graded"]
    per = sum(float(r["seconds"]) for r in graded) / len(graded)
    assert per < 60, f"{per:.1f} s per notebook"


# ---------------------------------------------------------------- fast unit checks


def test_layout_checks(tmp_path):
    known = {"01_forward": {"forward": 12.0}}
    write(tmp_path / "s1" / "01_forward", text="", assignment="01_forward")
    write(tmp_path / "s2" / "01_forward", text="{}", name="notes.txt")
    write(tmp_path / "s3" / "99_other", text="{}", name="x.ipynb")
    write(tmp_path / "s4" / "01_forward", student_notebook("01_forward"), assignment="01_forward")
    jobs, rows = discover(tmp_path, known)
    assert [(j.student_id, j.assignment, j.notebooks) for j in jobs] == [
        ("s4", "01_forward", ["forward"])
    ]
    reasons = {r.student_id: r.reason for r in rows}
    assert "is empty" in reasons["s1"]
    assert "no notebook: expected forward.ipynb" in reasons["s2"]
    assert "unknown assignment folder '99_other'" in reasons["s3"]
    assert check_notebook(tmp_path / "s4" / "01_forward" / "forward.ipynb") is None


def test_hidden_frames_are_dropped_from_tracebacks():
    tb = [
        "\x1b[31m---\x1b[39m",
        "\x1b[36mCell\x1b[39m \x1b[32mIn[7]\x1b[39m, line 3\n secret_hidden_test()",
        "Cell In[2], line 40, in _check\n helper code",
        "AssertionError: what is wrong",
    ]
    assert hide_cell_frames(tb, 7) == [tb[0], tb[2], tb[3]]
    assert hide_cell_frames(tb, None) == tb


def test_make_grade_needs_its_arguments():
    proc = subprocess.run([*MAKE, "grade"], cwd=ROOT, capture_output=True, text=True)
    assert (
        proc.returncode != 0
        and "usage: make grade SUBMISSIONS=<dir> GRADES=<file.csv>" in proc.stdout
    )


def test_stock_nbgrader_commands_with_the_course_config(tmp_path):
    """`nbgrader generate_assignment / autograde / generate_feedback / export`, the stock
    commands with nbgrader_config.py (its sandboxed execution): a correct notebook gets full
    marks; when the sandbox cannot start, the submission fails loudly (an error in nbgrader's
    log, a non-zero exit, no autograded notebook), never a silent 0."""
    a, nb = "03_clipping", NOTEBOOK["03_clipping"]
    for student in ("ok", "nobox"):
        write(tmp_path / "submitted" / student / a, student_notebook(a), assignment=a)
    where = [
        f"--CourseDirectory.submitted_directory={tmp_path / 'submitted'}",
        f"--CourseDirectory.autograded_directory={tmp_path / 'autograded'}",
        f"--CourseDirectory.feedback_directory={tmp_path / 'feedback'}",
        f"--CourseDirectory.release_directory={tmp_path / 'release'}",
        f"--CourseDirectory.db_url=sqlite:///{tmp_path / 'gradebook.db'}",
        f"--SandboxedExecute.report_dir={tmp_path / 'reports'}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPTT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # alembic
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"

    def nbgrader(*args, **extra):
        cmd = [sys.executable, "-m", "nbgrader", *args, *where]
        run = {"capture_output": True, "text": True, "env": {**env, **extra}, "timeout": 300}
        return subprocess.run(cmd, cwd=ROOT, **run)

    assert nbgrader("generate_assignment", a, "--force").returncode == 0
    ok = nbgrader("autograde", a, "--student=ok")
    assert ok.returncode == 0, ok.stderr[-3000:]
    bad = nbgrader("autograde", a, "--student=nobox", BPTT_BWRAP=str(tmp_path / "no-bwrap"))
    assert bad.returncode != 0, bad.stderr[-3000:]
    errors = [ln for ln in bad.stderr.splitlines() if "| ERROR]" in ln]
    assert any("the sandbox could not start" in ln for ln in errors), bad.stderr[-3000:]
    assert not (tmp_path / "autograded" / "nobox" / a / nb).exists(), "no zero is recorded"
    assert (tmp_path / "autograded" / "ok" / a / nb).is_file()
    fb = nbgrader("generate_feedback", a, "--student=ok")
    assert fb.returncode == 0, fb.stderr[-3000:]
    assert (tmp_path / "feedback" / "ok" / a / nb.replace(".ipynb", ".html")).is_file()
    out = tmp_path / "grades.csv"
    ex = nbgrader("export", f"--CsvExportPlugin.to={out}")
    assert ex.returncode == 0, ex.stderr[-3000:]
    with out.open() as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert float(rows["ok"]["raw_score"]) == max_points(a)


def test_the_per_question_csv_imports_into_a_gradebook(batch):
    """Canvas's gradebook CSV: Student, ID, one column per graded test cell, Total, Max; the
    second line is "Points Possible"; a notebook that could not be graded leaves its cells empty."""
    path = batch["grades"].with_name("grades-by-question.csv")
    with path.open() as fh:
        lines = list(csv.reader(fh))
    header, possible, *students = lines
    questions = [(a, q, p) for a in ASSIGNMENTS for q, p in points(read(source_path(a))).items()]
    want = [f"{a}/{NOTEBOOK[a][:-6]}: {q}" for a, q, _ in questions]
    assert header == ["Student", "ID", *want, "Total", "Max"]
    total = sum(p for *_, p in questions)
    assert possible == [
        "Points Possible",
        "",
        *(f"{p:g}" for *_, p in questions),
        f"{total:g}",
    ] * 1 + [f"{total:g}"]
    by_id = {line[1]: dict(zip(header, line, strict=True)) for line in students}
    assert set(by_id) == {k[0] for k in batch["rows"]}
    assert by_id["reference"]["Total"] == f"{total:g}" and by_id["untouched"]["Total"] == "0"
    mistakes = by_id["mistakes"]
    for a in ASSIGNMENTS:
        failing = {c for m in combined_mistakes(a) for c in m.fails}
        for q, p in points(read(source_path(a))).items():
            got = float(mistakes[f"{a}/{NOTEBOOK[a][:-6]}: {q}"])
            assert got == (0.0 if q in failing else p), (a, q)
    scores = [float(r["score"]) for r in batch["rows"].values() if r["student_id"] == "mistakes"]
    assert float(mistakes["Total"]) == sum(scores)
    assert by_id["damaged"]["01_forward/forward: test_rnn_step_forward"] == "", "not 0"


def test_one_student_is_regraded_alone(batch):
    """`make grade STUDENT=<id>`: that student's submissions are graded anew, every other row of
    the CSV is kept as it was."""
    before = {k: r for k, r in batch["rows"].items()}
    again = batch["grades"].with_name("one.csv")
    proc = subprocess.run(
        [*MAKE, "grade", f"SUBMISSIONS={batch['subs']}", f"GRADES={again}",
         f"GRADING_DIR={batch['workdir']}", "WORKERS=1", "STUDENT=crash"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    graded = re.findall(r"^(\S+) (\S+)/\S+: .*\(\d+\.\d s\)$", proc.stdout, re.M)
    assert graded == [("crash", "02_bptt")], proc.stdout
    with again.open() as fh:
        after = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}
    assert after.keys() == before.keys()
    for key, row in before.items():
        if key[0] != "crash":
            assert after[key] == row, key
    assert (after[("crash", "02_bptt")]["status"], after[("crash", "02_bptt")]["score"]) == (
        before[("crash", "02_bptt")]["status"],
        before[("crash", "02_bptt")]["score"],
    )


def test_the_limits_have_one_home():
    """The four limits' defaults are written once, in grader/limits.py; the Makefile, the nbgrader
    configuration, the CLI and the preprocessor take them from there."""
    import io
    import tokenize

    from grader.__main__ import parser
    from grader.execute import SandboxedExecute
    from grader.limits import DEFAULTS

    homes = []
    for path in [ROOT / "nbgrader_config.py", *sorted((ROOT / "grader").glob("*.py"))]:
        text = path.read_text()
        homes += [path.name] * text.count("4 * 2**30")  # the memory
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NUMBER and tok.string.replace("_", "") in (
                "60", "60.0", "600", "600.0", "100000"):  # fmt: skip
                homes.append(path.name)
            if (
                tok.type == tokenize.STRING
                and re.search(r"\b4G\b", tok.string)
                and '"""' not in tok.string
            ):
                homes.append(path.name)
    assert set(homes) == {"limits.py"} and len(homes) >= 4, homes
    make = [ln.split("#")[0] for ln in (ROOT / "Makefile").read_text().splitlines()]
    assert not [ln for ln in make if re.search(r"\b(4G|60|600|100_?000)\b", ln)]
    args = parser().parse_args(["subs", "grades.csv"])
    assert (args.memory, args.cell_timeout) == (DEFAULTS.memory, DEFAULTS.cell_timeout)
    assert (args.notebook_timeout, args.max_output) == (
        DEFAULTS.notebook_timeout,
        DEFAULTS.max_output,
    )
    assert SandboxedExecute().limits() == DEFAULTS


def test_the_grader_is_smaller_than_the_course():
    def lines(folder):
        return sum(len(p.read_text().splitlines()) for p in (ROOT / folder).glob("*.py"))

    assert lines("grader") < lines("bptt"), "grader/ has grown past the course package bptt/"
