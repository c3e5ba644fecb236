r"""A high-precision mpmath oracle for the top-k teacher losses (kdcore.topk), written from the definitions.

It never imports kdcore. Each loss is written exactly as its convention defines it — the naive
``Σ q (log q − log p)`` over the distributions compared — and evaluated with the adaptive precision of
tests/oracle.py (start at 50+ digits, raise until two evaluations agree to 30 digits), which is what makes a
naive formula exact: when the student is close to the teacher the cancellation only costs digits, and the
precision grows until enough are left. Derivatives are *not* written out: they are ``mpmath.diff`` of the
value (a high-precision finite difference), so the oracle is independent of the closed forms in the
docstrings, which the tests check separately. Hessians w.r.t. the student are the closed forms of
docs/math.md §20 at working precision (nesting mpmath.diff over V² entries is too slow for every case); the
nested differences are kept as ``wrt="hessian by diff"``, and tests/test_topk.py checks that they agree.

Conventions (notation of kdcore.topk): student logits z (V), stored values (k) at classes K, temperature T.

* renormalized: KL(softmax_K(v/T) ‖ softmax_K(z/T)).
* dense_student: Σ_K q̂_i (log q̂_i − log softmax(z/T)_i), q̂ = softmax_K(v/T).
* tail (T = 1, values are log-probabilities a): buckets (e^{a_K}, 1 − Σ e^a) against (p_K, 1 − P_K); a
  teacher whose stored probabilities sum to within 64·k·2^-52 of 1 (rounding) has an empty tail and is
  renormalised; k = V has no tail at all (renormalised).

Soft cross-entropy: −Σ_b q_b log p_b over the same buckets.
"""

from __future__ import annotations

import mpmath
import numpy as np
from oracle import _converged, _starting_precision, to_float64

NEG_INF = mpmath.mpf("-inf")


def _lse(xs):
    """log Σ e^x as (top, log1p part): the two are never added, so that (x − top) − part keeps a part of
    e^-700 next to a top of 2500 (``top + part`` rounds it away below ~1000 bits, at every precision alike:
    the adaptive precision of tests/oracle.py could not notice)."""
    finite = [x for x in xs if x != NEG_INF]
    if not finite:
        return NEG_INF, mpmath.mpf(0)
    top = max(finite)
    rest = list(finite)
    rest.remove(top)
    return top, mpmath.log1p(mpmath.fsum(mpmath.exp(x - top) for x in rest))


def _log_probs(xs, normaliser):
    top, part = normaliser
    return [(x - top) - part if x != NEG_INF else NEG_INF for x in xs]


def _distributions(z, values, indices, T, convention):
    """(teacher log-probs, student log-probs) over the buckets the convention compares."""
    V, k = len(z), len(values)
    if convention == "tail" and k < V:
        mass = mpmath.fsum(mpmath.exp(a) for a in values)
        normaliser = _lse(z)
        student = _log_probs([z[i] for i in indices], normaliser)
        rest = [z[j] for j in range(V) if j not in set(indices)]
        if (
            mass >= 1 - 64 * k * mpmath.mpf(2) ** -52
        ):  # within rounding of 1: no tail (kdcore._topk.mass_tolerance)
            return [a - mpmath.log(mass) for a in values], student
        tail = _lse(rest)
        student_tail = (
            NEG_INF if tail[0] == NEG_INF else (tail[0] - normaliser[0]) + (tail[1] - normaliser[1])
        )
        return [*values, mpmath.log(1 - mass)], [*student, student_tail]
    teacher = [v / T for v in values]
    student = [z[i] / T for i in indices]
    everything = [x / T for x in z] if convention == "dense_student" else student
    return _log_probs(teacher, _lse(teacher)), _log_probs(student, _lse(everything))


def mp_loss(z, values, indices, T, convention, ce=False):
    teacher, student = _distributions(z, values, indices, T, convention)
    total = mpmath.mpf(0)
    for lq, lp in zip(teacher, student, strict=True):
        if lq == NEG_INF:
            continue
        if lp == NEG_INF:
            return mpmath.inf
        total += mpmath.exp(lq) * (-lp if ce else lq - lp)
    return total


def _row_result(z, values, indices, T, convention, ce, wrt):
    def loss(zz=z, vv=values, tt=T):
        return mp_loss(zz, vv, indices, tt, convention, ce)

    if wrt is None:
        return loss()
    # A derivative far smaller than the loss (a whole gradient row of 1e-227 next to a loss of 1e-3, at
    # T = 1e-3) changes the loss by less than the working precision resolves: the difference quotient is
    # exactly 0 at every precision, and the adaptive precision could not notice. Such a result (a change of
    # at most 2^-40 of the loss over the step's scale, max(|x|, 1)) is taken again with enough extra bits to
    # resolve any float64 number next to the loss (2^-1075 of it); larger ones are resolved to ~prec bits.
    value = loss()
    size = int(mpmath.mag(value)) if mpmath.isfinite(value) and value else None
    extra = {"addprec": 1100 + max(size or 0, 0)}

    # With logits so large that any two that differ do so by more than 2000·T (|x|·2^-53 > 2000·T), every
    # factor exp(−gap/T) is 1 or below e^-2000: a result that small is 0 in float64 next to anything, and the
    # re-evaluation (at thousands of bits there) would change nothing.
    magnitude = max([mpmath.mpf(0), *(abs(x) for x in [*z, *values] if mpmath.isfinite(x))])
    coarse = mpmath.ldexp(magnitude, -53) > 2000 * T

    def unresolved(results, point):
        if coarse:
            return False
        largest = max((abs(x) for x in results), default=mpmath.mpf(0))
        scale = max([mpmath.mpf(1), *(abs(x) for x in point if mpmath.isfinite(x))])
        return size is not None and largest * scale <= mpmath.ldexp(abs(value), -40)

    if wrt == "temperature":
        result = mpmath.diff(lambda t: loss(tt=t), T)
        return mpmath.diff(lambda t: loss(tt=t), T, **extra) if unresolved([result], [T]) else result
    if wrt == "hessian":
        return _closed_form_hessian(z, values, indices, T, convention)
    if wrt == "hessian by diff":
        return _hessian(z, values, indices, T, convention, ce)
    if wrt == "student":
        point, replace = z, lambda x, j: loss(zz=[*z[:j], x, *z[j + 1 :]])
    else:
        point, replace = values, lambda x, j: loss(vv=[*values[:j], x, *values[j + 1 :]])

    def gradient(**options):
        return [
            mpmath.mpf(0)
            if x == NEG_INF
            else mpmath.diff(lambda y, j=j: replace(y, j), x, **step(x, T), **options)
            for j, x in enumerate(point)
        ]

    result = gradient()
    return gradient(**extra) if unresolved(result, point) else result


def step(x, T):
    """mpmath.diff's step at x: |x|·2^-prec, or T·2^-prec if larger, or 2^-prec (its default, 2^-(prec +
    addprec)). The loss sees x/T: next to a logit of 1e300, or at x = 0 with T = 1e150, the default step
    would change x/T by less than the working precision resolves. A masked (−inf) entry is never
    differentiated: its probability is 0 on both sides of any change, so every derivative in it is 0."""
    scale = max(abs(x), T)
    return {"h": mpmath.ldexp(scale, -mpmath.mp.prec)} if scale > 1 else {}


def _hessian(z, values, indices, T, convention, ce):
    """∂²L/∂z_i∂z_j: mpmath.diff of order 2 on the diagonal, nested first-order diffs off it (symmetric)."""
    V = len(z)
    hessian = [[mpmath.mpf(0)] * V for _ in range(V)]

    def loss(changes):
        """The loss at z with entries replaced: ``changes`` maps a class to its new logit."""
        return mp_loss([changes.get(i, x) for i, x in enumerate(z)], values, indices, T, convention, ce)

    finite = [i for i in range(V) if z[i] != NEG_INF]
    for i in finite:
        hessian[i][i] = mpmath.diff(lambda x, i=i: loss({i: x}), z[i], 2, **step(z[i], T))
        for j in (j for j in finite if j > i):

            def inner(y, i=i, j=j):
                return mpmath.diff(lambda x: loss({i: x, j: y}), z[i], **step(z[i], T))

            hessian[i][j] = hessian[j][i] = mpmath.diff(inner, z[j], **step(z[j], T))
    return hessian


def _closed_form_hessian(z, values, indices, T, convention):
    """The Hessians of docs/math.md §20 at working precision, from the definitions of p, p̂, p̄ and q_t:
    J(p̂)/T² on K (renormalized), J(p)/T² (dense_student), J(p) − q_t J(p̄) (tail). Checked against the
    nested ``mpmath.diff`` of :func:`_hessian` in tests/test_topk.py (``TestOracle``), which is too slow
    (V² second differences at 3–4 times the working precision) for every case of tests/topk_cases.py."""
    V, k = len(z), len(values)
    if convention == "tail" and k < V:
        log_p = _log_probs(z, _lse(z))
        p = [mpmath.exp(x) for x in log_p]
        stored = set(indices)
        mass = mpmath.fsum(mpmath.exp(a) for a in values)
        empty = mass >= 1 - 64 * k * mpmath.mpf(2) ** -52  # kdcore._topk.mass_tolerance, as in _distributions
        tail_weight = mpmath.mpf(0) if empty else 1 - mass
        rest = [j for j in range(V) if j not in stored]
        tail_lse = _lse([z[j] for j in rest])
        within = [mpmath.mpf(0)] * V  # p̄: the student's distribution within the tail
        if tail_lse[0] != NEG_INF:
            for j, x in zip(rest, _log_probs([z[j] for j in rest], tail_lse), strict=True):
                within[j] = mpmath.exp(x)
        return _jacobian_sum([(1, p), (-tail_weight, within)], 1)
    scaled = [x / T for x in z]
    if convention == "dense_student" and k < V:
        log_p = _log_probs(scaled, _lse(scaled))
        return _jacobian_sum([(1, [mpmath.exp(x) for x in log_p])], T)
    gathered = [scaled[i] for i in indices]
    renormalized = [mpmath.mpf(0)] * V
    for i, x in zip(indices, _log_probs(gathered, _lse(gathered)), strict=True):
        renormalized[i] = mpmath.exp(x)
    return _jacobian_sum([(1, renormalized)], T)


def _jacobian_sum(terms, T):
    """Σ_terms weight·(diag s − s sᵀ), divided by T²."""
    V = len(terms[0][1])
    return [
        [
            mpmath.fsum(w * ((s[i] if i == j else 0) - s[i] * s[j]) for w, s in terms) / (T * T)
            for j in range(V)
        ]
        for i in range(V)
    ]


def topk_loss(student, values, indices, T=1.0, convention="renormalized", ce=False, wrt=None) -> np.ndarray:
    """The loss (``wrt=None``), its derivative, or its Hessian w.r.t. the student logits (``wrt="hessian"``:
    the closed form; ``"hessian by diff"``: nested mpmath.diff of the loss) per position, float64, from
    float64 inputs; no reduction."""
    student, values = np.asarray(student, np.float64), np.asarray(values, np.float64)
    indices = np.asarray(indices)
    leading = student.shape[:-1]
    rows = zip(
        student.reshape(-1, student.shape[-1]).tolist(),
        values.reshape(-1, values.shape[-1]).tolist(),
        indices.reshape(-1, indices.shape[-1]).tolist(),
        strict=True,
    )
    results = []
    for z_row, v_row, k_row in rows:
        precision = _starting_precision([z_row, v_row], T)
        with mpmath.workprec(precision):
            z_mp, v_mp, t_mp = [mpmath.mpf(x) for x in z_row], [mpmath.mpf(x) for x in v_row], mpmath.mpf(T)
        arguments = (z_mp, v_mp, k_row, t_mp, convention, ce, wrt)
        value, _ = _converged(lambda arguments=arguments: _row_result(*arguments), precision)
        if wrt in ("hessian", "hessian by diff"):
            results.append([[to_float64(x) for x in row] for row in value])
        else:
            results.append([to_float64(x) for x in value] if isinstance(value, list) else to_float64(value))
    width = {
        None: (),
        "temperature": (),
        "student": student.shape[-1:],
        "teacher": values.shape[-1:],
        "hessian": student.shape[-1:] * 2,
        "hessian by diff": student.shape[-1:] * 2,
    }[wrt]
    return np.array(results, dtype=np.float64).reshape(leading + width)
