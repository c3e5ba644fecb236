r"""Double-double arithmetic: a number as an unevaluated sum ``hi + lo`` of two float64s (~32 digits).

Why it exists: the top-k *tail* convention (``kdcore.topk``) compares the student's tail log-mass
:math:`\log\sum_{j\notin K} e^{z_j}` with the teacher's :math:`\log(1 - \sum_{i\in K} e^{a_i})`. Both are
transcendental functions of the inputs, each computed in float64 with an absolute error of ~1e-16 times
its size; when the student is close to the teacher their *difference* (what the KL depends on) may be
1e-12, and a float64 evaluation keeps only ~4 of its digits. No rearrangement avoids this (the student's
normaliser does not cancel against the stored log-probabilities), so the few rows that need it are
recomputed here with ~32 significant digits, using only NumPy and the error-free transformations of
Knuth (TwoSum) and Dekker (TwoProduct).

A pair ``(hi, lo)`` of arrays is one double-double array. Everything here is vectorised and finite-input
only; the caller keeps arguments in range (exponents in about [-700, 700]).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

DD = tuple[np.ndarray, np.ndarray]

_SPLITTER = 134217729.0  # 2^27 + 1: splits a double into two 26-bit halves (Dekker)
# ln 2 to ~107 bits: hi is the double nearest ln 2, lo the double nearest the remainder.
_LN2 = (0.6931471805599453, 2.3190468138462996e-17)
# Taylor coefficients 1/k! of e^r − 1 for k = 1..10, each to ~107 bits (hi + lo from the exact rational).
_INVERSE_FACTORIALS = tuple(
    (
        float(Fraction(1, math.factorial(k))),
        float(Fraction(1, math.factorial(k)) - Fraction(float(Fraction(1, math.factorial(k))))),
    )
    for k in range(1, 11)
)
# e^r for |r| ≤ ln2/2 is split as e^{m/128}·e^s, |s| ≤ 1/256: e^{m/128} from a table (below), e^s − 1 from ten
# Taylor terms, whose truncation error (1/256)^11/11! ≈ 1e-34 is far below double-double precision.
_TABLE_STEP = 128
_TAYLOR_TERMS = 10


def two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    """``s + e == a + b`` exactly, ``s = fl(a + b)`` (Knuth)."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def _quick_two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    """two_sum for |a| ≥ |b|: renormalise a double-double."""
    s = a + b
    return s, b - (s - a)


def _split(a: np.ndarray) -> DD:
    t = _SPLITTER * a
    hi = t - (t - a)
    return hi, a - hi


def two_product(a: np.ndarray, b: np.ndarray) -> DD:
    """``p + e == a·b`` exactly, ``p = fl(a·b)`` (Dekker; no fused multiply-add needed)."""
    p = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def add(x: DD, y: DD) -> DD:
    s, e = two_sum(x[0], y[0])
    return _quick_two_sum(s, e + (x[1] + y[1]))


def multiply(x: DD, y: DD) -> DD:
    p, e = two_product(x[0], y[0])
    return _quick_two_sum(p, e + (x[0] * y[1] + x[1] * y[0]))


def _reduce(x: DD) -> tuple[np.ndarray, DD]:
    """n and r with x = n ln2 + r, |r| ≲ ln2/2, r in double-double (n·ln2 formed exactly by two_product)."""
    n = np.rint(x[0] / _LN2[0])
    n_ln2 = multiply((n, np.zeros_like(n)), (np.full_like(n, _LN2[0]), np.full_like(n, _LN2[1])))
    return n, add(x, (-n_ln2[0], -n_ln2[1]))


def _expm1_series(r: DD, terms: int) -> DD:
    """e^r − 1 by Horner's rule over the first ``terms`` Taylor terms, in double-double."""
    ones = np.ones_like(r[0])
    hi, lo = _INVERSE_FACTORIALS[terms - 1]
    y = (hi * ones, lo * ones)
    for hi, lo in reversed(_INVERSE_FACTORIALS[: terms - 1]):
        y = add(multiply(y, r), (hi * ones, lo * ones))
    return multiply(y, r)


def _table() -> DD:
    """e^{m/128} for m = −46..46, each as (1 + expm1(m/128/2^10))^(2^10): exact squarings of a tiny series
    (2y + y² keeps the relative precision of y), once at import."""
    m = np.arange(-46, 47, dtype=np.float64)
    r = (m / (_TABLE_STEP * 1024.0), np.zeros_like(m))  # exact
    y = _expm1_series(r, 9)
    for _ in range(10):
        y = add(multiply(y, y), (2 * y[0], 2 * y[1]))
    return add((np.ones_like(m), np.zeros_like(m)), y)


_EXP_TABLE = _table()


def exp(x: DD) -> DD:
    r""":math:`e^x` to ~32 digits: :math:`x = n\ln 2 + m/128 + s`, :math:`e^x = 2^n\,e^{m/128}\,(1 + \operatorname{expm1}(s))`.

    :math:`e^{m/128}` comes from a double-double table, :math:`\operatorname{expm1}(s)` (:math:`|s| \le 1/256`)
    from its Taylor series; the power of two is applied exactly at the end.
    """
    n, r = _reduce(x)
    m = np.rint(r[0] * _TABLE_STEP)
    s_part = add(r, (-m / _TABLE_STEP, np.zeros_like(m)))  # m/128 is exact
    y = _expm1_series(s_part, _TAYLOR_TERMS)
    row = m.astype(np.int64) + 46
    table = (_EXP_TABLE[0][row], _EXP_TABLE[1][row])
    value = add(table, multiply(table, y))
    exponent = n.astype(np.int64)
    return np.ldexp(value[0], exponent), np.ldexp(value[1], exponent)


def log(x: DD) -> DD:
    r""":math:`\log x` for :math:`x > 0` to ~32 digits: one Newton step from the float64 logarithm.

    With :math:`y_0 = \operatorname{fl}(\log x)` and :math:`u = (x - e^{y_0})/e^{y_0}` (:math:`|u| \lesssim
    10^{-16}`, its numerator an almost exact double-double cancellation),
    :math:`\log x = y_0 + \log(1 + u) = y_0 + u - u^2/2 + O(u^3)`.
    """
    y0 = np.log(x[0])
    e = exp((y0, np.zeros_like(y0)))
    difference = add(x, (-e[0], -e[1]))
    u = (difference[0] + difference[1]) / e[0]
    return _quick_two_sum(y0, u - 0.5 * u * u)


def row_sum(x: DD) -> DD:
    """The sum of a 1-D double-double array, to ~32 digits: pairwise, one vectorised double-double addition
    per level (the error grows with log2 of the length, ~17 levels for 128k terms, not with the length)."""
    hi, lo = x
    while hi.size > 1:
        if hi.size % 2:
            hi, lo = np.append(hi, 0.0), np.append(lo, 0.0)
        hi, lo = add((hi[0::2], lo[0::2]), (hi[1::2], lo[1::2]))
    return hi[0], lo[0]


def exp_of_nonpositive(x: DD) -> DD:
    """:func:`exp` of arguments ≤ 0 whose sum includes e^0 = 1, where terms below e^-45 are taken in float64:
    each float64 error is ≤ 1.1e-16·e^-45 ≈ 3e-36, so even 10^5 of them stay below 1e-30 of the sum."""
    small = x[0] < -45
    with np.errstate(under="ignore"):
        hi, lo = np.exp(x[0]), np.zeros_like(x[0])
    large = ~small
    if large.any():
        hi[large], lo[large] = exp((x[0][large], x[1][large]))
    return hi, lo


def logsumexp(x: np.ndarray) -> DD:
    r""":math:`\log\sum_j e^{x_j}` of a 1-D float64 array (``-inf`` entries skipped, at least one finite)."""
    x = x[np.isfinite(x)]
    top = np.max(x)
    shifted = two_sum(x, np.full_like(x, -top))  # exact: x_j − max
    total = row_sum(exp_of_nonpositive(shifted))
    log_total = log((np.atleast_1d(total[0]), np.atleast_1d(total[1])))
    hi, lo = add((np.atleast_1d(top), np.zeros(1)), log_total)
    return hi[0], lo[0]
