"""Tests of kdcore.gradcheck: the checker must pass right derivatives and, above all, catch wrong ones.

The functions checked here are written out in this file (softmax, soft cross-entropy, quadratic forms, a
matrix function) so that the checker is tested independently of the rest of kdcore.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tolerances import FD_RTOL

import kdcore.gradcheck as gradcheck
from kdcore.gradcheck import (
    GradcheckReport,
    check_gradient,
    check_hessian,
    check_vjp,
    directional_derivative,
    numerical_gradient,
    relative_error,
)

# What a Richardson-extrapolated central difference achieves in float64 on the smooth, well-scaled functions
# below: truncation h⁴·|f⁽⁵⁾|/480 ≈ 5e-19 and rounding ~3·eps·|f|/h ≈ 5e-12 at the default step h ≈ 1.2e-4,
# so 1e-9 leaves a hundred-fold margin. (Candidate for tests/tolerances.py.)
RICHARDSON_RTOL = 1e-9

# Exact float64 results (Richardson is exact on polynomials of degree ≤ 4, see TestNumericalGradient):
# only the rounding of a handful of operations remains.
ROUNDING_RTOL = 1e-12

FD_RTOL64 = FD_RTOL[np.dtype(np.float64)]


# --------------------------------------------------------------------------------------------------------
# Functions with known derivatives, written here so the checker is tested on its own


def softmax(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    exps = np.exp(shifted)
    return exps / np.sum(exps, axis=-1, keepdims=True)


def log_softmax(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def log_sum_exp(logits):
    largest = np.max(logits)
    return largest + np.log(np.sum(np.exp(logits - largest)))


def soft_cross_entropy(student_logits, teacher_probs, T):
    """-Σ teacher_probs · log softmax(student_logits / T), summed over samples."""
    return -np.sum(teacher_probs * log_softmax(student_logits / T))


def soft_cross_entropy_grad(student_logits, teacher_probs, T):
    """(softmax(z / T) − teacher_probs) / T per sample (the teacher's rows sum to 1)."""
    return (softmax(student_logits / T) - teacher_probs) / T


def soft_cross_entropy_hessian_blocks(student_logits, T):
    """(diag(s) − s sᵀ) / T² for each sample: shape student_logits.shape + (N,)."""
    student_probs = softmax(student_logits / T)
    diagonal = np.einsum("...i,ij->...ij", student_probs, np.eye(student_logits.shape[-1]))
    return (diagonal - student_probs[..., :, None] * student_probs[..., None, :]) / T**2


def block_diagonal(blocks):
    """Per-sample blocks of shape (B, N, N) as the full Hessian of shape (B, N, B, N)."""
    n_samples, n_classes = blocks.shape[:2]
    full = np.zeros((n_samples, n_classes, n_samples, n_classes))
    for sample in range(n_samples):
        full[sample, :, sample, :] = blocks[sample]
    return full


def kd_problem(rng, shape=(3, 4), T=2.0):
    """Student logits, teacher probabilities, and the loss, gradient and Hessian blocks as closures."""
    student_logits = rng.normal(scale=2.0, size=shape)
    teacher_probs = softmax(rng.normal(scale=2.0, size=shape))
    return (
        student_logits,
        lambda z: soft_cross_entropy(z, teacher_probs, T),
        lambda z: soft_cross_entropy_grad(z, teacher_probs, T),
        lambda z: soft_cross_entropy_hessian_blocks(z, T),
    )


def sum_of_squares(x):
    return np.sum(x**2)


def sum_of_squares_grad(x):
    return 2 * x


def sum_of_sines(x):
    return np.sum(np.sin(x))


class Spy:
    """Wraps a function; records whether the arrays it was given were the caller's own, and scribbles on
    them afterwards, so that any sharing of memory between the checker and the function shows up."""

    def __init__(self, function, watched):
        self.function = function
        self.watched = watched
        self.saw_caller_array = False

    def __call__(self, *arrays):
        self.saw_caller_array |= any(np.shares_memory(array, self.watched) for array in arrays)
        result = self.function(*(array.copy() for array in arrays))
        for array in arrays:
            array[...] = 1e300  # a function that writes into its input
        return result


# --------------------------------------------------------------------------------------------------------


class TestRelativeError:
    @pytest.mark.parametrize(
        ("analytic", "numeric", "expected"),
        [
            (0.0, 0.0, 0.0),  # both zero: agree exactly, not 0/0
            (-0.0, 0.0, 0.0),
            (1.5, 1.5, 0.0),
            (1.0, -1.0, 1.0),  # a sign flip is the worst possible
            (3.0, 6.0, 1 / 3),  # a missing factor 2
            (6.0, 3.0, 1 / 3),
            (0.0, 1e-300, 1.0),  # against zero, any non-zero value is completely wrong
            (math.inf, math.inf, 0.0),  # equal infinities
            (-math.inf, -math.inf, 0.0),
            (math.inf, -math.inf, 1.0),
            (math.inf, 1.0, 1.0),
            (2.0, -math.inf, 1.0),
            (1e308, -1e308, 1.0),  # |a − n| overflows without the rescaling
            (1e308, 1.7e308, 0.7 / 2.7),  # |a| + |n| overflows without it
            (5e-324, 5e-324, 0.0),  # subnormals
        ],
    )
    def test_values(self, analytic, numeric, expected):
        result = relative_error(analytic, numeric)
        assert isinstance(result, np.ndarray)
        assert result.shape == ()
        assert result.dtype == np.float64
        np.testing.assert_allclose(result, expected, rtol=ROUNDING_RTOL, atol=0)

    def test_nan_stays_nan(self):
        assert np.all(np.isnan(relative_error([math.nan, 1.0, math.nan], [1.0, math.nan, math.nan])))

    def test_elementwise_and_broadcast(self):
        result = relative_error([[1.0], [2.0]], [1.0, 4.0, -2.0])
        expected = [[0.0, 3 / 5, 1.0], [1 / 3, 1 / 3, 1.0]]
        np.testing.assert_allclose(result, expected, rtol=ROUNDING_RTOL, atol=0)

    def test_integers_and_lists_are_accepted(self):
        np.testing.assert_allclose(relative_error([1, 2], [1, 4]), [0.0, 1 / 3], rtol=ROUNDING_RTOL)

    def test_complex_is_refused(self):
        with pytest.raises(TypeError, match="analytic"):
            relative_error(1j, 1.0)

    @given(
        hnp.arrays(np.float64, 5, elements=st.floats(allow_nan=False)),
        hnp.arrays(np.float64, 5, elements=st.floats(allow_nan=False)),
    )
    def test_bounded_and_symmetric(self, analytic, numeric):
        error = relative_error(analytic, numeric)
        assert np.all((error >= 0) & (error <= 1))
        np.testing.assert_array_equal(error, relative_error(numeric, analytic))

    @given(
        st.floats(min_value=-1e100, max_value=1e100).filter(lambda v: v == 0 or abs(v) > 1e-100),
        st.floats(min_value=-1e100, max_value=1e100).filter(lambda v: v == 0 or abs(v) > 1e-100),
        st.integers(min_value=-10, max_value=10),
    )
    def test_scale_invariant(self, analytic, numeric, power):
        # Scaling by a power of two is exact (no subnormals in this range), so the error is unchanged exactly.
        scale = 2.0**power
        np.testing.assert_array_equal(
            relative_error(scale * analytic, scale * numeric), relative_error(analytic, numeric)
        )


class TestNumericalGradient:
    """Against closed forms, to RICHARDSON_RTOL."""

    @staticmethod
    def assert_gradient(numeric, exact):
        # Entries that happen to be near zero are held to the scale of the whole gradient.
        np.testing.assert_allclose(
            numeric, exact, rtol=RICHARDSON_RTOL, atol=RICHARDSON_RTOL * np.max(np.abs(exact))
        )

    def test_cubic(self):
        x = np.array([0.5, -1.0, 2.0, 30.0])
        self.assert_gradient(numerical_gradient(lambda v: np.sum(v**3), x), 3 * x**2)

    def test_sines(self, rng):
        x = rng.normal(scale=3.0, size=(4, 5))
        self.assert_gradient(numerical_gradient(sum_of_sines, x), np.cos(x))

    def test_log_sum_exp_is_softmax(self, rng):
        logits = rng.normal(scale=3.0, size=7)
        self.assert_gradient(numerical_gradient(log_sum_exp, logits), softmax(logits))

    def test_quadratic_form_with_asymmetric_matrix(self, rng):
        # ∇ xᵀAx = (A + Aᵀ) x, not 2Ax: the classic slip when A is not symmetric.
        A = rng.normal(size=(5, 5))
        x = rng.normal(size=5)
        self.assert_gradient(numerical_gradient(lambda v: v @ A @ v, x), (A + A.T) @ x)

    @pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
    def test_soft_cross_entropy(self, rng, T):
        student_logits, loss, loss_grad, _ = kd_problem(rng, T=T)
        self.assert_gradient(numerical_gradient(loss, student_logits), loss_grad(student_logits))

    def test_large_offsets_use_a_relative_step(self):
        # At |x| = 1e6 a step of 1.2e-4 would be resolved to only ~1e-6; the step scales with |x_i|. (An
        # element 0.5 in the same sum could not be checked at all: Σx² ≈ 5e12 rounds to ~1e-3 per evaluation,
        # which swamps the change 1e-4 that a step makes in 0.5². Finite differences need balanced scales.)
        x = np.array([1e6, -2e6])
        self.assert_gradient(numerical_gradient(lambda v: np.sum(v**2), x), 2 * x)

    def test_scalar_input(self):
        gradient = numerical_gradient(np.exp, 1.0)
        assert gradient.shape == ()
        np.testing.assert_allclose(gradient, math.e, rtol=RICHARDSON_RTOL)

    def test_richardson_is_exact_for_quartics(self):
        # D(h) = f' + h²f'''/6 + h⁴f⁽⁵⁾/120 + …; Richardson removes the h² term, and f⁽⁵⁾ = 0 for a quartic,
        # so even a huge step gives the exact derivative.
        x = np.array([0.3, -1.7, 2.0])
        numeric = numerical_gradient(lambda v: np.sum(v**4), x, step=0.5)
        np.testing.assert_allclose(numeric, 4 * x**3, rtol=ROUNDING_RTOL)

    def test_richardson_error_term_for_quintics(self):
        # For x⁵, f⁽⁵⁾ = 120 and the Notes' leading error −h⁴·f⁽⁵⁾/480 = −h⁴/4 is the whole error.
        x = np.array([0.3, -1.7, 2.0])
        h = 0.5
        numeric = numerical_gradient(lambda v: np.sum(v**5), x, step=h)
        np.testing.assert_allclose(numeric, 5 * x**4 - h**4 / 4, rtol=ROUNDING_RTOL)

    def test_lists_and_integers_become_float64(self):
        gradient = numerical_gradient(lambda v: np.sum(v**2), [[1, 2], [3, 4]])
        assert gradient.dtype == np.float64
        self.assert_gradient(gradient, 2.0 * np.array([[1, 2], [3, 4]]))

    def test_float32_input_is_differenced_in_float64(self):
        x32 = np.array([0.1, 0.7, -1.3], dtype=np.float32)
        gradient = numerical_gradient(sum_of_sines, x32)
        assert gradient.dtype == np.float64
        # At the float64 point of the same value, to float64 accuracy.
        self.assert_gradient(gradient, np.cos(x32.astype(np.float64)))

    def test_input_not_mutated(self, rng):
        x = rng.normal(size=(3, 4))
        before = x.copy()
        spy = Spy(sum_of_sines, x)
        gradient = numerical_gradient(spy, x)
        np.testing.assert_array_equal(x, before)
        assert not spy.saw_caller_array
        self.assert_gradient(gradient, np.cos(x))  # the scribbling did not move the probes either

    def test_read_only_input(self):
        x = np.array([1.0, 2.0])
        x.flags.writeable = False
        self.assert_gradient(numerical_gradient(sum_of_squares, x), 2 * x)

    def test_not_finite_at_a_probe_gives_nan_not_an_exception(self):
        # log(1e-5 − 1.2e-4) is NaN (and a RuntimeWarning, an error under this suite's filterwarnings).
        x = np.array([1e-5, 1.0])
        gradient = numerical_gradient(lambda v: np.sum(np.log(v)), x)
        assert np.isnan(gradient[0])
        np.testing.assert_allclose(gradient[1], 1.0, rtol=RICHARDSON_RTOL)

    def test_vector_valued_function_is_refused(self):
        with pytest.raises(ValueError, match="scalar"):
            numerical_gradient(lambda v: v**2, [1.0, 2.0])

    @pytest.mark.parametrize(("step", "error"), [(0.0, ValueError), (-1e-3, ValueError), ("big", TypeError)])
    def test_bad_step(self, step, error):
        with pytest.raises(error, match="step"):
            numerical_gradient(sum_of_squares, [1.0], step=step)

    @pytest.mark.parametrize("x", [[math.nan, 1.0], [math.inf], np.empty(0)])
    def test_bad_points(self, x):
        with pytest.raises(ValueError, match="x must"):
            numerical_gradient(sum_of_squares, x)

    @given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=st.floats(-20, 20)))
    def test_sines_anywhere(self, x):
        self.assert_gradient(numerical_gradient(sum_of_sines, x), np.cos(x))


class TestDirectionalDerivative:
    def test_equals_inner_product_with_gradient(self, rng):
        x = rng.normal(size=(3, 3))
        direction = rng.normal(size=(3, 3))
        slope = directional_derivative(sum_of_sines, x, direction)
        assert isinstance(slope, float)
        np.testing.assert_allclose(slope, np.sum(np.cos(x) * direction), rtol=RICHARDSON_RTOL)

    def test_shift_invariance_gives_zero(self, rng):
        # log-sum-exp(z + t·1) = log-sum-exp(z) + t, and softmax is shift invariant: along 1 the log-softmax
        # of any class has slope exactly 0.
        logits = rng.normal(size=6)
        slope = directional_derivative(lambda z: log_softmax(z)[2], logits, np.ones(6))
        assert abs(slope) < RICHARDSON_RTOL

    def test_zero_direction(self):
        assert directional_derivative(sum_of_sines, [1.0, 2.0], [0.0, 0.0]) == 0.0

    def test_not_finite_gives_nan(self):
        assert math.isnan(directional_derivative(lambda v: np.sum(np.sqrt(v)), [0.0, 1.0], [1.0, 0.0]))

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="direction"):
            directional_derivative(sum_of_sines, [1.0, 2.0], [1.0, 2.0, 3.0])

    def test_inputs_not_mutated(self, rng):
        x, direction = rng.normal(size=4), rng.normal(size=4)
        x_before, direction_before = x.copy(), direction.copy()
        spy = Spy(sum_of_sines, x)
        directional_derivative(spy, x, direction)
        np.testing.assert_array_equal(x, x_before)
        np.testing.assert_array_equal(direction, direction_before)
        assert not spy.saw_caller_array

    @given(
        hnp.arrays(np.float64, 4, elements=st.floats(-10, 10)),
        hnp.arrays(np.float64, 4, elements=st.floats(-1, 1)),
        st.floats(0.01, 100),
    )
    def test_linear_in_the_direction(self, x, direction, scale):
        # The default step shrinks as the direction grows, so the probes (and the rounding) are the same.
        assume(np.linalg.norm(direction) > 1e-3)
        slope = directional_derivative(sum_of_sines, x, direction)
        scaled = directional_derivative(sum_of_sines, x, scale * direction)
        exact = np.sum(np.cos(x) * direction)
        atol = RICHARDSON_RTOL * np.sum(np.abs(direction))
        np.testing.assert_allclose(slope, exact, rtol=RICHARDSON_RTOL, atol=atol)
        np.testing.assert_allclose(scaled, scale * exact, rtol=RICHARDSON_RTOL, atol=scale * atol)


class TestCheckGradient:
    # ---- right gradients pass

    @pytest.mark.parametrize(
        ("fn", "grad"),
        [(sum_of_squares, sum_of_squares_grad), (sum_of_sines, np.cos), (log_sum_exp, softmax)],
        ids=["x²", "sin", "log-sum-exp"],
    )
    def test_right_gradients_pass(self, rng, fn, grad):
        report = check_gradient(fn, grad, rng.normal(scale=2.0, size=6))
        assert report.passed, report
        assert report.max_error < RICHARDSON_RTOL

    @pytest.mark.parametrize("T", [0.25, 1.0, 8.0])
    def test_soft_cross_entropy_passes(self, rng, T):
        student_logits, loss, loss_grad, _ = kd_problem(rng, T=T)
        assert check_gradient(loss, loss_grad, student_logits).passed

    def test_scalar_point(self):
        report = check_gradient(np.sin, np.cos, 0.7)
        assert report.passed, report
        assert [row.label for row in report.rows] == [f"u{k}" for k in range(8)] + ["e"]

    # ---- wrong gradients fail, and the report says how

    def test_missing_factor_two(self, rng):
        report = check_gradient(sum_of_squares, lambda x: x, rng.normal(size=5))
        assert not report.passed
        assert len(report.failures) == len(report.rows)
        np.testing.assert_allclose([row.relative_error for row in report.rows], 1 / 3, rtol=1e-6)
        assert all(row.note == "analytic/numeric = 0.5" for row in report.rows)

    def test_sign_flip(self, rng):
        report = check_gradient(log_sum_exp, lambda z: -softmax(z), rng.normal(size=5))
        assert not report.passed
        assert report.max_error == pytest.approx(1.0)

    def test_wrong_temperature_power(self, rng):
        # (s − q)/T is right; forgetting the 1/T (a chain-rule slip) is off by a factor T.
        student_logits, loss, loss_grad, _ = kd_problem(rng, T=2.0)
        report = check_gradient(loss, lambda z: 2.0 * loss_grad(z), student_logits)
        assert not report.passed
        assert "analytic/numeric = 2" in str(report)

    def test_one_wrong_entry_is_located_by_its_coordinate_direction(self, rng):
        x = rng.normal(size=(4, 5))

        def almost_cos(v):
            gradient = np.cos(v)
            gradient[2, 3] *= 1.001
            return gradient

        report = check_gradient(sum_of_sines, almost_cos, x)
        failed = {row.label for row in report.failures}
        assert "e[2, 3]" in failed
        assert not failed & {f"e[{i}, {j}]" for i in range(4) for j in range(5)} - {"e[2, 3]"}

    def test_small_relative_error_fails_at_default_rtol_and_passes_when_loosened(self, rng):
        x = rng.normal(size=5)

        def slightly_off(v):
            return 2 * v * (1 + 1e-4)

        assert not check_gradient(sum_of_squares, slightly_off, x).passed
        assert check_gradient(sum_of_squares, slightly_off, x, rtol=1e-3).passed

    def test_default_rtol(self, rng):
        report = check_gradient(sum_of_squares, sum_of_squares_grad, rng.normal(size=3))
        assert report.rtol == gradcheck.DEFAULT_RTOL == FD_RTOL64

    # ---- directions

    def test_random_then_coordinate_directions(self, rng):
        report = check_gradient(sum_of_sines, np.cos, rng.normal(size=(2, 3)), directions=3)
        labels = [row.label for row in report.rows]
        assert labels == ["u0", "u1", "u2"] + [f"e[{i}, {j}]" for i in range(2) for j in range(3)]

    def test_coordinate_rows_show_the_gradient_entries(self, rng):
        x = rng.normal(size=4)
        report = check_gradient(sum_of_sines, np.cos, x, directions=0)
        np.testing.assert_array_equal([row.analytic for row in report.rows], np.cos(x))

    def test_large_points_use_random_directions_only(self, rng):
        report = check_gradient(sum_of_sines, np.cos, rng.normal(size=65), directions=5)
        assert [row.label for row in report.rows] == [f"u{k}" for k in range(5)]
        with pytest.raises(ValueError, match="nothing to check"):
            check_gradient(sum_of_sines, np.cos, rng.normal(size=65), directions=0)

    def test_seeded(self, rng):
        x = rng.normal(size=80)
        first = check_gradient(sum_of_sines, np.cos, x, seed=3)
        again = check_gradient(sum_of_sines, np.cos, x, seed=3)
        other = check_gradient(sum_of_sines, np.cos, x, seed=4)
        assert first.rows == again.rows
        assert [row.analytic for row in first.rows] != [row.analytic for row in other.rows]

    def test_step(self, rng):
        x = np.array([0.5, -3.0])
        default = check_gradient(sum_of_sines, np.cos, x)
        assert default.step == pytest.approx(gradcheck.DEFAULT_STEP_FACTOR * 3.0)
        assert check_gradient(sum_of_sines, np.cos, x, step=1e-3).step == 1e-3

    # ---- values near zero, non-finite values

    def test_zero_derivative_is_judged_by_rounding_noise(self):
        # cos(π/2) = 6e-17 in float64 while the difference gives ~1e-13: relative error ~1, yet both are 0.
        report = check_gradient(sum_of_sines, np.cos, [np.pi / 2, 1.0], directions=0)
        assert report.passed, report
        first = report.rows[0]
        assert first.relative_error > 0.5
        assert "rounding noise" in first.note
        assert "ok (noise)" in str(report)
        assert any("less than the rounding noise" in note for note in report.notes)
        assert report.max_error < RICHARDSON_RTOL  # noise rows do not count

    def test_loss_at_its_minimum(self, rng):
        # KL(q ‖ softmax(z)) at z = log q + 3 is 0 with gradient exactly 0, yet the KL is a difference of
        # logarithms of order one: its values carry ~eps of rounding, far more than eps·|KL|. The checker
        # measures that noise (a fourth difference of the probe values) instead of assuming eps·|f|.
        teacher_probs = softmax(rng.normal(size=4))

        def kl(student_logits):
            return np.sum(teacher_probs * (np.log(teacher_probs) - log_softmax(student_logits)))

        def kl_grad(student_logits):
            return softmax(student_logits) - teacher_probs

        minimum = np.log(teacher_probs) + 3.0
        report = check_gradient(kl, kl_grad, minimum)
        assert report.passed, str(report)
        assert any("derivative is ~0 at x" in note for note in report.notes)
        # At the minimum the gradient's only possible error is a constant offset, and that is caught.
        assert not check_gradient(kl, lambda z: kl_grad(z) + 1e-7, minimum).passed
        assert check_gradient(kl, kl_grad, minimum + rng.normal(size=4)).passed

    def test_stationary_point_with_a_rounded_analytic_gradient(self):
        # Centred logit matching at z = 0 against a constant v: the gradient 2·((z − z̄) − (v − v̄)) is 0, but
        # v − v̄ rounds to ~1e-15 — the same at every probe, so no measurement sees it. The absolute floor
        # (the rounding of a derivative of order one) accepts it.
        teacher_logits = np.full(11, 12.19099972)

        def centred(logits):
            return logits - np.mean(logits)

        def mse(student_logits):
            return np.sum((centred(student_logits) - centred(teacher_logits)) ** 2)

        def mse_grad(student_logits):
            return 2 * (centred(student_logits) - centred(teacher_logits))

        student_logits = np.zeros(11)
        assert np.any(mse_grad(student_logits) != 0)  # the premise: the analytic gradient is noise
        report = check_gradient(mse, mse_grad, student_logits)
        assert report.passed, str(report)
        assert not check_gradient(mse, lambda z: mse_grad(z) + 1e-9, student_logits).passed

    def test_subnormal_values(self, rng):
        # Below ~2e-308 floats are spaced 5e-324 apart whatever their size: the rounding is absolute, so
        # the differences of a 1e-318 function carry only a few digits, which the noise level allows for.
        x = rng.normal(size=3)
        report = check_gradient(lambda v: 1e-318 * np.sum(np.sin(v)), lambda v: 1e-318 * np.cos(v), x)
        assert report.passed, str(report)
        assert not check_gradient(lambda v: 1e-318 * np.sum(np.sin(v)), lambda v: -1e-318 * np.cos(v), x)

    def test_wrong_value_near_zero_is_still_caught(self):
        # The noise level is tiny (~1e-11): an analytic 1e-6 where the truth is 0 is an error.
        report = check_gradient(sum_of_sines, lambda x: np.cos(x) + 1e-6, [np.pi / 2, 1.0], directions=0)
        assert [row.label for row in report.failures] == ["e[0]"]

    def test_function_not_finite_at_a_probe_is_a_failed_row(self):
        report = check_gradient(lambda v: np.sum(np.log(v)), lambda v: 1 / v, [1e-5, 1.0])
        assert not report.passed
        assert report.max_error == math.inf
        bad = {row.label: row.note for row in report.failures}
        assert "e[0]" in bad and "e[1]" not in bad
        assert "fn is not finite at x" in bad["e[0]"]

    def test_gradient_not_finite_is_a_failed_row(self):
        report = check_gradient(lambda v: np.sum(v**2), lambda v: 2 * v / (v != 0), [0.0, 1.0])
        assert {row.label for row in report.failures} >= {"e[0]", "u0"}
        assert "grad(x) is not finite" in report.failures[0].note

    # ---- dtypes and input handling

    def test_float32_point_is_upcast_with_a_note(self):
        x32 = np.array([0.1, 0.7, -1.3], dtype=np.float32)
        report = check_gradient(sum_of_sines, np.cos, x32)
        assert report.passed, report
        assert any("float32" in note and "float64 copy" in note for note in report.notes)

    def test_float32_function_gets_a_note_and_fails_at_float64_tolerance(self, rng):
        # Its differences are noise at the 1e-3 level: not excused as "noise", because the derivatives
        # themselves are of order one — the check cannot vouch for the gradient at rtol = 1e-6.
        x = rng.normal(size=3)
        report = check_gradient(lambda v: np.sum(np.sin(v.astype(np.float32))), np.cos, x)
        assert not report.passed
        assert any("fn returned float32" in note for note in report.notes)
        assert any("more than float64 rounding of fn explains" in row.note for row in report.failures)

    def test_list_point(self):
        assert check_gradient(sum_of_squares, sum_of_squares_grad, [[1, 2], [3, 4]]).passed

    def test_inputs_not_mutated(self, rng):
        x = rng.normal(size=(2, 3))
        before = x.copy()
        fn, grad = Spy(sum_of_sines, x), Spy(np.cos, x)
        report = check_gradient(fn, grad, x)
        np.testing.assert_array_equal(x, before)
        assert not fn.saw_caller_array and not grad.saw_caller_array
        assert report.passed, report  # the scribbling functions did not disturb the probes

    def test_read_only_point(self):
        x = np.array([0.3, 0.4])
        x.flags.writeable = False
        assert check_gradient(sum_of_squares, sum_of_squares_grad, x).passed

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"directions": -1}, ValueError, "directions"),
            ({"directions": 2.5}, TypeError, "directions"),
            ({"directions": True}, TypeError, "directions"),
            ({"rtol": 0.0}, ValueError, "rtol"),
            ({"rtol": "tight"}, TypeError, "rtol"),
            ({"step": math.inf}, ValueError, "step"),
        ],
    )
    def test_bad_arguments(self, kwargs, error, match):
        with pytest.raises(error, match=match):
            check_gradient(sum_of_squares, sum_of_squares_grad, [1.0], **kwargs)

    def test_gradient_of_wrong_shape(self):
        with pytest.raises(ValueError, match=r"grad\(x\) must have the shape of x"):
            check_gradient(sum_of_squares, lambda x: np.sum(2 * x, axis=0), np.ones((2, 3)))

    def test_function_not_scalar(self):
        with pytest.raises(ValueError, match="check_vjp"):
            check_gradient(lambda x: x**2, sum_of_squares_grad, [1.0, 2.0])

    # ---- properties

    @given(
        hnp.arrays(
            np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5), elements=st.floats(-8, 8)
        ),
        st.floats(0.5, 5.0),
        st.integers(0, 2**32 - 1),
    )
    def test_soft_cross_entropy_passes_anywhere(self, student_logits, T, seed):
        teacher_probs = softmax(np.random.default_rng(seed).normal(scale=2.0, size=student_logits.shape))
        report = check_gradient(
            lambda z: soft_cross_entropy(z, teacher_probs, T),
            lambda z: soft_cross_entropy_grad(z, teacher_probs, T),
            student_logits,
            seed=seed,
        )
        assert report.passed, str(report)

    @given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=5), elements=st.floats(-5, 5)))
    def test_missing_factor_two_always_caught(self, x):
        assume(np.max(np.abs(x)) > 1e-3)
        assert not check_gradient(sum_of_squares, lambda v: v, x).passed


class TestCheckVjp:
    A = np.array([[2.0, 1.0, 0.0], [-1.0, 3.0, 0.5], [0.0, 4.0, 1.0]])  # not symmetric

    def test_matrix_function_passes(self, rng):
        # f(X) = tanh(A X): J^T C = Aᵀ (C ⊙ (1 − tanh²(A X))).
        A = self.A
        X = rng.normal(size=(3, 2))
        report = check_vjp(lambda X: np.tanh(A @ X), lambda X, C: A.T @ (C * (1 - np.tanh(A @ X) ** 2)), X)
        assert report.passed, report
        assert report.max_error < RICHARDSON_RTOL

    def test_transposed_jacobian_fails(self, rng):
        A = self.A
        report = check_vjp(lambda X: A @ X, lambda X, C: A @ C, rng.normal(size=(3, 2)))
        assert not report.passed

    def test_missing_derivative_of_the_nonlinearity_fails(self, rng):
        A = self.A
        report = check_vjp(lambda X: np.tanh(A @ X), lambda X, C: A.T @ C, rng.normal(size=(3, 2)))
        assert not report.passed

    def test_sign_flip_fails(self, rng):
        A = self.A
        report = check_vjp(lambda X: A @ X, lambda X, C: -A.T @ C, rng.normal(size=(3, 2)))
        assert report.max_error == pytest.approx(1.0)

    def test_softmax_vjp_both_forms(self, rng):
        # The product form s ⊙ (c − ⟨s, c⟩) and the Jacobian form (diag(s) − s sᵀ) c agree (J is symmetric).
        def product_form(logits, cotangent):
            probs = softmax(logits)
            return probs * (cotangent - np.sum(probs * cotangent, axis=-1, keepdims=True))

        def jacobian_form(logits, cotangent):
            probs = softmax(logits)
            jacobian = np.einsum("bi,ij->bij", probs, np.eye(logits.shape[-1]))
            jacobian -= probs[:, :, None] * probs[:, None, :]
            return np.einsum("bij,bj->bi", jacobian, cotangent)

        logits = rng.normal(scale=2.0, size=(3, 5))
        assert check_vjp(softmax, product_form, logits).passed
        assert check_vjp(softmax, jacobian_form, logits).passed
        assert not check_vjp(softmax, lambda z, c: c - product_form(z, c), logits).passed

    def test_output_shape_differs_from_input_shape(self, rng):
        # f: (3, 2) → (4,), f(X) = B vec(X); the VJP reshapes Bᵀ c back to (3, 2).
        B = rng.normal(size=(4, 6))
        report = check_vjp(
            lambda X: B @ X.ravel(), lambda X, c: (B.T @ c).reshape(3, 2), rng.normal(size=(3, 2))
        )
        assert report.passed, report

    def test_scalar_output(self, rng):
        x = rng.normal(size=4)
        assert check_vjp(sum_of_sines, lambda v, c: c * np.cos(v), x).passed

    def test_saturated_softmax(self):
        # Derivatives ~1e-9 beside values ~1: the differences resolve them only to ~1e-4, so most rows pass
        # on their absolute error (they differ by less than the measured noise) — but 0.1% is still caught.
        logits = np.array([20.0, 0.0, -3.0])

        def vjp(z, c):
            probs = softmax(z)
            return probs * (c - np.sum(probs * c))

        report = check_vjp(softmax, vjp, logits)
        assert report.passed, str(report)
        assert any(row.at_noise_level for row in report.rows)
        assert not check_vjp(softmax, lambda z, c: 1.001 * vjp(z, c), logits).passed

    def test_rows_and_seed(self, rng):
        A = self.A
        x = rng.normal(size=(3, 2))
        report = check_vjp(lambda X: A @ X, lambda X, C: A.T @ C, x, directions=2, seed=5)
        assert [row.label for row in report.rows][:3] == ["u0", "u1", "e[0, 0]"]
        assert len(report.rows) == 2 + x.size
        again = check_vjp(lambda X: A @ X, lambda X, C: A.T @ C, x, directions=2, seed=5)
        assert report.rows == again.rows

    def test_inputs_not_mutated(self, rng):
        A = self.A
        x = rng.normal(size=(3, 2))
        before = x.copy()
        fn, vjp = Spy(lambda X: A @ X, x), Spy(lambda X, C: A.T @ C, x)
        report = check_vjp(fn, vjp, x)
        np.testing.assert_array_equal(x, before)
        assert not fn.saw_caller_array and not vjp.saw_caller_array
        assert report.passed, report

    def test_not_finite_is_a_failed_row(self):
        report = check_vjp(np.log, lambda x, c: c / x, [1e-5, 1.0])
        assert not report.passed
        assert any("not finite" in row.note for row in report.failures)

    def test_vjp_of_wrong_shape(self, rng):
        with pytest.raises(ValueError, match=r"vjp\(x, c\) must have the shape of x"):
            check_vjp(lambda X: self.A @ X, lambda X, C: C.ravel(), rng.normal(size=(3, 2)))

    def test_float32_point_is_upcast_with_a_note(self):
        report = check_vjp(np.sin, lambda x, c: c * np.cos(x), np.array([0.5, 1.5], dtype=np.float32))
        assert report.passed, report
        assert any("float32" in note for note in report.notes)

    @given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
    def test_linear_maps_pass_anywhere(self, n_out, n_in, seed):
        generator = np.random.default_rng(seed)
        M = generator.normal(size=(n_out, n_in))
        x = generator.normal(scale=3.0, size=n_in)
        assert check_vjp(lambda v: np.sin(M @ v), lambda v, c: M.T @ (c * np.cos(M @ v)), x, seed=seed).passed


class TestCheckHessian:
    A = np.array([[1.0, 2.0, 0.0], [0.0, 3.0, -1.0], [4.0, 0.5, 2.0]])  # not symmetric

    def quadratic_form_grad(self, x):
        return (self.A + self.A.T) @ x

    def test_quadratic_form(self, rng):
        # f(x) = xᵀAx has Hessian A + Aᵀ, whatever the symmetry of A.
        report = check_hessian(self.quadratic_form_grad, lambda x: self.A + self.A.T, rng.normal(size=3))
        assert report.passed, report
        assert report.max_error < RICHARDSON_RTOL

    @pytest.mark.parametrize("wrong", ["2A", "A"])
    def test_quadratic_form_wrong_hessians(self, rng, wrong):
        hessian = 2 * self.A if wrong == "2A" else self.A
        assert not check_hessian(self.quadratic_form_grad, lambda x: hessian, rng.normal(size=3)).passed

    def test_one_wrong_entry_is_located_by_its_column(self, rng):
        wrong = self.A + self.A.T
        wrong[0, 1] += 0.01
        report = check_hessian(self.quadratic_form_grad, lambda x: wrong, rng.normal(size=3))
        failed_coordinates = {row.label for row in report.failures if row.label.startswith("e")}
        assert failed_coordinates == {"e[1]"}  # column 1 is the only wrong column

    @pytest.mark.parametrize("T", [0.5, 1.0, 3.0])
    def test_soft_cross_entropy_blocks(self, rng, T):
        student_logits, _, loss_grad, hessian_blocks = kd_problem(rng, shape=(3, 4), T=T)
        assert hessian_blocks(student_logits).shape == (3, 4, 4)
        report = check_hessian(loss_grad, hessian_blocks, student_logits)
        assert report.passed, report

    def test_soft_cross_entropy_full_matrix(self, rng):
        student_logits, _, loss_grad, hessian_blocks = kd_problem(rng, shape=(3, 4))
        report = check_hessian(loss_grad, lambda z: block_diagonal(hessian_blocks(z)), student_logits)
        assert report.passed, report

    def test_soft_cross_entropy_wrong_blocks(self, rng):
        T = 2.0
        student_logits, _, loss_grad, hessian_blocks = kd_problem(rng, T=T)
        missing_temperature = check_hessian(loss_grad, lambda z: T**2 * hessian_blocks(z), student_logits)
        assert not missing_temperature.passed
        assert not check_hessian(loss_grad, lambda z: -hessian_blocks(z), student_logits).passed

    def test_blocks_are_indexed_output_then_input(self, rng):
        # A true Hessian is symmetric, so only a field that is not a gradient shows the convention: the check
        # is the Jacobian of grad, block[b, i, j] = ∂grad[b, i]/∂x[b, j], and a transposed block fails.
        jacobians = rng.normal(size=(2, 3, 3))

        def linear_field(x):
            return np.einsum("bij,bj->bi", jacobians, x)

        x = rng.normal(size=(2, 3))
        assert check_hessian(linear_field, lambda x: jacobians, x).passed
        assert not check_hessian(linear_field, lambda x: jacobians.transpose(0, 2, 1), x).passed

    def test_hessian_of_wrong_shape(self, rng):
        with pytest.raises(ValueError, match=r"\(3, 4, 3, 4\).*\(3, 4, 4\).*\(3, 3\)"):
            check_hessian(lambda z: z, lambda z: np.eye(3), rng.normal(size=(3, 4)))

    def test_gradient_not_finite_is_a_failed_row(self):
        # f = ⅔ Σ v^(3/2): grad √v is NaN at the probe 1e-5 − 1.2e-4 < 0.
        report = check_hessian(np.sqrt, lambda v: np.diag(0.5 / np.sqrt(v)), [1e-5, 1.0])
        assert not report.passed
        assert any("grad is not finite" in row.note for row in report.failures)

    def test_inputs_not_mutated(self, rng):
        x = rng.normal(size=3)
        before = x.copy()
        grad = Spy(self.quadratic_form_grad, x)
        hessian = Spy(lambda v: self.A + self.A.T, x)
        report = check_hessian(grad, hessian, x)
        np.testing.assert_array_equal(x, before)
        assert not grad.saw_caller_array and not hessian.saw_caller_array
        assert report.passed, report

    @given(
        hnp.arrays(
            np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5), elements=st.floats(-8, 8)
        ),
        st.floats(0.5, 5.0),
    )
    def test_soft_cross_entropy_blocks_pass_anywhere(self, student_logits, T):
        teacher_probs = np.full(student_logits.shape, 1.0 / student_logits.shape[-1])
        report = check_hessian(
            lambda z: soft_cross_entropy_grad(z, teacher_probs, T),
            lambda z: soft_cross_entropy_hessian_blocks(z, T),
            student_logits,
        )
        assert report.passed, str(report)


class TestGradcheckReport:
    def failing_report(self):
        return check_gradient(sum_of_squares, lambda x: -2 * x, [1.0, 2.0], directions=1, name="flipped")

    def test_bool(self):
        assert bool(check_gradient(sum_of_squares, sum_of_squares_grad, [1.0])) is True
        assert bool(self.failing_report()) is False

    def test_table(self):
        text = str(self.failing_report())
        assert text.startswith("gradcheck 'flipped': FAILED, 3 of 3 directions disagree")
        assert "analytic/numeric = -1" in text
        for label in ("u0", "e[0]", "e[1]"):
            assert f"\n  {label} " in text
        assert "Rule of thumb" in text or "rule of thumb" in text

    def test_repr_is_short_and_names_the_failures(self, rng):
        report = check_gradient(sum_of_sines, lambda x: -np.cos(x), rng.normal(size=40), name="flipped cos")
        text = repr(report)
        assert len(text) < 240  # pytest cuts longer assertion messages
        assert "passed=False" in text and "u0, u1" in text

    def test_raise_if_failed(self):
        report = self.failing_report()
        with pytest.raises(AssertionError, match="FAILED") as info:
            report.raise_if_failed()
        assert str(report) in str(info.value)
        passing = check_gradient(sum_of_squares, sum_of_squares_grad, [1.0])
        assert passing.raise_if_failed() is passing

    def test_default_names(self):
        assert check_gradient(sum_of_squares, sum_of_squares_grad, [1.0]).name == "sum_of_squares_grad"
        assert check_gradient(sum_of_squares, sum_of_squares_grad, [1.0], name="mine").name == "mine"

    def test_is_frozen(self):
        report = self.failing_report()
        assert isinstance(report, GradcheckReport)
        with pytest.raises(AttributeError):
            report.passed = True


def test_public_functions_are_documented():
    for name in gradcheck.__all__:
        doc = getattr(gradcheck, name).__doc__
        assert doc, name
        if callable(getattr(gradcheck, name)) and name[0].islower():
            for section in ("Parameters", "Returns", "Notes", "Examples"):
                assert section in doc, (name, section)
