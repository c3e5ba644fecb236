"""Write the quiet-machine measurements into docs/performance.md, from the benchmark's JSON, by code.

The section "The fast kernel on a quiet machine" of docs/performance.md quotes a run of
``benchmarks/bench_losses.py --quick``. Every number in it sits between markers

    <!-- kdcore:NAME -->
    … generated text …
    <!-- /kdcore -->

and this script regenerates each marked block from the run's JSON (the machine line, the command, both
tables, and the summary with its ranges and ✓/✗ counts), leaving everything else in the page alone.
``tests/test_benchmarks.py`` checks that the page and the committed JSON agree.

    .venv/bin/python benchmarks/performance_summary.py            # rewrite the blocks in place
    .venv/bin/python benchmarks/performance_summary.py --check    # exit 1 if the page is out of date
    .venv/bin/python benchmarks/performance_summary.py --json other.json --page /tmp/performance.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import bench_losses
import machine
import page_blocks

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "performance.md"
RESULTS = REPO / "benchmarks" / "results" / "bench_losses-quick-quiet.json"


def _large(record: dict) -> list[dict]:
    return [c for c in record["cases"] if c["shape"][0] * c["shape"][1] >= bench_losses.SMALL_ELEMENTS]


def _small(record: dict) -> list[dict]:
    return [c for c in record["cases"] if c["shape"][0] * c["shape"][1] < bench_losses.SMALL_ELEMENTS]


def _ratios(cases: list[dict], numerator: str, denominator: str) -> list[float]:
    return [
        c["median_seconds"][numerator] / c["median_seconds"][denominator]
        for c in cases
        if numerator in c["median_seconds"] and denominator in c["median_seconds"]
    ]


def _span(values: list[float], digits: int = 2) -> str:
    if not values:
        return "—"
    low, high = min(values), max(values)
    return (
        f"{low:.{digits}f}"
        if f"{low:.{digits}f}" == f"{high:.{digits}f}"
        else f"{low:.{digits}f}–{high:.{digits}f}"
    )


def _met(values: list[float], target: float) -> str:
    """'met at every case' / 'met at 3 of 8' / 'missed at every case', for values that must be ≤ target."""
    hits = sum(v <= target for v in values)
    if hits == len(values):
        return "met in every case"
    if hits == 0:
        return "missed in every case"
    return f"met in {hits} of {len(values)}"


def _shape(case: dict) -> str:
    return f"{case['shape'][0]} × {case['shape'][1]} {case['dtype']}"


def setup(record: dict) -> str:
    loads = [c["other_load_cores"] for c in record["cases"] if c.get("other_load_cores") is not None]
    load = f"at most {max(loads):.2f} cores in any case" if loads else "not measured"
    end = ", ".join(f"{x:.1f}" for x in record["load_average_end"])
    return (
        f"Finished {record['finished'].replace('T', ' ')} (other processes during the timings: {load}; load "
        f"average at the end {end}). The machine: {machine.summary(record['machine'])}.\n"
        f"Command ({record['reps']} interleaved repetitions after {record['warmup']} warm-up calls):\n"
    )


def command(record: dict) -> str:
    words = record["command"].split()
    words[0] = ".venv/bin/python"  # the recorded interpreter's name; the page gives the repository's venv
    return "```sh\n" + " ".join(words) + "\n```\n"


def targets(record: dict) -> str:
    return "\n".join(bench_losses.target_table(record["cases"])) + "\n"


def times(record: dict) -> str:
    return "\n".join(bench_losses.time_table(record["cases"], record["implementations"])) + "\n"


def summary(record: dict) -> str:
    """What the run says, each claim computed from the run."""
    large, small = _large(record), _small(record)
    to_torch = _ratios(large, "kdcore-and-grad", "torch")
    to_torch_small = _ratios(small, "kdcore-and-grad", "torch")
    to_torch_1t = _ratios(large, "kdcore-and-grad", "torch-1t")
    both_1t = _ratios(large, "kdcore-1t", "torch-1t")
    to_floor = _ratios(large, "kdcore-and-grad", "exp-floor")
    memory = [
        (c["memory"]["kdcore-and-grad"]["tracemalloc_ratio"], c)
        for c in record["cases"]
        if c["memory"].get("kdcore-and-grad", {}).get("tracemalloc_ratio") is not None
    ]
    fractions = [c["certified_fraction"] for c in record["cases"] if c.get("certified_fraction") is not None]
    two_vs_one = [
        (c["median_seconds"]["kdcore-and-grad"], c["median_seconds"]["kdcore-1t"], c)
        for c in record["cases"]
        if "kdcore-1t" in c["median_seconds"]
    ]
    slower_on_two = [c for two, one, c in two_vs_one if two > one]
    lines = [
        f"What it says: kdcore's one-call loss and gradient (`kl_divergence_and_grad`) takes "
        f"**{_span(to_torch)}× PyTorch's 2-thread autograd** at the large shapes — the ≤ "
        f"{bench_losses.TARGET_VS_TORCH} target is {_met(to_torch, bench_losses.TARGET_VS_TORCH)} — and "
        f"**{_span(to_torch_small)}×** at 256 × 10 (≤ {bench_losses.TARGET_VS_TORCH_SMALL}: "
        f"{_met(to_torch_small, bench_losses.TARGET_VS_TORCH_SMALL)}).",
        f"Against PyTorch on one thread it is {_span(to_torch_1t)}× at the large shapes (both on one thread: "
        f"{_span(both_1t)}×). Time over the exp floor at the large shapes: {_span(to_floor, 1)} "
        f"(≤ {bench_losses.TARGET_VS_FLOOR:g}: {_met(to_floor, bench_losses.TARGET_VS_FLOOR)}).",
    ]
    if memory:
        ratios = [m for m, _ in memory]
        worst, worst_case = max(memory, key=lambda item: item[0])
        lines.append(
            f"Peak extra memory, the returned gradient included, is {_span(ratios)} inputs (≤ "
            f"{bench_losses.TARGET_MEMORY:g}: {_met(ratios, bench_losses.TARGET_MEMORY)}; the largest, "
            f"{worst:.2f}, at {_shape(worst_case)})."
        )
    if fractions:
        lines.append(f"Fraction of each input's rows the fast kernel certified: {_span(fractions, 3)}.")
    if two_vs_one:
        if slower_on_two:
            names = ", ".join(_shape(c) for c in slower_on_two)
            lines.append(
                f"kdcore's default threads were slower than one thread in {len(slower_on_two)} of "
                f"{len(two_vs_one)} cases ({names})."
            )
        else:
            lines.append("kdcore's default threads were never slower than one thread.")
    return "\n".join(lines) + "\n"


BLOCKS: dict[str, Callable[[dict], str]] = {
    "quiet-setup": setup,
    "quiet-command": command,
    "quiet-targets": targets,
    "quiet-times": times,
    "quiet-summary": summary,
}


def render(page: str, record: dict) -> str:
    """``page`` with every ``kdcore`` block regenerated from ``record`` (benchmarks/page_blocks.py)."""
    return page_blocks.render(page, record, BLOCKS, "kdcore", "block")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help=f"the run (default {RESULTS.relative_to(REPO)})"
    )
    parser.add_argument(
        "--page", type=Path, default=PAGE, help="the page to rewrite (default docs/performance.md)"
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the page is out of date"
    )
    args = parser.parse_args(argv)
    record = json.loads(args.json.read_text())
    page = args.page.read_text()
    try:
        text = render(page, record)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        if text != page:
            print(f"{args.page} is out of date: run benchmarks/performance_summary.py", file=sys.stderr)
            return 1
        return 0
    if text != page:
        temporary = args.page.with_suffix(".md.tmp")
        temporary.write_text(text)
        temporary.replace(args.page)  # atomic: a reader never sees half a page
        print(f"rewrote {len(BLOCKS)} blocks of {args.page}")
    else:
        print(f"{args.page} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
