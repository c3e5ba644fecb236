r"""The three checks — :func:`check_gradient`, :func:`check_vjp`, :func:`check_hessian` — and how a row is judged.

Each probes the function along random unit directions (and every coordinate direction for small ``x``),
compares the analytic value with the finite difference of :mod:`kdcore.gradcheck.differences`, and judges
each row by its relative error, or by its absolute error where both values are rounding noise (the noise
is measured, see ``NOISE_ULPS`` below). The result is a :class:`~kdcore.gradcheck.report.GradcheckReport`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from kdcore._arrays import _describe

from .differences import (
    _EPS,
    _SUBNORMAL,
    _along,
    _as_point,
    _Caller,
    _check_step,
    _default_step,
    _Difference,
    _name_of,
    _positive_or_none,
)
from .report import GradcheckReport, GradcheckRow, relative_error

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


def _check_rtol(rtol: object) -> float:
    return DEFAULT_RTOL if rtol is None else _positive_or_none(rtol, "rtol")


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
