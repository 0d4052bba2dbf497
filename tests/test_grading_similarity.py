"""`make similarity`: a copy of another student's answers, with renamed variables, new comments
and another layout, is reported; an independently written correct solution is not, and neither
are untouched notebooks (the given scaffolding alone)."""

from __future__ import annotations

import csv
import subprocess

import nbformat
from exercise_harness import ROOT, student_notebook
from test_grading import MAKE

A = "03_clipping"
COPY = {
    "global_norm": '''def global_norm(grads):
    """The L2 norm of all entries of all arrays in the list grads, as a float."""
    # my own implementation!!
    return float( np.sqrt( sum( np.sum(arr*arr)
                                for arr in grads ) ) )
''',
    "clip_grad_norm": '''def clip_grad_norm(grads, max_norm, eps=1e-6):
    """Scale the arrays of grads in place so that their global norm is at most max_norm.

    Returns the global norm before clipping; raises FloatingPointError if it is NaN or infinite.
    """
    norm_before = global_norm(grads)

    if not np.isfinite(norm_before):
        raise FloatingPointError(f"bad norm {norm_before}")
    factor = max_norm/(norm_before+eps)
    if factor < 1:
        for arr in grads:
            arr *= factor   # in place
    return norm_before
''',
    "clip_grad_value": '''def clip_grad_value(grads, clip_value):
    """Clamp every entry of every array of grads, in place, to [-clip_value, clip_value]."""
    for arr in grads: np.clip(arr, -clip_value, clip_value, out=arr)
''',
}
HONEST = {
    "global_norm": '''def global_norm(grads):
    """The L2 norm of all entries of all arrays in the list grads, as a float."""
    squares = 0.0
    for array in grads:
        squares += float(np.vdot(array.ravel(), array.ravel()))
    return squares ** 0.5
''',
    "clip_grad_norm": '''def clip_grad_norm(grads, max_norm, eps=1e-6):
    """Scale the arrays of grads in place so that their global norm is at most max_norm.

    Returns the global norm before clipping; raises FloatingPointError if it is NaN or infinite.
    """
    n = global_norm(grads)
    if np.isnan(n) or np.isinf(n):
        raise FloatingPointError("the norm is " + str(n))
    if n + eps > max_norm:
        scale = max_norm / (n + eps)
        for i in range(len(grads)):
            np.multiply(grads[i], scale, out=grads[i])
    return n
''',
    "clip_grad_value": '''def clip_grad_value(grads, clip_value):
    """Clamp every entry of every array of grads, in place, to [-clip_value, clip_value]."""
    for array in grads:
        np.minimum(array, clip_value, out=array)
        np.maximum(array, -clip_value, out=array)
''',
}


def test_similarity_reports_copies_not_honest_solutions(tmp_path):
    subs = tmp_path / "subs"
    students = {
        "ada": student_notebook(A),  # the reference solution
        "bob": student_notebook(A, COPY),  # ada's, renamed and reformatted
        "cy": student_notebook(A, HONEST),  # written independently, also correct
        "dee": student_notebook(A, solved=False),  # untouched
        "eve": student_notebook(A, solved=False),  # untouched too
    }
    for sid, nb in students.items():
        (subs / sid / A).mkdir(parents=True)
        nbformat.write(nb, subs / sid / A / "clipping.ipynb")
    report = tmp_path / "similarity.csv"
    proc = subprocess.run([*MAKE, "similarity", f"SUBMISSIONS={subs}", f"REPORT={report}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with report.open() as fh:
        pairs = [
            (r["student_a"], r["student_b"], float(r["similarity"])) for r in csv.DictReader(fh)
        ]
    assert [p[:2] for p in pairs] == [("ada", "bob")], pairs
    assert pairs[0][2] > 0.9
    assert "1 suspicious pairs" in proc.stdout
