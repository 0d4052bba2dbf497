"""The lesson check measures what a reader meets, and flags each broken limit."""

from bptt.tools.lessons import LIMITS, lesson_chapters, measure_page, problems, sentences

from conftest import ROOT

LESSON = """<html><body><article>
<div class="admonition objectives"><p class="admonition-title">What you will learn</p>
<p>Derive it.</p></div>
<h2>4.7. Summary<a class="headerlink">#</a></h2>
<div class="admonition question"><p>Why is the sky blue?</p>
<details class="sd-dropdown"><summary>Answer</summary><p>Light scatters.</p></details></div>
<div class="cell"><div class="cell_input"><div class="highlight"><pre>a = 1
b = 2

c = 3</pre></div></div>
<div class="cell_output"><div class="highlight"><pre>output line</pre></div></div></div>
<details class="hide above-input"><div class="highlight"><pre>assert a == 1
glue("a", a)</pre></div></details>
<div class="exercise admonition"><p>Show that it holds.</p></div>
<div class="solution dropdown admonition"><div class="highlight"><pre>print(4)</pre></div></div>
<p>The machine had 2 cores. It used four threads, e.g. two per core.</p>
<figure><img src="a.png" alt="a.png"></figure>
</article></body></html>"""


def test_measures_a_small_lesson():
    m = measure_page(LESSON)
    assert m["objectives"] and m["summary"]
    assert (m["questions"], m["folded_answers"]) == (1, 1)
    assert (m["exercises"], m["folded_solutions"]) == (1, 1)
    assert (m["visible_code"], m["folded_code"]) == (3, 3)  # blank lines and outputs not counted
    assert m["machine"] == 4  # machine, cores, threads, core
    assert (m["figures"], m["bad_alt"]) == (1, 1)  # a file name is not alt text


def test_sentences_split_on_full_stops_but_not_abbreviations():
    assert sentences(["One two three. Four five, e.g. six seven! Eight?"]) == [3, 5, 1]


def test_every_broken_limit_is_named():
    found = problems({"ch": measure_page(LESSON)})
    text = "\n".join(found)
    for needle in ("1 exercises", "1 questions", "mentions the machine 4 times", "alt text"):
        assert needle in text
    assert "shows" not in text  # 3 visible lines are within the limit
    bloated = measure_page(LESSON.replace("c = 3", "\n".join(["x"] * LIMITS["max_visible_code"])))
    assert any("shows" in p for p in problems({"ch": bloated}))


def test_lesson_chapters_are_the_numbered_parts():
    chapters = lesson_chapters(ROOT)
    assert "book/forward" in chapters and "book/preface" not in chapters
    assert not any("notation" in c or "instructors" in c for c in chapters)


def test_the_chapters_assert_count_may_not_fall():
    row = measure_page(LESSON)
    few = {"a": dict(row, asserts=1), "b": dict(row, asserts=1)}
    assert any("fewer than" in p for p in problems(few))
    many = {"a": dict(row, asserts=LIMITS["min_asserts_total"]), "b": dict(row, asserts=0)}
    assert not any("fewer than" in p for p in problems(many))
