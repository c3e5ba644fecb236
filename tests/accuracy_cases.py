"""The accuracy regimes kdcore promises 1e-12 relative in, and kdcore-vs-oracle comparisons over them.

Shared by tests/test_accuracy.py (which asserts the bound) and benchmarks/accuracy_report.py (which prints
the worst error per regime). Each case is a small batch of (student_logits, teacher_logits, T) in float64;
the oracle is tests/oracle.py (mpmath, adaptive precision).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import oracle

import kdcore
from kdcore import _fast

# Results below this size are subnormal or nearly so: their relative precision is not float64's to give
# (a subnormal has fewer than 53 significant bits), so errors are measured against at least this floor.
FLOOR = 1e-290


@dataclass(frozen=True)
class Case:
    regime: str
    label: str
    student: np.ndarray
    teacher: np.ndarray
    T: float


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def cases() -> Iterator[Case]:
    # Ordinary logits, class counts from 2 to 1000.
    for seed, (n, scale, T) in enumerate(
        [(2, 3.0, 1.0), (10, 3.0, 0.5), (10, 5.0, 4.0), (100, 3.0, 20.0), (1000, 4.0, 2.0)]
    ):
        rng = _rng(seed)
        yield Case(
            "random", f"N={n} T={T}", rng.normal(size=(3, n)) * scale, rng.normal(size=(3, n)) * scale, T
        )
    # Student ≈ teacher: v = z + ε·noise, so KL ~ ε² (down to ~1e-25).
    for seed, eps in enumerate([1e-3, 1e-6, 1e-9, 1e-12]):
        rng = _rng(100 + seed)
        for T in (1.0, 4.0):
            z = rng.normal(size=(3, 10)) * 3
            yield Case("near-equal", f"eps={eps:g} T={T}", z, z + eps * rng.normal(size=z.shape), T)
    # Temperatures from 1e-3 to 1e9, ordinary and near-equal logits.
    for seed, T in enumerate([1e-3, 1e-2, 0.1, 1e3, 1e6, 1e9]):
        rng = _rng(200 + seed)
        z = rng.normal(size=(3, 10)) * 3
        yield Case("temperature", f"T={T:g}", z, rng.normal(size=(3, 10)) * 3, T)
        yield Case("temperature", f"T={T:g} near-equal", z, z + 1e-9 * rng.normal(size=z.shape), T)
    # Logits up to ±1e300.
    for seed, (scale, T) in enumerate(
        [(1e300, 1.0), (1e300, 1e-3), (1e300, 1e9), (1e150, 1e150), (1e100, 1e98)]
    ):
        rng = _rng(300 + seed)
        z = rng.normal(size=(3, 6)) * scale
        yield Case("huge logits", f"|z|~{scale:g} T={T:g}", z, rng.normal(size=(3, 6)) * scale, T)
        yield Case("huge logits", f"|z|~{scale:g} T={T:g} shared offset", z, z * (1 + 1e-15), T)
    # Masked classes: both, teacher only; with ordinary and near-equal logits.
    for seed, T in enumerate([0.5, 2.0, 1e4]):
        rng = _rng(400 + seed)
        z, v = rng.normal(size=(3, 8)) * 3, rng.normal(size=(3, 8)) * 3
        z[:, 1] = v[:, 1] = -np.inf
        v[0, 3] = -np.inf  # teacher-only mask: q = 0, but the student's normaliser keeps the class
        v[2, [4, 6]] = -np.inf
        yield Case("masked", f"T={T:g}", z, v, T)
        near = z + 1e-10 * rng.normal(size=z.shape)
        near[:, 1] = -np.inf
        yield Case("masked", f"T={T:g} near-equal", z, near, T)
    # The fast kernel's certificate boundary: rows just inside (margin 0.9, the fast result is returned) and
    # just outside it (margin 1.1, recomputed by the careful algorithm); see tests/test_certificate.py.
    for seed, (n, T, offset) in enumerate([(10, 1.0, 0.0), (100, 4.0, 2.0), (1000, 0.5, -5.0)]):
        for margin in (0.9, 1.1):
            z, v = boundary_pair(_rng(600 + seed), n, T, 3.0, offset, margin)
            yield Case("certificate boundary", f"N={n} T={T:g} margin={margin}", z, v, T)
    # A large offset common to both inputs: only differences matter, and they must not be rounded away.
    for seed, offset in enumerate([1e6, 1e12]):
        rng = _rng(500 + seed)
        w = rng.normal(size=(3, 10))
        yield Case(
            "common offset",
            f"offset={offset:g}",
            w + offset,
            w + offset + 1e-3 * rng.normal(size=w.shape),
            1.0,
        )


def fast_margin(student: np.ndarray, teacher: np.ndarray, T: float) -> np.ndarray:
    """Per row: the fast kernel's certificate margin for KL and its student gradient (≤ 1: certified)."""
    rows = _fast._fast_chunk(student, teacher, T, False, np.empty_like(student), 1.0)
    return np.where(rows.kl[:, 0] > 0, rows.margin, np.inf)


def boundary_pair(
    rng: np.random.Generator,
    n: int,
    T: float,
    scale: float,
    offset: float,
    margin: float,
    dtype=np.float64,
    rows: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose certificate margin is ``margin`` (to 1 %): teacher ~ N(0, scale²), student = teacher +
    offset + T·η·noise, with η found by bisection (the margin falls as η grows)."""
    teacher = (rng.normal(size=(rows, n)) * scale).astype(dtype)
    noise = rng.normal(size=(rows, n))
    student = np.empty_like(teacher)
    for i in range(rows):

        def row(log_eta, i=i):
            return (teacher[i] + offset + T * np.exp(log_eta) * noise[i]).astype(dtype)[None]

        low, high = np.log(1e-12), np.log(10.0)  # margin(low) > margin > margin(high)
        for _ in range(60):
            middle = (low + high) / 2
            if fast_margin(row(middle), teacher[i : i + 1], T)[0] > margin:
                low = middle
            else:
                high = middle
        student[i] = row(high)[0]
    return student, teacher


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Worst normwise relative error over samples: max_i |a_i − e_i| / max(max_i |e_i|, FLOOR) per sample.

    Equal infinities and NaN-vs-NaN count as exact; an infinity or NaN on one side only is an infinite error.
    """
    actual, expected = np.atleast_1d(np.asarray(actual, float)), np.atleast_1d(np.asarray(expected, float))
    if actual.shape != expected.shape:
        raise AssertionError(f"shape {actual.shape} != {expected.shape}")
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    if same.all():
        return 0.0
    if not (np.isfinite(actual[~same]).all() and np.isfinite(expected[~same]).all()):
        return float("inf")
    diff = np.where(same, 0.0, np.abs(actual - np.where(same, 0.0, expected)))
    scale = np.where(np.isfinite(expected), np.abs(expected), 0.0)
    if diff.ndim >= 2:  # vectors per sample: normwise over the class axis (and the matrix axes)
        diff, scale = diff.reshape(diff.shape[0], -1), scale.reshape(scale.shape[0], -1)
        return float(np.max(diff.max(axis=1) / np.maximum(scale.max(axis=1), FLOOR)))
    return float(np.max(diff / np.maximum(scale, FLOOR)))


# Each quantity: (kdcore's value, the oracle's value) for one case, no reduction.
QUANTITIES = {
    "softmax(student)": (lambda c: kdcore.softmax(c.student, c.T), lambda c: oracle.softmax(c.student, c.T)),
    "log_softmax(student)": (
        lambda c: kdcore.log_softmax(c.student, c.T),
        lambda c: oracle.log_softmax(c.student, c.T),
    ),
    "logsumexp(student)": (
        lambda c: kdcore.logsumexp(c.student, c.T),
        lambda c: oracle.logsumexp(c.student, c.T),
    ),
    "kl_divergence": (
        lambda c: kdcore.kl_divergence(c.student, c.teacher, c.T, "none"),
        lambda c: oracle.kl_divergence(c.student, c.teacher, c.T),
    ),
    "soft_cross_entropy": (
        lambda c: kdcore.soft_cross_entropy(c.student, c.teacher, c.T, "none"),
        lambda c: oracle.soft_cross_entropy(c.student, c.teacher, c.T),
    ),
    "kl_divergence_hessian": (
        lambda c: kdcore.kl_divergence_hessian(c.student, c.teacher, c.T),
        lambda c: oracle.kl_divergence_hessian(c.student, c.teacher, c.T),
    ),
}
for _wrt in ("student", "teacher", "temperature"):
    QUANTITIES[f"kl_divergence_grad[{_wrt}]"] = (
        lambda c, wrt=_wrt: kdcore.kl_divergence_grad(c.student, c.teacher, c.T, "none", wrt),
        lambda c, wrt=_wrt: oracle.kl_divergence_grad(c.student, c.teacher, c.T, wrt),
    )
    QUANTITIES[f"soft_cross_entropy_grad[{_wrt}]"] = (
        lambda c, wrt=_wrt: kdcore.soft_cross_entropy_grad(c.student, c.teacher, c.T, "none", wrt),
        lambda c, wrt=_wrt: oracle.soft_cross_entropy_grad(c.student, c.teacher, c.T, wrt),
    )


def compare(case: Case, quantity: str) -> float:
    ours, theirs = QUANTITIES[quantity]
    return relative_error(ours(case), theirs(case))
