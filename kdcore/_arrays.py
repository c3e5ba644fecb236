"""Input checking and the dtype rules shared by every public function.

Every public function goes through these helpers, so that one rule holds everywhere:

* float32 in -> float32 out, float64 stays float64 (and ``np.longdouble`` stays itself);
* integers, bools and Python lists -> float64;
* float16 is computed (and returned) in float32, because float16 has too few bits for a stable softmax;
* bad input raises an error naming the parameter and the value it got, by one rule: a value of the wrong
  *type* (a string for a seed, a float for a count, a bool for a number) raises ``TypeError``; a value of
  the right type but outside what the parameter allows (a negative seed, T = 0, α = 1.5, NaN) raises
  ``ValueError``. :func:`check_int`, :func:`check_real` and :func:`check_choice` apply it for every module.
"""

from __future__ import annotations

import math
import numbers

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


def check_labels(labels: object, logits: np.ndarray) -> np.ndarray:
    """Integer class indices, one per sample of ``logits`` (shape ``logits.shape[:-1]``), in [0, N)."""
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"labels must be integer class indices, got dtype {array.dtype} ({_describe(labels)})"
        )
    if array.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have shape {logits.shape[:-1]} (one per sample of logits with shape "
            f"{logits.shape}), got shape {array.shape}"
        )
    n_classes = logits.shape[-1]
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= n_classes:
            bad = low if low < 0 else high
            raise ValueError(f"labels must be in [0, {n_classes}), got a label {bad}")
    return array.astype(np.intp, copy=False)


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
