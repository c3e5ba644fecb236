"""The new divergences against the 50-digit mpmath oracle, in every regime of the accuracy contract.

Same regimes and error measure as tests/test_accuracy.py (tests/accuracy_cases.py); the quantities are in
tests/family_cases.py.
"""

import numpy as np
import pytest
from accuracy_cases import cases
from family_cases import QUANTITIES, TEMPERATURE_SCALED, compare
from tolerances import ORACLE_RTOL

CASES = list(cases())
RTOL = ORACLE_RTOL[np.dtype(np.float64)]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{c.regime}: {c.label}" for c in CASES])
def test_new_divergences_against_oracle(case):
    errors = {quantity: compare(case, quantity) for quantity in QUANTITIES}
    worst = {q: e for q, e in errors.items() if not e <= RTOL}
    assert not worst, f"{case.regime} {case.label}: {worst}"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{c.regime}: {c.label}" for c in CASES])
def test_temperature_derivative_of_t_squared_losses(case):
    # 2T·D + T²·∂D/∂T cancels to O(1/T): the bound grows with T (docs/divergences.md, DKD).
    errors = {quantity: compare(case, quantity) for quantity in TEMPERATURE_SCALED}
    worst = {q: e for q, e in errors.items() if not e <= RTOL * max(1.0, case.T)}
    assert not worst, f"{case.regime} {case.label}: {worst}"
