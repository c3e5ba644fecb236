r"""The batteries of the newer losses: token-level inputs for the divergences, labelled batches for DKD.

A language-model distillation loss sees logits of shape ``(B, S, V)`` — batch, sequence, vocabulary — with
padding positions that must not count (labels ``-100``, or a boolean mask), and vocabularies with masked
entries. :data:`TOKEN_BATTERY` holds those inputs for ``--kind reverse-kl | jsd | skew-kl |
skew-reverse-kl``; :data:`DKD_BATTERY` the classification batches of ``--kind dkd``. Both run in float32 and
float64, seeded like :data:`kdcore.verify.battery.BATTERY`; ``docs/verify.md`` lists every row and why.

Every case carries ``keep``, the boolean keep-mask of the leading shape (``True`` = a position the loss must
count), and ``labels``: for the token battery the class ids with ``-100`` where ``keep`` is False (what a
trainer's collator produces); for DKD the target classes. Padded positions hold ordinary, *different*
logits — as a model's outputs at pad tokens do — so that a loss which counts them gets a different value.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from .battery import DTYPES, MASK_LOGIT, SEED, regime_logits

__all__ = [
    "DKD_BATTERY",
    "IGNORE_INDEX",
    "TOKEN_BATTERY",
    "FamilyCase",
    "FamilySpec",
    "family_cases",
    "family_infinite_mask_probe",
]

IGNORE_INDEX = -100  # PyTorch's CrossEntropyLoss default, and what Hugging Face collators write at padding


@dataclass(frozen=True)
class FamilySpec:
    """One row: a regime, a shape, a temperature, the weights, and how much of it is padding."""

    regime: str
    batch_size: int
    seq_len: int | None  # None: a (B, V) batch of samples, no sequence axis
    n_classes: int  # V
    T: float
    beta: float  # JSD's β (and DKD's β)
    skew: float  # the skew α of skew KL and skew reverse KL
    padding: float  # the fraction of positions padded at the end of each sequence (at least one kept)
    why: str
    alpha: float = 0.0  # DKD's α

    @property
    def shape(self) -> tuple[int, ...]:
        lead = (self.batch_size,) if self.seq_len is None else (self.batch_size, self.seq_len)
        return (*lead, self.n_classes)


# fmt: off
#: The token-level battery (``reverse-kl``, ``jsd``, ``skew-kl``, ``skew-reverse-kl``): 15 rows, 30 cases.
TOKEN_BATTERY: tuple[FamilySpec, ...] = (
    FamilySpec("ordinary", 1, None, 2, 1.0, 0.5, 0.1, 0.0, "the smallest problem: one sample, two classes"),
    FamilySpec("ordinary", 8, None, 10, 2.0, 0.1, 0.3, 0.0, "a (B, V) batch, as in image classification"),
    FamilySpec("tokens", 2, 5, 50, 1.0, 0.5, 0.1, 0.4, "(B, S, V) with -100 padding: GKD's and DistiLLM's defaults"),
    FamilySpec("tokens", 4, 8, 1000, 1.0, 0.9, 0.1, 0.5, "a 1000-word vocabulary, sequences of different lengths"),
    FamilySpec("tokens", 3, 4, 100, 4.0, 0.25, 0.2, 0.3, "a temperature above 1: T² or not"),
    FamilySpec("tokens", 2, 6, 30, 0.5, 0.7, 0.4, 0.0, "no padding: a mean over all positions is then right"),
    FamilySpec("tokens", 1, 7, 20, 3.7, 0.35, 0.15, 0.5, "one sequence: per-sequence and per-token means differ"),
    FamilySpec("near-equal", 2, 3, 20, 1.0, 0.5, 0.1, 0.3, "teacher = student + 1e-3 noise"),
    FamilySpec("equal", 2, None, 6, 2.0, 0.3, 0.1, 0.0, "teacher = student: every divergence is 0"),
    FamilySpec("extreme", 4, None, 10, 1.0, 0.6, 0.2, 0.0, "logits of magnitude 1e3 to 1e4"),
    FamilySpec("offset", 2, 4, 20, 2.0, 0.4, 0.3, 0.25, "logits shifted by +1e4 (student) and -5e3 (teacher)"),
    FamilySpec("masked", 2, 5, 40, 1.0, 0.5, 0.1, 0.4, "a fifth of the vocabulary masked with -1e9 in both"),
    FamilySpec("masked", 3, None, 12, 2.0, 0.2, 0.25, 0.0, "masked classes in a (B, V) batch"),
    FamilySpec("beta-0", 2, 4, 12, 1.5, 0.0, 0.05, 0.25, "β = 0: where trl switches to forward KL"),
    FamilySpec("beta-1", 2, 4, 12, 1.0, 1.0, 0.5, 0.25, "β = 1: where trl switches to reverse KL"),
)

#: The DKD battery (``--kind dkd``): classification batches with labels, 11 rows, 22 cases.
DKD_BATTERY: tuple[FamilySpec, ...] = (
    FamilySpec("ordinary", 1, None, 2, 1.0, 8.0, 0.0, 0.0, "one sample, two classes: NCKD is over one class", 1.0),
    FamilySpec("ordinary", 8, None, 10, 4.0, 8.0, 0.0, 0.0, "mdistiller's CIFAR-100 setting: α = 1, β = 8, T = 4", 1.0),
    FamilySpec("ordinary", 64, None, 100, 4.0, 2.0, 0.0, 0.0, "CIFAR-100-sized class axis", 1.0),
    FamilySpec("ordinary", 5, None, 7, 0.5, 1.0, 0.0, 0.0, "T < 1 and α = 0.5", 0.5),
    FamilySpec("high-T", 16, None, 100, 20.0, 4.0, 0.0, 0.0, "a high temperature", 2.0),
    FamilySpec("near-equal", 4, None, 10, 2.0, 8.0, 0.0, 0.0, "teacher = student + 1e-3 noise", 1.0),
    FamilySpec("equal", 2, None, 6, 3.0, 8.0, 0.0, 0.0, "teacher = student: both parts 0", 1.0),
    FamilySpec("confident", 4, None, 10, 1.0, 8.0, 0.0, 0.0, "the target logit 30 above the rest", 1.0),
    FamilySpec("extreme", 2, None, 50, 0.5, 8.0, 0.0, 0.0, "logits up to ±1e4 at T = 0.5", 1.0),
    FamilySpec("masked", 6, None, 12, 2.0, 8.0, 0.0, 0.0, "a third of the classes masked with -1e9", 1.0),
    FamilySpec("dominant-target", 4, None, 10, 2.0, 8.0, 0.0, 0.0, "the target 5e3 above the rest: mdistiller's -1000 leaks", 1.0),
)
# fmt: on
_INDEX_BASE = {"token": 100, "dkd": 200}  # seeds distinct from the Hinton battery's


@dataclass(frozen=True, eq=False)  # compared by identity: its fields are arrays
class FamilyCase:
    """One case: a spec, a dtype, the logits, the vocabulary mask, the keep-mask and the labels."""

    index: int
    spec: FamilySpec
    dtype: np.dtype
    student_logits: np.ndarray  # (B, V) or (B, S, V) in ``dtype``
    teacher_logits: np.ndarray
    labels: np.ndarray  # leading shape, int64: -100 where not kept (token battery) or targets (DKD)
    mask: np.ndarray  # the logits' shape, bool: True where a vocabulary entry is masked
    keep: np.ndarray  # leading shape, bool: True where the position counts

    @property
    def id(self) -> str:
        return f"{self.index + 1:02d}-{self.spec.regime}-{self.dtype.name}"

    @property
    def padded(self) -> bool:
        return not bool(np.all(self.keep))


def _inputs(index: int, spec: FamilySpec, battery: str, mask_value: float) -> tuple[np.ndarray, ...]:
    """The float64 inputs of one row (the same for both dtypes)."""
    rng = np.random.default_rng([SEED, _INDEX_BASE[battery], index])
    shape, lead, V = spec.shape, spec.shape[:-1], spec.n_classes
    student, teacher = regime_logits(rng, spec.regime, shape)
    vocab_mask = np.zeros(shape, dtype=bool)
    if spec.regime in ("masked", "masked-inf"):
        # Entries masked in both, the same at every position (a vocabulary padded or restricted): V/5 of
        # the token vocabulary, a third of a class axis; at least two left.
        share = 1 / 5 if spec.seq_len is not None else 1 / 3
        masked = rng.permutation(V)[: max(1, min(V - 2, round(V * share)))]
        vocab_mask[..., masked] = True
        student, teacher = (
            np.where(vocab_mask, mask_value, student),
            np.where(vocab_mask, mask_value, teacher),
        )
    allowed = np.flatnonzero(~vocab_mask.reshape(-1, V)[0])
    labels = rng.choice(allowed, lead).astype(np.int64)
    if spec.regime in ("confident", "dominant-target"):  # DKD: the target far above the rest: p_t, q_t ≈ 1
        rows = np.arange(spec.batch_size)
        gap = 30.0 if spec.regime == "confident" else 5e3
        student[rows, labels] += gap
        teacher[rows, labels] += gap
    keep = np.ones(lead, dtype=bool)
    if spec.seq_len is not None and spec.padding > 0:
        # Right padding of a different length per sequence, about `padding` of the positions in all, each
        # sequence keeping at least one position.
        for b in range(spec.batch_size):
            padded = min(spec.seq_len - 1, int(rng.integers(0, 2 * spec.padding * spec.seq_len + 1)))
            keep[b, spec.seq_len - padded :] = False
        if np.all(keep):
            keep[0, -1] = False
    if battery == "token":
        labels = np.where(keep, labels, IGNORE_INDEX)
    return student, teacher, labels, vocab_mask, keep


def _battery(kind: str) -> tuple[str, tuple[FamilySpec, ...]]:
    return ("dkd", DKD_BATTERY) if kind == "dkd" else ("token", TOKEN_BATTERY)


def _fixed(spec: FamilySpec, fixed: tuple[tuple[str, float], ...]) -> FamilySpec:
    return dataclasses.replace(spec, **dict(fixed)) if fixed else spec


@functools.cache
def family_cases(kind: str, fixed: tuple[tuple[str, float], ...] = ()) -> tuple[FamilyCase, ...]:
    """The cases of ``kind``'s battery, built once per process; ``fixed`` = (("T", 1.0), ...) built in."""
    battery, rows = _battery(kind)
    cases = []
    for dtype in DTYPES:
        for index, row in enumerate(rows):
            spec = _fixed(row, fixed)
            student, teacher, labels, vocab_mask, keep = _inputs(index, row, battery, MASK_LOGIT)
            cases.append(
                FamilyCase(
                    index, spec, dtype, student.astype(dtype), teacher.astype(dtype), labels, vocab_mask, keep
                )
            )
    return tuple(cases)


@functools.cache
def family_infinite_mask_probe(kind: str, fixed: tuple[tuple[str, float], ...] = ()) -> FamilyCase:
    """An extra case, not part of the verdict: vocabulary entries masked with −inf in both."""
    battery, rows = _battery(kind)
    row = FamilySpec("masked-inf", 2, None, 12, 2.0, 0.5, 0.1, 0.0, "entries masked with -inf", 1.0)
    if battery == "token":
        row = dataclasses.replace(row, seq_len=3, padding=0.3)
    spec = _fixed(row, fixed)
    student, teacher, labels, vocab_mask, keep = _inputs(len(rows), row, battery, -np.inf)
    return FamilyCase(len(rows), spec, np.dtype(np.float64), student, teacher, labels, vocab_mask, keep)
