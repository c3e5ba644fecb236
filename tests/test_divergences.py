"""soft_cross_entropy, kl_divergence, their derivatives and the Hessian.

Each derivative is checked three ways: against finite differences (kdcore.gradcheck, hypothesis inputs),
against the closed form of the docs (written out again here with plain NumPy/SciPy), and against the
50-digit mpmath oracle (tests/test_accuracy.py).
"""

import warnings

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from strategies import TEMPERATURE, logit_pairs
from tolerances import FD_RTOL, FLOAT32_VS_FLOAT64_RTOL

from kdcore import (
    gradcheck,
    kl_divergence,
    kl_divergence_grad,
    kl_divergence_hessian,
    logit_mse,
    logit_mse_grad,
    soft_cross_entropy,
    soft_cross_entropy_grad,
)

F64 = np.dtype(np.float64)
LOSSES = {"kl": (kl_divergence, kl_divergence_grad), "soft_ce": (soft_cross_entropy, soft_cross_entropy_grad)}


def scipy_probs(logits, T):
    return scipy.special.softmax(np.asarray(logits) / T, axis=-1)


def textbook_kl(student, teacher, T):
    """The closed form, the way a textbook writes it (fine on ordinary inputs, inaccurate near p = q)."""
    return scipy.special.rel_entr(scipy_probs(teacher, T), scipy_probs(student, T)).sum(axis=-1)


def textbook_entropy(teacher, T):
    return scipy.special.entr(scipy_probs(teacher, T)).sum(axis=-1)


def n_samples(logits):
    return int(np.prod(logits.shape[:-1]))


class TestValues:
    @given(logit_pairs(), TEMPERATURE)
    def test_kl_matches_textbook_formula(self, pair, T):
        student, teacher = pair
        expected = textbook_kl(student, teacher, T)
        # The textbook sum has absolute error ~1e-16·(size of log q − log p); kdcore is more accurate.
        np.testing.assert_allclose(
            kl_divergence(student, teacher, T, reduction="none"), expected, rtol=1e-9, atol=1e-13
        )

    @given(logit_pairs(), TEMPERATURE)
    def test_cross_entropy_minus_kl_is_teacher_entropy(self, pair, T):
        student, teacher = pair
        difference = soft_cross_entropy(student, teacher, T, "none") - kl_divergence(
            student, teacher, T, "none"
        )
        np.testing.assert_allclose(difference, textbook_entropy(teacher, T), rtol=1e-12, atol=1e-13)

    @given(logit_pairs(), TEMPERATURE)
    def test_kl_non_negative_and_zero_for_identical(self, pair, T):
        student, teacher = pair
        assert (kl_divergence(student, teacher, T, "none") >= 0).all()
        assert (kl_divergence(student, student, T, "none") == 0).all()  # exactly

    @given(logit_pairs(), TEMPERATURE, st.integers(-40, 40))
    def test_shift_invariance(self, pair, T, shift):
        student, teacher = pair
        # Shifting by an integer is exact for logits that are multiples of 2^-40, so rounding plays no part.
        student, teacher = np.round(student * 2**40) / 2**40, np.round(teacher * 2**40) / 2**40
        base = kl_divergence(student, teacher, T, "none")
        np.testing.assert_allclose(
            kl_divergence(student + shift, teacher, T, "none"), base, rtol=1e-12, atol=1e-300
        )
        np.testing.assert_allclose(
            kl_divergence(student, teacher - shift, T, "none"), base, rtol=1e-12, atol=1e-300
        )

    def test_kl_positive_only_where_different(self, rng):
        z = rng.normal(size=(4, 6))
        v = z.copy()
        v[2, 3] += 1e-6
        values = kl_divergence(z, v, reduction="none")
        assert values[2] > 0 and np.all(values[[0, 1, 3]] == 0)

    @pytest.mark.parametrize("loss", LOSSES)
    def test_reductions(self, loss, rng):
        value = LOSSES[loss][0]
        z, v = rng.normal(size=(2, 3, 7)), rng.normal(size=(2, 3, 7))
        per_sample = value(z, v, 2.0, "none")
        assert per_sample.shape == (2, 3)
        assert value(z, v, 2.0, "sum") == pytest.approx(per_sample.sum(), rel=1e-14)
        # "mean" is PyTorch's "batchmean": over samples (6), never over classes (7) or elements (42).
        assert value(z, v, 2.0, "mean") == pytest.approx(per_sample.sum() / 6, rel=1e-14)
        assert value(z[0, 0], v[0, 0], 2.0) == pytest.approx(per_sample[0, 0], rel=1e-14)


class TestStudentGradient:
    @pytest.mark.parametrize("loss", LOSSES)
    @given(
        pair=logit_pairs(max_batch=3, max_classes=8),
        T=TEMPERATURE,
        reduction=st.sampled_from(["sum", "mean"]),
    )
    def test_finite_differences(self, loss, pair, T, reduction):
        value, grad = LOSSES[loss]
        student, teacher = pair
        report = gradcheck.check_gradient(
            lambda z: value(z, teacher, T, reduction),
            lambda z: grad(z, teacher, T, reduction),
            student,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @pytest.mark.parametrize("loss", LOSSES)
    @given(pair=logit_pairs(), T=TEMPERATURE)
    def test_closed_form(self, loss, pair, T):
        student, teacher = pair
        expected = (scipy_probs(student, T) - scipy_probs(teacher, T)) / T
        np.testing.assert_allclose(
            LOSSES[loss][1](student, teacher, T, "none"), expected, rtol=1e-10, atol=1e-14
        )

    @given(pair=logit_pairs(), T=TEMPERATURE)
    def test_rows_sum_to_zero_and_mean_divides_by_samples(self, pair, T):
        student, teacher = pair
        per_sample = kl_divergence_grad(student, teacher, T, "none")
        # Σ(p − q) = 0 exactly; the computed p and q (each summing to 1) carry a few ulps of rounding each.
        bound = 8 * np.finfo(np.float64).eps * (np.abs(per_sample).sum(axis=-1) + 1 / T)
        assert (np.abs(per_sample.sum(axis=-1)) <= bound).all()
        np.testing.assert_array_equal(kl_divergence_grad(student, teacher, T, "sum"), per_sample)
        np.testing.assert_allclose(
            kl_divergence_grad(student, teacher, T, "mean"), per_sample / n_samples(student), rtol=1e-15
        )

    def test_hinton_notation_gives_the_same_sign(self):
        # Hinton et al. write ∂C/∂z_i = (q_i − p_i)/T with q the *student's* probabilities: rename and compare.
        z, v, T = np.array([2.0, -1.0, 0.5]), np.array([0.0, 1.0, 0.0]), 3.0
        hinton_q, hinton_p = scipy_probs(z, T), scipy_probs(v, T)
        np.testing.assert_allclose(kl_divergence_grad(z, v, T), (hinton_q - hinton_p) / T, rtol=1e-14)


class TestTeacherGradient:
    @pytest.mark.parametrize("loss", LOSSES)
    @given(
        pair=logit_pairs(max_batch=3, max_classes=8),
        T=TEMPERATURE,
        reduction=st.sampled_from(["sum", "mean"]),
    )
    def test_finite_differences(self, loss, pair, T, reduction):
        value, grad = LOSSES[loss]
        student, teacher = pair
        report = gradcheck.check_gradient(
            lambda v: value(student, v, T, reduction),
            lambda v: grad(student, v, T, reduction, wrt="teacher"),
            teacher,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(pair=logit_pairs(), T=TEMPERATURE)
    def test_closed_forms(self, pair, T):
        student, teacher = pair
        q, p = scipy_probs(teacher, T), scipy_probs(student, T)
        log_q, log_p = np.log(q), np.log(p)
        r = log_q - log_p
        kl_expected = q * (r - (q * r).sum(axis=-1, keepdims=True)) / T
        ce_expected = -q * (log_p - (q * log_p).sum(axis=-1, keepdims=True)) / T
        np.testing.assert_allclose(
            kl_divergence_grad(student, teacher, T, "none", "teacher"), kl_expected, rtol=1e-8, atol=1e-12
        )
        np.testing.assert_allclose(
            soft_cross_entropy_grad(student, teacher, T, "none", "teacher"),
            ce_expected,
            rtol=1e-8,
            atol=1e-12,
        )


class TestTemperatureGradient:
    @pytest.mark.parametrize("loss", LOSSES)
    @given(
        pair=logit_pairs(max_batch=3, max_classes=8),
        T=TEMPERATURE,
        reduction=st.sampled_from(["none", "sum", "mean"]),
    )
    def test_finite_differences(self, loss, pair, T, reduction):
        value, grad = LOSSES[loss]
        student, teacher = pair
        analytic = grad(student, teacher, T, reduction, wrt="temperature")
        assert np.shape(analytic) == np.shape(value(student, teacher, T, reduction))
        # One scalar function of T per reported value: differentiate each (sample, or the reduced loss).
        flat = np.ravel(analytic)
        for index in range(flat.size):
            report = gradcheck.check_gradient(
                lambda t, index=index: np.ravel(value(student, teacher, float(t[0]), reduction))[index],
                lambda t, index=index: np.array(
                    [np.ravel(grad(student, teacher, float(t[0]), reduction, "temperature"))[index]]
                ),
                np.array([T]),
                rtol=FD_RTOL[F64],
            )
            assert report.passed, report

    @given(pair=logit_pairs(), T=TEMPERATURE)
    def test_closed_form_chain_rule(self, pair, T):
        # ∂L/∂T = −(1/T)·Σ_j [∂L/∂a_j·a_j + ∂L/∂b_j·b_j] with a = z/T, b = v/T (the docs' derivation).
        student, teacher = pair
        p, q = scipy_probs(student, T), scipy_probs(teacher, T)
        a, b = student / T, teacher / T
        r = np.log(q) - np.log(p)
        dkl_db = q * (r - (q * r).sum(axis=-1, keepdims=True))
        expected = -((p - q) * a + dkl_db * b).sum(axis=-1) / T
        np.testing.assert_allclose(
            kl_divergence_grad(student, teacher, T, "none", "temperature"), expected, rtol=1e-6, atol=1e-9
        )

    def test_entropy_part_is_teacher_variance(self, rng):
        z, v, T = rng.normal(size=5), rng.normal(size=5), 1.5
        q = scipy_probs(v, T)
        variance = (q * (v / T) ** 2).sum() - ((q * v / T).sum()) ** 2
        ce_minus_kl = soft_cross_entropy_grad(z, v, T, wrt="temperature") - kl_divergence_grad(
            z, v, T, wrt="temperature"
        )
        assert ce_minus_kl == pytest.approx(variance / T, rel=1e-10)


class TestHessian:
    @given(pair=logit_pairs(max_batch=3, max_classes=8), T=TEMPERATURE)
    def test_finite_differences_of_the_gradient(self, pair, T):
        student, teacher = pair
        report = gradcheck.check_hessian(
            lambda z: kl_divergence_grad(z, teacher, T, "none"),
            lambda z: kl_divergence_hessian(z, teacher, T),
            student,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(pair=logit_pairs(), T=TEMPERATURE)
    def test_symmetric_psd_with_ones_in_null_space(self, pair, T):
        student, teacher = pair
        hessian = kl_divergence_hessian(student, teacher, T)
        assert hessian.shape == student.shape + student.shape[-1:]
        np.testing.assert_allclose(hessian, np.swapaxes(hessian, -1, -2), rtol=0, atol=0)
        np.testing.assert_allclose(hessian @ np.ones(student.shape[-1]), 0.0, atol=1e-15 / T**2)
        assert (np.linalg.eigvalsh(hessian) >= -1e-14 / T**2).all()

    def test_closed_form(self):
        p = scipy_probs(np.array([1.0, 0.0, -1.0]), 2.0)
        expected = (np.diag(p) - np.outer(p, p)) / 4.0
        np.testing.assert_allclose(
            kl_divergence_hessian([1.0, 0.0, -1.0], [0.0, 0.0, 5.0], 2.0), expected, rtol=1e-14
        )


class TestHighTemperatureLimit:
    def test_value_and_gradient_converge_at_rate_one_over_T(self, rng):
        # General case: non-zero-mean logits. T²·KL → ½·logit_mse(centred), T²·∂KL/∂z → ½·logit_mse_grad.
        z, v = rng.normal(size=10) + 3.0, rng.normal(size=10) - 2.0
        errors = []
        for T in (1e2, 1e3, 1e4):
            value_error = abs(T**2 * kl_divergence(z, v, T) - 0.5 * logit_mse(z, v)) / (0.5 * logit_mse(z, v))
            grad_error = np.abs(T**2 * kl_divergence_grad(z, v, T) - 0.5 * logit_mse_grad(z, v)).max()
            errors.append((value_error, grad_error / np.abs(0.5 * logit_mse_grad(z, v)).max()))
        errors = np.array(errors)
        # O(1/T): ten times the temperature, a tenth of the error (within a factor 2 of that).
        ratios = errors[:-1] / errors[1:]
        assert ((ratios > 5) & (ratios < 20)).all(), errors

    def test_uncentred_formula_needs_zero_mean_logits(self, rng):
        z, v, T = rng.normal(size=10) + 3.0, rng.normal(size=10) - 2.0, 1e4
        n = z.size
        paper = (z - v) / (n * T**2)  # the paper's approximation, right only for zero-mean logits
        exact = kl_divergence_grad(z, v, T)
        assert np.abs(exact - paper).max() > 0.1 * np.abs(paper).max()
        zc, vc = z - z.mean(), v - v.mean()
        np.testing.assert_allclose(kl_divergence_grad(zc, vc, T), (zc - vc) / (n * T**2), rtol=1e-3)


class TestMasksAndNonFinite:
    def test_class_masked_in_both_is_as_if_removed(self, rng):
        z, v = rng.normal(size=6), rng.normal(size=6)
        zm, vm = z.copy(), v.copy()
        zm[2] = vm[2] = -np.inf
        keep = [0, 1, 3, 4, 5]
        for loss, (value, grad) in LOSSES.items():
            assert value(zm, vm, 1.5) == pytest.approx(value(z[keep], v[keep], 1.5), rel=1e-14), loss
            for wrt in ("student", "teacher"):
                g = grad(zm, vm, 1.5, wrt=wrt)
                assert g[2] == 0
                np.testing.assert_allclose(
                    g[keep], grad(z[keep], v[keep], 1.5, wrt=wrt), rtol=1e-13, atol=1e-17
                )
            assert grad(zm, vm, 1.5, wrt="temperature") == pytest.approx(
                grad(z[keep], v[keep], 1.5, wrt="temperature"), rel=1e-12
            )

    def test_class_masked_by_teacher_only(self, rng):
        z, v, T = rng.normal(size=5), rng.normal(size=5), 2.0
        v[1] = -np.inf
        q = scipy_probs(v, T)
        log_p = scipy.special.log_softmax(z / T)
        keep = q > 0
        expected = np.sum(q[keep] * (np.log(q[keep]) - log_p[keep]))
        assert kl_divergence(z, v, T) == pytest.approx(expected, rel=1e-13)
        np.testing.assert_allclose(kl_divergence_grad(z, v, T), (np.exp(log_p) - q) / T, rtol=1e-13)
        report = gradcheck.check_gradient(
            lambda t: kl_divergence(z, v, float(t[0])),
            lambda t: np.array([kl_divergence_grad(z, v, float(t[0]), wrt="temperature")]),
            np.array([T]),
        )
        assert report.passed, report
        report = gradcheck.check_gradient(
            lambda s: kl_divergence(s, v, T), lambda s: kl_divergence_grad(s, v, T), z
        )
        assert report.passed, report

    def test_student_masks_a_class_the_teacher_expects(self):
        z, v = np.array([0.0, -np.inf, 1.0]), np.array([0.0, 0.0, 1.0])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert kl_divergence(z, v) == np.inf
            assert soft_cross_entropy(z, v) == np.inf
            student_grad = kl_divergence_grad(z, v)
            assert np.isnan(kl_divergence_grad(z, v, wrt="teacher")).all()
            assert np.isnan(kl_divergence_grad(z, v, wrt="temperature"))
        np.testing.assert_allclose(student_grad, scipy_probs(z, 1.0) - scipy_probs(v, 1.0), rtol=1e-14)

    def test_nan_stays_in_its_sample(self, rng):
        z, v = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
        clean = {
            wrt: kl_divergence_grad(z, v, 2.0, "none", wrt) for wrt in ("student", "teacher", "temperature")
        }
        z_bad, v_bad = z.copy(), v.copy()
        z_bad[1, 2] = np.nan
        v_bad[3, 0] = np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            values = kl_divergence(z_bad, v_bad, 2.0, "none")
            grads = {wrt: kl_divergence_grad(z_bad, v_bad, 2.0, "none", wrt) for wrt in clean}
            hessian = kl_divergence_hessian(z_bad, v_bad, 2.0)
        assert np.isnan(values[[1, 3]]).all()
        np.testing.assert_array_equal(values[[0, 2]], kl_divergence(z, v, 2.0, "none")[[0, 2]])
        for wrt, grad in grads.items():
            assert np.isnan(grad[[1, 3]]).all()
            np.testing.assert_array_equal(grad[[0, 2]], clean[wrt][[0, 2]])
        assert np.isnan(hessian[[1, 3]]).all() and np.isfinite(hessian[[0, 2]]).all()

    @pytest.mark.parametrize("T", [0.5, 1.0, 1e-3, 1e9])
    def test_no_warning_on_any_finite_input(self, T):
        z = np.array(
            [[1e308, -1e308, 0.0], [-1e308, 1e308, 5.0], [1e300, 1e300, -1e300], [0.0, 1e-320, -1e-320]]
        )
        v = np.array([[-1e308, 1e308, 0.0], [-1e308, 1e308, 4.0], [1e300, -1e300, 1e300], [1e-320, 0.0, 0.0]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for value, grad in LOSSES.values():
                values = value(z, v, T, "none")
                for wrt in ("student", "teacher", "temperature"):
                    grad(z, v, T, "none", wrt)
            kl_divergence_hessian(z, v, T)
        assert not np.isnan(values).any()
        assert (values >= 0).all()


class TestDtypes:
    @pytest.mark.parametrize("loss", LOSSES)
    def test_float32_stays_float32_and_agrees(self, loss, rng):
        value, grad = LOSSES[loss]
        z, v = rng.normal(size=(16, 10)) * 3, rng.normal(size=(16, 10)) * 3
        z32, v32 = z.astype(np.float32), v.astype(np.float32)
        for T in (0.5, 1.0, 4.0, 20.0):
            assert value(z32, v32, T).dtype == np.float32
            for wrt in ("student", "teacher", "temperature"):
                g32 = grad(z32, v32, T, "none", wrt)
                assert g32.dtype == np.float32
                g64 = grad(z32.astype(np.float64), v32.astype(np.float64), T, "none", wrt)
                scale = np.abs(g64).max(axis=-1, keepdims=True) if g64.ndim > 1 else np.abs(g64)
                assert (np.abs(g32 - g64) <= FLOAT32_VS_FLOAT64_RTOL * scale).all(), (loss, T, wrt)
            np.testing.assert_allclose(
                value(z32, v32, T, "none"),
                value(z32.astype(np.float64), v32.astype(np.float64), T, "none"),
                rtol=FLOAT32_VS_FLOAT64_RTOL,
            )

    def test_mixed_and_integer_inputs(self):
        assert kl_divergence(np.zeros(3, np.float32), np.zeros(3)).dtype == np.float64
        assert kl_divergence([1, 2, 3], [3, 2, 1]).dtype == np.float64
        assert kl_divergence_grad(np.zeros(3, np.float16), np.ones(3, np.float16)).dtype == np.float32


class TestValidation:
    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(4,\)"):
            kl_divergence(np.zeros(3), np.zeros(4))

    @pytest.mark.parametrize(
        ("reduction", "error"), [("batchmean", ValueError), ("MEAN", ValueError), (None, TypeError)]
    )
    def test_unknown_reduction(self, reduction, error):
        with pytest.raises(error, match="reduction must be one of"):
            soft_cross_entropy(np.zeros(3), np.zeros(3), reduction=reduction)

    def test_unknown_wrt(self):
        with pytest.raises(ValueError, match=r"wrt must be one of .* got wrt='logits'"):
            kl_divergence_grad(np.zeros(3), np.zeros(3), wrt="logits")

    @pytest.mark.parametrize("T", [0, -2.0, float("nan"), float("inf")])
    def test_bad_temperature(self, T):
        with pytest.raises(ValueError, match="T must be a positive finite number"):
            kl_divergence(np.zeros(3), np.zeros(3), T)

    def test_empty_class_axis(self):
        with pytest.raises(ValueError, match="student_logits has an empty class axis"):
            kl_divergence(np.zeros((2, 0)), np.zeros((2, 0)))

    def test_ragged(self):
        with pytest.raises(ValueError, match="student_logits"):
            kl_divergence([[1.0, 2.0], [1.0]], [[1.0, 2.0], [1.0, 2.0]])

    def test_inputs_not_mutated(self, rng):
        z, v = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
        z[0, 1] = v[0, 1] = -np.inf
        z_copy, v_copy = z.copy(), v.copy()
        for wrt in ("student", "teacher", "temperature"):
            kl_divergence_grad(z, v, 2.0, wrt=wrt)
        np.testing.assert_array_equal(z, z_copy)
        np.testing.assert_array_equal(v, v_copy)


class TestRowChunks:
    """Large batches are computed in row chunks on a thread pool (kdcore/_chunks.py): same numbers."""

    def test_chunked_equals_row_by_row(self, rng):
        z, v = rng.normal(size=(300, 400)) * 3, rng.normal(size=(300, 400)) * 3  # 120 000 elements: chunked
        for wrt in ("student", "teacher", "temperature"):
            batch = kl_divergence_grad(z, v, 2.0, "none", wrt)
            one_by_one = np.stack([kl_divergence_grad(z[i], v[i], 2.0, "none", wrt) for i in range(len(z))])
            np.testing.assert_array_equal(batch, one_by_one)
        np.testing.assert_array_equal(
            soft_cross_entropy(z, v, 2.0, "none"),
            [soft_cross_entropy(z[i], v[i], 2.0) for i in range(len(z))],
        )
