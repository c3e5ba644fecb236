r""":func:`check_topk_loss`: the public check of a loss against a top-k (sparse) teacher (``--kind topk``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from .._arrays import check_choice
from .checks import _check
from .reports import Finding, Report
from .topk_family import TOPK_CONVENTIONS

__all__ = ["check_topk_loss"]


def check_topk_loss(
    fn: Any, framework: str = "torch", *,
    grad_fn: Callable | None = None, t2_scaling: bool | None = None, convention: str | None = None,
    T: float | None = None, name: str | None = None, args: Mapping[str, Any] | None = None,
    init: Mapping[str, Any] | None = None, roles: Mapping[str, str] | None = None,
) -> Report:  # fmt: skip
    r"""Check a loss against a top-k (sparse) teacher — dense student logits, the teacher's (values, indices).

    Parameters
    ----------
    fn : callable or class
        The loss as it is written (see :func:`check_soft_loss`). Its arguments are matched by name: the
        student's dense logits ``(B, V)`` or ``(B, S, V)`` (``student_logits``, ``logits``…), the teacher's
        top-k values ``(…, k)`` — log-probabilities at T = 1, largest first (``teacher_values``,
        ``teacher_topk_logprobs``, ``topk_logprobs``, ``target_values``…) — and their vocabulary ids
        ``(…, k)``, int64 (``teacher_indices``, ``topk_ids``, ``target_ids``…); optionally the temperature,
        ``labels`` (-100 at padding) or ``mask`` (True where a position counts). It must return one number.
    framework : {"torch", "jax", "tensorflow", "numpy"}, default "torch"
    grad_fn : callable, optional
        NumPy only: the gradient w.r.t. the student logits, with the same parameters as ``fn``.
    t2_scaling : bool, optional
        None (default): with or without T², reported; True or False: the other is a finding.
    convention : {"renormalized", "dense_student", "tail"}, optional
        The convention the code claims (:mod:`kdcore.topk`). None (default) accepts any of the three and
        reports the one found; given, another one is a finding (``topk-student-renormalized`` for a
        renormalised student where the dense one is claimed, else ``topk-convention-mismatch``). ``"tail"``
        runs the battery at T = 1, the only temperature where the tail is defined.
    T : float, optional
        The temperature the loss has built in (no parameter for it): the battery runs at that value.
    name, args, init, roles : optional
        As :func:`check_soft_loss`.

    Returns
    -------
    Report
        ``ok`` when value and gradient match :func:`kdcore.topk_kl_divergence` (or its soft cross-entropy)
        under one convention, in one direction, with or without T², reduced over the kept tokens, on every
        case of :data:`kdcore.verify.topk_battery.TOPK_BATTERY`; ``report.convention`` names what was found.

    Raises
    ------
    kdcore.verify.binding.BindingError, ValueError, kdcore.adapters.FrameworkNotInstalledError
        As :func:`check_soft_loss`; also for an unknown ``convention``.

    Notes
    -----
    The battery has k from 1 to V, ties, masked vocabulary, padding with ``-100`` labels, T = 0.5 and 2 (where
    only the renormalised conventions are defined) and a confident teacher whose top k leave a tail of
    1e-10 … 1e-3. The real mistakes have codes: ``topk-not-renormalized`` (the tail dropped),
    ``topk-tail-clamped``, ``topk-tail-temperature``, ``topk-student-renormalized``,
    ``topk-indices-misaligned``; ``docs/verify.md`` documents each.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import topk_kl_divergence, topk_kl_divergence_grad
    >>> from kdcore.verify import check_topk_loss
    >>> def sparse_kl(logits, target_ids, target_values, mask):
    ...     return topk_kl_divergence(logits, target_values, target_ids, mask=mask, convention="dense_student")
    >>> def sparse_kl_grad(logits, target_ids, target_values, mask):
    ...     return topk_kl_divergence_grad(logits, target_values, target_ids, mask=mask,
    ...                                    convention="dense_student")
    >>> report = check_topk_loss(sparse_kl, "numpy", grad_fn=sparse_kl_grad)
    >>> report.ok
    True
    >>> print(report.convention.split("; ")[0])
    dense_student: the teacher renormalised over the k stored classes, the student's full log-softmax gathered at them (DistillKit's default)
    """
    if convention is not None:
        check_choice(convention, "convention", TOPK_CONVENTIONS)
    tail_at_one = convention == "tail" and T is None
    report = _check(
        fn, "topk", framework, grad_fn, t2_scaling, name, args=args, init=init, roles=roles,
        built_in={"T": 1.0 if tail_at_one else T}, weight_on=convention,
    )  # fmt: skip
    if not tail_at_one:
        return report
    # T = 1 was the check's choice, not the loss's: say so instead of "built in".
    notes = tuple(
        Finding(
            "fixed-parameters",
            "the tail convention is defined at T = 1 only, so the battery ran at T = 1 (a missing or extra T² "
            "cannot be detected there)",
        )
        if note.code == "fixed-parameters"
        else note
        for note in report.notes
    )
    return dataclasses.replace(report, notes=notes)
