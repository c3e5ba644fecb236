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

from ._arrays import (
    REDUCTIONS,
    as_logit_pair,
    check_choice,
    check_labels,
    check_real,
    check_temperature,
    reduce,
    reduce_grad,
)
from ._chunks import map_rows
from ._match import match, student_gap
from ._numerics import exp_minus_one_minus_x, row_sum, take_along_last
from .divergences import WRT
from .softmax import log_softmax

__all__ = [
    "decoupled_kd_loss",
    "decoupled_kd_loss_grad",
    "non_target_class_kl_divergence",
    "non_target_class_kl_divergence_grad",
    "target_class_kl_divergence",
    "target_class_kl_divergence_grad",
]


def _log_sum_without(log_probs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """log Σ_{i≠t} w_i from log-probabilities (finite even where the sum underflows), shape (rows, 1)."""
    masked = np.where(target, -np.inf, log_probs)
    peak = np.max(masked, axis=-1, keepdims=True)
    safe = np.where(np.isfinite(peak), peak, 0)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(peak), safe + np.log(row_sum(np.exp(masked - safe))), peak)


def _parts(z: np.ndarray, v: np.ndarray, labels: np.ndarray, T: float, want: tuple, wrt: str | None) -> dict:
    """TCKD and NCKD (each wanted part) of rows (rows, N) with labels (rows, 1): value or derivative."""
    target = np.arange(z.shape[-1]) == labels
    results = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rest = match(np.where(target, -np.inf, z), np.where(target, -np.inf, v), T)  # NCKD: target masked
        if "nckd" in want:
            if wrt is None:
                results["nckd"] = rest.kl
            elif wrt == "student":
                results["nckd"] = rest.probs_diff() / T
            elif wrt == "teacher":
                results["nckd"] = rest.kl_teacher_grad()
            else:
                results["nckd"] = rest.kl_temperature_grad()
        if "tckd" in want:
            results["tckd"] = _tckd(z, v, target, labels, T, rest, wrt)
    return results


def _tckd(z, v, target, labels, T, rest, wrt) -> np.ndarray:
    r"""The binary KL between (q_t, q̄) and (p_t, p̄), q̄ = 1 − q_t, or a derivative (see the public docstring)."""
    full = match(z, v, T)
    log_q, q = full.teacher_log_probs, full.teacher_probs
    log_p = log_softmax(full.student_logits, T)
    diff = full.probs_diff()
    pick = lambda x: take_along_last(x, labels[..., 0])  # noqa: E731
    q_t, d = pick(q), pick(diff)  # d = p_t − q_t = q̄ − p̄
    log_q_t, log_p_t = pick(log_q), pick(log_p)
    q_rest = row_sum(np.where(target, 0, q))  # q̄ = 1 − q_t, summed (no cancellation when q_t ≈ 1)
    log_q_rest, log_p_rest = _log_sum_without(log_q, target), _log_sum_without(log_p, target)
    exact = np.isfinite(full.kl) & np.isfinite(log_q_t) & np.isfinite(log_p_t)
    if full.fallback is not None:
        exact &= ~full.fallback
    # L_t = log(p_t/q_t) = f_t − KL exactly; L_r = log(p̄/q̄) = log1p(−d/q̄) where p̄ ≈ q̄.
    log_ratio_t = np.where(exact, pick(full.log_ratio) - np.where(exact, full.kl, 0), log_p_t - log_q_t)
    # (d = p − q is exact in every row, also where the match fell back to the log domain)
    close = (np.abs(d) <= q_rest / 2) & (q_rest > 0)
    log_ratio_rest = np.where(
        close, np.log1p(np.where(close, -d / np.where(close, q_rest, 1), 0)), log_p_rest - log_q_rest
    )
    # The student's minus the teacher's log-odds of the target: where p ≈ q its two terms have the same sign.
    log_odds = log_ratio_t - log_ratio_rest
    small = exact & (np.abs(log_odds) <= 1)
    safe_odds = np.where(small, log_odds, 0)
    # Binary KL in the form of kdcore/_match.py: f'_t = q̄ δ, f'_r = −q_t δ, KL = log1p(Σ b (e^f' − 1 − f')).
    series = np.log1p(
        q_t * exp_minus_one_minus_x(q_rest * safe_odds) + q_rest * exp_minus_one_minus_x(-q_t * safe_odds)
    )
    direct = -(
        np.where(q_t > 0, q_t * log_ratio_t, 0) + np.where(log_q_rest > -np.inf, q_rest * log_ratio_rest, 0)
    )
    value = np.where(small, series, direct)
    value = np.where(np.isnan(value) & ~np.isnan(full.kl), np.inf, value)
    undefined = full.undefined if full.undefined is not None else np.zeros_like(value, dtype=bool)
    if wrt is None:
        return np.where(undefined, np.nan, value)
    # T ∂/∂z: (d at t, −d p̂ elsewhere); T ∂/∂v: (−c at t, c q̂ elsewhere) with c = q_t q̄ δ.
    coupling = np.where((q_t > 0) & (q_rest > 0), q_t * q_rest * log_odds, 0)
    p_hat = np.where(target, 0, np.exp(log_p - log_p_rest))
    q_hat = rest.teacher_probs
    infinite = np.isinf(value)
    if wrt == "student":
        grad = np.where(target, d, -d * p_hat) / T
    elif wrt == "teacher":
        grad = np.where(target, -coupling, coupling * q_hat) / T
    else:
        # −T ∂/∂T = −d·E_p̂[(z − z_t)/T] + c·E_q̂[(v − v_t)/T]. Near p = q both terms are first order and
        # cancel; then it is c·(E_q̂[f_t − f] + ⟨q̂ − p̂, (z − z_t)/T⟩) + (c − d)·E_p̂[(z − z_t)/T], with
        # c − d = q_t (KL − g(f'_t − KL)), g(x) = e^x − 1 − x: every term second order.
        student_gap_t = np.where(p_hat > 0, student_gap(full.student_logits, labels[..., 0], T), 0)
        student_mean = row_sum(p_hat * student_gap_t)
        teacher_gap_t = np.where(q_hat > 0, (full.teacher_shifted - pick(full.teacher_shifted)), 0)
        # (where q_t or q̄ is 0 the coupling is 0 and the teacher's logits, perhaps masked, do not enter)
        teacher_mean = np.where(coupling != 0, row_sum(np.where(coupling != 0, q_hat * teacher_gap_t, 0)), 0)
        plain = -d * student_mean + coupling * teacher_mean
        f = full.log_ratio
        hat_diff = rest.probs_diff()  # p̂ − q̂
        f_t = pick(f)
        across = row_sum(q_hat * (f_t - f)) - row_sum(np.where(target, 0, hat_diff) * student_gap_t)
        f_target = q_rest * safe_odds
        excess = q_t * (value - exp_minus_one_minus_x(np.where(small, f_target - value, 0)))
        near = coupling * across + excess * student_mean
        grad = -np.where(small, near, plain) / T
    return np.where(infinite | undefined, np.nan, grad)


def _evaluate(
    student_logits, teacher_logits, labels, T, reduction, wrt, weights: dict, t2: bool
) -> np.ndarray:
    """Σ weight·part (times T² if ``t2``), or its derivative w.r.t. ``wrt``; a part of weight 0 is absent."""
    check_choice(reduction, "reduction", REDUCTIONS)
    if wrt is not None:
        check_choice(wrt, "wrt", WRT)
    T = check_temperature(T)
    student, teacher = as_logit_pair(student_logits, teacher_logits)
    labels = check_labels(labels, student)
    weights = {part: weight for part, weight in weights.items() if weight != 0}
    per_class = wrt in ("student", "teacher")
    dtype = student.dtype.type

    def rows(z, v, y):
        with np.errstate(over="ignore", invalid="ignore"):
            return _rows(z, v, y)

    def _rows(z, v, y):
        total = np.zeros(z.shape if per_class else (*z.shape[:-1], 1), dtype=z.dtype)
        if not weights:
            return (total if per_class else total[..., 0],)
        derivatives = _parts(z, v, y, T, tuple(weights), wrt)
        values = _parts(z, v, y, T, tuple(weights), None) if (t2 and wrt == "temperature") else None
        for part, weight in weights.items():
            # (a loss beyond the float range is +inf, as kdcore.kl_divergence's is: no warning)
            if t2 and wrt == "temperature":  # d/dT [T² w part] = w (2T part + T² ∂part/∂T)
                total += dtype(weight) * (dtype(2 * T) * values[part] + dtype(T * T) * derivatives[part])
            else:
                total += dtype(weight * (T * T if t2 else 1.0)) * derivatives[part]
        return (total if per_class else total[..., 0],)

    (result,) = map_rows(rows, student, teacher, labels[..., None])
    return reduce_grad(result, reduction) if per_class else reduce(result, reduction)


def target_class_kl_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
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
    return _evaluate(student_logits, teacher_logits, labels, T, reduction, None, {"tckd": 1.0}, False)


def target_class_kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
) -> np.ndarray:
    r"""Derivative of :func:`target_class_kl_divergence` w.r.t. the student logits, the teacher logits or ``T``.

    Closed forms in :func:`target_class_kl_divergence`; ∂/∂T from
    :math:`-T\,\partial L/\partial T = \sum_j T\partial L/\partial z_j\,(z_j - z_t)/T + \sum_j T\partial L/\partial v_j\,(v_j - v_t)/T`,
    rearranged so that no first-order terms cancel when the student is close to the teacher. Reductions as
    in :func:`kdcore.kl_divergence_grad`.

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
    return _evaluate(student_logits, teacher_logits, labels, T, reduction, wrt, {"tckd": 1.0}, False)


def non_target_class_kl_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
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

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import non_target_class_kl_divergence, kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> bool(np.isclose(non_target_class_kl_divergence(z, v, 0), kl_divergence(z[1:], v[1:]), rtol=1e-15))
    True
    """
    return _evaluate(student_logits, teacher_logits, labels, T, reduction, None, {"nckd": 1.0}, False)


def non_target_class_kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
) -> np.ndarray:
    r"""Derivative of :func:`non_target_class_kl_divergence`: :func:`kdcore.kl_divergence_grad` of the masked rows.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import non_target_class_kl_divergence_grad
    >>> g = non_target_class_kl_divergence_grad([2.0, 1.0, 0.1], [3.0, 0.5, 0.2], 0)
    >>> float(g[0])  # the target class does not take part
    0.0
    """
    return _evaluate(student_logits, teacher_logits, labels, T, reduction, wrt, {"nckd": 1.0}, False)


def decoupled_kd_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    reduction: str = "mean",
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
    weights = {"tckd": check_real(alpha, "alpha", 0.0), "nckd": check_real(beta, "beta", 0.0)}
    return _evaluate(student_logits, teacher_logits, labels, T, reduction, None, weights, True)


def decoupled_kd_loss_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    reduction: str = "mean",
    wrt: str = "student",
) -> np.ndarray:
    r"""Derivative of :func:`decoupled_kd_loss` w.r.t. the student logits, the teacher logits or ``T``.

    .. math::

        \frac{\partial L}{\partial z} = T^2\Bigl(\alpha\frac{\partial\,\mathrm{TCKD}}{\partial z}
            + \beta\frac{\partial\,\mathrm{NCKD}}{\partial z}\Bigr), \qquad
        \frac{\partial L}{\partial T} = 2T(\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD})
            + T^2\Bigl(\alpha\frac{\partial\,\mathrm{TCKD}}{\partial T} + \beta\frac{\partial\,\mathrm{NCKD}}{\partial T}\Bigr).

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
    weights = {"tckd": check_real(alpha, "alpha", 0.0), "nckd": check_real(beta, "beta", 0.0)}
    return _evaluate(student_logits, teacher_logits, labels, T, reduction, wrt, weights, True)
