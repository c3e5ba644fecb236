r"""Golden test vectors: kdcore's losses and derivatives on fixed inputs, as JSON any language can read.

``kdcore vectors --out FILE.json`` (:func:`write_vectors`) writes a versioned file of cases — inputs,
parameters, expected values and gradients w.r.t. the student logits, the teacher logits and the
temperature — for :func:`kdcore.kl_divergence`, :func:`kdcore.soft_cross_entropy`,
:func:`kdcore.cross_entropy`, :func:`kdcore.distillation_loss` and :func:`kdcore.logit_mse`, and for the
divergences beyond Hinton's: :func:`kdcore.reverse_kl_divergence`, :func:`kdcore.jensen_shannon_divergence`
(``params.beta``), :func:`kdcore.skew_kl_divergence` and :func:`kdcore.skew_reverse_kl_divergence`
(``params.skew``), :func:`kdcore.decoupled_kd_loss` (``params.alpha``, ``params.beta``), and
:func:`kdcore.standardize_logits` (its ``value`` and ``vjp``, the vector–Jacobian product with the input
``cotangent``), and the top-k teacher losses :func:`kdcore.topk_kl_divergence` and
:func:`kdcore.topk_soft_cross_entropy` under each convention (``params.convention``, ``params.values``; inputs
``teacher_values`` and integer ``teacher_indices`` instead of ``teacher_logits``) — in the regimes where implementations go wrong: ordinary, near-equal, high and low
temperature, extreme and offset logits, masked classes. Every case has a ``dtype``: the new functions are
pinned in float64 and in float32 (float32 inputs, kdcore's float32 results), the older ones in float64. An
implementation in C, Rust, JavaScript or Julia can be tested against them without Python. The schema is
documented in ``docs/verify.md`` ("Golden vectors") and, for what this version added, in the file's own
``conventions`` and ``functions``; the tests check every expected number against a 50-digit mpmath oracle, to
1e-12 relative in float64 and 1e-5 in float32 (against the exact result rounded to float32).

Numbers are written exactly. Every array is an object ``{"shape": [...], "hex": [...], "dec": [...]}``
holding its elements flattened in row-major order twice: ``hex`` as Python's :meth:`float.hex` (C99's
``%a``, read back exactly by ``strtod``), ``dec`` as the shortest decimal that reads back to the same
double (Python's ``repr``). Non-finite numbers are ``"inf"``, ``"-inf"`` and ``"nan"`` in both. A scalar
has shape ``[]`` and one element.

Examples
--------
>>> from kdcore.vectors import make_vectors, decode
>>> vectors = make_vectors()
>>> vectors["format"], vectors["version"]
('kdcore-golden-vectors', 1)
>>> case = next(c for c in vectors["cases"] if c["id"] == "kl_divergence/ordinary")
>>> decode(case["inputs"]["T"])
2.0
>>> decode(case["expected"]["value"]).shape
(3,)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ._version import __version__
from .cross_entropy import cross_entropy, cross_entropy_grad
from .decoupled import decoupled_kd_loss, decoupled_kd_loss_grad
from .distillation import distillation_loss, distillation_loss_grad, logit_mse, logit_mse_grad
from .divergences import kl_divergence, kl_divergence_grad, soft_cross_entropy, soft_cross_entropy_grad
from .mixtures import (
    jensen_shannon_divergence,
    jensen_shannon_divergence_grad,
    skew_kl_divergence,
    skew_kl_divergence_grad,
    skew_reverse_kl_divergence,
    skew_reverse_kl_divergence_grad,
)
from .reverse_kl import reverse_kl_divergence, reverse_kl_divergence_grad
from .standardize import standardize_logits, standardize_logits_vjp
from .sweep_file import write_json
from .topk import (
    topk_kl_divergence,
    topk_kl_divergence_grad,
    topk_soft_cross_entropy,
    topk_soft_cross_entropy_grad,
    topk_teacher,
)

__all__ = ["FORMAT", "VERSION", "decode", "encode", "make_vectors", "write_vectors"]

FORMAT = "kdcore-golden-vectors"
#: Bumped whenever a field changes meaning or disappears; new cases or fields do not bump it.
VERSION = 1
SEED = 20150309


def _hex(x: float) -> str:
    return float.hex(x) if math.isfinite(x) else repr(x)  # float.hex(inf) is 'inf' too; repr for clarity


def encode(values: Any) -> dict[str, Any]:
    """A float64 array (or scalar) as ``{"shape", "hex", "dec"}``, exactly.

    Examples
    --------
    >>> from kdcore.vectors import encode
    >>> encode([[0.1, -float("inf")]])
    {'shape': [1, 2], 'hex': ['0x1.999999999999ap-4', '-inf'], 'dec': ['0.1', '-inf']}
    """
    array = np.asarray(values, dtype=np.float64)
    flat = [float(x) for x in array.reshape(-1)]
    return {"shape": list(array.shape), "hex": [_hex(x) for x in flat], "dec": [repr(x) for x in flat]}


def decode(encoded: dict[str, Any]) -> np.ndarray | float:
    """Read an ``encode``-d number back from its ``hex`` field: an array, or a float for shape ``[]``.

    Examples
    --------
    >>> from kdcore.vectors import decode, encode
    >>> decode(encode(2.5))
    2.5
    >>> decode({"shape": [2], "hex": ["0x1.8p+1", "nan"], "dec": ["3.0", "nan"]})
    array([ 3., nan])
    """
    values = [
        float.fromhex(x) if x.lower().lstrip("+-").startswith("0x") else float(x) for x in encoded["hex"]
    ]
    array = np.array(values, dtype=np.float64).reshape(encoded["shape"])
    return float(array) if array.ndim == 0 else array


# --------------------------------------------------------------------------------------------------------
# Inputs, one generator per regime (seeded: the file is the same on every machine)


def _logits(regime: str, shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    student = rng.normal(0.0, 2.0, shape)
    teacher = rng.normal(0.0, 3.0, shape)
    if regime == "near-equal":
        # KL ~ 1e-19: far below the rounding error of Σ q (log q − log p), which returns noise here.
        teacher = student + 1e-9 * rng.standard_normal(shape)
    elif regime == "extreme":
        student = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(3.0, 4.0, shape)
        teacher = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(3.0, 4.0, shape)
    elif regime == "offset":
        # A large common offset: z − v must be formed without rounding the small differences away.
        student, teacher = student + 1e8, teacher + 1e8
    elif regime == "confident":
        student[:, 0] += 40.0  # p_y ≈ 1 − 1e-17: 1 − p_y needs expm1, not a subtraction
    elif regime in ("masked", "student-masked"):
        student[:, 1] = teacher[:, 1] = -np.inf  # masked in both: contributes nothing
        if regime == "student-masked":
            student[0, 3] = -np.inf  # the teacher gives this class mass: the loss is +inf for sample 0
    return student, teacher


_TEMPERATURES = {"ordinary": 2.0, "high-T": 1e3, "low-T": 0.05, "extreme": 0.5, "offset": 3.0}


def _inputs(
    function: str, regime: str, index: int, dtype: str = "float64", batch_size: int = 3, n_classes: int = 5
) -> dict:
    rng = np.random.default_rng([SEED, index])
    student, teacher = _logits(regime, (batch_size, n_classes), rng)
    # float32 cases: the inputs are float32 numbers (and T one too), so that float32 and float64
    # implementations, and the oracle, all see the same numbers.
    student, teacher = student.astype(dtype), teacher.astype(dtype)
    # A label never sits on a masked class (its loss would be +inf, which the masked cases pin already).
    labels = np.array([0, 2, 4, 3, 1][:batch_size]) % n_classes
    if regime == "confident":
        labels = np.zeros(batch_size, dtype=int)
    return {
        "student_logits": student,
        "teacher_logits": teacher,
        "labels": labels,
        "T": float(np.dtype(dtype).type(_TEMPERATURES.get(regime, 1.5))),
        # the gradient arriving at standardize_logits' output, for its vector–Jacobian product
        "cotangent": rng.normal(0.0, 1.0, (batch_size, n_classes)).astype(dtype),
    }


# --------------------------------------------------------------------------------------------------------
# Expected results


def _soft_case(function: str, inputs: dict, params: dict) -> dict[str, Any]:
    value, grad = {
        "kl_divergence": (kl_divergence, kl_divergence_grad),
        "soft_cross_entropy": (soft_cross_entropy, soft_cross_entropy_grad),
    }[function]
    z, v, T, reduction = inputs["student_logits"], inputs["teacher_logits"], inputs["T"], params["reduction"]
    return {
        "value": value(z, v, T, reduction),
        "grad_student": grad(z, v, T, reduction),
        "grad_teacher": grad(z, v, T, reduction, wrt="teacher"),
        "grad_T": grad(z, v, T, reduction, wrt="temperature"),
    }


def _cross_entropy_case(inputs: dict, params: dict) -> dict[str, Any]:
    z, y, reduction = inputs["student_logits"], inputs["labels"], params["reduction"]
    return {"value": cross_entropy(z, y, reduction), "grad_student": cross_entropy_grad(z, y, reduction)}


def _distillation_case(inputs: dict, params: dict) -> dict[str, Any]:
    z, v, y, T = inputs["student_logits"], inputs["teacher_logits"], inputs["labels"], inputs["T"]
    alpha, t2, soft, reduction = params["alpha"], params["t2_scaling"], params["soft"], params["reduction"]
    options = {"t2_scaling": t2, "soft": soft, "reduction": reduction}
    soft_value, soft_grad = (
        (kl_divergence, kl_divergence_grad)
        if soft == "kl"
        else (
            soft_cross_entropy,
            soft_cross_entropy_grad,
        )
    )
    # Only the soft term depends on the teacher and on T: with w = (1 − α)·s(T), s = T² or 1,
    #   ∂L/∂v = w·∂L_soft/∂v,   ∂L/∂T = (1 − α)·(s'(T)·L_soft + s(T)·∂L_soft/∂T),  s' = 2T or 0.
    # A term of weight 0 is absent (kdcore.distillation_loss): α = 1 gives exact zeros, not 0·inf = NaN.
    weight = (1.0 - alpha) * (T * T if t2 else 1.0)
    if weight == 0.0:
        grad_teacher = np.zeros_like(z)
        grad_T = np.zeros(z.shape[:-1]) if reduction == "none" else np.float64(0.0)
    else:
        grad_teacher = weight * soft_grad(z, v, T, reduction, wrt="teacher")
        d_soft_dT = soft_grad(z, v, T, reduction, wrt="temperature")
        grad_T = (1.0 - alpha) * (
            (2.0 * T * soft_value(z, v, T, reduction) if t2 else 0.0) + (T * T if t2 else 1.0) * d_soft_dT
        )
    return {
        "value": distillation_loss(z, v, y, T, alpha, **options),
        "grad_student": distillation_loss_grad(z, v, y, T, alpha, **options),
        "grad_teacher": grad_teacher,
        "grad_T": grad_T,
    }


def _logit_mse_case(inputs: dict, params: dict) -> dict[str, Any]:
    z, v, centered, reduction = (
        inputs["student_logits"],
        inputs["teacher_logits"],
        params["centered"],
        params["reduction"],
    )
    grad = logit_mse_grad(z, v, centered, reduction)
    # logit_mse depends on z − v only, so ∂/∂v = −∂/∂z exactly (and there is no temperature).
    return {"value": logit_mse(z, v, centered, reduction), "grad_student": grad, "grad_teacher": -grad}


# The divergences beyond Hinton's: (value, gradient, name of their weight parameter or None).
_FAMILY = {
    "reverse_kl_divergence": (reverse_kl_divergence, reverse_kl_divergence_grad, None),
    "jensen_shannon_divergence": (jensen_shannon_divergence, jensen_shannon_divergence_grad, "beta"),
    "skew_kl_divergence": (skew_kl_divergence, skew_kl_divergence_grad, "skew"),
    "skew_reverse_kl_divergence": (skew_reverse_kl_divergence, skew_reverse_kl_divergence_grad, "skew"),
}


def _value_and_gradients(value: Callable[..., Any], grad: Callable[..., Any]) -> dict[str, Any]:
    """A loss and its three derivatives, from the loss and its ``_grad`` with every input bound but ``wrt``."""
    return {
        "value": value(),
        "grad_student": grad(wrt="student"),
        "grad_teacher": grad(wrt="teacher"),
        "grad_T": grad(wrt="temperature"),
    }


def _family_case(function: str, inputs: dict, params: dict) -> dict[str, Any]:
    value, grad, weight = _FAMILY[function]
    z, v, T, reduction = inputs["student_logits"], inputs["teacher_logits"], inputs["T"], params["reduction"]
    options = {"reduction": reduction} if weight is None else {"reduction": reduction, weight: params[weight]}
    return _value_and_gradients(
        functools.partial(value, z, v, T, **options), functools.partial(grad, z, v, T, **options)
    )


def _decoupled_case(inputs: dict, params: dict) -> dict[str, Any]:
    arguments = (inputs["student_logits"], inputs["teacher_logits"], inputs["labels"], inputs["T"])
    options = {"alpha": params["alpha"], "beta": params["beta"], "reduction": params["reduction"]}
    return _value_and_gradients(
        functools.partial(decoupled_kd_loss, *arguments, **options),
        functools.partial(decoupled_kd_loss_grad, *arguments, **options),
    )


def _standardize_case(inputs: dict, params: dict) -> dict[str, Any]:
    x, cotangent = inputs["student_logits"], inputs["cotangent"]
    options = {key: params[key] for key in ("base_temperature", "ddof", "eps")}
    return {"value": standardize_logits(x, **options), "vjp": standardize_logits_vjp(x, cotangent, **options)}


_TOPK = {
    "topk_kl_divergence": (topk_kl_divergence, topk_kl_divergence_grad),
    "topk_soft_cross_entropy": (topk_soft_cross_entropy, topk_soft_cross_entropy_grad),
}


def _topk_inputs(inputs: dict, params: dict) -> dict:
    """The top-k teacher of the case's dense teacher logits (k largest, as ``params.values``); the tail
    convention is defined at T = 1 only, so its cases are at T = 1."""
    values, indices = topk_teacher(inputs["teacher_logits"], params["k"], values=params["values"])
    T = 1.0 if params["convention"] == "tail" else inputs["T"]
    return {**inputs, "teacher_values": values, "teacher_indices": indices, "T": T}


def _topk_case(function: str, inputs: dict, params: dict) -> dict[str, Any]:
    value, grad = _TOPK[function]
    arguments = (inputs["student_logits"], inputs["teacher_values"], inputs["teacher_indices"], inputs["T"])
    options = {"convention": params["convention"], "values": params["values"]}
    expected = {
        "value": value(*arguments, params["reduction"], **options),
        "grad_student": grad(*arguments, params["reduction"], "student", **options),
        "grad_teacher": grad(*arguments, params["reduction"], "teacher", **options),
    }
    if params["convention"] != "tail":  # the tail's T is fixed at 1: no temperature derivative
        expected["grad_T"] = grad(*arguments, params["reduction"], "temperature", **options)
    return expected


# The regimes of the soft losses, each with the reduction it is pinned with (they rotate, so that each
# function is pinned with all three).
_SOFT_REGIMES = (
    ("ordinary", "none"),
    ("near-equal", "none"),
    ("high-T", "mean"),
    ("low-T", "none"),
    ("extreme", "sum"),
    ("offset", "none"),
    ("masked", "none"),
    ("student-masked", "none"),
)

# (function, regime, params): every function in the regimes that matter for it.
_PLAN: tuple[tuple[str, str, dict[str, Any]], ...] = (
    *(
        (function, regime, {"reduction": reduction})
        for function in ("kl_divergence", "soft_cross_entropy")
        for regime, reduction in _SOFT_REGIMES
    ),
    ("cross_entropy", "ordinary", {"reduction": "none"}),
    ("cross_entropy", "confident", {"reduction": "none"}),
    ("cross_entropy", "extreme", {"reduction": "mean"}),
    ("cross_entropy", "masked", {"reduction": "sum"}),
    (
        "distillation_loss",
        "ordinary",
        {"alpha": 0.3, "t2_scaling": True, "soft": "cross_entropy", "reduction": "none"},
    ),
    ("distillation_loss", "ordinary", {"alpha": 0.0, "t2_scaling": True, "soft": "kl", "reduction": "mean"}),
    ("distillation_loss", "ordinary", {"alpha": 1.0, "t2_scaling": True, "soft": "kl", "reduction": "none"}),
    ("distillation_loss", "ordinary", {"alpha": 0.5, "t2_scaling": False, "soft": "kl", "reduction": "sum"}),
    (
        "distillation_loss",
        "near-equal",
        {"alpha": 0.1, "t2_scaling": True, "soft": "kl", "reduction": "none"},
    ),
    (
        "distillation_loss",
        "high-T",
        {"alpha": 0.7, "t2_scaling": True, "soft": "cross_entropy", "reduction": "none"},
    ),
    ("distillation_loss", "low-T", {"alpha": 0.25, "t2_scaling": True, "soft": "kl", "reduction": "mean"}),
    (
        "distillation_loss",
        "extreme",
        {"alpha": 0.6, "t2_scaling": True, "soft": "cross_entropy", "reduction": "none"},
    ),
    ("distillation_loss", "masked", {"alpha": 0.4, "t2_scaling": True, "soft": "kl", "reduction": "none"}),
    ("logit_mse", "ordinary", {"centered": True, "reduction": "none"}),
    ("logit_mse", "ordinary", {"centered": False, "reduction": "mean"}),
    ("logit_mse", "near-equal", {"centered": True, "reduction": "none"}),
    ("logit_mse", "extreme", {"centered": True, "reduction": "sum"}),
    ("logit_mse", "offset", {"centered": False, "reduction": "none"}),
)

# (function, regime, params, dtype) for the divergences beyond Hinton's and logit standardisation: every
# regime in float64, the ordinary and a temperature extreme in float32 (float32 stays float32). Where the
# student masks a class the teacher gives mass, these stay finite (the reverse KL: p_i = 0 adds nothing).
_FAMILY_PARAMS: dict[str, tuple[dict[str, Any], ...]] = {
    "reverse_kl_divergence": ({},),
    "jensen_shannon_divergence": ({"beta": 0.5}, {"beta": 0.1}, {"beta": 0.9}),
    "skew_kl_divergence": ({"skew": 0.1}, {"skew": 0.5}),
    "skew_reverse_kl_divergence": ({"skew": 0.1}, {"skew": 0.5}),
}
_NEW_PLAN: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    *(
        (function, regime, {**weights[k % len(weights)], "reduction": reduction}, "float64")
        for function, weights in _FAMILY_PARAMS.items()
        for k, (regime, reduction) in enumerate(_SOFT_REGIMES)
    ),
    *(
        (function, regime, {**weights[0], "reduction": reduction}, "float32")
        for function, weights in _FAMILY_PARAMS.items()
        for regime, reduction in (("ordinary", "none"), ("low-T", "mean"))
    ),
    *(
        ("decoupled_kd_loss", regime, {"alpha": alpha, "beta": beta, "reduction": reduction}, dtype)
        for regime, alpha, beta, reduction, dtype in (
            ("ordinary", 1.0, 8.0, "none", "float64"),
            ("near-equal", 1.0, 8.0, "none", "float64"),
            ("low-T", 1.0, 8.0, "sum", "float64"),
            ("masked", 2.0, 4.0, "mean", "float64"),
            ("ordinary", 1.0, 8.0, "none", "float32"),
        )
    ),
    *(
        ("standardize_logits", regime, {"base_temperature": tau, "ddof": ddof, "eps": eps}, dtype)
        for regime, tau, ddof, eps, dtype in (
            ("ordinary", 1.0, 0, 0.0, "float64"),
            ("ordinary", 2.0, 1, 1e-7, "float64"),
            ("extreme", 1.0, 0, 0.0, "float64"),
            ("offset", 1.0, 0, 0.0, "float64"),
            ("masked", 1.0, 0, 0.0, "float64"),
            ("ordinary", 1.0, 0, 0.0, "float32"),
        )
    ),
)

# (function, regime, params, dtype) for the top-k teachers: each convention in the regimes where it goes wrong
# (student ≈ teacher, extreme temperatures, masked classes, k = 1 and k = V), KL in float64 and float32,
# the soft cross-entropy in float64; renormalized from logits, the other two from log-probabilities.
_TOPK_REGIMES = {
    "renormalized": (
        ("ordinary", "none", 3),
        ("near-equal", "mean", 3),
        ("low-T", "sum", 1),
        ("masked", "none", 5),
    ),
    "dense_student": (
        ("ordinary", "none", 3),
        ("near-equal", "none", 2),
        ("high-T", "mean", 3),
        ("masked", "sum", 3),
    ),
    "tail": (("ordinary", "none", 3), ("near-equal", "sum", 2), ("masked", "none", 3), ("offset", "mean", 5)),
}
_TOPK_PLAN: tuple[tuple[str, str, dict[str, Any], str], ...] = tuple(
    (function, regime, {"convention": convention, "values": kind, "k": k, "reduction": reduction}, dtype)
    for convention, kind in (
        ("renormalized", "logits"),
        ("dense_student", "log_probs"),
        ("tail", "log_probs"),
    )
    for function, dtypes in (
        ("topk_kl_divergence", ("float64", "float32")),
        ("topk_soft_cross_entropy", ("float64",)),
    )
    for dtype in dtypes
    for regime, reduction, k in (
        _TOPK_REGIMES[convention] if dtype == "float64" else _TOPK_REGIMES[convention][:1]
    )
)

_COMPUTE: dict[str, Callable[..., dict[str, Any]]] = {
    "kl_divergence": lambda inputs, params: _soft_case("kl_divergence", inputs, params),
    "soft_cross_entropy": lambda inputs, params: _soft_case("soft_cross_entropy", inputs, params),
    "cross_entropy": _cross_entropy_case,
    "distillation_loss": _distillation_case,
    "logit_mse": _logit_mse_case,
    **{function: functools.partial(_family_case, function) for function in _FAMILY},
    "decoupled_kd_loss": _decoupled_case,
    "standardize_logits": _standardize_case,
    **{function: functools.partial(_topk_case, function) for function in _TOPK},
}

# Which inputs each function reads (cross_entropy has no teacher and no T; logit_mse no T).
_USES = {
    "kl_divergence": ("student_logits", "teacher_logits", "T"),
    "soft_cross_entropy": ("student_logits", "teacher_logits", "T"),
    "cross_entropy": ("student_logits", "labels"),
    "distillation_loss": ("student_logits", "teacher_logits", "labels", "T"),
    "logit_mse": ("student_logits", "teacher_logits"),
    **{function: ("student_logits", "teacher_logits", "T") for function in _FAMILY},
    "decoupled_kd_loss": ("student_logits", "teacher_logits", "labels", "T"),
    "standardize_logits": ("student_logits", "cotangent"),
    **{function: ("student_logits", "teacher_values", "teacher_indices", "T") for function in _TOPK},
}

_FUNCTIONS = {
    "kl_divergence": "KL(teacher ‖ student) = Σ_i q_i (log q_i − log p_i), p = softmax(z/T), q = softmax(v/T)",
    "soft_cross_entropy": "−Σ_i q_i log p_i = H(q) + KL(q ‖ p)",
    "cross_entropy": "−log softmax(z)_y, at temperature 1",
    "distillation_loss": "α·cross_entropy(z, y) + (1 − α)·s(T)·soft(z, v, T), s(T) = T² if t2_scaling else 1, "
    "soft = soft_cross_entropy or kl_divergence (params.soft)",
    "logit_mse": "(1/N)·Σ_i d_i², d = (z − mean z) − (v − mean v) if centered else z − v",
    "reverse_kl_divergence": "KL(student ‖ teacher) = Σ_i p_i (log p_i − log q_i)",
    "jensen_shannon_divergence": "β·KL(q ‖ M) + (1 − β)·KL(p ‖ M), M = β·q + (1 − β)·p: β (params.beta) weighs the "
    "teacher (GKD, Agarwal et al. 2024, Eq. 1; trl's generalized_jsd_loss)",
    "skew_kl_divergence": "KL(q ‖ α·q + (1 − α)·p), α = params.skew (DistiLLM's SKL)",
    "skew_reverse_kl_divergence": "KL(p ‖ α·p + (1 − α)·q), α = params.skew (DistiLLM's SRKL)",
    "decoupled_kd_loss": "T²·(α·TCKD + β·NCKD) (DKD, Zhao et al. 2022): TCKD = KL of the binary (target, rest) "
    "distributions, NCKD = KL(q̂ ‖ p̂) over the non-target classes, p̂_i = p_i/(1 − p_t) exactly",
    "standardize_logits": "(x − mean x)/(τ·(σ + ε)) per sample, σ² = Σ_i (x_i − mean x)²/(N − ddof), "
    "τ = params.base_temperature (Sun et al. 2024); 'vjp' is Jᵀ·cotangent",
    "topk_kl_divergence": "KL(teacher ‖ student) to a top-k teacher (teacher_values at teacher_indices K), under "
    "params.convention: 'renormalized' KL(q̂ ‖ p̂), both softmaxes over K; 'dense_student' Σ_K q̂_i (log q̂_i − "
    "log p_i), p the full softmax(z/T); 'tail' (T = 1, values are log-probabilities a) Σ_K q_i log(q_i/p_i) + "
    "q_t log(q_t/p_t), q_i = e^{a_i}, q_t = 1 − Σ_K q_i, p_t = 1 − Σ_K p_i; q̂ = softmax_K(values/T)",
    "topk_soft_cross_entropy": "−Σ_b q_b log p_b over the same distributions as topk_kl_divergence "
    "(its KL plus the teacher's entropy)",
}

_CONVENTIONS = {
    "layout": "class axis last: logits have shape [B, N] (B samples, N classes), flattened row-major",
    "numbers": "each array is {shape, hex, dec}: hex = Python float.hex (C99 %a, read exactly by strtod), "
    "dec = the shortest decimal that reads back to the same double; non-finite as 'inf', '-inf', 'nan'",
    "reduction": "'none': one value per sample, shape [B]; 'sum': their sum; 'mean': their mean over samples "
    "(PyTorch's 'batchmean'), never over classes",
    "gradients": "grad_student and grad_teacher have the logits' shape: each sample's own gradient for 'none' "
    "and 'sum', divided by B for 'mean'; grad_T has the value's shape. Absent keys do not apply "
    "(cross_entropy has no teacher and no T, logit_mse no T)",
    "masks": "a logit of -inf masks a class. Masked in both: it contributes nothing (0·log 0 = 0). Masked by "
    "the student while the teacher gives it mass: the soft losses are +inf; their student gradient keeps "
    "its closed form (p − q)/T, their teacher and temperature derivatives are NaN",
    "labels": "integer class indices, one per sample, never on a masked class",
    "dtype": "each case's 'dtype': 'float64', or 'float32' — then the inputs (and T) are float32 numbers, the "
    "function was evaluated in float32 and the expected numbers are float32 results, written exactly as "
    "doubles; compare with float32 accuracy (kdcore's float32 results are within 1e-5 of the exact ones)",
    "standardize_logits": "inputs: student_logits (the logits x) and cotangent (c); expected: value (the "
    "standardised logits, -inf where x is -inf) and vjp (Jᵀc, 0 at masked classes); no reduction and no T",
    "topk": "topk_* cases: inputs teacher_values [B, k] (logits or log-probabilities, params.values) and "
    "teacher_indices, a plain [B][k] list of integer classes (not an encoded array); grad_teacher has shape "
    "[B, k] (w.r.t. the stored values); the tail convention's cases are at T = 1 and have no grad_T. "
    "params.k is the number of classes stored per sample",
}


def make_vectors() -> dict[str, Any]:
    """The golden vectors as a JSON-ready dict (see the module docstring and ``docs/verify.md``).

    Returns
    -------
    dict
        ``format``, ``version``, ``generator``, ``conventions``, ``functions`` (a formula per function)
        and ``cases``: a list of ``{id, function, regime, params, inputs, expected}``. Deterministic: the
        same on every call and machine.

    Examples
    --------
    >>> from kdcore.vectors import make_vectors
    >>> vectors = make_vectors()
    >>> sorted({case["function"] for case in vectors["cases"]})  # doctest: +NORMALIZE_WHITESPACE
    ['cross_entropy', 'decoupled_kd_loss', 'distillation_loss', 'jensen_shannon_divergence', 'kl_divergence',
     'logit_mse', 'reverse_kl_divergence', 'skew_kl_divergence', 'skew_reverse_kl_divergence',
     'soft_cross_entropy', 'standardize_logits', 'topk_kl_divergence', 'topk_soft_cross_entropy']
    >>> sorted({case["dtype"] for case in vectors["cases"]})
    ['float32', 'float64']
    >>> case = vectors["cases"][0]
    >>> sorted(case["expected"])
    ['grad_T', 'grad_student', 'grad_teacher', 'value']
    """
    cases = []
    seen: dict[str, int] = {}
    plan = [(*entry, "float64") for entry in _PLAN] + list(_NEW_PLAN) + list(_TOPK_PLAN)
    for index, (function, regime, params, dtype) in enumerate(plan):
        inputs = _inputs(function, regime, index, dtype)
        if function in _TOPK:
            inputs = _topk_inputs(inputs, params)
        expected = _COMPUTE[function](inputs, params)
        named = f"{function}/{params['convention']}" if function in _TOPK else function
        base = f"{named}/{regime}" + ("/float32" if dtype == "float32" else "")
        seen[base] = seen.get(base, 0) + 1
        encoded_inputs: dict[str, Any] = {}
        for name in _USES[function]:
            value = inputs[name]
            if name == "labels":
                encoded_inputs[name] = [int(label) for label in value]
            elif name == "teacher_indices":
                encoded_inputs[name] = value.tolist()
            else:
                encoded_inputs[name] = encode(value)
        cases.append(
            {
                "id": base if seen[base] == 1 else f"{base}/{seen[base]}",
                "function": function,
                "regime": regime,
                "dtype": dtype,
                "params": params,
                "inputs": encoded_inputs,
                "expected": {key: encode(value) for key, value in expected.items()},
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "generator": f"kdcore {__version__}, float64",
        "description": "Golden test vectors for knowledge-distillation losses (Hinton, Vinyals & Dean 2015): "
        "inputs and expected values and gradients, every number exact. Checked against a 50-digit mpmath "
        "oracle to 1e-12 relative (normwise per sample for vectors). Schema: docs/verify.md.",
        "conventions": _CONVENTIONS,
        "functions": _FUNCTIONS,
        "cases": cases,
    }


def write_vectors(path: str | os.PathLike[str]) -> None:
    """Write :func:`make_vectors` to ``path`` as strict JSON, atomically (:func:`kdcore.sweep_file.write_json`).

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from kdcore.vectors import write_vectors
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = pathlib.Path(directory) / "vectors.json"
    ...     write_vectors(path)
    ...     json.loads(path.read_text(encoding="utf-8"))["version"]
    1
    """
    # Atomically (a temporary file renamed into place), with sorted keys: the same vectors, the same bytes.
    write_json(make_vectors(), path)
