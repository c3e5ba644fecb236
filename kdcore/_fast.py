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
contract. The sums the value depends on are accumulated in float64 (``row_sum64``: NumPy's pairwise sum
for float64 rows, a float64-accumulating ``np.einsum`` for float32 rows), everything elementwise stays in
the input's dtype.

The passes run chunk by chunk (over threads, ``kdcore/_chunks.py``) and leave ten numbers per row; the
certificate then judges all rows of the call in one vectorised step (per chunk, its ~50 operations on a
few hundred numbers cost as much as several array passes), and the refused rows are recomputed, again
chunk by chunk. Up to ``TRANSPOSED_MAX_CLASSES`` classes a chunk is worked on transposed (classes × rows),
so that the row reductions are vectorised loops instead of one short loop per row.

Memory: each worker holds two chunk-sized arrays (three without a gradient, four when transposed), and the
gradient is written straight into its preallocated output; the chunk size keeps all of it below half an
input's worth.

``fast_quantities`` exposes the same per-row quantities (log q, q, f, KL, p/q − 1, the certificate) as full
arrays for new divergences that want to build on the fast path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._certificate import CERTIFIED_RTOL, entropy_error_bound, error_bounds, summation_roundings
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
# Up to this many classes a chunk is worked on transposed, classes × rows: a reduction along the last axis
# costs ~0.05 µs per row whatever the row's length (NumPy starts its inner loop once per row), which made
# the ~11 row reductions of a 256 × 10 call cost more than all its elementwise passes; along the first
# axis of a C-contiguous array it is one vectorised loop per class. Such a sum is sequential (each term
# rounded at most n − 1 ≤ 26 times), inside the certificate's count of 26 + … for NumPy's pairwise sums.
TRANSPOSED_MAX_CLASSES = 27
# The per-row numbers each chunk leaves for the certificate (rows of a float64 array, one column per row).
STATS = ("normaliser", "centre", "f_max", "f_min", "residual", "weighted_square", "weighted_rise", "sigma")
GRAD_MAX, ENTROPY_SUM = len(STATS), len(STATS) + 1  # max |g|; Σ ê·(v − max v)/T (soft cross-entropy)
N_STATS = len(STATS) + 2


def sum_roundings(dtype: np.dtype, n: int) -> int:
    """How many float64 roundings a term of the kernel's row sums can suffer (see ``_fast_stats``).

    float64 rows are summed pairwise by ``np.sum`` (``summation_roundings``; a transposed chunk's sequential
    sums over at most 27 classes round a term at most 26 times, which that count covers). float32 rows are
    summed by ``np.einsum(..., dtype=float64)``, in whatever order, so at most n − 1 roundings of 2^-53 per
    term: 7e-12 relative at 128 000 classes, far below float32's own roundoff (6e-8) that the certificate
    weighs them against, and a float64-accumulated einsum costs 0.7 of the buffered ``np.sum(...,
    dtype=float64)`` of float32 data (one pass in ~12 of the kernel).
    """
    if dtype == np.float64:
        return summation_roundings(n, dtype)
    return max(n - 1, 0)


def row_sum64(x: np.ndarray, axis: int) -> np.ndarray:
    """Sums of a 2-D array along ``axis`` (kept), accumulated in float64: the kernel's sums that the value
    depends on; ``sum_roundings`` bounds their roundings."""
    if axis == 0 or x.dtype == np.float64:
        return np.add.reduce(x, axis=axis, keepdims=True, dtype=np.float64)
    return row_einsum("ij->i", x, dtype=np.float64)[:, None]


def row_einsum(subscripts: str, *arrays: np.ndarray, **options) -> np.ndarray:
    """``np.einsum(subscripts, *arrays)`` over the rows of 2-D arrays, the same numbers for a row whatever
    the number of rows.

    On a single row NumPy's einsum drops the row axis and takes another inner loop, whose order of summation
    differs: a row's dot product (the centre c, and with it f) changed in its last bits when the row was
    alone in a chunk, and its loss by an ulp — a row's result depended on the chunking. A single row is
    therefore presented as two rows (a broadcast view: no copy, the work of one more row).
    """
    if arrays[0].shape[0] != 1:
        return np.einsum(subscripts, *arrays, **options)
    doubled = [np.broadcast_to(a, (2, *a.shape[1:])) for a in arrays]
    return np.einsum(subscripts, *doubled, **options)[:1]


def _sum(x: np.ndarray) -> np.ndarray:
    return np.sum(x, axis=-1, keepdims=True, dtype=np.float64)


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Σ x·y, (rows, 1) float64, in the calling thread.

    Not ``np.vecdot``: that calls BLAS, and OpenBLAS splits long dot products over its own threads, which
    on a loaded machine made one 32 000-element row take 60 ms instead of 30 µs. Only sizes (the
    certificate's) and the centre, whose accuracy does not matter, come from these.
    """
    return row_einsum("ij,ij->i", x, y)[:, None].astype(np.float64)


class _Rows(NamedTuple):
    """Per-row results of the fast kernel on one chunk, float64, shape (rows, 1)."""

    kl: np.ndarray
    entropy: np.ndarray | None
    margin: np.ndarray  # (rows,): the largest bound / (tolerance × size) over value and gradient; ≤ 1 passes
    certified: np.ndarray  # (rows,) bool: margin ≤ 1 and KL > 0


def _fast_stats(
    z: np.ndarray,
    v: np.ndarray,
    T: float,
    stats: np.ndarray,
    entropy: bool,
    grad_out: np.ndarray | None,
    scale: float,
) -> None:
    """The fast kernel's passes over a chunk (rows, N): writes scale·(p − q) into ``grad_out`` if given and
    the per-row numbers the certificate needs into ``stats`` (float64, (N_STATS, rows)).

    Up to ``TRANSPOSED_MAX_CLASSES`` classes the chunk is copied into classes × rows work arrays (every
    elementwise operation is the same, only the reductions run along the first axis); a one-row chunk is
    worked as two copies of its row, since NumPy sums a single column pairwise and several sequentially,
    and a row's numbers must not depend on its neighbours.
    """
    dtype = z.dtype
    rows, n = z.shape
    transposed = n <= TRANSPOSED_MAX_CLASSES
    if transposed:
        width = max(rows, 2)
        a, b, scratch, work = (np.empty((n, width), dtype) for _ in range(4))
        z_in, v_in = (z.T, v.T) if rows > 1 else (np.repeat(z.T, 2, axis=1), np.repeat(v.T, 2, axis=1))
        axis = 0
    else:
        a, b = np.empty_like(z), np.empty_like(z)
        z_in, v_in = z, v
        axis = 1
        scratch = grad_out if grad_out is not None else np.empty_like(z)
        work = None
    # ufunc methods called directly: np.max / np.sum add ~1 µs of Python each, a tenth of a 256 × 10 call
    maximum, minimum = np.maximum.reduce, np.minimum.reduce
    temperature = dtype.type(T)
    # row k of ``stats`` as a (rows, 1) column, or a (1, rows) row for a transposed chunk: the results of the
    # row reductions are written straight into it
    out = stats[:, None, :] if transposed else stats[:, :, None]

    def put(index, x):  # a reduction's result into stats[index] (a transposed chunk may be 2 columns wide)
        out[index] = x[:, :rows] if transposed else x
        return out[index]

    def accurate_sum(x, index):  # float64 accumulation, for the sums the value depends on
        return put(index, row_sum64(x, axis))

    def weighted_sum(x, y, index):  # Σ x·y of non-negative or centring terms, in the input's dtype
        if not transposed:
            return put(index, row_einsum("ij,ij->i", x, y)[:, None])
        np.multiply(x, y, out=work)
        return put(index, np.add.reduce(work, axis=0, keepdims=True))

    def per_row(x):  # per-row numbers (float64) as the input's dtype, broadcastable against the chunk
        return (x if not transposed or width == rows else np.repeat(x, width, axis=1)).astype(dtype)

    with np.errstate(all="ignore"):  # non-finite rows fail the certificate and are recomputed
        # The teacher: the same operations as softmax._tempered, so both paths share these roundings.
        if transposed:
            np.copyto(a, v_in)
            np.subtract(a, maximum(a, axis=0, keepdims=True), out=a)
        else:
            np.subtract(v, maximum(v, axis=1, keepdims=True), out=a)
        a /= temperature
        np.exp(a, out=b)
        normaliser = accurate_sum(b, 0)
        if entropy:
            np.multiply(b, a, out=scratch)
            accurate_sum(scratch, ENTROPY_SUM)
        # f = d − c with c from a fast dot product: any c gives the same KL (r corrects it).
        np.subtract(z_in, v_in, out=a)
        a /= temperature
        centre = weighted_sum(b, a, 1)
        centre /= normaliser
        centre_in_dtype = per_row(centre)
        centre[...] = centre_in_dtype[:, :rows] if transposed else centre_in_dtype  # the c subtracted
        a -= centre_in_dtype
        put(2, maximum(a, axis=axis, keepdims=True))
        put(3, minimum(a, axis=axis, keepdims=True))
        np.multiply(b, a, out=scratch)
        accurate_sum(scratch, 4)
        weighted_sum(scratch, a, 5)
        np.expm1(a, out=a)
        # Σ q f expm1(f): every term ≥ 0 (f and expm1 f share their sign), it bounds Σ p|f| for the certificate
        weighted_sum(scratch, a, 6)
        out[4:7] /= normaliser  # r, Σ q f², Σ q f expm1 f: Σ ê… / S
        np.multiply(b, a, out=scratch)
        sigma = accurate_sum(scratch, 7)
        sigma /= normaliser
        if grad_out is not None:
            a -= per_row(sigma)
            np.multiply(b, a, out=scratch)
            scratch *= per_row(scale / (normaliser * (1 + sigma)))
            put(GRAD_MAX, maximum(np.abs(scratch, out=a), axis=axis, keepdims=True))
            if transposed:
                np.copyto(grad_out, scratch[:, :rows].T)


def _certify(
    dtype: np.dtype, n: int, stats: np.ndarray, entropy: bool, grad: bool, scale: float
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """KL, H(q) (or None), the certificate margin and whether each row is certified, from ``stats``: 1-D
    float64 arrays of the rows. Vectorised over all rows of a call at once (a chunk's few hundred rows cost
    as many NumPy calls as a million)."""
    normaliser, centre, f_max, f_min, residual, weighted_square, weighted_rise, sigma = stats[: len(STATS)]
    grad_max = stats[GRAD_MAX] if grad else None
    with np.errstate(all="ignore"):
        kl = np.log1p(sigma) - residual
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
            sum_roundings=sum_roundings(dtype, n),
        )
        value = kl
        teacher_entropy = None
        if entropy:
            teacher_entropy = np.log(normaliser) - stats[ENTROPY_SUM] / normaliser
            bound += entropy_error_bound(dtype, n, teacher_entropy, sum_roundings=sum_roundings(dtype, n))
            value = kl + teacher_entropy
        tolerance = CERTIFIED_RTOL[dtype]
        margin = bound / (tolerance * value)
        if grad_bound is not None:
            margin = np.maximum(margin, grad_bound / (tolerance * grad_max))
        certified = (margin <= 1) & (kl > 0)  # NaN (a non-finite row) compares False: not certified
    return kl, teacher_entropy, margin, certified


def _fast_chunk(
    z: np.ndarray,
    v: np.ndarray,
    T: float,
    entropy: bool,
    grad_out: np.ndarray | None,
    scale: float,
) -> _Rows:
    """The fast kernel and its certificate on a chunk (rows, N); writes scale·(p − q) into ``grad_out`` if
    given. (``soft_rows`` runs the same two steps, the certificate once for all chunks.)"""
    stats = np.empty((N_STATS, z.shape[0]))
    _fast_stats(z, v, T, stats, entropy, grad_out, scale)
    kl, teacher_entropy, margin, certified = _certify(
        z.dtype, z.shape[-1], stats, entropy, grad_out is not None, scale
    )
    return _Rows(
        kl[:, None], None if teacher_entropy is None else teacher_entropy[:, None], margin, certified
    )


def _careful_rows(z, v, T, entropy: bool, want_grad: bool, scale: float):
    """Value (rows,) and scale·(p − q) of the careful algorithm, for rows (rows, N)."""
    m = match(z, v, T)
    value = m.kl + m.teacher_entropy if entropy else m.kl
    grad = m.probs_diff() * z.dtype.type(scale) if want_grad else None
    return value[:, 0], grad


def near_equal_rows(z: np.ndarray, v: np.ndarray, T: float) -> np.ndarray:
    """Rows (of 2-D arrays) that are near-equal on their first ``SAMPLE`` classes: see ``NEAR_EQUAL_SPAN``.

    The span of z − v is compared with ``NEAR_EQUAL_SPAN × T`` (one division less than forming (z − v)/T).
    """
    with np.errstate(all="ignore"):
        if z.shape[-1] <= TRANSPOSED_MAX_CLASSES:  # reductions along the first axis (see above)
            sample = np.subtract(z[:, :SAMPLE].T, v[:, :SAMPLE].T, order="C")
            axis = 0
        else:
            sample = z[:, :SAMPLE] - v[:, :SAMPLE]
            axis = -1
        span = np.maximum.reduce(sample, axis=axis)
        span -= np.minimum.reduce(sample, axis=axis)
        # NaN span (non-finite sample): not near-equal, tried and failed
        limit = min(NEAR_EQUAL_SPAN[z.dtype] * T, float(np.finfo(z.dtype).max))  # T ≤ 1e300 in float32
        return span < z.dtype.type(limit)


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

    The fast passes run chunk by chunk (over threads, see ``_chunks``) and leave a few numbers per row; the
    certificate then judges all rows at once, and the rows it refuses are recomputed by the careful
    algorithm, again chunk by chunk.
    """
    leading, n = student.shape[:-1], student.shape[-1]
    z, v = student.reshape(-1, n), teacher.reshape(-1, n)
    n_rows = z.shape[0]
    dtype = z.dtype
    entropy = value == "soft_cross_entropy"
    values = np.empty(n_rows, dtype=dtype) if value is not None else None
    grad = np.empty((n_rows, n), dtype=dtype) if grad_scale is not None else None
    scale = 1.0 if grad_scale is None else float(grad_scale)
    try_fast = ~near_equal_rows(z, v, T) if n > 1 else np.zeros(n_rows, dtype=bool)

    def careful(rows: slice | np.ndarray) -> None:
        row_values, row_grad = _careful_rows(z[rows], v[rows], T, entropy, grad is not None, scale)
        if values is not None:
            values[rows] = row_values
        if grad is not None:
            grad[rows] = row_grad

    if try_fast.any():
        stats = np.empty((N_STATS, n_rows))

        # two chunk arrays (three without a gradient; four when transposed) per worker
        scratch = 4 if n <= TRANSPOSED_MAX_CLASSES else (2 if grad is not None else 3)

        def fast(rows: slice) -> None:
            grad_out = grad[rows] if grad is not None else None
            _fast_stats(z[rows], v[rows], T, stats[:, rows], entropy, grad_out, scale)

        run_chunks(fast, n_rows, n, scratch=scratch)
        kl, teacher_entropy, _, certified = _certify(dtype, n, stats, entropy, grad is not None, scale)
        certified &= try_fast
        if values is not None:
            values[...] = kl if teacher_entropy is None else kl + teacher_entropy
        refused = None if certified.all() else np.flatnonzero(~certified)
        if refused is not None:
            run_chunks(
                lambda rows: careful(refused[rows]),
                refused.size,
                n,
                scratch=CAREFUL_SCRATCH,
                max_chunk=CAREFUL_MAX_CHUNK,
            )
    else:  # every row careful: the careful algorithm's own chunking (it makes more temporaries)
        certified = try_fast
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
