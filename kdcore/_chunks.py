"""Row chunks and threads: how kdcore spreads a large batch over the CPUs, and how a user controls it.

Every loss in kdcore treats samples (rows) independently, so a large batch can be cut into chunks of rows:

* **memory stays bounded** — a kernel's temporaries are the size of its chunk, not of the input; each
  kernel says how many chunk-sized temporaries it holds (``scratch``), and the chunk size is chosen so that
  all workers' temporaries together stay below half an input's worth. Outputs are allocated once, at full size,
  and every chunk writes its own rows into them (nothing is concatenated, so no output exists twice);
* **several cores work** — NumPy releases the GIL inside its ufunc loops, so threads run chunks in parallel.

Threads are explicit and never outlive a call. ``set_num_threads(n)`` sets the number for the process,
``num_threads(n)`` for a ``with`` block (in the current thread or task only: it is a context variable), and
``n = 1`` runs everything sequentially in the calling thread — what a user who parallelises outside kdcore
(data-loader workers, ``multiprocessing``, a thread pool of their own) should ask for. The default is
``min(4, CPUs this process may run on)`` (``os.sched_getaffinity``): each chunk is a few dozen NumPy calls
whose Python glue holds the GIL, so beyond a few threads they queue for it, and a process pinned to fewer
CPUs (``taskset``, a container's CPU set) gets no more threads than it has CPUs.

Worker threads are started for one call and joined before it returns: no pool persists, so nothing can be
inherited half-alive by an ``os.fork()`` child (a persistent ``ThreadPoolExecutor`` made a child's first
large call hang forever, since its worker threads do not exist after the fork). Starting a thread costs
~0.1 ms, and threads hand the GIL to each other between NumPy calls, which is why inputs below
``PARALLEL_MIN_ELEMENTS`` run in the calling thread.

A row's numbers do not depend on the chunking or the thread count: each row's arithmetic is the same.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

import numpy as np

__all__ = ["get_num_threads", "num_threads", "set_num_threads"]

# A chunk never exceeds MAX_CHUNK_ELEMENTS and is never cut below MIN_CHUNK_ELEMENTS (each chunk costs a few
# dozen NumPy calls of fixed overhead, which below 2^14 elements outweighs the memory it saves). On one
# thread the fast kernel's time hardly depends on the chunk size between 2^14 and 2^20 elements (its
# per-row certificate runs once per call, not per chunk); on several threads every NumPy call is a point
# where the threads hand the GIL to each other, so the chunks are made as large as the memory bound allows,
# up to 2^18 elements. Below PARALLEL_MIN_ELEMENTS the call stays in the calling thread: in the quiet run of
# docs/performance.md, 256 × 1000 (2^18 elements) took longer on two threads than on one, in both dtypes.
MAX_CHUNK_ELEMENTS = 1 << 18
MIN_CHUNK_ELEMENTS = 1 << 14
PARALLEL_MIN_ELEMENTS = 1 << 19
MAX_DEFAULT_THREADS = 4

_process_threads: int | None = None  # set_num_threads; None: the default
_context_threads: ContextVar[int | None] = ContextVar("kdcore_num_threads", default=None)


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_threads(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"the number of threads must be an integer >= 1, got {n!r}")
    return int(n)


def get_num_threads() -> int:
    """The number of threads kdcore's losses use for a large batch, here and now.

    Returns
    -------
    int
        The innermost :func:`num_threads` block's value, else :func:`set_num_threads`'s, else the default
        ``min(4, len(os.sched_getaffinity(0)))``.

    Examples
    --------
    >>> import kdcore
    >>> with kdcore.num_threads(1):
    ...     kdcore.get_num_threads()
    1
    """
    n = _context_threads.get()
    if n is None:
        n = _process_threads
    return n if n is not None else min(MAX_DEFAULT_THREADS, _available_cpus())


def set_num_threads(n: int | None) -> None:
    """Set the number of threads kdcore uses for large batches, for the whole process.

    Parameters
    ----------
    n : int or None
        ``1`` computes everything sequentially in the calling thread (use it when you parallelise outside
        kdcore, e.g. in data-loader worker processes); ``None`` restores the default,
        ``min(4, CPUs in os.sched_getaffinity(0))``.

    Notes
    -----
    Threads are started per call and joined before it returns; none survive it, so ``os.fork()`` (and
    ``multiprocessing``'s fork start method) is safe at any time. Results do not depend on ``n``.

    Examples
    --------
    >>> import kdcore
    >>> kdcore.set_num_threads(1)
    >>> kdcore.get_num_threads()
    1
    >>> kdcore.set_num_threads(None)  # back to the default
    """
    global _process_threads
    _process_threads = None if n is None else _check_threads(n)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Use ``n`` threads inside a ``with`` block (this thread or asyncio task only), then restore.

    Parameters
    ----------
    n : int
        At least 1; ``1`` is sequential.

    Examples
    --------
    >>> import numpy as np
    >>> import kdcore
    >>> z, v = np.zeros((4, 3)), np.ones((4, 3))
    >>> with kdcore.num_threads(1):
    ...     float(kdcore.kl_divergence(z, v))
    0.0
    """
    token = _context_threads.set(_check_threads(n))
    try:
        yield
    finally:
        _context_threads.reset(token)


def _chunk_rows(n_rows: int, n_classes: int, workers: int, scratch: int, max_chunk: int | None = None) -> int:
    """Rows per chunk: all workers' ``scratch`` temporaries together at most half an input's worth (the
    outputs, a gradient as large as an input, come on top: the peak stays within 2 inputs). ``max_chunk``
    defaults to ``MAX_CHUNK_ELEMENTS``, read at each call (so that a tuning script can set it)."""
    if max_chunk is None:
        max_chunk = MAX_CHUNK_ELEMENTS
    total = n_rows * max(n_classes, 1)
    elements = total // max(1, 2 * workers * scratch)
    elements = min(max_chunk, max(MIN_CHUNK_ELEMENTS, elements))
    return max(1, min(n_rows, elements // max(n_classes, 1)))


def run_chunks(
    kernel: Callable[[slice], None],
    n_rows: int,
    n_classes: int,
    scratch: int = 2,
    workers: int | None = None,
    max_chunk: int | None = None,
) -> None:
    """Call ``kernel(rows)`` for consecutive row slices covering ``range(n_rows)``, on up to ``workers`` threads.

    The kernel reads its inputs and writes its outputs at ``rows`` itself (it holds them by closure), so
    outputs are written in place and never gathered. ``scratch``: how many chunk-sized temporaries the
    kernel holds at its peak, which sets the chunk size (see the module docstring).
    """
    if n_rows == 0:
        return
    if n_rows * n_classes < PARALLEL_MIN_ELEMENTS:
        workers = 1
    elif workers is None:
        workers = get_num_threads()
    rows = _chunk_rows(n_rows, n_classes, workers, scratch, max_chunk)
    starts = range(0, n_rows, rows)
    workers = min(workers, len(starts))
    if workers == 1:
        for start in starts:
            kernel(slice(start, min(start + rows, n_rows)))
        return
    # A shared cursor hands out chunks in order; the calling thread works too. The lock is held only to
    # take the next index.
    lock = threading.Lock()
    cursor = iter(starts)
    errors: list[BaseException] = []

    def work() -> None:
        while not errors:
            with lock:
                start = next(cursor, None)
            if start is None:
                return
            try:
                kernel(slice(start, min(start + rows, n_rows)))
            except BaseException as error:  # re-raised in the calling thread below
                errors.append(error)

    threads = [threading.Thread(target=work, name=f"kdcore-{i}", daemon=True) for i in range(workers - 1)]
    for thread in threads:
        thread.start()
    try:
        work()
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


def map_rows(
    function: Callable[..., tuple[np.ndarray, ...]], *arrays: np.ndarray, scratch: int = 8
) -> tuple[np.ndarray, ...]:
    """``function(*arrays)`` computed chunk by chunk over the leading (sample) axes.

    ``arrays`` share their leading shape (each has its own last axis: ``(..., N)`` for logits, ``(..., 1)``
    for labels); ``function`` takes 2-D ``(rows, last)`` chunks and returns a tuple of arrays whose first axis
    is the row axis. The first chunk's results fix the outputs' trailing shapes and dtypes; the outputs are
    allocated once and every chunk's results are copied into their rows. ``scratch`` is the number of
    chunk-sized temporaries ``function`` makes (the careful algorithm of ``_match`` makes about 8).
    """
    leading, n_classes = arrays[0].shape[:-1], arrays[0].shape[-1]
    flat = [array.reshape(-1, array.shape[-1]) for array in arrays]
    n_rows = flat[0].shape[0]
    if n_rows == 0:
        results = function(*flat)
        return tuple(result.reshape(leading + result.shape[1:]) for result in results)
    outputs: list[np.ndarray] = []
    first_done = threading.Event()
    first_lock = threading.Lock()

    def kernel(rows: slice) -> None:
        results = function(*(a[rows] for a in flat))
        if not first_done.is_set():
            with first_lock:
                if not first_done.is_set():
                    outputs.extend(np.empty((n_rows, *r.shape[1:]), dtype=r.dtype) for r in results)
                    first_done.set()
        for output, result in zip(outputs, results, strict=True):
            output[rows] = result

    run_chunks(kernel, n_rows, n_classes, scratch=scratch)
    return tuple(output.reshape(leading + output.shape[1:]) for output in outputs)


def split_rows(arrays: Sequence[np.ndarray]) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """The leading shape of ``arrays[0]`` and every array as 2-D ``(rows, last)`` (views where possible)."""
    leading = arrays[0].shape[:-1]
    return leading, [array.reshape(-1, array.shape[-1]) for array in arrays]
