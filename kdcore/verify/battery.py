r"""The battery: the fixed, seeded inputs every checked loss runs on.

Thirteen rows (:data:`BATTERY`), each a regime, a shape, a temperature and a weight α, run in float32 and
float64. ``docs/verify.md`` lists them with the reason each one is there.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BATTERY",
    "DTYPES",
    "FINITE_DIFFERENCE_REGIMES",
    "LARGE_LOGIT_REGIMES",
    "MASK_LOGIT",
    "SEED",
    "Case",
    "CaseSpec",
    "battery_cases",
    "case_inputs",
    "infinite_mask_probe",
    "regime_logits",
]

SEED = 20150309  # the date Hinton et al. posted the paper, as in the tests
MASK_LOGIT = -1e9  # masked classes: a large *finite* negative logit (see the "masked" regime below)
# Regimes whose logits are large: a non-finite result there (and only there) is "numerically-unstable".
LARGE_LOGIT_REGIMES = frozenset({"extreme", "offset", "masked", "dominant-target"})
# Finite differences (NumPy losses without grad_fn) only where a step of ~1e-4 probes the function well.
FINITE_DIFFERENCE_REGIMES = frozenset({"ordinary", "high-T", "near-equal", "equal", "masked"})


@dataclass(frozen=True)
class CaseSpec:
    """One row of the battery: a regime, a shape, a temperature and (for distillation) a weight α."""

    regime: str
    batch_size: int
    n_classes: int
    T: float
    alpha: float
    why: str


#: The battery, run in float32 and in float64 (26 cases). Inputs are seeded (``SEED`` and the row index),
#: so every run and machine sees the same numbers; float32 cases round the float64 draws.
BATTERY: tuple[CaseSpec, ...] = (
    CaseSpec("ordinary", 1, 2, 1.0, 0.5, "the smallest problem: one sample, two classes"),
    CaseSpec("ordinary", 8, 10, 4.0, 0.1, "a typical batch and the paper's kind of temperature"),
    CaseSpec("ordinary", 64, 1000, 2.0, 0.9, "the largest shape: ImageNet-sized class axis"),
    CaseSpec("ordinary", 3, 5, 0.5, 0.0, "a temperature below 1 (sharpening); α = 0: soft term only"),
    CaseSpec("high-T", 16, 100, 20.0, 0.25, "a high temperature, where T² matters most"),
    CaseSpec("ordinary", 5, 7, 3.7, 1.0, "a temperature that is not a power of 2; α = 1: hard term only"),
    CaseSpec("near-equal", 4, 10, 2.0, 0.5, "teacher = student + 1e-3 noise: KL ~ 1e-7"),
    CaseSpec("equal", 2, 6, 3.0, 0.3, "teacher = student: KL = 0 exactly"),
    CaseSpec("extreme", 4, 10, 1.0, 0.6, "logits of magnitude 1e3 to 1e4; student and teacher disagree"),
    CaseSpec("extreme", 2, 50, 0.5, 0.2, "logits up to ±1e4 at T = 0.5: exp(z/T) overflows"),
    CaseSpec("offset", 8, 20, 5.0, 0.7, "ordinary logits shifted by +1e4 (student) and −5e3 (teacher)"),
    CaseSpec("masked", 6, 12, 2.0, 0.4, "a third of the classes masked with logit −1e9 in both"),
    CaseSpec("ordinary", 4, 3, 1.5, 0.0, "α = 0 again, at T > 1: a bug at α = 0 is told from one at T < 1"),
)
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True, eq=False)  # compared by identity: its fields are arrays
class Case:
    """One case of the battery: a spec, a dtype and the inputs."""

    index: int
    spec: CaseSpec
    dtype: np.dtype
    student_logits: np.ndarray  # (B, N) in ``dtype``
    teacher_logits: np.ndarray
    labels: np.ndarray  # (B,) int64, never on a masked class
    mask: np.ndarray  # (B, N) bool, True where a class is masked

    @property
    def id(self) -> str:
        return f"{self.index + 1:02d}-{self.spec.regime}-{self.dtype.name}"


def regime_logits(
    rng: np.random.Generator, regime: str, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Student and teacher logits of a regime (masks are the caller's): ordinary draws, then the regime's change."""
    student = rng.normal(0.0, 3.0, shape)
    teacher = rng.normal(0.0, 4.0, shape)  # a somewhat sharper teacher than student, as after training
    if regime == "near-equal":
        teacher = student + 1e-3 * rng.standard_normal(shape)
    elif regime == "equal":
        teacher = student.copy()
    elif regime == "extreme":
        student = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(3.0, 4.0, shape)
        teacher = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(3.0, 4.0, shape)
    elif regime == "offset":
        student, teacher = student + 1e4, teacher - 5e3
    return student, teacher


def case_inputs(index: int, spec: CaseSpec, mask_value: float = MASK_LOGIT) -> tuple[np.ndarray, ...]:
    """The float64 inputs of one battery row (the same for both dtypes)."""
    rng = np.random.default_rng([SEED, index])
    shape = (spec.batch_size, spec.n_classes)
    student, teacher = regime_logits(rng, spec.regime, shape)
    mask = np.zeros(shape, dtype=bool)
    if spec.regime in ("masked", "masked-inf"):
        # The same classes masked in student and teacher (a padded vocabulary), at least 2 left per row.
        mask = rng.random(shape) < 1 / 3
        mask[:, :2] = False
        mask = np.take_along_axis(mask, rng.permuted(np.tile(np.arange(shape[1]), (shape[0], 1)), axis=1), 1)
        student, teacher = np.where(mask, mask_value, student), np.where(mask, mask_value, teacher)
    labels = np.array([rng.choice(np.flatnonzero(~row)) for row in mask], dtype=np.int64)
    return student, teacher, labels, mask


def _fixed(spec: CaseSpec, T: float | None, alpha: float | None) -> CaseSpec:
    """``spec`` at the temperature and weight a loss has built in (None: the battery's own)."""
    return dataclasses.replace(
        spec, T=spec.T if T is None else T, alpha=spec.alpha if alpha is None else alpha
    )


@functools.cache
def battery_cases(T: float | None = None, alpha: float | None = None) -> tuple[Case, ...]:
    """The battery's cases, built once per process (adapters copy the arrays before any call).

    ``T`` and ``alpha`` replace every row's temperature and weight, for a loss that has them built in
    (the inputs stay the same: they do not depend on either).
    """
    cases = []
    for dtype in DTYPES:
        for index, row in enumerate(BATTERY):
            spec = _fixed(row, T, alpha)
            student, teacher, labels, mask = case_inputs(index, spec)
            cases.append(Case(index, spec, dtype, student.astype(dtype), teacher.astype(dtype), labels, mask))
    return tuple(cases)


@functools.cache
def infinite_mask_probe(T: float | None = None, alpha: float | None = None) -> Case:
    """An extra case, not part of the verdict: classes masked with −inf, as many codebases do."""
    spec = _fixed(CaseSpec("masked-inf", 2, 6, 2.0, 0.5, "classes masked with -inf in both"), T, alpha)
    student, teacher, labels, mask = case_inputs(len(BATTERY), spec, mask_value=-np.inf)
    return Case(len(BATTERY), spec, np.dtype(np.float64), student, teacher, labels, mask)
