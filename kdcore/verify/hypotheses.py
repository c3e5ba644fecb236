r"""Hypotheses: the reference and every catalogued way of getting it wrong, as formulas kdcore evaluates.

A :class:`Hypothesis` is one combination of choices (soft form, convention, T power, reductions, the hard
term's temperature, where α goes); :class:`Prediction` holds kdcore's exact value and gradient of every
hypothesis on one case of the battery, with the tolerance a correct float32/float64 implementation needs.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cross_entropy import cross_entropy, cross_entropy_grad
from ..divergences import kl_divergence, kl_divergence_grad, soft_cross_entropy, soft_cross_entropy_grad
from ..softmax import softmax, softmax_vjp
from .battery import Case
from .catalogue import CATALOGUE

__all__ = [
    "FD_DIRECTIONS",
    "FD_NOISE_ULPS",
    "FD_RTOL",
    "GRAD_ULPS",
    "VALUE_ULPS",
    "Hypothesis",
    "Prediction",
    "all_hypotheses",
    "eps",
    "prediction",
    "reduction_factor",
]

# Tolerances
#
# A loss computed in floating point is not exact, and how far off a *correct* loss may be depends on the
# inputs, not only on the value: KL ≈ 1e-7 computed as Σ q(log q − log p) carries the rounding error of its
# terms, whose size is the teacher's entropy plus the soft cross-entropy; log_softmax(z/T) of |z| = 1e4 in
# float32 carries an absolute error of eps·|z|/T in every log-probability. So each comparison is
#
#     |got − expected| ≤ ULPS[dtype] · eps(dtype) · (|expected| + scale),
#
# with, per sample and before the same T-power, weight and reduction as the loss itself,
#
#     value scale    = H(q) + CE(q, p) + CE(p, q) + (max|z| + max|v|)/T + log N + 1      (the soft term)
#                    = CE(y, z) + max|z| + log N + 1                                     (the hard term)
#     gradient scale = (1 + log N + (max|z| + max|v|)/T) / T                            (soft, per entry)
#                    = 1 + log N + max|z|                                                (hard, per entry)
#
# (maxima over unmasked classes: a masked class's log-probability is multiplied by a zero probability). A
# gradient is compared entry by entry against its largest entry plus the gradient scale (a normwise
# max-norm test). The reference itself is kdcore in float64 on the very same (float32 or float64) inputs,
# within its 1e-12 contract (5.7e-14 measured worst, docs/accuracy.md), so nearly all of the allowance is
# the implementation's.
#
# ULPS: a sum of N ≤ 1000 terms computed pairwise or blockwise (as PyTorch, JAX and NumPy do) errs by
# at most ~log2(N) ≈ 10 ulps of the sum of magnitudes, and log_softmax, the division by T, exp and the final
# scaling add a few ulps each; 16 would do for careful code. 64 (float32) and 256 (float64) leave room for
# naive but correct formulas — Σ q(log q − log p) with a separately rounded softmax and log, a mean of means,
# a batch of 64 rows summed one by one. Measured on the test zoo (tests/zoo.py): every correct loss, in
# PyTorch, JAX and NumPy, stays below 0.6% of this allowance on every case. Every buggy one misses it by a
# wide margin: by 1e4 to 1e12 allowances on the float64 cases where its bug shows, by 20 for the subtlest
# (log(p + 1e-8)), and by 2.5 to 30 on the loosest case (offset logits in float32, max|z|/T = 2000).
VALUE_ULPS = {np.dtype(np.float32): 64.0, np.dtype(np.float64): 256.0}
GRAD_ULPS = {np.dtype(np.float32): 64.0, np.dtype(np.float64): 256.0}

# Finite differences (NumPy losses without grad_fn) are compared along random unit directions d: the
# Richardson-extrapolated central difference of kdcore.gradcheck is good to ~1e-9 relative for these smooth
# functions (its truncation error ~h⁴ is negligible at h ≈ 1.2e-4), plus its rounding noise
# ~3·eps·|f|/h, which FD_NOISE_ULPS multiplies by 16 as kdcore.gradcheck does. FD_RTOL = 1e-6 is
# gradcheck's DEFAULT_RTOL, relative to ‖∇f‖₂ (a bound of ⟨∇f, d⟩): a missing factor or sign is 1e5× larger.
FD_RTOL = 1e-6
FD_NOISE_ULPS = 16.0
FD_DIRECTIONS = 2


def eps(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps)


_SOFT_FORMS = ("reference", "swapped", "probs-as-log-probs")
_CONVENTIONS = ("kl", "cross_entropy")
_REDUCTIONS = ("batchmean", "mean-over-classes", "sum", "batchmean-twice")
_HARD_REDUCTIONS = ("batchmean", "sum", "batchmean-twice")
_REDUCTION_WORDS = {
    "batchmean": "mean over samples",
    "mean-over-classes": "mean over samples and classes",
    "sum": "sum over samples",
    "batchmean-twice": "mean over samples, divided by B again",
}
_REDUCTION_CODES = {"mean-over-classes": "mean-over-classes", "sum": "sum-over-batch",
                    "batchmean-twice": "batch-mean-twice"}  # fmt: skip


@dataclass(frozen=True)
class Hypothesis:
    """One formula a loss may compute: the reference, or a combination of catalogued mistakes."""

    soft_form: str = "reference"
    convention: str = "kl"
    t2: bool = True  # the soft term is multiplied by T²
    soft_reduction: str = "batchmean"
    hard_at_T: bool = False  # distillation: the hard cross-entropy of z/T instead of z
    alpha_on_soft: bool = False  # distillation: α weighs the soft term, (1 − α) the hard one
    hard_reduction: str = "batchmean"

    def codes(
        self, t2_expected: bool, alpha_on: str = "hard", weight_on: str | None = None
    ) -> tuple[str, ...]:
        """The catalogue codes this hypothesis deviates by from the expected conventions, in catalogue order."""
        found = set()
        if self.soft_form == "swapped":
            found.add("swapped-kl-direction")
        elif self.soft_form == "probs-as-log-probs":
            found.add("probabilities-as-log-probabilities")
        if self.t2 != t2_expected:
            found.add("missing-T2-scaling" if t2_expected else "unexpected-T2-scaling")
        for reduction in (self.soft_reduction, self.hard_reduction):
            if reduction in _REDUCTION_CODES:
                found.add(_REDUCTION_CODES[reduction])
        if self.hard_at_T:
            found.add("temperature-on-hard-loss")
        if self.alpha_on_soft != (alpha_on == "soft"):
            found.add("alpha-swapped")
        return tuple(code for code in CATALOGUE if code in found)

    def describe(self, kind: str) -> str:
        """The hypothesis as a formula, e.g. ``T²·KL(q ‖ p) (mean over samples)``."""
        soft = {
            ("reference", "kl"): "KL(q ‖ p)",
            ("reference", "cross_entropy"): "(−Σ q·log p)",
            ("swapped", "kl"): "KL(p ‖ q)",
            ("swapped", "cross_entropy"): "(−Σ p·log q)",
            ("probs-as-log-probs", "kl"): "Σ q·(log q − p)",
            ("probs-as-log-probs", "cross_entropy"): "(−Σ q·p)",
        }[self.soft_form, self.convention]
        soft = f"{'T²·' if self.t2 else ''}{soft} ({_REDUCTION_WORDS[self.soft_reduction]})"
        if kind == "soft":
            return soft
        hard = "CE(y, z/T)" if self.hard_at_T else "CE(y, z)"
        hard += f" ({_REDUCTION_WORDS[self.hard_reduction]})"
        weights = ("(1 − α)", "α") if self.alpha_on_soft else ("α", "(1 − α)")
        return f"{weights[0]}·{hard} + {weights[1]}·{soft}"


def all_hypotheses(kind: str) -> list[Any]:
    """Every combination: 48 for a soft loss, 576 for a distillation loss (the newer kinds: .families)."""
    if kind == "topk":
        from .topk_family import topk_hypotheses

        return topk_hypotheses()  # type: ignore[return-value]
    if kind not in ("soft", "distillation"):
        from .families import family_hypotheses

        return family_hypotheses(kind)
    soft = [
        Hypothesis(form, convention, t2, reduction)
        for form, convention, t2, reduction in itertools.product(
            _SOFT_FORMS, _CONVENTIONS, (True, False), _REDUCTIONS
        )
    ]
    if kind == "soft":
        return soft
    return [
        dataclasses.replace(h, hard_at_T=at_T, alpha_on_soft=on_soft, hard_reduction=reduction)
        for h in soft
        for at_T, on_soft, reduction in itertools.product((False, True), (False, True), _HARD_REDUCTIONS)
    ]


def reduction_factor(reduction: str, batch_size: int, n_classes: int) -> float:
    """The factor a reduction applies to the sum of per-sample values."""
    return {
        "batchmean": 1.0 / batch_size,
        "mean-over-classes": 1.0 / (batch_size * n_classes),
        "sum": 1.0,
        "batchmean-twice": 1.0 / batch_size**2,
    }[reduction]


class Allowances:
    """Distances from a hypothesis in units of the allowance (see "Tolerances"), for any prediction.

    A subclass has ``case`` and ``value(h) -> (value, scale)``, ``grad(h) -> (gradient, per-entry scale)``.
    """

    case: Any

    def value(self, h: Any) -> tuple[float, float]:
        raise NotImplementedError

    def grad(self, h: Any) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def value_error(self, h: Any, got: float) -> float:
        """|got − value| in units of the allowance: ≤ 1 passes. inf when either is not finite."""
        expected, scale = self.value(h)
        if not (math.isfinite(got) and math.isfinite(expected)):
            return math.inf
        allowance = VALUE_ULPS[self.case.dtype] * eps(self.case.dtype) * (abs(expected) + scale)
        return abs(got - expected) / allowance

    def grad_error(self, h: Any, got: np.ndarray) -> float:
        """max |got − gradient| in units of the allowance (normwise, max-norm): ≤ 1 passes."""
        expected, scale = self.grad(h)
        if not np.all(np.isfinite(got)):
            return math.inf
        allowance = GRAD_ULPS[self.case.dtype] * eps(self.case.dtype) * (np.max(np.abs(expected)) + scale)
        return float(np.max(np.abs(got - expected)) / allowance)


class Prediction(Allowances):
    """Everything kdcore knows about one case, in float64: each hypothesis's value, gradient and tolerance.

    Per-sample terms are computed once; a hypothesis is a linear combination of their sums (values) or
    rows (gradients), so evaluating 288 hypotheses costs nothing next to running the loss.
    """

    def __init__(self, case: Case, kind: str) -> None:
        self.case, self.kind = case, kind
        self.reference_hypothesis = Hypothesis()
        z = case.student_logits.astype(np.float64)
        v = case.teacher_logits.astype(np.float64)
        T, (B, N) = case.spec.T, z.shape
        self.T, self.B, self.N = T, B, N
        active = ~case.mask
        z_max = np.max(np.abs(np.where(active, z, 0.0)), axis=-1)
        v_max = np.max(np.abs(np.where(active, v, 0.0)), axis=-1)
        student_probs, teacher_probs = softmax(z, T), softmax(v, T)
        kl = kl_divergence(z, v, T, reduction="none")
        ce = soft_cross_entropy(z, v, T, reduction="none")
        reverse_kl = kl_divergence(v, z, T, reduction="none")  # KL(p ‖ q): the arguments exchanged
        reverse_ce = soft_cross_entropy(v, z, T, reduction="none")  # −Σ p log q
        overlap = np.sum(teacher_probs * student_probs, axis=-1)
        # Per-sample soft values by (form, convention); the teacher's entropy is H = CE − KL.
        self.soft_sums = {
            ("reference", "kl"): float(np.sum(kl)),
            ("reference", "cross_entropy"): float(np.sum(ce)),
            ("swapped", "kl"): float(np.sum(reverse_kl)),
            ("swapped", "cross_entropy"): float(np.sum(reverse_ce)),
            ("probs-as-log-probs", "kl"): float(np.sum(-(ce - kl) - overlap)),
            ("probs-as-log-probs", "cross_entropy"): float(np.sum(-overlap)),
        }
        log_n = math.log(N)
        self.soft_scale = float(np.sum((ce - kl) + ce + reverse_ce + (z_max + v_max) / T + log_n + 1.0))
        self.soft_grad_scale = float(np.max((1.0 + log_n + (z_max + v_max) / T) / T))
        # Gradient rows w.r.t. z (each sample's own; the reduction divides later). The two conventions of a
        # form differ by a term without z, so they share the gradient.
        self._soft_grads = {
            "reference": lambda: soft_cross_entropy_grad(z, v, T, reduction="none"),
            "swapped": lambda: kl_divergence_grad(v, z, T, reduction="none", wrt="teacher"),
            # d/dz of −⟨q, softmax(z/T)⟩: the softmax's vector-Jacobian product with upstream −q, over T.
            "probs-as-log-probs": lambda: softmax_vjp(student_probs, -teacher_probs) / T,
        }
        self._cache: dict[Any, np.ndarray] = {}
        if kind == "distillation":
            y = case.labels
            self.hard_sums = {
                False: float(np.sum(cross_entropy(z, y, reduction="none"))),
                True: float(np.sum(cross_entropy(z / T, y, reduction="none"))),
            }
            hard = cross_entropy(z, y, reduction="none")
            self.hard_scale = float(np.sum(hard + z_max * max(1.0, 1.0 / T) + log_n + 1.0))
            self.hard_grad_scale = float(np.max(1.0 + log_n + z_max * max(1.0, 1.0 / T)))
            self._hard_grads = {
                False: lambda: cross_entropy_grad(z, y, reduction="none"),
                True: lambda: cross_entropy_grad(z / T, y, reduction="none") / T,
            }

    def _weights(self, h: Hypothesis) -> tuple[float, float]:
        """The factors of the hard and soft sums: weight × T-power × reduction."""
        alpha = self.case.spec.alpha
        soft = (self.T**2 if h.t2 else 1.0) * reduction_factor(h.soft_reduction, self.B, self.N)
        if self.kind == "soft":
            return 0.0, soft
        hard_weight, soft_weight = (1.0 - alpha, alpha) if h.alpha_on_soft else (alpha, 1.0 - alpha)
        return hard_weight * reduction_factor(h.hard_reduction, self.B, self.N), soft_weight * soft

    def value(self, h: Hypothesis) -> tuple[float, float]:
        """The hypothesis's value and the scale of its rounding (see "Tolerances")."""
        hard_factor, soft_factor = self._weights(h)
        value = soft_factor * self.soft_sums[h.soft_form, h.convention]
        scale = soft_factor * self.soft_scale
        if hard_factor:
            value += hard_factor * self.hard_sums[h.hard_at_T]
            scale += hard_factor * self.hard_scale
        return value, scale

    def grad(self, h: Hypothesis) -> tuple[np.ndarray, float]:
        """The hypothesis's gradient w.r.t. the student logits, and its per-entry rounding scale."""
        hard_factor, soft_factor = self._weights(h)
        grad = soft_factor * self._rows("soft", h.soft_form)
        scale = soft_factor * self.soft_grad_scale
        if hard_factor:
            grad = grad + hard_factor * self._rows("hard", h.hard_at_T)
            scale += hard_factor * self.hard_grad_scale
        return grad, scale

    def _rows(self, term: str, key: Any) -> np.ndarray:
        if (term, key) not in self._cache:
            source = self._soft_grads if term == "soft" else self._hard_grads
            self._cache[term, key] = source[key]()
        return self._cache[term, key]


@functools.lru_cache(maxsize=256)
def prediction(case: Any, kind: str) -> Allowances:
    """kdcore's side of a case, computed once per process: checking a zoo of losses reuses it."""
    if kind in ("soft", "distillation"):
        return Prediction(case, kind)
    if kind == "topk":
        from .topk_family import TopKPrediction

        return TopKPrediction(case, kind)
    from .families import FamilyPrediction  # the newer losses: token-level battery, their own forms

    return FamilyPrediction(case, kind)
