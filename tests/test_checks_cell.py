"""The notebooks' shared test helpers have one source, solutions/checks_common.py."""

import nbformat
import pytest

from bptt.tools.checks_cell import COMMON, MARK, checks_cell, main, stale, write
from grader.registry import assignments


@pytest.mark.parametrize("a", assignments(), ids=lambda a: a.id)
def test_source_and_release_carry_the_module_verbatim(a):
    for path in (a.source, a.release):
        source = checks_cell(nbformat.read(path, as_version=4)).source
        assert source.startswith(COMMON + "\n\n" + MARK), f"{path}: run make exercises"


def test_check_fails_on_a_stale_copy_and_write_mends_it(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    nb = nbformat.read(assignments()[0].source, as_version=4)
    cell = checks_cell(nb)
    cell.source = cell.source.replace("def _tc_fail(message):", "def _tc_fail(msg):", 1)
    nbformat.write(nb, path)
    assert stale(path)
    assert write(path) and not stale(path)
    assert main(["check"]) == 0, capsys.readouterr().err


def test_a_checks_cell_without_the_marker_is_refused(tmp_path):
    path = tmp_path / "nb.ipynb"
    nb = nbformat.read(assignments()[0].source, as_version=4)
    checks_cell(nb).source = "def _tc_fail(m):\n    raise AssertionError(m)\n"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="has no line"):
        stale(path)
