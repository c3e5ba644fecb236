r"""Logit standardisation (Sun et al. 2024): a per-sample z-score of the logits before the softmax.

Sun et al. argue that a student need not match the *scale* of the teacher's logits, only their relations,
and replace :math:`\operatorname{softmax}(z/T)` by :math:`\operatorname{softmax}(\mathcal Z(z)/\tau)` with
:math:`\mathcal Z(z) = (z - \bar z)/\sigma(z)` and a base temperature τ. :func:`standardize_logits` is
:math:`\mathcal Z(x)/\tau` per sample; feed its output to any soft loss (at ``T=1``, or pass τ as the loss's
``T`` and leave ``base_temperature=1``), and send the loss's gradient back through
:func:`standardize_logits_vjp`.

The official code (``normalize`` in sunshangquan/logit-standardization-KD) is
``(logit - logit.mean(-1)) / (1e-7 + logit.std(-1))`` with PyTorch's default *unbiased* standard deviation:
that is ``standardize_logits(x, ddof=1, eps=1e-7)``; the paper's definition divides by :math:`K`, ``ddof=0``
(the default here). The two differ by the constant factor :math:`\sqrt{K/(K-1)}`, i.e. a change of τ.

References
----------
S. Sun, W. Ren, J. Li, R. Wang, X. Cao, "Logit Standardization in Knowledge Distillation", CVPR 2024.
https://arxiv.org/abs/2403.01427
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import as_float_array, as_logits

__all__ = ["standardize_logits", "standardize_logits_jacobian", "standardize_logits_vjp"]


def _check_options(base_temperature: object, ddof: object, eps: object) -> tuple[float, int, float]:
    if isinstance(base_temperature, bool) or not isinstance(base_temperature, numbers.Real):
        raise TypeError(
            f"base_temperature must be a positive finite number, got base_temperature={base_temperature!r}"
        )
    if not (np.isfinite(base_temperature) and base_temperature > 0):
        raise ValueError(
            f"base_temperature must be a positive finite number, got base_temperature={base_temperature!r}"
        )
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof < 0:
        raise ValueError(f"ddof must be a non-negative integer, got ddof={ddof!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got eps={eps!r}")
    return float(base_temperature), int(ddof), float(eps)


class _Standardized:
    """The pieces of one batch of rows: the z-score ŷ = u/σ and the factors of the value and the Jacobian.

    Everything is computed on the logits minus each row's largest finite logit, quartered and scaled by a
    power of two (both exact) so that neither the differences nor the squares can overflow, whatever the
    logits' size; the row's statistics are then those of numbers in [−1, 1].
    """

    def __init__(self, logits: np.ndarray, base_temperature: float, ddof: int, eps: float):
        dtype = logits.dtype.type
        self.finite = np.isfinite(logits)
        with np.errstate(invalid="ignore", over="ignore"):
            # NaN, +inf, or fewer than ddof + 1 finite classes: no z-score (the row gives NaN)
            count = np.sum(self.finite, axis=-1, keepdims=True)
            bad = np.any(np.isnan(logits) | (logits == np.inf), axis=-1, keepdims=True) | (count <= ddof)
            reference = np.max(np.where(self.finite, logits, -np.inf), axis=-1, keepdims=True)
            reference = np.where(np.isfinite(reference), reference, 0)
            quartered = np.where(self.finite, logits * dtype(0.25) - reference * dtype(0.25), 0)
            largest = np.max(np.abs(quartered), axis=-1, keepdims=True)
            exponent = np.frexp(np.where(largest > 0, largest, 1))[1]
            scale = np.ldexp(dtype(1), -exponent)  # 2^-e: |quartered|·scale ≤ 1, exactly
            w = quartered * scale
            n = np.maximum(count, 1).astype(logits.dtype)
            centred = np.where(self.finite, w - np.sum(w, axis=-1, keepdims=True) / n, 0)
            sigma = np.sqrt(np.sum(centred * centred, axis=-1, keepdims=True) / np.maximum(n - ddof, 1))
            # σ + ε in the scaled units: the logits' units are (4/scale)·(these)
            eps_scaled = dtype(eps) * scale * dtype(0.25)
            denominator = sigma + eps_scaled
            bad |= denominator == 0
            safe_sigma = np.where(bad, 1, sigma)
            safe_denominator = np.where(bad, 1, denominator)
            self.z_score = np.where(self.finite, centred / safe_sigma, 0)  # ŷ = u/σ
            self.value = np.where(self.finite, centred / safe_denominator / dtype(base_temperature), -np.inf)
            # 1/(τ(σ + ε)) in the logits' units, and σ/((n − ddof)(σ + ε))
            self.factor = scale * dtype(0.25) / (dtype(base_temperature) * safe_denominator)
            self.eps_weight = eps_scaled / (np.maximum(n - ddof, 1) * safe_denominator)  # 1/(n−ddof) − κ
            self.n = n
        self.bad = bad

    def vjp(self, cotangent: np.ndarray) -> np.ndarray:
        """Jᵀc = (P c + ŷ⟨ŷ, c⟩ ε/((n − ddof)(σ + ε)))/(τ(σ + ε)), P the projection orthogonal to 1 and ŷ.

        Written as a projection plus an ε term (rather than c − c̄ − κ ŷ⟨ŷ, c⟩) so that nothing cancels when
        ε ≪ σ; with two finite classes span{1, ŷ} is the whole space and P c is exactly 0.
        """
        c = np.where(self.finite, cotangent, 0)
        with np.errstate(over="ignore", invalid="ignore"):
            centred = np.where(self.finite, c - np.sum(c, axis=-1, keepdims=True) / self.n, 0)
            inner = np.sum(self.z_score * centred, axis=-1, keepdims=True)
            norm = np.sum(self.z_score * self.z_score, axis=-1, keepdims=True)
            projected = centred - self.z_score * (inner / np.where(norm > 0, norm, 1))
            projected = np.where(self.n <= 2, 0, projected)
            result = (projected + self.z_score * (inner * self.eps_weight)) * self.factor
        return np.where(self.bad, np.nan, np.where(self.finite, result, 0))


def standardize_logits(
    logits: ArrayLike, base_temperature: float = 1.0, ddof: int = 0, eps: float = 0.0
) -> np.ndarray:
    r"""Logit standardisation: :math:`(x - \bar x)/(\tau\,(\sigma(x) + \epsilon))` per sample.

    Parameters
    ----------
    logits : array_like, shape (..., N)
        Student or teacher logits, class axis last. ``-inf`` masks a class: the statistics are over the
        finite classes and a masked class stays ``-inf``.
    base_temperature : float, default 1.0
        τ of Sun et al.: the z-score is divided by it.
    ddof : int, default 0
        :math:`\sigma = \sqrt{\sum_i (x_i - \bar x)^2/(n - \text{ddof})}` over the n finite classes: 0 is the
        paper's definition, 1 what its code computes (``torch.std``'s default).
    eps : float, default 0.0
        Added to σ; the official code uses 1e-7.

    Returns
    -------
    numpy.ndarray, shape (..., N)
        Each sample's finite entries have mean 0 and standard deviation :math:`\sigma/(\tau(\sigma+\epsilon))`
        (1/τ for ε = 0). NaN for a sample with NaN or ``+inf``, fewer than ddof + 1 finite classes, or (with
        ε = 0) all finite logits equal — a z-score of a constant is undefined. float32 stays float32.

    Notes
    -----
    The result is invariant to adding a constant to a sample's logits and to scaling them by a positive
    factor (for ε = 0): only the *relations* between the logits survive, which is the point of the method.
    It is computed from the logits minus their maximum, scaled by an exact power of two, so that logits of
    1e300 or sharing an offset of 1e12 are standardised to full precision. Jacobian and VJP:
    :func:`standardize_logits_jacobian`, :func:`standardize_logits_vjp`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import standardize_logits
    >>> y = standardize_logits([1.0, 2.0, 3.0])
    >>> y.round(6)
    array([-1.224745,  0.      ,  1.224745])
    >>> bool(np.allclose(standardize_logits([10.0, 20.0, 30.0]), y))  # scale does not matter
    True
    """
    x = as_logits(logits, "logits")
    tau, ddof, eps = _check_options(base_temperature, ddof, eps)
    parts = _Standardized(x, tau, ddof, eps)
    return np.where(parts.bad, np.nan, parts.value)


def standardize_logits_vjp(
    logits: ArrayLike,
    cotangent: ArrayLike,
    base_temperature: float = 1.0,
    ddof: int = 0,
    eps: float = 0.0,
) -> np.ndarray:
    r"""The vector–Jacobian product :math:`J^\top c` of :func:`standardize_logits`: gradients flow back through it.

    Parameters
    ----------
    logits : array_like, shape (..., N)
        The input of :func:`standardize_logits`.
    cotangent : array_like, shape (..., N)
        The gradient of a loss w.r.t. the standardised logits, e.g. ``kl_divergence_grad(ys, yt, T)``.
    base_temperature, ddof, eps
        As in :func:`standardize_logits`.

    Returns
    -------
    numpy.ndarray, shape (..., N)
        The gradient w.r.t. ``logits``; 0 at masked classes, NaN in samples where the z-score is undefined.

    Notes
    -----
    With :math:`u = x - \bar x`, :math:`\hat y = u/\sigma` and n finite classes,
    :math:`\partial\sigma/\partial x_j = u_j/((n - \text{ddof})\,\sigma)`, so

    .. math::

        J^\top c = \frac{1}{\tau(\sigma + \epsilon)}\Bigl(c - \bar c
            - \hat y\,\frac{\sigma\,\langle \hat y, c\rangle}{(n - \text{ddof})(\sigma + \epsilon)}\Bigr),

    a projection (for ε = 0, ddof = 0) that removes the components of c along :math:`\mathbf 1` and
    :math:`\hat y`: a loss cannot change through a shift or a rescaling of the logits. J is symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import standardize_logits, standardize_logits_vjp, kl_divergence, kl_divergence_grad
    >>> z, v = np.array([2.0, 1.0, 0.1, -1.0]), np.array([3.0, 0.5, 0.2, 0.0])
    >>> zs, vs = standardize_logits(z), standardize_logits(v)
    >>> grad = standardize_logits_vjp(z, kl_divergence_grad(zs, vs, T=2.0))  # ∂/∂z of KL after standardising
    >>> h = 1e-6 * np.eye(4)[0]
    >>> numeric = (kl_divergence(standardize_logits(z + h), vs, 2.0) - kl_divergence(standardize_logits(z - h), vs, 2.0)) / 2e-6
    >>> bool(np.isclose(grad[0], numeric))
    True
    """
    x = as_logits(logits, "logits")
    c = as_float_array(cotangent, "cotangent", x.dtype)
    if c.shape != x.shape:
        raise ValueError(f"cotangent must have the shape of logits {x.shape}, got {c.shape}")
    tau, ddof, eps = _check_options(base_temperature, ddof, eps)
    return _Standardized(x, tau, ddof, eps).vjp(c)


def standardize_logits_jacobian(
    logits: ArrayLike, base_temperature: float = 1.0, ddof: int = 0, eps: float = 0.0
) -> np.ndarray:
    r"""The Jacobian of :func:`standardize_logits`, one symmetric (N, N) matrix per sample.

    .. math::

        J_{ij} = \frac{1}{\tau(\sigma + \epsilon)}\Bigl(\delta_{ij} - \frac1n
            - \frac{\sigma\,\hat y_i \hat y_j}{(n - \text{ddof})(\sigma + \epsilon)}\Bigr)

    over the finite classes (rows and columns of masked classes are 0). For ε = 0 and ddof = 0 it is
    :math:`(I - \mathbf 1\mathbf 1^\top/n - \hat y\hat y^\top/n)/(\tau\sigma)`: null space
    :math:`\{\mathbf 1, \hat y\}`. Parameters as :func:`standardize_logits`; returns shape (..., N, N).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import standardize_logits, standardize_logits_jacobian
    >>> x = np.array([0.5, -1.0, 2.0, 0.0])
    >>> j = standardize_logits_jacobian(x)
    >>> bool(np.allclose(j @ np.ones(4), 0)), bool(np.allclose(j @ standardize_logits(x), 0))
    (True, True)
    """
    x = as_logits(logits, "logits")
    tau, ddof, eps = _check_options(base_temperature, ddof, eps)
    parts = _Standardized(x, tau, ddof, eps)
    n_classes = x.shape[-1]
    identity = np.broadcast_to(np.eye(n_classes, dtype=x.dtype), (*x.shape[:-1], n_classes, n_classes))
    return np.stack([parts.vjp(identity[..., i, :]) for i in range(n_classes)], axis=-2)
