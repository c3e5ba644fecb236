"""cross_entropy and cross_entropy_grad (hard integer labels, T = 1)."""

import warnings

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from strategies import logits_and_labels
from tolerances import FD_RTOL

from kdcore import cross_entropy, cross_entropy_grad, gradcheck

F64 = np.dtype(np.float64)


def one_hot(labels, n):
    return np.eye(n)[labels]


class TestCrossEntropy:
    @given(logits_and_labels())
    def test_matches_scipy(self, pair):
        logits, labels = pair
        log_probs = scipy.special.log_softmax(logits, axis=-1)
        expected = -np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(cross_entropy(logits, labels, "none"), expected, rtol=1e-12, atol=1e-14)

    def test_literal(self):
        # −log(e^2 / (e^2 + e^0.5 + e^-1)), computed with mpmath at 30 digits: 0.241311296657157060211...
        assert cross_entropy(np.array([2.0, 0.5, -1.0]), 0) == pytest.approx(0.24131129665715706, rel=1e-15)

    def test_confident_prediction_keeps_precision(self):
        # −log(1/(1 + e^-40)) = log1p(e^-40) ≈ 4.248e-18, which log(softmax) rounds to 0.
        assert cross_entropy([40.0, 0.0], 0) == pytest.approx(np.exp(-40.0), rel=1e-15)

    def test_reductions(self, rng):
        logits, labels = rng.normal(size=(4, 3, 5)), rng.integers(0, 5, size=(4, 3))
        per_sample = cross_entropy(logits, labels, "none")
        assert per_sample.shape == (4, 3)
        assert cross_entropy(logits, labels, "sum") == pytest.approx(per_sample.sum())
        assert cross_entropy(logits, labels) == pytest.approx(per_sample.mean())

    def test_masked_label_class_is_infinite(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert cross_entropy([0.0, -np.inf], 1) == np.inf
            assert cross_entropy([0.0, -np.inf], 0) == 0.0

    def test_nan_sample_isolated(self):
        values = cross_entropy(np.array([[0.0, 1.0], [np.nan, 0.0]]), np.array([1, 0]), "none")
        assert np.isfinite(values[0]) and np.isnan(values[1])

    def test_float32(self):
        value = cross_entropy(np.array([[1.0, 2.0]], np.float32), np.array([0]))
        assert value.dtype == np.float32
        assert cross_entropy_grad(np.array([[1.0, 2.0]], np.float32), np.array([0])).dtype == np.float32


class TestCrossEntropyGrad:
    @given(logits_and_labels(max_batch=3, max_classes=8))
    def test_finite_differences(self, pair):
        logits, labels = pair
        report = gradcheck.check_gradient(
            lambda z: cross_entropy(z, labels),
            lambda z: cross_entropy_grad(z, labels),
            logits,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(logits_and_labels())
    def test_closed_form(self, pair):
        logits, labels = pair
        expected = scipy.special.softmax(logits, axis=-1) - one_hot(labels, logits.shape[-1])
        np.testing.assert_allclose(
            cross_entropy_grad(logits, labels, "none"), expected, rtol=1e-10, atol=1e-15
        )

    def test_label_entry_keeps_precision(self):
        # p_y − 1 = −e^{-40}/(1 + e^{-40}); softmax − 1 would give 0 or a multiple of eps.
        assert cross_entropy_grad([40.0, 0.0], 0)[0] == pytest.approx(
            -np.exp(-40.0) / (1 + np.exp(-40.0)), rel=1e-15
        )

    def test_mean_divides_by_samples(self, rng):
        logits, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
        np.testing.assert_allclose(
            cross_entropy_grad(logits, labels), cross_entropy_grad(logits, labels, "sum") / 6
        )


class TestLabelValidation:
    def test_float_labels(self):
        with pytest.raises(TypeError, match="labels must be integer class indices, got dtype float64"):
            cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))

    def test_out_of_range(self):
        with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got a label 3"):
            cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
        with pytest.raises(ValueError, match="got a label -1"):
            cross_entropy(np.zeros((2, 3)), np.array([0, -1]))

    def test_wrong_shape(self):
        with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
            cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))

    def test_bool_labels_rejected(self):
        with pytest.raises(TypeError, match="labels"):
            cross_entropy(np.zeros((2, 3)), np.array([True, False]))
