r"""Top-k (sparse) teachers: the KL divergence to a teacher stored as its k largest entries per position.

Cached-teacher pipelines for language models store, per token, the teacher's k largest logits or
log-probabilities and their vocabulary indices — ``(teacher_values, teacher_indices)``, shape (..., k) —
instead of all V. The student is dense, logits (..., V). The rest of the teacher's distribution is gone, so
every sparse loss is a *convention* about it. kdcore implements the three in use, by name, each exact
(float64 within 1e-12 relative of a 50-digit oracle):

``"renormalized"``
    Both distributions restricted to the k stored classes K and renormalised there:
    :math:`\mathrm{KL}(\hat q\,\|\,\hat p)` with :math:`\hat q = \operatorname{softmax}_K(v/T)`,
    :math:`\hat p = \operatorname{softmax}_K(z/T)`. The student is free outside K.
    Used by SDPO (lasgroup/SDPO, ``verl/trainer/ppo/core_algos.py``, ``renorm_topk_log_probs`` when
    ``distillation_add_tail`` is off) and, in reverse, by verl's GKD recipe (``recipe/gkd/megatron/
    megatron_distill_losses.py``, "RKL on renormalized top-k").
``"dense_student"``
    The teacher renormalised over K, the student's *full* log-softmax gathered at K:
    :math:`\sum_{i\in K}\hat q_i(\log\hat q_i - \log p_i) = \mathrm{KL}(\hat q\,\|\,\hat p) - \log P_K`,
    :math:`P_K = \sum_{i\in K} p_i`. It is the dense KL to the truncated teacher (zero outside K), so it
    also pushes the student's mass into K. arcee-ai/DistillKit's default
    (``distillkit/lossfuncs/kl.py``, ``MissingProbabilityHandling.ZERO``).
``"tail"``
    k + 1 buckets: the k stored classes and the rest, the teacher's rest being
    :math:`1 - \sum_{i\in K} q_i` (from log-probabilities) and the student's :math:`1 - P_K`.
    NVIDIA Megatron-LM's offline distillation (``megatron/training/distillation/cached_logits_loss.py``,
    ``add_ghost_token=True``), SDPO with ``distillation_add_tail``, DistillKit's
    ``SYMMETRIC_UNIFORM`` at T = 1 (each up to its own ε clamps of the tail, 1e-6 to 1e-7).

Values and temperature. With ``values="logits"`` the stored entries are teacher logits :math:`v_K`; with
``values="log_probs"`` they are :math:`a_K = \log\operatorname{softmax}(v)_K` (at T = 1, the model's own
distribution). The renormalised conventions depend on the values only through
:math:`\operatorname{softmax}_K(\cdot/T)`, unchanged by the constant :math:`\log\sum e^v`, so both kinds
give the same loss at every T. The tail needs the teacher's total mass outside K: log-probabilities give
it at T = 1, logits never (their normaliser is not stored), and at T ≠ 1 the tempered tail
:math:`\sum_{j\notin K} q_j^{1/T}/Z` depends on how the rest is spread, which is not stored either — so
``convention="tail"`` requires ``values="log_probs"`` and T = 1 (DistillKit approximates the tempered tail
by treating the rest as one class, :math:`(1 - \sum q)^{1/T}`; kdcore refuses rather than guess). For
log-probabilities stored at a generation temperature :math:`T_g`, pass ``student_logits / T_g``.

Stored log-probabilities whose probabilities sum to within 64·k·eps of 1 (rounding) leave the tail empty.
When the indices cover the vocabulary (k = V) the three conventions coincide with
:func:`kdcore.kl_divergence`; the tail is then empty by construction (any mass the stored log-probabilities
leave over is rounding) and the teacher is renormalised. docs/divergences.md ("Top-k teachers") compares
the conventions with the dense KL on a realistic teacher.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import REDUCTIONS, as_logits, check_choice, check_int
from ._topk import TopK, check_topk, gather, scatter, tail_buckets
from .divergences import (
    WRT,
    kl_divergence_and_grad,
    kl_divergence_grad,
    soft_cross_entropy_and_grad,
    soft_cross_entropy_grad,
)
from .softmax import log_softmax

__all__ = [
    "topk_kl_divergence",
    "topk_kl_divergence_and_grad",
    "topk_kl_divergence_grad",
    "topk_soft_cross_entropy",
    "topk_soft_cross_entropy_grad",
    "topk_teacher",
]

_DENSE = {
    "kl_divergence": (kl_divergence_and_grad, kl_divergence_grad),
    "soft_cross_entropy": (soft_cross_entropy_and_grad, soft_cross_entropy_grad),
}


def topk_teacher(
    teacher_logits: ArrayLike, k: int, *, values: str = "logits"
) -> tuple[np.ndarray, np.ndarray]:
    r"""The top-k teacher of dense logits: its k largest entries per position and their class indices.

    Parameters
    ----------
    teacher_logits : array_like, shape (..., V)
        Dense teacher logits :math:`v`, class axis last.
    k : int
        How many classes to keep per position, 1 ≤ k ≤ V.
    values : {"logits", "log_probs"}, default "logits"
        Store the logits :math:`v_K` or the log-probabilities :math:`\log\operatorname{softmax}(v)_K`
        (at T = 1, computed with :func:`kdcore.log_softmax`, accurate for every class).

    Returns
    -------
    teacher_values : numpy.ndarray, shape (..., k)
        The stored values, largest first; float dtype rules as :func:`kdcore.softmax`.
    teacher_indices : numpy.ndarray of intp, shape (..., k)
        Their classes. Ties are broken towards the smaller index (a stable sort), so the result is
        deterministic.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import topk_teacher
    >>> values, indices = topk_teacher(np.array([0.5, 3.0, -1.0, 2.0]), k=2)
    >>> values, indices
    (array([3., 2.]), array([1, 3]))
    >>> topk_teacher(np.array([0.5, 3.0, -1.0, 2.0]), k=2, values="log_probs")[0].round(4)
    array([-0.3841, -1.3841])
    """
    check_choice(values, "values", ("logits", "log_probs"))
    logits = as_logits(teacher_logits, "teacher_logits")
    k = check_int(k, "k", 1)
    if k > logits.shape[-1]:
        raise ValueError(f"k must be at most the number of classes V={logits.shape[-1]}, got k={k}")
    # A stable sort of −v: NaN sorts last, ties keep the smaller index first.
    order = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    source = log_softmax(logits) if values == "log_probs" else logits
    return np.take_along_axis(source, order, axis=-1), order.astype(np.intp)


def _tail_rows(topk: TopK, name: str, wrt: str | None):
    """Value (wrt None) or derivative of the tail convention on the kept rows (k < V)."""
    tail = tail_buckets(topk)
    m = tail.match
    k = topk.values.shape[-1]
    if wrt is None:
        value = m.kl[:, 0]
        return value + m.teacher_entropy[:, 0] if name == "soft_cross_entropy" else value
    if wrt == "student":
        # ∂/∂z_j = p_j − q_j on K; on the rest, the tail bucket's p_t − q_t shared in proportion to the
        # student's own tail: (p_j / (1 − P_K))·(p_t − q_t), with p_j/(1 − P_K) = e^{z_j − λ}.
        diff = m.probs_diff()
        lam = tail.student_tail[:, None]
        with np.errstate(invalid="ignore", over="ignore"):
            share = np.exp(np.where(tail.complement & np.isfinite(lam), topk.student - lam, -np.inf))
            grad = share * diff[:, -1:]
        np.put_along_axis(grad, topk.indices, diff[:, :k], axis=-1)
        return grad
    # ∂KL/∂a_i = q_i (f_t − f_i): the stored log-probabilities move the teacher's tail (1 − Σ e^a) too.
    q, f = m.teacher_probs, m.log_ratio
    grad = q[:, :k] * (f[:, -1:] - f[:, :k])
    if name == "soft_cross_entropy":  # ∂H/∂a_i = −q_i (log q_i − log q_t), q_t the teacher's tail mass
        log_q = m.teacher_log_probs
        with np.errstate(invalid="ignore"):
            grad = grad - np.where(q[:, :k] > 0, q[:, :k] * (log_q[:, :k] - log_q[:, -1:]), 0)
    undefined = ~np.isfinite(m.kl) | tail.teacher_tail_empty[:, None]
    return np.where(undefined, np.nan, grad)


def _rows(topk: TopK, name: str, wrt: str | None, with_value: bool = False):
    """Per kept row: the loss (wrt None), a derivative, or (loss, student gradient) with ``with_value``."""
    student, values, indices = topk.student, topk.values, topk.indices
    n_classes = student.shape[-1]
    convention = "renormalized" if values.shape[-1] == n_classes else topk.convention
    if convention == "tail":
        if with_value:
            return _tail_rows(topk, name, None), _tail_rows(topk, name, "student")
        return _tail_rows(topk, name, wrt)
    and_grad, grad = _DENSE[name]
    # Each renormalised convention *is* a dense loss on arrays built from the inputs: on the gathered
    # top-k logits (renormalized), or on the full student against a teacher masked outside K (dense_student).
    if convention == "renormalized":
        z, v = gather(student, indices), values
    else:
        z, v = student, scatter(values, indices, n_classes, -np.inf)
    if with_value or wrt is None:
        value, student_grad = and_grad(z, v, topk.T, "none")
        if convention == "renormalized":
            student_grad = scatter(student_grad, indices, n_classes, 0.0)
        return (value, student_grad) if with_value else value
    result = grad(z, v, topk.T, "none", wrt)
    if wrt == "student" and convention == "renormalized":
        return scatter(result, indices, n_classes, 0.0)
    if wrt == "teacher" and convention == "dense_student":
        return gather(result, indices)
    return result


def _value(name, inputs, T, reduction, options):
    """The loss ``name`` reduced; ``inputs`` = (student, values, indices), ``options`` = (values, convention, mask)."""
    check_choice(reduction, "reduction", REDUCTIONS)
    topk = check_topk(*inputs, T, *options)
    if topk.student.shape[0] == 0:
        return topk.reduce(np.zeros(0, topk.student.dtype), reduction)
    return topk.reduce(_rows(topk, name, None), reduction)


def _derivative(name, inputs, T, reduction, wrt, options):
    """The derivative of the loss ``name`` w.r.t. ``wrt``, reduced like the loss (arguments as :func:`_value`)."""
    check_choice(reduction, "reduction", REDUCTIONS)
    check_choice(wrt, "wrt", WRT)
    topk = check_topk(*inputs, T, *options, wrt)
    n, n_classes = topk.student.shape
    if n == 0:
        width = {"student": (n_classes,), "teacher": (topk.values.shape[-1],), "temperature": ()}[wrt]
        result = np.zeros((0, *width), topk.student.dtype)
    else:
        result = _rows(topk, name, wrt)
    return topk.reduce(result, reduction) if wrt == "temperature" else topk.reduce_grad(result, reduction)


def topk_kl_divergence(
    student_logits: ArrayLike,
    teacher_values: ArrayLike,
    teacher_indices: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    convention: str,
    values: str = "logits",
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""KL(teacher ‖ student) to a top-k teacher, under a named convention for the classes it did not store.

    Parameters
    ----------
    student_logits : array_like, shape (..., V)
        Dense student logits :math:`z`, class axis last. ``-inf`` masks a class.
    teacher_values : array_like, shape (..., k)
        The teacher's stored entries at ``teacher_indices``: logits :math:`v_K` or log-probabilities
        :math:`a_K` (``values``). Finite or ``-inf`` (a class of probability 0); 1 ≤ k ≤ V.
    teacher_indices : array_like of int, shape (..., k)
        Their vocabulary classes K, distinct within a position, in [0, V).
    T : float, default 1.0
        Temperature applied to the student and to the stored values, finite and positive (1 for ``"tail"``).
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"``: one value per position, the leading shape ``(...)``, 0.0 where ``mask`` drops it;
        ``"sum"``: over kept positions; ``"mean"``: the sum over kept positions divided by their number
        (0.0 when none is kept).
    convention : {"renormalized", "dense_student", "tail"}
        What the loss assumes about the unstored classes (module docstring; required: there is no
        neutral default).
    values : {"logits", "log_probs"}, default "logits"
        What ``teacher_values`` hold. Log-probabilities must sum (as probabilities) to at most 1.
    mask : array_like of bool, shape (...), optional
        True keeps a position. Dropped positions are never looked at: their logits, values and indices may
        be anything (padding). ``kdcore.token_mask(labels)`` builds it from ``-100`` labels.

    Returns
    -------
    numpy.ndarray
        float32 for float32 inputs (student and values), float64 for float64, integer or list input.

    Notes
    -----
    With :math:`\hat q = \operatorname{softmax}_K(v_K/T)`, :math:`p = \operatorname{softmax}(z/T)`,
    :math:`\hat p = p_K/P_K`, :math:`P_K = \sum_{i\in K} p_i`:

    .. math::

        \text{renormalized:}\quad \mathrm{KL}(\hat q\,\|\,\hat p), \qquad
        \text{dense\_student:}\quad \sum_{i\in K}\hat q_i \log\frac{\hat q_i}{p_i}
            = \mathrm{KL}(\hat q\,\|\,\hat p) - \log P_K,

    .. math::

        \text{tail } (T = 1,\ q_K = e^{a_K}):\quad \sum_{i\in K} q_i\log\frac{q_i}{p_i}
            + q_t \log\frac{q_t}{p_t}, \qquad q_t = 1 - \textstyle\sum_K q_i,\ p_t = 1 - P_K .

    All three are non-negative and exactly 0 when the student reproduces what the convention keeps.
    The first two are evaluated as :func:`kdcore.kl_divergence` of the gathered logits, and of the full
    student against a teacher masked outside K; the tail with the same cancellation-free algorithm over
    k + 1 buckets, its tail mass :math:`q_t` as ``-expm1(logsumexp(a))`` and, when the student is close to
    the teacher, the tail log-masses in double-double arithmetic (``kdcore/_topk.py`` says why).
    A student that masks a class the teacher weighs makes the loss ``+inf``; a position whose student logits
    hold NaN or ``+inf`` gives NaN there only.

    References
    ----------
    Anshumann et al. (2025), "Sparse Logit Sampling: Accelerating Knowledge Distillation in LLMs",
    arXiv:2503.16870 — why caching the top k biases the teacher distribution.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import kl_divergence, topk_kl_divergence, topk_teacher
    >>> z = np.array([2.0, 1.0, 0.1, -1.0, -2.0])
    >>> v = np.array([3.0, 0.5, 0.2, 0.0, -3.0])
    >>> a, k_idx = topk_teacher(v, k=3, values="log_probs")
    >>> for convention in ("renormalized", "dense_student", "tail"):
    ...     print(convention, round(float(topk_kl_divergence(z, a, k_idx, convention=convention, values="log_probs")), 6))
    renormalized 0.127846
    dense_student 0.171748
    tail 0.122263
    >>> round(float(kl_divergence(z, v)), 6)  # the dense KL they approximate
    0.129689
    """
    inputs = (student_logits, teacher_values, teacher_indices)
    return _value("kl_divergence", inputs, T, reduction, (values, convention, mask))


def topk_kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_values: ArrayLike,
    teacher_indices: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    convention: str,
    values: str = "logits",
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Derivative of :func:`topk_kl_divergence` w.r.t. the student logits, the stored values or ``T``.

    Parameters
    ----------
    student_logits, teacher_values, teacher_indices, T, convention, values, mask
        As in :func:`topk_kl_divergence`.
    reduction : {"mean", "sum", "none"}, default "mean"
        The reduction of the loss being differentiated: per-position gradients for ``"none"`` and
        ``"sum"``, divided by the number of kept positions for ``"mean"``; exactly 0 at dropped positions.
    wrt : {"student", "teacher", "temperature"}, default "student"
        ``"student"``: dense, shape (..., V). ``"teacher"``: w.r.t. the k stored values, shape (..., k).
        ``"temperature"``: the loss's shape (not defined for ``"tail"``, whose T is fixed at 1).

    Returns
    -------
    numpy.ndarray
        Dtype rules as :func:`topk_kl_divergence`.

    Notes
    -----
    With :math:`\hat q, p, \hat p, P_K` as in :func:`topk_kl_divergence`, :math:`\mathbb 1_K` the indicator
    of the stored classes and :math:`D = \mathrm{KL}(\hat q\,\|\,\hat p)`:

    .. math::

        \text{renormalized:}\quad \frac{\partial}{\partial z} = \frac{\mathbb 1_K \odot (\hat p - \hat q)}{T},
        \qquad \frac{\partial}{\partial v_K} = \frac{\hat q \odot (\log\hat q - \log\hat p - D)}{T};

    .. math::

        \text{dense\_student:}\quad \frac{\partial}{\partial z} = \frac{p - \hat q}{T}
            \ (\hat q = 0 \text{ outside } K), \qquad
        \frac{\partial}{\partial v_K} = \frac{\hat q \odot (\log\hat q - \log\hat p - D)}{T};

    .. math::

        \text{tail:}\quad \frac{\partial}{\partial z_j} = \begin{cases} p_j - q_j & j \in K \\
            \dfrac{p_j}{p_t}\,(p_t - q_t) & j \notin K \end{cases}, \qquad
        \frac{\partial}{\partial a_i} = q_i\Bigl(\log\frac{q_i}{p_i} - \log\frac{q_t}{p_t}\Bigr).

    The renormalized gradient is 0 outside K: the student's mass there is not constrained. The
    dense_student gradient is the dense KL's, :math:`(p - q)/T`, against the truncated teacher. The tail's
    student gradient moves the unstored classes together, in proportion to the student's own shares; its
    derivative w.r.t. a log-probability includes the tail it implies (:math:`q_t = 1 - \sum_K e^{a}`) and is
    NaN where that tail is empty (one-sided and infinite there). The temperature derivatives are those of
    :func:`kdcore.kl_divergence_grad` for the arrays the loss is built from. Rows of the student gradient sum
    to 0 for all three.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import softmax, topk_kl_divergence_grad
    >>> z, v = np.array([2.0, 1.0, 0.1, -1.0]), np.array([3.0, 0.5])
    >>> K = np.array([0, 2])
    >>> g = topk_kl_divergence_grad(z, v, K, T=2.0, convention="dense_student")
    >>> q = np.zeros(4); q[K] = softmax(v, 2.0)
    >>> bool(np.allclose(g, (softmax(z, 2.0) - q) / 2.0))
    True
    >>> topk_kl_divergence_grad(z, v, K, convention="renormalized")[[1, 3]]  # free outside K
    array([0., 0.])
    """
    inputs = (student_logits, teacher_values, teacher_indices)
    return _derivative("kl_divergence", inputs, T, reduction, wrt, (values, convention, mask))


def topk_kl_divergence_and_grad(
    student_logits: ArrayLike,
    teacher_values: ArrayLike,
    teacher_indices: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    convention: str,
    values: str = "logits",
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`topk_kl_divergence` and its student gradient in one pass: what a training step needs.

    Parameters
    ----------
    student_logits, teacher_values, teacher_indices, T, reduction, convention, values, mask
        As in :func:`topk_kl_divergence`.

    Returns
    -------
    value : numpy.ndarray
        As :func:`topk_kl_divergence`.
    grad : numpy.ndarray, shape (..., V)
        As ``topk_kl_divergence_grad(..., wrt="student")``.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import topk_kl_divergence, topk_kl_divergence_and_grad
    >>> z = np.array([[2.0, 1.0, 0.1], [0.0, 0.5, -0.5]])
    >>> v, K = np.array([[3.0, 0.5], [1.0, 0.0]]), np.array([[0, 1], [2, 0]])
    >>> value, grad = topk_kl_divergence_and_grad(z, v, K, convention="renormalized")
    >>> bool(value == topk_kl_divergence(z, v, K, convention="renormalized")), grad.shape
    (True, (2, 3))
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    topk = check_topk(student_logits, teacher_values, teacher_indices, T, values, convention, mask)
    n, n_classes = topk.student.shape
    if n == 0:
        empty = np.zeros(0, topk.student.dtype)
        return topk.reduce(empty, reduction), topk.reduce_grad(
            np.zeros((0, n_classes), empty.dtype), reduction
        )
    value, grad = _rows(topk, "kl_divergence", "student", with_value=True)
    return topk.reduce(value, reduction), topk.reduce_grad(grad, reduction)


def topk_soft_cross_entropy(
    student_logits: ArrayLike,
    teacher_values: ArrayLike,
    teacher_indices: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    convention: str,
    values: str = "logits",
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Soft cross-entropy to a top-k teacher: :func:`topk_kl_divergence` plus the teacher's entropy.

    Parameters
    ----------
    student_logits, teacher_values, teacher_indices, T, reduction, convention, values, mask
        As in :func:`topk_kl_divergence`.

    Returns
    -------
    numpy.ndarray
        Dtype rules as :func:`topk_kl_divergence`.

    Notes
    -----
    Each convention's cross-entropy is :math:`-\sum_b q_b\log p_b` over the distributions it compares:
    :math:`H(\hat q) + \mathrm{KL}(\hat q\|\hat p)` (renormalized),
    :math:`-\sum_K\hat q_i\log p_i = H(\hat q) + \text{KL}` (dense_student; the form DistillKit's
    loss takes before its entropy term), :math:`H(q_K, q_t) + \text{KL}` (tail). The entropy does not
    depend on the student, so the student gradient is the KL's; it is computed as entropy plus KL, both
    non-negative, so nothing cancels.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import topk_kl_divergence, topk_soft_cross_entropy
    >>> z, v, K = np.array([2.0, 1.0, 0.1]), np.array([1.0, 1.0]), np.array([0, 1])
    >>> ce = topk_soft_cross_entropy(z, v, K, convention="renormalized")
    >>> kl = topk_kl_divergence(z, v, K, convention="renormalized")
    >>> bool(np.isclose(ce - kl, np.log(2)))  # the entropy of the renormalised teacher (1/2, 1/2)
    True
    """
    inputs = (student_logits, teacher_values, teacher_indices)
    return _value("soft_cross_entropy", inputs, T, reduction, (values, convention, mask))


def topk_soft_cross_entropy_grad(
    student_logits: ArrayLike,
    teacher_values: ArrayLike,
    teacher_indices: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    convention: str,
    values: str = "logits",
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Derivative of :func:`topk_soft_cross_entropy` w.r.t. the student logits, the stored values or ``T``.

    Parameters
    ----------
    student_logits, teacher_values, teacher_indices, T, reduction, wrt, convention, values, mask
        As in :func:`topk_kl_divergence_grad`.

    Returns
    -------
    numpy.ndarray
        Shapes and dtype rules as :func:`topk_kl_divergence_grad`.

    Notes
    -----
    The student gradient is the KL's. W.r.t. the stored values the entropy adds
    :math:`-\hat q\odot(\log\hat q + H(\hat q))/T` (renormalized, dense_student) and
    :math:`-q_i(\log q_i - \log q_t)` (tail); w.r.t. T it adds :math:`\operatorname{Var}_{\hat q}(v_K/T)/T`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import topk_kl_divergence_grad, topk_soft_cross_entropy_grad
    >>> z, v, K = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5]), np.array([0, 2])
    >>> ce = topk_soft_cross_entropy_grad(z, v, K, convention="dense_student")
    >>> bool(np.allclose(ce, topk_kl_divergence_grad(z, v, K, convention="dense_student")))
    True
    """
    inputs = (student_logits, teacher_values, teacher_indices)
    return _derivative("soft_cross_entropy", inputs, T, reduction, wrt, (values, convention, mask))
