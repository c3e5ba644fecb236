"""What docs/ claims: the derivations of docs/math.md, its notes on the source material, and the docs' hygiene.

The docs' own examples run as doctests (pytest's ``--doctest-glob=*.md``). The tests here pin what an
example cannot show well: a limit, a sign, a claim about the blog post or the paper. Each is cited by
docs/math.md, and :class:`TestDocs` checks that every test the docs cite exists.
"""

import ast
import functools
import importlib
import inspect
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import kdcore
from kdcore import (
    cross_entropy,
    distillation_loss,
    distillation_loss_grad,
    kl_divergence,
    kl_divergence_grad,
    softmax,
    softmax_jacobian,
    softmax_vjp,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def centred(x):
    return x - x.mean(axis=-1, keepdims=True)


class TestSoftmaxDerivative:
    """docs/math.md §1: J = ∂p/∂z = (diag p − p pᵀ)/T; softmax_jacobian/softmax_vjp differentiate w.r.t. z/T."""

    def test_jacobian_is_with_respect_to_z_over_T(self, rng):
        z, T = rng.normal(size=5) * 3, 4.0
        p = softmax(z, T)
        for i in range(z.size):
            # ∇_z p_i, row by row, by kdcore's own checker: it must be softmax_jacobian(p)[i] / T.
            report = kdcore.gradcheck.check_gradient(
                lambda s, i=i: softmax(s, T)[i], lambda s, i=i: softmax_jacobian(softmax(s, T))[i] / T, z
            )
            assert report.passed, report
        np.testing.assert_allclose(softmax_jacobian(p) / T, (np.diag(p) - np.outer(p, p)) / T, rtol=1e-15)
        # Without the 1/T the check fails: the convention is not a matter of taste.
        report = kdcore.gradcheck.check_gradient(
            lambda s: softmax(s, T)[0], lambda s: softmax_jacobian(softmax(s, T))[0], z
        )
        assert not report.passed

    def test_vjp_identity_as_written(self, rng):
        # Jᵀu = p ⊙ (u − ⟨p, u⟩)/T = softmax_vjp(p, u)/T, with J = ∂p/∂z.
        z, u, T = rng.normal(size=6), rng.normal(size=6), 2.5
        p = softmax(z, T)
        jacobian = (np.diag(p) - np.outer(p, p)) / T
        np.testing.assert_allclose(jacobian.T @ u, p * (u - p @ u) / T, rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(softmax_vjp(p, u) / T, jacobian.T @ u, rtol=1e-13, atol=1e-16)
        report = kdcore.gradcheck.check_vjp(
            lambda s: softmax(s, T), lambda s, c: softmax_vjp(softmax(s, T), c) / T, z
        )
        assert report.passed, report

    def test_hessian_is_jacobian_over_T_squared(self, rng):
        z, v, T = rng.normal(size=5), rng.normal(size=5), 3.0
        np.testing.assert_allclose(
            kdcore.kl_divergence_hessian(z, v, T), softmax_jacobian(softmax(z, T)) / T**2, rtol=1e-13
        )


class TestLogRatio:
    """docs/math.md §2: f = d − E_q[d] with d = (z − v)/T, and log p − log q = f − KL."""

    def test_log_ratio_identity(self, rng):
        z, v, T = rng.normal(size=7) * 2, rng.normal(size=7) * 2, 1.7
        p, q = softmax(z, T), softmax(v, T)
        d = (z - v) / T
        f = d - np.sum(q * d)
        kl = kl_divergence(z, v, T)
        assert np.sum(q * f) == pytest.approx(0, abs=1e-15)
        np.testing.assert_allclose(p / q, np.exp(d) / np.sum(q * np.exp(d)), rtol=1e-13)
        np.testing.assert_allclose(np.log(p) - np.log(q), f - kl, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(p, q * np.exp(f - kl), rtol=1e-13)
        assert np.log(np.sum(q * np.exp(f))) == pytest.approx(kl, rel=1e-12)

    def test_kl_is_not_a_function_of_d_alone(self, rng):
        # The false claim the page once made: with d = (z − v)/T fixed, changing v changes q and so KL...
        z, v, T = rng.normal(size=5), rng.normal(size=5), 1.0
        shift = rng.normal(size=5)
        assert abs(kl_divergence(z + shift, v + shift, T) - kl_divergence(z, v, T)) > 1e-3
        # ...while a constant added to d (to z alone) changes nothing.
        assert kl_divergence(z + 3.0, v, T) == pytest.approx(kl_divergence(z, v, T), rel=1e-12)


class TestTeacherGradient:
    def test_kl_teacher_gradient_as_derived(self, rng):
        # docs/math.md §4, term by term: ∂(Σ q log q)/∂v_k = Σ (∂q_i/∂v_k) log q_i (the other sum is 0),
        # = q_k (log q_k + H)/T; then ∂KL/∂v = that + ∂L_soft/∂v = −q ⊙ f / T.
        z, v, T = rng.normal(size=6) * 2, rng.normal(size=6) * 2, 2.0
        p, q = softmax(z, T), softmax(v, T)
        dq_dv = (np.diag(q) - np.outer(q, q)) / T  # dq_dv[i, k] = ∂q_i/∂v_k
        assert np.allclose(q @ (dq_dv / q[:, None]), 0, atol=1e-16)  # Σ_i q_i ∂log q_i/∂v_k = 0
        entropy = -np.sum(q * np.log(q))
        neg_entropy_grad = np.log(q) @ dq_dv
        np.testing.assert_allclose(neg_entropy_grad, q * (np.log(q) + entropy) / T, rtol=1e-12, atol=1e-16)
        soft_grad = kdcore.soft_cross_entropy_grad(z, v, T, wrt="teacher")
        d = (z - v) / T
        f = d - np.sum(q * d)
        np.testing.assert_allclose(neg_entropy_grad + soft_grad, -q * f / T, rtol=1e-10, atol=1e-16)
        np.testing.assert_allclose(
            kl_divergence_grad(z, v, T, wrt="teacher"), -q * f / T, rtol=1e-12, atol=1e-16
        )
        assert np.allclose(np.log(p) - np.log(q), f - kl_divergence(z, v, T))


class TestTemperatureGradient:
    def test_assembled_closed_form(self, rng):
        # docs/math.md §5: ∂KL/∂T = −(1/T) Σ [(p − q) f + (p − q − q f) c], c = v/T − E_q[v/T].
        for T in (0.7, 2.0, 9.0):
            z, v = rng.normal(size=8) * 3, rng.normal(size=8) * 3
            p, q = softmax(z, T), softmax(v, T)
            d = (z - v) / T
            f = d - np.sum(q * d)
            c = v / T - np.sum(q * v / T)
            closed = -np.sum((p - q) * f + (p - q - q * f) * c) / T
            assert kl_divergence_grad(z, v, T, wrt="temperature") == pytest.approx(closed, rel=1e-11)
            # and the first form, before rearranging: −(⟨p − q, z/T⟩ − ⟨q f, v/T⟩)/T
            chain = -(np.sum((p - q) * z / T) - np.sum(q * f * v / T)) / T
            assert chain == pytest.approx(closed, rel=1e-10)
            numeric = (kl_divergence(z, v, T * (1 + 1e-6)) - kl_divergence(z, v, T * (1 - 1e-6))) / (2e-6 * T)
            assert numeric == pytest.approx(closed, rel=1e-6)
            variance = np.sum(q * c**2)
            assert kdcore.soft_cross_entropy_grad(z, v, T, wrt="temperature") == pytest.approx(
                closed + variance / T, rel=1e-11
            )


class TestHighTemperatureExpansion:
    def test_first_order_correction(self, rng):
        # docs/math.md §7: T²·∂L/∂z = (z̃ − ṽ)/N + c/T + O(1/T²), with
        # c = [(z̃² − mean z̃²) − (ṽ² − mean ṽ²)] / (2N). So T·(T²·∂L/∂z − (z̃ − ṽ)/N) → c, with an O(1/T) error.
        z, v = rng.normal(size=8) + 3.0, rng.normal(size=8) - 1.0
        n = z.size
        zt, vt = centred(z), centred(v)
        limit = (zt - vt) / n
        c = ((zt**2 - np.mean(zt**2)) - (vt**2 - np.mean(vt**2))) / (2 * n)
        errors = []
        for T in (1e2, 1e3, 1e4):
            estimate = T * (T * T * kl_divergence_grad(z, v, T) - limit)
            errors.append(np.linalg.norm(estimate - c) / np.linalg.norm(c))
        assert errors[-1] < 1e-3
        assert errors[0] / errors[1] == pytest.approx(10, rel=0.2)  # the remainder is O(1/T) in turn
        assert errors[1] / errors[2] == pytest.approx(10, rel=0.2)

    def test_expansion_needs_t_large_against_the_spread_only(self, rng):
        # §7: centre first, so the condition is T ≫ spread of the logits, not T ≫ max|z|. A common offset of
        # 1e6 changes nothing: at T = 100 (≪ 1e6, ≫ the spread) the limit is as good as without the offset.
        z, v = rng.normal(size=6), rng.normal(size=6)
        T = 100.0
        limit = (centred(z) - centred(v)) / 6
        plain = T * T * kl_divergence_grad(z, v, T)
        offset = T * T * kl_divergence_grad(z + 1e6, v + 1e6, T)
        np.testing.assert_allclose(offset, plain, rtol=1e-6, atol=1e-12)
        assert np.linalg.norm(offset - limit) / np.linalg.norm(limit) < 0.05

    def test_uncentred_error_lies_along_the_ones_direction(self, rng):
        z, v = rng.normal(size=7) + 4.0, rng.normal(size=7) - 1.0
        n = z.size
        for T in (1e2, 1e4):
            exact = T * T * kl_divergence_grad(z, v, T)
            assert abs(exact.sum()) < 1e-12 * np.abs(exact).max()  # no component along 1
            error = (z - v) / n - exact
            along_ones = error.mean()
            assert along_ones == pytest.approx((z.mean() - v.mean()) / n, rel=1e-12 + 10 / T)
            # what is left once the shift is removed vanishes like 1/T
            assert np.linalg.norm(error - along_ones) < 5 / T * np.linalg.norm(exact)

    def test_zero_mean_special_case_is_the_general_limit(self, rng):
        z, v, T = centred(rng.normal(size=6)), centred(rng.normal(size=6)), 1e5
        np.testing.assert_allclose(T * T * kl_divergence_grad(z, v, T), (z - v) / 6, rtol=1e-4)


class TestSourceNotes:
    """docs/math.md, "Notes on the source material"."""

    def test_post_gradient_has_the_wrong_sign_in_its_own_notation(self, rng):
        # The post: p = softmax(z/T) is the student's, q = softmax(v/T) the teacher's, and
        # ∂L_soft/∂z_i = (q_i − p_i)/T. With those names the right gradient is (p − q)/T.
        z, v, T = rng.normal(size=5), rng.normal(size=5), 2.0
        p, q = softmax(z, T), softmax(v, T)
        post = (q - p) / T
        np.testing.assert_allclose(kl_divergence_grad(z, v, T), -post, rtol=1e-13)
        report = kdcore.gradcheck.check_gradient(
            lambda s: kl_divergence(s, v, T), lambda s: (softmax(v, T) - softmax(s, T)) / T, z
        )
        assert not report.passed
        # A descent step along the post's "gradient" moves the student away from the teacher.
        step = 0.5
        assert kl_divergence(z - step * post, v, T) > kl_divergence(z, v, T)
        assert kl_divergence(z - step * kl_divergence_grad(z, v, T), v, T) < kl_divergence(z, v, T)

    def test_post_approximation_fails_for_logits_with_different_means(self, rng):
        # ∂L/∂z ≈ (z − v)/(N T²) needs z̄ = v̄: otherwise its relative error stays put as T grows, while
        # the centred limit's falls like 1/T.
        z, v = rng.normal(size=10) + 2.0, rng.normal(size=10)
        n = z.size
        post_errors, centred_errors = [], []
        for T in (1e2, 1e3, 1e4):
            exact = kl_divergence_grad(z, v, T)
            post = (z - v) / (n * T**2)
            general = (centred(z) - centred(v)) / (n * T**2)
            post_errors.append(np.linalg.norm(exact - post) / np.linalg.norm(exact))
            centred_errors.append(np.linalg.norm(exact - general) / np.linalg.norm(exact))
        assert min(post_errors) > 0.5
        assert max(post_errors) / min(post_errors) < 1.01  # a plateau
        assert centred_errors[0] / centred_errors[2] > 50  # converges

    def test_post_combined_loss_lacks_t2(self, rng):
        # The post's L = α·L_CE + (1 − α)·L_soft is kdcore's distillation_loss with t2_scaling=False...
        z, v, y, alpha = rng.normal(size=(4, 10)), rng.normal(size=(4, 10)), rng.integers(0, 10, 4), 0.5
        for T in (2.0, 8.0):
            post = alpha * cross_entropy(z, y) + (1 - alpha) * kdcore.soft_cross_entropy(z, v, T)
            assert distillation_loss(z, v, y, T, alpha, t2_scaling=False) == pytest.approx(post, rel=1e-14)

        # ...whose soft gradient fades like 1/T², so the hard term takes over as T grows; with T² it does not.
        def soft_share(T, t2_scaling):
            soft = np.linalg.norm(distillation_loss_grad(z, v, y, T, 0.0, t2_scaling))
            hard = np.linalg.norm(distillation_loss_grad(z, v, y, T, 1.0, t2_scaling))
            return soft / hard

        assert soft_share(10.0, False) / soft_share(100.0, False) == pytest.approx(100, rel=0.05)
        assert soft_share(10.0, True) / soft_share(100.0, True) == pytest.approx(1, rel=0.05)

    def test_hard_term_is_at_temperature_one(self, rng):
        z, v, y = rng.normal(size=(3, 5)) * 3, rng.normal(size=(3, 5)), np.array([0, 2, 4])
        hard = [distillation_loss(z, v, y, T, alpha=1.0) for T in (1.0, 4.0, 20.0)]
        assert hard[0] == hard[1] == hard[2] == cross_entropy(z, y)
        tempered = -np.mean(np.log(softmax(z, 4.0)[np.arange(3), y]))
        assert abs(hard[1] - tempered) > 0.1  # a T on the hard term would be a different loss

    def test_scaling_is_only_asymptotic(self):
        from kdcore.figures import EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS, gradient_norms

        scaled = gradient_norms(EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS, [0.5, 3.0, 1e3, 1e4])[
            "soft_t2"
        ]
        assert scaled[1] / scaled[0] > 20  # moderate T: T²·‖∂L/∂z‖ still depends strongly on T
        assert scaled[2] / scaled[3] == pytest.approx(1, rel=0.01)  # high T: constant


class TestIntermediateTemperatures:
    def test_very_negative_logits_are_ignored_at_moderate_temperature(self, rng):
        # §12: noise on a teacher logit far below the others barely moves the student's (T²-scaled) gradient
        # at moderate T, and moves it by the full centred amount Δ(1 − 1/N)/N at high T.
        teacher = np.array([6.0, 3.0, 0.0, -12.0])
        student = rng.normal(size=4) + np.array([5.0, 3.0, 0.0, -5.0])
        n = teacher.size
        for noise in (-4.0, 2.0, 4.0):
            noisy = teacher + np.array([0.0, 0.0, 0.0, noise])

            def pull(T, noisy=noisy):
                change = kl_divergence_grad(student, noisy, T) - kl_divergence_grad(student, teacher, T)
                return abs(T * T * change[3])

            assert pull(2.0) < 0.02 * abs(noise)
            assert pull(1e5) == pytest.approx(abs(noise) * (1 - 1 / n) / n, rel=1e-3)
            assert pull(1.0) < pull(2.0) < pull(4.0) < pull(16.0)  # T sets how far down the student listens


class TestReduction:
    def test_mean_over_elements_is_n_times_too_small(self, rng):
        z, v, T = rng.normal(size=(6, 10)), rng.normal(size=(6, 10)), 3.0
        per_sample = kl_divergence(z, v, T, reduction="none")
        batchmean = kl_divergence(z, v, T)  # kdcore's "mean": over samples
        assert batchmean == pytest.approx(per_sample.sum() / 6, rel=1e-15)
        elementwise = per_sample.sum() / z.size  # a mean over samples *and* classes
        assert batchmean / elementwise == pytest.approx(10, rel=1e-14)
        grad = kl_divergence_grad(z, v, T)
        np.testing.assert_allclose(grad, kl_divergence_grad(z, v, T, reduction="none") / 6, rtol=1e-15)


class TestAccurateKl:
    def test_reformulation_equals_the_textbook_sum(self, rng):
        # docs/math.md §11, written out with plain NumPy on ordinary inputs (where the textbook sum is fine).
        z, v, T = rng.normal(size=7) * 2, rng.normal(size=7) * 2, 1.5
        p, q = softmax(z, T), softmax(v, T)
        d = (z - v) / T
        f = d - np.sum(q * d)
        textbook = np.sum(q * (np.log(q) - np.log(p)))
        assert np.log1p(np.sum(q * (np.exp(f) - 1 - f))) == pytest.approx(textbook, rel=1e-12)
        assert np.log(np.sum(q * np.exp(f))) == pytest.approx(textbook, rel=1e-12)
        np.testing.assert_allclose(np.log(p) - np.log(q), f - textbook, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(p - q, q * np.expm1(f - textbook), rtol=1e-10, atol=1e-16)
        assert kl_divergence(z, v, T) == pytest.approx(textbook, rel=1e-12)

    def test_a_wrong_centre_costs_a_relative_error_of_its_own_size(self, rng):
        # §11: with f − δ in place of f, log1p(Σ q (e^{f−δ} − 1 − (f − δ))) = KL − δ(1 − e^{−KL}) + δ²/2 + O(δ³).
        # Evaluated with 60 digits (mpmath), so that the δ·KL term is not hidden by float64 rounding.
        mpmath = pytest.importorskip("mpmath")
        mpmath.mp.dps = 60
        v = rng.normal(size=6)
        z = v + 1e-4 * rng.normal(size=6)
        q = [mpmath.mpf(x) for x in softmax(v)]  # any distribution will do; normalise it exactly
        q = [x / mpmath.fsum(q) for x in q]
        d = [mpmath.mpf(a) - mpmath.mpf(b) for a, b in zip(z, v, strict=True)]
        centre = mpmath.fsum(qi * di for qi, di in zip(q, d, strict=True))
        f = [di - centre for di in d]

        def log1p_form(g):
            return mpmath.log1p(
                mpmath.fsum(qi * (mpmath.exp(gi) - 1 - gi) for qi, gi in zip(q, g, strict=True))
            )

        kl = log1p_form(f)
        assert kl == pytest.approx(kl_divergence(z, v), rel=1e-12)
        for delta in (mpmath.mpf("1e-16"), mpmath.mpf("-3e-15"), mpmath.mpf("1e-7")):
            change = log1p_form([fi - delta for fi in f]) - kl
            predicted = -delta * -mpmath.expm1(-kl) + delta**2 / 2
            assert float(abs(change - predicted)) < 1e-3 * float(abs(predicted))
            if abs(delta) < 1e-12:  # δ ≪ |f|: the first-order term, a relative error of δ, dominates
                assert float(abs(change) / kl) == pytest.approx(float(abs(delta)), rel=1e-3)


# ------------------------------------------------------------------- beyond Hinton: docs/math.md §14–§18


def softmax_jacobian_z(p, T):
    """∂p/∂z = (diag p − p pᵀ)/T: [i, j] = ∂p_i/∂z_j."""
    return (np.diag(p) - np.outer(p, p)) / T


class TestReverseKlDerivation:
    """docs/math.md §14: ∂KL(p‖q)/∂z = p ⊙ (log p − log q − R)/T, ∂/∂v = (q − p)/T, and ∂/∂T by the chain rule."""

    def test_student_gradient_term_by_term(self, rng):
        z, v, T = rng.normal(size=6) * 2, rng.normal(size=6) * 2, 1.5
        p, q = softmax(z, T), softmax(v, T)
        log_ratio = np.log(p) - np.log(q)
        reverse = float(kdcore.reverse_kl_divergence(z, v, T))
        jacobian = softmax_jacobian_z(p, T)
        # R = Σ p_i (log p_i − log q_i): the product rule gives two sums; the second, Σ p_i ∂log p_i/∂z_j, is 0.
        first = log_ratio @ jacobian
        second = p @ (jacobian / p[:, None])
        np.testing.assert_allclose(second, 0, atol=1e-16)
        np.testing.assert_allclose(first, p * (log_ratio - reverse) / T, rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(
            kdcore.reverse_kl_divergence_grad(z, v, T), p * (log_ratio - reverse) / T, rtol=1e-12, atol=1e-16
        )
        assert not np.allclose(kdcore.reverse_kl_divergence_grad(z, v, T), (p - q) / T)  # not the forward's

    def test_teacher_and_temperature_derivatives(self, rng):
        z, v, T = rng.normal(size=5) * 2, rng.normal(size=5) * 2, 0.8
        p, q = softmax(z, T), softmax(v, T)
        teacher_grad = kdcore.reverse_kl_divergence_grad(z, v, T, wrt="teacher")
        np.testing.assert_allclose(teacher_grad, (q - p) / T, rtol=1e-12, atol=1e-16)
        # R depends on T only through z/T and v/T: ∂R/∂T = −(⟨∂R/∂z, z⟩ + ⟨∂R/∂v, v⟩)/T.
        student_grad = kdcore.reverse_kl_divergence_grad(z, v, T)
        chain = -(student_grad @ z + teacher_grad @ v) / T
        assert kdcore.reverse_kl_divergence_grad(z, v, T, wrt="temperature") == pytest.approx(
            chain, rel=1e-10
        )


def jsd_of_probs(p, q, beta):
    """JSD_β as docs/math.md §15 writes it, from the two distributions (no softmax)."""
    m = beta * q + (1 - beta) * p
    return beta * np.sum(q * np.log(q / m)) + (1 - beta) * np.sum(p * np.log(p / m))


class TestGeneralisedJsd:
    """docs/math.md §15: the definition and which side β weighs, the partials, the gradients and the limits."""

    def test_beta_weighs_the_teacher(self, rng):
        z, v, T, beta = rng.normal(size=6) * 3, rng.normal(size=6) * 3, 1.0, 0.3
        p, q = softmax(z, T), softmax(v, T)
        value = float(kdcore.jensen_shannon_divergence(z, v, T, beta=beta))
        assert value == pytest.approx(jsd_of_probs(p, q, beta), rel=1e-12)
        # GKD's D_JSD(β)(P‖Q) with P the teacher; exchanging the two exchanges β and 1 − β.
        assert value == pytest.approx(
            float(kdcore.jensen_shannon_divergence(v, z, T, beta=1 - beta)), rel=1e-12
        )
        # (and β is not symmetric: the other weighting is another number)
        assert abs(value - float(kdcore.jensen_shannon_divergence(z, v, T, beta=1 - beta))) > 1e-2 * value
        # trl's form: the mixture as logsumexp(student_log_probs + log(1 − β), teacher_log_probs + log β).
        log_p, log_q = np.log(p), np.log(q)
        log_m = np.logaddexp(log_p + np.log(1 - beta), log_q + np.log(beta))
        trl = beta * np.sum(q * (log_q - log_m)) + (1 - beta) * np.sum(p * (log_p - log_m))
        assert value == pytest.approx(trl, rel=1e-10)

    def test_partial_derivatives_as_derived(self, rng):
        # ∂JSD/∂p_i = (1 − β) log(p_i/M_i) + const and ∂JSD/∂q_i = β log(q_i/M_i) + const, with p and q free.
        p, q, beta = softmax(rng.normal(size=5)), softmax(rng.normal(size=5)), 0.35
        m = beta * q + (1 - beta) * p
        step = 1e-6
        for which, point, expected in (("p", p, (1 - beta) * np.log(p / m)), ("q", q, beta * np.log(q / m))):
            numeric = np.empty(point.size)
            for i in range(point.size):
                shift = step * np.eye(point.size)[i]
                args = (
                    ((point + shift, q), (point - shift, q))
                    if which == "p"
                    else ((p, point + shift), (p, point - shift))
                )
                numeric[i] = (jsd_of_probs(*args[0], beta) - jsd_of_probs(*args[1], beta)) / (2 * step)
            # equal up to a constant: a constant is what the softmax's Jacobian removes
            np.testing.assert_allclose(numeric - numeric.mean(), expected - expected.mean(), atol=1e-8)

    def test_gradients_as_derived(self, rng):
        z, v, T, beta = rng.normal(size=6) * 2, rng.normal(size=6) * 2, 1.7, 0.6
        p, q = softmax(z, T), softmax(v, T)
        m = beta * q + (1 - beta) * p
        ell, ell_teacher = np.log(p / m), np.log(q / m)
        np.testing.assert_allclose(
            kdcore.jensen_shannon_divergence_grad(z, v, T, beta=beta),
            (1 - beta) * p * (ell - p @ ell) / T,
            rtol=1e-11,
            atol=1e-16,
        )
        np.testing.assert_allclose(
            kdcore.jensen_shannon_divergence_grad(z, v, T, beta=beta, wrt="teacher"),
            beta * q * (ell_teacher - q @ ell_teacher) / T,
            rtol=1e-11,
            atol=1e-16,
        )

    def test_limits_with_their_first_order_terms(self, rng):
        # JSD_β/β = KL(q‖p) − (β/2) χ²(q‖p) + O(β²), and at the other end with p and q exchanged.
        z, v, T = rng.normal(size=5), rng.normal(size=5), 1.3
        p, q = softmax(z, T), softmax(v, T)
        forward, reverse = float(kl_divergence(z, v, T)), float(kdcore.reverse_kl_divergence(z, v, T))
        chi_qp, chi_pq = np.sum((q - p) ** 2 / p), np.sum((p - q) ** 2 / q)
        for gap in (1e-3, 1e-4):
            near_zero = float(kdcore.jensen_shannon_divergence(z, v, T, beta=gap))
            near_one = float(kdcore.jensen_shannon_divergence(z, v, T, beta=1 - gap))
            assert (near_zero / gap - forward) / gap == pytest.approx(-chi_qp / 2, rel=20 * gap)
            assert (near_one / gap - reverse) / gap == pytest.approx(-chi_pq / 2, rel=20 * gap)
        assert float(kdcore.jensen_shannon_divergence(z, v, T, beta=0.0)) == 0.0
        assert float(kdcore.jensen_shannon_divergence(z, v, T, beta=1.0)) == 0.0


class TestSkewKl:
    """docs/math.md §16: DistiLLM's skew KLs, their gradients, and the JSD as a sum of two of them."""

    def test_gradients_as_derived(self, rng):
        z, v, T, alpha = rng.normal(size=6) * 2, rng.normal(size=6) * 2, 1.2, 0.2
        p, q = softmax(z, T), softmax(v, T)
        m = alpha * q + (1 - alpha) * p  # SKL's mixture: α of the teacher
        t, g = 1 - q / m, np.log(q / m) - alpha * (q / m - 1)
        skl = kdcore.skew_kl_divergence_grad
        np.testing.assert_allclose(
            skl(z, v, T, skew=alpha), (1 - alpha) * p * (t - p @ t) / T, rtol=1e-11, atol=1e-16
        )
        np.testing.assert_allclose(
            skl(z, v, T, skew=alpha, wrt="teacher"), q * (g - q @ g) / T, rtol=1e-11, atol=1e-16
        )
        m = alpha * p + (1 - alpha) * q  # SRKL's mixture: α of the student
        t, g = 1 - p / m, np.log(p / m) - alpha * (p / m - 1)
        srkl = kdcore.skew_reverse_kl_divergence_grad
        np.testing.assert_allclose(srkl(z, v, T, skew=alpha), p * (g - p @ g) / T, rtol=1e-11, atol=1e-16)
        np.testing.assert_allclose(
            srkl(z, v, T, skew=alpha, wrt="teacher"),
            (1 - alpha) * q * (t - q @ t) / T,
            rtol=1e-11,
            atol=1e-16,
        )

    def test_jsd_is_a_weighted_sum_of_skew_kls(self, rng):
        z, v, T, beta = rng.normal(size=6) * 2, rng.normal(size=6) * 2, 0.9, 0.3
        jsd = kdcore.jensen_shannon_divergence(z, v, T, beta=beta)
        parts = beta * kdcore.skew_kl_divergence(z, v, T, skew=beta) + (
            1 - beta
        ) * kdcore.skew_reverse_kl_divergence(z, v, T, skew=1 - beta)
        assert float(jsd) == pytest.approx(float(parts), rel=1e-12)

    def test_bounded_by_log_one_over_alpha(self):
        # A student that rules out the teacher's top class: the plain KL is infinite, the skew KL is not.
        z, v = np.array([-np.inf, 0.0, 0.0]), np.array([5.0, 0.0, 0.0])
        for alpha in (0.1, 0.5):
            value = float(kdcore.skew_kl_divergence(z, v, skew=alpha))
            assert np.isfinite(value) and value <= np.log(1 / alpha)
        assert float(kl_divergence(z, v)) == np.inf


class TestDecoupledKdDerivation:
    """docs/math.md §17: the chain rule of KL that DKD decouples, the exact non-target distribution, T²."""

    def test_chain_rule_as_derived(self, rng):
        z, v, T, t = rng.normal(size=6) * 2, rng.normal(size=6) * 2, 3.0, 2
        p, q = softmax(z, T), softmax(v, T)
        rest = np.arange(6) != t
        p_bar, q_bar = p[rest].sum(), q[rest].sum()
        p_hat, q_hat = p[rest] / p_bar, q[rest] / q_bar
        # p̂ is exactly the softmax of the logits with the target masked: no "−1000" needed.
        np.testing.assert_allclose(softmax(np.where(rest, z, -np.inf), T)[rest], p_hat, rtol=1e-14)
        tckd = q[t] * np.log(q[t] / p[t]) + q_bar * np.log(q_bar / p_bar)
        nckd = np.sum(q_hat * np.log(q_hat / p_hat))
        assert float(kdcore.target_class_kl_divergence(z, v, t, T)) == pytest.approx(tckd, rel=1e-11)
        assert float(kdcore.non_target_class_kl_divergence(z, v, t, T)) == pytest.approx(nckd, rel=1e-11)
        assert tckd + q_bar * nckd == pytest.approx(float(kl_divergence(z, v, T)), rel=1e-11)
        alpha, beta = 1.0, 8.0
        dkd = float(kdcore.decoupled_kd_loss(z, v, t, T, alpha, beta))
        assert dkd == pytest.approx(T**2 * (alpha * tckd + beta * nckd), rel=1e-11)

    def test_student_gradients_as_derived(self, rng):
        z, v, T, t = rng.normal(size=6) * 2, rng.normal(size=6) * 2, 2.0, 4
        p, q = softmax(z, T), softmax(v, T)
        rest = np.arange(6) != t
        p_hat = np.where(rest, p, 0) / p[rest].sum()
        q_hat = np.where(rest, q, 0) / q[rest].sum()
        d = p[t] - q[t]
        tckd_grad = np.where(rest, -d * p_hat, d) / T  # binary KL gradient (d, −d), passed on through p̂
        nckd_grad = (p_hat - q_hat) / T
        np.testing.assert_allclose(
            kdcore.target_class_kl_divergence_grad(z, v, t, T), tckd_grad, rtol=1e-11, atol=1e-16
        )
        np.testing.assert_allclose(
            kdcore.non_target_class_kl_divergence_grad(z, v, t, T), nckd_grad, rtol=1e-11, atol=1e-16
        )
        np.testing.assert_allclose(
            kdcore.decoupled_kd_loss_grad(z, v, t, T, 1.0, 8.0),
            T**2 * (tckd_grad + 8.0 * nckd_grad),
            rtol=1e-11,
            atol=1e-16,
        )


class TestLogitStandardisation:
    """docs/math.md §18: the z-score's Jacobian as derived, a projection when ε = 0."""

    @pytest.mark.parametrize(("tau", "ddof", "eps"), [(1.0, 0, 0.0), (2.0, 1, 1e-3)])
    def test_jacobian_as_derived(self, rng, tau, ddof, eps):
        x = rng.normal(size=7) * 3
        n = x.size
        u = x - x.mean()
        sigma = np.sqrt(np.sum(u**2) / (n - ddof))
        y_hat = u / sigma
        jacobian = (np.eye(n) - 1 / n - sigma * np.outer(y_hat, y_hat) / ((n - ddof) * (sigma + eps))) / (
            tau * (sigma + eps)
        )
        got = kdcore.standardize_logits_jacobian(x, base_temperature=tau, ddof=ddof, eps=eps)
        np.testing.assert_allclose(got, jacobian, rtol=1e-12, atol=1e-15)
        report = kdcore.gradcheck.check_vjp(
            lambda s: kdcore.standardize_logits(s, base_temperature=tau, ddof=ddof, eps=eps),
            lambda s, c: kdcore.standardize_logits_vjp(s, c, base_temperature=tau, ddof=ddof, eps=eps),
            x,
        )
        assert report.passed, str(report)

    def test_a_projection_for_epsilon_zero(self, rng):
        x, tau = rng.normal(size=6), 1.5
        sigma = x.std()
        projection = tau * sigma * kdcore.standardize_logits_jacobian(x, base_temperature=tau)
        np.testing.assert_allclose(projection @ projection, projection, atol=1e-13)
        np.testing.assert_allclose(projection, projection.T, atol=1e-15)
        assert np.trace(projection) == pytest.approx(x.size - 2)  # the null space is span{1, ŷ}
        np.testing.assert_allclose(projection @ np.ones(6), 0, atol=1e-13)
        np.testing.assert_allclose(projection @ (x - x.mean()), 0, atol=1e-12)


# ------------------------------------------------------------------------------------------ docs hygiene

CITATION = re.compile(r"`(tests/[\w/]+\.py)::(\w+)::(\w+)`")
NOTEBOOK_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@functools.cache
def methods_of(file):
    """{class name: {method names}} of a test file, parsed once."""
    tree = ast.parse((REPO / file).read_text(encoding="utf-8"))
    return {
        node.name: {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }


def markdown_files():
    # The pages written with this file's tests (docs/verify.md has its own, in tests/test_verify.py).
    return [DOCS / name for name in ("math.md", "tutorial.md", "figures.md")]


class TestDocs:
    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
    def test_every_cited_test_exists(self, path):
        for file, cls, test in CITATION.findall(path.read_text(encoding="utf-8")):
            assert (REPO / file).exists(), f"{path.name} cites {file}, which does not exist"
            classes = methods_of(file)
            assert cls in classes, f"{path.name} cites {file}::{cls}, which does not exist"
            assert test in classes[cls], f"{path.name} cites {file}::{cls}::{test}, which does not exist"

    def test_math_cites_tests(self):
        assert len(CITATION.findall((DOCS / "math.md").read_text(encoding="utf-8"))) >= 30

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
    def test_every_code_block_is_a_doctest(self, path):
        # `make test` runs every `>>>` session in docs/ and every notebook cell (TestTutorial); any other
        # block would be code nobody runs.
        for block in FENCE.findall(NOTEBOOK_CELL.sub("", path.read_text(encoding="utf-8"))):
            assert block.lstrip().startswith(">>> "), (
                f"{path.name}: a code block is not a doctest:\n{block[:200]}"
            )
            assert block.endswith("\n\n"), (
                f"{path.name}: end each doctest block with a blank line:\n{block[-200:]}"
            )

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
    def test_images_and_local_links_exist(self, path):
        text = path.read_text(encoding="utf-8")
        for target in IMAGE.findall(text):
            assert (path.parent / target).is_file(), f"{path.name} shows {target}, which does not exist"
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", text):
            assert (path.parent / target).is_file(), f"{path.name} links {target}, which does not exist"

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
    def test_anchors_exist(self, path):
        # GitHub's heading ids: lower case, punctuation other than - and _ dropped, spaces to hyphens.
        def anchors(markdown):
            headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
            return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}

        text = path.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", text):
            linked = path if not target else path.parent / target
            assert anchor in anchors(linked.read_text(encoding="utf-8")), (
                f"{path.name} links {target}#{anchor}"
            )

    def test_the_gallery_shows_every_figure(self):
        from kdcore.figures import FIGURES

        text = (DOCS / "figures.md").read_text(encoding="utf-8")
        for name in FIGURES:
            assert f"img/{name}.png" in text, f"docs/figures.md does not show {name}"


class TestNumbersQuoted:
    """A number one page quotes from another is read from that page, not typed twice."""

    # docs/accuracy.md has three tables, each written by benchmarks/accuracy_report.py --write (the core
    # losses; the divergences of modern distillation, ``--family``; top-k, ``--topk``), each ending with this line.
    FAMILY = "## The divergences of modern distillation"
    TOPK = "## Top-k teachers"  # the third table, written by accuracy_report.py --topk --write

    @staticmethod
    def measured_worst(section: int = 0):
        page = (DOCS / "accuracy.md").read_text(encoding="utf-8")
        head, topk = page.split(TestNumbersQuoted.TOPK)
        text = [*head.split(TestNumbersQuoted.FAMILY), topk][section]
        worst, contract = re.search(r"worst over everything: (\S+) \(contract: (\S+)\)", text).groups()
        table = [float(x) for x in re.findall(r"\| (\d\.\de[-+]\d\d)", text)]
        assert table and max(table) == pytest.approx(float(worst), rel=0.01), (
            "accuracy.md disagrees with itself"
        )
        return float(worst), contract

    def test_the_family_table_agrees_with_itself_and_keeps_the_contract(self):
        worst, contract = self.measured_worst(section=1)
        assert worst <= float(contract)

    def test_the_topk_table_agrees_with_itself_keeps_the_contract_and_covers_every_quantity(self):
        worst, contract = self.measured_worst(section=2)
        assert worst <= float(contract)
        sys.path.insert(0, str(REPO / "tests"))
        import topk_cases

        text = (DOCS / "accuracy.md").read_text(encoding="utf-8").split(self.TOPK)[1]
        rows = re.findall(r"^\| `([^`]+)` \|", text, re.MULTILINE)
        assert rows == list(topk_cases.QUANTITIES)  # every quantity the test asserts, in the report's order
        header = re.search(r"^\| quantity \| (.+) \|$", text, re.MULTILINE).group(1)
        assert [re.sub(r" \(\d+\)$", "", cell) for cell in header.split(" | ")] == topk_cases.REGIMES

    def test_readme_quotes_the_measured_worst_and_the_contract(self):
        worst, contract = self.measured_worst()
        readme = (REPO / "README.md").read_text(encoding="utf-8")
        assert f"worst error measured is {worst:.1e}" in readme
        assert f"within {contract} relative of a 50-digit mpmath oracle" in readme
        assert "1e-15" not in readme  # the old, unmeasured claim


class TestTutorial:
    """docs/tutorial.md is a MyST notebook: `make docs` executes it (myst-nb), and so does this test."""

    def test_is_a_myst_notebook(self):
        text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
        front = text.split("---", 2)[1]
        assert "format_name: myst" in front and "name: python3" in front
        assert len(NOTEBOOK_CELL.findall(text)) >= 15

    def test_every_cell_runs(self, monkeypatch):
        # The cells run in order in one namespace, in docs/ (as the docs build runs them), with the warnings
        # filter of the test suite: a cell that raises, fails an assertion or warns fails `make test`.
        pytest.importorskip("matplotlib")
        pytest.importorskip("sklearn")
        monkeypatch.chdir(DOCS)
        namespace = {"__name__": "__tutorial__"}
        for number, cell in enumerate(
            NOTEBOOK_CELL.findall((DOCS / "tutorial.md").read_text(encoding="utf-8"))
        ):
            # IPython magics (`%matplotlib inline`) only set up the notebook's display; plain Python skips them.
            python = "\n".join(line for line in cell.splitlines() if not line.startswith("%"))
            code = compile(python, f"docs/tutorial.md, cell {number}", "exec")
            exec(code, namespace)  # our own notebook: running it is the test
        assert np.mean(namespace["distilled"]) > np.mean(namespace["labels_only"])  # the training cells ran

    def test_the_fifty_minute_path_adds_up(self):
        text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
        rows = re.findall(r"^\| \d+ \| core: [^|]+\| (\d+) \|", text, re.MULTILINE)
        assert sum(int(minutes) for minutes in rows) == 50
        headings = re.findall(r"^## \d+\. .* \(core, (\d+) min\)$", text, re.MULTILINE)
        assert sorted(headings) == sorted(rows)

    def test_exercises_have_solutions(self):
        text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
        exercises, solutions = text.split("## Appendix: solutions")
        for label in re.findall(r"^- \*\*([PC]\d)\.\*\*", exercises, re.MULTILINE):
            assert f"**{label}.**" in solutions, f"exercise {label} has no solution"


def api_generator():
    """docs/_ext/kdcore_api.py, which writes the site's API reference (it needs no Sphinx to import)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kdcore_api", DOCS / "_ext" / "kdcore_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestApiReference:
    def test_every_public_name_is_documented(self):
        generator = api_generator()
        text = generator.api_reference()
        for name in kdcore.__all__:
            if name.startswith("__"):
                continue
            value = getattr(kdcore, name)
            if inspect.ismodule(value):
                assert f".. automodule:: {value.__name__}" in text, name
            else:
                assert re.search(rf"^\.\. (?:auto\w+|py:data):: {name}$", text, re.MULTILINE), (
                    f"kdcore.{name} is not in the API page"
                )
        for short in generator.public_submodules(kdcore):
            module = importlib.import_module(f"kdcore.{short}")
            for name in generator.module_members(module):
                value = getattr(module, name)
                listed = re.search(rf"^\.\. (?:auto\w+|py:data):: {name}$", text, re.MULTILINE)
                assert listed, f"kdcore.{short}.{name} is not in the API page"
                assert value is not None

    def test_the_site_check_catches_a_missing_name(self):
        generator = api_generator()
        ids = generator.anchors(generator.api_reference())
        assert "kdcore.softmax" in ids and "module-kdcore.gradcheck" in ids
        assert "kdcore.gradcheck.check_gradient" in ids
        page = " ".join(f'id="{name}"' for name in ids)
        assert generator.missing_from_site(page) == []
        assert generator.missing_from_site(page.replace('id="kdcore.softmax"', "")) == ["kdcore.softmax"]
