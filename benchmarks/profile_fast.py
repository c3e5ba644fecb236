"""Where the fast soft-loss kernel's time goes: each of its array passes timed alone on one chunk, and what a
second thread buys at each chunk size.

    .venv/bin/python benchmarks/profile_fast.py                     # 64 × 1000, float32 and float64
    .venv/bin/python benchmarks/profile_fast.py --threads 1024x1000,8x128000

The first table: each step of ``kdcore._fast._fast_stats`` (value and gradient, a chunk of more than
``TRANSPOSED_MAX_CLASSES`` classes) is repeated on its own, on the same data, and its median time is printed
in units of one ``np.exp`` over the chunk (the unit of the exp floor). Two reference lines time sums the
kernel does not use: the buffered ``np.sum(..., dtype=float64)`` of float32 data it used before, and a
float32 sum in float32.

``--threads SHAPES``: for each shape and chunk size (``--chunks``, powers of two; the memory bound is lifted
so that the size is the one asked for), ``kl_divergence_and_grad`` on one thread and on two, interleaved,
medians. Run it where nothing else runs (``chrt -f 50`` gives the process the machine on Linux; keep it
short).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import kdcore
from kdcore import _chunks, _fast


def timed(function, reps: int) -> float:
    function()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def kernel_steps(z: np.ndarray, v: np.ndarray) -> tuple[dict, np.ndarray]:
    """Each step of the kernel as a zero-argument function on this chunk (and the output array)."""
    dtype = z.dtype.type
    rows, n = z.shape
    a, b, out = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    np.subtract(v, v.max(-1, keepdims=True), out=a)
    a /= dtype(4.0)
    np.exp(a, out=b)
    d = (z - v) / dtype(4.0)
    f = d - (np.einsum("ij,ij->i", b, d)[:, None] / _fast.row_sum64(b, 1)).astype(dtype)
    e1 = np.expm1(f)
    column = np.full((rows, 1), 0.5, dtype=dtype)
    stats = np.empty((_fast.N_STATS, rows))
    _fast._fast_stats(z, v, 4.0, stats, False, out, 0.25)
    maximum, minimum = np.maximum.reduce, np.minimum.reduce
    steps = {
        "max v (reduction)": lambda: maximum(v, axis=1, keepdims=True),
        "v − max v": lambda: np.subtract(v, column, out=a),
        "÷ T": lambda: np.divide(a, dtype(4.0), out=a),
        "exp (teacher)": lambda: np.exp(d, out=out),
        "Σ e (float64-accumulated sum)": lambda: _fast.row_sum64(b, 1),
        "z − v": lambda: np.subtract(z, v, out=a),
        "÷ T (d)": lambda: np.divide(a, dtype(4.0), out=a),
        "c = e·d (dot)": lambda: np.einsum("ij,ij->i", b, d),
        "f = d − c": lambda: np.subtract(d, column, out=a),
        "max f": lambda: maximum(f, axis=1, keepdims=True),
        "min f": lambda: minimum(f, axis=1, keepdims=True),
        "e ⊙ f": lambda: np.multiply(b, f, out=out),
        "r = Σ e f (float64-accumulated sum)": lambda: _fast.row_sum64(out, 1),
        "Σ e f² (dot)": lambda: np.einsum("ij,ij->i", out, f),
        "expm1 f": lambda: np.expm1(f, out=a),
        "Σ e f expm1 f (dot)": lambda: np.einsum("ij,ij->i", out, e1),
        "e ⊙ expm1 f": lambda: np.multiply(b, e1, out=out),
        "σ = Σ (float64-accumulated sum)": lambda: _fast.row_sum64(out, 1),
        "expm1 f − σ": lambda: np.subtract(e1, column, out=a),
        "e ⊙ (…)": lambda: np.multiply(b, a, out=out),
        "× scale/(S(1+σ))": lambda: np.multiply(out, column, out=out),
        "abs(g) and its max": lambda: maximum(np.abs(out, out=a), axis=1, keepdims=True),
        "certificate (this chunk's rows)": lambda: _fast._certify(z.dtype, n, stats, False, True, 0.25),
        "the whole kernel (passes and certificate)": lambda: _fast._fast_chunk(z, v, 4.0, False, out, 0.25),
        "(not used: np.sum(..., dtype=float64))": lambda: np.sum(b, axis=1, keepdims=True, dtype=np.float64),
        "(not used: np.sum in the input's dtype)": lambda: np.sum(b, axis=1, keepdims=True),
    }
    return steps, out


def profile(shape: tuple[int, int], reps: int) -> None:
    rows, n = shape
    rng = np.random.default_rng(0)
    print(f"| step | {rows} × {n} float32 | float64 |")
    print("|---|---:|---:|")
    results: dict[str, list[float]] = {}
    for dtype in (np.float32, np.float64):
        z = (rng.standard_normal((rows, n)) * 2).astype(dtype)
        v = (rng.standard_normal((rows, n)) * 3).astype(dtype)
        steps, out = kernel_steps(z, v)
        floor = timed(lambda z=z, out=out: np.exp(z, out=out), reps)
        for name, step in steps.items():
            results.setdefault(name, []).append(timed(step, reps) / floor)
        results.setdefault("(one np.exp over the chunk)", []).append(floor * 1e6)
    passes = [name for name in results if not name.startswith(("(", "the whole", "certificate"))]
    for name, (r32, r64) in results.items():
        unit = " µs" if name == "(one np.exp over the chunk)" else " exp"
        print(f"| {name} | {r32:.2f}{unit} | {r64:.2f}{unit} |")
    total = [sum(results[name][i] for name in passes) for i in (0, 1)]
    print(f"| (sum of the {len(passes)} passes) | {total[0]:.2f} exp | {total[1]:.2f} exp |")


def threads(shapes: list[tuple[int, int]], chunks: list[int], reps: int) -> None:
    """kl_divergence_and_grad on 1 and 2 threads at each forced chunk size, interleaved."""
    saved = (_chunks.MAX_CHUNK_ELEMENTS, _chunks.MIN_CHUNK_ELEMENTS, _chunks.PARALLEL_MIN_ELEMENTS)
    rng = np.random.default_rng(0)
    print("| B × N | dtype | chunk (elements) | chunks | 1 thread | 2 threads | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    try:
        _chunks.PARALLEL_MIN_ELEMENTS = 0
        for dtype in (np.float32, np.float64):
            for rows, n in shapes:
                z = (rng.standard_normal((rows, n)) * 2).astype(dtype)
                v = (rng.standard_normal((rows, n)) * 3).astype(dtype)
                for power in chunks:
                    _chunks.MAX_CHUNK_ELEMENTS = _chunks.MIN_CHUNK_ELEMENTS = 1 << power
                    chunk_rows = _chunks._chunk_rows(rows, n, 2, 2)
                    times: dict[int, list[float]] = {1: [], 2: []}
                    for rep in range(reps + 2):
                        for k in (1, 2) if rep % 2 else (2, 1):
                            with kdcore.num_threads(k):
                                started = time.perf_counter()
                                kdcore.kl_divergence_and_grad(z, v, 4.0)
                                if rep >= 2:  # two warm-up rounds
                                    times[k].append(time.perf_counter() - started)
                    one, two = statistics.median(times[1]), statistics.median(times[2])
                    print(
                        f"| {rows} × {n} | {np.dtype(dtype).name} | 2^{power} ({chunk_rows * n}) "
                        f"| {-(-rows // chunk_rows)} | {one * 1e3:.2f} ms | {two * 1e3:.2f} ms | {one / two:.2f} |",
                        flush=True,
                    )
    finally:
        _chunks.MAX_CHUNK_ELEMENTS, _chunks.MIN_CHUNK_ELEMENTS, _chunks.PARALLEL_MIN_ELEMENTS = saved


def parse_shapes(text: str) -> list[tuple[int, int]]:
    return [(int(b), int(n)) for b, n in (item.lower().split("x") for item in text.split(","))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="64x1000", help="the chunk of the pass profile")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--threads", default=None, help="comma-separated BxN: the threads table instead")
    parser.add_argument("--chunks", default="14,16,17,18,19", help="chunk sizes, powers of two")
    args = parser.parse_args(argv)
    if args.threads:
        threads(parse_shapes(args.threads), [int(p) for p in args.chunks.split(",")], max(3, args.reps // 20))
    else:
        profile(parse_shapes(args.shape)[0], args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
