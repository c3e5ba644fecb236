r"""The public checks: :func:`check_soft_loss` and :func:`check_distillation_loss`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .._arrays import check_alpha, check_choice, check_real, check_temperature
from .adapters import Adapter, get_adapter
from .battery import FINITE_DIFFERENCE_REGIMES, MASK_LOGIT, battery_cases, infinite_mask_probe
from .binding import Binding, bind, function_name
from .diagnosis import diagnose
from .families import FAMILY_KINDS, reference_text
from .hypotheses import FD_DIRECTIONS
from .reports import Finding, Report
from .running import Outcome, Recorder, run_case, scalars
from .token_battery import family_cases, family_infinite_mask_probe
from .topk_battery import topk_cases, topk_infinite_mask_probe
from .topk_family import TOPK_CONVENTIONS, topk_reference_text

__all__ = [
    "ALPHA_ON",
    "KINDS",
    "WEIGHT_ON",
    "check_distillation_loss",
    "check_divergence_loss",
    "check_soft_loss",
]

KINDS = ("soft", "distillation", *FAMILY_KINDS, "topk")
ALPHA_ON = ("hard", "soft")  # which term α weighs; (1 − α) weighs the other
WEIGHT_ON = ("teacher", "student")  # which distribution the JSD's β weighs


def _check(
    fn: Any,
    kind: str,
    framework: str,
    grad_fn: Callable | None,
    t2_scaling: bool | None,
    name: str | None,
    *,
    args: Mapping[str, Any] | None = None,
    init: Mapping[str, Any] | None = None,
    roles: Mapping[str, str] | None = None,
    built_in: Mapping[str, float | None] | None = None,
    alpha_on: str = "hard",
    weight_on: str | None = None,
) -> Report:
    family = kind in FAMILY_KINDS or kind == "topk"
    if not (isinstance(t2_scaling, bool) or (family and t2_scaling is None)):
        raise TypeError(f"t2_scaling must be True or False, got t2_scaling={t2_scaling!r}")
    check_choice(alpha_on, "alpha_on", ALPHA_ON)
    if weight_on is not None and kind == "topk":  # for top-k, the convention the code claims
        check_choice(weight_on, "convention", TOPK_CONVENTIONS)
    elif weight_on is not None:
        check_choice(weight_on, "weight_on", WEIGHT_ON)
    fixed = {}
    for role, value in (built_in or {}).items():
        if value is not None:
            fixed[role] = check_temperature(value) if role == "T" else _check_weight(role, value, kind)
    if grad_fn is not None and framework != "numpy":
        raise ValueError(f"grad_fn is only for framework='numpy' ({framework} has autograd)")
    adapter = get_adapter(framework)  # first: an unknown framework is named before the loss is looked at
    binding = bind(fn, kind, args=args, init=init, roles=roles, fixed=fixed)
    grad_binding = None
    if grad_fn is not None:
        grad_binding = bind(grad_fn, kind, args=args, roles=roles, fixed=fixed, role_name="grad_fn")
    fixed = binding.fixed
    recorder = Recorder()
    if kind == "topk":
        everything = topk_cases(tuple(sorted(fixed.items())))
        probe = topk_infinite_mask_probe(tuple(sorted(fixed.items())))
    elif family:
        everything = family_cases(kind, tuple(sorted(fixed.items())))
        probe = family_infinite_mask_probe(kind, tuple(sorted(fixed.items())))
    else:
        everything = battery_cases(fixed.get("T"), fixed.get("alpha"))
        probe = infinite_mask_probe(fixed.get("T"), fixed.get("alpha"))
    cases = [case for case in everything if adapter.supports(case.dtype)]
    # A token-level loss that takes neither labels nor a mask cannot be told which positions to drop.
    unmasked = family and kind != "dkd" and not {"labels", "mask"} & set(binding.roles)
    skipped_padded = [case for case in cases if unmasked and case.padded]
    cases = [case for case in cases if case not in skipped_padded]
    binding.construct([scalars(kind, case.spec) for case in cases])  # a failing constructor: usage
    outcomes = [run_case(binding, grad_binding, kind, adapter, case, recorder) for case in cases]
    findings, convention, results = diagnose(kind, outcomes, t2_scaling, alpha_on, weight_on)
    notes = _notes(
        binding, grad_binding, kind, adapter, recorder, outcomes, len(cases) < len(everything), probe
    )
    if skipped_padded:
        notes.append(
            Finding(
                "padding-skipped",
                f"the loss takes no labels and no mask, so the {len(skipped_padded)} cases with padding were not "
                "run: padding is left to its caller (a parameter named labels, with -100 at padding, or mask, "
                "True where a position counts, lets the check test it)",
            )
        )
    if kind == "topk":
        reference = topk_reference_text(t2_scaling, weight_on)
    elif family:
        reference = reference_text(kind, t2_scaling, weight_on)
    else:
        weight = "T²·" if t2_scaling else ""
        soft = f"{weight}KL(teacher ‖ student) or {weight}soft cross-entropy, mean over samples (batchmean)"
        if kind == "soft":
            reference = soft
        elif alpha_on == "hard":
            reference = f"α·CE(labels, z) at T = 1 + (1 − α)·[{soft}]"
        else:
            reference = f"(1 − α)·CE(labels, z) at T = 1 + α·[{soft}]"
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


def _check_weight(role: str, value: float, kind: str) -> float:
    if role == "alpha" and kind != "dkd":
        return check_alpha(value)
    if role in ("beta", "skew") and kind != "dkd":
        return check_real(value, role, 0.0, 1.0)
    return check_real(value, role, 0.0)  # DKD's α and β: any non-negative weight


def _notes(
    binding: Binding,
    grad_binding: Binding | None,
    kind: str,
    adapter: Adapter,
    recorder: Recorder,
    outcomes: list[Outcome],
    skipped_float64: bool,
    probe_case: Any,
) -> list[Finding]:
    notes = [Finding("called-as", binding.describe(), binding.evidence())]
    if binding.fixed:
        values = ", ".join(f"{role} = {value:g}" for role, value in binding.fixed.items())
        blind = []
        if binding.fixed.get("T") == 1.0:
            blind.append("at T = 1 a missing or extra T² changes nothing, so it cannot be detected")
        if binding.fixed.get("alpha") == 0.5 and kind == "distillation":
            blind.append("at α = 0.5 exchanged weights change nothing, so they cannot be detected")
        if binding.fixed.get("beta") == 0.5 and kind == "jsd":
            blind.append("at β = 0.5 β on the teacher and β on the student are the same loss")
        notes.append(
            Finding(
                "fixed-parameters",
                f"the loss has {values} built in, so the whole battery ran at that value instead of its own "
                "range" + ("; " + "; ".join(blind) if blind else ""),
            )
        )
    probe = run_case(binding, grad_binding, kind, adapter, probe_case, recorder)
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
    if not adapter.has_autograd and grad_binding is None:
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
    fn: Any,
    framework: str = "torch",
    *,
    grad_fn: Callable | None = None,
    t2_scaling: bool = True,
    name: str | None = None,
    args: Mapping[str, Any] | None = None,
    init: Mapping[str, Any] | None = None,
    roles: Mapping[str, str] | None = None,
    T: float | None = None,
) -> Report:
    r"""Check a soft distillation loss — student logits, teacher logits, temperature → scalar — against kdcore.

    Parameters
    ----------
    fn : callable or class
        The loss as it is written: a function, ``functools.partial``, bound method, callable instance
        (``nn.Module``) or a class (constructed with ``init``). Its arguments are matched by *name*
        (``student_logits``/``logits``/``y_s``…, ``teacher_logits``/``y_t``…, ``T``/``temperature``/``tau``;
        see :mod:`kdcore.verify.binding`), unrecognised names by position. Logits have shape (B, N), class
        axis last, in the framework's arrays; the temperature is a Python float. It must return one number.
    framework : {"torch", "jax", "tensorflow", "numpy"}, default "torch"
        What ``fn`` is written in. The framework is imported now; kdcore does not depend on it.
    grad_fn : callable, optional
        NumPy only: the loss's gradient w.r.t. the student logits, shape (B, N), with the same parameters as
        ``fn``. Without it, the gradient is checked by finite differences (float64 cases of moderate
        logits). PyTorch, JAX and TensorFlow gradients come from their autograd.
    t2_scaling : bool, default True
        Expect the :math:`T^2` factor of Hinton et al.; ``False`` for code that applies it elsewhere.
    name : str, optional
        How the report names ``fn`` (default: its module and qualified name).
    args : mapping, optional
        Values for the loss's other parameters (``{"reduction": "batchmean"}``). Giving the temperature's
        parameter here fixes it: the battery then runs at that temperature only.
    init : mapping, optional
        Constructor arguments when ``fn`` is a class. A temperature left out of ``init`` is varied: one
        instance is built per temperature of the battery.
    roles : mapping, optional
        ``{role: parameter}`` for parameters whose names are not recognised, e.g. ``{"T": "w"}``.
    T : float, optional
        The temperature the loss has built in, when it is no parameter at all; the battery runs at it.

    Returns
    -------
    Report
        ``ok`` when the value matches :math:`T^2\,\mathrm{KL}(q\,\|\,p)` or :math:`T^2` times the soft
        cross-entropy (mean over samples) and the gradient matches :math:`T\,(p - q)/B` on every case,
        within the per-dtype tolerances; otherwise the findings say why.

    Raises
    ------
    kdcore.verify.binding.BindingError
        (a TypeError) When ``fn`` cannot be called as a soft loss: a role no parameter takes, an ambiguous
        name, a required parameter without a value, a constructor that fails, a call that returns no number.
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

    The battery (:data:`BATTERY`) runs 13 inputs in float32 and float64; ``docs/verify.md`` lists them,
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

    Keyword arguments are bound by name, whatever their order:

    >>> def kd(teacher_logits, student_logits, *, temperature=4.0, reduction="batchmean"):
    ...     return temperature**2 * kl_divergence(student_logits, teacher_logits, temperature)
    >>> check_soft_loss(kd, "numpy").notes[0].message
    'kd(student_logits=student_logits, teacher_logits=teacher_logits, temperature=T)'
    """
    return _check(
        fn, "soft", framework, grad_fn, t2_scaling, name, args=args, init=init, roles=roles, built_in={"T": T}
    )


def check_distillation_loss(
    fn: Any,
    framework: str = "torch",
    *,
    grad_fn: Callable | None = None,
    t2_scaling: bool = True,
    alpha_on: str = "hard",
    name: str | None = None,
    args: Mapping[str, Any] | None = None,
    init: Mapping[str, Any] | None = None,
    roles: Mapping[str, str] | None = None,
    T: float | None = None,
    alpha: float | None = None,
) -> Report:
    r"""Check a full distillation loss — logits, labels, temperature, weight α → scalar — against kdcore.

    Parameters
    ----------
    fn : callable or class
        The loss as it is written (see :func:`check_soft_loss`), with two more roles: integer labels of
        shape (B,) (int64; ``labels``/``target``/``y``…) and the weight :math:`\alpha` as a Python float
        (``alpha``/``lambda_``/``lam``). It must return one number.
    framework : {"torch", "jax", "tensorflow", "numpy"}, default "torch"
        What ``fn`` is written in.
    grad_fn : callable, optional
        NumPy only: the gradient w.r.t. the student logits, with the same parameters as ``fn``.
    t2_scaling : bool, default True
        Expect the soft term to be multiplied by :math:`T^2`.
    alpha_on : {"hard", "soft"}, default "hard"
        Which term α weighs (the other gets :math:`1 - \alpha`). kdcore, like ``distillation_loss``, puts α on
        the hard-label term; many codebases put it on the soft term: say so here, and that convention is
        checked instead of being reported as ``alpha-swapped``.
    name, args, init, roles, T : optional
        As :func:`check_soft_loss`.
    alpha : float, optional
        The weight the loss has built in, when it is no parameter at all; the battery runs at it.

    Returns
    -------
    Report
        ``ok`` when the loss matches :func:`kdcore.distillation_loss` (soft term in either convention) in
        value and gradient on every case of the battery.

    Raises
    ------
    kdcore.verify.binding.BindingError, ValueError, kdcore.adapters.FrameworkNotInstalledError
        As :func:`check_soft_loss`.

    Notes
    -----
    .. math::

        L = \frac1B \sum_b \Bigl[\alpha\,\mathrm{CE}(y_b, z_b) + (1 - \alpha)\,T^2\,L_\text{soft}(z_b, v_b, T)\Bigr],
        \qquad
        \frac{\partial L}{\partial z_b} = \frac{\alpha\,(\operatorname{softmax}(z_b) - e_{y_b})
            + (1 - \alpha)\,T\,(p_b - q_b)}{B}

    (with ``alpha_on="soft"``, :math:`\alpha` and :math:`1 - \alpha` exchanged). The battery uses
    :math:`\alpha` from 0 to 1 (each case has its own, see :data:`BATTERY`).

    Examples
    --------
    >>> from kdcore import distillation_loss, distillation_loss_grad
    >>> from kdcore.verify import check_distillation_loss
    >>> def soft_weighted(student_logits, teacher_logits, labels, T, alpha):  # α on the soft term
    ...     return distillation_loss(student_logits, teacher_logits, labels, T, 1 - alpha)
    >>> def soft_weighted_grad(student_logits, teacher_logits, labels, T, alpha):
    ...     return distillation_loss_grad(student_logits, teacher_logits, labels, T, 1 - alpha)
    >>> check_distillation_loss(soft_weighted, "numpy", grad_fn=soft_weighted_grad).codes
    ('alpha-swapped',)
    >>> check_distillation_loss(soft_weighted, "numpy", grad_fn=soft_weighted_grad, alpha_on="soft").ok
    True
    """
    return _check(
        fn, "distillation", framework, grad_fn, t2_scaling, name,
        args=args, init=init, roles=roles, built_in={"T": T, "alpha": alpha}, alpha_on=alpha_on,
    )  # fmt: skip


def check_divergence_loss(
    fn: Any, kind: str, framework: str = "torch", *,
    grad_fn: Callable | None = None, t2_scaling: bool | None = None, weight_on: str | None = None,
    T: float | None = None, beta: float | None = None, skew: float | None = None, alpha: float | None = None,
    name: str | None = None, args: Mapping[str, Any] | None = None, init: Mapping[str, Any] | None = None,
    roles: Mapping[str, str] | None = None,
) -> Report:  # fmt: skip
    r"""Check a reverse-KL, generalised-JSD, skew-KL, skew-reverse-KL or DKD loss against kdcore.

    Parameters
    ----------
    fn : callable or class
        The loss as it is written (see :func:`check_soft_loss`). Its arguments are matched by name: student
        and teacher logits of shape ``(B, V)`` or ``(B, S, V)`` (class axis last), the temperature
        (``T``/``temperature``/``tau``), and as the kind has them β (``beta``), the skew α (``skew``,
        ``skew_alpha``, or DistiLLM's ``lam``/``alpha``), DKD's ``alpha`` and ``beta``. Token-level losses
        may take ``labels`` (int64, the leading shape, ``-100`` at padding, as trl's) or ``mask`` (bool, True
        where a position counts); DKD takes the target ``labels`` of shape ``(B,)``. A loss with no
        temperature parameter computes at T = 1. It must return one number.
    kind : {"reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "dkd"}
        Which divergence the loss computes (kdcore's :func:`~kdcore.reverse_kl_divergence`,
        :func:`~kdcore.jensen_shannon_divergence`, :func:`~kdcore.skew_kl_divergence`,
        :func:`~kdcore.skew_reverse_kl_divergence`, :func:`~kdcore.decoupled_kd_loss`).
    framework : {"torch", "jax", "tensorflow", "numpy"}, default "torch"
    grad_fn : callable, optional
        NumPy only: the gradient w.r.t. the student logits, with the same parameters as ``fn``.
    t2_scaling : bool, optional
        None (default): with or without T², both accepted and the report says which; True or False: the
        other one is a finding (``missing-T2-scaling`` / ``unexpected-T2-scaling``).
    weight_on : {"teacher", "student"}, optional
        JSD only: which distribution β weighs. None (default) accepts either and reports it; given, the other
        is ``mixture-weight-swapped``.
    T, beta, skew, alpha : float, optional
        Values the loss has built in (no parameter for them): the battery runs at that value.
    name, args, init, roles : optional
        As :func:`check_soft_loss`.

    Returns
    -------
    Report
        ``ok`` when value and gradient match kdcore's on every case of the token battery (DKD: the DKD
        battery) under some combination of accepted conventions; ``report.convention`` names them.

    Raises
    ------
    kdcore.verify.binding.BindingError, ValueError, kdcore.adapters.FrameworkNotInstalledError
        As :func:`check_soft_loss`; also for an unknown ``kind``.

    Notes
    -----
    The token battery (:data:`kdcore.verify.token_battery.TOKEN_BATTERY`) has ``(B, V)`` and ``(B, S, V)``
    logits, right padding of different lengths marked by ``-100`` labels, vocabulary entries masked with
    −1e9, and β = 0 and β = 1, where ``trl`` switches to the forward and the reverse KL. The accepted
    reductions are the mean over kept tokens, the mean per sequence then over sequences, and the sum per
    sequence then mean over sequences; a mean that counts padding, or divides by every position, is a
    finding. ``docs/verify.md`` lists the conventions and every code.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore import jensen_shannon_divergence, jensen_shannon_divergence_grad
    >>> from kdcore.verify import check_divergence_loss
    >>> def jsd(student_logits, teacher_logits, mask, beta, temperature):
    ...     per_token = jensen_shannon_divergence(student_logits, teacher_logits, temperature, beta, "none")
    ...     return np.sum(np.where(mask, per_token, 0.0)) / np.sum(mask)
    >>> def jsd_grad(student_logits, teacher_logits, mask, beta, temperature):
    ...     rows = jensen_shannon_divergence_grad(student_logits, teacher_logits, temperature, beta, "none")
    ...     return np.where(mask[..., None], rows, 0.0) / np.sum(mask)
    >>> report = check_divergence_loss(jsd, "jsd", "numpy", grad_fn=jsd_grad)
    >>> report.ok
    True
    >>> print(report.convention.split("; ")[0])
    β weights the teacher: M = β·q + (1 − β)·p, β·KL(q ‖ M) + (1 − β)·KL(p ‖ M) (GKD Eq. 1 and trl)
    """
    check_choice(kind, "kind", FAMILY_KINDS)
    built_in = {"T": T, "beta": beta, "skew": skew, "alpha": alpha}
    return _check(
        fn, kind, framework, grad_fn, t2_scaling, name,
        args=args, init=init, roles=roles, built_in=built_in, weight_on=weight_on,
    )  # fmt: skip
