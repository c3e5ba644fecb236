"""reverse_kl_divergence: KL(student ‖ teacher), its derivatives and its Hessian.

Each derivative is checked three ways: finite differences (kdcore.gradcheck, hypothesis inputs), the closed
forms of docs/divergences.md written out again with SciPy, and the 50-digit oracle
(tests/test_family_accuracy.py). PyTorch autograd: tests/test_torch_family.py.
"""

import warnings

import numpy as np
import pytest
import scipy.special
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import TEMPERATURE, logit_pairs
from tolerances import FD_RTOL, FLOAT32_VS_FLOAT64_RTOL

from kdcore import (
    gradcheck,
    kl_divergence,
    kl_divergence_hessian,
    reverse_kl_divergence,
    reverse_kl_divergence_grad,
    reverse_kl_divergence_hessian,
)

F64 = np.dtype(np.float64)
WRT = ("student", "teacher", "temperature")


def probs(logits, T):
    return scipy.special.softmax(np.asarray(logits) / T, axis=-1)


class TestValue:
    @given(pair=logit_pairs(), T=TEMPERATURE)
    def test_textbook_formula(self, pair, T):
        student, teacher = pair
        expected = scipy.special.rel_entr(probs(student, T), probs(teacher, T)).sum(axis=-1)
        np.testing.assert_allclose(
            reverse_kl_divergence(student, teacher, T, "none"), expected, rtol=1e-9, atol=1e-12
        )

    @given(pair=logit_pairs(), T=TEMPERATURE)
    def test_is_the_forward_kl_with_arguments_exchanged(self, pair, T):
        student, teacher = pair
        np.testing.assert_array_equal(
            reverse_kl_divergence(student, teacher, T, "none"), kl_divergence(teacher, student, T, "none")
        )

    def test_identical_inputs_give_exactly_zero(self, rng):
        z = rng.normal(size=(4, 7)) * 10
        assert (reverse_kl_divergence(z, z, 3.0, "none") == 0).all()
        for wrt in WRT:
            assert (reverse_kl_divergence_grad(z, z, 3.0, "none", wrt) == 0).all()

    def test_mode_seeking_versus_mass_covering(self):
        # A teacher with two equal modes; a student on one of them. Reverse KL charges log 2 (the student
        # misses nothing it predicts); forward KL is infinite (the student rules out a mode the teacher has).
        teacher, student = np.array([0.0, 0.0, -np.inf]), np.array([0.0, -np.inf, -np.inf])
        assert reverse_kl_divergence(student, teacher) == pytest.approx(np.log(2), rel=1e-15)
        assert kl_divergence(student, teacher) == np.inf

    def test_teacher_masks_a_class_the_student_predicts(self):
        z, v = np.array([0.0, 1.0, 0.5]), np.array([0.0, -np.inf, 0.5])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert reverse_kl_divergence(z, v) == np.inf
            assert np.isnan(reverse_kl_divergence_grad(z, v)).all()
            assert np.isnan(reverse_kl_divergence_grad(z, v, wrt="temperature"))
            teacher_grad = reverse_kl_divergence_grad(z, v, wrt="teacher")
        np.testing.assert_allclose(teacher_grad, probs(v, 1.0) - probs(z, 1.0), rtol=1e-15)

    def test_nan_stays_in_its_sample(self, rng):
        z, v = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
        z[1, 0] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            values = reverse_kl_divergence(z, v, 1.0, "none")
            hessian = reverse_kl_divergence_hessian(z, v)
        assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all()
        assert np.isnan(hessian[1]).all() and np.isfinite(hessian[[0, 2]]).all()


class TestDerivatives:
    @pytest.mark.parametrize("wrt", ["student", "teacher"])
    @given(
        pair=logit_pairs(max_batch=3, max_classes=8),
        T=TEMPERATURE,
        reduction=st.sampled_from(["sum", "mean"]),
    )
    def test_finite_differences(self, wrt, pair, T, reduction):
        student, teacher = pair
        if wrt == "student":
            report = gradcheck.check_gradient(
                lambda z: reverse_kl_divergence(z, teacher, T, reduction),
                lambda z: reverse_kl_divergence_grad(z, teacher, T, reduction),
                student,
                rtol=FD_RTOL[F64],
            )
        else:
            report = gradcheck.check_gradient(
                lambda v: reverse_kl_divergence(student, v, T, reduction),
                lambda v: reverse_kl_divergence_grad(student, v, T, reduction, "teacher"),
                teacher,
                rtol=FD_RTOL[F64],
            )
        assert report.passed, report

    @given(pair=logit_pairs(max_batch=3, max_classes=8), T=TEMPERATURE)
    def test_temperature_finite_differences(self, pair, T):
        student, teacher = pair
        report = gradcheck.check_gradient(
            lambda t: reverse_kl_divergence(student, teacher, float(t[0]), "sum"),
            lambda t: np.array(
                [reverse_kl_divergence_grad(student, teacher, float(t[0]), "sum", "temperature")]
            ),
            np.array([T]),
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(pair=logit_pairs(), T=TEMPERATURE)
    def test_closed_forms(self, pair, T):
        # ∂R/∂z = p ⊙ (log p − log q − R)/T, ∂R/∂v = (q − p)/T (docs/divergences.md, Reverse KL).
        student, teacher = pair
        p, q = probs(student, T), probs(teacher, T)
        r = np.log(p) - np.log(q)
        reverse = (p * r).sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(
            reverse_kl_divergence_grad(student, teacher, T, "none"),
            p * (r - reverse) / T,
            rtol=1e-8,
            atol=1e-12,
        )
        np.testing.assert_allclose(
            reverse_kl_divergence_grad(student, teacher, T, "none", "teacher"),
            (q - p) / T,
            rtol=1e-9,
            atol=1e-14,
        )

    @given(pair=logit_pairs(max_batch=1, max_classes=6), T=TEMPERATURE)
    def test_hessian_is_the_jacobian_of_the_gradient(self, pair, T):
        student, teacher = pair
        student, teacher = (
            student.reshape(-1, student.shape[-1])[0],
            teacher.reshape(-1, teacher.shape[-1])[0],
        )
        hessian = reverse_kl_divergence_hessian(student, teacher, T)
        for row in range(student.size):
            report = gradcheck.check_gradient(
                lambda z, row=row: reverse_kl_divergence_grad(z, teacher, T)[row],
                lambda z, row=row: hessian[row],
                student,
                rtol=FD_RTOL[F64],
            )
            assert report.passed, report

    @given(pair=logit_pairs(max_batch=3, max_classes=8), T=TEMPERATURE)
    @example(pair=(np.array([1.0, -3.0]), np.array([0.0, -3.0])), T=1.0)
    def test_hessian_symmetric_with_ones_in_null_space(self, pair, T):
        hessian = reverse_kl_divergence_hessian(*pair, T)
        np.testing.assert_allclose(hessian, np.swapaxes(hessian, -1, -2), rtol=0, atol=1e-15 / T**2)
        # Each entry is computed on its own, accurate to a few tens of ulps (well inside the 1e-12
        # contract), so a row sums to zero only up to those entries' rounding: the @example row sums to
        # 1.1e-14 of the largest entry. 1e-13 still fails a Hessian that misses the null space.
        scale = np.abs(hessian).max(axis=(-1, -2), keepdims=True)[..., 0]
        assert (np.abs(hessian.sum(axis=-1)) <= 1e-13 * scale + 1e-300).all()

    def test_hessian_at_the_teacher_is_the_forward_kl_hessian(self, rng):
        # At p = q the gradient u vanishes and only the softmax Jacobian is left.
        z = rng.normal(size=(2, 5))
        np.testing.assert_allclose(
            reverse_kl_divergence_hessian(z, z, 1.7), kl_divergence_hessian(z, z, 1.7), rtol=1e-15
        )

    def test_hessian_can_be_indefinite(self):
        # Reverse KL is not convex in the student logits: far from a peaked teacher, the Hessian has a
        # negative eigenvalue (the forward KL's is always positive semi-definite).
        z, v = np.array([3.0, 0.0, -3.0]), np.array([-5.0, 0.0, 5.0])
        assert np.linalg.eigvalsh(reverse_kl_divergence_hessian(z, v)).min() < -1e-3
        assert np.linalg.eigvalsh(kl_divergence_hessian(z, v)).min() > -1e-15


class TestDtypesAndValidation:
    def test_float32_stays_float32_and_agrees(self, rng):
        z, v = (
            (rng.normal(size=(16, 10)) * 3).astype(np.float32),
            (rng.normal(size=(16, 10)) * 3).astype(np.float32),
        )
        for T in (0.5, 4.0):
            assert reverse_kl_divergence(z, v, T).dtype == np.float32
            assert reverse_kl_divergence_hessian(z, v, T).dtype == np.float32
            for wrt in WRT:
                g32 = reverse_kl_divergence_grad(z, v, T, "none", wrt)
                g64 = reverse_kl_divergence_grad(z.astype(float), v.astype(float), T, "none", wrt)
                assert g32.dtype == np.float32
                scale = np.abs(g64).max(axis=-1, keepdims=True) if g64.ndim > 1 else np.abs(g64)
                assert (np.abs(g32 - g64) <= FLOAT32_VS_FLOAT64_RTOL * scale).all(), (T, wrt)

    def test_bad_input_names_the_parameter(self):
        with pytest.raises(ValueError, match=r"wrt must be one of .* got wrt='logits'"):
            reverse_kl_divergence_grad(np.zeros(3), np.zeros(3), wrt="logits")
        with pytest.raises(ValueError, match="T must be a positive finite number"):
            reverse_kl_divergence(np.zeros(3), np.zeros(3), T=0.0)
        with pytest.raises(ValueError, match="same shape"):
            reverse_kl_divergence_hessian(np.zeros(3), np.zeros(4))
