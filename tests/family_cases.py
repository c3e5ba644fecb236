"""The new divergences (reverse KL, skew KL, generalised JSD, DKD, logit standardisation) against the oracle.

The regimes are tests/accuracy_cases.py's (the contract is the same: float64 within 1e-12 relative of the
50-digit oracle in every one); this module only adds the quantities. Shared by tests/test_family_accuracy.py
(which asserts the bound) and benchmarks/accuracy_report.py (which prints the worst error per regime).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import oracle
from accuracy_cases import Case, relative_error

import kdcore

WRT = ("student", "teacher", "temperature")
# One representative weight per mixture divergence (DistiLLM's default skew 0.1; GKD's default β 0.5) and a
# lopsided β, where one of the JSD's two terms is small.
SKEW = 0.1
BETAS = (0.5, 0.1)
DKD_ALPHA, DKD_BETA, DKD_T = 1.0, 8.0, 4.0


def labels(case: Case) -> np.ndarray:
    """A deterministic target class per sample: the teacher's second-best class (a wrong teacher is allowed)."""
    teacher = np.where(np.isfinite(case.teacher), case.teacher, -np.inf)
    return np.argsort(teacher, axis=-1, kind="stable")[..., -2]


QUANTITIES: dict = {
    "reverse_kl_divergence": (
        lambda c: kdcore.reverse_kl_divergence(c.student, c.teacher, c.T, "none"),
        lambda c: oracle.reverse_kl_divergence(c.student, c.teacher, c.T),
    ),
    "reverse_kl_divergence_hessian": (
        lambda c: kdcore.reverse_kl_divergence_hessian(c.student, c.teacher, c.T),
        lambda c: oracle.reverse_kl_divergence_hessian(c.student, c.teacher, c.T),
    ),
}
for _wrt in WRT:
    QUANTITIES[f"reverse_kl_divergence_grad[{_wrt}]"] = (
        lambda c, wrt=_wrt: kdcore.reverse_kl_divergence_grad(c.student, c.teacher, c.T, "none", wrt),
        lambda c, wrt=_wrt: oracle.reverse_kl_divergence_grad(c.student, c.teacher, c.T, wrt),
    )

# The mixture divergences: value and the three derivatives, each at its representative weights.
_MIXTURES = [
    ("skew_kl_divergence", "skew", (SKEW,)),
    ("skew_reverse_kl_divergence", "skew", (SKEW,)),
    ("jensen_shannon_divergence", "beta", BETAS),
]
for _name, _keyword, _weights in _MIXTURES:
    for _weight in _weights:
        _label = f"{_name}({_keyword}={_weight:g})"
        QUANTITIES[_label] = (
            lambda c, name=_name, kw={_keyword: _weight}: getattr(kdcore, name)(
                c.student, c.teacher, c.T, reduction="none", **kw
            ),
            lambda c, name=_name, kw={_keyword: _weight}: getattr(oracle, name)(
                c.student, c.teacher, c.T, **kw
            ),
        )
        for _wrt in WRT:
            QUANTITIES[f"{_label}_grad[{_wrt}]"] = (
                lambda c, name=_name, kw={_keyword: _weight}, wrt=_wrt: getattr(kdcore, f"{name}_grad")(
                    c.student, c.teacher, c.T, reduction="none", wrt=wrt, **kw
                ),
                lambda c, name=_name, kw={_keyword: _weight}, wrt=_wrt: getattr(oracle, name)(
                    c.student, c.teacher, c.T, wrt=wrt, **kw
                ),
            )

# DKD: its two parts (no T²) with every derivative, and the whole loss T²(α TCKD + β NCKD) at the case's T.
for _name in ("target_class_kl_divergence", "non_target_class_kl_divergence"):
    QUANTITIES[_name] = (
        lambda c, name=_name: getattr(kdcore, name)(c.student, c.teacher, labels(c), c.T, "none"),
        lambda c, name=_name: getattr(oracle, name)(c.student, c.teacher, labels(c), c.T),
    )
    for _wrt in WRT:
        QUANTITIES[f"{_name}_grad[{_wrt}]"] = (
            lambda c, name=_name, wrt=_wrt: getattr(kdcore, f"{name}_grad")(
                c.student, c.teacher, labels(c), c.T, "none", wrt
            ),
            lambda c, name=_name, wrt=_wrt: getattr(oracle, name)(
                c.student, c.teacher, labels(c), c.T, wrt=wrt
            ),
        )
QUANTITIES["decoupled_kd_loss"] = (
    lambda c: kdcore.decoupled_kd_loss(c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA, "none"),
    lambda c: oracle.decoupled_kd_loss(c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA),
)
for _wrt in ("student", "teacher"):
    QUANTITIES[f"decoupled_kd_loss_grad[{_wrt}]"] = (
        lambda c, wrt=_wrt: kdcore.decoupled_kd_loss_grad(
            c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA, "none", wrt
        ),
        lambda c, wrt=_wrt: oracle.decoupled_kd_loss(
            c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA, wrt=wrt
        ),
    )

# Logit standardisation of the student row, the paper's (ddof 0) and the official code's (ddof 1, ε 1e-7)
# conventions, and its VJP with a fixed pseudo-random cotangent.
_STANDARDIZE = {"paper": (2.0, 0, 0.0), "code": (1.0, 1, 1e-7)}


def cotangent(case: Case) -> np.ndarray:
    return np.random.default_rng(7).normal(size=case.student.shape)


for _label, _options in _STANDARDIZE.items():
    QUANTITIES[f"standardize_logits[{_label}]"] = (
        lambda c, o=_options: kdcore.standardize_logits(c.student, *o),
        lambda c, o=_options: oracle.standardize_logits(c.student, *o),
    )
    QUANTITIES[f"standardize_logits_vjp[{_label}]"] = (
        lambda c, o=_options: kdcore.standardize_logits_vjp(c.student, cotangent(c), *o),
        lambda c, o=_options: oracle.standardize_logits_vjp(c.student, cotangent(c), *o),
    )

# ∂/∂T of T²·D is 2T·D + T²·∂D/∂T, whose two terms cancel to O(1/T) relative at high T (T²·D tends to a
# constant): its error grows like T·eps (documented in docs/divergences.md). Held to RTOL·max(1, T).
TEMPERATURE_SCALED = {
    "decoupled_kd_loss_grad[temperature]": (
        lambda c: kdcore.decoupled_kd_loss_grad(
            c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA, "none", "temperature"
        ),
        lambda c: oracle.decoupled_kd_loss(
            c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA, wrt="temperature"
        ),
    ),
}


# The oracle's cost grows with the number of classes times the number of quantities (~40 here): for the
# cases with 1000 classes, the first sample stands for its batch (each sample is computed independently).
LARGE = 1000


def compare(case: Case, quantity: str) -> float:
    ours, theirs = QUANTITIES[quantity] if quantity in QUANTITIES else TEMPERATURE_SCALED[quantity]
    if case.student.shape[-1] >= LARGE and case.student.ndim > 1 and case.student.shape[0] > 1:
        case = dataclasses.replace(case, student=case.student[:1], teacher=case.teacher[:1])
    return relative_error(ours(case), theirs(case))
