"""What a benchmark number depends on besides the code: CPU, cores, library versions, BLAS, load.

Both benchmark scripts store :func:`describe` with their results, and print :func:`summary` above their
tables, so a number is never separated from the machine it was measured on.
"""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

# Environment variables that change which BLAS kernel runs or how many threads it uses.
BLAS_VARIABLES = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def blas_info() -> list[dict]:
    """threadpoolctl's view of the loaded BLAS libraries (which kernel, how many threads), if installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl is not installed"}]
    return [
        {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "prefix")}
        for info in threadpool_info()
    ]


def kdcore_git() -> str | None:
    """The commit the benchmarked kdcore is at, with ``+dirty`` when kdcore/ has uncommitted changes."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "kdcore"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def describe() -> dict:
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "environment": {name: os.environ.get(name) for name in BLAS_VARIABLES},
        "load_average": os.getloadavg(),
    }
    info["kdcore_git"] = kdcore_git()
    # Versions from the installed metadata: importing JAX only to print its version costs seconds.
    for name in ("torch", "jax"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    return info


def summary(info: dict) -> str:
    blas = ", ".join(
        f"{b.get('internal_api')} {b.get('version')} kernel {b.get('architecture')} ({b.get('num_threads')} threads)"
        for b in info["blas"]
        if "internal_api" in b
    )
    pinned = {k: v for k, v in info["environment"].items() if v is not None}
    load = ", ".join(f"{x:.1f}" for x in info["load_average"])
    return (
        f"{info['cpu']}, {info['cores']} cores; kdcore at {info.get('kdcore_git') or '?'}; "
        f"Python {info['python']}, NumPy {info['numpy']}, "
        f"PyTorch {info.get('torch') or 'not installed'}"
        + (f" ({info['torch_threads']} threads)" if info.get("torch_threads") else "")
        + f", JAX {info.get('jax') or 'not installed'}; BLAS: {blas or 'unknown'}; "
        f"BLAS variables: {pinned or 'none set'}; load average {load}"
    )


# --- Other processes' CPU use: this machine is shared, and a benchmark should know when it was not alone.


def _jiffies() -> tuple[int, int, int]:
    """(busy jiffies of the whole machine, total jiffies, this process's own jiffies), from /proc."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user … steal (guest time is already inside user)
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return total - idle, total, int(own[11]) + int(own[12])  # utime + stime (all threads)


class OtherLoad:
    """Average number of cores busy with *other* processes between :meth:`start` and :meth:`stop`.

    Linux only (``/proc``); elsewhere it reports None. This process's own threads (BLAS, PyTorch, JAX) are
    subtracted, so a benchmark using both cores does not count as load.
    """

    def __init__(self) -> None:
        self.available = Path("/proc/stat").exists()
        self._start = None

    def start(self) -> None:
        self._start = _jiffies() if self.available else None

    def stop(self) -> float | None:
        if self._start is None:
            return None
        busy0, total0, own0 = self._start
        busy1, total1, own1 = _jiffies()
        if total1 == total0:
            return 0.0
        cores = os.cpu_count() or 1
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (total1 - total0) * cores)


def wait_until_quiet(max_cores: float, timeout: float, interval: float = 2.0) -> float | None:
    """Wait (up to ``timeout`` seconds) until other processes use at most ``max_cores`` cores.

    Returns the last measured load of the others (None where it cannot be measured).
    """
    monitor = OtherLoad()
    if not monitor.available or timeout <= 0:  # timeout 0: do not wait at all (smoke runs)
        return None
    deadline = time.monotonic() + timeout
    while True:
        monitor.start()
        time.sleep(interval)
        load = monitor.stop()
        if load is None or load <= max_cores or time.monotonic() >= deadline:
            return load


class TorchThreads:
    """A block run with PyTorch's intra-op thread count set to ``threads`` (None: leave it), restored after
    (set outside the timed call; shared by bench_losses.py and bench_family.py)."""

    def __init__(self, torch, threads: int | None) -> None:
        self.torch, self.threads, self.saved = torch, threads, None

    def __enter__(self):
        if self.threads is not None:
            self.saved = self.torch.get_num_threads()
            self.torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        if self.saved is not None:
            self.torch.set_num_threads(self.saved)


def tracemalloc_peak(run: Callable) -> int:
    """Peak bytes allocated through NumPy (seen by tracemalloc) during one call of ``run``, outputs included."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        out = run()
        _, peak = tracemalloc.get_traced_memory()
        del out
    finally:
        tracemalloc.stop()
    return peak - base
