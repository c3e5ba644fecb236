"""Decoupled KD: target_class_kl_divergence (TCKD), non_target_class_kl_divergence (NCKD), decoupled_kd_loss.

Derivatives checked against finite differences (hypothesis inputs), the closed forms of
docs/divergences.md, and the 50-digit oracle (tests/test_family_accuracy.py). PyTorch: test_torch_family.py.
"""

import warnings

import numpy as np
import oracle
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import LOGIT, TEMPERATURE, logit_shapes
from tolerances import FD_RTOL, FLOAT32_VS_FLOAT64_RTOL

import kdcore
from kdcore import (
    decoupled_kd_loss,
    decoupled_kd_loss_grad,
    gradcheck,
    kl_divergence,
    non_target_class_kl_divergence,
    non_target_class_kl_divergence_grad,
    target_class_kl_divergence,
    target_class_kl_divergence_grad,
)

F64 = np.dtype(np.float64)
WRT = ("student", "teacher", "temperature")
PARTS = {
    "tckd": (target_class_kl_divergence, target_class_kl_divergence_grad),
    "nckd": (non_target_class_kl_divergence, non_target_class_kl_divergence_grad),
}


@st.composite
def dkd_inputs(draw, max_classes=8):
    shape = draw(logit_shapes(max_batch=3, max_classes=max_classes))
    student = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    teacher = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    labels = draw(hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, shape[-1] - 1)))
    return student, teacher, labels


def probs(logits, T):
    return scipy.special.softmax(np.asarray(logits, float) / T, axis=-1)


def mdistiller_dkd(student, teacher, labels, alpha, beta, T):
    """mdistiller's dkd_loss (megvii-research/mdistiller), per sample, re-written with NumPy/SciPy."""
    gt = np.eye(student.shape[-1], dtype=bool)[labels]
    p, q = probs(student, T), probs(teacher, T)
    binary_p = np.stack([(p * gt).sum(-1), (p * ~gt).sum(-1)], -1)
    binary_q = np.stack([(q * gt).sum(-1), (q * ~gt).sum(-1)], -1)
    tckd = scipy.special.rel_entr(binary_q, binary_p).sum(-1) * T**2
    q_rest = scipy.special.softmax(teacher / T - 1000.0 * gt, axis=-1)
    log_p_rest = scipy.special.log_softmax(student / T - 1000.0 * gt, axis=-1)
    nckd = (scipy.special.xlogy(q_rest, q_rest) - q_rest * log_p_rest).sum(-1) * T**2
    return alpha * tckd + beta * nckd


class TestValues:
    @given(inputs=dkd_inputs(), T=TEMPERATURE)
    def test_chain_rule_of_kl(self, inputs, T):
        # TCKD + (1 − q_t)·NCKD = KL(q‖p): the decomposition DKD starts from.
        student, teacher, labels = inputs
        q_t = np.take_along_axis(probs(teacher, T), labels[..., None], -1)[..., 0]
        total = target_class_kl_divergence(student, teacher, labels, T, "none") + (1 - q_t) * (
            non_target_class_kl_divergence(student, teacher, labels, T, "none")
        )
        np.testing.assert_allclose(total, kl_divergence(student, teacher, T, "none"), rtol=1e-10, atol=1e-14)

    @pytest.mark.parametrize("T", [1.0, 4.0])
    def test_matches_mdistiller_on_ordinary_logits(self, T, rng):
        z, v, y = rng.normal(size=(6, 10)) * 3, rng.normal(size=(6, 10)) * 3, rng.integers(0, 10, 6)
        np.testing.assert_allclose(
            decoupled_kd_loss(z, v, y, T, 1.0, 8.0, "none"), mdistiller_dkd(z, v, y, 1.0, 8.0, T), rtol=1e-9
        )
        assert decoupled_kd_loss(z, v, y, T) == pytest.approx(
            mdistiller_dkd(z, v, y, 1.0, 8.0, T).mean(), rel=1e-9
        )

    def test_mdistillers_minus_1000_is_no_mask_at_low_temperature(self):
        # mdistiller subtracts 1000 from the *tempered* target logit. At T = 0.01 a target 15 logits above
        # the rest is 1500 above after tempering: the "masked" target keeps almost all of NCKD's mass.
        z, v, y, T = np.array([[15.0, 0.0, 1.0]]), np.array([[15.0, 1.0, 0.0]]), np.array([0]), 0.01
        ours = decoupled_kd_loss(z, v, y, T, 0.0, 1.0, "none")
        assert ours[0] == pytest.approx(T**2 * kl_divergence(z[0, 1:], v[0, 1:], T), rel=1e-14)
        assert ours[0] > 0.9 * T**2 * 100  # the two non-targets swap: KL ≈ 100 at T = 0.01
        assert mdistiller_dkd(z, v, y, 0.0, 1.0, T)[0] < 1e-6 * ours[0]  # the leak hides it completely

    def test_parts_and_weights(self, rng):
        z, v, y, T = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), rng.integers(0, 6, 4), 3.0
        tckd = target_class_kl_divergence(z, v, y, T, "none")
        nckd = non_target_class_kl_divergence(z, v, y, T, "none")
        np.testing.assert_allclose(
            decoupled_kd_loss(z, v, y, T, 0.5, 2.0, "none"), T**2 * (0.5 * tckd + 2.0 * nckd), rtol=1e-14
        )
        np.testing.assert_allclose(
            non_target_class_kl_divergence(z, v, y, T, "none"),
            [kl_divergence(np.delete(z[i], y[i]), np.delete(v[i], y[i]), T) for i in range(4)],
            rtol=1e-14,
        )

    def test_identical_inputs_give_exactly_zero(self, rng):
        z, y = rng.normal(size=(3, 5)) * 4, np.array([0, 2, 4])
        assert (decoupled_kd_loss(z, z, y, reduction="none") == 0).all()
        for wrt in WRT:
            assert (decoupled_kd_loss_grad(z, z, y, reduction="none", wrt=wrt) == 0).all()

    def test_near_equal_where_the_textbook_formula_is_noise(self, rng):
        import oracle

        z, y = rng.normal(size=(1, 10)) * 3, np.array([4])
        v = z + 1e-10 * rng.normal(size=z.shape)
        expected = oracle.target_class_kl_divergence(z, v, y, 1.0)
        assert abs(target_class_kl_divergence(z, v, y, 1.0, "none")[0] - expected[0]) <= 1e-12 * expected[0]
        p, q = probs(z, 1.0)[0], probs(v, 1.0)[0]
        naive = q[4] * np.log(q[4] / p[4]) + (1 - q[4]) * np.log((1 - q[4]) / (1 - p[4]))
        assert abs(naive - expected[0]) > 1e-3 * expected[0]

    def test_masks_nan_and_no_warnings(self, rng):
        z, v, y = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)), np.array([0, 1, 2, 3])
        z[0, 3] = v[0, 3] = -np.inf  # a non-target class masked in both: as if removed
        v[1, 1] = -np.inf  # the teacher masks the target: TCKD = −log p̄
        z[2, 0] = np.nan  # NaN stays in its sample
        z[3, 3] = -np.inf  # the student masks the target the teacher expects: TCKD = +inf
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tckd = target_class_kl_divergence(z, v, y, 2.0, "none")
            grads = {wrt: decoupled_kd_loss_grad(z, v, y, 2.0, reduction="none", wrt=wrt) for wrt in WRT}
        keep = [0, 1, 2, 4]
        assert tckd[0] == pytest.approx(
            float(target_class_kl_divergence(z[0, keep], v[0, keep], 0, 2.0)), rel=1e-14
        )
        p = probs(z[1], 2.0)
        assert tckd[1] == pytest.approx(-np.log1p(-p[1]), rel=1e-14)
        assert np.isnan(tckd[2]) and tckd[3] == np.inf
        for wrt in WRT:
            assert np.isnan(grads[wrt][2]).all() and np.isfinite(grads[wrt][:2]).all()


class TestDerivatives:
    @pytest.mark.parametrize("part", ["tckd", "nckd", "dkd"])
    @pytest.mark.parametrize("wrt", ["student", "teacher"])
    @given(inputs=dkd_inputs(), T=TEMPERATURE, reduction=st.sampled_from(["sum", "mean"]))
    def test_finite_differences(self, part, wrt, inputs, T, reduction):
        student, teacher, labels = inputs
        if part == "dkd":
            value = lambda z, v: decoupled_kd_loss(z, v, labels, T, 1.0, 8.0, reduction)  # noqa: E731
            grad = lambda z, v, w: decoupled_kd_loss_grad(z, v, labels, T, 1.0, 8.0, reduction, w)  # noqa: E731
        else:
            value = lambda z, v: PARTS[part][0](z, v, labels, T, reduction)  # noqa: E731
            grad = lambda z, v, w: PARTS[part][1](z, v, labels, T, reduction, w)  # noqa: E731
        if wrt == "student":
            report = gradcheck.check_gradient(
                lambda z: value(z, teacher), lambda z: grad(z, teacher, "student"), student, rtol=FD_RTOL[F64]
            )
        else:
            report = gradcheck.check_gradient(
                lambda v: value(student, v), lambda v: grad(student, v, "teacher"), teacher, rtol=FD_RTOL[F64]
            )
        assert report.passed, report

    @pytest.mark.parametrize("part", ["tckd", "nckd", "dkd"])
    @given(inputs=dkd_inputs(), T=TEMPERATURE)
    def test_temperature_finite_differences(self, part, inputs, T):
        student, teacher, labels = inputs
        if part == "dkd":
            value = lambda t: decoupled_kd_loss(student, teacher, labels, t, 1.0, 8.0, "sum")  # noqa: E731
            grad = lambda t: decoupled_kd_loss_grad(  # noqa: E731
                student, teacher, labels, t, 1.0, 8.0, "sum", "temperature"
            )
        else:
            value = lambda t: PARTS[part][0](student, teacher, labels, t, "sum")  # noqa: E731
            grad = lambda t: PARTS[part][1](student, teacher, labels, t, "sum", "temperature")  # noqa: E731
        report = gradcheck.check_gradient(
            lambda t: value(float(t[0])),
            lambda t: np.array([grad(float(t[0]))]),
            np.array([T]),
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(inputs=dkd_inputs(), T=TEMPERATURE)
    def test_tckd_closed_forms(self, inputs, T):
        student, teacher, labels = inputs
        p, q = probs(student, T), probs(teacher, T)
        target = np.eye(p.shape[-1], dtype=bool)[labels]
        p_t, q_t = (p * target).sum(-1, keepdims=True), (q * target).sum(-1, keepdims=True)
        # the textbook form needs 1 − p_t and 1 − q_t away from 0 (rows where they round to 0 are skipped)
        usable = ((1 - p_t) > 1e-6) & ((1 - q_t) > 1e-6) & (p_t > 1e-300) & (q_t > 1e-300)
        p_t, q_t = np.where(usable, p_t, 0.5), np.where(usable, q_t, 0.5)
        p_hat, q_hat = np.where(target, 0, p) / (1 - p_t), np.where(target, 0, q) / (1 - q_t)
        delta = np.log(p_t / q_t) - np.log((1 - p_t) / (1 - q_t))
        student_expected = np.where(target, p_t - q_t, -(p_t - q_t) * p_hat) / T
        coupling = q_t * (1 - q_t) * delta
        teacher_expected = np.where(target, -coupling, coupling * q_hat) / T
        got = target_class_kl_divergence_grad(student, teacher, labels, T, "none")
        np.testing.assert_allclose(
            np.where(usable, got, 0), np.where(usable, student_expected, 0), rtol=1e-7, atol=1e-12
        )
        got = target_class_kl_divergence_grad(student, teacher, labels, T, "none", "teacher")
        np.testing.assert_allclose(
            np.where(usable, got, 0), np.where(usable, teacher_expected, 0), rtol=1e-7, atol=1e-12
        )


class TestDtypesAndValidation:
    def test_float32_stays_float32_and_agrees(self, rng):
        z, v = (
            (rng.normal(size=(16, 10)) * 3).astype(np.float32),
            (rng.normal(size=(16, 10)) * 3).astype(np.float32),
        )
        y = rng.integers(0, 10, 16)
        assert decoupled_kd_loss(z, v, y).dtype == np.float32
        for wrt in WRT:
            g32 = decoupled_kd_loss_grad(z, v, y, reduction="none", wrt=wrt)
            g64 = decoupled_kd_loss_grad(z.astype(float), v.astype(float), y, reduction="none", wrt=wrt)
            assert g32.dtype == np.float32
            # per sample for the gradients; over the batch for ∂/∂T, whose 2T·D and T²·∂D/∂T cancel
            # (docs/divergences.md), so that a sample's own value can be small next to its terms
            scale = np.abs(g64).max(axis=-1, keepdims=True) if g64.ndim > 1 else np.abs(g64).max()
            assert (np.abs(g32 - g64) <= FLOAT32_VS_FLOAT64_RTOL * scale).all(), wrt

    def test_bad_input_names_the_parameter(self):
        z = np.zeros((2, 3))
        with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got a label 3"):
            decoupled_kd_loss(z, z, np.array([0, 3]))
        with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
            decoupled_kd_loss(z, z, np.array([0]))
        with pytest.raises(ValueError, match=r"beta must be a number in \[0, inf\), got beta=nan"):
            decoupled_kd_loss(z, z, np.array([0, 1]), beta=float("nan"))
        with pytest.raises(ValueError, match=r"wrt must be one of"):
            decoupled_kd_loss_grad(z, z, np.array([0, 1]), wrt="labels")

    def test_zero_weight_part_is_absent(self):
        # One class: NCKD is undefined (no non-target class), but with β = 0 it is not computed.
        z, v, y = np.array([[1.0]]), np.array([[2.0]]), np.array([0])
        assert np.isnan(non_target_class_kl_divergence(z, v, y))
        assert decoupled_kd_loss(z, v, y, beta=0.0) == 0.0


class TestHessianAndTemperature:
    @given(
        data=st.data(),
        T=TEMPERATURE,
        alpha=st.floats(0, 3),
        beta=st.floats(0, 10),
    )
    def test_hessian_is_the_jacobian_of_the_gradient(self, data, T, alpha, beta):

        shape = data.draw(logit_shapes(max_batch=3, max_classes=7).filter(lambda s: s[-1] >= 2))
        student = data.draw(hnp.arrays(np.float64, shape, elements=LOGIT))
        teacher = data.draw(hnp.arrays(np.float64, shape, elements=LOGIT))
        labels = data.draw(hnp.arrays(np.intp, shape[:-1], elements=st.integers(0, shape[-1] - 1)))
        hessian = kdcore.decoupled_kd_loss_hessian(student, teacher, labels, T, alpha, beta)
        np.testing.assert_array_equal(hessian, np.swapaxes(hessian, -1, -2))
        report = gradcheck.check_hessian(
            lambda z: kdcore.decoupled_kd_loss_grad(z, teacher, labels, T, alpha, beta, reduction="sum"),
            lambda z: kdcore.decoupled_kd_loss_hessian(z, teacher, labels, T, alpha, beta),
            student,
            rtol=FD_RTOL[np.dtype(np.float64)],
        )
        assert report.passed, report

    def test_hessian_against_the_oracle(self, rng):

        student, teacher = rng.normal(size=(3, 6)) * 3, rng.normal(size=(3, 6)) * 3
        labels = np.array([0, 3, 5])
        for T in (0.5, 4.0):
            got = kdcore.decoupled_kd_loss_hessian(student, teacher, labels, T, 1.0, 8.0)
            expected = oracle.decoupled_kd_loss_hessian(student, teacher, labels, T, 1.0, 8.0)
            assert np.all(oracle.relative_error(got, expected, result_ndim=2) <= 1e-13)

    @pytest.mark.parametrize("T", [1e3, 1e6, 1e9])
    @pytest.mark.parametrize("eps", [1.0, 1e-9])
    def test_temperature_derivative_at_high_temperature(self, T, eps, rng):
        # d/dT of T²·part is T(2·part − B), both terms second order in 1/T: written as their difference
        # (2T·D + T²·∂D/∂T) it lost a factor T of its precision (2.6e-6 relative at T = 1e9, before the
        # third-order form of kdcore/_decoupled.py).

        student = rng.normal(size=(3, 10)) * 3
        teacher = student + eps * rng.normal(size=student.shape) * 3
        labels = np.array([1, 4, 9])
        got = kdcore.decoupled_kd_loss_grad(student, teacher, labels, T, 1.0, 8.0, "none", "temperature")
        expected = oracle.decoupled_kd_loss(student, teacher, labels, T, 1.0, 8.0, wrt="temperature")
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
