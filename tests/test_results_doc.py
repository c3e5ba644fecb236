"""docs/results.md: every kdcore number on the page is produced from the committed raw results.

The page marks each number, table and figure-backed claim with ``<!-- kdcore:NAME -->…<!-- /kdcore -->``;
``benchmarks/experiments/paper_table.py`` computes them from ``benchmarks/results/experiments/*/*.jsonl``.
These tests fail when the page and the results disagree (a typed number, a stale table, a result file
changed without re-running ``paper_table.py --write``). They read small JSON files only: no training.
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "benchmarks" / "experiments"
DOC = REPO / "docs" / "results.md"


@pytest.fixture(scope="module")
def paper_table():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        spec = importlib.util.spec_from_file_location("paper_table", EXPERIMENTS / "paper_table.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(EXPERIMENTS))


def test_every_marked_number_is_what_the_results_give(paper_table):
    text = DOC.read_text(encoding="utf-8")
    rendered = paper_table.render(text)
    stale = [
        (m.group(1), m.group(2).strip()[:80], n.group(2).strip()[:80])
        for m, n in zip(paper_table.MARK.finditer(text), paper_table.MARK.finditer(rendered), strict=True)
        if m.group(0) != n.group(0)
    ]
    assert not stale, f"docs/results.md disagrees with the results (run paper_table.py --write): {stale}"


def test_the_page_marks_its_numbers(paper_table):
    text = DOC.read_text(encoding="utf-8")
    names = [m.group(1) for m in paper_table.MARK.finditer(text)]
    assert len(names) > 40  # the tables and the in-text numbers
    for required in (
        "mnist.teacher.errors",
        "mnist.800.labels",
        "mnist.800.T20",
        "fm.800.labels",
        "table.temperature",
    ):
        assert required in names


def test_side_by_side_tables_mark_every_kdcore_cell(paper_table):
    # In the tables that put the paper beside kdcore, each row's MNIST and Fashion-MNIST cells are marked:
    # only the paper's own numbers (quoted from Hinton et al. 2015) may be typed.
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The paper's table, side by side")[1].split("\n## ")[0]
    rows = [
        line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| experiment")
    ]
    assert rows
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        for cell in cells[2:]:  # experiment, paper | MNIST, Fashion-MNIST
            if re.search(r"\d", re.sub(r"<!-- kdcore:.*?<!-- /kdcore -->", "", cell)):
                pytest.fail(f"an unmarked number in a kdcore cell: {cell!r}")


def test_unknown_marks_are_refused(paper_table):
    with pytest.raises(KeyError, match=r"no\.such\.value"):
        paper_table.render("<!-- kdcore:no.such.value -->1<!-- /kdcore -->")


def test_figures_are_drawn_from_the_results(paper_table, tmp_path):
    pytest.importorskip("matplotlib")
    paths = paper_table.figures(tmp_path)
    assert paths and all(path.stat().st_size > 10_000 for path in paths)
