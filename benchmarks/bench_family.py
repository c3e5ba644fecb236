"""Speed and memory of the mixture family (skew KL, skew reverse KL, JSD) and reverse KL: fast path, careful path, PyTorch.

For every loss, shape and dtype, one call of the loss and its student gradient (mean over the rows) is timed
for three implementations, interleaved in one process (a shuffled order each repetition, after a warm-up),
as **CPU time** (``time.process_time``: all threads of the process, so PyTorch's thread pool counts as much
as kdcore's threads), and the best of the repetitions is kept:

* ``fast``: the public ``*_and_grad`` (``skew_kl_divergence_and_grad(z, v, T, skew=0.1)``, …): the fast path
  with its certificate, refused rows recomputed carefully;
* ``careful``: the same loss and gradient from the careful algorithm alone (``_mixture.mixture_rows`` over
  row chunks — what the public functions ran before the fast path; for reverse KL the exact match's
  gradient with the roles exchanged);
* ``torch``: PyTorch autograd, written as the trainers write these losses: the JSD as trl's
  ``generalized_jsd_loss`` (the mixture's log formed in log space by ``logsumexp`` of the two
  log-probabilities plus ``log β``/``log(1 − β)``, then two ``F.kl_div(..., log_target=True)``), skew KL and
  skew reverse KL as DistiLLM's ``skewed_forward_kl``/``skewed_reverse_kl`` (``log`` of the mixed
  *probabilities*; kept as a KL, with the anchor's own log-probabilities), reverse KL as
  ``F.kl_div(log_softmax(v/T), log_softmax(z/T), log_target=True)``. ``.backward()`` on the mean.

PyTorch runs twice: ``torch-1t`` on one thread, whose CPU time is its work (on several threads its OpenMP
workers spin while they wait, and that counts as CPU time), and ``torch`` on its default threads, compared by
wall time. kdcore uses its own default threads (``kdcore.get_num_threads()``) in both measures.

Every result is first checked against kdcore's float64 result, so a fast wrong answer cannot win.
Peak extra memory is tracemalloc's (every NumPy allocation, the returned gradient included) over one input.
``certified`` is the fraction of rows the fast path certified (value and gradient).

Inputs as in ``bench_losses.py``: student logits ~ N(0, 2²), teacher logits ~ N(0, 3²), T = 4.

    .venv/bin/python benchmarks/bench_family.py                     # 3 shapes × 2 dtypes × 4 losses, ~5 min
    .venv/bin/python benchmarks/bench_family.py --quick             # tiny shapes, one repetition (a smoke test)
    .venv/bin/python benchmarks/bench_family.py --write-page        # and regenerate docs/performance.md's block
    .venv/bin/python benchmarks/bench_family.py --page-from benchmarks/results/bench_family.json  # the block only
    .venv/bin/python benchmarks/bench_family.py --check-page benchmarks/results/bench_family.json # exit 1 if stale
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import machine
import numpy as np

import kdcore
from kdcore._arrays import as_logit_pair
from kdcore._chunks import map_rows
from kdcore._fast_mixture import mixture_fast_rows, reverse_kl_grad_rows
from kdcore._match import match
from kdcore._mixture import mixture_rows

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PAGE = REPO / "docs" / "performance.md"
SHAPES = ((256, 1000), (64, 32000), (8, 128000))
QUICK_SHAPES = ((16, 300), (4, 2000))
DTYPES = ("float32", "float64")
T = 4.0
# loss name → (kind for the mixture kernel, weight, public function)
LOSSES = {
    "skew_kl": ("skew_kl", 0.1, "skew_kl_divergence_and_grad"),
    "skew_reverse_kl": ("skew_reverse_kl", 0.1, "skew_reverse_kl_divergence_and_grad"),
    "jsd": ("jsd", 0.5, "jensen_shannon_divergence_and_grad"),
    "reverse_kl": (None, None, "reverse_kl_divergence_and_grad"),
}
BEGIN, END = "<!-- bench_family -->\n", "<!-- /bench_family -->"


def prepare_fast(loss: str, z: np.ndarray, v: np.ndarray) -> Callable:
    kind, weight, name = LOSSES[loss]
    function = getattr(kdcore, name)
    if kind is None:
        return lambda: function(z, v, T)
    return lambda: function(z, v, T, weight)


def prepare_careful(loss: str, z: np.ndarray, v: np.ndarray) -> Callable:
    kind, weight, _ = LOSSES[loss]
    scale = z.dtype.type(1 / z.shape[0])

    def run():
        student, teacher = as_logit_pair(z, v)
        if kind is None:  # the value from the fast KL kernel (as before), the gradient from the exact match
            value = kdcore.reverse_kl_divergence(student, teacher, T)
            (grad,) = map_rows(lambda a, b: (match(b, a, T).kl_teacher_grad(),), student, teacher)
            return value, grad * scale
        values, grad = map_rows(
            lambda a, b: mixture_rows(kind, a, b, T, weight, (None, "student")), student, teacher
        )
        return values.mean(), grad * scale

    return run


def torch_losses(torch) -> dict:
    functional = torch.nn.functional

    def jsd(student, teacher, beta):  # trl's generalized_jsd_loss (beta weights the teacher)
        student_log_probs = functional.log_softmax(student / T, dim=-1)
        teacher_log_probs = functional.log_softmax(teacher / T, dim=-1)
        beta_t = torch.tensor(beta, dtype=student.dtype)
        mixture_log_probs = torch.logsumexp(
            torch.stack([student_log_probs + torch.log1p(-beta_t), teacher_log_probs + torch.log(beta_t)]),
            dim=0,
        )
        kl_teacher = functional.kl_div(
            mixture_log_probs, teacher_log_probs, reduction="none", log_target=True
        )
        kl_student = functional.kl_div(
            mixture_log_probs, student_log_probs, reduction="none", log_target=True
        )
        return (beta_t * kl_teacher + (1 - beta_t) * kl_student).sum() / student.shape[0]

    def skew_kl(student, teacher, alpha):  # DistiLLM: log of the mixed probabilities
        student_probs = functional.softmax(student / T, dim=-1)
        teacher_log_probs = functional.log_softmax(teacher / T, dim=-1)
        teacher_probs = teacher_log_probs.exp()
        mixed_log_probs = torch.log(alpha * teacher_probs + (1 - alpha) * student_probs)
        return (teacher_probs * (teacher_log_probs - mixed_log_probs)).sum() / student.shape[0]

    def skew_reverse_kl(student, teacher, alpha):
        student_log_probs = functional.log_softmax(student / T, dim=-1)
        student_probs = student_log_probs.exp()
        teacher_probs = functional.softmax(teacher / T, dim=-1)
        mixed_log_probs = torch.log(alpha * student_probs + (1 - alpha) * teacher_probs)
        return (student_probs * (student_log_probs - mixed_log_probs)).sum() / student.shape[0]

    def reverse_kl(student, teacher, _):
        return functional.kl_div(
            functional.log_softmax(teacher / T, dim=-1),
            functional.log_softmax(student / T, dim=-1),
            reduction="batchmean",
            log_target=True,
        )

    return {"jsd": jsd, "skew_kl": skew_kl, "skew_reverse_kl": skew_reverse_kl, "reverse_kl": reverse_kl}


def prepare_torch(torch, loss: str, z: np.ndarray, v: np.ndarray) -> Callable:
    function = torch_losses(torch)[loss]
    _, weight, _ = LOSSES[loss]
    student = torch.from_numpy(z).requires_grad_()  # shares memory: no copy is timed
    teacher = torch.from_numpy(v)

    def run():
        student.grad = None
        value = function(student, teacher, weight)
        value.backward()
        return float(value.detach()), student.grad.numpy()

    return run


def check(name: str, out, reference: tuple[float, np.ndarray], dtype: str) -> None:
    """A wrong answer must not be timed: loss and gradient within float32's (or float64's) reach."""
    value, grad = float(out[0]), np.asarray(out[1])
    rtol = 1e-3 if dtype == "float32" else 1e-8
    ref_value, ref_grad = reference
    if abs(value - ref_value) > rtol * abs(ref_value) or np.max(np.abs(grad - ref_grad)) > rtol * np.max(
        np.abs(ref_grad)
    ):
        raise AssertionError(f"{name}: loss {value!r} or gradient disagrees with kdcore's float64 result")


def best_times(runs: dict[str, Callable], contexts: dict, reps: int, seed: int) -> tuple[dict, dict]:
    """Per implementation the smallest CPU time and the smallest wall time of ``reps`` calls, interleaved in
    a shuffled order."""
    rng = np.random.default_rng(seed)
    names = list(runs)
    for name in names:
        with contexts[name]:
            runs[name]()  # warm-up
    cpu = dict.fromkeys(names, float("inf"))
    wall = dict.fromkeys(names, float("inf"))
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(reps):
            for index in rng.permutation(len(names)):
                name = names[index]
                with contexts[name]:
                    started, started_wall = time.process_time(), time.perf_counter()
                    runs[name]()
                    cpu[name] = min(cpu[name], time.process_time() - started)
                    wall[name] = min(wall[name], time.perf_counter() - started_wall)
    finally:
        if enabled:
            gc.enable()
    return cpu, wall


def certified(loss: str, z: np.ndarray, v: np.ndarray) -> float:
    kind, weight, _ = LOSSES[loss]
    flags = np.zeros(z.shape[0], dtype=bool)
    if kind is None:
        reverse_kl_grad_rows(z, v, T, 1 / T, flags)
    else:
        mixture_fast_rows(kind, z, v, T, weight, value=True, grad_scale=1 / T, certified_out=flags)
    return float(flags.mean())


def run_case(loss: str, shape: tuple[int, int], dtype: str, reps: int, torch, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    z64 = rng.normal(0.0, 2.0, size=shape)
    v64 = rng.normal(0.0, 3.0, size=shape)
    z, v = z64.astype(dtype), v64.astype(dtype)
    reference_out = prepare_fast(loss, z64, v64)()
    reference = (float(reference_out[0]), reference_out[1])
    runs = {"fast": prepare_fast(loss, z, v), "careful": prepare_careful(loss, z, v)}
    contexts = {"fast": machine.TorchThreads(torch, None), "careful": machine.TorchThreads(torch, None)}
    if torch is not None:
        runs["torch"] = prepare_torch(torch, loss, z, v)
        runs["torch-1t"] = prepare_torch(torch, loss, z, v)
        contexts["torch"], contexts["torch-1t"] = (
            machine.TorchThreads(torch, None),
            machine.TorchThreads(torch, 1),
        )
    for name, run in runs.items():
        with contexts[name]:
            check(name, run(), reference, dtype)
    cpu, wall = best_times(runs, contexts, reps, seed)
    return {
        "loss": loss,
        "shape": list(shape),
        "dtype": dtype,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "certified": certified(loss, z, v),
        "memory": {name: machine.tracemalloc_peak(runs[name]) / z.nbytes for name in ("fast", "careful")},
    }


def table(record: dict) -> str:
    """The Markdown table of a run: CPU-time ratios, certified rows and memory, one line per case."""
    lines = [
        "| loss | shape | dtype | fast (ms CPU) | fast / careful (CPU) | fast / PyTorch 1 thread (CPU) "
        "| fast / PyTorch (wall) | certified rows | memory / input (fast, careful) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in record["cases"]:
        cpu, wall = case["cpu_seconds"], case["wall_seconds"]
        one_thread = f"{cpu['fast'] / cpu['torch-1t']:.2f}" if "torch-1t" in cpu else "—"
        default = f"{wall['fast'] / wall['torch']:.2f}" if "torch" in wall else "—"
        memory = case["memory"]
        lines.append(
            f"| {case['loss']} | {case['shape'][0]} × {case['shape'][1]} | {case['dtype']} | "
            f"{1000 * cpu['fast']:.1f} | {cpu['fast'] / cpu['careful']:.3f} | {one_thread} | {default} | "
            f"{case['certified']:.2f} | {memory['fast']:.2f}, {memory['careful']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def span(values: list[float], digits: int, suffix: str = "") -> str:
    """'0.30–2.06×', or '1.00' where both ends print alike."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return (low if low == high else f"{low}–{high}") + suffix


def summary(record: dict) -> str:
    """One sentence per group of losses (the mixture family; reverse KL), then memory and certified rows."""
    lines = []
    groups = (
        ("Skew KL, skew reverse KL and the JSD", lambda c: c["loss"] != "reverse_kl"),
        ("Reverse KL", lambda c: c["loss"] == "reverse_kl"),
    )
    for title, keep in groups:
        cases = [c for c in record["cases"] if keep(c)]
        if not cases:
            continue
        speedups = [c["cpu_seconds"]["careful"] / c["cpu_seconds"]["fast"] for c in cases]
        text = (
            f"{title}: the fast path is {span(speedups, 1, '×')} faster than the careful algorithm (CPU time)"
        )
        one_thread = [
            c["cpu_seconds"]["fast"] / c["cpu_seconds"]["torch-1t"]
            for c in cases
            if "torch-1t" in c["cpu_seconds"]
        ]
        default = [
            c["wall_seconds"]["fast"] / c["wall_seconds"]["torch"]
            for c in cases
            if "torch" in c["wall_seconds"]
        ]
        if one_thread:
            text += (
                f" and takes {span(one_thread, 2, '×')} the CPU time of PyTorch autograd on one thread"
                f" ({span(default, 2, '×')} the wall time of PyTorch on its default threads)"
            )
        lines.append(text + ".")
    memory = [c["memory"]["fast"] for c in record["cases"]]
    certified_rows = [c["certified"] for c in record["cases"]]
    lines.append(
        f"Peak extra memory of the fast path: {span(memory, 2, '×')} one input; fraction of rows certified:"
        f" {span(certified_rows, 2)}."
    )
    return "\n\n".join(lines) + "\n"


def section(record: dict) -> str:
    """The generated part of docs/performance.md's section "The mixture family's fast path"."""
    return (
        f"{machine.summary(record['machine'])}\n\n"
        f"    {record['command']}\n\n"
        f"{table(record)}\n{summary(record)}"
    )


def render(page: str, record: dict) -> str:
    """``page`` with the block between ``BEGIN`` and ``END`` regenerated from ``record``."""
    start, stop = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:start] + section(record) + page[stop:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repetition (a smoke test)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per case (best CPU time kept)")
    parser.add_argument(
        "--losses", default=",".join(LOSSES), help="comma-separated subset of " + ", ".join(LOSSES)
    )
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write the run (default benchmarks/results/bench_family[-quick].json)",
    )
    parser.add_argument(
        "--write-page", action="store_true", help="regenerate docs/performance.md's block from the run"
    )
    parser.add_argument(
        "--check-page",
        type=Path,
        help="measure nothing: exit 1 if the page's block disagrees with this JSON",
    )
    parser.add_argument(
        "--page-from", type=Path, help="measure nothing: regenerate the page's block from this JSON"
    )
    parser.add_argument("--page", type=Path, default=PAGE, help="the page (default docs/performance.md)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.check_page is not None:
        page = args.page.read_text()
        if render(page, json.loads(args.check_page.read_text())) != page:
            print(f"{args.page} is out of date: run bench_family.py --page-from JSON", file=sys.stderr)
            return 1
        return 0
    if args.page_from is not None:
        write_page(args.page, json.loads(args.page_from.read_text()))
        return 0
    losses = [name for name in args.losses.split(",") if name]
    for name in losses:
        if name not in LOSSES:
            print(f"error: --losses: unknown loss {name!r}", file=sys.stderr)
            return 2
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: timing kdcore only", file=sys.stderr)
    shapes, reps = (QUICK_SHAPES, 1) if args.quick else (SHAPES, args.reps)
    command = "benchmarks/bench_family.py" + (" --quick" if args.quick else f" --reps {reps}")
    record = {"command": command, "machine": machine.describe(), "T": T, "cases": []}
    print(machine.summary(record["machine"]), flush=True)
    for shape in shapes:
        for dtype in DTYPES:
            for loss in losses:
                case = run_case(loss, shape, dtype, reps, torch, args.seed)
                record["cases"].append(case)
                cpu = case["cpu_seconds"]
                print(
                    f"{loss:16s} {shape[0]:5d} × {shape[1]:<6d} {dtype}: fast {1000 * cpu['fast']:9.1f} ms, "
                    f"careful / fast {cpu['careful'] / cpu['fast']:7.1f}, "
                    + (f"fast / torch-1t {cpu['fast'] / cpu['torch-1t']:5.2f}, " if "torch" in cpu else "")
                    + f"certified {case['certified']:.2f}, memory {case['memory']['fast']:.2f}",
                    flush=True,
                )
    print()
    print(table(record))
    print(summary(record))
    path = args.json or RESULTS / ("bench_family-quick.json" if args.quick else "bench_family.json")
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(path)
    print(f"wrote {path}")
    if args.write_page:
        write_page(args.page, record)
    return 0


def write_page(page_path: Path, record: dict) -> None:
    """Rewrite the generated block of ``page_path`` from ``record``, atomically."""
    text = render(page_path.read_text(), record)
    temporary = page_path.with_suffix(".md.tmp")
    temporary.write_text(text)
    temporary.replace(page_path)
    print(f"rewrote the mixture family's block of {page_path}")


if __name__ == "__main__":
    sys.exit(main())
