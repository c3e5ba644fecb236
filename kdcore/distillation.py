r"""The distillation objective of Hinton et al. (2015), and logit matching, its high-temperature limit.

The student minimises a mix of the hard-label loss and the soft loss against the teacher:

.. math::

    L = \alpha\,\mathrm{CE}\bigl(y, \operatorname{softmax}(z)\bigr)
        + (1 - \alpha)\,T^2\,L_\text{soft}(z, v, T).

The introductory post kdcore started from writes :math:`L = \alpha L_{CE} + (1-\alpha) L_\text{soft}`,
without the :math:`T^2`. The paper prescribes it: the soft gradient :math:`(p - q)/T` shrinks like
:math:`1/T^2` at high temperature (:math:`T^2\,\partial L_\text{soft}/\partial z \to (\tilde z - \tilde v)/N`,
tilde meaning "minus its mean"), so without :math:`T^2` changing the temperature would silently change
the weight of the two terms. ``t2_scaling=False`` gives the post's version.

At high temperature the soft loss becomes logit matching:

.. math::

    T^2\,\mathrm{KL}(q\,\|\,p) \to \tfrac12\,\operatorname{logit\_mse}(z, v)
        = \frac{1}{2N}\sum_i \bigl((z_i - \bar z) - (v_i - \bar v)\bigr)^2 ,

with an :math:`O(1/T)` error. The paper's :math:`\partial L/\partial z_i \approx (z_i - v_i)/(N T^2)` assumes
zero-mean logits; kdcore's limit holds in general.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import REDUCTIONS, as_logit_pair, check_alpha, check_choice, check_temperature, select
from ._chunks import run_chunks
from ._fast import soft_rows
from ._numerics import tempered_difference
from .cross_entropy import label_rows
from .divergences import grad_scale

__all__ = [
    "distillation_loss",
    "distillation_loss_and_grad",
    "distillation_loss_grad",
    "logit_mse",
    "logit_mse_and_grad",
    "logit_mse_grad",
]

SOFT_LOSSES = ("cross_entropy", "kl")


def _checked(student_logits, teacher_logits, labels, T, alpha, soft, reduction, mask, ignore_index):
    """The kept positions and the rows (student, teacher, labels) to compute, with the checked scalars."""
    check_choice(reduction, "reduction", REDUCTIONS)
    check_choice(soft, "soft", SOFT_LOSSES)
    T = check_temperature(T)
    alpha = check_alpha(alpha)
    pair = as_logit_pair(student_logits, teacher_logits)
    kept, (student, teacher), labels = select(mask, pair, labels, ignore_index)
    return kept, (student, teacher, labels, T, alpha)


def _soft_weight(T: float, alpha: float, t2_scaling: bool) -> float:
    return (1.0 - alpha) * (T * T if t2_scaling else 1.0)


def _distillation(
    student: np.ndarray,
    teacher: np.ndarray,
    labels: np.ndarray,
    T: float,
    alpha: float,
    t2_scaling: bool,
    soft: str,
    reduction: str,
    *,
    want_value: bool = True,
    want_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-sample loss (unreduced) and the gradient of the reduced loss, each only if wanted.

    The soft term goes through the fast kernel (``_fast.soft_rows``), which writes the gradient once into
    its output with the weight and the mean's 1/B already applied; the hard term is then added into it,
    chunk by chunk, so no second gradient-sized array is made. A term whose weight is 0 is left out
    entirely, so that ``alpha=1`` ignores an infinite soft loss rather than returning ``0·inf = nan``.
    """
    dtype = student.dtype.type
    weight = _soft_weight(T, alpha, t2_scaling)
    kind = "kl" if soft == "kl" else "soft_cross_entropy"
    value = grad = None
    if weight > 0:
        scale = grad_scale(student.shape, reduction, weight / T) if want_grad else None
        value, grad = soft_rows(student, teacher, T, value=kind if want_value else None, grad_scale=scale)
        if value is not None:
            value *= dtype(weight)
    if want_value and value is None:
        value = np.zeros(student.shape[:-1], dtype=student.dtype)
    if want_grad and grad is None:
        grad = np.zeros_like(student)
    if alpha > 0:
        n = student.shape[-1]
        flat_student = student.reshape(-1, n)
        flat_labels = labels.reshape(-1)
        flat_value = None if value is None else value.reshape(-1)
        flat_grad = None if grad is None else grad.reshape(-1, n)
        hard_scale = dtype(grad_scale(student.shape, reduction, alpha))

        def hard(rows: slice) -> None:
            # One log-softmax for the hard term's value and gradient (labels checked above).
            values, grad_rows = label_rows(
                flat_student[rows], flat_labels[rows], flat_value is not None, flat_grad is not None
            )
            if flat_value is not None:
                flat_value[rows] += dtype(alpha) * values
            if flat_grad is not None:
                flat_grad[rows] += hard_scale * grad_rows

        run_chunks(hard, flat_student.shape[0], n, scratch=3)
    return value, grad


def distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float,
    alpha: float,
    t2_scaling: bool = True,
    soft: str = "cross_entropy",
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Hinton's distillation loss, :math:`\alpha\,\mathrm{CE}(y, z) + (1-\alpha)\,T^2\,L_\text{soft}(z, v, T)`.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape.
    labels : array_like of int, shape (...)
        The true class of each sample, in ``[0, N)``.
    T : float
        Temperature of the soft term, finite and positive. The hard term is always at :math:`T = 1`.
    alpha : float
        Weight of the hard-label term, in [0, 1]; the soft term gets :math:`1 - \alpha`.
    t2_scaling : bool, default True
        Multiply the soft term by :math:`T^2`, as the paper prescribes.
    soft : {"cross_entropy", "kl"}, default "cross_entropy"
        The soft loss: :func:`kdcore.soft_cross_entropy` or :func:`kdcore.kl_divergence`. They differ by
        the teacher's entropy, a constant for the student: same gradient, different value.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"``: one value per sample; ``"sum"``; ``"mean"``: the mean over samples.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Returns
    -------
    numpy.ndarray
        Dtype rules as :func:`kdcore.soft_cross_entropy`.

    Notes
    -----
    .. math::

        L = \alpha\,\mathrm{CE}(y, z) + (1 - \alpha)\,s(T)\,L_\text{soft}(z, v, T), \qquad
        s(T) = T^2 \text{ if t2\_scaling else } 1 .

    A term whose weight is 0 is left out entirely (so ``alpha=1`` ignores an infinite soft loss rather
    than returning ``0·inf = nan``).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import distillation_loss, cross_entropy, soft_cross_entropy
    >>> z, v, y = np.array([[2.0, 1.0, 0.1]]), np.array([[3.0, 0.5, 0.2]]), np.array([0])
    >>> loss = distillation_loss(z, v, y, T=4.0, alpha=0.3)
    >>> bool(np.isclose(loss, 0.3 * cross_entropy(z, y) + 0.7 * 16 * soft_cross_entropy(z, v, 4.0)))
    True
    """
    kept, inputs = _checked(
        student_logits, teacher_logits, labels, T, alpha, soft, reduction, mask, ignore_index
    )
    value, _ = _distillation(*inputs, t2_scaling, soft, reduction, want_grad=False)
    return kept.reduce(value, reduction)


def distillation_loss_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float,
    alpha: float,
    t2_scaling: bool = True,
    soft: str = "cross_entropy",
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Gradient of :func:`distillation_loss` w.r.t. the student logits.

    Parameters
    ----------
    student_logits, teacher_logits, labels, T, alpha, t2_scaling, soft, reduction
        As in :func:`distillation_loss`. ``soft`` does not change the gradient (the two soft losses differ
        by a constant) but is checked.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Returns
    -------
    numpy.ndarray, shape (..., N)
        Each sample's gradient for ``"none"`` and ``"sum"``, divided by the number of samples for
        ``"mean"``. Rows sum to 0.

    Notes
    -----
    .. math::

        \frac{\partial L}{\partial z} = \alpha\,\bigl(\operatorname{softmax}(z) - e_y\bigr)
            + (1 - \alpha)\,s(T)\,\frac{p - q}{T},

    so with ``t2_scaling`` the soft term contributes :math:`(1-\alpha)\,T\,(p - q)`, whose size stays
    :math:`O(1)` as :math:`T` grows.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import distillation_loss_grad, softmax
    >>> z, v, y = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2]), 1
    >>> g = distillation_loss_grad(z, v, y, T=4.0, alpha=0.0)
    >>> bool(np.allclose(g, 4.0 * (softmax(z, 4.0) - softmax(v, 4.0))))
    True
    """
    kept, inputs = _checked(
        student_logits, teacher_logits, labels, T, alpha, soft, reduction, mask, ignore_index
    )
    _, grad = _distillation(*inputs, t2_scaling, soft, reduction, want_value=False)
    return kept.spread(grad)


def distillation_loss_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float,
    alpha: float,
    t2_scaling: bool = True,
    soft: str = "cross_entropy",
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`distillation_loss` and :func:`distillation_loss_grad` in one pass: what a training step needs.

    Parameters
    ----------
    student_logits, teacher_logits, labels, T, alpha, t2_scaling, soft, reduction
        As in :func:`distillation_loss`.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Returns
    -------
    loss : numpy.ndarray
        As :func:`distillation_loss` returns it.
    grad : numpy.ndarray, shape (..., N)
        As :func:`distillation_loss_grad` returns it.

    Notes
    -----
    Both share the teacher's softmax and the centred log-ratio of the soft term (the fast kernel of
    docs/math.md, "The fast path and its certificate"), so computing them together costs little more
    than either alone.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import distillation_loss, distillation_loss_and_grad, distillation_loss_grad
    >>> z, v, y = np.array([[2.0, 1.0, 0.1]]), np.array([[3.0, 0.5, 0.2]]), np.array([0])
    >>> loss, grad = distillation_loss_and_grad(z, v, y, T=4.0, alpha=0.3)
    >>> bool(loss == distillation_loss(z, v, y, 4.0, 0.3))
    True
    >>> bool(np.array_equal(grad, distillation_loss_grad(z, v, y, 4.0, 0.3)))
    True
    """
    kept, inputs = _checked(
        student_logits, teacher_logits, labels, T, alpha, soft, reduction, mask, ignore_index
    )
    value, grad = _distillation(*inputs, t2_scaling, soft, reduction)
    return kept.reduce(value, reduction), kept.spread(grad)


def _logit_difference(student_logits: ArrayLike, teacher_logits: ArrayLike, centered: bool, reduction, mask):
    """The kept positions and the logit difference d of their rows (NaN rows where a logit is not finite)."""
    check_choice(reduction, "reduction", REDUCTIONS)
    kept, (student, teacher), _ = select(mask, as_logit_pair(student_logits, teacher_logits))
    with np.errstate(invalid="ignore"):  # inf − inf in a sample with masked classes: NaN for that sample
        diff = tempered_difference(student, teacher, 1.0)
        if centered:
            # (z − z̄) − (v − v̄) = (z − v) − mean(z − v): centre the difference, not each input, so a
            # large common offset in z and v cannot round the small differences away; subtract the first
            # class's difference first (exactly, for nearby values) so the mean is taken of small numbers
            # and a constant difference gives exactly 0.
            diff = diff - diff[..., :1]
            diff = diff - np.mean(diff, axis=-1, keepdims=True)
    finite = np.all(np.isfinite(diff), axis=-1, keepdims=True)
    return kept, np.where(finite, diff, np.nan)


def logit_mse(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    centered: bool = True,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Mean squared logit difference, :math:`\frac1N\sum_i d_i^2`: the soft loss's high-temperature limit.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape; finite (a masked class has no
        logit to match: the sample's value is NaN).
    centered : bool, default True
        Use :math:`d = (z - \bar z) - (v - \bar v)` (means over classes), which is what distillation
        converges to; ``False`` uses :math:`d = z - v`, which only agrees when both have equal means.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"``: one value per sample; ``"sum"``; ``"mean"``: the mean over samples (not over classes:
        the mean over classes is already inside the loss).
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray
        Dtype rules as :func:`kdcore.kl_divergence`.

    Notes
    -----
    .. math::

        \operatorname{logit\_mse}(z, v) = \frac1N \sum_i d_i^2, \qquad
        \lim_{T\to\infty} T^2\,\mathrm{KL}(q\,\|\,p) = \tfrac12\,\operatorname{logit\_mse}(z, v)
        \quad(\text{centred}).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import logit_mse, kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> round(float(logit_mse(z, v)), 12)
    0.38
    >>> round(float(logit_mse(z + 5.0, v)), 12)  # centred: a shift of the student changes nothing
    0.38
    >>> round(float(1e4**2 * kl_divergence(z, v, T=1e4) / (0.5 * logit_mse(z, v))), 3)
    1.0
    """
    kept, diff = _logit_difference(student_logits, teacher_logits, centered, reduction, mask)
    with np.errstate(over="ignore"):  # |d| > 1e154: the square overflows, as it should
        values = np.mean(diff * diff, axis=-1)
    return kept.reduce(values, reduction)


def logit_mse_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    centered: bool = True,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Gradient of :func:`logit_mse` w.r.t. the student logits, :math:`2 d / N`.

    Parameters
    ----------
    student_logits, teacher_logits, centered, reduction
        As in :func:`logit_mse`.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray, shape (..., N)
        Each sample's gradient for ``"none"`` and ``"sum"``, divided by the number of samples for ``"mean"``.

    Notes
    -----
    For the centred version, :math:`\partial d_j/\partial z_i = \delta_{ij} - 1/N` and :math:`\sum_j d_j = 0`
    give :math:`\partial/\partial z_i = \frac2N\sum_j d_j(\delta_{ij} - \frac1N) = 2 d_i/N`; uncentred,
    :math:`2 (z_i - v_i)/N` directly. Half of the centred gradient is the high-temperature limit of
    :math:`T^2\,\partial\mathrm{KL}/\partial z`: :math:`((z - \bar z) - (v - \bar v))/N`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import logit_mse_grad
    >>> logit_mse_grad(np.array([2.0, 0.0]), np.array([0.0, 0.0]))
    array([ 1., -1.])
    """
    kept, diff = _logit_difference(student_logits, teacher_logits, centered, reduction, mask)
    return kept.reduce_grad(diff * diff.dtype.type(2.0 / diff.shape[-1]), reduction)


def logit_mse_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    centered: bool = True,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`logit_mse` and :func:`logit_mse_grad` from one logit difference.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape; finite.
    centered : bool, default True
        As in :func:`logit_mse`.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`logit_mse`; the gradient is that of the reduced loss.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    loss : numpy.ndarray
        As :func:`logit_mse` returns it.
    grad : numpy.ndarray, shape (..., N)
        As :func:`logit_mse_grad` returns it. Dtype rules as :func:`kdcore.kl_divergence`.

    Notes
    -----
    .. math::

        \operatorname{logit\_mse} = \frac1N \sum_i d_i^2, \qquad \frac{\partial}{\partial z} = \frac{2d}{N},
        \qquad d = (z - \bar z) - (v - \bar v) \ \text{(centred)}.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import logit_mse_and_grad
    >>> loss, grad = logit_mse_and_grad(np.array([2.0, 0.0]), np.array([0.0, 0.0]))
    >>> float(loss), grad
    (1.0, array([ 1., -1.]))
    """
    kept, diff = _logit_difference(student_logits, teacher_logits, centered, reduction, mask)
    with np.errstate(over="ignore"):  # |d| > 1e154: the square overflows, as it should
        values = np.mean(diff * diff, axis=-1)
    diff *= diff.dtype.type(grad_scale(diff.shape, reduction, 2.0 / diff.shape[-1]))
    return kept.reduce(values, reduction), kept.spread(diff)
