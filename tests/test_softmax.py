"""softmax, log_softmax, logsumexp, softmax_jacobian, softmax_vjp."""

import warnings

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import LOGIT, TEMPERATURE, logit_shapes

import kdcore
from kdcore import gradcheck, log_softmax, logsumexp, softmax, softmax_jacobian, softmax_vjp

logits_arrays = logit_shapes().flatmap(lambda shape: hnp.arrays(np.float64, shape, elements=LOGIT))


class TestSoftmax:
    @given(logits_arrays, TEMPERATURE)
    def test_rows_sum_to_one_and_match_scipy(self, logits, T):
        probs = softmax(logits, T)
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-14)
        np.testing.assert_allclose(probs, scipy.special.softmax(logits / T, axis=-1), rtol=1e-13, atol=1e-300)

    @given(logits_arrays, TEMPERATURE, st.sampled_from([-7.0, 0.5, 1e6]))
    def test_shift_invariance(self, logits, T, shift):
        # A power-of-two-free shift is not exact in floating point; compare at the rounding level of it.
        np.testing.assert_allclose(softmax(logits + shift, T), softmax(logits, T), rtol=1e-8, atol=1e-300)

    def test_temperature_limits(self):
        z = np.array([3.0, 1.0, 0.2])
        np.testing.assert_allclose(softmax(z, T=1e9), np.full(3, 1 / 3), rtol=1e-8)
        np.testing.assert_array_equal(softmax(z, T=1e-3), [1.0, 0.0, 0.0])

    def test_axis(self, rng):
        z = rng.normal(size=(3, 4, 5))
        np.testing.assert_allclose(
            softmax(z, 2.0, axis=1), np.moveaxis(softmax(np.moveaxis(z, 1, -1), 2.0), -1, 1)
        )
        np.testing.assert_allclose(logsumexp(z, 2.0, axis=0), scipy.special.logsumexp(z / 2.0, axis=0))

    def test_masked_classes_get_zero(self):
        probs = softmax([0.0, -np.inf, 0.0])
        np.testing.assert_array_equal(probs, [0.5, 0.0, 0.5])

    def test_undefined_samples_are_nan_and_isolated(self):
        z = np.array([[0.0, 1.0], [np.nan, 1.0], [np.inf, 0.0], [-np.inf, -np.inf]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            probs = softmax(z)
        np.testing.assert_allclose(probs[0], scipy.special.softmax([0.0, 1.0]))
        assert np.isnan(probs[1:]).all()

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_dtype_is_kept(self, dtype):
        z = np.array([1.0, 2.0], dtype=dtype)
        assert softmax(z).dtype == dtype
        assert log_softmax(z, 3.0).dtype == dtype
        assert logsumexp(z).dtype == dtype

    def test_integers_lists_and_float16(self):
        assert softmax([1, 2]).dtype == np.float64
        assert softmax(np.array([True, False])).dtype == np.float64
        assert softmax(np.array([1, 2], dtype=np.float16)).dtype == np.float32

    def test_extreme_logits_no_warning(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(softmax([1e308, -1e308], T=0.5), [1.0, 0.0])
            np.testing.assert_array_equal(log_softmax([1e308, -1e308], T=0.5), [0.0, -np.inf])
            assert logsumexp([1e308, 1e308], T=0.5) == np.inf  # the exact value 2e308 is not a float


class TestLogSoftmax:
    @given(logits_arrays, TEMPERATURE)
    def test_matches_scipy(self, logits, T):
        np.testing.assert_allclose(
            log_softmax(logits, T), scipy.special.log_softmax(logits / T, axis=-1), rtol=1e-12, atol=1e-13
        )

    def test_dominant_class_keeps_relative_precision(self):
        # log(1 − e^{-50}) ≈ −e^{-50}: log(softmax) returns exactly 0 here.
        assert log_softmax([0.0, -50.0])[0] == pytest.approx(-np.exp(-50.0), rel=1e-15)

    def test_large_gap(self):
        np.testing.assert_array_equal(log_softmax([1000.0, 1.0]), [0.0, -999.0])

    @given(logits_arrays, TEMPERATURE)
    def test_is_logits_over_T_minus_logsumexp(self, logits, T):
        np.testing.assert_allclose(
            log_softmax(logits, T), logits / T - logsumexp(logits, T)[..., None], rtol=1e-12, atol=1e-12
        )


class TestLogSumExp:
    @given(logits_arrays, TEMPERATURE)
    def test_matches_scipy(self, logits, T):
        np.testing.assert_allclose(
            logsumexp(logits, T), scipy.special.logsumexp(logits / T, axis=-1), rtol=1e-13, atol=1e-13
        )

    def test_gradient_of_T_logsumexp_is_softmax(self, rng):
        z, T = rng.normal(size=6), 1.7
        report = gradcheck.check_gradient(lambda x: T * logsumexp(x, T), lambda x: softmax(x, T), z)
        assert report.passed, report

    def test_masked_and_overflow(self):
        assert logsumexp([0.0, -np.inf]) == 0.0
        assert logsumexp([1000.0, 1000.0]) == pytest.approx(1000 + np.log(2), rel=1e-16)


class TestSoftmaxJacobian:
    @given(logits_arrays)
    def test_symmetric_psd_rows_sum_to_zero(self, logits):
        jac = softmax_jacobian(softmax(logits))
        np.testing.assert_allclose(jac, np.swapaxes(jac, -1, -2))
        np.testing.assert_allclose(jac.sum(axis=-1), 0.0, atol=1e-15)
        assert (np.linalg.eigvalsh(jac) > -1e-15).all()

    def test_against_finite_differences(self, rng):
        x = rng.normal(size=5)
        jac = softmax_jacobian(softmax(x))
        for row in range(5):
            report = gradcheck.check_gradient(
                lambda t, row=row: softmax(t)[row], lambda t, row=row: softmax_jacobian(softmax(t))[row], x
            )
            assert report.passed, report
        assert jac.shape == (5, 5)

    def test_closed_form(self):
        np.testing.assert_allclose(softmax_jacobian(np.array([0.2, 0.8])), [[0.16, -0.16], [-0.16, 0.16]])

    def test_rejects_scalar(self):
        with pytest.raises(ValueError, match="probs"):
            softmax_jacobian(0.5)


class TestSoftmaxVjp:
    @given(
        logits_arrays.flatmap(
            lambda z: st.tuples(st.just(z), hnp.arrays(np.float64, z.shape, elements=LOGIT))
        )
    )
    def test_equals_jacobian_product(self, pair):
        logits, upstream = pair
        s = softmax(logits)
        np.testing.assert_allclose(
            softmax_vjp(s, upstream),
            np.einsum("...ij,...i->...j", softmax_jacobian(s), upstream),
            rtol=1e-10,
            atol=1e-12,
        )

    def test_inner_product_check(self, rng):
        x = rng.normal(size=(3, 4))
        report = gradcheck.check_vjp(softmax, lambda t, c: softmax_vjp(softmax(t), c), x)
        assert report.passed, report

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="same shape"):
            softmax_vjp([0.5, 0.5], [1.0, 2.0, 3.0])


class TestTemperatureValidation:
    @pytest.mark.parametrize("T", [0.0, -1.0, np.inf, np.nan])
    def test_bad_temperature_named(self, T):
        with pytest.raises(ValueError, match="T must be a positive finite number, got T="):
            kdcore.softmax([1.0, 2.0], T)

    @pytest.mark.parametrize("T", ["2", None, True, np.ones(2)])
    def test_temperature_type(self, T):
        with pytest.raises(TypeError, match="T must be"):
            kdcore.softmax([1.0, 2.0], T)

    def test_empty_class_axis(self):
        with pytest.raises(ValueError, match="empty class axis"):
            softmax(np.zeros((3, 0)))

    def test_non_numeric(self):
        with pytest.raises(TypeError, match="logits"):
            softmax(np.array(["a", "b"]))
        with pytest.raises(TypeError, match="logits"):
            softmax(np.array([1 + 2j]))
