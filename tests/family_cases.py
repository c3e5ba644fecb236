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
for _wrt in WRT:
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

# The Hessians (w.r.t. the student logits) of the mixture divergences and DKD, against the oracle's closed
# forms at working precision (themselves checked against mpmath.diff in tests/test_oracle_family.py). The
# oracle forms N² entries at 50+ digits: the cases with 1000 classes are left out of these rows (HESSIANS).
HESSIANS = set()
for _name, _keyword, _weights in _MIXTURES:
    _kind = {"skew_kl_divergence": "skew_kl", "skew_reverse_kl_divergence": "skew_reverse_kl"}.get(
        _name, "jsd"
    )
    for _weight in _weights:
        _label = f"{_name}_hessian({_keyword}={_weight:g})"
        HESSIANS.add(_label)
        QUANTITIES[_label] = (
            lambda c, name=_name, w=_weight: getattr(kdcore, f"{name}_hessian")(c.student, c.teacher, c.T, w),
            lambda c, kind=_kind, w=_weight: oracle.mixture_hessian(c.student, c.teacher, c.T, kind, w),
        )
HESSIANS.add("decoupled_kd_loss_hessian")
QUANTITIES["decoupled_kd_loss_hessian"] = (
    lambda c: kdcore.decoupled_kd_loss_hessian(c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA),
    lambda c: oracle.decoupled_kd_loss_hessian(c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA),
)

# The fused value-and-gradient functions, and every loss at the token level: the case's rows with a
# padding row of NaN logits appended, dropped by ``mask`` (by ``ignore_index`` for DKD). Each is compared
# with the oracle's value for the plain rows (SAME_ORACLE: computed once), and the padding row must be
# exactly 0 (``padded``). The fused functions' agreement with the separate calls is asserted bit for bit in
# tests/test_tokens.py; here they meet the oracle like the rest.
SAME_ORACLE: dict = {}


def padded(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Student and teacher with one NaN row appended along the first axis, and the mask that drops it."""
    z, v = np.atleast_2d(case.student), np.atleast_2d(case.teacher)
    nan = np.full((1, z.shape[-1]), np.nan)
    mask = np.ones(z.shape[0] + 1, dtype=bool)
    mask[-1] = False
    return np.concatenate([z, nan]), np.concatenate([v, nan]), mask


def unpadded(result) -> np.ndarray:
    """The plain rows of a padded result; NaN everywhere (an infinite error) unless the padding row is 0."""
    result = np.asarray(result)
    return result[:-1] if np.all(result[-1] == 0) else np.full(result[:-1].shape, np.nan)


def padded_labels(case: Case) -> np.ndarray:
    return np.concatenate([np.atleast_1d(labels(case)), [-100]])


_FUSED = [
    ("reverse_kl_divergence", {}, "reverse_kl_divergence", "reverse_kl_divergence_grad[student]"),
    ("skew_kl_divergence", {"skew": SKEW}, f"skew_kl_divergence(skew={SKEW:g})", None),
    ("skew_reverse_kl_divergence", {"skew": SKEW}, f"skew_reverse_kl_divergence(skew={SKEW:g})", None),
    ("jensen_shannon_divergence", {"beta": BETAS[0]}, f"jensen_shannon_divergence(beta={BETAS[0]:g})", None),
]
for _name, _options, _value, _grad in _FUSED:
    _grad = _grad or f"{_value}_grad[student]"
    for _index, _base in enumerate((_value, _grad)):
        _label = f"{_value}_and_grad[{'value' if _index == 0 else 'student'}]"
        SAME_ORACLE[_label] = _base
        QUANTITIES[_label] = (
            lambda c, name=_name, o=_options, i=_index: getattr(kdcore, f"{name}_and_grad")(
                c.student, c.teacher, c.T, reduction="none", **o
            )[i],
            None,
        )
        for _wrt in (None, *WRT):
            _base = _value if _wrt is None else f"{_value}_grad[{_wrt}]"
            _label = f"{_value}[mask]" if _wrt is None else f"{_value}_grad[{_wrt}][mask]"
            if _label in SAME_ORACLE:
                continue
            SAME_ORACLE[_label] = _base
            QUANTITIES[_label] = (
                lambda c, name=_name, o=_options, wrt=_wrt: unpadded(
                    getattr(kdcore, name if wrt is None else f"{name}_grad")(
                        *padded(c)[:2],
                        c.T,
                        reduction="none",
                        mask=padded(c)[2],
                        **o,
                        **({} if wrt is None else {"wrt": wrt}),
                    )
                ),
                None,
            )
for _index, _base in enumerate(("decoupled_kd_loss", "decoupled_kd_loss_grad[student]")):
    _label = f"decoupled_kd_loss_and_grad[{'value' if _index == 0 else 'student'}]"
    SAME_ORACLE[_label] = _base
    QUANTITIES[_label] = (
        lambda c, i=_index: kdcore.decoupled_kd_loss_and_grad(
            c.student, c.teacher, labels(c), c.T, DKD_ALPHA, DKD_BETA, "none"
        )[i],
        None,
    )
for _wrt in (None, *WRT):
    _base = "decoupled_kd_loss" if _wrt is None else f"decoupled_kd_loss_grad[{_wrt}]"
    SAME_ORACLE[f"{_base}[ignore_index]"] = _base
    QUANTITIES[f"{_base}[ignore_index]"] = (
        lambda c, wrt=_wrt: unpadded(
            getattr(kdcore, "decoupled_kd_loss" if wrt is None else "decoupled_kd_loss_grad")(
                *padded(c)[:2],
                padded_labels(c),
                c.T,
                DKD_ALPHA,
                DKD_BETA,
                "none",
                **({} if wrt is None else {"wrt": wrt}),
            )
        ),
        None,
    )


# The oracle's cost grows with the number of classes times the number of quantities (~40 here): for the
# cases with 1000 classes, the first sample stands for its batch (each sample is computed independently).
LARGE = 1000


_ORACLE_CACHE: dict = {}


def compare(case: Case, quantity: str) -> float:
    """kdcore's worst relative error on ``case`` for ``quantity`` (NaN: the quantity does not apply)."""
    if quantity in HESSIANS and case.student.shape[-1] >= LARGE:
        return float("nan")
    if case.student.shape[-1] >= LARGE and case.student.ndim > 1 and case.student.shape[0] > 1:
        case = dataclasses.replace(case, student=case.student[:1], teacher=case.teacher[:1])
    base = SAME_ORACLE.get(quantity, quantity)
    key = (base, case.regime, case.label)
    if key not in _ORACLE_CACHE:
        if len(_ORACLE_CACHE) > 200:  # one case's worth is all that is reused
            _ORACLE_CACHE.clear()
        _ORACLE_CACHE[key] = QUANTITIES[base][1](case)
    return relative_error(QUANTITIES[quantity][0](case), _ORACLE_CACHE[key])
