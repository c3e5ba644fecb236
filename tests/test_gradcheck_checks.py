"""Tests of kdcore.gradcheck.checks: the checker must pass right derivatives and, above all, catch wrong ones.

The functions checked are written out in tests/gradcheck_functions.py (softmax, soft cross-entropy,
quadratic forms) so that the checker is tested independently of the rest of kdcore."""

import math

import numpy as np
import pytest
from gradcheck_functions import (
    Spy,
    block_diagonal,
    kd_problem,
    log_softmax,
    log_sum_exp,
    soft_cross_entropy,
    soft_cross_entropy_grad,
    soft_cross_entropy_hessian_blocks,
    softmax,
    sum_of_sines,
    sum_of_squares,
    sum_of_squares_grad,
)
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tolerances import FD_RTOL

import kdcore.gradcheck as gradcheck
from kdcore.gradcheck import (
    check_gradient,
    check_hessian,
    check_vjp,
)

# What a Richardson-extrapolated central difference achieves in float64 on the smooth, well-scaled functions
# below: truncation h⁴·|f⁽⁵⁾|/480 ≈ 5e-19 and rounding ~3·eps·|f|/h ≈ 5e-12 at the default step h ≈ 1.2e-4,
# so 1e-9 leaves a hundred-fold margin. (Candidate for tests/tolerances.py.)
RICHARDSON_RTOL = 1e-9

FD_RTOL64 = FD_RTOL[np.dtype(np.float64)]


class TestCheckGradient:
    # ---- right gradients pass

    @pytest.mark.parametrize(
        ("fn", "grad"),
        [(sum_of_squares, sum_of_squares_grad), (sum_of_sines, np.cos), (log_sum_exp, softmax)],
        ids=["x²", "sin", "log-sum-exp"],
    )
    def test_right_gradients_pass(self, rng, fn, grad):
        report = check_gradient(fn, grad, rng.normal(scale=2.0, size=6))
        assert report.passed, report
        assert report.max_error < RICHARDSON_RTOL

    @pytest.mark.parametrize("T", [0.25, 1.0, 8.0])
    def test_soft_cross_entropy_passes(self, rng, T):
        student_logits, loss, loss_grad, _ = kd_problem(rng, T=T)
        assert check_gradient(loss, loss_grad, student_logits).passed

    def test_scalar_point(self):
        report = check_gradient(np.sin, np.cos, 0.7)
        assert report.passed, report
        assert [row.label for row in report.rows] == [f"u{k}" for k in range(8)] + ["e"]

    # ---- wrong gradients fail, and the report says how

    def test_missing_factor_two(self, rng):
        report = check_gradient(sum_of_squares, lambda x: x, rng.normal(size=5))
        assert not report.passed
        assert len(report.failures) == len(report.rows)
        np.testing.assert_allclose([row.relative_error for row in report.rows], 1 / 3, rtol=1e-6)
        assert all(row.note == "analytic/numeric = 0.5" for row in report.rows)

    def test_sign_flip(self, rng):
        report = check_gradient(log_sum_exp, lambda z: -softmax(z), rng.normal(size=5))
        assert not report.passed
        assert report.max_error == pytest.approx(1.0)

    def test_wrong_temperature_power(self, rng):
        # (s − q)/T is right; forgetting the 1/T (a chain-rule slip) is off by a factor T.
        student_logits, loss, loss_grad, _ = kd_problem(rng, T=2.0)
        report = check_gradient(loss, lambda z: 2.0 * loss_grad(z), student_logits)
        assert not report.passed
        assert "analytic/numeric = 2" in str(report)

    def test_one_wrong_entry_is_located_by_its_coordinate_direction(self, rng):
        x = rng.normal(size=(4, 5))

        def almost_cos(v):
            gradient = np.cos(v)
            gradient[2, 3] *= 1.001
            return gradient

        report = check_gradient(sum_of_sines, almost_cos, x)
        failed = {row.label for row in report.failures}
        assert "e[2, 3]" in failed
        assert not failed & {f"e[{i}, {j}]" for i in range(4) for j in range(5)} - {"e[2, 3]"}

    def test_small_relative_error_fails_at_default_rtol_and_passes_when_loosened(self, rng):
        x = rng.normal(size=5)

        def slightly_off(v):
            return 2 * v * (1 + 1e-4)

        assert not check_gradient(sum_of_squares, slightly_off, x).passed
        assert check_gradient(sum_of_squares, slightly_off, x, rtol=1e-3).passed

    def test_default_rtol(self, rng):
        report = check_gradient(sum_of_squares, sum_of_squares_grad, rng.normal(size=3))
        assert report.rtol == gradcheck.DEFAULT_RTOL == FD_RTOL64

    # ---- directions

    def test_random_then_coordinate_directions(self, rng):
        report = check_gradient(sum_of_sines, np.cos, rng.normal(size=(2, 3)), directions=3)
        labels = [row.label for row in report.rows]
        assert labels == ["u0", "u1", "u2"] + [f"e[{i}, {j}]" for i in range(2) for j in range(3)]

    def test_coordinate_rows_show_the_gradient_entries(self, rng):
        x = rng.normal(size=4)
        report = check_gradient(sum_of_sines, np.cos, x, directions=0)
        np.testing.assert_array_equal([row.analytic for row in report.rows], np.cos(x))

    def test_large_points_use_random_directions_only(self, rng):
        report = check_gradient(sum_of_sines, np.cos, rng.normal(size=65), directions=5)
        assert [row.label for row in report.rows] == [f"u{k}" for k in range(5)]
        with pytest.raises(ValueError, match="nothing to check"):
            check_gradient(sum_of_sines, np.cos, rng.normal(size=65), directions=0)

    def test_seeded(self, rng):
        x = rng.normal(size=80)
        first = check_gradient(sum_of_sines, np.cos, x, seed=3)
        again = check_gradient(sum_of_sines, np.cos, x, seed=3)
        other = check_gradient(sum_of_sines, np.cos, x, seed=4)
        assert first.rows == again.rows
        assert [row.analytic for row in first.rows] != [row.analytic for row in other.rows]

    def test_step(self, rng):
        x = np.array([0.5, -3.0])
        default = check_gradient(sum_of_sines, np.cos, x)
        assert default.step == pytest.approx(gradcheck.DEFAULT_STEP_FACTOR * 3.0)
        assert check_gradient(sum_of_sines, np.cos, x, step=1e-3).step == 1e-3

    # ---- values near zero, non-finite values

    def test_zero_derivative_is_judged_by_rounding_noise(self):
        # cos(π/2) = 6e-17 in float64 while the difference gives ~1e-13: relative error ~1, yet both are 0.
        report = check_gradient(sum_of_sines, np.cos, [np.pi / 2, 1.0], directions=0)
        assert report.passed, report
        first = report.rows[0]
        assert first.relative_error > 0.5
        assert "rounding noise" in first.note
        assert "ok (noise)" in str(report)
        assert any("less than the rounding noise" in note for note in report.notes)
        assert report.max_error < RICHARDSON_RTOL  # noise rows do not count

    def test_loss_at_its_minimum(self, rng):
        # KL(q ‖ softmax(z)) at z = log q + 3 is 0 with gradient exactly 0, yet the KL is a difference of
        # logarithms of order one: its values carry ~eps of rounding, far more than eps·|KL|. The checker
        # measures that noise (a fourth difference of the probe values) instead of assuming eps·|f|.
        teacher_probs = softmax(rng.normal(size=4))

        def kl(student_logits):
            return np.sum(teacher_probs * (np.log(teacher_probs) - log_softmax(student_logits)))

        def kl_grad(student_logits):
            return softmax(student_logits) - teacher_probs

        minimum = np.log(teacher_probs) + 3.0
        report = check_gradient(kl, kl_grad, minimum)
        assert report.passed, str(report)
        assert any("derivative is ~0 at x" in note for note in report.notes)
        # At the minimum the gradient's only possible error is a constant offset, and that is caught.
        assert not check_gradient(kl, lambda z: kl_grad(z) + 1e-7, minimum).passed
        assert check_gradient(kl, kl_grad, minimum + rng.normal(size=4)).passed

    def test_stationary_point_with_a_rounded_analytic_gradient(self):
        # Centred logit matching at z = 0 against a constant v: the gradient 2·((z − z̄) − (v − v̄)) is 0, but
        # v − v̄ rounds to ~1e-15 — the same at every probe, so no measurement sees it. The absolute floor
        # (the rounding of a derivative of order one) accepts it.
        teacher_logits = np.full(11, 12.19099972)

        def centred(logits):
            return logits - np.mean(logits)

        def mse(student_logits):
            return np.sum((centred(student_logits) - centred(teacher_logits)) ** 2)

        def mse_grad(student_logits):
            return 2 * (centred(student_logits) - centred(teacher_logits))

        student_logits = np.zeros(11)
        assert np.any(mse_grad(student_logits) != 0)  # the premise: the analytic gradient is noise
        report = check_gradient(mse, mse_grad, student_logits)
        assert report.passed, str(report)
        assert not check_gradient(mse, lambda z: mse_grad(z) + 1e-9, student_logits).passed

    def test_subnormal_values(self, rng):
        # Below ~2e-308 floats are spaced 5e-324 apart whatever their size: the rounding is absolute, so
        # the differences of a 1e-318 function carry only a few digits, which the noise level allows for.
        x = rng.normal(size=3)
        report = check_gradient(lambda v: 1e-318 * np.sum(np.sin(v)), lambda v: 1e-318 * np.cos(v), x)
        assert report.passed, str(report)
        assert not check_gradient(lambda v: 1e-318 * np.sum(np.sin(v)), lambda v: -1e-318 * np.cos(v), x)

    def test_wrong_value_near_zero_is_still_caught(self):
        # The noise level is tiny (~1e-11): an analytic 1e-6 where the truth is 0 is an error.
        report = check_gradient(sum_of_sines, lambda x: np.cos(x) + 1e-6, [np.pi / 2, 1.0], directions=0)
        assert [row.label for row in report.failures] == ["e[0]"]

    def test_function_not_finite_at_a_probe_is_a_failed_row(self):
        report = check_gradient(lambda v: np.sum(np.log(v)), lambda v: 1 / v, [1e-5, 1.0])
        assert not report.passed
        assert report.max_error == math.inf
        bad = {row.label: row.note for row in report.failures}
        assert "e[0]" in bad and "e[1]" not in bad
        assert "fn is not finite at x" in bad["e[0]"]

    def test_gradient_not_finite_is_a_failed_row(self):
        report = check_gradient(lambda v: np.sum(v**2), lambda v: 2 * v / (v != 0), [0.0, 1.0])
        assert {row.label for row in report.failures} >= {"e[0]", "u0"}
        assert "grad(x) is not finite" in report.failures[0].note

    # ---- dtypes and input handling

    def test_float32_point_is_upcast_with_a_note(self):
        x32 = np.array([0.1, 0.7, -1.3], dtype=np.float32)
        report = check_gradient(sum_of_sines, np.cos, x32)
        assert report.passed, report
        assert any("float32" in note and "float64 copy" in note for note in report.notes)

    def test_float32_function_gets_a_note_and_fails_at_float64_tolerance(self, rng):
        # Its differences are noise at the 1e-3 level: not excused as "noise", because the derivatives
        # themselves are of order one — the check cannot vouch for the gradient at rtol = 1e-6.
        x = rng.normal(size=3)
        report = check_gradient(lambda v: np.sum(np.sin(v.astype(np.float32))), np.cos, x)
        assert not report.passed
        assert any("fn returned float32" in note for note in report.notes)
        assert any("more than float64 rounding of fn explains" in row.note for row in report.failures)

    def test_list_point(self):
        assert check_gradient(sum_of_squares, sum_of_squares_grad, [[1, 2], [3, 4]]).passed

    def test_inputs_not_mutated(self, rng):
        x = rng.normal(size=(2, 3))
        before = x.copy()
        fn, grad = Spy(sum_of_sines, x), Spy(np.cos, x)
        report = check_gradient(fn, grad, x)
        np.testing.assert_array_equal(x, before)
        assert not fn.saw_caller_array and not grad.saw_caller_array
        assert report.passed, report  # the scribbling functions did not disturb the probes

    def test_read_only_point(self):
        x = np.array([0.3, 0.4])
        x.flags.writeable = False
        assert check_gradient(sum_of_squares, sum_of_squares_grad, x).passed

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"directions": -1}, ValueError, "directions"),
            ({"directions": 2.5}, TypeError, "directions"),
            ({"directions": True}, TypeError, "directions"),
            ({"rtol": 0.0}, ValueError, "rtol"),
            ({"rtol": "tight"}, TypeError, "rtol"),
            ({"step": math.inf}, ValueError, "step"),
        ],
    )
    def test_bad_arguments(self, kwargs, error, match):
        with pytest.raises(error, match=match):
            check_gradient(sum_of_squares, sum_of_squares_grad, [1.0], **kwargs)

    def test_gradient_of_wrong_shape(self):
        with pytest.raises(ValueError, match=r"grad\(x\) must have the shape of x"):
            check_gradient(sum_of_squares, lambda x: np.sum(2 * x, axis=0), np.ones((2, 3)))

    def test_function_not_scalar(self):
        with pytest.raises(ValueError, match="check_vjp"):
            check_gradient(lambda x: x**2, sum_of_squares_grad, [1.0, 2.0])

    # ---- properties

    @given(
        hnp.arrays(
            np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5), elements=st.floats(-8, 8)
        ),
        st.floats(0.5, 5.0),
        st.integers(0, 2**32 - 1),
    )
    def test_soft_cross_entropy_passes_anywhere(self, student_logits, T, seed):
        teacher_probs = softmax(np.random.default_rng(seed).normal(scale=2.0, size=student_logits.shape))
        report = check_gradient(
            lambda z: soft_cross_entropy(z, teacher_probs, T),
            lambda z: soft_cross_entropy_grad(z, teacher_probs, T),
            student_logits,
            seed=seed,
        )
        assert report.passed, str(report)

    @given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=5), elements=st.floats(-5, 5)))
    def test_missing_factor_two_always_caught(self, x):
        assume(np.max(np.abs(x)) > 1e-3)
        assert not check_gradient(sum_of_squares, lambda v: v, x).passed


class TestCheckVjp:
    A = np.array([[2.0, 1.0, 0.0], [-1.0, 3.0, 0.5], [0.0, 4.0, 1.0]])  # not symmetric

    def test_matrix_function_passes(self, rng):
        # f(X) = tanh(A X): J^T C = Aᵀ (C ⊙ (1 − tanh²(A X))).
        A = self.A
        X = rng.normal(size=(3, 2))
        report = check_vjp(lambda X: np.tanh(A @ X), lambda X, C: A.T @ (C * (1 - np.tanh(A @ X) ** 2)), X)
        assert report.passed, report
        assert report.max_error < RICHARDSON_RTOL

    def test_transposed_jacobian_fails(self, rng):
        A = self.A
        report = check_vjp(lambda X: A @ X, lambda X, C: A @ C, rng.normal(size=(3, 2)))
        assert not report.passed

    def test_missing_derivative_of_the_nonlinearity_fails(self, rng):
        A = self.A
        report = check_vjp(lambda X: np.tanh(A @ X), lambda X, C: A.T @ C, rng.normal(size=(3, 2)))
        assert not report.passed

    def test_sign_flip_fails(self, rng):
        A = self.A
        report = check_vjp(lambda X: A @ X, lambda X, C: -A.T @ C, rng.normal(size=(3, 2)))
        assert report.max_error == pytest.approx(1.0)

    def test_softmax_vjp_both_forms(self, rng):
        # The product form s ⊙ (c − ⟨s, c⟩) and the Jacobian form (diag(s) − s sᵀ) c agree (J is symmetric).
        def product_form(logits, cotangent):
            probs = softmax(logits)
            return probs * (cotangent - np.sum(probs * cotangent, axis=-1, keepdims=True))

        def jacobian_form(logits, cotangent):
            probs = softmax(logits)
            jacobian = np.einsum("bi,ij->bij", probs, np.eye(logits.shape[-1]))
            jacobian -= probs[:, :, None] * probs[:, None, :]
            return np.einsum("bij,bj->bi", jacobian, cotangent)

        logits = rng.normal(scale=2.0, size=(3, 5))
        assert check_vjp(softmax, product_form, logits).passed
        assert check_vjp(softmax, jacobian_form, logits).passed
        assert not check_vjp(softmax, lambda z, c: c - product_form(z, c), logits).passed

    def test_output_shape_differs_from_input_shape(self, rng):
        # f: (3, 2) → (4,), f(X) = B vec(X); the VJP reshapes Bᵀ c back to (3, 2).
        B = rng.normal(size=(4, 6))
        report = check_vjp(
            lambda X: B @ X.ravel(), lambda X, c: (B.T @ c).reshape(3, 2), rng.normal(size=(3, 2))
        )
        assert report.passed, report

    def test_scalar_output(self, rng):
        x = rng.normal(size=4)
        assert check_vjp(sum_of_sines, lambda v, c: c * np.cos(v), x).passed

    def test_saturated_softmax(self):
        # Derivatives ~1e-9 beside values ~1: the differences resolve them only to ~1e-4, so most rows pass
        # on their absolute error (they differ by less than the measured noise) — but 0.1% is still caught.
        logits = np.array([20.0, 0.0, -3.0])

        def vjp(z, c):
            probs = softmax(z)
            return probs * (c - np.sum(probs * c))

        report = check_vjp(softmax, vjp, logits)
        assert report.passed, str(report)
        assert any(row.at_noise_level for row in report.rows)
        assert not check_vjp(softmax, lambda z, c: 1.001 * vjp(z, c), logits).passed

    def test_rows_and_seed(self, rng):
        A = self.A
        x = rng.normal(size=(3, 2))
        report = check_vjp(lambda X: A @ X, lambda X, C: A.T @ C, x, directions=2, seed=5)
        assert [row.label for row in report.rows][:3] == ["u0", "u1", "e[0, 0]"]
        assert len(report.rows) == 2 + x.size
        again = check_vjp(lambda X: A @ X, lambda X, C: A.T @ C, x, directions=2, seed=5)
        assert report.rows == again.rows

    def test_inputs_not_mutated(self, rng):
        A = self.A
        x = rng.normal(size=(3, 2))
        before = x.copy()
        fn, vjp = Spy(lambda X: A @ X, x), Spy(lambda X, C: A.T @ C, x)
        report = check_vjp(fn, vjp, x)
        np.testing.assert_array_equal(x, before)
        assert not fn.saw_caller_array and not vjp.saw_caller_array
        assert report.passed, report

    def test_not_finite_is_a_failed_row(self):
        report = check_vjp(np.log, lambda x, c: c / x, [1e-5, 1.0])
        assert not report.passed
        assert any("not finite" in row.note for row in report.failures)

    def test_vjp_of_wrong_shape(self, rng):
        with pytest.raises(ValueError, match=r"vjp\(x, c\) must have the shape of x"):
            check_vjp(lambda X: self.A @ X, lambda X, C: C.ravel(), rng.normal(size=(3, 2)))

    def test_float32_point_is_upcast_with_a_note(self):
        report = check_vjp(np.sin, lambda x, c: c * np.cos(x), np.array([0.5, 1.5], dtype=np.float32))
        assert report.passed, report
        assert any("float32" in note for note in report.notes)

    @given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
    def test_linear_maps_pass_anywhere(self, n_out, n_in, seed):
        generator = np.random.default_rng(seed)
        M = generator.normal(size=(n_out, n_in))
        x = generator.normal(scale=3.0, size=n_in)
        assert check_vjp(lambda v: np.sin(M @ v), lambda v, c: M.T @ (c * np.cos(M @ v)), x, seed=seed).passed


class TestCheckHessian:
    A = np.array([[1.0, 2.0, 0.0], [0.0, 3.0, -1.0], [4.0, 0.5, 2.0]])  # not symmetric

    def quadratic_form_grad(self, x):
        return (self.A + self.A.T) @ x

    def test_quadratic_form(self, rng):
        # f(x) = xᵀAx has Hessian A + Aᵀ, whatever the symmetry of A.
        report = check_hessian(self.quadratic_form_grad, lambda x: self.A + self.A.T, rng.normal(size=3))
        assert report.passed, report
        assert report.max_error < RICHARDSON_RTOL

    @pytest.mark.parametrize("wrong", ["2A", "A"])
    def test_quadratic_form_wrong_hessians(self, rng, wrong):
        hessian = 2 * self.A if wrong == "2A" else self.A
        assert not check_hessian(self.quadratic_form_grad, lambda x: hessian, rng.normal(size=3)).passed

    def test_one_wrong_entry_is_located_by_its_column(self, rng):
        wrong = self.A + self.A.T
        wrong[0, 1] += 0.01
        report = check_hessian(self.quadratic_form_grad, lambda x: wrong, rng.normal(size=3))
        failed_coordinates = {row.label for row in report.failures if row.label.startswith("e")}
        assert failed_coordinates == {"e[1]"}  # column 1 is the only wrong column

    @pytest.mark.parametrize("T", [0.5, 1.0, 3.0])
    def test_soft_cross_entropy_blocks(self, rng, T):
        student_logits, _, loss_grad, hessian_blocks = kd_problem(rng, shape=(3, 4), T=T)
        assert hessian_blocks(student_logits).shape == (3, 4, 4)
        report = check_hessian(loss_grad, hessian_blocks, student_logits)
        assert report.passed, report

    def test_soft_cross_entropy_full_matrix(self, rng):
        student_logits, _, loss_grad, hessian_blocks = kd_problem(rng, shape=(3, 4))
        report = check_hessian(loss_grad, lambda z: block_diagonal(hessian_blocks(z)), student_logits)
        assert report.passed, report

    def test_soft_cross_entropy_wrong_blocks(self, rng):
        T = 2.0
        student_logits, _, loss_grad, hessian_blocks = kd_problem(rng, T=T)
        missing_temperature = check_hessian(loss_grad, lambda z: T**2 * hessian_blocks(z), student_logits)
        assert not missing_temperature.passed
        assert not check_hessian(loss_grad, lambda z: -hessian_blocks(z), student_logits).passed

    def test_blocks_are_indexed_output_then_input(self, rng):
        # A true Hessian is symmetric, so only a field that is not a gradient shows the convention: the check
        # is the Jacobian of grad, block[b, i, j] = ∂grad[b, i]/∂x[b, j], and a transposed block fails.
        jacobians = rng.normal(size=(2, 3, 3))

        def linear_field(x):
            return np.einsum("bij,bj->bi", jacobians, x)

        x = rng.normal(size=(2, 3))
        assert check_hessian(linear_field, lambda x: jacobians, x).passed
        assert not check_hessian(linear_field, lambda x: jacobians.transpose(0, 2, 1), x).passed

    def test_hessian_of_wrong_shape(self, rng):
        with pytest.raises(ValueError, match=r"\(3, 4, 3, 4\).*\(3, 4, 4\).*\(3, 3\)"):
            check_hessian(lambda z: z, lambda z: np.eye(3), rng.normal(size=(3, 4)))

    def test_gradient_not_finite_is_a_failed_row(self):
        # f = ⅔ Σ v^(3/2): grad √v is NaN at the probe 1e-5 − 1.2e-4 < 0.
        report = check_hessian(np.sqrt, lambda v: np.diag(0.5 / np.sqrt(v)), [1e-5, 1.0])
        assert not report.passed
        assert any("grad is not finite" in row.note for row in report.failures)

    def test_inputs_not_mutated(self, rng):
        x = rng.normal(size=3)
        before = x.copy()
        grad = Spy(self.quadratic_form_grad, x)
        hessian = Spy(lambda v: self.A + self.A.T, x)
        report = check_hessian(grad, hessian, x)
        np.testing.assert_array_equal(x, before)
        assert not grad.saw_caller_array and not hessian.saw_caller_array
        assert report.passed, report

    @given(
        hnp.arrays(
            np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5), elements=st.floats(-8, 8)
        ),
        st.floats(0.5, 5.0),
    )
    def test_soft_cross_entropy_blocks_pass_anywhere(self, student_logits, T):
        teacher_probs = np.full(student_logits.shape, 1.0 / student_logits.shape[-1])
        report = check_hessian(
            lambda z: soft_cross_entropy_grad(z, teacher_probs, T),
            lambda z: soft_cross_entropy_hessian_blocks(z, T),
            student_logits,
        )
        assert report.passed, str(report)
