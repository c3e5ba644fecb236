"""distillation_loss, distillation_loss_grad, logit_mse, logit_mse_grad."""

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import LOGIT, TEMPERATURE, logit_pairs, logit_shapes
from tolerances import FD_RTOL

from kdcore import (
    cross_entropy,
    distillation_loss,
    distillation_loss_grad,
    gradcheck,
    kl_divergence,
    logit_mse,
    logit_mse_grad,
    soft_cross_entropy,
)

F64 = np.dtype(np.float64)
ALPHA = st.floats(0.0, 1.0)


@st.composite
def distillation_inputs(draw, max_batch=4, max_classes=8):
    shape = draw(logit_shapes(max_batch=max_batch, max_classes=max_classes))
    student = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    teacher = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    labels = draw(hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, shape[-1] - 1)))
    return student, teacher, labels


class TestDistillationLoss:
    @given(distillation_inputs(), TEMPERATURE, ALPHA, st.booleans(), st.sampled_from(["cross_entropy", "kl"]))
    def test_is_the_documented_mix(self, inputs, T, alpha, t2_scaling, soft):
        student, teacher, labels = inputs
        soft_fn = soft_cross_entropy if soft == "cross_entropy" else kl_divergence
        scale = T**2 if t2_scaling else 1.0
        expected = alpha * cross_entropy(student, labels, "none") + (1 - alpha) * scale * soft_fn(
            student, teacher, T, "none"
        )
        actual = distillation_loss(student, teacher, labels, T, alpha, t2_scaling, soft, "none")
        np.testing.assert_allclose(actual, expected, rtol=1e-13, atol=1e-14)

    def test_hinton_literal(self):
        # One sample, worked by hand with SciPy: α·CE + (1−α)·T²·soft CE.
        z, v, y, T, alpha = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2]), 0, 4.0, 0.3
        ce = -scipy.special.log_softmax(z)[0]
        q = scipy.special.softmax(v / T)
        soft = -(q * scipy.special.log_softmax(z / T)).sum()
        assert distillation_loss(z, v, y, T, alpha) == pytest.approx(
            alpha * ce + (1 - alpha) * T**2 * soft, rel=1e-14
        )

    def test_alpha_one_ignores_an_infinite_soft_term(self):
        z, v = np.array([0.0, -np.inf]), np.array([0.0, 0.0])
        assert distillation_loss(z, v, 0, 2.0, 1.0) == pytest.approx(0.0)
        assert distillation_loss(z, v, 0, 2.0, 0.5) == np.inf

    def test_reductions(self, rng):
        z, v, y = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.integers(0, 4, 5)
        per_sample = distillation_loss(z, v, y, 3.0, 0.4, reduction="none")
        assert distillation_loss(z, v, y, 3.0, 0.4, reduction="sum") == pytest.approx(per_sample.sum())
        assert distillation_loss(z, v, y, 3.0, 0.4) == pytest.approx(per_sample.mean())

    @pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
    def test_bad_alpha(self, alpha):
        with pytest.raises(ValueError, match="alpha must be in"):
            distillation_loss(np.zeros(3), np.zeros(3), 0, 2.0, alpha)

    def test_bad_soft(self):
        with pytest.raises(ValueError, match="soft must be one of"):
            distillation_loss(np.zeros(3), np.zeros(3), 0, 2.0, 0.5, soft="mse")

    def test_bad_labels(self):
        with pytest.raises(ValueError, match="labels"):
            distillation_loss(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0, 5]), 2.0, 0.5)

    def test_float32(self):
        z = np.array([[1.0, 2.0, 0.5]], np.float32)
        assert distillation_loss(z, z + 1, np.array([1]), 2.0, 0.5).dtype == np.float32
        assert distillation_loss_grad(z, z * 2, np.array([1]), 2.0, 0.5).dtype == np.float32


class TestDistillationLossGrad:
    @given(
        distillation_inputs(max_batch=3), TEMPERATURE, ALPHA, st.booleans(), st.sampled_from(["sum", "mean"])
    )
    def test_finite_differences(self, inputs, T, alpha, t2_scaling, reduction):
        student, teacher, labels = inputs
        report = gradcheck.check_gradient(
            lambda z: distillation_loss(z, teacher, labels, T, alpha, t2_scaling, reduction=reduction),
            lambda z: distillation_loss_grad(z, teacher, labels, T, alpha, t2_scaling, reduction=reduction),
            student,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(distillation_inputs(), TEMPERATURE, ALPHA)
    def test_closed_form(self, inputs, T, alpha):
        student, teacher, labels = inputs
        n = student.shape[-1]
        hard = scipy.special.softmax(student, axis=-1) - np.eye(n)[labels]
        soft = (scipy.special.softmax(student / T, axis=-1) - scipy.special.softmax(teacher / T, axis=-1)) * T
        expected = alpha * hard + (1 - alpha) * soft
        np.testing.assert_allclose(
            distillation_loss_grad(student, teacher, labels, T, alpha, reduction="none"),
            expected,
            rtol=1e-9,
            atol=1e-12,
        )

    def test_soft_choice_does_not_change_the_gradient(self, rng):
        z, v, y = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)), rng.integers(0, 5, 3)
        np.testing.assert_array_equal(
            distillation_loss_grad(z, v, y, 2.0, 0.3, soft="kl"), distillation_loss_grad(z, v, y, 2.0, 0.3)
        )

    def test_t2_keeps_the_soft_gradient_order_one(self, rng):
        # Why T²: without it the soft gradient shrinks like 1/T², with it it tends to a fixed limit.
        z, v, y = rng.normal(size=10), rng.normal(size=10), 0
        with_t2 = [np.linalg.norm(distillation_loss_grad(z, v, y, T, 0.0)) for T in (10.0, 100.0, 1000.0)]
        without = [
            np.linalg.norm(distillation_loss_grad(z, v, y, T, 0.0, t2_scaling=False))
            for T in (10.0, 100.0, 1000.0)
        ]
        assert max(with_t2) / min(with_t2) < 1.2
        assert without[0] / without[2] > 0.9e4


class TestLogitMse:
    @given(logit_pairs())
    def test_closed_form(self, pair):
        z, v = pair
        d = (z - z.mean(axis=-1, keepdims=True)) - (v - v.mean(axis=-1, keepdims=True))
        np.testing.assert_allclose(
            logit_mse(z, v, reduction="none"), (d**2).mean(axis=-1), rtol=1e-10, atol=1e-20
        )
        np.testing.assert_allclose(
            logit_mse(z, v, centered=False, reduction="none"), ((z - v) ** 2).mean(axis=-1), rtol=1e-12
        )

    @given(logit_pairs(max_batch=3), st.booleans(), st.sampled_from(["sum", "mean"]))
    def test_gradient_finite_differences(self, pair, centered, reduction):
        z, v = pair
        report = gradcheck.check_gradient(
            lambda s: logit_mse(s, v, centered, reduction),
            lambda s: logit_mse_grad(s, v, centered, reduction),
            z,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    def test_gradient_closed_form(self):
        z, v = np.array([3.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0])
        np.testing.assert_allclose(logit_mse_grad(z, v), 2 * np.array([2.0, -1.0, -1.0]) / 3)
        np.testing.assert_allclose(logit_mse_grad(z, v, centered=False), 2 * np.array([3.0, 0.0, 0.0]) / 3)

    def test_centred_ignores_offsets(self, rng):
        z, v = rng.normal(size=6), rng.normal(size=6)
        assert logit_mse(z + 1e3, v - 7.0) == pytest.approx(logit_mse(z, v), rel=1e-10)
        assert logit_mse(z + 1e3, v, centered=False) > 1e5

    def test_masked_logits_give_nan_for_that_sample(self):
        values = logit_mse(np.array([[0.0, 1.0], [-np.inf, 1.0]]), np.zeros((2, 2)), reduction="none")
        assert np.isfinite(values[0]) and np.isnan(values[1])
