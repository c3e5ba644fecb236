"""The fast kernel's certificate (kdcore/_certificate.py): sound just inside it, enforced just outside it.

A row's certificate *margin* is its error bound over the tolerance (≤ 1 passes). Rows are built at a chosen
margin by scaling the student–teacher difference (``boundary_pair``): the margin falls as the difference
grows, so bisection finds the boundary. The checks: the fast kernel's own results on certified rows are
within the contract of the 50-digit oracle; uncertified rows are recomputed (the public result meets the
contract either way); the fuzzing draws rows around the boundary; and NumPy's exp/expm1/log1p really are
as accurate as the bound assumes.
"""

import mpmath
import numpy as np
import pytest
from accuracy_cases import boundary_pair, fast_margin, relative_error
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import FLOAT32_VS_FLOAT64_RTOL, ORACLE_RTOL

import kdcore
from kdcore import _certificate, _fast

F64 = np.dtype(np.float64)


def fast_results(z, v, T):
    """The fast kernel's own KL, soft CE and p − q per row (before any fallback), and whether the KL and
    p − q are certified (the soft cross-entropy, a larger value, is certified whenever the KL is)."""
    grad = np.empty_like(z)
    rows = _fast._fast_chunk(z, v, T, False, grad, 1.0)
    with_entropy = _fast._fast_chunk(z, v, T, True, None, 1.0)
    assert with_entropy.certified[rows.certified].all()
    return rows.kl[:, 0], (with_entropy.kl + with_entropy.entropy)[:, 0], grad, rows.certified


def oracle_results(z, v, T):
    import oracle

    z, v = z.astype(np.float64), v.astype(np.float64)
    return (
        oracle.kl_divergence(z, v, T),
        oracle.soft_cross_entropy(z, v, T),
        oracle.kl_divergence_grad(z, v, T, "student") * T,  # p − q
    )


BOUNDARY = [
    # (classes, T, logit scale, offset between student and teacher logits)
    (10, 1.0, 3.0, 0.0),
    (10, 4.0, 3.0, 2.5),
    (100, 0.5, 2.0, 0.0),
    (1000, 2.0, 4.0, -7.0),
    (7, 1e3, 3.0, 0.0),
    (50, 1.0, 3.0, 300.0),  # a large offset: the d-rounding term decides
]


class TestBoundary:
    @pytest.mark.parametrize("n, T, scale, offset", BOUNDARY)
    def test_just_inside_is_certified_and_accurate(self, n, T, scale, offset):
        z, v = boundary_pair(np.random.default_rng(n), n, T, scale, offset, margin=0.9)
        kl, soft_ce, diff, certified = fast_results(z, v, T)
        assert certified.all()
        expected = oracle_results(z, v, T)
        for ours, theirs in zip((kl, soft_ce, diff), expected, strict=True):
            assert relative_error(ours, theirs) <= ORACLE_RTOL[F64]

    @pytest.mark.parametrize("n, T, scale, offset", BOUNDARY)
    def test_just_outside_is_recomputed_and_accurate(self, n, T, scale, offset):
        z, v = boundary_pair(np.random.default_rng(n), n, T, scale, offset, margin=1.1)
        _, _, _, certified = fast_results(z, v, T)
        assert not certified.any()
        flags = np.ones(z.shape[0], dtype=bool)
        value, grad = _fast.soft_rows(z, v, T, value="kl", grad_scale=1.0, certified_out=flags)
        assert not flags.any()  # the public path took the careful algorithm
        kl, _, diff = oracle_results(z, v, T)
        assert relative_error(value, kl) <= ORACLE_RTOL[F64]
        assert relative_error(grad, diff) <= ORACLE_RTOL[F64]

    def test_margin_falls_as_the_rows_differ_more(self, rng):
        v = rng.normal(size=(1, 30)) * 3
        noise = rng.normal(size=(1, 30))
        margins = [fast_margin(v + eta * noise, v, 1.0)[0] for eta in (1e-6, 1e-4, 1e-2, 1.0)]
        assert margins == sorted(margins, reverse=True)
        assert margins[0] > 1 > margins[-1]

    def test_float32_just_inside_agrees_with_float64(self):
        rng = np.random.default_rng(32)
        z, v = boundary_pair(rng, 200, 2.0, 3.0, 0.0, margin=0.9, dtype=np.float32)
        kl, soft_ce, diff, certified = fast_results(z, v, 2.0)
        assert certified.all() and kl.dtype == np.float64 and diff.dtype == np.float32
        expected = oracle_results(z, v, 2.0)
        for ours, theirs in zip((kl, soft_ce, diff), expected, strict=True):
            assert relative_error(ours, theirs) <= FLOAT32_VS_FLOAT64_RTOL


class TestRefusals:
    """Rows the fast formula gets wrong are exactly the ones the certificate refuses."""

    @pytest.mark.parametrize(
        "make",
        [
            lambda rng: (lambda v: (v + 1e-7 * rng.normal(size=v.shape), v))(rng.normal(size=(2, 20)) * 3),
            # z − v ≈ 1e8 rounds away ~1e-8 of each difference that matters
            lambda rng: (lambda w: (w + 1e8, w + 1e-3 * rng.normal(size=w.shape)))(rng.normal(size=(2, 20))),
        ],
        ids=["near-equal", "student offset 1e8"],
    )
    def test_fast_value_is_wrong_and_refused(self, rng, make):
        z, v = make(rng)
        kl, _, _, certified = fast_results(z, v, 1.0)
        expected, _, _ = oracle_results(z, v, 1.0)
        assert relative_error(kl, expected) > ORACLE_RTOL[F64]  # the plain formula fails here …
        assert not certified.any()  # … and the certificate knows
        assert relative_error(kdcore.kl_divergence(z, v, 1.0, "none"), expected) <= ORACLE_RTOL[F64]

    @pytest.mark.parametrize(
        "z, v, T",
        [
            ([0.0, -np.inf, 1.0], [0.0, 2.0, 1.0], 1.0),  # student masks a class the teacher keeps
            ([0.0, 1.0, 2.0], [0.0, -np.inf, 1.0], 1.0),  # teacher-only mask
            ([0.0, np.nan, 1.0], [0.0, 1.0, 1.0], 1.0),
            ([1e300, -1e300, 0.0], [0.0, 1.0, 2.0], 1.0),  # overflow
            ([3.0, 0.0, 1.0], [0.0, 1.0, 2.0], 1e-3),  # expm1 beyond the float range
            ([3.0, 0.0, 1.0], [0.0, 1.0, 2.0], 1e9),  # KL ~ 1e-19: near-equal in effect
        ],
    )
    def test_special_rows_are_refused_without_warnings(self, z, v, T):
        _, _, _, certified = fast_results(np.array([z]), np.array([v]), T)
        assert not certified.any()

    def test_a_fast_gradient_of_exact_zeros_is_never_certified(self):
        # Regression: max |g| was formed as max(max g, −min g), which is −0.0 for an all-zero gradient; the
        # gradient's margin bound/(tol·max|g|) was then −inf and the row was certified on its value alone.
        # Here (float32, an offset of 300, student − teacher ~1e-6) rounding makes f constant, so the fast
        # gradient is exactly 0 while the true one is not, and the soft cross-entropy's value certifies.
        rng = np.random.default_rng(0)
        v = rng.normal(size=(50, 5)) * 3
        z = (v + 1e-6 * rng.normal(size=v.shape) + 300).astype(np.float32)
        v = v.astype(np.float32)
        grad = np.empty_like(z)
        rows = _fast._fast_chunk(z, v, 4.0, True, grad, 1.0)
        zero = ~np.any(grad, axis=1)
        assert (zero & (rows.kl[:, 0] > 0)).any()  # the case this test is about occurs
        assert not rows.certified[zero].any()
        expected = oracle_results(z, v, 4.0)[2]
        _, public = kdcore.soft_cross_entropy_and_grad(z, v, 4.0, "none")
        assert relative_error(public * 4.0, expected) <= FLOAT32_VS_FLOAT64_RTOL


class TestFuzzAtTheBoundary:
    @settings(max_examples=25)
    @given(
        seed=st.integers(0, 2**32 - 1),
        n=st.integers(2, 60),
        T=st.sampled_from([0.25, 1.0, 4.0, 30.0]),
        offset=st.sampled_from([0.0, 1.5, -40.0, 1e3]),
        margin=st.floats(0.5, 2.0),
    )
    def test_public_results_and_certified_fast_results_meet_the_contract(self, seed, n, T, offset, margin):
        z, v = boundary_pair(np.random.default_rng(seed), n, T, 3.0, offset, margin=margin, rows=1)
        kl, soft_ce, diff, certified = fast_results(z, v, T)
        expected = oracle_results(z, v, T)
        if certified.all():
            for ours, theirs in zip((kl, soft_ce, diff), expected, strict=True):
                assert relative_error(ours, theirs) <= ORACLE_RTOL[F64]
        value, grad = kdcore.kl_divergence_and_grad(z, v, T, "none")
        assert relative_error(value, expected[0]) <= ORACLE_RTOL[F64]
        assert relative_error(grad * T, expected[2]) <= ORACLE_RTOL[F64]
        value, grad = kdcore.soft_cross_entropy_and_grad(z, v, T, "none")
        assert relative_error(value, expected[1]) <= ORACLE_RTOL[F64]


class TestAssumptions:
    """The bound assumes NumPy's exp, expm1 and log1p are within FUNCTION_ULPS ulp: check it here."""

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("name", ["exp", "expm1", "log1p"])
    def test_function_ulps(self, rng, dtype, name):
        x = np.concatenate([rng.normal(size=500) * s for s in (1e-3, 0.3, 3.0, 20.0)])
        if name == "log1p":
            x = np.abs(x)
        x = x.astype(dtype)
        ours = getattr(np, name)(x)
        with mpmath.workdps(40):
            exact = np.array([float(getattr(mpmath, name)(mpmath.mpf(float(t)))) for t in x])
        finite = np.isfinite(exact) & (np.abs(exact) < np.finfo(dtype).max)
        ulps = np.abs(ours[finite] - exact[finite]) / np.spacing(np.abs(exact[finite]).astype(dtype))
        assert ulps.max() <= _certificate.FUNCTION_ULPS

    @pytest.mark.parametrize("n", [1, 7, 8, 100, 128, 129, 1000, 8193, 128000])
    def test_summation_roundings_bound_numpy_sums(self, n):
        # Adversarial terms for recursive summation: each addition rounds; the error must stay within m·w·Σ|x|.
        rng = np.random.default_rng(n)
        for dtype in (np.float64, np.float32):
            x = (rng.random(n) * 2 - 1).astype(dtype)
            ours = np.sum(x, dtype=np.float64)
            exact = float(mpmath.fsum(mpmath.mpf(float(t)) for t in x))
            bound = _certificate.summation_roundings(n) * _certificate.ACCUMULATION_ROUNDOFF
            assert abs(ours - exact) <= bound * np.abs(x.astype(np.float64)).sum()

    @pytest.mark.parametrize("n", [1, 2, 7, 27, 28, 100, 129, 1000, 8193, 128000])
    def test_the_kernels_row_sums_stay_within_sum_roundings(self, n):
        # The sums the fast kernel's value depends on (_fast.row_sum64: einsum for float32 rows, pairwise
        # np.sum for float64, sequential down a transposed chunk) against the count the certificate uses.
        rng = np.random.default_rng(n)
        for dtype in (np.float64, np.float32):
            x = (rng.random((3, n)) * 2 - 1).astype(dtype)
            exact = np.array([float(mpmath.fsum(mpmath.mpf(float(t)) for t in row)) for row in x])
            bound = _fast.sum_roundings(np.dtype(dtype), n) * _certificate.ACCUMULATION_ROUNDOFF
            size = np.abs(x.astype(np.float64)).sum(axis=1)
            sums = [_fast.row_sum64(x, 1)[:, 0]]
            if n <= _fast.TRANSPOSED_MAX_CLASSES:  # the kernel sums down a transposed chunk only up to here
                sums.append(_fast.row_sum64(np.ascontiguousarray(x.T), 0)[0])
            for ours in sums:
                assert ours.dtype == np.float64
                assert np.all(np.abs(ours - exact) <= bound * size)
