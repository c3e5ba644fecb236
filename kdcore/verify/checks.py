r"""The public checks: :func:`check_soft_loss` and :func:`check_distillation_loss`."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

from .adapters import Adapter, get_adapter
from .battery import FINITE_DIFFERENCE_REGIMES, MASK_LOGIT, battery_cases, infinite_mask_probe
from .diagnosis import diagnose
from .hypotheses import FD_DIRECTIONS
from .reports import Finding, Report
from .running import Outcome, Recorder, run_case

__all__ = ["KINDS", "check_distillation_loss", "check_signature", "check_soft_loss", "function_name"]

KINDS = ("soft", "distillation")


def function_name(fn: Callable) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return f"{module}:{name}" if module and module != "__main__" else name


_SIGNATURES = {
    "soft": ("student_logits", "teacher_logits", "T"),
    "distillation": ("student_logits", "teacher_logits", "labels", "T", "alpha"),
}


def check_signature(fn: Callable, kind: str, role: str = "fn") -> None:
    """Raise TypeError unless ``fn`` accepts the kind's arguments positionally."""
    if not callable(fn):
        raise TypeError(f"{role} must be callable, got {type(fn).__name__}")
    expected = _SIGNATURES[kind]
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and C functions have none: let the battery find out
        return
    try:
        signature.bind(*expected)
    except TypeError as error:
        raise TypeError(
            f"{role} must accept {role}({', '.join(expected)}) for a {kind} loss; "
            f"{function_name(fn)} has signature {signature} ({error})"
        ) from None


def _check(
    fn: Callable, kind: str, framework: str, grad_fn: Callable | None, t2_scaling: bool, name: str | None
) -> Report:
    check_signature(fn, kind)
    if grad_fn is not None:
        if framework != "numpy":
            raise ValueError(f"grad_fn is only for framework='numpy' ({framework} has autograd)")
        check_signature(grad_fn, kind, role="grad_fn")
    if not isinstance(t2_scaling, bool):
        raise TypeError(f"t2_scaling must be True or False, got t2_scaling={t2_scaling!r}")
    adapter = get_adapter(framework)
    recorder = Recorder()
    cases = [case for case in battery_cases() if adapter.supports(case.dtype)]
    outcomes = [run_case(fn, grad_fn, kind, adapter, case, recorder) for case in cases]
    findings, convention, results = diagnose(kind, outcomes, t2_scaling)
    notes = _notes(fn, grad_fn, kind, adapter, recorder, outcomes, len(cases) < len(battery_cases()))
    weight = "T²·" if t2_scaling else ""
    soft = f"{weight}KL(teacher ‖ student) or {weight}soft cross-entropy, mean over samples (batchmean)"
    reference = soft if kind == "soft" else f"α·CE(labels, z) at T = 1 + (1 − α)·[{soft}]"
    return Report(
        kind=kind,
        framework=framework,
        function=name or function_name(fn),
        ok=not findings,
        reference=reference,
        convention=convention,
        t2_scaling=t2_scaling,
        findings=tuple(findings),
        cases=tuple(results[case.id] for case in cases),
        notes=tuple(notes),
    )


def _notes(
    fn: Callable,
    grad_fn: Callable | None,
    kind: str,
    adapter: Adapter,
    recorder: Recorder,
    outcomes: list[Outcome],
    skipped_float64: bool,
) -> list[Finding]:
    notes = []
    probe = run_case(fn, grad_fn, kind, adapter, infinite_mask_probe(), recorder)
    if probe.evaluation is not None and (not math.isfinite(probe.value) or not probe.gradient_finite()):
        notes.append(
            Finding(
                "nan-with-infinite-mask",
                "with classes masked by -inf in both student and teacher, the loss (or its gradient) is not "
                "finite, although masked classes contribute nothing (0·log 0 = 0); the battery masks with "
                f"{MASK_LOGIT:g} instead. Where your code masks with -inf, zero the masked terms with "
                "where(mask, 0, term) before summing",
                {"got": repr(probe.value)},  # text: a NaN would make reports unequal to themselves
            )
        )
    if recorder.messages:
        notes.append(
            Finding("warnings", "the loss emitted warnings", {"messages": list(recorder.messages)[:5]})
        )
    changed = sorted(
        {
            f"{o.case.dtype.name} → {o.evaluation.value_dtype}"
            for o in outcomes
            if o.evaluation is not None and o.evaluation.value_dtype != o.case.dtype.name
        }
    )
    if changed:
        notes.append(
            Finding("dtype-changed", "the loss returned another dtype than its inputs'", {"dtypes": changed})
        )
    if skipped_float64:
        notes.append(
            Finding(
                "float64-skipped", f"{adapter.name} cannot compute in float64 here: float64 cases skipped"
            )
        )
    if not adapter.has_autograd and grad_fn is None:
        notes.append(
            Finding(
                "finite-differences",
                "no grad_fn given: the gradient was checked by finite differences along "
                f"{FD_DIRECTIONS} random directions, on the float64 cases of the regimes "
                f"{', '.join(sorted(FINITE_DIFFERENCE_REGIMES))}",
            )
        )
    return notes


def check_soft_loss(
    fn: Callable,
    framework: str = "torch",
    *,
    grad_fn: Callable | None = None,
    t2_scaling: bool = True,
    name: str | None = None,
) -> Report:
    r"""Check a soft distillation loss ``fn(student_logits, teacher_logits, T) -> scalar`` against kdcore.

    Parameters
    ----------
    fn : callable
        The loss, in the framework's arrays: student and teacher logits of shape (B, N) (class axis last),
        the temperature as a Python float. It must return one number.
    framework : {"torch", "jax", "numpy"}, default "torch"
        What ``fn`` is written in. The framework is imported now; kdcore does not depend on it.
    grad_fn : callable, optional
        NumPy only: ``grad_fn(student_logits, teacher_logits, T)``, the loss's gradient w.r.t. the student
        logits, shape (B, N). Without it, the gradient is checked by finite differences (float64 cases of
        moderate logits). PyTorch and JAX gradients come from their autograd.
    t2_scaling : bool, default True
        Expect the :math:`T^2` factor of Hinton et al.; ``False`` for code that applies it elsewhere.
    name : str, optional
        How the report names ``fn`` (default: its module and qualified name).

    Returns
    -------
    Report
        ``ok`` when the value matches :math:`T^2\,\mathrm{KL}(q\,\|\,p)` or :math:`T^2` times the soft
        cross-entropy (mean over samples) and the gradient matches :math:`T\,(p - q)/B` on every case,
        within the per-dtype tolerances; otherwise the findings say why.

    Raises
    ------
    TypeError
        If ``fn`` (or ``grad_fn``) does not accept three positional arguments.
    ValueError
        For an unknown framework, or ``grad_fn`` with a framework that has autograd.
    kdcore.adapters.FrameworkNotInstalledError
        When the framework is not installed.

    Notes
    -----
    The expected value and gradient, with :math:`B` samples, are

    .. math::

        L = \frac{T^2}{B}\sum_b \mathrm{KL}(q_b\,\|\,p_b) \quad\text{or}\quad
        \frac{T^2}{B}\sum_b \Bigl(-\sum_i q_{bi}\log p_{bi}\Bigr), \qquad
        \frac{\partial L}{\partial z_b} = \frac{T\,(p_b - q_b)}{B}.

    The battery (:data:`BATTERY`) runs 12 inputs in float32 and float64; ``docs/verify.md`` lists them,
    the tolerances and every finding's code.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import kl_divergence, kl_divergence_grad
    >>> from kdcore.verify import check_soft_loss
    >>> report = check_soft_loss(
    ...     lambda z, v, T: T**2 * kl_divergence(z, v, T),
    ...     framework="numpy",
    ...     grad_fn=lambda z, v, T: T**2 * kl_divergence_grad(z, v, T),
    ...     name="kdcore's own")
    >>> report.ok, report.convention
    (True, 'kl')
    """
    return _check(fn, "soft", framework, grad_fn, t2_scaling, name)


def check_distillation_loss(
    fn: Callable,
    framework: str = "torch",
    *,
    grad_fn: Callable | None = None,
    t2_scaling: bool = True,
    name: str | None = None,
) -> Report:
    r"""Check a full distillation loss ``fn(student_logits, teacher_logits, labels, T, alpha)`` against kdcore.

    Parameters
    ----------
    fn : callable
        The loss: student and teacher logits of shape (B, N), integer labels of shape (B,) (int64), the
        temperature and the hard-loss weight :math:`\alpha` as Python floats. It must return one number.
    framework : {"torch", "jax", "numpy"}, default "torch"
        What ``fn`` is written in.
    grad_fn : callable, optional
        NumPy only: ``grad_fn(student_logits, teacher_logits, labels, T, alpha)``, the gradient w.r.t. the
        student logits.
    t2_scaling : bool, default True
        Expect the soft term to be multiplied by :math:`T^2`.
    name : str, optional
        How the report names ``fn``.

    Returns
    -------
    Report
        ``ok`` when the loss matches :func:`kdcore.distillation_loss` (soft term in either convention) in
        value and gradient on every case of the battery.

    Raises
    ------
    TypeError, ValueError, kdcore.adapters.FrameworkNotInstalledError
        As :func:`check_soft_loss`.

    Notes
    -----
    .. math::

        L = \frac1B \sum_b \Bigl[\alpha\,\mathrm{CE}(y_b, z_b) + (1 - \alpha)\,T^2\,L_\text{soft}(z_b, v_b, T)\Bigr],
        \qquad
        \frac{\partial L}{\partial z_b} = \frac{\alpha\,(\operatorname{softmax}(z_b) - e_{y_b})
            + (1 - \alpha)\,T\,(p_b - q_b)}{B}.

    The battery uses :math:`\alpha` from 0 to 1 (each case has its own, see :data:`BATTERY`).

    Examples
    --------
    >>> from kdcore import distillation_loss, distillation_loss_grad
    >>> from kdcore.verify import check_distillation_loss
    >>> report = check_distillation_loss(
    ...     lambda z, v, y, T, a: distillation_loss(z, v, y, T, 1 - a),  # α on the wrong term
    ...     framework="numpy",
    ...     grad_fn=lambda z, v, y, T, a: distillation_loss_grad(z, v, y, T, 1 - a))
    >>> report.codes
    ('alpha-swapped',)
    """
    return _check(fn, "distillation", framework, grad_fn, t2_scaling, name)
