"""``python -m grader.similarity SUBMISSIONS REPORT.csv``: pairs of submissions whose answer code
is suspiciously alike (``make similarity``).

Only the answer cells count (the cells nbgrader marks as solutions, matched by grade id with the
release notebook), less the scaffolding the release gives in them (signatures, docstrings,
``# YOUR CODE HERE``). Each student's answers to one assignment are fingerprinted with copydetect
(winnowing over tokens in which every name is replaced by one symbol and comments and layout are
dropped: renaming variables or reformatting changes nothing). A pair is reported when the shared
fingerprints cover at least ``threshold`` of the code of both. A report is a reason to read two
submissions side by side, not a verdict.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import sys
from pathlib import Path

from grader.layout import ROOT
from grader.restore import grade_id

K, WINDOW = 25, 6  # copydetect's defaults: k-grams of 25 tokens, a match of 30 always found
THRESHOLD = 0.6
FIELDS = ["assignment", "student_a", "student_b", "similarity", "similarity_a", "similarity_b",
          "shared_tokens"]  # fmt: skip
MIN_TOKENS = 50  # less answer code than this is not compared (e.g. an untouched notebook)


def answer_code(nb, release) -> str:
    """The code of ``nb``'s answer cells, in the release's order."""
    solutions = [
        grade_id(c) for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")
    ]
    cells = {grade_id(c): c.source for c in nb.cells if c.cell_type == "code" and grade_id(c)}
    return "\n\n".join(cells.get(g, "") for g in solutions)


def fingerprint(code: str, boilerplate=()):
    from copydetect import CodeFingerprint

    return CodeFingerprint(
        "answer.py", K, WINDOW, boilerplate=list(boilerplate), fp=io.StringIO(code)
    )


def compare(submissions: Path, threshold: float = THRESHOLD) -> list[dict]:
    """The suspicious pairs of every assignment, most alike first."""
    import nbformat
    from copydetect import compare_files

    pairs = []
    for assignment in sorted(p for p in (ROOT / "exercises").iterdir() if p.is_dir()):
        for release_path in sorted(assignment.glob("*.ipynb")):
            release = nbformat.read(release_path, as_version=4)
            stub = fingerprint(answer_code(release, release)).hashes
            prints = {}
            for path in sorted(Path(submissions).glob(f"*/{assignment.name}/{release_path.name}")):
                try:
                    code = answer_code(nbformat.read(path, as_version=4), release)
                except Exception:  # noqa: BLE001 - make grade names the broken files
                    continue
                fp = fingerprint(code, stub)
                if fp.token_coverage >= MIN_TOKENS:
                    prints[path.parts[-3]] = fp
            for (a, fa), (b, fb) in itertools.combinations(sorted(prints.items()), 2):
                tokens, (sa, sb), _ = compare_files(fa, fb)
                if min(sa, sb) >= threshold:
                    sims = [round(float(x), 3) for x in (min(sa, sb), sa, sb)]
                    pairs.append(
                        dict(zip(FIELDS, [assignment.name, a, b, *sims, int(tokens)], strict=True))
                    )
    return sorted(pairs, key=lambda p: -p["similarity"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m grader.similarity", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("submissions", type=Path, help="<student_id>/<assignment_id>/<notebook>.ipynb")
    p.add_argument("report", type=Path, help="the CSV to write: one row per suspicious pair")
    p.add_argument("--threshold", type=float, default=THRESHOLD, help="share of both codes (0.6)")
    args = p.parse_args(argv)
    pairs = compare(args.submissions, args.threshold)
    with args.report.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(pairs)
    for pair in pairs:
        a, b = pair["student_a"], pair["student_b"]
        print(f"{pair['assignment']}: {a} and {b}: {pair['similarity']:.0%} alike")
    print(f"{len(pairs)} suspicious pairs; report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
