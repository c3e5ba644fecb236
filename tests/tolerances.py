"""One tolerance table, keyed by dtype, each entry justified. Tests import from here, never inline a number.

``ORACLE_RTOL`` bounds kdcore against the 50-digit mpmath oracle (tests/oracle.py). The float64 bound
1e-12 is the project's accuracy contract: about 4500 units in the last place, room for the O(log N)
rounding of sums over up to 1000 classes and for exp/log of arguments up to ~745 (an absolute error of
eps·|x| in an argument becomes a relative error eps·|x| ≈ 1.7e-13 in exp(x)). float32 gets the same
allowance in its own units (4500·eps32 ≈ 5e-4 is too lax; 64·eps32·log-factor ≈ 1e-5 is what the
algorithms achieve, see test_float32_agreement).

``FD_RTOL`` bounds analytic derivatives against finite differences, which are only as good as the
difference quotient: a Richardson-extrapolated central difference in float64 has truncation error
O(h⁴) and rounding error O(eps/h), about 1e-9 relative at the best step; 1e-6 leaves room for curvature.
"""

import numpy as np

ORACLE_RTOL = {
    np.dtype(np.float64): 1e-12,
    np.dtype(np.float32): 1e-5,
}

FD_RTOL = {
    np.dtype(np.float64): 1e-6,
}

# float32 results against float64 ones on ordinary inputs (|logits| ≲ 30, T ≥ 0.5): the float32 algorithm is
# the float64 one run in float32, so the difference is a small multiple of eps32 ≈ 1.2e-7 times the
# condition of the quantity; 2e-5 relative (normwise for vectors) is ~170 eps32.
FLOAT32_VS_FLOAT64_RTOL = 2e-5
