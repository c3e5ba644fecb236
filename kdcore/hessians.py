r"""Second derivatives w.r.t. the student logits of the divergences that followed Hinton's: skew KL, skew
reverse KL, the generalised JSD, DKD and the top-k teacher losses (the forward and reverse KL's are beside
their values, in ``kdcore.divergences`` and ``kdcore.reverse_kl``).

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`,
:math:`p = \operatorname{softmax}(z/T)`, :math:`q = \operatorname{softmax}(v/T)`, one sample at a time: each
function returns the Hessian of each sample's own loss, shape ``(..., N, N)`` (divide by the number of
kept positions for the Hessian of a mean), 0 at positions ``mask`` drops.

One identity serves the three mixture divergences. By the chain rule through the softmax, with
:math:`J = \operatorname{diag}p - pp^\top` and :math:`u = T\,\partial L/\partial z`,

.. math::

    T^2\,\frac{\partial^2 L}{\partial z\,\partial z^\top}
        = J\,\frac{\partial^2 L}{\partial p\,\partial p^\top}\,J
          + \operatorname{diag}u - u p^\top - p u^\top
        = (I - p\mathbf 1^\top)\operatorname{diag}(y + u)(I - \mathbf 1 p^\top),

whenever the second partials w.r.t. p are diagonal, :math:`y = p^2 \odot \partial^2 L/\partial p^2`
(the second step uses :math:`\sum_i u_i = 0`). For a KL to a mixture they are, and :math:`y` is a product
that nothing cancels in:

=================================  ==========================================  =====================================
loss                               mixture                                     :math:`y`
=================================  ==========================================  =====================================
skew KL, KL(q ‖ m)                 :math:`m = \alpha q + (1-\alpha)p`          :math:`(1-\alpha)^2\,p^2 q/m^2`
skew reverse KL, KL(p ‖ m)         :math:`m = \alpha p + (1-\alpha)q`          :math:`(1-\alpha)^2\,p\,q^2/m^2`
JSD_β                              :math:`M = \beta q + (1-\beta)p`            :math:`\beta(1-\beta)\,p\,q/M`
=================================  ==========================================  =====================================

(The skew reverse KL's second partial is :math:`1/p - \alpha/m - \alpha(1-\alpha)q/m^2`; times
:math:`p^2` it simplifies to the product above. The JSD's is the sum of β times the skew KL's at α = β and
1 − β times the skew reverse KL's at α = 1 − β.) At α = 0 the first two are the forward and reverse KL's
Hessians. The row and column of the most probable class come from the null space, :math:`H\mathbf 1 = 0`
(``_mixture.softmax_sandwich``): formed directly, a dominant class's entries would be differences of
numbers near 1.

Checked against finite differences of the gradients (tests/test_mixtures.py, tests/test_decoupled.py), the
oracle's closed forms at 50 digits, themselves checked against ``mpmath.diff`` of its gradients
(tests/test_oracle_family.py), and Hessian-vector products of PyTorch autograd
(tests/test_torch_family.py).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._topk import check_topk, gather, tail_buckets
from .decoupled import dkd_weights
from .decoupled import evaluate as decoupled_evaluate
from .divergences import _kl_hessian
from .mixtures import evaluate as mixture_evaluate
from .softmax import log_softmax

__all__ = [
    "decoupled_kd_loss_hessian",
    "jensen_shannon_divergence_hessian",
    "skew_kl_divergence_hessian",
    "skew_reverse_kl_divergence_hessian",
    "topk_kl_divergence_hessian",
]


def skew_kl_divergence_hessian(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    skew: float = 0.1,
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Per-sample Hessian of :func:`kdcore.skew_kl_divergence` w.r.t. the student logits.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape.
    T : float, default 1.0
        Temperature, finite and positive.
    skew : float, default 0.1
        α in [0, 1], the teacher's share of the mixture.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True), as in :func:`kdcore.skew_kl_divergence`; 0 at the others.

    Returns
    -------
    numpy.ndarray, shape (..., N, N)
        Symmetric, rows summing to 0; dtype of the logits (float32 stays float32). α = 0 gives
        :func:`kdcore.kl_divergence_hessian`, whose matrix is positive semi-definite; this one need not be.

    Notes
    -----
    :math:`T^2 H = (I - p\mathbf 1^\top)\operatorname{diag}(y + u)(I - \mathbf 1 p^\top)` with
    :math:`y = (1-\alpha)^2 p^2 q/m^2` and :math:`u = T\,\partial\,\mathrm{SKL}/\partial z` (module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import skew_kl_divergence_hessian, kl_divergence_hessian
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> h = skew_kl_divergence_hessian(z, v, T=2.0, skew=0.1)
    >>> bool(np.allclose(h, h.T)), bool(np.allclose(h.sum(axis=-1), 0))
    (True, True)
    >>> bool(np.allclose(skew_kl_divergence_hessian(z, v, skew=0.0), kl_divergence_hessian(z, v)))
    True
    """
    return _mixture("skew_kl", student_logits, teacher_logits, T, skew, "skew", mask)


def skew_reverse_kl_divergence_hessian(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    skew: float = 0.1,
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Per-sample Hessian of :func:`kdcore.skew_reverse_kl_divergence` w.r.t. the student logits.

    Arguments as :func:`skew_kl_divergence_hessian` (``skew`` is here the *student's* share of the mixture);
    the same shape, symmetry, null space and dtype. The closed form has
    :math:`y = (1-\alpha)^2\,p\,q^2/m^2`, :math:`m = \alpha p + (1-\alpha)q`; at α = 0 it is
    :func:`kdcore.reverse_kl_divergence_hessian`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import skew_reverse_kl_divergence_hessian, reverse_kl_divergence_hessian
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> bool(np.allclose(skew_reverse_kl_divergence_hessian(z, v, 2.0, 0.0), reverse_kl_divergence_hessian(z, v, 2.0)))
    True
    """
    return _mixture("skew_reverse_kl", student_logits, teacher_logits, T, skew, "skew", mask)


def jensen_shannon_divergence_hessian(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    beta: float = 0.5,
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Per-sample Hessian of :func:`kdcore.jensen_shannon_divergence` w.r.t. the student logits.

    Arguments as :func:`skew_kl_divergence_hessian`, with ``beta`` (β in [0, 1], the teacher's weight)
    in place of ``skew``. :math:`y = \beta(1-\beta)\,pq/M`, :math:`M = \beta q + (1-\beta)p`; the matrix
    vanishes at β = 0 and β = 1, where the divergence is identically 0.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import jensen_shannon_divergence_hessian
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> h = jensen_shannon_divergence_hessian(z, v, beta=0.5)
    >>> bool(np.allclose(h, h.T)), bool(np.allclose(h @ np.ones(3), 0))
    (True, True)
    """
    return _mixture("jsd", student_logits, teacher_logits, T, beta, "beta", mask)


def _mixture(kind, student_logits, teacher_logits, T, weight, weight_name, mask) -> np.ndarray:
    (hessian,) = mixture_evaluate(
        kind, student_logits, teacher_logits, T, weight, weight_name, "none", ("hessian",), mask
    )
    return hessian


def decoupled_kd_loss_hessian(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    labels: ArrayLike,
    T: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Per-sample Hessian of :func:`kdcore.decoupled_kd_loss`, :math:`T^2(\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD})`.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits, class axis last, same shape.
    labels : array_like of int, shape (...)
        Target classes; a position labelled ``ignore_index`` is dropped (0 in the result).
    T, alpha, beta : float
        As in :func:`kdcore.decoupled_kd_loss` (defaults 4, 1 and 8: mdistiller's CIFAR-100 setting).
    mask : array_like of bool, shape (...), optional
        Positions to keep (True).
    ignore_index : int, default -100
        The label of a dropped position.

    Returns
    -------
    numpy.ndarray, shape (..., N, N)
        Symmetric, rows summing to 0, dtype of the logits.

    Notes
    -----
    With :math:`\hat p` the student's non-target distribution (0 at t),
    :math:`J = \operatorname{diag}\hat p - \hat p\hat p^\top`, :math:`w = e_t - \hat p` and
    :math:`d = p_t - q_t`:

    .. math::

        \frac{\partial^2 L}{\partial z\,\partial z^\top} = \alpha\,\bigl(p_t\bar p\,w w^\top - d\,J\bigr) + \beta\,J.

    The target logit :math:`\lambda = z_t/T - \log\sum_{i\ne t} e^{z_i/T}` has gradient :math:`w/T` and
    Hessian :math:`-J/T^2`; TCKD is a binary KL in it (second derivative :math:`p_t\bar p`, formed as
    :math:`\exp(\log p_t + \log\bar p)`), NCKD the forward KL of :math:`\hat p` (Hessian :math:`J/T^2`), and
    the loss's :math:`T^2` cancels the :math:`1/T^2` (``kdcore/_decoupled.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import decoupled_kd_loss_hessian
    >>> h = decoupled_kd_loss_hessian([2.0, 1.0, 0.1], [3.0, 0.5, 0.2], 0, T=4.0)
    >>> bool(np.allclose(h, h.T)), bool(np.allclose(h.sum(axis=-1), 0))
    (True, True)
    """
    weights = dkd_weights(alpha, beta)
    (hessian,) = decoupled_evaluate(
        student_logits, teacher_logits, labels, T, "none", ("hessian",), weights, True, mask, ignore_index
    )
    return hessian


def topk_kl_divergence_hessian(
    student_logits: ArrayLike,
    teacher_values: ArrayLike,
    teacher_indices: ArrayLike,
    T: float = 1.0,
    *,
    convention: str,
    values: str = "logits",
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Per-position Hessian of :func:`kdcore.topk_kl_divergence` w.r.t. the (dense) student logits.

    Parameters
    ----------
    student_logits : array_like, shape (..., V)
        Dense student logits :math:`z`, class axis last.
    teacher_values, teacher_indices : array_like, shape (..., k)
        The top-k teacher, as in :func:`kdcore.topk_kl_divergence`.
    T : float, default 1.0
        Temperature, finite and positive (1 for ``"tail"``).
    convention : {"renormalized", "dense_student", "tail"}
        As in :func:`kdcore.topk_kl_divergence`.
    values : {"logits", "log_probs"}, default "logits"
        What ``teacher_values`` hold.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0.

    Returns
    -------
    numpy.ndarray, shape (..., V, V)
        The Hessian of each position's own loss (``reduction="none"``; divide by the number of kept
        positions for that of the mean), symmetric, rows summing to 0, dtype of the inputs (float32 stays
        float32). The teacher's entropy does not depend on the student: the same matrix is the Hessian of
        :func:`kdcore.topk_soft_cross_entropy`.

    Notes
    -----
    With :math:`J(s) = \operatorname{diag}s - ss^\top` the softmax Jacobian, :math:`p = \operatorname{softmax}(z/T)`,
    :math:`\hat p = \operatorname{softmax}_K(z/T)` (0 outside K):

    .. math::

        \text{renormalized:}\quad H = \frac{J(\hat p)}{T^2}, \qquad
        \text{dense\_student:}\quad H = \frac{J(p)}{T^2},

    the dense KL's Hessians of the arrays each loss is built from: neither depends on the teacher, and the
    renormalized one is 0 outside the K × K block. The tail (T = 1) is
    :math:`-\sum_K q_i\log p_i - q_t\log p_t` plus a constant, with :math:`\log p_i = z_i - \log\sum e^z`
    and :math:`\log p_t = \log\sum_{j\notin K} e^{z_j} - \log\sum e^z`; each log-sum-exp has Hessian
    the Jacobian of its softmax, and :math:`\sum_K q_i + q_t = 1`, so

    .. math::

        \text{tail:}\quad H = J(p) - q_t\,J(\bar p), \qquad \bar p_j = \frac{p_j}{p_t}\ (j \notin K),\ 0 \text{ on } K .

    It is not positive semi-definite in general (the tail term is concave in z). On the K rows it is
    :math:`J(p)`'s; the unstored block :math:`p_t\operatorname{diag}\bar p - p_t^2\bar p\bar p^\top
    - q_t J(\bar p)` is evaluated as

    .. math::

        (p_t - q_t)\,J(\bar p) + p_t P_K\,\bar p\bar p^\top, \qquad P_K = \textstyle\sum_{i\in K} p_i,

    (using :math:`p_t^2 - q_t = (p_t - q_t) - p_t P_K`), because the direct form subtracts numbers of size
    :math:`\bar p_i\bar p_j` to leave :math:`(1 - q_t)`-sized entries when the tail holds nearly all the
    mass; :math:`p_t - q_t` is the exact bucket difference the gradient uses. Diagonals
    :math:`s_i(1 - s_i)` are formed as :math:`-s_i\operatorname{expm1}(\log s_i)`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import topk_kl_divergence_hessian, topk_teacher
    >>> z, v = np.array([2.0, 1.0, 0.1, -1.0]), np.array([3.0, 0.5, 0.2, 0.0])
    >>> a, K = topk_teacher(v, 2, values="log_probs")
    >>> h = topk_kl_divergence_hessian(z, a, K, convention="tail", values="log_probs")
    >>> bool(np.allclose(h, h.T)), bool(np.allclose(h.sum(axis=-1), 0))
    (True, True)
    >>> topk_kl_divergence_hessian(z, a, K, convention="renormalized", values="log_probs")[2:, :]
    array([[0., 0., 0., 0.],
           [0., 0., 0., 0.]])
    """
    topk = check_topk(student_logits, teacher_values, teacher_indices, T, values, convention, mask)
    n, n_classes = topk.student.shape
    if n == 0:
        rows = np.zeros((0, n_classes, n_classes), topk.student.dtype)
    else:
        rows = _topk_hessian_rows(topk)
    return topk.kept.spread(topk._public(rows))


def _topk_hessian_rows(topk) -> np.ndarray:
    """(n, V, V) Hessians of the kept rows (notation of :func:`topk_kl_divergence_hessian`)."""
    student, values, indices = topk.student, topk.values, topk.indices
    n, n_classes = student.shape
    k = values.shape[-1]
    convention = "renormalized" if k == n_classes else topk.convention
    if convention == "dense_student":
        dense_teacher = np.full_like(student, -np.inf)
        np.put_along_axis(dense_teacher, indices, values, axis=-1)
        return _kl_hessian(student, dense_teacher, topk.T)
    if convention == "renormalized":
        hessian = np.zeros((n, n_classes, n_classes), student.dtype)
        rows = np.arange(n)[:, None, None]
        hessian[rows, indices[:, :, None], indices[:, None, :]] = _kl_hessian(
            gather(student, indices), values, topk.T
        )
        return hessian
    return _tail_hessian_rows(topk)


def _tail_hessian_rows(topk) -> np.ndarray:
    student = topk.student
    tail = tail_buckets(topk)
    log_p = log_softmax(student)
    p = np.exp(log_p)
    complement = tail.complement
    stored_mass = np.sum(np.where(complement, 0, p), axis=-1)  # P_K, a sum of positive terms
    tail_mass = np.sum(np.where(complement, p, 0), axis=-1)  # p_t, likewise (never 1 − P_K)
    difference = tail.match.probs_diff()[:, -1]  # p_t − q_t, exact when they are close
    # log p̄ = log_softmax over the unstored classes. Not z − λ: for a class holding nearly all of the tail,
    # 1 − p̄_j (in the diagonal) would keep only the digits z_j − λ has left after λ's rounding (eps·|λ|).
    # A NaN row stays NaN through p; a masked tail (λ = −inf) has no shares.
    has_tail = np.isfinite(tail.student_tail)
    log_share = np.full_like(student, -np.inf)
    if has_tail.any():
        log_share[has_tail] = log_softmax(np.where(complement, student, -np.inf)[has_tail])
    share = np.exp(log_share)  # p̄_j = p_j / p_t outside K
    outer = share[:, :, None] * share[:, None, :]
    both = complement[:, :, None] & complement[:, None, :]
    weight = (tail_mass * stored_mass - difference)[:, None, None]  # q_t − p_t², from accurate parts
    hessian = np.where(both, weight * outer, -(p[:, :, None] * p[:, None, :]))
    with np.errstate(invalid="ignore"):
        diagonal = np.where(
            complement,
            difference[:, None] * share * -np.expm1(log_share)
            + (tail_mass * stored_mass)[:, None] * share**2,
            p * -np.expm1(log_p),
        )
    index = np.arange(student.shape[-1])
    hessian[:, index, index] = diagonal
    return hessian
