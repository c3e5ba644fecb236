r"""Decoupled knowledge distillation (DKD, Zhao et al. 2022): the KL split into a target and a non-target part.

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`, student probabilities
:math:`p = \operatorname{softmax}(z/T)`, teacher probabilities :math:`q = \operatorname{softmax}(v/T)`, the
target class :math:`t` (the label). The KL divergence decomposes exactly (the chain rule of KL):

.. math::

    \mathrm{KL}(q\,\|\,p) = \underbrace{\mathrm{KL}(b^q\,\|\,b^p)}_{\text{TCKD}}
        + (1 - q_t)\,\underbrace{\mathrm{KL}(\hat q\,\|\,\hat p)}_{\text{NCKD}},

with :math:`b^q = (q_t, 1 - q_t)` the binary target/non-target distribution and :math:`\hat q_i = q_i/(1 - q_t)`
(:math:`i \ne t`) the distribution over the non-target classes. DKD drops the coupling weight
:math:`1 - q_t` and weighs the two parts freely: :math:`L = T^2(\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD})`.

mdistiller computes NCKD by subtracting 1000 from the *tempered* target logit before a softmax, which leaves
the target a weight :math:`e^{-1000 + (z_t - z_i)/T}` relative to class i: negligible for moderate
tempered logits, but at T = 0.01 a target logit 15 above the rest is still 500 above them after the
subtraction, and the "non-target" distribution is the target. Here the non-target distribution masks the
target exactly (logit ``-inf``), and TCKD is computed from the log-odds difference without cancellation
(below), so both parts meet the accuracy contract of :func:`kdcore.kl_divergence`.

References
----------
B. Zhao, Q. Cui, R. Song, Y. Qiu, J. Liang, "Decoupled Knowledge Distillation", CVPR 2022.
https://arxiv.org/abs/2203.08679
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import check_real
from ._chunks import map_rows
from ._decoupled import parts
from .divergences import check_wants, checked_rows

__all__ = [
    "decoupled_kd_loss",
    "decoupled_kd_loss_and_grad",
    "decoupled_kd_loss_grad",
    "non_target_class_kl_divergence",
    "non_target_class_kl_divergence_grad",
    "target_class_kl_divergence",
    "target_class_kl_divergence_grad",
]


def dkd_weights(alpha: object, beta: object) -> dict:
    """DKD's weights of its two parts, each finite and non-negative."""
    return {"tckd": check_real(alpha, "alpha", 0.0), "nckd": check_real(beta, "beta", 0.0)}


def evaluate(
    student_logits,
    teacher_logits,
    labels,
    T,
    reduction,
    wants: tuple,
    weights: dict,
    t2: bool,
    mask,
    ignore_index,
) -> tuple:
    """For each of ``wants`` (None: the value; "student", "teacher", "temperature"; "hessian"), Σ weight·part
    (times T² if ``t2``) or its derivative, over the kept positions in one pass; a part of weight 0 is absent."""
    check_wants(reduction, wants)
    T, kept, student, teacher, labels = checked_rows(
        student_logits, teacher_logits, T, reduction, mask, labels, ignore_index
    )
    weights = {part: weight for part, weight in weights.items() if weight != 0}
    # d/dT of T²·part is not 2T·part + T²·∂part/∂T (which cancels at high T): see kdcore/_decoupled.py
    inner = tuple("t2_temperature" if (t2 and wrt == "temperature") else wrt for wrt in wants)
    scale = T * T if t2 else 1.0
    dtype = student.dtype.type

    def rows(z, v, y):
        results = parts(z, v, y, T, tuple(weights), inner) if weights else {}
        outputs = []
        for wrt in inner:
            shape = {None: (1,), "temperature": (1,), "t2_temperature": (1,), "hessian": z.shape[-1:] * 2}
            total = np.zeros(z.shape[:-1] + shape.get(wrt, z.shape[-1:]), dtype=z.dtype)
            for part, weight in weights.items():
                # (a loss beyond the float range is +inf, as kdcore.kl_divergence's is: no warning)
                with np.errstate(over="ignore", invalid="ignore"):
                    factor = weight if wrt == "t2_temperature" else weight * scale
                    total += dtype(factor) * results[part, wrt]
            outputs.append(total[..., 0] if wrt in (None, "temperature", "t2_temperature") else total)
        return tuple(outputs)

    results = map_rows(rows, student, teacher, labels[..., None])
    return kept.outputs(wants, results, reduction)


def target_class_kl_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""DKD's target-class KL (TCKD): KL(teacher ‖ student) of the binary (target, non-target) distributions.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. ``-inf`` masks a class.
    labels : array_like of int, shape (...)
        The target class t of each sample, in [0, N).
    T : float, default 1.0
        Temperature applied to both, finite and positive.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"``: one value per sample; ``"sum"``; ``"mean"``: the mean over samples.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Returns
    -------
    numpy.ndarray
        Non-negative, without the :math:`T^2` of :func:`decoupled_kd_loss`. Dtype rules as
        :func:`kdcore.kl_divergence`.

    Notes
    -----
    With :math:`\bar q = 1 - q_t = \sum_{i\ne t} q_i` (summed, not subtracted) and the log-odds difference
    :math:`\delta = \log\frac{p_t}{q_t} - \log\frac{\bar p}{\bar q}`:

    .. math::

        \mathrm{TCKD} = q_t\log\frac{q_t}{p_t} + \bar q\log\frac{\bar q}{\bar p}
            = \operatorname{log1p}\bigl(q_t\,g(\bar q\,\delta) + \bar q\,g(-q_t\,\delta)\bigr),
        \quad g(x) = e^x - 1 - x,

    .. math::

        T\frac{\partial\,\mathrm{TCKD}}{\partial z_i} = \begin{cases} p_t - q_t & i = t \\
            -(p_t - q_t)\,\hat p_i & i \ne t \end{cases}, \qquad
        T\frac{\partial\,\mathrm{TCKD}}{\partial v_i} = \begin{cases} -q_t\bar q\,\delta & i = t \\
            q_t\bar q\,\delta\,\hat q_i & i \ne t \end{cases}.

    :math:`\delta = \operatorname{log1p}(d/q_t) - \operatorname{log1p}(-d/\bar q)` with :math:`d = p_t - q_t`
    exact from the match of the rows: its two terms have the same sign, so it never cancels, and the
    second form of TCKD is a sum of non-negative terms — accurate when the student is close to the teacher,
    where ``q_t*log(q_t/p_t) + ...`` returns noise. Rows with :math:`|\delta| > 1` use the first form, which
    does not cancel there.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import target_class_kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> q_t, p_t = np.exp(3) / np.exp(v).sum(), np.exp(2) / np.exp(z).sum()
    >>> binary = q_t * np.log(q_t / p_t) + (1 - q_t) * np.log((1 - q_t) / (1 - p_t))
    >>> bool(np.isclose(target_class_kl_divergence(z, v, 0), binary))
    True
    """
    (value,) = evaluate(
        student_logits,
        teacher_logits,
        labels,
        T,
        reduction,
        (None,),
        {"tckd": 1.0},
        False,
        mask,
        ignore_index,
    )
    return value


def target_class_kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Derivative of :func:`target_class_kl_divergence` w.r.t. the student logits, the teacher logits or ``T``.

    Closed forms in :func:`target_class_kl_divergence`; ∂/∂T from
    :math:`-T\,\partial L/\partial T = \sum_j T\partial L/\partial z_j\,(z_j - z_t)/T + \sum_j T\partial L/\partial v_j\,(v_j - v_t)/T`,
    rearranged so that no first-order terms cancel when the student is close to the teacher. Reductions as
    in :func:`kdcore.kl_divergence_grad`.

    Parameters
    ----------
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import target_class_kl_divergence_grad, softmax
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> p, q = softmax(z), softmax(v)
    >>> g = target_class_kl_divergence_grad(z, v, 0)
    >>> bool(np.isclose(g[0], p[0] - q[0])), bool(np.isclose(g.sum(), 0))
    (True, True)
    """
    (grad,) = evaluate(
        student_logits, teacher_logits, labels, T, reduction, (wrt,), {"tckd": 1.0}, False, mask, ignore_index
    )
    return grad


def non_target_class_kl_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""DKD's non-target-class KL (NCKD): KL(teacher ‖ student) over the classes other than the target.

    It is :func:`kdcore.kl_divergence` of the logits with the target class masked (``-inf``) in both: the
    softmax of the rest is exactly :math:`\hat p_i = p_i/(1 - p_t)`, with no mass left on the target (unlike
    mdistiller's ``logits - 1000 * gt_mask``). Undefined (NaN) when N = 1. Parameters, returns and accuracy as
    :func:`target_class_kl_divergence`.

    .. math::

        \mathrm{NCKD} = \sum_{i\ne t}\hat q_i\log\frac{\hat q_i}{\hat p_i}, \qquad
        T\frac{\partial\,\mathrm{NCKD}}{\partial z} = \hat p - \hat q, \qquad
        T\frac{\partial\,\mathrm{NCKD}}{\partial v} = -\hat q\odot\hat f

    (:math:`\hat f` the centred log-ratio of the non-target rows), 0 at the target class.

    Parameters
    ----------
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import non_target_class_kl_divergence, kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> bool(np.isclose(non_target_class_kl_divergence(z, v, 0), kl_divergence(z[1:], v[1:]), rtol=1e-15))
    True
    """
    (value,) = evaluate(
        student_logits,
        teacher_logits,
        labels,
        T,
        reduction,
        (None,),
        {"nckd": 1.0},
        False,
        mask,
        ignore_index,
    )
    return value


def non_target_class_kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Derivative of :func:`non_target_class_kl_divergence`: :func:`kdcore.kl_divergence_grad` of the masked rows.

    Parameters
    ----------
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import non_target_class_kl_divergence_grad
    >>> g = non_target_class_kl_divergence_grad([2.0, 1.0, 0.1], [3.0, 0.5, 0.2], 0)
    >>> float(g[0])  # the target class does not take part
    0.0
    """
    (grad,) = evaluate(
        student_logits, teacher_logits, labels, T, reduction, (wrt,), {"nckd": 1.0}, False, mask, ignore_index
    )
    return grad


def decoupled_kd_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Decoupled KD (Zhao et al. 2022): :math:`T^2\,(\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD})`.

    The defaults are mdistiller's CIFAR-100 configuration (``DKD.ALPHA = 1.0``, ``DKD.BETA = 8.0``,
    ``DKD.T = 4.0``); mdistiller also ramps the whole loss up over the first epochs (``WARMUP``), which is a
    training schedule, not part of the loss. Its ``alpha``/``beta`` are these; the parts are
    :func:`target_class_kl_divergence` and :func:`non_target_class_kl_divergence` (without T²).

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits, class axis last, same shape.
    labels : array_like of int, shape (...)
        Target classes.
    T : float, default 4.0
        Temperature, finite and positive.
    alpha, beta : float, default 1.0 and 8.0
        Weights of TCKD and NCKD, finite and non-negative; a part of weight exactly 0 is not computed (so it cannot
        make the loss NaN, e.g. NCKD with N = 1).
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` is mdistiller's (the sum over the batch divided by the batch size).
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Returns
    -------
    numpy.ndarray
        Dtype rules as :func:`kdcore.kl_divergence`.

    Notes
    -----
    With α = β = 1 and the coupling weight :math:`1 - q_t` restored, the parts add up to the plain KL:
    :math:`\mathrm{TCKD} + (1 - q_t)\,\mathrm{NCKD} = \mathrm{KL}(q\,\|\,p)`
    (``tests/test_decoupled.py``). Derivatives: :func:`decoupled_kd_loss_grad`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import decoupled_kd_loss, target_class_kl_divergence, non_target_class_kl_divergence
    >>> z, v, y = np.array([[2.0, 1.0, 0.1]]), np.array([[3.0, 0.5, 0.2]]), np.array([0])
    >>> parts = 16 * (target_class_kl_divergence(z, v, y, 4.0) + 8 * non_target_class_kl_divergence(z, v, y, 4.0))
    >>> bool(np.isclose(decoupled_kd_loss(z, v, y), parts))
    True
    """
    weights = dkd_weights(alpha, beta)
    (value,) = evaluate(
        student_logits, teacher_logits, labels, T, reduction, (None,), weights, True, mask, ignore_index
    )
    return value


def decoupled_kd_loss_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Derivative of :func:`decoupled_kd_loss` w.r.t. the student logits, the teacher logits or ``T``.

    .. math::

        \frac{\partial L}{\partial z} = T^2\Bigl(\alpha\frac{\partial\,\mathrm{TCKD}}{\partial z}
            + \beta\frac{\partial\,\mathrm{NCKD}}{\partial z}\Bigr), \qquad
        \frac{\partial L}{\partial T} = 2T(\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD})
            + T^2\Bigl(\alpha\frac{\partial\,\mathrm{TCKD}}{\partial T} + \beta\frac{\partial\,\mathrm{NCKD}}{\partial T}\Bigr).

    Parameters
    ----------
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import decoupled_kd_loss_grad, target_class_kl_divergence_grad as tckd
    >>> from kdcore import non_target_class_kl_divergence_grad as nckd
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> g = decoupled_kd_loss_grad(z, v, 0, T=2.0, alpha=1.0, beta=8.0)
    >>> bool(np.allclose(g, 4 * (tckd(z, v, 0, 2.0) + 8 * nckd(z, v, 0, 2.0))))
    True
    """
    weights = dkd_weights(alpha, beta)
    (grad,) = evaluate(
        student_logits, teacher_logits, labels, T, reduction, (wrt,), weights, True, mask, ignore_index
    )
    return grad


def decoupled_kd_loss_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`decoupled_kd_loss` and its student gradient from one pass over the data.

    Parameters
    ----------
    student_logits, teacher_logits, labels, T, alpha, beta, reduction, mask, ignore_index
        As in :func:`decoupled_kd_loss`.

    Returns
    -------
    loss : numpy.ndarray
        Identical to :func:`decoupled_kd_loss` (the matches of the full and the non-target rows are shared).
    grad : numpy.ndarray, shape (..., N)
        Identical to ``decoupled_kd_loss_grad(..., wrt="student")``; exactly 0 at dropped positions.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import decoupled_kd_loss, decoupled_kd_loss_and_grad, decoupled_kd_loss_grad
    >>> z, v = np.array([[2.0, 1.0, 0.1], [0.3, 0.2, 0.1]]), np.array([[3.0, 0.5, 0.2], [1.0, 0.0, 0.0]])
    >>> y = np.array([0, -100])  # the second sample is padding: dropped
    >>> loss, grad = decoupled_kd_loss_and_grad(z, v, y, T=4.0)
    >>> bool(loss == decoupled_kd_loss(z[:1], v[:1], y[:1])), grad[1].tolist()
    (True, [0.0, 0.0, 0.0])
    >>> bool(np.array_equal(grad, decoupled_kd_loss_grad(z, v, y)))
    True
    """
    weights = dkd_weights(alpha, beta)
    return evaluate(
        student_logits,
        teacher_logits,
        labels,
        T,
        reduction,
        (None, "student"),
        weights,
        True,
        mask,
        ignore_index,
    )
