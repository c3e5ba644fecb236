"""Print kdcore's worst relative error against the mpmath oracle, per accuracy regime and quantity.

    .venv/bin/python benchmarks/accuracy_report.py [--json FILE]

The regimes and the error measure are those of tests/test_accuracy.py (tests/accuracy_cases.py): the test
asserts the 1e-12 bound, this script shows how far below it each regime stays.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from accuracy_cases import QUANTITIES, cases, compare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the table as JSON here")
    args = parser.parse_args()
    start = time.perf_counter()
    worst: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    for case in cases():
        counts[case.regime] += 1
        for quantity in QUANTITIES:
            worst[case.regime][quantity] = max(worst[case.regime][quantity], compare(case, quantity))
    regimes = list(worst)
    print("| quantity | " + " | ".join(f"{r} ({counts[r]})" for r in regimes) + " |")
    print("|---|" + "---|" * len(regimes))
    for quantity in QUANTITIES:
        print(f"| `{quantity}` | " + " | ".join(f"{worst[r][quantity]:.1e}" for r in regimes) + " |")
    overall = max(max(row.values()) for row in worst.values())
    print(f"\nworst over everything: {overall:.2e} (contract: 1e-12); {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({r: dict(v) for r, v in worst.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
