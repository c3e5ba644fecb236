r"""The outcome of a check: one row per direction, the report that prints them, and the relative error.

The relative error :math:`|a - n| / (|a| + |n|)` and the CS231n rule of thumb for reading it are explained in
:mod:`kdcore.gradcheck`; the checks that fill these rows are in :mod:`kdcore.gradcheck.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from kdcore._arrays import as_float_array

from .differences import _FLOAT64

# The CS231n rule of thumb, printed under every table so that nobody has to look it up.
_RULE_OF_THUMB = (
    "relative error = |a − n| / (|a| + |n|); rule of thumb (CS231n, float64):",
    "> 1e-2 wrong, 1e-4..1e-2 suspicious, 1e-7..1e-4 fine only with kinks, < 1e-7 right",
)


class GradcheckRow(NamedTuple):
    r"""One direction of a gradient check.

    Attributes
    ----------
    label : str
        The direction: ``"u3"`` is the fourth random unit direction, ``"e[2, 0]"`` the coordinate direction
        of element ``x[2, 0]``.
    analytic : float
        The value computed from the derivative under test (for example :math:`\langle \nabla f(x), u\rangle`).
    numeric : float
        The same value by finite differences of the function.
    relative_error : float
        :math:`|a - n| / (|a| + |n|)`, see :func:`relative_error` (NaN or 1 when a value was not finite; such
        rows always fail).
    passed : bool
        Whether this direction agrees: relative error within ``rtol``, or absolute error below the rounding
        noise of the finite differences (see :func:`check_gradient`).
    note : str
        Why the row failed or was excused, in words (empty when there is nothing to add).
    """

    label: str
    analytic: float
    numeric: float
    relative_error: float
    passed: bool
    note: str = ""

    @property
    def at_noise_level(self) -> bool:
        """True for a row that passed on absolute error because both values were rounding noise."""
        # Passing rows carry a note only in that case (see _row).
        return self.passed and bool(self.note)


@dataclass(frozen=True, repr=False)
class GradcheckReport:
    r"""The outcome of a gradient check: a verdict and one row per direction.

    ``bool(report)`` is ``report.passed``; ``print(report)`` shows the table; ``report.raise_if_failed()``
    raises ``AssertionError`` with the table. In pytest, ``assert report.passed, report`` shows the short
    ``repr`` (pytest cuts messages that are not strings to 240 characters), which names the failing
    directions; ``report.raise_if_failed()`` or ``assert report.passed, str(report)`` shows the whole table.

    Attributes
    ----------
    name : str
        What was checked (by default the name of the derivative function under test).
    passed : bool
        True when every row passed.
    max_error : float
        The largest relative error over the rows judged by relative error (rows whose absolute error is
        below the rounding noise pass on that, and are left out); ``inf`` when some value was not finite.
    rtol : float
        The tolerance the relative errors were held to.
    step : float
        The finite-difference step :math:`h` along each (unit) direction; Richardson also uses :math:`h/2`.
    rows : tuple of GradcheckRow
        One per direction, random directions first, then coordinate directions.
    description : str
        What the ``analytic`` and ``numeric`` columns hold.
    notes : tuple of str
        Things the reader should know: an input upcast to float64, a function returning float32, rows that
        passed on their absolute error.

    Examples
    --------
    A gradient of :math:`\sum x^2` that forgot the factor 2, checked along the coordinate directions only
    (``directions=0``); every row is off by the same factor, and the relative error of a factor 2 is 1/3:

    >>> import numpy as np
    >>> from kdcore.gradcheck import check_gradient
    >>> def sum_of_squares(x):
    ...     return np.sum(x**2)
    >>> def forgot_the_two(x):
    ...     return x
    >>> report = check_gradient(sum_of_squares, forgot_the_two, [1.0, -2.0, 3.0], directions=0)
    >>> bool(report)
    False
    >>> print(report)
    gradcheck 'forgot_the_two': FAILED, 3 of 3 directions disagree
      max relative error 3.3e-01 > rtol 1.0e-06; step h = 3.7e-04 (and h/2)
      analytic = ⟨grad(x), u⟩, numeric = d/dt fn(x + t·u) at t = 0
      direction           analytic            numeric  rel. error
      e[0]         1.000000000e+00    2.000000000e+00     3.3e-01  FAIL  analytic/numeric = 0.5
      e[1]        -2.000000000e+00   -4.000000000e+00     3.3e-01  FAIL  analytic/numeric = 0.5
      e[2]         3.000000000e+00    6.000000000e+00     3.3e-01  FAIL  analytic/numeric = 0.5
      relative error = |a − n| / (|a| + |n|); rule of thumb (CS231n, float64):
      > 1e-2 wrong, 1e-4..1e-2 suspicious, 1e-7..1e-4 fine only with kinks, < 1e-7 right
    """

    name: str
    passed: bool
    max_error: float
    rtol: float
    step: float
    rows: tuple[GradcheckRow, ...]
    description: str = ""
    notes: tuple[str, ...] = ()

    @property
    def failures(self) -> tuple[GradcheckRow, ...]:
        """The rows that did not pass."""
        return tuple(row for row in self.rows if not row.passed)

    def __bool__(self) -> bool:
        return self.passed

    def raise_if_failed(self) -> GradcheckReport:
        """Raise ``AssertionError`` with the table if the check failed; return the report otherwise."""
        if not self.passed:
            raise AssertionError(str(self))
        return self

    def __repr__(self) -> str:
        # Short, and failing directions first: pytest shows only ~240 characters of an assertion message.
        failed = [row.label for row in self.failures]
        shown = ", ".join(failed[:6]) + (", …" if len(failed) > 6 else "")
        return (
            f"GradcheckReport({self.name!r}, passed={self.passed}, max_error={self.max_error:.2g}, "
            f"rtol={self.rtol:.2g}, failed {len(failed)} of {len(self.rows)} directions"
            + (f": {shown}" if failed else "")
            + ")"
        )

    def __str__(self) -> str:
        n_rows, n_failed = len(self.rows), len(self.failures)
        if self.passed:
            verdict = f"passed, {n_rows} directions agree"
            errors = f"max relative error {self.max_error:.1e} ≤ rtol {self.rtol:.1e}"
        else:
            verdict = f"FAILED, {n_failed} of {n_rows} directions disagree"
            errors = f"max relative error {self.max_error:.1e} > rtol {self.rtol:.1e}"
        lines = [f"gradcheck {self.name!r}: {verdict}", f"  {errors}; step h = {self.step:.1e} (and h/2)"]
        if self.description:
            lines.append(f"  {self.description}")
        width = max(9, *(len(row.label) for row in self.rows))
        lines.append(f"  {'direction':<{width}}  {'analytic':>17}  {'numeric':>17}  rel. error")
        for row in self.rows:
            if not row.passed:
                status = f"FAIL  {row.note}" if row.note else "FAIL"
            else:
                status = "ok (noise)" if row.at_noise_level else "ok"
            lines.append(
                f"  {row.label:<{width}}  {row.analytic:17.9e}  {row.numeric:17.9e}  "
                f"{row.relative_error:10.1e}  {status}".rstrip()
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.extend(f"  {line}" for line in _RULE_OF_THUMB)
        return "\n".join(lines)


def relative_error(analytic: ArrayLike, numeric: ArrayLike) -> np.ndarray:
    r"""The relative error :math:`|a - n| / (|a| + |n|)` of analytic values against numeric ones, elementwise.

    Parameters
    ----------
    analytic, numeric : array_like
        Real numbers; broadcast against each other.

    Returns
    -------
    numpy.ndarray
        float64, the broadcast shape (0-d for two scalars), values in :math:`[0, 1]` or NaN.

    Notes
    -----
    This is the definition of the CS231n notes:

    .. math::

        \operatorname{err}(a, n) = \frac{|a - n|}{|a| + |n|}, \qquad \operatorname{err}(0, 0) = 0.

    It is symmetric, independent of the scale of the function (``err(ka, kn) = err(a, n)``), 1 when the
    signs differ and :math:`1/3` when one value is twice the other. Equal infinities count as equal
    (error 0), an infinity against anything else as error 1, and NaN stays NaN. The quotient is formed
    after dividing both values by the larger magnitude, so values near the overflow limit do not overflow.

    Rule of thumb (CS231n, float64): above 1e-2 the gradient is wrong; 1e-4 to 1e-2 is suspicious; 1e-7 to
    1e-4 is fine only for functions with kinks; below 1e-7 the gradient is right. Near zero the measure is
    meaningless — two rounding noises have relative error ~1 — which is why the checks also accept a row
    whose absolute error is below the rounding noise of the finite differences.

    Examples
    --------
    >>> from kdcore.gradcheck import relative_error
    >>> relative_error([1.0, 0.0, 2.0, 5.0], [1.0, 0.0, -2.0, float("inf")])
    array([0., 0., 1., 1.])

    A gradient that forgot a factor 2:

    >>> round(float(relative_error(3.0, 6.0)), 4)
    0.3333
    """
    a = as_float_array(analytic, "analytic", _FLOAT64)
    n = as_float_array(numeric, "numeric", _FLOAT64)
    a, n = np.broadcast_arrays(a, n)
    with np.errstate(all="ignore"):
        largest = np.maximum(np.abs(a), np.abs(n))  # NaN if either is NaN
        error = np.abs(a / largest - n / largest) / (np.abs(a) / largest + np.abs(n) / largest)
    # Both zero: 0/0 above, but two zeros agree exactly.
    error = np.where(largest == 0, 0.0, error)
    # An infinity: equal infinities agree, otherwise the error is the largest possible.
    error = np.where(np.isinf(largest), np.where(a == n, 0.0, 1.0), error)
    return np.asarray(error, dtype=_FLOAT64)
