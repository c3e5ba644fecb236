r"""Any kdcore loss over logits too large for memory: rows stream through in chunks, the total stays exact.

A language model's logits for a batch of 4096 tokens over a 128 000-token vocabulary are 2 GiB per array in
float32. :func:`stream_loss` computes any of kdcore's losses on such arrays — memory-mapped ``.npy`` files,
``.npz`` members, ``.safetensors`` tensors (:mod:`kdcore.arrays_on_disk`), or arrays already in memory —
a chunk of rows at a time:

* **the same numbers** as the in-memory function: each chunk goes through that very function with
  ``reduction="none"``, and a row's value does not depend on which other rows are in its call
  (``kdcore/_chunks.py``), so every per-position value is the in-memory one, bit for bit;
* **an exact total**: ``"sum"`` and ``"mean"`` add the per-position values exactly — the sum of the
  chunks' float64 values is carried as a short list of floats whose sum is exact (``math.fsum``'s correctly
  rounded sums and their remainders), then rounded once. The in-memory functions add with NumPy's pairwise
  summation instead, whose error grows like :math:`\log_2(n)\,\varepsilon` (and is float32's for float32
  input), so the two totals may differ in the last bits: the streamed one is the correctly rounded sum;
* **bounded memory**: a chunk of a memory-mapped input is a view of the file, not a copy; the pages it
  used are given back when it is done (:meth:`~kdcore.arrays_on_disk.ArrayOnDisk.release`); its gradient
  is written to an ``.npy`` file (:class:`~kdcore.arrays_on_disk.NpyRowWriter`, atomic) before the next
  chunk starts. What is held at once: the chunk's gradient, the kept rows of a chunk whose kept
  positions are scattered (a copy; runs of kept positions, as with padding at the end of each sequence,
  are read as views), a deflated member's or a bfloat16 tensor's decoded rows, the in-memory function's
  own temporaries (a few rows' worth per thread, ``kdcore/_chunks.py``), and the output (one value per
  position for ``reduction="none"``). benchmarks/bench_vocab.py measures it; docs/performance.md records it.
  The careful kernels of the mixture family (JSD, skew KL both ways), which compute the rows their fast
  path refuses, are the exception to "a few rows": they hold a few dozen float64 arrays the length of a
  row per row in work, per thread, at least one row at a time, whatever the chunk. ``kdcore.num_threads(1)`` holds one thread's worth; a larger
  ``chunk_rows`` makes it a smaller part of the whole.

Token-level inputs follow the rules of the in-memory losses (docs/divergences.md): ``mask`` (True = keep)
and, where ``labels`` are given, ``labels == ignore_index`` drop positions; a dropped position is never
computed (its logits may be anything), its value and gradient are 0.0, and ``"mean"`` is the mean over kept

The package, by concern: :mod:`~kdcore.streaming.losses` (which losses stream, and the arrays each takes),
:mod:`~kdcore.streaming.sources` (rows from files or memory; the kept positions),
:mod:`~kdcore.streaming.plan` (the checks, then the chunk loop) and :mod:`~kdcore.streaming.totals` (the
exact sum).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .losses import LOSSES
from .plan import Plan, StreamedLoss, prepare
from .totals import exact_sum

__all__ = ["LOSSES", "Plan", "StreamedLoss", "exact_sum", "prepare", "stream_loss"]


def stream_loss(
    loss: str | Callable,
    student_logits: object,
    teacher_logits: object = None,
    labels: object = None,
    **options: Any,
) -> StreamedLoss:
    r"""A kdcore loss of logits on disk (or in memory), computed chunk by chunk, exactly, in bounded memory.

    Parameters
    ----------
    loss : str or callable
        The loss: one of :data:`LOSSES` (``"kl_divergence"``, ``"soft_cross_entropy"``,
        ``"reverse_kl_divergence"``, ``"jensen_shannon_divergence"``, ``"skew_kl_divergence"``,
        ``"skew_reverse_kl_divergence"``, ``"distillation_loss"``, ``"cross_entropy"``,
        ``"decoupled_kd_loss"`` and its two parts, ``"logit_mse"``, ``"topk_kl_divergence"``,
        ``"topk_soft_cross_entropy"``), or that function itself.
    student_logits, teacher_logits : path, ArrayOnDisk or array_like, shape (..., N)
        Logits :math:`z` and :math:`v`, class axis last, same shape. A path is opened with
        :func:`kdcore.arrays_on_disk.open_array` (use that function for an ``.npz`` or ``.safetensors``
        file holding several arrays: it takes the ``key``); an ``np.memmap`` is read through its map.
        ``cross_entropy`` takes no teacher; the top-k losses take the pair ``(teacher_values,
        teacher_indices)``, each of shape (..., k), read row by row as the student is.
    labels : path, ArrayOnDisk or array_like of int, shape (...), optional
        Class indices, for the losses that take them. For the others, only their ``ignore_index``
        positions are used: they are dropped (padding).
    mask : path, ArrayOnDisk or array_like of bool, shape (...), optional
        True keeps a position; combined with ``labels != ignore_index`` by AND.
    ignore_index : int, default -100
        The label value that marks a dropped position.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"``: over kept positions.
    grad_out : path, optional
        Write the gradient w.r.t. the student logits (shape (..., N), reduced as ``reduction`` says: each
        row divided by the number of kept positions for ``"mean"``; 0 at dropped positions) to this ``.npy``
        file, atomically.
    chunk_rows : int, optional
        Rows per chunk; default :math:`\max(1, 2^{23} / N)`.
    dtype : {None, "float32", "float64"}, optional
        Compute each chunk in this dtype (``"float64"``: the loss of float32 logits to float64's accuracy).
        Default: the in-memory functions' rule (float32 stays float32; integers and float16 widen).
    progress : callable, optional
        Called as ``progress(rows_done, rows_total)`` after each chunk.
    **parameters
        The loss's other arguments: ``T``, ``alpha``, ``beta``, ``skew``, ``t2_scaling``, ``soft``,
        ``centered``, ``convention``, ``values``, with the same meaning and defaults as in the function itself. These, and every
        argument above after ``labels``, are passed by keyword.

    Returns
    -------
    StreamedLoss
        ``value`` (``"mean"``/``"sum"``: a float64) or ``values`` (``"none"``), with what was computed.

    Raises
    ------
    TypeError, ValueError
        Before any row is computed: an unknown loss, a missing or unreadable file, arrays that are not
        real numbers, shapes that disagree, labels out of range, a bad parameter (the loss's own message).

    Notes
    -----
    With :math:`\ell_i` the in-memory function's value at position :math:`i` (``reduction="none"``) and
    :math:`K` the kept positions,

    .. math::

        \text{sum} = \operatorname{fl}\Bigl(\sum_{i \in K} \ell_i\Bigr), \qquad
        \text{mean} = \operatorname{fl}\Bigl(\frac{1}{|K|}\sum_{i \in K} \ell_i\Bigr),

    each sum exact and rounded once (:func:`exact_sum`). The gradient's rows are the in-memory
    function's (``reduction="none"``), divided by :math:`|K|` for ``"mean"``.

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> from kdcore import kl_divergence
    >>> from kdcore.streaming import stream_loss
    >>> rng = np.random.default_rng(0)
    >>> z, v = rng.normal(size=(2, 5, 7)), rng.normal(size=(2, 5, 7))
    >>> labels = np.array([[3, 1, 4, -100, -100], [1, 5, 2, 6, -100]])  # -100: padding
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     np.save(pathlib.Path(tmp) / "z.npy", z)
    ...     np.save(pathlib.Path(tmp) / "v.npy", v)
    ...     result = stream_loss("kl_divergence", f"{tmp}/z.npy", f"{tmp}/v.npy", labels, T=2.0,
    ...                          chunk_rows=3, grad_out=f"{tmp}/grad.npy")
    ...     grad = np.load(f"{tmp}/grad.npy")
    >>> result.kept, result.chunks
    (7, 4)
    >>> kept = labels != -100
    >>> bool(np.isclose(result.value, kl_divergence(z[kept], v[kept], T=2.0), rtol=1e-15))
    True
    >>> float(abs(grad[~kept]).max())  # padding gets no gradient
    0.0
    """
    progress = options.pop("progress", None)
    plan = prepare(loss, student_logits, teacher_logits, labels, **options)
    with plan:
        return plan.run(progress)
