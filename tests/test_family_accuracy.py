"""The new divergences against the 50-digit mpmath oracle, in every regime of the accuracy contract.

Same regimes and error measure as tests/test_accuracy.py (tests/accuracy_cases.py); the quantities are in
tests/family_cases.py.
"""

import numpy as np
import pytest
from accuracy_cases import cases
from family_cases import QUANTITIES, compare
from tolerances import ORACLE_RTOL

CASES = list(cases())
RTOL = ORACLE_RTOL[np.dtype(np.float64)]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{c.regime}: {c.label}" for c in CASES])
def test_new_divergences_against_oracle(case):
    errors = {quantity: compare(case, quantity) for quantity in QUANTITIES}
    # (NaN: a quantity that does not apply to the case, e.g. the oracle's N² Hessian at 1000 classes)
    worst = {q: e for q, e in errors.items() if not (e <= RTOL or np.isnan(e))}
    assert not worst, f"{case.regime} {case.label}: {worst}"
