"""Pair every chapter (MyST Markdown) with an output-free ``.ipynb`` for Colab and Binder.

Colab opens only real notebooks, and sphinx-book-theme's launch buttons point
at ``book/<chapter>.ipynb`` when that file exists next to the ``.md``. The
notebooks are generated from the chapters (never edited by hand) with one
extra first cell that installs the course package where it is missing. The
repository's address is read from ``_config.yml``, its one home.

    python -m bptt.tools.notebooks write   # regenerate book/*.ipynb
    python -m bptt.tools.notebooks check   # exit 1 if any is missing or stale
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]

INSTALL_CELL = """\
# On Colab (or anywhere the course package is missing), install it first.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("bptt") is None or importlib.util.find_spec("myst_nb") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "bptt @ git+{url}", "myst-nb"], check=True)"""


def _toc_files(entries) -> list[str]:
    files = []
    for entry in entries:
        if "file" in entry:
            files.append(entry["file"])
        for key in ("parts", "chapters", "sections"):
            files += _toc_files(entry.get(key, []))
    return files


def chapters(root: Path = ROOT) -> list[Path]:
    """The TOC's pages that are notebooks (MyST Markdown with a kernelspec), in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [root / (f + ".md") for f in [toc["root"], *_toc_files(toc.get("parts", []))]]
    return [
        p for p in pages if p.exists() and "kernelspec" in jupytext.read(p, fmt="md:myst").metadata
    ]


def paired_notebook(chapter: Path, root: Path = ROOT) -> str:
    """The ``.ipynb`` text for one chapter: its cells, no outputs, an install cell first."""
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    nb = jupytext.read(chapter)
    nb.metadata.pop("jupytext", None)  # the pair is generated, not synced by jupytext
    install = nbformat.v4.new_code_cell(INSTALL_CELL.format(url=url))
    install.metadata["tags"] = ["remove-cell"]
    nb.cells.insert(0, install)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids keep regenerated files byte-identical
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return jupytext.writes(nb, fmt="ipynb")


def main(argv: list[str]) -> int:
    if argv not in (["write"], ["check"]):
        print(__doc__)
        return 2
    stale = []
    for chapter in chapters():
        target = chapter.with_suffix(".ipynb")
        text = paired_notebook(chapter)
        if argv == ["write"]:
            target.write_text(text)
        elif not target.exists() or target.read_text() != text:
            stale.append(target.relative_to(ROOT))
    for path in stale:
        print(f"{path} is missing or out of date: run `make notebooks`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
