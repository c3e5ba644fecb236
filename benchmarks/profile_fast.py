"""Where the fast soft-loss kernel's time goes: each of its array passes timed alone on one chunk.

    .venv/bin/python benchmarks/profile_fast.py                     # 64 × 1000, float32 and float64

Each step of ``kdcore._fast._fast_chunk`` (value and gradient) is repeated on its own, on the same data, and
its median time is printed next to the time of one ``np.exp`` over the chunk (the unit of the exp floor).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from kdcore import _certificate, _fast


def timed(function, reps: int) -> float:
    function()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def kernel_steps(z: np.ndarray, v: np.ndarray, n: int) -> tuple[dict, np.ndarray]:
    """Each step of the kernel as a zero-argument function on this chunk (and the output array)."""
    dtype = z.dtype.type
    rows = z.shape[0]
    a, b, out = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    np.subtract(v, v.max(-1, keepdims=True), out=a)
    a /= dtype(4.0)
    np.exp(a, out=b)
    s = _fast._sum(b)
    d = (z - v) / dtype(4.0)
    f = d - (_fast._dot(b, d) / s).astype(dtype)
    e1 = np.expm1(f)
    col = (rows, 1)
    stats = [np.full(col, 0.5) for _ in range(10)]
    steps = {
        "max v (reduction)": lambda: np.max(v, axis=-1, keepdims=True),
        "v − max v": lambda: np.subtract(v, stats[0].astype(dtype), out=a),
        "÷ T": lambda: np.divide(a, dtype(4.0), out=a),
        "exp (teacher)": lambda: np.exp(d, out=out),
        "Σ e (float64 sum)": lambda: _fast._sum(b),
        "z − v": lambda: np.subtract(z, v, out=a),
        "÷ T (d)": lambda: np.divide(a, dtype(4.0), out=a),
        "c = e·d (dot)": lambda: _fast._dot(b, d),
        "f = d − c": lambda: np.subtract(d, stats[0].astype(dtype), out=a),
        "max f, min f": lambda: (np.max(f, axis=-1), np.min(f, axis=-1)),
        "e ⊙ f": lambda: np.multiply(b, f, out=out),
        "r = Σ e f (float64 sum)": lambda: _fast._sum(out),
        "Σ e f² (dot)": lambda: _fast._dot(out, f),
        "expm1 f": lambda: np.expm1(f, out=a),
        "Σ e f expm1 f (dot)": lambda: _fast._dot(out, e1),
        "e ⊙ expm1 f": lambda: np.multiply(b, e1, out=out),
        "σ = Σ (float64 sum)": lambda: _fast._sum(out),
        "expm1 f − σ": lambda: np.subtract(e1, stats[1].astype(dtype), out=a),
        "e ⊙ (…)": lambda: np.multiply(b, a, out=out),
        "× scale/(S(1+σ))": lambda: np.multiply(out, stats[2].astype(dtype), out=out),
        "max g, min g": lambda: (np.max(out, axis=-1), np.min(out, axis=-1)),
        "certificate (per-row numbers)": lambda: _certificate.error_bounds(
            np.dtype(dtype), n, *stats[:9], stats[9], 1.0
        ),
        "the whole kernel": lambda: _fast._fast_chunk(z, v, 4.0, False, out, 0.25),
    }
    return steps, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="64x1000")
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args(argv)
    rows, n = (int(x) for x in args.shape.split("x"))
    rng = np.random.default_rng(0)
    print(f"| step | {rows} × {n} float32 | float64 |")
    print("|---|---:|---:|")
    results = {}
    for dtype in (np.float32, np.float64):
        z = (rng.standard_normal((rows, n)) * 2).astype(dtype)
        v = (rng.standard_normal((rows, n)) * 3).astype(dtype)
        steps, out = kernel_steps(z, v, n)
        floor = timed(lambda z=z, out=out: np.exp(z, out=out), args.reps)
        for name, step in steps.items():
            results.setdefault(name, []).append(timed(step, args.reps) / floor)
        results.setdefault("(one np.exp over the chunk)", []).append(floor * 1e6)
    for name, (r32, r64) in results.items():
        unit = " µs" if name.startswith("(") else " exp"
        print(f"| {name} | {r32:.2f}{unit} | {r64:.2f}{unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
