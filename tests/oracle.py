r"""A high-precision mpmath oracle for kdcore's math, written independently of kdcore (it never imports it).

kdcore promises float64 results within 1e-12 relative of this oracle in every regime, so the oracle has to
be right where float64 is not: logits up to ±1e300, temperatures from 1e-3 to 1e9, a student that equals
its teacher to the last bit, masked (``-inf``) classes.

Notation: student logits :math:`z`, teacher logits :math:`v`, temperature :math:`T`, tempered logits
:math:`a = z/T` and :math:`b = v/T`, student probabilities :math:`p = \operatorname{softmax}(a)`, teacher
probabilities :math:`q = \operatorname{softmax}(b)`, log-ratios :math:`r_j = \log q_j - \log p_j`.
The class axis is last; every leading axis is a sample axis. Nothing is reduced over samples.

Two layers
----------
``mp_*`` functions
    compute one sample (a row: a sequence of ``mpmath.mpf``) at mpmath's *current* working precision and
    return ``mpf`` values (a list for vectors, a list of lists for matrices). They are what the self-test
    differentiates with ``mpmath.diff``.
float64 functions (``softmax``, ``kl_divergence``, …)
    take float64 arrays, convert every input *exactly* to ``mpf`` (a double is a dyadic rational, which
    ``mpf`` holds exactly), evaluate the ``mp_*`` function of each row with adaptive precision, and round
    each result correctly to float64 (:func:`to_float64`). They never change mpmath's global precision
    (every evaluation runs inside ``mpmath.workprec``).

Adaptive precision
------------------
Fifty digits are not always enough. Three things can go wrong, and each has its own remedy.

1. *Absorption of input bits.* ``1 - 1e-150`` rounds to ``1`` at 50 digits, so two logit rows that differ
   by 1e-150 would look equal and give KL = 0 where the truth is ~1e-301, a normal float64; and
   ``exp(-1e-156)`` rounds to 1 below ~520 bits, so a tempered gap of 1e-156 (logits 1e-26 apart at
   T = 1e130) would vanish. So the starting precision, in bits, is

   ``(hi − lo) + max(0, ⌈log2(T / smallest gap)⌉) + bit_length(4·count) + 170``

   with ``hi`` the top bit and ``lo`` the lowest set bit over all finite non-zero logits of the sample,
   and the gaps ``max x − x_i`` > 0 within each row: at that precision every sum or difference of a few
   input logits (``z_i − max z``, ``(v_j − z_j) − (v_k − z_k)``) is exact, and every tempered gap keeps
   170 bits (≈ 51 digits) next to 1. Ordinary logits start near 235 bits (≈ 70 digits);
   ``[1e300, 1e-300]`` near 2150.
2. *Cancellation after rounding.* When student ≈ teacher, ``log q − log p`` cancels, and KL (a second-order
   quantity, ~1e-25 for logits equal to 1e-12) cancels again. However many digits the start has, some
   inputs need more. So each sample is evaluated twice, at ``P`` and at ``P + max(P/2, 128)`` bits; if
   every component of the two results agrees to 100 bits (≈ 30 digits, relative) — or differs by less
   than 2^-1180, far below float64's smallest subnormal 2^-1074 — the higher-precision result is
   returned; otherwise the precision is raised again (up to 40 000 bits, then ``ArithmeticError``).
   Rounding errors at different precisions are unrelated, so agreement to 30 digits means ~30 correct
   digits, and the returned value (computed with ≥ 128 more bits) has ~70.
3. *Absorption inside the computation.* A quantity near 1 (a probability 1 − 1e-166, a normaliser
   1 + e^-573) can round the *same way at every precision*; if a later difference then cancels it, the
   result is exactly 0 at both precisions, and the check sees agreement. No precision test catches that,
   so the formulas never let such a value meet a cancellation:

   * the normaliser is ``log1p`` of the sum of the non-maximal terms;
   * the two rows are compared class by class, never through the difference of their log-normalisers:
     with S the classes finite in both rows and k the one in S with the largest teacher logit,
     :math:`g_j = r_j - r_k = ((v_j - v_k) - (z_j - z_k))/T` (input differences exact) and
     :math:`r_k = \operatorname{log1p}\bigl(\sum_{j \in S} q_j(e^{-g_j} - 1) - q_\text{out}\bigr)
     - \operatorname{log1p}(-p_\text{out})`, a sum whose terms vanish wherever the rows agree
     (:math:`p_\text{out}`, :math:`q_\text{out}`: mass outside S);
   * sums weighted by the teacher (KL, its teacher derivative) are centred on class k, whose weight
     drops out: :math:`\mathrm{KL} = r_k + \sum_{j \ne k} q_j g_j`;
   * :math:`p_j - q_j = q_j \operatorname{expm1}(-r_j)` when :math:`|r_j| \le 1`;
     :math:`1 - p_i = -\operatorname{expm1}(\log p_i)`; the temperature derivative multiplies by logits
     shifted by their maximum, which is 0 on the near-1 classes.

The self-test (tests/test_oracle.py) pins each case where an earlier, more direct formula failed.

Conventions
-----------
* A class whose logit is ``-inf`` is masked. Masked in both rows: it contributes nothing
  (:math:`0 \log 0 = 0`). Masked by the teacher only: :math:`q_j = 0`, it contributes nothing to the sums,
  but the student's normaliser includes it (:math:`\partial/\partial z_j = p_j/T`). Masked by the student
  only (the teacher gives it mass): KL and soft cross-entropy are ``+inf``.
* Where a soft loss is ``+inf``, its derivatives w.r.t. the teacher and the temperature are NaN (the
  derivative of a function that is ``+inf`` on a neighbourhood is undefined), while the student gradient
  :math:`(p - q)/T` (and the Hessian) keep their closed form, with :math:`p_j = 0` on masked classes: that
  is their limit as the masked logit tends to ``-inf``. The same holds for the hard cross-entropy of a
  masked label: ``+inf``, gradient ``softmax − onehot``.
* A row with a NaN or ``+inf`` logit, or with every class masked, has no softmax: every result of that
  sample is NaN (other samples are unaffected).
* In the distillation loss a term whose weight is exactly 0 is absent: ``alpha=1`` is the plain
  cross-entropy (the teacher row is not looked at) and ``alpha=0`` the plain soft loss.

Derivatives
-----------
With :math:`L(a, b)` and :math:`a = z/T`, :math:`b = v/T`: :math:`\partial L/\partial z = (\partial L/\partial a)/T`,
:math:`\partial L/\partial v = (\partial L/\partial b)/T` and

.. math::

    \frac{\partial L}{\partial T} = -\frac1T \Bigl(\sum_j \frac{\partial L}{\partial a_j} a_j
                                               + \sum_j \frac{\partial L}{\partial b_j} b_j\Bigr).

Both losses are invariant to adding a constant to :math:`a` or to :math:`b`, so
:math:`\sum_j \partial L/\partial a_j = \sum_j \partial L/\partial b_j = 0` and :math:`a_j, b_j` may be replaced by
:math:`a_j - \max a` and :math:`b_j - \max b` (finite on every class that carries a term), or by
:math:`\log p_j, \log q_j` as below. With
:math:`\partial \mathrm{KL}/\partial a = \partial \mathrm{CE}/\partial a = p - q`,
:math:`\partial \mathrm{KL}/\partial b_j = q_j (r_j - \mathrm{KL})` and
:math:`\partial \mathrm{CE}/\partial b_j = -q_j (\log p_j + \mathrm{CE})`:

.. math::

    \frac{\partial \mathrm{KL}}{\partial T} = -\frac1T \Bigl(\sum_j (p_j - q_j)\log p_j
        + \sum_j q_j (r_j - \mathrm{KL}) \log q_j\Bigr), \qquad
    \frac{\partial \mathrm{CE}}{\partial T} = -\frac1T \Bigl(\sum_j (p_j - q_j)\log p_j
        - \sum_j q_j (\log p_j + \mathrm{CE}) \log q_j\Bigr).

Logit matching: with :math:`C = I - \tfrac1N \mathbf 1 \mathbf 1^\top` (symmetric, idempotent) and
:math:`d = C(z - v)` (centred) or :math:`d = z - v`, :math:`L = \tfrac1N \lVert d\rVert^2` has gradient
:math:`\tfrac2N C^\top d = \tfrac2N (d - \bar d)` when centred — which is :math:`\tfrac2N d`, since
:math:`\bar d = 0` — and :math:`\tfrac2N d` when not centred (not :math:`\tfrac2N (d - \bar d)`: there
:math:`\bar d \ne 0` in general).

References
----------
G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network", 2015.
https://doi.org/10.48550/arXiv.1503.02531

F. Johansson et al., mpmath: a Python library for arbitrary-precision floating-point arithmetic.
https://mpmath.org

Examples
--------
A student that differs from a uniform teacher by :math:`\delta = 10^{-26}` in one logit: KL is
:math:`\log\cosh(\delta/2) \approx \delta^2/8`, which 50 fixed digits get wrong (its size is below their
rounding error); the adaptive oracle gets it right.

>>> kl_divergence(np.array([0.0, 1e-26]), np.array([0.0, 0.0]), T=1.0)
array(1.25e-53)
>>> softmax(np.array([0.0, -np.inf, 0.0]))
array([0.5, 0. , 0.5])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "distillation_loss",
    "distillation_loss_grad",
    "kl_divergence",
    "kl_divergence_grad",
    "kl_divergence_hessian",
    "log_softmax",
    "logit_mse",
    "logit_mse_grad",
    "logsumexp",
    "mp_cross_entropy",
    "mp_cross_entropy_grad",
    "mp_distillation_loss",
    "mp_distillation_loss_grad",
    "mp_kl_divergence",
    "mp_kl_divergence_grad",
    "mp_kl_divergence_hessian",
    "mp_log_softmax",
    "mp_logit_mse",
    "mp_logit_mse_grad",
    "mp_logsumexp",
    "mp_soft_cross_entropy",
    "mp_soft_cross_entropy_grad",
    "mp_softmax",
    "relative_error",
    "soft_cross_entropy",
    "soft_cross_entropy_grad",
    "softmax",
    "to_float64",
]

WRT = ("student", "teacher", "temperature")
SOFT_LOSSES = ("cross_entropy", "kl")

BASE_BITS = 170  # ≈ 51 decimal digits on top of what the inputs' dynamic range needs
AGREEMENT_BITS = 100  # two precisions must agree to ≈ 30 digits
MIN_STEP_BITS = 128  # the returned value has ≥ 128 bits (≈ 38 digits) more than the checked one
MAX_BITS = 40_000
# Differences below 2^-1180 cannot move a float64 (smallest subnormal 2^-1074): a component that is 0 in
# exact arithmetic, computed as rounding noise, agrees once the noise is this small.
NEGLIGIBLE_EXPONENT = -1180

Mpf = Any  # mpmath.mpf; mpmath ships no type stubs
MpValue = Any  # an mpf, a list of mpf, or a list of lists of mpf


# --------------------------------------------------------------------------------------------------
# Exact conversion in, correct rounding out
# --------------------------------------------------------------------------------------------------


def _round_dyadic(negative: bool, mantissa: int, exponent: int) -> float:
    """The float64 nearest to ±mantissa·2^exponent (mantissa > 0), ties to even: one rounding."""
    sign = -1.0 if negative else 1.0
    bits = mantissa.bit_length()
    top = exponent + bits  # 2^(top-1) ≤ |value| < 2^top
    if top > 1024:
        return sign * math.inf
    if top <= -1075:  # below half the smallest subnormal 2^-1074: rounds to zero
        return sign * 0.0
    try:
        if top >= -1021 and bits <= 1000:
            # float(int) rounds to nearest, ties to even; scaling a normal result by 2^exponent is exact.
            return sign * math.ldexp(float(mantissa), exponent)
        if exponent >= 0:
            return sign * float(mantissa << exponent)
        return sign * (mantissa / (1 << -exponent))  # int / int is correctly rounded, subnormals too
    except OverflowError:  # rounded up to 2^1024
        return sign * math.inf


def to_float64(value: Mpf) -> float:
    """Round an mpmath number to the nearest float64 (ties to even), subnormals and overflow included.

    ``float(mpf)`` rounds to 53 bits first and then lets ``math.ldexp`` round again in the subnormal
    range; this rounds once.
    """
    if isinstance(value, float):
        return value
    if not isinstance(value, mpmath.mpf):
        value = mpmath.mpf(value)
    # The raw (sign, mantissa, exponent, bitcount) tuple: the public accessors cost ~10x more, and a
    # Hessian of 1000 classes needs a million conversions.
    sign_bit, mantissa, exponent, _ = value._mpf_
    if mantissa == 0:  # zero, ±inf or NaN
        return 0.0 if value._mpf_ == mpmath.libmp.fzero else float(value)
    return _round_dyadic(bool(sign_bit), mantissa, exponent)


def _product_to_float64(x: Mpf, y: Mpf) -> float:
    """x·y rounded once to float64, from the exact product of the two mantissas."""
    x_sign, x_mantissa, x_exponent, _ = x._mpf_
    y_sign, y_mantissa, y_exponent, _ = y._mpf_
    if x_mantissa == 0 or y_mantissa == 0:  # zeros and non-finite values
        return to_float64(x * y)
    return _round_dyadic(bool(x_sign ^ y_sign), x_mantissa * y_mantissa, x_exponent + y_exponent)


def _to_floats(value: MpValue) -> float | list:
    if isinstance(value, list):
        return [_to_floats(item) for item in value]
    return to_float64(value)


def _flatten(value: MpValue) -> Iterable[Mpf]:
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


# --------------------------------------------------------------------------------------------------
# Adaptive precision
# --------------------------------------------------------------------------------------------------


def _starting_precision(rows: Sequence[Sequence[float]], temperature: float | None) -> int:
    """Bits for point 1 of the module docstring: sums of logits are exact, tempered gaps survive next to 1.

    ``rows`` are one sample's logit rows, ``temperature`` the largest T they are divided by (None when they
    are not exponentiated).
    """
    highest = lowest = None
    for x in (x for row in rows for x in row):
        if x == 0.0 or not math.isfinite(x):
            continue
        fraction, exponent = math.frexp(x)  # |x| = |fraction|·2^exponent, 1/2 ≤ |fraction| < 1
        mantissa = abs(int(fraction * 2.0**53))  # an integer: x has at most 53 significant bits
        low = exponent - 53 + (mantissa & -mantissa).bit_length() - 1  # the lowest set bit of x
        highest = exponent if highest is None else max(highest, exponent)
        lowest = low if lowest is None else min(lowest, low)
    span = 0 if highest is None else highest - lowest
    # exp((x − max x)/T) ≈ 1 − gap/T: at fewer than log2(T/gap) bits it rounds to 1 and the gap is gone
    # (at every precision alike, so no later check could notice). Keep BASE_BITS of it.
    near_one = 0
    if temperature is not None:
        log2_temperature = math.log2(temperature)
        for row in rows:
            finite = [x for x in row if math.isfinite(x)]
            top = max(finite, default=0.0)
            for x in finite:
                gap = top - x  # a float64 estimate is enough; x ≠ top gives gap > 0 (gradual underflow)
                if 0 < gap < math.inf:
                    near_one = max(near_one, math.ceil(log2_temperature - math.log2(gap)))
    count = sum(len(row) for row in rows)
    return span + near_one + (4 * max(count, 1)).bit_length() + BASE_BITS


def _agree(low: MpValue, high: MpValue) -> bool:
    """Do two evaluations agree to AGREEMENT_BITS, component by component? (Call at the high precision.)"""
    negligible = mpmath.ldexp(1, NEGLIGIBLE_EXPONENT)
    for a, b in zip(_flatten(low), _flatten(high), strict=True):
        if mpmath.isnan(a) or mpmath.isnan(b):
            if not (mpmath.isnan(a) and mpmath.isnan(b)):
                return False
        elif mpmath.isinf(a) or mpmath.isinf(b):
            if a != b:
                return False
        else:
            difference = abs(b - a)
            if difference > negligible and difference > mpmath.ldexp(abs(b), -AGREEMENT_BITS):
                return False
    return True


def _converged(evaluate: Callable[[], MpValue], precision: int) -> tuple[MpValue, int]:
    """``evaluate()`` at increasing precision until two successive results agree; (result, its precision)."""
    with mpmath.workprec(precision):
        low = evaluate()
    while True:
        higher = precision + max(precision // 2, MIN_STEP_BITS)
        if higher > MAX_BITS:
            raise ArithmeticError(f"oracle: no agreement between {precision} and {higher} bits")
        with mpmath.workprec(higher):
            high = evaluate()
            if _agree(low, high):
                return high, higher
        low, precision = high, higher


# --------------------------------------------------------------------------------------------------
# One row at the working precision: softmax family
# --------------------------------------------------------------------------------------------------


def _has_softmax(logits: Sequence[Mpf]) -> bool:
    """A row has a softmax unless it holds NaN or +inf, or masks every class."""
    if any(mpmath.isnan(x) or x == mpmath.inf for x in logits):
        return False
    return any(mpmath.isfinite(x) for x in logits)


@dataclass(frozen=True)
class _Tempered:
    """The tempered log-softmax of one row. Masked classes hold ``None``, so no ``inf − inf`` is formed."""

    top: Mpf  # the largest logit: an input value, exact
    top_index: int
    scaled: list  # (x_i − top)/T ≤ 0, exactly 0 at top_index
    log_norm: Mpf  # log Σ_i exp(scaled_i) ≥ 0
    log_probs: list  # scaled_i − log_norm
    probs: list  # exp(log_probs_i); 0 (not None) at masked classes


def _tempered(logits: Sequence[Mpf], T: Mpf) -> _Tempered | None:
    if not _has_softmax(logits):
        return None
    finite = [i for i, x in enumerate(logits) if mpmath.isfinite(x)]
    top_index = max(finite, key=lambda i: logits[i])
    top = logits[top_index]
    scaled: list = [None] * len(logits)
    for i in finite:
        scaled[i] = (logits[i] - top) / T  # the difference is exact at the starting precision
    powers = {i: mpmath.exp(scaled[i]) for i in finite if i != top_index}
    # The top term is exactly 1, so the normaliser is 1 + rest: log1p keeps a rest that 1 + rest would lose.
    rest = mpmath.fsum(powers.values())
    log_norm = mpmath.log1p(rest)
    norm = 1 + rest
    log_probs = [None if s is None else s - log_norm for s in scaled]
    probs = [mpmath.mpf(0)] * len(logits)
    probs[top_index] = 1 / norm
    for i, power in powers.items():
        probs[i] = power / norm
    return _Tempered(top, top_index, scaled, log_norm, log_probs, probs)


def _nans(count: int) -> list:
    return [mpmath.nan] * count


def _log_probs_or_minus_inf(tempered: _Tempered) -> list:
    return [mpmath.ninf if lp is None else lp for lp in tempered.log_probs]


def mp_log_softmax(logits: Sequence[Mpf], T: Mpf = 1) -> list:
    r"""log softmax(logits/T) of one row: :math:`(x_i - \max x)/T - \log \sum_j e^{(x_j - \max x)/T}`."""
    tempered = _tempered(logits, T)
    return _nans(len(logits)) if tempered is None else _log_probs_or_minus_inf(tempered)


def mp_softmax(logits: Sequence[Mpf], T: Mpf = 1) -> list:
    """softmax(logits/T) of one row; 0 at masked classes."""
    tempered = _tempered(logits, T)
    return _nans(len(logits)) if tempered is None else list(tempered.probs)


def mp_logsumexp(logits: Sequence[Mpf], T: Mpf = 1) -> Mpf:
    r""":math:`\log \sum_i e^{x_i/T} = \max x / T + \log \sum_i e^{(x_i - \max x)/T}` of one row."""
    tempered = _tempered(logits, T)
    return mpmath.nan if tempered is None else tempered.top / T + tempered.log_norm


# --------------------------------------------------------------------------------------------------
# One row at the working precision: KL(teacher ‖ student) and soft cross-entropy, with derivatives
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    """A student row and a teacher row, compared class by class.

    ``both`` is S, the classes finite in both rows, and ``reference`` the class k in S with the largest
    teacher logit. Log-ratios are built from the exact per-class gaps
    g_j = r_j − r_k = ((v_j − v_k) − (z_j − z_k))/T and one scalar r_k, never as a difference of the two
    log-normalisers (module docstring, Adaptive precision).
    """

    student: _Tempered
    teacher: _Tempered
    both: list  # S
    reference: int | None  # k, None when S is empty
    gaps: list  # g_j on S, None elsewhere; g_k = 0
    log_ratios: list  # r_j = log q_j − log p_j = r_k + g_j on S, None elsewhere
    infinite: bool  # the teacher gives mass to a class the student masks: KL = CE = +inf
    T: Mpf


def _reference_log_ratio(
    student: _Tempered, teacher: _Tempered, both: list, k: int, gaps: list, student_logits, T
) -> Mpf:
    r"""r_k from :math:`e^{r_k}(1 - p_\text{out}) = \sum_{j \in S} q_j e^{-g_j}`, without absorption.

    Summing p_j = q_j e^{−r_k − g_j} over S gives that identity, with p_out the student's mass outside S
    (on classes the teacher masks) and q_out the teacher's (on classes the student masks; 0 unless the
    loss is infinite). So r_k = log1p(x) − log1p(−p_out) with x = Σ_S q_j (e^{−g_j} − 1) − q_out: every
    term of x is a per-class difference, exactly 0 where the rows agree, so a tiny class that makes the
    rows differ is not rounded away inside an O(1) normaliser. Near −1 (x or −p_out below −1/2) the
    logarithms are taken of the positive sums themselves, Σ_S q_j e^{−g_j} and Σ_S p_j, instead.
    """
    teacher_log_prob_k = teacher.log_probs[k]
    z_k = student_logits[k]

    def weighted_power(j):  # q_j e^{−g_j} = q_k e^{(z_j − z_k)/T}, from arguments that do not cancel
        return mpmath.exp(teacher_log_prob_k + (student_logits[j] - z_k) / T)

    terms = []
    for j in both:
        if j == k:
            continue
        if abs(gaps[j]) <= 1:
            terms.append(teacher.probs[j] * mpmath.expm1(-gaps[j]))
        else:
            terms.append(weighted_power(j) - teacher.probs[j])  # a factor ≥ e apart: no cancellation
    classes, in_both = range(len(gaps)), set(both)
    terms += [-teacher.probs[j] for j in classes if teacher.log_probs[j] is not None and j not in in_both]
    excess = mpmath.fsum(terms)
    if excess >= -0.5:
        log_teacher_side = mpmath.log1p(excess)
    else:
        log_teacher_side = mpmath.log(mpmath.fsum(weighted_power(j) for j in both))
    student_outside = mpmath.fsum(
        student.probs[j] for j in classes if student.log_probs[j] is not None and j not in in_both
    )
    if student_outside <= 0.5:
        log_student_side = mpmath.log1p(-student_outside)
    else:
        log_student_side = mpmath.log(mpmath.fsum(student.probs[j] for j in both))
    return log_teacher_side - log_student_side


def _pair(student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf) -> _Pair | None:
    if len(student_logits) != len(teacher_logits):
        raise ValueError("student and teacher rows must have the same number of classes")
    student = _tempered(student_logits, T)
    teacher = _tempered(teacher_logits, T)
    if student is None or teacher is None:
        return None
    n_classes = len(student_logits)
    both = [
        j for j in range(n_classes) if student.log_probs[j] is not None and teacher.log_probs[j] is not None
    ]
    infinite = any(
        teacher.log_probs[j] is not None and student.log_probs[j] is None for j in range(n_classes)
    )
    gaps: list = [None] * n_classes
    log_ratios: list = [None] * n_classes
    if not both:
        return _Pair(student, teacher, both, None, gaps, log_ratios, infinite, T)
    k = max(both, key=lambda j: teacher_logits[j])
    v_k, z_k = teacher_logits[k], student_logits[k]
    for j in both:
        # the four-logit sum is exact (fsum adds exactly, then rounds once): g_j stays accurate when the
        # logits are huge and nearly equal
        gaps[j] = mpmath.fsum([teacher_logits[j], -v_k, -student_logits[j], z_k]) / T
    log_ratio_k = _reference_log_ratio(student, teacher, both, k, gaps, student_logits, T)
    for j in both:
        log_ratios[j] = log_ratio_k + gaps[j]
    return _Pair(student, teacher, both, k, gaps, log_ratios, infinite, T)


def _prob_differences(pair: _Pair) -> list:
    """p_j − q_j for every class, without forming 1 − 1 when both are near 1."""
    differences = []
    for p, q, log_p, log_q, r in zip(
        pair.student.probs,
        pair.teacher.probs,
        pair.student.log_probs,
        pair.teacher.log_probs,
        pair.log_ratios,
        strict=True,
    ):
        if log_p is None or log_q is None:
            differences.append(p - q)  # one of them is exactly 0
        elif abs(r) <= 1:
            differences.append(q * mpmath.expm1(-r))  # p = q·e^{−r}
        else:
            differences.append(p - q)  # they differ by a factor ≥ e: no cancellation
    return differences


def _support(pair: _Pair) -> list[int]:
    """Classes where the teacher gives mass (q_j > 0)."""
    return [j for j, lq in enumerate(pair.teacher.log_probs) if lq is not None]


def _kl_value(pair: _Pair) -> Mpf:
    if pair.infinite:
        return mpmath.inf
    # Σ_j q_j r_j = r_k + Σ_{j≠k} q_j g_j (Σ q_j = 1): q_k, which may be 1 − 1e-166 rounded to 1, drops out.
    k = pair.reference
    rest = mpmath.fsum(pair.teacher.probs[j] * pair.gaps[j] for j in pair.both if j != k)
    return pair.log_ratios[k] + rest


def _soft_ce_value(pair: _Pair) -> Mpf:
    if pair.infinite:
        return mpmath.inf
    return -mpmath.fsum(pair.teacher.probs[j] * pair.student.log_probs[j] for j in _support(pair))


def _student_grad(pair: _Pair) -> list:
    # ∂KL/∂z = ∂CE/∂z = (p − q)/T: also the limit where the loss is +inf (module docstring, Conventions).
    return [difference / pair.T for difference in _prob_differences(pair)]


def _temperature_grad(pair: _Pair, tempered_teacher_grad: list) -> Mpf:
    """∂L/∂T = −(1/T)(Σ_j (p_j − q_j)(a_j − max a) + Σ_j (∂L/∂b_j)(b_j − max b)) (module docstring).

    Shifting by the top makes the multiplier exactly 0 on the classes whose probability may be 1 − tiny
    rounded (ties included), so those roundings cannot surface after the sums cancel.
    """
    student_part = mpmath.fsum(
        difference * scaled
        for difference, scaled in zip(_prob_differences(pair), pair.student.scaled, strict=True)
        if scaled is not None
    )
    teacher_part = mpmath.fsum(tempered_teacher_grad[j] * pair.teacher.scaled[j] for j in _support(pair))
    return -(student_part + teacher_part) / pair.T


def _teacher_grad(pair: _Pair, tempered_teacher_grad: list, wrt: str) -> MpValue:
    """∂L/∂v = (∂L/∂b)/T, or ∂L/∂T, from ∂L/∂b (zero on classes the teacher masks)."""
    if wrt == "teacher":
        return [grad / pair.T for grad in tempered_teacher_grad]
    return _temperature_grad(pair, tempered_teacher_grad)


def _check_wrt(wrt: str) -> None:
    if wrt not in WRT:
        raise ValueError(f"wrt must be one of {WRT}, got {wrt!r}")


def mp_kl_divergence(student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf = 1) -> Mpf:
    r"""KL(teacher ‖ student) of one row: :math:`\sum_j q_j (\log q_j - \log p_j)`."""
    pair = _pair(student_logits, teacher_logits, T)
    return mpmath.nan if pair is None else _kl_value(pair)


def _centred_on_teacher(pair: _Pair, gaps: list) -> list:
    """c_j − Σ_i q_i c_i over the teacher's support, from gaps[i] = c_i − c_k (k = pair.reference).

    Since Σ_i q_i = 1, c_j − Σ_i q_i c_i = gaps[j] − Σ_{i≠k} q_i gaps[i]: class k, whose q_k may be
    1 − 1e-166 rounded to exactly 1, drops out (its gap is 0). Computed directly, c_j − Σ_i q_i c_i would
    be exactly 0 instead of ~1e-166 at every precision below ~550 bits, which no precision check can see.
    """
    k = pair.reference
    mean_gap = mpmath.fsum(pair.teacher.probs[i] * gaps[i] for i in _support(pair) if i != k)
    return [None if gap is None else gap - mean_gap for gap in gaps]


def mp_kl_divergence_grad(
    student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf = 1, wrt: str = "student"
) -> MpValue:
    r"""Derivative of one row's KL: :math:`(p - q)/T`, :math:`q_j (r_j - \mathrm{KL})/T`, or ∂/∂T (a scalar)."""
    _check_wrt(wrt)
    pair = _pair(student_logits, teacher_logits, T)
    if pair is None:
        return mpmath.nan if wrt == "temperature" else _nans(len(student_logits))
    if wrt == "student":
        return _student_grad(pair)
    if pair.infinite:
        return mpmath.nan if wrt == "temperature" else _nans(len(student_logits))
    # ∂KL/∂b_j = q_j (r_j − KL) = q_j (r_j − Σ_i q_i r_i), centred with the exact gaps g_j = r_j − r_k.
    gaps = pair.gaps
    centred = _centred_on_teacher(pair, gaps)
    tempered_teacher_grad = [mpmath.mpf(0)] * len(student_logits)
    for j in _support(pair):
        tempered_teacher_grad[j] = pair.teacher.probs[j] * centred[j]
    return _teacher_grad(pair, tempered_teacher_grad, wrt)


def mp_soft_cross_entropy(student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf = 1) -> Mpf:
    r"""Soft cross-entropy of one row: :math:`-\sum_j q_j \log p_j`."""
    pair = _pair(student_logits, teacher_logits, T)
    return mpmath.nan if pair is None else _soft_ce_value(pair)


def mp_soft_cross_entropy_grad(
    student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf = 1, wrt: str = "student"
) -> MpValue:
    r"""Derivative of one row's soft CE: :math:`(p - q)/T`, :math:`-q_j(\log p_j + \mathrm{CE})/T`, or ∂/∂T."""
    _check_wrt(wrt)
    pair = _pair(student_logits, teacher_logits, T)
    if pair is None:
        return mpmath.nan if wrt == "temperature" else _nans(len(student_logits))
    if wrt == "student":
        return _student_grad(pair)
    if pair.infinite:
        return mpmath.nan if wrt == "temperature" else _nans(len(student_logits))
    # ∂CE/∂b_j = −q_j (log p_j + CE) = −q_j (log p_j − Σ_i q_i log p_i), with log p_j − log p_k = (z_j − z_k)/T.
    z_k = student_logits[pair.reference]
    gaps = [None] * len(student_logits)
    for j in _support(pair):
        gaps[j] = (student_logits[j] - z_k) / T
    centred = _centred_on_teacher(pair, gaps)
    tempered_teacher_grad = [mpmath.mpf(0)] * len(student_logits)
    for j in _support(pair):
        tempered_teacher_grad[j] = -pair.teacher.probs[j] * centred[j]
    return _teacher_grad(pair, tempered_teacher_grad, wrt)


def _softmax_jacobian(probs_and_complements: list, T: Mpf) -> list:
    """(diag p − p pᵀ)/T² from [(p_i, 1 − p_i)], the diagonal as p_i(1 − p_i) (no 1 − 1 cancellation)."""
    scale = 1 / (T * T)
    scaled = [p * scale for p, _ in probs_and_complements]
    matrix = []
    for i, (p_i, complement_i) in enumerate(probs_and_complements):
        minus_p_i = -p_i
        row = [minus_p_i * s_j for s_j in scaled]
        row[i] = scaled[i] * complement_i
        matrix.append(row)
    return matrix


def _probs_and_complements(student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf) -> list:
    """[(p_i, 1 − p_i)], or NaN pairs when either row has no softmax (the Hessian's only input)."""
    student = _tempered(student_logits, T)
    if student is None or not _has_softmax(teacher_logits):
        return [[mpmath.nan, mpmath.nan] for _ in student_logits]
    return [
        [p, mpmath.mpf(1) if log_p is None else -mpmath.expm1(log_p)]
        for p, log_p in zip(student.probs, student.log_probs, strict=True)
    ]


def mp_kl_divergence_hessian(
    student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf = 1
) -> list:
    r"""Hessian of one row's KL w.r.t. the student logits: :math:`(\operatorname{diag} p - p p^\top)/T^2`."""
    return _softmax_jacobian(_probs_and_complements(student_logits, teacher_logits, T), T)


# --------------------------------------------------------------------------------------------------
# One row at the working precision: hard cross-entropy, the distillation objective, logit matching
# --------------------------------------------------------------------------------------------------


def _check_label(label: int, n_classes: int) -> None:
    if not 0 <= label < n_classes:
        raise ValueError(f"label must lie in [0, {n_classes}), got {label}")


def mp_cross_entropy(logits: Sequence[Mpf], label: int) -> Mpf:
    """−log softmax(logits)[label] of one row (T = 1); +inf when the label's class is masked."""
    _check_label(label, len(logits))
    tempered = _tempered(logits, mpmath.mpf(1))
    if tempered is None:
        return mpmath.nan
    log_p = tempered.log_probs[label]
    return mpmath.inf if log_p is None else -log_p


def mp_cross_entropy_grad(logits: Sequence[Mpf], label: int) -> list:
    """softmax(logits) − onehot(label) of one row, the label's entry as expm1(log p_y) = p_y − 1."""
    _check_label(label, len(logits))
    tempered = _tempered(logits, mpmath.mpf(1))
    if tempered is None:
        return _nans(len(logits))
    grad = list(tempered.probs)
    log_p = tempered.log_probs[label]
    grad[label] = mpmath.mpf(-1) if log_p is None else mpmath.expm1(log_p)
    return grad


def _check_soft(soft: str) -> None:
    if soft not in SOFT_LOSSES:
        raise ValueError(f"soft must be one of {SOFT_LOSSES}, got {soft!r}")


def _distillation_weights(T: Mpf, alpha: Mpf, t2_scaling: bool) -> tuple[Mpf, Mpf]:
    """(weight of the hard cross-entropy, weight of the soft loss) = (α, (1 − α)·T² or 1 − α)."""
    return alpha, (1 - alpha) * (T * T if t2_scaling else 1)


def mp_distillation_loss(
    student_logits: Sequence[Mpf],
    teacher_logits: Sequence[Mpf],
    label: int,
    T: Mpf,
    alpha: Mpf,
    t2_scaling: bool = True,
    soft: str = "cross_entropy",
) -> Mpf:
    r"""Hinton's objective for one row: :math:`\alpha\,\mathrm{CE}(y, z) + (1-\alpha)\,T^2\,L_\text{soft}(z, v, T)`."""
    _check_soft(soft)
    hard_weight, soft_weight = _distillation_weights(T, alpha, t2_scaling)
    terms = []
    if hard_weight != 0:  # a term of weight 0 is absent, even when it is +inf or NaN
        terms.append(hard_weight * mp_cross_entropy(student_logits, label))
    if soft_weight != 0:
        soft_loss = mp_kl_divergence if soft == "kl" else mp_soft_cross_entropy
        terms.append(soft_weight * soft_loss(student_logits, teacher_logits, T))
    return mpmath.fsum(terms)


def mp_distillation_loss_grad(
    student_logits: Sequence[Mpf],
    teacher_logits: Sequence[Mpf],
    label: int,
    T: Mpf,
    alpha: Mpf,
    t2_scaling: bool = True,
    soft: str = "cross_entropy",
) -> list:
    r"""Its gradient w.r.t. the student: :math:`\alpha(\operatorname{softmax}(z) - e_y) + (1-\alpha)T^2 (p - q)/T`.

    Both soft losses have the same student gradient, so ``soft`` only selects which value it belongs to.
    """
    _check_soft(soft)
    hard_weight, soft_weight = _distillation_weights(T, alpha, t2_scaling)
    parts = []
    if hard_weight != 0:
        parts.append([hard_weight * g for g in mp_cross_entropy_grad(student_logits, label)])
    if soft_weight != 0:
        soft_grad = mp_kl_divergence_grad(student_logits, teacher_logits, T, wrt="student")
        parts.append([soft_weight * g for g in soft_grad])
    return [mpmath.fsum(column) for column in zip(*parts, strict=True)]


def _logit_differences(student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], centered: bool) -> list:
    """d = (z − z̄) − (v − v̄) = e − ē with e = z − v, or d = e; rounded once (N·e_i − Σe is exact)."""
    if len(student_logits) != len(teacher_logits):
        raise ValueError("student and teacher rows must have the same number of classes")
    gaps = [z - v for z, v in zip(student_logits, teacher_logits, strict=True)]  # exact
    if not centered:
        return gaps
    count = len(gaps)
    total = mpmath.fsum(gaps)
    return [mpmath.fsum([count * gap, -total]) / count for gap in gaps]


def _all_finite(*rows: Sequence[Mpf]) -> bool:
    return all(mpmath.isfinite(x) for row in rows for x in row)


def mp_logit_mse(student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], centered: bool = True) -> Mpf:
    r"""Logit matching for one row: :math:`\tfrac1N \sum_i d_i^2`; NaN if any logit is not finite."""
    if not _all_finite(student_logits, teacher_logits):
        return mpmath.nan
    differences = _logit_differences(student_logits, teacher_logits, centered)
    return mpmath.fsum(differences, squared=True) / len(differences)


def mp_logit_mse_grad(
    student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], centered: bool = True
) -> list:
    r"""Its gradient w.r.t. the student: :math:`\tfrac2N d` in both cases (module docstring, Derivatives)."""
    if not _all_finite(student_logits, teacher_logits):
        return _nans(len(student_logits))
    differences = _logit_differences(student_logits, teacher_logits, centered)
    count = len(differences)
    return [2 * d / count for d in differences]


# --------------------------------------------------------------------------------------------------
# float64 in, float64 out
# --------------------------------------------------------------------------------------------------


def _logits(value: object, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} needs a non-empty class axis (the last one), got shape {array.shape}")
    return array


def _logit_pair(student_logits: object, teacher_logits: object) -> tuple[np.ndarray, np.ndarray]:
    student = _logits(student_logits, "student_logits")
    teacher = _logits(teacher_logits, "teacher_logits")
    if student.shape != teacher.shape:
        raise ValueError(f"student and teacher logits differ in shape: {student.shape} vs {teacher.shape}")
    return student, teacher


def _positive(value: object, name: str) -> float:
    number = _finite(value, name)
    if number <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def _finite(value: object, name: str) -> float:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 0 or not np.isfinite(array):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(array)


def _labels(labels: object, leading_shape: tuple, n_classes: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes}), got values from {array.min()} to {array.max()}"
        )
    return np.broadcast_to(array, leading_shape)


def _per_sample(
    kernel: Callable[..., MpValue],
    logit_arrays: Sequence[np.ndarray],
    result_shape: tuple,
    labels: np.ndarray | None = None,
    T: float | None = None,
    alpha: float | None = None,
    finish: Callable[..., MpValue] | None = None,
) -> np.ndarray:
    """``kernel(*rows, [label], [T], [alpha])`` for every sample with adaptive precision; float64 results.

    ``finish`` (optional) post-processes the converged kernel value at its precision: the Hessian converges
    its N inputs and then forms N² products, each as accurate as its factors.
    """
    leading_shape = logit_arrays[0].shape[:-1]
    n_classes = logit_arrays[0].shape[-1]
    rows_by_array = [array.reshape(-1, n_classes).tolist() for array in logit_arrays]
    flat_labels = None if labels is None else labels.reshape(-1).tolist()
    # The largest temperature the logits are divided by: labels mean a hard cross-entropy, at T = 1.
    temperatures = ([] if T is None else [T]) + ([] if labels is None else [1.0])
    largest_temperature = max(temperatures, default=None)
    results = []
    for index in range(len(rows_by_array[0])):
        doubles = [rows[index] for rows in rows_by_array]
        precision = _starting_precision(doubles, largest_temperature)
        with mpmath.workprec(precision):  # ≥ 53 bits, so every conversion is exact
            arguments = [[mpmath.mpf(x) for x in row] for row in doubles]
            if flat_labels is not None:
                arguments.append(flat_labels[index])
            arguments += [mpmath.mpf(scalar) for scalar in (T, alpha) if scalar is not None]
        value, precision = _converged(lambda arguments=arguments: kernel(*arguments), precision)
        if finish is not None:
            with mpmath.workprec(precision):
                value = finish(value, *arguments)
        results.append(_to_floats(value))
    return np.array(results, dtype=np.float64).reshape(leading_shape + result_shape)


def softmax(logits: object, T: float = 1.0) -> np.ndarray:
    """softmax(logits/T) over the last axis, shape (..., N)."""
    logits = _logits(logits, "logits")
    return _per_sample(mp_softmax, [logits], logits.shape[-1:], T=_positive(T, "T"))


def log_softmax(logits: object, T: float = 1.0) -> np.ndarray:
    """log softmax(logits/T) over the last axis, shape (..., N); -inf at masked classes."""
    logits = _logits(logits, "logits")
    return _per_sample(mp_log_softmax, [logits], logits.shape[-1:], T=_positive(T, "T"))


def logsumexp(logits: object, T: float = 1.0) -> np.ndarray:
    """log Σ_i exp(logits_i/T) per sample, shape (...)."""
    logits = _logits(logits, "logits")
    return _per_sample(mp_logsumexp, [logits], (), T=_positive(T, "T"))


def kl_divergence(student_logits: object, teacher_logits: object, T: float = 1.0) -> np.ndarray:
    """KL(teacher ‖ student) per sample, shape (...)."""
    pair = _logit_pair(student_logits, teacher_logits)
    return _per_sample(mp_kl_divergence, pair, (), T=_positive(T, "T"))


def soft_cross_entropy(student_logits: object, teacher_logits: object, T: float = 1.0) -> np.ndarray:
    """−Σ q log p per sample, shape (...)."""
    pair = _logit_pair(student_logits, teacher_logits)
    return _per_sample(mp_soft_cross_entropy, pair, (), T=_positive(T, "T"))


def _soft_grad(kernel, student_logits, teacher_logits, T, wrt) -> np.ndarray:
    _check_wrt(wrt)
    pair = _logit_pair(student_logits, teacher_logits)
    result_shape = () if wrt == "temperature" else pair[0].shape[-1:]

    def row_kernel(student_row, teacher_row, temperature):
        return kernel(student_row, teacher_row, temperature, wrt)

    return _per_sample(row_kernel, pair, result_shape, T=_positive(T, "T"))


def kl_divergence_grad(
    student_logits: object, teacher_logits: object, T: float = 1.0, wrt: str = "student"
) -> np.ndarray:
    """∂KL/∂z or ∂KL/∂v per sample, shape (..., N); ∂KL/∂T per sample, shape (...)."""
    return _soft_grad(mp_kl_divergence_grad, student_logits, teacher_logits, T, wrt)


def soft_cross_entropy_grad(
    student_logits: object, teacher_logits: object, T: float = 1.0, wrt: str = "student"
) -> np.ndarray:
    """∂CE/∂z or ∂CE/∂v per sample, shape (..., N); ∂CE/∂T per sample, shape (...)."""
    return _soft_grad(mp_soft_cross_entropy_grad, student_logits, teacher_logits, T, wrt)


def kl_divergence_hessian(student_logits: object, teacher_logits: object, T: float = 1.0) -> np.ndarray:
    """∂²KL/∂z² = (diag p − p pᵀ)/T² per sample, shape (..., N, N)."""
    pair = _logit_pair(student_logits, teacher_logits)
    n_classes = pair[0].shape[-1]

    def finish(probs_and_complements, student_row, teacher_row, temperature):
        # Each entry is a product of two converged factors, rounded once: no N² mpf products.
        scaled = [p / (temperature * temperature) for p, _ in probs_and_complements]
        matrix = []
        for i, (p_i, complement_i) in enumerate(probs_and_complements):
            minus_p_i = -p_i
            row = [_product_to_float64(minus_p_i, s_j) for s_j in scaled]
            row[i] = _product_to_float64(scaled[i], complement_i)
            matrix.append(row)
        return matrix

    return _per_sample(
        _probs_and_complements, pair, (n_classes, n_classes), T=_positive(T, "T"), finish=finish
    )


def cross_entropy(logits: object, labels: object) -> np.ndarray:
    """−log softmax(logits)[label] per sample (T = 1), shape (...)."""
    logits = _logits(logits, "logits")
    labels = _labels(labels, logits.shape[:-1], logits.shape[-1])
    return _per_sample(mp_cross_entropy, [logits], (), labels=labels)


def cross_entropy_grad(logits: object, labels: object) -> np.ndarray:
    """softmax(logits) − onehot(labels) per sample, shape (..., N)."""
    logits = _logits(logits, "logits")
    labels = _labels(labels, logits.shape[:-1], logits.shape[-1])
    return _per_sample(mp_cross_entropy_grad, [logits], logits.shape[-1:], labels=labels)


def _distillation(kernel, student_logits, teacher_logits, labels, T, alpha, t2_scaling, soft, result_ndim):
    _check_soft(soft)
    pair = _logit_pair(student_logits, teacher_logits)
    labels = _labels(labels, pair[0].shape[:-1], pair[0].shape[-1])

    def row_kernel(student_row, teacher_row, label, temperature, weight):
        return kernel(student_row, teacher_row, label, temperature, weight, bool(t2_scaling), soft)

    result_shape = pair[0].shape[-1:] if result_ndim else ()
    return _per_sample(
        row_kernel, pair, result_shape, labels=labels, T=_positive(T, "T"), alpha=_finite(alpha, "alpha")
    )


def distillation_loss(
    student_logits: object,
    teacher_logits: object,
    labels: object,
    T: float,
    alpha: float,
    t2_scaling: bool = True,
    soft: str = "cross_entropy",
) -> np.ndarray:
    """α·CE(labels, z) + (1 − α)·(T² if t2_scaling else 1)·soft(z, v, T) per sample, shape (...)."""
    return _distillation(
        mp_distillation_loss, student_logits, teacher_logits, labels, T, alpha, t2_scaling, soft, 0
    )


def distillation_loss_grad(
    student_logits: object,
    teacher_logits: object,
    labels: object,
    T: float,
    alpha: float,
    t2_scaling: bool = True,
    soft: str = "cross_entropy",
) -> np.ndarray:
    """The distillation loss's gradient w.r.t. the student logits per sample, shape (..., N)."""
    return _distillation(
        mp_distillation_loss_grad, student_logits, teacher_logits, labels, T, alpha, t2_scaling, soft, 1
    )


def logit_mse(student_logits: object, teacher_logits: object, centered: bool = True) -> np.ndarray:
    """mean_i d_i² per sample, shape (...); d = (z − z̄) − (v − v̄) if centered else z − v."""
    pair = _logit_pair(student_logits, teacher_logits)

    def row_kernel(student_row, teacher_row):
        return mp_logit_mse(student_row, teacher_row, bool(centered))

    return _per_sample(row_kernel, pair, ())


def logit_mse_grad(student_logits: object, teacher_logits: object, centered: bool = True) -> np.ndarray:
    """Its gradient w.r.t. the student logits, 2d/N, per sample, shape (..., N)."""
    pair = _logit_pair(student_logits, teacher_logits)

    def row_kernel(student_row, teacher_row):
        return mp_logit_mse_grad(student_row, teacher_row, bool(centered))

    return _per_sample(row_kernel, pair, pair[0].shape[-1:])


# --------------------------------------------------------------------------------------------------
# Comparing against the oracle
# --------------------------------------------------------------------------------------------------


def relative_error(actual: object, expected: object, result_ndim: int = 0) -> np.ndarray:
    r"""Relative error of ``actual`` against ``expected``, per result.

    Parameters
    ----------
    actual, expected : array_like, same shape
        ``expected`` is the reference (the oracle's value).
    result_ndim : int, default 0
        How many trailing axes form one result: 0 for per-sample scalars such as losses (the error is then
        elementwise), 1 for vectors such as softmax rows and gradients, 2 for Hessians. The default is the
        strictest: an elementwise error is never smaller than a normwise one.

    Returns
    -------
    ndarray of float64, shape ``expected.shape[:expected.ndim - result_ndim]``
        :math:`\max_i |a_i - e_i| / \max_i |e_i|` over each result's components. A component where both are
        the same infinity, or both NaN, counts as exact and is left out of both maxima; any other
        disagreement involving an infinity or NaN makes the error ``inf``. 0 when both are all zero,
        ``inf`` when the expected result is zero and the actual one is not.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"actual and expected differ in shape: {actual.shape} vs {expected.shape}")
    if not 0 <= result_ndim <= expected.ndim:
        raise ValueError(f"result_ndim must lie in [0, {expected.ndim}], got {result_ndim}")
    exact = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    both_finite = np.isfinite(actual) & np.isfinite(expected)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        difference = np.where(exact, 0.0, np.where(both_finite, np.abs(actual - expected), np.inf))
        scale = np.where(np.isfinite(expected), np.abs(expected), 0.0)
        axes = tuple(range(expected.ndim - result_ndim, expected.ndim))
        difference = np.max(difference, axis=axes, initial=0.0)
        scale = np.max(scale, axis=axes, initial=0.0)
        error = np.where(difference == 0, 0.0, difference / scale)
    return error


# --------------------------------------------------------------------------------------------------
# The divergences of modern distillation: reverse KL, skew KL, generalised JSD, decoupled KD; and logit
# standardisation. One row at the working precision, then float64 wrappers.
#
# Each loss L is a function of p and q; its logit derivatives follow from the partial derivatives
# P_j = ∂L/∂p_j and Q_j = ∂L/∂q_j by the softmax chain rule, T ∂L/∂z_j = p_j (P_j − Σ_i p_i P_i) (and
# likewise for v), and ∂L/∂T from those as in the module docstring (Derivatives). A constant added to
# every P_j (or Q_j) changes nothing, so partials are written in "deviation" form — 0 where p = q — and
# the weighted mean is centred on the class k with the largest probability:
# P_j − Σ_i p_i P_i = (P_j − P_k) − Σ_{i≠k} p_i (P_i − P_k), in which p_k (perhaps 1 − 1e-166 rounded to 1
# at every precision, point 3 of the module docstring) does not appear.
# --------------------------------------------------------------------------------------------------


def _chain_rule(tempered: _Tempered, partials: list, T: Mpf, alternatives: Sequence[list] = ()) -> list:
    """T ∂L/∂x_j = w_j (P_j − Σ_i w_i P_i) for w = softmax(x/T), ``partials`` P (None where w_j = 0).

    ``alternatives`` are other forms of the same partials (each P plus a constant, None where it does not
    exist), small where P is near a constant ≠ 0 — e.g. −(1 − λ)·a/m where P = −(1 − λ)(a/m − 1) → (1 − λ).
    P_j − P_k is taken from the form in which |P_j| + |P_k| is smallest: a form near a constant would round
    that constant the same way at every precision (point 3 of the module docstring) and lose the difference.
    """
    k = tempered.top_index
    forms = [partials, *alternatives]

    def difference(j):
        candidates = [
            (abs(form[j]) + abs(form[k]), form[j] - form[k])
            for form in forms
            if form[j] is not None and form[k] is not None
        ]
        return min(candidates, key=lambda candidate: candidate[0])[1]

    differences = [None if P is None else difference(j) for j, P in enumerate(partials)]
    mean = mpmath.fsum(tempered.probs[i] * d for i, d in enumerate(differences) if i != k and d is not None)
    return [mpmath.mpf(0) if d is None else tempered.probs[j] * (d - mean) for j, d in enumerate(differences)]


def _psi(x: Mpf) -> Mpf:
    """x/(1 + x) − log1p(x) = Σ_{n≥2} (−1)^{n+1} (n − 1)/n xⁿ, summed as a series for x < 1/2: the direct
    form is the difference of two numbers ≈ x that equals −x²/2, which rounds to 0 at every precision below
    2·log2(1/x) bits (x = 1e-152 occurs)."""
    if x >= 0.5:
        return x / (1 + x) - mpmath.log1p(x)
    terms, n, power = [], 2, x * x
    limit = mpmath.ldexp(abs(power), -mpmath.mp.prec - 8)
    while abs(power) > limit or n == 2:
        terms.append((-1) ** (n + 1) * (n - 1) * power / n)
        n, power = n + 1, power * x
    return mpmath.fsum(terms)


def _derivative(
    pair: _Pair,
    student_partials: list,
    teacher_partials: list,
    wrt: str,
    student_alternatives=(),
    teacher_alternatives=(),
) -> MpValue:
    """∂L/∂z, ∂L/∂v or ∂L/∂T from the partials w.r.t. p and q (and their alternative forms)."""
    T = pair.T
    student_grad = lambda: _chain_rule(pair.student, student_partials, T, student_alternatives)  # noqa: E731
    teacher_grad = lambda: _chain_rule(pair.teacher, teacher_partials, T, teacher_alternatives)  # noqa: E731
    if wrt == "student":
        return [g / T for g in student_grad()]
    if wrt == "teacher":
        return [g / T for g in teacher_grad()]
    terms = []
    for tempered, tempered_grad in ((pair.student, student_grad()), (pair.teacher, teacher_grad())):
        terms += [g * s for g, s in zip(tempered_grad, tempered.scaled, strict=True) if s is not None]
    return -mpmath.fsum(terms) / T


def _nan_result(n_classes: int, wrt: str | None) -> MpValue:
    return mpmath.nan if wrt in (None, "temperature") else _nans(n_classes)


def mp_reverse_kl_divergence(student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf = 1) -> Mpf:
    r"""KL(student ‖ teacher) of one row: :math:`\sum_j p_j (\log p_j - \log q_j)`, the KL with the rows exchanged."""
    return mp_kl_divergence(teacher_logits, student_logits, T)


def mp_reverse_kl_divergence_grad(
    student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf = 1, wrt: str = "student"
) -> MpValue:
    """Its derivative: the KL's derivative w.r.t. the exchanged argument."""
    _check_wrt(wrt)
    swapped = {"student": "teacher", "teacher": "student", "temperature": "temperature"}[wrt]
    return mp_kl_divergence_grad(teacher_logits, student_logits, T, swapped)


def mp_reverse_kl_divergence_hessian(
    student_logits: Sequence[Mpf], teacher_logits: Sequence[Mpf], T: Mpf = 1
) -> list:
    r"""∂²KL(p‖q)/∂z² = (diag p − p pᵀ + diag u − u pᵀ − p uᵀ)/T², u = p ⊙ (log p − log q − KL(p‖q))."""
    u = [T * g for g in mp_reverse_kl_divergence_grad(student_logits, teacher_logits, T, "student")]
    jacobian = _softmax_jacobian(_probs_and_complements(student_logits, teacher_logits, T), T)
    student = _tempered(student_logits, T)
    probs = _nans(len(u)) if student is None else student.probs
    scale = 1 / (T * T)
    return [
        [
            jacobian[i][j] + ((u[i] if i == j else 0) - u[i] * probs[j] - probs[i] * u[j]) * scale
            for j in range(len(u))
        ]
        for i in range(len(u))
    ]


@dataclass(frozen=True)
class _Mixture:
    """Per class, for the mixture M = w·q + (1 − w)·p: log(q/M), log(p/M), q/M − 1 and p/M − 1.

    Each is None where its numerator distribution is 0. Formed from the careful log-ratios r = log q − log p
    of the pair: M/q = 1 + (1 − w)·expm1(−r) and M/p = 1 + w·expm1(r), so nothing near 1 is rounded.
    """

    log_q_over_m: list
    log_p_over_m: list
    q_over_m_minus_1: list
    p_over_m_minus_1: list
    q_over_m: list
    p_over_m: list


def _mixture(pair: _Pair, w: Mpf) -> _Mixture:
    n_classes = len(pair.log_ratios)
    log_q_m, log_p_m, q_m, p_m, q_over, p_over = ([None] * n_classes for _ in range(6))
    in_both = set(pair.both)
    for j in range(n_classes):
        has_q, has_p = pair.teacher.log_probs[j] is not None, pair.student.log_probs[j] is not None
        if j in in_both:
            x = (1 - w) * mpmath.expm1(-pair.log_ratios[j])  # M/q − 1
            y = w * mpmath.expm1(pair.log_ratios[j])  # M/p − 1
            log_q_m[j], q_m[j], q_over[j] = -mpmath.log1p(x), -x / (1 + x), 1 / (1 + x)
            log_p_m[j], p_m[j], p_over[j] = -mpmath.log1p(y), -y / (1 + y), 1 / (1 + y)
        elif has_q:  # the student masks the class: M = w q
            log_q_m[j] = -mpmath.log(w) if w > 0 else mpmath.inf
            q_m[j] = 1 / w - 1 if w > 0 else mpmath.inf
            q_over[j] = 1 / w if w > 0 else mpmath.inf
        elif has_p:  # the teacher masks the class: M = (1 − w) p
            log_p_m[j] = -mpmath.log(1 - w) if w < 1 else mpmath.inf
            p_m[j] = 1 / (1 - w) - 1 if w < 1 else mpmath.inf
            p_over[j] = 1 / (1 - w) if w < 1 else mpmath.inf
    return _Mixture(log_q_m, log_p_m, q_m, p_m, q_over, p_over)


def _weighted_log_sum(tempered: _Tempered, logs: list) -> Mpf:
    """Σ_j w_j logs_j over classes with w_j > 0, as logs_k + Σ_{j≠k} w_j (logs_j − logs_k) (Σ w = 1)."""
    k = tempered.top_index
    rest = mpmath.fsum(
        tempered.probs[j] * (x - logs[k]) for j, x in enumerate(logs) if j != k and x is not None
    )
    return logs[k] + rest


def _mixture_kl(pair: _Pair, w: Mpf, anchor: str, wrt: str | None) -> MpValue:
    """KL(q ‖ M) (anchor "teacher") or KL(p ‖ M) (anchor "student"), M = w q + (1 − w) p, or a derivative."""
    mixture = _mixture(pair, w)
    if anchor == "teacher":
        tempered, logs = pair.teacher, mixture.log_q_over_m
    else:
        tempered, logs = pair.student, mixture.log_p_over_m
    if wrt is None:
        if any(x == mpmath.inf for x in logs if x is not None):
            return mpmath.inf
        return _weighted_log_sum(tempered, logs)
    if any(x == mpmath.inf for x in logs if x is not None):
        return _nan_result(len(logs), wrt)
    q_m, p_m = mixture.q_over_m_minus_1, mixture.p_over_m_minus_1
    n_classes = len(logs)
    both = set(pair.both)
    # x = (other's weight in M / own weight)·(other/own): small where the other distribution vanishes.
    if anchor == "teacher":
        own_weight, other_weight, own, other = w, 1 - w, pair.teacher, pair.student
        sign = -1  # other/own = p/q = exp(−r)
    else:
        own_weight, other_weight, own, other = 1 - w, w, pair.student, pair.teacher
        sign = 1  # q/p = exp(r)
    x = [None] * n_classes
    if own_weight > 0:
        for j in range(n_classes):
            if own.log_probs[j] is None:
                continue
            if j in both:
                x[j] = other_weight / own_weight * mpmath.exp(sign * pair.log_ratios[j])
            elif other.log_probs[j] is None:
                x[j] = mpmath.mpf(0)
    own_m = q_m if anchor == "teacher" else p_m  # own/M − 1
    own_over = mixture.q_over_m if anchor == "teacher" else mixture.p_over_m  # own/M, formed directly
    # ∂/∂own_j = log(own_j/M_j) − λ(own_j/M_j − 1) (+ const), λ = own_weight; alternative form ψ(x_j)
    own_partials = [None if lg is None else lg - own_weight * own_m[j] for j, lg in enumerate(logs)]
    own_alternative = [None if xj is None else _psi(xj) for xj in x]
    # ∂/∂other_j = −(1 − λ)(own_j/M_j − 1) (+ const); alternatives −(1 − λ)·own_j/M_j and c·x_j/(1 + x_j)
    other_partials, other_ratio, other_small = [], [], []
    for j in range(n_classes):
        if other.log_probs[j] is None:
            other_partials.append(None), other_ratio.append(None), other_small.append(None)
            continue
        deviation = own_m[j] if own_m[j] is not None else mpmath.mpf(-1)
        other_partials.append(-other_weight * deviation)
        other_ratio.append(-other_weight * (own_over[j] if own_over[j] is not None else 0))
        other_small.append(
            None if x[j] is None or own_weight == 0 else other_weight / own_weight * x[j] / (1 + x[j])
        )
    if anchor == "teacher":
        return _derivative(
            pair, other_partials, own_partials, wrt, (other_ratio, other_small), (own_alternative,)
        )
    return _derivative(
        pair, own_partials, other_partials, wrt, (own_alternative,), (other_ratio, other_small)
    )


def _combine(parts: list, wrt: str | None) -> MpValue:
    """Σ weight·part over (weight, part) pairs, scalars or vectors; a part of weight 0 is absent."""
    parts = [(weight, part) for weight, part in parts if weight != 0]
    if not parts:
        return mpmath.mpf(0) if wrt in (None, "temperature") else None
    if isinstance(parts[0][1], list):
        return [mpmath.fsum(weight * part[j] for weight, part in parts) for j in range(len(parts[0][1]))]
    return mpmath.fsum(weight * part for weight, part in parts)


def _mixture_loss(student_logits, teacher_logits, T, kind: str, weight: Mpf, wrt: str | None) -> MpValue:
    pair = _pair(student_logits, teacher_logits, T)
    n_classes = len(student_logits)
    if pair is None:
        return _nan_result(n_classes, wrt)
    if kind == "skew_kl":  # KL(q ‖ α q + (1 − α) p)
        parts = [(1, _mixture_kl(pair, weight, "teacher", wrt))]
    elif kind == "skew_reverse_kl":  # KL(p ‖ α p + (1 − α) q): the teacher's weight in M is 1 − α
        parts = [(1, _mixture_kl(pair, 1 - weight, "student", wrt))]
    else:  # β KL(q ‖ M) + (1 − β) KL(p ‖ M), M = β q + (1 − β) p
        parts = [(weight, None), (1 - weight, None)]
        parts = [
            (weight, _mixture_kl(pair, weight, "teacher", wrt) if weight != 0 else None),
            (1 - weight, _mixture_kl(pair, weight, "student", wrt) if weight != 1 else None),
        ]
    result = _combine(parts, wrt)
    if result is None:  # every part absent (β = 0 or 1 of a vector derivative): zeros
        return [mpmath.mpf(0)] * n_classes
    return result


def mp_skew_kl_divergence(student_logits, teacher_logits, T: Mpf = 1, skew: Mpf = 0.1, wrt=None) -> MpValue:
    r"""DistiLLM's skew KL of one row, :math:`\mathrm{KL}(q\,\|\,\alpha q + (1-\alpha) p)` (or ∂/∂ ``wrt``)."""
    return _mixture_loss(student_logits, teacher_logits, T, "skew_kl", mpmath.mpf(skew), wrt)


def mp_skew_reverse_kl_divergence(
    student_logits, teacher_logits, T: Mpf = 1, skew: Mpf = 0.1, wrt=None
) -> MpValue:
    r"""DistiLLM's skew reverse KL of one row, :math:`\mathrm{KL}(p\,\|\,\alpha p + (1-\alpha) q)`."""
    return _mixture_loss(student_logits, teacher_logits, T, "skew_reverse_kl", mpmath.mpf(skew), wrt)


def mp_jensen_shannon_divergence(
    student_logits, teacher_logits, T: Mpf = 1, beta: Mpf = 0.5, wrt=None
) -> MpValue:
    r"""GKD's generalised JSD of one row: :math:`\beta\,\mathrm{KL}(q\,\|\,M) + (1-\beta)\,\mathrm{KL}(p\,\|\,M)`,
    :math:`M = \beta q + (1-\beta) p`."""
    return _mixture_loss(student_logits, teacher_logits, T, "jsd", mpmath.mpf(beta), wrt)


def _without_class(row: Sequence[Mpf], label: int) -> list:
    return [mpmath.ninf if j == label else x for j, x in enumerate(row)]


def mp_target_class_kl_divergence(
    student_logits, teacher_logits, label: int, T: Mpf = 1, wrt=None
) -> MpValue:
    r"""DKD's TCKD of one row: the KL between the binary (target, rest) distributions, teacher ‖ student.

    :math:`q_t \log(q_t/p_t) + \bar q \log(\bar q/\bar p)`, with :math:`\bar q = \sum_{j \ne t} q_j` summed
    (not 1 − q_t) and :math:`\log(\bar q/\bar p) = \operatorname{log1p}((p_t - q_t)/\bar p)` near 1.
    """
    _check_label(label, len(student_logits))
    pair = _pair(student_logits, teacher_logits, T)
    n_classes = len(student_logits)
    if pair is None:
        return _nan_result(n_classes, wrt)
    t = label
    q_t, p_t = pair.teacher.probs[t], pair.student.probs[t]
    q_rest = mpmath.fsum(q for j, q in enumerate(pair.teacher.probs) if j != t)
    p_rest = mpmath.fsum(p for j, p in enumerate(pair.student.probs) if j != t)
    difference_t = _prob_differences(pair)[t]  # p_t − q_t = q̄ − p̄
    # log(q_t/p_t) and log(q̄/p̄); None where the teacher's side is 0 (no term), inf where only the student's is
    if q_t == 0:
        log_target = None
    elif p_t == 0:
        log_target = mpmath.inf
    else:
        log_target = pair.log_ratios[t] if t in pair.both else mpmath.log(q_t) - mpmath.log(p_t)
    if q_rest == 0:
        log_rest = None
    elif p_rest == 0:
        log_rest = mpmath.inf
    elif abs(difference_t) <= p_rest / 2:
        log_rest = mpmath.log1p(difference_t / p_rest)
    else:
        log_rest = mpmath.log(q_rest) - mpmath.log(p_rest)
    if mpmath.inf in (log_target, log_rest):
        return mpmath.inf if wrt is None else _nan_result(n_classes, wrt)
    if wrt is None:
        return mpmath.fsum(
            [
                q_t * log_target if log_target is not None else 0,
                q_rest * log_rest if log_rest is not None else 0,
            ]
        )
    # ∂/∂p_t = −q_t/p_t, ∂/∂p_j = −q̄/p̄ (j ≠ t); ∂/∂q_t = log(q_t/p_t) + 1, ∂/∂q_j = log(q̄/p̄) + 1 (deviation form)
    ratio_t = mpmath.expm1(log_target) if log_target is not None else mpmath.mpf(-1)  # q_t/p_t − 1
    ratio_rest = difference_t / p_rest  # q̄/p̄ − 1
    student_partials = [
        None if pair.student.log_probs[j] is None else -(ratio_t if j == t else ratio_rest)
        for j in range(n_classes)
    ]
    teacher_partials = [
        None if pair.teacher.log_probs[j] is None else (log_target if j == t else log_rest)
        for j in range(n_classes)
    ]
    return _derivative(pair, student_partials, teacher_partials, wrt)


def mp_non_target_class_kl_divergence(
    student_logits, teacher_logits, label: int, T: Mpf = 1, wrt=None
) -> MpValue:
    r"""DKD's NCKD of one row: KL(teacher ‖ student) of the distributions over the non-target classes."""
    _check_label(label, len(student_logits))
    student_rest, teacher_rest = _without_class(student_logits, label), _without_class(teacher_logits, label)
    if wrt is None:
        return mp_kl_divergence(student_rest, teacher_rest, T)
    return mp_kl_divergence_grad(student_rest, teacher_rest, T, wrt)


def mp_decoupled_kd_loss(
    student_logits, teacher_logits, label: int, T: Mpf = 4, alpha: Mpf = 1, beta: Mpf = 8, wrt=None
) -> MpValue:
    r"""DKD (Zhao et al. 2022) of one row: :math:`T^2(\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD})`; a part of
    weight 0 is absent. ∂/∂T includes the derivative of :math:`T^2`."""
    alpha, beta = mpmath.mpf(alpha), mpmath.mpf(beta)
    weighted = []
    for weight, part in ((alpha, mp_target_class_kl_divergence), (beta, mp_non_target_class_kl_divergence)):
        if weight != 0:
            weighted.append(
                (
                    weight,
                    part(student_logits, teacher_logits, label, T),
                    part(student_logits, teacher_logits, label, T, wrt) if wrt else None,
                )
            )
    if wrt is None:
        return T * T * mpmath.fsum(weight * value for weight, value, _ in weighted)
    if wrt == "temperature":
        return mpmath.fsum(weight * (2 * T * value + T * T * grad) for weight, value, grad in weighted)
    return [
        T * T * mpmath.fsum(weight * grad[j] for weight, _, grad in weighted)
        for j in range(len(student_logits))
    ]


def _standardized_parts(logits, base_temperature, ddof, eps):
    """(u = x − x̄ on finite classes, s = standard deviation, n) of one row, or None without a finite class."""
    if any(mpmath.isnan(x) or x == mpmath.inf for x in logits):
        return None
    finite = [x for x in logits if mpmath.isfinite(x)]
    n = len(finite)
    if n - ddof <= 0:
        return None
    mean = mpmath.fsum(finite) / n
    centred = [x - mean if mpmath.isfinite(x) else None for x in logits]
    s = mpmath.sqrt(mpmath.fsum((u for u in centred if u is not None), squared=True) / (n - ddof))
    if s + eps == 0:
        return None
    return centred, s, n


def mp_standardize_logits(logits, base_temperature: Mpf = 1, ddof: int = 0, eps: Mpf = 0) -> list:
    r"""Sun et al.'s logit standardisation of one row: :math:`(x - \bar x)/(\tau(\sigma + \epsilon))` on finite
    classes (masked ones stay ``-inf``), σ with ``ddof``; NaN when undefined (σ + ε = 0, NaN or +inf)."""
    parts = _standardized_parts(logits, base_temperature, ddof, eps)
    if parts is None:
        return _nans(len(logits))
    centred, s, _ = parts
    scale = base_temperature * (s + eps)
    return [mpmath.ninf if u is None else u / scale for u in centred]


def mp_standardize_logits_vjp(
    logits, cotangent, base_temperature: Mpf = 1, ddof: int = 0, eps: Mpf = 0
) -> list:
    r"""Jᵀc: :math:`\frac{1}{\tau(\sigma+\epsilon)}\bigl(c - \bar c - u\,\langle u, c\rangle/((n - \mathrm{ddof})\,\sigma(\sigma+\epsilon))\bigr)`."""
    parts = _standardized_parts(logits, base_temperature, ddof, eps)
    if parts is None:
        return _nans(len(logits))
    centred, s, n = parts
    kept = [j for j, u in enumerate(centred) if u is not None]
    mean_c = mpmath.fsum(cotangent[j] for j in kept) / n
    inner = mpmath.fsum(centred[j] * cotangent[j] for j in kept)
    factor = inner / ((n - ddof) * s * (s + eps))
    scale = base_temperature * (s + eps)
    result = [mpmath.mpf(0)] * len(logits)
    for j in kept:
        result[j] = (cotangent[j] - mean_c - centred[j] * factor) / scale
    return result


# float64 in, float64 out ----------------------------------------------------------------------------


def reverse_kl_divergence(student_logits: object, teacher_logits: object, T: float = 1.0) -> np.ndarray:
    """KL(student ‖ teacher) per sample, shape (...)."""
    pair = _logit_pair(student_logits, teacher_logits)
    return _per_sample(mp_reverse_kl_divergence, pair, (), T=_positive(T, "T"))


def reverse_kl_divergence_grad(
    student_logits: object, teacher_logits: object, T: float = 1.0, wrt: str = "student"
) -> np.ndarray:
    """∂KL(p‖q)/∂z or /∂v per sample, shape (..., N); ∂/∂T per sample, shape (...)."""
    return _soft_grad(mp_reverse_kl_divergence_grad, student_logits, teacher_logits, T, wrt)


def reverse_kl_divergence_hessian(
    student_logits: object, teacher_logits: object, T: float = 1.0
) -> np.ndarray:
    """∂²KL(p‖q)/∂z² per sample, shape (..., N, N).

    The N-vectors p, 1 − p and u = T·∂KL(p‖q)/∂z are converged with adaptive precision; the N² entries are
    then J_ij (one exact product, rounded once, as in kl_divergence_hessian) plus (δ_ij u_i − u_i p_j − p_i u_j)/T²
    in float64 from the correctly rounded vectors: a few ulp of the largest term, normwise. (N² entries at
    full precision would take minutes for N = 1000; ``mp_reverse_kl_divergence_hessian`` is the exact form.)
    """
    pair = _logit_pair(student_logits, teacher_logits)
    n_classes = pair[0].shape[-1]

    def kernel(student_row, teacher_row, temperature):
        u = [temperature * g for g in mp_reverse_kl_divergence_grad(student_row, teacher_row, temperature)]
        complements = _probs_and_complements(student_row, teacher_row, temperature)
        return [[p, c, u_i] for (p, c), u_i in zip(complements, u, strict=True)]

    def finish(vectors, student_row, teacher_row, temperature):
        scaled = [p / (temperature * temperature) for p, _, _ in vectors]
        probs = np.array([to_float64(p) for p, _, _ in vectors])
        u = np.array([to_float64(u_i) for _, _, u_i in vectors])
        scale = to_float64(1 / (temperature * temperature))
        with np.errstate(over="ignore", invalid="ignore"):
            correction = (np.diag(u) - np.outer(u, probs) - np.outer(probs, u)) * scale
        matrix = []
        for i, (p_i, complement_i, _) in enumerate(vectors):
            row = [_product_to_float64(-p_i, s_j) for s_j in scaled]
            row[i] = _product_to_float64(scaled[i], complement_i)
            matrix.append((np.array(row) + correction[i]).tolist())
        return matrix

    return _per_sample(kernel, pair, (n_classes, n_classes), T=_positive(T, "T"), finish=finish)


def _unit_interval(value: object, name: str) -> float:
    number = _finite(value, name)
    if not 0 <= number <= 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return number


def _mixture_float64(mp_function, student_logits, teacher_logits, T, weight, weight_name, wrt):
    if wrt is not None:
        _check_wrt(wrt)
    pair = _logit_pair(student_logits, teacher_logits)
    weight = _unit_interval(weight, weight_name)
    result_shape = pair[0].shape[-1:] if wrt in ("student", "teacher") else ()

    def row_kernel(student_row, teacher_row, temperature):
        return mp_function(student_row, teacher_row, temperature, mpmath.mpf(weight), wrt)

    return _per_sample(row_kernel, pair, result_shape, T=_positive(T, "T"))


def skew_kl_divergence(student_logits, teacher_logits, T=1.0, skew=0.1, wrt=None) -> np.ndarray:
    """KL(q ‖ αq + (1 − α)p) per sample (or its derivative w.r.t. ``wrt``)."""
    return _mixture_float64(mp_skew_kl_divergence, student_logits, teacher_logits, T, skew, "skew", wrt)


def skew_reverse_kl_divergence(student_logits, teacher_logits, T=1.0, skew=0.1, wrt=None) -> np.ndarray:
    """KL(p ‖ αp + (1 − α)q) per sample (or its derivative w.r.t. ``wrt``)."""
    return _mixture_float64(
        mp_skew_reverse_kl_divergence, student_logits, teacher_logits, T, skew, "skew", wrt
    )


def jensen_shannon_divergence(student_logits, teacher_logits, T=1.0, beta=0.5, wrt=None) -> np.ndarray:
    """β KL(q ‖ M) + (1 − β) KL(p ‖ M), M = βq + (1 − β)p, per sample (or its derivative w.r.t. ``wrt``)."""
    return _mixture_float64(
        mp_jensen_shannon_divergence, student_logits, teacher_logits, T, beta, "beta", wrt
    )


def _dkd_float64(mp_function, student_logits, teacher_logits, labels, T, wrt, **weights):
    if wrt is not None:
        _check_wrt(wrt)
    pair = _logit_pair(student_logits, teacher_logits)
    labels = _labels(labels, pair[0].shape[:-1], pair[0].shape[-1])
    weights = {name: _finite(value, name) for name, value in weights.items()}
    result_shape = pair[0].shape[-1:] if wrt in ("student", "teacher") else ()

    def row_kernel(student_row, teacher_row, label, temperature):
        exact = {name: mpmath.mpf(value) for name, value in weights.items()}
        return mp_function(student_row, teacher_row, label, temperature, wrt=wrt, **exact)

    return _per_sample(row_kernel, pair, result_shape, labels=labels, T=_positive(T, "T"))


def target_class_kl_divergence(student_logits, teacher_logits, labels, T=1.0, wrt=None) -> np.ndarray:
    """DKD's TCKD per sample (no T²), or its derivative."""
    return _dkd_float64(mp_target_class_kl_divergence, student_logits, teacher_logits, labels, T, wrt)


def non_target_class_kl_divergence(student_logits, teacher_logits, labels, T=1.0, wrt=None) -> np.ndarray:
    """DKD's NCKD per sample (no T²), or its derivative."""
    return _dkd_float64(mp_non_target_class_kl_divergence, student_logits, teacher_logits, labels, T, wrt)


def decoupled_kd_loss(
    student_logits, teacher_logits, labels, T=4.0, alpha=1.0, beta=8.0, wrt=None
) -> np.ndarray:
    """T²(α TCKD + β NCKD) per sample, or its derivative."""
    return _dkd_float64(
        mp_decoupled_kd_loss, student_logits, teacher_logits, labels, T, wrt, alpha=alpha, beta=beta
    )


def standardize_logits(
    logits: object, base_temperature: float = 1.0, ddof: int = 0, eps: float = 0.0
) -> np.ndarray:
    """(x − x̄)/(τ(σ + ε)) per row over finite classes, shape (..., N)."""
    logits = _logits(logits, "logits")
    tau, epsilon = _positive(base_temperature, "base_temperature"), _finite(eps, "eps")

    def row_kernel(row):
        return mp_standardize_logits(row, mpmath.mpf(tau), int(ddof), mpmath.mpf(epsilon))

    return _per_sample(row_kernel, [logits], logits.shape[-1:])


def standardize_logits_vjp(
    logits: object, cotangent: object, base_temperature: float = 1.0, ddof: int = 0, eps: float = 0.0
) -> np.ndarray:
    """Jᵀc of :func:`standardize_logits` per row, shape (..., N)."""
    logits, cotangent = _logit_pair(logits, cotangent)
    tau, epsilon = _positive(base_temperature, "base_temperature"), _finite(eps, "eps")

    def row_kernel(row, cotangent_row):
        return mp_standardize_logits_vjp(row, cotangent_row, mpmath.mpf(tau), int(ddof), mpmath.mpf(epsilon))

    return _per_sample(row_kernel, [logits, cotangent], logits.shape[-1:])


# --------------------------------------------------------------------------------------------------
# Hessians of the mixture divergences and DKD w.r.t. the student logits, in closed form at the working
# precision (the closed forms are themselves checked against mpmath.diff of the oracle's gradient in
# tests/test_oracle_family.py). The row and column of the student's top class k are taken from the null
# space (H·1 = 0, an identity of any function of softmax(z)): formed directly, their entries would be the
# difference of numbers near p_k ≈ 1, which no working precision below log2(1/(1 − p_k)) bits resolves.
# --------------------------------------------------------------------------------------------------


def _sandwich(c: list, probs: list, total: Mpf, top: int) -> list:
    """(I − p1ᵀ) diag(c) (I − 1pᵀ): entries c_i δ_ij − c_i p_j − p_i c_j + total·p_i p_j off the top class."""
    n = len(c)
    matrix = [[mpmath.mpf(0)] * n for _ in range(n)]
    for i in range(n):
        if i == top:
            continue
        for j in range(n):
            if j != top:
                matrix[i][j] = (
                    (c[i] if i == j else 0) - c[i] * probs[j] - probs[i] * c[j] + total * probs[i] * probs[j]
                )
    for j in range(n):
        if j != top:
            matrix[top][j] = matrix[j][top] = -mpmath.fsum(matrix[i][j] for i in range(n) if i != top)
    matrix[top][top] = -mpmath.fsum(matrix[top][j] for j in range(n) if j != top)
    return matrix


def mp_mixture_hessian(student_logits, teacher_logits, T: Mpf, kind: str, weight: Mpf) -> list:
    r"""∂²L/∂z² of one row for ``kind`` in {"skew_kl", "skew_reverse_kl", "jsd"}:
    :math:`(I - p\mathbf 1^\top)\operatorname{diag}(y + u)(I - \mathbf 1 p^\top)/T^2` with u = T ∂L/∂z and
    y = p² ∂²L/∂p² (docs: kdcore/mixtures.py)."""
    n = len(student_logits)
    pair = _pair(student_logits, teacher_logits, T)
    if pair is None:
        return [_nans(n) for _ in range(n)]
    weight = mpmath.mpf(weight)
    u = [T * g for g in _mixture_loss(student_logits, teacher_logits, T, kind, weight, "student")]
    p, q = pair.student.probs, pair.teacher.probs
    y = []
    for p_i, q_i in zip(p, q, strict=True):
        if p_i == 0:
            y.append(mpmath.mpf(0))
        elif kind == "skew_kl":
            y.append((1 - weight) ** 2 * p_i**2 * q_i / (weight * q_i + (1 - weight) * p_i) ** 2)
        elif kind == "skew_reverse_kl":
            y.append((1 - weight) ** 2 * p_i * q_i**2 / (weight * p_i + (1 - weight) * q_i) ** 2)
        else:
            y.append(weight * (1 - weight) * p_i * q_i / (weight * q_i + (1 - weight) * p_i))
    c = [y_i + u_i for y_i, u_i in zip(y, u, strict=True)]
    matrix = _sandwich(c, p, mpmath.fsum(y), pair.student.top_index)
    return [[entry / (T * T) for entry in row] for row in matrix]


def mp_decoupled_kd_loss_hessian(
    student_logits, teacher_logits, label: int, T: Mpf = 4, alpha: Mpf = 1, beta: Mpf = 8
) -> list:
    r"""∂²/∂z² of T²(α TCKD + β NCKD) for one row: α(p_t p̄ w wᵀ − d J) + β J, J = diag p̂ − p̂p̂ᵀ, w = e_t − p̂."""
    n = len(student_logits)
    student, teacher = _tempered(student_logits, T), _tempered(teacher_logits, T)
    if student is None or teacher is None:
        return [_nans(n) for _ in range(n)]
    p, q = student.probs, teacher.probs
    p_rest = mpmath.fsum(p_i for i, p_i in enumerate(p) if i != label)
    p_hat = [mpmath.mpf(0) if i == label else p_i / p_rest for i, p_i in enumerate(p)]
    d = p[label] - q[label]
    w = [1 if i == label else -p_hat[i] for i in range(n)]
    top = max(range(n), key=lambda i: p_hat[i])
    jacobian = _sandwich(p_hat, p_hat, mpmath.mpf(1), top)
    alpha, beta = mpmath.mpf(alpha), mpmath.mpf(beta)
    return [
        [
            alpha * (p[label] * p_rest * w[i] * w[j] - d * jacobian[i][j]) + beta * jacobian[i][j]
            for j in range(n)
        ]
        for i in range(n)
    ]


def mixture_hessian(student_logits, teacher_logits, T=1.0, kind="jsd", weight=0.5) -> np.ndarray:
    """Per-sample Hessian (..., N, N) of the mixture divergence ``kind`` at ``weight`` (skew or β)."""
    pair = _logit_pair(student_logits, teacher_logits)
    weight = _unit_interval(weight, "weight")
    n_classes = pair[0].shape[-1]

    def row_kernel(student_row, teacher_row, temperature):
        return mp_mixture_hessian(student_row, teacher_row, temperature, kind, mpmath.mpf(weight))

    return _per_sample(row_kernel, pair, (n_classes, n_classes), T=_positive(T, "T"))


def decoupled_kd_loss_hessian(
    student_logits, teacher_logits, labels, T=4.0, alpha=1.0, beta=8.0
) -> np.ndarray:
    """Per-sample Hessian (..., N, N) of DKD w.r.t. the student logits."""
    pair = _logit_pair(student_logits, teacher_logits)
    labels = _labels(labels, pair[0].shape[:-1], pair[0].shape[-1])
    n_classes = pair[0].shape[-1]

    def row_kernel(student_row, teacher_row, label, temperature):
        return mp_decoupled_kd_loss_hessian(
            student_row, teacher_row, label, temperature, mpmath.mpf(alpha), mpmath.mpf(beta)
        )

    return _per_sample(row_kernel, pair, (n_classes, n_classes), labels=labels, T=_positive(T, "T"))
