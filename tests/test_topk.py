"""kdcore.topk: KL divergence and soft cross-entropy to a top-k teacher, under three named conventions.

Each derivative is checked three ways: finite differences (kdcore.gradcheck, hypothesis inputs), the closed
forms of the docstrings written out again with SciPy, and the 50-digit oracle of tests/topk_oracle.py (whose
derivatives are mpmath.diff of the definitions). PyTorch autograd: TestTorch at the end (``-m frameworks``).
"""

import warnings

import numpy as np
import pytest
import scipy.special
import topk_cases
import topk_oracle
from accuracy_cases import relative_error
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import LOGIT, TEMPERATURE, logit_shapes
from tolerances import FD_RTOL, FLOAT32_VS_FLOAT64_RTOL, ORACLE_RTOL

import kdcore
from kdcore import (
    gradcheck,
    kl_divergence,
    kl_divergence_grad,
    topk_kl_divergence,
    topk_kl_divergence_and_grad,
    topk_kl_divergence_grad,
    topk_soft_cross_entropy,
    topk_soft_cross_entropy_grad,
    topk_teacher,
)

F64 = np.dtype(np.float64)
CONVENTIONS = ("renormalized", "dense_student", "tail")
LOSSES = {
    "kl": (topk_kl_divergence, topk_kl_divergence_grad, False),
    "ce": (topk_soft_cross_entropy, topk_soft_cross_entropy_grad, True),
}


def values_kind(convention):
    """The tail needs log-probabilities; the others take either (log-probs exercise the validation too)."""
    return "log_probs" if convention == "tail" else "logits"


def teacher_of(v, k, convention):
    return topk_teacher(v, k, values=values_kind(convention))


def probs(logits, T=1.0):
    return scipy.special.softmax(np.asarray(logits, dtype=float) / T, axis=-1)


@st.composite
def topk_inputs(draw, max_classes=10, tail=False):
    """Student logits (..., V), dense teacher logits and a k in [1, V]. With ``tail``: k < V and teacher
    logits in [-4, 4], so that the teacher's remaining mass is not negligible (≥ e^-8/V)."""
    shape = draw(logit_shapes(max_batch=3, max_classes=max_classes))
    student = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    elements = st.floats(-4.0, 4.0) if tail else LOGIT
    teacher = draw(hnp.arrays(np.float64, shape, elements=elements))
    k = draw(st.integers(1, shape[-1] - 1 if tail else shape[-1]))
    return student, teacher, k


def inputs_for(convention, max_classes=10):
    return topk_inputs(max_classes=max_classes, tail=convention == "tail")


# ------------------------------------------------------------------------------------------------ helper


class TestTopkTeacher:
    def test_largest_first_and_log_probs_exact(self, rng):
        v = rng.normal(size=(2, 3, 7)) * 5
        values, indices = topk_teacher(v, 3)
        assert values.shape == indices.shape == (2, 3, 3) and indices.dtype == np.intp
        np.testing.assert_array_equal(values, -np.sort(-v, axis=-1)[..., :3])
        np.testing.assert_array_equal(np.take_along_axis(v, indices, -1), values)
        log_probs, same = topk_teacher(v, 3, values="log_probs")
        np.testing.assert_array_equal(same, indices)
        np.testing.assert_array_equal(log_probs, np.take_along_axis(kdcore.log_softmax(v), indices, -1))

    def test_ties_prefer_the_smaller_index(self):
        assert topk_teacher([1.0, 2.0, 2.0, 2.0], 2)[1].tolist() == [1, 2]

    def test_dtype(self):
        assert topk_teacher(np.ones(4, np.float32), 2)[0].dtype == np.float32

    @pytest.mark.parametrize(
        ("k", "error", "message"),
        [
            (0, ValueError, "k must be an integer ≥ 1, got k=0"),
            (5, ValueError, "k=5"),
            (2.0, TypeError, "k=2.0"),
        ],
    )
    def test_bad_k(self, k, error, message):
        with pytest.raises(error, match=message):
            topk_teacher(np.ones(4), k)


# ------------------------------------------------------------------------------------------------ value


class TestValue:
    @pytest.mark.parametrize("convention", CONVENTIONS)
    @given(data=st.data())
    def test_textbook_formula(self, convention, data):
        student, teacher, k = data.draw(inputs_for(convention))
        T = 1.0 if convention == "tail" else 2.0
        values, indices = teacher_of(teacher, k, convention)
        p = probs(student, T)
        p_k = np.take_along_axis(p, indices, -1)
        if convention == "tail" and k < student.shape[-1]:
            q_k = np.exp(values)
            q_rest, p_rest = 1 - q_k.sum(-1), 1 - p_k.sum(-1)
            assume((q_rest > 1e-6).all() and (p_rest > 1e-6).all())  # the textbook 1 − Σ needs room
            expected = scipy.special.rel_entr(q_k, p_k).sum(-1) + scipy.special.rel_entr(q_rest, p_rest)
        else:
            q_hat = probs(values, T)
            student_side = p_k if convention == "dense_student" else p_k / p_k.sum(-1, keepdims=True)
            expected = scipy.special.rel_entr(q_hat, student_side).sum(-1)
        actual = topk_kl_divergence(
            student, values, indices, T, "none", convention=convention, values=values_kind(convention)
        )
        np.testing.assert_allclose(actual, expected, rtol=1e-8, atol=1e-13)

    def test_dense_student_is_the_dense_kl_against_the_truncated_teacher(self, rng):
        z, v = rng.normal(size=(3, 10)), rng.normal(size=(3, 10))
        values, indices = topk_teacher(v, 4)
        dense = np.full_like(v, -np.inf)
        np.put_along_axis(dense, indices, values, -1)
        for wrt in ("student", "temperature"):
            np.testing.assert_array_equal(
                topk_kl_divergence_grad(z, values, indices, 2.0, "none", wrt, convention="dense_student"),
                kl_divergence_grad(z, dense, 2.0, "none", wrt),
            )

    @given(inputs=topk_inputs(), T=TEMPERATURE)
    def test_dense_student_is_renormalized_minus_log_student_mass(self, inputs, T):
        student, teacher, k = inputs
        values, indices = topk_teacher(teacher, k)
        mass = np.take_along_axis(probs(student, T), indices, -1).sum(-1)
        renormalized = topk_kl_divergence(student, values, indices, T, "none", convention="renormalized")
        dense = topk_kl_divergence(student, values, indices, T, "none", convention="dense_student")
        np.testing.assert_allclose(dense, renormalized - np.log(mass), rtol=1e-9, atol=1e-13)

    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_k_equal_to_V_is_the_dense_kl(self, convention, rng):
        z, v = rng.normal(size=(4, 6)) * 3, rng.normal(size=(4, 6)) * 3
        values, indices = teacher_of(v, 6, convention)
        T = 1.0 if convention == "tail" else 3.0
        ours = topk_kl_divergence(
            z, values, indices, T, "none", convention=convention, values=values_kind(convention)
        )
        np.testing.assert_allclose(ours, kl_divergence(z, v, T, "none"), rtol=1e-13)

    def test_log_probs_and_logits_agree_where_both_are_allowed(self, rng):
        z, v = rng.normal(size=(3, 8)), rng.normal(size=(3, 8)) * 2
        for convention in ("renormalized", "dense_student"):
            logits, indices = topk_teacher(v, 3)
            log_probs, _ = topk_teacher(v, 3, values="log_probs")
            a = topk_kl_divergence(z, logits, indices, 4.0, "none", convention=convention)
            b = topk_kl_divergence(
                z, log_probs, indices, 4.0, "none", convention=convention, values="log_probs"
            )
            np.testing.assert_allclose(a, b, rtol=1e-13)

    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_zero_where_the_student_reproduces_what_the_convention_keeps(self, convention):
        # renormalized: any student with the teacher's shape on K; dense_student: no mass outside K; tail:
        # the teacher's mass on K and the rest, however the student spreads it.
        indices = np.array([3, 0])
        if convention == "renormalized":
            z, values = np.array([1.0, 5.0, -2.0, 2.0]), np.array([7.0, 6.0])
        elif convention == "dense_student":
            z, values = np.array([1.0, -np.inf, -np.inf, 2.0]), np.array([2.0, 1.0])
        else:
            z = np.log(np.array([0.25, 0.1, 0.15, 0.5]))
            values = np.log(np.array([0.5, 0.25]))
        loss = topk_kl_divergence(z, values, indices, convention=convention, values=values_kind(convention))
        assert abs(float(loss)) < 1e-16

    def test_a_student_that_rules_out_a_stored_class_costs_infinity(self):
        z, values, indices = np.array([0.0, -np.inf, 1.0]), np.log([0.5, 0.3]), np.array([0, 1])
        for convention in CONVENTIONS:
            assert topk_kl_divergence(z, values, indices, convention=convention, values="log_probs") == np.inf

    def test_teacher_values_of_minus_infinity_are_classes_of_probability_zero(self):
        z = np.array([0.5, 1.0, -1.0, 0.0])
        with_masked = topk_kl_divergence(z, [1.0, -np.inf], [1, 2], convention="dense_student")
        assert with_masked == pytest.approx(
            float(topk_kl_divergence(z, [1.0], [1], convention="dense_student")), rel=1e-15
        )

    def test_nan_student_stays_in_its_position(self, rng):
        z, v = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
        z[1, 4] = np.nan
        for convention in CONVENTIONS:
            values, indices = teacher_of(v, 2, convention)
            loss = topk_kl_divergence(
                z, values, indices, 1.0, "none", convention=convention, values=values_kind(convention)
            )
            assert np.isnan(loss[1]) == (convention != "renormalized" or 4 in indices[1])
            assert np.isfinite(loss[[0, 2]]).all()


# ------------------------------------------------------------------------------------------------ accuracy


class TestOracle:
    """Every convention, value, derivative, fused call, masked call and Hessian against tests/topk_oracle.py in
    the regimes of tests/topk_cases.py (docs/accuracy.md prints the worst error per regime)."""

    @pytest.mark.slow
    @pytest.mark.parametrize(
        "case", topk_cases.CASES, ids=[f"{c.regime}: {c.label}" for c in topk_cases.CASES]
    )
    def test_every_quantity_within_the_contract(self, case):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RuntimeWarning on finite input
            errors = {quantity: topk_cases.compare(case, quantity) for quantity in topk_cases.QUANTITIES}
        # (NaN: a quantity that does not apply to the case, e.g. the tail convention at T ≠ 1)
        worst = {q: f"{e:.2e}" for q, e in errors.items() if not (e <= ORACLE_RTOL[F64] or np.isnan(e))}
        assert not worst, f"{case.regime} {case.label}: {worst}"

    def test_every_quantity_applies_somewhere_and_every_regime_has_cases(self):
        for quantity in topk_cases.QUANTITIES:
            assert any(topk_cases.applies(case, quantity) for case in topk_cases.CASES), quantity
        expected = {"random", "near-equal", "temperature", "huge logits", "masked", "k = 1", "k = V"}
        assert expected | {"tail nearly empty", "tail nearly everything"} == set(topk_cases.REGIMES)

    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_the_closed_form_hessians_of_the_oracle_are_its_second_derivatives(self, convention, rng):
        # The oracle's Hessians (docs/math.md §20 at working precision) against nested mpmath.diff of its
        # definitions, on a few small rows: a masked class, a near-empty tail, an ordinary one.
        z, v = rng.normal(size=(3, 6)) * 2, rng.normal(size=(3, 6))
        z[0, 5] = v[0, 5] = -np.inf
        v[1, 3:] = -25.0
        values, indices = teacher_of(v, 3, convention)
        T = 1.0 if convention == "tail" else 0.7
        closed = topk_oracle.topk_loss(z, values, indices, T, convention, wrt="hessian")
        by_diff = topk_oracle.topk_loss(z, values, indices, T, convention, wrt="hessian by diff")
        # both are correctly rounded from 30-digit agreement: equal, or one rounding apart
        assert relative_error(closed, by_diff) <= 1e-15

    def test_the_tail_needs_double_double_where_the_student_is_close(self, monkeypatch):
        # The regime the double-double recomputation is for: without it, the float64 tail log-masses
        # leave ~4 digits of a KL of 1e-25.
        from kdcore import _topk

        rng = np.random.default_rng(3)
        z = rng.normal(size=(3, 10)) * 3
        values, indices = topk_teacher(z + 1e-12 * rng.normal(size=z.shape), 4, values="log_probs")
        expected = topk_oracle.topk_loss(z, values, indices, 1.0, "tail")
        exact = topk_kl_divergence(z, values, indices, 1.0, "none", convention="tail", values="log_probs")
        monkeypatch.setattr(_topk, "_needs_double_double", lambda m, *rest: np.zeros(m.kl.shape[0], bool))
        rough = topk_kl_divergence(z, values, indices, 1.0, "none", convention="tail", values="log_probs")
        assert relative_error(exact, expected) <= ORACLE_RTOL[F64] < 1e-6 < relative_error(rough, expected)


# ------------------------------------------------------------------------------------------------ derivatives


class TestDerivatives:
    @pytest.mark.parametrize("loss", sorted(LOSSES))
    @pytest.mark.parametrize("convention", CONVENTIONS)
    @pytest.mark.parametrize("wrt", ["student", "teacher"])
    @settings(max_examples=25)  # 12 parametrisations: 300 gradient checks in all
    @given(data=st.data(), reduction=st.sampled_from(["sum", "mean"]))
    def test_finite_differences(self, loss, convention, wrt, data, reduction):
        student, teacher, k = data.draw(inputs_for(convention, max_classes=8))
        value, grad, _ = LOSSES[loss]
        values, indices = teacher_of(teacher, k, convention)
        kind = values_kind(convention)
        T = 1.0 if convention == "tail" else 1.5
        if convention == "tail":  # finite differences must not cross Σ q = 1
            assume(np.exp(values).sum(-1).max() < 0.999)
        options = {"convention": convention, "values": kind}
        if wrt == "student":
            report = gradcheck.check_gradient(
                lambda z: value(z, values, indices, T, reduction, **options),
                lambda z: grad(z, values, indices, T, reduction, **options),
                student,
                rtol=FD_RTOL[F64],
            )
        else:
            report = gradcheck.check_gradient(
                lambda a: value(student, a, indices, T, reduction, **options),
                lambda a: grad(student, a, indices, T, reduction, "teacher", **options),
                values,
                rtol=FD_RTOL[F64],
            )
        assert report.passed, report

    @pytest.mark.parametrize("loss", sorted(LOSSES))
    @pytest.mark.parametrize("convention", ["renormalized", "dense_student"])
    @settings(max_examples=30)
    @given(inputs=topk_inputs(max_classes=8), T=TEMPERATURE)
    def test_temperature_finite_differences(self, loss, convention, inputs, T):
        student, teacher, k = inputs
        value, grad, _ = LOSSES[loss]
        values, indices = topk_teacher(teacher, k)
        report = gradcheck.check_gradient(
            lambda t: value(student, values, indices, float(t[0]), "sum", convention=convention),
            lambda t: np.array(
                [grad(student, values, indices, float(t[0]), "sum", "temperature", convention=convention)]
            ),
            np.array([T]),
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report

    @given(inputs=topk_inputs(), T=TEMPERATURE)
    def test_closed_forms(self, inputs, T):
        # The Notes of topk_kl_divergence_grad, written out with SciPy.
        student, teacher, k = inputs
        values, indices = topk_teacher(teacher, k)
        p, q_hat = probs(student, T), probs(values, T)
        p_k = np.take_along_axis(p, indices, -1)
        p_hat = p_k / p_k.sum(-1, keepdims=True)
        d = scipy.special.rel_entr(q_hat, p_hat).sum(-1, keepdims=True)
        q_dense = np.zeros_like(p)
        np.put_along_axis(q_dense, indices, q_hat, -1)
        renormalized = np.zeros_like(p)
        np.put_along_axis(renormalized, indices, (p_hat - q_hat) / T, -1)
        teacher_grad = q_hat * (np.log(q_hat) - np.log(p_hat) - d) / T
        for convention, student_grad in (
            ("renormalized", renormalized),
            ("dense_student", (p - q_dense) / T),
        ):
            ours = topk_kl_divergence_grad(student, values, indices, T, "none", convention=convention)
            np.testing.assert_allclose(ours, student_grad, rtol=1e-8, atol=1e-13)
            ours = topk_kl_divergence_grad(
                student, values, indices, T, "none", "teacher", convention=convention
            )
            np.testing.assert_allclose(ours, teacher_grad, rtol=1e-7, atol=1e-13)

    @given(inputs=topk_inputs(), T=TEMPERATURE)
    def test_soft_cross_entropy_teacher_and_temperature_closed_forms(self, inputs, T):
        # W.r.t. the stored values the entropy adds −q̂ ⊙ (log q̂ + H(q̂))/T; w.r.t. T every renormalised loss
        # (a function of z/T and v/T only) obeys Euler's identity ∂L/∂T = −(⟨∂L/∂z, z⟩ + ⟨∂L/∂v, v⟩)/T.
        student, teacher, k = inputs
        values, indices = topk_teacher(teacher, k)
        q_hat = probs(values, T)
        entropy = scipy.special.entr(q_hat).sum(-1, keepdims=True)
        with np.errstate(divide="ignore"):
            log_q = np.where(q_hat > 0, np.log(q_hat), 0)
        for convention in ("renormalized", "dense_student"):
            options = {"convention": convention}
            kl = topk_kl_divergence_grad(student, values, indices, T, "none", "teacher", **options)
            ce = topk_soft_cross_entropy_grad(student, values, indices, T, "none", "teacher", **options)
            np.testing.assert_allclose(ce, kl - q_hat * (log_q + entropy) / T, rtol=1e-7, atol=1e-12)
            for grad in (topk_kl_divergence_grad, topk_soft_cross_entropy_grad):
                g_z = grad(student, values, indices, T, "none", "student", **options)
                g_v = grad(student, values, indices, T, "none", "teacher", **options)
                euler = -((g_z * student).sum(-1) + (g_v * values).sum(-1)) / T
                g_t = grad(student, values, indices, T, "none", "temperature", **options)
                scale = ((np.abs(g_z * student)).sum(-1) + (np.abs(g_v * values)).sum(-1)) / T
                np.testing.assert_allclose(g_t, euler, rtol=0, atol=1e-12 * max(1.0, scale.max()))

    @given(inputs=topk_inputs(tail=True))
    def test_tail_soft_cross_entropy_teacher_closed_form(self, inputs):
        student, teacher, k = inputs
        values, indices = topk_teacher(teacher, k, values="log_probs")
        q_k = np.exp(values)
        q_t = 1 - q_k.sum(-1, keepdims=True)
        assume((q_t > 1e-6).all())
        options = {"convention": "tail", "values": "log_probs"}
        kl = topk_kl_divergence_grad(student, values, indices, 1.0, "none", "teacher", **options)
        ce = topk_soft_cross_entropy_grad(student, values, indices, 1.0, "none", "teacher", **options)
        np.testing.assert_allclose(ce, kl - q_k * (values - np.log(q_t)), rtol=1e-7, atol=1e-12)

    @given(inputs=topk_inputs(tail=True))
    def test_tail_closed_forms(self, inputs):
        student, teacher, k = inputs
        values, indices = topk_teacher(teacher, k, values="log_probs")
        p = probs(student)
        q_k, p_k = np.exp(values), np.take_along_axis(p, indices, -1)
        q_t, p_t = 1 - q_k.sum(-1, keepdims=True), 1 - p_k.sum(-1, keepdims=True)
        assume((q_t > 1e-6).all() and (p_t > 1e-6).all())
        outside = p * (p_t - q_t) / p_t
        np.put_along_axis(outside, indices, p_k - q_k, -1)
        ours = topk_kl_divergence_grad(
            student, values, indices, 1.0, "none", convention="tail", values="log_probs"
        )
        np.testing.assert_allclose(ours, outside, rtol=1e-7, atol=1e-12)
        teacher_grad = q_k * (np.log(q_k / p_k) - np.log(q_t / p_t))
        ours = topk_kl_divergence_grad(
            student, values, indices, 1.0, "none", "teacher", convention="tail", values="log_probs"
        )
        np.testing.assert_allclose(ours, teacher_grad, rtol=1e-7, atol=1e-12)

    @pytest.mark.parametrize("convention", CONVENTIONS)
    @given(inputs=topk_inputs())
    def test_student_gradient_rows_sum_to_zero_and_match_the_fused_call(self, convention, inputs):
        student, teacher, k = inputs
        values, indices = teacher_of(teacher, k, convention)
        options = {"convention": convention, "values": values_kind(convention)}
        grad = topk_kl_divergence_grad(student, values, indices, 1.0, "none", **options)
        np.testing.assert_allclose(grad.sum(-1), 0, atol=1e-14)  # a few ulps of entries ≤ 1
        value, fused = topk_kl_divergence_and_grad(student, values, indices, 1.0, "mean", **options)
        np.testing.assert_allclose(
            fused, topk_kl_divergence_grad(student, values, indices, 1.0, "mean", **options), rtol=1e-15
        )
        assert value == pytest.approx(
            float(topk_kl_divergence(student, values, indices, 1.0, "mean", **options)), rel=1e-15
        )

    def test_soft_cross_entropy_is_entropy_plus_kl(self, rng):
        z, v = rng.normal(size=(4, 7)), rng.normal(size=(4, 7)) * 2
        for convention in CONVENTIONS:
            values, indices = teacher_of(v, 3, convention)
            options = {"convention": convention, "values": values_kind(convention)}
            ce = topk_soft_cross_entropy(z, values, indices, 1.0, "none", **options)
            kl = topk_kl_divergence(z, values, indices, 1.0, "none", **options)
            q = np.exp(values) if convention == "tail" else probs(values)
            buckets = np.concatenate([q, 1 - q.sum(-1, keepdims=True)], -1) if convention == "tail" else q
            np.testing.assert_allclose(ce - kl, scipy.special.entr(buckets).sum(-1), rtol=1e-12)
            np.testing.assert_array_equal(
                topk_soft_cross_entropy_grad(z, values, indices, 1.0, "none", **options),
                topk_kl_divergence_grad(z, values, indices, 1.0, "none", **options),
            )

    def test_derivatives_where_the_loss_is_infinite(self):
        z, values, indices = np.array([0.0, -np.inf, 1.0]), np.log([0.5, 0.3]), np.array([0, 1])
        for convention in CONVENTIONS:
            options = {"convention": convention, "values": "log_probs"}
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                student = topk_kl_divergence_grad(z, values, indices, **options)
                teacher = topk_kl_divergence_grad(z, values, indices, wrt="teacher", **options)
            assert np.isfinite(student).all() and np.isnan(teacher).all()


class TestHessian:
    """topk_kl_divergence_hessian: finite differences of the gradient, the closed forms of docs/math.md §20,
    structure; the oracle in TestOracle, PyTorch autograd in TestTorch."""

    @pytest.mark.parametrize("convention", CONVENTIONS)
    @settings(max_examples=30)
    @given(data=st.data())
    def test_finite_differences_of_the_gradient(self, convention, data):
        student, teacher, k = data.draw(inputs_for(convention, max_classes=8))
        values, indices = teacher_of(teacher, k, convention)
        options = {"convention": convention, "values": values_kind(convention)}
        T = 1.0 if convention == "tail" else 1.5
        hessian = kdcore.topk_kl_divergence_hessian(student, values, indices, T, **options)
        report = gradcheck.check_hessian(
            lambda z: topk_kl_divergence_grad(z, values, indices, T, "sum", **options),
            lambda z: kdcore.topk_kl_divergence_hessian(z, values, indices, T, **options),
            student,
            rtol=FD_RTOL[F64],
        )
        assert report.passed, report
        np.testing.assert_array_equal(hessian, np.swapaxes(hessian, -1, -2))
        np.testing.assert_allclose(hessian.sum(-1), 0, atol=1e-15)  # entries ≤ 1/4: a few ulps

    @given(inputs=topk_inputs(tail=True), T=TEMPERATURE)
    def test_closed_forms(self, inputs, T):
        student, teacher, k = inputs

        def jacobian(s):
            return s[..., :, None] * (np.eye(s.shape[-1]) - s[..., None, :])

        # renormalized: J(p̂)/T² on K × K, 0 elsewhere; dense_student: J(p)/T²
        values, indices = topk_teacher(teacher, k)
        p_hat = np.zeros_like(student)
        np.put_along_axis(p_hat, indices, probs(np.take_along_axis(student, indices, -1), T), -1)
        ours = kdcore.topk_kl_divergence_hessian(student, values, indices, T, convention="renormalized")
        np.testing.assert_allclose(ours, jacobian(p_hat) / T**2, rtol=1e-12, atol=1e-15 / T**2)
        ours = kdcore.topk_kl_divergence_hessian(student, values, indices, T, convention="dense_student")
        np.testing.assert_allclose(ours, jacobian(probs(student, T)) / T**2, rtol=1e-12, atol=1e-15 / T**2)
        # tail (T = 1): J(p) − q_t J(p̄), p̄ the student's distribution within the unstored classes
        log_probs, indices = topk_teacher(teacher, k, values="log_probs")
        p = probs(student)
        outside = np.ones_like(p, dtype=bool)
        np.put_along_axis(outside, indices, False, -1)
        p_bar = np.where(outside, p, 0)
        p_bar /= p_bar.sum(-1, keepdims=True)
        q_t = 1 - np.exp(log_probs).sum(-1)[..., None, None]
        ours = kdcore.topk_kl_divergence_hessian(
            student, log_probs, indices, convention="tail", values="log_probs"
        )
        np.testing.assert_allclose(ours, jacobian(p) - q_t * jacobian(p_bar), rtol=1e-9, atol=1e-13)

    def test_same_for_the_soft_cross_entropy_and_k_equal_to_V_is_the_dense_hessian(self, rng):
        z, v = rng.normal(size=(3, 6)), rng.normal(size=(3, 6)) * 2
        for convention in CONVENTIONS:
            values, indices = teacher_of(v, 6, convention)
            options = {"convention": convention, "values": values_kind(convention)}
            np.testing.assert_allclose(
                kdcore.topk_kl_divergence_hessian(z, values, indices, **options),
                kdcore.kl_divergence_hessian(z, v),
                rtol=1e-13,
                atol=1e-17,
            )
            values, indices = teacher_of(v, 2, convention)
            report = gradcheck.check_hessian(
                lambda x, values=values, indices=indices, options=options: topk_soft_cross_entropy_grad(
                    x, values, indices, 1.0, "sum", **options
                ),
                lambda x, values=values, indices=indices, options=options: kdcore.topk_kl_divergence_hessian(
                    x, values, indices, **options
                ),
                z,
                rtol=FD_RTOL[F64],
            )
            assert report.passed, report

    def test_tail_hessian_where_the_tail_holds_nearly_everything(self):
        # Stored classes of mass ~1e-9 on both sides: the Hessian's entries are ~1e-9, and the direct form
        # J(p) − q_t J(p̄) would leave them as differences of numbers near 1/V² (rounding ~1e-17: 1e-8
        # relative); the evaluated form keeps them to the contract (TestOracle measures it).
        rng = np.random.default_rng(5)
        v = rng.normal(size=(2, 8))
        v[:, :2] -= 21.0
        z = v + 1e-9 * rng.normal(size=v.shape)
        values, indices = np.log(probs(v))[:, :2], np.tile([0, 1], (2, 1))
        options = {"convention": "tail", "values": "log_probs"}
        ours = kdcore.topk_kl_divergence_hessian(z, values, indices, **options)
        expected = topk_oracle.topk_loss(z, values, indices, 1.0, "tail", wrt="hessian")
        assert np.abs(expected).max() < 1e-7
        assert relative_error(ours, expected) <= ORACLE_RTOL[F64]

    def test_tail_hessian_where_one_unstored_class_holds_nearly_all_the_tail(self):
        # Regression: p̄ formed as exp(z − λ), λ = log Σ_{j∉K} e^{z_j} ≈ 25.6, left 1 − p̄_j ≈ 5.6e-9 of the
        # dominant unstored class with an error of eps·|λ|: 3e-7 relative in the Hessian (found by
        # test_finite_differences_of_the_gradient's row sums). p̄ is now a log-softmax over the unstored classes.
        z = np.array([[0.0, 25.61499967, 6.6619008, 0.0, 0.0, 0.0]])
        values, indices = topk_teacher(np.array([[0.0, 0.0, 0.0, 0.0, 3.8, 0.0]]), 1, values="log_probs")
        ours = kdcore.topk_kl_divergence_hessian(z, values, indices, convention="tail", values="log_probs")
        expected = topk_oracle.topk_loss(z, values, indices, 1.0, "tail", wrt="hessian")
        assert relative_error(ours, expected) <= ORACLE_RTOL[F64]
        np.testing.assert_allclose(ours.sum(-1), 0, atol=1e-22)  # entries ~5e-9

    def test_mask_dtype_and_shape(self, rng):
        z, v = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))
        mask = np.array([[True, False, True], [False, True, True]])
        for convention in CONVENTIONS:
            values, indices = teacher_of(v, 2, convention)
            options = {"convention": convention, "values": values_kind(convention)}
            padded_z = np.where(mask[..., None], z, np.nan)
            hessian = kdcore.topk_kl_divergence_hessian(padded_z, values, indices, mask=mask, **options)
            assert hessian.shape == (2, 3, 5, 5) and (hessian[~mask] == 0).all()
            alone = kdcore.topk_kl_divergence_hessian(z[mask], values[mask], indices[mask], **options)
            np.testing.assert_array_equal(hessian[mask], alone)
            single = kdcore.topk_kl_divergence_hessian(
                z.astype(np.float32), values.astype(np.float32), indices, **options
            )
            assert single.dtype == np.float32
            assert relative_error(
                single, kdcore.topk_kl_divergence_hessian(z, values, indices, **options)
            ) < (FLOAT32_VS_FLOAT64_RTOL)
        empty = kdcore.topk_kl_divergence_hessian(
            np.zeros((0, 4)), np.zeros((0, 2)), np.zeros((0, 2), int), convention="renormalized"
        )
        assert empty.shape == (0, 4, 4)


# ------------------------------------------------------------------------------------------------ token level


class TestMaskAndReduction:
    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_mean_over_kept_positions_and_nothing_computed_where_dropped(self, convention, rng):
        z, v = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 3, 6))
        values, indices = teacher_of(v, 2, convention)
        mask = np.array([[True, False, True], [False, True, True]])
        z[~mask] = np.nan  # padding: never looked at
        values[~mask] = np.nan
        indices[~mask] = -1
        options = {"convention": convention, "values": values_kind(convention), "mask": mask}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            per_position = topk_kl_divergence(z, values, indices, 1.0, "none", **options)
            mean = topk_kl_divergence(z, values, indices, 1.0, "mean", **options)
            total = topk_kl_divergence(z, values, indices, 1.0, "sum", **options)
            grads = {
                wrt: topk_kl_divergence_grad(z, values, indices, 1.0, "mean", wrt, **options)
                for wrt in ("student", "teacher")
            }
        kept = topk_kl_divergence(
            z[mask],
            values[mask],
            indices[mask],
            1.0,
            "none",
            convention=convention,
            values=values_kind(convention),
        )
        np.testing.assert_array_equal(per_position[mask], kept)
        assert (per_position[~mask] == 0).all()
        assert mean == pytest.approx(kept.mean(), rel=1e-15) and total == pytest.approx(kept.sum(), rel=1e-15)
        for wrt, grad in grads.items():
            assert (grad[~mask] == 0).all()
            alone = topk_kl_divergence_grad(
                z[mask],
                values[mask],
                indices[mask],
                1.0,
                "sum",
                wrt,
                convention=convention,
                values=values_kind(convention),
            )
            np.testing.assert_allclose(grad[mask], alone / mask.sum(), rtol=1e-15)

    def test_no_kept_position_gives_zero(self):
        z, values, indices = (
            np.ones((2, 4)),
            np.ones((2, 2)),
            np.zeros((2, 2), int),
        )  # indices repeat: unchecked
        mask = np.zeros(2, bool)
        assert topk_kl_divergence(z, values, indices, convention="renormalized", mask=mask) == 0.0
        value, grad = topk_kl_divergence_and_grad(z, values, indices, convention="renormalized", mask=mask)
        assert value == 0.0 and (grad == 0).all() and grad.shape == (2, 4)

    def test_token_mask_from_labels(self, rng):
        token_mask = getattr(kdcore, "token_mask", None)
        if token_mask is None:
            pytest.skip("kdcore.token_mask not available in this checkout")
        labels = np.array([[3, -100, 1]])
        z, v = rng.normal(size=(1, 3, 5)), rng.normal(size=(1, 3, 5))
        values, indices = topk_teacher(v, 2)
        a = topk_kl_divergence(z, values, indices, convention="renormalized", mask=token_mask(labels))
        b = topk_kl_divergence(z[:, [0, 2]], values[:, [0, 2]], indices[:, [0, 2]], convention="renormalized")
        assert a == pytest.approx(float(b), rel=1e-15)


class TestDtypes:
    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_float32_stays_float32_and_agrees(self, convention, rng):
        z, v = rng.normal(size=(5, 9)) * 3, rng.normal(size=(5, 9)) * 3
        values, indices = teacher_of(v, 4, convention)
        options = {"convention": convention, "values": values_kind(convention)}
        for wrt in (None, "student", "teacher"):

            def call(dtype, wrt=wrt):
                args = (z.astype(dtype), values.astype(dtype), indices, 1.0, "none")
                if wrt is None:
                    return topk_kl_divergence(*args, **options)
                return topk_kl_divergence_grad(*args, wrt, **options)

            single, double = call(np.float32), call(np.float64)
            assert single.dtype == np.float32
            assert relative_error(single, double) < FLOAT32_VS_FLOAT64_RTOL


class TestErrors:
    z = np.zeros((2, 5))
    values = np.log(np.full((2, 2), 0.2))
    indices = np.array([[0, 1], [2, 3]])

    def call(self, **changes):
        arguments = {
            "student_logits": self.z,
            "teacher_values": self.values,
            "teacher_indices": self.indices,
            "convention": "tail",
            "values": "log_probs",
        } | changes
        return topk_kl_divergence(**arguments)

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            (
                {"teacher_indices": np.array([[0, 0], [2, 3]])},
                r"must not repeat a class .* class 0 twice at position \(0,\)",
            ),
            (
                {"teacher_indices": np.array([[0, 1], [2, 5]])},
                r"teacher_indices must be in \[0, 5\), got 5 at position \(1,\)",
            ),
            ({"teacher_indices": np.array([[0, 1], [-1, 3]])}, r"got -1 at position \(1,\)"),
            (
                {"teacher_indices": np.array([0, 1])},
                r"teacher_indices must have the shape of teacher_values \(2, 2\)",
            ),
            (
                {"teacher_values": np.zeros((3, 2)), "teacher_indices": np.zeros((3, 2), int)},
                r"leading shape of student_logits \(2,\)",
            ),
            (
                {"teacher_values": np.zeros((2, 6)), "teacher_indices": np.zeros((2, 6), int)},
                "k=6 classes per position, more than the V=5",
            ),
            (
                {"teacher_values": np.array([[np.nan, -1.0], [-1.0, -1.0]])},
                r"finite or -inf .* got nan at position \(0,\)",
            ),
            ({"teacher_values": np.array([[np.inf, -1.0], [-1.0, -1.0]])}, "got inf"),
            (
                {"teacher_values": np.log(np.full((2, 2), 0.6))},
                r"sum of 1.2 at position \(0,\); pass values='logits'",
            ),
            ({"values": "logits"}, "convention='tail' needs the teacher's log-probabilities"),
            ({"T": 2.0}, "defined at T=1 only, got T=2.0"),
            (
                {"convention": "truncated"},
                "convention must be one of 'renormalized', 'dense_student', 'tail'",
            ),
            ({"values": "probs"}, "values must be one of 'logits', 'log_probs'"),
            ({"mask": np.ones(3, bool)}, r"mask must have the .*leading shape \(2,\)"),
            ({"T": 0.0}, "T must be a positive finite number"),
        ],
    )
    def test_value_errors_name_the_parameter_and_value(self, changes, message):
        with pytest.raises(ValueError, match=message):
            self.call(**changes)

    def test_type_errors(self):
        with pytest.raises(
            TypeError, match="teacher_indices must be integer class indices, got dtype float64"
        ):
            self.call(teacher_indices=self.indices.astype(float))
        with pytest.raises(TypeError, match="mask must be a boolean array"):
            self.call(mask=np.ones(2))
        with pytest.raises(TypeError, match="convention"):  # no default: the convention must be named
            topk_kl_divergence(self.z, self.values, self.indices)

    def test_tail_temperature_derivative_is_refused(self):
        with pytest.raises(ValueError, match=r"its derivative w\.r\.t\. T"):
            topk_kl_divergence_grad(
                self.z, self.values, self.indices, wrt="temperature", convention="tail", values="log_probs"
            )
        with pytest.raises(ValueError, match="wrt must be one of"):
            topk_kl_divergence_grad(
                self.z, self.values, self.indices, wrt="values", convention="tail", values="log_probs"
            )


# ------------------------------------------------------------------------------------------------ frameworks


@pytest.mark.frameworks
class TestTorch:
    """Each convention written as the codebase that uses it writes it, in float64, against kdcore."""

    @staticmethod
    def torch_loss(convention, torch):
        F = torch.nn.functional

        def loss(z, values, indices, t):
            log_p = F.log_softmax(z / t, -1)
            gathered = torch.gather(log_p, -1, indices)
            if convention == "renormalized":  # SDPO's renorm_topk_log_probs on both sides
                student = gathered - torch.logsumexp(gathered, -1, keepdim=True)
                teacher = F.log_softmax(values / t, -1)
            elif convention == "dense_student":  # DistillKit, MissingProbabilityHandling.ZERO
                student, teacher = gathered, F.log_softmax(values / t, -1)
            else:  # Megatron-LM's ghost token / SDPO's add_tail, without their clamps
                student = torch.cat(
                    [gathered, torch.log(-torch.expm1(torch.logsumexp(gathered, -1, keepdim=True)))], -1
                )
                teacher = torch.cat(
                    [values, torch.log(-torch.expm1(torch.logsumexp(values, -1, keepdim=True)))], -1
                )
            return F.kl_div(student, teacher, reduction="sum", log_target=True) / z.shape[0]

        return loss

    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_hessian(self, convention, rng):
        torch = pytest.importorskip("torch")
        z, v = rng.normal(size=(1, 9)) * 2, rng.normal(size=(1, 9)) * 2
        values, indices = teacher_of(v, 4, convention)
        T = 1.0 if convention == "tail" else 0.8
        loss = self.torch_loss(convention, torch)
        vt, it, tt = torch.tensor(values), torch.tensor(indices), torch.tensor(T, dtype=torch.float64)
        expected = torch.autograd.functional.hessian(lambda x: loss(x, vt, it, tt), torch.tensor(z))
        ours = kdcore.topk_kl_divergence_hessian(
            z, values, indices, T, convention=convention, values=values_kind(convention)
        )
        np.testing.assert_allclose(ours[0], expected.numpy()[0, :, 0, :], rtol=1e-10, atol=1e-15)

    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_soft_cross_entropy_autograd(self, convention, rng):
        # −Σ_b q_b log p_b over the convention's buckets, written in PyTorch from the KL's distributions
        torch = pytest.importorskip("torch")
        z, v = rng.normal(size=(3, 10)) * 2, rng.normal(size=(3, 10)) * 2
        values, indices = teacher_of(v, 4, convention)
        T = 1.0 if convention == "tail" else 1.7
        zt = torch.tensor(z, requires_grad=True)
        vt = torch.tensor(values, requires_grad=True)
        tt = torch.tensor(T, dtype=torch.float64, requires_grad=True)
        kl = self.torch_loss(convention, torch)(zt, vt, torch.tensor(indices), tt)
        if convention == "tail":
            rest = torch.log(-torch.expm1(torch.logsumexp(vt, -1, keepdim=True)))
            log_q = torch.cat([vt, rest], -1)
        else:
            log_q = torch.nn.functional.log_softmax(vt / tt, -1)
        entropy = -(log_q.exp() * log_q).sum() / z.shape[0]
        loss = kl + entropy
        grads = torch.autograd.grad(loss, (zt, vt, tt))
        options = {"convention": convention, "values": values_kind(convention)}
        assert float(topk_soft_cross_entropy(z, values, indices, T, **options)) == pytest.approx(
            loss.item(), rel=1e-12
        )
        for wrt, expected in zip(("student", "teacher", "temperature"), grads, strict=True):
            if convention == "tail" and wrt == "temperature":
                continue
            ours = topk_soft_cross_entropy_grad(z, values, indices, T, "mean", wrt, **options)
            np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-10, atol=1e-15)

    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_autograd(self, convention, rng):
        torch = pytest.importorskip("torch")
        z, v = rng.normal(size=(4, 12)) * 2, rng.normal(size=(4, 12)) * 2
        values, indices = teacher_of(v, 5, convention)
        T = 1.0 if convention == "tail" else 2.5
        zt = torch.tensor(z, requires_grad=True)
        vt = torch.tensor(values, requires_grad=True)
        tt = torch.tensor(T, dtype=torch.float64, requires_grad=True)
        loss = self.torch_loss(convention, torch)(zt, vt, torch.tensor(indices), tt)
        grads = torch.autograd.grad(loss, (zt, vt, tt))
        options = {"convention": convention, "values": values_kind(convention)}
        assert float(topk_kl_divergence(z, values, indices, T, **options)) == pytest.approx(
            loss.item(), rel=1e-12
        )
        for wrt, expected in zip(("student", "teacher", "temperature"), grads, strict=True):
            if convention == "tail" and wrt == "temperature":
                continue
            ours = topk_kl_divergence_grad(z, values, indices, T, "mean", wrt, **options)
            np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-10, atol=1e-15)
