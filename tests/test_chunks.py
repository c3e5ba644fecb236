"""Row chunks and threads (kdcore/_chunks.py): explicit thread counts, no state that survives a fork."""

import os
import threading

import numpy as np
import pytest
from forking import value_in_forked_child

import kdcore
from kdcore import _chunks


@pytest.fixture
def started_threads(monkeypatch):
    """A list that receives the name of every thread kdcore starts while the test runs."""
    names = []

    class Counted(threading.Thread):
        def start(self):
            names.append(self.name)
            super().start()

    monkeypatch.setattr(_chunks.threading, "Thread", Counted)
    return names


class TestNumThreads:
    def test_default_respects_cpu_affinity(self):
        expected = min(_chunks.MAX_DEFAULT_THREADS, len(os.sched_getaffinity(0)))
        assert kdcore.get_num_threads() == expected

    def test_set_and_restore(self):
        try:
            kdcore.set_num_threads(3)
            assert kdcore.get_num_threads() == 3
        finally:
            kdcore.set_num_threads(None)
        assert kdcore.get_num_threads() == min(_chunks.MAX_DEFAULT_THREADS, len(os.sched_getaffinity(0)))

    def test_context_manager_nests_and_restores(self):
        before = kdcore.get_num_threads()
        with kdcore.num_threads(1):
            assert kdcore.get_num_threads() == 1
            with kdcore.num_threads(2):
                assert kdcore.get_num_threads() == 2
            assert kdcore.get_num_threads() == 1
        assert kdcore.get_num_threads() == before

    def test_context_is_per_thread(self):
        seen = []
        with kdcore.num_threads(1):
            other = threading.Thread(target=lambda: seen.append(kdcore.get_num_threads()))
            other.start()
            other.join()
        assert seen == [min(_chunks.MAX_DEFAULT_THREADS, len(os.sched_getaffinity(0)))]

    @pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
    def test_bad_values_are_rejected(self, bad):
        with pytest.raises(ValueError, match="number of threads"):
            kdcore.set_num_threads(bad)
        with pytest.raises(ValueError, match="number of threads"), kdcore.num_threads(bad):
            pass

    def test_results_do_not_depend_on_threads(self, rng, monkeypatch, started_threads):
        monkeypatch.setattr(_chunks, "PARALLEL_MIN_ELEMENTS", 1)  # threads and many chunks at a test's size
        monkeypatch.setattr(_chunks, "MAX_CHUNK_ELEMENTS", _chunks.MIN_CHUNK_ELEMENTS)
        z, v = rng.normal(size=(200, 700)) * 3, rng.normal(size=(200, 700)) * 3
        results = {}
        for n in (1, 2, 3):
            with kdcore.num_threads(n):
                results[n] = (
                    kdcore.kl_divergence_grad(z, v, 2.0, "none"),
                    kdcore.kl_divergence(z, v, 2.0, "none"),
                )
        assert started_threads  # the threaded runs did use threads
        for n in (2, 3):
            np.testing.assert_array_equal(results[n][0], results[1][0])
            np.testing.assert_array_equal(results[n][1], results[1][1])

    def test_no_thread_outlives_a_call(self, rng, started_threads):
        z, v = rng.normal(size=(1024, 1000)), rng.normal(size=(1024, 1000))
        with kdcore.num_threads(2):
            kdcore.kl_divergence_grad(z, v, 2.0)
        assert started_threads  # 2^20 elements: above PARALLEL_MIN_ELEMENTS
        assert not [t for t in threading.enumerate() if t.name.startswith("kdcore")]

    def test_small_batches_stay_in_the_calling_thread(self, rng, started_threads):
        rows = _chunks.PARALLEL_MIN_ELEMENTS // 1000 - 1
        z, v = rng.normal(size=(rows, 1000)), rng.normal(size=(rows, 1000))
        with kdcore.num_threads(2):
            kdcore.kl_divergence_grad(z, v, 2.0)
        assert not started_threads


class TestRunChunks:
    def test_every_row_exactly_once(self):
        for n_rows, n_classes, workers in [(1, 5, 2), (1000, 3, 1), (1000, 300, 2), (7, 100000, 3)]:
            hits = np.zeros(n_rows, dtype=int)
            lock = threading.Lock()

            def kernel(rows, hits=hits, lock=lock):
                with lock:
                    hits[rows] += 1

            _chunks.run_chunks(kernel, n_rows, n_classes, scratch=2, workers=workers)
            assert (hits == 1).all()

    def test_a_worker_error_reaches_the_caller(self):
        def kernel(rows):
            if rows.start > 0:
                raise ArithmeticError("boom")

        with pytest.raises(ArithmeticError, match="boom"):
            _chunks.run_chunks(kernel, 4000, 100, scratch=2, workers=2)

    def test_chunks_keep_scratch_below_one_input(self):
        for n_rows, n_classes in [(1024, 1000), (64, 32000), (8, 128000), (256, 10)]:
            for workers in (1, 2, 4):
                rows = _chunks._chunk_rows(n_rows, n_classes, workers, scratch=2)
                # workers × 2 chunk temporaries ≤ one input, unless a chunk is one row or the minimum size
                assert (
                    workers * 2 * rows * n_classes <= n_rows * n_classes
                    or rows == 1
                    or rows * n_classes <= 2 * _chunks.MIN_CHUNK_ELEMENTS
                )

    def test_the_chunk_limit_is_read_at_each_call(self, monkeypatch):
        # benchmarks/profile_fast.py and bench_chunks.py tune the chunk size by setting the module constants
        assert _chunks._chunk_rows(4096, 1000, 1, 2) * 1000 <= _chunks.MAX_CHUNK_ELEMENTS
        monkeypatch.setattr(_chunks, "MAX_CHUNK_ELEMENTS", 1 << 15)
        assert _chunks._chunk_rows(4096, 1000, 1, 2) == 32
        seen = []
        _chunks.run_chunks(seen.append, 4096, 1000, scratch=2, workers=1)
        assert {rows.stop - rows.start for rows in seen} == {32}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
class TestFork:
    def test_large_call_in_a_forked_child_finishes(self, rng, started_threads):
        """After a large (threaded) call, the same call in an os.fork() child must finish (it used to hang)."""
        z, v = rng.normal(size=(1024, 1000)), rng.normal(size=(1024, 1000))
        with kdcore.num_threads(2):
            expected = float(kdcore.kl_divergence(z, v, 2.0))
            assert started_threads  # the parent's call was threaded
            assert value_in_forked_child(lambda: kdcore.kl_divergence(z, v, 2.0)) == expected


def test_module_keeps_no_pool():
    # Nothing persistent: the module holds no executor or thread objects between calls.
    assert not [name for name, value in vars(_chunks).items() if isinstance(value, threading.Thread)]
    assert not [name for name in vars(_chunks) if "pool" in name.lower()]
