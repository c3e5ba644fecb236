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


def values_count(grad):
    return int(np.prod(grad.shape[:-1]))


def whole_batch(logits, labels, keep=None, reduction="none"):
    """The loss and gradient computed on the whole (kept) batch at once, from one log-softmax: what
    cross_entropy computed before it was cut into row chunks."""
    from kdcore import log_softmax

    rows = logits if keep is None else logits[keep]
    y = (labels if keep is None else labels[keep])[..., None]
    log_probs = log_softmax(rows)
    label_log_probs = np.take_along_axis(log_probs, y, axis=-1)
    grad = np.exp(log_probs)
    np.put_along_axis(grad, y, np.expm1(label_log_probs), axis=-1)
    if reduction == "mean":
        grad = grad / grad.dtype.type(max(values_count(grad), 1))
    values = -label_log_probs[..., 0]
    if keep is not None:
        full_values, full_grad = np.zeros(logits.shape[:-1], values.dtype), np.zeros_like(logits)
        full_values[keep], full_grad[keep] = values, grad
        values, grad = full_values, full_grad
    return values, grad


class TestRowChunks:
    """cross_entropy, its gradient and the fused pair run a chunk of rows at a time (kdcore/_chunks.py)."""

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("masked", [False, True])
    @pytest.mark.parametrize("threads", [1, 2])
    def test_bit_identical_to_the_whole_batch(self, rng, dtype, masked, threads):
        from kdcore import cross_entropy_and_grad, num_threads

        # 64 × 5000 is cut into 16 chunks of 4 rows on one thread, and spread over 2 threads with 2.
        logits = (rng.normal(size=(8, 8, 5000)) * 4).astype(dtype)
        labels = rng.integers(0, 5000, size=(8, 8))
        keep = rng.random((8, 8)) < 0.6 if masked else None
        mask = None if keep is None else keep
        for reduction in ("none", "mean"):
            values, grad = whole_batch(logits, labels, keep, reduction)
            with num_threads(threads):
                fused = cross_entropy_and_grad(logits, labels, reduction, mask=mask)
                alone = (
                    cross_entropy(logits, labels, reduction, mask=mask),
                    cross_entropy_grad(logits, labels, reduction, mask=mask),
                )
            for value, gradient in (fused, alone):
                assert gradient.dtype == dtype and np.array_equal(gradient, grad)
                if reduction == "none":
                    assert np.array_equal(value, values)
                else:  # a sum of per-row values: NumPy's pairwise order, as before
                    kept = values if keep is None else values[keep]
                    assert value == np.sum(kept, dtype=dtype) / dtype(kept.size)

    def test_a_row_does_not_depend_on_its_neighbours(self, rng):
        logits, labels = rng.normal(size=(40, 3000)) * 3, rng.integers(0, 3000, size=40)
        together = cross_entropy_grad(logits, labels, "none")
        for row in (0, 17, 39):
            assert np.array_equal(together[row], cross_entropy_grad(logits[row], labels[row], "none"))

    @pytest.mark.parametrize("masked", [False, True])
    def test_peak_memory_within_two_inputs(self, rng, masked):
        # issue 10's rule: the peak of everything allocated, the returned gradient included, ≤ 2 inputs.
        import tracemalloc

        from kdcore import cross_entropy_and_grad

        logits = rng.normal(size=(256, 32000)).astype(np.float32)
        labels = rng.integers(0, 32000, size=256)
        mask = rng.random(256) < 0.5 if masked else None
        cross_entropy_and_grad(logits[:2], labels[:2])  # first-call set-up is not the loss's memory
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            value, grad = cross_entropy_and_grad(logits, labels, mask=mask)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert grad.shape == logits.shape and np.isfinite(value)
        assert peak <= 2 * logits.nbytes, peak / logits.nbytes
