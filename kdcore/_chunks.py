"""Run a row-wise computation over chunks of rows, on a small thread pool.

Every loss in kdcore treats samples (rows) independently, so a large batch can be cut into chunks of rows:

* **memory stays bounded** — the accurate algorithms make dozens of temporaries the size of their input;
  per chunk of at most 2^18 elements, so the peak extra memory is the output plus a few chunks' worth;
* **both cores work** — NumPy releases the GIL inside its ufuncs, so threads run chunks truly in parallel.

Small inputs are computed directly: below ``PARALLEL_MIN_ELEMENTS`` the thread hand-off costs more than it
saves. Results are identical to an unchunked computation (each row's arithmetic is the same).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Chunk size, measured (docs/performance.md): one chunk per worker up to CHUNK_ELEMENTS, never below
# MIN_CHUNK_ELEMENTS. Smaller chunks lose to the per-call overhead of the ~50 NumPy operations of the
# accurate algorithm (which runs under the GIL); larger ones to page faults on the temporaries.
CHUNK_ELEMENTS = 1 << 18
MIN_CHUNK_ELEMENTS = 1 << 15
PARALLEL_MIN_ELEMENTS = 1 << 16
_pool: ThreadPoolExecutor | None = None


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="kdcore")
    return _pool


def map_rows(function: Callable[..., tuple[np.ndarray, ...]], *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """``function(*arrays)`` computed chunk by chunk over the leading (sample) axes.

    ``arrays`` share their leading shape (each has its own last axis: ``(..., N)`` for logits, ``(..., 1)``
    for labels); ``function`` takes 2-D ``(rows, last)`` chunks and returns a tuple of arrays whose first axis
    is the row axis. The results are reassembled to the leading shape.
    """
    leading, n_classes = arrays[0].shape[:-1], arrays[0].shape[-1]
    flat = [array.reshape(-1, array.shape[-1]) for array in arrays]
    n_rows = flat[0].shape[0]
    total = n_rows * n_classes
    if total < PARALLEL_MIN_ELEMENTS or _workers() == 1 or n_rows == 1:
        results = function(*flat)
    else:
        chunk = min(CHUNK_ELEMENTS, max(MIN_CHUNK_ELEMENTS, total // _workers()))
        rows_per_chunk = max(1, chunk // max(n_classes, 1))
        starts = range(0, n_rows, rows_per_chunk)
        futures = [_get_pool().submit(function, *(a[i : i + rows_per_chunk] for a in flat)) for i in starts]
        parts = [future.result() for future in futures]
        results = tuple(np.concatenate(pieces, axis=0) for pieces in zip(*parts, strict=True))
    return tuple(result.reshape(leading + result.shape[1:]) for result in results)
