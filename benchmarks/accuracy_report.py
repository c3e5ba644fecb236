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

from accuracy_cases import QUANTITIES, cases
from accuracy_cases import compare as compare_core


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the table as JSON here")
    parser.add_argument("--family", action="store_true", help="the divergences of docs/divergences.md")
    args = parser.parse_args()
    quantities, compare = QUANTITIES, compare_core
    if args.family:
        import family_cases

        quantities = {**family_cases.QUANTITIES, **family_cases.TEMPERATURE_SCALED}
        compare = family_cases.compare
    start = time.perf_counter()
    worst: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    for case in cases():
        counts[case.regime] += 1
        for quantity in quantities:
            worst[case.regime][quantity] = max(worst[case.regime][quantity], compare(case, quantity))
    regimes = list(worst)
    print("| quantity | " + " | ".join(f"{r} ({counts[r]})" for r in regimes) + " |")
    print("|---|" + "---|" * len(regimes))
    for quantity in quantities:
        print(f"| `{quantity}` | " + " | ".join(f"{worst[r][quantity]:.1e}" for r in regimes) + " |")
    overall = max(max(row.values()) for row in worst.values())
    print(f"\nworst over everything: {overall:.2e} (contract: 1e-12); {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({r: dict(v) for r, v in worst.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
