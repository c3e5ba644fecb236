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
        "table.two_teachers",
        "mnist.prev_teacher.errors",
        "mnist.teacher.command",
    ):
        assert required in names


def _run(teacher, seed, T=20.0):
    return {"distilled": True, "teacher": teacher, "seed": seed, "T": T, "alpha": 0.1}


def test_mnist_cells_use_the_page_teacher_and_never_mix_teachers(paper_table):
    # Five seeds from the 75-epoch teacher and one from the page's: the cell shows the page's teacher alone.
    runs = [_run("teacher.npz", s) for s in range(5)] + [_run(paper_table.TEACHER["mnist"], 0)]
    assert paper_table.pick_teacher("mnist", runs) == paper_table.TEACHER["mnist"]
    assert paper_table.pick_teacher("mnist", runs[:5]) == "teacher.npz"  # a row not re-run: the old one
    errors = {r["teacher"]: 100 for r in runs}
    for r in runs:
        r["test_errors"] = errors[r["teacher"]] + r["seed"]
    assert paper_table.distilled(runs, 20.0, 0.1, paper_table.TEACHER["mnist"]) == {0: 100}


def test_fashion_mnist_cells_take_the_sibling_teacher_with_most_seeds(paper_table):
    runs = [_run("teacher.npz", 0)] + [_run("teacher_rebuilt2.npz", s) for s in range(3)]
    assert paper_table.pick_teacher("fashion-mnist", runs) == "teacher_rebuilt2.npz"
    tie = [_run("teacher_rebuilt2.npz", 0), _run("teacher.npz", 0)]
    assert paper_table.pick_teacher("fashion-mnist", tie) == "teacher.npz"
    assert paper_table.named("fashion-mnist", "teacher_rebuilt2.npz") == ", teacher `teacher_rebuilt2.npz`"
    assert paper_table.named("fashion-mnist", "teacher.npz") == ""


def test_teacher_cpu_time_adds_the_processes_of_a_resumed_run(paper_table, tmp_path):
    # The log's CPU count restarts at 0 when the run is resumed in a new process (teacher.py --reschedule).
    line = "[t] teacher250 epoch {}/9: loss 0.1, jittered-train acc 0.9, test acc 0.9, {} s wall, {} s CPU so far\n"
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "a.log").write_text(
        line.format(1, 10.0, 12) + line.format(2, 11.0, 25) + "resuming\n" + line.format(3, 9.5, 11)
    )
    wall, cpu = paper_table._teacher_epochs(tmp_path, ["a.log", "missing.log"])
    assert wall == {1: 10.0, 2: 11.0, 3: 9.5}
    assert cpu == 25 + 11


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
