"""kdcore against the 50-digit (adaptive-precision) mpmath oracle, in every regime of the accuracy contract.

The contract: float64 values and derivatives within 1e-12 relative of the oracle (normwise per sample for
vectors; see accuracy_cases.relative_error) for random logits, student ≈ teacher (KL down to ~1e-25),
T from 1e-3 to 1e9, logits up to ±1e300, N up to 1000, masked classes and large common offsets.
"""

import numpy as np
import pytest
from accuracy_cases import QUANTITIES, cases, compare, relative_error
from tolerances import ORACLE_RTOL

import kdcore

CASES = list(cases())
RTOL = ORACLE_RTOL[np.dtype(np.float64)]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{c.regime}: {c.label}" for c in CASES])
def test_soft_losses_against_oracle(case):
    errors = {quantity: compare(case, quantity) for quantity in QUANTITIES}
    worst = {q: e for q, e in errors.items() if not e <= RTOL}
    assert not worst, f"{case.regime} {case.label}: {worst}"


class TestOtherFunctionsAgainstOracle:
    def test_cross_entropy(self, rng):
        import oracle

        for scale in (1.0, 30.0, 1e300):
            logits, labels = rng.normal(size=(4, 7)) * scale, rng.integers(0, 7, size=4)
            assert (
                relative_error(
                    kdcore.cross_entropy(logits, labels, "none"), oracle.cross_entropy(logits, labels)
                )
                <= RTOL
            )
            assert (
                relative_error(
                    kdcore.cross_entropy_grad(logits, labels, "none"),
                    oracle.cross_entropy_grad(logits, labels),
                )
                <= RTOL
            )

    @pytest.mark.parametrize("T, alpha", [(1.0, 0.5), (4.0, 0.1), (20.0, 0.9), (1e6, 0.3)])
    def test_distillation_loss(self, rng, T, alpha):
        import oracle

        z, v, y = rng.normal(size=(4, 9)) * 3, rng.normal(size=(4, 9)) * 3, rng.integers(0, 9, size=4)
        for soft in ("cross_entropy", "kl"):
            ours = kdcore.distillation_loss(z, v, y, T, alpha, soft=soft, reduction="none")
            assert relative_error(ours, oracle.distillation_loss(z, v, y, T, alpha, soft=soft)) <= RTOL
        ours = kdcore.distillation_loss_grad(z, v, y, T, alpha, reduction="none")
        assert relative_error(ours, oracle.distillation_loss_grad(z, v, y, T, alpha)) <= RTOL

    @pytest.mark.parametrize("centered", [True, False])
    def test_logit_mse(self, rng, centered):
        import oracle

        z, v = rng.normal(size=(4, 9)) + 5, rng.normal(size=(4, 9))
        assert (
            relative_error(kdcore.logit_mse(z, v, centered, "none"), oracle.logit_mse(z, v, centered)) <= RTOL
        )
        assert (
            relative_error(
                kdcore.logit_mse_grad(z, v, centered, "none"), oracle.logit_mse_grad(z, v, centered)
            )
            <= RTOL
        )


class TestExactness:
    def test_identical_inputs_give_exactly_zero(self, rng):
        for T in (1e-3, 1.0, 1e9):
            z = rng.normal(size=(5, 10)) * 1e3
            assert (kdcore.kl_divergence(z, z, T, "none") == 0).all()
            assert (kdcore.kl_divergence_grad(z, z, T, "none") == 0).all()
            assert (kdcore.kl_divergence_grad(z, z, T, "none", "teacher") == 0).all()

    def test_naive_formula_fails_where_kdcore_does_not(self, rng):
        # Regression guard for the reason _match.py exists: the textbook sum is noise at KL ~ 1e-25.
        import oracle
        import scipy.special

        z = rng.normal(size=(1, 10)) * 3
        v = z + 1e-12 * rng.normal(size=z.shape)
        expected = oracle.kl_divergence(z, v, 1.0)
        naive = scipy.special.rel_entr(scipy.special.softmax(v, -1), scipy.special.softmax(z, -1)).sum(-1)
        assert relative_error(naive, expected) > 1e-3
        assert relative_error(kdcore.kl_divergence(z, v, 1.0, "none"), expected) <= RTOL


class TestOracleFuzzRegressions:
    """Cases the oracle's fuzzing found wrong in an earlier kdcore (each pinned with what was wrong)."""

    CASES = (
        # log q_0 = −6e284 and f_0 = +6e284 summed to garbage in the log-domain path (KL was log 2).
        ([1.0, 3.0, 0.0], [-2.8e282, -4e-253, -np.inf], 0.0044),
        # ∂KL/∂T: D·f and (D − q f)(v/T − E_q v/T) cancelled on a class whose q underflows (off by 100×).
        ([2.0, 0.0, -1.0, -1.0], [-np.inf, 1.6e75, -4e-120, -np.inf], 761.5),
        # q_1 = e^{-746} underflows but q_1·f_1 = 1e-24 does not: the centre missed it.
        ([0.0, -1e300], [0.0, -746.0], 1.0),
        # A finite teacher logit (q > 0 in exact arithmetic) on a class the student masks: KL = +inf.
        ([0.0, -np.inf], [0.0, -1.7e308], 1.0),
    )

    @pytest.mark.parametrize("student, teacher, T", CASES)
    def test_against_oracle(self, student, teacher, T):
        import oracle

        z, v = np.array([student]), np.array([teacher])
        for value, grad, name in (
            (kdcore.kl_divergence, kdcore.kl_divergence_grad, "kl_divergence"),
            (kdcore.soft_cross_entropy, kdcore.soft_cross_entropy_grad, "soft_cross_entropy"),
        ):
            assert relative_error(value(z, v, T, "none"), getattr(oracle, name)(z, v, T)) <= RTOL
            for wrt in ("student", "teacher", "temperature"):
                expected = getattr(oracle, f"{name}_grad")(z, v, T, wrt)
                assert relative_error(grad(z, v, T, "none", wrt), expected) <= RTOL, (name, wrt)
