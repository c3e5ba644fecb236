r"""The two parts of DKD row by row — TCKD and NCKD, values and derivatives — for ``kdcore/decoupled.py``.

Notation as in ``kdcore.decoupled``: target class t, :math:`\bar q = 1 - q_t` (summed, never subtracted),
:math:`\hat q_i = q_i/\bar q` the non-target distribution, and the same for the student. NCKD is the exact
forward KL of the rows with the target masked (``_match.match``); TCKD is the binary KL of
:math:`(q_t, \bar q)` and :math:`(p_t, \bar p)` from the log-odds difference :math:`\delta`.

The temperature derivative of the :math:`T^2`-scaled loss
-------------------------------------------------------
DKD multiplies its parts by :math:`T^2`. For a part D, :math:`\frac{d}{dT}(T^2 D) = T\,(2D - B)` with
:math:`B = -T\,\partial D/\partial T`. At high temperature :math:`D \approx c_2/T^2`, :math:`B \approx 2c_2/T^2`:
the two cancel to third order, and ``2T·D + T²·∂D/∂T`` loses a factor ~T of its relative precision
(2.6e-6 at T = 1e9). Written for the part's own centred log-ratio f under weights w (the teacher's
distribution), :math:`S = \sum_i w_i g(f_i)`, :math:`g(x) = e^x - 1 - x`, :math:`D = \operatorname{log1p} S`:

.. math::

    2D - \langle p - q, f\rangle = \frac{\sum_i w_i\,k(f_i) + 2\,\varphi_2(S)}{1 + S}, \qquad
    k(x) = 2g(x) - x\,(e^x - 1) = -\tfrac{x^3}{6} - \tfrac{x^4}{12} - \dots, \qquad
    \varphi_2(S) = (1 + S)\operatorname{log1p}S - S,

a sum of third-order terms, each to full relative precision. The rest of :math:`2D - B` is third order
too: for NCKD (a KL along the ray :math:`(z, v)/T`) it is :math:`-\sum_i \hat q_i(e^{f_i - D} - 1 - f_i)\,\tilde b_i`
(:math:`\tilde b` the centred tempered teacher logits); for TCKD, whose binary logits
:math:`\lambda = \log(q_t/\bar q)` are not linear in 1/T, it is
:math:`-d\,\bigl(H(\hat p) - H(\hat q)\bigr) + (d - c)\,\mathrm E_{\hat q}[(v - v_t)/T]`, with
:math:`d = p_t - q_t`, :math:`c = q_t\bar q\delta` (:math:`d - c = q_t(g(\bar q\delta - D) - D)` without cancellation), and the entropy difference
:math:`H(\hat p) - H(\hat q) = -\langle \hat p - \hat q, \tilde b\rangle - (\langle \hat p - \hat q, \hat f\rangle - \mathrm{NCKD})`.
Rows far from that regime (a log-odds difference above 1, masked classes) keep ``2T·D + T²·∂D/∂T``, which
does not cancel there.

The Hessians (w.r.t. the student logits)
----------------------------------------
With :math:`J = \operatorname{diag}\hat p - \hat p\hat p^\top` (0 in the target's row and column) and
:math:`w = e_t - \hat p`, :math:`T\,\partial\lambda_p/\partial z = w` and
:math:`T^2\,\partial^2\lambda_p/\partial z^2 = -J`, so

.. math::

    T^2\,\nabla^2\,\mathrm{TCKD} = p_t\bar p\;w w^\top - d\,J, \qquad T^2\,\nabla^2\,\mathrm{NCKD} = J .
"""

from __future__ import annotations

import numpy as np

from ._match import Match, match, student_gap
from ._mixture import softmax_sandwich
from ._numerics import exp_minus_one_minus_x, row_sum, take_along_last, third_order_gap
from .softmax import log_softmax


def _log_sum_without(log_probs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """log Σ_{i≠t} w_i from log-probabilities (finite even where the sum underflows), shape (rows, 1)."""
    masked = np.where(target, -np.inf, log_probs)
    peak = np.max(masked, axis=-1, keepdims=True)
    safe = np.where(np.isfinite(peak), peak, 0)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(peak), safe + np.log(row_sum(np.exp(masked - safe))), peak)


def _exact_rows(m: Match) -> np.ndarray:
    """(rows, 1): rows whose centred log-ratio f is exact on every class with mass (no log-domain fallback,
    finite KL, no class the student keeps and the teacher's softmax gives 0)."""
    ok = np.isfinite(m.kl)
    if m.fallback is not None:
        ok &= ~m.fallback
    if m.undefined is not None:
        ok &= ~m.undefined
    if m.both is not None:
        neither = (m.student_logits == -np.inf) & (m.teacher_probs == 0)
        ok &= np.all(m.both | neither, axis=-1, keepdims=True)
    return ok


def _nckd_t2_slope(m: Match, T: float) -> np.ndarray:
    """d/dT (T² NCKD) per row (rows, 1): T (2D − B) without cancellation where |f| ≤ 1 (module docstring)."""
    kl = m.kl
    plain = (2 * T) * kl + (T * T) * m.kl_temperature_grad()
    near = _exact_rows(m) & np.all(np.abs(m.log_ratio) <= 1, axis=-1, keepdims=True)
    if not near.any():
        return plain
    q = m.teacher_probs
    f = np.where(near, m.log_ratio, 0)
    safe_kl = np.where(near, kl, 0)
    second_order = q * (exp_minus_one_minus_x(f - safe_kl) - safe_kl)  # p − q − q f
    slope = third_order_gap(q, f) - row_sum(second_order * m.teacher_centred)
    return np.where(near, T * slope, plain)


def parts(z: np.ndarray, v: np.ndarray, labels: np.ndarray, T: float, want: tuple, wrts: tuple) -> dict:
    """{(part, wrt): result} for rows (rows, N) with labels (rows, 1): each wanted part ("tckd", "nckd") and
    each of ``wrts``: None (value, (rows, 1)), "student"/"teacher" (rows, N), "temperature" and
    "t2_temperature" (d/dT of T² part; (rows, 1)) or "hessian" (rows, N, N)."""
    target = np.arange(z.shape[-1]) == labels
    results = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rest = match(np.where(target, -np.inf, z), np.where(target, -np.inf, v), T)  # NCKD: target masked
        jacobian = None
        if "hessian" in wrts:
            p_hat = np.exp(log_softmax(rest.student_logits, T))
            jacobian = softmax_sandwich(p_hat, p_hat, np.ones(p_hat.shape[:-1], p_hat.dtype)) / (T * T)
        if "nckd" in want:
            nckd = {
                None: lambda: rest.kl,
                "student": lambda: rest.probs_diff() / T,
                "teacher": rest.kl_teacher_grad,
                "temperature": rest.kl_temperature_grad,
                "t2_temperature": lambda: _nckd_t2_slope(rest, T),
                "hessian": lambda: (
                    np.where(rest.undefined[..., None], np.nan, jacobian)
                    if rest.undefined is not None
                    else jacobian
                ),
            }
            for wrt in wrts:
                results["nckd", wrt] = nckd[wrt]()
        if "tckd" in want:
            for wrt, result in _tckd(z, v, target, labels, T, rest, wrts, jacobian).items():
                results["tckd", wrt] = result
    return results


def _tckd(z, v, target, labels, T, rest, wrts, jacobian) -> dict:
    r"""The binary KL between (q_t, q̄) and (p_t, p̄), q̄ = 1 − q_t, and its derivatives ``wrts``."""
    full = match(z, v, T)
    log_q, q = full.teacher_log_probs, full.teacher_probs
    log_p = log_softmax(full.student_logits, T)
    diff = full.probs_diff()
    pick = lambda x: take_along_last(x, labels[..., 0])  # noqa: E731
    q_t, d = pick(q), pick(diff)  # d = p_t − q_t = q̄ − p̄
    log_q_t, log_p_t = pick(log_q), pick(log_p)
    q_rest = row_sum(np.where(target, 0, q))  # q̄ = 1 − q_t, summed (no cancellation when q_t ≈ 1)
    log_q_rest, log_p_rest = _log_sum_without(log_q, target), _log_sum_without(log_p, target)
    exact = np.isfinite(full.kl) & np.isfinite(log_q_t) & np.isfinite(log_p_t)
    if full.fallback is not None:
        exact &= ~full.fallback
    # L_t = log(p_t/q_t) = f_t − KL exactly; L_r = log(p̄/q̄) = log1p(−d/q̄) where p̄ ≈ q̄.
    log_ratio_t = np.where(exact, pick(full.log_ratio) - np.where(exact, full.kl, 0), log_p_t - log_q_t)
    # (d = p − q is exact in every row, also where the match fell back to the log domain)
    close = (np.abs(d) <= q_rest / 2) & (q_rest > 0)
    log_ratio_rest = np.where(
        close, np.log1p(np.where(close, -d / np.where(close, q_rest, 1), 0)), log_p_rest - log_q_rest
    )
    # The student's minus the teacher's log-odds of the target: where p ≈ q its two terms have the same sign.
    log_odds = log_ratio_t - log_ratio_rest
    small = exact & (np.abs(log_odds) <= 1)
    safe_odds = np.where(small, log_odds, 0)
    # Binary KL in the form of kdcore/_match.py: f'_t = q̄ δ, f'_r = −q_t δ, KL = log1p(Σ b (e^f' − 1 − f')).
    series = np.log1p(
        q_t * exp_minus_one_minus_x(q_rest * safe_odds) + q_rest * exp_minus_one_minus_x(-q_t * safe_odds)
    )
    direct = -(
        np.where(q_t > 0, q_t * log_ratio_t, 0) + np.where(log_q_rest > -np.inf, q_rest * log_ratio_rest, 0)
    )
    value = np.where(small, series, direct)
    value = np.where(np.isnan(value) & ~np.isnan(full.kl), np.inf, value)
    undefined = full.undefined if full.undefined is not None else np.zeros_like(value, dtype=bool)
    results = {}
    if None in wrts:
        results[None] = np.where(undefined, np.nan, value)
    # T ∂/∂z: (d at t, −d p̂ elsewhere); T ∂/∂v: (−c at t, c q̂ elsewhere) with c = q_t q̄ δ.
    coupling = np.where((q_t > 0) & (q_rest > 0), q_t * q_rest * log_odds, 0)
    p_hat = np.where(target, 0, np.exp(log_p - log_p_rest))
    q_hat = rest.teacher_probs
    nan_rows = np.isinf(value) | undefined
    if "student" in wrts:
        results["student"] = np.where(nan_rows, np.nan, np.where(target, d, -d * p_hat) / T)
    if "teacher" in wrts:
        results["teacher"] = np.where(nan_rows, np.nan, np.where(target, -coupling, coupling * q_hat) / T)
    if "hessian" in wrts:
        w = np.where(target, 1, -p_hat)
        curvature = np.exp(log_p_t + log_p_rest)  # p_t p̄
        hessian = (curvature / (T * T))[..., None] * (w[..., :, None] * w[..., None, :]) - d[
            ..., None
        ] * jacobian
        results["hessian"] = np.where(nan_rows[..., None], np.nan, hessian)
    if "temperature" not in wrts and "t2_temperature" not in wrts:
        return results
    # −T ∂/∂T = −d·E_p̂[(z − z_t)/T] + c·E_q̂[(v − v_t)/T]. Near p = q both terms are first order and
    # cancel; then it is c·(E_q̂[f_t − f] + ⟨q̂ − p̂, (z − z_t)/T⟩) + (c − d)·E_p̂[(z − z_t)/T], with
    # c − d = q_t (KL − g(f'_t − KL)), g(x) = e^x − 1 − x: every term second order.
    student_gap_t = np.where(p_hat > 0, student_gap(full.student_logits, labels[..., 0], T), 0)
    student_mean = row_sum(p_hat * student_gap_t)
    teacher_gap_t = np.where(q_hat > 0, (full.teacher_shifted - pick(full.teacher_shifted)), 0)
    # (where q_t or q̄ is 0 the coupling is 0 and the teacher's logits, perhaps masked, do not enter)
    teacher_mean = row_sum(np.where(q_hat > 0, q_hat * teacher_gap_t, 0))
    plain = -d * student_mean + coupling * np.where(coupling != 0, teacher_mean, 0)
    f = full.log_ratio
    hat_diff = rest.probs_diff()  # p̂ − q̂
    f_t = pick(f)
    across = row_sum(q_hat * (f_t - f)) - row_sum(np.where(target, 0, hat_diff) * student_gap_t)
    f_target = q_rest * safe_odds
    excess = q_t * (value - exp_minus_one_minus_x(np.where(small, f_target - value, 0)))
    near = coupling * across + excess * student_mean
    slope = np.where(small, near, plain)  # B = −T ∂TCKD/∂T
    if "temperature" in wrts:
        results["temperature"] = np.where(nan_rows, np.nan, -slope / T)
    if "t2_temperature" in wrts:
        # T (2D − B) = T ([2D − dδ] − d ΔH + (d − c) E_q̂[(v − v_t)/T]) in the near rows (module docstring)
        third = small & _exact_rows(rest)
        odds = np.where(third, log_odds, 0)
        binary_weights = np.concatenate([q_t, q_rest], axis=-1)
        binary_f = np.concatenate([q_rest * odds, -q_t * odds], axis=-1)
        rest_kl = np.where(third, rest.kl, 0)
        rest_f = np.where(third, rest.log_ratio, 0)
        entropy_gap = -row_sum(hat_diff * rest.teacher_centred) - (row_sum(hat_diff * rest_f) - rest_kl)
        # (d − c = −excess, second order: formed as d − c it would cancel to the rounding error of d)
        gap = third_order_gap(binary_weights, binary_f) - d * entropy_gap - excess * teacher_mean
        t2 = np.where(third, T * gap, T * (2 * value - slope))
        results["t2_temperature"] = np.where(nan_rows, np.nan, t2)
    return results
