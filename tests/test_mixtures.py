"""skew_kl_divergence, skew_reverse_kl_divergence, jensen_shannon_divergence and their derivatives.

Each derivative is checked three ways: finite differences (kdcore.gradcheck, hypothesis inputs), the closed
forms of docs/divergences.md written out again with SciPy, and the 50-digit oracle
(tests/test_family_accuracy.py). PyTorch autograd: tests/test_torch_family.py.
"""

import warnings
from typing import ClassVar

import numpy as np
import oracle
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from strategies import TEMPERATURE, logit_pairs
from tolerances import FD_RTOL, FLOAT32_VS_FLOAT64_RTOL

import kdcore
from kdcore import (
    gradcheck,
    jensen_shannon_divergence,
    jensen_shannon_divergence_grad,
    kl_divergence,
    kl_divergence_grad,
    reverse_kl_divergence,
    reverse_kl_divergence_grad,
    skew_kl_divergence,
    skew_kl_divergence_grad,
    skew_reverse_kl_divergence,
    skew_reverse_kl_divergence_grad,
)

F64 = np.dtype(np.float64)
WRT = ("student", "teacher", "temperature")
WEIGHT = st.floats(min_value=0.02, max_value=0.98)
# name: (value, gradient, keyword of the weight)
LOSSES = {
    "skew_kl": (skew_kl_divergence, skew_kl_divergence_grad, "skew"),
    "skew_reverse_kl": (skew_reverse_kl_divergence, skew_reverse_kl_divergence_grad, "skew"),
    "jsd": (jensen_shannon_divergence, jensen_shannon_divergence_grad, "beta"),
}


def probs(logits, T):
    return scipy.special.softmax(np.asarray(logits, float) / T, axis=-1)


def kl(a, b):
    return scipy.special.rel_entr(a, b).sum(axis=-1)


def textbook(name, student, teacher, T, weight):
    """The definitions of docs/divergences.md, with SciPy (fine on ordinary inputs, noise near p = q)."""
    p, q = probs(student, T), probs(teacher, T)
    if name == "skew_kl":
        return kl(q, weight * q + (1 - weight) * p)
    if name == "skew_reverse_kl":
        return kl(p, weight * p + (1 - weight) * q)
    mixture = weight * q + (1 - weight) * p
    return weight * kl(q, mixture) + (1 - weight) * kl(p, mixture)


def trl_generalized_jsd(student, teacher, beta, T=1.0):
    """trl's GKDTrainer.generalized_jsd_loss (after PR #3043), per sample, re-written with NumPy/SciPy.

    The mixture is formed in log space, and β = 0 and β = 1 switch to the plain forward and reverse KL.
    """
    log_p = scipy.special.log_softmax(np.asarray(student, float) / T, axis=-1)
    log_q = scipy.special.log_softmax(np.asarray(teacher, float) / T, axis=-1)
    if beta == 0:
        return (np.exp(log_q) * (log_q - log_p)).sum(-1)
    if beta == 1:
        return (np.exp(log_p) * (log_p - log_q)).sum(-1)
    log_m = np.logaddexp(log_p + np.log(1 - beta), log_q + np.log(beta))
    kl_teacher = (np.exp(log_q) * (log_q - log_m)).sum(-1)
    kl_student = (np.exp(log_p) * (log_p - log_m)).sum(-1)
    return beta * kl_teacher + (1 - beta) * kl_student


class TestValues:
    @pytest.mark.parametrize("name", LOSSES)
    @given(pair=logit_pairs(), T=TEMPERATURE, weight=WEIGHT)
    def test_textbook_formula(self, name, pair, T, weight):
        value, _, keyword = LOSSES[name]
        student, teacher = pair
        np.testing.assert_allclose(
            value(student, teacher, T, reduction="none", **{keyword: weight}),
            textbook(name, student, teacher, T, weight),
            rtol=1e-9,
            atol=1e-13,
        )

    @pytest.mark.parametrize("name", LOSSES)
    def test_identical_inputs_give_exactly_zero(self, name, rng):
        value, grad, keyword = LOSSES[name]
        z = rng.normal(size=(4, 6)) * 5
        assert (value(z, z, 2.0, reduction="none", **{keyword: 0.3}) == 0).all()
        for wrt in WRT:
            assert (grad(z, z, 2.0, reduction="none", wrt=wrt, **{keyword: 0.3}) == 0).all()

    @given(pair=logit_pairs(), T=TEMPERATURE, beta=WEIGHT)
    def test_jsd_exchanging_student_and_teacher_exchanges_beta(self, pair, T, beta):
        student, teacher = pair
        np.testing.assert_allclose(
            jensen_shannon_divergence(student, teacher, T, beta, "none"),
            jensen_shannon_divergence(teacher, student, T, 1 - beta, "none"),
            rtol=1e-12,
            atol=1e-300,
        )

    @given(pair=logit_pairs(), T=TEMPERATURE, beta=WEIGHT)
    def test_jsd_bounded_by_the_entropy_of_beta(self, pair, T, beta):
        bound = -(beta * np.log(beta) + (1 - beta) * np.log1p(-beta))
        values = jensen_shannon_divergence(*pair, T, beta, "none")
        assert (values >= 0).all() and (values <= bound * (1 + 1e-14)).all()

    def test_disjoint_supports_reach_the_bounds(self):
        student, teacher = np.array([0.0, 1.0, -np.inf]), np.array([-np.inf, -np.inf, 0.0])
        for beta in (0.5, 0.2):
            entropy = -(beta * np.log(beta) + (1 - beta) * np.log(1 - beta))
            assert jensen_shannon_divergence(student, teacher, beta=beta) == pytest.approx(entropy, rel=1e-15)
        assert skew_kl_divergence(student, teacher, skew=0.25) == pytest.approx(np.log(4), rel=1e-15)
        assert skew_reverse_kl_divergence(student, teacher, skew=0.25) == pytest.approx(np.log(4), rel=1e-15)

    def test_skew_keeps_finite_what_the_plain_kl_makes_infinite(self):
        # The student rules out a class the teacher expects: KL(q‖p) = inf, the skew KL is finite.
        student, teacher = np.array([0.0, -np.inf, 1.0]), np.array([0.0, 0.5, 1.0])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert kl_divergence(student, teacher) == np.inf
            assert np.isfinite(skew_kl_divergence(student, teacher, skew=0.1))
            for wrt in WRT:
                assert np.isfinite(skew_kl_divergence_grad(student, teacher, skew=0.1, wrt=wrt)).all()
            # α = 0 is the plain KL: infinite, and its derivatives undefined
            assert skew_kl_divergence(student, teacher, skew=0.0) == np.inf
            assert np.isnan(skew_kl_divergence_grad(student, teacher, skew=0.0)).all()

    @pytest.mark.parametrize("name", LOSSES)
    def test_nan_stays_in_its_sample(self, name, rng):
        value, grad, keyword = LOSSES[name]
        z, v = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
        clean = {wrt: grad(z, v, 2.0, reduction="none", wrt=wrt, **{keyword: 0.4}) for wrt in WRT}
        z[1, 2], v[2, 0] = np.nan, np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            values = value(z, v, 2.0, reduction="none", **{keyword: 0.4})
            grads = {wrt: grad(z, v, 2.0, reduction="none", wrt=wrt, **{keyword: 0.4}) for wrt in WRT}
        assert np.isnan(values[1:]).all() and np.isfinite(values[0])
        for wrt in WRT:
            assert np.isnan(grads[wrt][1:]).all()
            np.testing.assert_array_equal(grads[wrt][0], clean[wrt][0])

    @pytest.mark.parametrize("T", [1e-3, 1.0, 1e9])
    def test_no_warning_on_any_finite_input(self, T):
        z = np.array(
            [[1e308, -1e308, 0.0], [-1e308, 1e308, 5.0], [1e300, 1e300, -1e300], [0.0, 1e-320, -1e-320]]
        )
        v = np.array([[-1e308, 1e308, 0.0], [-1e308, 1e308, 4.0], [1e300, -1e300, 1e300], [1e-320, 0.0, 0.0]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for value, grad, keyword in LOSSES.values():
                for weight in (0.0, 0.3, 1.0):
                    values = value(z, v, T, reduction="none", **{keyword: weight})
                    assert not np.isnan(values).any() and (values >= 0).all()
                    for wrt in WRT:
                        grad(z, v, T, reduction="none", wrt=wrt, **{keyword: weight})


class TestLimits:
    """The endpoints of the weights (docs/divergences.md, "β → 0 and β → 1")."""

    def test_skew_endpoints(self, rng):
        z, v = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
        np.testing.assert_allclose(
            skew_kl_divergence(z, v, 1.5, 0.0, "none"), kl_divergence(z, v, 1.5, "none"), rtol=1e-14
        )
        np.testing.assert_allclose(
            skew_reverse_kl_divergence(z, v, 1.5, 0.0, "none"),
            reverse_kl_divergence(z, v, 1.5, "none"),
            rtol=1e-14,
        )
        for wrt in WRT:
            np.testing.assert_allclose(
                skew_kl_divergence_grad(z, v, 1.5, 0.0, "none", wrt),
                kl_divergence_grad(z, v, 1.5, "none", wrt),
                rtol=1e-12,
                atol=1e-17,
            )
            np.testing.assert_allclose(
                skew_reverse_kl_divergence_grad(z, v, 1.5, 0.0, "none", wrt),
                reverse_kl_divergence_grad(z, v, 1.5, "none", wrt),
                rtol=1e-12,
                atol=1e-17,
            )
        assert (skew_kl_divergence(z, v, 1.5, 1.0, "none") == 0).all()
        assert (skew_reverse_kl_divergence(z, v, 1.5, 1.0, "none") == 0).all()

    def test_unscaled_jsd_vanishes_at_both_ends(self, rng):
        z, v = rng.normal(size=(4, 6)) * 2, rng.normal(size=(4, 6)) * 2
        for beta in (0.0, 1.0):
            assert (jensen_shannon_divergence(z, v, 1.0, beta, "none") == 0).all()
            for wrt in WRT:
                assert (jensen_shannon_divergence_grad(z, v, 1.0, beta, "none", wrt) == 0).all()
        # continuous: O(β) near 0 and O(1 − β) near 1
        assert (jensen_shannon_divergence(z, v, 1.0, 1e-9, "none") < 1e-8).all()
        assert (jensen_shannon_divergence(z, v, 1.0, 1 - 1e-9, "none") < 1e-8).all()

    @pytest.mark.parametrize("end", ["forward", "reverse"])
    def test_scaled_jsd_tends_to_kl_at_rate_beta(self, end, rng):
        # JSD_β/β → KL(q‖p) as β → 0 and JSD_β/(1 − β) → KL(p‖q) as β → 1, each with an O(distance) error.
        z, v = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
        limit = (
            kl_divergence(z, v, 1.0, "none") if end == "forward" else reverse_kl_divergence(z, v, 1.0, "none")
        )
        errors = []
        for distance in (1e-3, 1e-4, 1e-5):
            beta = distance if end == "forward" else 1 - distance
            scaled = jensen_shannon_divergence(z, v, 1.0, beta, "none") / distance
            errors.append(np.abs(scaled - limit) / limit)
        assert (errors[-1] < 1e-4).all()
        ratios = np.array(errors[:-1]) / np.array(errors[1:])
        np.testing.assert_allclose(ratios, 10, rtol=0.05)  # first order in the distance

    def test_scaled_gradient_tends_to_the_kl_gradient(self, rng):
        z, v, beta = rng.normal(size=(3, 6)), rng.normal(size=(3, 6)), 1e-7
        for wrt in ("student", "teacher"):
            np.testing.assert_allclose(
                jensen_shannon_divergence_grad(z, v, 1.0, beta, "none", wrt) / beta,
                kl_divergence_grad(z, v, 1.0, "none", wrt),
                rtol=1e-5,
                atol=1e-9,
            )

    def test_trl_switches_to_the_unscaled_kl_at_the_endpoints(self, rng):
        # trl's loss is the JSD for 0 < β < 1 and the *plain* KL at β ∈ {0, 1}: it jumps by a factor ~1/β.
        z, v = rng.normal(size=(3, 6)) * 2, rng.normal(size=(3, 6)) * 2
        forward, reverse = kl_divergence(z, v, 1.0, "none"), reverse_kl_divergence(z, v, 1.0, "none")
        np.testing.assert_allclose(trl_generalized_jsd(z, v, 0.0), forward, rtol=1e-12)
        np.testing.assert_allclose(trl_generalized_jsd(z, v, 1.0), reverse, rtol=1e-12)
        near_zero = trl_generalized_jsd(z, v, 1e-6)
        assert (near_zero < 1e-5 * forward).all()  # a jump from ~1e-6·KL to KL
        # kdcore is the same function as trl strictly inside (0, 1), and continuous at the ends
        for beta in (0.1, 0.5, 0.9):
            np.testing.assert_allclose(
                jensen_shannon_divergence(z, v, 1.0, beta, "none"),
                trl_generalized_jsd(z, v, beta),
                rtol=1e-10,
            )
        assert (jensen_shannon_divergence(z, v, 1.0, 0.0, "none") == 0).all()

    def test_log_space_mixture_loses_what_kdcore_keeps(self, rng):
        # trl forms log M by logaddexp: an absolute error ~1e-16, the size of the whole divergence here.
        import oracle

        z = rng.normal(size=(1, 8)) * 3
        v = z + 1e-9 * rng.normal(size=z.shape)
        expected = oracle.jensen_shannon_divergence(z, v, 1.0, 0.5)
        ours = jensen_shannon_divergence(z, v, 1.0, 0.5, "none")
        assert abs(ours[0] - expected[0]) <= 1e-12 * expected[0]
        assert abs(trl_generalized_jsd(z, v, 0.5)[0] - expected[0]) > 1e-3 * expected[0]


class TestDerivatives:
    @pytest.mark.parametrize("name", LOSSES)
    @pytest.mark.parametrize("wrt", ["student", "teacher"])
    @given(
        pair=logit_pairs(max_batch=3, max_classes=8),
        T=TEMPERATURE,
        weight=WEIGHT,
        reduction=st.sampled_from(["sum", "mean"]),
    )
    def test_finite_differences(self, name, wrt, pair, T, weight, reduction):
        value, grad, keyword = LOSSES[name]
        student, teacher = pair
        kw = {keyword: weight, "reduction": reduction}
        if wrt == "student":
            report = gradcheck.check_gradient(
                lambda z: value(z, teacher, T, **kw),
                lambda z: grad(z, teacher, T, wrt="student", **kw),
                student,
                rtol=FD_RTOL[F64],
            )
        else:
            report = gradcheck.check_gradient(
                lambda v: value(student, v, T, **kw),
                lambda v: grad(student, v, T, wrt="teacher", **kw),
                teacher,
                rtol=FD_RTOL[F64],
            )
        assert report.passed, report

    @pytest.mark.parametrize("name", LOSSES)
    @given(pair=logit_pairs(max_batch=3, max_classes=8), T=TEMPERATURE, weight=WEIGHT)
    def test_temperature_finite_differences(self, name, pair, T, weight):
        value, grad, keyword = LOSSES[name]
        student, teacher = pair
        report = gradcheck.check_gradient(
            lambda t: value(student, teacher, float(t[0]), reduction="sum", **{keyword: weight}),
            lambda t: np.array(
                [grad(student, teacher, float(t[0]), reduction="sum", wrt="temperature", **{keyword: weight})]
            ),
            np.array([T]),
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(pair=logit_pairs(), T=TEMPERATURE, beta=WEIGHT)
    def test_jsd_closed_forms(self, pair, T, beta):
        # ∂JSD/∂z = (1 − β) p ⊙ (ℓ − KL(p‖M))/T, ∂JSD/∂v = β q ⊙ (ℓ' − KL(q‖M))/T (docs/divergences.md).
        student, teacher = pair
        p, q = probs(student, T), probs(teacher, T)
        mixture = beta * q + (1 - beta) * p
        ell, ell_teacher = np.log(p / mixture), np.log(q / mixture)
        student_expected = (1 - beta) * p * (ell - (p * ell).sum(-1, keepdims=True)) / T
        teacher_expected = beta * q * (ell_teacher - (q * ell_teacher).sum(-1, keepdims=True)) / T
        np.testing.assert_allclose(
            jensen_shannon_divergence_grad(student, teacher, T, beta, "none"),
            student_expected,
            rtol=1e-8,
            atol=1e-13,
        )
        np.testing.assert_allclose(
            jensen_shannon_divergence_grad(student, teacher, T, beta, "none", "teacher"),
            teacher_expected,
            rtol=1e-8,
            atol=1e-13,
        )

    @given(pair=logit_pairs(), T=TEMPERATURE, alpha=WEIGHT)
    def test_skew_closed_forms(self, pair, T, alpha):
        student, teacher = pair
        p, q = probs(student, T), probs(teacher, T)

        def centred(w, g):
            return w * (g - (w * g).sum(-1, keepdims=True)) / T

        m = alpha * q + (1 - alpha) * p  # skew KL: KL(q ‖ m)
        t, g = 1 - q / m, np.log(q / m) - alpha * (q / m - 1)
        got = skew_kl_divergence_grad(student, teacher, T, alpha, "none")
        np.testing.assert_allclose(got, (1 - alpha) * centred(p, t), rtol=1e-8, atol=1e-13)
        got = skew_kl_divergence_grad(student, teacher, T, alpha, "none", "teacher")
        np.testing.assert_allclose(got, centred(q, g), rtol=1e-8, atol=1e-13)
        m = alpha * p + (1 - alpha) * q  # skew reverse KL: KL(p ‖ m)
        t, g = 1 - p / m, np.log(p / m) - alpha * (p / m - 1)
        got = skew_reverse_kl_divergence_grad(student, teacher, T, alpha, "none")
        np.testing.assert_allclose(got, centred(p, g), rtol=1e-8, atol=1e-13)
        got = skew_reverse_kl_divergence_grad(student, teacher, T, alpha, "none", "teacher")
        np.testing.assert_allclose(got, (1 - alpha) * centred(q, t), rtol=1e-8, atol=1e-13)

    @pytest.mark.parametrize("name", LOSSES)
    @given(pair=logit_pairs(), T=TEMPERATURE, weight=WEIGHT)
    def test_temperature_chain_rule(self, name, pair, T, weight):
        # ∂L/∂T = −(1/T)·(⟨∂L/∂z, z⟩ + ⟨∂L/∂v, v⟩): L depends on z/T and v/T only.
        _, grad, keyword = LOSSES[name]
        student, teacher = pair
        kw = {keyword: weight, "reduction": "none"}
        expected = (
            -(
                (grad(student, teacher, T, wrt="student", **kw) * student).sum(-1)
                + (grad(student, teacher, T, wrt="teacher", **kw) * teacher).sum(-1)
            )
            / T
        )
        np.testing.assert_allclose(
            grad(student, teacher, T, wrt="temperature", **kw), expected, rtol=1e-7, atol=1e-10
        )

    @pytest.mark.parametrize("name", LOSSES)
    @given(pair=logit_pairs(), T=TEMPERATURE, weight=WEIGHT)
    def test_rows_sum_to_zero_and_mean_divides_by_samples(self, name, pair, T, weight):
        _, grad, _ = LOSSES[name]
        student, teacher = pair
        for wrt in ("student", "teacher"):
            per_sample = grad(student, teacher, T, weight, "none", wrt)
            assert (np.abs(per_sample.sum(-1)) <= 1e-15 * (np.abs(per_sample).sum(-1) + 1 / T)).all()
            n = int(np.prod(student.shape[:-1]))
            np.testing.assert_allclose(
                grad(student, teacher, T, weight, "mean", wrt), per_sample / n, rtol=1e-15
            )


class TestDtypesAndValidation:
    @pytest.mark.parametrize("name", LOSSES)
    def test_float32_stays_float32_and_agrees(self, name, rng):
        value, grad, keyword = LOSSES[name]
        z, v = (
            (rng.normal(size=(16, 10)) * 3).astype(np.float32),
            (rng.normal(size=(16, 10)) * 3).astype(np.float32),
        )
        for T in (0.5, 4.0):
            kw = {keyword: 0.3, "reduction": "none"}
            assert value(z, v, T, **kw).dtype == np.float32
            np.testing.assert_allclose(
                value(z, v, T, **kw),
                value(z.astype(float), v.astype(float), T, **kw),
                rtol=FLOAT32_VS_FLOAT64_RTOL,
            )
            for wrt in WRT:
                g32 = grad(z, v, T, wrt=wrt, **kw)
                g64 = grad(z.astype(float), v.astype(float), T, wrt=wrt, **kw)
                assert g32.dtype == np.float32
                scale = np.abs(g64).max(axis=-1, keepdims=True) if g64.ndim > 1 else np.abs(g64)
                assert (np.abs(g32 - g64) <= FLOAT32_VS_FLOAT64_RTOL * scale).all(), (T, wrt)

    @pytest.mark.parametrize("name", LOSSES)
    @pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan")])
    def test_weight_outside_the_unit_interval(self, name, weight):
        value, _, keyword = LOSSES[name]
        with pytest.raises(ValueError, match=f"{keyword} must be a number in \\[0, 1\\], got {keyword}="):
            value(np.zeros(3), np.ones(3), **{keyword: weight})

    def test_weight_of_the_wrong_type(self):
        with pytest.raises(TypeError, match="beta must be a number in"):
            jensen_shannon_divergence(np.zeros(3), np.ones(3), beta="0.5")
        with pytest.raises(ValueError, match=r"wrt must be one of .* got wrt='logits'"):
            skew_kl_divergence_grad(np.zeros(3), np.ones(3), wrt="logits")

    def test_chunked_equals_row_by_row(self, rng):
        z, v = rng.normal(size=(300, 400)) * 3, rng.normal(size=(300, 400)) * 3  # chunked on the thread pool
        for wrt in WRT:
            batch = jensen_shannon_divergence_grad(z, v, 2.0, 0.3, "none", wrt)
            one_by_one = np.stack(
                [jensen_shannon_divergence_grad(z[i], v[i], 2.0, 0.3, "none", wrt) for i in range(len(z))]
            )
            np.testing.assert_array_equal(batch, one_by_one)


class TestHessians:
    """skew_kl_divergence_hessian, skew_reverse_kl_divergence_hessian, jensen_shannon_divergence_hessian."""

    HESSIANS: ClassVar = {
        "skew_kl": ("skew_kl_divergence_hessian", "skew"),
        "skew_reverse_kl": ("skew_reverse_kl_divergence_hessian", "skew"),
        "jsd": ("jensen_shannon_divergence_hessian", "beta"),
    }

    @pytest.mark.parametrize("name", LOSSES)
    @given(pair=logit_pairs(max_batch=3, max_classes=8), T=TEMPERATURE, weight=WEIGHT)
    def test_jacobian_of_the_gradient(self, name, pair, T, weight):

        _, grad, keyword = LOSSES[name]
        hessian_name, _ = self.HESSIANS[name]
        student, teacher = pair
        hessian = getattr(kdcore, hessian_name)(student, teacher, T, weight)
        np.testing.assert_array_equal(hessian, np.swapaxes(hessian, -1, -2))
        np.testing.assert_allclose(hessian.sum(axis=-1), 0, atol=1e-13 * max(1.0, np.abs(hessian).max()))
        report = gradcheck.check_hessian(
            lambda z: grad(z, teacher, T, reduction="sum", **{keyword: weight}),
            lambda z: getattr(kdcore, hessian_name)(z, teacher, T, weight),
            student,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @pytest.mark.parametrize("name", LOSSES)
    def test_against_the_oracle(self, name, rng):

        hessian_name, _ = self.HESSIANS[name]
        student, teacher = rng.normal(size=(2, 6)) * 3, rng.normal(size=(2, 6)) * 3
        teacher[1, 2] = -np.inf
        for T, weight in ((0.7, 0.1), (3.0, 0.6)):
            got = getattr(kdcore, hessian_name)(student, teacher, T, weight)
            expected = oracle.mixture_hessian(student, teacher, T, name, weight)
            assert np.all(oracle.relative_error(got, expected, result_ndim=2) <= 1e-13)

    def test_endpoints(self, rng):

        z, v = rng.normal(size=5), rng.normal(size=5)
        np.testing.assert_allclose(
            kdcore.skew_kl_divergence_hessian(z, v, 1.5, 0.0),
            kdcore.kl_divergence_hessian(z, v, 1.5),
            rtol=1e-14,
        )
        np.testing.assert_allclose(
            kdcore.skew_reverse_kl_divergence_hessian(z, v, 1.5, 0.0),
            kdcore.reverse_kl_divergence_hessian(z, v, 1.5),
            rtol=1e-13,
            atol=1e-16,
        )
        assert np.all(kdcore.jensen_shannon_divergence_hessian(z, v, 1.5, 1.0) == 0)
