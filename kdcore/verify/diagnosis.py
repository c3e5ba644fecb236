r"""Diagnosis: fit the catalogue's hypotheses to what the loss returned, and name the cause.

By fitting, not by pattern-matching source code: the report names the hypothesis that matches the loss on
*all* finite cases within the tolerance; when none does, the finding is ``value-mismatch``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .battery import LARGE_LOGIT_REGIMES
from .catalogue import CATALOGUE, message
from .families import FAMILY_KINDS, convention_text
from .families import reference_for as family_reference
from .hypotheses import VALUE_ULPS, Hypothesis, all_hypotheses, eps
from .reports import CaseResult, Finding
from .running import Outcome
from .topk_family import topk_convention_text

__all__ = ["diagnose"]


def _fit(outcomes: list[Outcome], hypotheses: list[Hypothesis]) -> list[tuple[Hypothesis, float, int]]:
    """Each hypothesis with its worst value error (in allowances) and how many cases it fits."""
    results = []
    for h in hypotheses:
        errors = [o.prediction.value_error(h, o.value) for o in outcomes]
        results.append((h, max(errors, default=0.0), sum(e <= 1.0 for e in errors)))
    return results


def _case_brief(outcome: Outcome, **extra: Any) -> dict[str, Any]:
    spec = outcome.case.spec
    brief = {"case": outcome.case.id, "B": spec.batch_size, "N": spec.n_classes, "T": spec.T}
    if outcome.prediction.kind == "distillation":
        brief["alpha"] = spec.alpha
    brief.update(_weights(outcome))
    return {**brief, **extra}


_OUT_OF_RANGE = re.compile(r"out of (bounds|range)|IndexError", re.IGNORECASE)
_SCALING_CODES = frozenset(
    {"missing-T2-scaling", "unexpected-T2-scaling", "mean-over-classes", "sum-over-batch", "batch-mean-twice"}
)


def _ratio_evidence(outcomes: list[Outcome], reference: Hypothesis, fitted: Hypothesis) -> dict[str, Any]:
    """For a soft loss off by a constant factor per case: got/expected next to what the fitted formula predicts."""
    if outcomes[0].prediction.kind != "soft":
        return {}
    rows = {}
    for o in outcomes:
        expected, predicted = o.prediction.value(reference)[0], o.prediction.value(fitted)[0]
        key = (o.prediction.T, o.prediction.B, o.prediction.N)
        if expected != 0 and key not in rows and not math.isclose(predicted / expected, 1.0):
            rows[key] = {"T": key[0], "B": key[1], "N": key[2], "got/expected": o.value / expected,
                         "predicted": predicted / expected}  # fmt: skip
    return {"ratios": list(rows.values())[:5]} if rows else {}


# Properties a set of failing cases may share, and what each usually means. A failure confined to one of
# them is called out: "wrong only at α = 0" says more than "wrong on 4 of 26 cases".
_PROPERTIES: tuple[tuple[str, Callable[[Outcome], bool], str], ...] = (
    ("α = 0", lambda o: o.prediction.kind == "distillation" and o.case.spec.alpha == 0.0,
     "there the hard term has weight 0: a weight of 0 read as 'not given' (alpha or default), or a term "
     "dropped or kept when its weight is 0"),
    ("α = 1", lambda o: o.prediction.kind == "distillation" and o.case.spec.alpha == 1.0,
     "there the soft term has weight 0: a weight of 0 read as 'not given', or a term dropped or kept when "
     "its weight is 0"),
    ("B = 1", lambda o: o.case.spec.batch_size == 1,
     "a batch of one sample: squeeze(), or a reduction that treats a single sample differently"),
    ("teacher = student", lambda o: o.case.spec.regime == "equal",
     "the KL is exactly 0 there: a division by the loss, or a log of 0"),
    ("T < 1", lambda o: o.case.spec.T < 1.0,
     "a temperature below 1: a clamp of T, or T used as 1/T"),
    ("T = 1", lambda o: o.case.spec.T == 1.0,
     "at T = 1: a special case for T = 1 (T == 1 tested, or T read as an integer)"),
    ("masked classes", lambda o: o.case.spec.regime == "masked",
     "masked classes (logit −1e9): the masked terms are not zeroed"),
)  # fmt: skip


def pattern_hints(failing: list[Outcome], population: list[Outcome]) -> list[str]:
    """The properties every failing case has and some passing case lacks, with what they suggest."""
    if not failing or len(failing) == len(population):
        return []
    shared = []
    for label, has, why in _PROPERTIES:
        having = [o for o in population if has(o)]
        if all(has(o) for o in failing) and len(having) < len(population):
            shared.append((label, len(having), why))
    if not shared:
        return []
    # Properties the failing cases have *exactly* (no passing case shares them) say the most: keep those.
    exact = [item for item in shared if item[1] == len(failing)]
    shared = exact or shared
    labels = " and ".join(label for label, _, _ in shared)
    scope = "on every case with" if exact else "only on cases with"
    return [f"it fails {scope} {labels} ({len(failing)} of {len(population)}): {shared[0][2]}"]


def _power_law(finite: list[Outcome], reference: Hypothesis) -> str | None:
    """'got/expected = B^-1' when the value is the reference times a power of B, N and T on every case."""
    rows, logs = [], []
    for o in finite:
        expected, scale = o.prediction.value(reference)
        allowance = VALUE_ULPS[o.case.dtype] * eps(o.case.dtype) * (abs(expected) + scale)
        if allowance > 1e-4 * abs(expected):  # too close to 0 to measure a ratio (teacher ≈ student)
            continue
        ratio = o.value / expected
        if not ratio > 0:
            return None
        spec = o.case.spec
        rows.append([1.0, math.log(spec.batch_size), math.log(spec.n_classes), math.log(spec.T)])
        logs.append(math.log(ratio))
    if len(rows) < 6:
        return None
    solution = np.linalg.lstsq(np.array(rows), np.array(logs), rcond=None)[0]
    exponents = np.round(solution[1:] * 2) / 2  # integer or half-integer powers only
    design = np.array(rows)
    constant = float(np.exp(np.mean(np.array(logs) - design[:, 1:] @ exponents)))
    predicted = np.log(constant) + design[:, 1:] @ exponents
    if np.max(np.abs(predicted - np.array(logs))) > 1e-3:
        return None
    factors = [f"{name}^{power:g}" for name, power in zip(("B", "N", "T"), exponents, strict=True) if power]
    if math.isclose(constant, 1.0, rel_tol=1e-3):
        constant_text = ""
    else:
        constant_text = f"{constant:.4g}" + (" × " if factors else "")
    if not factors and not constant_text:
        return None
    return f"got/expected = {constant_text}{' · '.join(factors)} on every case where it can be measured"


def diagnose(
    kind: str,
    outcomes: list[Outcome],
    t2_scaling: bool | None,
    alpha_on: str = "hard",
    weight_on: str | None = None,
) -> tuple[list[Finding], str | None, dict[str, CaseResult]]:
    """The findings, the convention found, and one :class:`CaseResult` per case.

    ``t2_scaling`` and ``weight_on`` may be None for the newer kinds: either convention is then accepted.
    """
    findings: list[Finding] = []
    candidates = all_hypotheses(kind)
    family = kind in FAMILY_KINDS or kind == "topk"
    references = [h for h in candidates if not h.codes(t2_scaling, alpha_on, weight_on)]

    def codes(h: Any) -> tuple[str, ...]:
        return h.codes(t2_scaling, alpha_on, weight_on)

    def reference_for(chosen: Any) -> Any:
        if family:
            return family_reference(chosen, references)
        return next(h for h in references if h.convention == chosen.convention)

    # 1. Cases that produced nothing to compare.
    raised = [o for o in outcomes if o.error is not None]
    if raised:
        by_error: dict[str, list[str]] = {}
        for o in raised:
            by_error.setdefault(o.error or "", []).append(o.case.id)
        hints = pattern_hints(raised, outcomes)
        if kind == "topk" and any(_OUT_OF_RANGE.search(error) for error in by_error):
            hints.append(
                "an index out of range of an axis shorter than the vocabulary is what a gather of the teacher's "
                "indices along the wrong axis raises (gather(1, ids) on (B, S, V) logits): gather along the "
                "class axis, -1 (see topk-indices-misaligned)"
            )
        findings.append(
            Finding(
                "exception",
                message(
                    "exception",
                    f" ({len(raised)} of {len(outcomes)} cases" + "".join(f"; {h}" for h in hints) + ")",
                ),
                {"errors": [{"error": error, "cases": ids} for error, ids in by_error.items()][:5]},
            )
        )
    not_scalar = [o for o in outcomes if o.not_scalar is not None]
    if not_scalar:
        findings.append(
            Finding(
                "not-scalar",
                message("not-scalar"),
                {"cases": [_case_brief(o, shape=list(o.not_scalar)) for o in not_scalar[:5]]},
            )
        )
    evaluated = [o for o in outcomes if o.evaluation is not None]

    # 2. Non-finite results where kdcore's loss is finite (it is finite on every case of the battery).
    bad_value = [o for o in evaluated if not math.isfinite(o.value)]
    bad_grad = [o for o in evaluated if math.isfinite(o.value) and o.has_gradient and not o.gradient_finite()]
    non_finite = bad_value + bad_grad
    for code, group in _non_finite_groups(non_finite, family).items():
        large_only = code != "non-finite"
        briefs = [
            _case_brief(
                o,
                regime=o.case.spec.regime,
                max_abs_logit=float(np.max(np.abs(o.case.student_logits))),
                got=o.value if o in bad_value else "finite value, non-finite gradient",
            )
            for o in group[:5]
        ]
        hints = [] if large_only else pattern_hints(group, evaluated)
        findings.append(
            Finding(
                code,
                message(
                    code,
                    f" ({len(group)} of {len(evaluated)} cases" + "".join(f"; {h}" for h in hints) + ")",
                ),
                {"cases": briefs},
            )
        )
    finite = [o for o in evaluated if math.isfinite(o.value)]

    # 3. Fit the values: which hypotheses match every finite case?
    fits = _fit(finite, candidates)
    matching = [(h, worst) for h, worst, count in fits if count == len(finite)]
    chosen: Hypothesis | None = None
    convention: str | None = None
    if finite and matching:

        def rank(item: tuple[Hypothesis, float]) -> tuple:
            h, worst = item
            gradient_fits = all(
                not (o.has_gradient and o.gradient_finite()) or o.grad_error(h) <= 1.0 for o in finite
            )
            return (len(codes(h)), not gradient_fits, worst)

        matching.sort(key=rank)
        chosen = matching[0][0]
        convention = chosen.convention if chosen.soft_form == "reference" else None
        if family:
            accepted = [h for h, _ in matching if not codes(h)]
            if kind == "topk":
                convention = topk_convention_text(accepted)
            else:
                convention = convention_text(kind, accepted)
        reference = reference_for(chosen)
        found = codes(chosen)
        if found:
            reference_fits = sum(o.prediction.value_error(reference, o.value) <= 1.0 for o in finite)
            alternatives = [h.describe(kind) for h, _ in matching[1:4] if codes(h) != found]
            # One block of evidence for the fitted formula, shared by its codes (the report prints it once).
            evidence = {
                "fitted": chosen.describe(kind),
                "expected": reference.describe(kind),
                "fit": f"the fitted formula matches all {len(finite)} finite cases (worst at "
                f"{matching[0][1]:.2g} of the tolerance); the expected one matches {reference_fits}",
                **(_ratio_evidence(finite, reference, chosen) if set(found) <= _SCALING_CODES else {}),
            }
            if alternatives:
                evidence["also_consistent_with"] = alternatives
            findings += [Finding(code, message(code), evidence) for code in found]
    else:
        # The reference the table and the evidence both use: the convention that fits the most cases.
        reference = max(
            references, key=lambda h: sum(o.prediction.value_error(h, o.value) <= 1.0 for o in finite)
        )
        if finite:
            findings.append(_value_mismatch(kind, finite, fits, reference, codes))

    # 4. The gradient, against the fitted hypothesis.
    if chosen is not None:
        wrong = [o for o in finite if o.has_gradient and o.gradient_finite() and o.grad_error(chosen) > 1.0]
        if wrong:
            measured = [o for o in finite if o.has_gradient and o.gradient_finite()]
            findings.append(_gradient_mismatch(kind, wrong, chosen, measured))

    # 5. The table: each case against the same reference as the evidence.
    results = {o.case.id: _case_result(o, reference, o in non_finite) for o in outcomes}
    return findings, convention, results


def _non_finite_groups(non_finite: list[Outcome], family: bool) -> dict[str, list[Outcome]]:
    """The non-finite cases by code: only on large logits is "numerically-unstable", anywhere else "non-finite".

    For the newer kinds, the cases with masked vocabulary entries get their own code: log(softmax(·)) of a
    masked entry is what language-model code gets wrong most often.
    """
    if not non_finite:
        return {}
    if not all(o.case.spec.regime in LARGE_LOGIT_REGIMES for o in non_finite):
        return {"non-finite": non_finite}
    groups: dict[str, list[Outcome]] = {}
    for o in non_finite:
        masked = family and o.case.spec.regime == "masked"
        groups.setdefault("log-softmax-masked-vocabulary" if masked else "numerically-unstable", []).append(o)
    return {code: groups[code] for code in CATALOGUE if code in groups}


def _value_mismatch(
    kind: str,
    finite: list[Outcome],
    fits: list[tuple[Hypothesis, float, int]],
    reference: Hypothesis,
    codes: Callable[[Hypothesis], tuple[str, ...]],
) -> Finding:
    failing = [o for o in finite if o.prediction.value_error(reference, o.value) > 1.0]
    by_regime: dict[str, list[int]] = {}
    for o in finite:
        counts = by_regime.setdefault(f"{o.case.spec.regime}/{o.case.dtype.name}", [0, 0])
        counts[0] += o in failing
        counts[1] += 1
    failing.sort(key=lambda o: -o.prediction.value_error(reference, o.value))
    worst = [
        _case_brief(
            o,
            expected=o.prediction.value(reference)[0],
            got=o.value,
            error_in_tolerances=o.prediction.value_error(reference, o.value),
        )
        for o in failing[:3]
    ]
    hints = []
    power_law = _power_law(finite, reference)
    if power_law:
        hints.append(power_law)
    hints += pattern_hints(failing, finite)
    regimes = {o.case.spec.regime for o in failing}
    dtypes = {o.case.dtype.name for o in failing}
    if failing and regimes <= LARGE_LOGIT_REGIMES:
        hints.append(
            "it agrees on ordinary logits but not on large ones: the formula loses precision for large "
            "logits (log(softmax(·) + eps), clamping, or computing in low precision)"
        )
    if failing and dtypes == {"float32"}:
        hints.append("only float32 cases fail: a precision problem (half-precision arithmetic?)")
    if failing and dtypes == {"float64"} and len(regimes) > 1:
        hints.append(
            "only float64 cases fail, by float32-sized errors: the loss computes in float32 (.float()?)"
        )
    with_gradient = [o for o in finite if o.has_gradient and o.gradient_finite()]
    if with_gradient and all(o.grad_error(reference) <= 1.0 for o in with_gradient):
        hints.append(
            "the gradient agrees with kdcore's, so the difference does not depend on the student logits: "
            "an added constant, or a term of the teacher alone"
        )
    evidence: dict[str, Any] = {
        "expected": reference.describe(kind),
        "failing_cases": f"{len(failing)} of {len(finite)}",
        "failing_by_regime": {key: f"{n} of {m}" for key, (n, m) in by_regime.items() if n},
        "worst": worst,
    }
    # A catalogued cause is worth naming only if it explains more cases than the reference does.
    closest = max(fits, key=lambda item: (item[2], -len(codes(item[0]))))
    if codes(closest[0]) and closest[2] > len(finite) - len(failing):
        evidence["closest_catalogued_cause"] = (
            f"{', '.join(codes(closest[0]))}: {closest[0].describe(kind)} "
            f"(fits {closest[2]} of {len(finite)} cases, not all)"
        )
    hint = (" (" + "; ".join(hints) + ")") if hints else ""
    return Finding("value-mismatch", message("value-mismatch", hint), evidence)


def _gradient_mismatch(
    kind: str, wrong: list[Outcome], target: Hypothesis, measured: list[Outcome]
) -> Finding:
    rows = []
    for o in sorted(wrong, key=lambda o: -o.grad_error(target))[:3]:
        expected, _ = o.prediction.grad(target)
        row = _case_brief(o, error_in_tolerances=o.grad_error(target))
        if o.evaluation is not None and o.evaluation.grad is not None:
            got = o.evaluation.grad
            norm_expected, norm_got = float(np.linalg.norm(expected)), float(np.linalg.norm(got))
            if norm_expected:
                row["norm_got/norm_expected"] = norm_got / norm_expected
            else:
                row["norm_got (expected: 0)"] = norm_got
            if norm_expected and norm_got:
                row["cosine"] = float(np.sum(got * expected) / (norm_got * norm_expected))
        rows.append(row)
    zero = all(
        o.evaluation is not None and o.evaluation.grad is not None and not np.any(o.evaluation.grad)
        for o in wrong
    )
    details = ["it is exactly zero: nothing of the loss reaches the student logits"] if zero else []
    details += pattern_hints(wrong, measured)
    detail = f" ({'; '.join(details)})" if details else ""
    text = message("gradient-mismatch", detail)
    evidence = {
        "value_fits": target.describe(kind),
        "failing_cases": f"{len(wrong)} of {len(measured)}",
        "worst": rows,
    }
    return Finding("gradient-mismatch", text, evidence)


def _weights(o: Outcome) -> dict[str, float]:
    """The weights of a case of the newer kinds, by their names (β of the JSD, α of skew KL, DKD's α and β)."""
    spec, kind = o.case.spec, o.prediction.kind
    return {"jsd": {"beta": getattr(spec, "beta", 0.0)}, "dkd": {"alpha": spec.alpha, "beta": getattr(spec, "beta", 0.0)},
            "skew-kl": {"skew": getattr(spec, "skew", 0.0)},
            "skew-reverse-kl": {"skew": getattr(spec, "skew", 0.0)}}.get(kind, {})  # fmt: skip


def _case_result(o: Outcome, reference: Hypothesis, non_finite: bool) -> CaseResult:
    spec = o.case.spec
    base = {
        "id": o.case.id,
        "regime": spec.regime,
        "dtype": o.case.dtype.name,
        "batch_size": spec.batch_size,
        "n_classes": spec.n_classes,
        "T": spec.T,
        "alpha": spec.alpha if o.prediction.kind == "distillation" else None,
        "grad_source": o.grad_source,
    }
    if o.prediction.kind in FAMILY_KINDS:
        base.update(shape=list(o.case.student_logits.shape), weights=_weights(o))
    elif o.prediction.kind == "topk":
        base.update(shape=list(o.case.student_logits.shape), weights={"k": spec.k})
    if o.error is not None:
        return CaseResult(**base, status="exception", detail=o.error)
    if o.not_scalar is not None:
        return CaseResult(**base, status="not-scalar", detail=f"returned shape {o.not_scalar}")
    value_error = o.prediction.value_error(reference, o.value)
    grad_error = o.grad_error(reference)  # the reference gradient is the same in both conventions
    grad_error = None if math.isnan(grad_error) else grad_error
    if non_finite:
        status = "non-finite"
    elif value_error > 1.0:
        status = "value"
    elif grad_error is not None and grad_error > 1.0:
        status = "gradient"
    else:
        status = "ok"
    return CaseResult(
        **base,
        status=status,
        expected=o.prediction.value(reference)[0],
        got=o.value,
        value_error=value_error,
        grad_error=grad_error,
    )
