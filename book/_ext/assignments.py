"""Chapters and the instructors' page read the registry of assignments, never a copy of it.

    :::{assignment} 02_bptt
    :::

ends a chapter with the download link of its autograded notebook, its points and how to work
on it; ``{assignment-table}`` lists every assignment. Both come from
``solutions/assignments.toml`` (``grader.registry``), so a renamed notebook or a new assignment
changes every page that shows it.
"""

import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's grader package

from grader.registry import by_id  # noqa: E402


def _parse(directive, text: str) -> list[nodes.Node]:
    container = nodes.container()
    directive.state.nested_parse(StringList(text.splitlines()), directive.content_offset, container)
    return container.children


class AssignmentLink(SphinxDirective):
    """The paragraph that ends a chapter: its assignment's notebook to download."""

    required_arguments = 1

    def run(self):
        registry = by_id()
        key = self.arguments[0]
        if key not in registry:
            raise self.error(f"no assignment {key!r} in solutions/assignments.toml")
        a = registry[key]
        self.env.note_dependency(str(a.root / "solutions" / "assignments.toml"))
        # files the notebook reads (the release folder's others): downloaded with it
        folder = a.release.parent
        extras = sorted(p.name for p in folder.glob("*") if p.is_file() and p.suffix != ".ipynb")
        reads = "".join(
            f" It reads {{download}}`{name} <../exercises/{a.id}/{name}>`:"
            " put it next to the notebook."
            for name in extras
        )
        text = (
            f"**Assignment `{a.id}`** ({a.points:g} points): "
            f"{{download}}`{a.notebook}.ipynb <../exercises/{a.id}/{a.notebook}.ipynb>`.{reads} "
            f"You write {a.summary}. Open the notebook in Jupyter (Notebook 7 or JupyterLab 4) "
            "or Colab. The tests under each task check your work as you go, and say what is "
            "wrong. Hidden tests run when it is graded ({ref}`chap-instructors`)."
        )
        return _parse(self, text)


class AssignmentTable(SphinxDirective):
    """Every assignment: id, chapter, what students write, points."""

    def run(self):
        rows = ["| assignment | chapter | students write | points |", "|---|---|---|---|"]
        for a in by_id().values():
            rows.append(f"| `{a.id}` | {{doc}}`{a.chapter}` | {a.summary} | {a.points:g} |")
        return _parse(self, "\n".join(rows))


def setup(app):
    app.add_directive("assignment", AssignmentLink)
    app.add_directive("assignment-table", AssignmentTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
