"""The nbgrader assignments, outside Jupyter (fast; the real nbgrader pipeline is in
test_grading.py).

1. Structure: the fixed contract, no manually graded cells, no outputs, hidden tests in every
   test cell, no `import bptt` (students do not have the package), the chapter named.
2. The reference solutions (extracted from solutions/) against oracles written here, independently
   of the notebooks' own test helpers: torch modules with copied weights, torch.autograd, finite
   differences, torch.nn.utils' clipping.
3. The notebooks' own test cells, visible and hidden: all pass on the reference solutions and on
   valid variations, all fail on the untouched release notebooks, and each typical mistake fails
   exactly the expected cells with a message that names it.
4. exercises/ is what `make exercises` generates from solutions/.
"""

from __future__ import annotations

import inspect
import json
import re

import pytest
import torch
from exercise_harness import (
    ASSIGNMENTS,
    CONTRACT,
    ROOT,
    all_mutants,
    assignment_tests,
    is_solution,
    is_test,
    nbgrader_meta,
    points,
    read,
    release_path,
    run_cells,
    source_path,
)

MUTANTS, VARIANTS = all_mutants()


torch.set_num_threads(1)
F = torch.nn.functional
TOL = 1e-10


# ---------------------------------------------------------------- 1. structure


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_structure(assignment):
    notebook, chapter = ASSIGNMENTS[assignment]
    nb = read(source_path(assignment))
    intro = nb.cells[0].source
    assert f"book/{chapter}" in intro, "the first cell names the chapter's file"
    assert (ROOT / "book" / chapter).exists()
    ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "grade ids are unique"
    solution_ids = [c.id for c in nb.cells if is_solution(c)]
    assert solution_ids, "there are solution cells"
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        assert not (meta.get("grade") and meta.get("solution")), "no manually graded cells"
        assert not meta.get("task"), "no manually graded task cells"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{cell.id} has outputs"
            assert not re.search(r"^\s*(import bptt|from bptt)", cell.source, re.M), cell.id
        if is_solution(cell):
            assert cell.cell_type == "code"
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        if is_test(cell):
            assert meta["locked"], f"{cell.id} is read-only"
            assert "### BEGIN HIDDEN TESTS" in cell.source, f"{cell.id} has hidden tests"
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert re.search(r"_check\w*\(", visible), f"{cell.id} has visible tests"
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1]
            assert re.search(r"^\s*_check\w*\(", hidden, re.M), f"{cell.id}'s hidden tests check"
            last = visible.rstrip().splitlines()[-1]
            assert last.startswith("_tc_passed("), f"{cell.id}'s visible tests end by saying so"
    total = sum(points(nb).values())
    table = [int(p) for p in re.findall(r"^\|.*\| (\d+) \|$", intro, re.M)]
    assert sum(table) == total, "the points in the introduction's table add up to the test cells'"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_contract_signatures(assignment, ref):
    """The graded functions exist with the contract's parameter names, in source and release."""
    ns = ref(assignment)
    release = "\n".join(c.source for c in read(release_path(assignment)).cells)
    for name in CONTRACT[assignment]:
        params = list(inspect.signature(ns[name]).parameters)
        assert f"def {name}({', '.join(params)}" in release
    expected = {
        "rnn_backward": ["dhs", "xs", "h0", "hs", "W_xh", "W_hh"],
        "numerical_gradient": ["f", "x", "eps"],
        "clip_grad_norm": ["grads", "max_norm", "eps"],
        "truncated_bptt_grads": ["params", "xs", "h0", "targets", "k"],
        "lstm_step_backward": ["dh", "dc", "x", "h_prev", "c_prev", "W_x", "W_h", "b"],
        "gru_step_forward": ["x", "h_prev", "W_x", "W_h", "b_x", "b_hn"],
        "input_grad_norms": ["model", "xs"],
    }
    for name, params in expected.items():
        if name in ns:
            assert list(inspect.signature(ns[name]).parameters) == params


# ---------------------------------------------------------------- 2. reference vs oracles


# ---------------------------------------------------------------- 3. the notebooks' own tests


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_tests_pass_on_reference(assignment):
    results = run_cells(read(source_path(assignment)))
    assert results and all(v is None for v in results.values()), results


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_tests_fail_on_release(assignment):
    """Untouched release notebooks fail every graded test (they would score 0). A blank solution
    cell says "not implemented yet"; an assignment that releases code to debug declares, in its
    test module's RELEASE_FAILS, the phrase each test cell's message must contain instead."""
    source = read(source_path(assignment))
    release = read(release_path(assignment))
    # The release notebook's cells with the source's tests (as nbgrader restores them).
    tests = {c.id: c.source for c in source.cells if is_test(c)}
    results = run_cells(release, tests)
    assert set(results) == set(tests)
    expected = getattr(assignment_tests(assignment), "RELEASE_FAILS", None)
    if expected is None:
        expected = dict.fromkeys(tests, "not implemented yet")
    assert set(expected) == set(tests), "RELEASE_FAILS names every test cell"
    for cell, phrase in expected.items():
        assert results[cell] and results[cell].startswith("CheckFailed"), (cell, results[cell])
        assert phrase.lower() in results[cell].lower(), (cell, results[cell])


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: f"{m.assignment}: {m.name}")
def test_mistake_loses_points_with_a_message(mutant):
    results = run_cells(
        read(source_path(mutant.assignment)), {mutant.cell: mutant.source()}, shortcut=True
    )
    failed = {k: v for k, v in results.items() if v}
    assert set(failed) == set(mutant.fails), failed
    for cell, phrase in mutant.fails.items():
        assert failed[cell].startswith("CheckFailed"), failed[cell]  # a check named it
        assert phrase.lower() in failed[cell].lower(), (cell, failed[cell])


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda m: f"{m.assignment}: {m.name}")
def test_valid_variation_keeps_full_marks(variant):
    results = run_cells(
        read(source_path(variant.assignment)), {variant.cell: variant.source()}, shortcut=True
    )
    assert all(v is None for v in results.values()), results


def test_every_graded_function_has_mistakes_and_a_variation():
    edited = {(m.assignment, m.cell) for m in MUTANTS}
    varied = {(m.assignment, m.cell) for m in VARIANTS}
    for assignment, functions in CONTRACT.items():
        for name in functions:
            assert (assignment, name) in edited, f"no typical mistake for {name}"
    assert len(varied) >= 10


# ---------------------------------------------------------------- 4. release in sync


def normalised(path):
    nb = json.loads(path.read_text())
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        cell["source"] = (
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        )
    return nb


def test_exercises_are_generated_from_solutions(tmp_path):
    from grader.release import generate_release

    paths = generate_release(tmp_path / "release", workdir=tmp_path / "work")
    assert len(paths) == len(ASSIGNMENTS)
    committed = sorted(
        p.relative_to(ROOT / "exercises") for p in (ROOT / "exercises").glob("*/*.ipynb")
    )
    assert committed == sorted(p.relative_to(tmp_path / "release") for p in paths)
    for path in paths:
        rel = path.relative_to(tmp_path / "release")
        assert normalised(ROOT / "exercises" / rel) == normalised(path), (
            f"exercises/{rel} differs from what solutions/ generates: run `make exercises`"
        )
    text = "\n".join(p.read_text() for p in paths)
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
