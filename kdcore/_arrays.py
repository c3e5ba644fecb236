"""Input checking and the dtype rules shared by every public function.

Every public function goes through these helpers, so that one rule holds everywhere:

* float32 in -> float32 out, float64 stays float64 (and ``np.longdouble`` stays itself);
* integers, bools and Python lists -> float64;
* float16 is computed (and returned) in float32, because float16 has too few bits for a stable softmax;
* bad input raises an error naming the parameter and the value it got, by one rule: a value of the wrong
  *type* (a string for a seed, a float for a count, a bool for a number) raises ``TypeError``; a value of
  the right type but outside what the parameter allows (a negative seed, T = 0, α = 1.5, NaN) raises
  ``ValueError``. :func:`check_int`, :func:`check_real` and :func:`check_choice` apply it for every module.

The reductions live here too, with the token-level mask (docs/divergences.md, "Token-level inputs and
reductions"): :func:`keep_positions` turns ``mask=`` and ``labels == ignore_index`` into one boolean
keep-mask of the leading shape, and its :class:`Kept` selects the kept rows *before* any arithmetic (so a
dropped position is never computed: its logits may be NaN) and spreads the results back, 0 at every
dropped position. Each loss's dispatcher calls it once; no loss handles masks itself.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

REDUCTIONS = ("none", "sum", "mean")


def _describe(value: object) -> str:
    """A short repr for error messages (arrays are summarised, not printed whole)."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The floating dtype a computation on ``arrays`` runs in (see the module docstring)."""
    dtype = np.result_type(*arrays)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    if dtype.kind != "f":
        raise TypeError(f"expected real numbers, got dtype {dtype}")
    if dtype.itemsize < 4:  # float16: too few bits for exp/log; compute in float32
        return np.dtype(np.float32)
    return dtype


def as_float_array(value: object, name: str, dtype: np.dtype | None = None) -> np.ndarray:
    """``value`` as a floating array (dtype rules above), raising errors that name ``name``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise ValueError(f"{name} must be an array of numbers, got {_describe(value)}") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype} ({_describe(value)})")
    target = float_dtype(array) if dtype is None else dtype
    return array.astype(target, copy=False)


def as_logits(value: object, name: str, dtype: np.dtype | None = None) -> np.ndarray:
    """Logits with a non-empty class axis last (at least one dimension)."""
    array = as_float_array(value, name, dtype)
    if array.ndim == 0:
        raise ValueError(f"{name} must have a class axis (at least 1 dimension), got a scalar {array!r}")
    if array.shape[-1] == 0:
        raise ValueError(f"{name} has an empty class axis: shape {array.shape}")
    return array


def as_logit_pair(student_logits: object, teacher_logits: object) -> tuple[np.ndarray, np.ndarray]:
    """Student and teacher logits of one shape, converted to their common floating dtype."""
    student = as_float_array(student_logits, "student_logits")
    teacher = as_float_array(teacher_logits, "teacher_logits")
    dtype = float_dtype(student, teacher)
    student = as_logits(student, "student_logits", dtype)
    teacher = as_logits(teacher, "teacher_logits", dtype)
    if student.shape != teacher.shape:
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape, "
            f"got {student.shape} and {teacher.shape}"
        )
    return student, teacher


def check_int(value: object, name: str, minimum: int | None = None) -> int:
    """``value`` as a Python int (NumPy integers too, never bools), at least ``minimum``.

    Examples
    --------
    >>> check_int(3, "seed", 0)
    3
    >>> check_int("a", "seed", 0)
    Traceback (most recent call last):
    ...
    TypeError: seed must be an integer ≥ 0, got seed='a'
    >>> check_int(-1, "seed", 0)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an integer ≥ 0, got seed=-1
    """
    what = "an integer" if minimum is None else f"an integer ≥ {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {name}={_describe(value)}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be {what}, got {name}={_describe(value)}")
    return number


def check_real(
    value: object,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a Python float in the interval from ``low`` to ``high`` (closed unless said open).

    NaN is never in the interval; infinities only where a bound is infinite and closed is impossible, so
    ``check_real(x, name)`` accepts any finite real number.

    Examples
    --------
    >>> check_real(0.5, "dropout", 0.0, 1.0, open_high=True)
    0.5
    >>> check_real(1.0, "dropout", 0.0, 1.0, open_high=True)
    Traceback (most recent call last):
    ...
    ValueError: dropout must be a number in [0, 1), got dropout=1.0
    """
    # Infinite bounds are never reached (the value must be finite), so they print as open.
    left = "(" if open_low or not math.isfinite(low) else "["
    right = ")" if open_high or not math.isfinite(high) else "]"
    interval = f"{left}{low:g}, {high:g}{right}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in {interval}, got {name}={_describe(value)}")
    number = float(value)
    inside = (
        math.isfinite(number)
        and (number > low if open_low else number >= low)
        and (number < high if open_high else number <= high)
    )
    if not inside:
        raise ValueError(f"{name} must be a number in {interval}, got {name}={_describe(value)}")
    return number


def check_temperature(T: object) -> float:
    """``T`` as a Python float; it must be a finite, positive real number."""
    if isinstance(T, bool) or not isinstance(T, numbers.Real | np.ndarray):
        raise TypeError(f"T must be a positive finite real number, got T={_describe(T)}")
    if isinstance(T, np.ndarray):
        if T.ndim != 0 or T.dtype.kind not in "iuf":
            raise TypeError(f"T must be a positive finite real number, got T={_describe(T)}")
        T = T.item()
    value = float(T)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"T must be a positive finite number, got T={T!r}")
    return value


def check_alpha(alpha: object) -> float:
    """``alpha`` as a Python float in [0, 1]."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number in [0, 1], got alpha={_describe(alpha)}")
    value = float(alpha)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"alpha must be in [0, 1], got alpha={alpha!r}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """``value`` must be one of ``choices`` (strings): TypeError for a non-string, ValueError for another one."""
    allowed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {allowed}, got {name}={_describe(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {allowed}, got {name}={_describe(value)}")
    return value


def label_array(labels: object, logits_shape: tuple[int, ...]) -> np.ndarray:
    """Integer labels of the leading shape of logits ``logits_shape`` (their range is checked by
    :func:`check_labels` once the dropped positions are known)."""
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"labels must be integer class indices, got dtype {array.dtype} ({_describe(labels)})"
        )
    if array.shape != logits_shape[:-1]:
        raise ValueError(
            f"labels must have shape {logits_shape[:-1]} (one per sample of logits with shape "
            f"{logits_shape}), got shape {array.shape}"
        )
    return array


def check_labels(labels: object, logits: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """Integer class indices, one per sample of ``logits`` (shape ``logits.shape[:-1]``), in [0, N).

    ``ignore_index`` is named in the error as the other allowed value (the caller has dropped its positions).
    """
    array = label_array(labels, logits.shape)
    n_classes = logits.shape[-1]
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= n_classes:
            bad = low if low < 0 else high
            dropped = (
                "" if ignore_index is None else f" (a label equal to ignore_index={ignore_index} is dropped)"
            )
            raise ValueError(f"labels must be in [0, {n_classes}), got a label {bad}{dropped}")
    return array.astype(np.intp, copy=False)


def check_mask(mask: object, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` as a boolean array of the leading shape ``shape`` (True = keep the position).

    Examples
    --------
    >>> check_mask([True, False], (2,))
    array([ True, False])
    >>> check_mask([1, 0], (2,))
    Traceback (most recent call last):
    ...
    TypeError: mask must be a boolean array (True = keep), got dtype int64 ([1, 0])
    >>> check_mask([True], (2, 3))
    Traceback (most recent call last):
    ...
    ValueError: mask must have the logits' leading shape (2, 3) (one entry per position), got shape (1,)
    """
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise TypeError(
            f"mask must be a boolean array (True = keep), got dtype {array.dtype} ({_describe(mask)})"
        )
    if array.shape != shape:
        raise ValueError(
            f"mask must have the logits' leading shape {shape} (one entry per position), got shape {array.shape}"
        )
    return array


@dataclass(frozen=True)
class Kept:
    """The positions (indices of the leading shape) a loss keeps: all of them, or those where ``keep`` is True.

    ``rows`` selects the kept positions of an input (a ``(K, ...)`` copy; the input itself when all are
    kept), so nothing is computed at a dropped position; ``reduce``/``reduce_grad``/``spread`` put the
    results of the kept rows back in the leading shape with 0.0 at every dropped position. The mean over
    the kept rows is the mean over kept positions, and 0.0 (with a zero gradient) when none is kept.
    """

    keep: np.ndarray | None  # boolean, the leading shape; None: every position is kept
    shape: tuple[int, ...]

    @property
    def none_kept(self) -> bool:
        # An empty batch (a leading shape with a 0 in it) keeps nothing either, and takes the same path.
        if self.keep is None:
            return 0 in self.shape
        return not self.keep.any()

    def rows(self, array: np.ndarray) -> np.ndarray:
        """The kept rows of ``array`` (leading shape ``shape``). With nothing kept, one row of zeros stands in
        (computed harmlessly and dropped again by ``reduce``/``spread``), so that no kernel meets an empty
        batch."""
        if self.none_kept:
            return np.zeros((1, *array.shape[len(self.shape) :]), dtype=array.dtype)
        if self.keep is None:
            return array
        return array[self.keep]

    def spread(self, kept: np.ndarray) -> np.ndarray:
        """Per-position results of the kept rows ``(K, ...)`` in the leading shape, 0 where dropped."""
        if self.none_kept:
            return np.zeros(self.shape + kept.shape[1:], dtype=kept.dtype)
        if self.keep is None:
            return kept
        full = np.zeros(self.shape + kept.shape[1:], dtype=kept.dtype)
        full[self.keep] = kept
        return full

    def reduce(self, values: np.ndarray, reduction: str) -> np.ndarray:
        """:func:`reduce` over the kept positions; ``"none"`` gives the leading shape, 0.0 where dropped."""
        reduced = reduce(values[:0] if self.none_kept else values, reduction)
        return self.spread(reduced) if reduction == "none" else reduced

    def reduce_grad(self, grad: np.ndarray, reduction: str) -> np.ndarray:
        """:func:`reduce_grad` over the kept rows, spread to the logits' shape (exactly 0 where dropped)."""
        return self.spread(reduce_grad(grad, reduction))

    def outputs(self, wants: tuple, results: tuple, reduction: str) -> tuple:
        """Per-row ``results`` of the kept rows, one for each entry of ``wants``, in their public form: a value
        or temperature derivative (None, "temperature") reduced, a gradient ("student", "teacher") reduced as
        gradients are, a Hessian ("hessian") spread, each with 0 at the dropped positions."""
        finished = []
        for wrt, result in zip(wants, results, strict=True):
            if wrt == "hessian":
                finished.append(self.spread(result))
            elif wrt in ("student", "teacher"):
                finished.append(self.reduce_grad(result, reduction))
            else:
                finished.append(self.reduce(result, reduction))
        return tuple(finished)


def keep_positions(
    mask: object,
    shape: tuple[int, ...],
    labels: np.ndarray | None = None,
    ignore_index: object = None,
) -> Kept:
    """The kept positions of logits with leading shape ``shape``: ``mask`` (True = keep) AND, where labels
    are given, ``labels != ignore_index``. A mask that keeps everything is no mask (no copy is made)."""
    keep = None if mask is None else check_mask(mask, shape)
    if labels is not None:
        ignore_index = check_int(ignore_index, "ignore_index")
        dropped = labels == ignore_index
        if dropped.any():
            keep = ~dropped if keep is None else keep & ~dropped
    if keep is not None and keep.all():
        keep = None
    return Kept(keep, shape)


def select(
    mask: object, arrays: tuple[np.ndarray, ...], labels: object = None, ignore_index: object = None
) -> tuple[Kept, tuple[np.ndarray, ...], np.ndarray | None]:
    """The kept positions of checked logits ``arrays`` (all of one shape), their kept rows, and the labels
    of the kept rows checked to be in [0, N) (``None`` for a loss without labels). Dropped positions'
    labels (``ignore_index``, or anything where ``mask`` is False) are not range-checked."""
    shape = arrays[0].shape
    label_values = None if labels is None else label_array(labels, shape)
    kept = keep_positions(mask, shape[:-1], label_values, ignore_index)
    rows = tuple(kept.rows(array) for array in arrays)
    if label_values is None:
        return kept, rows, None
    return kept, rows, check_labels(kept.rows(label_values), rows[0], ignore_index)


def reduce(values: np.ndarray, reduction: str) -> np.ndarray:
    """Reduce one value per sample: ``"none"`` keeps them, ``"sum"`` adds, ``"mean"`` averages over samples.

    ``"mean"`` is PyTorch's ``"batchmean"``: it divides by the number of samples, never by the number of
    classes. A single sample (1-D logits) is its own mean.
    """
    if reduction == "none":
        return values
    total = np.sum(values, dtype=values.dtype)
    if reduction == "sum":
        return total
    return total / values.dtype.type(max(values.size, 1))


def reduce_grad(grad: np.ndarray, reduction: str) -> np.ndarray:
    """Gradients are per sample for ``"none"`` and ``"sum"``; ``"mean"`` divides each by the sample count."""
    if reduction != "mean":
        return grad
    n_samples = math.prod(grad.shape[:-1])
    return grad / grad.dtype.type(max(n_samples, 1))
