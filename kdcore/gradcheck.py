r"""Gradient checking: compare analytic derivatives with finite differences, and say how far apart they are.

Every derivative in kdcore is checked with this module, and it is public so that students check theirs with
the same tool. It offers three checks and the two finite-difference estimates they are built on:

* :func:`check_gradient` — a gradient ``grad(x)`` of a scalar function ``fn(x)``, along random directions
  (and every coordinate direction for small ``x``);
* :func:`check_vjp` — a vector-Jacobian product ``vjp(x, c)`` of an array function ``fn(x)``, by the
  inner-product identity :math:`\langle J t, c \rangle = \langle t, J^\top c \rangle`;
* :func:`check_hessian` — a Hessian (full, or one block per sample) by differencing the *analytic*
  gradient, which is the way to check a second derivative once the first is known to be right;
* :func:`numerical_gradient` and :func:`directional_derivative` — the estimates themselves.

Each check returns a :class:`GradcheckReport`: one row per direction with the analytic value, the numeric
value and their relative error, printed as a table (``print(report)``), true when the check passed.

How to read a relative error
----------------------------
The relative error of an analytic value :math:`a` against a numeric one :math:`n` is
:math:`|a - n| / (|a| + |n|)` (see :func:`relative_error`). It is 1 when the signs differ, 1/3 when one is
twice the other, and it does not care about the scale of the function. The rule of thumb of the CS231n
notes, for double precision:

==================  ==================================================================
relative error      what it usually means
==================  ==================================================================
> 1e-2              the gradient is wrong
1e-4 … 1e-2         something is off; be uncomfortable
1e-7 … 1e-4         fine only for functions with kinks (ReLU, max, hinge), else too high
< 1e-7              the gradient is right
==================  ==================================================================

kdcore's own checks are tighter than the notes' centred differences allow: with the Richardson
extrapolation used here a smooth float64 function checks to about 1e-10, so the default tolerance is
``DEFAULT_RTOL = 1e-6`` (the reasons are next to its definition).

Near zero the relative error means nothing: where the true derivative is 0 (a loss at its minimum,
:math:`\cos` at :math:`\pi/2`) both values are rounding noise and their relative error is ~1. The checks
measure that noise from the function values they already have, judge such rows by their absolute error
instead, and mark them ``ok (noise)`` in the table.

Everything here runs in float64. Inputs of other dtypes are converted to a float64 copy (a float32 ``x``
is checked at the float64 point with the same value, and the report says so), because a finite difference
in float32 is only good to about 1e-3 and would drown any bug smaller than that. No input is ever
modified, and the functions under test always receive fresh arrays, so a function that writes into its
argument cannot corrupt the check either.

References
----------
.. [1] A. Karpathy et al., "CS231n: Gradient checks", https://cs231n.github.io/neural-networks-3/#gradcheck
.. [2] JAX, ``jax.test_util.check_grads``: random directions and the inner-product check for VJPs.
.. [3] L. F. Richardson, "The deferred approach to the limit", Phil. Trans. R. Soc. A 226 (1927) 299–361,
   https://doi.org/10.1098/rsta.1927.0008
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from kdcore._arrays import _describe, as_float_array

__all__ = [
    "GradcheckReport",
    "GradcheckRow",
    "check_gradient",
    "check_hessian",
    "check_vjp",
    "directional_derivative",
    "numerical_gradient",
    "relative_error",
]

_FLOAT64 = np.dtype(np.float64)
_EPS = float(np.finfo(np.float64).eps)
# The spacing of float64 numbers near 0: below ~2e-308 (subnormals) rounding is absolute, not eps·|f|.
_SUBNORMAL = float(np.finfo(np.float64).smallest_subnormal)

# The step, relative to max(1, |x|). A Richardson-extrapolated central difference (see _richardson) errs by
# about 3·eps·|f|/h from rounding (each value of f is off by ~eps·|f|, and the quotient divides by h) plus
# h⁴·|f⁽⁵⁾|/480 from truncation. When f and its derivatives are of order one the sum is smallest near
# h = eps^(1/5) ≈ 7e-4. We take the smaller eps^(1/4) ≈ 1.2e-4: the rounding term grows six-fold (to
# ~1e-11, still far below any tolerance) but the truncation term shrinks a thousand-fold, so functions with
# sharp curvature — low distillation temperatures, logs and powers close to a pole — still check to ~1e-9,
# and the probes stay closer to x, away from kinks and domain edges. (Without Richardson, a plain central
# difference wants h ≈ eps^(1/3) ≈ 6e-6 — the CS231n notes' h = 1e-5 — and reaches only eps^(2/3) ≈ 4e-11.)
DEFAULT_STEP_FACTOR = _EPS**0.25

# The default tolerance for float64. The finite differences here are good to ~1e-10 on well-scaled smooth
# functions (1e-9 with sharp curvature), so 1e-6 leaves a thousand-fold margin against false alarms, while a
# real bug — a missing factor 2 (relative error 1/3), a sign flip (1), a wrong temperature power, one wrong
# entry among 64 seen along a coordinate direction — is caught by many orders of magnitude. It is the
# "< 1e-7 fine" end of the CS231n rule of thumb, loosened ten-fold for curvature.
DEFAULT_RTOL = 1e-6

# Up to this many elements, the checks also probe every coordinate direction e_i: a random direction sees
# an error in one entry of a gradient of size n only diluted by ~1/√n, a coordinate direction sees it whole.
COORDINATE_DIRECTIONS_MAX_SIZE = 64

# A row whose absolute error is below the noise of its values may pass whatever its relative error: when
# the true value is ~0 (cos(π/2), a loss at its minimum, a direction orthogonal to the gradient) both
# numbers are rounding noise, and the relative error of two noises is ~1 and meaningless (the CS231n notes
# warn about this case). The noise of the numeric value is *measured*, because no formula knows how much
# rounding fn carries (a KL divergence near 0 is a difference of logarithms of order one, far noisier than
# eps·|KL|): each direction also takes the steps ±h/4, and the distance between the Richardson estimates
# R(h) and R(h/2) — Ridders' error estimate — contains the rounding noise of the differences (and their
# remaining truncation error). Rounding noise near x hardly depends on the direction, and one measurement
# can be small by chance, so the rows pool their measurements (the largest of all directions) and allow
# NOISE_FACTOR times it. Two floors are added: NOISE_ULPS·(eps·|f| + the subnormal spacing)·3/h (3/h is
# how much the Richardson quotient magnifies the rounding of f) for functions whose rounding happens to
# cancel at the probes, and
# NOISE_ULPS·eps·(G + Σ|terms of the analytic inner product|) for the analytic value. G is the size of
# the derivatives around x: an analytic gradient computed with cancellation — 2·((z − z̄) − (v − v̄)) at a
# stationary point — is rounded at the size its terms have, which the value itself no longer shows, and no
# probe can see that rounding, since it is the same at every probe. check_gradient takes G as the
# gradient at distance max(1, |x|) from x, |curvature|·max(1, ‖x‖∞), with the curvature measured from
# the same probes (and one value at x); the other checks take G = 0.
NOISE_ULPS = 16
NOISE_FACTOR = 4

# Measured noise up to (this many ulps of fn's values)·3/h is what float64 rounding of a function can
# explain — a long sum or a mild cancellation loses a few thousand ulps. Noisier differences mean fn is
# imprecise (float32 arithmetic is ~5e8 float64 ulps), and at an ordinary point such a check cannot vouch
# for anything finer than its noise: rows hidden in that noise fail instead of passing (see _row).
FLOAT64_ROUNDING_ULPS = 4096

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


# --------------------------------------------------------------------------------------------------------
# Input checking


def _as_point(x: ArrayLike) -> tuple[np.ndarray, list[str]]:
    """``x`` as a fresh float64 array (never a view of the caller's), with a note if its dtype was changed."""
    given = np.asarray(x).dtype
    point = np.array(as_float_array(x, "x", _FLOAT64), dtype=_FLOAT64, copy=True)
    notes = []
    if given.kind == "f" and given != _FLOAT64:
        # Low precision is upcast rather than refused: the point is the same number in float64, and a finite
        # difference in float32 would be good only to ~eps32^(2/3) ≈ 2e-5 at best, ~1e-3 in practice.
        reason = (
            f"finite differences in {given} cannot resolve derivatives to the tolerance"
            if given.itemsize < _FLOAT64.itemsize
            else "kdcore checks derivatives in float64"
        )
        notes.append(f"x had dtype {given}; the check ran on a float64 copy, because {reason}")
    if not np.all(np.isfinite(point)):
        raise ValueError("x must be finite: derivatives at inf or NaN cannot be checked")
    if point.size == 0:
        raise ValueError(f"x must have at least one element, got shape {point.shape}")
    return point, notes


def _check_step(step: object) -> float | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise TypeError(f"step must be a positive finite number or None, got step={_describe(step)}")
    value = float(step)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"step must be a positive finite number or None, got step={step!r}")
    return value


def _check_rtol(rtol: object) -> float:
    if rtol is None:
        return DEFAULT_RTOL
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real):
        raise TypeError(f"rtol must be a positive number or None, got rtol={_describe(rtol)}")
    value = float(rtol)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"rtol must be a positive finite number or None, got rtol={rtol!r}")
    return value


def _check_directions(directions: object, point: np.ndarray) -> int:
    if isinstance(directions, bool) or not isinstance(directions, numbers.Integral):
        raise TypeError(f"directions must be a non-negative integer, got directions={_describe(directions)}")
    if directions < 0:
        raise ValueError(f"directions must be a non-negative integer, got directions={directions!r}")
    if directions == 0 and point.size > COORDINATE_DIRECTIONS_MAX_SIZE:
        raise ValueError(
            f"nothing to check: directions=0 and x has more than {COORDINATE_DIRECTIONS_MAX_SIZE} elements"
        )
    return int(directions)


def _default_step(point: np.ndarray) -> float:
    """The step along a unit direction at ``point``: relative for large coordinates, absolute for small ones."""
    # Relative to |x| because the spacing of floats grows with |x| (a step smaller than eps·|x| is lost when
    # x + h is rounded); absolute below 1 because near 0 "relative" would shrink h to nothing.
    return DEFAULT_STEP_FACTOR * max(1.0, float(np.max(np.abs(point))))


class _Caller:
    """Calls a user function on fresh copies, converts its result to float64, and remembers what to report."""

    def __init__(self, function: Callable[..., ArrayLike], role: str, *, scalar: bool = False) -> None:
        self.function = function
        self.role = role
        self.scalar = scalar
        self.low_precision: np.dtype | None = None

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        # Fresh copies: a function that writes into its argument must not move our probe points.
        # Floating-point warnings are silenced because a non-finite result is reported in its row instead
        # (and with pytest's filterwarnings = error a warning would end the check with an exception).
        with np.errstate(all="ignore"):
            value = self.function(*(array.copy() for array in arrays))
        result = np.asarray(value)
        if result.dtype.kind not in "biuf":
            raise TypeError(f"{self.role} must return real numbers, got {_describe(value)}")
        if self.scalar and result.ndim != 0:
            raise ValueError(
                f"{self.role} must return a scalar, got an array of shape {result.shape} "
                "(use check_vjp for functions with array values)"
            )
        if result.dtype.kind == "f" and result.dtype.itemsize < _FLOAT64.itemsize:
            self.low_precision = result.dtype
        return result.astype(_FLOAT64)

    def notes(self) -> list[str]:
        if self.low_precision is None:
            return []
        return [
            f"{self.role} returned {self.low_precision} values: the check cannot see past their rounding "
            "(relative errors ~1e-7 in float32 values, ~1e-3 in differences of them)"
        ]


def _name_of(function: object) -> str:
    return getattr(function, "__name__", type(function).__name__)


# --------------------------------------------------------------------------------------------------------
# Finite differences


class _Difference(NamedTuple):
    estimate: np.ndarray  # d/dt f(x + t·d) at t = 0, elementwise over f's values; NaN where not finite
    scale: np.ndarray  # max |f| over the probes, elementwise: the least rounding the estimate can carry
    spread: np.ndarray  # |R(h) − R(h/2)|, elementwise: the measured noise (0 unless asked for)
    curvature: np.ndarray  # |f(h) + f(−h) − 2f(0)| / h², elementwise (0 without the value at 0)
    bad_step: float | None  # the first step s at which f(x + s·d) was not finite, if any


def _richardson(
    path: Callable[[float], np.ndarray],
    h: float,
    measure_noise: bool = False,
    centre: np.ndarray | None = None,
) -> _Difference:
    r"""Central differences of ``path`` at 0 with steps h and h/2, combined by Richardson extrapolation.

    With ``measure_noise``, also the step h/4 and the spread between the estimates from (h, h/2) and from
    (h/2, h/4), which measures the noise of the estimate (see NOISE_FACTOR); with the value at 0
    (``centre``), also the size of the second derivative.
    """
    steps = (h, -h, h / 2, -h / 2) + ((h / 4, -h / 4) if measure_noise else ())
    values = [path(s) for s in steps]
    shape = values[0].shape
    if any(value.shape != shape for value in values):
        raise ValueError(f"the function returned arrays of different shapes: {[v.shape for v in values]}")
    finite = np.logical_and.reduce([np.isfinite(value) for value in values])
    bad_step = next(
        (s for s, value in zip(steps, values, strict=True) if not np.all(np.isfinite(value))), None
    )
    with np.errstate(all="ignore"):
        coarse = (values[0] - values[1]) / (2 * h)
        fine = (values[2] - values[3]) / h
        # Both quotients are f'(0) + c₂·step² + O(step⁴); 4·fine − coarse cancels the step² term.
        estimate = (4 * fine - coarse) / 3
        scale = np.maximum.reduce([np.abs(value) for value in values])
        spread = np.zeros(shape)
        if measure_noise:
            finer = (values[4] - values[5]) / (h / 2)
            spread = np.abs((4 * finer - fine) / 3 - estimate)
        curvature = np.zeros(shape)
        if centre is not None:
            curvature = np.abs(values[0] + values[1] - 2 * centre) / h**2
    return _Difference(
        np.where(finite, estimate, np.nan),
        scale,
        np.where(finite, spread, np.nan),
        np.where(finite, curvature, np.nan),
        bad_step,
    )


def _along(
    call: _Caller,
    point: np.ndarray,
    direction: np.ndarray,
    h: float,
    measure_noise: bool = False,
    centre: np.ndarray | None = None,
) -> _Difference:
    # x + s·d is a new array for every probe, so the caller's point is never touched.
    return _richardson(lambda s: call(point + s * direction), h, measure_noise, centre)


# --------------------------------------------------------------------------------------------------------
# Public functions


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


def numerical_gradient(
    fn: Callable[[np.ndarray], ArrayLike], x: ArrayLike, *, step: float | None = None
) -> np.ndarray:
    r"""The gradient of a scalar function by central differences in each element, Richardson-extrapolated.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> float``: a scalar function of an array shaped like ``x``. It receives a fresh float64
        array at every call.
    x : array_like
        The point, any shape; converted to a float64 copy (``x`` itself is never modified).
    step : float, optional
        The step :math:`h` for every element. Default: :math:`\epsilon^{1/4} \max(1, |x_i|)` for element
        :math:`i`, with :math:`\epsilon` the float64 machine epsilon (:math:`\epsilon^{1/4} \approx 1.2 \cdot
        10^{-4}`).

    Returns
    -------
    numpy.ndarray
        float64, shaped like ``x``. An element is NaN where ``fn`` was not finite at one of its probe points.

    Notes
    -----
    Each element costs four calls of ``fn``. The central difference with step :math:`h` along the unit
    vector :math:`e_i`,

    .. math::

        D(h) = \frac{f(x + h e_i) - f(x - h e_i)}{2h}
             = \frac{\partial f}{\partial x_i} + \frac{h^2}{6} f^{(3)} + \frac{h^4}{120} f^{(5)} + \dots,

    has an error of order :math:`h^2`. Richardson extrapolation combines the steps :math:`h` and
    :math:`h/2` so that the :math:`h^2` terms cancel:

    .. math::

        R(h) = \frac{4 D(h/2) - D(h)}{3} = \frac{\partial f}{\partial x_i} - \frac{h^4}{480} f^{(5)} + \dots

    Rounding adds about :math:`3 \epsilon |f| / h`. With the default step both errors are tiny for
    well-scaled functions: float64 gradients come out to about 1e-10 relative. The values of ``fn`` are
    differenced in float64 whatever their dtype; if ``fn`` computes in float32 the result is only good to
    about 1e-3, because its rounding, not the step, dominates.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.gradcheck import numerical_gradient
    >>> x = np.array([0.5, -1.0, 2.0])
    >>> gradient = numerical_gradient(lambda v: np.sum(v**3), x)
    >>> bool(np.allclose(gradient, 3 * x**2, rtol=1e-10, atol=0))
    True
    """
    point, _ = _as_point(x)
    fixed_step = _check_step(step)
    call = _Caller(fn, "fn", scalar=True)
    gradient = np.empty(point.shape, dtype=_FLOAT64)
    for index in np.ndindex(point.shape):
        h = DEFAULT_STEP_FACTOR * max(1.0, abs(float(point[index]))) if fixed_step is None else fixed_step
        unit = np.zeros_like(point)
        unit[index] = 1.0
        gradient[index] = _along(call, point, unit, h).estimate
    return gradient


def directional_derivative(
    fn: Callable[[np.ndarray], ArrayLike],
    x: ArrayLike,
    direction: ArrayLike,
    *,
    step: float | None = None,
) -> float:
    r"""The derivative of a scalar function along a direction, by a Richardson-extrapolated central difference.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> float``: a scalar function of an array shaped like ``x``.
    x : array_like
        The point; converted to a float64 copy (never modified).
    direction : array_like
        The direction :math:`d`, shaped like ``x``. It is not normalised: the result scales with it.
    step : float, optional
        The step :math:`h` in :math:`t`. Default: :math:`\epsilon^{1/4} \max(1, \|x\|_\infty) / \|d\|_2`,
        so that the probes lie at distance :math:`\epsilon^{1/4} \max(1, \|x\|_\infty)` from ``x``.

    Returns
    -------
    float
        :math:`\frac{d}{dt} f(x + t d)` at :math:`t = 0`, which equals :math:`\langle \nabla f(x), d\rangle`;
        NaN if ``fn`` was not finite at a probe point; 0 for a zero direction.

    Notes
    -----
    With :math:`g(t) = f(x + t d)`, four calls of ``fn`` give

    .. math::

        D(h) = \frac{g(h) - g(-h)}{2h}, \qquad
        R(h) = \frac{4 D(h/2) - D(h)}{3} = \langle \nabla f(x), d \rangle + O(h^4),

    a central difference with its :math:`h^2` error removed by Richardson extrapolation (see
    :func:`numerical_gradient`). One directional derivative checks a whole gradient against one number,
    which is how :func:`check_gradient` works.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.gradcheck import directional_derivative
    >>> slope = directional_derivative(lambda v: np.sum(np.sin(v)), [0.0, 1.0], [1.0, 1.0])
    >>> round(slope, 10)  # cos(0) + cos(1)
    1.5403023059
    """
    point, _ = _as_point(x)
    d = np.array(as_float_array(direction, "direction"), dtype=_FLOAT64, copy=True)
    if d.shape != point.shape:
        raise ValueError(f"direction must have the shape of x, {point.shape}, got shape {d.shape}")
    norm = float(np.linalg.norm(d))
    if not math.isfinite(norm):
        raise ValueError("direction must be finite")
    if norm == 0.0:
        return 0.0
    fixed_step = _check_step(step)
    h = _default_step(point) / norm if fixed_step is None else fixed_step
    call = _Caller(fn, "fn", scalar=True)
    return float(_along(call, point, d, h).estimate)


def _directions(
    point: np.ndarray, directions: int, rng: np.random.Generator
) -> Iterator[tuple[str, np.ndarray, tuple[int, ...] | None]]:
    """Seeded random unit directions ``u0, u1, …``, then (for small x) every coordinate direction."""
    for k in range(directions):
        u = rng.standard_normal(point.shape)
        yield f"u{k}", u / np.linalg.norm(u), None
    if point.size <= COORDINATE_DIRECTIONS_MAX_SIZE:
        for index in np.ndindex(point.shape):
            unit = np.zeros_like(point)
            unit[index] = 1.0
            label = "e[" + ", ".join(str(i) for i in index) + "]" if index else "e"
            yield label, unit, index


class _Probe(NamedTuple):
    """One direction, measured but not yet judged."""

    label: str
    analytic: float
    difference: _Difference  # of fn's values (all of them, for array-valued functions)
    weights: np.ndarray  # c: the numeric value is Σ c·(derivative of the values); 1 for a scalar fn
    analytic_terms: float  # Σ |terms| of the analytic inner product, for its rounding
    problem: str | None  # why the row fails outright (a value that is not finite)


class _Noise(NamedTuple):
    """The rounding noise of one row, and whether float64 rounding of fn's values explains it."""

    level: float  # |a − n| below this cannot be told from rounding
    float64_accurate: bool  # the measured noise is within FLOAT64_ROUNDING_ULPS of fn's values


def _judge(probes: list[_Probe], rtol: float, h: float, derivative_size: float = 0.0) -> list[GradcheckRow]:
    """Turn measured directions into rows, pooling the noise measurements of all of them (see NOISE_FACTOR)."""
    with np.errstate(all="ignore"):
        measured = NOISE_FACTOR * np.maximum.reduce([np.nan_to_num(p.difference.spread) for p in probes])
        sizes = np.maximum.reduce([np.nan_to_num(p.difference.scale) for p in probes])
        float64_budget = 3 / h * FLOAT64_ROUNDING_ULPS * (_EPS * sizes + _SUBNORMAL)
        numerics, noises = [], []
        for probe in probes:
            numerics.append(float(np.sum(probe.weights * probe.difference.estimate)))
            weights = np.abs(probe.weights)
            floor = 3 / h * NOISE_ULPS * (_EPS * probe.difference.scale + _SUBNORMAL)
            level = float(np.sum(weights * np.maximum(floor, measured)))
            level += NOISE_ULPS * _EPS * (derivative_size + probe.analytic_terms)
            accurate = bool(np.sum(weights * measured) <= np.sum(weights * float64_budget))
            noises.append(_Noise(level, accurate))
    # The scale of the whole check: the largest derivative seen along any direction.
    scale = max(
        (
            max(abs(p.analytic), abs(n))
            for p, n in zip(probes, numerics, strict=True)
            if math.isfinite(p.analytic)
        ),
        default=0.0,
    )
    scale = scale if math.isfinite(scale) else 0.0
    # A point is nearly stationary when its derivatives are tiny next to those a step of max(1, |x|) away.
    stationary = scale <= math.sqrt(rtol) * derivative_size
    return [
        _row(probe.label, probe.analytic, numeric, rtol, noise, scale, stationary, probe.problem)
        for probe, numeric, noise in zip(probes, numerics, noises, strict=True)
    ]


def _row(
    label: str,
    analytic: float,
    numeric: float,
    rtol: float,
    noise: _Noise,
    scale: float,
    stationary: bool,
    problem: str | None,
) -> GradcheckRow:
    """Judge one direction: by relative error, or by absolute error when its values are rounding noise."""
    error = float(relative_error(analytic, numeric))
    if problem is not None or not (math.isfinite(analytic) and math.isfinite(numeric)):
        return GradcheckRow(label, analytic, numeric, error, False, problem or "not finite")
    if error <= rtol:
        return GradcheckRow(label, analytic, numeric, error, True)
    difference = abs(analytic - numeric)
    if difference <= noise.level:
        # Within the noise the row cannot tell right from wrong, and passes: no float64 check could do
        # better. Except when fn itself is imprecise (its noise is more than float64 rounding of its values
        # explains, and not small next to the derivatives: at most √rtol of the largest, 1e-3 at the
        # default) at an ordinary point (not every derivative noise, not nearly stationary): typically fn
        # computes in float32. There the check could not tell a right gradient from one that is off by a
        # fraction of a percent, and the row fails rather than pass unexamined.
        imprecise = not noise.float64_accurate and noise.level > math.sqrt(rtol) * scale
        ordinary = scale > noise.level and not stationary
        if not (imprecise and ordinary):
            note = f"|a − n| = {difference:.1e} is below the rounding noise {noise.level:.1e}"
            return GradcheckRow(label, analytic, numeric, error, True, note)
        note = (
            f"|a − n| = {difference:.1e} is within the noise {noise.level:.1e} of the finite differences, "
            "more than float64 rounding of fn explains (fn computed in float32, or losing digits?)"
        )
        return GradcheckRow(label, analytic, numeric, error, False, note)
    note = ""
    if numeric != 0.0:
        # The ratio points at the bug: 0.5 or 2 is a factor 2, -1 a sign, T or 1/T a temperature.
        note = f"analytic/numeric = {analytic / numeric:.4g}"
    return GradcheckRow(label, analytic, numeric, error, False, note)


def _report(
    name: str,
    rows: list[GradcheckRow],
    rtol: float,
    step: float,
    description: str,
    notes: list[str],
) -> GradcheckReport:
    judged = [row.relative_error for row in rows if not row.at_noise_level]
    if any(not math.isfinite(row.analytic) or not math.isfinite(row.numeric) for row in rows):
        max_error = math.inf
    else:
        max_error = max(judged, default=0.0)
    excused = [row.label for row in rows if row.at_noise_level]
    zero = [row for row in rows if row.analytic == 0.0 and row.numeric == 0.0]
    if len(excused) + len(zero) == len(rows):
        notes = [
            *notes,
            "every direction was at rounding-noise level: the derivative is ~0 at x, so this point tests "
            "little; check at a point where it is not",
        ]
    elif excused:
        notes = [
            *notes,
            f"{len(excused)} row(s) ({', '.join(excused[:4])}{', …' if len(excused) > 4 else ''}) differ by "
            "less than the rounding noise of the finite differences, and pass on that",
        ]
    passed = all(row.passed for row in rows)
    return GradcheckReport(name, passed, float(max_error), rtol, step, tuple(rows), description, tuple(notes))


def _not_finite(role: str, label: str, bad_step: float | None) -> str:
    if bad_step is None:
        return ""
    sign = "+" if bad_step > 0 else "−"
    return f"{role} is not finite at x {sign} {abs(bad_step):.1e}·{label}"


def check_gradient(
    fn: Callable[[np.ndarray], ArrayLike],
    grad: Callable[[np.ndarray], ArrayLike],
    x: ArrayLike,
    *,
    directions: int = 8,
    seed: int | np.random.Generator | None = 0,
    rtol: float | None = None,
    step: float | None = None,
    name: str | None = None,
) -> GradcheckReport:
    r"""Check a gradient against finite differences of its function, along random and coordinate directions.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> float``: the scalar function.
    grad : callable
        ``grad(x) -> array`` shaped like ``x``: its gradient, the thing under test.
    x : array_like
        The point, any shape; converted to a float64 copy (never modified). A float32 ``x`` is checked at
        the float64 point of the same value, and the report notes it.
    directions : int, default 8
        How many random unit directions to probe. When ``x`` has at most 64 elements every coordinate
        direction is probed as well.
    seed : int or numpy.random.Generator, default 0
        Seed of ``numpy.random.default_rng`` for the random directions: the same directions on every run.
    rtol : float, optional
        Tolerance on the relative error of each direction. Default ``DEFAULT_RTOL = 1e-6``.
    step : float, optional
        The step :math:`h` along each unit direction. Default
        :math:`\epsilon^{1/4} \max(1, \|x\|_\infty) \approx 1.2 \cdot 10^{-4} \max(1, \|x\|_\infty)`.
    name : str, optional
        A name for the report; default the name of ``grad``.

    Returns
    -------
    GradcheckReport
        True if every direction agrees; ``print`` it for the table.

    Raises
    ------
    ValueError
        If ``grad(x)`` does not have the shape of ``x``, ``fn`` does not return a scalar, or there is
        nothing to check (``directions=0`` and ``x`` larger than 64 elements).

    Notes
    -----
    For each unit direction :math:`u` the check compares

    .. math::

        a = \langle \nabla f(x), u \rangle
        \quad\text{with}\quad
        n = \frac{4 D(h/2) - D(h)}{3}, \qquad D(h) = \frac{f(x + h u) - f(x - h u)}{2h},

    the Richardson-extrapolated central difference (error :math:`O(h^4)`, see :func:`numerical_gradient`).
    A direction passes when :math:`|a - n| / (|a| + |n|) \le` ``rtol``. When the true value is 0 both
    numbers are rounding noise and their relative error is ~1 whatever the gradient, so a direction also
    passes when :math:`|a - n|` is below the rounding noise of the two values — no float64 check can
    resolve more — unless ``fn`` itself is imprecise (noisier than float64 rounding of its values
    explains, as when it computes in float32) at an ordinary point, where the check could not tell a right
    gradient from a slightly wrong one: then the direction fails, with a note. The noise of :math:`n` is
    measured, not assumed: two more probes at :math:`x \pm \tfrac{h}{4} u` give a second estimate
    :math:`R(h/2)`, and :math:`|R(h) - R(h/2)|` (Ridders' error estimate), the largest over all
    directions, times ``NOISE_FACTOR = 4``, is the noise. A direction where ``fn`` or ``grad`` is not finite fails with a
    note. One random direction tests every entry of the gradient at once (an error :math:`\delta` in entry
    :math:`i` moves :math:`a` by :math:`\delta u_i`); coordinate directions test one entry each,
    undiluted. Each direction costs six calls of ``fn`` (four, and two to measure the noise), plus one call
    at ``x``; ``grad`` is called once.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.gradcheck import check_gradient
    >>> def log_sum_exp(z):
    ...     return np.log(np.sum(np.exp(z)))
    >>> def softmax(z):  # the gradient of log-sum-exp
    ...     e = np.exp(z - z.max())
    ...     return e / e.sum()
    >>> z = np.array([1.0, -0.5, 2.0, 0.0])
    >>> report = check_gradient(log_sum_exp, softmax, z)
    >>> report.passed, len(report.rows)  # 8 random directions and 4 coordinate directions
    (True, 12)
    >>> report.max_error < 1e-9
    True
    >>> check_gradient(log_sum_exp, lambda z: -softmax(z), z).passed  # a flipped sign
    False
    """
    point, notes = _as_point(x)
    count = _check_directions(directions, point)
    tolerance = _check_rtol(rtol)
    fixed_step = _check_step(step)
    h = _default_step(point) if fixed_step is None else fixed_step
    call_fn = _Caller(fn, "fn", scalar=True)
    call_grad = _Caller(grad, "grad")
    gradient = call_grad(point)
    if gradient.shape != point.shape:
        raise ValueError(f"grad(x) must have the shape of x, {point.shape}, got shape {gradient.shape}")
    value_at_x = call_fn(point)
    probes = []
    for label, u, index in _directions(point, count, np.random.default_rng(seed)):
        difference = _along(call_fn, point, u, h, measure_noise=True, centre=value_at_x)
        with np.errstate(all="ignore"):
            terms = gradient[index] if index is not None else gradient * u
            analytic = float(np.sum(terms))
            analytic_terms = float(np.sum(np.abs(terms)))
        problem = _not_finite("fn", label, difference.bad_step) or None
        if problem is None and not math.isfinite(analytic):
            problem = "grad(x) is not finite"
        probes.append(_Probe(label, analytic, difference, np.ones(()), analytic_terms, problem))
    # The size of the gradient at distance max(1, |x|) from x: the rounding scale of grad (see NOISE_ULPS).
    curvature = max((float(np.nan_to_num(p.difference.curvature)) for p in probes), default=0.0)
    derivative_size = curvature * max(1.0, float(np.max(np.abs(point))))
    rows = _judge(probes, tolerance, h, derivative_size)
    description = "analytic = ⟨grad(x), u⟩, numeric = d/dt fn(x + t·u) at t = 0"
    notes += call_fn.notes() + call_grad.notes()
    return _report(name or _name_of(grad), rows, tolerance, h, description, notes)


def check_vjp(
    fn: Callable[[np.ndarray], ArrayLike],
    vjp: Callable[[np.ndarray, np.ndarray], ArrayLike],
    x: ArrayLike,
    *,
    directions: int = 8,
    seed: int | np.random.Generator | None = 0,
    rtol: float | None = None,
    step: float | None = None,
    name: str | None = None,
) -> GradcheckReport:
    r"""Check a vector-Jacobian product by the inner-product identity ⟨J t, c⟩ = ⟨t, Jᵀ c⟩.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> array``: a function with array values of any shape.
    vjp : callable
        ``vjp(x, cotangent) -> array`` shaped like ``x``: the product :math:`J(x)^\top c` of the transposed
        Jacobian of ``fn`` with a cotangent ``c`` shaped like ``fn(x)`` — the thing under test.
    x : array_like
        The point; converted to a float64 copy (never modified).
    directions : int, default 8
        How many random pairs :math:`(t, c)` to probe. When ``x`` has at most 64 elements every coordinate
        direction :math:`t = e_i` is probed as well, each with its own random :math:`c`.
    seed : int or numpy.random.Generator, default 0
        Seed of ``numpy.random.default_rng`` for :math:`t` and :math:`c`.
    rtol : float, optional
        Tolerance on the relative error of each pair. Default ``DEFAULT_RTOL = 1e-6``.
    step : float, optional
        The step along each unit tangent :math:`t`; default as in :func:`check_gradient`.
    name : str, optional
        A name for the report; default the name of ``vjp``.

    Returns
    -------
    GradcheckReport
        True if every pair agrees; ``print`` it for the table.

    Raises
    ------
    ValueError
        If ``vjp(x, c)`` does not have the shape of ``x``, or there is nothing to check.

    Notes
    -----
    A VJP is checked without ever forming the Jacobian :math:`J = \partial f / \partial x`. For a random unit
    tangent :math:`t` (shaped like ``x``) and a random unit cotangent :math:`c` (shaped like ``f(x)``),

    .. math::

        \langle J t, c \rangle = \langle t, J^\top c \rangle .

    The left side needs only a directional derivative of :math:`f`, by central differences with Richardson
    extrapolation,

    .. math::

        J t \approx \frac{4 D(h/2) - D(h)}{3}, \qquad D(h) = \frac{f(x + h t) - f(x - h t)}{2h},

    and the right side is one call of ``vjp``. A transposed Jacobian, a missing factor or a wrong sign
    breaks the identity for almost every pair :math:`(t, c)`. Values at rounding-noise level are judged as
    in :func:`check_gradient`. Each pair costs six calls of ``fn`` (four, and two to measure the noise) and
    one of ``vjp``.

    Examples
    --------
    A matrix function :math:`f(X) = A X` has the VJP :math:`A^\top C`; forgetting the transpose is caught:

    >>> import numpy as np
    >>> from kdcore.gradcheck import check_vjp
    >>> A = np.array([[2.0, 1.0], [-1.0, 3.0]])
    >>> X = np.array([[0.5, 1.0, -1.0], [2.0, 0.0, 1.5]])
    >>> check_vjp(lambda X: A @ X, lambda X, C: A.T @ C, X).passed
    True
    >>> check_vjp(lambda X: A @ X, lambda X, C: A @ C, X).passed
    False
    """
    point, notes = _as_point(x)
    count = _check_directions(directions, point)
    tolerance = _check_rtol(rtol)
    fixed_step = _check_step(step)
    h = _default_step(point) if fixed_step is None else fixed_step
    call_fn = _Caller(fn, "fn")
    call_vjp = _Caller(vjp, "vjp")
    value_at_x = call_fn(point)
    rng = np.random.default_rng(seed)
    probes = []
    for label, t, _ in _directions(point, count, rng):
        c = rng.standard_normal(value_at_x.shape)
        c /= max(float(np.linalg.norm(c)), np.finfo(np.float64).tiny)  # a 0-size output has c = []
        difference = _along(call_fn, point, t, h, measure_noise=True)
        if difference.estimate.shape != value_at_x.shape:
            raise ValueError(
                f"fn returned shape {difference.estimate.shape} near x but {value_at_x.shape} at x"
            )
        product = call_vjp(point, c)
        if product.shape != point.shape:
            raise ValueError(f"vjp(x, c) must have the shape of x, {point.shape}, got shape {product.shape}")
        with np.errstate(all="ignore"):
            analytic = float(np.sum(t * product))
            analytic_terms = float(np.sum(np.abs(t * product)))
        problem = _not_finite("fn", label, difference.bad_step) or None
        if problem is None and not math.isfinite(analytic):
            problem = "vjp(x, c) is not finite"
        probes.append(_Probe(label, analytic, difference, c, analytic_terms, problem))
    rows = _judge(probes, tolerance, h)
    description = "analytic = ⟨u, vjp(x, c)⟩, numeric = ⟨d/dt fn(x + t·u), c⟩ at t = 0; c: random unit"
    notes += call_fn.notes() + call_vjp.notes()
    return _report(name or _name_of(vjp), rows, tolerance, h, description, notes)


def _hessian_product(hessian: np.ndarray, point: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``t ↦ H t`` for a full Hessian (shape ``x.shape * 2``) or per-sample blocks (``x.shape + (N,)``)."""
    if hessian.shape == point.shape + point.shape:
        return lambda t: np.tensordot(hessian, t, axes=point.ndim)
    # Blocks: samples do not interact, so H is block-diagonal and each block acts on its own sample's row.
    if point.ndim >= 1 and hessian.shape == point.shape + point.shape[-1:]:
        return lambda t: np.einsum("...ij,...j->...i", hessian, t)
    raise ValueError(
        f"hessian(x) must have shape {point.shape + point.shape} (the full Hessian) or "
        f"{point.shape + point.shape[-1:]} (one block per sample), got shape {hessian.shape}"
    )


def check_hessian(
    grad: Callable[[np.ndarray], ArrayLike],
    hessian: Callable[[np.ndarray], ArrayLike],
    x: ArrayLike,
    *,
    directions: int = 8,
    seed: int | np.random.Generator | None = 0,
    rtol: float | None = None,
    step: float | None = None,
    name: str | None = None,
) -> GradcheckReport:
    r"""Check a Hessian against central differences of the analytic gradient.

    Parameters
    ----------
    grad : callable
        ``grad(x) -> array`` shaped like ``x``: the gradient, assumed right (check it first with
        :func:`check_gradient`).
    hessian : callable
        ``hessian(x) -> array``: the thing under test, either the full Hessian of shape
        ``x.shape + x.shape``, or per-sample blocks of shape ``x.shape + (x.shape[-1],)`` meaning a
        block-diagonal Hessian over the leading (sample) axes, as for a loss summed over samples. The two
        are told apart by shape (for a 1-D ``x`` they coincide). Entry ``[..., i, j]`` of a block is
        :math:`\partial^2 f / \partial x_i \partial x_j` — strictly, the derivative of gradient entry
        ``i`` with respect to ``x_j``, which is what is checked.
    x : array_like
        The point; converted to a float64 copy (never modified).
    directions : int, default 8
        How many random unit directions :math:`t` to probe; for ``x`` of at most 64 elements, every
        coordinate direction too. Each comes with its own random unit vector :math:`c`.
    seed : int or numpy.random.Generator, default 0
        Seed of ``numpy.random.default_rng`` for :math:`t` and :math:`c`.
    rtol : float, optional
        Tolerance on the relative error of each direction. Default ``DEFAULT_RTOL = 1e-6``.
    step : float, optional
        The step along each unit direction; default as in :func:`check_gradient`.
    name : str, optional
        A name for the report; default the name of ``hessian``.

    Returns
    -------
    GradcheckReport
        True if every direction agrees; ``print`` it for the table.

    Raises
    ------
    ValueError
        If ``grad(x)`` or ``hessian(x)`` has the wrong shape, or there is nothing to check.

    Notes
    -----
    The Hessian is the Jacobian of the gradient, so a Hessian-vector product is a directional derivative of
    the gradient — a first difference of an exact function, whose rounding error grows like
    :math:`\epsilon / h`, instead of a second difference of :math:`f`, whose rounding error grows like
    :math:`\epsilon / h^2`:

    .. math::

        H t \approx \frac{4 D(h/2) - D(h)}{3}, \qquad
        D(h) = \frac{\nabla f(x + h t) - \nabla f(x - h t)}{2h}.

    Each row compares the scalar :math:`\langle c, H t \rangle` computed both ways, for a random unit
    :math:`c` — the inner-product check of :func:`check_vjp` with :math:`f` replaced by :math:`\nabla f`.
    Along a coordinate direction :math:`t = e_j` the row checks column :math:`j` of :math:`H`, so a single
    wrong entry is found by the rows that fail.

    Examples
    --------
    The quadratic form :math:`f(x) = x^\top A x` with an asymmetric :math:`A` has gradient
    :math:`(A + A^\top) x` and Hessian :math:`A + A^\top`, not :math:`2A`:

    >>> import numpy as np
    >>> from kdcore.gradcheck import check_hessian
    >>> A = np.array([[1.0, 2.0], [0.0, 3.0]])
    >>> grad = lambda x: (A + A.T) @ x
    >>> check_hessian(grad, lambda x: A + A.T, [0.3, -1.2]).passed
    True
    >>> check_hessian(grad, lambda x: 2 * A, [0.3, -1.2]).passed
    False
    """
    point, notes = _as_point(x)
    count = _check_directions(directions, point)
    tolerance = _check_rtol(rtol)
    fixed_step = _check_step(step)
    h = _default_step(point) if fixed_step is None else fixed_step
    call_grad = _Caller(grad, "grad")
    call_hessian = _Caller(hessian, "hessian")
    gradient_shape = call_grad(point).shape
    if gradient_shape != point.shape:
        raise ValueError(f"grad(x) must have the shape of x, {point.shape}, got shape {gradient_shape}")
    matrix = call_hessian(point)
    times = _hessian_product(matrix, point)
    abs_times = _hessian_product(np.abs(matrix), point)
    rng = np.random.default_rng(seed)
    probes = []
    for label, t, _ in _directions(point, count, rng):
        c = rng.standard_normal(point.shape)
        c /= np.linalg.norm(c)
        difference = _along(call_grad, point, t, h, measure_noise=True)
        with np.errstate(all="ignore"):
            analytic = float(np.sum(c * times(t)))
            analytic_terms = float(np.sum(np.abs(c) * abs_times(np.abs(t))))
        problem = _not_finite("grad", label, difference.bad_step) or None
        if problem is None and not math.isfinite(analytic):
            problem = "hessian(x) is not finite"
        probes.append(_Probe(label, analytic, difference, c, analytic_terms, problem))
    rows = _judge(probes, tolerance, h)
    description = "analytic = ⟨c, hessian(x)·u⟩, numeric = ⟨c, d/dt grad(x + t·u)⟩ at t = 0; c: random unit"
    notes += call_grad.notes() + call_hessian.notes()
    return _report(name or _name_of(hessian), rows, tolerance, h, description, notes)
