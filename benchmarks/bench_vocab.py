"""Losses of logits on disk at vocabulary scale: time and peak extra memory of ``kdcore loss``'s engine.

The case of issue 9: a batch of 8 sequences × 512 tokens over a 128 000-token vocabulary, float32 — 2 GiB
per logits array — with labels padded at the end of each sequence (``-100``). The student, teacher and
labels are written as ``.npy`` files into ``--dir`` (default: a folder in the system's temporary directory,
outside the repository; removed at the end unless ``--keep``), then every loss runs through
:func:`kdcore.streaming.stream_loss` — what ``kdcore loss KIND --student … --teacher … --labels …`` runs —
twice: the value alone, and the value with the gradient written to an ``.npy`` file.

Each case runs in a fresh Python process (``--case``), so that one case's memory cannot hide another's:

* ``seconds``: the wall time of the whole call (opening and checking the files included);
* ``rss_peak_growth``: how far the process's peak resident set size (``VmHWM``) rises above its level just
  before the call — every allocation, NumPy's or not, and every page of the files mapped into the process;
* ``tracemalloc_peak``: the peak of what Python and NumPy allocate (tracemalloc, on during the same call:
  it costs ~1 µs an allocation, and the kernels make ~100 allocations per row of 34 ms and more).

Freed blocks of 64 KiB and more go back to the system at once (``mallopt``, as in bench_losses.py), so
the rise of the resident set is the memory in use, not what glibc keeps for later.

kdcore's careful kernels — the mixtures (JSD, skew KL both ways) and DKD — take ~0.05–0.2 s per row of
128 000 classes, 30–100 times the fast KL kernel: on every row they would take tens of minutes on a 2-core
machine. So the kinds named by ``--full`` (default ``kl``) run on all 4096 positions, the careful ones on the
first ``--careful-rows`` positions (default 128) and the others on the first ``--rows`` (default: all),
each subset written as files of its own; the JSON says how many rows each case ran on, and the seconds per
row. Memory does not depend on the number of rows: a chunk is a chunk.

Examples::

    .venv/bin/python benchmarks/bench_vocab.py --dir /work/runs/vocab                 # ~15 min, quiet
    .venv/bin/python benchmarks/bench_vocab.py --dir /work/runs/vocab --rows 512 --careful-rows 64
    .venv/bin/python benchmarks/bench_vocab.py --smoke --kinds kl,jsd         # tiny: proves it runs
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import machine
import numpy as np
from bench_losses import _status_kib, rss_peak_setup

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("kl", "soft-ce", "reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "distillation", "dkd", "ce")
CAREFUL = ("jsd", "skew-kl", "skew-reverse-kl", "dkd")  # the slow kernels, timed on --careful-rows rows
# The loss's parameters: T = 2 and the functions' defaults (DKD's are mdistiller's: T = 4, α = 1, β = 8).
PARAMETERS = {kind: {} if kind in ("ce", "dkd") else {"T": 2.0} for kind in KINDS}
PARAMETERS["distillation"]["alpha"] = 0.5


def write_inputs(folder: Path, sequences: int, tokens: int, vocab: int, seed: int) -> dict:
    """student.npy, teacher.npy (float32, sequences × tokens × vocab) and labels.npy, a block at a time."""
    from kdcore.arrays_on_disk import NpyRowWriter

    rng = np.random.default_rng(seed)
    shape = (sequences, tokens, vocab)
    block = max(1, 2**22 // vocab)
    with (
        NpyRowWriter(folder / "student.npy", shape, np.float32) as student,
        NpyRowWriter(folder / "teacher.npy", shape, np.float32) as teacher,
    ):
        for start in range(0, sequences * tokens, block):
            rows = min(block, sequences * tokens - start)
            teacher_rows = rng.standard_normal((rows, vocab), dtype=np.float32) * np.float32(3)
            noise = rng.standard_normal((rows, vocab), dtype=np.float32)
            teacher.write(teacher_rows)
            student.write(np.float32(0.7) * teacher_rows + noise)  # a student that has learnt something
    labels = rng.integers(0, vocab, size=(sequences, tokens))
    for row, padding in enumerate(rng.integers(0, tokens // 5, size=sequences)):
        labels[row, tokens - padding :] = -100  # each sequence padded at its end
    np.save(folder / "labels.npy", labels)
    return {"shape": list(shape), "kept": int(np.count_nonzero(labels != -100))}


def _call(kind: str, folder: Path, grad: bool, rows: int | None = None):
    """The ``kdcore loss`` computation on the files in ``folder`` (on their first ``rows`` rows if given)."""
    from kdcore._loss_command import KINDS as COMMAND_KINDS
    from kdcore.arrays_on_disk import open_array
    from kdcore.streaming import stream_loss

    spec = COMMAND_KINDS[kind]

    def logits(name: str):
        if rows is None:  # the file itself: kdcore maps it, and gives back the pages of finished chunks
            return open_array(folder / f"{name}.npy")
        array = np.load(folder / f"{name}.npy", mmap_mode="r")
        return array.reshape(-1, array.shape[-1])[:rows]

    labels = np.load(folder / "labels.npy")
    return stream_loss(
        spec.loss,
        logits("student"),
        logits("teacher") if spec.teacher else None,
        labels if rows is None else labels.reshape(-1)[:rows],
        grad_out=folder / "grad.npy" if grad else None,
        **PARAMETERS[kind],
    )


def first_rows(source: Path, target: Path, rows: int) -> None:
    """The first ``rows`` positions of the batch in ``source`` as files of their own in ``target``."""
    from kdcore.arrays_on_disk import NpyRowWriter, open_array

    target.mkdir(exist_ok=True)
    for name in ("student", "teacher"):
        with (
            open_array(source / f"{name}.npy") as array,
            NpyRowWriter(target / f"{name}.npy", (rows, array.row_length), array.dtype) as out,
        ):
            out.write(array.rows(0, rows))
    np.save(target / "labels.npy", np.load(source / "labels.npy").reshape(-1)[:rows])


def run_case(kind: str, folder: Path, grad: bool) -> dict:
    """One case, in this (fresh) process: time, RSS growth and tracemalloc's peak of one call."""
    rss_peak_setup()
    _call(kind, folder, grad, rows=2)  # imports and first-call set-up are not the loss's memory
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        result = _call(kind, folder, grad)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = (_status_kib("VmHWM") - before) * 1024
    return {
        "kind": kind,
        "loss": result.loss,
        "mode": "value+grad" if grad else "value",
        "rows": result.positions,
        "kept": result.kept,
        "chunk_rows": result.chunk_rows,
        "value": result.value,
        "seconds": seconds,
        "seconds_per_row": seconds / result.positions,
        "rss_peak_growth": rss_growth,
        "tracemalloc_peak": peak - base,
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 10 * 2**20 else f"{n / 2**20:.1f} MiB"


def summary_markdown(record: dict) -> str:
    """The table and figures docs/performance.md quotes, computed from a run's JSON (tests check the page)."""
    from kdcore._loss_command import KINDS as COMMAND_KINDS

    sequences, tokens, vocab = record["shape"]
    positions = sequences * tokens
    lines = [
        f"Inputs: {sequences} × {tokens} tokens × {vocab} classes, float32, "
        f"{record['input_bytes'] / 2**30:.2f} GiB per logits array; {record['kept']} of {positions} positions "
        f"kept (the rest padding, `-100`). Load: `{record['uptime_before'].split('load average: ')[-1]}` before, "
        f"`{record['uptime_after'].split('load average: ')[-1]}` after (1, 5, 15-minute averages, 2 cores).",
        "",
        "| loss | mode | rows | chunk | seconds | s / 1000 rows | peak RSS growth | traced peak | RSS / chunk of inputs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in record["cases"]:
        inputs = 2 if COMMAND_KINDS[case["kind"]].teacher else 1
        chunk = case["chunk_bytes"] * inputs
        lines.append(
            f"| `{case['kind']}` | {case['mode']} | {case['rows']} | {case['chunk_rows']} | {case['seconds']:.1f} "
            f"| {1000 * case['seconds_per_row']:.1f} | {_mib(case['rss_peak_growth'])} "
            f"| {_mib(case['tracemalloc_peak'])} | {case['rss_peak_growth'] / chunk:.2f} |"
        )
    ratios = [
        case["rss_peak_growth"] / (case["chunk_bytes"] * (2 if COMMAND_KINDS[case["kind"]].teacher else 1))
        for case in record["cases"]
    ]
    largest = max(record["cases"], key=lambda case: case["rss_peak_growth"])
    lines += [
        "",
        f"Peak RSS growth: at most {max(ratios):.2f}× one chunk of the inputs, {_mib(largest['rss_peak_growth'])} "
        f"at most (`{largest['kind']}`, {largest['mode']}), against {2 * record['input_bytes'] / 2**30:.1f} GiB "
        f"of logits read; {sum(r <= 2 for r in ratios)} of {len(ratios)} cases within the 2× of issue 9.",
    ]
    partial = [case for case in record["cases"] if case["rows"] < positions]
    if partial:
        totals = [case["seconds_per_row"] * positions for case in partial]
        lines += [
            "",
            f"The cases with fewer than {positions} rows ran on the first positions of the same batch; at "
            f"the rates measured there, all {positions} would take {min(totals):.0f}–{max(totals):.0f} s.",
        ]
    return "\n".join(lines)


def _uptime() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the input files go (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the input files (and reuse them next time)")
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=512, help="tokens per sequence (default 512)")
    parser.add_argument("--vocab", type=int, default=128_000)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kdcore loss KINDs")
    parser.add_argument("--full", default="kl", help="kinds run on every position (default: kl)")
    parser.add_argument(
        "--rows", type=int, default=None, help="positions for the other fast kinds (default all)"
    )
    parser.add_argument("--careful-rows", type=int, default=128, help="positions for the careful kernels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="2 × 16 tokens × 1000 classes: proves it runs")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON file (default results/bench_vocab.json)"
    )
    parser.add_argument("--case", nargs=3, metavar=("KIND", "MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.case:  # a child process: one case, its record on stdout
        kind, mode, folder = args.case
        print(json.dumps(run_case(kind, Path(folder), mode == "value+grad")))
        return 0

    if args.smoke:
        args.sequences, args.tokens, args.vocab = 2, 16, 1000
        args.careful_rows = 8
    kinds = args.kinds.split(",")
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        parser.error(f"--kinds: unknown {', '.join(unknown)} (known: {', '.join(KINDS)})")
    created = args.dir is None
    folder = Path(tempfile.mkdtemp(prefix="kdcore-vocab-")) if created else args.dir
    folder.mkdir(parents=True, exist_ok=True)
    shape = [args.sequences, args.tokens, args.vocab]
    positions = args.sequences * args.tokens
    output = args.output or RESULTS / ("bench_vocab-smoke.json" if args.smoke else "bench_vocab.json")
    record = {
        "schema": "kdcore-bench-vocab",
        "command": " ".join(["benchmarks/bench_vocab.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine.describe(),
        "uptime_before": _uptime(),
        "shape": shape,
        "dtype": "float32",
        "input_bytes": positions * args.vocab * 4,
        "cases": [],
    }
    try:
        started = time.perf_counter()
        try:
            student = np.load(folder / "student.npy", mmap_mode="r")
            reuse = list(student.shape) == shape and student.dtype == np.float32 and args.keep
        except (OSError, ValueError):
            reuse = False
        if reuse:
            labels = np.load(folder / "labels.npy")
            record["kept"] = int(np.count_nonzero(labels != -100))
        else:
            record["kept"] = write_inputs(folder, args.sequences, args.tokens, args.vocab, args.seed)["kept"]
        full = args.full.split(",")

        def rows_of(kind: str) -> int:
            if kind in full:
                return positions
            return min(positions, args.careful_rows if kind in CAREFUL else (args.rows or positions))

        for rows in {rows_of(kind) for kind in kinds} - {positions}:
            first_rows(folder, folder / f"first-{rows}", rows)
        record["write_seconds"] = time.perf_counter() - started
        print(machine.summary(record["machine"]))
        print(f"inputs: {shape} float32, {record['input_bytes'] / 2**30:.2f} GiB per array, in {folder}")
        print(
            f"{'kind':>16} {'mode':>10} {'rows':>5} {'chunk':>5} {'seconds':>8} {'s/row':>7} {'RSS +MiB':>9} {'traced MiB':>10}"
        )
        for kind in kinds:
            rows = rows_of(kind)
            case_folder = folder if rows == positions else folder / f"first-{rows}"
            for mode in ("value", "value+grad"):
                load = machine.OtherLoad()
                load.start()
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--case",
                        kind,
                        mode,
                        str(case_folder),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if child.returncode != 0:
                    sys.exit(f"case {kind} {mode} failed:\n{child.stderr}")
                case = json.loads(child.stdout)
                case["other_load_cores"] = load.stop()
                case["chunk_bytes"] = case["chunk_rows"] * args.vocab * 4
                record["cases"].append(case)
                (case_folder / "grad.npy").unlink(missing_ok=True)
                print(
                    f"{kind:>16} {mode:>10} {case['rows']:>5} {case['chunk_rows']:>5} {case['seconds']:>8.2f} "
                    f"{case['seconds_per_row']:>7.4f} {case['rss_peak_growth'] / 2**20:>9.1f} "
                    f"{case['tracemalloc_peak'] / 2**20:>10.1f}"
                )
        record["uptime_after"] = _uptime()
    finally:
        if created or not args.keep:
            for name in ("student.npy", "teacher.npy", "labels.npy", "grad.npy"):
                (folder / name).unlink(missing_ok=True)
            for subset in folder.glob("first-*"):
                shutil.rmtree(subset, ignore_errors=True)
            if created:
                shutil.rmtree(folder, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"load: {record['uptime_before']} (before), {record['uptime_after']} (after)")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
