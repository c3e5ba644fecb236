r"""The battery of ``--kind topk``: a dense student against a teacher stored as its top k.

A cached-teacher pipeline stores, per token, the teacher's k largest log-probabilities and their vocabulary
ids; the student's logits are dense, ``(B, V)`` or ``(B, S, V)``. Each case holds

* ``student_logits`` (the leading shape, V), ``teacher_values`` and ``teacher_indices`` (the leading shape,
  k) — the values are the teacher's **log-probabilities** at T = 1, largest first, as vLLM, DistillKit's
  capture and verl's GKD recipe store them (a loss that takes top-k *logits* and renormalises them over the
  k classes computes the same value on log-probabilities: the two differ by a constant per position);
* ``labels`` (-100 at padding) and ``keep`` (True where a position counts), ``mask`` (the logits' shape,
  True where a vocabulary entry is masked).

Padding positions hold ordinary, *different* values, so that a loss which counts them gets a different
value. The rows vary what tells the top-k conventions apart (``docs/verify.md`` lists them): k from 1 to V,
ties among the stored values and at the k-th place, masked vocabulary, T ≠ 1 (where only the renormalised
conventions are defined), a teacher whose top k hold all but 1e-10 … 1e-3 of its mass (where clamping the
tail bucket shows), a student equal to the teacher.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ..softmax import log_softmax
from ..topk import topk_teacher
from .battery import DTYPES, MASK_LOGIT, SEED, regime_logits
from .token_battery import IGNORE_INDEX

__all__ = ["TOPK_BATTERY", "TopKCase", "TopKSpec", "topk_cases", "topk_infinite_mask_probe"]


@dataclass(frozen=True)
class TopKSpec:
    """One row: a regime, a shape, k, a temperature, the share of padding, and why the row is there."""

    regime: str
    batch_size: int
    seq_len: int | None  # None: a (B, V) batch, no sequence axis
    n_classes: int  # V
    k: int
    T: float
    padding: float  # about this share of the positions is right padding (each sequence keeps one)
    why: str
    float64_only: bool = False  # tails of 1e-10 are below float32's resolution of 1 − Σ q
    alpha: float = 0.0  # no α in a top-k loss; the shared diagnosis reads spec.alpha of every kind's rows

    @property
    def shape(self) -> tuple[int, ...]:
        lead = (self.batch_size,) if self.seq_len is None else (self.batch_size, self.seq_len)
        return (*lead, self.n_classes)


# fmt: off
#: The top-k battery: 14 rows, 27 cases (the "confident" row runs in float64 only).
TOPK_BATTERY: tuple[TopKSpec, ...] = (
    TopKSpec("ordinary", 4, None, 10, 3, 1.0, 0.0, "a (B, V) batch, k = 3 of 10"),
    TopKSpec("tokens", 2, 5, 50, 8, 1.0, 0.4, "(B, S, V) with -100 padding, k = 8"),
    TopKSpec("tokens", 4, 6, 1000, 20, 1.0, 0.5, "a 1000-word vocabulary, k = 20, sequences of different lengths"),
    TopKSpec("tokens", 3, 4, 100, 5, 2.0, 0.3, "T = 2: T² or not; the tail is not defined there"),
    TopKSpec("tokens", 2, 4, 30, 6, 0.5, 0.25, "T = 0.5"),
    TopKSpec("k-equals-V", 2, 3, 12, 12, 1.0, 0.3, "k = V: the three conventions are the dense KL"),
    TopKSpec("k-1", 2, 4, 20, 1, 1.0, 0.25, "k = 1: renormalised, the teacher is one class and the loss 0"),
    TopKSpec("ties", 3, 4, 16, 4, 1.0, 0.25, "teacher logits on a grid of 1: ties among the k and at the k-th"),
    TopKSpec("masked", 2, 5, 40, 6, 1.0, 0.4, "a fifth of the vocabulary masked with -1e9 in both"),
    TopKSpec("masked", 2, 3, 12, 12, 1.0, 0.0, "k = V over a masked vocabulary: stored log-probabilities of -1e9"),
    TopKSpec("near-equal", 2, 3, 20, 5, 1.0, 0.3, "teacher = student + 1e-3 noise"),
    TopKSpec("equal", 3, None, 8, 3, 1.0, 0.0, "teacher = student: renormalized 0, dense_student −log P_K"),
    TopKSpec("offset", 2, 4, 20, 4, 1.0, 0.25, "student logits shifted by +1e4"),
    TopKSpec("confident", 2, 6, 30, 5, 1.0, 0.0, "the top k hold all but 1e-10 … 1e-3: a clamped tail shows",
             float64_only=True),
)
# fmt: on
_INDEX_BASE = 300  # seeds distinct from the Hinton battery's and the token battery's


@dataclass(frozen=True, eq=False)  # compared by identity: its fields are arrays
class TopKCase:
    """One case: a spec, a dtype, the dense student, the stored teacher, the masks and labels."""

    index: int
    spec: TopKSpec
    dtype: np.dtype
    student_logits: np.ndarray  # (..., V) in ``dtype``
    teacher_values: np.ndarray  # (..., k) in ``dtype``: log-probabilities at T = 1, largest first
    teacher_indices: np.ndarray  # (..., k) int64
    labels: np.ndarray  # leading shape, int64, -100 where not kept
    mask: np.ndarray  # the logits' shape, bool: True where a vocabulary entry is masked
    keep: np.ndarray  # leading shape, bool: True where the position counts

    @property
    def id(self) -> str:
        return f"{self.index + 1:02d}-{self.spec.regime}-{self.dtype.name}"

    @property
    def padded(self) -> bool:
        return not bool(np.all(self.keep))


def _confident(rng: np.random.Generator, shape: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    """A teacher whose top k hold all but a tail of 1e-10 … 1e-3 (log-uniform per position), and a student
    near it: the tail bucket of both is tiny, where an ε clamp changes the loss."""
    V = shape[-1]
    teacher = rng.normal(0.0, 1.0, shape)
    top = np.argsort(-teacher, axis=-1)[..., :k]
    tail = 10.0 ** rng.uniform(-10.0, -3.0, shape[:-1])
    # Lifting the k classes by g makes the tail ≈ (V − k)·e^{-g}/(k + (V − k)·e^{-g}): solve for g.
    gap = np.log((V - k) / k) - np.log(tail)
    lift = np.zeros(shape)
    np.put_along_axis(lift, top, gap[..., None], axis=-1)
    teacher = teacher + lift
    return teacher + 0.3 * rng.standard_normal(shape), teacher


def _inputs(index: int, spec: TopKSpec, mask_value: float) -> tuple[np.ndarray, ...]:
    """The float64 inputs of one row: student, teacher values and indices, labels, vocabulary mask, keep."""
    rng = np.random.default_rng([SEED, _INDEX_BASE, index])
    shape, lead, V = spec.shape, spec.shape[:-1], spec.n_classes
    if spec.regime == "confident":
        student, teacher = _confident(rng, shape, spec.k)
    else:
        base = "ordinary" if spec.regime in ("tokens", "k-equals-V", "k-1", "ties", "masked") else spec.regime
        student, teacher = regime_logits(rng, base, shape)
        if spec.regime == "offset":
            teacher = rng.normal(0.0, 4.0, shape)  # only the student is shifted: the teacher stores log-probs
    if spec.regime == "ties":
        teacher = np.round(teacher)
    vocab_mask = np.zeros(shape, dtype=bool)
    if spec.regime in ("masked", "masked-inf"):
        masked = rng.permutation(V)[: max(1, min(V - spec.k if spec.k < V else V - 2, round(V / 5)))]
        vocab_mask[..., masked] = True
        student = np.where(vocab_mask, mask_value, student)
        teacher = np.where(vocab_mask, mask_value, teacher)
    values, indices = topk_teacher(teacher, spec.k, values="log_probs")
    if spec.k == V:  # stored in full: log_softmax of the teacher, its rows summing to 1 up to rounding
        values = np.take_along_axis(log_softmax(teacher), indices, axis=-1)
    allowed = np.flatnonzero(~vocab_mask.reshape(-1, V)[0])
    labels = rng.choice(allowed, lead).astype(np.int64)
    keep = np.ones(lead, dtype=bool)
    if spec.seq_len is not None and spec.padding > 0:
        for b in range(spec.batch_size):
            padded = min(spec.seq_len - 1, int(rng.integers(0, 2 * spec.padding * spec.seq_len + 1)))
            keep[b, spec.seq_len - padded :] = False
        if np.all(keep):
            keep[0, -1] = False
    labels = np.where(keep, labels, IGNORE_INDEX)
    return student, values, indices.astype(np.int64), labels, vocab_mask, keep


def _fixed(spec: TopKSpec, fixed: tuple[tuple[str, float], ...]) -> TopKSpec:
    return dataclasses.replace(spec, **dict(fixed)) if fixed else spec


def _case(index: int, row: TopKSpec, spec: TopKSpec, dtype: np.dtype, mask_value: float) -> TopKCase:
    student, values, indices, labels, vocab_mask, keep = _inputs(index, row, mask_value)
    return TopKCase(
        index, spec, dtype, student.astype(dtype), values.astype(dtype), indices, labels, vocab_mask, keep
    )


@functools.cache
def topk_cases(fixed: tuple[tuple[str, float], ...] = ()) -> tuple[TopKCase, ...]:
    """The battery's cases, built once per process; ``fixed`` = (("T", 1.0),) runs every row at that T."""
    cases = []
    for dtype in DTYPES:
        for index, row in enumerate(TOPK_BATTERY):
            if row.float64_only and dtype != np.float64:
                continue
            cases.append(_case(index, row, _fixed(row, fixed), dtype, MASK_LOGIT))
    return tuple(cases)


@functools.cache
def topk_infinite_mask_probe(fixed: tuple[tuple[str, float], ...] = ()) -> TopKCase:
    """An extra case, not part of the verdict: k = V over a vocabulary masked with −inf in both, so that the
    stored log-probabilities hold −inf (0·log 0 must be 0)."""
    row = TopKSpec("masked-inf", 2, 3, 12, 12, 1.0, 0.3, "k = V, entries masked with -inf")
    return _case(len(TOPK_BATTERY), row, _fixed(row, fixed), np.dtype(np.float64), -np.inf)
