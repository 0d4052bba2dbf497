"""The book's configuration: what the strict build and the launch buttons rely on.

Jupyter Book ignores misspelled keys silently, so the keys that matter are
checked here, and the whole file against Jupyter Book's own schema.
"""

import re

import jupytext
import pytest
import yaml
from jupyter_book.config import validate_yaml

from bptt.tools.notebooks import chapters

from conftest import ROOT

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def test_config_passes_jupyter_books_schema():
    validate_yaml(CONFIG, raise_on_errors=True)


def test_execution_settings():
    execute = CONFIG["execute"]
    assert execute["execute_notebooks"] == "cache"
    assert execute["allow_errors"] is False
    assert 0 < execute["timeout"] <= 300


def test_bibliography_and_macros():
    (bib,) = CONFIG["bibtex_bibfiles"]
    assert (ROOT / bib).exists()
    macros = CONFIG["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    assert {"Wxh", "Whh", "Why", "pd", "pdi", "dd", "Loss"} <= set(macros)


def test_launch_buttons_and_repository():
    assert CONFIG["repository"]["url"].startswith("https://github.com/")
    assert CONFIG["launch_buttons"]["colab_url"]
    assert CONFIG["launch_buttons"]["binderhub_url"]
    assert CONFIG["only_build_toc_files"] is True


def test_citations_resolve_to_bib_entries():
    bib = (ROOT / CONFIG["bibtex_bibfiles"][0]).read_text()
    keys = set(re.findall(r"@\w+\{(\w+),", bib))
    for page in (ROOT / "book").glob("*.md"):
        for group in re.findall(r"\{cite:[tp]\}`([^`]+)`", page.read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{page.name} cites unknown {key!r}"


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.name)
def test_chapters_are_myst_notebooks(chapter):
    nb = jupytext.read(chapter)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    assert any(c.cell_type == "code" for c in nb.cells), f"{chapter.name} runs no code"


def test_toc_lists_existing_pages():
    text = (ROOT / "_toc.yml").read_text()
    for name in re.findall(r"file: (\S+)", text) + [TOC["root"]]:
        assert (ROOT / f"{name}.md").exists(), f"_toc.yml names missing page {name}"
