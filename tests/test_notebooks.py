"""Each chapter's paired .ipynb (for Colab/Binder) exists, is current and has no outputs."""

import json

import pytest
import yaml

from bptt.tools.notebooks import chapters, main, paired_notebook

from conftest import ROOT


def test_every_chapter_is_paired_and_current(capsys):
    assert chapters(), "no chapters found in _toc.yml"
    assert main(["check"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.name)
def test_paired_notebook_is_output_free_and_installs_the_package(chapter):
    nb = json.loads(paired_notebook(chapter))
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f"git+{url}" in "".join(nb["cells"][0]["source"])
    assert "remove-cell" in nb["cells"][0]["metadata"]["tags"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_check_reports_a_stale_notebook(tmp_path, monkeypatch, capsys):
    # A copy of the book whose notebook differs from its chapter must be reported.
    for name in ("_toc.yml", "_config.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "book").mkdir()
    for page in ROOT.glob("book/*.md"):
        (tmp_path / "book" / page.name).write_text(page.read_text())
    monkeypatch.setattr("bptt.tools.notebooks.ROOT", tmp_path)
    monkeypatch.setattr("bptt.tools.notebooks.chapters", lambda: chapters(tmp_path))
    monkeypatch.setattr(
        "bptt.tools.notebooks.paired_notebook", lambda ch: paired_notebook(ch, tmp_path)
    )
    assert main(["check"]) == 1
    assert "make notebooks" in capsys.readouterr().err
    assert main(["write"]) == 0
    assert main(["check"]) == 0
