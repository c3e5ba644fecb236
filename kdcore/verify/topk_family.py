r"""Hypotheses for ``--kind topk``: a top-k form × direction × KL or cross-entropy × T² × a reduction.

The conventions a correct top-k loss may choose are not findings — the report names the one it found:

=================  ============================================================================================
dimension          accepted values (each is correct)
=================  ============================================================================================
``convention``     renormalized (SDPO, verl), dense_student (DistillKit), tail (Megatron-LM, SDPO's add_tail)
                   — unless the check is told which one the code claims (``--topk-convention``)
``direction``      forward KL(teacher ‖ student); reverse KL(student ‖ teacher) (renormalized or tail: verl's
                   GKD recipe's "RKL on renormalized top-k")
``cross_entropy``  the KL, or the soft cross-entropy −Σ q·log p (they differ by the teacher's entropy)
``t2``             T² or not (DistillKit multiplies by T²; SDPO and verl do not)
``reduction``      mean over kept tokens; per sequence, then over sequences; sum per sequence, mean over them
=================  ============================================================================================

Everything else is a catalogued mistake: a form of :mod:`.topk_forms` other than ``reference``, the
reductions of :mod:`.families` that count padding, sum, or divide by every position (``mean-over-classes``
divides by the k stored classes here, what ``kl_div(..., reduction="mean")`` does on gathered tensors).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .catalogue import CATALOGUE
from .families import _REDUCTIONS, _TOKEN_REDUCTIONS, FamilyPrediction
from .topk_battery import TopKCase
from .topk_forms import TOPK_FORMS, TopKForms

__all__ = [
    "TOPK_CONVENTIONS",
    "TopKHypothesis",
    "TopKPrediction",
    "topk_convention_text",
    "topk_hypotheses",
    "topk_reference_text",
]

TOPK_CONVENTIONS = ("renormalized", "dense_student", "tail")
_FORM_CODES = {
    "unnormalized": "topk-not-renormalized",
    "tail-one-class": "topk-tail-temperature",
    "tail-untempered": "topk-tail-temperature",
    "sorted": "topk-indices-misaligned",
    "reversed": "topk-indices-misaligned",
    "student-T-only": "temperature-on-one-side",
    "teacher-T-only": "temperature-on-one-side",
}


def _form_code(form: str) -> str | None:
    return "topk-tail-clamped" if form.startswith("clamped") else _FORM_CODES.get(form)


@dataclass(frozen=True)
class TopKHypothesis:
    """One formula a top-k loss may compute: a form of a convention, a direction, a scale, a reduction."""

    kind: str = "topk"
    form: str = "reference"
    convention: str = "renormalized"
    direction: str = "forward"
    cross_entropy: bool = False
    t2: bool = False
    reduction: str = "token-mean"

    @property
    def soft_form(self) -> str:
        return self.form

    def codes(
        self, t2_expected: bool | None, alpha_on: str = "hard", claimed: str | None = None
    ) -> tuple[str, ...]:
        """The catalogue codes this hypothesis deviates by; ``claimed`` is the convention the code claims
        (``None``: any of the three accepted). (The diagnosis passes it where the JSD passes ``weight_on``.)"""
        found = set()
        code = _form_code(self.form)
        if code is not None:
            found.add(code)
        if claimed is not None and self.convention != claimed and self.form != "unnormalized":
            student_only = claimed == "dense_student" and self.convention == "renormalized"
            found.add("topk-student-renormalized" if student_only else "topk-convention-mismatch")
        if claimed == "dense_student" and self.form == "unnormalized" and self.convention == "renormalized":
            found.add("topk-student-renormalized")
        if t2_expected is not None and self.t2 != t2_expected:
            found.add("missing-T2-scaling" if t2_expected else "unexpected-T2-scaling")
        reduction_code = _REDUCTIONS[self.reduction][0]
        if reduction_code is not None:
            found.add(reduction_code)
        return tuple(code for code in CATALOGUE if code in found)

    def describe(self, kind: str = "") -> str:
        """The hypothesis as a formula, e.g. ``[KL(q̂ ‖ p̂) over K] (mean over the kept positions (tokens))``."""
        formula = _FORMULAS[self.convention, self.direction]
        form = self.form
        if form.startswith("clamped"):
            dropped = form.startswith("clamped-drop-")
            eps = form.removeprefix("clamped-drop-" if dropped else "clamped-")
            drop = " and dropped where the teacher's tail ≤ ε" if dropped else ""
            formula += f" with both tails clamped: log(−expm1(min(logsumexp, −ε))), ε = {eps}{drop}"
        elif form != "reference":
            formula = _FORM_WORDS[form].format(formula=formula)
        if self.cross_entropy:
            formula = formula.replace("KL(", "CE(", 1)
        reduction = _REDUCTIONS[self.reduction][1].replace("and the vocabulary", "and the k stored classes")
        return f"{'T²·' if self.t2 else ''}[{formula}] ({reduction})"


_FORMULAS = {
    ("renormalized", "forward"): "KL(q̂ ‖ p̂) over the k stored classes, both renormalised",
    ("renormalized", "reverse"): "KL(p̂ ‖ q̂) over the k stored classes, both renormalised",
    ("dense_student", "forward"): "KL(q̂ ‖ p) = Σ_K q̂ (log q̂ − log p), the teacher renormalised over K, the "
    "student's full log-softmax",
    ("tail", "forward"): "KL over k + 1 buckets (the k classes and the rest, q_t = 1 − Σ_K q)",
    ("tail", "reverse"): "KL(student ‖ teacher) over k + 1 buckets (the k classes and the rest)",
}
_FORM_WORDS = {
    "unnormalized": "Σ_K q (log q − log p) with q = exp(a/T) not renormalised (mass < 1: the tail dropped), "
    "instead of {formula}",
    "tail-one-class": "{formula}, at T ≠ 1 the teacher's tail tempered as one class: (q_i^(1/T), q_t^(1/T))/Z",
    "tail-untempered": "{formula}, at T ≠ 1 the teacher's buckets untempered (T = 1), the student's at T",
    "sorted": "{formula} with the indices sorted but not the values (values paired with other classes)",
    "reversed": "{formula} with the values in the opposite order to the indices",
    "student-T-only": "{formula} with p at T but q̂ = softmax_K(a) untempered",
    "teacher-T-only": "{formula} with q̂ at T but p = softmax(z) untempered",
}


def topk_hypotheses() -> list[TopKHypothesis]:
    """Every combination: the forms of :data:`TOPK_FORMS` × KL or cross-entropy × T² × the reductions."""
    hypotheses = []
    for (form, convention, direction), ce, t2, reduction in itertools.product(
        TOPK_FORMS, (False, True), (False, True), _TOKEN_REDUCTIONS
    ):
        if ce and direction == "reverse":
            continue  # a reverse cross-entropy −Σ p log q is no convention anyone uses
        hypotheses.append(TopKHypothesis("topk", form, convention, direction, ce, t2, reduction))
    return hypotheses


class TopKPrediction(FamilyPrediction):
    """kdcore's value and gradient of every top-k hypothesis on one case, in float64, with the tolerance."""

    def __init__(self, case: TopKCase, kind: str = "topk") -> None:
        self.case, self.kind = case, kind
        spec = case.spec
        self.V = self.N = case.student_logits.shape[-1]
        self.k = case.teacher_values.shape[-1]
        self.B, self.T, self.weight = spec.batch_size, spec.T, 0.0
        self._z = case.student_logits.astype(np.float64).reshape(-1, self.V)
        self._a = case.teacher_values.astype(np.float64).reshape(-1, self.k)
        indices = case.teacher_indices.reshape(-1, self.k)
        self._keep = case.keep.reshape(-1)
        self._sequence = np.repeat(np.arange(self.B), self._keep.size // self.B)
        self.topk_forms = TopKForms(self._z, self._a, indices, self.T)
        self.reference_hypothesis = TopKHypothesis()
        self._scales: tuple[np.ndarray, np.ndarray] | None = None
        self._weights: dict[str, np.ndarray] = {}

    def _all_reduction_weights(self) -> dict[str, np.ndarray]:
        weights = super()._all_reduction_weights()
        keep = self._keep.astype(np.float64)
        weights["mean-over-classes"] = keep / (max(keep.sum(), 1.0) * self.k)  # kl_div "mean" on (…, k)
        return weights

    def _rows(self, h: TopKHypothesis) -> tuple[np.ndarray, Any]:  # type: ignore[override]
        values, entropy, grad = self.topk_forms.rows(h.form, h.convention, h.direction)
        return (values + entropy if h.cross_entropy else values), grad

    def _scale_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Per position: the rounding scale of a value and of a gradient entry (as :mod:`.hypotheses`)."""
        if self._scales is None:
            T, z, a = self.T, self._z, self._a
            active = ~self.case.mask.reshape(-1, self.V)
            z_max = np.max(np.abs(np.where(active, z, 0.0)), axis=-1)
            a_max = np.max(np.abs(np.where(a > -700.0, a, 0.0)), axis=-1)  # classes with mass
            kl, entropy, _ = self.topk_forms.rows("reference", "dense_student", "forward")
            with np.errstate(invalid="ignore"):
                terms = np.abs(entropy) + np.abs(kl + entropy)
            log_n = math.log(self.V)
            # The tail's 1 − Σ e^a carries k roundings of the stored values: k more units.
            value = terms + (2.0 * z_max + a_max) / T + log_n + 1.0 + self.k
            grad = (1.0 + log_n + (z_max + a_max) / T) / T
            self._scales = (np.where(np.isfinite(value), value, 0.0), grad)
        return self._scales


# --- what the report says ------------------------------------------------------------------------------
_CONVENTION_WORDS = {
    ("convention", "renormalized"): "renormalized: both distributions renormalised over the k stored classes, "
    "the student free outside them (SDPO, verl's GKD recipe)",
    ("convention", "dense_student"): "dense_student: the teacher renormalised over the k stored classes, the "
    "student's full log-softmax gathered at them (DistillKit's default)",
    ("convention", "tail"): "tail: k + 1 buckets, the rest of each distribution as one (Megatron-LM's "
    "cached_logits_loss, SDPO's add_tail)",
    ("direction", "forward"): "forward KL(teacher ‖ student)",
    ("direction", "reverse"): "reverse KL(student ‖ teacher)",
    ("cross_entropy", False): "the KL",
    ("cross_entropy", True): "the soft cross-entropy −Σ q·log p instead of the KL: they differ by the "
    "teacher's entropy, so the gradients agree",
    ("t2", True): "multiplied by T²",
    ("t2", False): "no T²",
}  # fmt: skip


def topk_convention_text(fitting: list[TopKHypothesis]) -> str | None:
    """The conventions shared by the correct hypotheses that fit, one clause each, joined by "; "."""
    if not fitting:
        return None
    clauses = []
    for dimension in ("convention", "direction", "cross_entropy", "t2", "reduction"):
        values = list(dict.fromkeys(getattr(h, dimension) for h in fitting))
        words = [
            _REDUCTIONS[value][1] if dimension == "reduction" else _CONVENTION_WORDS[dimension, value]
            for value in values
        ]
        clause = " or ".join(words)
        if len(values) > 1:
            clause += " (the cases run cannot tell these apart)"
        clauses.append(clause)
    return "; ".join(clauses)


def topk_reference_text(t2_scaling: bool | None, claimed: str | None) -> str:
    """The reference a report states: kdcore.topk, and which conventions are accepted."""
    conventions = " / ".join(TOPK_CONVENTIONS) if claimed is None else claimed
    scale = {None: "with or without T²", True: "times T²", False: "without T²"}[t2_scaling]
    return (
        f"kdcore.topk_kl_divergence, convention {conventions}, forward or reverse, {scale}, mean over kept "
        "tokens (or per sequence)"
    )
