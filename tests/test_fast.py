"""The fast soft-loss kernel (kdcore/_fast.py), the fused *_and_grad functions, and the quantities it exposes."""

import numpy as np
import pytest

import kdcore
from kdcore import _certificate, _fast
from kdcore._match import match

FUSED = [
    (kdcore.kl_divergence_and_grad, kdcore.kl_divergence, kdcore.kl_divergence_grad),
    (kdcore.soft_cross_entropy_and_grad, kdcore.soft_cross_entropy, kdcore.soft_cross_entropy_grad),
]


class TestAndGrad:
    @pytest.mark.parametrize("fused, value, grad", FUSED)
    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_equals_the_separate_calls(self, rng, fused, value, grad, reduction, dtype):
        z = (rng.normal(size=(2, 70, 30)) * 3).astype(dtype)
        v = (rng.normal(size=(2, 70, 30)) * 3).astype(dtype)
        v[0, 0] = z[0, 0] + 1e-9  # a near-equal row: careful path inside a fast batch
        loss, gradient = fused(z, v, 2.0, reduction)
        assert loss.dtype == dtype and gradient.dtype == dtype and gradient.shape == z.shape
        np.testing.assert_array_equal(loss, value(z, v, 2.0, reduction))
        np.testing.assert_array_equal(gradient, grad(z, v, 2.0, reduction))

    def test_cross_entropy_and_grad(self, rng):
        logits, labels = rng.normal(size=(5, 7)) * 4, rng.integers(0, 7, size=5)
        for reduction in ("mean", "sum", "none"):
            loss, grad = kdcore.cross_entropy_and_grad(logits, labels, reduction)
            np.testing.assert_array_equal(loss, kdcore.cross_entropy(logits, labels, reduction))
            np.testing.assert_array_equal(grad, kdcore.cross_entropy_grad(logits, labels, reduction))

    @pytest.mark.parametrize("centered", [True, False])
    def test_logit_mse_and_grad(self, rng, centered):
        z, v = rng.normal(size=(4, 9)) + 5, rng.normal(size=(4, 9))
        for reduction in ("mean", "sum", "none"):
            loss, grad = kdcore.logit_mse_and_grad(z, v, centered, reduction)
            np.testing.assert_array_equal(loss, kdcore.logit_mse(z, v, centered, reduction))
            np.testing.assert_allclose(grad, kdcore.logit_mse_grad(z, v, centered, reduction), rtol=1e-15)

    def test_bad_input_is_named(self):
        with pytest.raises(ValueError, match="reduction"):
            kdcore.kl_divergence_and_grad([0.0, 1.0], [1.0, 0.0], reduction="batchmean")
        with pytest.raises(ValueError, match="T"):
            kdcore.soft_cross_entropy_and_grad([0.0, 1.0], [1.0, 0.0], T=-1.0)


class TestSoftRows:
    def test_mixed_batch_rows_equal_single_rows(self, rng):
        # each row's path (fast or careful) depends on the row alone, so a row's numbers do not depend on
        # its neighbours, the chunking or the thread count
        z, v = rng.normal(size=(300, 400)) * 3, rng.normal(size=(300, 400)) * 3
        v[::7] = z[::7] + 1e-8 * rng.normal(size=z[::7].shape)  # near-equal: careful
        z[1::11] += 1e7  # large offset: refused by the certificate
        flags = np.zeros(300, dtype=bool)
        values, grad = _fast.soft_rows(z, v, 2.0, value="kl", grad_scale=0.5, certified_out=flags)
        assert 0 < flags.mean() < 1
        for i in range(0, 300, 13):
            row_value, row_grad = _fast.soft_rows(z[i], v[i], 2.0, value="kl", grad_scale=0.5)
            assert row_value == values[i]
            np.testing.assert_array_equal(row_grad, grad[i])

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("threads", [1, 2])
    def test_long_rows_equal_single_rows(self, rng, dtype, threads):
        # 33 rows of 32 000 classes are cut into chunks of a few rows: a row alone (its own one-row chunk)
        # must get the same bits as in a chunk of several — NumPy's einsum sums a lone row in another order
        z = (rng.normal(size=(33, 32000)) * 2).astype(dtype)
        v = (rng.normal(size=(33, 32000)) * 2).astype(dtype)
        with kdcore.num_threads(threads):
            values, grad = _fast.soft_rows(z, v, 2.0, value="kl", grad_scale=0.5)
        for i in range(33):
            row_value, row_grad = _fast.soft_rows(z[i : i + 1], v[i : i + 1], 2.0, value="kl", grad_scale=0.5)
            assert row_value[0] == values[i], i
            np.testing.assert_array_equal(row_grad[0], grad[i])

    def test_masked_nan_and_infinite_rows_stay_in_their_rows(self):
        z = np.array([[0.0, 1.0, 2.0], [0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [1.0, 2.0, 0.0]])
        v = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [1.0, -np.inf, 0.0]])
        values, grad = _fast.soft_rows(z, v, 1.0, value="kl", grad_scale=1.0)
        assert (
            np.isfinite(values[0]) and values[1] == np.inf and np.isnan(values[2]) and np.isfinite(values[3])
        )
        assert np.isfinite(grad[[0, 1, 3]]).all() and np.isnan(grad[2]).all()

    def test_empty_batch(self):
        values, grad = _fast.soft_rows(np.zeros((0, 5)), np.zeros((0, 5)), 1.0, value="kl", grad_scale=1.0)
        assert values.shape == (0,) and grad.shape == (0, 5)


class TestFastQuantities:
    def test_match_the_careful_algorithm_where_certified(self, rng):
        z, v = rng.normal(size=(3, 4, 50)) * 3, rng.normal(size=(3, 4, 50)) * 3
        fast = _fast.fast_quantities(z, v, 2.0)
        assert fast.certified.shape == (3, 4, 1) and fast.certified.all()
        careful = match(z.reshape(-1, 50), v.reshape(-1, 50), 2.0)
        for ours, theirs in [
            (fast.teacher_probs, careful.teacher_probs),
            (fast.teacher_log_probs, careful.teacher_log_probs),
            (fast.log_ratio, careful.log_ratio),
            (fast.kl, careful.kl),
            (fast.teacher_probs * fast.probs_ratio_minus_one, careful.probs_diff()),
        ]:
            np.testing.assert_allclose(ours.reshape(theirs.shape), theirs, rtol=1e-13, atol=1e-15)

    def test_uncertified_rows_are_flagged(self, rng):
        z = rng.normal(size=(2, 20))
        v = z.copy()
        v[1] += 1e-10
        assert not _fast.fast_quantities(z, v, 1.0).certified.any()


class TestTransposedKernel:
    """Up to TRANSPOSED_MAX_CLASSES classes the kernel works on transposed chunks (sequential sums)."""

    def test_sequential_sums_stay_within_the_certificates_rounding_count(self):
        for n in range(1, _fast.TRANSPOSED_MAX_CLASSES + 1):
            assert n - 1 <= _certificate.summation_roundings(n)

    @pytest.mark.parametrize("n", [2, 10, _fast.TRANSPOSED_MAX_CLASSES, _fast.TRANSPOSED_MAX_CLASSES + 1])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_a_row_gives_the_same_numbers_alone_and_in_a_batch(self, rng, n, dtype):
        # NumPy sums a single column pairwise and several sequentially: a one-row chunk is worked twice over
        z, v = (rng.normal(size=(40, n)) * 3).astype(dtype), (rng.normal(size=(40, n)) * 3).astype(dtype)
        values, grad = _fast.soft_rows(z, v, 2.0, value="soft_cross_entropy", grad_scale=0.5)
        for i in (0, 1, 23, 39):
            row_value, row_grad = _fast.soft_rows(z[i], v[i], 2.0, value="soft_cross_entropy", grad_scale=0.5)
            assert row_value == values[i]
            np.testing.assert_array_equal(row_grad, grad[i])
            pair_value, pair_grad = _fast.soft_rows(
                z[i : i + 2], v[i : i + 2], 2.0, value="soft_cross_entropy", grad_scale=0.5
            )
            assert pair_value[0] == values[i]
            np.testing.assert_array_equal(pair_grad[0], grad[i])

    @pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
    def test_both_layouts_agree(self, rng, monkeypatch, dtype, rtol):
        z, v = (rng.normal(size=(64, 12)) * 3).astype(dtype), (rng.normal(size=(64, 12)) * 3).astype(dtype)
        flags = np.zeros(64, dtype=bool)
        transposed = _fast.soft_rows(z, v, 2.0, value="kl", grad_scale=1.0, certified_out=flags)
        assert flags.all()
        monkeypatch.setattr(_fast, "TRANSPOSED_MAX_CLASSES", 0)
        by_rows = _fast.soft_rows(z, v, 2.0, value="kl", grad_scale=1.0, certified_out=flags)
        assert flags.all()
        for ours, theirs in zip(transposed, by_rows, strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())
