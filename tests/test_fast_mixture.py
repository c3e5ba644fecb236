"""The mixture family's fast path (kdcore/_fast_mixture.py) and its certificate (kdcore/_mixture_certificate.py).

Every result is compared with the careful algorithm (``_mixture.mixture_rows``, itself within ~6e-14 of the
50-digit oracle in tests/test_oracle_family.py): a certified row must agree with it to the contract, whichever
side of the certificate's boundary it falls on, and the boundary is found from the bound itself.
"""

import os
import warnings

import numpy as np
import pytest
from forking import value_in_forked_child
from hypothesis import given
from hypothesis import strategies as st
from tolerances import ORACLE_RTOL

import kdcore
from kdcore._fast_mixture import (
    certificate_margins,
    mixture_fast_rows,
    reverse_kl_grad_rows,
    reverse_kl_margins,
)
from kdcore._match import match
from kdcore._mixture import mixture_rows

KINDS = [("skew_kl", 0.1), ("skew_reverse_kl", 0.1), ("jsd", 0.5), ("jsd", 0.9), ("skew_kl", 0.7)]
RTOL = ORACLE_RTOL[np.dtype(np.float64)]


def careful(kind, z, v, T, weight):
    return mixture_rows(kind, z, v, T, weight, (None, "student"))


def relative_errors(values, grad, expected_values, expected_grad):
    """Per row: the value's relative error and the gradient's normwise one."""
    value_error = np.abs(values - expected_values) / np.abs(expected_values)
    grad_error = np.max(np.abs(grad - expected_grad), axis=-1) / np.max(np.abs(expected_grad), axis=-1)
    return value_error, grad_error


def fast(kind, z, v, T, weight):
    flags = np.zeros(z.shape[0], dtype=bool)
    values, grad = mixture_fast_rows(kind, z, v, T, weight, value=True, grad_scale=1 / T, certified_out=flags)
    return values, grad, flags


def boundary(margin_of, low=1e-6, high=1.0):
    """The distance t where ``margin_of(t)`` (increasing as t → 0) crosses 1, by bisection in log t."""
    assert margin_of(low) > 1 >= margin_of(high)
    for _ in range(60):
        middle = np.sqrt(low * high)
        if margin_of(middle) > 1:
            low = middle
        else:
            high = middle
    return high


class TestAgainstTheCarefulAlgorithm:
    @pytest.mark.parametrize(("kind", "weight"), KINDS)
    @pytest.mark.parametrize("n", [3, 100, 3000])
    def test_every_certified_row_matches(self, rng, kind, weight, n):
        # Regimes mixed in one batch: ordinary rows, near-equal ones, offsets, peaked teachers.
        rows = 48
        v = rng.normal(size=(rows, n)) * rng.choice([0.5, 2, 8], size=(rows, 1))
        z = v + rng.normal(size=(rows, n)) * rng.choice([1e-7, 1e-3, 0.1, 1, 5], size=(rows, 1))
        z[::7] += 1e6  # an offset common to the whole row: the fast d = (z − v)/T loses to it
        values, grad, flags = fast(kind, z, v, 2.0, weight)
        expected_values, expected_grad = careful(kind, z, v, 2.0, weight)
        value_error, grad_error = relative_errors(values, grad, expected_values, expected_grad)
        assert flags.any()  # the fast path is exercised …
        assert not flags.all()  # … and so is the careful one
        assert np.all(value_error <= RTOL) and np.all(grad_error <= RTOL)

    @pytest.mark.parametrize(("kind", "weight"), KINDS)
    def test_float32(self, rng, kind, weight):
        v = rng.normal(size=(64, 500)) * 2
        z = v + rng.normal(size=(64, 500))
        values, grad, flags = fast(kind, z.astype(np.float32), v.astype(np.float32), 2.0, weight)
        assert values.dtype == grad.dtype == np.float32
        expected_values, expected_grad = careful(kind, z, v, 2.0, weight)
        value_error, grad_error = relative_errors(values, grad, expected_values, expected_grad)
        assert flags.mean() > 0.5
        assert np.all(value_error <= 2e-5) and np.all(grad_error <= 2e-5)


class TestTheBoundary:
    """Rows just inside the certificate are certified and accurate; rows just outside go to the careful path."""

    @pytest.mark.parametrize(("kind", "weight"), KINDS)
    def test_value_just_inside_and_just_outside(self, rng, kind, weight):
        # The value cancels as the student approaches its teacher: walk the distance t across the boundary.
        n = 200
        teacher = rng.normal(size=n) * 2
        direction = rng.normal(size=n)

        def margin_of(t):
            z = (teacher + t * direction)[None]
            return certificate_margins(kind, z, teacher[None], 2.0, weight)[0][0]

        t = boundary(margin_of)
        self.check_both_sides(kind, weight, [(teacher + f * t * direction, teacher) for f in (1.02, 0.98)], 0)

    @pytest.mark.parametrize(("kind", "weight"), KINDS)
    def test_gradient_just_inside_and_just_outside(self, rng, kind, weight):
        # The gradient loses to a large offset C between the student's and the teacher's logits (the fast
        # (z − v)/T rounds it): walk C across the boundary, the rest of the row fixed.
        n = 200
        teacher = rng.normal(size=n) * 2
        student = teacher + 0.5 * rng.normal(size=n)

        def margin_of(offset):  # decreasing in 1/offset, as boundary() expects of t
            return certificate_margins(kind, (student + 1 / offset)[None], teacher[None], 2.0, weight)[1][0]

        t = boundary(margin_of, 1e-16, 1.0)
        self.check_both_sides(kind, weight, [(student + 1 / (f * t), teacher) for f in (1.02, 0.98)], 1)

    def check_both_sides(self, kind, weight, pairs, part):
        """The first pair is just inside the value's (part 0) or the gradient's (part 1) certificate, the second
        just outside; the call that asks only for that part certifies accordingly, and both meet the contract."""
        for (z, v), inside in zip(pairs, (True, False), strict=True):
            z, v = z[None], v[None]
            assert (certificate_margins(kind, z, v, 2.0, weight)[part][0] <= 1) == inside
            flags = np.zeros(1, dtype=bool)
            value, grad = mixture_fast_rows(
                kind,
                z,
                v,
                2.0,
                weight,
                value=part == 0,
                grad_scale=1 / 2.0 if part else None,
                certified_out=flags,
            )
            assert flags[0] == (inside and not _near_equal(z, v))
            expected_value, expected_grad = careful(kind, z, v, 2.0, weight)
            if part == 0:
                assert abs(value[0] - expected_value[0]) <= RTOL * expected_value[0]
            else:
                assert np.max(np.abs(grad - expected_grad)) <= RTOL * np.max(np.abs(expected_grad))

    @given(
        seed=st.integers(0, 2**32 - 1),
        kind_weight=st.sampled_from(KINDS),
        n=st.integers(2, 300),
        log_factor=st.floats(-1.0, 1.0),
        T=st.sampled_from([0.5, 1.0, 4.0, 30.0]),
        spread=st.sampled_from([0.3, 2.0, 10.0]),
    )
    def test_fuzz_around_the_boundary(self, seed, kind_weight, n, log_factor, T, spread):
        """Rows within a factor 10 of the distance where the certificate flips: whichever path a row takes,
        it meets the contract."""
        kind, weight = kind_weight
        rng = np.random.default_rng(seed)
        teacher = rng.normal(size=n) * spread
        direction = rng.normal(size=n)

        def margin_of(t):
            z = (teacher + t * direction)[None]
            return max(certificate_margins(kind, z, teacher[None], T, weight))

        try:
            t = boundary(margin_of, 1e-8, 1e3)
        except AssertionError:  # this row never passes (or never fails) between the ends: no boundary
            t = 1.0
        z = (teacher + t * 10.0**log_factor * direction)[None]
        values, grad, _ = fast(kind, z, teacher[None], T, weight)
        expected = careful(kind, z, teacher[None], T, weight)
        value_error, grad_error = relative_errors(values, grad, *expected)
        assert value_error[0] <= RTOL and grad_error[0] <= RTOL


def _near_equal(z, v):
    from kdcore._fast import near_equal_rows

    return near_equal_rows(z, v, 2.0)[0]


class TestRows:
    @pytest.mark.parametrize(("kind", "weight"), KINDS)
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_a_row_does_not_depend_on_its_neighbours(self, rng, kind, weight, dtype):
        v = rng.normal(size=(40, 700)) * 2
        z = v + rng.normal(size=(40, 700)) * rng.choice([1e-6, 1, 3], size=(40, 1))
        z[5, 3] = np.nan  # neighbours of every kind: careful rows, NaN rows, certified rows
        z[9] += 1e8
        z, v = z.astype(dtype), v.astype(dtype)
        values, grad, _ = fast(kind, z, v, 2.0, weight)
        for row in (0, 1, 2, 17, 39):
            alone_values, alone_grad, _ = fast(kind, z[row : row + 1], v[row : row + 1], 2.0, weight)
            assert alone_values[0] == values[row]
            assert np.array_equal(alone_grad[0], grad[row])
        shuffled = rng.permutation(40)
        values_shuffled, grad_shuffled, _ = fast(kind, z[shuffled], v[shuffled], 2.0, weight)
        assert np.array_equal(values_shuffled, values[shuffled], equal_nan=True)
        assert np.array_equal(grad_shuffled, grad[shuffled], equal_nan=True)

    @pytest.mark.parametrize(("kind", "weight"), KINDS)
    def test_nan_stays_in_its_row(self, rng, kind, weight):
        v = rng.normal(size=(6, 50))
        z = v + rng.normal(size=(6, 50))
        z[2, 7] = np.nan
        v[4, 0] = np.inf
        values, grad, flags = fast(kind, z, v, 1.5, weight)
        assert np.isnan(values[2]) and np.isnan(grad[2]).all()
        assert np.isnan(values[4])
        keep = [0, 1, 3, 5]
        assert np.isfinite(values[keep]).all() and np.isfinite(grad[keep]).all()
        assert not flags[2] and not flags[4]

    @pytest.mark.parametrize(("kind", "weight"), KINDS)
    def test_no_runtime_warning_on_finite_input(self, rng, kind, weight):
        for dtype in (np.float64, np.float32):
            v = rng.normal(size=(8, 64)).astype(dtype)
            big = np.finfo(dtype).max / 8
            cases = [
                (v + rng.normal(size=v.shape).astype(dtype), v, 1.0),
                (v * big, v * -big, 1.0),  # overflow of (z − v)/T
                (v + dtype(1e-3), v, 1e-3),
                (v * 50, v, 1e-3),  # exp far beyond its range
                (v + rng.normal(size=v.shape).astype(dtype), v, 1e9),
                (np.where(rng.random(v.shape) < 0.3, -np.inf, v).astype(dtype), v, 1.0),  # masked classes
            ]
            for z, teacher, T in cases:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    values, grad = mixture_fast_rows(
                        kind, z, teacher, T, weight, value=True, grad_scale=1 / T
                    )
                assert not np.isnan(values).any() and not np.isnan(grad).any()


class TestPublicFunctions:
    @pytest.mark.parametrize(
        "name", ["skew_kl_divergence", "skew_reverse_kl_divergence", "jensen_shannon_divergence"]
    )
    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    def test_and_grad_equals_the_separate_calls(self, rng, name, reduction):
        v = rng.normal(size=(3, 20, 300))
        z = v + rng.normal(size=v.shape) * rng.choice([1e-6, 1.0], size=(3, 20, 1))
        mask = rng.random((3, 20)) < 0.8
        loss, grad = getattr(kdcore, name + "_and_grad")(z, v, 2.0, reduction=reduction, mask=mask)
        assert np.array_equal(loss, getattr(kdcore, name)(z, v, 2.0, reduction=reduction, mask=mask))
        assert np.array_equal(
            grad, getattr(kdcore, name + "_grad")(z, v, 2.0, reduction=reduction, mask=mask)
        )
        expected = getattr(kdcore, name + "_grad")(z, v, 2.0, reduction=reduction, mask=mask, wrt="student")
        assert np.array_equal(grad, expected)

    def test_reverse_kl_and_grad_equals_the_separate_calls(self, rng):
        v = rng.normal(size=(50, 300))
        z = v + rng.normal(size=v.shape) * rng.choice([1e-9, 1.0], size=(50, 1))
        loss, grad = kdcore.reverse_kl_divergence_and_grad(z, v, 3.0)
        assert loss == kdcore.reverse_kl_divergence(z, v, 3.0)
        assert np.array_equal(grad, kdcore.reverse_kl_divergence_grad(z, v, 3.0))

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    # JAX, when an earlier test imported it, warns at every fork; that warning is not what this test is about
    @pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
    def test_threads_and_fork(self, rng):
        """Results do not depend on the thread count, and a forked child's large call finishes."""
        v = rng.normal(size=(512, 2000)).astype(np.float32)
        z = v + rng.normal(size=v.shape).astype(np.float32)
        with kdcore.num_threads(1):
            expected = kdcore.jensen_shannon_divergence_and_grad(z, v, 2.0)
        with kdcore.num_threads(2):
            threaded = kdcore.jensen_shannon_divergence_and_grad(z, v, 2.0)
            assert threaded[0] == expected[0] and np.array_equal(threaded[1], expected[1])
            child = value_in_forked_child(lambda: kdcore.jensen_shannon_divergence_and_grad(z, v, 2.0)[0])
            assert child == float(expected[0])


class TestReverseKLGradient:
    def careful(self, z, v, T):
        return match(v, z, T).kl_teacher_grad()

    def test_certified_rows_match_the_careful_gradient(self, rng):
        v = rng.normal(size=(60, 400)) * rng.choice([0.5, 3], size=(60, 1))
        z = v + rng.normal(size=v.shape) * rng.choice([1e-9, 1e-4, 1, 4], size=(60, 1))
        z[::5] += 1e7
        flags = np.zeros(60, dtype=bool)
        grad = reverse_kl_grad_rows(z, v, 2.0, 0.5, flags)
        expected = self.careful(z, v, 2.0)
        error = np.max(np.abs(grad - expected), axis=-1) / np.max(np.abs(expected), axis=-1)
        assert 0.3 < flags.mean() < 1
        assert np.all(error <= RTOL)

    def test_just_inside_and_just_outside(self, rng):
        # The gradient cancels where the student's logits sit at a large offset C from the teacher's and
        # differ from them by little else: walk C across the boundary.
        v = rng.normal(size=100)
        z = v + 1e-3 * rng.normal(size=100)

        def margin_of(offset):
            return reverse_kl_margins((z + offset)[None], v[None], 1.0)[0]

        low, high = 1.0, 1e12
        assert margin_of(low) <= 1 < margin_of(high)
        for _ in range(60):
            middle = np.sqrt(low * high)
            low, high = (middle, high) if margin_of(middle) <= 1 else (low, middle)
        for offset, inside in ((0.98 * low, True), (1.02 * high, False)):
            zz, vv = (z + offset)[None], v[None]
            flags = np.zeros(1, dtype=bool)
            grad = reverse_kl_grad_rows(zz, vv, 1.0, 1.0, flags)
            assert flags[0] == inside
            expected = self.careful(zz, vv, 1.0)
            assert np.max(np.abs(grad - expected)) <= RTOL * np.max(np.abs(expected))


class TestBenchmark:
    """benchmarks/bench_family.py runs and prints its ratios; docs/performance.md's block is its JSON's."""

    @pytest.fixture
    def bench(self, monkeypatch):
        from pathlib import Path

        benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
        monkeypatch.syspath_prepend(str(benchmarks))
        import bench_family

        return bench_family

    def test_quick_run_prints_its_ratios(self, bench, tmp_path, capsys):
        out = tmp_path / "run.json"
        page = tmp_path / "performance.md"
        page.write_text(f"before\n{bench.BEGIN}stale\n{bench.END}\nafter\n")
        assert (
            bench.main(["--quick", "--losses", "jsd,reverse_kl", "--json", str(out), "--page", str(page)])
            == 0
        )
        printed = capsys.readouterr().out
        assert "fast / careful" in printed and "certified rows" in printed
        record = __import__("json").loads(out.read_text())
        assert {case["loss"] for case in record["cases"]} == {"jsd", "reverse_kl"}
        assert all(case["cpu_seconds"]["fast"] > 0 for case in record["cases"])
        assert bench.main(["--check-page", str(out), "--page", str(page)]) == 1  # the block is stale …
        assert bench.main(["--page-from", str(out), "--page", str(page)]) == 0
        assert bench.main(["--check-page", str(out), "--page", str(page)]) == 0  # … until regenerated
        text = page.read_text()
        assert text.startswith("before\n") and text.endswith("after\n") and "stale" not in text

    def test_performance_page_is_generated_from_the_committed_json(self, bench):
        results = bench.RESULTS / "bench_family.json"
        assert bench.main(["--check-page", str(results)]) == 0, "run bench_family.py --page-from " + str(
            results
        )

    def test_summary_follows_the_data(self, bench):
        record = __import__("json").loads((bench.RESULTS / "bench_family.json").read_text())
        mixtures = [c for c in record["cases"] if c["loss"] != "reverse_kl"]
        speedups = [c["cpu_seconds"]["careful"] / c["cpu_seconds"]["fast"] for c in mixtures]
        text = bench.summary(record)
        assert f"JSD: the fast path is {min(speedups):.1f}–{max(speedups):.1f}× faster" in text
        memory = [c["memory"]["fast"] for c in record["cases"]]
        assert f"{min(memory):.2f}–{max(memory):.2f}× one input" in text
        assert max(memory) <= 2.0  # the fast path's peak extra memory, as measured in the committed run
