r"""Reports: :class:`Finding`, :class:`CaseResult` and :class:`Report`, their text and their JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["REPORT_SCHEMA_VERSION", "CaseResult", "Finding", "Report", "jsonable"]

REPORT_SCHEMA_VERSION = 1


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars made Python ones, tuples made lists, and inf/NaN made strings.

    Strict JSON has no inf or NaN; they are written as the strings "Infinity", "-Infinity" and "NaN"
    (JavaScript's spellings) and read back by :meth:`Report.from_json`.
    """
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _from_jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(item) for item in value]
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    return value


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a loss: a catalogue ``code``, a sentence for people, the data behind it."""

    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseResult:
    """What happened on one case of the battery.

    ``value_error`` and ``grad_error`` are distances from kdcore's reference in units of the allowance
    (see :data:`VALUE_ULPS`): at most 1 passes. ``status`` is ``"ok"``, ``"value"`` (value off),
    ``"gradient"`` (value right, gradient off), ``"non-finite"``, ``"exception"`` or ``"not-scalar"``.
    """

    id: str
    regime: str
    dtype: str
    batch_size: int
    n_classes: int
    T: float
    alpha: float | None
    status: str
    expected: float | None = None
    got: float | None = None
    value_error: float | None = None
    grad_error: float | None = None
    grad_source: str = "none"  # "autograd", "grad_fn", "finite-differences" or "none"
    detail: str | None = None
    shape: list[int] | None = None  # the newer kinds: the logits' shape, (B, V) or (B, S, V)
    weights: dict[str, float] | None = None  # the newer kinds: β, the skew α, DKD's α and β


@dataclass(frozen=True)
class Report:
    """The verdict on one loss: ``ok``, the findings, and every case that was run.

    ``str(report)`` is for people, :meth:`to_json` for CI; :meth:`from_json` reads the latter back.
    ``convention`` is ``"kl"`` or ``"cross_entropy"`` when the soft term was identified (``None`` if not);
    for the newer kinds (``"jsd"``, ``"dkd"``, ...) it lists the conventions found, separated by ``"; "``;
    ``notes`` are observations that do not affect ``ok`` (warnings the loss emitted, its behaviour with
    ``-inf`` masks).
    """

    kind: str
    framework: str
    function: str
    ok: bool
    reference: str
    convention: str | None
    t2_scaling: bool
    findings: tuple[Finding, ...]
    cases: tuple[CaseResult, ...]
    notes: tuple[Finding, ...] = ()
    schema_version: int = REPORT_SCHEMA_VERSION

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes of the findings, in order."""
        return tuple(finding.code for finding in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (non-finite numbers as strings, see :meth:`to_json`)."""
        data = dataclasses.asdict(self)
        data = {"schema": "kdcore-check-report", **data}
        return jsonable(data)

    def to_json(self, indent: int | None = 2) -> str:
        """The report as strict JSON (inf and NaN written as "Infinity", "-Infinity", "NaN").

        Examples
        --------
        >>> from kdcore.verify import Report
        >>> report = Report("soft", "numpy", "f", True, "T²·KL", "kl", True, (), ())
        >>> Report.from_json(report.to_json()) == report
        True
        """
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Read a report written by :meth:`to_json`."""
        data = _from_jsonable(json.loads(text))
        if data.pop("schema", None) != "kdcore-check-report":
            raise ValueError("not a kdcore check report (its 'schema' field is not 'kdcore-check-report')")

        def findings(items: list[dict]) -> tuple[Finding, ...]:
            return tuple(Finding(**item) for item in items)

        data["findings"] = findings(data["findings"])
        data["notes"] = findings(data.get("notes", []))
        data["cases"] = tuple(CaseResult(**item) for item in data["cases"])
        return cls(**data)

    def __str__(self) -> str:
        what = _WHAT.get(self.kind, f"{self.kind} loss")
        lines = [f"kdcore check: {what} {self.function} ({self.framework}): {'OK' if self.ok else 'FAIL'}"]
        lines.append(f"  reference   {self.reference}")
        found = {"kl": "KL(teacher ‖ student)", "cross_entropy": "soft cross-entropy −Σ q·log p"}
        if self.convention is not None:
            for index, clause in enumerate(self.convention.split("; ")):
                lines.append(f"  {'convention' if index == 0 else '':<10}  {found.get(clause, clause)}")
        counts = {status: sum(case.status == status for case in self.cases) for status in _STATUSES}
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        lines.append(f"  cases       {len(self.cases)} run: {summary}")
        notes = list(self.notes)
        for note in [n for n in notes if n.code == "called-as"]:
            lines.append(f"  called as   {note.message}")
            lines += [f"              {key}: {_short(value)}" for key, value in note.evidence.items()]
        # Findings that share their evidence (the codes of one fitted formula) print it once, as one block.
        for index, finding in enumerate(self.findings):
            shares = index > 0 and finding.evidence == self.findings[index - 1].evidence
            following = (
                index + 1 < len(self.findings) and self.findings[index + 1].evidence == finding.evidence
            )
            lines += ([] if shares else [""]) + _finding_lines(finding, evidence=not following)
        for note in [n for n in notes if n.code != "called-as"]:
            lines += ["", *_finding_lines(note, prefix="note: ")]
        lines += ["", _case_header()]
        lines += _case_lines(self.cases)
        return "\n".join(lines)


_WHAT = {
    "soft": "soft loss",
    "distillation": "distillation loss",
    "reverse-kl": "reverse-KL loss",
    "jsd": "generalised JSD loss",
    "skew-kl": "skew KL loss",
    "skew-reverse-kl": "skew reverse KL loss",
    "dkd": "DKD loss",
    "topk": "top-k teacher loss",
}
_STATUSES = ("ok", "value", "gradient", "non-finite", "exception", "not-scalar")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        items = [_short(item) for item in value[:6]]
        return "[" + ", ".join(items) + (", …" if len(value) > 6 else "") + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_short(item)}" for key, item in value.items()) + "}"
    return str(value)


def _finding_lines(finding: Finding, prefix: str = "", evidence: bool = True) -> list[str]:
    lines = [f"{prefix}[{finding.code}] {finding.message}"]
    for key, value in finding.evidence.items() if evidence else ():
        lines.append(f"    {key}: {_short(value)}")
    return lines


def _case_lines(cases: tuple[CaseResult, ...]) -> list[str]:
    """One line per case, except that cases raising the same exception are folded into one line."""
    raised: dict[str, list[CaseResult]] = {}
    for case in cases:
        if case.status == "exception":
            raised.setdefault(case.detail or "", []).append(case)
    lines = []
    for case in cases:
        same = raised.get(case.detail or "", []) if case.status == "exception" else [case]
        if same[0] is not case:
            continue
        line = _case_line(case)
        if len(same) > 1:
            line = _case_line(dataclasses.replace(case, detail=None)) + (
                f"  (and {len(same) - 1} more cases, the same: {case.detail})"
            )
        lines.append(line)
    return lines


def _case_header() -> str:
    return f"  {'case':<24} {'B':>5} {'N':>5} {'T':>5} {'α':>5}  {'expected':>14} {'got':>14}  {'err/tol':>8} {'grad':>8}  status"


def _case_line(case: CaseResult) -> str:
    def number(value: float | None, width: int, spec: str) -> str:
        return f"{'—':>{width}}" if value is None else f"{value:>{width}{spec}}"

    alpha = number(case.alpha, 5, ".2f")
    if case.weights and "k" in case.weights:  # top-k: the number of stored classes in the α column
        alpha = f"{'k=' + format(case.weights['k'], 'g'):>5}"
    elif case.weights:  # the newer kinds: the case's own weight (β, skew α; DKD's β) in the α column
        alpha = number(list(case.weights.values())[-1], 5, ".2f")
    shape = "×".join(map(str, case.shape[:-1])) if case.shape else str(case.batch_size)
    return (
        f"  {case.id:<24} {shape:>5} {case.n_classes:>5} {case.T:>5g} {alpha}  "
        f"{number(case.expected, 14, '.7g')} {number(case.got, 14, '.7g')}  "
        f"{number(case.value_error, 8, '.2g')} {number(case.grad_error, 8, '.2g')}  {case.status}"
        + (f"  ({case.detail})" if case.detail else "")
    )
