r"""Soft losses between a student and a teacher: soft cross-entropy and KL divergence, with derivatives.

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`,
student probabilities :math:`p = \operatorname{softmax}(z/T)`, teacher probabilities
:math:`q = \operatorname{softmax}(v/T)`. Both losses compare the teacher's distribution with the student's:

.. math::

    L_\text{soft}(z, v) = -\sum_i q_i \log p_i, \qquad
    \mathrm{KL}(q\,\|\,p) = \sum_i q_i(\log q_i - \log p_i) = L_\text{soft} - H(q).

They differ by the teacher's entropy :math:`H(q)`, which does not depend on the student, so their
gradients w.r.t. the student are identical:

.. math::

    \frac{\partial L_\text{soft}}{\partial z_i} = \frac{\partial \mathrm{KL}}{\partial z_i} = \frac{p_i - q_i}{T}.

(Hinton et al. (2015) call the *student's* probabilities :math:`q` and the teacher's :math:`p`, and so write
:math:`(q_i - p_i)/T`: the same result. kdcore's names are ``student_probs`` and ``teacher_probs``.)

Every function takes logits (never probabilities) with the class axis last; every leading axis is a
sample axis. ``reduction="mean"`` averages over samples (PyTorch's ``"batchmean"``), never over classes.
The numerical method — within the 1e-12 relative contract of the 50-digit oracle in every regime, even
when KL is 1e-25 (docs/accuracy.md gives the measured worst) — is explained in ``kdcore/_match.py``.

The losses that followed Hinton's keep this signature,
``name(student_logits, teacher_logits, T=1.0, reduction="mean")`` and ``name_grad(..., wrt=...)``, in
modules of their own: ``kdcore.reverse_kl``, ``kdcore.mixtures`` (skew KL, generalised Jensen–Shannon),
``kdcore.decoupled`` (DKD) and ``kdcore.standardize`` (logit standardisation).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import REDUCTIONS, Kept, as_logit_pair, check_choice, check_temperature, select
from ._chunks import map_rows
from ._fast import soft_rows
from ._match import Match, match
from .softmax import log_softmax

__all__ = [
    "kl_divergence",
    "kl_divergence_and_grad",
    "kl_divergence_grad",
    "kl_divergence_hessian",
    "soft_cross_entropy",
    "soft_cross_entropy_and_grad",
    "soft_cross_entropy_grad",
]

WRT = ("student", "teacher", "temperature")


def check_wants(reduction: object, wants: tuple) -> None:
    """``reduction`` and each derivative asked for (None is the value, "hessian" the student Hessian)."""
    check_choice(reduction, "reduction", REDUCTIONS)
    for wrt in wants:
        if wrt not in (None, "hessian"):
            check_choice(wrt, "wrt", WRT)


def careful_rows(student: np.ndarray, teacher: np.ndarray, T: float, *functions) -> tuple[np.ndarray, ...]:
    """``function(match)`` for every function and every sample of checked (kept) rows, in one pass over row
    chunks (see ``_chunks``): the careful algorithm for every row. Used for the teacher and temperature
    derivatives, which the fast kernel does not serve, and for the reverse KL (the roles exchanged)."""
    return map_rows(lambda z, v: tuple(function(match(z, v, T)) for function in functions), student, teacher)


def checked_rows(
    student_logits, teacher_logits, T, reduction, mask, labels=None, ignore_index=-100
) -> tuple[float, Kept, np.ndarray, np.ndarray, np.ndarray | None]:
    """The checks every soft loss starts with; the student and teacher rows at the kept positions, and their
    labels (None for a loss without labels; positions labelled ``ignore_index`` are dropped)."""
    check_choice(reduction, "reduction", REDUCTIONS)
    T = check_temperature(T)
    pair = as_logit_pair(student_logits, teacher_logits)
    kept, (student, teacher), labels = select(mask, pair, labels, ignore_index)
    return T, kept, student, teacher, labels


def grad_scale(shape: tuple[int, ...], reduction: str, factor: float) -> float:
    """``factor`` times 1/(number of samples) for ``reduction="mean"``: folded into the kernel's output, so
    the gradient is written once (a division afterwards would allocate a second gradient-sized array)."""
    if reduction != "mean":
        return factor
    return factor / max(math.prod(shape[:-1]), 1)  # math.prod: 0.4 µs against np.prod's 4.5 on a tuple


def _soft(name: str, student_logits, teacher_logits, T, reduction, mask, *, value: bool, grad: bool):
    """The soft loss ``name`` per sample (reduced) and/or its student gradient, through the fast kernel."""
    T, kept, student, teacher, _ = checked_rows(student_logits, teacher_logits, T, reduction, mask)
    scale = grad_scale(student.shape, reduction, 1.0 / T) if grad else None
    values, gradient = soft_rows(student, teacher, T, value=name if value else None, grad_scale=scale)
    return (kept.reduce(values, reduction) if value else None), (kept.spread(gradient) if grad else None)


def soft_cross_entropy(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Soft cross-entropy :math:`-\sum_i q_i \log p_i` of the student's tempered softmax against the teacher's.

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
        float32 for float32 input, float64 for float64, integer or list input; float16 gives float32.

    Notes
    -----
    .. math::

        L_\text{soft} = -\sum_i q_i \log p_i = H(q) + \mathrm{KL}(q\,\|\,p), \qquad
        \frac{\partial L_\text{soft}}{\partial z} = \frac{p - q}{T}.

    It is computed as :math:`H(q) + \mathrm{KL}` — both non-negative, so the sum is accurate — with KL from
    the cancellation-free formula of :func:`kl_divergence`. A class masked in both inputs contributes
    nothing; a class the student masks while the teacher gives it mass makes the loss ``+inf``.
    Hinton et al. multiply this loss by :math:`T^2` when mixing it with the hard-label loss
    (:func:`kdcore.distillation_loss`).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import soft_cross_entropy, kl_divergence
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> round(float(soft_cross_entropy(z, v, T=2.0)), 6)
    0.936023
    >>> # the two soft losses differ by the teacher's entropy only
    >>> q = np.exp(v / 2) / np.exp(v / 2).sum()
    >>> h = -(q * np.log(q)).sum()
    >>> bool(np.isclose(soft_cross_entropy(z, v, 2.0) - kl_divergence(z, v, 2.0), h))
    True
    """
    value, _ = _soft(
        "soft_cross_entropy", student_logits, teacher_logits, T, reduction, mask, value=True, grad=False
    )
    return value


def kl_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""KL divergence :math:`\mathrm{KL}(q\,\|\,p)` from the teacher's tempered softmax to the student's.

    The direction is KL(teacher ‖ student) — the teacher's distribution weights the log-ratio — which is
    what ``torch.nn.functional.kl_div(log_softmax(z/T), softmax(v/T), reduction="batchmean")`` computes.

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
        Non-negative; exactly 0 for identical inputs. Dtype rules as :func:`soft_cross_entropy`.

    Notes
    -----
    .. math::

        \mathrm{KL}(q\,\|\,p) = \sum_i q_i(\log q_i - \log p_i)
            = \operatorname{log1p}\Bigl(\sum_i q_i\,(e^{f_i} - 1 - f_i)\Bigr),
        \qquad f = \frac{z - v}{T} - \sum_j q_j \frac{z_j - v_j}{T}.

    The second form follows from :math:`\log p_i - \log q_i = f_i - \mathrm{KL}` and
    :math:`\sum_i q_i f_i = 0`; every term of its sum is non-negative and computed to full precision, so
    the result keeps ~15 significant digits even when KL is 1e-25 (student ≈ teacher) or the temperature
    is 1e9, where ``sum(q * (log q - log p))`` returns rounding noise. For small :math:`f`,
    :math:`\mathrm{KL} \approx \tfrac12 \operatorname{Var}_q(f)`, and at high temperature
    :math:`T^2\,\mathrm{KL} \to \tfrac1{2N}\sum_i \bigl((z_i-\bar z)-(v_i-\bar v)\bigr)^2`
    (:func:`kdcore.logit_mse`), with an :math:`O(1/T)` error.

    Masks: a class masked (``-inf``) in both inputs contributes nothing; where only the teacher masks a
    class, it simply has :math:`q_i = 0`; where the student masks a class the teacher gives mass,
    KL is ``+inf`` (the student declares impossible what the teacher expects). A sample with NaN or
    ``+inf`` logits gives NaN, and only that sample.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import kl_divergence
    >>> z = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]])
    >>> v = np.array([[3.0, 0.5, 0.2], [0.0, 0.0, 0.0]])
    >>> kl_divergence(z, v, T=2.0, reduction="none").round(6)
    array([0.049943, 0.      ])
    >>> print(f"{kl_divergence([0.0, 1.0], [0.0, 1.0 + 1e-12]):.12e}")  # naive formulas give noise here
    9.832344631301e-26
    """
    value, _ = _soft("kl", student_logits, teacher_logits, T, reduction, mask, value=True, grad=False)
    return value


def _soft_derivative(m: Match, name: str, wrt: str) -> np.ndarray:
    """One sample's derivative of the soft loss ``name`` w.r.t. the teacher or T (no reduction)."""
    if wrt == "teacher":
        grad = m.kl_teacher_grad()
        return grad + m.entropy_teacher_grad() if name == "soft_cross_entropy" else grad
    grad = m.kl_temperature_grad()
    if name == "soft_cross_entropy":
        grad = grad + m.entropy_temperature_grad()
    return grad[..., 0]


def _soft_grad(name: str, student_logits, teacher_logits, T, reduction, wrt, mask) -> np.ndarray:
    check_choice(reduction, "reduction", REDUCTIONS)
    check_choice(wrt, "wrt", WRT)
    if wrt == "student":
        kind = "kl" if name == "kl_divergence" else name
        _, grad = _soft(kind, student_logits, teacher_logits, T, reduction, mask, value=False, grad=True)
        return grad
    T, kept, student, teacher, _ = checked_rows(student_logits, teacher_logits, T, reduction, mask)
    (grad,) = careful_rows(student, teacher, T, lambda m: _soft_derivative(m, name, wrt))
    return kept.reduce(grad, reduction) if wrt == "temperature" else kept.reduce_grad(grad, reduction)


def soft_cross_entropy_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Derivative of :func:`soft_cross_entropy` w.r.t. the student logits, the teacher logits or ``T``.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        As in :func:`soft_cross_entropy`.
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
        Dtype rules as :func:`soft_cross_entropy`.

    Notes
    -----
    With :math:`H = H(q)` and :math:`f` as in :func:`kl_divergence`:

    .. math::

        \frac{\partial L_\text{soft}}{\partial z} = \frac{p - q}{T}, \qquad
        \frac{\partial L_\text{soft}}{\partial v} = -\frac{q \odot (\log q + H + f)}{T}
            = -\frac{q \odot (\log p + L_\text{soft})}{T}, \qquad
        \frac{\partial L_\text{soft}}{\partial T} = \frac{\operatorname{Var}_q(v/T)}{T}
            + \frac{\partial\,\mathrm{KL}}{\partial T}.

    Hinton et al. write the first as :math:`(q_i - p_i)/T` with *their* :math:`q` the student's: the same.
    :math:`p - q` is evaluated as :math:`q \odot \operatorname{expm1}(f - \mathrm{KL})`, which keeps
    full relative precision when the student is close to the teacher. Rows of the student and teacher
    gradients sum to 0 (a common shift of the logits changes nothing).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import soft_cross_entropy_grad, softmax
    >>> z, v, T = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2]), 2.0
    >>> g = soft_cross_entropy_grad(z, v, T)
    >>> bool(np.allclose(g, (softmax(z, T) - softmax(v, T)) / T))
    True
    >>> float(soft_cross_entropy_grad(z, v, T, wrt="temperature")) > 0  # softer targets, higher entropy
    True
    """
    return _soft_grad("soft_cross_entropy", student_logits, teacher_logits, T, reduction, wrt, mask)


def kl_divergence_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    wrt: str = "student",
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    r"""Derivative of :func:`kl_divergence` w.r.t. the student logits, the teacher logits or ``T``.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        As in :func:`kl_divergence`.
    T : float, default 1.0
        Temperature, finite and positive.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`soft_cross_entropy_grad`.
    wrt : {"student", "teacher", "temperature"}, default "student"
        The variable to differentiate with respect to.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray
        Shape of the logits (student, teacher) or of the loss (temperature); dtype rules as
        :func:`kl_divergence`.

    Notes
    -----
    With :math:`f = (z - v)/T - \sum_j q_j (z_j - v_j)/T` and :math:`D = p - q`:

    .. math::

        \frac{\partial\,\mathrm{KL}}{\partial z} = \frac{p - q}{T}, \qquad
        \frac{\partial\,\mathrm{KL}}{\partial v} = -\frac{q \odot f}{T}
            = \frac{q \odot (\log q - \log p - \mathrm{KL})}{T},

    .. math::

        \frac{\partial\,\mathrm{KL}}{\partial T} = -\frac{1}{T}\Bigl[\sum_i D_i f_i
            + \sum_i (D_i - q_i f_i)\,\bigl(\log q_i + H(q)\bigr)\Bigr].

    At high temperature :math:`T^2\,\partial\mathrm{KL}/\partial z \to ((z - \bar z) - (v - \bar v))/N`
    with an :math:`O(1/T)` error; the paper's :math:`(z - v)/(N T^2)` for :math:`\partial\mathrm{KL}/\partial z`
    is the special case of zero-mean logits. Where KL is ``+inf`` (the student masks a class the teacher
    gives mass) the student gradient is still :math:`(p - q)/T`; the teacher and temperature derivatives
    are NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import kl_divergence_grad
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> g = kl_divergence_grad(z, v, T=1e4)
    >>> limit = ((z - z.mean()) - (v - v.mean())) / 3
    >>> bool(np.allclose(1e4**2 * g, limit, rtol=1e-3))  # the high-temperature limit
    True
    >>> float(np.abs(kl_divergence_grad(z, v, wrt="teacher").sum())) < 1e-15  # rows sum to zero
    True
    """
    return _soft_grad("kl_divergence", student_logits, teacher_logits, T, reduction, wrt, mask)


def kl_divergence_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`kl_divergence` and its gradient w.r.t. the student logits in one pass: what a training step needs.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. ``-inf`` masks a class.
    T : float, default 1.0
        Temperature applied to both, finite and positive.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`kl_divergence`; the gradient is that of the reduced loss (each sample's own for
        ``"none"`` and ``"sum"``, divided by the number of samples for ``"mean"``).
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    loss : numpy.ndarray
        As :func:`kl_divergence` returns it: shape ``(...)`` for ``"none"``, a scalar otherwise.
    grad : numpy.ndarray, shape (..., N)
        As ``kl_divergence_grad(..., wrt="student")`` returns it. Rows sum to 0.
        Both are float32 for float32 input, float64 for float64, integer or list input.

    Notes
    -----
    .. math::

        \mathrm{KL}(q\,\|\,p) = \operatorname{log1p}\Bigl(\sum_i q_i \operatorname{expm1}(f_i)\Bigr) - \sum_i q_i f_i,
        \qquad \frac{\partial\,\mathrm{KL}}{\partial z} = \frac{p - q}{T}
            = \frac{q \odot \operatorname{expm1}(f - \mathrm{KL})}{T},

    with :math:`f = (z - v)/T - c` for any constant :math:`c`. Both come from the same few passes over the
    data (the teacher's softmax, one ``expm1``), so asking for both costs little more than either; rows the
    fast kernel cannot certify to the accuracy contract are recomputed by the careful algorithm
    (docs/math.md, "The fast path and its certificate").

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import kl_divergence, kl_divergence_and_grad, kl_divergence_grad
    >>> z, v = np.array([[2.0, 1.0, 0.1]]), np.array([[3.0, 0.5, 0.2]])
    >>> loss, grad = kl_divergence_and_grad(z, v, T=2.0)
    >>> round(float(loss), 6)
    0.049943
    >>> bool(np.array_equal(grad, kl_divergence_grad(z, v, 2.0))), float(abs(grad.sum())) < 1e-16
    (True, True)
    """
    value, grad = _soft("kl", student_logits, teacher_logits, T, reduction, mask, value=True, grad=True)
    return value, grad


def soft_cross_entropy_and_grad(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    T: float = 1.0,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`soft_cross_entropy` and its gradient w.r.t. the student logits in one pass.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. ``-inf`` masks a class.
    T : float, default 1.0
        Temperature applied to both, finite and positive.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`soft_cross_entropy`; the gradient is that of the reduced loss.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    loss : numpy.ndarray
        As :func:`soft_cross_entropy` returns it.
    grad : numpy.ndarray, shape (..., N)
        As ``soft_cross_entropy_grad(..., wrt="student")`` returns it. Dtype rules as
        :func:`soft_cross_entropy`.

    Notes
    -----
    .. math::

        L_\text{soft} = H(q) + \mathrm{KL}(q\,\|\,p), \qquad
        H(q) = \log\sum_j e^{(v_j - m)/T} - \sum_i q_i \frac{v_i - m}{T}, \qquad
        \frac{\partial L_\text{soft}}{\partial z} = \frac{p - q}{T},

    with :math:`m = \max_j v_j` (both terms of :math:`H` are non-negative, so nothing cancels). The
    gradient is the KL's: the two losses differ by :math:`H(q)`, a constant for the student.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import soft_cross_entropy, soft_cross_entropy_and_grad, softmax
    >>> z, v = np.array([2.0, 1.0, 0.1]), np.array([3.0, 0.5, 0.2])
    >>> loss, grad = soft_cross_entropy_and_grad(z, v, T=2.0)
    >>> bool(np.isclose(loss, soft_cross_entropy(z, v, 2.0)))
    True
    >>> bool(np.allclose(grad, (softmax(z, 2.0) - softmax(v, 2.0)) / 2.0))
    True
    """
    value, grad = _soft(
        "soft_cross_entropy", student_logits, teacher_logits, T, reduction, mask, value=True, grad=True
    )
    return value, grad


def kl_divergence_hessian(
    student_logits: ArrayLike, teacher_logits: ArrayLike, T: float = 1.0, *, mask: ArrayLike | None = None
) -> np.ndarray:
    r"""Per-sample Hessian of :func:`kl_divergence` w.r.t. the student logits, :math:`(\operatorname{diag} p - p p^\top)/T^2`.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (..., N)
        As in :func:`kl_divergence` (the Hessian does not depend on the teacher, which is checked for shape).
    T : float, default 1.0
        Temperature, finite and positive.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).

    Returns
    -------
    numpy.ndarray, shape (..., N, N)
        One symmetric, positive semi-definite matrix per sample, with the all-ones vector in its null
        space. It is the Hessian of each sample's own loss (``reduction="none"``); divide by the number of
        samples for the Hessian of the mean. The same matrix is the Hessian of the soft cross-entropy.

    Notes
    -----
    Differentiating :math:`(p - q)/T` once more, with :math:`\partial p_i/\partial z_j = (p_i\delta_{ij} - p_i p_j)/T`:

    .. math::

        \frac{\partial^2 \mathrm{KL}}{\partial z_i\,\partial z_j} = \frac{p_i\delta_{ij} - p_i p_j}{T^2}
        = \frac{1}{T^2}\,\bigl[\operatorname{softmax\_jacobian}(p)\bigr]_{ij}.

    The diagonal :math:`p_i(1 - p_i)` is computed as :math:`-p_i\operatorname{expm1}(\log p_i)`: for a
    dominant class, :math:`1 - p_i` formed from a rounded :math:`p_i` keeps only a few digits.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import kl_divergence_hessian
    >>> h = kl_divergence_hessian([0.0, 0.0], [1.0, -1.0], T=2.0)
    >>> h
    array([[ 0.0625, -0.0625],
           [-0.0625,  0.0625]])
    >>> bool(np.allclose(h @ np.ones(2), 0))
    True
    """
    T, kept, student, teacher, _ = checked_rows(student_logits, teacher_logits, T, "none", mask)
    return kept.spread(_kl_hessian(student, teacher, T))


def _kl_hessian(student: np.ndarray, teacher: np.ndarray, T: float) -> np.ndarray:
    student_log_probs = log_softmax(student, T)
    student_probs = np.exp(student_log_probs)
    hessian = -(student_probs[..., :, None] * student_probs[..., None, :])
    # The diagonal p_i(1 − p_i): for a dominant class 1 − p_i cancels (1 − 0.9999999999993 keeps 4 digits),
    # so it is computed as −expm1(log p_i) from the accurate log-probability instead.
    diagonal = student_probs * -np.expm1(student_log_probs)
    index = np.arange(student.shape[-1])
    hessian[..., index, index] = diagonal
    hessian /= student.dtype.type(T * T)
    # The loss (and so its Hessian) is undefined for a sample whose teacher has no softmax.
    teacher_undefined = ~np.isfinite(np.max(teacher, axis=-1))
    return np.where(teacher_undefined[..., None, None], np.nan, hessian)
