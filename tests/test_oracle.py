"""Self-test of the mpmath oracle (tests/oracle.py): it is trusted only as far as these tests reach.

Grouped by kind: correct rounding and the error measure; agreement with scipy.special on ordinary inputs;
closed forms worked out by hand; closed-form derivatives against ``mpmath.diff`` of the oracle's own value
functions (numerical differentiation at 50 digits); identities and invariances; masks and undefined rows;
the adaptive precision in regimes where fixed 50-digit arithmetic fails; input checking.
"""

import math
import time

import mpmath
import numpy as np
import oracle
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from strategies import TEMPERATURE, logit_pairs

# scipy.special works in float64: a few units in the last place per operation. Compared normwise (each
# result's largest error over its largest component), 1e-14 (~45 ulp) is what a correct oracle meets
# with margin while any real mistake (a wrong sign, a missing T) is off by far more.
SCIPY_RTOL = 1e-14
# Closed form vs mpmath.diff, both at 50 digits: diff's own error is ~1e-50; 1e-40 leaves margin while
# still proving agreement to 40 digits.
MPMATH_DIFF_RTOL = 1e-40
# (p − q)/T formed in float64 from two correctly rounded softmax vectors (no cancellation): a few ulp.
LITERAL_RTOL = 4e-16
DPS = 50

WRT = ("student", "teacher", "temperature")


def mp_row(values):
    """A row of doubles as mpf, exactly."""
    return [mpmath.mpf(float(x)) for x in values]


def mp_rel_error(actual, expected):
    """Normwise relative error of two mpf vectors (or scalars)."""
    actual = actual if isinstance(actual, list) else [actual]
    expected = expected if isinstance(expected, list) else [expected]
    scale = max(abs(e) for e in expected)
    difference = max(abs(a - e) for a, e in zip(actual, expected, strict=True))
    return difference if scale == 0 else difference / scale


def partial(function, rows, which, index):
    """∂function/∂rows[which][index] by mpmath.diff, the other arguments fixed."""

    def along(x):
        moved = [list(row) for row in rows]
        moved[which][index] = x
        return function(*moved)

    return mpmath.diff(along, rows[which][index])


def closed_form(expression, dps=60):
    """A hand-derived closed form, evaluated by mpmath at ``dps`` digits and rounded once to float64.

    ``expression`` receives mpmath's module and builds the value from mpf literals, so no float64
    rounding enters before the last step; the oracle, itself correctly rounded, must match it exactly.
    """
    with mpmath.workdps(dps):
        return oracle.to_float64(expression(mpmath))


def random_rows(rng, n_classes=4, scale=2.0):
    return rng.normal(size=n_classes) * scale, rng.normal(size=n_classes) * scale


# --------------------------------------------------------------------------------------------------
# Rounding and the error measure
# --------------------------------------------------------------------------------------------------


class TestToFloat64:
    # (mantissa, exponent, expected): the value mantissa·2^exponent, built exactly inside the test
    @pytest.mark.parametrize(
        ("mantissa", "exponent", "expected"),
        [
            (1, -1075, 0.0),  # exactly half the smallest subnormal: a tie, to even (0)
            (2**80 + 1, -1075 - 80, 5e-324),  # just above that tie
            (3, -1075, 1e-323),  # 1.5 subnormal units: a tie between 1 and 2, to even (2)
            (5, -1075, 1e-323),  # 2.5 units: a tie between 2 and 3, to even (2)
            (2**53 + 1, 0, 2.0**53),  # a tie, to even
            (2**53 + 3, 0, 2.0**53 + 4),  # a tie, to even
            (2**54 - 1, 1024 - 54, math.inf),  # above the overflow threshold 2^1024 − 2^970
            (2**53 - 1, 1024 - 53, np.finfo(np.float64).max),  # the largest double, exact
            (-(2**54 - 1), 1024 - 54, -math.inf),
            (2**1024 - 2**970, 0, math.inf),  # the threshold itself: a tie, to even (2^1024)
            (1, -1400, 0.0),
            (-1, -1400, -0.0),
        ],
    )
    def test_rounding_literals(self, mantissa, exponent, expected):
        with mpmath.workprec(2000):
            value = mpmath.ldexp(mpmath.mpf(mantissa), exponent)
            assert oracle.to_float64(value) == expected
            assert math.copysign(1, oracle.to_float64(value)) == math.copysign(1, expected)

    def test_infinities(self):
        assert oracle.to_float64(mpmath.inf) == math.inf
        assert oracle.to_float64(mpmath.ninf) == -math.inf

    def test_nan(self):
        assert math.isnan(oracle.to_float64(mpmath.nan))

    def test_agrees_with_mpmath_rounding_in_the_normal_range(self, rng):
        # mpmath's own float() rounds to nearest correctly for normal results (it misrounds only subnormals).
        with mpmath.workprec(300):
            for x in rng.normal(size=200) * 10.0 ** rng.integers(-300, 300, size=200):
                value = mpmath.mpf(x) * (1 + mpmath.mpf(rng.normal()) * mpmath.ldexp(1, -60))
                assert oracle.to_float64(value) == float(value)

    def test_subnormals_round_once(self):
        # 2^-1074·(1.5 − 2^-60): rounding first to 53 bits gives 1.5 units (a tie, to 2), but the
        # value is below the tie and rounds to 1 unit. float(mpf) gets this wrong; the oracle must not.
        with mpmath.workprec(200):
            value = mpmath.ldexp(3 * 2**59 - 1, -1074 - 60)
            assert oracle.to_float64(value) == 5e-324


class TestRelativeError:
    def test_elementwise_by_default(self):
        error = oracle.relative_error([1.0, 2e-20], [1.0, 1e-20])
        np.testing.assert_array_equal(error, [0.0, 1.0])

    def test_normwise_over_the_result_axes(self):
        actual = np.array([[1.0, 2e-20], [3.0, 4.0]])
        expected = np.array([[1.0, 1e-20], [3.0, 2.0]])
        np.testing.assert_array_equal(oracle.relative_error(actual, expected, result_ndim=1), [1e-20, 2 / 3])
        hessian_error = oracle.relative_error(actual[None], expected[None], result_ndim=2)
        np.testing.assert_array_equal(hessian_error, [2.0 / 3.0])

    def test_zero_and_special_values(self):
        inf, nan = math.inf, math.nan
        actual = [0.0, 1e-300, inf, -inf, nan, inf, 1.0, nan]
        expected = [0.0, 0.0, inf, -inf, nan, -inf, nan, 1.0]
        np.testing.assert_array_equal(
            oracle.relative_error(actual, expected), [0.0, inf, 0.0, 0.0, 0.0, inf, inf, inf]
        )

    def test_matching_infinities_are_left_out_of_the_norm(self):
        # a masked class: -inf in both; the error is that of the finite components
        error = oracle.relative_error([[-np.inf, -1.0, -2.0]], [[-np.inf, -1.0, -2.0 * (1 + 1e-15)]], 1)
        assert error[0] == pytest.approx(1e-15, rel=1e-3)

    def test_no_overflow_warning(self):
        assert oracle.relative_error(1.7e308, -1.7e308) == math.inf

    def test_shapes_must_match(self):
        with pytest.raises(ValueError, match="shape"):
            oracle.relative_error([1.0, 2.0], [1.0])


# --------------------------------------------------------------------------------------------------
# Agreement with scipy.special on ordinary inputs
# --------------------------------------------------------------------------------------------------


class TestAgainstScipy:
    @pytest.fixture
    def logits(self, rng):
        return rng.normal(size=(4, 9)) * 4.0

    def test_softmax_family(self, logits):
        # T = 1 here: scipy would see the rounded logits/T, a different input. T is tested by an exact identity.
        assert np.all(
            oracle.relative_error(oracle.softmax(logits), scipy.special.softmax(logits, -1), 1) <= SCIPY_RTOL
        )
        log_probs = scipy.special.log_softmax(logits, -1)
        assert np.all(oracle.relative_error(oracle.log_softmax(logits), log_probs, 1) <= SCIPY_RTOL)
        lse = scipy.special.logsumexp(logits, -1)
        assert np.all(oracle.relative_error(oracle.logsumexp(logits), lse) <= SCIPY_RTOL)

    @pytest.mark.parametrize("exponent", [-10, -3, 0, 2, 30])
    def test_power_of_two_temperature_is_exact_division(self, logits, exponent):
        # logits / 2^k is exact in float64, so T = 2^k and T = 1 on the divided logits are the same input.
        T = 2.0**exponent
        for function in (oracle.softmax, oracle.log_softmax, oracle.logsumexp):
            np.testing.assert_array_equal(function(logits, T), function(logits / T))

    def test_divergences(self, rng):
        student, teacher = rng.normal(size=(2, 5, 7)) * 3.0
        student_probs = scipy.special.softmax(student, -1)
        teacher_probs = scipy.special.softmax(teacher, -1)
        kl = scipy.special.rel_entr(teacher_probs, student_probs).sum(-1)
        teacher_entropy = scipy.special.entr(teacher_probs).sum(-1)
        assert np.all(oracle.relative_error(oracle.kl_divergence(student, teacher), kl) <= SCIPY_RTOL)
        cross_entropy = oracle.soft_cross_entropy(student, teacher)
        assert np.all(oracle.relative_error(cross_entropy, kl + teacher_entropy) <= SCIPY_RTOL)
        grad = (student_probs - teacher_probs) / 1.0
        assert np.all(
            oracle.relative_error(oracle.kl_divergence_grad(student, teacher), grad, 1) <= SCIPY_RTOL
        )

    def test_thousand_classes(self, rng):
        # the size kdcore is tested at; the oracle must stay fast (a few seconds) and right
        student = rng.normal(size=(3, 1000)) * 5.0
        teacher = student + rng.normal(size=(3, 1000))
        start = time.perf_counter()
        kl = oracle.kl_divergence(student, teacher)
        grad = oracle.kl_divergence_grad(student, teacher, wrt="teacher")
        elapsed = time.perf_counter() - start
        student_probs = scipy.special.softmax(student, -1)
        teacher_probs = scipy.special.softmax(teacher, -1)
        expected = scipy.special.rel_entr(teacher_probs, student_probs).sum(-1)
        # 1000-term sums in scipy: allow the O(N·eps) growth
        assert np.all(oracle.relative_error(kl, expected) <= 1000 * SCIPY_RTOL)
        assert np.all(np.abs(grad.sum(-1)) <= 1e-15)
        assert elapsed < 20, f"oracle too slow: {elapsed:.1f} s for 3 × 1000 classes"


# --------------------------------------------------------------------------------------------------
# Closed forms worked out by hand
# --------------------------------------------------------------------------------------------------


class TestClosedForms:
    def test_kl_two_classes_against_a_uniform_teacher(self):
        # q = (1/2, 1/2), p = softmax(0, δ): KL = −log 2 + ½ log((1 + e^δ)(1 + e^−δ)) = log cosh(δ/2),
        # since (1 + e^δ)(1 + e^−δ) = 2 + 2 cosh δ = 4 cosh²(δ/2).
        for delta in (0.5, 1.0, 3.0, 20.0):
            expected = closed_form(lambda mp, delta=delta: mp.log(mp.cosh(mp.mpf(delta) / 2)))
            assert oracle.kl_divergence([0.0, delta], [0.0, 0.0], T=1.0) == expected

    def test_kl_temperature_derivative_two_classes(self):
        # KL(T) = log cosh(δ/(2T)), so dKL/dT = −tanh(δ/(2T))·δ/(2T²).
        delta, T = 1.0, 1.5
        expected = closed_form(
            lambda mp: -mp.tanh(mp.mpf(delta) / (2 * mp.mpf(T))) * delta / (2 * mp.mpf(T) ** 2)
        )
        assert oracle.kl_divergence_grad([0.0, delta], [0.0, 0.0], T, wrt="temperature") == expected

    def test_masked_teacher_class(self):
        # z = (0, 0, 0), v = (0, 0, −inf): p = (1/3, 1/3, 1/3), q = (1/2, 1/2, 0):
        # KL = Σ ½ log(½ / ⅓) = log(3/2), CE = log 3, ∂/∂z = (p − q)/T = (−1/6, −1/6, 1/3).
        student, teacher = [0.0, 0.0, 0.0], [0.0, 0.0, -np.inf]
        assert oracle.kl_divergence(student, teacher) == closed_form(lambda mp: mp.log(mp.mpf(3) / 2))
        assert oracle.soft_cross_entropy(student, teacher) == closed_form(lambda mp: mp.log(3))
        expected = [closed_form(lambda mp: -mp.mpf(1) / 6)] * 2 + [closed_form(lambda mp: mp.mpf(1) / 3)]
        np.testing.assert_array_equal(oracle.kl_divergence_grad(student, teacher), expected)

    def test_softmax_literals(self):
        np.testing.assert_array_equal(oracle.softmax([5.0, 5.0, 5.0, 5.0], T=0.001), [0.25] * 4)
        # the STYLE.md example: log(softmax) would give −inf; the exact answer is (−e^−999, −999 − e^−999)
        np.testing.assert_array_equal(oracle.log_softmax([1000.0, 1.0]), [0.0, -999.0])
        assert oracle.logsumexp([3.0, 3.0], T=2.0) == closed_form(lambda mp: mp.mpf(1.5) + mp.log(2))

    def test_hessian_two_equal_logits(self):
        # p = (½, ½): (diag p − p pᵀ)/T² = [[¼, −¼], [−¼, ¼]]/T²
        expected = np.array([[1.0, -1.0], [-1.0, 1.0]]) / 16.0
        np.testing.assert_array_equal(oracle.kl_divergence_hessian([0.0, 0.0], [1.0, 2.0], T=2.0), expected)

    def test_cross_entropy_literals(self):
        assert oracle.cross_entropy([0.0, 0.0], 1) == closed_form(lambda mp: mp.log(2))
        np.testing.assert_array_equal(oracle.cross_entropy_grad([0.0, 0.0], 1), [0.5, -0.5])

    def test_distillation_literals(self):
        # z = v = (0, 0), T = 2, α = ¼: CE_hard = log 2, soft CE = log 2, KL = 0.
        args = ([0.0, 0.0], [0.0, 0.0], 0, 2.0, 0.25)
        assert oracle.distillation_loss(*args) == closed_form(lambda mp: (mp.mpf(0.25) + 3) * mp.log(2))
        assert oracle.distillation_loss(*args, soft="kl") == closed_form(lambda mp: mp.log(2) / 4)
        assert oracle.distillation_loss(*args, t2_scaling=False) == closed_form(lambda mp: mp.log(2))
        # gradient: ¼(½ − 1, ½) + ¾·4·(p − q)/2 with p = q
        np.testing.assert_array_equal(oracle.distillation_loss_grad(*args), [-0.125, 0.125])

    def test_logit_mse_literals(self):
        # z − v = (1, 2, 3): centred d = (−1, 0, 1), mean d² = 2/3; raw: (1 + 4 + 9)/3 = 14/3. Gradient 2d/N.
        student, teacher = [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]
        assert oracle.logit_mse(student, teacher) == 2 / 3
        assert oracle.logit_mse(student, teacher, centered=False) == 14 / 3
        np.testing.assert_array_equal(oracle.logit_mse_grad(student, teacher), [-2 / 3, 0.0, 2 / 3])
        np.testing.assert_array_equal(
            oracle.logit_mse_grad(student, teacher, centered=False), [2 / 3, 4 / 3, 2.0]
        )


# --------------------------------------------------------------------------------------------------
# Closed-form derivatives against mpmath.diff of the value functions
# --------------------------------------------------------------------------------------------------

SOFT_LOSSES = {
    "kl": (oracle.mp_kl_divergence, oracle.mp_kl_divergence_grad),
    "cross_entropy": (oracle.mp_soft_cross_entropy, oracle.mp_soft_cross_entropy_grad),
}

# (student, teacher, T): ordinary rows, a teacher-masked class, a class masked by both, a hot and a cold T
DERIVATIVE_CASES = {
    "ordinary": ([0.3, -1.2, 2.5, 0.0], [1.0, 0.5, -0.7, 2.0], 1.7),
    "teacher_masks": ([0.3, -1.2, 2.5, 0.0], [1.0, -np.inf, -0.7, 2.0], 0.8),
    "both_mask": ([0.3, -np.inf, 2.5, 0.0], [1.0, -np.inf, -0.7, 2.0], 3.0),
    "hot": ([30.0, -12.0, 25.0, 0.0], [10.0, 5.0, -70.0, 20.0], 1e3),
    "cold": ([0.3, -0.2, 0.25, 0.0], [0.1, 0.05, -0.07, 0.2], 0.01),
}


def mp_case(name):
    student, teacher, T = DERIVATIVE_CASES[name]
    return mp_row(student), mp_row(teacher), mpmath.mpf(T)


def differentiable(row):
    return [j for j, x in enumerate(row) if mpmath.isfinite(x)]


class TestDerivativesAgainstMpmathDiff:
    @pytest.mark.parametrize("loss", SOFT_LOSSES)
    @pytest.mark.parametrize("case", DERIVATIVE_CASES)
    @pytest.mark.parametrize("wrt", WRT)
    def test_soft_loss_grad(self, loss, case, wrt):
        value, grad = SOFT_LOSSES[loss]
        with mpmath.workdps(DPS):
            student, teacher, T = mp_case(case)
            closed_form = grad(student, teacher, T, wrt)
            if wrt == "temperature":
                numeric = mpmath.diff(lambda t: value(student, teacher, t), T)
            else:
                which = 0 if wrt == "student" else 1
                row = (student, teacher)[which]
                numeric = [mpmath.mpf(0)] * len(row)
                for j in differentiable(row):
                    numeric[j] = partial(lambda z, v: value(z, v, T), (student, teacher), which, j)
            assert mp_rel_error(closed_form, numeric) <= MPMATH_DIFF_RTOL

    @pytest.mark.parametrize("case", DERIVATIVE_CASES)
    def test_hessian(self, case):
        with mpmath.workdps(DPS):
            student, teacher, T = mp_case(case)
            hessian = oracle.mp_kl_divergence_hessian(student, teacher, T)
            for j in differentiable(student):

                def grad_along(z):
                    return oracle.mp_kl_divergence_grad(z, teacher, T, "student")

                column = [
                    partial(lambda z, i=i: grad_along(z)[i], (student,), 0, j) for i in range(len(student))
                ]
                assert mp_rel_error([row[j] for row in hessian], column) <= MPMATH_DIFF_RTOL

    @pytest.mark.parametrize("label", [0, 2])
    def test_cross_entropy_grad(self, label):
        with mpmath.workdps(DPS):
            logits = mp_row([0.3, -1.2, 2.5, -np.inf])
            closed_form = oracle.mp_cross_entropy_grad(logits, label)
            numeric = [
                partial(lambda z: oracle.mp_cross_entropy(z, label), (logits,), 0, j) for j in range(3)
            ]
            assert mp_rel_error(closed_form, [*numeric, mpmath.mpf(0)]) <= MPMATH_DIFF_RTOL

    @pytest.mark.parametrize("soft", ["cross_entropy", "kl"])
    @pytest.mark.parametrize("t2_scaling", [True, False])
    @pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
    def test_distillation_grad(self, soft, t2_scaling, alpha):
        with mpmath.workdps(DPS):
            student, teacher, T = mp_case("teacher_masks")
            label, weight = 1, mpmath.mpf(alpha)

            def loss(z):
                return oracle.mp_distillation_loss(z, teacher, label, T, weight, t2_scaling, soft)

            closed_form = oracle.mp_distillation_loss_grad(
                student, teacher, label, T, weight, t2_scaling, soft
            )
            numeric = [partial(loss, (student,), 0, j) for j in range(len(student))]
            assert mp_rel_error(closed_form, numeric) <= MPMATH_DIFF_RTOL

    @pytest.mark.parametrize("centered", [True, False])
    def test_logit_mse_grad(self, centered, rng):
        # The gradient is 2d/N in both cases; 2(d − d̄)/N would be wrong when not centred (d̄ ≠ 0 there).
        with mpmath.workdps(DPS):
            student, teacher = (mp_row(row) for row in random_rows(rng, 5))
            closed_form = oracle.mp_logit_mse_grad(student, teacher, centered)
            numeric = [
                partial(lambda z: oracle.mp_logit_mse(z, teacher, centered), (student,), 0, j)
                for j in range(5)
            ]
            assert mp_rel_error(closed_form, numeric) <= MPMATH_DIFF_RTOL

    def test_float64_functions_round_the_mp_values(self):
        # the float64 layer is the mp layer rounded (its precision is higher, the rounding the same)
        student, teacher, T = DERIVATIVE_CASES["teacher_masks"]
        with mpmath.workprec(2000):
            args = mp_case("teacher_masks")
            for wrt in WRT:
                expected = oracle._to_floats(oracle.mp_kl_divergence_grad(*args, wrt))
                np.testing.assert_array_equal(oracle.kl_divergence_grad(student, teacher, T, wrt), expected)
            expected = oracle._to_floats(oracle.mp_kl_divergence_hessian(*args))
            np.testing.assert_array_equal(oracle.kl_divergence_hessian(student, teacher, T), expected)


# --------------------------------------------------------------------------------------------------
# Identities and invariances
# --------------------------------------------------------------------------------------------------


class TestIdentities:
    @given(logit_pairs(max_batch=2, max_classes=6), TEMPERATURE)
    def test_cross_entropy_minus_kl_is_teacher_entropy(self, pair, T):
        student, teacher = pair
        with mpmath.workdps(DPS):
            n_classes = student.shape[-1]
            for z, v in zip(student.reshape(-1, n_classes), teacher.reshape(-1, n_classes), strict=True):
                z, v, t = mp_row(z), mp_row(v), mpmath.mpf(T)
                teacher_log_probs = oracle.mp_log_softmax(v, t)
                entropy = -mpmath.fsum(mpmath.exp(lq) * lq for lq in teacher_log_probs)
                gap = oracle.mp_soft_cross_entropy(z, v, t) - oracle.mp_kl_divergence(z, v, t)
                assert abs(gap - entropy) <= mpmath.mpf(10) ** -45 * max(1, entropy)

    @given(logit_pairs(max_batch=2, max_classes=6), TEMPERATURE)
    def test_kl_nonnegative_and_gradients_sum_to_zero(self, pair, T):
        student, teacher = pair
        assert np.all(oracle.kl_divergence(student, teacher, T) >= 0)
        for wrt in ("student", "teacher"):
            grad = oracle.kl_divergence_grad(student, teacher, T, wrt)
            assert np.all(np.abs(grad.sum(-1)) <= 1e-15 * np.abs(grad).max(-1, initial=1.0))

    @given(
        st.lists(st.integers(-50, 50), min_size=2, max_size=6),
        st.integers(-(2**40), 2**40),
        st.sampled_from([0.5, 1.0, 3.0]),
    )
    def test_shift_invariance(self, logits, shift, T):
        # integer logits and an integer shift: the shifted input is exact, so the result must not move at all
        logits = np.array(logits, dtype=np.float64)
        shifted = logits + shift
        np.testing.assert_array_equal(oracle.softmax(shifted, T), oracle.softmax(logits, T))
        teacher = logits[::-1].copy()
        np.testing.assert_array_equal(
            oracle.kl_divergence(shifted, teacher, T), oracle.kl_divergence(logits, teacher, T)
        )

    def test_mask_in_both_equals_slicing(self, rng):
        student, teacher = random_rows(rng, 6)
        student_masked, teacher_masked = student.copy(), teacher.copy()
        student_masked[[1, 4]] = teacher_masked[[1, 4]] = -np.inf
        kept = [0, 2, 3, 5]
        for function in (oracle.kl_divergence, oracle.soft_cross_entropy):
            assert function(student_masked, teacher_masked, 1.3) == function(
                student[kept], teacher[kept], 1.3
            )
        for wrt in WRT:
            masked = oracle.kl_divergence_grad(student_masked, teacher_masked, 1.3, wrt)
            sliced = oracle.kl_divergence_grad(student[kept], teacher[kept], 1.3, wrt)
            if wrt == "temperature":
                assert masked == sliced
            else:
                np.testing.assert_array_equal(masked[kept], sliced)
                np.testing.assert_array_equal(masked[[1, 4]], 0.0)

    def test_hessian_symmetric_psd_rows_sum_to_zero(self, rng):
        student, teacher = rng.normal(size=(2, 3, 8)) * 3
        hessian = oracle.kl_divergence_hessian(student, teacher, 0.7)
        np.testing.assert_array_equal(hessian, np.swapaxes(hessian, -1, -2))
        assert np.all(np.abs(hessian.sum(-1)) <= 1e-16)
        assert np.all(np.linalg.eigvalsh(hessian) >= -1e-15)

    def test_high_temperature_limit_is_logit_matching(self, rng):
        # Hinton et al. §2.1: T²·KL → (1/2N) Σ d², d the centred logit difference, with relative error O(|d|/T)
        student, teacher = rng.normal(size=(2, 3, 10))
        T = 1e6
        limit = oracle.logit_mse(student, teacher) / 2
        assert np.all(oracle.relative_error(T * T * oracle.kl_divergence(student, teacher, T), limit) <= 1e-5)

    def test_distillation_endpoints(self, rng):
        student, teacher = rng.normal(size=(2, 3, 5))
        labels = np.array([0, 4, 2])
        T = 2.5
        hard = oracle.distillation_loss(student, teacher, labels, T, alpha=1.0)
        np.testing.assert_array_equal(hard, oracle.cross_entropy(student, labels))
        soft = oracle.distillation_loss(student, teacher, labels, T, alpha=0.0, t2_scaling=False, soft="kl")
        np.testing.assert_array_equal(soft, oracle.kl_divergence(student, teacher, T))
        grad = oracle.distillation_loss_grad(student, teacher, labels, T, alpha=1.0)
        np.testing.assert_array_equal(grad, oracle.cross_entropy_grad(student, labels))


# --------------------------------------------------------------------------------------------------
# Masks and samples without a softmax
# --------------------------------------------------------------------------------------------------


class TestMasks:
    def test_log_softmax_of_a_masked_class_is_minus_inf(self):
        np.testing.assert_array_equal(
            oracle.log_softmax([0.0, -np.inf, 0.0]), [-math.log(2), -np.inf, -math.log(2)]
        )

    def test_student_masks_a_class_the_teacher_weighs(self):
        student, teacher, T = [0.0, -np.inf, 1.0], [0.0, 0.5, 1.0], 2.0
        assert oracle.kl_divergence(student, teacher, T) == math.inf
        assert oracle.soft_cross_entropy(student, teacher, T) == math.inf
        # the student gradient keeps its closed form (p − q)/T with p = 0 on the masked class …
        student_probs = oracle.softmax(student, T)
        teacher_probs = oracle.softmax(teacher, T)
        expected = (student_probs - teacher_probs) / T
        assert (
            oracle.relative_error(oracle.kl_divergence_grad(student, teacher, T), expected, 1) <= LITERAL_RTOL
        )
        assert np.all(np.isfinite(oracle.kl_divergence_hessian(student, teacher, T)))
        # … the teacher and temperature derivatives of an infinite loss are undefined
        assert np.all(np.isnan(oracle.kl_divergence_grad(student, teacher, T, "teacher")))
        assert np.isnan(oracle.soft_cross_entropy_grad(student, teacher, T, "temperature"))

    def test_masked_label(self):
        assert oracle.cross_entropy([0.0, -np.inf], 1) == math.inf
        np.testing.assert_array_equal(oracle.cross_entropy_grad([0.0, -np.inf], 1), [1.0, -1.0])

    @pytest.mark.parametrize("bad", [[np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf]])
    def test_row_without_softmax_is_nan_and_only_that_row(self, bad):
        good = [0.5, -1.0, 2.0]
        logits = np.array([good, bad])
        other = np.array([good, good])
        assert np.all(np.isnan(oracle.softmax(logits)[1])) and np.all(np.isfinite(oracle.softmax(logits)[0]))
        assert np.isnan(oracle.logsumexp(logits)[1])
        for student, teacher in ((logits, other), (other, logits)):
            kl = oracle.kl_divergence(student, teacher)
            assert np.isnan(kl[1]) and np.isfinite(kl[0])
            for wrt in WRT:
                grad = oracle.soft_cross_entropy_grad(student, teacher, 2.0, wrt)
                assert np.all(np.isnan(grad[1])) and np.all(np.isfinite(grad[0]))
            hessian = oracle.kl_divergence_hessian(student, teacher)
            assert np.all(np.isnan(hessian[1])) and np.all(np.isfinite(hessian[0]))
        assert np.isnan(oracle.logit_mse(logits, other)[1])

    def test_zero_weight_term_is_absent(self):
        # α = 1: the teacher row is not looked at, even when it has no softmax
        loss = oracle.distillation_loss([0.0, 1.0], [np.nan, 0.0], 0, 2.0, alpha=1.0)
        assert loss == oracle.cross_entropy([0.0, 1.0], 0)


# --------------------------------------------------------------------------------------------------
# Adaptive precision: regimes where 50 fixed digits are wrong
# --------------------------------------------------------------------------------------------------


def naive_soft_loss(student, teacher, T, kind="kl"):
    """KL or soft CE straight from the definitions, at 4000 bits: no oracle code, no stable rewrite.

    Valid for the regression cases below, whose smallest relevant effects (e^-600 and the like) are far
    above 2^-4000; call inside ``mpmath.workprec(4000)``.
    """

    def log_probs(logits):
        log_norm = mpmath.log(mpmath.fsum(mpmath.exp(x / T) for x in logits if mpmath.isfinite(x)))
        return [x / T - log_norm if mpmath.isfinite(x) else None for x in logits]

    student_log_probs, teacher_log_probs = log_probs(student), log_probs(teacher)
    terms = []
    for log_p, log_q in zip(student_log_probs, teacher_log_probs, strict=True):
        if log_q is not None:
            terms.append(mpmath.exp(log_q) * ((log_q - log_p) if kind == "kl" else -log_p))
    return mpmath.fsum(terms)


def naive_reference(student, teacher, T, kind="kl", wrt=None):
    """The float64 value of naive_soft_loss, or of its derivative by mpmath.diff, from exact inputs."""
    with mpmath.workprec(4000):
        z, v, t = mp_row(student), mp_row(teacher), mpmath.mpf(T)
        if wrt is None:
            return oracle.to_float64(naive_soft_loss(z, v, t, kind))
        if wrt == "temperature":
            return oracle.to_float64(mpmath.diff(lambda s: naive_soft_loss(z, v, s, kind), t))
        which = 0 if wrt == "student" else 1
        grad = []
        for j, x in enumerate((z, v)[which]):
            if not mpmath.isfinite(x):
                grad.append(0.0)
                continue
            derivative = partial(lambda a, b: naive_soft_loss(a, b, t, kind), (z, v), which, j)
            grad.append(oracle.to_float64(derivative))
        return np.array(grad)


def fixed_precision_kl(student, teacher, T, dps):
    with mpmath.workdps(dps):
        return oracle.to_float64(oracle.mp_kl_divergence(mp_row(student), mp_row(teacher), mpmath.mpf(T)))


class TestAdaptivePrecision:
    def test_kl_below_fifty_digits(self):
        # KL = log cosh(δ/2) ≈ δ²/8 ≈ 1.25e-121 for δ = 1e-60: far below the rounding error of 50-digit
        # log-ratios (~1e-50 · δ), so fixed 50 digits return noise. (The closed form needs ~170 digits
        # itself: cosh(δ/2) = 1 + 1.25e-121.)
        delta = 1e-60
        exact = closed_form(lambda mp: mp.log(mp.cosh(mp.mpf(delta) / 2)), dps=200)
        assert oracle.kl_divergence([0.0, delta], [0.0, 0.0]) == exact
        assert oracle.relative_error(fixed_precision_kl([0.0, delta], [0.0, 0.0], 1.0, 50), exact) > 1e-3

    def test_tempered_gap_that_rounds_to_one(self):
        # δ/T = 1e-156: e^{−δ/T} rounds to 1 at any precision below ~520 bits — the same way at every
        # precision, so agreement between two precisions would not reveal it. The starting precision must.
        # KL = log cosh(δ/(2T)) ≈ (δ/T)²/8 = 1.25e-313, a subnormal.
        delta, T = 1e-26, 1e130
        with mpmath.workdps(800):
            exact = oracle.to_float64(mpmath.log(mpmath.cosh(mpmath.mpf(delta) / (2 * mpmath.mpf(T)))))
        assert 0 < exact < 1e-300
        assert oracle.kl_divergence([0.0, delta], [0.0, 0.0], T) == exact
        assert fixed_precision_kl([0.0, delta], [0.0, 0.0], T, 120) != exact

    def test_input_bits_that_fifty_digits_absorb(self):
        # v − z = 1e-150 on one class: 1 − 1e-150 rounds to 1 at 50 digits, and KL ≈ ¼·(1e-150)²·p₀p₁… ≈ 1e-301
        student, teacher = [1.0, 0.0], [1.0, 1e-150]
        with mpmath.workdps(1000):
            exact = oracle.to_float64(oracle.mp_kl_divergence(mp_row(student), mp_row(teacher), 1))
        assert 1e-305 < exact < 1e-299
        assert oracle.kl_divergence(student, teacher) == exact
        assert fixed_precision_kl(student, teacher, 1.0, 50) == 0.0

    @pytest.mark.parametrize("T", [1e-3, 1.0, 1e284, 1e300, 1e9])
    def test_huge_logits_stable_under_more_precision(self, T):
        # z = 1e300·(1, 1 + 2⁻⁵², 1 + 2·2⁻⁵², 1 + 3·2⁻⁵²) and the teacher a permutation of it: neighbouring
        # logits differ by one ulp (2e284), so T = 1e284 and 1e300 make the tempered gaps O(1) and O(1e-16).
        eps = 2.0**-52
        student = 1e300 * np.array([1.0, 1 + eps, 1 + 2 * eps, 1 + 3 * eps])
        teacher = student[[3, 1, 2, 0]]
        values = [oracle.kl_divergence(student, teacher, T), oracle.soft_cross_entropy(student, teacher, T)]
        values += [oracle.kl_divergence_grad(student, teacher, T, wrt) for wrt in WRT]
        with mpmath.workprec(6000):  # far beyond what the oracle chose
            z, v, t = mp_row(student), mp_row(teacher), mpmath.mpf(T)
            expected = [oracle.mp_kl_divergence(z, v, t), oracle.mp_soft_cross_entropy(z, v, t)]
            expected += [oracle.mp_kl_divergence_grad(z, v, t, wrt) for wrt in WRT]
        for value, reference in zip(values, expected, strict=True):
            np.testing.assert_array_equal(value, oracle._to_floats(reference))

    def test_huge_dynamic_range(self):
        # 1e300 and 1e-300 in one row: the starting precision spans ~2000 bits; the result must not move
        student = np.array([1e300, 1e-300, -1e300, 0.0])
        teacher = np.array([1e300, 0.0, -1e300, 1e-300])
        for T in (1.0, 1e300):
            value = oracle.kl_divergence(student, teacher, T)
            with mpmath.workprec(8000):
                reference = oracle.mp_kl_divergence(mp_row(student), mp_row(teacher), mpmath.mpf(T))
            assert value == oracle.to_float64(reference)

    def test_loop_raises_precision_until_noise_is_negligible(self):
        # sin(π) is 0; at P bits it is ~2^-P noise that changes with P, so the loop must climb past 1180 bits
        value, precision = oracle._converged(lambda: mpmath.sin(mpmath.pi), 64)
        assert precision > 1180
        assert abs(value) < mpmath.ldexp(1, oracle.NEGLIGIBLE_EXPONENT)

    def test_global_precision_untouched(self):
        before = mpmath.mp.prec
        oracle.kl_divergence([1e300, 0.0], [0.0, 1e-300], 1e-3)
        assert mpmath.mp.prec == before


class TestAbsorptionRegressions:
    """Cases where a value near 1 rounded identically at every precision, hiding a cancellation.

    Each was found by fuzzing against naive_reference and failed with an earlier formula (named in the
    test); the expected values come from the definitions at 4000 bits.
    """

    def test_teacher_probability_rounded_to_one(self):
        # q = (1 − e^-382, e^-382): r_0 − KL = q_1 (r_0 − r_1) ≈ 1e-163, but q_0 rounds to 1 below
        # ~550 bits, so r_0 − Σ q r was exactly 0 at every precision tried.
        student, teacher, T = [2.0, 3.0], [1.0, 0.0], float.fromhex("0x1.56afb970b2487p-9")
        for kind, function in (("kl", oracle.kl_divergence_grad), ("ce", oracle.soft_cross_entropy_grad)):
            expected = naive_reference(student, teacher, T, kind, "teacher")
            assert 1e-162 < expected[0] < 1e-160
            np.testing.assert_array_equal(function(student, teacher, T, "teacher"), expected)

    def test_class_only_the_student_keeps(self):
        # The teacher masks class 4 (p_4 ≈ e^-573), so q = p/(1 − p_4) elsewhere and KL = −log(1 − p_4);
        # the log-normalisers differed by e^-573, lost inside O(1) sums: KL was 0.
        student = [2.5, 2.5, 0.5, -2.0, -2.0]
        teacher = [2.5, 2.5, 0.5, -2.0, -np.inf]
        T = float.fromhex("0x1.016169cb0e6a8p-7")
        expected = naive_reference(student, teacher, T)
        assert 1e-251 < expected < 1e-248
        assert oracle.kl_divergence(student, teacher, T) == expected
        expected_grad = naive_reference(student, teacher, T, "kl", "student")
        np.testing.assert_array_equal(oracle.kl_divergence_grad(student, teacher, T), expected_grad)
        expected_dt = naive_reference(student, teacher, T, "kl", "temperature")
        assert (
            oracle.relative_error(oracle.kl_divergence_grad(student, teacher, T, "temperature"), expected_dt)
            <= 1e-15
        )

    def test_normalisers_differ_below_their_rounding(self):
        # Rows equal but for 2 ulp in a class of mass e^-600: KL ≈ 1e-287, second order; the direct
        # formula returned −2e-274 (negative!) from log-normalisers that rounded alike.
        student = [3.0, -np.inf, -3.0, 2.0]
        teacher = [3.0, -np.inf, -float.fromhex("0x1.8000000000002p+1"), 2.0]
        T = float.fromhex("0x1.47ae147ae147bp-7")
        expected = naive_reference(student, teacher, T)
        assert 1e-288 < expected < 1e-286
        assert oracle.kl_divergence(student, teacher, T) == expected

    def test_tied_top_classes_one_masked_by_the_teacher(self):
        # Student top classes 0 and 3 tie (p ≈ ½ each), the teacher masks 0: multiplying p − q by log p
        # made ½ − ε (rounded alike) cancel against q_3 ≈ 1; multiplying by z − max z puts 0 there.
        student = [5.0, 2.0, -5.0, 5.0]
        teacher = [-np.inf, 2.0 + 2**-51, -5.0 + 2**-50, 5.0 - 2**-50]
        T = float.fromhex("0x1.47ae147ae147bp-7")
        for kind, function in (("kl", oracle.kl_divergence_grad), ("ce", oracle.soft_cross_entropy_grad)):
            expected = naive_reference(student, teacher, T, kind, "temperature")
            assert oracle.relative_error(function(student, teacher, T, "temperature"), expected) <= 1e-15


# --------------------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------------------


class TestInputChecking:
    @pytest.mark.parametrize("T", [0.0, -1.0, math.inf, math.nan, [1.0, 2.0]])
    def test_bad_temperature(self, T):
        with pytest.raises(ValueError, match="T"):
            oracle.softmax([0.0, 1.0], T)

    def test_bad_choices(self):
        with pytest.raises(ValueError, match="wrt"):
            oracle.kl_divergence_grad([0.0, 1.0], [0.0, 1.0], 1.0, wrt="logits")
        with pytest.raises(ValueError, match="soft"):
            oracle.distillation_loss([0.0, 1.0], [0.0, 1.0], 0, 1.0, 0.5, soft="mse")

    def test_bad_shapes_and_labels(self):
        with pytest.raises(ValueError, match="shape"):
            oracle.kl_divergence([[0.0, 1.0]], [0.0, 1.0])
        with pytest.raises(ValueError, match="class axis"):
            oracle.softmax(np.zeros((3, 0)))
        with pytest.raises(ValueError, match="labels"):
            oracle.cross_entropy([0.0, 1.0], 2)
        with pytest.raises(TypeError, match="labels"):
            oracle.cross_entropy([0.0, 1.0], 0.0)

    def test_shapes(self):
        logits = np.zeros((2, 3, 4))
        assert oracle.softmax(logits).shape == (2, 3, 4)
        assert oracle.logsumexp(logits).shape == (2, 3)
        assert oracle.kl_divergence_grad(logits, logits, 1.0, "temperature").shape == (2, 3)
        assert oracle.kl_divergence_hessian(logits, logits).shape == (2, 3, 4, 4)
        assert oracle.cross_entropy(logits, np.zeros((2, 3), dtype=int)).shape == (2, 3)
        assert oracle.softmax(np.zeros((0, 4))).shape == (0, 4)
