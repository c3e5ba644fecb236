"""Small numerical building blocks the accurate formulas are made of.

Nothing here is knowledge-distillation specific; each function exists because the obvious one-liner
loses accuracy or overflows somewhere kdcore promises to be exact.
"""

from __future__ import annotations

import math

import numpy as np

# Taylor coefficients 1/k! of e^x − 1 − x = x²/2! + x³/3! + … used for |x| ≤ SERIES_RADIUS = 0.1, where
# expm1(x) − x would cancel. The first omitted term, relative to x²/2, is 2·0.1^(n−2)/n!: 1/11! … gives
# 4e-19 for float64 (k = 2..11), 1/2! … 1/7! gives 4e-9 for float32 (k = 2..7): below each dtype's eps.
_SERIES = {
    8: tuple(1.0 / math.factorial(k) for k in range(2, 12)),
    4: tuple(1.0 / math.factorial(k) for k in range(2, 8)),
}
SERIES_RADIUS = 0.1


def _series(x: np.ndarray) -> np.ndarray:
    coefficients = _SERIES[4 if x.dtype.itemsize <= 4 else 8]
    result = np.full_like(x, coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):  # Horner's rule, in place: no temporaries
        result *= x
        result += x.dtype.type(coefficient)
    result *= x
    result *= x
    return result


def exp_minus_one_minus_x(x: np.ndarray) -> np.ndarray:
    r"""``e^x − 1 − x`` to full relative precision for every ``x`` (the caller keeps ``x`` below overflow).

    ``expm1(x) − x`` cancels catastrophically for small ``x`` (both terms ≈ x, the result ≈ x²/2), so for
    ``|x| ≤ 0.1`` the Taylor series is summed instead; beyond that the subtraction loses at most a factor
    ~40 (a few units in the last place). The series is evaluated only where it is needed.
    """
    x = np.asarray(x)
    flat = x.reshape(-1)
    small = np.abs(flat) <= SERIES_RADIUS
    n_small = np.count_nonzero(small)
    if n_small == flat.size:
        return _series(flat).reshape(x.shape)
    result = np.expm1(flat)
    result -= flat
    if n_small:
        result[small] = _series(flat[small])
    return result.reshape(x.shape)


def log_exp_minus_one_minus_x(x: np.ndarray) -> np.ndarray:
    """``log(e^x − 1 − x)`` without overflow, for the log-domain fallback of the KL divergence.

    Exact to a few ulps for all ``x`` (``−inf`` at ``x = 0``, where ``e^x − 1 − x = 0``).
    """
    x = np.asarray(x)
    big = x > 30  # e^x − 1 − x = e^x (1 − (1 + x) e^{−x}); the correction is below 1e-11 and computed
    moderate = np.where(big, 0, x)
    with np.errstate(divide="ignore"):  # log(0) = −inf at x = 0 is the right answer
        small_or_moderate = np.log(exp_minus_one_minus_x(moderate))
    xb = np.where(big, x, 31)
    with np.errstate(invalid="ignore"):  # x = +inf: inf·0 in the correction; the result is +inf anyway
        large = xb + np.log1p(-(1 + xb) * np.exp(-xb))
    large = np.where(np.isposinf(xb), np.inf, large)
    return np.where(big, large, small_or_moderate)


def tempered_difference(x: np.ndarray, y: np.ndarray, T: float) -> np.ndarray:
    """``(x − y) / T`` that overflows only when the exact result does.

    ``x − y`` of two finite logits can overflow (1e308 − (−1e308)); quartering first is exact (except for
    subnormals, where the lost bits are far below anything exp can see), and multiplying back by 4 after
    the division overflows only if ``(x − y)/T`` itself exceeds the float range.
    """
    with np.errstate(over="ignore"):  # an exact result beyond the float range rounds to ±inf: correct
        return ((x * 0.25 - y * 0.25) / T) * 4


def two_difference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's error-free transformation of a difference: ``s + e == a − b`` exactly, with ``s = fl(a − b)``.

    Used so that the student–teacher logit difference ``z − v`` carries no rounding error even when a large
    common offset is shared by both (the divergence depends only on differences of differences). It is
    Knuth's TwoSum of ``a`` and ``−b``, written with in-place operations: three temporaries, not seven
    (each fresh array of this size costs page faults; see docs/performance.md).
    """
    s = a - b
    b_virtual = s - a  # the part of −b that made it into s
    a_virtual = s - b_virtual  # the part of a that made it into s
    np.subtract(a, a_virtual, out=a_virtual)  # a's rounding error
    np.add(b, b_virtual, out=b_virtual)  # minus b's rounding error
    np.subtract(a_virtual, b_virtual, out=a_virtual)
    return s, a_virtual


def row_sum(x: np.ndarray) -> np.ndarray:
    """The sum over the class axis, keeping it as an axis of length 1 (for broadcasting against the rows)."""
    return np.sum(x, axis=-1, keepdims=True)


def take_along_last(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[..., index]`` for one index per row, keeping a trailing axis of length 1 (for broadcasting)."""
    return np.take_along_axis(array, index[..., None], axis=-1)


# Taylor coefficients (2 − n)/n! of k(x) = 2(e^x − 1 − x) − x(e^x − 1) = −x³/6 − x⁴/12 − … for |x| ≤ 0.1:
# the first omitted term relative to x³/6 is 6(n − 2)/n!·0.1^(n−3): below 1e-18 from n = 14 (float64),
# below 1e-9 from n = 9 (float32).
_K_SERIES = {
    8: tuple((2 - n) / math.factorial(n) for n in range(3, 14)),
    4: tuple((2 - n) / math.factorial(n) for n in range(3, 9)),
}
# (−1)^n / (n (n − 1)) of φ₂(S) = (1 + S) log1p(S) − S = S²/2 − S³/6 + S⁴/12 − … for 0 ≤ S ≤ 0.1.
_PHI2_SERIES = {
    8: tuple((-1) ** n / (n * (n - 1)) for n in range(2, 18)),
    4: tuple((-1) ** n / (n * (n - 1)) for n in range(2, 10)),
}


def _power_series(x: np.ndarray, coefficients: tuple, lowest: int) -> np.ndarray:
    result = np.full_like(x, coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        result *= x
        result += x.dtype.type(coefficient)
    return result * x**lowest


def third_order_gap(weights: np.ndarray, f: np.ndarray) -> np.ndarray:
    r""":math:`2\,\mathrm{KL} - \langle p - q, f\rangle` per row (rows, 1), where ``weights`` is the teacher's
    distribution q, ``f`` the centred log-ratio (:math:`\sum q f = 0`, :math:`p = q e^{f}/\sum q e^f`) and
    :math:`\mathrm{KL} = \log\sum q e^f`: a third-order quantity (both terms are second order) computed as

    .. math:: \frac{\sum_i q_i k(f_i) + 2\varphi_2(S)}{1 + S}, \quad S = \sum_i q_i (e^{f_i} - 1 - f_i),

    with :math:`k(x) = 2(e^x - 1 - x) - x(e^x - 1)` and :math:`\varphi_2(S) = (1 + S)\operatorname{log1p}S - S`
    each summed as a series near 0, so nothing cancels. Used for d/dT of :math:`T^2`-scaled losses
    (``kdcore/_decoupled.py``); the caller keeps |f| moderate (≤ 1).
    """
    dtype = 4 if f.dtype.itemsize <= 4 else 8
    small = np.abs(f) <= SERIES_RADIUS
    with np.errstate(over="ignore", invalid="ignore"):
        direct = 2 * exp_minus_one_minus_x(f) - f * np.expm1(f)
    k = np.where(small, _power_series(np.where(small, f, 0), _K_SERIES[dtype], 3), direct)
    s = row_sum(weights * exp_minus_one_minus_x(f))
    low = s <= SERIES_RADIUS
    phi2 = np.where(
        low, _power_series(np.where(low, s, 0), _PHI2_SERIES[dtype], 2), (1 + s) * np.log1p(s) - s
    )
    return (row_sum(weights * k) + 2 * phi2) / (1 + s)
