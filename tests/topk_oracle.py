r"""A high-precision mpmath oracle for the top-k teacher losses (kdcore.topk), written from the definitions.

It never imports kdcore. Each loss is written exactly as its convention defines it — the naive
``Σ q (log q − log p)`` over the distributions compared — and evaluated with the adaptive precision of
tests/oracle.py (start at 50+ digits, raise until two evaluations agree to 30 digits), which is what makes a
naive formula exact: when the student is close to the teacher the cancellation only costs digits, and the
precision grows until enough are left. Derivatives are *not* written out: they are ``mpmath.diff`` of the
value (a high-precision finite difference), so the oracle is independent of the closed forms in the
docstrings, which the tests check separately.

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
    if wrt == "temperature":
        return mpmath.diff(lambda t: loss(tt=t), T)
    if wrt == "student":
        point, replace = z, lambda x, j: loss(zz=[*z[:j], x, *z[j + 1 :]])
    else:
        point, replace = values, lambda x, j: loss(vv=[*values[:j], x, *values[j + 1 :]])

    # A masked (−inf) entry has derivative 0: its probability is 0 on both sides of any change. Beyond |x| = 1
    # the step is |x|·2^-prec: mpmath's default (2^-prec) would vanish next to a logit of 1e300.
    def step(x):
        return {"h": mpmath.ldexp(abs(x), -mpmath.mp.prec)} if abs(x) > 1 else {}

    return [
        mpmath.mpf(0) if x == NEG_INF else mpmath.diff(lambda y, j=j: replace(y, j), x, **step(x))
        for j, x in enumerate(point)
    ]


def topk_loss(student, values, indices, T=1.0, convention="renormalized", ce=False, wrt=None) -> np.ndarray:
    """The loss (``wrt=None``) or its derivative per position, float64, from float64 inputs; no reduction."""
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
        results.append([to_float64(x) for x in value] if isinstance(value, list) else to_float64(value))
    width = {None: (), "temperature": (), "student": student.shape[-1:], "teacher": values.shape[-1:]}[wrt]
    return np.array(results, dtype=np.float64).reshape(leading + width)
