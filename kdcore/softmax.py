r"""The tempered softmax, its logarithm, log-sum-exp, and the softmax's derivative in both teaching forms.

Everything in kdcore goes through :func:`log_softmax`: losses take logits, never probabilities, so that
``log 0`` and ``exp(1000)`` never happen. With :math:`x = z/T`,

.. math::

    \operatorname{softmax}(z, T)_i = \frac{e^{z_i/T}}{\sum_j e^{z_j/T}}, \qquad
    \log\operatorname{softmax}(z, T)_i = \frac{z_i - m}{T} - \log\Bigl(1 + \sum_{j \ne k} e^{(z_j - m)/T}\Bigr),

where :math:`m = z_k = \max_j z_j`. Subtracting the maximum keeps every exponent :math:`\le 0`; taking the
maximum's own term (exactly 1) out of the sum and using ``log1p`` keeps the log-probability of a dominant
class accurate when it is close to 0 (``log(1 + 1e-20)`` is 0 in floating point, ``log1p(1e-20)`` is not).

Masked classes (logit ``-inf``) get probability 0. A sample whose logits contain NaN or ``+inf``, or are all
``-inf``, has no softmax: its results are NaN, and the other samples are unaffected.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import as_float_array, as_logits, check_temperature
from ._numerics import tempered_difference

__all__ = [
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmax_jacobian",
    "softmax_vjp",
]


class _Tempered(NamedTuple):
    """The pieces every softmax-like function needs, class axis last."""

    shifted: np.ndarray  # (z − max z)/T ≤ 0, exactly 0 at the argmax
    exp_shifted: np.ndarray  # e^{shifted}
    rest: np.ndarray  # Σ_{j≠argmax} e^{shifted_j}, keepdims: the normaliser is 1 + rest
    top: np.ndarray  # max z / T, keepdims (0 in samples without a softmax)
    undefined: np.ndarray | None  # keepdims mask of samples with no softmax (NaN, +inf, all −inf)


def _tempered(logits: np.ndarray, T: float) -> _Tempered:
    argmax = np.argmax(logits, axis=-1)[..., None]
    top = np.take_along_axis(logits, argmax, axis=-1)
    undefined = None
    if not np.all(np.isfinite(top)):
        # NaN anywhere, a +inf logit, or every class masked: no softmax. Compute on zeros (no warnings) and
        # let the callers write NaN into exactly these samples.
        undefined = ~np.isfinite(top)
        logits = np.where(undefined, 0, logits)
        top = np.where(undefined, 0, top)
    with np.errstate(over="ignore"):  # a span beyond the float range selects the careful path
        span_fits = np.all(top - np.min(logits, axis=-1, keepdims=True) < np.finfo(logits.dtype).max)
    if span_fits:
        shifted = logits - top  # cannot overflow; the division below overflows only if the result does
        with np.errstate(over="ignore"):
            shifted /= logits.dtype.type(T)
    else:
        shifted = tempered_difference(logits, top, T)
    exp_shifted = np.exp(shifted)
    # Σ_{j≠k} e^{shifted_j}: zero the maximum's term (it is exactly 1) before summing, then put it back.
    np.put_along_axis(exp_shifted, argmax, 0, axis=-1)
    rest = np.sum(exp_shifted, axis=-1, keepdims=True)
    np.put_along_axis(exp_shifted, argmax, 1, axis=-1)
    with np.errstate(over="ignore"):  # max z / T beyond the float range: ±inf is the rounded answer
        top = top / exp_shifted.dtype.type(T)
    return _Tempered(shifted, exp_shifted, rest, top, undefined)


def _mark_undefined(values: np.ndarray, undefined: np.ndarray | None) -> np.ndarray:
    if undefined is None:
        return values
    return np.where(undefined if values.ndim == undefined.ndim else undefined[..., 0], np.nan, values)


def softmax(logits: ArrayLike, T: float = 1.0, axis: int = -1) -> np.ndarray:
    r"""Tempered softmax, :math:`e^{z_i/T} / \sum_j e^{z_j/T}`, computed without overflow.

    Parameters
    ----------
    logits : array_like, shape (..., N)
        Logits :math:`z`; the class axis is ``axis`` (last by default). ``-inf`` masks a class.
    T : float, default 1.0
        Temperature, finite and positive. Large ``T`` flattens the distribution towards uniform, small ``T``
        sharpens it towards the argmax.
    axis : int, default -1
        The class axis.

    Returns
    -------
    numpy.ndarray, shape (..., N)
        Probabilities summing to 1 along ``axis``. float32 in gives float32 out, float64 stays float64,
        integers and lists give float64, float16 is computed in float32.

    Notes
    -----
    .. math::

        \operatorname{softmax}(z, T)_i = \frac{e^{(z_i - m)/T}}{1 + \sum_{j\ne k} e^{(z_j - m)/T}},
        \qquad m = z_k = \max_j z_j .

    Its derivative is :math:`\partial s_i / \partial z_j = (s_i\delta_{ij} - s_i s_j)/T`
    (:func:`softmax_jacobian` gives the matrix, :func:`softmax_vjp` its product with a vector).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import softmax
    >>> z = np.array([3.0, 1.0, 0.2])
    >>> softmax(z).round(4)
    array([0.836 , 0.1131, 0.0508])
    >>> softmax(z, T=5.0).round(4)  # a higher temperature reveals the small probabilities
    array([0.4461, 0.299 , 0.2548])
    >>> softmax([1e308, -1e308], T=0.5)  # no overflow, no warning
    array([1., 0.])
    """
    T = check_temperature(T)
    array = np.moveaxis(as_logits(logits, "logits"), axis, -1)
    parts = _tempered(array, T)
    probs = parts.exp_shifted / (1 + parts.rest)
    return np.moveaxis(_mark_undefined(probs, parts.undefined), -1, axis)


def log_softmax(logits: ArrayLike, T: float = 1.0, axis: int = -1) -> np.ndarray:
    r"""Tempered log-softmax, :math:`z_i/T - \log\sum_j e^{z_j/T}`, accurate for every class.

    Parameters
    ----------
    logits : array_like, shape (..., N)
        Logits :math:`z`, class axis ``axis``. ``-inf`` masks a class (its log-probability is ``-inf``).
    T : float, default 1.0
        Temperature, finite and positive.
    axis : int, default -1
        The class axis.

    Returns
    -------
    numpy.ndarray, shape (..., N)
        Log-probabilities (dtype rules as :func:`softmax`).

    Notes
    -----
    .. math::

        \log\operatorname{softmax}(z, T)_i = \frac{z_i - m}{T}
            - \operatorname{log1p}\Bigl(\sum_{j\ne k} e^{(z_j - m)/T}\Bigr)

    with :math:`m = z_k = \max_j z_j`. The two terms have the same sign, so nothing cancels, and
    ``log1p`` keeps the log-probability of a dominant class (close to 0) to full relative precision.
    ``np.log(softmax(z))`` would return ``-inf`` for any probability below 1e-308.

    Examples
    --------
    >>> from kdcore import log_softmax
    >>> log_softmax([1000.0, 1.0])  # log(softmax) would give -inf for the second class
    array([   0., -999.])
    >>> float(log_softmax([0.0, -50.0])[0])  # -e^-50, not 0
    -1.9287498479639178e-22
    """
    T = check_temperature(T)
    array = np.moveaxis(as_logits(logits, "logits"), axis, -1)
    parts = _tempered(array, T)
    log_probs = parts.shifted - np.log1p(parts.rest)
    return np.moveaxis(_mark_undefined(log_probs, parts.undefined), -1, axis)


def logsumexp(logits: ArrayLike, T: float = 1.0, axis: int = -1) -> np.ndarray:
    r"""Tempered log-sum-exp, :math:`\log\sum_j e^{z_j/T}`, without overflow.

    Parameters
    ----------
    logits : array_like, shape (..., N)
        Logits :math:`z`, class axis ``axis``; ``-inf`` entries contribute nothing.
    T : float, default 1.0
        Temperature, finite and positive.
    axis : int, default -1
        The class axis, reduced away.

    Returns
    -------
    numpy.ndarray, shape (...)
        One value per sample (dtype rules as :func:`softmax`).

    Notes
    -----
    .. math::

        \operatorname{LSE}(z, T) = \frac{m}{T} + \operatorname{log1p}\Bigl(\sum_{j\ne k} e^{(z_j-m)/T}\Bigr),
        \qquad \frac{\partial\, T\,\operatorname{LSE}(z, T)}{\partial z_i} = \operatorname{softmax}(z, T)_i ,

    so the softmax is the gradient of :math:`T\cdot\operatorname{LSE}`, and
    ``log_softmax(z, T) = z/T - logsumexp(z, T)[..., None]``.

    Examples
    --------
    >>> from kdcore import logsumexp
    >>> float(logsumexp([1000.0, 1000.0]))  # 1000 + log 2; exp(1000) would overflow
    1000.6931471805599
    >>> round(float(logsumexp([2.0, 4.0], T=2.0)), 12)  # log(e + e^2)
    2.313261687518
    """
    T = check_temperature(T)
    array = np.moveaxis(as_logits(logits, "logits"), axis, -1)
    parts = _tempered(array, T)
    values = (parts.top + np.log1p(parts.rest))[..., 0]
    return _mark_undefined(values, parts.undefined)


def softmax_jacobian(probs: ArrayLike) -> np.ndarray:
    r"""The softmax's Jacobian with respect to its argument :math:`x = z/T`: :math:`\operatorname{diag}(s) - s s^\top`.

    Parameters
    ----------
    probs : array_like, shape (..., N)
        Softmax outputs :math:`s` (class axis last), e.g. ``softmax(z, T)``.

    Returns
    -------
    numpy.ndarray, shape (..., N, N)
        :math:`\partial s_i / \partial x_j` where :math:`s = \operatorname{softmax}(x)`. For the tempered
        softmax :math:`s = \operatorname{softmax}(z/T)` the argument is :math:`x = z/T`, so the Jacobian with
        respect to the logits is ``softmax_jacobian(s) / T`` (``probs`` do not carry :math:`T`; see
        docs/math.md §1).

    Notes
    -----
    This is the form for the blackboard and for Hessians: it is symmetric, positive semi-definite, and
    its rows sum to zero (:math:`J\mathbf 1 = s - s\,(s^\top\mathbf 1) = 0`, softmax ignores a common
    shift). Building it costs :math:`O(N^2)` memory; training code uses :func:`softmax_vjp` instead.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import softmax_jacobian
    >>> softmax_jacobian(np.array([0.5, 0.5]))
    array([[ 0.25, -0.25],
           [-0.25,  0.25]])
    """
    s = as_float_array(probs, "probs")
    if s.ndim == 0:
        raise ValueError(f"probs must have a class axis (at least 1 dimension), got a scalar {s!r}")
    return s[..., :, None] * np.eye(s.shape[-1], dtype=s.dtype) - s[..., :, None] * s[..., None, :]


def softmax_vjp(probs: ArrayLike, upstream: ArrayLike) -> np.ndarray:
    r"""Vector-Jacobian product of the softmax w.r.t. its argument :math:`x = z/T`: :math:`s \odot (u - \langle s, u\rangle)`.

    Parameters
    ----------
    probs : array_like, shape (..., N)
        Softmax outputs :math:`s`.
    upstream : array_like, shape (..., N)
        The gradient :math:`u = \partial L/\partial s` arriving from above.

    Returns
    -------
    numpy.ndarray, shape (..., N)
        :math:`\partial L/\partial x` for :math:`s = \operatorname{softmax}(x)`: the same as
        ``softmax_jacobian(probs) @ upstream`` (the Jacobian is symmetric) in :math:`O(N)`.
        For the tempered softmax in terms of the logits :math:`z` (:math:`x = z/T`), divide by :math:`T`:
        :math:`\partial L/\partial z = ` ``softmax_vjp(s, u) / T``.

    Notes
    -----
    .. math::

        (J^\top u)_j = \sum_i (s_i\delta_{ij} - s_i s_j)\,u_i = s_j\,(u_j - \textstyle\sum_i s_i u_i).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import softmax_vjp, softmax_jacobian
    >>> s, u = np.array([0.7, 0.2, 0.1]), np.array([1.0, -2.0, 0.5])
    >>> softmax_vjp(s, u).round(3)
    array([ 0.455, -0.47 ,  0.015])
    >>> bool(np.allclose(softmax_vjp(s, u), softmax_jacobian(s) @ u))
    True
    """
    s = as_float_array(probs, "probs")
    u = as_float_array(upstream, "upstream")
    if s.ndim == 0 or s.shape != u.shape:
        raise ValueError(f"probs and upstream must have the same shape, got {s.shape} and {u.shape}")
    return s * (u - np.sum(s * u, axis=-1, keepdims=True))
