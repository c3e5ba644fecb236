r"""The per-row certificate of the fast soft-loss kernel: when its few-pass result is as good as the careful one.

The fast kernel (``kdcore/_fast.py``) evaluates, per row, with :math:`q = \operatorname{softmax}(v/T)`,
:math:`d = (z - v)/T`, :math:`c \approx \sum_j q_j d_j` and :math:`f = d - c`:

.. math::

    \sigma = \sum_i q_i\,\operatorname{expm1}(f_i), \qquad r = \sum_i q_i f_i, \qquad
    \mathrm{KL} = \operatorname{log1p}(\sigma) - r, \qquad
    p_i - q_i = q_i\,\frac{\operatorname{expm1}(f_i) - \sigma}{1 + \sigma} .

These are exact identities for *any* centring constant :math:`c` (``KL = log Σ q e^f − Σ q f`` does not
change when :math:`f` is shifted), so :math:`c` may be computed quickly and inaccurately; ``r`` corrects it.
Four array passes carry the whole cost: ``exp`` for the teacher, ``expm1(f)``, and the products with
:math:`q` that the sums need. What can go wrong is cancellation and range, and each is bounded per row.

What is certified
-----------------
The teacher's rounded exponentials :math:`\hat e_i = \mathrm{fl}(\exp(\mathrm{fl}((v_i - \max v)/T)))` are
computed by exactly the same operations in the careful algorithm (``kdcore/_match.py``), so both compute a
function of the same rounded teacher :math:`\tilde q = \hat e / \sum \hat e`. The certificate bounds, to
first order in the unit roundoff :math:`u`, the difference between the fast result and the exact value for
that :math:`\tilde q` and the exact :math:`d` — i.e. everything the fast path adds beyond what the careful
algorithm shares with it. A row is certified when that bound is at most ``CERTIFIED_RTOL`` relative to the
value, and normwise (the largest error over the row against the largest entry) for the gradient — the
measure the accuracy contract uses. Failing rows are recomputed by the careful algorithm.

* float64: 5e-13, half the 1e-12 contract, leaving the other half to the careful algorithm's own error
  (measured at ≤ 6e-14 by the oracle tests);
* float32: 1e-4. float32's accuracy is an observed one (2e-5 against float64 on ordinary inputs, checked by
  the tests) for both paths: a worst-case first-order bound in float32 is 20–100× the error actually seen,
  for the careful algorithm as much as for this one. On a trained digits teacher against a student in
  training (``benchmarks/certified_rows.py``) the fast float32 results are within 7e-7 of float64, the
  careful ones within 1e-6; a 1e-5 certificate would still send 90 % of those rows to the careful path.
  1e-4 is the tightest round value that lets ordinary float32 rows through; it keeps out what float32
  really gets wrong on this path (near-equal rows, offsets, range).

The bound, term by term
-----------------------
With :math:`F = \max_i |f_i|`, :math:`L = \max(0, -\min_i f_i)`, :math:`C = |c|`, :math:`m` the number of
roundings a term can suffer in the kernel's row sums (``_fast.sum_roundings``: for float64 rows NumPy's
pairwise sum, ``summation_roundings``; for at most 27 classes the kernel sums sequentially down a
transposed chunk, at most :math:`n - 1 \le 26` roundings per term, which the same count covers; float32
rows are summed by a float64-accumulating ``np.einsum`` in an unspecified order, so :math:`m = n - 1` —
7e-12 relative at 128 000 classes, negligible against float32's :math:`u`), :math:`w = 2^{-53}` (sums are
accumulated in float64 for every input dtype), :math:`\epsilon = 8u` for NumPy's ``exp``/``expm1``
(4 ulp; ``tests/test_certificate.py`` checks this on the machine), and the weighted sizes

.. math::

    Q_1 \ge \sum_i q_i |f_i| \ \text{ as } \ \min\Bigl(F, \sqrt{\textstyle\sum_i q_i f_i^2}\Bigr), \qquad
    P_1 \ge \sum_i p_i |f_i| \ \text{ as } \ \min\Bigl(F, \frac{Q_1 + \sum_i q_i f_i \operatorname{expm1} f_i}{1 + \sigma}\Bigr), \qquad
    E_1 = |\sigma| + 2 Q_1 \ge \sum_i q_i |\operatorname{expm1} f_i|

(the second because :math:`e^{f}|f| \le |f| + f \operatorname{expm1} f`, whose last term is never negative —
one more dot product; the last because :math:`|\operatorname{expm1} x| \le |x|` for :math:`x < 0` and
:math:`\sum_{f_i \ge 0} q_i \operatorname{expm1} f_i = \sigma + \sum_{f_i<0} q_i |\operatorname{expm1} f_i|`):

* normalisation — :math:`\sum_i \hat e_i / \hat S = 1 + \rho`, :math:`|\rho| \le m w`, changes the result by
  :math:`\rho\,(\sigma/(1+\sigma) - r)`;
* rounding of :math:`d` (a subtraction and a division, :math:`2u|d_i|`) moves KL by
  :math:`\sum_i (p_i - q_i)\,\delta d_i`, at most :math:`2u\,(P_1 + Q_1 + 2C)`: a large offset :math:`C`
  between student and teacher logits is where this path loses to the careful one (which forms
  :math:`z - v` exactly), and the certificate sends such rows there;
* rounding of :math:`f = d - c`: :math:`u\,(P_1 + Q_1)`;
* :math:`\sigma`: per term ``expm1`` and a product, :math:`(\epsilon + u)\,|q_i \operatorname{expm1} f_i|`,
  plus the sum's :math:`m w E_1`, so :math:`|\delta\sigma| \le (\epsilon + u + m w) E_1`, entering KL
  divided by :math:`1 + \sigma`;
* :math:`r`: :math:`(u + m w)\,Q_1`;
* teacher probabilities that underflow to 0 or to a subnormal number carry an absolute error of at most the
  smallest subnormal :math:`t` each: :math:`N t\, e^{\max(f,0)} / \hat S` in :math:`\sigma`;
* ``log1p``, the final subtraction and the rounding of the result to the input's dtype.

Why :math:`\operatorname{expm1}` and not :math:`\log\sum q e^f`: the latter forms :math:`s \approx 1 + \mathrm{KL}`
and loses :math:`m u` *absolutely*, so a row with KL = 0.01 would lose two more digits than one with KL = 1;
with ``expm1`` every error term above is proportional to :math:`\sum q|f| \approx \sqrt{2\,\mathrm{KL}}`,
and the relative error grows only like :math:`u/\sqrt{\mathrm{KL}}`. So rows with a student close to its
teacher (KL below ~1e-5 in float64, ~1e-3 in float32), huge offsets, extreme temperatures, masked
classes, NaN or overflow fail the certificate, and every other row passes.

The gradient :math:`g = s\,(p - q)` (:math:`s` the caller's scale) is bounded the same way: the shift of
:math:`f` cancels exactly; :math:`\delta\sigma` moves entry :math:`i` by at most
:math:`s\,\delta\sigma\,(2 q_i + p_i)/(1+\sigma)`; ``expm1``'s error by :math:`s\,\epsilon\,(p_i + q_i)`; the
rounding of :math:`f` by :math:`s\,p_i(|\delta f_i| + \sum_j p_j|\delta f_j|) \le
s\,(3u\min(P_1, PF) + 3u P_1 P + 4uCP)` (:math:`|\delta f_j| \le 3u|f_j| + 2uC`, and :math:`p_i|f_i|` is at
most both :math:`P_1` and :math:`PF`); three roundings and the
normalisation by :math:`(4u + m w)|g_i|`. With :math:`P = \max p \le \max q + \max|g|/s` and
:math:`\max q = 1/\hat S` (the top class's :math:`\hat e` is exactly 1), the row is certified when the
largest of these is at most ``CERTIFIED_RTOL`` times :math:`\max_i |g_i|`.

All bounds are first order in :math:`u` and are evaluated at the computed quantities; the second-order
terms are below :math:`u^2` times the same sizes, far inside the factor 2 kept from the contract.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# Relative accuracy the certificate demands of the fast path, per input dtype (see the module docstring).
CERTIFIED_RTOL = {np.dtype(np.float64): 5e-13, np.dtype(np.float32): 1e-4}
# NumPy's SIMD exp / expm1 / log1p: at most 4 ulp = 8 unit roundoffs (tests/test_certificate.py checks it).
FUNCTION_ULPS = 4
# Float64 accumulation of every sum (np.sum(..., dtype=float64)).
ACCUMULATION_ROUNDOFF = 2.0**-53


@functools.cache
def unit_roundoff(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps) / 2


def summation_roundings(n: int, dtype: np.dtype | None = None) -> int:
    """How many roundings one term can suffer in NumPy's pairwise row sum over ``n`` terms.

    NumPy sums blocks of up to 128 terms with 8 interleaved accumulators (≤ 16 additions each, 3 to join
    them, ≤ 7 for the remainder: 26), and halves larger ranges recursively (one more per halving). With
    ``dtype=None`` the sum is ``np.sum(x, dtype=float64)`` of an input of any dtype: a float32 input is then
    cast in buffers of 8192 elements whose sums are added one after the other, one more rounding per
    buffer. With a ``dtype`` the data are summed in their own dtype (no buffers). Any order of the n − 1
    additions (a sequential sum, ``np.einsum``) rounds a term at most n − 1 times: that bound is the
    caller's to use where it applies.
    """
    halvings = max(0, math.ceil(math.log2(max(n, 1) / 128)))
    buffers = math.ceil(n / 8192) if dtype is None else 0
    return 26 + halvings + buffers


def error_bounds(
    dtype: np.dtype,
    n: int,
    kl: np.ndarray,
    sigma: np.ndarray,
    r: np.ndarray,
    centre: np.ndarray,
    f_max: np.ndarray,
    f_min: np.ndarray,
    weighted_square: np.ndarray,
    weighted_rise: np.ndarray,
    normaliser: np.ndarray,
    grad_max: np.ndarray | None = None,
    scale: float = 1.0,
    *,
    sum_roundings: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """First-order bounds per row on |fast KL − KL(q̃‖p)| and, if ``grad_max`` is given, on
    max_i |fast g_i − g_i| for g = scale·(p − q) (float64 arrays of one shape; see the module docstring).

    ``sum_roundings``: how many float64 roundings a term of the row sums (Σ ê, Σ ê f, Σ ê expm1 f) can
    suffer; by default those of ``np.sum(..., dtype=float64)`` (:func:`summation_roundings`).

    Written with in-place operations: for small class counts the per-row arrays are a noticeable share of
    both the time and the memory of a call.
    """
    u, w = unit_roundoff(dtype), ACCUMULATION_ROUNDOFF
    eps = 2 * FUNCTION_ULPS * u
    m = summation_roundings(n) if sum_roundings is None else sum_roundings
    tiny = float(np.finfo(dtype).smallest_subnormal)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # Σ q f² and Σ q f expm1 f are sums of non-negative terms in the input's dtype, in any order: their
        # relative error is at most (n + 2)u, which is added before they are used as bounds
        inflate = 1 + (n + 2) * u
        spread = np.maximum(f_max, -f_min)
        q1 = np.maximum(weighted_square, 0)
        q1 *= inflate
        np.sqrt(q1, out=q1)
        np.minimum(q1, spread, out=q1)
        inverse = 1 + sigma
        np.divide(1, inverse, out=inverse)  # 1 / (1 + σ)
        p1 = np.maximum(weighted_rise, 0)  # Σ p|f| ≤ (Σ q|f| + Σ q f expm1 f) / (1 + σ)
        p1 *= inflate
        p1 += q1
        p1 *= inverse
        np.minimum(p1, spread, out=p1)
        abs_sigma = np.abs(sigma)
        underflow = np.maximum(f_max, 0)  # N t e^{max f} / S: teacher probabilities lost to underflow
        np.exp(underflow, out=underflow)
        underflow *= n * tiny
        underflow /= normaliser
        # δσ ≤ (ε + u + m w) E1 + underflow + w|σ| with E1 = |σ| + 2 Q1 (expm1, product, sum; the division
        # by S in float64)
        sigma_rate = eps + u + m * w
        d_sigma = (sigma_rate + w) * abs_sigma
        d_sigma += (2 * sigma_rate) * q1
        d_sigma += underflow
        # KL: the normalisation ρ·(σ/(1 + σ) − r) with |ρ| ≤ m w, then δσ/(1 + σ), the rounding of d
        # (2u(P1 + Q1 + 2C)), of f (u(P1 + Q1)), r ((u + m w) Q1 and w|r| for its division), and log1p,
        # the subtraction and the rounding to the input's dtype
        bound = (m * w) * abs_sigma
        bound += d_sigma
        bound *= inverse
        bound += (m * w + w) * np.abs(r)
        bound += (3 * u) * p1
        bound += (3 * u + u + m * w) * q1
        bound += (4 * u) * np.abs(centre)
        bound += ((2 * FUNCTION_ULPS + 1) * w + u) * np.abs(kl)
        if grad_max is None:
            return bound, None
        # the gradient also rounds expm1(f) − σ and casts σ to the input's dtype: u E1 + u|σ| more in δσ
        d_sigma += (2 * u) * abs_sigma
        d_sigma += (2 * u) * q1
        top_q = 1 / normaliser
        top_p = grad_max / scale
        top_p += top_q
        # rounding of f: p_i |δf_i| + p_i Σ_j p_j |δf_j| with |δf_j| ≤ 3u|f_j| + 2u|c|, and
        # p_i|f_i| ≤ min(Σ p|f|, max p · max|f|) (the first is tighter for a few classes, the second for many)
        grad = 2 * top_q
        grad += top_p
        grad *= d_sigma
        grad *= inverse  # δσ (2 max q + max p) / (1 + σ)
        grad += eps * top_p
        grad += eps * top_q
        spread *= top_p
        grad += (3 * u) * np.minimum(p1, spread, out=spread)
        p1 *= top_p
        grad += (3 * u) * p1
        grad += (4 * u) * np.abs(centre) * top_p
        grad += underflow
        grad += tiny * top_q
        grad *= scale
        grad += (4 * u + m * w) * grad_max  # three roundings and the normalisation
        return bound, grad


def entropy_error_bound(
    dtype: np.dtype, n: int, entropy: np.ndarray, *, sum_roundings: int | None = None
) -> np.ndarray:
    """Bound on the error of H = log S − Σ q t: both terms are non-negative (t ≤ 0), so it is relative.
    ``sum_roundings`` as for :func:`error_bounds`."""
    u, w = unit_roundoff(dtype), ACCUMULATION_ROUNDOFF
    m = summation_roundings(n) if sum_roundings is None else sum_roundings
    return (u + (m + 2 * FUNCTION_ULPS + 2) * w) * np.abs(entropy)
