r"""Hypotheses for the newer losses: reverse KL, generalised JSD, skew KL, skew reverse KL, DKD.

A :class:`FamilyHypothesis` is a *form* of the per-position divergence (:mod:`.forms`), the conventions a
correct trainer may choose, a scale (T² or not) and a *reduction* over the positions. The conventions are
not findings — a report names the one it found:

=================  =============================================================================================
dimension          accepted values (each is correct)
=================  =============================================================================================
``weight_on``      JSD: β weights the teacher (M = β·q + (1 − β)·p, GKD Eq. 1, trl) or the student
``endpoints``      JSD: JSD_β itself at β = 0 and 1 (it is 0 there), or trl's switch to forward / reverse KL
``convention``     skew KL: KL(q ‖ M), or the soft cross-entropy −Σ q·log M (they differ by H(q))
``t2``             T² or not (GKD, DistiLLM and trl have none; DKD has it), unless the check is told which
``reduction``      mean over kept tokens; per sequence, then over sequences; sum per sequence, mean over them
=================  =============================================================================================

Everything else is a catalogued mistake (``.codes``): another form, a reduction that counts padding or
divides by every position, a sum, a mean over the vocabulary too.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..divergences import kl_divergence, soft_cross_entropy
from .catalogue import CATALOGUE
from .forms import FORMS, PositionForms
from .hypotheses import Allowances
from .token_battery import FamilyCase

__all__ = [
    "FAMILY_KINDS",
    "FamilyHypothesis",
    "FamilyPrediction",
    "convention_text",
    "family_hypotheses",
    "reference_text",
]

FAMILY_KINDS = ("reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "dkd")

_FORM_CODES = {
    "swapped": "swapped-kl-direction",
    "weights-swapped": "mixture-weight-swapped",
    "log-space": "log-space-mixture",
    "log-space-normalised": "log-space-mixture",
    "student-T-only": "temperature-on-one-side",
    "teacher-T-only": "temperature-on-one-side",
    "nckd-unmasked": "dkd-target-leak",
    "nckd-minus-1000": "dkd-target-leak",
}
# Reductions over the positions: (the code it is a finding of, or None for a convention; what it computes).
_REDUCTIONS = {
    "token-mean": (None, "mean over the kept positions (tokens)"),
    "sequence-mean": (None, "mean over each sequence's kept tokens, then over the sequences"),
    "sequence-sum": (None, "sum over each sequence's kept tokens, mean over the sequences"),
    "all-positions": (
        "mean-over-all-positions",
        "sum over the kept positions divided by all positions, padding included",
    ),
    "padding-mean": ("padding-in-mean", "mean over all positions, padding included"),
    "padding-kept": (
        "padding-in-mean",
        "sum over all positions, padding included, divided by the number kept",
    ),
    "padding-sequence-sum": (
        "padding-in-mean",
        "sum over all positions, padding included, mean over the sequences",
    ),
    "sum": ("sum-over-batch", "sum over the kept positions"),
    "mean-over-classes": ("mean-over-classes", "mean over the kept positions and the vocabulary"),
    "batch-mean-twice": ("batch-mean-twice", "mean over samples, divided by B again"),
}
_DKD_REDUCTIONS = ("token-mean", "sum", "batch-mean-twice", "mean-over-classes")
_TOKEN_REDUCTIONS = tuple(name for name in _REDUCTIONS if name != "batch-mean-twice")
_WEIGHT = {"jsd": "β", "skew-kl": "α", "skew-reverse-kl": "α"}


@dataclass(frozen=True)
class FamilyHypothesis:
    """One formula a loss of a newer kind may compute: a form, the conventions, a scale, a reduction."""

    kind: str
    form: str = "reference"
    weight_on: str = "teacher"  # JSD: which distribution β weighs
    endpoints: str = (
        "unscaled"  # JSD: "switch" = trl's forward/reverse KL at β = 0 and 1 exactly; "switch-swapped"
    )
    convention: str = "kl"  # skew KL: "kl" or "cross_entropy"
    t2: bool = False
    reduction: str = "token-mean"

    @property
    def soft_form(self) -> str:
        return self.form

    def codes(
        self, t2_expected: bool | None, alpha_on: str = "hard", weight_on: str | None = None
    ) -> tuple[str, ...]:
        """The catalogue codes this hypothesis deviates by (``None``: either convention accepted)."""
        found = set()
        if self.form in _FORM_CODES:
            found.add(_FORM_CODES[self.form])
        if self.endpoints == "switch-swapped":  # reverse KL at β = 0, forward at β = 1
            found.add("swapped-kl-direction")
        if weight_on is not None and self.kind == "jsd" and self.weight_on != weight_on:
            found.add("mixture-weight-swapped")
        if t2_expected is not None and self.t2 != t2_expected:
            found.add("missing-T2-scaling" if t2_expected else "unexpected-T2-scaling")
        code = _REDUCTIONS[self.reduction][0]
        if code is not None:
            found.add(code)
        return tuple(code for code in CATALOGUE if code in found)

    def describe(self, kind: str = "") -> str:
        """The hypothesis as a formula, e.g. ``JSD_β(q, p), β on the teacher (mean over kept tokens)``."""
        w = _WEIGHT.get(self.kind, "")
        formula = {
            ("reverse-kl", "reference"): "KL(p ‖ q)",
            ("reverse-kl", "swapped"): "KL(q ‖ p)",
            ("jsd", "reference"): f"{w}·KL(q ‖ M) + (1 − {w})·KL(p ‖ M), M = {w}·q + (1 − {w})·p",
            ("jsd", "weights-swapped"): f"(1 − {w})·KL(q ‖ M) + {w}·KL(p ‖ M), M = {w}·q + (1 − {w})·p",
            ("jsd", "log-space"): f"{w}(1 − {w})·[KL(q ‖ p) + KL(p ‖ q)] (M = q^{w}·p^(1−{w}), log space)",
            ("jsd", "log-space-normalised"): f"{w}(1 − {w})·[KL(q ‖ p) + KL(p ‖ q)] + log Σ q^{w} p^(1−{w})",
            ("skew-kl", "reference"): f"KL(q ‖ {w}·q + (1 − {w})·p)",
            ("skew-kl", "weights-swapped"): f"KL(q ‖ (1 − {w})·q + {w}·p)",
            ("skew-kl", "swapped"): f"KL(p ‖ {w}·p + (1 − {w})·q)",
            ("skew-kl", "log-space"): f"(1 − {w})·KL(q ‖ p) (M = q^{w}·p^(1−{w}), log space)",
            ("skew-kl", "log-space-normalised"): f"(1 − {w})·KL(q ‖ p) + log Σ q^{w} p^(1−{w})",
            ("skew-reverse-kl", "reference"): f"KL(p ‖ {w}·p + (1 − {w})·q)",
            ("skew-reverse-kl", "weights-swapped"): f"KL(p ‖ (1 − {w})·p + {w}·q)",
            ("skew-reverse-kl", "swapped"): f"KL(q ‖ {w}·q + (1 − {w})·p)",
            ("skew-reverse-kl", "log-space"): f"(1 − {w})·KL(p ‖ q) (M = p^{w}·q^(1−{w}), log space)",
            ("skew-reverse-kl", "log-space-normalised"): f"(1 − {w})·KL(p ‖ q) + log Σ p^{w} q^(1−{w})",
            ("dkd", "reference"): "α·TCKD + β·NCKD",
            ("dkd", "nckd-unmasked"): "α·TCKD + β·KL(q ‖ p) (the target class left in the NCKD)",
            ("dkd", "nckd-minus-1000"): "α·TCKD + β·NCKD with the target logit lowered by 1000 (mdistiller)",
        }.get(
            (
                self.kind,
                self.form.replace("student-T-only", "reference").replace("teacher-T-only", "reference"),
            )
        )
        if self.kind == "skew-kl" and self.convention == "cross_entropy":
            formula = formula.replace("KL(q ‖", "CE(q,", 1)
        if self.form == "student-T-only":
            formula += " with p = softmax(z/T) but q = softmax(v)"
        elif self.form == "teacher-T-only":
            formula += " with q = softmax(v/T) but p = softmax(z)"
        if self.kind == "jsd" and self.weight_on == "student":
            formula += f" at {w} → 1 − {w} (β on the student)"
        if self.kind == "jsd" and self.endpoints == "switch":
            formula += "; KL(q ‖ p) at β = 0, KL(p ‖ q) at β = 1"
        elif self.kind == "jsd" and self.endpoints == "switch-swapped":
            formula += "; KL(p ‖ q) at β = 0, KL(q ‖ p) at β = 1"
        return f"{'T²·' if self.t2 else ''}[{formula}] ({_REDUCTIONS[self.reduction][1]})"


def family_hypotheses(kind: str) -> list[FamilyHypothesis]:
    """Every combination for ``kind``: the conventions times the forms times the scales and reductions."""
    weight_on = ("teacher", "student") if kind == "jsd" else ("teacher",)
    endpoints = ("unscaled", "switch", "switch-swapped") if kind == "jsd" else ("unscaled",)
    conventions = ("kl", "cross_entropy") if kind == "skew-kl" else ("kl",)
    reductions = _DKD_REDUCTIONS if kind == "dkd" else _TOKEN_REDUCTIONS
    return [
        FamilyHypothesis(kind, *combination)
        for combination in itertools.product(
            FORMS[kind], weight_on, endpoints, conventions, (False, True), reductions
        )
    ]


class FamilyPrediction(Allowances):
    """kdcore's value and gradient of every hypothesis of ``kind`` on one case, in float64, with the tolerance.

    The per-position divergences are computed once per form; a hypothesis weights them (its reduction) and
    scales them (T² or not), so trying hundreds of hypotheses costs little more than one.
    """

    def __init__(self, case: FamilyCase, kind: str) -> None:
        self.case, self.kind = case, kind
        spec = case.spec
        shape = case.student_logits.shape
        self.V = self.N = shape[-1]
        self.B, self.T = spec.batch_size, spec.T
        self.weight = {"jsd": spec.beta, "skew-kl": spec.skew, "skew-reverse-kl": spec.skew}.get(kind, 0.0)
        self._z = case.student_logits.astype(np.float64).reshape(-1, self.V)
        self._v = case.teacher_logits.astype(np.float64).reshape(-1, self.V)
        self._keep = case.keep.reshape(-1)
        self._sequence = np.repeat(np.arange(self.B), self._keep.size // self.B)
        labels = case.labels.reshape(-1) if kind == "dkd" else None
        self.forms = PositionForms(self._z, self._v, self.T, labels)
        self.reference_hypothesis = FamilyHypothesis(kind, t2=kind == "dkd")
        self._scales: tuple[np.ndarray, np.ndarray] | None = None
        self._weights: dict[str, np.ndarray] = {}

    # --- the reduction -------------------------------------------------------------------------------
    def _reduction_weights(self, reduction: str) -> np.ndarray:
        if not self._weights:
            self._weights = self._all_reduction_weights()
        return self._weights[reduction]

    def _all_reduction_weights(self) -> dict[str, np.ndarray]:
        keep = self._keep.astype(np.float64)
        kept, positions = max(keep.sum(), 1.0), keep.size
        per_sequence = np.bincount(self._sequence, weights=keep, minlength=self.B)[self._sequence]
        return {
            "token-mean": keep / kept,
            "sequence-mean": keep / (np.maximum(per_sequence, 1.0) * self.B),
            "sequence-sum": keep / self.B,
            "all-positions": keep / positions,
            "padding-mean": np.full(positions, 1.0 / positions),
            "padding-kept": np.full(positions, 1.0 / kept),
            "padding-sequence-sum": np.full(positions, 1.0 / self.B),
            "sum": keep,
            "mean-over-classes": keep / (kept * self.V),
            "batch-mean-twice": keep / (kept * self.B),
        }

    # --- the per-position divergence of a form -------------------------------------------------------
    def _form_weight(self, h: FamilyHypothesis) -> float:
        return 1.0 - self.weight if h.weight_on == "student" else self.weight  # forms assume "teacher"

    def _rows(self, h: FamilyHypothesis) -> tuple[np.ndarray, Any]:
        if self.kind == "dkd":
            alpha, beta = self.case.spec.alpha, self.case.spec.beta
            (tckd, tckd_grad), (nckd, nckd_grad) = self.forms.rows("dkd", h.form, 0.0)  # type: ignore[misc]
            return alpha * tckd + beta * nckd, lambda: alpha * tckd_grad() + beta * nckd_grad()
        values, grad = self.forms.rows(self.kind, h.form, self._form_weight(h), h.endpoints)
        if h.convention == "cross_entropy":
            values = values + self.forms.teacher_entropy()  # −Σ q log M = KL(q ‖ M) + H(q): same gradient
        return values, grad

    def _scale_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Per position: the value's and the gradient entries' rounding scale (see hypotheses' Tolerances)."""
        if self._scales is None:
            z, v, T = self._z, self._v, self.T
            active = ~self.case.mask.reshape(-1, self.V)
            z_max = np.max(np.abs(np.where(active, z, 0.0)), axis=-1)
            v_max = np.max(np.abs(np.where(active, v, 0.0)), axis=-1)
            with np.errstate(all="ignore"):
                kl = np.asarray(kl_divergence(z, v, T, reduction="none"))
                ce = np.asarray(soft_cross_entropy(z, v, T, reduction="none"))
                reverse_ce = np.asarray(soft_cross_entropy(v, z, T, reduction="none"))
            log_n = math.log(self.V)
            weights = self.case.spec.alpha + self.case.spec.beta if self.kind == "dkd" else 1.0
            value = weights * ((ce - kl) + ce + reverse_ce + (z_max + v_max) / T + log_n + 1.0)
            grad = weights * (1.0 + log_n + (z_max + v_max) / T) / T
            self._scales = (value, grad)
        return self._scales

    def _factor(self, h: FamilyHypothesis) -> float:
        return self.T**2 if h.t2 else 1.0

    def value(self, h: FamilyHypothesis) -> tuple[float, float]:
        weights = self._reduction_weights(h.reduction)
        values, _ = self._rows(h)
        used = weights != 0
        value = self._factor(h) * float(np.sum(weights[used] * values[used]))
        scale = self._factor(h) * float(np.sum(np.abs(weights[used]) * self._scale_rows()[0][used]))
        return value, scale

    def grad(self, h: FamilyHypothesis) -> tuple[np.ndarray, float]:
        weights = self._reduction_weights(h.reduction)
        _, rows = self._rows(h)
        grad = self._factor(h) * weights[:, None] * np.where(weights[:, None] != 0, rows(), 0.0)
        scale = self._factor(h) * float(np.max(np.abs(weights) * self._scale_rows()[1]))
        return grad.reshape(self.case.student_logits.shape), scale


# --- what the report says ------------------------------------------------------------------------------
_CONVENTION_WORDS = {
    ("weight_on", "teacher"): "β weights the teacher: M = β·q + (1 − β)·p, β·KL(q ‖ M) + (1 − β)·KL(p ‖ M) "
    "(GKD Eq. 1 and trl)",
    ("weight_on", "student"): "β weights the student: M = β·p + (1 − β)·q, β·KL(p ‖ M) + (1 − β)·KL(q ‖ M) "
    "(GKD's β is 1 − this β)",
    (
        "endpoints",
        "switch",
    ): "at β = 0 and β = 1 exactly, the forward KL(q ‖ p) and the reverse KL(p ‖ q) instead "
    "of JSD_β, which is 0 there (trl's switch: the loss jumps at the endpoints)",
    (
        "endpoints",
        "unscaled",
    ): "JSD_β itself at β = 0 and β = 1, where it is 0 (no switch to forward/reverse KL)",
    ("convention", "kl"): "KL(q ‖ M)",
    ("convention", "cross_entropy"): "soft cross-entropy −Σ q·log M instead of KL(q ‖ M): they differ by the "
    "teacher's entropy, so the gradients agree",
    ("t2", True): "multiplied by T²",
    ("t2", False): "no T² (as GKD, DistiLLM and trl)",
}


def convention_text(kind: str, fitting: list[FamilyHypothesis]) -> str | None:
    """The conventions shared by the correct hypotheses that fit, one clause each, joined by "; "."""
    if not fitting:
        return None
    dimensions = ["t2", "reduction"]
    if kind == "jsd":
        dimensions = ["weight_on", "endpoints", *dimensions]
    if kind == "skew-kl":
        dimensions = ["convention", *dimensions]
    clauses = []
    for dimension in dimensions:
        values = list(dict.fromkeys(getattr(h, dimension) for h in fitting))
        words = [
            _REDUCTIONS[value][1] if dimension == "reduction" else _CONVENTION_WORDS[dimension, value]
            for value in values
        ]
        if dimension == "endpoints" and kind == "jsd" and len(values) > 1:
            continue  # no case at β = 0 or 1 ran: nothing to say
        clause = " or ".join(words)
        if len(values) > 1:
            clause += " (the cases run cannot tell these apart)"
        clauses.append(clause)
    return "; ".join(clauses)


def reference_text(kind: str, t2_scaling: bool | None, weight_on: str | None) -> str:
    """The reference a report states: the definition, and which conventions are accepted."""
    definition = {
        "reverse-kl": "KL(student ‖ teacher) = KL(p ‖ q)",
        "jsd": "generalised JSD_β = β·KL(q ‖ M) + (1 − β)·KL(p ‖ M), M = β·q + (1 − β)·p",
        "skew-kl": "skew KL(q ‖ α·q + (1 − α)·p)",
        "skew-reverse-kl": "skew reverse KL(p ‖ α·p + (1 − α)·q)",
        "dkd": "DKD α·TCKD + β·NCKD (Zhao et al. 2022)",
    }[kind]
    scale = {None: "with or without T²", True: "times T²", False: "without T²"}[t2_scaling]
    weight = ""
    if kind == "jsd":
        weight = {None: "; β on the teacher or on the student", "teacher": "; β on the teacher",
                  "student": "; β on the student"}[weight_on]  # fmt: skip
    mean = "mean over samples" if kind == "dkd" else "mean over kept tokens (or per sequence)"
    return f"{definition}, {scale}, {mean}{weight}"


def reference_for(chosen: Any, references: list[Any]) -> Any:
    """The correct hypothesis closest to ``chosen``: the most fields in common (its conventions)."""
    fields = dataclasses.asdict(chosen)
    return max(references, key=lambda h: sum(fields[k] == v for k, v in dataclasses.asdict(h).items()))
