"""Print kdcore's worst relative error against the mpmath oracle, per accuracy regime and quantity.

    .venv/bin/python benchmarks/accuracy_report.py [--json FILE] [--family | --topk] [--write]

The regimes and the error measure are those of tests/test_accuracy.py (tests/accuracy_cases.py): the test
asserts the 1e-12 bound, this script shows how far below it each regime stays. ``--family`` reports the
divergences of docs/divergences.md instead (reverse KL, skew KL, JSD, DKD, logit standardisation;
tests/family_cases.py, asserted by tests/test_family_accuracy.py). ``--topk`` reports the top-k teacher
losses, every convention, value, derivative and Hessian, in their own regimes (tests/topk_cases.py, asserted
by tests/test_topk.py::TestOracle). With ``--write`` the table replaces its generated block of
docs/accuracy.md, between the markers CORE_BEGIN/CORE_END, FAMILY_BEGIN/FAMILY_END or TOPK_BEGIN/TOPK_END.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
from accuracy_cases import QUANTITIES, cases
from accuracy_cases import compare as compare_core

from kdcore._fast import soft_rows

ACCURACY_PAGE = Path(__file__).resolve().parents[1] / "docs" / "accuracy.md"
TOPK_BEGIN = "<!-- top-k table: written by benchmarks/accuracy_report.py --topk --write; do not edit -->"
TOPK_END = "<!-- end of the top-k table -->"
CORE_BEGIN = "<!-- core table: written by benchmarks/accuracy_report.py --write; do not edit -->"
CORE_END = "<!-- end of the core table -->"
FAMILY_BEGIN = "<!-- family table: written by benchmarks/accuracy_report.py --family --write; do not edit -->"
FAMILY_END = "<!-- end of the family table -->"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the table as JSON here")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--family", action="store_true", help="the divergences of docs/divergences.md")
    choice.add_argument("--topk", action="store_true", help="the top-k teacher losses (kdcore.topk)")
    parser.add_argument("--write", action="store_true", help="write the table into docs/accuracy.md")
    args = parser.parse_args()
    if args.topk:
        return topk_report(args)
    quantities, compare = QUANTITIES, compare_core
    if args.family:
        import family_cases

        quantities = family_cases.QUANTITIES
        compare = family_cases.compare
    start = time.perf_counter()
    worst: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    certified: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in cases():
        counts[case.regime] += 1
        # which rows the fast kernel keeps (the rest are answered by the careful algorithm)
        flags = np.zeros(case.student.shape[:-1], dtype=bool)
        soft_rows(case.student, case.teacher, case.T, value="kl", grad_scale=1 / case.T, certified_out=flags)
        certified[case.regime][0] += int(flags.sum())
        certified[case.regime][1] += flags.size
        for quantity in quantities:
            error = compare(case, quantity)  # NaN: the quantity does not apply to this case
            if not np.isnan(error):
                worst[case.regime][quantity] = max(worst[case.regime][quantity], error)
    regimes = list(worst)
    lines = [table_header(regimes, counts)]
    for quantity in quantities:
        lines.append(f"| `{quantity}` | " + " | ".join(f"{worst[r][quantity]:.1e}" for r in regimes) + " |")
    lines.append(
        "\nrows the fast kernel certified (the rest took the careful algorithm): "
        + ", ".join(f"{r} {certified[r][0]}/{certified[r][1]}" for r in regimes)
    )
    overall = max(max(row.values()) for row in worst.values())
    lines.append(
        f"\nworst over everything: {overall:.2e} (contract: 1e-12); {time.perf_counter() - start:.0f} s"
    )
    text = "\n".join(lines)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({r: dict(v) for r, v in worst.items()}, indent=2) + "\n")
    if args.write:
        begin, end = (FAMILY_BEGIN, FAMILY_END) if args.family else (CORE_BEGIN, CORE_END)
        write_block(ACCURACY_PAGE, text, begin, end)
        print(f"\nwritten into {ACCURACY_PAGE}")
    return 0


def topk_report(args: argparse.Namespace) -> int:
    """The top-k table: one row per quantity, one column per regime, "—" where no case of the regime applies
    (the tail convention away from T = 1)."""
    import topk_cases

    start = time.perf_counter()
    worst: dict[str, dict[str, float]] = {r: {} for r in topk_cases.REGIMES}
    counts: dict[str, int] = defaultdict(int)
    for case in topk_cases.CASES:
        counts[case.regime] += 1
        for quantity in topk_cases.QUANTITIES:
            error = topk_cases.compare(case, quantity)  # NaN: the quantity does not apply to this case
            if not np.isnan(error):
                worst[case.regime][quantity] = max(worst[case.regime].get(quantity, 0.0), error)
    lines = [table_header(topk_cases.REGIMES, counts)]
    for quantity in topk_cases.QUANTITIES:
        cells = [f"{worst[r][quantity]:.1e}" if quantity in worst[r] else "—" for r in topk_cases.REGIMES]
        lines.append(f"| `{quantity}` | " + " | ".join(cells) + " |")
    overall = max(max(row.values()) for row in worst.values() if row)
    lines.append("")
    lines.append(
        f"worst over everything: {overall:.2e} (contract: 1e-12); {time.perf_counter() - start:.0f} s"
    )
    text = "\n".join(lines)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(worst, indent=2) + "\n")
    if args.write:
        write_block(ACCURACY_PAGE, text, TOPK_BEGIN, TOPK_END)
        print(f"\nwritten into {ACCURACY_PAGE}")
    return 0


def table_header(regimes: list[str], counts: dict[str, int]) -> str:
    return (
        "| quantity | "
        + " | ".join(f"{r} ({counts[r]})" for r in regimes)
        + " |\n|---|"
        + "---|" * len(regimes)
    )


def write_block(page: Path, text: str, begin: str, end: str) -> None:
    """Replace what lies between the markers ``begin`` and ``end`` in ``page`` by ``text``, atomically."""
    content = page.read_text(encoding="utf-8")
    if content.count(begin) != 1 or content.count(end) != 1:
        raise SystemExit(f"error: {page} must hold the markers {begin!r} and {end!r} once each")
    head, rest = content.split(begin)
    _, tail = rest.split(end)
    temporary = page.with_name(page.name + ".tmp")
    temporary.write_text(f"{head}{begin}\n{text}\n{end}{tail}", encoding="utf-8")
    temporary.replace(page)


if __name__ == "__main__":
    sys.exit(main())
