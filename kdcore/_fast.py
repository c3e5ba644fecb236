r"""The fast soft-loss kernel: a few array passes per row, a certificate per row, the careful path for the rest.

Every soft loss and its student gradient go through :func:`soft_rows`. Per chunk of rows it computes, with
:math:`q = \operatorname{softmax}(v/T)` (unnormalised as :math:`\hat e = e^{(v - \max v)/T}`, :math:`\hat S =
\sum \hat e`), :math:`d = (z - v)/T`, :math:`f = d - c`:

.. math::

    \sigma = \sum_i q_i \operatorname{expm1}(f_i), \quad r = \sum_i q_i f_i, \quad
    \mathrm{KL} = \operatorname{log1p}(\sigma) - r, \quad
    H(q) = \log \hat S - \sum_i q_i\,\tfrac{v_i - \max v}{T}, \quad
    p - q = q \odot \frac{\operatorname{expm1}(f) - \sigma}{1 + \sigma},

and the per-row error bound of ``kdcore/_certificate.py`` (why it is sound is explained there). Rows whose
bound exceeds the tolerance — and rows that are near-equal on a sample of their classes, which cannot pass
— are recomputed by the careful algorithm (:func:`kdcore._match.match`), so every row meets the accuracy
contract. Sums are accumulated in float64 (``np.sum(..., dtype=float64)``), everything elementwise stays
in the input's dtype.

Memory: each worker holds two chunk-sized arrays (three without a gradient), and the gradient is written
straight into its preallocated output; the chunk size keeps all of it below one input's worth.

``fast_quantities`` exposes the same per-row quantities (log q, q, f, KL, p/q − 1, the certificate) as full
arrays for new divergences that want to build on the fast path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._certificate import CERTIFIED_RTOL, entropy_error_bound, error_bounds
from ._chunks import run_chunks
from ._match import match

# A row whose student–teacher difference (z − v)/T spans less than this over its first SAMPLE classes is
# near-equal: its KL is at most span²/8, far below what the certificate can pass (KL ≳ 1e-5 in float64,
# ≳ 1e-3 in float32), so it goes to the careful path without trying the fast one. A heuristic for speed
# only: whichever path a row takes, its result meets the contract, and the choice depends on the row alone.
NEAR_EQUAL_SPAN = {np.dtype(np.float64): 1e-3, np.dtype(np.float32): 1e-2}
SAMPLE = 16
# The careful algorithm's temporaries per chunk (about eight arrays the size of its chunk live at once).
CAREFUL_SCRATCH = 8
CAREFUL_MAX_CHUNK = 1 << 17


def _sum(x: np.ndarray) -> np.ndarray:
    return np.sum(x, axis=-1, keepdims=True, dtype=np.float64)


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Σ x·y, (rows, 1) float64, in the calling thread.

    Not ``np.vecdot``: that calls BLAS, and OpenBLAS splits long dot products over its own threads, which
    on a loaded machine made one 32 000-element row take 60 ms instead of 30 µs. Only sizes (the
    certificate's) and the centre, whose accuracy does not matter, come from these.
    """
    return np.einsum("ij,ij->i", x, y)[:, None].astype(np.float64)


class _Rows(NamedTuple):
    """Per-row results of the fast kernel on one chunk, float64, shape (rows, 1)."""

    kl: np.ndarray
    entropy: np.ndarray | None
    margin: np.ndarray  # (rows,): the largest bound / (tolerance × size) over value and gradient; ≤ 1 passes
    certified: np.ndarray  # (rows,) bool: margin ≤ 1 and KL > 0


def _fast_chunk(
    z: np.ndarray,
    v: np.ndarray,
    T: float,
    entropy: bool,
    grad_out: np.ndarray | None,
    scale: float,
) -> _Rows:
    """The fast kernel on a chunk (rows, N); writes scale·(p − q) into ``grad_out`` if given."""
    dtype = z.dtype
    n = z.shape[-1]
    a = np.empty_like(z)
    b = np.empty_like(z)
    scratch = grad_out if grad_out is not None else np.empty_like(z)
    with np.errstate(all="ignore"):  # non-finite rows fail the certificate and are recomputed
        # The teacher: the same operations as softmax._tempered, so both paths share these roundings.
        np.subtract(v, np.max(v, axis=-1, keepdims=True), out=a)
        a /= dtype.type(T)
        np.exp(a, out=b)
        normaliser = _sum(b)
        teacher_entropy = None
        if entropy:
            np.multiply(b, a, out=scratch)
            teacher_entropy = np.log(normaliser) - _sum(scratch) / normaliser
        # f = d − c with c from a fast dot product: any c gives the same KL (r corrects it).
        np.subtract(z, v, out=a)
        a /= dtype.type(T)
        centre = (_dot(b, a) / normaliser).astype(dtype)
        a -= centre
        f_max = np.max(a, axis=-1, keepdims=True).astype(np.float64)
        f_min = np.min(a, axis=-1, keepdims=True).astype(np.float64)
        np.multiply(b, a, out=scratch)
        residual = _sum(scratch) / normaliser
        weighted_square = _dot(scratch, a) / normaliser
        np.expm1(a, out=a)
        # Σ q f expm1(f): every term ≥ 0 (f and expm1 f share their sign), it bounds Σ p|f| for the certificate
        weighted_rise = _dot(scratch, a) / normaliser
        np.multiply(b, a, out=scratch)
        sigma = _sum(scratch) / normaliser
        kl = np.log1p(sigma) - residual
        grad_max = None
        if grad_out is not None:
            a -= sigma.astype(dtype)
            np.multiply(b, a, out=grad_out)
            grad_out *= (scale / (normaliser * (1 + sigma))).astype(dtype)
            grad_max = np.maximum(
                np.max(grad_out, axis=-1, keepdims=True), -np.min(grad_out, axis=-1, keepdims=True)
            ).astype(np.float64)
        bound, grad_bound = error_bounds(
            dtype,
            n,
            kl,
            sigma,
            residual,
            centre,
            f_max,
            f_min,
            weighted_square,
            weighted_rise,
            normaliser,
            grad_max,
            scale,
        )
        value = kl
        if teacher_entropy is not None:
            bound += entropy_error_bound(dtype, n, teacher_entropy)
            value = kl + teacher_entropy
        tolerance = CERTIFIED_RTOL[dtype]
        margin = bound / (tolerance * value)
        if grad_bound is not None:
            margin = np.maximum(margin, grad_bound / (tolerance * grad_max))
        certified = (margin <= 1) & (kl > 0)  # NaN (a non-finite row) compares False: not certified
    return _Rows(kl, teacher_entropy, margin[:, 0], certified[:, 0])


def _careful_rows(z, v, T, entropy: bool, want_grad: bool, scale: float):
    """Value (rows,) and scale·(p − q) of the careful algorithm, for rows (rows, N)."""
    m = match(z, v, T)
    value = m.kl + m.teacher_entropy if entropy else m.kl
    grad = m.probs_diff() * z.dtype.type(scale) if want_grad else None
    return value[:, 0], grad


def near_equal_rows(z: np.ndarray, v: np.ndarray, T: float) -> np.ndarray:
    """Rows (of 2-D arrays) that are near-equal on their first ``SAMPLE`` classes: see ``NEAR_EQUAL_SPAN``."""
    with np.errstate(all="ignore"):
        sample = (z[:, :SAMPLE] - v[:, :SAMPLE]) / z.dtype.type(T)
        span = np.max(sample, axis=-1) - np.min(sample, axis=-1)
    return span < NEAR_EQUAL_SPAN[z.dtype]  # NaN span (non-finite sample): not near-equal, tried and failed


def soft_rows(
    student: np.ndarray,
    teacher: np.ndarray,
    T: float,
    *,
    value: str | None,
    grad_scale: float | None,
    certified_out: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-sample soft loss and/or scaled student gradient of checked logits (..., N), one dtype.

    ``value``: ``"kl"``, ``"soft_cross_entropy"`` or None; ``grad_scale``: the factor applied to p − q
    (e.g. 1/T, times 1/B for a mean), or None for no gradient. Returns ``(values (...), grad (..., N))``, each
    None if not asked for. ``certified_out``, if given (bool, one per sample), receives which rows the fast
    path certified (for tests and benchmarks).
    """
    leading, n = student.shape[:-1], student.shape[-1]
    z, v = student.reshape(-1, n), teacher.reshape(-1, n)
    n_rows = z.shape[0]
    dtype = z.dtype
    entropy = value == "soft_cross_entropy"
    values = np.empty(n_rows, dtype=dtype) if value is not None else None
    grad = np.empty((n_rows, n), dtype=dtype) if grad_scale is not None else None
    scale = 1.0 if grad_scale is None else float(grad_scale)
    certified = np.zeros(n_rows, dtype=bool)
    try_fast = ~near_equal_rows(z, v, T) if n > 1 else np.zeros(n_rows, dtype=bool)

    def careful(rows: slice | np.ndarray) -> None:
        row_values, row_grad = _careful_rows(z[rows], v[rows], T, entropy, grad is not None, scale)
        if values is not None:
            values[rows] = row_values
        if grad is not None:
            grad[rows] = row_grad

    def fast(rows: slice) -> None:
        grad_out = grad[rows] if grad is not None else None
        result = _fast_chunk(z[rows], v[rows], T, entropy, grad_out, scale)
        ok = result.certified & try_fast[rows]
        certified[rows] = ok
        if values is not None:
            row_value = result.kl if result.entropy is None else result.kl + result.entropy
            values[rows] = row_value[:, 0]
        if not ok.all():
            careful(np.flatnonzero(~ok) + rows.start)

    if try_fast.any():
        # two chunk arrays (three without a gradient) plus ~20 per-row numbers and the rare careful rows
        run_chunks(fast, n_rows, n, scratch=3 if grad is not None else 4)
    else:  # every row careful: the careful algorithm's own chunking (it makes more temporaries)
        run_chunks(careful, n_rows, n, scratch=CAREFUL_SCRATCH, max_chunk=CAREFUL_MAX_CHUNK)
    if certified_out is not None:
        certified_out[...] = certified.reshape(leading)
    return (
        None if values is None else values.reshape(leading),
        None if grad is None else grad.reshape(*leading, n),
    )


class FastQuantities(NamedTuple):
    """The fast path's per-row quantities as full arrays (class axis last), for divergences built on them."""

    teacher_log_probs: np.ndarray  # log q, (..., N)
    teacher_probs: np.ndarray  # q, (..., N)
    log_ratio: np.ndarray  # f: log(p/q) + KL, centred under q (Σ q f = 0 up to rounding), (..., N)
    kl: np.ndarray  # KL(q ‖ p), (..., 1)
    probs_ratio_minus_one: np.ndarray  # expm1(f − KL) = p/q − 1, so p − q = q·this, (..., N)
    certified: np.ndarray  # (..., 1) bool: the fast KL and p − q meet the contract (see _certificate)


def fast_quantities(student: np.ndarray, teacher: np.ndarray, T: float) -> FastQuantities:
    """The fast path's quantities for checked logits (..., N), without chunking (for new divergences).

    Where ``certified`` is False the values are the fast path's and must not be used: compute those rows
    with :func:`kdcore._match.match` instead, as :func:`soft_rows` does.
    """
    leading, n = student.shape[:-1], student.shape[-1]
    z, v = student.reshape(-1, n), teacher.reshape(-1, n)
    dtype = z.dtype
    with np.errstate(all="ignore"):
        shifted = (v - np.max(v, axis=-1, keepdims=True)) / dtype.type(T)
        exp_shifted = np.exp(shifted)
        normaliser = _sum(exp_shifted)
        log_probs = shifted - np.log(normaliser).astype(dtype)
        probs = exp_shifted / normaliser.astype(dtype)
    grad = np.empty_like(z)
    rows = _fast_chunk(z, v, T, False, grad, 1.0)
    kl = rows.kl.astype(dtype)
    with np.errstate(all="ignore"):
        diff = (z - v) / dtype.type(T)
        log_ratio = diff - _sum(probs * diff).astype(dtype)
        log_ratio -= _sum(probs * log_ratio).astype(dtype)
        ratio = np.expm1(log_ratio - kl)
    certified = (rows.certified & ~near_equal_rows(z, v, T))[:, None]
    return FastQuantities(
        log_probs.reshape(*leading, n),
        probs.reshape(*leading, n),
        log_ratio.reshape(*leading, n),
        kl.reshape(*leading, 1),
        ratio.reshape(*leading, n),
        certified.reshape(*leading, 1),
    )
