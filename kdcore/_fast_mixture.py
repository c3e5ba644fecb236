r"""The mixture family's fast path: skew KL, skew reverse KL and the generalised JSD in a few passes per row.

The careful algorithm (``kdcore/_mixture.py``) builds every mixture divergence from an exact match of the
two rows and sums Taylor series: ~100 array passes per row. Almost every row in practice needs far less.
This module computes, per chunk of rows, the quantities the KL kernel (``kdcore/_fast.py``) forms —
:math:`q = \operatorname{softmax}(v/T)`, :math:`f = (z - v)/T - c` for any centre :math:`c`,
:math:`\sigma = \sum q\operatorname{expm1}(f)` — and from them the log-ratio

.. math::

    h = \log p - \log q = f - \operatorname{log1p}(\sigma), \qquad g = \operatorname{expm1}(h) = \frac pq - 1,
    \qquad r = e^h, \qquad p = q\,r .

Each divergence is then the non-negative-terms form of ``_mixture.py``,
:math:`D_\lambda(a\|b) = \sum_i a_i\,\varphi(s_i)`, :math:`\varphi(s) = s - \operatorname{log1p}(s)`:

=====================  =========================================  ===========================================
loss                   value                                      :math:`G = \partial L/\partial p` (+ const)
=====================  =========================================  ===========================================
skew KL (α)            :math:`\sum q\varphi(s)`, :math:`s = (1-\alpha)g`           :math:`(1-\alpha)\,s/(1+s)`
skew reverse KL (α)    :math:`\sum p\varphi(s)`, :math:`s = -(1-\alpha)g/r`        :math:`\alpha s/(1+s) - \operatorname{log1p}(s)`
JSD (β)                :math:`\beta\sum q\varphi(s_q) + (1-\beta)\sum p\varphi(s_p)`  :math:`-(1-\beta)\operatorname{log1p}(s_p)`
=====================  =========================================  ===========================================

(:math:`s_q = (1-\beta)g`, :math:`s_p = -\beta g/r`; :math:`-g/r = \operatorname{expm1}(-h)`), and the
student gradient is :math:`p\odot(G - \sum p G)/T`. About fifteen array passes for the value and gradient,
three of them transcendental (``expm1`` twice, ``exp``), plus ``log1p`` once or twice.

Every row also gets a first-order error bound (``kdcore/_mixture_certificate.py`` derives it term by term)
from numbers the passes already have: the spread and centre of :math:`f`, :math:`\sigma`, the total variation
:math:`\sum q|g|`, the value, :math:`\sum p G` and :math:`\max|\gamma|`. Rows whose bound exceeds half the
accuracy contract — and rows that are near-equal on a sample of their classes, which cannot pass — are
recomputed by ``_mixture.mixture_rows``. The value and the gradient are judged separately.

Weights at the ends of [0, 1] (skew 0 is the plain KL, skew 1 and β ∈ {0, 1} give 0) go to the careful
algorithm: there the terms above degenerate (:math:`1 + s \to 0`) and nothing is gained.

The passes run chunk by chunk over threads (``kdcore/_chunks.py``); the gradient is written straight into
its preallocated output, and each worker holds ``SCRATCH`` chunk-sized arrays.
"""

from __future__ import annotations

import numpy as np

from ._chunks import get_num_threads, run_chunks
from ._fast import near_equal_rows, row_einsum
from ._mixture import mixture_rows
from ._mixture_certificate import CERTIFIED_RTOL, mixture_bounds, refined_grad_bound, reverse_kl_grad_bound

KINDS = ("skew_kl", "skew_reverse_kl", "jsd")
# chunk-sized arrays a worker holds at once: q, h (then r, p), g (then log1p s), one work array, and one for
# a·φ(s) and G — the gradient's own output when there is one
SCRATCH = 5
# the careful mixture algorithm keeps many more temporaries per chunk than the KL one
CAREFUL_SCRATCH = 24
STATS = (
    "normaliser",
    "centre",
    "f_max",
    "f_min",
    "sigma",
    "tv",
    "part_q",
    "part_p",
    "g_bar",
    "grad_max",
    "p_max",
)
REVERSE_STATS = ("normaliser", "centre", "f_max", "f_min", "f_bar", "grad_max")
# float64 arrays of the refined gradient bound (the gathered rows, f, h, p, s, G, G′, and temporaries)
REFINE_SCRATCH = 14


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Σ x·y as (rows, 1) float64, for sizes and the centre only (whose accuracy does not matter);
    ``row_einsum`` so that a row alone in its chunk gets the same bits as in a batch."""
    return row_einsum("ij,ij->i", x, y)[:, None].astype(np.float64)


def _accurate_sum(x: np.ndarray) -> np.ndarray:
    """Row sums accumulated in float64 (NumPy's pairwise order, counted by ``summation_roundings``)."""
    return np.sum(x, axis=-1, keepdims=True, dtype=np.float64)


def _row_max_abs(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.max(x, axis=-1, keepdims=True), -np.min(x, axis=-1, keepdims=True)).astype(
        np.float64
    )


def _teacher_probs(v: np.ndarray, T: float) -> tuple[np.ndarray, np.ndarray]:
    """q = ê·(1/Ŝ) and Ŝ (rows, 1) float64, ê computed by the same operations as every other path."""
    q = np.subtract(v, np.max(v, axis=-1, keepdims=True))
    q /= v.dtype.type(T)
    np.exp(q, out=q)
    normaliser = _accurate_sum(q)
    q *= (1.0 / normaliser).astype(v.dtype)
    return q, normaliser


def _mixture_passes(
    kind: str,
    z: np.ndarray,
    v: np.ndarray,
    T: float,
    weight: float,
    stats: dict,
    grad_out: np.ndarray | None,
    scale: float,
) -> None:
    """The fast passes over one chunk (rows, N): writes scale·p ⊙ (G − Σ p G) into ``grad_out`` if given and
    each row's numbers into ``stats`` (name → float64 (rows,) view)."""
    dtype = z.dtype
    one = dtype.type

    def store(name: str, x: np.ndarray) -> None:
        stats[name][...] = np.asarray(x, dtype=np.float64).reshape(-1)

    with np.errstate(all="ignore"):  # non-finite rows fail the certificate and are recomputed
        q, normaliser = _teacher_probs(v, T)
        store("normaliser", normaliser)
        h = np.subtract(z, v)
        h /= one(T)
        centre = _dot(q, h).astype(dtype)
        store("centre", centre)
        h -= centre  # f
        store("f_max", np.max(h, axis=-1))
        store("f_min", np.min(h, axis=-1))
        g = np.expm1(h)
        work = np.multiply(q, g)
        sigma = _accurate_sum(work)
        store("sigma", sigma)
        h -= np.log1p(sigma).astype(dtype)  # h = log p − log q
        np.expm1(h, out=g)  # g = p/q − 1
        np.abs(g, out=work)
        store("tv", _dot(q, work))
        lam = one(weight)
        rest = one(1.0 - weight)
        part = grad_out if grad_out is not None else np.empty_like(g)  # the gradient's memory as scratch
        if kind == "skew_kl":
            np.multiply(g, rest, out=work)  # s = (1 − α) g
            np.log1p(work, out=part)
            np.subtract(work, part, out=part)  # φ(s)
            part *= q
            store("part_q", _accurate_sum(part))
            store("part_p", 0.0)
        else:
            if kind == "jsd":  # β D_β(q ‖ p): s_q = (1 − β) g
                np.multiply(g, rest, out=work)
                np.log1p(work, out=part)
                np.subtract(work, part, out=part)
                part *= q
                store("part_q", _accurate_sum(part))
            else:
                store("part_q", 0.0)
            np.exp(h, out=h)  # r = p/q
            np.divide(g, h, out=work)  # g/r = −expm1(−h)
            # s_p: the mixture over the student, whose own share is α (skew reverse KL) or 1 − β (JSD)
            work *= -(rest if kind == "skew_reverse_kl" else lam)
            np.multiply(h, q, out=h)  # p
            np.log1p(work, out=g)  # log1p(s_p) = log(m/p)
            np.subtract(work, g, out=part)
            part *= h
            store("part_p", _accurate_sum(part))
        if grad_out is None:
            return
        if kind == "skew_kl":  # the others formed p for their value
            np.exp(h, out=h)
            np.multiply(h, q, out=h)  # p
        p = h
        store("p_max", np.max(p, axis=-1))
        if kind == "skew_kl":  # G = (1 − α) s/(1 + s), s in work
            np.add(work, one(1), out=part)
            np.divide(work, part, out=part)
            part *= rest
        elif kind == "skew_reverse_kl":  # G = α s/(1 + s) − log1p(s)
            np.add(work, one(1), out=part)
            np.divide(work, part, out=part)
            part *= lam
            part -= g
        else:  # G = −(1 − β) log1p(s_p)
            np.multiply(g, -rest, out=part)
        np.multiply(p, part, out=work)
        # Ḡ = Σ p G / Σ p: the computed p's common scale cancels, and the gradient's row sums to 0 up to the
        # rounding of its own entries (its rows sum to zero, as the careful algorithm's do)
        g_bar = _accurate_sum(work) / _accurate_sum(p)
        store("g_bar", g_bar)
        part -= g_bar.astype(dtype)
        np.multiply(part, p, out=grad_out)
        grad_out *= one(scale)
        store("grad_max", _row_max_abs(grad_out))


def _refined_grad_bounds(
    kind: str,
    z: np.ndarray,
    v: np.ndarray,
    T: float,
    weight: float,
    stats: dict,
    grad: np.ndarray,
    scale: float,
) -> np.ndarray:
    """The gradient's bound with each class's own error instead of the row's worst (module docstring of
    ``_mixture_certificate``, "The refined gradient bound"), for rows (rows, N) that failed the row-wise one;
    ``stats`` are their first-pass numbers, ``grad`` their fast gradient. Float64 (rows,)."""
    with np.errstate(all="ignore"):
        dtype_t = np.float64
        z64, v64 = z.astype(dtype_t), v.astype(dtype_t)
        shifted = (v64 - np.max(v64, axis=-1, keepdims=True)) / T
        q = np.exp(shifted)
        q /= np.sum(q, axis=-1, keepdims=True)
        f = (z64 - v64) / T - stats["centre"][:, None]
        ell = np.log1p(stats["sigma"])[:, None]
        h = f - ell
        p = q * np.exp(h)
        return refined_grad_bound(
            kind, z.dtype, z.shape[-1], weight, stats, f, h, p, grad.astype(dtype_t), scale
        )


def mixture_fast_rows(
    kind: str,
    student: np.ndarray,
    teacher: np.ndarray,
    T: float,
    weight: float,
    *,
    value: bool,
    grad_scale: float | None,
    certified_out: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-sample mixture divergence ``kind`` and/or its student gradient times ``grad_scale``·T (so 1/T
    gives the plain gradient), for checked logits (..., N), 0 < weight < 1.

    Returns ``(values (...), grad (..., N))``, None where not asked for. ``certified_out`` (bool, one per
    sample), if given, receives which rows the fast path certified (value and, if asked, gradient).
    """
    leading, n = student.shape[:-1], student.shape[-1]
    z, v = student.reshape(-1, n), teacher.reshape(-1, n)
    n_rows = z.shape[0]
    dtype = z.dtype
    values = np.empty(n_rows, dtype=dtype) if value else None
    grad = np.empty((n_rows, n), dtype=dtype) if grad_scale is not None else None
    scale = 1.0 if grad_scale is None else float(grad_scale)
    try_fast = ~near_equal_rows(z, v, T) if n > 1 else np.zeros(n_rows, dtype=bool)
    value_ok = np.zeros(n_rows, dtype=bool)
    grad_ok = np.zeros(n_rows, dtype=bool)
    retry = np.zeros(0, dtype=np.intp)
    if try_fast.any():
        table = np.zeros((len(STATS), n_rows))
        columns = dict(zip(STATS, table, strict=True))

        def fast(rows: slice) -> None:
            grad_out = grad[rows] if grad is not None else None
            chunk_stats = {name: column[rows] for name, column in columns.items()}
            _mixture_passes(kind, z[rows], v[rows], T, weight, chunk_stats, grad_out, scale)

        scratch = SCRATCH - (grad is not None)
        # a chunk is at least one row: with few, long rows (8 × 128 000) every worker's scratch rows would
        # together exceed half an input, so fewer workers run (the peak stays within 2 inputs)
        workers = min(get_num_threads(), max(1, n_rows // (2 * scratch)))
        run_chunks(fast, n_rows, n, scratch=scratch, workers=workers)
        fast_values, value_bound, grad_bound = mixture_bounds(
            kind, dtype, n, weight, columns, grad is not None, scale
        )
        tolerance = CERTIFIED_RTOL[dtype]
        with np.errstate(all="ignore"):
            value_ok = try_fast & (value_bound <= tolerance * fast_values) & (fast_values > 0)
            if grad is not None:
                grad_ok = (
                    try_fast & (grad_bound <= tolerance * columns["grad_max"]) & (columns["grad_max"] > 0)
                )
                retry = np.flatnonzero(
                    try_fast & ~grad_ok & (columns["grad_max"] > 0) & np.isfinite(grad_bound)
                )
        if retry.size:
            # the per-class bound, only for the rows the row-wise one refused; its float64 arrays count
            # as 8 / itemsize input-sized arrays each
            def refine(chunk: slice) -> None:
                rows = retry[chunk]
                chunk_stats = {name: column[rows] for name, column in columns.items()}
                bound = _refined_grad_bounds(
                    kind, z[rows], v[rows], T, weight, chunk_stats, grad[rows], scale
                )
                with np.errstate(invalid="ignore"):
                    grad_ok[rows] = bound <= tolerance * chunk_stats["grad_max"]

            run_chunks(refine, retry.size, n, scratch=REFINE_SCRATCH * 8 // dtype.itemsize)
        if values is not None:
            values[...] = fast_values
    value_refused = ~value_ok if values is not None else np.zeros(n_rows, dtype=bool)
    grad_refused = ~grad_ok if grad is not None else np.zeros(n_rows, dtype=bool)
    refused = np.flatnonzero(value_refused | grad_refused)
    if refused.size:
        wants = (None, "student")
        factor = dtype.type(scale * T)

        def careful(chunk: slice) -> None:
            rows = refused[chunk]
            row_values, row_grad = mixture_rows(kind, z[rows], v[rows], T, weight, wants)
            if values is not None:
                keep = value_refused[rows]
                values[rows[keep]] = row_values[keep]
            if grad is not None:
                keep = grad_refused[rows]
                grad[rows[keep]] = row_grad[keep] * factor if factor != 1 else row_grad[keep]

        run_chunks(careful, refused.size, n, scratch=CAREFUL_SCRATCH)
    if certified_out is not None:
        certified_out[...] = (~(value_refused | grad_refused)).reshape(leading)
    return (
        None if values is None else values.reshape(leading),
        None if grad is None else grad.reshape(*leading, n),
    )


def _reverse_passes(
    z: np.ndarray, v: np.ndarray, T: float, stats: dict, grad_out: np.ndarray, scale: float
) -> None:
    """Reverse KL's student gradient on one chunk, the KL kernel's roles exchanged: p = softmax(z/T) is
    formed as a teacher's, f′ = (v − z)/T − c′, and scale·(−p ⊙ (f′ − Σ p f′)) goes into ``grad_out``."""
    dtype = z.dtype

    def store(name: str, x: np.ndarray) -> None:
        stats[name][...] = np.asarray(x, dtype=np.float64).reshape(-1)

    with np.errstate(all="ignore"):
        p, normaliser = _teacher_probs(z, T)
        store("normaliser", normaliser)
        np.subtract(v, z, out=grad_out)
        grad_out /= dtype.type(T)
        centre = _dot(p, grad_out).astype(dtype)
        store("centre", centre)
        grad_out -= centre
        store("f_max", np.max(grad_out, axis=-1))
        store("f_min", np.min(grad_out, axis=-1))
        work = np.multiply(p, grad_out)
        f_bar = _accurate_sum(work)
        store("f_bar", f_bar)
        grad_out -= f_bar.astype(dtype)
        grad_out *= p
        grad_out *= dtype.type(-scale)
        store("grad_max", _row_max_abs(grad_out))


def reverse_kl_grad_rows(
    student: np.ndarray,
    teacher: np.ndarray,
    T: float,
    grad_scale: float,
    certified_out: np.ndarray | None = None,
) -> np.ndarray:
    """grad_scale·T·∂KL(p ‖ q)/∂z of checked logits (..., N): the fast passes, the certificate, and
    ``Match.kl_teacher_grad`` on the exchanged roles for the rows it refuses."""
    from ._match import match

    leading, n = student.shape[:-1], student.shape[-1]
    z, v = student.reshape(-1, n), teacher.reshape(-1, n)
    n_rows = z.shape[0]
    dtype = z.dtype
    grad = np.empty((n_rows, n), dtype=dtype)
    ok = np.zeros(n_rows, dtype=bool)
    if n > 1 and n_rows:
        table = np.zeros((len(REVERSE_STATS), n_rows))
        columns = dict(zip(REVERSE_STATS, table, strict=True))

        def fast(rows: slice) -> None:
            chunk_stats = {name: column[rows] for name, column in columns.items()}
            _reverse_passes(z[rows], v[rows], T, chunk_stats, grad[rows], grad_scale)

        run_chunks(fast, n_rows, n, scratch=2)
        bound = reverse_kl_grad_bound(dtype, n, columns, grad_scale)
        with np.errstate(all="ignore"):
            ok = (bound <= CERTIFIED_RTOL[dtype] * columns["grad_max"]) & (columns["grad_max"] > 0)
    refused = np.flatnonzero(~ok)
    if refused.size:
        factor = dtype.type(grad_scale * T)

        def careful(chunk: slice) -> None:
            rows = refused[chunk]
            row_grad = match(v[rows], z[rows], T).kl_teacher_grad()  # the roles exchanged
            grad[rows] = row_grad * factor if factor != 1 else row_grad

        run_chunks(careful, refused.size, n, scratch=8)
    if certified_out is not None:
        certified_out[...] = ok.reshape(leading)
    return grad.reshape(*leading, n)


def certificate_margins(
    kind: str, student: np.ndarray, teacher: np.ndarray, T: float, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of 2-D checked logits, the value's and the gradient's bound / (tolerance × size): a row's
    value (gradient) is certified when its margin is at most 1 (and it is not near-equal). For tests and
    benchmarks: it runs the fast passes on the whole input at once, without the careful path."""
    n_rows, n = student.shape
    table = np.zeros((len(STATS), n_rows))
    columns = dict(zip(STATS, table, strict=True))
    grad = np.empty_like(student)
    _mixture_passes(kind, student, teacher, T, weight, columns, grad, 1.0 / T)
    values, value_bound, grad_bound = mixture_bounds(kind, student.dtype, n, weight, columns, True, 1.0 / T)
    refined = _refined_grad_bounds(kind, student, teacher, T, weight, columns, grad, 1.0 / T)
    tolerance = CERTIFIED_RTOL[student.dtype]
    with np.errstate(all="ignore"):
        grad_margin = np.fmin(grad_bound, refined) / (tolerance * columns["grad_max"])
        return value_bound / (tolerance * values), grad_margin


def reverse_kl_margins(student: np.ndarray, teacher: np.ndarray, T: float) -> np.ndarray:
    """Per row of 2-D checked logits, reverse KL's student-gradient bound / (tolerance × max |γ|)."""
    n_rows, n = student.shape
    table = np.zeros((len(REVERSE_STATS), n_rows))
    columns = dict(zip(REVERSE_STATS, table, strict=True))
    grad = np.empty_like(student)
    _reverse_passes(student, teacher, T, columns, grad, 1.0 / T)
    bound = reverse_kl_grad_bound(student.dtype, n, columns, 1.0 / T)
    with np.errstate(all="ignore"):
        return bound / (CERTIFIED_RTOL[student.dtype] * columns["grad_max"])
