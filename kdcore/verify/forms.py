r"""Per-position formulas of the newer losses — the right ones and the catalogued wrong ones — from kdcore.

A checked loss reduces a per-position divergence over the positions it keeps. This module computes the
divergence itself at every position, in float64 with kdcore's exact functions, for each *form* a loss may
compute: the definition, or a catalogued mistake (the mixture formed in log space, the temperature on one
side only, the DKD target class leaking into the non-target distribution, ...). :mod:`.families` combines
a form with a scale (T² or not) and a reduction into a hypothesis.

Notation: student logits :math:`z`, teacher logits :math:`v`, :math:`p = \operatorname{softmax}(z/T)`,
:math:`q = \operatorname{softmax}(v/T)`. Every form is written in the convention "the weight b belongs to
the teacher" (the JSD's :math:`M = b\,q + (1-b)\,p`); the other convention is the same form at
:math:`1 - b` (:mod:`.families` does the exchange).

The geometric ("log-space") mixture :math:`G = q^b p^{1-b}` has closed forms worth spelling out, because they
are how the bug is recognised: :math:`\mathrm{KL}(q\,\|\,G) = (1-b)\,\mathrm{KL}(q\,\|\,p)` and
:math:`\mathrm{KL}(p\,\|\,G) = b\,\mathrm{KL}(p\,\|\,q)`, so the JSD built on it is
:math:`b(1-b)\,[\mathrm{KL}(q\|p) + \mathrm{KL}(p\|q)]` — a scaled Jeffreys divergence, not a JSD. Normalising
:math:`G` (``log_softmax`` of the mixed log-probabilities) adds :math:`\log Z`, :math:`Z = \sum_i q_i^b p_i^{1-b}`,
whose gradient is :math:`\frac{1-b}{T}(r - p)` with :math:`r = G/Z`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..decoupled import (
    non_target_class_kl_divergence,
    non_target_class_kl_divergence_grad,
    target_class_kl_divergence,
    target_class_kl_divergence_grad,
)
from ..divergences import kl_divergence, kl_divergence_grad, soft_cross_entropy
from ..mixtures import (
    jensen_shannon_divergence,
    jensen_shannon_divergence_grad,
    skew_kl_divergence,
    skew_kl_divergence_grad,
    skew_reverse_kl_divergence,
    skew_reverse_kl_divergence_grad,
)
from ..reverse_kl import reverse_kl_divergence, reverse_kl_divergence_grad
from ..softmax import log_softmax, logsumexp, softmax

__all__ = ["FORMS", "PositionForms"]

# The forms each kind is tried against, reference first. A form's catalogue codes are in .families.
FORMS: dict[str, tuple[str, ...]] = {
    "reverse-kl": ("reference", "swapped", "student-T-only", "teacher-T-only"),
    "jsd": ("reference", "weights-swapped", "log-space", "log-space-normalised", "student-T-only",
            "teacher-T-only"),
    "skew-kl": ("reference", "weights-swapped", "swapped", "log-space", "log-space-normalised",
                "student-T-only", "teacher-T-only"),
    "skew-reverse-kl": ("reference", "weights-swapped", "swapped", "log-space", "log-space-normalised",
                        "student-T-only", "teacher-T-only"),
    "dkd": ("reference", "nckd-unmasked", "nckd-minus-1000", "student-T-only", "teacher-T-only"),
}  # fmt: skip

Rows = tuple[np.ndarray, Callable[[], np.ndarray]]  # per-position values (P,), and their gradient rows (P, V)


def _none(function: Callable, *args, **kwargs) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(function(*args, reduction="none", **kwargs), dtype=np.float64)


def _grad(function: Callable, *args, **kwargs) -> Callable[[], np.ndarray]:
    def rows() -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(function(*args, reduction="none", wrt="student", **kwargs), dtype=np.float64)

    return rows


def _chained(rows: Rows, chain: float) -> Rows:
    """``rows`` with the gradient multiplied by the chain-rule factor of a one-sided temperature."""
    values, grad = rows
    return rows if chain == 1.0 else (values, lambda: chain * grad())


class PositionForms:
    """Every form's per-position value and gradient on one case, in float64, computed when first asked for.

    ``z`` and ``v`` are the case's logits flattened to ``(P, V)`` (P positions, padding included),
    ``labels`` the targets ``(P,)`` (DKD only).
    """

    def __init__(self, z: np.ndarray, v: np.ndarray, T: float, labels: np.ndarray | None = None) -> None:
        self.z, self.v, self.T, self.labels = z, v, T, labels
        self._cache: dict[tuple, Rows] = {}
        self._primitives: dict[tuple, Rows] = {}
        self._tempered: dict[str, tuple[np.ndarray, np.ndarray, float, float]] = {}

    def _temper(self, side: str) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(student, teacher, T, chain factor): the temperature on both sides, or on one side only.

        Kept once per side, so that the arrays (and their ids, keys of the primitives' cache) persist.
        """
        if side not in self._tempered:
            z, v, T = self.z, self.v, self.T
            if side == "student":  # p = softmax(z/T), q = softmax(v): the chain rule brings a 1/T
                self._tempered[side] = (z / T, v, 1.0, 1.0 / T)
            elif side == "teacher":
                self._tempered[side] = (z, v / T, 1.0, 1.0)
            else:
                self._tempered[side] = (z, v, T, 1.0)
        return self._tempered[side]

    def rows(self, kind: str, form: str, weight: float, endpoints: str = "unscaled") -> Rows:
        """The per-position values of ``form`` and a function giving their gradient rows w.r.t. z.

        ``endpoints`` (JSD only): "unscaled", "switch" (trl: forward KL at β = 0, reverse at β = 1) or
        "switch-swapped" (the reverse KL at β = 0 and the forward at β = 1).
        """
        if not (kind == "jsd" and weight in (0.0, 1.0)):
            endpoints = "unscaled"  # a switch only acts at β = 0 and 1
        key = (kind, form, weight, endpoints)
        if key not in self._cache:
            self._cache[key] = self._compute(kind, form, weight, endpoints)
        return self._cache[key]

    def _compute(self, kind: str, form: str, b: float, endpoints: str) -> Rows:
        side = {"student-T-only": "student", "teacher-T-only": "teacher"}.get(form, "both")
        z, v, T, chain = self._temper(side)
        if kind == "dkd":  # a pair (TCKD, NCKD) of Rows, weighted by .families
            return tuple(_chained(part, chain) for part in self._dkd(form, z, v, T))  # type: ignore[return-value]
        if endpoints != "unscaled":
            # trl's convention: at β = 0 and 1 exactly, the limits of JSD_β/β and JSD_β/(1 − β) — the forward
            # and the reverse KL — instead of the JSD itself (which is 0 there); or those two exchanged.
            forward = (b == 0.0) == (endpoints == "switch")
            values, grad = self._divergence("forward" if forward else "reverse", z, v, T)
        else:
            values, grad = self._mixture(kind, form, z, v, T, b)
        return _chained((values, grad), chain)

    def _divergence(self, which: str, z, v, T) -> Rows:
        key = (which, id(z), id(v), T)  # the same arrays as self.z, self.v or their tempered copies
        if key not in self._primitives:
            if which == "forward":
                self._primitives[key] = (_none(kl_divergence, z, v, T), _grad(kl_divergence_grad, z, v, T))
            else:
                self._primitives[key] = (
                    _none(reverse_kl_divergence, z, v, T),
                    _grad(reverse_kl_divergence_grad, z, v, T),
                )
        return self._primitives[key]

    def _mixture(self, kind: str, form: str, z, v, T, b: float) -> Rows:
        if kind == "reverse-kl":
            return self._divergence("forward" if form == "swapped" else "reverse", z, v, T)
        if form.startswith("log-space"):
            return self._geometric(kind, z, v, T, b, normalised=form == "log-space-normalised")
        if kind == "jsd":
            if form == "weights-swapped":  # M = b q + (1 − b) p, but (1 − b) KL(q‖M) + b KL(p‖M)
                a, ga = (
                    _none(skew_kl_divergence, z, v, T, skew=b),
                    _grad(skew_kl_divergence_grad, z, v, T, skew=b),
                )
                c = _none(skew_reverse_kl_divergence, z, v, T, skew=1 - b)
                gc = _grad(skew_reverse_kl_divergence_grad, z, v, T, skew=1 - b)
                return (1 - b) * a + b * c, lambda: (1 - b) * ga() + b * gc()
            return (
                _none(jensen_shannon_divergence, z, v, T, beta=b),
                _grad(jensen_shannon_divergence_grad, z, v, T, beta=b),
            )
        # skew KL: KL(q ‖ b q + (1 − b) p); skew reverse KL: KL(p ‖ b p + (1 − b) q)
        forward = kind == "skew-kl"
        if form == "swapped":
            forward = not forward
        weight = 1 - b if form == "weights-swapped" else b
        if forward:
            values = _none(skew_kl_divergence, z, v, T, skew=weight)
            grad = _grad(skew_kl_divergence_grad, z, v, T, skew=weight)
        else:
            values = _none(skew_reverse_kl_divergence, z, v, T, skew=weight)
            grad = _grad(skew_reverse_kl_divergence_grad, z, v, T, skew=weight)
        return values, grad

    def _geometric(self, kind: str, z, v, T, b: float, normalised: bool) -> Rows:
        """The divergence with the mixture formed in log space: G = q^b p^(1−b) (see the module docstring)."""
        forward, grad_forward = self._divergence("forward", z, v, T)
        reverse, grad_reverse = self._divergence("reverse", z, v, T)
        if kind == "jsd":  # b KL(q‖G) + (1 − b) KL(p‖G), G = q^b p^(1−b)
            values = b * (1 - b) * (forward + reverse)
            grad = lambda: b * (1 - b) * (grad_forward() + grad_reverse())  # noqa: E731
            teacher_share = b  # the teacher's exponent in G
        elif kind == "skew-kl":  # KL(q ‖ q^b p^(1−b)) = (1 − b) KL(q‖p)
            values, grad = (1 - b) * forward, lambda: (1 - b) * grad_forward()
            teacher_share = b
        else:  # KL(p ‖ p^b q^(1−b)) = (1 − b) KL(p‖q)
            values, grad = (1 - b) * reverse, lambda: (1 - b) * grad_reverse()
            teacher_share = 1 - b
        if not normalised:
            return values, grad
        # + log Z, Z = Σ q^a p^(1−a) with a the teacher's exponent; ∂ log Z/∂z = (1 − a)(r − p)/T, r = G/Z.
        with np.errstate(all="ignore"):
            mixed = teacher_share * log_softmax(v, T) + (1 - teacher_share) * log_softmax(z, T)
            log_z = logsumexp(mixed)

        def grad_normalised() -> np.ndarray:
            with np.errstate(all="ignore"):
                return grad() + (1 - teacher_share) * (softmax(mixed) - softmax(z, T)) / T

        return values + log_z, grad_normalised

    def _dkd(self, form: str, z, v, T) -> tuple[Rows, Rows]:
        """TCKD and NCKD (without weights or T²), the NCKD as each form computes it."""
        y = self.labels
        tckd = (
            _none(target_class_kl_divergence, z, v, y, T),
            _grad(target_class_kl_divergence_grad, z, v, y, T),
        )
        if form == "nckd-unmasked":  # the target class left in: the plain KL
            nckd = _none(kl_divergence, z, v, T), _grad(kl_divergence_grad, z, v, T)
        elif form == "nckd-minus-1000":  # mdistiller: 1000 subtracted from the tempered target logits
            shift = 1000.0 * (np.arange(z.shape[-1]) == y[:, None])
            zs, vs = z / T - shift, v / T - shift
            nckd = _none(kl_divergence, zs, vs, 1.0), (lambda: _grad(kl_divergence_grad, zs, vs, 1.0)() / T)
        else:
            nckd = (
                _none(non_target_class_kl_divergence, z, v, y, T),
                _grad(non_target_class_kl_divergence_grad, z, v, y, T),
            )
        return tckd, nckd

    def teacher_entropy(self) -> np.ndarray:
        """H(q) per position: soft cross-entropy minus KL, for the cross-entropy convention of skew KL."""
        return _none(soft_cross_entropy, self.v, self.v, self.T)
