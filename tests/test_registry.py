"""The registry of assignments (solutions/assignments.toml) is complete, true and read."""

import re

import pytest
from exercise_harness import is_solution, points, read

from grader.registry import assignments, by_id

from conftest import ROOT

REGISTERED = assignments()


def test_every_assignment_folder_is_registered_and_every_entry_exists():
    folders = {p.parent.name for p in (ROOT / "solutions").glob("*/*.ipynb")}
    assert folders == {a.id for a in REGISTERED}
    for a in REGISTERED:
        assert a.source.is_file() and a.release.is_file(), a
        assert (ROOT / "book" / f"{a.chapter}.md").is_file(), a


@pytest.mark.parametrize("a", REGISTERED, ids=lambda a: a.id)
def test_points_and_contract_match_the_notebook(a):
    nb = read(a.source)
    assert sum(points(nb).values()) == a.points
    defined = set()
    for cell in nb.cells:
        if is_solution(cell):
            defined |= set(re.findall(r"^def (\w+)\(", cell.source, re.M))
    assert set(a.functions) <= defined, f"{a.id}: contract functions not in solution cells"


@pytest.mark.parametrize("a", REGISTERED, ids=lambda a: a.id)
def test_its_chapter_links_it_through_the_registry(a):
    text = (ROOT / "book" / f"{a.chapter}.md").read_text()
    assert f":::{{assignment}} {a.id}\n" in text, f"book/{a.chapter}.md must end with the link"


def test_a_malformed_registry_is_refused(tmp_path):
    (tmp_path / "solutions").mkdir()
    bad = tmp_path / "solutions" / "assignments.toml"
    bad.write_text('[[assignment]]\nid = "x"\nnotebook = "x"\n')
    with pytest.raises(ValueError, match="lacks"):
        assignments(bad)
    entry = 'id = "x"\nnotebook = "n"\nchapter = "c"\npoints = 1\nfunctions = []\nsummary = "s"\n'
    bad.write_text(f"[[assignment]]\n{entry}[[assignment]]\n{entry}")
    with pytest.raises(ValueError, match="twice"):
        by_id(bad)
