r"""The machinery behind ``kdcore.topk``: checking a top-k teacher, and the tail convention's k + 1 buckets.

The renormalised conventions need nothing new: each *is* a dense KL on arrays built from the inputs
(``kdcore.topk`` says which), and inherits its accuracy. The tail convention compares two distributions over
k + 1 buckets — the k stored classes and "everything else" — and is evaluated by the same cancellation-free
algorithm (``_match``) on bucket "logits":

* student: :math:`z_i` for :math:`i \in K`, and :math:`\lambda = \log\sum_{j\notin K} e^{z_j}` for the tail
  (their softmax is the student's bucket distribution, since the normaliser is the same);
* teacher: the stored log-probabilities :math:`a_i`, and :math:`t = \log(1 - \sum_{i\in K} e^{a_i})`,
  computed as ``log(-expm1(logsumexp(a)))`` (the log1mexp form: no ``1 - sum`` cancellation).

KL depends on the student–teacher difference :math:`\lambda - t` of the tail bucket, and unlike the
:math:`z_i - a_i` it is not a difference of inputs: both terms carry a float64 rounding error of
~1e-16 times their size. Where that error is not negligible against the log-ratios themselves (a student
close to the teacher), the two are recomputed in double-double arithmetic (``_double_double``) and their
difference passed to ``match`` exactly (its ``low`` part).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _double_double as dd
from ._arrays import (
    Kept,
    _describe,
    as_float_array,
    as_logits,
    check_choice,
    check_temperature,
    float_dtype,
    keep_positions,
)
from ._match import Match, match

CONVENTIONS = ("renormalized", "dense_student", "tail")
VALUE_KINDS = ("logits", "log_probs")


@dataclass
class TopK:
    """Checked inputs at the kept positions: student (n, V), teacher values and indices (n, k)."""

    student: np.ndarray
    values: np.ndarray
    indices: np.ndarray
    T: float
    convention: str
    values_kind: str
    kept: Kept  # the kept positions (kdcore._arrays: one reduction layer for every loss)

    def _public(self, rows: np.ndarray) -> np.ndarray:
        """Results of the kept rows (n, ...) in the form ``Kept`` reduces: the leading shape when all are kept."""
        return rows.reshape(self.kept.shape + rows.shape[1:]) if self.kept.keep is None else rows

    def reduce(self, values: np.ndarray, reduction: str) -> np.ndarray:
        """Per-position values reduced: the leading shape for "none" (0.0 where dropped), else over kept ones."""
        return self.kept.reduce(self._public(values), reduction)

    def reduce_grad(self, grad: np.ndarray, reduction: str) -> np.ndarray:
        return self.kept.reduce_grad(self._public(grad), reduction)


def _position(row: int, keep: np.ndarray | None, shape: tuple) -> tuple:
    """The position (index in the leading shape) of kept row ``row``, for error messages."""
    flat = np.flatnonzero(keep.reshape(-1))[row] if keep is not None else row
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def check_topk(
    student_logits, teacher_values, teacher_indices, T, values, convention, mask, wrt=None
) -> TopK:
    """Validate everything (errors name the parameter and the value) and select the kept positions."""
    check_choice(values, "values", VALUE_KINDS)
    check_choice(convention, "convention", CONVENTIONS)
    T = check_temperature(T)
    student = as_float_array(student_logits, "student_logits")
    teacher = as_float_array(teacher_values, "teacher_values")
    dtype = float_dtype(student, teacher)
    student = as_logits(student, "student_logits", dtype)
    teacher = as_logits(teacher, "teacher_values", dtype)
    indices = np.asarray(teacher_indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(
            f"teacher_indices must be integer class indices, got dtype {indices.dtype} "
            f"({_describe(teacher_indices)})"
        )
    if indices.shape != teacher.shape:
        raise ValueError(
            f"teacher_indices must have the shape of teacher_values {teacher.shape}, got {indices.shape}"
        )
    n_classes, k = student.shape[-1], teacher.shape[-1]
    if teacher.shape[:-1] != student.shape[:-1]:
        raise ValueError(
            f"teacher_values must have the leading shape of student_logits {student.shape[:-1]} "
            f"(shape (..., k)), got shape {teacher.shape}"
        )
    if k > n_classes:
        raise ValueError(
            f"teacher_values holds k={k} classes per position, more than the V={n_classes} of student_logits"
        )
    if convention == "tail" and k < n_classes:
        if values != "log_probs":
            raise ValueError(
                "convention='tail' needs the teacher's log-probabilities (values='log_probs'): from top-k "
                "logits the teacher's remaining mass is unknown"
            )
        if T != 1.0 or wrt == "temperature":
            what = "its derivative w.r.t. T" if wrt == "temperature" else f"T={T!r}"
            raise ValueError(
                f"convention='tail' is defined at T=1 only, got {what}: the teacher's tail mass at another "
                "temperature depends on the probabilities outside the top k, which are not stored"
            )
    shape = student.shape[:-1]
    kept = keep_positions(mask, shape)
    keep = kept.keep
    # Rows of the kept positions, (n, ·); Kept.rows would stand a zero row in for "none kept", whose
    # repeated index 0 this module's checks would reject, so the selection is made here.
    rows = (lambda a: a.reshape(-1, a.shape[-1])) if keep is None else (lambda a: a[keep])
    student, teacher, indices = rows(student), rows(teacher), rows(indices)
    _check_kept_rows(teacher, indices, n_classes, values, keep, shape)
    return TopK(student, teacher, indices.astype(np.intp, copy=False), T, convention, values, kept)


def _check_kept_rows(teacher, indices, n_classes, values, keep, shape) -> None:
    if indices.size == 0:
        return
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        row = int(np.argwhere((indices == bad).any(axis=-1))[0, 0])
        raise ValueError(
            f"teacher_indices must be in [0, {n_classes}), got {bad} at position {_position(row, keep, shape)}"
        )
    ordered = np.sort(indices, axis=-1)
    repeated = ordered[:, 1:] == ordered[:, :-1]
    if repeated.any():
        row, column = (int(i) for i in np.argwhere(repeated)[0])
        raise ValueError(
            f"teacher_indices must not repeat a class within a position, got class {int(ordered[row, column])} "
            f"twice at position {_position(row, keep, shape)}"
        )
    bad_value = np.isnan(teacher) | (teacher == np.inf)
    if bad_value.any():
        row, column = (int(i) for i in np.argwhere(bad_value)[0])
        raise ValueError(
            f"teacher_values must be finite or -inf (a class of probability 0), got {teacher[row, column]} "
            f"at position {_position(row, keep, shape)}"
        )
    if values == "log_probs":
        log_mass = _logsumexp(teacher)
        if np.max(log_mass) > mass_tolerance(teacher.dtype, teacher.shape[-1]):
            row = int(np.argmax(log_mass))
            raise ValueError(
                f"teacher_values with values='log_probs' must be log-probabilities (their probabilities sum "
                f"to at most 1), got a sum of {math.exp(float(log_mass[row])):.6g} at position "
                f"{_position(row, keep, shape)}; pass values='logits' for logits"
            )


def mass_tolerance(dtype: np.dtype, k: int) -> float:
    """How far stored log-probabilities may sum (as probabilities) from 1 by rounding alone: 64·k·eps.

    Above 1 by more, they are rejected; within it of 1 (either side), the teacher's tail is taken as empty —
    rounding noise of 1e-16 is not mass the student could be asked to match (and a student that masks the
    rest would otherwise pay +inf for it)."""
    return 64 * float(np.finfo(dtype).eps) * k


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """Row-wise log Σ e^x of (n, m) rows that may contain −inf; an all −inf (or empty) row gives −inf."""
    top = np.max(x, axis=-1, keepdims=True) if x.shape[-1] else np.full((*x.shape[:-1], 1), -np.inf, x.dtype)
    safe_top = np.where(np.isfinite(top), top, 0)
    # log 0 = −inf for a row with no finite entry is the right answer; +inf or NaN rows give inf or NaN,
    # which the caller reports as a sample without a softmax.
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        total = np.log(np.sum(np.exp(x - safe_top), axis=-1))
    return np.where(np.isneginf(top[:, 0]), -np.inf, total + safe_top[:, 0])


def gather(student: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return np.take_along_axis(student, indices, axis=-1)


def scatter(values: np.ndarray, indices: np.ndarray, n_classes: int, fill: float) -> np.ndarray:
    """(n, V) rows equal to ``fill`` except ``values`` at ``indices``."""
    dense = np.full((values.shape[0], n_classes), fill, dtype=values.dtype)
    np.put_along_axis(dense, indices, values, axis=-1)
    return dense


@dataclass
class Tail:
    """The tail convention's bucket comparison: a :class:`Match` over (n, k + 1) and what the student
    gradient needs to spread the tail bucket back over the vocabulary."""

    match: Match
    student_tail: np.ndarray  # λ = log Σ_{j∉K} e^{z_j}, shape (n,)
    complement: np.ndarray  # (n, V) boolean: classes outside the top k
    teacher_tail_empty: np.ndarray  # (n,) the stored probabilities sum to 1: the teacher's tail is 0


def tail_buckets(topk: TopK) -> Tail:
    student, values, indices = topk.student, topk.values, topk.indices
    n, n_classes = student.shape
    complement = np.ones((n, n_classes), dtype=bool)
    np.put_along_axis(complement, indices, False, axis=-1)
    work = np.float64 if student.dtype == np.float32 else student.dtype  # float32: tails from float64 sums
    with np.errstate(invalid="ignore"):  # a NaN row stays NaN (match reports it)
        student_tail = _logsumexp(np.where(complement, student, -np.inf).astype(work, copy=False))
    teacher_mass = _logsumexp(values.astype(work, copy=False))
    tolerance = mass_tolerance(values.dtype, values.shape[-1])
    teacher_rest = -np.expm1(np.minimum(teacher_mass, 0))
    with np.errstate(divide="ignore"):  # a teacher whose top k hold all the mass has a tail of log 0 = −inf
        teacher_tail = np.log(np.where(teacher_rest > tolerance, teacher_rest, 0))
    tail_hi = student_tail.astype(student.dtype)
    teacher_hi = teacher_tail.astype(student.dtype)
    with np.errstate(invalid="ignore"):
        low = (student_tail - tail_hi) - (teacher_tail - teacher_hi)  # 0 in float64; float32's lost bits
    z = np.concatenate([gather(student, indices), tail_hi[:, None]], axis=-1)
    v = np.concatenate([values, teacher_hi[:, None]], axis=-1)
    low_part = np.zeros_like(z)
    low_part[:, -1] = np.where(np.isfinite(low), low, 0)
    m = match(z, v, 1.0, low=low_part)
    if student.dtype == np.float64:
        need = _needs_double_double(m, student_tail, teacher_tail)
        if need.any():
            for row in np.flatnonzero(need):
                lam = dd.logsumexp(student[row][complement[row]])
                mass = dd.row_sum(dd.exp_of_nonpositive((values[row], np.zeros(values.shape[-1]))))
                rest = dd.add((np.ones(1), np.zeros(1)), (-np.atleast_1d(mass[0]), -np.atleast_1d(mass[1])))
                if rest[0][0] <= tolerance:  # empty after all: as in the float64 rule above
                    z[row, -1], v[row, -1], low_part[row, -1] = lam[0], -np.inf, 0.0
                    continue
                t = dd.log(rest)
                z[row, -1], v[row, -1] = lam[0], t[0][0]
                low_part[row, -1] = lam[1] - t[1][0]
            m = match(z, v, 1.0, low=low_part)
    return Tail(m, student_tail.astype(student.dtype), complement, np.isneginf(teacher_tail))


def _needs_double_double(m: Match, student_tail: np.ndarray, teacher_tail: np.ndarray) -> np.ndarray:
    r"""Rows where the float64 error δ of the tail difference λ − t matters: 2δ/F > 5e-13, with
    :math:`F = (\sum_b q_b f_b^2)^{1/2} \approx \sqrt{2\,\mathrm{KL}}` the size of the log-ratios.

    An error δ in one bucket's log-ratio moves KL by at most :math:`\sqrt{q_t}\,F\,\delta` (Cauchy–Schwarz),
    about 2δ/F relative to KL ≈ F²/2, and the gradient by :math:`q_t\delta` against entries of size
    ~ q F; half the 1e-12 contract is left to them. δ bounds the rounding of λ, of t and of the 1 − Σ e^a
    hidden in t (≤ eps/τ absolute). At V = 128k (|λ| ≈ 12) this selects rows with KL ≲ 2e-3."""
    eps = np.finfo(np.float64).eps
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        tail_mass = np.exp(teacher_tail)
        error = 4 * eps * (np.abs(student_tail) + np.abs(teacher_tail) + 1 / tail_mass + 1)
        size = np.sqrt(np.sum(m.teacher_probs * m.log_ratio * m.log_ratio, axis=-1))
    finite = np.isfinite(student_tail) & np.isfinite(teacher_tail) & np.isfinite(size)
    return finite & ~(error <= 2.5e-13 * size)
