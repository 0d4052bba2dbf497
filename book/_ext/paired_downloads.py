"""The ".ipynb" download of a chapter page serves the chapter's paired notebook.

sphinx-book-theme's download menu links ``_sources/<page>.ipynb``, which MyST-NB writes as its
own conversion of the ``.md``: it shows raw ``{ref}``/``{glue}`` roles and fails at its first
cell outside the course's environment. Each chapter has a runnable, output-free pair,
``book/<chapter>.ipynb`` (``make notebooks``), whose first cell installs the course package;
after an HTML build this copies it over MyST-NB's conversion.
"""

import shutil
from pathlib import Path


def copy_paired_notebooks(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    sources = Path(app.outdir) / "_sources"
    for converted in sources.rglob("*.ipynb"):
        paired = Path(app.srcdir) / converted.relative_to(sources)
        if paired.is_file():
            shutil.copyfile(paired, converted)


def setup(app):
    app.connect("build-finished", copy_paired_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
