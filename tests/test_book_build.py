"""The strict build must fail on a failing cell and on a broken reference.

Runs the Makefile's own `book-strict` target on tiny books in a temporary
folder, so the flags under test are the flags `make test` uses.
"""

import shutil
import subprocess
import textwrap

import pytest

from conftest import ROOT

HEADER = """\
---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
"""


def build(tmp_path, body):
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    shutil.copy(ROOT / "book" / "references.bib", book / "references.bib")
    config = (book / "_config.yml").read_text().replace("book/references.bib", "references.bib")
    (book / "_config.yml").write_text(config)
    (book / "book" / "images").mkdir(parents=True)  # files the real config points at
    shutil.copy(ROOT / "book" / "images" / "favicon.png", book / "book" / "images")
    for folder in ("_ext", "_static"):  # the book's own Sphinx extension and stylesheet
        shutil.copytree(ROOT / "book" / folder, book / "book" / folder)
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (book / "page.md").write_text(HEADER + textwrap.dedent(body))
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "book-strict", f"BOOK={book}"],
        capture_output=True,
        text=True,
        timeout=300,
    ), book


@pytest.mark.parametrize(
    ("body", "expect_ok"),
    [
        ("# Fine\n\n```{code-cell} ipython3\nprint(1 + 1)\n```\n", True),
        ("# Broken cell\n\n```{code-cell} ipython3\n1 / 0\n```\n", False),
        ("# Broken reference\n\nSee {ref}`no-such-label`.\n", False),
    ],
    ids=["ok", "failing-cell", "broken-ref"],
)
def test_strict_build(tmp_path, body, expect_ok):
    result, book = build(tmp_path, body)
    assert (result.returncode == 0) is expect_ok, result.stdout[-3000:] + result.stderr[-3000:]
    if "1 / 0" in body:
        reports = list((book / "_build" / "html" / "reports").glob("*.err.log"))
        assert reports and "ZeroDivisionError" in reports[0].read_text()
