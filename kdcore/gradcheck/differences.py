r"""Finite differences: Richardson-extrapolated central differences, and the estimates built on them.

:func:`numerical_gradient` and :func:`directional_derivative` are the public estimates; the checks of
:mod:`kdcore.gradcheck.checks` use the same machinery (:func:`_along`), which evaluates the user's function
on fresh copies (:class:`_Caller`) so that a function writing into its argument cannot move the probes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from kdcore._arrays import _describe, as_float_array

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


def _positive_or_none(value: object, name: str) -> float | None:
    """``value`` as a positive finite float, or None; a wrong type is a TypeError, a wrong value a ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive finite number or None, got {name}={_describe(value)}")
    number = float(value)
    if not (math.isfinite(number) and number > 0.0):
        raise ValueError(f"{name} must be a positive finite number or None, got {name}={value!r}")
    return number


def _check_step(step: object) -> float | None:
    return _positive_or_none(step, "step")


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
