"""Tests of kdcore.gradcheck.differences: Richardson central differences, numerical_gradient and
directional_derivative, on functions written out in tests/gradcheck_functions.py."""

import math

import numpy as np
import pytest
from gradcheck_functions import (
    Spy,
    kd_problem,
    log_softmax,
    log_sum_exp,
    softmax,
    sum_of_sines,
    sum_of_squares,
)
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kdcore.gradcheck import (
    directional_derivative,
    numerical_gradient,
)

# What a Richardson-extrapolated central difference achieves in float64 on the smooth, well-scaled functions
# below: truncation h⁴·|f⁽⁵⁾|/480 ≈ 5e-19 and rounding ~3·eps·|f|/h ≈ 5e-12 at the default step h ≈ 1.2e-4,
# so 1e-9 leaves a hundred-fold margin. (Candidate for tests/tolerances.py.)
RICHARDSON_RTOL = 1e-9

# Exact float64 results (Richardson is exact on polynomials of degree ≤ 4, see TestNumericalGradient):
# only the rounding of a handful of operations remains.
ROUNDING_RTOL = 1e-12


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
