"""A zoo of distillation losses as people write them — correct ones and buggy ones — for kdcore.verify.

Each :class:`Member` is a loss, the framework it is written in, and the verdict kdcore.verify must reach:
``expected == ()`` for a correct loss, otherwise the set of finding codes it must report. Many are written
as real code is — ``nn.Module`` classes with the temperature in the constructor, keyword arguments in any
order, ``functools.partial``, bound methods — and are checked as they are, with no wrapper; ``options``
holds what the user would pass on the command line (``--init``, ``--arg``, ``--alpha-on``). Losses outside
the catalogue expect ``value-mismatch`` (or ``gradient-mismatch``): the catalogue explains, it never excuses.

The PyTorch and JAX members are built by functions that import the framework, so this module imports
without either; the NumPy members need NumPy only. None of this code is copied from anywhere: each loss is
written the way the style it imitates is commonly written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Member:
    """One loss of the zoo and the verdict it must get."""

    name: str
    framework: str
    kind: str  # "soft" or "distillation"
    fn: Callable
    expected: frozenset[str]  # empty: correct
    why: str
    grad_fn: Callable | None = None
    options: tuple[tuple[str, object], ...] = ()  # keyword arguments of check_*: init, args, alpha_on...
    hint: str = ""  # a phrase the report's text must contain (an honest hint)

    def __str__(self) -> str:  # pytest ids
        return self.name


def _member(name, framework, kind, fn, expected=(), why="", grad_fn=None, hint="", **options) -> Member:
    return Member(name, framework, kind, fn, frozenset(expected), why, grad_fn, tuple(options.items()), hint)


# ------------------------------------------------------------------------------------------------------
# PyTorch


def torch_members() -> list[Member]:
    """The PyTorch losses. Imports torch."""
    import torch
    import torch.nn.functional as F

    soft: list[Member] = []

    def add(name, fn, expected=(), why=""):
        soft.append(_member(name, "torch", "soft", fn, expected, why))

    # --- correct -------------------------------------------------------------------------------------
    def kl_batchmean(s, t, T):
        return F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T

    add("kl_batchmean_T2", kl_batchmean, why="the textbook PyTorch spelling")

    def soft_ce(s, t, T):
        return -(F.softmax(t / T, dim=-1) * F.log_softmax(s / T, dim=-1)).sum(dim=-1).mean() * T**2

    add("soft_cross_entropy_T2", soft_ce, why="soft cross-entropy, −Σ q log p")

    def kl_log_target(s, t, T):
        loss = F.kl_div(
            F.log_softmax(s / T, dim=-1), F.log_softmax(t / T, dim=-1), reduction="batchmean", log_target=True
        )
        return T**2 * loss

    add("kl_log_target", kl_log_target, why="log_target=True avoids 0·log 0 for tiny teacher probabilities")

    def kl_sum_over_batch_size(s, t, T):
        kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="sum")
        return kl * (T**2) / s.shape[0]

    add("kl_sum_div_batch", kl_sum_over_batch_size, why="reduction='sum' divided by the batch size by hand")

    def ce_probability_targets(s, t, T):
        return F.cross_entropy(s / T, F.softmax(t / T, dim=1)) * T * T

    add("cross_entropy_prob_targets", ce_probability_targets, why="F.cross_entropy with soft targets")

    def kl_explicit(s, t, T):
        log_p, log_q = F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1)
        return (log_q.exp() * (log_q - log_p)).sum(dim=1).mean() * T**2

    add("kl_explicit_log_domain", kl_explicit, why="Σ q (log q − log p) written out")

    # --- catalogued bugs -----------------------------------------------------------------------------
    def no_t2(s, t, T):
        return F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean")

    add("missing_T2", no_t2, {"missing-T2-scaling"})

    def mean_reduction(s, t, T):
        return F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="mean") * T * T

    add("kl_reduction_mean", mean_reduction, {"mean-over-classes"}, "PyTorch's default reduction")

    def sum_reduction(s, t, T):
        return F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="sum") * T * T

    add("kl_reduction_sum", sum_reduction, {"sum-over-batch"})

    def probs_as_log_probs(s, t, T):
        return F.kl_div(F.softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T

    add("kl_input_softmax", probs_as_log_probs, {"probabilities-as-log-probabilities"})

    def swapped(s, t, T):
        return F.kl_div(F.log_softmax(t / T, dim=1), F.softmax(s / T, dim=1), reduction="batchmean") * T * T

    # Both findings are right: besides the direction, kl_div's xlogy(p, p) has derivative log p + 1 = −inf
    # where the student's probability underflows to 0, so the gradient is NaN on large logits.
    add(
        "kl_swapped",
        swapped,
        {"swapped-kl-direction", "numerically-unstable"},
        "teacher as input, student as target",
    )

    def swapped_log_target(s, t, T):
        loss = F.kl_div(
            F.log_softmax(t / T, 1), F.log_softmax(s / T, 1), reduction="batchmean", log_target=True
        )
        return loss * T**2

    add(
        "kl_swapped_log_target",
        swapped_log_target,
        {"swapped-kl-direction"},
        "stable, but the wrong way round",
    )

    def naive(s, t, T):
        p = torch.exp(s / T) / torch.exp(s / T).sum(dim=1, keepdim=True)
        q = torch.exp(t / T) / torch.exp(t / T).sum(dim=1, keepdim=True)
        return (q * (torch.log(q) - torch.log(p))).sum(dim=1).mean() * T * T

    add("naive_exp_log", naive, {"numerically-unstable"}, "softmax by hand, then log")

    def log_of_softmax(s, t, T):
        return -(F.softmax(t / T, dim=1) * torch.log(F.softmax(s / T, dim=1))).sum(1).mean() * T**2

    add("log_of_softmax", log_of_softmax, {"numerically-unstable"}, "log(softmax) underflows to log 0")

    def detached_normaliser(s, t, T):
        log_p = s / T - torch.logsumexp(s / T, dim=1, keepdim=True).detach()
        return -(F.softmax(t / T, dim=1) * log_p).sum(1).mean() * T**2

    add("detached_logsumexp", detached_normaliser, {"gradient-mismatch"}, "the normaliser is detached")

    def fully_detached(s, t, T):
        return kl_batchmean(s.detach(), t, T)

    add("student_detached", fully_detached, {"gradient-mismatch"}, "no gradient reaches the student")

    def log_target_without_flag(s, t, T):
        return F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), reduction="batchmean") * T**2

    add("log_target_missing_flag", log_target_without_flag, {"non-finite"}, "log q passed as probabilities")

    def mean_and_no_t2(s, t, T):
        return F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="mean")

    add(
        "mean_and_missing_T2", mean_and_no_t2, {"mean-over-classes", "missing-T2-scaling"}, "two bugs at once"
    )

    # --- bugs outside the catalogue ------------------------------------------------------------------
    def wrong_axis(s, t, T):
        return F.kl_div(F.log_softmax(s / T, dim=0), F.softmax(t / T, dim=0), reduction="batchmean") * T * T

    add("softmax_over_batch_axis", wrong_axis, {"value-mismatch"}, "dim=0: softmax over the samples")

    def temperature_twice(s, t, T):
        return kl_batchmean(s / T, t / T, T)

    add("temperature_applied_twice", temperature_twice, {"value-mismatch"}, "logits divided by T twice")

    def label_smoothing(s, t, T):
        q = 0.9 * F.softmax(t / T, dim=1) + 0.1 / s.shape[1]
        return F.kl_div(F.log_softmax(s / T, dim=1), q, reduction="batchmean") * T * T

    add("smoothed_teacher", label_smoothing, {"value-mismatch"}, "label smoothing slipped into the targets")

    def teacher_untempered(s, t, T):
        return F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t, dim=1), reduction="batchmean") * T * T

    add("teacher_not_tempered", teacher_untempered, {"value-mismatch"}, "T on the student only")

    def eps_in_log(s, t, T):
        p, q = F.softmax(s / T, dim=1), F.softmax(t / T, dim=1)
        return (q * (torch.log(q + 1e-8) - torch.log(p + 1e-8))).sum(1).mean() * T * T

    add("epsilon_in_log", eps_in_log, {"value-mismatch"}, "log(p + 1e-8): finite, but wrong")

    def t_not_squared(s, t, T):
        return kl_batchmean(s, t, T) / T

    add("T_instead_of_T2", t_not_squared, {"value-mismatch"}, "T¹: not a catalogued power")

    # --- the full distillation loss -------------------------------------------------------------------
    distil: list[Member] = []

    def add_distil(name, fn, expected=(), why=""):
        distil.append(_member(name, "torch", "distillation", fn, expected, why))

    def hinton(s, t, y, T, alpha):
        return alpha * F.cross_entropy(s, y) + (1 - alpha) * kl_batchmean(s, t, T)

    add_distil("hinton_kl", hinton, why="α·CE + (1 − α)·T²·KL")

    def hinton_ce(s, t, y, T, alpha):
        hard = F.nll_loss(F.log_softmax(s, dim=-1), y)
        return alpha * hard + (1 - alpha) * soft_ce(s, t, T)

    add_distil("hinton_soft_ce", hinton_ce, why="nll_loss(log_softmax) + soft cross-entropy")

    def hard_tempered(s, t, y, T, alpha):
        return alpha * F.cross_entropy(s / T, y) + (1 - alpha) * kl_batchmean(s, t, T)

    add_distil("hard_loss_tempered", hard_tempered, {"temperature-on-hard-loss"})

    def alpha_swapped(s, t, y, T, alpha):
        return (1 - alpha) * F.cross_entropy(s, y) + alpha * kl_batchmean(s, t, T)

    add_distil("alpha_swapped", alpha_swapped, {"alpha-swapped"})

    def distil_no_t2(s, t, y, T, alpha):
        return alpha * F.cross_entropy(s, y) + (1 - alpha) * no_t2(s, t, T)

    add_distil(
        "distillation_missing_T2", distil_no_t2, {"missing-T2-scaling"}, "the introductory post's form"
    )

    def hard_detached(s, t, y, T, alpha):
        return alpha * F.cross_entropy(s.detach(), y) + (1 - alpha) * kl_batchmean(s, t, T)

    add_distil("hard_term_detached", hard_detached, {"gradient-mismatch"})

    def nll_on_probs(s, t, y, T, alpha):
        return alpha * F.nll_loss(F.softmax(s, dim=1), y) + (1 - alpha) * kl_batchmean(s, t, T)

    add_distil("nll_on_probabilities", nll_on_probs, {"value-mismatch"}, "nll_loss of probabilities: −p_y")

    # --- real code as it is written: classes, keyword arguments, partials, bound methods -------------
    real: list[Member] = []

    def add_real(name, fn, kind="soft", expected=(), why="", hint="", **options):
        real.append(_member(name, "torch", kind, fn, expected, why, hint=hint, **options))

    class DistillKL(torch.nn.Module):
        """RepDistiller's style: T in the constructor, forward(y_s, y_t), size_average-era sum / B."""

        def __init__(self, T):
            super().__init__()
            self.T = T

        def forward(self, y_s, y_t):
            p_s = F.log_softmax(y_s / self.T, dim=1)
            p_t = F.softmax(y_t / self.T, dim=1)
            return F.kl_div(p_s, p_t, reduction="sum") * (self.T**2) / y_s.shape[0]

    add_real("module_class_T_in_init", DistillKL, why="the class itself: one instance per temperature")
    add_real("module_class_fixed_T", DistillKL, why="--init T=4: the battery runs at T = 4", init={"T": 4.0})
    add_real("module_instance", DistillKL(T=3.0), why="an instance: T read from its attribute")

    class KDLoss(torch.nn.Module):
        """A trainer's combined loss: α on the *soft* term, as many codebases write it."""

        def __init__(self, temperature=4.0, alpha=0.9, reduction="batchmean"):
            super().__init__()
            self.temperature, self.alpha = temperature, alpha
            self.kl = torch.nn.KLDivLoss(reduction=reduction)

        def forward(self, student_logits, teacher_logits, labels):
            T = self.temperature
            soft = self.kl(F.log_softmax(student_logits / T, -1), F.softmax(teacher_logits / T, -1)) * T * T
            return self.alpha * soft + (1 - self.alpha) * F.cross_entropy(student_logits, labels)

    add_real(
        "kdloss_alpha_on_soft", KDLoss, "distillation", why="checked in its own convention", alpha_on="soft"
    )
    add_real(
        "kdloss_default_convention",
        KDLoss,
        "distillation",
        {"alpha-swapped"},
        "α on the soft term, checked as hard",
    )

    def kd_keywords(student_logits, teacher_logits, labels, alpha=0.1, T=10.0):
        soft = F.kl_div(
            F.log_softmax(student_logits / T, 1), F.softmax(teacher_logits / T, 1), reduction="batchmean"
        )
        return alpha * F.cross_entropy(student_logits, labels) + (1 - alpha) * soft * T**2

    add_real("keyword_args_alpha_before_T", kd_keywords, "distillation", why="bound by name, not by position")

    def kd_any_order(*, temperature, logits, teacher_logits):
        return kl_batchmean(logits, teacher_logits, temperature)

    add_real("keyword_only_any_order", kd_any_order, why="keyword-only, temperature first")

    def kd_reduction(y_s, y_t, tau, reduction):
        return F.kl_div(F.log_softmax(y_s / tau, 1), F.softmax(y_t / tau, 1), reduction=reduction) * tau**2

    add_real(
        "extra_argument_with_arg",
        kd_reduction,
        why="--arg reduction=batchmean",
        args={"reduction": "batchmean"},
    )
    add_real("partial", functools.partial(kd_reduction, reduction="batchmean"), why="functools.partial")
    add_real("bound_method", _Trainer(F).distillation_loss, why="a trainer's bound method")

    def divides_by_batch_twice(s, t, T):
        return kl_batchmean(s, t, T) / s.shape[0]

    add_real("batchmean_then_divided_by_B", divides_by_batch_twice, expected={"batch-mean-twice"})

    def kldivloss_arguments_swapped(s, t, T):
        criterion = torch.nn.KLDivLoss(reduction="batchmean")
        return criterion(F.softmax(t / T, dim=1), F.log_softmax(s / T, dim=1)) * T * T

    add_real(
        "kldivloss_arguments_swapped",
        kldivloss_arguments_swapped,
        expected={"non-finite"},
        hint="arguments exchanged",
    )

    def alpha_or_default(s, t, y, T, alpha):
        alpha = alpha or 0.5  # α = 0 is falsy: "not given"
        return alpha * F.cross_entropy(s, y) + (1 - alpha) * kl_batchmean(s, t, T)

    add_real(
        "alpha_zero_read_as_missing",
        alpha_or_default,
        "distillation",
        {"value-mismatch"},
        hint="fails on every case with α = 0",
    )

    return soft + distil + real


class _Trainer:
    """A trainer whose loss is a method using the trainer's settings."""

    def __init__(self, functional):
        self.F = functional

    def distillation_loss(self, outputs, teacher_outputs, temperature):
        F = self.F
        log_p = F.log_softmax(outputs / temperature, dim=-1)
        return (
            F.kl_div(
                log_p,
                F.log_softmax(teacher_outputs / temperature, dim=-1),
                reduction="batchmean",
                log_target=True,
            )
            * temperature**2
        )


# ------------------------------------------------------------------------------------------------------
# JAX


def jax_members() -> list[Member]:
    """A few JAX losses. Imports jax."""
    import jax
    import jax.numpy as jnp

    def kl(s, t, T):
        log_p, log_q = jax.nn.log_softmax(s / T, axis=-1), jax.nn.log_softmax(t / T, axis=-1)
        return T**2 * jnp.mean(jnp.sum(jnp.exp(log_q) * (log_q - log_p), axis=-1))

    def no_t2(s, t, T):
        return kl(s, t, T) / T**2

    def hinton(s, t, y, T, alpha):
        log_p1 = jax.nn.log_softmax(s, axis=-1)
        hard = -jnp.mean(jnp.take_along_axis(log_p1, y[:, None], axis=-1))
        return alpha * hard + (1 - alpha) * kl(s, t, T)

    def stop_gradient(s, t, T):
        return kl(jax.lax.stop_gradient(s), t, T)

    def optax_style(logits, teacher_logits, *, temperature=1.0):
        # Names as in optax: `logits` are the student's; the temperature keyword-only.
        return kl(logits, teacher_logits, temperature)

    return [
        _member("jax_keyword_only_temperature", "jax", "soft", optax_style, why="optax-style names"),
        _member("jax_kl", "jax", "soft", kl, why="log_softmax in jax.nn"),
        _member("jax_missing_T2", "jax", "soft", no_t2, {"missing-T2-scaling"}),
        _member("jax_hinton", "jax", "distillation", hinton),
        _member("jax_stop_gradient", "jax", "soft", stop_gradient, {"gradient-mismatch"}),
    ]


# ------------------------------------------------------------------------------------------------------
# TensorFlow / Keras


def tensorflow_members() -> list[Member]:
    """TensorFlow and Keras losses. Imports tensorflow."""
    import tensorflow as tf

    def kl(s, t, T):
        log_p, log_q = tf.nn.log_softmax(s / T, axis=-1), tf.nn.log_softmax(t / T, axis=-1)
        return T**2 * tf.reduce_mean(tf.reduce_sum(tf.exp(log_q) * (log_q - log_p), axis=-1))

    def soft_ce(student_logits, teacher_logits, temperature):
        targets = tf.nn.softmax(teacher_logits / temperature)
        per_sample = tf.nn.softmax_cross_entropy_with_logits(
            labels=targets, logits=student_logits / temperature
        )
        return tf.reduce_mean(per_sample) * temperature**2

    def no_t2(s, t, T):
        return kl(s, t, T) / T**2

    def keras_kl_divergence(y_s, y_t, T):
        # Keras's KLDivergence takes probabilities and clips them to [1e-7, 1]: finite, but not KL.
        return tf.keras.losses.KLDivergence()(tf.nn.softmax(y_t / T), tf.nn.softmax(y_s / T)) * T**2

    def stop_gradient(s, t, T):
        return kl(tf.stop_gradient(s), t, T)

    def hinton(student_logits, teacher_logits, labels, T, alpha):
        hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=student_logits)
        return alpha * tf.reduce_mean(hard) + (1 - alpha) * kl(student_logits, teacher_logits, T)

    class Distiller:
        """A Keras-style distiller: α and the temperature set in the constructor, α on the student loss."""

        def __init__(self, alpha=0.1, temperature=3.0):
            self.alpha, self.temperature = alpha, temperature
            self.student_loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        def __call__(self, y_true, y_pred, teacher_predictions):
            T = self.temperature
            student_loss = self.student_loss_fn(y_true, y_pred)
            return self.alpha * student_loss + (1 - self.alpha) * kl(y_pred, teacher_predictions, T)

    return [
        _member("tf_kl", "tensorflow", "soft", kl, why="tf.nn.log_softmax"),
        _member("tf_softmax_cross_entropy", "tensorflow", "soft", soft_ce, why="soft targets, keyword names"),
        _member("tf_missing_T2", "tensorflow", "soft", no_t2, {"missing-T2-scaling"}),
        _member(
            "keras_kl_divergence_on_probs",
            "tensorflow",
            "soft",
            keras_kl_divergence,
            {"value-mismatch"},
            "clips probabilities at 1e-7",
        ),
        _member("tf_stop_gradient", "tensorflow", "soft", stop_gradient, {"gradient-mismatch"}),
        _member("tf_hinton", "tensorflow", "distillation", hinton, why="tf.nn sparse cross-entropy"),
        # Keras losses compute in its floatx, float32: added to a float64 soft term, they raise.
        _member(
            "keras_distiller_class",
            "tensorflow",
            "distillation",
            Distiller,
            {"exception"},
            "Keras tutorial style; float32 hard term",
            hint="float tensor but is a double tensor",
        ),
    ]


# ------------------------------------------------------------------------------------------------------
# NumPy


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _np_kl(s, t, T):
    log_p, log_q = _log_softmax(s / T), _log_softmax(t / T)
    return T**2 * np.mean(np.sum(np.exp(log_q) * (log_q - log_p), axis=-1))


def _np_kl_grad(s, t, T):
    return T * (np.exp(_log_softmax(s / T)) - np.exp(_log_softmax(t / T))) / s.shape[0]


def _np_soft_ce(s, t, T):
    return -(T**2) * np.mean(np.sum(np.exp(_log_softmax(t / T)) * _log_softmax(s / T), axis=-1))


def _np_no_t2(s, t, T):
    return _np_kl(s, t, T) / T**2


def _np_naive(s, t, T):
    p = np.exp(s / T) / np.sum(np.exp(s / T), axis=-1, keepdims=True)
    q = np.exp(t / T) / np.sum(np.exp(t / T), axis=-1, keepdims=True)
    return T**2 * np.mean(np.sum(q * (np.log(q) - np.log(p)), axis=-1))


def _np_grad_missing_t(s, t, T):
    return _np_kl_grad(s, t, T) / T  # the T of T²·(p − q)/T forgotten: (p − q)/B


def _np_hinton(s, t, y, T, alpha):
    hard = -np.mean(np.take_along_axis(_log_softmax(s), y[:, None], axis=-1))
    return alpha * hard + (1 - alpha) * _np_kl(s, t, T)


def _np_hinton_grad(s, t, y, T, alpha):
    hard = np.exp(_log_softmax(s))
    hard[np.arange(len(y)), y] -= 1.0
    return alpha * hard / len(y) + (1 - alpha) * _np_kl_grad(s, t, T)


def _np_hard_tempered_simple(s, t, y, T, alpha):
    hard = -np.mean(np.take_along_axis(_log_softmax(s / T), y[:, None], axis=-1))
    return alpha * hard + (1 - alpha) * _np_kl(s, t, T)


def _np_probs(x: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(x))


def _np_mean_over_classes(s, t, T):
    return _np_kl(s, t, T) / s.shape[-1]


def _np_sum_over_batch(s, t, T):
    return _np_kl(s, t, T) * s.shape[0]


def _np_swapped(s, t, T):
    log_p, log_q = _log_softmax(s / T), _log_softmax(t / T)
    return T**2 * np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1))


def _np_probs_as_log_probs(s, t, T):
    p, log_q = _np_probs(s / T), _log_softmax(t / T)
    return T**2 * np.mean(np.sum(np.exp(log_q) * (log_q - p), axis=-1))


def _np_log_q_as_q(s, t, T):
    log_p, log_q = _log_softmax(s / T), _log_softmax(t / T)
    return T**2 * np.mean(np.sum(log_q * (np.log(log_q) - log_p), axis=-1))  # log of a negative: NaN


def _np_smoothed(s, t, T):
    q = 0.9 * _np_probs(t / T) + 0.1 / s.shape[-1]
    return T**2 * np.mean(np.sum(q * (np.log(q) - _log_softmax(s / T)), axis=-1))


def _np_per_sample(s, t, T):
    log_p, log_q = _log_softmax(s / T), _log_softmax(t / T)
    return T**2 * np.sum(np.exp(log_q) * (log_q - log_p), axis=-1)  # forgot to reduce over samples


def _np_squeezed(s, t, T):
    s, t = s.squeeze(), t.squeeze()  # a batch of one loses its batch axis, and axis=1 no longer exists
    log_p, log_q = _log_softmax(s / T), _log_softmax(t / T)
    return T**2 * np.mean(np.sum(np.exp(log_q) * (log_q - log_p), axis=1))


def _np_alpha_swapped(s, t, y, T, alpha):
    return _np_hinton(s, t, y, T, 1.0 - alpha)


class _NpDistillKL:
    """A class with the temperature in its constructor, called as loss(y_s, y_t)."""

    def __init__(self, temperature):
        self.temperature = temperature

    def __call__(self, y_s, y_t):
        return _np_kl(y_s, y_t, self.temperature)


def _np_keywords(student_logits, teacher_logits, labels, alpha=0.1, T=10.0):
    return _np_hinton(student_logits, teacher_logits, labels, T, alpha)


def _np_keywords_grad(student_logits, teacher_logits, labels, alpha=0.1, T=10.0):
    return _np_hinton_grad(student_logits, teacher_logits, labels, T, alpha)


def _np_with_reduction(logits, target_logits, tau, reduction):
    log_p, log_q = _log_softmax(logits / tau), _log_softmax(target_logits / tau)
    per_sample = tau**2 * np.sum(np.exp(log_q) * (log_q - log_p), axis=-1)
    return np.mean(per_sample) if reduction == "batchmean" else np.sum(per_sample)


def _np_batch_mean_twice(s, t, T):
    return _np_kl(s, t, T) / s.shape[0]


def _np_alpha_or_default(s, t, y, T, alpha):
    return _np_hinton(s, t, y, T, alpha or 0.5)


def numpy_members() -> list[Member]:
    """The NumPy losses (run in plain ``make test``, no framework needed)."""
    import kdcore

    def kdcore_soft(s, t, T):
        return T**2 * kdcore.soft_cross_entropy(s, t, T)

    def kdcore_soft_grad(s, t, T):
        return T**2 * kdcore.soft_cross_entropy_grad(s, t, T)

    return [
        # correct
        _member("np_kl_with_grad", "numpy", "soft", _np_kl, grad_fn=_np_kl_grad, why="with its own gradient"),
        _member("np_soft_ce_fd", "numpy", "soft", _np_soft_ce, why="no grad_fn: finite differences"),
        _member("np_kdcore", "numpy", "soft", kdcore_soft, grad_fn=kdcore_soft_grad, why="kdcore itself"),
        _member("np_hinton", "numpy", "distillation", _np_hinton, grad_fn=_np_hinton_grad),
        # catalogued bugs
        _member("np_missing_T2_fd", "numpy", "soft", _np_no_t2, {"missing-T2-scaling"}),
        _member("np_mean_over_classes", "numpy", "soft", _np_mean_over_classes, {"mean-over-classes"}),
        _member("np_sum_over_batch", "numpy", "soft", _np_sum_over_batch, {"sum-over-batch"}),
        _member("np_swapped", "numpy", "soft", _np_swapped, {"swapped-kl-direction"}),
        _member(
            "np_probs_as_log_probs",
            "numpy",
            "soft",
            _np_probs_as_log_probs,
            {"probabilities-as-log-probabilities"},
        ),
        _member("np_naive", "numpy", "soft", _np_naive, {"numerically-unstable"}, "exp overflows"),
        _member("np_log_q_as_q", "numpy", "soft", _np_log_q_as_q, {"non-finite"}, "log of log-probabilities"),
        _member(
            "np_wrong_grad_fn",
            "numpy",
            "soft",
            _np_kl,
            {"gradient-mismatch"},
            "grad_fn misses a factor T",
            _np_grad_missing_t,
        ),
        _member(
            "np_hard_tempered",
            "numpy",
            "distillation",
            _np_hard_tempered_simple,
            {"temperature-on-hard-loss"},
        ),
        _member("np_alpha_swapped", "numpy", "distillation", _np_alpha_swapped, {"alpha-swapped"}),
        # outside the catalogue, and broken contracts
        _member("np_smoothed_teacher", "numpy", "soft", _np_smoothed, {"value-mismatch"}, "label smoothing"),
        _member(
            "np_per_sample", "numpy", "soft", _np_per_sample, {"not-scalar"}, "no reduction over samples"
        ),
        _member(
            "np_squeezed",
            "numpy",
            "soft",
            _np_squeezed,
            {"exception"},
            "fails on a batch of one",
            hint="fails on every case with B = 1",
        ),
        # real code as it is written
        _member("np_class_T_in_init", "numpy", "soft", _NpDistillKL, why="a class, T in the constructor"),
        _member("np_instance", "numpy", "soft", _NpDistillKL(2.0), why="an instance, T read from it"),
        _member(
            "np_keyword_args",
            "numpy",
            "distillation",
            _np_keywords,
            grad_fn=_np_keywords_grad,
            why="alpha=..., T=... after labels",
        ),
        _member("np_partial", "numpy", "soft", functools.partial(_np_with_reduction, reduction="batchmean")),
        _member("np_extra_arg", "numpy", "soft", _np_with_reduction, args={"reduction": "batchmean"}),
        _member("np_batch_mean_twice", "numpy", "soft", _np_batch_mean_twice, {"batch-mean-twice"}),
        _member(
            "np_alpha_zero_read_as_missing",
            "numpy",
            "distillation",
            _np_alpha_or_default,
            {"value-mismatch"},
            grad_fn=lambda s, t, y, T, alpha: _np_hinton_grad(s, t, y, T, alpha or 0.5),
            hint="fails on every case with α = 0",
        ),
    ]
