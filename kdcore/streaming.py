r"""Any kdcore loss over logits too large for memory: rows stream through in chunks, the total stays exact.

A language model's logits for a batch of 4096 tokens over a 128 000-token vocabulary are 2 GiB per array in
float32. :func:`stream_loss` computes any of kdcore's losses on such arrays — memory-mapped ``.npy`` files,
``.npz`` members, ``.safetensors`` tensors (:mod:`kdcore.arrays_on_disk`), or arrays already in memory —
a chunk of rows at a time:

* **the same numbers** as the in-memory function: each chunk goes through that very function with
  ``reduction="none"``, and a row's value does not depend on which other rows are in its call
  (``kdcore/_chunks.py``), so every per-position value is the in-memory one, bit for bit;
* **an exact total**: ``"sum"`` and ``"mean"`` add the per-position values exactly — the sum of the
  chunks' float64 values is carried as a short list of floats whose sum is exact (``math.fsum``'s correctly
  rounded sums and their remainders), then rounded once. The in-memory functions add with NumPy's pairwise
  summation instead, whose error grows like :math:`\log_2(n)\,\varepsilon` (and is float32's for float32
  input), so the two totals may differ in the last bits: the streamed one is the correctly rounded sum;
* **bounded memory**: a chunk of a memory-mapped input is a view of the file, not a copy; the pages it
  used are given back when it is done (:meth:`~kdcore.arrays_on_disk.ArrayOnDisk.release`); its gradient
  is written to an ``.npy`` file (:class:`~kdcore.arrays_on_disk.NpyRowWriter`, atomic) before the next
  chunk starts. What is held at once: the chunk's gradient, the kept rows of a chunk whose kept
  positions are scattered (a copy; runs of kept positions, as with padding at the end of each sequence,
  are read as views), a deflated member's or a bfloat16 tensor's decoded rows, the in-memory function's
  own temporaries (a few rows' worth per thread, ``kdcore/_chunks.py``), and the output (one value per
  position for ``reduction="none"``). benchmarks/bench_vocab.py measures it; docs/performance.md records it.

Token-level inputs follow the rules of the in-memory losses (docs/divergences.md): ``mask`` (True = keep)
and, where ``labels`` are given, ``labels == ignore_index`` drop positions; a dropped position is never
computed (its logits may be anything), its value and gradient are 0.0, and ``"mean"`` is the mean over kept
positions (0.0, with a zero gradient, when none is kept). Soft losses take ``labels`` only to drop padding.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import decoupled, distillation, divergences, mixtures, reverse_kl, topk
from ._arrays import REDUCTIONS, check_choice, check_int, float_dtype
from .arrays_on_disk import ArrayOnDisk, NpyRowWriter, open_array
from .cross_entropy import cross_entropy, cross_entropy_grad

__all__ = ["LOSSES", "Plan", "StreamedLoss", "exact_sum", "prepare", "stream_loss"]

# Elements per chunk when the caller does not choose: 2^23 (32 MiB of float32 per input; 65 rows of a
# 128 000-class vocabulary). Large enough that a chunk's fixed costs vanish, small enough to stay far below
# the inputs' size. The in-memory functions cut each chunk again into cache-sized pieces for their threads.
CHUNK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class _Loss:
    """A loss, its gradient (and fused value-and-gradient, where it exists), and the arrays it takes."""

    function: Callable
    grad: Callable
    inputs: tuple[str, ...]  # which of "student", "teacher", "labels", in the function's order
    # The function is called on 1/scratch of a chunk at a time. cross_entropy holds about three arrays the
    # size of its input (the log-softmax of all of it at once, and its exponential): a third of a chunk
    # keeps them within one chunk. The others cut their input into cache-sized pieces themselves
    # (kdcore/_chunks.py), so their temporaries do not grow with the chunk.
    scratch: int = 1

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def and_grad(self) -> Callable | None:
        # Looked up at call time, so a fused version added to a module later is used without an edit here.
        return getattr(sys.modules[self.function.__module__], f"{self.name}_and_grad", None)


def _losses() -> dict[str, _Loss]:
    soft, labelled = ("student", "teacher"), ("student", "teacher", "labels")
    top_k = ("student", "teacher_values", "teacher_indices")
    entries = [
        (divergences.kl_divergence, divergences.kl_divergence_grad, soft),
        (divergences.soft_cross_entropy, divergences.soft_cross_entropy_grad, soft),
        (reverse_kl.reverse_kl_divergence, reverse_kl.reverse_kl_divergence_grad, soft),
        (mixtures.jensen_shannon_divergence, mixtures.jensen_shannon_divergence_grad, soft),
        (mixtures.skew_kl_divergence, mixtures.skew_kl_divergence_grad, soft),
        (mixtures.skew_reverse_kl_divergence, mixtures.skew_reverse_kl_divergence_grad, soft),
        (distillation.logit_mse, distillation.logit_mse_grad, soft),
        (distillation.distillation_loss, distillation.distillation_loss_grad, labelled),
        (decoupled.decoupled_kd_loss, decoupled.decoupled_kd_loss_grad, labelled),
        (decoupled.target_class_kl_divergence, decoupled.target_class_kl_divergence_grad, labelled),
        (decoupled.non_target_class_kl_divergence, decoupled.non_target_class_kl_divergence_grad, labelled),
        (cross_entropy, cross_entropy_grad, ("student", "labels")),
        (topk.topk_kl_divergence, topk.topk_kl_divergence_grad, top_k),
        (topk.topk_soft_cross_entropy, topk.topk_soft_cross_entropy_grad, top_k),
    ]
    losses = {function.__name__: _Loss(function, grad, inputs) for function, grad, inputs in entries}
    losses["cross_entropy"] = _Loss(cross_entropy, cross_entropy_grad, ("student", "labels"), scratch=3)
    return losses


#: The losses :func:`stream_loss` computes, by the name of their kdcore function.
LOSSES: dict[str, _Loss] = _losses()


def exact_sum(values: Iterable[float], parts: Iterable[float] = ()) -> list[float]:
    r"""Floats whose (mathematical) sum is exactly the sum of ``values`` and ``parts``: usually one or two.

    Parameters
    ----------
    values : iterable of float
        Finite float64 numbers.
    parts : iterable of float, optional
        An earlier result of this function, to which ``values`` are added: the sum of a long stream is
        carried exactly from chunk to chunk.

    Returns
    -------
    list of float
        :math:`s_1 = \operatorname{fl}(S)`, :math:`s_2 = \operatorname{fl}(S - s_1)`, … until the remainder is
        0, where :math:`\operatorname{fl}` is ``math.fsum``'s correctly rounded sum. ``s_1`` is the correctly
        rounded total; ``math.fsum`` of the list is too.

    Raises
    ------
    OverflowError
        When a partial sum leaves the float64 range (``math.fsum``'s rule).

    Notes
    -----
    Each remainder is a sum of floats, hence a multiple of the smallest subnormal :math:`2^{-1074}`, and
    each is at most half an ulp of the one before, so the list ends after a few terms (at most about 40,
    when values span the whole exponent range).

    Examples
    --------
    >>> from kdcore.streaming import exact_sum
    >>> exact_sum([1e16, 1.0, -1e16])  # the float sum, left to right, is 0.0
    [1.0]
    >>> parts = exact_sum([1.0, 1e-30])  # 1 + 1e-30 is not a float: two parts carry it
    >>> parts
    [1.0, 1e-30]
    >>> exact_sum([-1.0], parts)
    [1e-30]
    """
    terms = list(itertools.chain(parts, values))
    result: list[float] = []
    while True:
        remainder = math.fsum(itertools.chain(terms, (-part for part in result)))
        if remainder == 0.0:
            return result
        result.append(remainder)


class _Total:
    """The exact sum of a stream of per-position values, one chunk at a time (non-finite values by IEEE rules)."""

    def __init__(self) -> None:
        self.parts: list[float] = []
        self.fraction: Fraction | None = None  # used instead of ``parts`` once a partial sum overflowed
        self.special = 0.0  # the sum of the inf/nan values: inf, -inf, nan, or 0.0 when there are none

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(values)
        if not finite.all():
            self.special += float(np.sum(values[~finite]))
            values = values[finite]
        if self.fraction is None:
            try:
                self.parts = exact_sum(values.tolist(), self.parts)
                return
            except OverflowError:  # the exact sum exceeds float64 somewhere on the way: exact rationals
                self.fraction = sum(map(Fraction, self.parts), Fraction(0))
        self.fraction += sum(map(Fraction, values.tolist()), Fraction(0))

    def value(self, divisor: int = 1) -> float:
        """The exact sum divided by ``divisor``, rounded once to float64 (±inf beyond its range)."""
        if self.special != 0.0 or math.isnan(self.special):
            return self.special
        exact = self.fraction if self.fraction is not None else sum(map(Fraction, self.parts), Fraction(0))
        exact /= max(divisor, 1)
        try:
            return float(exact)  # int / int in Python is correctly rounded
        except OverflowError:
            return math.inf if exact > 0 else -math.inf


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


class _InMemory:
    """An array already in memory (a NumPy array, an ``np.memmap``), read through the same interface."""

    def __init__(self, value: object, name: str) -> None:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.row_length = array.shape[-1] if array.ndim else 1
        self.n_rows = math.prod(array.shape[:-1])
        self._rows = array.reshape(self.n_rows, self.row_length)  # a view for contiguous arrays and memmaps

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self._rows[start:stop]

    def read(self) -> np.ndarray:
        return self._rows.reshape(self.shape)

    def release(self, start: int, stop: int) -> None:
        pass

    def close(self) -> None:
        pass


def _source(value: object, name: str, opened: list) -> ArrayOnDisk | _InMemory:
    if isinstance(value, ArrayOnDisk):
        return value
    if isinstance(value, str | os.PathLike):
        array = open_array(value)
        opened.append(array)
        return array
    return _InMemory(value, name)


def _keep_mask(mask, labels, ignore_index, leading: tuple[int, ...], n_classes: int, needs_labels: bool):
    """The flat boolean keep-mask (None: all kept) and the flat labels (None: none given), checked."""
    keep = None
    if mask is not None:
        keep = mask.read()
        if keep.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = keep), got dtype {keep.dtype}")
        if keep.shape != leading:
            raise ValueError(f"mask must have the logits' leading shape {leading}, got shape {keep.shape}")
        keep = keep.reshape(-1)
    flat_labels = None
    if labels is not None:
        flat_labels = labels.read()
        if flat_labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integer class indices, got dtype {flat_labels.dtype}")
        if flat_labels.shape != leading:
            raise ValueError(
                f"labels must have the logits' leading shape {leading} (one per position), "
                f"got shape {flat_labels.shape}"
            )
        flat_labels = flat_labels.reshape(-1)
        ignore_index = check_int(ignore_index, "ignore_index")
        kept_labels = flat_labels != ignore_index
        keep = kept_labels if keep is None else keep & kept_labels
        checked = flat_labels if keep is None else flat_labels[keep]
        if needs_labels and checked.size and (checked.min() < 0 or checked.max() >= n_classes):
            bad = int(checked.min()) if checked.min() < 0 else int(checked.max())
            raise ValueError(
                f"labels must be in [0, {n_classes}) (or ignore_index={ignore_index}: dropped), got a label {bad}"
            )
    elif needs_labels:
        raise TypeError("this loss needs labels (labels=...)")
    if keep is not None and keep.all():
        keep = None
    return keep, flat_labels


def _runs(keep: np.ndarray) -> list[tuple[bool, int]]:
    """Consecutive runs of kept / dropped rows: ``[(kept?, length), ...]``."""
    edges = np.flatnonzero(np.diff(keep.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), keep.size]
    return [(bool(keep[a]), b - a) for a, b in itertools.pairwise(bounds)]


def stream_loss(
    loss: str | Callable,
    student_logits: object,
    teacher_logits: object = None,
    labels: object = None,
    **options: Any,
) -> StreamedLoss:
    r"""A kdcore loss of logits on disk (or in memory), computed chunk by chunk, exactly, in bounded memory.

    Parameters
    ----------
    loss : str or callable
        The loss: one of :data:`LOSSES` (``"kl_divergence"``, ``"soft_cross_entropy"``,
        ``"reverse_kl_divergence"``, ``"jensen_shannon_divergence"``, ``"skew_kl_divergence"``,
        ``"skew_reverse_kl_divergence"``, ``"distillation_loss"``, ``"cross_entropy"``,
        ``"decoupled_kd_loss"`` and its two parts, ``"logit_mse"``, ``"topk_kl_divergence"``,
        ``"topk_soft_cross_entropy"``), or that function itself.
    student_logits, teacher_logits : path, ArrayOnDisk or array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. A path is opened with
        :func:`kdcore.arrays_on_disk.open_array` (use that function for an ``.npz`` or ``.safetensors``
        file holding several arrays: it takes the ``key``); an ``np.memmap`` is read through its map.
        ``cross_entropy`` takes no teacher; the top-k losses take the pair ``(teacher_values,
        teacher_indices)``, each of shape (..., k), read row by row as the student is.
    labels : path, ArrayOnDisk or array_like of int, shape (...), optional
        Class indices, for the losses that take them. For the others, only their ``ignore_index``
        positions are used: they are dropped (padding).
    mask : path, ArrayOnDisk or array_like of bool, shape (...), optional
        True keeps a position; combined with ``labels != ignore_index`` by AND.
    ignore_index : int, default -100
        The label value that marks a dropped position.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"``: over kept positions.
    grad_out : path, optional
        Write the gradient w.r.t. the student logits (shape (..., N), reduced as ``reduction`` says: each
        row divided by the number of kept positions for ``"mean"``; 0 at dropped positions) to this ``.npy``
        file, atomically.
    chunk_rows : int, optional
        Rows per chunk; default :math:`\max(1, 2^{23} / N)`.
    dtype : {None, "float32", "float64"}, optional
        Compute each chunk in this dtype (``"float64"``: the loss of float32 logits to float64's accuracy).
        Default: the in-memory functions' rule (float32 stays float32; integers and float16 widen).
    progress : callable, optional
        Called as ``progress(rows_done, rows_total)`` after each chunk.
    **parameters
        The loss's other arguments: ``T``, ``alpha``, ``beta``, ``skew``, ``t2_scaling``, ``soft``,
        ``centered``, ``convention``, ``values``, with the same meaning and defaults as in the function itself. These, and every
        argument above after ``labels``, are passed by keyword.

    Returns
    -------
    StreamedLoss
        ``value`` (``"mean"``/``"sum"``: a float64) or ``values`` (``"none"``), with what was computed.

    Raises
    ------
    TypeError, ValueError
        Before any row is computed: an unknown loss, a missing or unreadable file, arrays that are not
        real numbers, shapes that disagree, labels out of range, a bad parameter (the loss's own message).

    Notes
    -----
    With :math:`\ell_i` the in-memory function's value at position :math:`i` (``reduction="none"``) and
    :math:`K` the kept positions,

    .. math::

        \text{sum} = \operatorname{fl}\Bigl(\sum_{i \in K} \ell_i\Bigr), \qquad
        \text{mean} = \operatorname{fl}\Bigl(\frac{1}{|K|}\sum_{i \in K} \ell_i\Bigr),

    each sum exact and rounded once (:func:`exact_sum`). The gradient's rows are the in-memory
    function's (``reduction="none"``), divided by :math:`|K|` for ``"mean"``.

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> from kdcore import kl_divergence
    >>> from kdcore.streaming import stream_loss
    >>> rng = np.random.default_rng(0)
    >>> z, v = rng.normal(size=(2, 5, 7)), rng.normal(size=(2, 5, 7))
    >>> labels = np.array([[3, 1, 4, -100, -100], [1, 5, 2, 6, -100]])  # -100: padding
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     np.save(pathlib.Path(tmp) / "z.npy", z)
    ...     np.save(pathlib.Path(tmp) / "v.npy", v)
    ...     result = stream_loss("kl_divergence", f"{tmp}/z.npy", f"{tmp}/v.npy", labels, T=2.0,
    ...                          chunk_rows=3, grad_out=f"{tmp}/grad.npy")
    ...     grad = np.load(f"{tmp}/grad.npy")
    >>> result.kept, result.chunks
    (7, 4)
    >>> kept = labels != -100
    >>> bool(np.isclose(result.value, kl_divergence(z[kept], v[kept], T=2.0), rtol=1e-15))
    True
    >>> float(abs(grad[~kept]).max())  # padding gets no gradient
    0.0
    """
    progress = options.pop("progress", None)
    plan = prepare(loss, student_logits, teacher_logits, labels, **options)
    with plan:
        return plan.run(progress)


@dataclass
class Plan:
    """A checked :func:`stream_loss` call, ready to run: :func:`prepare` makes it (the command line checks
    everything before it starts any work), :meth:`run` computes. A context manager: leaving it closes the
    files it opened."""

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
        """Compute, chunk by chunk (see :func:`stream_loss`)."""
        n_rows, kept = self.positions, self.kept
        total = _Total()
        values = np.zeros(n_rows, dtype=self.compute) if self.reduction == "none" else None
        writer = None if self.grad_out is None else NpyRowWriter(self.grad_out, self.shape, self.compute)
        chunks = 0
        with writer if writer is not None else contextlib.nullcontext():
            for start in range(0, n_rows, self.chunk_rows):
                stop = min(start + self.chunk_rows, n_rows)
                # The loss is called on blocks of the chunk small enough that its own chunk-sized
                # temporaries (``scratch`` of them) add up to one chunk at most.
                block_rows = max(1, self.chunk_rows // self.spec.scratch)
                for block_start in range(start, stop, block_rows):
                    block_stop = min(block_start + block_rows, stop)
                    self._block(block_start, block_stop, total, values, writer)
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
