r"""Exact totals of a stream of per-position values: a short list of floats whose sum is exact, rounded once.

The in-memory losses add their per-position values with NumPy's pairwise summation, whose error grows like
:math:`\log_2(n)\,\varepsilon`. A stream of chunks is added here exactly instead (``math.fsum``'s correctly
rounded sums and their remainders, or exact rationals once a partial sum leaves the float64 range), and
rounded once at the end.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

__all__ = ["exact_sum"]


def exact_sum(values: Iterable[float], parts: Iterable[float] = ()) -> list[float]:
    r"""Floats whose (mathematical) sum is exactly the sum of ``values`` and ``parts``: usually one or two.

    Parameters
    ----------
    values : iterable of float
        Finite float64 numbers.
    parts : iterable of float, optional
        An earlier result of this function, to which ``values`` are added: the sum of a long stream is
        carried exactly from chunk to chunk.

    Returns
    -------
    list of float
        :math:`s_1 = \operatorname{fl}(S)`, :math:`s_2 = \operatorname{fl}(S - s_1)`, … until the remainder is
        0, where :math:`\operatorname{fl}` is ``math.fsum``'s correctly rounded sum. ``s_1`` is the correctly
        rounded total; ``math.fsum`` of the list is too.

    Raises
    ------
    OverflowError
        When a partial sum leaves the float64 range (``math.fsum``'s rule).

    Notes
    -----
    Each remainder is a sum of floats, hence a multiple of the smallest subnormal :math:`2^{-1074}`, and
    each is at most half an ulp of the one before, so the list ends after a few terms (at most about 40,
    when values span the whole exponent range).

    Examples
    --------
    >>> from kdcore.streaming import exact_sum
    >>> exact_sum([1e16, 1.0, -1e16])  # the float sum, left to right, is 0.0
    [1.0]
    >>> parts = exact_sum([1.0, 1e-30])  # 1 + 1e-30 is not a float: two parts carry it
    >>> parts
    [1.0, 1e-30]
    >>> exact_sum([-1.0], parts)
    [1e-30]
    """
    terms = list(itertools.chain(parts, values))
    result: list[float] = []
    while True:
        remainder = math.fsum(itertools.chain(terms, (-part for part in result)))
        if remainder == 0.0:
            return result
        result.append(remainder)


class _Total:
    """The exact sum of a stream of per-position values, one chunk at a time (non-finite values by IEEE rules)."""

    def __init__(self) -> None:
        self.parts: list[float] = []
        self.fraction: Fraction | None = None  # used instead of ``parts`` once a partial sum overflowed
        self.special = 0.0  # the sum of the inf/nan values: inf, -inf, nan, or 0.0 when there are none

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(values)
        if not finite.all():
            self.special += float(np.sum(values[~finite]))
            values = values[finite]
        if self.fraction is None:
            try:
                self.parts = exact_sum(values.tolist(), self.parts)
                return
            except OverflowError:  # the exact sum exceeds float64 somewhere on the way: exact rationals
                self.fraction = sum(map(Fraction, self.parts), Fraction(0))
        self.fraction += sum(map(Fraction, values.tolist()), Fraction(0))

    def value(self, divisor: int = 1) -> float:
        """The exact sum divided by ``divisor``, rounded once to float64 (±inf beyond its range)."""
        if self.special != 0.0 or math.isnan(self.special):
            return self.special
        exact = self.fraction if self.fraction is not None else sum(map(Fraction, self.parts), Fraction(0))
        exact /= max(divisor, 1)
        try:
            return float(exact)  # int / int in Python is correctly rounded
        except OverflowError:
            return math.inf if exact > 0 else -math.inf
