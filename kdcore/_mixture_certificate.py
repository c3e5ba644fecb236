r"""The per-row certificate of the mixture family's fast path: when its few-pass result is as good as the careful one.

The fast path (``kdcore/_fast_mixture.py``) computes, per row, with :math:`q = \hat e/\hat S` the teacher's
rounded softmax, :math:`f = (z - v)/T - c` (any centre :math:`c`), :math:`\sigma = \sum q\operatorname{expm1} f`
and :math:`\ell = \operatorname{log1p}\sigma`, the log-ratio :math:`h = \log p - \log q = f - \ell`, then

.. math::

    g = \operatorname{expm1}(h) = p/q - 1, \qquad r = e^{h} = p/q, \qquad p = q\,r,

and each mixture divergence as a sum of the non-negative terms of ``kdcore/_mixture.py``,
:math:`D_\lambda(a\|b) = \sum_i a_i\varphi(s_i)`, :math:`\varphi(s) = s - \operatorname{log1p}(s)`, with
:math:`s = (1-\lambda)\,g` when the anchor is the teacher (:math:`a = q`) and
:math:`s = (1-\lambda)\operatorname{expm1}(-h) = -(1-\lambda)\,g/r` when it is the student (:math:`a = p`).
The student gradient is :math:`\gamma = \kappa\, p \odot (G - \bar G)`, :math:`\bar G = \sum p G`, with
:math:`G = \partial L/\partial p` (up to a constant): :math:`(1-\alpha)\,t` for skew KL,
:math:`\alpha t - \operatorname{log1p}(s)` for skew reverse KL, :math:`-(1-\beta)\operatorname{log1p}(s_p)` for
the JSD (:math:`t = s/(1+s)`), and :math:`\kappa` the caller's scale (1/T, over the batch for a mean).

What is certified
-----------------
As for the KL kernel (``kdcore/_certificate.py``): both paths compute the teacher's exponentials with the
same operations, so the reference is the exact value for that rounded teacher :math:`\tilde q` and the exact
:math:`d = (z - v)/T`; the certificate bounds, to first order in the unit roundoff :math:`u`, everything the
fast path adds beyond that, and a row is certified when the bound is at most ``CERTIFIED_RTOL`` of the value
(and, for a gradient, of :math:`\max_i|\gamma_i|`, the normwise measure of the accuracy contract). The value
and the gradient are judged separately, so a row's value is the same whether or not its gradient was asked
for. Failing rows are recomputed by ``_mixture.mixture_rows``.

Constants: :math:`u` the input dtype's unit roundoff, :math:`w = 2^{-53}` (sums accumulate in float64),
:math:`\epsilon = 8u` for NumPy's ``exp``/``expm1``/``log1p`` (4 ulp, checked in ``tests/test_certificate.py``),
:math:`m` the roundings of a pairwise float64 sum (``summation_roundings``, and at most :math:`n - 1`, the most
additions one term can take part in in any order), :math:`F = \max|f|`,
:math:`C = |c|`, :math:`H = F + |\ell| \ge \max|h|`.

The error of the log-ratio, :math:`\Delta_h \ge |\delta h_i|`
--------------------------------------------------------------
* :math:`d` (a subtraction and a division) and :math:`f = d - c`: :math:`|\delta f_i| \le 3u|f_i| + 2uC \le
  \Phi = 3uF + 2uC`;
* :math:`q = \hat e\cdot(1/\hat S)`: relative :math:`\theta = \theta_r + u`, where :math:`\theta_r = (m + 1)w + u`
  (the sum, its reciprocal and the cast) scales the whole row alike and :math:`u` is the product's;
* :math:`\sigma`: :math:`\sum q e^f|\delta f| \le (1 + \sigma)\Phi` from :math:`f`, :math:`\theta_r|\sigma|` from
  the row-wide scale of :math:`q` (a common factor of every term), and :math:`(\epsilon + 2u + m w)E_1` from
  ``expm1``, the roundings of :math:`q` and of the products, and the sum, with
  :math:`E_1 = \sum q|\operatorname{expm1} f| \le |\sigma| + 2\min(1, F)` (the negative terms are at most
  :math:`\min(1, |f|)` each, and :math:`\sigma` is their difference with the positive ones); teacher
  probabilities in the subnormal range add :math:`n t (1 + e^F)` (:math:`t` the smallest subnormal);
* :math:`\ell = \operatorname{log1p}\sigma` in float64: :math:`|\delta\sigma|/(1 + \sigma) + 8w|\ell|`;
* :math:`h = f - \ell`: the cast of :math:`\ell` and the subtraction, :math:`u|\ell| + u(F + |\ell|)`.

So :math:`\Delta_h = 2\Phi + \bigl(\theta_r|\sigma| + (\epsilon + 2u + m w)E_1 + n t(1 + e^F) + w(1 + |\sigma|)\bigr)/(1 + \sigma)
+ (8w + 2u)|\ell| + uF`. :math:`g` and :math:`r` are ``expm1`` and ``exp`` of the *same* rounded :math:`h`, so
they are consistent functions of it, each with its own relative error :math:`\epsilon`; :math:`p = q r` has
relative error :math:`\rho_p = \theta + \Delta_h + \epsilon + u`.

The value, term by term
-----------------------
For one part :math:`D_\lambda(a\|b)`, with :math:`\rho_s` the relative rounding of :math:`s` (:math:`\epsilon + 2u`
for :math:`s = (1-\lambda)g`; :math:`2\epsilon + 3u` for :math:`-(1-\lambda)g/r`) and :math:`\rho_a` that of
:math:`a` (:math:`\theta` for :math:`q`, :math:`\rho_p` for :math:`p`):

* :math:`h`'s error moves :math:`s` by :math:`|ds/dh|\Delta_h = (1 - \lambda + s)\Delta_h \le (1 + s)\Delta_h`
  and :math:`\varphi` by :math:`|t|(1 + s)\Delta_h = |s|\Delta_h` (:math:`\varphi' = t`);
* the rounding of :math:`s` moves :math:`\varphi` by :math:`\rho_s|t||s| \le \rho_s\,\omega|s|`, where
  :math:`\omega = 1/\min(1, 1 + s_{\min}) \ge |t|` (for :math:`s \ge 0`, :math:`t < 1`; for :math:`s < 0`,
  :math:`|t| < 1/(1 + s)`);
* ``log1p``: :math:`\epsilon|\operatorname{log1p}s| \le \epsilon\,\omega|s|`; the subtraction :math:`u\varphi`;
* :math:`a` and the product :math:`(\rho_a + u)\,a\varphi`; the float64 sum :math:`m w D`.

With :math:`A = \sum a|s| = (1 - \lambda)\sum_i|p_i - q_i|` (the same for both anchors, so one weighted sum
:math:`\sum q|g|` serves every part), the bound is :math:`A(\Delta_h + (\rho_s + \epsilon)\,\omega) +
(\rho_a + 2u + m w)D` plus the subnormal products :math:`n t\,((1 + e^H)^2 (1 + H) + 1)`. :math:`s_{\min}`
comes from :math:`\min f` or :math:`\max f` (:math:`1 + s = \lambda + (1-\lambda)e^{\pm h}`), so
:math:`\omega` costs no pass. Every term is a multiple of :math:`A \approx \sqrt{2D}/(1-\lambda)` or of
:math:`D`: the relative error grows like :math:`u/\sqrt D`, as the KL kernel's does, and rows with a student
close to its teacher (:math:`D \lesssim 10^{-5}` in float64), offsets, extreme temperatures, masks (an
infinite :math:`F`), NaN or :math:`H` beyond half of ``exp``'s range fail.

The gradient
------------
:math:`|\delta\gamma_i| \le \kappa(|\delta p_i||G_i - \bar G| + p_i|\delta G_i| + p_i|\delta\bar G|) + 4u|\gamma_i|`:

* :math:`|\delta p_i||G_i - \bar G| \le \rho_p\,|\gamma_i|/\kappa`;
* :math:`p_i|\delta G_i|`, per loss from :math:`|dG/ds| \le (1-\lambda)/(1+s)^2` (skew KL) or
  :math:`\le 1/(1 + s)` (the others) times :math:`|\delta s| \le (1 + s)\Delta_h + \rho_s|s|`, the rounding of
  ``log1p`` (:math:`\epsilon|\operatorname{log1p}s| \le \epsilon H`: :math:`|\operatorname{log1p}s| = |\log(m/a)| \le
  |h|`) and of :math:`t`: at most :math:`p_i\Gamma_p` with :math:`\Gamma_p = (1-\alpha)\,\omega(\Delta_h +
  \rho_s\omega)` (skew KL), :math:`\Delta_h + \rho_s\omega + \epsilon H + 3u\alpha\omega` (skew reverse KL),
  :math:`(1-\beta)(\Delta_h + \rho_s\omega + \epsilon H)` (JSD), plus the roundings of forming :math:`G`,
  :math:`4u`, :math:`u`, :math:`2u` times :math:`p_i|G_i|`;
* for the largest entry, :math:`p_i\Gamma_p \le \min(P\,\Gamma_p, Q\,\Gamma_q)` with :math:`P = \max p` (one max
  pass), :math:`Q = 1/\hat S = \max q` and, for skew KL only, :math:`\Gamma_q = \Delta_h + \rho_s\omega`: there
  :math:`p/(1 + s) = pq/m \le q/(1 - \alpha)`, so the class where :math:`1 + s` is smallest need not be the one
  where :math:`p` is largest; in the roundings of :math:`G`, :math:`p_i|G_i| \le |\gamma_i|/\kappa + p_i|\bar G|`;
* :math:`\bar G = \sum p G/\sum p` (so that the row sums to 0 up to the rounding of its entries; the common scale
  of :math:`p` cancels), :math:`|\delta\bar G| \le (\rho_p + u + m w)\,\Sigma_G + \min(\Gamma_p, \Gamma_q) + (4u, u,
  2u)\,\Sigma_G + (\rho_p + (m + 1)w)|\bar G|` with :math:`\Sigma_G \ge \sum p|G|`, from the
  total variation again: :math:`\sum p|t| \le \sum q|s|/(1-\alpha)` for skew KL (since
  :math:`r/(1+s) = r/(\alpha + (1-\alpha) r) \le 1/(1-\alpha)`), so :math:`\Sigma_G = (1-\alpha)\,\mathrm{TV}`;
  :math:`\sum p|t|` and :math:`\sum p|\operatorname{log1p}s|` are each at most :math:`\omega\sum p|s|`, so
  :math:`\Sigma_G = (1+\alpha)\,\omega(1-\alpha)\,\mathrm{TV}` (skew reverse KL) and :math:`(1-\beta)\,\omega\beta\,\mathrm{TV}`
  (JSD), each capped by :math:`G_{\max} \ge \max|G|` (:math:`(1-\alpha)\omega`, :math:`H + \alpha\omega`, :math:`(1-\beta)H`).

A row's gradient is certified when :math:`\rho_p\max|\gamma| + \kappa\bigl(\min(P\Gamma_p, Q\Gamma_q) + \text{roundings of }G
+ P(|\delta\bar G| + u|\bar G|)\bigr) + 4u\max|\gamma| \le` ``CERTIFIED_RTOL`` :math:`\cdot\max|\gamma|`.

The refined gradient bound
--------------------------
The bound above charges every class with the row's worst :math:`\Delta_h` and :math:`\omega`. Where the
student is close to a peaked teacher (a student late in training) the largest :math:`p_i` sits on a class
whose own error is far smaller, and the row-wise bound refuses rows it need not. Rows that fail it (and
only those: it costs about fifteen float64 passes) get a second bound with each class's own sizes. Split
:math:`h`'s error into each class's own part :math:`a_i = 3u|f_i| + 2uC + u|h_i|` and a part :math:`\delta`
common to the row (through :math:`\sigma` and :math:`\ell`: :math:`\Phi` and the terms of :math:`\Delta_h`
divided by :math:`1 + \sigma`). A common shift :math:`\delta` of :math:`h` scales :math:`p` by :math:`1 + \delta`
and moves :math:`G_i` by :math:`G'_i\delta` (:math:`G' = dG/dh`), so it moves :math:`\gamma_i/\kappa` by
:math:`\delta\,(p_i(G_i - \bar G) + p_i(G'_i - \sum_j p_j G'_j) - p_i\bar G)`: where :math:`G'` is nearly uniform,
as it is on the classes that carry the mass, it cancels. Per class:

.. math::

    \frac{|\delta\gamma_i|}{\kappa} \le \frac{|\gamma_i|}{\kappa}(\rho_0 + a_i + |\delta| + 4u)
    + p_i\bigl(|G'_i| a_i + R_i + |\delta|\,|G'_i - \textstyle\sum_j p_j G'_j| + (|\delta| + u)|\bar G|\bigr)
    + p_i\,D,

with :math:`\rho_0 = \theta + \epsilon + u` (:math:`p = q e^h`), :math:`R_i` the rounding of forming :math:`G_i`
from :math:`s_i` (:math:`|dG/ds|\rho_s|s_i|` and the roundings of ``log1p``, :math:`t` and the products), and
:math:`D = \sum_j p_j\bigl(|G_j|(\rho_0 + a_j) + |G'_j| a_j + R_j\bigr) + (u + m w)\sum_j p_j|G_j|` the error
of :math:`\bar G` from the classes' own parts. :math:`G' = (1-\alpha)(s + 1 - \alpha)/(1+s)^2` (skew KL),
:math:`((1 + s - \alpha)/(1 + s))^2` (skew reverse KL), :math:`(1-\beta)(s + \beta)/(1 + s)` (JSD). The row is
certified when the larger bound of the two passes, i.e. when either does.

Reverse KL's student gradient
-----------------------------
With the roles exchanged (:math:`p` is now the softmax computed like a teacher's, :math:`f' = (v - z)/T - c'`),
:math:`\partial\,\mathrm{KL}(p\|q)/\partial z = -\kappa\,p\odot(f' - \sum p f')`. The error of :math:`f'` is
:math:`\Phi` per class, the float64 centre adds :math:`\Phi + (\theta + u + m w)F`, :math:`p` has relative
error :math:`\theta`, and the products :math:`4u`: the bound is
:math:`\theta\max|\gamma| + \kappa P(2\Phi + (\theta + u + m w)F + u|\bar f|) + 4u\max|\gamma|` with
:math:`P = 1/\hat S`. It cancels only where the student is close to its teacher *and* the logits carry a
large offset :math:`C`.

All bounds are first order in :math:`u` and evaluated at the computed quantities (so each size is inflated by
:math:`1 + (n + 2)u` where it is itself a sum); the second-order terms are ~u² times the same sizes, far
inside the factor 2 kept from the contract.
"""

from __future__ import annotations

import numpy as np

from ._certificate import (
    ACCUMULATION_ROUNDOFF,
    CERTIFIED_RTOL,
    FUNCTION_ULPS,
    summation_roundings,
    unit_roundoff,
)

__all__ = ["CERTIFIED_RTOL", "mixture_bounds", "refined_grad_bound", "reverse_kl_grad_bound"]


class _Constants:
    """u, w, ε, m, t, θ for one dtype and class count."""

    def __init__(self, dtype: np.dtype, n: int) -> None:
        self.u = unit_roundoff(dtype)
        self.w = ACCUMULATION_ROUNDOFF
        self.eps = 2 * FUNCTION_ULPS * self.u
        # NumPy's pairwise count, but never more than n − 1: in any order of summation a term takes part in
        # at most n − 1 additions (27 would be 3× too many for 10 classes)
        self.m = min(summation_roundings(n), max(n - 1, 1))
        self.tiny = float(np.finfo(dtype).smallest_subnormal)
        self.n = n
        # q = ê·(1/Ŝ): the sum, its reciprocal and the cast scale a whole row alike (θ_row); the product rounds
        # each entry (u)
        self.theta_row = (self.m + 1) * self.w + self.u
        self.theta = self.theta_row + self.u
        # |h| at most half of exp's range: r = e^h, p = q r and the products stay finite and normal enough
        self.max_h = 0.5 * float(np.log(np.finfo(dtype).max)) - 1


def _omega(lam: float, h_extreme: np.ndarray, sign: float) -> np.ndarray:
    """1 / min(1, 1 + s_min), 1 + s = λ + (1 − λ) e^{sign·h} at its smallest (h_extreme: min h for +, max h for −)."""
    return 1 / np.minimum(1.0, lam + (1 - lam) * np.exp(sign * h_extreme))


def mixture_bounds(
    kind: str,
    dtype: np.dtype,
    n: int,
    weight: float,
    stats: dict,
    grad: bool,
    scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(value, value bound, gradient bound or None) per row for the fast mixture path (see the module docstring).

    ``stats`` holds 1-D float64 arrays of the rows: ``normaliser`` Ŝ, ``centre`` c, ``f_max``, ``f_min``,
    ``sigma``, ``tv`` (Σ q|g|), ``part_q`` and ``part_p`` (the computed Σ a φ(s) of each anchor, 0 where
    absent), and with a gradient ``g_bar`` (Σ p G) and ``grad_max`` (max |γ|).
    """
    k = _Constants(dtype, n)
    u, w, eps, m = k.u, k.w, k.eps, k.m
    with np.errstate(all="ignore"):
        sigma = stats["sigma"]
        f_max, f_min = stats["f_max"], stats["f_min"]
        spread = np.maximum(f_max, -f_min)
        ell = np.log1p(sigma)
        h_max, h_min = f_max - ell, f_min - ell
        big_h = spread + np.abs(ell)
        phi_f = 3 * u * spread + 2 * u * np.abs(stats["centre"])
        e1 = np.abs(sigma) + 2 * np.minimum(1.0, spread)
        subnormal = n * k.tiny * (1 + np.exp(np.maximum(f_max, 0)))
        delta_h = (
            2 * phi_f
            + (k.theta_row * np.abs(sigma) + (eps + 2 * u + m * w) * e1 + subnormal + w * (1 + np.abs(sigma)))
            / (1 + sigma)
            + (8 * w + 2 * u) * np.abs(ell)
            + u * spread
        )
        rho_p = k.theta + delta_h + eps + u
        tv = stats["tv"] * (1 + (n + 2) * u)
        products = n * k.tiny * ((1 + np.exp(big_h)) ** 2 * (1 + big_h) + 1)

        def part(anchor: str, lam: float, value: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            """(value bound of D_λ(a‖b), ω, ρ_s) for a = q ("teacher") or a = p ("student")."""
            if anchor == "teacher":
                omega, rho_s, rho_a = _omega(lam, h_min, 1.0), eps + 2 * u, k.theta
            else:
                omega, rho_s, rho_a = _omega(lam, h_max, -1.0), 2 * eps + 3 * u, rho_p
            size = (1 - lam) * tv
            bound = size * (delta_h + (rho_s + eps) * omega) + (rho_a + 2 * u + m * w) * np.abs(value)
            return bound + products, omega, rho_s

        if kind == "skew_kl":
            value = stats["part_q"]
            value_bound, omega, rho_s = part("teacher", weight, value)
            # p|δG| ≤ (1 − α)·p/(1 + s)·(Δ_h + ρ_s ω), and p/(1 + s) = pq/m ≤ min(p ω, q/(1 − α))
            step = delta_h + rho_s * omega
            g_max = (1 - weight) * omega
            per_p, per_q = (1 - weight) * omega * step, step
            rounding = 4 * u
            # Σ p|t| = Σ q|s|·r/(1 + s) ≤ Σ q|s|/(1 − α) (r/(1 + s) = r/(α + (1 − α)r)): Σ p|G| ≤ (1 − α) TV
            g_sum = (1 - weight) * tv
        elif kind == "skew_reverse_kl":
            value = stats["part_p"]
            value_bound, omega, rho_s = part("student", weight, value)
            per_p = delta_h + rho_s * omega + eps * big_h + 3 * u * weight * omega
            per_q = np.inf
            g_max = big_h + weight * omega
            rounding = u
            # Σ p|t| and Σ p|log1p s| are each ≤ ω Σ p|s| = ω (1 − α) TV
            g_sum = (1 + weight) * omega * (1 - weight) * tv
        else:  # jsd: β D_β(q ‖ p) + (1 − β) D_{1−β}(p ‖ q)
            beta = weight
            value = beta * stats["part_q"] + (1 - beta) * stats["part_p"]
            bound_q, _, _ = part("teacher", beta, stats["part_q"])
            bound_p, omega, rho_s = part("student", 1 - beta, stats["part_p"])
            value_bound = beta * bound_q + (1 - beta) * bound_p + 3 * w * np.abs(value)
            per_p = (1 - beta) * (delta_h + rho_s * omega + eps * big_h)
            per_q = np.inf
            g_max = (1 - beta) * big_h
            rounding = 2 * u
            g_sum = (1 - beta) * omega * beta * tv  # Σ p|log1p s_p| ≤ ω Σ p|s_p| = ω β TV
        value_bound = value_bound + u * np.abs(value)  # the cast to the input's dtype
        out_of_range = ~(big_h <= k.max_h)  # NaN compares False: out of range
        value_bound = np.where(out_of_range, np.inf, value_bound)
        if not grad:
            return value, value_bound, None
        grad_max = stats["grad_max"]
        g_bar = np.abs(stats["g_bar"])
        top_p, top_q = stats["p_max"] * (1 + rho_p), 1 / stats["normaliser"]
        # max_i p_i|δG_i| (from h, s, log1p and t) plus the roundings of G, with p_i|G_i| ≤ |γ_i|/κ + p_i|Ḡ|
        own = np.minimum(top_p * per_p, top_q * per_q) + rounding * (grad_max / scale + top_p * g_bar)
        # Σ_i p_i|δG_i| (Σ p = 1; for skew KL Σ p/(1 + s) ≤ min(ω, 1/(1 − α)))
        g_sum = np.minimum(g_sum, g_max)
        total = np.minimum(per_p, per_q) + rounding * g_sum
        # Ḡ = Σ p G / Σ p: the denominator's own error, (ρ_p + m w + w)|Ḡ|
        d_g_bar = (rho_p + u + m * w) * g_sum + total + (rho_p + (m + 1) * w) * g_bar
        grad_bound = rho_p * grad_max + scale * (own + top_p * (d_g_bar + u * g_bar)) + 4 * u * grad_max
        grad_bound = np.where(out_of_range, np.inf, grad_bound)
    return value, value_bound, grad_bound


def reverse_kl_grad_bound(dtype: np.dtype, n: int, stats: dict, scale: float) -> np.ndarray:
    """Bound on max_i |fast γ_i − γ_i| for reverse KL's student gradient (roles exchanged; module docstring).

    ``stats``: ``normaliser`` (of the student's exponentials), ``centre`` c′, ``f_max``, ``f_min`` (of f′),
    ``f_bar`` (Σ p f′) and ``grad_max``.
    """
    k = _Constants(dtype, n)
    u, w, m = k.u, k.w, k.m
    with np.errstate(all="ignore"):
        spread = np.maximum(stats["f_max"], -stats["f_min"])
        phi_f = 3 * u * spread + 2 * u * np.abs(stats["centre"])
        top_p = (1 + k.theta) / stats["normaliser"]
        grad_max = stats["grad_max"]
        bound = k.theta * grad_max + scale * top_p * (
            2 * phi_f + (k.theta + u + m * w) * spread + u * np.abs(stats["f_bar"])
        )
        bound = bound + scale * k.tiny * (2 * spread + 1)  # a subnormal p_i: absolute error t
        bound = bound + 4 * u * grad_max
    return bound


def refined_grad_bound(
    kind: str,
    dtype: np.dtype,
    n: int,
    weight: float,
    stats: dict,
    f: np.ndarray,
    h: np.ndarray,
    p: np.ndarray,
    grad: np.ndarray,
    scale: float,
) -> np.ndarray:
    """Per-class version of the gradient bound (see "The refined gradient bound"): per row of ``f``, ``h``,
    ``p`` and the computed gradient ``grad`` (float64 (rows, N), evaluated at the computed quantities), a
    bound on max_i |fast γ_i − γ_i|; ``stats`` are the rows' first-pass numbers (1-D)."""
    k = _Constants(dtype, n)
    u, w, eps, m = k.u, k.w, k.eps, k.m
    with np.errstate(all="ignore"):
        sigma = stats["sigma"][:, None]
        ell = np.log1p(sigma)
        spread = np.maximum(stats["f_max"], -stats["f_min"])[:, None]
        centre = np.abs(stats["centre"])[:, None]
        e1 = np.abs(sigma) + 2 * np.minimum(1.0, spread)
        subnormal = n * k.tiny * (1 + np.exp(np.maximum(stats["f_max"][:, None], 0)))
        phi_f = 3 * u * spread + 2 * u * centre
        # the common part of h's error: the same shift δ for every class (through σ and ℓ)
        common = (
            phi_f
            + (k.theta_row * np.abs(sigma) + (eps + 2 * u + m * w) * e1 + subnormal + w * (1 + np.abs(sigma)))
            / (1 + sigma)
            + (8 * w + 2 * u) * np.abs(ell)
        )
        own = 3 * u * np.abs(f) + 2 * u * centre + u * np.abs(h)  # each class's own part a_i
        rho_0 = k.theta + eps + u  # p = q·exp(h): q, exp and the product
        if kind == "skew_kl":
            lam, anchor_q = weight, True
        elif kind == "skew_reverse_kl":
            lam, anchor_q = weight, False
        else:
            lam, anchor_q = 1 - weight, False
        if anchor_q:
            s = (1 - lam) * np.expm1(h)
            rho_s = eps + 2 * u
        else:
            s = (1 - lam) * np.expm1(-h)
            rho_s = 2 * eps + 3 * u
        one_s = 1 + s
        if kind == "skew_kl":
            g_val = (1 - weight) * s / one_s
            slope = (1 - weight) * (s + 1 - weight) / one_s**2  # dG/dh
            rounding = (1 - weight) / one_s**2 * rho_s * np.abs(s) + 4 * u * np.abs(g_val)
        elif kind == "skew_reverse_kl":
            ls = np.log1p(s)
            g_val = weight * s / one_s - ls
            slope = ((1 + s - weight) / one_s) ** 2
            rounding = (
                (1 + s - weight) / one_s**2 * rho_s * np.abs(s)
                + eps * np.abs(ls)
                + 3 * u * weight * np.abs(s / one_s)
                + u * np.abs(g_val)
            )
        else:
            g_val = -(1 - weight) * np.log1p(s)
            slope = (1 - weight) * (s + weight) / one_s
            rounding = (1 - weight) / one_s * rho_s * np.abs(s) + (eps + 2 * u) * np.abs(g_val)
        g_bar = np.abs(stats["g_bar"])[:, None]
        slope_bar = np.sum(p * slope, axis=-1, keepdims=True)
        size = np.abs(grad) / scale  # |γ_i|/κ = p_i|G_i − Ḡ|
        abs_g = np.abs(g_val)
        # Ḡ's error from the classes' own parts: Σ_j p_j(|G_j|(ρ_0 + a_j) + |G'_j| a_j + R_j), plus its sum
        own_bar = np.sum(p * (abs_g * (rho_0 + own) + slope * own + rounding), axis=-1) + (
            u + m * w
        ) * np.sum(p * abs_g, axis=-1)
        # Ḡ = Σ p G / Σ p: the denominator's error from the classes' own parts and its sum
        own_bar += g_bar[:, 0] * (rho_0 + np.max(own, axis=-1) + (m + 1) * w)
        per_class = size * (rho_0 + own + common + 4 * u) + p * (
            slope * own + rounding + common * np.abs(slope - slope_bar) + (common + u) * g_bar
        )
        top_p = np.max(p, axis=-1)
        # a subnormal p_i carries an absolute error of up to t
        subnormal_p = k.tiny * (1 + np.max(abs_g, axis=-1) + g_bar[:, 0])
        bound = scale * (np.max(per_class, axis=-1) + top_p * own_bar + subnormal_p)
        out_of_range = ~(spread[:, 0] + np.abs(ell[:, 0]) <= k.max_h)
        return np.where(out_of_range, np.inf, bound)
