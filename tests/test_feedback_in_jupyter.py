"""What a student sees in Jupyter when a test cell runs: one line when it passes, the message
alone when it fails (no helper frames, no chained traceback). Run in a real IPython shell."""

import pytest
from IPython.core.interactiveshell import InteractiveShell

from bptt.tools.checks_cell import COMMON

STUDENT = """
def softmax(z):
    e = np.exp(z)  # no shift: overflows
    return e / e.sum(axis=-1, keepdims=True)


def rnn_step_backward(dh, x, h_prev, h, W_xh, W_hh):
    da = dh * (1 - h ** 2)
    return da @ W_xh.T  # the forward pass's habit
"""

CHECK = """
def _check_backward(fn):
    x, W = np.ones((3, 5)), np.ones((4, 5))
    _tc_call(fn, dict(dh=np.ones((3, 4)), x=x, h_prev=np.ones((3, 4)), h=np.zeros((3, 4)),
                      W_xh=W, W_hh=np.ones((4, 4))))


def _check_softmax(fn):
    got = _tc_call(fn, dict(z=np.array([[1000.0, 0.0, -3.0]])))
    _tc_compare("softmax", got, np.array([[1.0, 0.0, 0.0]]))


def _check_with_hint(fn):
    try:
        _tc_fail("rnn_backward's dW_hh does not match torch.autograd.")
    except AssertionError as e:
        _tc_fail(f"{e} If rnn_step_backward's tests fail too, fix it first.")
"""


@pytest.fixture(scope="module")
def shell():
    sh = InteractiveShell.instance()
    sh.colors = "nocolor"
    assert sh.run_cell(COMMON + CHECK + STUDENT).success
    yield sh
    InteractiveShell.clear_instance()


def run(shell, capsys, code):
    result = shell.run_cell(code)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


def test_a_passing_cell_says_so_in_one_line(shell, capsys):
    result, out = run(shell, capsys, '_tc_passed("rnn_step_backward")')
    assert result.success
    assert out == "✓ rnn_step_backward: visible tests passed (hidden tests run when graded)\n"


def test_a_failing_cell_shows_the_message_alone(shell, capsys):
    result, out = run(shell, capsys, "_check_backward(rnn_step_backward)")
    assert not result.success and isinstance(result.error_in_exec, AssertionError)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("\x1b[31m✗ rnn_step_backward raised"), out
    assert "with no .T" in out and "backward" in out  # the backward rule, not the forward one
    assert "at `return da @ W_xh.T" in out  # the student's line, found in their traceback
    for frame in ("Traceback", "_tc_call", "During handling", "File "):
        assert frame not in out, out


def test_a_hint_added_to_a_failure_is_not_a_second_traceback(shell, capsys):
    result, out = run(shell, capsys, "_check_with_hint(None)")
    assert not result.success
    assert out.count("✗") == 1 and "During handling" not in out, out
    assert "does not match torch.autograd. If rnn_step_backward's tests fail too" in out


def test_the_students_warnings_go_into_the_message(shell, capsys):
    result, out = run(shell, capsys, "_check_softmax(softmax)")
    lines = [line for line in out.splitlines() if line.strip()]
    assert not result.success and len(lines) == 1, out
    assert "NaN or inf" in out and "Your code warned: RuntimeWarning: overflow" in out, out
    result, out = run(shell, capsys, '_tc_passed("softmax")')  # and they do not linger
    assert "warned" not in out


def test_the_students_own_errors_keep_their_traceback(shell, capsys):
    result, out = run(shell, capsys, "def f():\n    return 1 / 0\nf()")
    assert not result.success and "ZeroDivisionError" in out and "✗" not in out


def test_a_release_notebook_in_a_kernel_shows_one_line_per_test_cell():
    """02_bptt as a student runs it in Jupyter: the reference solution with one mistake (the
    forward pass's .T in dx). The failing cells show one red line each, the others the ✓ line."""
    import nbclient
    from exercise_harness import is_test, solution_sources, student_notebook

    mistake = solution_sources("02_bptt")["rnn_step_backward"].replace(
        "return da @ W_xh,", "return da @ W_xh.T,"
    )
    nb = student_notebook("02_bptt", {"rnn_step_backward": mistake})
    nbclient.NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=60).execute()
    failing = {"test_rnn_step_backward", "test_rnn_backward_one_step", "test_rnn_backward"}
    tests = [c for c in nb.cells if is_test(c)]
    assert {c.id for c in tests} >= failing
    for cell in tests:
        name = cell.id.removeprefix("test_")
        if cell.id in failing:
            (out,) = cell.outputs
            assert out.output_type == "error" and out.ename == "CheckFailed", out
            (line,) = out.traceback  # the message alone: no frames, no chained traceback
            assert line.startswith("\x1b[31m✗ ") and "with no .T" in line, line
            assert "at `return da @ W_xh.T" in line, line  # the student's line, from the kernel
        else:
            assert [(o.output_type, o.get("text")) for o in cell.outputs] == [
                ("stream", f"✓ {name}: visible tests passed (hidden tests run when graded)\n")
            ], cell.outputs
