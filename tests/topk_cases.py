"""The top-k teacher losses (kdcore.topk) against their 50-digit oracle, in every regime that applies to them.

Shared by tests/test_topk.py (``TestOracle``, which asserts the 1e-12 bound) and
benchmarks/accuracy_report.py ``--topk`` (which prints the worst error per regime into docs/accuracy.md).
The regimes are docs/accuracy.md's — student ≈ teacher, T from 1e-3 to 1e9, logits to ±1e300, masked
classes — and the top-k teacher's own: k = 1, k = V, a tail that is nearly empty (the top k hold all but
~1e-12 of the teacher's mass, or all of it to rounding) and one that holds nearly everything (stored classes
of mass 1e-6 and 1e-12, as a sampled rather than a top-k cache stores). The oracle is tests/topk_oracle.py;
the error measure is tests/accuracy_cases.py's (normwise per sample).

A quantity that does not apply to a case gives NaN: the tail convention away from T = 1 (it is defined at
T = 1 only), a Hessian of more than ``HESSIAN_MAX_CLASSES`` classes (the oracle nests mpmath.diff over V²
entries), the temperature derivative at |z/T| ~ 1e300 (``mpmath.diff`` in T is out of reach there).
Derivatives of an infinite loss, and derivatives w.r.t. stored log-probabilities whose tail is empty (one
sided, infinite), are NaN by definition and compared only where defined (tests/test_topk.py checks them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import topk_oracle
from accuracy_cases import relative_error

import kdcore
from kdcore._topk import mass_tolerance

CONVENTIONS = ("renormalized", "dense_student", "tail")
# What each convention's cases store: the tail needs log-probabilities; the renormalised conventions take
# either (logits for one, log-probabilities for the other, so that both kinds meet the oracle).
VALUES = {"renormalized": "logits", "dense_student": "log_probs", "tail": "log_probs"}
LOSSES = {"kl": "topk_kl_divergence", "ce": "topk_soft_cross_entropy"}
HESSIAN_MAX_CLASSES = 12


@dataclass(frozen=True, eq=False)  # compared by identity: CASES.index(case)
class TopkCase:
    """A batch of positions: student logits (n, V), the dense teacher logits the top-k teacher is cut from, k
    and T. ``pick="bottom"`` stores the k *least* probable classes (a tail holding nearly everything)."""

    regime: str
    label: str
    student: np.ndarray = field(repr=False)
    teacher: np.ndarray = field(repr=False)
    k: int
    T: float
    pick: str = "top"

    def applies(self, convention: str) -> bool:
        return convention != "tail" or self.T == 1.0 or self.k == self.student.shape[-1]

    def stored(self, convention: str) -> tuple[np.ndarray, np.ndarray]:
        """(teacher_values, teacher_indices) as the convention's cases store them."""
        kind = VALUES[convention]
        if self.pick == "top":
            return kdcore.topk_teacher(self.teacher, self.k, values=kind)
        indices = np.argsort(self.teacher, axis=-1, kind="stable")[..., : self.k]
        source = kdcore.log_softmax(self.teacher) if kind == "log_probs" else self.teacher
        return np.take_along_axis(source, indices, -1), indices


def cases() -> Iterator[TopkCase]:
    rng = np.random.default_rng(9)
    for n, k, T in ((10, 4, 1.0), (10, 3, 2.5), (40, 8, 0.7)):
        yield TopkCase("random", f"V={n} k={k} T={T:g}", *_pair(rng, (3, n), 3.0), k, T)
    # Student ≈ teacher: KL down to ~1e-25.
    for eps in (1e-3, 1e-6, 1e-9, 1e-12):
        z = rng.normal(size=(3, 10)) * 3
        yield TopkCase("near-equal", f"eps={eps:g}", z, z + eps * rng.normal(size=z.shape), 4, 1.0)
    z = rng.normal(size=(3, 10)) * 3
    yield TopkCase("near-equal", "eps=1e-09 T=4", z, z + 1e-9 * rng.normal(size=z.shape), 4, 4.0)
    for T in (1e-3, 0.1, 1e3, 1e9):
        z = rng.normal(size=(3, 8)) * 3
        yield TopkCase("temperature", f"T={T:g}", z, rng.normal(size=z.shape) * 3, 3, T)
        yield TopkCase("temperature", f"T={T:g} near-equal", z, z + 1e-9 * rng.normal(size=z.shape), 3, T)
    # (Two positions each: the oracle's derivatives at |z| ~ 1e300 take thousands of bits.)
    for scale, T in ((1e300, 1.0), (1e150, 1e150)):
        z = rng.normal(size=(2, 6)) * scale
        yield TopkCase("huge logits", f"|z|~{scale:g} T={T:g}", z, rng.normal(size=z.shape) * scale, 2, T)
        yield TopkCase("huge logits", f"|z|~{scale:g} T={T:g} shared offset", z, z * (1 + 1e-15), 2, T)
    z = rng.normal(size=(2, 7)) * 3
    z[:, [1, 5]] = -np.inf  # masked student vocabulary entries
    v = z + 1e-3 * rng.normal(size=z.shape)  # class 1 masked in both; class 5 only by the student, ...
    v[:, 5] = -30.0  # ... where the teacher has a little mass, outside its top 3
    yield TopkCase("masked", "k=3", z, v, 3, 1.0)
    yield TopkCase("masked", "k=3 T=3", z, v, 3, 3.0)
    v = v.copy()
    v[:, 5] = -np.inf
    yield TopkCase("masked", "k=6", z, v, 6, 1.0)  # the top 6 include a class masked in both: a -inf value
    z = rng.normal(size=(3, 9)) * 2
    yield TopkCase("k = 1", "random", z, rng.normal(size=z.shape) * 2, 1, 1.0)
    yield TopkCase("k = 1", "near-equal", z, z + 1e-9 * rng.normal(size=z.shape), 1, 1.0)
    yield TopkCase("k = 1", "T=2", z, rng.normal(size=z.shape) * 2, 1, 2.0)
    yield TopkCase("k = V", "random", z, rng.normal(size=z.shape) * 2, 9, 1.0)
    yield TopkCase("k = V", "near-equal", z, z + 1e-9 * rng.normal(size=z.shape), 9, 1.0)
    yield TopkCase("k = V", "T=0.5", z, rng.normal(size=z.shape) * 2, 9, 0.5)
    yield TopkCase("k = V", "k=V-1 near-equal", z, z + 1e-7 * rng.normal(size=z.shape), 8, 1.0)
    # The top 3 hold all but the rest's mass: ~3e-12 (just above the 64·k·eps ≈ 4e-14 below which it is
    # rounding), ~1e-17 (below: an empty tail), and ~4e-9 with the student close to the teacher.
    for rest, label in ((-28.0, "tail ~3e-12"), (-40.0, "tail ~1e-17 (empty)"), (-20.0, "tail ~4e-9")):
        v = rng.normal(size=(3, 9))
        v[:, 3:] = rest + rng.normal(size=(3, 6)) * 0.1
        z = rng.normal(size=(3, 9)) * 2 if rest != -20.0 else v + 1e-9 * rng.normal(size=v.shape)
        yield TopkCase("tail nearly empty", label, z, v, 3, 1.0)
    # The stored classes hold ~1e-6 and ~1e-12 of the teacher's mass: the tail is nearly everything.
    for gap, label in ((14.0, "stored ~1e-6"), (28.0, "stored ~1e-12")):
        v = rng.normal(size=(3, 10))
        v[:, :2] -= gap
        yield TopkCase("tail nearly everything", label, rng.normal(size=v.shape) * 2, v, 2, 1.0, "bottom")
        near = v + 1e-9 * rng.normal(size=v.shape)
        yield TopkCase("tail nearly everything", f"{label} near-equal", near, v, 2, 1.0, "bottom")


def _pair(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=shape) * scale, rng.normal(size=shape) * scale


CASES = list(cases())
REGIMES = list(dict.fromkeys(case.regime for case in CASES))


# -------------------------------------------------------------------------------------------------------
# Quantities: name -> (convention, loss, what), what ∈ {None, "student", "teacher", "temperature",
# "hessian", "and_grad[value]", "and_grad[student]", "mask[value]", "mask[student]"}


def _quantities() -> dict[str, tuple[str, str, str | None]]:
    table: dict[str, tuple[str, str, str | None]] = {}
    for convention in CONVENTIONS:
        for loss, name in LOSSES.items():
            table[f"{name}[{convention}]"] = (convention, loss, None)
            for wrt in ("student", "teacher", "temperature"):
                if not (convention == "tail" and wrt == "temperature"):
                    table[f"{name}_grad[{convention}][{wrt}]"] = (convention, loss, wrt)
        table[f"topk_kl_divergence_hessian[{convention}]"] = (convention, "kl", "hessian")
        for part in ("value", "student"):
            table[f"topk_kl_divergence_and_grad[{convention}][{part}]"] = (
                convention,
                "kl",
                f"and_grad[{part}]",
            )
        table[f"topk_kl_divergence[{convention}][mask]"] = (convention, "kl", "mask[value]")
        table[f"topk_kl_divergence_grad[{convention}][student][mask]"] = (convention, "kl", "mask[student]")
    return table


QUANTITIES = _quantities()


@functools.cache
def _oracle(case_index: int, convention: str, loss: str, wrt: str | None) -> np.ndarray:
    case = CASES[case_index]
    values, indices = case.stored(convention)
    return topk_oracle.topk_loss(case.student, values, indices, case.T, convention, loss == "ce", wrt)


def _ours(case: TopkCase, convention: str, loss: str, what: str | None) -> np.ndarray:
    values, indices = case.stored(convention)
    options = {"convention": convention, "values": VALUES[convention]}
    z, T = case.student, case.T
    name = LOSSES[loss]
    if what is None:
        return getattr(kdcore, name)(z, values, indices, T, "none", **options)
    if what == "hessian":
        return kdcore.topk_kl_divergence_hessian(z, values, indices, T, **options)
    if what.startswith("and_grad"):
        value, grad = kdcore.topk_kl_divergence_and_grad(z, values, indices, T, "none", **options)
        return value if what == "and_grad[value]" else grad
    if what.startswith("mask"):
        # One padding position appended (NaN logits and values, index -1), dropped by mask=: it must come
        # out exactly 0, and the kept positions as without it.
        pad = np.full((1, z.shape[-1]), np.nan)
        padded = (
            np.concatenate([z, pad]),
            np.concatenate([values, np.full((1, values.shape[-1]), np.nan)]),
            np.concatenate([indices, np.full((1, indices.shape[-1]), -1)]),
        )
        mask = np.arange(z.shape[0] + 1) < z.shape[0]
        if what == "mask[value]":
            result = kdcore.topk_kl_divergence(*padded, T, "none", mask=mask, **options)
        else:
            result = kdcore.topk_kl_divergence_grad(*padded, T, "none", mask=mask, **options)
        if np.any(result[-1] != 0):
            return np.full_like(result[:-1], np.inf)
        return result[:-1]
    return getattr(kdcore, f"{name}_grad")(z, values, indices, T, "none", what, **options)


def _oracle_wrt(what: str | None) -> str | None:
    if what is None or what in ("and_grad[value]", "mask[value]"):
        return None
    if what in ("and_grad[student]", "mask[student]"):
        return "student"
    return what


def applies(case: TopkCase, quantity: str) -> bool:
    convention, _, what = QUANTITIES[quantity]
    if not case.applies(convention):
        return False
    if what == "hessian" and case.student.shape[-1] > HESSIAN_MAX_CLASSES:
        return False
    huge = np.nanmax(np.abs(np.where(np.isfinite(case.student), case.student, 0))) / case.T > 1e100
    return not (what == "temperature" and huge)


def compare(case: TopkCase, quantity: str) -> float:
    """kdcore's relative error against the oracle for one case (NaN: the quantity does not apply)."""
    if not applies(case, quantity):
        return float("nan")
    convention, loss, what = QUANTITIES[quantity]
    actual = _ours(case, convention, loss, what)
    wrt = _oracle_wrt(what)
    # The soft cross-entropy is the KL plus the teacher's entropy: its student gradient and Hessian are the
    # KL's, whose oracle is cheaper (the difference quotient of a loss of ~1 for a gradient of 1e-12 needs
    # the extra bits of topk_oracle; that of the KL of ~1e-25 does not).
    same_as_kl = wrt in ("student", "hessian")
    expected = _oracle(CASES.index(case), convention, "kl" if same_as_kl else loss, wrt)
    if wrt is not None:
        # Derivatives of +inf, and w.r.t. log-probabilities whose tail is empty, are NaN by definition.
        value = _oracle(CASES.index(case), convention, loss, None)
        undefined = np.isinf(value)
        if wrt == "teacher" and convention == "tail" and case.k < case.student.shape[-1]:
            values, _ = case.stored(convention)
            undefined = undefined | (np.exp(values).sum(-1) >= 1 - mass_tolerance(values.dtype, case.k))
        if undefined.all():
            return float("nan")
        actual, expected = actual[~undefined], expected[~undefined]
    return relative_error(actual, expected)
