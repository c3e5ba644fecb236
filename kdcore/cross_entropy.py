r"""The hard-label loss: cross-entropy of the student's (untempered) softmax against integer labels.

.. math::

    \mathrm{CE}(z, y) = -\log \operatorname{softmax}(z)_y, \qquad
    \frac{\partial\,\mathrm{CE}}{\partial z} = \operatorname{softmax}(z) - e_y .

In distillation this is the "hard" term, always at :math:`T = 1`: the temperature softens the teacher's
targets, not the ground truth (applying ``T`` here is a known bug, ``temperature-on-hard-loss``).

A large batch is computed a chunk of rows at a time (``kdcore/_chunks.py``), the gradient written into
its output as each chunk finishes: the peak memory is the gradient plus a few chunks, not three arrays the
size of the input, and a row's numbers do not depend on the chunking.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import REDUCTIONS, as_logits, check_choice, check_labels, keep_positions, label_array
from ._chunks import get_num_threads, run_chunks
from ._numerics import take_along_last
from .softmax import log_softmax

__all__ = ["cross_entropy", "cross_entropy_and_grad", "cross_entropy_grad"]


# How many chunk-sized temporaries a chunk holds at its peak: the log-softmax's own work arrays (the shifted
# logits and their exponential), its result, and the copy of the kept rows of a masked batch.
_SCRATCH = 4
# Inputs up to this many elements are one chunk: their temporaries are small in absolute terms (≤ 1 MiB
# each in float64), and cutting them would only add each chunk's fixed cost (a dozen NumPy calls) to the
# small batches of training, where the call is short. It is a quarter of the largest chunk of
# kdcore/_chunks.py, so an input already cut into chunks by a caller is not cut again.
_ONE_CHUNK_ELEMENTS = 1 << 16


def label_rows(
    logits: np.ndarray, labels: np.ndarray, want_value: bool = True, want_grad: bool = True, *, out=None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-row loss and gradient of checked 2-D ``logits`` (rows, N) and intp ``labels`` (rows,), no reduction.

    One log-softmax serves both. The gradient goes into ``out`` (rows, N) when given, else into the
    log-softmax's own array. A row's numbers depend on that row alone.
    """
    log_probs = log_softmax(logits)
    label_log_probs = take_along_last(log_probs, labels)
    values = -label_log_probs[:, 0] if want_value else None
    grad = None
    if want_grad:
        # softmax − e_y: the softmax as the exponential of the log-softmax, the label's entry p_y − 1 as
        # expm1(log p_y), which keeps its relative precision where p_y ≈ 1.
        grad = np.exp(log_probs, out=log_probs if out is None else out)
        np.put_along_axis(grad, labels[:, None], np.expm1(label_log_probs), axis=-1)
    return values, grad


def _rows(
    logits: ArrayLike,
    labels: ArrayLike,
    reduction: str,
    mask,
    ignore_index,
    want_value: bool,
    want_grad: bool,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The reduced loss and/or gradient, computed a chunk of rows at a time (``kdcore/_chunks.py``).

    Each chunk's log-softmax, loss and gradient come from that chunk alone, so a row's numbers do not depend
    on the chunking (or the threads): they are those of one call on the whole batch, bit for bit. The
    gradient is written straight into its output, already divided by the kept count for ``"mean"`` (the
    division :func:`~kdcore._arrays.reduce_grad` does, in place), and a dropped position's row is never
    computed nor copied whole: the peak is the gradient plus a few chunks, never a copy of the input.
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    array = as_logits(logits, "logits")
    label_values = label_array(labels, array.shape)
    kept = keep_positions(mask, array.shape[:-1], label_values, ignore_index)
    n_classes = array.shape[-1]
    flat = array.reshape(-1, n_classes)  # a view for contiguous input
    # The kept rows, by index (None: every row, read through slices, i.e. views).
    if kept.none_kept:
        index = np.zeros(0, dtype=np.intp)
    else:
        index = None if kept.keep is None else np.flatnonzero(kept.keep.reshape(-1))
    n_kept = flat.shape[0] if index is None else index.size
    kept_labels = label_values.reshape(-1) if index is None else label_values.reshape(-1)[index]
    # The range check sees the kept labels only (it needs no more of the logits than the kept rows' shape).
    kept_labels = check_labels(kept_labels, SimpleNamespace(shape=(n_kept, n_classes)), ignore_index)
    divisor = array.dtype.type(max(n_kept, 1)) if reduction == "mean" else None
    values = np.empty(n_kept, dtype=array.dtype) if want_value else None
    grad = None
    if want_grad:
        grad = (np.empty if index is None else np.zeros)(array.shape, dtype=array.dtype)
    flat_grad = None if grad is None else grad.reshape(-1, n_classes)

    def kernel(rows: slice) -> None:
        block = flat[rows] if index is None else flat[index[rows]]
        direct = flat_grad is not None and index is None
        row_values, row_grad = label_rows(
            block, kept_labels[rows], want_value, want_grad, out=flat_grad[rows] if direct else None
        )
        if values is not None:
            values[rows] = row_values
        if row_grad is not None:
            if divisor is not None:
                np.divide(row_grad, divisor, out=row_grad)
            if index is not None:
                flat_grad[index[rows]] = row_grad

    if n_kept * n_classes <= _ONE_CHUNK_ELEMENTS:
        if n_kept:
            kernel(slice(0, n_kept))
    else:
        # A chunk is at least one row: with few, long rows (8 × 128 000) each thread's temporaries are a
        # large part of the input, so only as many threads work as keep them within half an input's worth.
        workers = max(1, min(get_num_threads(), flat.shape[0] // (2 * _SCRATCH)))
        run_chunks(kernel, n_kept, n_classes, scratch=_SCRATCH, workers=workers)
    value = None
    if values is not None:
        leading = array.shape[:-1] if index is None else (n_kept,)
        value = kept.reduce(values.reshape(leading), reduction)
    return value, grad


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
    return _rows(logits, labels, reduction, mask, ignore_index, want_value=True, want_grad=False)[0]


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
    return _rows(logits, labels, reduction, mask, ignore_index, want_value=False, want_grad=True)[1]


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
    return _rows(logits, labels, reduction, mask, ignore_index, want_value=True, want_grad=True)
