"""Measure every chapter of the built book as a lesson, and check the course's limits.

A chapter is a page in one of the TOC's numbered parts. On its built HTML page we count what a
reader meets: the objectives box, the summary, exercises and their folded solutions, the
"check your understanding" questions, the code lines shown unfolded and folded, the mean and
longest sentence, mentions of the build machine, references to the source notes, figures and
their alt text. From the chapter's source we count its ``assert`` lines, so that folding the
audit can be seen not to drop a check.

    python -m bptt.tools.lessons _build/html            # the table, in Markdown
    python -m bptt.tools.lessons _build/html --check    # exit 1 when a chapter breaks a limit
    python -m bptt.tools.lessons _build/html --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[2]

# The limits a lesson keeps (issue "Teach, not audit"); one home for each.
LIMITS = {
    "max_visible_code": 200,
    "max_mean_sentence": 22.0,
    "max_sentence": 50,
    "min_exercises": 4,
    "min_questions": 2,
    "max_machine": 1,
    "max_listing_refs": 5,
    # The chapters' assert lines before the lessons were rewritten (the audit is folded, not
    # dropped): the total may grow, never fall below this.
    "min_asserts_total": 81,
}

# Words that talk about the computer the book was built on, not about BPTT.
MACHINE = re.compile(
    r"\b(cores?|threads?|machines?|denormals?|OpenBLAS|BLAS|set_num_threads|loaded)\b", re.I
)
SOURCE_NOTES = re.compile(r"\b(source (notes|documents|listings?)|the notes\b'?)", re.I)
LISTING = re.compile(r"\bListing\s+\d+\b")
# Abbreviations whose full stop does not end a sentence.
ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "cf.", "vs.", "Fig.", "Eq.", "approx.", "resp.")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[“\"‘'$])")
FOLDED = ("details", "solution", "dropdown", "toggle-hidden", "tag_hide-cell", "tag_hide-input")


def lesson_chapters(root: Path = ROOT) -> list[str]:
    """The TOC files of the numbered parts, e.g. ``book/forward``, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    parts = [part for part in toc.get("parts", []) if part.get("numbered")]
    return [chapter["file"] for part in parts for chapter in part["chapters"]]


def _folded(tag) -> bool:
    """Whether a reader must click to see ``tag``: inside <details>, a dropdown or a solution."""
    for parent in [tag, *tag.parents]:
        if parent.name == "details":
            return True
        classes = parent.get("class") or []
        if any(c in FOLDED for c in classes):
            return True
    return False


def _in(tag, *classes) -> bool:
    return any(set(p.get("class") or []) & set(classes) for p in [tag, *tag.parents])


def code_lines(article) -> tuple[int, int]:
    """(visible, folded) non-blank lines of source code; cell outputs are not code."""
    visible = folded = 0
    for pre in article.select("div.highlight pre"):
        if _in(pre, "cell_output", "output"):
            continue
        n = sum(1 for line in pre.get_text().splitlines() if line.strip())
        if _folded(pre):
            folded += n
        else:
            visible += n
    return visible, folded


def prose(article) -> list[str]:
    """The paragraphs a reader reads, with code, math, tables and outputs taken out."""
    soup = BeautifulSoup(str(article), "html.parser")
    for junk in soup.select(
        "pre, code, .math, span.math, div.math, table, .cell_output, .output, "
        "div.bibliography, .citation, .admonition-title, nav, .toctree-wrapper, .headerlink, "
        "figcaption .caption-number, script, style"
    ):
        junk.decompose()
    return [p.get_text(" ", strip=True) for p in soup.find_all("p") if p.get_text(strip=True)]


def sentences(paragraphs: list[str]) -> list[int]:
    """Word counts of the sentences in ``paragraphs``."""
    counts = []
    for text in paragraphs:
        for abbreviation in ABBREVIATIONS:
            text = text.replace(abbreviation, abbreviation.replace(".", ""))
        for sentence in SENTENCE_END.split(text):
            words = [w for w in sentence.split() if re.search(r"\w", w)]
            if words:
                counts.append(len(words))
    return counts


def measure_page(html: str) -> dict:
    """The lesson metrics of one built chapter page."""
    soup = BeautifulSoup(html, "html.parser")
    article = soup.select_one("article") or soup.body
    visible, folded = code_lines(article)
    words = sentences(prose(article))
    text = " ".join(prose(article))
    exercises = article.select("div.exercise")
    solutions = article.select("div.solution")
    questions = article.select("div.question")
    images = article.select("img")
    # Numbered chapters render "4.7. Summary #": drop the number and the anchor sign.
    headings = [
        re.sub(r"^[\d.]+\s*|\s*#$", "", h.get_text(" ", strip=True)) for h in article.select("h2")
    ]
    return {
        "objectives": bool(article.select("div.objectives")),
        "summary": any(h.startswith("Summary") for h in headings),
        "exercises": len(exercises),
        "folded_solutions": sum("dropdown" in (s.get("class") or []) for s in solutions),
        "questions": len(questions),
        "folded_answers": sum(bool(q.select("details, .dropdown")) for q in questions),
        "visible_code": visible,
        "folded_code": folded,
        "sentences": len(words),
        "mean_sentence": round(sum(words) / len(words), 1) if words else 0.0,
        "max_sentence": max(words, default=0),
        "long_sentences": sum(n > LIMITS["max_sentence"] for n in words),
        "machine": len(MACHINE.findall(text)),
        "source_notes": len(SOURCE_NOTES.findall(text)),
        "listing_refs": len(LISTING.findall(text)),
        "figures": len(article.select("figure")),
        "bad_alt": sum(
            not (img.get("alt") or "").strip() or bool(re.search(r"\.(png|svg|jpe?g)$", img["alt"]))
            for img in images
        ),
    }


def count_asserts(source: Path) -> int:
    """``assert`` statements in the chapter's code cells (MyST source)."""
    return len(re.findall(r"^\s*assert\b", source.read_text(), re.M))


def measure_book(html_root: Path, root: Path = ROOT) -> dict[str, dict]:
    """Metrics of every lesson chapter, keyed by the chapter's name."""
    table = {}
    for chapter in lesson_chapters(root):
        page = html_root / f"{chapter}.html"
        if not page.exists():
            raise FileNotFoundError(f"{page} is missing: build the book first (make book)")
        row = measure_page(page.read_text())
        row["asserts"] = count_asserts(root / f"{chapter}.md")
        table[Path(chapter).name] = row
    return table


def problems(table: dict[str, dict]) -> list[str]:
    """Every limit a chapter breaks, one line each."""
    out = []
    for name, m in table.items():
        refs = m["listing_refs"]
        checks = [
            (m["objectives"], "has no 'What you will learn' box (class objectives)"),
            (m["summary"], "has no Summary section"),
            (m["exercises"] >= LIMITS["min_exercises"], f"has {m['exercises']} exercises"),
            (m["folded_solutions"] >= m["exercises"], "has exercises without a folded solution"),
            (m["questions"] >= LIMITS["min_questions"], f"has {m['questions']} questions"),
            (m["folded_answers"] == m["questions"], "has a question without a folded answer"),
            (m["visible_code"] <= LIMITS["max_visible_code"], f"shows {m['visible_code']} lines"),
            (m["mean_sentence"] <= LIMITS["max_mean_sentence"], f"mean {m['mean_sentence']}"),
            (m["long_sentences"] == 0, f"has {m['long_sentences']} sentences over 50 words"),
            (m["machine"] <= LIMITS["max_machine"], f"mentions the machine {m['machine']} times"),
            (refs <= LIMITS["max_listing_refs"], f"cites {refs} listings"),
            (m["bad_alt"] == 0, f"has {m['bad_alt']} images without real alt text"),
        ]
        out += [f"{name}: {message}" for ok, message in checks if not ok]
    total = sum(m.get("asserts", 0) for m in table.values())
    if len(table) > 1 and total < LIMITS["min_asserts_total"]:
        out.append(f"the chapters hold {total} asserts, fewer than {LIMITS['min_asserts_total']}")
    return out


COLUMNS = [
    "visible_code", "folded_code", "mean_sentence", "max_sentence", "exercises", "questions",
    "figures", "machine", "source_notes", "listing_refs", "asserts",
]  # fmt: skip


def markdown(table: dict[str, dict]) -> str:
    lines = ["| chapter | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, m in table.items():
        lines.append(f"| {name} | " + " | ".join(str(m[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument("--check", action="store_true", help="exit 1 when a limit is broken")
    parser.add_argument("--json", type=Path, help="also write the metrics here")
    args = parser.parse_args(argv)
    table = measure_book(args.html)
    print(markdown(table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    if args.check and (found := problems(table)):
        print("\n".join(["", "Lessons that break a limit:", *found]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
