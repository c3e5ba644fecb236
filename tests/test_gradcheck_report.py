"""Tests of kdcore.gradcheck.report: the relative error, and the report that prints the rows."""

import math

import numpy as np
import pytest
from gradcheck_functions import sum_of_sines, sum_of_squares, sum_of_squares_grad
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kdcore.gradcheck import (
    GradcheckReport,
    check_gradient,
    relative_error,
)

# Exact float64 results (Richardson is exact on polynomials of degree ≤ 4, see TestNumericalGradient):
# only the rounding of a handful of operations remains.
ROUNDING_RTOL = 1e-12


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
