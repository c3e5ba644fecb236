r"""A checked streamed computation, ready to run: :func:`prepare` checks, :class:`Plan` runs chunk by chunk.

:func:`prepare` does every check that needs no more than the files' headers, the labels and the mask (so
that ``kdcore loss`` reports a usage error before any work), and :meth:`Plan.run` feeds the rows through the
in-memory function a chunk at a time, adds the values exactly (:mod:`kdcore.streaming.totals`) and writes
the gradient's rows to an ``.npy`` file as they come (:class:`~kdcore.arrays_on_disk.NpyRowWriter`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._arrays import REDUCTIONS, check_choice, check_int, float_dtype
from ..arrays_on_disk import ArrayOnDisk, NpyRowWriter
from .losses import LOSSES, _Loss
from .sources import _keep_mask, _runs, _source
from .totals import _Total

__all__ = ["CHUNK_ELEMENTS", "Plan", "StreamedLoss", "prepare"]

# Elements per chunk when the caller does not choose: 2^23 (32 MiB of float32 per input; 65 rows of a
# 128 000-class vocabulary). Large enough that a chunk's fixed costs vanish, small enough to stay far below
# the inputs' size. The in-memory functions cut each chunk again into cache-sized pieces for their threads.
CHUNK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class StreamedLoss:
    """What :func:`stream_loss` computed.

    Attributes
    ----------
    loss : str
        The kdcore function (``"kl_divergence"``, ...).
    value : float or None
        For ``reduction="sum"`` and ``"mean"``: the exact sum (or mean) of the per-position values, rounded
        once to float64. ``None`` for ``"none"``.
    values : numpy.ndarray or None
        For ``reduction="none"``: one value per position (the leading shape), in ``dtype``, 0.0 where
        dropped. ``None`` otherwise.
    reduction : str
    parameters : dict
        The loss's other arguments as passed (``T``, ``alpha``, ...).
    shape : tuple of int
        The logits' shape.
    dtype : numpy.dtype
        The dtype the values (and the gradient) were computed in.
    positions, kept : int
        Positions (rows) in the input, and how many were kept.
    chunk_rows, chunks : int
        Rows per chunk, and how many chunks ran.
    grad_path : pathlib.Path or None
        The ``.npy`` file holding the gradient w.r.t. the student logits, if one was asked for.

    Examples
    --------
    A padded batch of 2 sequences × 3 tokens; the last token of the second sequence is padding:

    >>> import numpy as np
    >>> from kdcore import kl_divergence
    >>> from kdcore.streaming import stream_loss
    >>> rng = np.random.default_rng(1)
    >>> z, v = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))
    >>> labels = np.array([[0, 1, 2], [3, 4, -100]])
    >>> result = stream_loss("kl_divergence", z, v, labels, T=2.0, reduction="none", chunk_rows=4)
    >>> result.loss, result.positions, result.kept, result.chunks, result.value
    ('kl_divergence', 6, 5, 2, None)
    >>> result.values.shape, float(result.values[1, 2])  # one value per position; 0.0 where dropped
    ((2, 3), 0.0)
    >>> bool(np.array_equal(result.values[0], kl_divergence(z[0], v[0], T=2.0, reduction="none")))
    True
    """

    loss: str
    value: float | None
    values: np.ndarray | None
    reduction: str
    parameters: dict = field(default_factory=dict)
    shape: tuple[int, ...] = ()
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float64))
    positions: int = 0
    kept: int = 0
    chunk_rows: int = 0
    chunks: int = 0
    grad_path: Path | None = None


@dataclass
class Plan:
    """A checked :func:`stream_loss` call, ready to run: :func:`prepare` makes it, :meth:`run` computes.

    Splitting the call in two lets a caller check everything before it starts any work (``kdcore loss``
    reports a bad file or parameter on one line before its progress bar appears). A context manager:
    leaving it closes the files :func:`prepare` opened.

    Attributes
    ----------
    spec
        The loss (an entry of :data:`LOSSES`).
    logits : list
        The row sources: the student's, then the teacher's (logits, or a top-k teacher's values and
        indices).
    keep : numpy.ndarray of bool or None
        The flat keep-mask, one entry per position; ``None`` when every position is kept.
    labels : numpy.ndarray of int or None
        The flat labels, if given.
    reduction : str
    parameters : dict
        The loss's other arguments (``T``, ``beta``, ...), passed by keyword to each chunk's call.
    compute : numpy.dtype
        The dtype each chunk is computed in.
    chunk_rows : int
        Rows per chunk.
    grad_out : pathlib.Path or None
        Where :meth:`run` writes the gradient w.r.t. the student logits.
    shape, positions, kept
        The logits' shape, the number of positions (rows), and how many are kept.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.streaming import prepare
    >>> z, v = np.zeros((6, 4)), np.log([[1.0, 2.0, 3.0, 4.0]] * 6)
    >>> with prepare("reverse_kl_divergence", z, v, mask=[True] * 5 + [False], chunk_rows=2) as plan:
    ...     print(plan.shape, plan.positions, plan.kept, plan.chunk_rows, plan.compute)
    ...     result = plan.run()
    (6, 4) 6 5 2 float64
    >>> teacher_probs = np.array([1.0, 2.0, 3.0, 4.0]) / 10  # every row's KL(uniform ‖ teacher_probs)
    >>> result.chunks, bool(np.isclose(result.value, np.sum(0.25 * np.log(0.25 / teacher_probs))))
    (3, True)
    """

    spec: _Loss
    logits: list  # the student's rows source, then the teacher's
    keep: np.ndarray | None  # flat keep-mask; None: every position kept
    labels: np.ndarray | None  # flat labels
    reduction: str
    parameters: dict
    compute: np.dtype
    chunk_rows: int
    grad_out: Path | None
    opened: list = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.logits[0].shape)

    @property
    def positions(self) -> int:
        return self.logits[0].n_rows

    @property
    def kept(self) -> int:
        return self.positions if self.keep is None else int(np.count_nonzero(self.keep))

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for array in self.opened:
            array.close()

    def _call(self, function: Callable, rows: list[np.ndarray], labels: np.ndarray | None, **extra: Any):
        # The sources are the student's rows, then the teacher's: its logits, or a top-k teacher's values
        # and indices.
        teacher = (
            {"teacher": rows[-1]}
            if len(rows) < 3
            else {"teacher_values": rows[1], "teacher_indices": rows[2]}
        )
        arrays = {"student": rows[0], **teacher, "labels": labels}
        return function(*(arrays[name] for name in self.spec.inputs), **self.parameters, **extra)

    def _chunk(self, start: int, stop: int, keep: np.ndarray | None, with_grad: bool):
        """The per-row values (and gradients) of the kept rows in ``start:stop``."""
        rows = [a.rows(start, stop) for a in self.logits]
        labels = None if self.labels is None else self.labels[start:stop]
        if keep is not None:  # never compute a dropped row (its logits may be anything)
            rows = [r[keep] for r in rows]
            labels = None if labels is None else labels[keep]
        rows = [r.astype(self.compute, copy=False) if i < 2 else r for i, r in enumerate(rows)]  # not indices
        if not with_grad:
            return self._call(self.spec.function, rows, labels, reduction="none"), None
        if self.spec.and_grad is not None:
            return self._call(self.spec.and_grad, rows, labels, reduction="none")
        values = self._call(self.spec.function, rows, labels, reduction="none")
        return values, self._call(self.spec.grad, rows, labels, reduction="none")

    def _block(self, start: int, stop: int, total: _Total, values: np.ndarray | None, writer) -> None:
        """Rows ``start:stop``: their values into ``total`` (and ``values``), their gradient to ``writer``."""
        keep = None if self.keep is None else self.keep[start:stop]
        if keep is None or keep.all():
            self._rows(start, stop, None, total, values, writer)
            return
        runs = _runs(keep)
        if sum(is_kept for is_kept, _ in runs) > max(1, (stop - start) // 8):
            # Kept positions scattered: one call on a copy of the kept rows.
            self._rows(start, stop, keep, total, values, writer)
            return
        # A few runs of kept positions (padding at the end of each sequence): one call per run, on a view
        # of the file, so that no row is copied.
        for is_kept, length in runs:
            if is_kept:
                self._rows(start, start + length, None, total, values, writer)
            elif writer is not None:
                writer.write_zeros(length, max(1, (1 << 20) // self.shape[-1]))
            start += length

    def _rows(self, start: int, stop: int, keep, total: _Total, values: np.ndarray | None, writer) -> None:
        row_values, grad = self._chunk(start, stop, keep, writer is not None)
        total.add(row_values)
        if values is not None:
            values[start:stop][slice(None) if keep is None else keep] = row_values
        if writer is not None:
            if self.reduction == "mean":
                grad = np.divide(grad, grad.dtype.type(self.kept), out=grad)
            _write_rows(writer, grad, keep)

    def run(self, progress: Callable[[int, int], None] | None = None) -> StreamedLoss:
        """Compute, chunk by chunk (see :func:`stream_loss`); the files stay open until :meth:`close`.

        Parameters
        ----------
        progress : callable, optional
            Called as ``progress(rows_done, rows_total)`` after each chunk.

        Returns
        -------
        StreamedLoss

        Examples
        --------
        >>> import numpy as np
        >>> from kdcore.streaming import prepare
        >>> done = []
        >>> with prepare("soft_cross_entropy", np.zeros((5, 3)), np.zeros((5, 3)), chunk_rows=2) as plan:
        ...     value = plan.run(progress=lambda rows, total: done.append((rows, total))).value
        >>> done, round(value, 12)  # the entropy of the uniform teacher, log 3
        ([(2, 5), (4, 5), (5, 5)], 1.098612288668)
        """
        n_rows, kept = self.positions, self.kept
        total = _Total()
        values = np.zeros(n_rows, dtype=self.compute) if self.reduction == "none" else None
        writer = None if self.grad_out is None else NpyRowWriter(self.grad_out, self.shape, self.compute)
        chunks = 0
        with writer if writer is not None else contextlib.nullcontext():
            for start in range(0, n_rows, self.chunk_rows):
                stop = min(start + self.chunk_rows, n_rows)
                # The loss is called on pieces of the chunk small enough that its own temporaries stay
                # within about a chunk (``pieces``: see kdcore/streaming/losses.py).
                piece_rows = max(1, -(-self.chunk_rows // self.spec.pieces))
                for piece_start in range(start, stop, piece_rows):
                    self._block(piece_start, min(piece_start + piece_rows, stop), total, values, writer)
                for array in self.logits:
                    array.release(start, stop)  # the pages of rows done with go back to the system
                chunks += 1
                if progress is not None:
                    progress(stop, n_rows)
        value = None
        if self.reduction == "sum":
            value = total.value()
        elif self.reduction == "mean":
            value = total.value(kept) if kept else 0.0
        return StreamedLoss(
            loss=self.spec.name,
            value=value,
            values=None if values is None else values.reshape(self.shape[:-1]),
            reduction=self.reduction,
            parameters=dict(self.parameters),
            shape=self.shape,
            dtype=self.compute,
            positions=n_rows,
            kept=kept,
            chunk_rows=self.chunk_rows,
            chunks=chunks,
            grad_path=self.grad_out,
        )


def prepare(
    loss: str | Callable,
    student_logits: object,
    teacher_logits: object = None,
    labels: object = None,
    *,
    mask: object = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    grad_out: str | os.PathLike | None = None,
    chunk_rows: int | None = None,
    dtype: object = None,
    **parameters: Any,
) -> Plan:
    """Check a :func:`stream_loss` call (arguments as there) and open its files, computing nothing yet.

    Every check that needs no more than the files' headers, the labels and the mask is done here: an
    error raised by :meth:`Plan.run` is one found in the data itself (a deflated member cut short).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.streaming import prepare
    >>> with prepare("kl_divergence", np.zeros((4, 3)), np.ones((4, 3)), T=2.0) as plan:
    ...     print(plan.kept, plan.run().value)
    4 0.0
    >>> prepare("kl_divergence", np.zeros((4, 3)), np.ones((4, 3)), T=0.0)
    Traceback (most recent call last):
    ...
    ValueError: T must be a positive finite number, got T=0.0
    """
    spec = LOSSES.get(getattr(loss, "__name__", loss)) if isinstance(loss, str) or callable(loss) else None
    if spec is None or (callable(loss) and spec.function is not loss):
        raise ValueError(f"loss must be one of {', '.join(LOSSES)} (or that function), got loss={loss!r}")
    check_choice(reduction, "reduction", REDUCTIONS)
    if chunk_rows is not None:
        check_int(chunk_rows, "chunk_rows", 1)
    if dtype is not None:
        dtype = np.dtype(check_choice(str(np.dtype(dtype)), "dtype", ("float32", "float64")))
    wants_teacher = "teacher" in spec.inputs or "teacher_values" in spec.inputs
    if wants_teacher != (teacher_logits is not None):
        raise TypeError(f"{spec.name} {'needs' if wants_teacher else 'takes no'} teacher_logits")
    opened: list[ArrayOnDisk] = []
    try:
        student = _source(student_logits, "student_logits", opened)
        top_k = "teacher_values" in spec.inputs
        if top_k and not (isinstance(teacher_logits, tuple | list) and len(teacher_logits) == 2):
            raise TypeError(f"{spec.name} takes its teacher as a pair (teacher_values, teacher_indices)")
        teacher = _source(teacher_logits, "teacher_logits", opened) if wants_teacher and not top_k else None
        if student.ndim == 0 or student.row_length == 0:
            raise ValueError(f"student_logits must have a non-empty class axis, got shape {student.shape}")
        if teacher is not None and teacher.shape != student.shape:
            raise ValueError(
                f"student_logits and teacher_logits must have the same shape, got {student.shape} and {teacher.shape}"
            )
        keep, flat_labels = _keep_mask(
            None if mask is None else _source(mask, "mask", opened),
            None if labels is None else _source(labels, "labels", opened),
            ignore_index,
            tuple(student.shape[:-1]),
            student.row_length,
            "labels" in spec.inputs,
        )
        logits = [student] if teacher is None else [student, teacher]
        if top_k:
            logits += [
                _source(array, name, opened)
                for array, name in zip(teacher_logits, ("teacher_values", "teacher_indices"), strict=True)
            ]
            values, indices = logits[1:]
            if values.shape != indices.shape or values.shape[:-1] != student.shape[:-1]:
                raise ValueError(
                    f"teacher_values and teacher_indices must have one shape (..., k) with the student's leading "
                    f"shape {student.shape[:-1]}, got {values.shape} and {indices.shape}"
                )
            if indices.dtype.kind not in "iu":
                raise TypeError(f"teacher_indices must be integer class indices, got dtype {indices.dtype}")
        compute = dtype if dtype is not None else float_dtype(*(np.empty(0, a.dtype) for a in logits[:2]))
        if grad_out is not None:
            grad_out = Path(grad_out)
            if grad_out.is_dir() or not grad_out.parent.is_dir():
                raise ValueError(f"grad_out must be a file in an existing directory, got {str(grad_out)!r}")
            if any(grad_out.exists() and grad_out.samefile(array.path) for array in opened):
                raise ValueError(f"grad_out {str(grad_out)!r} is one of the inputs")
        plan = Plan(
            spec=spec,
            logits=logits,
            keep=keep,
            labels=flat_labels,
            reduction=reduction,
            parameters=dict(parameters),
            compute=np.dtype(compute),
            chunk_rows=max(1, min(student.n_rows, chunk_rows or CHUNK_ELEMENTS // student.row_length)),
            grad_out=grad_out,
            opened=opened,
        )
        # The parameters are checked by the loss itself, on one row: the same rules and messages, no work.
        probe = [np.zeros((1, student.row_length), dtype=compute)] * min(len(logits), 2)
        if top_k:  # k equal log-probabilities (or logits): valid under every convention and space
            k = logits[1].row_length
            probe = [probe[0], np.full((1, k), -math.log(k), dtype=compute), np.arange(k)[None, :]]
        plan._call(spec.function, probe, np.zeros(1, dtype=np.intp), reduction="none")
    except BaseException:
        for array in opened:
            array.close()
        raise
    return plan


def _write_rows(writer: NpyRowWriter, grad: np.ndarray, keep: np.ndarray | None) -> None:
    """The kept rows' gradient, with zero rows where positions were dropped, in order."""
    if keep is None:
        writer.write(grad)
        return
    done = 0
    for is_kept, length in _runs(keep):
        if is_kept:
            writer.write(grad[done : done + length])
            done += length
        else:
            writer.write_zeros(length, max(1, min(length, grad.shape[0])))
