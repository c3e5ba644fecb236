"""Self-test of the oracle's new divergences (tests/oracle.py, second part): closed forms, mpmath.diff.

The oracle's reverse KL, skew KLs, generalised JSD, DKD parts and logit standardisation are trusted only as
far as these reach: values against SciPy on ordinary inputs and against hand-worked closed forms;
closed-form derivatives against ``mpmath.diff`` of the oracle's own values at 50 digits.
"""

import mpmath
import numpy as np
import oracle
import pytest
import scipy.special
from test_oracle import DPS, MPMATH_DIFF_RTOL, mp_rel_error, mp_row, partial

WRT = ("student", "teacher", "temperature")
SCIPY_RTOL = 1e-13
ROWS = {
    "ordinary": ([0.3, -1.2, 2.5, 0.0], [1.0, 0.5, -0.7, 2.0], 1.7),
    "teacher_masks": ([0.3, -1.2, 2.5, 0.0], [1.0, -np.inf, -0.7, 2.0], 0.8),
    "student_masks": ([0.3, -np.inf, 2.5, 0.0], [1.0, 0.5, -0.7, 2.0], 1.3),
    "both_mask": ([0.3, -np.inf, 2.5, 0.0], [1.0, -np.inf, -0.7, 2.0], 3.0),
    "cold": ([0.3, -0.2, 0.25, 0.0], [0.1, 0.05, -0.07, 0.2], 0.05),
}


def probs(logits, T):
    return scipy.special.softmax(np.asarray(logits, float) / T, axis=-1)


def kl(a, b):
    return scipy.special.rel_entr(a, b).sum(axis=-1)


# (name, oracle mp function, extra keyword, its values, how SciPy computes the value from p, q, weight)
MIXTURES = {
    "skew_kl": (
        oracle.mp_skew_kl_divergence,
        "skew",
        (0.0, 0.1, 0.7),
        lambda p, q, w: kl(q, w * q + (1 - w) * p),
    ),
    "skew_reverse_kl": (
        oracle.mp_skew_reverse_kl_divergence,
        "skew",
        (0.1, 0.7, 1.0),
        lambda p, q, w: kl(p, w * p + (1 - w) * q),
    ),
    "jsd": (
        oracle.mp_jensen_shannon_divergence,
        "beta",
        (0.1, 0.5, 0.9),
        lambda p, q, w: w * kl(q, w * q + (1 - w) * p) + (1 - w) * kl(p, w * q + (1 - w) * p),
    ),
}


class TestValuesAgainstScipy:
    @pytest.mark.parametrize("name", MIXTURES)
    def test_mixtures(self, name, rng):
        _, keyword, weights, reference = MIXTURES[name]
        z, v = rng.normal(size=(4, 6)) * 2, rng.normal(size=(4, 6)) * 2
        for weight in weights:
            ours = getattr(
                oracle,
                {
                    "skew_kl": "skew_kl_divergence",
                    "skew_reverse_kl": "skew_reverse_kl_divergence",
                    "jsd": "jensen_shannon_divergence",
                }[name],
            )(z, v, 1.5, **{keyword: weight})
            np.testing.assert_allclose(ours, reference(probs(z, 1.5), probs(v, 1.5), weight), rtol=SCIPY_RTOL)

    def test_reverse_kl(self, rng):
        z, v = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
        np.testing.assert_allclose(
            oracle.reverse_kl_divergence(z, v, 0.7), kl(probs(z, 0.7), probs(v, 0.7)), rtol=SCIPY_RTOL
        )

    def test_dkd_parts(self, rng):
        z, v, y, T = rng.normal(size=(5, 6)) * 2, rng.normal(size=(5, 6)) * 2, rng.integers(0, 6, 5), 4.0
        p, q = probs(z, T), probs(v, T)
        rows = np.arange(5)
        p_t, q_t = p[rows, y], q[rows, y]
        binary = kl(np.stack([q_t, 1 - q_t], -1), np.stack([p_t, 1 - p_t], -1))
        np.testing.assert_allclose(oracle.target_class_kl_divergence(z, v, y, T), binary, rtol=SCIPY_RTOL)
        keep = np.ones_like(p, bool)
        keep[rows, y] = False
        p_hat = p[keep].reshape(5, 5) / (1 - p_t)[:, None]
        q_hat = q[keep].reshape(5, 5) / (1 - q_t)[:, None]
        np.testing.assert_allclose(
            oracle.non_target_class_kl_divergence(z, v, y, T), kl(q_hat, p_hat), rtol=SCIPY_RTOL
        )
        np.testing.assert_allclose(
            oracle.decoupled_kd_loss(z, v, y, T, 1.0, 8.0),
            T**2 * (binary + 8 * kl(q_hat, p_hat)),
            rtol=SCIPY_RTOL,
        )

    def test_standardize(self, rng):
        x = rng.normal(size=(3, 7)) * 5 + 2
        for ddof in (0, 1):
            expected = (x - x.mean(-1, keepdims=True)) / (x.std(-1, ddof=ddof, keepdims=True) + 1e-7) / 2.0
            np.testing.assert_allclose(
                oracle.standardize_logits(x, 2.0, ddof, 1e-7), expected, rtol=SCIPY_RTOL
            )


class TestClosedForms:
    def test_disjoint_supports(self):
        # JSD_β of distributions with disjoint supports is the entropy of (β, 1 − β); skew KL is log(1/α).
        z, v = np.array([[0.0, -np.inf]]), np.array([[-np.inf, 0.0]])
        for beta in (0.5, 0.2):
            entropy = -(beta * np.log(beta) + (1 - beta) * np.log(1 - beta))
            assert oracle.jensen_shannon_divergence(z, v, 1.0, beta)[0] == pytest.approx(entropy, rel=1e-15)
        assert oracle.skew_kl_divergence(z, v, 1.0, 0.25)[0] == pytest.approx(np.log(4), rel=1e-15)
        assert oracle.skew_reverse_kl_divergence(z, v, 1.0, 0.25)[0] == pytest.approx(np.log(4), rel=1e-15)

    def test_endpoints(self):
        z, v = np.array([[0.3, -1.0, 2.0]]), np.array([[1.0, 0.0, -0.5]])
        forward, reverse = oracle.kl_divergence(z, v), oracle.reverse_kl_divergence(z, v)
        assert oracle.skew_kl_divergence(z, v, 1.0, 0.0) == pytest.approx(forward, rel=1e-15)
        assert oracle.skew_reverse_kl_divergence(z, v, 1.0, 0.0) == pytest.approx(reverse, rel=1e-15)
        for weight in (0.0, 1.0):
            assert oracle.jensen_shannon_divergence(z, v, 1.0, weight)[0] == 0
            assert oracle.skew_kl_divergence(z, v, 1.0, 1.0)[0] == 0

    def test_standardized_row_has_zero_mean_and_unit_deviation(self, rng):
        y = oracle.standardize_logits(rng.normal(size=(2, 9)) * 1e6 + 1e12)
        np.testing.assert_allclose(y.mean(-1), 0, atol=1e-15)
        np.testing.assert_allclose(y.std(-1), 1, rtol=1e-15)


def mp_case(name):
    student, teacher, T = ROWS[name]
    return mp_row(student), mp_row(teacher), mpmath.mpf(T)


def check_against_diff(value, grad, student, teacher, T):
    for wrt in WRT:
        closed_form = grad(student, teacher, T, wrt)
        if wrt == "temperature":
            numeric = mpmath.diff(lambda t: value(student, teacher, t), T)
        else:
            which = 0 if wrt == "student" else 1
            row = (student, teacher)[which]
            numeric = [mpmath.mpf(0)] * len(row)
            for j, x in enumerate(row):
                if mpmath.isfinite(x):
                    numeric[j] = partial(lambda z, v: value(z, v, T), (student, teacher), which, j)
        assert mp_rel_error(closed_form, numeric) <= MPMATH_DIFF_RTOL, wrt


class TestDerivativesAgainstMpmathDiff:
    @pytest.mark.parametrize("name", MIXTURES)
    @pytest.mark.parametrize("case", ROWS)
    def test_mixtures(self, name, case):
        function, keyword, weights, _ = MIXTURES[name]
        with mpmath.workdps(DPS):
            student, teacher, T = mp_case(case)
            for weight in weights:
                value = lambda z, v, t, w=weight: function(z, v, t, **{keyword: w})  # noqa: E731
                if mpmath.isinf(value(student, teacher, T)):
                    continue  # the plain KL where a mask makes it infinite: no derivative
                grad = lambda z, v, t, wrt, w=weight: function(z, v, t, **{keyword: w}, wrt=wrt)  # noqa: E731
                check_against_diff(value, grad, student, teacher, T)

    @pytest.mark.parametrize("case", ["ordinary", "teacher_masks", "cold"])
    def test_reverse_kl_and_its_hessian(self, case):
        with mpmath.workdps(DPS):
            student, teacher, T = mp_case(case)
            if case == "teacher_masks":  # the teacher masks a class the student predicts: +inf
                assert oracle.mp_reverse_kl_divergence(student, teacher, T) == mpmath.inf
                return
            check_against_diff(
                oracle.mp_reverse_kl_divergence, oracle.mp_reverse_kl_divergence_grad, student, teacher, T
            )
            hessian = oracle.mp_reverse_kl_divergence_hessian(student, teacher, T)
            for i in range(len(student)):
                numeric = [
                    partial(
                        lambda z, i=i: oracle.mp_reverse_kl_divergence_grad(z, teacher, T)[i],
                        (student,),
                        0,
                        j,
                    )
                    for j in range(len(student))
                ]
                assert mp_rel_error(hessian[i], numeric) <= MPMATH_DIFF_RTOL

    @pytest.mark.parametrize("label", [0, 2])
    @pytest.mark.parametrize("case", ["ordinary", "teacher_masks", "cold"])
    def test_dkd(self, label, case):
        with mpmath.workdps(DPS):
            student, teacher, T = mp_case(case)
            for function in (oracle.mp_target_class_kl_divergence, oracle.mp_non_target_class_kl_divergence):
                value = lambda z, v, t, f=function: f(z, v, label, t)  # noqa: E731
                grad = lambda z, v, t, wrt, f=function: f(z, v, label, t, wrt=wrt)  # noqa: E731
                check_against_diff(value, grad, student, teacher, T)
            value = lambda z, v, t: oracle.mp_decoupled_kd_loss(z, v, label, t, 1, 8)  # noqa: E731
            grad = lambda z, v, t, wrt: oracle.mp_decoupled_kd_loss(z, v, label, t, 1, 8, wrt=wrt)  # noqa: E731
            check_against_diff(value, grad, student, teacher, T)

    @pytest.mark.parametrize("ddof, eps", [(0, 0), (1, 1e-7)])
    def test_standardize_vjp(self, ddof, eps):
        with mpmath.workdps(DPS):
            x = mp_row([0.3, -np.inf, 2.5, 0.0, -1.25])
            c = mp_row([1.0, 7.0, -0.5, 0.25, 2.0])
            tau, eps = mpmath.mpf(2), mpmath.mpf(eps)
            vjp = oracle.mp_standardize_logits_vjp(x, c, tau, ddof, eps)
            numeric = [mpmath.mpf(0)] * len(x)
            for j in (0, 2, 3, 4):

                def inner(xj, j=j):
                    moved = list(x)
                    moved[j] = xj
                    y = oracle.mp_standardize_logits(moved, tau, ddof, eps)
                    return mpmath.fsum(
                        c_i * y_i for c_i, y_i in zip(c, y, strict=True) if mpmath.isfinite(y_i)
                    )

                numeric[j] = mpmath.diff(inner, x[j])
            assert mp_rel_error(vjp, numeric) <= MPMATH_DIFF_RTOL


class TestHessiansAgainstMpmathDiff:
    """The oracle's closed-form Hessians (mp_mixture_hessian, mp_decoupled_kd_loss_hessian) are the Jacobian
    of its gradient, by mpmath.diff at 50 digits: the derivation checked independently of kdcore."""

    @staticmethod
    def check(hessian, grad, student):
        for i in range(len(student)):
            if student[i] == mpmath.ninf:
                assert all(entry == 0 for entry in hessian[i])
                continue
            numeric = [
                partial(lambda z, i=i: grad(z)[i], (student,), 0, j) if student[j] != mpmath.ninf else 0
                for j in range(len(student))
            ]
            assert mp_rel_error(hessian[i], numeric) <= MPMATH_DIFF_RTOL, i

    @pytest.mark.parametrize("kind", ["skew_kl", "skew_reverse_kl", "jsd"])
    @pytest.mark.parametrize("case", ["ordinary", "student_masks", "cold"])
    def test_mixtures(self, kind, case):
        function = {
            "skew_kl": oracle.mp_skew_kl_divergence,
            "skew_reverse_kl": oracle.mp_skew_reverse_kl_divergence,
        }
        function = function.get(kind, oracle.mp_jensen_shannon_divergence)
        keyword = "beta" if kind == "jsd" else "skew"
        with mpmath.workdps(DPS):
            student, teacher, T = mp_case(case)
            for weight in (mpmath.mpf("0.1"), mpmath.mpf("0.6")):
                hessian = oracle.mp_mixture_hessian(student, teacher, T, kind, weight)
                grad = lambda z, w=weight: function(z, teacher, T, **{keyword: w}, wrt="student")  # noqa: E731
                self.check(hessian, grad, student)

    @pytest.mark.parametrize("label", [0, 2])
    @pytest.mark.parametrize("case", ["ordinary", "cold"])
    def test_dkd(self, label, case):
        with mpmath.workdps(DPS):
            student, teacher, T = mp_case(case)
            hessian = oracle.mp_decoupled_kd_loss_hessian(student, teacher, label, T, 1.5, 8)
            grad = lambda z: oracle.mp_decoupled_kd_loss(z, teacher, label, T, 1.5, 8, wrt="student")  # noqa: E731
            self.check(hessian, grad, student)
