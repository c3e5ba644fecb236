r"""The accurate KL divergence from one distribution to its mixture with another, and its derivatives.

Skew KL, skew reverse KL and the generalised Jensen–Shannon divergence are all built from one quantity,

.. math::

    D_\lambda(a\,\|\,b) = \mathrm{KL}\bigl(a\,\|\,m\bigr), \qquad m = \lambda a + (1-\lambda) b,
    \qquad \lambda \in [0, 1],

with :math:`(a, b)` the teacher's and the student's distributions :math:`(q, p)` in either order:
skew KL is :math:`D_\alpha(q\|p)`, skew reverse KL :math:`D_\alpha(p\|q)`, and
:math:`\mathrm{JSD}_\beta = \beta D_\beta(q\|p) + (1-\beta) D_{1-\beta}(p\|q)`.

Why not ``sum(a * (log a - log m))``
------------------------------------
When the student is close to the teacher, :math:`\log a - \log m` is ~ε and D is ~ε²: the naive sum
cancels to noise, exactly as the naive forward KL does (kdcore/_match.py). Forming :math:`m` in log space
(``logsumexp`` of the two log-probabilities, as trl does) does not help: its rounding error is ~1e-16
absolute, the size of the whole divergence long before ε is 1e-8.

The formulation used here
-------------------------
Write :math:`h_i = \log b_i - \log a_i` and :math:`s_i = m_i/a_i - 1 = (1-\lambda)\operatorname{expm1}(h_i)`.
Since :math:`\sum_i a_i s_i = (1-\lambda)\sum_i (b_i - a_i) = 0`, the first-order term can be removed:

.. math::

    D_\lambda = -\sum_i a_i \operatorname{log1p}(s_i) = \sum_i a_i\,\varphi(s_i), \qquad
    \varphi(s) = s - \operatorname{log1p}(s) \ge 0,

a sum of non-negative terms with no cancellation. :math:`\varphi` is summed as its Taylor series
:math:`s^2/2 - s^3/3 + \dots` for :math:`|s| \le 0.1`; beyond, :math:`a_i\varphi(s_i)` is formed as
:math:`(1-\lambda)(b_i - a_i) - a_i \log(m_i/a_i)`, with :math:`b - a` from the exact
:meth:`Match.probs_diff` and :math:`\log(m_i/a_i) = \operatorname{logaddexp}(\log\lambda,
\log(1-\lambda) + h_i)` where :math:`s_i` overflows. :math:`h = f - \mathrm{KL}(q\|p)` (or its negative)
comes from the exact match of the two rows (``_match.py``), so every :math:`s_i` has full relative precision.
A class where :math:`a_i = 0` and :math:`b_i > 0` contributes :math:`(1-\lambda) b_i` (the limit of
:math:`a\varphi(s)`); where :math:`b_i = 0 < a_i`, :math:`s_i = -(1-\lambda)` and the term is
:math:`a_i(\log(1/\lambda) - (1 - \lambda))`, infinite only for :math:`\lambda = 0`.

Derivatives
-----------
With :math:`\rho_i = a_i/m_i` and :math:`t_i = 1 - \rho_i = s_i/(1+s_i)`, the partial derivatives are
:math:`\partial D/\partial a_i = -\log(1+s_i) + \lambda t_i + \text{const}` and
:math:`\partial D/\partial b_i = (1-\lambda) t_i + \text{const}`. Through the softmax,
:math:`T\,\partial D/\partial x_j = w_j (G_j - \sum_i w_i G_i)` for either side's logits x, distribution w
and partials G. The mean is centred on the class k with the largest :math:`w_k`,
:math:`(G_j - G_k) - \sum_{i \ne k} w_i (G_i - G_k)`, so that a dominant class (:math:`w_k = 1 - 10^{-30}`)
does not turn its own entry into the difference of two nearly equal numbers. And :math:`G_j - G_k` itself is
taken from whichever of several forms of G (equal up to a constant) is small at both classes: the form
above, 0 where a = b; :math:`\psi(c u) = cu/(1+cu) - \operatorname{log1p}(cu)` (a's side) and
:math:`c \cdot cu/(1+cu)` (b's side), 0 where :math:`u = b/a \to 0` (:math:`c = (1-\lambda)/\lambda`);
:math:`-(1-\lambda)\,a/m` (b's side), 0 where :math:`a/b \to 0`. At a low temperature both
distributions are one-hot and every other class sits in such a limit: there two classes' partials can agree
to 20 digits around a constant ≠ 0, and only a form that vanishes there keeps their difference.

For the temperature, :math:`-T\,\partial D/\partial T = \sum_i V_i` in one of two forms (equal in exact
arithmetic), chosen per row:

* rows where every class has :math:`|s_i| \le 1` (the student near the teacher):
  :math:`V_i = c^a_i\,a_i\varphi(s_i) + b_i H_i\,(c^b_i - c^a_i)`, with :math:`c = x/T - \langle w, x/T\rangle`
  each side's centred tempered logits, :math:`H = \partial D/\partial b`, and
  :math:`c^b - c^a = \pm(f - \langle p - q, z/T\rangle)` from the exact centred log-ratio f. Both terms are
  second order; the plain :math:`c^a a G + c^b b H` would cancel two first-order sums;
* other rows: :math:`V_i = c^a_i\,a_i (G_i - G_k) + c^b_i\,b_i (H_i - H_{k'})` with the differences above.
  Shifting by a constant is allowed because :math:`\sum_i c^a_i a_i = 0`; unshifted, the constant a partial
  tends to where one distribution vanishes would multiply that zero sum and leave its rounding error, far
  larger than a derivative that is itself ~1e-100 between two one-hot distributions. This form never
  multiplies a vanishing :math:`a_i` by the other side's huge centred logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._match import Match, match, student_gap
from ._numerics import row_sum, take_along_last
from .softmax import log_softmax

# Taylor coefficients (−1)^n / n of φ(s) = s − log1p(s) = Σ_{n≥2} (−1)^n s^n / n for |s| ≤ SERIES_RADIUS:
# the first omitted term, relative to s²/2, is 2·0.1^(n−2)/n — below eps64 from n = 18, eps32 from n = 9.
SERIES_RADIUS = 0.1
_PHI_SERIES = {
    8: tuple((-1) ** n / n for n in range(2, 19)),
    4: tuple((-1) ** n / n for n in range(2, 10)),
}


# ψ(x) = x/(1 + x) − log1p(x) = Σ_{n≥2} (−1)^{n+1} (n − 1)/n · x^n for |x| ≤ SERIES_RADIUS, where the two
# terms cancel (ψ ≈ −x²/2); same number of terms as φ's series (the coefficients are below 1 in size).
_PSI_SERIES = {
    8: tuple((-1) ** (n + 1) * (n - 1) / n for n in range(2, 19)),
    4: tuple((-1) ** (n + 1) * (n - 1) / n for n in range(2, 10)),
}


def _series(x: np.ndarray, table: dict) -> np.ndarray:
    coefficients = table[4 if x.dtype.itemsize <= 4 else 8]
    result = np.full_like(x, coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        result *= x
        result += x.dtype.type(coefficient)
    return result * x * x


def _psi(x: np.ndarray) -> np.ndarray:
    """x/(1 + x) − log1p(x) for x ≥ 0 (+inf allowed), without cancellation near 0."""
    small = x <= SERIES_RADIUS
    with np.errstate(invalid="ignore"):
        direct = np.where(x <= 1, x / (1 + x), 1 - 1 / (1 + x)) - np.log1p(x)
    direct = np.where(np.isposinf(x), -np.inf, direct)
    return np.where(small, _series(np.where(small, x, 0), _PSI_SERIES), direct)


def _softmax_vjp(
    probs: np.ndarray, log_probs: np.ndarray, representations: list
) -> tuple[np.ndarray, np.ndarray]:
    """(w ⊙ (G − Σ w G), G − G_k), centred on each row's most probable class k (see the module docstring).

    ``representations`` are arrays each equal to the partials G up to a constant per row (so that
    G_i − G_k is the same in every one), or None where a representation does not exist. Each is small in a
    different regime — 0 where the distributions agree, or in the limit where one of them vanishes — and
    G_i − G_k is taken, class by class, from the one in which |G_i| + |G_k| is smallest: its rounding error
    is then a few ulp of the difference itself, also where both G_i and G_k are close to a constant ≠ 0.
    """
    top = np.argmax(log_probs, axis=-1)
    relative = cost = None
    for partials in representations:
        reference = take_along_last(partials, top)
        difference = partials - reference
        size = np.abs(partials) + np.abs(reference)
        size = np.where(np.isfinite(difference), size, np.inf)
        if relative is None:
            relative, cost = difference, size
        else:
            better = size < cost
            relative, cost = np.where(better, difference, relative), np.where(better, size, cost)
    relative = np.where(log_probs > -np.inf, relative, 0)
    return probs * (relative - row_sum(probs * relative)), relative


@dataclass
class Pair:
    """The student and teacher distributions of checked logits (rows, N), for the mixture divergences."""

    T: float
    student_probs: np.ndarray
    teacher_probs: np.ndarray
    student_log_probs: np.ndarray
    teacher_log_probs: np.ndarray
    log_ratio: (
        np.ndarray
    )  # h = log p − log q (+inf where only p has mass, −inf where only q has, 0 if neither)
    probs_diff: np.ndarray  # p − q
    student_centred: np.ndarray  # z/T − E_p[z/T] on classes with student mass, 0 elsewhere
    teacher_centred: np.ndarray  # v/T − E_q[v/T] on classes with teacher mass, 0 elsewhere
    centred_diff: np.ndarray  # student_centred − teacher_centred, exact (valid where ``exact``)
    exact: np.ndarray  # (rows, 1): rows whose h and centred_diff come from the exact match
    undefined: np.ndarray | None  # (rows, 1): rows without a softmax (NaN results)


def pair(student: np.ndarray, teacher: np.ndarray, T: float) -> Pair:
    m: Match = match(student, teacher, T)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        student_log_probs = log_softmax(m.student_logits, T)
        teacher_log_probs = m.teacher_log_probs
        student_probs = np.exp(student_log_probs)
        teacher_probs = m.teacher_probs
        diff = m.probs_diff()
        student_mass = student_log_probs > -np.inf
        teacher_mass = teacher_log_probs > -np.inf
        kl = m.kl
        exact = np.isfinite(kl)
        if m.fallback is not None:
            exact &= ~m.fallback
        # Where the match is exact, log p − log q = f − KL to full precision; elsewhere (log-domain rows,
        # infinite forward KL) p and q differ by orders of magnitude and the plain difference loses nothing.
        direct = np.where(student_mass & teacher_mass, student_log_probs - teacher_log_probs, 0)
        log_ratio = np.where(exact, m.log_ratio - np.where(exact, kl, 0), direct)
        log_ratio = np.where(
            student_mass & teacher_mass,
            log_ratio,
            np.where(student_mass, np.inf, np.where(teacher_mass, -np.inf, 0)),
        )
        gap = m.gap
        gap = np.where(student_mass & np.isfinite(gap), gap, 0)
        # Centred on the student's own top class m, so that its entry Σ_{j≠m} p_j (z_m − z_j)/T is not the
        # difference of two nearly equal numbers when p_m ≈ 1.
        own_gap = student_gap(m.student_logits, np.argmax(student_log_probs, axis=-1), T)
        own_gap = np.where(student_mass & np.isfinite(own_gap), own_gap, 0)
        student_centred = np.where(student_mass, own_gap - row_sum(student_probs * own_gap), 0)
        teacher_centred = m.teacher_centred
        # (z/T − E_p z/T) − (v/T − E_q v/T) = f − ⟨p − q, z/T⟩, with f the exact centred log-ratio.
        centred_diff = m.log_ratio - row_sum(np.where(np.isfinite(diff), diff, 0) * gap)
    undefined = m.undefined
    if undefined is not None:
        exact &= ~undefined
    return Pair(
        T=T,
        student_probs=student_probs,
        teacher_probs=teacher_probs,
        student_log_probs=student_log_probs,
        teacher_log_probs=teacher_log_probs,
        log_ratio=log_ratio,
        probs_diff=diff,
        student_centred=student_centred,
        teacher_centred=teacher_centred,
        centred_diff=centred_diff,
        exact=exact,
        undefined=undefined,
    )


@dataclass
class MixtureKL:
    """D_λ(a ‖ b) = KL(a ‖ λa + (1 − λ)b) per row (rows, 1), with its three derivatives on demand."""

    value: np.ndarray
    _a_side: np.ndarray  # T ∂D/∂(a's logits)
    _b_side: np.ndarray  # T ∂D/∂(b's logits)
    _beta_derivative: np.ndarray  # −T ∂D/∂T, (rows, 1)
    anchor: str

    def derivative(self, wrt: str, T: float) -> np.ndarray:
        """∂D/∂z, ∂D/∂v (rows, N) or ∂D/∂T (rows, 1)."""
        if wrt == "temperature":
            return -self._beta_derivative / T
        student_is_a = self.anchor == "student"
        side = self._a_side if (wrt == "student") == student_is_a else self._b_side
        return side / T


def mixture_kl(pq: Pair, weight: float, other_weight: float, anchor: str) -> MixtureKL:
    """D_λ(a ‖ b) with λ = ``weight`` and 1 − λ = ``other_weight`` (both given, so that the JSD's two parts
    use one mixture to the last bit); ``anchor`` names a: "teacher" (a = q, b = p) or "student" (a = p, b = q).
    """
    dtype = pq.student_probs.dtype.type
    lam = dtype(weight)
    one_minus = dtype(other_weight)
    if anchor == "teacher":
        sign = 1
        a, b, log_a, log_b = pq.teacher_probs, pq.student_probs, pq.teacher_log_probs, pq.student_log_probs
        centred_a, centred_b = pq.teacher_centred, pq.student_centred
    else:
        sign = -1
        a, b, log_a, log_b = pq.student_probs, pq.teacher_probs, pq.student_log_probs, pq.teacher_log_probs
        centred_a, centred_b = pq.student_centred, pq.teacher_centred
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        h = sign * pq.log_ratio  # log b − log a
        b_minus_a = sign * pq.probs_diff
        a_mass, b_mass = log_a > -np.inf, log_b > -np.inf
        s = one_minus * np.expm1(h)  # m/a − 1: −(1 − λ) where b = 0, +inf where a = 0
        small = np.abs(s) <= SERIES_RADIUS
        moderate = np.abs(s) <= 0.5
        log_m_over_a = np.where(
            moderate,
            np.log1p(np.where(moderate, s, 0)),
            np.logaddexp(np.log(lam), np.log(one_minus) + h),
        )
        term = np.where(
            small, a * _series(np.where(small, s, 0), _PHI_SERIES), one_minus * b_minus_a - a * log_m_over_a
        )
        term = np.where(a_mass, term, np.where(b_mass, one_minus * b, 0))
        # t = s/(1 + s) = 1 − a/m, without inf/inf where a = 0
        t = np.where(np.abs(s) <= 1, s / (1 + s), 1 - 1 / (1 + s))
        t = np.where(a_mass, t, 1)
        a_partial = np.where(a_mass, lam * t - log_m_over_a, 0)  # ∂D/∂a − const
        b_partial = np.where(b_mass, one_minus * t, 0)  # ∂D/∂b − const
        b_term = np.where(b_mass, b * b_partial, 0)  # b ∂D/∂b
        value = row_sum(term)
        # The partials in the forms that are small where b/a → 0 (c = (1 − λ)/λ, u = b/a) and, for b's,
        # where a/b → 0: differences between two classes where b ≪ a (or a ≪ b) stay exact.
        a_forms, b_forms = [a_partial], [b_partial, np.where(b_mass, -one_minus / (1 + s), 0)]
        if weight > 0:
            cu = (one_minus / lam) * np.exp(h)
            ratio = np.where(cu <= 1, cu / (1 + cu), 1 - 1 / (1 + cu))
            a_forms.append(np.where(a_mass, _psi(cu), 0))
            b_forms.append(np.where(b_mass, (one_minus / lam) * ratio, 0))
        a_side, a_relative = _softmax_vjp(a, log_a, a_forms)
        b_side, b_relative = _softmax_vjp(b, log_b, b_forms)
        # −T ∂D/∂T = Σ_i V_i. Rows where every class has a ≈ b (|s| ≤ 1) take the Δ form; others the
        # per-side form with the partials relative to each side's top class (Σ_i c_i w_i = 0 allows any shift):
        # the shift removes the constant that both partials tend to where one distribution vanishes, which
        # would otherwise multiply Σ c_i w_i = 0 and leave its rounding error.
        has_mass = a_mass | b_mass
        near_class = a_mass & b_mass & (np.abs(s) <= 1)
        near_row = pq.exact & np.all(near_class | ~has_mass, axis=-1, keepdims=True)
        delta = np.where(has_mass, centred_a * term + b_term * (sign * pq.centred_diff), 0)
        per_side = np.where(a_mass, centred_a * a * a_relative, 0) + np.where(
            b_mass, centred_b * b * b_relative, 0
        )
        beta_derivative = row_sum(np.where(near_row, delta, per_side))
    infinite = np.isinf(value)
    if infinite.any():  # the derivatives of an infinite divergence are undefined
        a_side = np.where(infinite, np.nan, a_side)
        b_side = np.where(infinite, np.nan, b_side)
        beta_derivative = np.where(infinite, np.nan, beta_derivative)
    if pq.undefined is not None:
        value = np.where(pq.undefined, np.nan, value)
        a_side = np.where(pq.undefined, np.nan, a_side)
        b_side = np.where(pq.undefined, np.nan, b_side)
        beta_derivative = np.where(pq.undefined, np.nan, beta_derivative)
    return MixtureKL(value, a_side, b_side, beta_derivative, anchor)


# -- the three mixture divergences as sums of D_λ parts, per row ------------------------------------------


def parts(kind: str, pq: Pair, weight: float) -> list:
    """(coefficient, D) pairs whose weighted sum is the loss ``kind``; a part of coefficient 0 is absent."""
    if kind == "skew_kl":
        return [(1.0, mixture_kl(pq, weight, 1.0 - weight, "teacher"))]
    if kind == "skew_reverse_kl":
        return [(1.0, mixture_kl(pq, weight, 1.0 - weight, "student"))]
    terms = []
    if weight != 0:  # β KL(q ‖ M): M = β q + (1 − β) p
        terms.append((weight, mixture_kl(pq, weight, 1.0 - weight, "teacher")))
    if weight != 1:  # (1 − β) KL(p ‖ M): the same M seen from p, whose weight in it is 1 − β
        terms.append((1.0 - weight, mixture_kl(pq, 1.0 - weight, weight, "student")))
    return terms


def curvature(kind: str, pq: Pair, weight: float) -> np.ndarray:
    r"""y = p² ⊙ ∂²L/∂p² (the second partials w.r.t. the student's probabilities are diagonal), in a form
    without cancellation: :math:`(1-\alpha)^2 p^2 q/m^2` (skew KL), :math:`(1-\alpha)^2 p q^2/m^2` (skew
    reverse KL), :math:`\beta(1-\beta)\,p q/M` (JSD); 0 where the student has no mass. Its row sum is the
    Σc of ``softmax_sandwich`` (the gradient part sums to 0)."""
    p, q = pq.student_probs, pq.teacher_probs
    dtype = p.dtype.type
    lam, rest = dtype(weight), dtype(1.0 - weight)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "skew_kl":
            ratio = p / (lam * q + rest * p)
            y = rest * rest * q * ratio * ratio
        elif kind == "skew_reverse_kl":
            ratio = q / (lam * p + rest * q)
            y = rest * rest * p * ratio * ratio
        else:
            y = lam * rest * p * (q / (lam * q + rest * p))
    return np.where(p > 0, y, 0)


def _psi_of_log(log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ψ(w), log1p(w), w/(1 + w)) from log w, ψ(w) = w/(1 + w) − log1p(w), without overflow (w up to
    e^inf) and without cancellation near w = 0 (ψ summed as its series there)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        small = log_w <= np.log(SERIES_RADIUS)
        w = np.exp(np.where(small, log_w, -np.inf))
        softplus = np.logaddexp(0, log_w)  # log1p(w)
        sigmoid = 1 / (1 + np.exp(-log_w))  # w/(1 + w)
        psi = np.where(small, _series(w, _PSI_SERIES), sigmoid - softplus)
    return psi, softplus, sigmoid


def hessian_weights(kind: str, pq: Pair, weight: float, u: np.ndarray) -> np.ndarray:
    r"""c = y + u of ``softmax_sandwich`` (u = T ∂L/∂z), formed without its two terms cancelling.

    Where the student has far more mass than the teacher, y and u are both ~q_i and cancel to ~q_i·Σq_j
    (25 digits at T = 0.01). With w = (weight of q in the mixture)/(weight of p)·q/p and ψ(w) = w/(1+w) −
    log1p(w) (second order at w = 0), the first order cancels analytically:

    * JSD: :math:`c_i = (1-\beta)\,p_i\,(\psi(w_i) + \sum_j p_j \operatorname{log1p} w_j)`, :math:`w = \beta q/((1-\beta)p)`;
    * skew reverse KL: :math:`c_i = p_i\,(\psi(w_i) + \tfrac{w_i^2}{(1+w_i)^2} - \sum_j p_j\psi(w_j))`,
      :math:`w = (1-\alpha)q/(\alpha p)`;
    * skew KL: :math:`c_i = (1-\alpha)\,p_i\,(\sum_j p_j q_j/m_j - \alpha q_i^2/m_i^2)`.

    w comes from the exact log-ratio of the match, log w = log(ratio of weights) − (log p − log q). At the
    weights where w is undefined (α = 0, β = 0 or 1) the plain y + u is returned: there the divergence is
    the forward or reverse KL, or 0, whose y + u do not cancel this way.
    """
    p, q = pq.student_probs, pq.teacher_probs
    dtype = p.dtype.type
    lam, rest = dtype(weight), dtype(1.0 - weight)
    has_mass = p > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "skew_kl":
            q_over_m = np.where(q > 0, q / (lam * q + rest * p), 0)
            total = row_sum(np.where(has_mass, p * q_over_m, 0))
            c = rest * p * (total - lam * q_over_m * q_over_m)
        elif weight in (0.0, 1.0):
            return curvature(kind, pq, weight) + u
        else:
            ratio = lam / rest if kind == "jsd" else rest / lam
            psi, softplus, sigmoid = _psi_of_log(np.log(ratio) - pq.log_ratio)
            if kind == "jsd":
                c = rest * p * (psi + row_sum(np.where(has_mass, p * softplus, 0)))
            else:
                c = p * (psi + sigmoid * sigmoid - row_sum(np.where(has_mass, p * psi, 0)))
    return np.where(has_mass, c, 0)


def softmax_sandwich(c: np.ndarray, probs: np.ndarray, total: np.ndarray) -> np.ndarray:
    r""":math:`(I - p\mathbf 1^\top)\operatorname{diag}(c)(I - \mathbf 1 p^\top)` per row (rows, N, N), with
    ``total`` = Σ c given separately (so that a part known to sum to 0 adds no rounding to it).

    The entries are :math:`c_i\delta_{ij} - c_i p_j - p_i c_j + (\textstyle\sum c)\,p_i p_j`. The row and
    column of the most probable class k are not formed from that expression (where :math:`p_k \approx 1`
    it is the difference of nearly equal numbers) but from the null space, :math:`H\mathbf 1 = 0`:
    :math:`H_{kj} = -\sum_{i\ne k} H_{ij}` and :math:`H_{kk} = \sum_{i,j\ne k} H_{ij}`.
    """
    n = probs.shape[-1]
    top = np.argmax(probs, axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):
        hessian = -(c[..., :, None] * probs[..., None, :])
        hessian += np.swapaxes(hessian, -1, -2)
        hessian += total[..., None, None] * (probs[..., :, None] * probs[..., None, :])
        index = np.arange(n)
        hessian[..., index, index] += c
        off_top = (index != top[..., None])[..., :, None] & (index != top[..., None])[..., None, :]
        hessian = np.where(off_top, hessian, 0)
        column = -np.sum(hessian, axis=-2)  # H_kj for j ≠ k (0 at j = k)
        top_row = index == top[..., None]  # (rows, N)
        hessian += np.where(top_row[..., :, None], column[..., None, :], 0)
        hessian += np.where(top_row[..., None, :], column[..., :, None], 0)
        corner = -np.sum(column, axis=-1)
        hessian += np.where(top_row[..., :, None] & top_row[..., None, :], corner[..., None, None], 0)
    return hessian


def mixture_rows(kind: str, z: np.ndarray, v: np.ndarray, T: float, weight: float, wants: tuple) -> tuple:
    """The loss ``kind`` of rows (rows, N) in one pass: for each entry of ``wants`` its value (None), a
    derivative ("student", "teacher", "temperature") or the student Hessian ("hessian"), from one match."""
    pq = pair(z, v, T)
    dtype = z.dtype.type
    terms = parts(kind, pq, weight)
    outputs = []
    for wrt in wants:
        per_class = wrt in ("student", "teacher", "hessian")
        total = np.zeros(z.shape if per_class else (*z.shape[:-1], 1), dtype=z.dtype)
        for coefficient, part in terms:
            derivative = "student" if wrt == "hessian" else wrt
            total += dtype(coefficient) * (part.value if wrt is None else part.derivative(derivative, T))
        if wrt == "hessian":  # T²H = (I − p1ᵀ) diag(y + u) (I − 1pᵀ), u = T ∂L/∂z (kdcore/hessians.py)
            c = hessian_weights(kind, pq, weight, total * dtype(T))
            total = softmax_sandwich(c, pq.student_probs, row_sum(curvature(kind, pq, weight))[..., 0])
            total /= dtype(T * T)
        if pq.undefined is not None:
            undefined = pq.undefined[..., None] if wrt == "hessian" else pq.undefined
            total = np.where(undefined, np.nan, total)
        outputs.append(total if per_class else total[..., 0])
    return tuple(outputs)
