"""A zoo of language-model and decoupled distillation losses, correct and buggy, for ``check_divergence_loss``.

Each member is written the way the code it imitates is written — trl's ``generalized_jsd_loss`` (a faithful
copy of trl 1.16.0's, so the zoo runs without trl; ``tests/test_verify_families.py`` also checks the real one
when trl is installed), DistiLLM's skew losses, MiniLLM's reverse KL, mdistiller's DKD, the fused JSD of
Liger kernel — and then, for the buggy ones, with one real mistake. Each asserts the verdict kdcore.verify
must reach (``expected``: the codes; empty = correct) and, for correct ones, the conventions it must name
(``conventions``: phrases the report's convention must contain). None of this code is copied: each loss is
re-written by hand in the style of its model.

Real bugs the members reproduce: trl before PR #3043 mixed ``β·student + (1 − β)·teacher`` while weighting
``β·KL(teacher ‖ M)`` (``jsd_trl_before_3043``); a reviewed PR of modelscope/twinkle exchanged the forward and
reverse KL at the endpoints (``jsd_endpoints_exchanged``); DistiLLM masks only ``isinf`` logits, so a
vocabulary masked with a large finite negative logit gives NaN (``distillm_skewed_forward_kl``); mdistiller's
``- 1000.0 * gt_mask`` leaks the target at large tempered logits (``dkd_mdistiller``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FamilyMember:
    name: str
    framework: str
    kind: str
    fn: Callable
    expected: frozenset[str]
    conventions: tuple[str, ...] = ()
    options: tuple[tuple[str, object], ...] = ()

    def __str__(self) -> str:  # pytest ids
        return self.name


def _member(name, framework, kind, fn, expected=(), conventions=(), **options) -> FamilyMember:
    return FamilyMember(
        name, framework, kind, fn, frozenset(expected), tuple(conventions), tuple(options.items())
    )


def torch_members() -> list[FamilyMember]:
    """The PyTorch members. Imports torch."""
    import torch
    import torch.nn.functional as F

    members: list[FamilyMember] = []

    def add(name, kind, fn, expected=(), conventions=(), **options):
        members.append(_member(name, "torch", kind, fn, expected, conventions, **options))

    # --- trl: GKDTrainer.generalized_jsd_loss (trl 1.16.0), faithfully -------------------------------------
    def generalized_jsd_loss(
        student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0, reduction="batchmean"
    ):
        student_logits = student_logits / temperature
        teacher_logits = teacher_logits / temperature
        student_log_probs = F.log_softmax(student_logits, dim=-1)
        teacher_log_probs = F.log_softmax(teacher_logits, dim=-1)
        if beta == 0:
            jsd = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True)
        elif beta == 1:
            jsd = F.kl_div(teacher_log_probs, student_log_probs, reduction="none", log_target=True)
        else:
            beta = torch.tensor(beta, dtype=student_log_probs.dtype)
            mixture_log_probs = torch.logsumexp(
                torch.stack([student_log_probs + torch.log1p(-beta), teacher_log_probs + torch.log(beta)]),
                dim=0,
            )
            kl_teacher = F.kl_div(mixture_log_probs, teacher_log_probs, reduction="none", log_target=True)
            kl_student = F.kl_div(mixture_log_probs, student_log_probs, reduction="none", log_target=True)
            jsd = beta * kl_teacher + (1 - beta) * kl_student
        if labels is not None:
            mask = labels != -100
            jsd = jsd[mask]
        if reduction == "batchmean":
            denom = mask.sum().clamp_min(1) if labels is not None else max(jsd.size(0), 1)
            return jsd.sum() / denom
        if reduction == "sum":
            return jsd.sum()
        if reduction == "mean":
            return jsd.mean()
        return jsd

    add(
        "trl_generalized_jsd_loss",
        "jsd",
        generalized_jsd_loss,
        conventions=("β weights the teacher", "trl's switch", "no T²", "mean over the kept positions"),
    )

    # The same function with one thing changed, each as it appears in the wild. They share trl's first and
    # last steps: tempered log-probabilities, and the mean over the kept tokens.
    def log_probs(student_logits, teacher_logits, temperature):
        return F.log_softmax(student_logits / temperature, -1), F.log_softmax(
            teacher_logits / temperature, -1
        )

    def kept_mean(jsd, labels):
        mask = labels != -100
        return jsd[mask].sum() / mask.sum()

    def kl(input_log_probs, target_log_probs):  # KL(target ‖ input), per entry
        return F.kl_div(input_log_probs, target_log_probs, reduction="none", log_target=True)

    def jsd_log_space(student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0):
        log_p, log_q = log_probs(student_logits, teacher_logits, temperature)
        if beta in (0, 1):
            return generalized_jsd_loss(student_logits, teacher_logits, labels, beta, temperature)
        log_m = beta * log_q + (1 - beta) * log_p  # the log of q^β p^(1−β)
        return kept_mean(beta * kl(log_m, log_q) + (1 - beta) * kl(log_m, log_p), labels)

    add("jsd_log_space_mixture", "jsd", jsd_log_space, {"log-space-mixture"})

    def jsd_trl_before_3043(student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0):
        log_p, log_q = log_probs(student_logits, teacher_logits, temperature)
        # β on the *student* in the mixture, but β on KL(teacher ‖ M) below: no JSD_β for any β
        weight = torch.tensor(beta, dtype=log_p.dtype)
        log_m = torch.logsumexp(torch.stack([log_p + torch.log(weight), log_q + torch.log1p(-weight)]), dim=0)
        return kept_mean(beta * kl(log_m, log_q) + (1 - beta) * kl(log_m, log_p), labels)

    add("jsd_trl_before_3043", "jsd", jsd_trl_before_3043, {"mixture-weight-swapped"})

    def jsd_endpoints_exchanged(student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0):
        log_p, log_q = log_probs(student_logits, teacher_logits, temperature)
        # meant as "forward KL(student ‖ teacher)" at β = 0: but kl_div(input, target) is KL(target ‖ input)
        if beta == 0:
            return kept_mean(kl(log_q, log_p), labels)
        if beta == 1:
            return kept_mean(kl(log_p, log_q), labels)
        return generalized_jsd_loss(student_logits, teacher_logits, labels, beta, temperature)

    add("jsd_endpoints_exchanged", "jsd", jsd_endpoints_exchanged, {"swapped-kl-direction"})

    def jsd_padding_counted(student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0):
        jsd = generalized_jsd_loss(student_logits, teacher_logits, None, beta, temperature, reduction="none")
        mask = labels != -100
        return jsd.sum() / mask.sum()  # the padded positions' divergence is in the numerator

    add("jsd_padding_in_mean", "jsd", jsd_padding_counted, {"padding-in-mean"})

    def jsd_masked_mean_over_all(student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0):
        per_token = generalized_jsd_loss(student_logits, teacher_logits, None, beta, temperature, "none").sum(
            -1
        )
        return (per_token * (labels != -100)).mean()  # .mean() divides by every position

    add("jsd_mean_over_all_positions", "jsd", jsd_masked_mean_over_all, {"mean-over-all-positions"})

    def jsd_from_probabilities(student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0):
        p, q = F.softmax(student_logits / temperature, -1), F.softmax(teacher_logits / temperature, -1)
        log_m = torch.log(beta * q + (1 - beta) * p)
        jsd = beta * (q * (torch.log(q) - log_m)) + (1 - beta) * (p * (torch.log(p) - log_m))
        mask = labels != -100
        return jsd.sum(-1)[mask].mean()

    add("jsd_log_of_softmax", "jsd", jsd_from_probabilities,
        {"log-softmax-masked-vocabulary", "numerically-unstable"})  # fmt: skip

    def jsd_student_weighted(student_logits, teacher_logits, mask, beta=0.5, temperature=1.0):
        # β the student's share: the same family, the other convention (β ↔ 1 − β of GKD's)
        return generalized_jsd_loss(
            student_logits, teacher_logits, torch.where(mask, 0, -100), 1 - beta, temperature
        )

    add("jsd_beta_on_student", "jsd", jsd_student_weighted, conventions=("β weights the student",))
    add("jsd_beta_on_student_told_teacher", "jsd", jsd_student_weighted, {"mixture-weight-swapped"},
        weight_on="teacher")  # fmt: skip

    def jsd_per_sequence(student_logits, teacher_logits, labels, beta=0.5, temperature=1.0):
        per_token = generalized_jsd_loss(student_logits, teacher_logits, None, beta, temperature, "none").sum(
            -1
        )
        mask = (labels != -100).to(per_token.dtype)
        return ((per_token * mask).sum(-1) / mask.sum(-1)).mean() * temperature**2

    add("jsd_per_sequence_T2", "jsd", jsd_per_sequence,
        conventions=("mean over each sequence's kept tokens", "multiplied by T²"))  # fmt: skip

    # --- MiniLLM-style reverse KL (no temperature, a loss mask) ------------------------------------------
    def reverse_kl(logits, teacher_logits, loss_mask):
        kl = F.kl_div(F.log_softmax(teacher_logits, -1), F.log_softmax(logits, -1), reduction="none",
                      log_target=True).sum(-1)  # fmt: skip
        return (kl * loss_mask).sum() / loss_mask.sum()

    add("minillm_reverse_kl", "reverse-kl", reverse_kl, conventions=("mean over the kept positions",))

    def forward_instead(logits, teacher_logits, loss_mask):
        kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(teacher_logits, -1), reduction="none",
                      log_target=True).sum(-1)  # fmt: skip
        return (kl * loss_mask).sum() / loss_mask.sum()

    add("reverse_kl_computes_forward", "reverse-kl", forward_instead, {"swapped-kl-direction"})

    def reverse_kl_tempered_student(student_logits, teacher_logits, temperature, labels):
        log_p = F.log_softmax(student_logits / temperature, -1)
        log_q = F.log_softmax(teacher_logits, -1)  # the teacher forgot its temperature
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)
        keep = labels != -100
        return kl[keep].mean()

    add(
        "reverse_kl_teacher_untempered",
        "reverse-kl",
        reverse_kl_tempered_student,
        {"temperature-on-one-side"},
    )

    # --- DistiLLM: skewed_forward_kl / skewed_reverse_kl (no temperature, `lam`) --------------------------
    def skewed_forward_kl(logits, teacher_logits, labels, lam=0.1):
        teacher_probs = F.softmax(teacher_logits, dim=-1, dtype=torch.float32).to(logits.dtype)
        student_probs = F.softmax(logits, dim=-1, dtype=torch.float32).to(logits.dtype)
        mixed_probs = lam * teacher_probs + (1 - lam) * student_probs
        mixed_logprobs = torch.log(mixed_probs)
        inf_mask = torch.isinf(logits)  # catches -inf masks only: -1e9 slips through
        prod_probs = torch.masked_fill(teacher_probs * mixed_logprobs, inf_mask, 0)
        x = torch.sum(prod_probs, dim=-1).view(-1)
        mask = (labels != -100).int().view(-1)
        return -torch.sum(x * mask, dim=0) / torch.sum(mask, dim=0)

    # Three findings, each real: NaN where the vocabulary is masked with -1e9 (only isinf is masked) and where
    # both probabilities underflow (extreme logits), and float32-sized errors on float64 inputs (the softmax
    # is taken in float32, as DistiLLM does to upcast half precision).
    add("distillm_skewed_forward_kl", "skew-kl", skewed_forward_kl,
        {"log-softmax-masked-vocabulary", "numerically-unstable", "value-mismatch"})  # fmt: skip

    def skewed_forward_kl_stable(logits, teacher_logits, labels, lam=0.1):
        teacher_log_probs = F.log_softmax(teacher_logits, dim=-1)
        student_log_probs = F.log_softmax(logits, dim=-1)
        mixed = torch.logsumexp(torch.stack([teacher_log_probs + math.log(lam),
                                             student_log_probs + math.log1p(-lam)]), dim=0)  # fmt: skip
        x = -(teacher_log_probs.exp() * mixed).sum(-1)
        keep = labels != -100
        return x[keep].mean()

    add("distillm_skewed_forward_kl_logsumexp", "skew-kl", skewed_forward_kl_stable,
        conventions=("soft cross-entropy −Σ q·log M",))  # fmt: skip

    def skew_weights_swapped(logits, teacher_logits, labels, lam=0.1):
        return skewed_forward_kl_stable(logits, teacher_logits, labels, 1 - lam)

    add("skew_kl_weight_swapped", "skew-kl", skew_weights_swapped, {"mixture-weight-swapped"})

    def skewed_reverse_kl(logits, teacher_logits, labels, lam=0.1):
        teacher_log_probs, student_log_probs = F.log_softmax(teacher_logits, -1), F.log_softmax(logits, -1)
        mixed = torch.logsumexp(torch.stack([student_log_probs + math.log(lam),
                                             teacher_log_probs + math.log1p(-lam)]), dim=0)  # fmt: skip
        kl = F.kl_div(mixed, student_log_probs, reduction="none", log_target=True).sum(-1)
        keep = labels != -100
        return kl[keep].sum() / keep.sum()

    add("distillm_skewed_reverse_kl", "skew-reverse-kl", skewed_reverse_kl)

    def skewed_reverse_log_space(logits, teacher_logits, labels, lam=0.1):
        teacher_log_probs, student_log_probs = F.log_softmax(teacher_logits, -1), F.log_softmax(logits, -1)
        mixed = F.log_softmax(lam * student_log_probs + (1 - lam) * teacher_log_probs, -1)  # renormalised G
        kl = F.kl_div(mixed, student_log_probs, reduction="none", log_target=True).sum(-1)
        keep = labels != -100
        return kl[keep].sum() / keep.sum()

    add("skew_reverse_kl_log_space", "skew-reverse-kl", skewed_reverse_log_space, {"log-space-mixture"})

    # --- mdistiller's DKD --------------------------------------------------------------------------------
    def _masks(logits, target):
        gt = torch.zeros_like(logits).scatter_(1, target.unsqueeze(1), 1).bool()
        other = torch.ones_like(logits).scatter_(1, target.unsqueeze(1), 0).bool()
        return gt, other

    def _cat_mask(t, mask1, mask2):
        t1 = (t * mask1).sum(dim=1, keepdims=True)
        t2 = (t * mask2).sum(1, keepdims=True)
        return torch.cat([t1, t2], dim=1)

    def dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature):
        gt_mask, other_mask = _masks(logits_student, target)
        pred_student = F.softmax(logits_student / temperature, dim=1)
        pred_teacher = F.softmax(logits_teacher / temperature, dim=1)
        pred_student = _cat_mask(pred_student, gt_mask, other_mask)
        pred_teacher = _cat_mask(pred_teacher, gt_mask, other_mask)
        log_pred_student = torch.log(pred_student)
        tckd_loss = (
            F.kl_div(log_pred_student, pred_teacher, size_average=False) * (temperature**2) / target.shape[0]
        )
        pred_teacher_part2 = F.softmax(logits_teacher / temperature - 1000.0 * gt_mask, dim=1)
        log_pred_student_part2 = F.log_softmax(logits_student / temperature - 1000.0 * gt_mask, dim=1)
        nckd_loss = (F.kl_div(log_pred_student_part2, pred_teacher_part2, size_average=False)
                     * (temperature**2) / target.shape[0])  # fmt: skip
        return alpha * tckd_loss + beta * nckd_loss

    # torch.log of the binary probabilities is -inf (then NaN) wherever the target's probability rounds to 1:
    # on the extreme cases. There the -1000 leak would show too, but a NaN hides it.
    add("dkd_mdistiller", "dkd", dkd_loss, {"numerically-unstable"})

    def dkd_exact(logits_student, logits_teacher, target, alpha, beta, temperature):
        gt_mask, _ = _masks(logits_student, target)
        log_p, log_q = (
            F.log_softmax(logits_student / temperature, 1),
            F.log_softmax(logits_teacher / temperature, 1),
        )

        def binary(log_probs):  # log (p_t, 1 − p_t), exactly, from log-probabilities
            target_part = log_probs.masked_fill(~gt_mask, float("-inf")).logsumexp(1, keepdim=True)
            rest = log_probs.masked_fill(gt_mask, float("-inf")).logsumexp(1, keepdim=True)
            return torch.cat([target_part, rest], 1)

        tckd = F.kl_div(binary(log_p), binary(log_q), reduction="batchmean", log_target=True)
        s_rest = F.log_softmax((logits_student / temperature).masked_fill(gt_mask, -1e30), 1)
        t_rest = F.log_softmax((logits_teacher / temperature).masked_fill(gt_mask, -1e30), 1)
        nckd = F.kl_div(s_rest, t_rest, reduction="batchmean", log_target=True)
        return (alpha * tckd + beta * nckd) * temperature**2

    add("dkd_exact", "dkd", dkd_exact, conventions=("multiplied by T²",))

    def dkd_target_left_in(logits_student, logits_teacher, target, alpha, beta, temperature):
        _gt_mask, _ = _masks(logits_student, target)
        log_p, log_q = (
            F.log_softmax(logits_student / temperature, 1),
            F.log_softmax(logits_teacher / temperature, 1),
        )
        exact = dkd_exact(logits_student, logits_teacher, target, alpha, 0.0, temperature)
        nckd = F.kl_div(log_p, log_q, reduction="batchmean", log_target=True)  # the target never removed
        return exact + beta * nckd * temperature**2

    add("dkd_target_left_in", "dkd", dkd_target_left_in, {"dkd-target-leak"})

    def dkd_minus_1000(logits_student, logits_teacher, target, alpha, beta, temperature):
        gt_mask, _ = _masks(logits_student, target)
        exact_tckd = dkd_exact(logits_student, logits_teacher, target, alpha, 0.0, temperature)
        log_p = F.log_softmax(logits_student / temperature - 1000.0 * gt_mask, dim=1)  # mdistiller's NCKD
        log_q = F.log_softmax(logits_teacher / temperature - 1000.0 * gt_mask, dim=1)
        nckd = F.kl_div(log_p, log_q, reduction="batchmean", log_target=True)
        return exact_tckd + beta * nckd * temperature**2

    add("dkd_minus_1000_trick", "dkd", dkd_minus_1000, {"dkd-target-leak"})

    # --- Liger kernel's LigerJSD: (log_q student, log_p teacher), β on the teacher, ignore_index --------
    class LigerStyleJSD(torch.nn.Module):
        def __init__(self, beta=0.5, ignore_index=-100):
            super().__init__()
            self.beta, self.ignore_index = beta, ignore_index

        def forward(self, log_q, log_p, shift_labels=None):
            log_q, log_p = log_q.view(-1, log_q.size(-1)), log_p.view(-1, log_p.size(-1))
            b = torch.tensor(self.beta, dtype=log_q.dtype)
            log_m = torch.logsumexp(torch.stack([log_p + torch.log(b), log_q + torch.log1p(-b)]), 0)
            per_row = (b * (log_p.exp() * (log_p - log_m)) + (1 - b) * (log_q.exp() * (log_q - log_m))).sum(
                -1
            )
            keep = shift_labels.view(-1) != self.ignore_index
            return per_row[keep].sum() / keep.sum()

    # Liger takes log-probabilities, not logits: a user checks it through log_softmax at T = 1.
    def liger_jsd(student_logits, teacher_logits, labels, beta):
        return LigerStyleJSD(beta)(
            F.log_softmax(student_logits, -1), F.log_softmax(teacher_logits, -1), labels
        )

    add("liger_style_jsd", "jsd", liger_jsd, conventions=("β weights the teacher",))
    return members


def jax_members() -> list[FamilyMember]:
    """Two JAX members: a masked-mean JSD written with optax-style helpers, and one that averages padding."""
    import jax
    import jax.numpy as jnp

    def jsd(student_logits, teacher_logits, mask, beta, temperature):
        log_p = jax.nn.log_softmax(student_logits / temperature)
        log_q = jax.nn.log_softmax(teacher_logits / temperature)
        log_m = jnp.logaddexp(log_q + jnp.log(beta), log_p + jnp.log1p(-beta))
        kl_q = jnp.sum(jnp.exp(log_q) * (log_q - log_m), -1)
        kl_p = jnp.sum(jnp.exp(log_p) * (log_p - log_m), -1)
        per_token = beta * kl_q + (1 - beta) * kl_p
        return jnp.sum(jnp.where(mask, per_token, 0.0)) / jnp.sum(mask)

    def jsd_total(student_logits, teacher_logits, mask, beta, temperature):
        return jsd(student_logits, teacher_logits, jnp.ones_like(mask), beta, temperature)  # mask ignored

    return [
        _member("jax_jsd_masked_mean", "jax", "jsd", jsd, conventions=("JSD_β itself",)),
        _member("jax_jsd_mask_ignored", "jax", "jsd", jsd_total, {"padding-in-mean"}),
    ]


def tensorflow_members() -> list[FamilyMember]:
    """Two TensorFlow members: a Keras-style reverse KL with sample weights, and one mean over all positions."""
    import tensorflow as tf

    def reverse_kl(logits, target_logits, mask, temperature):
        log_p = tf.nn.log_softmax(logits / temperature)
        log_q = tf.nn.log_softmax(target_logits / temperature)
        per_token = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
        weights = tf.cast(mask, per_token.dtype)
        return tf.reduce_sum(per_token * weights) / tf.reduce_sum(weights)

    def reverse_kl_all_positions(logits, target_logits, mask, temperature):
        log_p = tf.nn.log_softmax(logits / temperature)
        log_q = tf.nn.log_softmax(target_logits / temperature)
        per_token = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
        return tf.reduce_mean(per_token * tf.cast(mask, per_token.dtype))

    return [
        _member("tf_reverse_kl", "tensorflow", "reverse-kl", reverse_kl),
        _member(
            "tf_reverse_kl_mean_over_all",
            "tensorflow",
            "reverse-kl",
            reverse_kl_all_positions,
            {"mean-over-all-positions"},
        ),
    ]
