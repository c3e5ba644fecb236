r"""Check a distillation loss written in another framework against kdcore, and say what is wrong with it.

An engineer has a knowledge-distillation loss in PyTorch, JAX or NumPy. :func:`check_soft_loss` and
:func:`check_distillation_loss` run it on a fixed battery of inputs, compare its value and its gradient
w.r.t. the student logits with kdcore's, and return a :class:`Report`: ``ok``, and for a wrong loss a
list of :class:`Finding` objects that name the cause (``missing-T2-scaling``, ``swapped-kl-direction``,
…) with the evidence. ``kdcore check MODULE:FUNCTION`` (:func:`run_check`) does the same from the shell.
The causes, their symptoms, their math and their fixes are documented in ``docs/verify.md``.

The reference
-------------
With student logits :math:`z`, teacher logits :math:`v`, labels :math:`y`, temperature :math:`T`, weight
:math:`\alpha`, :math:`p = \operatorname{softmax}(z/T)`, :math:`q = \operatorname{softmax}(v/T)` and
:math:`B` samples:

* ``check_soft_loss``: ``fn(student_logits, teacher_logits, T)`` must return
  :math:`\frac{T^2}{B}\sum_b \mathrm{KL}(q_b\,\|\,p_b)` or :math:`\frac{T^2}{B}\sum_b (-\textstyle\sum_i q_{bi}\log p_{bi})`
  — Hinton's prescription, reduced as PyTorch's ``"batchmean"``. Both conventions are accepted (they differ
  by the teacher's entropy, which does not depend on the student, so the gradients agree); the report
  says which one it found.
* ``check_distillation_loss``: ``fn(student_logits, teacher_logits, labels, T, alpha)`` must return
  :func:`kdcore.distillation_loss` — :math:`\alpha\,\mathrm{CE}(y, z) + (1-\alpha)\,T^2\,L_\text{soft}`,
  the hard cross-entropy at temperature 1, mean over samples, the soft term in either convention.

``t2_scaling=False`` drops the :math:`T^2` from the reference, for code that scales elsewhere.

How a cause is named
--------------------
By fitting, not by pattern-matching source code. Every catalogued cause is a *hypothesis* with a
formula — "the loss is :math:`\frac1B\sum_b \mathrm{KL}` without :math:`T^2`", "it is
:math:`T^2\,\mathrm{KL}(p\,\|\,q)`", "it divides by :math:`B N`" — and combinations of them (a loss can
both forget :math:`T^2` and average over classes). kdcore computes each hypothesis's value on every case
of the battery; the report names the hypothesis that matches the loss on *all* cases within the same
tolerance as the reference. When none matches, the finding is ``value-mismatch``: the catalogue explains
failures, it never excuses one. A loss whose value is right (or right under a named hypothesis) but whose
gradient is not gets ``gradient-mismatch``. Non-finite results are classified first: only on large finite
logits (``numerically-unstable``), or even on ordinary ones (``non-finite``).

Examples
--------
A NumPy loss that forgets the :math:`T^2` (NumPy losses may pass their own gradient as ``grad_fn``;
without one, kdcore uses finite differences):

>>> import numpy as np
>>> from kdcore import log_softmax, softmax
>>> from kdcore.verify import check_soft_loss
>>> def kd_loss(student_logits, teacher_logits, T):
...     teacher_probs = softmax(teacher_logits, T)
...     return -np.sum(teacher_probs * log_softmax(student_logits, T)) / len(student_logits)
>>> def kd_loss_grad(student_logits, teacher_logits, T):
...     diff = softmax(student_logits, T) - softmax(teacher_logits, T)
...     return diff / T / len(student_logits)
>>> report = check_soft_loss(kd_loss, framework="numpy", grad_fn=kd_loss_grad)
>>> report.ok
False
>>> [finding.code for finding in report.findings]
['missing-T2-scaling']
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import inspect
import itertools
import json
import math
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .adapters import (
    FRAMEWORKS,
    Adapter,
    Evaluation,
    FrameworkNotInstalledError,
    NotScalarError,
    get_adapter,
)
from .cross_entropy import cross_entropy, cross_entropy_grad
from .divergences import kl_divergence, kl_divergence_grad, soft_cross_entropy, soft_cross_entropy_grad
from .gradcheck import DEFAULT_STEP_FACTOR, directional_derivative
from .softmax import softmax, softmax_vjp

__all__ = [
    "BATTERY",
    "CATALOGUE",
    "KINDS",
    "REPORT_SCHEMA_VERSION",
    "CaseResult",
    "CaseSpec",
    "Cause",
    "Finding",
    "Report",
    "check_distillation_loss",
    "check_soft_loss",
    "run_check",
]

KINDS = ("soft", "distillation")
REPORT_SCHEMA_VERSION = 1

# --------------------------------------------------------------------------------------------------------
# The catalogue of causes


@dataclass(frozen=True)
class Cause:
    """A catalogued reason why a loss disagrees with kdcore: what it is and how to fix it."""

    title: str
    fix: str


CATALOGUE: dict[str, Cause] = {
    "missing-T2-scaling": Cause(
        "the soft term is not multiplied by T²",
        "multiply the soft loss by T**2, as Hinton et al. (2015) prescribe: the soft gradient (p − q)/T "
        "shrinks like 1/T², and T² keeps its weight against the hard loss independent of the temperature",
    ),
    "unexpected-T2-scaling": Cause(
        "the soft term is multiplied by T², but the check was asked for t2_scaling=False",
        "drop the T**2 factor, or check with t2_scaling=True (the default, Hinton's prescription)",
    ),
    "mean-over-classes": Cause(
        "the loss averages over classes as well as samples (PyTorch's kl_div reduction='mean')",
        "use reduction='batchmean' (sum over classes, mean over samples); 'mean' divides by B·N",
    ),
    "sum-over-batch": Cause(
        "the loss sums over the samples instead of averaging them",
        "divide by the batch size (kl_div reduction='batchmean', cross_entropy reduction='mean')",
    ),
    "probabilities-as-log-probabilities": Cause(
        "the student's probabilities are used where its log-probabilities belong",
        "pass log_softmax(student_logits / T) as kl_div's input (not softmax), or use log p in −Σ q·log p",
    ),
    "swapped-kl-direction": Cause(
        "the divergence runs the wrong way: KL(student ‖ teacher) instead of KL(teacher ‖ student)",
        "kl_div(input, target) computes KL(target ‖ input): the input is the student's log-probabilities, "
        "the target the teacher's probabilities",
    ),
    "numerically-unstable": Cause(
        "the loss is not finite for large but finite logits, where the true loss is",
        "compute log-probabilities with log_softmax (never log(softmax(·)) or exp(·)/sum(exp(·))), and "
        "zero the terms of masked classes instead of multiplying 0 by log 0",
    ),
    "non-finite": Cause(
        "the loss is not finite even on ordinary logits",
        "look for a log of a negative number or of 0; the usual culprit is kl_div(log_softmax(z/T), "
        "log_softmax(v/T)) without log_target=True, which takes the log of log-probabilities",
    ),
    "temperature-on-hard-loss": Cause(
        "the hard-label cross-entropy is computed on the tempered logits z/T",
        "compute the hard term at T = 1: cross_entropy(student_logits, labels); T softens the teacher only",
    ),
    "alpha-swapped": Cause(
        "the weights are exchanged: (1 − α) on the hard term and α on the soft term",
        "the reference weighs the hard term by α and the soft term by (1 − α) (kdcore.distillation_loss); "
        "swap them, or pass 1 − α",
    ),
    "gradient-mismatch": Cause(
        "the value is right but the gradient w.r.t. the student logits is not",
        "look for .detach() / stop_gradient / .item() / a NumPy round trip on the student's path, or a "
        "custom backward that disagrees with the forward",
    ),
    "value-mismatch": Cause(
        "the value disagrees with kdcore, and no catalogued cause explains it",
        "compare the failing cases below with kdcore.kl_divergence / kdcore.distillation_loss on the same "
        "inputs; typical causes are a softmax over the wrong axis, a temperature applied twice or not at "
        "all, label smoothing, or a precision loss",
    ),
    "exception": Cause(
        "the loss raised an exception on some inputs",
        "the battery uses shapes (B, N) with B from 1 to 64 and N from 2 to 1000, float32 and float64; "
        "see the message of each failing case",
    ),
    "not-scalar": Cause(
        "the loss did not return a single number",
        "reduce over the samples (mean, 'batchmean') so that the loss is a scalar",
    ),
}

# --------------------------------------------------------------------------------------------------------
# The battery

SEED = 20150309  # the date Hinton et al. posted the paper, as in the tests
MASK_LOGIT = -1e9  # masked classes: a large *finite* negative logit (see the "masked" regime below)
# Regimes whose logits are large: a non-finite result there (and only there) is "numerically-unstable".
LARGE_LOGIT_REGIMES = frozenset({"extreme", "offset", "masked"})
# Finite differences (NumPy losses without grad_fn) only where a step of ~1e-4 probes the function well.
FINITE_DIFFERENCE_REGIMES = frozenset({"ordinary", "high-T", "near-equal", "equal", "masked"})


@dataclass(frozen=True)
class CaseSpec:
    """One row of the battery: a regime, a shape, a temperature and (for distillation) a weight α."""

    regime: str
    batch_size: int
    n_classes: int
    T: float
    alpha: float
    why: str


#: The battery, run in float32 and in float64 (24 cases). Inputs are seeded (``SEED`` and the row index),
#: so every run and machine sees the same numbers; float32 cases round the float64 draws.
BATTERY: tuple[CaseSpec, ...] = (
    CaseSpec("ordinary", 1, 2, 1.0, 0.5, "the smallest problem: one sample, two classes"),
    CaseSpec("ordinary", 8, 10, 4.0, 0.1, "a typical batch and the paper's kind of temperature"),
    CaseSpec("ordinary", 64, 1000, 2.0, 0.9, "the largest shape: ImageNet-sized class axis"),
    CaseSpec("ordinary", 3, 5, 0.5, 0.0, "a temperature below 1 (sharpening); α = 0: soft term only"),
    CaseSpec("high-T", 16, 100, 20.0, 0.25, "a high temperature, where T² matters most"),
    CaseSpec("ordinary", 5, 7, 3.7, 1.0, "a temperature that is not a power of 2; α = 1: hard term only"),
    CaseSpec("near-equal", 4, 10, 2.0, 0.5, "teacher = student + 1e-3 noise: KL ~ 1e-7"),
    CaseSpec("equal", 2, 6, 3.0, 0.3, "teacher = student: KL = 0 exactly"),
    CaseSpec("extreme", 4, 10, 1.0, 0.6, "logits of magnitude 1e3 to 1e4; student and teacher disagree"),
    CaseSpec("extreme", 2, 50, 0.5, 0.2, "logits up to ±1e4 at T = 0.5: exp(z/T) overflows"),
    CaseSpec("offset", 8, 20, 5.0, 0.7, "ordinary logits shifted by +1e4 (student) and −5e3 (teacher)"),
    CaseSpec("masked", 6, 12, 2.0, 0.4, "a third of the classes masked with logit −1e9 in both"),
)
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True, eq=False)  # compared by identity: its fields are arrays
class _Case:
    """One case of the battery: a spec, a dtype and the inputs."""

    index: int
    spec: CaseSpec
    dtype: np.dtype
    student_logits: np.ndarray  # (B, N) in ``dtype``
    teacher_logits: np.ndarray
    labels: np.ndarray  # (B,) int64, never on a masked class
    mask: np.ndarray  # (B, N) bool, True where a class is masked

    @property
    def id(self) -> str:
        return f"{self.index + 1:02d}-{self.spec.regime}-{self.dtype.name}"


def _inputs(index: int, spec: CaseSpec, mask_value: float = MASK_LOGIT) -> tuple[np.ndarray, ...]:
    """The float64 inputs of one battery row (the same for both dtypes)."""
    rng = np.random.default_rng([SEED, index])
    shape = (spec.batch_size, spec.n_classes)
    student = rng.normal(0.0, 3.0, shape)
    teacher = rng.normal(0.0, 4.0, shape)  # a somewhat sharper teacher than student, as after training
    mask = np.zeros(shape, dtype=bool)
    if spec.regime == "near-equal":
        teacher = student + 1e-3 * rng.standard_normal(shape)
    elif spec.regime == "equal":
        teacher = student.copy()
    elif spec.regime == "extreme":
        student = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(3.0, 4.0, shape)
        teacher = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(3.0, 4.0, shape)
    elif spec.regime == "offset":
        student, teacher = student + 1e4, teacher - 5e3
    elif spec.regime in ("masked", "masked-inf"):
        # The same classes masked in student and teacher (a padded vocabulary), at least 2 left per row.
        mask = rng.random(shape) < 1 / 3
        mask[:, :2] = False
        mask = np.take_along_axis(mask, rng.permuted(np.tile(np.arange(shape[1]), (shape[0], 1)), axis=1), 1)
        student, teacher = np.where(mask, mask_value, student), np.where(mask, mask_value, teacher)
    labels = np.array([rng.choice(np.flatnonzero(~row)) for row in mask], dtype=np.int64)
    return student, teacher, labels, mask


@functools.cache
def _battery() -> tuple[_Case, ...]:
    """The battery's cases, built once per process (adapters copy the arrays before any call)."""
    cases = []
    for dtype in DTYPES:
        for index, spec in enumerate(BATTERY):
            student, teacher, labels, mask = _inputs(index, spec)
            cases.append(
                _Case(index, spec, dtype, student.astype(dtype), teacher.astype(dtype), labels, mask)
            )
    return tuple(cases)


@functools.cache
def _infinite_mask_probe() -> _Case:
    """An extra case, not part of the verdict: classes masked with −inf, as many codebases do."""
    spec = CaseSpec("masked-inf", 2, 6, 2.0, 0.5, "classes masked with -inf in both")
    student, teacher, labels, mask = _inputs(len(BATTERY), spec, mask_value=-np.inf)
    return _Case(len(BATTERY), spec, np.dtype(np.float64), student, teacher, labels, mask)


# --------------------------------------------------------------------------------------------------------
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
# good to ~1e-15 relative, so all of the allowance is the implementation's.
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


def _eps(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps)


# --------------------------------------------------------------------------------------------------------
# Hypotheses: the reference and every catalogued way of getting it wrong, as formulas kdcore can evaluate

_SOFT_FORMS = ("reference", "swapped", "probs-as-log-probs")
_CONVENTIONS = ("kl", "cross_entropy")
_REDUCTIONS = ("batchmean", "mean-over-classes", "sum")


@dataclass(frozen=True)
class _Hypothesis:
    soft_form: str = "reference"
    convention: str = "kl"
    t2: bool = True  # the soft term is multiplied by T²
    soft_reduction: str = "batchmean"
    hard_at_T: bool = False  # distillation: the hard cross-entropy of z/T instead of z
    alpha_swapped: bool = False
    hard_reduction: str = "batchmean"

    def codes(self, t2_expected: bool) -> tuple[str, ...]:
        """The catalogue codes this hypothesis deviates by, in the catalogue's order."""
        found = set()
        if self.soft_form == "swapped":
            found.add("swapped-kl-direction")
        elif self.soft_form == "probs-as-log-probs":
            found.add("probabilities-as-log-probabilities")
        if self.t2 != t2_expected:
            found.add("missing-T2-scaling" if t2_expected else "unexpected-T2-scaling")
        if self.soft_reduction == "mean-over-classes":
            found.add("mean-over-classes")
        if "sum" in (self.soft_reduction, self.hard_reduction):
            found.add("sum-over-batch")
        if self.hard_at_T:
            found.add("temperature-on-hard-loss")
        if self.alpha_swapped:
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
        reductions = {"batchmean": "mean over samples", "mean-over-classes": "mean over samples and classes"}
        soft = f"{'T²·' if self.t2 else ''}{soft} ({reductions.get(self.soft_reduction, 'sum over samples')})"
        if kind == "soft":
            return soft
        hard = "CE(y, z/T)" if self.hard_at_T else "CE(y, z)"
        hard += " (sum over samples)" if self.hard_reduction == "sum" else " (mean over samples)"
        weights = ("(1 − α)", "α") if self.alpha_swapped else ("α", "(1 − α)")
        return f"{weights[0]}·{hard} + {weights[1]}·{soft}"


def _hypotheses(kind: str) -> list[_Hypothesis]:
    soft = [
        _Hypothesis(form, convention, t2, reduction)
        for form, convention, t2, reduction in itertools.product(
            _SOFT_FORMS, _CONVENTIONS, (True, False), _REDUCTIONS
        )
    ]
    if kind == "soft":
        return soft
    return [
        dataclasses.replace(h, hard_at_T=at_T, alpha_swapped=swapped, hard_reduction=reduction)
        for h in soft
        for at_T, swapped, reduction in itertools.product((False, True), (False, True), ("batchmean", "sum"))
    ]


def _reduction_factor(reduction: str, batch_size: int, n_classes: int) -> float:
    return {"batchmean": 1.0 / batch_size, "mean-over-classes": 1.0 / (batch_size * n_classes), "sum": 1.0}[
        reduction
    ]


class _Prediction:
    """Everything kdcore knows about one case, in float64: each hypothesis's value, gradient and tolerance.

    Per-sample terms are computed once; a hypothesis is a linear combination of their sums (values) or
    rows (gradients), so evaluating 288 hypotheses costs nothing next to running the loss.
    """

    def __init__(self, case: _Case, kind: str) -> None:
        self.case, self.kind = case, kind
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

    def _weights(self, h: _Hypothesis) -> tuple[float, float]:
        """The factors of the hard and soft sums: weight × T-power × reduction."""
        alpha = self.case.spec.alpha
        soft = (self.T**2 if h.t2 else 1.0) * _reduction_factor(h.soft_reduction, self.B, self.N)
        if self.kind == "soft":
            return 0.0, soft
        hard_weight, soft_weight = (1.0 - alpha, alpha) if h.alpha_swapped else (alpha, 1.0 - alpha)
        return hard_weight * _reduction_factor(h.hard_reduction, self.B, self.N), soft_weight * soft

    def value(self, h: _Hypothesis) -> tuple[float, float]:
        """The hypothesis's value and the scale of its rounding (see "Tolerances")."""
        hard_factor, soft_factor = self._weights(h)
        value = soft_factor * self.soft_sums[h.soft_form, h.convention]
        scale = soft_factor * self.soft_scale
        if hard_factor:
            value += hard_factor * self.hard_sums[h.hard_at_T]
            scale += hard_factor * self.hard_scale
        return value, scale

    def grad(self, h: _Hypothesis) -> tuple[np.ndarray, float]:
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

    def value_error(self, h: _Hypothesis, got: float) -> float:
        """|got − value| in units of the allowance: ≤ 1 passes. inf when either is not finite."""
        expected, scale = self.value(h)
        if not (math.isfinite(got) and math.isfinite(expected)):
            return math.inf
        allowance = VALUE_ULPS[self.case.dtype] * _eps(self.case.dtype) * (abs(expected) + scale)
        return abs(got - expected) / allowance

    def grad_error(self, h: _Hypothesis, got: np.ndarray) -> float:
        """max |got − gradient| in units of the allowance (normwise, max-norm): ≤ 1 passes."""
        expected, scale = self.grad(h)
        if not np.all(np.isfinite(got)):
            return math.inf
        allowance = GRAD_ULPS[self.case.dtype] * _eps(self.case.dtype) * (np.max(np.abs(expected)) + scale)
        return float(np.max(np.abs(got - expected)) / allowance)


# --------------------------------------------------------------------------------------------------------
# Reports


def _message(code: str, detail: str = "") -> str:
    """A finding's sentence: what is wrong (with ``detail``), then the fix from the catalogue."""
    cause = CATALOGUE[code]
    return f"{cause.title}{detail}. Fix: {cause.fix}."


def _jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars made Python ones, tuples made lists, and inf/NaN made strings.

    Strict JSON has no inf or NaN; they are written as the strings "Infinity", "-Infinity" and "NaN"
    (JavaScript's spellings) and read back by :meth:`Report.from_json`.
    """
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
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


@dataclass(frozen=True)
class Report:
    """The verdict on one loss: ``ok``, the findings, and every case that was run.

    ``str(report)`` is for people, :meth:`to_json` for CI; :meth:`from_json` reads the latter back.
    ``convention`` is ``"kl"`` or ``"cross_entropy"`` when the soft term was identified (``None`` if not),
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
        return _jsonable(data)

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
        what = "soft loss" if self.kind == "soft" else "distillation loss"
        lines = [f"kdcore check: {what} {self.function} ({self.framework}): {'OK' if self.ok else 'FAIL'}"]
        lines.append(f"  reference   {self.reference}")
        found = {"kl": "KL(teacher ‖ student)", "cross_entropy": "soft cross-entropy −Σ q·log p"}
        if self.convention is not None:
            lines.append(f"  convention  {found[self.convention]}")
        counts = {status: sum(case.status == status for case in self.cases) for status in _STATUSES}
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        lines.append(f"  cases       {len(self.cases)} run: {summary}")
        for finding in self.findings:
            lines += ["", *_finding_lines(finding)]
        for note in self.notes:
            lines += ["", *_finding_lines(note, prefix="note: ")]
        lines += ["", _case_header()]
        lines += [_case_line(case) for case in self.cases]
        return "\n".join(lines)


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


def _finding_lines(finding: Finding, prefix: str = "") -> list[str]:
    lines = [f"{prefix}[{finding.code}] {finding.message}"]
    for key, value in finding.evidence.items():
        lines.append(f"    {key}: {_short(value)}")
    return lines


def _case_header() -> str:
    return f"  {'case':<24} {'B':>3} {'N':>5} {'T':>5} {'α':>5}  {'expected':>14} {'got':>14}  {'err/tol':>8} {'grad':>8}  status"


def _case_line(case: CaseResult) -> str:
    def number(value: float | None, width: int, spec: str) -> str:
        return f"{'—':>{width}}" if value is None else f"{value:>{width}{spec}}"

    alpha = number(case.alpha, 5, ".2f")
    return (
        f"  {case.id:<24} {case.batch_size:>3} {case.n_classes:>5} {case.T:>5g} {alpha}  "
        f"{number(case.expected, 14, '.7g')} {number(case.got, 14, '.7g')}  "
        f"{number(case.value_error, 8, '.2g')} {number(case.grad_error, 8, '.2g')}  {case.status}"
        + (f"  ({case.detail})" if case.detail else "")
    )


# --------------------------------------------------------------------------------------------------------
# Running the loss


@dataclass(eq=False)  # compared by identity: its fields are arrays
class _Outcome:
    """One case's raw result, before any diagnosis."""

    case: _Case
    prediction: _Prediction
    evaluation: Evaluation | None = None
    grad_source: str = "none"
    # For finite differences: the unit directions and the measured directional derivatives.
    directions: list[np.ndarray] = field(default_factory=list)
    derivatives: list[float] = field(default_factory=list)
    fd_noise: float = 0.0
    error: str | None = None  # an exception's one-line description
    not_scalar: tuple[int, ...] | None = None

    @property
    def value(self) -> float:
        return math.nan if self.evaluation is None else self.evaluation.value

    @property
    def has_gradient(self) -> bool:
        return (self.evaluation is not None and self.evaluation.grad is not None) or bool(self.derivatives)

    def gradient_finite(self) -> bool:
        if self.evaluation is not None and self.evaluation.grad is not None:
            return bool(np.all(np.isfinite(self.evaluation.grad)))
        return all(math.isfinite(d) for d in self.derivatives)

    def grad_error(self, h: _Hypothesis) -> float:
        """The gradient's distance from the hypothesis's, in allowances (≤ 1 passes); NaN if not measured."""
        if self.evaluation is not None and self.evaluation.grad is not None:
            return self.prediction.grad_error(h, self.evaluation.grad)
        if not self.derivatives:
            return math.nan
        expected, _ = self.prediction.grad(h)
        norm = float(np.linalg.norm(expected))
        worst = 0.0
        for direction, measured in zip(self.directions, self.derivatives, strict=True):
            if not math.isfinite(measured):
                return math.inf
            predicted = float(np.sum(expected * direction))
            allowance = FD_RTOL * (abs(predicted) + norm) + self.fd_noise
            worst = max(worst, abs(measured - predicted) / allowance)
        return worst


class _Recorder:
    """Collects the warnings a loss emits (PyTorch warns about kl_div's reduction='mean', for instance)."""

    def __init__(self) -> None:
        self.messages: dict[str, None] = {}

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        # The loss's own warnings are data for the report, not errors of ours (and under pytest's
        # filterwarnings = error they would abort the check); floating-point warnings are silenced because a
        # non-finite result is what the report is about.
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
            warnings.simplefilter("always")
            yield
        for warning in caught:
            self.messages.setdefault(f"{warning.category.__name__}: {warning.message}", None)


_LIBRARY_DIRECTORIES = (
    str(Path(__file__).resolve().parent),
    str(Path(os.__file__).resolve().parent),
    "site-packages",
)


def _describe_exception(error: BaseException) -> str:
    """One line: the exception, and the deepest line of the user's own code it came through."""
    frames = traceback.extract_tb(error.__traceback__)
    # The user's line, not the framework's: the deepest frame outside kdcore, the standard library and
    # installed packages (falling back to the deepest frame of all).
    own = [
        f for f in frames if not any(part in str(Path(f.filename).resolve()) for part in _LIBRARY_DIRECTORIES)
    ]
    frame = (own or frames or [None])[-1]
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame is not None else ""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return (text if len(text) <= 200 else text[:197] + "...") + where


@functools.lru_cache(maxsize=2 * 2 * (len(BATTERY) + 1))
def _prediction(case: _Case, kind: str) -> _Prediction:
    """kdcore's side of a case, computed once per process: checking a zoo of losses reuses it."""
    return _Prediction(case, kind)


def _run_case(
    fn: Callable, grad_fn: Callable | None, kind: str, adapter: Adapter, case: _Case, recorder: _Recorder
) -> _Outcome:
    outcome = _Outcome(case, _prediction(case, kind))
    spec = case.spec
    with adapter.precision(case.dtype), recorder.capture():
        try:
            # Fresh framework arrays at every call: a loss that writes into its inputs must not change what
            # the next call (its gradient, a finite-difference probe) sees.
            def teacher():
                return adapter.constant(case.teacher_logits)

            def labels():
                return adapter.labels(case.labels)

            if kind == "soft":

                def loss_of_student(student):
                    return fn(student, teacher(), spec.T)

                def grad_of_student(student):
                    return grad_fn(student, teacher(), spec.T)
            else:

                def loss_of_student(student):
                    return fn(student, teacher(), labels(), spec.T, spec.alpha)

                def grad_of_student(student):
                    return grad_fn(student, teacher(), labels(), spec.T, spec.alpha)

            outcome.evaluation = adapter.value_and_grad(
                loss_of_student, case.student_logits, grad_of_student if grad_fn is not None else None
            )
            if adapter.has_autograd:
                outcome.grad_source = "autograd"
            elif grad_fn is not None:
                outcome.grad_source = "grad_fn"
            elif case.dtype == np.float64 and spec.regime in FINITE_DIFFERENCE_REGIMES:
                _finite_differences(outcome, loss_of_student)
        except NotScalarError as error:
            outcome.not_scalar = error.shape
        except Exception as error:  # the user's loss may raise anything; each case reports its own
            outcome.error = _describe_exception(error)
            outcome.evaluation = None
    return outcome


def _finite_differences(outcome: _Outcome, loss_of_student: Callable) -> None:
    """Directional derivatives of a NumPy loss along seeded random unit directions (float64 only)."""
    case = outcome.case
    rng = np.random.default_rng([SEED, case.index, 1])
    active = ~case.mask
    # The step: gradcheck's eps^(1/4)·max(1, |x|), with |x| over unmasked classes only (the −1e9 of a mask
    # would make it 1e5), and no larger than T·eps^(1/4), since the loss curves on the scale of z/T.
    size = max(1.0, float(np.max(np.abs(case.student_logits[active]))))
    step = DEFAULT_STEP_FACTOR * min(size, max(case.spec.T, 1e-3) * size)
    scale = abs(outcome.value) + sum(map(abs, outcome.prediction.value(_Hypothesis())))
    outcome.fd_noise = FD_NOISE_ULPS * 3.0 * _eps(np.dtype(np.float64)) * scale / step
    for _ in range(FD_DIRECTIONS):
        direction = np.where(active, rng.standard_normal(case.student_logits.shape), 0.0)
        direction /= np.linalg.norm(direction)
        outcome.directions.append(direction)
        outcome.derivatives.append(
            # reshape: the adapter accepted a result of shape (1,), gradcheck wants a 0-d one
            directional_derivative(
                lambda z: np.reshape(loss_of_student(z), ()), case.student_logits, direction, step=step
            )
        )
    outcome.grad_source = "finite-differences"


# --------------------------------------------------------------------------------------------------------
# Diagnosis


def _fit(outcomes: list[_Outcome], hypotheses: list[_Hypothesis]) -> list[tuple[_Hypothesis, float, int]]:
    """Each hypothesis with its worst value error (in allowances) and how many cases it fits."""
    results = []
    for h in hypotheses:
        errors = [o.prediction.value_error(h, o.value) for o in outcomes]
        results.append((h, max(errors, default=0.0), sum(e <= 1.0 for e in errors)))
    return results


def _case_brief(outcome: _Outcome, **extra: Any) -> dict[str, Any]:
    spec = outcome.case.spec
    brief = {"case": outcome.case.id, "B": spec.batch_size, "N": spec.n_classes, "T": spec.T}
    if outcome.prediction.kind == "distillation":
        brief["alpha"] = spec.alpha
    return {**brief, **extra}


_SCALING_CODES = frozenset(
    {"missing-T2-scaling", "unexpected-T2-scaling", "mean-over-classes", "sum-over-batch"}
)


def _ratio_evidence(
    outcomes: list[_Outcome], reference: _Hypothesis, fitted: _Hypothesis, t2_scaling: bool
) -> dict[str, Any]:
    """For a soft loss off by a constant factor per case: got/expected next to what the fitted formula predicts."""
    if outcomes[0].prediction.kind != "soft" or not set(fitted.codes(t2_scaling)) <= _SCALING_CODES:
        return {}
    rows = {}
    for o in outcomes:
        expected, predicted = o.prediction.value(reference)[0], o.prediction.value(fitted)[0]
        key = (o.prediction.T, o.prediction.B, o.prediction.N)
        if expected != 0 and key not in rows and not math.isclose(predicted / expected, 1.0):
            rows[key] = {"T": key[0], "B": key[1], "N": key[2], "got/expected": o.value / expected,
                         "predicted": predicted / expected}  # fmt: skip
    return {"ratios": list(rows.values())[:5]} if rows else {}


def _diagnose(
    kind: str, outcomes: list[_Outcome], t2_scaling: bool
) -> tuple[list[Finding], str | None, dict[str, CaseResult]]:
    findings: list[Finding] = []
    hypotheses = _hypotheses(kind)
    references = [h for h in hypotheses if not h.codes(t2_scaling) and h.t2 == t2_scaling]

    def reference_for(convention: str) -> _Hypothesis:
        return next(h for h in references if h.convention == convention)

    # 1. Cases that produced nothing to compare.
    raised = [o for o in outcomes if o.error is not None]
    if raised:
        findings.append(
            Finding(
                "exception",
                _message("exception", f" ({len(raised)} of {len(outcomes)} cases)"),
                {"cases": [_case_brief(o, error=o.error) for o in raised[:5]]},
            )
        )
    not_scalar = [o for o in outcomes if o.not_scalar is not None]
    if not_scalar:
        findings.append(
            Finding(
                "not-scalar",
                _message("not-scalar"),
                {"cases": [_case_brief(o, shape=list(o.not_scalar)) for o in not_scalar[:5]]},
            )
        )
    evaluated = [o for o in outcomes if o.evaluation is not None]

    # 2. Non-finite results where kdcore's loss is finite (it is finite on every case of the battery).
    bad_value = [o for o in evaluated if not math.isfinite(o.value)]
    bad_grad = [o for o in evaluated if math.isfinite(o.value) and o.has_gradient and not o.gradient_finite()]
    non_finite = bad_value + bad_grad
    if non_finite:
        large_only = all(o.case.spec.regime in LARGE_LOGIT_REGIMES for o in non_finite)
        code = "numerically-unstable" if large_only else "non-finite"
        briefs = [
            _case_brief(
                o,
                regime=o.case.spec.regime,
                max_abs_logit=float(np.max(np.abs(o.case.student_logits))),
                got=o.value if o in bad_value else "finite value, non-finite gradient",
            )
            for o in non_finite[:5]
        ]
        findings.append(
            Finding(
                code,
                _message(code, f" ({len(non_finite)} of {len(evaluated)} cases)"),
                {"cases": briefs},
            )
        )
    finite = [o for o in evaluated if math.isfinite(o.value)]

    # 3. Fit the values: which hypotheses match every finite case?
    fits = _fit(finite, hypotheses)
    matching = [(h, worst) for h, worst, count in fits if count == len(finite)]
    chosen: _Hypothesis | None = None
    convention: str | None = None
    if finite and matching:

        def rank(item: tuple[_Hypothesis, float]) -> tuple:
            h, worst = item
            gradient_fits = all(
                not (o.has_gradient and o.gradient_finite()) or o.grad_error(h) <= 1.0 for o in finite
            )
            return (len(h.codes(t2_scaling)), not gradient_fits, worst)

        matching.sort(key=rank)
        chosen = matching[0][0]
        convention = chosen.convention if chosen.soft_form == "reference" else None
        codes = chosen.codes(t2_scaling)
        if codes:
            reference = reference_for(chosen.convention)
            reference_fits = sum(o.prediction.value_error(reference, o.value) <= 1.0 for o in finite)
            alternatives = [h.describe(kind) for h, _ in matching[1:4] if h.codes(t2_scaling) != codes]
            for code in codes:
                evidence = {
                    "fitted": chosen.describe(kind),
                    "expected": reference.describe(kind),
                    "fit": f"the fitted formula matches all {len(finite)} finite cases (worst at "
                    f"{matching[0][1]:.2g} of the tolerance); the expected one matches {reference_fits}",
                    **(
                        _ratio_evidence(finite, reference, chosen, t2_scaling)
                        if code in _SCALING_CODES
                        else {}
                    ),
                }
                if alternatives:
                    evidence["also_consistent_with"] = alternatives
                findings.append(Finding(code, _message(code), evidence))
    elif finite:
        findings.append(_value_mismatch(kind, finite, fits, references, t2_scaling))

    # 4. The gradient, against the fitted hypothesis (or the reference, if no hypothesis fits).
    target = chosen if chosen is not None else reference_for("kl")
    if chosen is not None:
        wrong = [o for o in finite if o.has_gradient and o.gradient_finite() and o.grad_error(target) > 1.0]
        if wrong:
            findings.append(
                _gradient_mismatch(kind, wrong, target, len([o for o in finite if o.has_gradient]))
            )

    # 5. The table: each case against the reference (the convention found, else the closer one).
    results: dict[str, CaseResult] = {}
    for o in outcomes:
        results[o.case.id] = _case_result(o, convention, references, o in non_finite)
    return findings, convention, results


def _value_mismatch(
    kind: str,
    finite: list[_Outcome],
    fits: list[tuple[_Hypothesis, float, int]],
    references: list[_Hypothesis],
    t2_scaling: bool,
) -> Finding:
    reference = max(
        references, key=lambda h: sum(o.prediction.value_error(h, o.value) <= 1.0 for o in finite)
    )
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
    closest = max(fits, key=lambda item: (item[2], -len(item[0].codes(t2_scaling))))
    evidence: dict[str, Any] = {
        "expected": reference.describe(kind),
        "failing_cases": f"{len(failing)} of {len(finite)}",
        "failing_by_regime": {key: f"{n} of {m}" for key, (n, m) in by_regime.items() if n},
        "worst": worst,
    }
    if closest[0].codes(t2_scaling):
        evidence["closest_catalogued_cause"] = (
            f"{', '.join(closest[0].codes(t2_scaling))}: {closest[0].describe(kind)} "
            f"(fits {closest[2]} of {len(finite)} cases, not all)"
        )
    hint = (" (" + "; ".join(hints) + ")") if hints else ""
    return Finding("value-mismatch", _message("value-mismatch", hint), evidence)


def _gradient_mismatch(kind: str, wrong: list[_Outcome], target: _Hypothesis, measured: int) -> Finding:
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
    detail = " (it is exactly zero: nothing of the loss reaches the student logits)" if zero else ""
    message = _message("gradient-mismatch", detail)
    evidence = {
        "value_fits": target.describe(kind),
        "failing_cases": f"{len(wrong)} of {measured}",
        "worst": rows,
    }
    return Finding("gradient-mismatch", message, evidence)


def _case_result(
    o: _Outcome,
    convention: str | None,
    references: list[_Hypothesis],
    non_finite: bool,
) -> CaseResult:
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
    if o.error is not None:
        return CaseResult(**base, status="exception", detail=o.error)
    if o.not_scalar is not None:
        return CaseResult(**base, status="not-scalar", detail=f"returned shape {o.not_scalar}")
    if convention is not None:
        reference = next(h for h in references if h.convention == convention)
    else:
        reference = min(references, key=lambda h: o.prediction.value_error(h, o.value))
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


# --------------------------------------------------------------------------------------------------------
# The public checks


def _function_name(fn: Callable) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return f"{module}:{name}" if module and module != "__main__" else name


_SIGNATURES = {
    "soft": ("student_logits", "teacher_logits", "T"),
    "distillation": ("student_logits", "teacher_logits", "labels", "T", "alpha"),
}


def _check_signature(fn: Callable, kind: str, role: str = "fn") -> None:
    """Raise TypeError unless ``fn`` accepts the kind's arguments positionally."""
    if not callable(fn):
        raise TypeError(f"{role} must be callable, got {type(fn).__name__}")
    expected = _SIGNATURES[kind]
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and C functions have none: let the battery find out
        return
    try:
        signature.bind(*expected)
    except TypeError as error:
        raise TypeError(
            f"{role} must accept {role}({', '.join(expected)}) for a {kind} loss; "
            f"{_function_name(fn)} has signature {signature} ({error})"
        ) from None


def _check(
    fn: Callable, kind: str, framework: str, grad_fn: Callable | None, t2_scaling: bool, name: str | None
) -> Report:
    _check_signature(fn, kind)
    if grad_fn is not None:
        if framework != "numpy":
            raise ValueError(f"grad_fn is only for framework='numpy' ({framework} has autograd)")
        _check_signature(grad_fn, kind, role="grad_fn")
    if not isinstance(t2_scaling, bool):
        raise TypeError(f"t2_scaling must be True or False, got t2_scaling={t2_scaling!r}")
    adapter = get_adapter(framework)
    recorder = _Recorder()
    cases = [case for case in _battery() if adapter.supports(case.dtype)]
    outcomes = [_run_case(fn, grad_fn, kind, adapter, case, recorder) for case in cases]
    findings, convention, results = _diagnose(kind, outcomes, t2_scaling)
    notes = _notes(fn, grad_fn, kind, adapter, recorder, outcomes, len(cases) < len(_battery()))
    weight = "T²·" if t2_scaling else ""
    soft = f"{weight}KL(teacher ‖ student) or {weight}soft cross-entropy, mean over samples (batchmean)"
    reference = soft if kind == "soft" else f"α·CE(labels, z) at T = 1 + (1 − α)·[{soft}]"
    return Report(
        kind=kind,
        framework=framework,
        function=name or _function_name(fn),
        ok=not findings,
        reference=reference,
        convention=convention,
        t2_scaling=t2_scaling,
        findings=tuple(findings),
        cases=tuple(results[case.id] for case in cases),
        notes=tuple(notes),
    )


def _notes(
    fn: Callable,
    grad_fn: Callable | None,
    kind: str,
    adapter: Adapter,
    recorder: _Recorder,
    outcomes: list[_Outcome],
    skipped_float64: bool,
) -> list[Finding]:
    notes = []
    probe = _run_case(fn, grad_fn, kind, adapter, _infinite_mask_probe(), recorder)
    if probe.evaluation is not None and (not math.isfinite(probe.value) or not probe.gradient_finite()):
        notes.append(
            Finding(
                "nan-with-infinite-mask",
                "with classes masked by -inf in both student and teacher, the loss (or its gradient) is not "
                "finite, although masked classes contribute nothing (0·log 0 = 0); the battery masks with "
                f"{MASK_LOGIT:g} instead. Where your code masks with -inf, zero the masked terms with "
                "where(mask, 0, term) before summing",
                {"got": repr(probe.value)},  # text: a NaN would make reports unequal to themselves
            )
        )
    if recorder.messages:
        notes.append(
            Finding("warnings", "the loss emitted warnings", {"messages": list(recorder.messages)[:5]})
        )
    changed = sorted(
        {
            f"{o.case.dtype.name} → {o.evaluation.value_dtype}"
            for o in outcomes
            if o.evaluation is not None and o.evaluation.value_dtype != o.case.dtype.name
        }
    )
    if changed:
        notes.append(
            Finding("dtype-changed", "the loss returned another dtype than its inputs'", {"dtypes": changed})
        )
    if skipped_float64:
        notes.append(
            Finding(
                "float64-skipped", f"{adapter.name} cannot compute in float64 here: float64 cases skipped"
            )
        )
    if not adapter.has_autograd and grad_fn is None:
        notes.append(
            Finding(
                "finite-differences",
                "no grad_fn given: the gradient was checked by finite differences along "
                f"{FD_DIRECTIONS} random directions, on the float64 cases of the regimes "
                f"{', '.join(sorted(FINITE_DIFFERENCE_REGIMES))}",
            )
        )
    return notes


def check_soft_loss(
    fn: Callable,
    framework: str = "torch",
    *,
    grad_fn: Callable | None = None,
    t2_scaling: bool = True,
    name: str | None = None,
) -> Report:
    r"""Check a soft distillation loss ``fn(student_logits, teacher_logits, T) -> scalar`` against kdcore.

    Parameters
    ----------
    fn : callable
        The loss, in the framework's arrays: student and teacher logits of shape (B, N) (class axis last),
        the temperature as a Python float. It must return one number.
    framework : {"torch", "jax", "numpy"}, default "torch"
        What ``fn`` is written in. The framework is imported now; kdcore does not depend on it.
    grad_fn : callable, optional
        NumPy only: ``grad_fn(student_logits, teacher_logits, T)``, the loss's gradient w.r.t. the student
        logits, shape (B, N). Without it, the gradient is checked by finite differences (float64 cases of
        moderate logits). PyTorch and JAX gradients come from their autograd.
    t2_scaling : bool, default True
        Expect the :math:`T^2` factor of Hinton et al.; ``False`` for code that applies it elsewhere.
    name : str, optional
        How the report names ``fn`` (default: its module and qualified name).

    Returns
    -------
    Report
        ``ok`` when the value matches :math:`T^2\,\mathrm{KL}(q\,\|\,p)` or :math:`T^2` times the soft
        cross-entropy (mean over samples) and the gradient matches :math:`T\,(p - q)/B` on every case,
        within the per-dtype tolerances; otherwise the findings say why.

    Raises
    ------
    TypeError
        If ``fn`` (or ``grad_fn``) does not accept three positional arguments.
    ValueError
        For an unknown framework, or ``grad_fn`` with a framework that has autograd.
    kdcore.adapters.FrameworkNotInstalledError
        When the framework is not installed.

    Notes
    -----
    The expected value and gradient, with :math:`B` samples, are

    .. math::

        L = \frac{T^2}{B}\sum_b \mathrm{KL}(q_b\,\|\,p_b) \quad\text{or}\quad
        \frac{T^2}{B}\sum_b \Bigl(-\sum_i q_{bi}\log p_{bi}\Bigr), \qquad
        \frac{\partial L}{\partial z_b} = \frac{T\,(p_b - q_b)}{B}.

    The battery (:data:`BATTERY`) runs 12 inputs in float32 and float64; ``docs/verify.md`` lists them,
    the tolerances and every finding's code.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import kl_divergence, kl_divergence_grad
    >>> from kdcore.verify import check_soft_loss
    >>> report = check_soft_loss(
    ...     lambda z, v, T: T**2 * kl_divergence(z, v, T),
    ...     framework="numpy",
    ...     grad_fn=lambda z, v, T: T**2 * kl_divergence_grad(z, v, T),
    ...     name="kdcore's own")
    >>> report.ok, report.convention
    (True, 'kl')
    """
    return _check(fn, "soft", framework, grad_fn, t2_scaling, name)


def check_distillation_loss(
    fn: Callable,
    framework: str = "torch",
    *,
    grad_fn: Callable | None = None,
    t2_scaling: bool = True,
    name: str | None = None,
) -> Report:
    r"""Check a full distillation loss ``fn(student_logits, teacher_logits, labels, T, alpha)`` against kdcore.

    Parameters
    ----------
    fn : callable
        The loss: student and teacher logits of shape (B, N), integer labels of shape (B,) (int64), the
        temperature and the hard-loss weight :math:`\alpha` as Python floats. It must return one number.
    framework : {"torch", "jax", "numpy"}, default "torch"
        What ``fn`` is written in.
    grad_fn : callable, optional
        NumPy only: ``grad_fn(student_logits, teacher_logits, labels, T, alpha)``, the gradient w.r.t. the
        student logits.
    t2_scaling : bool, default True
        Expect the soft term to be multiplied by :math:`T^2`.
    name : str, optional
        How the report names ``fn``.

    Returns
    -------
    Report
        ``ok`` when the loss matches :func:`kdcore.distillation_loss` (soft term in either convention) in
        value and gradient on every case of the battery.

    Raises
    ------
    TypeError, ValueError, kdcore.adapters.FrameworkNotInstalledError
        As :func:`check_soft_loss`.

    Notes
    -----
    .. math::

        L = \frac1B \sum_b \Bigl[\alpha\,\mathrm{CE}(y_b, z_b) + (1 - \alpha)\,T^2\,L_\text{soft}(z_b, v_b, T)\Bigr],
        \qquad
        \frac{\partial L}{\partial z_b} = \frac{\alpha\,(\operatorname{softmax}(z_b) - e_{y_b})
            + (1 - \alpha)\,T\,(p_b - q_b)}{B}.

    The battery uses :math:`\alpha` from 0 to 1 (each case has its own, see :data:`BATTERY`).

    Examples
    --------
    >>> from kdcore import distillation_loss, distillation_loss_grad
    >>> from kdcore.verify import check_distillation_loss
    >>> report = check_distillation_loss(
    ...     lambda z, v, y, T, a: distillation_loss(z, v, y, T, 1 - a),  # α on the wrong term
    ...     framework="numpy",
    ...     grad_fn=lambda z, v, y, T, a: distillation_loss_grad(z, v, y, T, 1 - a))
    >>> report.codes
    ('alpha-swapped',)
    """
    return _check(fn, "distillation", framework, grad_fn, t2_scaling, name)


# --------------------------------------------------------------------------------------------------------
# The command line: kdcore check TARGET --framework F --kind K [--json]


class _UsageError(Exception):
    """A problem with what the user asked for (exit code 2), as opposed to a problem with their loss."""


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    """Put ``directory`` first on sys.path for the import (as ``python -m`` does with the cwd)."""
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)


def _import_target(target: str) -> tuple[Callable, str]:
    """Resolve ``module:function`` or ``path/to/file.py:function`` to the function and a display name."""
    if not isinstance(target, str) or ":" not in target:
        raise _UsageError(
            f"target must be MODULE:FUNCTION or path/to/file.py:FUNCTION, got {target!r} (no ':' in it)"
        )
    location, _, attribute = target.rpartition(":")  # rpartition: a Windows path has a ':' of its own
    if not location or not attribute:
        raise _UsageError(f"target must be MODULE:FUNCTION or path/to/file.py:FUNCTION, got {target!r}")
    is_file = location.endswith(".py") or os.sep in location or "/" in location
    try:
        if is_file:
            path = Path(location)
            if not path.is_file():
                raise _UsageError(f"file not found: {location}")
            module_name = f"_kdcore_check_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise _UsageError(f"cannot import {location} as a Python module")
            module = importlib.util.module_from_spec(spec)
            with _on_sys_path(str(path.resolve().parent)):
                spec.loader.exec_module(module)
        else:
            with _on_sys_path(os.getcwd()):
                try:
                    module = importlib.import_module(location)
                except ModuleNotFoundError as error:
                    if error.name is not None and location.startswith(error.name):
                        raise _UsageError(f"module not found: {location} ({error})") from None
                    raise
    except _UsageError:
        raise
    except Exception as error:  # the module itself failed: a syntax error, a missing dependency…
        raise _UsageError(f"importing {location} failed: {_describe_exception(error)}") from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            available = sorted(
                name for name, item in vars(module).items() if callable(item) and not name.startswith("_")
            )
            raise _UsageError(
                f"function not found: {location} has no attribute {attribute!r}"
                + (f" (callables in it: {', '.join(available)})" if available else "")
            )
        value = getattr(value, part)
    if not callable(value):
        raise _UsageError(f"{target} is not callable (it is a {type(value).__name__})")
    return value, target


def run_check(
    target: str, framework: str, kind: str, as_json: bool = False, stream: IO[str] | None = None
) -> int:
    """Run ``kdcore check``: import ``target``, check it, print the report, and return the exit code.

    Parameters
    ----------
    target : str
        ``package.module:function`` (importable from the current directory or the environment) or
        ``path/to/file.py:function``; ``function`` may be dotted (``module:Class.method``).
    framework : {"torch", "jax", "numpy"}
        What the function is written in.
    kind : {"soft", "distillation"}
        ``soft``: ``fn(student_logits, teacher_logits, T)``; ``distillation``:
        ``fn(student_logits, teacher_logits, labels, T, alpha)``.
    as_json : bool, default False
        Print :meth:`Report.to_json` instead of the readable report.
    stream : file-like, optional
        Where to write; default ``sys.stdout``. Usage errors are written there too, prefixed ``error:``.

    Returns
    -------
    int
        0 when the loss is correct, 1 when the report has findings, 2 on a usage error (module, file or
        function not found, a wrong signature, an unknown or uninstalled framework, an unknown kind).

    Examples
    --------
    >>> from kdcore.verify import run_check
    >>> run_check("kdcore.divergences:kl_divergence", framework="tensorflow", kind="soft")
    error: framework must be one of 'torch', 'jax', 'numpy', got framework='tensorflow'
    2
    """
    stream = sys.stdout if stream is None else stream
    try:
        if kind not in KINDS:
            raise _UsageError(f"kind must be one of {', '.join(map(repr, KINDS))}, got kind={kind!r}")
        if framework not in FRAMEWORKS:
            raise _UsageError(
                f"framework must be one of {', '.join(map(repr, FRAMEWORKS))}, got framework={framework!r}"
            )
        try:
            get_adapter(framework)  # before the import, so that a missing framework is named as such
        except FrameworkNotInstalledError as error:
            raise _UsageError(str(error)) from None
        fn, name = _import_target(target)
        try:
            _check_signature(fn, kind)
        except TypeError as error:
            raise _UsageError(str(error)) from None
        check = check_soft_loss if kind == "soft" else check_distillation_loss
        report = check(fn, framework=framework, name=name)
    except _UsageError as error:
        if as_json:
            print(json.dumps({"schema": "kdcore-check-error", "error": str(error)}), file=stream)
        else:
            print(f"error: {error}", file=stream)
        return 2
    print(report.to_json() if as_json else str(report), file=stream)
    return 0 if report.ok else 1
