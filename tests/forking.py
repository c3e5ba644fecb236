"""Run a computation in an ``os.fork()`` child and get its result back, failing (not hanging) if it hangs.

Used by the fork tests of the thread chunking (tests/test_chunks.py) and of the mixture family's fast path
(tests/test_fast_mixture.py): a worker pool that survived a fork used to make the child's call hang forever.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable

import pytest


def value_in_forked_child(compute: Callable[[], float], timeout: float = 60.0) -> float:
    """Fork; in the child, ``compute()`` and send the float back; in the parent, wait at most ``timeout``
    seconds for it (then kill the child and fail the test), reap the child, return the value."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, report, and leave without running the parent's cleanup
        try:
            os.close(read_end)
            os.write(write_end, repr(float(compute())).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        # A hang must fail the test, not the suite.
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the forked child did not finish within {timeout:g} s")
        reported = os.read(read_end, 100).decode()
    finally:
        os.close(read_end)
        deadline = time.monotonic() + 10
        while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
    return float(reported)
