"""The site checker: its link logic without a browser, and its self-test with one."""

import shutil
from pathlib import Path

import pytest

from bptt.tools.site_check import (
    _download_problems,
    _launch_problems,
    _link_problems,
    main,
    pages,
)

from conftest import ROOT

ORIGIN = "http://127.0.0.1:8000/"


def make_site(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "a.html").write_text('<h1 id="top">A</h1>')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "theme.html").write_text("asset")
    (tmp_path / "genindex.html").write_text("index")
    return tmp_path


def test_pages_skip_theme_assets_and_indexes(tmp_path):
    site = make_site(tmp_path)
    assert [p.relative_to(site).as_posix() for p in pages(site)] == ["book/a.html"]


def test_link_problems(tmp_path):
    site = make_site(tmp_path)
    links = [
        ORIGIN + "book/a.html#top",  # fine
        ORIGIN + "book/a.html",  # fine
        "https://example.org/x",  # external: not followed
        ORIGIN + "book/b.html",  # missing page
        ORIGIN + "book/a.html#nope",  # missing anchor
    ]
    assert _link_problems(links, ORIGIN, site, {}) == [
        "broken anchor: book/a.html#nope",
        "broken link: book/b.html",
    ]


def test_launch_buttons_must_open_existing_notebooks(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "a.ipynb").write_text("{}")
    colab = "https://colab.research.google.com/github/o/r/blob/main/book/"
    binder = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/"
    links = [colab + "a.ipynb", binder + "a.ipynb", colab + "a.md", binder + "b.ipynb"]
    problems = _launch_problems(links, tmp_path)
    assert len(problems) == 2
    assert "book/a.md, not a notebook" in problems[0]
    assert "book/b.ipynb, which the repository lacks" in problems[1]


def test_main_rejects_a_folder_without_mathjax(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--mathjax", str(tmp_path)])
    assert "not a mathjax@3 package folder" in capsys.readouterr().err


MATHJAX = ROOT / "_build" / "tools" / "mathjax"


@pytest.mark.skipif(
    not shutil.which("chromium") or not (MATHJAX / "es5" / "tex-mml-chtml.js").exists(),
    reason="needs Debian's chromium and MathJax (`make check-site` installs both)",
)
def test_self_test_detects_every_problem():
    assert main(["--self-test", "--mathjax", str(Path(MATHJAX))]) == 0


def test_the_ipynb_download_must_be_the_paired_notebook(tmp_path):
    (tmp_path / "site").mkdir()
    site, repo = make_site(tmp_path / "site"), tmp_path / "repo"
    (site / "_sources" / "book").mkdir(parents=True)
    (repo / "book").mkdir(parents=True)
    (repo / "book" / "a.ipynb").write_text('{"paired": true}')
    link = ORIGIN + "_sources/book/a.ipynb"
    (site / "_sources" / "book" / "a.ipynb").write_text('{"myst-nb": "conversion"}')
    assert "not the paired notebook" in _download_problems([link], ORIGIN, site, repo)[0]
    (site / "_sources" / "book" / "a.ipynb").write_text('{"paired": true}')
    assert _download_problems([link], ORIGIN, site, repo) == []
    (repo / "book" / "a.ipynb").unlink()
    assert "lacks" in _download_problems([link], ORIGIN, site, repo)[0]
