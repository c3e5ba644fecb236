r"""Divergences to a mixture of student and teacher: skew KL, skew reverse KL, the generalised Jensen–Shannon.

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`, student probabilities
:math:`p = \operatorname{softmax}(z/T)`, teacher probabilities :math:`q = \operatorname{softmax}(v/T)`.

================================  ==========================================================  ===================
kdcore                            definition                                                  source
================================  ==========================================================  ===================
``skew_kl_divergence``            :math:`\mathrm{KL}(q\,\|\,\alpha q + (1-\alpha) p)`          DistiLLM (SKL)
``skew_reverse_kl_divergence``    :math:`\mathrm{KL}(p\,\|\,\alpha p + (1-\alpha) q)`          DistiLLM (SRKL)
``jensen_shannon_divergence``     :math:`\beta\,\mathrm{KL}(q\|M) + (1-\beta)\,\mathrm{KL}(p\|M)`,
                                  :math:`M = \beta q + (1-\beta) p`                           GKD Eq. (1), trl
================================  ==========================================================  ===================

The skew ``α`` always weights the distribution the divergence starts from (the teacher for skew KL, the
student for skew reverse KL); the JSD's ``β`` weights the *teacher* in the mixture and the teacher's KL term.
Mixing keeps every divergence finite where the plain KL is infinite (``log(m/a) ≤ log(1/λ)``), which is why
DistiLLM uses it. All are computed from one accurate kernel (``kdcore/_mixture.py``): float64 within 1e-12
relative of a 50-digit oracle, also where the divergence is ~1e-25.

References
----------
R. Agarwal et al., "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes",
ICLR 2024. https://arxiv.org/abs/2306.13649

J. Ko et al., "DistiLLM: Towards Streamlined Distillation for Large Language Models", ICML 2024.
https://arxiv.org/abs/2402.03898
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import check_real, check_temperature
from ._chunks import map_rows
from ._fast_mixture import mixture_fast_rows
from ._mixture import mixture_rows
from .divergences import check_wants, checked_rows, grad_scale

__all__ = [
    "jensen_shannon_divergence",
    "jensen_shannon_divergence_and_grad",
    "jensen_shannon_divergence_grad",
    "skew_kl_divergence",
    "skew_kl_divergence_and_grad",
    "skew_kl_divergence_grad",
    "skew_reverse_kl_divergence",
    "skew_reverse_kl_divergence_and_grad",
    "skew_reverse_kl_divergence_grad",
]


def evaluate(kind, student_logits, teacher_logits, T, weight, weight_name, reduction, wants, mask) -> tuple:
    """Check the inputs, then each of ``wants`` (see ``mixture_rows``) over the kept rows in one pass."""
    check_wants(reduction, wants)
    T = check_temperature(T)
    weight = check_real(weight, weight_name, 0.0, 1.0)
    T, kept, student, teacher, _ = checked_rows(student_logits, teacher_logits, T, reduction, mask)
    if 0 < weight < 1 and set(wants) <= {None, "student"} and len(set(wants)) == len(wants):
        # the fast path with its certificate (kdcore/_fast_mixture.py); the mean's 1/B folded into the
        # gradient so that it is written once
        scale = grad_scale(student.shape, reduction, 1.0 / T) if "student" in wants else None
        values, grad = mixture_fast_rows(
            kind, student, teacher, T, weight, value=None in wants, grad_scale=scale
        )
        return tuple(kept.reduce(values, reduction) if wrt is None else kept.spread(grad) for wrt in wants)
    results = map_rows(lambda z, v: mixture_rows(kind, z, v, T, weight, wants), student, teacher)
    return kept.outputs(wants, results, reduction)


def skew_kl_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    skew: float = 0.1,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Skew KL divergence :math:`\mathrm{KL}(q\,\|\,\alpha q + (1-\alpha) p)` (DistiLLM's SKL).

    The forward KL from the teacher to a mixture that holds a fraction ``skew`` (α) of the *teacher* and
    1 − α of the student. α = 0 is :func:`kdcore.kl_divergence`; α = 1 is identically 0. For α > 0 it is
    finite even where the student rules out a class the teacher expects (bounded by :math:`\log(1/\alpha)`).

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. ``-inf`` masks a class.
    T : float, default 1.0
        Temperature applied to both, finite and positive (DistiLLM uses none: T = 1, no T² factor).
    skew : float, default 0.1
        α in [0, 1], the teacher's share of the mixture (DistiLLM's ``skew_alpha``, default 0.1).
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
    With :math:`m = \alpha q + (1-\alpha) p` and :math:`s = m/q - 1 = (1-\alpha)(p/q - 1)`:

    .. math::

        \mathrm{SKL}_\alpha = \sum_i q_i \log\frac{q_i}{m_i} = \sum_i q_i\,\bigl(s_i - \operatorname{log1p}(s_i)\bigr),
        \qquad
        \frac{\partial\,\mathrm{SKL}}{\partial z} = \frac{(1-\alpha)\,p \odot (t - \langle p, t\rangle)}{T},
        \quad t = 1 - \frac{q}{m},

    .. math::

        \frac{\partial\,\mathrm{SKL}}{\partial v} = \frac{q \odot (G - \langle q, G\rangle)}{T}, \quad
        G = \log\frac{q}{m} - \alpha\Bigl(\frac{q}{m} - 1\Bigr).

    Every term of the sum is non-negative; ``p/q − 1`` comes from the exact match of the two rows, so the
    value keeps full precision when the student is close to the teacher (docs/divergences.md).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import skew_kl_divergence, kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> round(float(skew_kl_divergence(z, v, skew=0.1)), 6)
    0.107379
    >>> bool(np.isclose(skew_kl_divergence(z, v, skew=0.0), kl_divergence(z, v)))
    True
    >>> float(skew_kl_divergence([0.0, -np.inf], [0.0, 0.0], skew=0.5))  # finite where KL is +inf
    0.14384103622589045
    """
    (value,) = evaluate("skew_kl", student_logits, teacher_logits, T, skew, "skew", reduction, (None,), mask)
    return value


def skew_kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    skew: float = 0.1,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Derivative of :func:`skew_kl_divergence` w.r.t. the student logits, the teacher logits or ``T``.

    Parameters
    ----------
    student_logits, teacher_logits, T, skew
        As in :func:`skew_kl_divergence`.
    reduction : {"mean", "sum", "none"}, default "mean"
        The reduction of the loss being differentiated: per-sample gradients for ``"none"`` and ``"sum"``,
        divided by the number of samples for ``"mean"``; for ``wrt="temperature"`` the loss's shape.
    wrt : {"student", "teacher", "temperature"}, default "student"
        The variable to differentiate with respect to.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray
        Shape of the logits (student, teacher) or of the loss (temperature).

    Notes
    -----
    The closed forms are in :func:`skew_kl_divergence`; ∂/∂T follows from
    :math:`\partial L/\partial T = -\frac1T\bigl(\sum_j \partial L/\partial a_j\,a_j + \sum_j \partial L/\partial b_j\,b_j\bigr)`
    (a = z/T, b = v/T), evaluated without cancellation (kdcore/_mixture.py). Rows sum to zero. Where the
    divergence is ``+inf`` (α = 0 and the student masks a class the teacher expects), every derivative is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import skew_kl_divergence_grad, softmax
    >>> z, v, a = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2]), 0.1
    >>> p, q = softmax(z), softmax(v)
    >>> t = 1 - q / (a * q + (1 - a) * p)
    >>> bool(np.allclose(skew_kl_divergence_grad(z, v, skew=a), (1 - a) * p * (t - p @ t)))
    True
    """
    (grad,) = evaluate("skew_kl", student_logits, teacher_logits, T, skew, "skew", reduction, (wrt,), mask)
    return grad


def skew_reverse_kl_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    skew: float = 0.1,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Skew reverse KL divergence :math:`\mathrm{KL}(p\,\|\,\alpha p + (1-\alpha) q)` (DistiLLM's SRKL).

    The reverse KL from the student to a mixture that holds a fraction ``skew`` (α) of the *student* and
    1 − α of the teacher. α = 0 is :func:`kdcore.reverse_kl_divergence`; α = 1 is identically 0.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. ``-inf`` masks a class.
    T : float, default 1.0
        Temperature applied to both, finite and positive.
    skew : float, default 0.1
        α in [0, 1], the student's share of the mixture (DistiLLM's ``skew_alpha``).
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`skew_kl_divergence`.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray
        Non-negative; exactly 0 for identical inputs. Dtype rules as :func:`skew_kl_divergence`.

    Notes
    -----
    With :math:`m = \alpha p + (1-\alpha) q` and :math:`s = m/p - 1 = (1-\alpha)(q/p - 1)`:

    .. math::

        \mathrm{SRKL}_\alpha = \sum_i p_i\,\bigl(s_i - \operatorname{log1p}(s_i)\bigr), \qquad
        \frac{\partial\,\mathrm{SRKL}}{\partial z} = \frac{p \odot (G - \langle p, G\rangle)}{T}, \quad
        G = \log\frac{p}{m} - \alpha\Bigl(\frac{p}{m} - 1\Bigr),

    .. math::

        \frac{\partial\,\mathrm{SRKL}}{\partial v} = \frac{(1-\alpha)\,q \odot (t - \langle q, t\rangle)}{T},
        \quad t = 1 - \frac{p}{m}.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import skew_reverse_kl_divergence, reverse_kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> bool(np.isclose(skew_reverse_kl_divergence(z, v, skew=0.0), reverse_kl_divergence(z, v)))
    True
    >>> float(skew_reverse_kl_divergence(z, v, skew=1.0))
    0.0
    """
    (value,) = evaluate(
        "skew_reverse_kl", student_logits, teacher_logits, T, skew, "skew", reduction, (None,), mask
    )
    return value


def skew_reverse_kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    skew: float = 0.1,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Derivative of :func:`skew_reverse_kl_divergence` w.r.t. the student logits, the teacher logits or ``T``.

    Parameters and returns as in :func:`skew_kl_divergence_grad`; closed forms in
    :func:`skew_reverse_kl_divergence`.

    Parameters
    ----------
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import skew_reverse_kl_divergence_grad
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> g = skew_reverse_kl_divergence_grad(z, v, T=2.0, skew=0.3)
    >>> bool(abs(g.sum()) < 1e-16)  # a common shift of the logits changes nothing
    True
    """
    (grad,) = evaluate(
        "skew_reverse_kl", student_logits, teacher_logits, T, skew, "skew", reduction, (wrt,), mask
    )
    return grad


def jensen_shannon_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    beta: float = 0.5,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""The generalised Jensen–Shannon divergence of GKD (Agarwal et al. 2024, Eq. 1), trl's ``generalized_jsd_loss``.

    .. math::

        \mathrm{JSD}_\beta = \beta\,\mathrm{KL}(q\,\|\,M) + (1-\beta)\,\mathrm{KL}(p\,\|\,M), \qquad
        M = \beta q + (1-\beta) p.

    β weights the **teacher**: its share of the mixture and the weight of the teacher's KL term. This is the
    paper's :math:`D_{JSD(\beta)}(P\,\|\,Q)` with P the teacher and Q the student, and trl's ``beta``
    (since trl PR #3043, 2025; earlier trl versions mixed ``beta·student + (1 − beta)·teacher``).

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. ``-inf`` masks a class.
    T : float, default 1.0
        Temperature applied to both, finite and positive (trl's ``temperature``; no T² factor there).
    beta : float, default 0.5
        β in [0, 1]. β = 1/2 is the symmetric Jensen–Shannon divergence (at most log 2).
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"``: one value per sample; ``"sum"``; ``"mean"``: the mean over samples (trl's
        ``"batchmean"`` over unmasked tokens).
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray
        Non-negative, at most :math:`h(\beta) = -\beta\log\beta - (1-\beta)\log(1-\beta)`; exactly 0 for
        identical inputs. Dtype rules as :func:`kdcore.kl_divergence`.

    Notes
    -----
    **The endpoints.** This function is the formula above for every β in [0, 1], so it is continuous and
    vanishes at both ends: :math:`\mathrm{JSD}_0 = \mathrm{JSD}_1 = 0`. Near them it is a *scaled* KL,

    .. math::

        \lim_{\beta\to0}\frac{\mathrm{JSD}_\beta}{\beta} = \mathrm{KL}(q\,\|\,p), \qquad
        \lim_{\beta\to1}\frac{\mathrm{JSD}_\beta}{1-\beta} = \mathrm{KL}(p\,\|\,q),

    with errors :math:`O(\beta)` and :math:`O(1-\beta)`. trl instead returns the *unscaled* forward KL at
    exactly ``beta == 0`` and the reverse KL at exactly ``beta == 1``: its loss jumps from ~β·KL to KL at the
    endpoints (a factor 1/β in the effective learning rate). Use :func:`kdcore.kl_divergence` and
    :func:`kdcore.reverse_kl_divergence` for those.

    **Accuracy.** Each KL to the mixture is summed as :math:`\sum_i a_i(s_i - \operatorname{log1p} s_i)` with
    :math:`s = M/a - 1` exact from the match of the two rows, a sum of non-negative terms; trl forms
    :math:`\log M` by ``logsumexp`` in log space, which has an absolute error ~1e-16 and so no correct digit
    once the divergence is below ~1e-16.

    **Gradient.** With :math:`\ell = \log(p/M)` and :math:`\ell' = \log(q/M)`:

    .. math::

        \frac{\partial\,\mathrm{JSD}_\beta}{\partial z} = \frac{(1-\beta)\,p \odot (\ell - \mathrm{KL}(p\,\|\,M))}{T},
        \qquad
        \frac{\partial\,\mathrm{JSD}_\beta}{\partial v} = \frac{\beta\,q \odot (\ell' - \mathrm{KL}(q\,\|\,M))}{T}.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import jensen_shannon_divergence, kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> round(float(jensen_shannon_divergence(z, v)), 6)
    0.035522
    >>> float(jensen_shannon_divergence([0.0, -np.inf], [-np.inf, 0.0]))  # disjoint supports: log 2
    0.6931471805599453
    >>> b = 1e-6  # JSD_β/β → forward KL as β → 0
    >>> bool(np.isclose(jensen_shannon_divergence(z, v, beta=b) / b, kl_divergence(z, v), rtol=1e-5))
    True
    """
    (value,) = evaluate("jsd", student_logits, teacher_logits, T, beta, "beta", reduction, (None,), mask)
    return value


def jensen_shannon_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    beta: float = 0.5,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Derivative of :func:`jensen_shannon_divergence` w.r.t. the student logits, the teacher logits or ``T``.

    Parameters and returns as in :func:`skew_kl_divergence_grad`; closed forms in
    :func:`jensen_shannon_divergence`. At β = 0 and β = 1 every derivative is 0 (the divergence is
    identically 0 there).

    Parameters
    ----------
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import jensen_shannon_divergence, jensen_shannon_divergence_grad, softmax
    >>> z, v, b = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2]), 0.3
    >>> p, q = softmax(z), softmax(v)
    >>> ell = np.log(p / (b * q + (1 - b) * p))
    >>> bool(np.allclose(jensen_shannon_divergence_grad(z, v, beta=b), (1 - b) * p * (ell - p @ ell)))
    True
    """
    (grad,) = evaluate("jsd", student_logits, teacher_logits, T, beta, "beta", reduction, (wrt,), mask)
    return grad


# -- value and gradient in one pass (the Hessians are in kdcore/hessians.py) ---------------------------------


def skew_kl_divergence_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    skew: float = 0.1,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`skew_kl_divergence` and its student gradient from one match of the rows: DistiLLM's SKL step.

    Parameters
    ----------
    student_logits, teacher_logits, T, skew, reduction, mask
        As in :func:`skew_kl_divergence` (α = ``skew`` weights the teacher in the mixture).

    Returns
    -------
    tuple of numpy.ndarray
        ``(loss, grad)``, bit for bit what :func:`skew_kl_divergence` and ``skew_kl_divergence_grad(...,
        wrt="student")`` return: shapes ``(...)`` (a scalar unless ``reduction="none"``) and ``(..., N)``,
        in the logits' floating dtype.

    Notes
    -----
    The gradient :math:`(1-\alpha)\,p \odot (t - \langle p, t\rangle)/T`, :math:`t = 1 - q/m`, and the value
    :math:`\sum_i q_i(s_i - \operatorname{log1p} s_i)` share :math:`s = m/q - 1`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import skew_kl_divergence, skew_kl_divergence_and_grad, skew_kl_divergence_grad
    >>> z, v = np.array([[2.0, 1.0, 0.1]]), np.array([[3.0, 0.5, 0.2]])
    >>> loss, grad = skew_kl_divergence_and_grad(z, v, skew=0.1)
    >>> bool(loss == skew_kl_divergence(z, v)), bool(np.array_equal(grad, skew_kl_divergence_grad(z, v)))
    (True, True)
    """
    return evaluate(
        "skew_kl", student_logits, teacher_logits, T, skew, "skew", reduction, (None, "student"), mask
    )


def skew_reverse_kl_divergence_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    skew: float = 0.1,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Loss and student gradient of :func:`skew_reverse_kl_divergence` (DistiLLM's SRKL) in one call.

    Takes the arguments of :func:`skew_reverse_kl_divergence` (here α = ``skew`` is the *student's* share of
    the mixture) and returns the pair ``(loss, grad)`` that it and ``skew_reverse_kl_divergence_grad(...,
    wrt="student")`` return, computed from one match of each chunk of rows and identical to the separate
    calls; float32 stays float32.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import skew_reverse_kl_divergence_and_grad, skew_reverse_kl_divergence_grad
    >>> z, v = np.array([[2.0, 1.0, 0.1]]), np.array([[3.0, 0.5, 0.2]])
    >>> loss, grad = skew_reverse_kl_divergence_and_grad(z, v, T=2.0, skew=0.3)
    >>> bool(np.array_equal(grad, skew_reverse_kl_divergence_grad(z, v, 2.0, 0.3))), bool(loss > 0)
    (True, True)
    """
    return evaluate(
        "skew_reverse_kl", student_logits, teacher_logits, T, skew, "skew", reduction, (None, "student"), mask
    )


def jensen_shannon_divergence_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    beta: float = 0.5,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""What a GKD training step needs: :func:`jensen_shannon_divergence` and its student gradient together.

    Both parts, :math:`\mathrm{KL}(q\,\|\,M)` and :math:`\mathrm{KL}(p\,\|\,M)`, and their gradients come
    from one match of the rows; ``loss`` and ``grad`` are identical to :func:`jensen_shannon_divergence` and
    ``jensen_shannon_divergence_grad(..., wrt="student")`` with the same arguments (``beta``: the teacher's
    weight; ``mask``: positions kept), of shapes ``(...)`` or scalar, and ``(..., N)``.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import jensen_shannon_divergence, jensen_shannon_divergence_and_grad
    >>> z = np.array([[[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]]])  # (batch 1, sequence 2, vocabulary 3)
    >>> v = np.array([[[3.0, 0.5, 0.2], [np.nan, 0.0, 0.0]]])  # a padding position, never computed
    >>> loss, grad = jensen_shannon_divergence_and_grad(z, v, mask=np.array([[True, False]]))
    >>> bool(loss == jensen_shannon_divergence(z[:, :1], v[:, :1])), grad[0, 1].tolist()
    (True, [0.0, 0.0, 0.0])
    """
    return evaluate(
        "jsd", student_logits, teacher_logits, T, beta, "beta", reduction, (None, "student"), mask
    )
