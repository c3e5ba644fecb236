"""Time and peak memory of kdcore's loss + gradient against the row-chunk size of ``kdcore._chunks``.

A tuning aid for the core's authors (it sets private module constants): for each chunk size, the chunk is
forced to exactly that many elements (``CHUNK_ELEMENTS = MIN_CHUNK_ELEMENTS = size``), then
``kl_divergence`` and ``kl_divergence_grad`` (times T²) are timed — median of ``--reps`` calls after a
warm-up — and their peak NumPy allocation is measured with tracemalloc, in units of one input array.
``0`` in the size list means "no chunking" (the whole input in one call, on the calling thread).

Example::

    .venv/bin/python benchmarks/bench_chunks.py --shapes 1024x1000,64x32000 --dtypes float32,float64
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import machine
import numpy as np

import kdcore

T = 4.0
RESULTS = Path(__file__).resolve().parent / "results"


def loss_and_grad(z: np.ndarray, v: np.ndarray):
    return kdcore.kl_divergence(z, v, T) * T * T, kdcore.kl_divergence_grad(z, v, T) * T * T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="1024x1000,64x32000", help="comma-separated BxN")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated dtypes")
    parser.add_argument(
        "--sizes", default="0,14,15,16,17,18,19,20", help="chunk sizes as powers of two (0: no chunking)"
    )
    parser.add_argument("--reps", type=int, default=15, help="timed calls per size (default 15)")
    parser.add_argument("--output", type=Path, default=RESULTS / "bench_chunks.json", help="JSON file")
    args = parser.parse_args(argv)

    try:
        from kdcore import _chunks
    except ImportError:
        print("this kdcore has no kdcore._chunks: nothing to tune", file=sys.stderr)
        return 0
    saved = {
        name: getattr(_chunks, name)
        for name in ("CHUNK_ELEMENTS", "MAX_CHUNK_ELEMENTS", "MIN_CHUNK_ELEMENTS", "PARALLEL_MIN_ELEMENTS")
        if hasattr(_chunks, name)
    }
    info = machine.describe()
    print(f"Machine: {machine.summary(info)}\n")
    rng = np.random.default_rng(0)
    rows = []
    try:
        for dtype in args.dtypes.split(","):
            for shape_text in args.shapes.split(","):
                shape = tuple(int(n) for n in shape_text.split("x"))
                z = (rng.standard_normal(shape) * 2).astype(dtype)
                v = (rng.standard_normal(shape) * 3).astype(dtype)
                for power in (int(p) for p in args.sizes.split(",")):
                    if power == 0:  # no chunking: the parallel threshold above the input's size
                        _chunks.PARALLEL_MIN_ELEMENTS = z.size + 1
                    else:
                        _chunks.PARALLEL_MIN_ELEMENTS = saved.get("PARALLEL_MIN_ELEMENTS", 0)
                        # CHUNK_ELEMENTS before the fast kernel, MAX_CHUNK_ELEMENTS since: set both
                        _chunks.CHUNK_ELEMENTS = _chunks.MAX_CHUNK_ELEMENTS = _chunks.MIN_CHUNK_ELEMENTS = (
                            1 << power
                        )
                    for _ in range(3):
                        loss_and_grad(z, v)
                    times = []
                    for _ in range(args.reps):
                        started = time.perf_counter()
                        loss_and_grad(z, v)
                        times.append(time.perf_counter() - started)
                    tracemalloc.start()
                    loss_and_grad(z, v)
                    peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
                    row = {
                        "shape": list(shape),
                        "dtype": dtype,
                        "chunk_elements": 0 if power == 0 else 1 << power,
                        "median_seconds": statistics.median(times),
                        "peak_over_input": peak / z.nbytes,
                    }
                    rows.append(row)
                    size = "unchunked" if power == 0 else f"2^{power}"
                    print(
                        f"{shape[0]}×{shape[1]} {dtype} chunk {size}: {row['median_seconds'] * 1e3:.2f} ms, "
                        f"peak {row['peak_over_input']:.2f} inputs",
                        flush=True,
                    )
    finally:
        for name, value in saved.items():
            setattr(_chunks, name, value)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": info, "T": T, "rows": rows}, indent=1) + "\n")
    print(f"JSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
