"""Shared by the exercise tests: read the nbgrader notebooks, run their cells in-process,
and build students' submissions (correct, untouched or with a typical mistake).

The notebooks in ``solutions/`` are the single source of truth; nothing here knows the
reference solutions except by reading them from there.
"""

from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import torch

from bptt.oracles import max_rel_error  # noqa: F401 - for the assignments' test modules
from grader.registry import by_id

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"

# From the registry (solutions/assignments.toml), the one list of assignments:
# assignment id -> (notebook name, chapter file), and the graded functions (the contract).
REGISTRY = by_id()
ASSIGNMENTS = {a.id: (a.notebook, f"{a.chapter}.md") for a in REGISTRY.values()}
CONTRACT = {a.id: list(a.functions) for a in REGISTRY.values()}


def source_path(assignment: str) -> Path:
    return SOLUTIONS / assignment / f"{ASSIGNMENTS[assignment][0]}.ipynb"


def release_path(assignment: str) -> Path:
    return EXERCISES / assignment / f"{ASSIGNMENTS[assignment][0]}.ipynb"


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def is_solution(cell) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_test(cell) -> bool:
    """A graded test cell that carries points (the 0-point read-only helper cells are not)."""
    m = nbgrader_meta(cell)
    return bool(m.get("grade")) and not m.get("solution") and m.get("points", 0) > 0


def points(nb) -> dict[str, float]:
    return {
        c.metadata.nbgrader["grade_id"]: float(nbgrader_meta(c)["points"])
        for c in nb.cells
        if is_test(c)
    }


def strip_solution_markers(source: str) -> str:
    """What a student who wrote the reference solution would have in the cell."""
    return "\n".join(
        line
        for line in source.split("\n")
        if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
    )


def strip_hidden_tests(source: str) -> str:
    return re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", source, flags=re.S)


def solution_sources(assignment: str) -> dict[str, str]:
    """grade_id -> the reference solution code of each solution cell."""
    nb = read(source_path(assignment))
    return {c.id: strip_solution_markers(c.source) for c in nb.cells if is_solution(c)}


def run_cells(
    nb, replace: dict[str, str] | None = None, hidden: bool = True, shortcut: bool = False
) -> dict[str, str | None]:
    """Execute the notebook's code cells in one namespace, in order, like a kernel would.

    Returns {test cell id: None if it passed, else "ExceptionType: message"}; an error in a
    non-test cell is reported under that cell's id too. ``shortcut`` (for the source notebook
    with ``replace``d solution cells) skips what cannot change a result: the test cells before
    the first replaced cell, which run the reference's code only (they pass, as
    test_notebook_tests_pass_on_reference shows), and the ungraded cells after the last test.
    """
    replace = replace or {}
    namespace: dict = {"__name__": "__main__"}
    results: dict[str, str | None] = {}
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = next((i for i, c in enumerate(code) if c.id in replace), len(code))
    last = max((i for i, c in enumerate(code) if is_test(c)), default=len(code))
    for i, cell in enumerate(code):
        if shortcut and ((i < first and is_test(cell)) or i > last):
            results.update({cell.id: None} if is_test(cell) else {})
            continue
        source = replace.get(cell.id, cell.source)
        if not hidden:
            source = strip_hidden_tests(source)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # as in the grader's kernels (PYTHONWARNINGS)
                exec(compile(source, f"<cell {cell.id}>", "exec"), namespace)
            error = None
        except Exception as e:  # noqa: BLE001 - a failing cell is data here
            error = f"{type(e).__name__}: {e}"
        if is_test(cell) or error:
            results[cell.id] = error
    return results


@dataclass
class Mutant:
    """A typical student mistake: edit one solution cell of one assignment.

    ``edits`` are (old, new) substitutions applied to the reference solution of ``cell``
    (each ``old`` must occur), or ``code`` replaces the whole cell. ``fails`` maps every test
    cell that must fail to a phrase its message must contain; all other test cells must pass.
    """

    assignment: str
    name: str
    cell: str
    fails: dict[str, str]
    edits: list[tuple[str, str]] = field(default_factory=list)
    code: str | None = None

    def source(self) -> str:
        if self.code is not None:
            return self.code
        source = solution_sources(self.assignment)[self.cell]
        for old, new in self.edits:
            if old not in source:
                raise ValueError(f"{self.name}: {old!r} is not in the solution of {self.cell}")
            source = source.replace(old, new)
        return source


def mutant_replacements(mutants: list[Mutant]) -> dict[str, str]:
    """Several mutants of one assignment (on different cells) applied together."""
    out: dict[str, str] = {}
    for m in mutants:
        if m.cell in out:
            raise ValueError(f"two mutants edit cell {m.cell}")
        out[m.cell] = m.source()
    return out


def student_notebook(assignment: str, replace: dict[str, str] | None = None, solved: bool = True):
    """A submission as a student would hand it in: the release notebook with the solution cells
    filled in by the reference solution (``solved``), then ``replace`` applied."""
    nb = copy.deepcopy(read(release_path(assignment)))
    solutions = solution_sources(assignment)
    for cell in nb.cells:
        if solved and cell.id in solutions:
            cell.source = solutions[cell.id]
        if replace and cell.id in replace:
            cell.source = replace[cell.id]
    return nb


# ---------------------------------------------------------------- oracles' helpers

TOL = 1e-10


def reference(assignment: str) -> dict:
    """The namespace of a source notebook's code without its test helpers and tests: the given
    code and the reference solutions, as a student who solved it would have them."""
    namespace: dict = {"__name__": "reference"}
    solutions = solution_sources(assignment)
    for cell in read(source_path(assignment)).cells:
        if (
            cell.cell_type != "code"
            or nbgrader_meta(cell).get("grade_id") == "checks"
            or is_test(cell)
        ):
            continue
        exec(compile(solutions.get(cell.id, cell.source), cell.id, "exec"), namespace)
    return namespace


def t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def rnn_data(rng, T=6, B=3, D=5, H=4):
    W_hh = rng.standard_normal((H, H)) / np.sqrt(H)
    assert not np.allclose(W_hh, W_hh.T)
    return (
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        rng.standard_normal((H, D)) / np.sqrt(D),
        W_hh,
        rng.standard_normal(H),
    )


def rnn_problem(rng, T, B, D, H, V):
    """(params, xs, h0, targets): rnn_data's RNN with a readout (V outputs) and integer targets."""
    xs, h0, W_xh, W_hh, b_h = rnn_data(rng, T, B, D, H)
    params = {"W_xh": W_xh, "W_hh": W_hh, "b_h": b_h}
    params |= {"W_hy": rng.standard_normal((V, H)), "b_y": rng.standard_normal(V)}
    return params, xs, h0, rng.integers(0, V, (T, B))


def torch_rnn(W_xh, W_hh, b_h):
    H, D = W_xh.shape
    rnn = torch.nn.RNN(D, H, dtype=torch.float64)
    with torch.no_grad():
        for name, value in zip(
            rnn._flat_weights_names, (W_xh, W_hh, b_h, np.zeros(H)), strict=False
        ):
            getattr(rnn, name).copy_(t(value))
    return rnn


def torch_full_bptt(params, xs, h0, targets):
    """The course's RNN with its readout, by torch.autograd through nn.RNN (copied weights):
    the loss (summed over time, averaged over the batch), the gradients as numpy arrays keyed
    like ``params``, and the states hs (T, B, H)."""
    W_hy, b_y = t(params["W_hy"]).requires_grad_(), t(params["b_y"]).requires_grad_()
    rnn = torch_rnn(params["W_xh"], params["W_hh"], params["b_h"])
    out, _ = rnn(t(xs), t(h0)[None])
    z = (out @ W_hy.T + b_y).reshape(-1, W_hy.shape[0])
    targets = torch.tensor(np.asarray(targets)).reshape(-1)
    loss = torch.nn.functional.cross_entropy(z, targets, reduction="sum") / xs.shape[1]
    loss.backward()
    return loss.item(), rnn_grads(rnn, W_hy, b_y), out.detach().numpy()


def rnn_grads(rnn, W_hy, b_y) -> dict:
    """The gradients left by a backward pass on nn.RNN and its readout, keyed as in params."""
    grads = rnn.weight_ih_l0.grad, rnn.weight_hh_l0.grad, rnn.bias_ih_l0.grad, W_hy.grad, b_y.grad
    names = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")
    return {n: g.numpy() for n, g in zip(names, grads, strict=True)}


def assignment_tests(assignment: str):
    """tests/assignments/test_<id>.py, the module with the assignment's mistakes and variations."""
    import importlib.util

    path = ROOT / "tests" / "assignments" / f"test_{assignment}.py"
    if not path.exists():
        raise FileNotFoundError(f"{assignment} has no test module {path.relative_to(ROOT)}")
    spec = importlib.util.spec_from_file_location(f"assignment_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_mutants() -> tuple[list[Mutant], list[Mutant]]:
    """(mistakes, variations) of every registered assignment."""
    modules = [assignment_tests(a) for a in ASSIGNMENTS]
    return [m for mod in modules for m in mod.MUTANTS], [v for mod in modules for v in mod.VARIANTS]
