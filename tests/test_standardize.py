"""standardize_logits (Sun et al. 2024), its VJP and Jacobian; gradients flowing through it into a soft loss.

Checked against finite differences and the inner-product identity (kdcore.gradcheck), the closed forms of
docs/divergences.md, and the oracle (tests/test_family_accuracy.py). PyTorch: tests/test_torch_family.py.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import LOGIT, TEMPERATURE, logit_pairs, logit_shapes
from tolerances import FD_RTOL, FLOAT32_VS_FLOAT64_RTOL

from kdcore import (
    gradcheck,
    kl_divergence,
    kl_divergence_grad,
    standardize_logits,
    standardize_logits_jacobian,
    standardize_logits_vjp,
)

F64 = np.dtype(np.float64)
OPTIONS = st.sampled_from([(1.0, 0, 0.0), (2.0, 0, 0.0), (1.0, 1, 1e-7), (0.5, 1, 0.3)])


def spread(x):
    """Rows whose logits are not all (nearly) equal: a z-score of a constant is undefined."""
    return np.ptp(x, axis=-1).min() > 1e-3


@st.composite
def spread_logits(draw, min_classes=3):
    shape = draw(logit_shapes(max_batch=3, max_classes=8, min_classes=min_classes))
    x = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    return x if spread(x) else x + np.arange(shape[-1])


class TestValue:
    @given(x=spread_logits(min_classes=2), options=OPTIONS)
    def test_matches_the_official_formula(self, x, options):
        tau, ddof, eps = options
        expected = (x - x.mean(-1, keepdims=True)) / (x.std(-1, ddof=ddof, keepdims=True) + eps) / tau
        np.testing.assert_allclose(standardize_logits(x, tau, ddof, eps), expected, rtol=1e-12, atol=1e-12)

    @given(x=spread_logits(min_classes=2), shift=st.floats(-1e6, 1e6), factor=st.floats(1e-3, 1e3))
    def test_invariant_to_shift_and_scale(self, x, shift, factor):
        np.testing.assert_allclose(
            standardize_logits(x * factor + shift), standardize_logits(x), rtol=1e-8, atol=1e-8
        )

    def test_extreme_logits_without_warnings(self):
        x = np.array([[1e308, -1e308, 0.0], [1e12 + 1.0, 1e12, 1e12 - 1.0], [1e-300, 0.0, -1e-300]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = standardize_logits(x)
        expected = np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]) * np.sqrt(1.5)
        np.testing.assert_allclose(y, expected, rtol=1e-15, atol=1e-15)

    def test_masked_classes_stay_masked(self, rng):
        x = rng.normal(size=6)
        masked = x.copy()
        masked[[1, 4]] = -np.inf
        y = standardize_logits(masked)
        assert np.isneginf(y[[1, 4]]).all()
        np.testing.assert_allclose(y[[0, 2, 3, 5]], standardize_logits(x[[0, 2, 3, 5]]), rtol=1e-15)
        assert (standardize_logits_vjp(masked, np.ones(6))[[1, 4]] == 0).all()

    def test_undefined_rows_are_nan_and_only_they(self):
        x = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [1.0, np.nan, 0.0], [0.0, np.inf, 1.0]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = standardize_logits(x)
            g = standardize_logits_vjp(x, np.ones_like(x))
        assert np.isfinite(y[0]).all() and np.isnan(y[1:]).all() and np.isnan(g[1:]).all()
        assert (standardize_logits(x[1], eps=1e-7) == 0).all()  # with ε the constant row is defined


class TestDerivatives:
    @given(x=spread_logits(), options=OPTIONS)
    def test_vjp_inner_product_identity(self, x, options):
        report = gradcheck.check_vjp(
            lambda x: standardize_logits(x, *options),
            lambda x, c: standardize_logits_vjp(x, c, *options),
            x,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(x=spread_logits(), options=OPTIONS)
    def test_jacobian_is_symmetric_and_matches_the_vjp(self, x, options):
        jacobian = standardize_logits_jacobian(x, *options)
        np.testing.assert_allclose(jacobian, np.swapaxes(jacobian, -1, -2), rtol=1e-12, atol=1e-15)
        c = np.cos(np.arange(x.size)).reshape(x.shape)
        np.testing.assert_allclose(
            np.einsum("...ij,...i->...j", jacobian, c),
            standardize_logits_vjp(x, c, *options),
            rtol=1e-12,
            atol=1e-14,
        )

    @given(x=spread_logits())
    def test_null_space(self, x):
        # ε = 0, ddof = 0: shifting or rescaling the logits changes nothing, so J 1 = 0 and J ŷ = 0.
        jacobian = standardize_logits_jacobian(x)
        scale = np.abs(jacobian).max()
        y = standardize_logits(x)
        assert np.abs(jacobian @ np.ones(x.shape[-1])[:, None]).max() <= 1e-13 * scale
        assert np.abs(np.einsum("...ij,...j->...i", jacobian, y)).max() <= 1e-12 * scale

    @given(pair=logit_pairs(max_batch=3, max_classes=8, min_classes=3), T=TEMPERATURE, options=OPTIONS)
    def test_gradient_flows_through_into_a_soft_loss(self, pair, T, options):
        student, teacher = pair
        if not (spread(student) and spread(teacher)):
            return
        teacher_standardized = standardize_logits(teacher, *options)

        def loss(z):
            return kl_divergence(standardize_logits(z, *options), teacher_standardized, T, "sum")

        def grad(z):
            upstream = kl_divergence_grad(standardize_logits(z, *options), teacher_standardized, T, "sum")
            return standardize_logits_vjp(z, upstream, *options)

        report = gradcheck.check_gradient(loss, grad, student, rtol=FD_RTOL[F64])
        assert report.passed, report


class TestDtypesAndValidation:
    def test_float32_stays_float32(self, rng):
        x = (rng.normal(size=(8, 10)) * 3).astype(np.float32)
        c = rng.normal(size=(8, 10)).astype(np.float32)
        assert standardize_logits(x).dtype == np.float32
        assert standardize_logits_vjp(x, c).dtype == np.float32
        np.testing.assert_allclose(
            standardize_logits(x),
            standardize_logits(x.astype(float)),
            rtol=FLOAT32_VS_FLOAT64_RTOL,
            atol=1e-6,
        )
        expected = standardize_logits_vjp(x.astype(float), c.astype(float))
        assert (
            np.abs(standardize_logits_vjp(x, c) - expected).max()
            <= FLOAT32_VS_FLOAT64_RTOL * np.abs(expected).max()
        )

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"base_temperature": 0.0}, "base_temperature must be a positive finite number"),
            ({"ddof": -1}, "ddof must be a non-negative integer, got ddof=-1"),
            ({"ddof": 1.5}, "ddof must be a non-negative integer"),
            ({"eps": -1e-7}, "eps must be a finite number >= 0"),
        ],
    )
    def test_bad_options(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            standardize_logits(np.arange(3.0), **kwargs)

    def test_cotangent_shape(self):
        with pytest.raises(ValueError, match=r"cotangent must have the shape of logits \(3,\), got \(4,\)"):
            standardize_logits_vjp(np.arange(3.0), np.ones(4))
