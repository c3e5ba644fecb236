"""Print kdcore's worst relative error against the mpmath oracle, per accuracy regime and quantity.

    .venv/bin/python benchmarks/accuracy_report.py [--json FILE] [--family]

The regimes and the error measure are those of tests/test_accuracy.py (tests/accuracy_cases.py): the test
asserts the 1e-12 bound, this script shows how far below it each regime stays. ``--family`` reports the
divergences of docs/divergences.md instead (reverse KL, skew KL, JSD, DKD, logit standardisation;
tests/family_cases.py, asserted by tests/test_family_accuracy.py).
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the table as JSON here")
    parser.add_argument("--family", action="store_true", help="the divergences of docs/divergences.md")
    args = parser.parse_args()
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
    print("| quantity | " + " | ".join(f"{r} ({counts[r]})" for r in regimes) + " |")
    print("|---|" + "---|" * len(regimes))
    for quantity in quantities:
        print(f"| `{quantity}` | " + " | ".join(f"{worst[r][quantity]:.1e}" for r in regimes) + " |")
    print(
        "\nrows the fast kernel certified (the rest took the careful algorithm): "
        + ", ".join(f"{r} {certified[r][0]}/{certified[r][1]}" for r in regimes)
    )
    overall = max(max(row.values()) for row in worst.values())
    print(f"\nworst over everything: {overall:.2e} (contract: 1e-12); {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({r: dict(v) for r, v in worst.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
