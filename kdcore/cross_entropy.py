r"""The hard-label loss: cross-entropy of the student's (untempered) softmax against integer labels.

.. math::

    \mathrm{CE}(z, y) = -\log \operatorname{softmax}(z)_y, \qquad
    \frac{\partial\,\mathrm{CE}}{\partial z} = \operatorname{softmax}(z) - e_y .

In distillation this is the "hard" term, always at :math:`T = 1`: the temperature softens the teacher's
targets, not the ground truth (applying ``T`` here is a known bug, ``temperature-on-hard-loss``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import REDUCTIONS, Kept, as_logits, check_choice, select
from ._numerics import take_along_last
from .softmax import log_softmax

__all__ = ["cross_entropy", "cross_entropy_and_grad", "cross_entropy_grad"]


def _label_log_probs(
    logits: ArrayLike, labels: ArrayLike, reduction: str, mask, ignore_index
) -> tuple[Kept, np.ndarray, np.ndarray, np.ndarray]:
    """The kept positions, and the log-softmax, labels and label log-probabilities of their rows."""
    check_choice(reduction, "reduction", REDUCTIONS)
    kept, (array,), indices = select(mask, (as_logits(logits, "logits"),), labels, ignore_index)
    log_probs = log_softmax(array)
    return kept, log_probs, indices, take_along_last(log_probs, indices)


def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Cross-entropy with integer labels, :math:`-\log\operatorname{softmax}(z)_y`, at temperature 1.

    Parameters
    ----------
    logits : array_like, shape (..., N)
        Student logits :math:`z`, class axis last.
    labels : array_like of int, shape (...)
        One class index in ``[0, N)`` per sample.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"``: one value per sample; ``"sum"``; ``"mean"``: the mean over samples.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Returns
    -------
    numpy.ndarray
        float32 for float32 logits, float64 for float64, integer or list logits; float16 gives float32.

    Notes
    -----
    Computed from the accurate :func:`kdcore.log_softmax`, so a confidently right prediction gives a
    small positive loss (``-log1p(-1e-20)``), not 0, and a confidently wrong one a large finite loss, not
    ``inf``. A label on a masked (``-inf``) class gives ``+inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import cross_entropy
    >>> z = np.array([[2.0, 0.5, -1.0], [0.0, 3.0, 0.0]])
    >>> cross_entropy(z, [0, 2], reduction="none").round(6)
    array([0.241311, 3.094923])
    >>> float(cross_entropy([1000.0, 0.0], 1))  # no overflow
    1000.0
    """
    kept, _, _, label_log_probs = _label_log_probs(logits, labels, reduction, mask, ignore_index)
    return kept.reduce(-label_log_probs[..., 0], reduction)


def cross_entropy_grad(
    logits: ArrayLike,
    labels: ArrayLike,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> np.ndarray:
    r"""Gradient of :func:`cross_entropy` w.r.t. the logits: :math:`\operatorname{softmax}(z) - e_y`.

    Parameters
    ----------
    logits : array_like, shape (..., N)
        Student logits, class axis last.
    labels : array_like of int, shape (...)
        One class index in ``[0, N)`` per sample.
    reduction : {"mean", "sum", "none"}, default "mean"
        Each sample's own gradient for ``"none"`` and ``"sum"``; divided by the number of samples for
        ``"mean"``.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Returns
    -------
    numpy.ndarray, shape (..., N)
        Rows sum to 0. Dtype rules as :func:`cross_entropy`.

    Notes
    -----
    The label's entry :math:`p_y - 1` would cancel catastrophically when :math:`p_y \approx 1`; it is
    computed as :math:`\operatorname{expm1}(\log p_y)` instead, which keeps its full relative precision.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import cross_entropy_grad
    >>> cross_entropy_grad(np.array([0.0, 0.0]), 1, reduction="sum")
    array([ 0.5, -0.5])
    >>> float(cross_entropy_grad([40.0, 0.0], 0)[0])  # -e^-40, where softmax - 1 gives 0
    -4.248354255291589e-18
    """
    kept, log_probs, indices, label_log_probs = _label_log_probs(
        logits, labels, reduction, mask, ignore_index
    )
    grad = np.exp(log_probs)
    np.put_along_axis(grad, indices[..., None], np.expm1(label_log_probs), axis=-1)
    return kept.reduce_grad(grad, reduction)


def cross_entropy_and_grad(
    logits: ArrayLike,
    labels: ArrayLike,
    reduction: str = "mean",
    *,
    mask: ArrayLike | None = None,
    ignore_index: int = -100,
) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`cross_entropy` and :func:`cross_entropy_grad` from one log-softmax.

    Parameters
    ----------
    logits : array_like, shape (..., N)
        Student logits :math:`z`, class axis last.
    labels : array_like of int, shape (...)
        One class index in ``[0, N)`` per sample.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`cross_entropy`; the gradient is that of the reduced loss.
    mask : array_like of bool, shape (...), optional
        Positions to keep (True); the others are not computed and give 0 (:func:`kdcore.token_mask`).
    ignore_index : int, default -100
        A position whose label equals it is dropped as well.

    Returns
    -------
    loss : numpy.ndarray
        As :func:`cross_entropy` returns it.
    grad : numpy.ndarray, shape (..., N)
        As :func:`cross_entropy_grad` returns it. Dtype rules as :func:`cross_entropy`.

    Notes
    -----
    .. math::

        \mathrm{CE} = -\log\operatorname{softmax}(z)_y, \qquad
        \frac{\partial\,\mathrm{CE}}{\partial z} = \operatorname{softmax}(z) - e_y,

    the label's entry computed as :math:`\operatorname{expm1}(\log p_y)`; the softmax is the exponential
    of the log-softmax the loss already needs, written over it.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import cross_entropy_and_grad
    >>> loss, grad = cross_entropy_and_grad(np.array([0.0, 0.0]), 1, reduction="sum")
    >>> round(float(loss), 6), grad
    (0.693147, array([ 0.5, -0.5]))
    """
    kept, log_probs, indices, label_log_probs = _label_log_probs(
        logits, labels, reduction, mask, ignore_index
    )
    values = -label_log_probs[..., 0]
    grad = np.exp(log_probs, out=log_probs)
    np.put_along_axis(grad, indices[..., None], np.expm1(label_log_probs), axis=-1)
    return kept.reduce(values, reduction), kept.reduce_grad(grad, reduction)
