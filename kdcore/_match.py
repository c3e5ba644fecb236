r"""The accurate comparison of a student's and a teacher's tempered softmax, shared by all soft losses.

Notation (as everywhere in kdcore): student logits :math:`z`, teacher logits :math:`v`, temperature
:math:`T`, student probabilities :math:`p = \operatorname{softmax}(z/T)`, teacher probabilities
:math:`q = \operatorname{softmax}(v/T)`.

Why not ``sum(q * (log q - log p))``
------------------------------------
When the student is close to the teacher, ``log q − log p`` is a difference of two nearly equal numbers of
size ~1, so each term carries an absolute error of ~1e-16 while KL itself may be 1e-25: the naive sum
returns noise (often negative). The same happens at high temperature, where every ``z/T`` is tiny.

The formulation used here
-------------------------
For a given teacher, KL depends on the student only through :math:`d = (z - v)/T`, and only up to a
constant shift of :math:`d` (:math:`p_i/q_i = e^{d_i}/\sum_j q_j e^{d_j}`); the teacher enters through
:math:`q` as well, so two pairs with the same :math:`d` but different :math:`v` have different KLs.
Centre :math:`d` under the teacher, :math:`f_i = d_i - \sum_j q_j d_j` (so :math:`\sum_i q_i f_i = 0`). Then
:math:`\log p_i - \log q_i = f_i - \mathrm{KL}` and :math:`\sum_i p_i = 1` give

.. math::

    \mathrm{KL}(q\,\|\,p) = \log \sum_i q_i e^{f_i}
                        = \operatorname{log1p}\Bigl(\sum_i q_i\,(e^{f_i} - 1 - f_i)\Bigr),

because the removed first-order term :math:`\sum_i q_i f_i` is exactly 0. Every term
:math:`q_i\,(e^{f_i}-1-f_i) \ge 0` is computed to full relative precision (a Taylor series for small
:math:`f_i`, see ``_numerics.exp_minus_one_minus_x``), the sum has no cancellation, and ``log1p`` keeps
the result's relative precision down to the smallest KL float64 can hold. The formula is stationary in
the centring constant (an error :math:`\delta` in it changes the sum only by :math:`O(\delta\,f)`), so
rounding in the centre costs nothing at leading order. The difference ``z − v`` is formed with an
error-free transformation (``two_difference``) so that a large offset common to both logit vectors does not
round the small differences away. Identical inputs give exactly 0.

The same pieces give every derivative without cancellation:
:math:`p_i - q_i = q_i\,\operatorname{expm1}(f_i - \mathrm{KL})` and
:math:`\partial\mathrm{KL}/\partial v_i = -q_i f_i/T`.

Rows where this cannot be evaluated in floating point (a teacher probability below the smallest normal
number paired with a large :math:`|f_i|`, or terms beyond ``exp``'s range) are recomputed in the log
domain: :math:`\mathrm{KL} = \operatorname{softplus}(\operatorname{LSE}_i[\log q_i + \log(e^{f_i}-1-f_i)])`.

The fast path, and why its certificate is sound
-----------------------------------------------
This algorithm is the *careful* path. Every soft loss first runs the few-pass kernel of ``kdcore/_fast.py``
(teacher softmax, :math:`f = d - c` with any :math:`c`, :math:`\mathrm{KL} = \operatorname{log1p}(\sigma) - r`
with :math:`\sigma = \sum q\operatorname{expm1}(f)` and :math:`r = \sum q f`, and
:math:`p - q = q\,(\operatorname{expm1}(f) - \sigma)/(1 + \sigma)`), and recomputes here only the rows whose
certificate fails. The certificate is sound because (``kdcore/_certificate.py`` derives every term):

* both paths compute the teacher's exponentials with the same operations, so they evaluate the same
  function of the same rounded teacher; the certificate bounds the *difference* the fast path adds;
* that difference is a sum of first-order rounding terms — of :math:`d`, :math:`f`, ``expm1`` (its ulp
  accuracy is checked in the tests), products, float64-accumulated sums (their rounding count is bounded
  by the summation order: NumPy's pairwise sum for float64 rows, any order of the n − 1 additions for
  float32 rows), the normalisation of :math:`q`, underflowed teacher probabilities and
  ``log1p`` — each a constant times a per-row size the kernel computes anyway (:math:`\max f`,
  :math:`\min f`, :math:`\sigma`, :math:`r`, :math:`c`, :math:`\sum q f^2`, :math:`\max|p - q|`);
* the choice of :math:`c` cannot matter (the formulas are exact for any shift), so a fast, inaccurate
  centre costs nothing, and ``expm1`` makes every term scale with :math:`\sum q|f| \le \sqrt{\sum q f^2}`,
  so the bound is tight enough to pass every ordinary row;
* the bound is compared with half the contract (5e-13 relative, normwise for the gradient; 1e-4 in
  float32, where accuracy is an observed property of both paths — see ``_certificate``), leaving the other half to this algorithm's own error (≤ 6e-14 against the oracle) and to the
  second-order terms (~u², negligible); NaN, overflow and masked classes make the bound NaN or infinite,
  which never passes.

Rows that fail — near-equal rows (KL ≲ 1e-5), large logit offsets, extreme temperatures, masks — are the
regimes this module was written for.

Masks
-----
A class whose teacher probability is 0 (logit ``-inf``, or a tempered gap so large that
:math:`\log q_i = -\infty` in floating point) but whose student logit is finite still takes student mass:
it enters the sum as :math:`e^{x_i}`, :math:`x_i = \log q_k + (z_i - z_k)/T - c` (``k`` the teacher's top class
and ``c`` the centring constant). A class masked in both contributes nothing. A class the student masks
but the teacher gives mass makes :math:`\mathrm{KL} = +\infty`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._numerics import (
    exp_minus_one_minus_x,
    log_exp_minus_one_minus_x,
    row_sum,
    take_along_last,
    tempered_difference,
    two_difference,
)
from .softmax import _tempered


def _underflow_safe_product(
    probs: np.ndarray, log_probs: np.ndarray, x: np.ndarray, product: np.ndarray
) -> np.ndarray:
    """``product`` (= probs·x) with the entries whose probability is subnormal or 0 but whose log is finite
    recomputed as sign(x)·exp(log p + log|x|): e^{-746}·1e300 = 1e-24 is a normal number."""
    underflow = (probs < np.finfo(product.dtype).tiny) & (log_probs > -np.inf) & (x != 0) & np.isfinite(x)
    if not underflow.any():
        return product
    with np.errstate(divide="ignore", over="ignore"):
        accurate = np.sign(x) * np.exp(
            np.where(underflow, log_probs + np.log(np.abs(np.where(underflow, x, 1))), 0)
        )
    return np.where(underflow, accurate, product)


def _extent(x: np.ndarray) -> float:
    """max |x| from two reductions (no |x| temporary)."""
    return max(abs(float(np.max(x))), abs(float(np.min(x))))


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), accurate for every x."""
    with np.errstate(over="ignore"):
        return np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(np.minimum(x, 0))))


@dataclass
class Match:
    """Everything the soft losses and their derivatives need, for student and teacher logits (..., N).

    Per-sample arrays keep a trailing axis of length 1 so that they broadcast against (..., N).
    """

    T: float
    teacher_log_probs: np.ndarray
    teacher_probs: np.ndarray
    log_ratio: np.ndarray  # f: centred tempered log-ratio, log(p/q) + KL, on classes in both; 0 elsewhere
    student_only: np.ndarray | None  # classes with student mass but teacher probability 0
    student_only_log_mass: np.ndarray | None  # x_i on those classes (−inf elsewhere)
    both: np.ndarray | None  # classes where both logits are finite and the teacher has mass (None: all)
    teacher_shifted: np.ndarray  # (v − max v)/T
    centre: np.ndarray  # (..., 1): the centring constant c of f (relative to the top class k)
    top: np.ndarray  # (...): k, the teacher's top class
    kl: np.ndarray  # (..., 1)
    infinite: np.ndarray | None  # (..., 1): KL = +inf (teacher mass on a class the student rules out)
    fallback: np.ndarray | None  # (..., 1): rows computed in the log domain (huge |f|)
    undefined: np.ndarray | None  # (..., 1): NaN input, +inf, or every class masked
    student_logits: np.ndarray

    # -- derived quantities, computed on demand -------------------------------------------------------

    @cached_property
    def teacher_entropy(self) -> np.ndarray:
        """H(q) = −Σ q log q, shape (..., 1)."""
        q = self.teacher_probs
        with np.errstate(invalid="ignore"):
            entropy = -row_sum(np.where(q > 0, q * self.teacher_log_probs, 0))
        return self._nan_rows(entropy)

    @cached_property
    def teacher_centred(self) -> np.ndarray:
        """v/T − E_q[v/T] on classes with teacher mass, 0 elsewhere.

        Formed from the shifted tempered logits: log q + H, equal in exact arithmetic, cancels at high T,
        where log q ≈ −log N ≈ −H and the difference is ~1/T.
        """
        has_mass = self.teacher_log_probs > -np.inf
        shifted = np.where(has_mass, self.teacher_shifted, 0)
        return np.where(has_mass, shifted - row_sum(self.teacher_probs * shifted), 0)

    @cached_property
    def gap(self) -> np.ndarray:
        """(z_i − z_k)/T: the student's tempered logits relative to the teacher's top class k (−inf if masked)."""
        return student_gap(self.student_logits, self.top, self.T)

    @cached_property
    def vanishing_offset(self) -> np.ndarray:
        """(z_i − z_k)/T − c + (v_k/T − E_q[v/T]): what multiplies p_i in β ∂KL/∂β on a class with q_i = 0.

        On such a class f_i and v_i/T are both huge (or infinite) while their sum is not; this form never
        adds them (see kl_temperature_grad).
        """
        top_centred = take_along_last(self.teacher_centred, self.top)
        with np.errstate(invalid="ignore"):
            return self.gap - self.centre + top_centred

    def probs_diff(self) -> np.ndarray:
        r""":math:`p - q`, accurate when :math:`p \approx q` (no subtraction of nearly equal numbers).

        Where :math:`p_i \le e^{1/2} q_i`, :math:`p_i - q_i = q_i\,\operatorname{expm1}(f_i - \mathrm{KL})`
        has full relative precision. Elsewhere :math:`p_i` and :math:`q_i` differ by more than a factor 1.6
        and their plain difference loses nothing; the same holds in rows whose :math:`|f|` is beyond the
        range where :math:`f_i - \mathrm{KL}` is accurate (log-domain and infinite rows).
        """
        kl = np.where(np.isfinite(self.kl), self.kl, 0)
        exponent = self.log_ratio - kl
        near = exponent <= 0.5
        diff = self.teacher_probs * np.expm1(np.minimum(exponent, 0.5))
        if self.both is not None:
            diff = np.where(self.both, diff, 0)
            if self.student_only is not None:
                diff = np.where(self.student_only, np.exp(self.student_only_log_mass - kl), diff)
        far = ~near
        if far.any():
            # p_i > e^{1/2} q_i: nothing cancels in p_i − q_i, and p_i = exp(log q_i + f_i − KL) is accurate
            # wherever f and KL are (the student's own softmax is not needed).
            with np.errstate(over="ignore", invalid="ignore"):
                student_far = np.exp(np.minimum(self.teacher_log_probs + np.where(far, exponent, 0), 0))
            diff = np.where(far, student_far - self.teacher_probs, diff)
        direct = self.infinite
        if self.fallback is not None:
            # In log-domain rows f, c or KL may be huge, and f − KL then carries a large absolute error; the
            # forms above are kept only where all three are moderate (their error is eps·(|f| + |c| + KL)).
            moderate = (np.abs(self.log_ratio) <= 1e3) & (np.abs(self.centre) <= 1e3) & (self.kl <= 1e3)
            unreliable = self.fallback & ~moderate
            direct = unreliable if direct is None else direct | unreliable
        if direct is not None and direct.any():
            diff = np.where(direct, self.student_probs() - self.teacher_probs, diff)
        return self._nan_rows(diff)

    def student_probs(self) -> np.ndarray:
        parts = _tempered(self.student_logits, self.T)
        return parts.exp_shifted / (1 + parts.rest)

    def kl_teacher_grad(self) -> np.ndarray:
        r""":math:`\partial\mathrm{KL}/\partial v = -q \odot f / T` (:math:`f` centred, so rows sum to 0)."""
        grad = -self._times_teacher_probs(self.log_ratio) / self.T
        return self._nan_rows(self._nan_if_infinite(grad))

    def entropy_teacher_grad(self) -> np.ndarray:
        r""":math:`\partial H(q)/\partial v = -q \odot (\log q + H)/T`."""
        return self._nan_rows(-self._times_teacher_probs(self.teacher_centred) / self.T)

    def kl_temperature_grad(self) -> np.ndarray:
        r""":math:`\partial\mathrm{KL}/\partial T`, per sample, shape (..., 1).

        With :math:`\beta = 1/T` and :math:`D = p - q`:

        .. math::

            \beta\,\frac{\partial \mathrm{KL}}{\partial\beta} = \sum_i D_i f_i
                + \sum_i (D_i - q_i f_i)(\log q_i + H) + \sum_{i:\,q_i=0} p_i\,(x_i + H),
            \qquad \frac{\partial \mathrm{KL}}{\partial T} = -\frac{1}{T}\,\beta\,\frac{\partial\mathrm{KL}}{\partial\beta}.

        :math:`D_i - q_i f_i = q_i\,(e^{f_i-\mathrm{KL}} - 1 - f_i)` is second order in :math:`f` and is
        computed as :math:`q_i\,(g(f_i - \mathrm{KL}) - \mathrm{KL})` with :math:`g(x) = e^x - 1 - x`,
        so nothing cancels when the student is close to the teacher.
        """
        q, f = self.teacher_probs, self.log_ratio
        kl = np.where(np.isfinite(self.kl), self.kl, 0)  # rows with infinite KL are set to NaN below
        diff = self.probs_diff()
        small = np.abs(f) <= 1
        second_order = np.where(
            small, q * (exp_minus_one_minus_x(np.where(small, f - kl, 0)) - kl), diff - q * f
        )
        centred_log_q = self.teacher_centred
        terms = diff * f + second_order * centred_log_q
        if self.both is not None:
            terms = np.where(self.both, terms, 0)
        # Where q_i is 0 in floating point (masked, or underflowed with a finite log q_i), the terms above
        # cancel (f_i and v_i/T huge); the same quantity is p_i·(gap_i − c + v_k/T − E_q[v/T]).
        vanishing = self.teacher_probs == 0
        if self.both is not None or self.fallback is not None or vanishing.any():
            vanishing &= np.isfinite(self.student_logits)
            if vanishing.any():
                terms = np.where(vanishing, self._vanishing_terms(diff, vanishing), terms)
        beta_dkl_dbeta = row_sum(terms)
        return self._nan_rows(self._nan_if_infinite(-beta_dkl_dbeta / self.T))

    def _times_teacher_probs(self, x: np.ndarray) -> np.ndarray:
        """q ⊙ x, also where q underflows but q·x does not (see ``_underflow_safe_product``)."""
        with np.errstate(invalid="ignore"):
            product = self.teacher_probs * x
        if np.min(self.teacher_probs) < np.finfo(product.dtype).tiny:
            product = _underflow_safe_product(self.teacher_probs, self.teacher_log_probs, x, product)
        return product

    def _vanishing_terms(self, diff: np.ndarray, vanishing: np.ndarray) -> np.ndarray:
        r"""The temperature-derivative terms of classes whose q_i underflows: p_i o_i − q_i (o_i + f_i c_i).

        With o the :attr:`vanishing_offset` and c = v/T − E_q[v/T]. p_i is ``diff`` there; q_i is 0 in
        floating point but its log is finite, and q_i·|o_i| or q_i·|f_i c_i| can still be a normal number
        (e.g. q_i = e^{-746}, f_i = −1e300), so those products are formed in the log domain.
        """
        offset = self.vanishing_offset
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            terms = diff * offset
            log_q = np.where(vanishing, self.teacher_log_probs, -np.inf)
            product = self.log_ratio * self.teacher_centred
            for factor, log_size in (
                (offset, np.log(np.abs(offset))),
                (product, np.log(np.abs(self.log_ratio)) + np.log(np.abs(self.teacher_centred))),
            ):
                correction = np.sign(factor) * np.exp(log_q + log_size)
                terms = terms - np.where(np.isfinite(log_q) & np.isfinite(correction), correction, 0)
        return terms

    def entropy_temperature_grad(self) -> np.ndarray:
        r""":math:`\partial H(q)/\partial T = \operatorname{Var}_q(v/T)/T = \sum_i q_i(\log q_i + H)^2 / T`."""
        centred = self.teacher_centred
        return self._nan_rows(row_sum(self.teacher_probs * centred * centred) / self.T)

    # -- helpers ----------------------------------------------------------------------------------------

    def _nan_if_infinite(self, values: np.ndarray) -> np.ndarray:
        # The derivative of an infinite loss w.r.t. the teacher or T is undefined.
        return values if self.infinite is None else np.where(self.infinite, np.nan, values)

    def _nan_rows(self, values: np.ndarray) -> np.ndarray:
        return values if self.undefined is None else np.where(self.undefined, np.nan, values)


def match(
    student_logits: np.ndarray, teacher_logits: np.ndarray, T: float, *, low: np.ndarray | None = None
) -> Match:
    """Compute the :class:`Match` of checked logits of one shape and float dtype (class axis last).

    ``low`` (optional, finite, the logits' shape) is a low-order part of the student–teacher difference:
    the difference taken is ``(z − v) + low``, exactly. ``kdcore.topk`` passes it for a tail bucket whose
    two logits are double-double numbers (``_double_double``); it is 0 everywhere else.
    """
    student, teacher = student_logits, teacher_logits
    dtype = student.dtype
    info = np.finfo(dtype)
    # Beyond this, e^f and friends overflow; such rows go to the log-domain fallback.
    exp_limit = dtype.type(0.95 * np.log(info.max))

    # One cheap reduction each decides whether anything is non-finite (a finite sum means no NaN or inf;
    # a sum that overflows merely sends us down the careful path).
    with np.errstate(over="ignore", invalid="ignore"):
        all_finite = bool(np.isfinite(np.sum(student)) and np.isfinite(np.sum(teacher)))
    undefined = None
    if not all_finite:
        # Samples with NaN, +inf or no unmasked class have no softmax: compute them on zeros, report NaN.
        undefined = ~np.isfinite(np.max(student, axis=-1, keepdims=True)) | ~np.isfinite(
            np.max(teacher, axis=-1, keepdims=True)
        )
        if undefined.any():
            student = np.where(undefined, 0, student)
            teacher = np.where(undefined, 0, teacher)
        else:
            undefined = None

    unmasked_student = student  # kept for p itself where KL is infinite
    teacher_parts = _tempered(teacher, T)
    teacher_log_probs = teacher_parts.shifted - np.log1p(teacher_parts.rest)
    teacher_probs = teacher_parts.exp_shifted / (1 + teacher_parts.rest)
    top = np.argmax(teacher_parts.shifted, axis=-1)

    both = student_only = infinite = None
    if not all_finite or np.min(teacher_log_probs) == -np.inf:
        student_finite = np.isfinite(student)
        teacher_has_mass = teacher_log_probs > -np.inf
        if not (student_finite.all() and teacher_has_mass.all()):
            both = student_finite & teacher_has_mass
            student_only = student_finite & ~teacher_has_mass
            # A finite teacher logit means q_i > 0 in exact arithmetic, even if it underflows: where the
            # student rules that class out (p_i = 0), q_i log(q_i / p_i) = +inf.
            infinite = np.any(np.isfinite(teacher) & ~student_finite, axis=-1, keepdims=True)
            # Masked entries are replaced by 0 so that no inf − inf is ever formed; their results are set below.
            student = np.where(student_finite, student, 0)
            teacher = np.where(np.isfinite(teacher), teacher, 0)
            if not student_only.any():
                student_only = None

    # d_i − d_k with d = (z − v)/T, k the teacher's top class: the student–teacher difference z − v is
    # split exactly into s + e (two_difference), then differences of it are taken, then divided by T. Logits far
    # from the float range's end (the usual case) need no quartering against overflow.
    extent = max(_extent(student), _extent(teacher))
    safe = extent < info.max / 16  # then z − v cannot overflow, and neither can the differences below
    if safe:
        s, e = two_difference(student, teacher)
    else:
        s, e = two_difference(student * 0.25, teacher * 0.25)
    if low is not None:
        e += low if safe else low * 0.25
    s -= take_along_last(s, top)
    e -= take_along_last(e, top)
    s += e
    del e
    with np.errstate(over="ignore"):
        s /= dtype.type(T)
        if not safe:
            s *= 4
    log_ratio = s
    if both is not None:
        log_ratio = np.where(both, log_ratio, 0)
    if not safe or 4 * extent / T > info.max / 4:
        overflow = ~np.all(np.isfinite(log_ratio), axis=-1, keepdims=True)
        if overflow.any():
            # A tempered logit difference beyond the float range: KL overflows too (documented).
            infinite = overflow if infinite is None else infinite | overflow
            log_ratio = np.where(overflow, 0, log_ratio)
    tiny_teacher = np.min(teacher_probs) < info.tiny
    weighted = teacher_probs * log_ratio
    if tiny_teacher:
        # q_i below the normal range times a huge log-ratio can still be a normal number (e^{-746}·1e300):
        # such products are formed in the log domain, or the centre (and with it every f_i) would miss them.
        weighted = _underflow_safe_product(teacher_probs, teacher_log_probs, log_ratio, weighted)
    centre = row_sum(weighted)
    del weighted
    log_ratio -= centre
    if both is not None:
        log_ratio = np.where(both, log_ratio, 0)

    # The main path: KL = log1p(Σ q (e^f − 1 − f) + Σ_{q=0} e^x).
    large_ratio = np.max(log_ratio) > exp_limit
    terms = exp_minus_one_minus_x(np.minimum(log_ratio, exp_limit) if large_ratio else log_ratio)
    terms *= teacher_probs
    total = row_sum(terms)
    del terms
    needs_log_domain = None
    if tiny_teacher or large_ratio:
        needs_log_domain = (log_ratio > exp_limit) | ((teacher_probs < info.tiny) & (np.abs(log_ratio) > 1))
    student_only_log_mass = None
    if student_only is not None:
        student_only_log_mass = np.where(
            student_only, _log_mass(student, top, teacher_log_probs, centre, T), -np.inf
        )
        too_large = student_only_log_mass > exp_limit
        needs_log_domain = too_large if needs_log_domain is None else needs_log_domain | too_large
        total = total + row_sum(np.exp(np.minimum(student_only_log_mass, exp_limit)))
    with np.errstate(over="ignore"):
        kl = np.log1p(total)
    fallback = ~np.isfinite(total)
    if needs_log_domain is not None:
        fallback |= np.any(needs_log_domain, axis=-1, keepdims=True)
    fallback = fallback[..., 0]
    if fallback.any():
        rows_log_probs = teacher_log_probs[fallback]
        kl[fallback] = _log_domain_kl(
            rows_log_probs,
            log_ratio[fallback],
            _log_mass(student[fallback], top[fallback], rows_log_probs, centre[fallback], T),
            None if both is None else both[fallback],
            None if student_only is None else student_only[fallback],
        )
    if infinite is not None:
        kl = np.where(infinite, np.inf, kl)
        if not infinite.any():
            infinite = None
    if undefined is not None:
        kl = np.where(undefined, np.nan, kl)

    return Match(
        T=T,
        teacher_log_probs=teacher_log_probs,
        teacher_probs=teacher_probs,
        teacher_shifted=teacher_parts.shifted,
        log_ratio=log_ratio,
        student_only=student_only,
        student_only_log_mass=student_only_log_mass,
        centre=centre,
        top=top,
        both=both,
        kl=kl,
        infinite=infinite,
        fallback=fallback[..., None] if fallback.any() else None,
        undefined=undefined,
        student_logits=unmasked_student,
    )


def student_gap(student: np.ndarray, top: np.ndarray, T: float) -> np.ndarray:
    """(z_i − z_k)/T for every class, k = ``top`` (masked classes give −inf, without warnings)."""
    reference = take_along_last(student, top)
    with np.errstate(over="ignore", invalid="ignore"):
        gap = tempered_difference(student, np.where(np.isfinite(reference), reference, 0), T)
    return gap


def _log_mass(
    student: np.ndarray, top: np.ndarray, teacher_log_probs: np.ndarray, centre: np.ndarray, T: float
) -> np.ndarray:
    """x_i = log q_i + f_i = (z_i − z_k)/T + log q_k − c, formed without log q_i or f_i (either may be huge)."""
    return student_gap(student, top, T) + take_along_last(teacher_log_probs, top) - centre


def _log_domain_kl(
    teacher_log_probs: np.ndarray,
    log_ratio: np.ndarray,
    log_mass: np.ndarray,
    both: np.ndarray | None,
    student_only: np.ndarray | None,
) -> np.ndarray:
    """KL = softplus(LSE_i log-terms), for rows whose terms under- or overflow in the linear domain.

    Takes and returns rows (..., N) -> (..., 1) like :func:`match`.
    """
    with np.errstate(invalid="ignore"):
        log_terms = teacher_log_probs + log_exp_minus_one_minus_x(log_ratio)
        # For large f, log q_i + log(e^f − 1 − f) = log q_i + f_i + log1p(−(1 + f_i) e^{−f_i}); log q_i and f_i
        # may both be ~1e300 with a moderate sum x_i = log q_i + f_i = gap_i + log q_k − c (``log_mass``),
        # which is computed without them.
        large = log_ratio > 30
        safe_ratio = np.where(large, log_ratio, 31)
        log_terms = np.where(large, log_mass + np.log1p(-(1 + safe_ratio) * np.exp(-safe_ratio)), log_terms)
    if both is not None:
        log_terms = np.where(both, log_terms, -np.inf)
    if student_only is not None:  # classes with student mass only: their term is e^{x_i}
        log_terms = np.where(student_only, log_mass, log_terms)
    peak = np.max(log_terms, axis=-1, keepdims=True)
    safe_peak = np.where(np.isfinite(peak), peak, 0)
    with np.errstate(divide="ignore"):  # all terms 0 (f = 0 everywhere): log 0 = −inf, KL = 0
        lse = safe_peak + np.log(row_sum(np.exp(log_terms - safe_peak)))
    lse = np.where(np.isneginf(peak), -np.inf, np.where(np.isposinf(peak), np.inf, lse))
    return _softplus(lse)
