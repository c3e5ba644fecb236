r"""Reverse KL divergence :math:`\mathrm{KL}(p\,\|\,q)` — the student's distribution weighs the log-ratio.

Notation as everywhere in kdcore: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`,
student probabilities :math:`p = \operatorname{softmax}(z/T)`, teacher probabilities
:math:`q = \operatorname{softmax}(v/T)`.

Forward KL, :math:`\mathrm{KL}(q\,\|\,p)` (:func:`kdcore.kl_divergence`), is *mass-covering*: the student is
punished wherever the teacher has mass it lacks. Reverse KL is *mode-seeking*: the student is punished only
for mass it puts where the teacher has little, so a student too small to cover every mode of the teacher
settles on one. MiniLLM (Gu et al., 2024) distils language models with it.

Reverse KL is forward KL with the two arguments exchanged: ``reverse_kl_divergence(z, v) ==
kl_divergence(v, z)``. So it inherits, without a new algorithm, everything the forward KL guarantees
(kdcore/_match.py: no cancellation when the student is close to the teacher, huge logits, temperatures
from 1e-3 to 1e9, masks), and each of its derivatives is one of the forward KL's with the roles exchanged.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import check_choice
from ._fast import soft_rows
from ._fast_mixture import reverse_kl_grad_rows
from ._match import Match
from .divergences import (
    WRT,
    _kl_hessian,
    careful_rows,
    checked_rows,
    grad_scale,
    kl_divergence,
    kl_divergence_grad,
)
from .softmax import softmax

__all__ = [
    "reverse_kl_divergence",
    "reverse_kl_divergence_and_grad",
    "reverse_kl_divergence_grad",
    "reverse_kl_divergence_hessian",
]


# Exchanging the arguments exchanges the roles of the logits in each derivative.
_SWAPPED = {"student": "teacher", "teacher": "student", "temperature": "temperature"}


def reverse_kl_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Reverse KL divergence :math:`\mathrm{KL}(p\,\|\,q)` from the student's tempered softmax to the teacher's.

    The direction is KL(student ‖ teacher): the *student's* distribution weighs the log-ratio, so the
    student is penalised for mass it places where the teacher has little (mode-seeking). In PyTorch:
    ``F.kl_div(log_softmax(v/T), log_softmax(z/T), log_target=True, reduction="batchmean")`` — the
    teacher's log-probabilities as ``input``, the student's as ``target``.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. ``-inf`` masks a class.
    T : float, default 1.0
        Temperature applied to both, finite and positive.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"``: one value per sample, shape ``(...)``; ``"sum"``; ``"mean"``: the mean over samples.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray
        Non-negative; exactly 0 for identical inputs. float32 for float32 input, float64 for float64,
        integer or list input; float16 gives float32.

    Notes
    -----
    .. math::

        \mathrm{KL}(p\,\|\,q) = \sum_i p_i (\log p_i - \log q_i), \qquad
        \frac{\partial\,\mathrm{KL}(p\,\|\,q)}{\partial z} =
            \frac{p \odot \bigl(\log p - \log q - \mathrm{KL}(p\,\|\,q)\bigr)}{T}.

    It is evaluated as ``kl_divergence(teacher_logits, student_logits, T)`` — the cancellation-free forward
    KL with the roles exchanged — and is as accurate (float64 within 1e-12 relative of a 50-digit oracle in
    every regime of docs/accuracy.md). Masks mirror the forward KL's: a class the *teacher* masks while
    the student gives it mass makes the loss ``+inf``; a class only the student masks simply has
    :math:`p_i = 0`. A sample with NaN or ``+inf`` logits gives NaN, and only that sample.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import kl_divergence, reverse_kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> round(float(reverse_kl_divergence(z, v, T=2.0)), 6)
    0.053043
    >>> bool(reverse_kl_divergence(z, v, 2.0) == kl_divergence(v, z, 2.0))  # the arguments exchanged
    True
    >>> # mode-seeking: a student on one of two teacher modes pays log 2 in reverse KL, infinity in forward
    >>> float(reverse_kl_divergence([0.0, -np.inf], [0.0, 0.0])), float(kl_divergence([0.0, -np.inf], [0.0, 0.0]))
    (0.6931471805599453, inf)
    """
    return kl_divergence(teacher_logits, student_logits, T, reduction, mask=mask)


def reverse_kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Derivative of :func:`reverse_kl_divergence` w.r.t. the student logits, the teacher logits or ``T``.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        As in :func:`reverse_kl_divergence`.
    T : float, default 1.0
        Temperature, finite and positive.
    reduction : {"mean", "sum", "none"}, default "mean"
        The reduction of the loss being differentiated. For ``wrt="student"`` or ``"teacher"`` the result
        has the logits' shape: each sample's own gradient for ``"none"`` and ``"sum"``, divided by the
        number of samples for ``"mean"``. For ``wrt="temperature"`` it has the loss's shape.
    wrt : {"student", "teacher", "temperature"}, default "student"
        The variable to differentiate with respect to.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray
        Shape of the logits (student, teacher) or of the loss (temperature); dtype rules as
        :func:`reverse_kl_divergence`.

    Notes
    -----
    With :math:`R = \mathrm{KL}(p\,\|\,q)`:

    .. math::

        \frac{\partial R}{\partial z} = \frac{p \odot (\log p - \log q - R)}{T}, \qquad
        \frac{\partial R}{\partial v} = \frac{q - p}{T}, \qquad
        \frac{\partial R}{\partial T} = \frac{\partial\,\mathrm{KL}(q'\,\|\,p')}{\partial T}
            \Big|_{p' = q,\ q' = p}.

    The student gradient is the forward KL's *teacher* gradient with the roles exchanged, computed from
    the centred log-ratio without cancellation; it is *not* :math:`(p - q)/T` — that is the teacher
    gradient here. Where the loss is ``+inf`` (the teacher masks a class the student gives mass), the
    teacher gradient keeps its closed form and the student and temperature derivatives are NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import reverse_kl_divergence, reverse_kl_divergence_grad, softmax
    >>> z, v, T = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2]), 2.0
    >>> p, q = softmax(z, T), softmax(v, T)
    >>> r = float(reverse_kl_divergence(z, v, T))
    >>> bool(np.allclose(reverse_kl_divergence_grad(z, v, T), p * (np.log(p) - np.log(q) - r) / T))
    True
    >>> bool(np.allclose(reverse_kl_divergence_grad(z, v, T, wrt="teacher"), (q - p) / T))
    True
    """
    check_choice(wrt, "wrt", WRT)
    if wrt == "student":  # the fast passes with their certificate (kdcore/_fast_mixture.py)
        T, kept, student, teacher, _ = checked_rows(student_logits, teacher_logits, T, reduction, mask)
        grad = reverse_kl_grad_rows(student, teacher, T, grad_scale(student.shape, reduction, 1.0 / T))
        return kept.spread(grad)
    return kl_divergence_grad(teacher_logits, student_logits, T, reduction, _SWAPPED[wrt], mask=mask)


def reverse_kl_divergence_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""MiniLLM's loss and its student gradient: :func:`reverse_kl_divergence` and its ``_grad``, in one call.

    The arguments are those of :func:`reverse_kl_divergence` (``mask`` keeps positions, ``reduction`` applies
    to both); the result is the pair ``(loss, grad)``, the loss of shape ``(...)`` (or a scalar) and the
    gradient w.r.t. the student logits of shape ``(..., N)``, rows summing to 0, in the logits' dtype.

    Notes
    -----
    .. math::

        R = \mathrm{KL}(p\,\|\,q) = \operatorname{log1p}\Bigl(\sum_i p_i\,g(f_i)\Bigr), \qquad
        \frac{\partial R}{\partial z} = -\frac{p \odot f}{T}, \qquad g(x) = e^x - 1 - x,

    with :math:`f = (v - z)/T - \sum_j p_j (v_j - z_j)/T` the centred log-ratio (the forward KL's, roles
    exchanged). The value comes from the fast kernel, exactly as :func:`reverse_kl_divergence` computes it,
    and the gradient from the same kernel run on the exchanged roles,
    :math:`-p \odot (f - \sum_j p_j f_j)/T` with its own per-row certificate (rows that fail it take the
    exact match, ``kdcore/_mixture_certificate.py``), as ``reverse_kl_divergence_grad`` computes it: results
    identical to the two separate calls.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import reverse_kl_divergence, reverse_kl_divergence_and_grad, reverse_kl_divergence_grad
    >>> z, v = np.array([[2.0, 1.0, 0.1]]), np.array([[3.0, 0.5, 0.2]])
    >>> loss, grad = reverse_kl_divergence_and_grad(z, v, T=2.0)
    >>> bool(loss == reverse_kl_divergence(z, v, 2.0)), bool(np.array_equal(grad, reverse_kl_divergence_grad(z, v, 2.0)))
    (True, True)
    """
    T, kept, student, teacher, _ = checked_rows(student_logits, teacher_logits, T, reduction, mask)
    values, _ = soft_rows(teacher, student, T, value="kl", grad_scale=None)  # the roles exchanged
    grad = reverse_kl_grad_rows(student, teacher, T, grad_scale(student.shape, reduction, 1.0 / T))
    return kept.reduce(values, reduction), kept.spread(grad)


def reverse_kl_divergence_hessian(
    student_logits: ArrayLike, teacher_logits: ArrayLike, T: float = 1.0, *, mask: ArrayLike | None = None
) -> np.ndarray:
    r"""Per-sample Hessian of :func:`reverse_kl_divergence` w.r.t. the student logits.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        As in :func:`reverse_kl_divergence`.
    T : float, default 1.0
        Temperature, finite and positive.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray, shape (..., N, N)
        One symmetric matrix per sample (the Hessian of each sample's own loss, ``reduction="none"``),
        with the all-ones vector in its null space. Unlike the forward KL's it depends on the teacher and
        need not be positive semi-definite: reverse KL is not convex in the student logits.

    Notes
    -----
    With :math:`J = \operatorname{diag} p - p p^\top` (the softmax Jacobian) and
    :math:`u = p \odot (\log p - \log q - R) = T\,\partial R/\partial z`, differentiating :math:`u/T` once
    more gives

    .. math::

        \frac{\partial^2 R}{\partial z\,\partial z^\top}
            = \frac{J + \operatorname{diag} u - u p^\top - p u^\top}{T^2}.

    :math:`J/T^2` is :func:`kdcore.kl_divergence_hessian` (its diagonal free of the :math:`1 - p_i`
    cancellation) and :math:`u` comes from the accurate gradient, so no entry is formed by cancellation
    beyond the rounding of the sum. Where the loss is ``+inf`` the Hessian is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import reverse_kl_divergence_hessian, kl_divergence_hessian
    >>> z = np.array([0.5, -1.0, 2.0])
    >>> bool(np.allclose(reverse_kl_divergence_hessian(z, z), kl_divergence_hessian(z, z)))  # at q = p
    True
    >>> h = reverse_kl_divergence_hessian(z, np.array([1.0, 0.0, -1.0]), T=2.0)
    >>> bool(np.allclose(h, h.T)), bool(np.allclose(h @ np.ones(3), 0))
    (True, True)
    """
    T, kept, student, teacher, _ = checked_rows(student_logits, teacher_logits, T, "none", mask)
    # J/T² and u/T from the accurate kernels; the combination below only adds and multiplies.
    jacobian = _kl_hessian(student, teacher, T) * student.dtype.type(T * T)
    (u,) = careful_rows(teacher, student, T, Match.kl_teacher_grad)
    u *= student.dtype.type(T)
    student_probs = softmax(student, T)
    hessian = jacobian - u[..., :, None] * student_probs[..., None, :]
    hessian -= student_probs[..., :, None] * u[..., None, :]
    index = np.arange(student.shape[-1])
    hessian[..., index, index] += u
    hessian /= student.dtype.type(T * T)
    return kept.spread(hessian)
