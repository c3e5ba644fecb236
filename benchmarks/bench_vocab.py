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

The mixture family's careful kernels (JSD, skew KL both ways) took 0.2–1.4 s per row of 128 000 classes
under load when this was written, 100 times and more the fast KL kernel: hours for every row on a 2-core
machine (with the family's fast path, about the KL's time: ``--full all`` takes about 11 minutes).
So the kinds named by ``--full`` (default ``kl``; ``all`` for every kind) run on all 4096 positions, the
mixtures on the first ``--careful-rows`` positions (default 130: two chunks, so that their
memory is that of full chunks) and the others on the first ``--rows``
(default: all), each subset written as files of its own; the JSON says how many rows each case ran on, and
the seconds per row. Memory does not depend on the number of rows: a chunk is a chunk.

Memory is reported against one chunk of what is read (chunk rows × (V floats per logits array read, or
k values and k indices for a top-k teacher)), and checked against issue 9's bound: the peak growth at most
twice that plus the output held at once (the chunk's gradient rows, for ``value+grad``).

docs/performance.md's final section quotes a run between ``<!-- bench_vocab:NAME -->`` markers; ``--page``
rewrites those blocks from a run's JSON (``--json``, default the committed results/bench_vocab.json) and
``--page --check`` exits 1 when the page is out of date (tests/test_bench_vocab.py checks it too).

Examples::

    .venv/bin/python benchmarks/bench_vocab.py --dir /work/runs/vocab --keep --full all
    .venv/bin/python benchmarks/bench_vocab.py --dir /work/runs/vocab --keep --rows 256
    .venv/bin/python benchmarks/bench_vocab.py --smoke --kinds kl,jsd         # tiny: proves it runs
    .venv/bin/python benchmarks/bench_vocab.py --page                         # docs/performance.md from the JSON
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
import page_blocks
from bench_losses import _status_kib, rss_peak_setup

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "performance.md"
RESULTS = REPO / "benchmarks" / "results"
KINDS = (
    "kl",
    "soft-ce",
    "reverse-kl",
    "jsd",
    "skew-kl",
    "skew-reverse-kl",
    "distillation",
    "dkd",
    "tckd",
    "nckd",
    "ce",
    "logit-mse",
    "topk-kl",
    "topk-soft-ce",
)
CAREFUL = ("jsd", "skew-kl", "skew-reverse-kl")  # the slow kernels, timed on --careful-rows rows
TOPK = 64  # classes a top-k teacher keeps (its values as log-probabilities, Megatron-LM's layout)
# The loss's parameters: T = 2 and the functions' defaults (DKD's are mdistiller's: T = 4, α = 1, β = 8);
# top-k: the tail convention (at T = 1, as it is defined) and renormalised over the top k at T = 2.
PARAMETERS = {kind: {} if kind in ("ce", "dkd", "logit-mse") else {"T": 2.0} for kind in KINDS}
PARAMETERS["distillation"]["alpha"] = 0.5
PARAMETERS["topk-kl"] = {"convention": "tail", "values": "log_probs"}
PARAMETERS["topk-soft-ce"] = {"T": 2.0, "convention": "renormalized", "values": "log_probs"}


def _spec(kind: str):
    from kdcore._loss_command import KINDS as COMMAND_KINDS

    return COMMAND_KINDS[kind]


def row_bytes(kind: str, vocab: int) -> int:
    """Bytes of one position that a kind reads: student (and teacher) logits, or a top-k teacher's k
    float32 values and k int64 indices."""
    spec = _spec(kind)
    return vocab * 4 + (vocab * 4 if spec.teacher else 0) + (TOPK * (4 + 8) if spec.top_k else 0)


def pieces(kind: str) -> int:
    """How many calls of the loss function streaming makes per chunk (kdcore/streaming/losses.py)."""
    from kdcore.streaming import LOSSES

    return LOSSES[_spec(kind).loss].pieces


def output_bytes(kind: str, chunk_rows: int, vocab: int) -> int:
    """The gradient rows (float32) held at once: those of one call, ``chunk_rows / pieces`` rows."""
    return -(-chunk_rows // pieces(kind)) * vocab * 4


def write_inputs(folder: Path, sequences: int, tokens: int, vocab: int, seed: int) -> dict:
    """student.npy, teacher.npy (float32, sequences × tokens × vocab), the teacher's top-k
    (teacher_values.npy, teacher_indices.npy) and labels.npy, a block at a time."""
    from kdcore import topk_teacher
    from kdcore.arrays_on_disk import NpyRowWriter

    rng = np.random.default_rng(seed)
    shape = (sequences, tokens, vocab)
    k = min(TOPK, vocab)
    block = max(1, 2**22 // vocab)
    with (
        NpyRowWriter(folder / "student.npy", shape, np.float32) as student,
        NpyRowWriter(folder / "teacher.npy", shape, np.float32) as teacher,
        NpyRowWriter(folder / "teacher_values.npy", (*shape[:-1], k), np.float32) as top_values,
        NpyRowWriter(folder / "teacher_indices.npy", (*shape[:-1], k), np.int64) as top_indices,
    ):
        for start in range(0, sequences * tokens, block):
            rows = min(block, sequences * tokens - start)
            teacher_rows = rng.standard_normal((rows, vocab), dtype=np.float32) * np.float32(3)
            noise = rng.standard_normal((rows, vocab), dtype=np.float32)
            teacher.write(teacher_rows)
            student.write(np.float32(0.7) * teacher_rows + noise)  # a student that has learnt something
            values, indices = topk_teacher(teacher_rows, k, values="log_probs")
            top_values.write(values)
            top_indices.write(indices)
    labels = rng.integers(0, vocab, size=(sequences, tokens))
    for row, padding in enumerate(rng.integers(0, tokens // 5, size=sequences)):
        labels[row, tokens - padding :] = -100  # each sequence padded at its end
    np.save(folder / "labels.npy", labels)
    return {"shape": list(shape), "kept": int(np.count_nonzero(labels != -100))}


ARRAYS = ("student", "teacher", "teacher_values", "teacher_indices")


def _call(kind: str, folder: Path, grad: bool, rows: int | None = None):
    """The ``kdcore loss`` computation on the files in ``folder`` (on their first ``rows`` rows if given)."""
    from kdcore.arrays_on_disk import open_array
    from kdcore.streaming import stream_loss

    spec = _spec(kind)

    def array(name: str):
        if rows is None:  # the file itself: kdcore maps it, and gives back the pages of finished chunks
            return open_array(folder / f"{name}.npy")
        mapped = np.load(folder / f"{name}.npy", mmap_mode="r")
        return mapped.reshape(-1, mapped.shape[-1])[:rows]

    teacher = None
    if spec.top_k:
        teacher = (array("teacher_values"), array("teacher_indices"))
    elif spec.teacher:
        teacher = array("teacher")
    labels = np.load(folder / "labels.npy")
    return stream_loss(
        spec.loss,
        array("student"),
        teacher,
        labels if rows is None else labels.reshape(-1)[:rows],
        grad_out=folder / "grad.npy" if grad else None,
        **PARAMETERS[kind],
    )


def first_rows(source: Path, target: Path, rows: int) -> None:
    """The first ``rows`` positions of the batch in ``source`` as files of their own in ``target``."""
    from kdcore.arrays_on_disk import NpyRowWriter, open_array

    target.mkdir(exist_ok=True)
    for name in ARRAYS:
        with (
            open_array(source / f"{name}.npy") as array,
            NpyRowWriter(target / f"{name}.npy", (rows, array.row_length), array.dtype) as out,
        ):
            out.write(array.rows(0, rows))
    np.save(target / "labels.npy", np.load(source / "labels.npy").reshape(-1)[:rows])


def run_case(kind: str, folder: Path, grad: bool, threads: int | None = None) -> dict:
    """One case, in this (fresh) process: time, RSS growth and tracemalloc's peak of one call."""
    from kdcore import get_num_threads, num_threads

    rss_peak_setup()
    _call(kind, folder, grad, rows=2)  # imports and first-call set-up are not the loss's memory
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        with contextlib.nullcontext() if threads is None else num_threads(threads):
            used_threads = get_num_threads()
            result = _call(kind, folder, grad)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = (_status_kib("VmHWM") - before) * 1024
    vocab = result.shape[-1]
    return {
        "kind": kind,
        "loss": result.loss,
        "mode": "value+grad" if grad else "value",
        "threads": used_threads,
        # What one chunk reads, and the output held at once: the gradient rows of one call of the loss
        # function (a chunk, or a piece of one: kdcore/streaming/losses.py), on their way to the file.
        "chunk_bytes": result.chunk_rows * row_bytes(kind, vocab),
        "pieces": pieces(kind),
        "output_bytes": output_bytes(kind, result.chunk_rows, vocab) if grad else 0,
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


def bound_ratio(case: dict) -> float:
    """Issue 9's measure: the peak growth beyond the output held at once, in chunks of what is read (≤ 2)."""
    return (case["rss_peak_growth"] - case["output_bytes"]) / case["chunk_bytes"]


def _load(record: dict) -> str:
    def averages(uptime: str) -> str:
        return uptime.split("load average: ")[-1]

    return f"`{averages(record['uptime_before'])}` before, `{averages(record['uptime_after'])}` after"


def command_block(record: dict) -> str:
    """The command that produced the run, as a shell block."""
    return f"```sh\n.venv/bin/python {record['command']}\n```\n"


def results_block(record: dict) -> str:
    """The table and the figures docs/performance.md quotes, computed from a run's JSON."""
    sequences, tokens, vocab = record["shape"]
    positions = sequences * tokens
    cases = record["cases"]
    threads = sorted({case["threads"] for case in cases})
    lines = [
        f"Inputs: {sequences} × {tokens} tokens × {vocab} classes, float32, "
        f"{record['input_bytes'] / 2**30:.2f} GiB per logits array (a top-k teacher: k = {record['topk']}); "
        f"{record['kept']} of {positions} positions kept (the rest padding, `-100`). "
        f"{' or '.join(map(str, threads))} kdcore thread{'s' if threads != [1] else ''} per chunk. "
        f"Load: {_load(record)} (1, 5, 15-minute averages, {record['machine']['cores']} cores).",
        "",
        "| loss | mode | rows | chunk | seconds | s / 1000 rows | peak RSS growth | traced peak "
        "| RSS / chunk read | (RSS − output) / chunk |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        ratio = bound_ratio(case)
        lines.append(
            f"| `{case['kind']}` | {case['mode']} | {case['rows']} | {case['chunk_rows']} | {case['seconds']:.1f} "
            f"| {1000 * case['seconds_per_row']:.1f} | {_mib(case['rss_peak_growth'])} "
            f"| {_mib(case['tracemalloc_peak'])} | {case['rss_peak_growth'] / case['chunk_bytes']:.2f} "
            f"| {ratio:.3f} {'✓' if ratio <= 2 else '✗'} |"
        )
    ratios = [bound_ratio(case) for case in cases]
    largest = max(cases, key=lambda case: case["rss_peak_growth"])
    read = sum(case["rows"] * row_bytes(case["kind"], vocab) for case in cases)
    lines += [
        "",
        f"Peak RSS growth: {_mib(largest['rss_peak_growth'])} at most (`{largest['kind']}`, {largest['mode']}), "
        f"against {read / 2**30:.1f} GiB of files read by the {len(cases)} cases together; "
        f"{sum(r <= 2 for r in ratios)} of {len(ratios)} cases within issue 9's bound (≤ 2 chunks read, "
        f"beyond the output held at once).",
    ]
    over = [case for case in cases if bound_ratio(case) > 2]
    if over:
        names = [f"`{case['kind']}` ({case['mode']})" for case in over]
        peaks = [case["tracemalloc_peak"] for case in over]
        lines += [
            "",
            f"Beyond the bound: {', '.join(names)}, by at most {max(map(bound_ratio, over)):.2f} chunks; what "
            f"their loss functions allocate (traced peak) is {_mib(min(peaks))} to {_mib(max(peaks))}.",
        ]
    partial = [case for case in cases if case["rows"] < positions]
    if partial:
        totals = [case["seconds_per_row"] * positions for case in partial]
        lines += [
            "",
            f"The cases with fewer than {positions} rows ran on the first positions of the same batch; at "
            f"the rates measured there, all {positions} would take {min(totals):.0f}–{max(totals):.0f} s each "
            f"({sum(totals) / 3600:.1f} h together).",
        ]
    return "\n".join(lines) + "\n"


BLOCKS = {"vocab-command": command_block, "vocab-results": results_block}


def render(page: str, record: dict) -> str:
    """``page`` with every ``bench_vocab`` block regenerated from ``record`` (benchmarks/page_blocks.py)."""
    return page_blocks.render(page, record, BLOCKS, "bench_vocab", "bench_vocab block")


def write_page(json_path: Path, page_path: Path, check: bool) -> int:
    record = json.loads(json_path.read_text())
    page = page_path.read_text()
    try:
        text = render(page, record)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if check:
        if text != page:
            print(f"{page_path} is out of date: run benchmarks/bench_vocab.py --page", file=sys.stderr)
            return 1
        return 0
    if text != page:
        temporary = page_path.with_suffix(".md.tmp")
        temporary.write_text(text)
        temporary.replace(page_path)  # atomic: a reader never sees half a page
        print(f"rewrote the bench_vocab blocks of {page_path}")
    else:
        print(f"{page_path} is up to date")
    return 0


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
    parser.add_argument("--full", default="kl", help="kinds run on every position, or 'all' (default: kl)")
    parser.add_argument(
        "--threads", type=int, default=None, help="kdcore threads per chunk (default: kdcore's)"
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="positions for the other fast kinds (default all)"
    )
    parser.add_argument(
        "--careful-rows",
        type=int,
        default=130,
        help="positions for the careful kernels (≥ a chunk: 65 at V = 128000)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="2 × 16 tokens × 1000 classes: proves it runs")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON file (default results/bench_vocab.json)"
    )
    parser.add_argument(
        "--page",
        action="store_true",
        help="only rewrite docs/performance.md's bench_vocab blocks from --json (no run)",
    )
    parser.add_argument("--check", action="store_true", help="with --page: exit 1 if the page is out of date")
    parser.add_argument(
        "--json", type=Path, default=RESULTS / "bench_vocab.json", help="with --page: the run to quote"
    )
    parser.add_argument("--case", nargs=3, metavar=("KIND", "MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.page:
        return write_page(args.json, PAGE, args.check)
    if args.case:  # a child process: one case, its record on stdout
        kind, mode, folder = args.case
        print(json.dumps(run_case(kind, Path(folder), mode == "value+grad", args.threads)))
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
        "topk": min(TOPK, args.vocab),
        "cases": [],
    }
    try:
        started = time.perf_counter()
        try:
            student = np.load(folder / "student.npy", mmap_mode="r")
            reuse = list(student.shape) == shape and student.dtype == np.float32 and args.keep
            reuse = reuse and all((folder / f"{name}.npy").exists() for name in ARRAYS)
        except (OSError, ValueError):
            reuse = False
        if reuse:
            labels = np.load(folder / "labels.npy")
            record["kept"] = int(np.count_nonzero(labels != -100))
        else:
            record["kept"] = write_inputs(folder, args.sequences, args.tokens, args.vocab, args.seed)["kept"]
        full = list(KINDS) if args.full == "all" else args.full.split(",")

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
            f"{'kind':>16} {'mode':>10} {'rows':>5} {'chunk':>5} {'seconds':>8} {'s/row':>7} {'RSS +MiB':>9} "
            f"{'traced MiB':>10} {'RSS/chunk':>9} {'(RSS-out)/chunk':>9}"
        )
        for kind in kinds:
            rows = rows_of(kind)
            case_folder = folder if rows == positions else folder / f"first-{rows}"
            for mode in ("value", "value+grad"):
                load = machine.OtherLoad()
                load.start()
                threads = [] if args.threads is None else ["--threads", str(args.threads)]
                child = subprocess.run(
                    [sys.executable, __file__, "--case", kind, mode, str(case_folder), *threads],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if child.returncode != 0:
                    sys.exit(f"case {kind} {mode} failed:\n{child.stderr}")
                case = json.loads(child.stdout)
                case["other_load_cores"] = load.stop()
                record["cases"].append(case)
                (case_folder / "grad.npy").unlink(missing_ok=True)
                print(
                    f"{kind:>16} {mode:>10} {case['rows']:>5} {case['chunk_rows']:>5} {case['seconds']:>8.2f} "
                    f"{case['seconds_per_row']:>7.4f} {case['rss_peak_growth'] / 2**20:>9.1f} "
                    f"{case['tracemalloc_peak'] / 2**20:>10.1f} "
                    f"{case['rss_peak_growth'] / case['chunk_bytes']:>9.2f} {bound_ratio(case):>9.2f}",
                    flush=True,
                )
        record["uptime_after"] = _uptime()
    finally:
        if created or not args.keep:
            for name in (*ARRAYS, "labels", "grad"):
                (folder / f"{name}.npy").unlink(missing_ok=True)
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
